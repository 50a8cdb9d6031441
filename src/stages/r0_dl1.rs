//! The `r0-dl1` stage for simulated R1 (our R1 files): charge extraction, cleaning and image
//! parameters, written as a DL1 file in the ctapipe layout with the simulation truth.
//!
//! It reads the sections `CameraCalibrator`, `ImageProcessor` and `NsbCalibrator` of the
//! sst1mpipe configuration, unchanged; every key in them must be a known sst1mpipe key
//! ([`crate::config`]), settings not implemented yet are reported as warnings (or refused when
//! they would change the meaning of the output). What it uses:
//!
//! | key | use |
//! |---|---|
//! | `CameraCalibrator.image_extractor_type` | must be `LocalPeakWindowSum` |
//! | `CameraCalibrator.LocalPeakWindowSum` | `window_width`, `window_shift`, `apply_integration_correction` |
//! | `ImageProcessor.ImageCleanerSST.telescope_defaults.tel_NNN` | first entry (ImageCleanerSST_MC): picture/boundary thresholds, `min_picture_neighbors`, `keep_isolated`, `min_time_neighbors`, `time_limit_ns`, `only_main_island` |
//! | `NsbCalibrator.intensity_correction.tel_NNN` | multiplies the Hillas intensity after parametrisation |
//!
//! Parameter: `tel_id` [1]: which telescope's settings apply; the input file must be of it.
//! Not yet done here (issue 4): zfits/EventIO inputs, data-path calibration, the PDE correction,
//! and the sst1mpipe extra and MC-truth columns in the parameter table.
use super::params::Params;
use super::{DeclaredOutput, Stage, StageContext, StagePlan};
use crate::error::{Error, Result};
use crate::image::{clean, extract, params as image_params};
use crate::instrument::{camera::CameraGeometry, pulse, N_SAMPLES, SAMPLE_NS};
use crate::io::dl1::{Dl1Writer, ImageRow, ParametersRow, TriggerRow, Truth};
use crate::io::r1::R1Reader;
use serde_json::Value;

pub struct R0Dl1Stage;

const CHUNK: usize = 64;

fn tel_id(params: &Value, at: &str) -> Result<u16> {
    let p = Params::new(params, &["tel_id"], "r0-dl1", at)?;
    u16::try_from(p.u64_or("tel_id", Some(1))?).map_err(|_| Error::msg(format!("{at}.params.tel_id: out of range")))
}

fn config_keys(_tel: u16) -> Vec<String> {
    // Whole sections, so that every setting in them is checked (and a setting that is not
    // implemented yet is reported) and changes to any of them rerun the stage.
    vec!["CameraCalibrator".into(), "ImageProcessor".into(), "NsbCalibrator".into()]
}

struct Settings {
    window: extract::Window,
    cuts: clean::Tailcuts,
    picture: f64,
    min_time_neighbors: usize,
    time_limit_ns: f64,
    only_main_island: bool,
    intensity_correction: f64,
}

fn get<'v>(config: &'v Value, path: &str) -> Result<&'v Value> {
    path.split('.').try_fold(config, |v, k| v.get(k)).ok_or_else(|| Error::msg(format!("config key {path} is missing")))
}

fn number(config: &Value, path: &str) -> Result<f64> {
    get(config, path)?.as_f64().ok_or_else(|| Error::msg(format!("config key {path} must be a number")))
}

fn settings(config: &Value, tel: u16) -> Result<Settings> {
    let extractor = get(config, "CameraCalibrator.image_extractor_type")?;
    if extractor.as_str() != Some("LocalPeakWindowSum") {
        return Err(Error::msg(format!(
            "config CameraCalibrator.image_extractor_type = {extractor}: only \"LocalPeakWindowSum\" is implemented"
        )));
    }
    let width = number(config, "CameraCalibrator.LocalPeakWindowSum.window_width")? as usize;
    let shift = number(config, "CameraCalibrator.LocalPeakWindowSum.window_shift")? as usize;
    let apply = get(config, "CameraCalibrator.LocalPeakWindowSum.apply_integration_correction")?.as_bool().ok_or_else(
        || Error::msg("config CameraCalibrator.LocalPeakWindowSum.apply_integration_correction must be true or false"),
    )?;
    let correction = if apply {
        extract::integration_correction(&pulse::reference_table(), pulse::REFERENCE_STEP_NS, SAMPLE_NS, width, shift)
    } else {
        1.0
    };
    let key = format!("ImageProcessor.ImageCleanerSST.telescope_defaults.tel_{tel:03}");
    let first = get(config, &key)?
        .as_array()
        .and_then(|a| a.first())
        .ok_or_else(|| Error::msg(format!("config {key} must be a non-empty list of settings")))?;
    let field = |name: &str| first.get(name).ok_or_else(|| Error::msg(format!("config {key}[0] lacks \"{name}\"")));
    let num = |name: &str| {
        field(name)?.as_f64().ok_or_else(|| Error::msg(format!("config {key}[0].{name} must be a number")))
    };
    let flag = |name: &str| {
        field(name)?.as_bool().ok_or_else(|| Error::msg(format!("config {key}[0].{name} must be true or false")))
    };
    Ok(Settings {
        window: extract::Window { width, shift, sample_ns: SAMPLE_NS, correction },
        cuts: clean::Tailcuts {
            boundary: num("boundary_threshold_pe")?,
            min_picture_neighbors: num("min_picture_neighbors")? as usize,
            keep_isolated: flag("keep_isolated")?,
        },
        picture: num("picture_threshold_pe")?,
        min_time_neighbors: num("min_time_neighbors")? as usize,
        time_limit_ns: num("time_limit_ns")?,
        only_main_island: flag("only_main_island")?,
        intensity_correction: number(config, &format!("NsbCalibrator.intensity_correction.tel_{tel:03}"))?,
    })
}

impl Stage for R0Dl1Stage {
    fn name(&self) -> &'static str {
        "r0-dl1"
    }

    fn version(&self) -> &'static str {
        "4"
    }

    fn plan(&self, params: &Value, input_roles: &[&str], at: &str) -> Result<StagePlan> {
        let tel = tel_id(params, at)?;
        if input_roles != ["r1"] {
            return Err(Error::msg(format!("{at}: stage r0-dl1 takes exactly one input role, \"r1\"")));
        }
        Ok(StagePlan {
            config_keys: config_keys(tel),
            outputs: vec![DeclaredOutput { role: "dl1".into(), file: "dl1.h5".into(), kind: "dl1".into() }],
        })
    }

    fn check_config(&self, config: &Value, file: &std::path::Path, at: &str) -> Result<Vec<String>> {
        crate::config::check_known(config, file, at)?;
        let mut warnings = Vec::new();
        let value = |path: &str| path.split('.').try_fold(config, |v, k| v.get(k));
        if let Some(t) = value("ImageProcessor.image_cleaner_type").and_then(Value::as_str) {
            if t != "ImageCleanerSST" {
                return Err(Error::msg(format!(
                    "{}: ImageProcessor.image_cleaner_type = \"{t}\" (read by {at}): only \"ImageCleanerSST\" is implemented",
                    file.display()
                )));
            }
        }
        if value("ImageProcessor.use_telescope_frame") == Some(&Value::Bool(true)) {
            return Err(Error::msg(format!(
                "{}: ImageProcessor.use_telescope_frame = true (read by {at}) is not implemented; parameters are in the camera frame",
                file.display()
            )));
        }
        if value("NsbCalibrator.mc_correction_for_PDE") == Some(&Value::Bool(true)) {
            warnings.push(format!(
                "{}: NsbCalibrator.mc_correction_for_PDE = true (read by {at}) is not implemented yet: no PDE correction is applied",
                file.display()
            ));
        }
        for unused in ["NsbCalibrator.apply_pixelwise_Vdrop_correction", "NsbCalibrator.apply_global_Vdrop_correction"]
        {
            if value(unused) == Some(&Value::Bool(true)) {
                warnings.push(format!(
                    "{}: {unused} = true (read by {at}) applies to real data, which this stage does not read yet",
                    file.display()
                ));
            }
        }
        Ok(warnings)
    }

    fn run(&self, ctx: &mut StageContext) -> Result<()> {
        let tel = tel_id(ctx.params, "r0-dl1")?;
        let s = settings(ctx.config, tel)?;
        let inputs = ctx.inputs.get("r1").map(Vec::as_slice).unwrap_or(&[]);
        let [input] = inputs else {
            return Err(Error::msg(format!("r0-dl1 needs exactly one R1 file, got {}", inputs.len())));
        };
        let reader = R1Reader::open(&input.path)
            .map_err(|e| Error::msg(format!("input {} ({}): {e}", input.name, input.path.display())))?;
        if reader.tel_id != tel {
            return Err(Error::msg(format!(
                "input {} holds telescope {}, but the step is configured for telescope {tel}",
                input.name, reader.tel_id
            )));
        }
        let geom = CameraGeometry::digicam();
        let n = geom.n_pixels();
        let mut writer = Dl1Writer::create(&ctx.work_dir.join("dl1.h5"), tel, ctx.activity_key, ctx.pipeline_version)?;
        let settings = crate::contract::dl1_settings(ctx.config, tel);
        writer.attribute(
            crate::io::dl1::SETTINGS_ATTR,
            &serde_json::to_string(&settings).map_err(|e| Error::msg(format!("DL1 settings: {e}")))?,
        )?;
        let thresholds = vec![s.picture; n];
        let mut row = ImageRow {
            obs_id: 1,
            event_id: 0,
            tel_id: tel as i16,
            image: [0.0; 1296],
            peak_time: [0.0; 1296],
            image_mask: [false; 1296],
            is_valid: false,
        };
        let run_pointing = reader.run.map(|r| (r.pointing_alt, r.pointing_az)).unwrap_or((f64::NAN, f64::NAN));
        // Observation runs: each event's time and pointing; Monte Carlo: the run's pointing.
        let triggers: std::collections::HashMap<u64, (f64, (f64, f64))> =
            reader.triggers.iter().map(|t| (t.event_id, (t.time, (t.pointing_alt, t.pointing_az)))).collect();
        let time_and_pointing = |event_id: u64| triggers.get(&event_id).copied().unwrap_or((f64::NAN, run_pointing));
        let obs_id = match &reader.observation {
            Some(o) => i32::try_from(o.obs_id)
                .map_err(|_| Error::msg(format!("input {}: obs_id {} out of range", input.name, o.obs_id)))?,
            None => 1,
        };
        row.obs_id = obs_id;
        let truth: std::collections::HashMap<u64, Truth> = reader
            .showers
            .iter()
            .map(|s| {
                let pointing = time_and_pointing(s.event_id).1;
                let direction = crate::astro::camera_to_altaz(
                    s.true_camera_x,
                    s.true_camera_y,
                    crate::instrument::EQUIVALENT_FOCAL_LENGTH_M,
                    pointing.0,
                    pointing.1,
                );
                (
                    s.event_id,
                    Truth {
                        energy_tev: s.true_energy,
                        camera_x: s.true_camera_x,
                        camera_y: s.true_camera_y,
                        core_x: s.true_core_x,
                        core_y: s.true_core_y,
                        h_max: s.true_h_max,
                        impact: s.true_impact,
                        primary_id: s.true_shower_primary_id as i64,
                        alt_deg: direction.0,
                        az_deg: direction.1,
                    },
                )
            })
            .collect();
        let mut with_params = 0usize;
        let mut triggers = Vec::new();
        let mut waveform = vec![0.0f32; crate::io::r1::WAVEFORM_LEN];
        let mut start = 0;
        while start < reader.n_events {
            let end = (start + CHUNK).min(reader.n_events);
            for event in reader.read(start, end)? {
                event.waveform_pe(&mut waveform);
                extract::local_peak_window_sum(&waveform, N_SAMPLES, &s.window, &mut row.image, &mut row.peak_time);
                clean::tailcuts_clean(&geom, &row.image, &thresholds, &s.cuts, &mut row.image_mask);
                clean::time_delta_clean(
                    &geom,
                    &row.peak_time,
                    s.min_time_neighbors,
                    s.time_limit_ns,
                    &mut row.image_mask,
                );
                if s.only_main_island {
                    clean::keep_main_island(&geom, &mut row.image_mask);
                }
                let mut p = image_params::image_parameters(&geom, &row.image, &row.peak_time, &row.image_mask);
                if let Some(p) = p.as_mut() {
                    p.hillas.intensity *= s.intensity_correction;
                    with_params += 1;
                }
                row.event_id = event.event_id as i64;
                row.is_valid = p.is_some();
                let t = truth.get(&event.event_id);
                let (time, pointing) = time_and_pointing(event.event_id);
                let mut parameters =
                    ParametersRow::new(obs_id, event.event_id as i64, tel as i16, pointing, p.as_ref(), t);
                parameters.local_time = time;
                if let Some(t) = TriggerRow::at(obs_id, event.event_id as i64, time) {
                    triggers.push(t);
                }
                writer.write(row, parameters)?;
            }
            start = end;
        }
        writer.write_simulation(&reader.showers, reader.run)?;
        if let Some(o) = &reader.observation {
            writer.write_observation(o)?;
            writer.write_triggers(&triggers)?;
        }
        let events = writer.finish()?;
        let _ = writeln!(ctx.log, "processed {events} events of telescope {tel}; {with_params} with image parameters");
        Ok(())
    }
}
