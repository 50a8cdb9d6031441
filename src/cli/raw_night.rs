//! `sst1mflow simulate-night ROOT`: writes a simulated raw SST-1M night (see
//! [`crate::raw_night`]) and says what it wrote.
use super::Cli;
use crate::error::{Error, Result};
use crate::raw_night::{self, NightSpec, RunKind, RunOutcome};
use clap::Args;
use serde_json::json;
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(Args)]
pub struct NightArgs {
    /// Root of the raw data tree (cs1/, cs2/, truth/ are written under it)
    pub root: PathBuf,
    /// The evening's date, YYYY-MM-DD
    #[arg(long)]
    pub date: String,
    /// Seed of every random draw (same seed, same bytes)
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Length of a science run in seconds (dark and transition runs last a quarter of it)
    #[arg(long, default_value_t = 60.0)]
    pub run_duration: f64,
    /// Science runs per target and wobble
    #[arg(long, default_value_t = 1)]
    pub runs_per_wobble: u32,
    /// Pedestal (internal trigger) events per second and telescope
    #[arg(long, default_value_t = 20.0)]
    pub pedestal_rate: f64,
    /// Multiply every target's flux by this (short test nights need brighter sources to
    /// detect them; recorded in the truth)
    #[arg(long, default_value_t = 1.0)]
    pub flux_scale: f64,
    /// Observe only these targets of the night's list (comma-separated, e.g. Crab)
    #[arg(long, value_delimiter = ',')]
    pub targets: Vec<String>,
    /// Simulate runs on this many threads (default: all cores)
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
}

pub(super) fn parse_date(s: &str) -> Result<(i32, u32, u32)> {
    let bad = || Error::msg(format!("--date {s:?}: expected YYYY-MM-DD"));
    let parts: Vec<&str> = s.split('-').collect();
    let [y, m, d] = parts.as_slice() else { return Err(bad()) };
    let date = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?, d.parse().map_err(|_| bad())?);
    raw_night::unix_midnight(date)?;
    Ok(date)
}

pub fn run(cli: &Cli, args: &NightArgs) -> Result<i32> {
    let mut spec = NightSpec::new(parse_date(&args.date)?, args.seed)?;
    if !(args.run_duration >= 0.1 && args.run_duration <= 3600.0) {
        return Err(Error::msg(format!("--run-duration {}: must be between 0.1 and 3600 s", args.run_duration)));
    }
    if !(args.pedestal_rate > 0.0 && args.pedestal_rate <= 1000.0) {
        return Err(Error::msg(format!("--pedestal-rate {}: must be in (0, 1000] Hz", args.pedestal_rate)));
    }
    if args.runs_per_wobble == 0 || args.runs_per_wobble > 100 {
        return Err(Error::msg(format!("--runs-per-wobble {}: must be between 1 and 100", args.runs_per_wobble)));
    }
    if !(args.flux_scale > 0.0 && args.flux_scale <= 1000.0) {
        return Err(Error::msg(format!("--flux-scale {}: must be in (0, 1000]", args.flux_scale)));
    }
    if !args.targets.is_empty() {
        let known: Vec<String> = spec.targets.iter().map(|t| t.name.clone()).collect();
        for t in &args.targets {
            if !known.contains(t) {
                return Err(Error::msg(format!(
                    "--targets: {t:?} is not one of the night's targets ({})",
                    known.join(", ")
                )));
            }
        }
        spec.targets.retain(|t| args.targets.contains(&t.name));
    }
    for target in &mut spec.targets {
        target.amplitude *= args.flux_scale;
    }
    spec.run_duration_s = args.run_duration;
    spec.runs_per_wobble = args.runs_per_wobble;
    spec.pedestal_rate_hz = args.pedestal_rate;
    let site = raw_night::shipped_site()?;
    let n_runs = raw_night::plan(&spec).len();
    let show = !cli.quiet && std::io::stderr().is_terminal();
    let done = std::sync::atomic::AtomicUsize::new(0);
    let progress = |o: &RunOutcome| {
        let n = done.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if show {
            eprint!(
                "\rsimulated {n}/{n_runs} runs (last: run {}, {} + {} events)   ",
                o.run.run_number, o.events[0].0, o.events[1].0
            );
        }
    };
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.jobs.unwrap_or(0))
        .build()
        .map_err(|e| Error::msg(format!("cannot start threads: {e}")))?;
    let started = std::time::Instant::now();
    let outcomes = pool.install(|| raw_night::simulate_night(&spec, &args.root, site, &progress))?;
    if show {
        eprintln!();
    }
    let seconds = started.elapsed().as_secs_f64();
    let events: u64 = outcomes.iter().map(|o| o.events[0].0 + o.events[1].0).sum();
    let bytes: u64 = outcomes.iter().map(|o| o.bytes[0] + o.bytes[1]).sum();
    let layout = raw_night::NightLayout { root: args.root.clone(), date: spec.date };
    if cli.json {
        println!(
            "{}",
            json!({
                "root": args.root, "date": args.date, "runs": outcomes.len(), "files": 2 * outcomes.len(),
                "events": events, "bytes": bytes, "seconds": seconds,
                "truth": layout.truth_dir().join("night.json"),
                "calibration_tables": [layout.calibration_file(1), layout.calibration_file(2)],
            })
        );
        return Ok(0);
    }
    for o in &outcomes {
        let what = match &o.run.kind {
            RunKind::Dark => "DARK".to_string(),
            RunKind::Transition => "Transition".to_string(),
            RunKind::Science { target, wobble } => format!("{} W{wobble}", spec.targets[*target].name),
        };
        println!(
            "run {:04}  {what:<12} {:>6.0} s  tel 21: {:>6} events ({:>4} pedestal)  tel 22: {:>6} events ({:>4} pedestal)  {} in both",
            o.run.run_number, o.run.duration_s, o.events[0].0, o.events[0].1, o.events[1].0, o.events[1].1, o.coincident
        );
    }
    println!(
        "wrote {} raw files ({events} events, {:.1} MB) under {} in {seconds:.1} s; calibration tables in cs1/cs2/data/calibration, truth in {}",
        2 * outcomes.len(),
        bytes as f64 / 1e6,
        args.root.display(),
        layout.truth_dir().display()
    );
    Ok(0)
}
