//! Observation runs to DL3 under the engine: the DL3 file carries its IRF and provenance, the
//! IRF contract refuses IRFs of another cut or other models (and records an override), broken
//! inputs are named, and changing `event_selection` reruns IRFs and DL3 but no simulation or DL1.
mod common;
use common::*;
use std::path::{Path, PathBuf};

fn config_text(random_state: u64, cut: f64, min_intensity: f64) -> String {
    let base =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sst1mpipe_mc_config.json")).unwrap();
    let mut v: serde_json::Value = serde_json::from_str(&base).unwrap();
    for forest in ["random_forest_regressor_args", "random_forest_classifier_args"] {
        v[forest]["n_estimators"] = 15.into();
        v[forest]["random_state"] = random_state.into();
    }
    v["analysis"]["global_gammaness_cut"] = cut.into();
    // sst1mpipe's data config names the array centre; the DL3 headers take it from there.
    v["array_center_coords"] = serde_json::json!({"long_deg": 14.782501, "lat_deg": 49.912442, "height_m": 511.195});
    v["event_selection"]["camera_frame_hillas_intensity"] = serde_json::json!([min_intensity, 1_000_000]);
    serde_json::to_string_pretty(&v).unwrap()
}

const MODELS: &str =
    r#""energy": "train.energy", "disp_norm": "train.disp_norm", "disp_sign": "train.disp_sign", "gh": "train.gh""#;

/// Monte Carlo, models, IRFs, one short observation run, its DL3 and a data store.
fn night_recipe(dir: &Path, name: &str, config: &str) -> PathBuf {
    write(&dir.join(format!("{name}.cfg.json")), config);
    let recipe = dir.join(format!("{name}.json"));
    write(
        &recipe,
        &format!(
            r#"{{"name": "{name}", "config": "{name}.cfg.json", "steps": [
    {{"name": "sim-g", "stage": "simulate", "params": {{"particle": "gamma", "n_events": 1500, "seed": 11, "viewcone_deg": 2.5, "energy_min_tev": 1, "max_impact_m": 300, "pointing_alt_deg": 62}}}},
    {{"name": "sim-p", "stage": "simulate", "params": {{"particle": "proton", "n_events": 2400, "seed": 12, "viewcone_deg": 3.0, "energy_min_tev": 2, "max_impact_m": 300, "pointing_alt_deg": 62}}}},
    {{"name": "sim-obs", "stage": "simulate", "params": {{"mode": "observation", "obs_id": 7, "seed": 5, "start_unix_s": 1667267400, "duration_s": 4, "source_amplitude": 1e-8, "source_energy_min_tev": 1, "proton_energy_min_tev": 2, "proton_viewcone_deg": 1.5}}}},
    {{"name": "dl1-g", "stage": "r0-dl1", "inputs": {{"r1": "sim-g.r1"}}}},
    {{"name": "dl1-p", "stage": "r0-dl1", "inputs": {{"r1": "sim-p.r1"}}}},
    {{"name": "dl1-obs", "stage": "r0-dl1", "inputs": {{"r1": "sim-obs.r1"}}}},
    {{"name": "train", "stage": "train-rfs", "inputs": {{"gamma": "dl1-g.dl1", "proton": "dl1-p.dl1"}}}},
    {{"name": "dl2-g", "stage": "dl1-dl2", "inputs": {{"dl1": "dl1-g.dl1", {MODELS}}}}},
    {{"name": "dl2-p", "stage": "dl1-dl2", "inputs": {{"dl1": "dl1-p.dl1", {MODELS}}}}},
    {{"name": "dl2-obs", "stage": "dl1-dl2", "inputs": {{"dl1": "dl1-obs.dl1", {MODELS}}}}},
    {{"name": "irfs", "stage": "make-irfs", "inputs": {{"gamma": "dl2-g.dl2", "proton": "dl2-p.dl2"}}}},
    {{"name": "sim-g20", "stage": "simulate", "params": {{"particle": "gamma", "n_events": 1500, "seed": 21, "viewcone_deg": 2.5, "energy_min_tev": 1, "max_impact_m": 300, "pointing_alt_deg": 70}}}},
    {{"name": "sim-p20", "stage": "simulate", "params": {{"particle": "proton", "n_events": 2400, "seed": 22, "viewcone_deg": 3.0, "energy_min_tev": 2, "max_impact_m": 300, "pointing_alt_deg": 70}}}},
    {{"name": "dl1-g20", "stage": "r0-dl1", "inputs": {{"r1": "sim-g20.r1"}}}},
    {{"name": "dl1-p20", "stage": "r0-dl1", "inputs": {{"r1": "sim-p20.r1"}}}},
    {{"name": "dl2-g20", "stage": "dl1-dl2", "inputs": {{"dl1": "dl1-g20.dl1", {MODELS}}}}},
    {{"name": "dl2-p20", "stage": "dl1-dl2", "inputs": {{"dl1": "dl1-p20.dl1", {MODELS}}}}},
    {{"name": "irfs-ze20", "stage": "make-irfs", "inputs": {{"gamma": "dl2-g20.dl2", "proton": "dl2-p20.dl2"}}}},
    {{"name": "dl3", "stage": "dl2-dl3", "inputs": {{"dl2": "dl2-obs.dl2", "irfs": ["irfs-ze20.irfs", "irfs.irfs"]}}, "params": {{"target_name": "test source"}}}},
    {{"name": "index", "stage": "dl3-index", "inputs": {{"dl3": "dl3.dl3"}}}}]}}"#
        ),
    );
    recipe
}

/// dl2-dl3 on given files (raw inputs): a DL2 and IRFs made elsewhere.
fn mix_recipe(dir: &Path, name: &str, config: &str, dl2: &Path, irfs: &[PathBuf], params: &str) -> PathBuf {
    write(&dir.join(format!("{name}.cfg.json")), config);
    let irf_paths: Vec<String> = irfs.iter().map(|p| format!("\"{}\"", p.display())).collect();
    let recipe = dir.join(format!("{name}.json"));
    write(
        &recipe,
        &format!(
            r#"{{"name": "{name}", "config": "{name}.cfg.json",
    "inputs": {{"dl2": {{"paths": ["{}"], "kind": "dl2"}}, "irfs": {{"paths": [{}], "kind": "irf"}}}},
    "steps": [{{"name": "dl3", "stage": "dl2-dl3", "inputs": {{"dl2": "dl2", "irfs": "irfs"}}, "params": {params}}}]}}"#,
            dl2.display(),
            irf_paths.join(", ")
        ),
    );
    recipe
}

fn ran_steps(report: &serde_json::Value) -> Vec<String> {
    let mut steps: Vec<String> = report["activities"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["outcome"] == "ran")
        .map(|a| a["step"].as_str().unwrap().to_string())
        .collect();
    steps.dedup();
    steps
}

#[test]
fn dl3_carries_its_irf_and_refuses_irfs_that_do_not_belong() {
    let dir = TempDir::new("dl3");
    let store = dir.path().join("store");
    let base = config_text(42, 0.6, 0.0);
    let night = night_recipe(dir.path(), "night", &base);
    let (code, report, err) = run_json(&store, &night, &[]);
    assert_eq!(code, 0, "{err}\n{report}");

    // The DL3 file: events, GTI, the IRF's four HDUs, and provenance a copy keeps.
    let dl3 = view_target(&store, "night/dl3/all/dl3.fits");
    let text = String::from_utf8_lossy(&std::fs::read(&dl3).unwrap()).to_string();
    for needle in [
        "EXTNAME = 'EVENTS  '",
        "EXTNAME = 'GTI     '",
        "EXTNAME = 'EFFECTIVE AREA'",
        "EXTNAME = 'BACKGROUND'",
        "OBS_ID  =                    7",
        "TIMESYS = 'TT      '",
        "OBJECT  = 'test source'",
        "IRFKEY  = ",
        "IRF     = 'ze28_az180_nsb50'",
    ] {
        assert!(text.contains(needle), "{needle} missing from the DL3 header");
    }
    // The site is the config's array centre (sst1mpipe's GEOLON/GEOLAT/ALTITUDE).
    let hdus = sst1mflow::io::fits::read_file(&dl3, "dl3").unwrap();
    let events = hdus.iter().find(|h| h.extname() == "EVENTS").unwrap();
    assert_eq!(
        (events.number("GEOLON"), events.number("GEOLAT"), events.number("ALTITUDE")),
        (Some(14.782501), Some(49.912442), Some(511.195))
    );
    let irf_maker = json_ok(&store, &["show", view_target(&store, "night/irfs/all/irfs.fits").to_str().unwrap()]);
    assert!(text.contains(irf_maker["made_by"]["key"].as_str().unwrap()), "the IRF's activity key is recorded");
    // Of the two nodes (zenith 20 and 28), the observation's (zenith ~28) is chosen, and said.
    let ze20 = String::from_utf8_lossy(&std::fs::read(view_target(&store, "night/irfs-ze20/all/irfs.fits")).unwrap())
        .to_string();
    assert!(ze20.contains("IRFNODE = 'ze20_az180_nsb50'"));
    let dl3_key = json_ok(&store, &["show", dl3.to_str().unwrap()])["made_by"]["key"].as_str().unwrap().to_string();
    let log = stdout(&sst1mflow(&store, &["log", &dl3_key]));
    assert!(log.contains("node ze28_az180_nsb50") && log.contains("of 2 with this cut"), "{log}");
    let copy = dir.path().join("copy.fits");
    std::fs::copy(&dl3, &copy).unwrap();
    let lineage = json_ok(&store, &["lineage", copy.to_str().unwrap()]).to_string();
    for stage in ["dl2-dl3", "make-irfs", "train-rfs", "simulate"] {
        assert!(lineage.contains(stage), "lineage of a DL3 copy reaches {stage}");
    }
    for file in ["observations.fits", "hdu-index.fits.gz", "obs-index.fits.gz"] {
        let bytes = std::fs::read(view_target(&store, &format!("night/index/all/{file}"))).unwrap();
        assert!(!bytes.is_empty());
        if file.ends_with(".gz") {
            assert_eq!(&bytes[..2], &[0x1f, 0x8b], "{file} is gzip");
        }
    }
    let obs_dl2 = view_target(&store, "night/dl2-obs/all/dl2.h5");
    let irfs_06 = view_target(&store, "night/irfs/all/irfs.fits");

    // The site enters a key only where it is applied: with an array centre, the telescope's own
    // height changes no DL3 (and DL2 needs no height); without one, only the DL3 reruns; the
    // other telescope's site (these files are all of telescope 1) reruns nothing.
    let would_run = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut v: serde_json::Value = serde_json::from_str(&base).unwrap();
        edit(&mut v);
        let edited = night_recipe(dir.path(), "night-edit", &serde_json::to_string_pretty(&v).unwrap());
        let (code, report, err) = run_json(&store, &edited, &["--dry-run"]);
        assert_eq!(code, 0, "{err}");
        let mut steps: Vec<String> = report["activities"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|a| a["outcome"] != "reused")
            .map(|a| a["step"].as_str().unwrap().to_string())
            .collect();
        steps.dedup();
        steps
    };
    let nothing: Vec<String> = Vec::new();
    assert_eq!(would_run(&|v| v["telescope_coords"]["tel_001"]["height_m"] = 600.0.into()), nothing);
    assert_eq!(
        would_run(&|v| {
            v.as_object_mut().unwrap().remove("array_center_coords");
        }),
        ["dl3", "index"]
    );
    assert_eq!(
        would_run(&|v| {
            v.as_object_mut().unwrap().remove("array_center_coords");
            v["telescope_coords"]["tel_002"]["long_deg"] = 15.0.into();
            v["telescope_coords"]["tel_002"]["height_m"] = 600.0.into();
        }),
        ["dl3", "index"],
        "as without the array centre alone"
    );
    let moved = would_run(&|v| v["telescope_coords"]["tel_001"]["long_deg"] = 15.0.into());
    // The telescope's own site: the observation run (simulated at the site) and every DL2
    // (RA/Dec) are redone, the simulations' DL1 are not.
    assert!(moved.contains(&"dl2-g".to_string()) && moved.contains(&"sim-obs".to_string()), "{moved:?}");
    assert!(!moved.iter().any(|s| ["sim-g", "dl1-g", "dl1-p", "train"].contains(&s.as_str())), "{moved:?}");

    // IRFs of another cut: the same analysis with cut 0.7 reruns only IRFs and DL3.
    let cut07 = night_recipe(dir.path(), "cut07", &config_text(42, 0.7, 0.0));
    let (code, report, err) = run_json(&store, &cut07, &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(ran_steps(&report), ["irfs", "irfs-ze20", "dl3", "index"], "{report}");
    let irfs_07 = view_target(&store, "cut07/irfs/all/irfs.fits");
    let (code, report, err) = run_json(
        &store,
        &mix_recipe(dir.path(), "wrong-cut", &base, &obs_dl2, std::slice::from_ref(&irfs_07), "{}"),
        &[],
    );
    assert_ne!(code, 0);
    let why = report.to_string() + &err;
    assert!(why.contains("no IRF was made with this DL3's gammaness cut (global gammaness > 0.6)"), "{why}");
    assert!(why.contains("global gammaness > 0.7"), "{why}");
    assert!(!store.join("views/wrong-cut/dl3/all/dl3.fits").exists(), "nothing published");
    // Given both, the one with the right cut is chosen.
    let (code, _, err) = run_json(
        &store,
        &mix_recipe(dir.path(), "both-cuts", &base, &obs_dl2, &[irfs_07.clone(), irfs_06.clone()], "{}"),
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let chosen =
        String::from_utf8_lossy(&std::fs::read(view_target(&store, "both-cuts/dl3/all/dl3.fits")).unwrap()).to_string();
    let irf_06_key = irf_maker["made_by"]["key"].as_str().unwrap();
    assert!(chosen.contains(&format!("IRFKEY  = '{irf_06_key}'")), "the IRF of cut 0.6 is chosen");

    // IRFs from other models: refused side by side; an override is recorded.
    let other = night_recipe(dir.path(), "other-models", &config_text(7, 0.6, 0.0));
    let (code, _, err) = run_json(&store, &other, &[]);
    assert_eq!(code, 0, "{err}");
    let irfs_other = view_target(&store, "other-models/irfs/all/irfs.fits");
    let (code, report, err) = run_json(
        &store,
        &mix_recipe(dir.path(), "wrong-models", &base, &obs_dl2, std::slice::from_ref(&irfs_other), "{}"),
        &[],
    );
    assert_ne!(code, 0);
    let why = report.to_string() + &err;
    assert!(why.contains("the IRF does not belong to these events"), "{why}");
    assert!(why.contains("RF model energy (sha256)") && why.contains("RF model gh (sha256)"), "{why}");
    assert!(why.contains(&hash_of(&irfs_other)) && why.contains(&hash_of(&obs_dl2)), "both products are named: {why}");
    let (code, _, err) = run_json(
        &store,
        &mix_recipe(dir.path(), "override", &base, &obs_dl2, &[irfs_other], r#"{"override_contract": true}"#),
        &[],
    );
    assert_eq!(code, 0, "{err}");
    let text =
        String::from_utf8_lossy(&std::fs::read(view_target(&store, "override/dl3/all/dl3.fits")).unwrap()).to_string();
    assert!(text.contains("S1MOVR1 = 'RF model"), "the override is in the header");

    // Broken inputs are named; nothing is published.
    let truncated = dir.path().join("truncated.fits");
    let bytes = std::fs::read(&irfs_06).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() - 2880]).unwrap();
    let (code, report, err) =
        run_json(&store, &mix_recipe(dir.path(), "truncated", &base, &obs_dl2, &[truncated], "{}"), &[]);
    assert_ne!(code, 0);
    let why = report.to_string() + &err;
    assert!(why.contains("truncated.fits") && why.contains("truncated?"), "{why}");
    let mc_dl2 = view_target(&store, "night/dl2-g/all/dl2.h5");
    let (code, report, err) =
        run_json(&store, &mix_recipe(dir.path(), "mc-dl2", &base, &mc_dl2, &[irfs_06], "{}"), &[]);
    assert_ne!(code, 0);
    let why = report.to_string() + &err;
    assert!(why.contains("is not an observation run") && why.contains("Monte Carlo"), "{why}");
    // A DL3 (which carries its IRF's HDUs) given as an IRF is refused as what it is.
    let dl3_as_irf = dir.path().join("run7_dl3.fits");
    std::fs::copy(view_target(&store, "night/dl3/all/dl3.fits"), &dl3_as_irf).unwrap();
    let (code, report, err) =
        run_json(&store, &mix_recipe(dir.path(), "dl3-as-irf", &base, &obs_dl2, &[dl3_as_irf], "{}"), &[]);
    assert_ne!(code, 0);
    let why = report.to_string() + &err;
    assert!(why.contains("run7_dl3.fits is a DL3 file (it has an EVENTS HDU), not an IRF"), "{why}");

    // A changed event_selection bound: status says why, and the run redoes what reads it
    // (training, DL2, IRFs, DL3) but no simulation and no DL1.
    write(&dir.path().join("night.cfg.json"), &config_text(42, 0.6, 50.0));
    let status = sst1mflow(&store, &["status", night.to_str().unwrap()]);
    let said = stdout(&status) + &stderr(&status);
    assert!(said.contains("event_selection"), "{said}");
    let (code, report, err) = run_json(&store, &night, &[]);
    assert_eq!(code, 0, "{err}");
    let ran = ran_steps(&report);
    for step in ["irfs", "dl3", "index"] {
        assert!(ran.contains(&step.to_string()), "{step} reran: {ran:?}");
    }
    assert!(ran.iter().all(|s| !s.starts_with("sim") && !s.starts_with("dl1")), "nothing upstream of DL2: {ran:?}");
}

/// The performance stage on a small Monte Carlo: every table and figure is written; diffuse
/// gammas, a missing proton input and a global method with a misspelt name are refused with the
/// reason, and nothing is published for them.
#[test]
fn performance_needs_point_gammas_and_protons() {
    let dir = TempDir::new("perf");
    let store = dir.path().join("store");
    write(&dir.path().join("c.json"), &config_text(42, 0.6, 0.0));
    let recipe = |name: &str, gamma: &str, extra_inputs: &str, params: &str| -> PathBuf {
        let path = dir.path().join(format!("{name}.json"));
        write(
            &path,
            &format!(
                r#"{{"name": "{name}", "config": "c.json", "steps": [
    {{"name": "sim-g", "stage": "simulate", "params": {{"particle": "gamma", "n_events": 1500, "seed": 11, "viewcone_deg": 2.5, "energy_min_tev": 1, "max_impact_m": 300}}}},
    {{"name": "sim-p", "stage": "simulate", "params": {{"particle": "proton", "n_events": 2400, "seed": 12, "viewcone_deg": 3.0, "energy_min_tev": 2, "max_impact_m": 300}}}},
    {{"name": "sim-pt", "stage": "simulate", "params": {{"particle": "gamma", "n_events": 1500, "seed": 13, "source_offset_deg": 0.4, "energy_min_tev": 1, "max_impact_m": 300}}}},
    {{"name": "dl1-g", "stage": "r0-dl1", "inputs": {{"r1": "sim-g.r1"}}}},
    {{"name": "dl1-p", "stage": "r0-dl1", "inputs": {{"r1": "sim-p.r1"}}}},
    {{"name": "dl1-pt", "stage": "r0-dl1", "inputs": {{"r1": "sim-pt.r1"}}}},
    {{"name": "train", "stage": "train-rfs", "inputs": {{"gamma": "dl1-g.dl1", "proton": "dl1-p.dl1"}}}},
    {{"name": "dl2-g", "stage": "dl1-dl2", "inputs": {{"dl1": "dl1-g.dl1", {MODELS}}}}},
    {{"name": "dl2-p", "stage": "dl1-dl2", "inputs": {{"dl1": "dl1-p.dl1", {MODELS}}}}},
    {{"name": "dl2-pt", "stage": "dl1-dl2", "inputs": {{"dl1": "dl1-pt.dl1", {MODELS}}}}},
    {{"name": "perf", "stage": "performance", "inputs": {{"gamma": "{gamma}"{extra_inputs}}}, "params": {params}}}]}}"#
            ),
        );
        path
    };
    let (code, report, err) = run_json(&store, &recipe("ok", "dl2-pt.dl2", r#", "proton": "dl2-p.dl2""#, "{}"), &[]);
    assert_eq!(code, 0, "{err}\n{report}");
    for file in ["performance.h5", "energy_resolution.png", "angular_resolution.svg", "roc.png", "sensitivity.svg"] {
        let bytes = std::fs::read(view_target(&store, &format!("ok/perf/all/{file}"))).unwrap();
        if file.ends_with(".png") {
            assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{file}");
        } else if file.ends_with(".svg") {
            assert!(bytes.starts_with(b"<svg"), "{file}");
        }
    }
    let (code, report, err) = run_json(
        &store,
        &recipe(
            "sig",
            "dl2-pt.dl2",
            r#", "proton": "dl2-p.dl2""#,
            r#"{"gh_cut": "significance", "theta_cut": "global"}"#,
        ),
        &[],
    );
    assert_eq!(code, 0, "{err}\n{report}");
    assert_eq!(ran_steps(&report), ["perf"], "only the performance step reruns for another method");
    // analysis.significance_fit is applied by the significance method only: toggling it reruns
    // that step and nothing with the efficiency method.
    let mut no_fit: serde_json::Value = serde_json::from_str(&config_text(42, 0.6, 0.0)).unwrap();
    no_fit["analysis"]["significance_fit"] = false.into();
    write(&dir.path().join("c.json"), &no_fit.to_string());
    let sig = recipe(
        "sig",
        "dl2-pt.dl2",
        r#", "proton": "dl2-p.dl2""#,
        r#"{"gh_cut": "significance", "theta_cut": "global"}"#,
    );
    let (code, report, err) = run_json(&store, &sig, &[]);
    assert_eq!((code, ran_steps(&report)), (0, vec!["perf".to_string()]), "{err}");
    let (code, report, err) = run_json(&store, &recipe("ok", "dl2-pt.dl2", r#", "proton": "dl2-p.dl2""#, "{}"), &[]);
    assert_eq!((code, ran_steps(&report)), (0, Vec::<String>::new()), "{err}");
    write(&dir.path().join("c.json"), &config_text(42, 0.6, 0.0));

    let (code, report, err) =
        run_json(&store, &recipe("diffuse", "dl2-g.dl2", r#", "proton": "dl2-p.dl2""#, "{}"), &[]);
    assert_ne!(code, 0);
    let why = report.to_string() + &err;
    assert!(why.contains("is a diffuse simulation") && why.contains("point source"), "{why}");
    assert!(!store.join("views/diffuse/perf/all/performance.h5").exists());

    let (code, report, err) = run_json(&store, &recipe("no-protons", "dl2-pt.dl2", "", "{}"), &[]);
    assert_ne!(code, 0);
    let why = report.to_string() + &err;
    assert!(why.contains("without them there is no background, ROC or sensitivity"), "{why}");
    let (code, report, err) = run_json(
        &store,
        &recipe("typo", "dl2-pt.dl2", r#", "proton": "dl2-p.dl2""#, r#"{"gh_cut": "signficance"}"#),
        &[],
    );
    assert_ne!(code, 0);
    let why = report.to_string() + &err;
    assert!(
        why.contains("gh_cut") && why.contains("\\\"significance\\\"") || why.contains("\"significance\""),
        "{why}"
    );
}
