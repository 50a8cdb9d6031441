//! sst1mpipe's `--px-charges` file (`<run>_pedestal_hist.h5`, written with astropy's
//! `write_table_hdf5`): `bins` (`pe_bins`, the 1001 histogram edges in p.e.), `charge` (the
//! counts per bin: `pixel_charge` for camera data, `pixel_charge_tel<N>` for a simulation's
//! telescope) and, for camera data with pedestal events, `charge_images` (`start_time`, the
//! camera clock of each window's start in ns, `n` pedestals, per-pixel `average_q` and
//! `stdev_q`). astropy's `read_table_hdf5`, h5py and pandas read the tables as written.
use super::hdf5_table::{read_shaped_table, write_shaped_table, ColumnMeta, ShapedColumn};
use sst1mflow_base::error::{Error, Result};
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

/// Reads the `charge_images` table of a camera-data `--px-charges` file (ours or sst1mpipe's,
/// which astropy wrote with the same columns) for a camera of `n_pixels` pixels. Errors name
/// the file: not HDF5, no `charge_images` (a simulation's file, or a run without pedestal
/// events), or columns of another shape.
pub fn read_charge_maps(path: &Path, n_pixels: usize) -> Result<Vec<ChargeMap>> {
    let what = path.display();
    let file = hdf5::File::open(path)
        .map_err(|e| Error::msg(format!("{what}: not a readable HDF5 pixel-charges file ({e})")))?;
    let dataset = file.dataset("charge_images").map_err(|_| {
        Error::msg(format!(
            "{what}: no charge_images table (written by --px-charges on camera data with pedestal events only)"
        ))
    })?;
    let names = ["start_time", "n", "average_q", "stdev_q"];
    let (_, rows) = read_shaped_table(&dataset, &names, |name, dims| match (name, dims) {
        ("start_time", []) => Some(ShapedColumn::U64),
        ("n", []) => Some(ShapedColumn::I64),
        (_, [n]) if *n == n_pixels => Some(ShapedColumn::F32s(n_pixels)),
        _ => None,
    })
    .map_err(|e| Error::msg(format!("{what}: {}", e.message())))?;
    let f32s =
        |b: &[u8]| -> Vec<f32> { b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect() };
    Ok(rows
        .iter()
        .map(|row| {
            let start = u64::from_le_bytes(row[0..8].try_into().unwrap());
            let n = i64::from_le_bytes(row[8..16].try_into().unwrap());
            let mean = f32s(&row[16..16 + 4 * n_pixels]);
            let std = f32s(&row[16 + 4 * n_pixels..16 + 8 * n_pixels]);
            ChargeMap { start_ns: start.min(i64::MAX as u64) as i64, n, mean, std }
        })
        .collect())
}
