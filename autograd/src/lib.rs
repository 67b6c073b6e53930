//! `autograd`: nndl's tape-based reverse-mode automatic differentiation.
//!
//! A [`Graph`] holds parameters (which live across steps) and a tape of operations (cleared
//! by [`Graph::reset`] after each step, its buffers kept for the next). Operations take and
//! return small `Copy` [`Var`] handles; [`Graph::backward`] walks the tape once in reverse.
//! Each operation is one file under `ops/`: its graph method (the forward), its [`Op`]
//! implementation (the backward) and its gradient check, side by side. A user adds an op the
//! same way, through [`Graph::push_op`] (see [`Op`] and [`Backward`]), and checks it with
//! [`gradcheck()`] or [`gradcheck_fn`]. An elementwise function needs no `Op` at all: declare
//! it and its derivative as a [`UnaryFn`] and apply it with [`Graph::unary`].
//!
//! Gradients of gradients: [`Graph::gradients`] records the backward on the tape (PyTorch's
//! `create_graph=True`), each op through its [`Op::backward_graph`], so a gradient is a
//! [`Var`] to differentiate again: gradient penalties, and [`functional`]'s Hessian-vector
//! products, Jacobian-vector products and small Hessians. [`gradgradcheck_fn`] checks second
//! derivatives against finite differences of the first. Every op of the crate has one (conv2d's
//! through [`Graph::conv2d_input_grad`] and [`Graph::conv2d_weight_grad`]); a user's op
//! without a differentiable backward makes a second derivative through it fail with
//! [`AutogradError::NotTwiceDifferentiable`], never give a wrong number.
//!
//! ```
//! use nndl_autograd::Graph;
//! use tensor::Tensor;
//! # fn main() -> Result<(), nndl_autograd::AutogradError> {
//! let mut g = Graph::<f64>::new();
//! let w = g.parameter("w", Tensor::from_vec(vec![2.0, -1.0], &[1, 2])?);
//! let x = g.input(Tensor::from_vec(vec![3.0, 4.0], &[1, 2])?);
//! let y = g.mul(w, x)?;
//! let loss = g.sum(y)?;
//! g.backward(loss)?;
//! assert_eq!(g.grad(w).unwrap().data(), &[3.0, 4.0]);
//! # Ok(()) }
//! ```

mod backward;
mod buffers;
mod error;
pub mod functional;
pub mod gradcheck;
pub mod gradcheck_modes;
mod graph;
mod graph_backward;
mod handover;
pub mod ops;
pub mod precision;
pub mod testing;

pub use backward::{Backward, Op};
pub use error::AutogradError;
pub use gradcheck::{
    gradcheck, gradcheck_fn, gradgradcheck, gradgradcheck_fn, GradcheckConfig, GradcheckError,
    GradcheckReport,
};
pub use gradcheck_modes::{
    gradcheck_fn_with, gradcheck_with, CheckOptions, CheckReport, FastReport, Kink, NondetReport,
};
pub use graph::{Graph, Var};
pub use graph_backward::GraphBackward;
pub use handover::{GradientConsumer, LinearGradient, LinearParts, Taken};
pub use ops::{BatchStats, UnaryFn};
pub use precision::{precision_check, PrecisionConfig, PrecisionReport};
// The tensor types autograd's signatures use, so that a user of this crate alone can name
// them: `MatRef` in `Backward::add_product`, `Accum` in `LinearParts`.
pub use tensor::{Accum, Float, MatRef, Shape, Tensor};

/// Result type of graph operations.
pub type Result<T> = std::result::Result<T, AutogradError>;
