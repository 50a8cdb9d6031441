//! The two files between the coordinator and a job, and the job's side: `sst1mflow
//! slurm-worker BATCH_DIR` runs on a cluster node, reads the spec of its array task's activity,
//! runs the stage through [`crate::runner::run_stage`] in the activity's job directory, hashes
//! the declared outputs, and writes the result atomically. It never opens the database (SQLite
//! on a shared filesystem is unsafe) and never publishes: the coordinator does both, so a job
//! killed halfway leaves nothing anyone could take for a product.
//!
//! Layout, under the store's temporary area (`tmp/slurm/`, shared with the nodes):
//! `<key>/spec.json` (what to run), `<key>/work/` (the stage's work directory),
//! `<key>/result.json` (what came out), `<key>/job.json` (the journal: batch, task, job id,
//! attempt); `batches/<name>/{keys,job.sh,task-<i>.out}` (one array job: its activities in
//! task order, its script, each task's stdout and stderr).
use crate::runner::{run_stage, Activity};
use crate::stage::{DeclaredOutput, InputFile, Pipeline, StagePlan};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sst1mflow_base::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// What one activity is run from, as the coordinator planned it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Spec {
    pub key: String,
    pub stage: String,
    pub stage_version: String,
    pub pipeline_version: String,
    pub params: Value,
    pub config: Value,
    pub outputs: Vec<SpecOutput>,
    pub inputs: Vec<SpecInput>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SpecOutput {
    pub role: String,
    pub file: PathBuf,
    pub kind: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SpecInput {
    pub role: String,
    pub position: u32,
    pub hash: String,
    pub path: PathBuf,
    pub name: String,
}

/// What a job made of its activity.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JobResult {
    pub key: String,
    pub error: Option<String>,
    /// Declared outputs in plan order, hashed in the work directory.
    pub outputs: Vec<ResultOutput>,
    pub log: String,
    pub started_at: String,
    pub ended_at: String,
    pub host: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ResultOutput {
    pub role: String,
    pub file: PathBuf,
    pub hash: String,
    pub size: u64,
}

/// The folder of the executor's files in a store.
pub fn slurm_dir(store_root: &Path) -> PathBuf {
    store_root.join("tmp").join("slurm")
}

pub fn spec_for(activity: &Activity) -> Spec {
    Spec {
        key: activity.key.to_string(),
        stage: activity.stage.name().to_string(),
        stage_version: activity.stage.version().to_string(),
        pipeline_version: activity.pipeline_version.to_string(),
        params: activity.params.clone(),
        config: activity.config.clone(),
        outputs: activity
            .plan
            .outputs
            .iter()
            .map(|o| SpecOutput { role: o.role.clone(), file: o.file.clone(), kind: o.kind.clone() })
            .collect(),
        inputs: activity
            .inputs
            .iter()
            .map(|i| SpecInput {
                role: i.role.clone(),
                position: i.position,
                hash: i.hash.clone(),
                path: i.path.clone(),
                name: i.name.clone(),
            })
            .collect(),
    }
}

/// Writes `value` as JSON to `path` atomically and durably.
pub fn write_json_atomic(path: &Path, value: &impl Serialize) -> Result<()> {
    crate::provenance::manifest::write_atomic(path, &serde_json::to_vec_pretty(value).expect("json"))
}

pub fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read(path).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    serde_json::from_slice(&text)
        .map_err(|e| Error::msg(format!("{} is not what this version writes: {e}", path.display())))
}

/// The job's side, for array task `task` of the batch in `batch_dir`: its `per_task`
/// activities, one after the other (one failing does not stop the others). Returns the exit
/// code: 0 when every activity succeeded, 1 when one failed (its result says why), 2 when a
/// result could not be written (the job's output says why).
pub fn run_worker(pipeline: &Pipeline, store_root: &Path, batch_dir: &Path, task: usize, per_task: usize) -> i32 {
    let keys_file = batch_dir.join("keys");
    let keys = match std::fs::read_to_string(&keys_file) {
        Ok(k) => k,
        Err(e) => {
            eprintln!("sst1mflow slurm-worker: cannot read {}: {e}", keys_file.display());
            return 2;
        }
    };
    let keys: Vec<&str> = keys.lines().collect();
    let first = task * per_task.max(1);
    let mine = keys.get(first..(first + per_task.max(1)).min(keys.len())).unwrap_or(&[]);
    if mine.is_empty() {
        eprintln!("sst1mflow slurm-worker: {} has no task {task}", keys_file.display());
        return 2;
    }
    let mut code = 0;
    for (i, key) in mine.iter().enumerate() {
        match run_one(pipeline, store_root, key, task) {
            Ok(true) => {}
            Ok(false) => code = code.max(1),
            Err(e) => {
                eprintln!("sst1mflow slurm-worker: {} line {}: {e}", keys_file.display(), first + i + 1);
                code = 2;
            }
        }
    }
    code
}

fn run_one(pipeline: &Pipeline, store_root: &Path, key: &str, task: usize) -> Result<bool> {
    if !crate::store::is_hash(key) {
        return Err(Error::msg(format!("\"{key}\" is not an activity key")));
    }
    let dir = slurm_dir(store_root).join(key);
    let spec: Spec = read_json(&dir.join("spec.json"))?;
    let started_at = crate::provenance::now_utc();
    let host = crate::provenance::host_name();
    let mut log: Vec<u8> = Vec::new();
    let _ = writeln!(
        log,
        "# started {started_at} on {host} (SLURM job {}, array task {task})",
        std::env::var("SLURM_JOB_ID").unwrap_or_else(|_| "?".into())
    );
    let work = dir.join("work");
    let outcome = (|| -> Result<Vec<ResultOutput>> {
        if spec.pipeline_version != pipeline.version() {
            return Err(Error::msg(format!(
                "this worker is pipeline version {}, the activity was planned by {}: the node runs another sst1mflow build",
                pipeline.version(),
                spec.pipeline_version
            )));
        }
        let stage = pipeline
            .stage(&spec.stage)
            .filter(|s| s.version() == spec.stage_version)
            .ok_or_else(|| Error::msg(format!("this worker has no stage {} v{}", spec.stage, spec.stage_version)))?;
        let plan = StagePlan {
            config_keys: Vec::new(),
            config_read: Vec::new(),
            outputs: spec
                .outputs
                .iter()
                .map(|o| DeclaredOutput { role: o.role.clone(), file: o.file.clone(), kind: o.kind.clone() })
                .collect(),
        };
        let inputs: Vec<InputFile> = spec
            .inputs
            .iter()
            .map(|i| InputFile {
                role: i.role.clone(),
                position: i.position,
                hash: i.hash.clone(),
                path: i.path.clone(),
                name: i.name.clone(),
            })
            .collect();
        if work.exists() {
            let _ = std::fs::remove_dir_all(&work);
        }
        std::fs::create_dir_all(&work).map_err(|e| Error::io(format!("cannot create {}", work.display()), e))?;
        let activity = Activity {
            stage,
            plan: &plan,
            key: &spec.key,
            pipeline_version: &spec.pipeline_version,
            params: &spec.params,
            config: &spec.config,
            inputs: &inputs,
        };
        run_stage(&activity, &work, &mut log)?;
        let mut outputs = Vec::new();
        for o in &plan.outputs {
            let path = work.join(&o.file);
            let d = crate::store::hash_file(&path)
                .map_err(|e| Error::msg(format!("stage {} did not write its output {}: {e}", spec.stage, o.role)))?;
            outputs.push(ResultOutput { role: o.role.clone(), file: o.file.clone(), hash: d.hash, size: d.size });
        }
        Ok(outputs)
    })();
    let ended_at = crate::provenance::now_utc();
    let (outputs, error) = match outcome {
        Ok(o) => (o, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let ok = error.is_none();
    write_json_atomic(
        &dir.join("result.json"),
        &JobResult {
            key: key.to_string(),
            error,
            outputs,
            log: String::from_utf8_lossy(&log).into_owned(),
            started_at,
            ended_at,
            host,
        },
    )?;
    Ok(ok)
}
