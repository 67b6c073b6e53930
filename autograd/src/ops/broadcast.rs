//! Broadcasting as ops of their own: `broadcast_to` (NumPy's rules: trailing dimensions
//! aligned, 1 stretches) and its adjoint `sum_to`, which sums a value back to a shape that
//! broadcasts to it. Each is the other's backward. The first-order backward of a broadcasting
//! add or mul sums its gradient in place (`tensor::reduce_to_shape`); a gradient recorded on
//! the tape needs that summation as an op, so that it can be differentiated again.

use crate::{Backward, Graph, GraphBackward, Op, Result, Var};
use tensor::{
    binary, binary_into, broadcast_shapes, reduce_to_shape, BinaryOp, Float, Shape, Tensor,
    TensorError,
};

/// `x` materialised at the broadcast shape `s` (x + 0).
fn broadcast_value<T: Float>(x: &Tensor<T>, s: Shape) -> Result<Tensor<T>> {
    if x.shape() == s {
        return Ok(x.clone());
    }
    Ok(binary(BinaryOp::Add, &Tensor::zeros_shape(s), x)?)
}

struct BroadcastTo;

impl<T: Float> Op<T> for BroadcastTo {
    fn name(&self) -> &'static str {
        "broadcast_to"
    }
    fn backward(&self, cx: &mut Backward<'_, T>) {
        let g = cx.grad_output();
        reduce_to_shape(g, None, cx.grad(0)).expect("shapes checked in forward");
    }
    fn backward_graph(&self, cx: &mut GraphBackward<'_, T>) -> Result<()> {
        let g = cx.grad_output();
        cx.add_grad_broadcast(0, g)
    }
}

struct SumTo;

impl<T: Float> Op<T> for SumTo {
    fn name(&self) -> &'static str {
        "sum_to"
    }
    fn backward(&self, cx: &mut Backward<'_, T>) {
        let s = cx.input(0).shape();
        let b = broadcast_value(cx.grad_output(), s).expect("shapes checked in forward");
        cx.grad(0)
            .data_mut()
            .iter_mut()
            .zip(b.data())
            .for_each(|(d, &v)| *d += v);
    }
    fn backward_graph(&self, cx: &mut GraphBackward<'_, T>) -> Result<()> {
        let (x, g) = (cx.input(0), cx.grad_output());
        let dims = cx.graph().value(x)?.shape();
        let dx = cx.graph().broadcast_to(g, dims.dims())?;
        cx.add_grad(0, dx)
    }
}

impl<T: Float> Graph<T> {
    /// `x` repeated to the shape `dims` it broadcasts to (NumPy's rules).
    pub fn broadcast_to(&mut self, x: Var, dims: &[usize]) -> Result<Var> {
        self.check(x, "broadcast_to")?;
        let (from, to) = (self.val(x).shape(), Shape::new(dims)?);
        if broadcast_shapes(from, to)? != to {
            return Err(TensorError::ShapeMismatch {
                op: "broadcast_to",
                lhs: from,
                rhs: to,
                why: "the value does not broadcast to the target shape".into(),
            }
            .into());
        }
        // x + 0 at the target shape, in buffers of the graph's (a recorded gradient runs
        // this every step).
        let zeros = self.alloc_zeros(to);
        let mut out = self.alloc(to);
        let r = binary_into(BinaryOp::Add, &zeros, self.val(x), &mut out);
        self.recycle_buf(zeros.into_vec());
        r?;
        self.push_op(Box::new(BroadcastTo), &[x], out)
    }

    /// `x` summed down to `dims`, a shape that broadcasts to `x`'s: over the dimensions
    /// `dims` lacks or has as 1 (the adjoint of [`Graph::broadcast_to`]).
    pub fn sum_to(&mut self, x: Var, dims: &[usize]) -> Result<Var> {
        self.check(x, "sum_to")?;
        let (from, to) = (self.val(x).shape(), Shape::new(dims)?);
        if broadcast_shapes(to, from)? != from {
            return Err(TensorError::ShapeMismatch {
                op: "sum_to",
                lhs: from,
                rhs: to,
                why: "the target shape does not broadcast to the value's".into(),
            }
            .into());
        }
        let mut out = self.alloc_zeros(to);
        reduce_to_shape(self.val(x), None, &mut out)?;
        self.push_op(Box::new(SumTo), &[x], out)
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{check, check2, check_value};

    const CASES: [(&[usize], &[usize]); 5] = [
        (&[4], &[3, 4]),
        (&[3, 1], &[3, 4]),
        (&[], &[2, 3]),
        (&[1, 4], &[3, 4]),
        (&[2, 1, 4], &[2, 3, 4]),
    ];

    #[test]
    fn broadcast_to_and_sum_to_values() {
        // [3, 1] -> [3, 4]: each row's element repeated.
        check_value(
            &[&[3, 1]],
            |g, v| g.broadcast_to(v[0], &[3, 4]),
            |x| x[0].data().iter().flat_map(|&a| [a; 4]).collect(),
        );
        // [2, 3] -> [3]: column sums.
        check_value(
            &[&[2, 3]],
            |g, v| g.sum_to(v[0], &[3]),
            |x| {
                (0..3)
                    .map(|j| x[0].data()[j] + x[0].data()[3 + j])
                    .collect()
            },
        );
    }

    #[test]
    fn first_and_second_order() {
        for (small, big) in CASES {
            check(&[small], |g, v| g.broadcast_to(v[0], big));
            check(&[big], |g, v| g.sum_to(v[0], small));
            // Linear ops have a zero second derivative: composed with a square, the check
            // sees their backward_graph carry a non-constant gradient.
            check2(&[small], |g, v| {
                let b = g.broadcast_to(v[0], big)?;
                g.mul(b, b)
            });
            check2(&[big], |g, v| {
                let s = g.sum_to(v[0], small)?;
                g.mul(s, s)
            });
        }
    }

    #[test]
    fn shapes_that_do_not_broadcast_are_errors() {
        let mut g = crate::Graph::<f64>::new();
        let x = g.input(tensor::Tensor::zeros(&[3, 4]).unwrap());
        assert!(g.broadcast_to(x, &[4, 3]).is_err());
        assert!(g.broadcast_to(x, &[4]).is_err());
        assert!(g.sum_to(x, &[3]).is_err());
        assert!(g.sum_to(x, &[2, 3, 4]).is_err());
    }
}
