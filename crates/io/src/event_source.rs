//! What ctapipe 0.17's `HDF5EventSource` (which sst1mpipe's stereo matching opens DL1 files
//! with) needs beside the event tables: the root attributes that declare a ctapipe data
//! product (`CTA PRODUCT DATA MODEL VERSION` v5.0.0, as 0.17's DataWriter writes,
//! `CTA PRODUCT DATA LEVELS`, `CTA PROCESS TYPE`), the observation configuration
//! (`/configuration/observation/{scheduling_block,observation_block}`) and the pointing
//! monitoring (`/dl1/monitoring/subarray/pointing`, `/dl1/monitoring/telescope/pointing/tel_NNN`),
//! with 0.17's column names, dtypes and units.
//!
//! Shaped after 0.17's writer, with the differences a deterministic product needs: no
//! creation times, activity UUIDs or user names among the attributes (the provenance is the
//! activity key), and the enum columns as plain integers (PyTables pickles the Python enum
//! class into an attribute; the reader then hands back the integer, which is all sst1mpipe
//! uses). Pointing rows are written where the pointing changes, as 0.17 does: one row for a
//! simulation, one per event for a tracked observation. A file without trigger times (the
//! embedded simulator's Monte Carlo) cannot be iterated by `HDF5EventSource` and gets none of
//! this, so that it does not claim to be one.
use super::hdf5_table::{ensure_groups, string_attr, time_column_attrs, ColumnMeta, Table};
use hdf5::types::FixedAscii;
use hdf5::H5Type;
use sst1mflow_base::error::{Error, Result};

/// The ctapipe data-model version these tables follow (0.17 writes v5.0.0 and reads v4/v5).
pub const DATA_MODEL_VERSION: &str = "v5.0.0";

/// One event's time and pointing, as the DL1 knows them.
#[derive(Clone, Copy, Debug)]
pub struct PointedEvent {
    /// MJD, TAI scale (the trigger table's time).
    pub time_mjd_tai: f64,
    pub alt_deg: f64,
    pub az_deg: f64,
}

/// What the tables describe.
pub struct EventSourceInfo<'a> {
    pub obs_id: i64,
    pub tel_id: u16,
    pub simulation: bool,
    pub with_images: bool,
    /// The tracked position of an observation (J2000 degrees), if known.
    pub radec_deg: Option<(f64, f64)>,
    /// The events in trigger order.
    pub events: &'a [PointedEvent],
    pub pipeline_version: &'a str,
}

#[derive(H5Type, Clone, Copy)]
#[repr(C)]
struct SchedulingBlockRow {
    sb_id: u64,
    sb_type: i64,
    producer_id: FixedAscii<10>,
    observing_mode: i64,
    pointing_mode: i64,
}

#[derive(H5Type, Clone, Copy)]
#[repr(C)]
struct ObservationBlockRow {
    obs_id: u64,
    sb_id: u64,
    producer_id: FixedAscii<10>,
    state: i64,
    subarray_pointing_lat: f64,
    subarray_pointing_lon: f64,
    subarray_pointing_frame: i64,
    scheduled_duration: f64,
    scheduled_start_time: f64,
    actual_start_time: f64,
    actual_duration: f64,
}

#[derive(H5Type, Clone, Copy)]
#[repr(C)]
struct SubarrayPointingRow {
    time: f64,
    array_azimuth: f32,
    array_altitude: f32,
    array_ra: f64,
    array_dec: f64,
}

#[derive(H5Type, Clone, Copy)]
#[repr(C)]
struct TelescopePointingRow {
    time: f64,
    azimuth: f32,
    altitude: f64,
}

// ctapipe's enum values (ctapipe.containers, 0.17).
const SCHEDULING_BLOCK_OBSERVATION: i64 = 0;
const OBSERVING_MODE_UNKNOWN: i64 = -1;
const POINTING_MODE_TRACK: i64 = 0;
const OBSERVATION_BLOCK_SUCCEEDED: i64 = 1;
const FRAME_ALTAZ: i64 = 0;
const FRAME_ICRS: i64 = 1;

fn ascii<const N: usize>(text: &str) -> Result<FixedAscii<N>> {
    FixedAscii::from_ascii(text.as_bytes()).map_err(|e| Error::msg(format!("{text:?} as a {N}-byte string: {e}")))
}

/// Writes the tables and root attributes (nothing when there are no events with times).
pub fn write(file: &hdf5::File, info: &EventSourceInfo) -> Result<()> {
    let Some(first) = info.events.first() else {
        return Ok(());
    };
    let obs_id = u64::try_from(info.obs_id).map_err(|_| Error::msg(format!("obs_id {} is negative", info.obs_id)))?;
    let producer = if info.simulation { "simulation" } else { "SST1M" };
    string_attr(file, "CTA PRODUCT DATA MODEL VERSION", DATA_MODEL_VERSION)?;
    let levels = if info.with_images { "DL1_IMAGES,DL1_PARAMETERS" } else { "DL1_PARAMETERS" };
    string_attr(file, "CTA PRODUCT DATA LEVELS", levels)?;
    string_attr(file, "CTA PROCESS TYPE", if info.simulation { "Simulation" } else { "Observation" })?;
    string_attr(file, "CTA ACTIVITY SOFTWARE NAME", "sst1mflow")?;
    string_attr(file, "CTA ACTIVITY SOFTWARE VERSION", info.pipeline_version)?;

    let observation = ensure_groups(file, "/configuration/observation")?;
    let mut sb = Table::<SchedulingBlockRow>::create(
        &observation,
        "scheduling_block",
        16,
        &[
            ColumnMeta::new("sb_id", ""),
            ColumnMeta::new("sb_type", ""),
            ColumnMeta::string("producer_id", 10),
            ColumnMeta::new("observing_mode", ""),
            ColumnMeta::new("pointing_mode", ""),
        ],
    )?;
    sb.push(SchedulingBlockRow {
        sb_id: obs_id,
        sb_type: SCHEDULING_BLOCK_OBSERVATION,
        producer_id: ascii(producer)?,
        observing_mode: OBSERVING_MODE_UNKNOWN,
        pointing_mode: POINTING_MODE_TRACK,
    })?;
    sb.finish()?;
    // The nominal direction: the tracked RA/Dec of an observation, else the first pointing.
    let (lat, lon, frame) = match info.radec_deg.filter(|(ra, dec)| ra.is_finite() && dec.is_finite()) {
        Some((ra, dec)) => (dec, ra, FRAME_ICRS),
        None => (first.alt_deg, first.az_deg, FRAME_ALTAZ),
    };
    let mut ob = Table::<ObservationBlockRow>::create(
        &observation,
        "observation_block",
        16,
        &[
            ColumnMeta::new("obs_id", ""),
            ColumnMeta::new("sb_id", ""),
            ColumnMeta::string("producer_id", 10),
            ColumnMeta::new("state", ""),
            ColumnMeta::new("subarray_pointing_lat", "deg"),
            ColumnMeta::new("subarray_pointing_lon", "deg"),
            ColumnMeta::new("subarray_pointing_frame", ""),
            ColumnMeta::new("scheduled_duration", "min"),
            ColumnMeta::new("scheduled_start_time", ""),
            ColumnMeta::new("actual_start_time", ""),
            ColumnMeta::new("actual_duration", "min"),
        ],
    )?;
    time_column_attrs(&ob, 8)?;
    time_column_attrs(&ob, 9)?;
    let last = info.events.last().unwrap_or(first);
    ob.push(ObservationBlockRow {
        obs_id,
        sb_id: obs_id,
        producer_id: ascii(producer)?,
        state: OBSERVATION_BLOCK_SUCCEEDED,
        subarray_pointing_lat: lat,
        subarray_pointing_lon: lon,
        subarray_pointing_frame: frame,
        scheduled_duration: f64::NAN,
        scheduled_start_time: first.time_mjd_tai,
        actual_start_time: first.time_mjd_tai,
        actual_duration: if info.simulation {
            f64::NAN
        } else {
            (last.time_mjd_tai - first.time_mjd_tai) * 24.0 * 60.0
        },
    })?;
    ob.finish()?;

    let mut array = Table::<SubarrayPointingRow>::create(
        &ensure_groups(file, "/dl1/monitoring/subarray")?,
        "pointing",
        1024,
        &[
            ColumnMeta::new("time", ""),
            ColumnMeta::new("array_azimuth", "rad"),
            ColumnMeta::new("array_altitude", "rad"),
            ColumnMeta::new("array_ra", "rad"),
            ColumnMeta::new("array_dec", "rad"),
        ],
    )?;
    time_column_attrs(&array, 0)?;
    let mut telescope = Table::<TelescopePointingRow>::create(
        &ensure_groups(file, "/dl1/monitoring/telescope/pointing")?,
        &format!("tel_{:03}", info.tel_id),
        1024,
        &[ColumnMeta::new("time", ""), ColumnMeta::new("azimuth", "rad"), ColumnMeta::new("altitude", "rad")],
    )?;
    time_column_attrs(&telescope, 0)?;
    let (ra, dec) = info.radec_deg.map(|(ra, dec)| (ra.to_radians(), dec.to_radians())).unwrap_or((f64::NAN, f64::NAN));
    let mut previous: Option<(u64, u64)> = None;
    for e in info.events {
        // The same test as ctapipe's: a row where the pointing differs from the last one written.
        let pointing = (e.alt_deg.to_bits(), e.az_deg.to_bits());
        if previous == Some(pointing) {
            continue;
        }
        previous = Some(pointing);
        let (alt, az) = (e.alt_deg.to_radians(), e.az_deg.to_radians());
        array.push(SubarrayPointingRow {
            time: e.time_mjd_tai,
            array_azimuth: az as f32,
            array_altitude: alt as f32,
            array_ra: ra,
            array_dec: dec,
        })?;
        telescope.push(TelescopePointingRow { time: e.time_mjd_tai, azimuth: az as f32, altitude: alt })?;
    }
    array.finish()?;
    telescope.finish()?;
    Ok(())
}
