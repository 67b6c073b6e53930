//! AVX-512 register-blocked small-side kernels. Remainders (k or n not a multiple of 16) use
//! masked loads and stores, so no element is read or written outside its matrix.

use super::Args;
use crate::isa::mask16;
use std::arch::x86_64::*;

/// `c = alpha*v + beta*c` on the lanes of `m`.
///
/// # Safety
/// AVX-512F; the lanes of `m` from `c` lie in C, in this thread's part of it.
#[inline(always)]
unsafe fn store(p: &Args, c: *mut f32, m: __mmask16, v: __m512) {
    let v = _mm512_mul_ps(v, _mm512_set1_ps(p.alpha));
    let v = if p.beta == 0.0 {
        v
    } else {
        _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, c), _mm512_set1_ps(p.beta), v)
    };
    _mm512_mask_storeu_ps(c, m, v);
}

/// A tile of `I` rows of A by `J` rows of B: `I*J` dot products over all of k.
///
/// # Safety
/// AVX-512F; as [`Args`], rows `i0..i0 + I` of A and `j0..j0 + J` of B inside their
/// matrices, and the columns `j0..j0 + J` of C this thread's.
#[inline(always)]
unsafe fn nt_tile<const I: usize, const J: usize>(p: &Args, i0: usize, j0: usize) {
    let k = p.k;
    let mut acc = [[_mm512_setzero_ps(); J]; I];
    let mut q = 0;
    while q < k {
        let m = mask16(k - q);
        let mut bv = [_mm512_setzero_ps(); J];
        for (jj, v) in bv.iter_mut().enumerate() {
            *v = _mm512_maskz_loadu_ps(m, p.b.add((j0 + jj) * k + q));
        }
        for (ii, row) in acc.iter_mut().enumerate() {
            let av = _mm512_maskz_loadu_ps(m, p.a.add((i0 + ii) * k + q));
            for (r, &b) in row.iter_mut().zip(&bv) {
                *r = _mm512_fmadd_ps(av, b, *r);
            }
        }
        q += 16;
    }
    for (ii, row) in acc.iter().enumerate() {
        for (jj, &v) in row.iter().enumerate() {
            let s = _mm512_reduce_add_ps(v);
            let c = p.c.add((i0 + ii) * p.n + j0 + jj);
            *c = if p.beta == 0.0 {
                p.alpha * s
            } else {
                p.alpha * s + p.beta * *c
            };
        }
    }
}

/// # Safety
/// AVX-512F; as [`Args`], rows `j0..j0 + J` of B inside it and C's columns `j0..j0 + J`
/// this thread's.
#[inline(always)]
unsafe fn nt_rows<const J: usize>(p: &Args, j0: usize) {
    // Five rows of A against four of B: 20 accumulators, 9 loads per 20 multiply-adds.
    let mut i0 = 0;
    while i0 < p.m {
        match p.m - i0 {
            1 => nt_tile::<1, J>(p, i0, j0),
            2 => nt_tile::<2, J>(p, i0, j0),
            3 => nt_tile::<3, J>(p, i0, j0),
            4 => nt_tile::<4, J>(p, i0, j0),
            _ => nt_tile::<5, J>(p, i0, j0),
        }
        i0 += 5;
    }
}

/// Columns `lo..hi` of `A[m,k] . B[n,k]^T`.
///
/// # Safety
/// As [`Args`], `lo..hi` within n, on a CPU with AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn nt(p: &Args, lo: usize, hi: usize) {
    let mut j = lo;
    while j + 4 <= hi {
        nt_rows::<4>(p, j);
        j += 4;
    }
    while j < hi {
        nt_rows::<1>(p, j);
        j += 1;
    }
}

/// `I` rows of C, 32 columns from `c0` (masked to `w`): B's rows streamed once.
///
/// # Safety
/// AVX-512F; as [`Args`], rows `i0..i0 + I` and columns `c0..c0 + w` inside C and this
/// thread's.
#[inline(always)]
unsafe fn nn_tile<const I: usize>(p: &Args, i0: usize, c0: usize, w: usize) {
    let (m0, m1) = (mask16(w), mask16(w.saturating_sub(16)));
    let mut acc = [[_mm512_setzero_ps(); 2]; I];
    for q in 0..p.k {
        let row = p.b.add(q * p.n + c0);
        if q + 8 < p.k {
            let ahead = row.add(8 * p.n) as *const i8;
            _mm_prefetch::<_MM_HINT_T0>(ahead);
            _mm_prefetch::<_MM_HINT_T0>(ahead.add(64));
        }
        let b0 = _mm512_maskz_loadu_ps(m0, row);
        let b1 = _mm512_maskz_loadu_ps(m1, row.add(16));
        for (ii, r) in acc.iter_mut().enumerate() {
            let x = _mm512_set1_ps(*p.a.add((i0 + ii) * p.k + q));
            r[0] = _mm512_fmadd_ps(x, b0, r[0]);
            r[1] = _mm512_fmadd_ps(x, b1, r[1]);
        }
    }
    for (ii, r) in acc.iter().enumerate() {
        let c = p.c.add((i0 + ii) * p.n + c0);
        store(p, c, m0, r[0]);
        if w > 16 {
            store(p, c.add(16), m1, r[1]);
        }
    }
}

/// Columns `lo..hi` of `A[m,k] . B[k,n]`.
///
/// # Safety
/// As [`Args`], `lo..hi` within n, on a CPU with AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn nn(p: &Args, lo: usize, hi: usize) {
    let mut c0 = lo;
    while c0 < hi {
        let w = 32.min(hi - c0);
        // Up to 12 rows at once (24 accumulators): at the book's mini-batch of 10 every
        // row of C is one tile, so B is read once.
        let mut i0 = 0;
        while i0 < p.m {
            match p.m - i0 {
                1 => nn_tile::<1>(p, i0, c0, w),
                2 => nn_tile::<2>(p, i0, c0, w),
                3 => nn_tile::<3>(p, i0, c0, w),
                4 => nn_tile::<4>(p, i0, c0, w),
                5 => nn_tile::<5>(p, i0, c0, w),
                6 => nn_tile::<6>(p, i0, c0, w),
                7 => nn_tile::<7>(p, i0, c0, w),
                8 => nn_tile::<8>(p, i0, c0, w),
                9 => nn_tile::<9>(p, i0, c0, w),
                10 => nn_tile::<10>(p, i0, c0, w),
                11 => nn_tile::<11>(p, i0, c0, w),
                _ => nn_tile::<12>(p, i0, c0, w),
            }
            i0 += 12;
        }
        c0 += w;
    }
}

/// `J` rows of C from `j0`, 64 columns from `c0` (masked to `w`), summed over k.
///
/// # Safety
/// AVX-512F; as [`Args`], rows `j0..j0 + J` and columns `c0..c0 + w` inside C and this
/// thread's.
#[inline(always)]
unsafe fn tn_tile<const J: usize>(p: &Args, j0: usize, c0: usize, w: usize) {
    let ms = [
        mask16(w),
        mask16(w.saturating_sub(16)),
        mask16(w.saturating_sub(32)),
        mask16(w.saturating_sub(48)),
    ];
    let mut acc = [[_mm512_setzero_ps(); 4]; J];
    for q in 0..p.k {
        let row = p.b.add(q * p.n + c0);
        let mut bv = [_mm512_setzero_ps(); 4];
        for (v, (b, &m)) in bv.iter_mut().zip(&ms).enumerate() {
            *b = _mm512_maskz_loadu_ps(m, row.add(16 * v));
        }
        for (jj, r) in acc.iter_mut().enumerate() {
            let x = _mm512_set1_ps(*p.a.add(q * p.m + j0 + jj));
            for (a, &b) in r.iter_mut().zip(&bv) {
                *a = _mm512_fmadd_ps(x, b, *a);
            }
        }
    }
    for (jj, r) in acc.iter().enumerate() {
        let c = p.c.add((j0 + jj) * p.n + c0);
        for (v, (&a, &m)) in r.iter().zip(&ms).enumerate() {
            if 16 * v < w {
                store(p, c.add(16 * v), m, a);
            }
        }
    }
}

/// Rows `lo..hi` of `A[k,m]^T . B[k,n]`, k small.
///
/// # Safety
/// As [`Args`], `lo..hi` within m, on a CPU with AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn tn(p: &Args, lo: usize, hi: usize) {
    let mut j = lo;
    while j < hi {
        let rows = (hi - j).min(4);
        let mut c0 = 0;
        while c0 < p.n {
            let w = 64.min(p.n - c0);
            match rows {
                1 => tn_tile::<1>(p, j, c0, w),
                2 => tn_tile::<2>(p, j, c0, w),
                3 => tn_tile::<3>(p, j, c0, w),
                _ => tn_tile::<4>(p, j, c0, w),
            }
            c0 += w;
        }
        j += rows;
    }
}
