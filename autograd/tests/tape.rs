//! The tape's contract: gradcheck catches a wrong backward, gradients accumulate, buffers are
//! reused after reset, stale handles and non-scalar losses are errors, no_grad keeps nothing.

use nndl_autograd::{
    gradcheck, gradcheck_fn, AutogradError, Backward, GradcheckConfig, GradcheckError, Graph, Op,
    Var,
};
use tensor::Tensor;

/// y = x^3 with the backward `slope` x^2: 3 is right (a user's correct op, which the check
/// must pass), 3.03 off by 1% (which it must catch).
struct Cube {
    slope: f64,
}

impl Op<f64> for Cube {
    fn name(&self) -> &'static str {
        if self.slope == 3.0 {
            "cube"
        } else {
            "wrong_cube"
        }
    }
    fn backward(&self, cx: &mut Backward<'_, f64>) {
        let (x, g) = (cx.input(0), cx.grad_output());
        let d = cx.grad(0).data_mut();
        for ((d, &x), &g) in d.iter_mut().zip(x.data()).zip(g.data()) {
            *d += g * self.slope * x * x;
        }
    }
}

fn cube(g: &mut Graph<f64>, x: Var, wrong: bool) -> Result<Var, AutogradError> {
    let out = g.value(x)?.map(|v| v * v * v);
    let slope = if wrong { 3.03 } else { 3.0 };
    g.push_op(Box::new(Cube { slope }), &[x], out)
}

fn inputs() -> Vec<Tensor<f64>> {
    vec![Tensor::from_vec(vec![0.5, -1.2, 0.8, 2.0, -0.3, 1.1], &[2, 3]).unwrap()]
}

#[test]
fn gradcheck_rejects_a_backward_off_by_one_percent() {
    let err = gradcheck_fn(
        &inputs(),
        |g, v| cube(g, v[0], true),
        GradcheckConfig::default(),
    )
    .unwrap_err();
    let GradcheckError::Mismatch(r) = err else {
        panic!("expected a mismatch, got {err}")
    };
    // The worst element is the largest |x| (2.0 at index 3): analytic 3.03*4 = 12.12 vs 12.
    assert_eq!(r.index, 3);
    assert!((r.analytic / r.numeric - 1.01).abs() < 1e-6, "{r}");
    assert!((r.rel_err - 0.01 / 1.01).abs() < 1e-6);
}

#[test]
fn gradcheck_accepts_the_correct_custom_op_inside_a_closure_of_several_ops() {
    let r = gradcheck_fn(
        &inputs(),
        |g, v| {
            let c = cube(g, v[0], false)?;
            let s = g.sigmoid(c)?;
            g.sum(s)
        },
        GradcheckConfig::default(),
    )
    .unwrap();
    assert_eq!(r.checked, 6);
}

#[test]
fn gradcheck_checks_a_layer_of_parameters() {
    // A user's layer: parameters live on the graph; the check perturbs them in place.
    let mut g = Graph::<f64>::new();
    let w = g.parameter(
        "w",
        Tensor::from_vec(vec![0.1, -0.2, 0.3, 0.4, -0.5, 0.6], &[2, 3]).unwrap(),
    );
    let b = g.parameter("b", Tensor::from_vec(vec![0.05, -0.05], &[2]).unwrap());
    let x = Tensor::from_vec(vec![1.0, 2.0, -1.0, 0.5, 0.0, 1.5], &[2, 3]).unwrap();
    let r = gradcheck(
        &mut g,
        &[w, b],
        |g| {
            let xv = g.input(x.clone());
            let z = g.linear(xv, w, Some(b))?;
            g.softplus(z)
        },
        GradcheckConfig::default(),
    )
    .unwrap();
    assert_eq!(r.checked, 8);
    // A stale or foreign Var is refused rather than silently ignored.
    let mut other = Graph::<f64>::new();
    let t = other.input(Tensor::scalar(1.0));
    assert!(matches!(
        gradcheck(&mut g, &[t], |g| g.sum(w), GradcheckConfig::default()),
        Err(GradcheckError::NotParameter(0))
    ));
}

#[test]
fn gradients_accumulate_and_reset_clears_them() {
    let mut g = Graph::<f64>::new();
    let w = g.parameter("w", Tensor::from_vec(vec![1.0, 2.0], &[2]).unwrap());
    let s = g.sum_squares(w).unwrap();
    g.backward(s).unwrap();
    assert_eq!(g.grad(w).unwrap().data(), &[2.0, 4.0]);
    g.backward(s).unwrap();
    assert_eq!(g.grad(w).unwrap().data(), &[4.0, 8.0]);
    g.reset();
    assert!(g.grad(w).is_none());
    // The old node is stale now.
    assert!(matches!(g.value(s), Err(AutogradError::StaleVar { .. })));
    assert!(g.add(s, w).is_err());
}

#[test]
fn backward_needs_a_scalar() {
    let mut g = Graph::<f32>::new();
    let x = g.leaf(Tensor::zeros(&[3]).unwrap());
    let y = g.exp(x).unwrap();
    assert!(matches!(g.backward(y), Err(AutogradError::NotScalar(_))));
}

#[test]
fn no_grad_keeps_no_backward_and_frozen_params_get_no_gradient() {
    let mut g = Graph::<f32>::new();
    let w = g.parameter("w", Tensor::from_vec(vec![1.0, 2.0], &[2]).unwrap());
    let v = g.parameter("v", Tensor::from_vec(vec![3.0, 4.0], &[2]).unwrap());
    let y = g.no_grad(|g| g.sum_squares(w)).unwrap();
    assert_eq!(g.value(y).unwrap().data(), &[5.0]);
    g.backward(y).unwrap();
    assert!(g.grad(w).is_none(), "no_grad must not record a backward");
    g.set_frozen(v, true).unwrap();
    let p = g.mul(w, v).unwrap();
    let s = g.sum(p).unwrap();
    g.backward(s).unwrap();
    assert_eq!(g.grad(w).unwrap().data(), &[3.0, 4.0]);
    assert!(g.grad(v).is_none());
}

#[test]
fn the_tape_reuses_its_buffers_after_reset() {
    let mut g = Graph::<f32>::new();
    let w = g.parameter("w", Tensor::from_vec(vec![0.5; 12], &[4, 3]).unwrap());
    let step = |g: &mut Graph<f32>| {
        let x = g
            .input_with(&[5, 3], |d| {
                d.iter_mut().enumerate().for_each(|(i, v)| *v = i as f32)
            })
            .unwrap();
        let z = g.linear(x, w, None).unwrap();
        let a = g.sigmoid(z).unwrap();
        let s = g.sum(a).unwrap();
        g.backward(s).unwrap();
        g.reset();
    };
    step(&mut g);
    let after_first = g.fresh_allocations();
    assert!(after_first > 0);
    for _ in 0..3 {
        step(&mut g);
    }
    assert_eq!(
        g.fresh_allocations(),
        after_first,
        "later steps must run in the first step's buffers"
    );
}

#[test]
fn stale_pooled_buffers_never_leak_into_gradients() {
    // Ops that overwrite a fresh gradient (GEMM with beta = 0) get pooled buffers holding an
    // earlier step's values; the gradients must not depend on what those held.
    let mut g = Graph::<f64>::new();
    let w = g.parameter(
        "w",
        Tensor::from_vec((0..12).map(|i| i as f64 * 0.1 - 0.5).collect(), &[4, 3]).unwrap(),
    );
    let v = g.parameter(
        "v",
        Tensor::from_vec((0..8).map(|i| 0.3 - i as f64 * 0.07).collect(), &[2, 4]).unwrap(),
    );
    let step = |g: &mut Graph<f64>, fill: f64| -> Vec<f64> {
        // Dirty the pool with buffers of every size the real step uses.
        for dims in [[4usize, 3], [2, 4], [5, 3], [5, 4], [5, 2]] {
            let _ = g
                .input_with(&dims, |d| d.iter_mut().for_each(|x| *x = fill))
                .unwrap();
        }
        g.reset();
        let x = g
            .input(Tensor::from_vec((0..15).map(|i| (i as f64).sin()).collect(), &[5, 3]).unwrap());
        let h = g.linear(x, w, None).unwrap();
        let a = g.sigmoid(h).unwrap();
        let y = g.linear(a, v, None).unwrap();
        let s = g.sum_squares(y).unwrap();
        g.backward(s).unwrap();
        let out = [g.grad(w).unwrap().data(), g.grad(v).unwrap().data()].concat();
        g.reset();
        out
    };
    let first = step(&mut g, 0.0);
    let second = step(&mut g, f64::NAN);
    let third = step(&mut g, 1e300);
    assert_eq!(first, second);
    assert_eq!(first, third);
}
