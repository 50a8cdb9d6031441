//! Computes IRF arrays from raw event columns, for the interoperability test against pyirf
//! (`tests/interop/test_irf_vs_pyirf.py`), which prepares the inputs, runs both and compares
//! bin for bin.
//!
//! irf_compute SPEC.json EVENTS.f64 OUT_DIR
//! EVENTS: row-major f64 [true_energy TeV, reco_energy TeV, true_offset deg, theta deg,
//! reco_offset deg, weight]. SPEC: bin edges, the simulation info and the observation time.
//! Writes OUT_DIR/{aeff_e,aeff,edisp,psf,bkg,theta_cut,sens,curve}.f64 and prints the compute time as JSON.
use serde_json::Value;
use sst1mflow::irf::{self, SimulationInfo};
use std::time::Instant;

fn edges(spec: &Value, key: &str) -> Vec<f64> {
    spec[key].as_array().unwrap_or_else(|| panic!("spec lacks {key}")).iter().map(|v| v.as_f64().unwrap()).collect()
}

fn write(path: std::path::PathBuf, values: &[f64]) {
    std::fs::write(path, values.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()).unwrap();
}

fn main() {
    let a: Vec<String> = std::env::args().collect();
    assert_eq!(a.len(), 4, "usage: irf_compute SPEC.json EVENTS.f64 OUT_DIR");
    let spec: Value = serde_json::from_slice(&std::fs::read(&a[1]).unwrap()).unwrap();
    let raw: Vec<f64> =
        std::fs::read(&a[2]).unwrap().chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().unwrap())).collect();
    let out = std::path::Path::new(&a[3]);
    let s = &spec["sim"];
    let f = |k: &str| s[k].as_f64().unwrap();
    let sim = SimulationInfo {
        n_showers: f("n_showers"),
        energy_min_tev: f("energy_min"),
        energy_max_tev: f("energy_max"),
        max_impact_m: f("max_impact"),
        spectral_index: f("spectral_index"),
        viewcone_min_deg: f("viewcone_min"),
        viewcone_max_deg: f("viewcone_max"),
    };
    let start = Instant::now();
    let col = |i: usize| raw.iter().skip(i).step_by(6).copied().collect::<Vec<f64>>();
    let (true_e, reco_e, true_off, theta, reco_off, weight) = (col(0), col(1), col(2), col(3), col(4), col(5));
    let (e, migra, off, rad) =
        (edges(&spec, "true_energy"), edges(&spec, "migration"), edges(&spec, "fov_offset"), edges(&spec, "rad"));
    let (reco_edges, bg_off) = (edges(&spec, "reco_energy"), edges(&spec, "bg_offset"));
    let aeff_e = irf::effective_area_per_energy(&true_e, &sim, &e).unwrap();
    let aeff = irf::effective_area_per_energy_and_offset(&true_e, &true_off, &sim, &e, &off).unwrap();
    let edisp = irf::energy_dispersion(&true_e, &reco_e, &true_off, &e, &migra, &off).unwrap();
    let psf = irf::psf_table(&true_e, &true_off, &theta, &e, &off, &rad).unwrap();
    let bkg = irf::background_2d(&reco_e, &reco_off, &weight, &reco_edges, &bg_off, spec["t_obs_s"].as_f64().unwrap())
        .unwrap();
    // θ cut: 68% containment per reco-energy bin (fill 0.32 deg below 10 events).
    let theta_table = irf::percentile_cut(&theta, &reco_e, &reco_edges, 68.0, 0.32, (None, None), 10).unwrap();
    let theta_cut: Vec<f64> = theta_table.iter().map(|c| c.cut).collect();
    // Point-source sensitivity: the same events as signal (θ) and as background (reco offset).
    let curve = irf::sensitivity_curve(
        &irf::WeightedEvents { reco_energy: &reco_e, angle_deg: &theta, weight: &weight },
        &irf::WeightedEvents { reco_energy: &reco_e, angle_deg: &reco_off, weight: &weight },
        &theta_table,
        &reco_edges,
        0.2,
        (0.0, 1.0),
        &irf::STANDARD_DETECTION,
    )
    .unwrap();
    let curve_values: Vec<f64> =
        curve.iter().flat_map(|b| [b.n_signal_weighted, b.n_background_weighted, b.relative_sensitivity]).collect();
    let seconds = start.elapsed().as_secs_f64();
    write(out.join("curve.f64"), &curve_values);
    let n_on = edges(&spec, "n_on");
    let n_off = edges(&spec, "n_off");
    let sensitivity: Vec<f64> = n_on
        .iter()
        .zip(&n_off)
        .map(|(&on, &off)| irf::relative_sensitivity(on, off, 0.2, &irf::STANDARD_DETECTION))
        .collect();
    write(out.join("sens.f64"), &sensitivity);
    write(out.join("theta_cut.f64"), &theta_cut);
    for (name, v) in [("aeff_e", &aeff_e), ("aeff", &aeff), ("edisp", &edisp), ("psf", &psf), ("bkg", &bkg)] {
        write(out.join(format!("{name}.f64")), v);
    }
    println!("{{\"seconds\": {seconds:.4}}}");
}
