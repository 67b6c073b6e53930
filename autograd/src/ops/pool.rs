//! k x k non-overlapping max-pooling over NCHW, keeping the argmax for the backward; and the
//! pair of linear ops its recorded backward is made of: a scatter of the output gradient to
//! the saved argmax positions and its adjoint, a gather from them (the indices constant: a
//! max-pool's second derivative in its input is zero away from ties).

use crate::{AutogradError, Backward, Graph, GraphBackward, Op, Result, Var};
use std::sync::Arc;
use tensor::pool::{maxpool_backward, maxpool_backward_overwrite, maxpool_forward, PoolGeom};
use tensor::{Float, Shape, TensorError};

/// Where a pool's gradient goes: pairs `(src[k], dst[k])`, an element of the pooled output
/// and one of the input it came from (one pair per window, or one per tied maximum under
/// Theano's tie rule). Shared by the scatter and gather ops a recorded backward builds.
pub(crate) struct Routes {
    /// Output (pooled) element of each pair.
    pub(crate) src: Vec<u32>,
    /// Input element of each pair.
    pub(crate) dst: Vec<u32>,
}

impl Routes {
    /// One pair per output element: output `o` to input `arg[o]`.
    pub(crate) fn argmax(arg: &[u32]) -> Self {
        Routes {
            src: (0..arg.len() as u32).collect(),
            dst: arg.to_vec(),
        }
    }

    fn check(&self, op: &'static str, out_len: usize, in_len: usize) -> Result<()> {
        let fits = |v: &[u32], n: usize| v.iter().all(|&i| (i as usize) < n);
        if self.src.len() != self.dst.len() || !fits(&self.src, out_len) || !fits(&self.dst, in_len)
        {
            return Err(AutogradError::Invalid {
                op,
                why: format!(
                    "routes outside a pooled output of {out_len} and an input of {in_len} elements"
                ),
            });
        }
        Ok(())
    }
}

/// `dx[dst[k]] += dy[src[k]]` into zeros of the input's shape: the max-pool backward, as a
/// graph op linear in `dy`.
struct PoolScatter {
    routes: Arc<Routes>,
}

impl<T: Float> Op<T> for PoolScatter {
    fn name(&self) -> &'static str {
        "pool_scatter"
    }
    fn backward(&self, cx: &mut Backward<'_, T>) {
        let g = cx.grad_output().data();
        let d = cx.grad(0).data_mut();
        for (&s, &t) in self.routes.src.iter().zip(&self.routes.dst) {
            d[s as usize] += g[t as usize];
        }
    }
    fn backward_graph(&self, cx: &mut GraphBackward<'_, T>) -> Result<()> {
        let (dy, g) = (cx.input(0), cx.grad_output());
        let dims = cx.graph().value(dy)?.shape();
        let d = cx.graph().pool_gather(g, self.routes.clone(), dims)?;
        cx.add_grad(0, d)
    }
}

/// `y[src[k]] += x[dst[k]]` into zeros of the pooled shape: the adjoint of [`PoolScatter`].
struct PoolGather {
    routes: Arc<Routes>,
}

impl<T: Float> Op<T> for PoolGather {
    fn name(&self) -> &'static str {
        "pool_gather"
    }
    fn backward(&self, cx: &mut Backward<'_, T>) {
        let g = cx.grad_output().data();
        let d = cx.grad(0).data_mut();
        for (&s, &t) in self.routes.src.iter().zip(&self.routes.dst) {
            d[t as usize] += g[s as usize];
        }
    }
    fn backward_graph(&self, cx: &mut GraphBackward<'_, T>) -> Result<()> {
        let (x, g) = (cx.input(0), cx.grad_output());
        let dims = cx.graph().value(x)?.shape();
        let d = cx.graph().pool_scatter(g, self.routes.clone(), dims)?;
        cx.add_grad(0, d)
    }
}

struct MaxPool {
    geom: PoolGeom,
    arg: Vec<u32>,
}

impl<T: Float> Op<T> for MaxPool {
    fn name(&self) -> &'static str {
        "max_pool2d"
    }
    fn backward(&self, cx: &mut Backward<'_, T>) {
        // The gradient goes to the window's maximum only: written whole into a new buffer
        // (no zero-fill first), added into one that earlier ops wrote.
        let g = cx.grad_output();
        match cx.grad_or_fresh(0) {
            (d, true) => maxpool_backward_overwrite(&self.geom, g.data(), &self.arg, d.data_mut()),
            (d, false) => maxpool_backward(g.data(), &self.arg, d.data_mut()),
        }
    }
    fn recycle_indices(&mut self) -> Option<Vec<u32>> {
        Some(std::mem::take(&mut self.arg))
    }
    fn backward_graph(&self, cx: &mut GraphBackward<'_, T>) -> Result<()> {
        // The same scatter to the argmaxes, recorded: linear in the output gradient.
        let (x, g) = (cx.input(0), cx.grad_output());
        let dims = cx.graph().value(x)?.shape();
        let routes = Arc::new(Routes::argmax(&self.arg));
        let dx = cx.graph().pool_scatter(g, routes, dims)?;
        cx.add_grad(0, dx)
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
        let mut arg = self.alloc_indices(geom.out_len());
        maxpool_forward(&geom, self.val(x).data(), out.data_mut(), &mut arg);
        self.push_op(Box::new(MaxPool { geom, arg }), &[x], out)
    }

    /// `dy` (a pooled output's shape) scattered along `routes` into zeros of shape `to` (the
    /// pool's input): a recorded max-pool backward.
    pub(crate) fn pool_scatter(&mut self, dy: Var, routes: Arc<Routes>, to: Shape) -> Result<Var> {
        self.check(dy, "pool_scatter")?;
        routes.check("pool_scatter", self.val(dy).numel(), to.numel())?;
        let mut out = self.alloc_zeros(to);
        let (d, o) = (self.val(dy).data(), out.data_mut());
        for (&s, &t) in routes.src.iter().zip(&routes.dst) {
            o[t as usize] += d[s as usize];
        }
        self.push_op(Box::new(PoolScatter { routes }), &[dy], out)
    }

    /// `x` (a pool input's shape) gathered along `routes` into zeros of shape `to` (the
    /// pooled output's), summing the pairs of one output: the adjoint of
    /// [`Graph::pool_scatter`].
    pub(crate) fn pool_gather(&mut self, x: Var, routes: Arc<Routes>, to: Shape) -> Result<Var> {
        self.check(x, "pool_gather")?;
        routes.check("pool_gather", to.numel(), self.val(x).numel())?;
        let mut out = self.alloc_zeros(to);
        let (d, o) = (self.val(x).data(), out.data_mut());
        for (&s, &t) in routes.src.iter().zip(&routes.dst) {
            o[s as usize] += d[t as usize];
        }
        self.push_op(Box::new(PoolGather { routes }), &[x], out)
    }
}

#[cfg(test)]
mod tests {
    use super::Routes;
    use crate::testing::{check, check2};
    use std::sync::Arc;
    use tensor::Shape;

    #[test]
    fn max_pool_gradients() {
        check(&[&[2, 3, 4, 6]], |g, v| g.max_pool2d(v[0], 2));
        check(&[&[1, 2, 7, 5]], |g, v| g.max_pool2d(v[0], 2));
    }

    #[test]
    fn max_pool_second_order() {
        // The random inputs are continuous: no window holds a tie, and a difference step of
        // 1e-6 does not reach one. The pool is piecewise linear, so its own second derivative
        // is 0; what follows it brings the curvature.
        let mut worst = 0.0f64;
        for (dims, k) in [
            (&[2usize, 3, 4, 6][..], 2),
            (&[1, 2, 7, 5], 2),
            (&[2, 2, 6, 7], 3),
        ] {
            for r in [
                check2(&[dims], |g, v| g.max_pool2d(v[0], k)),
                check2(&[dims], |g, v| {
                    let p = g.max_pool2d(v[0], k)?;
                    g.mul(p, p)
                }),
                check2(&[dims], |g, v| {
                    let t = g.tanh(v[0])?;
                    let p = g.max_pool2d(t, k)?;
                    g.sigmoid(p)
                }),
            ] {
                worst = worst.max(r.rel_err);
            }
        }
        eprintln!("max_pool2d second order: worst rel_err {worst:.3e}");
    }

    #[test]
    fn pool_scatter_and_gather_first_and_second_order() {
        // Routes with two pairs on one output and an input reached twice, as tie-splitting
        // pools have: out 0 <- in 1, 4; out 1 <- in 4; out 2 <- in 7; in 0, 2, ... unreached.
        let routes = || {
            Arc::new(Routes {
                src: vec![0, 0, 1, 2],
                dst: vec![1, 4, 4, 7],
            })
        };
        let (small, big) = (Shape::new(&[3]).unwrap(), Shape::new(&[2, 4]).unwrap());
        let mut worst = 0.0f64;
        for r in [
            check(&[&[3]], |g, v| g.pool_scatter(v[0], routes(), big)),
            check(&[&[2, 4]], |g, v| g.pool_gather(v[0], routes(), small)),
            check2(&[&[3]], |g, v| {
                let d = g.pool_scatter(v[0], routes(), big)?;
                g.tanh(d)
            }),
            check2(&[&[2, 4]], |g, v| {
                let d = g.pool_gather(v[0], routes(), small)?;
                g.mul(d, d)
            }),
            // A recorded gradient of each, differentiated again: the pair closes.
            check2(&[&[3]], |g, v| {
                let d = g.pool_scatter(v[0], routes(), big)?;
                let e = g.exp(d)?;
                let s = g.sum(e)?;
                let dv = g.gradients(s, &[v[0]])?[0];
                g.sum_squares(dv)
            }),
        ] {
            worst = worst.max(r.rel_err);
        }
        eprintln!("pool_scatter, pool_gather: worst rel_err {worst:.3e}");
        let mut g = crate::Graph::<f64>::new();
        let x = g.leaf(tensor::Tensor::from_vec(vec![1.0, 2.0, 3.0], &[3]).unwrap());
        let y = g.pool_scatter(x, routes(), big).unwrap();
        assert_eq!(
            g.value(y).unwrap().data(),
            &[0.0, 1.0, 0.0, 0.0, 3.0, 0.0, 0.0, 3.0]
        );
        let z = g.pool_gather(y, routes(), small).unwrap();
        assert_eq!(g.value(z).unwrap().data(), &[4.0, 3.0, 3.0]);
        // Routes past either end are refused.
        let bad = Arc::new(Routes {
            src: vec![0],
            dst: vec![8],
        });
        assert!(g.pool_scatter(x, bad, big).is_err());
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
