//! Decoding speed of the native raw-input readers on the real sample files, against the
//! physics that follows: zfits (DigiCam R0) and sim_telarray (EventIO) read rates in MB/s of
//! file and events/s, the R0→R1 calibration, and R1→DL1 (extraction, cleaning, parameters) on
//! the same events, each on one core. Prints figures, asserts nothing. Skips files that are
//! absent (the shared data folder).
//!
//! Part 2, a simulated raw night (`simulate-night`; `SST1MFLOW_BENCH_NIGHT=<root>` reuses one
//! made before, else one is made in a temporary folder: `SST1MFLOW_BENCH_RUNS_PER_WOBBLE` [5]
//! science runs per target and wobble, 24 runs per telescope with the dark and transition
//! runs, of `SST1MFLOW_BENCH_RUN_S` [20] s, at the simulator's trigger rate (showers at ~190 Hz
//! per telescope on the Crab, ~360 Hz on Mrk 421 at low altitude, and 20 Hz of pedestal
//! events): about 240,000 events and 11 GB. A full-length night (80 s runs, the size of real 850 MB files) is 45 GB, more than
//! this machine's disk keeps free beside a CI run): the zfits decoding of every file on one core (events/s, MB/s of file and of
//! decoded samples), where an event's time goes on one core (decoding, R0→R1, extraction,
//! saturation, cleaning, parameters), and `sst1mflow r0-dl1` over the night's science runs
//! on both cores, against the figures before this work on a night of the same generator
//! (decoding 3,140 events/s per core; r0-dl1 1,134 events/s on both cores) and the target
//! (10,000 events/s on both cores).
use sst1mflow::image::{calibrate, clean, extract, params};
use sst1mflow::instrument::{camera::CameraGeometry, pulse, N_SAMPLES, SAMPLE_NS};
use sst1mflow::io::simtel::SimtelReader;
use sst1mflow::io::zfits::{DigicamEvent, DigicamReader};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Figures before the decoder work (issue 21), measured on this machine kind with the code of
/// commit 18b7cce on a night of the same generator (10 s runs, seed 1): zfits decoding per core,
/// and `sst1mflow r0-dl1` over the night's science runs of one telescope on both cores.
const BEFORE_NIGHT_DECODE_EVENTS_PER_S: f64 = 3_140.0;
const BEFORE_NIGHT_R0_DL1_EVENTS_PER_S: f64 = 1_134.0;
/// The same figures at the previous step of this work (2026-12-06, commit 8676c31, the
/// README's figures then): decoding a run from the page cache, and r0-dl1 on both cores (one
/// call per telescope, DL1 images deflated, the run's start decoded twice).
const PREVIOUS_NIGHT_DECODE_EVENTS_PER_S: f64 = 5_600.0;
const PREVIOUS_NIGHT_R0_DL1_EVENTS_PER_S: f64 = 1_790.0;
/// `sst1mflow r0-dl1` at the last stop (commit 9d7a8cc) on the host of 2026-12-07 (an AMD
/// EPYC with AVX-512, which ran the code of the stop before ~1.45× faster than the host of the
/// figures above): 40 science files of both telescopes in one engine run, new raw inputs
/// (hashed for their content address; the lower of two runs on 2026-12-07, 9,817–10,227) and
/// inputs already registered (reprocessing; that stop's figure, 11,950–12,040).
const LAST_STOP_R0_DL1_EVENTS_PER_S: f64 = 9_820.0;
const LAST_STOP_REPROCESS_EVENTS_PER_S: f64 = 11_950.0;

fn data(rel: &str) -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data").join(rel);
    p.exists().then_some(p).or_else(|| {
        eprintln!("skipped {rel}: not found");
        None
    })
}

/// Repeats `f` until at least `min_s` seconds passed; returns (repetitions, seconds).
fn timed(min_s: f64, mut f: impl FnMut()) -> (u32, f64) {
    let start = Instant::now();
    let mut n = 0;
    while n == 0 || start.elapsed().as_secs_f64() < min_s {
        f();
        n += 1;
    }
    (n, start.elapsed().as_secs_f64())
}

fn main() {
    let geom = CameraGeometry::digicam();
    let window = extract::Window {
        width: 7,
        shift: 3,
        sample_ns: SAMPLE_NS,
        correction: extract::integration_correction(
            &pulse::reference_table(),
            pulse::REFERENCE_STEP_NS,
            SAMPLE_NS,
            7,
            3,
        ),
    };
    let cuts = clean::Tailcuts { boundary: 4.0, min_picture_neighbors: 2, keep_isolated: false };
    let thresholds = vec![8.0; 1296];
    let mut zfits_events: Vec<DigicamEvent> = Vec::new();
    println!("reader                          file MB   events   MB/s (file)   events/s");
    for rel in ["r0_zfits/example_100evts.fits.fz", "r0_zfits/example_SST1M_20180822.fits.fz"] {
        let Some(p) = data(rel) else { continue };
        let mb = std::fs::metadata(&p).unwrap().len() as f64 / 1e6;
        let mut n_events = 0;
        let (reps, s) = timed(2.0, || {
            let mut r = DigicamReader::open(&p).unwrap();
            let mut e = DigicamEvent::default();
            n_events = 0;
            while r.read_into(&mut e).unwrap() {
                n_events += 1;
                if zfits_events.len() < 200 {
                    zfits_events.push(e.clone());
                }
            }
        });
        let name = p.file_name().unwrap().to_string_lossy();
        println!(
            "zfits  {name:<25} {mb:>7.2} {n_events:>8} {:>12.0} {:>10.0}",
            mb * reps as f64 / s,
            (n_events * reps as usize) as f64 / s
        );
    }
    for rel in ["mc_simtel/simtel_test_file.simtel.gz", "mc_simtel/gamma_prod6_tel_event_header_v4.simtel.zst"] {
        let Some(p) = data(rel) else { continue };
        let mb = std::fs::metadata(&p).unwrap().len() as f64 / 1e6;
        let (mut n_events, mut n_tel, mut raw_bytes) = (0usize, 0usize, 0u64);
        let (reps, s) = timed(2.0, || {
            let mut r = SimtelReader::open(&p).unwrap();
            n_events = 0;
            n_tel = 0;
            while let Some(e) = r.next_event().unwrap() {
                n_events += 1;
                n_tel += e.telescopes.len();
            }
            raw_bytes = r.decompressed_bytes();
        });
        let name = p.file_name().unwrap().to_string_lossy();
        println!(
            "simtel {name:<25} {mb:>7.2} {n_events:>8} {:>12.1} {:>10.0}   ({} telescope events/s, {:.0} MB/s decompressed)",
            mb * reps as f64 / s,
            (n_events * reps as usize) as f64 / s,
            (n_tel as f64 * reps as f64 / s).round(),
            raw_bytes as f64 / 1e6 * reps as f64 / s
        );
    }
    if !zfits_events.is_empty() {
        real_file_physics(&zfits_events, &geom, &window, &cuts, &thresholds);
    }
    simulated_night(&geom, &window);
}

fn real_file_physics(
    zfits_events: &[DigicamEvent],
    geom: &CameraGeometry,
    window: &extract::Window,
    cuts: &clean::Tailcuts,
    thresholds: &[f64],
) {
    // The physics on the same zfits events: R0→R1, then R1→DL1.
    let dc_to_pe = vec![23.5f64; 1296];
    let mut adc = vec![0.0f32; 1296 * N_SAMPLES];
    let mut r1 = vec![0.0f32; 1296 * N_SAMPLES];
    let (reps, s) = timed(2.0, || {
        for e in zfits_events {
            calibrate::r0_to_r1(&e.samples, &e.baselines, &dc_to_pe, 0.98, N_SAMPLES, &mut r1);
        }
    });
    let calib_rate = (zfits_events.len() * reps as usize) as f64 / s;
    let mut image = vec![0.0f32; 1296];
    let mut peak = vec![0.0f32; 1296];
    let mut mask = vec![false; 1296];
    let (reps, s) = timed(2.0, || {
        for e in zfits_events {
            let max_adc = calibrate::r0_to_r1(&e.samples, &e.baselines, &dc_to_pe, 0.98, N_SAMPLES, &mut r1);
            extract::local_peak_window_sum(&r1, N_SAMPLES, window, &mut image, &mut peak);
            if max_adc > calibrate::SATURATION_THRESHOLD_ADC {
                calibrate::subtract_baselines(&e.samples, &e.baselines, N_SAMPLES, &mut adc);
                calibrate::correct_saturation(&adc, &r1, N_SAMPLES, SAMPLE_NS as f32, &mut image, &mut peak);
            }
            clean::tailcuts_clean(geom, &image, thresholds, cuts, &mut mask);
            clean::time_delta_clean(geom, &peak, 1, 8.0, &mut mask);
            std::hint::black_box(params::image_parameters(geom, &image, &peak, &mask));
        }
    });
    let full_rate = (zfits_events.len() * reps as usize) as f64 / s;
    println!(
        "physics on {} zfits events: R0→R1 {calib_rate:.0} events/s; R0→R1→DL1 {full_rate:.0} events/s (one core)",
        zfits_events.len()
    );
}

/// Part 2: a simulated night.
fn simulated_night(geom: &CameraGeometry, window: &extract::Window) {
    use sst1mflow::raw_night::{self, NightSpec};
    let made;
    let root = match std::env::var_os("SST1MFLOW_BENCH_NIGHT") {
        Some(r) => PathBuf::from(r),
        None => {
            let run_s: f64 = std::env::var("SST1MFLOW_BENCH_RUN_S").ok().and_then(|v| v.parse().ok()).unwrap_or(20.0);
            let per_wobble: u32 =
                std::env::var("SST1MFLOW_BENCH_RUNS_PER_WOBBLE").ok().and_then(|v| v.parse().ok()).unwrap_or(5);
            made = std::env::temp_dir().join(format!("sst1mflow-bench-night-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&made);
            let mut spec = NightSpec::new((2026, 12, 5), 1).unwrap();
            spec.run_duration_s = run_s;
            spec.runs_per_wobble = per_wobble;
            let site = raw_night::shipped_site().unwrap();
            let t = Instant::now();
            let runs = raw_night::simulate_night(&spec, &made, site, &|_| {}).unwrap();
            let events: u64 = runs.iter().map(|o| o.events[0].0 + o.events[1].0).sum();
            println!(
                "\nsimulated night: {} runs × 2 telescopes of {run_s} s science runs, {events} events, made in {:.1} s ({:.0} events/s on 2 cores)",
                runs.len(),
                t.elapsed().as_secs_f64(),
                events as f64 / t.elapsed().as_secs_f64()
            );
            made.clone()
        }
    };
    let truth: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(find_night_json(&root)).unwrap()).unwrap();
    let runs = truth["runs"].as_array().unwrap();
    let files: Vec<PathBuf> = runs
        .iter()
        .flat_map(|r| r["files"].as_array().unwrap().iter().map(|f| root.join(f.as_str().unwrap())))
        .collect();
    let science: Vec<PathBuf> = runs
        .iter()
        .filter(|r| r["kind"] == "science")
        .flat_map(|r| r["files"].as_array().unwrap().iter().map(|f| root.join(f.as_str().unwrap())))
        .collect();
    // Decoding, one core, every file.
    let (mut n_events, mut bytes, mut seconds) = (0u64, 0u64, 0.0f64);
    let mut e = DigicamEvent::default();
    for f in &files {
        bytes += std::fs::metadata(f).unwrap().len();
        let t = Instant::now();
        let mut r = DigicamReader::open(f).unwrap();
        while r.read_into(&mut e).unwrap() {
            n_events += 1;
        }
        seconds += t.elapsed().as_secs_f64();
    }
    let rate = n_events as f64 / seconds;
    let file_mb = bytes as f64 / 1e6 / seconds;
    let samples_mb = n_events as f64 * (1296 * N_SAMPLES * 2) as f64 / 1e6 / seconds;
    println!(
        "zfits decoding, one core, {} files: {n_events} events, {rate:.0} events/s ({:.2}× the {BEFORE_NIGHT_DECODE_EVENTS_PER_S:.0} before the decoder work, {:.2}× the {PREVIOUS_NIGHT_DECODE_EVENTS_PER_S:.0} of its previous step), {file_mb:.0} MB/s of file, {samples_mb:.0} MB/s of decoded samples",
        files.len(),
        rate / BEFORE_NIGHT_DECODE_EVENTS_PER_S,
        rate / PREVIOUS_NIGHT_DECODE_EVENTS_PER_S,
    );
    // Where an event's time goes, one core, on the first science run's events.
    let first = &science[0];
    let calibration = sst1mflow::io::calibration_tables::read_pixel_calibration(
        &root.join(truth["cameras"][0]["calibration_table"].as_str().unwrap()),
        1296,
    )
    .unwrap();
    let (dc_to_pe, _) = calibration.effective().unwrap();
    let (reps, decode_total) = timed(1.0, || {
        let mut r = DigicamReader::open(first).unwrap();
        while r.read_into(&mut e).unwrap() {}
    });
    let mut r = DigicamReader::open(first).unwrap();
    let mut events = Vec::new();
    while r.read_into(&mut e).unwrap() && events.len() < 1000 {
        events.push(e.clone());
    }
    let decode_s = decode_total / (reps as f64 * r.n_events as f64);
    let n = events.len();
    // The physics as the stage runs it: one event at a time through the same buffers, each
    // step timed.
    let (mut adc, mut r1) = (vec![0.0f32; 1296 * N_SAMPLES], vec![0.0f32; 1296 * N_SAMPLES]);
    let (mut image, mut peak, mut mask) = (vec![0.0f32; 1296], vec![0.0f32; 1296], vec![false; 1296]);
    let cuts = clean::Tailcuts { boundary: 4.0, min_picture_neighbors: 2, keep_isolated: false };
    let thresholds = vec![8.0; 1296];
    let mut step = [0.0f64; 5];
    let mut done = 0usize;
    let started = Instant::now();
    while started.elapsed().as_secs_f64() < 2.0 {
        for ev in &events {
            let t0 = Instant::now();
            let max_adc = calibrate::r0_to_r1(&ev.samples, &ev.baselines, &dc_to_pe, 1.0, N_SAMPLES, &mut r1);
            let t1 = Instant::now();
            extract::local_peak_window_sum(&r1, N_SAMPLES, window, &mut image, &mut peak);
            let t2 = Instant::now();
            if max_adc > calibrate::SATURATION_THRESHOLD_ADC {
                calibrate::subtract_baselines(&ev.samples, &ev.baselines, N_SAMPLES, &mut adc);
                calibrate::correct_saturation(&adc, &r1, N_SAMPLES, SAMPLE_NS as f32, &mut image, &mut peak);
            }
            let t3 = Instant::now();
            clean::tailcuts_clean(geom, &image, &thresholds, &cuts, &mut mask);
            clean::time_delta_clean(geom, &peak, 1, 8.0, &mut mask);
            let t4 = Instant::now();
            std::hint::black_box(params::image_parameters(geom, &image, &peak, &mask));
            let t5 = Instant::now();
            for (k, (a, b)) in [(t0, t1), (t1, t2), (t2, t3), (t3, t4), (t4, t5)].iter().enumerate() {
                step[k] += (*b - *a).as_secs_f64();
            }
        }
        done += n;
    }
    let [calib_s, extract_s, saturation_s, clean_s, params_s] = step.map(|s| s / done as f64);
    // What r0-dl1 runs instead of the two steps above: the charges straight from the decoded
    // tile (only each pixel's window calibrated), on the same run's first events.
    let factors: Vec<f32> = dc_to_pe.iter().map(|&d| calibrate::r1_factor(d, 1.0)).collect();
    let no_bad = vec![false; 1296];
    let (mut from_tile_s, mut from_tile_n) = (0.0f64, 0usize);
    let started = Instant::now();
    while started.elapsed().as_secs_f64() < 2.0 {
        let mut r = DigicamReader::open(first).unwrap();
        let mut in_pass = 0;
        while let Some(tile) = r.next_tile().unwrap() {
            let take = tile.n_events().min(n - in_pass);
            for k in 0..take {
                let ev = tile.event(k);
                let readout = calibrate::ReadoutEvent {
                    samples: ev.samples,
                    baselines_x16: ev.baselines,
                    pixel_indices: ev.pixel_indices,
                    n_samples: ev.n_samples,
                };
                let t = Instant::now();
                std::hint::black_box(extract::local_peak_window_sum_r0(
                    &readout, &factors, &no_bad, window, &mut image, &mut peak,
                ));
                from_tile_s += t.elapsed().as_secs_f64();
            }
            (in_pass, from_tile_n) = (in_pass + take, from_tile_n + take);
            r.reuse_tile(tile);
            if in_pass == n {
                break;
            }
        }
    }
    let from_tile_s = from_tile_s / from_tile_n.max(1) as f64;
    let physics_s = calib_s + extract_s + saturation_s + clean_s + params_s;
    let total = decode_s + physics_s;
    println!(
        "where an event's time goes, one core (decoding: all {} events of {}; physics: its first {n}, one at a time through the same buffers, as the stage runs them):",
        r.n_events,
        first.file_name().unwrap().to_string_lossy()
    );
    for (what, s) in [
        ("zfits decoding", decode_s),
        ("R0→R1 calibration", calib_s),
        ("charge extraction", extract_s),
        ("saturation check", saturation_s),
        ("cleaning (tailcuts + time)", clean_s),
        ("image parameters", params_s),
    ] {
        println!("  {what:<28} {:>8.1} µs  {:>5.1}%", s * 1e6, 100.0 * s / total);
    }
    println!("  {:<28} {:>8.1} µs  = {:.0} events/s per core", "total", total * 1e6, 1.0 / total);
    println!(
        "  r0-dl1 replaces R0→R1 and the extraction by the charges straight from the decoded tile: {:.1} µs (against {:.1} µs for the two; then {:.0} events/s per core in all)",
        from_tile_s * 1e6,
        (calib_s + extract_s) * 1e6,
        1.0 / (total - calib_s - extract_s + from_tile_s)
    );
    // The stage end to end: sst1mflow r0-dl1 on the science runs, both cores.
    let store = std::env::temp_dir().join(format!("sst1mflow-bench-night-store-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&store);
    let mut science_events = 0u64;
    for f in &science {
        science_events += DigicamReader::open(f).unwrap().n_events;
    }
    // One recipe, both telescopes' runs as activities of one engine run on both cores (as the
    // nightly processing runs them).
    std::fs::create_dir_all(&store).unwrap();
    let mut inputs = serde_json::json!({
        "subarray": {"kind": "subarray", "paths": [Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/sst1mpipe_data/sst1m_array.h5")]},
    });
    let mut steps = Vec::new();
    for tel in [1usize, 2] {
        let calib = root.join(truth["cameras"][tel - 1]["calibration_table"].as_str().unwrap());
        let files: Vec<&PathBuf> = science
            .iter()
            .filter(|f| f.file_name().unwrap().to_string_lossy().starts_with(&format!("SST1M{tel}_")))
            .collect();
        inputs[format!("calibration_{tel}")] = serde_json::json!({"kind": "calibration", "paths": [calib]});
        inputs[format!("runs_{tel}")] = serde_json::json!({"kind": "r0", "paths": files});
        steps.push(serde_json::json!({
            "name": format!("dl1-tel{tel}"), "stage": "r0-dl1", "foreach": "r0",
            "params": {"tel_id": 20 + tel},
            "inputs": {"r0": format!("runs_{tel}"), "calibration": format!("calibration_{tel}"), "subarray": "subarray"},
        }));
    }
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/sst1mpipe_data/sst1mpipe_data_config.json");
    let recipe = store.join("r0_dl1_night.json");
    let recipe_json = serde_json::json!({"name": "bench-r0-dl1", "config": config, "inputs": inputs, "steps": steps});
    std::fs::write(&recipe, serde_json::to_vec_pretty(&recipe_json).unwrap()).unwrap();
    let sst1mflow = |args: &[&str]| {
        let status = std::process::Command::new(env!("CARGO_BIN_EXE_sst1mflow"))
            .arg("--store")
            .arg(&store)
            .arg("--quiet")
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "sst1mflow {args:?}");
    };
    let recipe_arg = recipe.to_str().unwrap();
    let t = Instant::now();
    sst1mflow(&["run", recipe_arg, "-j", "2"]);
    let s = t.elapsed().as_secs_f64();
    println!(
        "sst1mflow r0-dl1 on {} science files ({science_events} events), both cores, new raw inputs (SHA-256 of {:.1} GB for their content address included): {s:.1} s, {:.0} events/s ({:.2}× the {BEFORE_NIGHT_R0_DL1_EVENTS_PER_S:.0} before the decoder work, {:.2}× the {PREVIOUS_NIGHT_R0_DL1_EVENTS_PER_S:.0} of its previous step, both on another host; {:.2}× the {LAST_STOP_R0_DL1_EVENTS_PER_S:.0} of the last stop on this host; target 10,000)",
        science.len(),
        science.iter().map(|f| std::fs::metadata(f).unwrap().len()).sum::<u64>() as f64 / 1e9,
        science_events as f64 / s,
        science_events as f64 / s / BEFORE_NIGHT_R0_DL1_EVENTS_PER_S,
        science_events as f64 / s / PREVIOUS_NIGHT_R0_DL1_EVENTS_PER_S,
        science_events as f64 / s / LAST_STOP_R0_DL1_EVENTS_PER_S,
    );
    // Reprocessing: the same runs again with their DL1 invalidated (as after a calibration
    // fix), the raw inputs already registered.
    sst1mflow(&["invalidate", "--stage", "r0-dl1", "--reason", "bench: reprocessing"]);
    let t = Instant::now();
    sst1mflow(&["run", recipe_arg, "-j", "2"]);
    let s = t.elapsed().as_secs_f64();
    println!(
        "sst1mflow r0-dl1 again (DL1 invalidated, raw inputs registered): {s:.1} s, {:.0} events/s ({:.2}× the {LAST_STOP_REPROCESS_EVENTS_PER_S:.0} of the last stop on this host; target 10,000)",
        science_events as f64 / s,
        science_events as f64 / s / LAST_STOP_REPROCESS_EVENTS_PER_S,
    );
    let _ = std::fs::remove_dir_all(&store);
    if std::env::var_os("SST1MFLOW_BENCH_NIGHT").is_none() {
        let _ = std::fs::remove_dir_all(&root);
    }
}

fn find_night_json(root: &Path) -> PathBuf {
    let truth = root.join("truth");
    let day = std::fs::read_dir(&truth).unwrap().flatten().next().expect("a night under truth/").path();
    day.join("night.json")
}
