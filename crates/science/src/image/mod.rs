//! Camera images: from waveforms to cleaned images to image parameters.
//!
//! * [`calibrate`] — R0 → R1 for camera data (baseline, dc→p.e., voltage drop, saturation, bad pixels, pedestal windows).
//! * [`extract`] — LocalPeakWindowSum charge and peak time per pixel, integration correction.
//! * [`clean`] — tailcuts and time-delta cleaning, islands.
//! * [`params`] — Hillas, leakage, concentration, timing, morphology, statistics.
//! * [`lts`] — ctapipe 0.17's least-trimmed-squares timing fit, with its seeded generator.
//!
//! Pure functions over slices, free of I/O, defined to agree with ctapipe (the reference
//! implementation sst1mpipe uses) to floating-point precision; the interop tests compare them
//! with ctapipe on the same images. Per-image work allocates at most a few vectors of the
//! number of selected pixels, never per pixel.
pub mod calibrate;
pub mod clean;
pub mod extract;
pub mod lts;
pub mod params;
pub mod pixel_charges;
