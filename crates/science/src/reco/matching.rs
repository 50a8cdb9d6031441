//! Finding the events two telescopes recorded of the same shower from their clocks alone:
//! sst1mpipe's `SlidingWindow` matching, for SST-1M data taken before the telescopes shared
//! White Rabbit event times and SWAT event ids (before 25 September 2023).
//!
//! The two cameras' clocks are offset by an unknown constant. The offset is the one, among a
//! grid of trial offsets (numpy's `arange(start, stop, step)`), that gives the most pairs of
//! events with `t1 + offset − w ≤ t2 ≤ t1 + offset + w` (all pairs counted, as sst1mpipe's
//! broadcast count does; the first maximum wins), computed on the events that pass the quality
//! cuts. The tel2 candidates of a tel1 event are then the events strictly inside
//! `(t1 + offset − w, t1 + offset + w)`. The floating-point expressions are sst1mpipe's, in
//! its order, so that the same times give the same offset and the same candidates.
//!
//! Times are Unix seconds (f64). Each count is two binary searches per tel1 event, so a trial
//! offset costs O(n log m) instead of sst1mpipe's O(n·m) mask.

/// numpy's `arange(start, stop, step)`: `start + i·step` for `i < ceil((stop − start)/step)`;
/// empty for a non-positive or non-finite step.
pub fn arange(start: f64, stop: f64, step: f64) -> Vec<f64> {
    if !(step > 0.0 && step.is_finite() && start.is_finite() && stop.is_finite()) {
        return Vec::new();
    }
    let n = ((stop - start) / step).ceil().max(0.0) as usize;
    (0..n).map(|i| start + i as f64 * step).collect()
}

/// The result of the offset search: the chosen offset, its number of coincidences, and the
/// count at every trial offset (for the log).
#[derive(Clone, Debug, PartialEq)]
pub struct OffsetSearch {
    pub offset_s: f64,
    pub coincidences: u64,
    pub counts: Vec<(f64, u64)>,
}

/// Pairs with `lo ≤ t2 ≤ hi` for each tel1 time, summed, at one offset; `tel2_sorted` ascending.
fn count_pairs(tel1: &[f64], tel2_sorted: &[f64], offset: f64, half_width: f64) -> u64 {
    tel1.iter()
        .map(|&t| {
            let (lo, hi) = (t + offset - half_width, t + offset + half_width);
            let first = tel2_sorted.partition_point(|&u| u < lo);
            let end = tel2_sorted.partition_point(|&u| u <= hi);
            end.saturating_sub(first) as u64
        })
        .sum()
}

/// The clock offset (tel2 − tel1, s) that maximises coincidences (see the module doc), or None
/// when there are no trial offsets. `tel2` is preselected as sst1mpipe does: only times within
/// 1 s of the tel1 times' range take part.
pub fn find_coincidence_offset(tel1: &[f64], tel2: &[f64], half_width_s: f64, offsets: &[f64]) -> Option<OffsetSearch> {
    let finite = |v: &&f64| v.is_finite();
    let (min1, max1) =
        tel1.iter().filter(finite).fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &t| (a.min(t), b.max(t)));
    let mut near: Vec<f64> = tel2.iter().copied().filter(|&t| t > min1 - 1.0 && t < max1 + 1.0).collect();
    near.sort_by(f64::total_cmp);
    let counts: Vec<(f64, u64)> = offsets.iter().map(|&o| (o, count_pairs(tel1, &near, o, half_width_s))).collect();
    let (offset_s, coincidences) = counts.iter().fold(None::<(f64, u64)>, |best, &(o, n)| match best {
        Some((_, m)) if m >= n => best,
        _ => Some((o, n)),
    })?;
    Some(OffsetSearch { offset_s, coincidences, counts })
}

/// The indices into `tel2` of the candidates of each tel1 time: strictly inside
/// `(t1 + offset − w, t1 + offset + w)`, in `tel2`'s order.
pub fn sliding_window_candidates(tel1: &[f64], tel2: &[f64], offset_s: f64, half_width_s: f64) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..tel2.len()).filter(|&j| tel2[j].is_finite()).collect();
    order.sort_by(|&a, &b| tel2[a].total_cmp(&tel2[b]).then(a.cmp(&b)));
    let sorted: Vec<f64> = order.iter().map(|&j| tel2[j]).collect();
    tel1.iter()
        .map(|&t| {
            let (lo, hi) = (t + offset_s - half_width_s, t + offset_s + half_width_s);
            let first = sorted.partition_point(|&u| u <= lo);
            let end = sorted.partition_point(|&u| u < hi);
            let mut found: Vec<usize> = order[first..end.max(first)].to_vec();
            found.sort_unstable();
            found
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arange_is_numpys() {
        assert_eq!(arange(-0.01, 0.01, 2e-5).len(), 1000);
        assert_eq!(arange(0.0, 1.0, 0.25), vec![0.0, 0.25, 0.5, 0.75]);
        assert_eq!(arange(0.0, 1.0, 0.3).len(), 4);
        assert!(arange(0.0, 1.0, 0.0).is_empty() && arange(1.0, 0.0, 0.1).is_empty());
    }

    /// Coincident showers with tel2's clock 3.2 ms ahead, plus unrelated triggers: the search
    /// finds the offset, and the candidates are the coincident partners.
    #[test]
    fn the_offset_that_maximises_coincidences_is_found_and_gives_the_partners() {
        let mut state = 12345u64;
        let mut uniform = || {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let start = 1.6e9;
        let shared: Vec<f64> = (0..400).map(|_| start + 60.0 * uniform()).collect();
        let mut tel1: Vec<f64> = shared.iter().map(|t| t + 1e-6 * uniform()).collect();
        let mut tel2: Vec<f64> = shared.iter().map(|t| t + 0.0032 + 1e-6 * uniform()).collect();
        tel1.extend((0..300).map(|_| start + 60.0 * uniform()));
        tel2.extend((0..300).map(|_| start + 60.0 * uniform()));
        let offsets = arange(-0.01, 0.01, 2e-5);
        let search = find_coincidence_offset(&tel1, &tel2, 1e-4, &offsets).unwrap();
        assert!((search.offset_s - 0.0032).abs() <= 1e-4, "{}", search.offset_s);
        assert!(search.coincidences >= 400, "{}", search.coincidences);
        let zero = search.counts.iter().find(|(o, _)| o.abs() < 1e-9).unwrap().1;
        assert!(zero < 50, "no offset: only chance coincidences ({zero})");
        let candidates = sliding_window_candidates(&tel1, &tel2, search.offset_s, 1e-4);
        let right = (0..400).filter(|&i| candidates[i] == vec![i]).count();
        assert!(right >= 395, "{right} of 400 coincident events get their partner alone");
    }

    #[test]
    fn window_edges_follow_sst1mpipe() {
        // Counting includes the edges; candidates exclude them.
        let tel1 = [10.0];
        let tel2 = [10.5, 11.0, 9.5];
        assert_eq!(count_pairs(&tel1, &[9.5, 10.5, 11.0], 0.0, 0.5), 2);
        assert_eq!(sliding_window_candidates(&tel1, &tel2, 0.0, 0.5), vec![Vec::<usize>::new()]);
        assert_eq!(sliding_window_candidates(&tel1, &tel2, 0.5, 0.5), vec![vec![0]]);
        // Ties: the first maximum wins.
        let s = find_coincidence_offset(&[10.0], &[10.0], 0.1, &[-0.05, 0.0, 0.05]).unwrap();
        assert_eq!((s.offset_s, s.coincidences), (-0.05, 1));
    }
}
