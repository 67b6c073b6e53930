use crate::pool::Pool;
use crate::{AutogradError, Result};
use tensor::{Float, MatMut, MatRef, Shape, Tensor};

const PARAM_BIT: u32 = 1 << 31;
const MAX_INPUTS: usize = 3;

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
    fn index(self) -> usize {
        (self.id & !PARAM_BIT) as usize
    }
    /// The parameter's position, if this handle names one.
    fn param(self) -> Option<usize> {
        self.is_parameter().then(|| self.index())
    }
}

/// One thing per value (its tensor, or its gradient), for the parameters and the tape: the
/// single place a [`Var`] is turned into a position.
#[derive(Default)]
struct Slots<X> {
    params: Vec<X>,
    tape: Vec<X>,
}

impl<X> Slots<X> {
    fn tier(&self, v: Var) -> &Vec<X> {
        if v.is_parameter() {
            &self.params
        } else {
            &self.tape
        }
    }

    fn get(&self, v: Var) -> Option<&X> {
        self.tier(v).get(v.index())
    }

    fn at(&self, v: Var) -> &X {
        &self.tier(v)[v.index()]
    }

    fn at_mut(&mut self, v: Var) -> &mut X {
        let tier = if v.is_parameter() {
            &mut self.params
        } else {
            &mut self.tape
        };
        &mut tier[v.index()]
    }
}

/// The backward half of an operation. The forward is the [`Graph`] method that computed the
/// output and pushed the op with [`Graph::push_op`]; whatever the backward needs (a mask, the
/// argmax of a pool, softmax probabilities) is stored in the implementing struct.
pub trait Op<T: Float>: 'static {
    /// The operation's name, for error messages and debugging.
    fn name(&self) -> &'static str;

    /// Adds this op's contribution to the gradient of each input that needs one.
    fn backward(&self, cx: &mut Backward<'_, T>);

    /// Hands back large buffers the op saved, so the next step can reuse them.
    fn recycle(self: Box<Self>) -> Vec<Vec<T>> {
        Vec::new()
    }

    /// The backward fused with an SGD step of parameter input `k` (see
    /// [`Graph::backward_step`]): computes every other input's gradient as [`Op::backward`]
    /// would, and instead of adding to input `k`'s gradient, updates `w`, input `k`'s value,
    /// by `w <- step.decay * w - step.eta * grad`. `cx.input(k)` is empty meanwhile: `w` is
    /// the value. Returns `None`, having changed nothing, when the op cannot (the plain
    /// backward then runs).
    fn backward_step(
        &self,
        _cx: &mut Backward<'_, T>,
        _k: usize,
        _w: &mut Tensor<T>,
        _step: Step<T>,
    ) -> Option<Stepped<T>> {
        None
    }
}

/// What an [`Op::backward_step`] reports of the step it took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Stepped<T> {
    /// Whether the parameter's gradient had a non-zero element.
    pub nonzero: bool,
    /// `sum p^2` of the updated parameter, if the op computed it on the way (kept until the
    /// parameter next changes, for [`Graph::sum_squares`]).
    pub sum_squares: Option<T>,
}

/// The SGD step of one parameter that an op applies in [`Op::backward_step`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Step<T> {
    /// Learning rate.
    pub eta: T,
    /// What the parameter is multiplied by before the gradient step (weight decay, and any
    /// L2 term's gradient folded in); 1 for none.
    pub decay: T,
}

/// Plain SGD, `p <- decay_p * p - eta * grad_p`, for [`Graph::backward_step`].
#[derive(Debug, Clone, Copy)]
pub struct Sgd<'a, T> {
    /// Learning rate.
    pub eta: T,
    /// Each parameter's decay factor, in creation order (1 where none).
    pub decay: &'a [T],
}

struct Node<T> {
    op: Option<Box<dyn Op<T>>>,
    inputs: [Var; MAX_INPUTS],
    n_inputs: u8,
}

/// Parameters and the tape of one computation. See the crate docs.
pub struct Graph<T: Float> {
    param_names: Vec<String>,
    values: Slots<Tensor<T>>,
    /// Whether gradients flow to each value: a parameter unless frozen, a tape node when it
    /// depends on something that needs one.
    requires_grad: Slots<bool>,
    grads: Slots<Option<Tensor<T>>>,
    nodes: Vec<Node<T>>,
    generation: u32,
    recording: bool,
    pool: Pool<T>,
    /// Per parameter: `c` of a gradient term `c * value` not yet added to its gradient (an L2
    /// term's, during a `backward_step`; folded into the step's decay when one is fused).
    pending: Vec<T>,
    /// Per parameter: `Some(gradient had a non-zero element)` if updated during the last
    /// `backward_step`.
    stepped: Vec<Option<bool>>,
    /// Scratch for `backward_step`: each parameter's first node on the tape.
    first_use: Vec<usize>,
    /// Per parameter: `sum p^2` as a fused step left it, until the parameter is next changed.
    sum_squares: Vec<Option<T>>,
}

impl<T: Float> Default for Graph<T> {
    fn default() -> Self {
        Self::new()
    }
}

/// What an [`Op::backward`] sees: its inputs' and output's values, the output's gradient, and
/// mutable access to each input's gradient accumulator.
pub struct Backward<'a, T: Float> {
    inputs: &'a [Var],
    values: &'a Slots<Tensor<T>>,
    output: &'a Tensor<T>,
    grad_output: &'a Tensor<T>,
    grads: &'a mut Slots<Option<Tensor<T>>>,
    needs: [bool; MAX_INPUTS],
    pool: &'a mut Pool<T>,
    pending: &'a mut [T],
    deferring: bool,
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
        let pending = self.take_pending(k);
        let value = self.input(k);
        let slot = self.grads.at_mut(v);
        if slot.is_none() {
            *slot = Some(self.pool.zeros(shape));
        }
        let g = slot.as_mut().expect("just filled");
        if pending != T::zero() {
            axpy(pending, value.data(), g.data_mut());
        }
        g
    }

    /// Adds `coef * input(k)` to input `k`'s gradient (an L2 term's gradient). During a
    /// [`Graph::backward_step`] a parameter's is kept as the number `coef` and folded into its
    /// SGD step's decay when an op fuses the step, so the weights are not read for it.
    pub fn add_scaled_input(&mut self, k: usize, coef: T) {
        let v = self.inputs[k];
        if self.deferring && v.is_parameter() && self.grads.at(v).is_none() {
            self.pending[v.index()] += coef;
            return;
        }
        let x = self.input(k);
        axpy(coef, x.data(), self.grad(k).data_mut());
    }

    fn take_pending(&mut self, k: usize) -> T {
        self.inputs[k].param().map_or(T::zero(), |p| {
            std::mem::replace(&mut self.pending[p], T::zero())
        })
    }

    /// Adds the product `a . b` to input `k`'s gradient, if it needs one: the backward of
    /// every product-shaped op, written once.
    pub fn add_product(&mut self, k: usize, a: MatRef<'_, T>, b: MatRef<'_, T>) {
        if !self.needs_grad(k) {
            return;
        }
        let (d, fresh) = self.grad_or_fresh(k);
        let beta = if fresh { T::zero() } else { T::one() };
        let (rows, cols) = (a.rows(), b.cols());
        tensor::gemm(T::one(), a, b, beta, MatMut::new(d.data_mut(), rows, cols));
    }

    /// The gradient buffer of input `k` for a kernel that takes a [`tensor::Accum`]: written
    /// over when it is new (no zero-fill), added to when earlier ops already wrote it.
    pub fn grad_accum(&mut self, k: usize) -> (&mut [T], tensor::Accum) {
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
    /// element, e.g. a GEMM with beta = 0), or with `false` if earlier ops already added to it
    /// (add to it). Saves a zero-fill and a read of the whole buffer for the big weights.
    pub fn grad_or_fresh(&mut self, k: usize) -> (&mut Tensor<T>, bool) {
        let v = self.inputs[k];
        if self.grads.at(v).is_some() {
            return (self.grads.at_mut(v).as_mut().expect("checked"), false);
        }
        let value = self.input(k);
        let mut g = Tensor::from_shape_vec(value.shape(), self.pool.take(value.shape().numel()))
            .expect("pool returns the requested length");
        let pending = self.take_pending(k);
        let fresh = pending == T::zero();
        if !fresh {
            // A deferred `c * value` term: the buffer starts as it instead of as zeros.
            for (d, &x) in g.data_mut().iter_mut().zip(value.data()) {
                *d = pending * x;
            }
        }
        (self.grads.at_mut(v).insert(g), fresh)
    }

    /// A scratch buffer of `len` elements from the graph's pool (give it back with
    /// [`Backward::give_back`]).
    pub fn scratch(&mut self, len: usize) -> Vec<T> {
        self.pool.take(len)
    }

    /// Returns a scratch buffer to the pool.
    pub fn give_back(&mut self, buf: Vec<T>) {
        self.pool.give(buf)
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
            pool: Pool::default(),
            pending: Vec::new(),
            stepped: Vec::new(),
            first_use: Vec::new(),
            sum_squares: Vec::new(),
        }
    }

    /// Registers a trainable parameter; it survives [`Graph::reset`].
    pub fn parameter(&mut self, name: impl Into<String>, value: Tensor<T>) -> Var {
        let id = self.values.params.len() as u32 | PARAM_BIT;
        self.param_names.push(name.into());
        self.values.params.push(value);
        self.grads.params.push(None);
        self.requires_grad.params.push(true);
        self.pending.push(T::zero());
        self.stepped.push(None);
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
        (0..self.values.params.len()).map(|i| Var {
            id: i as u32 | PARAM_BIT,
            generation: 0,
        })
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

    fn requires_grad(&self, v: Var) -> bool {
        self.requires_grad.get(v).copied().unwrap_or(false)
    }

    /// Records an op's output on the tape. `op` is kept for the backward only when some input
    /// needs a gradient; otherwise it is dropped (its buffers recycled).
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
            for b in op.recycle() {
                self.pool.give(b);
            }
            None
        };
        Ok(self.push_node(op, inputs, output, rg))
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

    /// `sum p^2` of parameter `p` if a fused step computed it and `p` has not changed since.
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

    /// A zero-filled tensor from the graph's buffer pool.
    pub fn alloc_zeros(&mut self, shape: Shape) -> Tensor<T> {
        self.pool.zeros(shape)
    }

    /// A tensor from the graph's buffer pool whose contents the caller will overwrite.
    pub fn alloc(&mut self, shape: Shape) -> Tensor<T> {
        let buf = self.pool.take(shape.numel());
        Tensor::from_shape_vec(shape, buf).expect("pool returns buffers of the requested length")
    }

    /// A buffer of `len` elements from the pool (contents unspecified).
    pub fn alloc_buf(&mut self, len: usize) -> Vec<T> {
        self.pool.take(len)
    }

    /// Gives a buffer from [`Graph::alloc_buf`] back to the pool (scratch an op's forward
    /// needed only while it ran).
    pub fn recycle_buf(&mut self, buf: Vec<T>) {
        self.pool.give(buf)
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
    pub fn fresh_allocations(&self) -> usize {
        self.pool.fresh
    }

    /// Number of nodes on the tape now.
    pub fn tape_len(&self) -> usize {
        self.nodes.len()
    }

    /// Clears the tape and the parameters' gradients, keeping every buffer for reuse. Vars of
    /// tape nodes become stale; parameter Vars stay valid.
    pub fn reset(&mut self) {
        for t in self.values.tape.drain(..) {
            self.pool.give(t.into_vec());
        }
        for t in self.grads.tape.drain(..).flatten() {
            self.pool.give(t.into_vec());
        }
        self.requires_grad.tape.clear();
        for n in self.nodes.drain(..) {
            if let Some(op) = n.op {
                for b in op.recycle() {
                    self.pool.give(b);
                }
            }
        }
        for g in self.grads.params.iter_mut() {
            if let Some(t) = g.take() {
                self.pool.give(t.into_vec());
            }
        }
        self.stepped.iter_mut().for_each(|s| *s = None);
        self.pending.iter_mut().for_each(|c| *c = T::zero());
        self.generation = self.generation.wrapping_add(1).max(1);
    }

    /// Reverse-mode differentiation of the scalar `loss`: fills the gradient of every
    /// parameter and node it depends on (adding to gradients already there).
    pub fn backward(&mut self, loss: Var) -> Result<()> {
        self.check(loss, "backward")?;
        let shape = self.val(loss).shape();
        if shape.numel() != 1 {
            return Err(AutogradError::NotScalar(shape));
        }
        let mut seed = self.pool.zeros(shape);
        seed.data_mut()[0] = T::one();
        let r = self.backward_with_grad(loss, &seed);
        self.pool.give(seed.into_vec());
        r
    }

    /// Reverse-mode differentiation seeded with `grad` as the gradient of `out` (any shape;
    /// what `y.backward(gradient)` is in PyTorch).
    pub fn backward_with_grad(&mut self, out: Var, grad: &Tensor<T>) -> Result<()> {
        self.run_backward(out, grad, None)
    }

    /// [`Graph::backward`] that also takes an SGD step, PyTorch's "optimizer step in
    /// backward": where an op is the last to contribute to a parameter's gradient and can
    /// fuse the step ([`Op::backward_step`], the linear layer at small mini-batches), it
    /// updates the parameter as it goes and no gradient is stored for it
    /// ([`Graph::stepped`] says which). Every other parameter's gradient is filled as by
    /// `backward`, for the caller's own step.
    pub fn backward_step(&mut self, loss: Var, sgd: &Sgd<'_, T>) -> Result<()> {
        self.check(loss, "backward")?;
        let shape = self.val(loss).shape();
        if shape.numel() != 1 {
            return Err(AutogradError::NotScalar(shape));
        }
        if sgd.decay.len() != self.values.params.len() {
            return Err(AutogradError::Invalid {
                op: "backward_step",
                why: format!(
                    "{} decay factors for {} parameters",
                    sgd.decay.len(),
                    self.values.params.len()
                ),
            });
        }
        let mut seed = self.pool.zeros(shape);
        seed.data_mut()[0] = T::one();
        let r = self.run_backward(loss, &seed, Some(sgd));
        self.pool.give(seed.into_vec());
        r
    }

    /// `Some(whether its gradient had a non-zero element)` when parameter `p` was updated
    /// during the last [`Graph::backward_step`] (it then has no stored gradient).
    pub fn stepped(&self, p: Var) -> Option<bool> {
        self.stepped.get(p.param()?).copied().flatten()
    }

    fn run_backward(&mut self, out: Var, grad: &Tensor<T>, sgd: Option<&Sgd<'_, T>>) -> Result<()> {
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
                    self.pool.give(t.into_vec());
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
                let mut t = self.pool.zeros(shape);
                t.data_mut().copy_from_slice(grad.data());
                *slot = Some(t);
            }
        }
        if out.is_parameter() {
            return Ok(());
        }
        let last = out.index();
        if sgd.is_some() {
            let mut first = std::mem::take(&mut self.first_use);
            first.clear();
            first.resize(self.values.params.len(), usize::MAX);
            for (i, node) in self.nodes.iter().enumerate().take(last + 1) {
                for v in &node.inputs[..node.n_inputs as usize] {
                    if let Some(p) = v.param().filter(|&p| first[p] == usize::MAX) {
                        first[p] = i;
                    }
                }
            }
            self.first_use = first;
        }
        for i in (0..=last).rev() {
            let node = &self.nodes[i];
            let Some(op) = node.op.as_ref() else { continue };
            let Some(gout) = self.grads.tape[i].take() else {
                continue;
            };
            let n = node.n_inputs as usize;
            let mut needs = [false; MAX_INPUTS];
            for (need, &v) in needs.iter_mut().zip(&node.inputs[..n]) {
                *need = *self.requires_grad.at(v);
            }
            // The step is fused for the parameter input whose gradient this op completes: its
            // first use on the tape, used once here, with no gradient stored yet.
            let fuse = sgd.and_then(|sgd| {
                let ins = &node.inputs[..n];
                (0..n).find_map(|k| {
                    let v = ins[k];
                    let p = v.param()?;
                    (needs[k]
                        && self.first_use[p] == i
                        && self.grads.params[p].is_none()
                        && ins.iter().filter(|&&u| u == v).count() == 1)
                        .then(|| {
                            let step = Step {
                                eta: sgd.eta,
                                decay: sgd.decay[p] - sgd.eta * self.pending[p],
                            };
                            (k, p, step)
                        })
                })
            });
            // The context of node i's backward (the fused one sees its parameter moved out).
            macro_rules! context {
                ($deferring:expr) => {
                    Backward {
                        inputs: &node.inputs[..n],
                        values: &self.values,
                        output: &self.values.tape[i],
                        grad_output: &gout,
                        grads: &mut self.grads,
                        needs,
                        pool: &mut self.pool,
                        pending: &mut self.pending,
                        deferring: $deferring,
                    }
                };
            }
            let mut done = false;
            if let Some((k, p, step)) = fuse {
                let mut w = std::mem::take(&mut self.values.params[p]);
                let r = op.backward_step(&mut context!(true), k, &mut w, step);
                self.values.params[p] = w;
                if let Some(r) = r {
                    self.stepped[p] = Some(r.nonzero);
                    self.sum_squares[p] = r.sum_squares;
                    self.pending[p] = T::zero();
                    done = true;
                }
            }
            if !done {
                op.backward(&mut context!(sgd.is_some()));
            }
            self.grads.tape[i] = Some(gout);
        }
        // Deferred terms no fused step took become ordinary gradients.
        for p in 0..self.values.params.len() {
            let c = std::mem::replace(&mut self.pending[p], T::zero());
            if c != T::zero() {
                let shape = self.values.params[p].shape();
                let g = self.grads.params[p].get_or_insert_with(|| self.pool.zeros(shape));
                axpy(c, self.values.params[p].data(), g.data_mut());
            }
        }
        Ok(())
    }
}

/// `y += a * x`.
fn axpy<T: Float>(a: T, x: &[T], y: &mut [T]) {
    y.iter_mut().zip(x).for_each(|(d, &v)| *d += a * v);
}
