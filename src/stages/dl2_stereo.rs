//! The `dl2-stereo` stage: the two telescopes' DL2 of stereo events → sst1mpipe's stereo DL2
//! (what its `sst1mpipe_dl1_dl2 --stereo` writes after applying each telescope's stereo
//! models): the combination of [`crate::reco::stereo_dl2`] for every event both telescopes
//! reconstructed.
//!
//! Inputs `tel1`, `tel2`: the `dl1-dl2` outputs of the two `dl1-stereo` outputs (one DL2 per
//! telescope, made with models trained on stereo DL1, the two telescopes' with the same features,
//! forest arguments and training-set rules: one stereo training). Refused, naming the files: the same
//! telescope twice, DL2 of mono DL1, DL2 of different stereo settings or sst1mflow versions, one
//! Monte Carlo and one not, and DL2 whose events are not the same stereo events in the same
//! order (they then come from different `dl1-stereo` activities).
//!
//! Config keys applied: `analysis.stereo_reco_weights` (the DL1 column weighting the averages;
//! null: equal weights) and the site of tel1 in `telescope_coords` (RA/Dec of the combined
//! direction, at the event time for data and at ctapipe's Monte Carlo time for simulations,
//! as `dl1-dl2`). sst1mpipe's three stereo quality cuts are not applied here: as sst1mpipe, the
//! stages that load stereo DL2 (`gh-cuts`, `make-irfs`, `performance`, `dl2-dl3`) apply them
//! (the stage writes every event and the columns the cuts use: `min_distance`,
//! `var_reco_energy`, `var_gammaness`).
//!
//! Output `dl2` (`dl2_stereo.h5`): `/dl2/event/telescope/parameters/stereo` with sst1mpipe's
//! columns in its order: the per-event means (pointing, HillasReconstructor core and h_max, the
//! truth or `local_time`/`date`/`equivalent_focal_length`), the averaged energy and gammaness
//! with their spreads, each telescope's impact distance (`_tel1`, `_tel2`) and selection
//! parameters (`_tel<id>`), `min_distance` (rad), `best_sign_combination`, `reco_alt`,
//! `reco_az`, `reco_ra`, `reco_dec`; tel1's simulation or observation tables, `/dl2/info` and
//! pointing monitoring; the DL1 settings and both telescopes' models as attributes.
use super::{ConfigWarning, DeclaredOutput, InputFile, Stage, StageContext, StagePlan, StepSetup};
use crate::astro;
use crate::error::{Error, Result};
use crate::io::dl1::Dl2Row;
use crate::io::dl2::{Dl2Reader, StereoDl2Writer};
use crate::io::hdf5_table::{ColumnValues, NamedColumn};
use crate::reco::stereo_dl2::{combine, StereoReco, TelescopeReco};
use serde_json::Value;
use std::path::Path;

pub struct Dl2StereoStage;

/// The telescope-dependent selection parameters sst1mpipe keeps per telescope.
const PER_TELESCOPE: [&str; 8] = [
    "camera_frame_hillas_intensity",
    "camera_frame_hillas_width",
    "camera_frame_hillas_length",
    "leakage_intensity_width_2",
    "camera_frame_hillas_wl",
    "camera_frame_hillas_skewness",
    "camera_frame_hillas_kurtosis",
    "camera_frame_timing_slope",
];

/// Per-event means sst1mpipe takes over the two telescopes (pandas' groupby mean).
const MEANS: [(&str, &str); 5] = [
    ("true_az_tel", "deg"),
    ("true_alt_tel", "deg"),
    ("HillasReconstructor_core_x", "m"),
    ("HillasReconstructor_core_y", "m"),
    ("HillasReconstructor_h_max", "m"),
];
const MC_MEANS: [(&str, &str); 11] = [
    ("true_az", "deg"),
    ("true_alt", "deg"),
    ("true_energy", "TeV"),
    ("log_true_energy", ""),
    ("true_core_x", "m"),
    ("true_core_y", "m"),
    ("true_h_first_int", "m"),
    ("true_x_max", "g cm-2"),
    ("true_shower_primary_id", ""),
    ("true_camera_x", "m"),
    ("true_camera_y", "m"),
];
const DATA_MEANS: [(&str, &str); 3] = [("local_time", "s"), ("date", ""), ("equivalent_focal_length", "m")];

/// The weighting column of the config (None: equal weights), checked against the DL1 columns.
fn weights_column(config: &Value) -> std::result::Result<Option<String>, String> {
    match config.pointer("/analysis/stereo_reco_weights") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(c)) => match Dl2Row::getter(c) {
            Some(_) => Ok(Some(c.clone())),
            None => Err(format!(
                "analysis.stereo_reco_weights = \"{c}\": no such DL1 column{}",
                crate::text::suggestion(c, crate::io::dl1::ParametersRow::column_names())
            )),
        },
        Some(other) => Err(format!("analysis.stereo_reco_weights = {other}: expected a DL1 column name or null")),
    }
}

fn one<'a>(ctx: &'a StageContext, role: &str) -> Result<&'a InputFile> {
    match ctx.inputs.get(role).map(Vec::as_slice) {
        Some([f]) => Ok(f),
        _ => Err(Error::msg(format!("dl2-stereo needs exactly one DL2 file as input {role}"))),
    }
}

/// What differs between two telescopes' models (their DL2's `sst1mflow_models`), role by role:
/// the features, the forest arguments and the training-set rules (not the files or sizes).
fn training_differences(tel1: &str, tel2: &str) -> Vec<crate::contract::Difference> {
    let parse = |s: &str| serde_json::from_str::<Value>(s).unwrap_or(Value::Null);
    let (a, b) = (parse(tel1), parse(tel2));
    let flat = |v: &Value| {
        let mut out = std::collections::BTreeMap::new();
        if let Some(roles) = v.as_object() {
            for (role, m) in roles {
                for k in ["features", "forest_args", "training"] {
                    out.insert(format!("{role} model {k}"), m.get(k).cloned().unwrap_or(Value::Null));
                }
            }
        }
        out
    };
    crate::contract::all_differences(&flat(&a), &flat(&b))
}

fn getter(name: &str) -> fn(&Dl2Row) -> f64 {
    Dl2Row::getter(name).unwrap_or_else(|| panic!("{name} is a DL1 column of every DL2 row"))
}

/// A telescope's two candidate directions (disp sign +1 and −1), as dl1-dl2 computes its one.
fn directions(r: &Dl2Row, wrap_north: bool) -> ((f64, f64), (f64, f64)) {
    let focal = if r.equivalent_focal_length.is_finite() && r.equivalent_focal_length > 0.0 {
        r.equivalent_focal_length
    } else {
        crate::instrument::EQUIVALENT_FOCAL_LENGTH_M
    };
    let at = |sign: f64| {
        let (_, _, sx, sy) = crate::reco::source_position(
            r.camera_frame_hillas_x,
            r.camera_frame_hillas_y,
            r.camera_frame_hillas_psi,
            r.reco_disp_norm,
            sign,
        );
        let (alt, az) = astro::camera_to_altaz(sx, sy, focal, r.true_alt_tel, r.true_az_tel);
        (alt, crate::reco::wrap_azimuth(az, wrap_north))
    };
    (at(1.0), at(-1.0))
}

impl Stage for Dl2StereoStage {
    fn name(&self) -> &'static str {
        "dl2-stereo"
    }

    fn version(&self) -> &'static str {
        "2"
    }

    fn plan(&self, params: &Value, input_roles: &[&str], at: &str) -> Result<StagePlan> {
        super::params::Params::new(params, &[], "dl2-stereo", at)?;
        if input_roles != ["tel1", "tel2"] {
            return Err(Error::msg(format!(
                "{at}: stage dl2-stereo takes two input roles, \"tel1\" and \"tel2\" (the DL2 of each telescope's stereo DL1)"
            )));
        }
        Ok(StagePlan {
            config_keys: vec!["analysis.stereo_reco_weights".into(), "telescope_coords".into()],
            config_read: vec![super::site_height_unused()],
            outputs: vec![DeclaredOutput {
                role: "dl2".into(),
                file: "dl2_stereo.h5".into(),
                kind: "dl2-stereo".into(),
            }],
        })
    }

    fn config_for_inputs(&self, config: &Value, inputs: &[InputFile]) -> Option<Value> {
        super::telescope_coords_for_inputs(config, inputs, &["tel1"], "/dl2/event/telescope/parameters")
    }

    fn config_scope(&self) -> Vec<&'static str> {
        vec!["analysis.stereo_reco_weights", "telescope_coords"]
    }

    fn check_config(&self, config: &Value, _step: &StepSetup, file: &Path, at: &str) -> Result<Vec<ConfigWarning>> {
        weights_column(config).map_err(|e| Error::msg(format!("{}: {e} (read by {at})", file.display())))?;
        Ok(Vec::new())
    }

    fn run(&self, ctx: &mut StageContext) -> Result<()> {
        let inputs = [one(ctx, "tel1")?, one(ctx, "tel2")?];
        let readers = inputs
            .iter()
            .map(|f| Dl2Reader::open(&f.path).map_err(|e| Error::msg(format!("input {}: {}", f.name, e.message()))))
            .collect::<Result<Vec<_>>>()?;
        let labels = inputs.map(|f| format!("{} ({}, {})", f.role, f.name, crate::text::short(&f.hash, 12)));
        let names = [labels[0].as_str(), labels[1].as_str()];
        let tels = [readers[0].tel_id, readers[1].tel_id];
        if tels[0] == tels[1] {
            return Err(Error::msg(format!(
                "dl2-stereo: inputs {} and {} are both telescope {}; stereo needs two telescopes",
                names[0], names[1], tels[0]
            )));
        }
        for (r, name) in readers.iter().zip(names) {
            if !r.dl1_settings.contains("stereo.reconstructor") {
                return Err(Error::msg(format!(
                    "dl2-stereo: input {name} is the DL2 of mono DL1 (its DL1 settings have no stereo reconstruction): give the dl1-dl2 outputs of dl1-stereo's DL1"
                )));
            }
        }
        // Each telescope has its own calibration and cleaning; the stereo matching and
        // reconstruction must be one.
        let stereo_settings = |s: &str| -> std::collections::BTreeMap<String, Value> {
            let all: std::collections::BTreeMap<String, Value> = serde_json::from_str(s).unwrap_or_default();
            all.into_iter().filter(|(k, _)| k.starts_with("stereo.")).collect()
        };
        let diffs = crate::contract::all_differences(
            &stereo_settings(&readers[0].dl1_settings),
            &stereo_settings(&readers[1].dl1_settings),
        );
        if !diffs.is_empty() {
            return Err(Error::msg(format!(
                "dl2-stereo: inputs {} and {} come from stereo DL1 matched or reconstructed differently:\n{}",
                names[0],
                names[1],
                crate::contract::side_by_side(names[0], names[1], &diffs)
            )));
        }
        if readers[0].pipeline_version != readers[1].pipeline_version {
            return Err(Error::msg(format!(
                "dl2-stereo: inputs {} (pipeline {}) and {} (pipeline {}) were made by different sst1mflow versions",
                names[0], readers[0].pipeline_version, names[1], readers[1].pipeline_version
            )));
        }
        let trained = training_differences(&readers[0].models, &readers[1].models);
        if !trained.is_empty() {
            return Err(Error::msg(format!(
                "dl2-stereo: inputs {} and {} were reconstructed with models trained differently (one stereo training gives both telescopes' models the same features, forest arguments and training-set rules):\n{}",
                names[0],
                names[1],
                crate::contract::side_by_side(names[0], names[1], &trained)
            )));
        }
        let is_mc = readers[0].run.is_some();
        if is_mc != readers[1].run.is_some() {
            return Err(Error::msg(format!(
                "dl2-stereo: one of {} and {} is Monte Carlo and the other is not",
                names[0], names[1]
            )));
        }
        let rows = readers.iter().map(|r| r.read(0, r.n_events)).collect::<Result<Vec<_>>>()?;
        let same_events = rows[0].len() == rows[1].len()
            && rows[0].iter().zip(&rows[1]).all(|(a, b)| (a.obs_id, a.event_id) == (b.obs_id, b.event_id));
        if !same_events {
            return Err(Error::msg(format!(
                "dl2-stereo: inputs {} ({} events) and {} ({} events) do not hold the same stereo events in the same order: they must be the DL2 of one dl1-stereo activity's two outputs",
                names[0],
                rows[0].len(),
                names[1],
                rows[1].len()
            )));
        }
        let weights = weights_column(ctx.config).map_err(|e| Error::msg(format!("dl2-stereo: config {e}")))?;
        let weight_of = weights.as_deref().map(getter);
        let site = super::dl1_dl2::site(ctx.config, tels[0])?;
        // sst1mpipe wraps each telescope's azimuths by its first event's pointing.
        let wrap = |rows: &[Dl2Row]| {
            rows.first().is_some_and(|r| {
                let az = if r.true_az_tel > 180.0 { r.true_az_tel - 360.0 } else { r.true_az_tel };
                az.abs() <= 90.0
            })
        };
        let wraps = [wrap(&rows[0]), wrap(&rows[1])];
        let mut kept: Vec<(usize, StereoReco)> = Vec::new();
        let mut not_both = 0usize;
        for (i, (first, second)) in rows[0].iter().zip(&rows[1]).enumerate() {
            let pair = [first, second];
            let estimate = |k: usize| {
                let r = pair[k];
                let (plus, minus) = directions(r, wraps[k]);
                TelescopeReco {
                    log10_energy: r.log_reco_energy,
                    gammaness: r.gammaness,
                    weight: weight_of.map_or(1.0, |g| g(r)),
                    direction_plus: plus,
                    direction_minus: minus,
                }
            };
            let usable = |k: usize| pair[k].reco_disp_norm.is_finite() && pair[k].true_alt_tel.is_finite();
            match (usable(0) && usable(1)).then(|| combine(&estimate(0), &estimate(1))).flatten() {
                Some(s) => kept.push((i, s)),
                None => not_both += 1,
            }
        }
        let column =
            |name: &str, unit: &'static str, values: ColumnValues| NamedColumn { name: name.into(), unit, values };
        let mean_of = |name: &str| -> Vec<f64> {
            let g = getter(name);
            kept.iter().map(|&(i, _)| (g(&rows[0][i]) + g(&rows[1][i])) / 2.0).collect()
        };
        let of = |f: fn(&StereoReco) -> f64| -> Vec<f64> { kept.iter().map(|(_, s)| f(s)).collect() };
        let mut columns = vec![
            column("obs_id", "", ColumnValues::I64(kept.iter().map(|&(i, _)| rows[0][i].obs_id).collect())),
            column("event_id", "", ColumnValues::I64(kept.iter().map(|&(i, _)| rows[0][i].event_id).collect())),
        ];
        let extra: &[(&str, &'static str)] = if is_mc { &MC_MEANS } else { &DATA_MEANS };
        for &(name, unit) in MEANS.iter().chain(extra) {
            columns.push(column(name, unit, ColumnValues::F64(mean_of(name))));
        }
        if is_mc {
            columns.push(column("min_true_energy_cut", "TeV", ColumnValues::F64(mean_of("min_true_energy_cut"))));
        }
        columns.extend([
            column("log_reco_energy", "", ColumnValues::F64(of(|s| s.log10_energy))),
            column("reco_energy", "TeV", ColumnValues::F64(of(|s| s.reco_energy))),
            column("var_reco_energy", "", ColumnValues::F64(of(|s| s.var_reco_energy))),
            column("wvar_reco_energy", "", ColumnValues::F64(of(|s| s.wvar_reco_energy))),
            column("gammaness", "", ColumnValues::F64(of(|s| s.gammaness))),
            column("var_gammaness", "", ColumnValues::F64(of(|s| s.var_gammaness))),
            column("wvar_gammaness", "", ColumnValues::F64(of(|s| s.wvar_gammaness))),
        ]);
        for (k, suffix) in ["_tel1", "_tel2"].iter().enumerate() {
            columns.push(column(
                &format!("HillasReconstructor_tel_impact_distance{suffix}"),
                "m",
                ColumnValues::F64(
                    kept.iter().map(|&(i, _)| rows[k][i].HillasReconstructor_tel_impact_distance).collect(),
                ),
            ));
        }
        for k in 0..2 {
            for name in PER_TELESCOPE {
                let g = getter(name);
                columns.push(column(
                    &format!("{name}_tel{}", tels[k]),
                    "",
                    ColumnValues::F64(kept.iter().map(|&(i, _)| g(&rows[k][i])).collect()),
                ));
            }
        }
        let time_of = |i: usize| {
            let t = rows[0][i].local_time;
            if t.is_finite() {
                Some(t)
            } else if is_mc {
                Some(astro::MC_OBSTIME_UNIX_S)
            } else {
                None
            }
        };
        let radec: Vec<(f64, f64)> = kept
            .iter()
            .map(|&(i, s)| {
                time_of(i).map_or((f64::NAN, f64::NAN), |t| astro::altaz_to_radec(s.alt_deg, s.az_deg, site, t))
            })
            .collect();
        columns.extend([
            column("min_distance", "rad", ColumnValues::F64(of(|s| s.min_distance_rad))),
            column(
                "best_sign_combination",
                "",
                ColumnValues::Ascii(2, kept.iter().map(|(_, s)| s.best_sign_combination.to_string()).collect()),
            ),
            column("reco_alt", "deg", ColumnValues::F64(of(|s| s.alt_deg))),
            column("reco_az", "deg", ColumnValues::F64(of(|s| s.az_deg))),
            column("reco_ra", "deg", ColumnValues::F64(radec.iter().map(|r| r.0).collect())),
            column("reco_dec", "deg", ColumnValues::F64(radec.iter().map(|r| r.1).collect())),
        ]);
        let writer =
            StereoDl2Writer::create(&ctx.work_dir.join("dl2_stereo.h5"), ctx.activity_key, ctx.pipeline_version)?;
        writer.attribute(crate::io::dl1::SETTINGS_ATTR, &readers[0].dl1_settings)?;
        let models = serde_json::json!({
            format!("tel_{:03}", tels[0]): serde_json::from_str::<Value>(&readers[0].models).unwrap_or(Value::Null),
            format!("tel_{:03}", tels[1]): serde_json::from_str::<Value>(&readers[1].models).unwrap_or(Value::Null),
        });
        writer.attribute("sst1mflow_models", &models.to_string())?;
        writer.attribute(
            "sst1mflow_stereo_reco_weights",
            &weights.clone().map_or(Value::Null, Value::String).to_string(),
        )?;
        writer.write_events(&columns)?;
        writer.copy_run_tables(&readers[0], readers[0].observation.as_ref())?;
        writer.finish()?;
        let _ = writeln!(
            ctx.log,
            "telescopes {} and {}: {} stereo events combined (weights: {}), {not_both} without a reconstruction from both",
            tels[0],
            tels[1],
            kept.len(),
            weights.as_deref().unwrap_or("equal")
        );
        Ok(())
    }
}
