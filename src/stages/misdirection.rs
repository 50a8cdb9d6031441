//! sst1mpipe's event classes, as two stages: `train-misdirection` (its
//! `sst1mpipe_mc_train_rfs_misdirection`) and `event-classes` (its `sst1mpipe_event_classes`).
//! The science (misdirection, percentile edges, classes) is [`crate::reco::misdirection`].
//!
//! # `train-misdirection`
//! Input `gamma`: DL2 of diffuse gammas (one or more files of one production, all mono of one
//! telescope or all stereo), already reconstructed. Events pass `event_selection` (and, stereo,
//! sst1mpipe's stereo quality cuts, as its `load_dl2_sst1m` applies them); the target is
//! log10 of the angle between true and reconstructed directions; a random forest regressor
//! (`random_forest_regressor_args`) learns it from `misdirection_regression_features_mono` (mono
//! DL2) or `misdirection_regression_features_stereo` (stereo DL2, whose `_tel1`/`_tel2` features
//! are the two telescopes' columns and `log_camera_frame_hillas_intensity_tel<k>` the log10 of
//! their intensities, as sst1mpipe adds them). Events whose features or target are not finite
//! are left out (scikit-learn before 1.4 refuses them; sst1mpipe pins such a version).
//! Outputs: `model` (`reg_misdirection.rf`: model `misdirection`, telescope id 0 for stereo;
//! the header records the RF models that reconstructed the training DL2) and `report`
//! (`misdirection_training.json`).
//!
//! # `event-classes`
//! Inputs `dl2` (one DL2), `model` (a `train-misdirection` model) and optionally `edges`. The
//! model must be of the DL2's telescope setup and pipeline version, and trained on DL2 made by
//! the same RF models (the misdirection it learnt is theirs); the config's feature list must be
//! the model's. The DL2 events pass the selection above and a finite check on the features (as
//! sst1mpipe's `reco_misdirection`), and the model predicts `log_reco_misdirection`.
//! * Without `edges` (Monte Carlo DL2 only): output `edges` (`misdirection_edges.h5`): per bin of
//!   `logspace(analysis.log_energy_min_tev, log_energy_max_tev, n_energy_bins)` the percentile
//!   edges sst1mpipe's `get_evttype_edges` computes, and the model they belong to.
//! * With `edges` (made with this same model, else refused): output `dl2`
//!   (`dl2_classified.h5`): the input DL2 with the selected events only, each with
//!   `log_reco_misdirection` and `event_type` (1 to 4, 0 outside the bins) appended, the rest
//!   of the file as it was, and the classification (model and edges hashes) in the
//!   `sst1mflow_event_classes` attribute. sst1mpipe rewrites its DL2 in place with the same
//!   rows; here the classified DL2 is a new product. `make-irfs` and `dl2-dl3` take it with an
//!   `event_class` parameter.
use super::dl1_input::{Dl2Selection, StereoCuts};
use super::params::Params;
use super::{ConfigWarning, DeclaredOutput, InputFile, Stage, StageContext, StagePlan, StepSetup};
use crate::error::{Error, Result};
use crate::forest::{Forest, Task};
use crate::io::analysis_tables::{self, EdgeRow};
use crate::io::dl2::Dl2Reader;
use crate::io::hdf5_table::{ColumnValues, NamedColumn};
use crate::io::model::{self, InputRecord, Model, ModelHeader};
use crate::reco::misdirection as mis;
use crate::reco::{EventSelection, ForestArgs};
use serde_json::{json, Value};
use std::path::Path;

pub struct TrainMisdirectionStage;
pub struct EventClassesStage;

const FEATURES_MONO: &str = "misdirection_regression_features_mono";
const FEATURES_STEREO: &str = "misdirection_regression_features_stereo";
const REGRESSOR: &str = "random_forest_regressor_args";
const CHUNK: usize = 65_536;
/// The model name in a misdirection model's header.
const MODEL_NAME: &str = "misdirection";

fn output(role: &str, file: &str, kind: &str) -> DeclaredOutput {
    DeclaredOutput { role: role.into(), file: file.into(), kind: kind.into() }
}

/// The feature list of the setup, parsed.
fn features(config: &Value, stereo: bool) -> std::result::Result<Vec<String>, String> {
    let key = if stereo { FEATURES_STEREO } else { FEATURES_MONO };
    let list = config.get(key).ok_or_else(|| format!("config key {key} is missing"))?;
    let names: Vec<String> = list
        .as_array()
        .ok_or_else(|| format!("{key} must be a list of column names"))?
        .iter()
        .map(|f| f.as_str().map(str::to_string).ok_or_else(|| format!("{key}: {f} is not a column name")))
        .collect::<std::result::Result<_, _>>()?;
    if names.is_empty() {
        return Err(format!("{key} is empty"));
    }
    Ok(names)
}

/// The config keys a step applies: both setups' feature lists until the inputs say which
/// ([`narrow`]).
fn applied_keys(extra: &[&str]) -> Vec<String> {
    let mut keys: Vec<String> =
        ["event_selection", &format!("{FEATURES_MONO}?"), &format!("{FEATURES_STEREO}?")].map(String::from).to_vec();
    keys.extend(super::stereo_cut_plan_keys());
    keys.extend(extra.iter().map(|k| k.to_string()));
    keys
}

/// The subset for the inputs' setup: the other setup's feature list leaves it (and the key),
/// and mono DL2 drops the stereo quality cuts.
fn narrow(config: &Value, inputs: &[InputFile], role: &str) -> Option<Value> {
    let first = inputs.iter().find(|i| i.role == role)?;
    let stereo = crate::io::dl2::is_stereo(&first.path);
    let mut narrowed = super::stereo_cuts_for_inputs(config, inputs, &[role]).unwrap_or_else(|| config.clone());
    narrowed.as_object_mut()?.remove(if stereo { FEATURES_MONO } else { FEATURES_STEREO });
    Some(narrowed)
}

/// Checks, at planning, the keys both stages apply: the feature lists, `event_selection` and
/// the stereo cuts.
fn check_shared_keys(config: &Value, file: &Path, at: &str) -> Result<()> {
    let bad = |e: String| Error::msg(format!("{}: {e} (read by {at})", file.display()));
    for stereo in [false, true] {
        if config.get(if stereo { FEATURES_STEREO } else { FEATURES_MONO }).is_some() {
            features(config, stereo).map_err(bad)?;
        }
    }
    EventSelection::from_config(config).map_err(bad)?;
    StereoCuts::from_config(config).map_err(|e| bad(e.message().to_string()))?;
    Ok(())
}

/// The events of one DL2 that pass the selection and have finite `needed` values.
struct Loaded {
    /// Row indices in the file.
    rows: Vec<usize>,
    /// `needed` columns of those rows, in `needed`'s order.
    columns: Vec<Vec<f64>>,
    n_read: usize,
}

/// The file column behind a feature of the config: a stereo DL2 names its telescopes' columns
/// `_tel<id>` (1, 2 for simulations; 21, 22 for data), sst1mpipe's lists `_tel1`/`_tel2`; the
/// stereo `log_camera_frame_hillas_intensity_tel<k>` is computed from the intensity.
enum Source {
    Column(String),
    Log10(String),
}

fn source(feature: &str, tels: Option<[u16; 2]>) -> Source {
    let Some(tels) = tels else {
        return Source::Column(feature.to_string());
    };
    let mut column = feature.to_string();
    for (k, tel) in [(1, tels[0]), (2, tels[1])] {
        if let Some(base) = feature.strip_suffix(&format!("_tel{k}")) {
            column = format!("{base}_tel{tel}");
        }
    }
    match column.strip_prefix("log_camera_frame_hillas_intensity_tel") {
        Some(tel) => Source::Log10(format!("camera_frame_hillas_intensity_tel{tel}")),
        None => Source::Column(column),
    }
}

fn load(dl2: &Dl2Reader, name: &str, needed: &[String], selection: &Dl2Selection) -> Result<Loaded> {
    let sources: Vec<Source> = needed.iter().map(|f| source(f, dl2.stereo)).collect();
    let columns: Vec<&str> = sources
        .iter()
        .map(|s| match s {
            Source::Column(c) | Source::Log10(c) => c.as_str(),
        })
        .collect();
    let mut out = Loaded { rows: Vec::new(), columns: vec![Vec::new(); needed.len()], n_read: 0 };
    for start in (0..dl2.n_events).step_by(CHUNK) {
        let end = (start + CHUNK).min(dl2.n_events);
        let chunk = dl2.read_chunk(start, end)?;
        let values = dl2.read_columns(&columns, start, end).map_err(|e| {
            Error::msg(format!("{name}: {}", e.message().rsplit_once(": ").map_or(e.message(), |(_, m)| m)))
        })?;
        for i in 0..end - start {
            out.n_read += 1;
            if !selection.passes_in(&chunk, i) {
                continue;
            }
            let row: Vec<f64> = sources
                .iter()
                .zip(&values)
                .map(|(s, v)| match s {
                    Source::Column(_) => v[i],
                    Source::Log10(_) => v[i].log10(),
                })
                .collect();
            if row.iter().any(|v| !v.is_finite()) {
                continue;
            }
            out.rows.push(start + i);
            for (c, v) in out.columns.iter_mut().zip(row) {
                c.push(v);
            }
        }
    }
    Ok(out)
}

/// The selection sst1mpipe's `load_dl2_sst1m` applies to this DL2.
fn selection_for(config: &Value, dl2: &Dl2Reader, name: &str) -> Result<Dl2Selection> {
    let selection = EventSelection::from_config(config).map_err(Error::msg)?;
    let mut s = Dl2Selection::new(&selection, name)?;
    if dl2.stereo.is_some() {
        s = s.with_stereo_cuts(StereoCuts::from_config(config)?);
    }
    Ok(s)
}

/// Every SHA-256 in a `sst1mflow_models` value (the RF models that made a DL2), sorted.
fn model_hashes(models: &Value) -> Vec<String> {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(o) => {
                if let Some(Value::String(h)) = o.get("sha256") {
                    out.push(h.clone());
                }
                o.values().for_each(|w| walk(w, out));
            }
            Value::Array(a) => a.iter().for_each(|w| walk(w, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(models, &mut out);
    out.sort();
    out.dedup();
    out
}

fn setup_of(dl2: &Dl2Reader) -> String {
    match dl2.stereo {
        Some(_) => "stereo".into(),
        None => format!("tel_{:03}", super::dl1_dl2::model_telescope(dl2.tel_id)),
    }
}

fn open(input: &InputFile, role: &str) -> Result<Dl2Reader> {
    Dl2Reader::open(&input.path).map_err(|e| Error::msg(format!("{role} input {}: {}", input.name, e.message())))
}

fn one<'a>(
    inputs: &'a std::collections::BTreeMap<String, Vec<InputFile>>,
    role: &str,
    stage: &str,
) -> Result<&'a InputFile> {
    match inputs.get(role).map(Vec::as_slice) {
        Some([one]) => Ok(one),
        _ => Err(Error::msg(format!("{stage} takes exactly one {role} file"))),
    }
}

impl Stage for TrainMisdirectionStage {
    fn name(&self) -> &'static str {
        "train-misdirection"
    }

    fn version(&self) -> &'static str {
        "1"
    }

    fn plan(&self, params: &Value, input_roles: &[&str], at: &str) -> Result<StagePlan> {
        Params::new(params, &[], self.name(), at)?;
        if input_roles != ["gamma"] {
            return Err(Error::msg(format!(
                "{at}: stage train-misdirection takes one input role, \"gamma\" (reconstructed DL2 of diffuse gammas)"
            )));
        }
        Ok(StagePlan {
            config_keys: applied_keys(&[REGRESSOR]),
            config_read: Vec::new(),
            outputs: vec![
                output("model", "reg_misdirection.rf", "rf-model"),
                output("report", "misdirection_training.json", "json"),
            ],
        })
    }

    fn config_scope(&self) -> Vec<&'static str> {
        let mut scope = vec!["event_selection", FEATURES_MONO, FEATURES_STEREO, REGRESSOR];
        scope.extend(super::dl1_input::STEREO_CUT_KEYS);
        scope
    }

    fn config_for_inputs(&self, config: &Value, inputs: &[InputFile]) -> Option<Value> {
        narrow(config, inputs, "gamma")
    }

    fn check_config(&self, config: &Value, _step: &StepSetup, file: &Path, at: &str) -> Result<Vec<ConfigWarning>> {
        check_shared_keys(config, file, at)?;
        ForestArgs::parse(config.get(REGRESSOR).unwrap_or(&Value::Null), REGRESSOR, false)
            .map_err(|e| Error::msg(format!("{}: {e} (read by {at})", file.display())))?;
        Ok(Vec::new())
    }

    fn run(&self, ctx: &mut StageContext) -> Result<()> {
        let files = super::production::files(ctx.inputs, "gamma", self.name())?;
        let args = ForestArgs::parse(ctx.config.get(REGRESSOR).unwrap_or(&Value::Null), REGRESSOR, false)
            .map_err(Error::msg)?;
        let (mut x, mut y) = (Vec::new(), Vec::new());
        let mut first: Option<(Dl2Reader, String)> = None;
        let mut inputs = Vec::new();
        let (mut n_read, mut n_selected) = (0, 0);
        let mut feature_list = Vec::new();
        for input in files {
            let dl2 = open(input, "gamma")?;
            if dl2.run.is_none() {
                return Err(Error::msg(format!(
                    "gamma input {} is not a simulation: the misdirection needs the true direction",
                    input.name
                )));
            }
            if let Some((f, fname)) = &first {
                let differs = |what: &str| {
                    Error::msg(format!(
                        "gamma inputs {fname} and {} differ ({what}): one misdirection model is trained on one setup and one reconstruction",
                        input.name
                    ))
                };
                if setup_of(f) != setup_of(&dl2) {
                    return Err(differs(&format!("telescope setup {} vs {}", setup_of(f), setup_of(&dl2))));
                }
                if model_hashes(&parse_json(&f.models)) != model_hashes(&parse_json(&dl2.models)) {
                    return Err(differs("reconstructed by other RF models"));
                }
                if f.pipeline_version != dl2.pipeline_version {
                    return Err(differs("made by other sst1mflow versions"));
                }
            } else {
                feature_list = features(ctx.config, dl2.stereo.is_some()).map_err(Error::msg)?;
            }
            let selection = selection_for(ctx.config, &dl2, &input.name)?;
            let mut needed = feature_list.clone();
            needed.extend(["true_alt", "true_az", "reco_alt", "reco_az"].map(String::from));
            let loaded = load(&dl2, &input.name, &needed, &selection)?;
            n_read += loaded.n_read;
            let nf = feature_list.len();
            for k in 0..loaded.rows.len() {
                let c = &loaded.columns;
                let target = mis::misdirection_deg(c[nf][k], c[nf + 1][k], c[nf + 2][k], c[nf + 3][k]).log10();
                if !target.is_finite() {
                    continue;
                }
                n_selected += 1;
                x.extend(c[..nf].iter().map(|col| col[k] as f32));
                y.push(target);
            }
            inputs.push(InputRecord { role: "gamma".into(), name: input.name.clone(), sha256: input.hash.clone() });
            if first.is_none() {
                first = Some((dl2, input.name.clone()));
            }
        }
        let (dl2, _) = first.expect("at least one gamma file");
        let _ = writeln!(
            ctx.log,
            "{} DL2 ({}): {n_read} events read, {n_selected} pass the selection with finite features and misdirection",
            setup_of(&dl2),
            feature_list.join(", ")
        );
        if n_selected < 2 * args.params.min_samples_leaf.max(1) {
            return Err(Error::msg(format!("only {n_selected} gamma events are usable: too few to train on")));
        }
        let started = std::time::Instant::now();
        let forest = Forest::fit(&x, &y, feature_list.len(), Task::Regression, &args.params)
            .map_err(|e| Error::msg(format!("training the misdirection model: {e}")))?;
        let _ = writeln!(
            ctx.log,
            "misdirection: {} trees, {} nodes, {:.2} s",
            forest.trees.len(),
            forest.n_nodes(),
            started.elapsed().as_secs_f64()
        );
        let dl1_settings = serde_json::from_str(&dl2.dl1_settings).unwrap_or_default();
        let training = json!({
            "event_selection": ctx.config.get("event_selection"),
            "stereo_cuts": dl2.stereo.map(|_| StereoCuts::from_config(ctx.config).map(|c| c.to_json())).transpose()?,
            "setup": setup_of(&dl2),
            "events": n_selected,
            "dl2_models": parse_json(&dl2.models),
        });
        let model = Model {
            header: ModelHeader {
                model: MODEL_NAME.into(),
                target: "log_misdirection".into(),
                classes: None,
                features: feature_list.clone(),
                forest_args: ctx.config.get(REGRESSOR).cloned().unwrap_or(Value::Null),
                tel_id: dl2.stereo.map_or(super::dl1_dl2::model_telescope(dl2.tel_id), |_| 0),
                dl1_settings,
                dl1_pipeline_version: dl2.pipeline_version.clone(),
                training,
                inputs,
                pipeline_version: ctx.pipeline_version.into(),
                activity_key: ctx.activity_key.into(),
            },
            forest,
        };
        model::write(&ctx.work_dir.join(&ctx.plan.outputs[0].file), &model)?;
        let report = json!({
            "setup": setup_of(&dl2),
            "events_read": n_read,
            "events_used": n_selected,
            "features": feature_list,
        });
        let text = serde_json::to_string_pretty(&report).expect("JSON") + "\n";
        std::fs::write(ctx.work_dir.join(&ctx.plan.outputs[1].file), text)
            .map_err(|e| Error::io("cannot write the training report", e))
    }
}

fn parse_json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

const BIN_KEYS: [&str; 3] = ["analysis.log_energy_min_tev", "analysis.log_energy_max_tev", "analysis.n_energy_bins"];

/// sst1mpipe's energy bin edges of the config.
fn energy_edges(config: &Value) -> std::result::Result<Vec<f64>, String> {
    let number = |key: &str| {
        config
            .pointer(&format!("/{}", key.replace('.', "/")))
            .and_then(Value::as_f64)
            .filter(|x| x.is_finite())
            .ok_or_else(|| format!("config {key} must be a number"))
    };
    let (lo, hi, n) = (number(BIN_KEYS[0])?, number(BIN_KEYS[1])?, number(BIN_KEYS[2])?);
    super::check_energy_binning(lo, hi, n)?;
    Ok(mis::energy_edges(lo, hi, n as usize))
}

/// The identity of a misdirection model as edges and classified DL2 record it.
fn model_identity(input: &InputFile, m: &Model) -> Value {
    json!({"sha256": input.hash, "activity_key": m.header.activity_key})
}

/// Checks a misdirection model against the DL2 it is to be applied to; returns the feature
/// list (the config's, which must be the model's).
fn check_model(
    m: &Model,
    model_in: &InputFile,
    dl2: &Dl2Reader,
    dl2_in: &InputFile,
    config: &Value,
) -> Result<Vec<String>> {
    let refuse = |what: String| {
        Error::msg(format!("misdirection model {} does not belong to DL2 {}: {what}", model_in.name, dl2_in.name))
    };
    if m.header.model != MODEL_NAME {
        return Err(Error::msg(format!(
            "input {} given as the misdirection model is an \"{}\" model, not a misdirection model",
            model_in.name, m.header.model
        )));
    }
    let trained_on = m.header.training.get("setup").and_then(Value::as_str).unwrap_or("");
    if trained_on != setup_of(dl2) {
        return Err(refuse(format!("trained on {trained_on} DL2, this is {}", setup_of(dl2))));
    }
    if m.header.pipeline_version != dl2.pipeline_version {
        return Err(refuse(format!(
            "made by sst1mflow {} and the DL2 by {}",
            m.header.pipeline_version, dl2.pipeline_version
        )));
    }
    let trained_models = model_hashes(m.header.training.get("dl2_models").unwrap_or(&Value::Null));
    if trained_models != model_hashes(&parse_json(&dl2.models)) {
        return Err(refuse(
            "trained on DL2 reconstructed by other RF models (the misdirection it predicts is theirs)".into(),
        ));
    }
    let list = features(config, dl2.stereo.is_some()).map_err(Error::msg)?;
    if list != m.header.features {
        return Err(refuse(format!(
            "the config's {} is [{}], the model was trained on [{}]",
            if dl2.stereo.is_some() { FEATURES_STEREO } else { FEATURES_MONO },
            list.join(", "),
            m.header.features.join(", ")
        )));
    }
    Ok(list)
}

impl Stage for EventClassesStage {
    fn name(&self) -> &'static str {
        "event-classes"
    }

    fn version(&self) -> &'static str {
        "1"
    }

    fn plan(&self, params: &Value, input_roles: &[&str], at: &str) -> Result<StagePlan> {
        Params::new(params, &[], self.name(), at)?;
        let mut roles = input_roles.to_vec();
        roles.sort_unstable();
        let (config_keys, outputs) = match roles.as_slice() {
            ["dl2", "model"] => {
                (applied_keys(&BIN_KEYS), vec![output("edges", "misdirection_edges.h5", "misdirection-edges")])
            }
            ["dl2", "edges", "model"] => (applied_keys(&[]), vec![output("dl2", "dl2_classified.h5", "dl2")]),
            _ => {
                return Err(Error::msg(format!(
                    "{at}: stage event-classes takes the input roles \"dl2\" and \"model\" (a train-misdirection model), and \"edges\" to classify with; got {input_roles:?}"
                )))
            }
        };
        Ok(StagePlan { config_keys, config_read: Vec::new(), outputs })
    }

    fn config_scope(&self) -> Vec<&'static str> {
        let mut scope = vec!["event_selection", FEATURES_MONO, FEATURES_STEREO];
        scope.extend(super::dl1_input::STEREO_CUT_KEYS);
        scope.extend(BIN_KEYS);
        scope
    }

    fn config_for_inputs(&self, config: &Value, inputs: &[InputFile]) -> Option<Value> {
        narrow(config, inputs, "dl2")
    }

    fn check_config(&self, config: &Value, step: &StepSetup, file: &Path, at: &str) -> Result<Vec<ConfigWarning>> {
        check_shared_keys(config, file, at)?;
        if !step.input_roles.contains(&"edges") {
            energy_edges(config).map_err(|e| Error::msg(format!("{}: {e} (read by {at})", file.display())))?;
        }
        Ok(Vec::new())
    }

    fn run(&self, ctx: &mut StageContext) -> Result<()> {
        let (dl2_in, model_in) = (one(ctx.inputs, "dl2", self.name())?, one(ctx.inputs, "model", self.name())?);
        let edges_in = ctx.inputs.get("edges").and_then(|e| e.first());
        let dl2 = open(dl2_in, "dl2")?;
        let m = model::read(&model_in.path, &model_in.name)?;
        let features = check_model(&m, model_in, &dl2, dl2_in, ctx.config)?;
        let selection = selection_for(ctx.config, &dl2, &dl2_in.name)?;
        let mut needed = features.clone();
        needed.push("reco_energy".into());
        let loaded = load(&dl2, &dl2_in.name, &needed, &selection)?;
        let nf = features.len();
        let n = loaded.rows.len();
        let mut x = Vec::with_capacity(n * nf);
        for k in 0..n {
            x.extend(loaded.columns[..nf].iter().map(|c| c[k] as f32));
        }
        let predicted = m.forest.predict(&x);
        let energy = &loaded.columns[nf];
        let _ = writeln!(
            ctx.log,
            "{} DL2: {} events read, {n} pass the selection with finite features; misdirection predicted by {}",
            setup_of(&dl2),
            loaded.n_read,
            model_in.name
        );
        let identity = model_identity(model_in, &m);
        let dir = ctx.work_dir;
        let Some(edges_in) = edges_in else {
            if dl2.run.is_none() {
                return Err(Error::msg(format!(
                    "dl2 input {} is observed data: class edges are computed on simulated gammas (give an edges input to classify data)",
                    dl2_in.name
                )));
            }
            let bins = energy_edges(ctx.config).map_err(Error::msg)?;
            let table = mis::class_edges(&bins, energy, &predicted);
            let centres = mis::bin_centres(&bins);
            let rows: Vec<EdgeRow> = table
                .iter()
                .enumerate()
                .map(|(i, e)| EdgeRow {
                    low: bins[i],
                    high: bins[i + 1],
                    center: centres[i],
                    log_midirection_edge_0: e[0],
                    log_midirection_edge_1: e[1],
                    log_midirection_edge_2: e[2],
                    log_midirection_edge_3: e[3],
                    log_midirection_edge_4: e[4],
                })
                .collect();
            let filled = table.iter().filter(|e| !e[2].is_nan()).count();
            let _ = writeln!(ctx.log, "edges: {filled} of {} energy bins hold events", rows.len());
            return analysis_tables::write_edges_table(
                &dir.join(&ctx.plan.outputs[0].file),
                ctx.activity_key,
                ctx.pipeline_version,
                &identity.to_string(),
                &rows,
            );
        };
        let (rows, edges_model) = analysis_tables::read_edges_table(&edges_in.path, &edges_in.name)?;
        let made_with = parse_json(&edges_model);
        if made_with.get("sha256") != identity.get("sha256") {
            return Err(Error::msg(format!(
                "edges {} were computed with the misdirection model {}, not with {} ({}): classes need the edges of the model that predicts",
                edges_in.name,
                made_with.get("sha256").and_then(Value::as_str).map_or("(unknown)", |h| &h[..h.len().min(12)]),
                model_in.name,
                &model_in.hash[..model_in.hash.len().min(12)]
            )));
        }
        let lows: Vec<f64> = rows.iter().map(|r| r.low).collect();
        let highs: Vec<f64> = rows.iter().map(|r| r.high).collect();
        let table: Vec<[f64; mis::N_EDGES]> = rows.iter().map(EdgeRow::edges).collect();
        let classes = mis::classify(&lows, &highs, &table, energy, &predicted);
        let mut counts = [0usize; mis::N_EDGES];
        classes.iter().for_each(|&c| counts[c as usize] += 1);
        let _ = writeln!(ctx.log, "events per class 0..4: {counts:?}");
        let classification = json!({
            "misdirection_model": identity,
            "edges": {"sha256": edges_in.hash},
        });
        crate::io::dl2::write_with_columns(
            &dl2,
            &dir.join(&ctx.plan.outputs[0].file),
            ctx.activity_key,
            ctx.pipeline_version,
            &loaded.rows,
            &[
                NamedColumn { name: "log_reco_misdirection".into(), unit: "", values: ColumnValues::F64(predicted) },
                NamedColumn { name: "event_type".into(), unit: "", values: ColumnValues::I64(classes) },
            ],
            &classification.to_string(),
        )
    }
}

/// The step parameter `event_class` of `make-irfs` and `dl2-dl3` (sst1mpipe's `--event-classes`
/// of its IRF and DL3 scripts): only the DL2 events of that class (0-4; their `event_type`)
/// count. Absent: every event, classified or not.
pub(crate) fn event_class(params: &Value, at: &str) -> Result<Option<i64>> {
    match params.get("event_class") {
        None => Ok(None),
        Some(v) => match v.as_u64() {
            Some(c) if c < mis::N_EDGES as u64 => Ok(Some(c as i64)),
            _ => Err(Error::msg(format!(
                "{at}.params.event_class: expected an event class 0-{} (1 = best direction quarter; 0 = outside the energy bins), found {v}",
                mis::N_EDGES - 1
            ))),
        },
    }
}

/// The header cards of an IRF or DL3 of one event class: `EVTCLASS` and `EVTCLSID` (what
/// classified the events: the misdirection model's and the edges' hashes, JSON), which
/// `dl2-dl3` compares. Nothing without a class.
pub(crate) fn class_cards(class: Option<i64>, classification: &str) -> Vec<crate::io::fits::Card> {
    use crate::io::fits::{Card, Value as Fv};
    let Some(class) = class else {
        return Vec::new();
    };
    vec![
        Card::new("EVTCLASS", Fv::Int(class), "event class (sst1mpipe event_type)"),
        Card::new("EVTCLSID", Fv::Str(classification_identity(classification)), "what classified the events"),
    ]
}

/// The hashes of a `sst1mflow_event_classes` attribute (model and edges), compact JSON.
pub(crate) fn classification_identity(classification: &str) -> String {
    let v = parse_json(classification);
    json!({
        "misdirection_model": v.pointer("/misdirection_model/sha256"),
        "edges": v.pointer("/edges/sha256"),
    })
    .to_string()
}
