//! What the SLURM executor asks of the cluster: the settings file (`--slurm-config`, JSON) and
//! the flags that override it, checked before anything is submitted. Unknown keys, malformed
//! times and memories, and per-stage or per-step entries naming nothing in the recipe are
//! errors: a resource request the user wrote and the executor silently dropped would be a job
//! killed for a reason nobody can see.
use serde::Deserialize;
use sst1mflow_base::error::{Error, Result};
use std::collections::BTreeMap;
use std::path::Path;

/// Resources of one job, as sbatch takes them. Absent fields inherit (step over stage over
/// the defaults).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    pub partition: Option<String>,
    /// sbatch `--time`: minutes, `MM:SS`, `HH:MM:SS`, `D-HH`, `D-HH:MM` or `D-HH:MM:SS`.
    pub time: Option<String>,
    /// sbatch `--mem`: megabytes, or with a K, M, G or T suffix.
    pub mem: Option<String>,
    pub cpus_per_task: Option<u32>,
    /// Activities one array task runs one after the other (default 1). Tiny activities share
    /// a task: the controller starts about one job per free slot per second.
    pub activities_per_task: Option<u32>,
    /// More sbatch arguments, appended after the general ones.
    #[serde(default)]
    pub sbatch_args: Vec<String>,
}

impl Resources {
    /// `self` with every field `over` sets replaced by it (sbatch arguments appended).
    fn overlaid(&self, over: &Resources) -> Resources {
        let mut args = self.sbatch_args.clone();
        args.extend(over.sbatch_args.iter().cloned());
        Resources {
            partition: over.partition.clone().or_else(|| self.partition.clone()),
            time: over.time.clone().or_else(|| self.time.clone()),
            mem: over.mem.clone().or_else(|| self.mem.clone()),
            cpus_per_task: over.cpus_per_task.or(self.cpus_per_task),
            activities_per_task: over.activities_per_task.or(self.activities_per_task),
            sbatch_args: args,
        }
    }

    /// The sbatch arguments these resources give.
    pub fn sbatch_arguments(&self) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(p) = &self.partition {
            a.push(format!("--partition={p}"));
        }
        if let Some(t) = &self.time {
            a.push(format!("--time={t}"));
        }
        if let Some(m) = &self.mem {
            a.push(format!("--mem={m}"));
        }
        if let Some(c) = self.cpus_per_task {
            a.push(format!("--cpus-per-task={c}"));
        }
        a.extend(self.sbatch_args.iter().cloned());
        a
    }

    fn check(&self, what: &str) -> Result<()> {
        if let Some(t) = &self.time {
            if !valid_time(t) {
                return Err(Error::msg(format!(
                    "{what}: time \"{t}\" is not a SLURM time limit (minutes, MM:SS, HH:MM:SS, D-HH, D-HH:MM or D-HH:MM:SS)"
                )));
            }
        }
        if let Some(m) = &self.mem {
            if !valid_mem(m) {
                return Err(Error::msg(format!(
                    "{what}: mem \"{m}\" is not a SLURM memory size (a number of megabytes, or with a K, M, G or T suffix)"
                )));
            }
        }
        if self.cpus_per_task == Some(0) {
            return Err(Error::msg(format!("{what}: cpus_per_task must be at least 1")));
        }
        if self.activities_per_task == Some(0) {
            return Err(Error::msg(format!("{what}: activities_per_task must be at least 1")));
        }
        for a in &self.sbatch_args {
            if !a.starts_with('-') {
                return Err(Error::msg(format!(
                    "{what}: sbatch argument \"{a}\" is not an option (write --name=value)"
                )));
            }
            for reserved in
                ["--array", "--job-name", "--output", "--error", "--parsable", "--wrap", "-J", "-o", "-e", "-a"]
            {
                if a == reserved || a.starts_with(&format!("{reserved}=")) {
                    return Err(Error::msg(format!("{what}: sbatch argument \"{a}\" is set by the executor itself")));
                }
            }
        }
        Ok(())
    }
}

/// The executor's settings: defaults, per-stage and per-step resources, and how it drives
/// the cluster.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SlurmSettings {
    pub account: Option<String>,
    pub qos: Option<String>,
    /// Default resources of every job (the fields of [`Resources`], at the top level).
    pub partition: Option<String>,
    pub time: Option<String>,
    pub mem: Option<String>,
    pub cpus_per_task: Option<u32>,
    pub activities_per_task: Option<u32>,
    #[serde(default)]
    pub sbatch_args: Vec<String>,
    /// Resources by stage name (e.g. "r0-dl1"), over the defaults.
    #[serde(default)]
    pub stages: BTreeMap<String, Resources>,
    /// Resources by recipe step name, over the stage's.
    #[serde(default)]
    pub steps: BTreeMap<String, Resources>,
    /// Most activities submitted and not yet finished at once (`-j` overrides it).
    #[serde(default = "default_max_jobs")]
    pub max_jobs: usize,
    /// How many times an activity whose job died of the cluster (node failure, preemption,
    /// boot failure, lost by the controller) is submitted again.
    #[serde(default = "default_retries")]
    pub retries: u32,
    /// Seconds between polls of squeue/sacct: the first, and the most the backoff reaches
    /// while nothing changes.
    #[serde(default = "default_poll_min")]
    pub poll_min_s: f64,
    #[serde(default = "default_poll_max")]
    pub poll_max_s: f64,
    /// Prefix of every job name (`<prefix>-<batch>`), to find this store's jobs in sacct.
    #[serde(default = "default_job_name")]
    pub job_name: String,
}

fn default_max_jobs() -> usize {
    64
}
fn default_retries() -> u32 {
    2
}
fn default_poll_min() -> f64 {
    1.0
}
fn default_poll_max() -> f64 {
    15.0
}
fn default_job_name() -> String {
    "sst1mflow".into()
}

impl Default for SlurmSettings {
    fn default() -> SlurmSettings {
        serde_json::from_str("{}").expect("defaults")
    }
}

impl SlurmSettings {
    /// Reads a settings file, naming it in every error.
    pub fn from_file(path: &Path) -> Result<SlurmSettings> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("cannot read SLURM settings {}", path.display()), e))?;
        serde_json::from_str(&text).map_err(|e| Error::msg(format!("SLURM settings {}: {e}", path.display())))
    }

    /// Checks every value, and that each per-stage and per-step entry names a stage of the
    /// pipeline and a step of the recipe.
    pub fn check(&self, stage_names: &[&str], step_names: &[&str]) -> Result<()> {
        self.defaults().check("SLURM settings")?;
        for (name, r) in &self.stages {
            if !stage_names.contains(&name.as_str()) {
                return Err(Error::msg(format!(
                    "SLURM settings: stages.{name}: no stage is called \"{name}\" (stages: {})",
                    stage_names.join(", ")
                )));
            }
            r.check(&format!("SLURM settings: stages.{name}"))?;
        }
        for (name, r) in &self.steps {
            if !step_names.contains(&name.as_str()) {
                return Err(Error::msg(format!("SLURM settings: steps.{name}: the recipe has no step \"{name}\"")));
            }
            r.check(&format!("SLURM settings: steps.{name}"))?;
        }
        if self.max_jobs == 0 {
            return Err(Error::msg("SLURM settings: max_jobs must be at least 1"));
        }
        if !(self.poll_min_s > 0.0 && self.poll_max_s >= self.poll_min_s) {
            return Err(Error::msg("SLURM settings: need 0 < poll_min_s <= poll_max_s"));
        }
        if self.job_name.is_empty() || !self.job_name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            return Err(Error::msg(format!(
                "SLURM settings: job_name \"{}\" must be letters, digits, '-', '_' or '.'",
                self.job_name
            )));
        }
        Ok(())
    }

    /// The default resources of every job.
    pub fn defaults(&self) -> Resources {
        Resources {
            partition: self.partition.clone(),
            time: self.time.clone(),
            mem: self.mem.clone(),
            cpus_per_task: self.cpus_per_task,
            activities_per_task: self.activities_per_task,
            sbatch_args: self.sbatch_args.clone(),
        }
    }

    /// The resources of one step's jobs.
    pub fn resources(&self, stage: &str, step: &str) -> Resources {
        let mut r = self.defaults();
        if let Some(s) = self.stages.get(stage) {
            r = r.overlaid(s);
        }
        if let Some(s) = self.steps.get(step) {
            r = r.overlaid(s);
        }
        r
    }

    /// Arguments every job gets (account, qos).
    pub fn common_arguments(&self) -> Vec<String> {
        let mut a = Vec::new();
        if let Some(x) = &self.account {
            a.push(format!("--account={x}"));
        }
        if let Some(x) = &self.qos {
            a.push(format!("--qos={x}"));
        }
        a
    }
}

fn valid_time(t: &str) -> bool {
    let num = |s: &str| !s.is_empty() && s.len() <= 6 && s.bytes().all(|b| b.is_ascii_digit());
    let (days, rest) = match t.split_once('-') {
        Some((d, r)) => (Some(d), r),
        None => (None, t),
    };
    if days.is_some_and(|d| !num(d)) {
        return false;
    }
    let parts: Vec<&str> = rest.split(':').collect();
    parts.len() <= 3 && parts.iter().all(|p| num(p)) && !(days.is_none() && t == "0")
}

fn valid_mem(m: &str) -> bool {
    let digits = m.trim_end_matches(['K', 'M', 'G', 'T', 'k', 'm', 'g', 't']);
    !digits.is_empty() && digits.len() + 1 >= m.len() && digits.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_layer_step_over_stage_over_defaults_and_refuse_what_they_cannot_apply() {
        let s: SlurmSettings = serde_json::from_str(
            r#"{"partition": "short", "time": "30", "mem": "2G", "account": "sst1m",
                "stages": {"r0-dl1": {"time": "2:00:00", "cpus_per_task": 2}},
                "steps": {"dl1-big": {"mem": "16G", "sbatch_args": ["--constraint=ssd"]}}}"#,
        )
        .unwrap();
        s.check(&["r0-dl1", "dl1-dl2"], &["dl1-big", "dl2"]).unwrap();
        let r = s.resources("r0-dl1", "dl1-big");
        assert_eq!(
            r.sbatch_arguments(),
            ["--partition=short", "--time=2:00:00", "--mem=16G", "--cpus-per-task=2", "--constraint=ssd"]
        );
        assert_eq!(s.resources("dl1-dl2", "dl2").sbatch_arguments(), ["--partition=short", "--time=30", "--mem=2G"]);
        assert_eq!(s.common_arguments(), ["--account=sst1m"]);
        assert_eq!((s.max_jobs, s.retries, s.job_name.as_str()), (64, 2, "sst1mflow"));

        let typo = serde_json::from_str::<SlurmSettings>(r#"{"partiton": "x"}"#).unwrap_err().to_string();
        assert!(typo.contains("unknown field `partiton`"), "{typo}");
        let e = s.check(&["dl1-dl2"], &["dl1-big"]).unwrap_err().to_string();
        assert!(e.contains("stages.r0-dl1: no stage is called"), "{e}");
        let e = s.check(&["r0-dl1"], &["dl2"]).unwrap_err().to_string();
        assert!(e.contains("the recipe has no step \"dl1-big\""), "{e}");
        for (bad, what) in [
            (r#"{"time": "1h"}"#, "not a SLURM time limit"),
            (r#"{"mem": "2GB"}"#, "not a SLURM memory size"),
            (r#"{"sbatch_args": ["--array=0-3"]}"#, "set by the executor itself"),
            (r#"{"sbatch_args": ["nodes=2"]}"#, "is not an option"),
            (r#"{"max_jobs": 0}"#, "max_jobs"),
        ] {
            let s: SlurmSettings = serde_json::from_str(bad).unwrap();
            let e = s.check(&[], &[]).unwrap_err().to_string();
            assert!(e.contains(what), "{bad}: {e}");
        }
        for ok in ["1", "90", "10:00", "1:00:00", "2-0", "2-12:30", "1-00:00:00"] {
            assert!(valid_time(ok), "{ok}");
        }
        for ok in ["500", "2G", "1024M", "3t"] {
            assert!(valid_mem(ok), "{ok}");
        }
    }
}
