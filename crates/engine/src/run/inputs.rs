//! Input registration: every raw input file of a recipe hashed (dry run) or imported into the
//! store (real run), with the stat cache that spares re-hashing unchanged files.
use super::progress::Progress;
use crate::key::canonical_json;
use crate::provenance::{Db, ProductRecord, StatFingerprint};
use crate::recipe::Recipe;
use crate::store::Store;
use serde_json::{Map, Value};
use sst1mflow_base::error::{Error, Result};
use std::os::unix::fs::MetadataExt;

/// One registered raw input file.
pub(super) struct RawItem {
    pub(super) hash: String,
    pub(super) label: String,
    pub(super) metadata: Map<String, Value>,
}

fn fingerprint(m: &std::fs::Metadata) -> StatFingerprint {
    StatFingerprint {
        dev: m.dev() as i64,
        ino: m.ino() as i64,
        size: m.size() as i64,
        mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
    }
}

/// Hashes (dry run) or imports (real run) every raw input, skipping the re-hash of files whose
/// stat fingerprint is unchanged and whose object is intact.
pub(super) fn register_inputs(
    store: &Store,
    db: &Db,
    recipe: &Recipe,
    dry_run: bool,
    progress: &mut Progress,
) -> Result<Vec<Vec<RawItem>>> {
    let total: usize = recipe.inputs.iter().map(|s| s.files.len()).sum();
    let mut seen = 0;
    let mut sets = Vec::new();
    // Lookups run inside one read transaction (one lock, not one per statement); it is closed
    // before any import, so no lock is held while a large file is copied.
    db.begin()?;
    let mut reading = true;
    for set in &recipe.inputs {
        let mut items = Vec::with_capacity(set.files.len());
        for (path, label) in &set.files {
            seen += 1;
            progress.registering(seen, total);
            let abs = std::fs::canonicalize(path)
                .map_err(|e| Error::io(format!("cannot resolve input {}", path.display()), e))?;
            let abs_str = abs.to_string_lossy().to_string();
            let meta =
                std::fs::metadata(&abs).map_err(|e| Error::io(format!("cannot stat input {}", abs.display()), e))?;
            let fp = fingerprint(&meta);
            let cached = db.cached_input(&abs_str, &fp)?;
            let hash = match cached {
                Some(h) if dry_run || store.object_intact(&h, meta.size()) => h,
                _ if dry_run => crate::store::hash_file(&abs)?.hash,
                _ => {
                    if reading {
                        db.commit()?;
                        reading = false;
                    }
                    let d = store.import_file(&abs)?;
                    let mut metadata = set.metadata.clone();
                    metadata.insert("file_name".into(), Value::String(label.clone()));
                    db.add_product(&ProductRecord {
                        hash: d.hash.clone(),
                        kind: set.kind.clone(),
                        size: d.size,
                        metadata: canonical_json(&Value::Object(metadata)),
                    })?;
                    // Remember the fingerprint read before hashing: if the file changed while
                    // we read it, the next run sees a different fingerprint and hashes again.
                    db.remember_input(&abs_str, &fp, &d.hash)?;
                    d.hash
                }
            };
            if let Some(p) = db.product(&hash)? {
                if let Some(why) = db.product_invalid(&p.hash)? {
                    if !dry_run {
                        return Err(Error::msg(format!(
                            "input {} (sha256 {}) was invalidated: {why}; replace the file before running",
                            abs.display(),
                            p.hash
                        )));
                    }
                }
            }
            let mut metadata = set.metadata.clone();
            metadata.insert("file_name".into(), Value::String(label.clone()));
            items.push(RawItem { hash, label: label.clone(), metadata });
            if !reading {
                db.begin()?;
                reading = true;
            }
        }
        sets.push(items);
    }
    db.commit()?;
    Ok(sets)
}
