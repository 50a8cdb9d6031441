//! Charge extraction: ctapipe's LocalPeakWindowSum.
//!
//! For each pixel the window starts `shift` samples before the waveform's (first) maximum and
//! is `width` samples wide, clipped to the waveform. The charge is the window sum times the
//! integration correction; the peak time is the mean sample index weighted by the positive
//! samples in the window (the peak index if none is positive), in ns.
//!
//! This is the hottest loop of R1 → DL1 (64,800 samples per event), so it comes in three builds
//! chosen at run time: portable scalar code, AVX2 and AVX-512. All three give the same bits: the
//! argmax is exact in any order, and the window sums run sample by sample in the same order on
//! every build (the vector builds put one pixel in each f64 lane instead of reordering a
//! pixel's sum). A unit test holds them to that on awkward waveforms (NaN, ties, clipped
//! windows). The vector builds find the peaks of 64 pixels, then sum their windows eight (four)
//! pixels at a time with gathers, which keeps the independent work in flight on the CPU.
//!
//! Camera data take a shorter way ([`local_peak_window_sum_r0`]): the charges straight from the
//! ADC samples as the decoded zfits tile holds them, calibrating only the samples of each
//! pixel's window. Writing all R1 samples only to read seven per pixel back cost more than the
//! extraction itself; the result is the same bits (the argmax of the ADC samples is R1's, the
//! window values are computed by the same expression, and summed in the same order).
use crate::image::calibrate;
use crate::instrument::N_SAMPLES;

/// Integration window settings (sst1mpipe: width 7, shift 3 samples of 4 ns).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Window {
    pub width: usize,
    pub shift: usize,
    pub sample_ns: f64,
    /// Multiplies every charge (see [`integration_correction`]).
    pub correction: f64,
}

/// Charge and peak time of every pixel. `waveforms` is pixel-major: `n_pixels × n_samples`.
pub fn local_peak_window_sum(
    waveforms: &[f32],
    n_samples: usize,
    window: &Window,
    charge: &mut [f32],
    peak_time: &mut [f32],
) {
    assert_eq!(waveforms.len(), charge.len() * n_samples);
    assert_eq!(charge.len(), peak_time.len());
    #[cfg(target_arch = "x86_64")]
    let build = vector_build();
    #[cfg(target_arch = "x86_64")]
    if (2 * LANES..=64).contains(&n_samples) && build == VectorBuild::Avx512 {
        // SAFETY: the CPU has AVX-512F and AVX2 (`vector_build` checked).
        unsafe {
            match n_samples {
                N_SAMPLES => window_sums_avx512::<N_SAMPLES>(waveforms, n_samples, window, charge, peak_time),
                _ => window_sums_avx512::<0>(waveforms, n_samples, window, charge, peak_time),
            }
        };
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if (LANES..=64).contains(&n_samples) && build >= VectorBuild::Avx2 {
        // SAFETY: the CPU has AVX2 (`vector_build` checked).
        unsafe {
            match n_samples {
                N_SAMPLES => window_sums_avx2::<N_SAMPLES>(waveforms, n_samples, window, charge, peak_time),
                _ => window_sums_avx2::<0>(waveforms, n_samples, window, charge, peak_time),
            }
        };
        return;
    }
    window_sums(waveforms, n_samples, window, charge, peak_time);
}

/// The vector instructions the extraction uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum VectorBuild {
    Scalar,
    Avx2,
    Avx512,
}

/// The widest build this CPU runs, lowered by the environment variable `SST1MFLOW_SIMD`
/// (`scalar` or `avx2`; for benchmarks and checks: every build gives the same bits). Decided
/// once per process.
pub fn vector_build() -> VectorBuild {
    static BUILD: std::sync::OnceLock<VectorBuild> = std::sync::OnceLock::new();
    *BUILD.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        let available = if std::arch::is_x86_feature_detected!("avx512f") && std::arch::is_x86_feature_detected!("avx2")
        {
            VectorBuild::Avx512
        } else if std::arch::is_x86_feature_detected!("avx2") {
            VectorBuild::Avx2
        } else {
            VectorBuild::Scalar
        };
        #[cfg(not(target_arch = "x86_64"))]
        let available = VectorBuild::Scalar;
        let cap = match std::env::var("SST1MFLOW_SIMD").as_deref() {
            Ok("scalar") => VectorBuild::Scalar,
            Ok("avx2") => VectorBuild::Avx2,
            _ => VectorBuild::Avx512,
        };
        available.min(cap)
    })
}

#[inline(always)]
fn window_sums(waveforms: &[f32], n_samples: usize, window: &Window, charge: &mut [f32], peak_time: &mut [f32]) {
    for ((w, q), t) in waveforms.chunks_exact(n_samples).zip(charge.iter_mut()).zip(peak_time.iter_mut()) {
        (*q, *t) = sum_around(w, first_argmax(w), window);
    }
}

/// Charge and peak time of one waveform with its window placed around `peak`. The same
/// sequential f64 sums on every path, so the AVX2 build gives the same bits as the portable one.
#[inline(always)]
fn sum_around(w: &[f32], peak: usize, window: &Window) -> (f32, f32) {
    let start = peak.saturating_sub(window.shift);
    let end = (peak + window.width).saturating_sub(window.shift).min(w.len());
    let (mut sum, mut num, mut den) = (0.0f64, 0.0f64, 0.0f64);
    for (i, &v) in w.iter().enumerate().take(end).skip(start) {
        let v = v as f64;
        sum += v;
        let positive = if v > 0.0 { v } else { 0.0 };
        num += positive * i as f64;
        den += positive;
    }
    let time = if den > 0.0 { num / den } else { peak as f64 };
    (((sum as f32) as f64 * window.correction) as f32, (time * window.sample_ns) as f32)
}

/// Index of the first maximum (numpy's argmax, NaN samples ignored; 0 if there is no number).
fn first_argmax(w: &[f32]) -> usize {
    let mut at = 0;
    let mut top = f32::NEG_INFINITY;
    for (i, &v) in w.iter().enumerate() {
        if v > top {
            top = v;
            at = i;
        }
    }
    at
}

/// The AVX2 build: the argmax in two vector passes per pixel (the maximum of 8-sample chunks,
/// then a compare and a movemask per chunk and the first set bit); the window sums of four
/// pixels at a time, one f64 lane each, sample by sample in the same order as [`sum_around`]
/// (samples outside a pixel's window add +0.0, which changes no sum), so the bits are the same.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn window_sums_avx2<const N: usize>(
    waveforms: &[f32],
    n_samples: usize,
    window: &Window,
    charge: &mut [f32],
    peak_time: &mut [f32],
) {
    use std::arch::x86_64::*;
    assert!(waveforms.len() < i32::MAX as usize);
    // N is the sample count when known at compile time (0: read it at run time); the camera's 50
    // lets the compiler unroll the per-pixel loops.
    let n_samples = if N == 0 { n_samples } else { N };
    let Window { width, shift, sample_ns, correction } = *window;
    let n_blocks = charge.len() / 4;
    let zero = _mm256_setzero_pd();
    // Groups of 64 pixels, as in the AVX-512 build: the peaks first, then the windows.
    let mut peaks = [0i32; 64];
    let (shift_v, width_v) = (_mm_set1_epi32(shift as i32), _mm_set1_epi32(width as i32));
    let (zero_i, n_v) = (_mm_setzero_si128(), _mm_set1_epi32(n_samples as i32));
    let lane_offsets = _mm_mullo_epi32(_mm_setr_epi32(0, 1, 2, 3), _mm_set1_epi32(n_samples as i32));
    for block in 0..n_blocks {
        let first = 4 * block;
        if block % 16 == 0 {
            let group = first..(first + 64).min(4 * n_blocks);
            let samples = &waveforms[group.start * n_samples..group.end * n_samples];
            for (peak, w) in peaks.iter_mut().zip(samples.chunks_exact(n_samples)) {
                *peak = first_argmax_avx2(w) as i32;
            }
        }
        let in_group = first % 64;
        // SAFETY: four i32 of `peaks` from `in_group` (a multiple of 4 below 64).
        let peak = unsafe { _mm_loadu_si128(peaks[in_group..in_group + 4].as_ptr() as *const __m128i) };
        let pixel_offset = _mm_add_epi32(_mm_set1_epi32((first * n_samples) as i32), lane_offsets);
        let last = _mm_add_epi32(pixel_offset, _mm_set1_epi32(n_samples as i32 - 1));
        let from = _mm_sub_epi32(peak, shift_v);
        let start = _mm_add_epi32(pixel_offset, _mm_max_epi32(from, zero_i));
        let end = _mm_add_epi32(pixel_offset, _mm_min_epi32(_mm_add_epi32(from, width_v), n_v));
        let (mut sum, mut num, mut den) = (zero, zero, zero);
        for j in 0..width as i32 {
            let at = _mm_add_epi32(start, _mm_set1_epi32(j));
            let inside = _mm_castsi128_ps(_mm_cmpgt_epi32(end, at));
            // SAFETY: indices are clamped to each pixel's own samples, inside `waveforms`.
            let v = unsafe { _mm_i32gather_ps::<4>(waveforms.as_ptr(), _mm_min_epi32(at, last)) };
            let v = _mm256_cvtps_pd(_mm_and_ps(v, inside));
            sum = _mm256_add_pd(sum, v);
            let positive = _mm256_max_pd(v, zero);
            let sample = _mm256_cvtepi32_pd(_mm_sub_epi32(at, pixel_offset));
            num = _mm256_add_pd(num, _mm256_mul_pd(positive, sample));
            den = _mm256_add_pd(den, positive);
        }
        let peak = _mm256_cvtepi32_pd(peak);
        let time = _mm256_blendv_pd(peak, _mm256_div_pd(num, den), _mm256_cmp_pd::<_CMP_GT_OQ>(den, zero));
        let time = _mm256_cvtpd_ps(_mm256_mul_pd(time, _mm256_set1_pd(sample_ns)));
        let q = _mm256_cvtps_pd(_mm256_cvtpd_ps(sum));
        let q = _mm256_cvtpd_ps(_mm256_mul_pd(q, _mm256_set1_pd(correction)));
        // SAFETY: four floats into each output at `first`, which has 4 left (first < 4 · n_blocks).
        unsafe {
            _mm_storeu_ps(charge[first..first + 4].as_mut_ptr(), q);
            _mm_storeu_ps(peak_time[first..first + 4].as_mut_ptr(), time);
        }
    }
    for pixel in 4 * n_blocks..charge.len() {
        let w = &waveforms[pixel * n_samples..(pixel + 1) * n_samples];
        (charge[pixel], peak_time[pixel]) = sum_around(w, first_argmax_avx2(w), window);
    }
}

/// [`local_peak_window_sum`] of the R1 waveforms of an event as its zfits tile holds it,
/// calibrated as [`calibrate::r0_to_r1_readout`] calibrates them (`factors`: per software
/// pixel, [`calibrate::r1_factor`] of its dc_to_pe and voltage drop) and with the pixels flagged
/// in `bad` zeroed, as r0-dl1 zeroes them: the same charges and peak times, bit for bit, and the
/// same largest baseline-subtracted ADC value returned, without writing the 64,800 R1 samples
/// of an event (that write was the costliest step of R0 → DL1 after decoding). Only the samples
/// in each pixel's window are calibrated: with a factor that is finite and neither tiny nor
/// huge, R1 keeps the order of the ADC samples (distinct 16-bit integers minus a baseline in
/// 1/16 ADC are exact in f32 and stay distinct once scaled), so R1's first maximum is the ADC
/// samples' first maximum. A pixel with any other factor (from a zero or broken dc_to_pe) is
/// calibrated whole, as before.
pub fn local_peak_window_sum_r0(
    event: &calibrate::ReadoutEvent,
    factors: &[f32],
    bad: &[bool],
    window: &Window,
    charge: &mut [f32],
    peak_time: &mut [f32],
) -> f32 {
    let n_pixels = charge.len();
    assert!(event.samples.len() == 2 * n_pixels * event.n_samples && event.baselines_x16.len() == 2 * n_pixels);
    assert!(event.pixel_indices.len() == 2 * n_pixels && peak_time.len() == n_pixels);
    assert!(factors.len() == n_pixels && bad.len() == n_pixels && event.n_samples > 0);
    #[cfg(target_arch = "x86_64")]
    if (16..=64).contains(&event.n_samples) && vector_build() >= VectorBuild::Avx2 {
        // SAFETY: the CPU has AVX2 (`vector_build` checked).
        return unsafe {
            match event.n_samples {
                N_SAMPLES => r0_window_sums_avx2::<N_SAMPLES>(event, factors, bad, window, charge, peak_time),
                _ => r0_window_sums_avx2::<0>(event, factors, bad, window, charge, peak_time),
            }
        };
    }
    r0_window_sums::<0>(event, factors, bad, window, charge, peak_time, first_max_i16)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn r0_window_sums_avx2<const S: usize>(
    event: &calibrate::ReadoutEvent,
    factors: &[f32],
    bad: &[bool],
    window: &Window,
    charge: &mut [f32],
    peak_time: &mut [f32],
) -> f32 {
    // The caller checked that every waveform has 16 to 64 samples.
    let argmax = |s: &[u8]| first_max_i16_avx2(s);
    r0_window_sums::<S>(event, factors, bad, window, charge, peak_time, argmax)
}

/// Whether a factor keeps the order of the ADC samples through R1 (see
/// [`local_peak_window_sum_r0`]): no overflow, no underflow to subnormals, no NaN.
fn keeps_sample_order(factor: f32) -> bool {
    factor.is_finite() && (1e-30..=1e30).contains(&factor)
}

/// Pixels whose windows are calibrated and summed side by side, one lane each.
const R0_LANES: usize = 8;

/// The body of [`local_peak_window_sum_r0`], per block of eight readout positions: the first
/// maximum of each pixel's ADC samples (`argmax`: (maximum, index)) and its window; the R1
/// values of the eight windows, sample by sample across the pixels (0.0 past a window's end,
/// which changes no sum; a zeroed pixel has an empty window); then the window sums in
/// [`sum_around`]'s order, one pixel per lane. `S` > 0: the samples per pixel at compile time.
#[inline(always)]
fn r0_window_sums<const S: usize>(
    event: &calibrate::ReadoutEvent,
    factors: &[f32],
    bad: &[bool],
    window: &Window,
    charge: &mut [f32],
    peak_time: &mut [f32],
    argmax: impl Fn(&[u8]) -> (i16, usize),
) -> f32 {
    const L: usize = R0_LANES;
    let n = if S > 0 { S } else { event.n_samples };
    let Window { width, shift, sample_ns, correction } = *window;
    let n_pixels = charge.len();
    let samples = event.samples;
    let mut max_adc = f32::NEG_INFINITY;
    let mut values = vec![[0.0f32; L]; width];
    let mut whole: Vec<f32> = Vec::new();
    for first in (0..n_pixels).step_by(L) {
        let lanes = L.min(n_pixels - first);
        let (mut pixels, mut peaks, mut starts, mut lens) = ([0usize; L], [0usize; L], [0usize; L], [0usize; L]);
        // Byte offset of each lane's first sample; unused lanes read the block's first pixel.
        let mut offsets = [2 * n * first; L];
        let (mut baselines, mut lane_factors) = ([0.0f32; L], [0.0f32; L]);
        let mut whole_lanes = 0u32;
        for lane in 0..lanes {
            let r = first + lane;
            let pixel = u16::from_le_bytes([event.pixel_indices[2 * r], event.pixel_indices[2 * r + 1]]) as usize;
            let baseline = calibrate::baseline_adc(i16::from_le_bytes([
                event.baselines_x16[2 * r],
                event.baselines_x16[2 * r + 1],
            ]));
            let (top, at) = argmax(&samples[2 * n * r..2 * n * (r + 1)]);
            max_adc = max_adc.max(top as f32 - baseline);
            let factor = factors[pixel];
            let peak = if bad[pixel] {
                // A zeroed waveform: its first maximum is sample 0.
                0
            } else if keeps_sample_order(factor) {
                at
            } else {
                whole_lanes |= 1 << lane;
                0
            };
            let start = peak.saturating_sub(shift);
            let end = (peak + width).saturating_sub(shift).min(n);
            (pixels[lane], peaks[lane], starts[lane]) = (pixel, peak, start);
            lens[lane] = if bad[pixel] { 0 } else { end - start };
            (offsets[lane], baselines[lane], lane_factors[lane]) = (2 * n * r, baseline, factor);
        }
        for (j, v) in values.iter_mut().enumerate() {
            let mut adc = [0i16; L];
            for lane in 0..L {
                let at = offsets[lane] + 2 * (starts[lane] + j).min(n - 1);
                adc[lane] = i16::from_le_bytes([samples[at], samples[at + 1]]);
            }
            for lane in 0..L {
                let r1 = calibrate::r1_sample(adc[lane], baselines[lane], lane_factors[lane]);
                v[lane] = if j < lens[lane] { r1 } else { 0.0 };
            }
        }
        while whole_lanes != 0 {
            // A factor that does not keep the samples' order: R1 made whole, its own maximum.
            let lane = whole_lanes.trailing_zeros() as usize;
            whole_lanes &= whole_lanes - 1;
            let pixel_samples = &samples[offsets[lane]..offsets[lane] + 2 * n];
            whole.clear();
            whole.extend(
                pixel_samples.chunks_exact(2).map(|x| {
                    calibrate::r1_sample(i16::from_le_bytes([x[0], x[1]]), baselines[lane], lane_factors[lane])
                }),
            );
            let peak = first_argmax(&whole);
            let start = peak.saturating_sub(shift);
            let end = (peak + width).saturating_sub(shift).min(n);
            (peaks[lane], starts[lane]) = (peak, start);
            for (j, v) in values.iter_mut().enumerate() {
                v[lane] = if start + j < end { whole[start + j] } else { 0.0 };
            }
        }
        let (mut sum, mut num, mut den) = ([0.0f64; L], [0.0f64; L], [0.0f64; L]);
        for (j, v) in values.iter().enumerate() {
            for lane in 0..L {
                let v = v[lane] as f64;
                sum[lane] += v;
                let positive = if v > 0.0 { v } else { 0.0 };
                num[lane] += positive * (starts[lane] + j) as f64;
                den[lane] += positive;
            }
        }
        for lane in 0..lanes {
            let time = if den[lane] > 0.0 { num[lane] / den[lane] } else { peaks[lane] as f64 };
            charge[pixels[lane]] = ((sum[lane] as f32) as f64 * correction) as f32;
            peak_time[pixels[lane]] = (time * sample_ns) as f32;
        }
    }
    max_adc
}

/// The first maximum of little-endian i16 samples: (maximum, index); (i16::MIN, 0) if empty.
fn first_max_i16(samples: &[u8]) -> (i16, usize) {
    let value = |c: &[u8]| i16::from_le_bytes([c[0], c[1]]);
    let top = samples.chunks_exact(2).fold(i16::MIN, |m, c| m.max(value(c)));
    (top, samples.chunks_exact(2).position(|c| value(c) == top).unwrap_or(0))
}

/// [`first_max_i16`] for 16 to 64 samples: the maximum of 16-sample chunks (a partial last
/// chunk read as the overlapping last sixteen), then the first chunk holding it.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn first_max_i16_avx2(samples: &[u8]) -> (i16, usize) {
    use std::arch::x86_64::*;
    const WIDE: usize = 16;
    let n = samples.len() / 2;
    assert!((WIDE..=64).contains(&n));
    let full = n / WIDE;
    let tail = !n.is_multiple_of(WIDE);
    // SAFETY: every load reads 16 samples starting at most at n - 16, inside `samples`.
    let load = |at: usize| unsafe { _mm256_loadu_si256(samples.as_ptr().add(2 * at) as *const __m256i) };
    let mut m = _mm256_set1_epi16(i16::MIN);
    for k in 0..full {
        m = _mm256_max_epi16(m, load(k * WIDE));
    }
    if tail {
        m = _mm256_max_epi16(m, load(n - WIDE));
    }
    let m = _mm_max_epi16(_mm256_castsi256_si128(m), _mm256_extracti128_si256::<1>(m));
    // The signed maximum as the unsigned minimum of 0x7fff − m (minpos finds that one).
    let flipped = _mm_sub_epi16(_mm_set1_epi16(0x7fff), m);
    let top = (0x7fff - (_mm_cvtsi128_si32(_mm_minpos_epu16(flipped)) & 0xffff)) as i16;
    let top_v = _mm256_set1_epi16(top);
    let found = |at: usize| _mm256_movemask_epi8(_mm256_cmpeq_epi16(load(at), top_v)) as u32 as u128;
    // Two bits per sample, the chunks where they start (the overlapping tail agrees with the
    // chunk before it): no branch on where the maximum is.
    let mut bits = 0u128;
    for k in 0..full {
        bits |= found(k * WIDE) << (2 * k * WIDE);
    }
    if tail {
        bits |= found(n - WIDE) << (2 * (n - WIDE));
    }
    (top, bits.trailing_zeros() as usize / 2)
}

/// Samples per AVX2 register.
const LANES: usize = 8;

/// [`first_argmax`] for `LANES <= w.len() <= 64`; a partial last chunk is read as the
/// overlapping last eight samples.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn first_argmax_avx2(w: &[f32]) -> usize {
    use std::arch::x86_64::*;
    let n = w.len();
    debug_assert!((LANES..=64).contains(&n));
    let full = n / LANES;
    let tail = !n.is_multiple_of(LANES);
    // SAFETY: every load reads 8 floats starting at most at n - 8, inside `w`.
    let load = |at: usize| unsafe { _mm256_loadu_ps(w.as_ptr().add(at)) };
    // max_ps(v, m) keeps m where v is NaN, so NaN samples never become the maximum.
    let mut m = _mm256_set1_ps(f32::NEG_INFINITY);
    for k in 0..full {
        m = _mm256_max_ps(load(k * LANES), m);
    }
    if tail {
        m = _mm256_max_ps(load(n - LANES), m);
    }
    // The maximum in every lane: swap halves, pairs, neighbours.
    let m = _mm256_max_ps(m, _mm256_permute2f128_ps::<1>(m, m));
    let m = _mm256_max_ps(m, _mm256_shuffle_ps::<0b01_00_11_10>(m, m));
    let top = _mm256_max_ps(m, _mm256_shuffle_ps::<0b10_11_00_01>(m, m));
    if _mm256_cvtss_f32(top) == f32::NEG_INFINITY {
        return 0;
    }
    let equal = |at: usize| _mm256_movemask_ps(_mm256_cmp_ps::<_CMP_EQ_OQ>(load(at), top)) as u32 as u64;
    let mut bits = 0u64;
    for k in 0..full {
        bits |= equal(k * LANES) << (k * LANES);
    }
    if tail {
        bits |= equal(n - LANES) << (n - LANES);
    }
    bits.trailing_zeros() as usize
}

/// The AVX-512 build: sixteen samples per compare (the compares give bit masks directly), and
/// eight pixels per block of window sums, one f64 lane each, in [`sum_around`]'s order.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx2")]
fn window_sums_avx512<const N: usize>(
    waveforms: &[f32],
    n_samples: usize,
    window: &Window,
    charge: &mut [f32],
    peak_time: &mut [f32],
) {
    use std::arch::x86_64::*;
    assert!(waveforms.len() < i32::MAX as usize);
    let n_samples = if N == 0 { n_samples } else { N };
    let Window { width, shift, sample_ns, correction } = *window;
    let n_blocks = charge.len() / 8;
    let zero = _mm512_setzero_pd();
    let lane_offsets =
        _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(n_samples as i32));
    // Pixels go by groups of 64 (12.8 kB of samples, which stay in the L1 cache between the
    // two passes). Pass 1, the peaks: independent iterations the CPU overlaps freely.
    let mut peaks = [0i32; 64];
    let (shift_v, width_v) = (_mm256_set1_epi32(shift as i32), _mm256_set1_epi32(width as i32));
    let (zero_i, n_v) = (_mm256_setzero_si256(), _mm256_set1_epi32(n_samples as i32));
    for block in 0..n_blocks {
        let first = 8 * block;
        if block % 8 == 0 {
            let group = first..(first + 64).min(8 * n_blocks);
            let samples = &waveforms[group.start * n_samples..group.end * n_samples];
            for (peak, w) in peaks.iter_mut().zip(samples.chunks_exact(n_samples)) {
                *peak = first_argmax_avx512(w) as i32;
            }
        }
        // Pass 2, the windows of eight pixels at a time.
        let in_group = first % 64;
        // SAFETY: eight i32 of `peaks` from `in_group` (a multiple of 8 below 64).
        let peak = unsafe { _mm256_loadu_si256(peaks[in_group..in_group + 8].as_ptr() as *const __m256i) };
        let pixel_offset = _mm256_add_epi32(_mm256_set1_epi32((first * n_samples) as i32), lane_offsets);
        let last = _mm256_add_epi32(pixel_offset, _mm256_set1_epi32(n_samples as i32 - 1));
        let from = _mm256_sub_epi32(peak, shift_v);
        let start = _mm256_add_epi32(pixel_offset, _mm256_max_epi32(from, zero_i));
        let end = _mm256_add_epi32(pixel_offset, _mm256_min_epi32(_mm256_add_epi32(from, width_v), n_v));
        let (mut sum, mut num, mut den) = (zero, zero, zero);
        for j in 0..width as i32 {
            let at = _mm256_add_epi32(start, _mm256_set1_epi32(j));
            let inside = _mm256_castsi256_ps(_mm256_cmpgt_epi32(end, at));
            // SAFETY: indices are clamped to each pixel's own samples, inside `waveforms`.
            let v = unsafe { _mm256_i32gather_ps::<4>(waveforms.as_ptr(), _mm256_min_epi32(at, last)) };
            let v = _mm512_cvtps_pd(_mm256_and_ps(v, inside));
            sum = _mm512_add_pd(sum, v);
            let positive = _mm512_max_pd(v, zero);
            let sample = _mm512_cvtepi32_pd(_mm256_sub_epi32(at, pixel_offset));
            num = _mm512_add_pd(num, _mm512_mul_pd(positive, sample));
            den = _mm512_add_pd(den, positive);
        }
        let has_weight = _mm512_cmp_pd_mask::<_CMP_GT_OQ>(den, zero);
        let time = _mm512_mask_blend_pd(has_weight, _mm512_cvtepi32_pd(peak), _mm512_div_pd(num, den));
        let time = _mm512_cvtpd_ps(_mm512_mul_pd(time, _mm512_set1_pd(sample_ns)));
        let q = _mm512_cvtps_pd(_mm512_cvtpd_ps(sum));
        let q = _mm512_cvtpd_ps(_mm512_mul_pd(q, _mm512_set1_pd(correction)));
        // SAFETY: eight floats into each output at `first`, which has 8 left (first < 8 · n_blocks).
        unsafe {
            _mm256_storeu_ps(charge[first..first + 8].as_mut_ptr(), q);
            _mm256_storeu_ps(peak_time[first..first + 8].as_mut_ptr(), time);
        }
    }
    for pixel in 8 * n_blocks..charge.len() {
        let w = &waveforms[pixel * n_samples..(pixel + 1) * n_samples];
        (charge[pixel], peak_time[pixel]) = sum_around(w, first_argmax_avx512(w), window);
    }
}

/// [`first_argmax`] for `16 <= w.len() <= 64`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn first_argmax_avx512(w: &[f32]) -> usize {
    use std::arch::x86_64::*;
    const WIDE: usize = 16;
    let n = w.len();
    debug_assert!((WIDE..=64).contains(&n));
    let full = n / WIDE;
    let tail = !n.is_multiple_of(WIDE);
    // SAFETY: every load reads 16 floats starting at most at n - 16, inside `w`.
    let load = |at: usize| unsafe { _mm512_loadu_ps(w.as_ptr().add(at)) };
    let mut m = _mm512_set1_ps(f32::NEG_INFINITY);
    for k in 0..full {
        m = _mm512_max_ps(load(k * WIDE), m);
    }
    if tail {
        m = _mm512_max_ps(load(n - WIDE), m);
    }
    let top = _mm512_reduce_max_ps(m);
    if top == f32::NEG_INFINITY {
        return 0;
    }
    let top = _mm512_set1_ps(top);
    let mut bits = 0u64;
    for k in 0..full {
        bits |= (_mm512_cmp_ps_mask::<_CMP_EQ_OQ>(load(k * WIDE), top) as u64) << (k * WIDE);
    }
    if tail {
        bits |= (_mm512_cmp_ps_mask::<_CMP_EQ_OQ>(load(n - WIDE), top) as u64) << (n - WIDE);
    }
    bits.trailing_zeros() as usize
}

/// ctapipe's integration correction: 1 / (fraction of the reference pulse, rebinned to the
/// camera's sampling, that falls in the window placed around the rebinned pulse's maximum).
/// `pulse` is sampled every `pulse_step_ns` from t = 0.
pub fn integration_correction(pulse: &[f64], pulse_step_ns: f64, sample_ns: f64, width: usize, shift: usize) -> f64 {
    let total_ns = pulse.len() as f64 * pulse_step_ns;
    // Bin edges 0, sample_ns, … < total_ns (as numpy.arange): n_edges − 1 bins.
    let n_edges = (total_ns / sample_ns).ceil() as usize;
    if n_edges < 2 {
        return 1.0;
    }
    let n_bins = n_edges - 1;
    let last_edge = (n_edges - 1) as f64 * sample_ns;
    let mut bins = vec![0.0f64; n_bins];
    let mut inside = 0.0;
    for (i, &a) in pulse.iter().enumerate() {
        let t = i as f64 * pulse_step_ns;
        if t < 0.0 || t > last_edge {
            continue;
        }
        let b = ((t / sample_ns) as usize).min(n_bins - 1);
        bins[b] += a;
        inside += a;
    }
    if inside == 0.0 {
        return 1.0;
    }
    // numpy's density=True: counts / total / bin width.
    for b in &mut bins {
        *b /= inside * sample_ns;
    }
    let mut peak = 0;
    for (i, &v) in bins.iter().enumerate() {
        if v > bins[peak] {
            peak = i;
        }
    }
    let start = peak.saturating_sub(shift);
    let end = (start + width).min(n_bins);
    if start >= end {
        return 1.0;
    }
    1.0 / bins[start..end].iter().map(|b| b * sample_ns).sum::<f64>()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seeded xorshift64 generator for the tests' waveforms.
    fn xorshift(seed: u64) -> impl FnMut() -> u64 {
        let mut state = seed;
        move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        }
    }

    #[test]
    fn window_sum_and_weighted_time() {
        let mut w = vec![0.0f32; 2 * 10];
        w[3..8].copy_from_slice(&[1.0, 2.0, 5.0, 2.0, 1.0]); // pixel 0, peak at 5
        w[10] = 4.0; // pixel 1, peak at sample 0 (window clipped at the start)
        w[11] = -1.0;
        let (mut q, mut t) = (vec![0.0; 2], vec![0.0; 2]);
        let window = Window { width: 3, shift: 1, sample_ns: 4.0, correction: 2.0 };
        local_peak_window_sum(&w, 10, &window, &mut q, &mut t);
        assert_eq!(q[0], 2.0 * 9.0);
        assert!((t[0] - 4.0 * (2.0 * 4.0 + 5.0 * 5.0 + 2.0 * 6.0) / 9.0).abs() < 1e-5);
        assert_eq!(q[1], 2.0 * 3.0);
        assert_eq!(t[1], 0.0);
    }

    #[test]
    fn argmax_takes_the_first_maximum_like_numpy() {
        let cases: [&[f32]; 6] = [
            &[1.0, 3.0, 3.0, 2.0, 3.0],
            &[5.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 5.0],
            &[0.0, 0.0, 0.0, 0.0, 0.0, 9.0],
            &[-3.0, -1.0, -2.0, -1.0],
            &[2.0],
            &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 7.0, 1.0],
        ];
        for w in cases {
            let mut naive = 0;
            for (i, &v) in w.iter().enumerate() {
                if v > w[naive] {
                    naive = i;
                }
            }
            assert_eq!(first_argmax(w), naive, "{w:?}");
        }
    }

    /// Every vector build gives the scalar build's bits: random waveforms with ties, NaN,
    /// negative and all-equal pixels, peaks at both ends (windows clipped), for the camera's 50
    /// samples and for other lengths, and a pixel count that leaves a partial block.
    #[test]
    fn vector_builds_equal_the_scalar_one_bit_for_bit() {
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        for n_samples in [50usize, 16, 23, 64, 8] {
            let n_pixels = 203;
            let mut w = vec![0.0f32; n_pixels * n_samples];
            for (pixel, chunk) in w.chunks_exact_mut(n_samples).enumerate() {
                for v in chunk.iter_mut() {
                    *v = ((next() % 2000) as f32 - 300.0) / 37.0;
                }
                match pixel % 9 {
                    0 => chunk[0] = 1e4,
                    1 => chunk[n_samples - 1] = 1e4,
                    2 => chunk.fill(-1.0),
                    3 => {
                        chunk[n_samples / 3] = 500.0;
                        chunk[n_samples / 2] = 500.0;
                    }
                    4 => chunk[(next() as usize) % n_samples] = f32::NAN,
                    5 => chunk.fill(f32::NAN),
                    6 => chunk.fill(0.0),
                    _ => {}
                }
            }
            for window in [
                Window { width: 7, shift: 3, sample_ns: 4.0, correction: 1.0378 },
                Window { width: 5, shift: 0, sample_ns: 4.0, correction: 1.0 },
                Window { width: 9, shift: 9, sample_ns: 2.5, correction: 0.9 },
            ] {
                let run = |f: &dyn Fn(&mut [f32], &mut [f32])| {
                    let (mut q, mut t) = (vec![0.0f32; n_pixels], vec![0.0f32; n_pixels]);
                    f(&mut q, &mut t);
                    (
                        q.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                        t.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
                    )
                };
                let scalar = run(&|q, t| window_sums(&w, n_samples, &window, q, t));
                assert_eq!(run(&|q, t| local_peak_window_sum(&w, n_samples, &window, q, t)), scalar);
                #[cfg(target_arch = "x86_64")]
                {
                    if std::arch::is_x86_feature_detected!("avx2") {
                        // SAFETY: AVX2 checked.
                        let avx2 = run(&|q, t| unsafe { window_sums_avx2::<0>(&w, n_samples, &window, q, t) });
                        assert!(avx2 == scalar, "AVX2, {n_samples} samples, {window:?}");
                        if n_samples == N_SAMPLES {
                            // SAFETY: AVX2 checked.
                            let fixed =
                                run(&|q, t| unsafe { window_sums_avx2::<N_SAMPLES>(&w, n_samples, &window, q, t) });
                            assert!(fixed == scalar, "AVX2, {N_SAMPLES} samples known at compile time, {window:?}");
                        }
                    } else {
                        println!("no AVX2 here: that build is not compared");
                    }
                    if n_samples >= 16
                        && std::arch::is_x86_feature_detected!("avx512f")
                        && std::arch::is_x86_feature_detected!("avx2")
                    {
                        // SAFETY: AVX-512F and AVX2 checked.
                        let avx512 = run(&|q, t| unsafe { window_sums_avx512::<0>(&w, n_samples, &window, q, t) });
                        assert!(avx512 == scalar, "AVX-512, {n_samples} samples, {window:?}");
                        if n_samples == N_SAMPLES {
                            // SAFETY: AVX-512F and AVX2 checked.
                            let fixed =
                                run(&|q, t| unsafe { window_sums_avx512::<N_SAMPLES>(&w, n_samples, &window, q, t) });
                            assert!(fixed == scalar, "AVX-512, {N_SAMPLES} samples known at compile time, {window:?}");
                        }
                    } else if n_samples >= 16 {
                        println!("no AVX-512 here: that build is not compared");
                    }
                }
            }
        }
    }

    /// The charges and peak times straight from an event in readout order equal, bit for bit,
    /// those of its R1 waveforms computed whole (bad pixels zeroed), on every build: ties of
    /// the maximum, peaks at both ends, bad pixels, and factors that do not keep the samples'
    /// order (zero, negative, infinite, NaN, subnormal dc_to_pe products).
    #[test]
    fn charges_from_r0_equal_charges_from_whole_r1() {
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        for n_samples in [50usize, 16, 23, 64, 8, 7] {
            let n_pixels = 203;
            let mut perm: Vec<u16> = (0..n_pixels as u16).collect();
            for i in (1..n_pixels).rev() {
                perm.swap(i, next() as usize % (i + 1));
            }
            let mut raw: Vec<i16> = (0..n_pixels * n_samples).map(|_| (next() % 600) as i16 + 200).collect();
            for (r, chunk) in raw.chunks_exact_mut(n_samples).enumerate() {
                match r % 7 {
                    0 => chunk[0] = 4095,
                    1 => chunk[n_samples - 1] = 4095,
                    2 => {
                        chunk[n_samples / 3] = 3000;
                        chunk[n_samples / 2] = 3000;
                    }
                    3 => chunk.fill(300),
                    4 => chunk.fill(i16::MIN),
                    _ => {}
                }
            }
            let baselines: Vec<i16> = (0..n_pixels).map(|_| (next() % 8000) as i16).collect();
            let mut dc_to_pe: Vec<f64> = (0..n_pixels).map(|_| 20.0 + (next() % 1000) as f64 / 100.0).collect();
            for (p, d) in [(3, 0.0), (10, -21.0), (17, f64::INFINITY), (24, f64::NAN), (31, 1e39), (38, 1e-39)] {
                dc_to_pe[p] = d;
            }
            let bad: Vec<bool> = (0..n_pixels).map(|p| p % 11 == 5 || p == 3).collect();
            let bytes = |v: &[i16]| v.iter().flat_map(|w| w.to_le_bytes()).collect::<Vec<u8>>();
            let (samples, baseline_bytes) = (bytes(&raw), bytes(&baselines));
            let perm_bytes: Vec<u8> = perm.iter().flat_map(|p| p.to_le_bytes()).collect();
            let event = calibrate::ReadoutEvent {
                samples: &samples,
                baselines_x16: &baseline_bytes,
                pixel_indices: &perm_bytes,
                n_samples,
            };
            let window = Window { width: 7, shift: 3, sample_ns: 4.0, correction: 1.0378 };
            let mut r1 = vec![0.0f32; n_pixels * n_samples];
            let want_max = calibrate::r0_to_r1_readout(
                &samples,
                &baseline_bytes,
                &perm_bytes,
                &dc_to_pe,
                0.93,
                n_samples,
                &mut r1,
            );
            for (p, _) in bad.iter().enumerate().filter(|(_, &b)| b) {
                r1[p * n_samples..(p + 1) * n_samples].fill(0.0);
            }
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            let (mut q, mut t) = (vec![0.0f32; n_pixels], vec![0.0f32; n_pixels]);
            window_sums(&r1, n_samples, &window, &mut q, &mut t);
            let want = (bits(&q), bits(&t));
            let run = |f: &dyn Fn(&mut [f32], &mut [f32]) -> f32| {
                let (mut q, mut t) = (vec![0.0f32; n_pixels], vec![0.0f32; n_pixels]);
                let max = f(&mut q, &mut t);
                assert_eq!(max.to_bits(), want_max.to_bits(), "{n_samples} samples");
                (bits(&q), bits(&t))
            };
            let factors: Vec<f32> = dc_to_pe.iter().map(|&d| calibrate::r1_factor(d, 0.93)).collect();
            let dispatched = run(&|q, t| local_peak_window_sum_r0(&event, &factors, &bad, &window, q, t));
            assert!(dispatched == want, "{n_samples} samples");
            let portable = run(&|q, t| r0_window_sums::<0>(&event, &factors, &bad, &window, q, t, first_max_i16));
            assert!(portable == want, "portable, {n_samples} samples");
            #[cfg(target_arch = "x86_64")]
            if (16..=64).contains(&n_samples) && std::arch::is_x86_feature_detected!("avx2") {
                // SAFETY: AVX2 checked.
                let avx2 = run(&|q, t| unsafe { r0_window_sums_avx2::<0>(&event, &factors, &bad, &window, q, t) });
                assert!(avx2 == want, "AVX2, {n_samples} samples");
            }
        }
    }

    #[test]
    fn correction_of_a_pulse_fully_inside_is_one() {
        let mut pulse = vec![0.0; 100];
        pulse[42] = 1.0;
        assert!((integration_correction(&pulse, 0.1, 4.0, 7, 3) - 1.0).abs() < 1e-12);
    }
}
