//! One-line checks of an expression's value and gradient, for tests of ops and layers (the idea
//! of tinygrad's `helper_test_op`, against nndl's own f64 [`gradcheck`](crate::gradcheck())).
//!
//! ```
//! use nndl_autograd::testing;
//!
//! // The gradient of tanh(a @ b) against finite differences, on random 3x4 and 4x2 inputs:
//! testing::check(&[&[3, 4], &[4, 2]], |g, v| {
//!     let y = g.matmul(v[0], v[1])?;
//!     g.tanh(y)
//! });
//! // Value and gradient, the value against a plain f64 reference:
//! testing::check_value(&[&[5]], |g, v| g.exp(v[0]), |x| x[0].data().iter().map(|v| v.exp()).collect());
//! ```
//!
//! [`check2`] does the same for second derivatives.
//!
//! These are test helpers: a failed check panics with the gradcheck report (the worst element:
//! input, index, analytic and numeric gradient).

use crate::{
    gradcheck_fn, gradgradcheck_fn, AutogradError, GradcheckConfig, GradcheckReport, Graph, Var,
};
use rand::{Rng, SeedableRng};
use tensor::Tensor;

/// Random tensors of the given shapes, entries in ±[0.1, 1.0] (away from the kinks at 0 of
/// relu, abs and max-pool ties).
pub fn randoms(shapes: &[&[usize]], seed: u64) -> Vec<Tensor<f64>> {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    shapes
        .iter()
        .map(|s| {
            let n: usize = s.iter().product();
            let d = (0..n)
                .map(|_| rng.random_range(0.1..1.0) * if rng.random_bool(0.5) { 1.0 } else { -1.0 })
                .collect();
            Tensor::from_vec(d, s).expect("the shape's product is the length")
        })
        .collect()
}

/// Gradchecks `f` on random inputs of `shapes` (seed 42); panics with the report on failure.
pub fn check(
    shapes: &[&[usize]],
    f: impl FnMut(&mut Graph<f64>, &[Var]) -> Result<Var, AutogradError>,
) -> GradcheckReport {
    check_on(randoms(shapes, 42), f)
}

/// Gradchecks `f` on the given inputs; panics with the report on failure.
pub fn check_on(
    inputs: Vec<Tensor<f64>>,
    f: impl FnMut(&mut Graph<f64>, &[Var]) -> Result<Var, AutogradError>,
) -> GradcheckReport {
    match gradcheck_fn(&inputs, f, GradcheckConfig::default()) {
        Ok(r) if r.checked > 0 => r,
        Ok(_) => panic!("gradcheck compared no element: the inputs are empty"),
        Err(e) => panic!("{e}"),
    }
}

/// Second-order check of `f` on random inputs of `shapes` (seed 42): the derivative of its
/// recorded gradient against finite differences of the first-order gradient
/// ([`gradgradcheck_fn`]); panics with the report on failure.
///
/// ```
/// use nndl_autograd::testing;
///
/// testing::check2(&[&[3, 4], &[4, 2]], |g, v| {
///     let y = g.matmul(v[0], v[1])?;
///     g.sigmoid(y)
/// });
/// ```
pub fn check2(
    shapes: &[&[usize]],
    f: impl FnMut(&mut Graph<f64>, &[Var]) -> Result<Var, AutogradError>,
) -> GradcheckReport {
    check2_on(randoms(shapes, 42), f)
}

/// [`check2`] on the given inputs.
pub fn check2_on(
    inputs: Vec<Tensor<f64>>,
    f: impl FnMut(&mut Graph<f64>, &[Var]) -> Result<Var, AutogradError>,
) -> GradcheckReport {
    match gradgradcheck_fn(&inputs, f, GradcheckConfig::default()) {
        Ok(r) if r.checked > 0 => r,
        Ok(_) => panic!("gradgradcheck compared no element: the inputs are empty"),
        Err(e) => panic!("{e}"),
    }
}

/// Checks `f`'s value on random inputs of `shapes` against `reference` (the expected elements,
/// in order, computed from the same inputs) to 1e-12 relative, then its gradient as [`check`].
pub fn check_value(
    shapes: &[&[usize]],
    mut f: impl FnMut(&mut Graph<f64>, &[Var]) -> Result<Var, AutogradError>,
    reference: impl Fn(&[Tensor<f64>]) -> Vec<f64>,
) -> GradcheckReport {
    let inputs = randoms(shapes, 42);
    let mut g = Graph::new();
    let vars: Vec<Var> = inputs.iter().map(|t| g.input(t.clone())).collect();
    let y = f(&mut g, &vars).unwrap_or_else(|e| panic!("the expression failed: {e}"));
    let got = g
        .value(y)
        .expect("the output is on the graph")
        .data()
        .to_vec();
    let want = reference(&inputs);
    assert_eq!(
        got.len(),
        want.len(),
        "value: {} elements, the reference has {}",
        got.len(),
        want.len()
    );
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        let tol = 1e-12 * a.abs().max(b.abs()).max(1.0);
        assert!(
            (a - b).abs() <= tol,
            "value at element {i}: {a} vs the reference's {b}"
        );
    }
    check_on(inputs, f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value_passes_a_right_reference() {
        let r = check_value(
            &[&[2, 3], &[2, 3]],
            |g, v| {
                let p = g.mul(v[0], v[1])?;
                g.sigmoid(p)
            },
            |x| {
                let (a, b) = (x[0].data(), x[1].data());
                a.iter()
                    .zip(b)
                    .map(|(a, b)| 1.0 / (1.0 + (-a * b).exp()))
                    .collect()
            },
        );
        assert_eq!(r.checked, 12);
    }

    #[test]
    #[should_panic(expected = "value at element 0")]
    fn check_value_rejects_a_wrong_value() {
        // tanh is not the reference's sigmoid.
        check_value(
            &[&[4]],
            |g, v| g.tanh(v[0]),
            |x| {
                x[0].data()
                    .iter()
                    .map(|a| 1.0 / (1.0 + (-a).exp()))
                    .collect()
            },
        );
    }

    #[test]
    #[should_panic(expected = "value: 4 elements, the reference has 3")]
    fn check_value_rejects_a_reference_of_another_length() {
        check_value(&[&[4]], |g, v| g.exp(v[0]), |_| vec![0.0; 3]);
    }
}
