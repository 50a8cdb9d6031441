//! `rebuild-db`: recreate the SQLite index from `manifests/` and `objects/` after the database
//! is lost or damaged.
//!
//! The new database is built beside the old one and renamed over it only when complete, so an
//! interrupted rebuild changes nothing. Activities are replayed in the order they ended (ties
//! by key), so histories of failures, invalidations and re-runs come back as they were. What
//! is not rebuilt: the stat cache of outside input files (the next run re-hashes them once)
//! and complete objects that no manifest names (the next run adopts them). A product without
//! its object is a referenced raw input when a manifest names where it was read, recomputable
//! when its manifest says so, and otherwise collected (its maker is no longer reusable).
use super::manifest::{self, read_manifest};
use super::Db;
use crate::store::Store;
use rusqlite::params;
use sst1mflow_base::error::{Error, Result};

#[derive(Debug, Default)]
pub struct RebuildReport {
    pub activities: usize,
    pub products: usize,
    pub missing_objects: usize,
    /// Recomputable outputs whose objects were deleted once consumed (not missing).
    pub recomputable: usize,
}

pub fn rebuild(store: &Store) -> Result<RebuildReport> {
    let root = store.root();
    let mut manifests = Vec::new();
    for path in manifest::all_manifest_paths(root)? {
        manifests.push(read_manifest(&path)?);
    }
    manifests.sort_by(|a, b| (&a.ended_at, &a.key, &a.status).cmp(&(&b.ended_at, &b.key, &b.status)));
    let target = store.db_path();
    let tmp = root.join(format!("{}.rebuild-{}", crate::store::DB_FILE, std::process::id()));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", tmp.display()));
    }
    let mut report = RebuildReport::default();
    {
        let mut db = Db::open(&tmp)?;
        for m in &manifests {
            db.record_activity(m)?;
            report.activities += 1;
        }
        let conn = db.conn();
        conn.execute_batch("BEGIN IMMEDIATE")?;
        for (name, hash) in manifest::read_hash_map(root, "pins.json", false)? {
            conn.execute("INSERT OR REPLACE INTO pins(name, product_hash) VALUES (?1, ?2)", params![name, hash])
                .map_err(|e| Error::db(format!("pin {name} names unknown product {hash}"), e))?;
        }
        for (name, path) in manifest::read_map(root, "recipes.json")? {
            conn.execute("INSERT OR REPLACE INTO recipes(name, path) VALUES (?1, ?2)", params![name, path])?;
            for (slot, key) in manifest::read_hash_map(root, &manifest::slots_file(&name), false)? {
                let (step, item) = slot.split_once('\u{1f}').unwrap_or((&slot, ""));
                conn.execute(
                    "INSERT OR REPLACE INTO recipe_slots(recipe, step, item, activity_key) VALUES (?1, ?2, ?3, ?4)",
                    params![name, step, item, key],
                )?;
            }
        }
        for (hash, why) in manifest::read_hash_map(root, "raw-invalid.json", true)? {
            conn.execute("UPDATE products SET invalid = ?2 WHERE hash = ?1", params![hash, why])?;
        }
        let hashes: Vec<(String, i64, bool, bool)> = conn
            .prepare(
                "SELECT hash, size, recomputable, EXISTS (SELECT 1 FROM places pl WHERE pl.hash = products.hash)
                 FROM products",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
            .collect::<rusqlite::Result<_>>()?;
        report.products = hashes.len();
        for (hash, size, recomputable, has_place) in hashes {
            if store.object_intact(&hash, size as u64) {
                continue;
            }
            if has_place {
                // A raw input whose bytes stay where they were read (the manifests name the place).
                conn.execute("UPDATE products SET referenced = 1 WHERE hash = ?1", [&hash])?;
            } else if recomputable {
                // Deleted once consumed, on purpose: its maker stays reusable and remakes it.
                report.recomputable += 1;
            } else {
                conn.execute("UPDATE products SET collected = 1 WHERE hash = ?1", [&hash])?;
                conn.execute(
                    "DELETE FROM reusable WHERE activity_id IN (SELECT activity_id FROM generated WHERE product_hash = ?1)",
                    [&hash],
                )?;
                report.missing_objects += 1;
            }
        }
        conn.execute_batch("COMMIT")?;
        conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")?;
    }
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", target.display()));
    }
    std::fs::rename(&tmp, &target)
        .map_err(|e| Error::io(format!("cannot move rebuilt database into {}", target.display()), e))?;
    for suffix in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", tmp.display()));
    }
    Ok(report)
}
