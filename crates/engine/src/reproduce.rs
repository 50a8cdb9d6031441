//! `reproduce TARGET`: re-execute a product's whole lineage from its raw inputs in a scratch
//! store and compare every intermediate and final content hash with the recorded ones.
//!
//! Activities run in dependency order with exactly their recorded parameters and config
//! subset (and their recorded key, so products that embed it embed the same), each fed the
//! *reproduced* outputs of its upstream activities. The first activity whose bytes differ is
//! named and ends the reproduction, since everything downstream of it would differ too.
//! Activities run through the same activity runner as `run` ([`crate::runner`]), so a stage
//! that panics here is an error naming it, as in a run. Raw inputs referenced in place are
//! read again from their recorded places and must hash as recorded; recomputable outputs
//! deleted once consumed need nothing special, since everything is re-executed anyway.
use crate::provenance::query::{self, Graph};
use crate::provenance::Db;
use crate::runner::{run_activity, Activity};
use crate::stage::{InputFile, Pipeline};
use crate::store::Store;
use sst1mflow_base::error::{Error, Result};
use std::collections::{HashMap, HashSet};

#[derive(Clone, Debug)]
pub struct Row {
    pub stage: String,
    pub key: String,
    pub role: String,
    pub recorded: String,
    pub reproduced: String,
}

impl Row {
    pub fn matches(&self) -> bool {
        self.recorded == self.reproduced
    }
}

#[derive(Debug)]
pub struct Reproduction {
    pub rows: Vec<Row>,
    pub warnings: Vec<String>,
    /// (stage, key) of the first activity whose outputs differ.
    pub first_mismatch: Option<(String, String)>,
    pub raw_inputs: usize,
}

/// Activities of the graph in an order where every maker comes before its users, and the
/// products that must be taken as given: raw inputs, and products reached again through a
/// cycle (content addressing makes an identity step, such as `cat`, use and generate the same
/// product, so its maker depends on it).
fn topological(g: &Graph) -> (Vec<i64>, HashSet<String>) {
    let mut order = Vec::new();
    let mut state: HashMap<i64, bool> = HashMap::new(); // false: on the stack, true: done
    let mut seeds: HashSet<String> = g.products.keys().filter(|h| !g.made_by.contains_key(*h)).cloned().collect();
    let mut ids: Vec<i64> = g.activities.keys().copied().collect();
    ids.sort_by_key(|id| &g.activities[id].key);
    fn visit(g: &Graph, id: i64, state: &mut HashMap<i64, bool>, seeds: &mut HashSet<String>, order: &mut Vec<i64>) {
        if state.contains_key(&id) {
            return;
        }
        state.insert(id, false);
        for (_, _, h) in &g.activities[&id].inputs {
            if let Some(m) = g.made_by.get(h) {
                match state.get(m) {
                    Some(false) => {
                        seeds.insert(h.clone());
                    }
                    Some(true) => {}
                    None => visit(g, *m, state, seeds, order),
                }
            }
        }
        state.insert(id, true);
        order.push(id);
    }
    for id in ids {
        visit(g, id, &mut state, &mut seeds, &mut order);
    }
    (order, seeds)
}

/// Copies a referenced raw input into the scratch store from the first recorded place that
/// still holds its bytes; refuses, naming every place and what is there now, when none does.
fn import_from_places(scratch: &Store, db: &Db, hash: &str) -> Result<crate::store::Digested> {
    let places = db.places(hash)?;
    let mut seen = Vec::new();
    for place in &places {
        match scratch.import_file(std::path::Path::new(&place.path)) {
            Ok(d) if d.hash == hash => return Ok(d),
            Ok(d) => seen.push(format!("{} now holds other bytes (sha256 {})", place.path, d.hash)),
            Err(e) => seen.push(e.to_string()),
        }
    }
    if seen.is_empty() {
        seen.push("no place is recorded".into());
    }
    Err(Error::msg(format!(
        "raw input sha256 {hash} (referenced in place) cannot be read back: {}; it cannot be reproduced from",
        seen.join("; ")
    )))
}

pub fn reproduce(
    pipeline: &Pipeline,
    store: &Store,
    db: &Db,
    target: &str,
    scratch_root: &std::path::Path,
) -> Result<Reproduction> {
    let hash = query::resolve_target(store, db, target)?;
    let g = query::ancestors(db, &hash)?;
    let scratch = Store::open(scratch_root)?;
    let mut result = Reproduction { rows: Vec::new(), warnings: Vec::new(), first_mismatch: None, raw_inputs: 0 };
    // recorded hash → hash in the scratch store
    let mut reproduced: HashMap<String, String> = HashMap::new();
    let (order, seeds) = topological(&g);
    let mut seeds: Vec<&String> = seeds.iter().collect();
    seeds.sort();
    for h in seeds {
        let p = &g.products[h];
        let src = store.object_path(h);
        let d = if src.exists() {
            let d = scratch.import_file(&src)?;
            if d.hash != *h {
                return Err(Error::msg(format!(
                    "raw input object {} is corrupt (hashes to {})",
                    src.display(),
                    d.hash
                )));
            }
            d
        } else if db.is_referenced(h)? {
            import_from_places(&scratch, db, h)?
        } else if p.collected {
            return Err(Error::msg(format!(
                "raw input {h} is no longer in the store (deleted by gc); it cannot be reproduced from"
            )));
        } else {
            return Err(Error::msg(format!("raw input {h} has no object in the store; it cannot be reproduced from")));
        };
        reproduced.insert(h.clone(), d.hash);
        result.raw_inputs += 1;
    }
    let current = pipeline.version();
    let mut versions_warned = HashSet::new();
    // recorded hash → the file name its producing step declared
    let mut names: HashMap<String, String> = HashMap::new();
    for id in order {
        let a = &g.activities[&id];
        if a.pipeline_version != current && versions_warned.insert(a.pipeline_version.clone()) {
            result
                .warnings
                .push(format!("recorded with pipeline version {}, reproduced with {current}", a.pipeline_version));
        }
        let stage = pipeline.stage(&a.stage).ok_or_else(|| {
            Error::msg(format!("activity {} used stage \"{}\", unknown to this build", a.key, a.stage))
        })?;
        if stage.version() != a.stage_version {
            result.warnings.push(format!(
                "stage {} is at version {} here, the record has version {}",
                a.stage,
                stage.version(),
                a.stage_version
            ));
        }
        let roles: Vec<&str> = {
            let mut r: Vec<&str> = a.inputs.iter().map(|(r, _, _)| r.as_str()).collect();
            r.dedup();
            r
        };
        let plan = stage.plan_with_config(
            &a.params,
            &roles,
            Some(&a.config),
            &format!("activity {}", sst1mflow_base::text::short(&a.key, 12)),
        )?;
        let mut inputs: Vec<InputFile> = Vec::with_capacity(a.inputs.len());
        for (role, position, h) in &a.inputs {
            let r = reproduced
                .get(h)
                .ok_or_else(|| Error::msg(format!("input {h} of activity {} was not reproduced", a.key)))?;
            let name = names.get(h).cloned().unwrap_or_else(|| {
                g.products[h]
                    .metadata
                    .get("file_name")
                    .and_then(serde_json::Value::as_str)
                    .unwrap_or("input")
                    .to_string()
            });
            // The recorded hash enters the stage as the key saw it; the bytes are the reproduced ones.
            inputs.push(InputFile {
                role: role.clone(),
                position: *position,
                hash: h.clone(),
                path: scratch.object_path(r),
                name,
            });
        }
        let mut log = Vec::new();
        let activity = Activity {
            stage,
            plan: &plan,
            key: &a.key,
            pipeline_version: &a.pipeline_version,
            params: &a.params,
            config: &a.config,
            inputs: &inputs,
        };
        let published = run_activity(&scratch, &activity, &mut log).map_err(|e| {
            Error::msg(format!(
                "re-running activity {} ({}) failed: {e}\n{}",
                a.key,
                a.stage,
                String::from_utf8_lossy(&log)
            ))
        })?;
        let mut differs = false;
        for (role, recorded) in &a.outputs {
            let declared = plan.outputs.iter().find(|o| &o.role == role).ok_or_else(|| {
                Error::msg(format!("activity {} recorded output \"{role}\" its stage no longer declares", a.key))
            })?;
            names.insert(recorded.clone(), declared.file_name());
            let d = published.iter().find(|p| &p.role == role).expect("every declared output is published");
            differs |= d.hash != *recorded;
            result.rows.push(Row {
                stage: a.stage.clone(),
                key: a.key.clone(),
                role: role.clone(),
                recorded: recorded.clone(),
                reproduced: d.hash.clone(),
            });
            reproduced.insert(recorded.clone(), d.hash.clone());
        }
        if differs {
            result.first_mismatch = Some((a.stage.clone(), a.key.clone()));
            break;
        }
    }
    Ok(result)
}
