//! Garbage collection: which products nothing needs, and (only when asked) deleting them.
//!
//! Roots are the outputs of every recipe slot's current activity (what the last run of each
//! recipe produced) and every pin (a named product, typically a paper-level result). Live is
//! the roots and everything in their lineage; the rest is garbage. Deleting removes the
//! object file but keeps its records and manifests, so lineage still answers and a later run
//! recomputes (and re-registers) it. `gc --delete` holds the store's exclusive gc lock, which
//! every `run` holds shared, so it never deletes under a running recipe.
use super::Store;
use crate::error::{Error, Result};
use crate::provenance::Db;
use std::fs::{File, OpenOptions};

#[derive(Debug)]
pub struct Garbage {
    pub hash: String,
    pub kind: String,
    pub size: u64,
    pub invalid: bool,
}

/// Held by runs (shared) and by `gc --delete` (exclusive).
pub struct GcGuard {
    _file: File,
}

pub fn guard(store: &Store, exclusive: bool) -> Result<GcGuard> {
    let path = store.root().join("locks").join("gc");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
    let r = if exclusive { file.lock() } else { file.lock_shared() };
    r.map_err(|e| Error::io(format!("cannot lock {}", path.display()), e))?;
    Ok(GcGuard { _file: file })
}

pub fn find_garbage(db: &Db) -> Result<Vec<Garbage>> {
    let sql = "WITH RECURSIVE
        root_acts(id) AS (
            SELECT (SELECT a.id FROM activities a WHERE a.key = s.activity_key AND a.status = 'ok'
                    ORDER BY (a.invalid IS NOT NULL), a.id DESC LIMIT 1)
            FROM recipe_slots s
        ),
        live(hash) AS (
            SELECT g.product_hash FROM generated g WHERE g.activity_id IN (SELECT id FROM root_acts)
            UNION SELECT product_hash FROM pins
            UNION SELECT u.product_hash FROM live JOIN generated g ON g.product_hash = live.hash
                  JOIN used u ON u.activity_id = g.activity_id
        )
        SELECT hash, kind, size, invalid IS NOT NULL FROM products
        WHERE collected = 0 AND hash NOT IN (SELECT hash FROM live) ORDER BY hash";
    let mut stmt = db.conn().prepare(sql)?;
    let rows = stmt
        .query_map([], |r| {
            Ok(Garbage { hash: r.get(0)?, kind: r.get(1)?, size: r.get::<_, i64>(2)? as u64, invalid: r.get(3)? })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rows)
}

/// Deletes the objects of `garbage` (re-checked under the exclusive lock by the caller).
pub fn delete(store: &Store, db: &Db, garbage: &[Garbage]) -> Result<u64> {
    let mut freed = 0;
    let conn = db.conn();
    for g in garbage {
        let path = store.object_path(&g.hash);
        conn.execute_batch("BEGIN IMMEDIATE")?;
        conn.execute("UPDATE products SET collected = 1 WHERE hash = ?1", [&g.hash])?;
        conn.execute(
            "DELETE FROM reusable WHERE activity_id IN (SELECT activity_id FROM generated WHERE product_hash = ?1)",
            [&g.hash],
        )?;
        conn.execute_batch("COMMIT")?;
        match std::fs::remove_file(&path) {
            Ok(()) => freed += g.size,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("cannot delete {}", path.display()), e)),
        }
    }
    Ok(freed)
}
