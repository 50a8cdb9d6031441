//! The `dl1-stereo` stage: two telescopes' DL1 of the same showers → stereo DL1, as sst1mpipe's
//! `sst1mpipe_data_dl1_dl1_stereo` (event matching) followed by ctapipe's ShowerProcessor with
//! the HillasReconstructor (see [`crate::reco::stereo`]).
//!
//! Inputs `tel1` and `tel2`: one DL1 file each (two different telescopes of the array, both
//! Monte Carlo or both data). The matching is the config's `stereo.event_matching_method`:
//! `SWATEventIDs` (event ids; also when the config has no `stereo` section, as sst1mpipe's MC
//! configs) or `WhiteRabbitClosest` (the tel2 event whose White Rabbit time,
//! `full·1e9 + int(frac·1e9)` ns, is closest, if closer than
//! `stereo.WhiteRabbitClosest.max_time_diff_ns`); `SlidingWindow` is refused (not implemented).
//! The step parameter `matching` (`"event_id"` or `"white_rabbit"`, with `max_time_diff_ns`
//! [10000]) overrides the config, and then the config's `stereo` section is read only to say
//! so. As sst1mpipe: a tel1 event needs exactly one candidate (none: a mono event; several, or a
//! tel2 event already used: skipped).
//!
//! Config keys applied: `ShowerProcessor.reconstructor_types` (must be
//! `["HillasReconstructor"]`), `ShowerProcessor.HillasReconstructor.StereoQualityQuery.quality_criteria`
//! (each `parameters.<group>.<field> <op> <number>` on a DL1 column, which an image must pass to
//! take part), `telescope_coords.*.height_m` (the array altitude added to h_max: the mean
//! `height_m` of the two) and the `stereo` keys above.
//! The array points where tel1 points (`true_alt_tel`, `true_az_tel`).
//!
//! Outputs `dl1_tel1`, `dl1_tel2`: each telescope's DL1 parameters (no images) of the matched
//! events, tel1's obs_id and event_id on both, with the stereo columns filled
//! (`HillasReconstructor_{alt, az, core_x, core_y, h_max, tel_impact_distance}`; NaN where the
//! reconstruction failed or an image failed the quality query), the simulation or observation
//! tables of its input, ctapipe's `/dl2/event/subarray/geometry/HillasReconstructor` and
//! `/dl2/event/telescope/impact/HillasReconstructor/tel_NNN` tables, and DL1 settings that add
//! the stereo settings to the input's (so models trained on stereo DL1 are applied to stereo
//! DL1 only).
use super::params::Params;
use super::{ConfigRead, ConfigWarning, DeclaredOutput, InputFile, Stage, StageContext, StagePlan, StepSetup};
use crate::error::{Error, Result};
use crate::io::dl1::{Dl1Reader, Dl1Writer, GeometryRow, ImpactRow, ParametersRow};
use crate::reco::stereo::{hillas_reconstructor, impact_distance, StereoGeometry, StereoImage};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::Path;

pub struct Dl1StereoStage;

const KNOWN: &[&str] = &["matching", "max_time_diff_ns"];
const QUALITY_KEY: &str = "ShowerProcessor.HillasReconstructor.StereoQualityQuery.quality_criteria";

/// How tel2 events are found for tel1 events.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Matching {
    EventId,
    WhiteRabbit { max_diff_ns: i64 },
}

/// The step parameter `matching` (and `max_time_diff_ns`), if given: it overrides the config.
fn parse(params: &Value, at: &str) -> Result<Option<Matching>> {
    let p = Params::new(params, KNOWN, "dl1-stereo", at)?;
    let how = params.get("matching").map(|v| v.as_str().ok_or(v)).transpose();
    match how {
        Ok(None) => {
            if params.get("max_time_diff_ns").is_some() {
                return Err(Error::msg(format!(
                    "{at}.params.max_time_diff_ns: only with \"matching\": \"white_rabbit\""
                )));
            }
            Ok(None)
        }
        Ok(Some("event_id")) => {
            if params.get("max_time_diff_ns").is_some() {
                return Err(Error::msg(format!(
                    "{at}.params.max_time_diff_ns: only for \"matching\": \"white_rabbit\""
                )));
            }
            Ok(Some(Matching::EventId))
        }
        Ok(Some("white_rabbit")) => {
            let max_diff_ns = p.u64_or("max_time_diff_ns", Some(10_000))?;
            if max_diff_ns == 0 || max_diff_ns > 1_000_000_000 {
                return Err(Error::msg(format!("{at}.params.max_time_diff_ns: must be between 1 and 1e9 ns")));
            }
            Ok(Some(Matching::WhiteRabbit { max_diff_ns: max_diff_ns as i64 }))
        }
        Ok(Some(other)) => Err(Error::msg(format!(
            "{at}.params.matching: unknown method \"{other}\"{} (\"event_id\" or \"white_rabbit\")",
            crate::text::suggestion(other, ["event_id", "white_rabbit"])
        ))),
        Err(v) => Err(Error::msg(format!("{at}.params.matching: {v} is not a string"))),
    }
}

/// The matching the config's `stereo` section asks for (sst1mpipe's `event_matching_method`):
/// `SWATEventIDs` → event ids, `WhiteRabbitClosest` → White Rabbit times within
/// `WhiteRabbitClosest.max_time_diff_ns`; absent (Monte Carlo configs have no `stereo`
/// section) → event ids. `SlidingWindow` is refused (not implemented).
fn configured_matching(config: &Value) -> std::result::Result<Matching, String> {
    match config.pointer("/stereo/event_matching_method") {
        None => Ok(Matching::EventId),
        Some(Value::String(m)) if m == "SWATEventIDs" => Ok(Matching::EventId),
        Some(Value::String(m)) if m == "WhiteRabbitClosest" => {
            let key = "stereo.WhiteRabbitClosest.max_time_diff_ns";
            match config.pointer("/stereo/WhiteRabbitClosest/max_time_diff_ns") {
                None => Ok(Matching::WhiteRabbit { max_diff_ns: 10_000 }),
                Some(v) => match v.as_f64() {
                    Some(x) if x.fract() == 0.0 && (1.0..=1e9).contains(&x) => {
                        Ok(Matching::WhiteRabbit { max_diff_ns: x as i64 })
                    }
                    _ => Err(format!("{key} = {v}: must be a whole number of ns from 1 to 1e9")),
                },
            }
        }
        Some(Value::String(m)) if m == "SlidingWindow" => Err(
            "stereo.event_matching_method = \"SlidingWindow\" is not implemented yet (SWATEventIDs and WhiteRabbitClosest are)".into(),
        ),
        Some(other) => Err(format!(
            "stereo.event_matching_method = {other}: expected \"SWATEventIDs\", \"WhiteRabbitClosest\" or \"SlidingWindow\"{}",
            other.as_str().map(|o| crate::text::suggestion(o, ["SWATEventIDs", "WhiteRabbitClosest", "SlidingWindow"])).unwrap_or_default()
        )),
    }
}

/// One quality criterion: a DL1 column compared with a number.
#[derive(Clone, Debug)]
struct Criterion {
    name: String,
    column: String,
    get: fn(&ParametersRow) -> f64,
    op: &'static str,
    value: f64,
}

impl Criterion {
    fn passes(&self, row: &ParametersRow) -> bool {
        let v = (self.get)(row);
        match self.op {
            ">" => v > self.value,
            ">=" => v >= self.value,
            "<" => v < self.value,
            _ => v <= self.value,
        }
    }
}

/// ctapipe's `parameters.<group>.<field>[.value] <op> <number>` as a DL1 column criterion.
fn parse_criterion(name: &str, expression: &str) -> std::result::Result<Criterion, String> {
    let bad = || {
        format!(
            "quality criterion \"{name}\": \"{expression}\" is not `parameters.<group>.<field> <op> <number>` (op one of > >= < <=)"
        )
    };
    let parts: Vec<&str> = expression.split_whitespace().collect();
    let [path, op, number] = parts.as_slice() else { return Err(bad()) };
    let op: &'static str = match *op {
        ">" => ">",
        ">=" => ">=",
        "<" => "<",
        "<=" => "<=",
        _ => return Err(bad()),
    };
    let value: f64 = number.parse().map_err(|_| bad())?;
    let path = path.strip_prefix("parameters.").ok_or_else(bad)?;
    let path = path.strip_suffix(".value").unwrap_or(path);
    let (group, field) = path.split_once('.').ok_or_else(bad)?;
    let column = match group {
        "hillas" => format!("camera_frame_hillas_{field}"),
        "timing" => format!("camera_frame_timing_{field}"),
        _ => format!("{group}_{field}"),
    };
    let get = ParametersRow::getter(&column)
        .ok_or_else(|| format!("quality criterion \"{name}\": no DL1 column {column} for parameters.{path}"))?;
    Ok(Criterion { name: name.to_string(), column, get, op, value })
}

/// The stereo settings from the config subset.
struct Settings {
    criteria: Vec<Criterion>,
    reference_height_m: f64,
}

fn settings(config: &Value, tels: [u16; 2]) -> std::result::Result<Settings, String> {
    let criteria = quality_criteria(config)?;
    let heights: Vec<f64> = tels
        .iter()
        .map(|t| {
            config.pointer(&format!("/telescope_coords/tel_{t:03}/height_m")).and_then(Value::as_f64).ok_or_else(|| {
                format!("telescope_coords.tel_{t:03}.height_m is missing (the array altitude for h_max)")
            })
        })
        .collect::<std::result::Result<_, _>>()?;
    Ok(Settings { criteria, reference_height_m: heights.iter().sum::<f64>() / heights.len() as f64 })
}

/// The reconstructor (HillasReconstructor only) and its quality criteria.
fn quality_criteria(config: &Value) -> std::result::Result<Vec<Criterion>, String> {
    let processor = config.get("ShowerProcessor").ok_or("ShowerProcessor is missing")?;
    match processor.get("reconstructor_types") {
        Some(t) if t == &json!(["HillasReconstructor"]) => {}
        other => {
            return Err(format!(
                "ShowerProcessor.reconstructor_types: {} (only [\"HillasReconstructor\"] is implemented)",
                other.map(Value::to_string).unwrap_or_else(|| "missing".into())
            ))
        }
    }
    let list = processor
        .pointer("/HillasReconstructor/StereoQualityQuery/quality_criteria")
        .and_then(Value::as_array)
        .ok_or_else(|| format!("{QUALITY_KEY} must be a list of [name, expression]"))?;
    list.iter()
        .map(|c| match c.as_array().map(Vec::as_slice) {
            Some([Value::String(name), Value::String(expr)]) => parse_criterion(name, expr),
            _ => Err(format!("{QUALITY_KEY}: {c} is not [name, expression]")),
        })
        .collect()
}

/// The White Rabbit time of a row in ns, as sst1mpipe's matcher computes it.
fn white_rabbit_ns(row: &ParametersRow) -> Option<i64> {
    if row.time_wr_full_seconds < 0 || !row.time_wr_frac_seconds.is_finite() {
        return None;
    }
    Some(row.time_wr_full_seconds * 1_000_000_000 + (row.time_wr_frac_seconds * 1e9) as i64)
}

/// Matched (tel1 index, tel2 index) pairs, and the counts of mono and multiple events.
fn match_events(
    first: &[ParametersRow],
    second: &[ParametersRow],
    how: Matching,
) -> (Vec<(usize, usize)>, usize, usize) {
    let (mut pairs, mut mono, mut multiple) = (Vec::new(), 0, 0);
    let mut used_second = std::collections::HashSet::new();
    let mut accept = |i: usize, candidates: &[usize]| match candidates {
        [] => mono += 1,
        [j] if used_second.insert(second[*j].event_id) => pairs.push((i, *j)),
        _ => multiple += 1,
    };
    match how {
        Matching::EventId => {
            let mut by_id: HashMap<i64, Vec<usize>> = HashMap::new();
            for (j, r) in second.iter().enumerate() {
                by_id.entry(r.event_id).or_default().push(j);
            }
            for (i, r) in first.iter().enumerate() {
                accept(i, by_id.get(&r.event_id).map(Vec::as_slice).unwrap_or(&[]));
            }
        }
        Matching::WhiteRabbit { max_diff_ns } => {
            let mut times: Vec<(i64, usize)> =
                second.iter().enumerate().filter_map(|(j, r)| white_rabbit_ns(r).map(|t| (t, j))).collect();
            times.sort();
            for (i, r) in first.iter().enumerate() {
                let Some(t) = white_rabbit_ns(r) else {
                    accept(i, &[]);
                    continue;
                };
                let at = times.partition_point(|&(u, _)| u < t);
                let near = |k: usize| (times[k].0 - t).abs();
                let best = [at.checked_sub(1), (at < times.len()).then_some(at)].into_iter().flatten().map(near).min();
                let candidates: Vec<usize> = match best {
                    Some(d) if d < max_diff_ns => {
                        // Every tel2 event at exactly the smallest difference is a candidate.
                        let lo = times.partition_point(|&(u, _)| u < t - d);
                        let hi = times.partition_point(|&(u, _)| u <= t + d);
                        (lo..hi).filter(|&k| near(k) == d).map(|k| times[k].1).collect()
                    }
                    _ => Vec::new(),
                };
                accept(i, &candidates);
            }
        }
    }
    (pairs, mono, multiple)
}

fn geometry_row(obs_id: i64, event_id: i64, g: Option<&StereoGeometry>) -> GeometryRow {
    let nan = f64::NAN;
    match g {
        Some(g) => GeometryRow {
            obs_id,
            event_id,
            HillasReconstructor_alt: g.alt_rad.to_degrees(),
            HillasReconstructor_alt_uncert: g.direction_uncertainty_rad.to_degrees(),
            HillasReconstructor_az: g.az_rad.to_degrees(),
            HillasReconstructor_az_uncert: g.direction_uncertainty_rad.to_degrees(),
            HillasReconstructor_core_x: g.core_x_m,
            HillasReconstructor_core_y: g.core_y_m,
            HillasReconstructor_core_tilted_x: g.core_tilted_x_m,
            HillasReconstructor_core_tilted_y: g.core_tilted_y_m,
            HillasReconstructor_h_max: g.h_max_m,
            HillasReconstructor_is_valid: true,
            HillasReconstructor_average_intensity: g.average_intensity,
        },
        None => GeometryRow {
            obs_id,
            event_id,
            HillasReconstructor_alt: nan,
            HillasReconstructor_alt_uncert: nan,
            HillasReconstructor_az: nan,
            HillasReconstructor_az_uncert: nan,
            HillasReconstructor_core_x: nan,
            HillasReconstructor_core_y: nan,
            HillasReconstructor_core_tilted_x: nan,
            HillasReconstructor_core_tilted_y: nan,
            HillasReconstructor_h_max: nan,
            HillasReconstructor_is_valid: false,
            HillasReconstructor_average_intensity: nan,
        },
    }
}

fn stereo_image(row: &ParametersRow, position_m: [f64; 3], camera_radius_m: f64) -> StereoImage {
    StereoImage {
        tel_id: row.tel_id as u16,
        position_m,
        pointing_alt_rad: row.true_alt_tel.to_radians(),
        pointing_az_rad: row.true_az_tel.to_radians(),
        focal_length_m: crate::instrument::EQUIVALENT_FOCAL_LENGTH_M,
        camera_radius_m,
        x_m: row.camera_frame_hillas_x,
        y_m: row.camera_frame_hillas_y,
        psi_rad: row.camera_frame_hillas_psi.to_radians(),
        intensity: row.camera_frame_hillas_intensity,
        length_m: row.camera_frame_hillas_length,
        width_m: row.camera_frame_hillas_width,
    }
}

fn one_input<'a>(ctx: &'a StageContext, role: &str) -> Result<&'a InputFile> {
    match ctx.inputs.get(role).map(Vec::as_slice) {
        Some([f]) => Ok(f),
        _ => Err(Error::msg(format!("dl1-stereo needs exactly one DL1 file as input {role}"))),
    }
}

impl Stage for Dl1StereoStage {
    fn name(&self) -> &'static str {
        "dl1-stereo"
    }

    fn version(&self) -> &'static str {
        "2"
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
        parse(params, at)?;
        if input_roles != ["tel1", "tel2"] {
            return Err(Error::msg(format!(
                "{at}: stage dl1-stereo takes two input roles, \"tel1\" and \"tel2\" (one telescope's DL1 each)"
            )));
        }
        let output = |role: &str| DeclaredOutput {
            role: format!("dl1_{role}"),
            file: format!("dl1_{role}.h5").into(),
            kind: "dl1-stereo".into(),
        };
        // The config's matching applies unless the step parameter overrides it.
        let (config_keys, config_read) = if parse(params, at)?.is_some() {
            (Vec::new(), vec![ConfigRead::new("stereo", "overridden by the step parameter \"matching\"")])
        } else {
            // The time window is the White Rabbit matching's only: under the other methods
            // it changes nothing, so it is read, not applied.
            let method = config.and_then(|c| c.pointer("/stereo/event_matching_method"));
            let mut keys = vec!["stereo.event_matching_method?".to_string()];
            if config.is_none() || method.and_then(Value::as_str) == Some("WhiteRabbitClosest") {
                keys.push("stereo.WhiteRabbitClosest.max_time_diff_ns?".into());
            }
            (
                keys,
                vec![ConfigRead::new(
                    "stereo",
                    "settings of a matching method this config does not select (SlidingWindow: not implemented)",
                )],
            )
        };
        let mut keys = vec![
            "ShowerProcessor.reconstructor_types".to_string(),
            "ShowerProcessor.HillasReconstructor.StereoQualityQuery.quality_criteria".into(),
            "telescope_coords.*.height_m".into(),
        ];
        keys.extend(config_keys);
        Ok(StagePlan {
            config_keys: keys,
            config_read: [vec![ConfigRead::new("ShowerProcessor", "settings of another reconstructor")], config_read]
                .concat(),
            outputs: vec![output("tel1"), output("tel2")],
        })
    }

    fn config_for_inputs(&self, config: &Value, inputs: &[InputFile]) -> Option<Value> {
        super::telescope_coords_for_inputs(config, inputs, &["tel1", "tel2"], "/dl1/event/telescope/parameters")
    }

    fn config_scope(&self) -> Vec<&'static str> {
        vec!["ShowerProcessor", "telescope_coords.*", "stereo"]
    }

    fn check_config(&self, config: &Value, step: &StepSetup, file: &Path, at: &str) -> Result<Vec<ConfigWarning>> {
        // The telescopes (and so their heights) are known from the inputs only, at run time.
        quality_criteria(config).map_err(|e| Error::msg(format!("{}: {e} (read by {at})", file.display())))?;
        let configured = configured_matching(config);
        match parse(step.params, at)? {
            None => {
                configured.map_err(|e| Error::msg(format!("{}: {e} (read by {at})", file.display())))?;
            }
            Some(chosen) => {
                if let Some(m) = config.pointer("/stereo/event_matching_method") {
                    if configured.as_ref().ok() != Some(&chosen) {
                        return Ok(vec![ConfigWarning::new(
                            "stereo.event_matching_method",
                            format!("config stereo.event_matching_method = {m} is overridden by {at}'s parameter \"matching\""),
                        )]);
                    }
                }
            }
        }
        Ok(Vec::new())
    }

    fn run(&self, ctx: &mut StageContext) -> Result<()> {
        let given = parse(ctx.params, "dl1-stereo")?;
        let inputs = [one_input(ctx, "tel1")?, one_input(ctx, "tel2")?];
        let readers = inputs
            .iter()
            .map(|f| Dl1Reader::open(&f.path).map_err(|e| Error::msg(format!("input {}: {e}", f.name))))
            .collect::<Result<Vec<_>>>()?;
        let tels = [readers[0].tel_id, readers[1].tel_id];
        if tels[0] == tels[1] {
            return Err(Error::msg(format!(
                "dl1-stereo: inputs {} and {} are both telescope {}; stereo needs two telescopes",
                inputs[0].name, inputs[1].name, tels[0]
            )));
        }
        if readers[0].run.is_some() != readers[1].run.is_some() {
            return Err(Error::msg(format!(
                "dl1-stereo: one of {} and {} is Monte Carlo and the other is not",
                inputs[0].name, inputs[1].name
            )));
        }
        let positions = tels
            .iter()
            .zip(&inputs)
            .map(|(&t, f)| {
                crate::instrument::ground_position(t).ok_or_else(|| {
                    Error::msg(format!("input {}: telescope {t} has no known position in the array", f.name))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let s = settings(ctx.config, tels).map_err(|e| Error::msg(format!("dl1-stereo: {e}")))?;
        // Simulated telescopes share event ids and have no White Rabbit clock: the config's
        // method (sst1mpipe's, for camera data) does not apply to them.
        let mut matching_note = None;
        let how = match given {
            Some(how) => how,
            None if readers[0].run.is_some() => {
                if let Some(m) = ctx.config.pointer("/stereo/event_matching_method") {
                    matching_note = Some(format!(
                        "Monte Carlo: matched by event id (stereo.event_matching_method = {m} is for camera data)"
                    ));
                }
                Matching::EventId
            }
            None => configured_matching(ctx.config).map_err(|e| Error::msg(format!("config {e}")))?,
        };
        let rows = readers.iter().map(|r| r.read(0, r.n_events)).collect::<Result<Vec<_>>>()?;
        let (pairs, mono, multiple) = match_events(&rows[0], &rows[1], how);
        // Each input's own description (camera, optics, pulse), at the array position the
        // reconstruction uses.
        let telescopes = inputs
            .iter()
            .zip(tels.iter().zip(&positions))
            .map(|(f, (&t, &position))| {
                let mut d = crate::io::instrument::read_telescope_description(&f.path, t)
                    .map_err(|e| Error::msg(format!("input {}: {}", f.name, e.message())))?;
                d.position_m = position;
                Ok(d)
            })
            .collect::<Result<Vec<_>>>()?;
        let radius = telescopes[0].geometry.radius();
        let passes = |row: &ParametersRow| s.criteria.iter().all(|c| c.passes(row));
        let mut out_rows: [Vec<ParametersRow>; 2] = [Vec::new(), Vec::new()];
        let mut geometry_rows = Vec::with_capacity(pairs.len());
        let mut impacts: [Vec<ImpactRow>; 2] = [Vec::new(), Vec::new()];
        let mut failed_quality = 0usize;
        let mut reconstructed = 0usize;
        for &(i, j) in &pairs {
            let (a, b) = (&rows[0][i], &rows[1][j]);
            let geometry = if passes(a) && passes(b) {
                let images = [stereo_image(a, positions[0], radius), stereo_image(b, positions[1], radius)];
                let pointing = (a.true_alt_tel.to_radians(), a.true_az_tel.to_radians());
                hillas_reconstructor(&images, pointing, s.reference_height_m)
            } else {
                failed_quality += 1;
                None
            };
            reconstructed += geometry.is_some() as usize;
            let (obs_id, event_id) = (a.obs_id, a.event_id);
            geometry_rows.push(geometry_row(obs_id, event_id, geometry.as_ref()));
            for (k, row) in [a, b].into_iter().enumerate() {
                let mut r = *row;
                r.obs_id = obs_id;
                r.event_id = event_id;
                let impact = geometry.as_ref().map(|g| impact_distance(g, positions[k])).unwrap_or(f64::NAN);
                if let Some(g) = &geometry {
                    r.HillasReconstructor_alt = g.alt_rad.to_degrees();
                    r.HillasReconstructor_az = g.az_rad.to_degrees();
                    r.HillasReconstructor_core_x = g.core_x_m;
                    r.HillasReconstructor_core_y = g.core_y_m;
                    r.HillasReconstructor_h_max = g.h_max_m;
                    r.HillasReconstructor_tel_impact_distance = impact;
                }
                impacts[k].push(ImpactRow {
                    obs_id,
                    event_id,
                    tel_id: tels[k] as i16,
                    HillasReconstructor_tel_impact_distance: impact,
                });
                out_rows[k].push(r);
            }
        }
        // Added to each input's DL1 settings, flat like the others; the matching method is one of
        // the contract's legitimate simulation/observation differences.
        let stereo_settings = [
            (
                "stereo.matching",
                match how {
                    Matching::EventId => json!("event_id"),
                    Matching::WhiteRabbit { max_diff_ns } => json!(format!("white_rabbit within {max_diff_ns} ns")),
                },
            ),
            (
                "stereo.quality_criteria",
                json!(s.criteria.iter().map(|c| json!([c.name, c.column, c.op, c.value])).collect::<Vec<_>>()),
            ),
            ("stereo.reconstructor", json!("HillasReconstructor")),
        ];
        for k in 0..2 {
            let role = ["tel1", "tel2"][k];
            let mut writer = Dl1Writer::create_parameters_only(
                &ctx.work_dir.join(format!("dl1_{role}.h5")),
                &telescopes[k],
                ctx.activity_key,
                ctx.pipeline_version,
            )?;
            let mut dl1_settings = readers[k].settings.clone();
            for (key, value) in &stereo_settings {
                dl1_settings.insert(key.to_string(), value.clone());
            }
            writer.write_settings(&dl1_settings)?;
            for r in &out_rows[k] {
                writer.write_parameters(*r)?;
            }
            if let Some(run) = readers[k].run {
                writer.write_simulation(&readers[k].showers, Some(run))?;
            }
            if let Some(o) = &readers[k].observation {
                writer.write_observation(o)?;
            }
            writer.write_stereo_geometry(&geometry_rows)?;
            writer.write_stereo_impacts(tels[k], &impacts[k])?;
            writer.finish()?;
        }
        if let Some(note) = matching_note {
            let _ = writeln!(ctx.log, "{note}");
        }
        let _ = writeln!(
            ctx.log,
            "telescopes {} and {}: {} matched events ({reconstructed} reconstructed, {failed_quality} failing the quality query), {mono} mono and {multiple} multiple-coincidence events of telescope {} skipped",
            tels[0],
            tels[1],
            pairs.len(),
            tels[0]
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(event_id: i64, full: i64, frac: f64) -> ParametersRow {
        let mut r = ParametersRow::new(1, event_id, 21, (70.0, 0.0), None, None);
        r.time_wr_full_seconds = full;
        r.time_wr_frac_seconds = frac;
        r
    }

    #[test]
    fn matching_by_event_id_and_by_white_rabbit_time_as_sst1mpipe() {
        let first = [row(1, 100, 0.000_001), row(2, 100, 0.5), row(3, 100, 0.7), row(4, 100, 0.9)];
        let second =
            [row(3, 100, 0.7 + 4e-6), row(1, 100, 0.000_008), row(9, 100, 0.9 + 5e-6), row(9, 100, 0.9 - 5e-6)];
        let (pairs, mono, multiple) = match_events(&first, &second, Matching::EventId);
        assert_eq!((pairs, mono, multiple), (vec![(0, 1), (2, 0)], 2, 0));
        let (pairs, mono, multiple) = match_events(&first, &second, Matching::WhiteRabbit { max_diff_ns: 10_000 });
        // Event 4 has two tel2 events 5 µs away on either side: a multiple coincidence.
        assert_eq!((pairs, mono, multiple), (vec![(0, 1), (2, 0)], 1, 1));
        let (pairs, _, _) = match_events(&first, &second, Matching::WhiteRabbit { max_diff_ns: 5_000 });
        assert_eq!(pairs, vec![(2, 0)]);
    }

    #[test]
    fn quality_criteria_are_read_as_ctapipe_writes_them() {
        let c = parse_criterion("Positive width", "parameters.hillas.width.value > 0").unwrap();
        assert_eq!((c.column.as_str(), c.op, c.value), ("camera_frame_hillas_width", ">", 0.0));
        let c = parse_criterion("not clipped", "parameters.leakage.intensity_width_2 < 1.0").unwrap();
        assert_eq!(c.column, "leakage_intensity_width_2");
        let mut r = row(1, 0, 0.0);
        r.leakage_intensity_width_2 = 0.5;
        assert!(c.passes(&r));
        r.leakage_intensity_width_2 = 1.0;
        assert!(!c.passes(&r));
        assert!(parse_criterion("x", "parameters.hillas.colour > 1").unwrap_err().contains("no DL1 column"));
        assert!(parse_criterion("x", "np.sum(parameters.hillas.width) > 1").is_err());
        assert!(parse_criterion("x", "parameters.hillas.width ~ 1").is_err());
    }
}
