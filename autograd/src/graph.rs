use crate::buffers::Buffers;
use crate::{AutogradError, Op, Result};
use tensor::{Float, Shape, Tensor};

const PARAM_BIT: u32 = 1 << 31;
pub(crate) const MAX_INPUTS: usize = 3;

/// A handle to a value on a [`Graph`]: a parameter (lives across steps) or a tape node (lives
/// until the next [`Graph::reset`]). Small and `Copy`, so ops take it by value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Var {
    id: u32,
    generation: u32,
}

impl Var {
    /// Whether this handle names a parameter.
    pub fn is_parameter(self) -> bool {
        self.id & PARAM_BIT != 0
    }
    pub(crate) fn index(self) -> usize {
        (self.id & !PARAM_BIT) as usize
    }
    /// The handle of the parameter at position `index`.
    pub(crate) fn parameter(index: usize) -> Var {
        Var {
            id: index as u32 | PARAM_BIT,
            generation: 0,
        }
    }
    /// The parameter's position, if this handle names one.
    pub(crate) fn param(self) -> Option<usize> {
        self.is_parameter().then(|| self.index())
    }
}

/// One thing per value (its tensor, or its gradient), for the parameters and the tape: the
/// single place a [`Var`] is turned into a position.
#[derive(Default)]
pub(crate) struct Slots<X> {
    pub(crate) params: Vec<X>,
    pub(crate) tape: Vec<X>,
}

impl<X> Slots<X> {
    pub(crate) fn tier(&self, v: Var) -> &Vec<X> {
        if v.is_parameter() {
            &self.params
        } else {
            &self.tape
        }
    }

    pub(crate) fn get(&self, v: Var) -> Option<&X> {
        self.tier(v).get(v.index())
    }

    pub(crate) fn at(&self, v: Var) -> &X {
        &self.tier(v)[v.index()]
    }

    pub(crate) fn at_mut(&mut self, v: Var) -> &mut X {
        let tier = if v.is_parameter() {
            &mut self.params
        } else {
            &mut self.tape
        };
        &mut tier[v.index()]
    }
}

pub(crate) struct Node<T> {
    pub(crate) op: Option<Box<dyn Op<T>>>,
    pub(crate) inputs: [Var; MAX_INPUTS],
    pub(crate) n_inputs: u8,
}

/// Parameters and the tape of one computation. See the crate docs.
///
/// A training loop at this level: record the loss, run the backward, update each parameter
/// from its gradient, and [`Graph::reset`] the tape (parameters and their Vars survive it).
///
/// ```
/// use nndl_autograd::{Graph, Tensor};
///
/// // Fit w to minimise |w - t|^2 by gradient descent; the gradient is 2 (w - t).
/// let mut g = Graph::<f64>::new();
/// let w = g.parameter("w", Tensor::zeros(&[2])?);
/// for _ in 0..50 {
///     let t = g.input(Tensor::from_vec(vec![3.0, -1.0], &[2])?);
///     let d = g.sub(w, t)?;
///     let loss = g.sum_squares(d)?;
///     g.backward(loss)?;
///     let (value, grad) = g.param_and_grad(w)?;
///     let grad = grad.expect("the loss depends on w");
///     for (v, &dv) in value.data_mut().iter_mut().zip(grad.data()) {
///         *v -= 0.25 * dv; // halves the distance to t each step
///     }
///     g.reset();
/// }
/// let w = g.value(w)?.data();
/// assert!((w[0] - 3.0).abs() < 1e-12 && (w[1] + 1.0).abs() < 1e-12, "{w:?}");
/// assert_eq!(g.tape_len(), 0);
/// # Ok::<(), nndl_autograd::AutogradError>(())
/// ```
pub struct Graph<T: Float> {
    param_names: Vec<String>,
    pub(crate) values: Slots<Tensor<T>>,
    /// Whether gradients flow to each value: a parameter unless frozen, a tape node when it
    /// depends on something that needs one.
    pub(crate) requires_grad: Slots<bool>,
    pub(crate) grads: Slots<Option<Tensor<T>>>,
    pub(crate) nodes: Vec<Node<T>>,
    generation: u32,
    recording: bool,
    pub(crate) buffers: Buffers<T>,
    /// The pools' argmax buffers, reused as [`Graph::buffers`] are.
    pub(crate) indices: Buffers<u32>,
    /// Per parameter: `c` of a gradient term `c * value` not yet added to its gradient (an L2
    /// term's, kept as a number while a consumer may take the gradient unformed).
    pub(crate) scaled: Vec<T>,
    /// Per parameter: `Some(gradient had a non-zero element)` if the last
    /// [`Graph::backward_with`] handed its gradient to the consumer.
    pub(crate) handed: Vec<Option<bool>>,
    /// Scratch for [`Graph::backward_with`]: each parameter's first node on the tape.
    pub(crate) first_use: Vec<usize>,
    /// Per parameter: `sum p^2` as a consumer reported it, until the parameter next changes.
    pub(crate) sum_squares: Vec<Option<T>>,
    /// Whether convolutions multiply in bf16 ([`Graph::set_bf16_convolutions`]).
    pub(crate) bf16_conv: bool,
}

impl<T: Float> Default for Graph<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Float> Graph<T> {
    /// An empty graph, recording.
    pub fn new() -> Self {
        Graph {
            param_names: Vec::new(),
            values: Slots::default(),
            requires_grad: Slots::default(),
            grads: Slots::default(),
            nodes: Vec::new(),
            generation: 1,
            recording: true,
            buffers: Buffers::default(),
            indices: Buffers::default(),
            scaled: Vec::new(),
            handed: Vec::new(),
            first_use: Vec::new(),
            sum_squares: Vec::new(),
            bf16_conv: false,
        }
    }

    /// Registers a trainable parameter; it survives [`Graph::reset`].
    pub fn parameter(&mut self, name: impl Into<String>, value: Tensor<T>) -> Var {
        let id = self.values.params.len() as u32 | PARAM_BIT;
        self.param_names.push(name.into());
        self.values.params.push(value);
        self.grads.params.push(None);
        self.requires_grad.params.push(true);
        self.scaled.push(T::zero());
        self.handed.push(None);
        self.sum_squares.push(None);
        Var { id, generation: 0 }
    }

    /// Stops (or resumes) computing gradients for a parameter.
    pub fn set_frozen(&mut self, p: Var, frozen: bool) -> Result<()> {
        self.check(p, "set_frozen")?;
        if let Some(i) = p.param() {
            self.requires_grad.params[i] = !frozen;
        }
        Ok(())
    }

    /// Whether a parameter is frozen (gets no gradient); false for anything else.
    pub fn is_frozen(&self, p: Var) -> bool {
        p.param()
            .and_then(|i| self.requires_grad.params.get(i))
            .is_some_and(|r| !r)
    }

    /// How many parameters the graph holds (frozen ones included).
    pub fn parameter_count(&self) -> usize {
        self.values.params.len()
    }

    /// All parameters, in creation order.
    pub fn parameters(&self) -> impl Iterator<Item = Var> + '_ {
        (0..self.values.params.len()).map(Var::parameter)
    }

    /// A parameter's name.
    pub fn name(&self, p: Var) -> Option<&str> {
        self.param_names.get(p.param()?).map(String::as_str)
    }

    /// Puts data on the tape as a constant (no gradient).
    pub fn input(&mut self, value: Tensor<T>) -> Var {
        self.push_leaf(value, false)
    }

    /// Puts data on the tape through a reused buffer: `fill` writes all of it.
    pub fn input_with(&mut self, dims: &[usize], fill: impl FnOnce(&mut [T])) -> Result<Var> {
        let shape = Shape::new(dims)?;
        let mut t = self.alloc(shape);
        fill(t.data_mut());
        Ok(self.push_leaf(t, false))
    }

    /// Puts a value on the tape that gradients flow to (a non-parameter leaf).
    pub fn leaf(&mut self, value: Tensor<T>) -> Var {
        self.push_leaf(value, true)
    }

    fn push_leaf(&mut self, value: Tensor<T>, requires_grad: bool) -> Var {
        let rg = requires_grad && self.recording;
        self.push_node(None, &[], value, rg)
    }

    fn push_node(
        &mut self,
        op: Option<Box<dyn Op<T>>>,
        inputs: &[Var],
        value: Tensor<T>,
        requires_grad: bool,
    ) -> Var {
        let mut ins = [Var {
            id: 0,
            generation: 0,
        }; MAX_INPUTS];
        ins[..inputs.len()].copy_from_slice(inputs);
        let id = self.values.tape.len() as u32;
        self.values.tape.push(value);
        self.grads.tape.push(None);
        self.requires_grad.tape.push(requires_grad);
        self.nodes.push(Node {
            op,
            inputs: ins,
            n_inputs: inputs.len() as u8,
        });
        Var {
            id,
            generation: self.generation,
        }
    }

    /// Whether any of `inputs` needs a gradient while recording: an op may skip saving what
    /// its backward needs when this is false.
    pub fn needs_grad(&self, inputs: &[Var]) -> bool {
        self.recording && inputs.iter().any(|&v| self.requires_grad(v))
    }

    /// Whether gradients flow to `v` (false for a stale handle).
    pub(crate) fn requires_grad(&self, v: Var) -> bool {
        self.requires_grad.get(v).copied().unwrap_or(false)
    }

    /// Records an op's output on the tape. `op` is kept for the backward only when some input
    /// needs a gradient; otherwise it is dropped (its buffers recycled).
    ///
    /// The forward half of a user's op: compute `output` from the inputs' values, then push
    /// it with the [`Op`] that differentiates it, holding whatever that backward needs.
    /// At most 3 inputs.
    ///
    /// ```
    /// use nndl_autograd::{gradcheck_fn, Backward, Float, GradcheckConfig, Graph, Op, Tensor, Var};
    ///
    /// /// y = a x + b, with the constant `a` kept in the op for the backward.
    /// struct ScaleShift<T> {
    ///     a: T,
    /// }
    ///
    /// impl<T: Float> Op<T> for ScaleShift<T> {
    ///     fn name(&self) -> &'static str {
    ///         "scale_shift"
    ///     }
    ///     fn backward(&self, cx: &mut Backward<'_, T>) {
    ///         let dy = cx.grad_output();
    ///         if cx.needs_grad(0) {
    ///             let a = self.a;
    ///             cx.grad(0).data_mut().iter_mut().zip(dy.data()).for_each(|(d, &g)| *d += a * g);
    ///         }
    ///         if cx.needs_grad(1) {
    ///             cx.grad(1).data_mut().iter_mut().zip(dy.data()).for_each(|(d, &g)| *d += g);
    ///         }
    ///     }
    /// }
    ///
    /// fn scale_shift<T: Float>(g: &mut Graph<T>, x: Var, a: T, b: Var) -> nndl_autograd::Result<Var> {
    ///     let (xv, bv) = (g.value(x)?, g.value(b)?);
    ///     let y: Vec<T> = xv.data().iter().zip(bv.data()).map(|(&x, &b)| a * x + b).collect();
    ///     let out = Tensor::from_vec(y, xv.dims())?;
    ///     g.push_op(Box::new(ScaleShift { a }), &[x, b], out)
    /// }
    ///
    /// let mut g = Graph::<f32>::new();
    /// let x = g.input(Tensor::from_vec(vec![1.0, 2.0], &[2])?); // a constant: no gradient
    /// let b = g.parameter("b", Tensor::from_vec(vec![0.5, 0.5], &[2])?);
    /// let y = scale_shift(&mut g, x, 3.0, b)?;
    /// assert_eq!(g.value(y)?.data(), &[3.5, 6.5]);
    /// let y2 = g.mul(y, y)?;
    /// let loss = g.sum(y2)?;
    /// g.backward(loss)?;
    /// assert_eq!(g.grad(b).unwrap().data(), &[7.0, 13.0]); // d(y^2)/db = 2y
    ///
    /// let inputs = [Tensor::from_vec(vec![0.2, -0.7], &[2])?, Tensor::from_vec(vec![1.0, 0.1], &[2])?];
    /// let report = gradcheck_fn(&inputs, |g, v| scale_shift(g, v[0], -1.5, v[1]), GradcheckConfig::default())?;
    /// assert_eq!(report.checked, 4);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn push_op(
        &mut self,
        op: Box<dyn Op<T>>,
        inputs: &[Var],
        output: Tensor<T>,
    ) -> Result<Var> {
        if inputs.len() > MAX_INPUTS {
            return Err(AutogradError::Invalid {
                op: op.name(),
                why: format!("at most {MAX_INPUTS} inputs"),
            });
        }
        for &v in inputs {
            self.check(v, op.name())?;
        }
        let rg = self.needs_grad(inputs);
        let op = if rg {
            Some(op)
        } else {
            self.recycle_op(op);
            None
        };
        Ok(self.push_node(op, inputs, output, rg))
    }

    /// The handle of tape node `i` of the current tape.
    pub(crate) fn tape_var(&self, i: usize) -> Var {
        Var {
            id: i as u32,
            generation: self.generation,
        }
    }

    /// Fails unless `v` names a parameter or a node of the current tape.
    pub fn check(&self, v: Var, op: &'static str) -> Result<()> {
        let current = v.is_parameter() || v.generation == self.generation;
        let ok = current && self.values.get(v).is_some();
        if ok {
            Ok(())
        } else {
            Err(AutogradError::StaleVar { op, var: v.id })
        }
    }

    /// The value of `v`.
    pub fn value(&self, v: Var) -> Result<&Tensor<T>> {
        self.check(v, "value")?;
        Ok(self.values.at(v))
    }

    /// The value of `v` (unchecked handle; panics on a stale one). For ops that checked already.
    pub(crate) fn val(&self, v: Var) -> &Tensor<T> {
        self.values.at(v)
    }

    /// A parameter's value, mutably (for optimisers and loading).
    pub fn param_mut(&mut self, p: Var) -> Result<&mut Tensor<T>> {
        let i = self.param_index(p, "param_mut")?;
        self.sum_squares[i] = None;
        Ok(&mut self.values.params[i])
    }

    fn param_index(&self, p: Var, op: &'static str) -> Result<usize> {
        self.check(p, op)?;
        p.param().ok_or_else(|| AutogradError::Invalid {
            op,
            why: "not a parameter".into(),
        })
    }

    /// `Some(whether it had a non-zero element)` when parameter `p`'s gradient went to the
    /// consumer of the last [`Graph::backward_with`] (it then has no stored gradient).
    pub fn handed_over(&self, p: Var) -> Option<bool> {
        self.handed.get(p.param()?).copied().flatten()
    }

    /// `sum p^2` of parameter `p` if a gradient consumer reported it and `p` has not changed
    /// since.
    pub(crate) fn cached_sum_squares(&self, p: Var) -> Option<T> {
        self.sum_squares.get(p.param()?).copied().flatten()
    }

    /// A parameter's value and its gradient (if the last backward reached it), together.
    pub fn param_and_grad(&mut self, p: Var) -> Result<(&mut Tensor<T>, Option<&Tensor<T>>)> {
        let i = self.param_index(p, "param_and_grad")?;
        self.sum_squares[i] = None;
        Ok((&mut self.values.params[i], self.grads.params[i].as_ref()))
    }

    /// The gradient of the last backward with respect to `v`, if it reached `v`.
    pub fn grad(&self, v: Var) -> Option<&Tensor<T>> {
        self.check(v, "grad").ok()?;
        self.grads.at(v).as_ref()
    }

    /// Drops every stored gradient (parameters' and the tape's), keeping their buffers: the
    /// next backward starts from none (what `reset` does for gradients, the tape kept).
    pub(crate) fn clear_grads(&mut self) {
        let (grads, buffers) = (&mut self.grads, &mut self.buffers);
        for slot in grads.params.iter_mut().chain(grads.tape.iter_mut()) {
            if let Some(t) = slot.take() {
                buffers.give(t.into_vec());
            }
        }
        self.scaled.iter_mut().for_each(|c| *c = T::zero());
        self.handed.iter_mut().for_each(|s| *s = None);
    }

    /// A zero-filled tensor from the graph's buffer pool.
    pub fn alloc_zeros(&mut self, shape: Shape) -> Tensor<T> {
        self.buffers.zeros(shape)
    }

    /// A tensor from the graph's buffer pool whose contents the caller will overwrite.
    pub fn alloc(&mut self, shape: Shape) -> Tensor<T> {
        let buf = self.buffers.take(shape.numel());
        Tensor::from_shape_vec(shape, buf).expect("pool returns buffers of the requested length")
    }

    /// A buffer of `len` elements from the pool (contents unspecified).
    pub(crate) fn alloc_buf(&mut self, len: usize) -> Vec<T> {
        self.buffers.take(len)
    }

    /// Puts what a finished op saved back into the pools.
    fn recycle_op(&mut self, mut op: Box<dyn Op<T>>) {
        if let Some(b) = op.recycle_indices() {
            self.indices.give(b);
        }
        for b in op.recycle() {
            self.buffers.give(b);
        }
    }

    /// A buffer of `len` indices (contents unspecified) from the graph's index pool: a
    /// pool's argmaxes, written whole by its forward and given back by
    /// [`Op::recycle_indices`] when the tape is reset (a fresh zeroed buffer every step cost
    /// a serial fill of a megabyte or more).
    pub(crate) fn alloc_indices(&mut self, len: usize) -> Vec<u32> {
        self.indices.take(len)
    }

    /// Gives a buffer from [`Graph::alloc_buf`] back to the pool (scratch an op's forward
    /// needed only while it ran).
    pub(crate) fn recycle_buf(&mut self, buf: Vec<T>) {
        self.buffers.give(buf)
    }

    /// Makes the f32 convolutions recorded from now on ([`Graph::conv2d_padded`], and their
    /// gradients) multiply in bf16 and sum in f32 where the CPU can
    /// ([`tensor::conv::bf16_supported`]), as PyTorch's bf16 autocast does: about twice the
    /// arithmetic rate, each product within a relative 2^-7 + 2^-16 of f32's. Values and
    /// parameters stay f32 (the weights are rounded for the multiply only); elsewhere, and in
    /// f64, convolutions run as before. Returns the previous setting.
    pub fn set_bf16_convolutions(&mut self, on: bool) -> bool {
        std::mem::replace(&mut self.bf16_conv, on)
    }

    /// Whether convolutions multiply in bf16 ([`Graph::set_bf16_convolutions`]).
    pub fn bf16_convolutions(&self) -> bool {
        self.bf16_conv
    }

    /// Whether ops are being recorded for a backward.
    pub fn is_recording(&self) -> bool {
        self.recording
    }

    /// Turns recording on or off, returning the previous setting (see [`Graph::no_grad`]).
    pub fn set_recording(&mut self, on: bool) -> bool {
        std::mem::replace(&mut self.recording, on)
    }

    /// Runs `f` without recording: values are computed, nothing is kept for a backward.
    pub fn no_grad<R>(&mut self, f: impl FnOnce(&mut Self) -> R) -> R {
        let was = std::mem::replace(&mut self.recording, false);
        let r = f(self);
        self.recording = was;
        r
    }

    /// How many buffers the graph has had to allocate so far (the rest were reused): after the
    /// first step of a fixed network this stops growing.
    // Public for autograd's integration test of buffer reuse (tests/tape.rs), which counts
    // allocations across steps; nothing a user tunes, hence hidden.
    #[doc(hidden)]
    pub fn fresh_allocations(&self) -> usize {
        self.buffers.fresh
    }

    /// Number of nodes on the tape now.
    pub fn tape_len(&self) -> usize {
        self.nodes.len()
    }

    /// Clears the tape and the parameters' gradients, keeping every buffer for reuse. Vars of
    /// tape nodes become stale; parameter Vars stay valid.
    pub fn reset(&mut self) {
        for t in self.values.tape.drain(..) {
            self.buffers.give(t.into_vec());
        }
        for t in self.grads.tape.drain(..).flatten() {
            self.buffers.give(t.into_vec());
        }
        self.requires_grad.tape.clear();
        // Taken out and put back empty: the tape keeps its capacity.
        let mut nodes = std::mem::take(&mut self.nodes);
        for op in nodes.drain(..).filter_map(|n| n.op) {
            self.recycle_op(op);
        }
        self.nodes = nodes;
        for g in self.grads.params.iter_mut() {
            if let Some(t) = g.take() {
                self.buffers.give(t.into_vec());
            }
        }
        self.handed.iter_mut().for_each(|s| *s = None);
        self.scaled.iter_mut().for_each(|c| *c = T::zero());
        self.generation = self.generation.wrapping_add(1).max(1);
    }
}

/// `y += a * x`.
pub(crate) fn axpy<T: Float>(a: T, x: &[T], y: &mut [T]) {
    y.iter_mut().zip(x).for_each(|(d, &v)| *d += a * v);
}

/// The gradient accumulator of `v` (whose value is `value`) for a writer that overwrites a new
/// one: `(buffer, true)` if just created (contents unspecified), `(buffer, false)` if earlier
/// writers already added to it. A term `c * value` kept as a number starts the buffer.
pub(crate) fn grad_or_fresh<'s, T: Float>(
    grads: &'s mut Slots<Option<Tensor<T>>>,
    buffers: &mut Buffers<T>,
    scaled: &mut [T],
    value: &Tensor<T>,
    v: Var,
) -> (&'s mut Tensor<T>, bool) {
    if grads.at(v).is_some() {
        return (grads.at_mut(v).as_mut().expect("checked"), false);
    }
    let mut g = Tensor::from_shape_vec(value.shape(), buffers.take(value.shape().numel()))
        .expect("the buffers return the requested length");
    let c = v
        .param()
        .map_or(T::zero(), |p| std::mem::replace(&mut scaled[p], T::zero()));
    let fresh = c == T::zero();
    if !fresh {
        for (d, &x) in g.data_mut().iter_mut().zip(value.data()) {
            *d = c * x;
        }
    }
    (grads.at_mut(v).insert(g), fresh)
}
