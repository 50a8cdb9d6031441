//! The SST-1M instrument: the DigiCam camera, its readout and pulse shape, the telescopes.
//!
//! Two kinds of description live here. The constants and [`TelescopeDescription::model`] are
//! the instrument our simulator builds (generated in code, no files read); their numbers come
//! from the SST-1M configuration (`sst1m_array.h5`, sim_telarray camera files). Real inputs
//! carry their own description (a sim_telarray file its camera and pixel settings, camera data
//! the telescope description file sst1mpipe ships, `sst1m_array.h5`), which the io layer reads
//! into a [`TelescopeDescription`]: pixel positions, optics and the reference pulse of the
//! input, not of the model, are what calibration, parametrisation and the written instrument
//! tables use, as in sst1mpipe.
pub mod camera;
pub mod pulse;

/// Samples per waveform and their spacing.
pub const N_SAMPLES: usize = 50;
pub const SAMPLE_NS: f64 = 4.0;

/// Equivalent focal length used for every camera ↔ sky transformation (m).
pub const EQUIVALENT_FOCAL_LENGTH_M: f64 = 5.6;
/// Effective focal length (m), recorded for completeness.
pub const EFFECTIVE_FOCAL_LENGTH_M: f64 = 5.69705;
/// Mirror area (m²) and number of mirror tiles of the Davies–Cotton reflector.
pub const MIRROR_AREA_M2: f64 = 9.418;
pub const N_MIRROR_TILES: u32 = 18;

/// Array reference location (WGS84): longitude, latitude (deg), height (m).
pub const REFERENCE_LON_DEG: f64 = 14.78250139;
pub const REFERENCE_LAT_DEG: f64 = 49.91244167;
pub const REFERENCE_HEIGHT_M: f64 = 511.195;

/// The readout's reference pulse: amplitudes every `step_ns` from t = 0.
#[derive(Clone, Debug, PartialEq)]
pub struct ReferencePulse {
    pub shape: Vec<f64>,
    pub step_ns: f64,
}

/// Optics of one telescope (ctapipe's `OpticsDescription` columns).
#[derive(Clone, Debug, PartialEq)]
pub struct Optics {
    pub equivalent_focal_length_m: f64,
    /// NaN where the source does not give it (ctapipe writes NaN too).
    pub effective_focal_length_m: f64,
    pub mirror_area_m2: f64,
    pub n_mirror_tiles: i64,
}

/// Everything the chain needs to know about one telescope of an input.
#[derive(Clone, Debug)]
pub struct TelescopeDescription {
    pub tel_id: u16,
    /// Ground-frame position (m): x north, y west, z up.
    pub position_m: [f64; 3],
    pub optics: Optics,
    pub geometry: camera::CameraGeometry,
    pub pixel_area_m2: f64,
    pub pulse: ReferencePulse,
    pub sample_ns: f64,
    pub n_samples: usize,
}

impl TelescopeDescription {
    /// The instrument of our simulator: the lattice camera, the model pulse, the constants.
    pub fn model(tel_id: u16, position_m: [f64; 3]) -> TelescopeDescription {
        TelescopeDescription {
            tel_id,
            position_m,
            optics: Optics {
                equivalent_focal_length_m: EQUIVALENT_FOCAL_LENGTH_M,
                effective_focal_length_m: EFFECTIVE_FOCAL_LENGTH_M,
                mirror_area_m2: MIRROR_AREA_M2,
                n_mirror_tiles: N_MIRROR_TILES as i64,
            },
            geometry: camera::CameraGeometry::digicam(),
            pixel_area_m2: camera::PIXEL_AREA_M2,
            pulse: ReferencePulse { shape: pulse::reference_table(), step_ns: pulse::REFERENCE_STEP_NS },
            sample_ns: SAMPLE_NS,
            n_samples: N_SAMPLES,
        }
    }
}

/// One telescope of the array.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Telescope {
    pub tel_id: u16,
    /// Ground-frame position relative to the reference location (m): x north, y west, z up.
    pub position_m: [f64; 3],
}

/// The two SST-1M telescopes.
pub const TELESCOPES: [Telescope; 2] = [
    Telescope { tel_id: 21, position_m: [-71.38, -30.43, -1.43] },
    Telescope { tel_id: 22, position_m: [71.38, 30.43, 1.42] },
];

pub fn telescope(tel_id: u16) -> Option<&'static Telescope> {
    TELESCOPES.iter().find(|t| t.tel_id == tel_id)
}

/// Ground position of telescope `tel_id` (m): the data ids 21 and 22, and the Monte Carlo ids 1
/// and 2 that sst1mpipe's simulations give the same two telescopes.
pub fn ground_position(tel_id: u16) -> Option<[f64; 3]> {
    let data_id = match tel_id {
        1 | 2 => tel_id + 20,
        other => other,
    };
    telescope(data_id).map(|t| t.position_m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn telescopes_are_155_m_apart() {
        let (a, b) = (TELESCOPES[0].position_m, TELESCOPES[1].position_m);
        let d = ((a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)).sqrt();
        assert!((d - 155.22).abs() < 0.01, "{d}");
        assert_eq!(telescope(22).unwrap().tel_id, 22);
        assert!(telescope(1).is_none());
    }
}
