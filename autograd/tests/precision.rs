//! `precision_check`: the same graph in f32 and f64 agrees within f32 rounding; an op whose
//! f32 forward loses precision (a bfloat16-like rounding) is caught; graphs that do not
//! correspond are a typed error.

use nndl_autograd::{
    precision_check, AutogradError, Backward, Float, GradcheckError, Graph, Op, PrecisionConfig,
    Tensor, Var,
};

fn values(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7919 + seed * 104_729) % 1000) as f32 / 500.0 - 1.0)
        .collect()
}

/// Two parameters `x [6, 10]` and `w [4, 10]` on a graph of either precision (the f32 one
/// holds the values; `precision_check` copies them into the f64 one).
fn params<T: Float>(g: &mut Graph<T>) -> (Var, Var) {
    let of = |v: Vec<f32>| {
        v.into_iter()
            .map(|v| T::of(f64::from(v)))
            .collect::<Vec<T>>()
    };
    let x = g.parameter("x", Tensor::from_vec(of(values(60, 1)), &[6, 10]).unwrap());
    let w = g.parameter("w", Tensor::from_vec(of(values(40, 2)), &[4, 10]).unwrap());
    (x, w)
}

/// The identity, whose f32 forward keeps only 8 bits of mantissa (as bfloat16 does).
struct Lossy;

impl<T: Float> Op<T> for Lossy {
    fn name(&self) -> &'static str {
        "lossy"
    }
    fn backward(&self, cx: &mut Backward<'_, T>) {
        let g = cx.grad_output().clone();
        let d = cx.grad(0).data_mut();
        d.iter_mut().zip(g.data()).for_each(|(d, &g)| *d += g);
    }
}

fn lossy<T: Float>(g: &mut Graph<T>, x: Var) -> Result<Var, AutogradError> {
    let out = g.value(x)?.map(|v| {
        if T::DTYPE == "f32" {
            let bits = (v.f64() as f32).to_bits() & 0xffff_0000;
            T::of(f64::from(f32::from_bits(bits)))
        } else {
            v
        }
    });
    g.push_op(Box::new(Lossy), &[x], out)
}

fn net<T: Float>(g: &mut Graph<T>, x: Var, w: Var, lose: bool) -> Result<Var, AutogradError> {
    let z = g.linear(x, w, None)?;
    let z = if lose { lossy(g, z)? } else { z };
    let s = g.sigmoid(z)?;
    g.log_softmax(s)
}

fn check(lose: bool) -> Result<nndl_autograd::PrecisionReport, GradcheckError> {
    let (mut g32, mut g64) = (Graph::<f32>::new(), Graph::<f64>::new());
    let (x32, w32) = params(&mut g32);
    let (x64, w64) = params(&mut g64);
    precision_check(
        &mut g32,
        &[x32, w32],
        |g| net(g, x32, w32, lose),
        &mut g64,
        &[x64, w64],
        |g| net(g, x64, w64, lose),
        PrecisionConfig::default(),
    )
}

#[test]
fn a_graph_in_f32_agrees_with_f64_within_rounding() {
    let r = check(false).unwrap();
    assert_eq!(r.checked, 24 + 60 + 40);
    assert!(r.ratio < 0.5, "{r}");
    assert_eq!(r.terms, 100, "the checked inputs' elements");
}

#[test]
fn an_f32_op_that_loses_precision_is_caught() {
    let err = check(true).unwrap_err();
    let GradcheckError::Precision(r) = err else {
        panic!("{err}")
    };
    // 8 bits of mantissa: relative errors up to 2^-8 in z, which reach the output and,
    // through sigmoid's and log-softmax's derivatives at z, every gradient; the worst
    // element is far beyond its tolerance.
    assert!(r.ratio > 10.0, "{r}");
}

#[test]
fn graphs_that_do_not_correspond_are_an_error() {
    let (mut g32, mut g64) = (Graph::<f32>::new(), Graph::<f64>::new());
    let (x32, w32) = params(&mut g32);
    let (x64, _) = params(&mut g64);
    g64.parameter("extra", Tensor::zeros(&[1]).unwrap());
    let err = precision_check(
        &mut g32,
        &[x32],
        |g| g.linear(x32, w32, None),
        &mut g64,
        &[x64],
        |g| g.sum(x64),
        PrecisionConfig::default(),
    )
    .unwrap_err();
    let GradcheckError::Graph(AutogradError::Invalid { op, why }) = err else {
        panic!("{err}")
    };
    assert_eq!(op, "precision_check");
    assert!(why.contains("2 parameters") && why.contains("3"), "{why}");
}

/// The identity, whose f32 backward adds a different tiny amount each run (a stand-in for an
/// f32 kernel that splits a sum across threads by timing).
struct Jittery;

static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

impl<T: Float> Op<T> for Jittery {
    fn name(&self) -> &'static str {
        "jittery"
    }
    fn backward(&self, cx: &mut Backward<'_, T>) {
        // Every other f32 backward is off by 1e-6 (the f64 ones are exact).
        let jitter = if T::DTYPE == "f32" {
            1e-6 * f64::from(RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 2)
        } else {
            0.0
        };
        let g = cx.grad_output().clone();
        let d = cx.grad(0).data_mut();
        d.iter_mut()
            .zip(g.data())
            .for_each(|(d, &g)| *d += g + T::of(jitter));
    }
}

#[test]
fn an_f32_backward_that_differs_between_runs_is_caught() {
    fn net<T: Float>(g: &mut Graph<T>, x: Var, w: Var) -> Result<Var, AutogradError> {
        let z = g.linear(x, w, None)?;
        let out = g.value(z)?.clone();
        let z = g.push_op(Box::new(Jittery), &[z], out)?;
        g.tanh(z)
    }
    let (mut g32, mut g64) = (Graph::<f32>::new(), Graph::<f64>::new());
    let (x32, w32) = params(&mut g32);
    let (x64, w64) = params(&mut g64);
    let mut run = |cfg| {
        precision_check(
            &mut g32,
            &[x32, w32],
            |g| net(g, x32, w32),
            &mut g64,
            &[x64, w64],
            |g| net(g, x64, w64),
            cfg,
        )
    };
    let err = run(PrecisionConfig::default()).unwrap_err();
    let GradcheckError::Nondeterministic(r) = err else {
        panic!("{err}")
    };
    assert_eq!(r.tol, 0.0);
    assert!(r.name.ends_with("(f32)") && r.abs_diff > 0.0, "{r}");
    // The f32 backwards were the 1st (exact) and 2nd (off). Without the check, the next
    // f32 backward, the 3rd, is exact again, and within rounding of f64: so the error above
    // came from the second run alone.
    let cfg = PrecisionConfig {
        nondet_tol: None,
        ..Default::default()
    };
    let r = run(cfg).unwrap();
    assert!(r.ratio <= 1.0, "{r}");
}
