//! Simulator and R1 → DL1 throughput on one core, and ctapipe on the same waveforms.
//!
//! Simulates gamma events (diffuse, 1–100 TeV, NSB 0.05 p.e./ns) and times them; runs
//! LocalPeakWindowSum + tailcuts/time cleaning + all image parameters on the triggered ones;
//! then, if the project's virtualenv has ctapipe, times ctapipe's functions (extract_around_peak,
//! tailcuts_clean, apply_time_delta_cleaning, hillas/leakage/concentration/morphology/timing/
//! statistics) and ctapipe's full CameraCalibrator + ImageProcessor (benches/ctapipe_r1_dl1.py,
//! the baseline issue 4 names) on the very same waveforms, and prints both ratios. Prints
//! figures, asserts nothing.
use sst1mflow::image::{clean, extract, params};
use sst1mflow::instrument::{camera::CameraGeometry, pulse, N_SAMPLES, SAMPLE_NS};
use sst1mflow::sim::{Particle, SimConfig, Simulator};
use std::io::Write;
use std::time::Instant;

fn main() {
    let n: u64 = std::env::var("SST1MFLOW_BENCH_EVENTS").ok().and_then(|s| s.parse().ok()).unwrap_or(4000);
    let cfg = SimConfig {
        particle: Particle::Gamma,
        energy_min_tev: 1.0,
        energy_max_tev: 100.0,
        spectral_index: -2.0,
        max_impact_m: 300.0,
        viewcone_deg: 3.0,
        source_offset_deg: 0.0,
        nsb_rate_ghz: 0.05,
        noise_pe: 0.3,
        trigger_pe: 25.0,
        seed: 7,
    };
    let geom = CameraGeometry::digicam();
    let mut sim = Simulator::new(geom.clone());
    let per_event = geom.n_pixels() * N_SAMPLES;
    let mut all = vec![0.0f32; n as usize * per_event];
    // Touch every page first: the kernel zeroing fresh pages is not the simulator's work.
    all.fill(1.0);
    let start = Instant::now();
    let mut triggered = Vec::new();
    for i in 0..n {
        let wf = &mut all[i as usize * per_event..(i as usize + 1) * per_event];
        if sim.simulate(&cfg, i, wf).triggered {
            triggered.push(i as usize);
        }
    }
    let t_sim = start.elapsed().as_secs_f64();
    println!(
        "simulator: {n} events in {t_sim:.2} s = {:.0} events/s on one core ({} triggered)",
        n as f64 / t_sim,
        triggered.len()
    );

    let corr = extract::integration_correction(&pulse::reference_table(), pulse::REFERENCE_STEP_NS, SAMPLE_NS, 7, 3);
    let window = extract::Window { width: 7, shift: 3, sample_ns: SAMPLE_NS, correction: corr };
    let cuts = clean::Tailcuts { boundary: 4.0, min_picture_neighbors: 2, keep_isolated: false };
    let thr = vec![8.0; geom.n_pixels()];
    let (mut q, mut t, mut m) = (vec![0.0f32; 1296], vec![0.0f32; 1296], vec![false; 1296]);
    let mut with_params = 0;
    let start = Instant::now();
    for &i in &triggered {
        let wf = &all[i * per_event..(i + 1) * per_event];
        extract::local_peak_window_sum(wf, N_SAMPLES, &window, &mut q, &mut t);
        clean::tailcuts_clean(&geom, &q, &thr, &cuts, &mut m);
        clean::time_delta_clean(&geom, &t, 1, 8.0, &mut m);
        with_params += params::image_parameters(&geom, &q, &t, &m).is_some() as usize;
    }
    let t_dl1 = start.elapsed().as_secs_f64();
    let ours = triggered.len() as f64 / t_dl1;
    println!(
        "R1 -> DL1: {} events in {t_dl1:.3} s = {ours:.0} events/s on one core ({with_params} with parameters)",
        triggered.len()
    );

    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    if !python.exists() {
        println!("no .venv with ctapipe: comparison skipped (run scripts/bench.sh)");
        return;
    }
    let dir = std::env::temp_dir().join(format!("sst1mflow-imgbench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let wf_path = dir.join("wf.f32");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&wf_path).unwrap());
    for &i in &triggered {
        for v in &all[i * per_event..(i + 1) * per_event] {
            f.write_all(&v.to_le_bytes()).unwrap();
        }
    }
    drop(f);
    let script = format!(
        r#"
import time, numpy as np, astropy.units as u
from ctapipe.instrument import CameraGeometry, PixelShape
from ctapipe.image import (tailcuts_clean, apply_time_delta_cleaning, hillas_parameters, leakage_parameters,
    concentration_parameters, morphology_parameters, timing_parameters, descriptive_statistics)
from ctapipe.image.extractor import extract_around_peak
x = np.array({x:?}); y = np.array({y:?})
geom = CameraGeometry("DigiCam", np.arange(1296), x*u.m, y*u.m, np.full(1296, 4.7016e-4)*u.m**2,
                      pix_type=PixelShape.HEXAGON, pix_rotation=30*u.deg, cam_rotation=0*u.deg)
wf = np.fromfile("{path}", dtype="<f4").reshape(-1, 1296, 50)
corr = {corr}
def one(w):
    q, t = extract_around_peak(w, w.argmax(axis=-1), 7, 3, 0.25); q *= corr
    m = tailcuts_clean(geom, q, picture_thresh=8, boundary_thresh=4, min_number_picture_neighbors=2)
    m = apply_time_delta_cleaning(geom, m, t, 1, 8)
    if m.any() and q[m].sum() > 0:
        h = hillas_parameters(geom[m], q[m]); leakage_parameters(geom, q, m)
        concentration_parameters(geom[m], q[m], h); morphology_parameters(geom, m)
        timing_parameters(geom[m], q[m], t[m], h); descriptive_statistics(q[m]); descriptive_statistics(t[m])
one(wf[0])  # compile numba functions first
start = time.perf_counter()
for w in wf: one(w)
print(len(wf) / (time.perf_counter() - start))
"#,
        x = geom.pix_x,
        y = geom.pix_y,
        path = wf_path.display(),
        corr = corr
    );
    let out = std::process::Command::new(&python).arg("-c").arg(script).output().unwrap();
    let camera =
        std::process::Command::new(env!("CARGO_BIN_EXE_sst1mflow")).args(["--json", "camera"]).output().unwrap();
    let cam_path = dir.join("camera.json");
    std::fs::write(&cam_path, &camera.stdout).unwrap();
    let full = std::process::Command::new(&python)
        .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/ctapipe_r1_dl1.py"))
        .arg(&cam_path)
        .arg(&wf_path)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    if !out.status.success() {
        println!("ctapipe comparison failed: {}", String::from_utf8_lossy(&out.stderr));
        return;
    }
    let theirs: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    println!("ctapipe 0.28 functions, same events: {theirs:.0} events/s (ours {:.1}x faster)", ours / theirs);
    match String::from_utf8_lossy(&full.stdout).trim().parse::<f64>() {
        Ok(full_rate) => {
            println!("ctapipe 0.28 CameraCalibrator + ImageProcessor, same events: {full_rate:.0} events/s");
            println!(
                "RATIO sst1mflow / ctapipe (CameraCalibrator + ImageProcessor) R1 -> DL1: {:.1}x (target >= 50x; ours target >= 10,000 events/s)",
                ours / full_rate
            );
        }
        Err(_) => println!("ctapipe full pipeline failed: {}", String::from_utf8_lossy(&full.stderr)),
    }
}
