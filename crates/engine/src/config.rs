//! The recipe's configuration file, in one place: loaded once per run, pruned for each step to
//! the keys its stage applies ([`subset`], the only part of the config that enters the
//! activity key and the only part the stage is handed), accounted for key by key ([`account`]:
//! each key applied by some step, read without being applied, or read by none, which planning
//! and `config check` show), and flattened to dotted keys for "which config keys changed"
//! ([`flatten`], used by `why` and `diff`).
//!
//! Why the account is kept per key and not per section: an analyst's config is their analysis,
//! and a key that a tool quietly does not apply is a wrong result they cannot see. A section
//! handed whole to a stage would hide the one key in it that the stage never looks at, and
//! would also rerun the stage when that key changes. So stages name what they apply, and name
//! (with a reason) what they read only to check or report; everything else is listed as read by
//! no step.
//!
//! The engine knows no schema: an application that has one passes its check with the
//! [`crate::stage::Pipeline`], and planning runs it on every step's subset.
use serde_json::{Map, Value};
use sst1mflow_base::error::{Error, Result};
use sst1mflow_base::text::suggestion;
use std::collections::BTreeMap;
use std::path::Path;

/// Reads a config file: a JSON object without duplicate keys, or an error naming the file.
pub fn load(path: &Path) -> Result<Value> {
    let v = sst1mflow_base::json::read_user_file(path, "config")?;
    if !v.is_object() {
        return Err(Error::msg(format!("config {}: must be a JSON object", path.display())));
    }
    Ok(v)
}

/// Prunes `config` to the given dotted keys, keeping the nesting. A key absent from the config
/// is an error naming the config file, the key, and the closest existing sibling, unless it is
/// written with a trailing `?` (optional: then it is left out). Paths in `carve_out` are removed
/// from the result (keys read inside an applied section).
pub fn subset(config: Option<(&Value, &Path)>, keys: &[String], at: &str) -> Result<Value> {
    subset_except(config, keys, &[], at)
}

/// [`subset`] without the paths in `carve_out`.
pub fn subset_except(
    config: Option<(&Value, &Path)>,
    keys: &[String],
    carve_out: &[String],
    at: &str,
) -> Result<Value> {
    let mut out = Map::new();
    let required = keys.iter().find(|k| !k.ends_with('?'));
    let Some((config, file)) = config else {
        return match required {
            Some(k) => {
                Err(Error::msg(format!("{at}: reads config key \"{k}\", but the recipe names no \"config\" file")))
            }
            None => Ok(Value::Object(out)),
        };
    };
    // A `*` component stands for every key of its section; each key it stands for is optional.
    let mut concrete: Vec<String> = Vec::new();
    for key in keys {
        let parts: Vec<&str> = key.trim_end_matches('?').split('.').collect();
        if parts.iter().any(|p| p.is_empty()) {
            return Err(Error::msg(format!("{at}: config key \"{key}\" is malformed")));
        }
        if parts.contains(&"*") {
            expand(config, &parts, String::new(), &mut concrete);
        } else {
            concrete.push(key.clone());
        }
    }
    for key in &concrete {
        let (key, optional) = match key.strip_suffix('?') {
            Some(k) => (k, true),
            None => (key.as_str(), false),
        };
        let parts: Vec<&str> = key.split('.').collect();
        if optional && lookup(config, &parts).is_none() {
            continue;
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
    for path in carve_out {
        let parts: Vec<&str> = path.trim_end_matches('?').split('.').collect();
        remove_path(&mut out, &parts);
    }
    Ok(Value::Object(out))
}

/// The keys a path with `*` components stands for in `node`, each optional (`?`).
fn expand(node: &Value, parts: &[&str], prefix: String, out: &mut Vec<String>) {
    let join = |name: &str| if prefix.is_empty() { name.to_string() } else { format!("{prefix}.{name}") };
    let Some((first, rest)) = parts.split_first() else {
        out.push(format!("{prefix}?"));
        return;
    };
    let Some(obj) = node.as_object() else { return };
    if *first == "*" {
        for (name, child) in obj {
            expand(child, rest, join(name), out);
        }
    } else if let Some(child) = obj.get(*first) {
        expand(child, rest, join(first), out);
    }
}

fn lookup<'a>(config: &'a Value, parts: &[&str]) -> Option<&'a Value> {
    parts.iter().try_fold(config, |node, part| node.as_object()?.get(*part))
}

/// Removes `parts` (a `*` component standing for every key) from `map`.
fn remove_path(map: &mut Map<String, Value>, parts: &[&str]) {
    let names: Vec<String> = if parts[0] == "*" { map.keys().cloned().collect() } else { vec![parts[0].to_string()] };
    for name in names {
        if parts.len() == 1 {
            map.remove(&name);
        } else if let Some(Value::Object(child)) = map.get_mut(&name) {
            remove_path(child, &parts[1..]);
        }
    }
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

/// How one key of a config is used: the leaf's dotted path (as written), the steps that apply
/// it, and the steps that read it without applying it, each with why.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyUse {
    pub key: String,
    pub applied_by: Vec<String>,
    pub read_by: Vec<(String, String)>,
}

impl KeyUse {
    pub fn is_unread(&self) -> bool {
        self.applied_by.is_empty() && self.read_by.is_empty()
    }
}

/// Whether the declared path `pattern` (dotted, a `*` component matching any one key, a
/// trailing `?` ignored) is `key` or a section holding it. `key` may hold `*` components too
/// (one declared path against another).
pub fn covers(pattern: &str, key: &str) -> bool {
    let pattern: Vec<&str> = pattern.trim_end_matches('?').split('.').collect();
    let key: Vec<&str> = key.trim_end_matches('?').split('.').collect();
    pattern.len() <= key.len() && pattern.iter().zip(&key).all(|(p, k)| *p == "*" || *k == "*" || p == k)
}

/// Accounts for every leaf key of `config` (nested objects flattened; arrays are values) over
/// the steps' plans: which apply it and which only read it. A path that one step reads inside a
/// section it applies counts as read by that step, not applied.
pub fn account(config: &Value, steps: &[(String, &crate::stage::StagePlan)]) -> Vec<KeyUse> {
    flatten(config)
        .into_keys()
        .map(|key| {
            let mut applied_by = Vec::new();
            let mut read_by = Vec::new();
            for (step, plan) in steps {
                // The most specific declaration wins: a key read inside an applied section is
                // read, a key applied inside a section read for checking is applied.
                let depth = |pattern: &str| pattern.trim_end_matches('?').split('.').count();
                let applied = plan.config_keys.iter().filter(|k| covers(k, &key)).map(|k| depth(k)).max();
                let read = plan.config_read.iter().filter(|r| covers(&r.key, &key)).max_by_key(|r| depth(&r.key));
                match (applied, read) {
                    (Some(a), Some(r)) if depth(&r.key) <= a => applied_by.push(step.clone()),
                    (_, Some(r)) => read_by.push((step.clone(), r.why.clone())),
                    (Some(_), None) => applied_by.push(step.clone()),
                    (None, None) => {}
                }
            }
            KeyUse { key, applied_by, read_by }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subset_keeps_only_declared_keys() {
        let cfg = json!({"event_selection": {"min_intensity": 50, "max_leakage": 0.2}, "analysis": {"x": 1}});
        let sub = subset(Some((&cfg, Path::new("c.json"))), &["event_selection.min_intensity".into()], "s").unwrap();
        assert_eq!(sub, json!({"event_selection": {"min_intensity": 50}}));
        let sub = subset(
            Some((&cfg, Path::new("c.json"))),
            &["event_selection".into(), "event_selection.min_intensity".into()],
            "s",
        )
        .unwrap();
        assert_eq!(sub, json!({"event_selection": {"min_intensity": 50, "max_leakage": 0.2}}));
        let e = subset(Some((&cfg, Path::new("c.json"))), &["event_selection.min_intensty".into()], "s")
            .unwrap_err()
            .to_string();
        assert!(e.contains("c.json") && e.contains("did you mean \"min_intensity\""), "{e}");
        assert_eq!(flatten(&cfg).len(), 3);
    }

    #[test]
    fn optional_keys_and_carve_outs() {
        let cfg = json!({"forest": {"depth": 3, "n_jobs": -1}, "site": {"lat": 1}});
        let c = Some((&cfg, Path::new("c.json")));
        let sub = subset_except(c, &["forest".into(), "extra.x?".into()], &["forest.n_jobs".into()], "s").unwrap();
        assert_eq!(sub, json!({"forest": {"depth": 3}}));
        let sub =
            subset_except(c, &["forest".into(), "site".into()], &["*.n_jobs".into(), "*.lat".into()], "s").unwrap();
        assert_eq!(sub, json!({"forest": {"depth": 3}, "site": {}}));
        let tels = json!({"coords": {"tel_001": {"h": 1, "lat": 2}, "tel_002": {"lat": 3}}});
        let sub = subset(Some((&tels, Path::new("c.json"))), &["coords.*.h".into()], "s").unwrap();
        assert_eq!(sub, json!({"coords": {"tel_001": {"h": 1}}}));
        assert!(subset(c, &["extra.x".into()], "s").is_err());
        assert_eq!(subset(None, &["x?".into()], "s").unwrap(), json!({}));
        assert!(
            covers("forest", "forest.depth") && covers("a.*.b", "a.tel_001.b") && !covers("forest.depth", "forest")
        );
    }

    #[test]
    fn account_names_applied_read_and_unread_keys() {
        use crate::stage::{ConfigRead, StagePlan};
        let cfg = json!({"forest": {"depth": 3, "n_jobs": -1}, "site": {"lat": 1}, "typo": 2});
        let plan = StagePlan {
            config_keys: vec!["forest".into()],
            config_read: vec![ConfigRead::new("forest.n_jobs", "parallelism only")],
            outputs: vec![],
        };
        let uses = account(&cfg, &[("train".into(), &plan)]);
        let get = |k: &str| uses.iter().find(|u| u.key == k).unwrap().clone();
        assert_eq!(get("forest.depth").applied_by, vec!["train".to_string()]);
        assert_eq!(get("forest.n_jobs").read_by, vec![("train".to_string(), "parallelism only".to_string())]);
        assert!(get("site.lat").is_unread() && get("typo").is_unread());
    }
}
