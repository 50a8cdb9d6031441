//! The simulated raw night (`simulate-night`): the layout sst1mpipe's nightly scripts read,
//! files our zfits reader decodes to exactly the simulated values (the truth's digests),
//! SWAT numbers shared by coincident events, the calibration tables, determinism, and the
//! refusals.
mod common;
use common::{stderr, TempDir};
use sst1mflow::io::calibration_tables::read_pixel_calibration;
use sst1mflow::io::zfits::{DigicamEvent, DigicamReader};
use sst1mflow::raw_night::samples_fnv1a;
use std::collections::HashMap;
use std::path::Path;
use std::process::Command;

fn night(root: &Path, extra: &[&str]) -> std::process::Output {
    Command::new(common::bin())
        .args(["simulate-night"])
        .arg(root)
        .args(["--date", "2026-12-05", "--run-duration", "0.25", "--pedestal-rate", "60", "--quiet"])
        .args(extra)
        .output()
        .unwrap()
}

fn tree_bytes(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push((p.strip_prefix(root).unwrap().display().to_string(), std::fs::read(&p).unwrap()));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn a_simulated_night_reads_back_exactly_and_is_deterministic() {
    let dir = TempDir::new("night");
    let root = dir.path().join("raw");
    let o = night(&root, &["--json", "-j", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(summary["runs"], 8, "{summary}");
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(root.join("truth/20261205/night.json")).unwrap()).unwrap();
    let runs = truth["runs"].as_array().unwrap();
    let kinds: Vec<&str> = runs.iter().map(|r| r["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["dark", "science", "transition", "science", "transition", "science", "transition", "science"]);
    for (k, tel) in [(1usize, 21i32), (2, 22)] {
        let table = read_pixel_calibration(
            &root.join(format!("cs{k}/data/calibration/SST1M{k}_calib_param_20261205.h5")),
            1296,
        )
        .unwrap();
        let dead: Vec<usize> = (0..1296).filter(|&p| table.calib_flag[p] != 1).collect();
        let listed: Vec<usize> = truth["cameras"][k - 1]["dead_pixels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        assert_eq!(dead, listed);
        assert!(dead.iter().all(|&p| table.dc_to_pe[p].is_nan()) && dead.len() == 3);
        let mut array_times: HashMap<u32, i64> = HashMap::new();
        for run in runs {
            let n = run["run_number"].as_u64().unwrap();
            let path = root.join(format!("cs{k}/data/raw/2026/12/05/SST1M{k}/SST1M{k}_20261205_{n:04}.fits.fz"));
            let mut r = DigicamReader::open(&path).unwrap();
            let target = r.target.clone().unwrap();
            match run["kind"].as_str().unwrap() {
                "dark" => assert_eq!(target, "DARK"),
                "transition" => assert_eq!(target, "Transition"),
                _ => {
                    let fields: Vec<&str> = target.split(',').collect();
                    assert_eq!(fields[0], run["target"].as_str().unwrap());
                    assert_eq!(fields[1], run["wobble"].as_str().unwrap());
                    let ra: f64 = fields[2].parse().unwrap();
                    assert!((ra - run["pointing_ra_deg"].as_f64().unwrap()).abs() < 1e-4);
                }
            }
            let csv =
                std::fs::read_to_string(root.join(format!("truth/20261205/SST1M{k}_20261205_{n:04}.csv"))).unwrap();
            let rows: Vec<Vec<&str>> = csv.lines().skip(1).map(|l| l.split(',').collect()).collect();
            assert_eq!(r.n_events as usize, rows.len());
            let mut e = DigicamEvent::default();
            let mut pedestals = 0;
            for row in &rows {
                assert!(r.read_into(&mut e).unwrap());
                assert_eq!(e.telescope_id, tel);
                assert_eq!(e.event_number.to_string(), row[0]);
                assert_eq!(e.array_event_number.to_string(), row[1]);
                assert_eq!(e.event_type.to_string(), row[2]);
                assert_eq!(e.local_clock_ns.to_string(), row[3]);
                assert_eq!(e.samples.iter().map(|&x| x as i64).sum::<i64>().to_string(), row[4]);
                assert_eq!(e.baselines.iter().map(|&x| x as i64).sum::<i64>().to_string(), row[5]);
                assert_eq!(format!("{:016x}", samples_fnv1a(&e.samples)), row[6]);
                pedestals += (e.event_type == 8) as usize;
                // A SWAT number names one array event: the same time in both telescopes.
                if let Some(t) = array_times.insert(e.array_event_number, e.local_clock_ns) {
                    assert_eq!(t, e.local_clock_ns, "array event {}", e.array_event_number);
                }
            }
            assert!(!r.read_into(&mut e).unwrap());
            assert_eq!(pedestals as u64, run["pedestal_events"][k - 1].as_u64().unwrap());
            if run["kind"] == "dark" {
                assert_eq!(pedestals, rows.len(), "a dark run holds pedestal events only");
            }
        }
    }
    let shared = runs.iter().map(|r| r["coincident_showers"].as_u64().unwrap()).sum::<u64>();
    assert!(shared > 0);
    // The same seed gives the same bytes, whatever the number of threads; another seed not.
    let again = dir.path().join("again");
    let o = night(&again, &["-j", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(tree_bytes(&root) == tree_bytes(&again), "same seed, different bytes");
    let other = dir.path().join("other");
    assert!(night(&other, &["--seed", "2"]).status.success());
    let (a, b) = (tree_bytes(&root), tree_bytes(&other));
    assert!(a.iter().zip(&b).any(|(x, y)| x.1 != y.1));
    // Refusals: a tree that already holds the night, a date that is not one.
    let o = night(&root, &[]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("already holds raw files"), "{}", stderr(&o));
    let o = Command::new(common::bin())
        .args(["simulate-night", dir.path().join("x").to_str().unwrap(), "--date", "2026-02-30"])
        .output()
        .unwrap();
    assert!(!o.status.success() && stderr(&o).contains("2026-02-30"), "{}", stderr(&o));
}
