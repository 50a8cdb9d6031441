//! The `gh-cuts` stage: energy-dependent gammaness cuts at a target gamma efficiency, as
//! sst1mpipe's `sst1mpipe_mc_performance --gammaness-cuts efficiency` makes them (pyirf's
//! `calculate_percentile_cut`).
//!
//! Input `gamma`: DL2 of simulated gammas (mono, or sst1mpipe's stereo DL2 of `dl2-stereo`).
//! Config keys: `event_selection`, `analysis.gamma_efficiency`, `analysis.log_energy_min_tev`,
//! `analysis.log_energy_max_tev`, `analysis.n_energy_bins`; for stereo DL2 also sst1mpipe's
//! stereo quality cuts (`analysis.stereo_*_cut`; `event_selection` then applies to both
//! telescopes' parameters, as sst1mpipe's `load_dl2_sst1m`). Per reco-energy bin (logspace of those keys), the cut is the
//! 100·(1 − efficiency) percentile of the selected gammas' gammaness, clipped to [0.1, 0.95];
//! bins with fewer than 100 gammas get the largest gammaness of all (nothing passes there).
//!
//! Output `gh_cuts.h5`: the table `/gammaness_cuts` (`low`, `high`, `center` in TeV, `n_events`,
//! `cut`), which pandas reads, with the efficiency and our provenance as attributes. `make-irfs`
//! and DL3 apply it to the events of their reco-energy bin (`gammaness >= cut`; events outside
//! the bins are dropped, as pyirf's `evaluate_binned_cut`), and record its hash.
use super::params::Params;
use super::{ConfigWarning, DeclaredOutput, InputFile, Stage, StageContext, StagePlan, StepSetup};
use crate::error::{Error, Result};
use crate::io::analysis_tables::write_cut_table;
pub use crate::io::analysis_tables::{read_cut_table, CutRow};
use crate::io::dl2::Dl2Reader;
use crate::irf;
use crate::reco::EventSelection;
use serde_json::Value;
use std::path::Path;

pub struct GhCutsStage;

const MIN_EVENTS: usize = 100;
const CLIP: (f64, f64) = (0.1, 0.95);

/// The gammaness cut: global (`gammaness > cut`) or per reco-energy bin (`>=`, pyirf's rule).
pub enum GhCut {
    Global(f64),
    Binned(Vec<CutRow>),
}

impl GhCut {
    pub fn passes(&self, reco_energy: f64, gammaness: f64) -> bool {
        match self {
            GhCut::Global(cut) => gammaness > *cut,
            GhCut::Binned(table) => passes(table, reco_energy, gammaness),
        }
    }
}

/// pyirf's `evaluate_binned_cut` with `>=`: does an event of `reco_energy` with `gammaness` pass?
pub fn passes(cuts: &[CutRow], reco_energy: f64, gammaness: f64) -> bool {
    let last = cuts.len() - 1;
    if !(reco_energy >= cuts[0].low && reco_energy < cuts[last].high) {
        return false;
    }
    let i = cuts.partition_point(|c| c.high <= reco_energy);
    gammaness >= cuts[i.min(last)].cut
}

/// sst1mpipe's efficiency cuts: per reco-energy bin, the gammaness above which a fraction
/// `efficiency` of the gammas lies, clipped to [0.1, 0.95]; bins with fewer than 100 gammas are
/// closed (their cut is the highest gammaness seen). Returns the table and that fill value.
pub fn efficiency_cuts(
    gammaness: &[f64],
    reco_energy: &[f64],
    edges: &[f64],
    efficiency: f64,
) -> Result<(Vec<irf::CutBin>, f64)> {
    let fill = gammaness.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let table = irf::percentile_cut(
        gammaness,
        reco_energy,
        edges,
        100.0 * (1.0 - efficiency),
        fill,
        (Some(CLIP.0), Some(CLIP.1)),
        MIN_EVENTS,
    )
    .map_err(|e| Error::msg(e.to_string()))?;
    Ok((table, fill))
}

fn analysis(config: &Value, key: &str) -> std::result::Result<f64, String> {
    config
        .get("analysis")
        .and_then(|a| a.get(key))
        .and_then(Value::as_f64)
        .ok_or_else(|| format!("analysis.{key} must be a number"))
}

struct Settings {
    selection: EventSelection,
    stereo_cuts: super::dl1_input::StereoCuts,
    efficiency: f64,
    edges: Vec<f64>,
}

fn settings(config: &Value) -> std::result::Result<Settings, String> {
    let efficiency = analysis(config, "gamma_efficiency")?;
    if !(efficiency > 0.0 && efficiency < 1.0) {
        return Err(format!("analysis.gamma_efficiency = {efficiency} must be in (0, 1)"));
    }
    let (lo, hi, n) = (
        analysis(config, "log_energy_min_tev")?,
        analysis(config, "log_energy_max_tev")?,
        analysis(config, "n_energy_bins")?,
    );
    super::check_energy_binning(lo, hi, n)?;
    let n = n as usize;
    let edges = (0..n).map(|i| 10f64.powf(lo + (hi - lo) * i as f64 / (n - 1) as f64)).collect();
    let stereo_cuts = super::dl1_input::StereoCuts::from_config(config).map_err(|e| e.message().to_string())?;
    Ok(Settings { selection: EventSelection::from_config(config)?, stereo_cuts, efficiency, edges })
}

impl Stage for GhCutsStage {
    fn name(&self) -> &'static str {
        "gh-cuts"
    }

    fn version(&self) -> &'static str {
        "1"
    }

    fn plan(&self, params: &Value, input_roles: &[&str], at: &str) -> Result<StagePlan> {
        Params::new(params, &[], "gh-cuts", at)?;
        if input_roles != ["gamma"] {
            return Err(Error::msg(format!("{at}: stage gh-cuts takes one input role, \"gamma\" (DL2 of gammas)")));
        }
        let mut config_keys: Vec<String> = [
            "event_selection",
            "analysis.gamma_efficiency",
            "analysis.log_energy_min_tev",
            "analysis.log_energy_max_tev",
            "analysis.n_energy_bins",
        ]
        .map(String::from)
        .to_vec();
        config_keys.extend(super::stereo_cut_plan_keys());
        Ok(StagePlan {
            config_keys,
            config_read: Vec::new(),
            outputs: vec![DeclaredOutput { role: "cuts".into(), file: "gh_cuts.h5".into(), kind: "gh-cuts".into() }],
        })
    }

    fn config_scope(&self) -> Vec<&'static str> {
        let mut scope = vec![
            "event_selection",
            "analysis.gamma_efficiency",
            "analysis.log_energy_min_tev",
            "analysis.log_energy_max_tev",
            "analysis.n_energy_bins",
        ];
        scope.extend(super::dl1_input::STEREO_CUT_KEYS);
        scope
    }

    fn config_for_inputs(&self, config: &Value, inputs: &[InputFile]) -> Option<Value> {
        super::stereo_cuts_for_inputs(config, inputs, &["gamma"])
    }

    fn check_config(&self, config: &Value, _step: &StepSetup, file: &Path, at: &str) -> Result<Vec<ConfigWarning>> {
        settings(config).map_err(|e| Error::msg(format!("{}: {e} (read by {at})", file.display())))?;
        Ok(super::stereo_cut_notices(config, at))
    }

    fn run(&self, ctx: &mut StageContext) -> Result<()> {
        let s = settings(ctx.config).map_err(Error::msg)?;
        let inputs = super::production::files(ctx.inputs, "gamma", "gh-cuts")?;
        let (mut gammaness, mut energy) = (Vec::new(), Vec::new());
        let (mut n_read, mut stereo) = (0, None);
        for input in inputs {
            let dl2 = Dl2Reader::open(&input.path)
                .map_err(|e| Error::msg(format!("gamma input {}: {}", input.name, e.message())))?;
            let selection =
                super::dl1_input::Dl2Selection::new(&s.selection, &input.name)?.with_stereo_cuts(s.stereo_cuts);
            if n_read > 0 && stereo.is_some() != dl2.stereo.is_some() {
                return Err(Error::msg(format!(
                    "gamma inputs {} and {} mix mono and stereo DL2: one cut table is of one telescope setup",
                    inputs[0].name, input.name
                )));
            }
            stereo = dl2.stereo;
            n_read += dl2.n_events;
            let mut start = 0;
            while start < dl2.n_events {
                let end = (start + 16_384).min(dl2.n_events);
                let chunk = dl2.read_chunk(start, end)?;
                for (i, r) in chunk.rows.iter().enumerate() {
                    if r.true_shower_primary_id != 0 {
                        return Err(Error::msg(format!(
                            "gamma input {} contains particle id {}",
                            input.name, r.true_shower_primary_id
                        )));
                    }
                    if selection.passes_in(&chunk, i) && r.gammaness.is_finite() && r.reco_energy.is_finite() {
                        gammaness.push(r.gammaness);
                        energy.push(r.reco_energy);
                    }
                }
                start = end;
            }
        }
        let names = match inputs {
            [one] => one.name.clone(),
            [first, rest @ ..] => format!("{} and {} more", first.name, rest.len()),
            [] => unreachable!("at least one file"),
        };
        if gammaness.is_empty() {
            return Err(Error::msg(format!(
                "no gamma of {names} passes event_selection with a reconstruction: no cut can be derived"
            )));
        }
        let (table, fill) = efficiency_cuts(&gammaness, &energy, &s.edges, s.efficiency)?;
        let rows: Vec<CutRow> = table
            .iter()
            .map(|b| CutRow {
                low: b.low,
                high: b.high,
                center: (b.low * b.high).sqrt(),
                n_events: b.n_events as i64,
                cut: b.cut,
            })
            .collect();
        write_cut_table(&ctx.work_dir.join("gh_cuts.h5"), ctx.activity_key, ctx.pipeline_version, s.efficiency, &rows)?;
        let filled = table.iter().filter(|b| b.n_events < MIN_EVENTS).count();
        let _ = writeln!(
            ctx.log,
            "{} of {} gammas pass event_selection{}; cuts for efficiency {} in {} bins ({} with fewer than {MIN_EVENTS} gammas get {fill:.3})",
            gammaness.len(),
            n_read,
            match stereo {
                Some(_) => format!(" on both telescopes and the stereo quality cuts {}", s.stereo_cuts.to_json()),
                None => String::new(),
            },
            s.efficiency,
            table.len(),
            filled
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binned_cut_uses_the_event_bin_and_drops_events_outside() {
        let cuts = [
            CutRow { low: 1.0, high: 2.0, center: 1.4, n_events: 200, cut: 0.5 },
            CutRow { low: 2.0, high: 4.0, center: 2.8, n_events: 200, cut: 0.8 },
        ];
        assert!(passes(&cuts, 1.5, 0.5));
        assert!(!passes(&cuts, 2.0, 0.7));
        assert!(passes(&cuts, 3.9, 0.8));
        assert!(!passes(&cuts, 4.0, 0.99));
        assert!(!passes(&cuts, 0.5, 0.99));
    }
}
