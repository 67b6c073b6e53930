//! Skinny products, those with a small side: the fully connected layers at the book's
//! mini-batch of 10.
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
//! Each has an AVX-512 kernel (`avx512.rs`), and one generic body (`portable.rs`) compiled
//! twice, for AVX2+FMA (`avx2.rs`) and for any CPU; [`crate::isa::best_isa`] picks at run time
//! and [`small_gemm_with`] lets tests force each one. Large products are split across the
//! kernel threads by output columns (or rows), one fork-join per product; every element of C
//! is computed by one thread in a fixed order, so the result does not depend on the number of
//! threads. [`small_gemm_reference`] is the definition as loops.

mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod portable;
mod reference;
#[cfg(test)]
mod tests;

pub use reference::small_gemm_reference;

use crate::isa::{Isa, Kernel};
use crate::par::{split, worth_splitting};
use crate::{MatMut, MatRef};

/// Products whose small side (m, or k for [`Shape3::Tn`]) is at most this take these kernels.
pub(crate) const SMALL: usize = 16;

/// Elements of B (192 KiB of f32) up to which a product of any size takes these kernels.
pub(crate) const CACHED_B: usize = 48 * 1024;

/// Work (m*k*n multiply-adds) from which a product outside a parallel region is split across
/// threads: below it, the fork-join costs more than the second core gives back (network.py's
/// 784x30 layer at mini-batch 10 is 235k).
pub(crate) const PARALLEL_WORK: usize = 1 << 20;

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
    /// Whether A and B are read transposed in this layout.
    pub fn transposes(self) -> (bool, bool) {
        match self {
            Shape3::Nt => (false, true),
            Shape3::Nn => (false, false),
            Shape3::Tn => (true, false),
        }
    }

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

/// `C = alpha * A . B + beta * C` with the best kernel, for the layout [`Shape3::of`] picks;
/// `None` (nothing done) for products these kernels do not take. `beta == 0` ignores C's old
/// contents.
pub(crate) fn small_gemm(
    alpha: f32,
    a: MatRef<'_, f32>,
    b: MatRef<'_, f32>,
    beta: f32,
    c: &mut MatMut<'_, f32>,
) -> Option<()> {
    let shape = Shape3::of(
        a.rows(),
        a.cols(),
        b.cols(),
        a.is_transposed(),
        b.is_transposed(),
    )?;
    small_gemm_with(Kernel::best(), shape, alpha, a, b, beta, c.rb());
    Some(())
}

/// The small-side product in layout `shape` with a chosen kernel (tests and benchmarks force
/// each one): `C = alpha * A . B + beta * C`.
///
/// # Panics
/// If the views do not agree with each other or with `shape`'s transpositions, or the CPU
/// cannot run the kernel's ISA.
pub fn small_gemm_with(
    kernel: Kernel,
    shape: Shape3,
    alpha: f32,
    a: MatRef<'_, f32>,
    b: MatRef<'_, f32>,
    beta: f32,
    mut c: MatMut<'_, f32>,
) {
    let (m, k, n) = crate::gemm::dims("small_gemm", &a, &b, &c);
    assert_eq!(
        shape.transposes(),
        (a.is_transposed(), b.is_transposed()),
        "small_gemm: operands not laid out as {shape:?}"
    );
    let isa = kernel.isa;
    assert!(isa.available(), "small_gemm: this CPU cannot run {isa:?}");
    if m == 0 || n == 0 {
        return;
    }
    let p = Args {
        m,
        k,
        n,
        alpha,
        a: a.data().as_ptr(),
        b: b.data().as_ptr(),
        beta,
        c: c.data().as_mut_ptr(),
    };
    // Nt and Nn split C by columns (each thread reads its part of B), Tn by rows of C.
    let (units, granule) = match shape {
        Shape3::Nt => (n, 4),
        Shape3::Nn => (n, 32),
        Shape3::Tn => (m, 4),
    };
    let run = |_part: usize, lo: usize, hi: usize| {
        // SAFETY: `Args` describes views checked to hold their matrices; each call writes
        // only the columns (or rows) lo..hi of C, disjoint between the calls `split` makes;
        // the CPU runs `isa` (asserted above).
        unsafe { dispatch(isa, shape, &p, lo, hi) }
    };
    if kernel.parallel && worth_splitting(m * k * n, PARALLEL_WORK) {
        split(units, granule, &run);
    } else {
        run(0, 0, units);
    }
}

/// One product's operands as raw parts, shared by the threads that each write their own part.
/// The kernels' contract: `a` holds `m*k` and `b` `k*n` readable elements and `c` `m*n`
/// writable ones, C aliasing neither, all alive for the call; each thread writes only its
/// own part of C.
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

/// Runs the kernel of `isa` and `shape` on part `lo..hi` of the product.
///
/// # Safety
/// As [`Args`]; `lo..hi` within the split dimension (n, or m for [`Shape3::Tn`]); the CPU
/// runs `isa`.
unsafe fn dispatch(isa: Isa, shape: Shape3, p: &Args, lo: usize, hi: usize) {
    match isa {
        #[cfg(target_arch = "x86_64")]
        Isa::Avx512 => match shape {
            Shape3::Nt => avx512::nt(p, lo, hi),
            Shape3::Nn => avx512::nn(p, lo, hi),
            Shape3::Tn => avx512::tn(p, lo, hi),
        },
        #[cfg(target_arch = "x86_64")]
        Isa::Avx2 => avx2::kernel(shape, p, lo, hi),
        _ => portable::kernel(shape, p, lo, hi),
    }
}
