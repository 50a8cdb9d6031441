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
//!
//! The parts: [`plan`] (recipe, config and the DAG), [`inputs`] (raw input registration),
//! [`schedule`] (readiness and outcomes), [`execute`] (one activity in a worker: lock,
//! re-check, [`crate::runner`], manifest, record), [`progress`] (the stderr line). This module
//! is the coordinator that ties them together and reports.
mod execute;
mod inputs;
mod plan;
mod progress;
mod recompute;
mod schedule;

pub use progress::want_progress;

/// The stat fingerprint of a file as the input cache and places record it.
pub fn stat_fingerprint(m: &std::fs::Metadata) -> crate::provenance::StatFingerprint {
    inputs::fingerprint(m)
}

use crate::key::{activity_key, canonical_value, KeyMaterial};
use crate::provenance::manifest;
use crate::provenance::Db;
use crate::recipe::Recipe;
use crate::stage::{InputFile, Pipeline};
use crate::store::Store;
use crate::why::{self, StaleReason};
use execute::{execute, reusable_outputs, Job, JobError, JobResult};
use inputs::register_inputs;
pub use plan::ConfigReport;
use plan::{build_nodes, prepare, Node, Ref, StepInfo};
use progress::Progress;
use recompute::{Recomputables, Waiter};
use schedule::Schedule;
use serde_json::{json, Map, Value};
use sst1mflow_base::error::{Error, Result};
use std::io::Write;
use std::path::Path;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// The most activities run at once (one worker thread each), whatever `-j` asks.
pub const MAX_JOBS: usize = 256;

/// Failures reported live on stderr before the rest are left to the summary.
const LIVE_FAILURE_LINES: usize = 20;

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub jobs: usize,
    pub dry_run: bool,
    /// Show a progress line on stderr (the CLI sets this only for terminals without --quiet).
    pub progress: bool,
    /// Run activities as SLURM jobs with these settings (`jobs` is then the most in flight);
    /// `None`: on local cores.
    pub slurm: Option<crate::slurm::SlurmSettings>,
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
    /// Some recomputable output is not in the store (deleted once consumed; remade when needed).
    pub recomputable_absent: bool,
    /// It was remade in this run because a consumer needed an output deleted once consumed.
    pub recomputed: bool,
}

#[derive(Clone, Debug)]
pub struct RunReport {
    pub recipe: String,
    pub dry_run: bool,
    /// Settings read but not implemented yet, and similar notices found while planning.
    pub warnings: Vec<String>,
    /// The recipe's config, key by key (applied, read without being applied, read by none).
    pub config: ConfigReport,
    pub activities: Vec<ActivityReport>,
    pub elapsed: Duration,
    /// What the run asked of SLURM, when it ran there.
    pub slurm_calls: Option<crate::slurm::tools::Calls>,
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
                       "recomputable_absent": a.recomputable_absent, "recomputed": a.recomputed,
                       "reason": a.reason.as_ref().map(|r| r.to_string()),
                       "stale_reason": a.reason.as_ref().map(StaleReason::to_json),
                       "detail": detail, "outputs": outputs})
            })
            .collect();
        json!({
            "recipe": self.recipe,
            "dry_run": self.dry_run,
            "warnings": self.warnings,
            "config_unread": self.config.unread().map(|u| json!({"key": u.key, "hint": self.config.hints.get(&u.key)})).collect::<Vec<_>>(),
            "ran": self.count(|o| *o == Outcome::Ran),
            "reused": self.count(|o| *o == Outcome::Reused),
            "failed": self.count(|o| matches!(o, Outcome::Failed(_))),
            "skipped": self.count(|o| matches!(o, Outcome::Skipped(_))),
            "would_run": self.count(|o| matches!(o, Outcome::WouldRun(_) | Outcome::WouldRunAfter(_))),
            "recomputed": self.activities.iter().filter(|a| a.recomputed).count(),
            "elapsed_s": self.elapsed.as_secs_f64(),
            "slurm": self.slurm_calls.map(|c| json!({"sbatch_calls": c.sbatch, "array_tasks": c.tasks,
                "squeue_calls": c.squeue, "sacct_calls": c.sacct, "scancel_calls": c.scancel})),
            "activities": acts,
        })
    }
}

/// Plans a recipe (with `config` in place of its own config file, if given) without touching
/// any store, and accounts for every key of its config: what `config check` shows.
pub fn check_recipe_config(pipeline: &Pipeline, recipe_path: &Path, config: Option<&Path>) -> Result<ConfigReport> {
    let (_, _, _, report) = prepare(pipeline, recipe_path, config)?;
    Ok(report)
}

/// Plans and runs (or, with `dry_run`, explains) a recipe against a store.
pub fn run_recipe(pipeline: &Pipeline, store: &Store, recipe_path: &Path, opts: &RunOptions) -> Result<RunReport> {
    let started = Instant::now();
    let (recipe, infos, warnings, config_report) = prepare(pipeline, recipe_path, None)?;
    for w in &warnings {
        eprintln!("warning: {w}");
    }
    if let Some(notice) = config_report.unread_notice() {
        let typo = !config_report.hints.is_empty();
        eprintln!("{}: {notice}", if typo { "warning" } else { "note" });
    }
    // A dry run (and `status`) only reads: on a full disk it still answers.
    let db = if opts.dry_run { Db::open_for_reading(&store.db_path())? } else { Db::open(&store.db_path())? };
    // Shared with other runs, exclusive with `gc --delete`: nothing is deleted under us.
    let _gc_guard = if opts.dry_run { None } else { Some(crate::maintenance::gc::guard(store, false)?) };
    if !opts.dry_run {
        store.clean_stale_tmp()?;
    }
    let jobs = opts.jobs.clamp(1, MAX_JOBS);
    if opts.jobs > MAX_JOBS {
        eprintln!("warning: -j {} is more than a run uses; running at most {MAX_JOBS} activities at a time", opts.jobs);
    }
    let mut progress =
        Progress { enabled: opts.progress, total: 0, jobs, last: Instant::now() - Duration::from_secs(1) };
    let slurm = match &opts.slurm {
        Some(settings) if !opts.dry_run => {
            let steps: Vec<&str> = infos.iter().map(|i| i.name.as_str()).collect();
            Some(crate::slurm::SlurmExecutor::start(settings.clone(), store, &pipeline.stage_names(), &steps)?)
        }
        _ => None,
    };
    let slurm_calls_before = crate::slurm::tools::calls();
    let raw = register_inputs(store, &db, &recipe, opts.dry_run, jobs, &mut progress)?;
    let nodes = build_nodes(&recipe, &raw, &infos);
    let pipeline_version = pipeline.version().to_string();
    let n = nodes.len();

    let raw_bytes = |node: &plan::Node| -> u64 {
        let refs = node.inputs.iter().flat_map(|(_, refs)| refs);
        refs.map(|r| match *r {
            Ref::Raw { set, file } => raw[set][file].size,
            Ref::Out { .. } => 0,
        })
        .sum()
    };
    let mut schedule = Schedule::new(&nodes, nodes.iter().map(raw_bytes).collect());
    let mut keys: Vec<Option<String>> = vec![None; n];
    let mut reasons: Vec<Option<StaleReason>> = vec![None; n];
    let mut produced: Vec<Option<Vec<String>>> = vec![None; n];
    // What each keyed activity was (or would be) given, kept so that it can be remade.
    let mut prepared: Vec<Option<Prepared>> = (0..n).map(|_| None).collect();
    let mut recomputed = vec![false; n];
    let mut books = Recomputables::new(&nodes, &infos);
    let mut deferred: Vec<usize> = Vec::new();
    // Consumed recomputable objects that were still in use when their last consumer finished.
    let mut pending_drops: Vec<String> = Vec::new();
    progress.total = n;
    let (mut ran, mut reused, mut failed) = (0usize, 0usize, 0usize);
    let mut running = 0usize;

    let infos = Arc::new(infos);
    let (job_tx, job_rx) = mpsc::channel::<Job>();
    let job_rx = Arc::new(Mutex::new(job_rx));
    let (res_tx, res_rx) = mpsc::channel::<JobResult>();
    let workers = if opts.dry_run { 0 } else { jobs };

    let (remote, monitor) = match slurm {
        Some((executor, monitor)) => (Some(executor), Some(monitor)),
        None => (None, None),
    };
    let remote = remote.as_ref();
    std::thread::scope(|scope| -> Result<()> {
        // The monitor serves the waiters until the coordinator is done with them, whichever way.
        struct StopMonitor<'a>(Option<&'a crate::slurm::SlurmExecutor>);
        impl Drop for StopMonitor<'_> {
            fn drop(&mut self) {
                if let Some(e) = self.0 {
                    e.shutdown();
                }
            }
        }
        let _stop_monitor = StopMonitor(remote);
        if let Some(monitor) = monitor {
            scope.spawn(move || monitor.run());
        }
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
                    let recompute = job.expect.is_some();
                    let result = match &mut db {
                        Some(db) => execute(store, db, &infos[job.step], &pv, remote, job),
                        None => match Db::open(&store.db_path()) {
                            Ok(opened) => execute(store, db.insert(opened), &infos[job.step], &pv, remote, job),
                            Err(e) => Err(JobError::Failed(e.to_string())),
                        },
                    };
                    if res_tx.send(JobResult { node, recompute, result }).is_err() {
                        break;
                    }
                }
            });
        }
        drop(res_tx);

        // A job for node `i`, to run it or (with `expect`) to remake its recorded outputs.
        let job_for = |i: usize, key: &str, p: &Prepared, expect: Option<Vec<String>>| Job {
            node: i,
            key: key.to_string(),
            step: nodes[i].step,
            recipe: recipe.name.clone(),
            inputs: p.inputs.clone(),
            metadata: nodes[i].metadata.clone(),
            label: nodes[i].label.clone(),
            config: p.config.clone(),
            places: p.places.clone(),
            guarded: p.guarded.clone(),
            recomputable: infos[nodes[i].step].recomputable.clone(),
            expect,
        };
        let present = |h: &str| store.object_path(h).is_file();

        loop {
            // Producers held back for the disk budget go behind what became ready meanwhile
            // (their consumers first).
            for d in deferred.drain(..) {
                schedule.requeue(d);
            }
            if schedule.has_ready() {
                db.begin()?;
                while let Some(i) = schedule.next_ready() {
                    let node = &nodes[i];
                    let info = &infos[node.step];
                    // Disk budget: wait while enough producers' recomputable outputs wait for
                    // their consumers, unless nothing else is running.
                    if !opts.dry_run && books.live >= jobs && running > 0 && books.makes_live_outputs(i, &infos, &nodes)
                    {
                        deferred.push(i);
                        continue;
                    }
                    if prepared[i].is_none() {
                        let mut inputs: Vec<InputFile> = Vec::new();
                        let mut places = Vec::new();
                        let mut guarded = Vec::new();
                        for (role, refs) in &node.inputs {
                            for (pos, r) in refs.iter().enumerate() {
                                let (hash, name, path) = match *r {
                                    Ref::Raw { set, file } => {
                                        let item = &raw[set][file];
                                        if let Some(place) = &item.place {
                                            places.push((item.hash.clone(), place.clone()));
                                        }
                                        (item.hash.clone(), item.label.clone(), item.path.clone())
                                    }
                                    Ref::Out { node: u, output } => {
                                        let hash = produced[u].as_ref().expect("dependency done")[output].clone();
                                        if infos[nodes[u].step].recomputable[output] {
                                            guarded.push(hash.clone());
                                        }
                                        let path = store.object_path(&hash);
                                        (hash, infos[nodes[u].step].plan.outputs[output].file_name(), path)
                                    }
                                };
                                inputs.push(InputFile { role: role.clone(), position: pos as u32, hash, path, name });
                            }
                        }
                        guarded.sort();
                        guarded.dedup();
                        let config = info.stage.config_for_inputs(&info.config, &inputs).map(|c| {
                            let (c, canon) = canonical_value(&c);
                            (Arc::new(c), Arc::new(canon))
                        });
                        prepared[i] = Some(Prepared { inputs, config, places, guarded });
                    }
                    let p = prepared[i].as_ref().expect("prepared above");
                    let material = KeyMaterial {
                        stage: info.stage.name(),
                        stage_version: info.stage.version(),
                        pipeline_version: &pipeline_version,
                        config: p.config.as_ref().map_or(&info.config_canon, |(_, c)| c),
                        params: &info.params_canon,
                        inputs: &p.inputs,
                    };
                    let key = activity_key(&material);
                    keys[i] = Some(key.clone());
                    let cached = db.find_ok_activity(&key)?;
                    if let Some(c) = cached {
                        if let Some((outs, _)) = reusable_outputs(store, &info.plan, &c) {
                            produced[i] = Some(outs);
                            reused += 1;
                            // A reused consumer is done with its inputs too (a run killed after
                            // recording it left them on disk).
                            for h in books.consumer_done(i, true, &nodes, &produced) {
                                if !opts.dry_run {
                                    drop_if_recorded_recomputable(store, &db, &h, &mut pending_drops)?;
                                }
                            }
                            schedule.finish(i, Outcome::Reused, &nodes, &infos);
                            continue;
                        }
                    }
                    if reasons[i].is_none() {
                        reasons[i] = Some(why::reason(&db, &recipe.name, &info.name, &node.label, &key, &material)?);
                    }
                    if opts.dry_run {
                        let reason = reasons[i].clone().expect("set above");
                        schedule.finish(i, Outcome::WouldRun(reason), &nodes, &infos);
                        continue;
                    }
                    // An input deleted once consumed is remade only if the worker, holding this
                    // activity's lock, finds that it must run (another process may have made it
                    // meanwhile): it then answers MissingInput.
                    books.dispatched(i, &infos, &nodes);
                    job_tx
                        .send(job_for(i, &key, p, None))
                        .map_err(|_| Error::msg("worker pool stopped unexpectedly"))?;
                    running += 1;
                }
                db.commit()?;
            }
            progress.show(schedule.done, ran, reused, failed, running, false);
            if running == 0 {
                if deferred.is_empty() && !schedule.has_ready() {
                    break;
                }
                continue;
            }
            let res = res_rx.recv().map_err(|_| Error::msg("worker pool stopped unexpectedly"))?;
            running -= 1;
            let i = res.node;
            let name = format!("{}/{}", infos[nodes[i].step].name, nodes[i].label);
            if res.recompute {
                // Its outcome was decided (reused); what matters is who waited for it.
                let error = match res.result {
                    Ok(_) => {
                        recomputed[i] = true;
                        None
                    }
                    Err(JobError::Failed(e)) | Err(JobError::MissingInput(e)) => {
                        books.undispatched(i);
                        eprintln!("FAILED to remake {name}: {e}");
                        Some(e)
                    }
                };
                let mut woken = books.remade(i);
                while let Some((waiter, free)) = woken.pop() {
                    match (waiter, &error) {
                        (Waiter::Run(j), None) if free && schedule.outcome[j].is_none() => schedule.requeue(j),
                        (Waiter::Remake(v), None) if free => {
                            let p = prepared[v].as_ref().expect("keyed");
                            books.dispatched(v, &infos, &nodes);
                            job_tx
                                .send(job_for(v, keys[v].as_deref().expect("keyed"), p, produced[v].clone()))
                                .map_err(|_| Error::msg("worker pool stopped unexpectedly"))?;
                            running += 1;
                        }
                        (_, None) => {}
                        (Waiter::Run(j), Some(e)) => {
                            if schedule.outcome[j].is_none() {
                                failed += 1;
                                let why = format!("needs the outputs of {name} remade, which failed: {e}");
                                // A failed consumer keeps what it consumes: nothing to delete.
                                books.consumer_done(j, false, &nodes, &produced);
                                schedule.finish(j, Outcome::Failed(why), &nodes, &infos);
                            }
                        }
                        (Waiter::Remake(v), Some(_)) => woken.extend(books.remade(v)),
                    }
                }
                continue;
            }
            let decided = match res.result {
                Ok((hashes, ran_here)) => {
                    produced[i] = Some(hashes);
                    if ran_here {
                        ran += 1;
                        Outcome::Ran
                    } else {
                        reused += 1;
                        Outcome::Reused
                    }
                }
                Err(JobError::MissingInput(h)) => {
                    // Inputs deleted once consumed: remake their makers, then run it again.
                    books.undispatched(i);
                    let makers = books.missing_makers(i, &nodes, &produced, present);
                    if makers.is_empty() {
                        // Remade by another process meanwhile.
                        let _ = h;
                        schedule.requeue(i);
                        continue;
                    }
                    for u in makers {
                        running += request_remake(
                            u,
                            Waiter::Run(i),
                            &mut books,
                            &infos,
                            &nodes,
                            &produced,
                            &present,
                            &mut |u| {
                                let p = prepared[u].as_ref().expect("keyed");
                                job_tx
                                    .send(job_for(u, keys[u].as_deref().expect("keyed"), p, produced[u].clone()))
                                    .is_ok()
                            },
                        )?;
                    }
                    continue;
                }
                Err(JobError::Failed(e)) => {
                    failed += 1;
                    books.undispatched(i);
                    if opts.progress {
                        let _ = write!(std::io::stderr(), "\r\x1b[K");
                    }
                    if failed <= LIVE_FAILURE_LINES {
                        eprintln!(
                            "FAILED {name}: {e}\n       log: sst1mflow log {}",
                            sst1mflow_base::text::short(keys[i].as_deref().unwrap_or(""), 16)
                        );
                    } else if failed == LIVE_FAILURE_LINES + 1 {
                        eprintln!("(further failures are listed in the summary)");
                    }
                    Outcome::Failed(e)
                }
            };
            let ok = matches!(decided, Outcome::Ran | Outcome::Reused);
            for h in books.consumer_done(i, ok, &nodes, &produced) {
                drop_if_recorded_recomputable(store, &db, &h, &mut pending_drops)?;
            }
            retry_drops(store, &mut pending_drops)?;
            schedule.finish(i, decided, &nodes, &infos);
        }
        drop(job_tx);
        Ok(())
    })?;
    // Every worker of this run is idle now; what another process still reads is left for the
    // next run (which deletes it when its consumers are reused).
    for _ in 0..50 {
        retry_drops(store, &mut pending_drops)?;
        if pending_drops.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    if let Some(executor) = remote {
        executor.clean_batches();
    }
    progress.show(schedule.done, ran, reused, failed, running, true);
    progress.finish();
    let outcome = schedule.outcome;

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
                    .map(|p| info.plan.outputs.iter().zip(p).map(|(o, h)| (o.role.clone(), h.clone())).collect())
                    .unwrap_or_default(),
                recomputable_absent: produced[i].as_ref().is_some_and(|p| {
                    p.iter().zip(&info.recomputable).any(|(h, &r)| r && !store.object_path(h).is_file())
                }),
                recomputed: recomputed[i],
            }
        })
        .collect();
    Ok(RunReport {
        recipe: recipe.name.clone(),
        dry_run: opts.dry_run,
        warnings,
        config: config_report,
        activities,
        elapsed: started.elapsed(),
        slurm_calls: remote.map(|_| {
            let now = crate::slurm::tools::calls();
            crate::slurm::tools::Calls {
                sbatch: now.sbatch - slurm_calls_before.sbatch,
                tasks: now.tasks - slurm_calls_before.tasks,
                squeue: now.squeue - slurm_calls_before.squeue,
                sacct: now.sacct - slurm_calls_before.sacct,
                scancel: now.scancel - slurm_calls_before.scancel,
            }
        }),
    })
}

/// Deletes a consumed output whose product was recorded recomputable when it was made (an
/// output made before its step was marked recomputable stays: the record says it is kept).
/// An object some process still holds in use is left in `pending`, to be tried again.
fn drop_if_recorded_recomputable(store: &Store, db: &Db, hash: &str, pending: &mut Vec<String>) -> Result<()> {
    if db.is_recomputable(hash)? && !store.drop_recomputable(hash)? {
        pending.push(hash.to_string());
    }
    Ok(())
}

/// Tries again to delete consumed objects that were in use. The holder is usually transient: a
/// command being started by another worker carries a copy of every open file, its lock
/// included, from fork until exec.
fn retry_drops(store: &Store, pending: &mut Vec<String>) -> Result<()> {
    let mut still = Vec::new();
    for h in pending.drain(..) {
        if !store.drop_recomputable(&h)? {
            still.push(h);
        }
    }
    *pending = still;
    Ok(())
}

/// What a keyed activity is given: its inputs (with where to read them), the config it
/// applies when its stage narrowed it, its referenced raw inputs' places and its recomputable
/// inputs. Kept so that the activity can be remade later in the run.
struct Prepared {
    inputs: Vec<InputFile>,
    config: Option<(Arc<Value>, Arc<String>)>,
    places: Vec<(String, crate::provenance::Place)>,
    guarded: Vec<String>,
}

/// Starts remaking `maker` for `waiter`, after remaking those of its own inputs that were
/// deleted too. `send` hands a remake job to the workers. Returns how many jobs were sent.
#[allow(clippy::too_many_arguments)]
fn request_remake(
    maker: usize,
    waiter: Waiter,
    books: &mut Recomputables,
    infos: &[StepInfo],
    nodes: &[Node],
    produced: &[Option<Vec<String>>],
    present: &dyn Fn(&str) -> bool,
    send: &mut dyn FnMut(usize) -> bool,
) -> Result<usize> {
    if !books.wait_for(maker, waiter) {
        return Ok(0); // already under way
    }
    let upstream = books.missing_makers(maker, nodes, produced, present);
    if upstream.is_empty() {
        books.dispatched(maker, infos, nodes);
        if !send(maker) {
            return Err(Error::msg("worker pool stopped unexpectedly"));
        }
        return Ok(1);
    }
    let mut sent = 0;
    for u in upstream {
        sent += request_remake(u, Waiter::Remake(maker), books, infos, nodes, produced, present, send)?;
    }
    Ok(sent)
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
    produced: &[Option<Vec<String>>],
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
            let target = store.object_path(p);
            if !target.is_file() {
                // A recomputable output deleted once consumed: no view of it.
                let _ = std::fs::remove_file(&link);
                continue;
            }
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
