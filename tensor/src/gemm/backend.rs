//! The backend call: strided `C = alpha*A*B + beta*C` through the `gemm` crate, split across
//! the kernel team when the product is big.

use crate::par::{self, SyncPtr};
use crate::Float;

/// Work (m*k*n) above which a GEMM called outside a parallel region uses all rayon threads.
const PARALLEL_WORK: usize = 1 << 22;

/// A matrix in a raw buffer: its first element and its row and column strides.
#[derive(Clone, Copy)]
pub(super) struct Strided<T> {
    ptr: SyncPtr<T>,
    rs: isize,
    cs: isize,
}

impl<T> Strided<T> {
    pub(super) fn new(ptr: *const T, rs: isize, cs: isize) -> Self {
        Strided {
            ptr: SyncPtr(ptr.cast_mut()),
            rs,
            cs,
        }
    }

    /// The same strides from row `r` and column `c`.
    ///
    /// # Safety
    /// `(r, c)` lies inside the matrix.
    unsafe fn at(self, r: usize, c: usize) -> Self {
        Strided {
            // SAFETY: inside the matrix, as the caller promises.
            ptr: SyncPtr(unsafe {
                self.ptr
                    .ptr()
                    .offset(r as isize * self.rs + c as isize * self.cs)
            }),
            ..self
        }
    }
}

/// Strided `C = alpha*A*B + beta*C` with `(m, k, n)` the sizes of `A[m,k] . B[k,n]`.
#[derive(Clone, Copy)]
pub(super) struct Product<T> {
    /// `(m, k, n)`.
    pub(super) dims: (usize, usize, usize),
    /// The product's scale.
    pub(super) alpha: T,
    /// `A[m,k]`.
    pub(super) a: Strided<T>,
    /// `B[k,n]`.
    pub(super) b: Strided<T>,
    /// `C`'s scale before the product is added.
    pub(super) beta: T,
    /// `C[m,n]`, read (when `beta` is not 0) and written.
    pub(super) c: Strided<T>,
}

/// The one call into the `gemm` crate under [`super::gemm`].
///
/// # Safety
/// `p.a`, `p.b` and `p.c` must describe valid `m x k`, `k x n`, `m x n` matrices, `c`
/// writable and aliasing neither `a` nor `b`.
#[inline]
pub(super) unsafe fn backend<T: Float>(p: Product<T>) {
    let (m, k, n) = p.dims;
    // Coarse parallelism only, on the kernel team (one split, no rayon injection): C's rows
    // (or columns, when it has few rows) in one block per thread, each block a serial call.
    // Inside a parallel region (the conv's per-image tasks) the call stays serial.
    if m * k * n >= PARALLEL_WORK && par::threads() > 1 {
        if m >= n {
            par::split(m, 8, &|_, lo, hi| {
                // SAFETY: rows lo..hi of C are this part's alone; A's rows lo..hi are inside A.
                unsafe {
                    serial(Product {
                        dims: (hi - lo, k, n),
                        a: p.a.at(lo, 0),
                        c: p.c.at(lo, 0),
                        ..p
                    })
                }
            });
        } else {
            par::split(n, 16, &|_, lo, hi| {
                // SAFETY: columns lo..hi of C are this part's alone; B's are inside B.
                unsafe {
                    serial(Product {
                        dims: (m, k, hi - lo),
                        b: p.b.at(0, lo),
                        c: p.c.at(0, lo),
                        ..p
                    })
                }
            });
        }
        return;
    }
    // SAFETY: as the caller promises.
    unsafe { serial(p) }
}

/// One single-threaded call of the `gemm` crate.
///
/// # Safety
/// As [`backend`].
unsafe fn serial<T: Float>(p: Product<T>) {
    let Product {
        dims: (m, k, n),
        alpha,
        a,
        b,
        beta,
        c,
    } = p;
    // gemm's convention: dst = alpha_g*dst + beta_g*lhs*rhs, dst read only when read_dst.
    // SAFETY: the three matrices are valid and C aliases neither operand (the caller's
    // contract).
    unsafe {
        gemm_backend::gemm(
            m,
            n,
            k,
            c.ptr.ptr(),
            c.cs,
            c.rs,
            beta != T::zero(),
            a.ptr.ptr().cast_const(),
            a.cs,
            a.rs,
            b.ptr.ptr().cast_const(),
            b.cs,
            b.rs,
            beta,
            alpha,
            false,
            false,
            false,
            gemm_backend::Parallelism::None,
        )
    }
}
