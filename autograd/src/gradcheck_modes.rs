//! The complete first-order gradient check: [`gradcheck_with`] adds to [`gradcheck()`]'s
//! elementwise central differences
//! - a **nondeterminism check** (two backwards from the same state must agree, bitwise or
//!   within [`CheckOptions::nondet_tol`]),
//! - a **fast mode** for large inputs (random projections `u^T J v` computed both ways, the
//!   elementwise check only when one disagrees), and
//! - **kink detection**: an element whose finite-difference step crosses a point where `f` is
//!   not differentiable (a ReLU zero, a max-pool tie) is reported as a [`Kink`], not as a
//!   failure.
//!
//! [`gradcheck()`]: crate::gradcheck()

use crate::gradcheck::graph_of;
use crate::{AutogradError, GradcheckConfig, GradcheckError, GradcheckReport, Graph, Var};
use rand::{Rng, SeedableRng};
use std::fmt;
use tensor::Tensor;

/// What [`gradcheck_with`] does besides the elementwise check of `base`.
#[derive(Debug, Clone, Copy)]
pub struct CheckOptions {
    /// Step, tolerances and projection seed of the elementwise check (and of fast mode).
    pub base: GradcheckConfig,
    /// Fast mode: `Some(pairs)` compares `pairs` random projections `u^T J v` instead of every
    /// element, and runs the elementwise check only if one of them disagrees. `None` checks
    /// every element.
    pub fast: Option<usize>,
    /// Nondeterminism check: `Some(tol)` runs the backward twice from the same state and
    /// requires every gradient element of the two runs to agree within `tol` (absolute; `0.0`
    /// asks for identical bits). `None` skips it.
    pub nondet_tol: Option<f64>,
    /// Whether an element whose one-sided differences disagree (the step crossed a kink) is
    /// reported as a [`Kink`] and left out of the verdict, rather than failing the check. A
    /// smooth element (one-sided differences that agree) whose gradient is wrong still fails;
    /// a gradient wrong only at a kink is not caught (it cannot be told from a legitimate
    /// one-sided choice): check such an op away from its kinks too.
    pub kinks: bool,
}

impl Default for CheckOptions {
    /// The elementwise check with the default [`GradcheckConfig`], a bitwise nondeterminism
    /// check, and kink detection.
    fn default() -> Self {
        CheckOptions {
            base: GradcheckConfig::default(),
            fast: None,
            nondet_tol: Some(0.0),
            kinks: true,
        }
    }
}

/// An element where the finite-difference step crossed a point at which the function is not
/// differentiable: its one-sided difference quotients disagree far beyond the curvature
/// measured just beside the step. The analytic gradient there is one of the tape's choices
/// (a ReLU's derivative at 0, a max-pool's winner of a tie); it is reported for reading, not
/// judged (see [`CheckOptions::kinks`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Kink {
    /// Which of the checked inputs (position in `wrt`).
    pub input: usize,
    /// Its name.
    pub name: String,
    /// Flat index of the element.
    pub index: usize,
    /// The element's value.
    pub x: f64,
    /// `(f(x) - f(x - eps)) / eps`.
    pub slope_left: f64,
    /// `(f(x + eps) - f(x)) / eps`.
    pub slope_right: f64,
    /// The tape's gradient there.
    pub analytic: f64,
}

impl fmt::Display for Kink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "kink at input {} ({}) index {} (x = {:.6e}): left slope {:.6e}, right slope {:.6e}, analytic {:.6e}",
            self.input, self.name, self.index, self.x, self.slope_left, self.slope_right, self.analytic
        )
    }
}

/// Fast mode's projections: how many, and the worst one.
#[derive(Debug, Clone, PartialEq)]
pub struct FastReport {
    /// Projections compared.
    pub pairs: usize,
    /// `u^T J v` from the tape, at the worst projection.
    pub analytic: f64,
    /// `u^T J v` by a central difference along `v`, there.
    pub numeric: f64,
    /// `|analytic - numeric| / (atol + rtol * max(|analytic|, |numeric|))` there (above 1
    /// fails).
    pub badness: f64,
    /// Whether a projection disagreed, so the elementwise check ran (and gave the verdict).
    pub fell_back: bool,
}

/// Two backwards from the same state that gave different gradients: the worst element.
#[derive(Debug, Clone, PartialEq)]
pub struct NondetReport {
    /// Which of the checked inputs (position in `wrt`).
    pub input: usize,
    /// Its name.
    pub name: String,
    /// Flat index of the element.
    pub index: usize,
    /// The gradient there in the first backward.
    pub first: f64,
    /// ... and in the second.
    pub second: f64,
    /// `|first - second|`.
    pub abs_diff: f64,
    /// The tolerance it exceeded.
    pub tol: f64,
}

impl fmt::Display for NondetReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "input {} ({}) index {}: first backward {:.17e}, second {:.17e}, difference {:.3e} > tolerance {:.3e}",
            self.input, self.name, self.index, self.first, self.second, self.abs_diff, self.tol
        )
    }
}

/// What [`gradcheck_with`] found when the check passed.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckReport {
    /// The elementwise check's worst element that is not a kink (all zeros with
    /// `checked == 0` when fast mode passed and the elementwise check did not run).
    pub worst: GradcheckReport,
    /// Elements reported as kinks (left out of the verdict).
    pub kinks: Vec<Kink>,
    /// Fast mode's outcome, when it ran.
    pub fast: Option<FastReport>,
    /// The largest difference between the two backwards, when the nondeterminism check ran.
    pub nondet_max: Option<f64>,
}

/// Random weights in ±[0.5, 1.5] for every element of `shape` (1 for a scalar): the output
/// projection `u`, as `gradcheck` draws it (kept away from 0 so every output element counts).
fn random_projection(shape: tensor::Shape, seed: u64) -> Result<Tensor<f64>, AutogradError> {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    let n = shape.numel();
    let w = if n == 1 {
        vec![1.0]
    } else {
        (0..n)
            .map(|_| rng.random_range(0.5..1.5) * if rng.random_bool(0.5) { 1.0 } else { -1.0 })
            .collect()
    };
    Ok(Tensor::from_shape_vec(shape, w)?)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The state a check works on: the graph, the inputs, the function and the current
/// projection.
struct Checker<'g, F> {
    g: &'g mut Graph<f64>,
    wrt: &'g [Var],
    f: F,
}

impl<F> Checker<'_, F>
where
    F: FnMut(&mut Graph<f64>) -> Result<Var, AutogradError>,
{
    /// `u . f(params)` without recording (the numeric side).
    fn phi(&mut self, u: &mut Option<Tensor<f64>>, seed: u64) -> Result<f64, AutogradError> {
        self.g.reset();
        let out = self.g.no_grad(&mut self.f)?;
        let v = self.g.value(out)?;
        if u.as_ref().map(|u| u.shape()) != Some(v.shape()) {
            *u = Some(random_projection(v.shape(), seed)?);
        }
        Ok(dot(v.data(), u.as_ref().expect("set above").data()))
    }

    /// The gradients of `u . f` for every input of `wrt` (one recorded forward, one backward).
    fn analytic(
        &mut self,
        u: &mut Option<Tensor<f64>>,
        seed: u64,
    ) -> Result<Vec<Tensor<f64>>, AutogradError> {
        self.g.reset();
        let out = (self.f)(self.g)?;
        let shape = self.g.value(out)?.shape();
        if u.as_ref().map(|u| u.shape()) != Some(shape) {
            *u = Some(random_projection(shape, seed)?);
        }
        self.g
            .backward_with_grad(out, u.as_ref().expect("set above"))?;
        let grads = self
            .wrt
            .iter()
            .map(|&p| {
                self.g
                    .grad(p)
                    .cloned()
                    .unwrap_or_else(|| Tensor::zeros_shape(self.g.val(p).shape()))
            })
            .collect();
        self.g.reset();
        Ok(grads)
    }

    /// `u . f` with element `j` of input `p` set to `x` (restored to `x0` after).
    fn phi_at(
        &mut self,
        (p, j, x0): (Var, usize, f64),
        x: f64,
        u: &mut Option<Tensor<f64>>,
        seed: u64,
    ) -> Result<f64, AutogradError> {
        self.g.param_mut(p)?.data_mut()[j] = x;
        let r = self.phi(u, seed);
        self.g.param_mut(p)?.data_mut()[j] = x0;
        r
    }

    fn name(&self, i: usize) -> String {
        self.g.name(self.wrt[i]).unwrap_or("?").to_string()
    }

    /// Adds `t * dir` to every input.
    fn shift(&mut self, dir: &[Tensor<f64>], t: f64) -> Result<(), AutogradError> {
        for (&p, d) in self.wrt.iter().zip(dir) {
            let x = self.g.param_mut(p)?;
            x.data_mut()
                .iter_mut()
                .zip(d.data())
                .for_each(|(x, d)| *x += t * d);
        }
        Ok(())
    }
}

/// Checks the gradients of `f` with respect to the parameters `wrt` of `g`, as
/// [`gradcheck()`](crate::gradcheck()) does, with the nondeterminism check, fast mode and kink
/// detection of `opts` (see [`CheckOptions`]). `f` is called as by `gradcheck` (and must be
/// deterministic in its values: fix dropout masks).
///
/// In fast mode each projection costs three forward passes (one recorded, two for the
/// central difference along `v`) and one backward, whatever the number of elements; `v` is a
/// random direction over all of `wrt` with unit 2-norm and `u` random weights in ±[0.5, 1.5]
/// over the output. A projection passes when
/// `|a - n| <= atol + rtol * max(|a|, |n|)` (PyTorch's `fast_mode` criterion): a central
/// difference along a unit direction has the error of one element's. When one fails, the
/// elementwise check runs and its verdict (and worst element) is the result; the
/// [`FastReport`] says that it fell back.
///
/// ```
/// use nndl_autograd::{gradcheck_fn_with, CheckOptions, Tensor};
///
/// // tanh of a 40x50 product: 4,000 elements, checked by 8 projections (24 forwards).
/// let a = Tensor::from_vec((0..2000).map(|i| ((i * 37 % 101) as f64 - 50.0) / 90.0).collect(), &[40, 50])?;
/// let b = Tensor::from_vec((0..2000).map(|i| ((i * 53 % 97) as f64 - 48.0) / 85.0).collect(), &[50, 40])?;
/// let opts = CheckOptions { fast: Some(8), ..Default::default() };
/// let report = gradcheck_fn_with(&[a, b], |g, v| {
///     let y = g.matmul(v[0], v[1])?;
///     g.tanh(y)
/// }, opts)?;
/// let fast = report.fast.unwrap();
/// assert_eq!((fast.pairs, fast.fell_back), (8, false));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`GradcheckError::Nondeterministic`] when the two backwards differ beyond `nondet_tol`;
/// [`GradcheckError::Mismatch`] with the worst non-kink element when the elementwise check
/// fails; [`GradcheckError::NotParameter`] and [`GradcheckError::Graph`] as `gradcheck`.
pub fn gradcheck_with<F>(
    g: &mut Graph<f64>,
    wrt: &[Var],
    f: F,
    opts: CheckOptions,
) -> Result<CheckReport, GradcheckError>
where
    F: FnMut(&mut Graph<f64>) -> Result<Var, AutogradError>,
{
    for (i, v) in wrt.iter().enumerate() {
        if !v.is_parameter() || g.value(*v).is_err() {
            return Err(GradcheckError::NotParameter(i));
        }
    }
    let mut c = Checker { g, wrt, f };
    let cfg = opts.base;
    let mut u = None;
    let analytic = c.analytic(&mut u, cfg.seed)?;

    let nondet_max = match opts.nondet_tol {
        Some(tol) => Some(nondet_check(&mut c, &analytic, &mut u, cfg.seed, tol)?),
        None => None,
    };

    let fast = match opts.fast {
        Some(pairs) => {
            let r = fast_check(&mut c, pairs, cfg)?;
            if !r.fell_back {
                return Ok(CheckReport {
                    worst: GradcheckReport::nothing_checked(),
                    kinks: Vec::new(),
                    fast: Some(r),
                    nondet_max,
                });
            }
            Some(r)
        }
        None => None,
    };

    let (worst, kinks) = elementwise(&mut c, &analytic, &mut u, cfg, opts.kinks)?;
    c.g.reset();
    match worst {
        Err(report) => Err(GradcheckError::Mismatch(report)),
        Ok(worst) => Ok(CheckReport {
            worst,
            kinks,
            fast,
            nondet_max,
        }),
    }
}

/// [`gradcheck_with`] on a function of plain tensors, as [`gradcheck_fn`](crate::gradcheck_fn)
/// (each input a parameter named `input{i}` of a fresh graph).
pub fn gradcheck_fn_with<F>(
    inputs: &[Tensor<f64>],
    mut f: F,
    opts: CheckOptions,
) -> Result<CheckReport, GradcheckError>
where
    F: FnMut(&mut Graph<f64>, &[Var]) -> Result<Var, AutogradError>,
{
    let (mut g, vars) = graph_of(inputs);
    gradcheck_with(&mut g, &vars, |g| f(g, &vars), opts)
}

/// A second backward from the same parameters and projection, compared element by element
/// with the first. Returns the largest difference.
fn nondet_check<F>(
    c: &mut Checker<'_, F>,
    first: &[Tensor<f64>],
    u: &mut Option<Tensor<f64>>,
    seed: u64,
    tol: f64,
) -> Result<f64, GradcheckError>
where
    F: FnMut(&mut Graph<f64>) -> Result<Var, AutogradError>,
{
    let second = c.analytic(u, seed)?;
    let mut worst: Option<NondetReport> = None;
    for (i, (a, b)) in first.iter().zip(&second).enumerate() {
        for (j, (&x, &y)) in a.data().iter().zip(b.data()).enumerate() {
            // Bitwise equality first, so that tol = 0 accepts equal infinities and a NaN
            // produced the same way twice is still caught by the mismatch check, not here.
            let d = if x.to_bits() == y.to_bits() {
                0.0
            } else {
                (x - y).abs()
            };
            let d = if d.is_nan() { f64::INFINITY } else { d };
            if worst.as_ref().is_none_or(|w| d > w.abs_diff) {
                worst = Some(NondetReport {
                    input: i,
                    name: c.name(i),
                    index: j,
                    first: x,
                    second: y,
                    abs_diff: d,
                    tol,
                });
            }
        }
    }
    match worst {
        Some(w) if w.abs_diff > tol => Err(GradcheckError::Nondeterministic(w)),
        Some(w) => Ok(w.abs_diff),
        None => Ok(0.0),
    }
}

/// Fast mode: `pairs` random projections `u^T J v`, each on its own `u` and `v`.
fn fast_check<F>(
    c: &mut Checker<'_, F>,
    pairs: usize,
    cfg: GradcheckConfig,
) -> Result<FastReport, GradcheckError>
where
    F: FnMut(&mut Graph<f64>) -> Result<Var, AutogradError>,
{
    let mut report = FastReport {
        pairs,
        analytic: 0.0,
        numeric: 0.0,
        badness: 0.0,
        fell_back: false,
    };
    for k in 0..pairs {
        // Seeds distinct from the elementwise check's projection and from each other.
        let seed = cfg
            .seed
            .wrapping_add(0x9e37_79b9_7f4a_7c15u64.wrapping_mul(k as u64 + 1));
        let mut rng = rand_pcg::Pcg64::seed_from_u64(seed ^ 0xfa57);
        let mut dir: Vec<Tensor<f64>> = c
            .wrt
            .iter()
            .map(|&p| {
                let n = c.g.val(p).numel();
                let d = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
                Tensor::from_shape_vec(c.g.val(p).shape(), d).map_err(AutogradError::from)
            })
            .collect::<Result<_, _>>()?;
        let norm = dir
            .iter()
            .map(|d| dot(d.data(), d.data()))
            .sum::<f64>()
            .sqrt();
        if norm == 0.0 {
            continue; // nothing to perturb
        }
        dir.iter_mut()
            .for_each(|d| d.data_mut().iter_mut().for_each(|x| *x /= norm));

        let mut u = None;
        let grads = c.analytic(&mut u, seed)?;
        let analytic: f64 = grads
            .iter()
            .zip(&dir)
            .map(|(g, d)| dot(g.data(), d.data()))
            .sum();
        let saved: Vec<Tensor<f64>> = c.wrt.iter().map(|&p| c.g.val(p).clone()).collect();
        c.shift(&dir, cfg.eps)?;
        let fp = c.phi(&mut u, seed);
        // Restore exactly (x + eps d - 2 eps d is not x in floating point).
        restore(c, &saved)?;
        c.shift(&dir, -cfg.eps)?;
        let fm = c.phi(&mut u, seed);
        restore(c, &saved)?;
        let numeric = (fp? - fm?) / (2.0 * cfg.eps);
        let scale = analytic.abs().max(numeric.abs());
        let badness = (analytic - numeric).abs() / (cfg.atol + cfg.rtol * scale);
        let badness = if badness.is_nan() {
            f64::INFINITY
        } else {
            badness
        };
        if k == 0 || badness > report.badness {
            (report.analytic, report.numeric, report.badness) = (analytic, numeric, badness);
        }
    }
    report.fell_back = report.badness > 1.0;
    Ok(report)
}

fn restore<F>(c: &mut Checker<'_, F>, saved: &[Tensor<f64>]) -> Result<(), AutogradError> {
    for (&p, s) in c.wrt.iter().zip(saved) {
        c.g.param_mut(p)?.data_mut().copy_from_slice(s.data());
    }
    Ok(())
}

/// The elementwise check, with kink detection when `kinks`. Returns the worst non-kink
/// element (as `Err` when it fails) and the kinks found.
type Elementwise = (Result<GradcheckReport, GradcheckReport>, Vec<Kink>);

fn elementwise<F>(
    c: &mut Checker<'_, F>,
    analytic: &[Tensor<f64>],
    u: &mut Option<Tensor<f64>>,
    cfg: GradcheckConfig,
    kinks: bool,
) -> Result<Elementwise, GradcheckError>
where
    F: FnMut(&mut Graph<f64>) -> Result<Var, AutogradError>,
{
    let eps = cfg.eps;
    let mut f0 = None;
    let mut found = Vec::new();
    let mut worst: Option<(f64, GradcheckReport)> = None;
    let mut checked = 0;
    for (i, grad) in analytic.iter().enumerate() {
        let p = c.wrt[i];
        let n = c.g.val(p).numel();
        for j in 0..n {
            let x0 = c.g.val(p).data()[j];
            let el = (p, j, x0);
            let fp = c.phi_at(el, x0 + eps, u, cfg.seed)?;
            let fm = c.phi_at(el, x0 - eps, u, cfg.seed)?;
            let numeric = (fp - fm) / (2.0 * eps);
            let a = grad.data()[j];
            let abs_err = (a - numeric).abs();
            let scale = a.abs().max(numeric.abs());
            let rel_err = if scale == 0.0 { 0.0 } else { abs_err / scale };
            let badness = abs_err / (cfg.atol + cfg.rtol * scale);
            checked += 1;
            // Only a finite mismatch may be a kink: a NaN is never excused.
            if kinks && badness > 1.0 {
                let f0 = match f0 {
                    Some(v) => v,
                    None => *f0.insert(c.phi_at(el, x0, u, cfg.seed)?),
                };
                if let Some(k) = kink(c, el, u, (fm, f0, fp), a, cfg)? {
                    found.push(Kink {
                        input: i,
                        name: c.name(i),
                        index: j,
                        ..k
                    });
                    continue;
                }
            }
            if worst
                .as_ref()
                .is_none_or(|(b, _)| badness > *b || badness.is_nan())
            {
                worst = Some((
                    badness,
                    GradcheckReport {
                        input: i,
                        name: c.name(i),
                        index: j,
                        analytic: a,
                        numeric,
                        abs_err,
                        rel_err,
                        checked: 0,
                    },
                ));
            }
        }
    }
    let (badness, mut report) = worst.unwrap_or((0.0, GradcheckReport::nothing_checked()));
    report.checked = checked;
    let verdict = if badness > 1.0 || badness.is_nan() {
        Err(report)
    } else {
        Ok(report)
    };
    Ok((verdict, found))
}

/// Whether the step around `x0` crossed a kink, given `f` at `x0 - eps`, `x0`, `x0 + eps`.
///
/// For a smooth `f`, the one-sided quotients differ by `eps f''(x0) + O(eps^2)`. Beside the
/// step, on `[x0 + eps, x0 + 3 eps]` and `[x0 - 3 eps, x0 - eps]`, the second differences
/// measure `f''` there; for a smooth `f` it is the same `f''` to `O(eps)`, while a kink inside
/// `[x0 - eps, x0 + eps]` shows only in the one-sided quotients at `x0` (a jump of the slope,
/// which no step size shrinks). So the element is a kink when the quotients differ by more
/// than ten times `eps` times the smaller of the two neighbouring curvatures (the smaller, so
/// that another kink in one neighbourhood does not inflate it), plus the tolerance the check
/// allows a slope and the rounding of `f` divided by `eps`. An element whose quotients agree
/// is smooth, and its mismatch stands.
///
/// The analytic gradient is not required to lie between the two quotients: where several
/// kinks coincide (a zero-initialised ReLU layer, whose every pre-activation is 0, moved to
/// both sides of 0 at once by one weight), the tape's choice (`relu'(0) = 0` for each) is a
/// legitimate generalised gradient outside that interval. So a gradient that is wrong only
/// at a kink is reported as a kink, with both slopes and the analytic value to read.
fn kink<F>(
    c: &mut Checker<'_, F>,
    el: (Var, usize, f64),
    u: &mut Option<Tensor<f64>>,
    (fm, f0, fp): (f64, f64, f64),
    analytic: f64,
    cfg: GradcheckConfig,
) -> Result<Option<Kink>, AutogradError>
where
    F: FnMut(&mut Graph<f64>) -> Result<Var, AutogradError>,
{
    let (eps, x0) = (cfg.eps, el.2);
    let mut at = |x: f64| c.phi_at(el, x, u, cfg.seed);
    let right = (fp - f0) / eps;
    let left = (f0 - fm) / eps;
    let slope_tol = |s: f64| cfg.atol + cfg.rtol * s.abs();
    let noise = 8.0 * f64::EPSILON * fp.abs().max(fm.abs()).max(f0.abs()) / eps;
    let jump = (right - left).abs();
    if jump <= slope_tol(right.abs().max(left.abs())) + noise {
        return Ok(None);
    }
    let (f2p, f3p) = (at(x0 + 2.0 * eps)?, at(x0 + 3.0 * eps)?);
    let (f2m, f3m) = (at(x0 - 2.0 * eps)?, at(x0 - 3.0 * eps)?);
    let curv_right = (f3p - 2.0 * f2p + fp) / (eps * eps);
    let curv_left = (fm - 2.0 * f2m + f3m) / (eps * eps);
    let curvature = curv_right.abs().min(curv_left.abs());
    let smooth_jump = 10.0 * eps * curvature + slope_tol(right.abs().max(left.abs())) + noise;
    Ok((jump > smooth_jump).then_some(Kink {
        input: 0,
        name: String::new(),
        index: 0,
        x: x0,
        slope_left: left,
        slope_right: right,
        analytic,
    }))
}
