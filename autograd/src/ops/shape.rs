//! Layout ops: 2-D transpose and reshape.

use crate::{Backward, Graph, GraphBackward, Op, Result, Var};
use tensor::{unary::transpose_into, Float, Shape, TensorError};

struct Transpose;

impl<T: Float> Op<T> for Transpose {
    fn name(&self) -> &'static str {
        "transpose"
    }
    fn backward(&self, cx: &mut Backward<'_, T>) {
        // The adjoint of a transpose is the transpose of the gradient.
        let g = cx.grad_output();
        let (r, c) = (g.dims()[0], g.dims()[1]);
        let mut t = cx.scratch(r * c);
        transpose_into(g.data(), r, c, &mut t);
        cx.grad(0)
            .data_mut()
            .iter_mut()
            .zip(&t)
            .for_each(|(d, &v)| *d += v);
        cx.give_back(t);
    }
    fn backward_graph(&self, cx: &mut GraphBackward<'_, T>) -> Result<()> {
        let g = cx.grad_output();
        let dx = cx.graph().transpose(g)?;
        cx.add_grad(0, dx)
    }
}

struct Reshape;

impl<T: Float> Op<T> for Reshape {
    fn name(&self) -> &'static str {
        "reshape"
    }
    fn backward(&self, cx: &mut Backward<'_, T>) {
        let g = cx.grad_output();
        cx.grad(0)
            .data_mut()
            .iter_mut()
            .zip(g.data())
            .for_each(|(d, &v)| *d += v);
    }
    fn backward_graph(&self, cx: &mut GraphBackward<'_, T>) -> Result<()> {
        let (x, g) = (cx.input(0), cx.grad_output());
        let dims = cx.graph().value(x)?.shape();
        let dx = cx.graph().reshape(g, dims.dims())?;
        cx.add_grad(0, dx)
    }
}

impl<T: Float> Graph<T> {
    /// The transpose of a 2-D value.
    pub fn transpose(&mut self, x: Var) -> Result<Var> {
        self.check(x, "transpose")?;
        let s = self.val(x).shape();
        if s.ndim() != 2 {
            return Err(TensorError::InvalidShape {
                op: "transpose",
                shape: s,
                why: "needs a 2-D value".into(),
            }
            .into());
        }
        let mut out = self.alloc(Shape::new(&[s[1], s[0]])?);
        transpose_into(self.val(x).data(), s[0], s[1], out.data_mut());
        self.push_op(Box::new(Transpose), &[x], out)
    }

    /// The same elements under new dimensions (row-major order kept).
    pub fn reshape(&mut self, x: Var, dims: &[usize]) -> Result<Var> {
        self.check(x, "reshape")?;
        let s = self.val(x).shape();
        let to = Shape::new(dims)?;
        if to.numel() != s.numel() {
            return Err(TensorError::ShapeMismatch {
                op: "reshape",
                lhs: s,
                rhs: to,
                why: "element counts differ".into(),
            }
            .into());
        }
        let mut out = self.alloc(to);
        out.data_mut().copy_from_slice(self.val(x).data());
        self.push_op(Box::new(Reshape), &[x], out)
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{check, check2};

    #[test]
    fn transpose_and_reshape_gradients() {
        check(&[&[3, 5]], |g, v| g.transpose(v[0]));
        check(&[&[2, 3, 4]], |g, v| g.reshape(v[0], &[6, 4]));
        // Transpose then matmul: gradients must route back through the transpose.
        check(&[&[3, 5], &[3, 2]], |g, v| {
            let t = g.transpose(v[0])?;
            g.matmul(t, v[1])
        });
    }

    #[test]
    fn second_order() {
        check2(&[&[3, 5]], |g, v| {
            g.transpose(v[0]).and_then(|t| g.mul(t, t))
        });
        check2(&[&[2, 3, 4]], |g, v| {
            g.reshape(v[0], &[6, 4]).and_then(|r| g.tanh(r))
        });
        check2(&[&[3, 5], &[3, 2]], |g, v| {
            let t = g.transpose(v[0])?;
            let p = g.matmul(t, v[1])?;
            g.sigmoid(p)
        });
    }

    #[test]
    fn reshape_rejects_wrong_count() {
        let mut g = crate::Graph::<f32>::new();
        let x = g.input(tensor::Tensor::zeros(&[2, 3]).unwrap());
        assert!(g.reshape(x, &[4, 2]).is_err());
    }
}
