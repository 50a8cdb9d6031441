//! Golden tests of the native raw-input readers (zfits R0, sim_telarray EventIO) against the
//! values listed in ../shared/data/README.md (read there with protozfits 2.13.1 and eventio
//! 2.1.1), and their behaviour on damaged files. Each test skips, saying why, when the shared
//! data folder is absent.
mod common;
use sst1mflow::io::zfits::{DigicamReader, ZFile};
use std::path::PathBuf;

fn data(rel: &str) -> Option<PathBuf> {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data").join(rel);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("skipped: sample file {} not found (the shared data folder is absent)", p.display());
        None
    }
}

struct Summary {
    n: usize,
    first_sum: i64,
    first_min: i16,
    first_max: i16,
    first_baselines: i64,
    first_type: u32,
    first_clock: i64,
    event_numbers: Vec<u32>,
    first_indices: Vec<u16>,
}

fn summarise(path: &std::path::Path) -> Summary {
    let mut r = DigicamReader::open(path).unwrap_or_else(|e| panic!("{e}"));
    let mut s = Summary {
        n: 0,
        first_sum: 0,
        first_min: 0,
        first_max: 0,
        first_baselines: 0,
        first_type: 0,
        first_clock: 0,
        event_numbers: vec![],
        first_indices: vec![],
    };
    while let Some(e) = r.next_event().unwrap_or_else(|e| panic!("{e}")) {
        assert_eq!(e.samples.len(), 1296 * 50);
        assert_eq!(e.n_samples, 50);
        if s.n == 0 {
            s.first_sum = e.samples.iter().map(|&x| x as i64).sum();
            s.first_min = *e.samples.iter().min().unwrap();
            s.first_max = *e.samples.iter().max().unwrap();
            s.first_baselines = e.baselines.iter().map(|&x| x as i64).sum();
            s.first_type = e.event_type;
            s.first_clock = e.local_clock_ns;
            s.first_indices = e.pixel_indices[..5].to_vec();
        }
        s.event_numbers.push(e.event_number);
        s.n += 1;
    }
    s
}

#[test]
fn zfits_sst1m_2018_golden_values() {
    let Some(p) = data("r0_zfits/example_SST1M_20180822.fits.fz") else { return };
    let s = summarise(&p);
    assert_eq!(s.n, 32);
    assert_eq!(s.event_numbers, (1027888..=1027919).collect::<Vec<u32>>());
    assert_eq!(s.first_sum, 21338298);
    assert_eq!((s.first_min, s.first_max), (204, 416));
    assert_eq!(s.first_baselines, 6781212);
    assert_eq!(s.first_type, 1);
    assert_eq!(s.first_clock, 1534982401 * 1_000_000_000 + 673508228);
    assert_eq!(s.first_indices, vec![425, 461, 353, 389, 352]);
}

#[test]
fn zfits_2017_files_golden_values() {
    let Some(p100) = data("r0_zfits/example_100evts.fits.fz") else { return };
    let Some(p10) = data("r0_zfits/example_10evts.fits.fz") else { return };
    let s = summarise(&p100);
    assert_eq!(s.n, 100);
    assert_eq!(s.event_numbers, (97750287..=97750386).collect::<Vec<u32>>());
    assert_eq!(s.first_sum, 20059946);
    assert_eq!(s.first_baselines, 398918);
    assert_eq!(s.first_clock, 1509415494 * 1_000_000_000 + 406789700);
    // The 10-event file holds the first 10 of the same events, byte for byte in content.
    let mut a = DigicamReader::open(&p10).unwrap();
    let mut b = DigicamReader::open(&p100).unwrap();
    let mut n = 0;
    while let Some(x) = a.next_event().unwrap() {
        let y = b.next_event().unwrap().unwrap();
        assert_eq!(x.event_number, y.event_number);
        assert!(x.samples == y.samples && x.baselines == y.baselines && x.local_clock_ns == y.local_clock_ns);
        n += 1;
    }
    assert_eq!(n, 10);
}

#[test]
fn zfits_digicampipe_file_with_config_table() {
    let Some(p) = data("r0_zfits/SST1M_01_20180822_001.fits.fz") else { return };
    let f = ZFile::open(&p).unwrap();
    let names: Vec<&str> = f.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["DigicamConfig", "Events"]);
    // The configuration table decodes too (values read with protozfits 2.13.1): 39 boards,
    // serial numbers 0, 2120021, 2120022, …; hv 0, 2, 2, …
    let mut f = f;
    let t = f.table("DigicamConfig").unwrap();
    let tile = f.read_tile(t, 0).unwrap();
    let sn = f.tables[t].column("sn").unwrap();
    let sn: Vec<u32> = tile.arrays(sn)[0].chunks(4).map(|b| u32::from_le_bytes(b.try_into().unwrap())).collect();
    assert_eq!((sn.len(), &sn[..3]), (39, &[0, 2120021, 2120022][..]));
    let hv = f.tables[t].column("hv").unwrap();
    assert_eq!(&tile.arrays(hv)[0][..5], &[0, 2, 2, 2, 2]);
    let s = summarise(&p);
    assert_eq!(s.n, 1);
    assert_eq!(s.event_numbers, vec![60636]);
    assert_eq!(s.first_type, 8);
    assert_eq!(s.first_sum, 18555097);
    assert_eq!(s.first_baselines, 5936584);
}

#[test]
fn zfits_r1v1_zstd_tables_decode() {
    let Some(p) = data("r0_zfits/10_CTA_R1_dummy_evts.fits.fz") else { return };
    let mut f = ZFile::open(&p).unwrap();
    let t = f.table("Events").unwrap();
    assert_eq!(f.tables[t].message_type, "R1v1.Event");
    assert_eq!(f.tables[t].n_rows, 100);
    assert_eq!(f.tables[t].n_tiles(), 10);
    let event_id = f.tables[t].column("event_id").unwrap();
    let mut ids = Vec::new();
    for tile in 0..10 {
        let tile = f.read_tile(t, tile).unwrap();
        ids.extend(tile.scalars(event_id, 8).map(|b| u64::from_le_bytes(b.try_into().unwrap())));
    }
    // Values read with protozfits 2.13.1: every event of this dummy file has event_id 10,
    // tel_id 11, event_time_s 14 and a 1000-sample waveform 10, 11, 12, … summing to 509500.
    assert_eq!(ids, vec![10u64; 100]);
    let tile = f.read_tile(t, 9).unwrap();
    let tel = f.tables[t].column("tel_id").unwrap();
    assert!(tile.scalars(tel, 4).all(|b| i32::from_le_bytes(b.try_into().unwrap()) == 11));
    let waveform = f.tables[t].column("waveform").unwrap();
    let last = tile.arrays(waveform)[9];
    let values: Vec<i64> = last.chunks(2).map(|b| i16::from_le_bytes([b[0], b[1]]) as i64).collect();
    assert_eq!(values.len(), 1000);
    assert_eq!(&values[..3], &[10, 11, 12]);
    assert_eq!(values.iter().sum::<i64>(), 509500);
    // A DigiCam reader refuses it by name.
    let err = DigicamReader::open(&p).err().unwrap().to_string();
    assert!(err.contains("R1v1.Event") && err.contains("DataModel.CameraEvent"), "{err}");
}

#[test]
fn zfits_damaged_files_give_errors_naming_file_and_offset() {
    let Some(p) = data("r0_zfits/example_SST1M_20180822.fits.fz") else { return };
    let bytes = std::fs::read(&p).unwrap();
    let dir = std::env::temp_dir().join(format!("sst1mflow-zfits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let read_all = |b: &[u8], name: &str| -> Result<usize, String> {
        let f = dir.join(name);
        std::fs::write(&f, b).unwrap();
        let mut r = DigicamReader::open(&f).map_err(|e| e.to_string())?;
        let mut n = 0;
        while r.next_event().map_err(|e| e.to_string())?.is_some() {
            n += 1;
        }
        Ok(n)
    };
    // Truncated at a block boundary and mid-block.
    for cut in [2880 * 10, bytes.len() - 2880, 12345] {
        let err = read_all(&bytes[..cut], "cut.fits.fz").unwrap_err();
        assert!(err.contains("cut.fits.fz") && err.contains("byte") && err.contains("truncated"), "{err}");
    }
    // Not FITS at all.
    let err = read_all(&[7u8; 2880], "junk.fits.fz").unwrap_err();
    assert!(err.contains("junk.fits.fz") && err.contains("not a FITS file"), "{err}");
    // Flipped bytes all over the heap: an error or the right number of events, never a panic.
    let mut state = 0x9e3779b97f4a7c15u64;
    for _ in 0..40 {
        let mut b = bytes.clone();
        for _ in 0..8 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let at = 5760 + (state as usize) % (b.len() - 5760);
            b[at] ^= 1 << (state >> 60 & 7);
        }
        if let Err(e) = read_all(&b, "flipped.fits.fz") {
            assert!(e.contains("flipped.fits.fz"), "{e}");
        }
    }
    std::fs::remove_dir_all(&dir).ok();
}

mod simtel {
    use super::data;
    use sst1mflow::io::simtel::SimtelReader;

    fn all_events(path: &std::path::Path) -> (SimtelReader, Vec<sst1mflow::io::simtel::SimtelEvent>) {
        let mut r = SimtelReader::open(path).unwrap_or_else(|e| panic!("{e}"));
        let mut events = Vec::new();
        while let Some(e) = r.next_event().unwrap_or_else(|e| panic!("{e}")) {
            events.push(e);
        }
        (r, events)
    }

    #[test]
    fn sst1m_test_file_golden_values() {
        let Some(p) = data("mc_simtel/simtel_test_file.simtel.gz") else { return };
        let (r, events) = all_events(&p);
        let ids: Vec<i64> = events.iter().map(|e| e.event_id).collect();
        assert_eq!(ids, vec![1102, 1600, 1601, 3308, 4209, 6205, 7300, 9205, 10000]);
        let energies: Vec<f64> = events.iter().map(|e| (e.shower.energy_tev as f64 * 1e4).round() / 1e4).collect();
        assert_eq!(energies, vec![1.4841, 9.6968, 9.6968, 0.8477, 1.2990, 1.2469, 5.9570, 8.9818, 1.0737]);
        let first = &events[0].telescopes[0];
        assert_eq!((first.tel_id, first.n_gains, first.n_pixels, first.n_samples), (1, 1, 1296, 50));
        assert_eq!(first.adc_samples.iter().map(|&x| x as u64).sum::<u64>(), 18304257);
        // Every use of every shower is counted (100 showers × 10 uses).
        assert_eq!(r.n_mc_events, 1000);
        let mc = &r.mc_run_headers[0];
        assert_eq!((mc.n_showers, mc.n_use, mc.spectral_index), (100, 10, -2.0));
        assert_eq!((mc.energy_range_tev, mc.core_range_m), ((0.3, 200.0), (0.0, 1000.0)));
        assert_eq!(mc.viewcone_deg, (0.0, 0.0));
        let cam = &r.cameras[&1];
        assert_eq!((cam.n_pixels, cam.effective_focal_length_m), (1296, None));
        assert!((cam.focal_length_m - 5.6).abs() < 1e-6);
        assert!((cam.pixel_area[0] - 4.7016e-4).abs() < 1e-8);
        let rh = r.run_header.as_ref().unwrap();
        assert_eq!(rh.tel_ids, vec![1]);
        // Calibration as eventio reads it: pedestal 14074.335 over 50 slices, 0.05461669 p.e./ADC.
        let cal = first.calibration.as_ref().unwrap();
        assert!((cal.pedestal_per_sample[0] - 14074.335 / 50.0).abs() < 1e-3);
        assert!((cal.dc_to_pe[0] - 0.05461669).abs() < 1e-7);
        // True images (photo-electrons stored): total p.e. of event 1102 is 289, of 7300 1357.
        let pe = |i: usize| events[i].telescopes[0].true_image.as_ref().unwrap().iter().sum::<i32>();
        assert_eq!((pe(0), pe(6)), (289, 1357));
        assert_eq!(first.pointing_rad, Some((0.0, std::f32::consts::FRAC_PI_2)));
        assert!(r.history.iter().any(|l| l.contains("QUANTUM_EFF")));
        // Camera organisation, pixel settings and pixel timing as eventio reads them.
        let org = &r.organizations[&1];
        assert_eq!((org.n_pixels, org.n_drawers, org.n_gains, org.n_sectors), (1296, 109, 1, 432));
        assert_eq!(
            (&org.drawer[..3], &org.sectors[0][..], &org.sectors[1][..]),
            (&[76, 108, 76][..], &[0, 1, 2, 4][..], &[0, 1, 3, 4, 7][..])
        );
        let ps = &r.pixel_settings[&1];
        assert_eq!((ps.time_slice_ns, ps.sum_bins, ps.ref_step_ns), (Some(4.0), Some(50), Some(0.4)));
        assert_eq!((ps.ref_shape.len(), ps.ref_shape[0].len()), (1, 490));
        // eventio's float16 values, summed in float64: 37.4845.
        assert!((ps.ref_shape[0].iter().map(|&v| v as f64).sum::<f64>() - 37.4845).abs() < 1e-3);
        assert_eq!(ps.ref_shape[0][..3], [-0.002981186, -0.0041999817, -0.005420685]);
        let pt = first.pixel_timing.as_ref().unwrap();
        assert_eq!((pt.n_types, &pt.time_type[..]), (7, &[1i16, 2, 2, 2, 4, 4, 5][..]));
        let with_time = (0..1296).filter(|p| !pt.times[p * 7].is_nan()).count();
        let total: f64 = pt.times.iter().filter(|t| !t.is_nan()).map(|&t| t as f64).sum();
        assert_eq!(with_time, 119);
        assert!((total - 14420.35).abs() < 0.05, "{total}");
    }

    #[test]
    fn one_event_file_golden_value() {
        let Some(p) = data("mc_simtel/1_triggered_events_10_TeV.simtel.gz") else { return };
        let (_, events) = all_events(&p);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].event_id, 102);
        assert_eq!(events[0].telescopes[0].adc_samples.iter().map(|&x| x as u64).sum::<u64>(), 3254723);
    }

    #[test]
    fn multi_camera_and_zstd_prod6_files_are_read_or_skipped_with_counts() {
        let Some(calib) = data("mc_simtel/calib_events.simtel.gz") else { return };
        let (r, events) = all_events(&calib);
        assert!(events.is_empty(), "only a calibration event in this file");
        assert_eq!(r.n_calibration_events, 1);
        assert_eq!(r.cameras.len(), 7);
        assert!(r.cameras.values().any(|c| c.n_pixels == 1296));
        let Some(prod6) = data("mc_simtel/gamma_prod6_tel_event_header_v4.simtel.zst") else { return };
        let (r, events) = all_events(&prod6);
        assert!(!events.is_empty());
        assert!(r.cameras.values().all(|c| c.effective_focal_length_m.is_some()));
        // Object versions newer than we read are counted, not fatal.
        eprintln!("prod6 skipped: {:?}", r.skipped);
        for e in &events {
            for t in &e.telescopes {
                assert_eq!(t.adc_samples.len(), t.n_gains * t.n_pixels * t.n_samples);
            }
        }
    }

    #[test]
    fn damaged_simtel_files_give_errors_naming_file_and_offset() {
        let Some(p) = data("mc_simtel/1_triggered_events_10_TeV.simtel.gz") else { return };
        let raw = {
            use std::io::Read;
            let mut out = Vec::new();
            flate2::read::MultiGzDecoder::new(std::fs::File::open(&p).unwrap()).read_to_end(&mut out).unwrap();
            out
        };
        let dir = std::env::temp_dir().join(format!("sst1mflow-simtel-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let read_all = |b: &[u8], name: &str| -> Result<usize, String> {
            let f = dir.join(name);
            std::fs::write(&f, b).unwrap();
            let mut r = SimtelReader::open(&f).map_err(|e| e.to_string())?;
            let mut n = 0;
            while r.next_event().map_err(|e| e.to_string())?.is_some() {
                n += 1;
            }
            Ok(n)
        };
        assert_eq!(read_all(&raw, "plain.simtel"), Ok(1));
        for cut in [3, 100, raw.len() / 2, raw.len() - 1] {
            let err = read_all(&raw[..cut], "cut.simtel").unwrap_err();
            assert!(err.contains("cut.simtel") && err.contains("byte") && err.contains("truncated"), "{err}");
        }
        let compressed = std::fs::read(&p).unwrap();
        let err = read_all(&compressed[..compressed.len() / 2], "cut.simtel.gz").unwrap_err();
        assert!(err.contains("cut.simtel.gz"), "{err}");
        let err = read_all(b"this is not a simtel file at all", "text.simtel").unwrap_err();
        assert!(err.contains("text.simtel") && err.contains("not an EventIO"), "{err}");
        let mut state = 0x2545f4914f6cdd1du64;
        for _ in 0..100 {
            let mut b = raw.clone();
            for _ in 0..4 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let at = (state as usize) % b.len();
                b[at] ^= 1 << (state >> 61);
            }
            if let Err(e) = read_all(&b, "flipped.simtel") {
                assert!(e.contains("flipped.simtel"), "{e}");
            }
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}

/// r0-dl1 on real sim_telarray and zfits files, inside recipes.
mod stage {
    use super::common::*;
    use super::data;
    use sst1mflow::io::dl1::Dl1Reader;
    use std::path::Path;

    fn config(dir: &Path, base: &str, tag: &str, edit: impl Fn(String) -> String) -> String {
        let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config").join(base)).unwrap();
        let name = format!("cfg-{tag}-{base}");
        write(&dir.join(&name), &edit(text));
        name
    }

    fn recipe(
        dir: &Path,
        name: &str,
        config: &str,
        inputs: &str,
        step_inputs: &str,
        params: &str,
    ) -> std::path::PathBuf {
        let path = dir.join(format!("{name}.json"));
        write(
            &path,
            &format!(
                r#"{{"name": "{name}", "config": "{config}", "inputs": {inputs},
                    "steps": [{{"name": "dl1", "stage": "r0-dl1", "inputs": {step_inputs}, "params": {params}}}]}}"#
            ),
        );
        path
    }

    #[test]
    fn sim_telarray_file_to_dl1_with_truth() {
        let Some(simtel) = data("mc_simtel/simtel_test_file.simtel.gz") else { return };
        let dir = TempDir::new("simtel-dl1");
        let store = dir.path().join("store");
        let inputs = format!(r#"{{"mc": {{"paths": ["{}"], "kind": "simtel"}}}}"#, simtel.display());
        // The sample's QE table has no sst1mpipe PDE factor: with the correction on, refused.
        let cfg = config(dir.path(), "sst1mpipe_mc_config.json", "pde", |t| t);
        let r = recipe(dir.path(), "pde", &cfg, &inputs, r#"{"r0": "mc"}"#, r#"{"tel_id": 1}"#);
        let (code, _, err) = run_json(&store, &r, &[]);
        assert_ne!(code, 0);
        assert!(err.contains("simtel_test_file.simtel.gz") && err.contains("qe_SST1M_5477_ave.dat"), "{err}");
        assert!(err.contains("qe_SST1M_5477_ave_TEL1_NSB136.0"), "{err}");
        assert!(!store.join("views/pde/dl1/all/dl1.h5").exists(), "nothing published for a refused run");
        // Without it: 9 triggered events with truth and the thrown-event description.
        let cfg = config(dir.path(), "sst1mpipe_mc_config.json", "nopde", |t| {
            t.replace("\"mc_correction_for_PDE\": true", "\"mc_correction_for_PDE\": false")
        });
        let r = recipe(dir.path(), "mc", &cfg, &inputs, r#"{"r0": "mc"}"#, r#"{"tel_id": 1}"#);
        let (code, report, err) = run_json(&store, &r, &[]);
        assert_eq!(code, 0, "{err}");
        let dl1 = view_target(&store, "mc/dl1/all/dl1.h5");
        let reader = Dl1Reader::open(&dl1).unwrap();
        assert_eq!(reader.n_events, 9);
        let rows = reader.read(0, 9).unwrap();
        let ids: Vec<i64> = rows.iter().map(|r| r.event_id).collect();
        assert_eq!(ids, vec![1102, 1600, 1601, 3308, 4209, 6205, 7300, 9205, 10000]);
        assert!((rows[0].true_energy - 1.4841).abs() < 1e-4);
        assert!(rows.iter().all(|r| r.true_shower_primary_id == 0 && (r.true_alt_tel - 90.0).abs() < 1e-4));
        let bright = rows.iter().filter(|r| r.camera_frame_hillas_intensity > 50.0).count();
        assert!(
            bright >= 5,
            "most events give images: {:?}",
            rows.iter().map(|r| r.camera_frame_hillas_intensity).collect::<Vec<_>>()
        );
        let run = reader.run.unwrap();
        assert_eq!((run.n_showers, run.shower_reuse), (100, 10));
        assert_eq!(run.simulation_info().n_showers, 1000.0);
        // sim_telarray's thrown-shower histogram (id 6), every shower use counted.
        let hist = &reader.shower_distributions;
        assert_eq!(hist.len(), 1);
        assert_eq!((hist[0].hist_id, hist[0].n_entries, hist[0].obs_id), (6, 1000, 3));
        assert_eq!(hist[0].counts.iter().sum::<f32>(), 1000.0);
        assert_eq!((hist[0].n_bins_energy(), hist[0].n_bins_core(), hist[0].bins_core_dist_m[200]), (120, 200, 2000.0));
        assert_eq!((run.energy_range_min as f32, run.energy_range_max as f32), (0.3, 200.0));
        assert_eq!(reader.showers.len(), 9);
        assert_eq!(reader.showers[6].n_photoelectrons, 1357);
        let key = report["activities"][0]["key"].as_str().unwrap().to_string();
        let log = stdout(&sst1mflow(&store, &["log", &key[..12]]));
        assert!(log.contains("sim_telarray run") && log.contains("1000 simulated shower uses"), "{log}");
        // Given as camera data (with a calibration table), refused by name.
        let table = dir.path().join("calib.txt");
        write(&table, "dc_to_pe calib_flag\n");
        let inputs2 = format!(
            r#"{{"mc": {{"paths": ["{}"], "kind": "simtel"}}, "cal": {{"paths": ["calib.txt"], "kind": "calibration"}}, "array": {{"paths": ["calib.txt"], "kind": "subarray"}}}}"#,
            simtel.display()
        );
        let r = recipe(
            dir.path(),
            "mixed",
            &cfg,
            &inputs2,
            r#"{"r0": "mc", "calibration": "cal", "subarray": "array"}"#,
            r#"{"tel_id": 1}"#,
        );
        let (code, _, err) = run_json(&store, &r, &[]);
        assert_ne!(code, 0);
        // The MC configuration has no camera-calibration settings: refused while planning.
        assert!(err.contains("telescope_calibration"), "{err}");
    }

    /// Models of telescope 2 (which serve telescope 22) from a small simulated training.
    fn tel2_models(dir: &Path, store: &Path) -> Vec<(&'static str, std::path::PathBuf)> {
        models_of(dir, store, 2)
    }

    /// Small forests of telescope `tel`, trained on the embedded simulator's DL1.
    fn models_of(dir: &Path, store: &Path, tel: u16) -> Vec<(&'static str, std::path::PathBuf)> {
        let cfg = config(dir, "sst1mpipe_mc_config.json", &format!("train{tel}"), |t| {
            let mut v: serde_json::Value = serde_json::from_str(&t).unwrap();
            v["random_forest_regressor_args"]["n_estimators"] = 8.into();
            v["random_forest_classifier_args"]["n_estimators"] = 8.into();
            serde_json::to_string_pretty(&v).unwrap()
        });
        let recipe = dir.join(format!("train{tel}.json"));
        write(
            &recipe,
            &format!(
                r#"{{"name": "train{tel}", "config": "{cfg}", "steps": [
    {{"name": "sim-g", "stage": "simulate", "params": {{"particle": "gamma", "tel_id": {tel}, "n_events": 600, "seed": 31, "viewcone_deg": 2.5, "energy_min_tev": 1, "max_impact_m": 300}}}},
    {{"name": "sim-p", "stage": "simulate", "params": {{"particle": "proton", "tel_id": {tel}, "n_events": 900, "seed": 32, "viewcone_deg": 3.0, "energy_min_tev": 2, "max_impact_m": 300}}}},
    {{"name": "dl1-g", "stage": "r0-dl1", "params": {{"tel_id": {tel}}}, "inputs": {{"r1": "sim-g.r1"}}}},
    {{"name": "dl1-p", "stage": "r0-dl1", "params": {{"tel_id": {tel}}}, "inputs": {{"r1": "sim-p.r1"}}}},
    {{"name": "train", "stage": "train-rfs", "params": {{"tel_id": {tel}}}, "inputs": {{"gamma": "dl1-g.dl1", "proton": "dl1-p.dl1"}}}}]}}"#
            ),
        );
        let (code, report, err) = run_json(store, &recipe, &[]);
        assert_eq!(code, 0, "{err}\n{report}");
        [("energy", "reg_energy"), ("disp_norm", "reg_disp_norm"), ("disp_sign", "class_disp_sign"), ("gh", "class_gh")]
            .into_iter()
            .map(|(role, file)| (role, view_target(store, &format!("train{tel}/train/all/{file}_tel_{tel:03}.rf"))))
            .collect()
    }

    /// ctapipe's own DL1 (ctapipe-process 0.28 on simtel_test_file, camera frame) as a dl1-dl2
    /// input: read by name with the truth joined from its shower table, its origin as its DL1
    /// settings, so our models are refused on it unless the contract is overridden; its
    /// telescope-frame twin is refused naming the frame.
    #[test]
    fn ctapipe_dl1_is_taken_by_dl1_dl2_with_its_origin_as_settings() {
        let Some(camframe) = data("dl1_reference/sst1m_camframe.dl1.h5") else { return };
        let Some(telframe) = data("dl1_reference/sst1m_telframe.dl1.h5") else { return };
        let dir = TempDir::new("import-dl1");
        let store = dir.path().join("store");
        let models = models_of(dir.path(), &store, 1);
        let cfg = config(dir.path(), "sst1mpipe_mc_config.json", "apply", |t| t);
        let run = |name: &str, file: &Path, params: &str| {
            let inputs: Vec<String> = models
                .iter()
                .map(|(role, path)| format!(r#""{role}": {{"paths": ["{}"], "kind": "model"}}"#, path.display()))
                .collect();
            let step_inputs: Vec<String> = models.iter().map(|(role, _)| format!(r#""{role}": "{role}""#)).collect();
            let recipe = dir.path().join(format!("{name}.json"));
            write(
                &recipe,
                &format!(
                    r#"{{"name": "{name}", "config": "{cfg}", "inputs": {{"dl1": {{"paths": ["{}"], "kind": "dl1"}}, {}}},
                        "steps": [{{"name": "dl2", "stage": "dl1-dl2", "params": {params}, "inputs": {{"dl1": "dl1", {}}}}}]}}"#,
                    file.display(),
                    inputs.join(", "),
                    step_inputs.join(", ")
                ),
            );
            run_json(&store, &recipe, &[])
        };
        let (code, _, err) = run("refused", &camframe, "{}");
        assert_ne!(code, 0);
        assert!(err.contains("imported.software") && err.contains("ctapipe 0.28.0"), "{err}");
        let (code, _, err) = run("telframe", &telframe, r#"{"override_contract": true}"#);
        assert_ne!(code, 0);
        assert!(err.contains("sst1m_telframe.dl1.h5") && err.contains("telescope frame"), "{err}");
        let (code, report, err) = run("applied", &camframe, r#"{"override_contract": true}"#);
        assert_eq!(code, 0, "{err}\n{report}");
        let dl2 = sst1mflow::io::dl2::Dl2Reader::open(&view_target(&store, "applied/dl2/all/dl2.h5")).unwrap();
        let rows = dl2.read(0, dl2.n_events).unwrap();
        assert_eq!(rows.len(), 9, "every event of ctapipe's table");
        let ids: Vec<i64> = rows.iter().map(|r| r.event_id).collect();
        assert_eq!(ids, vec![1102, 1600, 1601, 3308, 4209, 6205, 7300, 9205, 10000]);
        // The truth joined from ctapipe's shower table, the thrown showers from its run table.
        assert!((rows[0].true_energy - 1.4841).abs() < 1e-4, "{}", rows[0].true_energy);
        assert!(rows.iter().all(|r| (r.true_alt_tel - 90.0).abs() < 1e-4 && r.disp_norm.is_finite()));
        assert!(rows.iter().filter(|r| r.reco_energy.is_finite()).count() >= 5);
        let run = dl2.run.unwrap();
        assert_eq!((run.n_showers, run.shower_reuse), (100, 10));
        assert_eq!(dl2.shower_distributions.len(), 1);
        let settings: serde_json::Value = serde_json::from_str(&dl2.dl1_settings).unwrap();
        assert_eq!(settings["imported.software"], "ctapipe 0.28.0");
    }

    fn calibration_table(dir: &Path) {
        let mut text = String::from("pixel_id dc_to_pe calib_flag\n");
        for p in 0..1296 {
            let (v, flag) = if p == 489 {
                ("nan".to_string(), 0)
            } else if p == 162 {
                ("99".to_string(), 0)
            } else {
                (format!("{}", 23.0 + (p % 7) as f64 * 0.2), 1)
            };
            text.push_str(&format!("{p} {v} {flag}\n"));
        }
        write(&dir.join("calib.txt"), &text);
        let mut w = String::from("pixel_id\tcorrection_factor\n");
        for p in 0..1296 {
            w.push_str(&format!("{p}\t{}\n", 0.95 + (p % 10) as f64 * 0.01));
        }
        write(&dir.join("window.txt"), &w);
    }

    #[test]
    fn zfits_camera_data_to_dl1_with_calibration_inputs() {
        let Some(zfits) = data("r0_zfits/example_SST1M_20180822.fits.fz") else { return };
        let dir = TempDir::new("zfits-dl1");
        let store = dir.path().join("store");
        calibration_table(dir.path());
        let cfg = config(dir.path(), "sst1mpipe_data_config.json", "data", |t| t);
        let Some(array) = data("sst1mpipe_data/sst1m_array.h5") else { return };
        let inputs = format!(
            r#"{{"run": {{"paths": ["{}"], "kind": "r0"}}, "cal": {{"paths": ["calib.txt"], "kind": "calibration"}}, "win": {{"paths": ["window.txt"], "kind": "window"}}, "array": {{"paths": ["{}"], "kind": "subarray"}}}}"#,
            zfits.display(),
            array.display()
        );
        let full = r#"{"r0": "run", "calibration": "cal", "window_transmittance": "win", "subarray": "array"}"#;
        // No run number in this file's name: the step must give obs_id.
        let r = recipe(dir.path(), "noid", &cfg, &inputs, full, r#"{"tel_id": 22}"#);
        let (code, _, err) = run_json(&store, &r, &[]);
        assert_ne!(code, 0);
        assert!(err.contains("example_SST1M_20180822.fits.fz") && err.contains("obs_id"), "{err}");
        // Without a calibration table: refused, saying which role to give.
        let r =
            recipe(dir.path(), "nocal", &cfg, &inputs, r#"{"r0": "run"}"#, r#"{"tel_id": 22, "obs_id": 201808220001}"#);
        let (code, _, err) = run_json(&store, &r, &[]);
        assert_ne!(code, 0);
        assert!(err.contains("calibration"), "{err}");
        // Without the telescope description: refused while planning, naming the role.
        let r = recipe(
            dir.path(),
            "noarray",
            &cfg,
            &inputs,
            r#"{"r0": "run", "calibration": "cal"}"#,
            r#"{"tel_id": 22, "obs_id": 201808220001}"#,
        );
        let (code, _, err) = run_json(&store, &r, &[]);
        assert_ne!(code, 0);
        assert!(err.contains("subarray") && err.contains("sst1m_array.h5"), "{err}");
        // Wrong telescope.
        let r = recipe(dir.path(), "wrongtel", &cfg, &inputs, full, r#"{"tel_id": 21, "obs_id": 201808220001}"#);
        let (code, _, err) = run_json(&store, &r, &[]);
        assert_ne!(code, 0);
        assert!(err.contains("telescope 22") && err.contains("telescope 21"), "{err}");
        // A calibration path buried in the config is refused.
        let buried = config(dir.path(), "sst1mpipe_data_config.json", "buried", |t| {
            t.replacen("\"tel_022\": null", "\"tel_022\": \"/somewhere/calib.h5\"", 1)
        });
        let r = recipe(dir.path(), "buried", &buried, &inputs, full, r#"{"tel_id": 22, "obs_id": 201808220001}"#);
        let (code, _, err) = run_json(&store, &r, &[]);
        assert_ne!(code, 0);
        assert!(err.contains("activity inputs") && err.contains("calibration"), "{err}");
        for name in ["noid", "nocal", "noarray", "wrongtel", "buried"] {
            assert!(!store.join(format!("views/{name}/dl1/all/dl1.h5")).exists(), "nothing published for {name}");
        }

        let r = recipe(dir.path(), "data", &cfg, &inputs, full, r#"{"tel_id": 22, "obs_id": 201808220001}"#);
        let (code, report, err) = run_json(&store, &r, &[]);
        assert_eq!(code, 0, "{err}");
        let dl1 = view_target(&store, "data/dl1/all/dl1.h5");
        let reader = Dl1Reader::open(&dl1).unwrap();
        // 32 events, 2 of them internal-trigger pedestals (event type 8, not written).
        assert_eq!(reader.n_events, 30);
        let rows = reader.read(0, 30).unwrap();
        assert_eq!(rows[0].event_id, 1027888, "no SWAT: the camera counter");
        // sst1mpipe's 12-digit obs_id, in the event rows (int64) and the run's row.
        assert!(rows.iter().all(|r| r.obs_id == 201808220001));
        let obs = reader.observation.unwrap();
        assert_eq!(obs.obs_id, 201808220001);
        assert!(obs.tstart <= rows[0].local_time && obs.tstop >= rows[29].local_time);
        assert!(rows.iter().any(|r| r.camera_frame_hillas_intensity > 0.0), "some events have images");
        assert!(rows.iter().all(|r| r.true_energy.is_nan()), "no truth for data");
        assert!(rows.iter().all(|r| (r.local_time - 1534982401.0).abs() < 60.0), "UTC times");
        let key = report["activities"][0]["key"].as_str().unwrap().to_string();
        let log = stdout(&sst1mflow(&store, &["log", &key[..12]]));
        assert!(log.contains("2 pedestal events") && log.contains("NSB level"), "{log}");
        // sst1mpipe's integration correction of tel 22 (the golden value of the shipped
        // sst1m_array.h5, sst1mpipe_data README), not one of our pulse model.
        assert!(log.contains("integration correction 1.020946"), "{log}");
        // The calibration table is an input: changing one factor reruns the step.
        let text = std::fs::read_to_string(dir.path().join("calib.txt")).unwrap().replacen("23.2 1", "23.3 1", 1);
        write(&dir.path().join("calib.txt"), &text);
        let (code, again, err) = run_json(&store, &r, &[]);
        assert_eq!((code, again["ran"].as_u64()), (0, Some(1)), "{err}");
        // A truncated table is refused naming it.
        write(&dir.path().join("calib.txt"), "pixel_id dc_to_pe calib_flag\n0 23 1\n");
        let (code, _, err) = run_json(&store, &r, &[]);
        assert_ne!(code, 0);
        assert!(err.contains("calib.txt") && err.contains("1 rows"), "{err}");
        // A good pixel with a factor of 0 would silently lose its charge: refused naming it.
        calibration_table(dir.path());
        let zero =
            std::fs::read_to_string(dir.path().join("calib.txt")).unwrap().replacen("\n7 23 1\n", "\n7 0 1\n", 1);
        write(&dir.path().join("calib.txt"), &zero);
        let (code, _, err) = run_json(&store, &r, &[]);
        assert_ne!(code, 0);
        assert!(err.contains("calib.txt") && err.contains("pixel 7 has calib_flag 1 but dc_to_pe = 0"), "{err}");
        // A calibration table given as the window file, as text or as sst1mpipe's HDF5: refused.
        calibration_table(dir.path());
        std::fs::copy(dir.path().join("calib.txt"), dir.path().join("window.txt")).unwrap();
        let (code, _, err) = run_json(&store, &r, &[]);
        assert_ne!(code, 0);
        assert!(err.contains("window.txt") && err.contains("a calibration table"), "{err}");
        if let Some(h5) = data("sst1mpipe_data/averaged_calib_param_v2_2023_2024_tel2.h5") {
            std::fs::copy(h5, dir.path().join("window.txt")).unwrap();
            let (code, _, err) = run_json(&store, &r, &[]);
            assert_ne!(code, 0);
            assert!(err.contains("window.txt") && err.contains("an HDF5 file"), "{err}");
        }
        calibration_table(dir.path());

        // Forced pointing (sst1mpipe's --pointing-ra/--pointing-dec --force-pointing): coordinates
        // without the flag, the flag without both, and simulations are refused at planning.
        for (params, said) in [
            (
                r#"{"tel_id": 22, "obs_id": 201808220001, "pointing_ra_deg": 83.63}"#,
                "only with \"force_pointing\": true",
            ),
            (
                r#"{"tel_id": 22, "obs_id": 201808220001, "force_pointing": true, "pointing_ra_deg": 83.63}"#,
                "needs both",
            ),
            (
                r#"{"tel_id": 22, "obs_id": 201808220001, "force_pointing": true, "pointing_ra_deg": 83.63, "pointing_dec_deg": 95}"#,
                "pointing_dec_deg",
            ),
        ] {
            let r = recipe(dir.path(), "badpointing", &cfg, &inputs, full, params);
            let (code, _, err) = run_json(&store, &r, &[]);
            assert_ne!(code, 0, "{params}");
            assert!(err.contains(said), "{params}: {err}");
        }

        // Camera-data directions follow telescope_equivalent_focal_length: the DL1 column, then
        // the DL2 offsets from the pointing, which scale as 1/f.
        let models = tel2_models(dir.path(), &store);
        let model_inputs: Vec<String> = models
            .iter()
            .map(|(role, p)| format!(r#""{role}": {{"paths": ["{}"], "kind": "rf-model"}}"#, p.display()))
            .collect();
        let model_roles: Vec<String> = models.iter().map(|(role, _)| format!(r#""{role}": "{role}""#)).collect();
        let with_models = format!("{}, {}}}", inputs.strip_suffix('}').unwrap(), model_inputs.join(", "));
        let offsets = |focal: f64| -> Vec<f64> {
            let name = format!("f{}", (focal * 10.0) as u32);
            let cfg = config(dir.path(), "sst1mpipe_data_config.json", &name, |t| {
                let mut v: serde_json::Value = serde_json::from_str(&t).unwrap();
                v["telescope_equivalent_focal_length"]["tel_022"] = focal.into();
                serde_json::to_string_pretty(&v).unwrap()
            });
            let path = dir.path().join(format!("{name}.json"));
            write(
                &path,
                &format!(
                    r#"{{"name": "{name}", "config": "{cfg}", "inputs": {with_models}, "steps": [
    {{"name": "dl1", "stage": "r0-dl1", "inputs": {full}, "params": {{"tel_id": 22, "obs_id": 201808220001, "force_pointing": true, "pointing_ra_deg": 83.63, "pointing_dec_deg": 22.01}}}},
    {{"name": "dl2", "stage": "dl1-dl2", "inputs": {{"dl1": "dl1.dl1", {}}}}}]}}"#,
                    model_roles.join(", ")
                ),
            );
            let (code, report, err) = run_json(&store, &path, &[]);
            assert_eq!(code, 0, "{err}\n{report}");
            let dl1 = Dl1Reader::open(&view_target(&store, &format!("{name}/dl1/all/dl1.h5"))).unwrap();
            let rows = dl1.read(0, dl1.n_events).unwrap();
            assert!(rows.iter().all(|r| r.equivalent_focal_length == focal), "the DL1 column is the config's");
            assert!(rows.iter().all(|r| r.true_alt_tel.is_finite()), "the forced pointing gives every event one");
            assert_eq!(dl1.observation.unwrap().ra_pnt, 83.63);
            let key = report["activities"][0]["key"].as_str().unwrap().to_string();
            let log = stdout(&sst1mflow(&store, &["log", &key[..12]]));
            assert!(log.contains("the step's pointing RA 83.63 deg, Dec 22.01 deg is used (force_pointing)"), "{log}");
            let dl2 =
                sst1mflow::io::dl2::Dl2Reader::open(&view_target(&store, &format!("{name}/dl2/all/dl2.h5"))).unwrap();
            dl2.read(0, dl2.n_events)
                .unwrap()
                .iter()
                .map(|r| sst1mflow::astro::angular_separation_deg(r.reco_az, r.reco_alt, r.true_az_tel, r.true_alt_tel))
                .collect()
        };
        let (at_56, at_48) = (offsets(5.6), offsets(4.8));
        let finite: Vec<(f64, f64)> = at_56
            .iter()
            .zip(&at_48)
            .filter(|(a, b)| a.is_finite() && b.is_finite() && **a > 0.05)
            .map(|(a, b)| (*a, *b))
            .collect();
        assert!(finite.len() >= 5, "{} events with a direction", finite.len());
        for (a, b) in finite {
            assert!((b / a - 5.6 / 4.8).abs() < 2e-3, "offset {a} deg at 5.6 m, {b} deg at 4.8 m");
        }
    }
}
