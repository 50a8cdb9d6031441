//! Why an activity must run: a comparison of the key it would have now with the activity last
//! run at the same recipe slot (recipe, step, fan-out item). Stale is decided by hashes only;
//! this module only explains, component by component, what changed.
//!
//! The explanation is typed ([`StaleReason`], made of [`Change`]s), as cargo keeps its
//! `DirtyReason`: tests and scripts match on it, people read its `Display` form (the text
//! `run --dry-run` and `status` print) and scripts its JSON form.
use crate::config::flatten;
use crate::key::KeyMaterial;
use crate::provenance::Db;
use serde_json::{json, Value};
use sst1mflow_base::error::Result;
use std::collections::BTreeMap;

fn short(h: &str) -> &str {
    &h[..h.len().min(12)]
}

/// One component of an activity that differs from the one last run at its recipe slot.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    PipelineVersion {
        from: String,
        to: String,
    },
    Stage {
        from: String,
        to: String,
    },
    StageVersion {
        from: String,
        to: String,
    },
    /// A config key (dotted path); `None` is absent.
    Config {
        key: String,
        from: Option<Value>,
        to: Option<Value>,
    },
    /// A step parameter (dotted path); `None` is absent.
    Param {
        key: String,
        from: Option<Value>,
        to: Option<Value>,
    },
    /// An input role now has a different number of files.
    InputCount {
        role: String,
        from: usize,
        to: usize,
    },
    /// The single file of an input role has other content.
    Input {
        role: String,
        from: String,
        to: String,
    },
    /// Some of the files of a many-file input role have other content.
    InputFiles {
        role: String,
        changed: usize,
        of: usize,
    },
    InputAdded {
        role: String,
    },
    InputRemoved {
        role: String,
    },
    /// Nothing above differs: the key's encoding itself changed.
    KeySchema,
}

/// Why an activity must (re)run.
#[derive(Clone, Debug, PartialEq)]
pub enum StaleReason {
    /// Nothing ran at this slot, and no activity has this key.
    New,
    /// The slot already points at this key, but it never completed.
    NeverCompleted,
    PreviousAttemptFailed,
    Invalidated(String),
    /// The activity is recorded, but its outputs were deleted by gc or are damaged.
    OutputsMissing,
    /// What differs from the activity last run at the slot.
    Changed(Vec<Change>),
}

fn show(v: &Option<Value>) -> String {
    v.as_ref().map(|v| v.to_string()).unwrap_or_else(|| "(absent)".into())
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::PipelineVersion { from, to } => write!(f, "pipeline version changed: {from} → {to}"),
            Change::Stage { from, to } => write!(f, "stage changed: {from} → {to}"),
            Change::StageVersion { from, to } => write!(f, "stage version changed: {from} → {to}"),
            Change::Config { key, from, to } => write!(f, "config {key}: {} → {}", show(from), show(to)),
            Change::Param { key, from, to } => write!(f, "param {key}: {} → {}", show(from), show(to)),
            Change::InputCount { role, from, to } => write!(f, "input {role}: {from} files → {to}"),
            Change::Input { role, from, to } => write!(f, "input {role} changed: {} → {}", short(from), short(to)),
            Change::InputFiles { role, changed, of } => write!(f, "input {role}: {changed} of {of} files changed"),
            Change::InputAdded { role } => write!(f, "input {role} added"),
            Change::InputRemoved { role } => write!(f, "input {role} removed"),
            Change::KeySchema => f.write_str("key schema changed"),
        }
    }
}

impl std::fmt::Display for StaleReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StaleReason::New => f.write_str("new"),
            StaleReason::NeverCompleted => f.write_str("never completed"),
            StaleReason::PreviousAttemptFailed => f.write_str("previous attempt failed"),
            StaleReason::Invalidated(why) => write!(f, "invalidated: {why}"),
            StaleReason::OutputsMissing => f.write_str("recorded outputs are missing (deleted by gc) or damaged"),
            StaleReason::Changed(changes) => {
                for (i, c) in changes.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{c}")?;
                }
                Ok(())
            }
        }
    }
}

impl Change {
    pub fn to_json(&self) -> Value {
        let opt = |v: &Option<Value>| v.clone().unwrap_or(Value::Null);
        match self {
            Change::PipelineVersion { from, to } => json!({"what": "pipeline_version", "from": from, "to": to}),
            Change::Stage { from, to } => json!({"what": "stage", "from": from, "to": to}),
            Change::StageVersion { from, to } => json!({"what": "stage_version", "from": from, "to": to}),
            Change::Config { key, from, to } => {
                json!({"what": "config", "key": key, "from": opt(from), "to": opt(to), "absent_before": from.is_none(), "absent_now": to.is_none()})
            }
            Change::Param { key, from, to } => {
                json!({"what": "param", "key": key, "from": opt(from), "to": opt(to), "absent_before": from.is_none(), "absent_now": to.is_none()})
            }
            Change::InputCount { role, from, to } => {
                json!({"what": "input_count", "role": role, "from": from, "to": to})
            }
            Change::Input { role, from, to } => json!({"what": "input", "role": role, "from": from, "to": to}),
            Change::InputFiles { role, changed, of } => {
                json!({"what": "input_files", "role": role, "changed": changed, "of": of})
            }
            Change::InputAdded { role } => json!({"what": "input_added", "role": role}),
            Change::InputRemoved { role } => json!({"what": "input_removed", "role": role}),
            Change::KeySchema => json!({"what": "key_schema"}),
        }
    }
}

impl StaleReason {
    /// `{"kind": …}` plus, for `changed`, the list of changes and, for `invalidated`, why.
    pub fn to_json(&self) -> Value {
        match self {
            StaleReason::New => json!({"kind": "new"}),
            StaleReason::NeverCompleted => json!({"kind": "never_completed"}),
            StaleReason::PreviousAttemptFailed => json!({"kind": "previous_attempt_failed"}),
            StaleReason::Invalidated(why) => json!({"kind": "invalidated", "why": why}),
            StaleReason::OutputsMissing => json!({"kind": "outputs_missing"}),
            StaleReason::Changed(changes) => {
                json!({"kind": "changed", "changes": changes.iter().map(Change::to_json).collect::<Vec<_>>()})
            }
        }
    }
}

fn json_diff(
    old: &str,
    new: &str,
    make: impl Fn(String, Option<Value>, Option<Value>) -> Change,
    out: &mut Vec<Change>,
) {
    let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
    let (a, b) = (flatten(&parse(old)), flatten(&parse(new)));
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        if a.get(k) != b.get(k) {
            out.push(make(k.clone(), a.get(k).cloned(), b.get(k).cloned()));
        }
    }
}

/// Why the planned activity (its `key`, and what the key was computed from) must run. Only
/// called for activities that are not reusable.
pub fn reason(db: &Db, recipe: &str, step: &str, item: &str, key: &str, p: &KeyMaterial) -> Result<StaleReason> {
    let same_key = |none: StaleReason| -> Result<StaleReason> {
        Ok(match db.activity_by_key(key)? {
            Some(a) if a.status == "failed" => StaleReason::PreviousAttemptFailed,
            Some(a) if a.invalid.is_some() => StaleReason::Invalidated(a.invalid.unwrap_or_default()),
            Some(_) => StaleReason::OutputsMissing,
            None => none,
        })
    };
    let Some(slot_key) = db.slot_key(recipe, step, item)? else {
        return same_key(StaleReason::New);
    };
    if slot_key == key {
        return same_key(StaleReason::NeverCompleted);
    }
    let Some(old) = db.activity_by_key(&slot_key)? else {
        return Ok(StaleReason::New);
    };
    let mut why = Vec::new();
    if old.pipeline_version != p.pipeline_version {
        why.push(Change::PipelineVersion { from: old.pipeline_version.clone(), to: p.pipeline_version.to_string() });
    }
    if old.stage != p.stage {
        why.push(Change::Stage { from: old.stage.clone(), to: p.stage.to_string() });
    } else if old.stage_version != p.stage_version {
        why.push(Change::StageVersion { from: old.stage_version.clone(), to: p.stage_version.to_string() });
    }
    json_diff(&old.config, p.config, |key, from, to| Change::Config { key, from, to }, &mut why);
    json_diff(&old.params, p.params, |key, from, to| Change::Param { key, from, to }, &mut why);
    let group = |list: &mut dyn Iterator<Item = (&String, &String)>| {
        let mut m: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (r, h) in list {
            m.entry(r.clone()).or_default().push(h.clone());
        }
        m
    };
    let a = group(&mut old.used.iter().map(|(r, _, h)| (r, h)));
    let b = group(&mut p.inputs.iter().map(|i| (&i.role, &i.hash)));
    let mut roles: Vec<&String> = a.keys().chain(b.keys()).collect();
    roles.sort();
    roles.dedup();
    for role in roles {
        let role_s = role.clone();
        match (a.get(role), b.get(role)) {
            (Some(x), Some(y)) if x == y => {}
            (Some(x), Some(y)) if x.len() != y.len() => {
                why.push(Change::InputCount { role: role_s, from: x.len(), to: y.len() })
            }
            (Some(x), Some(y)) => {
                if x.len() == 1 {
                    why.push(Change::Input { role: role_s, from: x[0].clone(), to: y[0].clone() });
                } else {
                    let changed = (0..x.len()).filter(|&i| x[i] != y[i]).count();
                    why.push(Change::InputFiles { role: role_s, changed, of: x.len() });
                }
            }
            (None, Some(_)) => why.push(Change::InputAdded { role: role_s }),
            (Some(_), None) => why.push(Change::InputRemoved { role: role_s }),
            (None, None) => {}
        }
    }
    if why.is_empty() {
        why.push(Change::KeySchema);
    }
    Ok(StaleReason::Changed(why))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_render_as_text_and_json() {
        let r = StaleReason::Changed(vec![
            Change::Config { key: "event_selection.min_intensity".into(), from: Some(json!(50)), to: Some(json!(60)) },
            Change::Input { role: "dl1".into(), from: "a".repeat(64), to: "b".repeat(64) },
            Change::Param { key: "seed".into(), from: None, to: Some(json!(3)) },
        ]);
        assert_eq!(
            r.to_string(),
            "config event_selection.min_intensity: 50 → 60; input dl1 changed: aaaaaaaaaaaa → bbbbbbbbbbbb; \
             param seed: (absent) → 3"
        );
        let j = r.to_json();
        assert_eq!(j["kind"], "changed");
        assert_eq!(j["changes"][0]["key"], "event_selection.min_intensity");
        assert_eq!(j["changes"][2]["absent_before"], true);
        assert_eq!(StaleReason::New.to_json(), json!({"kind": "new"}));
        assert_eq!(StaleReason::Invalidated("bad calibration".into()).to_string(), "invalidated: bad calibration");
    }
}
