//! The science of the SST-1M chain, free of I/O: nothing here opens a file, a database or a
//! terminal. Inputs and outputs are values; the stages (in the `sst1mflow` package) read and
//! write the files through the `sst1mflow-io` crate.
//!
//! * [`astro`] — sky coordinates: camera ↔ alt/az ↔ RA/Dec, time scales, angular distances.
//! * [`instrument`] — the DigiCam camera, its readout and pulse shape, the telescopes.
//! * [`image`] — R0→R1 calibration, charge extraction, cleaning, Hillas/timing/leakage parameters.
//! * [`reco`] — event reconstruction with random forests as sst1mpipe does it, and stereo geometry.
//! * [`forest`] — random forests grown as scikit-learn grows them, and their model encoding.
//! * [`irf`] — instrument response functions with pyirf's conventions.
//! * [`sim`] — the embedded air-shower and camera simulator, with its seeded generator.
pub mod astro;
pub mod forest;
pub mod image;
pub mod instrument;
pub mod irf;
pub mod reco;
pub mod sim;
