//! A linear layer's backward fused with the SGD step of its weights: one pass over the
//! weight matrix instead of five, for mini-batches of at most [`STEP_ROWS`] rows. The kernel
//! families mirror the small-side products ([`crate::skinny`]): an AVX-512 kernel and one
//! generic body compiled for AVX2+FMA and for any CPU, with the definition beside them.

mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod portable;
mod reference;
#[cfg(test)]
mod tests;

pub use reference::linear_backward_step_reference;

use crate::isa::{Isa, Kernel};
use crate::skinny::PARALLEL_WORK;

/// Most rows [`linear_backward_step`] takes: two registers per row stay live over the sweep.
pub(crate) const STEP_ROWS: usize = 12;

/// What one fused SGD step of a linear layer's weights needs (see [`linear_backward_step`]).
#[derive(Debug, Clone, Copy)]
pub struct LinearStep<'a, T> {
    /// Rows of the mini-batch (at most [`Float::linear_step_rows`](crate::Float::linear_step_rows)).
    pub m: usize,
    /// Inputs per row (the weight matrix's columns).
    pub k: usize,
    /// Outputs per row (the weight matrix's rows).
    pub n: usize,
    /// The layer's input `x [m, k]`.
    pub x: &'a [T],
    /// The output gradient transposed, `dy^T [n, m]`.
    pub dyt: &'a [T],
    /// Learning rate.
    pub eta: T,
    /// Factor the weights are multiplied by before the step (1 - eta*lambda terms; 1 for none).
    pub decay: T,
}

/// One pass over a linear layer's weights `w [n, k]` that does the whole backward and the SGD
/// step: `dx = dy . w` with the weights as they were (into `dx` when given, `dx = dx_beta*dx +
/// dy.w`), and `w <- decay*w - eta*(dy^T . x)`. The weight gradient is never stored, so the
/// weights are read and written once instead of five times (input gradient, weight gradient,
/// L2 term, update). `scratch` holds [`step_scratch_len`] elements (contents ignored).
///
/// # Panics
/// If a buffer is too small, `m` is over `STEP_ROWS`, or the CPU cannot run the kernel's ISA.
pub fn linear_backward_step(
    kernel: Kernel,
    s: &LinearStep<'_, f32>,
    w: &mut [f32],
    dx: Option<(&mut [f32], f32)>,
    scratch: &mut [f32],
) -> StepOutcome {
    let (m, k, n) = (s.m, s.k, s.n);
    let isa = kernel.isa;
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
        // SAFETY: `q` describes group g's rows of the checked buffers (above); the CPU runs
        // `isa` (asserted on entry).
        let (nz, sq) = unsafe {
            match isa {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 => avx512::step(&q, 0, k),
                Isa::Avx2 => avx2::step(&q, 0, k),
                _ => portable::step(&q, 0, k),
            }
        };
        if nz {
            nonzero.store(true, Ordering::Relaxed);
        }
        sums[g].store(sq.to_bits(), Ordering::Relaxed);
    };
    if groups == 2 && kernel.parallel && crate::par::threads() > 1 {
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

/// [`linear_backward_step`]'s operands as raw parts, shared by the threads. The kernels'
/// contract: `x` holds `m*k` and `dyt` `n*m` readable elements, `w` `n*k` and `dx` (unless
/// null) `m*k` writable ones, the written buffers aliasing nothing else, all alive for the
/// call; each thread touches only its own rows of `w` and its own `dx`.
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
