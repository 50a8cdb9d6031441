//! Feature binning: each feature's float32 values are mapped to at most 256 ordered bins, so
//! that a node's best split is found from a 256-entry histogram instead of a sort.
//!
//! Edges are chosen from the training values themselves: with at most 256 distinct values,
//! one edge between each pair of neighbours (the same candidate thresholds an exact tree
//! considers); with more, edges at equal-count quantiles of the sorted values, each again placed
//! between two neighbouring distinct values. An edge `e` sends `x <= e` left, the rule
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
    let mut edges: Vec<f32> = Vec::with_capacity(MAX_BINS - 1);
    for k in 1..MAX_BINS {
        // The value at quantile k/MAX_BINS and the next larger distinct value.
        let at = sorted[k * n / MAX_BINS];
        let next = sorted[sorted.partition_point(|&v| v <= at).min(n - 1)];
        if next <= at {
            continue; // `at` is the largest value: nothing above it.
        }
        let e = between(at, next);
        if edges.last().is_none_or(|&last| e > last) {
            edges.push(e);
        }
    }
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
        assert_eq!(e.len(), MAX_BINS - 1);
        assert!(e.windows(2).all(|w| w[0] < w[1]));
        let mut counts = [0usize; MAX_BINS];
        for &v in &values {
            counts[bin_of(&e, v) as usize] += 1;
        }
        assert!(counts.iter().all(|&c| (30..=50).contains(&c)), "{counts:?}");
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
