//! Execution of one activity in a worker of the local executor: take the activity's lock,
//! re-check the database (another process may have made it meanwhile), run it through the
//! activity runner, then write its manifest and record it, in that order (crash safety).
//!
//! Around the run: recomputable inputs are held in use (no run deletes them meanwhile; one
//! already gone is reported back so the coordinator remakes it first), and referenced raw
//! inputs must still have the stat fingerprint they were hashed with, before and after the
//! stage reads them. A *recompute* (an activity remade because a consumer needs an output that
//! was deleted once consumed) must give the recorded hashes: it records nothing new when it
//! does, and is a failed activity naming the difference when it does not.
use super::plan::StepInfo;
use crate::key::{canonical_json, KEY_SCHEMA_VERSION};
use crate::provenance::manifest::{self, Manifest, ManifestProduct, Slot};
use crate::provenance::{CachedActivity, Db, Place};
use crate::runner::{execute_locally, Activity, Execution};
use crate::slurm::SlurmExecutor;
use crate::stage::{InputFile, StagePlan};
use crate::store::Store;
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::Arc;

/// Longest log kept per activity (its tail).
const MAX_LOG_BYTES: usize = 1 << 20;

/// One activity handed to a worker.
pub(super) struct Job {
    pub node: usize,
    pub key: String,
    pub step: usize,
    pub recipe: String,
    /// Every input with its role, position, content hash, object path and presented name.
    pub inputs: Vec<InputFile>,
    pub metadata: Map<String, Value>,
    pub label: String,
    /// The config this activity applies when its stage narrowed the step's subset from its
    /// inputs ([`crate::stage::Stage::config_for_inputs`]), with its canonical text.
    pub config: Option<(Arc<Value>, Arc<String>)>,
    /// Referenced raw inputs (content hash, place): read where they are, fingerprint checked.
    pub places: Vec<(String, Place)>,
    /// Inputs that are recomputable outputs: held in use while the stage reads them.
    pub guarded: Vec<String>,
    /// Per output in plan order: recomputable (recorded so in the manifest).
    pub recomputable: Vec<bool>,
    /// A recompute: the output hashes recorded for this key, which it must give again.
    pub expect: Option<Vec<String>>,
}

pub(super) struct JobResult {
    pub node: usize,
    /// This was a recompute of an activity already decided in this run.
    pub recompute: bool,
    /// Ok((output hashes in plan order, true if ran here / false if another process had it))
    pub result: std::result::Result<(Vec<String>, bool), JobError>,
}

pub(super) enum JobError {
    Failed(String),
    /// This recomputable input's object was deleted before the stage could hold it.
    MissingInput(String),
}

impl From<String> for JobError {
    fn from(e: String) -> JobError {
        JobError::Failed(e)
    }
}

/// The output hashes of a recorded activity in plan order, when it can be reused: it recorded
/// exactly the plan's outputs and every object is intact, or missing on purpose (a
/// recomputable output deleted once consumed: remade if a consumer needs it). The flag says
/// whether every object is present. Used by the coordinator before dispatching and by the
/// worker once it holds the activity's lock.
pub(super) fn reusable_outputs(store: &Store, plan: &StagePlan, c: &CachedActivity) -> Option<(Vec<String>, bool)> {
    if c.outputs.len() != plan.outputs.len() {
        return None;
    }
    let mut all_present = true;
    for o in &c.outputs {
        if !store.object_intact(&o.hash, o.size) {
            if !o.recomputable || store.object_path(&o.hash).exists() {
                return None; // gone without being recomputable, or damaged
            }
            all_present = false;
        }
    }
    let by_role: BTreeMap<&str, &str> = c.outputs.iter().map(|o| (o.role.as_str(), o.hash.as_str())).collect();
    let hashes: Option<Vec<String>> =
        plan.outputs.iter().map(|o| by_role.get(o.role.as_str()).map(|h| h.to_string())).collect();
    hashes.map(|h| (h, all_present))
}

/// Checks that a referenced raw input still has the fingerprint it was hashed with.
fn check_place(hash: &str, place: &Place, when: &str) -> std::result::Result<(), String> {
    let now = std::fs::metadata(&place.path).map(|m| super::inputs::fingerprint(&m));
    match now {
        Ok(fp) if fp == place.fingerprint() => Ok(()),
        Ok(_) => Err(format!(
            "input {} changed {when} (it was registered as sha256 {hash}); run again to register its new bytes",
            place.path
        )),
        Err(e) => Err(format!("input {} (sha256 {hash}) cannot be read {when}: {e}", place.path)),
    }
}

/// Runs one activity in a worker: lock, re-check, run, publish, record.
pub(super) fn execute(
    store: &Store,
    db: &mut Db,
    info: &StepInfo,
    pipeline_version: &str,
    remote: Option<&SlurmExecutor>,
    job: Job,
) -> std::result::Result<(Vec<String>, bool), JobError> {
    let lock = store.lock_activity(&job.key).map_err(|e| e.to_string())?;
    match &job.expect {
        None => {
            if let Some(c) = db.find_ok_activity(&job.key).map_err(|e| e.to_string())? {
                if let Some((outs, _)) = reusable_outputs(store, &info.plan, &c) {
                    if let Some(slurm) = remote {
                        slurm.forget(&job.key); // recorded by a coordinator killed before it cleaned up
                    }
                    return Ok((outs, false));
                }
            }
        }
        // Another process may have remade it meanwhile.
        Some(expected) if expected.iter().all(|h| store.object_path(h).is_file()) => {
            return Ok((expected.clone(), false))
        }
        Some(_) => {}
    }
    let mut in_use = Vec::with_capacity(job.guarded.len());
    for h in &job.guarded {
        in_use.push(store.lock_object_use(h).map_err(|e| e.to_string())?);
        if !store.object_path(h).is_file() {
            return Err(JobError::MissingInput(h.clone()));
        }
    }
    for (h, place) in &job.places {
        check_place(h, place, "since it was registered")?;
    }
    let mut log: Vec<u8> = Vec::new();
    let _ = writeln!(
        log,
        "# activity {}\n# stage {} v{} · pipeline {}\n# step {} · item {}",
        job.key,
        info.stage.name(),
        info.stage.version(),
        pipeline_version,
        info.name,
        job.label,
    );
    let activity = Activity {
        stage: info.stage,
        plan: &info.plan,
        key: &job.key,
        pipeline_version,
        params: &info.params,
        config: job.config.as_ref().map_or(&*info.config, |(c, _)| &**c),
        inputs: &job.inputs,
    };
    let Execution { result, started_at, ended_at, host, executor: ran_as } = match remote {
        None => execute_locally(store, &activity, &mut log),
        Some(slurm) => slurm.execute(store, &activity, &info.name, &mut log),
    };
    drop(in_use);
    let mut error = result.as_ref().err().map(|e| e.to_string());
    if error.is_none() {
        for (h, place) in &job.places {
            if let Err(e) = check_place(h, place, "while the activity read it") {
                error = Some(e);
                break;
            }
        }
    }
    let outputs = result.unwrap_or_default();
    if error.is_none() {
        if let Some(expected) = &job.expect {
            let got: Vec<&String> = outputs.iter().map(|p| &p.hash).collect();
            if got.iter().zip(expected).all(|(g, e)| *g == e) && got.len() == expected.len() {
                let _ = writeln!(log, "# recomputed: every output has its recorded hash");
                return Ok((expected.clone(), true));
            }
            let differ: Vec<String> = outputs
                .iter()
                .zip(expected)
                .filter(|(p, e)| &p.hash != *e)
                .map(|(p, e)| format!("{} is sha256 {}, recorded {}", p.role, p.hash, e))
                .collect();
            error = Some(format!(
                "activity {} ({}) is not deterministic: remade to replace outputs deleted once consumed, {}",
                job.key,
                info.stage.name(),
                differ.join("; ")
            ));
            // The bytes it gave instead are nobody's product.
            for p in &outputs {
                if !expected.contains(&p.hash) && matches!(db.product(&p.hash), Ok(None)) {
                    let _ = std::fs::remove_file(store.object_path(&p.hash));
                }
            }
        }
    }
    if let Some(e) = &error {
        let _ = writeln!(log, "# FAILED: {e}");
    }
    let mut used = Vec::with_capacity(job.inputs.len());
    for input in &job.inputs {
        let p = db
            .product(&input.hash)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("input product {} is not registered", input.hash))?;
        let place = job.places.iter().find(|(h, _)| *h == input.hash).map(|(_, place)| place.clone());
        used.push(ManifestProduct {
            role: input.role.clone(),
            position: input.position,
            hash: p.hash,
            kind: p.kind,
            size: p.size,
            metadata: p.metadata,
            place,
            recomputable: false,
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
        config: job.config.as_ref().map_or(&*info.config_canon, |(_, c)| &**c).clone(),
        params: (*info.params_canon).clone(),
        status: if ok { "ok" } else { "failed" }.to_string(),
        started_at,
        ended_at,
        host,
        user: manifest::user_name(),
        log: tail_utf8(&log, MAX_LOG_BYTES),
        error: error.clone(),
        invalid: None,
        slot: Slot { recipe: job.recipe.clone(), step: info.name.clone(), item: job.label.clone() },
        executor: ran_as,
        used,
        generated: if ok {
            let metadata = canonical_json(&Value::Object(job.metadata.clone()));
            outputs
                .iter()
                .enumerate()
                .map(|(k, p)| ManifestProduct {
                    role: p.role.clone(),
                    position: 0,
                    hash: p.hash.clone(),
                    kind: p.kind.clone(),
                    size: p.size,
                    metadata: metadata.clone(),
                    place: None,
                    recomputable: job.recomputable.get(k).copied().unwrap_or(false),
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
    if let Some(slurm) = remote {
        slurm.forget(&job.key);
    }
    drop(lock);
    match error {
        Some(e) => Err(JobError::Failed(e)),
        None => Ok((outputs.into_iter().map(|p| p.hash).collect(), true)),
    }
}

fn tail_utf8(bytes: &[u8], max: usize) -> String {
    if bytes.len() <= max {
        return String::from_utf8_lossy(bytes).into_owned();
    }
    let cut = bytes.len() - max;
    format!("[… {cut} earlier bytes dropped …]\n{}", String::from_utf8_lossy(&bytes[cut..]))
}
