//! Broadcasting add, sub, mul, div; negation and scaling. The gradient of a broadcast operand
//! is summed back to its shape (`tensor::reduce_to_shape`).

use crate::{Backward, Graph, GraphBackward, Op, Result, Var};
use tensor::{binary_into, broadcast_shapes, reduce_to_shape, BinaryOp, Float};

struct Binary(BinaryOp);

impl<T: Float> Op<T> for Binary {
    fn name(&self) -> &'static str {
        match self.0 {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
        }
    }

    fn backward(&self, cx: &mut Backward<'_, T>) {
        let g = cx.grad_output();
        let (a, b) = (cx.input(0), cx.input(1));
        // d(a+b) = g, g; d(a-b) = g, -g; d(ab) = g*b, g*a; d(a/b) = g/b, -g*a/b^2 = -g*out/b.
        match self.0 {
            BinaryOp::Add | BinaryOp::Sub => {
                if cx.needs_grad(0) {
                    reduce_to_shape(g, None, cx.grad(0)).expect("shapes checked in forward");
                }
                if cx.needs_grad(1) {
                    if self.0 == BinaryOp::Add {
                        reduce_to_shape(g, None, cx.grad(1)).expect("shapes checked in forward");
                    } else {
                        let neg = g.map(|v| -v);
                        reduce_to_shape(&neg, None, cx.grad(1)).expect("shapes checked in forward");
                    }
                }
            }
            BinaryOp::Mul => {
                if cx.needs_grad(0) {
                    let bb = broadcast_to(b, g.shape());
                    reduce_to_shape(g, Some(&bb), cx.grad(0)).expect("shapes checked in forward");
                }
                if cx.needs_grad(1) {
                    let ab = broadcast_to(a, g.shape());
                    reduce_to_shape(g, Some(&ab), cx.grad(1)).expect("shapes checked in forward");
                }
            }
            BinaryOp::Div => {
                let bb = broadcast_to(b, g.shape());
                if cx.needs_grad(0) {
                    let inv = bb.map(|v| T::one() / v);
                    reduce_to_shape(g, Some(&inv), cx.grad(0)).expect("shapes checked in forward");
                }
                if cx.needs_grad(1) {
                    let out = cx.output();
                    let mut m = out.clone();
                    m.data_mut()
                        .iter_mut()
                        .zip(bb.data())
                        .for_each(|(o, &b)| *o = -*o / b);
                    reduce_to_shape(g, Some(&m), cx.grad(1)).expect("shapes checked in forward");
                }
            }
        }
    }
    fn backward_graph(&self, cx: &mut GraphBackward<'_, T>) -> Result<()> {
        // The same rules as graph ops; a broadcast operand's share summed back to its shape.
        let (a, b, g) = (cx.input(0), cx.input(1), cx.grad_output());
        match self.0 {
            BinaryOp::Add => {
                cx.add_grad_broadcast(0, g)?;
                cx.add_grad_broadcast(1, g)
            }
            BinaryOp::Sub => {
                cx.add_grad_broadcast(0, g)?;
                if cx.needs_grad(1) {
                    let ng = cx.graph().neg(g)?;
                    cx.add_grad_broadcast(1, ng)?;
                }
                Ok(())
            }
            BinaryOp::Mul => {
                if cx.needs_grad(0) {
                    let gb = cx.graph().mul(g, b)?;
                    cx.add_grad_broadcast(0, gb)?;
                }
                if cx.needs_grad(1) {
                    let ga = cx.graph().mul(g, a)?;
                    cx.add_grad_broadcast(1, ga)?;
                }
                Ok(())
            }
            BinaryOp::Div => {
                // q = g / b; da = q, db = -q * out (= -g a / b^2).
                let q = cx.graph().div(g, b)?;
                cx.add_grad_broadcast(0, q)?;
                if cx.needs_grad(1) {
                    let y = cx.output();
                    let qy = cx.graph().mul(q, y)?;
                    let db = cx.graph().neg(qy)?;
                    cx.add_grad_broadcast(1, db)?;
                }
                Ok(())
            }
        }
    }
}

/// `x` materialised at the broadcast shape `s` (x + 0).
fn broadcast_to<T: Float>(x: &tensor::Tensor<T>, s: tensor::Shape) -> tensor::Tensor<T> {
    if x.shape() == s {
        return x.clone();
    }
    let zero = tensor::Tensor::zeros_shape(s);
    tensor::binary(BinaryOp::Add, &zero, x).expect("broadcastable by construction")
}

struct Scale<T>(T);

impl<T: Float> Op<T> for Scale<T> {
    fn name(&self) -> &'static str {
        "scale"
    }
    fn backward(&self, cx: &mut Backward<'_, T>) {
        let (g, c) = (cx.grad_output(), self.0);
        cx.grad(0)
            .data_mut()
            .iter_mut()
            .zip(g.data())
            .for_each(|(d, &g)| *d += c * g);
    }
    fn backward_graph(&self, cx: &mut GraphBackward<'_, T>) -> Result<()> {
        let g = cx.grad_output();
        let dx = cx.graph().scale(g, self.0)?;
        cx.add_grad(0, dx)
    }
}

impl<T: Float> Graph<T> {
    fn binary_op(&mut self, op: BinaryOp, a: Var, b: Var) -> Result<Var> {
        self.check(a, "binary")?;
        self.check(b, "binary")?;
        let shape = broadcast_shapes(self.val(a).shape(), self.val(b).shape())?;
        let mut out = self.alloc(shape);
        binary_into(op, self.val(a), self.val(b), &mut out)?;
        self.push_op(Box::new(Binary(op)), &[a, b], out)
    }

    /// `a + b`, broadcasting.
    pub fn add(&mut self, a: Var, b: Var) -> Result<Var> {
        self.binary_op(BinaryOp::Add, a, b)
    }

    /// `a - b`, broadcasting.
    pub fn sub(&mut self, a: Var, b: Var) -> Result<Var> {
        self.binary_op(BinaryOp::Sub, a, b)
    }

    /// `a * b` elementwise, broadcasting.
    pub fn mul(&mut self, a: Var, b: Var) -> Result<Var> {
        self.binary_op(BinaryOp::Mul, a, b)
    }

    /// `a / b` elementwise, broadcasting.
    pub fn div(&mut self, a: Var, b: Var) -> Result<Var> {
        self.binary_op(BinaryOp::Div, a, b)
    }

    /// `c * x` for a constant `c`.
    pub fn scale(&mut self, x: Var, c: T) -> Result<Var> {
        self.check(x, "scale")?;
        let mut out = self.alloc(self.val(x).shape());
        out.data_mut()
            .iter_mut()
            .zip(self.val(x).data())
            .for_each(|(o, &v)| *o = c * v);
        self.push_op(Box::new(Scale(c)), &[x], out)
    }

    /// `-x`.
    pub fn neg(&mut self, x: Var) -> Result<Var> {
        self.scale(x, -T::one())
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{check, check2};

    #[test]
    fn add_sub_mul_div_same_shape() {
        check(&[&[3, 4], &[3, 4]], |g, v| g.add(v[0], v[1]));
        check(&[&[3, 4], &[3, 4]], |g, v| g.sub(v[0], v[1]));
        check(&[&[3, 4], &[3, 4]], |g, v| g.mul(v[0], v[1]));
        check(&[&[3, 4], &[3, 4]], |g, v| g.div(v[0], v[1]));
    }

    #[test]
    fn broadcasting_row_column_scalar_and_middle() {
        for (a, b) in [
            (&[3usize, 4][..], &[4usize][..]),
            (&[3, 4], &[3, 1]),
            (&[3, 4], &[]),
            (&[1, 4], &[3, 1]),
            (&[2, 3, 4], &[3, 1]),
            (&[2, 1, 4], &[2, 3, 1]),
        ] {
            check(&[a, b], |g, v| g.add(v[0], v[1]));
            check(&[a, b], |g, v| g.sub(v[0], v[1]));
            check(&[b, a], |g, v| g.sub(v[0], v[1]));
            check(&[a, b], |g, v| g.mul(v[0], v[1]));
            check(&[a, b], |g, v| g.div(v[0], v[1]));
            check(&[b, a], |g, v| g.div(v[0], v[1]));
        }
    }

    #[test]
    fn neg_scale_and_shared_input() {
        check(&[&[5]], |g, v| g.neg(v[0]));
        check(&[&[2, 3]], |g, v| g.scale(v[0], 2.5));
        // x * x: both inputs are the same Var; gradients must add to 2x.
        check(&[&[2, 3]], |g, v| g.mul(v[0], v[0]));
    }

    #[test]
    fn second_order_same_shape_and_broadcast() {
        // Each op composed with a nonlinear function of its output: the second derivative
        // then also runs through the first gradient's dependence on the output gradient.
        for (a, b) in [
            (&[3usize, 4][..], &[3usize, 4][..]),
            (&[3, 4], &[4]),
            (&[3, 4], &[3, 1]),
            (&[3, 4], &[]),
            (&[2, 1, 4], &[2, 3, 1]),
        ] {
            check2(&[a, b], |g, v| g.add(v[0], v[1]).and_then(|y| g.mul(y, y)));
            check2(&[b, a], |g, v| g.sub(v[0], v[1]).and_then(|y| g.mul(y, y)));
            check2(&[a, b], |g, v| g.mul(v[0], v[1]));
            check2(&[a, b], |g, v| g.mul(v[0], v[1]).and_then(|y| g.tanh(y)));
            check2(&[a, b], |g, v| g.div(v[0], v[1]));
            check2(&[b, a], |g, v| g.div(v[0], v[1]));
        }
        check2(&[&[2, 3]], |g, v| {
            g.scale(v[0], -1.5).and_then(|y| g.mul(y, y))
        });
        check2(&[&[5]], |g, v| g.neg(v[0]).and_then(|y| g.exp(y)));
        // x * x: the same Var twice, shares summed at both orders.
        check2(&[&[2, 3]], |g, v| g.mul(v[0], v[0]));
    }

    #[test]
    fn incompatible_shapes_are_an_error() {
        let mut g = crate::Graph::<f32>::new();
        let a = g.input(tensor::Tensor::zeros(&[2, 3]).unwrap());
        let b = g.input(tensor::Tensor::zeros(&[2]).unwrap());
        let e = g.add(a, b).unwrap_err().to_string();
        assert!(e.contains("[2, 3]") && e.contains("[2]"), "{e}");
    }
}
