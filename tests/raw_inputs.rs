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
