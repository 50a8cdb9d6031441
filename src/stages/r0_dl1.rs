//! The `r0-dl1` stage: charge extraction, cleaning and image parameters, written as a DL1
//! file in the ctapipe layout, from any of the inputs [`super::r0_sources`] reads: our
//! simulated R1, sim_telarray Monte Carlo, or SST-1M zfits camera data.
//!
//! It reads sst1mpipe's configuration unchanged. It applies (the keys that enter its activity
//! key, only the step's telescope's entries, so that another telescope's setting reruns
//! nothing) the keys below; it reads the rest of the sections `CameraCalibrator`,
//! `ImageProcessor` and `NsbCalibrator` only to check them (every key must be a known sst1mpipe
//! key, [`crate::config`]), and the keys sst1mpipe's r0_dl1 reads for what this stage does not
//! do are reported, each with why (`sst1mflow config check` shows them).
//!
//! | key | use |
//! |---|---|
//! | `CameraCalibrator.image_extractor_type` | must be `LocalPeakWindowSum` |
//! | `CameraCalibrator.LocalPeakWindowSum` | `window_width`, `window_shift`, `apply_integration_correction` |
//! | `CameraCalibrator.invalid_pixel_handler_type` | `NeighborAverage` (or absent): bad pixels get the mean of their valid neighbours; null: no interpolation |
//! | `ImageProcessor.image_cleaner_type`, `.use_telescope_frame` | must be `ImageCleanerSST` and false |
//! | `ImageProcessor.ImageCleanerSST.telescope_defaults.tel_NNN` | Monte Carlo: the first entry (ImageCleanerSST_MC). Data: the entry of the run's NSB level (largest `min_nsb_level` ≤ the mean pedestal charge), with per-pixel picture thresholds max(`picture_threshold_pe`, μ + `stdev_scaling`·σ) of the last ≤1000 calibrated pedestal images |
//! | `ImageProcessor.TailcutsImageCleaner` | data runs without pedestal events (sst1mpipe's fallback): plain tailcuts, no time cleaning |
//! | `NsbCalibrator.intensity_correction.tel_NNN` | multiplies the Hillas intensity after parametrisation |
//! | `NsbCalibrator.mc_correction_for_PDE` | sim_telarray input: divide R1 by the factor of the file's QE table (sst1mpipe's `mc_pde_correction_factors.json`) |
//! | `NsbCalibrator.apply_global_Vdrop_correction` / `apply_pixelwise_Vdrop_correction` | data: the voltage-drop factor from the pedestal variance |
//! | `telescope_calibration.bad_calib_px_interpolation`, `.dynamic_dead_px_interpolation` | data: which pixels are flagged bad |
//! | `analysis.bad_pixels.tel_NNN` | simulations and data: waveforms zeroed (and the true image, for simulations), pixels flagged bad |
//! | `telescope_equivalent_focal_length.tel_NNN` | data: the `equivalent_focal_length` column, as sst1mpipe writes it (Monte Carlo: the input's optics) |
//! | `telescope_coords.tel_NNN` | data: the site, for the pointing's sky coordinates |
//! | `allowed_tels` | Monte Carlo: checked at planning (the step's telescope must be in it; null allows all) |
//! | `analysis.{gamma,proton}_min_simulated_energy_tev` | Monte Carlo productions: events with a true energy below the particle's value are dropped when it is above the simulated minimum; `min_true_energy_cut` records it (sst1mpipe's energy_min_cut) |
//!
//! Read and reported, not applied: `analysis.ped_time_window` (applied with `px_charges`),
//! `ImageCleanerSST.min_number_pedestals` (applied with `reclean`), `mean_charge_to_nsb_rate`
//! (sst1mpipe only logs its label).
//!
//! Inputs: role `r1` (or `r0`): one file of any supported format. Camera data also need the
//! role `calibration` (the per-pixel calibration table) and the role `subarray` (the telescope
//! description, sst1mpipe's `sst1m_array.h5`: reference pulse for the integration correction,
//! pixel positions, optics, position), and take `window_transmittance` (the window factors);
//! they are activity inputs, so their bytes are in the key. Simulations are described by the
//! sim_telarray file itself (camera and pixel settings), our R1 by the simulator's model. A path in the
//! config's `telescope_calibration.tel_NNN` or `window_transmittance.tel_NNN` is refused: give
//! the file as an input instead. Pedestal events (event type 8) feed the calibration and the
//! cleaning and are not written.
//!
//! Parameters: `tel_id` [1]: which telescope's settings apply; the input must hold it.
//! `compress_images` [false]: deflate the image table. It is stored checksummed but
//! uncompressed by default: deflate shrinks its rows (float charges and peak times whose low
//! mantissa bytes are noise) by only a fifth, and at ~250 µs per event it would cost more than
//! decoding and the whole physics of the event together.
//! `obs_id`: camera data whose file name does not carry `YYYYMMDD_RRRR`. `pointing_ra_deg`,
//! `pointing_dec_deg` with `force_pointing: true` (sst1mpipe's `--pointing-ra/--pointing-dec
//! --force-pointing`, camera data only): the pointing used instead of the TARGET header's
//! coordinates, or where the file has none; coordinates without `force_pointing` are refused,
//! since sst1mpipe uses them only when forced. A file without coordinates and without forced
//! pointing gets NaN pointing (sst1mpipe exits without output). `px_charges: true`
//! (sst1mpipe's `--px-charges`) adds the output `px_charges` (`pedestal_hist.h5`, see
//! [`crate::io::pixel_charges`]): the charge histogram of the pedestal events (camera data, with
//! their charge maps per `analysis.ped_time_window`) or of the pixels without Cherenkov light
//! (sim_telarray files; refused for our R1, which keeps no true image). `reclean: true`
//! (sst1mpipe's `--reclean`, camera data) takes the `px_charges` output of a first pass over the
//! same run as input role `px_charges` and cleans every event with the charge map of its time
//! ([`pixel_charges::RecleanMaps`]: maps with more than `min_number_pedestals` pedestals; the
//! map's NSB level selects the setting and its μ + scaling·σ the picture thresholds; `meanQ`
//! becomes the map's level); maps outside the run's time, or none kept, are refused.
use super::params::Params;
use super::r0_sources::{self, Calibrated, DataCalibration, Format, SimtelSource};
use super::InputFile;
use super::{ConfigRead, ConfigWarning, DeclaredOutput, Stage, StageContext, StagePlan, StepSetup};
use crate::error::{Error, Result};
use crate::image::calibrate;
use crate::image::{clean, extract, params as image_params, pixel_charges};
use crate::instrument::camera::{CameraGeometry, N_PIXELS};
use crate::instrument::TelescopeDescription;
use crate::instrument::{N_SAMPLES, SAMPLE_NS};
use crate::io::calibration_tables::{read_pixel_calibration, read_window_transmittance};
use crate::io::dl1::{Dl1Writer, ImageRow, ParametersRow, PedestalRow, TriggerRow, Truth};
use crate::io::hdf5_table::Storage;
use crate::io::instrument::read_telescope_description;
use crate::io::r1::R1Reader;
use crate::io::zfits::DigicamEvent;
use serde_json::Value;

pub struct R0Dl1Stage;

const CHUNK: usize = 64;

struct StepParams {
    tel_id: u16,
    obs_id: Option<i64>,
    /// sst1mpipe's `--pointing-ra/--pointing-dec` with `--force-pointing`: (RA, Dec) in degrees
    /// used instead of the file's TARGET coordinates, or where the file has none.
    forced_pointing: Option<(f64, f64)>,
    /// sst1mpipe's `--px-charges`: the pixel-charge distributions as a second output.
    px_charges: bool,
    /// sst1mpipe's `--reclean`: clean with the charge maps of a first `px_charges` pass
    /// (input role `px_charges`) instead of the run's first pedestal events.
    reclean: bool,
    /// Deflate the image table (smaller by about a fifth, several times slower to write).
    compress_images: bool,
}

fn step_params(params: &Value, at: &str) -> Result<StepParams> {
    let p = Params::new(
        params,
        &[
            "tel_id",
            "obs_id",
            "pointing_ra_deg",
            "pointing_dec_deg",
            "force_pointing",
            "px_charges",
            "reclean",
            "compress_images",
        ],
        "r0-dl1",
        at,
    )?;
    // As sst1mpipe: manual coordinates are used only when forced, and forcing needs both.
    let force = p.bool_or("force_pointing", false)?;
    let coordinate = |key: &str, range: std::ops::RangeInclusive<f64>| -> Result<Option<f64>> {
        match params.get(key) {
            None => Ok(None),
            Some(v) => v.as_f64().filter(|x| range.contains(x)).map(Some).ok_or_else(|| {
                Error::msg(format!(
                    "{at}.params.{key}: expected degrees in [{}, {}], found {v}",
                    range.start(),
                    range.end()
                ))
            }),
        }
    };
    let ra = coordinate("pointing_ra_deg", 0.0..=360.0)?;
    let dec = coordinate("pointing_dec_deg", -90.0..=90.0)?;
    let forced_pointing = match (force, ra, dec) {
        (true, Some(ra), Some(dec)) => Some((ra, dec)),
        (true, _, _) => {
            return Err(Error::msg(format!(
                "{at}.params.force_pointing: needs both pointing_ra_deg and pointing_dec_deg"
            )))
        }
        (false, None, None) => None,
        (false, _, _) => {
            return Err(Error::msg(format!(
                "{at}.params: pointing_ra_deg/pointing_dec_deg are used only with \"force_pointing\": true (as sst1mpipe's --force-pointing); without it the file's TARGET coordinates are used"
            )))
        }
    };
    let tel_id = u16::try_from(p.u64_or("tel_id", Some(1))?)
        .map_err(|_| Error::msg(format!("{at}.params.tel_id: out of range")))?;
    let obs_id = match params.get("obs_id") {
        None => None,
        Some(v) => Some(
            v.as_i64()
                .filter(|v| *v > 0)
                .ok_or_else(|| Error::msg(format!("{at}.params.obs_id: expected a positive integer, found {v}")))?,
        ),
    };
    let px_charges = p.bool_or("px_charges", false)?;
    let reclean = p.bool_or("reclean", false)?;
    let compress_images = p.bool_or("compress_images", false)?;
    Ok(StepParams { tel_id, obs_id, forced_pointing, px_charges, reclean, compress_images })
}

/// The keys r0-dl1 applies for telescope `tel`: they enter its key. Only this telescope's
/// entries, so that another telescope's setting does not rerun it.
fn config_keys(camera_data: bool, tel: u16) -> Vec<String> {
    let t = format!("tel_{tel:03}");
    let mut keys: Vec<String> = vec![
        "CameraCalibrator.image_extractor_type".into(),
        "CameraCalibrator.LocalPeakWindowSum.window_width".into(),
        "CameraCalibrator.LocalPeakWindowSum.window_shift".into(),
        "CameraCalibrator.LocalPeakWindowSum.apply_integration_correction".into(),
        "CameraCalibrator.invalid_pixel_handler_type?".into(),
        "ImageProcessor.image_cleaner_type".into(),
        "ImageProcessor.use_telescope_frame?".into(),
        format!("ImageProcessor.ImageCleanerSST.telescope_defaults.{t}"),
        format!("NsbCalibrator.intensity_correction.{t}"),
        format!("analysis.bad_pixels.{t}?"),
    ];
    if camera_data {
        // The calibration settings first: a config without them (an MC config) is named so.
        let data_keys = [
            "telescope_calibration.bad_calib_px_interpolation".to_string(),
            "telescope_calibration.dynamic_dead_px_interpolation".into(),
            "ImageProcessor.TailcutsImageCleaner".into(),
            "NsbCalibrator.apply_global_Vdrop_correction?".into(),
            "NsbCalibrator.apply_pixelwise_Vdrop_correction?".into(),
            format!("telescope_coords.{t}"),
            format!("telescope_equivalent_focal_length.{t}"),
        ];
        keys.splice(0..0, data_keys);
    } else {
        // sst1mpipe's MC configs have it; a data config given to simulations does not.
        keys.push("NsbCalibrator.mc_correction_for_PDE?".into());
        keys.push("analysis.gamma_min_simulated_energy_tev?".into());
        keys.push("analysis.proton_min_simulated_energy_tev?".into());
    }
    keys
}

/// What r0-dl1 reads without applying it (checked at planning, never in the key): the rest of
/// its sections (so that a misspelt key in them is refused), and the settings sst1mpipe's
/// r0_dl1 reads for what sst1mflow does not do yet, each with why no product depends on it.
fn config_read(camera_data: bool) -> Vec<ConfigRead> {
    let other = "not used by this step: another telescope's setting, or a method this config does not select";
    let mut read = vec![
        ConfigRead::new("CameraCalibrator", other),
        ConfigRead::new("ImageProcessor", other),
        ConfigRead::new("NsbCalibrator", other),
        ConfigRead::new("analysis.bad_pixels", "another telescope's bad pixels"),
    ];
    if camera_data {
        read.extend([
            ConfigRead::new(
                "telescope_calibration",
                "checked: must be null (the calibration table is the step's input role \"calibration\")",
            ),
            ConfigRead::new(
                "window_transmittance",
                "checked: must be null (the window file is the step's input role \"window_transmittance\")",
            ),
            ConfigRead::new(
                "ImageProcessor.ImageCleanerSST.min_number_pedestals",
                "used only with the parameter \"reclean\" (sst1mpipe's --reclean)",
            ),
            ConfigRead::new(
                "analysis.ped_time_window",
                "used only with the parameter \"px_charges\" (sst1mpipe's --px-charges)",
            ),
            ConfigRead::new("telescope_coords.*.height_m", "not used: the pointing's sky coordinates need no height"),
            ConfigRead::new(
                "mean_charge_to_nsb_rate",
                "sst1mpipe only logs the NSB-rate name of the run's level; the log here gives the level itself",
            ),
        ]);
    } else {
        read.extend([
            ConfigRead::new("ImageProcessor.TailcutsImageCleaner", "used only for camera data without pedestal events"),
            ConfigRead::new(
                "allowed_tels",
                "checked at planning: the step's telescope must be allowed (null allows every telescope)",
            ),
        ]);
    }
    read
}

/// Every key r0-dl1 may read, whatever its parameters.
const CONFIG_SCOPE: [&str; 15] = [
    "CameraCalibrator",
    "ImageProcessor",
    "NsbCalibrator",
    "analysis.bad_pixels",
    "telescope_calibration",
    "window_transmittance",
    "telescope_coords.*",
    "telescope_equivalent_focal_length.*",
    "analysis.ped_time_window",
    "mean_charge_to_nsb_rate",
    "allowed_tels",
    "analysis.gamma_min_simulated_energy_tev",
    "analysis.proton_min_simulated_energy_tev",
    "ImageProcessor.ImageCleanerSST.min_number_pedestals",
    "ImageProcessor.TailcutsImageCleaner",
];

/// sst1mpipe's PDE correction factors for sim_telarray productions
/// (`sst1mpipe/data/mc_pde_correction_factors.json`): QE table → factor R1 is divided by.
fn pde_factors(tel: u16) -> Vec<(String, f64)> {
    let table: &[(u16, &str, f64)] = &[
        (1, "qe_SST1M_5477_ave_TEL1_NSB136.0", 0.96569),
        (1, "qe_SST1M_5477_ave_TEL1_NSB251.0", 0.93939),
        (2, "qe_SST1M_5477_ave_TEL2_NSB177.0", 0.98918),
        (2, "qe_SST1M_5477_ave_TEL2_NSB300.0", 0.98191),
    ];
    table.iter().filter(|t| t.0 == tel).map(|t| (t.1.to_string(), t.2)).collect()
}

/// One `ImageCleanerSST` setting (an entry of `telescope_defaults.tel_NNN`).
#[derive(Clone, Debug)]
struct Cleaner {
    min_nsb_level: f64,
    stdev_scaling: f64,
    picture: f64,
    cuts: clean::Tailcuts,
    min_time_neighbors: usize,
    time_limit_ns: f64,
    only_main_island: bool,
}

struct Settings {
    window: extract::Window,
    apply_integration_correction: bool,
    /// In the order written in the config.
    cleaners: Vec<Cleaner>,
    intensity_correction: f64,
    /// `analysis.bad_pixels.tel_NNN`: waveforms zeroed (simulations and camera data alike).
    bad_pixels: Vec<usize>,
    /// `CameraCalibrator.invalid_pixel_handler_type`: "NeighborAverage" (absent: the same), or
    /// null for no interpolation of bad pixels.
    interpolate_invalid: bool,
    /// Simulations: `analysis.gamma_min_simulated_energy_tev` and
    /// `analysis.proton_min_simulated_energy_tev` (absent: no cut).
    min_true_energy: MinTrueEnergy,
}

/// sst1mpipe's `energy_min_cut`: simulated events with a true energy below the particle's
/// minimum are dropped when that minimum is above the simulated one, and every row records the
/// cut (or the simulated minimum) in `min_true_energy_cut`, by which IRFs and performance
/// rescale the thrown showers.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct MinTrueEnergy {
    pub gamma: Option<f64>,
    pub proton: Option<f64>,
}

impl MinTrueEnergy {
    pub(crate) fn from_config(config: &Value) -> Result<MinTrueEnergy> {
        let read = |key: &str| -> Result<Option<f64>> {
            match config.pointer(&format!("/analysis/{key}")) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => match v.as_f64() {
                    Some(x) if x.is_finite() && x >= 0.0 => Ok(Some(x)),
                    _ => Err(Error::msg(format!("config analysis.{key} = {v}: must be an energy in TeV (≥ 0)"))),
                },
            }
        };
        Ok(MinTrueEnergy {
            gamma: read("gamma_min_simulated_energy_tev")?,
            proton: read("proton_min_simulated_energy_tev")?,
        })
    }

    /// The cut for a simulation of `primary_id` (0: gamma, else sst1mpipe's proton value) whose
    /// minimum energy is `simulated_min_tev`: `(value for the column, cut applied)`.
    pub(crate) fn cut_for(&self, primary_id: i64, simulated_min_tev: f64) -> (f64, Option<f64>) {
        let wanted = if primary_id == 0 { self.gamma } else { self.proton };
        match wanted {
            Some(cut) if cut > simulated_min_tev => (cut, Some(cut)),
            _ => (simulated_min_tev, None),
        }
    }
}

impl Settings {
    /// The extraction window for `telescope`: ctapipe's integration correction of its own
    /// reference pulse and sampling (as sst1mpipe: the sim_telarray file's pulse for
    /// simulations, the telescope description's for camera data), noted in the log.
    fn window_for(&self, telescope: &TelescopeDescription, log: &mut dyn std::io::Write) -> Result<extract::Window> {
        if (telescope.sample_ns - SAMPLE_NS).abs() > 1e-6 {
            return Err(Error::msg(format!(
                "telescope {} samples every {} ns, DigiCam every {SAMPLE_NS} ns",
                telescope.tel_id, telescope.sample_ns
            )));
        }
        let mut window = self.window;
        if self.apply_integration_correction {
            let pulse = &telescope.pulse;
            window.correction =
                extract::integration_correction(&pulse.shape, pulse.step_ns, SAMPLE_NS, window.width, window.shift);
            let _ = writeln!(
                log,
                "integration correction {:.6} from the reference pulse of telescope {} ({} points every {} ns)",
                window.correction,
                telescope.tel_id,
                pulse.shape.len(),
                pulse.step_ns
            );
        }
        Ok(window)
    }
}

fn get<'v>(config: &'v Value, path: &str) -> Result<&'v Value> {
    path.split('.').try_fold(config, |v, k| v.get(k)).ok_or_else(|| Error::msg(format!("config key {path} is missing")))
}

fn number(config: &Value, path: &str) -> Result<f64> {
    get(config, path)?.as_f64().ok_or_else(|| Error::msg(format!("config key {path} must be a number")))
}

fn flag(config: &Value, path: &str) -> Result<bool> {
    get(config, path)?.as_bool().ok_or_else(|| Error::msg(format!("config key {path} must be true or false")))
}

/// A count in `lo..=hi` given as a JSON number that is an exact integer (`7.5` is not a count).
fn count_in(v: &Value, key: &str, lo: usize, hi: usize, why: &str) -> Result<usize> {
    match v.as_f64() {
        Some(x) if x.fract() == 0.0 && x >= lo as f64 && x <= hi as f64 => Ok(x as usize),
        _ => Err(Error::msg(format!("config {key} = {v}: must be an integer from {lo} to {hi}{why}"))),
    }
}

/// A finite number of at least `lo`.
fn at_least(v: &Value, key: &str, lo: f64) -> Result<f64> {
    match v.as_f64() {
        Some(x) if x.is_finite() && x >= lo => Ok(x),
        _ => Err(Error::msg(format!("config {key} = {v}: must be a finite number of at least {lo}"))),
    }
}

/// Range and type checks of every extraction and cleaning setting, for every telescope the
/// config describes: run at planning, so a bad value refuses the recipe before anything runs.
fn check_ranges(config: &Value) -> Result<()> {
    let lpws = "CameraCalibrator.LocalPeakWindowSum";
    if let Ok(v) = get(config, &format!("{lpws}.window_width")) {
        count_in(v, &format!("{lpws}.window_width"), 1, N_SAMPLES, " (samples in a DigiCam waveform)")?;
    }
    if let Ok(v) = get(config, &format!("{lpws}.window_shift")) {
        count_in(v, &format!("{lpws}.window_shift"), 0, N_SAMPLES - 1, " (samples before the peak)")?;
    }
    let defaults = "ImageProcessor.ImageCleanerSST.telescope_defaults";
    if let Ok(Value::Object(tels)) = get(config, defaults) {
        for (tel, entries) in tels {
            let Some(entries) = entries.as_array() else { continue };
            for (i, entry) in entries.iter().enumerate() {
                let key = |name: &str| format!("{defaults}.{tel}[{i}].{name}");
                for name in ["picture_threshold_pe", "boundary_threshold_pe", "time_limit_ns", "min_nsb_level"] {
                    if let Some(v) = entry.get(name) {
                        at_least(v, &key(name), 0.0)?;
                    }
                }
                if let Some(v) = entry.get("stdev_scaling") {
                    at_least(v, &key("stdev_scaling"), 0.0)?;
                }
                for name in ["min_picture_neighbors", "min_time_neighbors"] {
                    if let Some(v) = entry.get(name) {
                        count_in(v, &key(name), 0, 6, " (a hexagonal pixel has 6 neighbours)")?;
                    }
                }
            }
        }
    }
    if let Ok(Value::Object(tels)) = get(config, "NsbCalibrator.intensity_correction") {
        for (tel, v) in tels {
            match v.as_f64() {
                Some(x) if x.is_finite() && x > 0.0 => {}
                _ => {
                    return Err(Error::msg(format!(
                        "config NsbCalibrator.intensity_correction.{tel} = {v}: must be a positive number"
                    )))
                }
            }
        }
    }
    Ok(())
}

fn settings(config: &Value, tel: u16) -> Result<Settings> {
    check_ranges(config)?;
    let extractor = get(config, "CameraCalibrator.image_extractor_type")?;
    if extractor.as_str() != Some("LocalPeakWindowSum") {
        return Err(Error::msg(format!(
            "config CameraCalibrator.image_extractor_type = {extractor}: only \"LocalPeakWindowSum\" is implemented"
        )));
    }
    let width = number(config, "CameraCalibrator.LocalPeakWindowSum.window_width")? as usize;
    let shift = number(config, "CameraCalibrator.LocalPeakWindowSum.window_shift")? as usize;
    let apply = flag(config, "CameraCalibrator.LocalPeakWindowSum.apply_integration_correction")?;
    let key = format!("ImageProcessor.ImageCleanerSST.telescope_defaults.tel_{tel:03}");
    let entries = get(config, &key)?
        .as_array()
        .filter(|a| !a.is_empty())
        .ok_or_else(|| Error::msg(format!("config {key} must be a non-empty list of settings")))?;
    let mut cleaners = Vec::new();
    for (i, entry) in entries.iter().enumerate() {
        let field =
            |name: &str| entry.get(name).ok_or_else(|| Error::msg(format!("config {key}[{i}] lacks \"{name}\"")));
        let num = |name: &str| {
            field(name)?.as_f64().ok_or_else(|| Error::msg(format!("config {key}[{i}].{name} must be a number")))
        };
        let flag = |name: &str| {
            field(name)?.as_bool().ok_or_else(|| Error::msg(format!("config {key}[{i}].{name} must be true or false")))
        };
        cleaners.push(Cleaner {
            min_nsb_level: entry.get("min_nsb_level").and_then(Value::as_f64).unwrap_or(0.0),
            stdev_scaling: entry.get("stdev_scaling").and_then(Value::as_f64).unwrap_or(0.0),
            picture: num("picture_threshold_pe")?,
            cuts: clean::Tailcuts {
                boundary: num("boundary_threshold_pe")?,
                min_picture_neighbors: num("min_picture_neighbors")? as usize,
                keep_isolated: flag("keep_isolated")?,
            },
            min_time_neighbors: num("min_time_neighbors")? as usize,
            time_limit_ns: num("time_limit_ns")?,
            only_main_island: flag("only_main_island")?,
        });
    }
    Ok(Settings {
        // The integration correction depends on the input's reference pulse: set per input
        // by `Settings::window_for`.
        window: extract::Window { width, shift, sample_ns: SAMPLE_NS, correction: 1.0 },
        apply_integration_correction: apply,
        cleaners,
        intensity_correction: number(config, &format!("NsbCalibrator.intensity_correction.tel_{tel:03}"))?,
        bad_pixels: bad_pixels(config, tel)?,
        interpolate_invalid: !matches!(
            config.pointer("/CameraCalibrator/invalid_pixel_handler_type"),
            Some(Value::Null)
        ),
        min_true_energy: MinTrueEnergy::from_config(config)?,
    })
}

/// `analysis.bad_pixels.tel_NNN`: pixel ids of the camera (absent or null: none).
fn bad_pixels(config: &Value, tel: u16) -> Result<Vec<usize>> {
    match config.pointer(&format!("/analysis/bad_pixels/tel_{tel:03}")) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|v| v.as_u64().filter(|&p| (p as usize) < N_PIXELS).map(|p| p as usize))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                Error::msg(format!(
                    "config analysis.bad_pixels.tel_{tel:03} = {}: must list pixel ids 0..{}",
                    Value::Array(a.clone()),
                    N_PIXELS - 1
                ))
            }),
        Some(other) => {
            Err(Error::msg(format!("config analysis.bad_pixels.tel_{tel:03} must be a list, found {other}")))
        }
    }
}

fn bad_mask(bad: &[usize], n_pixels: usize) -> Vec<bool> {
    let mut mask = vec![false; n_pixels];
    bad.iter().for_each(|&p| mask[p] = true);
    mask
}

/// Simulations: the configured bad pixels flagged as failing, interpolated by ctapipe's
/// CameraCalibrator (NeighborAverage) unless `invalid_pixel_handler_type` is null.
fn interpolate_simulated(geom: &CameraGeometry, bad: &[bool], interpolate: bool, image: &mut [f32], peak: &mut [f32]) {
    if interpolate && bad.iter().any(|&b| b) {
        calibrate::interpolate_bad_pixels(geom, bad, image, peak);
    }
}

/// Zeroes the waveforms of `bad` pixels (sst1mpipe's remove_bad_pixels, before extraction).
fn zero_bad_waveforms(waveform: &mut [f32], bad: &[usize]) {
    for &p in bad {
        waveform[p * N_SAMPLES..(p + 1) * N_SAMPLES].fill(0.0);
    }
}

/// sst1mpipe's fallback for data runs without pedestal events: `TailcutsImageCleaner` with the
/// per-telescope values (`[["id", 21, 8], ["id", 22, 9]]` lists, or plain numbers).
fn tailcuts_fallback(config: &Value, tel: u16) -> Result<Cleaner> {
    let value = |name: &str| -> Result<f64> {
        let key = format!("ImageProcessor.TailcutsImageCleaner.{name}");
        let v = get(config, &key)?;
        if let Some(x) = v.as_f64() {
            return Ok(x);
        }
        v.as_array()
            .and_then(|rows| {
                rows.iter().find_map(|r| {
                    let r = r.as_array()?;
                    (r.len() == 3 && r[1].as_u64() == Some(tel as u64)).then(|| r[2].as_f64()).flatten()
                })
            })
            .ok_or_else(|| Error::msg(format!("config {key} has no value for telescope {tel}")))
    };
    Ok(Cleaner {
        min_nsb_level: 0.0,
        stdev_scaling: 0.0,
        picture: value("picture_threshold_pe")?,
        cuts: clean::Tailcuts {
            boundary: value("boundary_threshold_pe")?,
            min_picture_neighbors: value("min_picture_neighbors")? as usize,
            keep_isolated: false,
        },
        min_time_neighbors: 0,
        time_limit_ns: 0.0,
        only_main_island: false,
    })
}

/// Charge extraction, cleaning and parameters of one R1 waveform into `row`; returns the
/// parameters (None when the cleaned image cannot be parametrised).
#[allow(clippy::too_many_arguments)]
fn process_image(
    geom: &CameraGeometry,
    waveform: &[f32],
    window: &extract::Window,
    cleaner: &Cleaner,
    thresholds: &[f64],
    after_extraction: &mut dyn FnMut(&mut [f32], &mut [f32]),
    intensity_correction: f64,
    row: &mut ImageRow,
) -> Option<image_params::ImageParameters> {
    extract::local_peak_window_sum(waveform, N_SAMPLES, window, &mut row.image, &mut row.peak_time);
    process_extracted_image(geom, cleaner, thresholds, after_extraction, intensity_correction, row)
}

/// [`process_image`] from the charge extraction on: `row` holds the extracted image and peak
/// times.
fn process_extracted_image(
    geom: &CameraGeometry,
    cleaner: &Cleaner,
    thresholds: &[f64],
    after_extraction: &mut dyn FnMut(&mut [f32], &mut [f32]),
    intensity_correction: f64,
    row: &mut ImageRow,
) -> Option<image_params::ImageParameters> {
    after_extraction(&mut row.image, &mut row.peak_time);
    clean::tailcuts_clean(geom, &row.image, thresholds, &cleaner.cuts, &mut row.image_mask);
    if cleaner.min_time_neighbors > 0 {
        clean::time_delta_clean(
            geom,
            &row.peak_time,
            cleaner.min_time_neighbors,
            cleaner.time_limit_ns,
            &mut row.image_mask,
        );
    }
    if cleaner.only_main_island {
        clean::keep_main_island(geom, &mut row.image_mask);
    }
    let mut p = image_params::image_parameters(geom, &row.image, &row.peak_time, &row.image_mask);
    if let Some(p) = p.as_mut() {
        p.hillas.intensity *= intensity_correction;
    }
    p
}

const EVENT_ROLES: [&str; 2] = ["r1", "r0"];
const DATA_ROLES: [&str; 4] = ["calibration", "window_transmittance", "subarray", "px_charges"];

impl Stage for R0Dl1Stage {
    fn name(&self) -> &'static str {
        "r0-dl1"
    }

    fn version(&self) -> &'static str {
        "9"
    }

    fn plan(&self, params: &Value, input_roles: &[&str], at: &str) -> Result<StagePlan> {
        step_params(params, at)?;
        let events = input_roles.iter().filter(|r| EVENT_ROLES.contains(r)).count();
        if events != 1 {
            return Err(Error::msg(format!(
                "{at}: stage r0-dl1 takes exactly one event input, role \"r1\" or \"r0\" (an R1, sim_telarray or zfits file)"
            )));
        }
        if let Some(other) = input_roles.iter().find(|r| !EVENT_ROLES.contains(r) && !DATA_ROLES.contains(r)) {
            return Err(Error::msg(format!(
                "{at}: stage r0-dl1 has no input role \"{other}\" (roles: r1 or r0, calibration, window_transmittance, subarray, px_charges)"
            )));
        }
        let camera_data = input_roles.contains(&"calibration");
        for role in ["window_transmittance", "subarray", "px_charges"] {
            if input_roles.contains(&role) && !camera_data {
                return Err(Error::msg(format!(
                    "{at}: {role} is for camera data, which also needs its calibration table (role \"calibration\"); simulations describe their telescope themselves"
                )));
            }
        }
        if camera_data && !input_roles.contains(&"subarray") {
            return Err(Error::msg(format!(
                "{at}: camera data need the telescope description (input role \"subarray\"): sst1mpipe's sst1m_array.h5 (in sst1mpipe/data/) or another ctapipe SubarrayDescription file; its reference pulse sets the integration correction and its pixel positions and optics are the ones the parameters use"
            )));
        }
        let step = step_params(params, at)?;
        if step.forced_pointing.is_some() && !camera_data {
            return Err(Error::msg(format!(
                "{at}.params.force_pointing: for camera data only (simulations carry their pointing)"
            )));
        }
        match (step.reclean, input_roles.contains(&"px_charges")) {
            (true, _) if !camera_data => {
                return Err(Error::msg(format!(
                    "{at}.params.reclean: for camera data only (sst1mpipe's --reclean cleans with the charge maps of a run's pedestal events)"
                )))
            }
            (true, false) => {
                return Err(Error::msg(format!(
                    "{at}.params.reclean: needs the charge maps of a first pass over the same run: input role \"px_charges\" (the px_charges output of an r0-dl1 step with \"px_charges\": true, or sst1mpipe's _pedestal_hist.h5)"
                )))
            }
            (false, true) => {
                return Err(Error::msg(format!(
                    "{at}: input role \"px_charges\" is read only with \"reclean\": true (sst1mpipe's --reclean)"
                )))
            }
            _ => {}
        }
        let tel = step.tel_id;
        let mut keys = config_keys(camera_data, tel);
        let mut read = config_read(camera_data);
        let mut outputs = vec![DeclaredOutput { role: "dl1".into(), file: "dl1.h5".into(), kind: "dl1".into() }];
        if step.px_charges {
            outputs.push(DeclaredOutput {
                role: "px_charges".into(),
                file: "pedestal_hist.h5".into(),
                kind: "px-charges".into(),
            });
            if camera_data {
                keys.push("analysis.ped_time_window".into());
                read.retain(|r| r.key != "analysis.ped_time_window");
            }
        }
        if step.reclean {
            keys.push("ImageProcessor.ImageCleanerSST.min_number_pedestals".into());
            read.retain(|r| r.key != "ImageProcessor.ImageCleanerSST.min_number_pedestals");
        }
        Ok(StagePlan { config_keys: keys, config_read: read, outputs })
    }

    fn config_scope(&self) -> Vec<&'static str> {
        CONFIG_SCOPE.to_vec()
    }

    fn check_config(
        &self,
        config: &Value,
        step: &StepSetup,
        file: &std::path::Path,
        at: &str,
    ) -> Result<Vec<ConfigWarning>> {
        let warnings = Vec::new();
        check_ranges(config).map_err(|e| Error::msg(format!("{}: {e} (read by {at})", file.display())))?;
        let value = |path: &str| path.split('.').try_fold(config, |v, k| v.get(k));
        let tel = step_params(step.params, at)?.tel_id;
        // Everything the stage will parse at run time, parsed now: a bad type or value refuses
        // the recipe before anything runs rather than failing the activity.
        settings(config, tel).map_err(|e| Error::msg(format!("{}: {} (read by {at})", file.display(), e.message())))?;
        if let Some(v) = value("NsbCalibrator.mc_correction_for_PDE").filter(|v| !v.is_boolean()) {
            return Err(Error::msg(format!(
                "{}: NsbCalibrator.mc_correction_for_PDE = {v} (read by {at}): must be true or false",
                file.display()
            )));
        }
        match value("allowed_tels") {
            None | Some(Value::Null) => {}
            Some(Value::Array(list)) if list.iter().all(|v| v.as_u64().is_some()) => {
                if !list.iter().any(|v| v.as_u64() == Some(tel as u64)) {
                    return Err(Error::msg(format!(
                        "{}: allowed_tels = {} (read by {at}) does not allow telescope {tel}, which the step processes",
                        file.display(),
                        Value::Array(list.clone())
                    )));
                }
            }
            Some(other) => {
                return Err(Error::msg(format!(
                    "{}: allowed_tels = {other} (read by {at}): must be null or a list of telescope ids",
                    file.display()
                )))
            }
        }
        bad_pixels(config, tel)
            .map_err(|e| Error::msg(format!("{}: {} (read by {at})", file.display(), e.message())))?;
        match value("CameraCalibrator.invalid_pixel_handler_type") {
            None | Some(Value::Null) => {}
            Some(Value::String(h)) if h == "NeighborAverage" => {}
            Some(other) => {
                return Err(Error::msg(format!(
                    "{}: CameraCalibrator.invalid_pixel_handler_type = {other} (read by {at}): only \"NeighborAverage\" and null (no interpolation) are implemented",
                    file.display()
                )))
            }
        }
        MinTrueEnergy::from_config(config)
            .map_err(|e| Error::msg(format!("{}: {} (read by {at})", file.display(), e.message())))?;
        if let Some(t) = value("ImageProcessor.image_cleaner_type").and_then(Value::as_str) {
            if t != "ImageCleanerSST" {
                return Err(Error::msg(format!(
                    "{}: ImageProcessor.image_cleaner_type = \"{t}\" (read by {at}): only \"ImageCleanerSST\" is implemented",
                    file.display()
                )));
            }
        }
        if value("ImageProcessor.use_telescope_frame") == Some(&Value::Bool(true)) {
            return Err(Error::msg(format!(
                "{}: ImageProcessor.use_telescope_frame = true (read by {at}) is not implemented; parameters are in the camera frame",
                file.display()
            )));
        }
        for section in ["telescope_calibration", "window_transmittance"] {
            if let Some(Value::Object(m)) = value(section) {
                for (k, v) in m {
                    if k.starts_with("tel_") && !v.is_null() {
                        return Err(Error::msg(format!(
                            "{}: {section}.{k} = {v} (read by {at}): calibration files are activity inputs, so that their content is in the provenance; set it to null and give the file to the step as input role \"{}\"",
                            file.display(),
                            if section == "telescope_calibration" { "calibration" } else { "window_transmittance" }
                        )));
                    }
                }
            }
        }
        Ok(warnings)
    }

    fn run(&self, ctx: &mut StageContext) -> Result<()> {
        let p = step_params(ctx.params, "r0-dl1")?;
        let tel = p.tel_id;
        let s = settings(ctx.config, tel)?;
        let role = EVENT_ROLES.iter().find(|r| ctx.inputs.contains_key(**r)).copied().unwrap_or("r1");
        let inputs = ctx.inputs.get(role).map(Vec::as_slice).unwrap_or(&[]);
        let [input] = inputs else {
            return Err(Error::msg(format!("r0-dl1 needs exactly one input file, got {}", inputs.len())));
        };
        let format = r0_sources::detect(&input.path, &input.name)?;
        let camera_data = ctx.inputs.contains_key("calibration");
        let pde_on = ctx.config.pointer("/NsbCalibrator/mc_correction_for_PDE") == Some(&Value::Bool(true));
        match format {
            Format::Zfits if !camera_data => Err(Error::msg(format!(
                "input {}: SST-1M camera data need their calibration table: give it to the step as input role \"calibration\"",
                input.name
            ))),
            Format::R1 | Format::Simtel if camera_data => Err(Error::msg(format!(
                "input {} is {}, but the step was given a camera calibration table (role \"calibration\"), which is for zfits camera data only",
                input.name,
                if format == Format::R1 { "simulated R1" } else { "a sim_telarray file" }
            ))),
            Format::R1 => {
                if pde_on {
                    let _ = writeln!(
                        ctx.log,
                        "NsbCalibrator.mc_correction_for_PDE: not applicable to sst1mflow's simulator (no QE table); no correction"
                    );
                }
                if p.px_charges {
                    return Err(Error::msg(format!(
                        "input {}: px_charges needs the true image to tell the noise pixels (sst1mpipe takes the pixels without Cherenkov light), which sst1mflow's simulated R1 does not keep; use it on sim_telarray files or camera data",
                        input.name
                    )));
                }
                run_r1(ctx, input, tel, &s)
            }
            Format::Simtel => run_simtel(ctx, input, tel, &s, pde_on, p.px_charges),
            Format::Zfits => run_zfits(ctx, input, &p, &s),
        }
    }
}

/// The `px_charges` output (sst1mpipe's `<run>_pedestal_hist.h5`).
fn write_pixel_charges(
    ctx: &StageContext,
    histogram: &pixel_charges::ChargeHistogram,
    column: &str,
    maps: &[pixel_charges::ChargeMap],
) -> Result<()> {
    crate::io::pixel_charges::write(
        &ctx.work_dir.join("pedestal_hist.h5"),
        ctx.activity_key,
        ctx.pipeline_version,
        histogram,
        column,
        maps,
    )
}

fn dl1_writer(ctx: &StageContext, telescope: &TelescopeDescription) -> Result<Dl1Writer> {
    let images = if step_params(ctx.params, "r0-dl1")?.compress_images { Storage::Deflate } else { Storage::Plain };
    let writer =
        Dl1Writer::create(&ctx.work_dir.join("dl1.h5"), telescope, images, ctx.activity_key, ctx.pipeline_version)?;
    let settings = crate::contract::dl1_settings(ctx.config, telescope.tel_id);
    writer.write_settings(&settings)?;
    Ok(writer)
}

fn empty_row(obs_id: i64, tel: u16) -> ImageRow {
    ImageRow {
        obs_id,
        event_id: 0,
        tel_id: tel as i16,
        image: [0.0; 1296],
        peak_time: [0.0; 1296],
        image_mask: [false; 1296],
        is_valid: false,
    }
}

fn run_r1(ctx: &mut StageContext, input: &InputFile, tel: u16, s: &Settings) -> Result<()> {
    let reader = R1Reader::open(&input.path)
        .map_err(|e| Error::msg(format!("input {} ({}): {e}", input.name, input.path.display())))?;
    if reader.tel_id != tel {
        return Err(Error::msg(format!(
            "input {} holds telescope {}, but the step is configured for telescope {tel}",
            input.name, reader.tel_id
        )));
    }
    // Our simulator's instrument, its telescope where the simulation put it (a stereo
    // production's at the array's positions, a mono one's at the origin).
    let telescope = TelescopeDescription::model(tel, reader.tel_position_m);
    let window = s.window_for(&telescope, &mut ctx.log)?;
    let geom = &telescope.geometry;
    let mut writer = dl1_writer(ctx, &telescope)?;
    let cleaner = &s.cleaners[0];
    let thresholds = vec![cleaner.picture; geom.n_pixels()];
    let bad_mask = bad_mask(&s.bad_pixels, geom.n_pixels());
    let run_pointing = reader.run.map(|r| (r.pointing_alt, r.pointing_az)).unwrap_or((f64::NAN, f64::NAN));
    // Observation runs: each event's time and pointing; Monte Carlo: the run's pointing.
    let triggers: std::collections::HashMap<u64, (f64, (f64, f64))> =
        reader.triggers.iter().map(|t| (t.event_id, (t.time, (t.pointing_alt, t.pointing_az)))).collect();
    let time_and_pointing = |event_id: u64| triggers.get(&event_id).copied().unwrap_or((f64::NAN, run_pointing));
    let obs_id = reader.observation.map(|o| o.obs_id).unwrap_or(1);
    let mut row = empty_row(obs_id, tel);
    let truth: std::collections::HashMap<u64, Truth> = reader
        .showers
        .iter()
        .map(|s| {
            let pointing = time_and_pointing(s.event_id).1;
            let direction = crate::astro::camera_to_altaz(
                s.true_camera_x,
                s.true_camera_y,
                crate::instrument::EQUIVALENT_FOCAL_LENGTH_M,
                pointing.0,
                pointing.1,
            );
            (
                s.event_id,
                Truth {
                    energy_tev: s.true_energy,
                    camera_x: s.true_camera_x,
                    camera_y: s.true_camera_y,
                    core_x: s.true_core_x,
                    core_y: s.true_core_y,
                    h_max: s.true_h_max,
                    impact: s.true_impact,
                    primary_id: s.true_shower_primary_id as i64,
                    h_first_int: f64::NAN,
                    x_max: f64::NAN,
                    alt_deg: direction.0,
                    az_deg: direction.1,
                },
            )
        })
        .collect();
    let mut with_params = 0usize;
    let mut trigger_rows = Vec::new();
    let mut waveform = vec![0.0f32; crate::io::r1::WAVEFORM_LEN];
    // Monte Carlo productions (not observation runs): sst1mpipe's cut on true energy.
    let (cut_column, cut) = match &reader.run {
        Some(run) => {
            let primary = reader.showers.first().map(|s| s.true_shower_primary_id as i64).unwrap_or(0);
            s.min_true_energy.cut_for(primary, run.energy_range_min)
        }
        None => (f64::NAN, None),
    };
    let mut removed = 0usize;
    let mut start = 0;
    while start < reader.n_events {
        let end = (start + CHUNK).min(reader.n_events);
        for event in reader.read(start, end)? {
            event.waveform_pe(&mut waveform);
            zero_bad_waveforms(&mut waveform, &s.bad_pixels);
            let p = process_image(
                geom,
                &waveform,
                &window,
                cleaner,
                &thresholds,
                &mut |image, peak| interpolate_simulated(geom, &bad_mask, s.interpolate_invalid, image, peak),
                s.intensity_correction,
                &mut row,
            );
            with_params += p.is_some() as usize;
            row.event_id = event.event_id as i64;
            // ctapipe 0.17 marks every extracted image valid (parameters or not).
            row.is_valid = true;
            let t = truth.get(&event.event_id);
            let (time, pointing) = time_and_pointing(event.event_id);
            let mut parameters = ParametersRow::new(obs_id, event.event_id as i64, tel as i16, pointing, p.as_ref(), t);
            parameters.local_time = time;
            parameters.equivalent_focal_length = telescope.optics.equivalent_focal_length_m;
            parameters.min_true_energy_cut = cut_column;
            if let Some(t) = TriggerRow::at(obs_id, event.event_id as i64, time) {
                trigger_rows.push(t);
            }
            if cut.is_some_and(|c| parameters.true_energy.is_nan() || parameters.true_energy < c) {
                removed += 1;
                continue;
            }
            writer.write(row, parameters)?;
        }
        start = end;
    }
    writer.write_simulation(&reader.showers, reader.run, &reader.shower_distributions)?;
    if let Some(o) = &reader.observation {
        writer.write_observation(o)?;
        writer.write_triggers(&trigger_rows)?;
    }
    let events = writer.finish()?;
    let _ = writeln!(ctx.log, "processed {events} events of telescope {tel}; {with_params} with image parameters");
    log_true_energy_cut(ctx.log, cut, removed);
    Ok(())
}

/// What the cut on true energy did, for the log.
fn log_true_energy_cut(log: &mut dyn std::io::Write, cut: Option<f64>, removed: usize) {
    if let Some(c) = cut {
        let _ = writeln!(
            log,
            "true energy cut at {c} TeV (above the simulated minimum; analysis.*_min_simulated_energy_tev): {removed} events removed; IRFs and performance count the thrown showers above it"
        );
    }
}

fn run_simtel(
    ctx: &mut StageContext,
    input: &InputFile,
    tel: u16,
    s: &Settings,
    pde_on: bool,
    px_charges: bool,
) -> Result<()> {
    let mut charges = px_charges.then(pixel_charges::ChargeHistogram::default);
    let factors = pde_factors(tel);
    let mut source = SimtelSource::open(&input.path, &input.name, tel, pde_on.then_some(factors.as_slice()))?;
    // The telescope as the file describes it (ctapipe takes it from there): pixel positions,
    // optics, and the integration correction from the file's own reference pulse.
    let telescope = source.telescope.clone();
    let window =
        s.window_for(&telescope, &mut ctx.log).map_err(|e| Error::msg(format!("input {}: {e}", input.name)))?;
    let geom = &telescope.geometry;
    let mut writer = dl1_writer(ctx, &telescope)?;
    let cleaner = &s.cleaners[0];
    let thresholds = vec![cleaner.picture; geom.n_pixels()];
    let bad_mask = bad_mask(&s.bad_pixels, geom.n_pixels());
    let obs_id = source.obs_id;
    let mut row = empty_row(obs_id, tel);
    let mut waveform = vec![0.0f32; crate::io::r1::WAVEFORM_LEN];
    let mut with_params = 0usize;
    let mut n = 0usize;
    let mut trigger_rows = Vec::new();
    let primary = source.showers.first().map(|s| s.true_shower_primary_id as i64).unwrap_or(0);
    let (cut_column, cut) = s.min_true_energy.cut_for(primary, source.run.energy_range_min);
    let mut removed = 0usize;
    while let Some((event_id, pointing, truth)) =
        source.next(&mut waveform).map_err(|e| Error::msg(format!("input {}: {e}", input.name)))?
    {
        zero_bad_waveforms(&mut waveform, &s.bad_pixels);
        if let Some(true_image) = source.true_image.as_mut() {
            s.bad_pixels.iter().for_each(|&p| true_image[p] = 0);
        }
        // ctapipe's peak-time shift: sim_telarray's per-pixel time calibration, then the
        // interpolation of the configured bad pixels.
        let shift = &source.time_shift_ns;
        let p = process_image(
            geom,
            &waveform,
            &window,
            cleaner,
            &thresholds,
            &mut |image, peak: &mut [f32]| {
                peak.iter_mut().zip(shift).for_each(|(t, s)| *t -= s);
                interpolate_simulated(geom, &bad_mask, s.interpolate_invalid, image, peak);
            },
            s.intensity_correction,
            &mut row,
        );
        with_params += p.is_some() as usize;
        // sst1mpipe's --px-charges on simulations: the charges of the pixels without light.
        if let (Some(h), Some(true_image)) = (charges.as_mut(), source.true_image.as_ref()) {
            h.add_event(row.image.iter().zip(true_image).filter(|(_, &t)| t == 0).map(|(&q, _)| q));
        }
        row.event_id = event_id as i64;
        // ctapipe 0.17 marks every extracted image valid (parameters or not).
        row.is_valid = true;
        let mut parameters =
            ParametersRow::new(obs_id, event_id as i64, tel as i16, pointing, p.as_ref(), Some(&truth));
        parameters.equivalent_focal_length = telescope.optics.equivalent_focal_length_m;
        parameters.survived_charge_fraction = source.survived_charge_fraction(&row.image_mask);
        parameters.min_true_energy_cut = cut_column;
        if cut.is_some_and(|c| parameters.true_energy.is_nan() || parameters.true_energy < c) {
            removed += 1;
        } else {
            writer.write(row, parameters)?;
            // ctapipe's simulated image and its parameters (its pixels with light, no timing).
            if let Some(true_image) = source.true_image.as_ref() {
                let true_parameters = image_params::true_image_parameters(geom, true_image);
                writer.write_true_image(obs_id, event_id as i64, true_image, true_parameters.as_ref())?;
            }
        }
        // ctapipe reads sim_telarray's GPS time as UTC Unix seconds and nanoseconds; TAI is
        // that plus the whole leap seconds of the day, so the row is exact to the nanosecond.
        let (seconds, nanoseconds) = source.gps_time;
        let tai_seconds = crate::astro::unix_to_unix_tai(seconds as f64).map(|tai| tai as i64);
        if let Some(t) = tai_seconds
            .and_then(|s| TriggerRow::at_tai_ns(obs_id, event_id as i64, s * 1_000_000_000 + nanoseconds as i64))
        {
            trigger_rows.push(t);
        }
        n += 1;
    }
    writer.write_triggers(&trigger_rows)?;
    writer.write_simulation(&source.showers, Some(source.run), &source.reader.shower_distributions)?;
    writer.write_true_impacts(obs_id, &source.axis_impacts)?;
    writer.finish()?;
    if let Some(h) = charges {
        write_pixel_charges(ctx, &h, &format!("pixel_charge_tel{tel}"), &[])?;
    }
    let r = &source.reader;
    let _ = writeln!(
        ctx.log,
        "sim_telarray run {obs_id}: {n} triggered events of telescope {tel} ({with_params} with image parameters), {} simulated shower uses, {} calibration events skipped",
        r.n_mc_events, r.n_calibration_events
    );
    if source.events_without_telescope > 0 {
        let _ = writeln!(ctx.log, "{} triggered events without telescope {tel}", source.events_without_telescope);
    }
    log_true_energy_cut(ctx.log, cut, removed);
    match &source.pde_factor {
        Some((qe, f)) => {
            let _ = writeln!(ctx.log, "PDE correction: QE table {qe}, R1 divided by {f}");
        }
        None => {
            let _ = writeln!(ctx.log, "PDE correction: off (NsbCalibrator.mc_correction_for_PDE)");
        }
    }
    for ((t, v), (count, why)) in &r.skipped {
        let _ = writeln!(ctx.log, "warning: skipped {count} EventIO object(s) of type {t} version {v}: {why}");
    }
    Ok(())
}

/// A pedestal monitoring row is written every this many processed pedestal events.
const PEDESTAL_MONITORING_EVERY: usize = 20;
/// Pedestal events: sst1mpipe's camera event type 8 (internal trigger).
use crate::io::zfits::PEDESTAL_EVENT_TYPE;
/// The initial pedestal window: the first ≤100 pedestal events among the first 100,000.
const INITIAL_SEARCH_EVENTS: usize = 100_000;

fn run_zfits(ctx: &mut StageContext, input: &InputFile, p: &StepParams, s: &Settings) -> Result<()> {
    let tel = p.tel_id;
    let subarray = match ctx.inputs.get("subarray").map(Vec::as_slice) {
        Some([f]) => f,
        _ => {
            return Err(Error::msg("r0-dl1 on camera data needs exactly one telescope description (role \"subarray\")"))
        }
    };
    let telescope = read_telescope_description(&subarray.path, tel)
        .map_err(|e| Error::msg(format!("telescope description {}: {}", subarray.name, e.message())))?;
    let extraction = s.window_for(&telescope, &mut ctx.log)?;
    let geom = &telescope.geometry;
    let n_pixels = geom.n_pixels();
    // sst1mpipe writes the config's focal length into camera data's DL1 (the column its
    // DL1→DL2 reads); the telescope description's optics are written as they are.
    let focal_length = number(ctx.config, &format!("telescope_equivalent_focal_length.tel_{tel:03}"))?;
    if !(focal_length.is_finite() && focal_length > 0.0) {
        return Err(Error::msg(format!(
            "config telescope_equivalent_focal_length.tel_{tel:03} = {focal_length}: must be a positive length in m"
        )));
    }
    let calib_in = &ctx.inputs["calibration"];
    let [calib_in] = calib_in.as_slice() else {
        return Err(Error::msg(format!("r0-dl1 takes one calibration table, got {}", calib_in.len())));
    };
    let table = read_pixel_calibration(&calib_in.path, n_pixels)
        .map_err(|e| Error::msg(format!("calibration table {}: {e}", calib_in.name)))?;
    let (dc_to_pe, bad_calibration) =
        table.effective().map_err(|e| Error::msg(format!("calibration table {}: {e}", calib_in.name)))?;
    let window = match ctx.inputs.get("window_transmittance").map(Vec::as_slice) {
        None | Some([]) => None,
        Some([w]) => Some(
            read_window_transmittance(&w.path, n_pixels)
                .map_err(|e| Error::msg(format!("window transmittance {}: {e}", w.name)))?,
        ),
        Some(many) => {
            return Err(Error::msg(format!("r0-dl1 takes one window transmittance file, got {}", many.len())))
        }
    };
    let opt_flag = |path: &str| ctx.config.pointer(path) == Some(&Value::Bool(true));
    let calibration = DataCalibration {
        tel_id: tel,
        dc_to_pe,
        bad_calibration,
        window,
        bad_pixels: s.bad_pixels.clone(),
        interpolate_bad: opt_flag("/telescope_calibration/bad_calib_px_interpolation"),
        dynamic_dead: opt_flag("/telescope_calibration/dynamic_dead_px_interpolation"),
        global_voltage_drop: opt_flag("/NsbCalibrator/apply_global_Vdrop_correction"),
        pixelwise_voltage_drop: opt_flag("/NsbCalibrator/apply_pixelwise_Vdrop_correction"),
    };
    let obs_id_i64 = p.obs_id.or_else(|| r0_sources::obs_id_from_name(&input.name)).ok_or_else(|| {
        Error::msg(format!(
            "input {}: the file name carries no YYYYMMDD_RRRR run identifier; give the step an \"obs_id\" parameter",
            input.name
        ))
    })?;
    // sst1mpipe's YYYYMMDDRRRR needs 64 bits (as ctapipe 0.17's tables, which sst1mpipe writes).
    let site = super::dl1_dl2::site(ctx.config, tel).ok();

    // One read of the run's start gives the two initial windows: the pedestal events among
    // the first INITIAL_SEARCH_EVENTS events (up to the image window's size). The events read
    // are kept as far as memory allows, so the main pass decodes only the rest of the run.
    let mut stats = calibrate::PedestalStats::new(n_pixels);
    let reader = r0_sources::open_zfits(&input.path, &input.name)?;
    let n_events_in_file = reader.n_events;
    let target = reader.target.clone();
    let mut std_buf = vec![0.0f64; n_pixels];
    let mut mean_buf = vec![0.0f64; n_pixels];
    let initial = r0_sources::InitialSegment::read(
        reader,
        INITIAL_SEARCH_EVENTS,
        stats.max_images,
        r0_sources::decode_cache_budget(),
        &|e| check_event(e, tel, &input.name),
    )?;
    let first_array_ids = &initial.first_array_ids;
    // Window 1: the raw samples of the first ≤ max_raw pedestal events.
    for e in initial.pedestals.iter().take(stats.max_raw) {
        calibrate::raw_sample_stats(&e.samples, e.n_samples, &mut mean_buf, &mut std_buf);
        stats.push_raw(e.local_clock_ns as f64 * 1e-9, &mean_buf, &std_buf);
    }
    let swat = first_array_ids.iter().any(|&a| a != 0);
    let has_pedestals = stats.n_raw() > 0;
    // Window 2: calibrated pedestal images for the adaptive thresholds and the run's NSB level.
    let mut out = Calibrated::new();
    let mut row = empty_row(obs_id_i64, tel);
    let mut image = vec![0.0f32; n_pixels];
    let mut peak = vec![0.0f32; n_pixels];
    let pedestal_image = |event: &DigicamEvent,
                          stats: &calibrate::PedestalStats,
                          out: &mut Calibrated,
                          image: &mut [f32],
                          peak: &mut [f32]| {
        calibration.calibrate(event, &calibration.derive(stats), out);
        extract::local_peak_window_sum(&out.r1, N_SAMPLES, &extraction, image, peak);
        finish_image(geom, &calibration, s.interpolate_invalid, out, image, peak);
    };
    if has_pedestals {
        // As sst1mpipe's second pass: the pedestals after the first window's also join the raw
        // window (up to the image window's size) while their images are made, so that each image
        // is calibrated with the window of the pedestals before it; the window then keeps its
        // first `max_raw` again.
        let (first_window, keep) = (stats.n_raw(), stats.max_raw);
        stats.max_raw = stats.max_images;
        for (pedestal, e) in initial.pedestals.iter().enumerate() {
            pedestal_image(e, &stats, &mut out, &mut image, &mut peak);
            stats.push_image(&image);
            if pedestal >= first_window {
                calibrate::raw_sample_stats(&e.samples, e.n_samples, &mut mean_buf, &mut std_buf);
                stats.push_raw(e.local_clock_ns as f64 * 1e-9, &mean_buf, &std_buf);
            }
        }
        stats.max_raw = keep;
        stats.truncate_raw(keep);
    }
    let r0_sources::InitialSegment { pedestals, tiles, .. } = initial;
    drop(pedestals);
    let (nsb_level, cleaner) = if has_pedestals {
        let (mean, _) = stats.image_mean_std().expect("pedestal images");
        let level = mean.iter().sum::<f64>() / mean.len() as f64;
        let mut sorted = s.cleaners.clone();
        sorted.sort_by(|a, b| b.min_nsb_level.total_cmp(&a.min_nsb_level));
        let chosen = sorted
            .iter()
            .find(|c| c.min_nsb_level <= level)
            .cloned()
            .unwrap_or_else(|| sorted.last().cloned().expect("non-empty"));
        (level, chosen)
    } else {
        (f64::NAN, tailcuts_fallback(ctx.config, tel)?)
    };
    let _ = writeln!(
        ctx.log,
        "zfits {}: telescope {tel}, obs_id {obs_id_i64}, {} events; event ids from {}",
        input.name,
        n_events_in_file,
        if swat { "the SWAT array counter" } else { "the camera counter" }
    );
    if has_pedestals {
        let _ = writeln!(
            ctx.log,
            "initial pedestal window: {} raw, {} calibrated images; NSB level {nsb_level:.4} p.e. -> cleaning setting min_nsb_level {} (picture {} p.e., boundary {} p.e., stdev scaling {})",
            stats.n_raw(),
            stats.n_images(),
            cleaner.min_nsb_level,
            cleaner.picture,
            cleaner.cuts.boundary,
            cleaner.stdev_scaling
        );
    } else {
        let _ = writeln!(
            ctx.log,
            "no pedestal events: TailcutsImageCleaner {}/{}/{} without time cleaning, no voltage-drop correction (sst1mpipe's fallback)",
            cleaner.picture, cleaner.cuts.boundary, cleaner.cuts.min_picture_neighbors
        );
    }
    if calibration.window.is_none() {
        let _ = writeln!(ctx.log, "no window transmittance given: images are not corrected for the window");
    }
    if (calibration.global_voltage_drop || calibration.pixelwise_voltage_drop)
        && crate::image::calibrate::voltage_drop_factor(tel, 0.0).is_none()
    {
        let _ =
            writeln!(ctx.log, "telescope {tel} has no voltage-drop model (only 21 and 22): no voltage-drop correction");
    }
    let header_pointing = target.as_deref().and_then(r0_sources::parse_target);
    // sst1mpipe's fill_target_info: the step's coordinates when forced, else the header's.
    let pointing_radec = match (p.forced_pointing, &header_pointing) {
        (Some((ra, dec)), header) => {
            let (name, wobble) = header.as_ref().map(|h| (h.0.clone(), h.1.clone())).unwrap_or_default();
            let _ = match header {
                Some(h) => writeln!(
                    ctx.log,
                    "TARGET header gives RA {} deg, Dec {} deg; the step's pointing RA {ra} deg, Dec {dec} deg is used (force_pointing)",
                    h.2, h.3
                ),
                None => writeln!(
                    ctx.log,
                    "no coordinates in the TARGET header: the step's pointing RA {ra} deg, Dec {dec} deg is used (force_pointing)"
                ),
            };
            Some((name, wobble, ra, dec))
        }
        (None, header) => header.clone(),
    };
    match (&target, &pointing_radec) {
        (None, None) => {
            let _ = writeln!(ctx.log, "no TARGET header: pointing unknown (NaN)");
        }
        (Some(t), None) => {
            return Err(Error::msg(format!(
                "input {}: TARGET header {t:?} is not `Target,W1,RA,DEC` or `Target,RA,DEC`",
                input.name
            )))
        }
        (_, Some((name, wobble, ra, dec))) => {
            if site.is_none() {
                return Err(Error::msg(format!(
                    "config telescope_coords.tel_{tel:03} is needed to point at {name} (RA {ra}, Dec {dec})"
                )));
            }
            let _ = writeln!(ctx.log, "target {name} ({wobble}) at RA {ra} deg, Dec {dec} deg");
        }
    }

    let reclean = if p.reclean { Some(reclean_settings(ctx, n_pixels, has_pedestals, s)?) } else { None };

    // Pass 3: every event. Decoding runs on its own thread, a tile ahead of the physics, so
    // that a run takes the longer of the two, not their sum; events are read where their
    // decoded tile holds them (see `r0_sources::TilesAhead`).
    let mut writer = dl1_writer(ctx, &telescope)?;
    let _ = writeln!(
        ctx.log,
        "{} events decoded once for the pedestal search and the main pass ({} MB kept), the rest in the main pass",
        tiles.n_events(),
        tiles.bytes() >> 20
    );
    let reader = r0_sources::open_zfits(&input.path, &input.name)?.with_decoded_tiles(tiles)?;
    let mut events = r0_sources::TilesAhead::start(reader);
    // An event reordered (pedestal events, saturated ones), for what reads pixel-major samples.
    let mut materialized = DigicamEvent::default();
    let mut thresholds = vec![cleaner.picture; n_pixels];
    let mut derived = calibration.derive(&stats);
    if has_pedestals {
        if let Some((mean, std)) = stats.image_mean_std() {
            for (t, (m, sd)) in thresholds.iter_mut().zip(mean.iter().zip(&std)) {
                *t = cleaner.picture.max(m + cleaner.stdev_scaling * sd);
            }
        }
    }
    let mut trigger_rows = Vec::new();
    let mut pedestal_rows = Vec::new();
    let (mut n_events, mut n_pedestals, mut with_params, mut n_saturated) = (0usize, 0usize, 0usize, 0usize);
    let mut n_pedestals_survived = 0usize;
    let ped_time_window_s =
        match (p.px_charges, ctx.config.pointer("/analysis/ped_time_window")) {
            (false, _) => f64::NAN,
            (true, Some(v)) => v.as_f64().filter(|w| *w > 0.0 && w.is_finite()).ok_or_else(|| {
                Error::msg(format!("config analysis.ped_time_window = {v}: expected a positive number of seconds"))
            })?,
            (true, None) => return Err(Error::msg(
                "config analysis.ped_time_window is missing: px_charges on camera data needs the pedestal window (s)",
            )),
        };
    let mut charges = p.px_charges.then(|| {
        (pixel_charges::ChargeHistogram::default(), pixel_charges::PedestalChargeMaps::new(ped_time_window_s, n_pixels))
    });
    let mut position = 0usize;
    let (mut run_start, mut run_stop) = (f64::INFINITY, f64::NEG_INFINITY);
    let (mut first_ns, mut last_ns) = (i64::MAX, i64::MIN);
    // sst1mpipe's log of the adaptive cleaning: the fraction of pixels whose picture threshold
    // the pedestals raised, summed over events.
    let raised = |thresholds: &[f64], picture: f64| thresholds.iter().filter(|&&t| t > picture).count();
    let mut n_raised = raised(&thresholds, cleaner.picture);
    let mut raised_sum = 0.0f64;
    while let Some(event) = events.next() {
        let event = event?;
        check_event_in_place(&event, tel, &input.name)?;
        position += 1;
        let position = position - 1;
        let utc_s = crate::astro::unix_tai_to_unix(event.local_clock_ns as f64 * 1e-9);
        run_start = run_start.min(utc_s);
        run_stop = run_stop.max(utc_s);
        first_ns = first_ns.min(event.local_clock_ns);
        last_ns = last_ns.max(event.local_clock_ns);
        // What depends on the pedestal windows is recomputed only when they changed.
        if derived.generation != stats.generation() {
            derived = calibration.derive(&stats);
            if has_pedestals && reclean.is_none() {
                if let Some((mean, std)) = stats.image_mean_std() {
                    for (t, (m, sd)) in thresholds.iter_mut().zip(mean.iter().zip(&std)) {
                        *t = cleaner.picture.max(m + cleaner.stdev_scaling * sd);
                    }
                    n_raised = raised(&thresholds, cleaner.picture);
                }
            }
        }
        // With reclean, the charge map of the event's time sets the cleaning.
        let (event_cleaner, event_thresholds, event_nsb_level, event_raised) = match &reclean {
            Some(r) => {
                let m = &r.per_map[r.maps.select(event.local_clock_ns).expect("reclean keeps at least one map")];
                (&m.cleaner, m.thresholds.as_slice(), m.nsb_level, m.n_raised)
            }
            None => (&cleaner, thresholds.as_slice(), nsb_level, n_raised),
        };
        raised_sum += event_raised as f64 / n_pixels as f64;
        if !calibration.extract_in_place(
            &event,
            &derived,
            &extraction,
            &mut out,
            &mut materialized,
            &mut row.image,
            &mut row.peak_time,
        ) {
            // A sample above the saturation threshold: R1 was made whole for the saturation check.
            extract::local_peak_window_sum(&out.r1, N_SAMPLES, &extraction, &mut row.image, &mut row.peak_time);
        }
        let mut saturated = false;
        // sst1mpipe cleans pedestal events too (with the thresholds from before they join
        // the window), counts those whose image has parameters, and does not write them.
        let params = process_extracted_image(
            geom,
            event_cleaner,
            event_thresholds,
            &mut |img: &mut [f32], pk: &mut [f32]| {
                saturated = finish_image(geom, &calibration, s.interpolate_invalid, &out, img, pk);
            },
            s.intensity_correction,
            &mut row,
        );
        n_saturated += saturated as usize;
        if let Some((_, maps)) = charges.as_mut() {
            maps.see_event(event.local_clock_ns);
        }
        if event.event_type == PEDESTAL_EVENT_TYPE {
            n_pedestals_survived += params.is_some() as usize;
            // sst1mpipe's --px-charges: the pedestal event's DL1 image.
            if let Some((histogram, maps)) = charges.as_mut() {
                histogram.add_event(row.image.iter().copied());
                maps.add_pedestal(event.local_clock_ns, &row.image);
            }
            event.to_event(&mut materialized);
            calibrate::raw_sample_stats(&materialized.samples, event.n_samples, &mut mean_buf, &mut std_buf);
            stats.push_raw(event.local_clock_ns as f64 * 1e-9, &mean_buf, &std_buf);
            pedestal_image(&materialized, &stats, &mut out, &mut image, &mut peak);
            stats.push_image(&image);
            n_pedestals += 1;
            // sst1mpipe writes the monitoring row every 20th processed pedestal.
            if n_pedestals % PEDESTAL_MONITORING_EVERY == 0 {
                if let Some(m) = stats.raw_summary() {
                    let to_f32 = |v: &[f64]| -> [f32; 1296] { std::array::from_fn(|i| v[i] as f32) };
                    pedestal_rows.push(PedestalRow {
                        pedestal_n_events: m.n_events as i64,
                        pedestal_sample_time: m.time_mean_min_max[0],
                        pedestal_sample_time_min: m.time_mean_min_max[1],
                        pedestal_sample_time_max: m.time_mean_min_max[2],
                        pedestal_charge_mean: to_f32(&m.mean),
                        pedestal_charge_median: to_f32(&m.median),
                        pedestal_charge_std: to_f32(&m.std),
                    });
                }
            }
            continue;
        }
        with_params += params.is_some() as usize;
        let raw_id = if swat { event.array_event_number as i64 } else { event.event_number as i64 };
        // sst1mpipe: a zero id becomes int(str(run) + zfill6(event counter)).
        let event_id = if raw_id > 0 { raw_id } else { (obs_id_i64 % 10_000) * 1_000_000 + position as i64 };
        row.event_id = event_id;
        row.is_valid = true;
        let time = utc_s;
        let pointing = match (pointing_radec.as_ref(), site) {
            (Some((_, _, ra, dec)), Some(site)) => crate::astro::radec_to_altaz(*ra, *dec, site, time),
            _ => (f64::NAN, f64::NAN),
        };
        let mut parameters = ParametersRow::new(obs_id_i64, event_id, tel as i16, pointing, params.as_ref(), None);
        parameters.local_time = time;
        parameters.time_wr_full_seconds = event.local_clock_ns.div_euclid(1_000_000_000);
        parameters.time_wr_frac_seconds = event.local_clock_ns.rem_euclid(1_000_000_000) as f64 / 1e9;
        parameters.equivalent_focal_length = focal_length;
        parameters.date = obs_id_i64 / 10_000;
        parameters.meanQ = if has_pedestals { event_nsb_level } else { f64::NAN };
        if let Some(t) = TriggerRow::at_tai_ns(obs_id_i64, event_id, event.local_clock_ns) {
            trigger_rows.push(t);
        }
        writer.write(row, parameters)?;
        n_events += 1;
    }
    writer.write_triggers(&trigger_rows)?;
    if has_pedestals {
        writer.write_pedestals(&pedestal_rows)?;
        // sst1mpipe divides by the last event's index.
        let _ = writeln!(
            ctx.log,
            "Average (per event) fraction of pixels (N/{n_pixels}) with raised picture threshold: {:.6}",
            raised_sum / position.saturating_sub(1).max(1) as f64
        );
    }
    if let Some(r) = &reclean {
        r.check_run_span(first_ns, last_ns)?;
    }
    if let Some((histogram, maps)) = charges {
        let maps = maps.finish();
        let _ = writeln!(
            ctx.log,
            "pixel charges: {} pedestal events histogrammed, {} charge map(s) of {} s windows",
            histogram.n_events,
            maps.len(),
            ped_time_window_s
        );
        write_pixel_charges(ctx, &histogram, "pixel_charge", &maps)?;
    }
    let window_name = ctx.inputs.get("window_transmittance").and_then(|w| w.first()).map(|w| w.name.as_str());
    let triggered = (n_events + n_pedestals) as i64;
    writer.write_run_info(&crate::io::dl1::RunInfo {
        software_version: &format!("sst1mflow {}", ctx.pipeline_version),
        target: pointing_radec.as_ref().map_or("", |t| t.0.as_str()),
        ra_deg: pointing_radec.as_ref().map_or(f64::NAN, |t| t.2),
        dec_deg: pointing_radec.as_ref().map_or(f64::NAN, |t| t.3),
        wobble: pointing_radec.as_ref().map_or("", |t| t.1.as_str()),
        manual_coords: p.forced_pointing.is_some(),
        calib_file: &calib_in.name,
        window_file: window_name.unwrap_or(""),
        n_saturated: n_saturated as i64,
        n_pedestal: n_pedestals as i64,
        n_survived_pedestals: n_pedestals_survived as f64,
        n_triggered: [if tel == 21 { triggered } else { 0 }, if tel == 22 { triggered } else { 0 }],
        swat_event_ids_used: swat,
    })?;
    // The run's row carries the full obs_id (sst1mpipe's YYYYMMDDRRRR does not fit the int32
    // obs_id of ctapipe's event tables) and the pointing of the TARGET key on to DL2 and DL3.
    let (ra_pnt, dec_pnt) = pointing_radec.as_ref().map(|t| (t.2, t.3)).unwrap_or((f64::NAN, f64::NAN));
    writer.write_observation(&crate::io::r1::ObservationRow {
        obs_id: obs_id_i64,
        tstart: run_start,
        tstop: run_stop,
        ra_pnt,
        dec_pnt,
        target_ra: f64::NAN,
        target_dec: f64::NAN,
        wobble_offset: f64::NAN,
        wobble_angle: f64::NAN,
        nsb_rate: f64::NAN,
        source_amplitude: 0.0,
        source_index: f64::NAN,
        proton_amplitude: 0.0,
        proton_index: f64::NAN,
    })?;
    writer.finish()?;
    let _ = writeln!(
        ctx.log,
        "processed {n_events} events ({with_params} with image parameters, {n_saturated} with saturated pixels); {n_pedestals} pedestal events used for calibration and cleaning, not written"
    );
    Ok(())
}

/// sst1mpipe's `--reclean`: the kept charge maps of a first pass, each with the cleaning
/// setting its NSB level selects and its per-pixel picture thresholds.
struct Reclean {
    maps: pixel_charges::RecleanMaps,
    per_map: Vec<RecleanMap>,
    /// The input's name, for errors.
    name: String,
}

struct RecleanMap {
    cleaner: Cleaner,
    thresholds: Vec<f64>,
    nsb_level: f64,
    n_raised: usize,
}

impl Reclean {
    /// The maps must come from a pass over this run: every window starts within its events.
    fn check_run_span(&self, first_ns: i64, last_ns: i64) -> Result<()> {
        let all = &self.maps.maps;
        match all.iter().find(|m| m.start_ns < first_ns || m.start_ns > last_ns) {
            None => Ok(()),
            Some(m) => Err(Error::msg(format!(
                "px_charges input {}: a charge map starts at camera time {} ns, outside this run's events ({first_ns} to {last_ns} ns): its maps are of another run",
                self.name, m.start_ns
            ))),
        }
    }
}

/// Reads the `px_charges` input and prepares the per-map cleaning (see [`Reclean`]).
fn reclean_settings(ctx: &mut StageContext, n_pixels: usize, has_pedestals: bool, s: &Settings) -> Result<Reclean> {
    let input = match ctx.inputs.get("px_charges").map(Vec::as_slice) {
        Some([f]) => f.clone(),
        _ => return Err(Error::msg("reclean needs exactly one pixel-charges file (input role \"px_charges\")")),
    };
    if !has_pedestals {
        return Err(Error::msg(format!(
            "reclean: this run has no pedestal events, so px_charges input {} cannot hold charge maps of it",
            input.name
        )));
    }
    let key = "ImageProcessor.ImageCleanerSST.min_number_pedestals";
    let min_number = number(ctx.config, key)?;
    if !(min_number.is_finite() && min_number >= 0.0) {
        return Err(Error::msg(format!("config {key} = {min_number}: must be a number of pedestal events (≥ 0)")));
    }
    let all = crate::io::pixel_charges::read_charge_maps(&input.path, n_pixels)
        .map_err(|e| Error::msg(format!("px_charges input {}: {}", input.name, e.message())))?;
    let largest = all.iter().map(|m| m.n).max().unwrap_or(0);
    let n_all = all.len();
    let maps = pixel_charges::RecleanMaps::new(all, min_number);
    if maps.maps.is_empty() {
        return Err(Error::msg(format!(
            "px_charges input {}: none of its {n_all} charge map(s) has more than {key} = {min_number} pedestal events (the largest has {largest}): nothing to reclean with",
            input.name
        )));
    }
    let mut sorted = s.cleaners.clone();
    sorted.sort_by(|a, b| b.min_nsb_level.total_cmp(&a.min_nsb_level));
    let per_map = (0..maps.maps.len())
        .map(|i| {
            let nsb_level = maps.nsb_level[i] as f64;
            // ImageCleanerSST: the first setting (highest level first) the level reaches, else the last.
            let cleaner = sorted
                .iter()
                .find(|c| nsb_level >= c.min_nsb_level)
                .cloned()
                .unwrap_or_else(|| sorted.last().cloned().expect("non-empty"));
            let thresholds = maps.picture_thresholds(i, cleaner.picture, cleaner.stdev_scaling);
            let n_raised = thresholds.iter().filter(|&&t| t > cleaner.picture).count();
            RecleanMap { cleaner, thresholds, nsb_level, n_raised }
        })
        .collect::<Vec<_>>();
    let _ = writeln!(
        ctx.log,
        "reclean with px_charges input {}: {} of {n_all} charge map(s) have more than {min_number} pedestal events",
        input.name,
        maps.maps.len()
    );
    for (m, r) in maps.maps.iter().zip(&per_map) {
        let _ = writeln!(
            ctx.log,
            "  map from camera time {} ns: {} pedestals, NSB level {:.4} p.e. -> min_nsb_level {}, {} raised picture thresholds",
            m.start_ns, m.n, r.nsb_level, r.cleaner.min_nsb_level, r.n_raised
        );
    }
    Ok(Reclean { maps, per_map, name: input.name.clone() })
}

fn check_event(event: &DigicamEvent, tel: u16, name: &str) -> Result<()> {
    let sizes = (event.samples.len(), event.baselines.len());
    check_event_header(event.telescope_id, event.event_number, sizes, tel, name)
}

/// [`check_event`] on an event where its tile holds it.
fn check_event_in_place(event: &crate::io::zfits::DigicamEventRef, tel: u16, name: &str) -> Result<()> {
    let sizes = (event.samples.len() / 2, event.baselines.len() / 2);
    check_event_header(event.telescope_id, event.event_number, sizes, tel, name)
}

/// The event's telescope is the step's, and it has DigiCam's (samples, baselines).
fn check_event_header(telescope_id: i32, event_number: u32, sizes: (usize, usize), tel: u16, name: &str) -> Result<()> {
    if telescope_id != tel as i32 {
        return Err(Error::msg(format!(
            "input {name}: event {event_number} is from telescope {telescope_id}, but the step is configured for telescope {tel}"
        )));
    }
    if sizes != (1296 * N_SAMPLES, 1296) {
        return Err(Error::msg(format!(
            "input {name}: event {event_number} has {} samples and {} baselines, DigiCam has 1296 pixels × {N_SAMPLES} samples",
            sizes.0, sizes.1
        )));
    }
    Ok(())
}

/// After charge extraction on camera data, in sst1mpipe's order: bad-pixel interpolation
/// (ctapipe's CameraCalibrator, unless `invalid_pixel_handler_type` is null), then the
/// re-integration of saturated pixels, then the window transmittance. Returns whether
/// saturated pixels were re-integrated.
fn finish_image(
    geom: &CameraGeometry,
    calibration: &DataCalibration,
    interpolate_invalid: bool,
    out: &Calibrated,
    image: &mut [f32],
    peak: &mut [f32],
) -> bool {
    if interpolate_invalid && out.bad.iter().any(|&b| b) {
        calibrate::interpolate_bad_pixels(geom, &out.bad, image, peak);
    }
    // No sample above the saturation threshold (nearly every event): nothing to re-integrate.
    let saturated =
        out.has_adc && calibrate::correct_saturation(&out.adc, &out.r1, N_SAMPLES, SAMPLE_NS as f32, image, peak);
    if let Some(w) = &calibration.window {
        for (v, f) in image.iter_mut().zip(w) {
            *v = (*v as f64 / f) as f32;
        }
    }
    saturated
}
