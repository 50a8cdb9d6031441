//! sst1mflow: the SST-1M analysis chain under exact, queryable provenance.
//!
//! * [`store`] — content-addressed objects, written atomically.
//! * [`provenance`] — the SQLite graph of products, activities and their edges.
//! * [`engine`] — recipes, activity keys, planning, the local executor.
//! * [`stages`] — what activities compute.
//! * [`cli`] — the command line, a thin layer over the above.
pub mod astro;
pub mod cli;
pub mod config;
pub mod contract;
pub mod engine;
pub mod error;
pub mod forest;
pub mod image;
pub mod instrument;
pub mod io;
pub mod irf;
pub mod plot;
pub mod provenance;
pub mod reco;
pub mod sim;
pub mod stages;
pub mod store;
pub mod text;
pub mod version;
