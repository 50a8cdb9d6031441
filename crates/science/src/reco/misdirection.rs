//! sst1mpipe's event classes: events ranked by how far their reconstructed direction is
//! expected to be from the true one (the *misdirection*), so that IRFs and DL3 can be made per
//! class of direction quality. A random forest (trained by the `train-misdirection` stage)
//! predicts log10 of the misdirection from image parameters; here live the pure parts:
//!
//! * [`misdirection_deg`]: the training target, the angle between true and reconstructed
//!   directions (astropy's `angular_separation`, as sst1mpipe's `calculate_misdirection`).
//! * [`class_edges`]: per reconstructed-energy bin, the 25th, 50th and 75th percentiles of the
//!   predicted log misdirection, bracketed by −∞ and +∞ (sst1mpipe's `get_evttype_edges`; a bin
//!   without events gets NaN edges), with numpy's default (linear) percentile.
//! * [`classify`]: the class of each event, 1 (best quarter) to 4, 0 for events outside every
//!   energy bin or without a prediction (sst1mpipe's `classify_evt_types`: strict energy
//!   bounds, `edge_j < x <= edge_{j+1}`).
//!
//! Energy bins are sst1mpipe's `logspace(log_energy_min_tev, log_energy_max_tev,
//! n_energy_bins)` edges ([`energy_edges`], numpy's arithmetic) and bin centres ctaplot's
//! `logbin_mean`. No I/O: the `event-classes` stage reads and writes.
use crate::astro::angular_separation_deg;

/// The percentiles sst1mpipe's event-classes script splits at.
pub const PERCENTILES: [f64; 3] = [25.0, 50.0, 75.0];
/// Edges per energy bin: −∞, the three percentiles, +∞.
pub const N_EDGES: usize = PERCENTILES.len() + 2;

/// The angle (deg) between the true and the reconstructed direction (alt/az in degrees).
pub fn misdirection_deg(true_alt: f64, true_az: f64, reco_alt: f64, reco_az: f64) -> f64 {
    angular_separation_deg(true_az, true_alt, reco_az, reco_alt)
}

/// numpy's `logspace(lo, hi, n)`: 10 to the power of `linspace(lo, hi, n)` (start + i·step,
/// the last one exactly `hi`).
pub fn energy_edges(lo: f64, hi: f64, n: usize) -> Vec<f64> {
    if n == 0 {
        return Vec::new();
    }
    if n == 1 {
        return vec![10f64.powf(lo)];
    }
    let step = (hi - lo) / (n - 1) as f64;
    (0..n).map(|i| if i == n - 1 { hi } else { i as f64 * step + lo }).map(|y| 10f64.powf(y)).collect()
}

/// ctaplot's `logbin_mean`: the geometric centre of each bin, 10^((log a + log b)/2).
pub fn bin_centres(edges: &[f64]) -> Vec<f64> {
    edges.windows(2).map(|w| 10f64.powf((w[0].log10() + w[1].log10()) / 2.0)).collect()
}

/// numpy's `percentile(values, q)` with the default linear method, on sorted finite values
/// (numpy's lerp, including its form for fractions ≥ 0.5, so the result is bit for bit).
fn percentile_sorted(sorted: &[f64], q: f64) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    let rank = q / 100.0 * (n - 1) as f64;
    let below = (rank.floor() as usize).min(n - 1);
    let above = (below + 1).min(n - 1);
    let t = rank - below as f64;
    let (a, b) = (sorted[below], sorted[above]);
    let diff = b - a;
    if t >= 0.5 {
        b - diff * (1.0 - t)
    } else {
        a + diff * t
    }
}

/// The class edges per energy bin of `edges` (the bins between consecutive edges): events with
/// `low < reco_energy < high` (strict, as sst1mpipe) give the percentiles of their predicted
/// log misdirection. sst1mpipe's percentiles run over every event in the bin; a NaN among them
/// would make numpy's result NaN, so the same holds here.
pub fn class_edges(edges: &[f64], reco_energy: &[f64], log_misdirection: &[f64]) -> Vec<[f64; N_EDGES]> {
    edges
        .windows(2)
        .map(|w| {
            let mut in_bin: Vec<f64> = reco_energy
                .iter()
                .zip(log_misdirection)
                .filter(|(&e, _)| e > w[0] && e < w[1])
                .map(|(_, &m)| m)
                .collect();
            if in_bin.is_empty() {
                return [f64::NAN; N_EDGES];
            }
            if in_bin.iter().any(|m| m.is_nan()) {
                let mut row = [f64::NAN; N_EDGES];
                row[0] = f64::NEG_INFINITY;
                row[N_EDGES - 1] = f64::INFINITY;
                return row;
            }
            in_bin.sort_by(f64::total_cmp);
            let mut row = [f64::NEG_INFINITY; N_EDGES];
            for (slot, q) in row[1..=PERCENTILES.len()].iter_mut().zip(PERCENTILES) {
                *slot = percentile_sorted(&in_bin, q);
            }
            row[N_EDGES - 1] = f64::INFINITY;
            row
        })
        .collect()
}

/// The event class of each event: for the energy bin `low < E < high` containing it, the `j`
/// (1-based) with `edge[j-1] < log_misdirection <= edge[j]`; 0 when no bin or edge pair holds it
/// (NaN prediction or energy, energy outside the bins, a bin without edges).
pub fn classify(
    lows: &[f64],
    highs: &[f64],
    edges: &[[f64; N_EDGES]],
    reco_energy: &[f64],
    log_misdirection: &[f64],
) -> Vec<i64> {
    reco_energy
        .iter()
        .zip(log_misdirection)
        .map(|(&e, &m)| {
            // sst1mpipe loops over every bin and every class, the last match winning; bins do
            // not overlap and classes are disjoint, so the first match is the same one.
            for ((&lo, &hi), row) in lows.iter().zip(highs).zip(edges) {
                if e > lo && e < hi {
                    for j in 0..N_EDGES - 1 {
                        if m > row[j] && m <= row[j + 1] {
                            return j as i64 + 1;
                        }
                    }
                }
            }
            0
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_numpys_linear_ones() {
        // numpy.percentile([1, 2, 3, 4], [25, 50, 75]) = [1.75, 2.5, 3.25]
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile_sorted(&v, 25.0), 1.75);
        assert_eq!(percentile_sorted(&v, 50.0), 2.5);
        assert_eq!(percentile_sorted(&v, 75.0), 3.25);
        // numpy.percentile([0.1, 0.7, 0.2], 75) = 0.44999999999999996 (lerp from above)
        let mut w = [0.1, 0.7, 0.2];
        w.sort_by(f64::total_cmp);
        assert_eq!(percentile_sorted(&w, 75.0), 0.44999999999999996);
        assert_eq!(percentile_sorted(&[3.0], 50.0), 3.0);
    }

    #[test]
    fn energy_edges_are_numpys_logspace() {
        let e = energy_edges(-1.0, 3.0, 21);
        assert_eq!(e.len(), 21);
        assert_eq!(e[0], 0.1);
        assert_eq!(e[20], 1000.0);
        assert_eq!(e[5], 1.0);
        // numpy.logspace(-1, 3, 21)[1] = 0.15848931924611134
        assert_eq!(e[1], 0.15848931924611134);
        let c = bin_centres(&e);
        assert_eq!(c.len(), 20);
        assert!((c[0] - (0.1f64 * 0.15848931924611134).sqrt()).abs() < 1e-15);
    }

    #[test]
    fn classes_split_each_energy_bin_into_quarters() {
        let edges = [1.0, 10.0, 100.0];
        // 8 events in the first bin, log misdirection 0..7; one in the second; one outside.
        let mut e: Vec<f64> = vec![2.0; 8];
        let mut m: Vec<f64> = (0..8).map(f64::from).collect();
        e.push(50.0);
        m.push(-1.0);
        e.push(1000.0);
        m.push(0.0);
        let table = class_edges(&edges, &e, &m);
        assert_eq!(table[0], [f64::NEG_INFINITY, 1.75, 3.5, 5.25, f64::INFINITY]);
        assert_eq!(table[1][2], -1.0);
        let classes = classify(&edges[..2], &edges[1..], &table, &e, &m);
        assert_eq!(classes, vec![1, 1, 2, 2, 3, 3, 4, 4, 1, 0]);
        // A bin without events has NaN edges: nothing is classified in it.
        let empty = class_edges(&[1.0, 2.0], &[5.0], &[0.0]);
        assert!(empty[0].iter().all(|x| x.is_nan()));
        assert_eq!(classify(&[1.0], &[2.0], &empty, &[1.5], &[0.0]), vec![0]);
        // A NaN prediction is class 0.
        assert_eq!(classify(&edges[..2], &edges[1..], &table, &[2.0], &[f64::NAN]), vec![0]);
    }

    #[test]
    fn misdirection_is_the_angle_between_directions() {
        assert!((misdirection_deg(70.0, 180.0, 71.0, 180.0) - 1.0).abs() < 1e-12);
        assert!(misdirection_deg(70.0, 10.0, 70.0, 10.0).abs() < 1e-12);
    }
}
