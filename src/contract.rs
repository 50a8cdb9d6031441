//! What must match between products that are combined: the DL1 a model was trained on and the
//! DL1 it is applied to (and, later, models, IRFs and event lists).
//!
//! A DL1 file records its *DL1 settings*: the r0-dl1 stage's configuration (calibration,
//! integration, cleaning) flattened to dotted keys, with the telescope's own entries renamed
//! `tel_NNN` → `tel` and other telescopes' entries dropped, so that the settings of telescope 1
//! in an MC config and of telescope 21 in a data config compare key by key. Models carry the
//! settings of the DL1 they were trained on; applying them to a DL1 with different settings is
//! refused, except for the keys listed in [`MC_DATA_DIFFERENCES`], which legitimately differ
//! between simulations and observations.
use serde_json::Value;
use std::collections::BTreeMap;

/// Settings that may differ between the DL1 a model was trained on (simulations) and the DL1
/// it is applied to (observations), each with the reason. This is the only such list.
pub const MC_DATA_DIFFERENCES: &[(&str, &str)] = &[
    (
        "NsbCalibrator.intensity_correction.tel",
        "a per-telescope factor that scales observed intensities to the simulation's light yield",
    ),
    ("NsbCalibrator.mc_correction_for_PDE", "applies to simulations only (photon detection efficiency)"),
    (
        "NsbCalibrator.apply_pixelwise_Vdrop_correction",
        "corrects the observed gain drop under night-sky light; simulations have no voltage drop",
    ),
    (
        "NsbCalibrator.apply_global_Vdrop_correction",
        "corrects the observed gain drop under night-sky light; simulations have no voltage drop",
    ),
    (
        "ImageProcessor.TailcutsImageCleaner",
        "the fallback cleaning for observation runs without pedestal events; keyed by telescope ids, which differ between MC (1, 2) and data (21, 22)",
    ),
    (
        "analysis.gamma_min_simulated_energy_tev",
        "a cut on the simulated true energy of gammas: applies to simulations only",
    ),
    (
        "analysis.proton_min_simulated_energy_tev",
        "a cut on the simulated true energy of protons: applies to simulations only",
    ),
    ("telescope_calibration", "calibration files exist for observations only"),
    ("telescope_coords", "the site gives observed runs their pointing; simulations carry theirs"),
    (
        "telescope_equivalent_focal_length",
        "observations take the focal length from the config, simulations from their optics",
    ),
    ("window_transmittance", "the entrance-window correction is applied to observations only"),
    (
        "stereo.matching",
        "simulated telescopes share event ids; observed events are matched by SWAT id or White Rabbit time",
    ),
];

/// Why `key` may differ between MC and data, if it may.
pub fn allowed_difference(key: &str) -> Option<&'static str> {
    MC_DATA_DIFFERENCES
        .iter()
        .find(|(prefix, _)| key == *prefix || key.starts_with(&format!("{prefix}.")))
        .map(|(_, why)| *why)
}

/// Flattens a stage's config subset into the DL1 settings of telescope `tel_id` (see the
/// module doc). Lists of objects (ImageCleanerSST's per-NSB-level entries) are flattened too,
/// as `key[i].field`, so that a difference names the one field that differs.
pub fn dl1_settings(config_subset: &Value, tel_id: u16) -> BTreeMap<String, Value> {
    let own = format!("tel_{tel_id:03}");
    let mut out = BTreeMap::new();
    walk(config_subset, String::new(), &own, &mut out);
    out
}

fn walk(v: &Value, path: String, own: &str, out: &mut BTreeMap<String, Value>) {
    let join = |key: &str| if path.is_empty() { key.to_string() } else { format!("{path}.{key}") };
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                let is_tel = k.len() == 7 && k.starts_with("tel_") && k[4..].bytes().all(|b| b.is_ascii_digit());
                if is_tel && k != own {
                    continue;
                }
                walk(child, join(if is_tel { "tel" } else { k }), own, out);
            }
        }
        Value::Array(items) if !items.is_empty() && items.iter().all(Value::is_object) => {
            for (i, item) in items.iter().enumerate() {
                walk(item, format!("{path}[{i}]"), own, out);
            }
        }
        _ => {
            out.insert(path, v.clone());
        }
    }
}

/// One setting that differs: its key, the value on each side (`None`: absent).
#[derive(Debug, Clone, PartialEq)]
pub struct Difference {
    pub key: String,
    pub left: Option<Value>,
    pub right: Option<Value>,
}

/// The settings that differ between `left` and `right`, leaving out allowed MC/data differences.
pub fn differences(left: &BTreeMap<String, Value>, right: &BTreeMap<String, Value>) -> Vec<Difference> {
    all_differences(left, right).into_iter().filter(|d| allowed_difference(&d.key).is_none()).collect()
}

/// Every setting that differs (for products of one kind, e.g. the inputs of one training).
pub fn all_differences(left: &BTreeMap<String, Value>, right: &BTreeMap<String, Value>) -> Vec<Difference> {
    let keys: std::collections::BTreeSet<&String> = left.keys().chain(right.keys()).collect();
    keys.into_iter()
        .filter(|k| left.get(*k) != right.get(*k))
        .map(|k| Difference { key: k.clone(), left: left.get(k).cloned(), right: right.get(k).cloned() })
        .collect()
}

/// A two-column table of differences, for error messages.
pub fn side_by_side(left_name: &str, right_name: &str, diffs: &[Difference]) -> String {
    let show = |v: &Option<Value>| v.as_ref().map(|v| v.to_string()).unwrap_or_else(|| "(absent)".into());
    let key_w = diffs.iter().map(|d| d.key.len()).max().unwrap_or(0).max(7);
    let left_w = diffs.iter().map(|d| show(&d.left).len()).max().unwrap_or(0).max(left_name.len());
    let mut out = format!("  {:key_w$}  {:left_w$}  {}\n", "setting", left_name, right_name);
    for d in diffs {
        out.push_str(&format!("  {:key_w$}  {:left_w$}  {}\n", d.key, show(&d.left), show(&d.right)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn settings_of_telescope_1_and_21_compare_key_by_key() {
        let mc = json!({"ImageProcessor": {"ImageCleanerSST": {"telescope_defaults": {
            "tel_001": [{"picture_threshold_pe": 8}], "tel_002": [{"picture_threshold_pe": 9}]}}},
            "NsbCalibrator": {"intensity_correction": {"tel_001": 1.0}, "mc_correction_for_PDE": true}});
        let data = json!({"ImageProcessor": {"ImageCleanerSST": {"telescope_defaults": {
            "tel_021": [{"picture_threshold_pe": 8}]}}},
            "NsbCalibrator": {"intensity_correction": {"tel_021": 0.9}, "apply_global_Vdrop_correction": true}});
        let a = dl1_settings(&mc, 1);
        let b = dl1_settings(&data, 21);
        assert!(a.contains_key("ImageProcessor.ImageCleanerSST.telescope_defaults.tel[0].picture_threshold_pe"));
        assert_eq!(differences(&a, &b), vec![]);
        let stricter = json!({"ImageProcessor": {"ImageCleanerSST": {"telescope_defaults": {
            "tel_021": [{"picture_threshold_pe": 10}]}}}});
        let d = differences(&a, &dl1_settings(&stricter, 21));
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].key, "ImageProcessor.ImageCleanerSST.telescope_defaults.tel[0].picture_threshold_pe");
        assert_eq!((d[0].left.clone(), d[0].right.clone()), (Some(json!(8)), Some(json!(10))));
        let table = side_by_side("model", "dl1", &d);
        assert!(table.contains("tel[0].picture_threshold_pe  8      10"), "{table}");
    }
}
