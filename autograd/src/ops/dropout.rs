//! Dropout with a mask given by the caller (the layer owns the randomness, so a gradient
//! check can fix it). `y = x * mask`; network3's masks are 0/1, inverted dropout's 0/(1/(1-p)).

use crate::{Backward, Graph, GraphBackward, Op, Result, Var};
use tensor::{Float, Tensor, TensorError};

struct Dropout<T> {
    mask: Vec<T>,
}

impl<T: Float> Op<T> for Dropout<T> {
    fn name(&self) -> &'static str {
        "dropout"
    }
    fn backward(&self, cx: &mut Backward<'_, T>) {
        let g = cx.grad_output();
        let d = cx.grad(0).data_mut();
        for ((d, &g), &m) in d.iter_mut().zip(g.data()).zip(&self.mask) {
            *d += g * m;
        }
    }
    fn backward_graph(&self, cx: &mut GraphBackward<'_, T>) -> Result<()> {
        // dx = g * mask, the mask a constant on the tape.
        let (x, g) = (cx.input(0), cx.grad_output());
        let gr = cx.graph();
        let s = gr.value(x)?.shape();
        let mut m = gr.alloc(s);
        m.data_mut().copy_from_slice(&self.mask);
        let m = gr.input(m);
        let dx = gr.mul(g, m)?;
        cx.add_grad(0, dx)
    }
    fn recycle(self: Box<Self>) -> Vec<Vec<T>> {
        vec![self.mask]
    }
}

impl<T: Float> Graph<T> {
    /// `x * mask` elementwise, with `mask` of `x`'s shape (kept for the backward).
    pub fn dropout(&mut self, x: Var, mask: Tensor<T>) -> Result<Var> {
        self.check(x, "dropout")?;
        let s = self.val(x).shape();
        if mask.shape() != s {
            return Err(TensorError::ShapeMismatch {
                op: "dropout",
                lhs: s,
                rhs: mask.shape(),
                why: "mask must have the input's shape".into(),
            }
            .into());
        }
        let mut out = self.alloc(s);
        for ((o, &x), &m) in out
            .data_mut()
            .iter_mut()
            .zip(self.val(x).data())
            .zip(mask.data())
        {
            *o = x * m;
        }
        self.push_op(
            Box::new(Dropout {
                mask: mask.into_vec(),
            }),
            &[x],
            out,
        )
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{check, check2};
    use tensor::Tensor;

    #[test]
    fn dropout_with_fixed_mask() {
        let mask = Tensor::from_vec(
            (0..12)
                .map(|i| if i % 3 == 0 { 0.0 } else { 2.0 })
                .collect(),
            &[3, 4],
        )
        .unwrap();
        check(&[&[3, 4]], |g, v| g.dropout(v[0], mask.clone()));
        // Second order: linear in x with a fixed mask; a square gives it curvature.
        check2(&[&[3, 4]], |g, v| {
            g.dropout(v[0], mask.clone()).and_then(|y| g.mul(y, y))
        });
    }
}
