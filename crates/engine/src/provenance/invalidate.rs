//! Invalidation: marking products that must never be reused (a wrong calibration file, a
//! pipeline version with a bug) together with everything derived from them.
//!
//! Invalid products stay on disk and in the graph, shown as such by `lineage`, `show` and
//! `status`; the activities that made them leave the reuse index, so the next `run` of any
//! recipe that needs them recomputes exactly those. A raw input cannot be recomputed: once
//! invalid, `run` refuses to use it until the file is replaced. The manifests are updated
//! first (they are the source of truth `rebuild-db` reads), then the database.
use super::manifest::{self, manifest_path, read_manifest, write_manifest};
use super::{query, Db};
use crate::store::Store;
use rusqlite::params;
use sst1mflow_base::error::{Error, Result};
use std::collections::{BTreeMap, BTreeSet};

pub enum Selector {
    Product(String),
    PipelineVersion(String),
    Stage { stage: String, version: Option<String> },
}

#[derive(Debug, Default)]
pub struct Plan {
    /// (id, key, stage, stage version) of the successful activities to invalidate.
    pub activities: BTreeMap<i64, (String, String, String)>,
    pub products: BTreeSet<String>,
    /// Raw inputs (no maker) to mark invalid.
    pub raw: BTreeSet<String>,
}

fn outputs_of(db: &Db, id: i64) -> Result<Vec<String>> {
    Ok(db
        .conn()
        .prepare_cached("SELECT product_hash FROM generated WHERE activity_id = ?1")?
        .query_map([id], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?)
}

fn makers(db: &Db, hash: &str) -> Result<Vec<(i64, String, String, String)>> {
    Ok(db
        .conn()
        .prepare_cached(
            "SELECT a.id, a.key, a.stage, a.stage_version FROM generated g JOIN activities a ON a.id = g.activity_id
             WHERE g.product_hash = ?1 AND a.status = 'ok'",
        )?
        .query_map([hash], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?)
}

/// What an invalidation would hit; nothing is changed.
pub fn plan(db: &Db, selector: &Selector, with_descendants: bool) -> Result<Plan> {
    let mut plan = Plan::default();
    let mut seeds: Vec<String> = Vec::new();
    let select = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> Result<Vec<(i64, String, String, String)>> {
        Ok(db
            .conn()
            .prepare(sql)?
            .query_map(p, |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<rusqlite::Result<_>>()?)
    };
    let hits = match selector {
        Selector::Product(hash) => {
            let m = makers(db, hash)?;
            if m.is_empty() {
                plan.raw.insert(hash.clone());
            }
            plan.products.insert(hash.clone());
            seeds.push(hash.clone());
            m
        }
        Selector::PipelineVersion(v) => {
            let hits = select(
                "SELECT id, key, stage, stage_version FROM activities WHERE pipeline_version = ?1 AND status = 'ok'",
                &[v],
            )?;
            if hits.is_empty() {
                let seen: Vec<String> = db
                    .conn()
                    .prepare("SELECT pipeline_version FROM versions ORDER BY last_seen DESC")?
                    .query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<_>>()?;
                return Err(Error::msg(format!(
                    "no successful activity ran with pipeline version \"{v}\"; versions seen: {}",
                    if seen.is_empty() { "(none)".into() } else { seen.join(", ") }
                )));
            }
            hits
        }
        Selector::Stage { stage, version } => {
            let hits = match version {
                Some(n) => select(
                    "SELECT id, key, stage, stage_version FROM activities WHERE stage = ?1 AND stage_version = ?2 AND status = 'ok'",
                    &[stage, n],
                )?,
                None => select(
                    "SELECT id, key, stage, stage_version FROM activities WHERE stage = ?1 AND status = 'ok'",
                    &[stage],
                )?,
            };
            if hits.is_empty() {
                return Err(Error::msg(format!(
                    "no successful activity of stage \"{stage}\"{} is recorded",
                    version.as_ref().map(|v| format!(" version {v}")).unwrap_or_default()
                )));
            }
            hits
        }
    };
    for (id, key, stage, version) in hits {
        for out in outputs_of(db, id)? {
            plan.products.insert(out.clone());
            seeds.push(out);
        }
        plan.activities.insert(id, (key, stage, version));
    }
    if with_descendants {
        for seed in seeds {
            let g = query::descendants(db, &seed)?;
            for (id, a) in &g.activities {
                if a.status == "ok" {
                    plan.activities.insert(*id, (a.key.clone(), a.stage.clone(), a.stage_version.clone()));
                    for (_, h) in &a.outputs {
                        plan.products.insert(h.clone());
                    }
                }
            }
        }
    }
    Ok(plan)
}

/// Applies a plan: manifests first, then the database, in one transaction.
pub fn apply(store: &Store, db: &Db, plan: &Plan, reason: &str) -> Result<()> {
    for (key, _, _) in plan.activities.values() {
        let path = manifest_path(store.root(), key, true);
        if path.exists() {
            let mut m = read_manifest(&path)?;
            if m.invalid.is_none() {
                m.invalid = Some(reason.to_string());
                write_manifest(store.root(), &m)?;
            }
        }
    }
    if !plan.raw.is_empty() {
        let mut raw = manifest::read_map(store.root(), "raw-invalid.json")?;
        for h in &plan.raw {
            raw.entry(h.clone()).or_insert_with(|| reason.to_string());
        }
        manifest::write_map(store.root(), "raw-invalid.json", &raw)?;
    }
    let conn = db.conn();
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| -> Result<()> {
        for id in plan.activities.keys() {
            conn.execute("UPDATE activities SET invalid = ?2 WHERE id = ?1 AND invalid IS NULL", params![id, reason])?;
            conn.execute("DELETE FROM reusable WHERE activity_id = ?1", [id])?;
        }
        let refresh = format!("UPDATE products SET made_by = {} WHERE hash = ?1", super::PREFERRED_MAKER_SQL);
        for h in &plan.products {
            conn.execute("UPDATE products SET invalid = ?2 WHERE hash = ?1 AND invalid IS NULL", params![h, reason])?;
            conn.execute(&refresh, [h])?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT")?,
        Err(e) => {
            conn.execute_batch("ROLLBACK")?;
            return Err(e);
        }
    }
    Ok(())
}
