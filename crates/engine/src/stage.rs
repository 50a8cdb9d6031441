//! The stage interface: the computations the engine runs, each a function of (inputs, config subset,
//! parameters) → output files, knowing nothing about SQLite, keys or scheduling.
//!
//! A stage declares, before anything runs ([`Stage::plan`]): which config keys it applies (the
//! only part of the config that enters its activity key, and the only part it is handed), which
//! keys it reads without applying them (checked at planning, reported, never in the key: a key
//! that cannot change a product must not cause a rerun), and which outputs it will write (so the
//! recipe can be checked and downstream steps wired). Every key of a recipe's config is thus
//! applied by a step, read and reported by one, or read by none, and planning says which
//! ([`crate::config::account`]).
//! It also declares its algorithm version: bump it when a change alters its output bytes, and
//! exactly the activities of that stage (and what depends on their outputs) rerun.
//!
//! At run time ([`Stage::run`], called only by [`crate::runner`]) it gets its inputs (each an
//! [`InputFile`]: role, position, content hash, read-only path, name), its config subset and
//! parameters, a private work directory, and a log; it writes every declared output inside the
//! work directory. The runner then hashes and publishes them. Stages that write HDF5/FITS
//! embed `ctx.activity_key` and `ctx.pipeline_version` in their products.
//!
//! An application hands the engine its stages as a [`Pipeline`], with its pipeline version and
//! its config schema check.
use serde_json::Value;
use sst1mflow_base::error::Result;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// An output a stage promises to write.
#[derive(Clone, Debug)]
pub struct DeclaredOutput {
    pub role: String,
    /// Path relative to the work directory; its last component names the view link.
    pub file: PathBuf,
    pub kind: String,
}

impl DeclaredOutput {
    /// The output's file name (the last component of its path).
    pub fn file_name(&self) -> String {
        self.file.file_name().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| self.role.clone())
    }
}

/// What a stage will read and write, decided from its parameters before anything runs.
#[derive(Clone, Debug, Default)]
pub struct StagePlan {
    /// Dotted config paths the stage applies, e.g. `event_selection.min_intensity` (a section
    /// takes every key in it). They must be in the config, unless written with a trailing `?`
    /// (an optional key: absent, it is absent from the subset too).
    pub config_keys: Vec<String>,
    /// Config paths the stage reads without applying them. Optional; a path inside an applied
    /// section is carved out of it (forests' `n_jobs`).
    pub config_read: Vec<ConfigRead>,
    pub outputs: Vec<DeclaredOutput>,
}

/// A config key a stage reads but does not apply: it is checked at planning (with the applied
/// keys, by [`Stage::check_config`]) and shown with `why`, but it never enters the key and the
/// stage's `run` does not see it.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigRead {
    pub key: String,
    /// Why no product depends on it, e.g. "parallelism only" or "used only by --reclean, which
    /// is not implemented".
    pub why: String,
}

impl ConfigRead {
    pub fn new(key: impl Into<String>, why: impl Into<String>) -> ConfigRead {
        ConfigRead { key: key.into(), why: why.into() }
    }
}

/// What `plan` was given, handed again to [`Stage::check_config`] so that value checks can
/// depend on the step (its telescope, its methods, the inputs it has).
#[derive(Clone, Copy, Debug)]
pub struct StepSetup<'a> {
    pub params: &'a Value,
    pub input_roles: &'a [&'a str],
}

/// A notice about one config key found while checking a step's config: a setting read but not
/// implemented, or applied differently from what its value asks.
#[derive(Clone, Debug, PartialEq)]
pub struct ConfigWarning {
    /// The dotted key (as written in the config, telescope keys included).
    pub key: String,
    /// The whole notice, naming the step (`at`).
    pub message: String,
}

impl ConfigWarning {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> ConfigWarning {
        ConfigWarning { key: key.into(), message: message.into() }
    }
}

/// One input file of an activity, as its key saw it: the role and position it has, the content
/// hash that entered the key, where to read it, and the name it had.
#[derive(Clone, Debug)]
pub struct InputFile {
    pub role: String,
    /// Position within the role (0-based, the recipe's order).
    pub position: u32,
    /// SHA-256 of the content (64 lowercase hex), as in the activity key.
    pub hash: String,
    /// Absolute path of the (read-only) object in the store.
    pub path: PathBuf,
    /// The name the file had where it came from (a raw input's file name, or the file name
    /// its producing step declared), for tools that look at names or extensions.
    pub name: String,
}

/// Everything a stage may look at while running.
pub struct StageContext<'a> {
    /// Input files by role, in position order.
    pub inputs: &'a BTreeMap<String, Vec<InputFile>>,
    pub params: &'a Value,
    /// The config pruned to the declared keys (nested like the original).
    pub config: &'a Value,
    pub plan: &'a StagePlan,
    pub work_dir: &'a Path,
    pub activity_key: &'a str,
    pub pipeline_version: &'a str,
    pub log: &'a mut dyn Write,
}

pub trait Stage: Send + Sync {
    fn name(&self) -> &'static str;
    /// Algorithm version; part of the activity key.
    fn version(&self) -> &'static str;
    /// Checks parameters and input roles; says what will be read and written. `at` names the
    /// recipe step for error messages.
    fn plan(&self, params: &Value, input_roles: &[&str], at: &str) -> Result<StagePlan>;
    /// [`Stage::plan`] when what the stage applies depends on the recipe's config (a section
    /// that, when present, replaces another): planning calls this one, with the whole config
    /// (None without a config file). The default ignores the config.
    fn plan_with_config(
        &self,
        params: &Value,
        input_roles: &[&str],
        _config: Option<&Value>,
        at: &str,
    ) -> Result<StagePlan> {
        self.plan(params, input_roles, at)
    }
    /// The part of the step's config subset that this activity applies, when that depends on
    /// what its inputs hold (dl1-dl2 applies only the site of its DL1's telescope, known from
    /// the file). Called once the activity's inputs exist, before its key is computed; the
    /// result replaces the subset in the key, in the record and in the stage's context, so it
    /// must keep every key the stage will use. None (the default, and whenever the inputs
    /// cannot tell: the activity then fails on its own, naming the file) keeps the step's subset.
    fn config_for_inputs(&self, _config: &Value, _inputs: &[InputFile]) -> Option<Value> {
        None
    }
    /// Checks the config subset (applied and read keys) with the step's parameters and roles before
    /// anything runs (after the pipeline's schema check, so every key in it is known): an
    /// error refuses the recipe; the notices returned (settings read but not implemented,
    /// each naming its key) are shown once per run.
    fn check_config(&self, _config: &Value, _step: &StepSetup, _file: &Path, _at: &str) -> Result<Vec<ConfigWarning>> {
        Ok(Vec::new())
    }
    /// Every config path this stage may apply or read, whatever its parameters (telescope keys
    /// as `tel_NNN`): what `config check` without a recipe shows, and a bound planning holds
    /// each plan to.
    fn config_scope(&self) -> Vec<&'static str> {
        Vec::new()
    }
    /// Whether the pipeline's config schema check applies to this stage's config subset
    /// (see [`Pipeline::with_config_schema`]). The generic `command` stage reads whatever keys
    /// its recipe names, which are the user's, not the application's schema.
    fn uses_config_schema(&self) -> bool {
        true
    }
    /// Whether this output is recomputable unless the recipe step says otherwise: deleted
    /// from the store once every consumer in the run has succeeded, recomputed (to the recorded
    /// hash) when needed again. For bulky intermediates that are cheap to remake next to their
    /// size (simulated R1). The default keeps every output.
    fn output_recomputable(&self, _output: &DeclaredOutput) -> bool {
        false
    }
    /// Runs once, writing every declared output into `ctx.work_dir`.
    fn run(&self, ctx: &mut StageContext) -> Result<()>;
}

/// What an application hands the engine: the stages it offers, by name, and the exact version
/// of the build that runs them (it enters every activity key and is recorded on every activity).
/// The engine knows stages only through this, so it can drive any pipeline's stages.
pub struct Pipeline {
    stages: Vec<&'static dyn Stage>,
    version: String,
    config_schema: Option<ConfigSchemaCheck>,
    config_key_hint: Option<ConfigKeyHint>,
}

/// The application's check of a stage's config subset against its configuration schema
/// (`subset`, the config file, the step): an error names the file, the key and the problem.
pub type ConfigSchemaCheck = fn(&Value, &Path, &str) -> Result<()>;

/// The application's word on one dotted config path no step reads: `None` when its schema
/// knows the key, else what to tell the user (e.g. `not an sst1mpipe key; did you mean "x"?`).
pub type ConfigKeyHint = fn(&str) -> Option<String>;

impl Pipeline {
    pub fn new(stages: Vec<&'static dyn Stage>, version: String) -> Pipeline {
        Pipeline { stages, version, config_schema: None, config_key_hint: None }
    }

    /// Every stage's config subset is checked with `check` once, at planning, before the
    /// stage's own [`Stage::check_config`] (stages that opt out with
    /// [`Stage::uses_config_schema`] excepted).
    pub fn with_config_schema(mut self, check: ConfigSchemaCheck) -> Pipeline {
        self.config_schema = Some(check);
        self
    }

    pub fn config_schema(&self) -> Option<ConfigSchemaCheck> {
        self.config_schema
    }

    /// Config keys that no step reads are shown with `hint`'s word on them (a misspelt key
    /// with its closest known key).
    pub fn with_config_key_hint(mut self, hint: ConfigKeyHint) -> Pipeline {
        self.config_key_hint = Some(hint);
        self
    }

    pub fn config_key_hint(&self) -> Option<ConfigKeyHint> {
        self.config_key_hint
    }

    pub fn stage(&self, name: &str) -> Option<&'static dyn Stage> {
        self.stages.iter().copied().find(|s| s.name() == name)
    }

    pub fn stage_names(&self) -> Vec<&'static str> {
        self.stages.iter().map(|s| s.name()).collect()
    }

    pub fn version(&self) -> &str {
        &self.version
    }
}
