//! `sst1mflow run RECIPE`: the summary printing around [`crate::engine::run::run_recipe`].
use super::Cli;
use crate::engine::run::{run_recipe, want_progress, Outcome, RunOptions, RunReport};
use crate::error::Result;
use crate::store::Store;
use clap::Args;
use std::path::PathBuf;

#[derive(Args)]
pub struct RunArgs {
    /// Recipe file (JSON)
    pub recipe: PathBuf,
    /// Parallel activities (default: number of cores)
    #[arg(short, long)]
    pub jobs: Option<usize>,
    /// Print what would run and why; change nothing
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub executor: super::executor::ExecutorArgs,
}

/// How many skipped or failed activities the text summary names before counting the rest.
const LIST_LIMIT: usize = 20;

pub fn run(cli: &Cli, args: &RunArgs) -> Result<i32> {
    let store = Store::open(&cli.store_dir())?;
    let slurm = args.executor.slurm_settings()?;
    let jobs = args.executor.jobs(args.jobs, slurm.as_ref());
    let opts = RunOptions { jobs, dry_run: args.dry_run, progress: want_progress(cli.quiet) && !cli.json, slurm };
    let report = run_recipe(&crate::stages::pipeline(), &store, &args.recipe, &opts)?;
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&report.to_json()).expect("json"));
    } else {
        let total = report.activities.len();
        if report.dry_run {
            for a in &report.activities {
                match &a.outcome {
                    Outcome::WouldRun(reason) => println!("would run  {}/{}  ({reason})", a.step, a.item),
                    Outcome::WouldRunAfter(up) => println!("would run  {}/{}  (after {up})", a.step, a.item),
                    _ => {}
                }
            }
            let would = report.count(|o| matches!(o, Outcome::WouldRun(_) | Outcome::WouldRunAfter(_)));
            println!(
                "recipe {}: {total} activities — {would} would run, {} reused (dry run, {:.2} s)",
                report.recipe,
                report.count(|o| *o == Outcome::Reused),
                report.elapsed.as_secs_f64()
            );
        } else {
            let skipped: Vec<_> =
                report.activities.iter().filter(|a| matches!(a.outcome, Outcome::Skipped(_))).collect();
            for a in skipped.iter().take(LIST_LIMIT) {
                if let Outcome::Skipped(why) = &a.outcome {
                    println!("skipped  {}/{}  ({why})", a.step, a.item);
                }
            }
            if skipped.len() > LIST_LIMIT {
                println!("skipped  … and {} more (--json lists all)", skipped.len() - LIST_LIMIT);
            }
            print_step_summary(&report);
            let remade = report.activities.iter().filter(|a| a.recomputed).count();
            println!(
                "recipe {}: {total} activities — {} ran, {} reused{}, {} failed, {} skipped ({:.2} s)",
                report.recipe,
                report.count(|o| *o == Outcome::Ran),
                report.count(|o| *o == Outcome::Reused),
                if remade > 0 {
                    format!(" ({remade} remade for outputs deleted once consumed)")
                } else {
                    String::new()
                },
                report.count(|o| matches!(o, Outcome::Failed(_))),
                report.count(|o| matches!(o, Outcome::Skipped(_))),
                report.elapsed.as_secs_f64()
            );
            let failed: Vec<_> = report.activities.iter().filter(|a| matches!(a.outcome, Outcome::Failed(_))).collect();
            for a in failed.iter().take(LIST_LIMIT) {
                if let Outcome::Failed(e) = &a.outcome {
                    println!("FAILED  {}/{}: {e}", a.step, a.item);
                }
            }
            if failed.len() > LIST_LIMIT {
                println!("FAILED  … and {} more (--json lists all)", failed.len() - LIST_LIMIT);
            }
            if let Some(c) = report.slurm_calls {
                println!(
                    "SLURM: {} array task(s) in {} sbatch call(s); {} squeue and {} sacct poll(s)",
                    c.tasks, c.sbatch, c.squeue, c.sacct
                );
            }
            if report.success() {
                let views = store.views_dir().join(&report.recipe);
                println!("products: {}", views.display());
                if let Some(last) = report.activities.last() {
                    let items = report.activities.iter().filter(|a| a.step == last.step).count();
                    let folder =
                        if items == 1 { views.join(&last.step).join(&last.item) } else { views.join(&last.step) };
                    println!("last step ({}): {}", last.step, folder.display());
                }
            }
        }
    }
    Ok(if report.success() { 0 } else { 1 })
}

/// One line per step: items, what ran and was reused, and the files each item makes.
fn print_step_summary(report: &RunReport) {
    let mut steps: Vec<(&str, Vec<&crate::engine::run::ActivityReport>)> = Vec::new();
    for a in &report.activities {
        match steps.iter_mut().find(|(s, _)| *s == a.step) {
            Some((_, v)) => v.push(a),
            None => steps.push((&a.step, vec![a])),
        }
    }
    let width = steps.iter().map(|(s, _)| s.len()).max().unwrap_or(0);
    for (step, acts) in &steps {
        let ran = acts.iter().filter(|a| a.outcome == Outcome::Ran).count();
        let reused = acts.iter().filter(|a| a.outcome == Outcome::Reused).count();
        let other = acts.len() - ran - reused;
        let mut what = Vec::new();
        if ran > 0 {
            what.push(format!("{ran} ran"));
        }
        if reused > 0 {
            what.push(format!("{reused} reused"));
        }
        if other > 0 {
            what.push(format!("{other} failed or skipped"));
        }
        println!(
            "  {step:<width$}  {:>2} item{}  {:<18}  {}",
            acts.len(),
            if acts.len() == 1 { " " } else { "s" },
            what.join(", "),
            acts[0].output_files.join(" ")
        );
    }
}
