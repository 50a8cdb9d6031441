//! The recipe's configuration file, in one place: loaded once per run, pruned for each step to
//! the keys its stage declares ([`subset`], the only part of the config that enters the
//! activity key and the only part the stage is handed), and flattened to dotted keys for "which
//! config keys changed" ([`flatten`], used by `why` and `diff`).
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
/// is an error naming the config file, the key, and the closest existing sibling.
pub fn subset(config: Option<(&Value, &Path)>, keys: &[String], at: &str) -> Result<Value> {
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
}
