//! The `dl1-dl2` stage (mono): applies a set of models from `train-rfs` to one DL1 file.
//!
//! Input roles: `dl1`, and the four models `energy`, `disp_norm`, `disp_sign`, `gh`.
//! Config keys applied: `telescope_coords.tel_NNN` of the DL1's telescope (the site, for RA/Dec;
//! the key takes that entry only, found in the DL1 once it exists). Parameter:
//! `override_contract` [false].
//!
//! The contract, checked before any event is read:
//! * each model file is intact and is the model its role names;
//! * the four come from one training activity (one set, trained together);
//! * they were trained for this telescope (data telescopes 21/22 use MC models 1/2);
//! * the DL1 they were trained on had the DL1 settings of this DL1 (calibration, integration,
//!   cleaning), apart from the MC/data differences listed in [`crate::contract`];
//! * and was made by the same pipeline version as this DL1;
//! * this DL1 has every feature column the models need.
//!
//! A violation refuses the activity, printing both products and the differing items side by
//! side. With `override_contract: true` (which is part of the activity key, so it is recorded
//! with what it produced) the differences are written to the DL2's
//! `sst1mflow_contract_override` attribute and the log instead. Missing features or broken model
//! files are never overridable.
//!
//! Reconstruction, in sst1mpipe's order: `log_reco_energy` (RF) and `reco_energy`;
//! `reco_disp_norm` (RF) and `reco_disp_sign` (classifier: +1 when P(+1) > 0.5), their
//! `reco_disp_dx/dy` along the Hillas axis; `gammaness` = P(gamma) (it may use the two
//! previous outputs as features); `reco_src_x/y` = centroid + disp; `reco_alt/az` through the
//! camera frame at the event's pointing (azimuth wrapped to (−180, 180] when the first event
//! points within 90° of north); `reco_ra/dec` at the site, at sst1mpipe's fixed MC obstime for
//! simulations. Events whose features are not finite keep their row with NaN reconstruction.
use super::params::Params;
use super::{DeclaredOutput, InputFile, Stage, StageContext, StagePlan};
use crate::astro;
use crate::contract;
use crate::error::{Error, Result};
use crate::io::dl1::{Dl1Reader, Dl2Row, ParametersRow};
use crate::io::dl2::Dl2Writer;
use crate::io::model::{self, Model};
use crate::reco::{self, DERIVED_FEATURES};
use serde_json::{json, Value};

pub struct Dl1Dl2Stage;

const MODEL_ROLES: [&str; 4] = reco::MODELS;
const CHUNK: usize = 16_384;

fn override_flag(params: &Value, at: &str) -> Result<bool> {
    Params::new(params, &["override_contract"], "dl1-dl2", at)?.bool_or("override_contract", false)
}

/// The MC telescope whose models serve a telescope (sst1mpipe: 21 → 1, 22 → 2).
pub fn model_telescope(tel_id: u16) -> u16 {
    match tel_id {
        21 => 1,
        22 => 2,
        t => t,
    }
}

pub(crate) fn site(config: &Value, tel_id: u16) -> Result<astro::Site> {
    let key = format!("telescope_coords.tel_{tel_id:03}");
    let entry = config.get("telescope_coords").and_then(|c| c.get(format!("tel_{tel_id:03}")));
    let get = |f: &str| entry.and_then(|e| e.get(f)).and_then(Value::as_f64);
    match (get("long_deg"), get("lat_deg")) {
        (Some(lon_deg), Some(lat_deg)) => Ok(astro::Site { lon_deg, lat_deg }),
        _ => Err(Error::msg(format!("config {key} must give long_deg and lat_deg"))),
    }
}

/// Loads the four models and checks them against each other and against the DL1. Returns
/// the models and the overridable differences (already refused unless `allow`).
fn check_contract(
    models_in: &[&InputFile; 4],
    dl1_in: &InputFile,
    dl1: &Dl1Reader,
    allow: bool,
) -> Result<([Model; 4], Vec<String>)> {
    let mut models = Vec::new();
    for (role, input) in MODEL_ROLES.iter().zip(models_in) {
        let m = model::read(&input.path, &input.name)?;
        if m.header.model != *role {
            return Err(Error::msg(format!(
                "input {} given as the {role} model is a {} model",
                input.name, m.header.model
            )));
        }
        models.push(m);
    }
    let models: [Model; 4] = models.try_into().map_err(|_| Error::msg("four models expected"))?;
    // One set: trained together.
    for (m, input) in models.iter().zip(models_in).skip(1) {
        if m.header.activity_key != models[0].header.activity_key {
            return Err(Error::msg(format!(
                "models {} and {} were not trained together (training activities {} and {}); a set of models must come from one train-rfs activity",
                models_in[0].name,
                input.name,
                short(&models[0].header.activity_key),
                short(&m.header.activity_key)
            )));
        }
    }
    let h = &models[0].header;
    // Features that must be DL1 columns (never overridable).
    for (m, input) in models.iter().zip(models_in) {
        for f in &m.header.features {
            let derived = m.header.model == "gh" && DERIVED_FEATURES.contains(&f.as_str());
            if !derived && ParametersRow::getter(f).is_none() {
                return Err(Error::msg(format!(
                    "model {} needs the feature \"{f}\", which the DL1 {} does not have",
                    input.name, dl1_in.name
                )));
            }
        }
    }
    let mut problems = Vec::new();
    if model_telescope(dl1.tel_id) != h.tel_id {
        problems.push(format!(
            "telescope: the models are for telescope {}, the DL1 {} is of telescope {}",
            h.tel_id, dl1_in.name, dl1.tel_id
        ));
    }
    if h.dl1_pipeline_version != dl1.pipeline_version {
        problems.push(format!(
            "pipeline version:\n  models {} were trained on DL1 of {}\n  DL1 {} was made by   {}",
            models_in[0].name, h.dl1_pipeline_version, dl1_in.name, dl1.pipeline_version
        ));
    }
    let diffs = contract::differences(&h.dl1_settings, &dl1.settings);
    if !diffs.is_empty() {
        problems.push(format!(
            "DL1 settings (the models' training DL1 vs this DL1):\n{}",
            contract::side_by_side("models' DL1", &dl1_in.name, &diffs)
        ));
    }
    if !problems.is_empty() && !allow {
        return Err(Error::msg(format!(
            "refusing to apply models {} (trained by activity {}) to DL1 {} (made by activity {}):\n{}\nThe models do not belong to this DL1. Train models on DL1 made like this one, or set \"override_contract\": true in the step's params (it is recorded in the DL2 and its provenance).",
            models_in.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", "),
            short(&h.activity_key),
            dl1_in.name,
            short(&dl1.activity_key),
            problems.join("\n")
        )));
    }
    Ok((models, problems))
}

fn short(key: &str) -> &str {
    &key[..key.len().min(12)]
}

/// Where a feature comes from: a DL1 column, or the index of a derived feature.
type FeatureSource = std::result::Result<fn(&ParametersRow) -> f64, usize>;

/// The feature matrix of a model for a chunk of rows, with derived features from `derived`.
fn features(model: &Model, rows: &[ParametersRow], derived: &[[f64; 2]]) -> Vec<f32> {
    let getters: Vec<FeatureSource> = model
        .header
        .features
        .iter()
        .map(|f| match DERIVED_FEATURES.iter().position(|d| d == f) {
            Some(i) => Err(i),
            None => Ok(ParametersRow::getter(f).expect("checked by the contract")),
        })
        .collect();
    let mut x = Vec::with_capacity(rows.len() * getters.len());
    for (i, r) in rows.iter().enumerate() {
        for g in &getters {
            x.push(match g {
                Ok(get) => get(r) as f32,
                Err(d) => derived.get(i).map(|v| v[*d]).unwrap_or(f64::NAN) as f32,
            });
        }
    }
    x
}

impl Stage for Dl1Dl2Stage {
    fn name(&self) -> &'static str {
        "dl1-dl2"
    }

    fn version(&self) -> &'static str {
        "5"
    }

    fn plan(&self, params: &Value, input_roles: &[&str], at: &str) -> Result<StagePlan> {
        override_flag(params, at)?;
        let mut roles: Vec<&str> = input_roles.to_vec();
        roles.sort_unstable();
        let mut expected = vec!["dl1", "energy", "disp_norm", "disp_sign", "gh"];
        expected.sort_unstable();
        if roles != expected {
            return Err(Error::msg(format!(
                "{at}: stage dl1-dl2 takes the input roles dl1, energy, disp_norm, disp_sign and gh (the outputs of a train-rfs step), got {input_roles:?}"
            )));
        }
        // The telescope is the DL1's: the activity's key takes only its entry (config_for_inputs).
        Ok(StagePlan {
            // sst1mpipe's dl1_dl2 repeats r0_dl1's cut on true energy for Monte Carlo.
            config_keys: vec![
                "telescope_coords".into(),
                "analysis.gamma_min_simulated_energy_tev?".into(),
                "analysis.proton_min_simulated_energy_tev?".into(),
            ],
            // The stereo keys (weights, stereo cuts) are dl2-stereo's.
            config_read: vec![super::site_height_unused()],
            outputs: vec![DeclaredOutput { role: "dl2".into(), file: "dl2.h5".into(), kind: "dl2".into() }],
        })
    }

    fn config_for_inputs(&self, config: &Value, inputs: &[InputFile]) -> Option<Value> {
        super::telescope_coords_for_inputs(config, inputs, &["dl1"], "/dl1/event/telescope/parameters")
    }

    fn config_scope(&self) -> Vec<&'static str> {
        vec!["telescope_coords", "analysis.gamma_min_simulated_energy_tev", "analysis.proton_min_simulated_energy_tev"]
    }

    fn run(&self, ctx: &mut StageContext) -> Result<()> {
        let allow = override_flag(ctx.params, "dl1-dl2")?;
        let one = |role: &str| -> Result<&InputFile> {
            match ctx.inputs.get(role).map(Vec::as_slice) {
                Some([f]) => Ok(f),
                other => Err(Error::msg(format!(
                    "dl1-dl2 needs exactly one {role} input, got {}",
                    other.map(|o| o.len()).unwrap_or(0)
                ))),
            }
        };
        let dl1_in = one("dl1")?;
        let models_in = [one("energy")?, one("disp_norm")?, one("disp_sign")?, one("gh")?];
        let dl1 =
            Dl1Reader::open(&dl1_in.path).map_err(|e| Error::msg(format!("input {}: {}", dl1_in.name, e.message())))?;
        let (models, overridden) = check_contract(&models_in, dl1_in, &dl1, allow)?;
        let [energy, disp_norm, disp_sign, gh] = &models;
        let site = site(ctx.config, dl1.tel_id)?;
        let is_mc = dl1.run.is_some();
        // The DL2 file describes the telescope as the DL1 file does.
        let telescope = crate::io::instrument::read_telescope_description(&dl1_in.path, dl1.tel_id)
            .map_err(|e| Error::msg(format!("input {}: {}", dl1_in.name, e.message())))?;
        let mut writer =
            Dl2Writer::create(&ctx.work_dir.join("dl2.h5"), &telescope, ctx.activity_key, ctx.pipeline_version)?;
        writer.attribute(
            crate::io::dl1::SETTINGS_ATTR,
            &serde_json::to_string(&dl1.settings).map_err(|e| Error::msg(e.to_string()))?,
        )?;
        let mut applied = serde_json::Map::new();
        for ((role, input), m) in MODEL_ROLES.iter().zip(&models_in).zip(&models) {
            applied.insert(
                role.to_string(),
                json!({"name": input.name, "sha256": input.hash,
                       "training_activity": m.header.activity_key, "pipeline_version": m.header.pipeline_version,
                       "features": m.header.features, "forest_args": m.header.forest_args,
                       "training": training_settings(&m.header.training)}),
            );
        }
        writer.attribute("sst1mflow_models", &Value::Object(applied).to_string())?;
        // sst1mpipe names the models by their directory; ours are named by the training that
        // made them (the last path component is what its DL3 scripts use).
        let training = models.first().map_or("", |m| m.header.activity_key.as_str());
        writer.write_info(&format!("sst1mflow {}", ctx.pipeline_version), &format!("train-rfs/{training}"))?;
        writer.copy_pointing_monitoring(&dl1.file()?, dl1.tel_id)?;
        if !overridden.is_empty() {
            writer.attribute("sst1mflow_contract_override", &json!(overridden).to_string())?;
            let _ =
                writeln!(ctx.log, "WARNING: contract overridden (override_contract: true):\n{}", overridden.join("\n"));
        }
        // Monte Carlo: sst1mpipe's cut on true energy again (a no-op on r0-dl1's output).
        let min_true_energy = super::r0_dl1::MinTrueEnergy::from_config(ctx.config)?;
        let (cut_column, cut) = match dl1.run {
            Some(run) => {
                let primary = dl1.showers.first().map(|s| s.true_shower_primary_id as i64).unwrap_or(0);
                min_true_energy.cut_for(primary, run.energy_range_min)
            }
            None => (f64::NAN, None),
        };
        let mut removed = 0usize;
        let mut wrap_north: Option<bool> = None;
        let mut start = 0;
        let mut reconstructed = 0usize;
        while start < dl1.n_events {
            let end = (start + CHUNK).min(dl1.n_events);
            let rows = dl1.read(start, end)?;
            let log_e = energy.forest.predict(&features(energy, &rows, &[]));
            let norm = disp_norm.forest.predict(&features(disp_norm, &rows, &[]));
            let p_plus = disp_sign.forest.predict(&features(disp_sign, &rows, &[]));
            let derived: Vec<[f64; 2]> = log_e.iter().zip(&norm).map(|(&e, &n)| [e, n]).collect();
            let p_proton = gh.forest.predict(&features(gh, &rows, &derived));
            for (i, r) in rows.iter().enumerate() {
                if cut.is_some_and(|c| r.true_energy.is_nan() || r.true_energy < c) {
                    removed += 1;
                    continue;
                }
                let mut out = Dl2Row::from_parameters(r);
                if is_mc {
                    out.min_true_energy_cut = cut_column;
                }
                out.log_reco_energy = log_e[i];
                out.reco_energy = 10f64.powf(log_e[i]);
                out.reco_disp_norm = norm[i];
                out.reco_disp_sign = if p_plus[i].is_nan() {
                    f64::NAN
                } else if p_plus[i] > 0.5 {
                    1.0
                } else {
                    -1.0
                };
                out.gammaness = 1.0 - p_proton[i];
                let (dx, dy, sx, sy) = reco::source_position(
                    r.camera_frame_hillas_x,
                    r.camera_frame_hillas_y,
                    r.camera_frame_hillas_psi,
                    out.reco_disp_norm,
                    out.reco_disp_sign,
                );
                (out.reco_disp_dx, out.reco_disp_dy, out.reco_src_x, out.reco_src_y) = (dx, dy, sx, sy);
                if sx.is_finite() && sy.is_finite() && r.true_alt_tel.is_finite() {
                    let wrap = *wrap_north.get_or_insert_with(|| {
                        let az = if r.true_az_tel > 180.0 { r.true_az_tel - 360.0 } else { r.true_az_tel };
                        az.abs() <= 90.0
                    });
                    // sst1mpipe: the DL1's equivalent_focal_length column (the config's
                    // telescope_equivalent_focal_length for camera data, the optics for MC).
                    let focal_length = if r.equivalent_focal_length.is_finite() && r.equivalent_focal_length > 0.0 {
                        r.equivalent_focal_length
                    } else {
                        crate::instrument::EQUIVALENT_FOCAL_LENGTH_M
                    };
                    let (alt, az) = astro::camera_to_altaz(sx, sy, focal_length, r.true_alt_tel, r.true_az_tel);
                    out.reco_alt = alt;
                    out.reco_az = reco::wrap_azimuth(az, wrap);
                    let time = if r.local_time.is_finite() {
                        Some(r.local_time)
                    } else if is_mc {
                        Some(astro::MC_OBSTIME_UNIX_S)
                    } else {
                        None
                    };
                    if let Some(time) = time {
                        let (ra, dec) = astro::altaz_to_radec(alt, az, site, time);
                        out.reco_ra = ra;
                        out.reco_dec = dec;
                    }
                    reconstructed += 1;
                }
                writer.write(out)?;
            }
            start = end;
        }
        writer.write_simulation(&dl1.showers, dl1.run, &dl1.shower_distributions)?;
        if let Some(o) = &dl1.observation {
            writer.write_observation(o)?;
        }
        let n = writer.finish()?;
        let _ = writeln!(ctx.log, "{n} events, {reconstructed} with a reconstructed direction");
        if let Some(c) = cut {
            let _ = writeln!(ctx.log, "true energy cut at {c} TeV: {removed} events removed");
        }
        if !is_mc && dl1.observation.is_none() {
            let _ = writeln!(
                ctx.log,
                "not a simulation: reco_ra/reco_dec need event times, which this DL1 lacks; left NaN"
            );
        }
        Ok(())
    }
}

/// How a model's training set was chosen (event selection, sampling, disp method), without
/// its sizes: what two telescopes' models of one stereo training share (`dl2-stereo` compares it).
fn training_settings(training: &Value) -> Value {
    let mut t = training.clone();
    if let Some(o) = t.as_object_mut() {
        o.retain(|k, _| !k.ends_with("_events") || k == "n_training_events");
    }
    t
}
