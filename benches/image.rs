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
    let corr = extract::integration_correction(&pulse::reference_table(), pulse::REFERENCE_STEP_NS, SAMPLE_NS, 7, 3);
    let window = extract::Window { width: 7, shift: 3, sample_ns: SAMPLE_NS, correction: corr };
    let cuts = clean::Tailcuts { boundary: 4.0, min_picture_neighbors: 2, keep_isolated: false };
    let thr = vec![8.0; geom.n_pixels()];
    let (mut q, mut t, mut m) = (vec![0.0f32; 1296], vec![0.0f32; 1296], vec![false; 1296]);
    let mut r1_to_dl1 = |wf: &[f32]| {
        extract::local_peak_window_sum(wf, N_SAMPLES, &window, &mut q, &mut t);
        clean::tailcuts_clean(&geom, &q, &thr, &cuts, &mut m);
        clean::time_delta_clean(&geom, &t, 1, 8.0, &mut m);
        params::image_parameters(&geom, &q, &t, &m).is_some()
    };

    // Each triggered event goes to R1 -> DL1 right after it is simulated, while its waveforms
    // are in the cache: the way the stage runs (a reader decodes one event into a buffer, the
    // physics takes it). The two are timed apart.
    let (mut t_sim, mut t_dl1) = (0.0, 0.0);
    let mut triggered = Vec::new();
    let mut with_params = 0;
    for i in 0..n {
        let wf = &mut all[i as usize * per_event..(i as usize + 1) * per_event];
        let start = Instant::now();
        let is_triggered = sim.simulate(&cfg, i, wf).triggered;
        t_sim += start.elapsed().as_secs_f64();
        if is_triggered {
            triggered.push(i as usize);
            let start = Instant::now();
            with_params += r1_to_dl1(wf) as usize;
            t_dl1 += start.elapsed().as_secs_f64();
        }
    }
    println!("vector build of the extraction: {:?} (SST1MFLOW_SIMD=scalar|avx2 lowers it)", extract::vector_build());
    println!(
        "simulator: {n} events in {t_sim:.2} s = {:.0} events/s on one core ({} triggered)",
        n as f64 / t_sim,
        triggered.len()
    );
    let ours = triggered.len() as f64 / t_dl1;
    println!(
        "R1 -> DL1, each event as it is produced: {} events in {t_dl1:.3} s = {ours:.0} events/s on one core ({with_params} with parameters)",
        triggered.len()
    );
    // The same events again, streamed from the 1 GB array in memory (not in any cache).
    let start = Instant::now();
    for &i in &triggered {
        r1_to_dl1(&all[i * per_event..(i + 1) * per_event]);
    }
    let t_cold = start.elapsed().as_secs_f64();
    let cold = triggered.len() as f64 / t_cold;
    println!("R1 -> DL1, the same events streamed from memory: {cold:.0} events/s on one core");
    print_phases(&geom, &all, per_event, &triggered, &window, &cuts, &thr);

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
                "RATIO sst1mflow / ctapipe (CameraCalibrator + ImageProcessor) R1 -> DL1: {:.1}x (target >= 50x; ours target >= 10,000 events/s); from memory {:.1}x",
                ours / full_rate,
                cold / full_rate
            );
        }
        Err(_) => println!("ctapipe full pipeline failed: {}", String::from_utf8_lossy(&full.stderr)),
    }
}

/// Where the R1 → DL1 time goes: each phase timed on its own over the same events, and the
/// time just to stream the waveforms from memory (the floor for the extraction).
fn print_phases(
    geom: &CameraGeometry,
    all: &[f32],
    per_event: usize,
    triggered: &[usize],
    window: &extract::Window,
    cuts: &clean::Tailcuts,
    thr: &[f64],
) {
    let n = triggered.len();
    let per_event_us = |t: Instant| t.elapsed().as_secs_f64() * 1e6 / n as f64;
    let start = Instant::now();
    let mut sink = 0.0f32;
    for &i in triggered {
        let wf = &all[i * per_event..(i + 1) * per_event];
        let mut lanes = [0.0f32; 16];
        for c in wf.chunks_exact(16) {
            for l in 0..16 {
                lanes[l] += c[l];
            }
        }
        sink += lanes.iter().sum::<f32>();
    }
    let t_read = per_event_us(start);
    let mut images = vec![0.0f32; n * 1296];
    let mut times = vec![0.0f32; n * 1296];
    // Fault the pages in before timing (fresh pages are the kernel's work, not ours).
    images.fill(1.0);
    times.fill(1.0);
    let start = Instant::now();
    for (k, &i) in triggered.iter().enumerate() {
        let wf = &all[i * per_event..(i + 1) * per_event];
        let (q, t) = (&mut images[k * 1296..(k + 1) * 1296], &mut times[k * 1296..(k + 1) * 1296]);
        extract::local_peak_window_sum(wf, N_SAMPLES, window, q, t);
    }
    let t_extract = per_event_us(start);
    // The same extraction on 8 events (2 MB, in the L2 cache) over and over, as n events.
    let hot: Vec<usize> = triggered.iter().copied().take(8).collect();
    let start = Instant::now();
    for k in 0..n {
        let i = hot[k % hot.len()];
        let wf = &all[i * per_event..(i + 1) * per_event];
        let (q, t) = (&mut images[k * 1296..(k + 1) * 1296], &mut times[k * 1296..(k + 1) * 1296]);
        extract::local_peak_window_sum(wf, N_SAMPLES, window, q, t);
    }
    let t_extract_hot = per_event_us(start);
    println!("  extraction from cache: {t_extract_hot:.1} us per event");
    let mut masks = vec![true; n * 1296];
    let start = Instant::now();
    for k in 0..n {
        let m = &mut masks[k * 1296..(k + 1) * 1296];
        clean::tailcuts_clean(geom, &images[k * 1296..(k + 1) * 1296], thr, cuts, m);
        clean::time_delta_clean(geom, &times[k * 1296..(k + 1) * 1296], 1, 8.0, m);
    }
    let t_clean = per_event_us(start);
    let start = Instant::now();
    for k in 0..n {
        let r = k * 1296..(k + 1) * 1296;
        if let Some(p) = params::image_parameters(geom, &images[r.clone()], &times[r.clone()], &masks[r]) {
            sink += p.hillas.intensity as f32;
        }
    }
    let t_params = per_event_us(start);
    println!(
        "  per event: streaming the waveforms {t_read:.1} us, extraction {t_extract:.1} us, cleaning {t_clean:.1} us, \
         parameters {t_params:.1} us (checksum {sink:.0})"
    );
}
