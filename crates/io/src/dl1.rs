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
//! Trigger tables (`/dl1/event/subarray/trigger`, `/dl1/event/telescope/trigger`) are written
//! for events that have a clock: camera data, observation runs and sim_telarray files; the
//! embedded simulator's Monte Carlo events have none, and get no trigger tables. Files with
//! trigger tables also get what ctapipe 0.17's `HDF5EventSource` reads beside them (root
//! attributes, observation blocks, pointing monitoring: [`super::event_source`]); sim_telarray
//! input gets ctapipe's simulated-image tables (true image, its parameters, the true impact as
//! the distance to the shower axis), which that reader walks beside the DL1 tables.
//!
//! Booleans (`image_mask`, `is_valid`, `tels_with_trigger`) are PyTables' 8-bit bitfield, as
//! ctapipe writes them (see [`super::hdf5_table`]).
use super::hdf5_table::{ensure_groups, ColumnMeta, Storage, Table};
use hdf5::H5Type;
use sst1mflow_base::error::Result;
use sst1mflow_science::image::params::ImageParameters;
use sst1mflow_science::instrument::camera::N_PIXELS;
use sst1mflow_science::instrument::TelescopeDescription;
use std::path::Path;

#[derive(H5Type, Clone, Copy, Debug)]
#[repr(C)]
pub struct ImageRow {
    pub obs_id: i64,
    pub event_id: i64,
    pub tel_id: i16,
    pub image: [f32; N_PIXELS],
    pub peak_time: [f32; N_PIXELS],
    pub image_mask: [bool; N_PIXELS],
    pub is_valid: bool,
}

/// One row of the pedestal monitoring of camera data (ctapipe's `PedestalContainer`, prefix
/// `pedestal_`): the sliding window of raw pedestal events, in ADC.
#[derive(H5Type, Clone, Copy, Debug)]
#[repr(C)]
pub struct PedestalRow {
    pub pedestal_n_events: i64,
    pub pedestal_sample_time: f64,
    pub pedestal_sample_time_min: f64,
    pub pedestal_sample_time_max: f64,
    pub pedestal_charge_mean: [f32; N_PIXELS],
    pub pedestal_charge_median: [f32; N_PIXELS],
    pub pedestal_charge_std: [f32; N_PIXELS],
}

const PEDESTAL_COLUMNS: &[(&str, &str)] = &[
    ("pedestal_n_events", ""),
    ("pedestal_sample_time", "s"),
    ("pedestal_sample_time_min", "s"),
    ("pedestal_sample_time_max", "s"),
    ("pedestal_charge_mean", ""),
    ("pedestal_charge_median", ""),
    ("pedestal_charge_std", ""),
];

const IMAGE_COLUMNS: &[(&str, &str)] = &[
    ("obs_id", ""),
    ("event_id", ""),
    ("tel_id", ""),
    ("image", ""),
    ("peak_time", "ns"),
    ("image_mask", ""),
    ("is_valid", ""),
];

/// Defines, from one list of `column: type = "unit"`, the DL1 parameter row
/// ([`ParametersRow`], in ctapipe's column order followed by sst1mpipe's extra columns and the MC
/// truth), its column metadata, by-name column access for the stages that select features, and
/// the DL2 row ([`Dl2Row`]: the same columns followed by the reconstruction), so the two tables
/// can never disagree about a column.
macro_rules! parameter_tables {
    (
        parameters { $($field:ident : $ty:ty = $unit:literal,)* }
        reconstruction { $($reco:ident = $reco_unit:literal,)* }
    ) => {
        /// Parameter row, in ctapipe's column order.
        #[derive(H5Type, Clone, Copy, Debug)]
        #[repr(C)]
        #[allow(non_snake_case)]
        pub struct ParametersRow {
            $(pub $field: $ty,)*
        }

        const PARAMETER_COLUMNS: &[(&str, &str)] = &[$((stringify!($field), $unit),)*];

        impl ParametersRow {
            /// Reads the column `name` of a row as f64, or `None` when there is no such column.
            pub fn getter(name: &str) -> Option<fn(&ParametersRow) -> f64> {
                match name {
                    $(stringify!($field) => Some(|r: &ParametersRow| r.$field as f64),)*
                    _ => None,
                }
            }

            pub fn column_names() -> impl Iterator<Item = &'static str> + Clone {
                PARAMETER_COLUMNS.iter().map(|c| c.0)
            }

            /// Sets the column `name` from an f64 (converted as `as` converts); false when
            /// there is no such column.
            pub fn set(&mut self, name: &str, value: f64) -> bool {
                match name {
                    $(stringify!($field) => { self.$field = value as $ty; true })*
                    _ => false,
                }
            }
        }

        /// A DL2 row: every DL1 parameter column, then the reconstruction (sst1mpipe's names).
        #[derive(H5Type, Clone, Copy, Debug)]
        #[repr(C)]
        #[allow(non_snake_case)]
        pub struct Dl2Row {
            $(pub $field: $ty,)*
            $(pub $reco: f64,)*
        }

        /// [`Dl2Row`] without padding: the layout of the DL2 table in the file, so reading
        /// into it is a plain copy for HDF5 (an aligned struct costs a field-by-field
        /// conversion of every row, most of the reading time).
        #[derive(H5Type, Clone, Copy)]
        #[repr(C, packed)]
        #[allow(non_snake_case)]
        pub struct Dl2RowPacked {
            $(pub $field: $ty,)*
            $(pub $reco: f64,)*
        }

        impl From<Dl2RowPacked> for Dl2Row {
            fn from(p: Dl2RowPacked) -> Dl2Row {
                Dl2Row { $($field: p.$field,)* $($reco: p.$reco,)* }
            }
        }

        /// [`ParametersRow`] without padding, for reading (see [`Dl2RowPacked`]).
        #[derive(H5Type, Clone, Copy)]
        #[repr(C, packed)]
        #[allow(non_snake_case)]
        pub struct ParametersRowPacked {
            $(pub $field: $ty,)*
        }

        impl From<ParametersRowPacked> for ParametersRow {
            fn from(p: ParametersRowPacked) -> ParametersRow {
                ParametersRow { $($field: p.$field,)* }
            }
        }

        /// Units of [`Dl2Row`]'s columns.
        pub const DL2_COLUMNS: &[(&str, &str)] = &[
            $((stringify!($field), $unit),)*
            $((stringify!($reco), $reco_unit),)*
        ];

        impl Dl2Row {
            /// Reads the DL1 column `name` of a DL2 row as f64 (for `event_selection`), or `None`.
            pub fn getter(name: &str) -> Option<fn(&Dl2Row) -> f64> {
                match name {
                    $(stringify!($field) => Some(|r: &Dl2Row| r.$field as f64),)*
                    _ => None,
                }
            }

            /// The DL1 columns of `p` with every reconstructed value NaN.
            pub fn from_parameters(p: &ParametersRow) -> Dl2Row {
                Dl2Row { $($field: p.$field,)* $($reco: f64::NAN,)* }
            }

            /// Sets the column `name` (DL1 or reconstruction) from an f64, converted as `as`
            /// converts; false when there is no such column.
            pub fn set(&mut self, name: &str, value: f64) -> bool {
                match name {
                    $(stringify!($field) => { self.$field = value as $ty; true })*
                    $(stringify!($reco) => { self.$reco = value; true })*
                    _ => false,
                }
            }
        }
    };
}

parameter_tables! {
    parameters {
    obs_id: i64 = "",
    event_id: i64 = "",
    tel_id: i16 = "",
    camera_frame_hillas_intensity: f64 = "",
    camera_frame_hillas_skewness: f64 = "",
    camera_frame_hillas_kurtosis: f64 = "",
    camera_frame_hillas_x: f64 = "m",
    camera_frame_hillas_y: f64 = "m",
    camera_frame_hillas_r: f64 = "m",
    camera_frame_hillas_phi: f64 = "deg",
    camera_frame_hillas_length: f64 = "m",
    camera_frame_hillas_length_uncertainty: f64 = "m",
    camera_frame_hillas_width: f64 = "m",
    camera_frame_hillas_width_uncertainty: f64 = "m",
    camera_frame_hillas_psi: f64 = "deg",
    camera_frame_hillas_psi_uncertainty: f64 = "deg",
    camera_frame_hillas_transverse_cog_uncertainty: f64 = "m",
    camera_frame_timing_intercept: f64 = "",
    camera_frame_timing_deviation: f64 = "",
    camera_frame_timing_slope: f64 = "m**-1",
    leakage_pixels_width_1: f64 = "",
    leakage_pixels_width_2: f64 = "",
    leakage_intensity_width_1: f32 = "",
    leakage_intensity_width_2: f32 = "",
    concentration_cog: f64 = "",
    concentration_core: f64 = "",
    concentration_pixel: f64 = "",
    morphology_n_pixels: i64 = "",
    morphology_n_islands: i64 = "",
    morphology_n_small_islands: i64 = "",
    morphology_n_medium_islands: i64 = "",
    morphology_n_large_islands: i64 = "",
    intensity_max: f32 = "",
    intensity_min: f32 = "",
    intensity_mean: f32 = "",
    intensity_std: f32 = "",
    intensity_skewness: f64 = "",
    intensity_kurtosis: f64 = "",
    peak_time_max: f32 = "",
    peak_time_min: f32 = "",
    peak_time_mean: f32 = "",
    peak_time_std: f32 = "",
    peak_time_skewness: f64 = "",
    peak_time_kurtosis: f64 = "",
    core_psi: f64 = "deg",
    // sst1mpipe's extra columns (io.write_extra_parameters) and the pointing.
    log_camera_frame_hillas_intensity: f64 = "",
    camera_frame_hillas_wl: f64 = "",
    t_rms: f64 = "ns",
    t_rms_w: f64 = "ns",
    t_lac: f64 = "ns",
    len_st: f64 = "",
    true_az_tel: f64 = "deg",
    true_alt_tel: f64 = "deg",
    // The telescope's equivalent focal length (m), which sst1mpipe's DL1→DL2 reads per event:
    // the optics of the input for Monte Carlo, `telescope_equivalent_focal_length` for data.
    equivalent_focal_length: f64 = "m",
    // Event time of an observation run, Unix seconds (UTC), as sst1mpipe's; NaN for MC.
    local_time: f64 = "s",
    // Camera data: the White Rabbit camera clock (TAI-based Unix time) split as sst1mpipe's
    // --precise-timestamps does, so that integer nanoseconds survive: full seconds and the
    // fraction (exact to the nanosecond in a double). −1 and NaN elsewhere.
    time_wr_full_seconds: i64 = "s",
    time_wr_frac_seconds: f64 = "s",
    // Camera data, as sst1mpipe: the night (YYYYMMDD, from the obs_id; −1 for Monte Carlo) and
    // `meanQ`, the run's NSB level (mean pedestal charge, p.e.) that chose the cleaning, which
    // sst1mpipe's DL1→DL2 uses to pick random forests; NaN for Monte Carlo or without pedestals.
    date: i64 = "",
    meanQ: f64 = "",
    // Stereo (the dl1-stereo stage; NaN in mono DL1): ctapipe's HillasReconstructor of the
    // event, under the names sst1mpipe's stereo feature lists use.
    HillasReconstructor_alt: f64 = "deg",
    HillasReconstructor_az: f64 = "deg",
    HillasReconstructor_core_x: f64 = "m",
    HillasReconstructor_core_y: f64 = "m",
    HillasReconstructor_h_max: f64 = "m",
    HillasReconstructor_tel_impact_distance: f64 = "m",
    // MC truth (NaN for data): energy, direction, core, and the disp target.
    true_energy: f64 = "TeV",
    log_true_energy: f64 = "",
    true_alt: f64 = "deg",
    true_az: f64 = "deg",
    true_camera_x: f64 = "m",
    true_camera_y: f64 = "m",
    true_core_x: f64 = "m",
    true_core_y: f64 = "m",
    true_h_max: f64 = "m",
    true_tel_impact_distance: f64 = "m",
    true_shower_primary_id: i64 = "",
    true_h_first_int: f64 = "m",
    true_x_max: f64 = "g cm-2",
    // Monte Carlo with true photoelectrons (sim_telarray): the fraction of the true charge in
    // the pixels that survived cleaning, sst1mpipe's `survived_charge_fraction`; NaN otherwise.
    survived_charge_fraction: f64 = "",
    // Monte Carlo, as sst1mpipe's energy_min_cut writes it: the cut on true energy applied
    // (`analysis.{gamma,proton}_min_simulated_energy_tev`, when above the simulated minimum),
    // else the simulated minimum; IRFs and performance rescale the thrown showers by it. NaN
    // for data.
    min_true_energy_cut: f64 = "TeV",
    disp_dx: f64 = "m",
    disp_dy: f64 = "m",
    disp_norm: f64 = "m",
    disp_angle: f64 = "rad",
    disp_sign: f64 = "",
    miss: f64 = "m",
    }
    reconstruction {
        log_reco_energy = "",
        reco_energy = "TeV",
        reco_disp_norm = "m",
        reco_disp_sign = "",
        reco_disp_dx = "m",
        reco_disp_dy = "m",
        gammaness = "",
        reco_src_x = "m",
        reco_src_y = "m",
        reco_alt = "deg",
        reco_az = "deg",
        reco_ra = "deg",
        reco_dec = "deg",
    }
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
    /// Height of the first interaction (m) and depth of the shower maximum (g/cm²); NaN where
    /// the source does not give them.
    pub h_first_int: f64,
    pub x_max: f64,
    /// True direction (deg).
    pub alt_deg: f64,
    pub az_deg: f64,
}

impl ParametersRow {
    /// The row for an event; NaN (and −1 for counts) where no parameters exist, as ctapipe;
    /// truth columns NaN (and −1) without `truth`.
    pub fn new(
        obs_id: i64,
        event_id: i64,
        tel_id: i16,
        pointing_alt_az_deg: (f64, f64),
        p: Option<&ImageParameters>,
        truth: Option<&Truth>,
    ) -> ParametersRow {
        let mut row = Self::parameters(obs_id, event_id, tel_id, p);
        row.true_alt_tel = pointing_alt_az_deg.0;
        row.true_az_tel = pointing_alt_az_deg.1;
        if let Some(t) = truth {
            row.set_truth_at(t, p.map(|p| (p.hillas.x, p.hillas.y, p.hillas.psi)));
        }
        row
    }

    /// Sets the truth columns, and sst1mpipe's disp columns from this row's Hillas centroid
    /// and axis when it has them (for rows read from another tool's DL1).
    pub fn set_truth(&mut self, t: &Truth) {
        let hillas = (self.camera_frame_hillas_intensity.is_finite()).then(|| {
            (self.camera_frame_hillas_x, self.camera_frame_hillas_y, self.camera_frame_hillas_psi.to_radians())
        });
        self.set_truth_at(t, hillas);
    }

    /// The truth columns, and the disp columns relative to `hillas` (x, y in m, psi in rad).
    fn set_truth_at(&mut self, t: &Truth, hillas: Option<(f64, f64, f64)>) {
        let row = self;
        {
            row.true_energy = t.energy_tev;
            row.log_true_energy = t.energy_tev.log10();
            row.true_alt = t.alt_deg;
            row.true_az = t.az_deg;
            row.true_camera_x = t.camera_x;
            row.true_camera_y = t.camera_y;
            row.true_core_x = t.core_x;
            row.true_core_y = t.core_y;
            row.true_h_max = t.h_max;
            row.true_tel_impact_distance = t.impact;
            row.true_shower_primary_id = t.primary_id;
            row.true_h_first_int = t.h_first_int;
            row.true_x_max = t.x_max;
            if let Some((x, y, psi)) = hillas {
                // sst1mpipe's disp definitions, relative to the Hillas centroid and axis.
                let (dx, dy) = (t.camera_x - x, t.camera_y - y);
                let (s, c) = psi.sin_cos();
                let along = dx * c + dy * s;
                row.disp_dx = dx;
                row.disp_dy = dy;
                row.disp_norm = along.abs();
                row.disp_angle = (dy / dx).atan();
                row.disp_sign = along.signum();
                // Signed, as sst1mpipe's `add_miss` (the transverse coordinate of the true position).
                row.miss = -dx * s + dy * c;
            }
        }
    }

    fn parameters(obs_id: i64, event_id: i64, tel_id: i16, p: Option<&ImageParameters>) -> ParametersRow {
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
            true_az_tel: nan,
            true_alt_tel: nan,
            equivalent_focal_length: nan,
            local_time: nan,
            time_wr_full_seconds: -1,
            time_wr_frac_seconds: nan,
            date: -1,
            meanQ: nan,
            HillasReconstructor_alt: nan,
            HillasReconstructor_az: nan,
            HillasReconstructor_core_x: nan,
            HillasReconstructor_core_y: nan,
            HillasReconstructor_h_max: nan,
            HillasReconstructor_tel_impact_distance: nan,
            true_energy: nan,
            log_true_energy: nan,
            true_alt: nan,
            true_az: nan,
            true_camera_x: nan,
            true_camera_y: nan,
            true_core_x: nan,
            true_core_y: nan,
            true_h_max: nan,
            true_tel_impact_distance: nan,
            true_shower_primary_id: -1,
            true_h_first_int: nan,
            true_x_max: nan,
            survived_charge_fraction: nan,
            min_true_energy_cut: nan,
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

/// One row of ctapipe's subarray trigger table (`/dl1/event/subarray/trigger`). `time` is
/// written as ctapipe 0.17 (which sst1mpipe pins) writes it: MJD in the TAI scale, float64
/// (0.6 µs resolution; the nanosecond White Rabbit clock is in the parameter table's
/// `time_wr_*` columns, as in sst1mpipe). ctapipe 0.17 cannot read the newer `ctao_high_res`
/// format; every ctapipe reads MJD.
#[derive(H5Type, Clone, Copy, Debug)]
#[repr(C)]
pub struct TriggerRow {
    pub obs_id: i64,
    pub event_id: i64,
    pub time: f64,
    /// Mask over the file's subarray, which is the one telescope of the file.
    pub tels_with_trigger: [bool; 1],
    /// ctapipe's `EventType` value (32: subarray trigger).
    pub event_type: u8,
}

/// One row of ctapipe's telescope trigger table (`/dl1/event/telescope/trigger`).
#[derive(H5Type, Clone, Copy, Debug)]
#[repr(C)]
pub struct TelescopeTriggerRow {
    pub obs_id: i64,
    pub event_id: i64,
    pub tel_id: i16,
    pub time: f64,
    pub event_type: u8,
    /// Trigger sectors listed: -1, not recorded (ctapipe's default).
    pub n_trigger_pixels: i64,
}

/// ctapipe's `EventType.SUBARRAY`.
pub const EVENT_TYPE_SUBARRAY: u8 = 32;

impl TriggerRow {
    /// The row for an event at Unix time `unix_s` (UTC); `None` when the time cannot be
    /// expressed (NaN, before 1999).
    pub fn at(obs_id: i64, event_id: i64, unix_s: f64) -> Option<TriggerRow> {
        let tai = sst1mflow_science::astro::unix_to_unix_tai(unix_s)?;
        let seconds = tai.floor();
        Self::at_tai_ns(obs_id, event_id, seconds as i64 * 1_000_000_000 + ((tai - seconds) * 1e9).round() as i64)
    }

    /// The row for an event whose clock reads `tai_ns` nanoseconds of astropy's `unix_tai`
    /// (the DigiCam clock); `None` before 1970.
    pub fn at_tai_ns(obs_id: i64, event_id: i64, tai_ns: i64) -> Option<TriggerRow> {
        if tai_ns < 0 {
            return None;
        }
        Some(TriggerRow::new(obs_id, event_id, mjd_tai(tai_ns)))
    }

    fn new(obs_id: i64, event_id: i64, time: f64) -> TriggerRow {
        TriggerRow { obs_id, event_id, time, tels_with_trigger: [true], event_type: EVENT_TYPE_SUBARRAY }
    }

    /// The telescope's row of the same trigger.
    pub fn telescope(&self, tel_id: u16) -> TelescopeTriggerRow {
        TelescopeTriggerRow {
            obs_id: self.obs_id,
            event_id: self.event_id,
            tel_id: tel_id as i16,
            time: self.time,
            event_type: self.event_type,
            n_trigger_pixels: -1,
        }
    }
}

/// MJD (TAI scale) of `tai_ns` nanoseconds of astropy's `unix_tai`, whose epoch is
/// 1970-01-01 00:00:00 TAI (MJD 40587): whole days and the rest of the day are combined only
/// at the end, so the value is rounded once.
fn mjd_tai(tai_ns: i64) -> f64 {
    const NS_PER_DAY: i64 = 86_400_000_000_000;
    let days = tai_ns.div_euclid(NS_PER_DAY);
    let rest = tai_ns.rem_euclid(NS_PER_DAY);
    (40_587 + days) as f64 + rest as f64 / NS_PER_DAY as f64
}

/// One row of ctapipe's true impact table.
#[derive(H5Type, Clone, Copy, Debug)]
#[repr(C)]
struct TrueImpactRow {
    obs_id: i64,
    event_id: i64,
    tel_id: i16,
    true_impact_distance: f64,
    true_impact_distance_uncert: f64,
}

/// One row of ctapipe's simulated image table (`/simulation/event/telescope/images/tel_NNN`).
#[derive(H5Type, Clone, Copy, Debug)]
#[repr(C)]
struct TrueImageRow {
    obs_id: i64,
    event_id: i64,
    tel_id: i16,
    true_image_sum: i32,
    true_image: [i32; N_PIXELS],
}

/// One row of ctapipe's true image parameters (`/simulation/event/telescope/parameters/tel_NNN`),
/// in the camera frame as sst1mpipe computes them (ctapipe 0.17's columns for it).
#[derive(H5Type, Clone, Copy, Debug)]
#[repr(C)]
struct TrueParametersRow {
    obs_id: i64,
    event_id: i64,
    tel_id: i16,
    true_camera_frame_hillas_intensity: f64,
    true_camera_frame_hillas_skewness: f64,
    true_camera_frame_hillas_kurtosis: f64,
    true_camera_frame_hillas_x: f64,
    true_camera_frame_hillas_y: f64,
    true_camera_frame_hillas_r: f64,
    true_camera_frame_hillas_phi: f64,
    true_camera_frame_hillas_length: f64,
    true_camera_frame_hillas_length_uncertainty: f64,
    true_camera_frame_hillas_width: f64,
    true_camera_frame_hillas_width_uncertainty: f64,
    true_camera_frame_hillas_psi: f64,
    true_leakage_pixels_width_1: f64,
    true_leakage_pixels_width_2: f64,
    true_leakage_intensity_width_1: f64,
    true_leakage_intensity_width_2: f64,
    true_concentration_cog: f64,
    true_concentration_core: f64,
    true_concentration_pixel: f64,
    true_morphology_n_pixels: i64,
    true_morphology_n_islands: i64,
    true_morphology_n_small_islands: i64,
    true_morphology_n_medium_islands: i64,
    true_morphology_n_large_islands: i64,
    true_intensity_max: i32,
    true_intensity_min: i32,
    true_intensity_mean: f64,
    true_intensity_std: f64,
    true_intensity_skewness: f64,
    true_intensity_kurtosis: f64,
}

const TRUE_PARAMETER_COLUMNS: [(&str, &str); 33] = [
    ("obs_id", ""),
    ("event_id", ""),
    ("tel_id", ""),
    ("true_camera_frame_hillas_intensity", ""),
    ("true_camera_frame_hillas_skewness", ""),
    ("true_camera_frame_hillas_kurtosis", ""),
    ("true_camera_frame_hillas_x", "m"),
    ("true_camera_frame_hillas_y", "m"),
    ("true_camera_frame_hillas_r", "m"),
    ("true_camera_frame_hillas_phi", "deg"),
    ("true_camera_frame_hillas_length", "m"),
    ("true_camera_frame_hillas_length_uncertainty", "m"),
    ("true_camera_frame_hillas_width", "m"),
    ("true_camera_frame_hillas_width_uncertainty", "m"),
    ("true_camera_frame_hillas_psi", "deg"),
    ("true_leakage_pixels_width_1", ""),
    ("true_leakage_pixels_width_2", ""),
    ("true_leakage_intensity_width_1", ""),
    ("true_leakage_intensity_width_2", ""),
    ("true_concentration_cog", ""),
    ("true_concentration_core", ""),
    ("true_concentration_pixel", ""),
    ("true_morphology_n_pixels", ""),
    ("true_morphology_n_islands", ""),
    ("true_morphology_n_small_islands", ""),
    ("true_morphology_n_medium_islands", ""),
    ("true_morphology_n_large_islands", ""),
    ("true_intensity_max", ""),
    ("true_intensity_min", ""),
    ("true_intensity_mean", ""),
    ("true_intensity_std", ""),
    ("true_intensity_skewness", ""),
    ("true_intensity_kurtosis", ""),
];

impl TrueParametersRow {
    /// ctapipe's DEFAULT_TRUE_IMAGE_PARAMETERS (NaN, −1 counts) without `p`.
    fn new(obs_id: i64, event_id: i64, tel_id: i16, p: Option<&ImageParameters>) -> TrueParametersRow {
        let nan = f64::NAN;
        let h = p.map(|p| p.hillas.clone()).unwrap_or_default();
        let or = |v: f64| if p.is_some() { v } else { nan };
        let count = |v: i64| if p.is_some() { v } else { -1 };
        let q = |f: fn(&ImageParameters) -> f64| p.map_or(nan, f);
        let stat = p.map(|p| p.intensity_statistics.clone());
        TrueParametersRow {
            obs_id,
            event_id,
            tel_id,
            true_camera_frame_hillas_intensity: or(h.intensity),
            true_camera_frame_hillas_skewness: or(h.skewness),
            true_camera_frame_hillas_kurtosis: or(h.kurtosis),
            true_camera_frame_hillas_x: or(h.x),
            true_camera_frame_hillas_y: or(h.y),
            true_camera_frame_hillas_r: or(h.r),
            true_camera_frame_hillas_phi: or(h.phi.to_degrees()),
            true_camera_frame_hillas_length: or(h.length),
            true_camera_frame_hillas_length_uncertainty: or(h.length_uncertainty),
            true_camera_frame_hillas_width: or(h.width),
            true_camera_frame_hillas_width_uncertainty: or(h.width_uncertainty),
            true_camera_frame_hillas_psi: or(h.psi.to_degrees()),
            true_leakage_pixels_width_1: q(|p| p.leakage_pixels_width_1),
            true_leakage_pixels_width_2: q(|p| p.leakage_pixels_width_2),
            true_leakage_intensity_width_1: q(|p| p.leakage_intensity_width_1),
            true_leakage_intensity_width_2: q(|p| p.leakage_intensity_width_2),
            true_concentration_cog: q(|p| p.concentration_cog),
            true_concentration_core: q(|p| p.concentration_core),
            true_concentration_pixel: q(|p| p.concentration_pixel),
            true_morphology_n_pixels: count(p.map_or(0, |p| p.n_pixels)),
            true_morphology_n_islands: count(p.map_or(0, |p| p.n_islands)),
            true_morphology_n_small_islands: count(p.map_or(0, |p| p.n_small_islands)),
            true_morphology_n_medium_islands: count(p.map_or(0, |p| p.n_medium_islands)),
            true_morphology_n_large_islands: count(p.map_or(0, |p| p.n_large_islands)),
            // The true image counts photoelectrons: its extremes are integers (int32 in ctapipe).
            true_intensity_max: stat.as_ref().map_or(-1, |s| s.max as i32),
            true_intensity_min: stat.as_ref().map_or(-1, |s| s.min as i32),
            true_intensity_mean: stat.as_ref().map_or(nan, |s| s.mean),
            true_intensity_std: stat.as_ref().map_or(nan, |s| s.std),
            true_intensity_skewness: stat.as_ref().map_or(nan, |s| s.skewness),
            true_intensity_kurtosis: stat.as_ref().map_or(nan, |s| s.kurtosis),
        }
    }
}

/// sst1mpipe's DL1 production summary of a camera-data run (`/dl1/info`, its `DL1_info`
/// description), which its stereo matching and night summaries read.
pub struct RunInfo<'a> {
    /// The software that made the file (sst1mpipe writes its own version here).
    pub software_version: &'a str,
    pub target: &'a str,
    /// The pointing used (J2000 degrees; NaN when unknown).
    pub ra_deg: f64,
    pub dec_deg: f64,
    pub wobble: &'a str,
    /// Whether the pointing was given by hand (forced) rather than read from the file.
    pub manual_coords: bool,
    pub calib_file: &'a str,
    pub window_file: &'a str,
    pub n_saturated: i64,
    pub n_pedestal: i64,
    /// Pedestal events whose cleaned image has parameters; NaN where not computed.
    pub n_survived_pedestals: f64,
    /// Triggered events (pedestals included) of telescope 21 and of telescope 22.
    pub n_triggered: [i64; 2],
    pub swat_event_ids_used: bool,
}

#[derive(H5Type, Clone, Copy)]
#[repr(C)]
struct RunInfoRow {
    sst1mpipe_version: hdf5::types::FixedAscii<68>,
    target: hdf5::types::FixedAscii<256>,
    ra: f64,
    dec: f64,
    wobble: hdf5::types::FixedAscii<68>,
    manual_coords: bool,
    calib_file: hdf5::types::FixedAscii<256>,
    window_file: hdf5::types::FixedAscii<256>,
    n_saturated: i64,
    n_pedestal: i64,
    n_survived_pedestals: f64,
    n_triggered_tel1: i64,
    n_triggered_tel2: i64,
    swat_event_ids_used: bool,
}

/// A text as a fixed-length ASCII field: non-ASCII characters become `?`, and what does not
/// fit is cut (as PyTables cuts a longer string).
pub(crate) fn fixed_ascii<const N: usize>(text: &str) -> hdf5::types::FixedAscii<N> {
    let bytes: Vec<u8> = text.chars().map(|c| if c.is_ascii() { c as u8 } else { b'?' }).take(N).collect();
    hdf5::types::FixedAscii::from_ascii(&bytes).expect("ASCII, at most N bytes")
}

/// sst1mpipe's `swat_event_ids_used` of a DL1 file's `/dl1/info` (whether its event ids are
/// SWAT array event numbers, shared by the telescopes); None when the file has no such table.
pub fn read_swat_event_ids_used(path: &Path) -> Result<Option<bool>> {
    let file = hdf5::File::open(path).map_err(|e| super::hdf5_table::hdf5_error(path.display(), e))?;
    let Ok(info) = file.dataset("/dl1/info") else { return Ok(None) };
    let (_, rows) = super::hdf5_table::read_shaped_table(&info, &["swat_event_ids_used"], |_, dims| {
        dims.is_empty().then_some(super::hdf5_table::ShapedColumn::Bool)
    })
    .map_err(|e| sst1mflow_base::error::Error::msg(format!("{}: /dl1/info: {e}", path.display())))?;
    Ok(rows.first().map(|r| r[0] != 0))
}

/// Streams one telescope's DL1 into a file.
pub struct Dl1Writer {
    file: hdf5::File,
    tel_id: u16,
    /// None for a parameters-only file (stereo DL1).
    images: Option<Table<ImageRow>>,
    parameters: Table<ParametersRow>,
    pipeline_version: String,
    /// Each written event's id and pointing (alt, az in degrees), and the trigger rows, for
    /// ctapipe's pointing monitoring ([`super::event_source`]), written at the end.
    pointings: Vec<(i64, f64, f64)>,
    triggers: Vec<TriggerRow>,
    /// ctapipe's simulated images and their parameters (sim_telarray input only).
    true_images: Option<(Table<TrueImageRow>, Table<TrueParametersRow>)>,
    simulation: bool,
    tracked_radec_deg: Option<(f64, f64)>,
}

/// ctapipe's stereo geometry table row (`/dl2/event/subarray/geometry/HillasReconstructor`).
#[derive(H5Type, Clone, Copy, Debug)]
#[repr(C)]
#[allow(non_snake_case)]
pub struct GeometryRow {
    pub obs_id: i64,
    pub event_id: i64,
    pub HillasReconstructor_alt: f64,
    pub HillasReconstructor_alt_uncert: f64,
    pub HillasReconstructor_az: f64,
    pub HillasReconstructor_az_uncert: f64,
    pub HillasReconstructor_core_x: f64,
    pub HillasReconstructor_core_y: f64,
    pub HillasReconstructor_core_tilted_x: f64,
    pub HillasReconstructor_core_tilted_y: f64,
    pub HillasReconstructor_h_max: f64,
    pub HillasReconstructor_is_valid: bool,
    pub HillasReconstructor_average_intensity: f64,
}

const GEOMETRY_COLUMNS: [(&str, &str); 13] = [
    ("obs_id", ""),
    ("event_id", ""),
    ("HillasReconstructor_alt", "deg"),
    ("HillasReconstructor_alt_uncert", "deg"),
    ("HillasReconstructor_az", "deg"),
    ("HillasReconstructor_az_uncert", "deg"),
    ("HillasReconstructor_core_x", "m"),
    ("HillasReconstructor_core_y", "m"),
    ("HillasReconstructor_core_tilted_x", "m"),
    ("HillasReconstructor_core_tilted_y", "m"),
    ("HillasReconstructor_h_max", "m"),
    ("HillasReconstructor_is_valid", ""),
    ("HillasReconstructor_average_intensity", ""),
];

/// ctapipe's impact table row (`/dl2/event/telescope/impact/HillasReconstructor/tel_NNN`).
#[derive(H5Type, Clone, Copy, Debug)]
#[repr(C)]
#[allow(non_snake_case)]
pub struct ImpactRow {
    pub obs_id: i64,
    pub event_id: i64,
    pub tel_id: i16,
    pub HillasReconstructor_tel_impact_distance: f64,
}

const IMPACT_COLUMNS: [(&str, &str); 4] =
    [("obs_id", ""), ("event_id", ""), ("tel_id", ""), ("HillasReconstructor_tel_impact_distance", "m")];

fn column_meta(columns: &[(&'static str, &'static str)]) -> Vec<ColumnMeta<'static>> {
    columns.iter().map(|(n, u)| ColumnMeta::new(n, u)).collect()
}

impl Dl1Writer {
    /// A DL1 file of images and parameters of `telescope` (whose description is written), the
    /// image table's chunks stored as `images` says (the other tables are deflated).
    pub fn create(
        path: &Path,
        telescope: &TelescopeDescription,
        images: Storage,
        activity_key: &str,
        pipeline_version: &str,
    ) -> Result<Dl1Writer> {
        Self::create_with(path, telescope, Some(images), activity_key, pipeline_version)
    }

    /// A DL1 file of parameters only (no image table).
    pub fn create_parameters_only(
        path: &Path,
        telescope: &TelescopeDescription,
        activity_key: &str,
        pipeline_version: &str,
    ) -> Result<Dl1Writer> {
        Self::create_with(path, telescope, None, activity_key, pipeline_version)
    }

    fn create_with(
        path: &Path,
        telescope: &TelescopeDescription,
        images: Option<Storage>,
        activity_key: &str,
        pipeline_version: &str,
    ) -> Result<Dl1Writer> {
        let tel_id = telescope.tel_id;
        let file = super::hdf5_table::create_product_file(path, activity_key, pipeline_version)?;
        super::instrument::write_instrument(&file, telescope)?;
        let table = format!("tel_{tel_id:03}");
        let images = match images {
            Some(storage) => Some(Table::create_stored(
                &ensure_groups(&file, "/dl1/event/telescope/images")?,
                &table,
                64,
                &columns(IMAGE_COLUMNS),
                storage,
            )?),
            None => None,
        };
        let parameters = Table::create(
            &ensure_groups(&file, "/dl1/event/telescope/parameters")?,
            &table,
            1024,
            &columns(PARAMETER_COLUMNS),
        )?;
        Ok(Dl1Writer {
            file,
            tel_id,
            images,
            parameters,
            pipeline_version: pipeline_version.to_string(),
            pointings: Vec::new(),
            triggers: Vec::new(),
            true_images: None,
            simulation: false,
            tracked_radec_deg: None,
        })
    }

    /// The open file, for tables other stages add.
    /// The stereo geometry table (`/dl2/event/subarray/geometry/HillasReconstructor`).
    pub fn write_stereo_geometry(&self, rows: &[GeometryRow]) -> Result<()> {
        let group = ensure_groups(self.file(), "/dl2/event/subarray/geometry")?;
        let mut t = Table::<GeometryRow>::create(&group, "HillasReconstructor", 1024, &column_meta(&GEOMETRY_COLUMNS))?;
        for r in rows {
            t.push(*r)?;
        }
        t.finish()?;
        Ok(())
    }

    /// One telescope's impact table (`/dl2/event/telescope/impact/HillasReconstructor/tel_NNN`).
    pub fn write_stereo_impacts(&self, tel_id: u16, rows: &[ImpactRow]) -> Result<()> {
        let group = ensure_groups(self.file(), "/dl2/event/telescope/impact/HillasReconstructor")?;
        let mut t =
            Table::<ImpactRow>::create(&group, &format!("tel_{tel_id:03}"), 1024, &column_meta(&IMPACT_COLUMNS))?;
        for r in rows {
            t.push(*r)?;
        }
        t.finish()?;
        Ok(())
    }

    pub fn file(&self) -> &hdf5::File {
        &self.file
    }

    /// Copies the simulation truth (shower table, thrown-event run row and thrown-shower
    /// histograms) into the file.
    pub fn write_simulation(
        &mut self,
        showers: &[super::r1::ShowerRow],
        run: Option<super::r1::SimulationRunRow>,
        shower_distributions: &[super::r1::ShowerDistribution],
    ) -> Result<()> {
        self.simulation = true;
        super::r1::write_simulation_tables(&self.file, showers, run, shower_distributions)
    }

    /// Writes an event's true image (photoelectrons per pixel) and the parameters of it that
    /// ctapipe computes (`p`: of the pixels with light, None when it has none), to
    /// `/simulation/event/telescope/{images,parameters}/tel_NNN`. Call it for the events
    /// written, in their order (ctapipe's reader walks these tables beside the DL1 ones).
    pub fn write_true_image(
        &mut self,
        obs_id: i64,
        event_id: i64,
        true_image: &[i32],
        p: Option<&ImageParameters>,
    ) -> Result<()> {
        if self.true_images.is_none() {
            let name = format!("tel_{:03}", self.tel_id);
            let images = Table::create(
                &ensure_groups(&self.file, "/simulation/event/telescope/images")?,
                &name,
                64,
                &column_meta(&[
                    ("obs_id", ""),
                    ("event_id", ""),
                    ("tel_id", ""),
                    ("true_image_sum", ""),
                    ("true_image", ""),
                ]),
            )?;
            let parameters = Table::create(
                &ensure_groups(&self.file, "/simulation/event/telescope/parameters")?,
                &name,
                1024,
                &column_meta(&TRUE_PARAMETER_COLUMNS),
            )?;
            self.true_images = Some((images, parameters));
        }
        let (images, parameters) = self.true_images.as_mut().expect("created above");
        let mut image = [0i32; N_PIXELS];
        let n = true_image.len().min(N_PIXELS);
        image[..n].copy_from_slice(&true_image[..n]);
        let tel_id = self.tel_id as i16;
        images.push(TrueImageRow {
            obs_id,
            event_id,
            tel_id,
            true_image_sum: image.iter().sum(),
            true_image: image,
        })?;
        parameters.push(TrueParametersRow::new(obs_id, event_id, tel_id, p))
    }

    /// Writes sst1mpipe's `/dl1/info` table (one row) for a camera-data run.
    pub fn write_run_info(&self, info: &RunInfo) -> Result<()> {
        let mut t = Table::<RunInfoRow>::create(
            &ensure_groups(&self.file, "/dl1")?,
            "info",
            1,
            &[
                ColumnMeta::string("sst1mpipe_version", 68),
                ColumnMeta::string("target", 256),
                ColumnMeta::new("ra", ""),
                ColumnMeta::new("dec", ""),
                ColumnMeta::string("wobble", 68),
                ColumnMeta::new("manual_coords", ""),
                ColumnMeta::string("calib_file", 256),
                ColumnMeta::string("window_file", 256),
                ColumnMeta::new("n_saturated", ""),
                ColumnMeta::new("n_pedestal", ""),
                ColumnMeta::new("n_survived_pedestals", ""),
                ColumnMeta::new("n_triggered_tel1", ""),
                ColumnMeta::new("n_triggered_tel2", ""),
                ColumnMeta::new("swat_event_ids_used", ""),
            ],
        )?;
        t.push(RunInfoRow {
            sst1mpipe_version: fixed_ascii(info.software_version),
            target: fixed_ascii(info.target),
            ra: info.ra_deg,
            dec: info.dec_deg,
            wobble: fixed_ascii(info.wobble),
            manual_coords: info.manual_coords,
            calib_file: fixed_ascii(info.calib_file),
            window_file: fixed_ascii(info.window_file),
            n_saturated: info.n_saturated,
            n_pedestal: info.n_pedestal,
            n_survived_pedestals: info.n_survived_pedestals,
            n_triggered_tel1: info.n_triggered[0],
            n_triggered_tel2: info.n_triggered[1],
            swat_event_ids_used: info.swat_event_ids_used,
        })?;
        t.finish()?;
        Ok(())
    }

    /// ctapipe's true impact table (`/simulation/event/telescope/impact/tel_NNN`: the
    /// distance from the telescope to the shower axis) for the events written so far.
    pub fn write_true_impacts(&mut self, obs_id: i64, impacts: &[(i64, f64)]) -> Result<()> {
        let written: std::collections::HashSet<i64> = self.pointings.iter().map(|p| p.0).collect();
        let mut t = Table::<TrueImpactRow>::create(
            &ensure_groups(&self.file, "/simulation/event/telescope/impact")?,
            &format!("tel_{:03}", self.tel_id),
            1024,
            &[
                ColumnMeta::new("obs_id", ""),
                ColumnMeta::new("event_id", ""),
                ColumnMeta::new("tel_id", ""),
                ColumnMeta::new("true_impact_distance", "m"),
                ColumnMeta::new("true_impact_distance_uncert", "m"),
            ],
        )?;
        for &(event_id, distance) in impacts.iter().filter(|(id, _)| written.contains(id)) {
            t.push(TrueImpactRow {
                obs_id,
                event_id,
                tel_id: self.tel_id as i16,
                true_impact_distance: distance,
                true_impact_distance_uncert: 0.0,
            })?;
        }
        t.finish()?;
        Ok(())
    }

    /// Writes ctapipe's trigger tables for events that have times: the subarray table
    /// (`/dl1/event/subarray/trigger`: obs_id, event_id, time as MJD TAI,
    /// tels_with_trigger, event_type) and the telescope table (`/dl1/event/telescope/trigger`:
    /// obs_id, event_id, tel_id, time, event_type, n_trigger_pixels).
    pub fn write_triggers(&mut self, rows: &[TriggerRow]) -> Result<()> {
        let names = |list: &[&'static str]| list.iter().map(|n| ColumnMeta::new(n, "")).collect::<Vec<_>>();
        let subarray = names(&["obs_id", "event_id", "time", "tels_with_trigger", "event_type"]);
        let mut t = Table::<TriggerRow>::create(
            &ensure_groups(&self.file, "/dl1/event/subarray")?,
            "trigger",
            1024,
            &subarray,
        )?;
        super::hdf5_table::time_column_attrs(&t, 2)?;
        for r in rows {
            t.push(*r)?;
        }
        t.finish()?;
        let telescope = names(&["obs_id", "event_id", "tel_id", "time", "event_type", "n_trigger_pixels"]);
        let mut t = Table::<TelescopeTriggerRow>::create(
            &ensure_groups(&self.file, "/dl1/event/telescope")?,
            "trigger",
            1024,
            &telescope,
        )?;
        super::hdf5_table::time_column_attrs(&t, 3)?;
        for r in rows {
            t.push(r.telescope(self.tel_id))?;
        }
        t.finish()?;
        self.triggers.extend_from_slice(rows);
        Ok(())
    }

    /// Copies an observation run's row (`/configuration/observation/run`) into the file.
    pub fn write_observation(&mut self, observation: &super::r1::ObservationRow) -> Result<()> {
        self.tracked_radec_deg = Some((observation.ra_pnt, observation.dec_pnt));
        super::r1::write_observation_table(&self.file, observation)
    }

    /// Writes the DL1 settings (`sst1mflow::contract::dl1_settings`) as the root attribute
    /// [`SETTINGS_ATTR`], which the model contract compares.
    pub fn write_settings(&self, settings: &std::collections::BTreeMap<String, serde_json::Value>) -> Result<()> {
        let json = serde_json::to_string(settings)
            .map_err(|e| sst1mflow_base::error::Error::msg(format!("DL1 settings: {e}")))?;
        self.attribute(SETTINGS_ATTR, &json)
    }

    /// Sets a string attribute on the file's root.
    pub fn attribute(&self, name: &str, value: &str) -> Result<()> {
        super::hdf5_table::string_attr(&self.file, name, value)
    }

    pub fn write(&mut self, image: ImageRow, parameters: ParametersRow) -> Result<()> {
        if let Some(images) = &mut self.images {
            images.push(image)?;
        }
        self.write_parameters(parameters)
    }

    /// Writes a parameter row (parameters-only files).
    pub fn write_parameters(&mut self, parameters: ParametersRow) -> Result<()> {
        self.pointings.push((parameters.event_id, parameters.true_alt_tel, parameters.true_az_tel));
        self.parameters.push(parameters)
    }

    /// Writes what is buffered and closes the file; returns the number of events.
    /// Writes the pedestal monitoring table, one table at `/dl1/monitoring/telescope/pedestal`
    /// as sst1mpipe writes it (its `load_dl1_pedestals` reads that path as a table).
    pub fn write_pedestals(&mut self, rows: &[PedestalRow]) -> Result<()> {
        let mut t = Table::<PedestalRow>::create(
            &ensure_groups(&self.file, "/dl1/monitoring/telescope")?,
            "pedestal",
            16,
            &columns(PEDESTAL_COLUMNS),
        )?;
        for r in rows {
            t.push(*r)?;
        }
        t.finish()?;
        Ok(())
    }

    pub fn finish(self) -> Result<usize> {
        let with_images = self.images.is_some();
        if let Some(images) = self.images {
            images.finish()?;
        }
        if let Some((images, parameters)) = self.true_images {
            images.finish()?;
            parameters.finish()?;
        }
        let n = self.parameters.finish()?;
        // The events with a trigger time, in trigger order, with their pointing.
        let pointing: std::collections::HashMap<i64, (f64, f64)> =
            self.pointings.iter().map(|&(id, alt, az)| (id, (alt, az))).collect();
        let events: Vec<super::event_source::PointedEvent> = self
            .triggers
            .iter()
            .filter_map(|t| {
                pointing.get(&t.event_id).map(|&(alt_deg, az_deg)| super::event_source::PointedEvent {
                    time_mjd_tai: t.time,
                    alt_deg,
                    az_deg,
                })
            })
            .collect();
        if let Some(first) = self.triggers.first() {
            super::event_source::write(
                &self.file,
                &super::event_source::EventSourceInfo {
                    obs_id: first.obs_id,
                    tel_id: self.tel_id,
                    simulation: self.simulation,
                    with_images,
                    radec_deg: self.tracked_radec_deg,
                    events: &events,
                    pipeline_version: &self.pipeline_version,
                },
            )?;
        }
        super::hdf5_table::close_product_file(self.file)?;
        Ok(n)
    }
}

/// Root attribute holding the DL1 settings (`sst1mflow::contract::dl1_settings`) as JSON.
pub const SETTINGS_ATTR: &str = "sst1mflow_dl1_settings";

/// Reads one telescope's DL1 parameters back, a chunk at a time, with the file's provenance
/// attributes and simulation tables.
pub struct Dl1Reader {
    parameters: hdf5::Dataset,
    /// DL1 of another tool (ctapipe, sst1mpipe), read whole ([`super::dl1_import`]).
    imported: Option<Vec<ParametersRow>>,
    pub path: std::path::PathBuf,
    pub tel_id: u16,
    pub n_events: usize,
    pub activity_key: String,
    pub pipeline_version: String,
    /// The DL1 settings (empty when the file has none).
    pub settings: std::collections::BTreeMap<String, serde_json::Value>,
    pub showers: Vec<super::r1::ShowerRow>,
    pub run: Option<super::r1::SimulationRunRow>,
    pub shower_distributions: Vec<super::r1::ShowerDistribution>,
    pub observation: Option<super::r1::ObservationRow>,
}

impl Dl1Reader {
    pub fn open(path: &Path) -> Result<Dl1Reader> {
        use sst1mflow_base::error::Error;
        let bad = |what: &str| Error::msg(format!("{}: not a readable sst1mflow DL1 file: {what}", path.display()));
        let file = hdf5::File::open(path).map_err(|e| bad(&format!("cannot open ({e})")))?;
        if super::dl1_import::is_foreign(&file) {
            let i = super::dl1_import::read(path, &file)?;
            let (parameters, _) =
                super::hdf5_table::open_telescope_table(&file, "/dl1/event/telescope/parameters", std::iter::empty())
                    .map_err(|e| bad(&e))?;
            return Ok(Dl1Reader {
                parameters,
                n_events: i.rows.len(),
                imported: Some(i.rows),
                path: path.to_path_buf(),
                tel_id: i.tel_id,
                activity_key: String::new(),
                pipeline_version: i.software,
                settings: i.settings,
                showers: Vec::new(),
                run: i.run,
                shower_distributions: i.shower_distributions,
                observation: None,
            });
        }
        let (parameters, tel_id) = super::hdf5_table::open_telescope_table(
            &file,
            "/dl1/event/telescope/parameters",
            ParametersRow::column_names(),
        )
        .map_err(|e| bad(&e))?;
        let n_events = parameters.shape().first().copied().unwrap_or(0);
        let settings = match super::hdf5_table::read_string_attr(&file, SETTINGS_ATTR) {
            Some(json) => serde_json::from_str(&json).map_err(|e| bad(&format!("attribute {SETTINGS_ATTR}: {e}")))?,
            None => Default::default(),
        };
        let showers = match file.dataset("/simulation/event/subarray/shower") {
            Ok(d) => d.read_raw::<super::r1::ShowerRow>().map_err(|e| bad(&format!("shower table: {e}")))?,
            Err(_) => Vec::new(),
        };
        let run = super::r1::read_simulation_run(&file, path)?;
        let shower_distributions = super::r1::read_shower_distributions(&file, path)?;
        let observation = super::r1::read_observation_table(&file, path)?;
        Ok(Dl1Reader {
            shower_distributions,
            observation,
            parameters,
            imported: None,
            path: path.to_path_buf(),
            tel_id,
            n_events,
            activity_key: super::hdf5_table::read_string_attr(&file, "sst1mflow_activity_key").unwrap_or_default(),
            pipeline_version: super::hdf5_table::read_string_attr(&file, "sst1mflow_pipeline_version")
                .unwrap_or_default(),
            settings,
            showers,
            run,
        })
    }

    /// The file itself (for tables copied as stored).
    pub fn file(&self) -> Result<hdf5::File> {
        self.parameters.file().map_err(|e| super::hdf5_table::hdf5_error(self.path.display(), e))
    }

    /// Parameter rows `start..end`.
    pub fn read(&self, start: usize, end: usize) -> Result<Vec<ParametersRow>> {
        if let Some(rows) = &self.imported {
            return rows.get(start..end).map(<[ParametersRow]>::to_vec).ok_or_else(|| {
                sst1mflow_base::error::Error::msg(format!("{}: no parameter rows {start}..{end}", self.path.display()))
            });
        }
        self.parameters
            .read_slice_1d::<ParametersRowPacked, _>(start..end)
            .map(|a| a.iter().map(|&r| r.into()).collect())
            .map_err(|e| {
                sst1mflow_base::error::Error::msg(format!(
                    "{}: cannot read parameter rows {start}..{end}: {e}",
                    self.path.display()
                ))
            })
    }
}

/// sst1mpipe's pedestal counts of a camera-data DL1 (`/dl1/info`): (pedestal events, those
/// whose cleaned image has parameters); None when the file has no such table.
pub fn read_pedestal_counts(path: &Path) -> Result<Option<(i64, f64)>> {
    use super::hdf5_table::{read_shaped_table, ShapedColumn};
    let file = hdf5::File::open(path).map_err(|e| super::hdf5_table::hdf5_error(path.display(), e))?;
    let Ok(info) = file.dataset("/dl1/info") else { return Ok(None) };
    let bad = |e: sst1mflow_base::error::Error| {
        sst1mflow_base::error::Error::msg(format!("{}: /dl1/info: {e}", path.display()))
    };
    let (_, n) =
        read_shaped_table(&info, &["n_pedestal"], |_, d| d.is_empty().then_some(ShapedColumn::I64)).map_err(bad)?;
    let (_, s) = read_shaped_table(&info, &["n_survived_pedestals"], |_, d| d.is_empty().then_some(ShapedColumn::F64))
        .map_err(bad)?;
    Ok(match (n.first(), s.first()) {
        (Some(n), Some(s)) => Some((
            i64::from_le_bytes(n[..8].try_into().expect("8 bytes")),
            f64::from_le_bytes(s[..8].try_into().expect("8 bytes")),
        )),
        _ => None,
    })
}

/// Per row of the pedestal monitoring of a camera-data DL1 (`/dl1/monitoring/telescope/pedestal`):
/// the camera-mean of `pedestal_charge_std` (ADC), as sst1mpipe's `load_dl1_pedestals` users
/// average it. Empty when the file has no pedestal monitoring.
pub fn read_pedestal_std_means(path: &Path) -> Result<Vec<f64>> {
    use super::hdf5_table::{read_shaped_table, ShapedColumn};
    let file = hdf5::File::open(path).map_err(|e| super::hdf5_table::hdf5_error(path.display(), e))?;
    let Ok(table) = file.dataset("/dl1/monitoring/telescope/pedestal") else { return Ok(Vec::new()) };
    let (_, rows) = read_shaped_table(&table, &["pedestal_charge_std"], |_, d| match d {
        [n] => Some(ShapedColumn::F32s(*n)),
        _ => None,
    })
    .map_err(|e| sst1mflow_base::error::Error::msg(format!("{}: pedestal monitoring: {e}", path.display())))?;
    Ok(rows
        .iter()
        .map(|r| {
            let v: Vec<f64> = r.chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().expect("4")) as f64).collect();
            v.iter().sum::<f64>() / v.len().max(1) as f64
        })
        .collect())
}

/// sst1mpipe's per-wobble DL1 distributions file (`intensity_hist_<tel>_<obsid>.h5`, written by
/// its `extract_dl1_distributions` with astropy's `write_table_hdf5`): the intensity-rate
/// histogram and one-value tables, each a table astropy's `read_table_hdf5` reads.
pub struct Distributions<'a> {
    pub low: &'a [f64],
    pub high: &'a [f64],
    pub rate: &'a [f64],
    pub diff_rate: &'a [f64],
    pub t_elapsed_h: f64,
    pub zenith_deg: f64,
    pub timestamp: f64,
    pub survived_pedestal_frac: f64,
    pub recleaned_fraction: f64,
    pub nsb: f64,
}

pub fn write_distributions(path: &Path, activity_key: &str, pipeline_version: &str, d: &Distributions) -> Result<()> {
    use super::hdf5_table::{write_shaped_table, ColumnMeta, ShapedColumn};
    let file = super::hdf5_table::create_product_file(path, activity_key, pipeline_version)?;
    let rows: Vec<Vec<u8>> = (0..d.low.len())
        .map(|i| {
            let centre = 0.5 * (d.low[i] + d.high[i]);
            [d.low[i], d.high[i], centre, d.rate[i], d.diff_rate[i]].iter().flat_map(|x| x.to_le_bytes()).collect()
        })
        .collect();
    let cols: Vec<(ColumnMeta, ShapedColumn)> = ["low", "high", "center", "rate", "diff_rate"]
        .iter()
        .map(|n| (ColumnMeta::new(n, ""), ShapedColumn::F64))
        .collect();
    write_shaped_table(&file, "intensity_hist", &cols, &rows)?;
    for (name, value) in [
        ("t_elapsed", d.t_elapsed_h),
        ("zenith", d.zenith_deg),
        ("timestamp", d.timestamp),
        ("survived_pedestal_frac", d.survived_pedestal_frac),
        ("recleaned_fraction", d.recleaned_fraction),
        ("NSB", d.nsb),
    ] {
        write_shaped_table(
            &file,
            name,
            &[(ColumnMeta::new(name, ""), ShapedColumn::F64)],
            &[value.to_le_bytes().to_vec()],
        )?;
    }
    super::hdf5_table::close_product_file(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 4's promise: every column of the four feature lists and of `event_selection` in the
    /// shipped (sst1mpipe's) configs is a DL1 column, or a feature the models predict.
    #[test]
    fn every_feature_and_selection_column_of_the_default_configs_is_a_dl1_column() {
        for name in ["sst1mpipe_mc_config.json", "sst1mpipe_data_config.json"] {
            let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config").join(name);
            let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
            let lists = [
                "energy_regression_features",
                "particle_classification_features",
                "disp_regression_features",
                "disp_classification_features",
            ];
            let mut columns: Vec<String> = lists
                .iter()
                .flat_map(|l| config[l].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()))
                .collect();
            columns.extend(config["event_selection"].as_object().unwrap().keys().cloned());
            for column in columns {
                assert!(
                    ParametersRow::getter(&column).is_some()
                        || sst1mflow_science::reco::DERIVED_FEATURES.contains(&column.as_str()),
                    "{name}: {column} is not a DL1 column"
                );
            }
        }
    }
}
