//! DL2 files: one telescope's events with the reconstruction, in the layout sst1mpipe's
//! `dl1_dl2` writes (`/dl2/event/telescope/parameters/tel_NNN`: every DL1 parameter column
//! followed by `log_reco_energy`, `reco_energy`, `reco_disp_*`, `gammaness`, `reco_src_x/y`,
//! `reco_alt/az`, `reco_ra/dec`), plus the simulation tables of MC files (which IRFs need) and
//! the instrument description. Unlike sst1mpipe, the DL1 images are not copied along.
//!
//! Root attributes: the activity key and pipeline version (every product has them), the DL1
//! settings of the events (`sst1mflow_dl1_settings`), the models applied
//! (`sst1mflow_models`: role → file hash, training activity, pipeline version), and, when the
//! contract between models and DL1 was overridden, what differed (`sst1mflow_contract_override`).
//!
//! For sst1mpipe's readers: `/dl2/info` (its software version and models used, as its DL2
//! merge for DL3 reads them) and the DL1's pointing monitoring, copied as stored.
use super::dl1::{Dl2Row, Dl2RowPacked, DL2_COLUMNS};
use super::hdf5_table::{create_product_file, ensure_groups, string_attr, ColumnMeta, Table};
use super::r1::{ObservationRow, ShowerRow, SimulationRunRow};
use sst1mflow_base::error::Result;
use sst1mflow_science::instrument::TelescopeDescription;
use std::path::Path;

/// sst1mpipe's `DL2_info` row.
#[derive(hdf5::H5Type, Clone, Copy)]
#[repr(C)]
#[allow(non_snake_case)]
struct Dl2InfoRow {
    sst1mpipe_version: hdf5::types::FixedAscii<68>,
    RF_used: hdf5::types::FixedAscii<256>,
}

pub struct Dl2Writer {
    file: hdf5::File,
    events: Table<Dl2Row>,
}

impl Dl2Writer {
    /// A DL2 file of `telescope` (the description of the DL1 it comes from).
    pub fn create(
        path: &Path,
        telescope: &TelescopeDescription,
        activity_key: &str,
        pipeline_version: &str,
    ) -> Result<Dl2Writer> {
        let tel_id = telescope.tel_id;
        let file = create_product_file(path, activity_key, pipeline_version)?;
        super::instrument::write_instrument(&file, telescope)?;
        let columns: Vec<ColumnMeta> = DL2_COLUMNS.iter().map(|&(n, u)| ColumnMeta::new(n, u)).collect();
        let events = Table::create(
            &ensure_groups(&file, "/dl2/event/telescope/parameters")?,
            &format!("tel_{tel_id:03}"),
            1024,
            &columns,
        )?;
        Ok(Dl2Writer { file, events })
    }

    pub fn attribute(&self, name: &str, value: &str) -> Result<()> {
        string_attr(&self.file, name, value)
    }

    pub fn write(&mut self, row: Dl2Row) -> Result<()> {
        self.events.push(row)
    }

    /// Copies the simulation truth (shower table, thrown-event run row and histograms).
    pub fn write_simulation(
        &mut self,
        showers: &[ShowerRow],
        run: Option<SimulationRunRow>,
        shower_distributions: &[super::r1::ShowerDistribution],
    ) -> Result<()> {
        super::r1::write_simulation_tables(&self.file, showers, run, shower_distributions)
    }

    /// Writes sst1mpipe's `/dl2/info` (its `DL2_info`: the software version and the models
    /// used), which its DL2 merge for DL3 reads.
    pub fn write_info(&self, software_version: &str, rf_used: &str) -> Result<()> {
        let mut t = Table::<Dl2InfoRow>::create(
            &ensure_groups(&self.file, "/dl2")?,
            "info",
            1,
            &[ColumnMeta::string("sst1mpipe_version", 68), ColumnMeta::string("RF_used", 256)],
        )?;
        t.push(Dl2InfoRow {
            sst1mpipe_version: super::dl1::fixed_ascii(software_version),
            RF_used: super::dl1::fixed_ascii(rf_used),
        })?;
        t.finish()?;
        Ok(())
    }

    /// Copies ctapipe's pointing monitoring of a DL1 file (`/dl1/monitoring/subarray/pointing`,
    /// `/dl1/monitoring/telescope/pointing/tel_NNN`), which sst1mpipe's DL2 merge reads the
    /// tracked RA/Dec from; nothing when the DL1 has none.
    pub fn copy_pointing_monitoring(&self, dl1: &hdf5::File, tel_id: u16) -> Result<()> {
        for path in [
            "/dl1/monitoring/subarray/pointing".to_string(),
            format!("/dl1/monitoring/telescope/pointing/tel_{tel_id:03}"),
        ] {
            super::hdf5_table::copy_dataset(dl1, &self.file, &path)?;
        }
        Ok(())
    }

    /// Copies an observation run's row.
    pub fn write_observation(&mut self, observation: &ObservationRow) -> Result<()> {
        super::r1::write_observation_table(&self.file, observation)
    }

    pub fn finish(self) -> Result<usize> {
        let n = self.events.finish()?;
        super::hdf5_table::close_product_file(self.file)?;
        Ok(n)
    }
}

/// The stereo DL2 path (sst1mpipe's: `/dl2/event/telescope/parameters/stereo`).
pub const STEREO_DL2_GROUP: &str = "/dl2/event/telescope/parameters";

/// A stereo DL2 file: sst1mpipe's combined table `/dl2/event/telescope/parameters/stereo`
/// (columns chosen by the stage: their names carry the telescope ids), with the Monte Carlo or
/// observation tables, `/dl2/info` and the pointing monitoring of the first telescope's DL2.
pub struct StereoDl2Writer {
    file: hdf5::File,
}

impl StereoDl2Writer {
    pub fn create(path: &Path, activity_key: &str, pipeline_version: &str) -> Result<StereoDl2Writer> {
        Ok(StereoDl2Writer { file: create_product_file(path, activity_key, pipeline_version)? })
    }

    pub fn attribute(&self, name: &str, value: &str) -> Result<()> {
        string_attr(&self.file, name, value)
    }

    pub fn write_events(&self, columns: &[super::hdf5_table::NamedColumn]) -> Result<()> {
        super::hdf5_table::write_named_columns(&ensure_groups(&self.file, STEREO_DL2_GROUP)?, "stereo", columns)
    }

    /// Copies the first telescope's run tables: the thrown showers (Monte Carlo) or the
    /// observation row, `/dl2/info` and the pointing monitoring.
    pub fn copy_run_tables(&self, first: &Dl2Reader, observation: Option<&ObservationRow>) -> Result<()> {
        super::r1::write_simulation_tables(&self.file, &[], first.run, &first.shower_distributions)?;
        if let Some(o) = observation {
            super::r1::write_observation_table(&self.file, o)?;
        }
        let src = hdf5::File::open(&first.path).map_err(|e| super::hdf5_table::hdf5_error(first.path.display(), e))?;
        for path in ["/dl2/info", "/dl1/monitoring/subarray/pointing"] {
            super::hdf5_table::copy_dataset(&src, &self.file, path)?;
        }
        Ok(())
    }

    pub fn finish(self) -> Result<()> {
        super::hdf5_table::close_product_file(self.file)
    }
}

/// Rows of a DL2 file. A stereo file's rows carry the combined reconstruction and truth; its
/// `stereo` part what sst1mpipe selects stereo events on.
pub struct Dl2Chunk {
    pub rows: Vec<Dl2Row>,
    pub stereo: Option<StereoChunk>,
    /// sst1mpipe's `event_type` of each row, in a DL2 that `event-classes` classified.
    pub event_types: Option<Vec<i64>>,
}

/// The per-event values of a stereo DL2 beyond the combined row: each telescope's selection
/// parameters (as rows whose DL1 columns are that telescope's `_tel<id>` columns, NaN where the
/// stereo table has none) and the spreads of sst1mpipe's stereo quality cuts.
pub struct StereoChunk {
    pub telescopes: [Vec<Dl2Row>; 2],
    pub var_reco_energy: Vec<f64>,
    pub var_gammaness: Vec<f64>,
    /// The smallest angular distance between the two telescopes' disp positions (rad).
    pub min_distance: Vec<f64>,
}

/// Reads one telescope's DL2 back, a chunk at a time, with its attributes and simulation tables;
/// or a stereo DL2 ([`Self::stereo`]), whose events are read by column name.
pub struct Dl2Reader {
    events: hdf5::Dataset,
    /// A stereo DL2: the two telescopes (from the `_tel<id>` column names) and the table's
    /// scalar columns.
    pub stereo: Option<[u16; 2]>,
    stereo_columns: Vec<String>,
    pub path: std::path::PathBuf,
    /// The telescope of a mono DL2; 0 for stereo.
    pub tel_id: u16,
    pub n_events: usize,
    pub activity_key: String,
    pub pipeline_version: String,
    /// The `sst1mflow_models` attribute (role → file hash, training activity…), as JSON text.
    pub models: String,
    /// The DL1 settings of the events (`sst1mflow_dl1_settings`, JSON text; empty when absent).
    pub dl1_settings: String,
    pub run: Option<SimulationRunRow>,
    pub shower_distributions: Vec<super::r1::ShowerDistribution>,
    /// Observation runs: what the run was (obs id, times, pointing, target).
    pub observation: Option<ObservationRow>,
    /// The `sst1mflow_event_classes` attribute of a DL2 that `event-classes` classified (JSON
    /// text: the misdirection model and the class edges used); empty otherwise.
    pub classification: String,
    /// Whether the table has sst1mpipe's `event_type` column.
    pub has_event_types: bool,
}

impl Dl2Reader {
    pub fn open(path: &Path) -> Result<Dl2Reader> {
        use sst1mflow_base::error::Error;
        let bad = |what: &str| Error::msg(format!("{}: not a readable sst1mflow DL2 file: {what}", path.display()));
        let file = hdf5::File::open(path).map_err(|e| bad(&format!("cannot open ({e})")))?;
        let stereo_table = file.dataset(&format!("{STEREO_DL2_GROUP}/stereo")).ok();
        let (events, tel_id, stereo, stereo_columns) = match stereo_table {
            Some(events) => {
                let columns = super::hdf5_table::scalar_column_names(&events);
                let tels = stereo_telescopes(&columns).ok_or_else(|| {
                    bad("the stereo table has no camera_frame_hillas_intensity_tel<id> columns of two telescopes")
                })?;
                for needed in ["obs_id", "event_id", "reco_energy", "gammaness", "reco_alt", "reco_az"] {
                    if !columns.iter().any(|c| c == needed) {
                        return Err(bad(&format!("the stereo table has no column {needed}")));
                    }
                }
                (events, 0, Some(tels), columns)
            }
            None => {
                let (events, tel_id) = super::hdf5_table::open_telescope_table(
                    &file,
                    "/dl2/event/telescope/parameters",
                    DL2_COLUMNS.iter().map(|c| c.0),
                )
                .map_err(|e| bad(&e))?;
                (events, tel_id, None, Vec::new())
            }
        };
        let has_event_types = super::hdf5_table::column_dims(&events, "event_type").is_some_and(|d| d.is_empty());
        let run = super::r1::read_simulation_run(&file, path)?;
        let shower_distributions = super::r1::read_shower_distributions(&file, path)?;
        let observation = super::r1::read_observation_table(&file, path)?;
        Ok(Dl2Reader {
            shower_distributions,
            observation,
            n_events: events.shape().first().copied().unwrap_or(0),
            events,
            stereo,
            stereo_columns,
            path: path.to_path_buf(),
            tel_id,
            activity_key: super::hdf5_table::read_string_attr(&file, "sst1mflow_activity_key").unwrap_or_default(),
            pipeline_version: super::hdf5_table::read_string_attr(&file, "sst1mflow_pipeline_version")
                .unwrap_or_default(),
            models: super::hdf5_table::read_string_attr(&file, "sst1mflow_models").unwrap_or_default(),
            dl1_settings: super::hdf5_table::read_string_attr(&file, super::dl1::SETTINGS_ATTR).unwrap_or_default(),
            classification: super::hdf5_table::read_string_attr(&file, CLASSIFICATION_ATTR).unwrap_or_default(),
            has_event_types,
            run,
        })
    }

    /// Rows `start..end`, with the stereo part for a stereo DL2.
    pub fn read_chunk(&self, start: usize, end: usize) -> Result<Dl2Chunk> {
        let Some(tels) = self.stereo else {
            return Ok(Dl2Chunk {
                rows: self.read(start, end)?,
                stereo: None,
                event_types: self.event_types(start, end)?,
            });
        };
        let names: Vec<&str> = self.stereo_columns.iter().map(String::as_str).collect();
        let (_, packed) = super::hdf5_table::read_shaped_table_rows(&self.events, &names, start..end, |_, _| {
            Some(super::hdf5_table::ShapedColumn::F64)
        })
        .map_err(|e| sst1mflow_base::error::Error::msg(format!("{}: {}", self.path.display(), e.message())))?;
        let blank = Dl2Row::from_parameters(&super::dl1::ParametersRow::new(0, 0, 0, (f64::NAN, f64::NAN), None, None));
        let n = packed.len();
        let value = |k: usize, i: usize| f64::from_le_bytes(packed[i][8 * k..8 * k + 8].try_into().expect("8 bytes"));
        let mut rows = vec![blank; n];
        let (mut var_e, mut var_g, mut min_d) = (vec![f64::NAN; n], vec![f64::NAN; n], vec![f64::NAN; n]);
        let suffixes = [format!("_tel{}", tels[0]), format!("_tel{}", tels[1])];
        let mut per_telescope: Vec<(usize, &str, usize)> = Vec::new();
        for (k, name) in names.iter().enumerate() {
            let spread = match *name {
                "var_reco_energy" => Some(&mut var_e),
                "var_gammaness" => Some(&mut var_g),
                "min_distance" => Some(&mut min_d),
                _ => None,
            };
            if let Some(t) = spread {
                (0..n).for_each(|i| t[i] = value(k, i));
            } else if let Some((t, base)) =
                suffixes.iter().enumerate().find_map(|(t, sfx)| name.strip_suffix(sfx.as_str()).map(|b| (t, b)))
            {
                per_telescope.push((t, base, k));
            } else {
                for (i, row) in rows.iter_mut().enumerate() {
                    row.set(name, value(k, i));
                }
            }
        }
        // Each telescope's rows: the event's combined columns (identity, truth, reconstruction),
        // then its own `_tel<id>` columns, so that a selection reads them as a mono row.
        let mut telescopes = [rows.clone(), rows.clone()];
        for (t, base, k) in per_telescope {
            for (i, row) in telescopes[t].iter_mut().enumerate() {
                row.set(base, value(k, i));
            }
        }
        for (t, telescope) in telescopes.iter_mut().enumerate() {
            telescope.iter_mut().for_each(|r| r.tel_id = tels[t] as i16);
        }
        for row in rows.iter_mut() {
            row.tel_id = 0;
        }
        Ok(Dl2Chunk {
            rows,
            event_types: self.event_types(start, end)?,
            stereo: Some(StereoChunk { telescopes, var_reco_energy: var_e, var_gammaness: var_g, min_distance: min_d }),
        })
    }

    /// The `event_type` column of rows `start..end`, when the table has one.
    fn event_types(&self, start: usize, end: usize) -> Result<Option<Vec<i64>>> {
        if !self.has_event_types {
            return Ok(None);
        }
        let column = self.read_columns(&["event_type"], start, end)?;
        Ok(column.into_iter().next().map(|c| c.into_iter().map(|v| v as i64).collect()))
    }

    /// Numeric columns of rows `start..end` by their names in the file (a stereo DL2's per-
    /// telescope ones with their `_tel<id>` suffix), as f64, or an error naming the file and
    /// the first missing column.
    pub fn read_columns(&self, names: &[&str], start: usize, end: usize) -> Result<Vec<Vec<f64>>> {
        use sst1mflow_base::error::Error;
        for name in names {
            if super::hdf5_table::column_dims(&self.events, name).is_none_or(|d| !d.is_empty()) {
                return Err(Error::msg(format!("{}: the DL2 table has no column \"{name}\"", self.path.display())));
            }
        }
        let (_, packed) = super::hdf5_table::read_shaped_table_rows(&self.events, names, start..end, |_, _| {
            Some(super::hdf5_table::ShapedColumn::F64)
        })
        .map_err(|e| Error::msg(format!("{}: {}", self.path.display(), e.message())))?;
        Ok((0..names.len())
            .map(|k| {
                packed
                    .iter()
                    .map(|row| f64::from_le_bytes(row[8 * k..8 * k + 8].try_into().expect("8 bytes")))
                    .collect()
            })
            .collect())
    }

    /// The path of the events table in the file.
    pub fn table_path(&self) -> String {
        match self.stereo {
            Some(_) => format!("{STEREO_DL2_GROUP}/stereo"),
            None => format!("/dl2/event/telescope/parameters/tel_{:03}", self.tel_id),
        }
    }

    /// Rows `start..end` (a stereo DL2: the combined rows).
    pub fn read(&self, start: usize, end: usize) -> Result<Vec<Dl2Row>> {
        if self.stereo.is_some() {
            return Ok(self.read_chunk(start, end)?.rows);
        }
        self.events.read_slice_1d::<Dl2RowPacked, _>(start..end).map(|a| a.iter().map(|&r| r.into()).collect()).map_err(
            |e| {
                sst1mflow_base::error::Error::msg(format!(
                    "{}: cannot read DL2 rows {start}..{end}: {e}",
                    self.path.display()
                ))
            },
        )
    }
}

/// The two telescopes of a stereo table, from its `camera_frame_hillas_intensity_tel<id>`
/// columns (sst1mpipe's names: 1 and 2 for Monte Carlo, 21 and 22 for data).
fn stereo_telescopes(columns: &[String]) -> Option<[u16; 2]> {
    let mut tels: Vec<u16> =
        columns.iter().filter_map(|c| c.strip_prefix("camera_frame_hillas_intensity_tel")?.parse().ok()).collect();
    tels.sort_unstable();
    match tels.as_slice() {
        [a, b] => Some([*a, *b]),
        _ => None,
    }
}

/// The root attribute of a classified DL2: what classified it (JSON).
pub const CLASSIFICATION_ATTR: &str = "sst1mflow_event_classes";

/// Writes `dst`: the DL2 `src` with only the rows `keep` (ascending) of its events table, each
/// followed by `extra` columns (sst1mpipe's `log_reco_misdirection` and `event_type`), every
/// other table as stored, the root attributes of `src` but this activity's provenance, and
/// `classification` (JSON) as [`CLASSIFICATION_ATTR`].
pub fn write_with_columns(
    src: &Dl2Reader,
    dst: &Path,
    activity_key: &str,
    pipeline_version: &str,
    keep: &[usize],
    extra: &[super::hdf5_table::NamedColumn],
    classification: &str,
) -> Result<()> {
    use super::hdf5_table::{copy_attributes, copy_datasets_except, hdf5_error, write_extended_table};
    let from = hdf5::File::open(&src.path).map_err(|e| hdf5_error(src.path.display(), e))?;
    let file = create_product_file(dst, activity_key, pipeline_version)?;
    let own = [
        "CLASS",
        "TITLE",
        "VERSION",
        "PYTABLES_FORMAT_VERSION",
        "sst1mflow_activity_key",
        "sst1mflow_pipeline_version",
        CLASSIFICATION_ATTR,
    ];
    copy_attributes(&from, &file, &own)?;
    string_attr(&file, CLASSIFICATION_ATTR, classification)?;
    let table = src.table_path();
    copy_datasets_except(&from, &file, "/", &table)?;
    let (group, name) = table.rsplit_once('/').expect("a table path has a group");
    write_extended_table(&src.events, keep, extra, &ensure_groups(&file, group)?, name)?;
    super::hdf5_table::close_product_file(file)
}

/// Whether `path` is a stereo DL2 (has sst1mpipe's `/dl2/event/telescope/parameters/stereo`).
pub fn is_stereo(path: &Path) -> bool {
    hdf5::File::open(path).is_ok_and(|f| f.dataset(&format!("{STEREO_DL2_GROUP}/stereo")).is_ok())
}
