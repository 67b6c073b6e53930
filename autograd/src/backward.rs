//! The reverse pass: the [`Op`] trait every operation implements, the [`Backward`] context its
//! backward sees, and the walk down the tape that calls them.

use crate::buffers::Buffers;
use crate::graph::{axpy, grad_or_fresh, Slots, MAX_INPUTS};
use crate::handover::{GradientConsumer, LinearGradient};
use crate::{AutogradError, Graph, GraphBackward, Result, Var};
use tensor::{Float, MatMut, MatRef, Tensor};

/// The backward half of an operation. The forward is the [`Graph`] method that computed the
/// output and pushed the op with [`Graph::push_op`]; whatever the backward needs (a mask, the
/// argmax of a pool, softmax probabilities) is stored in the implementing struct.
///
/// An implementation needs [`Op::name`] and [`Op::backward`]; the backward reads the op's
/// inputs, output and output gradient from its [`Backward`] and adds each input's share to
/// [`Backward::grad`]. For an elementwise function, a [`UnaryFn`](crate::UnaryFn) is shorter.
///
/// ```
/// use nndl_autograd::{gradcheck_fn, Backward, Float, GradcheckConfig, Graph, Op, Tensor, Var};
///
/// /// y = x^3; the backward uses the saved input: dx += dy * 3x^2.
/// struct Cube;
///
/// impl<T: Float> Op<T> for Cube {
///     fn name(&self) -> &'static str {
///         "cube"
///     }
///     fn backward(&self, cx: &mut Backward<'_, T>) {
///         let (x, dy) = (cx.input(0), cx.grad_output());
///         let dx = cx.grad(0);
///         for ((d, &x), &g) in dx.data_mut().iter_mut().zip(x.data()).zip(dy.data()) {
///             *d += g * T::of(3.0) * x * x;
///         }
///     }
/// }
///
/// /// The forward: compute the output, then record it with the op that differentiates it.
/// fn cube<T: Float>(g: &mut Graph<T>, x: Var) -> nndl_autograd::Result<Var> {
///     let out = g.value(x)?.map(|v| v * v * v);
///     g.push_op(Box::new(Cube), &[x], out)
/// }
///
/// let mut g = Graph::<f64>::new();
/// let x = g.parameter("x", Tensor::from_vec(vec![2.0, -0.5], &[2])?);
/// let y = cube(&mut g, x)?;
/// let loss = g.sum(y)?;
/// g.backward(loss)?;
/// assert_eq!(g.value(y)?.data(), &[8.0, -0.125]);
/// assert_eq!(g.grad(x).unwrap().data(), &[12.0, 0.75]);
///
/// // The backward against central differences (on a cube of a product, so the chain rule
/// // through the op is exercised as well).
/// let inputs = [
///     Tensor::from_vec(vec![0.3, -1.2, 0.8, 0.5], &[2, 2])?,
///     Tensor::from_vec(vec![1.5, 0.7, -0.4, 2.0], &[2, 2])?,
/// ];
/// let report = gradcheck_fn(&inputs, |g, v| {
///     let p = g.mul(v[0], v[1])?;
///     cube(g, p)
/// }, GradcheckConfig::default())?;
/// assert_eq!(report.checked, 8);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub trait Op<T: Float>: 'static {
    /// The operation's name, for error messages and debugging.
    fn name(&self) -> &'static str;

    /// Adds this op's contribution to the gradient of each input that needs one.
    fn backward(&self, cx: &mut Backward<'_, T>);

    /// Records this op's backward on the tape as graph ops, so that the gradients it gives
    /// its inputs are [`Var`]s that can be differentiated again (PyTorch's
    /// `create_graph=True`). [`Graph::gradients`] calls it; [`Graph::backward`] never does, so
    /// the first-order pass keeps its fused kernels.
    ///
    /// An implementation reads the Vars of its inputs, output and output gradient from
    /// `cx`, builds the gradient with ordinary graph ops (`cx.graph()`), and hands each input
    /// its share with [`GraphBackward::add_grad`]. Whatever the op saved for [`Op::backward`]
    /// (a mask, labels) may be put on the tape as a constant with [`Graph::input`]: what is
    /// constant in the first derivative has a zero derivative itself.
    ///
    /// It must not reset the graph or run a backward: the op is out of its node while it
    /// runs (a [`Graph::gradients`] through its own node from inside it is an error).
    ///
    /// The default returns [`AutogradError::NotTwiceDifferentiable`] naming the op: a
    /// second derivative through an op without one is an error, never a wrong number.
    /// See [`GraphBackward`] for an example.
    fn backward_graph(&self, cx: &mut GraphBackward<'_, T>) -> Result<()> {
        let _ = cx;
        Err(AutogradError::NotTwiceDifferentiable { op: self.name() })
    }

    /// Hands back large buffers the op saved, so the next step can reuse them.
    // Hidden: autograd's own ops (dropout's mask, conv's columns, the losses' probabilities)
    // return buffers from the graph's pool here; a user's op keeps plain Vecs, and the
    // default (nothing to give back) is right for it.
    #[doc(hidden)]
    fn recycle(self: Box<Self>) -> Vec<Vec<T>> {
        Vec::new()
    }

    /// Hands back the index buffer the op saved (a pool's argmaxes), before [`Op::recycle`].
    // Hidden, as `recycle`: the max-pools take theirs from the graph's index pool.
    #[doc(hidden)]
    fn recycle_indices(&mut self) -> Option<Vec<u32>> {
        None
    }

    /// `Some((x, w))` if the op's output is `input(x) input(w)^T` plus terms in its other
    /// inputs (a linear layer): the backward may then hand `w`'s gradient to a
    /// [`GradientConsumer`] unformed, and the consumer computes `x`'s gradient with it. The
    /// op's [`Op::backward`] then runs for the other inputs only (it sees `needs_grad` false
    /// for `x` and `w`).
    // Hidden: only autograd's `linear` op has this form, and the handover that uses it
    // (`Backward` writing `x`'s gradient through a `GradientConsumer`) is internal to the
    // tape; a user's op keeps the default.
    #[doc(hidden)]
    fn linear_form(&self) -> Option<(usize, usize)> {
        None
    }
}

/// What an [`Op::backward`] sees: its inputs' and output's values, the output's gradient, and
/// mutable access to each input's gradient accumulator.
///
/// What an `Op` implementation uses:
/// - [`Backward::input`], [`Backward::output`], [`Backward::grad_output`]: the values the
///   forward saw and produced, and `dL/dy` (all of the op's output shape or its inputs').
/// - [`Backward::needs_grad`]: whether input `k` wants a gradient at all (a constant input
///   or a frozen parameter does not); skip its work when it does not.
/// - [`Backward::grad`]: input `k`'s gradient, to be *added to* (an input used by several
///   ops collects each one's share), zero-filled on first use.
/// - [`Backward::add_product`]: adds a matrix product to input `k`'s gradient, skipping the
///   zero-fill: the backward of anything product-shaped.
/// - [`Backward::add_scaled_input`]: adds `c * input(k)`, the gradient of `(c/2) |x|^2`.
///
/// A linear map `y = x . w^T` written as a user op, its backward two products
/// (`dx = dy . w`, `dw = dy^T . x`):
///
/// ```
/// use nndl_autograd::{gradcheck_fn, Backward, Float, GradcheckConfig, Graph, Op, Tensor, Var};
///
/// struct Linear;
///
/// impl<T: Float> Op<T> for Linear {
///     fn name(&self) -> &'static str {
///         "my_linear"
///     }
///     fn backward(&self, cx: &mut Backward<'_, T>) {
///         let (x, w, dy) = (cx.input(0).mat(), cx.input(1).mat(), cx.grad_output().mat());
///         cx.add_product(0, dy, w); // [m, n] . [n, k]; nothing done unless x needs it
///         cx.add_product(1, dy.t(), x); // [n, m] . [m, k]
///     }
/// }
///
/// fn linear<T: Float>(g: &mut Graph<T>, x: Var, w: Var) -> nndl_autograd::Result<Var> {
///     let (xv, wv) = (g.value(x)?, g.value(w)?);
///     let (m, k, n) = (xv.dims()[0], xv.dims()[1], wv.dims()[0]);
///     let (xd, wd) = (xv.data(), wv.data());
///     let y = (0..m * n)
///         .map(|i| (0..k).map(|j| xd[i / n * k + j] * wd[i % n * k + j]).sum())
///         .collect();
///     g.push_op(Box::new(Linear), &[x, w], Tensor::from_vec(y, &[m, n])?)
/// }
///
/// let x = Tensor::from_vec(vec![0.1, 0.2, 0.3, 0.4, 0.5, 0.6], &[2, 3])?; // 2 samples of 3
/// let w = Tensor::from_vec((0..12).map(|i| 0.1 * i as f64 - 0.5).collect(), &[4, 3])?;
/// let report = gradcheck_fn(&[x, w], |g, v| linear(g, v[0], v[1]), GradcheckConfig::default())?;
/// assert_eq!(report.checked, 6 + 12);
///
/// // With x a constant, only w gets a gradient: dw = dy^T . x, with dy all ones here.
/// let mut g = Graph::<f64>::new();
/// let x = g.input(Tensor::from_vec(vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?);
/// let w = g.parameter("w", Tensor::zeros(&[1, 3])?);
/// let y = linear(&mut g, x, w)?;
/// let loss = g.sum(y)?;
/// g.backward(loss)?;
/// assert_eq!(g.grad(w).unwrap().data(), &[5.0, 7.0, 9.0]);
/// assert!(g.grad(x).is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Backward<'a, T: Float> {
    inputs: &'a [Var],
    values: &'a Slots<Tensor<T>>,
    output: &'a Tensor<T>,
    grad_output: &'a Tensor<T>,
    grads: &'a mut Slots<Option<Tensor<T>>>,
    needs: [bool; MAX_INPUTS],
    buffers: &'a mut Buffers<T>,
    scaled: &'a mut [T],
    lazy: bool,
}

impl<'a, T: Float> Backward<'a, T> {
    /// The value of input `k`.
    pub fn input(&self, k: usize) -> &'a Tensor<T> {
        self.values.at(self.inputs[k])
    }

    /// The op's output value.
    pub fn output(&self) -> &'a Tensor<T> {
        self.output
    }

    /// The gradient of the loss with respect to the op's output.
    pub fn grad_output(&self) -> &'a Tensor<T> {
        self.grad_output
    }

    /// How many inputs the op has.
    pub fn input_count(&self) -> usize {
        self.inputs.len()
    }

    /// Whether input `k` needs a gradient (skip the work when it does not).
    pub fn needs_grad(&self, k: usize) -> bool {
        k < self.inputs.len() && self.needs[k]
    }

    /// The gradient accumulator of input `k`, zero-filled on first use: add to it.
    pub fn grad(&mut self, k: usize) -> &mut Tensor<T> {
        let v = self.inputs[k];
        let shape = self.input(k).shape();
        let scaled = self.take_scaled(k);
        let value = self.input(k);
        let slot = self.grads.at_mut(v);
        if slot.is_none() {
            *slot = Some(self.buffers.zeros(shape));
        }
        let g = slot.as_mut().expect("just filled");
        if scaled != T::zero() {
            axpy(scaled, value.data(), g.data_mut());
        }
        g
    }

    /// Adds `coef * input(k)` to input `k`'s gradient (an L2 term's gradient). While a
    /// [`GradientConsumer`] may take a parameter's gradient, the term is kept as the number
    /// `coef` until the gradient is formed, so the parameter's value is not read for it.
    pub fn add_scaled_input(&mut self, k: usize, coef: T) {
        let v = self.inputs[k];
        if self.lazy && v.is_parameter() && self.grads.at(v).is_none() {
            self.scaled[v.index()] += coef;
            return;
        }
        let x = self.input(k);
        axpy(coef, x.data(), self.grad(k).data_mut());
    }

    fn take_scaled(&mut self, k: usize) -> T {
        self.inputs[k].param().map_or(T::zero(), |p| {
            std::mem::replace(&mut self.scaled[p], T::zero())
        })
    }

    /// Adds the product `a . b` to input `k`'s gradient, if it needs one: the backward of
    /// every product-shaped op, written once.
    pub fn add_product(&mut self, k: usize, a: MatRef<'_, T>, b: MatRef<'_, T>) {
        if !self.needs_grad(k) {
            return;
        }
        let (d, fresh) = self.grad_or_fresh(k);
        let keep = if fresh { T::zero() } else { T::one() };
        let (rows, cols) = (a.rows(), b.cols());
        tensor::gemm(T::one(), a, b, keep, MatMut::new(d.data_mut(), rows, cols));
    }

    /// The gradient buffer of input `k` for a kernel that takes a [`tensor::Accum`]: written
    /// over when it is new (no zero-fill), added to when earlier ops already wrote it.
    pub(crate) fn grad_accum(&mut self, k: usize) -> (&mut [T], tensor::Accum) {
        let (g, fresh) = self.grad_or_fresh(k);
        let mode = if fresh {
            tensor::Accum::Overwrite
        } else {
            tensor::Accum::Add
        };
        (g.data_mut(), mode)
    }

    /// The gradient accumulator of input `k` for an op that will *overwrite* it when it is
    /// new: returns it with `true` if it was just created (contents unspecified: write every
    /// element, e.g. a GEMM that keeps none of it), or with `false` if earlier ops already added to it
    /// (add to it). Saves a zero-fill and a read of the whole buffer for the big weights.
    pub(crate) fn grad_or_fresh(&mut self, k: usize) -> (&mut Tensor<T>, bool) {
        let v = self.inputs[k];
        grad_or_fresh(self.grads, self.buffers, self.scaled, self.values.at(v), v)
    }

    /// A scratch buffer of `len` elements from the graph's buffers (give it back with
    /// [`Backward::give_back`]).
    pub(crate) fn scratch(&mut self, len: usize) -> Vec<T> {
        self.buffers.take(len)
    }

    /// Returns a scratch buffer to the graph's buffers.
    pub(crate) fn give_back(&mut self, buf: Vec<T>) {
        self.buffers.give(buf)
    }
}

impl<T: Float> Graph<T> {
    /// Reverse-mode differentiation of the scalar `loss`: fills the gradient of every
    /// parameter and node it depends on (adding to gradients already there).
    pub fn backward(&mut self, loss: Var) -> Result<()> {
        self.backward_from_scalar(loss, None)
    }

    /// Reverse-mode differentiation seeded with `grad` as the gradient of `out` (any shape;
    /// what `y.backward(gradient)` is in PyTorch).
    pub fn backward_with_grad(&mut self, out: Var, grad: &Tensor<T>) -> Result<()> {
        self.run_backward(out, grad, None)
    }

    /// [`Graph::backward`] that offers each parameter's gradient to `consumer` where it is
    /// completed (at the parameter's first use on the tape, when that op is its only use
    /// there and no gradient is stored yet), in the unformed form the op allows (see
    /// [`GradientConsumer`]). A gradient the consumer takes is not stored
    /// ([`Graph::handed_over`] says which were); every other is filled as by `backward`. This
    /// is how an optimiser updates a linear layer's weights in the backward's own pass over
    /// them (PyTorch's "optimizer step in backward").
    pub fn backward_with(
        &mut self,
        loss: Var,
        consumer: &mut dyn GradientConsumer<T>,
    ) -> Result<()> {
        self.backward_from_scalar(loss, Some(consumer))
    }

    fn backward_from_scalar(
        &mut self,
        loss: Var,
        consumer: Option<&mut dyn GradientConsumer<T>>,
    ) -> Result<()> {
        self.check(loss, "backward")?;
        let shape = self.val(loss).shape();
        if shape.numel() != 1 {
            return Err(AutogradError::NotScalar(shape));
        }
        let mut seed = self.buffers.zeros(shape);
        seed.data_mut()[0] = T::one();
        let r = self.run_backward(loss, &seed, consumer);
        self.buffers.give(seed.into_vec());
        r
    }

    fn run_backward(
        &mut self,
        out: Var,
        grad: &Tensor<T>,
        mut consumer: Option<&mut dyn GradientConsumer<T>>,
    ) -> Result<()> {
        self.check(out, "backward")?;
        let shape = self.val(out).shape();
        if grad.shape() != shape {
            return Err(AutogradError::from(tensor::TensorError::ShapeMismatch {
                op: "backward",
                lhs: shape,
                rhs: grad.shape(),
                why: "seed gradient must have the output's shape".into(),
            }));
        }
        // Intermediate gradients belong to one backward pass (as in PyTorch); leaves'
        // and parameters' gradients accumulate across passes until `reset`.
        for (node, grad) in self.nodes.iter().zip(self.grads.tape.iter_mut()) {
            if node.op.is_some() {
                if let Some(t) = grad.take() {
                    self.buffers.give(t.into_vec());
                }
            }
        }
        let slot = self.grads.at_mut(out);
        match slot {
            Some(g) => g
                .data_mut()
                .iter_mut()
                .zip(grad.data())
                .for_each(|(a, &b)| *a += b),
            None => {
                let mut t = self.buffers.zeros(shape);
                t.data_mut().copy_from_slice(grad.data());
                *slot = Some(t);
            }
        }
        if out.is_parameter() {
            return Ok(());
        }
        let last = out.index();
        let lazy = consumer.is_some();
        if lazy {
            self.find_first_uses(last);
        }
        for i in (0..=last).rev() {
            let node = &self.nodes[i];
            let Some(op) = node.op.as_ref() else { continue };
            let Some(gout) = self.grads.tape[i].take() else {
                continue;
            };
            let n = node.n_inputs as usize;
            let inputs = &node.inputs[..n];
            let mut needs = [false; MAX_INPUTS];
            for (need, &v) in needs.iter_mut().zip(inputs) {
                *need = *self.requires_grad.at(v);
            }
            // The gradient of a linear op's weights, offered where this op completes it: the
            // weights' first use on the tape, used once here, with no gradient stored yet.
            let offer = consumer.as_mut().and_then(|c| {
                let (x, w) = op.linear_form()?;
                let v = inputs[w];
                let p = v.param()?;
                let completes = needs[w]
                    && self.first_use[p] == i
                    && self.grads.params[p].is_none()
                    && inputs.iter().filter(|&&u| u == v).count() == 1;
                completes.then_some((c, x, w, p))
            });
            if let Some((consumer, x, w, p)) = offer {
                let mut value = std::mem::take(&mut self.values.params[p]);
                let input_value = self.values.at(inputs[x]);
                let mut grad = LinearGradient {
                    dims: (
                        input_value.dims()[0],
                        input_value.dims()[1],
                        value.dims()[0],
                    ),
                    x: input_value.data(),
                    dy: gout.data(),
                    value: &mut value,
                    scaled_value: self.scaled[p],
                    input: needs[x].then_some(inputs[x]),
                    input_value,
                    grads: &mut self.grads,
                    buffers: &mut self.buffers,
                    scaled: &mut self.scaled,
                    opened: false,
                };
                let taken = consumer.take_linear(Var::parameter(p), &mut grad);
                let opened = grad.opened;
                self.values.params[p] = value;
                match taken {
                    Some(t) => {
                        self.handed[p] = Some(t.nonzero);
                        self.sum_squares[p] = t.sum_squares;
                        self.scaled[p] = T::zero();
                        needs[w] = false;
                        needs[x] = false;
                    }
                    None if opened => {
                        self.grads.tape[i] = Some(gout);
                        return Err(AutogradError::Invalid {
                            op: "backward_with",
                            why: "the gradient consumer opened a gradient and then declined it"
                                .into(),
                        });
                    }
                    None => {}
                }
            }
            op.backward(&mut Backward {
                inputs,
                values: &self.values,
                output: &self.values.tape[i],
                grad_output: &gout,
                grads: &mut self.grads,
                needs,
                buffers: &mut self.buffers,
                scaled: &mut self.scaled,
                lazy,
            });
            self.grads.tape[i] = Some(gout);
        }
        // Terms kept as numbers that no consumer took become ordinary gradients.
        for p in 0..self.values.params.len() {
            let c = std::mem::replace(&mut self.scaled[p], T::zero());
            if c != T::zero() {
                let shape = self.values.params[p].shape();
                let g = self.grads.params[p].get_or_insert_with(|| self.buffers.zeros(shape));
                axpy(c, self.values.params[p].data(), g.data_mut());
            }
        }
        Ok(())
    }

    /// Fills `first_use` with each parameter's first node on the tape up to `last`.
    fn find_first_uses(&mut self, last: usize) {
        let first = &mut self.first_use;
        first.clear();
        first.resize(self.values.params.len(), usize::MAX);
        for (i, node) in self.nodes.iter().enumerate().take(last + 1) {
            for v in &node.inputs[..node.n_inputs as usize] {
                if let Some(p) = v.param().filter(|&p| first[p] == usize::MAX) {
                    first[p] = i;
                }
            }
        }
    }
}
