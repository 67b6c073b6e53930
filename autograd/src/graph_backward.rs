//! The differentiable backward (PyTorch's `create_graph=True`): [`Graph::gradients`] walks the
//! tape like [`Graph::backward`] but has each op record its backward as graph ops
//! ([`Op::backward_graph`](crate::Op::backward_graph)), so the gradients it returns are
//! [`Var`]s on the tape, to be differentiated again: Hessian-vector products, gradient
//! penalties, second-order gradient checks.
//!
//! It is a separate walk, not a mode of [`Graph::backward`]: the first-order pass keeps its
//! fused kernels, its buffer reuse and the optimiser's handover untouched, and pays nothing for
//! this.

use crate::graph::MAX_INPUTS;
use crate::{AutogradError, Graph, Result, Var};
use tensor::{Float, TensorError};

/// What an [`Op::backward_graph`](crate::Op::backward_graph) sees: the Vars of the op's
/// inputs, output and output gradient, and the graph to build the inputs' gradients on.
///
/// Each gradient is built from ordinary graph ops on those Vars and handed over with
/// [`GraphBackward::add_grad`] (or [`GraphBackward::add_grad_broadcast`] for an input that was
/// broadcast). Because the result is a computation on the tape like any other, it can be
/// differentiated again, as far as the ops it uses have a `backward_graph` themselves.
///
/// A user op `y = x^3` made twice differentiable, and its second derivative checked:
///
/// ```
/// use nndl_autograd::{gradgradcheck_fn, Backward, Float, GradcheckConfig, Graph, GraphBackward, Op, Tensor, Var};
///
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
///     // The same dx = dy * 3x^2, as graph ops on Vars.
///     fn backward_graph(&self, cx: &mut GraphBackward<'_, T>) -> nndl_autograd::Result<()> {
///         let (x, dy) = (cx.input(0), cx.grad_output());
///         let g = cx.graph();
///         let xx = g.mul(x, x)?;
///         let d = g.scale(xx, T::of(3.0))?;
///         let dx = g.mul(dy, d)?;
///         cx.add_grad(0, dx)
///     }
/// }
///
/// fn cube<T: Float>(g: &mut Graph<T>, x: Var) -> nndl_autograd::Result<Var> {
///     let out = g.value(x)?.map(|v| v * v * v);
///     g.push_op(Box::new(Cube), &[x], out)
/// }
///
/// // d/dx sum x^3 = 3x^2, and its own derivative: d/dx sum 3x^2 = 6x.
/// let mut g = Graph::<f64>::new();
/// let x = g.leaf(Tensor::from_vec(vec![1.0, -2.0], &[2])?);
/// let y = cube(&mut g, x)?;
/// let s = g.sum(y)?;
/// let [dx] = g.gradients(s, &[x])?[..] else { unreachable!() };
/// assert_eq!(g.value(dx)?.data(), &[3.0, 12.0]);
/// let t = g.sum(dx)?;
/// g.backward(t)?;
/// assert_eq!(g.grad(x).unwrap().data(), &[6.0, -12.0]);
///
/// // The second-order check: d/dx [v . grad f(x)] against differences of the gradient.
/// let x0 = [Tensor::from_vec(vec![0.3, -1.2, 0.8], &[3])?];
/// let report = gradgradcheck_fn(&x0, |g, v| cube(g, v[0]), GradcheckConfig::default())?;
/// assert_eq!(report.checked, 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct GraphBackward<'g, T: Float> {
    graph: &'g mut Graph<T>,
    op: &'static str,
    inputs: [Var; MAX_INPUTS],
    n_inputs: usize,
    output: Var,
    grad_output: Var,
    needs: [bool; MAX_INPUTS],
    grads: [Option<Var>; MAX_INPUTS],
}

impl<T: Float> GraphBackward<'_, T> {
    /// The graph, to build the gradients on (its values are readable through it too).
    pub fn graph(&mut self) -> &mut Graph<T> {
        self.graph
    }

    /// The Var of input `k`.
    ///
    /// # Panics
    /// If `k` is not below [`GraphBackward::input_count`] (a bug of the op).
    pub fn input(&self, k: usize) -> Var {
        self.inputs[..self.n_inputs][k]
    }

    /// How many inputs the op has.
    pub fn input_count(&self) -> usize {
        self.n_inputs
    }

    /// The Var of the op's output: usable in the gradient (`d e^x = e^x dx`), and
    /// differentiable through the op itself.
    pub fn output(&self) -> Var {
        self.output
    }

    /// The Var of the gradient of the output (`dL/dy`, the output's shape). It may itself
    /// depend on the inputs, or on a Var the caller seeded: use it as a Var, not as a number.
    pub fn grad_output(&self) -> Var {
        self.grad_output
    }

    /// Whether input `k` needs a gradient: it leads to one of the Vars the gradients were
    /// asked for. Skip the work when it does not.
    pub fn needs_grad(&self, k: usize) -> bool {
        k < self.n_inputs && self.needs[k]
    }

    /// Adds `grad` (input `k`'s shape) to input `k`'s gradient; ignored when input `k`
    /// needs none. Shares of the same input are summed with graph adds.
    pub fn add_grad(&mut self, k: usize, grad: Var) -> Result<()> {
        if !self.needs_grad(k) {
            return Ok(());
        }
        let want = self.graph.value(self.inputs[k])?.shape();
        let got = self.graph.value(grad)?.shape();
        if got != want {
            return Err(TensorError::ShapeMismatch {
                op: self.op,
                lhs: got,
                rhs: want,
                why: format!("the gradient of input {k} must have the input's shape"),
            }
            .into());
        }
        self.grads[k] = Some(match self.grads[k] {
            Some(prev) => self.graph.add(prev, grad)?,
            None => grad,
        });
        Ok(())
    }

    /// Adds `grad`, of a shape input `k` was broadcast to, to input `k`'s gradient, summed
    /// back to the input's shape ([`Graph::sum_to`], the adjoint of broadcasting).
    pub fn add_grad_broadcast(&mut self, k: usize, grad: Var) -> Result<()> {
        if !self.needs_grad(k) {
            return Ok(());
        }
        let want = self.graph.value(self.inputs[k])?.shape();
        let grad = if self.graph.value(grad)?.shape() == want {
            grad
        } else {
            self.graph.sum_to(grad, want.dims())?
        };
        self.add_grad(k, grad)
    }
}

impl<T: Float> Graph<T> {
    /// The gradients of the scalar `output` with respect to each of `wrt`, recorded on the
    /// tape: each is a [`Var`] that can be differentiated again (with [`Graph::backward`] or
    /// another `gradients`). PyTorch's `torch.autograd.grad(output, wrt, create_graph=True)`.
    ///
    /// The walk covers the tape as it is when called, and only the ops on a path from a Var
    /// of `wrt` to `output`; a Var of `wrt` that `output` does not depend on gets zeros. Each
    /// Var of `wrt` must carry gradients (a parameter not frozen, a [`Graph::leaf`], or a
    /// value computed from one while recording). Unlike [`Graph::backward`], it stores no
    /// gradient (what [`Graph::grad`] reads is untouched). Recording off
    /// ([`Graph::no_grad`]) gives the gradients' values without recording them: constants,
    /// as any value computed without recording.
    ///
    /// An op on the way without a differentiable backward makes it fail with
    /// [`AutogradError::NotTwiceDifferentiable`] naming the op.
    ///
    /// A gradient penalty: `L = (w x)^2 + |dL0/dx|^2` needs `dL0/dx` as a function of `w`.
    ///
    /// ```
    /// use nndl_autograd::{Graph, Tensor};
    ///
    /// let mut g = Graph::<f64>::new();
    /// let w = g.parameter("w", Tensor::from_vec(vec![3.0], &[1])?);
    /// let x = g.leaf(Tensor::from_vec(vec![2.0], &[1])?);
    /// let wx = g.mul(w, x)?;
    /// let l0 = g.sum_squares(wx)?; // w^2 x^2
    /// let [dx] = g.gradients(l0, &[x])?[..] else { unreachable!() };
    /// assert_eq!(g.value(dx)?.data(), &[36.0]); // 2 w^2 x
    /// let pen = g.sum_squares(dx)?; // 4 w^4 x^2
    /// let loss = g.add(l0, pen)?;
    /// g.backward(loss)?;
    /// // dL/dw = 2 w x^2 + 16 w^3 x^2 = 24 + 1728
    /// assert_eq!(g.grad(w).unwrap().data(), &[1752.0]);
    /// # Ok::<(), nndl_autograd::AutogradError>(())
    /// ```
    pub fn gradients(&mut self, output: Var, wrt: &[Var]) -> Result<Vec<Var>> {
        self.check(output, "gradients")?;
        let shape = self.val(output).shape();
        if shape.numel() != 1 {
            return Err(AutogradError::NotScalar(shape));
        }
        let mut one = self.alloc_zeros(shape);
        one.data_mut()[0] = T::one();
        let seed = self.input(one);
        self.gradients_from(output, seed, wrt)
    }

    /// [`Graph::gradients`] seeded with `grad_output` as the gradient of `output` (any shape,
    /// the output's): the vector-Jacobian product `J^T grad_output`, recorded on the tape. The
    /// seed may itself be a Var that carries gradients (the result is linear in it: the
    /// double-backward trick for Jacobian-vector products differentiates it with respect to the
    /// seed).
    pub fn gradients_with_grad(
        &mut self,
        output: Var,
        grad_output: Var,
        wrt: &[Var],
    ) -> Result<Vec<Var>> {
        self.check(output, "gradients")?;
        self.check(grad_output, "gradients")?;
        let (so, sg) = (self.val(output).shape(), self.val(grad_output).shape());
        if so != sg {
            return Err(TensorError::ShapeMismatch {
                op: "gradients",
                lhs: so,
                rhs: sg,
                why: "the seed gradient must have the output's shape".into(),
            }
            .into());
        }
        self.gradients_from(output, grad_output, wrt)
    }

    /// `f` of each element of `v`'s value, put on the tape as a constant (a mask, a sign)
    /// in a buffer of the graph's: a recorded gradient runs every step, and a buffer from
    /// outside the pool would be added to it at each reset.
    pub(crate) fn constant_map(&mut self, v: Var, f: impl Fn(T) -> T) -> Result<Var> {
        self.check(v, "constant")?;
        let mut t = self.alloc(self.val(v).shape());
        for (o, &x) in t.data_mut().iter_mut().zip(self.val(v).data()) {
            *o = f(x);
        }
        Ok(self.input(t))
    }

    fn gradients_from(&mut self, out: Var, seed: Var, wrt: &[Var]) -> Result<Vec<Var>> {
        for (k, &v) in wrt.iter().enumerate() {
            self.check(v, "gradients")?;
            if !self.requires_grad(v) {
                // Ops on a value that carries no gradient are not recorded: a zero would be a
                // wrong number, not an answer.
                return Err(AutogradError::Invalid {
                    op: "gradients",
                    why: format!(
                        "wrt[{k}] carries no gradient (a constant from `input`, a frozen \
                         parameter, or computed without recording): its ops were not recorded"
                    ),
                });
            }
        }
        // Which values lead to a Var of `wrt`: only their gradients are formed, so an op off
        // those paths (a conv on the data side, say) is neither run nor asked for a
        // differentiable backward.
        let mut param_target = vec![false; self.values.params.len()];
        let n_tape = if out.is_parameter() {
            0
        } else {
            out.index() + 1
        };
        let mut reach = vec![false; n_tape];
        for &v in wrt {
            match v.param() {
                Some(p) => param_target[p] = true,
                None if v.index() < n_tape => reach[v.index()] = true,
                None => {}
            }
        }
        for i in 0..n_tape {
            if reach[i] || !self.requires_grad.tape[i] {
                continue;
            }
            let node = &self.nodes[i];
            let inputs = &node.inputs[..node.n_inputs as usize];
            let leads_to_wrt = inputs.iter().any(|v| match v.param() {
                Some(p) => param_target[p],
                None => reach[v.index()],
            });
            if leads_to_wrt && node.op.is_none() && !inputs.is_empty() {
                // A recorded node whose op is out of it: this call comes from inside that
                // op's own backward_graph. Skipping it would drop its share silently.
                return Err(AutogradError::Invalid {
                    op: "gradients",
                    why: "called from inside an op's backward_graph, through that op's own \
                          node"
                        .into(),
                });
            }
            reach[i] = leads_to_wrt;
        }
        let leads = |v: Var, reach: &[bool]| match v.param() {
            Some(p) => param_target[p],
            None => reach[v.index()],
        };
        let mut grad_params: Vec<Option<Var>> = vec![None; self.values.params.len()];
        let mut grad_tape: Vec<Option<Var>> = vec![None; n_tape];
        match out.param() {
            Some(p) => grad_params[p] = Some(seed),
            None => grad_tape[out.index()] = Some(seed),
        }
        for i in (0..n_tape).rev() {
            if !reach[i] {
                continue;
            }
            let Some(gout) = grad_tape[i] else { continue };
            // The op is taken out of its node for the call (its backward_graph needs the
            // whole graph mutably) and put back whatever happens.
            let Some(op) = self.nodes[i].op.take() else {
                continue;
            };
            let (inputs, n) = (self.nodes[i].inputs, self.nodes[i].n_inputs as usize);
            let mut needs = [false; MAX_INPUTS];
            for (need, &v) in needs.iter_mut().zip(&inputs[..n]) {
                *need = leads(v, &reach);
            }
            let output = self.tape_var(i);
            let mut cx = GraphBackward {
                graph: self,
                op: op.name(),
                inputs,
                n_inputs: n,
                output,
                grad_output: gout,
                needs,
                grads: [None; MAX_INPUTS],
            };
            let r = op.backward_graph(&mut cx);
            let grads = cx.grads;
            if self.nodes.len() <= i || self.tape_var(i) != output {
                // The backward_graph reset the graph: nothing of this walk is valid now.
                return Err(AutogradError::Invalid {
                    op: op.name(),
                    why: "its backward_graph reset the graph".into(),
                });
            }
            self.nodes[i].op = Some(op);
            r?;
            for (&v, gk) in inputs[..n].iter().zip(grads) {
                let Some(gk) = gk else { continue };
                let slot = match v.param() {
                    Some(p) => &mut grad_params[p],
                    None => &mut grad_tape[v.index()],
                };
                *slot = Some(match *slot {
                    Some(prev) => self.add(prev, gk)?,
                    None => gk,
                });
            }
        }
        wrt.iter()
            .map(|&v| {
                let found = match v.param() {
                    Some(p) => grad_params[p],
                    None => grad_tape.get(v.index()).copied().flatten(),
                };
                match found {
                    Some(g) => Ok(g),
                    None => {
                        let zeros = self.alloc_zeros(self.val(v).shape());
                        Ok(self.input(zeros))
                    }
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::randoms;
    use crate::{gradcheck, AutogradError, GradcheckConfig, Graph, Tensor, Var};

    /// A two-layer net's cost on a fixed batch, from parameters w1, b1, w2, b2.
    fn net(g: &mut Graph<f64>, p: &[Var], x: &Tensor<f64>) -> crate::Result<Var> {
        let x = g.input(x.clone());
        let h = g.linear(x, p[0], Some(p[1]))?;
        let h = g.tanh(h)?;
        let z = g.linear(h, p[2], Some(p[3]))?;
        g.softmax_cross_entropy(z, &[0, 2, 1, 1, 0])
    }

    fn params(g: &mut Graph<f64>) -> Vec<Var> {
        let t = randoms(&[&[4, 3], &[4], &[3, 4], &[3]], 31);
        t.into_iter()
            .enumerate()
            .map(|(i, t)| g.parameter(format!("p{i}"), t))
            .collect()
    }

    #[test]
    fn recorded_gradients_equal_the_first_order_backward() {
        let mut g = Graph::<f64>::new();
        let p = params(&mut g);
        let x = randoms(&[&[5, 3]], 32).remove(0);
        let loss = net(&mut g, &p, &x).unwrap();
        let recorded = g.gradients(loss, &p).unwrap();
        // The first-order gradients were not touched by `gradients`.
        assert!(p.iter().all(|&v| g.grad(v).is_none()));
        // Without recording: the same values, as constants (what depends on them has no
        // gradient through them).
        let unrecorded = g.no_grad(|g| g.gradients(loss, &p)).unwrap();
        for (&a, &b) in recorded.iter().zip(&unrecorded) {
            assert_eq!(g.value(a).unwrap(), g.value(b).unwrap());
        }
        let s = g.sum(unrecorded[0]).unwrap();
        let d = g.gradients(s, &p[..1]).unwrap()[0];
        assert!(g.value(d).unwrap().data().iter().all(|&v| v == 0.0));
        let s = g.sum(recorded[0]).unwrap();
        let d = g.gradients(s, &p[..1]).unwrap()[0];
        assert!(g.value(d).unwrap().data().iter().any(|&v| v != 0.0));
        g.backward(loss).unwrap();
        for (&v, &r) in p.iter().zip(&recorded) {
            let (a, b) = (g.value(r).unwrap().data(), g.grad(v).unwrap().data());
            for (x, y) in a.iter().zip(b) {
                assert!((x - y).abs() <= 1e-14 * y.abs().max(1.0), "{x} vs {y}");
            }
        }
    }

    #[test]
    fn third_derivative_of_x_to_the_fourth() {
        let mut g = Graph::<f64>::new();
        let x = g.leaf(Tensor::from_vec(vec![1.5, -2.0], &[2]).unwrap());
        let x2 = g.mul(x, x).unwrap();
        let x4 = g.mul(x2, x2).unwrap();
        let f = g.sum(x4).unwrap();
        let d1 = g.gradients(f, &[x]).unwrap()[0]; // 4x^3
        let s1 = g.sum(d1).unwrap();
        let d2 = g.gradients(s1, &[x]).unwrap()[0]; // 12x^2
        let s2 = g.sum(d2).unwrap();
        let d3 = g.gradients(s2, &[x]).unwrap()[0]; // 24x
        assert_eq!(g.value(d1).unwrap().data(), &[13.5, -32.0]);
        assert_eq!(g.value(d2).unwrap().data(), &[27.0, 48.0]);
        assert_eq!(g.value(d3).unwrap().data(), &[36.0, -48.0]);
        let s3 = g.sum(d3).unwrap();
        g.backward(s3).unwrap();
        assert_eq!(g.grad(x).unwrap().data(), &[24.0, 24.0]);
    }

    #[test]
    fn unreached_inputs_get_zeros_and_constants_are_refused() {
        let mut g = Graph::<f64>::new();
        let a = g.leaf(Tensor::from_vec(vec![2.0, 3.0], &[2]).unwrap());
        let b = g.leaf(Tensor::from_vec(vec![1.0], &[1, 1]).unwrap());
        let c = g.input(Tensor::from_vec(vec![5.0, 7.0], &[2]).unwrap());
        let ac = g.mul(a, c).unwrap();
        let s = g.sum(ac).unwrap();
        let r = g.gradients(s, &[a, b, a]).unwrap();
        assert_eq!(g.value(r[0]).unwrap().data(), &[5.0, 7.0]);
        assert_eq!(g.value(r[1]).unwrap().data(), &[0.0]);
        assert_eq!(g.value(r[1]).unwrap().dims(), &[1, 1]);
        assert_eq!(r[2], r[0]);
        let e = g.gradients(s, &[c]).unwrap_err().to_string();
        assert!(e.contains("wrt[0] carries no gradient"), "{e}");
        // A non-scalar output needs a seed of its shape.
        assert!(matches!(
            g.gradients(ac, &[a]),
            Err(AutogradError::NotScalar(_))
        ));
        let bad = g.input(Tensor::zeros(&[3]).unwrap());
        assert!(g.gradients_with_grad(ac, bad, &[a]).is_err());
        // Ops recorded after the output are not part of its gradient.
        let later = g.mul(a, a).unwrap();
        let _ = g.sum(later).unwrap();
        let r = g.gradients(s, &[a]).unwrap();
        assert_eq!(g.value(r[0]).unwrap().data(), &[5.0, 7.0]);
    }

    #[test]
    fn seeded_gradients_are_the_vector_jacobian_product() {
        let t = randoms(&[&[3, 4], &[4, 2], &[3, 2]], 33);
        let mut g = Graph::<f64>::new();
        let a = g.leaf(t[0].clone());
        let b = g.leaf(t[1].clone());
        let y = g.matmul(a, b).unwrap();
        let y = g.sigmoid(y).unwrap();
        let u = g.input(t[2].clone());
        let r = g.gradients_with_grad(y, u, &[a, b]).unwrap();
        g.backward_with_grad(y, &t[2]).unwrap();
        for (&v, &r) in [a, b].iter().zip(&r) {
            let (x, w) = (g.value(r).unwrap().data(), g.grad(v).unwrap().data());
            for (x, w) in x.iter().zip(w) {
                assert!((x - w).abs() <= 1e-14, "{x} vs {w}");
            }
        }
    }

    /// An op with a first-order backward only (`y = 2x`).
    struct FirstOrderOnly;

    impl crate::Op<f64> for FirstOrderOnly {
        fn name(&self) -> &'static str {
            "first_order_only"
        }
        fn backward(&self, cx: &mut crate::Backward<'_, f64>) {
            let g = cx.grad_output();
            let d = cx.grad(0).data_mut();
            d.iter_mut().zip(g.data()).for_each(|(d, &g)| *d += 2.0 * g);
        }
    }

    #[test]
    fn an_op_without_a_differentiable_backward_is_named_and_only_on_the_path() {
        let t = randoms(&[&[2, 3], &[2, 3]], 34);
        let mut g = Graph::<f64>::new();
        let x = g.leaf(t[0].clone());
        let w = g.leaf(t[1].clone());
        let v = g.value(x).unwrap().map(|v| 2.0 * v);
        let c = g.push_op(Box::new(FirstOrderOnly), &[x], v).unwrap();
        let y = g.mul(c, w).unwrap();
        let s = g.sum(y).unwrap();
        // w's gradient is the op's output: the op itself is not differentiated.
        let r = g.gradients(s, &[w]).unwrap();
        assert_eq!(g.value(r[0]).unwrap().data(), g.value(c).unwrap().data());
        let e = g.gradients(s, &[x]).unwrap_err();
        assert_eq!(
            e,
            AutogradError::NotTwiceDifferentiable {
                op: "first_order_only"
            }
        );
        assert!(e
            .to_string()
            .starts_with("`first_order_only` has no differentiable"));
        // The tape is intact: the first-order backward still runs through the op.
        g.backward(s).unwrap();
        assert!(g.grad(x).is_some());
    }

    #[test]
    fn the_conv_pool_and_norm_ops_record_the_first_order_gradients() {
        // conv2d (padded, strided), conv_pool (both tie rules), max_pool2d and batch_norm,
        // once without a differentiable backward: their recorded gradients are the
        // first-order backward's, on an input with tied pool windows (a blank left half).
        use tensor::{pool::PoolGrad, unary::Act};
        let mut t = randoms(&[&[2, 1, 6, 6], &[2, 1, 3, 3], &[2], &[2]], 37);
        for (i, v) in t[0].data_mut().iter_mut().enumerate() {
            if i % 6 < 3 {
                *v = 0.0;
            }
        }
        type Build = fn(&mut Graph<f64>, &[Var]) -> crate::Result<Var>;
        let build: [Build; 6] = [
            |g, v| g.conv2d_padded(v[0], v[1], Some(v[2]), 1, 2),
            |g, v| g.conv_pool(v[0], v[1], v[2], 2, Act::Relu, PoolGrad::First),
            |g, v| g.conv_pool(v[0], v[1], v[2], 2, Act::Tanh, PoolGrad::Ties),
            |g, v| g.max_pool2d(v[0], 2),
            |g, v| {
                let x = g.reshape(v[0], &[2, 2, 18])?; // 2 channels
                Ok(g.batch_norm(x, v[2], v[3], 1e-5, Act::Identity)?.0)
            },
            |g, v| {
                let x = g.reshape(v[0], &[2, 2, 18])?;
                g.batch_norm_with(x, v[2], v[3], (&[0.1, -0.2], &[0.5, 2.0]), 1e-5, Act::Relu)
            },
        ];
        for (k, f) in build.into_iter().enumerate() {
            let mut g = Graph::<f64>::new();
            let v: Vec<Var> = t.iter().map(|t| g.leaf(t.clone())).collect();
            let y = f(&mut g, &v).unwrap();
            let y2 = g.mul(y, y).unwrap();
            let s = g.sum(y2).unwrap();
            let r = g.gradients(s, &v).unwrap();
            g.backward(s).unwrap();
            for (&x, &d) in v.iter().zip(&r) {
                let want = g.grad(x).map(|t| t.data().to_vec());
                let want = want.unwrap_or_else(|| vec![0.0; g.value(x).unwrap().numel()]);
                for (a, b) in g.value(d).unwrap().data().iter().zip(&want) {
                    assert!(
                        (a - b).abs() <= 1e-12 * b.abs().max(1.0),
                        "case {k}: {a} vs {b}"
                    );
                }
            }
        }
    }

    /// An op whose backward_graph misbehaves: re-enters `gradients` through its own node,
    /// or resets the graph.
    struct Rogue {
        reset: bool,
    }

    impl crate::Op<f64> for Rogue {
        fn name(&self) -> &'static str {
            "rogue"
        }
        fn backward(&self, _: &mut crate::Backward<'_, f64>) {}
        fn backward_graph(&self, cx: &mut super::GraphBackward<'_, f64>) -> crate::Result<()> {
            let (x, y) = (cx.input(0), cx.output());
            if self.reset {
                cx.graph().reset();
                return Ok(());
            }
            let s = cx.graph().sum(y)?;
            cx.graph().gradients(s, &[x]).map(|_| ())
        }
    }

    #[test]
    fn a_backward_graph_that_reenters_or_resets_is_an_error() {
        for reset in [false, true] {
            let mut g = Graph::<f64>::new();
            let x = g.leaf(Tensor::from_vec(vec![1.0, 2.0], &[2]).unwrap());
            let v = g.value(x).unwrap().clone();
            let y = g.push_op(Box::new(Rogue { reset }), &[x], v).unwrap();
            let s = g.sum(y).unwrap();
            let e = g.gradients(s, &[x]).unwrap_err().to_string();
            let want = if reset {
                "rogue: its backward_graph reset the graph"
            } else {
                "gradients: called from inside an op's backward_graph"
            };
            assert!(e.starts_with(want), "{e}");
        }
    }

    /// `L(p) = C(p) + lambda |dC/dx|^2`: a loss containing the norm of its gradient in the
    /// data, differentiated in the parameters.
    fn penalised(
        g: &mut Graph<f64>,
        p: &[Var],
        x: &Tensor<f64>,
        lambda: f64,
    ) -> crate::Result<Var> {
        let xv = g.leaf(x.clone());
        penalised_at(g, p, xv, lambda)
    }

    fn penalised_at(g: &mut Graph<f64>, p: &[Var], xv: Var, lambda: f64) -> crate::Result<Var> {
        let h = g.linear(xv, p[0], Some(p[1]))?;
        let h = g.tanh(h)?;
        let z = g.linear(h, p[2], Some(p[3]))?;
        let c = g.softmax_cross_entropy(z, &[0, 2, 1, 1, 0])?;
        let dx = g.gradients(c, &[xv])?[0];
        let pen = g.sum_squares(dx)?;
        let pen = g.scale(pen, lambda)?;
        g.add(c, pen)
    }

    #[test]
    fn gradient_penalty_gradient_matches_finite_differences() {
        let mut g = Graph::<f64>::new();
        let p = params(&mut g);
        let x = randoms(&[&[5, 3]], 35).remove(0);
        let report = gradcheck(
            &mut g,
            &p,
            |g| penalised(g, &p, &x, 10.0),
            GradcheckConfig::default(),
        )
        .unwrap();
        assert_eq!(report.checked, 12 + 4 + 12 + 3);
        assert!(report.rel_err < 1e-6, "{report}");
    }

    #[test]
    fn gradient_penalty_trains() {
        // Gradient descent on the penalised loss lowers both the loss and the penalty.
        let mut g = Graph::<f64>::new();
        let p = params(&mut g);
        let x = randoms(&[&[5, 3]], 36).remove(0);
        let mut losses = Vec::new();
        for _ in 0..30 {
            let l = penalised(&mut g, &p, &x, 1.0).unwrap();
            losses.push(g.value(l).unwrap().data()[0]);
            g.backward(l).unwrap();
            for &v in &p {
                let (value, grad) = g.param_and_grad(v).unwrap();
                let grad = grad.unwrap().clone();
                value
                    .data_mut()
                    .iter_mut()
                    .zip(grad.data())
                    .for_each(|(w, d)| *w -= 0.1 * d);
            }
            g.reset();
        }
        assert!(losses.windows(2).all(|w| w[1] < w[0]), "{losses:?}");
        assert!(losses[29] < 0.8 * losses[0], "{losses:?}");
    }

    #[test]
    fn recorded_gradients_reuse_the_graph_s_buffers_step_after_step() {
        // A training loop with a gradient penalty, and a Hessian-vector product each step:
        // after the first step nothing is allocated, and no buffer from outside the pool
        // joins it at reset (the pool would grow every step).
        let mut g = Graph::<f64>::new();
        let p = params(&mut g);
        let x = randoms(&[&[5, 3]], 38).remove(0);
        let v: Vec<Tensor<f64>> = p.iter().map(|&q| g.value(q).unwrap().clone()).collect();
        let mut seen = Vec::new();
        for _ in 0..4 {
            let mut t = g.alloc(x.shape());
            t.data_mut().copy_from_slice(x.data());
            let xv = g.leaf(t);
            let l = penalised_at(&mut g, &p, xv, 0.5).unwrap();
            g.backward(l).unwrap();
            let hv = crate::functional::hvp_on(&mut g, l, &p, &v).unwrap();
            assert_eq!(hv.len(), 4);
            g.reset();
            seen.push((g.fresh_allocations(), g.buffers.free_count()));
        }
        assert!(seen.windows(2).skip(1).all(|w| w[0] == w[1]), "{seen:?}");
    }
}
