//! Crash safety (SIGKILL at random moments) and concurrent runs against one store.
mod common;
use common::*;
use serde_json::json;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Fan-out of slow-ish activities, a gather and a final step: long enough to be killed in
/// every phase (input import, running, publishing, recording, views).
fn slow_recipe(dir: &std::path::Path, n_inputs: usize, counter: &std::path::Path) -> std::path::PathBuf {
    write_inputs(dir, n_inputs);
    let counter = counter.to_string_lossy();
    let recipe = json!({
        "inputs": {"raw": {"paths": "inputs/*.txt", "kind": "r0"}},
        "steps": [
            {"name": "calib", "stage": "command", "inputs": {"f": "raw"}, "foreach": "f",
             "params": {"argv": ["sh", "-c",
                 format!("echo \"$1\" >> {counter}; sleep 0.03; sort -r \"$1\" > out.txt; head -c 200000 /dev/zero >> out.txt"),
                 "calib", "{input:f}"],
                 "outputs": {"out": "out.txt"}}},
            {"name": "dl1", "stage": "command", "inputs": {"f": "calib.out"}, "foreach": "f",
             "params": {"argv": ["sh", "-c", format!("echo \"$1\" >> {counter}; sleep 0.02; md5sum \"$1\" | cut -c1-32 > p.txt"), "dl1", "{input:f}"],
                        "outputs": {"p": "p.txt"}}},
            {"name": "merge", "stage": "command", "inputs": {"parts": "dl1.p"},
             "params": {"argv": ["cat", "{input:parts}"], "stdout": "all", "outputs": {"all": "all.txt"}}}
        ]
    });
    let path = dir.join("recipe.json");
    write(&path, &serde_json::to_string_pretty(&recipe).unwrap());
    path
}

/// A small deterministic generator for kill times (xorshift64*), seeded so failures replay.
struct Rng(u64);
impl Rng {
    fn next_f64(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[test]
fn sigkill_at_random_moments_never_corrupts_the_store() {
    let dir = TempDir::new("crash");
    let counter = dir.path().join("counter.log");
    let recipe = slow_recipe(dir.path(), 10, &counter);

    // Reference: an uninterrupted run.
    let reference_store = dir.path().join("reference");
    let start = Instant::now();
    let (code, reference, err) = run_json(&reference_store, &recipe, &["-j", "2"]);
    assert_eq!(code, 0, "{err}");
    let first = start.elapsed();
    let expected = output_hashes(&reference);
    assert_eq!(expected.len(), 21);
    // A second uninterrupted run, in a store of its own: the first one also pays for a cold
    // binary and for the other tests of this file starting beside it, and a duration measured
    // too long would draw kill times after the runs have finished.
    let start = Instant::now();
    let (code, again, err) = run_json(&dir.path().join("reference-2"), &recipe, &["-j", "2"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(output_hashes(&again), expected);
    let full = first.min(start.elapsed());

    let seed: u64 = std::env::var("SST1MFLOW_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5eed_1234);
    println!("crash test seed {seed} (set SST1MFLOW_CRASH_SEED to replay); uninterrupted run {full:?}");
    let mut rng = Rng(seed);
    let mut kills = 0;
    let rounds = 18;
    for round in 0..rounds {
        let store = dir.path().join(format!("store-{round}"));
        // Up to three kills into the same store, each resuming the previous attempt.
        for _ in 0..(1 + round % 3) {
            let delay = Duration::from_secs_f64(full.as_secs_f64() * 1.1 * rng.next_f64());
            kills += usize::from(run_and_kill(&store, &recipe, delay));
            if let Some(report) = unclean_verify(&store) {
                panic!("round {round}, kill after {delay:?}: store not clean: {report}");
            }
        }
        let (code, report, err) = run_json(&store, &recipe, &["-j", "2"]);
        assert_eq!(code, 0, "round {round}: resume failed: {err}");
        assert_eq!(output_hashes(&report), expected, "round {round}: different products after resume");
        let v = sst1mflow(&store, &["verify"]);
        assert!(v.status.success(), "{}", stdout(&v));
    }
    println!("{kills} kills landed mid-run over {rounds} rounds");
    assert!(kills >= rounds / 2, "too few kills landed mid-run ({kills})");
}

/// Starts `run -j 2` of `recipe` and SIGKILLs it after `delay`. True when it was still running.
fn run_and_kill(store: &std::path::Path, recipe: &std::path::Path, delay: Duration) -> bool {
    command_killed_after(store, &["run", "-j", "2", recipe.to_str().unwrap()], delay)
}

/// `verify`'s report when the store (if any was created) is not clean.
fn unclean_verify(store: &std::path::Path) -> Option<serde_json::Value> {
    if !store.join("sst1mflow.sqlite").exists() {
        return None;
    }
    let v = sst1mflow(store, &["--json", "verify"]);
    let report: serde_json::Value = serde_json::from_slice(&v.stdout).unwrap();
    let clean = v.status.success() && report["problems"].as_array().is_some_and(|p| p.is_empty());
    (!clean).then_some(report)
}

fn unsafe_kill(pid: u32) {
    // std has no kill(2); the coreutils `kill` sends SIGKILL without a shell.
    let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
}

#[test]
fn two_runs_of_one_recipe_compute_each_activity_once() {
    let dir = TempDir::new("conc");
    let counter = dir.path().join("counter.log");
    let recipe = slow_recipe(dir.path(), 8, &counter);
    let store = dir.path().join("store");
    let spawn = || {
        Command::new(bin())
            .args(["--store", store.to_str().unwrap(), "--json", "run", "-j", "2", recipe.to_str().unwrap()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn(), spawn());
    let (a, b) = (a.wait_with_output().unwrap(), b.wait_with_output().unwrap());
    assert!(a.status.success(), "{}", stderr(&a));
    assert!(b.status.success(), "{}", stderr(&b));
    let ra: serde_json::Value = serde_json::from_slice(&a.stdout).unwrap();
    let rb: serde_json::Value = serde_json::from_slice(&b.stdout).unwrap();
    assert_eq!(output_hashes(&ra), output_hashes(&rb));
    // 8 calib + 8 dl1 command executions (merge does not write to the counter): exactly once each.
    let executions = std::fs::read_to_string(&counter).unwrap().lines().count();
    assert_eq!(executions, 16, "activities were computed more than once");
    let ran = ra["ran"].as_u64().unwrap() + rb["ran"].as_u64().unwrap();
    assert_eq!(ran, 17, "ran: {} + {}", ra["ran"], rb["ran"]);
    let (_, activities) = db_counts(&store);
    assert_eq!(activities, 17);
    let v = sst1mflow(&store, &["verify"]);
    assert!(v.status.success(), "{}", stdout(&v));
}

#[test]
fn many_processes_creating_one_store_at_once_all_succeed() {
    // Creating the database, switching it to WAL and migrating it race between processes;
    // SQLite may answer "locked" without waiting there, which the store must absorb.
    let dir = TempDir::new("openrace");
    let counter = dir.path().join("counter.log");
    let recipe = slow_recipe(dir.path(), 2, &counter);
    for round in 0..4 {
        let store = dir.path().join(format!("store-{round}"));
        let children: Vec<_> = (0..8)
            .map(|_| {
                Command::new(bin())
                    .args(["--store", store.to_str().unwrap(), "-q", "run", "-j", "1", recipe.to_str().unwrap()])
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(out.status.success(), "round {round}: {}", String::from_utf8_lossy(&out.stderr));
        }
        assert!(sst1mflow(&store, &["verify"]).status.success());
    }
}

/// `calib` (recomputable: deleted once consumed) → `dl1` (its command given) → `merge`.
fn recomputable_recipe(dir: &std::path::Path, name: &str, dl1_cmd: &str) -> std::path::PathBuf {
    let recipe = json!({
        "name": name,
        "inputs": {"raw": {"paths": "inputs/*.txt", "kind": "r0"}},
        "steps": [
            {"name": "calib", "stage": "command", "inputs": {"f": "raw"}, "foreach": "f", "recomputable": true,
             "params": {"argv": ["sh", "-c", "sleep 0.03; sort -r \"$1\" > out.txt; head -c 300000 /dev/zero >> out.txt",
                                 "calib", "{input:f}"],
                        "outputs": {"out": "out.txt"}}},
            {"name": "dl1", "stage": "command", "inputs": {"f": "calib.out"}, "foreach": "f",
             "params": {"argv": ["sh", "-c", format!("sleep 0.02; {dl1_cmd} < \"$1\" > p.txt"), "dl1", "{input:f}"],
                        "outputs": {"p": "p.txt"}}},
            {"name": "merge", "stage": "command", "inputs": {"parts": "dl1.p"},
             "params": {"argv": ["cat", "{input:parts}"], "stdout": "all", "outputs": {"all": "all.txt"}}}
        ]
    });
    let path = dir.join(format!("{name}.json"));
    write(&path, &serde_json::to_string_pretty(&recipe).unwrap());
    path
}

#[test]
fn sigkill_while_recomputable_outputs_are_deleted_or_remade_never_corrupts_the_store() {
    let dir = TempDir::new("crash-recomp");
    write_inputs(dir.path(), 10);
    // v1 makes and deletes the calib outputs; v2 changes dl1, so every calib output is remade.
    let v1 = recomputable_recipe(dir.path(), "v1", "cksum");
    let v2 = recomputable_recipe(dir.path(), "v2", "md5sum");
    let reference_store = dir.path().join("reference");
    let mut durations = Vec::new();
    let mut expected = Vec::new();
    for recipe in [&v1, &v2] {
        let start = Instant::now();
        let (code, report, err) = run_json(&reference_store, recipe, &["-j", "2"]);
        assert_eq!(code, 0, "{err}");
        durations.push(start.elapsed());
        expected.push(output_hashes(&report));
    }
    assert_eq!(expected[1].len(), 21);
    let seed: u64 = std::env::var("SST1MFLOW_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x2ec0_3b17);
    println!("seed {seed}; uninterrupted v1 {:?}, v2 (all calib remade) {:?}", durations[0], durations[1]);
    let mut rng = Rng(seed);
    let mut kills = 0;
    let rounds = 8;
    for round in 0..rounds {
        let store = dir.path().join(format!("store-{round}"));
        for (phase, recipe) in [&v1, &v2].into_iter().enumerate() {
            for _ in 0..(1 + (round + phase) % 2) {
                let delay = Duration::from_secs_f64(durations[phase].as_secs_f64() * 1.1 * rng.next_f64());
                kills += usize::from(run_and_kill(&store, recipe, delay));
                if let Some(report) = unclean_verify(&store) {
                    panic!("round {round} phase {phase}, kill after {delay:?}: store not clean: {report}");
                }
            }
            let (code, report, err) = run_json(&store, recipe, &["-j", "2"]);
            assert_eq!(code, 0, "round {round} phase {phase}: resume failed: {err}");
            assert_eq!(output_hashes(&report), expected[phase], "round {round} phase {phase}: other products");
            let v = sst1mflow(&store, &["verify"]);
            assert!(v.status.success(), "{}", stdout(&v));
            // Every calib output was consumed, so none is left in the store (a resumed run
            // deletes what a killed one left after its consumers were recorded).
            for (k, h) in expected[phase].iter().filter(|(k, _)| k.starts_with("calib/")) {
                let left = store.join("objects").join(&h[..2]).join(h).exists();
                assert!(!left, "round {round} phase {phase}: {k} left in the store");
            }
        }
    }
    println!("{kills} kills landed mid-run over {rounds} rounds");
    assert!(kills >= rounds / 2, "too few kills landed mid-run ({kills})");
}

/// Starts sst1mflow with `args` against `store` and SIGKILLs it after `delay`. True when it was
/// still running.
fn command_killed_after(store: &std::path::Path, args: &[&str], delay: Duration) -> bool {
    let mut child = Command::new(bin())
        .args(["--store", store.to_str().unwrap(), "--quiet"])
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(delay);
    let finished = child.try_wait().unwrap().is_some();
    unsafe_kill(child.id());
    let _ = child.wait();
    !finished
}

/// A small full chain of science stages: simulations, DL1, training, DL2, IRFs.
fn science_recipe(dir: &std::path::Path) -> std::path::PathBuf {
    let base = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sst1mpipe_mc_config.json"),
    )
    .unwrap();
    let mut config: serde_json::Value = serde_json::from_str(&base).unwrap();
    config["random_forest_regressor_args"]["n_estimators"] = 8.into();
    config["random_forest_classifier_args"]["n_estimators"] = 8.into();
    write(&dir.join("mc.json"), &serde_json::to_string_pretty(&config).unwrap());
    let models = json!({"energy": "train.energy", "disp_norm": "train.disp_norm", "disp_sign": "train.disp_sign", "gh": "train.gh"});
    let apply = |dl1: &str| {
        let mut inputs = models.clone();
        inputs["dl1"] = dl1.into();
        inputs
    };
    let recipe = json!({
        "name": "chain", "config": "mc.json",
        "steps": [
            {"name": "sim-g", "stage": "simulate", "params": {"particle": "gamma", "n_events": 600, "seed": 11, "viewcone_deg": 2.5, "energy_min_tev": 1, "max_impact_m": 300}},
            {"name": "sim-p", "stage": "simulate", "params": {"particle": "proton", "n_events": 900, "seed": 12, "viewcone_deg": 3.0, "energy_min_tev": 2, "max_impact_m": 300}},
            {"name": "dl1-g", "stage": "r0-dl1", "inputs": {"r1": "sim-g.r1"}},
            {"name": "dl1-p", "stage": "r0-dl1", "inputs": {"r1": "sim-p.r1"}},
            {"name": "train", "stage": "train-rfs", "inputs": {"gamma": "dl1-g.dl1", "proton": "dl1-p.dl1"}},
            {"name": "dl2-g", "stage": "dl1-dl2", "inputs": apply("dl1-g.dl1")},
            {"name": "dl2-p", "stage": "dl1-dl2", "inputs": apply("dl1-p.dl1")},
            {"name": "irfs", "stage": "make-irfs", "inputs": {"gamma": "dl2-g.dl2", "proton": "dl2-p.dl2"}}
        ]
    });
    let path = dir.join("chain.json");
    write(&path, &serde_json::to_string_pretty(&recipe).unwrap());
    path
}

#[test]
fn sigkill_in_science_stages_gc_rebuild_db_and_invalidate_never_corrupts_the_store() {
    let dir = TempDir::new("crash-science");
    let recipe = science_recipe(dir.path());
    let reference_store = dir.path().join("reference");
    let start = Instant::now();
    let (code, reference, err) = run_json(&reference_store, &recipe, &["-j", "2"]);
    assert_eq!(code, 0, "{err}");
    let full = start.elapsed();
    let expected = output_hashes(&reference);
    let seed: u64 = std::env::var("SST1MFLOW_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5c1e_4ce5);
    println!("crash test seed {seed}; uninterrupted science chain {full:?}");
    let mut rng = Rng(seed);
    let check = |store: &std::path::Path, what: &str| {
        if let Some(report) = unclean_verify(store) {
            panic!("{what}: store not clean: {report}");
        }
    };

    // The science stages, killed anywhere (simulating, writing HDF5, training, publishing).
    let mut kills = 0;
    let store = dir.path().join("store");
    for round in 0..6 {
        let delay = Duration::from_secs_f64(full.as_secs_f64() * 0.9 * rng.next_f64());
        kills += usize::from(run_and_kill(&store, &recipe, delay));
        check(&store, &format!("science round {round}, kill after {delay:?}"));
    }
    let (code, report, err) = run_json(&store, &recipe, &["-j", "2"]);
    assert_eq!(code, 0, "resume after the kills: {err}");
    assert_eq!(output_hashes(&report), expected, "the resumed chain made other bytes");
    println!("{kills} kills landed in the science chain");
    assert!(kills >= 3, "too few kills landed mid-run ({kills})");

    // rebuild-db --force, killed anywhere: the database stays whole, nothing is lost.
    let timed = |args: &[&str]| {
        let start = Instant::now();
        let out = sst1mflow(&store, args);
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        start.elapsed()
    };
    let rebuild = timed(&["rebuild-db", "--force"]);
    for round in 0..6 {
        let delay = Duration::from_secs_f64(rebuild.as_secs_f64() * 1.2 * rng.next_f64());
        command_killed_after(&store, &["rebuild-db", "--force"], delay);
        check(&store, &format!("rebuild-db round {round}, kill after {delay:?}"));
        let (code, report, err) = run_json(&store, &recipe, &["--dry-run"]);
        assert_eq!((code, report["reused"].as_u64()), (0, Some(8)), "rebuild-db round {round}: {err}\n{report}");
    }

    // invalidate of the training set, killed anywhere: it happened or it did not, and the
    // next run redoes exactly what depends on it when it did.
    let model = report["activities"].as_array().unwrap().iter().find(|a| a["step"] == "train").unwrap()["outputs"]
        ["energy"]
        .as_str()
        .unwrap()
        .to_string();
    let invalidate = timed(&["invalidate", &model, "--dry-run"]);
    let delay = Duration::from_secs_f64(invalidate.as_secs_f64() * 1.2 * rng.next_f64());
    command_killed_after(&store, &["invalidate", &model, "--reason", "crash test"], delay);
    check(&store, &format!("invalidate, kill after {delay:?}"));
    let out = sst1mflow(&store, &["invalidate", &model, "--reason", "crash test"]);
    assert!(out.status.success(), "invalidate again: {}", stderr(&out));
    let (code, report, err) = run_json(&store, &recipe, &["-j", "2"]);
    assert_eq!(code, 0, "{err}");
    let ran: Vec<&str> = report["activities"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["outcome"] == "ran")
        .map(|a| a["step"].as_str().unwrap())
        .collect();
    assert_eq!(ran, ["train", "dl2-g", "dl2-p", "irfs"], "{report}");
    assert_eq!(output_hashes(&report), expected, "retraining is deterministic");

    // gc --delete of what the invalidation left behind (the old model set's descendants are
    // recorded, their objects garbage), killed anywhere: never a live object lost.
    let gc = timed(&["gc"]);
    for round in 0..4 {
        let delay = Duration::from_secs_f64(gc.as_secs_f64() * 1.5 * rng.next_f64());
        command_killed_after(&store, &["gc", "--delete"], delay);
        check(&store, &format!("gc round {round}, kill after {delay:?}"));
    }
    let out = sst1mflow(&store, &["gc", "--delete"]);
    assert!(out.status.success(), "{}", stderr(&out));
    check(&store, "after gc");
    let (code, report, err) = run_json(&store, &recipe, &["--dry-run"]);
    assert_eq!((code, report["reused"].as_u64()), (0, Some(8)), "{err}\n{report}");
}
