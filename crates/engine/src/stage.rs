//! The stage interface: the computations the engine runs, each a function of (inputs, config subset,
//! parameters) → output files, knowing nothing about SQLite, keys or scheduling.
//!
//! A stage declares, before anything runs ([`Stage::plan`]): which config keys it reads (the
//! only part of the config that enters its activity key, and the only part it is handed), and
//! which outputs it will write (so the recipe can be checked and downstream steps wired).
//! It also declares its algorithm version: bump it when a change alters its output bytes, and
//! exactly the activities of that stage (and what depends on their outputs) rerun.
//!
//! At run time ([`Stage::run`]) it gets read-only input paths inside the store, a private
//! work directory, and a log; it writes every declared output inside the work directory. The
//! engine then hashes and publishes them. Stages that write HDF5/FITS embed
//! `ctx.activity_key` and `ctx.pipeline_version` in their products.
use serde_json::{Map, Value};
use sst1mflow_base::error::{Error, Result};
use sst1mflow_base::text::suggestion;
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
#[derive(Clone, Debug)]
pub struct StagePlan {
    /// Dotted config paths, e.g. `event_selection.min_intensity`.
    pub config_keys: Vec<String>,
    pub outputs: Vec<DeclaredOutput>,
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
    /// Checks the config subset before anything runs (after the pipeline's schema check, so
    /// every key in it is known): an error refuses the recipe; the strings returned are
    /// warnings (settings read but not implemented yet), shown to the user.
    fn check_config(&self, _config: &Value, _file: &Path, _at: &str) -> Result<Vec<String>> {
        Ok(Vec::new())
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
}

/// The application's check of a stage's config subset against its configuration schema
/// (`subset`, the config file, the step): an error names the file, the key and the problem.
pub type ConfigSchemaCheck = fn(&Value, &Path, &str) -> Result<()>;

impl Pipeline {
    pub fn new(stages: Vec<&'static dyn Stage>, version: String) -> Pipeline {
        Pipeline { stages, version, config_schema: None }
    }

    /// Every stage's config subset is checked with `check` once, at planning, before the
    /// stage's own [`Stage::check_config`].
    pub fn with_config_schema(mut self, check: ConfigSchemaCheck) -> Pipeline {
        self.config_schema = Some(check);
        self
    }

    pub fn config_schema(&self) -> Option<ConfigSchemaCheck> {
        self.config_schema
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

/// Prunes `config` to the given dotted keys, keeping the nesting. A key absent from the config
/// is an error naming the config file, the key, and the closest existing sibling.
pub fn config_subset(config: Option<(&Value, &Path)>, keys: &[String], at: &str) -> Result<Value> {
    let mut out = Map::new();
    if keys.is_empty() {
        return Ok(Value::Object(out));
    }
    let Some((config, file)) = config else {
        return Err(Error::msg(format!(
            "{at}: reads config key \"{}\", but the recipe names no \"config\" file",
            keys[0]
        )));
    };
    for key in keys {
        let parts: Vec<&str> = key.split('.').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(Error::msg(format!("{at}: config key \"{key}\" is malformed")));
        }
        let mut node = config;
        for (depth, part) in parts.iter().enumerate() {
            let obj = node.as_object().ok_or_else(|| {
                Error::msg(format!(
                    "{}: config key \"{key}\" (read by {at}): \"{}\" is not a section",
                    file.display(),
                    parts[..depth].join(".")
                ))
            })?;
            node = obj.get(*part).ok_or_else(|| {
                Error::msg(format!(
                    "{}: config key \"{key}\" (read by {at}) is not in the config{}",
                    file.display(),
                    suggestion(part, obj.keys().map(String::as_str))
                ))
            })?;
        }
        insert_path(&mut out, &parts, node.clone());
    }
    Ok(Value::Object(out))
}

fn insert_path(map: &mut Map<String, Value>, parts: &[&str], value: Value) {
    if parts.len() == 1 {
        map.insert(parts[0].to_string(), value);
        return;
    }
    let entry = map.entry(parts[0].to_string()).or_insert_with(|| Value::Object(Map::new()));
    if !entry.is_object() {
        // A whole section was already taken; it contains this key too.
        return;
    }
    insert_path(entry.as_object_mut().expect("checked"), &parts[1..], value);
}

/// Flattens nested JSON objects to dotted paths (for "which config keys changed").
pub fn flatten(value: &Value) -> BTreeMap<String, Value> {
    fn walk(prefix: &str, v: &Value, out: &mut BTreeMap<String, Value>) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                for (k, child) in m {
                    let p = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    walk(&p, child, out);
                }
            }
            _ => {
                out.insert(prefix.to_string(), v.clone());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk("", value, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subset_keeps_only_declared_keys() {
        let cfg = json!({"event_selection": {"min_intensity": 50, "max_leakage": 0.2}, "analysis": {"x": 1}});
        let sub =
            config_subset(Some((&cfg, Path::new("c.json"))), &["event_selection.min_intensity".into()], "s").unwrap();
        assert_eq!(sub, json!({"event_selection": {"min_intensity": 50}}));
        let sub = config_subset(
            Some((&cfg, Path::new("c.json"))),
            &["event_selection".into(), "event_selection.min_intensity".into()],
            "s",
        )
        .unwrap();
        assert_eq!(sub, json!({"event_selection": {"min_intensity": 50, "max_leakage": 0.2}}));
        let e = config_subset(Some((&cfg, Path::new("c.json"))), &["event_selection.min_intensty".into()], "s")
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.json") && e.contains("did you mean \"min_intensity\""), "{e}");
        assert_eq!(flatten(&cfg).len(), 3);
    }
}
