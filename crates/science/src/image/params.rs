//! Image parameters of a cleaned image, defined as ctapipe's ImageProcessor computes them in
//! the camera frame (sst1mpipe's `camera_frame_*` columns), plus sst1mpipe's extra timing
//! features. All lengths in m, angles in rad, times in ns.
//!
//! Where ctapipe versions disagree, these follow ctapipe 0.17, which sst1mpipe pins: leakage
//! pixel fractions are of the camera's pixels (newer ctapipe divides by the cleaned pixels),
//! and the timing fit is 0.17's least-trimmed-squares fit with its per-call seeded generator
//! ([`super::lts`]), so every image gets exactly the fit sst1mpipe computes.
use super::clean::islands;
use crate::instrument::camera::{CameraGeometry, PIXEL_AREA_M2};

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Hillas {
    pub intensity: f64,
    pub x: f64,
    pub y: f64,
    pub r: f64,
    pub phi: f64,
    pub length: f64,
    pub length_uncertainty: f64,
    pub width: f64,
    pub width_uncertainty: f64,
    pub psi: f64,
    pub psi_uncertainty: f64,
    pub transverse_cog_uncertainty: f64,
    pub skewness: f64,
    pub kurtosis: f64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Statistics {
    pub max: f64,
    pub min: f64,
    pub mean: f64,
    pub std: f64,
    pub skewness: f64,
    pub kurtosis: f64,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ImageParameters {
    pub hillas: Hillas,
    pub leakage_pixels_width_1: f64,
    pub leakage_pixels_width_2: f64,
    pub leakage_intensity_width_1: f64,
    pub leakage_intensity_width_2: f64,
    pub concentration_cog: f64,
    pub concentration_core: f64,
    pub concentration_pixel: f64,
    pub timing_slope: f64,
    pub timing_intercept: f64,
    pub timing_deviation: f64,
    pub n_pixels: i64,
    pub n_islands: i64,
    pub n_small_islands: i64,
    pub n_medium_islands: i64,
    pub n_large_islands: i64,
    pub intensity_statistics: Statistics,
    pub peak_time_statistics: Statistics,
    /// sst1mpipe extras over the cleaned pixels: RMS of peak times, charge-weighted RMS around
    /// the unweighted mean, max − min, and the Pearson correlation of peak time with charge.
    pub t_rms: f64,
    pub t_rms_w: f64,
    pub t_lac: f64,
    pub len_st: f64,
}

const HILLAS_ATOL: f64 = f64::EPSILON;

/// Hillas parameters of the selected pixels (`sel`: pixel ids) of `image`.
pub fn hillas(geom: &CameraGeometry, image: &[f32], sel: &[usize]) -> Option<Hillas> {
    let w: Vec<f64> = sel.iter().map(|&p| image[p] as f64).collect();
    let size: f64 = w.iter().sum();
    if size == 0.0 || sel.is_empty() {
        return None;
    }
    let xs: Vec<f64> = sel.iter().map(|&p| geom.pix_x[p]).collect();
    let ys: Vec<f64> = sel.iter().map(|&p| geom.pix_y[p]).collect();
    let cog_x = xs.iter().zip(&w).map(|(x, w)| x * w).sum::<f64>() / size;
    let cog_y = ys.iter().zip(&w).map(|(y, w)| y * w).sum::<f64>() / size;
    let (mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0);
    for i in 0..w.len() {
        let (dx, dy) = (xs[i] - cog_x, ys[i] - cog_y);
        sxx += w[i] * dx * dx;
        syy += w[i] * dy * dy;
        sxy += w[i] * dx * dy;
    }
    sxx /= size;
    syy /= size;
    sxy /= size;
    // Eigen-decomposition of the symmetric 2×2 covariance.
    let half_trace = (sxx + syy) / 2.0;
    let disc = (((sxx - syy) / 2.0).powi(2) + sxy * sxy).sqrt();
    let mut l_major = half_trace + disc;
    let mut l_minor = half_trace - disc;
    if l_major.abs() <= HILLAS_ATOL {
        l_major = 0.0;
    }
    if l_minor.abs() <= HILLAS_ATOL || l_minor < 0.0 {
        l_minor = 0.0;
    }
    let (length, width) = (l_major.sqrt(), l_minor.sqrt());
    // Major-axis direction; for a diagonal matrix numpy's eigh returns unit vectors, the
    // larger eigenvalue's last: (1, 0) when sxx > syy, else (0, 1).
    let (vx, vy) = if sxy != 0.0 {
        if (l_major - syy).abs() >= (l_major - sxx).abs() {
            (l_major - syy, sxy)
        } else {
            (sxy, l_major - sxx)
        }
    } else if sxx > syy {
        (1.0, 0.0)
    } else {
        (0.0, 1.0)
    };
    let mut h = Hillas {
        intensity: size,
        x: cog_x,
        y: cog_y,
        r: cog_x.hypot(cog_y),
        phi: cog_y.atan2(cog_x),
        length,
        width,
        ..Default::default()
    };
    if length == 0.0 {
        h.psi = f64::NAN;
        h.psi_uncertainty = f64::NAN;
        h.transverse_cog_uncertainty = f64::NAN;
        h.skewness = f64::NAN;
        h.kurtosis = f64::NAN;
    } else {
        let psi = if vx != 0.0 { (vy / vx).atan() } else { std::f64::consts::FRAC_PI_2 };
        let (s, c) = psi.sin_cos();
        let (mut m3, mut m4) = (0.0, 0.0);
        // Weighted LSQ of transverse on longitudinal coordinate (weights charge / pixel area).
        let (mut a11, mut a12, mut a22, mut b1, mut b2) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for i in 0..w.len() {
            let (dx, dy) = (xs[i] - cog_x, ys[i] - cog_y);
            let longi = dx * c + dy * s;
            let trans = -dx * s + dy * c;
            m3 += w[i] * longi.powi(3);
            m4 += w[i] * longi.powi(4);
            let wi = w[i] / PIXEL_AREA_M2;
            a11 += wi * longi * longi;
            a12 += wi * longi;
            a22 += wi;
            b1 += wi * longi * trans;
            b2 += wi * trans;
        }
        h.psi = psi;
        h.skewness = m3 / size / length.powi(3);
        h.kurtosis = m4 / size / length.powi(4);
        let det = a11 * a22 - a12 * a12;
        let (i11, i12, i22) = (a22 / det, -a12 / det, a11 / det);
        let p0 = i11 * b1 + i12 * b2;
        h.psi_uncertainty =
            (i11 + p0 * p0).sqrt() * (1.0 + (width / length * std::f64::consts::FRAC_PI_2).tan().powi(2));
        h.transverse_cog_uncertainty = (i22 * (1.0 + p0.sin().powi(2))).sqrt();
    }
    let cos2 = (2.0 * h.psi).cos();
    let (a, b, c2) = ((1.0 + cos2) / 2.0, (1.0 - cos2) / 2.0, (2.0 * h.psi).sin());
    let (mut lu, mut wu) = (0.0, 0.0);
    for i in 0..w.len() {
        let (dx, dy) = (xs[i] - cog_x, ys[i] - cog_y);
        let aa = (dx * dx - sxx) / size;
        let bb = (dy * dy - syy) / size;
        let cc = (dx * dy - sxy) / size;
        lu += (a * aa + b * bb + c2 * cc).powi(2) * w[i];
        wu += (b * aa + a * bb - c2 * cc).powi(2) * w[i];
    }
    h.length_uncertainty = if length == 0.0 { f64::NAN } else { lu.sqrt() / (2.0 * length) };
    h.width_uncertainty = if width == 0.0 { f64::NAN } else { wu.sqrt() / (2.0 * width) };
    Some(h)
}

/// numpy's sum of a float32 array: pairwise summation in float32 (blocks of 8 accumulators up
/// to 128 values, halves above), bit for bit.
pub fn numpy_sum_f32(a: &[f32]) -> f32 {
    let n = a.len();
    if n < 8 {
        return a.iter().fold(0.0f32, |acc, &v| acc + v);
    }
    if n <= 128 {
        let mut r: [f32; 8] = std::array::from_fn(|j| a[j]);
        let full = n - n % 8;
        let mut i = 8;
        while i < full {
            for j in 0..8 {
                r[j] += a[i + j];
            }
            i += 8;
        }
        let mut res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &v in &a[full..] {
            res += v;
        }
        return res;
    }
    let mut half = n / 2;
    half -= half % 8;
    numpy_sum_f32(&a[..half]) + numpy_sum_f32(&a[half..])
}

/// Mean, std (ddof 0), skewness and excess kurtosis exactly as ctapipe 0.17's
/// `descriptive_statistics` computes them on ImageProcessor's float32 arrays: numpy's float32
/// mean and std, then numba's moments (standardised values in float32, integer powers by
/// squaring, a sequential float32 mean). In float64 the moments of a narrow peak-time
/// distribution differ from these by up to 1e-4 relative.
pub fn statistics(values: &[f32]) -> Statistics {
    let n = values.len() as f32;
    let mean = numpy_sum_f32(values) / n;
    let squared: Vec<f32> = values.iter().map(|&v| (v - mean) * (v - mean)).collect();
    let std = (numpy_sum_f32(&squared) / n).sqrt();
    let (mut third, mut fourth) = (0.0f32, 0.0f32);
    for &v in values {
        let z = (v - mean) / std;
        let z2 = z * z;
        third += z * z2;
        fourth += z2 * z2;
    }
    Statistics {
        max: values.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64,
        min: values.iter().copied().fold(f32::INFINITY, f32::min) as f64,
        mean: mean as f64,
        std: std as f64,
        skewness: (third / n) as f64,
        kurtosis: (fourth / n) as f64 - 3.0,
    }
}

/// Moments of integer-valued data as numpy and numba compute them on an int32 array: in
/// float64 throughout (ctapipe's statistics of a simulated photoelectron image).
pub fn statistics_f64(values: &[f64]) -> Statistics {
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let std = (values.iter().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n).sqrt();
    let (mut third, mut fourth) = (0.0, 0.0);
    for v in values {
        let z = (v - mean) / std;
        third += z * z * z;
        fourth += z * z * z * z;
    }
    Statistics {
        max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        min: values.iter().copied().fold(f64::INFINITY, f64::min),
        mean,
        std,
        skewness: third / n,
        kurtosis: fourth / n - 3.0,
    }
}

/// ctapipe 0.17's parameters of a simulated image (photoelectrons per pixel): the pixels with
/// light are the signal, there is no timing, and the int32 image makes numpy compute the
/// charge fractions and statistics in float64 (where a calibrated float32 image gives float32).
pub fn true_image_parameters(geom: &CameraGeometry, true_image: &[i32]) -> Option<ImageParameters> {
    let charge: Vec<f32> = true_image.iter().map(|&v| v as f32).collect();
    let lit: Vec<bool> = true_image.iter().map(|&v| v > 0).collect();
    // ctapipe gives the true image no peak times: no timing fit.
    let mut p = parameters(geom, &charge, None, &lit)?;
    let sel = super::clean::selected_pixels(&lit);
    let q: Vec<f64> = sel.iter().map(|&i| true_image[i] as f64).collect();
    let border = |width: &[bool]| sel.iter().zip(&q).filter(|(&i, _)| width[i]).map(|(_, q)| q).sum::<f64>();
    p.leakage_intensity_width_1 = border(&geom.border_width_1) / p.hillas.intensity;
    p.leakage_intensity_width_2 = border(&geom.border_width_2) / p.hillas.intensity;
    p.intensity_statistics = statistics_f64(&q);
    Some(p)
}

/// All parameters of one cleaned image; `None` if nothing survived cleaning (or the cleaned
/// charge is 0), as ctapipe's `size_greater_0` quality query.
pub fn image_parameters(
    geom: &CameraGeometry,
    image: &[f32],
    peak_time: &[f32],
    mask: &[bool],
) -> Option<ImageParameters> {
    parameters(geom, image, Some(peak_time), mask)
}

/// [`image_parameters`], with the timing fit only when there are peak times (without, the
/// timing fields keep their defaults and the peak-time statistics are of zeros).
fn parameters(
    geom: &CameraGeometry,
    image: &[f32],
    peak_time: Option<&[f32]>,
    mask: &[bool],
) -> Option<ImageParameters> {
    let sel = super::clean::selected_pixels(mask);
    let h = hillas(geom, image, &sel)?;
    let mut out = ImageParameters { hillas: h.clone(), ..Default::default() };
    let q: Vec<f64> = sel.iter().map(|&p| image[p] as f64).collect();
    let no_times;
    let (fit_timing, peak_time) = match peak_time {
        Some(t) => (true, t),
        None => {
            no_times = vec![0.0f32; image.len()];
            (false, no_times.as_slice())
        }
    };
    let t: Vec<f64> = sel.iter().map(|&p| peak_time[p] as f64).collect();
    // Leakage: pixel fractions of the whole camera, charge fractions of the cleaned charge.
    let (mut n1, mut n2, mut i1, mut i2) = (0usize, 0usize, 0.0f64, 0.0f64);
    for (k, &p) in sel.iter().enumerate() {
        if geom.border_width_1[p] {
            n1 += 1;
            i1 += q[k];
        }
        if geom.border_width_2[p] {
            n2 += 1;
            i2 += q[k];
        }
    }
    out.leakage_pixels_width_1 = n1 as f64 / geom.n_pixels() as f64;
    out.leakage_pixels_width_2 = n2 as f64 / geom.n_pixels() as f64;
    out.leakage_intensity_width_1 = ((i1 as f32) / (h.intensity as f32)) as f64;
    out.leakage_intensity_width_2 = ((i2 as f32) / (h.intensity as f32)) as f64;
    // Concentration.
    let pixel_width = 2.0 * (PIXEL_AREA_M2 / (2.0 * 3f64.sqrt())).sqrt();
    let (s, c) = h.psi.sin_cos();
    let (mut cog, mut core, mut qmax) = (0.0, 0.0, f64::NEG_INFINITY);
    for (k, &p) in sel.iter().enumerate() {
        let (dx, dy) = (geom.pix_x[p] - h.x, geom.pix_y[p] - h.y);
        if dx * dx + dy * dy < pixel_width * pixel_width {
            cog += q[k];
        }
        if h.width != 0.0 {
            let longi = dx * c + dy * s;
            let trans = -dx * s + dy * c;
            if longi * longi / (h.length * h.length) + trans * trans / (h.width * h.width) <= 1.0 {
                core += q[k];
            }
        }
        qmax = qmax.max(q[k]);
    }
    out.concentration_cog = cog / h.intensity;
    out.concentration_core = if h.width != 0.0 { core / h.intensity } else { 0.0 };
    out.concentration_pixel = qmax / h.intensity;
    // Timing: LTS fit of peak time along the major axis.
    if fit_timing {
        let longi: Vec<f64> = sel.iter().map(|&p| (geom.pix_x[p] - h.x) * c + (geom.pix_y[p] - h.y) * s).collect();
        let (slope, intercept) = super::lts::lts_fit(&longi, &t, 5);
        out.timing_slope = slope;
        out.timing_intercept = intercept;
        out.timing_deviation = (longi.iter().zip(&t).map(|(l, t)| (l * slope + intercept - t).powi(2)).sum::<f64>()
            / t.len() as f64)
            .sqrt();
    }
    // Morphology.
    let (_, sizes) = islands(geom, mask);
    let n_islands = sizes.len() - 1;
    out.n_pixels = sel.len() as i64;
    out.n_islands = n_islands as i64;
    for &size in &sizes[1..] {
        match size {
            0 => {}
            1..=2 => out.n_small_islands += 1,
            3..=50 => out.n_medium_islands += 1,
            _ => out.n_large_islands += 1,
        }
    }
    let q32: Vec<f32> = sel.iter().map(|&p| image[p]).collect();
    let t32: Vec<f32> = sel.iter().map(|&p| peak_time[p]).collect();
    out.intensity_statistics = statistics(&q32);
    out.peak_time_statistics = statistics(&t32);
    // sst1mpipe extras.
    let n = t.len() as f64;
    let t_mean = t.iter().sum::<f64>() / n;
    out.t_rms = (t.iter().map(|v| (v - t_mean).powi(2)).sum::<f64>() / n).sqrt();
    out.t_rms_w = (t.iter().zip(&q).map(|(v, w)| w * (v - t_mean).powi(2)).sum::<f64>() / h.intensity).sqrt();
    out.t_lac = out.peak_time_statistics.max - out.peak_time_statistics.min;
    let q_mean = h.intensity / n;
    let cov: f64 = t.iter().zip(&q).map(|(a, b)| (a - t_mean) * (b - q_mean)).sum();
    let (vt, vq): (f64, f64) =
        (t.iter().map(|a| (a - t_mean).powi(2)).sum(), q.iter().map(|b| (b - q_mean).powi(2)).sum());
    out.len_st = cov / (vt * vq).sqrt();
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_elongated_image_along_x() {
        let g = CameraGeometry::digicam();
        let mut image = vec![0.0f32; g.n_pixels()];
        let mut times = vec![0.0f32; g.n_pixels()];
        let mut mask = vec![false; g.n_pixels()];
        for p in 0..g.n_pixels() {
            let (x, y) = (g.pix_x[p] - 0.1, g.pix_y[p] - 0.05);
            let v = 100.0 * (-(x * x) / (2.0 * 0.06f64.powi(2)) - (y * y) / (2.0 * 0.02f64.powi(2))).exp();
            if v > 5.0 {
                image[p] = v as f32;
                times[p] = (20.0 + 100.0 * x) as f32;
                mask[p] = true;
            }
        }
        let params = image_parameters(&g, &image, &times, &mask).unwrap();
        let h = &params.hillas;
        assert!((h.x - 0.1).abs() < 0.01 && (h.y - 0.05).abs() < 0.01, "{h:?}");
        assert!(h.length > h.width && h.psi.abs() < 0.05, "{h:?}");
        assert!((params.timing_slope - 100.0).abs() < 1.0, "{}", params.timing_slope);
        assert_eq!(params.n_islands, 1);
        assert!(params.concentration_pixel > 0.0 && params.concentration_pixel < 1.0);
        assert!(image_parameters(&g, &image, &times, &vec![false; g.n_pixels()]).is_none());
    }
}
