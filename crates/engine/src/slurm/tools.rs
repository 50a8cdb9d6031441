//! SLURM's command-line tools, driven and parsed: `sbatch --parsable`, `squeue`, `sacct -P`
//! (its text form: on Slurm 22.05 the JSON form reports exit code 0 for failed jobs), and
//! `scancel`. The CLI is what every site has, whatever its Slurm version; no REST daemon or
//! library ABI is assumed. Parsing is pure and unit-tested on the tools' real output.
//!
//! Every call is counted ([`calls`]), so a run can say what it cost the controller.
use sst1mflow_base::error::{Error, Result};
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

static SBATCH: AtomicUsize = AtomicUsize::new(0);
static SQUEUE: AtomicUsize = AtomicUsize::new(0);
static SACCT: AtomicUsize = AtomicUsize::new(0);
static SCANCEL: AtomicUsize = AtomicUsize::new(0);
static TASKS: AtomicUsize = AtomicUsize::new(0);

/// What this process asked of SLURM so far.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Calls {
    pub sbatch: usize,
    /// Array tasks submitted (activities, counting resubmissions).
    pub tasks: usize,
    pub squeue: usize,
    pub sacct: usize,
    pub scancel: usize,
}

pub fn calls() -> Calls {
    Calls {
        sbatch: SBATCH.load(Ordering::Relaxed),
        tasks: TASKS.load(Ordering::Relaxed),
        squeue: SQUEUE.load(Ordering::Relaxed),
        sacct: SACCT.load(Ordering::Relaxed),
        scancel: SCANCEL.load(Ordering::Relaxed),
    }
}

/// Counts `n` array tasks submitted.
pub fn count_tasks(n: usize) {
    TASKS.fetch_add(n, Ordering::Relaxed);
}

/// What SLURM says about one job (an array task `A_i`).
#[derive(Clone, Debug, PartialEq)]
pub struct JobState {
    /// First word of the state (`CANCELLED by 0` → `CANCELLED`).
    pub state: String,
    /// `exit:signal`; for a job killed by a signal, its batch step's (the job line says 0:0).
    pub exit_code: String,
    pub node: String,
    pub elapsed_s: Option<u64>,
    /// The job's name (a job id names another job after the cluster's state was reset).
    pub name: String,
}

/// A job the controller holds.
#[derive(Clone, Debug, PartialEq)]
pub struct Queued {
    pub state: String,
    pub node: String,
    pub name: String,
}

/// States after which a job never runs again.
pub fn is_terminal(state: &str) -> bool {
    matches!(
        state,
        "COMPLETED"
            | "FAILED"
            | "CANCELLED"
            | "TIMEOUT"
            | "OUT_OF_MEMORY"
            | "NODE_FAIL"
            | "PREEMPTED"
            | "BOOT_FAIL"
            | "DEADLINE"
            | "REVOKED"
    )
}

/// Terminal states that say nothing about the activity: the cluster lost the job. Such an
/// activity is submitted again, up to the configured number of retries.
pub fn is_transient(state: &str) -> bool {
    matches!(state, "NODE_FAIL" | "PREEMPTED" | "BOOT_FAIL" | "LOST")
}

fn run(tool: &str, args: &[String]) -> Result<String> {
    let out = Command::new(tool)
        .args(args)
        .output()
        .map_err(|e| Error::io(format!("cannot run {tool} (is SLURM installed and on PATH?)"), e))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(Error::msg(format!("{tool} {} failed ({}): {}", args.join(" "), out.status, err.trim())));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Submits `script` with `args`; returns the job id (the array's base id).
pub fn sbatch(args: &[String], script: &Path) -> Result<String> {
    SBATCH.fetch_add(1, Ordering::Relaxed);
    let mut all = vec!["--parsable".to_string()];
    all.extend(args.iter().cloned());
    all.push(script.to_string_lossy().into_owned());
    let out = run("sbatch", &all)?;
    parse_sbatch(&out).ok_or_else(|| Error::msg(format!("sbatch printed no job id: {}", out.trim())))
}

/// `sbatch --parsable` prints `id` or `id;cluster`.
pub fn parse_sbatch(out: &str) -> Option<String> {
    let id = out.trim().split(';').next()?.trim();
    (!id.is_empty() && id.bytes().all(|b| b.is_ascii_digit())).then(|| id.to_string())
}

/// The user's jobs the controller holds now (pending, running, completing), one line per
/// array task.
pub fn squeue() -> Result<HashMap<String, Queued>> {
    SQUEUE.fetch_add(1, Ordering::Relaxed);
    let out = run("squeue", &["-h".into(), "-r".into(), "--me".into(), "-o".into(), "%i|%T|%N|%j".into()])?;
    Ok(parse_squeue(&out))
}

pub fn parse_squeue(out: &str) -> HashMap<String, Queued> {
    out.lines()
        .filter_map(|l| {
            let mut f = l.splitn(4, '|');
            let id = f.next()?.trim();
            let state = f.next()?.trim().to_string();
            let node = f.next().unwrap_or("").trim().to_string();
            let name = f.next().unwrap_or("").trim().to_string();
            (!id.is_empty()).then(|| (id.to_string(), Queued { state, node, name }))
        })
        .collect()
}

/// Accounting records of the given array jobs (base ids), one per task.
pub fn sacct(base_ids: &[String]) -> Result<HashMap<String, JobState>> {
    SACCT.fetch_add(1, Ordering::Relaxed);
    let out = run(
        "sacct",
        &[
            "-n".into(),
            "-P".into(),
            "-j".into(),
            base_ids.join(","),
            "-o".into(),
            "JobID,State,ExitCode,NodeList,ElapsedRaw,JobName".into(),
        ],
    )?;
    Ok(parse_sacct(&out))
}

pub fn parse_sacct(out: &str) -> HashMap<String, JobState> {
    let mut jobs: HashMap<String, JobState> = HashMap::new();
    let mut batch_exit: HashMap<String, String> = HashMap::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split('|').map(str::trim).collect();
        if f.len() < 6 || f[0].contains('[') {
            continue; // a pending array's aggregate line
        }
        let state = f[1].split_whitespace().next().unwrap_or("").to_string();
        match f[0].split_once('.') {
            Some((job, "batch")) => {
                batch_exit.insert(job.to_string(), f[2].to_string());
            }
            Some(_) => {}
            None => {
                jobs.insert(
                    f[0].to_string(),
                    JobState {
                        state,
                        exit_code: f[2].to_string(),
                        node: f[3].to_string(),
                        elapsed_s: f[4].parse().ok(),
                        name: f[5].to_string(),
                    },
                );
            }
        }
    }
    for (id, j) in jobs.iter_mut() {
        if let Some(e) = batch_exit.get(id) {
            if j.exit_code == "0:0" && e != "0:0" {
                j.exit_code = e.clone();
            }
        }
    }
    jobs
}

/// Cancels the given jobs (ids or array tasks). Errors are reported, not fatal: a job that
/// already ended cannot be cancelled and needs not be.
pub fn scancel(ids: &[String]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    SCANCEL.fetch_add(1, Ordering::Relaxed);
    run("scancel", ids).map(|_| ())
}

/// The base id of the job called `name` that the controller or the accounting knows, if any
/// (a submission whose id was never written down: the coordinator died inside sbatch).
pub fn find_by_name(name: &str) -> Result<Option<String>> {
    SQUEUE.fetch_add(1, Ordering::Relaxed);
    let out = run("squeue", &["-h".into(), "--me".into(), format!("--name={name}"), "-o".into(), "%F".into()])?;
    if let Some(id) = out.lines().map(str::trim).find(|l| !l.is_empty()) {
        return Ok(Some(id.to_string()));
    }
    SACCT.fetch_add(1, Ordering::Relaxed);
    let out = run(
        "sacct",
        &[
            "-n".into(),
            "-P".into(),
            "-X".into(),
            "-S".into(),
            "now-7days".into(),
            format!("--name={name}"),
            "-o".into(),
            "JobID".into(),
        ],
    )
    .unwrap_or_default();
    Ok(out.lines().filter_map(|l| l.trim().split('_').next()).find(|s| !s.is_empty()).map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tools_text_is_parsed_as_slurm_22_05_prints_it() {
        assert_eq!(parse_sbatch("4711\n").as_deref(), Some("4711"));
        assert_eq!(parse_sbatch("4711;cluster\n").as_deref(), Some("4711"));
        assert_eq!(parse_sbatch("sbatch: error\n"), None);
        let q = parse_squeue("1_0|PENDING||s-a\n1_1|RUNNING|localhost|s-a|b\n");
        assert_eq!(q["1_0"], Queued { state: "PENDING".into(), node: String::new(), name: "s-a".into() });
        assert_eq!((q["1_1"].node.as_str(), q["1_1"].name.as_str()), ("localhost", "s-a|b"));
        // Real sacct -P output: a task killed by a signal shows 0:0 on its job line.
        let s = parse_sacct(
            "4_0|FAILED|0:9|localhost|0|x-1\n4_0.batch|CANCELLED|0:9|localhost|0|batch\n\
             5_0|FAILED|3:0|localhost|2|x-2\n5_0.batch|FAILED|3:0|localhost|2|batch\n\
             6_0|CANCELLED by 0|0:0|localhost|7|x-3\n6_0.batch|CANCELLED|0:15|localhost|7|batch\n\
             6_0.extern|COMPLETED|0:0|localhost|7|extern\n7_[0-3]|PENDING|0:0|None assigned|0|x-4\n",
        );
        assert_eq!(s["4_0"].exit_code, "0:9");
        assert_eq!(
            (s["5_0"].state.as_str(), s["5_0"].exit_code.as_str(), s["5_0"].elapsed_s),
            ("FAILED", "3:0", Some(2))
        );
        assert_eq!((s["6_0"].state.as_str(), s["6_0"].exit_code.as_str()), ("CANCELLED", "0:15"));
        assert_eq!(s["6_0"].name, "x-3");
        assert_eq!(s.len(), 3);
        assert!(is_terminal("TIMEOUT") && !is_terminal("COMPLETING") && !is_terminal("PENDING"));
        assert!(is_transient("NODE_FAIL") && is_transient("PREEMPTED") && !is_transient("OUT_OF_MEMORY"));
    }
}
