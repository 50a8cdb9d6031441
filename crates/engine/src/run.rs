//! Planning and local execution of a recipe.
//!
//! Planning expands every step into activities (one per fan-out item, or one for the whole
//! step) with their dependencies, before anything runs. Execution walks that DAG: an activity
//! becomes ready when the activities it depends on are done; its key is then computed from the
//! content hashes of its actual inputs (so an upstream rerun that produced identical bytes does
//! not force a downstream rerun). A key already recorded with intact outputs is reused; anything
//! else goes to the worker pool.
//!
//! Workers run activities under a per-key file lock and re-check the database once they hold
//! it, so two processes running the same recipe against one store compute each activity once.
//! Each worker has its own database connection and records its activity in one transaction
//! after publishing the outputs. The coordinator thread only reads, plus one final batch of
//! recipe-slot updates (the baseline for "why does this rerun").
//!
//! A failed activity records its log and error and registers no output; activities that need
//! its outputs are skipped; independent branches go on.
use crate::key::{activity_key, canonical_json, KeyInput, KeyMaterial, KEY_SCHEMA_VERSION};
use crate::provenance::manifest::{self, Manifest, ManifestProduct, Slot};
use crate::provenance::{host_name, now_utc, Db, ProductRecord, StatFingerprint};
use crate::recipe::{self, Recipe, Source};
use crate::stage::{config_subset, InputFile, Pipeline, Stage, StageContext, StagePlan};
use crate::store::Store;
use crate::why::{self, StaleReason};
use serde_json::{json, Map, Value};
use sst1mflow_base::error::{Error, Result};
use std::collections::{BTreeMap, VecDeque};
use std::io::{IsTerminal, Write};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Failures reported live on stderr before the rest are left to the summary.
const LIVE_FAILURE_LINES: usize = 20;

/// Longest log kept per activity (its tail).
const MAX_LOG_BYTES: usize = 1 << 20;

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub jobs: usize,
    pub dry_run: bool,
    /// Show a progress line on stderr (the CLI sets this only for terminals without --quiet).
    pub progress: bool,
}

/// What happened (or would happen) to one activity.
#[derive(Clone, Debug, PartialEq)]
pub enum Outcome {
    Ran,
    Reused,
    Failed(String),
    Skipped(String),
    /// Dry run: would run for this reason.
    WouldRun(StaleReason),
    /// Dry run: waits for an upstream activity that would run first; key not yet known.
    WouldRunAfter(String),
}

#[derive(Clone, Debug)]
pub struct ActivityReport {
    pub step: String,
    pub item: String,
    pub key: Option<String>,
    pub outcome: Outcome,
    /// Why it ran (for activities that ran or failed).
    pub reason: Option<StaleReason>,
    pub outputs: Vec<(String, String)>,
    /// File names of the products it makes (declared outputs), for people.
    pub output_files: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct RunReport {
    pub recipe: String,
    pub dry_run: bool,
    /// Settings read but not implemented yet, and similar notices found while planning.
    pub warnings: Vec<String>,
    pub activities: Vec<ActivityReport>,
    pub elapsed: Duration,
}

impl RunReport {
    pub fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.activities.iter().filter(|a| f(&a.outcome)).count()
    }

    pub fn success(&self) -> bool {
        self.count(|o| matches!(o, Outcome::Failed(_) | Outcome::Skipped(_))) == 0
    }

    pub fn to_json(&self) -> Value {
        let acts: Vec<Value> = self
            .activities
            .iter()
            .map(|a| {
                let (outcome, detail) = match &a.outcome {
                    Outcome::Ran => ("ran", None),
                    Outcome::Reused => ("reused", None),
                    Outcome::Failed(e) => ("failed", Some(e.clone())),
                    Outcome::Skipped(e) => ("skipped", Some(e.clone())),
                    Outcome::WouldRun(_) => ("would-run", None),
                    Outcome::WouldRunAfter(u) => ("would-run-after-upstream", Some(u.clone())),
                };
                let outputs: Map<String, Value> =
                    a.outputs.iter().map(|(r, h)| (r.clone(), Value::String(h.clone()))).collect();
                json!({"step": a.step, "item": a.item, "key": a.key, "outcome": outcome,
                       "reason": a.reason.as_ref().map(|r| r.to_string()),
                       "stale_reason": a.reason.as_ref().map(StaleReason::to_json),
                       "detail": detail, "outputs": outputs})
            })
            .collect();
        json!({
            "recipe": self.recipe,
            "dry_run": self.dry_run,
            "warnings": self.warnings,
            "ran": self.count(|o| *o == Outcome::Ran),
            "reused": self.count(|o| *o == Outcome::Reused),
            "failed": self.count(|o| matches!(o, Outcome::Failed(_))),
            "skipped": self.count(|o| matches!(o, Outcome::Skipped(_))),
            "would_run": self.count(|o| matches!(o, Outcome::WouldRun(_) | Outcome::WouldRunAfter(_))),
            "elapsed_s": self.elapsed.as_secs_f64(),
            "activities": acts,
        })
    }
}

/// One registered raw input file.
struct RawItem {
    hash: String,
    label: String,
    metadata: Map<String, Value>,
}

/// Where one input of an activity comes from.
#[derive(Clone, Copy)]
enum Ref {
    Raw { set: usize, file: usize },
    Out { node: usize, output: usize },
}

/// Per-step facts shared by all its activities.
struct StepInfo {
    name: String,
    stage: &'static dyn Stage,
    plan: Arc<StagePlan>,
    params: Arc<Value>,
    params_canon: Arc<String>,
    config: Arc<Value>,
    config_canon: Arc<String>,
    wanted: Vec<bool>,
}

struct Node {
    step: usize,
    label: String,
    metadata: Map<String, Value>,
    inputs: Vec<(String, Vec<Ref>)>,
    deps: Vec<usize>,
}

#[derive(Clone)]
struct Produced {
    hash: String,
}

struct Job {
    node: usize,
    key: String,
    step: usize,
    recipe: String,
    inputs: Vec<(String, u32, String)>,
    /// The file name each input is presented under (parallel to `inputs`).
    input_names: Vec<String>,
    metadata: Map<String, Value>,
    label: String,
}

struct JobResult {
    node: usize,
    /// Ok((output hashes in plan order, true if ran here / false if another process had it))
    result: std::result::Result<(Vec<String>, bool), String>,
}

/// Loads the recipe and its config and checks every step before anything runs.
fn prepare(pipeline: &Pipeline, recipe_path: &Path) -> Result<(Recipe, Vec<StepInfo>, Vec<String>)> {
    let mut warnings = Vec::new();
    let mut similar: Vec<(String, Vec<String>)> = Vec::new();
    let recipe = recipe::load(recipe_path, &pipeline.stage_names())?;
    let config: Option<Value> = match &recipe.config {
        Some(p) => {
            let text =
                std::fs::read_to_string(p).map_err(|e| Error::io(format!("cannot read config {}", p.display()), e))?;
            let v: Value = serde_json::from_str(&text)
                .map_err(|e| Error::msg(format!("config {}: not valid JSON: {e}", p.display())))?;
            if !v.is_object() {
                return Err(Error::msg(format!("config {}: must be a JSON object", p.display())));
            }
            Some(v)
        }
        None => None,
    };
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
        let cfg = config_subset(config.as_ref().zip(recipe.config.as_deref()), &plan.config_keys, &at)?;
        if let Some(file) = recipe.config.as_deref() {
            // The same notice from several steps is shown once, naming them all.
            let named = format!("step \"{}\"", step.name);
            if let Some(check_schema) = pipeline.config_schema() {
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

fn fingerprint(m: &std::fs::Metadata) -> StatFingerprint {
    StatFingerprint {
        dev: m.dev() as i64,
        ino: m.ino() as i64,
        size: m.size() as i64,
        mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
    }
}

/// Hashes (dry run) or imports (real run) every raw input, skipping the re-hash of files whose
/// stat fingerprint is unchanged and whose object is intact.
fn register_inputs(
    store: &Store,
    db: &Db,
    recipe: &Recipe,
    dry_run: bool,
    progress: &mut Progress,
) -> Result<Vec<Vec<RawItem>>> {
    let total: usize = recipe.inputs.iter().map(|s| s.files.len()).sum();
    let mut seen = 0;
    let mut sets = Vec::new();
    // Lookups run inside one read transaction (one lock, not one per statement); it is closed
    // before any import, so no lock is held while a large file is copied.
    db.begin()?;
    let mut reading = true;
    for set in &recipe.inputs {
        let mut items = Vec::with_capacity(set.files.len());
        for (path, label) in &set.files {
            seen += 1;
            progress.registering(seen, total);
            let abs = std::fs::canonicalize(path)
                .map_err(|e| Error::io(format!("cannot resolve input {}", path.display()), e))?;
            let abs_str = abs.to_string_lossy().to_string();
            let meta =
                std::fs::metadata(&abs).map_err(|e| Error::io(format!("cannot stat input {}", abs.display()), e))?;
            let fp = fingerprint(&meta);
            let cached = db.cached_input(&abs_str, &fp)?;
            let hash = match cached {
                Some(h) if dry_run || store.object_intact(&h, meta.size()) => h,
                _ if dry_run => crate::store::hash_file(&abs)?.hash,
                _ => {
                    if reading {
                        db.commit()?;
                        reading = false;
                    }
                    let d = store.import_file(&abs)?;
                    let mut metadata = set.metadata.clone();
                    metadata.insert("file_name".into(), Value::String(label.clone()));
                    db.add_product(&ProductRecord {
                        hash: d.hash.clone(),
                        kind: set.kind.clone(),
                        size: d.size,
                        metadata: canonical_json(&Value::Object(metadata)),
                    })?;
                    // Remember the fingerprint read before hashing: if the file changed while
                    // we read it, the next run sees a different fingerprint and hashes again.
                    db.remember_input(&abs_str, &fp, &d.hash)?;
                    d.hash
                }
            };
            if let Some(p) = db.product(&hash)? {
                if let Some(why) = db.product_invalid(&p.hash)? {
                    if !dry_run {
                        return Err(Error::msg(format!(
                            "input {} (sha256 {}) was invalidated: {why}; replace the file before running",
                            abs.display(),
                            p.hash
                        )));
                    }
                }
            }
            let mut metadata = set.metadata.clone();
            metadata.insert("file_name".into(), Value::String(label.clone()));
            items.push(RawItem { hash, label: label.clone(), metadata });
            if !reading {
                db.begin()?;
                reading = true;
            }
        }
        sets.push(items);
    }
    db.commit()?;
    Ok(sets)
}

fn build_nodes(recipe: &Recipe, raw: &[Vec<RawItem>], infos: &[StepInfo]) -> Vec<Node> {
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

/// A one-line progress display on stderr, redrawn at most ten times a second.
struct Progress {
    enabled: bool,
    total: usize,
    jobs: usize,
    last: Instant,
}

impl Progress {
    fn due(&mut self, force: bool) -> bool {
        if !self.enabled || (!force && self.last.elapsed() < Duration::from_millis(100)) {
            return false;
        }
        self.last = Instant::now();
        true
    }

    fn registering(&mut self, done: usize, total: usize) {
        if self.due(done == total) {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[Kregistering inputs {done}/{total}");
        }
    }

    fn show(&mut self, done: usize, ran: usize, reused: usize, failed: usize, dispatched: usize, force: bool) {
        if !self.due(force) {
            return;
        }
        let running = dispatched.min(self.jobs);
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[K[{done:>w$}/{}] ran {ran} · reused {reused} · failed {failed} · running {running} · queued {}",
            self.total,
            dispatched - running,
            w = self.total.to_string().len()
        );
        let _ = err.flush();
    }

    fn finish(&self) {
        if self.enabled {
            let _ = write!(std::io::stderr(), "\r\x1b[K");
        }
    }
}

/// Plans and runs (or, with `dry_run`, explains) a recipe against a store.
pub fn run_recipe(pipeline: &Pipeline, store: &Store, recipe_path: &Path, opts: &RunOptions) -> Result<RunReport> {
    let started = Instant::now();
    let (recipe, infos, warnings) = prepare(pipeline, recipe_path)?;
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    let db = Db::open(&store.db_path())?;
    // Shared with other runs, exclusive with `gc --delete`: nothing is deleted under us.
    let _gc_guard = if opts.dry_run { None } else { Some(crate::store::gc::guard(store, false)?) };
    if !opts.dry_run {
        store.clean_stale_tmp()?;
    }
    let mut progress = Progress {
        enabled: opts.progress,
        total: 0,
        jobs: opts.jobs.max(1),
        last: Instant::now() - Duration::from_secs(1),
    };
    let raw = register_inputs(store, &db, &recipe, opts.dry_run, &mut progress)?;
    let nodes = build_nodes(&recipe, &raw, &infos);
    let pipeline_version = pipeline.version().to_string();
    let n = nodes.len();

    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut remaining: Vec<usize> = vec![0; n];
    for (i, node) in nodes.iter().enumerate() {
        remaining[i] = node.deps.len();
        for &d in &node.deps {
            dependents[d].push(i);
        }
    }
    let mut outcome: Vec<Option<Outcome>> = vec![None; n];
    let mut keys: Vec<Option<String>> = vec![None; n];
    let mut reasons: Vec<Option<StaleReason>> = vec![None; n];
    let mut produced: Vec<Option<Vec<Produced>>> = vec![None; n];
    let mut ready: VecDeque<usize> = (0..n).filter(|&i| remaining[i] == 0).collect();
    progress.total = n;
    let (mut ran, mut reused, mut failed) = (0usize, 0usize, 0usize);
    let mut done = 0usize;
    let mut running = 0usize;

    let infos = Arc::new(infos);
    let (job_tx, job_rx) = mpsc::channel::<Job>();
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (res_tx, res_rx) = mpsc::channel::<JobResult>();
    let workers = if opts.dry_run { 0 } else { opts.jobs.max(1) };

    std::thread::scope(|scope| -> Result<()> {
        for _ in 0..workers {
            let job_rx = Arc::clone(&job_rx);
            let res_tx = res_tx.clone();
            let infos = Arc::clone(&infos);
            let pv = pipeline_version.clone();
            scope.spawn(move || {
                let mut db: Option<Db> = None;
                loop {
                    let job = match job_rx.lock().expect("job queue").recv() {
                        Ok(j) => j,
                        Err(_) => break,
                    };
                    let node = job.node;
                    let result = match &mut db {
                        Some(db) => execute(store, db, &infos[job.step], &pv, job),
                        None => match Db::open(&store.db_path()) {
                            Ok(opened) => execute(store, db.insert(opened), &infos[job.step], &pv, job),
                            Err(e) => Err(e.to_string()),
                        },
                    };
                    if res_tx.send(JobResult { node, result }).is_err() {
                        break;
                    }
                }
            });
        }
        drop(res_tx);

        // Marks `start` finished and resolves everything that becomes decidable.
        let settle = |start: usize,
                      outcome: &mut Vec<Option<Outcome>>,
                      remaining: &mut Vec<usize>,
                      ready: &mut VecDeque<usize>,
                      done: &mut usize| {
            let mut stack = vec![start];
            while let Some(i) = stack.pop() {
                *done += 1;
                for &d in &dependents[i] {
                    remaining[d] -= 1;
                    if remaining[d] > 0 {
                        continue;
                    }
                    let blocker = nodes[d].deps.iter().find_map(|&u| match &outcome[u] {
                        Some(Outcome::Failed(_)) | Some(Outcome::Skipped(_)) => Some((u, false)),
                        Some(Outcome::WouldRun(_)) | Some(Outcome::WouldRunAfter(_)) => Some((u, true)),
                        _ => None,
                    });
                    match blocker {
                        None => ready.push_back(d),
                        Some((u, dry)) => {
                            let name = format!("{}/{}", infos[nodes[u].step].name, nodes[u].label);
                            outcome[d] = Some(if dry {
                                Outcome::WouldRunAfter(name)
                            } else {
                                Outcome::Skipped(format!("needs {name}, which did not complete"))
                            });
                            stack.push(d);
                        }
                    }
                }
            }
        };

        loop {
            if !ready.is_empty() {
                db.begin()?;
                while let Some(i) = ready.pop_front() {
                    let node = &nodes[i];
                    let info = &infos[node.step];
                    let mut inputs: Vec<(String, u32, String)> = Vec::new();
                    let mut input_names: Vec<String> = Vec::new();
                    for (role, refs) in &node.inputs {
                        for (pos, r) in refs.iter().enumerate() {
                            let (hash, name) = match *r {
                                Ref::Raw { set, file } => (raw[set][file].hash.clone(), raw[set][file].label.clone()),
                                Ref::Out { node: u, output } => (
                                    produced[u].as_ref().expect("dependency done")[output].hash.clone(),
                                    infos[nodes[u].step].plan.outputs[output].file_name(),
                                ),
                            };
                            inputs.push((role.clone(), pos as u32, hash));
                            input_names.push(name);
                        }
                    }
                    let key_inputs: Vec<KeyInput> = inputs
                        .iter()
                        .map(|(role, position, hash)| KeyInput {
                            role: role.clone(),
                            position: *position,
                            hash: hash.clone(),
                        })
                        .collect();
                    let key = activity_key(&KeyMaterial {
                        stage: info.stage.name(),
                        stage_version: info.stage.version(),
                        pipeline_version: &pipeline_version,
                        config: &info.config_canon,
                        params: &info.params_canon,
                        inputs: &key_inputs,
                    });
                    keys[i] = Some(key.clone());
                    let cached = db.find_ok_activity(&key)?.filter(|c| {
                        c.outputs.len() == info.plan.outputs.len()
                            && c.outputs.iter().all(|(_, h, size)| store.object_intact(h, *size))
                    });
                    if let Some(c) = cached {
                        let by_role: BTreeMap<&str, &str> =
                            c.outputs.iter().map(|(r, h, _)| (r.as_str(), h.as_str())).collect();
                        let outs: Option<Vec<Produced>> = info
                            .plan
                            .outputs
                            .iter()
                            .map(|o| by_role.get(o.role.as_str()).map(|h| Produced { hash: h.to_string() }))
                            .collect();
                        if let Some(outs) = outs {
                            produced[i] = Some(outs);
                            outcome[i] = Some(Outcome::Reused);
                            reused += 1;
                            settle(i, &mut outcome, &mut remaining, &mut ready, &mut done);
                            continue;
                        }
                    }
                    let reason = why::reason(
                        &db,
                        &recipe.name,
                        &info.name,
                        &node.label,
                        &why::Planned {
                            key: &key,
                            stage: info.stage.name(),
                            stage_version: info.stage.version(),
                            pipeline_version: &pipeline_version,
                            config: &info.config_canon,
                            params: &info.params_canon,
                            inputs: &inputs,
                        },
                    )?;
                    reasons[i] = Some(reason.clone());
                    if opts.dry_run {
                        outcome[i] = Some(Outcome::WouldRun(reason));
                        settle(i, &mut outcome, &mut remaining, &mut ready, &mut done);
                        continue;
                    }
                    job_tx
                        .send(Job {
                            node: i,
                            key,
                            step: node.step,
                            recipe: recipe.name.clone(),
                            inputs,
                            input_names,
                            metadata: node.metadata.clone(),
                            label: node.label.clone(),
                        })
                        .map_err(|_| Error::msg("worker pool stopped unexpectedly"))?;
                    running += 1;
                }
                db.commit()?;
            }
            progress.show(done, ran, reused, failed, running, false);
            if running == 0 {
                break;
            }
            let res = res_rx.recv().map_err(|_| Error::msg("worker pool stopped unexpectedly"))?;
            running -= 1;
            let i = res.node;
            match res.result {
                Ok((hashes, ran_here)) => {
                    produced[i] = Some(hashes.into_iter().map(|hash| Produced { hash }).collect());
                    if ran_here {
                        ran += 1;
                        outcome[i] = Some(Outcome::Ran);
                    } else {
                        reused += 1;
                        outcome[i] = Some(Outcome::Reused);
                    }
                }
                Err(e) => {
                    failed += 1;
                    let name = format!("{}/{}", infos[nodes[i].step].name, nodes[i].label);
                    if opts.progress {
                        let _ = write!(std::io::stderr(), "\r\x1b[K");
                    }
                    if failed <= LIVE_FAILURE_LINES {
                        eprintln!(
                            "FAILED {name}: {e}\n       log: sst1mflow log {}",
                            &keys[i].as_deref().unwrap_or("")[..16]
                        );
                    } else if failed == LIVE_FAILURE_LINES + 1 {
                        eprintln!("(further failures are listed in the summary)");
                    }
                    outcome[i] = Some(Outcome::Failed(e));
                }
            }
            settle(i, &mut outcome, &mut remaining, &mut ready, &mut done);
        }
        drop(job_tx);
        Ok(())
    })?;
    progress.show(done, ran, reused, failed, running, true);
    progress.finish();

    if !opts.dry_run {
        record_slots_and_views(store, &db, &recipe, &infos, &nodes, &keys, &outcome, &produced)?;
    } else {
        // Activities waiting on an upstream rerun have no key yet; if what last ran in their
        // slot was invalidated, say so as well.
        for (i, node) in nodes.iter().enumerate() {
            if let Some(Outcome::WouldRunAfter(_)) = &outcome[i] {
                if let Some(key) = db.slot_key(&recipe.name, &infos[node.step].name, &node.label)? {
                    if let Some(why) = db.activity_by_key(&key)?.and_then(|a| a.invalid) {
                        reasons[i] = Some(StaleReason::Invalidated(why));
                    }
                }
            }
        }
    }
    let activities = nodes
        .iter()
        .enumerate()
        .map(|(i, node)| {
            let info = &infos[node.step];
            ActivityReport {
                step: info.name.clone(),
                item: node.label.clone(),
                key: keys[i].clone(),
                outcome: outcome[i].clone().unwrap_or(Outcome::Skipped("not reached".into())),
                reason: reasons[i].clone(),
                output_files: info.plan.outputs.iter().map(|o| o.file_name()).collect(),
                outputs: produced[i]
                    .as_ref()
                    .map(|p| info.plan.outputs.iter().zip(p).map(|(o, p)| (o.role.clone(), p.hash.clone())).collect())
                    .unwrap_or_default(),
            }
        })
        .collect();
    Ok(RunReport {
        recipe: recipe.name.clone(),
        dry_run: opts.dry_run,
        warnings,
        activities,
        elapsed: started.elapsed(),
    })
}

#[allow(clippy::too_many_arguments)]
fn record_slots_and_views(
    store: &Store,
    db: &Db,
    recipe: &Recipe,
    infos: &[StepInfo],
    nodes: &[Node],
    keys: &[Option<String>],
    outcome: &[Option<Outcome>],
    produced: &[Option<Vec<Produced>>],
) -> Result<()> {
    let slots_name = manifest::slots_file(&recipe.name);
    let mut slots = manifest::read_map(store.root(), &slots_name)?;
    let before = slots.clone();
    db.begin_immediate()?;
    for (i, node) in nodes.iter().enumerate() {
        if let (Some(key), Some(Outcome::Ran | Outcome::Reused | Outcome::Failed(_))) = (&keys[i], &outcome[i]) {
            db.set_slot_key(&recipe.name, &infos[node.step].name, &node.label, key)?;
            slots.insert(format!("{}\u{1f}{}", infos[node.step].name, node.label), key.clone());
        }
    }
    let recipe_path = std::path::absolute(&recipe.file).unwrap_or_else(|_| recipe.file.clone());
    let recipe_path = recipe_path.to_string_lossy().to_string();
    db.record_recipe(&recipe.name, &recipe_path)?;
    db.commit()?;
    if slots != before {
        manifest::write_map(store.root(), &slots_name, &slots)?;
    }
    let mut recipes = manifest::read_map(store.root(), "recipes.json")?;
    if recipes.get(&recipe.name) != Some(&recipe_path) {
        recipes.insert(recipe.name.clone(), recipe_path);
        manifest::write_map(store.root(), "recipes.json", &recipes)?;
    }
    let views = store.views_dir().join(&recipe.name);
    for (i, node) in nodes.iter().enumerate() {
        let (Some(outs), Some(Outcome::Ran | Outcome::Reused)) = (&produced[i], &outcome[i]) else { continue };
        let info = &infos[node.step];
        for ((declared, p), wanted) in info.plan.outputs.iter().zip(outs).zip(&info.wanted) {
            if !wanted {
                continue;
            }
            let link = views.join(&info.name).join(&node.label).join(declared.file_name());
            let target = store.object_path(&p.hash);
            update_link(&link, &target)?;
        }
    }
    Ok(())
}

/// Points `link` at `target` (absolute, so views stay valid when copied around), replacing an
/// older link atomically; untouched when it already points there.
fn update_link(link: &Path, target: &Path) -> Result<()> {
    let target = std::path::absolute(target).unwrap_or_else(|_| target.to_path_buf());
    if std::fs::read_link(link).map(|t| t == target).unwrap_or(false) {
        return Ok(());
    }
    let dir = link.parent().expect("view link has a parent");
    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    let tmp = dir.join(format!(".link-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&target, &tmp)
        .map_err(|e| Error::io(format!("cannot create link {}", tmp.display()), e))?;
    std::fs::rename(&tmp, link).map_err(|e| Error::io(format!("cannot create view {}", link.display()), e))?;
    Ok(())
}

/// Runs one activity in a worker: lock, re-check, run, publish, record.
fn execute(
    store: &Store,
    db: &mut Db,
    info: &StepInfo,
    pipeline_version: &str,
    job: Job,
) -> std::result::Result<(Vec<String>, bool), String> {
    let lock = store.lock_activity(&job.key).map_err(|e| e.to_string())?;
    if let Some(c) = db.find_ok_activity(&job.key).map_err(|e| e.to_string())? {
        let by_role: BTreeMap<&str, &str> = c.outputs.iter().map(|(r, h, _)| (r.as_str(), h.as_str())).collect();
        let intact = c.outputs.iter().all(|(_, h, size)| store.object_intact(h, *size));
        let outs: Option<Vec<String>> =
            info.plan.outputs.iter().map(|o| by_role.get(o.role.as_str()).map(|h| h.to_string())).collect();
        if let (true, Some(outs)) = (intact, outs) {
            return Ok((outs, false));
        }
    }
    let started_at = now_utc();
    let mut log: Vec<u8> = Vec::new();
    let _ = writeln!(
        log,
        "# activity {}\n# stage {} v{} · pipeline {}\n# step {} · item {}\n# started {} on {}",
        job.key,
        info.stage.name(),
        info.stage.version(),
        pipeline_version,
        info.name,
        job.label,
        started_at,
        host_name()
    );
    let mut outputs: Vec<(String, ProductRecord)> = Vec::new();
    let result: Result<()> = (|| {
        let wd = store.work_dir(&job.key[..16])?;
        let mut paths: BTreeMap<String, Vec<InputFile>> = BTreeMap::new();
        for ((role, position, hash), name) in job.inputs.iter().zip(&job.input_names) {
            paths.entry(role.clone()).or_default().push(InputFile {
                role: role.clone(),
                position: *position,
                hash: hash.clone(),
                path: store.object_path(hash),
                name: name.clone(),
            });
        }
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            info.stage.run(&mut StageContext {
                inputs: &paths,
                params: &info.params,
                config: &info.config,
                plan: &info.plan,
                work_dir: &wd.path,
                activity_key: &job.key,
                pipeline_version,
                log: &mut log,
            })
        }));
        match run {
            Ok(r) => r?,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "unknown panic".into());
                return Err(Error::msg(format!("stage {} panicked: {what}", info.stage.name())));
            }
        }
        for declared in &info.plan.outputs {
            let d = store.publish(&wd.path.join(&declared.file))?;
            outputs.push((
                declared.role.clone(),
                ProductRecord {
                    hash: d.hash,
                    kind: declared.kind.clone(),
                    size: d.size,
                    metadata: canonical_json(&Value::Object(job.metadata.clone())),
                },
            ));
        }
        Ok(())
    })();
    let ended_at = now_utc();
    let error = result.as_ref().err().map(|e| e.to_string());
    if let Some(e) = &error {
        let _ = writeln!(log, "# FAILED: {e}");
    }
    let mut used = Vec::with_capacity(job.inputs.len());
    for (role, position, hash) in &job.inputs {
        let p = db
            .product(hash)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("input product {hash} is not registered"))?;
        used.push(ManifestProduct {
            role: role.clone(),
            position: *position,
            hash: p.hash,
            kind: p.kind,
            size: p.size,
            metadata: p.metadata,
        });
    }
    let ok = error.is_none();
    let m = Manifest {
        sst1mflow_manifest: manifest::MANIFEST_FORMAT,
        key: job.key.clone(),
        key_schema: KEY_SCHEMA_VERSION,
        stage: info.stage.name().to_string(),
        stage_version: info.stage.version().to_string(),
        pipeline_version: pipeline_version.to_string(),
        config: (*info.config_canon).clone(),
        params: (*info.params_canon).clone(),
        status: if ok { "ok" } else { "failed" }.to_string(),
        started_at,
        ended_at,
        host: host_name(),
        user: manifest::user_name(),
        log: tail_utf8(&log, MAX_LOG_BYTES),
        error: error.clone(),
        invalid: None,
        slot: Slot { recipe: job.recipe.clone(), step: info.name.clone(), item: job.label.clone() },
        used,
        generated: if ok {
            outputs
                .iter()
                .map(|(role, p)| ManifestProduct {
                    role: role.clone(),
                    position: 0,
                    hash: p.hash.clone(),
                    kind: p.kind.clone(),
                    size: p.size,
                    metadata: p.metadata.clone(),
                })
                .collect()
        } else {
            Vec::new()
        },
    };
    // Manifest first: a crash after it but before the commit leaves a manifest whose outputs
    // are durable, which `rebuild-db` may adopt; never a record without its manifest.
    manifest::write_manifest(store.root(), &m).map_err(|e| format!("could not write manifest: {e}"))?;
    db.record_activity(&m).map_err(|e| format!("could not record activity: {e}"))?;
    drop(lock);
    match error {
        Some(e) => Err(e),
        None => Ok((outputs.into_iter().map(|(_, p)| p.hash).collect(), true)),
    }
}

fn tail_utf8(bytes: &[u8], max: usize) -> String {
    if bytes.len() <= max {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let cut = bytes.len() - max;
    format!("[… {cut} earlier bytes dropped …]\n{}", String::from_utf8_lossy(&bytes[cut..]))
}

/// Whether progress should be shown: stderr is a terminal and the user did not ask for quiet.
pub fn want_progress(quiet: bool) -> bool {
    !quiet && std::io::stderr().is_terminal()
}
