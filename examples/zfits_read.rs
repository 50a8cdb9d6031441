//! Reads a zfits file N times (profiling aid): `cargo run --release --example zfits_read FILE N
//! [tiles]`. With `tiles`, events are read where their decoded tiles hold them (as r0-dl1 reads
//! them) instead of reordered into pixel order one at a time.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let in_tiles = args.get(3).is_some_and(|a| a == "tiles");
    let mut events = 0;
    let t = std::time::Instant::now();
    for _ in 0..n {
        let mut r = sst1mflow::io::zfits::DigicamReader::open(std::path::Path::new(&args[1])).unwrap();
        if in_tiles {
            while let Some(tile) = r.next_tile().unwrap() {
                for k in 0..tile.n_events() {
                    std::hint::black_box(tile.event(k));
                    events += 1;
                }
                r.reuse_tile(tile);
            }
        } else {
            let mut e = sst1mflow::io::zfits::DigicamEvent::default();
            while r.read_into(&mut e).unwrap() {
                events += 1;
            }
        }
    }
    println!(
        "{events} events in {:.3} s: {:.0} events/s",
        t.elapsed().as_secs_f64(),
        events as f64 / t.elapsed().as_secs_f64()
    );
}
