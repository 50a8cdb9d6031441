//! Decoding speed of the native raw-input readers on the real sample files, against the
//! physics that follows: zfits (DigiCam R0) and sim_telarray (EventIO) read rates in MB/s of
//! file and events/s, the R0→R1 calibration, and R1→DL1 (extraction, cleaning, parameters) on
//! the same events, each on one core. Prints figures, asserts nothing. Skips files that are
//! absent (the shared data folder).
use sst1mflow::image::{calibrate, clean, extract, params};
use sst1mflow::instrument::{camera::CameraGeometry, pulse, N_SAMPLES, SAMPLE_NS};
use sst1mflow::io::simtel::SimtelReader;
use sst1mflow::io::zfits::{DigicamEvent, DigicamReader};
use std::path::{Path, PathBuf};
use std::time::Instant;

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
    if zfits_events.is_empty() {
        return;
    }
    // The physics on the same zfits events: R0→R1, then R1→DL1.
    let dc_to_pe = vec![23.5f64; 1296];
    let mut adc = vec![0.0f32; 1296 * N_SAMPLES];
    let mut r1 = vec![0.0f32; 1296 * N_SAMPLES];
    let (reps, s) = timed(2.0, || {
        for e in &zfits_events {
            calibrate::r0_to_r1(&e.samples, &e.baselines, &dc_to_pe, 0.98, N_SAMPLES, &mut adc, &mut r1);
        }
    });
    let calib_rate = (zfits_events.len() * reps as usize) as f64 / s;
    let mut image = vec![0.0f32; 1296];
    let mut peak = vec![0.0f32; 1296];
    let mut mask = vec![false; 1296];
    let (reps, s) = timed(2.0, || {
        for e in &zfits_events {
            calibrate::r0_to_r1(&e.samples, &e.baselines, &dc_to_pe, 0.98, N_SAMPLES, &mut adc, &mut r1);
            extract::local_peak_window_sum(&r1, N_SAMPLES, &window, &mut image, &mut peak);
            calibrate::correct_saturation(&adc, &r1, N_SAMPLES, SAMPLE_NS as f32, &mut image, &mut peak);
            clean::tailcuts_clean(&geom, &image, &thresholds, &cuts, &mut mask);
            clean::time_delta_clean(&geom, &peak, 1, 8.0, &mut mask);
            std::hint::black_box(params::image_parameters(&geom, &image, &peak, &mask));
        }
    });
    let full_rate = (zfits_events.len() * reps as usize) as f64 / s;
    println!(
        "physics on {} zfits events: R0→R1 {calib_rate:.0} events/s; R0→R1→DL1 {full_rate:.0} events/s (one core)",
        zfits_events.len()
    );
}
