//! sst1mpipe's configuration files, unchanged, and what becomes of every key in them: applied
//! by a step (and so in its key), read but not applied (checked, reported, never a rerun), or
//! read by no step (listed once at planning, misspelt keys with the closest known key); the
//! `config check` command that shows it; keys checked at planning (allowed_tels, the pixel
//! handler, bad pixels, the stereo matching method).
mod common;
use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("config").join(name)
}

fn mc_config() -> Value {
    serde_json::from_str(&std::fs::read_to_string(shipped("sst1mpipe_mc_config.json")).unwrap()).unwrap()
}

/// A small simulation and its DL1, with `config` as the recipe's config.
fn dl1_recipe(dir: &Path, config: &Value) -> PathBuf {
    write(&dir.join("cfg.json"), &serde_json::to_string_pretty(config).unwrap());
    let recipe = dir.join("dl1.json");
    write(
        &recipe,
        r#"{"name": "keys", "config": "cfg.json", "steps": [
            {"name": "sim", "stage": "simulate", "params": {"particle": "gamma", "n_events": 120, "seed": 3, "energy_min_tev": 2, "max_impact_m": 200}},
            {"name": "dl1", "stage": "r0-dl1", "inputs": {"r1": "sim.r1"}}]}"#,
    );
    recipe
}

#[test]
fn the_shipped_configs_are_sst1mpipes_byte_for_byte() {
    let upstream = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/sst1mpipe_data");
    if !upstream.is_dir() {
        println!("skipped: {} not found (sst1mpipe's default configs)", upstream.display());
        return;
    }
    for name in ["sst1mpipe_mc_config.json", "sst1mpipe_data_config.json"] {
        let ours = std::fs::read(shipped(name)).unwrap();
        let theirs = std::fs::read(upstream.join(name)).unwrap();
        assert!(ours == theirs, "config/{name} differs from sst1mpipe's file");
    }
    // Alone, each is all sst1mpipe keys: config check exits 0 and names the keys no stage reads.
    let store = TempDir::new("cfg-alone");
    for name in ["sst1mpipe_mc_config.json", "sst1mpipe_data_config.json"] {
        let out = sst1mflow(store.path(), &["--json", "config", "check", shipped(name).to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let key = |k: &str| v["keys"].as_array().unwrap().iter().find(|e| e["key"] == k).cloned().unwrap();
        // sst1mpipe's event classes: the misdirection lists are applied by their two stages.
        assert_eq!(
            key("misdirection_regression_features_mono")["applied_by"],
            json!(["train-misdirection", "event-classes"])
        );
        assert_eq!(
            key("misdirection_regression_features_stereo")["applied_by"],
            json!(["train-misdirection", "event-classes"])
        );
        assert_eq!(key("CameraCalibrator.LocalPeakWindowSum.window_width")["applied_by"], json!(["r0-dl1"]));
        assert_eq!(v["summary"]["not_sst1mpipe_keys"], 0);
        // Every key of sst1mpipe's own files is applied or read (with why) by some stage.
        assert_eq!(v["summary"]["read_by_no_step"], 0, "{name}: {v}");
    }
}

#[test]
fn every_key_is_applied_read_or_listed_and_only_applied_keys_rerun() {
    let dir = TempDir::new("cfg-keys");
    let store = dir.path().join("store");
    let mut config = mc_config();
    // A misspelt key beside the real one, and a misspelt section: no step reads them.
    config["analysis"]["gamma_eficiency"] = json!(0.7);
    config["ShowerProcesor"] = json!({"reconstructor_types": ["HillasReconstructor"]});
    let recipe = dl1_recipe(dir.path(), &config);
    let (code, report, err) = run_json(&store, &recipe, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(report["ran"], 2);
    // Listed once, with the closest sst1mpipe key; the notices too, once each.
    assert_eq!(err.matches("config keys no step of this recipe reads").count(), 1, "{err}");
    assert!(
        err.contains("analysis.gamma_eficiency (not an sst1mpipe key; did you mean \"analysis.gamma_efficiency\"?)"),
        "{err}"
    );
    assert!(err.contains("ShowerProcesor.reconstructor_types (not an sst1mpipe key; did you mean \"ShowerProcessor.reconstructor_types\"?)"), "{err}");
    let unread: Vec<&str> =
        report["config_unread"].as_array().unwrap().iter().map(|u| u["key"].as_str().unwrap()).collect();
    assert!(
        unread.contains(&"analysis.gamma_eficiency") && unread.contains(&"analysis.observation_time_h"),
        "{unread:?}"
    );
    assert_eq!(report["warnings"], json!([]), "sst1mpipe's MC config asks for nothing unimplemented here");

    // Keys no step of this recipe reads, keys read but not applied, another telescope's
    // settings: editing them reruns nothing.
    let edits: [(&str, Value); 6] = [
        ("/analysis/observation_time_h", json!(10)),
        ("/analysis/gamma_eficiency", json!(0.8)),
        ("/NsbCalibrator/intensity_correction/tel_002", json!(0.9)),
        ("/ImageProcessor/TailcutsImageCleaner/picture_threshold_pe", json!(12)),
        ("/analysis/bad_pixels/tel_002", json!([1, 2, 3])),
        ("/random_forest_regressor_args/n_jobs", json!(4)),
    ];
    for (path, value) in edits {
        let mut edited = config.clone();
        *edited.pointer_mut(path).unwrap() = value;
        let recipe = dl1_recipe(dir.path(), &edited);
        let (code, report, err) = run_json(&store, &recipe, &[]);
        assert_eq!((code, report["reused"].as_u64()), (0, Some(2)), "{path}: {err}\n{report}");
    }
    // A key the step applies reruns it (and only it).
    let mut edited = config.clone();
    edited["NsbCalibrator"]["intensity_correction"]["tel_001"] = json!(1.1);
    let (code, report, err) = run_json(&store, &dl1_recipe(dir.path(), &edited), &[]);
    assert_eq!((code, report["ran"].as_u64(), report["reused"].as_u64()), (0, Some(1), Some(1)), "{err}");

    // config check against the recipe: the same account, as a table and as JSON; exit 1 for
    // the misspelt keys.
    let cfg = dir.path().join("cfg.json");
    write(&cfg, &serde_json::to_string_pretty(&config).unwrap());
    let out = sst1mflow(&store, &["--json", "config", "check", cfg.to_str().unwrap(), recipe.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let key = |k: &str| v["keys"].as_array().unwrap().iter().find(|e| e["key"] == k).cloned().unwrap();
    assert_eq!(key("CameraCalibrator.LocalPeakWindowSum.window_width")["state"], "applied");
    assert_eq!(key("CameraCalibrator.LocalPeakWindowSum.window_width")["applied_by"], json!(["dl1"]));
    assert_eq!(key("NsbCalibrator.intensity_correction.tel_002")["state"], "read, not applied");
    assert_eq!(key("analysis.gamma_eficiency")["state"], "read by no step");
    assert!(key("analysis.gamma_eficiency")["hint"].as_str().unwrap().contains("analysis.gamma_efficiency"));
    assert_eq!(key("analysis.gamma_min_simulated_energy_tev")["applied_by"], json!(["dl1"]));
    assert_eq!(key("analysis.stereo_reco_weights")["state"], "read by no step");
    assert_eq!(v["summary"]["not_sst1mpipe_keys"], 2);
    let text = stdout(&sst1mflow(&store, &["config", "check", cfg.to_str().unwrap(), recipe.to_str().unwrap()]));
    assert!(text.contains("read by no step") && text.contains("did you mean \"analysis.gamma_efficiency\"?"), "{text}");
    // Nothing of this was recorded by config check.
    let (_, activities) = db_counts(&store);
    assert_eq!(activities, 3);
}

#[test]
fn simulated_events_below_the_minimum_true_energy_are_cut_as_sst1mpipe_does() {
    let dir = TempDir::new("cfg-emin");
    let store = dir.path().join("store");
    let rows = |gamma_min: f64| -> Vec<sst1mflow::io::dl1::ParametersRow> {
        let mut config = mc_config();
        config["analysis"]["gamma_min_simulated_energy_tev"] = json!(gamma_min);
        // The recipe's simulation starts at 2 TeV.
        let (code, _, err) = run_json(&store, &dl1_recipe(dir.path(), &config), &[]);
        assert_eq!(code, 0, "{err}");
        let dl1 = sst1mflow::io::dl1::Dl1Reader::open(&view_target(&store, "keys/dl1/all/dl1.h5")).unwrap();
        dl1.read(0, dl1.n_events).unwrap()
    };
    let all = rows(0.2);
    assert!(
        all.iter().all(|r| r.min_true_energy_cut == 2.0),
        "below the simulated minimum: no cut, the minimum recorded"
    );
    let cut = rows(4.0);
    assert!(!cut.is_empty() && cut.len() < all.len(), "{} of {}", cut.len(), all.len());
    assert!(cut.iter().all(|r| r.true_energy >= 4.0 && r.min_true_energy_cut == 4.0));
    assert_eq!(cut.len(), all.iter().filter(|r| r.true_energy >= 4.0).count(), "exactly the events below the cut go");
    // The proton value does not apply to gammas.
    let mut config = mc_config();
    config["analysis"]["proton_min_simulated_energy_tev"] = json!(4.0);
    let (code, report, err) = run_json(&store, &dl1_recipe(dir.path(), &config), &[]);
    assert_eq!(code, 0, "{err}");
    let dl1 = sst1mflow::io::dl1::Dl1Reader::open(&view_target(&store, "keys/dl1/all/dl1.h5")).unwrap();
    assert_eq!(dl1.n_events, all.len(), "{report}");
}

#[test]
fn settings_checked_at_planning_are_refused_before_anything_runs() {
    let dir = TempDir::new("cfg-refused");
    let cases: [(&str, Value, &str); 4] = [
        ("/allowed_tels", json!([2]), "allowed_tels = [2]"),
        ("/CameraCalibrator/invalid_pixel_handler_type", json!("Bilinear"), "only \"NeighborAverage\" and null"),
        ("/analysis/bad_pixels/tel_001", json!([12, 5000]), "analysis.bad_pixels.tel_001"),
        (
            "/ImageProcessor/ImageCleanerSST/telescope_defaults/tel_001/0/min_picture_neighbors",
            json!(7),
            "min_picture_neighbors",
        ),
    ];
    for (i, (path, value, expected)) in cases.into_iter().enumerate() {
        let mut config = mc_config();
        *config.pointer_mut(path).unwrap() = value;
        let sub = dir.path().join(format!("case{i}"));
        let recipe = dl1_recipe(&sub, &config);
        let store = sub.join("store");
        let out = sst1mflow(&store, &["run", recipe.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{path}: {}", stderr(&out));
        assert!(stderr(&out).contains(expected) && stderr(&out).contains("cfg.json"), "{path}: {}", stderr(&out));
        assert_eq!(db_counts(&store), (0, 0), "{path}: nothing recorded");
    }
    // A sliding window without its offset search: refused while planning, naming the key.
    let mut config = mc_config();
    config["stereo"] = json!({"event_matching_method": "SlidingWindow", "SlidingWindow": {"window_half_width": 0.001}});
    write(&dir.path().join("st.json"), &config.to_string());
    let recipe = dir.path().join("stereo.json");
    write(
        &recipe,
        r#"{"name": "st", "config": "st.json", "steps": [
            {"name": "sim", "stage": "simulate", "params": {"particle": "gamma", "n_events": 10, "seed": 1, "stereo": true}},
            {"name": "dl1-1", "stage": "r0-dl1", "inputs": {"r1": "sim.r1_tel_001"}},
            {"name": "dl1-2", "stage": "r0-dl1", "params": {"tel_id": 2}, "inputs": {"r1": "sim.r1_tel_002"}},
            {"name": "stereo", "stage": "dl1-stereo", "inputs": {"tel1": "dl1-1.dl1", "tel2": "dl1-2.dl1"}}]}"#,
    );
    let out = sst1mflow(&dir.path().join("st-store"), &["run", recipe.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("stereo.SlidingWindow.offset_search.time_start"), "{}", stderr(&out));
    // The step parameter overrides the config's method, and planning says so.
    let recipe_text = std::fs::read_to_string(&recipe)
        .unwrap()
        .replace(r#""stage": "dl1-stereo","#, r#""stage": "dl1-stereo", "params": {"matching": "event_id"},"#);
    write(&recipe, &recipe_text);
    let out = sst1mflow(&dir.path().join("st-store"), &["run", "--dry-run", recipe.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("is overridden by step \"stereo\"'s parameter \"matching\""), "{}", stderr(&out));
}

#[test]
fn bad_pixels_apply_to_simulations_and_the_pixel_handler_decides_their_charge() {
    let dir = TempDir::new("cfg-badpix");
    let store = dir.path().join("store");
    // The summed intensity of the DL1 images (each run's products embed its key, so the
    // content is compared, not the bytes).
    let run = |bad: Value, handler: Value| -> f64 {
        let mut config = mc_config();
        config["analysis"]["bad_pixels"]["tel_001"] = bad;
        config["CameraCalibrator"]["invalid_pixel_handler_type"] = handler;
        let (code, _, err) = run_json(&store, &dl1_recipe(dir.path(), &config), &[]);
        assert_eq!(code, 0, "{err}");
        let dl1 = sst1mflow::io::dl1::Dl1Reader::open(&view_target(&store, "keys/dl1/all/dl1.h5")).unwrap();
        let rows = dl1.read(0, dl1.n_events).unwrap();
        rows.iter().map(|r| r.camera_frame_hillas_intensity).filter(|v| v.is_finite()).sum()
    };
    let every_third: Vec<usize> = (0..1296).step_by(3).collect();
    let none = run(json!([]), json!("NeighborAverage"));
    let interpolated = run(json!(every_third), json!("NeighborAverage"));
    let zeroed = run(json!(every_third), Value::Null);
    assert!(none > 0.0 && interpolated > 0.0 && zeroed > 0.0, "{none} {interpolated} {zeroed}");
    assert_ne!(none, interpolated, "bad pixels change a simulation's DL1");
    assert!(zeroed < interpolated, "null leaves the bad pixels at zero charge: {zeroed} vs {interpolated}");
    // Without bad pixels the handler has nothing to do.
    assert_eq!(run(json!([]), Value::Null), none);
}
