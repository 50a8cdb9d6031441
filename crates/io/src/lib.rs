//! File formats. Everything that touches bytes on disk for science products lives here, so the
//! science modules stay free of I/O.
//!
//! * [`analysis_tables`] — the gammaness cut table and the performance tables.
//! * [`hdf5_table`] — append-only HDF5 tables readable as is by pandas, PyTables and h5py.
//! * [`dl1`] — the DL1 file in the ctapipe layout.
//! * [`dl2`] — the DL2 file (DL1 parameters plus the reconstruction).
//! * [`fits`] — a small FITS writer (primary HDU and binary tables) for IRFs and DL3.
//! * [`gadf`] — the GADF class cards and our provenance cards of IRF and DL3 headers.
//! * [`model`] — random-forest model files with their provenance header.
//! * [`r1`] — our R1 file of (simulated) waveforms with their truth.
//! * [`eventio`], [`simtel`] — sim_telarray EventIO Monte Carlo files, read natively.
//! * [`zfits`] — SST-1M DigiCam R0 (and CTAO R1v1) zfits files, read natively;
//!   [`zfits_write`] writes them as the camera server does (simulated raw nights).
pub mod analysis_tables;
pub mod calibration_tables;
pub mod dl1;
pub mod dl1_import;
pub mod dl2;
pub mod event_source;
pub mod eventio;
pub mod fits;
pub mod gadf;
pub mod hdf5_table;
pub mod instrument;
pub mod model;
pub mod pixel_charges;
pub mod r1;
pub mod simtel;
pub mod zfits;
pub mod zfits_write;
