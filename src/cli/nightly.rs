//! `sst1mflow nightly --raw ROOT --production P`: last night's raw runs to DL3 (see
//! [`crate::nightly`]), printed for people or as JSON for cron jobs.
//!
//! Exit codes: 0 when every science run of the night reached its products; 1 when some run or
//! product could not be made (named in the output, the summary and the logs; the rest of the
//! night is processed); 2 when nothing could be planned (bad arguments, no production).
use super::Cli;
use crate::engine::run::{run_recipe, want_progress, Outcome, RunOptions};
use crate::error::{Error, Result};
use crate::nightly::{self, production, summary, Fate, NightRequest};
use crate::provenance::Db;
use crate::store::Store;
use clap::Args;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;

#[derive(Args)]
pub struct NightlyArgs {
    /// Root of the raw data tree (<ROOT>/cs{1,2}/data/raw/YYYY/MM/DD/SST1M{1,2}/…)
    #[arg(long)]
    pub raw: PathBuf,
    /// The evening's date, YYYY-MM-DD (default: yesterday, UTC)
    #[arg(long)]
    pub date: Option<String>,
    /// The production: the name of a recipe run in this store (or its file) whose outputs
    /// hold the models, gammaness cuts and IRFs of one or more zenith/azimuth/NSB nodes
    #[arg(long)]
    pub production: String,
    /// sst1mpipe configuration of the analysis (default: sst1mpipe's data config); its
    /// event selection and global gammaness cut must be the production's
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Telescope description: sst1mpipe's sst1m_array.h5 (in sst1mpipe/data/)
    #[arg(long)]
    pub subarray: PathBuf,
    /// Window transmittance file
    #[arg(long)]
    pub window: Option<PathBuf>,
    /// A target position, NAME=RA,DEC in degrees (adds to or overrides the built-in list)
    #[arg(long = "target", value_name = "NAME=RA,DEC")]
    pub targets: Vec<String>,
    /// Largest zenith difference between a run and the production node it is analysed with
    #[arg(long, default_value_t = 10.0)]
    pub max_zenith_offset: f64,
    /// θ² cut of the summary's ON/OFF counts (deg²)
    #[arg(long, default_value_t = 0.04)]
    pub theta2_cut: f64,
    /// Where the daily tree goes (default: STORE/daily)
    #[arg(long)]
    pub daily_dir: Option<PathBuf>,
    /// Parallel activities (default: number of cores; with --executor slurm, jobs in flight)
    #[arg(short, long)]
    pub jobs: Option<usize>,
    #[command(flatten)]
    pub executor: super::executor::ExecutorArgs,
}

/// Yesterday's date (UTC): the evening whose night ended this morning.
fn yesterday() -> (i32, u32, u32) {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let days = (now / 86400) as i64 - 1;
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = (yoe + era * 400 + if m <= 2 { 1 } else { 0 }) as i32;
    (y, m, d)
}

fn parse_targets(list: &[String]) -> Result<BTreeMap<String, (f64, f64)>> {
    let mut out = BTreeMap::new();
    for t in list {
        let bad = || Error::msg(format!("--target {t:?}: expected NAME=RA,DEC (degrees)"));
        let (name, coords) = t.split_once('=').ok_or_else(bad)?;
        let (ra, dec) = coords.split_once(',').ok_or_else(bad)?;
        let (ra, dec): (f64, f64) = (ra.trim().parse().map_err(|_| bad())?, dec.trim().parse().map_err(|_| bad())?);
        if !(0.0..360.0).contains(&ra) || !(-90.0..=90.0).contains(&dec) || name.trim().is_empty() {
            return Err(bad());
        }
        out.insert(name.trim().to_string(), (ra, dec));
    }
    Ok(out)
}

/// The production's name: a recipe name, or the `name` of a recipe file (else its stem).
fn production_name(p: &str) -> Result<String> {
    let path = std::path::Path::new(p);
    if !path.is_file() {
        return Ok(p.to_string());
    }
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(format!("cannot read {}", path.display()), e))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| Error::msg(format!("{}: not JSON: {e}", path.display())))?;
    Ok(match v.get("name").and_then(Value::as_str) {
        Some(n) => n.to_string(),
        None => path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_default(),
    })
}

fn absolute(p: &std::path::Path) -> Result<PathBuf> {
    std::fs::canonicalize(p).map_err(|e| Error::io(format!("cannot open {}", p.display()), e))
}

pub fn run(cli: &Cli, args: &NightlyArgs) -> Result<i32> {
    let date = match &args.date {
        Some(d) => super::raw_night::parse_date(d)?,
        None => yesterday(),
    };
    let ymd = format!("{:04}{:02}{:02}", date.0, date.1, date.2);
    if !(args.max_zenith_offset > 0.0 && args.max_zenith_offset <= 90.0) {
        return Err(Error::msg(format!("--max-zenith-offset {}: must be in (0, 90] degrees", args.max_zenith_offset)));
    }
    if !(args.theta2_cut > 0.0 && args.theta2_cut <= 0.5) {
        return Err(Error::msg(format!("--theta2-cut {}: must be in (0, 0.5] deg²", args.theta2_cut)));
    }
    let slurm = args.executor.slurm_settings()?;
    let raw_root = absolute(&args.raw).map_err(|e| Error::msg(format!("--raw: {e}")))?;
    let subarray = absolute(&args.subarray)?;
    let window = args.window.as_deref().map(absolute).transpose()?;
    let targets = parse_targets(&args.targets)?;
    let store = Store::open(&cli.store_dir())?;
    let production = production::discover(&store, &production_name(&args.production)?)?;
    let version = crate::version::pipeline_version();
    if production.pipeline_version != version {
        return Err(Error::msg(format!(
            "production {} was made by pipeline version {}, this is {version}: its models would be refused for DL1 of this version (the contract dl1-dl2 checks); rerun its recipe with this version first (sst1mflow run <recipe>)",
            production.name, production.pipeline_version
        )));
    }
    let dir = store.root().join("nightly");
    std::fs::create_dir_all(&dir).map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
    let config_path = match &args.config {
        Some(c) => absolute(c)?,
        None => {
            let p = dir.join("sst1mpipe_data_config.json");
            if std::fs::read_to_string(&p).ok().as_deref() != Some(crate::config::DATA_DEFAULTS) {
                summary::write_atomic(&p, crate::config::DATA_DEFAULTS.as_bytes())?;
            }
            p
        }
    };
    // Read here for the site (the zenith of each run); the engine reads it strictly when it plans.
    let config: Value = std::fs::read_to_string(&config_path)
        .map_err(|e| Error::io(format!("cannot read {}", config_path.display()), e))
        .and_then(|t| {
            serde_json::from_str(&t).map_err(|e| Error::msg(format!("{}: not JSON: {e}", config_path.display())))
        })?;
    let discovery = nightly::discover(&raw_root, date);
    // A calibration table someone invalidated is not used: its runs are named, the rest goes on.
    let db = Db::open(&store.db_path())?;
    let calibration = [1u8, 2].map(|tel| nightly::calibration_table(&raw_root, tel, date));
    let mut invalid_calibration = [None, None];
    for (k, table) in calibration.iter().enumerate() {
        if let Some(table) = table {
            let hash = crate::store::hash_file(table)?.hash;
            invalid_calibration[k] = db.product_invalid(&hash)?;
        }
    }
    let req = NightRequest {
        raw_root: &raw_root,
        date,
        config_path: &config_path,
        config: &config,
        subarray: &subarray,
        window: window.as_deref(),
        max_zenith_offset_deg: args.max_zenith_offset,
        targets: &targets,
        calibration,
        invalid_calibration,
    };
    let plan = nightly::plan(&req, &discovery, &production)?;
    let recipe_path = dir.join(format!("{}.json", plan.recipe_name));
    let n_steps = plan.recipe["steps"].as_array().map_or(0, Vec::len);
    let report = if n_steps > 0 {
        let text = serde_json::to_string_pretty(&plan.recipe).expect("json") + "\n";
        if std::fs::read_to_string(&recipe_path).ok().as_deref() != Some(text.as_str()) {
            summary::write_atomic(&recipe_path, text.as_bytes())?;
        }
        let jobs = args.executor.jobs(args.jobs, slurm.as_ref());
        let opts = RunOptions { jobs, dry_run: false, progress: want_progress(cli.quiet) && !cli.json, slurm };
        Some(run_recipe(&crate::stages::pipeline(), &store, &recipe_path, &opts)?)
    } else {
        None
    };
    let daily_root = args.daily_dir.clone().unwrap_or_else(|| store.root().join("daily"));
    std::fs::create_dir_all(&daily_root)
        .map_err(|e| Error::io(format!("cannot create {}", daily_root.display()), e))?;
    let views = store.views_dir().join(&plan.recipe_name);
    let inputs = summary::SummaryInputs {
        plan: &plan,
        report: report.as_ref(),
        db: Some(&db),
        views: &views,
        date: ymd.clone(),
        production: &production,
        targets: &targets,
        theta2_cut: args.theta2_cut,
    };
    let (mut summary_json, theta2) = summary::summarise(&inputs)?;
    let page = summary::html(&summary_json, &theta2);
    let daily = summary::write_daily_tree(&daily_root, &inputs, &config_path, &summary_json, &page)?;

    let count = |f: &dyn Fn(&Outcome) -> bool| report.as_ref().map_or(0, |r| r.count(f));
    let (ran, reused, failed, skipped) = (
        count(&|o| *o == Outcome::Ran),
        count(&|o| *o == Outcome::Reused),
        count(&|o| matches!(o, Outcome::Failed(_))),
        count(&|o| matches!(o, Outcome::Skipped(_))),
    );
    let not_analysed = plan.fates.iter().filter(|(_, f)| matches!(f, Fate::NotAnalysable(_))).count();
    let lost = failed + skipped + not_analysed + plan.unreadable.len();
    let code = if lost > 0 { 1 } else { 0 };
    summary_json["activities"] = json!({"total": report.as_ref().map_or(0, |r| r.activities.len()),
        "ran": ran, "reused": reused, "failed": failed, "skipped": skipped});
    summary_json["daily_dir"] = json!(daily);
    summary_json["summary_html"] = json!(daily.join("summary.html"));
    summary_json["recipe_file"] = json!(if n_steps > 0 { Some(&recipe_path) } else { None });
    summary_json["elapsed_s"] = json!(report.as_ref().map_or(0.0, |r| r.elapsed.as_secs_f64()));
    summary_json["exit_code"] = json!(code);
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&summary_json).expect("json"));
        return Ok(code);
    }
    if discovery.runs.is_empty() && discovery.unreadable.is_empty() {
        println!(
            "no raw files for the night of {ymd} under {} (cs1/data/raw/{:04}/{:02}/{:02}/SST1M1, cs2/…/SST1M2): nothing to do",
            raw_root.display(),
            date.0,
            date.1,
            date.2
        );
    }
    for (run, fate) in &plan.fates {
        let what = match fate {
            Fate::Analysed { node, zenith_deg, .. } => format!("analysed (zenith {zenith_deg:.1}°, node {node})"),
            Fate::Skipped(why) => format!("skipped: {why}"),
            Fate::NotAnalysable(why) => format!("NOT ANALYSED: {why}"),
        };
        println!(
            "cs{} run {:04}  {:<10} {:<6} {:>6.0} s {:>7} events  {what}",
            run.tel,
            run.run,
            run.target,
            run.wobble,
            run.duration_s(),
            run.events
        );
    }
    for u in &plan.unreadable {
        println!("UNREADABLE  {}: {}", u.path.display(), u.error);
    }
    for n in plan.notes.iter().chain(&production.notes) {
        println!("note: {n}");
    }
    if let Some(r) = &report {
        for a in &r.activities {
            if let Outcome::Failed(e) = &a.outcome {
                println!("FAILED  {}: {e}", a.step);
            }
        }
    }
    for t in summary_json["targets"].as_array().into_iter().flatten() {
        println!(
            "{} {}: {:.0} s, N_on {} N_off {} (α = 1/3), excess {:.1}, {:.1}σ",
            t["target"].as_str().unwrap_or(""),
            t["setup"].as_str().unwrap_or(""),
            t["livetime_s"].as_f64().unwrap_or(0.0),
            t["n_on"],
            t["n_off"],
            t["excess"].as_f64().unwrap_or(0.0),
            t["significance"].as_f64().unwrap_or(0.0)
        );
    }
    println!(
        "night {ymd}: {} runs ({} analysed), {} activities — {ran} ran, {reused} reused, {failed} failed, {skipped} skipped ({:.2} s)",
        plan.fates.len(),
        plan.fates.iter().filter(|(_, f)| matches!(f, Fate::Analysed { .. })).count(),
        report.as_ref().map_or(0, |r| r.activities.len()),
        report.as_ref().map_or(0.0, |r| r.elapsed.as_secs_f64())
    );
    println!("summary: {}", daily.join("summary.html").display());
    Ok(code)
}
