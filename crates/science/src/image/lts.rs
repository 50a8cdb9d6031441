//! The timing fit of ctapipe 0.17 (the version sst1mpipe pins), reproduced draw for draw.
//!
//! ctapipe 0.17 fits the peak times along the image axis with a least-trimmed-squares line
//! (`ctapipe.fitting.lts_linear_regression`): `samples` starts from two randomly chosen pixels,
//! each followed by up to 20 C-steps that refit the 85 % of pixels with the smallest squared
//! residuals, and the start with the smallest residual sum wins. Its random starts are not
//! arbitrary: the function calls `np.random.seed(0)` (numba's thread-local generator) on every
//! call, and each start is `np.random.choice(n, 2, replace=False)`, which numba implements as
//! the first two entries of `np.random.permutation(n)` (a Fisher–Yates shuffle from the end,
//! `randint(i + 1)` for i = n−1 … 1, each a masked 32-bit Mersenne-Twister draw with
//! rejection, exactly numpy's legacy `RandomState`). So the fit of an image is a pure function
//! of that image, and reproducing the generator reproduces the fit, including which local
//! minimum the C-steps settle in on images with outliers.
//!
//! The line fits follow ctapipe's `linear_regression`: a fit whose normal matrix has a
//! determinant below 2·ε (absolute, as ctapipe) is NaN, and a start that yields NaN is never
//! chosen. With fewer than two pixels ctapipe raises; we return NaN.

/// MT19937 as numpy's legacy `RandomState(seed)` and numba's `np.random.seed(seed)` set it up.
struct MersenneTwister {
    state: [u32; 624],
    index: usize,
}

impl MersenneTwister {
    fn new(seed: u32) -> Self {
        let mut state = [0u32; 624];
        state[0] = seed;
        for i in 1..624 {
            let prev = state[i - 1];
            state[i] = 1_812_433_253u32.wrapping_mul(prev ^ (prev >> 30)).wrapping_add(i as u32);
        }
        MersenneTwister { state, index: 624 }
    }

    /// `new(0)` after its first twist, the state every fit starts from: computed once, so a
    /// fit copies 2.5 kB instead of seeding and twisting 624 words (≈2 µs per image).
    fn seeded_zero() -> Self {
        static STATE: std::sync::OnceLock<[u32; 624]> = std::sync::OnceLock::new();
        let state = STATE.get_or_init(|| {
            let mut g = MersenneTwister::new(0);
            g.twist();
            g.state
        });
        MersenneTwister { state: *state, index: 0 }
    }

    fn twist(&mut self) {
        const UPPER: u32 = 0x8000_0000;
        const LOWER: u32 = 0x7fff_ffff;
        for i in 0..624 {
            let y = (self.state[i] & UPPER) | (self.state[(i + 1) % 624] & LOWER);
            let mut next = self.state[(i + 397) % 624] ^ (y >> 1);
            if y & 1 != 0 {
                next ^= 0x9908_b0df;
            }
            self.state[i] = next;
        }
        self.index = 0;
    }

    fn next_u32(&mut self) -> u32 {
        if self.index >= 624 {
            self.twist();
        }
        let mut y = self.state[self.index];
        self.index += 1;
        y ^= y >> 11;
        y ^= (y << 7) & 0x9d2c_5680;
        y ^= (y << 15) & 0xefc6_0000;
        y ^ (y >> 18)
    }

    /// numpy's `randint(0, n)` for 2 ≤ n ≤ 2³²: the low bits of one draw, rejected until < n.
    fn below(&mut self, n: u64) -> u64 {
        let bits = 64 - (n - 1).leading_zeros();
        let mask = u32::MAX >> (32 - bits);
        loop {
            let r = (self.next_u32() & mask) as u64;
            if r < n {
                return r;
            }
        }
    }
}

/// Least-squares line through the points `idx` of (x, y) as ctapipe's `linear_regression`:
/// (slope, intercept), NaN when the normal matrix is (nearly) singular.
fn line_fit(x: &[f64], y: &[f64], idx: &[usize]) -> (f64, f64) {
    let n = idx.len() as f64;
    let (mut sx, mut sy, mut sxx, mut sxy) = (0.0, 0.0, 0.0, 0.0);
    for &i in idx {
        sx += x[i];
        sy += y[i];
        sxx += x[i] * x[i];
        sxy += x[i] * y[i];
    }
    let det = n * sxx - sx * sx;
    if det < 2.0 * f64::EPSILON {
        return (f64::NAN, f64::NAN);
    }
    ((n * sxy - sx * sy) / det, (sxx * sy - sx * sxy) / det)
}

fn residual_sum(x: &[f64], y: &[f64], idx: &[usize], beta: (f64, f64)) -> f64 {
    idx.iter().map(|&i| (y[i] - (x[i] * beta.0 + beta.1)).powi(2)).sum()
}

const RELATIVE_SAMPLE_SIZE: f64 = 0.85;
const MAX_C_STEPS: usize = 20;
const CONVERGED: f64 = 1e-12;

/// ctapipe 0.17's `lts_linear_regression(x, y, samples)`: (slope, intercept).
pub fn lts_fit(x: &[f64], y: &[f64], samples: usize) -> (f64, f64) {
    let n = x.len();
    if n < 2 {
        return (f64::NAN, f64::NAN);
    }
    let sample_size = (RELATIVE_SAMPLE_SIZE * n as f64) as usize;
    let mut generator = MersenneTwister::seeded_zero();
    let mut permutation: Vec<usize> = Vec::with_capacity(n);
    let mut order: Vec<usize> = (0..n).collect();
    let mut squared = vec![0.0; n];
    let mut best = (f64::NAN, f64::NAN);
    let mut best_error = f64::INFINITY;
    for _ in 0..samples {
        permutation.clear();
        permutation.extend(0..n);
        for i in (1..n).rev() {
            let j = generator.below(i as u64 + 1) as usize;
            permutation.swap(i, j);
        }
        let start = [permutation[0], permutation[1]];
        let mut beta = line_fit(x, y, &start);
        if beta.0.is_nan() {
            continue;
        }
        let mut error = residual_sum(x, y, &start, beta);
        for _ in 0..MAX_C_STEPS {
            for i in 0..n {
                squared[i] = (y[i] - (x[i] * beta.0 + beta.1)).powi(2);
            }
            // The sample_size smallest squared residuals (their order does not change the fit;
            // ties at the boundary are broken by pixel order).
            let subset: &[usize] = if sample_size == 0 {
                &[]
            } else {
                order.select_nth_unstable_by(sample_size - 1, |&i, &j| {
                    squared[i].total_cmp(&squared[j]).then(i.cmp(&j))
                });
                &order[..sample_size]
            };
            beta = line_fit(x, y, subset);
            let last = error;
            error = residual_sum(x, y, subset, beta);
            if (last - error).abs() < CONVERGED {
                break;
            }
        }
        if error < best_error {
            best_error = error;
            best = beta;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generator_is_numpys_legacy_mt19937() {
        // numpy: np.random.RandomState(0).randint(0, 2**32, dtype=np.uint64)[:3] draws the
        // raw 32-bit outputs 2357136044, 2546248239, 3071714933.
        let mut g = MersenneTwister::new(0);
        assert_eq!([g.next_u32(), g.next_u32(), g.next_u32()], [2357136044, 2546248239, 3071714933]);
        // The cached start is the same generator, also past its second twist.
        let (mut fresh, mut cached) = (MersenneTwister::new(0), MersenneTwister::seeded_zero());
        for _ in 0..2000 {
            assert_eq!(fresh.next_u32(), cached.next_u32());
        }
        // np.random.seed(0); np.random.permutation(10) = [2 8 4 9 1 6 7 3 0 5].
        let mut g = MersenneTwister::new(0);
        let mut p: Vec<usize> = (0..10).collect();
        for i in (1..10).rev() {
            let j = g.below(i as u64 + 1) as usize;
            p.swap(i, j);
        }
        assert_eq!(p, [2, 8, 4, 9, 1, 6, 7, 3, 0, 5]);
    }

    #[test]
    fn exact_line_and_outliers() {
        let x: Vec<f64> = (0..20).map(|i| i as f64 * 0.01).collect();
        let mut y: Vec<f64> = x.iter().map(|x| 3.0 * x + 1.0).collect();
        let (a, b) = lts_fit(&x, &y, 5);
        assert!((a - 3.0).abs() < 1e-9 && (b - 1.0).abs() < 1e-9);
        y[3] += 50.0;
        y[11] -= 40.0;
        let (a, b) = lts_fit(&x, &y, 5);
        assert!((a - 3.0).abs() < 1e-9 && (b - 1.0).abs() < 1e-9, "{a} {b}");
        // Two points: the 85 % subset is one point, which ctapipe cannot fit.
        assert!(lts_fit(&x[..2], &y[..2], 5).0.is_nan());
        assert!(lts_fit(&x[..1], &y[..1], 5).0.is_nan());
    }
}
