//! The `simulate` and `r0-dl1` stages under the engine: reuse, config-scoped reruns,
//! determinism across stores, and bad parameters, config and inputs.
mod common;
use common::*;
use std::path::{Path, PathBuf};

fn config_text(window_width: u32) -> String {
    let base =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sst1mpipe_mc_config.json")).unwrap();
    base.replace("\"window_width\": 7", &format!("\"window_width\": {window_width}"))
}

fn small_recipe(dir: &Path, sim_params: &str) -> PathBuf {
    write(&dir.join("mc.json"), &config_text(7));
    let recipe = dir.join("mc-recipe.json");
    write(
        &recipe,
        &format!(
            r#"{{"name": "mc", "config": "mc.json",
                "steps": [{{"name": "sim", "stage": "simulate", "params": {sim_params}}},
                          {{"name": "dl1", "stage": "r0-dl1", "inputs": {{"r1": "sim.r1"}}}}]}}"#
        ),
    );
    recipe
}

const SIM: &str = r#"{"particle": "gamma", "n_events": 150, "seed": 5, "energy_min_tev": 2, "max_impact_m": 200}"#;

#[test]
fn simulate_then_dl1_is_deterministic_reused_and_config_scoped() {
    let dir = TempDir::new("science");
    let recipe = small_recipe(dir.path(), SIM);
    let (a, b) = (dir.path().join("store-a"), dir.path().join("store-b"));
    let (code, first, err) = run_json(&a, &recipe, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(first["ran"], 2);
    let (code, other, err) = run_json(&b, &recipe, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(output_hashes(&first), output_hashes(&other), "same inputs, config, version: same bytes");
    let (_, again, _) = run_json(&a, &recipe, &[]);
    assert_eq!(again["reused"], 2);

    // The DL1 carries the key of the activity that made it.
    let dl1 = view_target(&a, "mc/dl1/all/dl1.h5");
    let shown = json_ok(&a, &["show", dl1.to_str().unwrap()]);
    let key = shown["made_by"]["key"].as_str().unwrap().to_string();
    let bytes = std::fs::read(&dl1).unwrap();
    assert!(bytes.windows(64).any(|w| w == key.as_bytes()), "activity key embedded in the DL1 file");
    assert_eq!(shown["kind"], "dl1");
    let log = stdout(&sst1mflow(&a, &["log", &key[..12]]));
    assert!(log.contains("processed") && log.contains("with image parameters"), "{log}");
    // The PDE correction is for sim_telarray productions; the log says why it is not applied.
    assert!(log.contains("mc_correction_for_PDE: not applicable"), "{log}");

    // A key only r0-dl1 reads: the simulation is reused, DL1 reruns, and status says why.
    write(&dir.path().join("mc.json"), &config_text(5));
    let st = json_ok(&a, &["status", recipe.to_str().unwrap()]);
    let items = st[0]["not_up_to_date"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{st}");
    assert_eq!(items[0]["step"], "dl1");
    assert_eq!(items[0]["reason"], "config CameraCalibrator.LocalPeakWindowSum.window_width: 7 → 5");
    // The simulated R1 is recomputable: deleted once its DL1 was made, it is remade for the
    // rerun, to the hash recorded for it, and deleted again.
    let r1 = output_hashes(&first)["sim/all/r1"].clone();
    let r1_object = a.join("objects").join(&r1[..2]).join(&r1);
    assert!(!r1_object.exists(), "R1 deleted once consumed");
    let (code, third, err) = run_json(&a, &recipe, &[]);
    assert_eq!((code, third["ran"].as_u64(), third["reused"].as_u64()), (0, Some(1), Some(1)), "{err}");
    assert_eq!(third["recomputed"], 1, "{third}");
    assert_eq!(output_hashes(&third)["sim/all/r1"], r1);
    assert!(!r1_object.exists(), "R1 deleted again");
    // only_main_island is honoured: it changes the DL1 (fewer or equal islands), not the R1.
    write(&dir.path().join("mc.json"), &{
        let mut v: serde_json::Value = serde_json::from_str(&config_text(7)).unwrap();
        for tel in ["tel_001", "tel_002"] {
            for entry in v["ImageProcessor"]["ImageCleanerSST"]["telescope_defaults"][tel].as_array_mut().unwrap() {
                entry["only_main_island"] = true.into();
            }
        }
        v.to_string()
    });
    let (code, fourth, err) = run_json(&a, &recipe, &[]);
    assert_eq!((code, fourth["ran"].as_u64()), (0, Some(1)), "{err}");
    assert_ne!(output_hashes(&fourth)["dl1/all/dl1"], output_hashes(&first)["dl1/all/dl1"]);
    assert!(sst1mflow(&a, &["verify"]).status.success());
}

#[test]
fn bad_stage_parameters_config_and_inputs_are_refused() {
    let dir = TempDir::new("science-bad");
    let recipe = small_recipe(dir.path(), r#"{"particle": "gamma", "n_event": 10, "seed": 1}"#);
    let out = sst1mflow(&dir.path().join("s1"), &["run", recipe.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("unknown key \"n_event\" for stage simulate; did you mean \"n_events\"?"),
        "{}",
        stderr(&out)
    );
    let recipe = small_recipe(dir.path(), r#"{"particle": "gama", "n_events": 10, "seed": 1}"#);
    let out = sst1mflow(&dir.path().join("s2"), &["run", recipe.to_str().unwrap()]);
    assert!(stderr(&out).contains("unknown particle \"gama\"; did you mean \"gamma\"?"), "{}", stderr(&out));

    // A config without a key r0-dl1 reads: named, with the file and the closest key.
    let recipe = small_recipe(dir.path(), SIM);
    write(
        &dir.path().join("mc.json"),
        &config_text(7).replace("\"LocalPeakWindowSum\": {", "\"LocalPeakWindowSun\": {"),
    );
    let out = sst1mflow(&dir.path().join("s3"), &["run", recipe.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("mc.json")
            && err.contains("unknown config key \"CameraCalibrator.LocalPeakWindowSun\"")
            && err.contains("did you mean \"LocalPeakWindowSum\""),
        "{err}"
    );
    assert_eq!(db_counts(&dir.path().join("s3")), (0, 0));

    // A file that is not an R1 file: the activity fails with the file named, nothing is kept.
    write(&dir.path().join("mc.json"), &config_text(7));
    write(&dir.path().join("inputs/fake.h5"), "not hdf5 at all");
    let bad = dir.path().join("bad.json");
    write(
        &bad,
        r#"{"name": "bad", "config": "mc.json", "inputs": {"raw": {"paths": "inputs/fake.h5"}},
            "steps": [{"name": "dl1", "stage": "r0-dl1", "inputs": {"r1": "raw"}}]}"#,
    );
    let store = dir.path().join("s4");
    let (code, report, err) = run_json(&store, &bad, &[]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("fake.h5") && err.contains("not an input r0-dl1 reads"), "{err}");
    assert_eq!(report["failed"], 1);
    assert_eq!(object_count(&store), 0, "nothing is stored (the raw input is read in place)");
}
