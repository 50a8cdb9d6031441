//! sst1mpipe's stereo reconstruction at DL2 (`stereo_reconstruction`): each telescope's
//! random forests (trained on stereo DL1) give an energy, a gammaness and a disp; the event's
//! values are their averages weighted by a DL1 column (`analysis.stereo_reco_weights`, the
//! intensity in sst1mpipe's configs), and its direction the weighted average of the two
//! telescopes' source positions for the pair of disp signs that brings them closest (a
//! MARS-like choice among ++, −−, −+, +−, in that order, the first smallest winning, as pandas'
//! `idxmin`).
//!
//! The spreads are sst1mpipe's: `var` is the unweighted sample variance of the two values
//! (pandas' ddof = 1: (a − b)²/2), `wvar` the weighted one (Σ w (x − mean)² / Σ w), and the
//! energy's are propagated from log10 E to E (× (ln 10 · E)²). They feed its stereo quality cuts
//! (`stereo_relative_std_reco_energy_cut` on √var_reco_energy / reco_energy,
//! `stereo_std_gammaness_cut` on √var_gammaness, `stereo_delta_disp_cut_deg` on the closest
//! distance), which sst1mpipe applies when it loads stereo DL2 ([`StereoCuts`]).
//!
//! Directions are averaged in alt/az as sst1mpipe does (the azimuths already wrapped to one
//! side of north when the telescopes point near it). Pure functions: no I/O.

/// One telescope's reconstruction of an event.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TelescopeReco {
    pub log10_energy: f64,
    pub gammaness: f64,
    /// The value of the weighting column (1 when the config gives none).
    pub weight: f64,
    /// The source direction (alt, az in degrees) with disp sign +1 and with −1.
    pub direction_plus: (f64, f64),
    pub direction_minus: (f64, f64),
}

/// The combined reconstruction of an event seen by two telescopes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StereoReco {
    pub log10_energy: f64,
    pub reco_energy: f64,
    pub var_reco_energy: f64,
    pub wvar_reco_energy: f64,
    pub gammaness: f64,
    pub var_gammaness: f64,
    pub wvar_gammaness: f64,
    /// The angular distance (rad) between the two telescopes' directions of the chosen signs.
    pub min_distance_rad: f64,
    /// The chosen signs, first telescope then second: "pp", "mm", "mp" or "pm".
    pub best_sign_combination: &'static str,
    pub alt_deg: f64,
    pub az_deg: f64,
}

/// Weighted mean, sample variance (ddof 1) and weighted variance of two values.
fn average(a: f64, b: f64, wa: f64, wb: f64) -> (f64, f64, f64) {
    let mean = (a * wa + b * wb) / (wa + wb);
    let unweighted = (a + b) / 2.0;
    let var = ((a - unweighted).powi(2) + (b - unweighted).powi(2)) / (2.0 - 1.0);
    let wvar = (wa * (a - mean).powi(2) + wb * (b - mean).powi(2)) / (wa + wb);
    (mean, var, wvar)
}

/// astropy's `angular_separation` (Vincenty) of two (alt, az) directions in degrees, in rad.
fn separation_rad((alt1, az1): (f64, f64), (alt2, az2): (f64, f64)) -> f64 {
    crate::astro::angular_separation_deg(az1, alt1, az2, alt2).to_radians()
}

/// Combines two telescopes' reconstructions (see the module doc); None when a value is not
/// finite or the weights do not add up to a positive number.
pub fn combine(first: &TelescopeReco, second: &TelescopeReco) -> Option<StereoReco> {
    let values =
        [first.log10_energy, second.log10_energy, first.gammaness, second.gammaness, first.weight, second.weight];
    if values.iter().any(|v| !v.is_finite()) || first.weight + second.weight <= 0.0 {
        return None;
    }
    let (wa, wb) = (first.weight, second.weight);
    let (log_e, var_log_e, wvar_log_e) = average(first.log10_energy, second.log10_energy, wa, wb);
    let (gammaness, var_gammaness, wvar_gammaness) = average(first.gammaness, second.gammaness, wa, wb);
    let energy = 10f64.powf(log_e);
    let jacobian = (std::f64::consts::LN_10 * energy).powi(2);
    let combinations = [
        ("pp", first.direction_plus, second.direction_plus),
        ("mm", first.direction_minus, second.direction_minus),
        ("mp", first.direction_minus, second.direction_plus),
        ("pm", first.direction_plus, second.direction_minus),
    ];
    let mut best: Option<(usize, f64)> = None;
    for (k, (_, a, b)) in combinations.iter().enumerate() {
        let d = separation_rad(*a, *b);
        if d.is_finite() && best.is_none_or(|(_, m)| d < m) {
            best = Some((k, d));
        }
    }
    let (k, min_distance_rad) = best?;
    let (best_sign_combination, a, b) = combinations[k];
    Some(StereoReco {
        log10_energy: log_e,
        reco_energy: energy,
        var_reco_energy: jacobian * var_log_e,
        wvar_reco_energy: jacobian * wvar_log_e,
        gammaness,
        var_gammaness,
        wvar_gammaness,
        min_distance_rad,
        best_sign_combination,
        alt_deg: (a.0 * wa + b.0 * wb) / (wa + wb),
        az_deg: (a.1 * wa + b.1 * wb) / (wa + wb),
    })
}

/// sst1mpipe's stereo quality cuts (`stereo_var_cuts`); None is no cut (its default).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct StereoCuts {
    pub delta_disp_deg: Option<f64>,
    pub relative_std_reco_energy: Option<f64>,
    pub std_gammaness: Option<f64>,
}

impl StereoCuts {
    /// Whether an event passes every cut (strict `<`, as sst1mpipe; NaN fails a cut).
    pub fn passes(&self, r: &StereoReco) -> bool {
        self.delta_disp_deg.is_none_or(|c| r.min_distance_rad.to_degrees() < c)
            && self.relative_std_reco_energy.is_none_or(|c| r.var_reco_energy.sqrt() / r.reco_energy < c)
            && self.std_gammaness.is_none_or(|c| r.var_gammaness.sqrt() < c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_and_spreads_are_sst1mpipes() {
        let a = TelescopeReco {
            log10_energy: 0.0,
            gammaness: 0.9,
            weight: 300.0,
            direction_plus: (70.0, 180.0),
            direction_minus: (69.0, 181.0),
        };
        let b = TelescopeReco {
            log10_energy: 0.2,
            gammaness: 0.7,
            weight: 100.0,
            direction_plus: (68.0, 178.0),
            direction_minus: (70.1, 180.1),
        };
        let r = combine(&a, &b).unwrap();
        assert!((r.log10_energy - 0.05).abs() < 1e-12);
        // pandas: var of [0, 0.2] with ddof 1 is 0.02; weighted: (300·0.05² + 100·0.15²)/400.
        let jacobian = (std::f64::consts::LN_10 * 10f64.powf(0.05)).powi(2);
        assert!((r.var_reco_energy - jacobian * 0.02).abs() < 1e-12);
        assert!((r.wvar_reco_energy - jacobian * 0.0075).abs() < 1e-12);
        assert!((r.gammaness - 0.85).abs() < 1e-12 && (r.var_gammaness - 0.02).abs() < 1e-12);
        // The closest pair is a's + and b's −.
        assert_eq!(r.best_sign_combination, "pm");
        assert!((r.alt_deg - (70.0 * 3.0 + 70.1) / 4.0).abs() < 1e-12);
        assert!((r.az_deg - (180.0 * 3.0 + 180.1) / 4.0).abs() < 1e-12);
        assert!((r.min_distance_rad.to_degrees() - 0.1).abs() < 0.05);
        let cuts = StereoCuts { delta_disp_deg: Some(0.05), ..Default::default() };
        assert!(!cuts.passes(&r));
        assert!(StereoCuts { std_gammaness: Some(0.15), ..Default::default() }.passes(&r));
        assert!(!StereoCuts { std_gammaness: Some(0.14), ..Default::default() }.passes(&r));
        assert!(combine(&a, &TelescopeReco { gammaness: f64::NAN, ..b }).is_none());
    }
}
