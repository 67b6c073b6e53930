//! Batch normalisation fused with its activation, on `tensor::norm`'s kernels: one pass for
//! the statistics, one for the output, two for the gradients, where the same computation as
//! graph ops (mean, subtract, square, mean, ...: the test's reference) takes a dozen passes and
//! as many buffers.

use super::unary::act_grad_graph;
use crate::{AutogradError, Backward, Graph, GraphBackward, Op, Result, Var};
use tensor::norm::{
    batch_norm_backward, batch_norm_forward, batch_stats, NormGeom, NormGrads, NormParams,
};
use tensor::unary::Act;
use tensor::{Float, Shape};

struct BatchNorm {
    geom: NormGeom,
    mean: Vec<f64>,
    inv_std: Vec<f64>,
    act: Act,
    /// Whether the statistics are the batch's own (their gradient flows into `x`).
    batch: bool,
    /// The variance's epsilon (for the recorded backward, which recomputes the statistics).
    eps: f64,
}

impl BatchNorm {
    /// The normalisation as the kernels take it, with the scales `scale`.
    fn params<'a, T>(&'a self, scale: &'a [T]) -> NormParams<'a, T> {
        NormParams {
            mean: &self.mean,
            inv_std: &self.inv_std,
            scale,
            act: self.act,
        }
    }
}

impl<T: Float> Op<T> for BatchNorm {
    fn name(&self) -> &'static str {
        "batch_norm"
    }
    fn backward(&self, cx: &mut Backward<'_, T>) {
        let g = &self.geom;
        let (x, scale, y, dy) = (cx.input(0), cx.input(1), cx.output(), cx.grad_output());
        let mut dscale = cx.scratch(g.c);
        let mut dbias = cx.scratch(g.c);
        dscale
            .iter_mut()
            .chain(dbias.iter_mut())
            .for_each(|v| *v = T::zero());
        let grads = NormGrads {
            dx: cx.needs_grad(0).then(|| cx.grad_accum(0)),
            dscale: &mut dscale,
            dbias: &mut dbias,
        };
        let p = self.params(scale.data());
        batch_norm_backward(g, &p, self.batch, x.data(), y.data(), dy.data(), grads);
        for (k, d) in [(1, &dscale), (2, &dbias)] {
            if cx.needs_grad(k) {
                cx.grad(k)
                    .data_mut()
                    .iter_mut()
                    .zip(d.iter())
                    .for_each(|(a, &b)| *a += b);
            }
        }
        cx.give_back(dscale);
        cx.give_back(dbias);
    }
    fn backward_graph(&self, cx: &mut GraphBackward<'_, T>) -> Result<()> {
        // With x3 = x as [N, C, S], means over N and S per channel, dz = dy act'(y):
        //   x_hat = (x3 - mean) rstd,   dbias = sum dz,   dscale = sum dz x_hat,
        //   dx = rstd (dz scale - mean(dz scale) - x_hat mean(dz scale x_hat))  (batch),
        //   dx = rstd dz scale  (given statistics: constants).
        // In batch mode the statistics are recomputed as graph ops, so that the gradient's
        // own dependence on x through them is recorded.
        let NormGeom { n, c, s } = self.geom;
        let (x, scale, y, dy) = (cx.input(0), cx.input(1), cx.output(), cx.grad_output());
        let xdims = cx.graph().value(x)?.shape();
        let g = cx.graph();
        let dz = match act_grad_graph(g, self.act, y)? {
            Some(d) => g.mul(dy, d)?,
            None => dy,
        };
        let dz3 = g.reshape(dz, &[n, c, s])?;
        let x3 = g.reshape(x, &[n, c, s])?;
        let (xhat, rstd) = if self.batch {
            let mean = mean_ns(g, x3)?;
            let xc = g.sub(x3, mean)?;
            let sq = g.mul(xc, xc)?;
            let var = mean_ns(g, sq)?;
            let eps = channel_constant(g, 1, |_| self.eps)?;
            let ve = g.add(var, eps)?;
            let l = g.log(ve)?;
            let h = g.scale(l, T::of(-0.5))?;
            let rstd = g.exp(h)?;
            (g.mul(xc, rstd)?, rstd)
        } else {
            let mean = channel_constant(g, c, |i| self.mean[i])?;
            let rstd = channel_constant(g, c, |i| self.inv_std[i])?;
            let xc = g.sub(x3, mean)?;
            (g.mul(xc, rstd)?, rstd)
        };
        if cx.needs_grad(0) {
            let g = cx.graph();
            let gm = g.reshape(scale, &[1, c, 1])?;
            let gz = g.mul(dz3, gm)?;
            let dx3 = if self.batch {
                let m1 = mean_ns(g, gz)?;
                let gx = g.mul(gz, xhat)?;
                let m2 = mean_ns(g, gx)?;
                let t = g.mul(xhat, m2)?;
                let a = g.sub(gz, m1)?;
                let a = g.sub(a, t)?;
                g.mul(a, rstd)?
            } else {
                g.mul(gz, rstd)?
            };
            let dx = g.reshape(dx3, xdims.dims())?;
            cx.add_grad(0, dx)?;
        }
        for k in [1, 2] {
            if cx.needs_grad(k) {
                let p = cx.input(k);
                let g = cx.graph();
                let dims = g.value(p)?.shape();
                let t = if k == 1 { g.mul(dz3, xhat)? } else { dz3 };
                let d = g.sum_to(t, &[1, c, 1])?;
                let d = g.reshape(d, dims.dims())?;
                cx.add_grad(k, d)?;
            }
        }
        Ok(())
    }
}

/// The mean over axes 0 and 2 of `[N, C, S]`, kept as `[1, C, 1]`.
fn mean_ns<T: Float>(g: &mut Graph<T>, v: Var) -> Result<Var> {
    let m = g.mean_axis(v, 2, true)?;
    g.mean_axis(m, 0, true)
}

/// A constant `[1, len, 1]` of `f(i)`, in a buffer of the graph's.
fn channel_constant<T: Float>(
    g: &mut Graph<T>,
    len: usize,
    f: impl Fn(usize) -> f64,
) -> Result<Var> {
    let mut t = g.alloc(Shape::new(&[1, len, 1])?);
    for (i, v) in t.data_mut().iter_mut().enumerate() {
        *v = T::of(f(i));
    }
    Ok(g.input(t))
}

/// A mini-batch's per-channel mean and biased variance, as [`Graph::batch_norm`] used them.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchStats {
    /// Mean of each channel.
    pub mean: Vec<f64>,
    /// Biased (divided by the count) variance of each channel.
    pub var: Vec<f64>,
    /// Values each statistic was taken over (`n * positions`).
    pub count: usize,
}

impl<T: Float> Graph<T> {
    /// `act(scale (x - mean) / sqrt(var + eps) + bias)` per channel of `x` (`[N, C]` or
    /// `[N, C, ...]`) with the mini-batch's own statistics, which are returned (for a running
    /// average). `scale` and `bias` are `[C]`; `act` is fused (identity, ReLU, sigmoid or tanh).
    pub fn batch_norm(
        &mut self,
        x: Var,
        scale: Var,
        bias: Var,
        eps: f64,
        act: Act,
    ) -> Result<(Var, BatchStats)> {
        let geom = self.norm_geom(x, scale, bias)?;
        let (mut mean, mut var) = (vec![0.0; geom.c], vec![0.0; geom.c]);
        batch_stats(&geom, self.val(x).data(), &mut mean, &mut var);
        let op = BatchNorm {
            geom,
            mean: mean.clone(),
            inv_std: inv_std(&var, eps),
            act,
            batch: true,
            eps,
        };
        let y = self.push_norm([x, scale, bias], op)?;
        let count = geom.per_channel();
        Ok((y, BatchStats { mean, var, count }))
    }

    /// [`Graph::batch_norm`] with given statistics `(mean, var)` (a running average's, in
    /// evaluation): no gradient flows through them.
    pub fn batch_norm_with(
        &mut self,
        x: Var,
        scale: Var,
        bias: Var,
        (mean, var): (&[f64], &[f64]),
        eps: f64,
        act: Act,
    ) -> Result<Var> {
        let geom = self.norm_geom(x, scale, bias)?;
        if mean.len() != geom.c || var.len() != geom.c {
            return Err(AutogradError::Invalid {
                op: "batch_norm",
                why: format!(
                    "{} channels but {} means and {} variances",
                    geom.c,
                    mean.len(),
                    var.len()
                ),
            });
        }
        let op = BatchNorm {
            geom,
            mean: mean.to_vec(),
            inv_std: inv_std(var, eps),
            act,
            batch: false,
            eps,
        };
        self.push_norm([x, scale, bias], op)
    }

    fn norm_geom(&self, x: Var, scale: Var, bias: Var) -> Result<NormGeom> {
        for v in [x, scale, bias] {
            self.check(v, "batch_norm")?;
        }
        let s = self.val(x).shape();
        let c = if s.ndim() >= 2 { s[1] } else { 0 };
        if c == 0 || s[0] == 0 || self.val(scale).numel() != c || self.val(bias).numel() != c {
            return Err(AutogradError::Invalid {
                op: "batch_norm",
                why: format!(
                    "input {:?} needs [N, C, ...] with N, C >= 1 and scale, bias of C elements (got {} and {})",
                    s.dims(),
                    self.val(scale).numel(),
                    self.val(bias).numel()
                ),
            });
        }
        Ok(NormGeom {
            n: s[0],
            c,
            s: s.numel() / (s[0] * c),
        })
    }

    /// Runs the forward of `op` on `x`, `scale`, `bias` and records it.
    fn push_norm(&mut self, [x, scale, bias]: [Var; 3], op: BatchNorm) -> Result<Var> {
        let mut out = self.alloc(self.val(x).shape());
        let p = op.params(self.val(scale).data());
        let (xv, bv) = (self.val(x).data(), self.val(bias).data());
        batch_norm_forward(&op.geom, &p, bv, xv, out.data_mut());
        self.push_op(Box::new(op), &[x, scale, bias], out)
    }
}

/// `1 / sqrt(var + eps)` per channel.
fn inv_std(var: &[f64], eps: f64) -> Vec<f64> {
    var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect()
}

#[cfg(test)]
mod tests {
    use crate::testing::{check, check2, randoms};
    use crate::{Graph, Result, Var};
    use tensor::unary::Act;

    /// The definition as graph ops: the reference the fused op is held to.
    fn composed(g: &mut Graph<f64>, x: Var, scale: Var, bias: Var, act: Act) -> Result<Var> {
        let s = g.value(x)?.shape();
        let (n, c) = (s[0], s[1]);
        let x3 = g.reshape(x, &[n, c, s.numel() / (n * c)])?;
        let m = g.mean_axis(x3, 2, true)?;
        let mean = g.mean_axis(m, 0, true)?;
        let centred = g.sub(x3, mean)?;
        let sq = g.mul(centred, centred)?;
        let v = g.mean_axis(sq, 2, true)?;
        let var = g.mean_axis(v, 0, true)?;
        let eps = g.input(tensor::Tensor::full(&[1], 1e-5)?);
        let ve = g.add(var, eps)?;
        let l = g.log(ve)?;
        let h = g.scale(l, -0.5)?;
        let inv = g.exp(h)?;
        let gm = g.reshape(scale, &[1, c, 1])?;
        let bt = g.reshape(bias, &[1, c, 1])?;
        let k = g.mul(inv, gm)?;
        let scaled = g.mul(centred, k)?;
        let y = g.add(scaled, bt)?;
        let y = g.reshape(y, s.dims())?;
        Ok(match act {
            Act::Relu => g.relu(y)?,
            Act::Tanh => g.tanh(y)?,
            Act::Sigmoid => g.sigmoid(y)?,
            Act::Identity => y,
        })
    }

    #[test]
    fn batch_norm_gradients_with_batch_and_given_statistics() {
        for dims in [&[5usize, 4][..], &[3, 2, 3, 4], &[2, 3, 1, 5]] {
            let c = dims[1];
            for act in [Act::Identity, Act::Tanh, Act::Relu] {
                check(&[dims, &[c], &[c]], |g, v| {
                    Ok(g.batch_norm(v[0], v[1], v[2], 1e-5, act)?.0)
                });
                let mean: Vec<f64> = (0..c).map(|i| 0.1 * i as f64).collect();
                let var: Vec<f64> = (0..c).map(|i| 0.5 + i as f64).collect();
                check(&[dims, &[c], &[c]], |g, v| {
                    g.batch_norm_with(v[0], v[1], v[2], (&mean, &var), 1e-5, act)
                });
            }
        }
    }

    #[test]
    fn batch_norm_second_order_with_batch_and_given_statistics() {
        let (mut train, mut eval) = (0.0f64, 0.0f64);
        for dims in [&[5usize, 4][..], &[3, 2, 3, 4], &[2, 3, 1, 5]] {
            let c = dims[1];
            for act in [Act::Identity, Act::Tanh, Act::Sigmoid, Act::Relu] {
                // The output's curvature (a square) weights the second derivative of the
                // normalisation itself; with the identity, the normalised values alone.
                let r = check2(&[dims, &[c], &[c]], |g, v| {
                    let y = g.batch_norm(v[0], v[1], v[2], 1e-5, act)?.0;
                    g.mul(y, y)
                });
                train = train.max(r.rel_err);
                let mean: Vec<f64> = (0..c).map(|i| 0.1 * i as f64).collect();
                let var: Vec<f64> = (0..c).map(|i| 0.5 + i as f64).collect();
                let r = check2(&[dims, &[c], &[c]], |g, v| {
                    let y = g.batch_norm_with(v[0], v[1], v[2], (&mean, &var), 1e-5, act)?;
                    g.mul(y, y)
                });
                eval = eval.max(r.rel_err);
            }
            // Linear in the output: the normalisation's own Hessian in x.
            let r = check2(&[dims, &[c], &[c]], |g, v| {
                let w = randoms(&[dims], 8).remove(0);
                let w = g.input(w);
                let y = g.batch_norm(v[0], v[1], v[2], 1e-5, Act::Identity)?.0;
                g.mul(y, w)
            });
            train = train.max(r.rel_err);
        }
        eprintln!("batch_norm second order: worst rel_err {train:.3e} (batch), {eval:.3e} (given)");
        // Third order: the second-order check of a recorded gradient (a gradient penalty).
        let r = check2(&[&[4, 2, 3], &[2], &[2]], |g, v| {
            let y = g.batch_norm(v[0], v[1], v[2], 1e-5, Act::Tanh)?.0;
            let l = g.sum_squares(y)?;
            let d = g.gradients(l, &[v[0], v[1]])?;
            let a = g.sum_squares(d[0])?;
            let b = g.sum_squares(d[1])?;
            g.add(a, b)
        });
        eprintln!("batch_norm third order: rel_err {:.3e}", r.rel_err);
    }

    #[test]
    fn fused_equals_the_composition_of_graph_ops_value_and_gradients() {
        for dims in [&[6usize, 3, 4, 5][..], &[16, 8], &[64, 32, 7, 7]] {
            let c = dims[1];
            for act in [Act::Identity, Act::Relu, Act::Sigmoid] {
                for threads in [1, 2] {
                    tensor::with_threads(threads, || {
                        let inputs = randoms(&[dims, &[c], &[c]], 9);
                        let run = |fused: bool| {
                            let mut g = Graph::<f64>::new();
                            let v: Vec<Var> = inputs
                                .iter()
                                .enumerate()
                                .map(|(i, t)| g.parameter(format!("p{i}"), t.clone()))
                                .collect();
                            let y = if fused {
                                g.batch_norm(v[0], v[1], v[2], 1e-5, act).unwrap().0
                            } else {
                                composed(&mut g, v[0], v[1], v[2], act).unwrap()
                            };
                            // A weighted sum, so that no gradient vanishes by symmetry.
                            let w = randoms(&[dims], 4).remove(0);
                            let w = g.input(w);
                            let p = g.mul(y, w).unwrap();
                            let loss = g.sum(p).unwrap();
                            g.backward(loss).unwrap();
                            let mut out = vec![g.value(y).unwrap().data().to_vec()];
                            out.extend(v.iter().map(|&p| g.grad(p).unwrap().data().to_vec()));
                            out
                        };
                        let (f, r) = (run(true), run(false));
                        for (k, (a, b)) in f.iter().zip(&r).enumerate() {
                            for (x, y) in a.iter().zip(b) {
                                assert!(
                                    (x - y).abs() < 1e-9,
                                    "{dims:?} {act:?} part {k}: {x} vs {y}"
                                );
                            }
                        }
                    });
                }
            }
        }
    }

    #[test]
    fn bad_shapes_are_errors() {
        let mut g = Graph::<f64>::new();
        let x = g.input(tensor::Tensor::zeros(&[4, 3]).unwrap());
        let p = g.input(tensor::Tensor::zeros(&[2]).unwrap());
        let e = g.batch_norm(x, p, p, 1e-5, Act::Identity).unwrap_err();
        assert!(e.to_string().contains("scale, bias of C elements"), "{e}");
        let x1 = g.input(tensor::Tensor::zeros(&[4]).unwrap());
        assert!(g.batch_norm(x1, p, p, 1e-5, Act::Identity).is_err());
    }
}
