//! Execution of one activity in a worker of the local executor: take the activity's lock,
//! re-check the database (another process may have made it meanwhile), run it through the
//! activity runner, then write its manifest and record it, in that order (crash safety).
use super::plan::StepInfo;
use crate::key::{canonical_json, KEY_SCHEMA_VERSION};
use crate::provenance::manifest::{self, Manifest, ManifestProduct, Slot};
use crate::provenance::{host_name, now_utc, CachedActivity, Db};
use crate::runner::{run_activity, Activity};
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
}

pub(super) struct JobResult {
    pub node: usize,
    /// Ok((output hashes in plan order, true if ran here / false if another process had it))
    pub result: std::result::Result<(Vec<String>, bool), String>,
}

/// The output hashes of a recorded activity in plan order, when it can be reused: it recorded
/// exactly the plan's outputs and every object is intact. Used by the coordinator before
/// dispatching and by the worker once it holds the activity's lock.
pub(super) fn reusable_outputs(store: &Store, plan: &StagePlan, c: &CachedActivity) -> Option<Vec<String>> {
    if c.outputs.len() != plan.outputs.len() || !c.outputs.iter().all(|(_, h, size)| store.object_intact(h, *size)) {
        return None;
    }
    let by_role: BTreeMap<&str, &str> = c.outputs.iter().map(|(r, h, _)| (r.as_str(), h.as_str())).collect();
    plan.outputs.iter().map(|o| by_role.get(o.role.as_str()).map(|h| h.to_string())).collect()
}

/// Runs one activity in a worker: lock, re-check, run, publish, record.
pub(super) fn execute(
    store: &Store,
    db: &mut Db,
    info: &StepInfo,
    pipeline_version: &str,
    job: Job,
) -> std::result::Result<(Vec<String>, bool), String> {
    let lock = store.lock_activity(&job.key).map_err(|e| e.to_string())?;
    if let Some(c) = db.find_ok_activity(&job.key).map_err(|e| e.to_string())? {
        if let Some(outs) = reusable_outputs(store, &info.plan, &c) {
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
    let result = run_activity(
        store,
        &Activity {
            stage: info.stage,
            plan: &info.plan,
            key: &job.key,
            pipeline_version,
            params: &info.params,
            config: job.config.as_ref().map_or(&*info.config, |(c, _)| &**c),
            inputs: &job.inputs,
        },
        &mut log,
    );
    let ended_at = now_utc();
    let error = result.as_ref().err().map(|e| e.to_string());
    if let Some(e) = &error {
        let _ = writeln!(log, "# FAILED: {e}");
    }
    let mut used = Vec::with_capacity(job.inputs.len());
    for input in &job.inputs {
        let p = db
            .product(&input.hash)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("input product {} is not registered", input.hash))?;
        used.push(ManifestProduct {
            role: input.role.clone(),
            position: input.position,
            hash: p.hash,
            kind: p.kind,
            size: p.size,
            metadata: p.metadata,
        });
    }
    let outputs = result.unwrap_or_default();
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
        host: host_name(),
        user: manifest::user_name(),
        log: tail_utf8(&log, MAX_LOG_BYTES),
        error: error.clone(),
        invalid: None,
        slot: Slot { recipe: job.recipe.clone(), step: info.name.clone(), item: job.label.clone() },
        used,
        generated: if ok {
            let metadata = canonical_json(&Value::Object(job.metadata.clone()));
            outputs
                .iter()
                .map(|p| ManifestProduct {
                    role: p.role.clone(),
                    position: 0,
                    hash: p.hash.clone(),
                    kind: p.kind.clone(),
                    size: p.size,
                    metadata: metadata.clone(),
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
