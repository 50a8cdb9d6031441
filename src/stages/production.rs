//! Monte Carlo productions in many files: the thrown showers of every DL2 file given for one
//! particle, summed once the files are checked to be of one production.
//!
//! A production arrives as hundreds of files per particle; sst1mpipe merges them
//! (`sst1mpipe_merge_hdf5`) and then counts the thrown showers of the merged file
//! (`get_mc_info`: the sum over runs, then rescaled above the cut on true energy). The stages
//! that need thrown showers (make-irfs, performance) take the files as they are and do the
//! same here: the sum of the runs' showers (showers × reuse), then the power-law rescale above
//! the common cut on true energy, so one file or its parts give the same count. Summing is only
//! right when every file threw the same distribution, so the files must agree on the spectral
//! index, the energy range, the impact range, the view cone, the source offset, the pointing,
//! the NSB, the cut on true energy, the models that reconstructed them and the telescope setup;
//! the first file that does not is refused beside the first file, naming the difference. The
//! same simulation run twice (the same seed) would count its showers twice and is refused too.
//!
//! Only the run descriptions are kept here (a few numbers per file): the stages read each
//! file's events in turn and keep only the events they select, so memory does not grow with
//! the number of files.
use super::InputFile;
use crate::error::{Error, Result};
use crate::io::dl2::Dl2Reader;
use crate::io::r1::SimulationRunRow;
use crate::irf::SimulationInfo;

/// What every file of a production must share, with the first file's values.
struct Reference {
    /// The file's name and hash prefix (files of one role often share a name).
    name: String,
    run: SimulationRunRow,
    /// The cut on true energy r0-dl1 or dl1-dl2 applied (NaN when none).
    cut_tev: f64,
    models: String,
    stereo: bool,
}

/// The files of one particle's production, as they are added.
pub struct Production {
    role: &'static str,
    reference: Option<Reference>,
    /// Σ showers × reuse over the files.
    n_showers: f64,
    /// (seed, file) of every run with a seed.
    seeds: Vec<(u64, String)>,
    pub files: usize,
}

impl Production {
    pub fn new(role: &'static str) -> Production {
        Production { role, reference: None, n_showers: 0.0, seeds: Vec::new(), files: 0 }
    }

    /// Adds one DL2 file: refused (naming both files) when it is not of the same production
    /// as the first one.
    pub fn add(&mut self, input: &InputFile, dl2: &Dl2Reader) -> Result<()> {
        let role = self.role;
        let Some(run) = dl2.run else {
            return Err(Error::msg(format!(
                "{role} input {} has no simulation information (/configuration/simulation/run): the thrown showers are needed, so observed data cannot be used here",
                input.name
            )));
        };
        if run.n_showers == 0 || run.max_scatter_range <= 0.0 || run.energy_range_max <= run.energy_range_min {
            return Err(Error::msg(format!(
                "{role} input {}: incomplete simulation information ({run:?})",
                input.name
            )));
        }
        let first = if dl2.n_events > 0 { dl2.read(0, 1)? } else { Vec::new() };
        let cut_tev = first.first().map(|r| r.min_true_energy_cut).unwrap_or(f64::NAN);
        if run.seed != 0 {
            if let Some((_, other)) = self.seeds.iter().find(|(s, _)| *s == run.seed) {
                return Err(Error::msg(format!(
                    "{role} inputs {other} and {} are the same simulation run (seed {}): its showers would be counted twice",
                    label(input),
                    run.seed
                )));
            }
            self.seeds.push((run.seed, label(input)));
        }
        match &self.reference {
            None => {
                self.reference = Some(Reference {
                    name: label(input),
                    run,
                    cut_tev,
                    models: dl2.models.clone(),
                    stereo: dl2.stereo.is_some(),
                })
            }
            Some(r) => {
                let a = &r.run;
                let same = |x: f64, y: f64| {
                    x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()) || (x.is_nan() && y.is_nan())
                };
                let checks: [(&str, f64, f64); 12] = [
                    ("spectral index", a.spectral_index, run.spectral_index),
                    ("minimum energy (TeV)", a.energy_range_min, run.energy_range_min),
                    ("maximum energy (TeV)", a.energy_range_max, run.energy_range_max),
                    ("minimum impact (m)", a.min_scatter_range, run.min_scatter_range),
                    ("maximum impact (m)", a.max_scatter_range, run.max_scatter_range),
                    ("view cone minimum (deg)", a.min_viewcone_radius, run.min_viewcone_radius),
                    ("view cone maximum (deg)", a.max_viewcone_radius, run.max_viewcone_radius),
                    ("source offset (deg)", a.source_offset, run.source_offset),
                    ("pointing altitude (deg)", a.pointing_alt, run.pointing_alt),
                    ("pointing azimuth (deg)", a.pointing_az, run.pointing_az),
                    ("NSB rate (GHz)", a.nsb_rate, run.nsb_rate),
                    ("cut on true energy (TeV)", r.cut_tev, cut_tev),
                ];
                let refuse = |what: String| {
                    Error::msg(format!(
                        "{role} inputs {} and {} are not of one production ({what}): their thrown showers cannot be summed",
                        r.name,
                        label(input)
                    ))
                };
                if let Some((what, x, y)) = checks.iter().find(|(_, x, y)| !same(*x, *y)) {
                    return Err(refuse(format!("{what} {x} vs {y}")));
                }
                if r.stereo != dl2.stereo.is_some() {
                    return Err(refuse("mono and stereo DL2".into()));
                }
                if r.models != dl2.models {
                    return Err(refuse("reconstructed by other models".into()));
                }
            }
        }
        self.n_showers += run.n_showers as f64 * run.shower_reuse as f64;
        self.files += 1;
        Ok(())
    }

    /// The thrown showers of all the files (sst1mpipe's count of their merged file).
    pub fn simulation(&self) -> Result<SimulationInfo> {
        let r = self.reference.as_ref().ok_or_else(|| Error::msg(format!("no {} input file", self.role)))?;
        let summed = SimulationInfo { n_showers: self.n_showers, ..r.run.simulation_info() };
        Ok(if r.cut_tev.is_finite() { summed.after_true_energy_cut(r.cut_tev) } else { summed })
    }

    /// The first file's run description (shared by all, as checked).
    pub fn run(&self) -> Option<&SimulationRunRow> {
        self.reference.as_ref().map(|r| &r.run)
    }

    pub fn models(&self) -> &str {
        self.reference.as_ref().map_or("", |r| r.models.as_str())
    }

    /// The files' names, for logs and errors ("a.h5" or "a.h5 and 99 more").
    pub fn describe(&self) -> String {
        match &self.reference {
            None => String::new(),
            Some(r) if self.files <= 1 => r.name.clone(),
            Some(r) => format!("{} and {} more", r.name, self.files - 1),
        }
    }
}

/// A file as messages name it: its name and the start of its hash (`sst1mflow show` finds it).
fn label(input: &InputFile) -> String {
    format!("{} ({})", input.name, &input.hash[..input.hash.len().min(12)])
}

/// Every file of `role` (at least one), or an error naming the stage.
pub fn files<'a>(
    inputs: &'a std::collections::BTreeMap<String, Vec<InputFile>>,
    role: &str,
    stage: &str,
) -> Result<&'a [InputFile]> {
    match inputs.get(role).map(Vec::as_slice) {
        Some(files) if !files.is_empty() => Ok(files),
        _ => Err(Error::msg(format!("{stage} needs at least one {role} file"))),
    }
}
