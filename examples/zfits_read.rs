//! Reads a zfits file N times (profiling aid): `cargo run --release --example zfits_read FILE N`.
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10);
    let mut events = 0;
    let t = std::time::Instant::now();
    for _ in 0..n {
        let mut r = sst1mflow::io::zfits::DigicamReader::open(std::path::Path::new(&args[1])).unwrap();
        let mut e = sst1mflow::io::zfits::DigicamEvent::default();
        while r.read_into(&mut e).unwrap() {
            events += 1;
        }
    }
    println!(
        "{events} events in {:.3} s: {:.0} events/s",
        t.elapsed().as_secs_f64(),
        events as f64 / t.elapsed().as_secs_f64()
    );
}
