//! `dl1-distributions`: sst1mpipe's `extract_dl1_distributions`, the data-quality summary of
//! one telescope's DL1 over one observation (a target's wobble in a night), which its daily
//! analysis writes beside the DL3 (`distributions/`) for run selection.
//!
//! Input `dl1`: the camera-data DL1 files of the observation's runs (one telescope; r0-dl1 or
//! dl1-stereo outputs). Output `distributions` (`intensity_hist.h5`), the tables sst1mpipe
//! writes with astropy: `intensity_hist` (`low`, `high`, `center`, `rate`, `diff_rate`: the
//! rate of events per bin of `camera_frame_hillas_intensity` on `logspace(1, 5, bins)`, per
//! second and per p.e.), `t_elapsed` (hours: the sum of the gaps between successive events
//! shorter than 10 s), `zenith` (90° − the mean pointing altitude), `timestamp` (mean
//! `local_time`), `survived_pedestal_frac` (%, the mean over runs of pedestal events whose
//! cleaned image has parameters), `recleaned_fraction` (0: no second pass here) and `NSB` (MHz:
//! the mean over runs of `NSB_tools.VAR_to_NSB` of the squared camera-mean pedestal standard
//! deviation of each monitoring row). Parameter `bins` (default 100, as `daily_analysis`
//! passes it). It reads no config key.
//!
//! sst1mpipe splits a night's DL1 by the DL3 index's TSTART/TSTOP of each observation; the
//! nightly gives each observation's runs directly, which selects the same events.
use super::{DeclaredOutput, InputFile, Stage, StageContext, StagePlan};
use crate::error::{Error, Result};
use crate::image::calibrate::variance_to_nsb_mhz;
use crate::io::dl1::{self, Distributions};
use crate::reco::EventSelection;
use serde_json::Value;

pub struct Dl1DistributionsStage;

const DEFAULT_BINS: u64 = 100;

fn bins(params: &Value, at: &str) -> Result<usize> {
    let p = super::params::Params::new(params, &["bins"], "dl1-distributions", at)?;
    match p.u64_or("bins", Some(DEFAULT_BINS))? {
        n @ 2..=10_000 => Ok(n as usize),
        n => Err(Error::msg(format!("{at}.params.bins: {n} is not an integer from 2 to 10000"))),
    }
}

impl Stage for Dl1DistributionsStage {
    fn name(&self) -> &'static str {
        "dl1-distributions"
    }

    fn version(&self) -> &'static str {
        "1"
    }

    fn plan(&self, params: &Value, input_roles: &[&str], at: &str) -> Result<StagePlan> {
        bins(params, at)?;
        if input_roles != ["dl1"] {
            return Err(Error::msg(format!(
                "{at}: stage dl1-distributions takes one input role, \"dl1\" (one telescope's camera-data DL1 of one observation)"
            )));
        }
        Ok(StagePlan {
            config_keys: Vec::new(),
            config_read: Vec::new(),
            outputs: vec![DeclaredOutput {
                role: "distributions".into(),
                file: "intensity_hist.h5".into(),
                kind: "dl1-distributions".into(),
            }],
        })
    }

    fn config_scope(&self) -> Vec<&'static str> {
        Vec::new()
    }

    fn run(&self, ctx: &mut StageContext) -> Result<()> {
        let n_bins = bins(ctx.params, "dl1-distributions")?;
        let inputs: &[InputFile] = ctx.inputs.get("dl1").map(Vec::as_slice).unwrap_or(&[]);
        let first = inputs.first().ok_or_else(|| Error::msg("dl1-distributions needs at least one DL1 file"))?;
        let tel_id = dl1::Dl1Reader::open(&first.path)
            .map_err(|e| Error::msg(format!("dl1 input {}: {}", first.name, e.message())))?
            .tel_id;
        let keep: Vec<String> =
            ["camera_frame_hillas_intensity", "local_time", "true_alt_tel"].iter().map(|s| s.to_string()).collect();
        let everything = EventSelection::from_config(&serde_json::json!({"event_selection": {}}))
            .map_err(|e| Error::msg(format!("dl1-distributions: {e}")))?;
        let columns = super::dl1_input::load(inputs, "dl1", tel_id, &keep, &[], &everything)?;
        let intensity = columns.column("camera_frame_hillas_intensity");
        let mut order: Vec<usize> = (0..intensity.len()).collect();
        let time = columns.column("local_time");
        order.sort_by(|&a, &b| time[a].total_cmp(&time[b]));
        let alt = columns.column("true_alt_tel");
        // Bins: numpy's logspace(1, 5, n) edges, histogram as numpy (last bin closed).
        let edges: Vec<f64> = (0..n_bins).map(|i| 10f64.powf(1.0 + 4.0 * i as f64 / (n_bins - 1) as f64)).collect();
        let mut counts = vec![0.0f64; n_bins - 1];
        for &x in intensity {
            if !(x >= edges[0] && x <= edges[n_bins - 1]) {
                continue;
            }
            let i = (edges.partition_point(|&e| e <= x) - 1).min(n_bins - 2);
            counts[i] += 1.0;
        }
        let mut elapsed = 0.0;
        for w in order.windows(2) {
            let dt = time[w[1]] - time[w[0]];
            if dt < 10.0 {
                elapsed += dt;
            }
        }
        let rate: Vec<f64> = counts.iter().map(|c| c / elapsed).collect();
        let (low, high): (Vec<f64>, Vec<f64>) = (edges[..n_bins - 1].to_vec(), edges[1..].to_vec());
        let diff_rate: Vec<f64> = rate.iter().zip(low.iter().zip(&high)).map(|(r, (l, h))| r / (h - l)).collect();
        let mean = |v: &[f64]| {
            let f: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
            if f.is_empty() {
                f64::NAN
            } else {
                f.iter().sum::<f64>() / f.len() as f64
            }
        };
        let (mut ped_fractions, mut nsb) = (Vec::new(), Vec::new());
        for input in inputs {
            match dl1::read_pedestal_counts(&input.path)? {
                Some((n, survived)) if n > 0 => ped_fractions.push(100.0 * survived / n as f64),
                _ => ped_fractions.push(100.0),
            }
            let stds = dl1::read_pedestal_std_means(&input.path)?;
            let rates: Vec<f64> = stds.iter().filter_map(|s| variance_to_nsb_mhz(tel_id, s * s)).collect();
            nsb.push(mean(&rates));
        }
        let d = Distributions {
            low: &low,
            high: &high,
            rate: &rate,
            diff_rate: &diff_rate,
            t_elapsed_h: elapsed / 3600.0,
            zenith_deg: 90.0 - mean(alt),
            timestamp: mean(time),
            survived_pedestal_frac: mean(&ped_fractions),
            recleaned_fraction: 0.0,
            nsb: mean(&nsb),
        };
        let _ = writeln!(
            ctx.log,
            "telescope {tel_id}: {} events of {} DL1 file(s), integration time {:.4} h, zenith {:.2} deg, surviving pedestals {:.1} %, NSB {:.1} MHz",
            intensity.len(),
            inputs.len(),
            d.t_elapsed_h,
            d.zenith_deg,
            d.survived_pedestal_frac,
            d.nsb
        );
        dl1::write_distributions(&ctx.work_dir.join("intensity_hist.h5"), ctx.activity_key, ctx.pipeline_version, &d)
    }
}
