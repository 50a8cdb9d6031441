//! Planning: the recipe and its config loaded and checked, every step's stage plan and config
//! subset, and the activity DAG (one node per fan-out item) with each input's source, all
//! before anything runs or is hashed.
use super::inputs::RawItem;
use crate::config::{self, KeyUse};
use crate::key::canonical_value;
use crate::recipe::{self, Recipe, Source};
use crate::stage::{ConfigWarning, Pipeline, Stage, StagePlan, StepSetup};
use serde_json::{json, Map, Value};
use sst1mflow_base::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where one input of an activity comes from.
#[derive(Clone, Copy)]
pub(super) enum Ref {
    Raw { set: usize, file: usize },
    Out { node: usize, output: usize },
}

/// Per-step facts shared by all its activities.
pub(super) struct StepInfo {
    pub(super) name: String,
    pub(super) stage: &'static dyn Stage,
    pub(super) plan: Arc<StagePlan>,
    pub(super) params: Arc<Value>,
    pub(super) params_canon: Arc<String>,
    pub(super) config: Arc<Value>,
    pub(super) config_canon: Arc<String>,
    pub(super) wanted: Vec<bool>,
    /// Per output (plan order): deleted once every consumer in the run has succeeded.
    pub(super) recomputable: Vec<bool>,
}

pub(super) struct Node {
    pub(super) step: usize,
    pub(super) label: String,
    pub(super) metadata: Map<String, Value>,
    pub(super) inputs: Vec<(String, Vec<Ref>)>,
    pub(super) deps: Vec<usize>,
}

/// What planning found about the recipe's config, key by key: who applies or reads each key,
/// the notices the steps gave (each once, naming every step it concerns), and the schema's word
/// on the keys no step reads.
#[derive(Clone, Debug, Default)]
pub struct ConfigReport {
    pub file: Option<PathBuf>,
    pub uses: Vec<KeyUse>,
    pub warnings: Vec<ConfigWarning>,
    /// For unread keys the schema does not know: what to tell the user.
    pub hints: BTreeMap<String, String>,
}

impl ConfigReport {
    pub fn unread(&self) -> impl Iterator<Item = &KeyUse> {
        self.uses.iter().filter(|u| u.is_unread())
    }

    /// The one line planning prints about keys no step reads (None when every key is read).
    pub fn unread_notice(&self) -> Option<String> {
        let shown: Vec<String> = self
            .unread()
            .map(|u| match self.hints.get(&u.key) {
                Some(h) => format!("{} ({h})", u.key),
                None => u.key.clone(),
            })
            .collect();
        if shown.is_empty() {
            return None;
        }
        let file = self.file.as_deref().map(|f| format!("{}: ", f.display())).unwrap_or_default();
        Some(format!("{file}config keys no step of this recipe reads: {}", shown.join(", ")))
    }

    pub fn to_json(&self) -> Value {
        let keys: Vec<Value> = self
            .uses
            .iter()
            .map(|u| {
                let state = if !u.applied_by.is_empty() {
                    "applied"
                } else if !u.read_by.is_empty() {
                    "read, not applied"
                } else {
                    "read by no step"
                };
                let read: Vec<Value> = u.read_by.iter().map(|(s, why)| json!({"step": s, "why": why})).collect();
                let warnings: Vec<&str> =
                    self.warnings.iter().filter(|w| w.key == u.key).map(|w| w.message.as_str()).collect();
                json!({"key": u.key, "state": state, "applied_by": u.applied_by, "read_by": read,
                       "warnings": warnings, "hint": self.hints.get(&u.key)})
            })
            .collect();
        json!({"config": self.file.as_ref().map(|f| f.display().to_string()), "keys": keys})
    }
}

/// Loads the recipe and its config (or `config_override` in place of the recipe's) and checks
/// every step before anything runs. Returns the recipe, its steps, the warnings to show (config
/// notices, each once) and the config's account.
pub(super) fn prepare(
    pipeline: &Pipeline,
    recipe_path: &Path,
    config_override: Option<&Path>,
) -> Result<(Recipe, Vec<StepInfo>, Vec<String>, ConfigReport)> {
    let mut similar: Vec<(String, String, Vec<String>)> = Vec::new();
    let mut recipe = recipe::load(recipe_path, &pipeline.stage_names())?;
    if let Some(c) = config_override {
        recipe.config = Some(c.to_path_buf());
    }
    let config: Option<Value> = recipe.config.as_deref().map(config::load).transpose()?;
    let mut infos: Vec<StepInfo> = Vec::new();
    for (i, step) in recipe.steps.iter().enumerate() {
        let at = format!("{}: steps[{i}] (\"{}\")", recipe.file.display(), step.name);
        let stage = pipeline.stage(&step.stage).expect("recipe checked stage names");
        let mut roles: Vec<&str> = Vec::new();
        for (r, _) in &step.inputs {
            if !roles.contains(&r.as_str()) {
                roles.push(r);
            }
        }
        let plan = stage.plan_with_config(&step.params, &roles, config.as_ref(), &at)?;
        let scope = stage.config_scope();
        if !scope.is_empty() {
            let declared = plan.config_keys.iter().chain(plan.config_read.iter().map(|r| &r.key));
            for key in declared {
                let key = key.trim_end_matches('?');
                if !scope.iter().any(|pattern| config::covers(pattern, key) || config::covers(key, pattern)) {
                    return Err(Error::msg(format!(
                        "internal error: stage {} plans config key \"{key}\" outside its declared scope",
                        stage.name()
                    )));
                }
            }
        }
        for (role, src) in &step.inputs {
            if let Source::StepOutput { step: s, role: out } = src {
                let up: &StepInfo = &infos[*s];
                if !up.plan.outputs.iter().any(|o| &o.role == out) {
                    return Err(Error::msg(format!(
                        "{at}: input \"{role}\" refers to \"{}.{out}\", but step \"{}\" has no output \"{out}\"{}",
                        up.name,
                        up.name,
                        sst1mflow_base::text::suggestion(out, up.plan.outputs.iter().map(|o| o.role.as_str()))
                    )));
                }
            }
        }
        let with_file = config.as_ref().zip(recipe.config.as_deref());
        let read: Vec<String> = plan.config_read.iter().map(|r| r.key.clone()).collect();
        // Keys read inside a section the stage applies are carved out of what it is handed.
        let carved: Vec<String> = read
            .iter()
            .filter(|r| plan.config_keys.iter().any(|k| config::covers(k, r) && k.trim_end_matches('?') != r.as_str()))
            .cloned()
            .collect();
        // What the stage checks: the keys it applies and those it only reads. The schema check
        // comes first, so a misspelt key is named as such before a required key is missed.
        let optional = |k: &String| format!("{}?", k.trim_end_matches('?'));
        let checked_keys: Vec<String> = plan.config_keys.iter().chain(&read).map(optional).collect();
        let checked = config::subset(with_file, &checked_keys, &at)?;
        let named = format!("step \"{}\"", step.name);
        if let Some(file) = recipe.config.as_deref() {
            if let Some(check_schema) = pipeline.config_schema().filter(|_| stage.uses_config_schema()) {
                check_schema(&checked, file, &named)?;
            }
        }
        let cfg = config::subset_except(with_file, &plan.config_keys, &carved, &at)?;
        if let Some(file) = recipe.config.as_deref() {
            // The same notice from several steps is shown once, naming them all.
            let setup = StepSetup { params: &step.params, input_roles: &roles };
            for w in stage.check_config(&checked, &setup, file, &named)? {
                let template = w.message.replace(&named, "\u{0}");
                match similar.iter_mut().find(|(k, t, _)| *k == w.key && *t == template) {
                    Some((_, _, steps)) => steps.push(step.name.clone()),
                    None => similar.push((w.key, template, vec![step.name.clone()])),
                }
            }
        }
        let wanted = plan
            .outputs
            .iter()
            .map(|o| recipe.outputs.is_empty() || recipe.outputs.iter().any(|(s, r)| *s == i && *r == o.role))
            .collect();
        let recomputable = match &step.recomputable {
            None => plan.outputs.iter().map(|o| stage.output_recomputable(o)).collect(),
            Some(recipe::Recomputable::All(all)) => vec![*all; plan.outputs.len()],
            Some(recipe::Recomputable::Roles(roles)) => {
                for r in roles {
                    if !plan.outputs.iter().any(|o| &o.role == r) {
                        return Err(Error::msg(format!(
                            "{at}: \"recomputable\" names output \"{r}\", which this step does not have{}",
                            sst1mflow_base::text::suggestion(r, plan.outputs.iter().map(|o| o.role.as_str()))
                        )));
                    }
                }
                plan.outputs.iter().map(|o| roles.contains(&o.role)).collect()
            }
        };
        // Stages see what their key saw (see `canonical_value`).
        let (params, params_canon) = canonical_value(&step.params);
        let (cfg, config_canon) = canonical_value(&cfg);
        infos.push(StepInfo {
            recomputable,
            name: step.name.clone(),
            stage,
            params_canon: Arc::new(params_canon),
            params: Arc::new(params),
            config_canon: Arc::new(config_canon),
            config: Arc::new(cfg),
            plan: Arc::new(plan),
            wanted,
        });
    }
    for (s, role) in &recipe.outputs {
        if !infos[*s].plan.outputs.iter().any(|o| &o.role == role) {
            return Err(Error::msg(format!(
                "{}: outputs: step \"{}\" has no output \"{role}\"{}",
                recipe.file.display(),
                infos[*s].name,
                sst1mflow_base::text::suggestion(role, infos[*s].plan.outputs.iter().map(|o| o.role.as_str()))
            )));
        }
    }
    let mut report = ConfigReport { file: recipe.config.clone(), ..ConfigReport::default() };
    let mut warnings = Vec::new();
    for (key, template, steps) in similar {
        let quoted: Vec<String> = steps.iter().map(|s| format!("\"{s}\"")).collect();
        let names =
            if steps.len() == 1 { format!("step {}", quoted[0]) } else { format!("steps {}", quoted.join(", ")) };
        let w = template.replace('\u{0}', &names);
        if !warnings.contains(&w) {
            warnings.push(w.clone());
            report.warnings.push(ConfigWarning::new(key, w));
        }
    }
    if let Some(config) = &config {
        let steps: Vec<(String, &StagePlan)> = infos.iter().map(|i| (i.name.clone(), &*i.plan)).collect();
        report.uses = config::account(config, &steps);
        if let Some(hint) = pipeline.config_key_hint() {
            for u in report.uses.iter().filter(|u| u.is_unread()) {
                if let Some(h) = hint(&u.key) {
                    report.hints.insert(u.key.clone(), h);
                }
            }
        }
    }
    Ok((recipe, infos, warnings, report))
}

pub(super) fn build_nodes(recipe: &Recipe, raw: &[Vec<RawItem>], infos: &[StepInfo]) -> Vec<Node> {
    let mut nodes: Vec<Node> = Vec::new();
    let mut step_nodes: Vec<Vec<usize>> = Vec::new();
    for (si, step) in recipe.steps.iter().enumerate() {
        let output_index =
            |s: usize, role: &str| infos[s].plan.outputs.iter().position(|o| o.role == role).expect("checked");
        let all_refs = |src: &Source, step_nodes: &Vec<Vec<usize>>| -> Vec<Ref> {
            match src {
                Source::InputSet(set) => (0..raw[*set].len()).map(|file| Ref::Raw { set: *set, file }).collect(),
                Source::StepOutput { step: s, role } => {
                    let output = output_index(*s, role);
                    step_nodes[*s].iter().map(|&node| Ref::Out { node, output }).collect()
                }
            }
        };
        // A role may list several sources: its files are theirs, in the order given.
        let refs_of = |role: &str, step_nodes: &Vec<Vec<usize>>| -> Vec<Ref> {
            step.inputs.iter().filter(|(r, _)| r == role).flat_map(|(_, src)| all_refs(src, step_nodes)).collect()
        };
        let mut roles: Vec<&String> = Vec::new();
        for (r, _) in &step.inputs {
            if !roles.contains(&r) {
                roles.push(r);
            }
        }
        let fan = step.foreach.as_ref().map(|role| (role.clone(), refs_of(role, &step_nodes)));
        let mut mine = Vec::new();
        let count = fan.as_ref().map(|(_, refs)| refs.len()).unwrap_or(1);
        for i in 0..count {
            let mut inputs = Vec::new();
            let (mut label, mut metadata) = ("all".to_string(), Map::new());
            for &role in &roles {
                let refs = match &fan {
                    Some((fan_role, fan_refs)) if fan_role == role => {
                        let r = fan_refs[i];
                        match r {
                            Ref::Raw { set, file } => {
                                label = raw[set][file].label.clone();
                                metadata = raw[set][file].metadata.clone();
                            }
                            Ref::Out { node, .. } => {
                                // Items fanned out from several steps are told apart by step.
                                let up = &nodes[node];
                                let sources = step.inputs.iter().filter(|(r, _)| r == role).count();
                                let up_step = &recipe.steps[up.step].name;
                                label = match (sources > 1, up.label.as_str()) {
                                    (false, l) => l.to_string(),
                                    (true, "all") => up_step.clone(),
                                    (true, l) => format!("{up_step}-{l}"),
                                };
                                metadata = up.metadata.clone();
                            }
                        }
                        vec![r]
                    }
                    _ => refs_of(role, &step_nodes),
                };
                inputs.push((role.clone(), refs));
            }
            let mut deps: Vec<usize> = inputs
                .iter()
                .flat_map(|(_, refs)| refs.iter())
                .filter_map(|r| match r {
                    Ref::Out { node, .. } => Some(*node),
                    Ref::Raw { .. } => None,
                })
                .collect();
            deps.sort_unstable();
            deps.dedup();
            mine.push(nodes.len());
            nodes.push(Node { step: si, label, metadata, inputs, deps });
        }
        step_nodes.push(mine);
    }
    nodes
}
