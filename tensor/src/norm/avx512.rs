//! Batch norm's AVX-512 code: the wrapper that compiles the generic loops with AVX-512
//! enabled, and for f32 the explicit two-sum reductions LLVM does not vectorise and the
//! passes over a channel's short runs (a 3x3 plane is 9 values) that it leaves scalar.

use super::{Sums, LANES};

/// Runs `f` compiled with AVX-512F, AVX2 and FMA (`f` is inlined into this wrapper).
///
/// # Safety
/// The CPU has AVX-512F.
#[target_feature(enable = "avx512f,avx2,fma")]
pub(super) unsafe fn wide<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// One channel's values in a `[n, c, s]` buffer: `n` runs of `s`, run `i` at
/// `first + i * stride`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Runs {
    pub(super) first: usize,
    pub(super) n: usize,
    pub(super) s: usize,
    pub(super) stride: usize,
}

impl Runs {
    fn starts(self) -> impl Iterator<Item = usize> {
        (0..self.n).map(move |i| self.first + i * self.stride)
    }
}

/// Values summed in the f32 lanes before they are totalled into f64 (at the end of the run
/// that reaches it): a run's worth when runs are long, many runs when they are short (a
/// 3x3 plane is 9 values), so that short runs do not each pay two horizontal reductions.
const FLUSH: usize = 256;

/// [`super::sums`] in f32 over every run of a channel: two accumulators per sum, a masked
/// tail per run.
///
/// # Safety
/// AVX-512F; `a` (and for `Grad`, `b` and `c`) hold every run.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn sums_runs(
    kind: Sums,
    (a, b, c): (&[f32], &[f32], &[f32]),
    s: f32,
    runs: Runs,
) -> (f64, f64) {
    use std::arch::x86_64::*;
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
    let (mut tu, mut tv, mut since) = (0.0f64, 0.0f64, 0);
    let n = runs.s;
    for o in runs.starts() {
        let mut i = 0;
        while i + 2 * LANES <= n {
            step(o + i, !0, &mut u0, &mut v0);
            step(o + i + LANES, !0, &mut u1, &mut v1);
            i += 2 * LANES;
        }
        while i < n {
            step(o + i, crate::isa::mask16(n - i), &mut u0, &mut v0);
            i += LANES;
        }
        since += n;
        if since >= FLUSH {
            tu += _mm512_reduce_add_ps(_mm512_add_ps(u0, u1)) as f64;
            tv += _mm512_reduce_add_ps(_mm512_add_ps(v0, v1)) as f64;
            (u0, u1, v0, v1, since) = (zero, zero, zero, zero, 0);
        }
    }
    tu += _mm512_reduce_add_ps(_mm512_add_ps(u0, u1)) as f64;
    tv += _mm512_reduce_add_ps(_mm512_add_ps(v0, v1)) as f64;
    (tu, tv)
}

/// `y = k x + b` (with `relu`, `max(k x + b, 0)`) over every run of a channel, a masked
/// vector for each run's last values: the generic loop ran a short run (9 values) scalar.
/// The same operations as the generic loop (a product, then a sum), so the same results.
///
/// # Safety
/// AVX-512F; `x` and `y` hold every run.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn affine_runs(
    y: *mut f32,
    x: *const f32,
    runs: Runs,
    k: f32,
    b: f32,
    relu: bool,
) {
    use std::arch::x86_64::*;
    let (kv, bv, zero) = (_mm512_set1_ps(k), _mm512_set1_ps(b), _mm512_setzero_ps());
    for o in runs.starts() {
        for i in (0..runs.s).step_by(LANES) {
            let m = crate::isa::mask16(runs.s - i);
            let v = _mm512_maskz_loadu_ps(m, x.add(o + i));
            let mut r = _mm512_add_ps(_mm512_mul_ps(kv, v), bv);
            if relu {
                r = _mm512_max_ps(r, zero);
            }
            _mm512_mask_storeu_ps(y.add(o + i), m, r);
        }
    }
}

/// `dx = k g + a x + c` (added to `dx` unless `set`) over every run of a channel, `g = dy`
/// or with `relu` `dy` where `y > 0`: [`affine_runs`] for the input gradient, the generic
/// loop's operations in its order.
///
/// # Safety
/// AVX-512F; `dx`, `dy`, `y` and `x` hold every run.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn input_grad_runs(
    dx: *mut f32,
    (dy, y, x): (*const f32, *const f32, *const f32),
    runs: Runs,
    (k, a, c): (f32, f32, f32),
    (relu, set): (bool, bool),
) {
    use std::arch::x86_64::*;
    let (kv, av, cv) = (_mm512_set1_ps(k), _mm512_set1_ps(a), _mm512_set1_ps(c));
    let zero = _mm512_setzero_ps();
    for o in runs.starts() {
        for i in (0..runs.s).step_by(LANES) {
            let (m, at) = (crate::isa::mask16(runs.s - i), o + i);
            let mut g = _mm512_maskz_loadu_ps(m, dy.add(at));
            if relu {
                let yv = _mm512_maskz_loadu_ps(m, y.add(at));
                g = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask::<_CMP_GT_OQ>(yv, zero), g);
            }
            let xv = _mm512_maskz_loadu_ps(m, x.add(at));
            let t = _mm512_add_ps(_mm512_mul_ps(kv, g), _mm512_mul_ps(av, xv));
            let mut r = _mm512_add_ps(t, cv);
            if !set {
                r = _mm512_add_ps(_mm512_maskz_loadu_ps(m, dx.add(at)), r);
            }
            _mm512_mask_storeu_ps(dx.add(at), m, r);
        }
    }
}
