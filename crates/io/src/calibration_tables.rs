//! The per-pixel calibration inputs of camera data, read in the formats sst1mpipe ships them:
//!
//! * the calibration table (`dc_to_pe`, `calib_flag` per pixel, in pixel order): a pandas
//!   "fixed" HDF5 frame (key `/param` or `/df_param`: `axis0` column names, `blockN_items` and
//!   `blockN_values`), as `pd.read_hdf` reads it; or a text table with a header line naming the
//!   columns (whitespace, tab or comma separated);
//! * the window transmittance: a text file with one header line, the factor in column 1.
//!
//! Both are activity inputs (their bytes are hashed into the key); every problem names the file.
use sst1mflow_base::error::{Error, Result};
use std::path::Path;

/// Per-pixel ADC→p.e. factors and the flag saying whether the fit was good (1).
#[derive(Clone, Debug, PartialEq)]
pub struct PixelCalibration {
    pub dc_to_pe: Vec<f64>,
    pub calib_flag: Vec<i64>,
}

impl PixelCalibration {
    /// sst1mpipe's factors: pixels whose flag is not 1 (including all-NaN rows) get the mean
    /// factor of the good pixels. Returns the factors and the bad-calibration mask.
    pub fn effective(&self) -> Result<(Vec<f64>, Vec<bool>)> {
        let bad: Vec<bool> =
            self.calib_flag.iter().zip(&self.dc_to_pe).map(|(&f, v)| f != 1 || !v.is_finite()).collect();
        let good: Vec<f64> = self.dc_to_pe.iter().zip(&bad).filter(|(_, b)| !**b).map(|(v, _)| *v).collect();
        if good.is_empty() {
            return Err(Error::msg("the calibration table has no pixel with calib_flag = 1"));
        }
        let mean = good.iter().sum::<f64>() / good.len() as f64;
        Ok((self.dc_to_pe.iter().zip(&bad).map(|(&v, &b)| if b { mean } else { v }).collect(), bad))
    }
}

fn is_hdf5(path: &Path) -> bool {
    let mut magic = [0u8; 8];
    use std::io::Read;
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && &magic == b"\x89HDF\r\n\x1a\n"
}

/// Reads a calibration table with `n_pixels` rows.
pub fn read_pixel_calibration(path: &Path, n_pixels: usize) -> Result<PixelCalibration> {
    let what = path.display().to_string();
    let table = if is_hdf5(path) { read_pandas_fixed(path)? } else { read_text_table(path)? };
    let column = |name: &str| -> Result<&Vec<f64>> {
        table.iter().find(|(n, _)| n == name).map(|(_, v)| v).ok_or_else(|| {
            Error::msg(format!(
                "{what}: the calibration table has no column {name:?} (columns: {})",
                table.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
            ))
        })
    };
    let dc_to_pe = column("dc_to_pe")?.clone();
    let calib_flag: Vec<i64> =
        column("calib_flag")?.iter().map(|&v| if v.is_finite() { v as i64 } else { 0 }).collect();
    if dc_to_pe.len() != n_pixels {
        return Err(Error::msg(format!(
            "{what}: the calibration table has {} rows, the camera {n_pixels} pixels",
            dc_to_pe.len()
        )));
    }
    // A pixel flagged good must have a usable factor: 0 or a negative one would silently zero
    // or invert its charge (a bad fit is flagged, and then replaced by the mean).
    if let Some(pixel) = (0..n_pixels).find(|&p| calib_flag[p] == 1 && !(dc_to_pe[p].is_finite() && dc_to_pe[p] > 0.0))
    {
        return Err(Error::msg(format!(
            "{what}: pixel {pixel} has calib_flag 1 but dc_to_pe = {}: a good pixel needs a positive factor (flag it 0 to have it replaced by the mean)",
            dc_to_pe[pixel]
        )));
    }
    Ok(PixelCalibration { dc_to_pe, calib_flag })
}

/// Reads a window transmittance file (`pixel_id  factor` rows after one header line, as
/// sst1mpipe's `corr_factor_*_wdw.txt`): exactly two columns, the pixel ids 0, 1, 2, … in
/// order, so that another per-pixel table given in its place (a calibration table, in HDF5 or
/// as text) is refused instead of read as factors.
pub fn read_window_transmittance(path: &Path, n_pixels: usize) -> Result<Vec<f64>> {
    let what = path.display().to_string();
    if is_hdf5(path) {
        return Err(Error::msg(format!(
            "{what}: an HDF5 file (a calibration table?), not a window transmittance file (text: a header line, then `pixel_id factor` rows)"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(format!("cannot read {what}"), e))?;
    let split = |l: &str| -> Vec<String> {
        l.split(|c: char| c.is_whitespace() || c == ',').filter(|f| !f.is_empty()).map(str::to_string).collect()
    };
    let header = split(text.lines().next().unwrap_or(""));
    if header.iter().any(|h| h == "dc_to_pe" || h == "calib_flag") {
        return Err(Error::msg(format!(
            "{what}: a calibration table (its header names {}), not a window transmittance file",
            header.join(", ")
        )));
    }
    let mut out = Vec::with_capacity(n_pixels);
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let fields = split(line);
        let expected_id = out.len();
        let v: f64 = match fields.as_slice() {
            [id, factor] if id.parse::<f64>().ok() == Some(expected_id as f64) => factor.parse().ok(),
            _ => None,
        }
        .ok_or_else(|| {
            Error::msg(format!(
                "{what} line {}: expected `{expected_id} factor` (pixel id, then its factor), found {line:?}",
                i + 1
            ))
        })?;
        if !(v.is_finite() && v > 0.0) {
            return Err(Error::msg(format!(
                "{what} line {}: transmittance factor {v} is not a positive number",
                i + 1
            )));
        }
        out.push(v);
    }
    if out.len() != n_pixels {
        return Err(Error::msg(format!(
            "{what}: {} transmittance factors, the camera has {n_pixels} pixels",
            out.len()
        )));
    }
    Ok(out)
}

fn read_text_table(path: &Path) -> Result<Vec<(String, Vec<f64>)>> {
    let what = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(format!("cannot read {what}"), e))?;
    let split = |l: &str| -> Vec<String> {
        l.split(|c: char| c.is_whitespace() || c == ',').filter(|f| !f.is_empty()).map(str::to_string).collect()
    };
    let mut lines = text.lines().filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
    let header = split(lines.next().ok_or_else(|| Error::msg(format!("{what}: empty calibration table")))?);
    let mut columns: Vec<(String, Vec<f64>)> = header.into_iter().map(|h| (h, Vec::new())).collect();
    for (i, line) in lines.enumerate() {
        let fields = split(line);
        if fields.len() != columns.len() {
            return Err(Error::msg(format!(
                "{what}: data row {} has {} fields, the header {}",
                i + 1,
                fields.len(),
                columns.len()
            )));
        }
        for (c, f) in columns.iter_mut().zip(&fields) {
            let v = if f.eq_ignore_ascii_case("nan") {
                f64::NAN
            } else {
                f.parse().map_err(|_| Error::msg(format!("{what}: data row {}: {f:?} is not a number", i + 1)))?
            };
            c.1.push(v);
        }
    }
    Ok(columns)
}

fn read_pandas_fixed(path: &Path) -> Result<Vec<(String, Vec<f64>)>> {
    let what = path.display().to_string();
    let bad = |m: String| Error::msg(format!("{what}: not a pandas calibration table: {m}"));
    let file = hdf5::File::open(path).map_err(|e| bad(e.to_string()))?;
    let group = ["param", "df_param"]
        .iter()
        .find_map(|k| file.group(k).ok())
        .ok_or_else(|| bad("no /param or /df_param frame".into()))?;
    let mut columns = Vec::new();
    for block in 0.. {
        let Ok(items) = group.dataset(&format!("block{block}_items")) else { break };
        let names: Vec<hdf5::types::FixedAscii<64>> =
            items.read_raw().map_err(|e| bad(format!("block{block}_items: {e}")))?;
        let values =
            group.dataset(&format!("block{block}_values")).map_err(|e| bad(format!("block{block}_values: {e}")))?;
        let shape = values.shape();
        if shape.len() != 2 || shape[1] != names.len() {
            return Err(bad(format!("block{block}_values has shape {shape:?} for {} columns", names.len())));
        }
        let data: Vec<f64> = values.read_raw().map_err(|e| bad(format!("block{block}_values: {e}")))?;
        for (j, name) in names.iter().enumerate() {
            columns.push((name.as_str().to_string(), data.iter().skip(j).step_by(shape[1]).copied().collect()));
        }
    }
    if columns.is_empty() {
        return Err(bad("no value blocks".into()));
    }
    Ok(columns)
}

/// Writes a per-pixel calibration table as sst1mpipe ships them (`averaged_calib_param_*.h5`):
/// a pandas "fixed" frame under `/param` whose float columns form block 0 and the integer
/// `calib_flag` block 1, readable by `pd.read_hdf` and by [`read_pixel_calibration`].
/// `float_columns` are (name, one value per pixel); the file has no timestamps.
pub fn write_pixel_calibration(path: &Path, float_columns: &[(&str, Vec<f64>)], calib_flag: &[i64]) -> Result<()> {
    use crate::hdf5_table::{close_product_file, create_file, hdf5_error, string_attr};
    use hdf5::types::FixedAscii;
    let what = path.display().to_string();
    let n = calib_flag.len();
    if float_columns.iter().any(|(_, v)| v.len() != n) {
        return Err(Error::msg(format!("{what}: every column needs {n} values")));
    }
    let err = |e: hdf5::Error| hdf5_error(format!("cannot write {what}"), e);
    let file = create_file(path)?;
    for (k, v) in [("CLASS", "GROUP"), ("TITLE", ""), ("VERSION", "1.0"), ("PYTABLES_FORMAT_VERSION", "2.1")] {
        string_attr(&file, k, v)?;
    }
    let group = file.create_group("param").map_err(err)?;
    for (k, v) in [
        ("CLASS", "GROUP"),
        ("TITLE", ""),
        ("VERSION", "1.0"),
        ("axis0_variety", "regular"),
        ("axis1_variety", "regular"),
        ("block0_items_variety", "regular"),
        ("block1_items_variety", "regular"),
        ("encoding", "UTF-8"),
        ("errors", "strict"),
        ("pandas_type", "frame"),
        ("pandas_version", "0.15.2"),
    ] {
        string_attr(&group, k, v)?;
    }
    for (k, v) in [("nblocks", 2i64), ("ndim", 2)] {
        group.new_attr::<i64>().create(k).and_then(|a| a.write_scalar(&v)).map_err(err)?;
    }
    let array_attrs = |d: &hdf5::Dataset, kind: Option<&str>| -> Result<()> {
        for (k, v) in [("CLASS", "ARRAY"), ("FLAVOR", "numpy"), ("TITLE", ""), ("VERSION", "2.4")] {
            string_attr(d, k, v)?;
        }
        if let Some(kind) = kind {
            string_attr(d, "kind", kind)?;
            string_attr(d, "name", "N.")?;
        }
        d.new_attr::<u8>().create("transposed").and_then(|a| a.write_scalar(&1u8)).map_err(err)
    };
    let names = |items: &[&str]| -> Result<Vec<FixedAscii<64>>> {
        items
            .iter()
            .map(|s| {
                FixedAscii::<64>::from_ascii(s.as_bytes()).map_err(|_| Error::msg(format!("{what}: column name {s:?}")))
            })
            .collect()
    };
    let float_names: Vec<&str> = float_columns.iter().map(|(n, _)| *n).collect();
    let mut all_names = float_names.clone();
    all_names.push("calib_flag");
    let strings = |name: &str, items: &[&str]| -> Result<()> {
        let d = group.new_dataset_builder().with_data(&names(items)?).create(name).map_err(err)?;
        array_attrs(&d, Some("string"))
    };
    strings("axis0", &all_names)?;
    let index: Vec<i64> = (0..n as i64).collect();
    let d = group.new_dataset_builder().with_data(&index).create("axis1").map_err(err)?;
    array_attrs(&d, Some("integer"))?;
    strings("block0_items", &float_names)?;
    let mut values = Vec::with_capacity(n * float_columns.len());
    for p in 0..n {
        values.extend(float_columns.iter().map(|(_, v)| v[p]));
    }
    let d = group.new_dataset::<f64>().shape((n, float_columns.len())).create("block0_values").map_err(err)?;
    d.write_raw(&values).map_err(err)?;
    array_attrs(&d, None)?;
    strings("block1_items", &["calib_flag"])?;
    let d = group.new_dataset::<i64>().shape((n, 1)).create("block1_values").map_err(err)?;
    d.write_raw(calib_flag).map_err(err)?;
    array_attrs(&d, None)?;
    close_product_file(file)
}
