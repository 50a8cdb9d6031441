//! Image cleaning, as ctapipe defines it (sst1mpipe's ImageCleanerSST builds on these).
//!
//! Tailcuts: a *picture* pixel has a charge ≥ its picture threshold and, unless
//! `min_picture_neighbors` is 0 or isolated pixels are kept, at least that many neighbours
//! that are above their own picture threshold. Kept are boundary pixels (≥ boundary
//! threshold) next to a picture pixel, and picture pixels next to a boundary pixel (or every
//! picture pixel with `keep_isolated`). Time-delta cleaning then drops kept pixels with fewer
//! than `min_neighbors` kept neighbours whose peak times differ by less than the limit.
use crate::instrument::camera::CameraGeometry;

#[derive(Clone, Copy, Debug)]
pub struct Tailcuts {
    pub boundary: f64,
    pub min_picture_neighbors: usize,
    pub keep_isolated: bool,
}

/// Tailcuts cleaning with one picture threshold per pixel (sst1mpipe raises them per pixel from
/// pedestal statistics). Writes the mask into `mask`.
///
/// Shower images are sparse: one branch-free pass flags each pixel against both thresholds,
/// eight flags are then tested at a time to list the few flagged pixels, and only those and
/// their neighbours are looked at again.
pub fn tailcuts_clean(
    geom: &CameraGeometry,
    image: &[f32],
    picture_threshold: &[f64],
    cuts: &Tailcuts,
    mask: &mut [bool],
) {
    #[cfg(target_arch = "x86_64")]
    if super::extract::vector_build() == super::extract::VectorBuild::Avx512 {
        // SAFETY: the CPU has AVX-512F (`vector_build` checked).
        unsafe { tailcuts_clean_avx512(geom, image, picture_threshold, cuts, mask) };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if super::extract::vector_build() == super::extract::VectorBuild::Avx2 {
        // SAFETY: the CPU has AVX2 (`vector_build` checked).
        unsafe { tailcuts_clean_avx2(geom, image, picture_threshold, cuts, mask) };
        return;
    }
    tailcuts(geom, image, picture_threshold, cuts, mask)
}

/// [`tailcuts`] compiled for AVX-512, where the flagging pass compares eight pixels at a time.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn tailcuts_clean_avx512(
    geom: &CameraGeometry,
    image: &[f32],
    picture_threshold: &[f64],
    cuts: &Tailcuts,
    mask: &mut [bool],
) {
    tailcuts(geom, image, picture_threshold, cuts, mask)
}

/// [`tailcuts`] compiled for AVX2 (four pixels per compare).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn tailcuts_clean_avx2(
    geom: &CameraGeometry,
    image: &[f32],
    picture_threshold: &[f64],
    cuts: &Tailcuts,
    mask: &mut [bool],
) {
    tailcuts(geom, image, picture_threshold, cuts, mask)
}

#[inline(always)]
fn tailcuts(geom: &CameraGeometry, image: &[f32], picture_threshold: &[f64], cuts: &Tailcuts, mask: &mut [bool]) {
    const ABOVE_PICTURE: u8 = 1;
    const ABOVE_BOUNDARY: u8 = 2;
    const IN_PICTURE: u8 = 4;
    let n = geom.n_pixels();
    assert!(image.len() == n && picture_threshold.len() == n && mask.len() == n);
    let mut flags = vec![0u8; n.next_multiple_of(8)];
    for ((f, &q), &thr) in flags.iter_mut().zip(image).zip(picture_threshold) {
        let q = q as f64;
        *f = ((q >= thr) as u8 * ABOVE_PICTURE) | ((q >= cuts.boundary) as u8 * ABOVE_BOUNDARY);
    }
    let mut candidates = Vec::new();
    push_nonzero_indices(&flags, &mut candidates);
    let count =
        |flags: &[u8], p: usize, flag: u8| geom.neighbors(p).iter().filter(|&&q| flags[q as usize] & flag != 0).count();
    for &p in &candidates {
        let picture = flags[p] & ABOVE_PICTURE != 0
            && (cuts.keep_isolated
                || cuts.min_picture_neighbors == 0
                || count(&flags, p, ABOVE_PICTURE) >= cuts.min_picture_neighbors);
        flags[p] |= picture as u8 * IN_PICTURE;
    }
    mask.fill(false);
    for &p in &candidates {
        let boundary_kept = flags[p] & ABOVE_BOUNDARY != 0 && count(&flags, p, IN_PICTURE) > 0;
        let picture_kept = flags[p] & IN_PICTURE != 0 && (cuts.keep_isolated || count(&flags, p, ABOVE_BOUNDARY) > 0);
        mask[p] = boundary_kept || picture_kept;
    }
}

/// Indices of the true entries of `mask` (the pixels of a cleaned image), in order.
pub fn selected_pixels(mask: &[bool]) -> Vec<usize> {
    let mut out = Vec::new();
    let bytes: Vec<u8> = mask.iter().map(|&m| m as u8).collect();
    push_nonzero_indices(&bytes, &mut out);
    out
}

/// Appends the indices of the non-zero bytes, testing eight bytes at a time (cleaned images are
/// sparse, so most words are zero and skipped whole).
fn push_nonzero_indices(bytes: &[u8], out: &mut Vec<usize>) {
    let words = bytes.chunks_exact(8);
    let rest = words.remainder();
    for (word, eight) in words.enumerate() {
        let mut bits = u64::from_le_bytes(eight.try_into().expect("8 bytes"));
        while bits != 0 {
            let byte = bits.trailing_zeros() / 8;
            out.push(word * 8 + byte as usize);
            bits &= !(0xff << (byte * 8));
        }
    }
    let base = bytes.len() - rest.len();
    out.extend(rest.iter().enumerate().filter(|(_, &b)| b != 0).map(|(i, _)| base + i));
}

/// ctapipe's `apply_time_delta_cleaning`: keep a pixel only if at least `min_neighbors` of its
/// kept neighbours have |Δt| < `time_limit_ns`.
pub fn time_delta_clean(
    geom: &CameraGeometry,
    peak_time: &[f32],
    min_neighbors: usize,
    time_limit_ns: f64,
    mask: &mut [bool],
) {
    let kept = selected_pixels(mask);
    let dropped: Vec<usize> = kept
        .iter()
        .copied()
        .filter(|&p| {
            let close = geom
                .neighbors(p)
                .iter()
                .filter(|&&q| mask[q as usize] && ((peak_time[p] - peak_time[q as usize]).abs() as f64) < time_limit_ns)
                .count();
            close < min_neighbors
        })
        .collect();
    for p in dropped {
        mask[p] = false;
    }
}

/// Connected groups of masked pixels: the label of every pixel (0 = not in the mask; islands
/// numbered from 1 in order of their lowest pixel id) and the pixel count of each island, indexed
/// by label (index 0 unused, 0).
pub fn islands(geom: &CameraGeometry, mask: &[bool]) -> (Vec<u32>, Vec<usize>) {
    let mut labels = vec![0u32; mask.len()];
    let mut sizes = vec![0usize];
    let mut stack = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || labels[start] != 0 {
            continue;
        }
        let label = sizes.len() as u32;
        let mut size = 1;
        labels[start] = label;
        stack.push(start);
        while let Some(p) = stack.pop() {
            for &q in geom.neighbors(p) {
                let q = q as usize;
                if mask[q] && labels[q] == 0 {
                    labels[q] = label;
                    size += 1;
                    stack.push(q);
                }
            }
        }
        sizes.push(size);
    }
    (labels, sizes)
}

/// Keeps only the largest island of the mask (sst1mpipe's `only_main_island`); ties go to the
/// island with the lowest label (lowest pixel id), as numpy's argmax of the island sizes.
pub fn keep_main_island(geom: &CameraGeometry, mask: &mut [bool]) {
    let (labels, sizes) = islands(geom, mask);
    let n = sizes.len() - 1;
    if n <= 1 {
        return;
    }
    let mut main = 1;
    for l in 2..=n {
        if sizes[l] > sizes[main] {
            main = l;
        }
    }
    for (m, &l) in mask.iter_mut().zip(&labels) {
        *m = l as usize == main;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bright_blob_survives_and_an_isolated_pixel_does_not() {
        let g = CameraGeometry::digicam();
        let mut image = vec![0.0f32; g.n_pixels()];
        let centre = 600;
        image[centre] = 30.0;
        for &n in g.neighbors(centre) {
            image[n as usize] = 10.0;
        }
        image[50] = 100.0; // isolated
        let thr = vec![8.0; g.n_pixels()];
        let cuts = Tailcuts { boundary: 4.0, min_picture_neighbors: 2, keep_isolated: false };
        let mut mask = vec![false; g.n_pixels()];
        tailcuts_clean(&g, &image, &thr, &cuts, &mut mask);
        assert!(mask[centre] && !mask[50]);
        assert_eq!(mask.iter().filter(|m| **m).count(), 7);
        let (labels, sizes) = islands(&g, &mask);
        assert_eq!((sizes, labels[centre]), (vec![0, 7], 1));
        // Two islands: keep_main_island keeps the larger.
        let mut two = mask.clone();
        two[1000] = true;
        two[g.neighbors(1000)[0] as usize] = true;
        keep_main_island(&g, &mut two);
        assert_eq!(two, mask);
        let mut times = vec![10.0f32; g.n_pixels()];
        times[centre] = 30.0;
        time_delta_clean(&g, &times, 1, 8.0, &mut mask);
        assert!(!mask[centre] && mask.iter().filter(|m| **m).count() == 6);
    }

    /// ctapipe's tailcuts and time-delta cleaning written out pixel by pixel over the whole
    /// camera (as its numpy code reads): the sparse versions must agree on random images.
    #[test]
    fn sparse_cleaning_equals_the_dense_definition() {
        let g = CameraGeometry::digicam();
        let n = g.n_pixels();
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = |bound: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % bound
        };
        for trial in 0..60 {
            let image: Vec<f32> = (0..n).map(|_| next(160) as f32 / 10.0 - 2.0).collect();
            let times: Vec<f32> = (0..n).map(|_| next(400) as f32 / 10.0).collect();
            // Per-pixel picture thresholds, some below the boundary threshold.
            let thr: Vec<f64> = (0..n).map(|_| 3.0 + next(80) as f64 / 10.0).collect();
            let cuts = Tailcuts {
                boundary: 4.0 + (trial % 3) as f64,
                min_picture_neighbors: trial % 4,
                keep_isolated: trial % 5 == 0,
            };
            let above_pic: Vec<bool> = (0..n).map(|p| image[p] as f64 >= thr[p]).collect();
            let above_bnd: Vec<bool> = (0..n).map(|p| image[p] as f64 >= cuts.boundary).collect();
            let count = |set: &[bool], p: usize| g.neighbors(p).iter().filter(|&&q| set[q as usize]).count();
            let in_pic: Vec<bool> = (0..n)
                .map(|p| {
                    above_pic[p]
                        && (cuts.keep_isolated
                            || cuts.min_picture_neighbors == 0
                            || count(&above_pic, p) >= cuts.min_picture_neighbors)
                })
                .collect();
            let mut dense: Vec<bool> = (0..n)
                .map(|p| {
                    let boundary_kept = above_bnd[p] && count(&in_pic, p) > 0;
                    if cuts.keep_isolated {
                        boundary_kept || in_pic[p]
                    } else {
                        boundary_kept || (in_pic[p] && count(&above_bnd, p) > 0)
                    }
                })
                .collect();
            let mut sparse = vec![true; n];
            tailcuts_clean(&g, &image, &thr, &cuts, &mut sparse);
            assert_eq!(sparse, dense, "tailcuts, trial {trial}");
            let before = dense.clone();
            for p in 0..n {
                if before[p] {
                    let close = g
                        .neighbors(p)
                        .iter()
                        .filter(|&&q| before[q as usize] && ((times[p] - times[q as usize]).abs() as f64) < 5.0)
                        .count();
                    let min_neighbors = 1 + trial % 2;
                    dense[p] = close >= min_neighbors;
                }
            }
            time_delta_clean(&g, &times, 1 + trial % 2, 5.0, &mut sparse);
            assert_eq!(sparse, dense, "time delta, trial {trial}");
        }
    }
}
