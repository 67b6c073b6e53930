//! The 2x2 max-pool's AVX-512 row kernels (f32): 16 windows per step.

use std::arch::x86_64::*;

/// `oh` output rows of a 2x2 pool over a plane of row stride `w` at `x` (flat index `r0` of
/// its first element): output row `oy` from input rows `2oy` and `2oy + 1`. A whole plane per
/// call, so that a small plane (a 14x14 output is one partial vector per row) does not pay
/// the constants and the call per row.
///
/// # Safety
/// AVX-512F; `x` holds `2 * oh` rows of `w >= 2 * ow` floats, `out` and `arg` `oh * ow`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn pool2_rows(
    x: *const f32,
    (w, r0): (usize, usize),
    (oh, ow): (usize, usize),
    out: *mut f32,
    arg: *mut u32,
) {
    for oy in 0..oh {
        let row0 = x.add(2 * oy * w);
        let (o, a) = (out.add(oy * ow), arg.add(oy * ow));
        pool2_row(row0, row0.add(w), w, r0 + 2 * oy * w, ow, o, a);
    }
}

/// One output row of a 2x2 pool: `out[ox] = max` of the window at columns `2ox, 2ox + 1` of
/// rows `row0` and `row1` (`w` apart in the input), `arg[ox]` its flat index `r0 + offset`,
/// the first maximum in row-major order winning, as the scalar loop.
///
/// # Safety
/// AVX-512F; `row0` and `row1` hold `2 * ow` floats each, `out` and `arg` `ow`.
#[inline(always)]
unsafe fn pool2_row(
    row0: *const f32,
    row1: *const f32,
    w: usize,
    r0: usize,
    ow: usize,
    out: *mut f32,
    arg: *mut u32,
) {
    // Lanes of two 16-float loads, evens then odds: the windows' left and right columns.
    let evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odds = _mm512_add_epi32(evens, _mm512_set1_epi32(1));
    let lane2 = _mm512_slli_epi32::<1>(_mm512_setr_epi32(
        0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
    ));
    let (one, wv) = (_mm512_set1_epi32(1), _mm512_set1_epi32(w as i32));
    let mut ox = 0;
    while ox < ow {
        let n = (ow - ox).min(16);
        // 2n floats of each row: two masked loads of up to 16.
        let (m_lo, m_hi) = (
            crate::isa::mask16((2 * n).min(16)),
            crate::isa::mask16((2 * n).saturating_sub(16)),
        );
        let c = 2 * ox;
        let load = |row: *const f32| {
            let lo = _mm512_maskz_loadu_ps(m_lo, row.add(c));
            let hi = _mm512_maskz_loadu_ps(m_hi, row.add(c + 16));
            (
                _mm512_permutex2var_ps(lo, evens, hi),
                _mm512_permutex2var_ps(lo, odds, hi),
            )
        };
        let ((a, b), (cc, d)) = (load(row0), load(row1));
        // Offsets within the window: 2ox (a), +1 (b), +w (c), +w+1 (d), as the scalar order.
        let base = _mm512_add_epi32(_mm512_set1_epi32((r0 + c) as i32), lane2);
        let (mut m, mut i) = (a, base);
        for (v, off) in [(b, one), (cc, wv), (d, _mm512_add_epi32(wv, one))] {
            let gt = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, m);
            m = _mm512_mask_blend_ps(gt, m, v);
            i = _mm512_mask_blend_epi32(gt, i, _mm512_add_epi32(base, off));
        }
        let keep = crate::isa::mask16(n);
        _mm512_mask_storeu_ps(out.add(ox), keep, m);
        _mm512_mask_storeu_epi32(arg.add(ox) as *mut i32, keep, i);
        ox += n;
    }
}

/// The gradient of `oh` output rows of a 2x2 pool ([`pool2_rows`]'s plane), written whole
/// over the first `2 * oh` input rows at `dx` (flat index `i0` of its first element).
///
/// # Safety
/// AVX-512F; `dout` and `arg` hold `oh * ow` elements, `dx` `2 * oh * w` floats,
/// `2 * ow <= w`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn unpool2_rows(
    dout: *const f32,
    arg: *const u32,
    (i0, w): (usize, usize),
    (oh, ow): (usize, usize),
    dx: *mut f32,
) {
    for oy in 0..oh {
        let (d, a) = (dout.add(oy * ow), arg.add(oy * ow));
        unpool2_row(d, a, i0 + 2 * oy * w, w, ow, dx.add(2 * oy * w));
    }
}

/// Two input rows' gradient of a 2x2 pool, written whole: element `c` of row `r` (flat index
/// `i0 + r*w + c`) gets `dout[c / 2]` where that window's `arg` is `i0 + r*w + c`, zero
/// elsewhere (the dropped last column of an odd width included).
///
/// # Safety
/// AVX-512F; `dout` and `arg` hold `ow` elements, `dx` `2 * w` floats, `2 * ow <= w`.
#[inline(always)]
unsafe fn unpool2_row(
    dout: *const f32,
    arg: *const u32,
    i0: usize,
    w: usize,
    ow: usize,
    dx: *mut f32,
) {
    // Lane l of the low (high) 16 input columns belongs to window l / 2 (8 + l / 2).
    let lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    let half = _mm512_srli_epi32::<1>(lanes);
    let hi = _mm512_add_epi32(half, _mm512_set1_epi32(8));
    let zero = _mm512_setzero_ps();
    for r in 0..2 {
        let row = dx.add(r * w);
        let mut ox = 0;
        while ox < ow {
            let n = (ow - ox).min(16);
            let m = crate::isa::mask16(n);
            let d = _mm512_maskz_loadu_ps(m, dout.add(ox));
            let a = _mm512_maskz_loadu_epi32(m, arg.add(ox) as *const i32);
            let c = 2 * ox;
            let own = _mm512_add_epi32(_mm512_set1_epi32((i0 + r * w + c) as i32), lanes);
            for (h, win) in [(0, half), (16, hi)] {
                let cols = (2 * n).saturating_sub(h).min(16);
                if cols == 0 {
                    break;
                }
                let at = _mm512_add_epi32(own, _mm512_set1_epi32(h as i32));
                let hit = _mm512_cmpeq_epi32_mask(_mm512_permutexvar_epi32(win, a), at);
                let v = _mm512_mask_blend_ps(hit, zero, _mm512_permutexvar_ps(win, d));
                _mm512_mask_storeu_ps(row.add(c + h), crate::isa::mask16(cols), v);
            }
            ox += n;
        }
        // An odd width's last column fills no window.
        for c in 2 * ow..w {
            *row.add(c) = 0.0;
        }
    }
}
