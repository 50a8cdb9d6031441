//! Instrument response functions from simulated events: the quantities pyirf computes, with
//! its conventions, so that ours agree with it bin for bin (the interop test checks it).
//!
//! * Histograms follow numpy's `histogram`: bins are `[lo, hi)` except the last, which includes
//!   its upper edge; values outside the edges and NaN are not counted.
//! * Thrown showers per bin ([`SimulationInfo`]) come from the power-law integral in energy and,
//!   for diffuse simulations, from the uniform-per-solid-angle view cone in offset.
//! * Effective area = selected / thrown × π·max_impact² (m², and 0 where nothing was thrown, where pyirf gives NaN); energy dispersion = the
//!   (true energy, migration, offset) histogram normalised over migration and divided by the
//!   migration bin width; PSF = the (true energy, offset, θ) histogram normalised over θ and
//!   divided by each ring's solid angle (sr⁻¹); background = the weighted (reco energy, offset)
//!   histogram divided by the energy bin width, the observation time and the ring's solid
//!   angle (s⁻¹ TeV⁻¹ sr⁻¹).
//!
//! Arrays are row-major with the axes in the order named (energy first), as in pyirf; the GADF
//! writer transposes them as the format requires. Pure functions over slices: no I/O.

/// What was thrown: pyirf's `SimulatedEventsInfo`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SimulationInfo {
    pub n_showers: f64,
    pub energy_min_tev: f64,
    pub energy_max_tev: f64,
    pub max_impact_m: f64,
    pub spectral_index: f64,
    pub viewcone_min_deg: f64,
    pub viewcone_max_deg: f64,
}

/// Why a response cannot be computed.
#[derive(Debug, PartialEq)]
pub enum IrfError {
    /// Offset-dependent quantities need a diffuse simulation (a view cone of non-zero width).
    NotDiffuse,
    BadEdges(&'static str),
    LengthMismatch,
}

impl std::fmt::Display for IrfError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IrfError::NotDiffuse => write!(
                f,
                "the simulation is point-like (view cone of zero width): thrown showers per offset bin are undefined; use a diffuse simulation or an energy-only response"
            ),
            IrfError::BadEdges(what) => write!(f, "{what} bin edges must be at least two increasing finite values"),
            IrfError::LengthMismatch => write!(f, "event columns of different lengths"),
        }
    }
}

fn check_edges(edges: &[f64], what: &'static str) -> Result<(), IrfError> {
    if edges.len() < 2 || !edges.iter().all(|e| e.is_finite()) || !edges.windows(2).all(|w| w[0] < w[1]) {
        return Err(IrfError::BadEdges(what));
    }
    Ok(())
}

/// numpy's bin of `x` for increasing `edges`, or `None` outside (and for NaN).
#[inline]
pub fn bin_index(edges: &[f64], x: f64) -> Option<usize> {
    let n = edges.len();
    if !(x >= edges[0] && x <= edges[n - 1]) {
        return None;
    }
    if x == edges[n - 1] {
        return Some(n - 2);
    }
    Some(edges.partition_point(|&e| e <= x) - 1)
}

/// The solid angle of a cone of half-opening `deg` (sr).
pub fn cone_solid_angle(deg: f64) -> f64 {
    std::f64::consts::TAU * (1.0 - deg.to_radians().cos())
}

fn ring_solid_angles(edges_deg: &[f64]) -> Vec<f64> {
    edges_deg.windows(2).map(|w| cone_solid_angle(w[1]) - cone_solid_angle(w[0])).collect()
}

fn powerlaw_integral(index: f64, lo: f64, hi: f64, e_min: f64, e_max: f64) -> f64 {
    let k = index + 1.0;
    (hi.powf(k) - lo.powf(k)) / (e_max.powf(k) - e_min.powf(k))
}

impl SimulationInfo {
    /// Expected thrown showers per energy bin (TeV edges).
    pub fn showers_per_energy(&self, edges: &[f64]) -> Vec<f64> {
        let (e_min, e_max) = (self.energy_min_tev, self.energy_max_tev);
        edges
            .windows(2)
            .map(|w| {
                let (lo, hi) = (w[0].max(e_min), w[1].min(e_max));
                if w[1] <= e_min || w[0] >= e_max || lo >= hi {
                    0.0
                } else {
                    self.n_showers * powerlaw_integral(self.spectral_index, lo, hi, e_min, e_max)
                }
            })
            .collect()
    }

    /// The fraction of thrown showers per offset bin (deg edges), uniform per solid angle.
    pub fn fraction_per_offset(&self, edges_deg: &[f64]) -> Result<Vec<f64>, IrfError> {
        let (v_min, v_max) = (self.viewcone_min_deg.to_radians(), self.viewcone_max_deg.to_radians());
        if v_max - v_min == 0.0 {
            return Err(IrfError::NotDiffuse);
        }
        let norm = 1.0 / (v_min.cos() - v_max.cos());
        Ok(edges_deg
            .windows(2)
            .map(|w| {
                let (lo, hi) = (w[0].to_radians(), w[1].to_radians());
                if hi >= v_min && lo <= v_max {
                    (lo.max(v_min).cos() - hi.min(v_max).cos()) * norm
                } else {
                    0.0
                }
            })
            .collect())
    }

    /// Expected thrown showers per (energy, offset) bin, row-major.
    pub fn showers_per_energy_and_offset(&self, e_edges: &[f64], off_edges: &[f64]) -> Result<Vec<f64>, IrfError> {
        let per_e = self.showers_per_energy(e_edges);
        let frac = self.fraction_per_offset(off_edges)?;
        Ok(per_e.iter().flat_map(|n| frac.iter().map(move |f| n * f)).collect())
    }
}

/// A row-major histogram over the given axes.
fn histogram(axes: &[&[f64]], columns: &[&[f64]], weights: Option<&[f64]>) -> Vec<f64> {
    let shape: Vec<usize> = axes.iter().map(|e| e.len() - 1).collect();
    let mut out = vec![0.0; shape.iter().product()];
    let n = columns[0].len();
    'event: for i in 0..n {
        let mut flat = 0;
        for (d, (edges, column)) in axes.iter().zip(columns).enumerate() {
            let Some(b) = bin_index(edges, column[i]) else { continue 'event };
            flat = flat * shape[d] + b;
        }
        out[flat] += weights.map_or(1.0, |w| w[i]);
    }
    out
}

fn same_lengths(columns: &[&[f64]]) -> Result<(), IrfError> {
    if columns.windows(2).all(|w| w[0].len() == w[1].len()) {
        Ok(())
    } else {
        Err(IrfError::LengthMismatch)
    }
}

fn ratio_times(selected: &[f64], thrown: &[f64], area: f64) -> Vec<f64> {
    selected.iter().zip(thrown).map(|(&s, &t)| if t > 0.0 { s / t * area } else { 0.0 }).collect()
}

/// Effective area (m²) per true-energy bin, from the selected events' true energies.
pub fn effective_area_per_energy(true_e: &[f64], sim: &SimulationInfo, e_edges: &[f64]) -> Result<Vec<f64>, IrfError> {
    check_edges(e_edges, "true energy")?;
    let selected = histogram(&[e_edges], &[true_e], None);
    let area = std::f64::consts::PI * sim.max_impact_m.powi(2);
    Ok(ratio_times(&selected, &sim.showers_per_energy(e_edges), area))
}

/// Effective area (m²) per (true energy, true offset) bin, row-major.
pub fn effective_area_per_energy_and_offset(
    true_e: &[f64],
    true_offset_deg: &[f64],
    sim: &SimulationInfo,
    e_edges: &[f64],
    off_edges: &[f64],
) -> Result<Vec<f64>, IrfError> {
    check_edges(e_edges, "true energy")?;
    check_edges(off_edges, "offset")?;
    same_lengths(&[true_e, true_offset_deg])?;
    let selected = histogram(&[e_edges, off_edges], &[true_e, true_offset_deg], None);
    let thrown = sim.showers_per_energy_and_offset(e_edges, off_edges)?;
    let area = std::f64::consts::PI * sim.max_impact_m.powi(2);
    Ok(ratio_times(&selected, &thrown, area))
}

/// Energy dispersion dP/dμ per (true energy, μ = reco/true, true offset), row-major.
pub fn energy_dispersion(
    true_e: &[f64],
    reco_e: &[f64],
    true_offset_deg: &[f64],
    e_edges: &[f64],
    migration_edges: &[f64],
    off_edges: &[f64],
) -> Result<Vec<f64>, IrfError> {
    check_edges(e_edges, "true energy")?;
    check_edges(migration_edges, "migration")?;
    check_edges(off_edges, "offset")?;
    same_lengths(&[true_e, reco_e, true_offset_deg])?;
    let mu: Vec<f64> = reco_e.iter().zip(true_e).map(|(r, t)| r / t).collect();
    let mut h = histogram(&[e_edges, migration_edges, off_edges], &[true_e, &mu, true_offset_deg], None);
    let (n_e, n_m, n_o) = (e_edges.len() - 1, migration_edges.len() - 1, off_edges.len() - 1);
    for e in 0..n_e {
        for o in 0..n_o {
            let norm: f64 = (0..n_m).map(|m| h[(e * n_m + m) * n_o + o]).sum();
            for m in 0..n_m {
                let v = &mut h[(e * n_m + m) * n_o + o];
                let width = migration_edges[m + 1] - migration_edges[m];
                *v = if norm > 0.0 { *v / norm / width } else { 0.0 };
            }
        }
    }
    Ok(h)
}

/// PSF (sr⁻¹) per (true energy, true offset, θ), row-major; θ edges in degrees.
pub fn psf_table(
    true_e: &[f64],
    true_offset_deg: &[f64],
    theta_deg: &[f64],
    e_edges: &[f64],
    off_edges: &[f64],
    rad_edges: &[f64],
) -> Result<Vec<f64>, IrfError> {
    check_edges(e_edges, "true energy")?;
    check_edges(off_edges, "offset")?;
    check_edges(rad_edges, "source offset")?;
    same_lengths(&[true_e, true_offset_deg, theta_deg])?;
    let mut h = histogram(&[e_edges, off_edges, rad_edges], &[true_e, true_offset_deg, theta_deg], None);
    let n_r = rad_edges.len() - 1;
    let solid = ring_solid_angles(rad_edges);
    for row in h.chunks_mut(n_r) {
        let norm: f64 = row.iter().sum();
        for (v, s) in row.iter_mut().zip(&solid) {
            *v = if norm > 0.0 { *v / norm / s } else { 0.0 };
        }
    }
    Ok(h)
}

/// Background rate (s⁻¹ TeV⁻¹ sr⁻¹) per (reco energy, reco offset), row-major, from weighted
/// events observed for `t_obs_s` seconds.
pub fn background_2d(
    reco_e: &[f64],
    reco_offset_deg: &[f64],
    weights: &[f64],
    e_edges: &[f64],
    off_edges: &[f64],
    t_obs_s: f64,
) -> Result<Vec<f64>, IrfError> {
    check_edges(e_edges, "reco energy")?;
    check_edges(off_edges, "offset")?;
    same_lengths(&[reco_e, reco_offset_deg, weights])?;
    let mut h = histogram(&[e_edges, off_edges], &[reco_e, reco_offset_deg], Some(weights));
    let n_o = off_edges.len() - 1;
    let solid = ring_solid_angles(off_edges);
    for (e, row) in h.chunks_mut(n_o).enumerate() {
        let width = e_edges[e + 1] - e_edges[e];
        for (v, s) in row.iter_mut().zip(&solid) {
            *v = *v / width / t_obs_s / s;
        }
    }
    Ok(h)
}

/// Li & Ma (1983) eq. 17 significance, with pyirf's conventions: zero-count terms are 0, and
/// the significance is 0 when `n_on < alpha · n_off`.
pub fn li_ma_significance(n_on: f64, n_off: f64, alpha: f64) -> f64 {
    if n_on < alpha * n_off {
        return 0.0;
    }
    let total = n_on + n_off;
    let on = if n_on > 0.0 { n_on * ((1.0 + alpha) / alpha * (n_on / total)).ln() } else { 0.0 };
    let off = if n_off > 0.0 { n_off * ((1.0 + alpha) * (n_off / total)).ln() } else { 0.0 };
    (2.0 * (on + off)).max(0.0).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sim(viewcone: f64) -> SimulationInfo {
        SimulationInfo {
            n_showers: 1e6,
            energy_min_tev: 0.5,
            energy_max_tev: 200.0,
            max_impact_m: 400.0,
            spectral_index: -2.0,
            viewcone_min_deg: 0.0,
            viewcone_max_deg: viewcone,
        }
    }

    #[test]
    fn numpy_bin_semantics() {
        let e = [0.0, 1.0, 2.0];
        assert_eq!(bin_index(&e, 0.0), Some(0));
        assert_eq!(bin_index(&e, 1.0), Some(1));
        assert_eq!(bin_index(&e, 2.0), Some(1)); // the last bin includes its upper edge
        assert_eq!(bin_index(&e, 2.1), None);
        assert_eq!(bin_index(&e, -0.1), None);
        assert_eq!(bin_index(&e, f64::NAN), None);
    }

    #[test]
    fn thrown_showers_add_up() {
        let s = sim(3.0);
        let per_e = s.showers_per_energy(&[0.1, 0.5, 10.0, 200.0, 1000.0]);
        assert_eq!(per_e[0], 0.0);
        assert_eq!(per_e[3], 0.0);
        assert!((per_e.iter().sum::<f64>() - 1e6).abs() < 1e-6);
        let f = s.fraction_per_offset(&[0.0, 1.0, 3.0, 5.0]).unwrap();
        assert!((f.iter().sum::<f64>() - 1.0).abs() < 1e-12 && f[2] == 0.0);
        assert_eq!(sim(0.0).fraction_per_offset(&[0.0, 1.0]), Err(IrfError::NotDiffuse));
    }

    #[test]
    fn normalisations() {
        let true_e = [1.0, 1.5, 1.2, 3.0];
        let reco_e = [1.1, 1.4, 1.3, 2.5];
        let off = [0.5, 0.5, 0.6, 0.5];
        let edisp = energy_dispersion(&true_e, &reco_e, &off, &[1.0, 2.0, 4.0], &[0.5, 1.0, 1.5], &[0.0, 1.0]).unwrap();
        // Per (energy, offset), Σ dP/dμ · Δμ = 1.
        for e in 0..2 {
            let s: f64 = (0..2).map(|m| edisp[e * 2 + m] * 0.5).sum();
            assert!((s - 1.0).abs() < 1e-12, "{edisp:?}");
        }
        let psf =
            psf_table(&true_e, &off, &[0.05, 0.1, 0.02, 0.3], &[1.0, 4.0], &[0.0, 1.0], &[0.0, 0.1, 0.5]).unwrap();
        let solid = ring_solid_angles(&[0.0, 0.1, 0.5]);
        assert!((psf[0] * solid[0] + psf[1] * solid[1] - 1.0).abs() < 1e-12);
        // sqrt(2·(100 ln 2 + 200 ln 0.8)) = 7.026
        assert!((li_ma_significance(100.0, 200.0, 0.2) - 7.026).abs() < 1e-3);
        assert_eq!(li_ma_significance(10.0, 100.0, 0.2), 0.0);
    }
}
