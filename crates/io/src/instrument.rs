//! The instrument description tables ctapipe writes into every DL1 file
//! (`/configuration/instrument/...`), for the DigiCam camera and SST-1M optics, with ctapipe's
//! table types, versions and attributes, so that ctapipe's `SubarrayDescription.from_hdf` (and
//! sst1mpipe, which reads the focal length from the optics table) load them.
use super::hdf5_table::{ensure_groups, Attr, ColumnMeta, Table};
use hdf5::types::FixedAscii;
use hdf5::H5Type;
use sst1mflow_base::error::Result;
use sst1mflow_science::instrument::{self, camera::CameraGeometry, pulse};

#[derive(H5Type, Clone, Copy)]
#[repr(C)]
struct LayoutRow {
    tel_id: u16,
    name: FixedAscii<2>,
    #[hdf5(rename = "type")]
    kind: FixedAscii<3>,
    pos_x: f32,
    pos_y: f32,
    pos_z: f32,
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

/// Writes the layout (one telescope at `position_m`), optics, camera geometry and readout.
pub fn write_instrument(file: &hdf5::File, tel_id: u16, position_m: [f64; 3]) -> Result<()> {
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
        tel_id,
        name: ascii("1M"),
        kind: ascii("SST"),
        pos_x: position_m[0] as f32,
        pos_y: position_m[1] as f32,
        pos_z: position_m[2] as f32,
        camera_name: ascii("DigiCam"),
        optics_name: ascii("1M"),
        camera_index: 0,
        optics_index: 0,
        tel_description: ascii("SST_1M_DigiCam"),
    })?;
    layout.finish()?;

    let telescope = ensure_groups(file, "/configuration/instrument/telescope")?;
    let mut optics = Table::<OpticsRow>::create(
        &telescope,
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
        mirror_area: instrument::MIRROR_AREA_M2,
        n_mirrors: 1,
        n_mirror_tiles: instrument::N_MIRROR_TILES as i64,
        equivalent_focal_length: instrument::EQUIVALENT_FOCAL_LENGTH_M,
        effective_focal_length: instrument::EFFECTIVE_FOCAL_LENGTH_M,
    })?;
    optics.finish()?;

    let camera = ensure_groups(file, "/configuration/instrument/telescope/camera")?;
    let geom = CameraGeometry::digicam();
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
            pix_area: instrument::camera::PIXEL_AREA_M2,
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
        ("NSAMPLES", Attr::Int(instrument::N_SAMPLES as i64)),
        ("REFWIDTH", Attr::Float(pulse::REFERENCE_STEP_NS)),
        ("SAMPFREQ", Attr::Float(1.0 / instrument::SAMPLE_NS)),
        ("TAB_TYPE", Attr::Str("ctapipe.instrument.CameraReadout")),
        ("TAB_VER", Attr::Str("3.0")),
    ])?;
    for (i, a) in pulse::reference_table().into_iter().enumerate() {
        r.push(ReadoutRow {
            reference_pulse_shape_channel0: a,
            reference_pulse_sample_time: i as f64 * pulse::REFERENCE_STEP_NS,
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
