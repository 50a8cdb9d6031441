//! The instrument description tables of ctapipe's HDF5 files (`/configuration/instrument/...`):
//! read from a `SubarrayDescription` file (sst1mpipe's `sst1m_array.h5`, or any DL1 file) into a
//! [`TelescopeDescription`], and written into every DL1 and DL2 file from the description of
//! the input the product came from, with ctapipe's table types, versions and attributes, so
//! that ctapipe's `SubarrayDescription.from_hdf` (and sst1mpipe, which reads the focal length
//! from the optics table) load them and find the input's own pulse, optics and positions.
use super::hdf5_table::{ensure_groups, Attr, ColumnMeta, Table};
use hdf5::types::FixedAscii;
use hdf5::H5Type;
use sst1mflow_base::error::{Error, Result};
use sst1mflow_science::instrument::{self, camera::CameraGeometry, Optics, ReferencePulse, TelescopeDescription};
use std::path::Path;

#[derive(H5Type, Clone, Copy)]
#[repr(C)]
struct LayoutRow {
    tel_id: i16,
    name: FixedAscii<2>,
    #[hdf5(rename = "type")]
    kind: FixedAscii<3>,
    pos_x: f64,
    pos_y: f64,
    pos_z: f64,
    camera_name: FixedAscii<7>,
    optics_name: FixedAscii<2>,
    camera_index: i64,
    optics_index: i64,
    tel_description: FixedAscii<14>,
}

#[derive(H5Type, Clone, Copy)]
#[repr(C)]
struct OpticsRow {
    optics_name: FixedAscii<2>,
    size_type: FixedAscii<3>,
    reflector_shape: FixedAscii<13>,
    mirror_area: f64,
    n_mirrors: i64,
    n_mirror_tiles: i64,
    equivalent_focal_length: f64,
    effective_focal_length: f64,
}

#[derive(H5Type, Clone, Copy)]
#[repr(C)]
struct GeometryRow {
    pix_id: i64,
    pix_x: f64,
    pix_y: f64,
    pix_area: f64,
}

#[derive(H5Type, Clone, Copy)]
#[repr(C)]
struct ReadoutRow {
    reference_pulse_shape_channel0: f64,
    reference_pulse_sample_time: f64,
}

#[derive(H5Type, Clone, Copy)]
#[repr(C)]
struct LayoutRead {
    tel_id: i64,
    pos_x: f64,
    pos_y: f64,
    pos_z: f64,
    camera_index: i64,
    optics_index: i64,
}

#[derive(H5Type, Clone, Copy)]
#[repr(C)]
struct OpticsRead {
    mirror_area: f64,
    n_mirror_tiles: i64,
    equivalent_focal_length: f64,
    effective_focal_length: f64,
}

#[derive(H5Type, Clone, Copy)]
#[repr(C)]
struct GeometryRead {
    pix_x: f64,
    pix_y: f64,
    pix_area: f64,
}

/// Telescope `tel_id` of a ctapipe `SubarrayDescription` file: its layout row, optics, camera
/// geometry and readout. Errors name the file and what is missing or wrong.
pub fn read_telescope_description(path: &Path, tel_id: u16) -> Result<TelescopeDescription> {
    let shown = path.display();
    let bad = |what: String| Error::msg(format!("{shown}: {what}"));
    let file = hdf5::File::open(path).map_err(|e| bad(format!("not a readable HDF5 file ({e})")))?;
    let read = |table: &str| -> Result<hdf5::Dataset> {
        file.dataset(table).map_err(|_| bad(format!("no {table} table (not a ctapipe instrument description)")))
    };
    let layout: Vec<LayoutRead> = read("/configuration/instrument/subarray/layout")?
        .read_raw()
        .map_err(|e| bad(format!("subarray layout: {e}")))?;
    let ids: Vec<i64> = layout.iter().map(|r| r.tel_id).collect();
    let row = layout
        .iter()
        .find(|r| r.tel_id == tel_id as i64)
        .ok_or_else(|| bad(format!("describes telescopes {ids:?}, not telescope {tel_id}")))?;
    let optics: Vec<OpticsRead> = read("/configuration/instrument/telescope/optics")?
        .read_raw()
        .map_err(|e| bad(format!("optics table: {e}")))?;
    let o = usize::try_from(row.optics_index)
        .ok()
        .and_then(|i| optics.get(i))
        .ok_or_else(|| bad(format!("telescope {tel_id}: optics_index {} has no optics row", row.optics_index)))?;
    let camera = format!("/configuration/instrument/telescope/camera/geometry_{}", row.camera_index);
    let pixels: Vec<GeometryRead> = read(&camera)?.read_raw().map_err(|e| bad(format!("{camera}: {e}")))?;
    let pix_x: Vec<f64> = pixels.iter().map(|p| p.pix_x).collect();
    let pix_y: Vec<f64> = pixels.iter().map(|p| p.pix_y).collect();
    let geometry = CameraGeometry::digicam_with_positions(&pix_x, &pix_y).map_err(|e| bad(format!("{camera}: {e}")))?;
    let readout_path = format!("/configuration/instrument/telescope/camera/readout_{}", row.camera_index);
    let readout = read(&readout_path)?;
    let samples: Vec<ReadoutRow> = readout.read_raw().map_err(|e| bad(format!("{readout_path}: {e}")))?;
    let attr_f64 = |name: &str| readout.attr(name).ok().and_then(|a| a.read_scalar::<f64>().ok());
    let step_ns = attr_f64("REFWIDTH")
        .ok_or_else(|| bad(format!("{readout_path} lacks the REFWIDTH attribute (the pulse's sample width)")))?;
    let sampling_ghz = attr_f64("SAMPFREQ")
        .ok_or_else(|| bad(format!("{readout_path} lacks the SAMPFREQ attribute (the sampling rate)")))?;
    let n_samples = readout.attr("NSAMPLES").ok().and_then(|a| a.read_scalar::<i64>().ok()).unwrap_or(0);
    let shape: Vec<f64> = samples.iter().map(|s| s.reference_pulse_shape_channel0).collect();
    let positive = |v: f64| v.is_finite() && v > 0.0;
    if shape.len() < 2 || !positive(step_ns) || !positive(sampling_ghz) || shape.iter().any(|v| !v.is_finite()) {
        return Err(bad(format!(
            "{readout_path}: not a usable reference pulse ({} samples every {step_ns} ns)",
            shape.len()
        )));
    }
    let areas: Vec<f64> = pixels.iter().map(|p| p.pix_area).collect();
    Ok(TelescopeDescription {
        tel_id,
        position_m: [row.pos_x, row.pos_y, row.pos_z],
        optics: Optics {
            equivalent_focal_length_m: o.equivalent_focal_length,
            effective_focal_length_m: o.effective_focal_length,
            mirror_area_m2: o.mirror_area,
            n_mirror_tiles: o.n_mirror_tiles,
        },
        geometry,
        pixel_area_m2: areas.first().copied().unwrap_or(instrument::camera::PIXEL_AREA_M2),
        pulse: ReferencePulse { shape, step_ns },
        sample_ns: 1.0 / sampling_ghz,
        n_samples: usize::try_from(n_samples).unwrap_or(0),
    })
}

fn ascii<const N: usize>(s: &str) -> FixedAscii<N> {
    FixedAscii::from_ascii(s).expect("fixed ASCII label fits")
}

/// Geocentric (ITRS/ECEF) coordinates of a WGS84 position, in m.
pub fn wgs84_to_itrs(lon_deg: f64, lat_deg: f64, height_m: f64) -> [f64; 3] {
    const A: f64 = 6_378_137.0;
    const F: f64 = 1.0 / 298.257_223_563;
    let e2 = F * (2.0 - F);
    let (lon, lat) = (lon_deg.to_radians(), lat_deg.to_radians());
    let n = A / (1.0 - e2 * lat.sin().powi(2)).sqrt();
    [
        (n + height_m) * lat.cos() * lon.cos(),
        (n + height_m) * lat.cos() * lon.sin(),
        (n * (1.0 - e2) + height_m) * lat.sin(),
    ]
}

const ORIGIN: &str = "ctapipe.instrument.SubarrayDescription";
const SUBARRAY: &str = "SST1M";

/// Writes the layout (one telescope), optics, camera geometry and readout of `telescope`.
pub fn write_instrument(file: &hdf5::File, description: &TelescopeDescription) -> Result<()> {
    let (tel_id, position_m) = (description.tel_id, description.position_m);
    let itrs =
        wgs84_to_itrs(instrument::REFERENCE_LON_DEG, instrument::REFERENCE_LAT_DEG, instrument::REFERENCE_HEIGHT_M);
    let mut layout = Table::<LayoutRow>::create(
        &ensure_groups(file, "/configuration/instrument/subarray")?,
        "layout",
        16,
        &[
            ColumnMeta::new("tel_id", ""),
            ColumnMeta::string("name", 2),
            ColumnMeta::string("type", 3),
            ColumnMeta::new("pos_x", "m"),
            ColumnMeta::new("pos_y", "m"),
            ColumnMeta::new("pos_z", "m"),
            ColumnMeta::string("camera_name", 7),
            ColumnMeta::string("optics_name", 2),
            ColumnMeta::new("camera_index", ""),
            ColumnMeta::new("optics_index", ""),
            ColumnMeta::string("tel_description", 14),
        ],
    )?;
    layout.attrs(&[
        ("ORIGIN", Attr::Str(ORIGIN)),
        ("SUBARRAY", Attr::Str(SUBARRAY)),
        ("TAB_TYPE", Attr::Str("subarray")),
        ("TAB_VER", Attr::Str("2.0")),
        ("name", Attr::Str(SUBARRAY)),
        ("reference_itrs_x", Attr::Float(itrs[0])),
        ("reference_itrs_y", Attr::Float(itrs[1])),
        ("reference_itrs_z", Attr::Float(itrs[2])),
    ])?;
    layout.push(LayoutRow {
        tel_id: tel_id as i16,
        name: ascii("1M"),
        kind: ascii("SST"),
        pos_x: position_m[0],
        pos_y: position_m[1],
        pos_z: position_m[2],
        camera_name: ascii("DigiCam"),
        optics_name: ascii("1M"),
        camera_index: 0,
        optics_index: 0,
        tel_description: ascii("SST_1M_DigiCam"),
    })?;
    layout.finish()?;

    let telescope_group = ensure_groups(file, "/configuration/instrument/telescope")?;
    let mut optics = Table::<OpticsRow>::create(
        &telescope_group,
        "optics",
        16,
        &[
            ColumnMeta::string("optics_name", 2),
            ColumnMeta::string("size_type", 3),
            ColumnMeta::string("reflector_shape", 13),
            ColumnMeta::new("mirror_area", "m**2"),
            ColumnMeta::new("n_mirrors", ""),
            ColumnMeta::new("n_mirror_tiles", ""),
            ColumnMeta::new("equivalent_focal_length", "m"),
            ColumnMeta::new("effective_focal_length", "m"),
        ],
    )?;
    optics.attrs(&[
        ("ORIGIN", Attr::Str(ORIGIN)),
        ("SUBARRAY", Attr::Str(SUBARRAY)),
        ("TAB_TYPE", Attr::Str("optics")),
        ("TAB_VER", Attr::Str("4.0")),
    ])?;
    optics.push(OpticsRow {
        optics_name: ascii("1M"),
        size_type: ascii("SST"),
        reflector_shape: ascii("DAVIES_COTTON"),
        mirror_area: description.optics.mirror_area_m2,
        n_mirrors: 1,
        n_mirror_tiles: description.optics.n_mirror_tiles,
        equivalent_focal_length: description.optics.equivalent_focal_length_m,
        effective_focal_length: description.optics.effective_focal_length_m,
    })?;
    optics.finish()?;

    let camera = ensure_groups(file, "/configuration/instrument/telescope/camera")?;
    let geom = &description.geometry;
    let mut g = Table::<GeometryRow>::create(
        &camera,
        "geometry_0",
        1296,
        &[
            ColumnMeta::new("pix_id", ""),
            ColumnMeta::new("pix_x", "m"),
            ColumnMeta::new("pix_y", "m"),
            ColumnMeta::new("pix_area", "m**2"),
        ],
    )?;
    g.attrs(&[
        ("CAM_ID", Attr::Str(instrument::camera::CAMERA_NAME)),
        ("CAM_ROT", Attr::Float(instrument::camera::CAM_ROT_DEG)),
        ("PIX_ROT", Attr::Float(instrument::camera::PIX_ROT_DEG)),
        ("PIX_TYPE", Attr::Str("hexagon")),
        ("TAB_TYPE", Attr::Str("ctapipe.instrument.CameraGeometry")),
        ("TAB_VER", Attr::Str("2.0")),
    ])?;
    for p in 0..geom.n_pixels() {
        g.push(GeometryRow {
            pix_id: p as i64,
            pix_x: geom.pix_x[p],
            pix_y: geom.pix_y[p],
            pix_area: description.pixel_area_m2,
        })?;
    }
    g.finish()?;

    let mut r = Table::<ReadoutRow>::create(
        &camera,
        "readout_0",
        2048,
        &[ColumnMeta::new("reference_pulse_shape_channel0", ""), ColumnMeta::new("reference_pulse_sample_time", "ns")],
    )?;
    r.attrs(&[
        ("CAM_ID", Attr::Str(instrument::camera::CAMERA_NAME)),
        ("NCHAN", Attr::Int(1)),
        ("NPIXELS", Attr::Int(geom.n_pixels() as i64)),
        ("NSAMPLES", Attr::Int(description.n_samples as i64)),
        ("REFWIDTH", Attr::Float(description.pulse.step_ns)),
        ("SAMPFREQ", Attr::Float(1.0 / description.sample_ns)),
        ("TAB_TYPE", Attr::Str("ctapipe.instrument.CameraReadout")),
        ("TAB_VER", Attr::Str("3.0")),
    ])?;
    for (i, &a) in description.pulse.shape.iter().enumerate() {
        r.push(ReadoutRow {
            reference_pulse_shape_channel0: a,
            reference_pulse_sample_time: i as f64 * description.pulse.step_ns,
        })?;
    }
    r.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn itrs_of_the_equator_and_pole() {
        let [x, y, z] = wgs84_to_itrs(0.0, 0.0, 0.0);
        assert!((x - 6_378_137.0).abs() < 1e-6 && y.abs() < 1e-6 && z.abs() < 1e-6);
        let [_, _, z] = wgs84_to_itrs(0.0, 90.0, 0.0);
        assert!((z - 6_356_752.314).abs() < 1e-3, "{z}");
    }
}
