//! The precision check over every layer kind: the f32 kernels training runs (the run-time
//! selected instruction set, the fused conv-pool, batch norm and linear ops) against the same
//! layer in f64, within the tolerance f32 rounding explains; and a planted error of 100 units
//! in the last place in one element of a GEMM's f32 output, which the check must catch.

use autograd::Graph;
use nndl_nn::{
    precision_check_layer, Activation, BatchNorm, Conv2d, Conv2dConfig, ConvPool, Dropout,
    DropoutStyle, FcConfig, Flatten, FullyConnected, GradcheckError, Init, Layer, MaxPool2d, Mode,
    PrecisionConfig, PrecisionReport,
};
use rand::{Rng, SeedableRng};
use tensor::Tensor;

fn rng(seed: u64) -> rand_pcg::Pcg64 {
    rand_pcg::Pcg64::seed_from_u64(seed)
}

fn input(dims: &[usize], seed: u64) -> Tensor<f64> {
    let mut r = rng(seed);
    let n = dims.iter().product();
    Tensor::from_vec((0..n).map(|_| r.random_range(-1.0..1.0)).collect(), dims).unwrap()
}

fn run(
    g32: &mut Graph<f32>,
    l32: &dyn Layer<f32>,
    g64: &mut Graph<f64>,
    l64: &dyn Layer<f64>,
    x: &Tensor<f64>,
    mode: Mode,
) -> PrecisionReport {
    let what = format!("{} {mode:?}", l64.describe());
    match precision_check_layer(g32, l32, g64, l64, x, mode, PrecisionConfig::default()) {
        Ok(r) => {
            // The figure the closing note quotes: how close each layer came to its bound.
            eprintln!("precision {what}: ratio {:.3} ({r})", r.ratio);
            assert!(r.checked > 0);
            r
        }
        Err(e) => panic!("{what}: {e}"),
    }
}

/// Builds the layer with `$build` (which names the graph `$g`) in f32 and in f64, and runs
/// the precision check on `$x` in `$mode`.
macro_rules! precision {
    ($x:expr, $mode:expr, |$g:ident| $build:expr) => {{
        let mut g32 = Graph::<f32>::new();
        let l32 = {
            let $g = &mut g32;
            $build
        };
        let mut g64 = Graph::<f64>::new();
        let l64 = {
            let $g = &mut g64;
            $build
        };
        run(&mut g32, &l32, &mut g64, &l64, &$x, $mode)
    }};
}

#[test]
fn fully_connected_every_activation_with_and_without_dropout() {
    for act in [
        Activation::Sigmoid,
        Activation::Tanh,
        Activation::Relu,
        Activation::Identity,
    ] {
        for (p, mode) in [(0.0, Mode::Train), (0.5, Mode::Train), (0.5, Mode::Eval)] {
            let config = FcConfig {
                activation: act,
                init: Init::ScaledByInputs,
                p_dropout: p,
            };
            // A small batch (the small-side kernels) and a larger one (the packing GEMM).
            for batch in [5, 40] {
                precision!(input(&[batch, 30], 2), mode, |g| {
                    FullyConnected::new(g, "fc", 30, 20, config, &mut rng(1)).unwrap()
                });
            }
        }
    }
    precision!(input(&[8, 30], 3), Mode::Train, |g| {
        FullyConnected::new(
            g,
            "fc",
            30,
            10,
            FcConfig {
                activation: Activation::Relu,
                init: Init::ScaledByInputs,
                p_dropout: 0.3,
            },
            &mut rng(1),
        )
        .unwrap()
        .with_dropout_style(DropoutStyle::Inverted)
    });
}

#[test]
fn large_layers_whose_kernels_split_across_threads() {
    // network2's first layer at a mini-batch of 64, and a conv layer over 8 MNIST-sized
    // images: big enough for the kernels to split the work across threads, which the f32
    // run's second backward must reproduce bit for bit.
    let config = FcConfig {
        activation: Activation::Sigmoid,
        init: Init::ScaledByInputs,
        p_dropout: 0.0,
    };
    precision!(input(&[64, 784], 14), Mode::Train, |g| {
        FullyConnected::new(g, "fc", 784, 100, config, &mut rng(15)).unwrap()
    });
    precision!(input(&[8, 1, 28, 28], 16), Mode::Train, |g| {
        ConvPool::new(g, "cp", [20, 1, 5, 5], 2, Activation::Relu, &mut rng(17)).unwrap()
    });
}

#[test]
fn conv_pool_every_activation() {
    for act in [Activation::Sigmoid, Activation::Tanh, Activation::Relu] {
        precision!(input(&[3, 2, 12, 12], 5), Mode::Train, |g| {
            ConvPool::new(g, "cp", [4, 2, 5, 5], 2, act, &mut rng(4)).unwrap()
        });
    }
}

#[test]
fn conv2d_with_padding_and_stride() {
    for (pad, stride, bias, act) in [
        (0, 1, true, Activation::Identity),
        (1, 1, true, Activation::Relu),
        (1, 2, false, Activation::Tanh),
        (2, 3, true, Activation::Sigmoid),
    ] {
        let config = Conv2dConfig {
            pad,
            stride,
            bias,
            activation: act,
            ..Default::default()
        };
        precision!(input(&[2, 3, 11, 11], 6), Mode::Train, |g| {
            Conv2d::new(g, "conv", [5, 3, 3, 3], config, &mut rng(7)).unwrap()
        });
    }
}

#[test]
fn batch_norm_in_training_and_evaluation() {
    for act in [Activation::Identity, Activation::Relu] {
        for mode in [Mode::Train, Mode::Eval] {
            precision!(input(&[6, 3, 4, 4], 8), mode, |g| {
                let bn = BatchNorm::new(g, "bn", 3, act).unwrap();
                // Scales, shifts and running statistics away from their initial 1 and 0,
                // so that evaluation mode is not the identity.
                *g.param_mut(bn.gamma).unwrap() =
                    Tensor::from_vec([1.5, 0.7, -1.1].map(|v| num(g, v)).to_vec(), &[3]).unwrap();
                *g.param_mut(bn.beta).unwrap() =
                    Tensor::from_vec([0.2, -0.3, 0.1].map(|v| num(g, v)).to_vec(), &[3]).unwrap();
                *g.param_mut(bn.running_mean).unwrap() =
                    Tensor::from_vec([0.1, -0.2, 0.05].map(|v| num(g, v)).to_vec(), &[3]).unwrap();
                *g.param_mut(bn.running_var).unwrap() =
                    Tensor::from_vec([0.3, 0.5, 0.2].map(|v| num(g, v)).to_vec(), &[3]).unwrap();
                bn
            });
        }
    }
}

/// `v` in the graph's float type (the macro builds each layer in both).
fn num<T: tensor::Float>(_: &Graph<T>, v: f64) -> T {
    T::of(v)
}

#[test]
fn max_pool_dropout_and_flatten() {
    // Max-pool and flatten have no parameters: the input's gradient and the output.
    precision!(input(&[2, 3, 8, 8], 9), Mode::Train, |_g| MaxPool2d {
        k: 2
    });
    precision!(input(&[4, 50], 10), Mode::Train, |_g| Dropout::new(0.4)
        .unwrap());
    precision!(input(&[4, 50], 10), Mode::Eval, |_g| Dropout::new(0.4)
        .unwrap());
    precision!(input(&[2, 3, 4, 5], 11), Mode::Train, |_g| Flatten);
}

/// The fully connected layer (30 -> 20) of the planted-error tests, built on `g`: the
/// identity activation, so that the layer's output is the GEMM's (an activation would scale
/// the planted error by its slope, e.g. `1 - tanh^2`, and test the activation instead).
fn fc<T: tensor::Float>(g: &mut Graph<T>) -> FullyConnected {
    let config = FcConfig {
        activation: Activation::Identity,
        init: Init::ScaledByInputs,
        p_dropout: 0.0,
    };
    FullyConnected::new(g, "fc", 30, 20, config, &mut rng(12)).unwrap()
}

/// Runs the precision check of [`fc`] on `x` with `ulps` planted in element `index` of the
/// first f32 GEMM's output (the forward's `x w^T + b`).
fn planted(x: &Tensor<f64>, index: usize, ulps: i32) -> Result<PrecisionReport, GradcheckError> {
    let (mut g32, mut g64) = (Graph::<f32>::new(), Graph::<f64>::new());
    let (l32, l64) = (fc(&mut g32), fc(&mut g64));
    tensor::fault::plant_gemm_ulps(index, ulps);
    let r = precision_check_layer(
        &mut g32,
        &l32,
        &mut g64,
        &l64,
        x,
        Mode::Train,
        PrecisionConfig::default(),
    );
    tensor::fault::clear();
    r
}

/// The element of `z = x w^T + b` of largest magnitude (where 100 ulps is the largest
/// absolute error, and the tolerance the largest too), computed in f64 from the f32 numbers
/// both runs use.
fn largest_output(x: &Tensor<f64>) -> usize {
    let mut g = Graph::<f32>::new();
    let l = fc(&mut g);
    let (w, b) = (g.value(l.w).unwrap(), g.value(l.b).unwrap());
    let (batch, n_in, n_out) = (x.dims()[0], 30, 20);
    let x32: Vec<f64> = x.data().iter().map(|&v| f64::from(v as f32)).collect();
    let z = |i: usize| {
        let (r, c) = (i / n_out, i % n_out);
        (0..n_in)
            .map(|k| x32[r * n_in + k] * f64::from(w.data()[c * n_in + k]))
            .sum::<f64>()
            + f64::from(b.data()[c])
    };
    (0..batch * n_out)
        .max_by(|&a, &b| z(a).abs().total_cmp(&z(b).abs()))
        .unwrap()
}

#[test]
fn a_planted_error_of_100_ulps_in_one_gemm_output_is_caught() {
    // A batch of 5 runs the small-side kernel, a batch of 40 the packing GEMM.
    for batch in [5, 40] {
        let x = input(&[batch, 30], 13);
        // Clean, the layer passes.
        let clean = planted(&x, 0, 0).unwrap();
        let worst = largest_output(&x);
        let err = planted(&x, worst, 100).unwrap_err();
        let GradcheckError::Precision(r) = err else {
            panic!("{err}")
        };
        eprintln!("batch {batch}: clean {clean}\nplanted 100 ulps at output {worst}: {r}");
        // Caught in the output, at the planted element: the check names where the kernel
        // went wrong.
        assert_eq!((r.tensor.as_str(), r.index), ("output", worst), "{r}");
        assert!(r.ratio > 1.0);
        // ... while the clean run's worst element stayed well inside its bound, and an
        // error of a few ulps (what f32 rounding does) passes: the tolerance sits between.
        assert!(clean.ratio < 0.5, "{clean}");
        let few = planted(&x, worst, 3).unwrap();
        assert!(few.ratio <= 1.0, "{few}");
    }
}
