//! Any bytes given to the sim_telarray (EventIO) reader give events or an error, never a
//! panic, a hang or an unbounded allocation.
#![no_main]
use libfuzzer_sys::fuzz_target;
use sst1mflow::io::simtel::SimtelReader;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    if let Ok(mut reader) = SimtelReader::from_bytes(Path::new("fuzz.simtel"), data.to_vec()) {
        let _ = reader.read_headers();
        let mut n = 0;
        while let Ok(Some(_)) = reader.next_event() {
            n += 1;
            if n > 1000 {
                break;
            }
        }
    }
});
