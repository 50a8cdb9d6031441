//! The `performance` stage: what a performance paper shows, from reconstructed Monte Carlo, as
//! sst1mpipe's `sst1mpipe_mc_performance` computes it (sst1mpipe.md §9).
//!
//! Inputs: `gamma` (DL2 of point-like gammas: the source), `proton` (DL2 of diffuse protons) and
//! optionally `cuts` (a `gh-cuts` table, used as the gammaness cut). Parameters: `gh_cut`
//! ("efficiency" [default], "significance" or "global"; ignored with `cuts`) and `theta_cut`
//! ("efficiency" [default] or "global"). Config keys: `event_selection` and `analysis`'s
//! `global_gammaness_cut`, `gamma_efficiency`, `global_theta_cut`, `theta2_efficiency`,
//! `observation_time_h`, `off_regions`, `log_energy_min_tev`, `log_energy_max_tev`,
//! `n_energy_bins`; for stereo DL2 (`dl2-stereo` outputs, both inputs) also sst1mpipe's stereo
//! quality cuts (`analysis.stereo_*_cut`, applied as the events are loaded).
//!
//! Gammas are weighted to the Crab (HEGRA: 2.83e-11 (E/TeV)^-2.62 cm⁻² s⁻¹ TeV⁻¹) and protons to
//! pyirf's IRFDOC proton spectrum for `observation_time_h` (sst1mpipe weights protons to the
//! DAMPE p+He table). θ of gammas is measured from their true direction, of protons from the
//! gamma source. Then:
//!
//! - ROC curve and AUC of the gammaness, after `event_selection`, before any cut;
//! - the gammaness cut per reco-energy bin: `efficiency` (as `gh-cuts`), `significance` (the
//!   cut in linspace(0.3, 0.95, 100) maximising Li & Ma with θ < `global_theta_cut`, protons
//!   within 1.2° scaled to the on region, α = 1/`off_regions`), or `global`;
//! - energy resolution and bias, and angular resolution (68.27%; mono: disp sign correctly
//!   reconstructed, as sst1mpipe; stereo: every event, as sst1mpipe) per true-energy bin
//!   logspace(−1, 3, 21), after the gammaness cut;
//! - the θ cut per reco-energy bin: `efficiency` (the `theta2_efficiency` percentile of θ,
//!   within [0.01°, 1°], 0.5° below 100 gammas) or `global`;
//! - the point-source sensitivity per reco-energy bin (pyirf's: ≥ 5σ Li & Ma, ≥ 10 excess
//!   events, excess ≥ 5% of the background; bins with fewer than 10 simulated gammas or protons
//!   left are NaN), relative to the Crab and as E²·F in TeV cm⁻² s⁻¹ and erg cm⁻² s⁻¹;
//! - the time to detect the Crab (integrated over those bins) at 5σ.
//!
//! Outputs: `performance.h5` (tables `energy_resolution`, `angular_resolution`, `roc`,
//! `gammaness_cuts`, `theta_cuts`, `sensitivity`, `summary`; pandas reads each with `key=`; the
//! root attribute `telescope_setup`: sst1mpipe's `tel_001`, `tel_002` or `stereo`) and
//! four figures as PNG and SVG: `energy_resolution`, `angular_resolution`, `roc`, `sensitivity`.
use super::gh_cuts::{efficiency_cuts, CutRow, GhCut};
use super::params::Params;
use super::production::{self, Production};
use super::{ConfigRead, ConfigWarning, DeclaredOutput, InputFile, Stage, StageContext, StagePlan, StepSetup};
use crate::astro::angular_separation_deg;
use crate::error::{Error, Result};
use crate::io::analysis_tables::{
    write_performance, PerformanceTables, ResolutionRow, RocRow, SensitivityRow, SummaryRow,
};
use crate::io::dl2::Dl2Reader;
use crate::irf::performance::{self as perf, ResolutionBin, ScoredEvents};
use crate::irf::{self, CutBin, SimulationInfo, WeightedEvents, STANDARD_DETECTION};
use crate::plot::{Axis, Figure, Scale, Series, COLORS};
use crate::reco::EventSelection;
use serde_json::Value;

pub struct PerformanceStage;

const KNOWN: &[&str] = &["gh_cut", "theta_cut"];
const FIGURES: [&str; 4] = ["energy_resolution", "angular_resolution", "roc", "sensitivity"];
/// HEGRA Crab: 2.83e-11 (E/TeV)^-2.62 cm⁻² s⁻¹ TeV⁻¹ (pyirf's CRAB_HEGRA).
const CRAB_NORM_CM2: f64 = 2.83e-11;
const CRAB_INDEX: f64 = -2.62;
/// pyirf's IRFDOC_PROTON_SPECTRUM, per cm² s TeV sr.
const PROTON_NORM_CM2: f64 = 9.8e-6;
/// Simulated fluxes ([`irf::simulated_flux`]) are per m²: weights use the spectra per m².
const PER_M2: f64 = 1e4;
const PROTON_INDEX: f64 = -2.62;
const BKG_RADIUS_DEG: f64 = 1.2;
const TEV_TO_ERG: f64 = 1.602_176_634;
const MIN_SIMULATED: usize = 10;
const MAX_DETECTION_S: f64 = 500.0 * 3600.0;

#[derive(Clone, Copy, PartialEq)]
enum GhMethod {
    Efficiency,
    Significance,
    Global,
    Table,
}

#[derive(Clone, Copy, PartialEq)]
enum ThetaMethod {
    Efficiency,
    Global,
}

fn methods(params: &Value, at: &str, has_table: bool) -> Result<(GhMethod, ThetaMethod)> {
    let p = Params::new(params, KNOWN, "performance", at)?;
    let _ = p;
    let pick = |key: &str, allowed: &[&str], default: &str| -> Result<String> {
        match params.get(key) {
            None => Ok(default.to_string()),
            Some(Value::String(s)) if allowed.contains(&s.as_str()) => Ok(s.clone()),
            Some(other) => Err(Error::msg(format!(
                "{at}.params.{key}: {other} is not one of {}",
                allowed.iter().map(|a| format!("\"{a}\"")).collect::<Vec<_>>().join(", ")
            ))),
        }
    };
    let gh = match pick("gh_cut", &["efficiency", "significance", "global"], "efficiency")?.as_str() {
        _ if has_table => GhMethod::Table,
        "significance" => GhMethod::Significance,
        "global" => GhMethod::Global,
        _ => GhMethod::Efficiency,
    };
    let theta = match pick("theta_cut", &["efficiency", "global"], "efficiency")?.as_str() {
        "global" => ThetaMethod::Global,
        _ => ThetaMethod::Efficiency,
    };
    Ok((gh, theta))
}

struct Settings {
    selection: EventSelection,
    stereo_cuts: super::dl1_input::StereoCuts,
    global_gh: f64,
    efficiency: f64,
    global_theta: f64,
    theta_efficiency: f64,
    significance_fit: bool,
    t_obs_s: f64,
    n_off: f64,
    reco_edges: Vec<f64>,
    true_edges: Vec<f64>,
}

/// The `analysis` keys every method uses, and those only some methods use.
const ALWAYS: [&str; 5] =
    ["observation_time_h", "off_regions", "log_energy_min_tev", "log_energy_max_tev", "n_energy_bins"];

/// The `analysis` keys the methods apply: the others do not enter the key.
fn method_keys(gh: GhMethod, theta: ThetaMethod) -> Vec<&'static str> {
    let mut keys = ALWAYS.to_vec();
    match gh {
        GhMethod::Efficiency => keys.push("gamma_efficiency"),
        GhMethod::Global => keys.push("global_gammaness_cut"),
        GhMethod::Significance => keys.extend(["significance_fit", "global_theta_cut"]),
        GhMethod::Table => {}
    }
    match theta {
        ThetaMethod::Efficiency => keys.push("theta2_efficiency"),
        ThetaMethod::Global => keys.push("global_theta_cut"),
    }
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// The settings of the chosen methods (keys the methods do not use keep neutral values).
fn settings(config: &Value, gh: GhMethod, theta: ThetaMethod) -> std::result::Result<Settings, String> {
    let used = method_keys(gh, theta);
    let a = |k: &str, neutral: f64| -> std::result::Result<f64, String> {
        if !used.contains(&k) {
            return Ok(neutral);
        }
        config
            .get("analysis")
            .and_then(|a| a.get(k))
            .and_then(Value::as_f64)
            .ok_or(format!("analysis.{k} must be a number"))
    };
    let (lo, hi, n) = (a("log_energy_min_tev", 0.0)?, a("log_energy_max_tev", 0.0)?, a("n_energy_bins", 0.0)?);
    super::check_energy_binning(lo, hi, n)?;
    let significance_fit = if used.contains(&"significance_fit") {
        config
            .pointer("/analysis/significance_fit")
            .and_then(Value::as_bool)
            .ok_or("analysis.significance_fit must be true or false")?
    } else {
        false
    };
    let s = Settings {
        selection: EventSelection::from_config(config)?,
        stereo_cuts: super::dl1_input::StereoCuts::from_config(config).map_err(|e| e.message().to_string())?,
        global_gh: a("global_gammaness_cut", 0.5)?,
        efficiency: a("gamma_efficiency", 0.5)?,
        global_theta: a("global_theta_cut", 1.0)?,
        theta_efficiency: a("theta2_efficiency", 0.5)?,
        significance_fit,
        t_obs_s: a("observation_time_h", 0.0)? * 3600.0,
        n_off: a("off_regions", 0.0)?,
        reco_edges: logspace(lo, hi, n as usize),
        true_edges: logspace(-1.0, 3.0, 21),
    };
    for (name, v) in [("gamma_efficiency", s.efficiency), ("theta2_efficiency", s.theta_efficiency)] {
        if !(0.0..1.0).contains(&v) || v == 0.0 {
            return Err(format!("analysis.{name} = {v} must be in (0, 1)"));
        }
    }
    let valid = (0.0..1.0).contains(&s.global_gh) && s.global_theta > 0.0 && s.t_obs_s > 0.0 && s.n_off >= 1.0;
    if !valid {
        return Err("analysis: global_gammaness_cut in [0, 1), global_theta_cut > 0, observation_time_h > 0 and off_regions >= 1 are needed".into());
    }
    Ok(s)
}

fn logspace(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    (0..n).map(|i| 10f64.powf(lo + (hi - lo) * i as f64 / (n - 1) as f64)).collect()
}

/// One particle's selected events.
#[derive(Default)]
struct Particle {
    true_e: Vec<f64>,
    reco_e: Vec<f64>,
    gammaness: Vec<f64>,
    /// Gammas: θ to the true direction; protons: θ to the gamma source.
    theta: Vec<f64>,
    disp_sign_ok: Vec<bool>,
    weight: Vec<f64>,
    read: usize,
}

/// The thrown showers of every file of one particle's production (see [`super::production`]),
/// and whether the files are stereo DL2 (the first file's reader, for the source direction).
fn production_of(inputs: &[InputFile], role: &'static str) -> Result<(SimulationInfo, bool, String)> {
    let mut production = Production::new(role);
    let mut stereo = false;
    for input in inputs {
        let dl2 = Dl2Reader::open(&input.path)
            .map_err(|e| Error::msg(format!("{role} input {}: {}", input.name, e.message())))?;
        production.add(input, &dl2)?;
        stereo = dl2.stereo.is_some();
    }
    let sim = production.simulation()?;
    if sim.n_showers <= 0.0 {
        return Err(Error::msg(format!("{role} inputs {}: no thrown showers", production.describe())));
    }
    Ok((sim, stereo, production.describe()))
}

/// Reads one particle's DL2 files in turn: selection, finite reconstruction, θ, and weights to
/// `flux` with the thrown showers of all of them (`sim`).
#[allow(clippy::too_many_arguments)]
fn load(
    inputs: &[InputFile],
    role: &str,
    sim: &SimulationInfo,
    s: &Settings,
    primary: i64,
    source: Option<(f64, f64)>,
    flux: impl Fn(f64) -> f64,
) -> Result<Particle> {
    let mut p = Particle::default();
    for input in inputs {
        let name = format!("{role} input {}", input.name);
        let dl2 = Dl2Reader::open(&input.path).map_err(|e| Error::msg(format!("{name}: {}", e.message())))?;
        load_file(&dl2, sim, s, &name, primary, source, &flux, &mut p)?;
    }
    Ok(p)
}

#[allow(clippy::too_many_arguments)]
fn load_file(
    dl2: &Dl2Reader,
    sim: &SimulationInfo,
    s: &Settings,
    name: &str,
    primary: i64,
    source: Option<(f64, f64)>,
    flux: &impl Fn(f64) -> f64,
    p: &mut Particle,
) -> Result<()> {
    let sel = super::dl1_input::Dl2Selection::new(&s.selection, name)?.with_stereo_cuts(s.stereo_cuts);
    let stereo = dl2.stereo.is_some();
    let mut start = 0;
    while start < dl2.n_events {
        let end = (start + 65_536).min(dl2.n_events);
        let chunk = dl2.read_chunk(start, end)?;
        for (i, &r) in chunk.rows.iter().enumerate() {
            p.read += 1;
            if r.true_shower_primary_id != primary {
                return Err(Error::msg(format!(
                    "{name} contains particle id {} where {primary} is expected",
                    r.true_shower_primary_id
                )));
            }
            let ok = r.reco_energy.is_finite() && r.gammaness.is_finite() && r.reco_alt.is_finite();
            if !ok || !sel.passes_in(&chunk, i) {
                continue;
            }
            let theta = match source {
                Some((alt, az)) => angular_separation_deg(r.reco_az, r.reco_alt, az, alt),
                None => angular_separation_deg(r.reco_az, r.reco_alt, r.true_az, r.true_alt),
            };
            p.true_e.push(r.true_energy);
            p.reco_e.push(r.reco_energy);
            p.gammaness.push(r.gammaness);
            p.theta.push(theta);
            // sst1mpipe: mono angular resolutions leave out wrongly reconstructed disp signs;
            // stereo ones take every event.
            p.disp_sign_ok.push(stereo || r.reco_disp_sign == r.disp_sign);
            p.weight.push(flux(r.true_energy) / irf::simulated_flux(sim, s.t_obs_s, r.true_energy));
        }
        start = end;
    }
    Ok(())
}

fn resolution_rows(bins: &[ResolutionBin]) -> Vec<ResolutionRow> {
    bins.iter()
        .map(|b| ResolutionRow {
            low: b.low,
            high: b.high,
            center: (b.low * b.high).sqrt(),
            n_events: b.n_events as i64,
            resolution: if b.n_events == 0 { f64::NAN } else { b.resolution },
            bias: if b.n_events == 0 { f64::NAN } else { b.bias },
        })
        .collect()
}

fn cut_rows(bins: &[CutBin]) -> Vec<CutRow> {
    bins.iter()
        .map(|b| CutRow {
            low: b.low,
            high: b.high,
            center: (b.low * b.high).sqrt(),
            n_events: b.n_events as i64,
            cut: b.cut,
        })
        .collect()
}

fn crab(e: f64) -> f64 {
    CRAB_NORM_CM2 * e.powf(CRAB_INDEX)
}

impl Stage for PerformanceStage {
    fn name(&self) -> &'static str {
        "performance"
    }

    fn version(&self) -> &'static str {
        "2"
    }

    fn plan(&self, params: &Value, input_roles: &[&str], at: &str) -> Result<StagePlan> {
        let mut roles = input_roles.to_vec();
        roles.sort_unstable();
        if roles != ["gamma", "proton"] && roles != ["cuts", "gamma", "proton"] {
            return Err(Error::msg(format!(
                "{at}: stage performance takes the input roles \"gamma\" (DL2 of point-like gammas), \"proton\" (DL2 of diffuse protons; without them there is no background, ROC or sensitivity) and optionally \"cuts\" (a gh-cuts table), got {input_roles:?}"
            )));
        }
        let (gh, theta) = methods(params, at, roles.contains(&"cuts"))?;
        let used = method_keys(gh, theta);
        let mut config_keys = vec!["event_selection".to_string()];
        config_keys.extend(used.iter().map(|k| format!("analysis.{k}")));
        config_keys.extend(super::stereo_cut_plan_keys());
        let config_read: Vec<ConfigRead> =
            ["global_gammaness_cut", "gamma_efficiency", "global_theta_cut", "theta2_efficiency", "significance_fit"]
                .into_iter()
                .filter(|k| !used.contains(k))
                .map(|k| {
                    ConfigRead::new(
                        format!("analysis.{k}"),
                        "used only by another gh_cut/theta_cut method than this step's",
                    )
                })
                .collect();
        let mut outputs =
            vec![DeclaredOutput { role: "tables".into(), file: "performance.h5".into(), kind: "performance".into() }];
        for f in FIGURES {
            for ext in ["png", "svg"] {
                outputs.push(DeclaredOutput {
                    role: format!("{f}_{ext}"),
                    file: format!("{f}.{ext}").into(),
                    kind: format!("plot-{ext}"),
                });
            }
        }
        Ok(StagePlan { config_keys, config_read, outputs })
    }

    fn config_scope(&self) -> Vec<&'static str> {
        let mut scope = vec![
            "event_selection",
            "analysis.global_gammaness_cut",
            "analysis.gamma_efficiency",
            "analysis.global_theta_cut",
            "analysis.theta2_efficiency",
            "analysis.significance_fit",
        ];
        scope.extend([
            "analysis.observation_time_h",
            "analysis.off_regions",
            "analysis.log_energy_min_tev",
            "analysis.log_energy_max_tev",
            "analysis.n_energy_bins",
        ]);
        scope.extend(super::dl1_input::STEREO_CUT_KEYS);
        scope
    }

    fn config_for_inputs(&self, config: &Value, inputs: &[InputFile]) -> Option<Value> {
        super::stereo_cuts_for_inputs(config, inputs, &["gamma", "proton"])
    }

    fn check_config(
        &self,
        config: &Value,
        step: &StepSetup,
        file: &std::path::Path,
        at: &str,
    ) -> Result<Vec<ConfigWarning>> {
        let (gh, theta) = methods(step.params, at, step.input_roles.contains(&"cuts"))?;
        settings(config, gh, theta).map_err(|e| Error::msg(format!("{}: {e} (read by {at})", file.display())))?;
        Ok(super::stereo_cut_notices(config, at))
    }

    fn run(&self, ctx: &mut StageContext) -> Result<()> {
        let cut_input = ctx.inputs.get("cuts").and_then(|v| v.first());
        let (gh_method, theta_method) = methods(ctx.params, "performance", cut_input.is_some())?;
        let s = settings(ctx.config, gh_method, theta_method).map_err(Error::msg)?;
        let (g_in, p_in) = (
            production::files(ctx.inputs, "gamma", "performance")?,
            production::files(ctx.inputs, "proton", "performance")?,
        );
        let (g_sim, g_stereo, g_files) = production_of(g_in, "gamma")?;
        if g_sim.viewcone_max_deg > 0.0 {
            return Err(Error::msg(format!(
                "gamma input {g_files} is a diffuse simulation (view cone {} deg); the sensitivity is for a point source: give point-like gammas",
                g_sim.viewcone_max_deg
            )));
        }
        let (p_sim, p_stereo, p_files) = production_of(p_in, "proton")?;
        if g_stereo != p_stereo {
            let what = |stereo: bool| if stereo { "stereo" } else { "mono" };
            return Err(Error::msg(format!(
                "performance: gamma input {g_files} is {} DL2 and proton input {p_files} is {} DL2: one performance is of one telescope setup",
                what(g_stereo),
                what(p_stereo)
            )));
        }
        let first_gammas = Dl2Reader::open(&g_in[0].path)
            .map_err(|e| Error::msg(format!("gamma input {}: {}", g_in[0].name, e.message())))?;
        let _ = writeln!(
            ctx.log,
            "telescope setup: {}; gammas: {g_files}; protons: {p_files}",
            match first_gammas.stereo {
                Some([a, b]) => format!("stereo (telescopes {a} and {b})"),
                None => format!("mono (telescope {})", first_gammas.tel_id),
            }
        );
        let telescope_setup = match first_gammas.stereo {
            Some(_) => "stereo".to_string(),
            None => format!("tel_{:03}", first_gammas.tel_id),
        };
        if p_sim.viewcone_max_deg <= 0.0 {
            return Err(Error::msg(format!(
                "proton input {p_files} is point-like; the background needs a diffuse proton simulation"
            )));
        }
        let gammas = load(g_in, "gamma", &g_sim, &s, 0, None, |e| crab(e) * PER_M2)?;
        if gammas.true_e.is_empty() {
            return Err(Error::msg(format!(
                "no gamma of {g_files} passes event_selection with a reconstruction: nothing to measure"
            )));
        }
        // The source: the gammas' true direction (one point, shared by the production's files).
        let first = first_gammas.read(0, 1)?;
        drop(first_gammas);
        let source = first.first().map(|r| (r.true_alt, r.true_az)).ok_or_else(|| Error::msg("empty gamma DL2"))?;
        let protons =
            load(p_in, "proton", &p_sim, &s, 101, Some(source), |e| PROTON_NORM_CM2 * PER_M2 * e.powf(PROTON_INDEX))?;
        if protons.true_e.is_empty() {
            return Err(Error::msg(format!(
                "no proton of {p_files} passes event_selection with a reconstruction: no background, ROC or sensitivity can be computed"
            )));
        }

        // ROC before any cut.
        let roc = perf::roc_curve(&gammas.gammaness, &protons.gammaness);

        // Gammaness cut.
        let edges = &s.reco_edges;
        let (gh_cuts, global): (Vec<CutBin>, bool) = match gh_method {
            GhMethod::Table => {
                let f = cut_input.expect("table method has a cuts input");
                let rows = super::gh_cuts::read_cut_table(&f.path, &f.name)?;
                (
                    rows.iter()
                        .map(|r| CutBin { low: r.low, high: r.high, n_events: r.n_events as usize, cut: r.cut })
                        .collect(),
                    false,
                )
            }
            GhMethod::Global => {
                let n = edges.len() - 1;
                (
                    (0..n)
                        .map(|i| CutBin { low: edges[i], high: edges[i + 1], n_events: 0, cut: s.global_gh })
                        .collect(),
                    true,
                )
            }
            GhMethod::Efficiency => (efficiency_cuts(&gammas.gammaness, &gammas.reco_e, edges, s.efficiency)?.0, false),
            GhMethod::Significance => {
                // sst1mpipe's np.linspace(0.3, 0.95, 100), the same doubles.
                let candidates = crate::irf::smoothing::linspace(0.3, 0.95, 100);
                fn ev(p: &Particle) -> ScoredEvents<'_> {
                    ScoredEvents {
                        reco_energy: &p.reco_e,
                        gammaness: &p.gammaness,
                        theta_deg: &p.theta,
                        weight: &p.weight,
                    }
                }
                let cuts = perf::significance_cuts(
                    &ev(&gammas),
                    &ev(&protons),
                    edges,
                    &candidates,
                    s.global_theta,
                    BKG_RADIUS_DEG,
                    s.n_off,
                    s.significance_fit,
                );
                (cuts, false)
            }
        };
        // Global: `>` (sst1mpipe); per bin: `>=` the bin's cut (pyirf), as everywhere.
        let rule = if global {
            GhCut::Global(s.global_gh)
        } else {
            GhCut::Binned(
                gh_cuts
                    .iter()
                    .map(|b| CutRow {
                        low: b.low,
                        high: b.high,
                        center: (b.low * b.high).sqrt(),
                        n_events: b.n_events as i64,
                        cut: b.cut,
                    })
                    .collect(),
            )
        };
        let keep = |p: &Particle| -> Vec<usize> {
            (0..p.reco_e.len()).filter(|&i| rule.passes(p.reco_e[i], p.gammaness[i])).collect()
        };
        let (g_keep, p_keep) = (keep(&gammas), keep(&protons));
        let pick = |v: &[f64], idx: &[usize]| -> Vec<f64> { idx.iter().map(|&i| v[i]).collect() };

        // Resolutions after the cut.
        let energy_res =
            perf::energy_resolution(&pick(&gammas.true_e, &g_keep), &pick(&gammas.reco_e, &g_keep), &s.true_edges);
        let sign_ok: Vec<usize> = g_keep.iter().copied().filter(|&i| gammas.disp_sign_ok[i]).collect();
        let angular_res =
            perf::angular_resolution(&pick(&gammas.true_e, &sign_ok), &pick(&gammas.theta, &sign_ok), &s.true_edges);

        // θ cut and sensitivity.
        let (g_reco, g_theta, g_w) =
            (pick(&gammas.reco_e, &g_keep), pick(&gammas.theta, &g_keep), pick(&gammas.weight, &g_keep));
        let theta_cuts: Vec<CutBin> = match theta_method {
            ThetaMethod::Global => (0..edges.len() - 1)
                .map(|i| CutBin { low: edges[i], high: edges[i + 1], n_events: 0, cut: s.global_theta })
                .collect(),
            ThetaMethod::Efficiency => irf::percentile_cut(
                &g_theta,
                &g_reco,
                edges,
                100.0 * s.theta_efficiency,
                0.5,
                (Some(0.01), Some(1.0)),
                100,
            )
            .map_err(|e| Error::msg(e.to_string()))?,
        };
        let (p_reco, p_theta, p_w) =
            (pick(&protons.reco_e, &p_keep), pick(&protons.theta, &p_keep), pick(&protons.weight, &p_keep));
        let alpha = 1.0 / s.n_off;
        let curve = irf::sensitivity_curve(
            &WeightedEvents { reco_energy: &g_reco, angle_deg: &g_theta, weight: &g_w },
            &WeightedEvents { reco_energy: &p_reco, angle_deg: &p_theta, weight: &p_w },
            &theta_cuts,
            edges,
            alpha,
            (0.0, BKG_RADIUS_DEG),
            &STANDARD_DETECTION,
        )
        .map_err(|e| Error::msg(e.to_string()))?;
        let count_in = |reco: &[f64], lo: f64, hi: f64| reco.iter().filter(|&&e| e >= lo && e < hi).count();
        let (mut signal_total, mut background_total) = (0.0, 0.0);
        let sensitivity: Vec<SensitivityRow> = curve
            .iter()
            .map(|b| {
                let (ng, np) = (count_in(&g_reco, b.low, b.high), count_in(&p_reco, b.low, b.high));
                let enough = ng > MIN_SIMULATED && np > MIN_SIMULATED && b.relative_sensitivity.is_finite();
                let e = (b.low * b.high).sqrt();
                let rel = if enough { b.relative_sensitivity } else { f64::NAN };
                if enough {
                    signal_total += b.n_signal_weighted;
                    background_total += b.n_background_weighted * alpha;
                }
                let flux = rel * e * e * crab(e);
                SensitivityRow {
                    energy: e,
                    energy_min: b.low,
                    energy_max: b.high,
                    n_gamma_simulated: ng as i64,
                    n_proton_simulated: np as i64,
                    n_signal: b.n_signal_weighted,
                    n_background: b.n_background_weighted,
                    relative_sensitivity: rel,
                    flux_sensitivity: flux,
                    flux_sensitivity_erg: flux * TEV_TO_ERG,
                }
            })
            .collect();
        let (signal_rate, background_rate) = (signal_total / s.t_obs_s, background_total / s.t_obs_s);
        let detection =
            perf::time_to_detection(signal_rate, background_rate, alpha, &STANDARD_DETECTION, MAX_DETECTION_S);

        // Tables.
        let roc_rows: Vec<RocRow> = (0..roc.threshold.len())
            .map(|i| RocRow {
                threshold: roc.threshold[i],
                false_positive_rate: roc.false_positive_rate[i],
                true_positive_rate: roc.true_positive_rate[i],
            })
            .collect();
        let summary = SummaryRow {
            roc_auc: roc.auc,
            observation_time_h: s.t_obs_s / 3600.0,
            time_to_detection_s: detection.unwrap_or(f64::NAN),
            signal_rate,
            background_rate,
            n_gamma_selected: gammas.true_e.len() as i64,
            n_proton_selected: protons.true_e.len() as i64,
        };
        let method = match gh_method {
            GhMethod::Efficiency => format!("efficiency {}", s.efficiency),
            GhMethod::Significance if s.significance_fit => {
                "significance (max of the GCV-smoothed Li & Ma scan)".into()
            }
            GhMethod::Significance => "significance (max Li & Ma)".into(),
            GhMethod::Global => format!("global > {}", s.global_gh),
            GhMethod::Table => format!("table {}", cut_input.map(|f| f.name.as_str()).unwrap_or("")),
        };
        write_performance(
            &ctx.work_dir.join("performance.h5"),
            ctx.activity_key,
            ctx.pipeline_version,
            &PerformanceTables {
                energy_resolution: resolution_rows(&energy_res),
                angular_resolution: resolution_rows(&angular_res),
                roc: roc_rows,
                gammaness_cuts: cut_rows(&gh_cuts),
                theta_cuts: cut_rows(&theta_cuts),
                sensitivity: &sensitivity,
                summary,
                gammaness_cut_method: &method,
                telescope_setup: &telescope_setup,
            },
        )?;

        // Figures.
        plots(ctx.work_dir, &energy_res, &angular_res, &roc, &sensitivity, &method, s.t_obs_s / 3600.0)?;
        let best = sensitivity
            .iter()
            .filter(|r| r.relative_sensitivity.is_finite())
            .map(|r| r.relative_sensitivity)
            .fold(f64::INFINITY, f64::min);
        let _ = writeln!(
            ctx.log,
            "gammas {} of {} selected, protons {} of {}; ROC AUC {:.4}; gammaness cut {method}: {} gammas, {} protons pass; best sensitivity {:.2}% Crab in {} h; Crab detected at 5 sigma in {}",
            gammas.true_e.len(),
            gammas.read,
            protons.true_e.len(),
            protons.read,
            roc.auc,
            g_keep.len(),
            p_keep.len(),
            100.0 * best,
            s.t_obs_s / 3600.0,
            detection.map(|t| format!("{t:.0} s")).unwrap_or_else(|| "more than 500 h".into())
        );
        Ok(())
    }
}

fn plots(
    dir: &std::path::Path,
    energy: &[ResolutionBin],
    angular: &[ResolutionBin],
    roc: &perf::Roc,
    sensitivity: &[SensitivityRow],
    method: &str,
    hours: f64,
) -> Result<()> {
    let centers = |b: &[ResolutionBin]| b.iter().map(|b| (b.low * b.high).sqrt()).collect::<Vec<_>>();
    let spans = |b: &[ResolutionBin]| b.iter().map(|b| (b.low, b.high)).collect::<Vec<_>>();
    let nan_if_empty = |b: &ResolutionBin, v: f64| if b.n_events == 0 { f64::NAN } else { v };

    let mut f = Figure::new(
        &format!("Energy resolution and bias (gammaness cut: {method})"),
        Axis::new("true energy [TeV]", Scale::Log),
        Axis::new("(E_reco − E_true) / E_true", Scale::Linear),
    );
    f.add(
        Series::line(
            "resolution (68.27% of |ΔE/E|)",
            centers(energy),
            energy.iter().map(|b| nan_if_empty(b, b.resolution)).collect(),
            COLORS[0],
        )
        .with_markers()
        .with_x_span(spans(energy)),
    );
    f.add(
        Series::line(
            "bias (median ΔE/E)",
            centers(energy),
            energy.iter().map(|b| nan_if_empty(b, b.bias)).collect(),
            COLORS[1],
        )
        .with_markers()
        .with_x_span(spans(energy)),
    );
    f.write(dir, "energy_resolution")?;

    let mut f = Figure::new(
        "Angular resolution (68.27% containment)",
        Axis::new("true energy [TeV]", Scale::Log),
        Axis::new("angular resolution [deg]", Scale::Linear),
    );
    f.add(
        Series::line(
            "point-like gammas",
            centers(angular),
            angular.iter().map(|b| nan_if_empty(b, b.resolution)).collect(),
            COLORS[0],
        )
        .with_markers()
        .with_x_span(spans(angular)),
    );
    f.write(dir, "angular_resolution")?;

    let mut f = Figure::new(
        &format!("ROC of the gammaness (AUC {:.3})", roc.auc),
        Axis::new("false positive rate (protons kept)", Scale::Linear).range(0.0, 1.0),
        Axis::new("true positive rate (gammas kept)", Scale::Linear).range(0.0, 1.0),
    );
    f.add(Series::line("gammaness", roc.false_positive_rate.clone(), roc.true_positive_rate.clone(), COLORS[0]));
    f.add(Series::line("chance", vec![0.0, 1.0], vec![0.0, 1.0], COLORS[4]).dashed());
    f.write(dir, "roc")?;

    let e: Vec<f64> = sensitivity.iter().map(|r| r.energy).collect();
    let mut f = Figure::new(
        &format!("Point-source sensitivity, {hours} h (5σ, ≥10 events, ≥5% of background)"),
        Axis::new("reconstructed energy [TeV]", Scale::Log),
        Axis::new("E² F [erg cm⁻² s⁻¹]", Scale::Log),
    );
    f.add(
        Series::points(
            "sst1mflow (this MC)",
            e.clone(),
            sensitivity.iter().map(|r| r.flux_sensitivity_erg).collect(),
            COLORS[0],
        )
        .with_x_span(sensitivity.iter().map(|r| (r.energy_min, r.energy_max)).collect()),
    );
    let grid: Vec<f64> = (0..=40).map(|i| 10f64.powf(-1.0 + 4.0 * i as f64 / 40.0)).collect();
    for (frac, label, color) in [(1.0, "Crab", "#333333"), (0.1, "10% Crab", "#888888"), (0.01, "1% Crab", "#bbbbbb")] {
        let y = grid.iter().map(|&x| frac * x * x * crab(x) * TEV_TO_ERG).collect();
        f.add(Series::line(label, grid.clone(), y, color).dashed());
    }
    let finite: Vec<f64> =
        sensitivity.iter().map(|r| r.flux_sensitivity_erg).filter(|v| v.is_finite() && *v > 0.0).collect();
    if !finite.is_empty() {
        let lo = finite.iter().cloned().fold(f64::INFINITY, f64::min) / 5.0;
        let hi = finite.iter().cloned().fold(0.0, f64::max).max(CRAB_NORM_CM2 * TEV_TO_ERG) * 3.0;
        f.y = f.y.clone().range(lo, hi);
    }
    f.x = f.x.clone().range(0.1, 1000.0);
    f.write(dir, "sensitivity")
}
