//! The cubic smoothing spline whose smoothing is chosen by generalised cross-validation, as
//! scipy's `make_smoothing_spline(x, y)` (no weights, `lam=None`) fits it: sst1mpipe smooths the
//! significance-versus-gammaness-cut curve with it before taking the best cut
//! (`analysis.significance_fit`).
//!
//! The fit minimises Σ (yᵢ − f(xᵢ))² + λ ∫ f''(t)² dt over natural cubic splines with knots at
//! the xᵢ. For a given λ that f is unique whatever basis it is written in, but λ is not: scipy
//! minimises its GCV criterion, (‖λ W⁻¹E c‖²/n) / (1 − tr/n)², with a trace that keeps only
//! three bands of its banded inverse (the outermost band of the 7-band product is discarded),
//! so its criterion differs slightly from the exact one. To choose the cut sst1mpipe chooses,
//! this module follows scipy's
//! computation step for step, in its basis (Wahba's, from the B-spline design matrix with the
//! natural boundary conditions folded in) with its band layout: the design matrix X and the
//! penalty W⁻¹E as five bands, c from `solve_banded` (LU with partial pivoting, as LAPACK's
//! gbsv), the Hutchinson–de Hoog inverse bands from the banded Cholesky factor (as LAPACK's
//! pbtrf), and the bounded Brent minimisation of `minimize_scalar(method="bounded")` on
//! (0, n) with `xatol = 1e-5`. The fitted values are X c at the knots.
//!
//! At a given λ the criterion and the coefficients are scipy's to the last bits. Where the
//! criterion is flat it is also ill-conditioned (its values vary by 1e-6 from one λ to the next),
//! and the λ Brent's search ends on depends on the last bit of each value, so on the order BLAS
//! sums a dot product: for scipy too, that λ is the machine's. The fitted values then differ by
//! about 1e-6, and the curve's maximum, which is what sst1mpipe takes, agreed in every case
//! tested.
//!
//! Costs: each GCV evaluation is O(n) (band widths are fixed), about 30 evaluations per fit.

/// numpy's `linspace(start, stop, num)`: `i·step + start` with step = (stop − start)/(num − 1),
/// the last point `stop` itself (the same doubles, so a fit of them is scipy's).
pub fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    if let Some(last) = v.last_mut() {
        *last = stop;
    }
    v
}

/// The GCV-smoothed values at the `x` (strictly increasing, at least 5 points), or None when
/// the points are not strictly increasing, are too few or not finite, or the system is
/// singular.
pub fn gcv_smoothed(x: &[f64], y: &[f64]) -> Option<Vec<f64>> {
    let n = x.len();
    if n < 5 || y.len() != n || x.iter().chain(y).any(|v| !v.is_finite()) || x.windows(2).any(|w| w[1] <= w[0]) {
        return None;
    }
    let problem = Problem::new(x, y);
    let lambda = bounded_minimum(|l| problem.gcv(l), 0.0, n as f64, 1e-5, 500);
    let c = problem.coefficients(lambda)?;
    Some(problem.fitted(&c))
}

/// A banded matrix in LAPACK's storage: `band[u + i − j][j]` holds A[i][j].
struct Banded {
    upper: usize,
    band: Vec<Vec<f64>>,
}

impl Banded {
    fn new(lower: usize, upper: usize, n: usize) -> Banded {
        Banded { upper, band: vec![vec![0.0; n]; lower + upper + 1] }
    }

    fn get(&self, i: usize, j: usize) -> f64 {
        let row = (self.upper + i).checked_sub(j);
        row.and_then(|r| self.band.get(r)).map(|b| b[j]).unwrap_or(0.0)
    }

    fn set(&mut self, i: usize, j: usize, v: f64) {
        let r = self.upper + i - j;
        self.band[r][j] = v;
    }
}

/// Everything of scipy's formulation that does not depend on λ.
struct Problem<'a> {
    y: &'a [f64],
    /// The design matrix in scipy's basis: bands (2, 2).
    x: Banded,
    /// W⁻¹E (W = 1): bands (2, 2).
    we: Banded,
    /// XᵀWX and XᵀE: symmetric, upper storage with 3 super-diagonals.
    xtwx: Banded,
    xte: Banded,
}

impl<'a> Problem<'a> {
    fn new(x: &[f64], y: &'a [f64]) -> Problem<'a> {
        let n = x.len();
        // The cubic B-spline basis at the data points, knots t = [x0]*3 + x + [x_{n-1}]*3.
        let mut t = vec![x[0]; 3];
        t.extend_from_slice(x);
        t.extend([x[n - 1]; 3]);
        let b = |row: usize, col: usize| -> f64 { basis_at(&t, x[row], col) };
        // scipy's X: interior columns are B-splines shifted by one; the two boundary columns at
        // each end fold the natural boundary conditions in.
        let mut xm = Banded::new(2, 2, n);
        for j in 2..n - 2 {
            for i in j - 1..=j + 1 {
                xm.set(i, j, b(i, j + 1));
            }
        }
        xm.set(0, 1, b(0, 0));
        xm.set(0, 0, (x[2] + x[1] - 2.0 * x[0]) * b(0, 0));
        xm.set(1, 1, b(1, 1) + b(1, 2));
        xm.set(1, 0, (x[2] - x[0]) * b(1, 1));
        xm.set(2, 1, b(2, 2));
        xm.set(n - 3, n - 2, b(n - 3, n - 1));
        xm.set(n - 2, n - 1, (x[n - 1] - x[n - 3]) * b(n - 2, n));
        xm.set(n - 2, n - 2, b(n - 2, n - 1) + b(n - 2, n));
        xm.set(n - 1, n - 1, (2.0 * x[n - 1] - x[n - 2] - x[n - 3]) * b(n - 1, n + 1));
        xm.set(n - 1, n - 2, b(n - 1, n + 1));
        // W⁻¹E from the coefficients of the divided differences, times 6.
        let mut we = Banded::new(2, 2, n);
        let put = |we: &mut Banded, col: usize, first_row: usize, values: Vec<f64>| {
            for (k, v) in values.into_iter().enumerate() {
                we.set(first_row + k, col, 6.0 * v);
            }
        };
        put(&mut we, 0, 0, divided_difference_coefficients(&x[..3]));
        put(&mut we, 1, 0, divided_difference_coefficients(&x[..4]));
        for j in 2..n - 2 {
            let scale = x[j + 2] - x[j - 2];
            put(
                &mut we,
                j,
                j - 2,
                divided_difference_coefficients(&x[j - 2..j + 3]).into_iter().map(|v| scale * v).collect(),
            );
        }
        put(&mut we, n - 2, n - 4, divided_difference_coefficients(&x[n - 4..]).into_iter().map(|v| -v).collect());
        put(&mut we, n - 1, n - 3, divided_difference_coefficients(&x[n - 3..]));
        let xtwx = symmetric_product(&xm, &xm, n);
        let xte = symmetric_product(&xm, &we, n);
        Problem { y, x: xm, we, xtwx, xte }
    }

    /// c solving (X + λ W⁻¹E) c = y.
    fn coefficients(&self, lambda: f64) -> Option<Vec<f64>> {
        let n = self.y.len();
        let mut a = Banded::new(2, 2, n);
        for (r, (xb, eb)) in self.x.band.iter().zip(&self.we.band).enumerate() {
            for j in 0..n {
                a.band[r][j] = xb[j] + lambda * eb[j];
            }
        }
        solve_banded_lu(&a, 2, self.y)
    }

    /// f(xᵢ) = (X c)ᵢ.
    fn fitted(&self, c: &[f64]) -> Vec<f64> {
        let n = c.len();
        (0..n).map(|i| (i.saturating_sub(2)..(i + 3).min(n)).map(|j| self.x.get(i, j) * c[j]).sum()).collect()
    }

    /// scipy's `_gcv(lam, ...)`.
    fn gcv(&self, lambda: f64) -> f64 {
        let n = self.y.len();
        let Some(c) = self.coefficients(lambda) else { return f64::NAN };
        // (W⁻¹E c)ᵢ, summed in scipy's order over the band rows.
        let mut numer = 0.0;
        let mut res = vec![0.0; n];
        for (i, r) in res.iter_mut().enumerate() {
            for band_row in (i + 3).saturating_sub(n)..(i + 3).min(5) {
                let col = i + 2 - band_row;
                *r += self.we.band[band_row][col] * c[col];
            }
        }
        for r in &res {
            numer += (lambda * r).powi(2);
        }
        let numer = numer / n as f64;
        let mut lhs = Banded::new(0, 3, n);
        for r in 0..4 {
            for j in 0..n {
                lhs.band[r][j] = self.xtwx.band[r][j] + lambda * self.xte.band[r][j];
            }
        }
        let Some(inverse) = central_inverse_bands(&lhs) else { return f64::NAN };
        // tr = Σ B ∘ XᵀWX over the stored bands, off-diagonal bands twice; scipy's B keeps
        // bands 0..2 only (its offset-3 row is set to zero).
        // Summed as scipy sums it: the four rows per column, then the columns in order.
        let mut trace = 0.0;
        for j in 0..n {
            let mut column = 0.0;
            for r in 0..4 {
                let factor = if r < 3 { 2.0 } else { 1.0 };
                column += inverse.band[r][j] * self.xtwx.band[r][j] * factor;
            }
            trace += column;
        }
        numer / (1.0 - trace / n as f64).powi(2)
    }
}

/// Value at `x` of the cubic B-spline number `index` on knots `t` (scipy's design matrix: the
/// interval t[m] ≤ x < t[m+1], the last interval for the right end).
fn basis_at(t: &[f64], x: f64, index: usize) -> f64 {
    const K: usize = 3;
    let last = t.len() - K - 2;
    let mut m = K;
    while m < last && t[m + 1] <= x {
        m += 1;
    }
    if index + K < m || index > m {
        return 0.0;
    }
    // de Boor's scheme as scipy's `_deBoor_D` writes it: values of B_{m−3..m} at x.
    let mut values = [0.0f64; K + 1];
    values[0] = 1.0;
    for j in 1..=K {
        let previous = values;
        values[0] = 0.0;
        for n in 1..=j {
            let (xb, xa) = (t[m + n], t[m + n - j]);
            if xb == xa {
                values[n] = 0.0;
                continue;
            }
            let w = previous[n - 1] / (xb - xa);
            values[n - 1] += w * (xb - x);
            values[n] = w * (x - xa);
        }
    }
    values[index + K - m]
}

/// scipy's `_coeff_of_divided_diff`: 1 / Π_{k≠i} (xᵢ − x_k).
fn divided_difference_coefficients(x: &[f64]) -> Vec<f64> {
    (0..x.len())
        .map(|i| {
            let mut product = 1.0;
            for (k, xk) in x.iter().enumerate() {
                if k != i {
                    product *= x[i] - xk;
                }
            }
            1.0 / product
        })
        .collect()
}

/// The upper bands (0..3) of the symmetric product Xᵀ Y of two (2, 2)-banded matrices, as
/// scipy's `compute_banded_symmetric_XT_W_Y` sums them (W = 1).
fn symmetric_product(x: &Banded, y: &Banded, n: usize) -> Banded {
    let mut out = Banded::new(0, 3, n);
    for i in 0..n {
        for j in 0..(n - i).min(4) {
            let mut sum = 0.0;
            for k in 0..5 - j {
                sum += x.band[j + k][i] * y.band[k][i + j];
            }
            out.band[3 - j][i + j] = sum;
        }
    }
    out
}

/// Solves A c = y for a (`lower`, `upper`)-banded A by Gaussian elimination with partial
/// pivoting, as LAPACK's gbsv: the same pivots and the same operations on each element (held
/// dense: n is the number of candidate cuts; the loops stay within the band and its fill-in).
fn solve_banded_lu(a: &Banded, lower: usize, y: &[f64]) -> Option<Vec<f64>> {
    let n = y.len();
    let reach = lower + a.upper; // upper bandwidth after fill-in
    let mut m: Vec<Vec<f64>> = (0..n).map(|i| (0..n).map(|j| a.get(i, j)).collect()).collect();
    let mut b = y.to_vec();
    for k in 0..n {
        let last = (k + lower).min(n - 1);
        let mut pivot = k;
        for i in k + 1..=last {
            if m[i][k].abs() > m[pivot][k].abs() {
                pivot = i;
            }
        }
        if m[pivot][k] == 0.0 {
            return None;
        }
        m.swap(k, pivot);
        b.swap(k, pivot);
        // gbtf2 scales the column by the reciprocal of the pivot, then a rank-1 update.
        let reciprocal = 1.0 / m[k][k];
        let end = (k + reach + 1).min(n);
        let (pivot_rows, below) = m.split_at_mut(k + 1);
        let pivot_row = &pivot_rows[k];
        let below = &mut below[..last - k];
        for row in below.iter_mut() {
            row[k] *= reciprocal;
        }
        for j in k + 1..end {
            let u = pivot_row[j];
            for row in below.iter_mut() {
                row[j] -= row[k] * u;
            }
        }
        for i in k + 1..=last {
            b[i] -= m[i][k] * b[k];
        }
    }
    // gbtrs → tbsv: back substitution by columns, from the last.
    let mut c = b;
    for j in (0..n).rev() {
        if c[j] != 0.0 {
            c[j] /= m[j][j];
            let temp = c[j];
            for i in (j.saturating_sub(reach)..j).rev() {
                c[i] -= temp * m[i][j];
            }
        }
    }
    Some(c)
}

/// scipy's `compute_b_inv`: the bands 0..2 of the inverse of the symmetric positive definite
/// (upper, 3 super-diagonals) `a`, from its Cholesky factor (Hutchinson & de Hoog); band 3 is
/// left zero, as scipy leaves it. None when `a` is not positive definite.
fn central_inverse_bands(a: &Banded) -> Option<Banded> {
    let n = a.band[0].len();
    const KD: usize = 3;
    // LAPACK pbtf2 (upper): row by row, the trailing submatrix updated by each row.
    let mut u = Banded { upper: KD, band: a.band.clone() };
    for j in 0..n {
        let ajj = u.band[KD][j];
        if ajj.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) {
            return None;
        }
        let ajj = ajj.sqrt();
        u.band[KD][j] = ajj;
        let kn = KD.min(n - 1 - j);
        let reciprocal = 1.0 / ajj;
        for k in 1..=kn {
            u.band[KD - k][j + k] *= reciprocal;
        }
        for p in 1..=kn {
            for q in p..=kn {
                // A(j+p, j+q) −= U(j, j+p) U(j, j+q)
                let v = u.band[KD - p][j + p] * u.band[KD - q][j + q];
                u.band[KD + p - q][j + q] -= v;
            }
        }
    }
    // Unit upper factor and D = 1 / diag².
    for i in 2..=4usize {
        let row = KD + 1 - i;
        for j in i - 1..n {
            u.band[row][j] /= u.band[KD][j + 1 - i];
        }
    }
    let d: Vec<f64> = u.band[KD].iter().map(|v| 1.0 / (v * v)).collect();
    let unit = |row: usize, col: usize| u.band[row][col];
    let mut b = Banded::new(0, KD, n);
    for i in (0..n).rev() {
        let range = KD.min(n - i - 1);
        for j in (0..=range).rev() {
            let mut sum = 0.0;
            if j == 0 {
                for k in 1..=range {
                    sum -= unit(KD - k, i + k) * b.band[KD - k][i + k];
                }
                sum += d[i];
                b.band[KD][i] = sum;
            } else {
                for k in 1..=range {
                    let diag = k.abs_diff(j);
                    let ind = i + k.min(j);
                    sum -= unit(KD - k, i + k) * b.band[KD - diag][ind + diag];
                }
                b.band[KD - j][i + j] = sum;
            }
        }
    }
    b.band[0].iter_mut().for_each(|v| *v = 0.0);
    Some(b)
}

/// scipy's `_minimize_scalar_bounded` (Brent's method on [lo, hi], `xatol`, at most
/// `max_evaluations`): the abscissa of the minimum found.
fn bounded_minimum(f: impl Fn(f64) -> f64, lo: f64, hi: f64, xatol: f64, max_evaluations: usize) -> f64 {
    let sqrt_eps = 2.2e-16f64.sqrt();
    let golden_mean = 0.5 * (3.0 - 5.0f64.sqrt());
    let (mut a, mut b) = (lo, hi);
    let mut fulc = a + golden_mean * (b - a);
    let (mut nfc, mut xf) = (fulc, fulc);
    let (mut rat, mut e) = (0.0f64, 0.0f64);
    let mut fx = f(xf);
    let mut evaluations = 1;
    let (mut ffulc, mut fnfc) = (fx, fx);
    let mut xm = 0.5 * (a + b);
    let mut tol1 = sqrt_eps * xf.abs() + xatol / 3.0;
    let mut tol2 = 2.0 * tol1;
    let sign = |v: f64| {
        if v > 0.0 {
            1.0
        } else if v < 0.0 {
            -1.0
        } else {
            0.0
        }
    };
    while (xf - xm).abs() > tol2 - 0.5 * (b - a) {
        let mut golden = true;
        if e.abs() > tol1 {
            golden = false;
            let mut r = (xf - nfc) * (fx - ffulc);
            let mut q = (xf - fulc) * (fx - fnfc);
            let mut p = (xf - fulc) * q - (xf - nfc) * r;
            q = 2.0 * (q - r);
            if q > 0.0 {
                p = -p;
            }
            q = q.abs();
            r = e;
            e = rat;
            if p.abs() < (0.5 * q * r).abs() && p > q * (a - xf) && p < q * (b - xf) {
                rat = p / q;
                let x = xf + rat;
                if (x - a) < tol2 || (b - x) < tol2 {
                    let si = sign(xm - xf) + if xm - xf == 0.0 { 1.0 } else { 0.0 };
                    rat = tol1 * si;
                }
            } else {
                golden = true;
            }
        }
        if golden {
            e = if xf >= xm { a - xf } else { b - xf };
            rat = golden_mean * e;
        }
        let si = sign(rat) + if rat == 0.0 { 1.0 } else { 0.0 };
        let x = xf + si * rat.abs().max(tol1);
        let fu = f(x);
        evaluations += 1;
        if fu <= fx {
            if x >= xf {
                a = xf;
            } else {
                b = xf;
            }
            (fulc, ffulc) = (nfc, fnfc);
            (nfc, fnfc) = (xf, fx);
            (xf, fx) = (x, fu);
        } else {
            if x < xf {
                a = x;
            } else {
                b = x;
            }
            if fu <= fnfc || nfc == xf {
                (fulc, ffulc) = (nfc, fnfc);
                (nfc, fnfc) = (x, fu);
            } else if fu <= ffulc || fulc == xf || fulc == nfc {
                (fulc, ffulc) = (x, fu);
            }
        }
        xm = 0.5 * (a + b);
        tol1 = sqrt_eps * xf.abs() + xatol / 3.0;
        tol2 = 2.0 * tol1;
        if evaluations >= max_evaluations {
            break;
        }
    }
    xf
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_straight_line_is_its_own_fit_and_noise_is_smoothed() {
        let x: Vec<f64> = (0..20).map(|i| i as f64 * 0.1).collect();
        let line: Vec<f64> = x.iter().map(|v| 3.0 * v - 1.0).collect();
        let g = gcv_smoothed(&x, &line).unwrap();
        for (a, b) in g.iter().zip(&line) {
            assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        }
        // A parabola with alternating noise: the fit is closer to the parabola than the data.
        let truth: Vec<f64> = x.iter().map(|v| v * v).collect();
        let noisy: Vec<f64> =
            truth.iter().enumerate().map(|(i, t)| t + if i % 2 == 0 { 0.05 } else { -0.05 }).collect();
        let g = gcv_smoothed(&x, &noisy).unwrap();
        let err = |v: &[f64]| v.iter().zip(&truth).map(|(a, b)| (a - b).powi(2)).sum::<f64>();
        assert!(err(&g) < 0.5 * err(&noisy), "{} vs {}", err(&g), err(&noisy));
        assert!(gcv_smoothed(&x[..4], &noisy[..4]).is_none());
        assert!(gcv_smoothed(&[0.0, 1.0, 1.0, 2.0, 3.0], &[0.0; 5]).is_none());
    }

    #[test]
    fn the_b_spline_basis_sums_to_one() {
        let x: Vec<f64> = (0..8).map(|i| (i as f64).powf(1.3)).collect();
        let mut t = vec![x[0]; 3];
        t.extend_from_slice(&x);
        t.extend([x[7]; 3]);
        for &xi in &x {
            let total: f64 = (0..10).map(|b| basis_at(&t, xi, b)).sum();
            assert!((total - 1.0).abs() < 1e-12, "{xi}: {total}");
        }
        assert_eq!(basis_at(&t, x[0], 0), 1.0);
        assert_eq!(basis_at(&t, x[7], 9), 1.0);
    }

    /// scipy 1.13.1 and 1.17.1 (`make_smoothing_spline(x, y)(x)`, and the λ its GCV search
    /// found), on sst1mpipe's 100 candidate cuts: the argmax of the data and of the fit, and
    /// three fitted values.
    #[test]
    fn fits_as_scipy_make_smoothing_spline() {
        let x = linspace(0.3, 0.95, 100);
        let curve = |f: &dyn Fn(f64) -> f64| x.iter().map(|&v| f(v)).collect::<Vec<f64>>();
        let mut spike = curve(&|v| 2.0 * v + 0.05 * (71.0 * v).sin());
        spike[20] = 3.5;
        // (name, y, argmax of y, argmax of the fit, fit at 0, `middle` and 99, middle)
        type Case<'a> = (&'a str, Vec<f64>, usize, usize, [f64; 3], usize);
        let cases: [Case; 4] = [
            (
                "peak",
                curve(&|v| 5.0 * (-(v - 0.7f64).powi(2) / 0.02).exp() + 0.6 * (37.0 * v).sin()),
                63,
                63,
                [-0.6593019129595202, 1.9961540591057745, -0.11888681880390099],
                37,
            ),
            (
                "steps",
                curve(&|v| (v * 20.0).floor() / 3.0 + 0.2 * (91.0 * v).cos()),
                99,
                99,
                [1.8375837765335972, 3.4516225370925837, 6.156193588982716],
                37,
            ),
            (
                "tail",
                curve(&|v| if v < 0.9 { 3.0 * v } else { 0.0 } + 0.3 * (53.0 * v * v).sin()),
                86,
                85,
                [0.5671578431137896, 1.6443601969761694, -0.20367861407505256],
                37,
            ),
            ("spike", spike, 20, 99, [0.6715192351702938, 0.915729032862527, 1.8803390828449444], 20),
        ];
        let argmax = |v: &[f64]| (0..v.len()).fold(0, |b, i| if v[i] > v[b] { i } else { b });
        for (name, y, raw, fitted, values, middle) in cases {
            let g = gcv_smoothed(&x, &y).unwrap();
            assert_eq!((argmax(&y), argmax(&g)), (raw, fitted), "{name}");
            // "steps" and "spike" have flat criteria whose minimum is rounding noise (below): the λ
            // found differs, the fit by 1e-6.
            let tolerance = if matches!(name, "steps" | "spike") { 1e-5 } else { 1e-9 };
            for (i, want) in [0, middle, 99].into_iter().zip(values) {
                assert!(
                    (g[i] - want).abs() <= tolerance * want.abs().max(1.0),
                    "{name}[{i}]: {} vs scipy {want}",
                    g[i]
                );
            }
        }
        // At a given λ the criterion is scipy's to the last bits (its c is the same to the
        // bit); on "steps" near its minimum it varies by 1e-6 from one λ to the next (the
        // system is ill-conditioned there), so the minimum Brent's search lands on depends on
        // the last bit of each value: on BLAS's summation order, hence on the machine, for
        // scipy too.
        let steps = curve(&|v| (v * 20.0).floor() / 3.0 + 0.2 * (91.0 * v).cos());
        let p = Problem::new(&x, &steps);
        for (lambda, scipy) in [(1.0, 0.029213400616395768), (50.0, 0.029181021945735214), (100.0, 0.02918067500324374)]
        {
            let g = p.gcv(lambda);
            assert!((g - scipy).abs() <= 1e-14 * scipy, "GCV({lambda}) = {g} vs scipy {scipy}");
        }
    }
}
