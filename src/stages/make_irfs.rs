//! The `make-irfs` stage: full-enclosure GADF IRFs from MC DL2, as sst1mpipe's
//! `sst1mpipe_mc_make_irfs` makes them (pyirf's quantities, [`crate::irf`]), with a global
//! gammaness cut.
//!
//! Inputs: `gamma` (DL2 of a diffuse gamma simulation centred on the pointing), `proton`
//! (DL2 of protons, for the background) and optionally `cuts` (a `gh-cuts` table: the
//! energy-dependent gammaness cut replaces the global one, and its hash goes in the headers). Config keys: `event_selection`,
//! `analysis.global_gammaness_cut`, `analysis.log_energy_min_tev`, `analysis.log_energy_max_tev`,
//! `analysis.n_energy_bins`, `analysis.n_bins_migration`, `analysis.fov_offset_max_deg`,
//! `analysis.nbins_fov_offset`, `analysis.fov_offset_bg_max_deg`, `analysis.nbins_fov_offset_bg`,
//! `analysis.source_offset_max_deg`. Stereo DL2 (`dl2-stereo` outputs, for both gammas and
//! protons: mixing mono and stereo is refused) gives a stereo IRF: sst1mpipe's stereo quality
//! cuts (`analysis.stereo_*_cut`) apply as the events are loaded, `event_selection` applies to
//! both telescopes' parameters, and the headers say `N_TELS = 2`, `STEREOCT` (the cuts) and
//! TELESCOP `SST1M_stereo` (mono IRFs: `N_TELS = 1`), which `dl2-dl3`'s contract compares.
//!
//! Parameter `true_energy_scaling` [false] (sst1mpipe's `--true_energy_scaling`): true
//! energies and the simulated energy range are multiplied by `analysis.true_energy_scaling_factor`
//! (a biased IRF, for systematic studies; the headers carry `ETRUESCL`). Without it that key is
//! read but not applied, and `analysis.nbins_source_offset` is never used (as in sst1mpipe).
//! Parameter `event_class` (sst1mpipe's `--event-classes`, one class per step): only the events
//! of that `event_type` count, from DL2 classified by `event-classes` (gammas and protons by the
//! same misdirection model and edges); the headers say `EVTCLASS` and `EVTCLSID`, which
//! `dl2-dl3` compares.
//!
//! Binning as sst1mpipe: true energy geomspace(E_min, E_max of the simulation, 21) (EDISP: 51
//! edges), reco energy logspace(log_energy_min, log_energy_max, n_energy_bins), migration
//! linspace(0.1, 4, n_bins_migration), offsets linspace(0, fov_offset_max, nbins_fov_offset),
//! background offsets linspace(0, fov_offset_bg_max, nbins_fov_offset_bg), PSF radius
//! linspace(0, source_offset_max, nbins_fov_offset_bg) (sst1mpipe's choice of bin count).
//! Events pass `event_selection` and `gammaness > cut` (strict, as sst1mpipe). Protons are
//! weighted to pyirf's `IRFDOC_PROTON_SPECTRUM` (sst1mpipe uses the tabulated DAMPE p+He
//! spectrum) for 50 h.
//!
//! Output `irfs.fits`: PRIMARY, `EFFECTIVE AREA`, `POINT SPREAD FUNCTION`, `ENERGY DISPERSION`,
//! `BACKGROUND` (s⁻¹ MeV⁻¹ sr⁻¹), with the GADF HDUCLAS keywords gammapy needs and, in every
//! header, our provenance: the activity key (after a `sst1mflow_activity_key` comment, so
//! `lineage` finds a copy), the pipeline version, the gammaness cut, the event selection, and
//! the RF models behind the DL2 (from its `sst1mflow_models` attribute), and the node the
//! simulation stands for (`ZEN_PNT`, `AZ_PNT`, `NSBRATE`, `IRFNODE` = `ze20_az180_nsb50`), by
//! which `dl2-dl3` chooses among IRFs.
use super::gh_cuts::GhCut;
use super::params::Params;
use super::production::{self, Production};
use super::{ConfigRead, ConfigWarning, DeclaredOutput, InputFile, Stage, StageContext, StagePlan, StepSetup};
use crate::astro::angular_separation_deg;
use crate::error::{Error, Result};
use crate::io::dl2::Dl2Reader;
use crate::io::fits::{self, BinTable, Card, Column, ColumnData, Value as Fv};
use crate::io::gadf::{self, CutIdentity};
use crate::irf::{self, SimulationInfo};
use crate::reco::EventSelection;
use serde_json::Value;
use std::path::Path;

pub struct MakeIrfsStage;

const CHUNK: usize = 16_384;
const T_OBS_S: f64 = 50.0 * 3600.0;
/// pyirf's IRFDOC_PROTON_SPECTRUM: 9.8e-6 (E/TeV)^-2.62 cm⁻² s⁻¹ TeV⁻¹ sr⁻¹.
const PROTON_NORM_M2: f64 = 9.8e-6 * 1e4;
const PROTON_INDEX: f64 = -2.62;

fn config_keys(global_cut: bool) -> Vec<String> {
    let mut keys = vec!["event_selection".to_string()];
    if global_cut {
        keys.push("analysis.global_gammaness_cut".into());
    }
    keys.extend(ANALYSIS_KEYS.map(String::from));
    keys
}

const ANALYSIS_KEYS: [&str; 9] = [
    "analysis.log_energy_min_tev",
    "analysis.log_energy_max_tev",
    "analysis.n_energy_bins",
    "analysis.n_bins_migration",
    "analysis.fov_offset_max_deg",
    "analysis.nbins_fov_offset",
    "analysis.fov_offset_bg_max_deg",
    "analysis.nbins_fov_offset_bg",
    "analysis.source_offset_max_deg",
];

struct Settings {
    selection: EventSelection,
    stereo_cuts: super::dl1_input::StereoCuts,
    cut: GhCut,
    reco_e: Vec<f64>,
    migration: Vec<f64>,
    offset: Vec<f64>,
    bg_offset: Vec<f64>,
    rad: Vec<f64>,
    /// `analysis.true_energy_scaling_factor` with the parameter `true_energy_scaling` (else 1):
    /// true energies and the simulated energy range are multiplied by it (biased IRFs).
    true_energy_scale: f64,
}

fn number(config: &Value, key: &str) -> std::result::Result<f64, String> {
    config
        .get("analysis")
        .and_then(|a| a.get(key))
        .and_then(Value::as_f64)
        .ok_or_else(|| format!("analysis.{key} must be a number"))
}

fn count(config: &Value, key: &str) -> std::result::Result<usize, String> {
    let n = number(config, key)?;
    if n < 2.0 || n.fract() != 0.0 {
        return Err(format!("analysis.{key} must be an integer of at least 2 (it counts bin edges), got {n}"));
    }
    Ok(n as usize)
}

fn linspace(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    (0..n).map(|i| lo + (hi - lo) * i as f64 / (n - 1) as f64).collect()
}

fn geomspace(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    let (a, b) = (lo.ln(), hi.ln());
    (0..n).map(|i| (a + (b - a) * i as f64 / (n - 1) as f64).exp()).collect()
}

/// The parameter `true_energy_scaling` [false]: sst1mpipe's `--true_energy_scaling`.
fn true_energy_scaling(params: &Value, at: &str) -> Result<bool> {
    Params::new(params, &["true_energy_scaling", "event_class"], "make-irfs", at)?;
    match params.get("true_energy_scaling") {
        None => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(other) => {
            Err(Error::msg(format!("{at}.params.true_energy_scaling: expected true or false, found {other}")))
        }
    }
}

fn settings(config: &Value, binned: Option<Vec<super::gh_cuts::CutRow>>) -> std::result::Result<Settings, String> {
    let selection = EventSelection::from_config(config)?;
    let true_energy_scale = match config.pointer("/analysis/true_energy_scaling_factor") {
        None => 1.0,
        Some(v) => match v.as_f64() {
            Some(x) if x.is_finite() && x > 0.0 => x,
            _ => return Err(format!("analysis.true_energy_scaling_factor = {v} must be a positive number")),
        },
    };
    let cut = match binned {
        Some(table) => GhCut::Binned(table),
        None => {
            let cut = number(config, "global_gammaness_cut")?;
            if !(0.0..1.0).contains(&cut) {
                return Err(format!("analysis.global_gammaness_cut = {cut} must be in [0, 1)"));
            }
            GhCut::Global(cut)
        }
    };
    let (lo, hi) = (number(config, "log_energy_min_tev")?, number(config, "log_energy_max_tev")?);
    super::check_energy_binning(lo, hi, number(config, "n_energy_bins")?)?;
    let positive = |k: &str| {
        number(config, k).and_then(|v| if v > 0.0 { Ok(v) } else { Err(format!("analysis.{k} must be positive")) })
    };
    Ok(Settings {
        selection,
        stereo_cuts: super::dl1_input::StereoCuts::from_config(config).map_err(|e| e.message().to_string())?,
        cut,
        reco_e: linspace(lo, hi, count(config, "n_energy_bins")?).into_iter().map(|x| 10f64.powf(x)).collect(),
        migration: linspace(0.1, 4.0, count(config, "n_bins_migration")?),
        offset: linspace(0.0, positive("fov_offset_max_deg")?, count(config, "nbins_fov_offset")?),
        true_energy_scale,
        bg_offset: linspace(0.0, positive("fov_offset_bg_max_deg")?, count(config, "nbins_fov_offset_bg")?),
        rad: linspace(0.0, positive("source_offset_max_deg")?, count(config, "nbins_fov_offset_bg")?),
    })
}

/// Selected events of one DL2: (true E, reco E, true offset, θ, reco offset), and the simulation.
struct Events {
    true_e: Vec<f64>,
    reco_e: Vec<f64>,
    true_offset: Vec<f64>,
    theta: Vec<f64>,
    reco_offset: Vec<f64>,
    sim: SimulationInfo,
    /// The simulation's pointing (alt, az; deg) and NSB (GHz): the IRF's node.
    node: (f64, f64, f64),
    models: String,
    /// The `sst1mflow_event_classes` attribute of the first file (empty when unclassified).
    classification: String,
    read: usize,
    /// 2 for stereo DL2, else 1.
    n_tels: i64,
    /// The files, for messages.
    files: String,
}

/// Reads every DL2 file of one particle's production (see [`super::production`]): the thrown
/// showers of all of them, and the selected events of each in turn.
fn load(inputs: &[InputFile], role: &'static str, s: &Settings, class: Option<i64>) -> Result<Events> {
    let mut production = Production::new(role);
    let (mut true_e, mut reco_e, mut true_offset, mut theta, mut reco_offset) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut read, mut n_tels) = (0, 1);
    let mut classification: Option<String> = None;
    for input in inputs {
        let dl2 = Dl2Reader::open(&input.path)
            .map_err(|e| Error::msg(format!("{role} input {}: {}", input.name, e.message())))?;
        production.add(input, &dl2)?;
        if class.is_some() {
            let this = super::misdirection::classification_identity(&dl2.classification);
            match &classification {
                None => classification = Some(dl2.classification.clone()),
                Some(first) if super::misdirection::classification_identity(first) != this => {
                    return Err(Error::msg(format!(
                        "{role} inputs {} and {}: classified with other misdirection models or edges",
                        production.describe(),
                        input.name
                    )))
                }
                Some(_) => {}
            }
        }
        let run = dl2.run.expect("checked by the production");
        if run.source_offset != 0.0 && run.max_viewcone_radius > 0.0 {
            return Err(Error::msg(format!(
                "{role} input {}: a diffuse simulation centred {} deg away from the pointing; offset-dependent IRFs need the view cone centred on the pointing",
                input.name, run.source_offset
            )));
        }
        n_tels = if dl2.stereo.is_some() { 2 } else { 1 };
        let selection = super::dl1_input::Dl2Selection::new(&s.selection, &format!("{role} input {}", input.name))?
            .with_stereo_cuts(s.stereo_cuts)
            .with_event_class(class, &dl2, &format!("{role} input {}", input.name))?;
        let mut start = 0;
        while start < dl2.n_events {
            let end = (start + CHUNK).min(dl2.n_events);
            let chunk = dl2.read_chunk(start, end)?;
            for (i, r) in chunk.rows.iter().enumerate() {
                read += 1;
                let selected = selection.passes_in(&chunk, i);
                let passes_cut = s.cut.passes(r.reco_energy, r.gammaness);
                if !selected || !passes_cut || !r.reco_alt.is_finite() || !r.reco_energy.is_finite() {
                    continue;
                }
                let (p_az, p_alt) = (r.true_az_tel, r.true_alt_tel);
                true_e.push(r.true_energy * s.true_energy_scale);
                reco_e.push(r.reco_energy);
                true_offset.push(angular_separation_deg(p_az, p_alt, r.true_az, r.true_alt));
                reco_offset.push(angular_separation_deg(p_az, p_alt, r.reco_az, r.reco_alt));
                theta.push(angular_separation_deg(r.reco_az, r.reco_alt, r.true_az, r.true_alt));
            }
            start = end;
        }
    }
    let mut sim = production.simulation()?;
    sim.energy_min_tev *= s.true_energy_scale;
    sim.energy_max_tev *= s.true_energy_scale;
    let run = production.run().expect("at least one file");
    Ok(Events {
        true_e,
        reco_e,
        true_offset,
        theta,
        reco_offset,
        sim,
        node: (run.pointing_alt, run.pointing_az, run.nsb_rate),
        models: production.models().to_string(),
        classification: classification.unwrap_or_default(),
        read,
        n_tels,
        files: production.describe(),
    })
}

/// sst1mpipe's node directory name, `ze<zenith>_az<azimuth>_nsb<NSB in MHz>` (rounded).
pub fn node_name(alt: f64, az: f64, nsb_ghz: f64) -> String {
    format!("ze{:.0}_az{:.0}_nsb{:.0}", 90.0 - alt, az, nsb_ghz * 1000.0)
}

fn one_row(name: &str, unit: &str, values: Vec<f64>) -> Column {
    let n = values.len();
    Column::array(name, unit, &[n], ColumnData::F32(values.into_iter().map(|v| v as f32).collect()))
}

fn axis(prefix: &str, unit: &str, edges: &[f64]) -> [Column; 2] {
    [
        one_row(&format!("{prefix}_LO"), unit, edges[..edges.len() - 1].to_vec()),
        one_row(&format!("{prefix}_HI"), unit, edges[1..].to_vec()),
    ]
}

/// Row-major `[a][b]…` (energy first) → the GADF cell order (energy fastest).
fn transpose(values: &[f64], dims: &[usize]) -> Vec<f32> {
    let n: usize = dims.iter().product();
    let mut out = vec![0f32; n];
    for (flat, v) in values.iter().enumerate() {
        // Index in row-major order over `dims`, rewritten with the first axis fastest.
        let mut rest = flat;
        let mut idx = vec![0usize; dims.len()];
        for d in (0..dims.len()).rev() {
            idx[d] = rest % dims[d];
            rest /= dims[d];
        }
        let mut target = 0;
        for d in (0..dims.len()).rev() {
            target = target * dims[d] + idx[d];
        }
        out[target] = *v as f32;
    }
    out
}

fn hdu(extname: &str, class2: &str, class4: &str, columns: Vec<Column>, provenance: &[Card]) -> BinTable {
    let mut cards = gadf::hdu_class_cards("0.2", &["RESPONSE", class2, "FULL-ENCLOSURE", class4]);
    cards.extend_from_slice(provenance);
    BinTable { extname: extname.into(), n_rows: 1, columns, cards }
}

impl Stage for MakeIrfsStage {
    fn name(&self) -> &'static str {
        "make-irfs"
    }

    fn version(&self) -> &'static str {
        "3"
    }

    fn plan(&self, params: &Value, input_roles: &[&str], at: &str) -> Result<StagePlan> {
        let scaling = true_energy_scaling(params, at)?;
        super::misdirection::event_class(params, at)?;
        let mut roles = input_roles.to_vec();
        roles.sort_unstable();
        if roles != ["gamma", "proton"] && roles != ["cuts", "gamma", "proton"] {
            return Err(Error::msg(format!(
                "{at}: stage make-irfs takes the input roles \"gamma\" (DL2 of diffuse gammas), \"proton\" (DL2 of protons: without them there is no background IRF) and optionally \"cuts\" (a gh-cuts table), got {input_roles:?}"
            )));
        }
        let mut keys = config_keys(!roles.contains(&"cuts"));
        keys.extend(super::stereo_cut_plan_keys());
        let mut read = vec![ConfigRead::new(
            "analysis.nbins_source_offset",
            "not used, as in sst1mpipe (whose line reading it is commented out): the PSF's radius axis has nbins_fov_offset_bg edges",
        )];
        let factor = "analysis.true_energy_scaling_factor";
        if scaling {
            keys.push(factor.into());
        } else {
            read.push(ConfigRead::new(
                factor,
                "applied only with the step parameter true_energy_scaling: true (sst1mpipe's --true_energy_scaling)",
            ));
        }
        if roles.contains(&"cuts") {
            read.push(ConfigRead::new(
                "analysis.global_gammaness_cut",
                "the step's cut table (role \"cuts\") replaces it",
            ));
        }
        Ok(StagePlan {
            config_keys: keys,
            config_read: read,
            outputs: vec![DeclaredOutput { role: "irfs".into(), file: "irfs.fits".into(), kind: "irf".into() }],
        })
    }

    fn config_scope(&self) -> Vec<&'static str> {
        let mut scope = vec![
            "event_selection",
            "analysis.global_gammaness_cut",
            "analysis.true_energy_scaling_factor",
            "analysis.nbins_source_offset",
        ];
        scope.extend(ANALYSIS_KEYS);
        scope.extend(super::dl1_input::STEREO_CUT_KEYS);
        scope
    }

    fn config_for_inputs(&self, config: &Value, inputs: &[InputFile]) -> Option<Value> {
        super::stereo_cuts_for_inputs(config, inputs, &["gamma", "proton"])
    }

    fn check_config(&self, config: &Value, step: &StepSetup, file: &Path, at: &str) -> Result<Vec<ConfigWarning>> {
        // The global cut is only applied (and so only in the config subset) without a cut table.
        let mut config = config.clone();
        if !true_energy_scaling(step.params, at)? {
            if let Some(a) = config.get_mut("analysis").and_then(Value::as_object_mut) {
                a.remove("true_energy_scaling_factor");
            }
        }
        let binned = step.input_roles.contains(&"cuts");
        if binned {
            if let Some(a) = config.get_mut("analysis").and_then(Value::as_object_mut) {
                a.remove("global_gammaness_cut");
            }
        }
        settings(&config, binned.then(Vec::new))
            .map_err(|e| Error::msg(format!("{}: {e} (read by {at})", file.display())))?;
        Ok(super::stereo_cut_notices(&config, at))
    }

    fn run(&self, ctx: &mut StageContext) -> Result<()> {
        let cut_input = ctx.inputs.get("cuts").and_then(|v| v.first());
        let binned = match cut_input {
            Some(f) => Some(super::gh_cuts::read_cut_table(&f.path, &f.name)?),
            None => None,
        };
        let s = settings(ctx.config, binned).map_err(Error::msg)?;
        if s.true_energy_scale != 1.0 {
            let _ = writeln!(
                ctx.log,
                "true energies (and the simulated energy range) scaled by {} (analysis.true_energy_scaling_factor)",
                s.true_energy_scale
            );
        }
        let class = super::misdirection::event_class(ctx.params, "make-irfs")?;
        let gammas = load(production::files(ctx.inputs, "gamma", "make-irfs")?, "gamma", &s, class)?;
        let protons = load(production::files(ctx.inputs, "proton", "make-irfs")?, "proton", &s, class)?;
        if super::misdirection::classification_identity(&gammas.classification)
            != super::misdirection::classification_identity(&protons.classification)
        {
            return Err(Error::msg(format!(
                "make-irfs: gamma input {} and proton input {} were classified with other misdirection models or edges",
                gammas.files, protons.files
            )));
        }
        if let Some(c) = class {
            let _ = writeln!(ctx.log, "event class {c} only (event_type = {c})");
        }
        if gammas.n_tels != protons.n_tels {
            let what = |n: i64| if n == 2 { "stereo" } else { "mono" };
            return Err(Error::msg(format!(
                "make-irfs: gamma input {} is {} DL2 and proton input {} is {} DL2: one IRF is of one telescope setup",
                gammas.files,
                what(gammas.n_tels),
                protons.files,
                what(protons.n_tels)
            )));
        }
        let _ = writeln!(
            ctx.log,
            "gammas ({}): {} of {} events pass the selection and the gammaness cut ({}); protons ({}): {} of {}",
            gammas.files,
            gammas.true_e.len(),
            gammas.read,
            match &s.cut {
                GhCut::Global(c) => format!("> {c}"),
                GhCut::Binned(t) => format!("energy-dependent, {} bins", t.len()),
            },
            protons.files,
            protons.true_e.len(),
            protons.read
        );
        if gammas.true_e.is_empty() {
            return Err(Error::msg(
                "no gamma event passes event_selection and the gammaness cut: no IRF can be computed",
            ));
        }
        let g = &gammas.sim;
        let true_e = geomspace(g.energy_min_tev, g.energy_max_tev, 21);
        let edisp_e = geomspace(g.energy_min_tev, g.energy_max_tev, 51);
        let irf_err = |what: &str, e: irf::IrfError| Error::msg(format!("{what}: {e}"));
        let aeff =
            irf::effective_area_per_energy_and_offset(&gammas.true_e, &gammas.true_offset, g, &true_e, &s.offset)
                .map_err(|e| irf_err("effective area (gamma input)", e))?;
        let edisp = irf::energy_dispersion(
            &gammas.true_e,
            &gammas.reco_e,
            &gammas.true_offset,
            &edisp_e,
            &s.migration,
            &s.offset,
        )
        .map_err(|e| irf_err("energy dispersion", e))?;
        let psf = irf::psf_table(&gammas.true_e, &gammas.true_offset, &gammas.theta, &true_e, &s.offset, &s.rad)
            .map_err(|e| irf_err("PSF", e))?;
        if gammas.node != protons.node {
            return Err(Error::msg(format!(
                "gamma and proton inputs were simulated at different nodes (pointing alt/az, NSB): {:?} vs {:?}; an IRF belongs to one node",
                gammas.node, protons.node
            )));
        }
        let p = &protons.sim;
        if p.viewcone_max_deg <= 0.0 {
            return Err(Error::msg(
                "proton input: a point-like proton simulation cannot give a background rate per solid angle",
            ));
        }
        let weights: Vec<f64> = protons
            .true_e
            .iter()
            .map(|&e| PROTON_NORM_M2 * e.powf(PROTON_INDEX) / irf::simulated_flux(p, T_OBS_S, e))
            .collect();
        let bkg_tev =
            irf::background_2d(&protons.reco_e, &protons.reco_offset, &weights, &s.reco_e, &s.bg_offset, T_OBS_S)
                .map_err(|e| irf_err("background", e))?;
        let bkg_mev: Vec<f64> = bkg_tev.iter().map(|v| v * 1e-6).collect();
        let (n_e, n_m, n_o, n_r) = (true_e.len() - 1, s.migration.len() - 1, s.offset.len() - 1, s.rad.len() - 1);
        let empty: Vec<String> = (0..n_e)
            .filter(|&e| (0..n_o).all(|o| aeff[e * n_o + o] == 0.0))
            .map(|e| format!("{:.3}-{:.3}", true_e[e], true_e[e + 1]))
            .collect();
        if !empty.is_empty() {
            let _ = writeln!(
                ctx.log,
                "true-energy bins without selected gammas (effective area 0): {} TeV",
                empty.join(", ")
            );
        }
        let str_card = |k: &str, v: &str, c: &str| Card::new(k, Fv::Str(v.into()), c);
        let cut_id = match (&s.cut, cut_input) {
            (GhCut::Global(c), _) => CutIdentity::Global(*c),
            (GhCut::Binned(_), Some(f)) => CutIdentity::Table { sha256: f.hash.clone() },
            (GhCut::Binned(_), None) => unreachable!("a binned cut comes from a cuts input"),
        };
        let mut provenance = gadf::software_cards(self.name(), ctx.pipeline_version);
        provenance.extend(gadf::analysis_cards(
            &cut_id,
            &s.selection,
            &gammas.models,
            "RF models behind the gamma DL2",
        ));
        let (alt, az, nsb) = gammas.node;
        provenance.push(Card::new("ZEN_PNT", Fv::Float(90.0 - alt), "[deg] zenith of the simulated pointing"));
        provenance.push(Card::new("AZ_PNT", Fv::Float(az), "[deg] azimuth of the simulated pointing"));
        provenance.push(Card::new("NSBRATE", Fv::Float(nsb), "[GHz] simulated night-sky background"));
        provenance.push(str_card("IRFNODE", &node_name(alt, az, nsb), "zenith/azimuth/NSB node"));
        provenance.push(Card::new("N_TELS", Fv::Int(gammas.n_tels), "telescopes: 2 for stereo DL2, 1 for mono"));
        if gammas.n_tels == 2 {
            provenance.push(str_card("STEREOCT", &s.stereo_cuts.to_json().to_string(), "stereo quality cuts applied"));
        }
        provenance.extend(super::misdirection::class_cards(class, &gammas.classification));
        if s.true_energy_scale != 1.0 {
            // A biased IRF says so (sst1mpipe's --true_energy_scaling only logs it).
            provenance.push(Card::new("ETRUESCL", Fv::Float(s.true_energy_scale), "true energies scaled by this"));
        }
        // The marker, then the key within the next card: what `lineage` looks for in a copy.
        provenance.extend(gadf::activity_key_cards(ctx.activity_key));
        let offset_cols = axis("THETA", "deg", &s.offset);
        let columns_aeff = [
            axis("ENERG", "TeV", &true_e).to_vec(),
            offset_cols.to_vec(),
            vec![Column::array("EFFAREA", "m2", &[n_e, n_o], ColumnData::F32(transpose(&aeff, &[n_e, n_o])))],
        ]
        .concat();
        let columns_psf = [
            axis("ENERG", "TeV", &true_e).to_vec(),
            offset_cols.to_vec(),
            axis("RAD", "deg", &s.rad).to_vec(),
            vec![Column::array("RPSF", "sr-1", &[n_e, n_o, n_r], ColumnData::F32(transpose(&psf, &[n_e, n_o, n_r])))],
        ]
        .concat();
        let n_ed = edisp_e.len() - 1;
        let columns_edisp = [
            axis("ENERG", "TeV", &edisp_e).to_vec(),
            axis("MIGRA", "", &s.migration).to_vec(),
            offset_cols.to_vec(),
            vec![Column::array("MATRIX", "", &[n_ed, n_m, n_o], ColumnData::F32(transpose(&edisp, &[n_ed, n_m, n_o])))],
        ]
        .concat();
        let (n_re, n_bo) = (s.reco_e.len() - 1, s.bg_offset.len() - 1);
        let columns_bkg = [
            axis("ENERG", "TeV", &s.reco_e).to_vec(),
            axis("THETA", "deg", &s.bg_offset).to_vec(),
            vec![Column::array(
                "BKG",
                "s-1 MeV-1 sr-1",
                &[n_re, n_bo],
                ColumnData::F32(transpose(&bkg_mev, &[n_re, n_bo])),
            )],
        ]
        .concat();
        let tables = [
            hdu("EFFECTIVE AREA", "EFF_AREA", "AEFF_2D", columns_aeff, &provenance),
            hdu("POINT SPREAD FUNCTION", "PSF", "PSF_TABLE", columns_psf, &provenance),
            hdu("ENERGY DISPERSION", "EDISP", "EDISP_2D", columns_edisp, &provenance),
            hdu("BACKGROUND", "BKG", "BKG_2D", columns_bkg, &provenance),
        ];
        let mut primary = provenance.clone();
        let telescop = if gammas.n_tels == 2 { "SST1M_stereo" } else { "SST1M" };
        primary.insert(0, Card::new("TELESCOP", Fv::Str(telescop.into()), ""));
        fits::write(&ctx.work_dir.join("irfs.fits"), &primary, &tables)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_puts_energy_fastest() {
        // Row-major [E=2][θ=3] → cells with E fastest: (e0,t0),(e1,t0),(e0,t1)…
        let v = [0.0, 1.0, 2.0, 10.0, 11.0, 12.0];
        assert_eq!(transpose(&v, &[2, 3]), vec![0.0, 10.0, 1.0, 11.0, 2.0, 12.0]);
    }
}
