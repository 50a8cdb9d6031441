//! sst1mpipe's `--px-charges` file (`<run>_pedestal_hist.h5`, written with astropy's
//! `write_table_hdf5`): `bins` (`pe_bins`, the 1001 histogram edges in p.e.), `charge` (the
//! counts per bin: `pixel_charge` for camera data, `pixel_charge_tel<N>` for a simulation's
//! telescope) and, for camera data with pedestal events, `charge_images` (`start_time`, the
//! camera clock of each window's start in ns, `n` pedestals, per-pixel `average_q` and
//! `stdev_q`). astropy's `read_table_hdf5`, h5py and pandas read the tables as written.
use super::hdf5_table::{write_shaped_table, ColumnMeta, ShapedColumn};
use sst1mflow_base::error::Result;
use sst1mflow_science::image::pixel_charges::{ChargeHistogram, ChargeMap};
use std::path::Path;

/// Writes the file: the histogram under `charge_column`, and the pedestal maps when any.
pub fn write(
    path: &Path,
    activity_key: &str,
    pipeline_version: &str,
    histogram: &ChargeHistogram,
    charge_column: &str,
    maps: &[ChargeMap],
) -> Result<()> {
    let file = super::hdf5_table::create_product_file(path, activity_key, pipeline_version)?;
    let f64_rows = |v: &[f64]| v.iter().map(|x| x.to_le_bytes().to_vec()).collect::<Vec<_>>();
    write_shaped_table(
        &file,
        "bins",
        &[(ColumnMeta::new("pe_bins", ""), ShapedColumn::F64)],
        &f64_rows(&histogram.edges),
    )?;
    write_shaped_table(
        &file,
        "charge",
        &[(ColumnMeta::new(charge_column, ""), ShapedColumn::F64)],
        &f64_rows(&histogram.counts),
    )?;
    if let Some(first) = maps.first() {
        let n_pixels = first.mean.len();
        let rows: Vec<Vec<u8>> = maps
            .iter()
            .map(|m| {
                let mut row = Vec::new();
                row.extend_from_slice(&(m.start_ns.max(0) as u64).to_le_bytes());
                row.extend_from_slice(&m.n.to_le_bytes());
                for v in m.mean.iter().chain(&m.std) {
                    row.extend_from_slice(&v.to_le_bytes());
                }
                row
            })
            .collect();
        write_shaped_table(
            &file,
            "charge_images",
            &[
                (ColumnMeta::new("start_time", ""), ShapedColumn::U64),
                (ColumnMeta::new("n", ""), ShapedColumn::I64),
                (ColumnMeta::new("average_q", ""), ShapedColumn::F32s(n_pixels)),
                (ColumnMeta::new("stdev_q", ""), ShapedColumn::F32s(n_pixels)),
            ],
            &rows,
        )?;
    }
    super::hdf5_table::close_product_file(file)
}
