//! DL1 written by ctapipe (`ctapipe-process`, camera-frame parameters) or by sst1mpipe, read as
//! our parameter rows, so that `dl1-dl2` and `train-rfs` take products of the older tools and
//! users can mix old and new products.
//!
//! Such a file has no sst1mflow provenance attributes. What it is and who made it comes from
//! its own metadata: `CTA ACTIVITY SOFTWARE NAME`/`VERSION` (ctapipe's) or `/dl1/info`'s
//! `sst1mpipe_version` (sst1mpipe's), and the data model version. These become its *DL1
//! settings* (`imported.software`, `imported.data_model`) and its pipeline version, so the
//! model contract treats it as what it is: models trained on our DL1 are refused on it (its
//! calibration and cleaning settings are unknown) unless the contract is overridden, and models
//! trained on it apply to DL1 of the same origin.
//!
//! Columns are read by name (HDF5 converts each to our type): every parameter column the file
//! has; sst1mpipe's extras that a plain ctapipe file lacks are derived as sst1mpipe derives them
//! (`log_camera_frame_hillas_intensity`, `camera_frame_hillas_wl`) or left NaN (the timing
//! extras need the images). Monte Carlo truth comes from the parameters table when sst1mpipe
//! put it there, else from ctapipe's shower table joined on (obs_id, event_id), with the true
//! camera position from the telescope pointing and equivalent focal length of the file, the
//! ground impact from its layout, and sst1mpipe's disp columns from them. Telescope-frame
//! parameters (ctapipe's default, `hillas_fov_lon`…) are refused: sst1mpipe's models use the
//! camera frame.
use super::dl1::{ParametersRow, Truth};
use super::hdf5_table::{read_shaped_table, ShapedColumn};
use super::r1::{ShowerDistribution, SimulationRunRow};
use hdf5::types::{FixedAscii, FixedUnicode, VarLenAscii, VarLenUnicode};
use sst1mflow_base::error::{Error, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// A foreign DL1, in memory.
pub struct ImportedDl1 {
    pub tel_id: u16,
    pub rows: Vec<ParametersRow>,
    /// `imported.software`, `imported.data_model`.
    pub settings: BTreeMap<String, serde_json::Value>,
    /// "ctapipe 0.28.0", "sst1mpipe 0.9.0": the file's pipeline version.
    pub software: String,
    pub run: Option<SimulationRunRow>,
    pub shower_distributions: Vec<ShowerDistribution>,
}

/// Whether a DL1 file was written by another tool (it has no sst1mflow provenance).
pub fn is_foreign(file: &hdf5::File) -> bool {
    file.attr("sst1mflow_activity_key").is_err()
}

/// A string attribute in any of the encodings PyTables and h5py write.
fn text_attr(loc: &hdf5::Location, name: &str) -> Option<String> {
    let a = loc.attr(name).ok()?;
    a.read_scalar::<VarLenUnicode>()
        .map(|s| s.as_str().to_string())
        .or_else(|_| a.read_scalar::<VarLenAscii>().map(|s| s.as_str().to_string()))
        .or_else(|_| a.read_scalar::<FixedAscii<512>>().map(|s| s.as_str().to_string()))
        .or_else(|_| a.read_scalar::<FixedUnicode<512>>().map(|s| s.as_str().to_string()))
        .ok()
        .map(|s| s.trim_end_matches('\0').to_string())
}

/// The scalar columns `names` of a table, as f64 (a column the table lacks is skipped).
fn columns(dataset: &hdf5::Dataset, names: &[&str]) -> Result<Vec<(String, Vec<f64>)>> {
    let present: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| super::hdf5_table::column_dims(dataset, n).is_some_and(|d| d.is_empty()))
        .collect();
    if present.is_empty() {
        return Ok(Vec::new());
    }
    let (_, rows) = read_shaped_table(dataset, &present, |_, _| Some(ShapedColumn::F64))?;
    Ok(present
        .iter()
        .enumerate()
        .map(|(k, n)| {
            let values =
                rows.iter().map(|r| f64::from_le_bytes(r[8 * k..8 * k + 8].try_into().expect("8 bytes"))).collect();
            (n.to_string(), values)
        })
        .collect())
}

fn column<'a>(cols: &'a [(String, Vec<f64>)], name: &str) -> Option<&'a [f64]> {
    cols.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
}

/// Reads a foreign DL1 file (see the module doc).
pub fn read(path: &Path, file: &hdf5::File) -> Result<ImportedDl1> {
    let name = path.display();
    let bad = |what: String| Error::msg(format!("{name}: {what}"));
    let info_version = file.dataset("/dl1/info").ok().and_then(|d| {
        let (_, rows) = read_shaped_table(&d, &["sst1mpipe_version"], |_, _| Some(ShapedColumn::Ascii(68))).ok()?;
        rows.first().map(|r| String::from_utf8_lossy(r).trim_end_matches('\0').trim().to_string())
    });
    let software = match (text_attr(file, "CTA ACTIVITY SOFTWARE NAME"), text_attr(file, "CTA ACTIVITY SOFTWARE VERSION"), info_version) {
        (_, _, Some(v)) if !v.starts_with("sst1mflow") => format!("sst1mpipe {v}"),
        (Some(n), Some(v), _) => format!("{n} {v}"),
        _ => {
            return Err(bad(
                "not a DL1 file of sst1mflow, ctapipe or sst1mpipe (no sst1mflow attributes, no CTA ACTIVITY SOFTWARE attributes, no /dl1/info)".into(),
            ))
        }
    };
    let data_model = text_attr(file, "CTA PRODUCT DATA MODEL VERSION").unwrap_or_default();
    let group_path = "/dl1/event/telescope/parameters";
    let (dataset, tel_id) =
        super::hdf5_table::open_telescope_table(file, group_path, std::iter::empty()).map_err(&bad)?;
    let has = |c: &str| super::hdf5_table::column_dims(&dataset, c).is_some();
    if !has("camera_frame_hillas_intensity") {
        return Err(bad(format!(
            "{group_path}/tel_{tel_id:03} has no camera-frame parameters: written by {software} in the telescope frame{}; sst1mpipe's models use camera-frame parameters (ctapipe's ImageProcessor.use_telescope_frame = False)",
            if has("hillas_fov_lon") { " (hillas_fov_lon, …)" } else { "" }
        )));
    }
    let names: Vec<&str> = ParametersRow::column_names().collect();
    let cols = columns(&dataset, &names)?;
    let n = dataset.shape().first().copied().unwrap_or(0);
    let mut rows: Vec<ParametersRow> = (0..n)
        .map(|i| {
            let mut r = ParametersRow::new(0, 0, tel_id as i16, (f64::NAN, f64::NAN), None, None);
            for (c, values) in &cols {
                r.set(c, values[i]);
            }
            r.tel_id = tel_id as i16;
            r
        })
        .collect();
    let read_has = |c: &str| column(&cols, c).is_some();
    for r in rows.iter_mut() {
        if !read_has("log_camera_frame_hillas_intensity") {
            r.log_camera_frame_hillas_intensity = r.camera_frame_hillas_intensity.log10();
        }
        if !read_has("camera_frame_hillas_wl") {
            r.camera_frame_hillas_wl = r.camera_frame_hillas_width / r.camera_frame_hillas_length;
        }
    }
    let run = read_simulation_run(file).map_err(|e| bad(e.to_string()))?;
    if run.is_some() && !read_has("true_energy") {
        add_truth(file, tel_id, &mut rows).map_err(|e| bad(e.to_string()))?;
    }
    let shower_distributions = super::r1::read_shower_distributions(file, path)?;
    let settings = BTreeMap::from([
        ("imported.software".to_string(), serde_json::json!(software)),
        ("imported.data_model".to_string(), serde_json::json!(data_model)),
    ]);
    Ok(ImportedDl1 { tel_id, rows, settings, software, run, shower_distributions })
}

/// ctapipe's `/configuration/simulation/run` (its first row) as our thrown-shower row.
fn read_simulation_run(file: &hdf5::File) -> Result<Option<SimulationRunRow>> {
    let Ok(d) = file.dataset("/configuration/simulation/run") else { return Ok(None) };
    let names = [
        "n_showers",
        "shower_reuse",
        "energy_range_min",
        "energy_range_max",
        "spectral_index",
        "min_scatter_range",
        "max_scatter_range",
        "min_viewcone_radius",
        "max_viewcone_radius",
    ];
    let cols = columns(&d, &names)?;
    let first = |c: &str| column(&cols, c).and_then(|v| v.first().copied());
    let required = |c: &str| first(c).ok_or_else(|| Error::msg(format!("/configuration/simulation/run has no {c}")));
    Ok(Some(SimulationRunRow {
        n_showers: required("n_showers")? as u64,
        shower_reuse: required("shower_reuse")? as u64,
        energy_range_min: required("energy_range_min")?,
        energy_range_max: required("energy_range_max")?,
        spectral_index: required("spectral_index")?,
        min_scatter_range: first("min_scatter_range").unwrap_or(0.0),
        max_scatter_range: required("max_scatter_range")?,
        min_viewcone_radius: first("min_viewcone_radius").unwrap_or(0.0),
        max_viewcone_radius: required("max_viewcone_radius")?,
        source_offset: f64::NAN,
        nsb_rate: f64::NAN,
        seed: 0,
        pointing_alt: f64::NAN,
        pointing_az: f64::NAN,
    }))
}

/// The truth columns from ctapipe's shower table, pointing, optics and layout.
fn add_truth(file: &hdf5::File, tel_id: u16, rows: &mut [ParametersRow]) -> Result<()> {
    let first = |path: &str, names: &[&str]| -> Result<Vec<Option<f64>>> {
        let d = file.dataset(path).map_err(|_| Error::msg(format!("no {path}")))?;
        let cols = columns(&d, names)?;
        Ok(names.iter().map(|n| column(&cols, n).and_then(|v| v.first().copied())).collect())
    };
    let tel = format!("tel_{tel_id:03}");
    let pointing = first(
        &format!("/configuration/telescope/pointing/{tel}"),
        &["telescope_pointing_altitude", "telescope_pointing_azimuth"],
    )
    .or_else(|_| first(&format!("/dl1/monitoring/telescope/pointing/{tel}"), &["altitude", "azimuth"]))?;
    let (Some(alt), Some(az)) = (pointing[0], pointing[1]) else {
        return Err(Error::msg(format!("no pointing of {tel} (ctapipe's telescope pointing table)")));
    };
    let (alt_deg, az_deg) = (alt.to_degrees(), az.to_degrees());
    let focal = first("/configuration/instrument/telescope/optics", &["equivalent_focal_length"])?[0]
        .ok_or_else(|| Error::msg("no equivalent_focal_length in /configuration/instrument/telescope/optics"))?;
    let layout = file
        .dataset("/configuration/instrument/subarray/layout")
        .map_err(|_| Error::msg("no /configuration/instrument/subarray/layout"))?;
    let layout = columns(&layout, &["tel_id", "pos_x", "pos_y"])?;
    let k = column(&layout, "tel_id")
        .and_then(|ids| ids.iter().position(|&t| t as u16 == tel_id))
        .ok_or_else(|| Error::msg(format!("{tel} is not in the layout")))?;
    let position = (column(&layout, "pos_x").map_or(0.0, |v| v[k]), column(&layout, "pos_y").map_or(0.0, |v| v[k]));
    let showers = file
        .dataset("/simulation/event/subarray/shower")
        .map_err(|_| Error::msg("Monte Carlo without /simulation/event/subarray/shower"))?;
    let names = [
        "obs_id",
        "event_id",
        "true_energy",
        "true_alt",
        "true_az",
        "true_core_x",
        "true_core_y",
        "true_h_first_int",
        "true_x_max",
        "true_shower_primary_id",
    ];
    let s = columns(&showers, &names)?;
    let get = |c: &str, i: usize| column(&s, c).map_or(f64::NAN, |v| v[i]);
    let by_event: HashMap<(i64, i64), usize> = (0..column(&s, "event_id").map_or(0, |v| v.len()))
        .map(|i| ((get("obs_id", i) as i64, get("event_id", i) as i64), i))
        .collect();
    for r in rows.iter_mut() {
        r.true_alt_tel = alt_deg;
        r.true_az_tel = az_deg;
        r.equivalent_focal_length = focal;
        let Some(&i) = by_event.get(&(r.obs_id, r.event_id)) else { continue };
        let (true_alt, true_az) = (get("true_alt", i), get("true_az", i));
        let (camera_x, camera_y) = sst1mflow_science::astro::altaz_to_camera(true_alt, true_az, focal, alt_deg, az_deg);
        let (core_x, core_y) = (get("true_core_x", i), get("true_core_y", i));
        let truth = Truth {
            energy_tev: get("true_energy", i),
            camera_x,
            camera_y,
            core_x,
            core_y,
            h_max: f64::NAN,
            impact: (core_x - position.0).hypot(core_y - position.1),
            primary_id: get("true_shower_primary_id", i) as i64,
            h_first_int: get("true_h_first_int", i),
            x_max: get("true_x_max", i),
            alt_deg: true_alt,
            az_deg: true_az,
        };
        r.set_truth(&truth);
    }
    Ok(())
}
