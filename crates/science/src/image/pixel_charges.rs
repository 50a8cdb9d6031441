//! sst1mpipe's pixel-charge distributions (`sst1mpipe_r0_dl1 --px-charges`), which analysts
//! compare between a night's pedestal events and the simulations' noise pixels to tune the
//! Monte Carlo night-sky background.
//!
//! * [`ChargeHistogram`]: DL1 pixel charges histogrammed on [−10, 40] p.e. in 1000 bins, as
//!   numpy's `histogram(image, range=(-10, 40), bins=1000)` bins them (last edge included,
//!   values outside left out), summed over events. Camera data: every pixel of every pedestal
//!   event; simulations: the pixels without Cherenkov light (true image 0).
//! * [`PedestalChargeMaps`]: per-pixel mean and standard deviation of the pedestal events'
//!   charges in consecutive time windows of `analysis.ped_time_window` seconds. As sst1mpipe's
//!   loop: the first window starts at the run's first event (of any type); a pedestal more than
//!   the window after the start closes the window (when it holds any pedestal) and starts the
//!   next one at its own time; sums are float32, as numpy keeps them for float32 images, and
//!   σ = √(Σq²/n − mean²) (NaN where rounding makes it negative, as numpy).
//! * [`RecleanMaps`]: sst1mpipe's `--reclean`, the second pass over a run that cleans each
//!   event with the charge map of its time instead of the run's first pedestals: maps with more
//!   than `min_number_pedestals` pedestals are kept, each gets its NSB level (the pixel mean of
//!   its mean charges, numpy's float32 mean), and an event takes the last kept map starting at
//!   or before its time, or the last map when it precedes them all (sst1mpipe's reversed scan).

/// Bins of the charge histogram: sst1mpipe's `BINS`, range and edges.
pub const CHARGE_BINS: usize = 1000;
pub const CHARGE_RANGE_PE: (f64, f64) = (-10.0, 40.0);

/// A pixel-charge histogram (see the module doc).
#[derive(Clone, Debug, PartialEq)]
pub struct ChargeHistogram {
    pub edges: Vec<f64>,
    pub counts: Vec<f64>,
    /// Events that contributed.
    pub n_events: u64,
}

impl Default for ChargeHistogram {
    fn default() -> Self {
        ChargeHistogram {
            edges: crate::irf::smoothing::linspace(CHARGE_RANGE_PE.0, CHARGE_RANGE_PE.1, CHARGE_BINS + 1),
            counts: vec![0.0; CHARGE_BINS],
            n_events: 0,
        }
    }
}

impl ChargeHistogram {
    /// Adds one event's charges.
    pub fn add_event(&mut self, charges: impl Iterator<Item = f32>) {
        let last = self.edges.len() - 1;
        for q in charges {
            let q = q as f64;
            if !(q >= self.edges[0] && q <= self.edges[last]) {
                continue;
            }
            let k = self.edges.partition_point(|&e| e <= q).clamp(1, last);
            self.counts[k - 1] += 1.0;
        }
        self.n_events += 1;
    }
}

/// One window of pedestal charges: its start (the camera clock, ns), its pedestal count and
/// the per-pixel mean and standard deviation (p.e.).
#[derive(Clone, Debug, PartialEq)]
pub struct ChargeMap {
    pub start_ns: i64,
    pub n: i64,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
}

/// Pedestal charge maps in time windows (see the module doc).
#[derive(Clone, Debug)]
pub struct PedestalChargeMaps {
    window_s: f64,
    start_ns: Option<i64>,
    n: i64,
    sum: Vec<f32>,
    sum2: Vec<f32>,
    pub maps: Vec<ChargeMap>,
}

impl PedestalChargeMaps {
    pub fn new(window_s: f64, n_pixels: usize) -> PedestalChargeMaps {
        PedestalChargeMaps {
            window_s,
            start_ns: None,
            n: 0,
            sum: vec![0.0; n_pixels],
            sum2: vec![0.0; n_pixels],
            maps: Vec::new(),
        }
    }

    /// Every event, pedestal or not, in time order: the first one starts the first window.
    pub fn see_event(&mut self, time_ns: i64) {
        self.start_ns.get_or_insert(time_ns);
    }

    /// A pedestal event's charges (after [`Self::see_event`] for it).
    pub fn add_pedestal(&mut self, time_ns: i64, charges: &[f32]) {
        let start = *self.start_ns.get_or_insert(time_ns);
        if (time_ns - start) as f64 * 1e-9 > self.window_s && self.n > 0 {
            self.close(start);
            self.start_ns = Some(time_ns);
        }
        for ((s, s2), &q) in self.sum.iter_mut().zip(self.sum2.iter_mut()).zip(charges) {
            *s += q;
            *s2 += q * q;
        }
        self.n += 1;
    }

    fn close(&mut self, start_ns: i64) {
        let n = self.n as f32;
        let mean: Vec<f32> = self.sum.iter().map(|s| s / n).collect();
        let std: Vec<f32> = self.sum2.iter().zip(&mean).map(|(s2, m)| (s2 / n - m * m).sqrt()).collect();
        self.maps.push(ChargeMap { start_ns, n: self.n, mean, std });
        self.sum.iter_mut().chain(self.sum2.iter_mut()).for_each(|v| *v = 0.0);
        self.n = 0;
    }

    /// The maps, the last window's included when it holds a pedestal.
    pub fn finish(mut self) -> Vec<ChargeMap> {
        if let (Some(start), true) = (self.start_ns, self.n > 0) {
            self.close(start);
        }
        self.maps
    }
}

/// The charge maps a reclean pass uses (see the module doc).
#[derive(Clone, Debug)]
pub struct RecleanMaps {
    pub maps: Vec<ChargeMap>,
    /// Per kept map: its NSB level, the float32 mean of `mean` over the pixels.
    pub nsb_level: Vec<f32>,
}

impl RecleanMaps {
    /// Keeps the maps with more than `min_number_pedestals` pedestal events.
    pub fn new(maps: Vec<ChargeMap>, min_number_pedestals: f64) -> RecleanMaps {
        let maps: Vec<ChargeMap> = maps.into_iter().filter(|m| m.n as f64 > min_number_pedestals).collect();
        let nsb_level =
            maps.iter().map(|m| crate::image::params::numpy_sum_f32(&m.mean) / m.mean.len() as f32).collect();
        RecleanMaps { maps, nsb_level }
    }

    /// The map an event at `time_ns` is cleaned with: the last one (in file order) that starts
    /// at or before it, else the last one. None when no map was kept.
    pub fn select(&self, time_ns: i64) -> Option<usize> {
        let last = self.maps.len().checked_sub(1)?;
        Some(self.maps.iter().rposition(|m| m.start_ns <= time_ns).unwrap_or(last))
    }

    /// Per-pixel picture thresholds of map `i` for a setting's picture threshold and σ scaling:
    /// max(picture, mean + scaling·σ), in float32 as numpy computes it on the float32 maps.
    pub fn picture_thresholds(&self, i: usize, picture: f64, stdev_scaling: f64) -> Vec<f64> {
        let m = &self.maps[i];
        m.mean
            .iter()
            .zip(&m.std)
            .map(|(&q, &s)| {
                let raised = q + stdev_scaling as f32 * s;
                // np.maximum propagates NaN.
                if raised.is_nan() {
                    f64::NAN
                } else {
                    (picture as f32).max(raised) as f64
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_bins_as_numpy() {
        let mut h = ChargeHistogram::default();
        h.add_event([-10.0f32, -9.95, 39.99, 40.0, 40.01, -10.01, 0.0, f32::NAN].into_iter());
        assert_eq!((h.counts[0], h.counts[1], h.counts[999], h.counts[200]), (1.0, 1.0, 2.0, 1.0));
        assert_eq!(h.counts.iter().sum::<f64>(), 5.0);
        assert_eq!((h.edges.len(), h.edges[1000], h.n_events), (1001, 40.0, 1));
    }

    #[test]
    fn windows_close_as_sst1mpipe_closes_them() {
        let s = 1_000_000_000i64;
        let mut m = PedestalChargeMaps::new(10.0, 2);
        m.see_event(100 * s); // a shower event starts the first window
        m.add_pedestal(101 * s, &[1.0, 2.0]);
        m.add_pedestal(105 * s, &[3.0, 2.0]);
        m.add_pedestal(115 * s, &[5.0, 2.0]); // 15 s after the start: the first window closes
        let maps = m.finish();
        assert_eq!(maps.len(), 2);
        assert_eq!(
            (maps[0].start_ns, maps[0].n, maps[0].mean.clone(), maps[0].std.clone()),
            (100 * s, 2, vec![2.0, 2.0], vec![1.0, 0.0])
        );
        assert_eq!((maps[1].start_ns, maps[1].n, maps[1].mean.clone()), (115 * s, 1, vec![5.0, 2.0]));
    }

    #[test]
    fn reclean_selects_maps_as_sst1mpipes_reversed_scan() {
        let s = 1_000_000_000i64;
        let map = |start: i64, n: i64, q: f32| ChargeMap {
            start_ns: start * s,
            n,
            mean: vec![q, q + 1.0],
            std: vec![1.0, 0.0],
        };
        let r = RecleanMaps::new(vec![map(100, 150, 1.0), map(110, 50, 9.0), map(120, 101, 3.0)], 100.0);
        assert_eq!(r.maps.len(), 2, "the map of 50 pedestals is dropped");
        assert_eq!(r.nsb_level, vec![1.5, 3.5]);
        assert_eq!(r.select(99 * s), Some(1), "before every map: the last one");
        assert_eq!(r.select(100 * s), Some(0));
        assert_eq!(r.select(119 * s), Some(0));
        assert_eq!(r.select(125 * s), Some(1));
        assert_eq!(r.picture_thresholds(0, 2.0, 2.5), vec![3.5, 2.0]);
        assert_eq!(RecleanMaps::new(vec![map(100, 100, 1.0)], 100.0).select(0), None);
    }
}
