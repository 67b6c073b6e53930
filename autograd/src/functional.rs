//! Derivatives of whole functions, built on the differentiable backward
//! ([`Graph::gradients`]): Hessian-vector products, Jacobian-vector products and small full
//! Hessians (PyTorch's `torch.autograd.functional`, JAX's `jvp` / `hessian`).
//!
//! A function here is a closure that builds its value on a fresh [`Graph`] from the Vars of
//! its inputs, as in [`gradcheck_fn`](crate::gradcheck_fn). [`hvp_on`] works on a graph the
//! caller built instead (a network's parameters).
//!
//! A Hessian-vector product never forms the Hessian: `H v` is the gradient of `v . grad f`,
//! one recorded gradient and one ordinary backward through it, about the cost of two or three
//! gradients, where `H` itself would have `n^2` entries.
//!
//! ```
//! use nndl_autograd::{functional::hvp, Tensor};
//!
//! // f(x) = sum x^3 has Hessian diag(6x): H v = 6 x v.
//! let x = Tensor::from_vec(vec![1.0, -2.0], &[2])?;
//! let v = Tensor::from_vec(vec![0.5, 1.0], &[2])?;
//! let (f, hv) = hvp(|g, x| {
//!     let x2 = g.mul(x[0], x[0])?;
//!     let x3 = g.mul(x2, x[0])?;
//!     g.sum(x3)
//! }, &[x], &[v])?;
//! assert_eq!(f, -7.0);
//! assert_eq!(hv[0].data(), &[3.0, -12.0]);
//! # Ok::<(), nndl_autograd::AutogradError>(())
//! ```

use crate::{AutogradError, Graph, Result, Var};
use tensor::{Float, Tensor, TensorError};

/// Fails unless `v` has one tensor per Var of `wrt`, of its shape.
fn check_directions<T: Float>(
    g: &Graph<T>,
    op: &'static str,
    wrt: &[Var],
    v: &[Tensor<T>],
) -> Result<()> {
    if v.len() != wrt.len() {
        return Err(AutogradError::Invalid {
            op,
            why: format!("{} direction tensors for {} inputs", v.len(), wrt.len()),
        });
    }
    for (&x, d) in wrt.iter().zip(v) {
        let s = g.value(x)?.shape();
        if d.shape() != s {
            return Err(TensorError::ShapeMismatch {
                op,
                lhs: s,
                rhs: d.shape(),
                why: "a direction must have its input's shape".into(),
            }
            .into());
        }
    }
    Ok(())
}

/// `sum_i <a_i, v_i>` on the tape, the `v_i` constants; `None` for no terms.
fn dot_with<T: Float>(g: &mut Graph<T>, a: &[Var], v: &[Tensor<T>]) -> Result<Option<Var>> {
    let mut acc = None;
    for (&a, v) in a.iter().zip(v) {
        // In a buffer of the graph's: `hvp_on` may run on a training graph every step.
        let mut c = g.alloc(v.shape());
        c.data_mut().copy_from_slice(v.data());
        let c = g.input(c);
        let p = g.mul(a, c)?;
        let s = g.sum(p)?;
        acc = Some(match acc {
            Some(prev) => g.add(prev, s)?,
            None => s,
        });
    }
    Ok(acc)
}

/// Stored gradients of `wrt`, zeros where the backward did not reach.
fn stored_grads<T: Float>(g: &Graph<T>, wrt: &[Var]) -> Result<Vec<Tensor<T>>> {
    wrt.iter()
        .map(|&x| {
            Ok(match g.grad(x) {
                Some(t) => t.clone(),
                None => Tensor::zeros_shape(g.value(x)?.shape()),
            })
        })
        .collect()
}

/// Puts `inputs` on a fresh graph as leaves and builds `f` on them.
fn build<T: Float, F>(f: F, inputs: &[Tensor<T>]) -> Result<(Graph<T>, Vec<Var>, Var)>
where
    F: FnOnce(&mut Graph<T>, &[Var]) -> Result<Var>,
{
    let mut g = Graph::new();
    let xs: Vec<Var> = inputs.iter().map(|t| g.leaf(t.clone())).collect();
    let out = f(&mut g, &xs)?;
    Ok((g, xs, out))
}

/// The Hessian-vector product of the scalar `output` of a graph with respect to `wrt`:
/// `H v` with `H` the Hessian of `output` in the Vars of `wrt` (all of them together, mixed
/// second derivatives included), `v` one tensor per Var. Returns one tensor per Var.
///
/// The gradient is recorded on the tape ([`Graph::gradients`]), projected onto `v`, and
/// differentiated by the first-order [`Graph::backward`] with its fused kernels. That backward
/// replaces the graph's stored gradients: afterwards they are those of `v . grad output` (what
/// was stored before is discarded). Call [`Graph::reset`] before the next step as usual.
///
/// It is `H v` where every op's backward is the derivative of its forward, as every op's is
/// by default. network3's tie-splitting pool gradient ([`PoolGrad::Ties`](tensor::pool::PoolGrad))
/// is not, where a window's tied positions have equal input patches: through it this
/// returns the product with the transposed Jacobian of that rule's gradient, which is not
/// symmetric and is no Hessian.
///
/// ```
/// use nndl_autograd::{functional::hvp_on, Graph, Tensor};
///
/// // A quadratic cost of a linear model, mean_b 0.5 |w x_b - y_b|^2: Hessian in w is
/// // mean_b x_b x_b^T, whatever w is.
/// let mut g = Graph::<f64>::new();
/// let w = g.parameter("w", Tensor::from_vec(vec![0.3, -0.2], &[1, 2])?);
/// let x = g.input(Tensor::from_vec(vec![1.0, 2.0, 3.0, -1.0], &[2, 2])?);
/// let y = g.input(Tensor::from_vec(vec![0.5, 0.1], &[2, 1])?);
/// let a = g.linear(x, w, None)?;
/// let cost = g.quadratic_cost(a, y)?;
/// let v = Tensor::from_vec(vec![1.0, 0.0], &[1, 2])?;
/// let hv = hvp_on(&mut g, cost, &[w], &[v])?;
/// // H = ([1 2; 2 4] + [9 -3; -3 1]) / 2 = [5 -0.5; -0.5 2.5]; H e1 = [5, -0.5].
/// assert_eq!(hv[0].data(), &[5.0, -0.5]);
/// # Ok::<(), nndl_autograd::AutogradError>(())
/// ```
pub fn hvp_on<T: Float>(
    g: &mut Graph<T>,
    output: Var,
    wrt: &[Var],
    v: &[Tensor<T>],
) -> Result<Vec<Tensor<T>>> {
    check_directions(g, "hvp", wrt, v)?;
    let grads = g.gradients(output, wrt)?;
    g.clear_grads();
    if let Some(dot) = dot_with(g, &grads, v)? {
        g.backward(dot)?;
    }
    stored_grads(g, wrt)
}

/// The value of the scalar function `f` at `inputs` and its Hessian-vector product `H v`
/// (one tensor per input; `H` the Hessian in all inputs together). `f` builds the function
/// on a fresh graph from the Vars of its inputs. See [`hvp_on`] for how.
pub fn hvp<T: Float, F>(f: F, inputs: &[Tensor<T>], v: &[Tensor<T>]) -> Result<(T, Vec<Tensor<T>>)>
where
    F: FnOnce(&mut Graph<T>, &[Var]) -> Result<Var>,
{
    let (mut g, xs, out) = build(f, inputs)?;
    let value = scalar_value(&g, out)?;
    let hv = hvp_on(&mut g, out, &xs, v)?;
    Ok((value, hv))
}

fn scalar_value<T: Float>(g: &Graph<T>, out: Var) -> Result<T> {
    let t = g.value(out)?;
    if t.numel() != 1 {
        return Err(AutogradError::NotScalar(t.shape()));
    }
    Ok(t.data()[0])
}

/// The value of `f` at `inputs` (any shape) and its Jacobian-vector product `J v` (the
/// output's shape): the directional derivative of `f` along `v`, one tensor per input.
///
/// Reverse mode computes `J^T u`; `J v` comes from the double-backward trick: `J^T u` is
/// recorded on the tape with `u` a Var ([`Graph::gradients_with_grad`]), and the gradient of
/// `<J^T u, v>` with respect to `u` is `J v` (the value of `u` does not matter: the
/// expression is linear in it). Two reverse passes, no forward-mode code in any op.
///
/// ```
/// use nndl_autograd::{functional::jvp, Tensor};
///
/// // f(x) = tanh(x): J = diag(1 - tanh^2 x), so J v = (1 - tanh^2 x) v.
/// let x = Tensor::from_vec(vec![0.0, 1.0], &[2])?;
/// let v = Tensor::from_vec(vec![2.0, 3.0], &[2])?;
/// let (y, jv) = jvp(|g, x| g.tanh(x[0]), &[x], &[v])?;
/// assert_eq!(y.data(), &[0.0, 1f64.tanh()]);
/// assert_eq!(jv.data()[0], 2.0);
/// assert!((jv.data()[1] - 3.0 * (1.0 - 1f64.tanh().powi(2))).abs() < 1e-15);
/// # Ok::<(), nndl_autograd::AutogradError>(())
/// ```
pub fn jvp<T: Float, F>(
    f: F,
    inputs: &[Tensor<T>],
    v: &[Tensor<T>],
) -> Result<(Tensor<T>, Tensor<T>)>
where
    F: FnOnce(&mut Graph<T>, &[Var]) -> Result<Var>,
{
    let (mut g, xs, out) = build(f, inputs)?;
    check_directions(&g, "jvp", &xs, v)?;
    let value = g.value(out)?.clone();
    let u = g.leaf(Tensor::zeros_shape(value.shape()));
    let jtu = g.gradients_with_grad(out, u, &xs)?;
    if let Some(dot) = dot_with(&mut g, &jtu, v)? {
        g.backward(dot)?;
    }
    let jv = match g.grad(u) {
        Some(t) => t.clone(),
        None => Tensor::zeros_shape(value.shape()),
    };
    Ok((value, jv))
}

/// The value of the scalar function `f` at `inputs` and its full Hessian, `[n, n]` with `n`
/// the number of elements of all inputs, flattened in order and concatenated. For small
/// functions: one backward per row through the recorded gradient.
///
/// ```
/// use nndl_autograd::{functional::hessian, Tensor};
///
/// // f(a, b) = a^2 b: H = [[2b, 2a], [2a, 0]].
/// let (a, b) = (Tensor::from_vec(vec![3.0], &[1])?, Tensor::from_vec(vec![5.0], &[1])?);
/// let (f, h) = hessian(|g, v| {
///     let aa = g.mul(v[0], v[0])?;
///     let y = g.mul(aa, v[1])?;
///     g.sum(y)
/// }, &[a, b])?;
/// assert_eq!(f, 45.0);
/// assert_eq!(h.dims(), &[2, 2]);
/// assert_eq!(h.data(), &[10.0, 6.0, 6.0, 0.0]);
/// # Ok::<(), nndl_autograd::AutogradError>(())
/// ```
pub fn hessian<T: Float, F>(f: F, inputs: &[Tensor<T>]) -> Result<(T, Tensor<T>)>
where
    F: FnOnce(&mut Graph<T>, &[Var]) -> Result<Var>,
{
    let (mut g, xs, out) = build(f, inputs)?;
    let value = scalar_value(&g, out)?;
    let grads = g.gradients(out, &xs)?;
    let n: usize = inputs.iter().map(Tensor::numel).sum();
    let mut h = Vec::with_capacity(n * n);
    for (&gi, x) in grads.iter().zip(inputs) {
        for j in 0..x.numel() {
            // Row (i, j): the gradient of that one element of the gradient.
            let mut seed = Tensor::zeros_shape(x.shape());
            seed.data_mut()[j] = T::one();
            g.clear_grads();
            g.backward_with_grad(gi, &seed)?;
            for t in stored_grads(&g, &xs)? {
                h.extend_from_slice(t.data());
            }
        }
    }
    Ok((value, Tensor::from_vec(h, &[n, n])?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::randoms;

    /// `|a - b| / |b|` over all elements (the Euclidean norms).
    fn rel_dist(a: &[f64], b: &[f64]) -> f64 {
        let d: f64 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
        let n: f64 = b.iter().map(|y| y * y).sum();
        (d / n).sqrt()
    }

    #[test]
    fn quadratic_form_has_hessian_a_plus_a_transpose() {
        // f(x) = x^T A x with A not symmetric.
        let a = randoms(&[&[4, 4]], 3).remove(0);
        let x = randoms(&[&[4, 1]], 4).remove(0);
        let f = |g: &mut Graph<f64>, v: &[Var]| {
            let a = g.input(a.clone());
            let ax = g.matmul(a, v[0])?;
            let p = g.mul(v[0], ax)?;
            g.sum(p)
        };
        let (_, h) = hessian(f, std::slice::from_ref(&x)).unwrap();
        let ad = a.data();
        for i in 0..4 {
            for j in 0..4 {
                let want = ad[i * 4 + j] + ad[j * 4 + i];
                let got = h.data()[i * 4 + j];
                assert!(
                    (got - want).abs() < 1e-14,
                    "H[{i},{j}] = {got}, A + A^T has {want}"
                );
            }
        }
        // hvp against the same closed form.
        let v = randoms(&[&[4, 1]], 5).remove(0);
        let (_, hv) = hvp(f, &[x], std::slice::from_ref(&v)).unwrap();
        for i in 0..4 {
            let want: f64 = (0..4)
                .map(|j| (ad[i * 4 + j] + ad[j * 4 + i]) * v.data()[j])
                .sum();
            assert!((hv[0].data()[i] - want).abs() < 1e-14);
        }
    }

    /// The Rosenbrock function in n dimensions, sum_i 100 (x_{i+1} - x_i^2)^2 + (1 - x_i)^2,
    /// with x_i and x_{i+1} picked by constant selection matrices.
    fn rosenbrock(g: &mut Graph<f64>, x: Var, n: usize) -> Result<Var> {
        let pick = |shift: usize| {
            let mut s = Tensor::zeros(&[n - 1, n]).unwrap();
            for i in 0..n - 1 {
                s.data_mut()[i * n + i + shift] = 1.0;
            }
            s
        };
        let (s0, s1) = (g.input(pick(0)), g.input(pick(1)));
        let xi = g.matmul(s0, x)?;
        let xn = g.matmul(s1, x)?;
        let sq = g.mul(xi, xi)?;
        let d = g.sub(xn, sq)?;
        let a = g.sum_squares(d)?;
        let a = g.scale(a, 100.0)?;
        let one = g.input(Tensor::scalar(1.0));
        let e = g.sub(one, xi)?;
        let b = g.sum_squares(e)?;
        g.add(a, b)
    }

    #[test]
    fn rosenbrock_hessian_in_closed_form() {
        let n = 5;
        for (seed, at_min) in [(7, false), (8, false), (0, true)] {
            let x = if at_min {
                Tensor::full(&[n, 1], 1.0).unwrap()
            } else {
                randoms(&[&[n, 1]], seed).remove(0).map(|v| 1.5 * v)
            };
            let xd = x.data().to_vec();
            let (f, h) = hessian(|g, v| rosenbrock(g, v[0], n), &[x]).unwrap();
            let want_f: f64 = (0..n - 1)
                .map(|i| 100.0 * (xd[i + 1] - xd[i] * xd[i]).powi(2) + (1.0 - xd[i]).powi(2))
                .sum();
            assert!((f - want_f).abs() <= 1e-12 * want_f.max(1.0));
            // Tridiagonal: H_ii = 1200 x_i^2 - 400 x_{i+1} + 2 (i < n-1) + 200 (i > 0),
            // H_{i,i+1} = H_{i+1,i} = -400 x_i.
            for i in 0..n {
                for j in 0..n {
                    let want = if i == j {
                        let mut d = 0.0;
                        if i + 1 < n {
                            d += 1200.0 * xd[i] * xd[i] - 400.0 * xd[i + 1] + 2.0;
                        }
                        if i > 0 {
                            d += 200.0;
                        }
                        d
                    } else if j == i + 1 {
                        -400.0 * xd[i]
                    } else if i == j + 1 {
                        -400.0 * xd[j]
                    } else {
                        0.0
                    };
                    let got = h.data()[i * n + j];
                    assert!(
                        (got - want).abs() <= 1e-12 * want.abs().max(1.0),
                        "H[{i},{j}] = {got}, closed form {want}"
                    );
                }
            }
        }
    }

    /// Softmax cross-entropy of a small linear model, a function of (W, b, x).
    fn linear_ce(g: &mut Graph<f64>, v: &[Var]) -> Result<Var> {
        let z = g.linear(v[2], v[0], Some(v[1]))?;
        let t = g.tanh(z)?; // curvature beyond the softmax's
        g.softmax_cross_entropy(t, &[2, 0, 1, 2, 1, 0])
    }

    /// The gradient of `f` at `x` by the first-order backward.
    fn gradient(f: fn(&mut Graph<f64>, &[Var]) -> Result<Var>, x: &[Tensor<f64>]) -> Vec<f64> {
        let mut g = Graph::new();
        let vs: Vec<Var> = x.iter().map(|t| g.leaf(t.clone())).collect();
        let out = f(&mut g, &vs).unwrap();
        g.backward(out).unwrap();
        vs.iter()
            .flat_map(|&v| g.grad(v).unwrap().data().to_vec())
            .collect()
    }

    #[test]
    fn hvp_of_softmax_ce_matches_differences_of_the_gradient() {
        let x = randoms(&[&[3, 4], &[3], &[6, 4]], 11);
        let v = randoms(&[&[3, 4], &[3], &[6, 4]], 12);
        let (_, hv) = hvp(linear_ce, &x, &v).unwrap();
        let hv: Vec<f64> = hv.iter().flat_map(|t| t.data().to_vec()).collect();
        // Central differences of the gradient along v: (grad(x + e v) - grad(x - e v)) / 2e.
        let eps = 1e-5;
        let shifted = |s: f64| -> Vec<Tensor<f64>> {
            x.iter()
                .zip(&v)
                .map(|(a, d)| {
                    let data = a.data().iter().zip(d.data()).map(|(a, d)| a + s * d);
                    Tensor::from_vec(data.collect(), a.dims()).unwrap()
                })
                .collect()
        };
        let (gp, gm) = (
            gradient(linear_ce, &shifted(eps)),
            gradient(linear_ce, &shifted(-eps)),
        );
        let fd: Vec<f64> = gp
            .iter()
            .zip(&gm)
            .map(|(a, b)| (a - b) / (2.0 * eps))
            .collect();
        let rel = rel_dist(&hv, &fd);
        assert!(
            rel < 1e-6,
            "hvp vs differences of the gradient: relative {rel:e}"
        );
        // And the whole Hessian, row by row, against the same products.
        let (_, h) = hessian(linear_ce, &x).unwrap();
        let n = hv.len();
        let vf: Vec<f64> = v.iter().flat_map(|t| t.data().to_vec()).collect();
        let hv2: Vec<f64> = (0..n)
            .map(|i| (0..n).map(|j| h.data()[i * n + j] * vf[j]).sum())
            .collect();
        assert!(rel_dist(&hv2, &hv) < 1e-12);
        // Symmetric, as a Hessian is.
        for i in 0..n {
            for j in 0..i {
                let (a, b) = (h.data()[i * n + j], h.data()[j * n + i]);
                assert!(
                    (a - b).abs() <= 1e-12 * a.abs().max(1.0),
                    "H[{i},{j}] {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn jvp_matches_differences_of_the_function() {
        let x = randoms(&[&[3, 4], &[4, 5]], 21);
        let v = randoms(&[&[3, 4], &[4, 5]], 22);
        let f = |g: &mut Graph<f64>, v: &[Var]| {
            let y = g.matmul(v[0], v[1])?;
            let s = g.softmax(y)?;
            g.mul(s, y)
        };
        let (y, jv) = jvp(f, &x, &v).unwrap();
        assert_eq!(y.dims(), &[3, 5]);
        let eps = 1e-5;
        let at = |s: f64| {
            let shifted: Vec<Tensor<f64>> = x
                .iter()
                .zip(&v)
                .map(|(a, d)| {
                    let data = a.data().iter().zip(d.data()).map(|(a, d)| a + s * d);
                    Tensor::from_vec(data.collect(), a.dims()).unwrap()
                })
                .collect();
            let (g, _, out) = build(f, &shifted).unwrap();
            g.value(out).unwrap().data().to_vec()
        };
        let (fp, fm) = (at(eps), at(-eps));
        let fd: Vec<f64> = fp
            .iter()
            .zip(&fm)
            .map(|(a, b)| (a - b) / (2.0 * eps))
            .collect();
        let rel = rel_dist(jv.data(), &fd);
        assert!(rel < 1e-8, "jvp vs differences of f: relative {rel:e}");
    }

    #[test]
    fn f32_hvp_agrees_with_f64() {
        let x = randoms(&[&[3, 4], &[3], &[6, 4]], 11);
        let v = randoms(&[&[3, 4], &[3], &[6, 4]], 12);
        let (_, h64) = hvp(linear_ce, &x, &v).unwrap();
        let to32 = |t: &Tensor<f64>| t.cast::<f32>();
        let x32: Vec<Tensor<f32>> = x.iter().map(to32).collect();
        let v32: Vec<Tensor<f32>> = v.iter().map(to32).collect();
        let (_, h32) = hvp(
            |g: &mut Graph<f32>, v: &[Var]| {
                let z = g.linear(v[2], v[0], Some(v[1]))?;
                let t = g.tanh(z)?;
                g.softmax_cross_entropy(t, &[2, 0, 1, 2, 1, 0])
            },
            &x32,
            &v32,
        )
        .unwrap();
        let a: Vec<f64> = h32
            .iter()
            .flat_map(|t| t.data().iter().map(|&v| v as f64))
            .collect();
        let b: Vec<f64> = h64.iter().flat_map(|t| t.data().to_vec()).collect();
        assert!(rel_dist(&a, &b) < 1e-5, "{}", rel_dist(&a, &b));
    }

    #[test]
    fn a_linear_function_has_a_zero_hessian() {
        // Its gradient is a constant on the tape: differentiated again, zeros, not an error.
        let x = randoms(&[&[2, 2], &[3]], 2);
        let f = |g: &mut Graph<f64>, v: &[Var]| {
            let a = g.sum(v[0])?;
            let b = g.sum(v[1])?;
            let b = g.scale(b, -3.0)?;
            g.add(a, b)
        };
        let (_, h) = hessian(f, &x).unwrap();
        assert_eq!(h.dims(), &[7, 7]);
        assert!(h.data().iter().all(|&v| v == 0.0));
        let (_, hv) = hvp(f, &x, &x).unwrap();
        assert!(hv.iter().all(|t| t.data().iter().all(|&v| v == 0.0)));
        // Its Jacobian-vector product is the function of v itself.
        let (_, jv) = jvp(f, &x, &x).unwrap();
        let want: f64 = x[0].data().iter().sum::<f64>() - 3.0 * x[1].data().iter().sum::<f64>();
        assert!((jv.data()[0] - want).abs() < 1e-14);
    }

    #[test]
    fn directions_must_match_the_inputs() {
        let x = randoms(&[&[2, 2]], 1);
        let f = |g: &mut Graph<f64>, v: &[Var]| g.sum(v[0]);
        assert!(hvp(f, &x, &[])
            .unwrap_err()
            .to_string()
            .contains("0 direction tensors"));
        let bad = randoms(&[&[4]], 1);
        assert!(hvp(f, &x, &bad).is_err());
        assert!(jvp(f, &x, &bad).is_err());
        // A non-scalar function has no Hessian here.
        let e = hessian(|g, v| g.exp(v[0]), &x).unwrap_err();
        assert!(matches!(e, AutogradError::NotScalar(_)), "{e}");
    }
}
