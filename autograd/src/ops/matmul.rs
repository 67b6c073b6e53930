//! Matrix products: `matmul(a, b)` and the fused fully-connected `linear(x, w, b) = x w^T + b`
//! with `w` stored `[out, in]` as PyTorch and the book store it.

use crate::{AutogradError, Backward, Graph, GraphBackward, Op, Result, Var};
use tensor::{gemm, Float, MatMut, Shape, TensorError};

struct MatMul;

impl<T: Float> Op<T> for MatMul {
    fn name(&self) -> &'static str {
        "matmul"
    }
    fn backward(&self, cx: &mut Backward<'_, T>) {
        // C = A B: dA = dC B^T, dB = A^T dC.
        let (a, b, g) = (cx.input(0), cx.input(1), cx.grad_output());
        cx.add_product(0, g.mat(), b.mat().t());
        cx.add_product(1, a.mat().t(), g.mat());
    }
    fn backward_graph(&self, cx: &mut GraphBackward<'_, T>) -> Result<()> {
        let (a, b, g) = (cx.input(0), cx.input(1), cx.grad_output());
        if cx.needs_grad(0) {
            let bt = cx.graph().transpose(b)?;
            let da = cx.graph().matmul(g, bt)?;
            cx.add_grad(0, da)?;
        }
        if cx.needs_grad(1) {
            let at = cx.graph().transpose(a)?;
            let db = cx.graph().matmul(at, g)?;
            cx.add_grad(1, db)?;
        }
        Ok(())
    }
}

struct Linear;

impl<T: Float> Op<T> for Linear {
    fn name(&self) -> &'static str {
        "linear"
    }
    fn backward(&self, cx: &mut Backward<'_, T>) {
        // Y = X W^T + b: dX = dY W, dW = dY^T X, db = sum over rows of dY.
        let (x, w, g) = (cx.input(0), cx.input(1), cx.grad_output());
        let n = w.dims()[0];
        cx.add_product(0, g.mat(), w.mat());
        cx.add_product(1, g.mat().t(), x.mat());
        bias_grad(cx, n);
    }

    fn linear_form(&self) -> Option<(usize, usize)> {
        Some((0, 1))
    }

    fn backward_graph(&self, cx: &mut GraphBackward<'_, T>) -> Result<()> {
        // The same three products as plain graph ops (no fusing, no handover: a recorded
        // gradient is for differentiating again, not for the optimiser's fast path).
        let (x, w, g) = (cx.input(0), cx.input(1), cx.grad_output());
        if cx.needs_grad(0) {
            let dx = cx.graph().matmul(g, w)?;
            cx.add_grad(0, dx)?;
        }
        if cx.needs_grad(1) {
            let gt = cx.graph().transpose(g)?;
            let dw = cx.graph().matmul(gt, x)?;
            cx.add_grad(1, dw)?;
        }
        if cx.needs_grad(2) {
            // The bias may be [n] or any shape of n elements.
            let b = cx.input(2);
            let dims = cx.graph().value(b)?.shape();
            let db = cx.graph().sum_axis(g, 0, false)?;
            let db = cx.graph().reshape(db, dims.dims())?;
            cx.add_grad(2, db)?;
        }
        Ok(())
    }
}

/// `db += sum over rows of dY`.
fn bias_grad<T: Float>(cx: &mut Backward<'_, T>, n: usize) {
    if cx.needs_grad(2) {
        let g = cx.grad_output();
        let db = cx.grad(2).data_mut();
        for row in g.data().chunks_exact(n) {
            db.iter_mut().zip(row).for_each(|(d, &v)| *d += v);
        }
    }
}

fn mismatch(op: &'static str, lhs: Shape, rhs: Shape, why: String) -> AutogradError {
    TensorError::ShapeMismatch { op, lhs, rhs, why }.into()
}

impl<T: Float> Graph<T> {
    /// The matrix product of 2-D `a` `[m, k]` and `b` `[k, n]`.
    pub fn matmul(&mut self, a: Var, b: Var) -> Result<Var> {
        self.check(a, "matmul")?;
        self.check(b, "matmul")?;
        let (sa, sb) = (self.val(a).shape(), self.val(b).shape());
        if sa.ndim() != 2 || sb.ndim() != 2 || sa[1] != sb[0] {
            return Err(mismatch("matmul", sa, sb, "need [m, k] x [k, n]".into()));
        }
        let (m, n) = (sa[0], sb[1]);
        let mut out = self.alloc(Shape::new(&[m, n])?);
        let (av, bv) = (self.val(a).mat(), self.val(b).mat());
        gemm(
            T::one(),
            av,
            bv,
            T::zero(),
            MatMut::new(out.data_mut(), m, n),
        );
        self.push_op(Box::new(MatMul), &[a, b], out)
    }

    /// Fully connected: `x [batch, in] . w^T [in, out] + b [out]`, one fused op.
    pub fn linear(&mut self, x: Var, w: Var, b: Option<Var>) -> Result<Var> {
        self.check(x, "linear")?;
        self.check(w, "linear")?;
        let (sx, sw) = (self.val(x).shape(), self.val(w).shape());
        if sx.ndim() != 2 || sw.ndim() != 2 || sx[1] != sw[1] {
            return Err(mismatch(
                "linear",
                sx,
                sw,
                format!("input [batch, n_in] needs weights [n_out, n_in] with the same n_in; got n_in {} vs weights for {}", sx.dims().get(1).copied().unwrap_or(0), sw.dims().get(1).copied().unwrap_or(0)),
            ));
        }
        let (m, n) = (sx[0], sw[0]);
        let mut out = self.alloc(Shape::new(&[m, n])?);
        let keep = match b {
            Some(b) => {
                self.check(b, "linear")?;
                let bv = self.val(b);
                if bv.numel() != n {
                    return Err(mismatch(
                        "linear",
                        sw,
                        bv.shape(),
                        format!("bias needs {n} elements"),
                    ));
                }
                for row in out.data_mut().chunks_exact_mut(n) {
                    row.copy_from_slice(bv.data());
                }
                T::one()
            }
            None => T::zero(),
        };
        let (xv, wv) = (self.val(x).mat(), self.val(w).mat().t());
        gemm(T::one(), xv, wv, keep, MatMut::new(out.data_mut(), m, n));
        match b {
            Some(b) => self.push_op(Box::new(Linear), &[x, w, b], out),
            None => self.push_op(Box::new(Linear), &[x, w], out),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{check, check2};

    #[test]
    fn matmul_gradients() {
        check(&[&[3, 5], &[5, 4]], |g, v| g.matmul(v[0], v[1]));
        check(&[&[1, 7], &[7, 1]], |g, v| g.matmul(v[0], v[1]));
    }

    #[test]
    fn linear_gradients_with_and_without_bias() {
        check(&[&[4, 6], &[3, 6], &[3]], |g, v| {
            g.linear(v[0], v[1], Some(v[2]))
        });
        check(&[&[4, 6], &[3, 6]], |g, v| g.linear(v[0], v[1], None));
    }

    #[test]
    fn shared_weights_accumulate_into_an_existing_gradient() {
        // The second use of w finds its gradient already started (the non-fresh path).
        check(&[&[4, 6], &[3, 6], &[3]], |g, v| {
            let a = g.linear(v[0], v[1], Some(v[2]))?;
            let b = g.linear(v[0], v[1], None)?;
            let t = g.tanh(a)?;
            g.mul(t, b)
        });
        check(&[&[3, 3], &[3, 3]], |g, v| {
            let a = g.matmul(v[0], v[1])?;
            g.matmul(a, v[1])
        });
    }

    #[test]
    fn second_order() {
        // A product is bilinear: its second derivative is all mixed terms, which a
        // nonlinearity on the output brings into play with the curvature of the output.
        check2(&[&[3, 5], &[5, 4]], |g, v| g.matmul(v[0], v[1]));
        check2(&[&[3, 5], &[5, 4]], |g, v| {
            g.matmul(v[0], v[1]).and_then(|y| g.tanh(y))
        });
        check2(&[&[4, 6], &[3, 6], &[3]], |g, v| {
            g.linear(v[0], v[1], Some(v[2])).and_then(|y| g.sigmoid(y))
        });
        check2(&[&[4, 6], &[3, 6]], |g, v| {
            g.linear(v[0], v[1], None).and_then(|y| g.mul(y, y))
        });
        // A bias of shape [1, n] is summed back to its own shape.
        check2(&[&[4, 6], &[3, 6], &[1, 3]], |g, v| {
            g.linear(v[0], v[1], Some(v[2])).and_then(|y| g.exp(y))
        });
        // Shared weights: the shares of both uses summed, at both orders.
        check2(&[&[3, 3], &[3, 3]], |g, v| {
            let a = g.matmul(v[0], v[1])?;
            let b = g.matmul(a, v[1])?;
            g.tanh(b)
        });
    }

    #[test]
    fn linear_equals_matmul_transpose_plus_bias() {
        use tensor::Tensor;
        let mut g = crate::Graph::<f64>::new();
        let x = g.input(Tensor::from_vec(vec![1., 2., 3., 4., 5., 6.], &[2, 3]).unwrap());
        let w = g.input(Tensor::from_vec(vec![1., 0., -1., 2., 1., 0.], &[2, 3]).unwrap());
        let b = g.input(Tensor::from_vec(vec![0.5, -0.5], &[2]).unwrap());
        let y = g.linear(x, w, Some(b)).unwrap();
        // rows: [1-3+.5, 2+2-.5] = [-1.5, 3.5]; [4-6+.5, 8+5-.5] = [-1.5, 12.5]
        assert_eq!(g.value(y).unwrap().data(), &[-1.5, 3.5, -1.5, 12.5]);
        let bad = g.input(Tensor::zeros(&[2, 4]).unwrap());
        assert!(g
            .linear(bad, w, Some(b))
            .unwrap_err()
            .to_string()
            .contains("n_in"));
    }
}
