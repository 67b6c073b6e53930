//! The AVX-512 fused step: register-blocked over up to [`super::STEP_ROWS`] rows of the
//! mini-batch, masked at the edges of k.

use super::StepArgs;
use crate::isa::mask16;
use std::arch::x86_64::*;

/// Weight rows per block of the step: a block's rows are walked 16 columns at a time, so
/// each row is a sequential stream the hardware prefetchers follow (16 of them at once,
/// within what the L2 streamer tracks), while the input gradient of those 16 columns
/// stays in registers over the block.
const STEP_BLOCK: usize = 32;

/// Rows `ja..jb` and 16 columns from `c0` (masked by `msk`) of the fused step, for `M`
/// rows of the mini-batch. The input gradient's columns start from `dx` (`first`: from
/// `dx_beta * dx`, or zero) and are stored back.
///
/// # Safety
/// AVX-512F; as [`StepArgs`] with `p.m == M`, columns `c0..` (lanes of `msk`) within k and
/// rows `ja..jb` within n.
#[inline(always)]
unsafe fn step_cols<const M: usize>(
    p: &StepArgs,
    c0: usize,
    msk: __mmask16,
    ja: usize,
    jb: usize,
    first: bool,
    sq: &mut __m512,
) -> __mmask16 {
    let mut xs = [_mm512_setzero_ps(); M];
    let mut acc = [_mm512_setzero_ps(); M];
    for (i, v) in xs.iter_mut().enumerate() {
        *v = _mm512_maskz_loadu_ps(msk, p.x.add(i * p.k + c0));
    }
    let has_dx = !p.dx.is_null();
    if has_dx && !(first && p.dx_beta == 0.0) {
        for (i, a) in acc.iter_mut().enumerate() {
            let v = _mm512_maskz_loadu_ps(msk, p.dx.add(i * p.k + c0));
            *a = if first {
                _mm512_mul_ps(v, _mm512_set1_ps(p.dx_beta))
            } else {
                v
            };
        }
    }
    let decay = _mm512_set1_ps(p.decay);
    let neg_eta = _mm512_set1_ps(-p.eta);
    let zero = _mm512_setzero_ps();
    let mut nz: __mmask16 = 0;
    for j in ja..jb {
        let row = p.w.add(j * p.k + c0);
        let wv = _mm512_maskz_loadu_ps(msk, row);
        let d = p.dyt.add(j * M);
        // Two partial sums halve the dependent chain of the gradient's multiply-adds.
        let (mut g0, mut g1) = (zero, zero);
        for (i, a) in acc.iter_mut().enumerate() {
            let di = _mm512_set1_ps(*d.add(i));
            *a = _mm512_fmadd_ps(di, wv, *a);
            if i % 2 == 0 {
                g0 = _mm512_fmadd_ps(di, xs[i], g0);
            } else {
                g1 = _mm512_fmadd_ps(di, xs[i], g1);
            }
        }
        let g = _mm512_add_ps(g0, g1);
        nz |= _mm512_mask_cmp_ps_mask::<_CMP_NEQ_UQ>(msk, g, zero);
        let nw = _mm512_fmadd_ps(wv, decay, _mm512_mul_ps(g, neg_eta));
        // The new weights' squares: the next step's L2 term without reading them again.
        *sq = _mm512_fmadd_ps(nw, nw, *sq);
        _mm512_mask_storeu_ps(row, msk, nw);
    }
    if has_dx {
        for (i, &a) in acc.iter().enumerate() {
            _mm512_mask_storeu_ps(p.dx.add(i * p.k + c0), msk, a);
        }
    }
    nz
}

/// # Safety
/// AVX-512F; as [`StepArgs`] with `p.m == M`, `lo..hi` within k.
#[inline(always)]
unsafe fn step_m<const M: usize>(p: &StepArgs, lo: usize, hi: usize) -> (bool, f32) {
    let mut nz: __mmask16 = 0;
    let mut sq = _mm512_setzero_ps();
    let mut ja = 0;
    while ja < p.n {
        let jb = (ja + STEP_BLOCK).min(p.n);
        let mut c0 = lo;
        while c0 < hi {
            nz |= step_cols::<M>(p, c0, mask16(hi - c0), ja, jb, ja == 0, &mut sq);
            c0 += 16;
        }
        ja = jb;
    }
    (nz != 0, _mm512_reduce_add_ps(sq))
}

/// Columns `lo..hi` of the fused linear backward and SGD step.
///
/// # Safety
/// As [`StepArgs`], `lo..hi` within k, on a CPU with AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn step(p: &StepArgs, lo: usize, hi: usize) -> (bool, f32) {
    match p.m {
        1 => step_m::<1>(p, lo, hi),
        2 => step_m::<2>(p, lo, hi),
        3 => step_m::<3>(p, lo, hi),
        4 => step_m::<4>(p, lo, hi),
        5 => step_m::<5>(p, lo, hi),
        6 => step_m::<6>(p, lo, hi),
        7 => step_m::<7>(p, lo, hi),
        8 => step_m::<8>(p, lo, hi),
        9 => step_m::<9>(p, lo, hi),
        10 => step_m::<10>(p, lo, hi),
        11 => step_m::<11>(p, lo, hi),
        _ => step_m::<12>(p, lo, hi),
    }
}
