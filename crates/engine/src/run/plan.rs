//! Planning: the recipe and its config loaded and checked, every step's stage plan and config
//! subset, and the activity DAG (one node per fan-out item) with each input's source, all
//! before anything runs or is hashed.
use super::inputs::RawItem;
use crate::config;
use crate::key::canonical_json;
use crate::recipe::{self, Recipe, Source};
use crate::stage::{Pipeline, Stage, StagePlan};
use serde_json::{Map, Value};
use sst1mflow_base::error::{Error, Result};
use std::path::Path;
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
}

pub(super) struct Node {
    pub(super) step: usize,
    pub(super) label: String,
    pub(super) metadata: Map<String, Value>,
    pub(super) inputs: Vec<(String, Vec<Ref>)>,
    pub(super) deps: Vec<usize>,
}

/// Loads the recipe and its config and checks every step before anything runs.
pub(super) fn prepare(pipeline: &Pipeline, recipe_path: &Path) -> Result<(Recipe, Vec<StepInfo>, Vec<String>)> {
    let mut warnings = Vec::new();
    let mut similar: Vec<(String, Vec<String>)> = Vec::new();
    let recipe = recipe::load(recipe_path, &pipeline.stage_names())?;
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
        let plan = stage.plan(&step.params, &roles, &at)?;
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
        let cfg = config::subset(config.as_ref().zip(recipe.config.as_deref()), &plan.config_keys, &at)?;
        if let Some(file) = recipe.config.as_deref() {
            // The same notice from several steps is shown once, naming them all.
            let named = format!("step \"{}\"", step.name);
            if let Some(check_schema) = pipeline.config_schema().filter(|_| stage.uses_config_schema()) {
                check_schema(&cfg, file, &named)?;
            }
            for w in stage.check_config(&cfg, file, &named)? {
                let template = w.replace(&named, "\u{0}");
                match similar.iter_mut().find(|(t, _)| *t == template) {
                    Some((_, steps)) => steps.push(step.name.clone()),
                    None => similar.push((template, vec![step.name.clone()])),
                }
            }
        }
        let wanted = plan
            .outputs
            .iter()
            .map(|o| recipe.outputs.is_empty() || recipe.outputs.iter().any(|(s, r)| *s == i && *r == o.role))
            .collect();
        infos.push(StepInfo {
            name: step.name.clone(),
            stage,
            params_canon: Arc::new(canonical_json(&step.params)),
            params: Arc::new(step.params.clone()),
            config_canon: Arc::new(canonical_json(&cfg)),
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
    for (template, steps) in similar {
        let quoted: Vec<String> = steps.iter().map(|s| format!("\"{s}\"")).collect();
        let names =
            if steps.len() == 1 { format!("step {}", quoted[0]) } else { format!("steps {}", quoted.join(", ")) };
        let w = template.replace('\u{0}', &names);
        if !warnings.contains(&w) {
            warnings.push(w);
        }
    }
    Ok((recipe, infos, warnings))
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
