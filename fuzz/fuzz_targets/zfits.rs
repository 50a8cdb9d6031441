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
});
