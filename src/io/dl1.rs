//! DL1 files in the ctapipe layout: one file per run and telescope, with the image table
//! (`/dl1/event/telescope/images/tel_NNN`) and the parameter table
//! (`/dl1/event/telescope/parameters/tel_NNN`) under the column names, dtypes and units
//! ctapipe (and so sst1mpipe) writes: angles in degrees, timing slope in 1/m, leakage
//! intensities and intensity/peak-time max/min/mean/std as float32. The file's root carries
//! the activity key (`sst1mflow_activity_key`) and pipeline version, so a copy can be traced.
//!
//! After ctapipe's columns the parameter table carries sst1mpipe's extra columns
//! (`log_camera_frame_hillas_intensity`, `camera_frame_hillas_wl`, `t_rms`, `t_rms_w`, `t_lac`,
//! `len_st`) and the MC truth with the disp target (`true_energy`, `log_true_energy`,
//! `true_camera_x/y`, `true_core_x/y`, `true_h_max`, `true_tel_impact_distance`,
//! `true_shower_primary_id`, `disp_dx/dy/norm/angle/sign`, `miss`), NaN where unknown.
//!
//! Known divergence: booleans (`image_mask`, `is_valid`) are stored as HDF5's enum bool
//! (`hdf5-metno`'s only bool type), which h5py reads as `bool` and PyTables as int8 0/1;
//! ctapipe writes PyTables' 8-bit bitfield bool (`H5T_STD_B8LE`). Writing the bitfield needs a
//! raw datatype writer through `hdf5-sys`.
use super::hdf5_table::{ensure_groups, ColumnMeta, Table};
use crate::error::Result;
use crate::image::params::ImageParameters;
use crate::instrument::camera::N_PIXELS;
use hdf5::H5Type;
use std::path::Path;

#[derive(H5Type, Clone, Copy, Debug)]
#[repr(C)]
pub struct ImageRow {
    pub obs_id: i32,
    pub event_id: i64,
    pub tel_id: i16,
    pub image: [f32; N_PIXELS],
    pub peak_time: [f32; N_PIXELS],
    pub image_mask: [bool; N_PIXELS],
    pub is_valid: bool,
}

const IMAGE_COLUMNS: &[(&str, &str)] = &[
    ("obs_id", ""),
    ("event_id", ""),
    ("tel_id", ""),
    ("image", ""),
    ("peak_time", "ns"),
    ("image_mask", ""),
    ("is_valid", ""),
];

/// Parameter row, in ctapipe's column order.
#[derive(H5Type, Clone, Copy, Debug)]
#[repr(C)]
pub struct ParametersRow {
    pub obs_id: i32,
    pub event_id: i64,
    pub tel_id: i16,
    pub camera_frame_hillas_intensity: f64,
    pub camera_frame_hillas_skewness: f64,
    pub camera_frame_hillas_kurtosis: f64,
    pub camera_frame_hillas_x: f64,
    pub camera_frame_hillas_y: f64,
    pub camera_frame_hillas_r: f64,
    pub camera_frame_hillas_phi: f64,
    pub camera_frame_hillas_length: f64,
    pub camera_frame_hillas_length_uncertainty: f64,
    pub camera_frame_hillas_width: f64,
    pub camera_frame_hillas_width_uncertainty: f64,
    pub camera_frame_hillas_psi: f64,
    pub camera_frame_hillas_psi_uncertainty: f64,
    pub camera_frame_hillas_transverse_cog_uncertainty: f64,
    pub camera_frame_timing_intercept: f64,
    pub camera_frame_timing_deviation: f64,
    pub camera_frame_timing_slope: f64,
    pub leakage_pixels_width_1: f64,
    pub leakage_pixels_width_2: f64,
    pub leakage_intensity_width_1: f32,
    pub leakage_intensity_width_2: f32,
    pub concentration_cog: f64,
    pub concentration_core: f64,
    pub concentration_pixel: f64,
    pub morphology_n_pixels: i64,
    pub morphology_n_islands: i64,
    pub morphology_n_small_islands: i64,
    pub morphology_n_medium_islands: i64,
    pub morphology_n_large_islands: i64,
    pub intensity_max: f32,
    pub intensity_min: f32,
    pub intensity_mean: f32,
    pub intensity_std: f32,
    pub intensity_skewness: f64,
    pub intensity_kurtosis: f64,
    pub peak_time_max: f32,
    pub peak_time_min: f32,
    pub peak_time_mean: f32,
    pub peak_time_std: f32,
    pub peak_time_skewness: f64,
    pub peak_time_kurtosis: f64,
    pub core_psi: f64,
    // sst1mpipe's extra columns (io.write_extra_parameters).
    pub log_camera_frame_hillas_intensity: f64,
    pub camera_frame_hillas_wl: f64,
    pub t_rms: f64,
    pub t_rms_w: f64,
    pub t_lac: f64,
    pub len_st: f64,
    // MC truth (NaN for data): energy, direction in the camera, core, and the disp target.
    pub true_energy: f64,
    pub log_true_energy: f64,
    pub true_camera_x: f64,
    pub true_camera_y: f64,
    pub true_core_x: f64,
    pub true_core_y: f64,
    pub true_h_max: f64,
    pub true_tel_impact_distance: f64,
    pub true_shower_primary_id: i64,
    pub disp_dx: f64,
    pub disp_dy: f64,
    pub disp_norm: f64,
    pub disp_angle: f64,
    pub disp_sign: f64,
    pub miss: f64,
}

/// The simulation truth of an event, as the DL1 parameter columns need it.
#[derive(Clone, Copy, Debug)]
pub struct Truth {
    pub energy_tev: f64,
    pub camera_x: f64,
    pub camera_y: f64,
    pub core_x: f64,
    pub core_y: f64,
    pub h_max: f64,
    pub impact: f64,
    pub primary_id: i64,
}

const PARAMETER_COLUMNS: &[(&str, &str)] = &[
    ("obs_id", ""),
    ("event_id", ""),
    ("tel_id", ""),
    ("camera_frame_hillas_intensity", ""),
    ("camera_frame_hillas_skewness", ""),
    ("camera_frame_hillas_kurtosis", ""),
    ("camera_frame_hillas_x", "m"),
    ("camera_frame_hillas_y", "m"),
    ("camera_frame_hillas_r", "m"),
    ("camera_frame_hillas_phi", "deg"),
    ("camera_frame_hillas_length", "m"),
    ("camera_frame_hillas_length_uncertainty", "m"),
    ("camera_frame_hillas_width", "m"),
    ("camera_frame_hillas_width_uncertainty", "m"),
    ("camera_frame_hillas_psi", "deg"),
    ("camera_frame_hillas_psi_uncertainty", "deg"),
    ("camera_frame_hillas_transverse_cog_uncertainty", "m"),
    ("camera_frame_timing_intercept", ""),
    ("camera_frame_timing_deviation", ""),
    ("camera_frame_timing_slope", "m**-1"),
    ("leakage_pixels_width_1", ""),
    ("leakage_pixels_width_2", ""),
    ("leakage_intensity_width_1", ""),
    ("leakage_intensity_width_2", ""),
    ("concentration_cog", ""),
    ("concentration_core", ""),
    ("concentration_pixel", ""),
    ("morphology_n_pixels", ""),
    ("morphology_n_islands", ""),
    ("morphology_n_small_islands", ""),
    ("morphology_n_medium_islands", ""),
    ("morphology_n_large_islands", ""),
    ("intensity_max", ""),
    ("intensity_min", ""),
    ("intensity_mean", ""),
    ("intensity_std", ""),
    ("intensity_skewness", ""),
    ("intensity_kurtosis", ""),
    ("peak_time_max", ""),
    ("peak_time_min", ""),
    ("peak_time_mean", ""),
    ("peak_time_std", ""),
    ("peak_time_skewness", ""),
    ("peak_time_kurtosis", ""),
    ("core_psi", "deg"),
    ("log_camera_frame_hillas_intensity", ""),
    ("camera_frame_hillas_wl", ""),
    ("t_rms", "ns"),
    ("t_rms_w", "ns"),
    ("t_lac", "ns"),
    ("len_st", ""),
    ("true_energy", "TeV"),
    ("log_true_energy", ""),
    ("true_camera_x", "m"),
    ("true_camera_y", "m"),
    ("true_core_x", "m"),
    ("true_core_y", "m"),
    ("true_h_max", "m"),
    ("true_tel_impact_distance", "m"),
    ("true_shower_primary_id", ""),
    ("disp_dx", "m"),
    ("disp_dy", "m"),
    ("disp_norm", "m"),
    ("disp_angle", "rad"),
    ("disp_sign", ""),
    ("miss", "m"),
];

impl ParametersRow {
    /// The row for an event; NaN (and −1 for counts) where no parameters exist, as ctapipe;
    /// truth columns NaN (and −1) without `truth`.
    pub fn new(
        obs_id: i32,
        event_id: i64,
        tel_id: i16,
        p: Option<&ImageParameters>,
        truth: Option<&Truth>,
    ) -> ParametersRow {
        let mut row = Self::parameters(obs_id, event_id, tel_id, p);
        if let Some(t) = truth {
            row.true_energy = t.energy_tev;
            row.log_true_energy = t.energy_tev.log10();
            row.true_camera_x = t.camera_x;
            row.true_camera_y = t.camera_y;
            row.true_core_x = t.core_x;
            row.true_core_y = t.core_y;
            row.true_h_max = t.h_max;
            row.true_tel_impact_distance = t.impact;
            row.true_shower_primary_id = t.primary_id;
            if let Some(p) = p {
                // sst1mpipe's disp definitions, relative to the Hillas centroid and axis.
                let (dx, dy) = (t.camera_x - p.hillas.x, t.camera_y - p.hillas.y);
                let (s, c) = p.hillas.psi.sin_cos();
                let along = dx * c + dy * s;
                row.disp_dx = dx;
                row.disp_dy = dy;
                row.disp_norm = along.abs();
                row.disp_angle = (dy / dx).atan();
                row.disp_sign = along.signum();
                row.miss = (-dx * s + dy * c).abs();
            }
        }
        row
    }

    fn parameters(obs_id: i32, event_id: i64, tel_id: i16, p: Option<&ImageParameters>) -> ParametersRow {
        let nan = f64::NAN;
        let Some(p) = p else {
            return ParametersRow { obs_id, event_id, tel_id, ..Self::no_truth() };
        };
        let h = &p.hillas;
        let (is, ts) = (&p.intensity_statistics, &p.peak_time_statistics);
        ParametersRow {
            obs_id,
            event_id,
            tel_id,
            camera_frame_hillas_intensity: h.intensity,
            camera_frame_hillas_skewness: h.skewness,
            camera_frame_hillas_kurtosis: h.kurtosis,
            camera_frame_hillas_x: h.x,
            camera_frame_hillas_y: h.y,
            camera_frame_hillas_r: h.r,
            camera_frame_hillas_phi: h.phi.to_degrees(),
            camera_frame_hillas_length: h.length,
            camera_frame_hillas_length_uncertainty: h.length_uncertainty,
            camera_frame_hillas_width: h.width,
            camera_frame_hillas_width_uncertainty: h.width_uncertainty,
            camera_frame_hillas_psi: h.psi.to_degrees(),
            camera_frame_hillas_psi_uncertainty: h.psi_uncertainty.to_degrees(),
            camera_frame_hillas_transverse_cog_uncertainty: h.transverse_cog_uncertainty,
            camera_frame_timing_intercept: p.timing_intercept,
            camera_frame_timing_deviation: p.timing_deviation,
            camera_frame_timing_slope: p.timing_slope,
            leakage_pixels_width_1: p.leakage_pixels_width_1,
            leakage_pixels_width_2: p.leakage_pixels_width_2,
            leakage_intensity_width_1: p.leakage_intensity_width_1 as f32,
            leakage_intensity_width_2: p.leakage_intensity_width_2 as f32,
            concentration_cog: p.concentration_cog,
            concentration_core: p.concentration_core,
            concentration_pixel: p.concentration_pixel,
            morphology_n_pixels: p.n_pixels,
            morphology_n_islands: p.n_islands,
            morphology_n_small_islands: p.n_small_islands,
            morphology_n_medium_islands: p.n_medium_islands,
            morphology_n_large_islands: p.n_large_islands,
            intensity_max: is.max as f32,
            intensity_min: is.min as f32,
            intensity_mean: is.mean as f32,
            intensity_std: is.std as f32,
            intensity_skewness: is.skewness,
            intensity_kurtosis: is.kurtosis,
            peak_time_max: ts.max as f32,
            peak_time_min: ts.min as f32,
            peak_time_mean: ts.mean as f32,
            peak_time_std: ts.std as f32,
            peak_time_skewness: ts.skewness,
            peak_time_kurtosis: ts.kurtosis,
            core_psi: nan,
            log_camera_frame_hillas_intensity: h.intensity.log10(),
            camera_frame_hillas_wl: h.width / h.length,
            t_rms: p.t_rms,
            t_rms_w: p.t_rms_w,
            t_lac: p.t_lac,
            len_st: p.len_st,
            ..Self::no_truth()
        }
    }

    /// A row with nothing known: NaN everywhere, −1 for counts and the particle id.
    fn no_truth() -> ParametersRow {
        let nan = f64::NAN;
        ParametersRow {
            obs_id: 0,
            event_id: 0,
            tel_id: 0,
            camera_frame_hillas_intensity: nan,
            camera_frame_hillas_skewness: nan,
            camera_frame_hillas_kurtosis: nan,
            camera_frame_hillas_x: nan,
            camera_frame_hillas_y: nan,
            camera_frame_hillas_r: nan,
            camera_frame_hillas_phi: nan,
            camera_frame_hillas_length: nan,
            camera_frame_hillas_length_uncertainty: nan,
            camera_frame_hillas_width: nan,
            camera_frame_hillas_width_uncertainty: nan,
            camera_frame_hillas_psi: nan,
            camera_frame_hillas_psi_uncertainty: nan,
            camera_frame_hillas_transverse_cog_uncertainty: nan,
            camera_frame_timing_intercept: nan,
            camera_frame_timing_deviation: nan,
            camera_frame_timing_slope: nan,
            leakage_pixels_width_1: nan,
            leakage_pixels_width_2: nan,
            leakage_intensity_width_1: f32::NAN,
            leakage_intensity_width_2: f32::NAN,
            concentration_cog: nan,
            concentration_core: nan,
            concentration_pixel: nan,
            morphology_n_pixels: -1,
            morphology_n_islands: -1,
            morphology_n_small_islands: -1,
            morphology_n_medium_islands: -1,
            morphology_n_large_islands: -1,
            intensity_max: f32::NAN,
            intensity_min: f32::NAN,
            intensity_mean: f32::NAN,
            intensity_std: f32::NAN,
            intensity_skewness: nan,
            intensity_kurtosis: nan,
            peak_time_max: f32::NAN,
            peak_time_min: f32::NAN,
            peak_time_mean: f32::NAN,
            peak_time_std: f32::NAN,
            peak_time_skewness: nan,
            peak_time_kurtosis: nan,
            core_psi: nan,
            log_camera_frame_hillas_intensity: nan,
            camera_frame_hillas_wl: nan,
            t_rms: nan,
            t_rms_w: nan,
            t_lac: nan,
            len_st: nan,
            true_energy: nan,
            log_true_energy: nan,
            true_camera_x: nan,
            true_camera_y: nan,
            true_core_x: nan,
            true_core_y: nan,
            true_h_max: nan,
            true_tel_impact_distance: nan,
            true_shower_primary_id: -1,
            disp_dx: nan,
            disp_dy: nan,
            disp_norm: nan,
            disp_angle: nan,
            disp_sign: nan,
            miss: nan,
        }
    }
}

fn columns(spec: &'static [(&'static str, &'static str)]) -> Vec<ColumnMeta<'static>> {
    spec.iter().map(|&(name, unit)| ColumnMeta::new(name, unit)).collect()
}

/// Streams one telescope's DL1 into a file.
pub struct Dl1Writer {
    file: hdf5::File,
    images: Table<ImageRow>,
    parameters: Table<ParametersRow>,
}

impl Dl1Writer {
    pub fn create(path: &Path, tel_id: u16, activity_key: &str, pipeline_version: &str) -> Result<Dl1Writer> {
        let file = super::hdf5_table::create_product_file(path, activity_key, pipeline_version)?;
        // The simulated telescope stands at the origin of the ground frame.
        super::instrument::write_instrument(&file, tel_id, [0.0, 0.0, 0.0])?;
        let table = format!("tel_{tel_id:03}");
        let images =
            Table::create(&ensure_groups(&file, "/dl1/event/telescope/images")?, &table, 64, &columns(IMAGE_COLUMNS))?;
        let parameters = Table::create(
            &ensure_groups(&file, "/dl1/event/telescope/parameters")?,
            &table,
            1024,
            &columns(PARAMETER_COLUMNS),
        )?;
        Ok(Dl1Writer { file, images, parameters })
    }

    /// Copies the simulation truth (shower table and thrown-event run row) into the file.
    pub fn write_simulation(
        &mut self,
        showers: &[super::r1::ShowerRow],
        run: Option<super::r1::SimulationRunRow>,
    ) -> Result<()> {
        if showers.is_empty() && run.is_none() {
            return Ok(());
        }
        let mut table = Table::create(
            &ensure_groups(&self.file, "/simulation/event/subarray")?,
            "shower",
            1024,
            &super::r1::shower_columns(),
        )?;
        for s in showers {
            table.push(*s)?;
        }
        table.finish()?;
        if let Some(run) = run {
            let mut t = Table::create(
                &ensure_groups(&self.file, "/configuration/simulation")?,
                "run",
                1,
                &super::r1::run_columns(),
            )?;
            t.push(run)?;
            t.finish()?;
        }
        Ok(())
    }

    pub fn write(&mut self, image: ImageRow, parameters: ParametersRow) -> Result<()> {
        self.images.push(image)?;
        self.parameters.push(parameters)
    }

    /// Writes what is buffered and closes the file; returns the number of events.
    pub fn finish(self) -> Result<usize> {
        self.images.finish()?;
        self.parameters.finish()
    }
}
