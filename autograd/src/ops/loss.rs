//! Costs, fused where the maths is better fused: softmax + log-likelihood (gradient `p - y`),
//! sigmoid + cross-entropy (gradient `a - y`), the quadratic cost, negative log-likelihood of
//! log-probabilities, and the sum of squares used for L2 regularisation.
//!
//! Batch costs are means over the rows (the mini-batch) of per-example sums, so their gradient
//! is the book's `1/m` times the sum of per-example gradients.

use crate::{AutogradError, Backward, Graph, GraphBackward, Op, Result, Var};
use tensor::{softmax_rows_into, unary::sigmoid, Float, Shape, TensorError};

fn check_labels(op: &'static str, s: Shape, labels: &[usize]) -> Result<(usize, usize)> {
    if s.ndim() != 2 {
        return Err(TensorError::InvalidShape {
            op,
            shape: s,
            why: "needs [batch, classes]".into(),
        }
        .into());
    }
    let (b, c) = (s[0], s[1]);
    if labels.len() != b {
        return Err(AutogradError::Invalid {
            op,
            why: format!("{} labels for a batch of {b}", labels.len()),
        });
    }
    if let Some((i, &l)) = labels.iter().enumerate().find(|(_, &l)| l >= c) {
        return Err(AutogradError::Invalid {
            op,
            why: format!("label {l} at row {i} is not below the {c} classes"),
        });
    }
    Ok((b, c))
}

struct SoftmaxCe<T> {
    probs: Vec<T>,
    labels: Vec<usize>,
}

impl<T: Float> Op<T> for SoftmaxCe<T> {
    fn name(&self) -> &'static str {
        "softmax_cross_entropy"
    }
    fn backward(&self, cx: &mut Backward<'_, T>) {
        // d/dz of -mean log softmax(z)[y] = (p - onehot(y)) / batch.
        let b = self.labels.len();
        let c = self.probs.len() / b.max(1);
        let s = cx.grad_output().data()[0] / T::of(b as f64);
        let d = cx.grad(0).data_mut();
        for (r, (&y, p)) in self
            .labels
            .iter()
            .zip(self.probs.chunks_exact(c))
            .enumerate()
        {
            let row = &mut d[r * c..(r + 1) * c];
            row.iter_mut().zip(p).for_each(|(d, &p)| *d += s * p);
            row[y] -= s;
        }
    }
    fn backward_graph(&self, cx: &mut GraphBackward<'_, T>) -> Result<()> {
        // dz = (softmax(z) - onehot(y)) * g / batch, softmax recomputed as a graph op so that
        // its own derivative (the softmax Jacobian, the Hessian of the cost) is on the tape.
        let (z, g) = (cx.input(0), cx.grad_output());
        let b = self.labels.len();
        let gr = cx.graph();
        let onehot = one_hot(gr, z, &self.labels, T::one())?;
        let p = gr.softmax(z)?;
        let d = gr.sub(p, onehot)?;
        let gs = gr.scale(g, T::one() / T::of(b.max(1) as f64))?;
        let dz = gr.mul(d, gs)?;
        cx.add_grad(0, dz)
    }
    fn recycle(self: Box<Self>) -> Vec<Vec<T>> {
        vec![self.probs]
    }
}

/// `c` at each row's label, 0 elsewhere, of `z`'s shape: a constant on the tape.
fn one_hot<T: Float>(g: &mut Graph<T>, z: Var, labels: &[usize], c: T) -> Result<Var> {
    let s = g.value(z)?.shape();
    let cols = s.numel() / labels.len().max(1);
    let mut t = g.alloc_zeros(s);
    for (r, &y) in labels.iter().enumerate() {
        t.data_mut()[r * cols + y] = c;
    }
    Ok(g.input(t))
}

struct Nll {
    labels: Vec<usize>,
}

impl<T: Float> Op<T> for Nll {
    fn name(&self) -> &'static str {
        "nll"
    }
    fn backward(&self, cx: &mut Backward<'_, T>) {
        let b = self.labels.len();
        let c = cx.input(0).numel() / b.max(1);
        let s = cx.grad_output().data()[0] / T::of(b as f64);
        let d = cx.grad(0).data_mut();
        for (r, &y) in self.labels.iter().enumerate() {
            d[r * c + y] -= s;
        }
    }
    fn backward_graph(&self, cx: &mut GraphBackward<'_, T>) -> Result<()> {
        // d logp = -onehot(y) * g / batch: constant but for g.
        let (logp, g) = (cx.input(0), cx.grad_output());
        let b = self.labels.len().max(1);
        let gr = cx.graph();
        let m = one_hot(gr, logp, &self.labels, -T::one() / T::of(b as f64))?;
        let d = gr.mul(m, g)?;
        cx.add_grad(0, d)
    }
}

struct SigmoidCe;

impl<T: Float> Op<T> for SigmoidCe {
    fn name(&self) -> &'static str {
        "sigmoid_cross_entropy"
    }
    fn backward(&self, cx: &mut Backward<'_, T>) {
        // C = mean_b sum [max(z,0) - z y + ln(1 + e^-|z|)]: dC/dz = (sigmoid(z) - y)/B,
        // dC/dy = -z/B.
        let (z, y) = (cx.input(0), cx.input(1));
        let b = z.dims()[0].max(1);
        let s = cx.grad_output().data()[0] / T::of(b as f64);
        if cx.needs_grad(0) {
            let d = cx.grad(0).data_mut();
            for ((d, &z), &y) in d.iter_mut().zip(z.data()).zip(y.data()) {
                *d += s * (sigmoid(z) - y);
            }
        }
        if cx.needs_grad(1) {
            let d = cx.grad(1).data_mut();
            d.iter_mut().zip(z.data()).for_each(|(d, &z)| *d -= s * z);
        }
    }
    fn backward_graph(&self, cx: &mut GraphBackward<'_, T>) -> Result<()> {
        let (z, y, g) = (cx.input(0), cx.input(1), cx.grad_output());
        let gr = cx.graph();
        let b = gr.value(z)?.dims()[0].max(1);
        let gs = gr.scale(g, T::one() / T::of(b as f64))?;
        if cx.needs_grad(0) {
            let gr = cx.graph();
            let a = gr.sigmoid(z)?;
            let d = gr.sub(a, y)?;
            let dz = gr.mul(d, gs)?;
            cx.add_grad(0, dz)?;
        }
        if cx.needs_grad(1) {
            let gr = cx.graph();
            let ngs = gr.neg(gs)?;
            let dy = gr.mul(z, ngs)?;
            cx.add_grad(1, dy)?;
        }
        Ok(())
    }
}

struct Quadratic;

impl<T: Float> Op<T> for Quadratic {
    fn name(&self) -> &'static str {
        "quadratic_cost"
    }
    fn backward(&self, cx: &mut Backward<'_, T>) {
        // C = mean_b 0.5 ||a - y||^2: dC/da = (a - y)/B, dC/dy = -(a - y)/B.
        let (a, y) = (cx.input(0), cx.input(1));
        let b = a.dims().first().copied().unwrap_or(1).max(1);
        let s = cx.grad_output().data()[0] / T::of(b as f64);
        for (k, sign) in [(0, T::one()), (1, -T::one())] {
            if cx.needs_grad(k) {
                let d = cx.grad(k).data_mut();
                for ((d, &a), &y) in d.iter_mut().zip(a.data()).zip(y.data()) {
                    *d += sign * s * (a - y);
                }
            }
        }
    }
    fn backward_graph(&self, cx: &mut GraphBackward<'_, T>) -> Result<()> {
        let (a, y, g) = (cx.input(0), cx.input(1), cx.grad_output());
        let gr = cx.graph();
        let b = gr.value(a)?.dims().first().copied().unwrap_or(1).max(1);
        let gs = gr.scale(g, T::one() / T::of(b as f64))?;
        let d = gr.sub(a, y)?;
        let da = gr.mul(d, gs)?;
        cx.add_grad(0, da)?;
        if cx.needs_grad(1) {
            let dy = cx.graph().neg(da)?;
            cx.add_grad(1, dy)?;
        }
        Ok(())
    }
}

struct SumSquares;

impl<T: Float> Op<T> for SumSquares {
    fn name(&self) -> &'static str {
        "sum_squares"
    }
    fn backward(&self, cx: &mut Backward<'_, T>) {
        // d/dx sum x^2 = 2x: kept as the number 2 for a parameter a consumer may take unformed.
        let s = cx.grad_output().data()[0] * T::of(2.0);
        cx.add_scaled_input(0, s);
    }
    fn backward_graph(&self, cx: &mut GraphBackward<'_, T>) -> Result<()> {
        let (x, g) = (cx.input(0), cx.grad_output());
        let g2 = cx.graph().scale(g, T::of(2.0))?;
        let dx = cx.graph().mul(x, g2)?;
        cx.add_grad(0, dx)
    }
}

struct SumAbs;

impl<T: Float> Op<T> for SumAbs {
    fn name(&self) -> &'static str {
        "sum_abs"
    }
    fn backward(&self, cx: &mut Backward<'_, T>) {
        // d/dx sum |x| = sign(x), taken as 0 at 0 (the subgradient the book's L1 update uses).
        let g = cx.grad_output().data()[0];
        let x = cx.input(0);
        for (d, &v) in cx.grad(0).data_mut().iter_mut().zip(x.data()) {
            if v > T::zero() {
                *d += g;
            } else if v < T::zero() {
                *d -= g;
            }
        }
    }
    fn backward_graph(&self, cx: &mut GraphBackward<'_, T>) -> Result<()> {
        // sign(x) * g, the sign a constant (0 at 0, as above): |x| has no curvature off 0.
        let (x, g) = (cx.input(0), cx.grad_output());
        let gr = cx.graph();
        let sign = gr.constant_map(x, |v| {
            if v > T::zero() {
                T::one()
            } else if v < T::zero() {
                -T::one()
            } else {
                T::zero()
            }
        })?;
        let dx = gr.mul(sign, g)?;
        cx.add_grad(0, dx)
    }
}

fn same_shape(op: &'static str, a: Shape, b: Shape) -> Result<()> {
    if a != b || a.ndim() == 0 {
        return Err(TensorError::ShapeMismatch {
            op,
            lhs: a,
            rhs: b,
            why: "prediction and target must have the same [batch, ...] shape".into(),
        }
        .into());
    }
    Ok(())
}

impl<T: Float> Graph<T> {
    /// `-mean_b log softmax(logits)[b, labels[b]]`: network3's log-likelihood cost on a
    /// softmax layer, fused and stable.
    pub fn softmax_cross_entropy(&mut self, logits: Var, labels: &[usize]) -> Result<Var> {
        self.check(logits, "softmax_cross_entropy")?;
        let (b, c) = check_labels("softmax_cross_entropy", self.val(logits).shape(), labels)?;
        let mut probs = self.alloc_buf(b * c);
        softmax_rows_into(self.val(logits).data(), c, &mut probs);
        let loss: T = labels
            .iter()
            .enumerate()
            .map(|(r, &y)| -probs[r * c + y].max(T::min_positive_value()).ln())
            .sum::<T>()
            / T::of(b.max(1) as f64);
        let mut out = self.alloc(Shape::scalar());
        out.data_mut()[0] = loss;
        self.push_op(
            Box::new(SoftmaxCe {
                probs,
                labels: labels.to_vec(),
            }),
            &[logits],
            out,
        )
    }

    /// `-mean_b logp[b, labels[b]]` for log-probabilities (e.g. from `log_softmax`).
    pub fn nll(&mut self, logp: Var, labels: &[usize]) -> Result<Var> {
        self.check(logp, "nll")?;
        let (b, c) = check_labels("nll", self.val(logp).shape(), labels)?;
        let v = self.val(logp).data();
        let loss = -labels
            .iter()
            .enumerate()
            .map(|(r, &y)| v[r * c + y])
            .sum::<T>()
            / T::of(b.max(1) as f64);
        let mut out = self.alloc(Shape::scalar());
        out.data_mut()[0] = loss;
        self.push_op(
            Box::new(Nll {
                labels: labels.to_vec(),
            }),
            &[logp],
            out,
        )
    }

    /// Cross-entropy of `sigmoid(z)` against targets `y` in [0, 1]: network2's
    /// `CrossEntropyCost`, taking the pre-activation `z` so it is stable and its gradient is
    /// `a - y`. Mean over the batch (rows) of the per-example sum.
    pub fn sigmoid_cross_entropy(&mut self, z: Var, y: Var) -> Result<Var> {
        self.check(z, "sigmoid_cross_entropy")?;
        self.check(y, "sigmoid_cross_entropy")?;
        let (zs, ys) = (self.val(z).shape(), self.val(y).shape());
        same_shape("sigmoid_cross_entropy", zs, ys)?;
        let b = zs[0].max(1);
        let s: T = self
            .val(z)
            .data()
            .iter()
            .zip(self.val(y).data())
            .map(|(&z, &y)| z.max(T::zero()) - z * y + (-z.abs()).exp().ln_1p())
            .sum();
        let mut out = self.alloc(Shape::scalar());
        out.data_mut()[0] = s / T::of(b as f64);
        self.push_op(Box::new(SigmoidCe), &[z, y], out)
    }

    /// The quadratic cost `mean_b 0.5 ||a - y||^2` of network.py.
    pub fn quadratic_cost(&mut self, a: Var, y: Var) -> Result<Var> {
        self.check(a, "quadratic_cost")?;
        self.check(y, "quadratic_cost")?;
        let (as_, ys) = (self.val(a).shape(), self.val(y).shape());
        same_shape("quadratic_cost", as_, ys)?;
        let b = as_[0].max(1);
        let s: T = self
            .val(a)
            .data()
            .iter()
            .zip(self.val(y).data())
            .map(|(&a, &y)| (a - y) * (a - y))
            .sum();
        let mut out = self.alloc(Shape::scalar());
        out.data_mut()[0] = T::of(0.5) * s / T::of(b as f64);
        self.push_op(Box::new(Quadratic), &[a, y], out)
    }

    /// `sum |x|`, the L1 regulariser's building block (gradient `sign(x)`, 0 at 0).
    pub fn sum_abs(&mut self, x: Var) -> Result<Var> {
        self.check(x, "sum_abs")?;
        let s = self.val(x).data().iter().map(|v| v.abs()).sum();
        let mut out = self.alloc(Shape::scalar());
        out.data_mut()[0] = s;
        self.push_op(Box::new(SumAbs), &[x], out)
    }

    /// `sum x^2`, the L2 regulariser's building block.
    pub fn sum_squares(&mut self, x: Var) -> Result<Var> {
        self.check(x, "sum_squares")?;
        // A parameter a gradient consumer just changed: it summed the squares on the way.
        let s = match self.cached_sum_squares(x) {
            Some(s) => s,
            None => tensor::sum_squares(self.val(x).data()),
        };
        let mut out = self.alloc(Shape::scalar());
        out.data_mut()[0] = s;
        self.push_op(Box::new(SumSquares), &[x], out)
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{check, check2, check2_on, check_on, randoms};
    use tensor::Tensor;

    #[test]
    fn fused_costs() {
        check(&[&[4, 5]], |g, v| {
            g.softmax_cross_entropy(v[0], &[0, 4, 2, 2])
        });
        check(&[&[4, 5]], |g, v| {
            let l = g.log_softmax(v[0])?;
            g.nll(l, &[1, 3, 0, 4])
        });
        let mut ins = randoms(&[&[3, 4]], 5);
        ins.push(
            Tensor::from_vec((0..12).map(|i| (i % 5) as f64 / 4.0).collect(), &[3, 4]).unwrap(),
        );
        check_on(ins.clone(), |g, v| g.sigmoid_cross_entropy(v[0], v[1]));
        check_on(ins, |g, v| g.quadratic_cost(v[0], v[1]));
        check(&[&[3, 4]], |g, v| g.sum_squares(v[0]));
    }

    #[test]
    fn fused_costs_second_order() {
        check2(&[&[4, 5]], |g, v| {
            g.softmax_cross_entropy(v[0], &[0, 4, 2, 2])
        });
        check2(&[&[4, 5]], |g, v| {
            let l = g.log_softmax(v[0])?;
            g.nll(l, &[1, 3, 0, 4])
        });
        // nll is linear in its input: its curvature shows only composed.
        check2(&[&[4, 5]], |g, v| {
            let e = g.tanh(v[0])?;
            let n = g.nll(e, &[1, 3, 0, 4])?;
            g.mul(n, n)
        });
        let mut ins = randoms(&[&[3, 4]], 5);
        ins.push(
            Tensor::from_vec((0..12).map(|i| (i % 5) as f64 / 4.0).collect(), &[3, 4]).unwrap(),
        );
        check2_on(ins.clone(), |g, v| g.sigmoid_cross_entropy(v[0], v[1]));
        check2_on(ins.clone(), |g, v| g.quadratic_cost(v[0], v[1]));
        // The quadratic cost of a sigmoid layer (network.py): curvature of both.
        check2_on(ins, |g, v| {
            let a = g.sigmoid(v[0])?;
            g.quadratic_cost(a, v[1])
        });
        check2(&[&[3, 4]], |g, v| g.sum_squares(v[0]));
        check2(&[&[3, 4]], |g, v| g.sum_abs(v[0]).and_then(|s| g.mul(s, s)));
        // A softmax cross-entropy of a small linear model: the Hessian-vector products of
        // network3's cost in the weights and the data.
        check2(&[&[4, 3], &[5, 3], &[5]], |g, v| {
            let z = g.linear(v[0], v[1], Some(v[2]))?;
            g.softmax_cross_entropy(z, &[0, 4, 2, 1])
        });
    }

    #[test]
    fn sum_abs_value_and_gradient_away_from_zero() {
        // The random inputs are at least 0.1 from 0, where |x| is differentiable.
        crate::testing::check_value(
            &[&[3, 4]],
            |g, v| g.sum_abs(v[0]),
            |x| vec![x[0].data().iter().map(|v| v.abs()).sum()],
        );
        let mut g = crate::Graph::<f64>::new();
        let x = g.leaf(Tensor::from_vec(vec![-2.0, 0.0, 3.0], &[3]).unwrap());
        let s = g.sum_abs(x).unwrap();
        g.backward(s).unwrap();
        assert_eq!(g.grad(x).unwrap().data(), &[-1.0, 0.0, 1.0]);
    }

    #[test]
    fn fused_softmax_ce_equals_unfused_value() {
        let x = randoms(&[&[4, 6]], 9).remove(0);
        let mut g = crate::Graph::<f64>::new();
        let v = g.input(x);
        let fused = g.softmax_cross_entropy(v, &[5, 0, 3, 3]).unwrap();
        let l = g.log_softmax(v).unwrap();
        let unfused = g.nll(l, &[5, 0, 3, 3]).unwrap();
        let (a, b) = (
            g.value(fused).unwrap().data()[0],
            g.value(unfused).unwrap().data()[0],
        );
        assert!((a - b).abs() < 1e-12, "{a} vs {b}");
    }

    #[test]
    fn sigmoid_ce_matches_network2_formula() {
        // network2: sum(-y ln a - (1-y) ln(1-a)) with a = sigmoid(z).
        let (z, y) = (0.3f64, 0.8f64);
        let a = 1.0 / (1.0 + (-z).exp());
        let want = -y * a.ln() - (1.0 - y) * (1.0 - a).ln();
        let mut g = crate::Graph::<f64>::new();
        let zv = g.input(Tensor::from_vec(vec![z], &[1, 1]).unwrap());
        let yv = g.input(Tensor::from_vec(vec![y], &[1, 1]).unwrap());
        let c = g.sigmoid_cross_entropy(zv, yv).unwrap();
        assert!((g.value(c).unwrap().data()[0] - want).abs() < 1e-14);
    }

    #[test]
    fn bad_labels_are_errors() {
        let mut g = crate::Graph::<f32>::new();
        let x = g.input(Tensor::zeros(&[2, 10]).unwrap());
        assert!(g
            .softmax_cross_entropy(x, &[1])
            .unwrap_err()
            .to_string()
            .contains("1 labels for a batch of 2"));
        assert!(g
            .softmax_cross_entropy(x, &[1, 10])
            .unwrap_err()
            .to_string()
            .contains("label 10"));
    }
}
