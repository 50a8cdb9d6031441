//! The engine: a generic, provenance-exact workflow executor. It turns a recipe into activities,
//! decides from their keys which are already done, runs the rest and records every product,
//! activity and edge. It knows nothing about gamma rays: an application hands it a
//! [`stage::Pipeline`] (its stages and pipeline version) and the engine drives them.
//!
//! * [`store`] — content-addressed objects, written atomically; work directories; locks.
//! * [`provenance`] — the SQLite graph of products, activities and their edges (the only SQL).
//! * [`maintenance`] — `verify` and `gc`, which need both the objects and the graph.
//! * [`recipe`] — parses and validates recipe files.
//! * [`key`] — activity keys, the sole basis of reuse.
//! * [`stage`] — the interface every stage implements, and the [`Pipeline`] of an application.
//! * [`config`] — the config file: loaded once, pruned per step, flattened for comparisons.
//! * [`run`] — plans the activity DAG and executes it on local cores.
//! * [`runner`] — runs one activity's stage and publishes its outputs (for every executor).
//! * [`why`] — why an activity must rerun.
//! * [`reproduce`] — re-executes a product's recorded history and compares hashes.
//! * [`command`] — the generic stage that runs a shell-free command; [`procs`] — its processes.
pub mod command;
pub mod config;
pub mod confine;
pub mod key;
pub mod maintenance;
pub mod procs;
pub mod provenance;
pub mod recipe;
pub mod reproduce;
pub mod run;
pub mod runner;
pub mod slurm;
pub mod stage;
pub mod store;
pub mod why;

pub use stage::Pipeline;
