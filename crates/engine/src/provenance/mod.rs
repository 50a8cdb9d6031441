//! The provenance database: a SQLite index of who made what from what.
//!
//! The objects are the truth about bytes; this database is the truth about history. It lives
//! at `<store>/sst1mflow.sqlite`, in WAL mode (readers never block the writer) with a busy
//! timeout (many processes may share one store), `synchronous=NORMAL` (a killed process never
//! loses a committed transaction; a power cut may lose the last few, whose objects are then
//! found again by hash on the next run), `foreign_keys=ON`, and the query planner stability
//! guarantee (no re-preparing of cached statements on every new binding).
//!
//! Tables (schema version in `PRAGMA user_version`, upgraded by [`MIGRATIONS`]):
//!
//! | table          | one row per                                  | notes |
//! |----------------|----------------------------------------------|-------|
//! | `products`     | object (hash, kind, size, domain metadata JSON) | a row exists only once its object is durable |
//! | `activities`   | finished run of a stage, `ok` or `failed`    | key, stage + version, pipeline version, canonical config subset and params, times, host, log, error, the cluster job it ran as (`executor`, JSON) |
//! | `reusable`     | key → the one successful activity whose outputs are handed out for it | the reuse index; a plain primary key (a partial unique index on `activities` would make SQLite re-prepare every lookup) |
//! | `used`         | (activity, role, position) → product         | inputs |
//! | `generated`    | (activity, role) → product                   | outputs; only for `ok` activities |
//! | `versions`     | pipeline version ever seen                   | first and last time seen |
//! | `input_files`  | outside path registered as a raw input       | stat fingerprint → hash: lets a re-run skip re-hashing unchanged raw files (never used to decide staleness) |
//! | `recipe_slots` | (recipe, step, fan-out item)                 | the key last run there: the baseline for "why does this rerun" |
//! | `places`       | (referenced product, outside path)           | size and stat fingerprint when its bytes were hashed there |
//!
//! Version 2 adds `invalid` (why a product or activity must not be reused; kept on disk),
//! `products.collected` (object deleted by `gc --delete`, record kept for lineage),
//! `activities.user`, `pins` (named GC roots) and `recipes` (where each recipe file is).
//!
//! Version 3 adds `products.made_by`: the activity lineage follows for each product (valid
//! before invalid, then earliest), kept up to date on every record and invalidation so that
//! lineage queries are one primary-key lookup per edge.
//!
//! Version 4 adds raw inputs referenced in place and recomputable outputs:
//! `products.referenced` (a raw input whose bytes stay where they are, outside the store: no
//! object is expected), `places` (every path where a referenced product's bytes were seen, with
//! the stat fingerprint they had, kept after the file changes so lineage still names it), and
//! `products.recomputable` (an output the store deletes once consumed; a missing object is then
//! expected, and the activity that made it stays reusable and remakes it when needed).
//!
//! Version 5 adds `activities.executor`: for an activity run as a cluster job, the job (id,
//! node, state, exit code, elapsed time, attempts) as JSON; NULL for local runs.
//!
//! Everything here can be rebuilt from `manifests/` (see [`manifest`]).
//!
//! An activity and all its edges are written in one transaction after its outputs are in
//! `objects/`, so a crash leaves either the whole record or none of it; nothing is ever in a
//! "running" state in the database.
pub mod diff;
pub mod invalidate;
pub mod maintenance;
pub mod manifest;
pub mod prov;
pub mod query;
pub mod rebuild;

use manifest::Manifest;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use sst1mflow_base::error::{Error, Result};
use std::path::Path;
use std::time::Duration;

/// Schema migrations; entry `i` upgrades `user_version` i → i+1. Never edit a released entry:
/// append a new one.
pub const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE products(
    hash       TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    size       INTEGER NOT NULL,
    metadata   TEXT NOT NULL,
    first_seen TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE activities(
    id               INTEGER PRIMARY KEY,
    key              TEXT NOT NULL,
    key_schema       INTEGER NOT NULL,
    stage            TEXT NOT NULL,
    stage_version    TEXT NOT NULL,
    pipeline_version TEXT NOT NULL,
    config           TEXT NOT NULL,
    params           TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('ok', 'failed')),
    started_at       TEXT NOT NULL,
    ended_at         TEXT NOT NULL,
    host             TEXT NOT NULL,
    log              TEXT NOT NULL,
    error            TEXT
);
CREATE INDEX activities_by_key ON activities(key);
CREATE TABLE reusable(
    key         TEXT PRIMARY KEY,
    activity_id INTEGER NOT NULL UNIQUE REFERENCES activities(id)
) WITHOUT ROWID;
CREATE TABLE used(
    activity_id  INTEGER NOT NULL REFERENCES activities(id),
    role         TEXT NOT NULL,
    position     INTEGER NOT NULL,
    product_hash TEXT NOT NULL REFERENCES products(hash),
    PRIMARY KEY (activity_id, role, position)
) WITHOUT ROWID;
CREATE INDEX used_by_product ON used(product_hash);
CREATE TABLE generated(
    activity_id  INTEGER NOT NULL REFERENCES activities(id),
    role         TEXT NOT NULL,
    product_hash TEXT NOT NULL REFERENCES products(hash),
    PRIMARY KEY (activity_id, role)
) WITHOUT ROWID;
CREATE INDEX generated_by_product ON generated(product_hash);
CREATE TABLE versions(
    pipeline_version TEXT PRIMARY KEY,
    first_seen       TEXT NOT NULL,
    last_seen        TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE input_files(
    path     TEXT PRIMARY KEY,
    dev      INTEGER NOT NULL,
    ino      INTEGER NOT NULL,
    size     INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    hash     TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE recipe_slots(
    recipe       TEXT NOT NULL,
    step         TEXT NOT NULL,
    item         TEXT NOT NULL,
    activity_key TEXT NOT NULL,
    PRIMARY KEY (recipe, step, item)
) WITHOUT ROWID;
"#,
    r#"
ALTER TABLE products ADD COLUMN invalid TEXT;
ALTER TABLE products ADD COLUMN collected INTEGER NOT NULL DEFAULT 0;
ALTER TABLE activities ADD COLUMN invalid TEXT;
ALTER TABLE activities ADD COLUMN user TEXT NOT NULL DEFAULT '';
CREATE INDEX activities_by_stage ON activities(stage, stage_version);
CREATE INDEX activities_by_pipeline ON activities(pipeline_version);
CREATE TABLE pins(
    name         TEXT PRIMARY KEY,
    product_hash TEXT NOT NULL REFERENCES products(hash)
) WITHOUT ROWID;
CREATE TABLE recipes(
    name TEXT PRIMARY KEY,
    path TEXT NOT NULL
) WITHOUT ROWID;
"#,
    r#"
ALTER TABLE products ADD COLUMN made_by INTEGER REFERENCES activities(id);
UPDATE products SET made_by = (
    SELECT g.activity_id FROM generated g JOIN activities a ON a.id = g.activity_id
    WHERE g.product_hash = products.hash ORDER BY (a.invalid IS NOT NULL), a.id LIMIT 1);
"#,
    r#"
ALTER TABLE products ADD COLUMN referenced INTEGER NOT NULL DEFAULT 0;
ALTER TABLE products ADD COLUMN recomputable INTEGER NOT NULL DEFAULT 0;
CREATE TABLE places(
    hash     TEXT NOT NULL REFERENCES products(hash),
    path     TEXT NOT NULL,
    size     INTEGER NOT NULL,
    dev      INTEGER NOT NULL,
    ino      INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    PRIMARY KEY (hash, path)
) WITHOUT ROWID;
CREATE INDEX places_by_path ON places(path);
"#,
    r#"
ALTER TABLE activities ADD COLUMN executor TEXT;
"#,
];

/// The preferred maker of a product (valid before invalid, then earliest), as SQL over `?1`.
pub const PREFERRED_MAKER_SQL: &str = "(SELECT g.activity_id FROM generated g JOIN activities a ON a.id = g.activity_id
     WHERE g.product_hash = ?1 ORDER BY (a.invalid IS NOT NULL), a.id LIMIT 1)";

const FIND_OK_SQL: &str = "SELECT r.activity_id, g.role, g.product_hash, p.size, p.recomputable FROM reusable r
     LEFT JOIN generated g ON g.activity_id = r.activity_id
     LEFT JOIN products p ON p.hash = g.product_hash
     WHERE r.key = ?1 ORDER BY g.role";

pub fn schema_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// A product as recorded.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProductRecord {
    pub hash: String,
    pub kind: String,
    pub size: u64,
    /// Domain metadata as JSON text.
    pub metadata: String,
}

/// What an earlier successful activity produced.
#[derive(Clone, Debug)]
pub struct CachedActivity {
    pub id: i64,
    pub outputs: Vec<CachedOutput>,
}

/// One output of a reusable activity.
#[derive(Clone, Debug)]
pub struct CachedOutput {
    pub role: String,
    pub hash: String,
    pub size: u64,
    /// Its object may be missing on purpose (deleted once consumed; remade when needed).
    pub recomputable: bool,
}

/// Where a referenced raw input's bytes were seen: an outside path with the stat fingerprint
/// the file had when it was hashed there.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Place {
    pub path: String,
    pub size: i64,
    pub dev: i64,
    pub ino: i64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl Place {
    pub fn new(path: &str, fp: &StatFingerprint) -> Place {
        Place {
            path: path.to_string(),
            size: fp.size,
            dev: fp.dev,
            ino: fp.ino,
            mtime_ns: fp.mtime_ns,
            ctime_ns: fp.ctime_ns,
        }
    }

    pub fn fingerprint(&self) -> StatFingerprint {
        StatFingerprint {
            dev: self.dev,
            ino: self.ino,
            size: self.size,
            mtime_ns: self.mtime_ns,
            ctime_ns: self.ctime_ns,
        }
    }
}

/// A stored activity as read back.
#[derive(Clone, Debug)]
pub struct StoredActivity {
    pub id: i64,
    pub key: String,
    pub stage: String,
    pub stage_version: String,
    pub pipeline_version: String,
    pub config: String,
    pub params: String,
    pub status: String,
    pub started_at: String,
    pub ended_at: String,
    pub host: String,
    pub log: String,
    pub error: Option<String>,
    pub invalid: Option<String>,
    /// The cluster job it ran as, when it did (see [`manifest::Manifest::executor`]).
    pub executor: Option<serde_json::Value>,
    pub used: Vec<(String, u32, String)>,
}

/// Stat fingerprint of an outside input file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StatFingerprint {
    pub dev: i64,
    pub ino: i64,
    pub size: i64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

pub struct Db {
    conn: Connection,
}

/// Runs `f` again (with backoff, up to two minutes) while SQLite reports the database busy or
/// locked without having waited for it.
fn retry_busy<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let mut wait = Duration::from_millis(5);
    loop {
        match f() {
            Err(e)
                if matches!(
                    e.sqlite_error_code(),
                    Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                ) && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_millis(200));
            }
            other => return other,
        }
    }
}

/// The `statvfs` of the file system holding `path` (its directory), if it can be read.
fn filesystem_of(path: &Path) -> Option<libc::statvfs> {
    use std::os::unix::ffi::OsStrExt;
    let dir = path.parent().unwrap_or(Path::new("."));
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    (unsafe { libc::statvfs(c.as_ptr(), &mut st) } == 0).then_some(st)
}

/// Whether the file system holding `path` is mounted read-only.
fn on_read_only_filesystem(path: &Path) -> bool {
    filesystem_of(path).is_some_and(|st| st.f_flag & libc::ST_RDONLY != 0)
}

/// Whether the file system holding `path` has no space left for us.
fn no_space_left(path: &Path) -> bool {
    filesystem_of(path).is_some_and(|st| st.f_bavail == 0)
}

pub fn now_utc() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".to_string())
}

impl Db {
    /// Opens (creating and migrating if needed) the database at `path`. On a read-only file
    /// system an existing database is opened for reading only (SQLite's `immutable`: nothing can
    /// change it there), so that lineage, status and verify still answer; anything that writes
    /// then fails. A full disk is named as such.
    pub fn open(path: &Path) -> Result<Db> {
        let ctx = |what: &str| format!("provenance database {}: {what}", path.display());
        if path.exists() && on_read_only_filesystem(path) {
            return Db::open_immutable(path);
        }
        Db::open_writable(path).map_err(|e| {
            if no_space_left(path) {
                Error::msg(format!("{}: no space left on device ({e})", ctx("cannot open for writing")))
            } else {
                e
            }
        })
    }

    /// For what only reads (lineage, show, log, status, dry runs, verify): [`Db::open`], or, when
    /// that fails because the disk is full (SQLite cannot even set up its journal), the existing
    /// database opened for reading only, so the store can still be inspected. Anything that then
    /// tries to write fails; the original error is kept when reading is impossible too.
    pub fn open_for_reading(path: &Path) -> Result<Db> {
        match Db::open(path) {
            Ok(db) => Ok(db),
            Err(e) if path.exists() && no_space_left(path) => {
                Db::open_read_only(path).or_else(|_| Db::open_immutable(path)).map_err(|_| e)
            }
            Err(e) => Err(e),
        }
    }

    fn open_read_only(path: &Path) -> Result<Db> {
        let ctx = |what: &str| format!("provenance database {} (full disk: read-only): {what}", path.display());
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
        let conn = Connection::open_with_flags(path, flags).map_err(|e| Error::db(ctx("cannot open"), e))?;
        conn.busy_timeout(Duration::from_secs(600)).map_err(|e| Error::db(ctx("cannot configure"), e))?;
        let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if current != schema_version() {
            return Err(Error::msg(ctx(&format!(
                "schema version {current}, this sst1mflow reads {}",
                schema_version()
            ))));
        }
        Ok(Db { conn })
    }

    fn open_immutable(path: &Path) -> Result<Db> {
        let ctx = |what: &str| format!("provenance database {} (read-only file system): {what}", path.display());
        let uri = format!("file:{}?immutable=1", path.display());
        let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(uri, flags).map_err(|e| Error::db(ctx("cannot open"), e))?;
        let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if current != schema_version() {
            return Err(Error::msg(ctx(&format!(
                "schema version {current}, this sst1mflow reads {} and cannot migrate a read-only store",
                schema_version()
            ))));
        }
        Ok(Db { conn })
    }

    fn open_writable(path: &Path) -> Result<Db> {
        let ctx = |what: &str| format!("provenance database {}: {what}", path.display());
        let conn = Connection::open(path).map_err(|e| Error::db(ctx("cannot open"), e))?;
        conn.busy_timeout(Duration::from_secs(600)).map_err(|e| Error::db(ctx("cannot configure"), e))?;
        // Switching a new database to WAL needs an exclusive lock, and SQLite may answer "locked"
        // without waiting when another process is creating the schema at that moment.
        retry_busy(|| conn.pragma_update(None, "journal_mode", "WAL"))
            .map_err(|e| Error::db(ctx("cannot enable WAL"), e))?;
        conn.pragma_update(None, "synchronous", "NORMAL").map_err(|e| Error::db(ctx("cannot configure"), e))?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(|e| Error::db(ctx("cannot configure"), e))?;
        // Reads dominate (planning, status, lineage): keep pages in memory rather than pread.
        conn.pragma_update(None, "cache_size", -65536).map_err(|e| Error::db(ctx("cannot configure"), e))?;
        conn.pragma_update(None, "mmap_size", 1i64 << 30).map_err(|e| Error::db(ctx("cannot configure"), e))?;
        // Stable query plans: without this, SQLite (built with STAT4) re-prepares a statement
        // each time a rebound parameter might change its plan, which tripled lookup costs.
        conn.set_db_config(rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)
            .map_err(|e| Error::db(ctx("cannot configure"), e))?;
        let mut db = Db { conn };
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        let mut wait = Duration::from_millis(5);
        loop {
            match db.migrate() {
                Ok(()) => break,
                Err(e) if e.to_string().contains("database is locked") && std::time::Instant::now() < deadline => {
                    std::thread::sleep(wait);
                    wait = (wait * 2).min(Duration::from_millis(200));
                }
                Err(e) => return Err(Error::msg(format!("{}: {e}", ctx("migration failed")))),
            }
        }
        Ok(db)
    }

    fn migrate(&mut self) -> Result<()> {
        let current: i64 = self.conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if current == schema_version() {
            return Ok(());
        }
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let current: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if current > schema_version() {
            return Err(Error::msg(format!(
                "schema version {current} is newer than this sst1mflow understands ({}); use a newer sst1mflow",
                schema_version()
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        }
        tx.commit()?;
        Ok(())
    }

    fn conn(&self) -> &Connection {
        &self.conn
    }

    /// The successful activity with this key and its outputs, if any.
    pub fn find_ok_activity(&self, key: &str) -> Result<Option<CachedActivity>> {
        let mut stmt = self.conn.prepare_cached(FIND_OK_SQL)?;
        let mut rows = stmt.query([key])?;
        let mut found: Option<CachedActivity> = None;
        while let Some(row) = rows.next()? {
            let id: i64 = row.get(0)?;
            let entry = found.get_or_insert_with(|| CachedActivity { id, outputs: Vec::new() });
            if let (Some(role), Some(hash), Some(size)) =
                (row.get::<_, Option<String>>(1)?, row.get::<_, Option<String>>(2)?, row.get::<_, Option<i64>>(3)?)
            {
                let recomputable = row.get::<_, Option<bool>>(4)?.unwrap_or(false);
                entry.outputs.push(CachedOutput { role, hash, size: size as u64, recomputable });
            }
        }
        Ok(found)
    }

    /// Registers a product (no-op if known). Used for raw inputs.
    pub fn add_product(&self, p: &ProductRecord) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT OR IGNORE INTO products(hash, kind, size, metadata, first_seen) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?;
        stmt.execute(params![p.hash, p.kind, p.size as i64, p.metadata, now_utc()])?;
        Ok(())
    }

    /// Registers a raw input referenced in place (its bytes stay at `place`), and that place.
    /// A product already in the store as an object stays an object.
    pub fn add_referenced_product(&self, p: &ProductRecord, place: &Place) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT OR IGNORE INTO products(hash, kind, size, metadata, first_seen, referenced)
             VALUES (?1, ?2, ?3, ?4, ?5, 1)",
        )?;
        stmt.execute(params![p.hash, p.kind, p.size as i64, p.metadata, now_utc()])?;
        self.add_place(&p.hash, place)
    }

    /// Records (or refreshes the fingerprint of) a place where `hash`'s bytes were seen.
    pub fn add_place(&self, hash: &str, place: &Place) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO places(hash, path, size, dev, ino, mtime_ns, ctime_ns) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT(hash, path) DO UPDATE SET size = excluded.size, dev = excluded.dev, ino = excluded.ino,
               mtime_ns = excluded.mtime_ns, ctime_ns = excluded.ctime_ns
             WHERE dev <> excluded.dev OR ino <> excluded.ino OR mtime_ns <> excluded.mtime_ns
               OR ctime_ns <> excluded.ctime_ns OR size <> excluded.size",
        )?;
        stmt.execute(params![hash, place.path, place.size, place.dev, place.ino, place.mtime_ns, place.ctime_ns])?;
        Ok(())
    }

    /// A raw input now copied into the store: its object is expected from now on.
    pub fn mark_stored(&self, hash: &str) -> Result<()> {
        let mut stmt =
            self.conn.prepare_cached("UPDATE products SET referenced = 0 WHERE hash = ?1 AND referenced = 1")?;
        stmt.execute([hash])?;
        Ok(())
    }

    /// Every place where `hash`'s bytes were seen, most recently fingerprinted last.
    pub fn places(&self, hash: &str) -> Result<Vec<Place>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT path, size, dev, ino, mtime_ns, ctime_ns FROM places WHERE hash = ?1 ORDER BY ctime_ns, path",
        )?;
        let rows = stmt.query_map([hash], |r| {
            Ok(Place {
                path: r.get(0)?,
                size: r.get(1)?,
                dev: r.get(2)?,
                ino: r.get(3)?,
                mtime_ns: r.get(4)?,
                ctime_ns: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Whether the product is a raw input referenced in place (no object expected).
    pub fn is_referenced(&self, hash: &str) -> Result<bool> {
        let mut stmt = self.conn.prepare_cached("SELECT referenced FROM products WHERE hash = ?1")?;
        Ok(stmt.query_row([hash], |r| r.get::<_, bool>(0)).optional()?.unwrap_or(false))
    }

    /// Whether the product is a recomputable output (its object may be missing on purpose).
    pub fn is_recomputable(&self, hash: &str) -> Result<bool> {
        let mut stmt = self.conn.prepare_cached("SELECT recomputable FROM products WHERE hash = ?1")?;
        Ok(stmt.query_row([hash], |r| r.get::<_, bool>(0)).optional()?.unwrap_or(false))
    }

    /// Why a product was invalidated, if it was.
    pub fn product_invalid(&self, hash: &str) -> Result<Option<String>> {
        let mut stmt = self.conn.prepare_cached("SELECT invalid FROM products WHERE hash = ?1")?;
        Ok(stmt.query_row([hash], |r| r.get::<_, Option<String>>(0)).optional()?.flatten())
    }

    pub fn product(&self, hash: &str) -> Result<Option<ProductRecord>> {
        let mut stmt = self.conn.prepare_cached("SELECT hash, kind, size, metadata FROM products WHERE hash = ?1")?;
        Ok(stmt
            .query_row([hash], |r| {
                Ok(ProductRecord {
                    hash: r.get(0)?,
                    kind: r.get(1)?,
                    size: r.get::<_, i64>(2)? as u64,
                    metadata: r.get(3)?,
                })
            })
            .optional()?)
    }

    /// Writes a finished activity (from its manifest), its edges, and any products it names
    /// that are not yet known, in one transaction. If a reusable successful activity with the
    /// same key is already recorded (another process won the race), nothing is written and
    /// that activity's id is returned. A successful, valid activity makes its outputs valid
    /// and present again (after an `invalidate` or a `gc --delete`).
    pub fn record_activity(&mut self, m: &Manifest) -> Result<i64> {
        let ok = m.status == "ok";
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        if ok && m.invalid.is_none() {
            let existing: Option<i64> =
                tx.query_row("SELECT activity_id FROM reusable WHERE key = ?1", [&m.key], |r| r.get(0)).optional()?;
            if let Some(id) = existing {
                return Ok(id);
            }
        }
        let now = now_utc();
        {
            let mut product = tx.prepare_cached(
                "INSERT OR IGNORE INTO products(hash, kind, size, metadata, first_seen) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for p in m.used.iter().chain(&m.generated) {
                product.execute(params![p.hash, p.kind, p.size as i64, p.metadata, now])?;
            }
            let mut place = tx.prepare_cached(
                "INSERT OR IGNORE INTO places(hash, path, size, dev, ino, mtime_ns, ctime_ns)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?;
            for p in &m.used {
                if let Some(at) = &p.place {
                    place.execute(params![p.hash, at.path, at.size, at.dev, at.ino, at.mtime_ns, at.ctime_ns])?;
                }
            }
            if ok {
                let mut recomputable = tx.prepare_cached("UPDATE products SET recomputable = 1 WHERE hash = ?1")?;
                for p in m.generated.iter().filter(|p| p.recomputable) {
                    recomputable.execute([&p.hash])?;
                }
            }
        }
        tx.execute(
            "INSERT INTO activities(key, key_schema, stage, stage_version, pipeline_version, config, params,
                                    status, started_at, ended_at, host, log, error, invalid, user, executor)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            params![
                m.key,
                m.key_schema,
                m.stage,
                m.stage_version,
                m.pipeline_version,
                m.config,
                m.params,
                if ok { "ok" } else { "failed" },
                m.started_at,
                m.ended_at,
                m.host,
                m.log,
                m.error,
                m.invalid,
                m.user,
                m.executor.as_ref().map(|e| e.to_string())
            ],
        )?;
        let id = tx.last_insert_rowid();
        {
            let mut used = tx.prepare_cached(
                "INSERT INTO used(activity_id, role, position, product_hash) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for p in &m.used {
                used.execute(params![id, p.role, p.position, p.hash])?;
            }
            if ok {
                let mut generated =
                    tx.prepare_cached("INSERT INTO generated(activity_id, role, product_hash) VALUES (?1, ?2, ?3)")?;
                let mut mark = tx.prepare_cached("UPDATE products SET invalid = ?2, collected = 0 WHERE hash = ?1")?;
                let mut maker =
                    tx.prepare_cached(&format!("UPDATE products SET made_by = {PREFERRED_MAKER_SQL} WHERE hash = ?1"))?;
                for p in &m.generated {
                    generated.execute(params![id, p.role, p.hash])?;
                    mark.execute(params![p.hash, m.invalid])?;
                    maker.execute([&p.hash])?;
                }
                if m.invalid.is_none() {
                    tx.execute("INSERT INTO reusable(key, activity_id) VALUES (?1, ?2)", params![m.key, id])?;
                }
            }
            tx.execute(
                "INSERT INTO versions(pipeline_version, first_seen, last_seen) VALUES (?1, ?2, ?2)
                 ON CONFLICT(pipeline_version) DO UPDATE SET last_seen = excluded.last_seen",
                params![m.pipeline_version, now],
            )?;
        }
        tx.commit()?;
        Ok(id)
    }

    pub fn cached_input(&self, path: &str, fp: &StatFingerprint) -> Result<Option<String>> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT hash FROM input_files WHERE path = ?1 AND dev = ?2 AND ino = ?3 AND size = ?4
             AND mtime_ns = ?5 AND ctime_ns = ?6",
        )?;
        Ok(stmt.query_row(params![path, fp.dev, fp.ino, fp.size, fp.mtime_ns, fp.ctime_ns], |r| r.get(0)).optional()?)
    }

    pub fn remember_input(&self, path: &str, fp: &StatFingerprint, hash: &str) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT OR REPLACE INTO input_files(path, dev, ino, size, mtime_ns, ctime_ns, hash)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?;
        stmt.execute(params![path, fp.dev, fp.ino, fp.size, fp.mtime_ns, fp.ctime_ns, hash])?;
        Ok(())
    }

    /// The key last run at a recipe slot.
    pub fn slot_key(&self, recipe: &str, step: &str, item: &str) -> Result<Option<String>> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT activity_key FROM recipe_slots WHERE recipe = ?1 AND step = ?2 AND item = ?3")?;
        Ok(stmt.query_row(params![recipe, step, item], |r| r.get(0)).optional()?)
    }

    pub fn set_slot_key(&self, recipe: &str, step: &str, item: &str, key: &str) -> Result<()> {
        let mut stmt = self.conn.prepare_cached(
            "INSERT INTO recipe_slots(recipe, step, item, activity_key) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(recipe, step, item) DO UPDATE SET activity_key = excluded.activity_key
             WHERE activity_key <> excluded.activity_key",
        )?;
        stmt.execute(params![recipe, step, item, key])?;
        Ok(())
    }

    /// The most recent activity (ok preferred, else newest failed) with this key.
    pub fn activity_by_key(&self, key: &str) -> Result<Option<StoredActivity>> {
        let id: Option<i64> = self
            .conn
            .query_row(
                "SELECT id FROM activities WHERE key = ?1 ORDER BY (status = 'ok') DESC, id DESC LIMIT 1",
                [key],
                |r| r.get(0),
            )
            .optional()?;
        match id {
            Some(id) => self.activity(id).map(Some),
            None => Ok(None),
        }
    }

    /// Keys of recorded activities starting with `prefix`.
    pub fn keys_with_prefix(&self, prefix: &str) -> Result<Vec<String>> {
        let mut stmt = self
            .conn
            .prepare("SELECT DISTINCT key FROM activities WHERE key >= ?1 AND key < ?2 ORDER BY key LIMIT 20")?;
        let upper = format!("{prefix}\u{7f}");
        let keys = stmt.query_map(params![prefix, upper], |r| r.get(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(keys)
    }

    pub fn activity(&self, id: i64) -> Result<StoredActivity> {
        let mut a = self.conn.query_row(
            "SELECT id, key, stage, stage_version, pipeline_version, config, params, status, started_at,
                    ended_at, host, log, error, invalid, executor FROM activities WHERE id = ?1",
            [id],
            |r| {
                Ok(StoredActivity {
                    id: r.get(0)?,
                    key: r.get(1)?,
                    stage: r.get(2)?,
                    stage_version: r.get(3)?,
                    pipeline_version: r.get(4)?,
                    config: r.get(5)?,
                    params: r.get(6)?,
                    status: r.get(7)?,
                    started_at: r.get(8)?,
                    ended_at: r.get(9)?,
                    host: r.get(10)?,
                    log: r.get(11)?,
                    error: r.get(12)?,
                    invalid: r.get(13)?,
                    executor: r.get::<_, Option<String>>(14)?.and_then(|t| serde_json::from_str(&t).ok()),
                    used: Vec::new(),
                })
            },
        )?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT role, position, product_hash FROM used WHERE activity_id = ?1 ORDER BY role, position",
        )?;
        a.used =
            stmt.query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(a)
    }

    pub fn begin(&self) -> Result<()> {
        self.conn.execute_batch("BEGIN")?;
        Ok(())
    }

    pub fn commit(&self) -> Result<()> {
        self.conn.execute_batch("COMMIT")?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(hash: &str) -> ProductRecord {
        ProductRecord { hash: hash.into(), kind: "dl1".into(), size: 3, metadata: "{}".into() }
    }

    fn record(key: &str, ok: bool) -> Manifest {
        let mp = |role: &str, hash: &str| manifest::ManifestProduct {
            role: role.into(),
            position: 0,
            hash: hash.into(),
            kind: "dl1".into(),
            size: 3,
            metadata: "{}".into(),
            place: None,
            recomputable: false,
        };
        Manifest {
            sst1mflow_manifest: manifest::MANIFEST_FORMAT,
            key: key.into(),
            key_schema: 1,
            stage: "command".into(),
            stage_version: "1".into(),
            pipeline_version: "0.1.0+x".into(),
            config: "{}".into(),
            params: "{}".into(),
            status: if ok { "ok" } else { "failed" }.into(),
            started_at: now_utc(),
            ended_at: now_utc(),
            host: "h".into(),
            user: "u".into(),
            log: "log".into(),
            error: None,
            invalid: None,
            slot: Default::default(),
            executor: None,
            used: vec![mp("in", "aa")],
            generated: if ok { vec![mp("out", "bb")] } else { vec![] },
        }
    }

    #[test]
    fn migrates_and_records_atomically() {
        let dir = std::env::temp_dir().join(format!("sst1mflow-db-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("db.sqlite");
        let mut db = Db::open(&path).unwrap();
        assert_eq!(
            db.conn().pragma_query_value(None, "user_version", |r| r.get::<_, i64>(0)).unwrap(),
            schema_version()
        );
        // A failing statement inside the transaction leaves nothing behind.
        let mut broken = record("k0", true);
        broken.generated[0].role = "out".into();
        broken.generated.push(broken.generated[0].clone()); // duplicate (activity, role) edge
        assert!(db.record_activity(&broken).is_err());
        let n: i64 = db.conn().query_row("SELECT count(*) FROM activities", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 0);
        let n: i64 = db.conn().query_row("SELECT count(*) FROM products", [], |r| r.get(0)).unwrap();
        assert_eq!(n, 0);
        db.add_product(&product("aa")).unwrap();
        db.record_activity(&record("k1", false)).unwrap();
        let id = db.record_activity(&record("k1", true)).unwrap();
        assert_eq!(db.record_activity(&record("k1", true)).unwrap(), id);
        let cached = db.find_ok_activity("k1").unwrap().unwrap();
        let outs: Vec<(&str, &str, u64, bool)> =
            cached.outputs.iter().map(|o| (o.role.as_str(), o.hash.as_str(), o.size, o.recomputable)).collect();
        assert_eq!(outs, vec![("out", "bb", 3, false)]);
        assert_eq!(db.activity_by_key("k1").unwrap().unwrap().status, "ok");
        drop(db);
        // Re-opening is a no-op migration.
        let mut db = Db::open(&path).unwrap();
        assert!(db.find_ok_activity("k2").unwrap().is_none());
        // Lookups with fresh bindings reuse the prepared statement (no re-prepare per key).
        for k in ["k3", "k4", "k5"] {
            db.record_activity(&record(k, true)).unwrap();
        }
        for k in ["k1", "k3", "k4", "k5", "k6"] {
            db.find_ok_activity(k).unwrap();
        }
        let stmt = db.conn().prepare_cached(FIND_OK_SQL).unwrap();
        assert_eq!(stmt.get_status(rusqlite::StatementStatus::RePrepare), 0);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
