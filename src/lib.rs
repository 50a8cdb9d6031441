//! sst1mflow: the SST-1M analysis chain under exact, queryable provenance.
//!
//! The workspace's crates are its layers (ARCHITECTURE.md is the map and the rules):
//! * `sst1mflow-base` — the error type and name suggestions ([`error`], [`text`]).
//! * `sst1mflow-science` — the science, free of I/O ([`astro`], [`instrument`], [`image`],
//!   [`reco`], [`forest`], [`irf`], [`sim`]).
//! * `sst1mflow-io` — the file formats ([`io`]).
//! * `sst1mflow-engine` — the generic engine ([`engine`]: recipes, keys, runs; [`store`];
//!   [`provenance`]).
//!
//! This package holds what is SST-1M-specific around them:
//! * [`stages`] — the science stages and the registry that hands them to the engine.
//! * [`contract`] — what products must agree on to be combined (models, IRFs, event lists).
//! * [`config`] — loading sst1mpipe-style configuration files.
//! * [`plot`] — SVG/PNG figures of performance and IRFs.
//! * [`nightly`] — nightly processing: a night of raw runs planned into a recipe, run, summarised.
//! * [`raw_night`] — a simulated raw SST-1M night (zfits runs, calibration tables, truth).
//! * [`cli`] — the command line, a thin layer over the above.
//! * [`version`] — the pipeline version of this build.
pub use sst1mflow_base::{error, text};
pub use sst1mflow_engine as engine;
pub use sst1mflow_engine::{provenance, store};
pub use sst1mflow_io as io;
pub use sst1mflow_science::{astro, forest, image, instrument, irf, reco, sim};

pub mod cli;
pub mod config;
pub mod contract;
pub mod nightly;
pub mod plot;
pub mod raw_night;
pub mod stages;
pub mod version;
