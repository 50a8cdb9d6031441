//! Reading DL1 parameter tables into columns for the random-forest stages: several files of
//! one telescope, checked to share one set of DL1 settings and one pipeline version, with
//! sst1mpipe's `event_selection` and finite check applied while streaming (only the needed
//! columns of the surviving events are kept). Also `event_selection` on DL2 rows
//! ([`Dl2Selection`]), for the stages after DL2.
use super::InputFile;
use crate::contract;
use crate::error::{Error, Result};
use crate::io::dl1::{Dl1Reader, ParametersRow};
use crate::io::model::InputRecord;
use crate::reco::EventSelection;
use serde_json::Value;
use std::collections::BTreeMap;

const CHUNK: usize = 16_384;

/// The kept events of a set of DL1 files, by column.
pub struct Dl1Columns {
    pub columns: BTreeMap<String, Vec<f64>>,
    pub n_read: usize,
    pub n_kept: usize,
    pub settings: BTreeMap<String, Value>,
    pub pipeline_version: String,
    pub inputs: Vec<InputRecord>,
}

impl Dl1Columns {
    pub fn column(&self, name: &str) -> &[f64] {
        self.columns.get(name).map(Vec::as_slice).unwrap_or(&[])
    }
}

/// A getter for `name`, or an error naming the file.
pub fn getter(name: &str, file: &str) -> Result<fn(&ParametersRow) -> f64> {
    ParametersRow::getter(name).ok_or_else(|| {
        Error::msg(format!(
            "{file}: the DL1 parameter table has no column \"{name}\"{}",
            crate::text::suggestion(name, ParametersRow::column_names())
        ))
    })
}

/// One `event_selection` entry on DL2 rows: the column's reader and the inclusive bounds.
type Dl2Cut = (fn(&crate::io::dl1::Dl2Row) -> f64, f64, f64);

/// `event_selection` resolved against the DL2 row's columns, with sst1mpipe's stereo quality
/// cuts for stereo DL2.
pub struct Dl2Selection(Vec<Dl2Cut>, StereoCuts, Option<i64>);

/// sst1mpipe's stereo quality cuts (`analysis.stereo_delta_disp_cut_deg`,
/// `stereo_relative_std_reco_energy_cut`, `stereo_std_gammaness_cut`; null or absent: no cut),
/// applied where stereo DL2 is loaded for IRFs, performance and DL3: an event passes when
/// min_distance (in degrees) < the first, √var_reco_energy / reco_energy < the second and
/// √var_gammaness < the third (NaN fails).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StereoCuts {
    pub delta_disp_deg: Option<f64>,
    pub relative_std_energy: Option<f64>,
    pub std_gammaness: Option<f64>,
}

/// The config keys of [`StereoCuts`].
pub const STEREO_CUT_KEYS: [&str; 3] = [
    "analysis.stereo_delta_disp_cut_deg",
    "analysis.stereo_relative_std_reco_energy_cut",
    "analysis.stereo_std_gammaness_cut",
];

impl StereoCuts {
    pub fn from_config(config: &Value) -> Result<StereoCuts> {
        let read = |key: &str| -> Result<Option<f64>> {
            let pointer = format!("/{}", key.replace('.', "/"));
            match config.pointer(&pointer) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => match v.as_f64() {
                    Some(x) if x.is_finite() && x > 0.0 => Ok(Some(x)),
                    _ => Err(Error::msg(format!("config {key} = {v}: must be null or a positive number"))),
                },
            }
        };
        Ok(StereoCuts {
            delta_disp_deg: read(STEREO_CUT_KEYS[0])?,
            relative_std_energy: read(STEREO_CUT_KEYS[1])?,
            std_gammaness: read(STEREO_CUT_KEYS[2])?,
        })
    }

    /// As products record them (IRF and DL3 headers): the three keys, null where not set.
    pub fn to_json(&self) -> Value {
        serde_json::json!({
            "stereo_delta_disp_cut_deg": self.delta_disp_deg,
            "stereo_relative_std_reco_energy_cut": self.relative_std_energy,
            "stereo_std_gammaness_cut": self.std_gammaness,
        })
    }

    fn passes(&self, reco_energy: f64, var_reco_energy: f64, var_gammaness: f64, min_distance_rad: f64) -> bool {
        self.delta_disp_deg.is_none_or(|c| min_distance_rad.to_degrees() < c)
            && self.relative_std_energy.is_none_or(|c| var_reco_energy.sqrt() / reco_energy < c)
            && self.std_gammaness.is_none_or(|c| var_gammaness.sqrt() < c)
    }
}

impl Dl2Selection {
    /// Resolves every column of `selection`, or names the file and the missing column.
    pub fn new(selection: &EventSelection, file: &str) -> Result<Dl2Selection> {
        let cuts = selection
            .cuts
            .iter()
            .map(|(c, lo, hi)| {
                crate::io::dl1::Dl2Row::getter(c)
                    .map(|g| (g, *lo, *hi))
                    .ok_or_else(|| Error::msg(format!("event_selection: {file} has no column \"{c}\"")))
            })
            .collect::<Result<_>>()?;
        Ok(Dl2Selection(cuts, StereoCuts::default(), None))
    }

    /// Only the events of sst1mpipe's event class `class` (the `event_type` column that
    /// `event-classes` adds). `dl2` must have that column: refused, naming `file`, otherwise.
    pub fn with_event_class(
        mut self,
        class: Option<i64>,
        dl2: &crate::io::dl2::Dl2Reader,
        file: &str,
    ) -> Result<Dl2Selection> {
        if class.is_some() && !dl2.has_event_types {
            return Err(Error::msg(format!(
                "{file} has no event_type column: an event_class is chosen among the events of a DL2 classified by event-classes"
            )));
        }
        self.2 = class;
        Ok(self)
    }

    /// With sst1mpipe's stereo quality cuts, for stereo DL2.
    pub fn with_stereo_cuts(mut self, cuts: StereoCuts) -> Dl2Selection {
        self.1 = cuts;
        self
    }

    /// Whether event `i` of a chunk passes (and is of the chosen event class): a mono row as [`Self::passes`]; a stereo event when
    /// both telescopes' parameters pass `event_selection` (sst1mpipe applies every key to the
    /// `_tel<id>` columns of both) and the event passes the stereo quality cuts.
    pub fn passes_in(&self, chunk: &crate::io::dl2::Dl2Chunk, i: usize) -> bool {
        if let Some(class) = self.2 {
            if chunk.event_types.as_ref().is_none_or(|t| t[i] != class) {
                return false;
            }
        }
        match &chunk.stereo {
            None => self.passes(&chunk.rows[i]),
            Some(s) => {
                self.passes(&s.telescopes[0][i])
                    && self.passes(&s.telescopes[1][i])
                    && self.1.passes(
                        chunk.rows[i].reco_energy,
                        s.var_reco_energy[i],
                        s.var_gammaness[i],
                        s.min_distance[i],
                    )
            }
        }
    }

    /// Inclusive bounds, as sst1mpipe; NaN fails.
    pub fn passes(&self, row: &crate::io::dl1::Dl2Row) -> bool {
        self.0.iter().all(|(g, lo, hi)| {
            let v = g(row);
            v >= *lo && v <= *hi
        })
    }
}

/// Opens every file, checks telescope, settings and version agree, and keeps the events passing
/// `selection` whose `finite` columns are all finite. `keep` names the columns returned.
pub fn load(
    files: &[InputFile],
    role: &str,
    tel_id: u16,
    keep: &[String],
    finite: &[String],
    selection: &EventSelection,
) -> Result<Dl1Columns> {
    // Sorted and unique, the order of `Dl1Columns::columns`.
    let keep: Vec<String> = keep.iter().cloned().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let mut out = Dl1Columns {
        columns: keep.iter().map(|k| (k.clone(), Vec::new())).collect(),
        n_read: 0,
        n_kept: 0,
        settings: BTreeMap::new(),
        pipeline_version: String::new(),
        inputs: Vec::new(),
    };
    let mut first: Option<String> = None;
    for input in files {
        let reader = Dl1Reader::open(&input.path)
            .map_err(|e| Error::msg(format!("{role} input {}: {}", input.name, e.message())))?;
        if reader.tel_id != tel_id {
            return Err(Error::msg(format!(
                "{role} input {} holds telescope {}, but the step is for telescope {tel_id}",
                input.name, reader.tel_id
            )));
        }
        match &first {
            None => {
                out.settings = reader.settings.clone();
                out.pipeline_version = reader.pipeline_version.clone();
                first = Some(input.name.clone());
            }
            Some(first_name) => {
                let diffs = contract::all_differences(&out.settings, &reader.settings);
                if !diffs.is_empty() {
                    return Err(Error::msg(format!(
                        "{role} inputs {first_name} and {} were made with different DL1 settings:\n{}",
                        input.name,
                        contract::side_by_side(first_name, &input.name, &diffs)
                    )));
                }
                if out.pipeline_version != reader.pipeline_version {
                    return Err(Error::msg(format!(
                        "{role} inputs {first_name} (pipeline {}) and {} (pipeline {}) were made by different sst1mflow versions",
                        out.pipeline_version, input.name, reader.pipeline_version
                    )));
                }
            }
        }
        out.inputs.push(InputRecord { role: role.into(), name: input.name.clone(), sha256: input.hash.clone() });
        let keep_get: Vec<_> = keep.iter().map(|k| getter(k, &input.name)).collect::<Result<_>>()?;
        let finite_get: Vec<_> = finite.iter().map(|k| getter(k, &input.name)).collect::<Result<_>>()?;
        let cuts: Vec<_> =
            selection.cuts.iter().map(|(c, lo, hi)| Ok((getter(c, &input.name)?, *lo, *hi))).collect::<Result<_>>()?;
        let mut columns: Vec<&mut Vec<f64>> = out.columns.values_mut().collect();
        let mut start = 0;
        while start < reader.n_events {
            let end = (start + CHUNK).min(reader.n_events);
            for row in reader.read(start, end)? {
                out.n_read += 1;
                if !cuts.iter().all(|(g, lo, hi)| {
                    let v = g(&row);
                    v >= *lo && v <= *hi
                }) {
                    continue;
                }
                if !finite_get.iter().all(|g| g(&row).is_finite()) {
                    continue;
                }
                out.n_kept += 1;
                for (g, column) in keep_get.iter().zip(columns.iter_mut()) {
                    column.push(g(&row));
                }
            }
            start = end;
        }
    }
    Ok(out)
}
