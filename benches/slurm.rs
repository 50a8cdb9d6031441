//! SLURM executor benchmark: prints figures, asserts nothing.
//!
//! `SST1MFLOW_BENCH_SLURM_ACTIVITIES` (default 2,000) tiny `command` activities (one `cp` each,
//! one fan-out step) run on local cores and through SLURM with `--executor slurm`, one and 20
//! activities per array task; then `SST1MFLOW_BENCH_SLURM_SNAKEMAKE_ACTIVITIES` (default 200)
//! through sst1mflow and through Snakemake's SLURM executor plugin
//! (snakemake-executor-plugin-slurm, `scripts/setup.sh --bench` installs it) on a Snakefile of
//! the same shape. It prints the wall time, the overhead per activity over the local run, the
//! sbatch and squeue/sacct calls, and the ratio Snakemake / sst1mflow.
//!
//! Needs a running SLURM: `SLURM_LOCAL_CPUS=16 bash scripts/slurm_local/start-slurm.sh` (16
//! advertised CPUs, as ../shared/reference/slurm.md measured: the controller starts about one job
//! per free slot per second, so the slot count bounds the throughput of tiny jobs).
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_sst1mflow")
}

fn find_snakemake() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("SNAKEMAKE") {
        return Some(PathBuf::from(p));
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/snakemake");
    venv.exists().then_some(venv)
}

fn run_json(cmd: &mut Command) -> (f64, serde_json::Value) {
    let t = Instant::now();
    let out = cmd.stderr(Stdio::inherit()).output().expect("sst1mflow starts");
    let wall = t.elapsed().as_secs_f64();
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stdout));
    (wall, serde_json::from_slice(&out.stdout).expect("json report"))
}

/// A one-step recipe of `n` `cp` activities over `n` new input files under `dir`.
fn make_recipe(dir: &Path, n: usize) -> PathBuf {
    let inputs = dir.join("in");
    std::fs::create_dir_all(&inputs).unwrap();
    for i in 0..n {
        std::fs::write(inputs.join(format!("s{i:05}.txt")), format!("sample {i}\n")).unwrap();
    }
    let recipe = serde_json::json!({
        "name": "bench-slurm",
        "inputs": {"raw": {"paths": "in/*.txt"}},
        "steps": [{"name": "a", "stage": "command", "inputs": {"f": "raw"}, "foreach": "f",
                   "params": {"argv": ["cp", "{input:f}", "a.txt"], "outputs": {"out": "a.txt"}}}]
    });
    let path = dir.join("recipe.json");
    std::fs::write(&path, serde_json::to_string(&recipe).unwrap()).unwrap();
    path
}

/// Runs the recipe through SLURM into a fresh store with `per_task` activities per array task;
/// prints the figures and returns the wall time.
fn on_slurm(dir: &Path, recipe: &Path, n: usize, per_task: usize, local: f64) -> f64 {
    let settings = dir.join(format!("slurm-{per_task}.json"));
    std::fs::write(&settings, format!("{{\"activities_per_task\": {per_task}}}")).unwrap();
    let (wall, report) = run_json(
        Command::new(bin())
            .arg("--store")
            .arg(dir.join(format!("slurm-{per_task}")))
            .args(["-q", "--json", "run", "--executor", "slurm", "-j", "256", "--slurm-config"])
            .arg(&settings)
            .arg(recipe),
    );
    let calls = &report["slurm"];
    println!(
        "  sst1mflow --executor slurm, {per_task:>2} per task {wall:>8.1} s  ({:.1} ms per activity; overhead over local {:.1} ms)",
        1e3 * wall / n as f64,
        1e3 * (wall - local) / n as f64
    );
    println!(
        "    {} array tasks in {} sbatch calls; {} squeue + {} sacct calls",
        calls["array_tasks"], calls["sbatch_calls"], calls["squeue_calls"], calls["sacct_calls"]
    );
    wall
}

fn main() {
    let cpus = Command::new("sinfo").args(["-h", "-o", "%c %P"]).output().ok().filter(|o| o.status.success());
    let Some(cpus) = cpus else {
        println!("no SLURM answers: start one with SLURM_LOCAL_CPUS=16 bash scripts/slurm_local/start-slurm.sh");
        return;
    };
    let sinfo = String::from_utf8_lossy(&cpus.stdout).trim().to_string();
    let partition = sinfo.split_whitespace().nth(1).unwrap_or("debug").trim_end_matches('*').to_string();
    let n: usize = std::env::var("SST1MFLOW_BENCH_SLURM_ACTIVITIES").ok().and_then(|v| v.parse().ok()).unwrap_or(2000);
    // Snakemake's plugin submits one job per activity and polls slowly: 2,000 take about an
    // hour here, so it runs a smaller recipe, and so does sst1mflow for the ratio.
    let n_smk: usize =
        std::env::var("SST1MFLOW_BENCH_SLURM_SNAKEMAKE_ACTIVITIES").ok().and_then(|v| v.parse().ok()).unwrap_or(200);
    let work = std::env::temp_dir().join(format!("sst1mflow-bench-slurm-{}", std::process::id()));
    println!("SLURM node: {sinfo} CPU(s) advertised");
    let big = work.join("big");
    let recipe = make_recipe(&big, n);
    println!("{n} activities of one `cp` each:");
    let (local, _) =
        run_json(Command::new(bin()).arg("--store").arg(big.join("local")).args(["-q", "--json", "run"]).arg(&recipe));
    println!("  sst1mflow, local cores                {local:>8.1} s  ({:.2} ms per activity)", 1e3 * local / n as f64);
    on_slurm(&big, &recipe, n, 1, local);
    on_slurm(&big, &recipe, n, 20, local);

    let Some(snakemake) = find_snakemake() else {
        println!("snakemake not found (set $SNAKEMAKE or run scripts/setup.sh --bench): comparison skipped");
        return;
    };
    let small = work.join("small");
    let recipe = make_recipe(&small, n_smk);
    println!("{n_smk} activities of one `cp` each:");
    let (local, _) = run_json(
        Command::new(bin()).arg("--store").arg(small.join("local")).args(["-q", "--json", "run"]).arg(&recipe),
    );
    let ours = on_slurm(&small, &recipe, n_smk, 1, local);
    let sm = small.join("snakemake");
    std::fs::create_dir_all(&sm).unwrap();
    std::fs::write(
        sm.join("Snakefile"),
        format!(
            "import os\nIDS = sorted(f[1:-4] for f in os.listdir({in:?}))\n\
             rule all:\n    input: expand('out/a{{i}}.txt', i=IDS)\n\
             rule a:\n    input: {in:?} + '/s{{i}}.txt'\n    output: 'out/a{{i}}.txt'\n    shell: 'cp {{input}} {{output}}'\n",
            in = small.join("in").to_string_lossy()
        ),
    )
    .unwrap();
    let t = Instant::now();
    let out = Command::new(&snakemake)
        .current_dir(&sm)
        .args(["--executor", "slurm", "--jobs", "256", "--default-resources"])
        .arg(format!("slurm_partition={partition}"))
        .arg("runtime=10")
        .output()
        .expect("snakemake starts");
    let smk = t.elapsed().as_secs_f64();
    let text = String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        println!("snakemake --executor slurm failed:\n{}", tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
        return;
    }
    let submitted = text.matches("has been submitted with SLURM jobid").count();
    let version = Command::new(&snakemake).arg("--version").output().unwrap();
    println!(
        "  snakemake {} --executor slurm     {smk:>8.1} s  ({:.1} ms per activity; {submitted} sbatch calls)",
        String::from_utf8_lossy(&version.stdout).trim(),
        1e3 * smk / n_smk as f64
    );
    println!("RATIO snakemake slurm / sst1mflow slurm (1 activity per task), {n_smk} activities: {:.1}x", smk / ours);
    let _ = std::fs::remove_dir_all(&work);
}
