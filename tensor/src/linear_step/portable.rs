//! The generic fused step: loops over fixed-size lane arrays that the compiler vectorises for
//! whatever target features the wrapper enables (none here, AVX2 and FMA in [`super::avx2`]).

use super::{StepArgs, STEP_ROWS};
use crate::isa::fma;

/// Columns `lo..hi` of the fused step, 16 at a time: the rows of x and the input gradient
/// for those columns stay in registers while the weight rows stream past.
///
/// # Safety
/// As [`StepArgs`], `lo..hi` within k.
// Index loops over the lanes read more plainly than zipped iterators here.
#[allow(clippy::needless_range_loop)]
#[inline(always)]
pub(super) unsafe fn body(p: &StepArgs, lo: usize, hi: usize) -> (bool, f32) {
    const W: usize = 16;
    let mut xs = [[0.0f32; W]; STEP_ROWS];
    let mut acc = [[0.0f32; W]; STEP_ROWS];
    let mut nonzero = false;
    let mut sq = [0.0f32; W];
    let mut c0 = lo;
    while c0 < hi {
        let w = W.min(hi - c0);
        for i in 0..p.m {
            xs[i] = [0.0; W];
            acc[i] = [0.0; W];
            for l in 0..w {
                xs[i][l] = *p.x.add(i * p.k + c0 + l);
            }
        }
        for j in 0..p.n {
            let row = p.w.add(j * p.k + c0);
            let mut wv = [0.0f32; W];
            for (l, v) in wv.iter_mut().enumerate().take(w) {
                *v = *row.add(l);
            }
            let mut g = [0.0f32; W];
            for i in 0..p.m {
                let d = *p.dyt.add(j * p.m + i);
                for l in 0..W {
                    acc[i][l] = fma(d, wv[l], acc[i][l]);
                    g[l] = fma(d, xs[i][l], g[l]);
                }
            }
            for l in 0..w {
                nonzero |= g[l] != 0.0;
                let nw = fma(p.decay, wv[l], -p.eta * g[l]);
                sq[l] = fma(nw, nw, sq[l]);
                *row.add(l) = nw;
            }
        }
        if !p.dx.is_null() {
            for (i, a) in acc.iter().enumerate().take(p.m) {
                for (l, &v) in a.iter().enumerate().take(w) {
                    let d = p.dx.add(i * p.k + c0 + l);
                    *d = if p.dx_beta == 0.0 {
                        v
                    } else {
                        p.dx_beta * *d + v
                    };
                }
            }
        }
        c0 += w;
    }
    (nonzero, sq.iter().sum())
}

/// The generic step compiled for any CPU.
///
/// # Safety
/// As [`StepArgs`], `lo..hi` within k.
pub(super) unsafe fn step(p: &StepArgs, lo: usize, hi: usize) -> (bool, f32) {
    body(p, lo, hi)
}
