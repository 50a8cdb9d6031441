//! Event reconstruction with random forests, as sst1mpipe does it (mono): what the training
//! sets are made of and how the models' outputs become DL2 quantities. No I/O here; the
//! `train-rfs` and `dl1-dl2` stages read and write.
//!
//! * [`EventSelection`]: sst1mpipe's `event_selection` (inclusive `[min, max]` per column).
//! * [`ForestArgs`]: scikit-learn's forest keyword arguments as sst1mpipe's config gives them,
//!   each accepted key either implemented or refused with the reason.
//! * Feature lists: mono drops the stereo `HillasReconstructor_*` features (as sst1mpipe does),
//!   stereo DL1 (from `dl1-stereo`) keeps them;
//!   `log_reco_energy` and `reco_disp_norm` are *derived* features, predicted by the energy and
//!   disp models before the gamma/hadron classifier runs.
//! * Sampling is seeded (sst1mpipe's pandas sampling is not): the same inputs and config select
//!   the same training events.
pub mod matching;
pub mod misdirection;
pub mod stereo;
pub mod stereo_dl2;

use crate::forest::{ForestParams, MaxFeatures};
use crate::sim::rng::Rng;
use serde_json::Value;
use sst1mflow_base::text::suggestion;

/// The models of the `disp_norm_sign` method, in training order.
pub const MODELS: [&str; 4] = ["energy", "disp_norm", "disp_sign", "gh"];

/// Features computed by other models rather than read from DL1.
pub const DERIVED_FEATURES: [&str; 2] = ["log_reco_energy", "reco_disp_norm"];

/// The particle ids of the gamma/hadron classes (class index 0 = gamma, 1 = proton).
pub const GH_CLASSES: [i64; 2] = [0, 101];
/// The disp sign classes (class index 0 = −1, 1 = +1).
pub const SIGN_CLASSES: [i64; 2] = [-1, 1];

/// Mono analysis: the stereo features sst1mpipe removes from every list.
pub fn mono_features(list: &[String]) -> Vec<String> {
    list.iter().filter(|f| !f.starts_with("HillasReconstructor_")).cloned().collect()
}

/// Parses a feature list from the config: whole for stereo DL1, without the stereo
/// `HillasReconstructor_*` features for mono DL1 (as sst1mpipe).
pub fn feature_list(v: &Value, key: &str, stereo: bool) -> Result<Vec<String>, String> {
    let list = v.as_array().ok_or_else(|| format!("{key} must be a list of column names"))?;
    let names: Vec<String> = list
        .iter()
        .map(|f| f.as_str().map(str::to_string).ok_or_else(|| format!("{key}: {f} is not a column name")))
        .collect::<Result<_, _>>()?;
    let mono = mono_features(&names);
    if mono.is_empty() {
        return Err(format!("{key}: no mono features left after removing the stereo HillasReconstructor_* ones"));
    }
    Ok(if stereo { names } else { mono })
}

/// sst1mpipe's `event_selection`: keep events with `min <= column <= max` for every entry.
///
/// Parsed once from the config section, it keeps the section as given: that is the form every
/// product records it in ([`EventSelection::header_form`]: the IRF and DL3 `EVTSEL` card, the
/// training summary), and what contracts compare, so a selection read back from a product
/// equals the one it was made with.
#[derive(Clone, Debug, PartialEq)]
pub struct EventSelection {
    pub cuts: Vec<(String, f64, f64)>,
    source: Value,
}

impl EventSelection {
    /// The `event_selection` section of a config (or config subset).
    pub fn from_config(config: &Value) -> Result<EventSelection, String> {
        EventSelection::parse(config.get("event_selection").ok_or("event_selection is missing")?)
    }

    /// The selection as products record it: the config section's JSON text.
    pub fn header_form(&self) -> String {
        self.source.to_string()
    }

    /// The selection a product recorded with [`EventSelection::header_form`].
    pub fn from_header_form(text: &str) -> Result<EventSelection, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("event selection is not JSON: {e}"))?;
        EventSelection::parse(&v)
    }

    /// The config section as given.
    pub fn as_json(&self) -> &Value {
        &self.source
    }

    pub fn parse(v: &Value) -> Result<EventSelection, String> {
        let map = v.as_object().ok_or("event_selection must be an object of column: [min, max]")?;
        let mut cuts = Vec::new();
        for (column, bounds) in map {
            let pair = bounds
                .as_array()
                .filter(|a| a.len() == 2)
                .and_then(|a| Some((a[0].as_f64()?, a[1].as_f64()?)))
                .ok_or_else(|| format!("event_selection.{column} must be [min, max], got {bounds}"))?;
            if pair.0 > pair.1 {
                return Err(format!("event_selection.{column}: min {} is above max {}", pair.0, pair.1));
            }
            cuts.push((column.clone(), pair.0, pair.1));
        }
        Ok(EventSelection { cuts, source: v.clone() })
    }

    pub fn columns(&self) -> impl Iterator<Item = &str> {
        self.cuts.iter().map(|c| c.0.as_str())
    }
}

/// scikit-learn forest arguments, as sst1mpipe's `random_forest_*_args`.
#[derive(Clone, Debug, PartialEq)]
pub struct ForestArgs {
    pub params: ForestParams,
}

const REGRESSOR_ARGS: &[&str] = &[
    "n_estimators",
    "criterion",
    "max_depth",
    "min_samples_split",
    "min_samples_leaf",
    "min_weight_fraction_leaf",
    "max_features",
    "max_leaf_nodes",
    "min_impurity_decrease",
    "bootstrap",
    "oob_score",
    "n_jobs",
    "random_state",
    "verbose",
    "warm_start",
    "ccp_alpha",
    "max_samples",
    "monotonic_cst",
];

impl ForestArgs {
    /// Parses `args` (the config section `key`) for a regressor or a classifier.
    pub fn parse(args: &Value, key: &str, classifier: bool) -> Result<ForestArgs, String> {
        let map = args.as_object().ok_or_else(|| format!("{key} must be an object of forest arguments"))?;
        for k in map.keys() {
            let known = REGRESSOR_ARGS.contains(&k.as_str()) || (classifier && k == "class_weight");
            if !known {
                let mut all: Vec<&str> = REGRESSOR_ARGS.to_vec();
                if classifier {
                    all.push("class_weight");
                }
                return Err(format!(
                    "{key}.{k} is not a scikit-learn forest argument{}",
                    suggestion(k, all.iter().copied())
                ));
            }
        }
        let get = |name: &str| map.get(name).filter(|v| !v.is_null());
        let bad = |name: &str, what: &str| format!("{key}.{name}: {what}");
        let count = |name: &str, default: usize| -> Result<usize, String> {
            match get(name) {
                None => Ok(default),
                Some(v) => v.as_u64().map(|n| n as usize).ok_or_else(|| bad(name, "expected a non-negative integer")),
            }
        };
        // Fractions (floats) of the training set are scikit-learn's other reading of these two.
        let count_or_fraction = |name: &str, default: usize| -> Result<Result<usize, f64>, String> {
            match get(name) {
                None => Ok(Ok(default)),
                Some(v) if v.is_u64() => Ok(Ok(v.as_u64().unwrap_or(0) as usize)),
                Some(v) => match v.as_f64() {
                    Some(f) if f > 0.0 && f <= 1.0 => Ok(Err(f)),
                    _ => Err(bad(name, "expected an integer or a fraction in (0, 1]")),
                },
            }
        };
        let criterion = get("criterion").map(|v| v.as_str().unwrap_or("?").to_string());
        let implemented = if classifier { "gini" } else { "squared_error" };
        if let Some(c) = &criterion {
            if c != implemented {
                return Err(bad("criterion", &format!("\"{c}\" is not implemented (only \"{implemented}\")")));
            }
        }
        let refuse_unless = |name: &str, ok: &dyn Fn(&Value) -> bool, why: &str| -> Result<(), String> {
            match get(name) {
                Some(v) if !ok(v) => Err(bad(name, why)),
                _ => Ok(()),
            }
        };
        refuse_unless("oob_score", &|v| v == &Value::Bool(false), "out-of-bag scores are not implemented; use false")?;
        refuse_unless("warm_start", &|v| v == &Value::Bool(false), "warm starts are not implemented; use false")?;
        refuse_unless("max_leaf_nodes", &|_| false, "is not implemented; use null")?;
        refuse_unless("class_weight", &|_| false, "is not implemented; use null")?;
        refuse_unless("monotonic_cst", &|_| false, "is not implemented; use null")?;
        refuse_unless("min_weight_fraction_leaf", &|v| v.as_f64() == Some(0.0), "only 0.0 is implemented")?;
        refuse_unless("ccp_alpha", &|v| v.as_f64() == Some(0.0), "pruning is not implemented; use 0.0")?;
        refuse_unless("n_jobs", &|v| v.is_i64(), "expected an integer (it never changes the model)")?;
        refuse_unless("verbose", &|v| v.is_i64() || v.is_boolean(), "expected an integer")?;
        let random_state =
            match map.get("random_state") {
                Some(v) if v.is_u64() => v.as_u64().unwrap_or(0),
                Some(Value::Null) | None => return Err(bad(
                    "random_state",
                    "must be an integer: an unseeded forest could not be reproduced, and sst1mflow guarantees it can",
                )),
                Some(_) => return Err(bad("random_state", "expected a non-negative integer")),
            };
        let max_features = match get("max_features") {
            None => {
                if classifier {
                    MaxFeatures::Sqrt
                } else {
                    MaxFeatures::All
                }
            }
            Some(Value::String(s)) if s == "sqrt" || s == "auto" => MaxFeatures::Sqrt,
            Some(Value::String(s)) if s == "log2" => MaxFeatures::Log2,
            Some(v) if v.is_u64() => MaxFeatures::Count(v.as_u64().unwrap_or(1) as usize),
            Some(v) => match v.as_f64() {
                Some(f) if f > 0.0 && f <= 1.0 => MaxFeatures::Fraction(f),
                _ => return Err(bad("max_features", "expected null, \"sqrt\", \"log2\", an integer or a fraction")),
            },
        };
        let bootstrap = match get("bootstrap") {
            None => true,
            Some(v) => v.as_bool().ok_or_else(|| bad("bootstrap", "expected true or false"))?,
        };
        let max_depth = match get("max_depth") {
            None => None,
            Some(v) => Some(
                v.as_u64().filter(|&d| d > 0).ok_or_else(|| bad("max_depth", "expected a positive integer or null"))?
                    as usize,
            ),
        };
        let n_estimators = count("n_estimators", 100)?;
        if n_estimators == 0 {
            return Err(bad("n_estimators", "must be at least 1"));
        }
        let min_impurity_decrease = match get("min_impurity_decrease") {
            None => 0.0,
            Some(v) => {
                v.as_f64().filter(|f| *f >= 0.0).ok_or_else(|| bad("min_impurity_decrease", "expected a number ≥ 0"))?
            }
        };
        let split = count_or_fraction("min_samples_split", 2)?;
        let leaf = count_or_fraction("min_samples_leaf", 1)?;
        if split == Ok(0) || split == Ok(1) {
            return Err(bad("min_samples_split", "must be at least 2"));
        }
        if leaf == Ok(0) {
            return Err(bad("min_samples_leaf", "must be at least 1"));
        }
        if split.is_err() || leaf.is_err() {
            return Err(bad(
                if split.is_err() { "min_samples_split" } else { "min_samples_leaf" },
                "fractions of the training set are not implemented; give a number of events",
            ));
        }
        let max_samples = match get("max_samples") {
            None => None,
            Some(v) => Some(
                v.as_u64()
                    .filter(|&n| n > 0)
                    .ok_or_else(|| bad("max_samples", "expected a positive integer or null"))? as usize,
            ),
        };
        Ok(ForestArgs {
            params: ForestParams {
                n_estimators,
                max_depth,
                min_samples_split: split.unwrap_or(2),
                min_samples_leaf: leaf.unwrap_or(1),
                min_impurity_decrease,
                max_features,
                bootstrap,
                max_samples,
                random_state,
            },
        })
    }
}

/// `k` distinct indices below `n`, chosen uniformly (all of them when `k >= n`), ascending.
pub fn sample_indices(n: usize, k: usize, rng: &mut Rng) -> Vec<usize> {
    if k >= n {
        return (0..n).collect();
    }
    let mut all: Vec<usize> = (0..n).collect();
    for i in 0..k {
        let j = i + ((rng.next_u64() as u128 * (n - i) as u128) >> 64) as usize;
        all.swap(i, j);
    }
    let mut chosen = all[..k].to_vec();
    chosen.sort_unstable();
    chosen
}

/// sst1mpipe's mixing of the gamma/hadron training set: of `n_total` events, a fraction
/// r/(r+1) gammas and 1/(r+1) protons, both reduced in proportion when a class is short.
/// Returns (gammas, protons).
pub fn mix_counts(n_total: usize, ratio: f64, gammas: usize, protons: usize) -> (usize, usize) {
    let mut n_g = (ratio / (ratio + 1.0) * n_total as f64) as usize;
    let mut n_p = (n_total as f64 / (ratio + 1.0)) as usize;
    if n_g > gammas {
        n_g = gammas;
        n_p = (gammas as f64 / ratio) as usize;
    }
    if n_p > protons {
        n_p = protons;
        n_g = (protons as f64 * ratio) as usize;
    }
    (n_g.min(gammas), n_p.min(protons))
}

/// The reconstructed source position in the camera: the Hillas centroid moved by `disp_norm`
/// along the image axis (angle `psi`, degrees) with `sign` (±1).
pub fn source_position(cog_x: f64, cog_y: f64, psi_deg: f64, disp_norm: f64, sign: f64) -> (f64, f64, f64, f64) {
    let (s, c) = psi_deg.to_radians().sin_cos();
    let dx = disp_norm * sign * c;
    let dy = disp_norm * sign * s;
    (dx, dy, cog_x + dx, cog_y + dy)
}

/// sst1mpipe's azimuth convention for reconstructed directions: wrapped to (−180, 180] when
/// the pointing azimuth of the first event is within 90° of north, else in [0, 360).
pub fn wrap_azimuth(az_deg: f64, wrap_around_north: bool) -> f64 {
    if wrap_around_north && az_deg > 180.0 {
        az_deg - 360.0
    } else {
        az_deg
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sst1mpipe_forest_args_parse_with_sklearn_defaults() {
        let reg = json!({"max_depth": 30, "min_samples_leaf": 10, "n_jobs": -1, "n_estimators": 150, "bootstrap": true,
            "criterion": "squared_error", "max_leaf_nodes": null, "min_impurity_decrease": 0.0, "min_samples_split": 10,
            "min_weight_fraction_leaf": 0.0, "oob_score": false, "random_state": 42, "verbose": 0, "warm_start": false});
        let a = ForestArgs::parse(&reg, "random_forest_regressor_args", false).unwrap();
        assert_eq!(a.params.n_estimators, 150);
        assert_eq!(a.params.max_features, MaxFeatures::All);
        assert_eq!(a.params.max_depth, Some(30));
        let mut clf = reg.clone();
        clf["criterion"] = json!("gini");
        clf["class_weight"] = Value::Null;
        assert_eq!(ForestArgs::parse(&clf, "c", true).unwrap().params.max_features, MaxFeatures::Sqrt);
    }

    #[test]
    fn unusable_forest_args_are_refused_with_the_reason() {
        let e = ForestArgs::parse(&json!({"n_estimator": 10, "random_state": 1}), "r", false).unwrap_err();
        assert!(e.contains("n_estimator") && e.contains("n_estimators"), "{e}");
        let e = ForestArgs::parse(&json!({"random_state": null}), "r", false).unwrap_err();
        assert!(e.contains("unseeded"), "{e}");
        let e = ForestArgs::parse(&json!({"random_state": 1, "oob_score": true}), "r", false).unwrap_err();
        assert!(e.contains("oob_score"), "{e}");
        let e = ForestArgs::parse(&json!({"random_state": 1, "criterion": "entropy"}), "c", true).unwrap_err();
        assert!(e.contains("entropy"), "{e}");
    }

    #[test]
    fn event_selection_and_features() {
        let s = EventSelection::parse(&json!({"camera_frame_hillas_intensity": [50, 1e6]})).unwrap();
        assert_eq!(s.cuts[0].1, 50.0);
        assert!(EventSelection::parse(&json!({"x": [2, 1]})).is_err());
        assert!(EventSelection::parse(&json!({"x": 3})).is_err());
        let all = feature_list(&json!(["a", "HillasReconstructor_h_max", "b"]), "k", true).unwrap();
        assert_eq!(all, ["a", "HillasReconstructor_h_max", "b"]);
        let f = feature_list(&json!(["a", "HillasReconstructor_h_max", "b"]), "k", false).unwrap();
        assert_eq!(f, vec!["a", "b"]);
    }

    #[test]
    fn sampling_and_mixing() {
        let mut rng = Rng::new(1, 0);
        let s = sample_indices(100, 10, &mut rng);
        assert_eq!(s.len(), 10);
        assert!(s.windows(2).all(|w| w[0] < w[1]) && s[9] < 100);
        assert_eq!(sample_indices(5, 10, &mut rng), vec![0, 1, 2, 3, 4]);
        assert_eq!(mix_counts(1000, 1.0, 10_000, 10_000), (500, 500));
        assert_eq!(mix_counts(1000, 1.0, 200, 10_000), (200, 200));
        assert_eq!(mix_counts(1000, 3.0, 10_000, 100), (300, 100));
    }

    #[test]
    fn disp_moves_the_centroid_along_the_axis() {
        let (dx, dy, x, y) = source_position(0.1, 0.0, 90.0, 0.05, -1.0);
        assert!(dx.abs() < 1e-12 && (dy + 0.05).abs() < 1e-12 && (x - 0.1).abs() < 1e-12 && (y + 0.05).abs() < 1e-12);
        assert_eq!(wrap_azimuth(350.0, true), -10.0);
        assert_eq!(wrap_azimuth(350.0, false), 350.0);
    }
}
