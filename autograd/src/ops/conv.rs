//! 2-D convolution (padding, stride) with a fused bias, on `tensor::conv` (direct AVX-512
//! kernels for f32 at stride 1, im2col + GEMM otherwise): the backward reads the input again
//! rather than keeping unfolded columns (9-25 times the input's size); the input gradient is
//! skipped when the input needs none (a network's first layer: the images). network3's fused
//! conv-pool keeps its columns.

use crate::{AutogradError, Backward, Graph, Op, Result, Var};
use tensor::conv::{
    conv2d_backward, conv2d_backward_scratch_len, conv2d_forward, conv2d_forward_scratch_len,
    conv_pool_backward, conv_pool_backward_scratch_len, conv_pool_forward,
    conv_pool_forward_scratch_len, ConvGeom, ConvGrads, ConvPoolGeom, ConvPoolGrads, ConvPoolOut,
    ConvPoolSaved,
};
use tensor::pool::{PoolGrad, MAX_TIES_POOL};
use tensor::unary::Act;
use tensor::Float;

struct Conv2d {
    geom: ConvGeom,
}

impl<T: Float> Op<T> for Conv2d {
    fn name(&self) -> &'static str {
        "conv2d"
    }
    fn backward(&self, cx: &mut Backward<'_, T>) {
        let g = &self.geom;
        let (x, w, dout) = (cx.input(0), cx.input(1), cx.grad_output());
        let has_bias = cx.needs_grad(2) || cx.input_count() > 2;
        let mut dw = cx.scratch(w.numel());
        dw.iter_mut().for_each(|v| *v = T::zero());
        let mut db = cx.scratch(g.f);
        db.iter_mut().for_each(|v| *v = T::zero());
        let mut scratch = cx.scratch(conv2d_backward_scratch_len(g, cx.needs_grad(0)));
        let grads = ConvGrads {
            dx: cx.needs_grad(0).then(|| cx.grad_accum(0)),
            dw: &mut dw,
            db: Some(&mut db),
        };
        conv2d_backward(g, x.data(), w.data(), dout.data(), grads, &mut scratch);
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
}

/// network3's conv-pool layer as one op: `act(maxpool(conv(x, w)) + b)`.
struct ConvPool<T> {
    geom: ConvPoolGeom,
    act: Act,
    cols: Vec<T>,
    arg: Vec<u32>,
}

impl<T: Float> Op<T> for ConvPool<T> {
    fn name(&self) -> &'static str {
        "conv_pool"
    }
    fn backward(&self, cx: &mut Backward<'_, T>) {
        let g = &self.geom;
        let (w, y, dy) = (cx.input(1), cx.output(), cx.grad_output());
        let mut dw = cx.scratch(w.numel());
        dw.iter_mut().for_each(|v| *v = T::zero());
        let mut db = cx.scratch(g.conv.f);
        db.iter_mut().for_each(|v| *v = T::zero());
        let with_dx = cx.needs_grad(0);
        let mut scratch = cx.scratch(conv_pool_backward_scratch_len(g, with_dx));
        let dx = if with_dx {
            Some(cx.grad(0).data_mut())
        } else {
            None
        };
        let saved = ConvPoolSaved {
            y: y.data(),
            arg: &self.arg,
            cols: &self.cols,
        };
        let grads = ConvPoolGrads {
            dx,
            dw: &mut dw,
            db: &mut db,
        };
        conv_pool_backward(g, self.act, w.data(), saved, dy.data(), grads, &mut scratch);
        for (k, part) in [(1, &dw), (2, &db)] {
            if cx.needs_grad(k) {
                cx.grad(k)
                    .data_mut()
                    .iter_mut()
                    .zip(part.iter())
                    .for_each(|(d, &v)| *d += v);
            }
        }
        cx.give_back(scratch);
        cx.give_back(dw);
        cx.give_back(db);
    }
    fn recycle(self: Box<Self>) -> Vec<Vec<T>> {
        vec![self.cols]
    }
}

impl<T: Float> Graph<T> {
    /// network3's `ConvPoolLayer` as one fused op: valid convolution of `x [N, C, H, W]` by
    /// `w [F, C, KH, KW]` (no bias), `pool x pool` max-pooling, then `act(pooled + b)` with
    /// `b [F]`. The same as composing [`Graph::conv2d`], [`Graph::max_pool2d`], an add and the
    /// activation (tested), but each image is convolved, pooled, biased and activated in one
    /// task, on every thread. `grad` says where the pool's gradient goes at ties
    /// ([`PoolGrad::Ties`], Theano's choice, takes pools up to [`MAX_TIES_POOL`]).
    pub fn conv_pool(
        &mut self,
        x: Var,
        w: Var,
        b: Var,
        pool: usize,
        act: Act,
        grad: PoolGrad,
    ) -> Result<Var> {
        self.check(x, "conv_pool")?;
        self.check(w, "conv_pool")?;
        self.check(b, "conv_pool")?;
        let conv = ConvGeom::new(self.val(x).shape(), self.val(w).shape())?;
        if self.val(b).numel() != conv.f {
            return Err(AutogradError::Invalid {
                op: "conv_pool",
                why: format!(
                    "bias has {} elements for {} filters",
                    self.val(b).numel(),
                    conv.f
                ),
            });
        }
        if pool == 0 || pool > conv.oh() || pool > conv.ow() {
            return Err(AutogradError::Invalid {
                op: "conv_pool",
                why: format!(
                    "a {pool}x{pool} pool does not fit the {}x{} convolution output",
                    conv.oh(),
                    conv.ow()
                ),
            });
        }
        if grad == PoolGrad::Ties && pool > MAX_TIES_POOL {
            return Err(AutogradError::Invalid {
                op: "conv_pool",
                why: format!(
                    "the tie-splitting pool gradient supports pools up to {MAX_TIES_POOL}, not {pool}"
                ),
            });
        }
        let geom = ConvPoolGeom::new(conv, pool, grad)?;
        let mut out = self.alloc(geom.out_shape());
        let mut cols = self.alloc_buf(conv.n * conv.cols_len());
        let mut scratch = self.alloc_buf(conv_pool_forward_scratch_len(&geom));
        let mut arg = vec![0u32; conv.n * geom.out_len()];
        let outs = ConvPoolOut {
            out: out.data_mut(),
            arg: &mut arg,
            cols: &mut cols,
        };
        let (xv, wv, bv) = (self.val(x).data(), self.val(w).data(), self.val(b).data());
        conv_pool_forward(&geom, act, xv, wv, bv, outs, &mut scratch);
        self.recycle_buf(scratch);
        let op = Box::new(ConvPool {
            geom,
            act,
            cols,
            arg,
        });
        self.push_op(op, &[x, w, b], out)
    }

    /// Valid 2-D cross-correlation, stride 1: `x [N, C, H, W]`, filters `w [F, C, KH, KW]`,
    /// optional bias `b [F]`; output `[N, F, H-KH+1, W-KW+1]`.
    pub fn conv2d(&mut self, x: Var, w: Var, b: Option<Var>) -> Result<Var> {
        self.conv2d_padded(x, w, b, 0, 1)
    }

    /// [`Graph::conv2d`] over the input padded by `pad` zeros on every side, taking every
    /// `stride`-th position: output `[N, F, (H+2p-KH)/s + 1, (W+2p-KW)/s + 1]` (PyTorch's
    /// `Conv2d(padding=p, stride=s)`).
    pub fn conv2d_padded(
        &mut self,
        x: Var,
        w: Var,
        b: Option<Var>,
        pad: usize,
        stride: usize,
    ) -> Result<Var> {
        self.check(x, "conv2d")?;
        self.check(w, "conv2d")?;
        let geom = ConvGeom::padded(self.val(x).shape(), self.val(w).shape(), pad, stride)?;
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
        let mut cols = self.alloc_buf(conv2d_forward_scratch_len(&geom));
        conv2d_forward(
            &geom,
            self.val(x).data(),
            self.val(w).data(),
            b.map(|b| self.val(b).data()),
            out.data_mut(),
            &mut cols,
        );
        self.recycle_buf(cols);
        let op = Box::new(Conv2d { geom });
        match b {
            Some(b) => self.push_op(op, &[x, w, b], out),
            None => self.push_op(op, &[x, w], out),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{check, randoms};
    use tensor::pool::PoolGrad;
    use tensor::unary::Act;

    #[test]
    fn padded_strided_conv2d_gradients() {
        for (pad, stride) in [(1, 1), (2, 1), (1, 2), (0, 2), (2, 3)] {
            check(&[&[2, 3, 6, 5], &[4, 3, 3, 3], &[4]], |g, v| {
                g.conv2d_padded(v[0], v[1], Some(v[2]), pad, stride)
            });
        }
        check(&[&[2, 1, 4, 4], &[2, 1, 5, 5]], |g, v| {
            g.conv2d_padded(v[0], v[1], None, 2, 1)
        });
    }

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
    fn conv_pool_gradients_and_equality_with_the_composition() {
        for act in [Act::Identity, Act::Sigmoid, Act::Tanh, Act::Relu] {
            check(&[&[2, 3, 7, 6], &[4, 3, 3, 2], &[4]], |g, v| {
                g.conv_pool(v[0], v[1], v[2], 2, act, PoolGrad::First)
            });
        }
        // The fused op's values and gradients are the composed ops'.
        let run = |fused: bool| {
            let mut g = crate::Graph::<f64>::new();
            let t = randoms(&[&[2, 2, 9, 9], &[3, 2, 3, 3], &[3]], 1);
            let x = g.leaf(t[0].clone());
            let w = g.parameter("w", t[1].clone());
            let b = g.parameter("b", t[2].clone());
            let y = if fused {
                g.conv_pool(x, w, b, 2, Act::Tanh, PoolGrad::First).unwrap()
            } else {
                let c = g.conv2d(x, w, None).unwrap();
                let p = g.max_pool2d(c, 2).unwrap();
                let b4 = g.reshape(b, &[1, 3, 1, 1]).unwrap();
                let z = g.add(p, b4).unwrap();
                g.tanh(z).unwrap()
            };
            let s = g.sum_squares(y).unwrap();
            g.backward(s).unwrap();
            let vals = |v| g.grad(v).unwrap().data().to_vec();
            (
                g.value(y).unwrap().data().to_vec(),
                vals(x),
                vals(w),
                vals(b),
            )
        };
        let (a, b) = (run(true), run(false));
        for (p, q) in [(&a.0, &b.0), (&a.1, &b.1), (&a.2, &b.2), (&a.3, &b.3)] {
            for (u, v) in p.iter().zip(q.iter()) {
                assert!((u - v).abs() < 1e-12, "{u} vs {v}");
            }
        }
    }

    #[test]
    fn conv_pool_with_ties_equals_the_reference_on_a_tied_input() {
        use tensor::conv::{conv2d_backward_naive, conv2d_naive, ConvGeom};
        use tensor::pool::{maxpool_backward_naive, PoolGeom};
        use tensor::{Shape, Tensor};
        // A blank left half (every window there ties at 0) beside random ink.
        let mut t = randoms(&[&[2, 1, 8, 8], &[3, 1, 3, 3], &[3]], 4);
        for (i, v) in t[0].data_mut().iter_mut().enumerate() {
            if i % 8 < 4 {
                *v = 0.0;
            }
        }
        let dy = randoms(&[&[2, 3, 3, 3]], 5).remove(0);
        for grad in [PoolGrad::First, PoolGrad::Ties] {
            let mut g = crate::Graph::<f64>::new();
            let x = g.parameter("x", t[0].clone());
            let w = g.parameter("w", t[1].clone());
            let b = g.parameter("b", t[2].clone());
            let y = g.conv_pool(x, w, b, 2, Act::Relu, grad).unwrap();
            let d = g.leaf(dy.clone());
            let p = g.mul(y, d).unwrap();
            let s = g.sum(p).unwrap();
            g.backward(s).unwrap();
            // The reference: conv, then dz = dy * relu'(y) sent back through the pool.
            let geom = ConvGeom::new(
                Shape::new(&[2, 1, 8, 8]).unwrap(),
                Shape::new(&[3, 1, 3, 3]).unwrap(),
            )
            .unwrap();
            let conv = conv2d_naive(&geom, t[0].data(), t[1].data(), None);
            let yv = g.value(y).unwrap().data().to_vec();
            let dz: Vec<f64> = yv
                .iter()
                .zip(dy.data())
                .map(|(&y, &d)| if y > 0.0 { d } else { 0.0 })
                .collect();
            let pg = PoolGeom {
                planes: 6,
                h: 6,
                w: 6,
                k: 2,
            };
            let dconv = maxpool_backward_naive(&pg, &conv, &dz, grad);
            let (dx, dw, _) = conv2d_backward_naive(&geom, t[0].data(), t[1].data(), &dconv);
            for (v, want) in [(x, &dx), (w, &dw)] {
                for (a, b) in g.grad(v).unwrap().data().iter().zip(want) {
                    assert!((a - b).abs() < 1e-12, "{grad:?}: {a} vs {b}");
                }
            }
        }
        // Ties takes pools up to 5 only.
        let mut g = crate::Graph::<f32>::new();
        let x = g.input(Tensor::zeros(&[1, 1, 12, 12]).unwrap());
        let w = g.input(Tensor::zeros(&[1, 1, 1, 1]).unwrap());
        let b = g.input(Tensor::zeros(&[1]).unwrap());
        let e = g
            .conv_pool(x, w, b, 6, Act::Relu, PoolGrad::Ties)
            .unwrap_err();
        assert!(e.to_string().contains("up to 5"), "{e}");
        assert!(g.conv_pool(x, w, b, 6, Act::Relu, PoolGrad::First).is_ok());
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
