//! The DigiCam reference pulse: the single-photoelectron response of one pixel.
//!
//! A log-normal in time, `exp(−(ln((t − t0)/1 ns) − μ)² / 2σ²)` for `t > t0`, normalised to a
//! peak of 1. Its parameters were fitted to the sim_telarray SST-1M reference pulse (490 points
//! at 0.4 ns): peak at 14.65 ns (table: 14.8 ns on its 0.4 ns grid), FWHM 14.6 ns (table:
//! 13.6 ns), largest deviation 4.4% of the peak, rms 1.4%; the interop tests check it against that table. The model is smooth and has
//! no undershoot, which suits the simulator and the integration correction.

/// Start, log-mean and log-width of the pulse (ns, ln ns, dimensionless).
pub const T0_NS: f64 = -10.25;
pub const MU: f64 = 3.215;
pub const SIGMA: f64 = 0.246;

/// The tabulated reference pulse handed to the integration correction (as sst1mpipe's
/// `sst1m_array.h5` readout: 1520 points every 0.1 ns from t = 0).
pub const REFERENCE_SAMPLES: usize = 1520;
pub const REFERENCE_STEP_NS: f64 = 0.1;

pub fn reference_table() -> Vec<f64> {
    (0..REFERENCE_SAMPLES).map(|i| amplitude(i as f64 * REFERENCE_STEP_NS)).collect()
}

/// Time of the pulse maximum (ns): t0 + e^μ.
pub fn peak_time_ns() -> f64 {
    T0_NS + MU.exp()
}

/// Pulse amplitude at `t` ns, peak normalised to 1.
#[inline]
pub fn amplitude(t_ns: f64) -> f64 {
    let u = t_ns - T0_NS;
    if u <= 0.0 {
        return 0.0;
    }
    let z = u.ln() - MU;
    (-(z * z) / (2.0 * SIGMA * SIGMA)).exp()
}

/// ∫ amplitude dt over all t (ns) = e^(μ+σ²/2)·σ·√(2π) (substitute v = ln u).
pub fn area_ns() -> f64 {
    (MU + SIGMA * SIGMA / 2.0).exp() * SIGMA * (2.0 * std::f64::consts::PI).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_width_and_area() {
        let tp = peak_time_ns();
        assert!((tp - 14.65).abs() < 0.05, "{tp}");
        assert!((amplitude(tp) - 1.0).abs() < 1e-12);
        assert!(amplitude(tp - 0.5) < 1.0 && amplitude(tp + 0.5) < 1.0);
        // FWHM by scanning.
        let ts: Vec<f64> = (0..20000).map(|i| i as f64 * 0.01).collect();
        let above: Vec<&f64> = ts.iter().filter(|&&t| amplitude(t) >= 0.5).collect();
        let fwhm = *above.last().unwrap() - *above[0];
        // Closed form: e^μ·(e^(σ√(2 ln 2)) − e^(−σ√(2 ln 2))) = 14.61 ns.
        let h = SIGMA * (2.0 * 2f64.ln()).sqrt();
        let expected = MU.exp() * (h.exp() - (-h).exp());
        assert!((fwhm - expected).abs() < 0.02 && (fwhm - 14.61).abs() < 0.02, "{fwhm} vs {expected}");
        let numeric: f64 = ts.iter().map(|&t| amplitude(t) * 0.01).sum();
        assert!((numeric - area_ns()).abs() < 1e-3 * area_ns(), "{numeric} vs {}", area_ns());
        assert_eq!(amplitude(T0_NS - 1.0), 0.0);
    }
}
