//! Handing a parameter's gradient over where the backward completes it, instead of storing it.
//!
//! [`Graph::backward_with`](crate::Graph::backward_with) walks the tape like
//! [`Graph::backward`](crate::Graph::backward) and, at the op that is the last to contribute to
//! a parameter's gradient, offers that gradient to a [`GradientConsumer`] the caller supplies.
//! Where the op can, the gradient is offered unformed: a linear op `Y = X W^T` offers `X` and
//! `dY` for `dW = dY^T X`, so a consumer can form the product and use it (an optimiser's
//! update) in one pass over `W`. A consumer that takes a gradient uses it there and then; one
//! that declines leaves it to be stored as by `backward`.

use crate::buffers::Buffers;
use crate::graph::{grad_or_fresh, Slots};
use crate::Var;
use tensor::{Accum, Float, MatMut, MatRef, Tensor};

/// What a consumer reports of a gradient it took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Taken<T> {
    /// Whether the gradient had a non-zero element (the graph keeps this for
    /// [`Graph::handed_over`](crate::Graph::handed_over): a caller watching for vanished
    /// gradients needs it, and the gradient itself is gone).
    pub nonzero: bool,
    /// `sum w^2` of the parameter as the consumer left it, if it computed that on the way;
    /// kept until the parameter next changes, so that
    /// [`Graph::sum_squares`](crate::Graph::sum_squares) need not read it again.
    pub sum_squares: Option<T>,
}

/// Takes parameters' gradients where the backward completes them
/// ([`Graph::backward_with`](crate::Graph::backward_with)). Each method offers one form of
/// gradient and returns `Some` if the consumer took it (the gradient is then not stored), or
/// `None` to have it stored as [`Graph::backward`](crate::Graph::backward) would.
pub trait GradientConsumer<T: Float> {
    /// Offers parameter `param`'s gradient in a linear op's unformed product form.
    ///
    /// A consumer that calls [`LinearGradient::parts`] commits to taking it: it must then
    /// write the input's gradient as `parts` describes and return `Some` (declining after
    /// that is an error of the backward).
    fn take_linear(&mut self, param: Var, grad: &mut LinearGradient<'_, T>) -> Option<Taken<T>>;
}

/// A linear op's weight gradient, not formed: with `X` `[m, k]` the op's input, `dY` `[m, n]`
/// the gradient of its output and `W` `[n, k]` the weights,
/// `dW = dY^T X + c W`, where `c W` is the gradient of terms such as `(c/2) sum w^2` that the
/// backward keeps as the number `c` ([`LinearGradient::scaled_value`]) rather than reading the
/// weights for them. If the op's input needs a gradient, `dX = dY W` (with `W` as it was
/// before any change) is the consumer's to compute in the same pass.
pub struct LinearGradient<'g, T: Float> {
    pub(crate) dims: (usize, usize, usize),
    pub(crate) x: &'g [T],
    pub(crate) dy: &'g [T],
    pub(crate) value: &'g mut Tensor<T>,
    pub(crate) scaled_value: T,
    /// The op's input, when its gradient is wanted.
    pub(crate) input: Option<Var>,
    pub(crate) input_value: &'g Tensor<T>,
    pub(crate) grads: &'g mut Slots<Option<Tensor<T>>>,
    pub(crate) buffers: &'g mut Buffers<T>,
    pub(crate) scaled: &'g mut [T],
    pub(crate) opened: bool,
}

/// The operands of a [`LinearGradient`] a consumer works on (see [`LinearGradient::parts`]).
pub struct LinearParts<'p, T> {
    /// `X`, `[m, k]` row-major.
    pub x: &'p [T],
    /// `dY`, `[m, n]` row-major.
    pub dy: &'p [T],
    /// `W`, `[n, k]` row-major, the parameter's value: the consumer's to change.
    pub value: &'p mut [T],
    /// Where `dX = dY W` goes (`[m, k]`), if the input needs a gradient: written over
    /// ([`Accum::Overwrite`], the buffer is new) or added to ([`Accum::Add`]).
    pub input_grad: Option<(&'p mut [T], Accum)>,
}

impl<T: Float> LinearGradient<'_, T> {
    /// `(m, k, n)`: rows of `X`, inputs and outputs of the op.
    pub fn dims(&self) -> (usize, usize, usize) {
        self.dims
    }

    /// `c` of the `c W` term of the gradient (0 if there is none).
    pub fn scaled_value(&self) -> T {
        self.scaled_value
    }

    /// The operands, committing the consumer to take the gradient.
    pub fn parts(&mut self) -> LinearParts<'_, T> {
        self.opened = true;
        let input_grad = match self.input {
            Some(v) => {
                let (g, fresh) =
                    grad_or_fresh(self.grads, self.buffers, self.scaled, self.input_value, v);
                let mode = if fresh { Accum::Overwrite } else { Accum::Add };
                Some((g.data_mut(), mode))
            }
            None => None,
        };
        LinearParts {
            x: self.x,
            dy: self.dy,
            value: self.value.data_mut(),
            input_grad,
        }
    }

    /// Takes the gradient through the portable route any consumer can use: computes `dX`
    /// (if wanted), forms `dW` in a buffer of the graph's, and calls `update(value, dW)` once,
    /// before the buffer goes back. Returns what to report.
    pub fn apply(&mut self, update: impl FnOnce(&mut [T], &[T])) -> Taken<T> {
        let (m, k, n) = self.dims;
        let mut dw = self.buffers.take(n * k);
        let c = self.scaled_value;
        // dW = c W first, then += dY^T X: the order a stored gradient's terms are added in.
        for (d, &w) in dw.iter_mut().zip(self.value.data()) {
            *d = c * w;
        }
        let p = self.parts();
        if let Some((dx, mode)) = p.input_grad {
            let keep = match mode {
                Accum::Overwrite => T::zero(),
                Accum::Add => T::one(),
            };
            let (dy, w) = (MatRef::new(p.dy, m, n), MatRef::new(&*p.value, n, k));
            tensor::gemm(T::one(), dy, w, keep, MatMut::new(dx, m, k));
        }
        let (dyt, x) = (MatRef::new(p.dy, m, n).t(), MatRef::new(p.x, m, k));
        tensor::gemm(T::one(), dyt, x, T::one(), MatMut::new(&mut dw, n, k));
        let nonzero = dw.iter().any(|&v| v != T::zero());
        update(p.value, &dw);
        self.buffers.give(dw);
        Taken {
            nonzero,
            sum_squares: None,
        }
    }
}
