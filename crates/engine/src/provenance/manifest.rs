//! Activity manifests: the database's source of truth on disk.
//!
//! Every finished activity writes a manifest, `manifests/ab/<key>.json` (or
//! `<key>.failed.json` for a failed attempt, so a failure never overwrites a success), before
//! its database transaction. It holds everything the database row and edges hold, plus the
//! records of the input products and the recipe slot it ran for. Pins, recipe locations and
//! invalidated raw inputs are kept beside it (`manifests/pins.json`, `manifests/recipes.json`,
//! `manifests/raw-invalid.json`), each rewritten atomically.
//!
//! So SQLite is an index: `rebuild-db` recreates it from `manifests/` and `objects/`, and
//! `verify` checks the two agree. Manifests are written like objects (temp file, fsync,
//! rename) and are deterministic JSON except for the times, host, user and log they record
//! by design; they are not products and have no content hash name.
use crate::provenance::ProductRecord;
use crate::store::is_hash;
use serde::{Deserialize, Serialize};
use sst1mflow_base::error::{Error, Result};
use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const MANIFEST_FORMAT: u32 = 1;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct ManifestProduct {
    pub role: String,
    pub position: u32,
    pub hash: String,
    pub kind: String,
    pub size: u64,
    /// Canonical JSON text.
    pub metadata: String,
    /// A raw input referenced in place: where its bytes were read, with their stat fingerprint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub place: Option<crate::provenance::Place>,
    /// An output deleted from the store once consumed, remade when needed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recomputable: bool,
}

impl ManifestProduct {
    pub fn record(&self) -> ProductRecord {
        ProductRecord {
            hash: self.hash.clone(),
            kind: self.kind.clone(),
            size: self.size,
            metadata: self.metadata.clone(),
        }
    }
}

/// Where in which recipe an activity ran (not part of its key).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Default)]
pub struct Slot {
    pub recipe: String,
    pub step: String,
    pub item: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Manifest {
    pub sst1mflow_manifest: u32,
    pub key: String,
    pub key_schema: u32,
    pub stage: String,
    pub stage_version: String,
    pub pipeline_version: String,
    /// Canonical JSON text of the config subset.
    pub config: String,
    /// Canonical JSON text of the parameters.
    pub params: String,
    pub status: String,
    pub started_at: String,
    pub ended_at: String,
    pub host: String,
    pub user: String,
    pub log: String,
    pub error: Option<String>,
    /// Set by `invalidate`: why this activity's outputs must not be reused.
    pub invalid: Option<String>,
    pub slot: Slot,
    /// Where it ran when not on the recording machine's cores: the cluster job (executor, job
    /// id, node, state, exit code, elapsed seconds, attempts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub executor: Option<serde_json::Value>,
    pub used: Vec<ManifestProduct>,
    pub generated: Vec<ManifestProduct>,
}

/// Writes `bytes` to `path` atomically and durably (temp file beside it, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().expect("manifest path has a parent");
    fs::create_dir_all(dir).map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    let tmp =
        dir.join(format!(".{}.{}.tmp", path.file_name().unwrap_or_default().to_string_lossy(), std::process::id()));
    let result = (|| {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(Error::io(format!("cannot write {}", path.display()), e));
    }
    Ok(())
}

pub fn manifest_path(root: &Path, key: &str, ok: bool) -> PathBuf {
    let name = if ok { format!("{key}.json") } else { format!("{key}.failed.json") };
    root.join("manifests").join(&key[..2]).join(name)
}

pub fn write_manifest(root: &Path, m: &Manifest) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(m).expect("manifest serialises");
    write_atomic(&manifest_path(root, &m.key, m.status == "ok"), &bytes)
}

pub fn read_manifest(path: &Path) -> Result<Manifest> {
    let bytes = fs::read(path).map_err(|e| Error::io(format!("cannot read manifest {}", path.display()), e))?;
    let m: Manifest = serde_json::from_slice(&bytes)
        .map_err(|e| Error::msg(format!("manifest {} is corrupt: {e}", path.display())))?;
    if m.sst1mflow_manifest != MANIFEST_FORMAT {
        return Err(Error::msg(format!(
            "manifest {} has format {}, this sst1mflow reads {MANIFEST_FORMAT}",
            path.display(),
            m.sst1mflow_manifest
        )));
    }
    let not_hash = |what: &str, h: &str| {
        Error::msg(format!("manifest {} is corrupt: its {what} \"{h}\" is not 64 lowercase hex digits", path.display()))
    };
    if !is_hash(&m.key) {
        return Err(not_hash("activity key", &m.key));
    }
    for p in m.used.iter().chain(&m.generated) {
        if !is_hash(&p.hash) {
            return Err(not_hash(&format!("product hash (role {})", p.role), &p.hash));
        }
    }
    Ok(m)
}

/// Every activity manifest path, sorted.
pub fn all_manifest_paths(root: &Path) -> Result<Vec<PathBuf>> {
    let dir = root.join("manifests");
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(&dir) else { return Ok(out) };
    for e in entries.flatten() {
        let p = e.path();
        if !p.is_dir() {
            continue;
        }
        for f in fs::read_dir(&p).map_err(|e| Error::io(format!("cannot list {}", p.display()), e))?.flatten() {
            let name = f.file_name().to_string_lossy().to_string();
            if name.ends_with(".json") && !name.starts_with('.') {
                out.push(f.path());
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A small JSON map kept as one file under `manifests/` (pins, recipes, raw invalidations).
pub fn read_map(root: &Path, name: &str) -> Result<BTreeMap<String, String>> {
    let path = root.join("manifests").join(name);
    match fs::read(&path) {
        Ok(bytes) => {
            serde_json::from_slice(&bytes).map_err(|e| Error::msg(format!("{} is corrupt: {e}", path.display())))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(Error::io(format!("cannot read {}", path.display()), e)),
    }
}

/// A map file whose keys (`hash_keys`) or values are content hashes or activity keys, each
/// checked to be one ([`is_hash`]); an error names the file and the entry.
pub fn read_hash_map(root: &Path, name: &str, hash_keys: bool) -> Result<BTreeMap<String, String>> {
    let map = read_map(root, name)?;
    for (k, v) in &map {
        let h = if hash_keys { k } else { v };
        if !is_hash(h) {
            return Err(Error::msg(format!(
                "{} is corrupt: entry \"{k}\": \"{h}\" is not 64 lowercase hex digits",
                root.join("manifests").join(name).display()
            )));
        }
    }
    Ok(map)
}

pub fn write_map(root: &Path, name: &str, map: &BTreeMap<String, String>) -> Result<()> {
    let bytes = serde_json::to_vec_pretty(map).expect("map serialises");
    write_atomic(&root.join("manifests").join(name), &bytes)
}

/// The recipe slots map file for one recipe: "step\u{1f}item" → key.
pub fn slots_file(recipe: &str) -> String {
    format!("slots-{recipe}.json")
}

/// The user running this process: `$USER`/`$LOGNAME`, else the passwd entry of the real uid.
pub fn user_name() -> String {
    if let Ok(u) = std::env::var("USER").or_else(|_| std::env::var("LOGNAME")) {
        if !u.is_empty() {
            return u;
        }
    }
    let uid = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
        s.lines().find(|l| l.starts_with("Uid:")).and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
    });
    let Some(uid) = uid else { return "unknown".into() };
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|p| {
            p.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2] == uid).then(|| f[0].to_string())
            })
        })
        .unwrap_or_else(|| format!("uid {uid}"))
}
