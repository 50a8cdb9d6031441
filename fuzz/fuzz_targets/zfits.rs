//! Any bytes given to the zfits reader give events or an error, never a panic, a hang or an
//! unbounded allocation.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sst1mflow::io::zfits::{DigicamReader, ZFile};
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let name = Path::new("fuzz.fits.fz");
    if let Ok(mut file) = ZFile::from_bytes(name, data.to_vec()) {
        for table in 0..file.tables.len() {
            for tile in 0..file.tables[table].n_tiles().min(64) {
                if let Ok(t) = file.read_tile(table, tile) {
                    for c in 0..t.columns.len() {
                        if !file.tables[table].columns[c].is_scalar() {
                            let _ = t.arrays(c);
                        }
                    }
                }
            }
        }
    }
    if let Ok(mut file) = ZFile::from_bytes(name, data.to_vec()) {
        // Consecutive tiles decoded together, two and three at a time.
        for table in 0..file.tables.len() {
            for first in 0..file.tables[table].n_tiles().saturating_sub(1).min(32) {
                let empty = || sst1mflow::io::zfits::Tile { n_rows: 0, columns: Vec::new() };
                let _ = file.read_tiles_into(table, first, None, [empty(), empty()]);
                if first + 2 < file.tables[table].n_tiles() {
                    let _ = file.read_tiles_into(table, first, None, [empty(), empty(), empty()]);
                }
            }
        }
    }
    if let Ok(file) = ZFile::from_bytes(name, data.to_vec()) {
        if let Ok(mut reader) = DigicamReader::new(file) {
            let mut n = 0;
            while let Ok(Some(_)) = reader.next_event() {
                n += 1;
                if n > 1000 {
                    break;
                }
            }
        }
    }
    // r0-dl1's two passes: a first pass peeking at event types and keeping its decoded tiles,
    // handed to a second reader of the same bytes.
    if let (Ok(a), Ok(b)) = (ZFile::from_bytes(name, data.to_vec()), ZFile::from_bytes(name, data.to_vec())) {
        if let (Ok(mut first), Ok(main)) = (DigicamReader::new(a), DigicamReader::new(b)) {
            first.keep_decoded_tiles(usize::MAX);
            let mut event = sst1mflow::io::zfits::DigicamEvent::default();
            for k in 0..500 {
                match first.peek_type() {
                    Ok(Some((8, _))) if k % 3 == 0 => {
                        if !matches!(first.read_into(&mut event), Ok(true)) {
                            break;
                        }
                    }
                    Ok(Some(_)) => first.skip_event(),
                    _ => break,
                }
            }
            if let Ok(mut main) = main.with_decoded_tiles(first.into_decoded_tiles()) {
                for _ in 0..100 {
                    if !matches!(main.read_into(&mut event), Ok(true)) {
                        break;
                    }
                }
                // The rest in place, tile by tile (r0-dl1's main pass), with R1 computed from
                // the events as their tiles hold them.
                let mut r1 = Vec::new();
                for _ in 0..20 {
                    let Ok(Some(tile)) = main.next_tile() else { break };
                    for k in 0..tile.n_events() {
                        let e = tile.event(k);
                        e.to_event(&mut event);
                        let (n_pixels, n) = (e.pixel_indices.len() / 2, e.n_samples);
                        if e.baselines.len() == 2 * n_pixels && n_pixels * n <= 1 << 20 {
                            r1.resize(n_pixels * n, 0.0f32);
                            let dc_to_pe = vec![23.0; n_pixels];
                            sst1mflow::image::calibrate::r0_to_r1_readout(
                                e.samples, e.baselines, e.pixel_indices, &dc_to_pe, 1.0, n, &mut r1,
                            );
                            if n > 0 && e.samples.len() == 2 * n_pixels * n {
                                let readout = sst1mflow::image::calibrate::ReadoutEvent {
                                    samples: e.samples,
                                    baselines_x16: e.baselines,
                                    pixel_indices: e.pixel_indices,
                                    n_samples: n,
                                };
                                let window = sst1mflow::image::extract::Window {
                                    width: 7,
                                    shift: 3,
                                    sample_ns: 4.0,
                                    correction: 1.0,
                                };
                                let factors = vec![1.0f32 / 23.0; n_pixels];
                                let bad: Vec<bool> = (0..n_pixels).map(|p| p % 17 == 3).collect();
                                let (mut q, mut t) = (vec![0.0f32; n_pixels], vec![0.0f32; n_pixels]);
                                sst1mflow::image::extract::local_peak_window_sum_r0(
                                    &readout, &factors, &bad, &window, &mut q, &mut t,
                                );
                            }
                        }
                    }
                    main.reuse_tile(tile);
                }
            }
        }
    }
});
