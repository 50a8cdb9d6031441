//! The command line: parses arguments and hands over to the library; prints results as text
//! for people or JSON (`--json`) for scripts. Errors go to stderr with a non-zero exit code.
mod camera;
mod config;
mod executor;
mod graph;
mod log;
mod maintain;
mod nightly;
mod r0_dl1;
mod raw_night;
mod run;
mod status;
mod verify;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "sst1mflow", version = version_string(), about = "SST-1M analysis chain under exact provenance")]
pub struct Cli {
    /// Store directory (default: $SST1MFLOW_STORE, else ./store)
    #[arg(long, global = true, value_name = "DIR")]
    pub store: Option<PathBuf>,
    /// No progress display
    #[arg(long, short, global = true)]
    pub quiet: bool,
    /// Machine-readable JSON on stdout
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Plan a recipe, reuse what is recorded, run the rest
    Run(run::RunArgs),
    /// R0 (zfits, sim_telarray) or R1 files → DL1, recorded like a one-step recipe
    #[command(name = "r0-dl1")]
    R0Dl1(r0_dl1::R0Dl1Args),
    /// Check a configuration file, alone or against a recipe (what each key does)
    Config {
        #[command(subcommand)]
        command: config::ConfigCommand,
    },
    /// Re-hash every object and referenced raw input, check every record; exit 1 on any problem
    Verify {
        /// Take a referenced raw input whose size, inode and times are unchanged as intact
        /// (no re-hash)
        #[arg(long)]
        quick: bool,
    },
    /// Print the log of an activity (by key or unique key prefix)
    Log {
        /// Activity key or prefix
        key: String,
    },
    /// The full ancestry of a product, down to raw inputs
    Lineage(graph::GraphArgs),
    /// Everything derived from a product
    Descendants(graph::GraphArgs),
    /// One product: kind, metadata, size, the activity that made it
    Show {
        /// Product: hash or unique prefix, a path in the store or a view, or a copy of a product
        target: String,
    },
    /// What in a recipe (default: every recipe run here) is missing or stale, and why
    Status {
        /// Recipe files
        recipes: Vec<PathBuf>,
    },
    /// Where the provenance of two products differs (versions, config keys, inputs)
    Diff {
        /// First product
        a: String,
        /// Second product
        b: String,
    },
    /// W3C PROV of a product's lineage
    ExportProv {
        /// Product: hash or unique prefix, a path in the store or a view, or a copy of a product
        target: String,
        #[arg(long, value_enum, default_value = "prov-json")]
        format: graph::ProvFormat,
        /// Write to this file instead of stdout
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
    /// Mark products (and, by default, all their descendants) as never to be reused
    Invalidate(maintain::InvalidateArgs),
    /// List products nothing needs (no recipe output, pin or live descendant); delete with --delete
    Gc {
        /// Delete their objects (records and manifests are kept)
        #[arg(long)]
        delete: bool,
    },
    /// Protect a product and its whole lineage from gc under a name (no arguments: list pins)
    Pin {
        name: Option<String>,
        /// Product: hash or unique prefix, a path in the store or a view, or a copy of a product
        target: Option<String>,
    },
    /// Remove a pin
    Unpin { name: String },
    /// Re-run a product's whole lineage in a scratch store and compare every hash
    Reproduce {
        /// Product: hash or unique prefix, a path in the store or a view, or a copy of a product
        target: String,
        /// Keep the scratch store (under the store's tmp/) for inspection
        #[arg(long)]
        keep: bool,
    },
    /// Recreate the provenance database from the store's manifests and objects
    RebuildDb {
        /// Replace an existing database
        #[arg(long)]
        force: bool,
    },
    /// The SST-1M camera description this build uses (geometry, neighbours, pulse, telescopes)
    Camera,
    /// Last night's raw runs of both telescopes to DL3 through the engine, with a summary page
    Nightly(nightly::NightlyArgs),
    /// Write a simulated raw SST-1M night (zfits runs of both telescopes, calibration tables, truth)
    #[command(name = "simulate-night")]
    SimulateNight(raw_night::NightArgs),
    /// Print the pipeline version recorded on activities
    Version,
    /// Run one activity of a SLURM job array (what `--executor slurm` submits)
    #[command(name = "slurm-worker", hide = true)]
    SlurmWorker {
        /// The job array's folder (tmp/slurm/batches/NAME in the store)
        batch_dir: PathBuf,
        /// Array task (default: $SLURM_ARRAY_TASK_ID)
        #[arg(long)]
        task: Option<usize>,
        /// Activities per array task (task t runs lines t·N+1 … t·N+N of the batch's keys)
        #[arg(long, default_value_t = 1)]
        per_task: usize,
    },
}

fn version_string() -> &'static str {
    Box::leak(crate::version::pipeline_version().into_boxed_str())
}

impl Cli {
    pub fn store_dir(&self) -> PathBuf {
        self.store
            .clone()
            .or_else(|| std::env::var_os("SST1MFLOW_STORE").map(PathBuf::from))
            .unwrap_or_else(|| PathBuf::from("store"))
    }
}

/// Runs the CLI; returns the process exit code.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let result = match &cli.command {
        Command::Run(args) => run::run(&cli, args),
        Command::R0Dl1(args) => r0_dl1::run(&cli, args),
        Command::Config { command } => config::run(&cli, command),
        Command::Verify { quick } => verify::run(&cli, *quick),
        Command::Log { key } => log::run(&cli, key),
        Command::Lineage(args) => graph::lineage(&cli, args),
        Command::Descendants(args) => graph::descendants(&cli, args),
        Command::Show { target } => graph::show(&cli, target),
        Command::Status { recipes } => status::run(&cli, recipes),
        Command::Diff { a, b } => graph::diff(&cli, a, b),
        Command::ExportProv { target, format, output } => graph::export_prov(&cli, target, *format, output.as_deref()),
        Command::Invalidate(args) => maintain::invalidate(&cli, args),
        Command::Gc { delete } => maintain::gc(&cli, *delete),
        Command::Pin { name, target } => maintain::pin(&cli, name.as_deref(), target.as_deref()),
        Command::Unpin { name } => maintain::unpin(&cli, name),
        Command::Reproduce { target, keep } => maintain::reproduce(&cli, target, *keep),
        Command::RebuildDb { force } => maintain::rebuild_db(&cli, *force),
        Command::Camera => camera::run(&cli),
        Command::SimulateNight(args) => raw_night::run(&cli, args),
        Command::Nightly(args) => nightly::run(&cli, args),
        Command::SlurmWorker { batch_dir, task, per_task } => executor::slurm_worker(&cli, batch_dir, *task, *per_task),
        Command::Version => {
            if cli.json {
                println!(
                    "{}",
                    serde_json::json!({
                        "pipeline_version": crate::version::pipeline_version(),
                        "crate_version": crate::version::CRATE_VERSION,
                        "git_commit": crate::version::GIT_COMMIT,
                        "dirty": crate::version::GIT_DIRTY,
                        "key_schema": crate::engine::key::KEY_SCHEMA_VERSION,
                        "db_schema": crate::provenance::schema_version(),
                    })
                );
            } else {
                println!("{}", crate::version::pipeline_version());
            }
            Ok(0)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            2
        }
    }
}
