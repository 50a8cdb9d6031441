//! Charge extraction: ctapipe's LocalPeakWindowSum.
//!
//! For each pixel the window starts `shift` samples before the waveform's (first) maximum and
//! is `width` samples wide, clipped to the waveform. The charge is the window sum times the
//! integration correction; the peak time is the mean sample index weighted by the positive
//! samples in the window (the peak index if none is positive), in ns.

/// Integration window settings (sst1mpipe: width 7, shift 3 samples of 4 ns).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    pub width: usize,
    pub shift: usize,
    pub sample_ns: f64,
    /// Multiplies every charge (see [`integration_correction`]).
    pub correction: f64,
}

/// Charge and peak time of every pixel. `waveforms` is pixel-major: `n_pixels × n_samples`.
pub fn local_peak_window_sum(
    waveforms: &[f32],
    n_samples: usize,
    window: &Window,
    charge: &mut [f32],
    peak_time: &mut [f32],
) {
    let Window { width, shift, sample_ns, correction } = *window;
    assert_eq!(waveforms.len(), charge.len() * n_samples);
    assert_eq!(charge.len(), peak_time.len());
    for (pix, w) in waveforms.chunks_exact(n_samples).enumerate() {
        let peak = first_argmax(w);
        let start = peak.saturating_sub(shift);
        let end = (peak as isize - shift as isize + width as isize).clamp(0, n_samples as isize) as usize;
        let (mut sum, mut num, mut den) = (0.0f64, 0.0f64, 0.0f64);
        for (i, &v) in w[start..end.max(start)].iter().enumerate() {
            let v = v as f64;
            sum += v;
            let positive = if v > 0.0 { v } else { 0.0 };
            num += positive * (start + i) as f64;
            den += positive;
        }
        let t = if den > 0.0 { num / den } else { peak as f64 };
        charge[pix] = ((sum as f32) as f64 * correction) as f32;
        peak_time[pix] = (t * sample_ns) as f32;
    }
}

/// Index of the first maximum (numpy's argmax), branch-free over four interleaved lanes.
#[inline]
fn first_argmax(w: &[f32]) -> usize {
    let mut best = [f32::NEG_INFINITY; 4];
    let mut idx = [0usize; 4];
    let chunks = w.chunks_exact(4);
    let rest = chunks.remainder();
    for (c, chunk) in chunks.enumerate() {
        for lane in 0..4 {
            let v = chunk[lane];
            let better = v > best[lane];
            best[lane] = if better { v } else { best[lane] };
            idx[lane] = if better { 4 * c + lane } else { idx[lane] };
        }
    }
    let mut top = f32::NEG_INFINITY;
    let mut at = 0;
    for lane in 0..4 {
        if best[lane] > top || (best[lane] == top && idx[lane] < at) {
            top = best[lane];
            at = idx[lane];
        }
    }
    let base = w.len() - rest.len();
    for (i, &v) in rest.iter().enumerate() {
        if v > top {
            top = v;
            at = base + i;
        }
    }
    if top == f32::NEG_INFINITY {
        0
    } else {
        at
    }
}

/// ctapipe's integration correction: 1 / (fraction of the reference pulse, rebinned to the
/// camera's sampling, that falls in the window placed around the rebinned pulse's maximum).
/// `pulse` is sampled every `pulse_step_ns` from t = 0.
pub fn integration_correction(pulse: &[f64], pulse_step_ns: f64, sample_ns: f64, width: usize, shift: usize) -> f64 {
    let total_ns = pulse.len() as f64 * pulse_step_ns;
    // Bin edges 0, sample_ns, … < total_ns (as numpy.arange): n_edges − 1 bins.
    let n_edges = (total_ns / sample_ns).ceil() as usize;
    if n_edges < 2 {
        return 1.0;
    }
    let n_bins = n_edges - 1;
    let last_edge = (n_edges - 1) as f64 * sample_ns;
    let mut bins = vec![0.0f64; n_bins];
    let mut inside = 0.0;
    for (i, &a) in pulse.iter().enumerate() {
        let t = i as f64 * pulse_step_ns;
        if t < 0.0 || t > last_edge {
            continue;
        }
        let b = ((t / sample_ns) as usize).min(n_bins - 1);
        bins[b] += a;
        inside += a;
    }
    if inside == 0.0 {
        return 1.0;
    }
    // numpy's density=True: counts / total / bin width.
    for b in &mut bins {
        *b /= inside * sample_ns;
    }
    let mut peak = 0;
    for (i, &v) in bins.iter().enumerate() {
        if v > bins[peak] {
            peak = i;
        }
    }
    let start = peak.saturating_sub(shift);
    let end = (start + width).min(n_bins);
    if start >= end {
        return 1.0;
    }
    1.0 / bins[start..end].iter().map(|b| b * sample_ns).sum::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_sum_and_weighted_time() {
        let mut w = vec![0.0f32; 2 * 10];
        w[3..8].copy_from_slice(&[1.0, 2.0, 5.0, 2.0, 1.0]); // pixel 0, peak at 5
        w[10] = 4.0; // pixel 1, peak at sample 0 (window clipped at the start)
        w[11] = -1.0;
        let (mut q, mut t) = (vec![0.0; 2], vec![0.0; 2]);
        let window = Window { width: 3, shift: 1, sample_ns: 4.0, correction: 2.0 };
        local_peak_window_sum(&w, 10, &window, &mut q, &mut t);
        assert_eq!(q[0], 2.0 * 9.0);
        assert!((t[0] - 4.0 * (2.0 * 4.0 + 5.0 * 5.0 + 2.0 * 6.0) / 9.0).abs() < 1e-5);
        assert_eq!(q[1], 2.0 * 3.0);
        assert_eq!(t[1], 0.0);
    }

    #[test]
    fn argmax_takes_the_first_maximum_like_numpy() {
        let cases: [&[f32]; 6] = [
            &[1.0, 3.0, 3.0, 2.0, 3.0],
            &[5.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 5.0],
            &[0.0, 0.0, 0.0, 0.0, 0.0, 9.0],
            &[-3.0, -1.0, -2.0, -1.0],
            &[2.0],
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 7.0, 1.0],
        ];
        for w in cases {
            let mut naive = 0;
            for (i, &v) in w.iter().enumerate() {
                if v > w[naive] {
                    naive = i;
                }
            }
            assert_eq!(first_argmax(w), naive, "{w:?}");
        }
    }

    #[test]
    fn correction_of_a_pulse_fully_inside_is_one() {
        let mut pulse = vec![0.0; 100];
        pulse[42] = 1.0;
        assert!((integration_correction(&pulse, 0.1, 4.0, 7, 3) - 1.0).abs() < 1e-12);
    }
}
