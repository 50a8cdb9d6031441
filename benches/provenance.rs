//! Provenance-query benchmark: prints figures, asserts nothing.
//!
//! 1. `lineage` of a product with 10,000 ancestors: a final gather over 5,000 per-file
//!    activities, each from one raw file (5,000 raw + 5,000 intermediate products + 1 final),
//!    recorded through the real engine. Timed as a library call and as the whole command.
//! 2. `status` of a recipe with 100,000 products: 50,000 input files and a fan-out step
//!    (50,000 raw inputs + 50,000 outputs), fully recorded, then checked. Set
//!    `SST1MFLOW_BENCH_STATUS_FILES` to change the size (products = 2 × files).
use sst1mflow::provenance::{query, Db};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_sst1mflow")
}

fn best_of(reps: usize, mut f: impl FnMut()) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..reps {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed());
    }
    best
}

fn run_ok(args: &[&str]) {
    let out = Command::new(bin()).args(args).stdout(Stdio::null()).stderr(Stdio::piped()).output().unwrap();
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn make_inputs(dir: &Path, n: usize) {
    std::fs::create_dir_all(dir.join("inputs")).unwrap();
    for i in 0..n {
        std::fs::write(dir.join(format!("inputs/f{i:06}.txt")), format!("{i}\n")).unwrap();
    }
}

fn lineage_bench(work: &Path) {
    let n = 5000;
    make_inputs(work, n);
    let recipe = serde_json::json!({
        "name": "lineage-bench",
        "inputs": {"raw": {"paths": "inputs/*.txt"}},
        "steps": [
            {"name": "dl1", "stage": "command", "inputs": {"f": "raw"}, "foreach": "f",
             "params": {"argv": ["sed", "s/$/ calibrated/", "{input:f}"], "stdout": "o", "outputs": {"o": "o.txt"}}},
            {"name": "final", "stage": "command", "inputs": {"parts": "dl1.o"},
             "params": {"argv": ["cat", "{input:parts}"], "stdout": "all", "outputs": {"all": "all.txt"}}}
        ]
    });
    let rp = work.join("recipe.json");
    std::fs::write(&rp, recipe.to_string()).unwrap();
    let store = work.join("store");
    eprintln!("recording {} activities for the lineage benchmark…", n + 1);
    run_ok(&["--store", store.to_str().unwrap(), "-q", "run", rp.to_str().unwrap()]);
    let target = std::fs::canonicalize(store.join("views/lineage-bench/final/all/all.txt")).unwrap();
    let hash = target.file_name().unwrap().to_string_lossy().to_string();
    let db = Db::open(&store.join("sst1mflow.sqlite")).unwrap();
    let mut ancestors = 0;
    let lib = best_of(10, || {
        let g = query::ancestors(&db, &hash).unwrap();
        ancestors = g.products.len() - 1;
    });
    let cmd_json = best_of(5, || run_ok(&["--store", store.to_str().unwrap(), "--json", "lineage", &hash]));
    let cmd_text = best_of(5, || run_ok(&["--store", store.to_str().unwrap(), "lineage", &hash]));
    println!("lineage of a product with {ancestors} ancestor products and {} activities:", n + 1);
    println!("  query (library, best of 10)          {:>8.1} ms (target < 50 ms)", lib.as_secs_f64() * 1e3);
    println!("  `sst1mflow --json lineage` command   {:>8.1} ms", cmd_json.as_secs_f64() * 1e3);
    println!("  `sst1mflow lineage` (text tree)      {:>8.1} ms", cmd_text.as_secs_f64() * 1e3);
}

fn status_bench(work: &Path) {
    let n: usize = std::env::var("SST1MFLOW_BENCH_STATUS_FILES").ok().and_then(|s| s.parse().ok()).unwrap_or(50_000);
    make_inputs(work, n);
    let recipe = serde_json::json!({
        "name": "status-bench",
        "inputs": {"raw": {"paths": "inputs/*.txt"}},
        "steps": [
            {"name": "dl1", "stage": "command", "inputs": {"f": "raw"}, "foreach": "f",
             "params": {"argv": ["sed", "s/$/ calibrated/", "{input:f}"], "stdout": "o", "outputs": {"o": "o.txt"}}}
        ]
    });
    let rp = work.join("recipe.json");
    std::fs::write(&rp, recipe.to_string()).unwrap();
    let store = work.join("store");
    eprintln!("recording {n} activities ({} products) for the status benchmark…", 2 * n);
    let t = Instant::now();
    run_ok(&["--store", store.to_str().unwrap(), "-q", "run", rp.to_str().unwrap()]);
    let populate = t.elapsed();
    let status = best_of(3, || run_ok(&["--store", store.to_str().unwrap(), "status", rp.to_str().unwrap()]));
    println!(
        "status of a recipe with {} products ({n} activities; populated in {:.0} s):",
        2 * n,
        populate.as_secs_f64()
    );
    println!("  `sst1mflow status RECIPE`            {:>8.3} s (target < 2 s)", status.as_secs_f64());
}

fn main() {
    let work = std::env::temp_dir().join(format!("sst1mflow-provbench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    lineage_bench(&work.join("lineage"));
    status_bench(&work.join("status"));
    let _ = std::fs::remove_dir_all(&work);
}
