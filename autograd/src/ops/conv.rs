//! 2-D convolution (padding, stride) with a fused bias, on `tensor::conv` (direct AVX-512
//! kernels for f32 at stride 1, im2col + GEMM otherwise): the backward reads the input again
//! rather than keeping unfolded columns (9-25 times the input's size); the input gradient is
//! skipped when the input needs none (a network's first layer: the images). network3's fused
//! conv-pool keeps its columns.
//!
//! The recorded backward (`Op::backward_graph`) is made of two more graph ops on the same
//! kernels, [`Graph::conv2d_input_grad`] (the transposed convolution) and
//! [`Graph::conv2d_weight_grad`] (the correlation of the input with the output gradient):
//! each is bilinear, and its own backward is the convolution and the other of the two, so the
//! chain closes at every order.

use super::pool::Routes;
use super::unary::act_grad_graph;
use crate::{AutogradError, Backward, Graph, GraphBackward, Op, Result, Var};
use std::sync::Arc;
use tensor::conv::{
    conv2d_backward, conv2d_backward_scratch_len, conv2d_forward, conv2d_forward_scratch_len,
    conv_pool_backward, conv_pool_backward_scratch_len, conv_pool_cols_len, conv_pool_forward,
    conv_pool_forward_scratch_len, ConvGeom, ConvGrads, ConvPoolGeom, ConvPoolGrads, ConvPoolOut,
    ConvPoolSaved,
};
use tensor::pool::{PoolGrad, MAX_TIES_POOL};
use tensor::unary::Act;
use tensor::{Accum, Float, Shape, TensorError};

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
        // The bias sums only for a bias that wants them (a convolution before a batch norm
        // has none: its kernels then skip a pass over the output gradient).
        let want_db = cx.input_count() > 2 && cx.needs_grad(2);
        let mut dw = cx.scratch(w.numel());
        dw.iter_mut().for_each(|v| *v = T::zero());
        let mut db = cx.scratch(g.f);
        db.iter_mut().for_each(|v| *v = T::zero());
        let mut scratch = cx.scratch(conv2d_backward_scratch_len(g, cx.needs_grad(0)));
        let grads = ConvGrads {
            dx: cx.needs_grad(0).then(|| cx.grad_accum(0)),
            dw: &mut dw,
            db: want_db.then_some(&mut db[..]),
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
        if want_db {
            cx.grad(2)
                .data_mut()
                .iter_mut()
                .zip(&db)
                .for_each(|(d, &v)| *d += v);
        }
        cx.give_back(dw);
        cx.give_back(db);
    }
    fn backward_graph(&self, cx: &mut GraphBackward<'_, T>) -> Result<()> {
        // dx = conv^T(dy, w), dw = corr(x, dy), db = dy summed over images and positions.
        let g = self.geom;
        let (x, w, dy) = (cx.input(0), cx.input(1), cx.grad_output());
        if cx.needs_grad(0) {
            let dx = cx.graph().conv_input_grad_op(dy, w, g)?;
            cx.add_grad(0, dx)?;
        }
        if cx.needs_grad(1) {
            let dw = cx.graph().conv_weight_grad_op(x, dy, g)?;
            cx.add_grad(1, dw)?;
        }
        if cx.needs_grad(2) {
            let b = cx.input(2);
            let db = bias_grad_graph(cx.graph(), dy, g.f, b)?;
            cx.add_grad(2, db)?;
        }
        Ok(())
    }
}

/// The input gradient of a stride-1 convolution with square filters and `pad < k` as a
/// convolution of its own: `dy` padded by `k - 1 - pad`, filtered by the filters flipped
/// and with their channels swapped (`[C, F, K, K]`). `None` for other geometries.
fn transposed(g: &ConvGeom) -> Option<ConvGeom> {
    if g.stride != 1 || g.kh != g.kw || g.pad >= g.kh {
        return None;
    }
    let dy = Shape::new(&[g.n, g.f, g.oh(), g.ow()]).ok()?;
    let wt = Shape::new(&[g.c, g.f, g.kh, g.kw]).ok()?;
    let t = ConvGeom::padded(dy, wt, g.kh - 1 - g.pad, 1).ok()?;
    (t.oh() == g.h && t.ow() == g.w).then_some(t)
}

/// The lengths of the three buffers [`input_grad`] takes.
fn input_grad_lens(g: &ConvGeom) -> [usize; 3] {
    let scratch = match transposed(g) {
        Some(t) => conv2d_forward_scratch_len(&t),
        None => conv2d_backward_scratch_len(g, true),
    };
    [g.f * g.ckk(), scratch, g.n * g.in_len()]
}

/// `dx = conv^T(dy, w)` for the convolution `g`, written or added as `dx`'s [`Accum`] says,
/// with `bufs` of [`input_grad_lens`] (contents ignored). Where the transposed convolution is
/// a convolution ([`transposed`]), it runs as one (the fast forward kernels); otherwise
/// through the backward kernel, which forms a filter gradient beside the input gradient: of a
/// zero input, into a buffer dropped.
fn input_grad<T: Float>(
    g: &ConvGeom,
    dy: &[T],
    w: &[T],
    (dx, mode): (&mut [T], Accum),
    bufs: &mut [Vec<T>; 3],
) {
    let [b0, b1, b2] = bufs;
    match transposed(g) {
        Some(t) => {
            // wt[c][f][i][j] = w[f][c][k-1-i][k-1-j]
            let k = g.kh;
            for f in 0..g.f {
                for c in 0..g.c {
                    for i in 0..k {
                        for j in 0..k {
                            b0[((c * g.f + f) * k + i) * k + j] =
                                w[((f * g.c + c) * k + (k - 1 - i)) * k + (k - 1 - j)];
                        }
                    }
                }
            }
            if mode == Accum::Overwrite {
                conv2d_forward(&t, dy, b0, None, dx, b1);
            } else {
                conv2d_forward(&t, dy, b0, None, b2, b1);
                dx.iter_mut().zip(b2.iter()).for_each(|(d, &v)| *d += v);
            }
        }
        None => {
            b2.iter_mut().for_each(|v| *v = T::zero());
            let grads = ConvGrads {
                dx: Some((dx, mode)),
                dw: b0,
                db: None,
            };
            conv2d_backward(g, b2, w, dy, grads, b1);
        }
    }
}

/// A conv bias's gradient as graph ops: `dy [N, F, OH, OW]` summed to `[1, F, 1, 1]`, in the
/// bias's own shape (`[F]` or any shape of `F` elements).
fn bias_grad_graph<T: Float>(g: &mut Graph<T>, dy: Var, f: usize, b: Var) -> Result<Var> {
    let dims = g.value(b)?.shape();
    let s = g.sum_to(dy, &[1, f, 1, 1])?;
    g.reshape(s, dims.dims())
}

/// `dx = conv^T(dy, w)`: the input gradient of the convolution `geom`, as an op of its own
/// (inputs `dy`, `w`). Bilinear: its gradient in `dy` is the convolution of the output
/// gradient by `w`, in `w` the weight gradient of the output gradient against `dy`.
struct ConvInputGrad {
    geom: ConvGeom,
}

impl<T: Float> Op<T> for ConvInputGrad {
    fn name(&self) -> &'static str {
        "conv2d_input_grad"
    }
    fn backward(&self, cx: &mut Backward<'_, T>) {
        let g = &self.geom;
        let (dy, w, gx) = (cx.input(0), cx.input(1), cx.grad_output());
        if cx.needs_grad(0) {
            // d dy = conv(gx, w)
            let mut out = cx.scratch(g.n * g.out_len());
            let mut scratch = cx.scratch(conv2d_forward_scratch_len(g));
            conv2d_forward(g, gx.data(), w.data(), None, &mut out, &mut scratch);
            cx.grad(0)
                .data_mut()
                .iter_mut()
                .zip(&out)
                .for_each(|(d, &v)| *d += v);
            cx.give_back(scratch);
            cx.give_back(out);
        }
        if cx.needs_grad(1) {
            // d w = corr(gx, dy)
            let mut scratch = cx.scratch(conv2d_backward_scratch_len(g, false));
            let grads = ConvGrads {
                dx: None,
                dw: cx.grad(1).data_mut(),
                db: None,
            };
            conv2d_backward(g, gx.data(), w.data(), dy.data(), grads, &mut scratch);
            cx.give_back(scratch);
        }
    }
    fn backward_graph(&self, cx: &mut GraphBackward<'_, T>) -> Result<()> {
        let g = self.geom;
        let (dy, w, gx) = (cx.input(0), cx.input(1), cx.grad_output());
        if cx.needs_grad(0) {
            let d = cx.graph().conv2d_padded(gx, w, None, g.pad, g.stride)?;
            cx.add_grad(0, d)?;
        }
        if cx.needs_grad(1) {
            let d = cx.graph().conv_weight_grad_op(gx, dy, g)?;
            cx.add_grad(1, d)?;
        }
        Ok(())
    }
}

/// `dw = corr(x, dy)`: the filter gradient of the convolution `geom`, as an op of its own
/// (inputs `x`, `dy`). Bilinear: its gradient in `x` is the input gradient of `dy` under the
/// output gradient as filters, in `dy` the convolution of `x` by the output gradient.
struct ConvWeightGrad {
    geom: ConvGeom,
}

impl<T: Float> Op<T> for ConvWeightGrad {
    fn name(&self) -> &'static str {
        "conv2d_weight_grad"
    }
    fn backward(&self, cx: &mut Backward<'_, T>) {
        let g = &self.geom;
        let (x, dy, gw) = (cx.input(0), cx.input(1), cx.grad_output());
        if cx.needs_grad(0) {
            // d x = conv^T(dy, gw)
            let [l0, l1, l2] = input_grad_lens(g);
            let mut bufs = [cx.scratch(l0), cx.scratch(l1), cx.scratch(l2)];
            input_grad(g, dy.data(), gw.data(), cx.grad_accum(0), &mut bufs);
            bufs.into_iter().for_each(|b| cx.give_back(b));
        }
        if cx.needs_grad(1) {
            // d dy = conv(x, gw)
            let mut out = cx.scratch(g.n * g.out_len());
            let mut scratch = cx.scratch(conv2d_forward_scratch_len(g));
            conv2d_forward(g, x.data(), gw.data(), None, &mut out, &mut scratch);
            cx.grad(1)
                .data_mut()
                .iter_mut()
                .zip(&out)
                .for_each(|(d, &v)| *d += v);
            cx.give_back(scratch);
            cx.give_back(out);
        }
    }
    fn backward_graph(&self, cx: &mut GraphBackward<'_, T>) -> Result<()> {
        let g = self.geom;
        let (x, dy, gw) = (cx.input(0), cx.input(1), cx.grad_output());
        if cx.needs_grad(0) {
            let d = cx.graph().conv_input_grad_op(dy, gw, g)?;
            cx.add_grad(0, d)?;
        }
        if cx.needs_grad(1) {
            let d = cx.graph().conv2d_padded(x, gw, None, g.pad, g.stride)?;
            cx.add_grad(1, d)?;
        }
        Ok(())
    }
}

/// A convolution and its max-pool as one op: `act(maxpool(conv(x, w)) + b)` (network3's
/// conv-pool layer; the bias optional).
struct ConvPool<T> {
    geom: ConvPoolGeom,
    act: Act,
    /// Whether input 2 is a bias.
    bias: bool,
    cols: Vec<T>,
    arg: Vec<u32>,
}

impl<T: Float> Op<T> for ConvPool<T> {
    fn name(&self) -> &'static str {
        "conv_pool"
    }
    fn backward(&self, cx: &mut Backward<'_, T>) {
        let g = &self.geom;
        let (x, w, y, dy) = (cx.input(0), cx.input(1), cx.output(), cx.grad_output());
        let mut dw = cx.scratch(w.numel());
        dw.iter_mut().for_each(|v| *v = T::zero());
        let mut db = cx.scratch(g.conv.f);
        db.iter_mut().for_each(|v| *v = T::zero());
        let with_dx = cx.needs_grad(0);
        let mut scratch = cx.scratch(conv_pool_backward_scratch_len(g, with_dx));
        let dx = with_dx.then(|| cx.grad_accum(0));
        let saved = ConvPoolSaved {
            x: x.data(),
            y: y.data(),
            arg: &self.arg,
            cols: &self.cols,
        };
        let grads = ConvPoolGrads {
            dx,
            dw: &mut dw,
            db: self.bias.then_some(&mut db[..]),
        };
        conv_pool_backward(g, self.act, w.data(), saved, dy.data(), grads, &mut scratch);
        for (k, part) in [(1, &dw), (2, &db)] {
            if (k == 1 || self.bias) && cx.needs_grad(k) {
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
    fn recycle_indices(&mut self) -> Option<Vec<u32>> {
        Some(std::mem::take(&mut self.arg))
    }
    fn backward_graph(&self, cx: &mut GraphBackward<'_, T>) -> Result<()> {
        // Decomposed: dz = dy act'(y) (through the output, differentiable through this op
        // again), db = dz summed, the pool's scatter to the saved argmaxes (or tied maxima),
        // then the convolution's two gradients.
        let c = self.geom.conv;
        let (x, w, y, dy) = (cx.input(0), cx.input(1), cx.output(), cx.grad_output());
        let dz = match act_grad_graph(cx.graph(), self.act, y)? {
            Some(d) => cx.graph().mul(dy, d)?,
            None => dy,
        };
        if self.bias && cx.needs_grad(2) {
            let b = cx.input(2);
            let db = bias_grad_graph(cx.graph(), dz, c.f, b)?;
            cx.add_grad(2, db)?;
        }
        if !cx.needs_grad(0) && !cx.needs_grad(1) {
            return Ok(());
        }
        let routes = Arc::new(self.routes());
        let dconv = cx.graph().pool_scatter(dz, routes, c.out_shape())?;
        if cx.needs_grad(0) {
            let dx = cx.graph().conv_input_grad_op(dconv, w, c)?;
            cx.add_grad(0, dx)?;
        }
        if cx.needs_grad(1) {
            let dw = cx.graph().conv_weight_grad_op(x, dconv, c)?;
            cx.add_grad(1, dw)?;
        }
        Ok(())
    }
}

impl<T> ConvPool<T> {
    /// The saved argmaxes (per image, into its convolution output) or tie masks as pairs of
    /// (output element, convolution-output element) over the whole batch.
    fn routes(&self) -> Routes {
        let c = &self.geom.conv;
        let (k, oh, ow) = (self.geom.pool, c.oh(), c.ow());
        let (ph, pw) = (oh / k, ow / k);
        let ol = c.f * ph * pw;
        let (mut src, mut dst) = (Vec::with_capacity(self.arg.len()), Vec::new());
        dst.reserve(self.arg.len());
        for (o, &a) in self.arg.iter().enumerate() {
            let (img, local) = (o / ol.max(1), o % ol.max(1));
            let base = img * c.out_len();
            match self.geom.grad {
                PoolGrad::First => {
                    src.push(o as u32);
                    dst.push((base + a as usize) as u32);
                }
                PoolGrad::Ties => {
                    let (p, r) = (local / (ph * pw), local % (ph * pw));
                    let origin = base + p * oh * ow + (r / pw) * k * ow + (r % pw) * k;
                    let mut m = a;
                    while m != 0 {
                        let bit = m.trailing_zeros() as usize;
                        src.push(o as u32);
                        dst.push((origin + (bit / k) * ow + bit % k) as u32);
                        m &= m - 1;
                    }
                }
            }
        }
        Routes { src, dst }
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
        self.conv2d_pool(x, w, Some(b), 0, pool, act, grad)
    }

    /// [`Graph::conv2d_padded`] at stride 1 (padding `pad`, bias optional) followed by a
    /// `pool x pool` max-pool and `act`, as one op: `act(maxpool(conv(x, w)) + b)`, each
    /// image convolved, pooled, biased and activated in one task while its convolution
    /// output is in cache (which never reaches memory). The same as the composition (tested
    /// to the bit on the direct kernels), and as that composition the convolution multiplies
    /// in bf16 under [`Graph::set_bf16_convolutions`]. `grad` says where the pool's gradient
    /// goes at ties.
    #[allow(clippy::too_many_arguments)]
    pub fn conv2d_pool(
        &mut self,
        x: Var,
        w: Var,
        b: Option<Var>,
        pad: usize,
        pool: usize,
        act: Act,
        grad: PoolGrad,
    ) -> Result<Var> {
        let conv = self.conv_geom("conv_pool", (x, w, b), pad, 1)?;
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
        let mut cols = self.alloc_buf(conv_pool_cols_len::<T>(&geom));
        let mut scratch = self.alloc_buf(conv_pool_forward_scratch_len(&geom));
        let mut arg = self.alloc_indices(conv.n * geom.out_len());
        let outs = ConvPoolOut {
            out: out.data_mut(),
            arg: &mut arg,
            cols: &mut cols,
        };
        let (xv, wv) = (self.val(x).data(), self.val(w).data());
        let bv = b.map(|b| self.val(b).data());
        conv_pool_forward(&geom, act, xv, wv, bv, outs, &mut scratch);
        self.recycle_buf(scratch);
        let op = Box::new(ConvPool {
            geom,
            act,
            bias: b.is_some(),
            cols,
            arg,
        });
        match b {
            Some(b) => self.push_op(op, &[x, w, b], out),
            None => self.push_op(op, &[x, w], out),
        }
    }

    /// The geometry of `op`'s convolution of `x` by `w` (padding `pad`, step `stride`, bf16
    /// products as [`Graph::set_bf16_convolutions`] says), checking the operands are this
    /// graph's and the bias, if any, has one element per filter.
    fn conv_geom(
        &self,
        op: &'static str,
        (x, w, b): (Var, Var, Option<Var>),
        pad: usize,
        stride: usize,
    ) -> Result<ConvGeom> {
        self.check(x, op)?;
        self.check(w, op)?;
        let geom = ConvGeom {
            bf16: self.bf16_conv,
            ..ConvGeom::padded(self.val(x).shape(), self.val(w).shape(), pad, stride)?
        };
        if let Some(b) = b {
            self.check(b, op)?;
            if self.val(b).numel() != geom.f {
                return Err(AutogradError::Invalid {
                    op,
                    why: format!(
                        "bias has {} elements for {} filters",
                        self.val(b).numel(),
                        geom.f
                    ),
                });
            }
        }
        Ok(geom)
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
        let geom = self.conv_geom("conv2d", (x, w, b), pad, stride)?;
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

    /// The input gradient of [`Graph::conv2d_padded`] as an op: the transposed convolution
    /// of `dy [N, F, OH, OW]` by `w [F, C, KH, KW]`, onto an input of `input_hw = [H, W]`
    /// (a strided convolution's output size does not determine its input's), padding `pad`
    /// and step `stride`: `[N, C, H, W]`. Differentiable in `dy` and `w` at every order
    /// (its backward is [`Graph::conv2d_padded`] and [`Graph::conv2d_weight_grad`]).
    ///
    /// At stride 1 with square filters and `pad < k` it runs as a convolution (the fast
    /// forward kernels); otherwise it costs about two input gradients (the backward kernel it
    /// runs forms a filter gradient beside the input gradient, of a zero input, dropped).
    ///
    /// ```
    /// use nndl_autograd::{Graph, Tensor};
    ///
    /// // A stride-2 convolution of a 5x5 image by a 3x3 filter gives 2x2; its transpose maps
    /// // the 2x2 back onto the 5x5 (the input size is given: 6x6 would give 2x2 as well).
    /// let mut g = Graph::<f64>::new();
    /// let dy = g.leaf(Tensor::from_vec(vec![1.0, 0.0, 0.0, 0.0], &[1, 1, 2, 2])?);
    /// let w = g.leaf(Tensor::from_vec((1..=9).map(f64::from).collect(), &[1, 1, 3, 3])?);
    /// let dx = g.conv2d_input_grad(dy, w, [5, 5], 0, 2)?;
    /// // Output (0, 0) saw the top-left 3x3 of the image: the filter lands there.
    /// let v = g.value(dx)?.data();
    /// assert_eq!((&v[0..3], &v[5..8], &v[10..13]), (&[1.0, 2.0, 3.0][..], &[4.0, 5.0, 6.0][..], &[7.0, 8.0, 9.0][..]));
    /// assert_eq!(v.iter().sum::<f64>(), 45.0);
    /// # Ok::<(), nndl_autograd::AutogradError>(())
    /// ```
    pub fn conv2d_input_grad(
        &mut self,
        dy: Var,
        w: Var,
        input_hw: [usize; 2],
        pad: usize,
        stride: usize,
    ) -> Result<Var> {
        self.check(dy, "conv2d_input_grad")?;
        self.check(w, "conv2d_input_grad")?;
        let (ds, ws) = (self.val(dy).shape(), self.val(w).shape());
        if ds.ndim() != 4 || ws.ndim() != 4 {
            return Err(conv_grad_mismatch("conv2d_input_grad", ds, ws));
        }
        let xs = Shape::new(&[ds[0], ws[1], input_hw[0], input_hw[1]])?;
        let geom = ConvGeom::padded(xs, ws, pad, stride)?;
        if geom.out_shape() != ds {
            return Err(conv_grad_mismatch("conv2d_input_grad", ds, ws));
        }
        self.conv_input_grad_op(dy, w, geom)
    }

    /// The filter gradient of [`Graph::conv2d_padded`] as an op: the correlation of
    /// `x [N, C, H, W]` with `dy [N, F, OH, OW]` for filters of `kernel_hw = [KH, KW]`,
    /// padding `pad` and step `stride`: `[F, C, KH, KW]`. Differentiable in `x` and `dy` at
    /// every order (its backward is [`Graph::conv2d_input_grad`] and
    /// [`Graph::conv2d_padded`]).
    pub fn conv2d_weight_grad(
        &mut self,
        x: Var,
        dy: Var,
        kernel_hw: [usize; 2],
        pad: usize,
        stride: usize,
    ) -> Result<Var> {
        self.check(x, "conv2d_weight_grad")?;
        self.check(dy, "conv2d_weight_grad")?;
        let (xs, ds) = (self.val(x).shape(), self.val(dy).shape());
        if xs.ndim() != 4 || ds.ndim() != 4 {
            return Err(conv_grad_mismatch("conv2d_weight_grad", xs, ds));
        }
        let ws = Shape::new(&[ds[1], xs[1], kernel_hw[0], kernel_hw[1]])?;
        let geom = ConvGeom::padded(xs, ws, pad, stride)?;
        if geom.out_shape() != ds {
            return Err(conv_grad_mismatch("conv2d_weight_grad", xs, ds));
        }
        self.conv_weight_grad_op(x, dy, geom)
    }

    /// [`Graph::conv2d_input_grad`] with its geometry checked.
    fn conv_input_grad_op(&mut self, dy: Var, w: Var, geom: ConvGeom) -> Result<Var> {
        let xs = Shape::new(&[geom.n, geom.c, geom.h, geom.w])?;
        let mut dx = self.alloc(xs);
        let [l0, l1, l2] = input_grad_lens(&geom);
        let mut bufs = [self.alloc_buf(l0), self.alloc_buf(l1), self.alloc_buf(l2)];
        let (wv, dv) = (self.val(w).data(), self.val(dy).data());
        input_grad(&geom, dv, wv, (dx.data_mut(), Accum::Overwrite), &mut bufs);
        bufs.into_iter().for_each(|b| self.recycle_buf(b));
        self.push_op(Box::new(ConvInputGrad { geom }), &[dy, w], dx)
    }

    /// [`Graph::conv2d_weight_grad`] with its geometry checked.
    fn conv_weight_grad_op(&mut self, x: Var, dy: Var, geom: ConvGeom) -> Result<Var> {
        let ws = Shape::new(&[geom.f, geom.c, geom.kh, geom.kw])?;
        let mut dw = self.alloc_zeros(ws);
        // The filters are read for an input gradient only, not asked for here.
        let zw = self.alloc_zeros(ws).into_vec();
        let mut scratch = self.alloc_buf(conv2d_backward_scratch_len(&geom, false));
        let grads = ConvGrads {
            dx: None,
            dw: dw.data_mut(),
            db: None,
        };
        let (xv, dv) = (self.val(x).data(), self.val(dy).data());
        conv2d_backward(&geom, xv, &zw, dv, grads, &mut scratch);
        self.recycle_buf(zw);
        self.recycle_buf(scratch);
        self.push_op(Box::new(ConvWeightGrad { geom }), &[x, dy], dw)
    }
}

fn conv_grad_mismatch(op: &'static str, lhs: Shape, rhs: Shape) -> AutogradError {
    TensorError::ShapeMismatch {
        op,
        lhs,
        rhs,
        why: "the shapes do not form a convolution with this padding and stride".into(),
    }
    .into()
}

#[cfg(test)]
mod tests {
    use crate::testing::{check, check2, randoms};
    use crate::{GradcheckReport, Graph, Result, Var};
    use tensor::conv::out_side;
    use tensor::pool::PoolGrad;
    use tensor::unary::Act;
    use tensor::Tensor;

    /// The worst relative error of the reports, printed for the record.
    fn worst(what: &str, reports: &[GradcheckReport]) -> f64 {
        let w = reports.iter().map(|r| r.rel_err).fold(0.0, f64::max);
        eprintln!(
            "{what}: worst rel_err {w:.3e} over {} checks",
            reports.len()
        );
        w
    }

    #[test]
    fn conv2d_second_order_with_padding_and_stride() {
        let mut r = Vec::new();
        // (pad, stride) on a non-square image with a square filter and a bias: the
        // convolution is bilinear in (x, w), its mixed second derivatives are checked as they
        // are; a tanh on the output brings in the curvature of what follows.
        for (pad, stride) in [(0, 1), (1, 1), (1, 2), (0, 2), (2, 1), (2, 3)] {
            r.push(check2(&[&[2, 3, 6, 5], &[4, 3, 3, 3], &[4]], |g, v| {
                g.conv2d_padded(v[0], v[1], Some(v[2]), pad, stride)
            }));
            r.push(check2(&[&[2, 3, 6, 5], &[4, 3, 3, 3], &[4]], |g, v| {
                let y = g.conv2d_padded(v[0], v[1], Some(v[2]), pad, stride)?;
                g.tanh(y)
            }));
        }
        // Non-square filters, no bias, a bias of shape [1, F].
        for (pad, stride) in [(1, 2), (0, 1), (2, 2)] {
            r.push(check2(&[&[2, 2, 5, 7], &[3, 2, 2, 3]], |g, v| {
                let y = g.conv2d_padded(v[0], v[1], None, pad, stride)?;
                g.mul(y, y)
            }));
            r.push(check2(&[&[1, 2, 7, 4], &[2, 2, 3, 1], &[1, 2]], |g, v| {
                let y = g.conv2d_padded(v[0], v[1], Some(v[2]), pad, stride)?;
                g.sigmoid(y)
            }));
        }
        assert!(worst("conv2d second order", &r) < 1e-4);
    }

    /// The output side of a geometry.
    fn side(size: usize, pad: usize, k: usize, stride: usize) -> usize {
        out_side(size, pad, k, stride).unwrap()
    }

    #[test]
    fn conv_grad_ops_first_and_second_order() {
        let mut r = Vec::new();
        // Non-square filters (the backward kernel) and square ones at stride 1 (run as a
        // convolution).
        for (pad, stride, [h, w], [kh, kw]) in [
            (0, 1, [6, 5], [3, 2]),
            (1, 1, [5, 5], [3, 2]),
            (1, 2, [6, 5], [3, 2]),
            (2, 3, [7, 6], [3, 2]),
            (0, 1, [6, 5], [3, 3]),
            (1, 1, [5, 6], [3, 3]),
            (2, 1, [5, 4], [3, 3]),
        ] {
            let dy: &[usize] = &[2, 4, side(h, pad, kh, stride), side(w, pad, kw, stride)];
            let x: &[usize] = &[2, 3, h, w];
            let input_grad = |g: &mut Graph<f64>, v: &[Var]| {
                g.conv2d_input_grad(v[0], v[1], [h, w], pad, stride)
            };
            let weight_grad = |g: &mut Graph<f64>, v: &[Var]| {
                g.conv2d_weight_grad(v[0], v[1], [kh, kw], pad, stride)
            };
            r.push(check(&[dy, &[4, 3, kh, kw]], input_grad));
            r.push(check(&[x, dy], weight_grad));
            r.push(check2(&[dy, &[4, 3, kh, kw]], |g, v| {
                let d = input_grad(g, v)?;
                g.tanh(d)
            }));
            r.push(check2(&[x, dy], |g, v| {
                let d = weight_grad(g, v)?;
                g.tanh(d)
            }));
        }
        assert!(worst("conv2d_input_grad, conv2d_weight_grad", &r) < 1e-4);
    }

    #[test]
    fn conv_grad_ops_equal_the_reference_backward() {
        // Against the tensor crate's direct-loop reference, on geometries that run as a
        // convolution (stride 1, square filters, pad < k) and ones that do not.
        use tensor::conv::{conv2d_backward_naive, ConvGeom};
        for ([kh, kw], pad, stride) in [
            ([3, 3], 0, 1),
            ([3, 3], 1, 1),
            ([3, 3], 2, 1),
            ([5, 5], 2, 1),
            ([1, 1], 0, 1),
            ([3, 2], 1, 1),
            ([3, 3], 3, 1),
            ([3, 3], 1, 2),
            ([3, 2], 1, 2),
        ] {
            let (h, w) = (7, 6);
            let dy: &[usize] = &[2, 4, side(h, pad, kh, stride), side(w, pad, kw, stride)];
            let t = randoms(&[&[2, 3, h, w], &[4, 3, kh, kw], dy], 3);
            let mut g = Graph::<f64>::new();
            let v: Vec<Var> = t.iter().map(|t| g.input(t.clone())).collect();
            let dx = g
                .conv2d_input_grad(v[2], v[1], [h, w], pad, stride)
                .unwrap();
            let dw = g
                .conv2d_weight_grad(v[0], v[2], [kh, kw], pad, stride)
                .unwrap();
            let geom = ConvGeom::padded(t[0].shape(), t[1].shape(), pad, stride).unwrap();
            let (rx, rw, _) = conv2d_backward_naive(&geom, t[0].data(), t[1].data(), t[2].data());
            for (got, want) in [(dx, &rx), (dw, &rw)] {
                let got = g.value(got).unwrap().data();
                assert_eq!(got.len(), want.len());
                for (a, b) in got.iter().zip(want) {
                    assert!(
                        (a - b).abs() < 1e-12,
                        "k {kh}x{kw} pad {pad} stride {stride}: {a} vs {b}"
                    );
                }
            }
        }
        // Shapes that do not form the convolution are errors.
        let t = randoms(&[&[2, 3, 7, 6], &[4, 3, 3, 2], &[2, 4, 4, 4]], 3);
        let mut g = Graph::<f64>::new();
        let v: Vec<Var> = t.iter().map(|t| g.input(t.clone())).collect();
        assert!(g.conv2d_input_grad(v[2], v[1], [7, 6], 1, 2).is_ok());
        assert!(g.conv2d_input_grad(v[2], v[1], [9, 6], 1, 2).is_err());
        assert!(g.conv2d_weight_grad(v[0], v[2], [3, 3], 1, 2).is_err());
    }

    #[test]
    fn recorded_f32_gradients_equal_the_first_order_backward() {
        // f32 at stride 1 runs the direct kernels where the CPU has them: the grad ops
        // through them (and through im2col at stride 2) give the first-order backward's values.
        let t = randoms(&[&[2, 3, 9, 8], &[4, 3, 3, 3], &[4]], 15);
        for (pad, stride) in [(0, 1), (1, 1), (1, 2)] {
            let mut g = Graph::<f32>::new();
            let v: Vec<Var> = t
                .iter()
                .map(|t| {
                    g.leaf(
                        Tensor::from_vec(t.data().iter().map(|&x| x as f32).collect(), t.dims())
                            .unwrap(),
                    )
                })
                .collect();
            let y = g
                .conv2d_padded(v[0], v[1], Some(v[2]), pad, stride)
                .unwrap();
            let y = g.tanh(y).unwrap();
            let s = g.sum_squares(y).unwrap();
            let r = g.gradients(s, &v).unwrap();
            // And again: the recorded gradient's own gradient runs the grad ops' backward.
            let q = g.sum_squares(r[0]).unwrap();
            let rr = g.gradients(q, &v).unwrap();
            assert_eq!(g.value(rr[1]).unwrap().dims(), &[4, 3, 3, 3]);
            g.backward(s).unwrap();
            for (&x, &d) in v.iter().zip(&r) {
                let want = g.grad(x).unwrap().data();
                let m = want.iter().fold(0f32, |m, w| m.max(w.abs()));
                for (a, b) in g.value(d).unwrap().data().iter().zip(want) {
                    assert!(
                        (a - b).abs() <= 1e-5 * m,
                        "pad {pad} stride {stride}: {a} vs {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn conv2d_third_order() {
        // The second-order check of a recorded gradient of the convolution: the derivative of
        // the recorded gradient's own recorded backward (the grad ops' backward_graph).
        let r = check2(&[&[1, 2, 5, 4], &[3, 2, 2, 3]], |g, v| {
            let y = g.conv2d_padded(v[0], v[1], None, 1, 2)?;
            let y = g.tanh(y)?;
            let s = g.sum_squares(y)?;
            let d = g.gradients(s, &[v[0], v[1]])?;
            let a = g.sum_squares(d[0])?;
            let b = g.sum_squares(d[1])?;
            g.add(a, b)
        });
        assert!(worst("conv2d third order", &[r]) < 1e-4);
    }

    #[test]
    fn conv_pool_second_order() {
        let mut r = Vec::new();
        for grad in [PoolGrad::First, PoolGrad::Ties] {
            for act in [Act::Identity, Act::Sigmoid, Act::Tanh, Act::Relu] {
                r.push(check2(&[&[2, 3, 7, 6], &[4, 3, 3, 2], &[4]], |g, v| {
                    let y = g.conv_pool(v[0], v[1], v[2], 2, act, grad)?;
                    g.mul(y, y)
                }));
            }
            // A pool of 3 (leftover rows dropped).
            r.push(check2(&[&[2, 2, 9, 8], &[3, 2, 2, 2], &[3]], |g, v| {
                let y = g.conv_pool(v[0], v[1], v[2], 3, Act::Tanh, grad)?;
                g.sigmoid(y)
            }));
        }
        // Third order: the second-order check of a recorded gradient.
        r.push(check2(&[&[1, 2, 6, 6], &[2, 2, 3, 3], &[2]], |g, v| {
            let y = g.conv_pool(v[0], v[1], v[2], 2, Act::Sigmoid, PoolGrad::First)?;
            let l = g.sum_squares(y)?;
            let d = g.gradients(l, &[v[0], v[1], v[2]])?;
            let a = g.sum_squares(d[0])?;
            let b = g.sum_squares(d[1])?;
            let a = g.add(a, b)?;
            let c = g.sum_squares(d[2])?;
            g.add(a, c)
        }));
        assert!(worst("conv_pool second and third order", &r) < 1e-4);
    }

    /// A small conv net's cost: conv2d (pad 1) -> relu -> max-pool -> linear -> softmax
    /// cross-entropy, of the inputs `[x, w, b, w2, b2]`.
    fn conv_net(g: &mut Graph<f64>, v: &[Var]) -> Result<Var> {
        let c = g.conv2d_padded(v[0], v[1], Some(v[2]), 1, 1)?; // [2, 3, 6, 6]
        let a = g.relu(c)?;
        let p = g.max_pool2d(a, 2)?; // [2, 3, 3, 3]
        let f = g.reshape(p, &[2, 27])?;
        let z = g.linear(f, v[3], Some(v[4]))?;
        g.softmax_cross_entropy(z, &[1, 3])
    }

    #[test]
    fn a_conv_net_hvp_per_step_reuses_the_graph_s_buffers() {
        // The recorded conv, pool and grad ops take their buffers from the graph's pool:
        // after the first step, an hvp per step allocates nothing and the pool stays put.
        let shapes: [&[usize]; 5] = [&[2, 1, 6, 6], &[3, 1, 3, 3], &[3], &[4, 27], &[4]];
        let (p, v) = (randoms(&shapes, 13), randoms(&shapes, 14));
        let mut g = Graph::<f64>::new();
        let vars: Vec<Var> = p
            .iter()
            .enumerate()
            .map(|(i, t)| g.parameter(format!("p{i}"), t.clone()))
            .collect();
        let mut seen = Vec::new();
        for _ in 0..4 {
            let l = conv_net(&mut g, &vars).unwrap();
            let hv = crate::functional::hvp_on(&mut g, l, &vars, &v).unwrap();
            assert_eq!(hv.len(), 5);
            g.reset();
            let (b, i) = (&g.buffers, &g.indices);
            seen.push((b.fresh, b.free_count(), i.fresh, i.free_count()));
        }
        assert!(seen.windows(2).skip(1).all(|w| w[0] == w[1]), "{seen:?}");
        assert!(
            seen[0].2 > 0 && seen[0].3 > 0,
            "the pool's argmaxes come from the index pool"
        );
    }

    #[test]
    fn hvp_of_a_conv_net_agrees_with_differences_of_the_gradient() {
        let shapes: [&[usize]; 5] = [&[2, 1, 6, 6], &[3, 1, 3, 3], &[3], &[4, 27], &[4]];
        let p = randoms(&shapes, 11);
        let v = randoms(&shapes, 12);
        let (_, hv) = crate::functional::hvp(conv_net, &p, &v).unwrap();
        // The gradient at p + t v, by the first-order backward.
        let grad_at = |t: f64| -> Vec<Tensor<f64>> {
            let mut g = Graph::<f64>::new();
            let vars: Vec<Var> = p
                .iter()
                .zip(&v)
                .map(|(p, v)| {
                    let d = p.data().iter().zip(v.data()).map(|(a, b)| a + t * b);
                    g.leaf(Tensor::from_vec(d.collect(), p.dims()).unwrap())
                })
                .collect();
            let l = conv_net(&mut g, &vars).unwrap();
            g.backward(l).unwrap();
            vars.iter().map(|&x| g.grad(x).unwrap().clone()).collect()
        };
        let eps = 1e-5;
        let (hi, lo) = (grad_at(eps), grad_at(-eps));
        let (mut err, mut scale) = (0.0f64, 0.0f64);
        for ((a, (h, l)), name) in hv
            .iter()
            .zip(hi.iter().zip(&lo))
            .zip(["x", "w", "b", "w2", "b2"])
        {
            let (mut e, mut s) = (0.0f64, 0.0f64);
            for ((&a, &h), &l) in a.data().iter().zip(h.data()).zip(l.data()) {
                let fd = (h - l) / (2.0 * eps);
                e = e.max((a - fd).abs());
                s = s.max(fd.abs());
            }
            eprintln!("hvp {name}: max |Hv - fd| {e:.3e}, max |fd| {s:.3e}");
            err = err.max(e);
            scale = scale.max(s);
        }
        let rel = err / scale;
        eprintln!("hvp of the conv net: relative error {rel:.3e}");
        assert!(scale > 1e-3 && rel < 1e-6, "{rel:e}");
    }

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
        // Padded, without a bias (the speed run's stages).
        check(&[&[2, 3, 6, 7], &[4, 3, 3, 3]], |g, v| {
            g.conv2d_pool(v[0], v[1], None, 1, 2, Act::Identity, PoolGrad::First)
        });
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

    /// In f32 the fused op runs on the direct kernels where the CPU has AVX-512 (im2col
    /// elsewhere, where both sides take it too): padded, without a bias, in f32 and with bf16
    /// products, its values and gradients are the composed ops' to the bit.
    #[test]
    fn conv2d_pool_equals_conv2d_then_max_pool_to_the_bit() {
        use tensor::Tensor;
        let t: Vec<Tensor<f32>> = randoms(&[&[6, 8, 14, 14], &[32, 8, 3, 3]], 7)
            .iter()
            .map(|t| {
                Tensor::from_vec(
                    t.data().iter().map(|&v| v as f32).collect(),
                    t.shape().dims(),
                )
                .unwrap()
            })
            .collect();
        for bf16 in [false, true] {
            let run = |fused: bool| {
                let mut g = crate::Graph::<f32>::new();
                g.set_bf16_convolutions(bf16);
                let x = g.parameter("x", t[0].clone());
                let w = g.parameter("w", t[1].clone());
                let y = if fused {
                    g.conv2d_pool(x, w, None, 1, 2, Act::Identity, PoolGrad::First)
                        .unwrap()
                } else {
                    let c = g.conv2d_padded(x, w, None, 1, 1).unwrap();
                    g.max_pool2d(c, 2).unwrap()
                };
                let s = g.sum_squares(y).unwrap();
                g.backward(s).unwrap();
                let bits = |d: &[f32]| d.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                [
                    bits(g.value(y).unwrap().data()),
                    bits(g.grad(x).unwrap().data()),
                    bits(g.grad(w).unwrap().data()),
                ]
            };
            let (a, b) = (run(true), run(false));
            for (what, p, q) in [
                ("y", &a[0], &b[0]),
                ("dx", &a[1], &b[1]),
                ("dw", &a[2], &b[2]),
            ] {
                assert!(p == q, "bf16 {bf16}: {what} differs from the composition");
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
    fn bf16_convolutions_stay_within_bf16_rounding_of_f32() {
        if !tensor::conv::bf16_supported() {
            eprintln!("no AVX-512 BF16: bf16 convolutions run in f32");
            return;
        }
        // conv -> tanh -> conv -> sum, its value and gradients in f32 and with bf16
        // multiplies: within a few 2^-7 relative of each other (each product's rounding), and
        // not equal (the setting took effect, forward and backward).
        let t = randoms(&[&[2, 3, 9, 9], &[8, 3, 3, 3], &[4, 8, 3, 3]], 30);
        let t: Vec<tensor::Tensor<f32>> = t
            .iter()
            .map(|t| {
                tensor::Tensor::from_vec(t.data().iter().map(|&v| v as f32).collect(), t.dims())
                    .unwrap()
            })
            .collect();
        let run = |bf16: bool| {
            let mut g = crate::Graph::<f32>::new();
            assert!(!g.set_bf16_convolutions(bf16));
            let v: Vec<Var> = t
                .iter()
                .enumerate()
                .map(|(k, t)| g.parameter(format!("p{k}"), t.clone()))
                .collect();
            let h = g.conv2d_padded(v[0], v[1], None, 1, 1).unwrap();
            let h = g.tanh(h).unwrap();
            let y = g.conv2d_padded(h, v[2], None, 1, 1).unwrap();
            let s = g.sum(y).unwrap();
            g.backward(s).unwrap();
            let mut out = vec![g.value(s).unwrap().data().to_vec()];
            out.extend(v.iter().map(|&p| g.grad(p).unwrap().data().to_vec()));
            out
        };
        let (f, b) = (run(false), run(true));
        for (k, (f, b)) in f.iter().zip(&b).enumerate() {
            let norm = f.iter().map(|v| v * v).sum::<f32>().sqrt();
            let diff = f
                .iter()
                .zip(b)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f32>()
                .sqrt();
            assert!(
                diff <= 4.0 * 2f32.powi(-7) * norm,
                "{k}: |bf16 - f32| {diff} of {norm}"
            );
            assert!(
                diff > 1e-6 * norm,
                "{k}: bf16 equals f32 ({diff} of {norm})"
            );
        }
    }

    #[test]
    fn the_tie_rule_is_not_the_derivative_where_tied_patches_are_equal() {
        // Every row of the input alike: vertically adjacent positions see equal patches, so
        // each window's maximum is tied between two positions that move together. The max
        // changes once as w does; Ties counts it twice (and so its second derivative is no
        // Hessian: `PoolGrad::Ties`), First is the derivative.
        let mut t = randoms(&[&[1, 1, 6, 7], &[2, 1, 3, 3], &[2]], 8);
        let row: Vec<f64> = t[0].data()[..7].to_vec();
        for (i, v) in t[0].data_mut().iter_mut().enumerate() {
            *v = row[i % 7];
        }
        let dy = randoms(&[&[1, 2, 2, 2]], 9).remove(0);
        let f = |w: &tensor::Tensor<f64>, grad| {
            let mut g = crate::Graph::<f64>::new();
            let x = g.input(t[0].clone());
            let w = g.parameter("w", w.clone());
            let b = g.input(t[2].clone());
            let y = g.conv_pool(x, w, b, 2, Act::Identity, grad).unwrap();
            let d = g.leaf(dy.clone());
            let p = g.mul(y, d).unwrap();
            let s = g.sum(p).unwrap();
            g.backward(s).unwrap();
            (
                g.value(s).unwrap().data()[0],
                g.grad(w).unwrap().data().to_vec(),
            )
        };
        for (grad, times) in [(PoolGrad::First, 1.0), (PoolGrad::Ties, 2.0)] {
            let (_, analytic) = f(&t[1], grad);
            for (k, &a) in analytic.iter().enumerate() {
                let (mut up, mut down) = (t[1].clone(), t[1].clone());
                up.data_mut()[k] += 1e-6;
                down.data_mut()[k] -= 1e-6;
                let fd = (f(&up, grad).0 - f(&down, grad).0) / 2e-6;
                assert!(
                    (a - times * fd).abs() < 1e-8,
                    "{grad:?} w[{k}]: {a} vs {times} x {fd}"
                );
            }
            assert!(analytic.iter().any(|a| a.abs() > 1e-3), "nothing compared");
        }
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
