//! Recipes: the declarative description of an analysis, parsed strictly.
//!
//! A recipe is a JSON file:
//!
//! ```json
//! {
//!   "name": "demo",                          // optional; defaults to the file stem
//!   "description": "…",                      // optional
//!   "config": "../config/demo.json",         // optional; the sst1mpipe-style config file
//!   "inputs": {                              // named sets of raw input files
//!     "runs": { "paths": ["demo/runs/*.csv"], "kind": "r0", "metadata": {"tel": 21},
//!               "copy": false }              // optional; true copies the files into the store
//!   },
//!   "steps": [                               // stage invocations, in dependency order
//!     { "name": "select", "stage": "command",
//!       "inputs": { "events": "runs" },      // role -> input set, or "<step>.<output role>", or a list of them
//!       "foreach": "events",                 // one activity per item of this role
//!       "params": { … },                     // validated by the stage
//!       "recomputable": ["out"] }            // optional; outputs deleted once consumed (true/false: all/none)
//!   ],
//!   "outputs": ["select.selected"]           // optional; what the recipe is for (default: every step output)
//! }
//! ```
//!
//! Paths are relative to the recipe file's directory, so a recipe runs the same from any
//! working directory. Globs are expanded in sorted order; a pattern that matches nothing is an
//! error. A step may only refer to input sets and to earlier steps, so a recipe is a DAG by
//! construction. Every object rejects keys it does not know, naming the key, where it is, and
//! the closest valid key.
//!
//! Raw input files are referenced where they are (hashed, never copied or touched) unless
//! their set says `"copy": true`, for a self-contained store. A step's `"recomputable"` overrides
//! which of its outputs its stage marks recomputable (deleted from the store once every consumer
//! in the run has succeeded, recomputed when needed again); it changes no product, so it is not
//! part of any key.
use serde_json::{Map, Value};
use sst1mflow_base::error::{Error, Result};
use sst1mflow_base::text::suggestion;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug)]
pub struct Recipe {
    pub name: String,
    pub file: PathBuf,
    pub description: Option<String>,
    pub config: Option<PathBuf>,
    pub inputs: Vec<InputSet>,
    pub steps: Vec<Step>,
    /// Wanted outputs as (step index, role).
    pub outputs: Vec<(usize, String)>,
}

#[derive(Clone, Debug)]
pub struct InputSet {
    pub name: String,
    pub kind: String,
    pub metadata: Map<String, Value>,
    /// Files in sorted order, each with its fan-out label (its file name).
    pub files: Vec<(PathBuf, String)>,
    /// Copy the files into the store (instead of referencing them where they are).
    pub copy: bool,
}

/// A step's override of which outputs are recomputable.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Recomputable {
    /// Every output (true) or none (false).
    All(bool),
    /// Exactly these output roles.
    Roles(Vec<String>),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    InputSet(usize),
    StepOutput { step: usize, role: String },
}

#[derive(Clone, Debug)]
pub struct Step {
    pub name: String,
    pub stage: String,
    /// (role, source) in the order written.
    pub inputs: Vec<(String, Source)>,
    pub foreach: Option<String>,
    pub params: Value,
    /// `None`: what the stage declares.
    pub recomputable: Option<Recomputable>,
}

/// Walks a JSON object, remembering which keys were consumed so the rest can be rejected.
struct Obj<'a> {
    map: &'a Map<String, Value>,
    at: String,
    file: &'a Path,
}

impl<'a> Obj<'a> {
    fn new(v: &'a Value, at: String, file: &'a Path) -> Result<Obj<'a>> {
        match v {
            Value::Object(map) => Ok(Obj { map, at, file }),
            other => {
                Err(Error::msg(format!("{}: {}: expected an object, found {}", file.display(), at, type_name(other))))
            }
        }
    }

    fn check_keys(&self, allowed: &[&str]) -> Result<()> {
        for k in self.map.keys() {
            if !allowed.contains(&k.as_str()) {
                return Err(Error::msg(format!(
                    "{}: {}: unknown key \"{}\"{}",
                    self.file.display(),
                    self.at,
                    k,
                    suggestion(k, allowed.iter().copied())
                )));
            }
        }
        Ok(())
    }

    fn err(&self, what: &str) -> Error {
        Error::msg(format!("{}: {}: {}", self.file.display(), self.at, what))
    }

    fn opt_str(&self, key: &str) -> Result<Option<&'a str>> {
        match self.map.get(key) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s)),
            Some(other) => Err(self.err(&format!("\"{key}\" must be a string, found {}", type_name(other)))),
        }
    }

    fn req_str(&self, key: &str) -> Result<&'a str> {
        self.opt_str(key)?.ok_or_else(|| self.err(&format!("missing required key \"{key}\"")))
    }

    fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key)
    }
}

pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') && !s.starts_with('-')
}

/// Reads and validates a recipe file. `known_stages` names the stages that exist.
pub fn load(path: &Path, known_stages: &[&str]) -> Result<Recipe> {
    let value = sst1mflow_base::json::read_user_file(path, "recipe")?;
    parse(&value, path, known_stages)
}

fn parse(value: &Value, path: &Path, known_stages: &[&str]) -> Result<Recipe> {
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let base = if base.as_os_str().is_empty() { PathBuf::from(".") } else { base };
    let top = Obj::new(value, "top level".into(), path)?;
    top.check_keys(&["name", "description", "config", "inputs", "steps", "outputs"])?;
    let name = match top.opt_str("name")? {
        Some(n) => n.to_string(),
        None => path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| "recipe".into()),
    };
    if !valid_name(&name) {
        return Err(top.err(&format!("recipe name \"{name}\" may only use letters, digits, '_' and '-'")));
    }
    let description = top.opt_str("description")?.map(str::to_string);
    let config = top.opt_str("config")?.map(|c| base.join(c));

    let mut inputs = Vec::new();
    if let Some(v) = top.get("inputs") {
        let sets = Obj::new(v, "inputs".into(), path)?;
        for (set_name, spec) in sets.map {
            if !valid_name(set_name) || set_name.contains('.') {
                return Err(
                    sets.err(&format!("input set name \"{set_name}\" may only use letters, digits, '_' and '-'"))
                );
            }
            inputs.push(parse_input_set(set_name, spec, &base, path)?);
        }
    }

    let steps_value = top.get("steps").ok_or_else(|| top.err("missing required key \"steps\""))?;
    let steps_list = steps_value.as_array().ok_or_else(|| top.err("\"steps\" must be an array"))?;
    if steps_list.is_empty() {
        return Err(top.err("\"steps\" is empty: a recipe needs at least one step"));
    }
    let mut steps: Vec<Step> = Vec::new();
    for (i, sv) in steps_list.iter().enumerate() {
        let at = match sv.get("name").and_then(Value::as_str) {
            Some(n) => format!("steps[{i}] (\"{n}\")"),
            None => format!("steps[{i}]"),
        };
        let obj = Obj::new(sv, at, path)?;
        obj.check_keys(&["name", "stage", "inputs", "foreach", "params", "recomputable"])?;
        let step_name = obj.req_str("name")?.to_string();
        if !valid_name(&step_name) {
            return Err(obj.err(&format!("step name \"{step_name}\" may only use letters, digits, '_' and '-'")));
        }
        if steps.iter().any(|s| s.name == step_name) {
            return Err(obj.err(&format!("a step named \"{step_name}\" already exists")));
        }
        let stage = obj.req_str("stage")?.to_string();
        if !known_stages.contains(&stage.as_str()) {
            return Err(
                obj.err(&format!("unknown stage \"{stage}\"{}", suggestion(&stage, known_stages.iter().copied())))
            );
        }
        let mut step_inputs = Vec::new();
        if let Some(v) = obj.get("inputs") {
            let io = Obj::new(v, format!("{}.inputs", obj.at), path)?;
            for (role, r) in io.map {
                if !valid_name(role) {
                    return Err(io.err(&format!("input role \"{role}\" may only use letters, digits, '_' and '-'")));
                }
                let expected = || {
                    io.err(&format!(
                        "\"{role}\" must name an input set or \"<step>.<output>\", or be a non-empty list of them"
                    ))
                };
                let references: Vec<&str> = match r {
                    Value::String(s) => vec![s.as_str()],
                    Value::Array(list) if !list.is_empty() => {
                        list.iter().map(|v| v.as_str().ok_or_else(expected)).collect::<Result<_>>()?
                    }
                    _ => return Err(expected()),
                };
                for reference in references {
                    step_inputs.push((role.clone(), resolve_reference(reference, &inputs, &steps, &io, role)?));
                }
            }
        }
        let foreach = obj.opt_str("foreach")?.map(str::to_string);
        if let Some(f) = &foreach {
            if !step_inputs.iter().any(|(r, _)| r == f) {
                let roles: Vec<&str> = step_inputs.iter().map(|(r, _)| r.as_str()).collect();
                return Err(obj.err(&format!(
                    "\"foreach\" names role \"{f}\", which is not one of this step's inputs{}",
                    suggestion(f, roles.iter().copied())
                )));
            }
        }
        let params = obj.get("params").cloned().unwrap_or(Value::Object(Map::new()));
        if !params.is_object() {
            return Err(obj.err("\"params\" must be an object"));
        }
        let recomputable = match obj.get("recomputable") {
            None => None,
            Some(Value::Bool(b)) => Some(Recomputable::All(*b)),
            Some(Value::Array(list)) => Some(Recomputable::Roles(
                list.iter()
                    .map(|v| v.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| obj.err("\"recomputable\" entries must be output roles (strings)"))?,
            )),
            Some(other) => {
                return Err(obj.err(&format!(
                    "\"recomputable\" must be true, false or a list of output roles, found {}",
                    type_name(other)
                )))
            }
        };
        steps.push(Step { name: step_name, stage, inputs: step_inputs, foreach, params, recomputable });
    }

    let mut outputs = Vec::new();
    if let Some(v) = top.get("outputs") {
        let list = v.as_array().ok_or_else(|| top.err("\"outputs\" must be an array of \"<step>.<output>\""))?;
        for item in list {
            let s = item.as_str().ok_or_else(|| top.err("\"outputs\" entries must be strings"))?;
            let (step_name, role) = s
                .split_once('.')
                .ok_or_else(|| top.err(&format!("output \"{s}\" must have the form \"<step>.<output>\"")))?;
            let idx = steps.iter().position(|st| st.name == step_name).ok_or_else(|| {
                top.err(&format!(
                    "output \"{s}\" names unknown step \"{step_name}\"{}",
                    suggestion(step_name, steps.iter().map(|st| st.name.as_str()))
                ))
            })?;
            outputs.push((idx, role.to_string()));
        }
    }
    Ok(Recipe { name, file: path.to_path_buf(), description, config, inputs, steps, outputs })
}

fn parse_input_set(name: &str, spec: &Value, base: &Path, file: &Path) -> Result<InputSet> {
    let obj = Obj::new(spec, format!("inputs.{name}"), file)?;
    obj.check_keys(&["paths", "kind", "metadata", "copy"])?;
    let copy = match obj.get("copy") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(obj.err(&format!("\"copy\" must be true or false, found {}", type_name(other)))),
    };
    let kind = obj.opt_str("kind")?.unwrap_or("file").to_string();
    let metadata = match obj.get("metadata") {
        None => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => return Err(obj.err("\"metadata\" must be an object")),
    };
    let patterns: Vec<&str> = match obj.get("paths") {
        Some(Value::String(s)) => vec![s.as_str()],
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_str().ok_or_else(|| obj.err("\"paths\" entries must be strings")))
            .collect::<Result<_>>()?,
        Some(_) => return Err(obj.err("\"paths\" must be a string or an array of strings")),
        None => return Err(obj.err("missing required key \"paths\"")),
    };
    let mut seen = BTreeSet::new();
    let mut labels = std::collections::HashSet::new();
    let mut files = Vec::new();
    for pattern in patterns {
        let full = base.join(pattern);
        let full_str = full.to_string_lossy().to_string();
        let is_glob = pattern.contains(['*', '?', '[']);
        let mut matched: Vec<PathBuf> = if is_glob {
            glob::glob(&full_str)
                .map_err(|e| obj.err(&format!("bad glob pattern \"{pattern}\": {e}")))?
                .filter_map(|r| r.ok())
                .filter(|p| p.is_file())
                .collect()
        } else {
            if !full.exists() {
                return Err(obj.err(&format!("input file {} does not exist", full.display())));
            }
            if !full.is_file() {
                return Err(obj.err(&format!("input {} is not a regular file", full.display())));
            }
            vec![full.clone()]
        };
        if matched.is_empty() {
            return Err(obj.err(&format!("pattern \"{pattern}\" matches no file (looked in {})", base.display())));
        }
        matched.sort();
        for p in matched {
            if !seen.insert(p.clone()) {
                continue;
            }
            let label = p.file_name().map(|s| s.to_string_lossy().to_string()).unwrap_or_default();
            if !labels.insert(label.clone()) {
                return Err(obj.err(&format!(
                    "two input files are named \"{label}\"; fan-out labels must be unique within a set"
                )));
            }
            files.push((p, label));
        }
    }
    Ok(InputSet { name: name.to_string(), kind, metadata, files, copy })
}

fn resolve_reference(reference: &str, inputs: &[InputSet], steps: &[Step], at: &Obj, role: &str) -> Result<Source> {
    if let Some((step_name, out_role)) = reference.split_once('.') {
        let idx = steps.iter().position(|s| s.name == step_name).ok_or_else(|| {
            at.err(&format!(
                "\"{role}\" refers to \"{reference}\", but no earlier step is named \"{step_name}\"{}",
                suggestion(step_name, steps.iter().map(|s| s.name.as_str()))
            ))
        })?;
        Ok(Source::StepOutput { step: idx, role: out_role.to_string() })
    } else {
        let idx = inputs.iter().position(|s| s.name == reference).ok_or_else(|| {
            at.err(&format!(
                "\"{role}\" refers to unknown input set \"{reference}\"{}",
                suggestion(reference, inputs.iter().map(|s| s.name.as_str()))
            ))
        })?;
        Ok(Source::InputSet(idx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse_value(v: Value) -> Result<Recipe> {
        parse(&v, Path::new("/nonexistent/r.json"), &["command"])
    }

    #[test]
    fn unknown_keys_are_named_with_a_suggestion() {
        let e = parse_value(json!({"stesp": []})).unwrap_err().to_string();
        assert!(e.contains("unknown key \"stesp\"") && e.contains("did you mean \"steps\""), "{e}");
        let e =
            parse_value(json!({"steps": [{"name": "a", "stage": "command", "foreahc": "x"}]})).unwrap_err().to_string();
        assert!(e.contains("steps[0] (\"a\")") && e.contains("did you mean \"foreach\""), "{e}");
        let e = parse_value(json!({"steps": [{"name": "a", "stage": "comand"}]})).unwrap_err().to_string();
        assert!(e.contains("unknown stage \"comand\"; did you mean \"command\""), "{e}");
    }

    #[test]
    fn references_must_point_backwards() {
        let e = parse_value(json!({"steps": [
            {"name": "a", "stage": "command", "inputs": {"x": "b.out"}},
            {"name": "b", "stage": "command"}
        ]}))
        .unwrap_err()
        .to_string();
        assert!(e.contains("no earlier step is named \"b\""), "{e}");
        let r = parse_value(json!({"steps": [
            {"name": "a", "stage": "command"},
            {"name": "b", "stage": "command", "inputs": {"x": "a.out"}, "foreach": "x"}
        ], "outputs": ["b.y"]}))
        .unwrap();
        assert_eq!(r.steps[1].inputs[0].1, Source::StepOutput { step: 0, role: "out".into() });
        assert_eq!(r.outputs, vec![(1, "y".to_string())]);
        assert_eq!(r.name, "r");
    }

    #[test]
    fn missing_input_files_are_errors() {
        let e = parse_value(
            json!({"inputs": {"raw": {"paths": ["nope/*.fits"]}}, "steps": [{"name": "a", "stage": "command"}]}),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("inputs.raw") && e.contains("matches no file"), "{e}");
    }
}
