//! The 2x2 max-pool's AVX-512 row kernel (f32): 16 windows per step.

use std::arch::x86_64::*;

/// One output row of a 2x2 pool: `out[ox] = max` of the window at columns `2ox, 2ox + 1` of
/// rows `row0` and `row1` (`w` apart in the input), `arg[ox]` its flat index `r0 + offset`,
/// the first maximum in row-major order winning, as the scalar loop.
///
/// # Safety
/// AVX-512F; `row0` and `row1` hold `2 * ow` floats each, `out` and `arg` `ow`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn pool2_row(
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
