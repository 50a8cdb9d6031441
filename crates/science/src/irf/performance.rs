//! Performance figures from reconstructed Monte Carlo, as sst1mpipe's `mc_performance` computes
//! them (ctaplot's resolutions, scikit-learn's ROC, its significance-optimised gammaness cuts,
//! time to detection) on top of pyirf's sensitivity ([`super::sensitivity_curve`]). Pure
//! functions of arrays; the `performance` stage does the reading and writing.
use super::{bin_index, li_ma_significance, percentile, relative_sensitivity, CutBin, DetectionCriteria};

/// One true-energy bin of a resolution curve.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ResolutionBin {
    pub low: f64,
    pub high: f64,
    pub n_events: usize,
    /// ctaplot: the 68.27th percentile of |x| (energy: |E_reco − E_true| / E_true; angle: θ, deg).
    pub resolution: f64,
    /// ctaplot's relative bias ("s1"): median of (E_reco − E_true) / E_true (NaN for angles).
    pub bias: f64,
}

/// The 68.27% containment (ctaplot's `percentile=68.27`).
pub const CONTAINMENT: f64 = 68.27;

fn binned(values: &[f64], bins: &[f64], edges: &[f64]) -> Vec<Vec<f64>> {
    let mut per = vec![Vec::new(); edges.len().saturating_sub(1)];
    for (&v, &b) in values.iter().zip(bins) {
        if let Some(i) = bin_index(edges, b) {
            per[i].push(v);
        }
    }
    per
}

/// Energy resolution and bias per true-energy bin; NaN where a bin has no events (sst1mpipe
/// turns zeros into NaN).
pub fn energy_resolution(true_e: &[f64], reco_e: &[f64], edges: &[f64]) -> Vec<ResolutionBin> {
    let rel: Vec<f64> = true_e.iter().zip(reco_e).map(|(t, r)| (r - t) / t).collect();
    binned(&rel, true_e, edges)
        .into_iter()
        .enumerate()
        .map(|(i, mut v)| {
            let n_events = v.len();
            let bias = percentile(&mut v, 50.0);
            let mut abs: Vec<f64> = v.iter().map(|x| x.abs()).collect();
            ResolutionBin {
                low: edges[i],
                high: edges[i + 1],
                n_events,
                resolution: percentile(&mut abs, CONTAINMENT),
                bias,
            }
        })
        .collect()
}

/// Angular resolution (68.27% containment of θ, deg) per true-energy bin.
pub fn angular_resolution(true_e: &[f64], theta_deg: &[f64], edges: &[f64]) -> Vec<ResolutionBin> {
    binned(theta_deg, true_e, edges)
        .into_iter()
        .enumerate()
        .map(|(i, mut v)| ResolutionBin {
            low: edges[i],
            high: edges[i + 1],
            n_events: v.len(),
            resolution: percentile(&mut v, CONTAINMENT),
            bias: f64::NAN,
        })
        .collect()
}

/// A ROC curve: thresholds in decreasing order, with the false- and true-positive rates of
/// `score >= threshold` (scikit-learn's `roc_curve` with `drop_intermediate=False`; the first
/// point is (0, 0) at threshold +∞), and the area under it.
#[derive(Clone, Debug, PartialEq)]
pub struct Roc {
    pub threshold: Vec<f64>,
    pub false_positive_rate: Vec<f64>,
    pub true_positive_rate: Vec<f64>,
    pub auc: f64,
}

pub fn roc_curve(positive: &[f64], negative: &[f64]) -> Roc {
    let mut all: Vec<(f64, bool)> = positive
        .iter()
        .map(|&s| (s, true))
        .chain(negative.iter().map(|&s| (s, false)))
        .filter(|(s, _)| !s.is_nan())
        .collect();
    all.sort_by(|a, b| b.0.total_cmp(&a.0));
    let (np, nn) = (all.iter().filter(|a| a.1).count() as f64, all.iter().filter(|a| !a.1).count() as f64);
    let mut roc =
        Roc { threshold: vec![f64::INFINITY], false_positive_rate: vec![0.0], true_positive_rate: vec![0.0], auc: 0.0 };
    let (mut tp, mut fp) = (0.0, 0.0);
    let mut i = 0;
    while i < all.len() {
        let s = all[i].0;
        while i < all.len() && all[i].0 == s {
            if all[i].1 {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            i += 1;
        }
        roc.threshold.push(s);
        roc.false_positive_rate.push(if nn > 0.0 { fp / nn } else { f64::NAN });
        roc.true_positive_rate.push(if np > 0.0 { tp / np } else { f64::NAN });
    }
    let (f, t) = (&roc.false_positive_rate, &roc.true_positive_rate);
    roc.auc = (1..f.len()).map(|k| (f[k] - f[k - 1]) * (t[k] + t[k - 1]) / 2.0).sum();
    roc
}

/// Events of one particle after selection: reco energy, gammaness, angular distance to the
/// source (deg), weight.
pub struct ScoredEvents<'a> {
    pub reco_energy: &'a [f64],
    pub gammaness: &'a [f64],
    pub theta_deg: &'a [f64],
    pub weight: &'a [f64],
}

/// sst1mpipe's significance-optimised gammaness cut per reco-energy bin
/// (`calculate_gammaness_cuts_significance`): for each candidate cut, signal = Σw of gammas
/// within `theta_cut_deg` passing it, background = Σw of protons within `bkg_radius_deg` of the
/// source passing it, scaled to the on region (θ²/r²) and to `n_off` off regions, and its Li &
/// Ma significance (α = 1/n_off; gammapy's WStat √TS, which sst1mpipe uses, is the same). The
/// best cut is the first maximum of that scan or, with `fit` (`analysis.significance_fit`), of
/// the scan smoothed by scipy's GCV smoothing spline ([`super::smoothing`]). As sst1mpipe, the
/// cut is kept only when the raw maximum has both signal and background; otherwise the bin gets
/// NaN (no cut can be chosen).
#[allow(clippy::too_many_arguments)]
pub fn significance_cuts(
    gammas: &ScoredEvents,
    protons: &ScoredEvents,
    edges: &[f64],
    candidates: &[f64],
    theta_cut_deg: f64,
    bkg_radius_deg: f64,
    n_off: f64,
    fit: bool,
) -> Vec<CutBin> {
    let nb = edges.len() - 1;
    let nc = candidates.len();
    // Weighted counts passing each candidate: cumulative over candidates (cuts increase).
    let mut sig = vec![0.0; nb * nc];
    let mut bkg = vec![0.0; nb * nc];
    let mut n_g = vec![0usize; nb];
    let fill = |ev: &ScoredEvents, radius: f64, out: &mut Vec<f64>, counts: Option<&mut Vec<usize>>| {
        let mut counts = counts;
        for i in 0..ev.reco_energy.len() {
            let Some(b) = bin_index(edges, ev.reco_energy[i]) else { continue };
            if let Some(c) = counts.as_deref_mut() {
                c[b] += 1;
            }
            if ev.theta_deg[i].is_nan() || ev.theta_deg[i] >= radius {
                continue;
            }
            // Passes every candidate below its gammaness: add to those.
            let k = candidates.partition_point(|&c| c < ev.gammaness[i]);
            for c in 0..k {
                out[b * nc + c] += ev.weight[i];
            }
        }
    };
    fill(gammas, theta_cut_deg, &mut sig, Some(&mut n_g));
    fill(protons, bkg_radius_deg, &mut bkg, None);
    let scale = (theta_cut_deg / bkg_radius_deg).powi(2);
    // numpy's argmax: the first maximum (NaN counts as the maximum, as in numpy).
    let argmax = |v: &[f64]| -> usize {
        let mut best = 0;
        for (i, &x) in v.iter().enumerate() {
            if x.is_nan() {
                return i;
            }
            if x > v[best] {
                best = i;
            }
        }
        best
    };
    (0..nb)
        .map(|b| {
            let (s, bg): (Vec<f64>, Vec<f64>) = (0..nc).map(|c| (sig[b * nc + c], bkg[b * nc + c] * scale)).unzip();
            let z: Vec<f64> =
                s.iter().zip(&bg).map(|(&s, &bg)| li_ma_significance(s + bg, bg * n_off, 1.0 / n_off)).collect();
            let raw = argmax(&z);
            let chosen = if fit {
                super::smoothing::gcv_smoothed(candidates, &z).map(|g| argmax(&g)).unwrap_or(raw)
            } else {
                raw
            };
            let cut = if s[raw] > 0.0 && bg[raw] > 0.0 { candidates[chosen] } else { f64::NAN };
            CutBin { low: edges[b], high: edges[b + 1], n_events: n_g[b], cut }
        })
        .collect()
}

/// The shortest time (s) in which a source giving `signal_rate` excess events per second over
/// `background_rate` (per second, in the on region; `alpha` = on/off exposure ratio) meets
/// `criteria`, searched up to `max_s`; `None` if it never does. The rates scale linearly with
/// time, so the criteria are monotonic in it: bisection to 0.1% of the answer.
pub fn time_to_detection(
    signal_rate: f64,
    background_rate: f64,
    alpha: f64,
    criteria: &DetectionCriteria,
    max_s: f64,
) -> Option<f64> {
    if signal_rate.is_nan() || signal_rate <= 0.0 || background_rate < 0.0 {
        return None;
    }
    let detected = |t: f64| {
        let (s, b) = (signal_rate * t, background_rate * t);
        relative_sensitivity(s + b, b / alpha, alpha, criteria) <= 1.0
    };
    if !detected(max_s) {
        return None;
    }
    let (mut lo, mut hi) = (0.0, max_s);
    while hi - lo > 1e-3 * hi {
        let mid = 0.5 * (lo + hi);
        if detected(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roc_of_separated_and_mixed_scores() {
        let r = roc_curve(&[0.9, 0.8, 0.7], &[0.3, 0.2]);
        assert_eq!(r.auc, 1.0);
        let r = roc_curve(&[0.5, 0.5], &[0.5, 0.5]);
        assert_eq!(r.auc, 0.5);
        assert_eq!(r.threshold.len(), 2);
        // sklearn: y=[1,1,0,0,1,0], s=[.9,.4,.35,.8,.1,.2] → AUC 0.5556
        let r = roc_curve(&[0.9, 0.4, 0.1], &[0.35, 0.8, 0.2]);
        assert!((r.auc - 5.0 / 9.0).abs() < 1e-12, "{}", r.auc);
    }

    #[test]
    fn resolutions_follow_ctaplot() {
        let t = [1.0, 1.0, 1.0, 1.0, 10.0];
        let r = [1.1, 0.9, 1.2, 1.0, 20.0];
        let res = energy_resolution(&t, &r, &[0.5, 2.0, 50.0]);
        assert_eq!(res[0].n_events, 4);
        // |rel| = [0.1, 0.1, 0.2, 0] → 68.27th percentile (numpy linear) = 0.1 + 0.0481·0.1
        assert!((res[0].resolution - (0.1 + (0.6827 * 3.0 - 2.0) * 0.1)).abs() < 1e-12);
        assert!((res[0].bias - 0.05).abs() < 1e-12);
        assert_eq!(res[1].bias, 1.0);
    }

    #[test]
    fn detection_time_scales_with_flux() {
        let c = crate::irf::STANDARD_DETECTION;
        let t1 = time_to_detection(0.01, 0.1, 0.2, &c, 1e7).unwrap();
        let t4 = time_to_detection(0.04, 0.1, 0.2, &c, 1e7).unwrap();
        assert!(t4 < t1 / 4.0, "a brighter source needs less than a quarter of the time: {t1} {t4}");
        let s = t1 * 0.01;
        let b = t1 * 0.1;
        assert!((li_ma_significance(s + b, b / 0.2, 0.2) - 5.0).abs() < 0.02 || s >= 10.0);
        assert_eq!(time_to_detection(0.0, 0.1, 0.2, &c, 1e7), None);
    }
}
