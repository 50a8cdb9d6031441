//! `sst1mflow status [RECIPE…]`: what in a recipe is missing or stale, and exactly why.
//!
//! It is a dry run of the planner (hashes, never mtimes): a product is up to date when its
//! activity key is recorded with intact, valid outputs. Without a recipe argument, every
//! recipe that has run against the store is checked, from the path recorded at its last run.
use super::Cli;
use crate::engine::run::{run_recipe, Outcome, RunOptions};
use crate::engine::why::StaleReason;
use crate::error::{Error, Result};
use crate::provenance::Db;
use crate::store::Store;
use serde_json::{json, Value};
use std::path::PathBuf;

/// SLURM jobs listed per recipe in the text form.
const JOBS_LISTED: usize = 10;

/// "SLURM job 12_3 on node1: COMPLETED (exit 0:0), 42 s, attempt 1" from a recorded executor.
pub fn describe_job(job: &Value) -> String {
    format!(
        "SLURM job {} on {}: {} (exit {}), {} s, attempt {}",
        job["job_id"].as_str().unwrap_or("?"),
        job["node"].as_str().filter(|n| !n.is_empty()).unwrap_or("no node"),
        job["state"].as_str().unwrap_or("?"),
        job["exit_code"].as_str().unwrap_or("?"),
        job["elapsed_s"].as_u64().map_or("?".into(), |s| s.to_string()),
        job["attempts"].as_u64().unwrap_or(1)
    )
}

pub fn run(cli: &Cli, recipes: &[PathBuf]) -> Result<i32> {
    let store = Store::open_existing(&cli.store_dir())?;
    let recipes: Vec<PathBuf> = if recipes.is_empty() {
        let db = Db::open_for_reading(&store.db_path())?;
        let paths = db.recipe_paths()?;
        if paths.is_empty() {
            return Err(Error::msg(format!("no recipe has run against {} yet; name one", store.root().display())));
        }
        paths.into_iter().map(PathBuf::from).collect()
    } else {
        recipes.to_vec()
    };
    let opts = RunOptions { jobs: 1, dry_run: true, progress: false, slurm: None };
    let db = Db::open_for_reading(&store.db_path())?;
    let mut all = Vec::new();
    let mut stale_total = 0;
    for path in &recipes {
        let report = run_recipe(&crate::stages::pipeline(), &store, path, &opts)?;
        let mut items = Vec::new();
        let mut recomputable = Vec::new();
        let mut on_slurm = Vec::new();
        for a in &report.activities {
            // The last record of its key, when it ran as a cluster job (ok, or the failure).
            if let Some(job) =
                a.key.as_deref().map(|k| db.activity_by_key(k)).transpose()?.flatten().and_then(|r| r.executor)
            {
                on_slurm.push(json!({"step": a.step, "item": a.item, "key": a.key, "job": job}));
            }
            let (state, why) = match &a.outcome {
                Outcome::Reused if a.recomputable_absent => {
                    recomputable.push(json!({"step": a.step, "item": a.item, "state": "recomputable", "key": a.key,
                                             "products": a.output_files}));
                    continue;
                }
                Outcome::Reused => continue,
                Outcome::WouldRun(r @ StaleReason::New) => ("missing", r.to_string()),
                Outcome::WouldRun(r) => ("stale", r.to_string()),
                Outcome::WouldRunAfter(up) => match &a.reason {
                    Some(r) => ("stale", format!("{r}; upstream {up} must be remade first")),
                    None => ("stale", format!("upstream {up} must be remade first")),
                },
                other => ("stale", format!("{other:?}")),
            };
            items.push(json!({"step": a.step, "item": a.item, "state": state, "reason": why, "key": a.key,
                              "products": a.output_files}));
        }
        stale_total += items.len();
        all.push(json!({
            "recipe": report.recipe, "path": path, "activities": report.activities.len(),
            "up_to_date": report.activities.len() - items.len(), "not_up_to_date": items,
            "recomputable": recomputable, "slurm_jobs": on_slurm,
        }));
    }
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&Value::Array(all)).expect("json"));
    } else {
        for r in &all {
            let items = r["not_up_to_date"].as_array().expect("array");
            println!(
                "recipe {} ({}): {} activities, {} up to date, {} missing or stale",
                r["recipe"].as_str().unwrap_or(""),
                r["path"].as_str().unwrap_or(""),
                r["activities"],
                r["up_to_date"],
                items.len()
            );
            let recomputable = r["recomputable"].as_array().expect("array");
            if !recomputable.is_empty() {
                let shown: Vec<String> = recomputable
                    .iter()
                    .take(8)
                    .map(|i| format!("{}/{}", i["step"].as_str().unwrap_or(""), i["item"].as_str().unwrap_or("")))
                    .collect();
                let more = recomputable.len().saturating_sub(shown.len());
                println!(
                    "  recomputable {} (up to date; outputs deleted once consumed, remade only if needed): {}{}",
                    recomputable.len(),
                    shown.join(", "),
                    if more > 0 { format!(" … and {more} more") } else { String::new() }
                );
            }
            let jobs = r["slurm_jobs"].as_array().expect("array");
            if !jobs.is_empty() {
                println!("  ran as SLURM jobs: {} activities", jobs.len());
                for j in jobs.iter().take(JOBS_LISTED) {
                    println!(
                        "    {}/{}: {}",
                        j["step"].as_str().unwrap_or(""),
                        j["item"].as_str().unwrap_or(""),
                        describe_job(&j["job"])
                    );
                }
                if jobs.len() > JOBS_LISTED {
                    println!("    … and {} more (--json lists all)", jobs.len() - JOBS_LISTED);
                }
            }
            for i in items {
                let products: Vec<&str> =
                    i["products"].as_array().map(|a| a.iter().filter_map(|p| p.as_str()).collect()).unwrap_or_default();
                println!(
                    "  {:<8} {}/{} → {}  ({})",
                    i["state"].as_str().unwrap_or(""),
                    i["step"].as_str().unwrap_or(""),
                    i["item"].as_str().unwrap_or(""),
                    products.join(", "),
                    i["reason"].as_str().unwrap_or("")
                );
            }
        }
    }
    let _ = stale_total;
    Ok(0)
}
