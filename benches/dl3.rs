//! DL2 → DL3 throughput: the `dl2-dl3` stage on one observation of N events (default one
//! million, `SST1MFLOW_BENCH_EVENTS`), read from a DL2 HDF5 file as the stage writes them
//! (deflate + shuffle), selected, cut, converted (times to TT, detector coordinates) and written
//! with an IRF copied in. Prints the time of the stage alone (the input file is made first and
//! not timed); asserts nothing.
use serde_json::json;
use sst1mflow::io::dl1::{Dl2Row, ParametersRow};
use sst1mflow::io::dl2::Dl2Writer;
use sst1mflow::io::fits::{self, BinTable, Card, Column, ColumnData, Value as Fv};
use sst1mflow::io::r1::ObservationRow;
use sst1mflow::sim::rng::Rng;
use sst1mflow::stages::{self, InputFile, StageContext};
use std::collections::BTreeMap;
use std::time::Instant;

const VERSION: &str = "bench";

fn main() {
    let n: usize = std::env::var("SST1MFLOW_BENCH_EVENTS").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("sst1mflow-dl3-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let dl2_path = dir.join("dl2.h5");
    let models = json!({"energy": {"sha256": "e"}, "gh": {"sha256": "g"}}).to_string();
    let selection = json!({"camera_frame_hillas_intensity": [50, 1_000_000], "leakage_intensity_width_2": [0, 0.2]});
    let start_unix = 1_667_267_400.0;
    let duration = 3600.0;

    // A DL2 run of n events: power-law energies, gammaness uniform, directions around the target.
    let t = Instant::now();
    let template = ParametersRow::new(1001, 0, 1, (62.0, 180.0), None, None);
    let telescope = sst1mflow::instrument::TelescopeDescription::model(1, [0.0; 3]);
    let mut w = Dl2Writer::create(&dl2_path, &telescope, &"0".repeat(64), VERSION).unwrap();
    w.attribute("sst1mflow_models", &models).unwrap();
    let mut rng = Rng::new(1, 1);
    for i in 0..n {
        let mut p = template;
        p.event_id = i as i64;
        p.camera_frame_hillas_intensity = 10f64.powf(1.5 + 2.5 * rng.uniform());
        p.leakage_intensity_width_2 = (0.3 * rng.uniform()) as f32;
        p.true_alt_tel = 62.0 + 0.01 * rng.normal();
        p.true_az_tel = 180.0 + 0.5 * rng.normal();
        p.local_time = start_unix + duration * (i as f64 + 0.5) / n as f64;
        let mut r = Dl2Row::from_parameters(&p);
        r.reco_energy = rng.power_law(0.2, 200.0, -2.6);
        r.log_reco_energy = r.reco_energy.log10();
        r.gammaness = rng.uniform();
        r.reco_src_x = 0.1 * rng.normal();
        r.reco_src_y = 0.1 * rng.normal();
        r.reco_ra = 83.63 + 1.0 * rng.normal();
        r.reco_dec = 22.01 + 1.0 * rng.normal();
        w.write(r).unwrap();
    }
    w.write_observation(&ObservationRow {
        obs_id: 1001,
        tstart: start_unix,
        tstop: start_unix + duration,
        ra_pnt: 83.63,
        dec_pnt: 22.41,
        target_ra: 83.63,
        target_dec: 22.01,
        wobble_offset: 0.4,
        wobble_angle: 0.0,
        nsb_rate: 0.05,
        source_amplitude: 0.0,
        source_index: -2.62,
        proton_amplitude: 0.0,
        proton_index: -2.62,
    })
    .unwrap();
    w.finish().unwrap();
    let size = std::fs::metadata(&dl2_path).unwrap().len();
    println!("made a DL2 run of {n} events ({:.0} MB) in {:.1} s", size as f64 / 1e6, t.elapsed().as_secs_f64());

    // An IRF product with the provenance the contract reads (small arrays: the stage copies them).
    let irf_path = dir.join("irfs.fits");
    let s = |v: &str| Fv::Str(v.into());
    let cards = vec![
        Card::new("S1MVER", s(VERSION), ""),
        Card::new("GH_CUT", Fv::Float(0.6), ""),
        Card::new("EVTSEL", s(&selection.to_string()), ""),
        Card::new("RFMODELS", s(&models), ""),
        Card::new("ZEN_PNT", Fv::Float(28.0), ""),
        Card::new("AZ_PNT", Fv::Float(180.0), ""),
        Card::new("NSBRATE", Fv::Float(0.05), ""),
        Card::new("IRFNODE", s("ze28_az180_nsb50"), ""),
        Card::new("S1MKEY", s(&"1".repeat(64)), ""),
    ];
    let table = |name: &str| BinTable {
        extname: name.into(),
        n_rows: 1,
        columns: vec![Column::array("DATA", "", &[4, 3], ColumnData::F32(vec![1.0; 12]))],
        cards: cards.clone(),
    };
    let tables: Vec<BinTable> = stages::dl2_dl3::IRF_HDUS.iter().map(|n| table(n)).collect();
    fits::write(&irf_path, &cards, &tables).unwrap();

    let config = json!({
        "event_selection": selection,
        "analysis": {"global_gammaness_cut": 0.6},
        "telescope_coords": {"tel_001": {"long_deg": 14.782924, "lat_deg": 49.9118, "height_m": 510}},
    });
    let params = json!({"target_name": "bench"});
    let mut inputs = BTreeMap::new();
    let input = |role: &str, path: &std::path::Path, name: &str| InputFile {
        role: role.into(),
        position: 0,
        hash: sst1mflow::store::hash_file(path).unwrap().hash,
        path: path.to_path_buf(),
        name: name.into(),
    };
    inputs.insert("dl2".to_string(), vec![input("dl2", &dl2_path, "dl2.h5")]);
    inputs.insert("irfs".to_string(), vec![input("irfs", &irf_path, "irfs.fits")]);
    let stage = stages::by_name("dl2-dl3").unwrap();
    let plan = stage.plan(&params, &["dl2", "irfs"], "bench").unwrap();
    let work = dir.join("work");
    std::fs::create_dir_all(&work).unwrap();
    let mut log = Vec::new();
    let t = Instant::now();
    stage
        .run(&mut StageContext {
            inputs: &inputs,
            params: &params,
            config: &config,
            plan: &plan,
            work_dir: &work,
            activity_key: &"2".repeat(64),
            pipeline_version: VERSION,
            log: &mut log,
        })
        .unwrap();
    let elapsed = t.elapsed().as_secs_f64();
    let out = std::fs::metadata(work.join("dl3.fits")).unwrap().len();
    print!("{}", String::from_utf8_lossy(&log));
    println!(
        "dl2-dl3: {n} events in {elapsed:.2} s = {:.2} M events/s ({:.0} MB of DL2 read, {:.1} MB of DL3 written)",
        n as f64 / elapsed / 1e6,
        size as f64 / 1e6,
        out as f64 / 1e6
    );
    if std::env::var("SST1MFLOW_BENCH_KEEP").is_err() {
        std::fs::remove_dir_all(&dir).ok();
    } else {
        println!("kept {}", dir.display());
    }
}
