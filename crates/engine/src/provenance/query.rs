//! Questions asked of the provenance graph: which product a user means, where it came from
//! (ancestors down to raw inputs), and what was derived from it (descendants).
//!
//! Each direction is one recursive SQL query over the `generated`/`used` indexes, followed by
//! bulk loads of the products and activities it reached, so the cost is linear in the size of
//! the answer (a lineage of 10,000 ancestors stays well under the 50 ms goal).
//!
//! When several activities generated the same bytes (the same computation recorded twice, or
//! an invalidated activity and its re-run), lineage follows the preferred one recorded in
//! `products.made_by`: valid before invalid, then the earliest.
use crate::provenance::Db;
use crate::store::{hash_file, Store};
use rusqlite::params;
use serde_json::{json, Value};
use sst1mflow_base::error::{Error, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// JSON kept as its text and parsed on first use: a lineage of 10,000 products need not parse
/// 10,000 metadata documents to answer a query that prints none of them.
#[derive(Clone, Debug, Default)]
pub struct LazyJson {
    text: String,
    value: std::cell::OnceCell<Value>,
}

impl LazyJson {
    pub fn new(text: String) -> LazyJson {
        LazyJson { text, value: std::cell::OnceCell::new() }
    }

    pub fn text(&self) -> &str {
        &self.text
    }
}

impl std::ops::Deref for LazyJson {
    type Target = Value;
    fn deref(&self) -> &Value {
        self.value.get_or_init(|| serde_json::from_str(&self.text).unwrap_or(Value::Null))
    }
}

impl serde::Serialize for LazyJson {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        (**self).serialize(s)
    }
}

#[derive(Clone, Debug)]
pub struct ProductInfo {
    pub hash: String,
    pub kind: String,
    pub size: u64,
    pub metadata: LazyJson,
    pub invalid: Option<String>,
    pub collected: bool,
    /// An output deleted from the store once consumed (remade when needed).
    pub recomputable: bool,
    /// A raw input referenced in place: the paths where its bytes were read.
    pub places: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct ActivityInfo {
    pub id: i64,
    pub key: String,
    pub stage: String,
    pub stage_version: String,
    pub pipeline_version: String,
    pub config: LazyJson,
    pub params: LazyJson,
    pub status: String,
    pub started_at: String,
    pub ended_at: String,
    pub host: String,
    pub user: String,
    pub invalid: Option<String>,
    /// (role, position, product hash)
    pub inputs: Vec<(String, u32, String)>,
    /// (role, product hash)
    pub outputs: Vec<(String, String)>,
}

/// A connected piece of the provenance graph.
#[derive(Debug, Default)]
pub struct Graph {
    pub root: String,
    pub products: HashMap<String, ProductInfo>,
    pub activities: HashMap<i64, ActivityInfo>,
    /// product hash → id of the activity followed as its maker
    pub made_by: HashMap<String, i64>,
    /// product hash → ids of activities that used it (descendant graphs only)
    pub used_by: HashMap<String, Vec<i64>>,
}

/// Which product the user means: a full hash or unique prefix, a path inside the store or a
/// view, or a copy of a product anywhere (found by its content hash).
pub fn resolve_target(store: &Store, db: &Db, target: &str) -> Result<String> {
    let path = Path::new(target);
    if path.exists() {
        if path.is_dir() {
            return Err(Error::msg(format!("{target} is a directory, not a product file")));
        }
        let real = std::fs::canonicalize(path).map_err(|e| Error::io(format!("cannot resolve {target}"), e))?;
        let objects = std::fs::canonicalize(store.objects_dir()).unwrap_or_else(|_| store.objects_dir());
        let hash = if real.starts_with(&objects) {
            real.file_name().unwrap_or_default().to_string_lossy().to_string()
        } else {
            hash_file(&real)?.hash
        };
        if db.product(&hash)?.is_some() {
            return Ok(hash);
        }
        // Not byte-identical to any product: perhaps a modified copy that still carries the
        // activity key its maker embedded.
        if let Some(key) = embedded_activity_key(&real)? {
            let outputs: Vec<String> = db
                .conn()
                .prepare_cached(
                    "SELECT DISTINCT g.product_hash FROM activities a JOIN generated g ON g.activity_id = a.id
                     WHERE a.key = ?1 ORDER BY g.role",
                )?
                .query_map([&key], |r| r.get(0))?
                .collect::<rusqlite::Result<_>>()?;
            return match outputs.as_slice() {
                [one] => {
                    eprintln!(
                        "note: {target} matches no product byte for byte (sha256 {hash}); it carries activity key {key}, \
                         which made product {one}: answering for that product"
                    );
                    Ok(one.clone())
                }
                [] => Err(Error::msg(format!(
                    "{target} carries activity key {key}, which no recorded activity in {} has",
                    store.root().display()
                ))),
                many => Err(Error::msg(format!(
                    "{target} matches no product byte for byte; it carries activity key {key}, which made {} products: {}",
                    many.len(),
                    many.join(", ")
                ))),
            };
        }
        return Err(Error::msg(format!(
            "{target} (sha256 {hash}) is not a product of the store {} and carries no sst1mflow activity key",
            store.root().display()
        )));
    }
    let lower = target.to_ascii_lowercase();
    if lower.len() < 4 || lower.len() > 64 || !lower.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(Error::msg(format!(
            "{target}: no such file, and not a product hash (give at least 4 hex digits, a path in the store or a view, or a copy of a product)"
        )));
    }
    let upper = format!("{lower}g");
    let mut stmt = db.conn().prepare_cached("SELECT hash FROM products WHERE hash >= ?1 AND hash < ?2 LIMIT 3")?;
    let found: Vec<String> = stmt.query_map(params![lower, upper], |r| r.get(0))?.collect::<rusqlite::Result<_>>()?;
    match found.len() {
        0 => Err(Error::msg(format!("no product hash starts with {lower}"))),
        1 => Ok(found.into_iter().next().expect("one")),
        _ => Err(Error::msg(format!("{lower} is ambiguous: several product hashes start with it; give more digits"))),
    }
}

/// The marker a product's own metadata uses for its maker's activity key: an HDF5 attribute
/// name, a FITS `HIERARCH` keyword, a JSON key or a `name=value` line all contain it, followed
/// within a few bytes by the 64-hex key.
pub const EMBEDDED_KEY_MARKER: &[u8] = b"sst1mflow_activity_key";

/// How much of a file is searched for an embedded key (headers and attributes live early).
const EMBEDDED_KEY_SCAN: u64 = 16 << 20;

/// The activity key embedded in a file's metadata, if any (case-insensitive marker, then the
/// first run of exactly 64 lowercase hex digits within the next 256 bytes).
pub fn embedded_activity_key(path: &Path) -> Result<Option<String>> {
    Ok(embedded_activity_keys(path)?.into_iter().next())
}

/// Every activity key embedded in the first 16 MiB of a file.
pub fn embedded_activity_keys(path: &Path) -> Result<Vec<String>> {
    use std::io::Read;
    let mut buf = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(EMBEDDED_KEY_SCAN).read_to_end(&mut buf))
        .map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    Ok(find_embedded_keys(&buf))
}

pub fn find_embedded_key(buf: &[u8]) -> Option<String> {
    find_embedded_keys(buf).into_iter().next()
}

/// Every activity key embedded in `buf`, in order of appearance (a file built from others,
/// such as a merge, may carry its inputs' keys as well as its own).
pub fn find_embedded_keys(buf: &[u8]) -> Vec<String> {
    let m = EMBEDDED_KEY_MARKER;
    let mut keys = Vec::new();
    let mut from = 0;
    while from + m.len() <= buf.len() {
        let Some(rel) = buf[from..].windows(m.len()).position(|w| w.eq_ignore_ascii_case(m)) else { break };
        let at = rel + from;
        let tail = &buf[at + m.len()..buf.len().min(at + m.len() + 256)];
        let mut run = 0;
        for (i, b) in tail.iter().enumerate() {
            if b.is_ascii_digit() || (b'a'..=b'f').contains(b) {
                run += 1;
                let next_is_hex = tail.get(i + 1).is_some_and(|n| n.is_ascii_hexdigit());
                if run == 64 && !next_is_hex {
                    keys.push(String::from_utf8_lossy(&tail[i + 1 - 64..=i]).into_owned());
                    break;
                }
            } else {
                run = 0;
            }
        }
        from = at + m.len();
    }
    keys
}

/// A product from a row holding `hash` at column `hash_at` and `kind, size, metadata,
/// invalid, collected, recomputable` from column `rest_at` on.
fn product_from_row(r: &rusqlite::Row, hash_at: usize, rest_at: usize) -> rusqlite::Result<ProductInfo> {
    Ok(ProductInfo {
        hash: r.get(hash_at)?,
        kind: r.get(rest_at)?,
        size: r.get::<_, i64>(rest_at + 1)? as u64,
        metadata: LazyJson::new(r.get(rest_at + 2)?),
        invalid: r.get(rest_at + 3)?,
        collected: r.get::<_, i64>(rest_at + 4)? != 0,
        recomputable: r.get::<_, i64>(rest_at + 5)? != 0,
        places: Vec::new(),
    })
}

/// Fills in the places of the graph's referenced raw inputs (one statement).
fn load_places(db: &Db, g: &mut Graph) -> Result<()> {
    let raw: Vec<&String> = g.products.keys().filter(|h| !g.made_by.contains_key(*h)).collect();
    if raw.is_empty() {
        return Ok(());
    }
    let list = serde_json::to_string(&raw).expect("json");
    let mut stmt = db.conn().prepare_cached(
        "SELECT hash, path FROM places WHERE hash IN (SELECT value FROM json_each(?1)) ORDER BY hash, ctime_ns, path",
    )?;
    let rows: Vec<(String, String)> =
        stmt.query_map([list], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
    for (hash, path) in rows {
        if let Some(p) = g.products.get_mut(&hash) {
            p.places.push(path);
        }
    }
    Ok(())
}

/// Loads products in one statement (the hashes travel as one JSON array).
fn load_products(db: &Db, hashes: &[String], g: &mut Graph) -> Result<()> {
    let list = serde_json::to_string(hashes).expect("json");
    let mut stmt = db.conn().prepare_cached(
        "SELECT hash, kind, size, metadata, invalid, collected, recomputable FROM products
         WHERE hash IN (SELECT value FROM json_each(?1))",
    )?;
    let mut rows = stmt.query([list])?;
    while let Some(r) = rows.next()? {
        g.products.insert(r.get(0)?, product_from_row(r, 0, 1)?);
    }
    Ok(())
}

/// Loads activities with their edges in three statements.
fn load_activities(db: &Db, ids: &[i64], g: &mut Graph) -> Result<()> {
    let conn = db.conn();
    let list = serde_json::to_string(ids).expect("json");
    let mut act = conn.prepare_cached(
        "SELECT id, key, stage, stage_version, pipeline_version, config, params, status, started_at, ended_at,
                host, user, invalid FROM activities WHERE id IN (SELECT value FROM json_each(?1))",
    )?;
    let mut rows = act.query([&list])?;
    while let Some(r) = rows.next()? {
        let id: i64 = r.get(0)?;
        g.activities.insert(
            id,
            ActivityInfo {
                id,
                key: r.get(1)?,
                stage: r.get(2)?,
                stage_version: r.get(3)?,
                pipeline_version: r.get(4)?,
                config: LazyJson::new(r.get(5)?),
                params: LazyJson::new(r.get(6)?),
                status: r.get(7)?,
                started_at: r.get(8)?,
                ended_at: r.get(9)?,
                host: r.get(10)?,
                user: r.get(11)?,
                invalid: r.get(12)?,
                inputs: Vec::new(),
                outputs: Vec::new(),
            },
        );
    }
    drop(rows);
    let mut used = conn.prepare_cached(
        "SELECT activity_id, role, position, product_hash FROM used
         WHERE activity_id IN (SELECT value FROM json_each(?1)) ORDER BY activity_id, role, position",
    )?;
    let mut rows = used.query([&list])?;
    while let Some(r) = rows.next()? {
        if let Some(a) = g.activities.get_mut(&r.get::<_, i64>(0)?) {
            a.inputs.push((r.get(1)?, r.get(2)?, r.get(3)?));
        }
    }
    drop(rows);
    let mut generated = conn.prepare_cached(
        "SELECT activity_id, role, product_hash FROM generated
         WHERE activity_id IN (SELECT value FROM json_each(?1)) ORDER BY activity_id, role",
    )?;
    let mut rows = generated.query([&list])?;
    while let Some(r) = rows.next()? {
        if let Some(a) = g.activities.get_mut(&r.get::<_, i64>(0)?) {
            a.outputs.push((r.get(1)?, r.get(2)?));
        }
    }
    Ok(())
}

/// Everything `hash` was made from, down to raw inputs: one recursive query that follows
/// each product's preferred maker and returns the products' columns as it goes.
pub fn ancestors(db: &Db, hash: &str) -> Result<Graph> {
    let sql = "WITH RECURSIVE anc(hash) AS (
                   SELECT ?1
                   UNION
                   SELECT u.product_hash FROM anc JOIN products p ON p.hash = anc.hash
                   JOIN used u ON u.activity_id = p.made_by
               )
               SELECT p.hash, p.made_by, p.kind, p.size, p.metadata, p.invalid, p.collected, p.recomputable
               FROM anc JOIN products p ON p.hash = anc.hash";
    let mut stmt = db.conn().prepare_cached(sql)?;
    let mut g = Graph { root: hash.to_string(), ..Default::default() };
    let mut ids = Vec::new();
    let mut rows = stmt.query([hash])?;
    while let Some(r) = rows.next()? {
        let h: String = r.get(0)?;
        if let Some(m) = r.get::<_, Option<i64>>(1)? {
            g.made_by.insert(h.clone(), m);
            ids.push(m);
        }
        g.products.insert(h, product_from_row(r, 0, 2)?);
    }
    drop(rows);
    if g.products.is_empty() {
        return Err(Error::msg(format!("product {hash} is not recorded")));
    }
    ids.sort_unstable();
    ids.dedup();
    load_activities(db, &ids, &mut g)?;
    load_places(db, &mut g)?;
    Ok(g)
}

/// Everything derived from `hash`.
pub fn descendants(db: &Db, hash: &str) -> Result<Graph> {
    let sql = "WITH RECURSIVE down(hash) AS (
                   SELECT ?1
                   UNION
                   SELECT g.product_hash FROM down JOIN used u ON u.product_hash = down.hash
                   JOIN generated g ON g.activity_id = u.activity_id
               )
               SELECT down.hash, u.activity_id FROM down LEFT JOIN used u ON u.product_hash = down.hash";
    let mut stmt = db.conn().prepare_cached(sql)?;
    let rows: Vec<(String, Option<i64>)> =
        stmt.query_map([hash], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
    let mut g = Graph { root: hash.to_string(), ..Default::default() };
    let mut hashes = Vec::new();
    let mut ids = Vec::new();
    for (h, user) in rows {
        if let Some(a) = user {
            g.used_by.entry(h.clone()).or_default().push(a);
            ids.push(a);
        }
        hashes.push(h);
    }
    hashes.sort();
    hashes.dedup();
    ids.sort_unstable();
    ids.dedup();
    for v in g.used_by.values_mut() {
        v.sort_unstable();
        v.dedup();
    }
    load_products(db, &hashes, &mut g)?;
    load_activities(db, &ids, &mut g)?;
    for a in g.activities.values() {
        for (_, out) in &a.outputs {
            g.made_by.entry(out.clone()).or_insert(a.id);
        }
    }
    load_places(db, &mut g)?;
    Ok(g)
}

impl Graph {
    /// Flat JSON for scripts: products and activities keyed by hash / activity key.
    pub fn to_json(&self) -> Value {
        let mut products = BTreeMap::new();
        for p in self.products.values() {
            let maker = self.made_by.get(&p.hash).and_then(|id| self.activities.get(id)).map(|a| a.key.clone());
            products.insert(
                p.hash.clone(),
                json!({"kind": p.kind, "size": p.size, "metadata": p.metadata, "invalid": p.invalid,
                       "collected": p.collected, "recomputable": p.recomputable, "places": p.places,
                       "made_by": maker}),
            );
        }
        let mut activities = BTreeMap::new();
        for a in self.activities.values() {
            activities.insert(a.key.clone(), activity_json(a));
        }
        json!({"target": self.root, "products": products, "activities": activities})
    }
}

pub fn activity_json(a: &ActivityInfo) -> Value {
    json!({
        "key": a.key, "stage": a.stage, "stage_version": a.stage_version,
        "pipeline_version": a.pipeline_version, "config": a.config, "params": a.params,
        "status": a.status, "started_at": a.started_at, "ended_at": a.ended_at, "host": a.host,
        "user": a.user, "invalid": a.invalid,
        "inputs": a.inputs.iter().map(|(r, p, h)| json!({"role": r, "position": p, "hash": h})).collect::<Vec<_>>(),
        "outputs": a.outputs.iter().map(|(r, h)| json!({"role": r, "hash": h})).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::find_embedded_key;

    #[test]
    fn finds_keys_embedded_in_common_metadata_layouts() {
        let key = "3f".repeat(32);
        for text in [
            format!("HIERARCH SST1MFLOW_ACTIVITY_KEY = '{key}' / maker"),
            format!("{{\"sst1mflow_activity_key\": \"{key}\"}}"),
            format!("sst1mflow_activity_key={key}\n"),
            format!("\0\0sst1mflow_activity_key\0\x13\0\0\x40\0{key}\0"),
        ] {
            assert_eq!(find_embedded_key(text.as_bytes()).as_deref(), Some(key.as_str()), "{text:?}");
        }
        assert_eq!(find_embedded_key(b"sst1mflow_activity_key=abc"), None);
        assert_eq!(find_embedded_key(format!("sst1mflow_activity_key={key}0").as_bytes()), None);
        assert_eq!(find_embedded_key(b"no marker here"), None);
    }
}
