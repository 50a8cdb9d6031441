//! The `train-rfs` stage: sst1mpipe's four mono models from DL1 simulations of diffuse gammas
//! (role `gamma`) and protons (role `proton`; without it no gamma/hadron classifier).
//!
//! | model file | target | features (config key) | forest args |
//! |---|---|---|---|
//! | `reg_energy_tel_NNN.rf` | `log_true_energy` | `energy_regression_features` | regressor |
//! | `reg_disp_norm_tel_NNN.rf` | `disp_norm` | `disp_regression_features` | regressor |
//! | `class_disp_sign_tel_NNN.rf` | `disp_sign` (−1/+1) | `disp_classification_features` | classifier |
//! | `class_gh_tel_NNN.rf` | `true_shower_primary_id` (0/101) | `particle_classification_features` | classifier |
//!
//! Config keys applied (and so in the key): `event_selection`, the four feature lists,
//! `disp_method` (only `disp_norm_sign` is implemented), `random_forest_regressor_args`,
//! `random_forest_classifier_args` (their `n_jobs` and `verbose` are checked but not in the
//! key: no model depends on them), `analysis.n_training_events`,
//! `analysis.gamma_to_proton_training_ratio`. Parameter: `tel_id` [1].
//!
//! As in sst1mpipe: events pass `event_selection` and a finite check on every feature; at most
//! `n_training_events` gammas are sampled; when the classifier's features include
//! `log_reco_energy`/`reco_disp_norm` (the data config), the sampled gammas are split 67/33,
//! temporary energy and disp models trained on the 67% predict those features for the 33% and
//! for the protons, and the classifier is trained on them; the g/h set mixes gammas and
//! protons in the ratio `gamma_to_proton_training_ratio`. Unlike sst1mpipe every random choice
//! is seeded (from the regressor's `random_state`), so the same inputs and config give
//! byte-identical model files, whatever the number of threads.
//!
//! Also written: `training_tel_NNN.json`, the sizes of the training sets.
use super::dl1_input::{self, Dl1Columns};
use super::params::Params;
use super::{ConfigRead, ConfigWarning, DeclaredOutput, Stage, StageContext, StagePlan, StepSetup};
use crate::config::FOREST_SECTIONS;
use crate::error::{Error, Result};
use crate::forest::{Forest, Task};
use crate::io::model::{self, Model, ModelHeader};
use crate::reco::{self, EventSelection, ForestArgs, DERIVED_FEATURES, GH_CLASSES, SIGN_CLASSES};
use crate::sim::rng::Rng;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

pub struct TrainRfsStage;

fn config_keys() -> Vec<String> {
    config_keys_static().map(String::from).to_vec()
}

/// `n_jobs` and `verbose` of the forests: checked, never in the key (they change no model).
fn config_read() -> Vec<ConfigRead> {
    FOREST_SECTIONS
        .iter()
        .flat_map(|section| {
            [
                ConfigRead::new(format!("{section}.n_jobs"), "parallelism only: the models are the same for any value"),
                ConfigRead::new(format!("{section}.verbose"), "scikit-learn's log only"),
            ]
        })
        .collect()
}

fn config_keys_static() -> [&'static str; 10] {
    [
        "event_selection",
        "energy_regression_features",
        "particle_classification_features",
        "disp_method",
        "disp_regression_features",
        "disp_classification_features",
        "random_forest_regressor_args",
        "random_forest_classifier_args",
        "analysis.n_training_events",
        "analysis.gamma_to_proton_training_ratio",
    ]
}

/// The training configuration, parsed and checked.
pub struct TrainingConfig {
    pub selection: EventSelection,
    pub energy_features: Vec<String>,
    pub disp_norm_features: Vec<String>,
    pub disp_sign_features: Vec<String>,
    pub gh_features: Vec<String>,
    pub regressor: ForestArgs,
    pub classifier: ForestArgs,
    pub n_training_events: usize,
    pub ratio: f64,
}

fn field<'v>(config: &'v Value, path: &str) -> std::result::Result<&'v Value, String> {
    path.split('.').try_fold(config, |v, k| v.get(k)).ok_or_else(|| format!("config key {path} is missing"))
}

/// `stereo`: the training DL1 is stereo (from `dl1-stereo`), so the stereo features stay.
pub fn parse_config(config: &Value, stereo: bool) -> std::result::Result<TrainingConfig, String> {
    let method = field(config, "disp_method")?;
    if method.as_str() != Some("disp_norm_sign") {
        return Err(format!("disp_method = {method}: only \"disp_norm_sign\" is implemented"));
    }
    let list = |key: &str| reco::feature_list(field(config, key)?, key, stereo);
    let energy_features = list("energy_regression_features")?;
    let disp_norm_features = list("disp_regression_features")?;
    let disp_sign_features = list("disp_classification_features")?;
    let gh_features = list("particle_classification_features")?;
    for (key, features) in [
        ("energy_regression_features", &energy_features),
        ("disp_regression_features", &disp_norm_features),
        ("disp_classification_features", &disp_sign_features),
    ] {
        if let Some(f) = features.iter().find(|f| DERIVED_FEATURES.contains(&f.as_str())) {
            return Err(format!("{key}: \"{f}\" is predicted by a model and can only be a gamma/hadron feature"));
        }
    }
    // sst1mpipe's files write it as `7E5`, which Python's int() takes: so do we, when exact.
    let n_training_events = field(config, "analysis.n_training_events")?
        .as_f64()
        .filter(|&n| n >= 1.0 && n.fract() == 0.0 && n <= (1u64 << 53) as f64)
        .ok_or("analysis.n_training_events must be a positive integer (7E5 counts)")?
        as usize;
    let ratio = field(config, "analysis.gamma_to_proton_training_ratio")?
        .as_f64()
        .filter(|r| r.is_finite() && *r > 0.0)
        .ok_or("analysis.gamma_to_proton_training_ratio must be a positive number")?;
    Ok(TrainingConfig {
        selection: EventSelection::from_config(config)?,
        energy_features,
        disp_norm_features,
        disp_sign_features,
        gh_features,
        regressor: ForestArgs::parse(field(config, FOREST_SECTIONS[0])?, FOREST_SECTIONS[0], false)?,
        classifier: ForestArgs::parse(field(config, FOREST_SECTIONS[1])?, FOREST_SECTIONS[1], true)?,
        n_training_events,
        ratio,
    })
}

fn tel_id(params: &Value, at: &str) -> Result<u16> {
    let p = Params::new(params, &["tel_id"], "train-rfs", at)?;
    u16::try_from(p.u64_or("tel_id", Some(1))?).map_err(|_| Error::msg(format!("{at}.params.tel_id: out of range")))
}

fn outputs(tel: u16, with_gh: bool) -> Vec<DeclaredOutput> {
    let mut out = vec![
        ("energy", format!("reg_energy_tel_{tel:03}.rf")),
        ("disp_norm", format!("reg_disp_norm_tel_{tel:03}.rf")),
        ("disp_sign", format!("class_disp_sign_tel_{tel:03}.rf")),
    ];
    if with_gh {
        out.push(("gh", format!("class_gh_tel_{tel:03}.rf")));
    }
    out.push(("report", format!("training_tel_{tel:03}.json")));
    out.into_iter()
        .map(|(role, file)| DeclaredOutput {
            role: role.into(),
            file: file.into(),
            kind: if role == "report" { "json".into() } else { "rf-model".into() },
        })
        .collect()
}

/// A row-major float32 matrix of `features` for `rows` of `columns`.
fn matrix(columns: &BTreeMap<String, Vec<f64>>, features: &[String], rows: &[usize]) -> Vec<f32> {
    matrix_with(columns, &BTreeMap::new(), features, rows)
}

/// [`matrix`] where features may also come from `derived` (model outputs), so the DL1 columns
/// need not be copied to add them.
fn matrix_with(
    columns: &BTreeMap<String, Vec<f64>>,
    derived: &BTreeMap<String, Vec<f64>>,
    features: &[String],
    rows: &[usize],
) -> Vec<f32> {
    let cols: Vec<&Vec<f64>> = features.iter().map(|f| derived.get(f).unwrap_or_else(|| &columns[f])).collect();
    let mut x = Vec::with_capacity(rows.len() * features.len());
    for &r in rows {
        x.extend(cols.iter().map(|c| c[r] as f32));
    }
    x
}

struct Trainer<'a> {
    ctx_key: &'a str,
    pipeline_version: &'a str,
    tel: u16,
    gammas: &'a Dl1Columns,
    training: Value,
    inputs: Vec<model::InputRecord>,
}

impl Trainer<'_> {
    #[allow(clippy::too_many_arguments)]
    fn fit(
        &self,
        name: &str,
        target: &str,
        classes: Option<[i64; 2]>,
        features: &[String],
        x: &[f32],
        y: &[f64],
        args: &ForestArgs,
        args_raw: &Value,
        log: &mut dyn std::io::Write,
    ) -> Result<Model> {
        let started = Instant::now();
        let task = if classes.is_some() { Task::Classification } else { Task::Regression };
        let forest = Forest::fit(x, y, features.len(), task, &args.params)
            .map_err(|e| Error::msg(format!("training the {name} model: {e}")))?;
        let _ = writeln!(
            log,
            "{name}: {} events, {} features, {} trees, {} nodes, {:.2} s",
            y.len(),
            features.len(),
            forest.trees.len(),
            forest.n_nodes(),
            started.elapsed().as_secs_f64()
        );
        Ok(Model {
            header: ModelHeader {
                model: name.into(),
                target: target.into(),
                classes: classes.map(|c| c.to_vec()),
                features: features.to_vec(),
                forest_args: args_raw.clone(),
                tel_id: self.tel,
                dl1_settings: self.gammas.settings.clone(),
                dl1_pipeline_version: self.gammas.pipeline_version.clone(),
                training: self.training.clone(),
                inputs: self.inputs.clone(),
                pipeline_version: self.pipeline_version.into(),
                activity_key: self.ctx_key.into(),
            },
            forest,
        })
    }
}

impl Stage for TrainRfsStage {
    fn name(&self) -> &'static str {
        "train-rfs"
    }

    fn version(&self) -> &'static str {
        "1"
    }

    fn plan(&self, params: &Value, input_roles: &[&str], at: &str) -> Result<StagePlan> {
        let tel = tel_id(params, at)?;
        let with_gh = match input_roles {
            ["gamma"] => false,
            ["gamma", "proton"] | ["proton", "gamma"] => true,
            _ => {
                return Err(Error::msg(format!(
                    "{at}: stage train-rfs takes the input roles \"gamma\" (diffuse gamma DL1) and optionally \"proton\", got {input_roles:?}"
                )))
            }
        };
        Ok(StagePlan { config_keys: config_keys(), config_read: config_read(), outputs: outputs(tel, with_gh) })
    }

    fn config_scope(&self) -> Vec<&'static str> {
        config_keys_static().to_vec()
    }

    fn check_config(&self, config: &Value, _step: &StepSetup, file: &Path, at: &str) -> Result<Vec<ConfigWarning>> {
        // Forest arguments are scikit-learn's: the schema check leaves them to this parser.
        parse_config(config, false).map_err(|e| Error::msg(format!("{}: {e} (read by {at})", file.display())))?;
        Ok(Vec::new())
    }

    fn run(&self, ctx: &mut StageContext) -> Result<()> {
        let tel = tel_id(ctx.params, "train-rfs")?;
        let no_inputs = Vec::new();
        let gamma_files = ctx.inputs.get("gamma").unwrap_or(&no_inputs);
        // Stereo DL1 (its settings say how it was matched) trains with the stereo features too;
        // gamma and proton DL1 made differently are refused below.
        let stereo = match gamma_files.first() {
            Some(f) => crate::io::dl1::Dl1Reader::open(&f.path)
                .map_err(|e| Error::msg(format!("input {}: {e}", f.name)))?
                .settings
                .contains_key("stereo.reconstructor"),
            None => false,
        };
        let cfg = parse_config(ctx.config, stereo).map_err(Error::msg)?;
        let _ = writeln!(
            ctx.log,
            "{} DL1: {} features",
            if stereo { "stereo" } else { "mono" },
            if stereo { "with the HillasReconstructor_*" } else { "without the stereo HillasReconstructor_*" }
        );
        let from_dl1 = |list: &[String]| -> Vec<String> {
            list.iter().filter(|f| !DERIVED_FEATURES.contains(&f.as_str())).cloned().collect()
        };
        let mut features: Vec<String> = [&cfg.energy_features, &cfg.disp_norm_features, &cfg.disp_sign_features]
            .into_iter()
            .flatten()
            .cloned()
            .chain(from_dl1(&cfg.gh_features))
            .collect();
        features.sort();
        features.dedup();
        let gamma_targets = ["log_true_energy", "disp_norm", "disp_sign", "true_shower_primary_id"].map(String::from);
        let proton_files = ctx.inputs.get("proton");
        let keep: Vec<String> = features.iter().chain(&gamma_targets).cloned().collect();
        let gammas = dl1_input::load(gamma_files, "gamma", tel, &keep, &keep, &cfg.selection)?;
        let _ = writeln!(
            ctx.log,
            "gammas: {} events read, {} pass the selection and finite check",
            gammas.n_read, gammas.n_kept
        );
        check_particle(&gammas, GH_CLASSES[0], "gamma")?;
        let protons = match proton_files {
            Some(files) => {
                let keep: Vec<String> =
                    features.iter().cloned().chain(["true_shower_primary_id".to_string()]).collect();
                let p = dl1_input::load(files, "proton", tel, &keep, &keep, &cfg.selection)?;
                let _ = writeln!(
                    ctx.log,
                    "protons: {} events read, {} pass the selection and finite check",
                    p.n_read, p.n_kept
                );
                check_particle(&p, GH_CLASSES[1], "proton")?;
                let diffs = crate::contract::all_differences(&gammas.settings, &p.settings);
                if !diffs.is_empty() || gammas.pipeline_version != p.pipeline_version {
                    return Err(Error::msg(format!(
                        "the gamma and proton DL1 were made differently (pipeline {} vs {}):\n{}",
                        gammas.pipeline_version,
                        p.pipeline_version,
                        crate::contract::side_by_side("gamma", "proton", &diffs)
                    )));
                }
                Some(p)
            }
            None => None,
        };
        if gammas.n_kept < 2 * cfg.regressor.params.min_samples_leaf.max(1) {
            return Err(Error::msg(format!(
                "only {} gamma events pass the event selection and finite check: too few to train on",
                gammas.n_kept
            )));
        }
        let seed = cfg.regressor.params.random_state;
        let sampled = reco::sample_indices(gammas.n_kept, cfg.n_training_events, &mut Rng::new(seed, 1001));
        let raw = |i: usize| ctx.config.get(FOREST_SECTIONS[i]).cloned().unwrap_or(Value::Null);
        let mut inputs = gammas.inputs.clone();
        inputs.extend(protons.iter().flat_map(|p| p.inputs.clone()));
        let mut trainer = Trainer {
            ctx_key: ctx.activity_key,
            pipeline_version: ctx.pipeline_version,
            tel,
            gammas: &gammas,
            training: Value::Null,
            inputs,
        };
        let mut report = json!({
            "tel_id": tel,
            "gamma_events_read": gammas.n_read,
            "gamma_events_selected": gammas.n_kept,
            "gamma_events_sampled": sampled.len(),
            "proton_events_read": protons.as_ref().map(|p| p.n_read),
            "proton_events_selected": protons.as_ref().map(|p| p.n_kept),
        });
        trainer.training = json!({
            "event_selection": ctx.config.get("event_selection"),
            "n_training_events": cfg.n_training_events,
            "gamma_to_proton_training_ratio": cfg.ratio,
            "disp_method": "disp_norm_sign",
            "gamma_events": sampled.len(),
        });
        let g = &gammas.columns;
        let log_e = &g["log_true_energy"];
        let disp_norm = &g["disp_norm"];
        let sign01: Vec<f64> = g["disp_sign"].iter().map(|&s| if s > 0.0 { 1.0 } else { 0.0 }).collect();
        let pick = |v: &[f64], rows: &[usize]| rows.iter().map(|&r| v[r]).collect::<Vec<f64>>();
        let dir = ctx.work_dir;
        let energy = trainer.fit(
            "energy",
            "log_true_energy",
            None,
            &cfg.energy_features,
            &matrix(g, &cfg.energy_features, &sampled),
            &pick(log_e, &sampled),
            &cfg.regressor,
            &raw(0),
            ctx.log,
        )?;
        let disp = trainer.fit(
            "disp_norm",
            "disp_norm",
            None,
            &cfg.disp_norm_features,
            &matrix(g, &cfg.disp_norm_features, &sampled),
            &pick(disp_norm, &sampled),
            &cfg.regressor,
            &raw(0),
            ctx.log,
        )?;
        let sign = trainer.fit(
            "disp_sign",
            "disp_sign",
            Some(SIGN_CLASSES),
            &cfg.disp_sign_features,
            &matrix(g, &cfg.disp_sign_features, &sampled),
            &pick(&sign01, &sampled),
            &cfg.classifier,
            &raw(1),
            ctx.log,
        )?;
        for (m, out) in [(&energy, 0), (&disp, 1), (&sign, 2)] {
            model::write(&dir.join(&ctx.plan.outputs[out].file), m)?;
        }
        if let Some(protons) = &protons {
            let (gh, counts) = train_gh(&cfg, &gammas, protons, &sampled, &mut trainer, &raw, ctx.log)?;
            model::write(&dir.join(&ctx.plan.outputs[3].file), &gh)?;
            report["gh_training_gammas"] = json!(counts.0);
            report["gh_training_protons"] = json!(counts.1);
        }
        let report_file = &ctx.plan.outputs.last().expect("report declared").file;
        let text = serde_json::to_string_pretty(&report).expect("JSON") + "\n";
        std::fs::write(dir.join(report_file), text).map_err(|e| Error::io("cannot write the training report", e))?;
        Ok(())
    }
}

/// Every event of a set must be of the particle its role says.
fn check_particle(set: &Dl1Columns, expected: i64, role: &str) -> Result<()> {
    if let Some(&other) = set.column("true_shower_primary_id").iter().find(|&&p| p as i64 != expected) {
        return Err(Error::msg(format!(
            "the {role} inputs contain events of particle id {other} (expected {expected} only): {}",
            set.inputs.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", ")
        )));
    }
    Ok(())
}

/// The gamma/hadron classifier, with sst1mpipe's two-step training when its features include
/// model outputs. Returns the model and the (gamma, proton) counts it was trained on.
fn train_gh(
    cfg: &TrainingConfig,
    gammas: &Dl1Columns,
    protons: &Dl1Columns,
    sampled: &[usize],
    trainer: &mut Trainer,
    raw: &dyn Fn(usize) -> Value,
    log: &mut dyn std::io::Write,
) -> Result<(Model, (usize, usize))> {
    let seed = cfg.regressor.params.random_state;
    let (g_cols, p_cols) = (&gammas.columns, &protons.columns);
    // log_reco_energy and reco_disp_norm, when the classifier uses them.
    let (mut g_derived, mut p_derived) = (BTreeMap::new(), BTreeMap::new());
    let needs_models = cfg.gh_features.iter().any(|f| DERIVED_FEATURES.contains(&f.as_str()));
    let gamma_pool: Vec<usize> = if needs_models {
        // sst1mpipe: 67% of the gammas train temporary energy and disp models, which predict
        // log_reco_energy and reco_disp_norm for the other 33% and for the protons.
        let mut order = sampled.to_vec();
        let mut rng = Rng::new(seed, 1002);
        for i in (1..order.len()).rev() {
            let j = ((rng.next_u64() as u128 * (i as u128 + 1)) >> 64) as usize;
            order.swap(i, j);
        }
        let n_test = (order.len() as f64 * 0.33).ceil() as usize;
        let (test, train) = order.split_at(n_test);
        let (mut test, mut train) = (test.to_vec(), train.to_vec());
        test.sort_unstable();
        train.sort_unstable();
        let _ = writeln!(
            log,
            "gh: temporary models on {} gammas, classifier gammas from the other {}",
            train.len(),
            test.len()
        );
        let pick = |v: &[f64], rows: &[usize]| rows.iter().map(|&r| v[r]).collect::<Vec<f64>>();
        let fit = |features: &[String], target: &str| {
            Forest::fit(
                &matrix(g_cols, features, &train),
                &pick(&g_cols[target], &train),
                features.len(),
                Task::Regression,
                &cfg.regressor.params,
            )
            .map_err(|e| Error::msg(format!("training the temporary {target} model: {e}")))
        };
        let energy = fit(&cfg.energy_features, "log_true_energy")?;
        let disp = fit(&cfg.disp_norm_features, "disp_norm")?;
        let all_p: Vec<usize> = (0..protons.n_kept).collect();
        let predict = |cols: &BTreeMap<String, Vec<f64>>, rows: &[usize], n: usize| {
            let mut e = vec![f64::NAN; n];
            let mut d = vec![f64::NAN; n];
            for (&r, v) in rows.iter().zip(energy.predict(&matrix(cols, &cfg.energy_features, rows))) {
                e[r] = v;
            }
            for (&r, v) in rows.iter().zip(disp.predict(&matrix(cols, &cfg.disp_norm_features, rows))) {
                d[r] = v;
            }
            (e, d)
        };
        let (ge, gd) = predict(g_cols, &test, gammas.n_kept);
        let (pe, pd) = predict(p_cols, &all_p, protons.n_kept);
        g_derived.insert("log_reco_energy".to_string(), ge);
        g_derived.insert("reco_disp_norm".to_string(), gd);
        p_derived.insert("log_reco_energy".to_string(), pe);
        p_derived.insert("reco_disp_norm".to_string(), pd);
        test
    } else {
        sampled.to_vec()
    };
    let (n_g, n_p) = reco::mix_counts(cfg.n_training_events, cfg.ratio, gamma_pool.len(), protons.n_kept);
    if n_g == 0 || n_p == 0 {
        return Err(Error::msg(format!(
            "cannot train the gamma/hadron classifier: {} gammas and {} protons available after the selection",
            gamma_pool.len(),
            protons.n_kept
        )));
    }
    let mut rng = Rng::new(seed, 1003);
    let g_rows: Vec<usize> =
        reco::sample_indices(gamma_pool.len(), n_g, &mut rng).into_iter().map(|i| gamma_pool[i]).collect();
    let p_rows = reco::sample_indices(protons.n_kept, n_p, &mut rng);
    let mut x = matrix_with(g_cols, &g_derived, &cfg.gh_features, &g_rows);
    x.extend(matrix_with(p_cols, &p_derived, &cfg.gh_features, &p_rows));
    let y: Vec<f64> = std::iter::repeat_n(0.0, g_rows.len()).chain(std::iter::repeat_n(1.0, p_rows.len())).collect();
    trainer.training["gh_gamma_events"] = json!(n_g);
    trainer.training["gh_proton_events"] = json!(n_p);
    let model = trainer.fit(
        "gh",
        "true_shower_primary_id",
        Some(GH_CLASSES),
        &cfg.gh_features,
        &x,
        &y,
        &cfg.classifier,
        &raw(1),
        log,
    )?;
    Ok((model, (n_g, n_p)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_written_as_sst1mpipe_writes_them_are_integers() {
        let with = |count: &str| {
            // The shipped MC config is sst1mpipe's, byte for byte: it writes 7E5.
            let text = crate::config::MC_DEFAULTS
                .replace("\"n_training_events\": 7E5", &format!("\"n_training_events\": {count}"));
            assert!(text.contains(count), "the shipped MC config names n_training_events");
            parse_config(&serde_json::from_str(&text).unwrap(), false).map(|c| c.n_training_events)
        };
        assert_eq!(with("7E5"), Ok(700_000));
        assert_eq!(with("700000"), Ok(700_000));
        for bad in ["7.5", "0", "-7E5", "1e300", "\"7E5\""] {
            assert!(with(bad).unwrap_err().contains("n_training_events must be a positive integer"), "{bad}");
        }
    }
}
