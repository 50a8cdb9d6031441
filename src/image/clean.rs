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
/// Shower images are sparse: one scan of the image lists the few pixels above a threshold
/// (bit sets of the camera's pixels, 64 per word), and only those and their neighbours are
/// looked at again.
pub fn tailcuts_clean(
    geom: &CameraGeometry,
    image: &[f32],
    picture_threshold: &[f64],
    cuts: &Tailcuts,
    mask: &mut [bool],
) {
    let n = geom.n_pixels();
    assert!(image.len() == n && picture_threshold.len() == n && mask.len() == n);
    let words = n.div_ceil(64);
    let mut above_picture = vec![0u64; words];
    let mut above_boundary = vec![0u64; words];
    let mut candidates = Vec::new();
    for (word, ((pic, bnd), (q, thr))) in above_picture
        .iter_mut()
        .zip(above_boundary.iter_mut())
        .zip(image.chunks(64).zip(picture_threshold.chunks(64)))
        .enumerate()
    {
        for (bit, (&q, &thr)) in q.iter().zip(thr).enumerate() {
            *pic |= ((q as f64 >= thr) as u64) << bit;
            *bnd |= ((q as f64 >= cuts.boundary) as u64) << bit;
        }
        let mut either = *pic | *bnd;
        while either != 0 {
            candidates.push(word * 64 + either.trailing_zeros() as usize);
            either &= either - 1;
        }
    }
    let has = |set: &[u64], p: usize| set[p / 64] >> (p % 64) & 1 == 1;
    let mut in_picture = vec![0u64; words];
    for &p in &candidates {
        let picture = has(&above_picture, p)
            && (cuts.keep_isolated
                || cuts.min_picture_neighbors == 0
                || geom.neighbors(p).iter().filter(|&&q| has(&above_picture, q as usize)).count()
                    >= cuts.min_picture_neighbors);
        in_picture[p / 64] |= (picture as u64) << (p % 64);
    }
    mask.fill(false);
    for &p in &candidates {
        let near_picture = || geom.neighbors(p).iter().any(|&q| has(&in_picture, q as usize));
        let near_boundary = || geom.neighbors(p).iter().any(|&q| has(&above_boundary, q as usize));
        let boundary_kept = has(&above_boundary, p) && near_picture();
        let picture_kept = has(&in_picture, p) && (cuts.keep_isolated || near_boundary());
        mask[p] = boundary_kept || picture_kept;
    }
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
    let kept: Vec<usize> = (0..geom.n_pixels()).filter(|&p| mask[p]).collect();
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

/// Connected groups of masked pixels: (number of islands, label per pixel with 0 = not in the
/// mask and islands numbered from 1 in order of their lowest pixel id).
pub fn islands(geom: &CameraGeometry, mask: &[bool]) -> (usize, Vec<u32>) {
    let mut labels = vec![0u32; mask.len()];
    let mut stack = Vec::new();
    let mut count = 0u32;
    for start in 0..mask.len() {
        if !mask[start] || labels[start] != 0 {
            continue;
        }
        count += 1;
        labels[start] = count;
        stack.push(start);
        while let Some(p) = stack.pop() {
            for &q in geom.neighbors(p) {
                let q = q as usize;
                if mask[q] && labels[q] == 0 {
                    labels[q] = count;
                    stack.push(q);
                }
            }
        }
    }
    (count as usize, labels)
}

/// Pixel count of each island, indexed by label (index 0 counts the pixels outside the mask).
pub fn island_sizes(n_islands: usize, labels: &[u32]) -> Vec<usize> {
    let mut sizes = vec![0usize; n_islands + 1];
    for &l in labels {
        sizes[l as usize] += 1;
    }
    sizes
}

/// Keeps only the largest island of the mask (sst1mpipe's `only_main_island`); ties go to the
/// island with the lowest label (lowest pixel id), as numpy's argmax of the island sizes.
pub fn keep_main_island(geom: &CameraGeometry, mask: &mut [bool]) {
    let (n, labels) = islands(geom, mask);
    if n <= 1 {
        return;
    }
    let sizes = island_sizes(n, &labels);
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
        let (n, labels) = islands(&g, &mask);
        assert_eq!((n, labels[centre]), (1, 1));
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
