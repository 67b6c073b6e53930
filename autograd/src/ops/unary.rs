//! Elementwise functions declared as an `f(x)` / `df` pair (dfdx's idea): one generic op does
//! the forward and backward for all of them, so a new activation is a few lines.

use crate::{AutogradError, Backward, Graph, GraphBackward, Op, Result, Var};
use std::marker::PhantomData;
use tensor::unary::Act;
use tensor::{unary as k, Float};

/// An elementwise function and its derivative, expressed through input `x` and output `y`.
///
/// The quickest way to add an op: declare `f` and `df`, and [`Graph::unary`] does the
/// forward, the backward and the buffer reuse. Write a full [`Op`] only when the backward is
/// not elementwise.
///
/// ```
/// use nndl_autograd::{gradcheck_fn, Float, GradcheckConfig, Graph, Tensor, UnaryFn};
///
/// /// Softsign x / (1 + |x|), whose derivative is 1 / (1 + |x|)^2.
/// struct Softsign;
/// impl UnaryFn for Softsign {
///     const NAME: &'static str = "softsign";
///     fn f<T: Float>(x: T) -> T {
///         x / (T::one() + x.abs())
///     }
///     fn df<T: Float>(x: T, _y: T) -> T {
///         let d = T::one() + x.abs();
///         T::one() / (d * d)
///     }
/// }
///
/// let mut g = Graph::<f64>::new();
/// let x = g.leaf(Tensor::from_vec(vec![-3.0, 0.0, 1.0], &[3])?);
/// let y = g.unary::<Softsign>(x)?;
/// assert_eq!(g.value(y)?.data(), &[-0.75, 0.0, 0.5]);
/// let loss = g.sum(y)?;
/// g.backward(loss)?;
/// assert_eq!(g.grad(x).unwrap().data(), &[1.0 / 16.0, 1.0, 0.25]);
///
/// // `df` against finite differences, at points away from the kink at 0.
/// let inputs = [Tensor::from_vec(vec![-2.0, -0.5, 0.3, 1.7], &[2, 2])?];
/// let report = gradcheck_fn(&inputs, |g, v| g.unary::<Softsign>(v[0]), GradcheckConfig::default())?;
/// assert_eq!(report.checked, 4);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// [`Op`]: crate::Op
pub trait UnaryFn: 'static {
    /// Name for messages.
    const NAME: &'static str;
    /// The function.
    fn f<T: Float>(x: T) -> T;
    /// Its derivative at `x`, given `y = f(x)` (whichever is cheaper to use).
    fn df<T: Float>(x: T, y: T) -> T;
    /// `out = f(x)` over a slice; a function with a vectorised kernel overrides it.
    fn map<T: Float>(x: &[T], out: &mut [T]) {
        k::map_into(x, out, Self::f)
    }
    /// The derivative `f'(x)` built as graph ops on the Vars of the input `x` and the output
    /// `y = f(x)` (elementwise, `x`'s shape), or `None`. With it, the function's gradient
    /// is recorded on the tape ([`Graph::gradients`]) and can be differentiated again; without
    /// it (the default), that is an [`AutogradError::NotTwiceDifferentiable`] naming the
    /// function. The first-order backward uses [`UnaryFn::df`] either way.
    ///
    /// ```
    /// use nndl_autograd::{gradgradcheck_fn, Float, GradcheckConfig, Graph, Result, Tensor, UnaryFn, Var};
    ///
    /// /// x^3, with f'(x) = 3x^2 given both ways.
    /// struct Cube;
    /// impl UnaryFn for Cube {
    ///     const NAME: &'static str = "cube";
    ///     fn f<T: Float>(x: T) -> T {
    ///         x * x * x
    ///     }
    ///     fn df<T: Float>(x: T, _y: T) -> T {
    ///         T::of(3.0) * x * x
    ///     }
    ///     fn df_graph<T: Float>(g: &mut Graph<T>, x: Var, _y: Var) -> Result<Option<Var>> {
    ///         let xx = g.mul(x, x)?;
    ///         g.scale(xx, T::of(3.0)).map(Some)
    ///     }
    /// }
    ///
    /// let x = [Tensor::from_vec(vec![0.5, -1.5, 2.0], &[3])?];
    /// let report = gradgradcheck_fn(&x, |g, v| g.unary::<Cube>(v[0]), GradcheckConfig::default())?;
    /// assert_eq!(report.checked, 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// [`AutogradError::NotTwiceDifferentiable`]: crate::AutogradError::NotTwiceDifferentiable
    fn df_graph<T: Float>(g: &mut Graph<T>, x: Var, y: Var) -> Result<Option<Var>> {
        let _ = (g, x, y);
        Ok(None)
    }
}

/// A constant scalar on the tape.
fn constant<T: Float>(g: &mut Graph<T>, c: T) -> Var {
    let mut t = g.alloc(tensor::Shape::scalar());
    t.data_mut()[0] = c;
    g.input(t)
}

/// e^x.
pub struct Exp;
impl UnaryFn for Exp {
    const NAME: &'static str = "exp";
    fn f<T: Float>(x: T) -> T {
        x.exp()
    }
    fn df<T: Float>(_: T, y: T) -> T {
        y
    }
    fn df_graph<T: Float>(_: &mut Graph<T>, _: Var, y: Var) -> Result<Option<Var>> {
        Ok(Some(y))
    }
}

/// Natural logarithm.
pub struct Log;
impl UnaryFn for Log {
    const NAME: &'static str = "log";
    fn f<T: Float>(x: T) -> T {
        x.ln()
    }
    fn df<T: Float>(x: T, _: T) -> T {
        T::one() / x
    }
    fn df_graph<T: Float>(g: &mut Graph<T>, x: Var, _: Var) -> Result<Option<Var>> {
        let one = constant(g, T::one());
        g.div(one, x).map(Some)
    }
}

/// Logistic sigmoid 1 / (1 + e^-x).
pub struct Sigmoid;
impl UnaryFn for Sigmoid {
    const NAME: &'static str = "sigmoid";
    fn f<T: Float>(x: T) -> T {
        k::sigmoid(x)
    }
    fn df<T: Float>(_: T, y: T) -> T {
        k::sigmoid_grad_from_output(y)
    }
    fn df_graph<T: Float>(g: &mut Graph<T>, _: Var, y: Var) -> Result<Option<Var>> {
        // y (1 - y) = y - y^2
        let yy = g.mul(y, y)?;
        g.sub(y, yy).map(Some)
    }
    fn map<T: Float>(x: &[T], out: &mut [T]) {
        k::sigmoid_into(x, out)
    }
}

/// Hyperbolic tangent.
pub struct Tanh;
impl UnaryFn for Tanh {
    const NAME: &'static str = "tanh";
    fn f<T: Float>(x: T) -> T {
        x.tanh()
    }
    fn df<T: Float>(_: T, y: T) -> T {
        k::tanh_grad_from_output(y)
    }
    fn df_graph<T: Float>(g: &mut Graph<T>, _: Var, y: Var) -> Result<Option<Var>> {
        // 1 - y^2
        let yy = g.mul(y, y)?;
        let one = constant(g, T::one());
        g.sub(one, yy).map(Some)
    }
}

/// Rectified linear unit max(x, 0).
pub struct Relu;
impl UnaryFn for Relu {
    const NAME: &'static str = "relu";
    fn f<T: Float>(x: T) -> T {
        k::relu(x)
    }
    fn df<T: Float>(_: T, y: T) -> T {
        k::relu_grad_from_output(y)
    }
    fn df_graph<T: Float>(g: &mut Graph<T>, _: Var, y: Var) -> Result<Option<Var>> {
        // A step: a constant mask, whose own derivative is 0 (everywhere but at 0, where
        // relu has none and the first-order backward takes 0 as well).
        g.constant_map(y, k::relu_grad_from_output).map(Some)
    }
}

/// Softplus ln(1 + e^x), computed stably.
pub struct Softplus;
impl UnaryFn for Softplus {
    const NAME: &'static str = "softplus";
    fn f<T: Float>(x: T) -> T {
        x.max(T::zero()) + (-x.abs()).exp().ln_1p()
    }
    fn df<T: Float>(x: T, _: T) -> T {
        k::sigmoid(x)
    }
    fn df_graph<T: Float>(g: &mut Graph<T>, x: Var, _: Var) -> Result<Option<Var>> {
        g.sigmoid(x).map(Some)
    }
}

/// The derivative of a fused activation `act` as graph ops on its output `y` (`None` for
/// the identity): what the fused ops (conv_pool, batch_norm) multiply their output gradient
/// by in their recorded backward. Each of these derivatives is a function of the output alone.
pub(crate) fn act_grad_graph<T: Float>(g: &mut Graph<T>, act: Act, y: Var) -> Result<Option<Var>> {
    match act {
        Act::Identity => Ok(None),
        Act::Sigmoid => Sigmoid::df_graph(g, y, y),
        Act::Tanh => Tanh::df_graph(g, y, y),
        Act::Relu => Relu::df_graph(g, y, y),
    }
}

struct Unary<F>(PhantomData<F>);

impl<T: Float, F: UnaryFn> Op<T> for Unary<F> {
    fn name(&self) -> &'static str {
        F::NAME
    }
    fn backward(&self, cx: &mut Backward<'_, T>) {
        let (x, y, g) = (cx.input(0), cx.output(), cx.grad_output());
        let d = cx.grad(0).data_mut();
        for (((d, &x), &y), &g) in d.iter_mut().zip(x.data()).zip(y.data()).zip(g.data()) {
            *d += g * F::df(x, y);
        }
    }
    fn backward_graph(&self, cx: &mut GraphBackward<'_, T>) -> Result<()> {
        if !cx.needs_grad(0) {
            return Ok(());
        }
        let (x, y, g) = (cx.input(0), cx.output(), cx.grad_output());
        let Some(d) = F::df_graph(cx.graph(), x, y)? else {
            return Err(AutogradError::NotTwiceDifferentiable { op: F::NAME });
        };
        let dx = cx.graph().mul(g, d)?;
        cx.add_grad(0, dx)
    }
}

impl<T: Float> Graph<T> {
    /// Applies the elementwise function `F` (any [`UnaryFn`], including a user's own, or one
    /// of [`crate::ops`]' such as [`Tanh`]).
    ///
    /// ```
    /// use nndl_autograd::{ops::Tanh, Float, Graph, Tensor, UnaryFn};
    ///
    /// struct Cube;
    /// impl UnaryFn for Cube {
    ///     const NAME: &'static str = "cube";
    ///     fn f<T: Float>(x: T) -> T {
    ///         x * x * x
    ///     }
    ///     fn df<T: Float>(x: T, _y: T) -> T {
    ///         T::of(3.0) * x * x
    ///     }
    /// }
    ///
    /// let mut g = Graph::<f32>::new();
    /// let x = g.parameter("x", Tensor::from_vec(vec![2.0, -1.0], &[2])?);
    /// let y = g.unary::<Cube>(x)?;
    /// let loss = g.sum(y)?;
    /// g.backward(loss)?;
    /// assert_eq!(g.value(y)?.data(), &[8.0, -1.0]);
    /// assert_eq!(g.grad(x).unwrap().data(), &[12.0, 3.0]); // 3x^2
    ///
    /// // The built-in functions are UnaryFns too: `g.tanh(x)` is `g.unary::<Tanh>(x)`.
    /// let t = g.unary::<Tanh>(x)?;
    /// assert_eq!(g.value(t)?.data()[0], 2.0f32.tanh());
    /// # Ok::<(), nndl_autograd::AutogradError>(())
    /// ```
    pub fn unary<F: UnaryFn>(&mut self, x: Var) -> Result<Var> {
        self.check(x, F::NAME)?;
        let mut out = self.alloc(self.val(x).shape());
        F::map(self.val(x).data(), out.data_mut());
        self.push_op(Box::new(Unary::<F>(PhantomData)), &[x], out)
    }

    /// e^x elementwise.
    pub fn exp(&mut self, x: Var) -> Result<Var> {
        self.unary::<Exp>(x)
    }

    /// ln x elementwise.
    pub fn log(&mut self, x: Var) -> Result<Var> {
        self.unary::<Log>(x)
    }

    /// Logistic sigmoid elementwise.
    pub fn sigmoid(&mut self, x: Var) -> Result<Var> {
        self.unary::<Sigmoid>(x)
    }

    /// tanh elementwise.
    pub fn tanh(&mut self, x: Var) -> Result<Var> {
        self.unary::<Tanh>(x)
    }

    /// max(x, 0) elementwise.
    pub fn relu(&mut self, x: Var) -> Result<Var> {
        self.unary::<Relu>(x)
    }

    /// ln(1 + e^x) elementwise.
    pub fn softplus(&mut self, x: Var) -> Result<Var> {
        self.unary::<Softplus>(x)
    }
}

#[cfg(test)]
mod tests {
    use super::UnaryFn;
    use crate::testing::{check, check2, check2_on, check_on, randoms};
    use tensor::Float;

    #[test]
    fn activations() {
        check(&[&[4, 5]], |g, v| g.exp(v[0]));
        check(&[&[4, 5]], |g, v| g.sigmoid(v[0]));
        check(&[&[4, 5]], |g, v| g.tanh(v[0]));
        check(&[&[4, 5]], |g, v| g.relu(v[0]));
        check(&[&[4, 5]], |g, v| g.softplus(v[0]));
        let pos = randoms(&[&[4, 5]], 1)
            .into_iter()
            .map(|t| t.map(f64::abs))
            .collect();
        check_on(pos, |g, v| g.log(v[0]));
    }

    #[test]
    fn activations_second_order() {
        check2(&[&[4, 5]], |g, v| g.exp(v[0]));
        check2(&[&[4, 5]], |g, v| g.sigmoid(v[0]));
        check2(&[&[4, 5]], |g, v| g.tanh(v[0]));
        check2(&[&[4, 5]], |g, v| g.softplus(v[0]));
        let pos: Vec<_> = randoms(&[&[4, 5]], 1)
            .into_iter()
            .map(|t| t.map(f64::abs))
            .collect();
        check2_on(pos, |g, v| g.log(v[0]));
        // relu's second derivative is 0 away from the kink (the random inputs keep 0.1 from
        // it); a square in front makes the first gradient depend on x through the mask's
        // multiplier, so a wrong mask still shows.
        check2(&[&[4, 5]], |g, v| g.relu(v[0]));
        check2(&[&[4, 5]], |g, v| g.relu(v[0]).and_then(|r| g.mul(r, r)));
        // Compositions: second derivatives through the chain rule.
        check2(&[&[3, 4]], |g, v| g.tanh(v[0]).and_then(|t| g.sigmoid(t)));
    }

    #[test]
    fn a_user_fn_without_df_graph_is_a_named_error() {
        struct Cube;
        impl UnaryFn for Cube {
            const NAME: &'static str = "cube";
            fn f<T: Float>(x: T) -> T {
                x * x * x
            }
            fn df<T: Float>(x: T, _y: T) -> T {
                T::of(3.0) * x * x
            }
        }
        let mut g = crate::Graph::<f64>::new();
        let x = g.leaf(tensor::Tensor::from_vec(vec![1.0, 2.0], &[2]).unwrap());
        let y = g.unary::<Cube>(x).unwrap();
        let s = g.sum(y).unwrap();
        let e = g.gradients(s, &[x]).unwrap_err();
        assert_eq!(
            e,
            crate::AutogradError::NotTwiceDifferentiable { op: "cube" }
        );
        assert_eq!(
            e.to_string(),
            "`cube` has no differentiable backward yet: its gradient cannot be differentiated again"
        );
        // The first-order backward is unaffected.
        g.backward(s).unwrap();
        assert_eq!(g.grad(x).unwrap().data(), &[3.0, 12.0]);
    }

    #[test]
    fn sigmoid_is_stable_at_extremes() {
        let mut g = crate::Graph::<f32>::new();
        let x = g.input(tensor::Tensor::from_vec(vec![-100.0, 0.0, 100.0], &[3]).unwrap());
        let y = g.sigmoid(x).unwrap();
        let v = g.value(y).unwrap().data();
        assert!(v[0] >= 0.0 && v[0] < 1e-40, "{}", v[0]);
        assert_eq!(&v[1..], &[0.5, 1.0]);
    }
}
