//! The SLURM executor: activities run as cluster jobs, recorded exactly as local ones.
//!
//! The coordinating `run` keeps everything that needs the database or the store's locks: it
//! plans, computes keys, takes each activity's lock, re-checks the record, and afterwards
//! publishes and records. Only the stage itself runs elsewhere: a job runs `sst1mflow
//! slurm-worker` ([`worker`]) on a node, which reads the activity's spec from the store's
//! temporary area, runs the stage there and writes a result file. So products, keys and
//! provenance are the local executor's, byte for byte; SQLite is only ever opened on the
//! coordinator's machine (it is not safe on a shared filesystem).
//!
//! Shape of a run: the local executor's worker threads become *waiters*, one per activity in
//! flight (`-j` or `max_jobs` of them). A waiter writes its activity's spec and asks the
//! [`monitor`] thread to submit it; the monitor gathers what arrives within a short window into
//! one job array per stage and resources (sbatch once for many activities), then polls the whole run with one
//! `squeue` call per cycle, and one `sacct` call for the jobs that left the queue, backing off
//! while nothing changes. A job's end wakes its waiter, which reads the result, publishes the
//! outputs (checking the hashes the job computed) and lets the local path record it.
//!
//! Crash safety: before sbatch, every activity of the array gets a journal entry (`job.json`:
//! batch name, task, attempt), completed with the job id when sbatch answers. A coordinator
//! killed and started again finds the entry under the activity's key, re-attaches to the job
//! (pending, running, or finished meanwhile: its result is collected), and never submits it
//! again; an entry without a job id (killed inside sbatch) is resolved by the batch's unique
//! job name. The journal is removed once the activity is recorded.
//!
//! Failures: a job that ends without a result (cancelled, timed out, out of memory, killed)
//! makes its activity failed with the job's state, exit code, node and the tail of its output;
//! a job that lost its node (NODE_FAIL, PREEMPTED, BOOT_FAIL, or unknown to SLURM) is submitted
//! again up to `retries` times, the attempt count recorded. SIGINT or SIGTERM of the
//! coordinator cancels the jobs it is waiting for (`scancel` of its own job ids only).
pub mod monitor;
pub mod settings;
pub mod tools;
pub mod worker;

use crate::runner::{Activity, Execution, Published};
use crate::store::Store;
use monitor::{Event, JobEnd, Request};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
pub use settings::{Resources, SlurmSettings};
use sst1mflow_base::error::{Error, Result};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use worker::{read_json, slurm_dir, write_json_atomic, JobResult};

/// The journal entry of an activity submitted as (part of) a job array.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Journal {
    pub batch: String,
    pub task: usize,
    /// `base_task`; absent while sbatch has not answered.
    pub job_id: Option<String>,
    pub attempt: u32,
}

/// The executor as the run's waiter threads share it.
pub struct SlurmExecutor {
    settings: SlurmSettings,
    /// Names of the arrays this run submitted (shared with the monitor).
    submitted: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    store_root: PathBuf,
    requests: mpsc::Sender<Request>,
}

impl SlurmExecutor {
    /// Checks the settings against the recipe and that sbatch answers; returns the executor
    /// and the monitor to run on a thread of its own.
    pub fn start(
        settings: SlurmSettings,
        store: &Store,
        stage_names: &[&str],
        step_names: &[&str],
    ) -> Result<(SlurmExecutor, monitor::Monitor)> {
        settings.check(stage_names, step_names)?;
        let exe = std::env::current_exe().map_err(|e| Error::io("cannot find the sst1mflow executable", e))?;
        let version = std::process::Command::new("sbatch").arg("--version").output();
        match version {
            Ok(o) if o.status.success() => {}
            Ok(o) => {
                return Err(Error::msg(format!(
                    "--executor slurm: sbatch --version failed: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                )))
            }
            Err(e) => {
                return Err(Error::io("--executor slurm: cannot run sbatch (is SLURM installed and on PATH?)", e))
            }
        }
        let dir = slurm_dir(store.root());
        std::fs::create_dir_all(dir.join("batches"))
            .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
        install_interrupt_handler();
        let (tx, rx) = mpsc::channel();
        let submitted = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let monitor = monitor::Monitor::new(
            settings.clone(),
            store.root().to_path_buf(),
            exe,
            rx,
            std::sync::Arc::clone(&submitted),
        );
        Ok((SlurmExecutor { settings, submitted, store_root: store.root().to_path_buf(), requests: tx }, monitor))
    }

    /// The most activities in flight at once.
    pub fn max_jobs(&self) -> usize {
        self.settings.max_jobs
    }

    /// Tells the monitor that no more requests come (it then returns).
    pub fn shutdown(&self) {
        let _ = self.requests.send(Request::Shutdown);
    }

    fn job_dir(&self, key: &str) -> PathBuf {
        slurm_dir(&self.store_root).join(key)
    }

    /// Removes the folders of job arrays none of whose activities is still journalled (their
    /// failures quoted what their output said).
    pub fn clean_batches(&self) {
        let root = slurm_dir(&self.store_root);
        let Ok(entries) = std::fs::read_dir(root.join("batches")) else { return };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            // Another coordinator may be between writing a batch and its journal entries.
            let young = e
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().map_or(true, |age| age < std::time::Duration::from_secs(60)));
            if young && !self.own_batch(&name) {
                continue;
            }
            let keys = std::fs::read_to_string(e.path().join("keys")).unwrap_or_default();
            let live = keys.lines().any(|k| {
                crate::store::is_hash(k)
                    && read_json::<Journal>(&root.join(k).join("job.json")).is_ok_and(|j| j.batch == name)
            });
            if !live {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }

    fn own_batch(&self, name: &str) -> bool {
        self.submitted.lock().map(|v| v.iter().any(|n| n == name)).unwrap_or(false)
    }

    /// Removes what the executor kept for an activity once it is recorded (or found recorded).
    pub fn forget(&self, key: &str) {
        let dir = self.job_dir(key);
        if dir.exists() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    /// Runs one activity as a job (or re-attaches to the job an earlier coordinator submitted
    /// for it), waits for it, and publishes its outputs. The caller holds the activity's lock.
    pub fn execute(&self, store: &Store, activity: &Activity, step: &str, log: &mut Vec<u8>) -> Execution {
        let started_at = crate::provenance::now_utc();
        let key = activity.key;
        let dir = self.job_dir(key);
        let mut journal: Option<Journal> = read_json(&dir.join("job.json")).ok();
        let mut attempt = journal.as_ref().map_or(1, |j| j.attempt);
        let failed = |e: String, executor: Option<Value>| Execution {
            result: Err(Error::msg(e)),
            started_at: started_at.clone(),
            ended_at: crate::provenance::now_utc(),
            host: crate::provenance::host_name(),
            executor,
        };
        loop {
            let (reply, events) = mpsc::channel();
            let attached = match journal.take() {
                Some(Journal { job_id: Some(id), batch, task, .. }) => Some((id, batch, task)),
                Some(Journal { job_id: None, batch, task, .. }) => match tools::find_by_name(&batch) {
                    Ok(Some(base)) => Some((format!("{base}_{task}"), batch, task)),
                    _ => None,
                },
                None => None,
            };
            if let Some((id, batch, task)) = attached {
                let _ =
                    writeln!(log, "# re-attached to SLURM job {id} (attempt {attempt}), submitted by an earlier run");
                let out = slurm_dir(&self.store_root).join("batches").join(&batch).join(format!("task-{task}.out"));
                if self
                    .requests
                    .send(Request::Attach { job_id: id, name: batch, out, journal: dir.join("job.json"), reply })
                    .is_err()
                {
                    return failed("the SLURM monitor stopped".into(), None);
                }
            } else {
                if let Err(e) = prepare_submission(&dir, activity) {
                    return failed(e.to_string(), None);
                }
                let resources = self.settings.resources(activity.stage.name(), step);
                let submit = Request::Submit {
                    key: key.to_string(),
                    dir: dir.clone(),
                    group: activity.stage.name().to_string(),
                    resources,
                    attempt,
                    reply,
                };
                if self.requests.send(submit).is_err() {
                    return failed("the SLURM monitor stopped".into(), None);
                }
            }
            let end = loop {
                match events.recv() {
                    Ok(Event::Submitted(id)) => {
                        let _ = writeln!(log, "# submitted as SLURM job {id} (attempt {attempt})");
                    }
                    Ok(Event::SubmitFailed(e)) => return failed(format!("could not submit to SLURM: {e}"), None),
                    Ok(Event::Ended(end)) => break end,
                    Err(_) => return failed("the SLURM monitor stopped".into(), None),
                }
            };
            let record = job_record(&end, attempt);
            let _ = writeln!(log, "# {}", describe_end(&end));
            let result: Option<JobResult> =
                read_json::<JobResult>(&dir.join("result.json")).ok().filter(|r| r.key == key);
            let Some(result) = result else {
                if tools::is_transient(&end.state) && attempt <= self.settings.retries {
                    attempt += 1;
                    let _ = writeln!(
                        log,
                        "# the job died of the cluster, not of the activity: submitting again (attempt {attempt} of {})",
                        self.settings.retries + 1
                    );
                    continue;
                }
                let tail = end.output_tail.trim_end();
                let mut e = format!("{} without a result", describe_end(&end));
                if tools::is_transient(&end.state) {
                    e.push_str(&format!(" ({attempt} attempts)"));
                }
                if !tail.is_empty() {
                    e.push_str(&format!("; its output ends:\n{tail}"));
                }
                return failed(e, Some(record));
            };
            log.extend_from_slice(result.log.as_bytes());
            let outcome = match &result.error {
                Some(e) => Err(Error::msg(format!(
                    "{e} (SLURM job {} on {}: {}, exit code {})",
                    end.job_id,
                    if end.node.is_empty() { &result.host } else { &end.node },
                    end.state,
                    end.exit_code
                ))),
                None => publish(store, &dir, activity, &result),
            };
            return Execution {
                result: outcome,
                started_at: result.started_at,
                ended_at: result.ended_at,
                host: result.host,
                executor: Some(record),
            };
        }
    }
}

/// A fresh spec, and nothing left of an earlier attempt.
fn prepare_submission(dir: &Path, activity: &Activity) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    let _ = std::fs::remove_file(dir.join("result.json"));
    let work = dir.join("work");
    if work.exists() {
        std::fs::remove_dir_all(&work).map_err(|e| Error::io(format!("cannot clear {}", work.display()), e))?;
    }
    write_json_atomic(&dir.join("spec.json"), &worker::spec_for(activity))
}

/// Publishes the outputs a job left in its work directory, each with the hash the job found.
/// An output already published (a coordinator killed while collecting) counts if intact.
fn publish(store: &Store, dir: &Path, activity: &Activity, result: &JobResult) -> Result<Vec<Published>> {
    if result.outputs.len() != activity.plan.outputs.len() {
        return Err(Error::msg(format!(
            "{}: not the outputs the activity declares",
            dir.join("result.json").display()
        )));
    }
    let mut published = Vec::with_capacity(result.outputs.len());
    for (declared, made) in activity.plan.outputs.iter().zip(&result.outputs) {
        if declared.role != made.role {
            return Err(Error::msg(format!(
                "{}: output {} where {} was declared",
                dir.display(),
                made.role,
                declared.role
            )));
        }
        let path = dir.join("work").join(&declared.file);
        if path.is_file() {
            let d = store.publish(&path)?;
            if d.hash != made.hash {
                return Err(Error::msg(format!(
                    "output {} of activity {} changed after its job hashed it (sha256 {} then {})",
                    made.role, activity.key, made.hash, d.hash
                )));
            }
        } else if !store.object_intact(&made.hash, made.size) {
            return Err(Error::msg(format!("output {} is missing from {}", made.role, path.display())));
        }
        published.push(Published {
            role: declared.role.clone(),
            kind: declared.kind.clone(),
            hash: made.hash.clone(),
            size: made.size,
        });
    }
    Ok(published)
}

/// "SLURM job 12_3 ended TIMEOUT (exit code 0:15) on node1 after 61 s".
fn describe_end(end: &JobEnd) -> String {
    format!(
        "SLURM job {} ended {} (exit code {}) on {} after {} s",
        end.job_id,
        end.state,
        end.exit_code,
        if end.node.is_empty() { "no node" } else { &end.node },
        end.elapsed_s.map_or("?".into(), |s| s.to_string())
    )
}

fn job_record(end: &JobEnd, attempt: u32) -> Value {
    json!({
        "executor": "slurm",
        "job_id": end.job_id,
        "node": end.node,
        "state": end.state,
        "exit_code": end.exit_code,
        "elapsed_s": end.elapsed_s,
        "attempts": attempt,
    })
}

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_interrupt(_: libc::c_int) {
    INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// SIGINT and SIGTERM set a flag the monitor acts on (cancel this run's jobs, then exit).
fn install_interrupt_handler() {
    unsafe {
        libc::signal(libc::SIGINT, on_interrupt as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_interrupt as *const () as libc::sighandler_t);
    }
}

pub(crate) fn interrupted() -> bool {
    INTERRUPTED.load(std::sync::atomic::Ordering::SeqCst)
}
