//! The distribution of thrown showers in core distance and energy: sim_telarray's histogram 6
//! ("Events, without weights (Ra3d, log10(E))"), which ctapipe copies into every simulated DL1
//! as `/simulation/service/shower_distribution` and sst1mpipe's `get_mc_info` sums to check
//! (and correct) the thrown-shower count `n_showers × shower_reuse`.
//!
//! sim_telarray fills it with every use of every shower, triggered or not, so its entries are
//! the denominator of an effective area; the embedded simulator fills the same histogram with
//! the same binning from the showers it throws, so both kinds of Monte Carlo carry it alike.
//! The binning is sim_telarray's: 200 bins of 3D core distance (the distance from the array
//! centre to the shower axis) from 0, and 120 bins of log10(E/TeV) on [−3, 3]. The upper core
//! edge in sim_telarray files is twice the maximum scatter radius, at least 1000 m (1000 → 2000,
//! 1500 → 3000, 2500 → 5000 and 100 → 1000 m in the sample files); the embedded simulator uses
//! the same rule.
//!
//! Counts are `f32` as sim_telarray stores them (type 'F' histograms), energy-major
//! (`[energy bin][core bin]`), the shape pyeventio and ctapipe give them. ctapipe labels the x
//! axis (core distance) `bins_core_dist` and the y axis `bins_energy` (10^edges, TeV).
use super::smoothing::linspace;

/// sim_telarray's id of the thrown-shower histogram ctapipe keeps.
pub const THROWN_SHOWERS_HISTOGRAM_ID: i64 = 6;

/// One 2D histogram of thrown showers (see the module doc).
#[derive(Clone, Debug, PartialEq)]
pub struct ShowerDistribution {
    pub obs_id: i64,
    pub hist_id: i64,
    /// Entries, as sim_telarray counts them (inside and outside the bins).
    pub n_entries: i64,
    /// Bin edges: energy (TeV, `10**linspace` of the log10 range, as ctapipe computes them) and
    /// core distance (m).
    pub bins_energy_tev: Vec<f64>,
    pub bins_core_dist_m: Vec<f64>,
    /// `(bins_energy − 1) × (bins_core_dist − 1)` counts, energy-major.
    pub counts: Vec<f32>,
}

impl ShowerDistribution {
    /// A histogram with the given bins (log10(E/TeV) and core distance in m, each `n` bins
    /// on a range), its edges as ctapipe computes them from sim_telarray's ranges.
    pub fn with_bins(
        obs_id: i64,
        hist_id: i64,
        log10_energy: (f64, f64, usize),
        core_m: (f64, f64, usize),
    ) -> ShowerDistribution {
        let bins_energy_tev =
            linspace(log10_energy.0, log10_energy.1, log10_energy.2 + 1).into_iter().map(|x| 10f64.powf(x)).collect();
        ShowerDistribution {
            obs_id,
            hist_id,
            n_entries: 0,
            bins_energy_tev,
            bins_core_dist_m: linspace(core_m.0, core_m.1, core_m.2 + 1),
            counts: vec![0.0; log10_energy.2 * core_m.2],
        }
    }

    /// An empty histogram with sim_telarray's binning for a production thrown up to
    /// `max_scatter_m` from the array centre.
    pub fn sim_telarray_binning(obs_id: i64, max_scatter_m: f64) -> ShowerDistribution {
        Self::with_bins(
            obs_id,
            THROWN_SHOWERS_HISTOGRAM_ID,
            (-3.0, 3.0, 120),
            (0.0, (2.0 * max_scatter_m).max(1000.0), 200),
        )
    }

    pub fn n_bins_energy(&self) -> usize {
        self.bins_energy_tev.len().saturating_sub(1)
    }

    pub fn n_bins_core(&self) -> usize {
        self.bins_core_dist_m.len().saturating_sub(1)
    }

    /// Counts one thrown shower; values outside the bins count as entries only, as in
    /// sim_telarray (its under- and overflow).
    pub fn fill(&mut self, core_distance_m: f64, energy_tev: f64) {
        self.n_entries += 1;
        let bin = |v: f64, edges: &[f64]| {
            let k = edges.partition_point(|&e| e <= v);
            (k >= 1 && k < edges.len()).then(|| k - 1)
        };
        if let (Some(c), Some(e)) =
            (bin(core_distance_m, &self.bins_core_dist_m), bin(energy_tev, &self.bins_energy_tev))
        {
            let n_core = self.n_bins_core();
            self.counts[e * n_core + c] += 1.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges_follow_numpy_and_fills_land_in_their_bins() {
        let mut h = ShowerDistribution::sim_telarray_binning(1, 400.0);
        assert_eq!((h.bins_core_dist_m[0], h.bins_core_dist_m[200]), (0.0, 1000.0));
        assert_eq!(ShowerDistribution::sim_telarray_binning(1, 1500.0).bins_core_dist_m[200], 3000.0);
        let e = &h.bins_energy_tev;
        assert_eq!((e.len(), h.n_bins_energy(), h.n_bins_core()), (121, 120, 200));
        assert!((e[60] - 1.0).abs() < 1e-12 && (e[0] - 1e-3).abs() < 1e-15 && e[120] == 1000.0);
        h.fill(7.4, 1.0); // core bin 1 (5 m bins), energy bin 60
        h.fill(2000.0, 1.0); // outside: an entry, no count
        assert_eq!(h.n_entries, 2);
        assert_eq!(h.counts[60 * 200 + 1], 1.0);
        assert_eq!(h.counts.iter().sum::<f32>(), 1.0);
    }
}
