//! Nightly processing of a realistic simulated night on this machine (issue 22): both
//! telescopes' raw zfits runs → DL1 → stereo → DL2 → DL3 → indexes → summary, through
//! `sst1mflow nightly` (the release binary), against the target of the whole night in less
//! than a twentieth of its observing time. Prints figures, asserts nothing.
//!
//! The production is the stereo quickstart (`recipes/quickstart-stereo.json`, one node at
//! zenith 28°), run in `SST1MFLOW_BENCH_STORE` (kept between runs: made once, about ten
//! minutes; else a temporary store). The night (`SST1MFLOW_BENCH_NIGHT=<root>` reuses one made
//! before, with the date 2026-12-05) is the Crab at W1 and W2 with
//! `SST1MFLOW_BENCH_RUNS_PER_WOBBLE` [10] runs of `SST1MFLOW_BENCH_RUN_S` [20] s each, a dark run
//! and the transition runs: the shower trigger rate at the Crab's zenith (~33°) is the
//! simulator's, ~190 Hz per telescope, plus 20 Hz of pedestal events (real SST-1M runs: about
//! the same rate). Mrk 421 is left out: at 70° zenith no node of this production is near it, so
//! its runs would only be listed. The reference, sst1mpipe's `daily_analysis.py`, cannot run
//! here (sst1mpipe and its models are not installed); the figures of issue 21 (r0-dl1 alone)
//! are printed beside.
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// r0-dl1 alone on both cores on a night of the same generator, new raw inputs (issue 21's
/// benchmark, `cargo bench --bench raw_inputs`, 2026-12-07, the code of this figure's stop:
/// 11,150–11,580 events/s).
const R0_DL1_EVENTS_PER_S_ISSUE_21: f64 = 11_150.0;

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    let root_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let bin = root_dir.join("target/release/sst1mflow");
    let array = root_dir.join("../shared/data/sst1mpipe_data/sst1m_array.h5");
    if !bin.exists() || !array.exists() {
        println!("skipped: needs {} (cargo build --release) and {}", bin.display(), array.display());
        return;
    }
    let tmp = std::env::temp_dir().join(format!("sst1mflow-bench-nightly-{}", std::process::id()));
    let store: PathBuf =
        std::env::var_os("SST1MFLOW_BENCH_STORE").map(PathBuf::from).unwrap_or_else(|| tmp.join("store"));
    let t = Instant::now();
    let out = Command::new(&bin)
        .args(["--store", store.to_str().unwrap(), "-q", "run", "recipes/quickstart-stereo.json"])
        .current_dir(root_dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    println!("production (quickstart-stereo) ready in {:.1} s", t.elapsed().as_secs_f64());

    let night = match std::env::var_os("SST1MFLOW_BENCH_NIGHT") {
        Some(r) => PathBuf::from(r),
        None => {
            let root = tmp.join("raw");
            let run_s: f64 = env_or("SST1MFLOW_BENCH_RUN_S", 20.0);
            let per_wobble: u32 = env_or("SST1MFLOW_BENCH_RUNS_PER_WOBBLE", 10);
            let t = Instant::now();
            let out = Command::new(&bin)
                .args(["-q", "simulate-night", root.to_str().unwrap(), "--date", "2026-12-05", "--targets", "Crab"])
                .args(["--run-duration", &run_s.to_string(), "--runs-per-wobble", &per_wobble.to_string()])
                .output()
                .unwrap();
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            println!("simulated the night in {:.1} s", t.elapsed().as_secs_f64());
            root
        }
    };
    let config = tmp.join("nightly_config.json");
    std::fs::create_dir_all(&tmp).unwrap();
    let mut data: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root_dir.join("config/sst1mpipe_data_config.json")).unwrap())
            .unwrap();
    let mc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root_dir.join("config/sst1mpipe_mc_config.json")).unwrap())
            .unwrap();
    data["event_selection"] = mc["event_selection"].clone();
    data["analysis"]["global_gammaness_cut"] = mc["analysis"]["global_gammaness_cut"].clone();
    std::fs::write(&config, serde_json::to_string_pretty(&data).unwrap()).unwrap();

    let nightly = |label: &str| -> serde_json::Value {
        let t = Instant::now();
        let out = Command::new(&bin)
            .args(["--store", store.to_str().unwrap(), "--json", "nightly", "--raw", night.to_str().unwrap()])
            .args(["--date", "2026-12-05", "--production", "quickstart-stereo", "--config", config.to_str().unwrap()])
            .args(["--subarray", array.to_str().unwrap()])
            .output()
            .unwrap();
        let wall = t.elapsed().as_secs_f64();
        let mut s: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|_| panic!("nightly: {}", String::from_utf8_lossy(&out.stderr)));
        s["wall_s"] = serde_json::json!(wall);
        println!("{label}: {wall:.2} s wall, activities {}", s["activities"]);
        s
    };
    let s = nightly("nightly, from raw");
    let wall = s["wall_s"].as_f64().unwrap();
    let runs = s["runs"].as_array().unwrap();
    let analysed: Vec<&serde_json::Value> = runs.iter().filter(|r| r["status"] == "analysed").collect();
    let events: u64 = analysed.iter().map(|r| r["events"].as_u64().unwrap()).sum();
    let bytes: u64 =
        analysed.iter().map(|r| std::fs::metadata(r["file"].as_str().unwrap()).map_or(0, |m| m.len())).sum();
    // Observing time: from the first run's start to the last run's end (as a night is counted).
    let start = runs.iter().map(|r| r["start_unix_s"].as_f64().unwrap()).fold(f64::INFINITY, f64::min);
    let end = runs
        .iter()
        .map(|r| r["start_unix_s"].as_f64().unwrap() + r["duration_s"].as_f64().unwrap())
        .fold(f64::NEG_INFINITY, f64::max);
    let observing = end - start;
    println!(
        "night: {} runs ({} analysed files, {events} events, {:.1} GB), observing time {observing:.0} s",
        runs.len() / 2,
        analysed.len(),
        bytes as f64 / 1e9
    );
    println!(
        "whole chain: {:.0} events/s on 2 cores ({:.2}x issue 21's r0-dl1 alone, {R0_DL1_EVENTS_PER_S_ISSUE_21} events/s); \
         wall {wall:.1} s = observing time / {:.1} (target: / 20 or better)",
        events as f64 / wall,
        events as f64 / wall / R0_DL1_EVENTS_PER_S_ISSUE_21,
        observing / wall
    );
    println!("time per stage (sum over activities; they run two at a time):");
    for (stage, v) in s["stage_seconds"].as_object().into_iter().flatten() {
        println!("  {stage:<12} {:>3} activities {:>8.1} s", v["activities"], v["seconds"].as_f64().unwrap_or(0.0));
    }
    for t in s["targets"].as_array().into_iter().flatten() {
        println!(
            "  {} {}: {:.1} sigma in {:.0} s",
            t["target"],
            t["setup"],
            t["significance"].as_f64().unwrap(),
            t["livetime_s"].as_f64().unwrap()
        );
    }
    let again = nightly("nightly again (nothing to do)");
    let _ = again;
    if std::env::var_os("SST1MFLOW_BENCH_NIGHT").is_none() {
        let _ = std::fs::remove_dir_all(tmp.join("raw"));
    }
    if std::env::var_os("SST1MFLOW_BENCH_STORE").is_none() {
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
