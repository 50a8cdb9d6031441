//! The sst1mpipe configuration schema: which keys exist.
//!
//! sst1mflow reads sst1mpipe's data and MC configuration files unchanged. The shipped defaults
//! (`config/sst1mpipe_data_config.json`, `config/sst1mpipe_mc_config.json`, embedded at build
//! time) *are* the schema: a key path is known when it appears in either, with telescope keys
//! `tel_NNN` standing for any telescope. Arrays are values (their contents are not keys).
//!
//! Stages check the part of the config they read against it before anything runs, so a
//! misspelt key is an error naming the key and its closest known sibling, never a silently
//! ignored setting.
use crate::error::{Error, Result};
use crate::text::suggestion;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::OnceLock;

pub const DATA_DEFAULTS: &str = include_str!("../config/sst1mpipe_data_config.json");
pub const MC_DEFAULTS: &str = include_str!("../config/sst1mpipe_mc_config.json");

/// `tel_021` → `tel_NNN`; any other key unchanged.
fn normalise(key: &str) -> &str {
    let b = key.as_bytes();
    if b.len() == 7 && key.starts_with("tel_") && b[4..].iter().all(u8::is_ascii_digit) {
        "tel_NNN"
    } else {
        key
    }
}

fn collect(prefix: &str, v: &Value, out: &mut BTreeSet<String>) {
    if let Value::Object(m) = v {
        for (k, child) in m {
            let p = if prefix.is_empty() { normalise(k).to_string() } else { format!("{prefix}.{}", normalise(k)) };
            out.insert(p.clone());
            collect(&p, child, out);
        }
    }
}

/// Every known key path (dotted, telescope keys normalised).
pub fn known_paths() -> &'static BTreeSet<String> {
    static KNOWN: OnceLock<BTreeSet<String>> = OnceLock::new();
    KNOWN.get_or_init(|| {
        let mut out = BTreeSet::new();
        for text in [DATA_DEFAULTS, MC_DEFAULTS] {
            let v: Value = serde_json::from_str(text).expect("shipped default config is valid JSON");
            collect("", &v, &mut out);
        }
        out
    })
}

/// The JSON types each known key path has in sst1mpipe's two default files (a ctapipe
/// TelescopeParameter list also admits its single value). Null is always admitted (sst1mpipe
/// uses it for "off" or "default"), and a key either file leaves null admits anything: the
/// stage that reads it decides.
fn known_types() -> &'static std::collections::BTreeMap<String, BTreeSet<&'static str>> {
    static TYPES: OnceLock<std::collections::BTreeMap<String, BTreeSet<&'static str>>> = OnceLock::new();
    TYPES.get_or_init(|| {
        fn walk(prefix: &str, v: &Value, out: &mut std::collections::BTreeMap<String, BTreeSet<&'static str>>) {
            if let Value::Object(m) = v {
                for (k, child) in m {
                    let p =
                        if prefix.is_empty() { normalise(k).to_string() } else { format!("{prefix}.{}", normalise(k)) };
                    let types = out.entry(p.clone()).or_default();
                    types.insert(json_type(child));
                    // ctapipe's TelescopeParameter: a list of [selector, id, value] or one value
                    // for every telescope.
                    if let Value::Array(entries) = child {
                        for e in entries {
                            if let [Value::String(_), _, value] = e.as_array().map(Vec::as_slice).unwrap_or(&[]) {
                                types.insert(json_type(value));
                            }
                        }
                    }
                    walk(&p, child, out);
                }
            }
        }
        let mut out = std::collections::BTreeMap::new();
        for text in [DATA_DEFAULTS, MC_DEFAULTS] {
            walk("", &serde_json::from_str(text).expect("shipped default config is valid JSON"), &mut out);
        }
        out
    })
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// The schema's word on a dotted path that no step reads (see `engine::stage::ConfigKeyHint`):
/// None when sst1mpipe knows it; else that it is not an sst1mpipe key, with the closest known
/// key (compared component by component, so `analysis.gamma_eficiency` suggests
/// `analysis.gamma_efficiency` and `analysys.bad_pixels` suggests `analysis.bad_pixels`).
pub fn key_hint(path: &str) -> Option<String> {
    let known = known_paths();
    let parts: Vec<&str> = path.split('.').collect();
    let mut prefix = String::new();
    let mut shown: Vec<String> = Vec::new();
    for (depth, part) in parts.iter().enumerate() {
        let candidate =
            if prefix.is_empty() { normalise(part).to_string() } else { format!("{prefix}.{}", normalise(part)) };
        if known.contains(&candidate) {
            if FOREST_SECTIONS.contains(&candidate.as_str()) {
                // scikit-learn's arguments: train-rfs checks them when it reads the section.
                return None;
            }
            shown.push(part.to_string());
            prefix = candidate;
            continue;
        }
        let siblings: Vec<&str> = known
            .iter()
            .filter_map(|p| {
                let rest = if prefix.is_empty() { Some(p.as_str()) } else { p.strip_prefix(&format!("{prefix}.")) };
                rest.filter(|r| !r.contains('.'))
            })
            .collect();
        let guess = crate::text::closest(part, siblings.iter().copied()).map(|c| {
            let mut full = shown.clone();
            full.push(c.to_string());
            full.extend(parts[depth + 1..].iter().map(|p| p.to_string()));
            format!("; did you mean \"{}\"?", full.join("."))
        });
        return Some(format!("not an sst1mpipe key{}", guess.unwrap_or_default()));
    }
    None
}

/// Sections whose keys are another tool's arguments (scikit-learn's forests): the schema knows
/// the sections, and the stage that reads them checks their keys with its own parser.
pub const FOREST_SECTIONS: [&str; 2] = ["random_forest_regressor_args", "random_forest_classifier_args"];

/// Checks every key of `subset` (a pruned config, see `engine::config::subset`) is known. The
/// engine runs it once per step at planning (see `stages::pipeline`), so no stage calls it.
pub fn check_known(subset: &Value, file: &Path, at: &str) -> Result<()> {
    fn walk(prefix: &str, shown: &str, v: &Value, file: &Path, at: &str) -> Result<()> {
        let Value::Object(m) = v else { return Ok(()) };
        let known = known_paths();
        for (k, child) in m {
            let path = if prefix.is_empty() { normalise(k).to_string() } else { format!("{prefix}.{}", normalise(k)) };
            let shown_path = if shown.is_empty() { k.clone() } else { format!("{shown}.{k}") };
            if !known.contains(&path) {
                let siblings: Vec<&str> = known
                    .iter()
                    .filter_map(|p| {
                        let rest =
                            if prefix.is_empty() { Some(p.as_str()) } else { p.strip_prefix(&format!("{prefix}.")) };
                        rest.filter(|r| !r.contains('.'))
                    })
                    .collect();
                return Err(Error::msg(format!(
                    "{}: unknown config key \"{shown_path}\" (read by {at}){}",
                    file.display(),
                    suggestion(k, siblings.iter().copied())
                )));
            }
            // The value's type must be one sst1mpipe's own files give the key.
            if let Some(types) = known_types().get(&path) {
                if !child.is_null() && !types.contains("null") && !types.contains(json_type(child)) {
                    return Err(Error::msg(format!(
                        "{}: config {shown_path} = {child} (read by {at}): must be {}, as in sst1mpipe's configuration files",
                        file.display(),
                        types.iter().copied().collect::<Vec<_>>().join(" or ")
                    )));
                }
            }
            if !FOREST_SECTIONS.contains(&path.as_str()) {
                walk(&path, &shown_path, child, file, at)?;
            }
        }
        Ok(())
    }
    walk("", "", subset, file, at)?;
    check_sites(subset, file, at)
}

/// The site coordinates a config gives (`telescope_coords.tel_NNN` and `array_center_coords`):
/// wherever a stage applies them, they are checked here, at planning, for every stage at once,
/// so a mistyped latitude never first shows up as a failed activity hours into a run.
fn check_sites(subset: &Value, file: &Path, at: &str) -> Result<()> {
    let mut sites: Vec<(String, &Value)> = Vec::new();
    if let Some(Value::Object(tels)) = subset.get("telescope_coords") {
        sites.extend(tels.iter().map(|(tel, v)| (format!("telescope_coords.{tel}"), v)));
    }
    if let Some(center) = subset.get("array_center_coords") {
        sites.push(("array_center_coords".into(), center));
    }
    const RANGES: [(&str, f64, f64); 3] =
        [("long_deg", -180.0, 360.0), ("lat_deg", -90.0, 90.0), ("height_m", -500.0, 9000.0)];
    for (key, site) in sites {
        if !site.is_object() {
            return Err(Error::msg(format!(
                "{}: config {key} = {site}: must be an object {{\"long_deg\", \"lat_deg\", \"height_m\"}} (read by {at})",
                file.display()
            )));
        }
        for (field, lo, hi) in RANGES {
            if let Some(v) = site.get(field) {
                if !v.as_f64().is_some_and(|x| (lo..=hi).contains(&x)) {
                    return Err(Error::msg(format!(
                        "{}: config {key}.{field} = {v}: must be a number in [{lo}, {hi}] (read by {at})",
                        file.display()
                    )));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_must_have_the_types_of_sst1mpipes_files() {
        let file = Path::new("c.json");
        let ok = json!({"analysis": {"significance_fit": false, "global_theta_cut": 0.3}, "ImageProcessor": {"use_telescope_frame": false}});
        assert!(check_known(&ok, file, "s").is_ok());
        for (bad, said) in [
            (json!({"analysis": {"significance_fit": "zzz"}}), "analysis.significance_fit = \"zzz\""),
            (json!({"analysis": {"global_theta_cut": "0.2"}}), "must be a number"),
            (json!({"ImageProcessor": {"use_telescope_frame": 0}}), "must be a boolean"),
            (json!({"ImageProcessor": {"image_cleaner_type": -1e9}}), "must be a string"),
            (json!({"analysis": 3}), "must be an object"),
        ] {
            let e = check_known(&bad, file, "s").unwrap_err().message().to_string();
            assert!(e.contains(said), "{e}");
        }
        // Keys sst1mpipe leaves null take what their stage decides.
        assert!(check_known(&json!({"allowed_tels": [1, 2]}), file, "s").is_ok());
    }

    #[test]
    fn site_coordinates_are_range_checked() {
        let file = Path::new("c.json");
        assert!(check_known(
            &json!({"telescope_coords": {"tel_001": {"long_deg": 14.78, "lat_deg": 49.91, "height_m": 510}}}),
            file,
            "s"
        )
        .is_ok());
        for (bad, said) in [
            (
                json!({"telescope_coords": {"tel_001": {"long_deg": 14.78, "lat_deg": "abc", "height_m": 510}}}),
                "lat_deg = \"abc\"",
            ),
            (
                json!({"telescope_coords": {"tel_001": {"long_deg": 1e300, "lat_deg": 49.9, "height_m": 510}}}),
                "long_deg = 1e+300",
            ),
            (json!({"array_center_coords": {"long_deg": 14.78, "lat_deg": 91, "height_m": 510}}), "lat_deg = 91"),
        ] {
            let e = check_known(&bad, file, "s").unwrap_err().message().to_string();
            assert!(e.contains(said) && e.contains("must be a number"), "{e}");
        }
    }

    #[test]
    fn shipped_keys_are_known_and_misspellings_are_named() {
        let known = known_paths();
        assert!(known.contains("CameraCalibrator.LocalPeakWindowSum.window_width"));
        assert!(known.contains("ImageProcessor.ImageCleanerSST.telescope_defaults.tel_NNN"));
        assert!(known.contains("NsbCalibrator.mc_correction_for_PDE"));
        let ok = json!({"NsbCalibrator": {"intensity_correction": {"tel_005": 1.0}}});
        assert!(check_known(&ok, Path::new("c.json"), "s").is_ok());
        let bad = json!({"CameraCalibrator": {"LocalPeakWindowSum": {"window_widht": 7}}});
        let e = check_known(&bad, Path::new("c.json"), "s").unwrap_err().to_string();
        assert!(e.contains("unknown config key \"CameraCalibrator.LocalPeakWindowSum.window_widht\""), "{e}");
        assert!(e.contains("did you mean \"window_width\""), "{e}");
    }

    #[test]
    fn unread_keys_get_the_closest_known_key() {
        assert_eq!(key_hint("analysis.gamma_efficiency"), None);
        assert_eq!(key_hint("NsbCalibrator.intensity_correction.tel_021"), None);
        assert_eq!(
            key_hint("analysis.gamma_eficiency").as_deref(),
            Some("not an sst1mpipe key; did you mean \"analysis.gamma_efficiency\"?")
        );
        assert_eq!(
            key_hint("analysys.bad_pixels.tel_001").as_deref(),
            Some("not an sst1mpipe key; did you mean \"analysis.bad_pixels.tel_001\"?")
        );
        assert_eq!(key_hint("my_notes").as_deref(), Some("not an sst1mpipe key"));
    }
}
