//! The complete gradient check (`gradcheck_with`): fast mode catches a wrong backward with a
//! number of forward passes independent of the input's size, the nondeterminism check
//! catches a backward that differs between runs, and kink detection tells a ReLU zero or a
//! max-pool tie from a wrong gradient.

use nndl_autograd::{
    gradcheck_fn_with, AutogradError, Backward, CheckOptions, GradcheckError, Graph, Op, Tensor,
    Var,
};
use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// y = x^3 with the backward 3x^2, except at element `wrong` (if any), where it is 2x^2.
struct Cube {
    wrong: Option<usize>,
}

impl Op<f64> for Cube {
    fn name(&self) -> &'static str {
        "cube"
    }
    fn backward(&self, cx: &mut Backward<'_, f64>) {
        let (x, g) = (cx.input(0), cx.grad_output());
        let d = cx.grad(0).data_mut();
        for (i, ((d, &x), &g)) in d.iter_mut().zip(x.data()).zip(g.data()).enumerate() {
            let slope = if Some(i) == self.wrong { 2.0 } else { 3.0 };
            *d += g * slope * x * x;
        }
    }
}

fn cube(g: &mut Graph<f64>, x: Var, wrong: Option<usize>) -> Result<Var, AutogradError> {
    let out = g.value(x)?.map(|v| v * v * v);
    g.push_op(Box::new(Cube { wrong }), &[x], out)
}

/// `n` values spread over ±[0.2, 1.2] (deterministic).
fn spread(n: usize, dims: &[usize]) -> Tensor<f64> {
    let d = (0..n)
        .map(|i| {
            let t = ((i * 7919) % 1000) as f64 / 1000.0;
            (0.2 + t) * if i % 3 == 0 { -1.0 } else { 1.0 }
        })
        .collect();
    Tensor::from_vec(d, dims).unwrap()
}

fn fast(pairs: usize) -> CheckOptions {
    CheckOptions {
        fast: Some(pairs),
        nondet_tol: None,
        ..Default::default()
    }
}

#[test]
fn fast_mode_passes_a_correct_backward_in_three_forwards_per_projection() {
    // 2,000 elements through a matmul, tanh and the user's cube: the full check would take
    // 4,001 forwards; each projection takes 3.
    let (a, b) = (spread(800, &[20, 40]), spread(1200, &[40, 30]));
    let calls = Cell::new(0);
    let r = gradcheck_fn_with(
        &[a, b],
        |g, v| {
            calls.set(calls.get() + 1);
            let y = g.matmul(v[0], v[1])?;
            let t = g.tanh(y)?;
            cube(g, t, None)
        },
        fast(5),
    )
    .unwrap();
    let f = r.fast.unwrap();
    assert!(!f.fell_back && f.badness <= 1.0, "{f:?}");
    assert_eq!(f.pairs, 5);
    assert_eq!(r.worst.checked, 0, "the elementwise check did not run");
    // One recorded forward for the analytic gradients, then 3 per projection.
    assert_eq!(calls.get(), 1 + 3 * 5);
}

#[test]
fn fast_mode_catches_one_wrong_element_among_a_thousand_then_names_it() {
    let x = spread(1000, &[10, 100]);
    let calls = Cell::new(0);
    let err = gradcheck_fn_with(
        &[x],
        |g, v| {
            calls.set(calls.get() + 1);
            cube(g, v[0], Some(637))
        },
        fast(4),
    )
    .unwrap_err();
    // The projections failed, so the elementwise check ran (2 forwards per element, plus
    // f(x) once, for the kink test's one-sided slopes at the element that mismatched, which
    // agree: a smooth point, so no more) and named the element.
    let GradcheckError::Mismatch(worst) = err else {
        panic!("{err}")
    };
    assert_eq!(worst.index, 637, "{worst}");
    assert!(
        (worst.numeric / worst.analytic - 1.5).abs() < 1e-6,
        "{worst}"
    );
    assert_eq!(calls.get(), 1 + 3 * 4 + 2 * 1000 + 1);
}

#[test]
fn fast_mode_fails_every_projection_of_a_backward_wrong_everywhere() {
    // Wrong at every element: the worst projection is off by about a third.
    struct AllWrong;
    impl Op<f64> for AllWrong {
        fn name(&self) -> &'static str {
            "all_wrong"
        }
        fn backward(&self, cx: &mut Backward<'_, f64>) {
            let (x, g) = (cx.input(0), cx.grad_output());
            let d = cx.grad(0).data_mut();
            for ((d, &x), &g) in d.iter_mut().zip(x.data()).zip(g.data()) {
                *d += g * 2.0 * x * x;
            }
        }
    }
    let x = spread(300, &[300]);
    let err = gradcheck_fn_with(
        &[x],
        |g, v| {
            let out = g.value(v[0])?.map(|v| v * v * v);
            g.push_op(Box::new(AllWrong), &[v[0]], out)
        },
        fast(3),
    )
    .unwrap_err();
    assert!(matches!(err, GradcheckError::Mismatch(_)), "{err}");
}

/// y = 2x, whose backward adds a different tiny amount each time it runs (a stand-in for a
/// kernel whose summation order depends on thread timing).
struct Jittery {
    counter: &'static AtomicU64,
}

impl Op<f64> for Jittery {
    fn name(&self) -> &'static str {
        "jittery"
    }
    fn backward(&self, cx: &mut Backward<'_, f64>) {
        let k = self.counter.fetch_add(1, Ordering::Relaxed) as f64;
        let g = cx.grad_output().clone();
        let d = cx.grad(0).data_mut();
        for (d, &g) in d.iter_mut().zip(g.data()) {
            *d += 2.0 * g + 1e-12 * k;
        }
    }
}

#[test]
fn the_nondeterminism_check_catches_a_backward_that_changes_between_runs() {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let x = spread(6, &[2, 3]);
    let f = |g: &mut Graph<f64>, v: &[Var]| {
        let out = g.value(v[0])?.map(|v| 2.0 * v);
        let y = g.push_op(Box::new(Jittery { counter: &COUNTER }), &[v[0]], out)?;
        g.tanh(y)
    };
    let err = gradcheck_fn_with(std::slice::from_ref(&x), f, CheckOptions::default()).unwrap_err();
    let GradcheckError::Nondeterministic(r) = err else {
        panic!("{err}")
    };
    // Every element moved by 1e-12 between the runs.
    assert!((r.abs_diff - 1e-12).abs() < 1e-15, "{r}");
    assert_eq!((r.name.as_str(), r.tol), ("input0", 0.0));
    assert_ne!(r.first, r.second);
    // A stated tolerance above the jitter accepts it (and the gradient itself is right).
    let opts = CheckOptions {
        nondet_tol: Some(1e-9),
        ..Default::default()
    };
    let r = gradcheck_fn_with(&[x], f, opts).unwrap();
    assert!(r.nondet_max.unwrap() > 0.0 && r.nondet_max.unwrap() < 1e-9);
}

#[test]
fn autograds_own_ops_are_deterministic_bit_for_bit() {
    let x = spread(2 * 2 * 6 * 6, &[2, 2, 6, 6]);
    let w = spread(3 * 2 * 3 * 3, &[3, 2, 3, 3]);
    let b = spread(3, &[3]);
    let r = gradcheck_fn_with(
        &[x, w, b],
        |g, v| {
            let c = g.conv2d(v[0], v[1], Some(v[2]))?;
            let t = g.tanh(c)?;
            let f = g.reshape(t, &[2, 3 * 4 * 4])?;
            g.softmax_cross_entropy(f, &[3, 17])
        },
        CheckOptions::default(),
    )
    .unwrap();
    assert_eq!(r.nondet_max, Some(0.0));
    assert!(r.kinks.is_empty());
}

#[test]
fn relu_at_zero_is_a_kink_not_a_failure() {
    // Element 1 is exactly at the kink, element 3 within eps (1e-6) of it.
    let x = Tensor::from_vec(vec![0.7, 0.0, -0.4, 3e-7, 1.3, -0.9], &[6]).unwrap();
    let r = gradcheck_fn_with(&[x], |g, v| g.relu(v[0]), CheckOptions::default()).unwrap();
    let idx: Vec<usize> = r.kinks.iter().map(|k| k.index).collect();
    assert_eq!(idx, [1, 3], "{:?}", r.kinks);
    // The slopes are multiples of the element's projection weight w (|w| >= 0.5): at 0,
    // 0 on the left and w on the right; at 0.3 eps, 0.3 w on the left (the step back
    // crosses the zero 0.3 of the way) and w on the right.
    let (k0, k3) = (&r.kinks[0], &r.kinks[1]);
    assert!(
        k0.slope_left.abs() < 1e-6 && k0.slope_right.abs() >= 0.5,
        "{k0}"
    );
    assert_eq!((k0.x, k0.analytic), (0.0, 0.0), "{k0}");
    let w = k3.slope_right;
    assert!(
        w.abs() >= 0.5 && (k3.slope_left - 0.3 * w).abs() < 1e-6,
        "{k3}"
    );
    assert!((k3.analytic - w).abs() < 1e-6, "{k3}");
    assert_eq!(r.worst.checked, 6);
    // Without kink detection the same inputs fail at a kink.
    let opts = CheckOptions {
        kinks: false,
        ..Default::default()
    };
    let x = Tensor::from_vec(vec![0.7, 0.0, -0.4, 3e-7, 1.3, -0.9], &[6]).unwrap();
    let err = gradcheck_fn_with(&[x], |g, v| g.relu(v[0]), opts).unwrap_err();
    let GradcheckError::Mismatch(w) = err else {
        panic!("{err}")
    };
    assert!(w.index == 1 || w.index == 3, "{w}");
}

#[test]
fn a_wrong_gradient_at_a_smooth_point_still_fails_beside_a_kink() {
    // relu(x) + cube(x) with the cube wrong at element 2 (smooth there); element 0 is a kink.
    let x = Tensor::from_vec(vec![0.0, 0.5, 1.1, -0.6], &[4]).unwrap();
    let err = gradcheck_fn_with(
        &[x],
        |g, v| {
            let r = g.relu(v[0])?;
            let c = cube(g, v[0], Some(2))?;
            let y = g.add(r, c)?;
            g.sum(y) // a scalar: the gradients are the derivatives themselves
        },
        CheckOptions::default(),
    )
    .unwrap_err();
    let GradcheckError::Mismatch(w) = err else {
        panic!("{err}")
    };
    assert_eq!(w.index, 2, "{w}");
    assert!((w.numeric - w.analytic - 1.1 * 1.1).abs() < 1e-5, "{w}");
}

#[test]
fn a_gradient_wrong_only_at_a_kink_is_reported_as_a_kink_with_its_value() {
    /// relu whose backward at 0 returns 5 (neither one-sided derivative, 0 or 1).
    struct BadRelu;
    impl Op<f64> for BadRelu {
        fn name(&self) -> &'static str {
            "bad_relu"
        }
        fn backward(&self, cx: &mut Backward<'_, f64>) {
            let (x, g) = (cx.input(0).clone(), cx.grad_output().clone());
            let d = cx.grad(0).data_mut();
            for ((d, &x), &g) in d.iter_mut().zip(x.data()).zip(g.data()) {
                *d += g * if x > 0.0 {
                    1.0
                } else if x == 0.0 {
                    5.0
                } else {
                    0.0
                };
            }
        }
    }
    // The check cannot tell a wrong value at a kink from a legitimate one-sided choice
    // (coinciding kinks make values outside both slopes legitimate): the element is left
    // out of the verdict, and the report shows the odd value beside the slopes.
    let x = Tensor::from_vec(vec![0.3, 0.0, -0.2], &[3]).unwrap();
    let r = gradcheck_fn_with(
        &[x],
        |g, v| {
            let out = g.value(v[0])?.map(|v| v.max(0.0));
            let y = g.push_op(Box::new(BadRelu), &[v[0]], out)?;
            g.sum(y)
        },
        CheckOptions::default(),
    )
    .unwrap();
    let [k] = r.kinks.as_slice() else {
        panic!("{:?}", r.kinks)
    };
    assert_eq!((k.index, k.analytic), (1, 5.0), "{k}");
    assert!(
        k.slope_left.abs() < 1e-9 && (k.slope_right - 1.0).abs() < 1e-9,
        "{k}"
    );
}

#[test]
fn max_pool_ties_are_kinks() {
    // One 2x2 window with a tie for the maximum (elements 1 and 2), one without.
    let x = Tensor::from_vec(
        vec![0.1, 0.8, 0.8, -0.5, 0.2, 0.9, -0.3, 0.4],
        &[1, 2, 2, 2],
    )
    .unwrap();
    let r = gradcheck_fn_with(&[x], |g, v| g.max_pool2d(v[0], 2), CheckOptions::default()).unwrap();
    let idx: Vec<usize> = r.kinks.iter().map(|k| k.index).collect();
    assert_eq!(idx, [1, 2], "{:?}", r.kinks);
    for k in &r.kinks {
        // Raising a tied element makes it the max (slope = its projection weight), lowering
        // it leaves the other (slope 0).
        assert!(
            k.slope_left.abs() < 1e-6 && k.slope_right.abs() > 0.4,
            "{k}"
        );
    }
}

#[test]
fn steep_curvature_is_not_mistaken_for_a_kink() {
    // 1/x at 0.01 with a derivative 1% off: the one-sided slopes differ by eps f'' = 2, twice
    // the slope tolerance (rtol |f'| = 1), as a kink's would; the curvature beside the step
    // is as steep, so the element is smooth and its mismatch stands.
    struct BadRecip;
    impl nndl_autograd::UnaryFn for BadRecip {
        const NAME: &'static str = "bad_recip";
        fn f<T: nndl_autograd::Float>(x: T) -> T {
            T::one() / x
        }
        fn df<T: nndl_autograd::Float>(x: T, _y: T) -> T {
            -T::of(1.01) / (x * x)
        }
    }
    let x = Tensor::from_vec(vec![0.01], &[1]).unwrap();
    let err = gradcheck_fn_with(
        &[x],
        |g, v| g.unary::<BadRecip>(v[0]),
        CheckOptions::default(),
    )
    .unwrap_err();
    let GradcheckError::Mismatch(w) = err else {
        panic!("{err}")
    };
    assert!((w.analytic / w.numeric - 1.01).abs() < 1e-4, "{w}");
}
