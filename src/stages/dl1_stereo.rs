//! The `dl1-stereo` stage: two telescopes' DL1 of the same showers → stereo DL1, as sst1mpipe's
//! `sst1mpipe_data_dl1_dl1_stereo` (event matching) followed by ctapipe's ShowerProcessor with
//! the HillasReconstructor (see [`crate::reco::stereo`]).
//!
//! Inputs `tel1` and `tel2`: DL1 of two different telescopes of the array, both Monte Carlo or
//! both data. `tel1` is one file (one run); `tel2` one file, or for camera data a set (a night of
//! the second telescope, one setting and version): as sst1mpipe, only the files whose events
//! overlap the tel1 run in time and whose pointing is within 0.2° of it are used, and the log
//! names each file used or skipped with why. The matching of camera data is the config's
//! `stereo.event_matching_method`, as sst1mpipe's:
//! - `SWATEventIDs`: equal event ids (SWAT array event numbers). As sst1mpipe, when tel1's DL1
//!   says its ids are not SWAT ids (`/dl1/info` `swat_event_ids_used` false, or no such table),
//!   the ids are not trusted: the matching falls back to `WhiteRabbitClosest`, and the log says so.
//! - `WhiteRabbitClosest`: the tel2 event whose White Rabbit time, `full·1e9 + int(frac·1e9)` ns,
//!   is closest, if closer than `stereo.WhiteRabbitClosest.max_time_diff_ns`.
//! - `SlidingWindow` (data before White Rabbit and SWAT, 25 September 2023): the clock offset
//!   between the telescopes that maximises coincidences within `stereo.SlidingWindow.window_half_width`
//!   (s), searched over `offset_search.{time_start, time_stop, time_step}` on the events passing
//!   `event_selection` and the finite check of the mono features, then the tel2 events inside
//!   the window around each tel1 time plus the offset ([`crate::reco::matching`]).
//!
//! Monte Carlo is always matched by event id (sim_telarray's shared ids; the config's method is
//! for camera data and the log says it was not used; a step parameter asking for another
//! method on Monte Carlo is refused). The step parameter `matching`
//! (`"event_id"`, `"white_rabbit"` with `max_time_diff_ns` [10000], or `"sliding_window"` with
//! `window_half_width_s` [0.001], `offset_start_s` [−0.01], `offset_stop_s` [0.01],
//! `offset_step_s` [2e-5]) overrides the config and is recorded; the config's `stereo` section
//! is then read only to say so. As sst1mpipe, a tel1 event needs exactly one candidate (none: a
//! mono event; several: a multiple coincidence, skipped). On camera data, as sst1mpipe, a pair
//! is kept only when both images have parameters (intensity > 0), and a tel2 event equal to
//! the previous pair's is skipped as a multiple coincidence.
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

const KNOWN: &[&str] =
    &["matching", "max_time_diff_ns", "window_half_width_s", "offset_start_s", "offset_stop_s", "offset_step_s"];
/// What the sliding window's offset search selects events with (sst1mpipe's quality cuts and
/// finite check of the mono features).
const SLIDING_SELECTION_KEYS: [&str; 5] = [
    "event_selection",
    "energy_regression_features",
    "particle_classification_features",
    "disp_regression_features",
    "disp_classification_features",
];
const SLIDING_KEYS: [&str; 4] = ["window_half_width_s", "offset_start_s", "offset_stop_s", "offset_step_s"];
const QUALITY_KEY: &str = "ShowerProcessor.HillasReconstructor.StereoQualityQuery.quality_criteria";

/// How tel2 events are found for tel1 events.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Matching {
    EventId,
    WhiteRabbit {
        max_diff_ns: i64,
    },
    /// The window half width (s) and the trial offsets (start, stop, step in s).
    SlidingWindow {
        half_width_s: f64,
        offsets: [f64; 3],
    },
}

impl Matching {
    /// How the DL1 settings record it.
    fn setting(&self) -> Value {
        match self {
            Matching::EventId => json!("event_id"),
            Matching::WhiteRabbit { max_diff_ns } => json!(format!("white_rabbit within {max_diff_ns} ns")),
            Matching::SlidingWindow { half_width_s, offsets } => json!(format!(
                "sliding_window of ±{half_width_s} s, offset searched on arange({}, {}, {})",
                offsets[0], offsets[1], offsets[2]
            )),
        }
    }
}

/// A sliding window's settings, checked: a positive finite half width and a grid of at most a
/// million trial offsets.
fn sliding_window(half_width_s: f64, offsets: [f64; 3]) -> std::result::Result<Matching, String> {
    if !(half_width_s > 0.0 && half_width_s.is_finite() && half_width_s < 60.0) {
        return Err(format!("window half width {half_width_s} s: must be positive and below 60 s"));
    }
    let [start, stop, step] = offsets;
    if !(start.is_finite() && stop.is_finite() && step > 0.0 && step.is_finite() && start < stop) {
        return Err(format!(
            "offset search from {start} to {stop} s by {step}: needs start < stop and a positive step"
        ));
    }
    if (stop - start) / step > 1e6 {
        return Err(format!("offset search from {start} to {stop} s by {step}: more than a million trial offsets"));
    }
    Ok(Matching::SlidingWindow { half_width_s, offsets })
}

/// The step parameter `matching` (and `max_time_diff_ns`), if given: it overrides the config.
fn parse(params: &Value, at: &str) -> Result<Option<Matching>> {
    let p = Params::new(params, KNOWN, "dl1-stereo", at)?;
    let how = params.get("matching").map(|v| v.as_str().ok_or(v)).transpose();
    match how {
        Ok(how) if how != Some("sliding_window") && SLIDING_KEYS.iter().any(|k| params.get(*k).is_some()) => {
            let k = SLIDING_KEYS.iter().find(|k| params.get(**k).is_some()).expect("one is set");
            Err(Error::msg(format!("{at}.params.{k}: only with \"matching\": \"sliding_window\"")))
        }
        Ok(Some("sliding_window")) => {
            if params.get("max_time_diff_ns").is_some() {
                return Err(Error::msg(format!(
                    "{at}.params.max_time_diff_ns: only for \"matching\": \"white_rabbit\""
                )));
            }
            let number = |k: &str, default: f64| match params.get(k) {
                None => Ok(default),
                Some(v) => v.as_f64().ok_or_else(|| Error::msg(format!("{at}.params.{k}: {v} is not a number"))),
            };
            let half_width = number("window_half_width_s", 0.001)?;
            let offsets =
                [number("offset_start_s", -0.01)?, number("offset_stop_s", 0.01)?, number("offset_step_s", 2e-5)?];
            sliding_window(half_width, offsets).map(Some).map_err(|e| Error::msg(format!("{at}.params: {e}")))
        }
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
            "{at}.params.matching: unknown method \"{other}\"{} (\"event_id\", \"white_rabbit\" or \"sliding_window\")",
            crate::text::suggestion(other, ["event_id", "white_rabbit", "sliding_window"])
        ))),
        Err(v) => Err(Error::msg(format!("{at}.params.matching: {v} is not a string"))),
    }
}

/// The matching the config's `stereo` section asks for (sst1mpipe's `event_matching_method`):
/// `SWATEventIDs` → event ids, `WhiteRabbitClosest` → White Rabbit times within
/// `WhiteRabbitClosest.max_time_diff_ns`, `SlidingWindow` → its window and offset search;
/// absent (Monte Carlo configs have no `stereo` section) → event ids.
fn configured_matching(config: &Value) -> std::result::Result<Matching, String> {
    match config.pointer("/stereo/event_matching_method") {
        None => Ok(Matching::EventId),
        Some(Value::String(m)) if m == "SWATEventIDs" => {
            // The White Rabbit window is checked too: it is the fallback.
            white_rabbit_of_config(config)?;
            Ok(Matching::EventId)
        }
        Some(Value::String(m)) if m == "WhiteRabbitClosest" => white_rabbit_of_config(config),
        Some(Value::String(m)) if m == "SlidingWindow" => {
            let number = |key: &str| {
                let pointer = format!("/stereo/SlidingWindow/{}", key.replace('.', "/"));
                match config.pointer(&pointer) {
                    None => Err(format!("stereo.SlidingWindow.{key} is missing (SlidingWindow matching needs it)")),
                    Some(v) => v.as_f64().ok_or_else(|| format!("stereo.SlidingWindow.{key} = {v}: not a number")),
                }
            };
            let half_width = number("window_half_width")?;
            let offsets = [
                number("offset_search.time_start")?,
                number("offset_search.time_stop")?,
                number("offset_search.time_step")?,
            ];
            sliding_window(half_width, offsets).map_err(|e| format!("stereo.SlidingWindow: {e}"))
        }
        Some(other) => Err(format!(
            "stereo.event_matching_method = {other}: expected \"SWATEventIDs\", \"WhiteRabbitClosest\" or \"SlidingWindow\"{}",
            other.as_str().map(|o| crate::text::suggestion(o, ["SWATEventIDs", "WhiteRabbitClosest", "SlidingWindow"])).unwrap_or_default()
        )),
    }
}

/// `WhiteRabbitClosest` with the config's window (10 µs when absent).
fn white_rabbit_of_config(config: &Value) -> std::result::Result<Matching, String> {
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

/// The outcome of matching: (tel1 index, tel2 index) pairs, and the tel1 events left out.
#[derive(Debug, Default, PartialEq)]
struct Matched {
    pairs: Vec<(usize, usize)>,
    mono: usize,
    multiple: usize,
    /// Camera data: single candidates where one of the two images has no parameters.
    without_images: usize,
}

/// Matches `first` (tel1) with `second` (tel2) events; `sliding_offset_s` is the clock offset a
/// sliding window uses. `camera_data` applies sst1mpipe's rules for observations (see the
/// module doc); Monte Carlo pairs every event with its one partner, each tel2 event once.
fn match_events(
    first: &[ParametersRow],
    second: &[ParametersRow],
    how: Matching,
    sliding_offset_s: f64,
    camera_data: bool,
) -> Matched {
    let mut out = Matched::default();
    let mut used_second = std::collections::HashSet::new();
    let mut previous_second: i64 = 0;
    let mut accept = |i: usize, candidates: &[usize]| match candidates {
        [] => out.mono += 1,
        [j] if camera_data => {
            let has_image = |r: &ParametersRow| r.camera_frame_hillas_intensity > 0.0;
            if !(has_image(&first[i]) && has_image(&second[*j])) {
                out.without_images += 1;
            } else if second[*j].event_id == previous_second {
                out.multiple += 1;
            } else {
                previous_second = second[*j].event_id;
                out.pairs.push((i, *j));
            }
        }
        [j] if used_second.insert(second[*j].event_id) => out.pairs.push((i, *j)),
        _ => out.multiple += 1,
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
        Matching::SlidingWindow { half_width_s, .. } => {
            let t1: Vec<f64> = first.iter().map(|r| r.local_time).collect();
            let t2: Vec<f64> = second.iter().map(|r| r.local_time).collect();
            let candidates = crate::reco::matching::sliding_window_candidates(&t1, &t2, sliding_offset_s, half_width_s);
            for (i, c) in candidates.iter().enumerate() {
                accept(i, c);
            }
        }
    }
    out
}

/// One `event_selection` entry on DL1 rows: the column's reader and the inclusive bounds.
type Dl1Cut = (fn(&ParametersRow) -> f64, f64, f64);

/// sst1mpipe's offset search input: the local times of the events passing `event_selection`
/// and the finite check of the mono features (columns the DL1 does not have are skipped, as
/// sst1mpipe's get_finite skips them).
fn selected_times(rows: &[ParametersRow], config: &Value) -> std::result::Result<Vec<f64>, String> {
    let selection = crate::reco::EventSelection::from_config(config)?;
    let cuts: Vec<Dl1Cut> = selection
        .cuts
        .iter()
        .map(|(c, lo, hi)| {
            ParametersRow::getter(c)
                .map(|g| (g, *lo, *hi))
                .ok_or_else(|| format!("event_selection: no DL1 column \"{c}\""))
        })
        .collect::<std::result::Result<_, _>>()?;
    let mut features = Vec::new();
    for key in [
        "energy_regression_features",
        "particle_classification_features",
        "disp_regression_features",
        "disp_classification_features",
    ] {
        let list =
            config.get(key).ok_or_else(|| format!("{key} is missing (the finite check of the offset search)"))?;
        features.extend(crate::reco::feature_list(list, key, false)?);
    }
    let finite: Vec<fn(&ParametersRow) -> f64> = features.iter().filter_map(|f| ParametersRow::getter(f)).collect();
    Ok(rows
        .iter()
        .filter(|r| cuts.iter().all(|(g, lo, hi)| (g(r) >= *lo) && (g(r) <= *hi)))
        .filter(|r| finite.iter().all(|g| g(r).is_finite()))
        .map(|r| r.local_time)
        .collect())
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

/// sst1mpipe's pointing tolerance between the tel1 run and a tel2 run (deg).
const POINTING_TOLERANCE_DEG: f64 = 0.2;

/// The tel2 events a tel1 run is matched with. Monte Carlo: the one tel2 file. Camera data:
/// as sst1mpipe's `load_more_dl1_tables_mono`, every tel2 file (a night of the second
/// telescope) whose events overlap the tel1 run in time and whose pointing is within 0.2° of
/// the tel1 run's, concatenated in input order; each file used or skipped is noted with why.
/// Returns the first file used (its description and run row stand for the set), its reader and
/// the rows of all files used.
fn choose_tel2<'a>(
    tel1_in: &InputFile,
    tel1: &Dl1Reader,
    tel1_rows: &[ParametersRow],
    set: Vec<(&'a InputFile, Dl1Reader, Vec<ParametersRow>)>,
    notes: &mut Vec<String>,
) -> Result<(&'a InputFile, Dl1Reader, Vec<ParametersRow>)> {
    if set.is_empty() {
        return Err(Error::msg("dl1-stereo needs at least one DL1 file as input tel2"));
    }
    let (first_in, first, _) = &set[0];
    for (f, r, _) in &set[1..] {
        if r.tel_id != first.tel_id {
            return Err(Error::msg(format!(
                "dl1-stereo: tel2 inputs {} (telescope {}) and {} (telescope {}) are not one telescope",
                first_in.name, first.tel_id, f.name, r.tel_id
            )));
        }
        let diffs = crate::contract::all_differences(&first.settings, &r.settings);
        if !diffs.is_empty() {
            return Err(Error::msg(format!(
                "dl1-stereo: tel2 inputs {} and {} were made with different DL1 settings:\n{}",
                first_in.name,
                f.name,
                crate::contract::side_by_side(&first_in.name, &f.name, &diffs)
            )));
        }
        if r.pipeline_version != first.pipeline_version {
            return Err(Error::msg(format!(
                "dl1-stereo: tel2 inputs {} (pipeline {}) and {} (pipeline {}) were made by different sst1mflow versions",
                first_in.name, first.pipeline_version, f.name, r.pipeline_version
            )));
        }
    }
    if tel1.run.is_some() {
        if set.len() > 1 {
            return Err(Error::msg(format!(
                "dl1-stereo: {} tel2 files for Monte Carlo input {}: simulated telescopes share one production's event ids, give its one tel2 file",
                set.len(),
                tel1_in.name
            )));
        }
        return Ok(set.into_iter().next().expect("one"));
    }
    let range = |rows: &[ParametersRow]| {
        rows.iter()
            .map(|r| r.local_time)
            .filter(|t| t.is_finite())
            .fold(None, |acc: Option<(f64, f64)>, t| Some(acc.map_or((t, t), |(lo, hi)| (lo.min(t), hi.max(t)))))
    };
    let Some((start, stop)) = range(tel1_rows) else {
        return Err(Error::msg(format!("dl1-stereo: tel1 input {} has no event times", tel1_in.name)));
    };
    let tel1_pointing = tel1.observation.map(|o| (o.ra_pnt, o.dec_pnt));
    let mut chosen: Option<(&InputFile, Dl1Reader)> = None;
    let mut rows = Vec::new();
    let mut skipped = Vec::new();
    for (f, r, file_rows) in set {
        let why = match range(&file_rows) {
            None => Some("no events".to_string()),
            Some((lo, hi)) if !(lo <= stop && hi >= start) => {
                Some(format!("no overlap in time ({lo:.3}–{hi:.3} s against {start:.3}–{stop:.3} s)"))
            }
            Some(_) => match (tel1_pointing, r.observation.map(|o| (o.ra_pnt, o.dec_pnt))) {
                (Some((ra1, dec1)), Some((ra2, dec2))) => {
                    let separation = crate::astro::angular_separation_deg(ra1, dec1, ra2, dec2);
                    (separation > POINTING_TOLERANCE_DEG)
                        .then(|| format!("pointing {separation:.3}° away (more than {POINTING_TOLERANCE_DEG}°)"))
                }
                _ => None,
            },
        };
        match why {
            Some(why) => skipped.push(format!("{}: {why}", f.name)),
            None => {
                notes.push(format!("tel2 file {} ({} events) overlaps the tel1 run: used", f.name, file_rows.len()));
                rows.extend(file_rows);
                if chosen.is_none() {
                    chosen = Some((f, r));
                }
            }
        }
    }
    for s in &skipped {
        notes.push(format!("tel2 file {s}: skipped"));
    }
    match chosen {
        Some((f, r)) => Ok((f, r, rows)),
        None => Err(Error::msg(format!(
            "dl1-stereo: no tel2 file overlaps tel1 input {} in time with its pointing:\n  {}",
            tel1_in.name,
            skipped.join("\n  ")
        ))),
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
        "3"
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
        let (config_keys, config_read) = if let Some(given) = parse(params, at)? {
            // A sliding window given by the step still selects its events with the config.
            let keys = match given {
                Matching::SlidingWindow { .. } => SLIDING_SELECTION_KEYS.map(String::from).to_vec(),
                _ => Vec::new(),
            };
            (keys, vec![ConfigRead::new("stereo", "overridden by the step parameter \"matching\"")])
        } else {
            // The time window is the White Rabbit matching's only: under the other methods
            // it changes nothing, so it is read, not applied.
            // SWAT ids fall back to White Rabbit times, so both use the window.
            let method = config.and_then(|c| c.pointer("/stereo/event_matching_method")).and_then(Value::as_str);
            let mut keys = vec!["stereo.event_matching_method?".to_string()];
            match method {
                None if config.is_some() => {}
                Some("SlidingWindow") => {
                    keys.extend(
                        [
                            "stereo.SlidingWindow.window_half_width",
                            "stereo.SlidingWindow.offset_search.time_start",
                            "stereo.SlidingWindow.offset_search.time_stop",
                            "stereo.SlidingWindow.offset_search.time_step",
                        ]
                        .map(String::from),
                    );
                    keys.extend(SLIDING_SELECTION_KEYS.map(String::from));
                }
                _ => keys.push("stereo.WhiteRabbitClosest.max_time_diff_ns?".into()),
            }
            (keys, vec![ConfigRead::new("stereo", "settings of a matching method this config does not select")])
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
        let mut narrowed =
            super::telescope_coords_for_inputs(config, inputs, &["tel1", "tel2"], "/dl1/event/telescope/parameters")?;
        // Monte Carlo is matched by event id whatever the config says: its matching settings
        // change nothing there.
        let tel1 = inputs.iter().find(|i| i.role == "tel1")?;
        if crate::io::r1::is_simulation_file(&tel1.path)? {
            let m = narrowed.as_object_mut()?;
            m.remove("stereo");
            for key in SLIDING_SELECTION_KEYS {
                m.remove(key);
            }
        }
        Some(narrowed)
    }

    fn config_scope(&self) -> Vec<&'static str> {
        [vec!["ShowerProcessor", "telescope_coords.*", "stereo"], SLIDING_SELECTION_KEYS.to_vec()].concat()
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
        let open = |f: &InputFile| Dl1Reader::open(&f.path).map_err(|e| Error::msg(format!("input {}: {e}", f.name)));
        let tel1_in = one_input(ctx, "tel1")?;
        let tel1 = open(tel1_in)?;
        let tel1_rows = tel1.read(0, tel1.n_events)?;
        let tel2_all: &[InputFile] = ctx.inputs.get("tel2").map(Vec::as_slice).unwrap_or(&[]);
        let mut notes: Vec<String> = Vec::new();
        let tel2_set = tel2_all
            .iter()
            .map(|f| {
                let r = open(f)?;
                let rows = r.read(0, r.n_events)?;
                Ok((f, r, rows))
            })
            .collect::<Result<Vec<_>>>()?;
        let (tel2_in, tel2, tel2_rows) = choose_tel2(tel1_in, &tel1, &tel1_rows, tel2_set, &mut notes)?;
        let inputs = [tel1_in, tel2_in];
        let readers = [tel1, tel2];
        for (reader, input) in readers.iter().zip(&inputs) {
            if reader.settings.contains_key("stereo.reconstructor") {
                return Err(Error::msg(format!(
                    "dl1-stereo: input {} is already stereo DL1 (an output of dl1-stereo); give each telescope's mono DL1 (r0-dl1 outputs)",
                    input.name
                )));
            }
        }
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
        let camera_data = readers[0].run.is_none();
        let how = match given {
            Some(Matching::EventId) if camera_data => {
                if crate::io::dl1::read_swat_event_ids_used(&inputs[0].path)? != Some(true) {
                    notes.push(format!(
                        "WARNING: matching by event id as the step parameter asks, but {}'s event ids are not SWAT ids (/dl1/info): pairs may be wrong",
                        inputs[0].name
                    ));
                }
                Matching::EventId
            }
            Some(how) if !camera_data => {
                return Err(Error::msg(format!(
                    "dl1-stereo: Monte Carlo inputs {} and {} are matched by event id (the telescopes of a production share them); the step parameter \"matching\" asks for {}",
                    inputs[0].name,
                    inputs[1].name,
                    how.setting()
                )))
            }
            Some(how) => how,
            None if readers[0].run.is_some() => {
                if let Some(m) = ctx.config.pointer("/stereo/event_matching_method") {
                    notes.push(format!(
                        "Monte Carlo: matched by event id (stereo.event_matching_method = {m} is for camera data)"
                    ));
                }
                Matching::EventId
            }
            None => match configured_matching(ctx.config).map_err(|e| Error::msg(format!("config {e}")))? {
                Matching::EventId if ctx.config.pointer("/stereo/event_matching_method").is_some() => {
                    // sst1mpipe trusts the ids only when r0-dl1 found SWAT array event numbers.
                    match crate::io::dl1::read_swat_event_ids_used(&inputs[0].path)? {
                        Some(true) => Matching::EventId,
                        found => {
                            let fallback = white_rabbit_of_config(ctx.config).map_err(Error::msg)?;
                            notes.push(format!(
                                "WARNING: SWATEventIDs matching requested, but {} {}: WhiteRabbitClosest used instead",
                                inputs[0].name,
                                if found.is_some() {
                                    "has no SWAT event ids (/dl1/info swat_event_ids_used is false)"
                                } else {
                                    "has no /dl1/info saying its event ids are SWAT ids"
                                }
                            ));
                            fallback
                        }
                    }
                }
                how => how,
            },
        };
        let rows = [tel1_rows, tel2_rows];
        let sliding_offset_s = match how {
            Matching::SlidingWindow { half_width_s, offsets } => {
                let times = rows
                    .iter()
                    .map(|r| selected_times(r, ctx.config))
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| Error::msg(format!("dl1-stereo: config {e}")))?;
                let trials = crate::reco::matching::arange(offsets[0], offsets[1], offsets[2]);
                let search =
                    crate::reco::matching::find_coincidence_offset(&times[0], &times[1], half_width_s, &trials)
                        .ok_or_else(|| {
                            Error::msg("dl1-stereo: the sliding window's offset search has no trial offsets")
                        })?;
                notes.push(format!(
                    "sliding window: clock offset {} s (of {} trial offsets) gives {} coincidences within ±{half_width_s} s, on {} and {} events passing the quality cuts",
                    search.offset_s,
                    trials.len(),
                    search.coincidences,
                    times[0].len(),
                    times[1].len()
                ));
                search.offset_s
            }
            _ => 0.0,
        };
        let Matched { pairs, mono, multiple, without_images } =
            match_events(&rows[0], &rows[1], how, sliding_offset_s, camera_data);
        if pairs.is_empty() {
            return Err(Error::msg(format!(
                "dl1-stereo: no coincidences between tel1 input {} ({} events) and tel2 input {} ({} events) by {} ({mono} mono, {multiple} multiple, {without_images} without both images): nothing to reconstruct; are they of the same run, and is the matching method right for them?",
                inputs[0].name,
                rows[0].len(),
                inputs[1].name,
                rows[1].len(),
                how.setting(),
            )));
        }
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
            ("stereo.matching", how.setting()),
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
                writer.write_simulation(&readers[k].showers, Some(run), &readers[k].shower_distributions)?;
            }
            if let Some(o) = &readers[k].observation {
                writer.write_observation(o)?;
            }
            writer.write_stereo_geometry(&geometry_rows)?;
            writer.write_stereo_impacts(tels[k], &impacts[k])?;
            writer.finish()?;
        }
        for note in notes {
            let _ = writeln!(ctx.log, "{note}");
        }
        let _ = writeln!(
            ctx.log,
            "telescopes {} and {}: {} matched events ({reconstructed} reconstructed, {failed_quality} failing the quality query), {mono} mono, {multiple} multiple-coincidence and {without_images} without both images events of telescope {} skipped",
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
        let m = match_events(&first, &second, Matching::EventId, 0.0, false);
        assert_eq!((m.pairs, m.mono, m.multiple), (vec![(0, 1), (2, 0)], 2, 0));
        let m = match_events(&first, &second, Matching::WhiteRabbit { max_diff_ns: 10_000 }, 0.0, false);
        // Event 4 has two tel2 events 5 µs away on either side: a multiple coincidence.
        assert_eq!((m.pairs, m.mono, m.multiple), (vec![(0, 1), (2, 0)], 1, 1));
        let m = match_events(&first, &second, Matching::WhiteRabbit { max_diff_ns: 5_000 }, 0.0, false);
        assert_eq!(m.pairs, vec![(2, 0)]);
    }

    #[test]
    fn camera_data_pairs_need_both_images_and_a_new_tel2_event_as_sst1mpipe() {
        let with_image = |mut r: ParametersRow, intensity: f64| {
            r.camera_frame_hillas_intensity = intensity;
            r
        };
        let first = [
            with_image(row(1, 100, 0.1), 50.0),
            with_image(row(2, 100, 0.2), f64::NAN),
            with_image(row(3, 100, 0.3), 80.0),
            with_image(row(4, 100, 0.300_002), 80.0),
        ];
        let second = [
            with_image(row(7, 100, 0.1 + 1e-6), 30.0),
            with_image(row(8, 100, 0.2 + 1e-6), 30.0),
            with_image(row(9, 100, 0.300_001), 40.0),
        ];
        let m = match_events(&first, &second, Matching::WhiteRabbit { max_diff_ns: 10_000 }, 0.0, true);
        // Event 2 has no image; event 4's closest partner is event 9 again, just used.
        assert_eq!((m.pairs, m.without_images, m.multiple, m.mono), (vec![(0, 0), (2, 2)], 1, 1, 0));
        // Sliding window on local times, with tel2's clock 2 ms ahead.
        let timed = |mut r: ParametersRow, t: f64| {
            r.local_time = t;
            r
        };
        let first = [timed(first[0], 1000.0), timed(first[2], 1000.5)];
        let second = [timed(second[0], 1000.002), timed(second[2], 1000.502), timed(second[1], 1000.9)];
        let how = Matching::SlidingWindow { half_width_s: 1e-3, offsets: [-0.01, 0.01, 1e-3] };
        let m = match_events(&first, &second, how, 0.002, true);
        assert_eq!(m.pairs, vec![(0, 0), (1, 1)]);
        assert_eq!(match_events(&first, &second, how, 0.0, true).pairs, Vec::<(usize, usize)>::new());
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
