//! Batch norm's AVX-512 code: the wrapper that compiles the generic loops with AVX-512
//! enabled, and the explicit two-sum reductions LLVM does not vectorise.

use super::{Sums, LANES};

/// Runs `f` compiled with AVX-512F, AVX2 and FMA (`f` is inlined into this wrapper).
///
/// # Safety
/// The CPU has AVX-512F.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn wide<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// [`super::sums`] for f32 on AVX-512: two accumulators per sum, a masked tail.
///
/// # Safety
/// AVX-512F; for `Grad`, `b` and `c` at least as long as `a`.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn sums(kind: Sums, a: &[f32], b: &[f32], c: &[f32], s: f32) -> (f64, f64) {
    use std::arch::x86_64::*;
    let n = a.len();
    let sv = _mm512_set1_ps(s);
    let zero = _mm512_setzero_ps();
    let step = |i: usize, m: __mmask16, u: &mut __m512, v: &mut __m512| {
        let x = _mm512_maskz_loadu_ps(m, a.as_ptr().add(i));
        match kind {
            Sums::Stats => {
                let d = _mm512_maskz_sub_ps(m, x, sv);
                *u = _mm512_add_ps(*u, d);
                *v = _mm512_fmadd_ps(d, d, *v);
            }
            Sums::Grad { relu } => {
                let mut g = x;
                if relu {
                    let y = _mm512_maskz_loadu_ps(m, b.as_ptr().add(i));
                    g = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(y, zero), g);
                }
                let xs = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, c.as_ptr().add(i)), sv);
                *u = _mm512_add_ps(*u, g);
                *v = _mm512_fmadd_ps(g, xs, *v);
            }
        }
    };
    let (mut u0, mut u1, mut v0, mut v1) = (zero, zero, zero, zero);
    let mut i = 0;
    while i + 2 * LANES <= n {
        step(i, !0, &mut u0, &mut v0);
        step(i + LANES, !0, &mut u1, &mut v1);
        i += 2 * LANES;
    }
    while i < n {
        step(i, crate::isa::mask16(n - i), &mut u0, &mut v0);
        i += LANES;
    }
    (
        _mm512_reduce_add_ps(_mm512_add_ps(u0, u1)) as f64,
        _mm512_reduce_add_ps(_mm512_add_ps(v0, v1)) as f64,
    )
}
