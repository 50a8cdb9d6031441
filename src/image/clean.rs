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
pub fn tailcuts_clean(
    geom: &CameraGeometry,
    image: &[f32],
    picture_threshold: &[f64],
    cuts: &Tailcuts,
    mask: &mut [bool],
) {
    let n = geom.n_pixels();
    assert!(image.len() == n && picture_threshold.len() == n && mask.len() == n);
    let above_picture = |p: usize| image[p] as f64 >= picture_threshold[p];
    let above_boundary = |p: usize| image[p] as f64 >= cuts.boundary;
    let in_picture = |p: usize| {
        above_picture(p)
            && (cuts.keep_isolated
                || cuts.min_picture_neighbors == 0
                || geom.neighbors(p).iter().filter(|&&q| above_picture(q as usize)).count()
                    >= cuts.min_picture_neighbors)
    };
    // Two passes keep it allocation-free: first mark picture pixels in `mask`.
    for (p, m) in mask.iter_mut().enumerate() {
        *m = in_picture(p);
    }
    let picture: Vec<bool> = mask.to_vec();
    for p in 0..n {
        let near_picture = geom.neighbors(p).iter().any(|&q| picture[q as usize]);
        let boundary_kept = above_boundary(p) && near_picture;
        let picture_kept =
            picture[p] && (cuts.keep_isolated || geom.neighbors(p).iter().any(|&q| above_boundary(q as usize)));
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
    let before = mask.to_vec();
    for p in 0..geom.n_pixels() {
        if !before[p] {
            continue;
        }
        let close = geom
            .neighbors(p)
            .iter()
            .filter(|&&q| before[q as usize] && ((peak_time[p] - peak_time[q as usize]).abs() as f64) < time_limit_ns)
            .count();
        mask[p] = close >= min_neighbors;
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
}
