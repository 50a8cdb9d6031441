//! Store verification: every object re-hashed, every database record checked against the
//! objects, and the damage traced to what was derived from it.
//!
//! Problems (exit non-zero): an object whose bytes do not match its name, a product record
//! whose object is missing or has another size, an `ok` activity without outputs, a database
//! that fails SQLite's own integrity or foreign-key checks, a raw input referenced in place
//! whose bytes are at none of its places any more (missing, moved, or modified without the new
//! bytes being registered). A referenced file changed in place whose new bytes a run already
//! registered is a notice: the old product is history, its place says where it was read.
//! Recomputable outputs deleted once consumed are not missing.
//!
//! Referenced inputs are re-hashed too; with `quick`, one whose stat fingerprint is unchanged
//! is taken as intact (as planning does). Notices (exit zero): complete
//! objects no record names yet (a run was killed between publishing and recording; the next
//! run adopts them) and temp files of dead processes (the next run removes them).
use crate::provenance::Db;
use crate::store::{hash_file, Store};
use serde_json::{json, Value};
use sst1mflow_base::error::Result;
use std::collections::BTreeSet;

#[derive(Debug, Default)]
pub struct VerifyReport {
    pub objects_checked: usize,
    pub bytes_checked: u64,
    pub problems: Vec<String>,
    pub notices: Vec<String>,
    /// Products whose bytes are damaged or gone, and everything derived from them.
    pub damaged: BTreeSet<String>,
    pub descendants: BTreeSet<String>,
    /// Raw inputs referenced in place that were checked, and the bytes re-hashed among them.
    pub referenced_checked: usize,
    pub referenced_bytes: u64,
    /// Recomputable outputs not in the store (deleted once consumed).
    pub recomputable_absent: usize,
}

impl VerifyReport {
    pub fn clean(&self) -> bool {
        self.problems.is_empty()
    }

    pub fn to_json(&self) -> Value {
        json!({
            "clean": self.clean(),
            "objects_checked": self.objects_checked,
            "bytes_checked": self.bytes_checked,
            "problems": self.problems,
            "notices": self.notices,
            "damaged": self.damaged,
            "descendants_of_damaged": self.descendants,
            "referenced_checked": self.referenced_checked,
            "referenced_bytes_checked": self.referenced_bytes,
            "recomputable_absent": self.recomputable_absent,
        })
    }
}

pub fn verify(store: &Store, quick: bool) -> Result<VerifyReport> {
    let mut report = VerifyReport::default();
    let db = Db::open_for_reading(&store.db_path())?;
    let integrity = db.integrity_check()?;
    if integrity != "ok" {
        report.problems.push(format!("database integrity check: {integrity}"));
    }
    let fk_violations = db.foreign_key_violations()?;
    if fk_violations > 0 {
        report.problems.push(format!("database has {fk_violations} dangling references (foreign-key check)"));
    }

    let mut on_disk = BTreeSet::new();
    let objects = store.objects_dir();
    let mut dirs: Vec<_> = std::fs::read_dir(&objects)
        .map_err(|e| sst1mflow_base::error::Error::io(format!("cannot list {}", objects.display()), e))?
        .flatten()
        .map(|e| e.path())
        .collect();
    dirs.sort();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        files.sort();
        for path in files {
            let name = path.file_name().unwrap_or_default().to_string_lossy().to_string();
            match hash_file(&path) {
                Ok(d) => {
                    report.objects_checked += 1;
                    report.bytes_checked += d.size;
                    if d.hash != name {
                        report.problems.push(format!(
                            "object {} is corrupt: its bytes hash to {}",
                            path.display(),
                            d.hash
                        ));
                        report.damaged.insert(name.clone());
                    }
                }
                Err(e) => {
                    report.problems.push(format!("object {} cannot be read: {e}", path.display()));
                    report.damaged.insert(name.clone());
                }
            }
            on_disk.insert(name);
        }
    }

    let mut recorded = BTreeSet::new();
    for (hash, size, recomputable) in db.stored_products()? {
        if !crate::store::is_hash(&hash) {
            report.problems.push(format!("product record \"{hash}\" is not a content hash (64 lowercase hex digits)"));
            continue;
        }
        if !on_disk.contains(&hash) && recomputable {
            // Deleted once consumed, on purpose; its maker remakes it when needed.
            report.recomputable_absent += 1;
        } else if !on_disk.contains(&hash) {
            report.problems.push(format!("product {hash} is recorded but its object is missing"));
            report.damaged.insert(hash.clone());
        } else if let Ok(m) = std::fs::metadata(store.object_path(&hash)) {
            if m.len() != size {
                report.problems.push(format!("product {hash}: recorded size {size}, object has {}", m.len()));
                report.damaged.insert(hash.clone());
            }
        }
        recorded.insert(hash);
    }
    let orphans = on_disk.difference(&recorded).count();
    if orphans > 0 {
        report.notices.push(format!(
            "{orphans} complete object(s) not yet recorded (left by an interrupted run; the next run adopts them)"
        ));
    }
    check_referenced(&db, quick, &mut report)?;
    let empty_ok = db.ok_activities_without_outputs()?;
    if empty_ok > 0 {
        report.problems.push(format!("{empty_ok} successful activities have no recorded output"));
    }
    check_manifests(store, &db, &mut report)?;
    check_embedded_keys(store, &db, &recorded, &mut report)?;
    let stale_tmp = std::fs::read_dir(store.root().join("tmp")).map(|d| d.count()).unwrap_or(0);
    if stale_tmp > 0 {
        report.notices.push(format!(
            "{stale_tmp} temp entries in tmp/ (from running or killed processes; cleaned by the next run)"
        ));
    }

    // Everything derived from damaged products.
    let mut frontier: Vec<String> = report.damaged.iter().cloned().collect();
    while let Some(h) = frontier.pop() {
        for c in db.products_derived_from(&h)? {
            if !report.damaged.contains(&c) && report.descendants.insert(c.clone()) {
                frontier.push(c);
            }
        }
    }
    Ok(report)
}

/// Where a referenced raw input's bytes are now, place by place.
enum PlaceState {
    Intact,
    Missing,
    /// Other bytes are there now: their hash, and whether a run registered them at this path.
    Changed(String, bool),
    Unreadable(String),
}

fn check_referenced(db: &Db, quick: bool, report: &mut VerifyReport) -> Result<()> {
    for (hash, _size) in db.referenced_products()? {
        let places = db.places(&hash)?;
        let mut states = Vec::with_capacity(places.len());
        for place in &places {
            let state = match std::fs::metadata(&place.path) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => PlaceState::Missing,
                Err(e) => PlaceState::Unreadable(e.to_string()),
                Ok(m) => {
                    let unchanged = crate::run::stat_fingerprint(&m) == place.fingerprint();
                    if quick && unchanged {
                        PlaceState::Intact
                    } else {
                        match hash_file(std::path::Path::new(&place.path)) {
                            Ok(d) => {
                                report.referenced_bytes += d.size;
                                if d.hash == hash {
                                    PlaceState::Intact
                                } else {
                                    let registered = db.places(&d.hash)?.iter().any(|p| p.path == place.path);
                                    PlaceState::Changed(d.hash, registered)
                                }
                            }
                            Err(e) => PlaceState::Unreadable(e.to_string()),
                        }
                    }
                }
            };
            states.push(state);
        }
        report.referenced_checked += 1;
        if states.iter().any(|s| matches!(s, PlaceState::Intact)) {
            continue;
        }
        let superseded = !states.is_empty() && states.iter().all(|s| matches!(s, PlaceState::Changed(_, true)));
        for (place, state) in places.iter().zip(&states) {
            let what = match state {
                PlaceState::Intact => continue,
                PlaceState::Missing => "is missing (moved or deleted)".to_string(),
                PlaceState::Unreadable(e) => format!("cannot be read: {e}"),
                PlaceState::Changed(now, true) => format!("was replaced in place by registered bytes sha256 {now}"),
                PlaceState::Changed(now, false) => {
                    format!("was modified in place (now sha256 {now}, not yet registered: the next run registers it)")
                }
            };
            let line = format!("raw input {} (sha256 {hash}) {what}", place.path);
            if superseded {
                report.notices.push(format!("{line}; products made from the old bytes keep their lineage"));
            } else {
                report.problems.push(line);
            }
        }
        if places.is_empty() {
            report.problems.push(format!("raw input {hash} is referenced in place but no place is recorded"));
        }
        if !superseded {
            report.damaged.insert(hash);
        }
    }
    Ok(())
}

/// A product that embeds activity keys must embed at least one from its own recorded lineage
/// (its maker's, or, for a file assembled from others, an ancestor's).
fn check_embedded_keys(store: &Store, db: &Db, recorded: &BTreeSet<String>, report: &mut VerifyReport) -> Result<()> {
    use crate::provenance::query;
    for hash in recorded {
        if report.damaged.contains(hash) {
            continue;
        }
        let path = store.object_path(hash);
        let Ok(keys) = query::embedded_activity_keys(&path) else { continue };
        if keys.is_empty() {
            continue;
        }
        let g = query::ancestors(db, hash)?;
        if !g.made_by.contains_key(hash) {
            continue; // a raw input: whatever it embeds came from elsewhere
        }
        let lineage: BTreeSet<&str> = g.activities.values().map(|a| a.key.as_str()).collect();
        if !keys.iter().any(|k| lineage.contains(k.as_str())) {
            report.problems.push(format!(
                "object {} embeds activity key {}, which is not in its recorded lineage",
                path.display(),
                keys[0]
            ));
            report.damaged.insert(hash.clone());
        }
    }
    Ok(())
}

/// The database must agree with the manifests it is an index of.
fn check_manifests(store: &Store, db: &Db, report: &mut VerifyReport) -> Result<()> {
    use crate::provenance::manifest::{all_manifest_paths, read_manifest};
    let mut with_manifest = BTreeSet::new();
    let mut unrecorded = 0;
    for path in all_manifest_paths(store.root())? {
        let m = match read_manifest(&path) {
            Ok(m) => m,
            Err(e) => {
                report.problems.push(e.to_string());
                continue;
            }
        };
        if m.status != "ok" {
            continue;
        }
        with_manifest.insert(m.key.clone());
        let Some((id, invalid)) = db.newest_ok_activity(&m.key)? else {
            unrecorded += 1;
            continue;
        };
        let mut outs = db.generated_by(id)?;
        outs.sort();
        let mut expected: Vec<(String, String)> =
            m.generated.iter().map(|p| (p.role.clone(), p.hash.clone())).collect();
        expected.sort();
        if outs != expected {
            report.problems.push(format!(
                "activity {}: recorded outputs differ from its manifest {}",
                m.key,
                path.display()
            ));
        }
        if invalid.is_some() != m.invalid.is_some() {
            report.problems.push(format!(
                "activity {}: database says {}, manifest says {}",
                m.key,
                if invalid.is_some() { "invalid" } else { "valid" },
                if m.invalid.is_some() { "invalid" } else { "valid" }
            ));
        }
    }
    if unrecorded > 0 {
        report.notices.push(format!(
            "{unrecorded} manifest(s) not yet recorded (a run was interrupted after writing them; rebuild-db adopts them)"
        ));
    }
    let keys = db.ok_activity_keys()?;
    let missing = keys.iter().filter(|k| !with_manifest.contains(*k)).count();
    if missing > 0 {
        report.problems.push(format!("{missing} recorded activities have no manifest in manifests/"));
    }
    Ok(())
}
