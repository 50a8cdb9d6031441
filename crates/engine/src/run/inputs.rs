//! Input registration: every raw input file of a recipe hashed where it is (or, for a set that
//! asks for it, copied into the store), with the stat cache that spares re-hashing unchanged
//! files.
//!
//! A raw archive is far larger than any analyst's store, so by default inputs are *referenced*:
//! hashed once, never copied, moved or made read-only; the database records the place (path,
//! size, stat fingerprint) where each content hash was seen. A stage reads the file where it
//! is, and the activity checks the fingerprint again after reading (a file changed meanwhile
//! fails the activity, naming it). A file changed in place has a new fingerprint, so it is
//! hashed again and is a new product; the old product and its place stay in the graph.
use super::progress::Progress;
use crate::key::canonical_json;
use crate::provenance::{Db, Place, ProductRecord, StatFingerprint};
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
    /// Where stages read it: the outside file (referenced) or its object (copied).
    pub(super) path: std::path::PathBuf,
    /// For a referenced file: its place, whose fingerprint must still hold after it is read.
    pub(super) place: Option<Place>,
    /// Its size in bytes.
    pub(super) size: u64,
}

pub(crate) fn fingerprint(m: &std::fs::Metadata) -> StatFingerprint {
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
    jobs: usize,
    progress: &mut Progress,
) -> Result<Vec<Vec<RawItem>>> {
    let total: usize = recipe.inputs.iter().map(|s| s.files.len()).sum();
    let mut hashed = hash_new_inputs(db, recipe, jobs, progress)?;
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
            let mut metadata = set.metadata.clone();
            metadata.insert("file_name".into(), Value::String(label.clone()));
            let record = |hash: &str, size: u64| ProductRecord {
                hash: hash.to_string(),
                kind: set.kind.clone(),
                size,
                metadata: canonical_json(&Value::Object(metadata.clone())),
            };
            let place = (!set.copy).then(|| Place::new(&abs_str, &fp));
            let hash = match cached {
                Some(h) if dry_run || !set.copy || store.object_intact(&h, meta.size()) => {
                    if !dry_run && !set.copy {
                        // Known bytes at a known place: the records exist unless another
                        // store's cache row was copied in; make sure, cheaply.
                        if db.product(&h)?.is_none() {
                            switch_to_writing(db, &mut reading)?;
                            db.add_referenced_product(&record(&h, meta.size()), place.as_ref().expect("referenced"))?;
                        }
                    }
                    h
                }
                _ if dry_run => hashed_or_hash(&mut hashed, &abs, &fp)?.hash,
                _ => {
                    switch_to_writing(db, &mut reading)?;
                    // Hashing (or copying) a large file holds no database lock.
                    let d = if set.copy { store.import_file(&abs)? } else { hashed_or_hash(&mut hashed, &abs, &fp)? };
                    if set.copy {
                        db.add_product(&record(&d.hash, d.size))?;
                        db.mark_stored(&d.hash)?;
                    } else {
                        db.add_referenced_product(&record(&d.hash, d.size), place.as_ref().expect("referenced"))?;
                    }
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
            let path = if set.copy { store.object_path(&hash) } else { abs.clone() };
            items.push(RawItem { hash, label: label.clone(), metadata, path, place, size: meta.size() });
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

/// Referenced inputs whose stat fingerprint the cache does not know, hashed on up to `jobs`
/// threads before registration: a night's raw files are tens of gigabytes, and hashing them
/// one after the other leaves all cores but one idle. Keyed by path, with the fingerprint
/// read before hashing (registration uses a digest only when it read the same fingerprint).
fn hash_new_inputs(
    db: &Db,
    recipe: &Recipe,
    jobs: usize,
    progress: &mut Progress,
) -> Result<std::collections::HashMap<std::path::PathBuf, (StatFingerprint, crate::store::Digested)>> {
    let mut todo = Vec::new();
    for set in recipe.inputs.iter().filter(|s| !s.copy) {
        for (path, _) in &set.files {
            // Anything odd (a missing file, …) is left to registration, which names it.
            let Ok(abs) = std::fs::canonicalize(path) else { continue };
            let Ok(meta) = std::fs::metadata(&abs) else { continue };
            let fp = fingerprint(&meta);
            if db.cached_input(&abs.to_string_lossy(), &fp)?.is_none() && !todo.iter().any(|(p, _)| p == &abs) {
                todo.push((abs, fp));
            }
        }
    }
    let mut done = std::collections::HashMap::new();
    if todo.len() < 2 {
        return Ok(done);
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let finished = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..jobs.clamp(1, todo.len()))
            .map(|_| {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some((path, fp)) = todo.get(i) else { break };
                    // A failure is left to registration too, which hashes again and reports it.
                    if let Ok(d) = crate::store::hash_file(path) {
                        results.lock().expect("no panic while holding it").push((path.clone(), (*fp, d)));
                    }
                    finished.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                })
            })
            .collect();
        while !workers.iter().all(|w| w.is_finished()) {
            progress.hashing(finished.load(std::sync::atomic::Ordering::Relaxed), todo.len());
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    });
    done.extend(results.into_inner().expect("threads joined"));
    Ok(done)
}

/// The digest hashed ahead for `abs` if it was read with fingerprint `fp`, else a fresh hash.
fn hashed_or_hash(
    hashed: &mut std::collections::HashMap<std::path::PathBuf, (StatFingerprint, crate::store::Digested)>,
    abs: &std::path::Path,
    fp: &StatFingerprint,
) -> Result<crate::store::Digested> {
    match hashed.remove(abs) {
        Some((seen, d)) if &seen == fp => Ok(d),
        _ => crate::store::hash_file(abs),
    }
}

/// Ends the read transaction before a write (each write commits on its own).
fn switch_to_writing(db: &Db, reading: &mut bool) -> Result<()> {
    if *reading {
        db.commit()?;
        *reading = false;
    }
    Ok(())
}
