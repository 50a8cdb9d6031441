//! Runs the R1 → DL1 image chain (LocalPeakWindowSum with integration correction, tailcuts
//! plus time-delta cleaning, image parameters) on raw waveforms, for cross-checks against
//! other implementations (tests/interop/test_image_vs_ctapipe.py).
//!
//! Usage: image_pipeline WAVEFORMS.f32 N_EVENTS PICTURE BOUNDARY MIN_NEIGHBOURS [DL1.h5]
//! The file holds little-endian f32 waveforms, event × pixel × sample (1296 × 50 per event).
//! Prints JSON: the integration correction and, per event, image, peak_time, mask, parameters.
use serde_json::{json, Value};
use sst1mflow::image::{clean, extract, params};
use sst1mflow::instrument::{camera::CameraGeometry, pulse, N_SAMPLES, SAMPLE_NS};

fn stats(s: &params::Statistics) -> Value {
    json!({"max": s.max, "min": s.min, "mean": s.mean, "std": s.std, "skewness": s.skewness, "kurtosis": s.kurtosis})
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    assert!(
        args.len() == 6 || args.len() == 7,
        "usage: image_pipeline WAVEFORMS.f32 N_EVENTS PICTURE BOUNDARY MIN_NEIGHBOURS [DL1.h5]"
    );
    let mut writer = args.get(6).map(|path| {
        let telescope = sst1mflow::instrument::TelescopeDescription::model(1, [0.0; 3]);
        sst1mflow::io::dl1::Dl1Writer::create(
            std::path::Path::new(path),
            &telescope,
            sst1mflow::io::hdf5_table::Storage::Deflate,
            &"0".repeat(64),
            "test",
        )
        .expect("DL1 file can be created")
    });
    let bytes = std::fs::read(&args[1]).expect("waveform file");
    let n_events: usize = args[2].parse().unwrap();
    let picture: f64 = args[3].parse().unwrap();
    let cuts = clean::Tailcuts {
        boundary: args[4].parse().unwrap(),
        min_picture_neighbors: args[5].parse().unwrap(),
        keep_isolated: false,
    };
    let geom = CameraGeometry::digicam();
    let n = geom.n_pixels();
    let per_event = n * N_SAMPLES;
    assert_eq!(bytes.len(), n_events * per_event * 4, "file size does not match the event count");
    let waveforms: Vec<f32> = bytes.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    let correction =
        extract::integration_correction(&pulse::reference_table(), pulse::REFERENCE_STEP_NS, SAMPLE_NS, 7, 3);
    let window = extract::Window { width: 7, shift: 3, sample_ns: SAMPLE_NS, correction };
    let thresholds = vec![picture; n];
    let mut events = Vec::new();
    let (mut image, mut peak_time, mut mask) = (vec![0.0f32; n], vec![0.0f32; n], vec![false; n]);
    for e in 0..n_events {
        let w = &waveforms[e * per_event..(e + 1) * per_event];
        extract::local_peak_window_sum(w, N_SAMPLES, &window, &mut image, &mut peak_time);
        clean::tailcuts_clean(&geom, &image, &thresholds, &cuts, &mut mask);
        clean::time_delta_clean(&geom, &peak_time, 1, 8.0, &mut mask);
        let computed = params::image_parameters(&geom, &image, &peak_time, &mask);
        if let Some(w) = writer.as_mut() {
            let row = sst1mflow::io::dl1::ImageRow {
                obs_id: 1,
                event_id: e as i64,
                tel_id: 1,
                image: image.clone().try_into().unwrap(),
                peak_time: peak_time.clone().try_into().unwrap(),
                image_mask: mask.clone().try_into().unwrap(),
                is_valid: computed.is_some(),
            };
            w.write(
                row,
                sst1mflow::io::dl1::ParametersRow::new(1, e as i64, 1, (f64::NAN, f64::NAN), computed.as_ref(), None),
            )
            .unwrap();
        }
        let p = computed.map(|p| {
            let h = &p.hillas;
            json!({
                "intensity": h.intensity, "x": h.x, "y": h.y, "r": h.r, "phi": h.phi, "length": h.length,
                "length_uncertainty": h.length_uncertainty, "width": h.width, "width_uncertainty": h.width_uncertainty,
                "psi": h.psi, "psi_uncertainty": h.psi_uncertainty, "transverse_cog_uncertainty": h.transverse_cog_uncertainty,
                "skewness": h.skewness, "kurtosis": h.kurtosis,
                "leakage_pixels_width_1": p.leakage_pixels_width_1, "leakage_pixels_width_2": p.leakage_pixels_width_2,
                "leakage_intensity_width_1": p.leakage_intensity_width_1, "leakage_intensity_width_2": p.leakage_intensity_width_2,
                "concentration_cog": p.concentration_cog, "concentration_core": p.concentration_core,
                "concentration_pixel": p.concentration_pixel,
                "timing_slope": p.timing_slope, "timing_intercept": p.timing_intercept, "timing_deviation": p.timing_deviation,
                "n_pixels": p.n_pixels, "n_islands": p.n_islands, "n_small_islands": p.n_small_islands,
                "n_medium_islands": p.n_medium_islands, "n_large_islands": p.n_large_islands,
                "intensity_statistics": stats(&p.intensity_statistics), "peak_time_statistics": stats(&p.peak_time_statistics),
            })
        });
        events.push(json!({"image": image, "peak_time": peak_time, "mask": mask, "params": p}));
    }
    if let Some(w) = writer {
        w.finish().expect("DL1 file completes");
    }
    println!("{}", json!({"integration_correction": correction, "events": events}));
}
