//! Reductions: sum and mean over everything or along one axis.

use crate::{Backward, Graph, GraphBackward, Op, Result, Var};
use tensor::{reduce_to_shape, sum_all, Float, Shape, Tensor, TensorError};

struct SumAll<T>(T);

impl<T: Float> Op<T> for SumAll<T> {
    fn name(&self) -> &'static str {
        "sum"
    }
    fn backward(&self, cx: &mut Backward<'_, T>) {
        // Every element contributes once (times the 1/n of a mean).
        let g = cx.grad_output().data()[0] * self.0;
        cx.grad(0).data_mut().iter_mut().for_each(|d| *d += g);
    }
    fn backward_graph(&self, cx: &mut GraphBackward<'_, T>) -> Result<()> {
        let (x, g) = (cx.input(0), cx.grad_output());
        let dims = cx.graph().value(x)?.shape();
        let g = if self.0 == T::one() {
            g
        } else {
            cx.graph().scale(g, self.0)?
        };
        let dx = cx.graph().broadcast_to(g, dims.dims())?;
        cx.add_grad(0, dx)
    }
}

struct SumAxis<T> {
    axis: usize,
    factor: T,
}

impl<T: Float> Op<T> for SumAxis<T> {
    fn name(&self) -> &'static str {
        "sum_axis"
    }
    fn backward(&self, cx: &mut Backward<'_, T>) {
        // Broadcast the gradient back along the reduced axis.
        let s = cx.input(0).shape();
        let outer: usize = s.dims()[..self.axis].iter().product();
        let len = s[self.axis];
        let inner: usize = s.dims()[self.axis + 1..].iter().product();
        let g = cx.grad_output().data();
        let f = self.factor;
        let d = cx.grad(0).data_mut();
        for o in 0..outer {
            let src = &g[o * inner..(o + 1) * inner];
            for l in 0..len {
                let dst = &mut d[(o * len + l) * inner..(o * len + l + 1) * inner];
                dst.iter_mut().zip(src).for_each(|(d, &v)| *d += f * v);
            }
        }
    }
    fn backward_graph(&self, cx: &mut GraphBackward<'_, T>) -> Result<()> {
        // The gradient with the reduced axis kept (size 1), broadcast back along it.
        let (x, g) = (cx.input(0), cx.grad_output());
        let s = cx.graph().value(x)?.shape();
        let mut kept = s.dims().to_vec();
        kept[self.axis] = 1;
        let g = cx.graph().reshape(g, &kept)?;
        let g = if self.factor == T::one() {
            g
        } else {
            cx.graph().scale(g, self.factor)?
        };
        let dx = cx.graph().broadcast_to(g, s.dims())?;
        cx.add_grad(0, dx)
    }
}

impl<T: Float> Graph<T> {
    fn reduce_all(&mut self, x: Var, mean: bool) -> Result<Var> {
        self.check(x, "sum")?;
        let v = self.val(x);
        let n = v.numel();
        let s = sum_all(v.data());
        let factor = if mean {
            T::one() / T::of(n.max(1) as f64)
        } else {
            T::one()
        };
        let mut out = self.alloc(Shape::scalar());
        out.data_mut()[0] = s * factor;
        self.push_op(Box::new(SumAll(factor)), &[x], out)
    }

    /// Sum of all elements (a scalar).
    pub fn sum(&mut self, x: Var) -> Result<Var> {
        self.reduce_all(x, false)
    }

    /// Mean of all elements (a scalar).
    pub fn mean(&mut self, x: Var) -> Result<Var> {
        self.reduce_all(x, true)
    }

    fn reduce_axis(&mut self, x: Var, axis: usize, keepdim: bool, mean: bool) -> Result<Var> {
        self.check(x, "sum_axis")?;
        let v = self.val(x);
        if axis >= v.shape().ndim() {
            return Err(TensorError::Axis {
                op: "sum_axis",
                axis,
                shape: v.shape(),
            }
            .into());
        }
        let len = v.dims()[axis];
        let factor = if mean {
            T::one() / T::of(len.max(1) as f64)
        } else {
            T::one()
        };
        // Summed into a buffer of the graph's (a recorded gradient sums along an axis every
        // step; a buffer from outside the pool would join it at each reset), at the shape
        // with the axis kept, then named with the axis dropped if asked.
        let s = v.shape();
        let mut kept = s.dims().to_vec();
        kept[axis] = 1;
        let mut r = self.alloc_zeros(Shape::new(&kept)?);
        reduce_to_shape(self.val(x), None, &mut r)?;
        if mean {
            r.data_mut().iter_mut().for_each(|e| *e *= factor);
        }
        if !keepdim {
            kept.remove(axis);
            r = Tensor::from_shape_vec(Shape::new(&kept)?, r.into_vec())?;
        }
        self.push_op(Box::new(SumAxis { axis, factor }), &[x], r)
    }

    /// Sum along `axis` (kept with size 1 when `keepdim`).
    pub fn sum_axis(&mut self, x: Var, axis: usize, keepdim: bool) -> Result<Var> {
        self.reduce_axis(x, axis, keepdim, false)
    }

    /// Mean along `axis` (kept with size 1 when `keepdim`).
    pub fn mean_axis(&mut self, x: Var, axis: usize, keepdim: bool) -> Result<Var> {
        self.reduce_axis(x, axis, keepdim, true)
    }
}

#[cfg(test)]
mod tests {
    use crate::testing::{check, check2};

    #[test]
    fn reductions() {
        check(&[&[3, 4]], |g, v| g.sum(v[0]));
        check(&[&[3, 4]], |g, v| g.mean(v[0]));
        for axis in 0..3 {
            check(&[&[2, 3, 4]], |g, v| g.sum_axis(v[0], axis, false));
            check(&[&[2, 3, 4]], |g, v| g.mean_axis(v[0], axis, true));
        }
    }

    #[test]
    fn reductions_second_order() {
        // Reductions are linear; squaring their output gives them a non-constant gradient.
        check2(&[&[3, 4]], |g, v| g.sum(v[0]).and_then(|s| g.mul(s, s)));
        check2(&[&[3, 4]], |g, v| g.mean(v[0]).and_then(|s| g.exp(s)));
        for axis in 0..3 {
            check2(&[&[2, 3, 4]], |g, v| {
                g.sum_axis(v[0], axis, false).and_then(|s| g.mul(s, s))
            });
            check2(&[&[2, 3, 4]], |g, v| {
                g.mean_axis(v[0], axis, true).and_then(|s| g.tanh(s))
            });
        }
    }
}
