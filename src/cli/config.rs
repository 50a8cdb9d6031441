//! `sst1mflow config check CONFIG [RECIPE]`: every key of a configuration file and what becomes
//! of it, before a long run. Against a recipe, the recipe is planned (nothing runs, no store is
//! touched) with CONFIG in place of its own config, and each key is applied by some steps, read
//! without being applied (with why), or read by no step; the notices planning gives (settings
//! read but not implemented) are listed under their keys. Without a recipe, each key is shown
//! with the stages that may read it. Keys sst1mpipe does not know get the closest known key.
//! Exit 0 when every key is an sst1mpipe key, 1 otherwise; 2 when the recipe is refused.
use super::Cli;
use crate::engine::config::{self, KeyUse};
use crate::engine::run::{check_recipe_config, ConfigReport};
use crate::error::Result;
use crate::stages::StagePlan;
use clap::Subcommand;
use serde_json::json;
use std::path::{Path, PathBuf};

#[derive(Subcommand)]
pub enum ConfigCommand {
    /// Show what each key of CONFIG does: applied, read but not applied, or read by no step
    Check {
        /// Configuration file (sst1mpipe's JSON format)
        config: PathBuf,
        /// Recipe to check it against (its own config file is replaced by CONFIG)
        recipe: Option<PathBuf>,
    },
}

pub fn run(cli: &Cli, command: &ConfigCommand) -> Result<i32> {
    let ConfigCommand::Check { config, recipe } = command;
    let pipeline = crate::stages::pipeline();
    let report = match recipe {
        Some(r) => check_recipe_config(&pipeline, r, Some(config))?,
        None => scope_report(config)?,
    };
    let unknown = report.hints.len();
    if cli.json {
        let mut v = report.to_json();
        v["recipe"] = json!(recipe.as_ref().map(|r| r.display().to_string()));
        v["summary"] = summary_json(&report);
        println!("{}", serde_json::to_string_pretty(&v).expect("json"));
    } else {
        print_table(&report, recipe.as_deref());
    }
    Ok(if unknown > 0 { 1 } else { 0 })
}

/// Without a recipe: the stages whose scope holds each key stand for the steps.
fn scope_report(path: &Path) -> Result<ConfigReport> {
    let value = config::load(path)?;
    let stages = crate::stages::all();
    let plans: Vec<(String, StagePlan)> = stages
        .iter()
        .map(|s| {
            let keys = s.config_scope().into_iter().map(String::from).collect();
            (s.name().to_string(), StagePlan { config_keys: keys, ..StagePlan::default() })
        })
        .collect();
    let steps: Vec<(String, &StagePlan)> = plans.iter().map(|(n, p)| (n.clone(), p)).collect();
    let uses = config::account(&value, &steps);
    let hints = uses.iter().filter_map(|u| crate::config::key_hint(&u.key).map(|h| (u.key.clone(), h))).collect();
    Ok(ConfigReport { file: Some(path.to_path_buf()), uses, warnings: Vec::new(), hints })
}

fn counts(report: &ConfigReport) -> (usize, usize, usize) {
    let applied = report.uses.iter().filter(|u| !u.applied_by.is_empty()).count();
    let read = report.uses.iter().filter(|u| u.applied_by.is_empty() && !u.read_by.is_empty()).count();
    (applied, read, report.uses.len() - applied - read)
}

fn summary_json(report: &ConfigReport) -> serde_json::Value {
    let (applied, read, unread) = counts(report);
    json!({"keys": report.uses.len(), "applied": applied, "read_not_applied": read, "read_by_no_step": unread,
           "not_sst1mpipe_keys": report.hints.len(), "warnings": report.warnings.len()})
}

fn state(u: &KeyUse, with_recipe: bool) -> (&'static str, String) {
    if !u.applied_by.is_empty() {
        let who = u.applied_by.join(", ");
        if with_recipe {
            ("applied", who)
        } else {
            ("read by stage", who)
        }
    } else if !u.read_by.is_empty() {
        // Steps that give the same reason are named together.
        let mut whys: Vec<(&str, Vec<&str>)> = Vec::new();
        for (step, why) in &u.read_by {
            match whys.iter_mut().find(|(w, _)| w == why) {
                Some((_, steps)) => steps.push(step),
                None => whys.push((why, vec![step])),
            }
        }
        let lines: Vec<String> = whys.iter().map(|(why, steps)| format!("{}: {why}", steps.join(", "))).collect();
        ("read, not applied", lines.join("; "))
    } else if with_recipe {
        ("read by no step", String::new())
    } else {
        ("read by no stage", String::new())
    }
}

fn print_table(report: &ConfigReport, recipe: Option<&Path>) {
    let file = report.file.as_deref().map(|f| f.display().to_string()).unwrap_or_default();
    match recipe {
        Some(r) => println!("config {file} against recipe {}", r.display()),
        None => println!("config {file} (no recipe: the stages that may read each key)"),
    }
    let width = report.uses.iter().map(|u| u.key.len()).max().unwrap_or(3).clamp(3, 60);
    println!("{:width$}  {:17}  STEPS / WHY", "KEY", "STATE");
    for u in &report.uses {
        let (what, detail) = state(u, recipe.is_some());
        let detail = match report.hints.get(&u.key) {
            Some(h) if detail.is_empty() => h.clone(),
            Some(h) => format!("{detail} ({h})"),
            None => detail,
        };
        println!("{:width$}  {what:17}  {detail}", u.key);
        for w in report.warnings.iter().filter(|w| w.key == u.key) {
            println!("{:width$}  {:17}  warning: {}", "", "", w.message);
        }
    }
    let (applied, read, unread) = counts(report);
    let verbs = if recipe.is_some() { ("applied", "step") } else { ("read by a stage", "stage") };
    println!(
        "{} keys: {applied} {}, {read} read but not applied, {unread} read by no {}{}",
        report.uses.len(),
        verbs.0,
        verbs.1,
        if report.hints.is_empty() { String::new() } else { format!("; {} not sst1mpipe keys", report.hints.len()) }
    );
}
