//! `tensor`: nndl's n-dimensional arrays and the numeric kernels everything else is built from.
//!
//! A [`Tensor`] is a contiguous row-major buffer with a shape; kernels work on slices so that the
//! autodiff tape can reuse buffers from one step to the next. Zero-copy `ndarray` views are
//! available through [`Tensor::view`] for interop. No autodiff lives here.
//!
//! The ops are organised by kernel family, each in its own module with the fast kernels, one
//! file per instruction set where there are hand-written ones, and the slow reference beside
//! them: products ([`gemm()`], over [`MatRef`]/[`MatMut`] views; the small-side kernels and the
//! fused linear step under it), [`conv`], [`pool`], [`norm`], elementwise ([`unary`], [`binary`])
//! and reductions ([`sum_all`], [`softmax_rows`], ...). Which instruction set the kernels run
//! is chosen once per process (`NNDL_ISA` lowers it); [`with_threads`] bounds how many threads
//! they split work across.

// Errors carry both shapes so messages can name them; they are on the cold path, so their size
// (over clippy's 128-byte threshold) costs nothing where it matters.
#![allow(clippy::result_large_err)]

mod elementwise;
mod error;
mod float;
mod gemm;
mod isa;
mod linear_step;
mod matrix;
mod par;
mod reduce;
mod shape;
mod skinny;
#[allow(clippy::module_inception)]
mod tensor;

pub mod conv;
/// Test-only fault injection (feature `fault-injection`): see the module.
#[cfg(feature = "fault-injection")]
#[doc(hidden)]
pub mod fault;
pub mod norm;
pub mod pool;

pub use elementwise::binary::{binary, binary_into, broadcast_shapes, reduce_to_shape, BinaryOp};
pub use elementwise::unary;
pub use error::TensorError;
pub use float::Float;
pub use gemm::{gemm, gemm_reference, matmul, matmul_into};
// Benchmarks only (`benches/kernels.rs` compares the packing backend with the small-side
// kernels); `gemm` picks the right one for users.
#[doc(hidden)]
pub use gemm::gemm_packed;
// nn's fused SGD step hands this to `Float::linear_step`; not a user-level kernel.
#[doc(hidden)]
pub use linear_step::LinearStep;
pub use matrix::{MatMut, MatRef};
pub use par::{for_each_chunk, threads, with_threads};
/// The random number crate of [`Tensor::randn`]'s and the initialisers' `R: rand::Rng`.
pub use rand;
pub use reduce::{
    argmax_rows, dot, drop_axis, log_softmax_rows, log_softmax_rows_into, max_rows, mean_all,
    softmax_rows, softmax_rows_into, sum_all, sum_axis, sum_squares,
};
pub use shape::{Shape, MAX_DIMS};
pub use tensor::Tensor;

/// How a kernel puts its result into an output buffer: added to what is there, or written over
/// it (contents ignored), so that a gradient accumulator nothing has written yet need not be
/// zero-filled first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accum {
    /// `out += result`.
    Add,
    /// `out = result`.
    Overwrite,
}

/// The kernels under the ops, for `benches/kernels.rs` (which times each ISA and compares
/// the small-side kernels with the packing GEMM) and nothing else: not a stable API.
#[doc(hidden)]
pub mod bench_api {
    pub use crate::isa::{best_isa, Isa, Kernel};
    pub use crate::linear_step::{
        linear_backward_step, linear_backward_step_reference, step_scratch_len, StepOutcome,
    };
    pub use crate::skinny::{small_gemm_reference, small_gemm_with, Shape3};
}

/// Result type of fallible tensor operations.
pub type Result<T> = std::result::Result<T, TensorError>;
