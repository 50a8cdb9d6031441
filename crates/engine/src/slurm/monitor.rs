//! The one thread of a run that talks to SLURM. It batches submissions (what the waiters ask
//! for within [`BATCH_WINDOW`] becomes one job array per stage and resources: the nightly's
//! one-step-per-run recipes batch too), and polls every
//! job of the run with one `squeue` call per cycle plus one `sacct` call for the jobs that left
//! the queue (sacct lags squeue by a second or two; a job neither knows for [`LOST_AFTER`] is
//! lost). The poll interval starts at `poll_min_s` and grows by half while nothing changes, up
//! to `poll_max_s`. On SIGINT or SIGTERM it cancels the jobs it watches, forgets their journal
//! entries (the next run submits them afresh) and exits with 130.
use super::settings::{Resources, SlurmSettings};
use super::tools::{self, JobState};
use super::worker::{slurm_dir, write_json_atomic};
use super::Journal;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long submissions are gathered before sbatch is called.
pub const BATCH_WINDOW: Duration = Duration::from_millis(150);
/// A job that neither squeue nor sacct knows for this long has been lost by the cluster.
pub const LOST_AFTER: Duration = Duration::from_secs(60);
/// The most tasks of one array (SLURM's default MaxArraySize is 1001).
const MAX_ARRAY: usize = 1000;
/// How much of a job's output a failure quotes.
const OUTPUT_TAIL_BYTES: u64 = 3000;

pub enum Request {
    Submit { key: String, dir: PathBuf, group: String, resources: Resources, attempt: u32, reply: mpsc::Sender<Event> },
    Attach { job_id: String, name: String, out: PathBuf, journal: PathBuf, reply: mpsc::Sender<Event> },
    Shutdown,
}

pub enum Event {
    Submitted(String),
    SubmitFailed(String),
    Ended(JobEnd),
}

#[derive(Clone, Debug)]
pub struct JobEnd {
    pub job_id: String,
    pub state: String,
    pub exit_code: String,
    pub node: String,
    pub elapsed_s: Option<u64>,
    pub output_tail: String,
}

struct Watch {
    /// The activities this array task runs: who waits for each, and its journal entry.
    waiters: Vec<(mpsc::Sender<Event>, PathBuf)>,
    /// The job's name: a job id under another name is not this job (the cluster was reset).
    name: String,
    out: PathBuf,
    node: String,
    unknown_since: Option<Instant>,
}

struct Submission {
    key: String,
    dir: PathBuf,
    group: String,
    resources: Resources,
    attempt: u32,
    reply: mpsc::Sender<Event>,
}

pub struct Monitor {
    settings: SlurmSettings,
    store_root: PathBuf,
    exe: PathBuf,
    requests: mpsc::Receiver<Request>,
    submitted: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Monitor {
    pub(super) fn new(
        settings: SlurmSettings,
        store_root: PathBuf,
        exe: PathBuf,
        requests: mpsc::Receiver<Request>,
        submitted: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    ) -> Monitor {
        Monitor { settings, store_root, exe, requests, submitted }
    }

    /// Serves the waiters until told to stop.
    pub fn run(self) {
        let min = Duration::from_secs_f64(self.settings.poll_min_s);
        let max = Duration::from_secs_f64(self.settings.poll_max_s);
        let mut pending: Vec<Submission> = Vec::new();
        let mut first_pending: Option<Instant> = None;
        let mut watched: BTreeMap<String, Watch> = BTreeMap::new();
        let mut interval = min;
        let mut next_poll = Instant::now();
        let mut squeue_warned = false;
        loop {
            if super::interrupted() {
                self.cancel_and_exit(&watched);
            }
            let now = Instant::now();
            let mut wait = Duration::from_millis(200);
            if let Some(t) = first_pending {
                wait = wait.min((t + BATCH_WINDOW).saturating_duration_since(now));
            }
            if !watched.is_empty() {
                wait = wait.min(next_poll.saturating_duration_since(now));
            }
            match self.requests.recv_timeout(wait) {
                Ok(Request::Submit { key, dir, group, resources, attempt, reply }) => {
                    first_pending.get_or_insert(now);
                    pending.push(Submission { key, dir, group, resources, attempt, reply });
                }
                Ok(Request::Attach { job_id, name, out, journal, reply }) => {
                    let w = watched.entry(job_id).or_insert_with(|| Watch {
                        waiters: Vec::new(),
                        name,
                        out,
                        node: String::new(),
                        unknown_since: None,
                    });
                    w.waiters.push((reply, journal));
                    next_poll = now;
                }
                Ok(Request::Shutdown) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
                Err(mpsc::RecvTimeoutError::Timeout) => {}
            }
            if first_pending.is_some_and(|t| t.elapsed() >= BATCH_WINDOW) {
                self.submit(std::mem::take(&mut pending), &mut watched);
                first_pending = None;
                interval = min;
                next_poll = Instant::now() + interval;
            }
            if !watched.is_empty() && Instant::now() >= next_poll {
                let changed = match self.poll(&mut watched) {
                    Ok(changed) => changed,
                    Err(e) => {
                        if !squeue_warned {
                            eprintln!("warning: SLURM poll failed (retrying with backoff): {e}");
                            squeue_warned = true;
                        }
                        false
                    }
                };
                interval = if changed { min } else { interval.mul_f64(1.5).min(max) };
                next_poll = Instant::now() + interval;
            }
        }
    }

    /// One sbatch per (stage, resources) group of up to [`MAX_ARRAY`] array tasks, each task
    /// running `activities_per_task` of its activities one after the other.
    fn submit(&self, pending: Vec<Submission>, watched: &mut BTreeMap<String, Watch>) {
        let mut groups: Vec<(String, Vec<String>, usize, Vec<Submission>)> = Vec::new();
        for s in pending {
            let args = s.resources.sbatch_arguments();
            let per_task = s.resources.activities_per_task.unwrap_or(1).max(1) as usize;
            let fits = |g: &(String, Vec<String>, usize, Vec<Submission>)| {
                g.0 == s.group && g.1 == args && g.3.len() < MAX_ARRAY * per_task
            };
            match groups.iter_mut().find(|g| fits(g)) {
                Some(g) => g.3.push(s),
                None => groups.push((s.group.clone(), args, per_task, vec![s])),
            }
        }
        for (_, args, per_task, batch) in groups {
            let tasks = batch.len().div_ceil(per_task);
            let mut h = Sha256::new();
            for s in &batch {
                h.update(s.key.as_bytes());
                h.update(s.attempt.to_le_bytes());
            }
            let digest: String = h.finalize().iter().map(|b| format!("{b:02x}")).collect();
            let name = format!("{}-{}", self.settings.job_name, &digest[..12]);
            let batch_dir = slurm_dir(&self.store_root).join("batches").join(&name);
            if let Ok(mut v) = self.submitted.lock() {
                v.push(name.clone());
            }
            let prepared = (|| -> sst1mflow_base::error::Result<PathBuf> {
                std::fs::create_dir_all(&batch_dir).map_err(|e| {
                    sst1mflow_base::error::Error::io(format!("cannot create {}", batch_dir.display()), e)
                })?;
                let keys: String = batch.iter().map(|s| format!("{}\n", s.key)).collect();
                write_file(&batch_dir.join("keys"), keys.as_bytes())?;
                let script = batch_dir.join("job.sh");
                let text = format!(
                    "#!/bin/sh\n# sst1mflow: {} activities of one stage, {per_task} per array task\n\
                     exec {} --store {} slurm-worker --per-task {per_task} {}\n",
                    batch.len(),
                    shell_quote(&self.exe),
                    shell_quote(&self.store_root),
                    shell_quote(&batch_dir)
                );
                write_file(&script, text.as_bytes())?;
                for (i, s) in batch.iter().enumerate() {
                    let j = Journal { batch: name.clone(), task: i / per_task, job_id: None, attempt: s.attempt };
                    write_json_atomic(&s.dir.join("job.json"), &j)?;
                }
                Ok(script)
            })();
            let mut all = self.settings.common_arguments();
            all.extend(args);
            all.push(format!("--job-name={name}"));
            all.push(format!("--output={}", batch_dir.join("task-%a.out").display()));
            all.push(format!("--array=0-{}", tasks - 1));
            let submitted = prepared.and_then(|script| tools::sbatch(&all, &script));
            match submitted {
                Ok(base) => {
                    tools::count_tasks(tasks);
                    for (i, s) in batch.into_iter().enumerate() {
                        let task = i / per_task;
                        let id = format!("{base}_{task}");
                        let journal = s.dir.join("job.json");
                        let j = Journal { batch: name.clone(), task, job_id: Some(id.clone()), attempt: s.attempt };
                        if let Err(e) = write_json_atomic(&journal, &j) {
                            eprintln!("warning: {e}");
                        }
                        let _ = s.reply.send(Event::Submitted(id.clone()));
                        let w = watched.entry(id).or_insert_with(|| Watch {
                            waiters: Vec::new(),
                            name: name.clone(),
                            out: batch_dir.join(format!("task-{task}.out")),
                            node: String::new(),
                            unknown_since: None,
                        });
                        w.waiters.push((s.reply, journal));
                    }
                }
                Err(e) => {
                    for s in batch {
                        let _ = std::fs::remove_file(s.dir.join("job.json"));
                        let _ = s.reply.send(Event::SubmitFailed(e.to_string()));
                    }
                }
            }
        }
    }

    /// One squeue (and, when jobs left the queue, one sacct); wakes the waiters of jobs that
    /// ended. Returns whether anything changed.
    fn poll(&self, watched: &mut BTreeMap<String, Watch>) -> sst1mflow_base::error::Result<bool> {
        let live = tools::squeue()?;
        let mut changed = false;
        let mut gone: Vec<String> = Vec::new();
        for (id, w) in watched.iter_mut() {
            match live.get(id) {
                Some(q) if q.name == w.name => {
                    w.unknown_since = None;
                    if !q.node.is_empty() && q.node != w.node {
                        w.node = q.node.clone();
                        changed = true;
                    }
                }
                _ => gone.push(id.clone()),
            }
        }
        if gone.is_empty() {
            return Ok(changed);
        }
        let mut bases: Vec<String> = gone.iter().map(|id| id.split('_').next().unwrap_or(id).to_string()).collect();
        bases.sort();
        bases.dedup();
        let accounting = tools::sacct(&bases);
        let now = Instant::now();
        for id in gone {
            let w = watched.get_mut(&id).expect("watched");
            let state = match &accounting {
                Ok(acct) => match acct.get(&id) {
                    Some(s) if s.name != w.name => Some(JobState {
                        state: "LOST".into(),
                        exit_code: "?".into(),
                        node: String::new(),
                        elapsed_s: None,
                        name: s.name.clone(),
                    }),
                    Some(s) if tools::is_terminal(&s.state) => Some(s.clone()),
                    Some(_) => None, // sacct lags squeue
                    None => {
                        let since = *w.unknown_since.get_or_insert(now);
                        (now.duration_since(since) >= LOST_AFTER).then(|| JobState {
                            state: "LOST".into(),
                            exit_code: "?".into(),
                            node: w.node.clone(),
                            elapsed_s: None,
                            name: w.name.clone(),
                        })
                    }
                },
                // No accounting: the job's result file says how it ended.
                Err(_) => Some(JobState {
                    state: "ENDED".into(),
                    exit_code: "?".into(),
                    node: w.node.clone(),
                    elapsed_s: None,
                    name: w.name.clone(),
                }),
            };
            let Some(state) = state else { continue };
            let w = watched.remove(&id).expect("watched");
            let end = JobEnd {
                job_id: id,
                node: if state.node.is_empty() || state.node == "None assigned" { w.node.clone() } else { state.node },
                state: state.state,
                exit_code: state.exit_code,
                elapsed_s: state.elapsed_s,
                output_tail: tail(&w.out, OUTPUT_TAIL_BYTES),
            };
            for (reply, _) in &w.waiters {
                let _ = reply.send(Event::Ended(end.clone()));
            }
            changed = true;
        }
        Ok(changed)
    }

    fn cancel_and_exit(&self, watched: &BTreeMap<String, Watch>) -> ! {
        let ids: Vec<String> = watched.keys().cloned().collect();
        let cancelled = tools::scancel(&ids);
        for w in watched.values() {
            for (_, journal) in &w.waiters {
                let _ = std::fs::remove_file(journal);
            }
        }
        match cancelled {
            Ok(()) => eprintln!("interrupted: cancelled the {} SLURM job(s) of this run", ids.len()),
            Err(e) => eprintln!("interrupted: cancelling this run's {} SLURM job(s) failed: {e}", ids.len()),
        }
        std::process::exit(130)
    }
}

fn write_file(path: &Path, bytes: &[u8]) -> sst1mflow_base::error::Result<()> {
    std::fs::write(path, bytes)
        .map_err(|e| sst1mflow_base::error::Error::io(format!("cannot write {}", path.display()), e))
}

/// `'…'` for sh, with embedded single quotes escaped.
fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.to_string_lossy().replace('\'', "'\\''"))
}

/// The last `max` bytes of a file (lossy UTF-8), or nothing.
fn tail(path: &Path, max: u64) -> String {
    let Ok(mut f) = std::fs::File::open(path) else { return String::new() };
    let len = f.metadata().map(|m| m.len()).unwrap_or(0);
    if len > max {
        let _ = f.seek(SeekFrom::Start(len - max));
    }
    let mut buf = Vec::new();
    let _ = f.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}
