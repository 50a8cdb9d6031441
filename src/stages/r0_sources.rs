//! Where `r0-dl1`'s events come from: our R1 files (the simulator), sim_telarray Monte Carlo
//! (EventIO) and SST-1M camera data (zfits R0). The format is recognised from the file's first
//! bytes, never from its name. Each source turns its events into the same thing, an R1
//! waveform in p.e. per sample with the event's identity, time, pointing and (for Monte Carlo)
//! truth, so that charge extraction, cleaning and parametrisation are one code path.
//!
//! * **sim_telarray**: R1 = (ADC − pedestal per sample) × dc_to_pe of the file's own
//!   monitoring and laser calibration (ctapipe's `apply_simtel_r1_calibration`), then divided
//!   by the PDE correction factor when `NsbCalibrator.mc_correction_for_PDE` is on (the factor
//!   of the QE file named in the file's history). The camera must be DigiCam (1296 pixels at
//!   the positions of [`CameraGeometry::digicam`]); truth and the thrown-event description come
//!   from the MC headers (n_showers showers used n_use times each, as ctapipe names them;
//!   pyirf and sst1mpipe count their product).
//! * **zfits**: [`super::super::image::calibrate`] does sst1mpipe's R0→R1 with the calibration
//!   table and window transmittance given as activity inputs; see [`DataCalibration`].
use super::super::image::{calibrate, extract};
use crate::error::{Error, Result};
use crate::instrument::camera::CameraGeometry;
use crate::instrument::{Optics, ReferencePulse, TelescopeDescription};
use crate::io::dl1::Truth;
use crate::io::r1::{ShowerRow, SimulationRunRow};
use crate::io::simtel::{SimtelEvent, SimtelReader};
use crate::io::zfits::{DigicamEvent, DigicamEventRef, DigicamReader, DigicamTile};
use std::path::Path;

/// The input formats r0-dl1 reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Our R1 HDF5 file (from `simulate`).
    R1,
    /// sim_telarray EventIO (gzip, zstd or plain).
    Simtel,
    /// SST-1M DigiCam zfits R0.
    Zfits,
}

/// Recognises a file's format from its first bytes.
pub fn detect(path: &Path, name: &str) -> Result<Format> {
    use std::io::Read;
    let mut head = [0u8; 16];
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(format!("cannot open {name}"), e))?;
    let n = f.read(&mut head).map_err(|e| Error::io(format!("cannot read {name}"), e))?;
    let h = &head[..n];
    if h.starts_with(b"\x89HDF\r\n\x1a\n") {
        Ok(Format::R1)
    } else if h.starts_with(b"SIMPLE  =") {
        Ok(Format::Zfits)
    } else if h.starts_with(&[0x1f, 0x8b])
        || h.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || h.starts_with(&crate::io::eventio::SYNC_MARKER)
    {
        Ok(Format::Simtel)
    } else {
        let start = if !h.is_empty() && h.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
            format!("{:?}", String::from_utf8_lossy(h))
        } else {
            format!("{h:02x?}")
        };
        Err(Error::msg(format!(
            "{name}: not an input r0-dl1 reads (expected an sst1mflow R1 HDF5 file, a sim_telarray file or an SST-1M zfits file; the file starts with {start})"
        )))
    }
}

/// sst1mpipe's `true_tel_impact_distance`: the distance (m) on the ground from the telescope's
/// position to the shower core (not to the shower axis).
pub fn ground_impact_distance(tel: [f64; 3], core: [f64; 2]) -> f64 {
    (tel[0] - core[0]).hypot(tel[1] - core[1])
}

/// A Monte Carlo event's id, pointing (alt, az in degrees) and truth.
pub type McEvent = (u64, (f64, f64), Truth);

/// A sim_telarray file as r0-dl1 sees it.
pub struct SimtelSource {
    pub reader: SimtelReader,
    pub tel_id: u16,
    pub obs_id: i64,
    tel_position: [f64; 3],
    /// The telescope as the file describes it (positions, optics, pulse).
    pub telescope: TelescopeDescription,
    pub pde_factor: Option<(String, f64)>,
    pub run: SimulationRunRow,
    pub showers: Vec<ShowerRow>,
    /// Each shower's distance (m) from the telescope to its axis: ctapipe's true impact
    /// (`/simulation/event/telescope/impact`), not sst1mpipe's ground distance.
    pub axis_impacts: Vec<(i64, f64)>,
    pub events_without_telescope: u64,
    /// The current event's per-pixel peak-time offsets (ns), subtracted after extraction.
    pub time_shift_ns: Vec<f32>,
    /// The current event's true photoelectrons per pixel, when the file has them.
    pub true_image: Option<Vec<i32>>,
    /// The current event's central trigger time (sim_telarray's GPS time: Unix seconds and
    /// nanoseconds, which ctapipe reads as UTC).
    pub gps_time: (i32, i32),
}

impl SimtelSource {
    /// Opens the file and checks that it holds telescope `tel_id` with a DigiCam camera.
    /// `pde_factors` maps QE table names to the factor R1 is divided by (None: no correction).
    pub fn open(path: &Path, name: &str, tel_id: u16, pde_factors: Option<&[(String, f64)]>) -> Result<SimtelSource> {
        let mut reader = SimtelReader::open(path).map_err(|e| Error::msg(format!("input {name}: {e}")))?;
        reader.read_headers().map_err(|e| Error::msg(format!("input {name}: {e}")))?;
        let run_header =
            reader.run_header.clone().ok_or_else(|| Error::msg(format!("input {name}: no run header (type 2000)")))?;
        let index = run_header.tel_ids.iter().position(|&t| t as i32 == tel_id as i32).ok_or_else(|| {
            Error::msg(format!(
                "input {name} holds telescopes {:?}, but the step is configured for telescope {tel_id}",
                run_header.tel_ids
            ))
        })?;
        let camera = reader.cameras.get(&(tel_id as i32)).ok_or_else(|| {
            Error::msg(format!("input {name}: no camera settings (type 2002) for telescope {tel_id}"))
        })?;
        if camera.n_pixels != crate::instrument::camera::N_PIXELS {
            return Err(Error::msg(format!(
                "input {name}: telescope {tel_id} has a camera of {} pixels, not SST-1M's DigiCam (1296)",
                camera.n_pixels
            )));
        }
        let to_f64 = |v: &[f32]| v.iter().map(|&x| x as f64).collect::<Vec<f64>>();
        let geometry = CameraGeometry::digicam_with_positions(&to_f64(&camera.pixel_x), &to_f64(&camera.pixel_y))
            .map_err(|e| Error::msg(format!("input {name}: telescope {tel_id}'s camera settings: {e}")))?;
        let model = TelescopeDescription::model(tel_id, [0.0; 3]);
        let optics = Optics {
            equivalent_focal_length_m: camera.focal_length_m as f64,
            effective_focal_length_m: camera.effective_focal_length_m.map_or(f64::NAN, |f| f as f64),
            mirror_area_m2: camera.mirror_area_m2.map_or(model.optics.mirror_area_m2, |a| a as f64),
            n_mirror_tiles: camera.n_mirrors.map_or(model.optics.n_mirror_tiles, |n| n as i64),
        };
        let settings = reader.pixel_settings.get(&(tel_id as i32));
        let pulse = match settings.and_then(|ps| Some((ps.ref_step_ns?, ps.ref_shape.first()?))) {
            Some((step, shape)) => {
                ReferencePulse { shape: shape.iter().map(|&v| v as f64).collect(), step_ns: step as f64 }
            }
            None => model.pulse.clone(),
        };
        let sample_ns = settings.and_then(|ps| ps.time_slice_ns).map_or(model.sample_ns, |t| t as f64);
        let pixel_area_m2 = camera.pixel_area.first().map_or(model.pixel_area_m2, |&a| a as f64);
        let mc = reader
            .mc_run_headers
            .first()
            .cloned()
            .ok_or_else(|| Error::msg(format!("input {name}: no MC run header (type 2001): not a simulation?")))?;
        let pde_factor = match pde_factors {
            None => None,
            Some(factors) => {
                let found = factors.iter().find(|(qe, _)| reader.history.iter().any(|l| l.contains(qe.as_str())));
                match found {
                    Some(f) => Some(f.clone()),
                    None => {
                        let mut qe: Vec<&str> = reader
                            .history
                            .iter()
                            .filter(|l| l.to_ascii_uppercase().starts_with("QUANTUM_EFF"))
                            .map(|l| l.split('%').next().unwrap_or(l).trim())
                            .collect();
                        qe.sort_unstable();
                        qe.dedup();
                        return Err(Error::msg(format!(
                            "input {name}: NsbCalibrator.mc_correction_for_PDE is on, but none of the QE tables with a correction factor for tel_{tel_id:03} ({}) is named in the file's history ({})",
                            factors.iter().map(|f| f.0.as_str()).collect::<Vec<_>>().join(", "),
                            if qe.is_empty() { "no QUANTUM_EFFiciency line".to_string() } else { qe.join("; ") }
                        )));
                    }
                }
            }
        };
        let pos = run_header.tel_positions[index];
        let pointing_alt = run_header.direction.1.to_degrees() as f64;
        let pointing_az = run_header.direction.0.to_degrees() as f64;
        let run = SimulationRunRow {
            n_showers: mc.n_showers.max(0) as u64,
            shower_reuse: mc.n_use.max(0) as u64,
            energy_range_min: mc.energy_range_tev.0 as f64,
            energy_range_max: mc.energy_range_tev.1 as f64,
            spectral_index: mc.spectral_index as f64,
            min_scatter_range: mc.core_range_m.0 as f64,
            max_scatter_range: mc.core_range_m.1 as f64,
            min_viewcone_radius: mc.viewcone_deg.0 as f64,
            max_viewcone_radius: mc.viewcone_deg.1 as f64,
            source_offset: 0.0,
            nsb_rate: f64::NAN,
            seed: 0,
            pointing_alt,
            pointing_az,
        };
        let tel_position = [pos[0] as f64, pos[1] as f64, pos[2] as f64];
        let telescope = TelescopeDescription {
            tel_id,
            position_m: tel_position,
            optics,
            geometry,
            pixel_area_m2,
            pulse,
            sample_ns,
            n_samples: model.n_samples,
        };
        Ok(SimtelSource {
            reader,
            tel_id,
            obs_id: run_header.run as i64,
            tel_position,
            telescope,
            pde_factor,
            run,
            showers: Vec::new(),
            axis_impacts: Vec::new(),
            events_without_telescope: 0,
            time_shift_ns: vec![0.0; 1296],
            true_image: None,
            gps_time: (0, 0),
        })
    }

    /// The next event that has data of our telescope: its R1 waveform (p.e.) into `waveform`,
    /// returning (event id, pointing alt/az in degrees, truth).
    pub fn next(&mut self, waveform: &mut [f32]) -> Result<Option<McEvent>> {
        loop {
            let Some(event) = self.reader.next_event()? else { return Ok(None) };
            if let Some(out) = self.convert(&event, waveform)? {
                self.gps_time = event.gps_time;
                return Ok(Some(out));
            }
            self.events_without_telescope += 1;
        }
    }

    fn convert(&mut self, event: &SimtelEvent, waveform: &mut [f32]) -> Result<Option<McEvent>> {
        let what = self.reader.description().to_string();
        let Some(te) = event.telescopes.iter().find(|t| t.tel_id == self.tel_id as i32) else { return Ok(None) };
        let n_samples = crate::instrument::N_SAMPLES;
        if te.n_pixels != 1296 || te.n_samples != n_samples {
            return Err(Error::msg(format!(
                "{what}: event {}: {} pixels × {} samples, DigiCam has 1296 × {n_samples}",
                event.event_id, te.n_pixels, te.n_samples
            )));
        }
        let cal = te.calibration.as_ref().ok_or_else(|| {
            Error::msg(format!(
                "{what}: event {}: no pedestal/laser calibration (types 2022, 2023) for telescope {} before it",
                event.event_id, self.tel_id
            ))
        })?;
        if cal.n_pixels != te.n_pixels || cal.pedestal_per_sample.len() < te.n_pixels {
            return Err(Error::msg(format!(
                "{what}: event {}: the calibration of telescope {} covers {} pixels, the event {}",
                event.event_id, self.tel_id, cal.n_pixels, te.n_pixels
            )));
        }
        let divide = self.pde_factor.as_ref().map(|f| f.1).unwrap_or(1.0) as f32;
        match &cal.time_shift_ns {
            Some(t) => self.time_shift_ns.copy_from_slice(&t[..1296]),
            None => self.time_shift_ns.fill(0.0),
        }
        // Gain 0 (DigiCam has one).
        for p in 0..1296 {
            let ped = cal.pedestal_per_sample[p];
            let gain = cal.dc_to_pe[p] / divide;
            let src = &te.adc_samples[p * n_samples..(p + 1) * n_samples];
            for (o, &a) in waveform[p * n_samples..(p + 1) * n_samples].iter_mut().zip(src) {
                *o = (a as f32 - ped) * gain;
            }
        }
        let pointing = te
            .pointing_rad
            .map(|(az, alt)| (alt.to_degrees() as f64, az.to_degrees() as f64))
            .unwrap_or((self.run.pointing_alt, self.run.pointing_az));
        let s = &event.shower;
        let (alt, az) = (s.altitude_rad as f64, s.azimuth_rad as f64);
        let focal = self.telescope.optics.equivalent_focal_length_m;
        let (cx, cy) = crate::astro::altaz_to_camera(alt.to_degrees(), az.to_degrees(), focal, pointing.0, pointing.1);
        let impact = ground_impact_distance(self.tel_position, [event.core_x_m as f64, event.core_y_m as f64]);
        let truth = Truth {
            energy_tev: s.energy_tev as f64,
            camera_x: cx,
            camera_y: cy,
            core_x: event.core_x_m as f64,
            core_y: event.core_y_m as f64,
            h_max: s.h_max_m as f64,
            impact,
            primary_id: s.primary_id as i64,
            h_first_int: s.h_first_int_m as f64,
            x_max: s.x_max as f64,
            alt_deg: alt.to_degrees(),
            az_deg: crate::astro::wrap_360(az.to_degrees()),
        };
        let axis = crate::reco::stereo::ground_direction(alt, az);
        let core = [event.core_x_m as f64, event.core_y_m as f64, 0.0];
        let axis_impact = crate::reco::stereo::distance_to_line(self.tel_position, core, axis);
        self.axis_impacts.push((event.event_id, axis_impact));
        self.showers.push(ShowerRow {
            event_id: event.event_id as u64,
            true_energy: truth.energy_tev,
            true_core_x: truth.core_x,
            true_core_y: truth.core_y,
            true_impact: impact,
            true_camera_x: cx,
            true_camera_y: cy,
            true_h_max: truth.h_max,
            true_shower_primary_id: s.primary_id.clamp(0, u16::MAX as i32) as u16,
            n_photoelectrons: te.true_image.as_ref().map(|i| i.iter().map(|&v| v.max(0) as u64).sum()).unwrap_or(0),
        });
        self.true_image.clone_from(&te.true_image);
        Ok(Some((event.event_id as u64, pointing, truth)))
    }

    /// sst1mpipe's `survived_charge_fraction` of the current event: the true charge in the
    /// pixels of `mask` over the whole true charge; NaN without true photoelectrons.
    pub fn survived_charge_fraction(&self, mask: &[bool]) -> f64 {
        let Some(truth) = &self.true_image else { return f64::NAN };
        let total: i64 = truth.iter().map(|&v| v as i64).sum();
        let kept: i64 = truth.iter().zip(mask).filter(|(_, &m)| m).map(|(&v, _)| v as i64).sum();
        if total == 0 {
            return f64::NAN;
        }
        kept as f64 / total as f64
    }
}

/// The calibration of one telescope's camera data (zfits).
pub struct DataCalibration {
    pub tel_id: u16,
    pub dc_to_pe: Vec<f64>,
    pub bad_calibration: Vec<bool>,
    pub window: Option<Vec<f64>>,
    /// Config `analysis.bad_pixels`.
    pub bad_pixels: Vec<usize>,
    pub interpolate_bad: bool,
    pub dynamic_dead: bool,
    pub global_voltage_drop: bool,
    pub pixelwise_voltage_drop: bool,
}

/// Reusable buffers and the result of calibrating one camera event.
pub struct Calibrated {
    /// Baseline-subtracted ADC, bad pixels zeroed; computed (`has_adc`) only when `max_adc`
    /// passes the saturation threshold, since only the saturation check reads it.
    pub adc: Vec<f32>,
    pub has_adc: bool,
    pub r1: Vec<f32>,
    pub bad: Vec<bool>,
    /// The largest baseline-subtracted ADC value before bad pixels were zeroed (see
    /// [`calibrate::r0_to_r1`]).
    pub max_adc: f32,
}

impl Calibrated {
    pub fn new() -> Calibrated {
        let n = 1296 * crate::instrument::N_SAMPLES;
        Calibrated {
            adc: vec![0.0; n],
            has_adc: false,
            r1: vec![0.0; n],
            bad: vec![false; 1296],
            max_adc: f32::INFINITY,
        }
    }
}

impl Default for Calibrated {
    fn default() -> Self {
        Calibrated::new()
    }
}

impl DataCalibration {
    /// What the calibration derives from the pedestal windows (raw std per pixel, the
    /// voltage-drop factor or factors, the bad-pixel mask), to recompute only when the windows
    /// change ([`calibrate::PedestalStats::generation`]).
    pub fn derive(&self, stats: &calibrate::PedestalStats) -> DerivedCalibration {
        let raw_std = stats.raw_std();
        let scale: Vec<f64> = if let (true, Some(std)) = (self.pixelwise_voltage_drop, raw_std.as_ref()) {
            let per_pixel = self
                .dc_to_pe
                .iter()
                .zip(std)
                .map(|(d, s)| d * calibrate::voltage_drop_factor(self.tel_id, s * s).unwrap_or(1.0))
                .collect();
            per_pixel
        } else {
            let vi = if self.global_voltage_drop { stats.global_voltage_drop(self.tel_id).unwrap_or(1.0) } else { 1.0 };
            self.dc_to_pe.iter().map(|d| d * vi).collect()
        };
        let mut bad = vec![false; self.dc_to_pe.len()];
        if self.interpolate_bad {
            for (p, b) in bad.iter_mut().enumerate() {
                *b = self.bad_calibration[p]
                    || (self.dynamic_dead && raw_std.as_ref().map(|s| s[p] < DEAD_PEDESTAL_STD_ADC).unwrap_or(false));
            }
        }
        for &p in &self.bad_pixels {
            bad[p] = true;
        }
        let factors = scale.iter().map(|&s| calibrate::r1_factor(s, 1.0)).collect();
        DerivedCalibration { generation: stats.generation(), scale, factors, bad }
    }

    /// R0 → R1 of one event (sst1mpipe `calibrate`) with what [`Self::derive`] gave:
    /// waveforms of bad pixels are zeroed and flagged for interpolation.
    pub fn calibrate(&self, event: &DigicamEvent, derived: &DerivedCalibration, out: &mut Calibrated) {
        let n_samples = event.n_samples;
        out.max_adc =
            calibrate::r0_to_r1(&event.samples, &event.baselines, &derived.scale, 1.0, n_samples, &mut out.r1);
        self.finish_calibration(n_samples, event, derived, out);
    }

    /// [`Self::calibrate`] on an event where its tile holds it (no reordering copy);
    /// `materialized` receives the reordered event when the saturation check needs its
    /// baseline-subtracted waveforms.
    pub fn calibrate_in_place(
        &self,
        event: &DigicamEventRef,
        derived: &DerivedCalibration,
        out: &mut Calibrated,
        materialized: &mut DigicamEvent,
    ) {
        out.max_adc = calibrate::r0_to_r1_readout(
            event.samples,
            event.baselines,
            event.pixel_indices,
            &derived.scale,
            1.0,
            event.n_samples,
            &mut out.r1,
        );
        if out.max_adc > calibrate::SATURATION_THRESHOLD_ADC {
            event.to_event(materialized);
        }
        self.finish_calibration(event.n_samples, materialized, derived, out);
    }

    /// [`Self::calibrate_in_place`] and the charge extraction in one, for an event without a
    /// sample above the saturation threshold (nearly all): `image` and `peak_time` come straight
    /// from the tile ([`extract::local_peak_window_sum_r0`], the same bits), and `out` gets the
    /// maximum and the bad pixels but no R1 waveforms. Returns false for an event with such a
    /// sample, after [`Self::calibrate_in_place`] made R1 (and the baseline-subtracted
    /// waveforms) whole in `out` for the saturation correction; the caller extracts from them.
    #[allow(clippy::too_many_arguments)]
    pub fn extract_in_place(
        &self,
        event: &DigicamEventRef,
        derived: &DerivedCalibration,
        window: &extract::Window,
        out: &mut Calibrated,
        materialized: &mut DigicamEvent,
        image: &mut [f32],
        peak_time: &mut [f32],
    ) -> bool {
        let readout = calibrate::ReadoutEvent {
            samples: event.samples,
            baselines_x16: event.baselines,
            pixel_indices: event.pixel_indices,
            n_samples: event.n_samples,
        };
        let max_adc =
            extract::local_peak_window_sum_r0(&readout, &derived.factors, &derived.bad, window, image, peak_time);
        if max_adc > calibrate::SATURATION_THRESHOLD_ADC {
            self.calibrate_in_place(event, derived, out, materialized);
            return false;
        }
        out.max_adc = max_adc;
        out.has_adc = false;
        out.bad.copy_from_slice(&derived.bad);
        true
    }

    /// After R1 and its maximum: the baseline-subtracted waveforms of `event` (read only
    /// there) where the saturation check needs them, and the bad pixels zeroed.
    fn finish_calibration(
        &self,
        n_samples: usize,
        event: &DigicamEvent,
        derived: &DerivedCalibration,
        out: &mut Calibrated,
    ) {
        out.has_adc = out.max_adc > calibrate::SATURATION_THRESHOLD_ADC;
        if out.has_adc {
            calibrate::subtract_baselines(&event.samples, &event.baselines, n_samples, &mut out.adc);
        }
        out.bad.copy_from_slice(&derived.bad);
        for (p, &b) in derived.bad.iter().enumerate() {
            if b {
                out.r1[p * n_samples..(p + 1) * n_samples].iter_mut().for_each(|v| *v = 0.0);
                if out.has_adc {
                    out.adc[p * n_samples..(p + 1) * n_samples].iter_mut().for_each(|v| *v = 0.0);
                }
            }
        }
    }
}

/// The calibration of the current pedestal windows.
pub struct DerivedCalibration {
    pub generation: u64,
    /// ADC per p.e. including the voltage drop, per pixel.
    pub scale: Vec<f64>,
    /// p.e. per ADC in f32, per pixel, as R1 multiplies by it ([`calibrate::r1_factor`]).
    pub factors: Vec<f32>,
    pub bad: Vec<bool>,
}

/// A pixel whose pedestal samples vary less than this (ADC) is dead (sst1mpipe).
pub const DEAD_PEDESTAL_STD_ADC: f64 = 2.5;

/// sst1mpipe's obs_id from an SST-1M file name: the date field (8 digits) followed by the run
/// number (`SST1M1_20240304_0012.fits.fz` → 202403040012).
pub fn obs_id_from_name(name: &str) -> Option<i64> {
    let stem = name.split('.').next().unwrap_or(name);
    let fields: Vec<&str> = stem.split('_').collect();
    fields.windows(2).find_map(|w| {
        let date_ok = w[0].len() == 8 && w[0].bytes().all(|b| b.is_ascii_digit());
        let run_ok = !w[1].is_empty() && w[1].len() <= 4 && w[1].bytes().all(|b| b.is_ascii_digit());
        if date_ok && run_ok {
            Some(w[0].parse::<i64>().ok()? * 10_000 + w[1].parse::<i64>().ok()?)
        } else {
            None
        }
    })
}

/// The zfits `TARGET` key (`Target,W1,RA,DEC` or `Target,RA,DEC`; `,` or `_` separated) →
/// (name, wobble, RA, Dec).
pub fn parse_target(target: &str) -> Option<(String, String, f64, f64)> {
    let sep = if target.matches(',').count() > 1 { ',' } else { '_' };
    let f: Vec<&str> = target.split(sep).map(str::trim).collect();
    let (name, wobble, ra, dec) = match f.len() {
        4 => (f[0], f[1], f[2], f[3]),
        3 => (f[0], "UNDEF", f[1], f[2]),
        _ => return None,
    };
    let wobble = if wobble.len() > 1 && wobble.starts_with('W') && wobble[1..].bytes().all(|b| b.is_ascii_digit()) {
        wobble
    } else {
        "UNDEF"
    };
    Some((name.to_string(), wobble.to_string(), ra.parse().ok()?, dec.parse().ok()?))
}

/// A zfits file read on a separate thread, a tile (~100 events) ahead of the physics, so
/// that a run takes the longer of the two, not their sum. The physics reads each event where
/// its decoded tile holds it ([`DigicamEventRef`]): no copy per event, and one hand-over per
/// tile (a hand-over per event, a wake-up and a context switch of each thread, cost as much
/// as the copy). The tiles' buffers go back to the reader for reuse.
pub struct TilesAhead {
    tiles: std::sync::mpsc::Receiver<Result<DigicamTile>>,
    recycle: std::sync::mpsc::Sender<DigicamTile>,
    tile: Option<DigicamTile>,
    at: usize,
}

impl TilesAhead {
    pub fn start(mut reader: DigicamReader) -> TilesAhead {
        let (tx, tiles) = std::sync::mpsc::sync_channel::<Result<DigicamTile>>(1);
        let (recycle, recycled) = std::sync::mpsc::channel::<DigicamTile>();
        std::thread::spawn(move || loop {
            while let Ok(done) = recycled.try_recv() {
                reader.reuse_tile(done);
            }
            let next = reader.next_tile();
            let end = !matches!(next, Ok(Some(_)));
            if let Some(next) = next.transpose() {
                if tx.send(next).is_err() {
                    return;
                }
            }
            if end {
                return;
            }
        });
        TilesAhead { tiles, recycle, tile: None, at: 0 }
    }

    /// The next event of the file, or None at its end; a reading error ends the stream.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Option<Result<DigicamEventRef<'_>>> {
        while self.tile.as_ref().is_none_or(|t| self.at == t.n_events()) {
            if let Some(done) = self.tile.take() {
                let _ = self.recycle.send(done);
            }
            match self.tiles.recv() {
                Err(_) => return None,
                Ok(Err(e)) => return Some(Err(e)),
                Ok(Ok(tile)) => (self.tile, self.at) = (Some(tile), 0),
            }
        }
        self.at += 1;
        Some(Ok(self.tile.as_ref().expect("a tile with events left").event(self.at - 1)))
    }
}

/// The start of a camera run as r0-dl1's first pass reads it: the pedestal events that set
/// the initial windows, and the decoded tiles kept so that the main pass does not decode them
/// again (decoding is most of an event's cost, and sst1mpipe's initial window of 1000
/// pedestal events spans most of a run).
pub struct InitialSegment {
    /// The pedestal events read, in order.
    pub pedestals: Vec<DigicamEvent>,
    /// The SWAT array counter of the first two events.
    pub first_array_ids: Vec<u32>,
    /// The tiles decoded, as many as the memory budget holds.
    pub tiles: crate::io::zfits::DecodedTiles,
}

impl InitialSegment {
    /// Reads `reader` from its start until `max_events` events or `max_pedestals` pedestal
    /// events were read, or the run ended; each pedestal event passes `check` first (the main
    /// pass checks every event). The decoded tiles are kept while they fit in `budget_bytes`.
    pub fn read(
        mut reader: DigicamReader,
        max_events: usize,
        max_pedestals: usize,
        budget_bytes: usize,
        check: &dyn Fn(&DigicamEvent) -> Result<()>,
    ) -> Result<InitialSegment> {
        reader.keep_decoded_tiles(budget_bytes);
        let (mut pedestals, mut seen, mut first_array_ids) = (Vec::new(), 0usize, Vec::new());
        while seen < max_events && pedestals.len() < max_pedestals {
            let Some((event_type, array_event_number)) = reader.peek_type()? else { break };
            if first_array_ids.len() < 2 {
                first_array_ids.push(array_event_number);
            }
            if event_type == crate::io::zfits::PEDESTAL_EVENT_TYPE {
                let mut event = DigicamEvent::default();
                reader.read_into(&mut event)?;
                check(&event)?;
                pedestals.push(event);
            } else {
                reader.skip_event();
            }
            seen += 1;
        }
        Ok(InitialSegment { pedestals, first_array_ids, tiles: reader.into_decoded_tiles() })
    }
}

/// How many bytes of decoded tiles r0-dl1 keeps from its first pass: the environment's
/// `SST1MFLOW_R0_CACHE_MB`, else a quarter of the available memory per core, at most 1 GiB
/// (a run's first 1000 pedestal events are ~10,000 events, 1.3 GB). Only speed depends on it,
/// never a product's bytes. The process keeps that much per core of finished runs' buffers
/// for the next runs (fresh memory costs a zeroed page per 4 kB).
pub fn decode_cache_budget() -> usize {
    let budget = per_run_budget();
    // The buffers of finished runs wait for the next ones, as much as the runs in flight
    // (one per core) keep together.
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    crate::io::zfits::set_tile_pool_limit(budget.saturating_mul(cores));
    budget
}

fn per_run_budget() -> usize {
    const MB: usize = 1 << 20;
    if let Some(mb) = std::env::var("SST1MFLOW_R0_CACHE_MB").ok().and_then(|v| v.trim().parse::<usize>().ok()) {
        return mb.saturating_mul(MB);
    }
    let available_kb = std::fs::read_to_string("/proc/meminfo").ok().and_then(|m| {
        m.lines()
            .find(|l| l.starts_with("MemAvailable:"))
            .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse::<usize>().ok()))
    });
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    match available_kb {
        Some(kb) => (kb.saturating_mul(1024) / (4 * cores)).min(1024 * MB),
        None => 256 * MB,
    }
}

/// Opens a zfits file as DigiCam events for r0-dl1 (pixel flags left undecoded).
pub fn open_zfits(path: &Path, name: &str) -> Result<DigicamReader> {
    DigicamReader::open(path)
        .map(DigicamReader::without_pixel_flags)
        .map_err(|e| Error::msg(format!("input {name}: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn obs_ids_and_targets_follow_sst1mpipe() {
        assert_eq!(obs_id_from_name("SST1M1_20240304_0012.fits.fz"), Some(202403040012));
        assert_eq!(obs_id_from_name("SST1M_01_20180822_001.fits.fz"), Some(201808220001));
        assert_eq!(obs_id_from_name("example_SST1M_20180822.fits.fz"), None);
        assert_eq!(parse_target("Crab,W1,83.633,22.014"), Some(("Crab".into(), "W1".into(), 83.633, 22.014)));
        assert_eq!(parse_target("Crab_83.6_22.0"), Some(("Crab".into(), "UNDEF".into(), 83.6, 22.0)));
        assert_eq!(parse_target("nonsense"), None);
    }

    #[test]
    fn impact_is_the_ground_distance_to_the_core() {
        // sst1mpipe's column: telescope height and shower direction play no part.
        assert!((ground_impact_distance([30.0, 40.0, 4.0], [0.0, 0.0]) - 50.0).abs() < 1e-12);
        assert!((ground_impact_distance([-5.0, 2.0, 0.0], [-5.0, 2.0]) - 0.0).abs() < 1e-12);
    }
}
