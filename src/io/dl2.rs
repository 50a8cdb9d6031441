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
use super::dl1::{Dl2Row, DL2_COLUMNS};
use super::hdf5_table::{create_product_file, ensure_groups, string_attr, ColumnMeta, Table};
use super::r1::{ShowerRow, SimulationRunRow};
use crate::error::Result;
use std::path::Path;

pub struct Dl2Writer {
    file: hdf5::File,
    events: Table<Dl2Row>,
}

impl Dl2Writer {
    pub fn create(path: &Path, tel_id: u16, activity_key: &str, pipeline_version: &str) -> Result<Dl2Writer> {
        let file = create_product_file(path, activity_key, pipeline_version)?;
        super::instrument::write_instrument(&file, tel_id, [0.0, 0.0, 0.0])?;
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

    /// Copies the simulation truth (shower table and thrown-event run row).
    pub fn write_simulation(&mut self, showers: &[ShowerRow], run: Option<SimulationRunRow>) -> Result<()> {
        if !showers.is_empty() {
            let mut t = Table::create(
                &ensure_groups(&self.file, "/simulation/event/subarray")?,
                "shower",
                1024,
                &super::r1::shower_columns(),
            )?;
            for s in showers {
                t.push(*s)?;
            }
            t.finish()?;
        }
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

    pub fn finish(self) -> Result<usize> {
        self.events.finish()
    }
}
