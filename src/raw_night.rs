//! A simulated raw SST-1M night: both telescopes' R0 runs as the cameras write them (zfits, in
//! the directory layout of the SST-1M data centre), the per-pixel calibration tables that go
//! with them, and the truth, so that nightly processing, stereo matching on real-format data
//! and the decoding speed can be exercised on whole nights anywhere.
//!
//! Shape of a night (`plan`): a dark run (lid closed: pedestal events only, no night sky),
//! then for each target its wobbles W1, W2 (position angles 0° and 180° at `wobble_offset_deg`
//! from it), `runs_per_wobble` runs each, a short `Transition` run while the telescopes move
//! between wobbles and targets. Run numbers count from 1 per night; both telescopes share
//! them. File names and folders are those sst1mpipe's `daily_analysis` reads:
//! `<root>/cs{1,2}/data/raw/YYYY/MM/DD/SST1M{1,2}/SST1M{1,2}_YYYYMMDD_RRRR.fits.fz`, where the
//! date is the evening's. The `TARGET` card of the `Events` table reads
//! `Name,W1,RA,Dec` with the pointing's coordinates (what sst1mpipe's `get_target` parses and
//! `daily_analysis` groups by), or `DARK` / `Transition`.
//!
//! Shower content is the observation-run simulator's ([`crate::stages::simulate`]): the
//! target a point source with its spectrum, protons at their rate, Poisson arrival times,
//! the tracking at each event's time, both telescopes seeing every shower. The cameras are
//! [`crate::sim::digicam::DigicamElectronics`] (telescopes 21 and 22, gains and dead pixels as
//! their calibration tables say). Pedestal events (`event_type` 8, DigiCam's internal
//! trigger) arrive as a Poisson process of `pedestal_rate_hz` per telescope. The SWAT
//! `arrayEvtNum` numbers every trigger of the array in time order: a shower both telescopes
//! record has one number in both files, a pedestal event its own; each run's numbers start
//! at run × [`SWAT_NUMBERS_PER_RUN`]. The camera clock is the
//! White Rabbit TAI-based nanosecond count.
//!
//! The truth goes beside, never into, the raw tree: `<root>/truth/YYYYMMDD/night.json` (the
//! runs, their pointing, counts and rates, the cameras) and one CSV per run and telescope
//! (each event's identity, type and clock; the sums and FNV-1a hash of its samples and
//! baselines, so that a reader's values can be checked exactly; the particle, energy,
//! photoelectrons and true image centroid).
//!
//! Every run is a pure function of (seed, run number): runs are simulated in parallel and
//! the bytes do not depend on the number of threads.
use crate::astro::{self, Site};
use crate::error::{Error, Result};
use crate::instrument::camera::CameraGeometry;
use crate::instrument::N_SAMPLES;
use crate::io::calibration_tables::write_pixel_calibration;
use crate::io::fits::{Card, Value as CardValue};
use crate::io::zfits::PEDESTAL_EVENT_TYPE;
use crate::io::zfits_write::{CameraEventRecord, DigicamFileWriter};
use crate::sim::digicam::DigicamElectronics;
use crate::sim::rng::Rng;
use crate::sim::{SimConfig, Simulator};
use crate::stages::simulate::{offset_position, parse_observation, ThrownShowers};
use rayon::prelude::*;
use serde_json::{json, Value};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The SWAT counter of run r starts at r × this: runs are simulated in parallel, so the
/// counter cannot run on from the previous run's last event, and the numbers stay unique over
/// the night (a u32 leaves room for 429 runs of up to ten million events).
pub const SWAT_NUMBERS_PER_RUN: u32 = 10_000_000;

/// Camera event type of triggered showers in the simulated runs (the real files' value).
pub const PHYSICS_EVENT_TYPE: u32 = 1;

/// A source the night observes.
#[derive(Clone, Debug)]
pub struct Target {
    pub name: String,
    pub ra_deg: f64,
    pub dec_deg: f64,
    /// dN/dE at 1 TeV (cm⁻² s⁻¹ TeV⁻¹) and the power-law index.
    pub amplitude: f64,
    pub index: f64,
}

/// What night to make.
#[derive(Clone, Debug)]
pub struct NightSpec {
    /// The evening's date (file names and folders).
    pub date: (i32, u32, u32),
    pub seed: u64,
    /// Start of the first run (Unix s, UTC).
    pub start_unix_s: f64,
    pub run_duration_s: f64,
    pub runs_per_wobble: u32,
    pub wobble_offset_deg: f64,
    pub targets: Vec<Target>,
    pub pedestal_rate_hz: f64,
    /// Night-sky background (photoelectrons per ns per pixel) and electronic noise (p.e.).
    pub nsb_rate_ghz: f64,
    pub noise_pe: f64,
    /// Pixels whose calibration failed, per camera.
    pub dead_pixels: usize,
}

impl NightSpec {
    /// The default night of `date`: the Crab (HEGRA spectrum) and Mrk 421 (about half the
    /// Crab, harder), two wobbles each, starting at 22:00 UTC when both are up at Ondřejov in
    /// winter. The night sky and the electronic noise give a pedestal standard deviation of
    /// about 5 ADC, within the range of sst1mpipe's voltage-drop model.
    pub fn new(date: (i32, u32, u32), seed: u64) -> Result<NightSpec> {
        let midnight = unix_midnight(date)?;
        Ok(NightSpec {
            date,
            seed,
            start_unix_s: midnight + 22.0 * 3600.0,
            run_duration_s: 60.0,
            runs_per_wobble: 1,
            wobble_offset_deg: 0.4,
            targets: vec![
                Target { name: "Crab".into(), ra_deg: 83.6333, dec_deg: 22.0145, amplitude: 2.83e-11, index: -2.62 },
                Target { name: "Mrk421".into(), ra_deg: 166.1138, dec_deg: 38.2088, amplitude: 1.4e-11, index: -2.4 },
            ],
            pedestal_rate_hz: 20.0,
            nsb_rate_ghz: 0.1,
            noise_pe: 0.1,
            dead_pixels: 3,
        })
    }
}

/// The site of the night: telescope 1's coordinates in the shipped data configuration (as
/// r0-dl1 reads them for the pointing).
pub fn shipped_site() -> Result<Site> {
    let config: Value = serde_json::from_str(crate::config::DATA_DEFAULTS).expect("the shipped configuration is JSON");
    crate::stages::simulate::site(&config, CAMERA_TEL_IDS[0])
}

/// Unix time of 00:00 UTC of a date (proleptic Gregorian).
pub fn unix_midnight((y, m, d): (i32, u32, u32)) -> Result<f64> {
    let valid = (1970..=2200).contains(&y) && (1..=12).contains(&m) && d >= 1 && d <= days_in_month(y, m);
    if !valid {
        return Err(Error::msg(format!("{y:04}-{m:02}-{d:02} is not a date between 1970 and 2200")));
    }
    // Days from 1970-01-01 (Howard Hinnant's civil-from-days inverse).
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy as i32;
    let days = era as i64 * 146_097 + doe as i64 - 719_468;
    Ok(days as f64 * 86_400.0)
}

fn days_in_month(y: i32, m: u32) -> u32 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// What a run is.
#[derive(Clone, Debug, PartialEq)]
pub enum RunKind {
    Dark,
    Transition,
    Science { target: usize, wobble: u32 },
}

/// One run of the night (both telescopes).
#[derive(Clone, Debug)]
pub struct RunPlan {
    pub run_number: u32,
    pub kind: RunKind,
    pub start_unix_s: f64,
    pub duration_s: f64,
    /// Where the telescopes point (RA, Dec deg).
    pub pointing: (f64, f64),
}

/// The runs of a night, in time order.
pub fn plan(spec: &NightSpec) -> Vec<RunPlan> {
    let mut runs = Vec::new();
    let mut t = spec.start_unix_s;
    let short = spec.run_duration_s / 4.0;
    let mut push = |kind: RunKind, duration: f64, pointing: (f64, f64), t: &mut f64| {
        runs.push(RunPlan {
            run_number: runs.len() as u32 + 1,
            kind,
            start_unix_s: *t,
            duration_s: duration,
            pointing,
        });
        // A few seconds between runs (the camera server closes and opens files).
        *t += duration + 5.0;
    };
    let first = spec.targets.first().map(|s| (s.ra_deg, s.dec_deg)).unwrap_or((0.0, 90.0));
    push(RunKind::Dark, short, first, &mut t);
    for (k, target) in spec.targets.iter().enumerate() {
        for wobble in 1..=2u32 {
            let angle = if wobble == 1 { 0.0 } else { 180.0 };
            let pointing = offset_position(target.ra_deg, target.dec_deg, spec.wobble_offset_deg, angle);
            if k > 0 || wobble > 1 {
                push(RunKind::Transition, short, pointing, &mut t);
            }
            for _ in 0..spec.runs_per_wobble {
                push(RunKind::Science { target: k, wobble }, spec.run_duration_s, pointing, &mut t);
            }
        }
    }
    runs
}

/// The camera telescope ids (zfits `telescopeID`) of SST-1M 1 and 2.
pub const CAMERA_TEL_IDS: [u16; 2] = [21, 22];

/// Paths of the night's files.
pub struct NightLayout {
    pub root: PathBuf,
    pub date: (i32, u32, u32),
}

impl NightLayout {
    fn ymd(&self) -> String {
        format!("{:04}{:02}{:02}", self.date.0, self.date.1, self.date.2)
    }

    /// `<root>/cs{tel}/data/raw/YYYY/MM/DD/SST1M{tel}` (tel 1 or 2).
    pub fn raw_dir(&self, tel: usize) -> PathBuf {
        let (y, m, d) = self.date;
        self.root.join(format!("cs{tel}/data/raw/{y:04}/{m:02}/{d:02}/SST1M{tel}"))
    }

    pub fn raw_file(&self, tel: usize, run: u32) -> PathBuf {
        self.raw_dir(tel).join(format!("SST1M{tel}_{}_{run:04}.fits.fz", self.ymd()))
    }

    /// The telescope's calibration table for the night.
    pub fn calibration_file(&self, tel: usize) -> PathBuf {
        self.root.join(format!("cs{tel}/data/calibration/SST1M{tel}_calib_param_{}.h5", self.ymd()))
    }

    pub fn truth_dir(&self) -> PathBuf {
        self.root.join(format!("truth/{}", self.ymd()))
    }
}

/// What a night simulation made, per run and telescope.
#[derive(Clone, Debug)]
pub struct RunOutcome {
    pub run: RunPlan,
    /// Per telescope: (events written, of which pedestal events).
    pub events: [(u64, u64); 2],
    /// Showers recorded by both telescopes.
    pub coincident: u64,
    pub bytes: [u64; 2],
}

/// The two cameras of the night, from the seed.
pub fn cameras(spec: &NightSpec) -> [DigicamElectronics; 2] {
    let nsb_pe_per_sample = spec.nsb_rate_ghz * crate::instrument::SAMPLE_NS;
    let std_pe = background_std_pe(spec);
    [0, 1].map(|k| {
        DigicamElectronics::new(CAMERA_TEL_IDS[k], 1296, spec.seed, spec.dead_pixels, nsb_pe_per_sample, std_pe)
    })
}

/// The per-sample standard deviation (p.e.) of the simulated background: measured on the
/// simulator's own noise, so that the cameras' voltage drop matches what the calibration
/// will measure.
fn background_std_pe(spec: &NightSpec) -> f64 {
    let mut sim = Simulator::new(CameraGeometry::digicam());
    let cfg = background_config(spec, spec.nsb_rate_ghz);
    let mut w = vec![0.0f32; 1296 * N_SAMPLES];
    let (mut n, mut sum, mut sum2) = (0.0, 0.0, 0.0);
    for i in 0..4 {
        sim.background(&cfg, i, &mut w);
        for &x in &w {
            n += 1.0;
            sum += x as f64;
            sum2 += (x as f64).powi(2);
        }
    }
    (sum2 / n - (sum / n).powi(2)).sqrt()
}

fn background_config(spec: &NightSpec, nsb_rate_ghz: f64) -> SimConfig {
    SimConfig {
        particle: crate::sim::Particle::Gamma,
        energy_min_tev: 1.0,
        energy_max_tev: 10.0,
        spectral_index: -2.0,
        max_impact_m: 1.0,
        viewcone_deg: 0.0,
        source_offset_deg: 0.0,
        nsb_rate_ghz,
        noise_pe: spec.noise_pe,
        trigger_pe: 25.0,
        seed: spec.seed,
    }
}

/// Writes the night under `root`: raw files, calibration tables and truth. `progress` is
/// told each finished run. Refuses a root that already holds this night's raw files.
pub fn simulate_night(
    spec: &NightSpec,
    root: &Path,
    site: Site,
    progress: &(dyn Fn(&RunOutcome) + Sync),
) -> Result<Vec<RunOutcome>> {
    let layout = NightLayout { root: root.to_path_buf(), date: spec.date };
    for tel in 1..=2 {
        let dir = layout.raw_dir(tel);
        if dir.exists() && std::fs::read_dir(&dir).map(|mut d| d.next().is_some()).unwrap_or(false) {
            return Err(Error::msg(format!("{} already holds raw files: choose another root or date", dir.display())));
        }
    }
    for dir in [layout.raw_dir(1), layout.raw_dir(2), layout.truth_dir()] {
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    }
    let cams = cameras(spec);
    for (k, cam) in cams.iter().enumerate() {
        let path = layout.calibration_file(k + 1);
        std::fs::create_dir_all(path.parent().expect("has a parent"))
            .map_err(|e| Error::io(format!("cannot create {}", path.display()), e))?;
        let pixel_id: Vec<f64> = (0..cam.n_pixels()).map(|p| p as f64).collect();
        let dc_std: Vec<f64> = cam.dc_to_pe.iter().map(|d| d * 0.02).collect();
        let fit: Vec<f64> = cam.calib_flag.iter().map(|&f| f as f64).collect();
        write_pixel_calibration(
            &path,
            &[
                ("pixel_id", pixel_id),
                ("dc_to_pe", cam.dc_to_pe.clone()),
                ("dc_to_pe_std", dc_std),
                ("fit_accuracy", fit),
            ],
            &cam.calib_flag,
        )?;
    }
    let runs = plan(spec);
    let outcomes: Vec<RunOutcome> = runs
        .par_iter()
        .map(|run| {
            let outcome = simulate_run(spec, &layout, &cams, site, run)?;
            progress(&outcome);
            Ok(outcome)
        })
        .collect::<Result<Vec<_>>>()?;
    write_night_truth(spec, &layout, &cams, &outcomes)?;
    Ok(outcomes)
}

/// One camera event before it is written: its time and what it is.
struct Trigger {
    time_s: f64,
    /// Shower index in the run's thrown list, or None for a pedestal event.
    shower: Option<u64>,
    /// Which telescopes recorded it.
    telescopes: [bool; 2],
}

fn simulate_run(
    spec: &NightSpec,
    layout: &NightLayout,
    cams: &[DigicamElectronics; 2],
    site: Site,
    run: &RunPlan,
) -> Result<RunOutcome> {
    let run_seed = spec.seed.wrapping_mul(1_000_003).wrapping_add(run.run_number as u64);
    let (target, wobble, showers_on) = match &run.kind {
        RunKind::Science { target, wobble } => (Some(&spec.targets[*target]), *wobble, true),
        RunKind::Transition => (None, 0, true),
        RunKind::Dark => (None, 0, false),
    };
    let (target_ra, target_dec) = target.map(|t| (t.ra_deg, t.dec_deg)).unwrap_or(run.pointing);
    let (amplitude, index) = target.map(|t| (t.amplitude, t.index)).unwrap_or((0.0, -2.62));
    let obs_id = run.run_number as u64;
    let params = json!({
        "mode": "observation", "stereo": true, "obs_id": obs_id, "seed": run_seed,
        "start_unix_s": run.start_unix_s, "duration_s": run.duration_s,
        "target_ra_deg": target_ra, "target_dec_deg": target_dec,
        "wobble_offset_deg": if target.is_some() { spec.wobble_offset_deg } else { 0.0 },
        "wobble_angle_deg": if wobble == 2 { 180.0 } else { 0.0 },
        "source_amplitude": amplitude, "source_index": index,
        "nsb_rate_ghz": spec.nsb_rate_ghz, "noise_pe": spec.noise_pe,
    });
    let mut observation = parse_observation(&params, "raw night")?;
    if target.is_none() {
        observation.row.ra_pnt = run.pointing.0;
        observation.row.dec_pnt = run.pointing.1;
    }
    let (thrown, n_gammas) = if showers_on {
        let t = ThrownShowers::draw(&observation)?;
        (t.showers, t.n_gammas)
    } else {
        (Vec::new(), 0)
    };
    // Pedestal events: a Poisson process per telescope.
    let mut pedestals: Vec<(f64, usize)> = Vec::new();
    for k in 0..2 {
        let mut rng = Rng::new(run_seed, 0xFED0 + k as u64);
        let mut t = run.start_unix_s;
        loop {
            t += rng.exponential(1.0 / spec.pedestal_rate_hz);
            if t >= run.start_unix_s + run.duration_s {
                break;
            }
            pedestals.push((t, k));
        }
    }
    let geom = CameraGeometry::digicam();
    let mut sim = Simulator::new(geom);
    let telescopes: Vec<(u16, [f64; 3])> =
        [1u16, 2].iter().map(|&t| (t, crate::instrument::ground_position(t).expect("positions"))).collect();
    // Pass 1: which showers trigger which telescope (the waveforms are made again in pass
    // 2, from the same seeded streams, so memory stays one event per telescope).
    let mut waveforms = vec![vec![0.0f32; 1296 * N_SAMPLES]; 2];
    let mut triggers: Vec<Trigger> = Vec::new();
    let shower_of = |sim: &mut Simulator, time: f64, index: u64, waveforms: &mut [Vec<f32>]| {
        let aim = observation.aim(site, time, index, n_gammas);
        let (alt, az) = aim.pointing_deg;
        let pointing = (alt.to_radians(), az.to_radians());
        (sim.simulate_stereo_at(aim.config, index, aim.centre_m, pointing, &telescopes, waveforms), aim.is_gamma)
    };
    for &(time, index) in &thrown {
        let (s, _) = shower_of(&mut sim, time, index, &mut waveforms);
        let seen = [s.telescopes[0].triggered, s.telescopes[1].triggered];
        if seen[0] || seen[1] {
            triggers.push(Trigger { time_s: time, shower: Some(index), telescopes: seen });
        }
    }
    let coincident = triggers.iter().filter(|t| t.telescopes == [true, true]).count() as u64;
    for &(time, k) in &pedestals {
        let mut seen = [false; 2];
        seen[k] = true;
        triggers.push(Trigger { time_s: time, shower: None, telescopes: seen });
    }
    triggers.sort_by(|a, b| a.time_s.total_cmp(&b.time_s));
    // Pass 2: write both files.
    let name = match (&run.kind, target) {
        (RunKind::Dark, _) => "DARK".to_string(),
        (RunKind::Transition, _) => "Transition".to_string(),
        (_, Some(t)) => format!("{},W{wobble},{:.4},{:.4}", t.name, run.pointing.0, run.pointing.1),
        _ => unreachable!("science runs have a target"),
    };
    let mut writers = Vec::new();
    let mut truths = Vec::new();
    for k in 0..2 {
        let mut cards = vec![Card::new("TARGET", CardValue::Str(name.clone()), "Target,wobble,RA,Dec of the pointing")];
        if let Some(t) = target {
            cards.push(Card::new("OBJECT", CardValue::Str(t.name.clone()), "Observed object (simulated night)"));
            cards.push(Card::new("RA_PNT", CardValue::Float(run.pointing.0), "[deg] pointing right ascension"));
            cards.push(Card::new("DEC_PNT", CardValue::Float(run.pointing.1), "[deg] pointing declination"));
        }
        let max = triggers.iter().filter(|t| t.telescopes[k]).count() as u64;
        let path = layout.raw_file(k + 1, run.run_number);
        writers.push(DigicamFileWriter::create(&path, max, 1296, N_SAMPLES, cards)?);
        let truth_path = layout.truth_dir().join(format!("SST1M{}_{}_{:04}.csv", k + 1, layout.ymd(), run.run_number));
        let mut truth = std::io::BufWriter::new(
            std::fs::File::create(&truth_path)
                .map_err(|e| Error::io(format!("cannot create {}", truth_path.display()), e))?,
        );
        writeln!(truth, "event_number,array_event_number,event_type,local_time_ns,samples_sum,baselines_sum,samples_fnv1a,particle,true_energy_tev,n_photoelectrons,true_centroid_x_m,true_centroid_y_m,true_source_x_m,true_source_y_m")
            .map_err(|e| Error::io(format!("cannot write {}", truth_path.display()), e))?;
        truths.push((truth, truth_path));
    }
    let mut counters = [0u32; 2];
    let mut pedestal_counts = [0u64; 2];
    let (mut samples, mut baselines) = (vec![0i16; 1296 * N_SAMPLES], vec![0i16; 1296]);
    let (mut trig_in, mut fired) = (Vec::new(), Vec::new());
    let flags = vec![0u16; 1296];
    let pixel_order = readout_order();
    // The pedestal events read the same noise library as the showers (same seed and sky), so
    // the simulator builds it once per run.
    let background_cfg = if showers_on {
        observation.gamma.clone()
    } else {
        SimConfig { seed: run_seed, ..background_config(spec, 0.0) }
    };
    for (array_index, trig) in triggers.iter().enumerate() {
        let array_event_number = run.run_number * SWAT_NUMBERS_PER_RUN + array_index as u32 + 1;
        let (shower, is_gamma) = match trig.shower {
            Some(index) => {
                let (s, g) = shower_of(&mut sim, trig.time_s, index, &mut waveforms);
                (Some(s), g)
            }
            None => (None, false),
        };
        for k in (0..2).filter(|&k| trig.telescopes[k]) {
            if shower.is_none() {
                sim.background(&background_cfg, (array_index as u64) << 1 | k as u64, &mut waveforms[k]);
            }
            let digitise_index = (run.run_number as u64) << 40 | (array_index as u64) << 1 | k as u64;
            cams[k].digitise(&waveforms[k], N_SAMPLES, spec.seed, digitise_index, &mut samples, &mut baselines);
            cams[k].trigger(&samples, &baselines, N_SAMPLES, &mut trig_in, &mut fired);
            counters[k] += 1;
            let clock = astro::unix_to_unix_tai(trig.time_s).unwrap_or(trig.time_s);
            // Seconds and nanoseconds apart: one f64 of nanoseconds since 1970 keeps only ~256 ns.
            let whole = clock.floor();
            let nanos = (((clock - whole) * 1e9).round() as u64).min(999_999_999);
            let local_time = (whole as u64, nanos);
            let clock_ns = whole as i128 * 1_000_000_000 + nanos as i128;
            let event_type = if shower.is_some() { PHYSICS_EVENT_TYPE } else { PEDESTAL_EVENT_TYPE };
            pedestal_counts[k] += shower.is_none() as u64;
            writers[k].write(&CameraEventRecord {
                telescope_id: CAMERA_TEL_IDS[k] as i32,
                event_number: counters[k],
                array_event_number,
                event_type,
                local_time,
                samples: &samples,
                baselines: &baselines,
                pixels_flags: &flags,
                pixel_indices: &pixel_order,
                trigger_input: &trig_in,
                trigger_patch7: &fired,
                trigger_patch19: &fired,
            })?;
            let (truth, truth_path) = &mut truths[k];
            let samples_sum: i64 = samples.iter().map(|&x| x as i64).sum();
            let baselines_sum: i64 = baselines.iter().map(|&x| x as i64).sum();
            let digest = format!("{clock_ns},{samples_sum},{baselines_sum},{:016x}", samples_fnv1a(&samples));
            let line = match &shower {
                Some(s) => {
                    let v = &s.telescopes[k];
                    format!(
                        "{},{array_event_number},{event_type},{digest},{},{:.6},{},{:.6},{:.6},{:.6},{:.6}",
                        counters[k],
                        if is_gamma { "gamma" } else { "proton" },
                        s.energy_tev,
                        v.n_photoelectrons,
                        v.centroid_m.0,
                        v.centroid_m.1,
                        s.true_x_m,
                        s.true_y_m
                    )
                }
                None => format!("{},{array_event_number},{event_type},{digest},pedestal,,0,,,,", counters[k]),
            };
            writeln!(truth, "{line}").map_err(|e| Error::io(format!("cannot write {}", truth_path.display()), e))?;
        }
    }
    let mut bytes = [0u64; 2];
    for (k, w) in writers.into_iter().enumerate() {
        w.finish()?;
        bytes[k] = std::fs::metadata(layout.raw_file(k + 1, run.run_number)).map(|m| m.len()).unwrap_or(0);
    }
    for (mut truth, path) in truths {
        truth.flush().map_err(|e| Error::io(format!("cannot write {}", path.display()), e))?;
    }
    Ok(RunOutcome {
        run: run.clone(),
        events: [(counters[0] as u64, pedestal_counts[0]), (counters[1] as u64, pedestal_counts[1])],
        coincident,
        bytes,
    })
}

/// FNV-1a (64 bit) of the samples' little-endian bytes in software pixel order: the truth
/// files carry it so that any reader's waveforms can be checked exactly.
pub fn samples_fnv1a(samples: &[i16]) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    for s in samples {
        for b in s.to_le_bytes() {
            h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// The readout order of DigiCam's pixels (`pixelsIndices`): readout position i holds
/// software pixel `order[i]`. The camera reads its 1296 pixels module by module (108
/// modules of 12 pixels); the simulated camera interleaves the modules so that the order is
/// a real permutation, the same in every event, as in the real files.
pub fn readout_order() -> Vec<u16> {
    let (modules, per_module) = (108usize, 12usize);
    (0..modules * per_module).map(|i| ((i % modules) * per_module + i / modules) as u16).collect()
}

fn write_night_truth(
    spec: &NightSpec,
    layout: &NightLayout,
    cams: &[DigicamElectronics; 2],
    outcomes: &[RunOutcome],
) -> Result<()> {
    let runs: Vec<Value> = outcomes
        .iter()
        .map(|o| {
            let (kind, target, wobble) = match &o.run.kind {
                RunKind::Dark => ("dark", Value::Null, Value::Null),
                RunKind::Transition => ("transition", Value::Null, Value::Null),
                RunKind::Science { target, wobble } => {
                    ("science", json!(spec.targets[*target].name), json!(format!("W{wobble}")))
                }
            };
            let files = [1, 2].map(|t| {
                layout
                    .raw_file(t, o.run.run_number)
                    .strip_prefix(&layout.root)
                    .unwrap_or(Path::new(""))
                    .display()
                    .to_string()
            });
            json!({
                "run_number": o.run.run_number, "kind": kind, "target": target, "wobble": wobble,
                "start_unix_s": o.run.start_unix_s, "duration_s": o.run.duration_s,
                "pointing_ra_deg": o.run.pointing.0, "pointing_dec_deg": o.run.pointing.1,
                "files": files,
                "events": [o.events[0].0, o.events[1].0],
                "pedestal_events": [o.events[0].1, o.events[1].1],
                "coincident_showers": o.coincident,
                "bytes": o.bytes,
            })
        })
        .collect();
    let cameras: Vec<Value> = cams
        .iter()
        .enumerate()
        .map(|(k, c)| {
            json!({
                "telescope_id": c.tel_id,
                "calibration_table": layout.calibration_file(k + 1).strip_prefix(&layout.root).unwrap_or(Path::new("")).display().to_string(),
                "voltage_drop_factor": c.voltage_drop,
                "nsb_pe_per_sample": c.nsb_pe_per_sample,
                "dead_pixels": c.calib_flag.iter().enumerate().filter(|(_, &f)| f != 1).map(|(p, _)| p).collect::<Vec<_>>(),
            })
        })
        .collect();
    let night = json!({
        "date": format!("{:04}-{:02}-{:02}", spec.date.0, spec.date.1, spec.date.2),
        "seed": spec.seed,
        "pedestal_rate_hz": spec.pedestal_rate_hz,
        "nsb_rate_ghz": spec.nsb_rate_ghz,
        "noise_pe": spec.noise_pe,
        "targets": spec.targets.iter().map(|t| json!({"name": t.name, "ra_deg": t.ra_deg, "dec_deg": t.dec_deg, "amplitude": t.amplitude, "index": t.index})).collect::<Vec<_>>(),
        "cameras": cameras,
        "runs": runs,
    });
    let path = layout.truth_dir().join("night.json");
    let text = serde_json::to_string_pretty(&night).expect("json") + "\n";
    std::fs::write(&path, text).map_err(|e| Error::io(format!("cannot write {}", path.display()), e))
}
