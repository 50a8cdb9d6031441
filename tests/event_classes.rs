//! sst1mpipe's event classes under the engine: `train-misdirection` applies the misdirection
//! feature lists (a change reruns exactly the misdirection chain, the other setup's list
//! nothing), `event-classes` computes percentile edges on Monte Carlo and classifies DL2 with
//! them, and `make-irfs` makes one IRF per class; edges of another model and a DL2 without
//! classes are refused, naming the files.
mod common;
use common::*;
use serde_json::Value;
use sst1mflow::io::dl2::Dl2Reader;
use std::path::{Path, PathBuf};

/// The MC config with small forests (test speed), with `edit` applied.
fn config_text(edit: impl Fn(&mut Value)) -> String {
    let base =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sst1mpipe_mc_config.json")).unwrap();
    let mut v: Value = serde_json::from_str(&base).unwrap();
    v["random_forest_regressor_args"]["n_estimators"] = 20.into();
    v["random_forest_classifier_args"]["n_estimators"] = 20.into();
    edit(&mut v);
    serde_json::to_string_pretty(&v).unwrap()
}

const APPLY: &str =
    r#""energy": "train.energy", "disp_norm": "train.disp_norm", "disp_sign": "train.disp_sign", "gh": "train.gh""#;

/// Simulations, DL1, mono models, DL2 of a training and a test gamma set and of protons, the
/// misdirection model, edges on the test gammas, the classified test gammas and protons, and
/// the IRFs of classes 1 and 4.
fn recipe(dir: &Path, config: &str) -> PathBuf {
    write(&dir.join("ec.cfg.json"), config);
    let path = dir.join("ec.json");
    write(
        &path,
        &format!(
            r#"{{"name": "ec", "config": "ec.cfg.json", "steps": [
    {{"name": "sim-g", "stage": "simulate", "params": {{"particle": "gamma", "n_events": 1500, "seed": 11, "viewcone_deg": 2.5, "energy_min_tev": 1, "max_impact_m": 300}}}},
    {{"name": "sim-t", "stage": "simulate", "params": {{"particle": "gamma", "n_events": 1500, "seed": 13, "viewcone_deg": 2.5, "energy_min_tev": 1, "max_impact_m": 300}}}},
    {{"name": "sim-p", "stage": "simulate", "params": {{"particle": "proton", "n_events": 2400, "seed": 12, "viewcone_deg": 3.0, "energy_min_tev": 2, "max_impact_m": 300}}}},
    {{"name": "dl1-g", "stage": "r0-dl1", "inputs": {{"r1": "sim-g.r1"}}}},
    {{"name": "dl1-t", "stage": "r0-dl1", "inputs": {{"r1": "sim-t.r1"}}}},
    {{"name": "dl1-p", "stage": "r0-dl1", "inputs": {{"r1": "sim-p.r1"}}}},
    {{"name": "train", "stage": "train-rfs", "inputs": {{"gamma": "dl1-g.dl1", "proton": "dl1-p.dl1"}}}},
    {{"name": "dl2-g", "stage": "dl1-dl2", "inputs": {{"dl1": "dl1-g.dl1", {APPLY}}}}},
    {{"name": "dl2-t", "stage": "dl1-dl2", "inputs": {{"dl1": "dl1-t.dl1", {APPLY}}}}},
    {{"name": "dl2-p", "stage": "dl1-dl2", "inputs": {{"dl1": "dl1-p.dl1", {APPLY}}}}},
    {{"name": "mis", "stage": "train-misdirection", "inputs": {{"gamma": "dl2-g.dl2"}}}},
    {{"name": "edges", "stage": "event-classes", "inputs": {{"dl2": "dl2-t.dl2", "model": "mis.model"}}}},
    {{"name": "class-t", "stage": "event-classes", "inputs": {{"dl2": "dl2-t.dl2", "model": "mis.model", "edges": "edges.edges"}}}},
    {{"name": "class-p", "stage": "event-classes", "inputs": {{"dl2": "dl2-p.dl2", "model": "mis.model", "edges": "edges.edges"}}}},
    {{"name": "irfs-1", "stage": "make-irfs", "params": {{"event_class": 1}}, "inputs": {{"gamma": "class-t.dl2", "proton": "class-p.dl2"}}}},
    {{"name": "irfs-4", "stage": "make-irfs", "params": {{"event_class": 4}}, "inputs": {{"gamma": "class-t.dl2", "proton": "class-p.dl2"}}}},
    {{"name": "sim-obs", "stage": "simulate", "params": {{"mode": "observation", "obs_id": 7, "seed": 5, "start_unix_s": 1667267400, "duration_s": 4, "source_amplitude": 1e-8, "source_energy_min_tev": 1, "proton_energy_min_tev": 2, "proton_viewcone_deg": 1.5}}}},
    {{"name": "dl1-obs", "stage": "r0-dl1", "inputs": {{"r1": "sim-obs.r1"}}}},
    {{"name": "dl2-obs", "stage": "dl1-dl2", "inputs": {{"dl1": "dl1-obs.dl1", {APPLY}}}}},
    {{"name": "class-obs", "stage": "event-classes", "inputs": {{"dl2": "dl2-obs.dl2", "model": "mis.model", "edges": "edges.edges"}}}},
    {{"name": "dl3-1", "stage": "dl2-dl3", "params": {{"event_class": 1}}, "inputs": {{"dl2": "class-obs.dl2", "irfs": ["irfs-4.irfs", "irfs-1.irfs"]}}}}
]}}"#
        ),
    );
    path
}

/// The first run of [`recipe`] with the unedited config, by whichever test gets there first:
/// the other test (another store, run concurrently) must make the same bytes.
static FIRST_RUN: std::sync::Mutex<Option<std::collections::BTreeMap<String, String>>> = std::sync::Mutex::new(None);

fn same_bytes_in_every_store(hashes: std::collections::BTreeMap<String, String>) {
    let mut first = FIRST_RUN.lock().unwrap();
    match first.take() {
        None => *first = Some(hashes),
        Some(other) => assert_eq!(other, hashes, "the same recipe and config made other bytes in another store"),
    }
}

/// The steps a run ran (not reused), sorted.
fn ran(report: &Value) -> Vec<String> {
    let mut steps: Vec<String> = report["activities"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["outcome"] == "ran")
        .map(|a| a["step"].as_str().unwrap().to_string())
        .collect();
    steps.sort();
    steps
}

/// A header card of the effective-area HDU.
fn card(fits: &Path, key: &str) -> Option<String> {
    let hdus = sst1mflow::io::fits::read_file(fits, "irf").unwrap();
    let h = hdus.iter().find(|h| h.extname() == "EFFECTIVE AREA").unwrap();
    h.string(key).or_else(|| h.number(key).map(|n| n.to_string()))
}

#[test]
fn misdirection_features_are_applied_and_events_are_classified_by_them() {
    let dir = TempDir::new("event-classes");
    let store = dir.path().join("store");
    let (code, report, err) = run_json(&store, &recipe(dir.path(), &config_text(|_| {})), &[]);
    assert_eq!(code, 0, "{err}");
    same_bytes_in_every_store(output_hashes(&report));

    // The model: sst1mpipe's regressor on the config's mono list.
    let model_path = view_target(&store, "ec/mis/all/reg_misdirection.rf");
    let model = sst1mflow::io::model::read(&model_path, "model").unwrap();
    let config: Value = serde_json::from_str(&config_text(|_| {})).unwrap();
    let listed: Vec<String> = serde_json::from_value(config["misdirection_regression_features_mono"].clone()).unwrap();
    assert_eq!(model.header.features, listed);
    assert_eq!((model.header.model.as_str(), model.header.target.as_str()), ("misdirection", "log_misdirection"));

    // The classified test gammas: the selected events, each with a class; in every energy bin
    // the edges were computed on these very events, so each class holds about a quarter.
    let classified = Dl2Reader::open(&view_target(&store, "ec/class-t/all/dl2_classified.h5")).unwrap();
    let original = Dl2Reader::open(&view_target(&store, "ec/dl2-t/all/dl2.h5")).unwrap();
    assert!(classified.has_event_types && !original.has_event_types);
    assert!(classified.n_events > 100 && classified.n_events <= original.n_events, "{}", classified.n_events);
    assert_eq!(classified.models, original.models, "the RF models stay recorded");
    assert_eq!(classified.run.map(|r| r.n_showers), original.run.map(|r| r.n_showers), "thrown showers kept");
    let cols =
        classified.read_columns(&["event_type", "log_reco_misdirection", "event_id"], 0, classified.n_events).unwrap();
    let mut per_class = [0usize; 5];
    cols[0].iter().for_each(|&c| per_class[c as usize] += 1);
    let in_bins: usize = per_class[1..].iter().sum();
    for (class, &n) in per_class.iter().enumerate().skip(1) {
        let share = n as f64 / in_bins as f64;
        assert!((0.15..0.35).contains(&share), "class {class}: {n} of {in_bins} ({per_class:?})");
    }
    assert!(cols[1].iter().all(|m| m.is_finite()));
    // Every kept row is the original row with the same event id (rows kept in order).
    let ids = original.read_columns(&["event_id"], 0, original.n_events).unwrap();
    let mut j = 0;
    for id in &cols[2] {
        while ids[0][j] != *id {
            j += 1;
        }
    }
    let attr: Value = serde_json::from_str(&classified.classification).unwrap();
    assert_eq!(attr["misdirection_model"]["sha256"], hash_of(&model_path));

    // One IRF per class, saying which and what classified the events.
    let (irf1, irf4) = (view_target(&store, "ec/irfs-1/all/irfs.fits"), view_target(&store, "ec/irfs-4/all/irfs.fits"));
    assert_eq!(card(&irf1, "EVTCLASS").as_deref(), Some("1"));
    assert_eq!(card(&irf4, "EVTCLASS").as_deref(), Some("4"));
    let id: Value = serde_json::from_str(&card(&irf1, "EVTCLSID").unwrap()).unwrap();
    assert_eq!(id["misdirection_model"], hash_of(&model_path));
    assert_eq!(id["edges"], hash_of(&view_target(&store, "ec/edges/all/misdirection_edges.h5")));
    assert_ne!(hash_of(&irf1), hash_of(&irf4));
    // The DL3 of class 1: that class's events, with the IRF of class 1 chosen among two.
    let dl3 = view_target(&store, "ec/dl3-1/all/dl3.fits");
    let hdus = sst1mflow::io::fits::read_file(&dl3, "dl3").unwrap();
    let events = hdus.iter().find(|h| h.extname() == "EVENTS").unwrap();
    assert_eq!(events.number("EVTCLASS"), Some(1.0));
    let irf_key = |step: &str| {
        report["activities"].as_array().unwrap().iter().find(|a| a["step"] == step).unwrap()["key"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(events.string("IRFKEY"), Some(irf_key("irfs-1")));
    let observed = Dl2Reader::open(&view_target(&store, "ec/class-obs/all/dl2_classified.h5")).unwrap();
    assert!(observed.run.is_none() && observed.has_event_types && observed.n_events > 0);
    let before = output_hashes(&report);

    // The other setup's list changes nothing: nothing reruns.
    let stereo_edit = config_text(|v| {
        v["misdirection_regression_features_stereo"].as_array_mut().unwrap().pop();
    });
    let (code, report, err) = run_json(&store, &recipe(dir.path(), &stereo_edit), &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(ran(&report), Vec::<String>::new(), "a stereo key reruns nothing mono");

    // The mono list: exactly the misdirection chain reruns, with a different model.
    let mono_edit = config_text(|v| {
        v["misdirection_regression_features_mono"].as_array_mut().unwrap().pop();
    });
    let (code, report, err) = run_json(&store, &recipe(dir.path(), &mono_edit), &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(ran(&report), ["class-obs", "class-p", "class-t", "dl3-1", "edges", "irfs-1", "irfs-4", "mis"]);
    let after = output_hashes(&report);
    let changed: Vec<&String> = after.keys().filter(|k| before.get(*k) != after.get(*k)).collect();
    assert!(changed.iter().any(|k| k.contains("mis")), "{changed:?}");
    let model = sst1mflow::io::model::read(&view_target(&store, "ec/mis/all/reg_misdirection.rf"), "model").unwrap();
    assert_eq!(model.header.features.len(), listed.len() - 1);
}

#[test]
fn mismatched_models_edges_and_unclassified_dl2_are_refused() {
    let dir = TempDir::new("event-classes-bad");
    let store = dir.path().join("store");
    let (code, report, err) = run_json(&store, &recipe(dir.path(), &config_text(|_| {})), &[]);
    assert_eq!(code, 0, "{err}");
    same_bytes_in_every_store(output_hashes(&report));
    let edges = store.join("views/ec/edges/all/misdirection_edges.h5");
    let model = store.join("views/ec/mis/all/reg_misdirection.rf");
    let energy_model = store.join("views/ec/train/all/reg_energy_tel_001.rf");
    let dl2 = store.join("views/ec/dl2-t/all/dl2.h5");
    let dl2_p = store.join("views/ec/dl2-p/all/dl2.h5");
    let second = |name: &str, steps: &str, config: &str| {
        write(&dir.path().join(format!("{name}.cfg.json")), config);
        let path = dir.path().join(format!("{name}.json"));
        let raw = |role: &str, p: &Path, kind: &str| {
            format!(r#""{role}": {{"paths": ["{}"], "kind": "{kind}"}}"#, p.display())
        };
        write(
            &path,
            &format!(
                r#"{{"name": "{name}", "config": "{name}.cfg.json", "inputs": {{{}, {}, {}, {}, {}}}, "steps": [{steps}]}}"#,
                raw("edges", &edges, "misdirection-edges"),
                raw("model", &model, "rf-model"),
                raw("energy", &energy_model, "rf-model"),
                raw("dl2", &dl2, "dl2"),
                raw("dl2p", &dl2_p, "dl2"),
            ),
        );
        run_json(&store, &path, &[])
    };
    let base = config_text(|_| {});

    // A model that is not a misdirection model.
    let (code, _, err) = second(
        "wrong-model",
        r#"{"name": "c", "stage": "event-classes", "inputs": {"dl2": "dl2", "model": "energy", "edges": "edges"}}"#,
        &base,
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("reg_energy_tel_001.rf") && err.contains("is an \"energy\" model, not a misdirection model"),
        "{err}"
    );

    // Edges of another misdirection model (trained with one feature fewer).
    let fewer = config_text(|v| {
        v["misdirection_regression_features_mono"].as_array_mut().unwrap().pop();
    });
    let (code, _, err) = second(
        "other-edges",
        r#"{"name": "m", "stage": "train-misdirection", "inputs": {"gamma": "dl2"}},
           {"name": "c", "stage": "event-classes", "inputs": {"dl2": "dl2", "model": "m.model", "edges": "edges"}}"#,
        &fewer,
    );
    assert_ne!(code, 0);
    assert!(
        err.contains("misdirection_edges.h5") && err.contains("were computed with the misdirection model"),
        "{err}"
    );

    // The config's list differs from the model's.
    let (code, _, err) = second(
        "other-list",
        r#"{"name": "c", "stage": "event-classes", "inputs": {"dl2": "dl2", "model": "model", "edges": "edges"}}"#,
        &fewer,
    );
    assert_ne!(code, 0);
    assert!(err.contains("misdirection_regression_features_mono is [") && err.contains("reg_misdirection.rf"), "{err}");

    // A DL3 of a class no IRF given is of.
    let irfs1 = store.join("views/ec/irfs-1/all/irfs.fits");
    let obs = store.join("views/ec/class-obs/all/dl2_classified.h5");
    write(&dir.path().join("dl3-2.cfg.json"), &base);
    write(
        &dir.path().join("dl3-2.json"),
        &format!(
            r#"{{"name": "dl3-2", "config": "dl3-2.cfg.json", "inputs": {{"obs": {{"paths": ["{}"], "kind": "dl2"}}, "irfs": {{"paths": ["{}"], "kind": "irf"}}}},
               "steps": [{{"name": "d", "stage": "dl2-dl3", "params": {{"event_class": 2}}, "inputs": {{"dl2": "obs", "irfs": "irfs"}}}}]}}"#,
            obs.display(),
            irfs1.display()
        ),
    );
    let (code, _, err) = run_json(&store, &dir.path().join("dl3-2.json"), &[]);
    assert_ne!(code, 0);
    assert!(
        err.contains("no IRF was made with this DL3's gammaness cut") && err.contains("and event class 2"),
        "{err}"
    );
    assert!(err.contains("irfs.fits") && err.contains("event class 1"), "{err}");

    // An event class of unclassified DL2; a class out of range (at planning).
    let (code, _, err) = second(
        "unclassified",
        r#"{"name": "i", "stage": "make-irfs", "params": {"event_class": 2}, "inputs": {"gamma": "dl2", "proton": "dl2p"}}"#,
        &base,
    );
    assert_ne!(code, 0);
    assert!(err.contains("has no event_type column"), "{err}");
    let (code, _, err) = second(
        "bad-class",
        r#"{"name": "i", "stage": "make-irfs", "params": {"event_class": 7}, "inputs": {"gamma": "dl2", "proton": "dl2p"}}"#,
        &base,
    );
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("event_class: expected an event class 0-4"), "{err}");
}
