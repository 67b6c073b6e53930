//! 2-D valid convolution with a fused bias, on `tensor::conv`'s im2col + GEMM kernels. The
//! im2col columns of the forward are kept for the filter gradient; the input gradient is
//! skipped when the input needs none (a network's first layer: the images).

use crate::{AutogradError, Backward, Graph, Op, Result, Var};
use tensor::conv::{conv2d_backward, conv2d_backward_scratch_len, conv2d_forward, ConvGeom};
use tensor::Float;

struct Conv2d<T> {
    geom: ConvGeom,
    cols: Vec<T>,
}

impl<T: Float> Op<T> for Conv2d<T> {
    fn name(&self) -> &'static str {
        "conv2d"
    }
    fn backward(&self, cx: &mut Backward<'_, T>) {
        let g = &self.geom;
        let (w, dout) = (cx.input(1), cx.grad_output());
        let has_bias = cx.needs_grad(2) || cx.input_count() > 2;
        let mut dw = cx.scratch(w.numel());
        dw.iter_mut().for_each(|v| *v = T::zero());
        let mut db = cx.scratch(g.f);
        db.iter_mut().for_each(|v| *v = T::zero());
        let mut scratch = cx.scratch(conv2d_backward_scratch_len(g, cx.needs_grad(0)));
        if cx.needs_grad(0) {
            let dx = cx.grad(0).data_mut();
            conv2d_backward(
                g,
                w.data(),
                &self.cols,
                dout.data(),
                Some(dx),
                &mut dw,
                Some(&mut db),
                &mut scratch,
            );
        } else {
            conv2d_backward(
                g,
                w.data(),
                &self.cols,
                dout.data(),
                None,
                &mut dw,
                Some(&mut db),
                &mut scratch,
            );
        }
        cx.give_back(scratch);
        if cx.needs_grad(1) {
            cx.grad(1)
                .data_mut()
                .iter_mut()
                .zip(&dw)
                .for_each(|(d, &v)| *d += v);
        }
        if has_bias && cx.needs_grad(2) {
            cx.grad(2)
                .data_mut()
                .iter_mut()
                .zip(&db)
                .for_each(|(d, &v)| *d += v);
        }
        cx.give_back(dw);
        cx.give_back(db);
    }
    fn recycle(self: Box<Self>) -> Vec<Vec<T>> {
        vec![self.cols]
    }
}

impl<T: Float> Graph<T> {
    /// Valid 2-D cross-correlation, stride 1: `x [N, C, H, W]`, filters `w [F, C, KH, KW]`,
    /// optional bias `b [F]`; output `[N, F, H-KH+1, W-KW+1]`.
    pub fn conv2d(&mut self, x: Var, w: Var, b: Option<Var>) -> Result<Var> {
        self.check(x, "conv2d")?;
        self.check(w, "conv2d")?;
        let geom = ConvGeom::new(self.val(x).shape(), self.val(w).shape())?;
        if let Some(b) = b {
            self.check(b, "conv2d")?;
            if self.val(b).numel() != geom.f {
                return Err(AutogradError::Invalid {
                    op: "conv2d",
                    why: format!(
                        "bias has {} elements for {} filters",
                        self.val(b).numel(),
                        geom.f
                    ),
                });
            }
        }
        let mut out = self.alloc(geom.out_shape());
        let mut cols = self.alloc_buf(geom.n * geom.cols_len());
        conv2d_forward(
            &geom,
            self.val(x).data(),
            self.val(w).data(),
            b.map(|b| self.val(b).data()),
            out.data_mut(),
            &mut cols,
        );
        let op = Box::new(Conv2d { geom, cols });
        match b {
            Some(b) => self.push_op(op, &[x, w, b], out),
            None => self.push_op(op, &[x, w], out),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::ops::testing::check;

    #[test]
    fn conv2d_gradients() {
        check(&[&[2, 3, 6, 5], &[4, 3, 3, 2], &[4]], |g, v| {
            g.conv2d(v[0], v[1], Some(v[2]))
        });
        check(&[&[3, 1, 5, 5], &[2, 1, 5, 5]], |g, v| {
            g.conv2d(v[0], v[1], None)
        });
    }

    #[test]
    fn conv2d_bad_bias_and_channels() {
        let mut g = crate::Graph::<f32>::new();
        let x = g.input(tensor::Tensor::zeros(&[1, 2, 5, 5]).unwrap());
        let w = g.input(tensor::Tensor::zeros(&[3, 2, 3, 3]).unwrap());
        let b = g.input(tensor::Tensor::zeros(&[2]).unwrap());
        assert!(g
            .conv2d(x, w, Some(b))
            .unwrap_err()
            .to_string()
            .contains("bias"));
        let w1 = g.input(tensor::Tensor::zeros(&[3, 1, 3, 3]).unwrap());
        assert!(g
            .conv2d(x, w1, None)
            .unwrap_err()
            .to_string()
            .contains("channels"));
    }
}
