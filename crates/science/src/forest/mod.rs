//! Random forests (regression and binary classification) the way scikit-learn's
//! `RandomForestRegressor`/`RandomForestClassifier` grow them, on binned features.
//!
//! Why our own: smartcore's classifier needs about 10 minutes for sst1mpipe's forests on 200k
//! events and has no probabilities; rafor is fast but its multi-threaded models depend on thread
//! timing (../shared/reference/crates.md §7). Here each tree is grown from its own random
//! stream (seed, tree index) and trees are collected in index order, so a model is the same byte
//! for byte whatever the number of threads.
//!
//! The algorithm is scikit-learn's, with one change: split thresholds are searched among at most
//! 255 bin edges per feature ([`binning`]) rather than among all distinct values.
//! * Bootstrap: n draws with replacement; a row drawn k times has weight k.
//! * At each node, features are visited in a random order until `max_features` non-constant ones
//!   have been evaluated (constant ones do not count, as in scikit-learn).
//! * The split maximises the weighted impurity decrease; for a 0/1 target, Gini and squared error
//!   choose the same split, so one criterion serves both tasks. `min_samples_leaf`,
//!   `min_samples_split` count distinct rows (scikit-learn's `n_node_samples`); leaves are pure
//!   nodes, nodes at `max_depth`, or nodes no valid split exists for.
//! * Leaves hold the weighted mean target: the regression value, or the fraction of class 1.
//! * Prediction casts features to float32 and goes left when `x <= threshold`, like scikit-learn.
//!
//! Trees are stored depth-first (the left child follows its parent) in 12-byte nodes.
pub mod binning;
pub mod format;

use crate::sim::rng::Rng;
use binning::BinnedMatrix;
use rayon::prelude::*;

/// What a forest predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    Regression,
    /// Two classes; the target is 0 or 1 (the index into the model's class list) and a leaf holds
    /// the fraction of class 1.
    Classification,
}

/// How many features a node examines.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MaxFeatures {
    All,
    Sqrt,
    Log2,
    Count(usize),
    Fraction(f64),
}

impl MaxFeatures {
    /// scikit-learn's rule: at least 1, at most all.
    pub fn resolve(self, n_features: usize) -> usize {
        let n = match self {
            MaxFeatures::All => n_features,
            MaxFeatures::Sqrt => (n_features as f64).sqrt() as usize,
            MaxFeatures::Log2 => (n_features as f64).log2() as usize,
            MaxFeatures::Count(c) => c,
            MaxFeatures::Fraction(f) => (f * n_features as f64) as usize,
        };
        n.clamp(1, n_features.max(1))
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct ForestParams {
    pub n_estimators: usize,
    /// `None`: grow until the other limits stop it.
    pub max_depth: Option<usize>,
    pub min_samples_split: usize,
    pub min_samples_leaf: usize,
    pub min_impurity_decrease: f64,
    pub max_features: MaxFeatures,
    pub bootstrap: bool,
    /// Bootstrap draws per tree (`None`: as many as rows).
    pub max_samples: Option<usize>,
    pub random_state: u64,
}

/// A tree node: an internal node (`feature < u32::MAX`) sends `x[feature] <= value` to the node
/// right after it and the rest to `right`; a leaf (`feature == LEAF`) predicts `value`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Node {
    pub feature: u32,
    pub value: f32,
    pub right: u32,
}

pub const LEAF: u32 = u32::MAX;

#[derive(Clone, Debug, PartialEq)]
pub struct Tree {
    pub nodes: Vec<Node>,
}

impl Tree {
    #[inline]
    pub fn predict(&self, row: &[f32]) -> f32 {
        let mut i = 0usize;
        loop {
            let node = self.nodes[i];
            if node.feature == LEAF {
                return node.value;
            }
            i = if row[node.feature as usize] <= node.value { i + 1 } else { node.right as usize };
        }
    }

    /// Adds this tree's prediction for each row of the row-major `rows` (`n` features) to
    /// `sums`. Eight walks go down the tree side by side, each taking the next row when it
    /// reaches a leaf: a walk is a chain of dependent loads, and eight independent chains
    /// overlap where one waits (1.2-1.4x as fast on sst1mpipe-sized forests). Each row gets
    /// exactly [`Tree::predict`]'s value.
    pub fn add_predictions(&self, rows: &[f32], n: usize, sums: &mut [f64]) {
        const WALKS: usize = 8;
        let n_rows = sums.len();
        assert!(rows.len() >= n_rows * n);
        let (mut node, mut row) = ([0usize; WALKS], [0usize; WALKS]);
        let mut active = 0u32;
        for (walk, r) in row.iter_mut().enumerate().take(n_rows) {
            (*r, active) = (walk, active | 1 << walk);
        }
        let mut next_row = WALKS.min(n_rows);
        while active != 0 {
            for walk in 0..WALKS {
                if active & (1 << walk) == 0 {
                    continue;
                }
                let at = self.nodes[node[walk]];
                if at.feature == LEAF {
                    sums[row[walk]] += at.value as f64;
                    if next_row < n_rows {
                        (row[walk], node[walk]) = (next_row, 0);
                        next_row += 1;
                    } else {
                        active &= !(1 << walk);
                    }
                } else {
                    let x = rows[row[walk] * n + at.feature as usize];
                    node[walk] = if x <= at.value { node[walk] + 1 } else { at.right as usize };
                }
            }
        }
    }

    pub fn n_leaves(&self) -> usize {
        self.nodes.iter().filter(|n| n.feature == LEAF).count()
    }

    /// The depth of the deepest leaf (the root is depth 0).
    pub fn depth(&self) -> usize {
        let mut deepest = 0;
        let mut stack = vec![(0usize, 0usize)];
        while let Some((i, d)) = stack.pop() {
            let n = self.nodes[i];
            if n.feature == LEAF {
                deepest = deepest.max(d);
            } else {
                stack.push((i + 1, d + 1));
                stack.push((n.right as usize, d + 1));
            }
        }
        deepest
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Forest {
    pub task: Task,
    pub n_features: usize,
    pub trees: Vec<Tree>,
}

/// Why a forest could not be trained.
#[derive(Debug, PartialEq)]
pub enum FitError {
    NoRows,
    NoFeatures,
    ShapeMismatch { values: usize, n_features: usize, targets: usize },
    NotFinite { row: usize, feature: usize },
    BadTarget { row: usize, value: f64 },
    NoTrees,
}

impl std::fmt::Display for FitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FitError::NoRows => write!(f, "no training rows"),
            FitError::NoFeatures => write!(f, "no features"),
            FitError::ShapeMismatch { values, n_features, targets } => {
                write!(f, "{values} values do not make {targets} rows of {n_features} features")
            }
            FitError::NotFinite { row, feature } => write!(f, "row {row}, feature {feature} is not finite"),
            FitError::BadTarget { row, value } => write!(f, "row {row}: target {value} is not a valid class index"),
            FitError::NoTrees => write!(f, "n_estimators must be at least 1"),
        }
    }
}

impl Forest {
    /// Trains a forest on a row-major `x` (`y.len()` rows × `n_features`). Uses the current
    /// rayon pool; the result does not depend on its size.
    pub fn fit(x: &[f32], y: &[f64], n_features: usize, task: Task, params: &ForestParams) -> Result<Forest, FitError> {
        if n_features == 0 {
            return Err(FitError::NoFeatures);
        }
        if y.is_empty() {
            return Err(FitError::NoRows);
        }
        if x.len() != y.len() * n_features {
            return Err(FitError::ShapeMismatch { values: x.len(), n_features, targets: y.len() });
        }
        if params.n_estimators == 0 {
            return Err(FitError::NoTrees);
        }
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(FitError::NotFinite { row: i / n_features, feature: i % n_features });
        }
        for (row, &value) in y.iter().enumerate() {
            let ok = match task {
                Task::Regression => value.is_finite(),
                Task::Classification => value == 0.0 || value == 1.0,
            };
            if !ok {
                return Err(FitError::BadTarget { row, value });
            }
        }
        let binned = BinnedMatrix::new(x, n_features);
        let grower = Grower { data: &binned, y, params, mtry: params.max_features.resolve(n_features) };
        let trees = (0..params.n_estimators).into_par_iter().map(|t| grower.grow(t as u64)).collect();
        Ok(Forest { task, n_features, trees })
    }

    /// The mean of the trees' predictions for one row (`row.len() == n_features`): the
    /// regression value, or the probability of class 1.
    pub fn predict_row(&self, row: &[f32]) -> f64 {
        let sum: f64 = self.trees.iter().map(|t| t.predict(row) as f64).sum();
        sum / self.trees.len() as f64
    }

    /// Predictions for a row-major matrix; rows containing a non-finite value give NaN.
    ///
    /// Rows are taken in blocks and each tree is walked for the whole block before the next,
    /// so a tree stays in cache; the sum over trees runs in tree order, as in [`predict_row`],
    /// so both give the same bits.
    ///
    /// [`predict_row`]: Forest::predict_row
    pub fn predict(&self, x: &[f32]) -> Vec<f64> {
        const BLOCK: usize = 512;
        let n = self.n_features;
        let mut out = vec![0.0f64; x.len() / n];
        out.par_chunks_mut(BLOCK).zip(x.par_chunks(n * BLOCK)).for_each(|(sums, block)| {
            for tree in &self.trees {
                tree.add_predictions(block, n, sums);
            }
            let n_trees = self.trees.len() as f64;
            for (sum, row) in sums.iter_mut().zip(block.chunks_exact(n)) {
                *sum = if row.iter().all(|v| v.is_finite()) { *sum / n_trees } else { f64::NAN };
            }
        });
        out
    }

    pub fn n_nodes(&self) -> usize {
        self.trees.iter().map(|t| t.nodes.len()).sum()
    }
}

/// Per-bin sums of a node's rows for one feature.
#[derive(Clone, Copy, Default)]
struct BinSums {
    rows: u32,
    weight: f64,
    weighted_y: f64,
}

/// Sums over a set of rows.
#[derive(Clone, Copy, Default)]
struct NodeSums {
    rows: usize,
    weight: f64,
    weighted_y: f64,
    weighted_y2: f64,
}

impl NodeSums {
    fn impurity(&self) -> f64 {
        let mean = self.weighted_y / self.weight;
        (self.weighted_y2 / self.weight - mean * mean).max(0.0)
    }
}

struct Split {
    feature: usize,
    /// Rows with bin <= `bin` go left.
    bin: u8,
    proxy: f64,
    left: NodeSums,
    right: NodeSums,
}

struct Grower<'a> {
    data: &'a BinnedMatrix,
    y: &'a [f64],
    params: &'a ForestParams,
    mtry: usize,
}

struct Pending {
    start: usize,
    end: usize,
    depth: usize,
    sums: NodeSums,
    /// The parent whose `right` must point at this node (for right children).
    patch: Option<usize>,
}

impl Grower<'_> {
    fn grow(&self, tree_index: u64) -> Tree {
        let n = self.data.n_rows;
        let mut rng = Rng::new(self.params.random_state, tree_index);
        let mut weight = vec![0f64; n];
        if self.params.bootstrap {
            let draws = self.params.max_samples.unwrap_or(n).max(1);
            for _ in 0..draws {
                weight[below(&mut rng, n)] += 1.0;
            }
        } else {
            weight.fill(1.0);
        }
        let mut rows: Vec<u32> = (0..n as u32).filter(|&r| weight[r as usize] > 0.0).collect();
        let weighted_y: Vec<f64> = weight.iter().zip(self.y).map(|(w, y)| w * y).collect();
        let mut root = NodeSums { rows: rows.len(), ..NodeSums::default() };
        for &r in &rows {
            let r = r as usize;
            root.weight += weight[r];
            root.weighted_y += weighted_y[r];
            root.weighted_y2 += weighted_y[r] * self.y[r];
        }
        let total_weight = root.weight;
        let mut nodes: Vec<Node> = Vec::new();
        let mut features: Vec<usize> = (0..self.data.n_features).collect();
        let mut hist = [BinSums::default(); binning::MAX_BINS];
        let mut stack = vec![Pending { start: 0, end: rows.len(), depth: 0, sums: root, patch: None }];
        while let Some(p) = stack.pop() {
            let here = nodes.len();
            if let Some(parent) = p.patch {
                nodes[parent].right = here as u32;
            }
            let leaf_value = (p.sums.weighted_y / p.sums.weight) as f32;
            let can_split = self.params.max_depth.is_none_or(|d| p.depth < d)
                && p.sums.rows >= self.params.min_samples_split
                && p.sums.rows >= 2 * self.params.min_samples_leaf
                && p.sums.impurity() > 1e-12 * (1.0 + (p.sums.weighted_y2 / p.sums.weight).abs());
            let split = if can_split {
                self.best_split(
                    &rows[p.start..p.end],
                    &weight,
                    &weighted_y,
                    &p.sums,
                    &mut features,
                    &mut rng,
                    &mut hist,
                )
            } else {
                None
            };
            let split = split.filter(|s| {
                // scikit-learn's min_impurity_decrease, weighted by the node's share of the sample.
                let n_t = p.sums.weight;
                let decrease = n_t / total_weight
                    * (p.sums.impurity()
                        - s.left.weight / n_t * s.left.impurity()
                        - s.right.weight / n_t * s.right.impurity());
                decrease + 1e-7 >= self.params.min_impurity_decrease
            });
            let Some(split) = split else {
                nodes.push(Node { feature: LEAF, value: leaf_value, right: 0 });
                continue;
            };
            let threshold = self.data.edges[split.feature][split.bin as usize];
            nodes.push(Node { feature: split.feature as u32, value: threshold, right: 0 });
            let column = self.data.column(split.feature);
            let middle = partition(&mut rows[p.start..p.end], |r| column[r as usize] <= split.bin) + p.start;
            debug_assert_eq!(middle - p.start, split.left.rows);
            stack.push(Pending { start: middle, end: p.end, depth: p.depth + 1, sums: split.right, patch: Some(here) });
            stack.push(Pending { start: p.start, end: middle, depth: p.depth + 1, sums: split.left, patch: None });
        }
        Tree { nodes }
    }

    #[allow(clippy::too_many_arguments)]
    fn best_split(
        &self,
        rows: &[u32],
        weight: &[f64],
        weighted_y: &[f64],
        node: &NodeSums,
        features: &mut [usize],
        rng: &mut Rng,
        hist: &mut [BinSums; binning::MAX_BINS],
    ) -> Option<Split> {
        let min_leaf = self.params.min_samples_leaf.max(1);
        let mut best: Option<Split> = None;
        let mut evaluated = 0;
        let n_features = features.len();
        for drawn in 0..n_features {
            if evaluated >= self.mtry {
                break;
            }
            // Draw the next feature without replacement (partial Fisher–Yates).
            let pick = drawn + below(rng, n_features - drawn);
            features.swap(drawn, pick);
            let feature = features[drawn];
            let n_bins = self.data.edges[feature].len() + 1;
            let hist = &mut hist[..n_bins];
            hist.fill(BinSums::default());
            let column = self.data.column(feature);
            for &r in rows {
                let r = r as usize;
                let h = &mut hist[column[r] as usize];
                h.rows += 1;
                h.weight += weight[r];
                h.weighted_y += weighted_y[r];
            }
            let occupied = hist.iter().filter(|h| h.rows > 0).count();
            if occupied < 2 {
                continue; // constant in this node: does not count towards max_features
            }
            evaluated += 1;
            let mut left = NodeSums::default();
            for (bin, h) in hist.iter().enumerate().take(n_bins - 1) {
                if h.rows == 0 {
                    continue;
                }
                left.rows += h.rows as usize;
                left.weight += h.weight;
                left.weighted_y += h.weighted_y;
                let right_rows = node.rows - left.rows;
                if right_rows < min_leaf {
                    break;
                }
                if left.rows < min_leaf {
                    continue;
                }
                let right_weight = node.weight - left.weight;
                let right_wy = node.weighted_y - left.weighted_y;
                if left.weight <= 0.0 || right_weight <= 0.0 {
                    continue;
                }
                let proxy = left.weighted_y * left.weighted_y / left.weight + right_wy * right_wy / right_weight;
                if best.as_ref().is_none_or(|b| proxy > b.proxy) {
                    best = Some(Split {
                        feature,
                        bin: bin as u8,
                        proxy,
                        left,
                        right: NodeSums {
                            rows: right_rows,
                            weight: right_weight,
                            weighted_y: right_wy,
                            weighted_y2: 0.0,
                        },
                    });
                }
            }
        }
        // Second moments of the children, for their impurity: one pass over the node's rows.
        let mut split = best?;
        let column = self.data.column(split.feature);
        let (mut left_y2, mut total_y2) = (0.0, 0.0);
        for &r in rows {
            let r = r as usize;
            let y2 = weighted_y[r] * self.y[r];
            total_y2 += y2;
            if column[r] <= split.bin {
                left_y2 += y2;
            }
        }
        split.left.weighted_y2 = left_y2;
        split.right.weighted_y2 = total_y2 - left_y2;
        Some(split)
    }
}

/// A uniform index below `n` (Lemire's multiply-shift).
#[inline]
fn below(rng: &mut Rng, n: usize) -> usize {
    ((rng.next_u64() as u128 * n as u128) >> 64) as usize
}

/// Reorders `rows` so that those satisfying `goes_left` come first; returns their number.
fn partition(rows: &mut [u32], goes_left: impl Fn(u32) -> bool) -> usize {
    let mut next = 0;
    for i in 0..rows.len() {
        if goes_left(rows[i]) {
            rows.swap(next, i);
            next += 1;
        }
    }
    next
}

/// Area under the ROC curve of `score` for labels (true = positive), with ties counted half.
pub fn roc_auc(score: &[f64], positive: &[bool]) -> f64 {
    let mut order: Vec<usize> = (0..score.len()).collect();
    order.sort_by(|&a, &b| score[a].total_cmp(&score[b]));
    let (mut rank_sum, mut n_pos) = (0.0, 0.0);
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && score[order[j + 1]] == score[order[i]] {
            j += 1;
        }
        let mid_rank = (i + j) as f64 / 2.0 + 1.0;
        for &k in &order[i..=j] {
            if positive[k] {
                rank_sum += mid_rank;
                n_pos += 1.0;
            }
        }
        i = j + 1;
    }
    let n_neg = score.len() as f64 - n_pos;
    (rank_sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(n: usize) -> ForestParams {
        ForestParams {
            n_estimators: n,
            max_depth: Some(30),
            min_samples_split: 10,
            min_samples_leaf: 5,
            min_impurity_decrease: 0.0,
            max_features: MaxFeatures::Sqrt,
            bootstrap: true,
            max_samples: None,
            random_state: 42,
        }
    }

    /// Two informative features, two noise features; class 1 when x0 + x1 > 1 (10% flipped).
    fn toy(n: usize, seed: u64) -> (Vec<f32>, Vec<f64>) {
        let mut rng = Rng::new(seed, 0);
        let mut x = Vec::new();
        let mut y = Vec::new();
        for _ in 0..n {
            let row: Vec<f32> = (0..4).map(|_| rng.uniform() as f32).collect();
            let mut label = (row[0] + row[1] > 1.0) as u8 as f64;
            if rng.uniform() < 0.1 {
                label = 1.0 - label;
            }
            x.extend(row);
            y.push(label);
        }
        (x, y)
    }

    /// The block predictions (eight walks side by side) equal the row-at-a-time ones bit for
    /// bit: every row, rows with NaN, a block that ends with fewer rows than walks.
    #[test]
    fn block_predictions_equal_row_predictions() {
        for (task, seed) in [(Task::Classification, 3), (Task::Regression, 4)] {
            let (x, mut y) = toy(3000, seed);
            if task == Task::Regression {
                y.iter_mut().zip(x.chunks(4)).for_each(|(v, r)| *v = (r[0] * 3.0 + r[2]) as f64);
            }
            let forest = Forest::fit(&x, &y, 4, task, &params(12)).unwrap();
            let (mut xt, _) = toy(1037, seed + 10);
            xt[4 * 5 + 1] = f32::NAN;
            let p = forest.predict(&xt);
            for (i, row) in xt.chunks(4).enumerate() {
                let want = if row.iter().all(|v| v.is_finite()) { forest.predict_row(row) } else { f64::NAN };
                assert_eq!(p[i].to_bits(), want.to_bits(), "{task:?} row {i}");
            }
            for n_rows in [0usize, 1, 7, 8, 9, 100] {
                let mut sums = vec![0.0f64; n_rows];
                forest.trees[0].add_predictions(&xt[..4 * n_rows], 4, &mut sums);
                for (i, row) in xt.chunks(4).take(n_rows).enumerate() {
                    assert_eq!(sums[i].to_bits(), (forest.trees[0].predict(row) as f64).to_bits());
                }
            }
        }
    }

    #[test]
    fn classifier_learns_and_is_deterministic_across_thread_counts() {
        let (x, y) = toy(4000, 1);
        let (xt, yt) = toy(2000, 2);
        let pool = |n| rayon::ThreadPoolBuilder::new().num_threads(n).build().unwrap();
        let one = pool(1).install(|| Forest::fit(&x, &y, 4, Task::Classification, &params(20)).unwrap());
        let two = pool(2).install(|| Forest::fit(&x, &y, 4, Task::Classification, &params(20)).unwrap());
        assert_eq!(one, two);
        let p = one.predict(&xt);
        for (i, row) in xt.chunks(4).enumerate().take(50) {
            assert_eq!(p[i].to_bits(), one.predict_row(row).to_bits());
        }
        let auc = roc_auc(&p, &yt.iter().map(|&v| v == 1.0).collect::<Vec<_>>());
        // With 10% of labels flipped the best possible AUC is about 0.90.
        assert!(auc > 0.87, "auc {auc}");
        for t in &one.trees {
            assert!(t.depth() <= 30);
        }
    }

    #[test]
    fn regressor_fits_a_smooth_function() {
        let mut rng = Rng::new(3, 0);
        let (mut x, mut y) = (Vec::new(), Vec::new());
        for _ in 0..3000 {
            let a = rng.uniform() as f32 * 4.0;
            let b = rng.uniform() as f32;
            x.extend([a, b]);
            y.push((a as f64).sin() * 2.0 + 0.05 * rng.normal());
        }
        let mut p = params(30);
        p.max_features = MaxFeatures::All;
        let f = Forest::fit(&x, &y, 2, Task::Regression, &p).unwrap();
        let rms = (0..200)
            .map(|i| {
                let a = i as f32 * 0.02;
                (f.predict_row(&[a, 0.5]) - (a as f64).sin() * 2.0).powi(2)
            })
            .sum::<f64>()
            / 200.0;
        assert!(rms.sqrt() < 0.1, "rms {}", rms.sqrt());
    }

    #[test]
    fn leaves_respect_min_samples_leaf_and_depth() {
        let (x, y) = toy(2000, 4);
        let mut p = params(3);
        p.bootstrap = false;
        p.max_depth = Some(3);
        p.min_samples_leaf = 50;
        let f = Forest::fit(&x, &y, 4, Task::Classification, &p).unwrap();
        for t in &f.trees {
            assert!(t.depth() <= 3);
            assert!(t.n_leaves() <= 8);
        }
        // Without bootstrap every row has weight 1: count rows per leaf by routing them.
        let mut leaf_rows = std::collections::HashMap::new();
        for row in x.chunks(4) {
            let mut i = 0usize;
            let t = &f.trees[0];
            while t.nodes[i].feature != LEAF {
                let n = t.nodes[i];
                i = if row[n.feature as usize] <= n.value { i + 1 } else { n.right as usize };
            }
            *leaf_rows.entry(i).or_insert(0) += 1;
        }
        assert!(leaf_rows.values().all(|&c| c >= 50), "{leaf_rows:?}");
    }

    #[test]
    fn bad_training_data_is_refused() {
        let p = params(1);
        assert_eq!(Forest::fit(&[], &[], 2, Task::Regression, &p), Err(FitError::NoRows));
        assert!(matches!(
            Forest::fit(&[1.0, f32::NAN], &[1.0], 2, Task::Regression, &p),
            Err(FitError::NotFinite { row: 0, feature: 1 })
        ));
        assert!(matches!(
            Forest::fit(&[1.0, 2.0], &[3.0], 2, Task::Classification, &p),
            Err(FitError::BadTarget { row: 0, .. })
        ));
    }

    #[test]
    fn auc_of_perfect_random_and_tied_scores() {
        assert_eq!(roc_auc(&[0.1, 0.2, 0.8, 0.9], &[false, false, true, true]), 1.0);
        assert_eq!(roc_auc(&[0.5, 0.5, 0.5, 0.5], &[false, true, false, true]), 0.5);
    }
}
