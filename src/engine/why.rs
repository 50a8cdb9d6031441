//! Why an activity must run: a comparison of the key it would have now with the activity last
//! run at the same recipe slot (recipe, step, fan-out item). Stale is decided by hashes only;
//! this module only explains, component by component, what changed.
use crate::error::Result;
use crate::provenance::Db;
use crate::stages::flatten;
use serde_json::Value;
use std::collections::BTreeMap;

/// What a planned activity is made of, for comparison with a recorded one.
pub struct Planned<'a> {
    pub key: &'a str,
    pub stage: &'a str,
    pub stage_version: &'a str,
    pub pipeline_version: &'a str,
    pub config: &'a str,
    pub params: &'a str,
    /// (role, position, hash)
    pub inputs: &'a [(String, u32, String)],
}

fn short(h: &str) -> &str {
    &h[..h.len().min(12)]
}

fn json_diff(label: &str, old: &str, new: &str, out: &mut Vec<String>) {
    let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
    let (a, b) = (flatten(&parse(old)), flatten(&parse(new)));
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    let show = |v: Option<&Value>| v.map(|v| v.to_string()).unwrap_or_else(|| "(absent)".into());
    for k in keys {
        if a.get(k) != b.get(k) {
            out.push(format!("{label} {k}: {} → {}", show(a.get(k)), show(b.get(k))));
        }
    }
}

/// A one-line, human-readable reason. `None` from the database side means "new".
pub fn reason(db: &Db, recipe: &str, step: &str, item: &str, p: &Planned) -> Result<String> {
    let same_key = |none: &str| -> Result<String> {
        Ok(match db.activity_by_key(p.key)? {
            Some(a) if a.status == "failed" => "previous attempt failed".to_string(),
            Some(a) if a.invalid.is_some() => format!("invalidated: {}", a.invalid.unwrap_or_default()),
            Some(_) => "recorded outputs are missing (deleted by gc) or damaged".to_string(),
            None => none.to_string(),
        })
    };
    let Some(slot_key) = db.slot_key(recipe, step, item)? else {
        return same_key("new");
    };
    if slot_key == p.key {
        return same_key("never completed");
    }
    let Some(old) = db.activity_by_key(&slot_key)? else {
        return Ok("new".to_string());
    };
    let mut why = Vec::new();
    if old.pipeline_version != p.pipeline_version {
        why.push(format!("pipeline version changed: {} → {}", old.pipeline_version, p.pipeline_version));
    }
    if old.stage != p.stage {
        why.push(format!("stage changed: {} → {}", old.stage, p.stage));
    } else if old.stage_version != p.stage_version {
        why.push(format!("stage version changed: {} → {}", old.stage_version, p.stage_version));
    }
    json_diff("config", &old.config, p.config, &mut why);
    json_diff("param", &old.params, p.params, &mut why);
    let group = |list: &[(String, u32, String)]| {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (r, _, h) in list {
            m.entry(r.clone()).or_default().push(h.clone());
        }
        m
    };
    let (a, b) = (group(&old.used), group(p.inputs));
    let mut roles: Vec<&String> = a.keys().chain(b.keys()).collect();
    roles.sort();
    roles.dedup();
    for role in roles {
        match (a.get(role), b.get(role)) {
            (Some(x), Some(y)) if x == y => {}
            (Some(x), Some(y)) if x.len() != y.len() => {
                why.push(format!("input {role}: {} files → {}", x.len(), y.len()))
            }
            (Some(x), Some(y)) => {
                let changed: Vec<usize> = (0..x.len()).filter(|&i| x[i] != y[i]).collect();
                if x.len() == 1 {
                    why.push(format!("input {role} changed: {} → {}", short(&x[0]), short(&y[0])));
                } else {
                    why.push(format!("input {role}: {} of {} files changed", changed.len(), x.len()));
                }
            }
            (None, Some(_)) => why.push(format!("input {role} added")),
            (Some(_), None) => why.push(format!("input {role} removed")),
            (None, None) => {}
        }
    }
    if why.is_empty() {
        why.push("key schema changed".to_string());
    }
    Ok(why.join("; "))
}
