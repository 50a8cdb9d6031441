//! Our R1 file: calibrated waveforms (p.e. per sample) of one telescope, with the simulation
//! truth when the events are simulated. Layout:
//!
//! | path | content |
//! |---|---|
//! | `/r1/event/telescope/tel_NNN` | `event_id` (u64), `waveform` (i16[1296·50], pixel-major, in units of 1/16 p.e.: attribute `waveform_scale_pe` = 0.0625) |
//! | `/simulation/event/subarray/shower` | `event_id`, `true_energy` (TeV), `true_core_x`, `true_core_y`, `true_impact` (m), `true_camera_x`, `true_camera_y` (m), `true_h_max` (m), `true_shower_primary_id`, `n_photoelectrons` |
//! | `/configuration/simulation/run` | one row (ctapipe's names): `n_showers` simulated and their `shower_reuse` (thrown = the product), `energy_range_min`/`max` (TeV), `spectral_index`, `min`/`max_scatter_range` (m), `min`/`max_viewcone_radius` (deg), `source_offset` (deg), `nsb_rate` (GHz), `seed`, `pointing_alt`/`az` (deg) (Monte Carlo productions) |
//! | `/simulation/service/shower_distribution` | Monte Carlo productions: ctapipe's table of sim_telarray's thrown-shower histogram ([`ShowerDistribution`]): `obs_id` (i32, as ctapipe), `hist_id`, `n_entries`, `bins_energy` (TeV), `bins_core_dist` (m), `histogram` (f32, energy × core) |
//! | `/r1/event/subarray/trigger` | observation runs: `event_id`, `time` (Unix s, UTC), `pointing_alt`, `pointing_az` (deg) per event |
//! | `/configuration/observation/run` | observation runs, one row ([`ObservationRow`]): obs id, start and stop, pointing and target (RA/Dec), wobble, NSB, and the simulated source and background |
//!
//! Root attributes: `sst1mflow_activity_key`, `sst1mflow_pipeline_version`, `tel_id`,
//! `waveform_scale_pe`. Every table is readable with pandas/PyTables/h5py (see
//! [`super::hdf5_table`]).
//!
//! Waveforms are quantised to 1/16 p.e. (rounding, quantisation noise 0.018 p.e. rms, far below
//! the electronic noise) and clamped to ±2047 p.e. per sample, like a digitiser: noisy float32
//! samples hardly compress, int16 ones with shuffle + deflate do.
use super::hdf5_table::{
    ensure_groups, hdf5_error, read_shaped_table, write_shaped_table, ColumnMeta, ShapedColumn, Table,
};
use hdf5::H5Type;
use sst1mflow_base::error::{Error, Result};
use sst1mflow_science::instrument::{camera::N_PIXELS, N_SAMPLES};
pub use sst1mflow_science::irf::shower_distribution::ShowerDistribution;
use std::path::Path;

pub const WAVEFORM_LEN: usize = N_PIXELS * N_SAMPLES;

/// p.e. per stored count.
pub const WAVEFORM_SCALE_PE: f32 = 1.0 / 16.0;

#[derive(H5Type, Clone, Copy)]
#[repr(C)]
pub struct R1Row {
    pub event_id: u64,
    pub waveform: [i16; WAVEFORM_LEN],
}

impl R1Row {
    /// The waveform in p.e. per sample.
    pub fn waveform_pe(&self, out: &mut [f32]) {
        for (o, &v) in out.iter_mut().zip(self.waveform.iter()) {
            *o = v as f32 * WAVEFORM_SCALE_PE;
        }
    }
}

#[derive(H5Type, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct ShowerRow {
    pub event_id: u64,
    pub true_energy: f64,
    pub true_core_x: f64,
    pub true_core_y: f64,
    pub true_impact: f64,
    pub true_camera_x: f64,
    pub true_camera_y: f64,
    pub true_h_max: f64,
    pub true_shower_primary_id: u16,
    pub n_photoelectrons: u64,
}

const SHOWER_COLUMNS: &[(&str, &str)] = &[
    ("event_id", ""),
    ("true_energy", "TeV"),
    ("true_core_x", "m"),
    ("true_core_y", "m"),
    ("true_impact", "m"),
    ("true_camera_x", "m"),
    ("true_camera_y", "m"),
    ("true_h_max", "m"),
    ("true_shower_primary_id", ""),
    ("n_photoelectrons", ""),
];

#[derive(H5Type, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct SimulationRunRow {
    /// Showers simulated (CORSIKA's showers, each used `shower_reuse` times), as ctapipe.
    pub n_showers: u64,
    pub shower_reuse: u64,
    pub energy_range_min: f64,
    pub energy_range_max: f64,
    pub spectral_index: f64,
    pub min_scatter_range: f64,
    pub max_scatter_range: f64,
    pub min_viewcone_radius: f64,
    pub max_viewcone_radius: f64,
    pub source_offset: f64,
    pub nsb_rate: f64,
    pub seed: u64,
    /// Telescope pointing (deg).
    pub pointing_alt: f64,
    pub pointing_az: f64,
}

impl SimulationRunRow {
    /// The thrown-event description IRFs and weights need ([`sst1mflow_science::irf::SimulationInfo`]).
    pub fn simulation_info(&self) -> sst1mflow_science::irf::SimulationInfo {
        sst1mflow_science::irf::SimulationInfo {
            n_showers: self.n_showers as f64 * self.shower_reuse as f64,
            energy_min_tev: self.energy_range_min,
            energy_max_tev: self.energy_range_max,
            max_impact_m: self.max_scatter_range,
            spectral_index: self.spectral_index,
            viewcone_min_deg: self.min_viewcone_radius,
            viewcone_max_deg: self.max_viewcone_radius,
        }
    }
}

const RUN_COLUMNS: &[(&str, &str)] = &[
    ("n_showers", ""),
    ("shower_reuse", ""),
    ("energy_range_min", "TeV"),
    ("energy_range_max", "TeV"),
    ("spectral_index", ""),
    ("min_scatter_range", "m"),
    ("max_scatter_range", "m"),
    ("min_viewcone_radius", "deg"),
    ("max_viewcone_radius", "deg"),
    ("source_offset", "deg"),
    ("nsb_rate", "GHz"),
    ("seed", ""),
    ("pointing_alt", "deg"),
    ("pointing_az", "deg"),
];

/// The time and pointing of one event of an observation run.
#[derive(H5Type, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct TriggerRow {
    pub event_id: u64,
    /// Unix seconds (UTC), like sst1mpipe's `local_time`.
    pub time: f64,
    pub pointing_alt: f64,
    pub pointing_az: f64,
}

const TRIGGER_COLUMNS: &[(&str, &str)] =
    &[("event_id", ""), ("time", "s"), ("pointing_alt", "deg"), ("pointing_az", "deg")];

/// What an observation run was: when, where the telescope pointed, what it looked at, and (for
/// a simulated run) what the sky held. It travels from R1 through DL1 and DL2 to DL3.
#[derive(H5Type, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct ObservationRow {
    pub obs_id: i64,
    /// Start and stop of the run, Unix seconds (UTC).
    pub tstart: f64,
    pub tstop: f64,
    /// Tracked position (the wobble position), J2000 degrees.
    pub ra_pnt: f64,
    pub dec_pnt: f64,
    /// The target, J2000 degrees.
    pub target_ra: f64,
    pub target_dec: f64,
    pub wobble_offset: f64,
    pub wobble_angle: f64,
    /// Night-sky background, GHz per pixel.
    pub nsb_rate: f64,
    /// Simulated source: dN/dE = source_amplitude (E/TeV)^source_index, cm⁻² s⁻¹ TeV⁻¹ (0
    /// for real data).
    pub source_amplitude: f64,
    pub source_index: f64,
    /// Simulated protons: dN/dE dΩ = proton_amplitude (E/TeV)^proton_index, cm⁻² s⁻¹ TeV⁻¹ sr⁻¹.
    pub proton_amplitude: f64,
    pub proton_index: f64,
}

const OBSERVATION_COLUMNS: &[(&str, &str)] = &[
    ("obs_id", ""),
    ("tstart", "s"),
    ("tstop", "s"),
    ("ra_pnt", "deg"),
    ("dec_pnt", "deg"),
    ("target_ra", "deg"),
    ("target_dec", "deg"),
    ("wobble_offset", "deg"),
    ("wobble_angle", "deg"),
    ("nsb_rate", "GHz"),
    ("source_amplitude", "cm**-2 s**-1 TeV**-1"),
    ("source_index", ""),
    ("proton_amplitude", "cm**-2 s**-1 TeV**-1 sr**-1"),
    ("proton_index", ""),
];

pub const OBSERVATION_PATH: &str = "/configuration/observation/run";

/// Writes the observation row into a product file (`/configuration/observation/run`).
pub fn write_observation_table(file: &hdf5::File, observation: &ObservationRow) -> Result<()> {
    let mut t =
        Table::create(&ensure_groups(file, "/configuration/observation")?, "run", 1, &columns(OBSERVATION_COLUMNS))?;
    t.push(*observation)?;
    t.finish()?;
    Ok(())
}

/// Whether a product file is Monte Carlo (it has the thrown-event row); None when it cannot
/// be opened.
pub fn is_simulation_file(path: &Path) -> Option<bool> {
    let file = hdf5::File::open(path).ok()?;
    Some(file.dataset("/configuration/simulation/run").is_ok())
}

/// Reads the thrown-event row of a product file (`/configuration/simulation/run`), if it has one.
pub fn read_simulation_run(file: &hdf5::File, path: &Path) -> Result<Option<SimulationRunRow>> {
    match file.dataset("/configuration/simulation/run") {
        Ok(d) => Ok(d
            .read_raw::<SimulationRunRow>()
            .map_err(|e| Error::msg(format!("{}: unreadable simulation run table: {e}", path.display())))?
            .first()
            .copied()),
        Err(_) => Ok(None),
    }
}

pub const SHOWER_DISTRIBUTION_PATH: &str = "/simulation/service/shower_distribution";

const SHOWER_DISTRIBUTION_COLUMNS: [&str; 6] =
    ["obs_id", "hist_id", "n_entries", "bins_energy", "bins_core_dist", "histogram"];

/// Writes ctapipe's thrown-shower table (`/simulation/service/shower_distribution`), one row
/// per histogram; nothing when there is none.
pub fn write_shower_distributions(file: &hdf5::File, histograms: &[ShowerDistribution]) -> Result<()> {
    let Some(first) = histograms.first() else { return Ok(()) };
    let shape = |h: &ShowerDistribution| (h.n_bins_energy(), h.n_bins_core());
    if let Some(h) = histograms.iter().find(|h| shape(h) != shape(first)) {
        return Err(Error::msg(format!(
            "thrown-shower histograms of different binning ({:?} and {:?}) cannot share one table",
            shape(first),
            shape(h)
        )));
    }
    let (n_energy, n_core) = shape(first);
    let columns = [
        (ColumnMeta::new("obs_id", ""), ShapedColumn::I32),
        (ColumnMeta::new("hist_id", ""), ShapedColumn::I64),
        (ColumnMeta::new("n_entries", ""), ShapedColumn::I64),
        (ColumnMeta::new("bins_energy", "TeV"), ShapedColumn::F64s(n_energy + 1)),
        (ColumnMeta::new("bins_core_dist", "m"), ShapedColumn::F64s(n_core + 1)),
        (ColumnMeta::new("histogram", ""), ShapedColumn::F32Matrix(n_energy, n_core)),
    ];
    let rows: Vec<Vec<u8>> = histograms
        .iter()
        .map(|h| {
            let mut row = Vec::new();
            row.extend_from_slice(&(h.obs_id as i32).to_le_bytes());
            for v in [h.hist_id, h.n_entries] {
                row.extend_from_slice(&v.to_le_bytes());
            }
            for v in h.bins_energy_tev.iter().chain(&h.bins_core_dist_m) {
                row.extend_from_slice(&v.to_le_bytes());
            }
            for v in &h.counts {
                row.extend_from_slice(&v.to_le_bytes());
            }
            row
        })
        .collect();
    write_shaped_table(&ensure_groups(file, "/simulation/service")?, "shower_distribution", &columns, &rows)
}

/// Reads ctapipe's thrown-shower table of a product file (ours or ctapipe's), if it has one.
pub fn read_shower_distributions(file: &hdf5::File, path: &Path) -> Result<Vec<ShowerDistribution>> {
    let Ok(dataset) = file.dataset(SHOWER_DISTRIBUTION_PATH) else { return Ok(Vec::new()) };
    let bad = |e: String| Error::msg(format!("{}: {SHOWER_DISTRIBUTION_PATH}: {e}", path.display()));
    let (shapes, rows) = read_shaped_table(&dataset, &SHOWER_DISTRIBUTION_COLUMNS, |name, dims| match (name, dims) {
        ("obs_id", []) => Some(ShapedColumn::I32),
        ("hist_id" | "n_entries", []) => Some(ShapedColumn::I64),
        ("bins_energy" | "bins_core_dist", [n]) if *n >= 2 => Some(ShapedColumn::F64s(*n)),
        ("histogram", [r, c]) => Some(ShapedColumn::F32Matrix(*r, *c)),
        _ => None,
    })
    .map_err(|e| bad(e.to_string()))?;
    let (ShapedColumn::F64s(n_energy_edges), ShapedColumn::F64s(n_core_edges), ShapedColumn::F32Matrix(r, c)) =
        (shapes[3], shapes[4], shapes[5])
    else {
        return Err(bad("unexpected column shapes".into()));
    };
    if (r + 1, c + 1) != (n_energy_edges, n_core_edges) {
        return Err(bad(format!(
            "a {r} × {c} histogram with {n_energy_edges} energy and {n_core_edges} core-distance edges"
        )));
    }
    let f64s = |b: &[u8]| -> Vec<f64> {
        b.chunks_exact(8).map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes"))).collect()
    };
    let i64_at = |row: &[u8], k: usize| i64::from_le_bytes(row[k..k + 8].try_into().expect("8 bytes"));
    let increasing = |v: &[f64]| v.windows(2).all(|w| w[0] < w[1]) && v.iter().all(|x| x.is_finite());
    rows.iter()
        .map(|row| {
            let core_at = 20 + 8 * n_energy_edges;
            let counts_at = core_at + 8 * n_core_edges;
            let (bins_energy_tev, bins_core_dist_m) = (f64s(&row[20..core_at]), f64s(&row[core_at..counts_at]));
            if !increasing(&bins_energy_tev) || !increasing(&bins_core_dist_m) {
                return Err(bad("bin edges not increasing".into()));
            }
            Ok(ShowerDistribution {
                obs_id: i32::from_le_bytes(row[0..4].try_into().expect("4 bytes")) as i64,
                hist_id: i64_at(row, 4),
                n_entries: i64_at(row, 12),
                bins_energy_tev,
                bins_core_dist_m,
                counts: row[counts_at..]
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes(b.try_into().expect("4 bytes")))
                    .collect(),
            })
        })
        .collect()
}

/// Reads the observation row of a product file, if it has one.
pub fn read_observation_table(file: &hdf5::File, path: &Path) -> Result<Option<ObservationRow>> {
    match file.dataset(OBSERVATION_PATH) {
        Ok(d) => Ok(d
            .read_raw::<ObservationRow>()
            .map_err(|e| Error::msg(format!("{}: unreadable {OBSERVATION_PATH}: {e}", path.display())))?
            .first()
            .copied()),
        Err(_) => Ok(None),
    }
}

/// How the run came about: a Monte Carlo production (thrown-event information) or an
/// observation run.
pub enum RunInfo {
    Simulation(SimulationRunRow),
    Observation(ObservationRow),
}

fn columns(spec: &'static [(&'static str, &'static str)]) -> Vec<ColumnMeta<'static>> {
    spec.iter().map(|&(name, unit)| ColumnMeta::new(name, unit)).collect()
}

/// The telescope of an R1 file (its `tel_id` root attribute), without opening its tables.
pub fn read_tel_id(path: &Path) -> Result<u16> {
    let name = path.display();
    let file = hdf5::File::open(path).map_err(|e| Error::msg(format!("{name}: {e}")))?;
    file.attr("tel_id").and_then(|a| a.read_scalar::<u16>()).map_err(|e| Error::msg(format!("{name}: tel_id: {e}")))
}

pub fn shower_columns() -> Vec<ColumnMeta<'static>> {
    columns(SHOWER_COLUMNS)
}

pub fn run_columns() -> Vec<ColumnMeta<'static>> {
    columns(RUN_COLUMNS)
}

/// Writes the simulation truth into a product file: the shower table
/// (`/simulation/event/subarray/shower`) and the thrown-event run row
/// (`/configuration/simulation/run`); nothing when there is neither. The thrown-shower
/// histograms go to `/simulation/service/shower_distribution` when there are any.
pub fn write_simulation_tables(
    file: &hdf5::File,
    showers: &[ShowerRow],
    run: Option<SimulationRunRow>,
    shower_distributions: &[ShowerDistribution],
) -> Result<()> {
    write_shower_distributions(file, shower_distributions)?;
    if showers.is_empty() && run.is_none() {
        return Ok(());
    }
    let mut table =
        Table::create(&ensure_groups(file, "/simulation/event/subarray")?, "shower", 1024, &shower_columns())?;
    for s in showers {
        table.push(*s)?;
    }
    table.finish()?;
    if let Some(run) = run {
        let mut t = Table::create(&ensure_groups(file, "/configuration/simulation")?, "run", 1, &run_columns())?;
        t.push(run)?;
        t.finish()?;
    }
    Ok(())
}

/// Streams simulated events into an R1 file.
pub struct R1Writer {
    file: hdf5::File,
    events: Table<R1Row>,
    showers: Table<ShowerRow>,
    triggers: Option<Table<TriggerRow>>,
}

impl R1Writer {
    /// Records the telescope's ground position (m), for a telescope not at the origin.
    pub fn set_tel_position(&self, position_m: [f64; 3]) -> Result<()> {
        self.file
            .new_attr::<f64>()
            .shape(3)
            .create(TEL_POSITION_ATTR)
            .and_then(|a| a.write_raw(&position_m))
            .map_err(|e| hdf5_error("cannot write tel_position_m", e))
    }

    /// `observation`: the file is an observation run; every event then needs its trigger row.
    pub fn create(
        path: &Path,
        tel_id: u16,
        observation: bool,
        activity_key: &str,
        pipeline_version: &str,
    ) -> Result<R1Writer> {
        let file = super::hdf5_table::create_product_file(path, activity_key, pipeline_version)?;
        file.new_attr::<u16>()
            .create("tel_id")
            .and_then(|a| a.write_scalar(&tel_id))
            .map_err(|e| hdf5_error("cannot write tel_id", e))?;
        file.new_attr::<f32>()
            .create("waveform_scale_pe")
            .and_then(|a| a.write_scalar(&WAVEFORM_SCALE_PE))
            .map_err(|e| hdf5_error("cannot write waveform_scale_pe", e))?;
        let events = Table::create(
            &ensure_groups(&file, "/r1/event/telescope")?,
            &format!("tel_{tel_id:03}"),
            4,
            &[ColumnMeta::new("event_id", ""), ColumnMeta::new("waveform", "")],
        )?;
        let showers = Table::create(
            &ensure_groups(&file, "/simulation/event/subarray")?,
            "shower",
            1024,
            &columns(SHOWER_COLUMNS),
        )?;
        let triggers = if observation {
            Some(Table::create(
                &ensure_groups(&file, "/r1/event/subarray")?,
                "trigger",
                1024,
                &columns(TRIGGER_COLUMNS),
            )?)
        } else {
            None
        };
        Ok(R1Writer { file, events, showers, triggers })
    }

    pub fn write(
        &mut self,
        event_id: u64,
        waveform: &[f32],
        shower: ShowerRow,
        trigger: Option<TriggerRow>,
    ) -> Result<()> {
        match (&mut self.triggers, trigger) {
            (Some(t), Some(row)) => t.push(row)?,
            (None, None) => {}
            _ => return Err(Error::msg("R1 writer: trigger rows are for observation runs, and needed there")),
        }
        let mut row = R1Row { event_id, waveform: [0; WAVEFORM_LEN] };
        for (o, &v) in row.waveform.iter_mut().zip(waveform) {
            *o = (v / WAVEFORM_SCALE_PE).round().clamp(-32767.0, 32767.0) as i16;
        }
        self.events.push(row)?;
        self.showers.push(shower)
    }

    /// Writes the thrown-shower histogram of a Monte Carlo production.
    pub fn write_shower_distributions(&self, histograms: &[ShowerDistribution]) -> Result<()> {
        write_shower_distributions(&self.file, histograms)
    }

    pub fn finish(self, run: RunInfo) -> Result<usize> {
        let n = self.events.finish()?;
        self.showers.finish()?;
        if let Some(t) = self.triggers {
            t.finish()?;
        }
        match run {
            RunInfo::Simulation(run) => {
                let mut t = Table::create(
                    &ensure_groups(&self.file, "/configuration/simulation")?,
                    "run",
                    1,
                    &columns(RUN_COLUMNS),
                )?;
                t.push(run)?;
                t.finish()?;
            }
            RunInfo::Observation(o) => write_observation_table(&self.file, &o)?,
        }
        super::hdf5_table::close_product_file(self.file)?;
        Ok(n)
    }
}

/// Reads an R1 file back, in chunks.
pub struct R1Reader {
    events: hdf5::Dataset,
    pub tel_id: u16,
    pub n_events: usize,
    pub showers: Vec<ShowerRow>,
    pub run: Option<SimulationRunRow>,
    pub shower_distributions: Vec<ShowerDistribution>,
    /// Observation runs: the run and each event's time and pointing (by event id order).
    pub observation: Option<ObservationRow>,
    pub triggers: Vec<TriggerRow>,
    /// Where the telescope stands in the ground frame (the origin unless the file says).
    pub tel_position_m: [f64; 3],
    path: std::path::PathBuf,
}

/// The file attribute holding the telescope's ground position (m, x north, y west, z up)
/// when it is not at the origin (a stereo production's telescopes stand where the array's do).
const TEL_POSITION_ATTR: &str = "tel_position_m";

impl R1Reader {
    pub fn open(path: &Path) -> Result<R1Reader> {
        let bad = |what: &str, e: hdf5::Error| {
            Error::msg(format!("{}: not a readable sst1mflow R1 file ({what}: {e})", path.display()))
        };
        let file = hdf5::File::open(path).map_err(|e| bad("open", e))?;
        let tel_id: u16 = file.attr("tel_id").and_then(|a| a.read_scalar()).map_err(|e| bad("tel_id attribute", e))?;
        let scale: f32 = file
            .attr("waveform_scale_pe")
            .and_then(|a| a.read_scalar())
            .map_err(|e| bad("waveform_scale_pe attribute", e))?;
        if scale != WAVEFORM_SCALE_PE {
            return Err(Error::msg(format!(
                "{}: waveform scale {scale} p.e./count, this sst1mflow reads {WAVEFORM_SCALE_PE}",
                path.display()
            )));
        }
        let events =
            file.dataset(&format!("/r1/event/telescope/tel_{tel_id:03}")).map_err(|e| bad("event table", e))?;
        let n_events = events.shape().first().copied().unwrap_or(0);
        let showers = match file.dataset("/simulation/event/subarray/shower") {
            Ok(d) => d.read_raw::<ShowerRow>().map_err(|e| bad("shower table", e))?,
            Err(_) => Vec::new(),
        };
        let run = read_simulation_run(&file, path)?;
        let shower_distributions = read_shower_distributions(&file, path)?;
        let observation = read_observation_table(&file, path)?;
        let triggers = match file.dataset("/r1/event/subarray/trigger") {
            Ok(d) => d.read_raw::<TriggerRow>().map_err(|e| bad("trigger table", e))?,
            Err(_) => Vec::new(),
        };
        let tel_position_m = match file.attr(TEL_POSITION_ATTR) {
            Ok(a) => {
                let v: Vec<f64> = a.read_raw().map_err(|e| bad("tel_position_m attribute", e))?;
                <[f64; 3]>::try_from(v.as_slice()).ok().filter(|p| p.iter().all(|x| x.is_finite())).ok_or_else(
                    || Error::msg(format!("{}: tel_position_m is not three finite numbers", path.display())),
                )?
            }
            Err(_) => [0.0; 3],
        };
        if observation.is_some() && triggers.len() != n_events {
            return Err(Error::msg(format!(
                "{}: observation run with {n_events} events but {} trigger rows",
                path.display(),
                triggers.len()
            )));
        }
        Ok(R1Reader {
            events,
            tel_id,
            n_events,
            showers,
            run,
            shower_distributions,
            observation,
            triggers,
            tel_position_m,
            path: path.to_path_buf(),
        })
    }

    /// Events `start..end` (one chunk of memory at a time).
    pub fn read(&self, start: usize, end: usize) -> Result<Vec<R1Row>> {
        self.events
            .read_slice_1d::<R1Row, _>(start..end)
            .map(|a| a.to_vec())
            .map_err(|e| Error::msg(format!("{}: cannot read events {start}..{end}: {e}", self.path.display())))
    }
}
