//! The `simulate` stage: the embedded shower simulator (see [`crate::sim`]) writing an R1 file.
//!
//! Parameters (defaults in brackets; they belong to the stage version, bump it to change one):
//! `particle` ("gamma" | "proton"), `n_events` (showers thrown), `seed`, `tel_id` [1],
//! `energy_min_tev` [0.5], `energy_max_tev` [200], `spectral_index` [−2],
//! `max_impact_m` [400], `viewcone_deg` [0: point-like], `source_offset_deg` [0],
//! `nsb_rate_ghz` [0.05], `noise_pe` [0.3], `trigger_pe` [25], `pointing_alt_deg` [70],
//! `pointing_az_deg` [180] (the pointing is recorded, and makes camera positions sky directions). Only triggered events are
//! written; the thrown-shower information IRFs need goes to `/configuration/simulation/run`.
use super::params::Params;
use super::{DeclaredOutput, Stage, StageContext, StagePlan};
use crate::error::{Error, Result};
use crate::instrument::camera::CameraGeometry;
use crate::io::r1::{R1Writer, ShowerRow, SimulationRunRow};
use crate::sim::{Particle, SimConfig, Simulator};
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
];
const MAX_EVENTS: u64 = 50_000_000;

/// Simulation settings, the number of showers, the telescope, and its pointing (alt, az; deg).
type Parsed = (SimConfig, u64, u16, (f64, f64));

fn parse(params: &Value, at: &str) -> Result<Parsed> {
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
    Ok((cfg, n_events, tel_id, pointing))
}

impl Stage for SimulateStage {
    fn name(&self) -> &'static str {
        "simulate"
    }

    fn version(&self) -> &'static str {
        "2"
    }

    fn plan(&self, params: &Value, input_roles: &[&str], at: &str) -> Result<StagePlan> {
        parse(params, at)?;
        if !input_roles.is_empty() {
            return Err(Error::msg(format!("{at}: stage simulate takes no inputs")));
        }
        Ok(StagePlan {
            config_keys: Vec::new(),
            outputs: vec![DeclaredOutput { role: "r1".into(), file: "r1.h5".into(), kind: "r1-mc".into() }],
        })
    }

    fn run(&self, ctx: &mut StageContext) -> Result<()> {
        let (cfg, n_events, tel_id, pointing) = parse(ctx.params, "simulate")?;
        let mut sim = Simulator::new(CameraGeometry::digicam());
        let mut writer = R1Writer::create(&ctx.work_dir.join("r1.h5"), tel_id, ctx.activity_key, ctx.pipeline_version)?;
        let mut waveform = vec![0.0f32; crate::io::r1::WAVEFORM_LEN];
        let mut triggered = 0u64;
        for i in 0..n_events {
            let s = sim.simulate(&cfg, i, &mut waveform);
            if !s.triggered {
                continue;
            }
            triggered += 1;
            writer.write(
                i,
                &waveform,
                ShowerRow {
                    event_id: i,
                    true_energy: s.energy_tev,
                    true_core_x: s.core_x_m,
                    true_core_y: s.core_y_m,
                    true_impact: s.impact_m,
                    true_camera_x: s.true_x_m,
                    true_camera_y: s.true_y_m,
                    true_h_max: s.h_max_m,
                    true_shower_primary_id: s.primary_id,
                    n_photoelectrons: s.n_photoelectrons,
                },
            )?;
        }
        writer.finish(SimulationRunRow {
            n_showers: n_events,
            energy_range_min: cfg.energy_min_tev,
            energy_range_max: cfg.energy_max_tev,
            spectral_index: cfg.spectral_index,
            max_scatter_range: cfg.max_impact_m,
            max_viewcone_radius: cfg.viewcone_deg,
            source_offset: cfg.source_offset_deg,
            nsb_rate: cfg.nsb_rate_ghz,
            seed: cfg.seed,
            pointing_alt: pointing.0,
            pointing_az: pointing.1,
        })?;
        let _ = writeln!(ctx.log, "simulated {n_events} {:?} showers, {triggered} triggered", cfg.particle);
        Ok(())
    }
}
