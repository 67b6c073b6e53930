//! Products with a small side: the fully connected layers at the book's mini-batch of 10.
//!
//! A general GEMM packs both operands into cache-sized panels first. When one side has at most
//! [`SMALL`] rows, the other operand (a layer's weight matrix, megabytes at FC(1000,1000)) is
//! read once per product, so packing it costs as much as the product: these kernels stream it
//! once, straight from memory, and allocate nothing. Three shapes cover a linear layer:
//!
//! - [`Shape3::Nt`] `C[m,n] = A[m,k] . B[n,k]^T`, m small: the forward `x w^T` (dot products of
//!   a few input rows with every weight row).
//! - [`Shape3::Nn`] `C[m,n] = A[m,k] . B[k,n]`, m small: the input gradient `dy w` (each output
//!   row a combination of weight rows).
//! - [`Shape3::Tn`] `C[m,n] = A[k,m]^T . B[k,n]`, k small: the weight gradient `dy^T x` (a sum
//!   of a few outer products, each element of C written once).
//!
//! Each has an AVX-512 kernel, and one generic body compiled twice, for AVX2+FMA and for any
//! CPU; [`best_isa`] picks at run time and [`small_gemm_with`] lets tests force each one. Large
//! products are split across rayon threads by output columns (or rows), one fork-join per
//! product; every element of C is computed by one thread in a fixed order, so the result does
//! not depend on the number of threads. [`small_gemm_reference`] is the definition as loops.

use crate::par::{split, worth_splitting};
use std::sync::OnceLock;

/// Products whose small side (m, or k for [`Shape3::Tn`]) is at most this take these kernels.
pub const SMALL: usize = 16;

/// Elements of B (192 KiB of f32) up to which a product of any size takes these kernels.
pub const CACHED_B: usize = 48 * 1024;

/// Work (m*k*n multiply-adds) from which a product outside a parallel region is split across
/// threads: below it, the fork-join costs more than the second core gives back (network.py's
/// 784x30 layer at mini-batch 10 is 235k).
const PARALLEL_WORK: usize = 1 << 20;

/// The three layouts of a product with a small side (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape3 {
    /// `A[m,k] . B[n,k]^T`, m small.
    Nt,
    /// `A[m,k] . B[k,n]`, m small.
    Nn,
    /// `A[k,m]^T . B[k,n]`, k small.
    Tn,
}

impl Shape3 {
    /// The layout these kernels take for `op(A) . op(B)` (`m x k` by `k x n`), if any: a small
    /// side, or, for any m, an operand B that every tile re-reads small enough to stay in
    /// cache and a shape where packing costs more than it saves. Those limits are measured
    /// (`cargo bench --bench kernels`, the conv table): conv1's forward (20x25x576) and filter
    /// gradient (20x576x25) run 1.1x and 1.9x faster here; conv2's (40x500x64, 40x64x500,
    /// 500x40x64) run faster packed, and go there.
    pub fn of(m: usize, k: usize, n: usize, ta: bool, tb: bool) -> Option<Shape3> {
        let b_cached = k * n <= CACHED_B;
        match (ta, tb) {
            // Long dot products against few rows of B: the horizontal sums are amortised.
            (false, true) if m <= SMALL || (b_cached && k >= 256 && n <= 64) => Some(Shape3::Nt),
            // A short k: packing B would touch as much memory as the product.
            (false, false) if m <= SMALL || (b_cached && k <= 64) => Some(Shape3::Nn),
            (true, false) if k <= SMALL => Some(Shape3::Tn),
            _ => None,
        }
    }
}

/// Which instructions a kernel uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// AVX-512F intrinsics, 16 lanes.
    Avx512,
    /// The generic body compiled with AVX2 and FMA enabled.
    Avx2,
    /// The generic body for any CPU.
    Portable,
}

impl Isa {
    /// Whether this CPU can run it.
    pub fn available(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
            Isa::Portable => true,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }
}

/// The best kernel this CPU runs; `NNDL_ISA=avx2` or `NNDL_ISA=portable` lowers it (to time or
/// test the fallbacks on an AVX-512 machine).
pub fn best_isa() -> Isa {
    static BEST: OnceLock<Isa> = OnceLock::new();
    *BEST.get_or_init(|| {
        let want = std::env::var("NNDL_ISA").unwrap_or_default();
        let order: &[Isa] = match want.as_str() {
            "portable" => &[Isa::Portable],
            "avx2" => &[Isa::Avx2, Isa::Portable],
            _ => &[Isa::Avx512, Isa::Avx2, Isa::Portable],
        };
        order
            .iter()
            .copied()
            .find(|i| i.available())
            .unwrap_or(Isa::Portable)
    })
}

/// `C = alpha * op(A) . op(B) + beta * C` on contiguous row-major buffers, for the layout
/// [`Shape3::of`] names, with the best kernel. `beta == 0` ignores C's old contents.
#[allow(clippy::too_many_arguments)]
pub fn small_gemm(
    shape: Shape3,
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    b: &[f32],
    beta: f32,
    c: &mut [f32],
) {
    small_gemm_with(best_isa(), true, shape, m, k, n, alpha, a, b, beta, c)
}

/// [`small_gemm`] with a chosen kernel, and with or without splitting across threads.
///
/// # Panics
/// If a buffer is too small for its matrix, or the CPU cannot run `isa`.
#[allow(clippy::too_many_arguments)]
pub fn small_gemm_with(
    isa: Isa,
    parallel: bool,
    shape: Shape3,
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    b: &[f32],
    beta: f32,
    c: &mut [f32],
) {
    assert!(
        a.len() >= m * k && b.len() >= k * n && c.len() >= m * n,
        "small_gemm: buffer too small"
    );
    assert!(isa.available(), "small_gemm: this CPU cannot run {isa:?}");
    if m == 0 || n == 0 {
        return;
    }
    let p = Args {
        m,
        k,
        n,
        alpha,
        a: a.as_ptr(),
        b: b.as_ptr(),
        beta,
        c: c.as_mut_ptr(),
    };
    // Nt and Nn split C by columns (each thread reads its part of B), Tn by rows of C.
    let (units, granule) = match shape {
        Shape3::Nt => (n, 4),
        Shape3::Nn => (n, 32),
        Shape3::Tn => (m, 4),
    };
    let run = |_part: usize, lo: usize, hi: usize| {
        // SAFETY: `Args` describes buffers checked above; each call writes only the columns
        // (or rows) lo..hi of C, disjoint between the calls `split` makes.
        unsafe { dispatch(isa, shape, &p, lo, hi) }
    };
    if parallel && worth_splitting(m * k * n, PARALLEL_WORK) {
        split(units, granule, &run);
    } else {
        run(0, 0, units);
    }
}

/// One product's operands as raw parts, shared by the threads that each write their own part.
struct Args {
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: *const f32,
    b: *const f32,
    beta: f32,
    c: *mut f32,
}

// SAFETY: the pointers are read (a, b) or written in disjoint ranges (c) while the borrow that
// made them is alive: `small_gemm_with` does not return before every task has finished.
unsafe impl Sync for Args {}

/// # Safety
/// As [`Args`]; `lo..hi` within the split dimension.
unsafe fn dispatch(isa: Isa, shape: Shape3, p: &Args, lo: usize, hi: usize) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => match shape {
            Shape3::Nt => avx512::nt(p, lo, hi),
            Shape3::Nn => avx512::nn(p, lo, hi),
            Shape3::Tn => avx512::tn(p, lo, hi),
        },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => generic::avx2(shape, p, lo, hi),
        _ => generic::portable(shape, p, lo, hi),
    }
}

/// `C = alpha*op(A).op(B) + beta*C` by the definition, in f64: what the kernels are tested
/// against.
#[allow(clippy::too_many_arguments)]
pub fn small_gemm_reference(
    shape: Shape3,
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: &[f32],
    b: &[f32],
    beta: f32,
    c: &mut [f32],
) {
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0f64;
            for p in 0..k {
                let (x, y) = match shape {
                    Shape3::Nt => (a[i * k + p], b[j * k + p]),
                    Shape3::Nn => (a[i * k + p], b[p * n + j]),
                    Shape3::Tn => (a[p * m + i], b[p * n + j]),
                };
                s += x as f64 * y as f64;
            }
            let old = if beta == 0.0 {
                0.0
            } else {
                beta as f64 * c[i * n + j] as f64
            };
            c[i * n + j] = (alpha as f64 * s + old) as f32;
        }
    }
}

/// The generic kernels: plain loops over fixed-size lane arrays that the compiler vectorises
/// for whatever target features the wrapper enables.
mod generic {
    use super::{Args, Shape3, StepArgs};

    /// Lanes of a generic "vector".
    const L: usize = 8;

    #[inline(always)]
    fn fma(a: f32, b: f32, c: f32) -> f32 {
        // `mul_add` is one instruction with FMA and a libm call without: only use it there.
        if cfg!(target_feature = "fma") {
            a.mul_add(b, c)
        } else {
            a * b + c
        }
    }

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
    #[inline(always)]
    unsafe fn nn(p: &Args, lo: usize, hi: usize) {
        const W: usize = 32;
        const R: usize = super::SMALL;
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

    #[inline(always)]
    unsafe fn body(shape: Shape3, p: &Args, lo: usize, hi: usize) {
        match shape {
            Shape3::Nt => nt(p, lo, hi),
            Shape3::Nn => nn(p, lo, hi),
            Shape3::Tn => tn(p, lo, hi),
        }
    }

    /// Columns `lo..hi` of the fused step, 16 at a time: the rows of x and the input gradient
    /// for those columns stay in registers while the weight rows stream past.
    // Index loops over the lanes read more plainly than zipped iterators here.
    #[allow(clippy::needless_range_loop)]
    #[inline(always)]
    unsafe fn step(p: &StepArgs, lo: usize, hi: usize) -> (bool, f32) {
        const W: usize = 16;
        let mut xs = [[0.0f32; W]; super::STEP_ROWS];
        let mut acc = [[0.0f32; W]; super::STEP_ROWS];
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

    /// # Safety
    /// As [`StepArgs`], on a CPU with AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn step_avx2(p: &StepArgs, lo: usize, hi: usize) -> (bool, f32) {
        step(p, lo, hi)
    }

    /// # Safety
    /// As [`StepArgs`].
    pub(super) unsafe fn step_portable(p: &StepArgs, lo: usize, hi: usize) -> (bool, f32) {
        step(p, lo, hi)
    }

    /// # Safety
    /// As [`Args`], on a CPU with AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn avx2(shape: Shape3, p: &Args, lo: usize, hi: usize) {
        body(shape, p, lo, hi)
    }

    /// # Safety
    /// As [`Args`].
    pub(super) unsafe fn portable(shape: Shape3, p: &Args, lo: usize, hi: usize) {
        body(shape, p, lo, hi)
    }
}

/// AVX-512 register-blocked kernels. Remainders (k or n not a multiple of 16) use masked
/// loads and stores, so no element is read or written outside its matrix.
#[cfg(target_arch = "x86_64")]
pub(crate) mod avx512 {
    use super::{Args, StepArgs};
    use std::arch::x86_64::*;

    /// The first `len` of 16 lanes (all when `len >= 16`): the masked tail of every f32
    /// AVX-512 loop in the crate.
    #[inline(always)]
    pub(crate) fn mask(len: usize) -> __mmask16 {
        if len >= 16 {
            0xffff
        } else {
            ((1u32 << len) - 1) as __mmask16
        }
    }

    /// `c = alpha*v + beta*c` on the lanes of `m`.
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
    #[inline(always)]
    unsafe fn nt_tile<const I: usize, const J: usize>(p: &Args, i0: usize, j0: usize) {
        let k = p.k;
        let mut acc = [[_mm512_setzero_ps(); J]; I];
        let mut q = 0;
        while q < k {
            let m = mask(k - q);
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
    #[inline(always)]
    unsafe fn nn_tile<const I: usize>(p: &Args, i0: usize, c0: usize, w: usize) {
        let (m0, m1) = (mask(w), mask(w.saturating_sub(16)));
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
    #[inline(always)]
    unsafe fn tn_tile<const J: usize>(p: &Args, j0: usize, c0: usize, w: usize) {
        let ms = [
            mask(w),
            mask(w.saturating_sub(16)),
            mask(w.saturating_sub(32)),
            mask(w.saturating_sub(48)),
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

    /// Weight rows per block of the step: a block's rows are walked 16 columns at a time, so
    /// each row is a sequential stream the hardware prefetchers follow (16 of them at once,
    /// within what the L2 streamer tracks), while the input gradient of those 16 columns
    /// stays in registers over the block.
    const STEP_BLOCK: usize = 32;

    /// Rows `ja..jb` and 16 columns from `c0` (masked by `msk`) of the fused step, for `M`
    /// rows of the mini-batch. The input gradient's columns start from `dx` (`first`: from
    /// `dx_beta * dx`, or zero) and are stored back.
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

    #[inline(always)]
    unsafe fn step_m<const M: usize>(p: &StepArgs, lo: usize, hi: usize) -> (bool, f32) {
        let mut nz: __mmask16 = 0;
        let mut sq = _mm512_setzero_ps();
        let mut ja = 0;
        while ja < p.n {
            let jb = (ja + STEP_BLOCK).min(p.n);
            let mut c0 = lo;
            while c0 < hi {
                nz |= step_cols::<M>(p, c0, mask(hi - c0), ja, jb, ja == 0, &mut sq);
                c0 += 16;
            }
            ja = jb;
        }
        (nz != 0, _mm512_reduce_add_ps(sq))
    }

    /// Columns `lo..hi` of the fused linear backward and SGD step.
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
}

/// Most rows [`linear_backward_step`] takes: two registers per row stay live over the sweep.
pub const STEP_ROWS: usize = 12;

/// What one fused SGD step of a linear layer's weights needs (see [`linear_backward_step`]).
pub struct LinearStep<'a> {
    /// Rows of the mini-batch (at most [`STEP_ROWS`]).
    pub m: usize,
    /// Inputs per row (the weight matrix's columns).
    pub k: usize,
    /// Outputs per row (the weight matrix's rows).
    pub n: usize,
    /// The layer's input `x [m, k]`.
    pub x: &'a [f32],
    /// The output gradient transposed, `dy^T [n, m]`.
    pub dyt: &'a [f32],
    /// Learning rate.
    pub eta: f32,
    /// Factor the weights are multiplied by before the step (1 - eta*lambda terms; 1 for none).
    pub decay: f32,
}

/// One pass over a linear layer's weights `w [n, k]` that does the whole backward and the SGD
/// step: `dx = dy . w` with the weights as they were (into `dx` when given, `dx = dx_beta*dx +
/// dy.w`), and `w <- decay*w - eta*(dy^T . x)`. The weight gradient is never stored, so the
/// weights are read and written once instead of five times (input gradient, weight gradient,
/// L2 term, update). `scratch` holds [`step_scratch_len`] elements (contents ignored).
///
/// # Panics
/// If a buffer is too small, `m` is over [`STEP_ROWS`], or the CPU cannot run `isa`.
pub fn linear_backward_step(
    isa: Isa,
    parallel: bool,
    s: &LinearStep<'_>,
    w: &mut [f32],
    dx: Option<(&mut [f32], f32)>,
    scratch: &mut [f32],
) -> StepOutcome {
    let (m, k, n) = (s.m, s.k, s.n);
    assert!(
        m <= STEP_ROWS,
        "linear_backward_step: {m} rows > {STEP_ROWS}"
    );
    assert!(
        s.x.len() >= m * k && s.dyt.len() >= n * m && w.len() >= n * k,
        "linear_backward_step: buffer too small"
    );
    assert!(
        isa.available(),
        "linear_backward_step: this CPU cannot run {isa:?}"
    );
    let (dx, dx_beta) = match dx {
        Some((d, beta)) => {
            assert!(d.len() >= m * k, "linear_backward_step: dx too small");
            (d.as_mut_ptr(), beta)
        }
        None => (std::ptr::null_mut(), 0.0),
    };
    if m == 0 || n == 0 || k == 0 {
        let sum_squares = w[..n * k].iter().map(|v| v * v).sum();
        return StepOutcome {
            nonzero: false,
            sum_squares,
        };
    }
    let p = StepArgs {
        m,
        k,
        n,
        x: s.x.as_ptr(),
        dyt: s.dyt.as_ptr(),
        w: w.as_mut_ptr(),
        dx,
        dx_beta,
        eta: s.eta,
        decay: s.decay,
    };
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
    // Two halves of the weight rows when the layer is big, whatever the thread count: each
    // thread updates the rows it reads in the next forward (the same halves as the forward's
    // split), and the input gradient is the first half's plus the second's (kept in
    // `scratch`), so the result is the same with one thread or two.
    let half = step_half(m, k, n);
    let groups = if half < n { 2 } else { 1 };
    let has_dx = !p.dx.is_null();
    let need = step_scratch_len(m, k, n);
    if has_dx {
        assert!(
            scratch.len() >= need,
            "linear_backward_step: scratch too small"
        );
    }
    let sp = crate::par::SyncPtr(scratch.as_mut_ptr());
    let pr = &p;
    let nonzero = AtomicBool::new(false);
    let sums = [AtomicU32::new(0), AtomicU32::new(0)];
    let run = |g: usize| {
        let p = pr;
        let (r0, r1) = if g == 0 { (0, half) } else { (half, n) };
        let (dx, dx_beta) = match (has_dx, g) {
            (false, _) => (std::ptr::null_mut(), 0.0),
            (true, 0) => (p.dx, p.dx_beta),
            _ => (sp.ptr(), 0.0),
        };
        // SAFETY: buffers checked above; group g reads and writes only weight rows r0..r1 and
        // its own input-gradient buffer (dx for the first group, scratch for the second).
        let q = unsafe {
            StepArgs {
                n: r1 - r0,
                dyt: p.dyt.add(r0 * m),
                w: p.w.add(r0 * k),
                dx,
                dx_beta,
                ..*p
            }
        };
        let (nz, sq) = unsafe {
            match isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => avx512::step(&q, 0, k),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 => generic::step_avx2(&q, 0, k),
                _ => generic::step_portable(&q, 0, k),
            }
        };
        if nz {
            nonzero.store(true, Ordering::Relaxed);
        }
        sums[g].store(sq.to_bits(), Ordering::Relaxed);
    };
    if groups == 2 && parallel && crate::par::threads() > 1 {
        crate::par::run(2, &run);
    } else {
        (0..groups).for_each(run);
    }
    if groups == 2 && has_dx {
        // SAFETY: dx holds m*k elements (checked above); the groups have finished.
        let dx = unsafe { std::slice::from_raw_parts_mut(p.dx, m * k) };
        dx.iter_mut()
            .zip(&scratch[..m * k])
            .for_each(|(d, &v)| *d += v);
    }
    StepOutcome {
        nonzero: nonzero.into_inner(),
        sum_squares: f32::from_bits(sums[0].load(Ordering::Relaxed))
            + f32::from_bits(sums[1].load(Ordering::Relaxed)),
    }
}

/// Where [`linear_backward_step`] splits the weight rows (`n` when it does not): half of
/// them rounded up to a multiple of 4, as the forward's two-thread split of the same rows.
fn step_half(m: usize, k: usize, n: usize) -> usize {
    if m * k * n >= PARALLEL_WORK && n >= 8 {
        n.div_ceil(2).div_ceil(4) * 4
    } else {
        n
    }
}

/// Scratch elements [`linear_backward_step`] needs for an input gradient: the second half's
/// share, `m * k`, when it splits the rows, else none.
pub fn step_scratch_len(m: usize, k: usize, n: usize) -> usize {
    if step_half(m, k, n) < n {
        m * k
    } else {
        0
    }
}

/// What [`linear_backward_step`] reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepOutcome {
    /// Whether any element of the weight gradient was non-zero.
    pub nonzero: bool,
    /// The sum of the squares of the updated weights (an L2 term's next value).
    pub sum_squares: f32,
}

/// The same step by the definition (f64 sums): what the kernels are tested against.
pub fn linear_backward_step_reference(
    s: &LinearStep<'_>,
    w: &mut [f32],
    dx: Option<(&mut [f32], f32)>,
) {
    let (m, k, n) = (s.m, s.k, s.n);
    if let Some((dx, beta)) = dx {
        for i in 0..m {
            for q in 0..k {
                let mut t = 0.0f64;
                for j in 0..n {
                    t += s.dyt[j * m + i] as f64 * w[j * k + q] as f64;
                }
                let old = if beta == 0.0 {
                    0.0
                } else {
                    beta as f64 * dx[i * k + q] as f64
                };
                dx[i * k + q] = (old + t) as f32;
            }
        }
    }
    for j in 0..n {
        for q in 0..k {
            let mut g = 0.0f64;
            for i in 0..m {
                g += s.dyt[j * m + i] as f64 * s.x[i * k + q] as f64;
            }
            let v = &mut w[j * k + q];
            *v = (s.decay as f64 * *v as f64 - s.eta as f64 * g) as f32;
        }
    }
}

/// [`linear_backward_step`]'s operands as raw parts, shared by the threads.
struct StepArgs {
    m: usize,
    k: usize,
    n: usize,
    x: *const f32,
    dyt: *const f32,
    w: *mut f32,
    dx: *mut f32,
    dx_beta: f32,
    eta: f32,
    decay: f32,
}

// SAFETY: as for `Args`: disjoint column ranges of w and dx per thread, x and dyt only read,
// all within the borrow of `linear_backward_step`.
unsafe impl Sync for StepArgs {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::par::with_threads;
    use rand::{Rng, SeedableRng};

    fn check(isa: Isa, parallel: bool, shape: Shape3, m: usize, k: usize, n: usize, seed: u64) {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
        let a: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0..1.0)).collect();
        let b: Vec<f32> = (0..k * n).map(|_| rng.random_range(-1.0..1.0)).collect();
        let c0: Vec<f32> = (0..m * n).map(|_| rng.random_range(-1.0..1.0)).collect();
        for (alpha, beta) in [(1.0f32, 0.0f32), (0.7, 1.0), (-1.5, 0.3)] {
            let mut got = c0.clone();
            if beta == 0.0 {
                // beta = 0 must ignore what C held, NaNs included.
                got.iter_mut().for_each(|v| *v = f32::NAN);
            }
            let mut want = c0.clone();
            small_gemm_with(isa, parallel, shape, m, k, n, alpha, &a, &b, beta, &mut got);
            small_gemm_reference(shape, m, k, n, alpha, &a, &b, beta, &mut want);
            for (idx, (g, w)) in got.iter().zip(&want).enumerate() {
                let tol = 1e-5 * (k as f32).sqrt() * (1.0 + w.abs());
                assert!(
                    (g - w).abs() <= tol,
                    "{isa:?} {shape:?} {m}x{k}x{n} alpha {alpha} beta {beta} par {parallel}: \
                     C[{}][{}] = {g}, want {w}",
                    idx / n,
                    idx % n
                );
            }
        }
    }

    fn isas() -> Vec<Isa> {
        [Isa::Avx512, Isa::Avx2, Isa::Portable]
            .into_iter()
            .filter(|i| i.available())
            .collect()
    }

    #[test]
    fn every_kernel_equals_the_reference_on_edge_sizes() {
        let mut seed = 0;
        for isa in isas() {
            for shape in [Shape3::Nt, Shape3::Nn, Shape3::Tn] {
                // 20 and 40: the conv layers' filter counts (any size when B stays in cache).
                for small in [1, 7, 10, 16, 20, 40] {
                    for (big1, big2) in [(1, 1), (15, 17), (33, 31), (100, 64), (47, 129)] {
                        let (m, k, n) = match shape {
                            Shape3::Tn => (big1, small, big2),
                            _ => (small, big1, big2),
                        };
                        seed += 1;
                        check(isa, false, shape, m, k, n, seed);
                    }
                }
            }
        }
    }

    #[test]
    fn split_across_threads_equals_the_reference_and_one_thread_bit_for_bit() {
        // The book's wide layers at mini-batch 10, and odd sizes above the split threshold.
        let sizes = [
            (Shape3::Nt, 10, 640, 1000),
            (Shape3::Nt, 7, 1001, 333),
            (Shape3::Nn, 10, 1000, 640),
            (Shape3::Nn, 17.min(SMALL), 999, 517),
            (Shape3::Tn, 1000, 10, 640),
            (Shape3::Tn, 1003, 7, 1001),
        ];
        for isa in isas() {
            for (i, &(shape, m, k, n)) in sizes.iter().enumerate() {
                assert!(m * k * n >= PARALLEL_WORK, "{m}x{k}x{n} would not be split");
                with_threads(2, || check(isa, true, shape, m, k, n, 100 + i as u64));
                let mut rng = rand_pcg::Pcg64::seed_from_u64(i as u64);
                let a: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0..1.0)).collect();
                let b: Vec<f32> = (0..k * n).map(|_| rng.random_range(-1.0..1.0)).collect();
                let run = |t: usize| {
                    let mut c = vec![0.0f32; m * n];
                    with_threads(t, || {
                        small_gemm_with(isa, true, shape, m, k, n, 1.0, &a, &b, 0.0, &mut c)
                    });
                    c
                };
                assert_eq!(run(1), run(2), "{isa:?} {shape:?}: 1 vs 2 threads");
            }
        }
    }

    #[test]
    fn layouts_are_recognised() {
        assert_eq!(Shape3::of(10, 784, 1000, false, true), Some(Shape3::Nt));
        assert_eq!(Shape3::of(10, 1000, 640, false, false), Some(Shape3::Nn));
        assert_eq!(Shape3::of(1000, 10, 640, true, false), Some(Shape3::Tn));
        // The conv layers' per-image products: B stays in cache.
        assert_eq!(Shape3::of(20, 25, 576, false, false), Some(Shape3::Nn));
        assert_eq!(Shape3::of(20, 576, 25, false, true), Some(Shape3::Nt));
        assert_eq!(Shape3::of(40, 500, 64, false, false), None);
        assert_eq!(Shape3::of(40, 64, 500, false, true), None);
        assert_eq!(Shape3::of(500, 40, 64, true, false), None);
        // A wide layer at a big mini-batch goes to the packing GEMM.
        assert_eq!(Shape3::of(256, 1000, 1000, false, true), None);
        assert_eq!(Shape3::of(1000, 256, 640, true, false), None);
        assert_eq!(Shape3::of(4, 4, 4, true, true), None);
        assert!(best_isa().available());
    }

    fn step_case(isa: Isa, parallel: bool, m: usize, k: usize, n: usize, seed: u64, with_dx: bool) {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
        let mut r =
            |len: usize| -> Vec<f32> { (0..len).map(|_| rng.random_range(-1.0..1.0)).collect() };
        let (x, dyt, w0, dx0) = (r(m * k), r(n * m), r(n * k), r(m * k));
        let s = LinearStep {
            m,
            k,
            n,
            x: &x,
            dyt: &dyt,
            eta: 0.03,
            decay: 0.9997,
        };
        for beta in [0.0f32, 1.0] {
            let (mut w1, mut w2) = (w0.clone(), w0.clone());
            let (mut d1, mut d2) = (dx0.clone(), dx0.clone());
            if beta == 0.0 {
                d1.iter_mut().for_each(|v| *v = f32::NAN);
            }
            let out = linear_backward_step(
                isa,
                parallel,
                &s,
                &mut w1,
                with_dx.then_some((&mut d1[..], beta)),
                &mut vec![f32::NAN; step_scratch_len(m, k, n)],
            );
            let nz = out.nonzero;
            let want_sq: f64 = w1.iter().map(|&v| v as f64 * v as f64).sum();
            assert!(
                (out.sum_squares as f64 - want_sq).abs() <= 1e-5 * want_sq.max(1.0),
                "sum of squares {} vs {want_sq}",
                out.sum_squares
            );
            linear_backward_step_reference(&s, &mut w2, with_dx.then_some((&mut d2[..], beta)));
            assert!(nz, "a random gradient is not all zero");
            let what = format!("{isa:?} par {parallel} {m}x{k}x{n} beta {beta}");
            for (a, b) in w1.iter().zip(&w2) {
                assert!(
                    (a - b).abs() <= 1e-6 * (1.0 + b.abs()),
                    "{what}: w {a} vs {b}"
                );
            }
            if with_dx {
                for (a, b) in d1.iter().zip(&d2) {
                    let tol = 1e-5 * (n as f32).sqrt() * (1.0 + b.abs());
                    assert!((a - b).abs() <= tol, "{what}: dx {a} vs {b}");
                }
            } else {
                assert_eq!(
                    d1.iter().filter(|v| v.is_nan()).count(),
                    if beta == 0.0 { m * k } else { 0 }
                );
            }
        }
    }

    #[test]
    fn fused_step_equals_the_reference_on_edge_sizes() {
        let mut seed = 500;
        for isa in isas() {
            for m in [1, 2, 7, 10, 12] {
                for (k, n) in [(1, 1), (15, 3), (16, 17), (33, 10), (100, 64)] {
                    seed += 1;
                    step_case(isa, false, m, k, n, seed, true);
                    step_case(isa, false, m, k, n, seed, false);
                }
            }
        }
    }

    #[test]
    fn fused_step_split_across_threads_matches_one_thread_bit_for_bit() {
        for isa in isas() {
            for (m, k, n) in [(10, 640, 1000), (10, 1000, 1000), (7, 1001, 333)] {
                assert!(m * k * n >= PARALLEL_WORK);
                with_threads(2, || step_case(isa, true, m, k, n, 9, true));
                let mut rng = rand_pcg::Pcg64::seed_from_u64(3);
                let mut r = |len: usize| -> Vec<f32> {
                    (0..len).map(|_| rng.random_range(-1.0..1.0)).collect()
                };
                let (x, dyt, w0) = (r(m * k), r(n * m), r(n * k));
                let s = LinearStep {
                    m,
                    k,
                    n,
                    x: &x,
                    dyt: &dyt,
                    eta: 0.1,
                    decay: 1.0,
                };
                let run = |t: usize| {
                    let (mut w, mut dx) = (w0.clone(), vec![0.0f32; m * k]);
                    with_threads(t, || {
                        linear_backward_step(
                            isa,
                            true,
                            &s,
                            &mut w,
                            Some((&mut dx[..], 0.0)),
                            &mut vec![0.0; step_scratch_len(m, k, n)],
                        )
                    });
                    (w, dx)
                };
                assert_eq!(run(1), run(2), "{isa:?} {m}x{k}x{n}: 1 vs 2 threads");
            }
        }
    }

    #[test]
    fn fused_step_reports_an_all_zero_gradient() {
        let (m, k, n) = (3, 20, 5);
        let x = vec![1.0f32; m * k];
        let dyt = vec![0.0f32; n * m];
        let mut w = vec![0.5f32; n * k];
        let s = LinearStep {
            m,
            k,
            n,
            x: &x,
            dyt: &dyt,
            eta: 0.1,
            decay: 0.5,
        };
        for isa in isas() {
            assert!(
                !linear_backward_step(isa, false, &s, &mut w, None, &mut []).nonzero,
                "{isa:?}"
            );
        }
    }
}
