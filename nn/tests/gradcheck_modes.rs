//! `gradcheck_layer` with the complete check: kinks (a max-pool tie, ReLUs of a zero-initialised
//! layer, all at their zero) are reported and not failed, and fast mode checks a large layer
//! in a few projections.

use autograd::Graph;
use nndl_nn::{
    gradcheck_layer, gradcheck_layer_with, Activation, CheckOptions, Conv2d, Conv2dConfig,
    FcConfig, FullyConnected, Init, MaxPool2d, Mode,
};
use rand::{Rng, SeedableRng};
use tensor::Tensor;

fn input(dims: &[usize], seed: u64) -> Tensor<f64> {
    let mut r = rand_pcg::Pcg64::seed_from_u64(seed);
    let n = dims.iter().product();
    Tensor::from_vec((0..n).map(|_| r.random_range(-1.0..1.0)).collect(), dims).unwrap()
}

#[test]
fn a_max_pool_tie_is_a_kink_not_a_failure() {
    // Channel 0's window ties at 0.5 (elements 0 and 3).
    let x = Tensor::from_vec(
        vec![0.5, 0.1, -0.2, 0.5, 0.3, -0.7, 0.9, 0.2],
        &[1, 2, 2, 2],
    )
    .unwrap();
    let mut g = Graph::<f64>::new();
    let r = gradcheck_layer_with(
        &mut g,
        &MaxPool2d { k: 2 },
        x.clone(),
        Mode::Train,
        CheckOptions::default(),
    )
    .unwrap();
    let kinks: Vec<(&str, usize)> = r.kinks.iter().map(|k| (k.name.as_str(), k.index)).collect();
    assert_eq!(kinks, [("x", 0), ("x", 3)], "{:?}", r.kinks);
    assert_eq!(r.nondet_max, Some(0.0));
    // gradcheck_layer passes it; without kink detection the tie fails.
    let mut g = Graph::<f64>::new();
    assert!(gradcheck_layer(&mut g, &MaxPool2d { k: 2 }, x.clone(), Mode::Train).is_ok());
    let strict = CheckOptions {
        kinks: false,
        ..Default::default()
    };
    let mut g = Graph::<f64>::new();
    assert!(gradcheck_layer_with(&mut g, &MaxPool2d { k: 2 }, x, Mode::Train, strict).is_err());
}

#[test]
fn a_zero_initialised_relu_layer_sits_on_its_kinks_everywhere() {
    // Every pre-activation is exactly 0, so perturbing a weight moves the batch's
    // pre-activations to both sides of 0 at once (by the sign of each input): several kinks
    // coincide at each weight, and the tape's relu'(0) = 0 is neither one-sided slope.
    let mut g = Graph::<f64>::new();
    let config = FcConfig {
        activation: Activation::Relu,
        init: Init::Zeros,
        p_dropout: 0.0,
    };
    let fc = FullyConnected::new(
        &mut g,
        "fc",
        4,
        3,
        config,
        &mut rand_pcg::Pcg64::seed_from_u64(1),
    )
    .unwrap();
    *g.param_mut(fc.b).unwrap() = Tensor::zeros(&[3]).unwrap();
    let r = gradcheck_layer_with(
        &mut g,
        &fc,
        input(&[5, 4], 2),
        Mode::Train,
        CheckOptions::default(),
    )
    .unwrap();
    // The input's gradient is 0 both ways (the weights are 0); every weight and bias is a kink.
    let names: Vec<&str> = r.kinks.iter().map(|k| k.name.as_str()).collect();
    assert_eq!(names.len(), 12 + 3, "{:?}", r.kinks);
    assert!(names.iter().all(|n| *n == "fc.w" || *n == "fc.b"));
    assert!(r.kinks.iter().all(|k| k.analytic == 0.0 && k.x == 0.0));
    // Checked element by element without kink detection, the same layer fails.
    let strict = CheckOptions {
        kinks: false,
        ..Default::default()
    };
    let mut g2 = Graph::<f64>::new();
    let fc2 = FullyConnected::new(
        &mut g2,
        "fc",
        4,
        3,
        config,
        &mut rand_pcg::Pcg64::seed_from_u64(1),
    )
    .unwrap();
    *g2.param_mut(fc2.b).unwrap() = Tensor::zeros(&[3]).unwrap();
    assert!(gradcheck_layer_with(&mut g2, &fc2, input(&[5, 4], 2), Mode::Train, strict).is_err());
}

#[test]
fn fast_mode_checks_a_conv_layer_in_a_few_projections() {
    let mut g = Graph::<f64>::new();
    let config = Conv2dConfig {
        pad: 1,
        stride: 2,
        activation: Activation::Tanh,
        ..Default::default()
    };
    let conv = Conv2d::new(
        &mut g,
        "conv",
        [8, 4, 3, 3],
        config,
        &mut rand_pcg::Pcg64::seed_from_u64(3),
    )
    .unwrap();
    let opts = CheckOptions {
        fast: Some(6),
        ..Default::default()
    };
    let r =
        gradcheck_layer_with(&mut g, &conv, input(&[4, 4, 16, 16], 4), Mode::Train, opts).unwrap();
    let fast = r.fast.unwrap();
    assert!(!fast.fell_back && fast.badness <= 1.0, "{fast:?}");
    assert_eq!(
        r.worst.checked, 0,
        "4,400 elements, none checked one by one"
    );
}
