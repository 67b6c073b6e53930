//! Gradient checking by central finite differences in f64, as PyTorch's `gradcheck` does.
//!
//! [`gradcheck`] perturbs every element of every parameter named, one at a time, and compares
//! `(f(x + eps) - f(x - eps)) / 2 eps` with the gradient the tape computed. A function with a
//! non-scalar output is first projected onto fixed random weights, so every output element
//! takes part. The report names the worst element. [`gradgradcheck_fn`] does the same for
//! second derivatives: those of the gradient recorded on the tape against finite differences
//! of the first-order gradient.

use crate::{AutogradError, Graph, Var};
use rand::{Rng, SeedableRng};
use std::fmt;
use tensor::Tensor;

/// Tolerances of a gradient check.
///
/// An element passes when `|analytic - numeric| <= atol + rtol * max(|analytic|, |numeric|)`.
/// The central difference's own error grows as `eps^2`: too big a step fails a correct
/// gradient.
///
/// ```
/// use nndl_autograd::{gradcheck_fn, GradcheckConfig, GradcheckError, Tensor};
///
/// let x = [Tensor::from_vec(vec![0.0, 1.0], &[2])?];
/// let exp = |g: &mut nndl_autograd::Graph<f64>, v: &[nndl_autograd::Var]| g.exp(v[0]);
/// // The default step (1e-6) passes.
/// assert!(gradcheck_fn(&x, exp, GradcheckConfig::default()).is_ok());
/// // At eps = 0.1 the difference is off by about eps^2/6 * e^x: 0.0017 at x = 0.
/// let coarse = GradcheckConfig { eps: 0.1, ..Default::default() };
/// assert!(matches!(gradcheck_fn(&x, exp, coarse), Err(GradcheckError::Mismatch(_))));
/// // ... which a looser tolerance accepts.
/// let loose = GradcheckConfig { eps: 0.1, rtol: 1e-2, ..Default::default() };
/// assert!(gradcheck_fn(&x, exp, loose).is_ok());
/// # Ok::<(), nndl_autograd::AutogradError>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct GradcheckConfig {
    /// Finite-difference step.
    pub eps: f64,
    /// Absolute tolerance.
    pub atol: f64,
    /// Relative tolerance (to the larger of the two gradients).
    pub rtol: f64,
    /// Seed of the projection weights used for non-scalar outputs.
    pub seed: u64,
}

impl Default for GradcheckConfig {
    fn default() -> Self {
        GradcheckConfig {
            eps: 1e-6,
            atol: 1e-6,
            rtol: 1e-4,
            seed: 0x5eed,
        }
    }
}

/// The worst element of a gradient check.
#[derive(Debug, Clone, PartialEq)]
pub struct GradcheckReport {
    /// Which of the checked inputs (position in `wrt`).
    pub input: usize,
    /// Name of that input (the parameter's name).
    pub name: String,
    /// Flat index of the element within it.
    pub index: usize,
    /// The tape's gradient there.
    pub analytic: f64,
    /// The finite-difference gradient there.
    pub numeric: f64,
    /// `|analytic - numeric|`.
    pub abs_err: f64,
    /// `abs_err / max(|analytic|, |numeric|)` (0 when both are 0).
    pub rel_err: f64,
    /// Elements compared in all.
    pub checked: usize,
}

impl GradcheckReport {
    /// The report of a check that compared no element (all zeros).
    pub(crate) fn nothing_checked() -> Self {
        GradcheckReport {
            input: 0,
            name: String::new(),
            index: 0,
            analytic: 0.0,
            numeric: 0.0,
            abs_err: 0.0,
            rel_err: 0.0,
            checked: 0,
        }
    }
}

impl fmt::Display for GradcheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "worst of {} elements: input {} ({}) index {}: analytic {:.9e}, numeric {:.9e}, abs err {:.3e}, rel err {:.3e}",
            self.checked, self.input, self.name, self.index, self.analytic, self.numeric, self.abs_err, self.rel_err
        )
    }
}

/// Why a gradient check failed.
///
/// A wrong derivative is reported with the worst element:
///
/// ```
/// use nndl_autograd::{gradcheck_fn, Float, GradcheckConfig, GradcheckError, Tensor, UnaryFn};
///
/// /// x^3 with a mistaken derivative (2x^2 instead of 3x^2).
/// struct BadCube;
/// impl UnaryFn for BadCube {
///     const NAME: &'static str = "bad_cube";
///     fn f<T: Float>(x: T) -> T {
///         x * x * x
///     }
///     fn df<T: Float>(x: T, _y: T) -> T {
///         T::of(2.0) * x * x
///     }
/// }
///
/// let x = [Tensor::from_vec(vec![0.01, 2.0], &[2])?];
/// let err = gradcheck_fn(&x, |g, v| {
///     let y = g.unary::<BadCube>(v[0])?;
///     g.sum(y) // a scalar, so the gradients are dy/dx themselves
/// }, GradcheckConfig::default());
/// let Err(GradcheckError::Mismatch(worst)) = err else { panic!("{err:?}") };
/// assert_eq!((worst.name.as_str(), worst.index), ("input0", 1)); // x = 2: 8 against 12
/// assert_eq!(worst.analytic, 8.0);
/// assert!((worst.numeric - 12.0).abs() < 1e-6, "{worst}");
/// # Ok::<(), nndl_autograd::AutogradError>(())
/// ```
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GradcheckError {
    /// The analytic and numeric gradients disagree beyond tolerance.
    #[error("gradient check failed: {0}")]
    Mismatch(GradcheckReport),
    /// Building or differentiating the graph failed.
    #[error("gradient check could not run: {0}")]
    Graph(#[from] AutogradError),
    /// `wrt` named something that is not a parameter of the graph.
    #[error("gradient check: input {0} is not a parameter (only parameters can be perturbed)")]
    NotParameter(usize),
    /// Two backwards from the same state gave different gradients (see
    /// [`CheckOptions::nondet_tol`](crate::CheckOptions::nondet_tol)).
    #[error("gradient check: the backward is nondeterministic: {0}")]
    Nondeterministic(crate::NondetReport),
    /// The f32 graph's values or gradients are further from the f64 graph's than f32 rounding
    /// explains (see [`precision_check`](crate::precision_check)).
    #[error("precision check failed: {0}")]
    Precision(crate::PrecisionReport),
}

/// A fresh forward of `f`, projected onto the weights, and the first-order gradient of that
/// projection in each of `wrt` (zeros where the output does not depend on it).
fn projected_gradients<F>(
    g: &mut Graph<f64>,
    f: &mut F,
    wrt: &[Var],
    weights: &mut Option<Tensor<f64>>,
    seed: u64,
) -> Result<Vec<Tensor<f64>>, AutogradError>
where
    F: FnMut(&mut Graph<f64>) -> Result<Var, AutogradError>,
{
    g.reset();
    let out = f(g)?;
    projected(g, out, weights, seed)?;
    let w = weights.clone().expect("projection weights exist");
    g.backward_with_grad(out, &w)?;
    Ok(wrt
        .iter()
        .map(|&p| {
            g.grad(p)
                .cloned()
                .unwrap_or_else(|| Tensor::zeros_shape(g.val(p).shape()))
        })
        .collect())
}

fn projected(
    g: &Graph<f64>,
    out: Var,
    weights: &mut Option<Tensor<f64>>,
    seed: u64,
) -> Result<f64, AutogradError> {
    let v = g.value(out)?;
    if weights.as_ref().map(|w| w.shape()) != Some(v.shape()) {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
        let data = (0..v.numel())
            .map(|_| rng.random_range(0.5..1.5) * if rng.random_bool(0.5) { 1.0 } else { -1.0 });
        let w = if v.numel() == 1 {
            vec![1.0]
        } else {
            data.collect()
        };
        *weights = Some(Tensor::from_shape_vec(v.shape(), w)?);
    }
    let w = weights.as_ref().expect("set above");
    Ok(v.data().iter().zip(w.data()).map(|(a, b)| a * b).sum())
}

/// Checks the gradients of `f` with respect to the parameters `wrt` of `g`. `f` builds the
/// computation from the graph's parameters (and any data it puts on the tape) each time it is
/// called; it must be deterministic (fix dropout masks).
///
/// ```
/// use nndl_autograd::{gradcheck, GradcheckConfig, Graph, Tensor};
///
/// let mut g = Graph::<f64>::new();
/// let w = g.parameter("w", Tensor::from_vec(vec![0.5, -0.3, 0.8, 0.1], &[2, 2])?);
/// let b = g.parameter("b", Tensor::from_vec(vec![0.1, -0.2], &[2])?);
/// let x = Tensor::from_vec(vec![1.0, 2.0, -1.0, 0.5, 0.3, -0.7], &[3, 2])?;
/// // A layer tanh(x w^T + b); its [3, 2] output is projected onto fixed random weights.
/// let report = gradcheck(&mut g, &[w, b], |g| {
///     let x = g.input(x.clone());
///     let z = g.linear(x, w, Some(b))?;
///     g.tanh(z)
/// }, GradcheckConfig::default())?;
/// assert_eq!(report.checked, 4 + 2);
/// assert!(report.abs_err < 1e-6, "{report}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn gradcheck<F>(
    g: &mut Graph<f64>,
    wrt: &[Var],
    mut f: F,
    cfg: GradcheckConfig,
) -> Result<GradcheckReport, GradcheckError>
where
    F: FnMut(&mut Graph<f64>) -> Result<Var, AutogradError>,
{
    for (i, v) in wrt.iter().enumerate() {
        if !v.is_parameter() || g.value(*v).is_err() {
            return Err(GradcheckError::NotParameter(i));
        }
    }
    let mut weights = None;
    let analytic = projected_gradients(g, &mut f, wrt, &mut weights, cfg.seed)?;
    let mut worst = Worst::new(cfg);
    for (i, &p) in wrt.iter().enumerate() {
        let n = g.val(p).numel();
        for j in 0..n {
            let x0 = g.val(p).data()[j];
            let mut eval = |g: &mut Graph<f64>, x: f64| -> Result<f64, AutogradError> {
                g.param_mut(p)?.data_mut()[j] = x;
                g.reset();
                // Recording stays on: `f` may differentiate inside (a gradient penalty calls
                // `Graph::gradients`), which needs the tape; the values are the same.
                let out = f(g)?;
                projected(g, out, &mut weights, cfg.seed)
            };
            let fp = eval(g, x0 + cfg.eps)?;
            let fm = eval(g, x0 - cfg.eps)?;
            g.param_mut(p)?.data_mut()[j] = x0;
            let numeric = (fp - fm) / (2.0 * cfg.eps);
            worst.see(
                i,
                || g.name(p).unwrap_or("?").to_string(),
                j,
                analytic[i].data()[j],
                numeric,
            );
        }
    }
    g.reset();
    worst.finish()
}

/// The worst element of a comparison of analytic and numeric derivatives.
struct Worst {
    cfg: GradcheckConfig,
    /// `abs_err / (atol + rtol * scale)` of the worst element (above 1 fails) and its report.
    worst: Option<(f64, GradcheckReport)>,
    checked: usize,
}

impl Worst {
    fn new(cfg: GradcheckConfig) -> Self {
        Worst {
            cfg,
            worst: None,
            checked: 0,
        }
    }

    fn see(
        &mut self,
        input: usize,
        name: impl FnOnce() -> String,
        index: usize,
        analytic: f64,
        numeric: f64,
    ) {
        let abs_err = (analytic - numeric).abs();
        let scale = analytic.abs().max(numeric.abs());
        let rel_err = if scale == 0.0 { 0.0 } else { abs_err / scale };
        let badness = abs_err / (self.cfg.atol + self.cfg.rtol * scale);
        self.checked += 1;
        if self
            .worst
            .as_ref()
            .is_none_or(|(b, _)| badness > *b || badness.is_nan())
        {
            let report = GradcheckReport {
                input,
                name: name(),
                index,
                analytic,
                numeric,
                abs_err,
                rel_err,
                checked: 0,
            };
            self.worst = Some((badness, report));
        }
    }

    fn finish(self) -> Result<GradcheckReport, GradcheckError> {
        let (badness, mut report) = self
            .worst
            .unwrap_or((0.0, GradcheckReport::nothing_checked()));
        report.checked = self.checked;
        if badness > 1.0 || badness.is_nan() {
            Err(GradcheckError::Mismatch(report))
        } else {
            Ok(report)
        }
    }
}

/// Checks the gradients of a function of plain tensors: each input becomes a parameter named
/// `input{i}` of a fresh graph, and `f` receives their Vars.
///
/// ```
/// use nndl_autograd::{gradcheck_fn, GradcheckConfig, Tensor};
///
/// // softmax cross-entropy of 2 samples, against labels 2 and 0
/// let z = Tensor::from_vec(vec![0.2, -1.0, 0.5, 1.5, 0.3, -0.4], &[2, 3])?;
/// let report = gradcheck_fn(&[z], |g, v| g.softmax_cross_entropy(v[0], &[2, 0]), GradcheckConfig::default())?;
/// assert_eq!((report.checked, report.name.as_str()), (6, "input0"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn gradcheck_fn<F>(
    inputs: &[Tensor<f64>],
    mut f: F,
    cfg: GradcheckConfig,
) -> Result<GradcheckReport, GradcheckError>
where
    F: FnMut(&mut Graph<f64>, &[Var]) -> Result<Var, AutogradError>,
{
    let (mut g, vars) = graph_of(inputs);
    gradcheck(&mut g, &vars, |g| f(g, &vars), cfg)
}

/// A fresh graph with each input as a parameter named `input{i}`: what the `*_fn` checks
/// differentiate.
pub(crate) fn graph_of(inputs: &[Tensor<f64>]) -> (Graph<f64>, Vec<Var>) {
    let mut g = Graph::new();
    let vars = inputs
        .iter()
        .enumerate()
        .map(|(i, t)| g.parameter(format!("input{i}"), t.clone()))
        .collect();
    (g, vars)
}

/// Second-order check of a function of plain tensors (PyTorch's `gradgradcheck`): each input
/// becomes a parameter named `input{i}` of a fresh graph, `f` receives their Vars, and
/// [`gradgradcheck`] runs on them.
///
/// ```
/// use nndl_autograd::{gradgradcheck_fn, GradcheckConfig, Tensor};
///
/// // tanh(x w): every second derivative, mixed ones included, checked in f64.
/// let x = Tensor::from_vec(vec![0.2, -0.5, 0.9, 0.4, -0.3, 0.7], &[2, 3])?;
/// let w = Tensor::from_vec(vec![0.1, -0.8, 0.6, 0.3, -0.2, 0.5], &[3, 2])?;
/// let report = gradgradcheck_fn(&[x, w], |g, v| {
///     let y = g.matmul(v[0], v[1])?;
///     g.tanh(y)
/// }, GradcheckConfig::default())?;
/// assert_eq!(report.checked, 6 + 6);
/// assert!(report.rel_err < 1e-6, "{report}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn gradgradcheck_fn<F>(
    inputs: &[Tensor<f64>],
    mut f: F,
    cfg: GradcheckConfig,
) -> Result<GradcheckReport, GradcheckError>
where
    F: FnMut(&mut Graph<f64>, &[Var]) -> Result<Var, AutogradError>,
{
    let (mut g, vars) = graph_of(inputs);
    gradgradcheck(&mut g, &vars, |g| f(g, &vars), cfg)
}

/// Second-order check (PyTorch's `gradgradcheck`) of `f` in the parameters `wrt` of `g`: the
/// derivative of `v . grad f`, for fixed random directions `v`, taken through the gradient
/// recorded on the tape ([`Graph::gradients`] then [`Graph::backward`]), against central
/// differences of `v . grad f` computed by the first-order backward. This checks each op's
/// [`Op::backward_graph`](crate::Op::backward_graph) against its
/// [`Op::backward`](crate::Op::backward), which [`gradcheck`] checks against differences of
/// `f`. `f` builds the computation as for [`gradcheck`].
///
/// A non-scalar output is projected onto fixed random weights first, as in [`gradcheck`].
/// Before the second derivative, the recorded gradient's values are compared with the
/// first-order backward's (a mismatch there is reported with the name `{name} (first
/// gradient)`). The report is the worst element of the second derivative, over every input.
///
/// ```
/// use nndl_autograd::{gradgradcheck, GradcheckConfig, Graph, Tensor};
///
/// // The log-likelihood cost of a softmax layer: its Hessian in w and b.
/// let mut g = Graph::<f64>::new();
/// let w = g.parameter("w", Tensor::from_vec(vec![0.5, -0.3, 0.8, 0.1, -0.6, 0.2], &[3, 2])?);
/// let b = g.parameter("b", Tensor::from_vec(vec![0.1, -0.2, 0.3], &[3])?);
/// let x = Tensor::from_vec(vec![1.0, 2.0, -1.0, 0.5], &[2, 2])?;
/// let report = gradgradcheck(&mut g, &[w, b], |g| {
///     let x = g.input(x.clone());
///     let z = g.linear(x, w, Some(b))?;
///     g.softmax_cross_entropy(z, &[2, 0])
/// }, GradcheckConfig::default())?;
/// assert_eq!(report.checked, 6 + 3);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn gradgradcheck<F>(
    g: &mut Graph<f64>,
    wrt: &[Var],
    mut f: F,
    cfg: GradcheckConfig,
) -> Result<GradcheckReport, GradcheckError>
where
    F: FnMut(&mut Graph<f64>) -> Result<Var, AutogradError>,
{
    for (i, v) in wrt.iter().enumerate() {
        if !v.is_parameter() || g.value(*v).is_err() {
            return Err(GradcheckError::NotParameter(i));
        }
    }
    let mut rng = rand_pcg::Pcg64::seed_from_u64(cfg.seed ^ 0x9e37_79b9_7f4a_7c15);
    let dirs = wrt
        .iter()
        .map(|&p| {
            let s = g.val(p).shape();
            let d = (0..s.numel()).map(|_| {
                rng.random_range(0.5..1.5) * if rng.random_bool(0.5) { 1.0 } else { -1.0 }
            });
            Tensor::from_shape_vec(s, d.collect()).map_err(AutogradError::from)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let name = |g: &Graph<f64>, p: Var| g.name(p).unwrap_or("?").to_string();

    // Analytic: the first gradient recorded on the tape, projected onto v, differentiated by
    // the first-order backward.
    let mut weights = None;
    g.reset();
    let out = f(g)?;
    projected(g, out, &mut weights, cfg.seed)?;
    let w = g.input(weights.clone().expect("projection weights exist"));
    let wo = g.mul(out, w)?;
    let s = g.sum(wo)?;
    let firsts = g.gradients(s, wrt)?;
    let first_values = firsts
        .iter()
        .map(|&v| g.value(v).cloned())
        .collect::<Result<Vec<_>, _>>()?;
    let mut h = None;
    for (&gv, d) in firsts.iter().zip(&dirs) {
        let dv = g.input(d.clone());
        let p = g.mul(gv, dv)?;
        let t = g.sum(p)?;
        h = Some(match h {
            Some(a) => g.add(a, t)?,
            None => t,
        });
    }
    if let Some(h) = h {
        g.backward(h)?;
    }
    let analytic: Vec<Tensor<f64>> = wrt
        .iter()
        .map(|&p| {
            g.grad(p)
                .cloned()
                .unwrap_or_else(|| Tensor::zeros_shape(g.val(p).shape()))
        })
        .collect();

    // Reference: v . grad f(x) by the first-order backward.
    let mut phi = |g: &mut Graph<f64>| -> Result<(f64, Vec<Tensor<f64>>), AutogradError> {
        let grads = projected_gradients(g, &mut f, wrt, &mut weights, cfg.seed)?;
        let dot = grads
            .iter()
            .zip(&dirs)
            .map(|(a, d)| {
                a.data()
                    .iter()
                    .zip(d.data())
                    .map(|(a, b)| a * b)
                    .sum::<f64>()
            })
            .sum();
        Ok((dot, grads))
    };
    let (_, first_order) = phi(g)?;
    let mut firsts_worst = Worst::new(cfg);
    for (i, (a, b)) in first_values.iter().zip(&first_order).enumerate() {
        for (j, (&a, &b)) in a.data().iter().zip(b.data()).enumerate() {
            let n = || format!("{} (first gradient)", name(g, wrt[i]));
            firsts_worst.see(i, n, j, a, b);
        }
    }
    if let Err(e) = firsts_worst.finish() {
        g.reset();
        return Err(e);
    }

    let mut worst = Worst::new(cfg);
    for (i, &p) in wrt.iter().enumerate() {
        for j in 0..g.val(p).numel() {
            let x0 = g.val(p).data()[j];
            g.param_mut(p)?.data_mut()[j] = x0 + cfg.eps;
            let fp = phi(g);
            g.param_mut(p)?.data_mut()[j] = x0 - cfg.eps;
            let fm = phi(g);
            g.param_mut(p)?.data_mut()[j] = x0;
            let numeric = (fp?.0 - fm?.0) / (2.0 * cfg.eps);
            worst.see(i, || name(g, p), j, analytic[i].data()[j], numeric);
        }
    }
    g.reset();
    worst.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Float, UnaryFn};

    /// x^3 whose derivative in graph form is right in value but a constant: its own
    /// derivative comes out 0 instead of 6x.
    struct FlatCube;
    impl UnaryFn for FlatCube {
        const NAME: &'static str = "flat_cube";
        fn f<T: Float>(x: T) -> T {
            x * x * x
        }
        fn df<T: Float>(x: T, _: T) -> T {
            T::of(3.0) * x * x
        }
        fn df_graph<T: Float>(g: &mut Graph<T>, x: Var, _: Var) -> crate::Result<Option<Var>> {
            let d = g.value(x)?.map(|x| T::of(3.0) * x * x);
            Ok(Some(g.input(d)))
        }
    }

    /// x^3 whose derivative in graph form is wrong in value (2x^2).
    struct BadCube;
    impl UnaryFn for BadCube {
        const NAME: &'static str = "bad_cube";
        fn f<T: Float>(x: T) -> T {
            x * x * x
        }
        fn df<T: Float>(x: T, _: T) -> T {
            T::of(3.0) * x * x
        }
        fn df_graph<T: Float>(g: &mut Graph<T>, x: Var, _: Var) -> crate::Result<Option<Var>> {
            let xx = g.mul(x, x)?;
            g.scale(xx, T::of(2.0)).map(Some)
        }
    }

    fn x() -> Vec<Tensor<f64>> {
        vec![Tensor::from_vec(vec![0.5, -2.0, 1.0], &[3]).unwrap()]
    }

    #[test]
    fn a_wrong_second_derivative_is_reported_with_its_worst_element() {
        let r = gradgradcheck_fn(&x(), |g, v| g.unary::<FlatCube>(v[0]), Default::default());
        let Err(GradcheckError::Mismatch(worst)) = r else {
            panic!("{r:?}")
        };
        // v . grad f = sum v_i w_i 3 x_i^2: its derivative 6 x_i v_i w_i, here largest at
        // x = -2.
        assert_eq!((worst.name.as_str(), worst.index), ("input0", 1));
        assert_eq!(worst.analytic, 0.0);
        assert!(worst.numeric.abs() > 1.0, "{worst}");
        // gradcheck sees nothing wrong: the first derivative is right.
        assert!(gradcheck_fn(&x(), |g, v| g.unary::<FlatCube>(v[0]), Default::default()).is_ok());
    }

    #[test]
    fn a_recorded_gradient_of_the_wrong_value_is_reported_as_such() {
        let r = gradgradcheck_fn(&x(), |g, v| g.unary::<BadCube>(v[0]), Default::default());
        let Err(GradcheckError::Mismatch(worst)) = r else {
            panic!("{r:?}")
        };
        assert_eq!(worst.name, "input0 (first gradient)");
        assert_eq!(worst.index, 1);
    }

    #[test]
    fn gradgradcheck_takes_parameters_only() {
        let mut g = Graph::<f64>::new();
        let x = g.leaf(Tensor::from_vec(vec![1.0], &[1]).unwrap());
        let r = gradgradcheck(&mut g, &[x], |g| g.exp(x), Default::default());
        assert_eq!(r, Err(GradcheckError::NotParameter(0)));
    }
}
