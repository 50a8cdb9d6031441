//! R0 → R1 calibration of SST-1M camera data, as sst1mpipe does it (`Calibrator_R0_R1`,
//! `saturated_charge_correction`, `NSB_tools.VAR_to_Idrop`, ctapipe `NeighborAverage`), and the
//! pedestal statistics the adaptive cleaning needs. Pure functions and small state over slices.
//!
//! * R1 = (ADC − DigiCam baseline/16) / dc_to_pe / VI, where VI is the relative drop of gain
//!   and PDE under night-sky light, estimated from the variance of the raw pedestal samples
//!   through sst1mpipe's B-spline (tel 21 quadratic, tel 22 linear) and linear slopes.
//! * Saturated pixels (max baseline-subtracted ADC > 3000 and > 5 samples above 2500) are
//!   integrated from the first sample ≥ 20% of the maximum to the first one after it below,
//!   with peak time (width/2 + first sample above 2500) × 4 ns.
//! * Bad pixels (bad calibration, dead from their pedestal width, or listed in the config) get
//!   the mean image and peak time of their valid neighbours (0 when none).
//! * [`PedestalStats`] keeps sst1mpipe's sliding windows: the raw-sample std of the last ≤100
//!   pedestal events (for VI and dead pixels) and the mean/std of the last ≤1000 calibrated
//!   pedestal images (for the picture thresholds of ImageCleanerSST).
use crate::instrument::camera::CameraGeometry;
use std::collections::VecDeque;

/// sst1mpipe `NSB_tools.TCK1` (tel 21): quadratic B-spline, variance [ADC²] → baseline shift [ADC].
const TCK_TEL21: (&[f64], &[f64], usize) = (
    &[0.0, 0.0, 0.0, 46.96969697, 60.90909091, 67.57575758, 74.24242424, 74.24242424, 74.24242424],
    &[-0.4367913, 9.08788226, 39.66927065, 54.18389959, 69.24518367, 104.29418015, 0.0, 0.0, 0.0],
    2,
);

/// sst1mpipe `NSB_tools.TCK2` (tel 22): linear B-spline.
const TCK_TEL22: (&[f64], &[f64], usize) = (
    &[
        0.0,
        0.0,
        93.74735497,
        126.46232902,
        181.54405469,
        256.80398702,
        266.62290877,
        292.98812266,
        294.71402901,
        295.67072519,
        298.04051867,
        339.91032956,
        339.91032956,
    ],
    &[
        -1.74764142,
        48.41280122,
        68.36843193,
        104.62272377,
        168.14318275,
        179.34289593,
        212.07400565,
        214.10474285,
        215.17017626,
        217.7828114,
        268.19128994,
        0.0,
        0.0,
    ],
    1,
);

/// Relative gain + PDE drop per ADC of baseline shift (sst1mpipe `Vdrop_lin_aprox`).
const DROP_SLOPE_TEL21: f64 = -0.00487 - 0.00317;
const DROP_SLOPE_TEL22: f64 = -0.00118 - 0.000663;

/// Evaluates a B-spline (knots `t`, coefficients `c`, degree `k`) at `x` like FITPACK's
/// `splev` with extrapolation: outside the base interval the end polynomial piece continues.
pub fn bspline(t: &[f64], c: &[f64], k: usize, x: f64) -> f64 {
    let n = t.len();
    // Interval l with t[l] <= x < t[l+1], restricted to k <= l <= n-k-2.
    let mut l = k;
    while l < n - k - 2 && x >= t[l + 1] {
        l += 1;
    }
    // de Boor's recursion on the k+1 coefficients c[l-k..=l].
    let mut d: Vec<f64> = (0..=k).map(|j| c[j + l - k]).collect();
    for r in 1..=k {
        for j in (r..=k).rev() {
            let i = j + l - k;
            let denom = t[i + k + 1 - r] - t[i];
            let alpha = if denom == 0.0 { 0.0 } else { (x - t[i]) / denom };
            d[j] = (1.0 - alpha) * d[j - 1] + alpha * d[j];
        }
    }
    d[k]
}

/// sst1mpipe's `VAR_to_Idrop(variance, tel)`: the factor the charges are divided by. Only the
/// two SST-1M telescopes (21, 22) have a model.
pub fn voltage_drop_factor(tel_id: u16, variance_adc2: f64) -> Option<f64> {
    let ((t, c, k), slope) = match tel_id {
        21 => (TCK_TEL21, DROP_SLOPE_TEL21),
        22 => (TCK_TEL22, DROP_SLOPE_TEL22),
        _ => return None,
    };
    Some(1.0 + bspline(t, c, k, variance_adc2) * slope)
}

/// sst1mpipe's `NSB_tools.VAR_to_NSB(variance, tel)`: the night-sky rate (MHz) of a pedestal
/// variance, through the baseline shift of its B-spline (`VAR_to_shift`), the nominal SiPM gain
/// (`Gain_0`: 21.0 for tel 21, 23.5 for tel 22) lowered by the gain drop of that shift, and the
/// 4 ns sample (`BLS_to_NSB`). Only telescopes 21 and 22 have a model.
pub fn variance_to_nsb_mhz(tel_id: u16, variance: f64) -> Option<f64> {
    let ((t, c, k), gain_0, gain_slope) = match tel_id {
        21 => (TCK_TEL21, 21.0, -0.00487),
        22 => (TCK_TEL22, 23.5, -0.00118),
        _ => return None,
    };
    let shift = bspline(t, c, k, variance);
    let gain = gain_0 * (shift * gain_slope + 1.0);
    Some(shift / gain / 4e-3)
}

/// DigiCam's baseline, stored in 1/16 ADC, in ADC.
#[inline(always)]
pub fn baseline_adc(baseline_x16: i16) -> f32 {
    baseline_x16 as f32 / 16.0
}

/// The factor from baseline-subtracted ADC to p.e.: 1 / (dc_to_pe × voltage drop), in f32.
#[inline(always)]
pub fn r1_factor(dc_to_pe: f64, voltage_drop: f64) -> f32 {
    (1.0 / (dc_to_pe * voltage_drop)) as f32
}

/// One R1 sample: (ADC − baseline) × factor. Every R1 of this crate is computed here, so that
/// the paths that calibrate only some samples ([`crate::image::extract::local_peak_window_sum_r0`])
/// give the same bits.
#[inline(always)]
pub fn r1_sample(adc: i16, baseline: f32, factor: f32) -> f32 {
    (adc as f32 - baseline) * factor
}

/// An event as its zfits tile holds it: `samples` and `baselines_x16` per readout position
/// (little-endian i16), `pixel_indices` the software pixel of each readout position
/// (little-endian u16, a permutation).
#[derive(Clone, Copy, Debug)]
pub struct ReadoutEvent<'a> {
    pub samples: &'a [u8],
    pub baselines_x16: &'a [u8],
    pub pixel_indices: &'a [u8],
    pub n_samples: usize,
}

/// R1 (p.e.) waveforms of one event, pixel-major: (ADC − baseline) / (dc_to_pe × voltage
/// drop). `baselines_x16` are DigiCam's baselines in 1/16 ADC. Returns the largest
/// baseline-subtracted ADC value, so that the saturation check ([`correct_saturation`]), the
/// only user of the baseline-subtracted waveforms ([`subtract_baselines`]), can be skipped for
/// the (nearly all) events without a sample above its threshold: writing them for every event
/// would double this step's memory traffic, which is what it costs.
pub fn r0_to_r1(
    samples: &[i16],
    baselines_x16: &[i16],
    dc_to_pe: &[f64],
    voltage_drop: f64,
    n_samples: usize,
    r1: &mut [f32],
) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe { r0_to_r1_avx2(samples, baselines_x16, dc_to_pe, voltage_drop, n_samples, r1) };
    }
    r0_to_r1_any(samples, baselines_x16, dc_to_pe, voltage_drop, n_samples, r1)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn r0_to_r1_avx2(
    samples: &[i16],
    baselines_x16: &[i16],
    dc_to_pe: &[f64],
    voltage_drop: f64,
    n_samples: usize,
    r1: &mut [f32],
) -> f32 {
    r0_to_r1_any(samples, baselines_x16, dc_to_pe, voltage_drop, n_samples, r1)
}

/// SST-1M's 50 samples get a loop of known length (no remainder handling per pixel).
#[inline(always)]
fn r0_to_r1_any(
    samples: &[i16],
    baselines_x16: &[i16],
    dc_to_pe: &[f64],
    voltage_drop: f64,
    n_samples: usize,
    r1: &mut [f32],
) -> f32 {
    match n_samples {
        50 => r0_to_r1_pixels(samples.chunks_exact(50), baselines_x16, dc_to_pe, voltage_drop, r1.chunks_exact_mut(50)),
        n => r0_to_r1_pixels(samples.chunks_exact(n), baselines_x16, dc_to_pe, voltage_drop, r1.chunks_exact_mut(n)),
    }
}

#[inline(always)]
fn r0_to_r1_pixels<'a>(
    samples: impl Iterator<Item = &'a [i16]>,
    baselines_x16: &[i16],
    dc_to_pe: &[f64],
    voltage_drop: f64,
    r1: impl Iterator<Item = &'a mut [f32]>,
) -> f32 {
    let mut max_adc = f32::NEG_INFINITY;
    for (pixel, (s, r)) in samples.zip(r1).enumerate() {
        let baseline = baseline_adc(baselines_x16[pixel]);
        let scale = r1_factor(dc_to_pe[pixel], voltage_drop);
        for (r, &x) in r.iter_mut().zip(s) {
            *r = r1_sample(x, baseline, scale);
        }
        // An integer maximum as a fold (it vectorises; `Iterator::max` does not), converted as
        // the samples are.
        let top = s.iter().fold(i16::MIN, |m, &x| m.max(x));
        max_adc = max_adc.max(top as f32 - baseline);
    }
    max_adc
}

/// [`r0_to_r1`] on an event as its zfits tile holds it, without reordering it first:
/// `samples` and `baselines_x16` per readout position (little-endian i16), `pixel_indices`
/// the software pixel of each readout position (little-endian u16, a permutation);
/// `dc_to_pe` and `r1` in software pixel order. The same values as [`r0_to_r1`] on the
/// reordered event.
pub fn r0_to_r1_readout(
    samples: &[u8],
    baselines_x16: &[u8],
    pixel_indices: &[u8],
    dc_to_pe: &[f64],
    voltage_drop: f64,
    n_samples: usize,
    r1: &mut [f32],
) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2 (checked just above).
        return unsafe {
            r0_to_r1_readout_avx2(samples, baselines_x16, pixel_indices, dc_to_pe, voltage_drop, n_samples, r1)
        };
    }
    r0_to_r1_readout_any(samples, baselines_x16, pixel_indices, dc_to_pe, voltage_drop, n_samples, r1)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn r0_to_r1_readout_avx2(
    samples: &[u8],
    baselines_x16: &[u8],
    pixel_indices: &[u8],
    dc_to_pe: &[f64],
    voltage_drop: f64,
    n_samples: usize,
    r1: &mut [f32],
) -> f32 {
    r0_to_r1_readout_any(samples, baselines_x16, pixel_indices, dc_to_pe, voltage_drop, n_samples, r1)
}

#[inline(always)]
fn r0_to_r1_readout_any(
    samples: &[u8],
    baselines_x16: &[u8],
    pixel_indices: &[u8],
    dc_to_pe: &[f64],
    voltage_drop: f64,
    n_samples: usize,
    r1: &mut [f32],
) -> f32 {
    match n_samples {
        50 => r0_to_r1_readout_pixels::<50>(samples, baselines_x16, pixel_indices, dc_to_pe, voltage_drop, 50, r1),
        n => r0_to_r1_readout_pixels::<0>(samples, baselines_x16, pixel_indices, dc_to_pe, voltage_drop, n, r1),
    }
}

/// `S` > 0: the samples per pixel known at compile time (they must equal `n_samples`).
#[inline(always)]
fn r0_to_r1_readout_pixels<const S: usize>(
    samples: &[u8],
    baselines_x16: &[u8],
    pixel_indices: &[u8],
    dc_to_pe: &[f64],
    voltage_drop: f64,
    n_samples: usize,
    r1: &mut [f32],
) -> f32 {
    let n = if S > 0 { S } else { n_samples };
    let mut max_adc = f32::NEG_INFINITY;
    for ((s, b), p) in samples.chunks_exact(2 * n).zip(baselines_x16.chunks_exact(2)).zip(pixel_indices.chunks_exact(2))
    {
        let pixel = u16::from_le_bytes([p[0], p[1]]) as usize;
        let baseline = baseline_adc(i16::from_le_bytes([b[0], b[1]]));
        let scale = r1_factor(dc_to_pe[pixel], voltage_drop);
        let r = &mut r1[pixel * n..(pixel + 1) * n];
        let mut top = i16::MIN;
        for (r, x) in r.iter_mut().zip(s.chunks_exact(2)) {
            let x = i16::from_le_bytes([x[0], x[1]]);
            *r = r1_sample(x, baseline, scale);
            top = top.max(x);
        }
        max_adc = max_adc.max(top as f32 - baseline);
    }
    max_adc
}

/// Baseline-subtracted ADC waveforms (ADC − `baselines_x16` / 16), pixel-major, as
/// [`r0_to_r1`] computes them on its way to R1.
pub fn subtract_baselines(samples: &[i16], baselines_x16: &[i16], n_samples: usize, adc: &mut [f32]) {
    for ((s, a), &b) in samples.chunks_exact(n_samples).zip(adc.chunks_exact_mut(n_samples)).zip(baselines_x16) {
        let baseline = baseline_adc(b);
        for (a, &x) in a.iter_mut().zip(s) {
            *a = x as f32 - baseline;
        }
    }
}

pub const SATURATION_THRESHOLD_ADC: f32 = 3000.0;
pub const SATURATION_WIDTH_LEVEL_ADC: f32 = 2500.0;
pub const SATURATION_MIN_WIDTH: usize = 5;
pub const SATURATION_INTEGRATION_LEVEL: f32 = 0.2;

/// sst1mpipe's saturated-charge correction; returns whether any pixel was corrected.
pub fn correct_saturation(
    adc: &[f32],
    r1: &[f32],
    n_samples: usize,
    sample_ns: f32,
    image: &mut [f32],
    peak_time: &mut [f32],
) -> bool {
    let mut any = false;
    for (pixel, (w, r)) in adc.chunks_exact(n_samples).zip(r1.chunks_exact(n_samples)).enumerate() {
        // Almost no pixel saturates: a branch-free test (it vectorises) before anything else.
        if !w.iter().fold(false, |above, &v| above | (v > SATURATION_THRESHOLD_ADC)) {
            continue;
        }
        // The first sample at the maximum (as numpy's argmax).
        let (index_max, &max) =
            w.iter().enumerate().fold((0, &f32::NEG_INFINITY), |best, (i, v)| if *v > *best.1 { (i, v) } else { best });
        let width = w.iter().filter(|&&v| v > SATURATION_WIDTH_LEVEL_ADC).count();
        if width <= SATURATION_MIN_WIDTH {
            continue;
        }
        let level = SATURATION_INTEGRATION_LEVEL * max;
        let start = w.iter().position(|&v| v >= level).unwrap_or(0);
        let stop = (index_max + 1..n_samples).find(|&i| w[i] < level).unwrap_or(n_samples - 1);
        let first_above = w.iter().position(|&v| v > SATURATION_WIDTH_LEVEL_ADC).unwrap_or(0);
        image[pixel] = r[start..=stop].iter().sum();
        peak_time[pixel] = (width as f32 / 2.0 + first_above as f32) * sample_ns;
        any = true;
    }
    any
}

/// ctapipe `NeighborAverage`: each bad pixel gets the mean image and peak time of its valid
/// neighbours (0 when it has none).
pub fn interpolate_bad_pixels(geom: &CameraGeometry, bad: &[bool], image: &mut [f32], peak_time: &mut [f32]) {
    for pixel in 0..bad.len() {
        if !bad[pixel] {
            continue;
        }
        let (mut sum, mut time, mut n) = (0.0f32, 0.0f32, 0u32);
        for &nb in geom.neighbors(pixel) {
            if !bad[nb as usize] {
                sum += image[nb as usize];
                time += peak_time[nb as usize];
                n += 1;
            }
        }
        if n == 0 {
            image[pixel] = 0.0;
            peak_time[pixel] = 0.0;
        } else {
            image[pixel] = sum / n as f32;
            peak_time[pixel] = time / n as f32;
        }
    }
}

/// Per-pixel mean and standard deviation (ddof 0) of the raw samples of one pedestal event.
pub fn raw_sample_stats(samples: &[i16], n_samples: usize, mean: &mut [f64], std: &mut [f64]) {
    // Exact integer sums: the variance (n·Σx² − (Σx)²)/n² is rounded once, where a running
    // f64 sum of squared deviations rounds at every sample (and is a chain of dependent adds).
    for ((s, m), o) in samples.chunks_exact(n_samples).zip(mean.iter_mut()).zip(std.iter_mut()) {
        let n = s.len() as i64;
        let (sum, sum2) = s.iter().fold((0i64, 0i64), |(a, b), &x| (a + x as i64, b + x as i64 * x as i64));
        *m = sum as f64 / n as f64;
        let var = (n * sum2 - sum * sum) as f64 / (n * n) as f64;
        *o = var.sqrt();
    }
}

/// The raw pedestal window as monitoring reports it (ADC; times in seconds).
pub struct PedestalSummary {
    pub n_events: usize,
    pub time_mean_min_max: [f64; 3],
    pub mean: Vec<f64>,
    pub median: Vec<f64>,
    pub std: Vec<f64>,
}

/// sst1mpipe's sliding pedestal windows, with running sums (as sst1mpipe's `ped_img_sum`,
/// `ped_img_sum2`) so that what every physics event needs (the mean raw std, the voltage-drop
/// factor, the image mean and std per pixel) is O(pixels) to update on a pedestal event and free
/// to read: [`Self::generation`] changes only when a window changes.
#[derive(Clone, Debug)]
pub struct PedestalStats {
    n_pixels: usize,
    raw_std: VecDeque<Vec<f64>>,
    raw_mean: VecDeque<Vec<f64>>,
    times: VecDeque<f64>,
    images: VecDeque<Vec<f32>>,
    raw_std_sum: Vec<f64>,
    image_sum: Vec<f64>,
    image_sum2: Vec<f64>,
    pub max_raw: usize,
    pub max_images: usize,
    generation: u64,
}

impl PedestalStats {
    pub fn new(n_pixels: usize) -> PedestalStats {
        PedestalStats {
            n_pixels,
            raw_std: VecDeque::new(),
            raw_mean: VecDeque::new(),
            times: VecDeque::new(),
            images: VecDeque::new(),
            raw_std_sum: vec![0.0; n_pixels],
            image_sum: vec![0.0; n_pixels],
            image_sum2: vec![0.0; n_pixels],
            max_raw: 100,
            max_images: 1000,
            generation: 0,
        }
    }

    /// Changes whenever a window changes, so callers can cache what they derive from it.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Adds a pedestal event's raw-sample statistics (per-pixel mean and std, ADC) taken at
    /// `time_s`.
    pub fn push_raw(&mut self, time_s: f64, mean: &[f64], std: &[f64]) {
        if self.raw_std.len() == self.max_raw {
            if let Some(old) = self.raw_std.pop_front() {
                self.raw_std_sum.iter_mut().zip(&old).for_each(|(s, v)| *s -= v);
            }
            self.raw_mean.pop_front();
            self.times.pop_front();
        }
        self.raw_std_sum.iter_mut().zip(std).for_each(|(s, v)| *s += v);
        self.raw_std.push_back(std.to_vec());
        self.raw_mean.push_back(mean.to_vec());
        self.times.push_back(time_s);
        self.generation += 1;
    }

    /// The monitoring summary of the raw window (sst1mpipe `fill_mon_container`): number of
    /// events, mean/min/max time, per-pixel mean and median of the event means, mean std.
    pub fn raw_summary(&self) -> Option<PedestalSummary> {
        let n = self.times.len();
        if n == 0 {
            return None;
        }
        let times = [
            self.times.iter().sum::<f64>() / n as f64,
            self.times.front().copied().unwrap_or(f64::NAN),
            self.times.back().copied().unwrap_or(f64::NAN),
        ];
        let mut mean = vec![0.0; self.n_pixels];
        let mut median = vec![0.0; self.n_pixels];
        let mut column = Vec::with_capacity(n);
        for p in 0..self.n_pixels {
            column.clear();
            column.extend(self.raw_mean.iter().map(|m| m[p]));
            mean[p] = column.iter().sum::<f64>() / n as f64;
            median[p] = median_of(&mut column);
        }
        Some(PedestalSummary { n_events: n, time_mean_min_max: times, mean, median, std: self.raw_std()? })
    }

    /// Drops the newest raw entries until at most `keep` remain (sst1mpipe's `pop()` at the end
    /// of its initial window, which keeps the first pedestals).
    pub fn truncate_raw(&mut self, keep: usize) {
        while self.raw_std.len() > keep {
            if let Some(newest) = self.raw_std.pop_back() {
                self.raw_std_sum.iter_mut().zip(&newest).for_each(|(s, v)| *s -= v);
            }
            self.raw_mean.pop_back();
            self.times.pop_back();
            self.generation += 1;
        }
    }

    pub fn push_image(&mut self, image: &[f32]) {
        if self.images.len() == self.max_images {
            if let Some(old) = self.images.pop_front() {
                for ((s, s2), &v) in self.image_sum.iter_mut().zip(self.image_sum2.iter_mut()).zip(&old) {
                    *s -= v as f64;
                    *s2 -= (v as f64) * (v as f64);
                }
            }
        }
        for ((s, s2), &v) in self.image_sum.iter_mut().zip(self.image_sum2.iter_mut()).zip(image) {
            *s += v as f64;
            *s2 += (v as f64) * (v as f64);
        }
        self.images.push_back(image.to_vec());
        self.generation += 1;
    }

    pub fn n_raw(&self) -> usize {
        self.raw_std.len()
    }

    pub fn n_images(&self) -> usize {
        self.images.len()
    }

    /// Mean over the window of the per-pixel raw-sample std (sst1mpipe `get_charge_std`).
    pub fn raw_std(&self) -> Option<Vec<f64>> {
        if self.raw_std.is_empty() {
            return None;
        }
        let n = self.raw_std.len() as f64;
        Some(self.raw_std_sum.iter().map(|s| s / n).collect())
    }

    /// The global voltage-drop factor from the median of the per-pixel variances.
    pub fn global_voltage_drop(&self, tel_id: u16) -> Option<f64> {
        let std = self.raw_std()?;
        let mut var: Vec<f64> = std.iter().map(|s| s * s).collect();
        voltage_drop_factor(tel_id, median_of(&mut var))
    }

    /// Per-pixel (mean, std) of the calibrated pedestal images in the window (sst1mpipe's
    /// running-sum formula; a variance that rounding makes negative counts as 0).
    pub fn image_mean_std(&self) -> Option<(Vec<f64>, Vec<f64>)> {
        if self.images.is_empty() {
            return None;
        }
        let n = self.images.len() as f64;
        let mean: Vec<f64> = self.image_sum.iter().map(|s| s / n).collect();
        let std = self.image_sum2.iter().zip(&mean).map(|(s2, m)| (s2 / n - m * m).max(0.0).sqrt()).collect();
        Some((mean, std))
    }
}

/// numpy's median of non-empty `values` (the mean of the two middle ones for an even count),
/// in the total order of f64; reorders `values`. A selection, not a sort: it runs per pixel
/// for every pedestal window.
fn median_of(values: &mut [f64]) -> f64 {
    let n = values.len();
    let (below, middle, _) = values.select_nth_unstable_by(n / 2, f64::total_cmp);
    let upper = *middle;
    if n % 2 == 1 {
        upper
    } else {
        let lower = below.iter().copied().max_by(f64::total_cmp).expect("n >= 2");
        0.5 * (lower + upper)
    }
}

#[cfg(test)]
mod tests {
    /// R1 from an event in readout order (with its permutation) equals R1 from the event
    /// reordered, bit for bit, for SST-1M's 50 samples and another count.
    #[test]
    fn r1_in_readout_order_equals_r1_of_the_reordered_event() {
        let mut x = 11u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for n_samples in [50usize, 7] {
            let n_pixels = 37;
            // A permutation: readout position r holds software pixel perm[r].
            let mut perm: Vec<u16> = (0..n_pixels as u16).collect();
            for i in (1..n_pixels).rev() {
                perm.swap(i, next() as usize % (i + 1));
            }
            let raw: Vec<i16> = (0..n_pixels * n_samples).map(|_| (next() % 4096) as i16 - 100).collect();
            let raw_baselines: Vec<i16> = (0..n_pixels).map(|_| (next() % 8000) as i16).collect();
            let dc_to_pe: Vec<f64> = (0..n_pixels).map(|_| 20.0 + (next() % 1000) as f64 / 100.0).collect();
            let (mut samples, mut baselines) = (vec![0i16; raw.len()], vec![0i16; n_pixels]);
            for (r, &p) in perm.iter().enumerate() {
                let p = p as usize;
                samples[p * n_samples..(p + 1) * n_samples].copy_from_slice(&raw[r * n_samples..(r + 1) * n_samples]);
                baselines[p] = raw_baselines[r];
            }
            let mut want = vec![0f32; raw.len()];
            let want_max = super::r0_to_r1(&samples, &baselines, &dc_to_pe, 0.97, n_samples, &mut want);
            let bytes = |v: &[i16]| v.iter().flat_map(|w| w.to_le_bytes()).collect::<Vec<u8>>();
            let perm_bytes: Vec<u8> = perm.iter().flat_map(|p| p.to_le_bytes()).collect();
            let mut got = vec![0f32; raw.len()];
            let got_max = super::r0_to_r1_readout(
                &bytes(&raw),
                &bytes(&raw_baselines),
                &perm_bytes,
                &dc_to_pe,
                0.97,
                n_samples,
                &mut got,
            );
            assert_eq!(got_max.to_bits(), want_max.to_bits(), "{n_samples} samples");
            assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "{n_samples} samples");
        }
    }

    #[test]
    fn selected_medians_are_the_sorted_ones() {
        let mut x = 7u64;
        for n in 1..60usize {
            let mut values: Vec<f64> = (0..n)
                .map(|_| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    ((x >> 40) % 17) as f64 - 8.0 // repeated values too
                })
                .collect();
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            let expected = if n % 2 == 1 { sorted[n / 2] } else { 0.5 * (sorted[n / 2 - 1] + sorted[n / 2]) };
            assert_eq!(super::median_of(&mut values).to_bits(), expected.to_bits(), "{n}");
        }
    }

    #[test]
    fn nsb_rate_of_a_variance_is_sst1mpipes() {
        // scipy's splev on NSB_tools' TCK1/TCK2 through VAR_to_NSB's formula.
        let a = super::variance_to_nsb_mhz(21, 25.0).unwrap();
        let b = super::variance_to_nsb_mhz(22, 150.0).unwrap();
        assert!((a - 174.54951435847292).abs() < 1e-9 * a, "{a}");
        assert!((b - 990.1124620108923).abs() < 1e-9 * b, "{b}");
        assert!(super::variance_to_nsb_mhz(1, 25.0).is_none());
    }

    use super::*;

    #[test]
    fn the_initial_raw_window_keeps_its_first_entries_after_growing() {
        let mut stats = PedestalStats::new(2);
        stats.max_raw = 4;
        for k in 0..4 {
            stats.push_raw(k as f64, &[0.0, 0.0], &[k as f64, 1.0]);
        }
        assert_eq!(stats.raw_std().unwrap(), vec![1.5, 1.0]);
        let g = stats.generation();
        stats.truncate_raw(2);
        assert_eq!((stats.n_raw(), stats.raw_std().unwrap()), (2, vec![0.5, 1.0]));
        assert!(stats.generation() > g);
        assert_eq!(stats.raw_summary().unwrap().time_mean_min_max, [0.5, 0.0, 1.0]);
    }

    #[test]
    fn bspline_matches_scipy_splev() {
        // scipy.interpolate.splev(x, TCK) with sst1mpipe's TCK1/TCK2, inside and beyond the knots.
        let cases21 = [
            (3.0, 0.8372585093622611),
            (25.0, 13.68498663135356),
            (50.0, 35.84673919799134),
            (65.0, 56.31856913231668),
            (90.0, 423.71925170271857),
        ];
        let cases22 = [
            (3.0, -0.1424619675433907),
            (100.0, 52.22681846447942),
            (200.0, 120.19980550135926),
            (310.0, 232.18123463521985),
            (400.0, 340.5352723575049),
        ];
        for ((t, c, k), cases) in [(TCK_TEL21, &cases21), (TCK_TEL22, &cases22)] {
            for &(x, want) in cases.iter() {
                let got = bspline(t, c, k, x);
                assert!((got - want).abs() < 1e-9 * want.abs().max(1.0), "splev({x}) = {want}, got {got}");
            }
        }
        let vi = voltage_drop_factor(21, 25.0).unwrap();
        assert!((vi - (1.0 + 13.68498663135356 * (-0.00487 - 0.00317))).abs() < 1e-12);
        assert!(voltage_drop_factor(1, 25.0).is_none());
    }

    #[test]
    fn pedestal_windows_slide_with_running_sums() {
        let n = 5;
        let mut stats = PedestalStats::new(n);
        stats.max_raw = 3;
        stats.max_images = 4;
        let value = |i: usize, p: usize| ((i * 7 + p * 3) % 11) as f64 * 0.5;
        for i in 0..10 {
            let std: Vec<f64> = (0..n).map(|p| value(i, p)).collect();
            stats.push_raw(i as f64, &std, &std);
            let image: Vec<f32> = (0..n).map(|p| value(i + 1, p) as f32).collect();
            stats.push_image(&image);
        }
        assert_eq!((stats.n_raw(), stats.n_images()), (3, 4));
        let raw = stats.raw_std().unwrap();
        let (mean, std) = stats.image_mean_std().unwrap();
        for p in 0..n {
            let want: f64 = (7..10).map(|i| value(i, p)).sum::<f64>() / 3.0;
            assert!((raw[p] - want).abs() < 1e-12);
            let xs: Vec<f64> = (6..10).map(|i| value(i + 1, p)).collect();
            let m = xs.iter().sum::<f64>() / 4.0;
            let sd = (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / 4.0).sqrt();
            assert!(
                (mean[p] - m).abs() < 1e-9 && (std[p] - sd).abs() < 1e-6,
                "{p}: {} {} vs {m} {sd}",
                mean[p],
                std[p]
            );
        }
        let summary = stats.raw_summary().unwrap();
        assert_eq!((summary.n_events, summary.time_mean_min_max), (3, [8.0, 7.0, 9.0]));
    }

    #[test]
    fn saturated_pixels_are_integrated_over_the_whole_pulse() {
        let n = 50;
        let mut adc = vec![0.0f32; n];
        for (i, v) in adc.iter_mut().enumerate().take(30).skip(10) {
            *v = if (12..22).contains(&i) { 3500.0 } else { 1000.0 };
        }
        let r1: Vec<f32> = adc.iter().map(|a| a / 20.0).collect();
        let mut image = vec![1.0f32];
        let mut peak = vec![0.0f32];
        assert!(correct_saturation(&adc, &r1, n, 4.0, &mut image, &mut peak));
        assert_eq!(image[0], r1[10..=30].iter().sum::<f32>());
        assert_eq!(peak[0], (10.0 / 2.0 + 12.0) * 4.0);
    }
}
