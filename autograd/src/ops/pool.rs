//! k x k non-overlapping max-pooling over NCHW, keeping the argmax for the backward.

use crate::{Backward, Graph, Op, Result, Var};
use tensor::pool::{maxpool_backward, maxpool_forward, PoolGeom};
use tensor::{Float, Shape, TensorError};

struct MaxPool {
    arg: Vec<u32>,
}

impl<T: Float> Op<T> for MaxPool {
    fn name(&self) -> &'static str {
        "max_pool2d"
    }
    fn backward(&self, cx: &mut Backward<'_, T>) {
        // The gradient goes to the window's maximum only.
        let g = cx.grad_output();
        maxpool_backward(g.data(), &self.arg, cx.grad(0).data_mut());
    }
}

impl<T: Float> Graph<T> {
    /// Max over non-overlapping `k x k` windows of `[N, C, H, W]`; leftover rows/columns that
    /// do not fill a window are dropped.
    pub fn max_pool2d(&mut self, x: Var, k: usize) -> Result<Var> {
        self.check(x, "max_pool2d")?;
        let s = self.val(x).shape();
        if s.ndim() != 4 || k == 0 || s[2] < k || s[3] < k {
            return Err(TensorError::InvalidShape {
                op: "max_pool2d",
                shape: s,
                why: format!("needs [N, C, H, W] with H, W >= {k} >= 1"),
            }
            .into());
        }
        // The argmax is a 32-bit index into the whole batch's input.
        if u32::try_from(s.numel()).is_err() {
            return Err(TensorError::InvalidShape {
                op: "max_pool2d",
                shape: s,
                why: "more than 2^32 values, past what its 32-bit argmax indexes; use a smaller batch".into(),
            }
            .into());
        }
        let geom = PoolGeom {
            planes: s[0] * s[1],
            h: s[2],
            w: s[3],
            k,
        };
        let mut out = self.alloc(Shape::new(&[s[0], s[1], geom.oh(), geom.ow()])?);
        let mut arg = vec![0u32; geom.out_len()];
        maxpool_forward(&geom, self.val(x).data(), out.data_mut(), &mut arg);
        self.push_op(Box::new(MaxPool { arg }), &[x], out)
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::check;

    #[test]
    fn max_pool_gradients() {
        check(&[&[2, 3, 4, 6]], |g, v| g.max_pool2d(v[0], 2));
        check(&[&[1, 2, 7, 5]], |g, v| g.max_pool2d(v[0], 2));
    }

    #[test]
    fn conv_then_pool_then_linear_end_to_end() {
        // A two-conv-layer net's loss, gradchecked end to end over every parameter and the input.
        check(
            &[
                &[2, 1, 12, 12],
                &[3, 1, 3, 3],
                &[3],
                &[4, 3, 3, 3],
                &[4],
                &[5, 4],
                &[5],
            ],
            |g, v| {
                let c1 = g.conv2d(v[0], v[1], Some(v[2]))?; // [2,3,10,10]
                let p1 = g.max_pool2d(c1, 2)?; // [2,3,5,5]
                let a1 = g.tanh(p1)?;
                let c2 = g.conv2d(a1, v[3], Some(v[4]))?; // [2,4,3,3]
                let p2 = g.max_pool2d(c2, 2)?; // [2,4,1,1]
                let a2 = g.relu(p2)?;
                let f = g.reshape(a2, &[2, 4])?;
                let z = g.linear(f, v[5], Some(v[6]))?;
                g.softmax_cross_entropy(z, &[1, 4])
            },
        );
    }
}
