//! Helpers for the integration tests: they drive the real binary against throw-away stores.
#![allow(dead_code)]
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_sst1mflow")
}

/// A fresh directory under the system temp dir, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "sst1mflow-it-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        make_writable(&self.0);
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn make_writable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(m) = std::fs::symlink_metadata(p) {
        if m.is_dir() {
            let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o755));
            if let Ok(rd) = std::fs::read_dir(p) {
                for e in rd.flatten() {
                    make_writable(&e.path());
                }
            }
        }
    }
}

pub fn sst1mflow(store: &Path, args: &[&str]) -> Output {
    Command::new(bin()).arg("--store").arg(store).args(args).output().expect("binary runs")
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Runs a recipe with --json and returns (exit code, parsed report or Null).
pub fn run_json(store: &Path, recipe: &Path, extra: &[&str]) -> (i32, Value, String) {
    let mut args = vec!["--json", "run"];
    args.extend_from_slice(extra);
    let recipe_s = recipe.to_string_lossy().to_string();
    args.push(&recipe_s);
    let out = sst1mflow(store, &args);
    let v = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
    (out.status.code().unwrap_or(-1), v, stderr(&out))
}

/// (step/item/role → hash) for every output in a run report.
pub fn output_hashes(report: &Value) -> std::collections::BTreeMap<String, String> {
    let mut m = std::collections::BTreeMap::new();
    for a in report["activities"].as_array().expect("activities") {
        for (role, h) in a["outputs"].as_object().expect("outputs") {
            m.insert(
                format!("{}/{}/{}", a["step"].as_str().unwrap(), a["item"].as_str().unwrap(), role),
                h.as_str().unwrap().to_string(),
            );
        }
    }
    m
}

/// Counts of rows in the store's provenance tables (products, activities).
pub fn db_counts(store: &Path) -> (i64, i64) {
    let db = store.join("sst1mflow.sqlite");
    if !db.exists() {
        return (0, 0);
    }
    let conn = rusqlite::Connection::open(db).unwrap();
    let p = conn.query_row("SELECT count(*) FROM products", [], |r| r.get(0)).unwrap();
    let a = conn.query_row("SELECT count(*) FROM activities", [], |r| r.get(0)).unwrap();
    (p, a)
}

/// Number of object files in the store.
pub fn object_count(store: &Path) -> usize {
    let Ok(dirs) = std::fs::read_dir(store.join("objects")) else { return 0 };
    dirs.flatten().map(|d| std::fs::read_dir(d.path()).map(|f| f.count()).unwrap_or(0)).sum()
}

/// Writes `n` small input files `in_XX.txt` into `dir/inputs`.
pub fn write_inputs(dir: &Path, n: usize) {
    let inputs = dir.join("inputs");
    std::fs::create_dir_all(&inputs).unwrap();
    for i in 0..n {
        std::fs::write(inputs.join(format!("in_{i:02}.txt")), format!("run {i}\nalpha beta {}\n", i * 7)).unwrap();
    }
}

pub fn write(path: &Path, text: &str) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).unwrap();
    }
    std::fs::write(path, text).unwrap();
}

/// A three-step recipe over `dir/inputs/*.txt` reading config key `cuts.suffix`:
/// per-file `calib` (fan-out), `merge` (gather), `summary`. Returns the recipe path.
pub fn three_step_recipe(dir: &Path, n_inputs: usize) -> PathBuf {
    write_inputs(dir, n_inputs);
    write(&dir.join("config.json"), r#"{"cuts": {"suffix": "ok", "unused": 1}}"#);
    let recipe = serde_json::json!({
        "name": "three",
        "config": "config.json",
        "inputs": {"raw": {"paths": "inputs/*.txt", "kind": "r0", "metadata": {"tel": 21}}},
        "steps": [
            {"name": "calib", "stage": "command", "inputs": {"f": "raw"}, "foreach": "f",
             "params": {"argv": ["sed", "s/$/ {config:cuts.suffix}/", "{input:f}"], "stdout": "dl1",
                        "outputs": {"dl1": {"path": "dl1.txt", "kind": "dl1"}}}},
            {"name": "merge", "stage": "command", "inputs": {"parts": "calib.dl1"},
             "params": {"argv": ["cat", "{input:parts}"], "stdout": "dl2", "outputs": {"dl2": {"path": "dl2.txt", "kind": "dl2"}}}},
            {"name": "summary", "stage": "command", "inputs": {"events": "merge.dl2"},
             "params": {"argv": ["sort", "-r", "{input:events}"], "stdout": "n", "outputs": {"n": {"path": "n.txt", "kind": "dl3"}}}}
        ]
    });
    let path = dir.join("recipe.json");
    write(&path, &serde_json::to_string_pretty(&recipe).unwrap());
    path
}

/// Runs `sst1mflow --json ARGS…` and parses stdout, asserting success.
pub fn json_ok(store: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = sst1mflow(store, &all);
    assert!(out.status.success(), "{args:?} failed: {}{}", stderr(&out), stdout(&out));
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: bad JSON ({e}): {}", stdout(&out)))
}

/// The object path a view link points to.
pub fn view_target(store: &Path, rel: &str) -> PathBuf {
    std::fs::canonicalize(store.join("views").join(rel)).unwrap()
}

pub fn hash_of(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().to_string()
}
