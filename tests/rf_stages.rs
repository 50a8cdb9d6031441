//! The `train-rfs` and `dl1-dl2` stages under the engine: byte-identical models whatever the
//! store or number of threads, the models/DL1 contract (refusal with the differing settings
//! side by side, the recorded override), and broken or misplaced model files.
mod common;
use common::*;
use std::path::{Path, PathBuf};

/// The MC config with smaller forests (test speed) and a given picture threshold for tel 1.
fn config_text(picture_threshold: u32) -> String {
    let base =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sst1mpipe_mc_config.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&base).unwrap();
    v["random_forest_regressor_args"]["n_estimators"] = 20.into();
    v["random_forest_classifier_args"]["n_estimators"] = 20.into();
    v["ImageProcessor"]["ImageCleanerSST"]["telescope_defaults"]["tel_001"][0]["picture_threshold_pe"] =
        picture_threshold.into();
    serde_json::to_string_pretty(&v).unwrap()
}

const STEPS: &str = r#"
    {"name": "sim-g", "stage": "simulate", "params": {"particle": "gamma", "n_events": 1200, "seed": 11, "viewcone_deg": 2.5, "energy_min_tev": 1, "max_impact_m": 300}},
    {"name": "sim-p", "stage": "simulate", "params": {"particle": "proton", "n_events": 2400, "seed": 12, "viewcone_deg": 3.0, "energy_min_tev": 2, "max_impact_m": 300}},
    {"name": "dl1-g", "stage": "r0-dl1", "inputs": {"r1": "sim-g.r1"}},
    {"name": "dl1-p", "stage": "r0-dl1", "inputs": {"r1": "sim-p.r1"}}"#;

const APPLY: &str =
    r#""energy": "train.energy", "disp_norm": "train.disp_norm", "disp_sign": "train.disp_sign", "gh": "train.gh""#;

/// Simulate, DL1, train, and DL2 of the gamma DL1.
fn train_recipe(dir: &Path) -> PathBuf {
    write(&dir.join("mc.json"), &config_text(8));
    let recipe = dir.join("train.json");
    write(
        &recipe,
        &format!(
            r#"{{"name": "rf", "config": "mc.json", "steps": [{STEPS},
                {{"name": "train", "stage": "train-rfs", "inputs": {{"gamma": "dl1-g.dl1", "proton": "dl1-p.dl1"}}}},
                {{"name": "dl2", "stage": "dl1-dl2", "inputs": {{"dl1": "dl1-g.dl1", {APPLY}}}}}]}}"#
        ),
    );
    recipe
}

/// Model files as raw input sets of a recipe, and the step inputs naming them by role.
fn model_inputs(models: &[(&str, PathBuf)]) -> (Vec<String>, Vec<String>) {
    let inputs = models
        .iter()
        .map(|(role, p)| format!(r#""{role}": {{"paths": ["{}"], "kind": "rf-model"}}"#, p.display()))
        .collect();
    let roles = models.iter().map(|(role, _)| format!(r#""{role}": "{role}""#)).collect();
    (inputs, roles)
}

/// A second analysis applying model files (given as raw inputs) to DL1 made with
/// `picture_threshold`.
fn apply_recipe(dir: &Path, name: &str, models: &[(&str, PathBuf)], picture_threshold: u32, params: &str) -> PathBuf {
    write(&dir.join(format!("{name}.cfg.json")), &config_text(picture_threshold));
    let (inputs, roles) = model_inputs(models);
    let recipe = dir.join(format!("{name}.json"));
    write(
        &recipe,
        &format!(
            r#"{{"name": "{name}", "config": "{name}.cfg.json", "inputs": {{{}}}, "steps": [{STEPS},
                {{"name": "dl2", "stage": "dl1-dl2", "params": {params}, "inputs": {{"dl1": "dl1-g.dl1", {}}}}}]}}"#,
            inputs.join(", "),
            roles.join(", ")
        ),
    );
    recipe
}

fn model_paths(store: &Path) -> Vec<(&'static str, PathBuf)> {
    [
        ("energy", "reg_energy_tel_001.rf"),
        ("disp_norm", "reg_disp_norm_tel_001.rf"),
        ("disp_sign", "class_disp_sign_tel_001.rf"),
        ("gh", "class_gh_tel_001.rf"),
    ]
    .into_iter()
    .map(|(role, file)| (role, view_target(store, &format!("rf/train/all/{file}"))))
    .collect()
}

fn run_with_threads(store: &Path, recipe: &Path, threads: &str) -> (i32, serde_json::Value, String) {
    let out = std::process::Command::new(bin())
        .env("RAYON_NUM_THREADS", threads)
        .args(["--store", store.to_str().unwrap(), "--json", "run", recipe.to_str().unwrap()])
        .output()
        .unwrap();
    (out.status.code().unwrap_or(-1), serde_json::from_slice(&out.stdout).unwrap_or_default(), stderr(&out))
}

#[test]
fn training_and_application_are_byte_identical_and_the_contract_is_enforced() {
    let dir = TempDir::new("rf");
    let recipe = train_recipe(dir.path());
    let (a, b) = (dir.path().join("store-a"), dir.path().join("store-b"));
    let (code, first, err) = run_with_threads(&a, &recipe, "1");
    assert_eq!(code, 0, "{err}");
    let (code, second, err) = run_with_threads(&b, &recipe, "2");
    assert_eq!(code, 0, "{err}");
    let (ha, hb) = (output_hashes(&first), output_hashes(&second));
    assert_eq!(ha, hb, "same inputs and config, 1 or 2 threads: identical models and DL2");
    assert!(ha.keys().any(|k| k.contains("train") && k.contains("gh")), "{ha:?}");

    // The model header names the training DL1's settings, pipeline version and inputs.
    let models = model_paths(&a);
    let bytes = std::fs::read(&models[3].1).unwrap();
    assert_eq!(&bytes[..8], b"SST1MRF\n");
    let header_len = u32::from_le_bytes(bytes[12..16].try_into().unwrap()) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[16..16 + header_len]).unwrap();
    assert_eq!(header["model"], "gh");
    assert_eq!(header["classes"], serde_json::json!([0, 101]));
    assert_eq!(header["inputs"].as_array().unwrap().len(), 2);
    assert_eq!(
        header["dl1_settings"]["ImageProcessor.ImageCleanerSST.telescope_defaults.tel[0].picture_threshold_pe"],
        8
    );
    assert!(header["training"]["event_selection"]["camera_frame_hillas_intensity"].is_array());

    // Models applied to DL1 cleaned differently: refused, both products and the setting named.
    let other = apply_recipe(dir.path(), "stricter", &models, 10, "{}");
    let (code, report, err) = run_json(&a, &other, &[]);
    assert_ne!(code, 0);
    let failure = report.to_string() + &err;
    assert!(failure.contains("refusing to apply models"), "{failure}");
    assert!(
        failure.contains("ImageProcessor.ImageCleanerSST.telescope_defaults.tel[0].picture_threshold_pe"),
        "{failure}"
    );
    assert!(failure.contains("override_contract"), "{failure}");
    assert_eq!(report["failed"], 1, "{report}");

    // The explicit override runs, and the DL2 records what was overridden.
    let forced = apply_recipe(dir.path(), "forced", &models, 10, r#"{"override_contract": true}"#);
    let (code, _, err) = run_json(&a, &forced, &[]);
    assert_eq!(code, 0, "{err}");
    let dl2 = view_target(&a, "forced/dl2/all/dl2.h5");
    let file = hdf5::File::open(&dl2).unwrap();
    let note: hdf5::types::VarLenUnicode = file.attr("sst1mflow_contract_override").unwrap().read_scalar().unwrap();
    assert!(note.as_str().contains("picture_threshold_pe"), "{}", note.as_str());

    // Same settings as the training: applies cleanly, no override recorded.
    let same = apply_recipe(dir.path(), "same", &models, 8, "{}");
    let (code, _, err) = run_json(&a, &same, &[]);
    assert_eq!(code, 0, "{err}");
    let file = hdf5::File::open(view_target(&a, "same/dl2/all/dl2.h5")).unwrap();
    assert!(file.attr("sst1mflow_contract_override").is_err());
    let models_attr: hdf5::types::VarLenUnicode = file.attr("sst1mflow_models").unwrap().read_scalar().unwrap();
    assert!(models_attr.as_str().contains(&hash_of(&models[0].1)), "model hashes recorded in the DL2");

    // A model in the wrong role, a truncated model, and models of two trainings.
    let mut swapped = models.clone();
    swapped.swap(0, 1);
    swapped[0].0 = "energy";
    swapped[1].0 = "disp_norm";
    let r = apply_recipe(dir.path(), "swapped", &swapped, 8, "{}");
    let (code, report, err) = run_json(&a, &r, &[]);
    assert_ne!(code, 0);
    assert!((report.to_string() + &err).contains("given as the energy model is a disp_norm model"), "{report} {err}");

    let truncated = dir.path().join("truncated.rf");
    let full = std::fs::read(&models[0].1).unwrap();
    std::fs::write(&truncated, &full[..full.len() / 2]).unwrap();
    let mut broken = models.clone();
    broken[0].1 = truncated;
    let r = apply_recipe(dir.path(), "truncated", &broken, 8, "{}");
    let (code, report, err) = run_json(&a, &r, &[]);
    assert_ne!(code, 0);
    let failure = report.to_string() + &err;
    assert!(failure.contains("truncated.rf") && failure.contains("truncated or corrupted"), "{failure}");
    assert!(!a.join("views/truncated/dl2/all/dl2.h5").exists(), "nothing registered for a failed activity");

    // A model whose feature list names a column the DL1 lacks (e.g. from another version).
    let mut foreign = sst1mflow::io::model::read(&models[0].1, "energy").unwrap();
    foreign.header.features[0] = "camera_frame_hillas_nonexistent".into();
    let foreign_path = dir.path().join("foreign.rf");
    sst1mflow::io::model::write(&foreign_path, &foreign).unwrap();
    let mut mixed = models.clone();
    mixed[0].1 = foreign_path;
    let r = apply_recipe(dir.path(), "foreign", &mixed, 8, r#"{"override_contract": true}"#);
    let (code, report, err) = run_json(&a, &r, &[]);
    assert_ne!(code, 0, "a missing feature is never overridable");
    let failure = report.to_string() + &err;
    assert!(failure.contains("needs the feature \"camera_frame_hillas_nonexistent\""), "{failure}");

    // A model of another training slipped into the set.
    let mut other_training = sst1mflow::io::model::read(&models[3].1, "gh").unwrap();
    other_training.header.activity_key = "0".repeat(64);
    let other_path = dir.path().join("other.rf");
    sst1mflow::io::model::write(&other_path, &other_training).unwrap();
    let mut mixed = models.clone();
    mixed[3].1 = other_path;
    let r = apply_recipe(dir.path(), "mixed", &mixed, 8, "{}");
    let (code, report, err) = run_json(&a, &r, &[]);
    assert_ne!(code, 0);
    assert!((report.to_string() + &err).contains("were not trained together"), "{report} {err}");
    let (code, report, _) = run_json(&a, &r, &["--dry-run"]);
    assert_eq!(code, 0);
    assert!(report.to_string().contains("dl2"), "the failed step is still to do: {report}");
}

/// IRFs from DL2 of gammas simulated with `gamma_sim` (and the protons), with given models.
fn irf_recipe(dir: &Path, name: &str, models: &[(&str, PathBuf)], gamma_sim: &str) -> PathBuf {
    write(&dir.join(format!("{name}.cfg.json")), &config_text(8));
    let (inputs, roles) = model_inputs(models);
    let recipe = dir.join(format!("{name}.json"));
    write(
        &recipe,
        &format!(
            r#"{{"name": "{name}", "config": "{name}.cfg.json", "inputs": {{{inputs}}}, "steps": [
                {{"name": "sim-g", "stage": "simulate", "params": {gamma_sim}}},
                {{"name": "sim-p", "stage": "simulate", "params": {{"particle": "proton", "n_events": 2400, "seed": 12, "viewcone_deg": 3.0, "energy_min_tev": 2, "max_impact_m": 300}}}},
                {{"name": "dl1-g", "stage": "r0-dl1", "inputs": {{"r1": "sim-g.r1"}}}},
                {{"name": "dl1-p", "stage": "r0-dl1", "inputs": {{"r1": "sim-p.r1"}}}},
                {{"name": "dl2-g", "stage": "dl1-dl2", "inputs": {{"dl1": "dl1-g.dl1", {roles}}}}},
                {{"name": "dl2-p", "stage": "dl1-dl2", "inputs": {{"dl1": "dl1-p.dl1", {roles}}}}},
                {{"name": "irfs", "stage": "make-irfs", "inputs": {{"gamma": "dl2-g.dl2", "proton": "dl2-p.dl2"}}}}]}}"#,
            inputs = inputs.join(", "),
            roles = roles.join(", ")
        ),
    );
    recipe
}

#[test]
fn irfs_need_a_diffuse_simulation_and_carry_their_provenance() {
    let dir = TempDir::new("irf");
    let store = dir.path().join("store");
    let (code, _, err) = run_json(&store, &train_recipe(dir.path()), &[]);
    assert_eq!(code, 0, "{err}");
    let models = model_paths(&store);
    let diffuse = r#"{"particle": "gamma", "n_events": 1500, "seed": 21, "viewcone_deg": 2.5, "energy_min_tev": 1, "max_impact_m": 300}"#;
    let (code, report, err) = run_json(&store, &irf_recipe(dir.path(), "diffuse", &models, diffuse), &[]);
    assert_eq!(code, 0, "{err}");
    let irfs = view_target(&store, "diffuse/irfs/all/irfs.fits");
    let bytes = std::fs::read(&irfs).unwrap();
    assert_eq!(bytes.len() % 2880, 0);
    let text = String::from_utf8_lossy(&bytes);
    for needle in [
        "EXTNAME = 'EFFECTIVE AREA'",
        "EXTNAME = 'ENERGY DISPERSION'",
        "EXTNAME = 'POINT SPREAD FUNCTION'",
        "EXTNAME = 'BACKGROUND'",
        "HDUCLAS4= 'BKG_2D  '",
        "GH_CUT  =",
        "RFMODELS= ",
    ] {
        assert!(text.contains(needle), "{needle}");
    }
    let key = output_hashes(&report).keys().find(|k| k.contains("irfs")).cloned().unwrap();
    let shown = json_ok(&store, &["show", irfs.to_str().unwrap()]);
    let maker = shown["made_by"]["key"].as_str().unwrap().to_string();
    assert!(text.contains(&maker), "{key}: the activity key is in the headers");
    let copy = dir.path().join("copy.fits");
    std::fs::write(&copy, &bytes).unwrap();
    let lineage = json_ok(&store, &["lineage", copy.to_str().unwrap()]);
    assert!(lineage.to_string().contains("train-rfs"), "{lineage}");

    let point = r#"{"particle": "gamma", "n_events": 1500, "seed": 22, "source_offset_deg": 0.4, "energy_min_tev": 1, "max_impact_m": 300}"#;
    let (code, report, err) = run_json(&store, &irf_recipe(dir.path(), "point", &models, point), &[]);
    assert_ne!(code, 0);
    let failure = report.to_string() + &err;
    assert!(failure.contains("point-like"), "{failure}");
    assert!(!store.join("views/point/irfs/all/irfs.fits").exists());
}

#[test]
fn bad_training_configuration_is_refused_before_anything_runs() {
    let dir = TempDir::new("rf-config");
    let recipe = train_recipe(dir.path());
    let store = dir.path().join("store");
    for (from, to, expect) in [
        ("\"n_estimators\": 20", "\"n_estimator\": 20", "did you mean \"n_estimators\""),
        ("\"random_state\": 42", "\"random_state\": null", "unseeded"),
        ("\"disp_method\": \"disp_norm_sign\"", "\"disp_method\": \"disp_vector\"", "only \"disp_norm_sign\""),
        ("\"n_training_events\": 700000", "\"n_training_event\": 700000", "n_training_events"),
    ] {
        let text = config_text(8);
        assert!(text.contains(from), "{from}");
        write(&dir.path().join("mc.json"), &text.replacen(from, to, 1));
        let (code, report, err) = run_json(&store, &recipe, &[]);
        assert_ne!(code, 0, "{to}");
        assert!((report.to_string() + &err).contains(expect), "{to}: {report} {err}");
        assert_eq!(object_count(&store), 0, "nothing ran for {to}");
    }
}
