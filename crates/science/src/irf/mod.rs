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
pub mod performance;
pub mod shower_distribution;
pub mod smoothing;

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
/// pyirf's `PowerLaw.from_simulation` flux of the thrown events at E: per m² s TeV sr for a
/// diffuse simulation, per m² s TeV for a point-like one (view cone 0).
pub fn simulated_flux(sim: &SimulationInfo, t_obs_s: f64, e: f64) -> f64 {
    let k = sim.spectral_index + 1.0;
    let area = std::f64::consts::PI * sim.max_impact_m.powi(2);
    let solid = if sim.viewcone_max_deg > 0.0 {
        cone_solid_angle(sim.viewcone_max_deg) - cone_solid_angle(sim.viewcone_min_deg)
    } else {
        1.0
    };
    let delta = sim.energy_max_tev.powf(k) - sim.energy_min_tev.powf(k);
    k * sim.n_showers / (area * t_obs_s * delta * solid) * e.powf(sim.spectral_index)
}

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
    /// The simulation as seen after a cut on true energy at `cut_tev` (sst1mpipe's
    /// `correct_number_simulated_showers`): when the cut is above the simulated minimum, the
    /// thrown showers are those of the power law above it, `int(n · ∫_cut^max / ∫_min^max)` (the
    /// whole-number truncation is sst1mpipe's), and the minimum energy is the cut. Otherwise
    /// unchanged.
    pub fn after_true_energy_cut(&self, cut_tev: f64) -> SimulationInfo {
        if cut_tev.is_nan() || cut_tev <= self.energy_min_tev || cut_tev >= self.energy_max_tev {
            return *self;
        }
        let e = self.spectral_index + 1.0;
        let integral = |lo: f64, hi: f64| {
            if e.abs() < 1e-12 {
                (hi / lo).ln()
            } else {
                hi.powf(e) / e - lo.powf(e) / e
            }
        };
        let old = integral(self.energy_min_tev, self.energy_max_tev);
        let new = integral(cut_tev, self.energy_max_tev);
        SimulationInfo { n_showers: (self.n_showers * new / old).trunc(), energy_min_tev: cut_tev, ..*self }
    }

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

/// pyirf's `calculate_bin_indices`: `[lo, hi)` bins, the last upper edge excluded too.
fn cut_bin(edges: &[f64], x: f64) -> Option<usize> {
    if !(x >= edges[0] && x < edges[edges.len() - 1]) {
        return None;
    }
    Some(edges.partition_point(|&e| e <= x) - 1)
}

/// numpy's linear-interpolation percentile of `values` (NaN ignored); NaN when empty.
pub fn percentile(values: &mut [f64], q: f64) -> f64 {
    let mut n = 0;
    for i in 0..values.len() {
        if !values[i].is_nan() {
            values.swap(n, i);
            n += 1;
        }
    }
    let v = &mut values[..n];
    if v.is_empty() {
        return f64::NAN;
    }
    let pos = q / 100.0 * (n - 1) as f64;
    let (lo, frac) = (pos.floor() as usize, pos - pos.floor());
    // Two order statistics by selection (linear time), not a full sort.
    let (_, &mut at_lo, above) = v.select_nth_unstable_by(lo, f64::total_cmp);
    if frac > 0.0 && !above.is_empty() {
        let next = above.iter().copied().fold(f64::INFINITY, f64::min);
        at_lo + (next - at_lo) * frac
    } else {
        at_lo
    }
}

/// One bin of a cut table (pyirf's `calculate_percentile_cut` rows).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CutBin {
    pub low: f64,
    pub high: f64,
    pub n_events: usize,
    pub cut: f64,
}

/// pyirf's `calculate_percentile_cut`: per bin of `bin_values`, the `q`-th percentile of
/// `values`, clipped to `[min_value, max_value]`; bins with fewer than `min_events` events get
/// `fill_value`. E.g. the gammaness cut keeping a fraction ε of gammas is q = 100·(1 − ε); the θ
/// cut of 68% containment is q = 68.
pub fn percentile_cut(
    values: &[f64],
    bin_values: &[f64],
    edges: &[f64],
    q: f64,
    fill_value: f64,
    clip: (Option<f64>, Option<f64>),
    min_events: usize,
) -> Result<Vec<CutBin>, IrfError> {
    check_edges(edges, "cut")?;
    same_lengths(&[values, bin_values])?;
    let mut per_bin: Vec<Vec<f64>> = vec![Vec::new(); edges.len() - 1];
    for (&v, &b) in values.iter().zip(bin_values) {
        if let Some(i) = cut_bin(edges, b) {
            per_bin[i].push(v);
        }
    }
    Ok(per_bin
        .into_iter()
        .enumerate()
        .map(|(i, mut v)| {
            let n_events = v.len();
            let cut = if n_events < min_events {
                fill_value
            } else {
                let mut c = percentile(&mut v, q);
                if let Some(lo) = clip.0 {
                    c = c.max(lo);
                }
                if let Some(hi) = clip.1 {
                    c = c.min(hi);
                }
                c
            };
            CutBin { low: edges[i], high: edges[i + 1], n_events, cut }
        })
        .collect())
}

/// The criteria of a detection: significance, signal events, and excess over background.
#[derive(Clone, Copy, Debug)]
pub struct DetectionCriteria {
    pub min_significance: f64,
    pub min_signal_events: f64,
    pub min_excess_over_background: f64,
}

/// The usual ones: 5σ, at least 10 excess events, excess at least 5% of the background.
pub const STANDARD_DETECTION: DetectionCriteria =
    DetectionCriteria { min_significance: 5.0, min_signal_events: 10.0, min_excess_over_background: 0.05 };

/// Brent's root finder on [a, b] (f(a), f(b) of opposite signs), to scipy's default tolerances.
fn brent(f: impl Fn(f64) -> f64, mut a: f64, mut b: f64) -> Option<f64> {
    let (xtol, rtol) = (2e-12, 4.0 * f64::EPSILON);
    let (mut fa, mut fb) = (f(a), f(b));
    if fa * fb > 0.0 {
        return None;
    }
    let (mut c, mut fc, mut d, mut e) = (a, fa, b - a, b - a);
    for _ in 0..200 {
        if fb * fc > 0.0 {
            c = a;
            fc = fa;
            d = b - a;
            e = d;
        }
        if fc.abs() < fb.abs() {
            a = b;
            b = c;
            c = a;
            fa = fb;
            fb = fc;
            fc = fa;
        }
        let tol = 2.0 * rtol * b.abs() + 0.5 * xtol;
        let m = 0.5 * (c - b);
        if m.abs() <= tol || fb == 0.0 {
            return Some(b);
        }
        if e.abs() >= tol && fa.abs() > fb.abs() {
            let s = fb / fa;
            let (mut p, mut q) = if a == c {
                (2.0 * m * s, 1.0 - s)
            } else {
                let (q0, r) = (fa / fc, fb / fc);
                (s * (2.0 * m * q0 * (q0 - r) - (b - a) * (r - 1.0)), (q0 - 1.0) * (r - 1.0) * (s - 1.0))
            };
            if p > 0.0 {
                q = -q;
            } else {
                p = -p;
            }
            if 2.0 * p < (3.0 * m * q - (tol * q).abs()).min((e * q).abs()) {
                e = d;
                d = p / q;
            } else {
                d = m;
                e = m;
            }
        } else {
            d = m;
            e = m;
        }
        a = b;
        fa = fb;
        b += if d.abs() > tol { d } else { tol.copysign(m) };
        fb = f(b);
    }
    Some(b)
}

/// pyirf's relative sensitivity: the factor by which the signal (`n_on − α·n_off`) must be
/// scaled to reach the detection criteria. ∞ without excess, NaN when no root is found.
pub fn relative_sensitivity(n_on: f64, n_off: f64, alpha: f64, criteria: &DetectionCriteria) -> f64 {
    if n_on.is_nan() || n_off.is_nan() || n_on < 0.0 || n_off < 0.0 {
        return f64::NAN;
    }
    let background = n_off * alpha;
    let signal = n_on - background;
    if signal <= 0.0 {
        return f64::INFINITY;
    }
    let equation = |flux: f64| li_ma_significance(signal * flux + background, n_off, alpha) - criteria.min_significance;
    let (lo, hi) = if n_off > 1.0 {
        let naive = criteria.min_significance * background.sqrt() / signal;
        (0.01 * naive, 10.0 * naive)
    } else {
        (1e-4, 100.0)
    };
    let Some(flux) = brent(equation, lo, hi) else {
        return f64::NAN;
    };
    let scaled_signal = signal * flux;
    let min_signal = criteria.min_signal_events.max(criteria.min_excess_over_background * background);
    if scaled_signal < min_signal {
        flux * min_signal / scaled_signal
    } else {
        flux
    }
}

/// One reco-energy bin of a sensitivity curve (pyirf's `calculate_sensitivity` columns).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SensitivityBin {
    pub low: f64,
    pub high: f64,
    /// Weighted signal events in the on region (θ ≤ the bin's θ cut), at the reference flux.
    pub n_signal_weighted: f64,
    /// Weighted background events in one off region (ring scaled to the on region and α).
    pub n_background_weighted: f64,
    /// Flux, relative to the reference, that meets the detection criteria.
    pub relative_sensitivity: f64,
}

/// The events of one particle type after the gammaness cut: reco energy, θ (signal) or reco
/// offset (background), weight.
pub struct WeightedEvents<'a> {
    pub reco_energy: &'a [f64],
    pub angle_deg: &'a [f64],
    pub weight: &'a [f64],
}

/// pyirf's point-source sensitivity: signal within the θ cut of its reco-energy bin; background
/// counted in the FoV ring [`fov_min`, `fov_max`) and scaled by Ω_on(θ cut at the bin centre)
/// / Ω_ring / α; then [`relative_sensitivity`] per bin. `theta_cuts` must be on `reco_edges`.
pub fn sensitivity_curve(
    signal: &WeightedEvents,
    background: &WeightedEvents,
    theta_cuts: &[CutBin],
    reco_edges: &[f64],
    alpha: f64,
    fov_deg: (f64, f64),
    criteria: &DetectionCriteria,
) -> Result<Vec<SensitivityBin>, IrfError> {
    check_edges(reco_edges, "reco energy")?;
    same_lengths(&[signal.reco_energy, signal.angle_deg, signal.weight])?;
    same_lengths(&[background.reco_energy, background.angle_deg, background.weight])?;
    if theta_cuts.len() != reco_edges.len() - 1 || theta_cuts.iter().zip(reco_edges).any(|(c, e)| c.low != *e) {
        return Err(IrfError::BadEdges("theta cut (must use the sensitivity's reco-energy)"));
    }
    let mut n_signal = vec![0.0; theta_cuts.len()];
    for i in 0..signal.reco_energy.len() {
        // The cut of the event's bin ([lo, hi) bins; events outside fail), then the histogram.
        let Some(b) = cut_bin(reco_edges, signal.reco_energy[i]) else { continue };
        if signal.angle_deg[i] <= theta_cuts[b].cut {
            if let Some(h) = bin_index(reco_edges, signal.reco_energy[i]) {
                n_signal[h] += signal.weight[i];
            }
        }
    }
    let mut n_bg = vec![0.0; theta_cuts.len()];
    for i in 0..background.reco_energy.len() {
        let off = background.angle_deg[i];
        if off >= fov_deg.0 && off < fov_deg.1 {
            if let Some(h) = bin_index(reco_edges, background.reco_energy[i]) {
                n_bg[h] += background.weight[i];
            }
        }
    }
    let ring = cone_solid_angle(fov_deg.1) - cone_solid_angle(fov_deg.0);
    Ok(theta_cuts
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let background = n_bg[i] * cone_solid_angle(c.cut) / ring / alpha;
            let rel = relative_sensitivity(n_signal[i] + alpha * background, background, alpha, criteria);
            SensitivityBin {
                low: c.low,
                high: c.high,
                n_signal_weighted: n_signal[i],
                n_background_weighted: background,
                relative_sensitivity: rel,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_true_energy_cut_rescales_the_thrown_showers_as_sst1mpipe() {
        let sim = SimulationInfo {
            n_showers: 1_000_000.0,
            energy_min_tev: 0.2,
            energy_max_tev: 200.0,
            max_impact_m: 400.0,
            spectral_index: -2.0,
            viewcone_min_deg: 0.0,
            viewcone_max_deg: 3.0,
        };
        // ∫ E^-2 from 0.4 to 200 over that from 0.2 to 200: (2.5 − 0.005) / (5 − 0.005).
        let cut = sim.after_true_energy_cut(0.4);
        assert_eq!(cut.n_showers, (1e6f64 * (2.5 - 0.005) / (5.0 - 0.005)).trunc());
        assert_eq!(cut.energy_min_tev, 0.4);
        assert_eq!(sim.after_true_energy_cut(0.2), sim);
        assert_eq!(sim.after_true_energy_cut(0.1), sim);
    }

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

    #[test]
    fn percentiles_cuts_and_sensitivity() {
        assert_eq!(percentile(&mut [3.0, 1.0, 2.0, f64::NAN], 50.0), 2.0);
        assert!((percentile(&mut [1.0, 2.0, 3.0, 4.0], 30.0) - 1.9).abs() < 1e-12);
        let cuts = percentile_cut(
            &[0.1, 0.5, 0.9, 0.7],
            &[1.0, 1.5, 1.2, 5.0],
            &[1.0, 2.0, 10.0],
            50.0,
            0.99,
            (None, Some(0.95)),
            2,
        )
        .unwrap();
        assert_eq!((cuts[0].n_events, cuts[0].cut), (3, 0.5));
        assert_eq!((cuts[1].n_events, cuts[1].cut), (1, 0.99));
        // Reaching exactly 5σ: Li & Ma of the scaled counts is 5.
        let f = relative_sensitivity(300.0, 1000.0, 0.2, &STANDARD_DETECTION);
        let s = li_ma_significance(100.0 * f + 200.0, 1000.0, 0.2);
        assert!((s - 5.0).abs() < 1e-9, "{f} {s}");
        // Few background events: the 10-event floor decides.
        let f = relative_sensitivity(20.0, 1.0, 0.2, &STANDARD_DETECTION);
        assert!((f * 19.8 - 10.0).abs() < 1e-9, "{f}");
        assert_eq!(relative_sensitivity(10.0, 100.0, 0.2, &STANDARD_DETECTION), f64::INFINITY);
    }
}
