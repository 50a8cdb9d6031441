//! Engine benchmark: prints figures, asserts nothing (speed is measured here, never in tests).
//!
//! 1. Planning + a fully cached re-run of a recipe with 10,000 activities (two fan-out steps
//!    over 5,000 input files), against Snakemake's dry run of a Snakefile of the same shape,
//!    both timed as whole commands in this process. Snakemake is taken from `$SNAKEMAKE`, else
//!    `.venv/bin/snakemake`, else PATH (`scripts/bench.sh` sets up the virtualenv).
//! 2. SHA-256 of a 1 GiB page-cached file: our store's hashing against `openssl dgst -sha256`.
//! 3. Raw data volumes: planning a recipe over 10,000 unchanged raw files read in place (dry
//!    run and fully cached re-run; target under 0.5 s), and the first registration of
//!    `SST1MFLOW_BENCH_RAW_GIB` GiB (default 4; the issue asks 20, which this machine's free disk
//!    does not hold) of raw files in 1 GiB files, against `openssl dgst -sha256` on the same files
//!    (target at least 90 % of its throughput).
//!
//! Run with `scripts/bench.sh` (or `cargo bench --bench engine`). `SST1MFLOW_BENCH_FILES`
//! changes the number of input files (activities = 2 × files).
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_sst1mflow")
}

/// Best (minimum) wall time of `reps` runs of a command; panics with its stderr on failure.
fn time_cmd(reps: usize, mut make: impl FnMut() -> Command) -> Duration {
    let mut best = Duration::MAX;
    for _ in 0..reps {
        let mut cmd = make();
        let start = Instant::now();
        let out = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).output().expect("command starts");
        let t = start.elapsed();
        assert!(out.status.success(), "{:?} failed: {}", cmd, String::from_utf8_lossy(&out.stderr));
        best = best.min(t);
    }
    best
}

fn find_snakemake() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SNAKEMAKE") {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/snakemake");
    if venv.exists() {
        return Some(venv);
    }
    Command::new("snakemake").arg("--version").output().ok().filter(|o| o.status.success()).map(|_| "snakemake".into())
}

fn engine_bench(work: &Path, files: usize) {
    let inputs = work.join("inputs");
    std::fs::create_dir_all(&inputs).unwrap();
    for i in 0..files {
        std::fs::write(inputs.join(format!("s{i:05}.txt")), format!("sample {i}\n")).unwrap();
    }
    let recipe = serde_json::json!({
        "name": "bench",
        "inputs": {"raw": {"paths": "inputs/*.txt"}},
        "steps": [
            {"name": "a", "stage": "command", "inputs": {"f": "raw"}, "foreach": "f",
             "params": {"argv": ["cp", "{input:f}", "a.txt"], "outputs": {"out": "a.txt"}}},
            {"name": "b", "stage": "command", "inputs": {"f": "a.out"}, "foreach": "f",
             "params": {"argv": ["cp", "{input:f}", "b.txt"], "outputs": {"out": "b.txt"}}}
        ]
    });
    let recipe_path = work.join("recipe.json");
    std::fs::write(&recipe_path, serde_json::to_string(&recipe).unwrap()).unwrap();
    let store = work.join("store");
    let run = |extra: &[&str]| {
        let mut c = Command::new(bin());
        c.arg("--store").arg(&store).arg("--quiet").arg("run").args(extra).arg(&recipe_path);
        c
    };
    eprintln!("populating the store: {} activities (first run executes them all)…", 2 * files);
    let t_first = time_cmd(1, || run(&[]));
    let t_cached = time_cmd(5, || run(&[]));
    let t_dry = time_cmd(5, || run(&["--dry-run"]));
    println!("sst1mflow, {} activities:", 2 * files);
    println!("  first run (executes {} `cp` commands)  {:>9.3} s", 2 * files, t_first.as_secs_f64());
    println!("  plan + fully cached re-run              {:>9.3} s", t_cached.as_secs_f64());
    println!("  plan + dry run                          {:>9.3} s", t_dry.as_secs_f64());

    let Some(snakemake) = find_snakemake() else {
        println!("snakemake not found (set $SNAKEMAKE or run scripts/bench.sh): comparison skipped");
        return;
    };
    let sm = work.join("snakemake");
    std::fs::create_dir_all(&sm).unwrap();
    let mut f = std::fs::File::create(sm.join("Snakefile")).unwrap();
    writeln!(
        f,
        r#"SAMPLES = glob_wildcards("{}/s{{s}}.txt").s
rule all:
    input: expand("b/s{{s}}.txt", s=SAMPLES)
rule a:
    input: "{}/s{{s}}.txt"
    output: "a/s{{s}}.txt"
    shell: "cp {{input}} {{output}}"
rule b:
    input: "a/s{{s}}.txt"
    output: "b/s{{s}}.txt"
    shell: "cp {{input}} {{output}}""#,
        inputs.display(),
        inputs.display()
    )
    .unwrap();
    drop(f);
    let sm_cmd = |dir: &Path| {
        let mut c = Command::new(&snakemake);
        c.args(["-n", "--cores", "2", "--quiet", "all"]).current_dir(dir);
        c
    };
    let t_sm_fresh = time_cmd(3, || sm_cmd(&sm));
    // Same shape with every output present (Snakemake's equivalent of a cached re-run).
    let done = work.join("snakemake-done");
    std::fs::create_dir_all(done.join("a")).unwrap();
    std::fs::create_dir_all(done.join("b")).unwrap();
    std::fs::copy(sm.join("Snakefile"), done.join("Snakefile")).unwrap();
    for i in 0..files {
        std::fs::write(done.join(format!("a/s{i:05}.txt")), "x").unwrap();
    }
    for i in 0..files {
        std::fs::write(done.join(format!("b/s{i:05}.txt")), "x").unwrap();
    }
    let t_sm_done = time_cmd(3, || sm_cmd(&done));
    let version = Command::new(&snakemake).arg("--version").output().unwrap();
    println!("snakemake {} (-n, best of 3):", String::from_utf8_lossy(&version.stdout).trim());
    println!("  dry run, nothing built yet              {:>9.3} s", t_sm_fresh.as_secs_f64());
    println!("  dry run, every output present           {:>9.3} s", t_sm_done.as_secs_f64());
    let r1 = t_sm_fresh.as_secs_f64() / t_cached.as_secs_f64();
    let r2 = t_sm_done.as_secs_f64() / t_cached.as_secs_f64();
    println!("RATIO snakemake dry run / sst1mflow cached re-run: {r1:.1}x (target >= 20x); vs outputs-present dry run: {r2:.1}x");
}

fn hashing_bench(work: &Path) {
    let path = work.join("one-gib.bin");
    // Incompressible bytes from xorshift, written in 8 MiB blocks.
    write_noise(&path, 1 << 30, 0x9e37_79b9_7f4a_7c15);
    let gib = 1u64 << 30;
    let ours = sst1mflow::store::hash_file(&path).unwrap(); // warms the page cache
    let mut best_ours = Duration::MAX;
    for _ in 0..3 {
        let start = Instant::now();
        let d = sst1mflow::store::hash_file(&path).unwrap();
        best_ours = best_ours.min(start.elapsed());
        assert_eq!(d, ours);
    }
    let out = Command::new("openssl").args(["dgst", "-sha256", "-r"]).arg(&path).output();
    let Some(out) = out.ok().filter(|o| o.status.success()) else {
        println!("openssl not found: hashing comparison skipped (ours: {:.2} GiB/s)", 1.0 / best_ours.as_secs_f64());
        return;
    };
    assert!(String::from_utf8_lossy(&out.stdout).starts_with(&ours.hash), "digests differ");
    let best_openssl = time_cmd(3, || {
        let mut c = Command::new("openssl");
        c.args(["dgst", "-sha256"]).arg(&path);
        c
    });
    let to_gibs = |d: Duration| gib as f64 / d.as_secs_f64() / gib as f64;
    println!("SHA-256 of 1 GiB (page cache, best of 3):");
    println!("  sst1mflow store hashing  {:.3} s  {:.2} GiB/s", best_ours.as_secs_f64(), to_gibs(best_ours));
    println!("  openssl dgst -sha256     {:.3} s  {:.2} GiB/s", best_openssl.as_secs_f64(), to_gibs(best_openssl));
    println!(
        "RATIO sst1mflow / openssl throughput: {:.2} (target >= 0.90)",
        best_openssl.as_secs_f64() / best_ours.as_secs_f64()
    );
    let _ = std::fs::remove_file(&path);
}

fn main() {
    // `cargo bench` passes --bench; ignore arguments.
    let files: usize = std::env::var("SST1MFLOW_BENCH_FILES").ok().and_then(|s| s.parse().ok()).unwrap_or(5000);
    let work = std::env::temp_dir().join(format!("sst1mflow-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).unwrap();
    engine_bench(&work.join("engine"), files);
    hashing_bench(&work);
    raw_volume_bench(&work.join("volumes"));
    let _ = std::fs::remove_dir_all(&work);
}

fn write_noise(path: &Path, bytes: u64, seed: u64) {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut s: u64 = seed | 1;
    let mut block = vec![0u8; 8 << 20];
    for _ in 0..bytes / block.len() as u64 {
        for chunk in block.chunks_exact_mut(8) {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            chunk.copy_from_slice(&s.to_le_bytes());
        }
        f.write_all(&block).unwrap();
    }
}

/// A recipe over the raw files `work/<name>/*.fits.fz` (read in place) with one cheap step
/// that takes them all: what it costs is registration and planning.
fn counting_recipe(work: &Path, name: &str) -> PathBuf {
    let recipe = serde_json::json!({
        "name": name,
        "inputs": {"raw": {"paths": format!("{name}/*.fits.fz"), "kind": "r0"}},
        "steps": [{"name": "count", "stage": "command", "inputs": {"f": "raw"},
                   "params": {"argv": ["sh", "-c", "echo $# > n.txt", "count", "{input:f}"], "outputs": {"n": "n.txt"}}}]
    });
    let path = work.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string(&recipe).unwrap()).unwrap();
    path
}

fn raw_volume_bench(work: &Path) {
    // (a) Planning over 10,000 unchanged raw files read in place.
    let many = work.join("many");
    std::fs::create_dir_all(&many).unwrap();
    // Raw archives are read-only: commands get links to them, not copies.
    let read_only = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o444)).unwrap()
    };
    for i in 0..10_000 {
        let f = many.join(format!("run_{i:05}.fits.fz"));
        std::fs::write(&f, format!("raw run {i}\n")).unwrap();
        read_only(&f);
    }
    let recipe_path = counting_recipe(work, "many");
    let store = work.join("store");
    let run = |recipe: &Path, extra: &[&str]| {
        let mut c = Command::new(bin());
        c.arg("--store").arg(&store).arg("--quiet").arg("run").args(extra).arg(recipe);
        c
    };
    let t_first = time_cmd(1, || run(&recipe_path, &[]));
    let t_cached = time_cmd(5, || run(&recipe_path, &[]));
    let t_dry = time_cmd(5, || run(&recipe_path, &["--dry-run"]));
    println!("10,000 raw files read in place (one gathering step):");
    println!("  first run (hash and register all)       {:>9.3} s", t_first.as_secs_f64());
    println!("  plan + fully cached re-run              {:>9.3} s  (target < 0.5 s)", t_cached.as_secs_f64());
    println!("  plan + dry run                          {:>9.3} s", t_dry.as_secs_f64());

    // (b) First registration of GiBs of raw files, against openssl on the same files.
    let gib: u64 = std::env::var("SST1MFLOW_BENCH_RAW_GIB").ok().and_then(|s| s.parse().ok()).unwrap_or(4);
    let big = work.join("big");
    std::fs::create_dir_all(&big).unwrap();
    let files: Vec<PathBuf> = (0..gib).map(|i| big.join(format!("SST1M1_20261205_{i:04}.fits.fz"))).collect();
    for (i, f) in files.iter().enumerate() {
        write_noise(f, 1 << 30, 0x1234_5678 + i as u64);
        read_only(f);
    }
    let big_recipe = counting_recipe(work, "big");
    let openssl = || {
        let mut c = Command::new("openssl");
        c.args(["dgst", "-sha256"]).args(&files);
        c
    };
    if Command::new("openssl").arg("version").output().is_err() {
        println!("openssl not found: registration comparison skipped");
        return;
    }
    let t_openssl_1 = time_cmd(1, openssl); // also warms the page cache as far as it goes
    let mut best_ours = Duration::MAX;
    for round in 0..3 {
        let fresh = work.join(format!("big-store-{round}"));
        best_ours = best_ours.min(time_cmd(1, || {
            let mut c = Command::new(bin());
            c.arg("--store").arg(&fresh).arg("--quiet").arg("run").arg(&big_recipe);
            c
        }));
        let _ = std::fs::remove_dir_all(&fresh);
    }
    let t_openssl = time_cmd(2, openssl).min(t_openssl_1);
    let rate = |d: Duration| gib as f64 / d.as_secs_f64();
    println!("first registration of {gib} GiB of raw files ({gib} × 1 GiB, best of 3, page cache as it comes):");
    println!(
        "  sst1mflow run (hash, record places)     {:>9.3} s  {:.2} GiB/s",
        best_ours.as_secs_f64(),
        rate(best_ours)
    );
    println!(
        "  openssl dgst -sha256 on the same files  {:>9.3} s  {:.2} GiB/s",
        t_openssl.as_secs_f64(),
        rate(t_openssl)
    );
    println!(
        "RATIO sst1mflow registration / openssl throughput: {:.2} (target >= 0.90)",
        t_openssl.as_secs_f64() / best_ours.as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(work);
}
