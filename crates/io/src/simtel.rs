//! sim_telarray files: the run description and the triggered events of SST-1M Monte Carlo,
//! decoded from EventIO objects ([`super::eventio`]) natively.
//!
//! The reader walks the file once, front to back, and assembles events the way sim_telarray
//! writes them (and pyeventio/ctapipe read them): an `MCShower` (2020) opens a shower, each
//! `MCEvent` (2021) is one use of it (triggered or not, the denominator of effective areas),
//! optionally followed by `TelescopeData` (1204) with the true photo-electrons per pixel
//! (1208) and by an `ArrayEvent` (2010) when the array triggered. Header objects (run header
//! 2000, MC run header 2001, camera settings 2002, history 70) and the per-telescope
//! calibration (camera monitoring 2022: pedestals; laser calibration 2023: ADC→p.e.) are
//! kept as they come, so every event carries the calibration valid when it was written.
//!
//! Versions are branched on as pyeventio does; an object type or version we do not read is
//! skipped by its length and counted in [`SimtelReader::skipped`] (the stage reports the
//! counts), never a crash. Calibration events (2028) are counted and skipped.
//!
//! What r0-dl1 gets per telescope event is R0: ADC samples `[gain][pixel][sample]`, the
//! pedestal per sample and the ADC→p.e. factor per gain and pixel, and the true image.
use super::eventio::{differential_traces, sub_objects, Cursor, EventIoReader, Object, ParseResult};
use sst1mflow_base::error::{Error, Result};
use sst1mflow_science::irf::shower_distribution::{ShowerDistribution, THROWN_SHOWERS_HISTOGRAM_ID};
use std::collections::BTreeMap;
use std::path::Path;

/// Run header (type 2000).
#[derive(Clone, Debug, Default)]
pub struct RunHeader {
    pub run: i32,
    pub time: i32,
    /// Array pointing (azimuth, altitude) in radians.
    pub direction: (f32, f32),
    pub tel_ids: Vec<i16>,
    /// Telescope positions (m) in the array frame.
    pub tel_positions: Vec<[f32; 3]>,
    pub target: String,
    pub observer: String,
}

/// MC run header (type 2001): what was thrown.
#[derive(Clone, Debug, Default)]
pub struct McRunHeader {
    pub obs_height_m: f32,
    pub n_showers: i32,
    pub n_use: i32,
    pub core_pos_mode: i32,
    pub core_range_m: (f32, f32),
    pub alt_range_rad: (f32, f32),
    pub az_range_rad: (f32, f32),
    pub diffuse: bool,
    pub viewcone_deg: (f32, f32),
    pub energy_range_tev: (f32, f32),
    pub spectral_index: f32,
    pub atmosphere: i32,
}

/// Camera settings (type 2002).
#[derive(Clone, Debug, Default)]
pub struct CameraSettings {
    pub tel_id: i32,
    pub n_pixels: usize,
    pub focal_length_m: f32,
    /// Only in version ≥ 5; the old SST-1M files have none (use the equivalent focal length).
    pub effective_focal_length_m: Option<f32>,
    pub pixel_x: Vec<f32>,
    pub pixel_y: Vec<f32>,
    pub pixel_area: Vec<f32>,
    /// Number of mirror tiles and their total area (m²), from version 2 on.
    pub n_mirrors: Option<i32>,
    pub mirror_area_m2: Option<f32>,
}

/// Camera organisation (type 2003): readout drawers and trigger sectors.
#[derive(Clone, Debug, Default)]
pub struct CameraOrganization {
    pub n_pixels: usize,
    pub n_drawers: usize,
    pub n_gains: usize,
    pub n_sectors: usize,
    /// Drawer of each pixel.
    pub drawer: Vec<i32>,
    /// Trigger sectors each pixel belongs to.
    pub sectors: Vec<Vec<i32>>,
}

/// Pixel settings (type 2004): the readout window and the reference pulse.
#[derive(Clone, Debug, Default)]
pub struct PixelSettings {
    pub n_pixels: usize,
    pub n_drawers: usize,
    /// Nanoseconds per sample (version ≥ 1).
    pub time_slice_ns: Option<f32>,
    pub sum_bins: Option<i32>,
    /// Reference pulse shape per gain, sampled every `ref_step_ns` (version ≥ 2).
    pub ref_step_ns: Option<f32>,
    pub ref_shape: Vec<Vec<f32>>,
}

/// Pixel timing of a telescope event (type 2016): sim_telarray's own peak-time estimates.
#[derive(Clone, Debug, Default)]
pub struct PixelTiming {
    pub n_types: usize,
    /// Timing types and levels (e.g. peak, fractions of the peak).
    pub time_type: Vec<i16>,
    pub time_level: Vec<f32>,
    pub granularity: f32,
    pub peak_global: f32,
    /// `[pixel][type]`, in samples; NaN for pixels without timing.
    pub times: Vec<f32>,
}

/// Calibration of one telescope as sim_telarray wrote it.
#[derive(Clone, Debug, Default)]
pub struct TelescopeCalibration {
    /// Pedestal per sample, `[gain][pixel]` (monitoring pedestal / number of pedestal slices).
    pub pedestal_per_sample: Vec<f32>,
    /// ADC → p.e. factor, `[gain][pixel]`.
    pub dc_to_pe: Vec<f32>,
    /// Per-pixel time offsets (ns) to subtract from peak times, `[gain][pixel]` (laser
    /// calibration version ≥ 2; ctapipe's `time_shift`).
    pub time_shift_ns: Option<Vec<f32>>,
    pub n_gains: usize,
    pub n_pixels: usize,
}

/// One shower (type 2020).
#[derive(Clone, Copy, Debug, Default)]
pub struct McShower {
    pub shower: i32,
    pub primary_id: i32,
    pub energy_tev: f32,
    pub azimuth_rad: f32,
    pub altitude_rad: f32,
    pub h_first_int_m: f32,
    pub x_max: f32,
    pub h_max_m: f32,
}

/// One telescope's data in a triggered event.
#[derive(Clone, Debug, Default)]
pub struct TelescopeEvent {
    pub tel_id: i32,
    pub n_gains: usize,
    pub n_pixels: usize,
    pub n_samples: usize,
    /// ADC samples `[gain][pixel][sample]`.
    pub adc_samples: Vec<u16>,
    /// (azimuth, altitude) in radians, corrected if present, else raw.
    pub pointing_rad: Option<(f32, f32)>,
    pub calibration: Option<TelescopeCalibration>,
    /// True p.e. per pixel, when the file stores photo-electrons.
    pub true_image: Option<Vec<i32>>,
    pub pixel_timing: Option<PixelTiming>,
}

/// A triggered array event.
#[derive(Clone, Debug, Default)]
pub struct SimtelEvent {
    pub event_id: i64,
    pub shower: McShower,
    pub core_x_m: f32,
    pub core_y_m: f32,
    /// Central trigger GPS time (seconds, nanoseconds).
    pub gps_time: (i32, i32),
    pub telescopes: Vec<TelescopeEvent>,
}

/// The latest monitoring and laser-calibration reports of one telescope.
#[derive(Default)]
struct CalibrationState {
    pedestal_sums: Option<Vec<f32>>,
    pedestal_slices: u16,
    /// (n_gains, n_pixels) of the monitoring report.
    dims: Option<(usize, usize)>,
    dc_to_pe: Option<Vec<f32>>,
    time_shift_ns: Option<Vec<f32>>,
}

/// Streams a sim_telarray file.
pub struct SimtelReader {
    io: EventIoReader,
    pub run_header: Option<RunHeader>,
    pub mc_run_headers: Vec<McRunHeader>,
    pub cameras: BTreeMap<i32, CameraSettings>,
    pub organizations: BTreeMap<i32, CameraOrganization>,
    pub pixel_settings: BTreeMap<i32, PixelSettings>,
    /// History configuration and command lines, in file order.
    pub history: Vec<String>,
    calibrations: BTreeMap<i32, CalibrationState>,
    current_shower: Option<McShower>,
    pending: Option<SimtelEvent>,
    /// The current shower use, waiting for its array event (if it triggered).
    pending_mc: Option<SimtelEvent>,
    pending_true_images: BTreeMap<i32, Vec<i32>>,
    /// MC events (shower uses) seen so far, triggered or not.
    pub n_mc_events: u64,
    /// The thrown-shower histograms (sim_telarray's id 6) of the file's histogram blocks
    /// (type 100, at the end of the file): complete once [`Self::next_event`] returned `None`.
    pub shower_distributions: Vec<ShowerDistribution>,
    pub n_calibration_events: u64,
    /// Objects skipped: (type, version) → count, with the reason.
    pub skipped: BTreeMap<(u32, u32), (u64, String)>,
    finished: bool,
}

fn parse_err(obj: &str, offset: u64, what: &str, e: String) -> Error {
    Error::msg(format!("{what}: {obj} at byte {offset}: {e}"))
}

impl SimtelReader {
    pub fn open(path: &Path) -> Result<SimtelReader> {
        Ok(SimtelReader::new(EventIoReader::open(path)?))
    }

    /// Reads a sim_telarray file held in memory; `name` stands for the file in messages.
    pub fn from_bytes(name: &Path, bytes: Vec<u8>) -> Result<SimtelReader> {
        Ok(SimtelReader::new(EventIoReader::from_bytes(name, bytes)?))
    }

    fn new(io: EventIoReader) -> SimtelReader {
        SimtelReader {
            io,
            run_header: None,
            mc_run_headers: Vec::new(),
            cameras: BTreeMap::new(),
            organizations: BTreeMap::new(),
            pixel_settings: BTreeMap::new(),
            history: Vec::new(),
            calibrations: BTreeMap::new(),
            current_shower: None,
            pending: None,
            pending_mc: None,
            pending_true_images: BTreeMap::new(),
            n_mc_events: 0,
            shower_distributions: Vec::new(),
            n_calibration_events: 0,
            skipped: BTreeMap::new(),
            finished: false,
        }
    }

    pub fn description(&self) -> &str {
        self.io.description()
    }

    /// Bytes of the decompressed stream read so far.
    pub fn decompressed_bytes(&self) -> u64 {
        self.io.offset
    }

    fn skip(&mut self, type_: u32, version: u32, reason: &str) {
        let e = self.skipped.entry((type_, version)).or_insert((0, reason.to_string()));
        e.0 += 1;
    }

    /// Reads header objects until the first event (or the end), so that the run description
    /// is known. Events met on the way are kept for [`Self::next_event`].
    pub fn read_headers(&mut self) -> Result<()> {
        while self.pending.is_none() && !self.finished && self.current_shower.is_none() {
            match self.io.next_object()? {
                None => self.finished = true,
                Some(o) => {
                    if let Some(e) = self.handle(o)? {
                        self.pending = Some(e);
                    }
                }
            }
        }
        Ok(())
    }

    /// The next triggered event, or `None` at the end of the file.
    pub fn next_event(&mut self) -> Result<Option<SimtelEvent>> {
        if let Some(e) = self.pending.take() {
            return Ok(Some(e));
        }
        while !self.finished {
            match self.io.next_object()? {
                None => self.finished = true,
                Some(o) => {
                    if let Some(e) = self.handle(o)? {
                        return Ok(Some(e));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Handles one top-level object; returns a completed triggered event if it made one.
    fn handle(&mut self, o: Object) -> Result<Option<SimtelEvent>> {
        let h = o.header;
        let what = self.io.description().to_string();
        let at = o.offset;
        let name = |n: &str| format!("{n} (type {}, version {})", h.type_, h.version);
        match h.type_ {
            2020 if h.version <= 2 => {
                let s = parse_mc_shower(&o.data, h.id, h.version)
                    .map_err(|e| parse_err(&name("MCShower"), at, &what, e))?;
                self.current_shower = Some(s);
            }
            2021 if h.version <= 2 => {
                self.n_mc_events += 1;
                let mut c = Cursor::new(&o.data);
                let parse = |c: &mut Cursor| -> ParseResult<(i32, f32, f32)> { Ok((c.i32()?, c.f32()?, c.f32()?)) };
                let (shower_num, x, y) = parse(&mut c).map_err(|e| parse_err(&name("MCEvent"), at, &what, e))?;
                let shower = self.current_shower.unwrap_or_default();
                if self.current_shower.is_some() && shower.shower != shower_num {
                    return Err(parse_err(
                        &name("MCEvent"),
                        at,
                        &what,
                        format!("belongs to shower {shower_num}, but the current shower is {}", shower.shower),
                    ));
                }
                self.pending_true_images.clear();
                let event =
                    SimtelEvent { event_id: h.id as i64, shower, core_x_m: x, core_y_m: y, ..Default::default() };
                // Held until its array event (if any) arrives.
                self.pending_mc = Some(event);
            }
            1204 => {
                for sub in sub_objects(&o.data, o.content_offset()) {
                    let sub = sub.map_err(|e| Error::msg(format!("{what}: TelescopeData at byte {at}: {e}")))?;
                    if sub.header.type_ == 1208 && (1..=3).contains(&sub.header.version) {
                        let tel_index = sub.header.id % 1000;
                        let image = parse_photoelectrons(sub.data, sub.header.version)
                            .map_err(|e| parse_err("PhotoElectrons (type 1208)", sub.offset, &what, e))?;
                        self.pending_true_images.insert(tel_index, image);
                    } else {
                        self.skip(sub.header.type_, sub.header.version, "photon bunches (not used)");
                    }
                }
            }
            2010 => {
                let Some(mut event) = self.pending_mc.take() else {
                    // An array event without a shower: an unpacked calibration event.
                    self.n_calibration_events += 1;
                    return Ok(None);
                };
                // The event id is the MC event's (shower × 100 + use); the array event's own id is
                // a running count of triggered events.
                self.fill_array_event(&o.data, o.content_offset(), &mut event)?;
                if event.telescopes.is_empty() {
                    return Ok(None);
                }
                return Ok(Some(event));
            }
            2028 => self.n_calibration_events += 1,
            2022 if h.version <= 1 => {
                let tel = (h.id & 0xff) | ((h.id & 0x3f00_0000) >> 16);
                let (ped, dims) = parse_camera_monitoring(&o.data, h.id, h.version)
                    .map_err(|e| parse_err(&name("CameraMonitoring"), at, &what, e))?;
                let entry = self.calibrations.entry(tel).or_default();
                if let Some((ped, slices)) = ped {
                    entry.pedestal_sums = Some(ped);
                    entry.pedestal_slices = slices;
                }
                entry.dims = Some(dims);
            }
            2023 if h.version <= 3 => {
                let mut c = Cursor::new(&o.data);
                let version = h.version;
                let parse = |c: &mut Cursor| -> ParseResult<(Vec<f32>, Option<Vec<f32>>)> {
                    let n_pixels = c.u16()? as usize;
                    let n_gains = c.i16()?;
                    let _id = c.i32()?;
                    let n = c.count(n_gains as i64 * n_pixels as i64, 4, "n_gains × n_pixels")?;
                    let calib = c.f32s(n)?;
                    if version >= 1 {
                        c.skip(8 * n_gains.max(0) as usize)?;
                    }
                    let time_shift = if version >= 2 { Some(c.f32s(n)?) } else { None };
                    Ok((calib, time_shift))
                };
                let (calib, time_shift) =
                    parse(&mut c).map_err(|e| parse_err(&name("LaserCalibration"), at, &what, e))?;
                let state = self.calibrations.entry(h.id).or_default();
                state.dc_to_pe = Some(calib);
                state.time_shift_ns = time_shift;
            }
            2000 if h.version <= 2 => {
                let r = parse_run_header(&o.data, h.id, h.version)
                    .map_err(|e| parse_err(&name("RunHeader"), at, &what, e))?;
                self.run_header = Some(r);
            }
            2001 if h.version == 4 => {
                let r = parse_mc_run_header(&o.data).map_err(|e| parse_err(&name("MCRunHeader"), at, &what, e))?;
                self.mc_run_headers.push(r);
            }
            2002 if h.version <= 6 => {
                let c = parse_camera_settings(&o.data, h.id, h.version)
                    .map_err(|e| parse_err(&name("CameraSettings"), at, &what, e))?;
                self.cameras.insert(h.id, c);
            }
            2003 if (1..=2).contains(&h.version) => {
                let c = parse_camera_organization(&o.data, h.version)
                    .map_err(|e| parse_err(&name("CameraOrganization"), at, &what, e))?;
                self.organizations.insert(h.id, c);
            }
            2004 if h.version <= 3 => {
                let p = parse_pixel_settings(&o.data, h.version)
                    .map_err(|e| parse_err(&name("PixelSettings"), at, &what, e))?;
                self.pixel_settings.insert(h.id, p);
            }
            70 => {
                for sub in sub_objects(&o.data, o.content_offset()) {
                    let sub = sub.map_err(|e| Error::msg(format!("{what}: History at byte {at}: {e}")))?;
                    if matches!(sub.header.type_, 71 | 72) {
                        let mut c = Cursor::new(sub.data);
                        let _time = c.i32().map_err(|e| parse_err("History entry", sub.offset, &what, e))?;
                        let line = c.string().map_err(|e| parse_err("History entry", sub.offset, &what, e))?;
                        self.history.push(line);
                    }
                }
            }
            100 if (1..=2).contains(&h.version) => {
                let histograms = parse_histograms(&o.data).map_err(|e| parse_err(&name("Histograms"), at, &what, e))?;
                let obs_id = self.run_header.as_ref().map_or(-1, |r| r.run as i64);
                self.shower_distributions.extend(
                    histograms
                        .into_iter()
                        .filter(|h| h.hist_id == THROWN_SHOWERS_HISTOGRAM_ID)
                        .map(|h| ShowerDistribution { obs_id, ..h }),
                );
            }
            // Known objects that R0→DL1 does not need.
            71 | 72 | 75 | 1212 | 1216 | 2005..=2008 | 2024 | 2025 | 2026 | 2034 => {}
            _ => {
                let known = matches!(h.type_, 100 | 2000..=2004 | 2020 | 2021 | 2022 | 2023);
                let reason = if known { "object version not supported" } else { "unknown object type" };
                self.skip(h.type_, h.version, reason);
            }
        }
        Ok(None)
    }

    fn fill_array_event(&mut self, data: &[u8], base: u64, event: &mut SimtelEvent) -> Result<()> {
        let what = self.io.description().to_string();
        let mut pointing: BTreeMap<i32, (f32, f32)> = BTreeMap::new();
        for sub in sub_objects(data, base) {
            let sub = sub.map_err(|e| Error::msg(format!("{what}: ArrayEvent {}: {e}", event.event_id)))?;
            let t = sub.header.type_;
            let v = sub.header.version;
            match t {
                2009 if v <= 3 => {
                    let mut c = Cursor::new(sub.data);
                    let parse = |c: &mut Cursor| -> ParseResult<(i32, i32)> {
                        c.skip(8)?;
                        Ok((c.i32()?, c.i32()?))
                    };
                    event.gps_time =
                        parse(&mut c).map_err(|e| parse_err("TriggerInformation (type 2009)", sub.offset, &what, e))?;
                }
                2100..=2199 | 3100..=3199 if v == 0 => {
                    let tel = tel_id_from_type(t, 2100);
                    let has_raw = sub.header.id & 0x100 != 0;
                    let has_cor = sub.header.id & 0x200 != 0;
                    let mut c = Cursor::new(sub.data);
                    let parse = |c: &mut Cursor| -> ParseResult<Option<(f32, f32)>> {
                        let mut p = None;
                        if has_raw {
                            p = Some((c.f32()?, c.f32()?));
                        }
                        if has_cor {
                            p = Some((c.f32()?, c.f32()?));
                        }
                        Ok(p)
                    };
                    if let Some(p) = parse(&mut c).map_err(|e| parse_err("TrackingPosition", sub.offset, &what, e))? {
                        pointing.insert(tel, p);
                    }
                }
                2200..=2299 | 3200..=3299 => {
                    let tel = tel_id_from_type(t, 2200);
                    let mut te = TelescopeEvent { tel_id: tel, ..Default::default() };
                    for inner in sub_objects(sub.data, sub.offset) {
                        let inner = inner.map_err(|e| Error::msg(format!("{what}: TelescopeEvent {tel}: {e}")))?;
                        match inner.header.type_ {
                            2013 if inner.header.version == 3 => {
                                parse_adc_samples(inner.data, inner.header.id, &mut te).map_err(|e| {
                                    parse_err("ADCSamples (type 2013, version 3)", inner.offset, &what, e)
                                })?;
                            }
                            2016 if (1..=2).contains(&inner.header.version) => {
                                let t = parse_pixel_timing(inner.data, inner.header.version)
                                    .map_err(|e| parse_err("PixelTiming (type 2016)", inner.offset, &what, e))?;
                                te.pixel_timing = Some(t);
                            }
                            2011 | 2014 | 2027 => {}
                            other => self.skip(other, inner.header.version, "telescope-event object not read"),
                        }
                    }
                    if te.adc_samples.is_empty() {
                        self.skip(t, v, "telescope event without ADC samples (only sums) not supported");
                        continue;
                    }
                    te.pointing_rad = pointing.get(&tel).copied();
                    te.calibration = self.calibration_of(tel);
                    let index = self
                        .run_header
                        .as_ref()
                        .and_then(|r| r.tel_ids.iter().position(|&id| id as i32 == tel))
                        .unwrap_or((tel - 1).max(0) as usize);
                    te.true_image = self.pending_true_images.remove(&(index as i32));
                    event.telescopes.push(te);
                }
                2015 => {}
                _ => self.skip(t, v, "array-event object not read"),
            }
        }
        for te in &mut event.telescopes {
            if te.pointing_rad.is_none() {
                te.pointing_rad = pointing.get(&te.tel_id).copied();
            }
        }
        Ok(())
    }

    fn calibration_of(&self, tel: i32) -> Option<TelescopeCalibration> {
        let state = self.calibrations.get(&tel)?;
        let (n_gains, n_pixels) = state.dims?;
        let ped = state.pedestal_sums.as_ref()?;
        let calib = state.dc_to_pe.as_ref()?;
        let slices = state.pedestal_slices;
        if ped.len() != n_gains * n_pixels || calib.len() != ped.len() || slices == 0 {
            return None;
        }
        Some(TelescopeCalibration {
            pedestal_per_sample: ped.iter().map(|p| p / slices as f32).collect(),
            dc_to_pe: calib.clone(),
            time_shift_ns: state.time_shift_ns.clone().filter(|t| t.len() == calib.len()),
            n_gains,
            n_pixels,
        })
    }
}

fn tel_id_from_type(t: u32, base: u32) -> i32 {
    let b = t - base;
    (100 * (b / 1000) + b % 1000) as i32
}

fn parse_mc_shower(data: &[u8], id: i32, version: u32) -> ParseResult<McShower> {
    let mut c = Cursor::new(data);
    let primary_id = c.i32()?;
    let energy_tev = c.f32()?;
    let azimuth_rad = c.f32()?;
    let altitude_rad = c.f32()?;
    if version >= 1 {
        c.f32()?; // depth_start
    }
    let h_first_int_m = c.f32()?;
    let x_max = c.f32()?;
    let h_max_m = if version >= 1 { c.f32()? } else { 0.0 };
    Ok(McShower { shower: id, primary_id, energy_tev, azimuth_rad, altitude_rad, h_first_int_m, x_max, h_max_m })
}

fn parse_run_header(data: &[u8], id: i32, version: u32) -> ParseResult<RunHeader> {
    let mut c = Cursor::new(data);
    let run = c.i32()?;
    let time = c.i32()?;
    let _run_type = c.i32()?;
    let _tracking_mode = c.i32()?;
    if version >= 2 {
        c.i32()?; // reverse_flag
    }
    let direction = (c.f32()?, c.f32()?);
    c.skip(8)?; // offset_fov
    c.f32()?; // conv_depth
    if version >= 1 {
        c.skip(8)?; // conv_ref_pos
    }
    let n = c.i32()?;
    let n = c.count(n as i64, 14, "n_telescopes")?;
    let tel_ids = c.i16s(n)?;
    let pos = c.f32s(3 * n)?;
    let tel_positions = pos.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect();
    c.skip(8)?; // min_tel_trig, duration
    let target = c.string()?;
    let observer = c.string()?;
    let _ = id;
    Ok(RunHeader { run, time, direction, tel_ids, tel_positions, target, observer })
}

/// The histograms of a histogram block (type 100), as pyeventio reads them: per histogram its
/// type character, title (padded to an even length with the character), id, bins, entries, per
/// axis the under/overflow and the range (floats for types R, r, F, D, ints otherwise), for F and
/// D the contents summary, then the counts (f32 for F and D, i32 otherwise; none when it has no
/// true entries), y-major. Two-dimensional ones are returned, one-dimensional ones are skipped.
fn parse_histograms(data: &[u8]) -> ParseResult<Vec<ShowerDistribution>> {
    let mut c = Cursor::new(data);
    let n = c.i16()?;
    let mut out = Vec::new();
    for _ in 0..n.max(0) {
        let kind = c.u8()? as char;
        let title_len = c.string()?.len();
        if title_len % 2 == 0 {
            c.skip(1)?;
        }
        let hist_id = c.i32()? as i64;
        let (n_x, n_y) = (c.i16()?, c.i16()?);
        if n_x < 0 || n_y < 0 {
            return Err(format!("histogram {hist_id}: negative bin count ({n_x} × {n_y})"));
        }
        let entries = c.i32()? as i64;
        let true_entries = c.i32()?;
        let floats = matches!(kind, 'R' | 'r' | 'F' | 'D');
        let mut ranges = Vec::new();
        for _ in 0..if n_y > 0 { 2 } else { 1 } {
            c.skip(8)?; // underflow, overflow
            let range = if floats { (c.f32()? as f64, c.f32()? as f64) } else { (c.i32()? as f64, c.i32()? as f64) };
            c.skip(8)?; // sum, tsum
            ranges.push(range);
        }
        let n_counts = if n_y > 0 { n_x as usize * n_y as usize } else { n_x as usize };
        if matches!(kind, 'F' | 'D') {
            c.skip(4 * 10)?; // content all, inside, outside[8]
        }
        let counts = if true_entries > 0 {
            c.count(n_counts as i64, 4, "histogram counts")?;
            if matches!(kind, 'F' | 'D') {
                c.f32s(n_counts)?
            } else {
                (0..n_counts).map(|_| c.i32().map(|v| v as f32)).collect::<ParseResult<Vec<_>>>()?
            }
        } else {
            vec![0.0; n_counts]
        };
        if n_y > 0 {
            let (core, log10_energy) = (ranges[0], ranges[1]);
            out.push(ShowerDistribution {
                n_entries: entries,
                counts,
                ..ShowerDistribution::with_bins(
                    -1,
                    hist_id,
                    (log10_energy.0, log10_energy.1, n_y as usize),
                    (core.0, core.1, n_x as usize),
                )
            });
        }
    }
    Ok(out)
}

fn parse_mc_run_header(data: &[u8]) -> ParseResult<McRunHeader> {
    let mut c = Cursor::new(data);
    c.skip(24)?; // shower/detector program id, version, start
    let obs_height_m = c.f32()?;
    let n_showers = c.i32()?;
    let n_use = c.i32()?;
    let core_pos_mode = c.i32()?;
    let core_range_m = (c.f32()?, c.f32()?);
    let alt_range_rad = (c.f32()?, c.f32()?);
    let az_range_rad = (c.f32()?, c.f32()?);
    let diffuse = c.i32()? != 0;
    let viewcone_deg = (c.f32()?, c.f32()?);
    let energy_range_tev = (c.f32()?, c.f32()?);
    let spectral_index = c.f32()?;
    c.skip(16)?; // B field, injection height
    let atmosphere = c.i32()?;
    Ok(McRunHeader {
        obs_height_m,
        n_showers,
        n_use,
        core_pos_mode,
        core_range_m,
        alt_range_rad,
        az_range_rad,
        diffuse,
        viewcone_deg,
        energy_range_tev,
        spectral_index,
        atmosphere,
    })
}

fn parse_camera_settings(data: &[u8], id: i32, version: u32) -> ParseResult<CameraSettings> {
    let mut c = Cursor::new(data);
    let n = c.i32()?;
    let n_pixels = c.count(n as i64, 8, "n_pixels")?;
    let focal_length_m = c.f32()?;
    let effective_focal_length_m = if version > 4 { Some(c.f32()?) } else { None };
    if version > 5 {
        c.skip(16)?;
    }
    let pixel_x = c.f32s(n_pixels)?;
    let pixel_y = c.f32s(n_pixels)?;
    let pixel_area;
    if version >= 4 {
        let curved = c.svarint()? != 0;
        let parallel = c.svarint()? != 0;
        if curved {
            c.skip(4 * n_pixels)?;
        }
        if !parallel {
            c.skip(8 * n_pixels)?;
        }
        let common = c.svarint()? != 0;
        if common {
            c.svarint()?;
            pixel_area = vec![c.f32()?; n_pixels];
            c.f32()?;
        } else {
            for _ in 0..n_pixels {
                c.svarint()?;
            }
            pixel_area = c.f32s(n_pixels)?;
            c.skip(4 * n_pixels)?;
        }
    } else {
        pixel_area = c.f32s(n_pixels)?;
        if version >= 1 {
            c.skip(4 * n_pixels)?; // pixel sizes
        }
    }
    let (n_mirrors, mirror_area_m2) = if version >= 2 { (Some(c.i32()?), Some(c.f32()?)) } else { (None, None) };
    Ok(CameraSettings {
        tel_id: id,
        n_pixels,
        focal_length_m,
        effective_focal_length_m,
        pixel_x,
        pixel_y,
        pixel_area,
        n_mirrors,
        mirror_area_m2,
    })
}

/// Pedestal sums `[gain][pixel]` and number of slices if this report carries them, and the
/// dimensions (n_gains, n_pixels).
type Monitoring = (Option<(Vec<f32>, u16)>, (usize, usize));

fn parse_camera_monitoring(data: &[u8], id: i32, version: u32) -> ParseResult<Monitoring> {
    let what = ((id as u32 & 0x00ff_ff00) >> 8) & 0xffff;
    let mut c = Cursor::new(data);
    c.skip(2 + 2 + 4 + 8)?; // known, new_parts, monitor_id, time
    let (ns, np, _nd, ng) = if version == 0 {
        (c.i16()? as i64, c.i16()? as i64, c.i16()? as i64, c.i16()? as i64)
    } else {
        (c.svarint()?, c.svarint()?, c.svarint()?, c.svarint()?)
    };
    let n_sectors = c.count(ns, 0, "n_sectors")?;
    if np <= 0 || ng <= 0 || np > 100_000 || ng > 8 {
        return Err(format!("implausible dimensions: {np} pixels, {ng} gains"));
    }
    let dims = (ng as usize, np as usize);
    if what & 0x01 != 0 {
        c.skip(8 + 4)?;
    }
    if what & 0x02 != 0 {
        c.skip(8 + 4 + 4 + 4)?;
        c.skip(4 * n_sectors)?;
        c.skip(12)?;
    }
    if what & 0x04 != 0 {
        c.skip(8)?;
        let slices = c.i16()?;
        let ped = c.f32s(dims.0 * dims.1)?;
        if slices <= 0 {
            return Err(format!("{slices} pedestal slices"));
        }
        return Ok((Some((ped, slices as u16)), dims));
    }
    Ok((None, dims))
}

fn parse_photoelectrons(data: &[u8], version: u32) -> ParseResult<Vec<i32>> {
    let mut c = Cursor::new(data);
    let _n_pe = c.i32()?;
    let n = c.i32()?;
    let n_pixels = c.count(n as i64, 0, "n_pixels")?;
    if n_pixels > 1_000_000 {
        return Err(format!("{n_pixels} pixels"));
    }
    let flags = if version > 1 { c.i16()? } else { 0 };
    let non_empty = c.i32()?;
    let non_empty = c.count(non_empty as i64, 6, "non-empty pixels")?;
    let mut image = vec![0i32; n_pixels];
    for _ in 0..non_empty {
        let pixel = if version > 2 { c.svarint()? } else { c.i16()? as i64 };
        let n_pe = c.i32()?;
        let n_pe = c.count(n_pe as i64, 4, "photo-electrons of a pixel")?;
        if pixel < 0 || pixel as usize >= n_pixels {
            return Err(format!("pixel {pixel} outside 0..{n_pixels}"));
        }
        image[pixel as usize] = n_pe as i32;
        c.skip(4 * n_pe)?;
        if flags & 1 != 0 {
            c.skip(4 * n_pe)?;
        }
    }
    Ok(image)
}

fn parse_adc_samples(data: &[u8], flags: i32, te: &mut TelescopeEvent) -> ParseResult<()> {
    let zero_sup = flags & 0x1f;
    let data_red = (flags >> 5) & 0x1f;
    let list_known = (flags >> 10) & 1 != 0;
    if data_red != 0 || list_known {
        return Err(format!("data reduction mode {data_red} / pixel list not supported"));
    }
    let mut c = Cursor::new(data);
    let n_pixels = c.i32()?;
    let n_gains = c.i16()?;
    let n_samples = c.i16()?;
    if !(1..=100_000).contains(&n_pixels) || !(1..=4).contains(&n_gains) || !(1..=4096).contains(&n_samples) {
        return Err(format!("implausible dimensions: {n_pixels} pixels, {n_gains} gains, {n_samples} samples"));
    }
    let (n_pixels, n_gains, n_samples) = (n_pixels as usize, n_gains as usize, n_samples as usize);
    te.n_pixels = n_pixels;
    te.n_gains = n_gains;
    te.n_samples = n_samples;
    te.adc_samples.clear();
    if zero_sup == 0 {
        let used = differential_traces(&data[c.pos..], n_gains * n_pixels, n_samples, &mut te.adc_samples)?;
        c.skip(used)?;
        return Ok(());
    }
    let n_ranges = c.svarint()?;
    let n_ranges = c.count(n_ranges, 1, "pixel ranges")?;
    let mut ranges = Vec::with_capacity(n_ranges);
    for _ in 0..n_ranges {
        let start = c.svarint()?;
        let range = if start < 0 { (-start - 1, -start) } else { (start, c.svarint()? + 1) };
        if range.0 < 0 || range.1 < range.0 || range.1 as usize > n_pixels {
            return Err(format!("pixel range {range:?} outside 0..{n_pixels}"));
        }
        ranges.push((range.0 as usize, range.1 as usize));
    }
    let n_signal: usize = ranges.iter().map(|r| r.1 - r.0).sum();
    let mut signal = Vec::new();
    differential_traces(&data[c.pos..], n_gains * n_signal, n_samples, &mut signal)?;
    te.adc_samples.resize(n_gains * n_pixels * n_samples, 0);
    let mut i = 0;
    for g in 0..n_gains {
        for &(a, b) in &ranges {
            for p in a..b {
                let dst = (g * n_pixels + p) * n_samples;
                te.adc_samples[dst..dst + n_samples].copy_from_slice(&signal[i * n_samples..(i + 1) * n_samples]);
                i += 1;
            }
        }
    }
    Ok(())
}

fn parse_camera_organization(data: &[u8], version: u32) -> ParseResult<CameraOrganization> {
    let mut c = Cursor::new(data);
    let n_pixels = c.i32()?;
    let n_drawers = c.i32()?;
    let n_gains = c.i32()?;
    let n_sectors = c.i32()?;
    let n_pixels = c.count(n_pixels as i64, 1, "n_pixels")?;
    let n_gains = c.count(n_gains as i64, 0, "n_gains")?.min(16);
    let n_drawers = n_drawers.max(0) as usize;
    let n_sectors = n_sectors.max(0) as usize;
    let mut drawer = Vec::with_capacity(n_pixels);
    let mut sectors = Vec::with_capacity(n_pixels);
    if version == 1 {
        drawer.extend(c.i16s(n_pixels)?.into_iter().map(i32::from));
        c.skip(3 * 2 * n_pixels * n_gains)?; // card, chip, channel
        for _ in 0..n_pixels {
            let n = c.i16()?;
            let n = c.count(n as i64, 2, "sectors of a pixel")?;
            sectors.push(c.i16s(n)?.into_iter().map(i32::from).collect());
        }
    } else {
        for _ in 0..n_pixels {
            drawer.push(c.svarint()? as i32);
        }
        for _ in 0..3 * n_pixels * n_gains {
            c.svarint()?; // card, chip, channel
        }
        for _ in 0..n_pixels {
            let n = c.svarint()?;
            let n = c.count(n, 1, "sectors of a pixel")?;
            let mut v = Vec::with_capacity(n);
            for _ in 0..n {
                v.push(c.svarint()? as i32);
            }
            sectors.push(v);
        }
    }
    c.count(n_sectors as i64, 9, "n_sectors")?;
    Ok(CameraOrganization { n_pixels, n_drawers, n_gains, n_sectors, drawer, sectors })
}

/// IEEE half precision → single.
fn f16_to_f32(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = (h >> 10) & 0x1f;
    let frac = (h & 0x3ff) as f32;
    match exp {
        0 => sign * frac * 2f32.powi(-24),
        31 => {
            if frac == 0.0 {
                sign * f32::INFINITY
            } else {
                f32::NAN
            }
        }
        e => sign * (1.0 + frac / 1024.0) * 2f32.powi(e as i32 - 15),
    }
}

fn parse_pixel_settings(data: &[u8], version: u32) -> ParseResult<PixelSettings> {
    let mut c = Cursor::new(data);
    c.skip(12)?; // setup_id, trigger_mode, min_pixel_mult
    let n_pixels = c.i32()?;
    let n_pixels = c.count(n_pixels as i64, 4, "n_pixels")?;
    c.skip(4 * n_pixels)?; // HV DAC
    let n_drawers = c.i32()?;
    let n_drawers = c.count(n_drawers as i64, 4, "n_drawers")?;
    c.skip(4 * n_drawers)?; // threshold DAC
    let n_drawers2 = c.i32()?;
    let n_drawers2 = c.count(n_drawers2 as i64, 4, "n_drawers")?;
    c.skip(4 * n_drawers2)?; // ADC start, count
    let (time_slice_ns, sum_bins) = if version >= 1 { (Some(c.f32()?), Some(c.i32()?)) } else { (None, None) };
    let mut ref_step_ns = None;
    let mut ref_shape = Vec::new();
    if version >= 2 {
        let n_ref = c.svarint()?;
        let len_ref = c.svarint()?;
        let n_ref = c.count(n_ref, 0, "reference shapes")?.min(16);
        let len_ref = c.count(len_ref, 2, "reference shape length")?;
        ref_step_ns = Some(c.f32()?);
        for _ in 0..n_ref {
            let raw = c.bytes(2 * len_ref)?;
            ref_shape.push(raw.chunks_exact(2).map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]]))).collect());
        }
    }
    Ok(PixelSettings { n_pixels, n_drawers, time_slice_ns, sum_bins, ref_step_ns, ref_shape })
}

fn parse_pixel_timing(data: &[u8], version: u32) -> ParseResult<PixelTiming> {
    let mut c = Cursor::new(data);
    let n_pixels = if version <= 1 { c.i16()? as i64 } else { c.svarint()? };
    if !(0..=100_000).contains(&n_pixels) {
        return Err(format!("{n_pixels} pixels"));
    }
    let n_pixels = n_pixels as usize;
    let n_gains = c.i16()?;
    let n_gains = c.count(n_gains as i64, 0, "n_gains")?.min(16);
    let before = c.i16()?;
    let after = c.i16()?;
    let with_sum = before >= 0 && after >= 0;
    let list_type = c.i16()?;
    if list_type != 1 && list_type != 2 {
        return Err(format!("list type {list_type}, expected 1 or 2"));
    }
    let list_size = if version <= 1 { c.i16()? as i64 } else { c.svarint()? };
    let n_list = c.count(list_size.saturating_mul(list_type as i64), 1, "pixel list")?;
    let mut list = Vec::with_capacity(n_list);
    for _ in 0..n_list {
        list.push(if version <= 1 { c.i16()? as i64 } else { c.svarint()? });
    }
    let threshold = c.i16()?;
    let glob_only_selected = threshold < 0;
    let n_types = c.i16()?;
    let n_types = c.count(n_types as i64, 2, "timing types")?;
    let time_type = c.i16s(n_types)?;
    let time_level = c.f32s(n_types)?;
    let granularity = c.f32()?;
    let peak_global = c.f32()?;
    let mut times = vec![f32::NAN; n_pixels * n_types];
    let pixels: Vec<usize> = if list_type == 1 {
        list.iter().map(|&p| p as usize).collect()
    } else {
        let mut v = Vec::new();
        for pair in list.chunks_exact(2) {
            if pair[0] < 0 || pair[1] < pair[0] || pair[1] as usize >= n_pixels {
                return Err(format!("pixel range {}..={} outside 0..{n_pixels}", pair[0], pair[1]));
            }
            v.extend(pair[0] as usize..=pair[1] as usize);
        }
        v
    };
    for &p in &pixels {
        if p >= n_pixels {
            return Err(format!("pixel {p} outside 0..{n_pixels}"));
        }
        for t in 0..n_types {
            times[p * n_types + t] = granularity * c.i16()? as f32;
        }
        if with_sum {
            for _ in 0..n_gains {
                c.svarint()?;
            }
            if glob_only_selected {
                for _ in 0..n_gains {
                    c.svarint()?;
                }
            }
        }
    }
    Ok(PixelTiming { n_types, time_type, time_level, granularity, peak_global, times })
}
