//! The SST-1M stages: the science computations the engine runs, each a function of (inputs,
//! config subset, parameters) → output files, knowing nothing about SQLite, keys or scheduling.
//!
//! The interface they implement ([`Stage`], [`StagePlan`], [`StageContext`]) and the generic
//! `command` stage belong to the engine crate; this module owns the registry ([`pipeline`]) that
//! hands the engine this build's stages and pipeline version.
//!
//! A stage declares, before anything runs ([`Stage::plan`]): which config keys it applies (the
//! only part of the config that enters its activity key, and the only part it is handed), which
//! it reads only to check or report (with why no product depends on them), and which outputs
//! it will write (so the recipe can be checked and downstream steps wired). Its
//! [`Stage::config_scope`] lists every key it may read with any parameters, for `config check`.
//! It also declares its algorithm version: bump it when a change alters its output bytes, and
//! exactly the activities of that stage (and what depends on their outputs) rerun.
//!
//! At run time ([`Stage::run`]) it gets read-only input paths inside the store, a private
//! work directory, and a log; it writes every declared output inside the work directory. The
//! engine then hashes and publishes them. Stages that write HDF5/FITS embed
//! `ctx.activity_key` and `ctx.pipeline_version` in their products.
pub mod dl1_distributions;
pub mod dl1_dl2;
pub mod dl1_input;
pub mod dl1_stereo;
pub mod dl2_dl3;
pub mod dl2_stereo;
pub mod dl3_index;
pub mod gh_cuts;
pub mod make_irfs;
pub mod misdirection;
pub mod params;
pub mod performance;
pub mod production;
pub mod r0_dl1;
pub mod r0_sources;
pub mod simulate;
pub mod train_rfs;

pub use sst1mflow_engine::command;
pub use sst1mflow_engine::stage::{
    ConfigRead, ConfigWarning, DeclaredOutput, InputFile, Stage, StageContext, StagePlan, StepSetup,
};
use sst1mflow_engine::Pipeline;

/// The site's height (`telescope_coords.tel_NNN.height_m`): read, never applied by a stage
/// that computes sky coordinates (they need no height here); DL3 headers apply it.
pub(crate) fn site_height_unused() -> ConfigRead {
    ConfigRead::new("telescope_coords.*.height_m", "not used: sky coordinates here need no site height")
}

/// The config with `telescope_coords` cut to the entries of the telescopes whose files an
/// activity reads (their tables in `group_path`), for stages that apply one telescope's site
/// but learn which only from their inputs ([`Stage::config_for_inputs`]). None when a file
/// cannot tell (the stage then fails on it, naming it) or the config has no such section.
pub(crate) fn telescope_coords_for_inputs(
    config: &serde_json::Value,
    inputs: &[InputFile],
    roles: &[&str],
    group_path: &str,
) -> Option<serde_json::Value> {
    let mut tels = Vec::new();
    for input in inputs.iter().filter(|i| roles.contains(&i.role.as_str())) {
        tels.push(format!("tel_{:03}", crate::io::hdf5_table::telescope_of_file(&input.path, group_path)?));
    }
    let mut narrowed = config.clone();
    let coords = narrowed.get_mut("telescope_coords")?.as_object_mut()?;
    coords.retain(|tel, _| tels.contains(tel));
    Some(narrowed)
}

/// For the stages that load DL2 (`gh-cuts`, `make-irfs`, `performance`, `dl2-dl3`): sst1mpipe's
/// stereo quality cuts apply to stereo DL2 only, so with mono DL2 inputs (of `roles`) they leave
/// the subset (and the key): a stereo cut then reruns nothing mono. None keeps the subset as is.
pub(crate) fn stereo_cuts_for_inputs(
    config: &serde_json::Value,
    inputs: &[InputFile],
    roles: &[&str],
) -> Option<serde_json::Value> {
    let dl2: Vec<&InputFile> = inputs.iter().filter(|i| roles.contains(&i.role.as_str())).collect();
    if dl2.is_empty() || dl2.iter().any(|i| crate::io::dl2::is_stereo(&i.path)) {
        return None;
    }
    let mut narrowed = config.clone();
    if let Some(analysis) = narrowed.get_mut("analysis").and_then(serde_json::Value::as_object_mut) {
        for key in dl1_input::STEREO_CUT_KEYS {
            analysis.remove(key.trim_start_matches("analysis."));
        }
    }
    Some(narrowed)
}

/// A notice for each stereo quality cut the config sets: the step applies it only when its DL2
/// is stereo (planning cannot see the files), so a mono DL2 is not cut by it.
pub(crate) fn stereo_cut_notices(config: &serde_json::Value, at: &str) -> Vec<ConfigWarning> {
    dl1_input::STEREO_CUT_KEYS
        .iter()
        .filter_map(|key| {
            let v = config.pointer(&format!("/{}", key.replace('.', "/"))).filter(|v| !v.is_null())?;
            Some(ConfigWarning::new(
                *key,
                format!("config {key} = {v} (read by {at}) applies to stereo DL2 only, as sst1mpipe's stereo quality cuts: mono DL2 is not cut by it"),
            ))
        })
        .collect()
}

/// sst1mpipe's reco-energy binning (`analysis.log_energy_min_tev`, `log_energy_max_tev`,
/// `n_energy_bins`), checked alike by every stage that bins in reconstructed energy: log10
/// bounds within [-4, 4] (100 MeV to 10 PeV), the minimum below the maximum, and a whole number
/// of 2 to 1000 edges.
pub(crate) fn check_energy_binning(lo: f64, hi: f64, n: f64) -> std::result::Result<(), String> {
    for (key, v) in [("log_energy_min_tev", lo), ("log_energy_max_tev", hi)] {
        if !(-4.0..=4.0).contains(&v) {
            return Err(format!("analysis.{key} = {v}: must be log10(E/TeV) in [-4, 4]"));
        }
    }
    if lo >= hi {
        return Err(format!("analysis.log_energy_min_tev = {lo} must be below log_energy_max_tev = {hi}"));
    }
    if !(2.0..=1000.0).contains(&n) || n.fract() != 0.0 {
        return Err(format!("analysis.n_energy_bins = {n}: must be a whole number of 2 to 1000 bin edges"));
    }
    Ok(())
}

/// [`dl1_input::STEREO_CUT_KEYS`] as optional applied keys of a plan.
pub(crate) fn stereo_cut_plan_keys() -> Vec<String> {
    dl1_input::STEREO_CUT_KEYS.iter().map(|k| format!("{k}?")).collect()
}

static COMMAND: command::CommandStage = command::CommandStage;
static SIMULATE: simulate::SimulateStage = simulate::SimulateStage;
static R0_DL1: r0_dl1::R0Dl1Stage = r0_dl1::R0Dl1Stage;
static TRAIN_RFS: train_rfs::TrainRfsStage = train_rfs::TrainRfsStage;
static DL1_DL2: dl1_dl2::Dl1Dl2Stage = dl1_dl2::Dl1Dl2Stage;
static DL2_STEREO: dl2_stereo::Dl2StereoStage = dl2_stereo::Dl2StereoStage;
static DL1_STEREO: dl1_stereo::Dl1StereoStage = dl1_stereo::Dl1StereoStage;
static MAKE_IRFS: make_irfs::MakeIrfsStage = make_irfs::MakeIrfsStage;
static GH_CUTS: gh_cuts::GhCutsStage = gh_cuts::GhCutsStage;
static DL2_DL3: dl2_dl3::Dl2Dl3Stage = dl2_dl3::Dl2Dl3Stage;
static DL3_INDEX: dl3_index::Dl3IndexStage = dl3_index::Dl3IndexStage;
static DL1_DISTRIBUTIONS: dl1_distributions::Dl1DistributionsStage = dl1_distributions::Dl1DistributionsStage;
static PERFORMANCE: performance::PerformanceStage = performance::PerformanceStage;
static TRAIN_MISDIRECTION: misdirection::TrainMisdirectionStage = misdirection::TrainMisdirectionStage;
static EVENT_CLASSES: misdirection::EventClassesStage = misdirection::EventClassesStage;

/// Every stage this build knows, by name.
pub fn all() -> Vec<&'static dyn Stage> {
    vec![
        &COMMAND,
        &SIMULATE,
        &R0_DL1,
        &DL1_STEREO,
        &TRAIN_RFS,
        &DL1_DL2,
        &DL2_STEREO,
        &TRAIN_MISDIRECTION,
        &EVENT_CLASSES,
        &GH_CUTS,
        &MAKE_IRFS,
        &PERFORMANCE,
        &DL2_DL3,
        &DL3_INDEX,
        &DL1_DISTRIBUTIONS,
    ]
}

/// This build's stages and pipeline version, as the engine takes them.
pub fn pipeline() -> Pipeline {
    Pipeline::new(all(), crate::version::pipeline_version())
        .with_config_schema(crate::config::check_known)
        .with_config_key_hint(crate::config::key_hint)
}

pub fn names() -> Vec<&'static str> {
    all().iter().map(|s| s.name()).collect()
}

pub fn by_name(name: &str) -> Option<&'static dyn Stage> {
    all().into_iter().find(|s| s.name() == name)
}
