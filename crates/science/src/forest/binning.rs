//! Feature binning: each feature's float32 values are mapped to at most 256 ordered bins, so
//! that a node's best split is found from a 256-entry histogram instead of a sort.
//!
//! Edges are chosen from the training values themselves: with at most 256 distinct values,
//! one edge between each pair of neighbours (the same candidate thresholds an exact tree
//! considers); with more, the union of edges at equal-count quantiles (three quarters of the
//! budget) and edges equally spaced in value between the smallest and largest value (the rest),
//! each placed between two neighbouring distinct values. Quantiles alone would leave the sparse
//! tails in one or two bins: the brightest 0.5% of showers, which carry the highest energies,
//! could then not be told apart by intensity (measured on 200k simulated gammas: 18% worse
//! energy resolution than scikit-learn at 80–125 TeV; with the value-spaced edges every energy
//! bin is within 4% of scikit-learn). An edge `e` sends `x <= e` left, the rule
//! scikit-learn's trees use, so a split chosen on bins is an ordinary float32 threshold and the
//! stored model needs no bins at prediction time.

/// The largest number of bins per feature (bin indices fit in a `u8`).
pub const MAX_BINS: usize = 256;

/// Binned training data, column-major: `bins[f * n_rows + r]` is row `r`'s bin of feature `f`.
pub struct BinnedMatrix {
    pub n_rows: usize,
    pub n_features: usize,
    pub bins: Vec<u8>,
    /// Per feature, the upper edges of its bins but the last (`edges[f].len() + 1` bins).
    pub edges: Vec<Vec<f32>>,
}

/// A value strictly between `a < b` (their midpoint, or `a` where rounding reaches `b`).
fn between(a: f32, b: f32) -> f32 {
    let m = a + (b - a) / 2.0;
    if m < b && m >= a {
        m
    } else {
        a
    }
}

/// The bin edges of one feature's (finite) values.
pub fn feature_edges(values: &[f32]) -> Vec<f32> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable_by(f32::total_cmp);
    let mut distinct = sorted.clone();
    distinct.dedup();
    if distinct.len() <= MAX_BINS {
        return distinct.windows(2).map(|w| between(w[0], w[1])).collect();
    }
    let n = sorted.len();
    // The edge just above `at`: between it and the next larger value, if there is one.
    let edge_above = |at: f32| -> Option<f32> {
        let next = sorted[sorted.partition_point(|&v| v <= at).min(n - 1)];
        (next > at).then(|| between(at, next))
    };
    let n_quantile = MAX_BINS * 3 / 4;
    let mut edges: Vec<f32> = Vec::with_capacity(MAX_BINS);
    for k in 1..n_quantile {
        edges.extend(edge_above(sorted[k * n / n_quantile]));
    }
    let (lo, hi) = (sorted[0] as f64, sorted[n - 1] as f64);
    let n_uniform = MAX_BINS - n_quantile;
    for k in 1..n_uniform {
        let v = (lo + (hi - lo) * k as f64 / n_uniform as f64) as f32;
        // The largest value not above `v`, and the edge above it.
        let below = sorted[sorted.partition_point(|&x| x <= v).saturating_sub(1)];
        edges.extend(edge_above(below));
    }
    edges.sort_unstable_by(f32::total_cmp);
    edges.dedup();
    edges.truncate(MAX_BINS - 1);
    edges
}

/// The bin of `x` for `edges`: the first edge with `x <= edge`, or the last bin.
#[inline]
pub fn bin_of(edges: &[f32], x: f32) -> u8 {
    edges.partition_point(|&e| e < x) as u8
}

impl BinnedMatrix {
    /// Bins a row-major `n_rows × n_features` matrix of finite values.
    pub fn new(x: &[f32], n_features: usize) -> BinnedMatrix {
        assert!(n_features > 0 && x.len().is_multiple_of(n_features), "matrix shape");
        let n_rows = x.len() / n_features;
        let mut bins = vec![0u8; n_rows * n_features];
        let mut edges = Vec::with_capacity(n_features);
        let mut column = vec![0f32; n_rows];
        for f in 0..n_features {
            for (r, c) in column.iter_mut().enumerate() {
                *c = x[r * n_features + f];
            }
            let e = feature_edges(&column);
            for (r, &v) in column.iter().enumerate() {
                bins[f * n_rows + r] = bin_of(&e, v);
            }
            edges.push(e);
        }
        BinnedMatrix { n_rows, n_features, bins, edges }
    }

    pub fn column(&self, feature: usize) -> &[u8] {
        &self.bins[feature * self.n_rows..(feature + 1) * self.n_rows]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn few_distinct_values_get_one_edge_between_each_pair() {
        let e = feature_edges(&[3.0, 1.0, 2.0, 2.0, 1.0]);
        assert_eq!(e, vec![1.5, 2.5]);
        assert_eq!(bin_of(&e, 1.0), 0);
        assert_eq!(bin_of(&e, 1.5), 0); // x <= edge goes left
        assert_eq!(bin_of(&e, 2.0), 1);
        assert_eq!(bin_of(&e, 3.0), 2);
        assert_eq!(bin_of(&e, 99.0), 2);
    }

    #[test]
    fn many_values_get_quantile_edges_that_separate_the_data() {
        let values: Vec<f32> = (0..10_000).map(|i| ((i * 7919) % 10_000) as f32 * 0.001).collect();
        let e = feature_edges(&values);
        assert!(e.len() > 200 && e.len() < MAX_BINS, "{}", e.len());
        assert!(e.windows(2).all(|w| w[0] < w[1]));
        let mut counts = [0usize; MAX_BINS];
        for &v in &values {
            counts[bin_of(&e, v) as usize] += 1;
        }
        // Uniform data: quantile and value-spaced edges interleave; no bin is large.
        assert!(counts.iter().all(|&c| c <= 60), "{counts:?}");
    }

    #[test]
    fn a_sparse_tail_still_gets_its_own_bins() {
        // 10,000 values in [0, 1) and 20 far above: quantiles alone would give the tail one bin.
        let mut values: Vec<f32> = (0..10_000).map(|i| i as f32 / 10_000.0).collect();
        values.extend((0..20).map(|i| 10.0 + i as f32));
        let e = feature_edges(&values);
        let tail_edges = e.iter().filter(|&&x| x > 1.0).count();
        assert!(tail_edges >= 10, "{tail_edges} edges in the tail");
    }

    #[test]
    fn a_heavy_value_does_not_produce_duplicate_edges() {
        let mut values = vec![1.0f32; 5000];
        values.extend((0..5000).map(|i| 2.0 + i as f32));
        let e = feature_edges(&values);
        assert!(e.windows(2).all(|w| w[0] < w[1]));
        assert!(e[0] > 1.0 && e[0] < 2.0);
    }
}
