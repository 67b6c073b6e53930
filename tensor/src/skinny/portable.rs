//! The generic small-side kernels: plain loops over fixed-size lane arrays that the compiler
//! vectorises for whatever target features the wrapper enables: compiled here for any CPU,
//! and in [`super::avx2`] with AVX2 and FMA.

use super::{Args, Shape3, SMALL};
use crate::isa::fma;

/// Lanes of a generic "vector".
const L: usize = 8;

/// `C[idx] = alpha*v + beta*C[idx]`.
///
/// # Safety
/// `idx` lies in C and no other thread writes it.
#[inline(always)]
unsafe fn store(p: &Args, idx: usize, v: f32) {
    let c = p.c.add(idx);
    *c = if p.beta == 0.0 {
        p.alpha * v
    } else {
        p.alpha * v + p.beta * *c
    };
}

/// Dot products of A's rows with B's rows `lo..hi`.
///
/// # Safety
/// As [`Args`], `lo..hi` within n.
#[inline(always)]
unsafe fn nt(p: &Args, lo: usize, hi: usize) {
    let k = p.k;
    for j in lo..hi {
        let bj = std::slice::from_raw_parts(p.b.add(j * k), k);
        for i in 0..p.m {
            let ai = std::slice::from_raw_parts(p.a.add(i * k), k);
            let mut acc = [0.0f32; L];
            let (ca, cb) = (ai.chunks_exact(L), bj.chunks_exact(L));
            let mut tail = 0.0;
            for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
                tail = fma(*x, *y, tail);
            }
            for (x, y) in ca.zip(cb) {
                for l in 0..L {
                    acc[l] = fma(x[l], y[l], acc[l]);
                }
            }
            store(p, i * p.n + j, acc.iter().sum::<f32>() + tail);
        }
    }
}

/// Columns `lo..hi` of `A . B`, in blocks of 32 columns by up to 16 rows of C.
///
/// # Safety
/// As [`Args`], `lo..hi` within n.
#[inline(always)]
unsafe fn nn(p: &Args, lo: usize, hi: usize) {
    const W: usize = 32;
    const R: usize = SMALL;
    let mut acc = [[0.0f32; W]; R];
    for i0 in (0..p.m).step_by(R) {
        let rows = R.min(p.m - i0);
        let mut c0 = lo;
        while c0 < hi {
            let w = W.min(hi - c0);
            for row in acc.iter_mut().take(rows) {
                *row = [0.0; W];
            }
            for q in 0..p.k {
                let b = std::slice::from_raw_parts(p.b.add(q * p.n + c0), w);
                for (i, row) in acc.iter_mut().enumerate().take(rows) {
                    let x = *p.a.add((i0 + i) * p.k + q);
                    for (r, &y) in row.iter_mut().zip(b) {
                        *r = fma(x, y, *r);
                    }
                }
            }
            for (i, row) in acc.iter().enumerate().take(rows) {
                for (l, &v) in row.iter().enumerate().take(w) {
                    store(p, (i0 + i) * p.n + c0 + l, v);
                }
            }
            c0 += w;
        }
    }
}

/// Rows `lo..hi` of `A^T . B` (k small): each row a sum of k scaled rows of B.
///
/// # Safety
/// As [`Args`], `lo..hi` within m.
#[inline(always)]
unsafe fn tn(p: &Args, lo: usize, hi: usize) {
    const W: usize = 64;
    let mut acc = [0.0f32; W];
    for j in lo..hi {
        let mut c0 = 0;
        while c0 < p.n {
            let w = W.min(p.n - c0);
            acc = [0.0; W];
            for q in 0..p.k {
                let x = *p.a.add(q * p.m + j);
                let b = std::slice::from_raw_parts(p.b.add(q * p.n + c0), w);
                for (r, &y) in acc.iter_mut().zip(b) {
                    *r = fma(x, y, *r);
                }
            }
            for (l, &v) in acc.iter().enumerate().take(w) {
                store(p, j * p.n + c0 + l, v);
            }
            c0 += w;
        }
    }
    let _ = acc;
}

/// The kernel of `shape`, inlined into each target-feature wrapper below.
///
/// # Safety
/// As [`Args`], `lo..hi` within the dimension `shape` splits.
#[inline(always)]
pub(super) unsafe fn body(shape: Shape3, p: &Args, lo: usize, hi: usize) {
    match shape {
        Shape3::Nt => nt(p, lo, hi),
        Shape3::Nn => nn(p, lo, hi),
        Shape3::Tn => tn(p, lo, hi),
    }
}

/// The generic kernels compiled for any CPU.
///
/// # Safety
/// As [`Args`], `lo..hi` within the dimension `shape` splits.
pub(super) unsafe fn kernel(shape: Shape3, p: &Args, lo: usize, hi: usize) {
    body(shape, p, lo, hi)
}
