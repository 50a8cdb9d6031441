//! The HDF5 tables of the analysis products: the gammaness cut table (`gh_cuts.h5`, written by
//! `gh-cuts`, read by `make-irfs` and `dl2-dl3`) and the performance tables
//! (`performance.h5`). Each is a PyTables-readable table under `/` with a unit per column, in
//! a product file that carries the activity key and pipeline version (see [`crate::hdf5_table`]).
use crate::hdf5_table::{
    close_product_file, create_product_file, ensure_groups, string_attr, write_attrs, Attr, ColumnMeta, Table,
};
use hdf5::H5Type;
use sst1mflow_base::error::{Error, Result};
use std::path::Path;

/// One reco-energy bin of a gammaness (or theta) cut table.
#[derive(H5Type, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct CutRow {
    pub low: f64,
    pub high: f64,
    pub center: f64,
    pub n_events: i64,
    pub cut: f64,
}

const CUT_COLUMNS: [(&str, &str); 5] =
    [("low", "TeV"), ("high", "TeV"), ("center", "TeV"), ("n_events", ""), ("cut", "")];

fn write_rows<T: H5Type + Copy>(
    file: &hdf5::File,
    name: &str,
    units: &[(&str, &str)],
    rows: &[T],
    chunk: usize,
) -> Result<()> {
    let columns: Vec<ColumnMeta> = units.iter().map(|&(n, u)| ColumnMeta::new(n, u)).collect();
    let mut t = Table::<T>::create(&ensure_groups(file, "/")?, name, chunk, &columns)?;
    for r in rows {
        t.push(*r)?;
    }
    t.finish()?;
    Ok(())
}

/// Writes `gh_cuts.h5`: the `/gammaness_cuts` table and the method attributes.
pub fn write_cut_table(
    path: &Path,
    activity_key: &str,
    pipeline_version: &str,
    gamma_efficiency: f64,
    rows: &[CutRow],
) -> Result<()> {
    let file = create_product_file(path, activity_key, pipeline_version)?;
    write_attrs(&file, &[("gamma_efficiency", Attr::Float(gamma_efficiency)), ("method", Attr::Str("efficiency"))])?;
    write_rows(&file, "gammaness_cuts", &CUT_COLUMNS, rows, 64)?;
    close_product_file(file)
}

/// Reads a cut table back (for make-irfs and DL3).
pub fn read_cut_table(path: &Path, shown_as: &str) -> Result<Vec<CutRow>> {
    let bad = |what: String| Error::msg(format!("gammaness cut table {shown_as}: {what}"));
    let file = hdf5::File::open(path).map_err(|e| bad(format!("cannot open ({e})")))?;
    let rows = file
        .dataset("/gammaness_cuts")
        .and_then(|d| d.read_raw::<CutRow>())
        .map_err(|e| bad(format!("no readable /gammaness_cuts table ({e})")))?;
    if rows.is_empty()
        || rows.windows(2).any(|w| w[0].high != w[1].low)
        || rows.iter().any(|r| r.low.is_nan() || r.high.is_nan() || r.low >= r.high)
    {
        return Err(bad("bins are empty, unordered or not contiguous".into()));
    }
    Ok(rows)
}

/// One reco-energy bin of sst1mpipe's misdirection class edges (`misdirection_edges`): the
/// bin and five edges of log10(misdirection / deg) (−∞, the 25th, 50th and 75th percentiles,
/// +∞; all NaN for a bin without events). The column names are sst1mpipe's, its spelling
/// (`midirection`) included, so its `classify_evt_types` reads our table and the reverse.
#[derive(H5Type, Clone, Copy, Debug, PartialEq)]
#[repr(C)]
pub struct EdgeRow {
    pub low: f64,
    pub high: f64,
    pub center: f64,
    pub log_midirection_edge_0: f64,
    pub log_midirection_edge_1: f64,
    pub log_midirection_edge_2: f64,
    pub log_midirection_edge_3: f64,
    pub log_midirection_edge_4: f64,
}

impl EdgeRow {
    pub fn edges(&self) -> [f64; 5] {
        [
            self.log_midirection_edge_0,
            self.log_midirection_edge_1,
            self.log_midirection_edge_2,
            self.log_midirection_edge_3,
            self.log_midirection_edge_4,
        ]
    }
}

const EDGE_COLUMNS: [(&str, &str); 8] = [
    ("low", "TeV"),
    ("high", "TeV"),
    ("center", "TeV"),
    ("log_midirection_edge_0", ""),
    ("log_midirection_edge_1", ""),
    ("log_midirection_edge_2", ""),
    ("log_midirection_edge_3", ""),
    ("log_midirection_edge_4", ""),
];

/// The root attribute of an edges file naming the misdirection model the edges were computed
/// with (JSON: its file hash and training activity), which classifying with them requires.
pub const EDGES_MODEL_ATTR: &str = "sst1mflow_misdirection_model";

/// Writes `misdirection_edges.h5`: the `/misdirection_edges` table and the model it belongs to.
pub fn write_edges_table(
    path: &Path,
    activity_key: &str,
    pipeline_version: &str,
    model: &str,
    rows: &[EdgeRow],
) -> Result<()> {
    let file = create_product_file(path, activity_key, pipeline_version)?;
    string_attr(&file, EDGES_MODEL_ATTR, model)?;
    write_rows(&file, "misdirection_edges", &EDGE_COLUMNS, rows, 64)?;
    close_product_file(file)
}

/// Reads an edges table back, with the model attribute (JSON text).
pub fn read_edges_table(path: &Path, shown_as: &str) -> Result<(Vec<EdgeRow>, String)> {
    let bad = |what: String| Error::msg(format!("misdirection edges {shown_as}: {what}"));
    let file = hdf5::File::open(path).map_err(|e| bad(format!("cannot open ({e})")))?;
    let rows = file
        .dataset("/misdirection_edges")
        .and_then(|d| d.read_raw::<EdgeRow>())
        .map_err(|e| bad(format!("no readable /misdirection_edges table; is it an event-classes edges file? ({e})")))?;
    if rows.is_empty()
        || rows.iter().any(|r| r.low.is_nan() || r.high.is_nan() || r.low >= r.high)
        || rows.windows(2).any(|w| w[0].high > w[1].low)
    {
        return Err(bad("bins are empty or unordered".into()));
    }
    let model = crate::hdf5_table::read_string_attr(&file, EDGES_MODEL_ATTR)
        .ok_or_else(|| bad(format!("no {EDGES_MODEL_ATTR} attribute: not an sst1mflow edges file")))?;
    Ok((rows, model))
}

#[derive(H5Type, Clone, Copy, Debug)]
#[repr(C)]
pub struct ResolutionRow {
    pub low: f64,
    pub high: f64,
    pub center: f64,
    pub n_events: i64,
    pub resolution: f64,
    pub bias: f64,
}

#[derive(H5Type, Clone, Copy, Debug)]
#[repr(C)]
pub struct RocRow {
    pub threshold: f64,
    pub false_positive_rate: f64,
    pub true_positive_rate: f64,
}

#[derive(H5Type, Clone, Copy, Debug)]
#[repr(C)]
pub struct SensitivityRow {
    pub energy: f64,
    pub energy_min: f64,
    pub energy_max: f64,
    pub n_gamma_simulated: i64,
    pub n_proton_simulated: i64,
    pub n_signal: f64,
    pub n_background: f64,
    pub relative_sensitivity: f64,
    pub flux_sensitivity: f64,
    pub flux_sensitivity_erg: f64,
}

#[derive(H5Type, Clone, Copy, Debug)]
#[repr(C)]
pub struct SummaryRow {
    pub roc_auc: f64,
    pub observation_time_h: f64,
    pub time_to_detection_s: f64,
    pub signal_rate: f64,
    pub background_rate: f64,
    pub n_gamma_selected: i64,
    pub n_proton_selected: i64,
}

/// Everything `performance.h5` holds.
pub struct PerformanceTables<'a> {
    pub energy_resolution: Vec<ResolutionRow>,
    pub angular_resolution: Vec<ResolutionRow>,
    pub roc: Vec<RocRow>,
    pub gammaness_cuts: Vec<CutRow>,
    pub theta_cuts: Vec<CutRow>,
    pub sensitivity: &'a [SensitivityRow],
    pub summary: SummaryRow,
    /// How the gammaness cut was chosen, for people (a root attribute).
    pub gammaness_cut_method: &'a str,
    /// sst1mpipe's name of the telescope setup (`tel_001`, `tel_002` or `stereo`; a root
    /// attribute).
    pub telescope_setup: &'a str,
}

/// Writes `performance.h5`: one table per quantity under `/`, with units.
pub fn write_performance(path: &Path, activity_key: &str, pipeline_version: &str, t: &PerformanceTables) -> Result<()> {
    let file = create_product_file(path, activity_key, pipeline_version)?;
    let res_units =
        [("low", "TeV"), ("high", "TeV"), ("center", "TeV"), ("n_events", ""), ("resolution", ""), ("bias", "")];
    write_rows(&file, "energy_resolution", &res_units, &t.energy_resolution, 256)?;
    let ang_units =
        [("low", "TeV"), ("high", "TeV"), ("center", "TeV"), ("n_events", ""), ("resolution", "deg"), ("bias", "")];
    write_rows(&file, "angular_resolution", &ang_units, &t.angular_resolution, 256)?;
    let roc_units = [("threshold", ""), ("false_positive_rate", ""), ("true_positive_rate", "")];
    write_rows(&file, "roc", &roc_units, &t.roc, 256)?;
    write_rows(&file, "gammaness_cuts", &CUT_COLUMNS, &t.gammaness_cuts, 256)?;
    let theta_units = [("low", "TeV"), ("high", "TeV"), ("center", "TeV"), ("n_events", ""), ("cut", "deg")];
    write_rows(&file, "theta_cuts", &theta_units, &t.theta_cuts, 256)?;
    let sens_units = [
        ("energy", "TeV"),
        ("energy_min", "TeV"),
        ("energy_max", "TeV"),
        ("n_gamma_simulated", ""),
        ("n_proton_simulated", ""),
        ("n_signal", ""),
        ("n_background", ""),
        ("relative_sensitivity", ""),
        ("flux_sensitivity", "TeV cm-2 s-1"),
        ("flux_sensitivity_erg", "erg cm-2 s-1"),
    ];
    write_rows(&file, "sensitivity", &sens_units, t.sensitivity, 256)?;
    let sum_units = [
        ("roc_auc", ""),
        ("observation_time_h", "h"),
        ("time_to_detection_s", "s"),
        ("signal_rate", "s-1"),
        ("background_rate", "s-1"),
        ("n_gamma_selected", ""),
        ("n_proton_selected", ""),
    ];
    write_rows(&file, "summary", &sum_units, &[t.summary], 256)?;
    string_attr(&file, "gammaness_cut_method", t.gammaness_cut_method)?;
    string_attr(&file, "telescope_setup", t.telescope_setup)?;
    close_product_file(file)
}
