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
                for _ in 0..1000 {
                    if !matches!(main.read_into(&mut event), Ok(true)) {
                        break;
                    }
                }
            }
        }
    }
});
