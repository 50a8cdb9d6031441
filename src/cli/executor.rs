//! Where a command's activities run: `--executor local` (this machine's cores, the default) or
//! `--executor slurm` with its settings file and the flags that override it. Shared by `run`
//! and `nightly`; the hidden `slurm-worker` subcommand is the job side.
use super::Cli;
use crate::engine::slurm::{worker, SlurmSettings};
use crate::error::{Error, Result};
use clap::{Args, ValueEnum};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, PartialEq, ValueEnum)]
pub enum ExecutorKind {
    /// This machine's cores
    Local,
    /// SLURM jobs (job arrays), submitted and polled by this process
    Slurm,
}

#[derive(Args, Debug)]
pub struct ExecutorArgs {
    /// Where activities run
    #[arg(long, value_enum, default_value = "local")]
    pub executor: ExecutorKind,
    /// SLURM settings (JSON): partition, account, qos, time, mem, cpus_per_task, sbatch_args,
    /// stages and steps (resources by stage or step name), max_jobs, retries, poll_min_s,
    /// poll_max_s, job_name
    #[arg(long, value_name = "FILE")]
    pub slurm_config: Option<PathBuf>,
    /// SLURM partition of every job
    #[arg(long)]
    pub partition: Option<String>,
    /// SLURM account
    #[arg(long)]
    pub account: Option<String>,
    /// SLURM quality of service
    #[arg(long)]
    pub qos: Option<String>,
    /// Time limit of every job (sbatch --time), unless its stage or step sets one
    #[arg(long)]
    pub time: Option<String>,
    /// Memory of every job (sbatch --mem), unless its stage or step sets one
    #[arg(long)]
    pub mem: Option<String>,
    /// CPUs per job (sbatch --cpus-per-task), unless its stage or step sets them
    #[arg(long)]
    pub cpus_per_task: Option<u32>,
    /// Submissions of an activity whose job lost its node (NODE_FAIL, PREEMPTED, BOOT_FAIL)
    #[arg(long)]
    pub retries: Option<u32>,
    /// One more sbatch argument for every job (repeatable), e.g. --sbatch-arg=--constraint=ssd
    #[arg(long = "sbatch-arg", value_name = "ARG", allow_hyphen_values = true)]
    pub sbatch_args: Vec<String>,
}

impl ExecutorArgs {
    /// The SLURM settings (file, then flags), or `None` for the local executor. SLURM flags
    /// without `--executor slurm` are refused: they would be silently ignored.
    pub fn slurm_settings(&self) -> Result<Option<SlurmSettings>> {
        let flags: Vec<&str> = [
            ("--slurm-config", self.slurm_config.is_some()),
            ("--partition", self.partition.is_some()),
            ("--account", self.account.is_some()),
            ("--qos", self.qos.is_some()),
            ("--time", self.time.is_some()),
            ("--mem", self.mem.is_some()),
            ("--cpus-per-task", self.cpus_per_task.is_some()),
            ("--retries", self.retries.is_some()),
            ("--sbatch-arg", !self.sbatch_args.is_empty()),
        ]
        .into_iter()
        .filter_map(|(f, set)| set.then_some(f))
        .collect();
        if self.executor == ExecutorKind::Local {
            if !flags.is_empty() {
                return Err(Error::msg(format!("{} apply only with --executor slurm", flags.join(", "))));
            }
            return Ok(None);
        }
        let mut s = match &self.slurm_config {
            Some(path) => SlurmSettings::from_file(path)?,
            None => SlurmSettings::default(),
        };
        let set = |field: &mut Option<String>, flag: &Option<String>| {
            if flag.is_some() {
                *field = flag.clone();
            }
        };
        set(&mut s.partition, &self.partition);
        set(&mut s.account, &self.account);
        set(&mut s.qos, &self.qos);
        set(&mut s.time, &self.time);
        set(&mut s.mem, &self.mem);
        if self.cpus_per_task.is_some() {
            s.cpus_per_task = self.cpus_per_task;
        }
        if let Some(r) = self.retries {
            s.retries = r;
        }
        s.sbatch_args.extend(self.sbatch_args.iter().cloned());
        Ok(Some(s))
    }

    /// Activities at once: `-j`, else the settings' `max_jobs` on SLURM, else the cores.
    pub fn jobs(&self, jobs: Option<usize>, slurm: Option<&SlurmSettings>) -> usize {
        jobs.unwrap_or_else(|| match slurm {
            Some(s) => s.max_jobs,
            None => std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        })
    }
}

/// `sst1mflow slurm-worker BATCH_DIR`: runs the activity of this array task (from
/// `SLURM_ARRAY_TASK_ID`, or `--task`).
pub fn slurm_worker(cli: &Cli, batch_dir: &Path, task: Option<usize>, per_task: usize) -> Result<i32> {
    let task = match task {
        Some(t) => t,
        None => std::env::var("SLURM_ARRAY_TASK_ID")
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| Error::msg("slurm-worker runs inside a SLURM array job (SLURM_ARRAY_TASK_ID is not set)"))?,
    };
    let store = cli.store_dir();
    let store = std::path::absolute(&store).unwrap_or(store);
    Ok(worker::run_worker(&crate::stages::pipeline(), &store, batch_dir, task, per_task))
}
