//! The DigiCam camera geometry: 1296 hexagonal pixels on a regular lattice.
//!
//! Pixels sit in 48 vertical columns. Column `k` (0 at the +x edge) is at
//! `x = 0.49805 m − k·p·√3/2` and holds the pixels at `y = j·p/2` for the half-pitch row
//! indices `j` with `j ≡ k + 1 (mod 2)` and
//! `max(−1 − 3k, −35, 3k − 143) ≤ j ≤ min(−1 + 3k, 36, 141 − 3k)`, where `p` = 24.3 mm is the
//! pixel pitch. Pixel ids run column by column from +x, top to bottom in each column, which is
//! the software pixel order of the SST-1M data and simulations. Pixels are hexagons of area
//! 4.7016e-4 m², rotated by 30° (flat sides left and right), the camera by 0°.
//!
//! Neighbours follow from the lattice: (k, j±2) and (k±1, j±1). The border masks are those of
//! ctapipe's `get_border_pixel_mask`: width 1 holds the pixels with fewer than the maximum
//! number of neighbours; width n the pixels with a neighbour in the width n−1 border.
//!
//! The real tables list column x positions to 0.01 mm as read from the camera configuration;
//! the lattice values here differ from them by at most 0.01 mm.
use std::collections::HashMap;

pub const N_PIXELS: usize = 1296;
pub const PIXEL_PITCH_M: f64 = 0.0243;
pub const PIXEL_AREA_M2: f64 = 4.7016e-4;
pub const PIX_ROT_DEG: f64 = 30.0;
pub const CAM_ROT_DEG: f64 = 0.0;
pub const CAMERA_NAME: &str = "DigiCam";
const FIRST_COLUMN_X_M: f64 = 0.49805;
const N_COLUMNS: i32 = 48;

/// Camera geometry with precomputed neighbour lists (CSR layout: no per-pixel allocation when
/// cleaning or parametrising images).
#[derive(Clone, Debug)]
pub struct CameraGeometry {
    pub pix_x: Vec<f64>,
    pub pix_y: Vec<f64>,
    neighbor_start: Vec<u32>,
    neighbor_ids: Vec<u16>,
    /// Outer ring (ctapipe border width 1) and two outer rings (width 2).
    pub border_width_1: Vec<bool>,
    pub border_width_2: Vec<bool>,
    /// Pixel id at lattice cell (column k, half-row j + ROW_OFFSET), or u16::MAX.
    cell_pixel: Vec<u16>,
}

const ROW_OFFSET: i32 = 40;
const ROWS: i32 = 2 * ROW_OFFSET;

/// (column, half-pitch row) of every pixel in id order.
fn lattice() -> Vec<(i32, i32)> {
    let mut cells = Vec::with_capacity(N_PIXELS);
    for k in 0..N_COLUMNS {
        let lo = (-1 - 3 * k).max(-35).max(3 * k - 143);
        let hi = (-1 + 3 * k).min(36).min(141 - 3 * k);
        for j in (lo..=hi).rev() {
            if (j - k - 1).rem_euclid(2) == 0 {
                cells.push((k, j));
            }
        }
    }
    cells
}

impl CameraGeometry {
    pub fn digicam() -> CameraGeometry {
        let cells = lattice();
        assert_eq!(cells.len(), N_PIXELS, "DigiCam lattice rule must give 1296 pixels");
        let dx = PIXEL_PITCH_M * 3f64.sqrt() / 2.0;
        let pix_x = cells.iter().map(|&(k, _)| FIRST_COLUMN_X_M - k as f64 * dx).collect();
        let pix_y = cells.iter().map(|&(_, j)| j as f64 * PIXEL_PITCH_M / 2.0).collect();
        let index: HashMap<(i32, i32), u16> = cells.iter().enumerate().map(|(i, &c)| (c, i as u16)).collect();
        let mut neighbor_start = Vec::with_capacity(N_PIXELS + 1);
        let mut neighbor_ids = Vec::with_capacity(6 * N_PIXELS);
        neighbor_start.push(0);
        for &(k, j) in &cells {
            let mut around: Vec<u16> =
                [(k, j + 2), (k, j - 2), (k + 1, j + 1), (k + 1, j - 1), (k - 1, j + 1), (k - 1, j - 1)]
                    .iter()
                    .filter_map(|c| index.get(c).copied())
                    .collect();
            around.sort_unstable();
            neighbor_ids.extend_from_slice(&around);
            neighbor_start.push(neighbor_ids.len() as u32);
        }
        let mut cell_pixel = vec![u16::MAX; (N_COLUMNS * ROWS) as usize];
        for (i, &(k, j)) in cells.iter().enumerate() {
            cell_pixel[(k * ROWS + j + ROW_OFFSET) as usize] = i as u16;
        }
        let mut geom = CameraGeometry {
            pix_x,
            pix_y,
            neighbor_start,
            neighbor_ids,
            border_width_1: Vec::new(),
            border_width_2: Vec::new(),
            cell_pixel,
        };
        geom.border_width_1 = geom.border_mask(1);
        geom.border_width_2 = geom.border_mask(2);
        geom
    }

    /// The DigiCam topology with the pixel positions a file gives (a real camera's centres
    /// differ from the lattice by a few µm, and parameters are computed from the real ones).
    /// Refused when a position is more than 0.5 mm from its lattice cell, since neighbours and
    /// borders follow the lattice.
    pub fn digicam_with_positions(pix_x: &[f64], pix_y: &[f64]) -> Result<CameraGeometry, String> {
        let mut geom = CameraGeometry::digicam();
        if pix_x.len() != geom.n_pixels() || pix_y.len() != geom.n_pixels() {
            return Err(format!(
                "the camera has {} pixel positions, DigiCam has {}",
                pix_x.len().max(pix_y.len()),
                geom.n_pixels()
            ));
        }
        const TOLERANCE_M: f64 = 5e-4;
        for p in 0..geom.n_pixels() {
            let d = (pix_x[p] - geom.pix_x[p]).hypot(pix_y[p] - geom.pix_y[p]);
            if d.is_nan() || d > TOLERANCE_M {
                return Err(format!(
                    "pixel {p} is at ({}, {}) m, {:.2} mm from where DigiCam's layout puts it ({}, {}); not a DigiCam camera in its pixel order",
                    pix_x[p], pix_y[p], d * 1e3, geom.pix_x[p], geom.pix_y[p]
                ));
            }
        }
        geom.pix_x = pix_x.to_vec();
        geom.pix_y = pix_y.to_vec();
        Ok(geom)
    }

    pub fn n_pixels(&self) -> usize {
        self.pix_x.len()
    }

    /// Neighbour ids of a pixel, ascending.
    #[inline]
    pub fn neighbors(&self, pixel: usize) -> &[u16] {
        &self.neighbor_ids[self.neighbor_start[pixel] as usize..self.neighbor_start[pixel + 1] as usize]
    }

    /// The pixel whose hexagon contains the point (x, y) in m, if any: the nearest lattice
    /// centre (a hexagonal cell is the Voronoi cell of its centre), found in O(1).
    pub fn pixel_at(&self, x: f64, y: f64) -> Option<usize> {
        let dx = PIXEL_PITCH_M * 3f64.sqrt() / 2.0;
        let kf = (FIRST_COLUMN_X_M - x) / dx;
        let jf = y / (PIXEL_PITCH_M / 2.0);
        // Within a column the horizontal distance is fixed, so the nearest centre is the
        // vertically nearest one (right row parity) in one of the two columns around x.
        let k0 = kf.floor() as i32;
        let mut best: Option<(f64, usize)> = None;
        for k in k0..=k0 + 1 {
            if !(0..N_COLUMNS).contains(&k) {
                continue;
            }
            let parity = (k + 1).rem_euclid(2);
            let j = 2 * ((jf - parity as f64) / 2.0).round() as i32 + parity;
            if !(-ROW_OFFSET..ROW_OFFSET).contains(&j) {
                continue;
            }
            let cx = FIRST_COLUMN_X_M - k as f64 * dx;
            let cy = j as f64 * PIXEL_PITCH_M / 2.0;
            let d = (x - cx).powi(2) + (y - cy).powi(2);
            if best.is_none_or(|(b, _)| d < b) {
                best = Some((d, (k * ROWS + j + ROW_OFFSET) as usize));
            }
        }
        let (d, cell) = best?;
        // Beyond the in-circle of the outermost hexagons the point may be outside the camera.
        if d > (PIXEL_PITCH_M / 3f64.sqrt()).powi(2) {
            return None;
        }
        match self.cell_pixel[cell] {
            u16::MAX => None,
            p => Some(p as usize),
        }
    }

    /// ctapipe's `guess_radius`: mean distance of the outermost pixels from the pixels' mean
    /// position (m); the stereo reconstruction's step along the image axis is a tenth of it.
    pub fn radius(&self) -> f64 {
        let n = self.n_pixels() as f64;
        let (cx, cy) = (self.pix_x.iter().sum::<f64>() / n, self.pix_y.iter().sum::<f64>() / n);
        let border: Vec<usize> = (0..self.n_pixels()).filter(|&p| self.border_width_1[p]).collect();
        border.iter().map(|&p| (self.pix_x[p] - cx).hypot(self.pix_y[p] - cy)).sum::<f64>() / border.len() as f64
    }

    /// ctapipe's border mask of the given width (≥ 1).
    pub fn border_mask(&self, width: usize) -> Vec<bool> {
        assert!(width >= 1);
        let max = (0..self.n_pixels()).map(|p| self.neighbors(p).len()).max().unwrap_or(0);
        let mut mask: Vec<bool> = (0..self.n_pixels()).map(|p| self.neighbors(p).len() < max).collect();
        for _ in 1..width {
            mask = (0..self.n_pixels()).map(|p| self.neighbors(p).iter().any(|&n| mask[n as usize])).collect();
        }
        mask
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digicam_facts() {
        let g = CameraGeometry::digicam();
        assert_eq!(g.n_pixels(), 1296);
        let mut hist = [0usize; 7];
        for p in 0..g.n_pixels() {
            hist[g.neighbors(p).len()] += 1;
        }
        assert_eq!(hist, [0, 0, 3, 69, 0, 69, 1155]);
        assert_eq!(g.border_width_1.iter().filter(|b| **b).count(), 141);
        assert_eq!(g.border_width_2.iter().filter(|b| **b).count(), 273);
        // Every neighbour is one pitch away, and symmetric.
        for p in 0..g.n_pixels() {
            for &n in g.neighbors(p) {
                let d = (g.pix_x[p] - g.pix_x[n as usize]).hypot(g.pix_y[p] - g.pix_y[n as usize]);
                assert!((d - PIXEL_PITCH_M).abs() < 1e-9, "{p}-{n}: {d}");
                assert!(g.neighbors(n as usize).contains(&(p as u16)));
            }
        }
        // Extent and the first pixels, as in the SST-1M tables.
        let (xmin, xmax) = g.pix_x.iter().fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        let (ymin, ymax) = g.pix_y.iter().fold((f64::MAX, f64::MIN), |(a, b), &y| (a.min(y), b.max(y)));
        assert!((xmin + 0.49104).abs() < 2e-5 && (xmax - 0.49805).abs() < 1e-9, "{xmin} {xmax}");
        assert!((ymin + 0.42525).abs() < 1e-9 && (ymax - 0.4374).abs() < 1e-9, "{ymin} {ymax}");
        assert!((g.pix_y[0] + 0.01215).abs() < 1e-12 && (g.pix_y[1] - 0.0243).abs() < 1e-12);
        // Every pixel centre maps to itself; a point between two pixels to the nearer one; and
        // on a fine grid the answer is always the nearest centre (brute force).
        for p in 0..g.n_pixels() {
            assert_eq!(g.pixel_at(g.pix_x[p], g.pix_y[p]), Some(p));
            assert_eq!(g.pixel_at(g.pix_x[p] + 0.004, g.pix_y[p] - 0.003), Some(p));
        }
        for ix in 0..200 {
            for iy in 0..200 {
                let (x, y) = (-0.5 + ix as f64 * 0.005 + 0.0013, -0.45 + iy as f64 * 0.0045 + 0.0007);
                let nearest = (0..g.n_pixels())
                    .map(|p| ((g.pix_x[p] - x).powi(2) + (g.pix_y[p] - y).powi(2), p))
                    .min_by(|a, b| a.0.total_cmp(&b.0))
                    .unwrap();
                let inside = nearest.0 <= (PIXEL_PITCH_M / 3f64.sqrt()).powi(2);
                match g.pixel_at(x, y) {
                    Some(p) => assert_eq!(p, nearest.1, "({x}, {y})"),
                    None => assert!(!inside || g.neighbors(nearest.1).len() < 6, "({x}, {y}) lost"),
                }
            }
        }
        assert_eq!(g.pixel_at(0.0, 0.6), None);
        assert_eq!(g.pixel_at(0.6, 0.0), None);
        // Hexagon area from the pitch: p²·√3/2 = 5.114e-4 m² for a full cell; DigiCam's light
        // guides cover 4.7016e-4 m² (the tabulated value, used as is).
        assert!(PIXEL_AREA_M2 < PIXEL_PITCH_M * PIXEL_PITCH_M * 3f64.sqrt() / 2.0);
    }
}
