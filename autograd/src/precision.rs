//! The precision check: the same graph in f32 (the kernels users train with: the run-time
//! selected instruction set, the fused ops) against f64, with a tolerance derived from f32
//! rounding. The f64 [`gradcheck()`](crate::gradcheck()) never runs the f32 kernels; this
//! does.

use crate::{AutogradError, GradcheckError, Graph, NondetReport, Var};
use rand::{Rng, SeedableRng};
use std::fmt;
use tensor::Tensor;

/// Settings of [`precision_check`].
#[derive(Debug, Clone, Copy)]
pub struct PrecisionConfig {
    /// The factor `lambda` of the probabilistic rounding bound `lambda sqrt(n) u` (see
    /// [`precision_check`]); 4 by default.
    pub lambda: f64,
    /// The number of terms `n` the longest sum of the computation may have; `None` takes the
    /// number of elements of the checked inputs, which bounds it for one layer (every sum of
    /// its forward and backward runs over elements of one input or of products of them).
    pub terms: Option<usize>,
    /// Seed of the projection weights of the output.
    pub seed: u64,
    /// The f32 run's nondeterminism check: `Some(tol)` runs its backward a second time and
    /// requires every gradient element to agree within `tol` (`0.0`: identical bits), as
    /// [`CheckOptions::nondet_tol`](crate::CheckOptions::nondet_tol) does in f64; `None`
    /// skips it.
    pub nondet_tol: Option<f64>,
}

impl Default for PrecisionConfig {
    fn default() -> Self {
        PrecisionConfig {
            lambda: 4.0,
            terms: None,
            seed: 0x5eed,
            nondet_tol: Some(0.0),
        }
    }
}

/// The worst element of a precision check: the one with the largest error relative to its
/// tolerance.
#[derive(Debug, Clone, PartialEq)]
pub struct PrecisionReport {
    /// `"output"` (the forward's value) or the name of the checked input whose gradient it is.
    pub tensor: String,
    /// Flat index of the element.
    pub index: usize,
    /// The f32 graph's value there.
    pub value_f32: f64,
    /// The f64 graph's value there.
    pub value_f64: f64,
    /// `|value_f32 - value_f64|`.
    pub abs_err: f64,
    /// The tolerance there.
    pub tol: f64,
    /// `abs_err / tol` (above 1 fails): how close to its bound the worst element came.
    pub ratio: f64,
    /// The `n` of the bound.
    pub terms: usize,
    /// Elements compared in all (output and gradients).
    pub checked: usize,
}

impl fmt::Display for PrecisionReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "worst of {} elements: {} index {}: f32 {:.9e}, f64 {:.9e}, abs err {:.3e} = {:.3} x tolerance {:.3e} (n = {})",
            self.checked, self.tensor, self.index, self.value_f32, self.value_f64, self.abs_err, self.ratio, self.tol, self.terms
        )
    }
}

fn invalid(why: String) -> GradcheckError {
    GradcheckError::Graph(AutogradError::Invalid {
        op: "precision_check",
        why,
    })
}

/// Runs `f32_fn` on `g32` and `f64_fn` on `g64` (the same computation built in each
/// precision), differentiates both with the same output projection, and compares the f32
/// output and the f32 gradients of `wrt32` with the f64 ones of `wrt64`. By default it also
/// runs the f32 backward twice and requires identical gradients
/// ([`PrecisionConfig::nondet_tol`]).
///
/// Every parameter of `g64` is first set to its counterpart of `g32` (paired in creation
/// order; their counts and shapes must match), widened exactly: both graphs then compute the
/// same function of the same numbers, and every difference is the f32 computation's rounding.
/// The projection weights are f32 numbers too.
///
/// **Tolerance.** Every value the check compares (an output element, a gradient element)
/// is computed as a sum of at most `n` terms (the dot products of the GEMM and convolution
/// kernels, the batch sums of weight gradients, batch norm's statistics), then passed
/// through elementwise functions accurate to a few units of roundoff. In a precision with
/// unit roundoff `u` such a sum errs by at most `gamma_n sum |terms|`, `gamma_n = n u / (1 -
/// n u)` (Higham, *Accuracy and Stability of Numerical Algorithms*, 2nd ed., section 3.1):
/// a worst case in which every rounding pushes the same way. With the rounding errors
/// modelled as independent and of mean zero, Higham and Mary (*A new approach to
/// probabilistic rounding error analysis*, SIAM J. Sci. Comput. 41, 2019) replace
/// `gamma_n` by `lambda sqrt(n) u` (to first order), the bound failing with a probability
/// that decays as `exp(-lambda^2 / 2)`. Two quantities of that bound are not visible from
/// outside the kernels:
/// - `sum |terms|` is taken as `|r_i| + max_j |r_j|`, the element's own f64 value plus the
///   largest of its tensor (the output, or one input's gradient): when the terms cancel,
///   the result is small but the terms are of the size of the tensor's large entries, which
///   the second part covers;
/// - `n` is [`PrecisionConfig::terms`], by default the number of elements of the checked
///   inputs, an upper bound on any one sum's length in one layer (nn's
///   `precision_check_layer` works out each layer kind's longest sum instead).
///
/// So element `i` passes when
///
/// `|r32_i - r64_i| <= lambda * sqrt(n) * u32 * (|r64_i| + max_j |r64_j|)`, `u32 = 2^-24`,
///
/// with `lambda = 4` by default. Measured over every layer kind of nn on each instruction
/// set (`nn/tests/precision_check.rs`), the worst element came to 0.18 of this bound: the
/// default leaves rounding a margin of five. A kernel error of 100 units in the last place in
/// an element of its tensor's largest magnitude `|r|` is more than `100 u32 |r|`, while the
/// tolerance there is at most `2 lambda sqrt(n) u32 |r|`: the check catches it whenever
/// `lambda sqrt(n) < 50` (`n` below 156 at the default `lambda`). The report's `ratio` gives
/// the margin.
///
/// ```
/// use nndl_autograd::{precision_check, Graph, PrecisionConfig, Tensor};
///
/// let x: Vec<f32> = (0..12).map(|i| (i as f32 - 5.5) / 4.0).collect();
/// let w: Vec<f32> = (0..8).map(|i| (i as f32 - 3.5) / 3.0).collect();
/// let mut g32 = Graph::<f32>::new();
/// let (x32, w32) = (g32.parameter("x", Tensor::from_vec(x, &[3, 4])?), g32.parameter("w", Tensor::from_vec(w, &[2, 4])?));
/// let mut g64 = Graph::<f64>::new(); // values copied from g32
/// let (x64, w64) = (g64.parameter("x", Tensor::zeros(&[3, 4])?), g64.parameter("w", Tensor::zeros(&[2, 4])?));
/// let report = precision_check(
///     &mut g32, &[x32, w32], |g| { let z = g.linear(x32, w32, None)?; g.tanh(z) },
///     &mut g64, &[x64, w64], |g| { let z = g.linear(x64, w64, None)?; g.tanh(z) },
///     PrecisionConfig::default(),
/// )?;
/// assert!(report.ratio <= 1.0 && report.checked == 6 + 12 + 8, "{report}");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`GradcheckError::Precision`] with the worst element when one exceeds its tolerance;
/// [`GradcheckError::Nondeterministic`] when the f32 run's two backwards differ (see
/// [`PrecisionConfig::nondet_tol`]);
/// [`GradcheckError::NotParameter`] when an input of `wrt32`/`wrt64` is not a parameter;
/// [`GradcheckError::Graph`] when the graphs do not correspond or building them fails.
pub fn precision_check<F32, F64>(
    g32: &mut Graph<f32>,
    wrt32: &[Var],
    mut f32_fn: F32,
    g64: &mut Graph<f64>,
    wrt64: &[Var],
    mut f64_fn: F64,
    cfg: PrecisionConfig,
) -> Result<PrecisionReport, GradcheckError>
where
    F32: FnMut(&mut Graph<f32>) -> Result<Var, AutogradError>,
    F64: FnMut(&mut Graph<f64>) -> Result<Var, AutogradError>,
{
    if wrt32.len() != wrt64.len() {
        return Err(invalid(format!(
            "{} inputs to check in f32 but {} in f64",
            wrt32.len(),
            wrt64.len()
        )));
    }
    for (i, (a, b)) in wrt32.iter().zip(wrt64).enumerate() {
        if !a.is_parameter()
            || g32.value(*a).is_err()
            || !b.is_parameter()
            || g64.value(*b).is_err()
        {
            return Err(GradcheckError::NotParameter(i));
        }
    }
    let p32: Vec<Var> = g32.parameters().collect();
    let p64: Vec<Var> = g64.parameters().collect();
    if p32.len() != p64.len() {
        return Err(invalid(format!(
            "the f32 graph has {} parameters, the f64 graph {}",
            p32.len(),
            p64.len()
        )));
    }
    for (&a, &b) in p32.iter().zip(&p64) {
        let v = g32.value(a)?;
        let (sa, sb) = (v.shape(), g64.value(b)?.shape());
        if sa != sb {
            let name = g32.name(a).unwrap_or("?");
            return Err(invalid(format!(
                "parameter {name} is {sa} in f32 but {sb} in f64"
            )));
        }
        let wide: Vec<f64> = v.data().iter().map(|&x| f64::from(x)).collect();
        g64.param_mut(b)?.data_mut().copy_from_slice(&wide);
    }

    g32.reset();
    g64.reset();
    let out32 = f32_fn(g32)?;
    let out64 = f64_fn(g64)?;
    let (s32, s64) = (g32.value(out32)?.shape(), g64.value(out64)?.shape());
    if s32 != s64 {
        return Err(invalid(format!(
            "the f32 output is {s32}, the f64 output {s64}"
        )));
    }
    let mut rng = rand_pcg::Pcg64::seed_from_u64(cfg.seed);
    let u: Vec<f32> = (0..s32.numel())
        .map(|_| {
            let m: f32 = rng.random_range(0.5..1.5);
            if rng.random_bool(0.5) {
                m
            } else {
                -m
            }
        })
        .collect();
    let u32t = Tensor::from_shape_vec(s32, u.clone()).map_err(AutogradError::from)?;
    let u64t = Tensor::from_shape_vec(s64, u.iter().map(|&x| f64::from(x)).collect())
        .map_err(AutogradError::from)?;
    g32.backward_with_grad(out32, &u32t)?;
    g64.backward_with_grad(out64, &u64t)?;

    let widen = |t: &Tensor<f32>| t.data().iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
    let mut pairs: Vec<(String, Vec<f64>, Vec<f64>)> = vec![(
        "output".to_string(),
        widen(g32.value(out32)?),
        g64.value(out64)?.data().to_vec(),
    )];
    for (&a, &b) in wrt32.iter().zip(wrt64) {
        let ga = g32
            .grad(a)
            .map(widen)
            .unwrap_or_else(|| vec![0.0; g32.val(a).numel()]);
        let gb = g64
            .grad(b)
            .map(|t| t.data().to_vec())
            .unwrap_or_else(|| vec![0.0; g64.val(b).numel()]);
        pairs.push((format!("grad {}", g32.name(a).unwrap_or("?")), ga, gb));
    }
    g32.reset();
    g64.reset();

    // The f32 kernels' own determinism: the f64 gradcheck's nondeterminism check never runs
    // them, and a kernel that splits a sum across threads by timing would differ here.
    if let Some(tol) = cfg.nondet_tol {
        let out = f32_fn(g32)?;
        g32.backward_with_grad(out, &u32t)?;
        let mut worst: Option<NondetReport> = None;
        for (k, &a) in wrt32.iter().enumerate() {
            let first = &pairs[k + 1].1;
            let second = g32
                .grad(a)
                .map(widen)
                .unwrap_or_else(|| vec![0.0; g32.val(a).numel()]);
            for (j, (&x, &y)) in first.iter().zip(&second).enumerate() {
                let d = if x.to_bits() == y.to_bits() {
                    0.0
                } else {
                    (x - y).abs()
                };
                let d = if d.is_nan() { f64::INFINITY } else { d };
                if d > tol && worst.as_ref().is_none_or(|w| d > w.abs_diff) {
                    worst = Some(NondetReport {
                        input: k,
                        name: format!("{} (f32)", g32.name(a).unwrap_or("?")),
                        index: j,
                        first: x,
                        second: y,
                        abs_diff: d,
                        tol,
                    });
                }
            }
        }
        g32.reset();
        if let Some(w) = worst {
            return Err(GradcheckError::Nondeterministic(w));
        }
    }

    let terms = cfg
        .terms
        .unwrap_or_else(|| wrt64.iter().map(|&v| g64.val(v).numel()).sum())
        .max(1);
    let unit = f64::from(f32::EPSILON) / 2.0;
    let mut worst: Option<PrecisionReport> = None;
    let mut checked = 0;
    for (tensor, a, b) in pairs {
        let big = b.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        for (index, (&x32, &x64)) in a.iter().zip(&b).enumerate() {
            let tol = cfg.lambda * (terms as f64).sqrt() * unit * (x64.abs() + big);
            let abs_err = (x32 - x64).abs();
            let ratio = if abs_err == 0.0 {
                0.0
            } else if tol == 0.0 || abs_err.is_nan() {
                f64::INFINITY
            } else {
                abs_err / tol
            };
            checked += 1;
            if worst.as_ref().is_none_or(|w| ratio > w.ratio) {
                worst = Some(PrecisionReport {
                    tensor: tensor.clone(),
                    index,
                    value_f32: x32,
                    value_f64: x64,
                    abs_err,
                    tol,
                    ratio,
                    terms,
                    checked: 0,
                });
            }
        }
    }
    let mut report = worst.expect("the output has at least one element");
    report.checked = checked;
    if report.ratio > 1.0 {
        Err(GradcheckError::Precision(report))
    } else {
        Ok(report)
    }
}
