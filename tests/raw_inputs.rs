//! Golden tests of the native raw-input readers (zfits R0, sim_telarray EventIO) against the
//! values listed in ../shared/data/README.md (read there with protozfits 2.13.1 and eventio
//! 2.1.1), and their behaviour on damaged files. Each test skips, saying why, when the shared
//! data folder is absent.
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
