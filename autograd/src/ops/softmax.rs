//! Softmax and log-softmax over the last axis, computed stably (the row maximum subtracted).

use crate::{Backward, Graph, GraphBackward, Op, Result, Var};
use tensor::{log_softmax_rows_into, softmax_rows_into, Float, TensorError};

/// Runs `row(dx, y, dy)` on each row (last axis) of the input's gradient, the output and the
/// output's gradient.
fn each_row<T: Float>(cx: &mut Backward<'_, T>, row: impl Fn(&mut [T], &[T], &[T])) {
    let (y, g) = (cx.output(), cx.grad_output());
    let c = *y.dims().last().expect("rank checked in forward");
    let d = cx.grad(0).data_mut();
    for ((d, y), g) in d
        .chunks_exact_mut(c)
        .zip(y.data().chunks_exact(c))
        .zip(g.data().chunks_exact(c))
    {
        row(d, y, g);
    }
}

struct Softmax;

impl<T: Float> Op<T> for Softmax {
    fn name(&self) -> &'static str {
        "softmax"
    }
    fn backward(&self, cx: &mut Backward<'_, T>) {
        // dx = y * (g - <g, y>) per row.
        each_row(cx, |d, y, g| {
            let dot: T = y.iter().zip(g).map(|(&a, &b)| a * b).sum();
            for ((d, &y), &g) in d.iter_mut().zip(y).zip(g) {
                *d += y * (g - dot);
            }
        });
    }
    fn backward_graph(&self, cx: &mut GraphBackward<'_, T>) -> Result<()> {
        // dx = y * (g - sum_row(g * y)), y the output (itself differentiable through softmax).
        let (y, g) = (cx.output(), cx.grad_output());
        let gr = cx.graph();
        let last = gr.value(y)?.shape().ndim() - 1;
        let gy = gr.mul(g, y)?;
        let dot = gr.sum_axis(gy, last, true)?;
        let centred = gr.sub(g, dot)?;
        let dx = gr.mul(y, centred)?;
        cx.add_grad(0, dx)
    }
}

struct LogSoftmax;

impl<T: Float> Op<T> for LogSoftmax {
    fn name(&self) -> &'static str {
        "log_softmax"
    }
    fn backward(&self, cx: &mut Backward<'_, T>) {
        // dx = g - softmax(x) * sum(g) per row, with softmax(x) = exp(output).
        each_row(cx, |d, y, g| {
            let s: T = g.iter().copied().sum();
            for ((d, &y), &g) in d.iter_mut().zip(y).zip(g) {
                *d += g - y.exp() * s;
            }
        });
    }
    fn backward_graph(&self, cx: &mut GraphBackward<'_, T>) -> Result<()> {
        // dx = g - softmax(x) * sum_row(g), softmax(x) = exp(y) for y the output.
        let (y, g) = (cx.output(), cx.grad_output());
        let gr = cx.graph();
        let last = gr.value(y)?.shape().ndim() - 1;
        let s = gr.sum_axis(g, last, true)?;
        let p = gr.exp(y)?;
        let ps = gr.mul(p, s)?;
        let dx = gr.sub(g, ps)?;
        cx.add_grad(0, dx)
    }
}

impl<T: Float> Graph<T> {
    fn rowwise(&mut self, x: Var, op: &'static str) -> Result<(usize, tensor::Tensor<T>)> {
        self.check(x, op)?;
        let s = self.val(x).shape();
        if s.ndim() == 0 || s.numel() == 0 {
            return Err(TensorError::InvalidShape {
                op,
                shape: s,
                why: "needs at least one axis".into(),
            }
            .into());
        }
        Ok((s[s.ndim() - 1], self.alloc(s)))
    }

    /// Softmax over the last axis.
    pub fn softmax(&mut self, x: Var) -> Result<Var> {
        let (c, mut out) = self.rowwise(x, "softmax")?;
        softmax_rows_into(self.val(x).data(), c, out.data_mut());
        self.push_op(Box::new(Softmax), &[x], out)
    }

    /// Log-softmax over the last axis.
    pub fn log_softmax(&mut self, x: Var) -> Result<Var> {
        let (c, mut out) = self.rowwise(x, "log_softmax")?;
        log_softmax_rows_into(self.val(x).data(), c, out.data_mut());
        self.push_op(Box::new(LogSoftmax), &[x], out)
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{check, check2};

    #[test]
    fn softmax_family() {
        check(&[&[3, 5]], |g, v| g.softmax(v[0]));
        check(&[&[3, 5]], |g, v| g.log_softmax(v[0]));
        check(&[&[2, 2, 4]], |g, v| g.softmax(v[0]));
    }

    #[test]
    fn softmax_family_second_order() {
        check2(&[&[3, 5]], |g, v| g.softmax(v[0]));
        check2(&[&[3, 5]], |g, v| g.log_softmax(v[0]));
        check2(&[&[2, 2, 4]], |g, v| g.softmax(v[0]));
        check2(&[&[2, 2, 4]], |g, v| g.log_softmax(v[0]));
        // Softmax of a product: mixed second derivatives through the row coupling.
        check2(&[&[3, 4], &[4, 5]], |g, v| {
            g.matmul(v[0], v[1]).and_then(|z| g.softmax(z))
        });
    }
}
