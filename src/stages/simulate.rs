//! The `simulate` stage: the embedded shower simulator (see [`crate::sim`]) writing an R1 file.
//!
//! Parameters (defaults in brackets; they belong to the stage version, bump it to change one):
//! `particle` ("gamma" | "proton"), `n_events` (showers thrown), `seed`, `tel_id` [1],
//! `energy_min_tev` [0.5], `energy_max_tev` [200], `spectral_index` [−2],
//! `max_impact_m` [400], `viewcone_deg` [0: point-like], `source_offset_deg` [0],
//! `nsb_rate_ghz` [0.05], `noise_pe` [0.3], `trigger_pe` [25], `pointing_alt_deg` [70],
//! `pointing_az_deg` [180] (the pointing is recorded, and makes camera positions sky directions). Only triggered events are
//! written; the thrown-shower information IRFs need goes to `/configuration/simulation/run`,
//! and every thrown shower into sim_telarray's thrown-shower histogram (core distance × energy,
//! `/simulation/service/shower_distribution`, which sst1mpipe's `get_mc_info` checks).
//! With `"stereo": true` each shower is seen by telescopes 1 and 2 (sst1mpipe's Monte Carlo ids,
//! at the array's two positions, which each R1 records as `tel_position_m` and its DL1 as its layout; cores
//! thrown around the array centre), and the stage writes
//! one R1 file per telescope (`r1_tel_001`, `r1_tel_002`) with the events that telescope
//! triggered on, under shared event ids.
//!
//! # Observation runs (`"mode": "observation"`)
//!
//! A run of `duration_s` seconds from `start_unix_s` (UTC), tracking the wobble position
//! `wobble_offset_deg` [0.4] from the target (`target_ra_deg` [83.6333], `target_dec_deg`
//! [22.0145]: the Crab) at position angle `wobble_angle_deg` [0] (north through east), from
//! the site of `telescope_coords.tel_NNN` in the config. The sky holds a point source at the
//! target with dN/dE = `source_amplitude` (E/TeV)^`source_index` (default: the HEGRA Crab,
//! 2.83e-11 cm⁻² s⁻¹ TeV⁻¹, −2.62) thrown on `source_energy_min_tev` [0.2] –
//! `source_energy_max_tev` [200] within `source_max_impact_m` [400], and cosmic-ray protons
//! at the rate of `proton_amplitude` (E/TeV)^`proton_index` (default pyirf's IRFDOC proton
//! spectrum, 9.8e-6 cm⁻² s⁻¹ TeV⁻¹ sr⁻¹, −2.62) on `proton_energy_min_tev` [1] –
//! `proton_energy_max_tev` [400], within `proton_max_impact_m` [500] and
//! `proton_viewcone_deg` [4] of the pointing. The numbers of showers are Poisson draws of the
//! expected numbers (flux × area × solid angle × duration), their arrival times uniform in the
//! run; each event gets its time, the pointing (alt/az) at that time, and the source where the
//! tracking puts it in the camera. The file has the trigger table and the observation row
//! (see [`crate::io::r1`]); the truth stays in the shower table, for checks.
//! With `"stereo": true` (instead of `tel_id`) both telescopes see the run, as in a stereo
//! production: every shower is simulated once at the array's two positions (the site of
//! `telescope_coords.tel_001`), and each telescope's R1 (`r1_tel_001`, `r1_tel_002`) holds the
//! events it triggered on, under shared event ids and times (what SWAT gives real runs), with
//! the same observation row.
use super::params::Params;
use super::{DeclaredOutput, Stage, StageContext, StagePlan};
use crate::astro::{self, Site};
use crate::error::{Error, Result};
use crate::instrument::camera::CameraGeometry;
use crate::io::r1::{ObservationRow, R1Writer, RunInfo, ShowerDistribution, ShowerRow, SimulationRunRow, TriggerRow};
use crate::sim::{rng::Rng, Particle, SimConfig, Simulator};
use serde_json::Value;

pub struct SimulateStage;

const KNOWN: &[&str] = &[
    "particle",
    "n_events",
    "seed",
    "tel_id",
    "energy_min_tev",
    "energy_max_tev",
    "spectral_index",
    "max_impact_m",
    "viewcone_deg",
    "source_offset_deg",
    "nsb_rate_ghz",
    "noise_pe",
    "trigger_pe",
    "pointing_alt_deg",
    "pointing_az_deg",
    "stereo",
];
const OBSERVATION_KNOWN: &[&str] = &[
    "mode",
    "stereo",
    "obs_id",
    "seed",
    "tel_id",
    "start_unix_s",
    "duration_s",
    "target_ra_deg",
    "target_dec_deg",
    "wobble_offset_deg",
    "wobble_angle_deg",
    "source_amplitude",
    "source_index",
    "source_energy_min_tev",
    "source_energy_max_tev",
    "source_max_impact_m",
    "proton_amplitude",
    "proton_index",
    "proton_energy_min_tev",
    "proton_energy_max_tev",
    "proton_max_impact_m",
    "proton_viewcone_deg",
    "nsb_rate_ghz",
    "noise_pe",
    "trigger_pe",
];
const MAX_EVENTS: u64 = 50_000_000;

/// An observation run to simulate.
pub(crate) struct ObservationPlan {
    pub row: ObservationRow,
    pub tel_id: u16,
    /// Both telescopes (1 and 2 at the array's positions), the site being telescope 1's.
    pub stereo: bool,
    pub gamma: SimConfig,
    pub proton: SimConfig,
}

fn is_observation(params: &Value) -> bool {
    params.get("mode").and_then(Value::as_str) == Some("observation")
}

/// ∫ A E^index dE over [lo, hi] (index ≠ −1).
fn integral_flux(amplitude: f64, index: f64, lo: f64, hi: f64) -> f64 {
    amplitude * (hi.powf(index + 1.0) - lo.powf(index + 1.0)) / (index + 1.0)
}

/// The position `offset` degrees from (ra, dec) at position angle `angle` (deg, north
/// through east).
pub(crate) fn offset_position(ra: f64, dec: f64, offset: f64, angle: f64) -> (f64, f64) {
    let (d, r, pa) = (dec.to_radians(), offset.to_radians(), angle.to_radians());
    let sin_dec = d.sin() * r.cos() + d.cos() * r.sin() * pa.cos();
    let dec_p = sin_dec.clamp(-1.0, 1.0).asin();
    let dra = (pa.sin() * r.sin() * d.cos()).atan2(r.cos() - d.sin() * sin_dec);
    ((ra + dra.to_degrees()).rem_euclid(360.0), dec_p.to_degrees())
}

/// Where the tracking puts thrown shower `index` at `time`: the pointing (alt, az, deg) at the
/// site, and the configuration it is drawn from with its centre in the camera (m): a gamma
/// comes from the target where the tracking puts it, a proton's view cone is centred on the
/// pointing.
pub(crate) struct ShowerAim<'a> {
    pub pointing_deg: (f64, f64),
    pub config: &'a SimConfig,
    pub centre_m: (f64, f64),
    pub is_gamma: bool,
}

impl ObservationPlan {
    pub fn aim(&self, site: Site, time: f64, index: u64, n_gammas: u64) -> ShowerAim<'_> {
        let o = &self.row;
        let (alt, az) = astro::radec_to_altaz(o.ra_pnt, o.dec_pnt, site, time);
        let is_gamma = index < n_gammas;
        let (config, centre_m) = if is_gamma {
            let (src_alt, src_az) = astro::radec_to_altaz(o.target_ra, o.target_dec, site, time);
            let focal = crate::instrument::EQUIVALENT_FOCAL_LENGTH_M;
            (&self.gamma, astro::altaz_to_camera(src_alt, src_az, focal, alt, az))
        } else {
            (&self.proton, (0.0, 0.0))
        };
        ShowerAim { pointing_deg: (alt, az), config, centre_m, is_gamma }
    }
}

pub(crate) fn parse_observation(params: &Value, at: &str) -> Result<ObservationPlan> {
    let p = Params::new(params, OBSERVATION_KNOWN, "simulate", at)?;
    let bad = |what: &str| Error::msg(format!("{at}.params: {what}"));
    let obs_id = p.u64_or("obs_id", None)?;
    if obs_id == 0 || obs_id > i32::MAX as u64 {
        return Err(bad("obs_id must be between 1 and 2147483647"));
    }
    let tel_id = u16::try_from(p.u64_or("tel_id", Some(1))?).map_err(|_| bad("tel_id out of range"))?;
    let stereo = p.bool_or("stereo", false)?;
    if stereo && params.get("tel_id").is_some() {
        return Err(bad("tel_id and stereo exclude each other (a stereo run is seen by telescopes 1 and 2)"));
    }
    let seed = p.u64_or("seed", None)?;
    let start = p.f64_or("start_unix_s", f64::NAN)?;
    let duration = p.f64_or("duration_s", f64::NAN)?;
    let valid = start > 0.0 && duration > 0.0 && duration <= 86_400.0;
    if !valid {
        return Err(bad("start_unix_s (> 0) and duration_s (0 < d ≤ 86400) are required, in seconds"));
    }
    let (target_ra, target_dec) = (p.f64_or("target_ra_deg", 83.6333)?, p.f64_or("target_dec_deg", 22.0145)?);
    if !(0.0..360.0).contains(&target_ra) || !(-90.0..=90.0).contains(&target_dec) {
        return Err(bad("target_ra_deg must be in [0, 360) and target_dec_deg in [−90, 90]"));
    }
    let (wobble_offset, wobble_angle) = (p.f64_or("wobble_offset_deg", 0.4)?, p.f64_or("wobble_angle_deg", 0.0)?);
    if !(0.0..=3.0).contains(&wobble_offset) {
        return Err(bad("wobble_offset_deg must be in [0, 3]"));
    }
    let (ra_pnt, dec_pnt) = offset_position(target_ra, target_dec, wobble_offset, wobble_angle);
    let common = SimConfig {
        particle: Particle::Gamma,
        energy_min_tev: p.f64_or("source_energy_min_tev", 0.2)?,
        energy_max_tev: p.f64_or("source_energy_max_tev", 200.0)?,
        spectral_index: p.f64_or("source_index", -2.62)?,
        max_impact_m: p.f64_or("source_max_impact_m", 400.0)?,
        viewcone_deg: 0.0,
        source_offset_deg: 0.0,
        nsb_rate_ghz: p.f64_or("nsb_rate_ghz", 0.05)?,
        noise_pe: p.f64_or("noise_pe", 0.3)?,
        trigger_pe: p.f64_or("trigger_pe", 25.0)?,
        seed,
    };
    let proton = SimConfig {
        particle: Particle::Proton,
        energy_min_tev: p.f64_or("proton_energy_min_tev", 1.0)?,
        energy_max_tev: p.f64_or("proton_energy_max_tev", 400.0)?,
        spectral_index: p.f64_or("proton_index", -2.62)?,
        max_impact_m: p.f64_or("proton_max_impact_m", 500.0)?,
        viewcone_deg: p.f64_or("proton_viewcone_deg", 4.0)?,
        ..common.clone()
    };
    for c in [&common, &proton] {
        if !(c.energy_min_tev > 0.0 && c.energy_max_tev > c.energy_min_tev) || c.spectral_index == -1.0 {
            return Err(bad("each energy range needs 0 < min < max, and an index other than −1"));
        }
        if c.max_impact_m.is_nan()
            || c.max_impact_m <= 0.0
            || !(0.0..=10.0).contains(&c.viewcone_deg)
            || c.nsb_rate_ghz < 0.0
            || c.noise_pe < 0.0
        {
            return Err(bad("impacts must be positive, the proton view cone within [0, 10] deg, NSB and noise ≥ 0"));
        }
    }
    let (source_amplitude, proton_amplitude) =
        (p.f64_or("source_amplitude", 2.83e-11)?, p.f64_or("proton_amplitude", 9.8e-6)?);
    if source_amplitude < 0.0 || proton_amplitude < 0.0 {
        return Err(bad("source_amplitude and proton_amplitude must be ≥ 0"));
    }
    let row = ObservationRow {
        obs_id: obs_id as i64,
        tstart: start,
        tstop: start + duration,
        ra_pnt,
        dec_pnt,
        target_ra,
        target_dec,
        wobble_offset,
        wobble_angle,
        nsb_rate: common.nsb_rate_ghz,
        source_amplitude,
        source_index: common.spectral_index,
        proton_amplitude,
        proton_index: proton.spectral_index,
    };
    Ok(ObservationPlan { row, tel_id, stereo, gamma: common, proton })
}

/// The site of telescope `tel` from the config's `telescope_coords`.
pub(crate) fn site(config: &Value, tel: u16) -> Result<Site> {
    let entry = config.get("telescope_coords").and_then(|c| c.get(format!("tel_{tel:03}")));
    let get = |k: &str| entry.and_then(|e| e.get(k)).and_then(Value::as_f64);
    match (get("long_deg"), get("lat_deg")) {
        (Some(lon_deg), Some(lat_deg)) => Ok(Site { lon_deg, lat_deg }),
        _ => Err(Error::msg(format!("config telescope_coords.tel_{tel:03} needs long_deg and lat_deg (degrees)"))),
    }
}

/// The showers an observation run throws: Poisson numbers of source gammas and protons
/// (flux × area × solid angle × duration), each with its arrival time, in time order; shower
/// `index` < `n_gammas` is a gamma (event `index` of the gamma configuration), the others
/// protons (event `index` of the proton configuration).
pub(crate) struct ThrownShowers {
    /// (arrival time, Unix s; shower index), in time order.
    pub showers: Vec<(f64, u64)>,
    pub n_gammas: u64,
    pub n_protons: u64,
    pub expected_gammas: f64,
    pub expected_protons: f64,
}

impl ThrownShowers {
    pub fn draw(plan: &ObservationPlan) -> Result<ThrownShowers> {
        let o = &plan.row;
        let duration = o.tstop - o.tstart;
        let cm2 = |r_m: f64| std::f64::consts::PI * r_m * r_m * 1e4;
        let (g, p) = (&plan.gamma, &plan.proton);
        let expected_gammas = integral_flux(o.source_amplitude, g.spectral_index, g.energy_min_tev, g.energy_max_tev)
            * cm2(g.max_impact_m)
            * duration;
        let solid_angle = std::f64::consts::TAU * (1.0 - p.viewcone_deg.to_radians().cos());
        let expected_protons = integral_flux(o.proton_amplitude, p.spectral_index, p.energy_min_tev, p.energy_max_tev)
            * cm2(p.max_impact_m)
            * solid_angle
            * duration;
        if expected_gammas + expected_protons > MAX_EVENTS as f64 {
            return Err(Error::msg(format!(
                "simulate: {expected_gammas:.0} gammas and {expected_protons:.0} protons expected, more than {MAX_EVENTS}; shorten the run"
            )));
        }
        let mut counts = Rng::new(g.seed, u64::MAX - 1);
        let n_gammas = counts.poisson(expected_gammas);
        let n_protons = counts.poisson(expected_protons);
        // Arrival times: one draw per thrown shower (gammas first, then protons), then time order.
        let mut times = Rng::new(g.seed, u64::MAX - 2);
        let mut showers: Vec<(f64, u64)> =
            (0..n_gammas + n_protons).map(|i| (o.tstart + duration * times.uniform(), i)).collect();
        showers.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        Ok(ThrownShowers { showers, n_gammas, n_protons, expected_gammas, expected_protons })
    }
}

/// Simulates an observation run into `r1.h5`: Poisson numbers of source gammas and protons,
/// uniform arrival times, each shower seen from where the tracking points at its time.
fn run_observation(plan: &ObservationPlan, ctx: &mut StageContext) -> Result<()> {
    let o = &plan.row;
    let site = site(ctx.config, plan.tel_id)?;
    let duration = o.tstop - o.tstart;
    let thrown = ThrownShowers::draw(plan)?;
    let ThrownShowers { n_gammas, n_protons, expected_gammas, expected_protons, .. } = thrown;
    let thrown = thrown.showers;
    let _ = writeln!(
        ctx.log,
        "observation run {}: {duration} s, pointing RA {:.4} Dec {:.4}; expected {expected_gammas:.1} source gammas and {expected_protons:.1} protons thrown, drew {n_gammas} and {n_protons}",
        o.obs_id, o.ra_pnt, o.dec_pnt
    );
    let mut sim = Simulator::new(CameraGeometry::digicam());
    if plan.stereo {
        return observe_in_stereo(plan, site, &thrown, n_gammas, &mut sim, ctx);
    }
    let mut writer =
        R1Writer::create(&ctx.work_dir.join("r1.h5"), plan.tel_id, true, ctx.activity_key, ctx.pipeline_version)?;
    let mut waveform = vec![0.0f32; crate::io::r1::WAVEFORM_LEN];
    let (mut triggered_gammas, mut triggered_protons) = (0u64, 0u64);
    for (event_id, &(time, index)) in thrown.iter().enumerate() {
        let aim = plan.aim(site, time, index, n_gammas);
        let ((alt, az), is_gamma) = (aim.pointing_deg, aim.is_gamma);
        let s = sim.simulate_at(aim.config, index, aim.centre_m, &mut waveform);
        if !s.triggered {
            continue;
        }
        if is_gamma {
            triggered_gammas += 1;
        } else {
            triggered_protons += 1;
        }
        let event_id = event_id as u64;
        writer.write(
            event_id,
            &waveform,
            shower_row(event_id, &s),
            Some(TriggerRow { event_id, time, pointing_alt: alt, pointing_az: az }),
        )?;
    }
    writer.finish(RunInfo::Observation(*o))?;
    let _ = writeln!(
        ctx.log,
        "recorded {} events: {triggered_gammas} source gammas, {triggered_protons} protons ({:.1} Hz)",
        triggered_gammas + triggered_protons,
        (triggered_gammas + triggered_protons) as f64 / duration
    );
    Ok(())
}

/// A telescope of a stereo simulation: its id and ground position (m).
type StereoTelescope = (u16, [f64; 3]);

/// The two telescopes of a stereo simulation at the array's positions, and an R1 writer for
/// each (`r1_tel_NNN.h5`, recording its position; `observation`: with trigger rows).
fn stereo_writers(ctx: &StageContext, observation: bool) -> Result<(Vec<StereoTelescope>, Vec<R1Writer>)> {
    let telescopes: Vec<(u16, [f64; 3])> = STEREO_TELESCOPES
        .iter()
        .map(|&t| (t, crate::instrument::ground_position(t).expect("the stereo telescopes have positions")))
        .collect();
    let writers = telescopes
        .iter()
        .map(|&(t, position)| {
            let w = R1Writer::create(
                &ctx.work_dir.join(format!("r1_tel_{t:03}.h5")),
                t,
                observation,
                ctx.activity_key,
                ctx.pipeline_version,
            )?;
            w.set_tel_position(position)?;
            Ok(w)
        })
        .collect::<Result<Vec<_>>>()?;
    Ok((telescopes, writers))
}

/// The stereo part of [`run_observation`]: every thrown shower seen by telescopes 1 and 2
/// (shared event ids and times, each telescope's R1 holding the events it triggered on).
fn observe_in_stereo(
    plan: &ObservationPlan,
    site: Site,
    thrown: &[(f64, u64)],
    n_gammas: u64,
    sim: &mut Simulator,
    ctx: &mut StageContext,
) -> Result<()> {
    let o = &plan.row;
    let (telescopes, mut writers) = stereo_writers(ctx, true)?;
    let mut waveforms = vec![vec![0.0f32; crate::io::r1::WAVEFORM_LEN]; telescopes.len()];
    let (mut triggered, mut both) = (vec![[0u64; 2]; telescopes.len()], 0u64);
    for (event_id, &(time, index)) in thrown.iter().enumerate() {
        let aim = plan.aim(site, time, index, n_gammas);
        let ((alt, az), is_gamma) = (aim.pointing_deg, aim.is_gamma);
        let pointing = (alt.to_radians(), az.to_radians());
        let s = sim.simulate_stereo_at(aim.config, index, aim.centre_m, pointing, &telescopes, &mut waveforms);
        let event_id = event_id as u64;
        for (k, view) in s.telescopes.iter().enumerate().filter(|(_, v)| v.triggered) {
            triggered[k][!is_gamma as usize] += 1;
            let truth = stereo_shower_row(event_id, &s, view);
            let trigger = TriggerRow { event_id, time, pointing_alt: alt, pointing_az: az };
            writers[k].write(event_id, &waveforms[k], truth, Some(trigger))?;
        }
        both += s.telescopes.iter().all(|v| v.triggered) as u64;
    }
    for writer in writers {
        writer.finish(RunInfo::Observation(*o))?;
    }
    let duration = o.tstop - o.tstart;
    for (k, &(t, _)) in telescopes.iter().enumerate() {
        let [g, p] = triggered[k];
        let _ = writeln!(
            ctx.log,
            "telescope {t} recorded {} events: {g} source gammas, {p} protons ({:.1} Hz)",
            g + p,
            (g + p) as f64 / duration
        );
    }
    let _ = writeln!(ctx.log, "{both} events recorded by both telescopes");
    Ok(())
}

/// One telescope's truth row of a stereo shower.
fn stereo_shower_row(event_id: u64, s: &crate::sim::StereoShower, view: &crate::sim::TelescopeView) -> ShowerRow {
    ShowerRow {
        event_id,
        true_energy: s.energy_tev,
        true_core_x: s.core_x_m,
        true_core_y: s.core_y_m,
        true_impact: view.impact_m,
        true_camera_x: s.true_x_m,
        true_camera_y: s.true_y_m,
        true_h_max: s.h_max_m,
        true_shower_primary_id: s.primary_id,
        n_photoelectrons: view.n_photoelectrons,
    }
}

fn shower_row(event_id: u64, s: &crate::sim::Shower) -> ShowerRow {
    ShowerRow {
        event_id,
        true_energy: s.energy_tev,
        true_core_x: s.core_x_m,
        true_core_y: s.core_y_m,
        true_impact: s.impact_m,
        true_camera_x: s.true_x_m,
        true_camera_y: s.true_y_m,
        true_h_max: s.h_max_m,
        true_shower_primary_id: s.primary_id,
        n_photoelectrons: s.n_photoelectrons,
    }
}

/// Simulation settings, the number of showers, the telescope, its pointing (alt, az; deg), and
/// whether both telescopes (Monte Carlo ids 1 and 2) see each shower.
type Parsed = (SimConfig, u64, u16, (f64, f64), bool);

/// The telescopes of a stereo production: sst1mpipe's Monte Carlo ids at the array's positions.
const STEREO_TELESCOPES: [u16; 2] = [1, 2];

fn parse(params: &Value, at: &str) -> Result<Parsed> {
    if let Some(mode) = params.get("mode") {
        return Err(Error::msg(format!(
            "{at}.params.mode: {mode} is not a mode; \"observation\" simulates an observation run, no mode a Monte Carlo production"
        )));
    }
    let p = Params::new(params, KNOWN, "simulate", at)?;
    let particle = match p.str_required("particle")? {
        "gamma" => Particle::Gamma,
        "proton" => Particle::Proton,
        other => {
            return Err(Error::msg(format!(
                "{at}.params.particle: unknown particle \"{other}\"{}",
                crate::text::suggestion(other, ["gamma", "proton"])
            )))
        }
    };
    let n_events = p.u64_or("n_events", None)?;
    if n_events == 0 || n_events > MAX_EVENTS {
        return Err(Error::msg(format!("{at}.params.n_events: must be between 1 and {MAX_EVENTS}")));
    }
    let tel_id = p.u64_or("tel_id", Some(1))?;
    let tel_id = u16::try_from(tel_id).map_err(|_| Error::msg(format!("{at}.params.tel_id: out of range")))?;
    let stereo = match params.get("stereo") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(other) => return Err(Error::msg(format!("{at}.params.stereo: {other} is not true or false"))),
    };
    if stereo && params.get("tel_id").is_some() {
        return Err(Error::msg(format!(
            "{at}.params: tel_id and stereo exclude each other (a stereo production simulates telescopes 1 and 2)"
        )));
    }
    let cfg = SimConfig {
        particle,
        energy_min_tev: p.f64_or("energy_min_tev", 0.5)?,
        energy_max_tev: p.f64_or("energy_max_tev", 200.0)?,
        spectral_index: p.f64_or("spectral_index", -2.0)?,
        max_impact_m: p.f64_or("max_impact_m", 400.0)?,
        viewcone_deg: p.f64_or("viewcone_deg", 0.0)?,
        source_offset_deg: p.f64_or("source_offset_deg", 0.0)?,
        nsb_rate_ghz: p.f64_or("nsb_rate_ghz", 0.05)?,
        noise_pe: p.f64_or("noise_pe", 0.3)?,
        trigger_pe: p.f64_or("trigger_pe", 25.0)?,
        seed: p.u64_or("seed", None)?,
    };
    if !(cfg.energy_min_tev > 0.0 && cfg.energy_max_tev > cfg.energy_min_tev) {
        return Err(Error::msg(format!("{at}.params: need 0 < energy_min_tev < energy_max_tev")));
    }
    if cfg.spectral_index == -1.0 {
        return Err(Error::msg(format!("{at}.params.spectral_index: −1 is not supported")));
    }
    if cfg.max_impact_m <= 0.0 || cfg.viewcone_deg < 0.0 || cfg.nsb_rate_ghz < 0.0 || cfg.noise_pe < 0.0 {
        return Err(Error::msg(format!("{at}.params: impact must be positive; view cone, NSB and noise non-negative")));
    }
    let pointing = (p.f64_or("pointing_alt_deg", 70.0)?, p.f64_or("pointing_az_deg", 180.0)?);
    if !(0.0..=90.0).contains(&pointing.0) || !(0.0..360.0).contains(&pointing.1) {
        return Err(Error::msg(format!(
            "{at}.params: pointing_alt_deg must be in [0, 90] and pointing_az_deg in [0, 360), in degrees"
        )));
    }
    Ok((cfg, n_events, tel_id, pointing, stereo))
}

/// A stereo production: each shower seen by telescopes 1 and 2 (see
/// [`Simulator::simulate_stereo`]), one R1 file per telescope with the events it triggered on,
/// under the same event ids.
fn run_stereo(cfg: &SimConfig, n_events: u64, pointing: (f64, f64), ctx: &mut StageContext) -> Result<()> {
    let (telescopes, mut writers) = stereo_writers(ctx, false)?;
    let mut sim = Simulator::new(CameraGeometry::digicam());
    let mut waveforms = vec![vec![0.0f32; crate::io::r1::WAVEFORM_LEN]; telescopes.len()];
    let (mut triggered, mut both) = (vec![0u64; telescopes.len()], 0u64);
    let pointing_rad = (pointing.0.to_radians(), pointing.1.to_radians());
    let mut thrown = ShowerDistribution::sim_telarray_binning(1, cfg.max_impact_m);
    for i in 0..n_events {
        let s = sim.simulate_stereo(cfg, i, pointing_rad, &telescopes, &mut waveforms);
        thrown.fill(s.axis_distance_m, s.energy_tev);
        for (k, view) in s.telescopes.iter().enumerate().filter(|(_, v)| v.triggered) {
            triggered[k] += 1;
            let truth = stereo_shower_row(i, &s, view);
            writers[k].write(i, &waveforms[k], truth, None)?;
        }
        both += s.telescopes.iter().all(|v| v.triggered) as u64;
    }
    for writer in writers {
        writer.write_shower_distributions(std::slice::from_ref(&thrown))?;
        writer.finish(RunInfo::Simulation(simulation_run(cfg, n_events, pointing)))?;
    }
    let _ = writeln!(
        ctx.log,
        "simulated {n_events} {:?} showers in stereo: {} triggered telescope 1, {} telescope 2, {both} both",
        cfg.particle, triggered[0], triggered[1]
    );
    Ok(())
}

/// The thrown-shower description of a Monte Carlo production.
fn simulation_run(cfg: &SimConfig, n_events: u64, pointing: (f64, f64)) -> SimulationRunRow {
    SimulationRunRow {
        n_showers: n_events,
        shower_reuse: 1,
        energy_range_min: cfg.energy_min_tev,
        energy_range_max: cfg.energy_max_tev,
        spectral_index: cfg.spectral_index,
        min_scatter_range: 0.0,
        max_scatter_range: cfg.max_impact_m,
        min_viewcone_radius: 0.0,
        max_viewcone_radius: cfg.viewcone_deg,
        source_offset: cfg.source_offset_deg,
        nsb_rate: cfg.nsb_rate_ghz,
        seed: cfg.seed,
        pointing_alt: pointing.0,
        pointing_az: pointing.1,
    }
}

impl Stage for SimulateStage {
    fn name(&self) -> &'static str {
        "simulate"
    }

    fn version(&self) -> &'static str {
        "6"
    }

    fn plan(&self, params: &Value, input_roles: &[&str], at: &str) -> Result<StagePlan> {
        if !input_roles.is_empty() {
            return Err(Error::msg(format!("{at}: stage simulate takes no inputs")));
        }
        let (config_keys, config_read, stereo) = if is_observation(params) {
            let plan = parse_observation(params, at)?;
            (vec![format!("telescope_coords.tel_{:03}", plan.tel_id)], vec![super::site_height_unused()], plan.stereo)
        } else {
            (Vec::new(), Vec::new(), parse(params, at)?.4)
        };
        let outputs = if stereo {
            STEREO_TELESCOPES
                .iter()
                .map(|t| DeclaredOutput {
                    role: format!("r1_tel_{t:03}"),
                    file: format!("r1_tel_{t:03}.h5").into(),
                    kind: "r1-mc".into(),
                })
                .collect()
        } else {
            vec![DeclaredOutput { role: "r1".into(), file: "r1.h5".into(), kind: "r1-mc".into() }]
        };
        Ok(StagePlan { config_keys, config_read, outputs })
    }

    /// Simulated R1 is the bulk of a production (ten times its DL1) and cheap to remake next
    /// to its size: recomputable unless the recipe step keeps it.
    fn output_recomputable(&self, output: &DeclaredOutput) -> bool {
        output.kind == "r1-mc"
    }

    fn config_scope(&self) -> Vec<&'static str> {
        vec!["telescope_coords.*"]
    }

    fn run(&self, ctx: &mut StageContext) -> Result<()> {
        if is_observation(ctx.params) {
            let plan = parse_observation(ctx.params, "simulate")?;
            return run_observation(&plan, ctx);
        }
        let (cfg, n_events, tel_id, pointing, stereo) = parse(ctx.params, "simulate")?;
        if stereo {
            return run_stereo(&cfg, n_events, pointing, ctx);
        }
        let mut sim = Simulator::new(CameraGeometry::digicam());
        let mut writer =
            R1Writer::create(&ctx.work_dir.join("r1.h5"), tel_id, false, ctx.activity_key, ctx.pipeline_version)?;
        let mut waveform = vec![0.0f32; crate::io::r1::WAVEFORM_LEN];
        let mut triggered = 0u64;
        let mut thrown = ShowerDistribution::sim_telarray_binning(1, cfg.max_impact_m);
        for i in 0..n_events {
            let s = sim.simulate(&cfg, i, &mut waveform);
            thrown.fill(s.impact_m, s.energy_tev);
            if !s.triggered {
                continue;
            }
            triggered += 1;
            writer.write(i, &waveform, shower_row(i, &s), None)?;
        }
        writer.write_shower_distributions(&[thrown])?;
        writer.finish(RunInfo::Simulation(simulation_run(&cfg, n_events, pointing)))?;
        let _ = writeln!(ctx.log, "simulated {n_events} {:?} showers, {triggered} triggered", cfg.particle);
        Ok(())
    }
}
