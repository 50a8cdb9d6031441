//! The DigiCam electronics of a simulated camera: how photoelectron waveforms become the raw
//! data an SST-1M camera writes (R0), and the per-pixel truth its calibration table holds.
//!
//! What R0 is made of, per pixel p and sample s:
//! `ADC = round(B_p + g_p·(λ + w_s))`, clamped to the 12-bit range, where `w` is the
//! simulator's waveform (photoelectrons per sample, night-sky mean removed, electronic noise
//! in it), `λ` the night-sky mean per sample, `B_p` the electronic baseline and `g_p` the
//! gain in ADC per photoelectron of integrated charge: the calibration table's `dc_to_pe`
//! times the voltage-drop factor sst1mpipe derives from the pedestal variance at this
//! night-sky level (so the calibration, applied as sst1mpipe applies it, gives back `w`).
//! DigiCam's own baseline (`hiGain.waveforms.baselines`, in 1/16 ADC) is its running estimate
//! of the mean, `16·(B_p + g_p·λ)` with a small jitter. A pixel whose calibration failed
//! (`calib_flag` 0) is dead: its baseline and a little noise, no light, which sst1mpipe's
//! dynamic dead-pixel search also finds. The trigger input is the sum of three pixels'
//! baseline-subtracted samples (432 patches), clipped to a byte, and the patch outputs the bits
//! of the patches above threshold: they have the size and texture of the real ones, and the
//! analysis does not read them.
//!
//! Everything is a pure function of the seed: the same seed, the same camera.
use crate::image::calibrate::voltage_drop_factor;
use crate::sim::rng::Rng;

/// 12-bit digitiser.
pub const ADC_MAX: i16 = 4095;
/// Trigger patches of three pixels.
pub const PIXELS_PER_PATCH: usize = 3;
/// A patch fires above this many ADC counts (sum of its three pixels).
const PATCH_THRESHOLD_ADC: i32 = 120;

/// One telescope's camera as the simulation builds it.
#[derive(Clone, Debug)]
pub struct DigicamElectronics {
    pub tel_id: u16,
    /// Electronic baseline per pixel (ADC).
    pub baseline_adc: Vec<f64>,
    /// The calibration table's ADC per photoelectron (NaN where the calibration failed).
    pub dc_to_pe: Vec<f64>,
    /// 1 where the calibration is good, 0 where it failed (the pixel is dead).
    pub calib_flag: Vec<i64>,
    /// The voltage-drop factor at the night's sky level.
    pub voltage_drop: f64,
    /// Night-sky photoelectrons per sample (the mean the simulator removed).
    pub nsb_pe_per_sample: f64,
}

impl DigicamElectronics {
    /// A camera of `n_pixels` pixels for telescope `tel_id` (21 or 22 have a voltage-drop
    /// model), seeded: gains around 23 ADC/p.e. (σ 6%), baselines around 300 ADC (σ 15),
    /// `n_dead` pixels whose calibration failed. `pedestal_std_pe` is the per-sample standard
    /// deviation of the background in p.e. at this sky level; the voltage-drop factor is
    /// solved so that the variance sst1mpipe measures (ADC²) gives it back.
    pub fn new(
        tel_id: u16,
        n_pixels: usize,
        seed: u64,
        n_dead: usize,
        nsb_pe_per_sample: f64,
        pedestal_std_pe: f64,
    ) -> Self {
        let mut rng = Rng::new(seed, 0xD161_CA11 + tel_id as u64);
        let mut dc_to_pe: Vec<f64> = (0..n_pixels).map(|_| 23.0 * (1.0 + 0.06 * rng.normal())).collect();
        let baseline_adc = (0..n_pixels).map(|_| 300.0 + 15.0 * rng.normal()).collect();
        let mut calib_flag = vec![1i64; n_pixels];
        let mut dead = 0;
        while dead < n_dead.min(n_pixels) {
            let p = (rng.next_u64() % n_pixels as u64) as usize;
            if calib_flag[p] == 1 {
                calib_flag[p] = 0;
                dc_to_pe[p] = f64::NAN;
                dead += 1;
            }
        }
        let good: Vec<f64> = dc_to_pe.iter().copied().filter(|v| v.is_finite()).collect();
        let mean_gain = good.iter().sum::<f64>() / good.len().max(1) as f64;
        // The factor depends on the measured variance, which depends on the gain with the
        // factor: a fixed point, reached in a few steps (the factor varies slowly).
        let mut factor = 1.0;
        for _ in 0..20 {
            let variance = (mean_gain * factor * pedestal_std_pe).powi(2);
            factor = voltage_drop_factor(tel_id, variance).unwrap_or(1.0);
        }
        DigicamElectronics { tel_id, baseline_adc, dc_to_pe, calib_flag, voltage_drop: factor, nsb_pe_per_sample }
    }

    pub fn n_pixels(&self) -> usize {
        self.dc_to_pe.len()
    }

    /// The effective gain (ADC per p.e.) of pixel `p`, 0 for a dead pixel.
    pub fn gain(&self, p: usize) -> f64 {
        if self.calib_flag[p] == 1 {
            self.dc_to_pe[p] * self.voltage_drop
        } else {
            0.0
        }
    }

    /// Digitises one event: `pe` (pixel-major, `n_samples` per pixel) into `samples` (ADC,
    /// software pixel order) and DigiCam's `baselines_x16`; `index` seeds the event's
    /// rounding and baseline jitter.
    pub fn digitise(
        &self,
        pe: &[f32],
        n_samples: usize,
        seed: u64,
        index: u64,
        samples: &mut [i16],
        baselines_x16: &mut [i16],
    ) {
        let mut rng = Rng::new(seed ^ 0xAD_C0DE, index);
        for p in 0..self.n_pixels() {
            let g = self.gain(p);
            let level = self.baseline_adc[p] + g * self.nsb_pe_per_sample;
            let out = &mut samples[p * n_samples..(p + 1) * n_samples];
            if g == 0.0 {
                for o in out.iter_mut() {
                    *o = (self.baseline_adc[p] + 0.5 * rng.normal()).round() as i16;
                }
            } else {
                let gf = g as f32;
                let lf = level as f32 + 0.5;
                for (o, &w) in out.iter_mut().zip(&pe[p * n_samples..(p + 1) * n_samples]) {
                    *o = ((lf + gf * w).floor() as i32).clamp(0, ADC_MAX as i32) as i16;
                }
            }
            baselines_x16[p] = (16.0 * (level + 0.05 * rng.normal())).round() as i16;
        }
    }

    /// The trigger input (per patch and sample, patch-major, clipped to a byte) and the
    /// bit-packed patch outputs (patch × sample bits) of a digitised event.
    pub fn trigger(
        &self,
        samples: &[i16],
        baselines_x16: &[i16],
        n_samples: usize,
        input: &mut Vec<u8>,
        fired: &mut Vec<u8>,
    ) {
        let n_patches = self.n_pixels() / PIXELS_PER_PATCH;
        input.clear();
        fired.clear();
        fired.resize((n_patches * n_samples).div_ceil(8), 0);
        for patch in 0..n_patches {
            for s in 0..n_samples {
                let mut sum = 0i32;
                for p in patch * PIXELS_PER_PATCH..(patch + 1) * PIXELS_PER_PATCH {
                    sum += samples[p * n_samples + s] as i32 - (baselines_x16[p] as i32 + 8) / 16;
                }
                input.push(sum.clamp(0, 255) as u8);
                if sum > PATCH_THRESHOLD_ADC {
                    let bit = patch * n_samples + s;
                    fired[bit / 8] |= 1 << (bit % 8);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::calibrate::r0_to_r1;

    #[test]
    fn sst1mpipe_calibration_gives_back_the_photoelectrons() {
        let cam = DigicamElectronics::new(21, 1296, 7, 4, 0.2, 0.25);
        assert_eq!(cam.calib_flag.iter().filter(|&&f| f == 0).count(), 4);
        assert!(cam.voltage_drop > 0.5 && cam.voltage_drop < 2.0, "{}", cam.voltage_drop);
        let n = 50;
        let pe: Vec<f32> = (0..1296 * n).map(|i| ((i % n) as f32 - 20.0).max(0.0) * 0.5 - 0.2).collect();
        let (mut samples, mut baselines) = (vec![0i16; 1296 * n], vec![0i16; 1296]);
        cam.digitise(&pe, n, 3, 0, &mut samples, &mut baselines);
        let scale: Vec<f64> = cam.dc_to_pe.iter().map(|d| if d.is_finite() { *d } else { 23.0 }).collect();
        let mut r1 = vec![0f32; 1296 * n];
        r0_to_r1(&samples, &baselines, &scale, cam.voltage_drop, n, &mut r1);
        for p in (0..1296).filter(|&p| cam.calib_flag[p] == 1) {
            for s in 0..n {
                let (got, want) = (r1[p * n + s], pe[p * n + s]);
                // Rounding to ADC (±0.5/g) and DigiCam's baseline jitter.
                assert!((got - want).abs() < 0.05, "pixel {p} sample {s}: {got} vs {want}");
            }
        }
    }
}
