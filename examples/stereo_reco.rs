//! Our HillasReconstructor on events given as JSON, for the interoperability test against
//! ctapipe (tests/interop/test_stereo_vs_ctapipe.py).
//!
//! stdin: one JSON object per line, `{"array_pointing": [alt, az], "reference_height": h,
//! "images": [{"tel_id", "position": [x, y, z], "pointing": [alt, az], "focal_length",
//! "camera_radius", "x", "y", "psi", "intensity", "length", "width"}, …]}` (rad, m).
//! stdout: one line per event, `null` or `{"alt", "az", "core_x", "core_y", "core_tilted_x",
//! "core_tilted_y", "h_max", "alt_uncert", "average_intensity", "impact": {tel_id: m}}`.
use serde_json::{json, Value};
use sst1mflow::reco::stereo::{hillas_reconstructor, impact_distance, StereoImage};
use std::io::BufRead;

fn number(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("{key} missing"))
}

fn pair(v: &Value, key: &str) -> (f64, f64) {
    (v[key][0].as_f64().expect("pair"), v[key][1].as_f64().expect("pair"))
}

fn main() {
    for line in std::io::stdin().lock().lines() {
        let event: Value = serde_json::from_str(&line.expect("stdin")).expect("JSON event");
        let images: Vec<StereoImage> = event["images"]
            .as_array()
            .expect("images")
            .iter()
            .map(|i| StereoImage {
                tel_id: i["tel_id"].as_u64().expect("tel_id") as u16,
                position_m: std::array::from_fn(|k| i["position"][k].as_f64().expect("position")),
                pointing_alt_rad: pair(i, "pointing").0,
                pointing_az_rad: pair(i, "pointing").1,
                focal_length_m: number(i, "focal_length"),
                camera_radius_m: number(i, "camera_radius"),
                x_m: number(i, "x"),
                y_m: number(i, "y"),
                psi_rad: number(i, "psi"),
                intensity: number(i, "intensity"),
                length_m: number(i, "length"),
                width_m: number(i, "width"),
            })
            .collect();
        let out =
            match hillas_reconstructor(&images, pair(&event, "array_pointing"), number(&event, "reference_height")) {
                None => Value::Null,
                Some(g) => {
                    let impact: serde_json::Map<String, Value> = images
                        .iter()
                        .map(|i| (i.tel_id.to_string(), json!(impact_distance(&g, i.position_m))))
                        .collect();
                    json!({"alt": g.alt_rad, "az": g.az_rad, "core_x": g.core_x_m, "core_y": g.core_y_m,
                       "core_tilted_x": g.core_tilted_x_m, "core_tilted_y": g.core_tilted_y_m, "h_max": g.h_max_m,
                       "alt_uncert": g.direction_uncertainty_rad, "average_intensity": g.average_intensity,
                       "impact": impact})
                }
            };
        println!("{out}");
    }
}
