//! Garbage collection: which products nothing needs, and (only when asked) deleting them.
//!
//! Roots are the outputs of every recipe slot's current activity (what the last run of each
//! recipe produced) and every pin (a named product, typically a paper-level result). Live is
//! the roots and everything in their lineage; the rest is garbage. Deleting removes the
//! object file but keeps its records and manifests, so lineage still answers and a later run
//! recomputes (and re-registers) it. Raw inputs referenced in place are never garbage: their
//! files are not the store's to delete. `gc --delete` (and `rebuild-db`) hold the store's exclusive lock, which
//! every `run` holds shared, so it never deletes under a running recipe.
use crate::provenance::Db;
use crate::store::Store;
use sst1mflow_base::error::{Error, Result};
use std::fs::{File, OpenOptions};

pub use crate::provenance::maintenance::Garbage;

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
    let taken = if exclusive { file.try_lock() } else { file.try_lock_shared() };
    match taken {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            // Say why nothing happens, then wait: the other side finishes on its own.
            eprintln!(
                "{}",
                if exclusive {
                    "waiting for the runs using this store to finish…"
                } else {
                    "waiting for gc --delete or rebuild-db on this store to finish…"
                }
            );
            let r = if exclusive { file.lock() } else { file.lock_shared() };
            r.map_err(|e| Error::io(format!("cannot lock {}", path.display()), e))?;
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(format!("cannot lock {}", path.display()), e)),
    }
    Ok(GcGuard { _file: file })
}

/// Products nothing live needs (see [`Db::garbage`] for what is live) whose objects are in the
/// store: a recomputable output already deleted once consumed has nothing left to free.
pub fn find_garbage(store: &Store, db: &Db) -> Result<Vec<Garbage>> {
    let mut kept = Vec::new();
    for g in db.garbage()? {
        if store.object_path(&g.hash).is_file() || !db.is_recomputable(&g.hash)? {
            kept.push(g);
        }
    }
    Ok(kept)
}

/// Deletes the objects of `garbage` (re-checked under the exclusive lock by the caller).
pub fn delete(store: &Store, db: &Db, garbage: &[Garbage]) -> Result<u64> {
    let mut freed = 0;
    for g in garbage {
        if !crate::store::is_hash(&g.hash) {
            return Err(Error::msg(format!(
                "product record \"{}\" is not a content hash; the database is damaged (run verify, then rebuild-db)",
                g.hash
            )));
        }
        let path = store.object_path(&g.hash);
        // A recomputable output's maker stays reusable: it is remade when needed, as after
        // being consumed in a run. Anything else is marked collected (its maker reruns).
        if !db.is_recomputable(&g.hash)? {
            db.mark_collected(&g.hash)?;
        }
        match std::fs::remove_file(&path) {
            Ok(()) => freed += g.size,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("cannot delete {}", path.display()), e)),
        }
    }
    Ok(freed)
}
