//! The `dl2-dl3` stage: one observation's DL2 runs → a GADF DL3 file that gammapy reads, with
//! the instrument response that belongs to it inside.
//!
//! Inputs: `dl2` (the DL2 runs of one observation: one pointing), `irfs` (one or more
//! `make-irfs` products: the candidate nodes) and optionally `cuts` (a `gh-cuts` table; without
//! it the global `analysis.global_gammaness_cut` applies). Config keys: `event_selection`,
//! `analysis.global_gammaness_cut` (without `cuts`), `array_center_coords` (GEOLON, GEOLAT and
//! ALTITUDE of the headers, as sst1mpipe; configs without it, such as sst1mpipe's MC config,
//! give the telescope's `telescope_coords` entry instead). Parameters: `target_name` ["UNKNOWN"], `target_ra_deg` / `target_dec_deg` (default:
//! the target the runs recorded), `override_contract` [false], `event_class` (sst1mpipe's
//! `--event-classes`, one class per step: only the events of that `event_type`, from DL2
//! classified by `event-classes`, with an IRF of that class made from events classified the
//! same way; the headers say `EVTCLASS` and `EVTCLSID`).
//!
//! Stereo DL2 (`dl2-stereo` outputs) gives stereo DL3, as sst1mpipe's: sst1mpipe's stereo
//! quality cuts (`analysis.stereo_*_cut`) apply as the events are loaded, `event_selection` to
//! both telescopes' parameters; TELESCOP `SST1M_stereo`, N_TELS 2, TELLIST `<tel1>-<tel2>`; the
//! site without `array_center_coords` is the first telescope's (sst1mpipe's tel_021 frame).
//!
//! # What is an observation
//!
//! sst1mpipe starts a new observation when a run's pointing differs by more than 0.2° from the
//! current one, or when a run starts more than 2 s after the previous one ends. Here the runs
//! of one activity are one observation: a pointing change is refused (give those runs to
//! another activity, e.g. with `foreach`), and a gap becomes a new row of the GTI table
//! (ONTIME is the sum of the GTIs), which is what good time intervals are for. The GTIs are the
//! runs' recorded start and stop, merged when less than 2 s apart; the obs id is the smallest
//! of the runs'; with several runs, EVENT_ID is `obs_id << 32 | event_id` (the run's ordinal
//! instead of obs_id for sst1mpipe's 12-digit ids), so it stays unique.
//!
//! # Which IRF, and the contract
//!
//! Among the `irfs` whose gammaness cut is this activity's (same global value, or the SHA-256
//! of the same cut table), the one whose node is nearest the observation's mean zenith
//! (then azimuth, then NSB) is chosen (sst1mpipe looks the node up by directory name; here it
//! is the node recorded in the IRF headers). It must then match the DL2: made from the same
//! RF models (file hashes, role by role), with the same `event_selection` (and stereo quality
//! cuts), for the same telescope setup (a mono IRF for stereo DL2 and the reverse are refused)
//! and by the same pipeline version. Otherwise the stage refuses, printing both products and the differing
//! items side by side; `"override_contract": true` proceeds and writes the differences into
//! the DL3 header (`S1MOVRn`) and the log.
//!
//! # The file
//!
//! `dl3.fits`: PRIMARY (provenance), `EVENTS` (EVENT_ID, TIME, RA, DEC, ENERGY, DETX, DETY,
//! GAMMANESS), `GTI`, then the chosen IRF's four HDUs copied byte for byte (H.E.S.S. style:
//! one self-contained file per observation). Times are TT seconds since 2001-01-01 UTC
//! ([`crate::astro::DL3_MJDREFI`]); sst1mpipe writes Unix seconds labelled TAI, which is
//! 37 s off. DEADC = 1: the simulator has no dead time, and sst1mpipe writes 1 for data too.
//! Every header carries the activity key, pipeline version, cut, event selection, RF models
//! and the IRF's activity key.
use super::dl1_input::Dl2Selection;
use super::gh_cuts::{read_cut_table, GhCut};
use super::params::Params;
use super::{ConfigRead, ConfigWarning, DeclaredOutput, InputFile, Stage, StageContext, StagePlan, StepSetup};
use crate::astro;
use crate::contract::{self, Difference};
use crate::error::{Error, Result};
use crate::io::dl2::Dl2Reader;
use crate::io::fits::{self, BinTable, Card, Column, ColumnData, RawHdu, Value as Fv};
use crate::io::gadf::{self, CutIdentity};
use crate::io::r1::ObservationRow;
use crate::reco::EventSelection;
use serde_json::Value;
use std::collections::BTreeMap;

pub struct Dl2Dl3Stage;

const KNOWN: &[&str] = &["target_name", "target_ra_deg", "target_dec_deg", "override_contract", "event_class"];
const CHUNK: usize = 65_536;
/// sst1mpipe's limits for one observation.
const MAX_POINTING_DIFFERENCE_DEG: f64 = 0.2;
const MAX_GAP_S: f64 = 2.0;
/// The IRF HDUs a DL3 file carries, in order.
pub const IRF_HDUS: [&str; 4] = ["EFFECTIVE AREA", "ENERGY DISPERSION", "POINT SPREAD FUNCTION", "BACKGROUND"];

struct Options {
    target_name: String,
    target: Option<(f64, f64)>,
    allow_override: bool,
    /// Only the events of this sst1mpipe event class (`event_type`), with IRFs of that class.
    event_class: Option<i64>,
}

fn options(params: &Value, at: &str) -> Result<Options> {
    let p = Params::new(params, KNOWN, "dl2-dl3", at)?;
    let name = params.get("target_name").map(|v| v.as_str().map(str::to_string));
    let target_name = match name {
        None => "UNKNOWN".to_string(),
        Some(Some(n)) if !n.is_empty() && n.is_ascii() && n.len() <= 60 => n,
        Some(_) => {
            return Err(Error::msg(format!("{at}.params.target_name: expected an ASCII string of 1-60 characters")))
        }
    };
    let target = match (params.get("target_ra_deg"), params.get("target_dec_deg")) {
        (None, None) => None,
        (Some(_), Some(_)) => {
            let (ra, dec) = (p.f64_or("target_ra_deg", 0.0)?, p.f64_or("target_dec_deg", 0.0)?);
            if !(0.0..360.0).contains(&ra) || !(-90.0..=90.0).contains(&dec) {
                return Err(Error::msg(format!(
                    "{at}.params: target_ra_deg must be in [0, 360), target_dec_deg in [-90, 90]"
                )));
            }
            Some((ra, dec))
        }
        _ => return Err(Error::msg(format!("{at}.params: give both target_ra_deg and target_dec_deg, or neither"))),
    };
    Ok(Options {
        target_name,
        target,
        allow_override: p.bool_or("override_contract", false)?,
        event_class: super::misdirection::event_class(params, at)?,
    })
}

/// What an IRF product says about itself (its header cards).
struct IrfInfo<'a> {
    input: &'a InputFile,
    hdus: Vec<RawHdu>,
    activity_key: String,
    pipeline_version: String,
    cut: CutIdentity,
    event_selection: Option<EventSelection>,
    models: Value,
    zenith: f64,
    azimuth: f64,
    nsb: f64,
    node: String,
    /// `N_TELS`: 2 for an IRF of stereo DL2, 1 for mono (absent: 1).
    n_tels: i64,
    /// `STEREOCT`: the stereo quality cuts a stereo IRF was made with (JSON), else null.
    stereo_cuts: Value,
    /// `EVTCLASS`: the event class of an IRF of one class, else None.
    event_class: Option<i64>,
    /// `EVTCLSID`: what classified its events (JSON), else null.
    classification: Value,
}

fn read_irf(input: &InputFile) -> Result<IrfInfo<'_>> {
    let what = format!("IRF input {}", input.name);
    let hdus = fits::read_file(&input.path, &what)?;
    if hdus.iter().any(|h| h.extname() == "EVENTS") {
        return Err(Error::msg(format!(
            "{what} is a DL3 file (it has an EVENTS HDU), not an IRF: give the make-irfs product"
        )));
    }
    for name in IRF_HDUS {
        if !hdus.iter().any(|h| h.extname() == name) {
            return Err(Error::msg(format!("{what}: no \"{name}\" HDU; is it a make-irfs product?")));
        }
    }
    let h = hdus.iter().find(|h| h.extname() == IRF_HDUS[0]).expect("checked").clone();
    let string = |k: &str| h.string(k).ok_or_else(|| gadf::missing(k, &what));
    let number = |k: &str| h.number(k).ok_or_else(|| gadf::missing(k, &what));
    let cut = CutIdentity::from_header(&h).ok_or_else(|| gadf::missing("GH_CUT", &what))?;
    let json = |k: &str| gadf::json_card(&h, k, &what);
    Ok(IrfInfo {
        input,
        activity_key: string("S1MKEY")?,
        pipeline_version: string("S1MVER")?,
        cut,
        event_selection: gadf::event_selection(&h, &what)?,
        models: json("RFMODELS")?,
        zenith: number("ZEN_PNT")?,
        azimuth: number("AZ_PNT")?,
        nsb: number("NSBRATE")?,
        node: string("IRFNODE")?,
        n_tels: h.number("N_TELS").map_or(1, |n| n as i64),
        stereo_cuts: h.string("STEREOCT").and_then(|t| serde_json::from_str(&t).ok()).unwrap_or(Value::Null),
        event_class: h.number("EVTCLASS").map(|c| c as i64),
        classification: h.string("EVTCLSID").and_then(|t| serde_json::from_str(&t).ok()).unwrap_or(Value::Null),
        hdus,
    })
}

/// The model hashes by role, from a `sst1mflow_models` JSON object.
fn model_hashes(models: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    if let Some(m) = models.as_object() {
        for (role, v) in m {
            match (v.get("sha256"), v.as_object()) {
                // Stereo DL2: each telescope's models, by telescope.
                (None, Some(per_role)) if role.starts_with("tel_") => {
                    // Camera data's stereo DL2 names the data telescopes (21, 22), the IRF the
                    // Monte Carlo telescopes whose models serve them (1, 2): compare as the latter.
                    let role = match role[4..].parse::<u16>() {
                        Ok(t) => format!("tel_{:03}", super::dl1_dl2::model_telescope(t)),
                        Err(_) => role.clone(),
                    };
                    for (r, w) in per_role {
                        out.insert(
                            format!("RF model {role} {r} (sha256)"),
                            w.get("sha256").cloned().unwrap_or(Value::Null),
                        );
                    }
                }
                (hash, _) => {
                    out.insert(format!("RF model {role} (sha256)"), hash.cloned().unwrap_or(Value::Null));
                }
            }
        }
    }
    out
}

fn azimuth_difference(a: f64, b: f64) -> f64 {
    let d = (a - b).rem_euclid(360.0);
    d.min(360.0 - d)
}

/// One DL2 run of the observation.
struct Run<'a> {
    input: &'a InputFile,
    dl2: Dl2Reader,
    observation: ObservationRow,
}

/// The selected events of the observation, as DL3 columns.
#[derive(Default)]
struct Events {
    event_id: Vec<i64>,
    time: Vec<f64>,
    ra: Vec<f32>,
    dec: Vec<f32>,
    energy: Vec<f32>,
    detx: Vec<f32>,
    dety: Vec<f32>,
    gammaness: Vec<f32>,
}

/// (long_deg, lat_deg, height_m) of a site entry; the height may be absent (0).
fn site_of(entry: &Value) -> std::result::Result<(f64, f64, f64), String> {
    let value = |k: &str| entry.get(k).and_then(Value::as_f64).filter(|v| v.is_finite());
    match (value("long_deg"), value("lat_deg")) {
        (Some(lon), Some(lat)) if (-180.0..=360.0).contains(&lon) && (-90.0..=90.0).contains(&lat) => {
            Ok((lon, lat, value("height_m").unwrap_or(0.0)))
        }
        _ => Err("must give long_deg and lat_deg in degrees".into()),
    }
}

impl Stage for Dl2Dl3Stage {
    fn name(&self) -> &'static str {
        "dl2-dl3"
    }

    fn version(&self) -> &'static str {
        "4"
    }

    fn plan(&self, params: &Value, input_roles: &[&str], at: &str) -> Result<StagePlan> {
        self.plan_with_config(params, input_roles, None, at)
    }

    fn plan_with_config(
        &self,
        params: &Value,
        input_roles: &[&str],
        config: Option<&Value>,
        at: &str,
    ) -> Result<StagePlan> {
        options(params, at)?;
        let mut roles = input_roles.to_vec();
        roles.sort_unstable();
        if roles != ["dl2", "irfs"] && roles != ["cuts", "dl2", "irfs"] {
            return Err(Error::msg(format!(
                "{at}: stage dl2-dl3 takes the input roles \"dl2\" (the DL2 runs of one observation), \"irfs\" (make-irfs products to choose from) and optionally \"cuts\" (a gh-cuts table), got {input_roles:?}"
            )));
        }
        // The site in the headers: the array centre when the config gives one, else the
        // telescope's own entry (its DL2's telescope: config_for_inputs).
        let mut config_keys = vec!["event_selection".to_string()];
        let mut config_read = vec![ConfigRead::new(
            "analysis.reco_energy_scaling_factor",
            "not applied, as in sst1mpipe: its DL2 loader scales reconstructed energies by it only when called with scale_reco_energy=True, which none of its scripts does",
        )];
        if config.is_some_and(|c| c.get("array_center_coords").is_some()) {
            config_keys.push("array_center_coords".into());
            config_read.push(ConfigRead::new("telescope_coords", "array_center_coords gives the site"));
        } else {
            config_keys.push("telescope_coords".into());
        }
        if roles.contains(&"cuts") {
            config_read.push(ConfigRead::new(
                "analysis.global_gammaness_cut",
                "the step's cut table (role \"cuts\") replaces it",
            ));
        } else {
            config_keys.push("analysis.global_gammaness_cut".into());
        }
        config_keys.extend(super::stereo_cut_plan_keys());
        Ok(StagePlan {
            config_keys,
            config_read,
            outputs: vec![DeclaredOutput { role: "dl3".into(), file: "dl3.fits".into(), kind: "dl3".into() }],
        })
    }

    fn config_for_inputs(&self, config: &Value, inputs: &[InputFile]) -> Option<Value> {
        let sited = match config.get("array_center_coords") {
            Some(_) => None,
            None => super::telescope_coords_for_inputs(config, inputs, &["dl2"], "/dl2/event/telescope/parameters"),
        };
        let base = sited.as_ref().unwrap_or(config);
        super::stereo_cuts_for_inputs(base, inputs, &["dl2"]).or(sited)
    }

    fn config_scope(&self) -> Vec<&'static str> {
        let mut scope = vec![
            "event_selection",
            "array_center_coords",
            "telescope_coords",
            "analysis.global_gammaness_cut",
            "analysis.reco_energy_scaling_factor",
        ];
        scope.extend(super::dl1_input::STEREO_CUT_KEYS);
        scope
    }

    fn check_config(
        &self,
        config: &Value,
        _step: &StepSetup,
        file: &std::path::Path,
        at: &str,
    ) -> Result<Vec<ConfigWarning>> {
        EventSelection::from_config(config)
            .map_err(|e| Error::msg(format!("{}: {e} (read by {at})", file.display())))?;
        if let Some(center) = config.get("array_center_coords") {
            site_of(center)
                .map_err(|e| Error::msg(format!("{}: array_center_coords {e} (read by {at})", file.display())))?;
        }
        Ok(super::stereo_cut_notices(config, at))
    }

    fn run(&self, ctx: &mut StageContext) -> Result<()> {
        let opts = options(ctx.params, "dl2-dl3")?;
        let selection = EventSelection::from_config(ctx.config).map_err(|e| Error::msg(format!("config {e}")))?;
        // The cut and its identity.
        let cut_input = ctx.inputs.get("cuts").and_then(|v| v.first());
        let (cut, cut_id): (GhCut, CutIdentity) = match cut_input {
            Some(f) => {
                (GhCut::Binned(read_cut_table(&f.path, &f.name)?), CutIdentity::Table { sha256: f.hash.clone() })
            }
            None => {
                let c = ctx
                    .config
                    .get("analysis")
                    .and_then(|a| a.get("global_gammaness_cut"))
                    .and_then(Value::as_f64)
                    .filter(|c| (0.0..1.0).contains(c))
                    .ok_or_else(|| Error::msg("config analysis.global_gammaness_cut must be a number in [0, 1)"))?;
                (GhCut::Global(c), CutIdentity::Global(c))
            }
        };
        let runs = open_runs(ctx.inputs.get("dl2").map(Vec::as_slice).unwrap_or(&[]))?;
        let stereo = runs[0].dl2.stereo;
        // A stereo observation is placed at its first telescope (sst1mpipe: tel_021's frame).
        let tel_id = stereo.map_or(runs[0].dl2.tel_id, |t| t[0]);
        let stereo_cuts = super::dl1_input::StereoCuts::from_config(ctx.config)?;
        let stereo_cuts_json = match stereo {
            Some(_) => stereo_cuts.to_json(),
            None => Value::Null,
        };
        let (telescop, tellist, n_tels) = match stereo {
            Some([a, b]) => ("SST1M_stereo".to_string(), format!("{a}-{b}"), 2),
            None => (format!("SST1M_tel_{tel_id:03}"), tel_id.to_string(), 1),
        };
        // sst1mpipe's GEOLON/GEOLAT/ALTITUDE: the array centre of the config (data configs);
        // configs without one (sst1mpipe's MC config) give the telescope's own position.
        let (lon, lat, height) = match ctx.config.get("array_center_coords") {
            Some(center) => site_of(center).map_err(|e| Error::msg(format!("config array_center_coords {e}")))?,
            None => {
                let entry = ctx.config.get("telescope_coords").and_then(|c| c.get(format!("tel_{tel_id:03}")));
                site_of(entry.unwrap_or(&Value::Null))
                    .map_err(|e| Error::msg(format!("config telescope_coords.tel_{tel_id:03} {e}")))?
            }
        };

        // Read the events once: pointing statistics over all events, DL3 rows for the selected.
        let multi = runs.len() > 1;
        // Merged runs: EVENT_ID = obs_id << 32 | event_id while obs ids fit in 31 bits; sst1mpipe's
        // 12-digit YYYYMMDDRRRR ids do not, so their runs are numbered 1, 2, … in that field.
        let small_ids = runs.iter().all(|r| (0..1 << 31).contains(&r.observation.obs_id));
        let mut ev = Events::default();
        let (mut alt_sum, mut az_x, mut az_y, mut n_pointing) = (0.0, 0.0, 0.0, 0usize);
        let (mut n_read, mut n_selected) = (0usize, 0usize);
        for (ordinal, run) in runs.iter().enumerate() {
            let run_tag = if small_ids { run.observation.obs_id } else { ordinal as i64 + 1 };
            let sel = Dl2Selection::new(&selection, &format!("DL2 {}", run.input.name))?
                .with_stereo_cuts(stereo_cuts)
                .with_event_class(opts.event_class, &run.dl2, &format!("DL2 {}", run.input.name))?;
            let mut start = 0;
            while start < run.dl2.n_events {
                let end = (start + CHUNK).min(run.dl2.n_events);
                let chunk = run.dl2.read_chunk(start, end)?;
                for (i, &r) in chunk.rows.iter().enumerate() {
                    n_read += 1;
                    if r.true_alt_tel.is_finite() && r.true_az_tel.is_finite() {
                        alt_sum += r.true_alt_tel;
                        az_x += r.true_az_tel.to_radians().cos();
                        az_y += r.true_az_tel.to_radians().sin();
                        n_pointing += 1;
                    }
                    let usable = r.reco_ra.is_finite() && r.reco_energy.is_finite() && r.local_time.is_finite();
                    if !usable || !sel.passes_in(&chunk, i) {
                        continue;
                    }
                    n_selected += 1;
                    if !cut.passes(r.reco_energy, r.gammaness) {
                        continue;
                    }
                    let time = astro::unix_to_dl3_time(r.local_time).ok_or_else(|| {
                        Error::msg(format!(
                            "DL2 {}: event {} has time {} (Unix s), before 2001: not a valid observation time",
                            run.input.name, r.event_id, r.local_time
                        ))
                    })?;
                    ev.event_id.push(if multi { run_tag << 32 | r.event_id } else { r.event_id });
                    ev.time.push(time);
                    ev.ra.push(r.reco_ra as f32);
                    ev.dec.push(r.reco_dec as f32);
                    ev.energy.push(r.reco_energy as f32);
                    // sst1mpipe: the reconstructed direction in the telescope frame of the
                    // event's pointing, DETX = fov_lat and DETY = fov_lon.
                    let (fov_lon, fov_lat) =
                        astro::altaz_to_fov_deg(r.reco_alt, r.reco_az, r.true_alt_tel, r.true_az_tel);
                    ev.detx.push(fov_lat as f32);
                    ev.dety.push(fov_lon as f32);
                    ev.gammaness.push(r.gammaness as f32);
                }
                start = end;
            }
        }
        if n_pointing == 0 {
            return Err(Error::msg("the DL2 runs have no event with a pointing (true_alt_tel/true_az_tel)"));
        }
        let mean_alt = alt_sum / n_pointing as f64;
        let mean_az = az_y.atan2(az_x).to_degrees().rem_euclid(360.0);
        let nsb = runs[0].observation.nsb_rate;
        let irf = choose_irf(ctx, &cut_id, opts.event_class, 90.0 - mean_alt, mean_az, nsb)?;
        let overridden =
            check_contract(&runs, &irf, &selection, stereo_cuts_json.clone(), opts.event_class, opts.allow_override)?;
        if !overridden.is_empty() {
            let _ =
                writeln!(ctx.log, "WARNING: contract overridden (override_contract: true):\n{}", overridden.join("\n"));
        }

        // GTIs: the runs' spans, merged across gaps shorter than sst1mpipe's 2 s.
        let mut gti: Vec<(f64, f64)> = Vec::new();
        for run in &runs {
            let (a, b) = (run.observation.tstart, run.observation.tstop);
            match gti.last_mut() {
                Some(last) if a - last.1 <= MAX_GAP_S => last.1 = last.1.max(b),
                _ => gti.push((a, b)),
            }
        }
        let to_tt = |unix: f64| {
            astro::unix_to_dl3_time(unix)
                .ok_or_else(|| Error::msg(format!("run time {unix} (Unix s) is before 2001: not a valid observation")))
        };
        let gti_tt: Vec<(f64, f64)> = gti.iter().map(|&(a, b)| Ok((to_tt(a)?, to_tt(b)?))).collect::<Result<_>>()?;
        let (tstart, tstop) = (gti_tt[0].0, gti_tt[gti_tt.len() - 1].1);
        let ontime: f64 = gti_tt.iter().map(|(a, b)| b - a).sum();
        let obs_id = runs.iter().map(|r| r.observation.obs_id).min().expect("at least one run");
        let o = &runs[0].observation;
        let (ra_obj, dec_obj) = opts.target.unwrap_or((o.target_ra, o.target_dec));
        let (date_obs, time_obs) = astro::utc_date_time(gti[0].0);
        let (date_end, time_end) = astro::utc_date_time(gti[gti.len() - 1].1);

        let s = |v: &str| Fv::Str(v.to_string());
        let mut provenance = gadf::software_cards(self.name(), ctx.pipeline_version);
        provenance.extend(gadf::analysis_cards(&cut_id, &selection, &runs[0].dl2.models, "RF models behind the DL2"));
        provenance.extend(super::misdirection::class_cards(opts.event_class, &runs[0].dl2.classification));
        provenance.push(Card::new("IRFKEY", s(&irf.activity_key), "activity that made the IRF HDUs"));
        provenance.push(Card::new("IRFFILE", s(&irf.input.hash), "SHA-256 of the IRF product"));
        for (i, line) in overridden.iter().enumerate() {
            provenance.push(Card::new(&format!("S1MOVR{}", i + 1), s(line), "contract overridden"));
        }
        provenance.extend(gadf::activity_key_cards(ctx.activity_key));

        let time_cards = vec![
            Card::new("MJDREFI", Fv::Int(astro::DL3_MJDREFI), "[d] time reference: 2001-01-01 UTC, in TT"),
            Card::new("MJDREFF", Fv::Float(astro::DL3_MJDREFF), "[d]"),
            Card::new("TIMEUNIT", s("s"), ""),
            Card::new("TIMESYS", s("TT"), ""),
            Card::new("TIMEREF", s("TOPOCENTER"), ""),
            Card::new("TSTART", Fv::Float(tstart), "[s] since the time reference"),
            Card::new("TSTOP", Fv::Float(tstop), "[s]"),
        ];
        let mut events_cards = gadf::hdu_class_cards("0.3", &["EVENTS"]);
        events_cards.push(Card::new("OBS_ID", Fv::Int(obs_id), ""));
        events_cards.extend(time_cards.iter().cloned());
        events_cards.extend([
            Card::new("TELAPSE", Fv::Float(tstop - tstart), "[s]"),
            Card::new("ONTIME", Fv::Float(ontime), "[s] sum of the GTIs"),
            Card::new("LIVETIME", Fv::Float(ontime), "[s] no dead time simulated"),
            Card::new("DEADC", Fv::Float(1.0), ""),
            Card::new("DATE-OBS", s(&date_obs), "UTC"),
            Card::new("TIME-OBS", s(&time_obs), "UTC"),
            Card::new("DATE-END", s(&date_end), "UTC"),
            Card::new("TIME-END", s(&time_end), "UTC"),
            Card::new("OBS_MODE", s("POINTING"), ""),
            Card::new("OBJECT", s(&opts.target_name), ""),
            Card::new("RA_OBJ", Fv::Float(ra_obj), "[deg]"),
            Card::new("DEC_OBJ", Fv::Float(dec_obj), "[deg]"),
            Card::new("RA_PNT", Fv::Float(o.ra_pnt), "[deg]"),
            Card::new("DEC_PNT", Fv::Float(o.dec_pnt), "[deg]"),
            Card::new("ALT_PNT", Fv::Float(mean_alt), "[deg] mean over the events"),
            Card::new("AZ_PNT", Fv::Float(mean_az), "[deg] mean over the events"),
            Card::new("RADECSYS", s("FK5"), ""),
            Card::new("EQUINOX", Fv::Float(2000.0), ""),
            Card::new("TELESCOP", s(&telescop), ""),
            Card::new("INSTRUME", s("SST-1M"), ""),
            Card::new("OBSERVER", s("SST1M Collaboration"), ""),
            Card::new("N_TELS", Fv::Int(n_tels), ""),
            Card::new("TELLIST", s(&tellist), ""),
            Card::new("GEOLON", Fv::Float(lon), "[deg]"),
            Card::new("GEOLAT", Fv::Float(lat), "[deg]"),
            Card::new("ALTITUDE", Fv::Float(height), "[m]"),
            Card::new("EUNIT", s("TeV"), ""),
            Card::new("IRF", s(&irf.node), "node of the IRF HDUs in this file"),
        ]);
        events_cards.extend(provenance.iter().cloned());
        let mut gti_cards = gadf::hdu_class_cards("0.3", &["GTI"]);
        gti_cards.push(Card::new("OBS_ID", Fv::Int(obs_id), ""));
        gti_cards.extend(time_cards);
        let n = ev.time.len();
        let tables = [
            BinTable {
                extname: "EVENTS".into(),
                n_rows: n,
                columns: vec![
                    Column::new("EVENT_ID", "", ColumnData::I64(ev.event_id)),
                    Column::new("TIME", "s", ColumnData::F64(ev.time)),
                    Column::new("RA", "deg", ColumnData::F32(ev.ra)),
                    Column::new("DEC", "deg", ColumnData::F32(ev.dec)),
                    Column::new("ENERGY", "TeV", ColumnData::F32(ev.energy)),
                    Column::new("DETX", "deg", ColumnData::F32(ev.detx)),
                    Column::new("DETY", "deg", ColumnData::F32(ev.dety)),
                    Column::new("GAMMANESS", "", ColumnData::F32(ev.gammaness)),
                ],
                cards: events_cards,
            },
            BinTable {
                extname: "GTI".into(),
                n_rows: gti_tt.len(),
                columns: vec![
                    Column::new("START", "s", ColumnData::F64(gti_tt.iter().map(|g| g.0).collect())),
                    Column::new("STOP", "s", ColumnData::F64(gti_tt.iter().map(|g| g.1).collect())),
                ],
                cards: gti_cards,
            },
        ];
        let copies: Vec<&RawHdu> =
            IRF_HDUS.iter().map(|name| irf.hdus.iter().find(|h| h.extname() == *name).expect("checked")).collect();
        let mut primary = vec![Card::new("TELESCOP", s(&telescop), "")];
        primary.push(Card::new("OBS_ID", Fv::Int(obs_id), ""));
        primary.extend(provenance);
        fits::write_with_copies(&ctx.work_dir.join("dl3.fits"), &primary, &tables, &copies)?;
        let _ = writeln!(
            ctx.log,
            "obs_id {obs_id}: {} run(s), {n_read} events read, {n_selected} pass event_selection, {n} pass the gammaness cut; {} GTI(s), ontime {ontime:.1} s; mean pointing zenith {:.2} az {:.2}; IRF {} ({})",
            runs.len(),
            gti.len(),
            90.0 - mean_alt,
            mean_az,
            irf.input.name,
            irf.node
        );
        Ok(())
    }
}

/// Opens the DL2 runs, sorted by start time, and checks they form one observation.
fn open_runs(inputs: &[InputFile]) -> Result<Vec<Run<'_>>> {
    if inputs.is_empty() {
        return Err(Error::msg("dl2-dl3 needs at least one DL2 run"));
    }
    let mut runs = Vec::new();
    for input in inputs {
        let dl2 = Dl2Reader::open(&input.path)
            .map_err(|e| Error::msg(format!("DL2 input {}: {}", input.name, e.message())))?;
        let Some(observation) = dl2.observation else {
            return Err(Error::msg(format!(
                "DL2 input {} is not an observation run (no /configuration/observation/run){}: DL3 is made of observed (or observation-simulated) events with times",
                input.name,
                if dl2.run.is_some() { "; it is a Monte Carlo production" } else { "" }
            )));
        };
        runs.push(Run { input, dl2, observation });
    }
    runs.sort_by(|a, b| a.observation.tstart.total_cmp(&b.observation.tstart));
    let first = &runs[0];
    for r in &runs[1..] {
        if r.dl2.tel_id != first.dl2.tel_id || r.dl2.stereo != first.dl2.stereo {
            return Err(Error::msg(format!(
                "DL2 runs {} and {} are of telescopes {} and {}: one observation is one telescope",
                first.input.name, r.input.name, first.dl2.tel_id, r.dl2.tel_id
            )));
        }
        let (a, b) = (&first.observation, &r.observation);
        let sep = astro::angular_separation_deg(a.ra_pnt, a.dec_pnt, b.ra_pnt, b.dec_pnt);
        if sep > MAX_POINTING_DIFFERENCE_DEG {
            return Err(Error::msg(format!(
                "DL2 runs {} (pointing RA {:.3} Dec {:.3}) and {} (RA {:.3} Dec {:.3}) point {sep:.2} deg apart: they are different observations (sst1mpipe splits beyond {MAX_POINTING_DIFFERENCE_DEG} deg); give them to separate dl2-dl3 activities",
                first.input.name, a.ra_pnt, a.dec_pnt, r.input.name, b.ra_pnt, b.dec_pnt
            )));
        }
        let classified_by = |d: &Dl2Reader| super::misdirection::classification_identity(&d.classification);
        if classified_by(&r.dl2) != classified_by(&first.dl2) {
            return Err(Error::msg(format!(
                "DL2 runs {} and {} were classified with other misdirection models or edges (or one is not classified)",
                first.input.name, r.input.name
            )));
        }
        if r.dl2.models != first.dl2.models {
            return Err(Error::msg(format!(
                "DL2 runs {} and {} were reconstructed with different RF models; one observation needs one set (and one IRF)",
                first.input.name, r.input.name
            )));
        }
    }
    for w in runs.windows(2) {
        if w[1].observation.tstart < w[0].observation.tstop {
            return Err(Error::msg(format!(
                "DL2 runs {} and {} overlap in time (obs ids {} and {})",
                w[0].input.name, w[1].input.name, w[0].observation.obs_id, w[1].observation.obs_id
            )));
        }
    }
    Ok(runs)
}

/// The IRF of this cut whose node is nearest the observation.
fn choose_irf<'a>(
    ctx: &mut StageContext<'a>,
    cut: &CutIdentity,
    event_class: Option<i64>,
    zenith: f64,
    azimuth: f64,
    nsb: f64,
) -> Result<IrfInfo<'a>> {
    let inputs: &'a [InputFile] = ctx.inputs.get("irfs").map(Vec::as_slice).unwrap_or(&[]);
    let mut candidates = Vec::new();
    let mut other_cuts = Vec::new();
    for input in inputs {
        let irf = read_irf(input)?;
        if &irf.cut == cut && irf.event_class == event_class {
            candidates.push(irf);
        } else {
            other_cuts.push(format!(
                "  {} ({}): {}, {}",
                input.name,
                irf.node,
                irf.cut.describe(),
                class_name(irf.event_class)
            ));
        }
    }
    if candidates.is_empty() {
        return Err(Error::msg(format!(
            "no IRF was made with this DL3's gammaness cut ({}) and {}; the IRFs given are:\n{}",
            cut.describe(),
            class_name(event_class),
            other_cuts.join("\n")
        )));
    }
    let distance = |i: &IrfInfo| {
        let dz = (zenith.to_radians().cos() - i.zenith.to_radians().cos()).abs();
        (
            (dz * 1e6).round() as i64,
            (azimuth_difference(azimuth, i.azimuth) * 1e3).round() as i64,
            ((i.nsb - nsb).abs() * 1e6).round() as i64,
        )
    };
    candidates.sort_by_key(|i| distance(i));
    let chosen = candidates.swap_remove(0);
    let _ = writeln!(
        ctx.log,
        "observation: zenith {zenith:.2}, azimuth {azimuth:.2}, NSB {nsb} GHz; chose IRF {} (node {}, zenith {:.2}, azimuth {:.2}, NSB {}) of {} with this cut",
        chosen.input.name,
        chosen.node,
        chosen.zenith,
        chosen.azimuth,
        chosen.nsb,
        candidates.len() + 1
    );
    Ok(chosen)
}

fn class_name(class: Option<i64>) -> String {
    match class {
        Some(c) => format!("event class {c}"),
        None => "all event classes".into(),
    }
}

fn setup_name(stereo: bool) -> &'static str {
    if stereo {
        "stereo"
    } else {
        "mono"
    }
}

/// The IRF must come from the DL2's RF models, the same event selection (and stereo quality
/// cuts), the same telescope setup (mono or stereo) and the same pipeline version. Returns the differences when overridden.
fn check_contract(
    runs: &[Run],
    irf: &IrfInfo,
    selection: &EventSelection,
    stereo_cuts: Value,
    event_class: Option<i64>,
    allow: bool,
) -> Result<Vec<String>> {
    let dl2 = &runs[0];
    let dl2_models: Value = serde_json::from_str(&dl2.dl2.models).unwrap_or(Value::Null);
    let mut left = model_hashes(&irf.models);
    let mut right = model_hashes(&dl2_models);
    left.insert("event_selection".into(), irf.event_selection.as_ref().map_or(Value::Null, |s| s.as_json().clone()));
    right.insert("event_selection".into(), selection.as_json().clone());
    left.insert("telescope setup".into(), Value::String(setup_name(irf.n_tels == 2).into()));
    right.insert("telescope setup".into(), Value::String(setup_name(dl2.dl2.stereo.is_some()).into()));
    left.insert("stereo quality cuts".into(), irf.stereo_cuts.clone());
    right.insert("stereo quality cuts".into(), stereo_cuts);
    if irf.event_class.is_some() || event_class.is_some() {
        left.insert("event class".into(), irf.event_class.into());
        right.insert("event class".into(), event_class.into());
        left.insert("event classification".into(), irf.classification.clone());
        let ours = super::misdirection::classification_identity(&dl2.dl2.classification);
        right.insert(
            "event classification".into(),
            if event_class.is_some() { serde_json::from_str(&ours).unwrap_or(Value::Null) } else { Value::Null },
        );
    }
    left.insert("pipeline version".into(), Value::String(irf.pipeline_version.clone()));
    right.insert("pipeline version".into(), Value::String(dl2.dl2.pipeline_version.clone()));
    let diffs: Vec<Difference> = contract::all_differences(&left, &right);
    if diffs.is_empty() {
        return Ok(Vec::new());
    }
    let table =
        contract::side_by_side(&format!("IRF {}", irf.input.name), &format!("DL2 {} + config", dl2.input.name), &diffs);
    if !allow {
        return Err(Error::msg(format!(
            "the IRF does not belong to these events:\n{table}\nmake IRFs from the same RF models, event_selection, telescope setup and pipeline version, or set \"override_contract\": true to proceed (recorded in the DL3)"
        )));
    }
    Ok(diffs
        .iter()
        .map(|d| {
            let show = |v: &Option<Value>| v.as_ref().map(|v| v.to_string()).unwrap_or_else(|| "(absent)".into());
            format!("{}: IRF {} vs DL2 {}", d.key, show(&d.left), show(&d.right))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stereo_models_are_compared_telescope_by_telescope() {
        let stereo = serde_json::json!({
            "tel_001": {"energy": {"sha256": "a1"}, "gh": {"sha256": "b1"}},
            "tel_002": {"energy": {"sha256": "a2"}, "gh": {"sha256": "b2"}},
        });
        let h = model_hashes(&stereo);
        assert_eq!(h["RF model tel_001 energy (sha256)"], "a1");
        assert_eq!(h["RF model tel_002 gh (sha256)"], "b2");
        assert_eq!(h.len(), 4);
        let mono = serde_json::json!({"energy": {"sha256": "m"}});
        assert_eq!(model_hashes(&mono)["RF model energy (sha256)"], "m");
    }
}
