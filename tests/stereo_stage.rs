//! Stereo under the engine: a stereo simulation (one R1 per telescope), DL1 of each telescope,
//! `dl1-stereo` (matching, HillasReconstructor, the stereo columns and ctapipe's tables) and
//! random forests trained with sst1mpipe's stereo feature lists; refusals for the same telescope
//! twice and for a quality criterion we cannot evaluate; stereo DL2 through gammaness cuts and
//! IRFs with sst1mpipe's stereo quality cuts applied where stereo DL2 is loaded.
mod common;
use common::*;
use sst1mflow::io::dl1::Dl1Reader;
use std::path::{Path, PathBuf};

/// Protons through the same stereo chain, forests for both telescopes, each telescope's DL2
/// with its stereo models, and their combination.
const STEREO_DL2_STEPS: &str = r#",
  {"name": "sim-p", "stage": "simulate", "params": {"particle": "proton", "n_events": 900, "seed": 10,
     "stereo": true, "viewcone_deg": 3.0, "energy_min_tev": 1.0, "energy_max_tev": 100, "max_impact_m": 250}},
  {"name": "dl1-1p", "stage": "r0-dl1", "inputs": {"r1": "sim-p.r1_tel_001"}},
  {"name": "dl1-2p", "stage": "r0-dl1", "params": {"tel_id": 2}, "inputs": {"r1": "sim-p.r1_tel_002"}},
  {"name": "stereo-p", "stage": "dl1-stereo", "inputs": {"tel1": "dl1-1p.dl1", "tel2": "dl1-2p.dl1"}},
  {"name": "train-1", "stage": "train-rfs", "inputs": {"gamma": "stereo.dl1_tel1", "proton": "stereo-p.dl1_tel1"}},
  {"name": "train-2", "stage": "train-rfs", "params": {"tel_id": 2},
     "inputs": {"gamma": "stereo.dl1_tel2", "proton": "stereo-p.dl1_tel2"}},
  {"name": "dl2-1", "stage": "dl1-dl2", "inputs": {"dl1": "stereo.dl1_tel1", "energy": "train-1.energy",
     "disp_norm": "train-1.disp_norm", "disp_sign": "train-1.disp_sign", "gh": "train-1.gh"}},
  {"name": "dl2-2", "stage": "dl1-dl2", "inputs": {"dl1": "stereo.dl1_tel2", "energy": "train-2.energy",
     "disp_norm": "train-2.disp_norm", "disp_sign": "train-2.disp_sign", "gh": "train-2.gh"}},
  {"name": "dl2-stereo", "stage": "dl2-stereo", "inputs": {"tel1": "dl2-1.dl2", "tel2": "dl2-2.dl2"}},
  {"name": "dl2-1p", "stage": "dl1-dl2", "inputs": {"dl1": "stereo-p.dl1_tel1", "energy": "train-1.energy",
     "disp_norm": "train-1.disp_norm", "disp_sign": "train-1.disp_sign", "gh": "train-1.gh"}},
  {"name": "dl2-2p", "stage": "dl1-dl2", "inputs": {"dl1": "stereo-p.dl1_tel2", "energy": "train-2.energy",
     "disp_norm": "train-2.disp_norm", "disp_sign": "train-2.disp_sign", "gh": "train-2.gh"}},
  {"name": "dl2-stereo-p", "stage": "dl2-stereo", "inputs": {"tel1": "dl2-1p.dl2", "tel2": "dl2-2p.dl2"}},
  {"name": "cuts-stereo", "stage": "gh-cuts", "inputs": {"gamma": "dl2-stereo.dl2"}},
  {"name": "irfs-stereo", "stage": "make-irfs", "inputs": {"gamma": "dl2-stereo.dl2", "proton": "dl2-stereo-p.dl2",
     "cuts": "cuts-stereo.cuts"}},
  {"name": "cuts-mono", "stage": "gh-cuts", "inputs": {"gamma": "dl2-1.dl2"}}"#;

fn stereo_recipe(dir: &Path, config: &str) -> PathBuf {
    stereo_recipe_with(dir, config, "")
}

fn stereo_recipe_with(dir: &Path, config: &str, extra: &str) -> PathBuf {
    let recipe = dir.join("stereo.json");
    write(
        &recipe,
        &format!(
            r#"{{"name": "stereo", "config": "{config}",
                "steps": [
                  {{"name": "sim", "stage": "simulate", "params": {{"particle": "gamma", "n_events": 700, "seed": 9,
                     "stereo": true, "viewcone_deg": 2.0, "energy_min_tev": 1.0, "energy_max_tev": 60, "max_impact_m": 250}}}},
                  {{"name": "dl1-1", "stage": "r0-dl1", "inputs": {{"r1": "sim.r1_tel_001"}}}},
                  {{"name": "dl1-2", "stage": "r0-dl1", "params": {{"tel_id": 2}}, "inputs": {{"r1": "sim.r1_tel_002"}}}},
                  {{"name": "stereo", "stage": "dl1-stereo", "inputs": {{"tel1": "dl1-1.dl1", "tel2": "dl1-2.dl1"}}}},
                  {{"name": "train", "stage": "train-rfs", "inputs": {{"gamma": "stereo.dl1_tel1"}}}}{extra}
                ]}}"#
        ),
    );
    recipe
}

fn mc_config() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sst1mpipe_mc_config.json")).unwrap()
}

#[test]
fn stereo_simulation_dl1_reconstruction_and_training_with_stereo_features() {
    let dir = TempDir::new("stereo");
    // Few events: small forests and no minimum event count.
    let config = mc_config()
        .replace("\"n_estimators\": 150", "\"n_estimators\": 10")
        .replace("\"n_estimators\": 100", "\"n_estimators\": 10");
    write(&dir.path().join("mc.json"), &config);
    let recipe = stereo_recipe(dir.path(), "mc.json");
    let store = dir.path().join("store");
    let (code, report, err) = run_json(&store, &recipe, &[]);
    assert_eq!(code, 0, "{err}\n{report}");
    assert_eq!(report["ran"], 5, "{report}");

    let tel1 = Dl1Reader::open(&view_target(&store, "stereo/stereo/all/dl1_tel1.h5")).unwrap();
    let tel2 = Dl1Reader::open(&view_target(&store, "stereo/stereo/all/dl1_tel2.h5")).unwrap();
    assert_eq!((tel1.tel_id, tel2.tel_id), (1, 2));
    assert!(tel1.settings.contains_key("stereo.reconstructor") && tel1.settings["stereo.matching"] == "event_id");
    let (a, b) = (tel1.read(0, tel1.n_events).unwrap(), tel2.read(0, tel2.n_events).unwrap());
    assert_eq!(a.len(), b.len());
    assert!(a.len() >= 60, "{} matched events", a.len());
    let mut errors = Vec::new();
    for (r1, r2) in a.iter().zip(&b) {
        assert_eq!((r1.obs_id, r1.event_id), (r2.obs_id, r2.event_id));
        if !r1.HillasReconstructor_h_max.is_finite() {
            continue;
        }
        // One geometry per event, one impact per telescope; the truth is the shower's.
        assert_eq!(r1.HillasReconstructor_h_max, r2.HillasReconstructor_h_max);
        assert_ne!(r1.HillasReconstructor_tel_impact_distance, r2.HillasReconstructor_tel_impact_distance);
        let error = sst1mflow::astro::angular_separation_deg(
            r1.HillasReconstructor_az,
            r1.HillasReconstructor_alt,
            r1.true_az,
            r1.true_alt,
        );
        errors.push(error);
    }
    errors.sort_by(f64::total_cmp);
    assert!(errors.len() * 10 >= a.len() * 6, "{} of {} reconstructed", errors.len(), a.len());
    let median = errors[errors.len() / 2];
    println!("{} stereo events, median direction error {median:.3} deg", errors.len());
    assert!(median < 0.3, "median direction error {median} deg");

    // The training used the stereo features (the config lists HillasReconstructor_*).
    let train_key = report["activities"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["step"] == "train")
        .and_then(|a| a["key"].as_str())
        .unwrap()
        .to_string();
    let log = stdout(&sst1mflow(&store, &["log", &train_key[..12]]));
    assert!(log.contains("stereo DL1: with the HillasReconstructor_* features"), "{log}");
    let model = std::fs::read(view_target(&store, "stereo/train/all/reg_energy_tel_001.rf")).unwrap();
    assert!(model.windows(25).any(|w| w == b"HillasReconstructor_h_max"), "energy model lacks the stereo features");

    // ctapipe's stereo tables are there.
    let file = hdf5::File::open(view_target(&store, "stereo/stereo/all/dl1_tel2.h5")).unwrap();
    assert_eq!(file.dataset("/dl2/event/subarray/geometry/HillasReconstructor").unwrap().size(), a.len());
    assert_eq!(file.dataset("/dl2/event/telescope/impact/HillasReconstructor/tel_002").unwrap().size(), a.len());
    assert!(file.dataset("/dl1/event/telescope/images/tel_002").is_err(), "stereo DL1 has no images");
    drop(file);

    // Only what the matching and the reconstruction apply enters the key: the White Rabbit
    // window under event-id matching, and the site of a telescope the files are not of, rerun
    // nothing; the height of one of the two telescopes reruns the stereo step (and training).
    let base: serde_json::Value = serde_json::from_str(&config).unwrap();
    let steps_to_run = |edit: &dyn Fn(&mut serde_json::Value), dry: bool| {
        let mut edited = base.clone();
        edited["stereo"] = serde_json::json!({"event_matching_method": "SWATEventIDs",
            "WhiteRabbitClosest": {"max_time_diff_ns": 5000}});
        edit(&mut edited);
        write(&dir.path().join("mc.json"), &serde_json::to_string_pretty(&edited).unwrap());
        let (code, report, err) = run_json(&store, &recipe, if dry { &["--dry-run"] } else { &[] });
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
    // Monte Carlo is matched by event id whatever the config's method (sst1mpipe's is for
    // camera data): naming one, its window, or the sliding window's settings rerun nothing.
    let nothing: Vec<String> = Vec::new();
    assert_eq!(steps_to_run(&|_| {}, false), nothing, "the method named explicitly");
    assert_eq!(
        steps_to_run(&|c| c["stereo"]["WhiteRabbitClosest"]["max_time_diff_ns"] = 9000.into(), true),
        nothing,
        "the White Rabbit window"
    );
    let sliding = |c: &mut serde_json::Value| {
        c["stereo"]["event_matching_method"] = "SlidingWindow".into();
        c["stereo"]["SlidingWindow"] = serde_json::json!({"window_half_width": 0.001,
            "offset_search": {"time_start": -0.01, "time_stop": 0.01, "time_step": 2e-5}});
    };
    assert_eq!(steps_to_run(&sliding, true), nothing, "SlidingWindow on Monte Carlo");
    // A sliding window that cannot be searched is refused while planning, naming the key.
    let mut bad = base.clone();
    sliding(&mut bad);
    bad["stereo"]["SlidingWindow"]["offset_search"]["time_step"] = (-1.0).into();
    write(&dir.path().join("mc.json"), &serde_json::to_string_pretty(&bad).unwrap());
    let (code, _, err) = run_json(&store, &recipe, &["--dry-run"]);
    assert_ne!(code, 0);
    assert!(err.contains("mc.json") && err.contains("stereo.SlidingWindow") && err.contains("positive step"), "{err}");
    bad["stereo"]["SlidingWindow"].as_object_mut().unwrap().remove("window_half_width");
    write(&dir.path().join("mc.json"), &serde_json::to_string_pretty(&bad).unwrap());
    let (code, _, err) = run_json(&store, &recipe, &["--dry-run"]);
    assert_ne!(code, 0);
    assert!(err.contains("mc.json") && err.contains("\"stereo.SlidingWindow.window_half_width\" (read by"), "{err}");
    assert!(err.contains("is not in the config"), "{err}");
    assert_eq!(
        steps_to_run(
            &|c| c["telescope_coords"]["tel_021"] =
                serde_json::json!({"long_deg": 14.0, "lat_deg": 49.0, "height_m": 600.0}),
            true
        ),
        nothing,
        "a telescope the files are not of"
    );
    assert_eq!(
        steps_to_run(&|c| c["telescope_coords"]["tel_002"]["height_m"] = 530.0.into(), true),
        ["stereo", "train"]
    );
}

#[test]
fn the_same_telescope_twice_and_unknown_quality_criteria_are_refused() {
    let dir = TempDir::new("stereo-bad");
    write(&dir.path().join("mc.json"), &mc_config());
    let recipe = dir.path().join("same.json");
    write(
        &recipe,
        r#"{"name": "same", "config": "mc.json", "steps": [
             {"name": "sim", "stage": "simulate", "params": {"particle": "gamma", "n_events": 60, "seed": 3, "stereo": true, "energy_min_tev": 3.0}},
             {"name": "dl1", "stage": "r0-dl1", "inputs": {"r1": "sim.r1_tel_001"}},
             {"name": "stereo", "stage": "dl1-stereo", "inputs": {"tel1": "dl1.dl1", "tel2": "dl1.dl1"}}]}"#,
    );
    let store = dir.path().join("store");
    let out = sst1mflow(&store, &["run", recipe.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("are both telescope 1; stereo needs two telescopes"), "{}", stderr(&out));
    assert!(!store.join("views/same/stereo").exists(), "nothing published for the refused step");

    // Stereo DL1 where each telescope's mono DL1 is needed; no coincidences at all (telescope 2
    // of another production, matched by White Rabbit times it does not have).
    let recipe = dir.path().join("again.json");
    write(
        &recipe,
        r#"{"name": "again", "config": "mc.json", "steps": [
             {"name": "sim", "stage": "simulate", "params": {"particle": "gamma", "n_events": 60, "seed": 3, "stereo": true, "energy_min_tev": 3.0}},
             {"name": "dl1-1", "stage": "r0-dl1", "inputs": {"r1": "sim.r1_tel_001"}},
             {"name": "dl1-2", "stage": "r0-dl1", "params": {"tel_id": 2}, "inputs": {"r1": "sim.r1_tel_002"}},
             {"name": "stereo", "stage": "dl1-stereo", "inputs": {"tel1": "dl1-1.dl1", "tel2": "dl1-2.dl1"}},
             {"name": "again", "stage": "dl1-stereo", "inputs": {"tel1": "stereo.dl1_tel1", "tel2": "dl1-2.dl1"}}]}"#,
    );
    let out = sst1mflow(&store, &["run", recipe.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("is already stereo DL1 (an output of dl1-stereo)") && err.contains("dl1_tel1.h5"), "{err}");
    assert!(!store.join("views/again/again").exists());
    let night = |name: &str, tel: u16, seed: u64| {
        format!(
            r#"{{"name": "{name}", "stage": "simulate", "params": {{"mode": "observation", "tel_id": {tel}, "obs_id": {seed},
                "seed": {seed}, "start_unix_s": 1667267400, "duration_s": 2, "source_amplitude": 1e-8,
                "source_energy_min_tev": 1, "proton_energy_min_tev": 2, "proton_viewcone_deg": 1.5}}}},
              {{"name": "dl1-{name}", "stage": "r0-dl1", "params": {{"tel_id": {tel}}}, "inputs": {{"r1": "{name}.r1"}}}}"#
        )
    };
    let recipe = dir.path().join("none.json");
    write(
        &recipe,
        &format!(
            r#"{{"name": "none", "config": "mc.json", "steps": [{}, {},
                {{"name": "stereo", "stage": "dl1-stereo", "params": {{"matching": "white_rabbit"}},
                  "inputs": {{"tel1": "dl1-a.dl1", "tel2": "dl1-b.dl1"}}}}]}}"#,
            night("a", 1, 11),
            night("b", 2, 12)
        ),
    );
    let out = sst1mflow(&store, &["run", recipe.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("no coincidences between tel1 input") && err.contains("nothing to reconstruct"), "{err}");
    assert!(!store.join("views/none/stereo").exists());

    let config = mc_config().replace("parameters.hillas.intensity > 0", "parameters.hillas.colour > 0");
    write(&dir.path().join("bad.json"), &config);
    let recipe = stereo_recipe(dir.path(), "bad.json");
    let out = sst1mflow(&dir.path().join("store-2"), &["run", recipe.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("bad.json") && err.contains("no DL1 column camera_frame_hillas_colour"), "{err}");

    // An unknown matching method: refused at planning, naming the config and the closest method.
    let mut typo: serde_json::Value = serde_json::from_str(&mc_config()).unwrap();
    typo["stereo"] = serde_json::json!({"event_matching_method": "SlidingWindows"});
    write(&dir.path().join("typo.json"), &typo.to_string());
    let recipe = stereo_recipe(dir.path(), "typo.json");
    let out = sst1mflow(&dir.path().join("store-typo"), &["run", recipe.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("typo.json") && err.contains("stereo.event_matching_method = \"SlidingWindows\""), "{err}");
    assert!(
        err.contains("did you mean \"SlidingWindow\"") && !dir.path().join("store-typo/views/stereo").exists(),
        "{err}"
    );

    // stereo and tel_id exclude each other.
    let recipe = dir.path().join("both.json");
    write(
        &recipe,
        r#"{"name": "both", "config": "mc.json", "steps": [
             {"name": "sim", "stage": "simulate", "params": {"particle": "gamma", "n_events": 5, "seed": 3, "stereo": true, "tel_id": 2}}]}"#,
    );
    let out = sst1mflow(&dir.path().join("store-3"), &["run", recipe.to_str().unwrap()]);
    assert!(!out.status.success() && stderr(&out).contains("tel_id and stereo exclude each other"), "{}", stderr(&out));
}

#[test]
fn stereo_dl2_combines_both_telescopes_reconstructions_as_sst1mpipe() {
    let dir = TempDir::new("stereo-dl2");
    let config = mc_config()
        .replace("\"n_estimators\": 150", "\"n_estimators\": 10")
        .replace("\"n_estimators\": 100", "\"n_estimators\": 10");
    let mut cfg: serde_json::Value = serde_json::from_str(&config).unwrap();
    cfg["analysis"]["stereo_std_gammaness_cut"] = 0.2.into();
    write(&dir.path().join("mc.json"), &serde_json::to_string_pretty(&cfg).unwrap());
    let recipe = stereo_recipe_with(dir.path(), "mc.json", STEREO_DL2_STEPS);
    let store = dir.path().join("store");
    let (code, report, err) = run_json(&store, &recipe, &[]);
    assert_eq!(code, 0, "{err}\n{report}");
    // sst1mpipe applies the stereo cuts where stereo DL2 is loaded (cuts, IRFs, performance,
    // DL3): the gammaness spread cut removes stereo gammas there, and only there.
    let log_of = |step: &str| {
        let key = report["activities"].as_array().unwrap().iter().find(|a| a["step"] == step).unwrap()["key"]
            .as_str()
            .unwrap()
            .to_string();
        stdout(&sst1mflow(&store, &["log", &key[..12]]))
    };
    // Planning cannot see which DL2 is stereo: a set stereo cut is announced as stereo-only.
    let notice = report["warnings"].as_array().unwrap().iter().any(|w| {
        let w = w.as_str().unwrap();
        w.contains("analysis.stereo_std_gammaness_cut = 0.2") && w.contains("applies to stereo DL2 only")
    });
    assert!(notice, "{report}");
    let cut_log = log_of("cuts-stereo");
    assert!(cut_log.contains("pass event_selection on both telescopes and the stereo quality cuts"), "{cut_log}");
    assert!(cut_log.contains("\"stereo_std_gammaness_cut\":0.2"), "{cut_log}");
    let passed = |log: &str| -> (usize, usize) {
        let words: Vec<&str> = log.split_whitespace().collect();
        let i = words.iter().position(|w| *w == "of").unwrap();
        (words[i - 1].parse().unwrap(), words[i + 1].parse().unwrap())
    };
    let (kept, read) = passed(&cut_log);
    assert!(kept > 0 && kept < read, "{cut_log}");
    let irf = std::fs::read(view_target(&store, "stereo/irfs-stereo/all/irfs.fits")).unwrap();
    let header = String::from_utf8_lossy(&irf[..2880 * 4]).to_string();
    assert!(header.contains("TELESCOP= 'SST1M_stereo'") && header.contains("STEREOCT"), "{header}");
    let n_tels = header.find("N_TELS  =").map(|i| header[i + 9..i + 30].trim().to_string()).unwrap();
    assert_eq!(n_tels, "2");
    // Without the cut: more stereo gammas pass; the mono cuts and IRF inputs do not rerun.
    let mut relaxed = cfg.clone();
    relaxed["analysis"]["stereo_std_gammaness_cut"] = serde_json::Value::Null;
    write(&dir.path().join("mc.json"), &serde_json::to_string_pretty(&relaxed).unwrap());
    let (code, dry, err) = run_json(&store, &recipe, &["--dry-run"]);
    assert_eq!(code, 0, "{err}");
    let reruns: Vec<&str> = dry["activities"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["outcome"] != "reused")
        .map(|a| a["step"].as_str().unwrap())
        .collect();
    assert_eq!(reruns, ["cuts-stereo", "irfs-stereo"], "{dry}");
    let (code, report, err) = run_json(&store, &recipe, &[]);
    assert_eq!(code, 0, "{err}\n{report}");
    let key = report["activities"].as_array().unwrap().iter().find(|a| a["step"] == "cuts-stereo").unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let (kept_all, read_all) = passed(&stdout(&sst1mflow(&store, &["log", &key[..12]])));
    assert!(kept_all > kept && read_all == read, "{kept_all} vs {kept} of {read}");
    // The two other stereo quality cuts remove stereo gammas too, each on its own.
    for (cut, value) in [("stereo_delta_disp_cut_deg", 0.05), ("stereo_relative_std_reco_energy_cut", 0.05)] {
        let mut one = relaxed.clone();
        one["analysis"][cut] = value.into();
        write(&dir.path().join("mc.json"), &serde_json::to_string_pretty(&one).unwrap());
        let (code, report, err) = run_json(&store, &recipe, &[]);
        assert_eq!(code, 0, "{err}\n{report}");
        let key = report["activities"].as_array().unwrap().iter().find(|a| a["step"] == "cuts-stereo").unwrap()["key"]
            .as_str()
            .unwrap()
            .to_string();
        let log = stdout(&sst1mflow(&store, &["log", &key[..12]]));
        assert!(log.contains(&format!("\"{cut}\":{value}")), "{log}");
        let (kept_one, _) = passed(&log);
        assert!(kept_one > 0 && kept_one < kept_all, "{cut} = {value}: {kept_one} of {kept_all} kept");
    }
    write(&dir.path().join("mc.json"), &serde_json::to_string_pretty(&cfg).unwrap());
    // Mono and stereo DL2 in one IRF are refused, naming both.
    let mixed = dir.path().join("mixed.json");
    write(
        &mixed,
        &std::fs::read_to_string(&recipe)
            .unwrap()
            .replace(r#""proton": "dl2-stereo-p.dl2""#, r#""proton": "dl2-1p.dl2""#),
    );
    let (code, _, err) = run_json(&store, &mixed, &[]);
    assert_ne!(code, 0);
    assert!(err.contains("is stereo DL2 and proton input") && err.contains("is mono DL2"), "{err}");
    let path = view_target(&store, "stereo/dl2-stereo/all/dl2_stereo.h5");
    let file = hdf5::File::open(&path).unwrap();
    let table = file.dataset("/dl2/event/telescope/parameters/stereo").unwrap();
    let n = table.size();
    let tel1 = sst1mflow::io::dl2::Dl2Reader::open(&view_target(&store, "stereo/dl2-1/all/dl2.h5")).unwrap();
    assert!(n >= 40 && n <= tel1.n_events, "{n} stereo events of {}", tel1.n_events);
    let field = |i: usize| sst1mflow::io::hdf5_table::read_string_attr(&table, &format!("FIELD_{i}_NAME")).unwrap();
    assert_eq!((field(0), field(1), field(2)), ("obs_id".into(), "event_id".into(), "true_az_tel".into()));
    assert!(file.dataset("/configuration/simulation/run").is_ok() && file.dataset("/dl2/info").is_ok());
    assert!(file.dataset("/simulation/service/shower_distribution").is_ok());
    let models: serde_json::Value =
        serde_json::from_str(&sst1mflow::io::hdf5_table::read_string_attr(&file, "sst1mflow_models").unwrap()).unwrap();
    assert!(models["tel_001"]["energy"]["training_activity"].is_string());
    assert!(models["tel_002"]["energy"]["training_activity"].is_string());
    assert_ne!(models["tel_001"]["energy"]["training_activity"], models["tel_002"]["energy"]["training_activity"]);
    let key = report["activities"].as_array().unwrap().iter().find(|a| a["step"] == "dl2-stereo").unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let log = stdout(&sst1mflow(&store, &["log", &key[..12]]));
    assert!(log.contains("stereo events combined (weights: camera_frame_hillas_intensity)"), "{log}");

    // Refusals, naming the files: the same telescope twice; DL2 of two dl1-stereo activities.
    let text = std::fs::read_to_string(&recipe).unwrap();
    let twice = dir.path().join("twice.json");
    write(&twice, &text.replace(r#""tel2": "dl2-2.dl2"}"#, r#""tel2": "dl2-1.dl2"}"#));
    let (code, _, err) = run_json(&store, &twice, &[]);
    assert_ne!(code, 0);
    assert!(err.contains("are both telescope 1") && err.contains("tel2 (dl2.h5"), "{err}");
    let other = dir.path().join("other.json");
    write(
        &other,
        &text.replace(
            r#""inputs": {"tel1": "dl2-1p.dl2", "tel2": "dl2-2p.dl2"}"#,
            r#""inputs": {"tel1": "dl2-1.dl2", "tel2": "dl2-2p.dl2"}"#,
        ),
    );
    let (code, _, err) = run_json(&store, &other, &[]);
    assert_ne!(code, 0);
    assert!(err.contains("do not hold the same stereo events") && err.contains("tel2 (dl2.h5"), "{err}");

    // Telescope 2's models from another training (other forest arguments), given as files:
    // not one stereo training, refused side by side.
    let models = dir.path().join("tel2-models");
    std::fs::create_dir_all(&models).unwrap();
    for f in ["reg_energy", "reg_disp_norm", "class_disp_sign", "class_gh"] {
        let name = format!("{f}_tel_002.rf");
        std::fs::copy(view_target(&store, &format!("stereo/train-2/all/{name}")), models.join(&name)).unwrap();
    }
    let mut other_cfg = cfg.clone();
    other_cfg["random_forest_regressor_args"]["n_estimators"] = 12.into();
    write(&dir.path().join("mc12.json"), &serde_json::to_string_pretty(&other_cfg).unwrap());
    let mut mixed: serde_json::Value = serde_json::from_str(&text.replace("\"mc.json\"", "\"mc12.json\"")).unwrap();
    mixed["name"] = "mixed-training".into();
    let m = |f: &str| serde_json::json!({"paths": [models.join(format!("{f}_tel_002.rf"))], "kind": "model"});
    mixed["inputs"] = serde_json::json!({"e2": m("reg_energy"), "n2": m("reg_disp_norm"), "s2": m("class_disp_sign"), "g2": m("class_gh")});
    for step in mixed["steps"].as_array_mut().unwrap() {
        if step["name"] == "dl2-2" {
            step["inputs"] = serde_json::json!({"dl1": "stereo.dl1_tel2", "energy": "e2", "disp_norm": "n2",
                                               "disp_sign": "s2", "gh": "g2"});
        }
    }
    let mixed_path = dir.path().join("mixed-training.json");
    write(&mixed_path, &mixed.to_string());
    let (code, _, err) = run_json(&store, &mixed_path, &[]);
    assert_ne!(code, 0);
    assert!(err.contains("were reconstructed with models trained differently"), "{err}");
    assert!(err.contains("energy model forest_args"), "{err}");
}

/// A night of the second telescope as `tel2`: only its runs overlapping the tel1 run in time,
/// with the tel1 run's pointing (within sst1mpipe's 0.2°), are used; the log names each run
/// used or skipped and why. Observation runs simulated per telescope stand for camera data.
#[test]
fn a_night_of_tel2_runs_is_narrowed_to_the_overlapping_ones_with_the_same_pointing() {
    let dir = TempDir::new("stereo-night");
    write(&dir.path().join("mc.json"), &mc_config());
    let run = |name: &str, tel: u16, obs: u64, start: u64, wobble_angle: f64| {
        format!(
            r#"{{"name": "{name}", "stage": "simulate", "params": {{"mode": "observation", "tel_id": {tel}, "obs_id": {obs},
                "seed": {obs}, "start_unix_s": {start}, "duration_s": 3, "wobble_angle_deg": {wobble_angle},
                "source_amplitude": 1e-8, "source_energy_min_tev": 1, "proton_energy_min_tev": 2, "proton_viewcone_deg": 1.5}}}},
              {{"name": "dl1-{name}", "stage": "r0-dl1", "params": {{"tel_id": {tel}}}, "inputs": {{"r1": "{name}.r1"}}}}"#
        )
    };
    let recipe = dir.path().join("night.json");
    write(
        &recipe,
        &format!(
            r#"{{"name": "night", "config": "mc.json", "steps": [{}, {}, {}, {},
                {{"name": "stereo", "stage": "dl1-stereo", "params": {{"matching": "sliding_window"}},
                  "inputs": {{"tel1": "dl1-one.dl1", "tel2": ["dl1-early.dl1", "dl1-later.dl1", "dl1-wobble.dl1"]}}}}]}}"#,
            run("one", 1, 1, 1_667_267_400, 0.0),
            run("early", 2, 2, 1_667_267_398, 0.0),
            run("later", 2, 3, 1_667_268_000, 0.0),
            run("wobble", 2, 4, 1_667_267_400, 180.0),
        ),
    );
    let store = dir.path().join("store");
    let (code, report, err) = run_json(&store, &recipe, &[]);
    assert_eq!(code, 0, "{err}\n{report}");
    let key = report["activities"].as_array().unwrap().iter().find(|a| a["step"] == "stereo").unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let log = stdout(&sst1mflow(&store, &["log", &key[..12]]));
    let line = |needle: &str| log.lines().find(|l| l.contains(needle)).unwrap_or_else(|| panic!("{needle}: {log}"));
    assert!(line("tel2 file").contains("overlaps the tel1 run: used"), "{log}");
    assert!(line("no overlap in time").ends_with("skipped"), "{log}");
    assert!(line("pointing 0.8").contains("more than 0.2°"), "{log}");
    assert_eq!(log.matches(": used").count(), 1, "{log}");
    assert!(log.contains("sliding window: clock offset"), "{log}");

    // Nothing overlaps: refused, saying why for each file.
    let text = std::fs::read_to_string(&recipe).unwrap().replace(r#""dl1-early.dl1", "#, "");
    write(&recipe, &text);
    let (code, _, err) = run_json(&store, &recipe, &[]);
    assert_ne!(code, 0);
    assert!(
        err.contains("no tel2 file overlaps") && err.contains("no overlap in time") && err.contains("pointing"),
        "{err}"
    );
}

#[test]
fn misdirection_of_stereo_events_uses_the_stereo_feature_list() {
    let dir = TempDir::new("stereo-mis");
    let config = mc_config()
        .replace("\"n_estimators\": 150", "\"n_estimators\": 10")
        .replace("\"n_estimators\": 100", "\"n_estimators\": 10");
    write(&dir.path().join("mc.json"), &config);
    let steps = STEREO_DL2_STEPS.to_string()
        + r#",
  {"name": "mis", "stage": "train-misdirection", "inputs": {"gamma": "dl2-stereo.dl2"}},
  {"name": "edges", "stage": "event-classes", "inputs": {"dl2": "dl2-stereo.dl2", "model": "mis.model"}},
  {"name": "classes", "stage": "event-classes", "inputs": {"dl2": "dl2-stereo.dl2", "model": "mis.model",
     "edges": "edges.edges"}}"#;
    let recipe = stereo_recipe_with(dir.path(), "mc.json", &steps);
    let store = dir.path().join("store");
    let (code, report, err) = run_json(&store, &recipe, &[]);
    assert_eq!(code, 0, "{err}\n{report}");
    let model = sst1mflow::io::model::read(&view_target(&store, "stereo/mis/all/reg_misdirection.rf"), "m").unwrap();
    let cfg: serde_json::Value = serde_json::from_str(&config).unwrap();
    let stereo_list: Vec<String> =
        serde_json::from_value(cfg["misdirection_regression_features_stereo"].clone()).unwrap();
    assert_eq!(model.header.features, stereo_list);
    assert!(model.header.features.contains(&"log_camera_frame_hillas_intensity_tel2".to_string()));
    assert_eq!(model.header.tel_id, 0);
    assert_eq!(model.header.training["setup"], "stereo");
    let classified =
        sst1mflow::io::dl2::Dl2Reader::open(&view_target(&store, "stereo/classes/all/dl2_classified.h5")).unwrap();
    assert!(classified.stereo.is_some() && classified.has_event_types && classified.n_events > 20);
    let types = classified.read_columns(&["event_type"], 0, classified.n_events).unwrap();
    assert!(types[0].contains(&1.0) && types[0].contains(&4.0), "{:?}", types[0]);
    // What a dry run would rerun after shortening one misdirection list.
    let reruns_without_last = |list: &str| -> Vec<String> {
        let mut edited = cfg.clone();
        edited[list].as_array_mut().unwrap().pop();
        write(&dir.path().join("mc.json"), &serde_json::to_string_pretty(&edited).unwrap());
        let (code, dry, err) = run_json(&store, &recipe, &["--dry-run"]);
        assert_eq!(code, 0, "{err}");
        let activities = dry["activities"].as_array().unwrap().iter();
        activities.filter(|a| a["outcome"] != "reused").map(|a| a["step"].as_str().unwrap().to_string()).collect()
    };
    // The mono list is not this chain's; the stereo list reruns the misdirection chain only.
    assert!(reruns_without_last("misdirection_regression_features_mono").is_empty());
    assert_eq!(reruns_without_last("misdirection_regression_features_stereo"), ["mis", "edges", "classes"]);
}
