//! The engine: turns a recipe into activities, decides which are already done, runs the rest.
//!
//! * [`recipe`] parses and validates recipe files.
//! * [`key`] defines activity keys, the sole basis of reuse.
//! * [`run`] plans the activity DAG, explains every rerun, and executes on the local executor.
pub mod key;
pub mod recipe;
pub mod reproduce;
pub mod run;
pub mod why;
