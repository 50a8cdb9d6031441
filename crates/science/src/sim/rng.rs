//! A small, fast, seedable generator (xoshiro256**, seeded through SplitMix64) and the
//! distributions the simulator draws from. Each event gets its own stream derived from
//! (seed, event index), so events can be simulated in any order or in parallel with identical
//! results.

#[derive(Clone, Debug)]
pub struct Rng {
    s: [u64; 4],
    /// The second normal of the last polar-method pair, not yet handed out.
    spare: Option<f64>,
}

fn splitmix(x: &mut u64) -> u64 {
    *x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *x;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl Rng {
    pub fn new(seed: u64, stream: u64) -> Rng {
        let mut x = seed ^ stream.wrapping_mul(0xd1b5_4a32_d192_ed03);
        Rng { s: [splitmix(&mut x), splitmix(&mut x), splitmix(&mut x), splitmix(&mut x)], spare: None }
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in [0, 1).
    #[inline]
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Standard normal (Marsaglia polar method; each accepted pair gives two).
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        loop {
            let u = 2.0 * self.uniform() - 1.0;
            let v = 2.0 * self.uniform() - 1.0;
            let s = u * u + v * v;
            if s > 0.0 && s < 1.0 {
                let f = (-2.0 * s.ln() / s).sqrt();
                self.spare = Some(v * f);
                return u * f;
            }
        }
    }

    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.uniform()).ln()
    }

    /// Poisson: multiplication method below 30, a rounded normal above (relative error of the
    /// approximation < 1% there, far below the model's own uncertainties).
    pub fn poisson(&mut self, mean: f64) -> u64 {
        if mean <= 0.0 {
            return 0;
        }
        if mean < 30.0 {
            let limit = (-mean).exp();
            let mut k = 0;
            let mut p = self.uniform();
            while p > limit {
                k += 1;
                p *= self.uniform();
            }
            return k;
        }
        (mean + mean.sqrt() * self.normal() + 0.5).max(0.0) as u64
    }

    /// Gamma(shape k ≥ 1, scale θ) by Marsaglia–Tsang.
    pub fn gamma(&mut self, k: f64, theta: f64) -> f64 {
        let d = k - 1.0 / 3.0;
        let c = 1.0 / (9.0 * d).sqrt();
        loop {
            let x = self.normal();
            let v = (1.0 + c * x).powi(3);
            if v <= 0.0 {
                continue;
            }
            let u = self.uniform();
            if u.ln() < 0.5 * x * x + d - d * v + d * v.ln() {
                return d * v * theta;
            }
        }
    }

    /// Gamma(4, θ) as a sum of four exponentials: −θ·ln(u1·u2·u3·u4), one logarithm.
    #[inline]
    pub fn gamma4(&mut self, theta: f64) -> f64 {
        let p = (1.0 - self.uniform()) * (1.0 - self.uniform()) * (1.0 - self.uniform()) * (1.0 - self.uniform());
        -theta * p.ln()
    }

    /// Power law dN/dE ∝ E^index on [lo, hi] (index ≠ −1).
    pub fn power_law(&mut self, lo: f64, hi: f64, index: f64) -> f64 {
        let g = index + 1.0;
        let u = self.uniform();
        (lo.powf(g) + u * (hi.powf(g) - lo.powf(g))).powf(1.0 / g)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distributions_have_the_right_moments() {
        let mut r = Rng::new(42, 7);
        let n = 200_000;
        let mean = |f: &mut dyn FnMut() -> f64| (0..n).map(|_| f()).sum::<f64>() / n as f64;
        assert!((mean(&mut || r.uniform()) - 0.5).abs() < 0.005);
        let mut r = Rng::new(42, 8);
        assert!(mean(&mut || r.normal()).abs() < 0.01);
        let mut r = Rng::new(42, 14);
        let z: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let var = z.iter().map(|x| x * x).sum::<f64>() / n as f64;
        let lag1 = z.windows(2).map(|w| w[0] * w[1]).sum::<f64>() / (n - 1) as f64;
        assert!((var - 1.0).abs() < 0.01 && lag1.abs() < 0.01, "{var} {lag1}");
        let mut r = Rng::new(42, 9);
        assert!((mean(&mut || r.poisson(4.2) as f64) - 4.2).abs() < 0.03);
        let mut r = Rng::new(42, 10);
        assert!((mean(&mut || r.poisson(250.0) as f64) - 250.0).abs() < 0.3);
        let mut r = Rng::new(42, 11);
        assert!((mean(&mut || r.gamma(3.0, 2.0)) - 6.0).abs() < 0.05);
        let mut r = Rng::new(42, 13);
        let g: Vec<f64> = (0..n).map(|_| r.gamma4(2.0)).collect();
        let gm = g.iter().sum::<f64>() / n as f64;
        let gv = g.iter().map(|x| (x - gm).powi(2)).sum::<f64>() / n as f64;
        assert!((gm - 8.0).abs() < 0.05 && (gv - 16.0).abs() < 0.3, "{gm} {gv}");
        let mut r = Rng::new(42, 12);
        let e: Vec<f64> = (0..n).map(|_| r.power_law(1.0, 100.0, -2.0)).collect();
        let below_10 = e.iter().filter(|&&x| x < 10.0).count() as f64 / n as f64;
        assert!((below_10 - (1.0 - 0.1) / (1.0 - 0.01)).abs() < 0.005, "{below_10}");
        assert_eq!(Rng::new(1, 2).next_u64(), Rng::new(1, 2).next_u64());
        assert_ne!(Rng::new(1, 2).next_u64(), Rng::new(1, 3).next_u64());
    }
}
