//! The content-addressed object store: every product's bytes, once, named by their SHA-256.
//!
//! Layout under the store root:
//!
//! | path                     | what                                                        |
//! |--------------------------|-------------------------------------------------------------|
//! | `objects/ab/abcdef…`     | one read-only file per product, named by its full hex SHA-256, fanned out by its first two hex digits |
//! | `tmp/<tag>-<pid>-<n>/`   | work directories of running activities and temp files; each holds an `.owner` file locked by the process that made it |
//! | `locks/ab/<key>`         | one lock file per activity key ever executed; held while that activity runs |
//! | `locks/use/ab/<hash>`    | one lock file per recomputable object: shared while an activity reads it, taken exclusively to delete it |
//! | `views/`                 | human-friendly symlinks into `objects/` (recreated at will)  |
//! | `sst1mflow.sqlite`       | the provenance database (see `crate::provenance`)            |
//!
//! Writing is crash-safe: bytes go to a file under `tmp/` on the same filesystem, are
//! fsynced, made read-only and renamed into `objects/`, and the `objects/ab` directory is
//! fsynced. A crash leaves either nothing in `objects/` or a complete, correctly named file.
//! A complete object that no database record names yet (the crash came between rename and
//! commit) is harmless: the next run finds it by hash and records it.
//!
//! Locks are advisory `flock`s (std's `File::lock`), which the kernel drops when their process
//! dies: a SIGKILLed run leaves no stale lock to clear by hand. Temp directories whose `.owner`
//! lock can be taken belong to dead processes and are removed by [`Store::clean_stale_tmp`].
use crate::key::hex;

/// Whether `s` is a content hash or an activity key as sst1mflow writes them: 64 lowercase hex
/// digits. Every hash read from a file or the database is checked with this before it names a
/// path.
pub fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
use sha2::{Digest, Sha256};
use sst1mflow_base::error::{Error, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Read size for hashing and copying: small enough that the buffer stays in a core's L2 cache
/// between the kernel's copy into it and SHA-256 reading it (1 MB chunks hashed 7% slower).
const CHUNK: usize = 128 << 10;

pub const DB_FILE: &str = "sst1mflow.sqlite";

static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// An open store rooted at a directory.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
}

/// A content hash with the size of the bytes it names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Digested {
    pub hash: String,
    pub size: u64,
}

impl Store {
    /// Opens (creating if needed) the store at `root`, and checks it can be written.
    pub fn open(root: &Path) -> Result<Store> {
        // Commands run in their own work directories, so every path handed out must be absolute.
        let root = &std::path::absolute(root)
            .map_err(|e| Error::io(format!("cannot resolve store path {}", root.display()), e))?;
        for sub in ["", "objects", "tmp", "locks", "views"] {
            let dir = root.join(sub);
            fs::create_dir_all(&dir)
                .map_err(|e| Error::io(format!("cannot create store directory {}", dir.display()), e))?;
        }
        let probe = root.join("tmp").join(format!(".write-probe-{}", std::process::id()));
        File::create(&probe)
            .and_then(|_| fs::remove_file(&probe))
            .map_err(|e| Error::io(format!("store {} is not writable", root.display()), e))?;
        Ok(Store { root: root.to_path_buf() })
    }

    /// Opens an existing store without creating or writing anything.
    pub fn open_existing(root: &Path) -> Result<Store> {
        if !root.join("objects").is_dir() {
            return Err(Error::msg(format!("{} is not an sst1mflow store (no objects/ directory)", root.display())));
        }
        let root = std::path::absolute(root)
            .map_err(|e| Error::io(format!("cannot resolve store path {}", root.display()), e))?;
        Ok(Store { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn db_path(&self) -> PathBuf {
        self.root.join(DB_FILE)
    }

    pub fn objects_dir(&self) -> PathBuf {
        self.root.join("objects")
    }

    pub fn views_dir(&self) -> PathBuf {
        self.root.join("views")
    }

    /// Where the object of `hash` is (whether or not it exists). A string that is not a content hash ([`is_hash`]) names
    /// no object: its path is one that never exists, inside `objects/` (so a crafted record can
    /// never make a caller read or delete a file elsewhere).
    pub fn object_path(&self, hash: &str) -> PathBuf {
        let mut p = self.root.join("objects");
        if !is_hash(hash) {
            p.push(".not-a-content-hash");
            return p;
        }
        p.push(&hash[..2]);
        p.push(hash);
        p
    }

    /// True when the object exists with the expected size (a cheap intactness check; `verify`
    /// re-hashes).
    pub fn object_intact(&self, hash: &str, size: u64) -> bool {
        match fs::metadata(self.object_path(hash)) {
            Ok(m) => m.is_file() && m.len() == size,
            Err(_) => false,
        }
    }

    /// Copies an outside file into the store, hashing while copying (one read pass).
    pub fn import_file(&self, src: &Path) -> Result<Digested> {
        let mut input = File::open(src).map_err(|e| Error::io(format!("cannot read input {}", src.display()), e))?;
        let tmp_path = self.tmp_file_path("import");
        let result = (|| {
            let mut out =
                File::create(&tmp_path).map_err(|e| Error::io(format!("cannot write {}", tmp_path.display()), e))?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; CHUNK];
            let mut size = 0u64;
            loop {
                let n = read_some(&mut input, &mut buf)
                    .map_err(|e| Error::io(format!("cannot read input {}", src.display()), e))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
                out.write_all(&buf[..n]).map_err(|e| Error::io(format!("cannot write {}", tmp_path.display()), e))?;
                size += n as u64;
            }
            let hash = hex(&hasher.finalize());
            self.move_into_objects(&tmp_path, out, &hash)?;
            Ok(Digested { hash, size })
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp_path);
        }
        result
    }

    /// Publishes a finished file from a work directory: hash, fsync, read-only, rename into
    /// `objects/`. If the object already exists the file is simply removed.
    pub fn publish(&self, path: &Path) -> Result<Digested> {
        let digested = hash_file(path)?;
        let file = File::open(path).map_err(|e| Error::io(format!("cannot open {}", path.display()), e))?;
        self.move_into_objects(path, file, &digested.hash)?;
        Ok(digested)
    }

    fn move_into_objects(&self, tmp_path: &Path, file: File, hash: &str) -> Result<()> {
        let dest = self.object_path(hash);
        if dest.exists() {
            drop(file);
            let _ = fs::remove_file(tmp_path);
            return Ok(());
        }
        file.sync_all().map_err(|e| Error::io(format!("cannot fsync {}", tmp_path.display()), e))?;
        drop(file);
        fs::set_permissions(tmp_path, fs::Permissions::from_mode(0o444))
            .map_err(|e| Error::io(format!("cannot make {} read-only", tmp_path.display()), e))?;
        let dir = dest.parent().expect("object path has a parent");
        fs::create_dir_all(dir).map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
        fs::rename(tmp_path, &dest)
            .map_err(|e| Error::io(format!("cannot move {} into {}", tmp_path.display(), dest.display()), e))?;
        sync_dir(dir)?;
        Ok(())
    }

    fn tmp_file_path(&self, tag: &str) -> PathBuf {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        self.root.join("tmp").join(format!("{tag}-{}-{n}.part", std::process::id()))
    }

    /// A fresh work directory for one activity, owned (locked) by this process until dropped.
    pub fn work_dir(&self, tag: &str) -> Result<WorkDir> {
        let n = TMP_COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = self.root.join("tmp").join(format!("{tag}-{}-{n}", std::process::id()));
        fs::create_dir_all(&path).map_err(|e| Error::io(format!("cannot create {}", path.display()), e))?;
        let owner = File::create(path.join(".owner"))
            .map_err(|e| Error::io(format!("cannot create {}/.owner", path.display()), e))?;
        owner.lock().map_err(|e| Error::io(format!("cannot lock {}/.owner", path.display()), e))?;
        Ok(WorkDir { path, _owner: owner })
    }

    /// Removes temp files and work directories left by processes that died. Returns how many.
    pub fn clean_stale_tmp(&self) -> Result<usize> {
        let tmp = self.root.join("tmp");
        let mut removed = 0;
        let entries = match fs::read_dir(&tmp) {
            Ok(e) => e,
            Err(_) => return Ok(0),
        };
        let me = format!("-{}-", std::process::id());
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if name.contains(&me) {
                continue;
            }
            if path.is_dir() {
                let owner = match OpenOptions::new().read(true).write(true).open(path.join(".owner")) {
                    Ok(f) => f,
                    Err(_) => {
                        // A directory without an owner file was never completed: half-made by
                        // a process killed between mkdir and lock, or not ours at all. Only
                        // the former follows our naming; leave anything else alone.
                        if is_ours(&name) && pid_of(&name).is_some_and(|p| !pid_alive(p)) {
                            let _ = make_writable_and_remove(&path);
                            removed += 1;
                        }
                        continue;
                    }
                };
                if owner.try_lock().is_ok() {
                    drop(owner);
                    // Its process died; a command it started may still run there (killed runs
                    // leave orphans): stop it before the activity can start again.
                    crate::procs::kill_processes_under(&path);
                    if make_writable_and_remove(&path).is_ok() {
                        removed += 1;
                    }
                }
            } else if is_ours(&name) && pid_of(&name).is_some_and(|p| !pid_alive(p)) {
                let _ = fs::remove_file(&path);
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Takes the per-activity-key lock, blocking until no other process or thread runs it.
    pub fn lock_activity(&self, key: &str) -> Result<ActivityLock> {
        if !is_hash(key) {
            return Err(Error::msg(format!("\"{key}\" is not an activity key (64 lowercase hex digits)")));
        }
        let dir = self.root.join("locks").join(&key[..2]);
        fs::create_dir_all(&dir).map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
        let path = dir.join(key);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(format!("cannot open lock {}", path.display()), e))?;
        let waited = match file.try_lock() {
            Ok(()) => false,
            Err(std::fs::TryLockError::WouldBlock) => {
                file.lock().map_err(|e| Error::io(format!("cannot lock {}", path.display()), e))?;
                true
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::io(format!("cannot lock {}", path.display()), e))
            }
        };
        Ok(ActivityLock { _file: file, waited })
    }
}

impl Store {
    /// Marks a recomputable object as in use (shared with other readers) until dropped, so no
    /// run deletes it while an activity reads it ([`Store::drop_recomputable`]). Blocks while a
    /// deletion holds it.
    pub fn lock_object_use(&self, hash: &str) -> Result<ObjectUse> {
        let file = self.object_use_file(hash)?;
        file.lock_shared().map_err(|e| Error::io(format!("cannot lock the use of object {hash}"), e))?;
        Ok(ObjectUse { _file: file })
    }

    /// Deletes a recomputable object that no activity is reading. Returns false (and keeps it)
    /// when one is: whoever finishes last with it, or the next run, deletes it then.
    pub fn drop_recomputable(&self, hash: &str) -> Result<bool> {
        if !is_hash(hash) {
            return Err(Error::msg(format!("\"{hash}\" is not a content hash")));
        }
        let file = self.object_use_file(hash)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(false),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(Error::io(format!("cannot lock the use of object {hash}"), e))
            }
        }
        let path = self.object_path(hash);
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(Error::io(format!("cannot delete {}", path.display()), e)),
        }
    }

    fn object_use_file(&self, hash: &str) -> Result<File> {
        if !is_hash(hash) {
            return Err(Error::msg(format!("\"{hash}\" is not a content hash")));
        }
        let dir = self.root.join("locks").join("use").join(&hash[..2]);
        fs::create_dir_all(&dir).map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
        let path = dir.join(hash);
        OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io(format!("cannot open lock {}", path.display()), e))
    }
}

/// A recomputable object in use by an activity (see [`Store::lock_object_use`]).
pub struct ObjectUse {
    _file: File,
}

/// Held while an activity runs; released on drop or when the process dies.
pub struct ActivityLock {
    _file: File,
    /// True when another holder had it first (so its result may now be recorded).
    pub waited: bool,
}

/// A per-activity scratch directory; removed (with everything left in it) on drop.
pub struct WorkDir {
    pub path: PathBuf,
    _owner: File,
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = make_writable_and_remove(&self.path);
    }
}

fn is_ours(name: &str) -> bool {
    name.split('-').count() >= 3
}

fn pid_of(name: &str) -> Option<u32> {
    let trimmed = name.trim_end_matches(".part");
    let mut parts = trimmed.rsplit('-');
    parts.next()?;
    parts.next()?.parse().ok()
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

fn make_writable_and_remove(path: &Path) -> std::io::Result<()> {
    // Files made read-only inside do not stop removal on Linux (the directory's mode counts),
    // but a read-only directory would.
    if let Ok(entries) = fs::read_dir(path) {
        for e in entries.flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                let _ = fs::set_permissions(e.path(), fs::Permissions::from_mode(0o755));
            }
        }
    }
    fs::remove_dir_all(path)
}

fn read_some(f: &mut File, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match f.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// SHA-256 and size of a file, read in 1 MiB chunks.
pub fn hash_file(path: &Path) -> Result<Digested> {
    let mut f = File::open(path).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut size = 0u64;
    loop {
        let n = read_some(&mut f, &mut buf).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok(Digested { hash: hex(&hasher.finalize()), size })
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("cannot fsync directory {}", dir.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_root(name: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("sst1mflow-store-test-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        p
    }

    #[test]
    fn import_names_objects_by_sha256_and_dedups() {
        let root = temp_root("import");
        let store = Store::open(&root).unwrap();
        let src = root.join("input.txt");
        fs::write(&src, b"abc").unwrap();
        let d = store.import_file(&src).unwrap();
        assert_eq!(d.hash, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(d.size, 3);
        let obj = store.object_path(&d.hash);
        assert_eq!(fs::read(&obj).unwrap(), b"abc");
        assert_eq!(fs::metadata(&obj).unwrap().permissions().mode() & 0o777, 0o444);
        assert_eq!(store.import_file(&src).unwrap(), d);
        assert!(store.object_intact(&d.hash, 3));
        assert!(!store.object_intact(&d.hash, 4));
        // No temp files left behind.
        assert_eq!(fs::read_dir(root.join("tmp")).unwrap().count(), 0);
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn work_dirs_of_live_owners_survive_cleaning() {
        let root = temp_root("clean");
        let store = Store::open(&root).unwrap();
        let wd = store.work_dir("act").unwrap();
        fs::write(wd.path.join("out"), b"x").unwrap();
        // A directory from a dead process: owner file present but unlocked.
        let dead = root.join("tmp").join("act-999999999-0");
        fs::create_dir_all(&dead).unwrap();
        fs::write(dead.join(".owner"), b"").unwrap();
        assert_eq!(store.clean_stale_tmp().unwrap(), 1);
        assert!(wd.path.exists());
        assert!(!dead.exists());
        let p = wd.path.clone();
        drop(wd);
        assert!(!p.exists());
        let _ = fs::remove_dir_all(&root);
    }
}
