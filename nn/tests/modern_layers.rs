//! The layers past the book, gradchecked in f64 through `gradcheck_layer`, and the behaviour
//! their gradients do not show: batch norm's running statistics and evaluation mode,
//! dropout's scaling, and the shapes a network of them builds.

use autograd::Graph;
use nndl_nn::{
    gradcheck_layer, Activation, BatchNorm, Conv2d, Conv2dConfig, Ctx, Dropout, Flatten, Init,
    Layer, MaxPool2d, Mode,
};
use rand::{Rng, SeedableRng};
use tensor::Tensor;

fn rng(seed: u64) -> rand_pcg::Pcg64 {
    rand_pcg::Pcg64::seed_from_u64(seed)
}

fn input(dims: &[usize], seed: u64, mean: f64, spread: f64) -> Tensor<f64> {
    let mut r = rng(seed);
    let n = dims.iter().product();
    let v = (0..n)
        .map(|_| mean + spread * r.random_range(-1.0..1.0))
        .collect();
    Tensor::from_vec(v, dims).unwrap()
}

fn check(g: &mut Graph<f64>, layer: &dyn Layer<f64>, x: Tensor<f64>, mode: Mode) -> usize {
    match gradcheck_layer(g, layer, x, mode) {
        Ok(r) => r.checked,
        Err(e) => panic!("{}: {e}", layer.describe()),
    }
}

/// One forward of `layer` on `x` in `mode`; the output values.
fn forward(g: &mut Graph<f64>, layer: &dyn Layer<f64>, x: &Tensor<f64>, mode: Mode) -> Vec<f64> {
    let mut r = rng(5);
    let mut cx = Ctx { mode, rng: &mut r };
    let xv = g.input(x.clone());
    let y = layer.forward(g, xv, &mut cx).unwrap();
    g.value(y).unwrap().data().to_vec()
}

#[test]
fn conv2d_with_padding_stride_and_bias_is_gradchecked() {
    for (pad, stride, bias, act) in [
        (1, 1, true, Activation::Identity),
        (1, 1, false, Activation::Tanh),
        (2, 2, true, Activation::Sigmoid),
        (0, 2, false, Activation::Identity),
    ] {
        let mut g = Graph::<f64>::new();
        let config = Conv2dConfig {
            pad,
            stride,
            bias,
            activation: act,
            init: Init::He,
            pool: None,
        };
        let l = Conv2d::new(&mut g, "c", [4, 3, 3, 3], config, &mut rng(1)).unwrap();
        let want = [
            4usize,
            (6 + 2 * pad - 3) / stride + 1,
            (7 + 2 * pad - 3) / stride + 1,
        ];
        assert_eq!(Layer::<f64>::output_dims(&l, &[3, 6, 7]).unwrap(), want);
        let x = input(&[2, 3, 6, 7], 2, 0.0, 1.0);
        let checked = check(&mut g, &l, x, Mode::Train);
        let params = 4 * 3 * 9 + if bias { 4 } else { 0 };
        assert_eq!(
            checked,
            2 * 3 * 6 * 7 + params,
            "{}",
            Layer::<f64>::describe(&l)
        );
    }
}

#[test]
fn batch_norm_is_gradchecked_in_training_mode_1d_and_2d() {
    for (dims, act) in [
        (vec![5usize, 4], Activation::Identity),
        (vec![3, 2, 3, 4], Activation::Identity),
        (vec![4, 3, 2, 2], Activation::Tanh),
    ] {
        let mut g = Graph::<f64>::new();
        let bn = BatchNorm::new(&mut g, "bn", dims[1], act).unwrap();
        // Non-trivial scale and shift, so their gradients are not the identity's.
        for (p, v) in [(bn.gamma, 1.5), (bn.beta, -0.3)] {
            let t = g.param_mut(p).unwrap();
            t.data_mut()
                .iter_mut()
                .enumerate()
                .for_each(|(i, e)| *e = v + 0.1 * i as f64);
        }
        let x = input(&dims, 3, 2.0, 3.0);
        let n: usize = dims.iter().product();
        assert_eq!(check(&mut g, &bn, x, Mode::Train), n + 2 * dims[1]);
    }
}

#[test]
fn batch_norm_in_training_normalises_each_channel_of_the_batch() {
    let mut g = Graph::<f64>::new();
    let bn = BatchNorm::new(&mut g, "bn", 3, Activation::Identity).unwrap();
    let x = input(&[8, 3, 4, 5], 4, 7.0, 5.0);
    let y = forward(&mut g, &bn, &x, Mode::Train);
    for c in 0..3 {
        let v: Vec<f64> = (0..8)
            .flat_map(|n| y[(n * 3 + c) * 20..(n * 3 + c + 1) * 20].to_vec())
            .collect();
        let mean = v.iter().sum::<f64>() / v.len() as f64;
        let var = v.iter().map(|e| (e - mean).powi(2)).sum::<f64>() / v.len() as f64;
        assert!(mean.abs() < 1e-12, "channel {c} mean {mean}");
        // Normalised by sqrt(var + eps): just under 1.
        assert!(
            (var - 1.0).abs() < 1e-5 && var < 1.0,
            "channel {c} var {var}"
        );
    }
}

#[test]
fn batch_norm_evaluates_with_the_running_statistics_of_training() {
    let (n, c, hw) = (6usize, 2usize, 3usize);
    let mut g = Graph::<f64>::new();
    let bn = BatchNorm::new(&mut g, "bn", c, Activation::Identity).unwrap();
    let batch = input(&[n, c, hw, 1], 9, -4.0, 2.0);
    // Per channel, the batch's mean and unbiased variance.
    let stats: Vec<(f64, f64)> = (0..c)
        .map(|ch| {
            let v: Vec<f64> = (0..n)
                .flat_map(|i| batch.data()[(i * c + ch) * hw..(i * c + ch + 1) * hw].to_vec())
                .collect();
            let m = v.iter().sum::<f64>() / v.len() as f64;
            let var = v.iter().map(|e| (e - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64;
            (m, var)
        })
        .collect();
    let steps = 30;
    for _ in 0..steps {
        g.reset();
        forward(&mut g, &bn, &batch, Mode::Train);
    }
    // running <- 0.9 running + 0.1 batch, from mean 0 and variance 1.
    let keep = 0.9f64.powi(steps);
    let rm = g.value(bn.running_mean).unwrap().data().to_vec();
    let rv = g.value(bn.running_var).unwrap().data().to_vec();
    for ch in 0..c {
        let (m, v) = stats[ch];
        assert!(
            (rm[ch] - m * (1.0 - keep)).abs() < 1e-12,
            "mean {} vs {m}",
            rm[ch]
        );
        assert!(
            (rv[ch] - (v * (1.0 - keep) + keep)).abs() < 1e-12,
            "var {} vs {v}",
            rv[ch]
        );
    }
    // Evaluation normalises by the running statistics, not the batch's.
    let x = input(&[2, c, hw, 1], 10, 1.0, 1.0);
    g.reset();
    let y = forward(&mut g, &bn, &x, Mode::Eval);
    for (i, (&yi, &xi)) in y.iter().zip(x.data()).enumerate() {
        let ch = (i / hw) % c;
        let want = (xi - rm[ch]) / (rv[ch] + 1e-5).sqrt();
        assert!((yi - want).abs() < 1e-12, "{i}: {yi} vs {want}");
    }
    // And leaves them alone.
    assert_eq!(g.value(bn.running_mean).unwrap().data(), &rm[..]);
    // The running statistics get no gradient: only gamma and beta are trained.
    assert!(g.is_frozen(bn.running_mean) && g.is_frozen(bn.running_var));
    assert!(!g.is_frozen(bn.gamma) && !g.is_frozen(bn.beta));
}

#[test]
fn max_pool_dropout_and_flatten_are_gradchecked() {
    let x = input(&[2, 3, 4, 6], 11, 0.0, 1.0);
    let n = x.numel();
    let mut g = Graph::<f64>::new();
    assert_eq!(
        check(&mut g, &MaxPool2d { k: 2 }, x.clone(), Mode::Train),
        n
    );
    let mut g = Graph::<f64>::new();
    let d = Dropout::new(0.4).unwrap();
    assert_eq!(check(&mut g, &d, x.clone(), Mode::Train), n);
    let mut g = Graph::<f64>::new();
    assert_eq!(check(&mut g, &Flatten, x, Mode::Eval), n);
    assert_eq!(
        Layer::<f64>::output_dims(&Flatten, &[3, 4, 6]).unwrap(),
        [72]
    );
    let pool = MaxPool2d { k: 2 };
    assert_eq!(
        Layer::<f64>::output_dims(&pool, &[3, 5, 7]).unwrap(),
        [3, 2, 3]
    );
    assert!(Layer::<f64>::output_dims(&pool, &[10]).is_err());
}

#[test]
fn inverted_dropout_scales_kept_values_in_training_and_is_the_identity_in_evaluation() {
    let x = input(&[50, 200], 12, 2.0, 1.0);
    let d = Dropout::new(0.25).unwrap();
    let mut g = Graph::<f64>::new();
    let y = forward(&mut g, &d, &x, Mode::Train);
    let mut dropped = 0;
    for (&yi, &xi) in y.iter().zip(x.data()) {
        if yi == 0.0 {
            dropped += 1;
        } else {
            assert!((yi - xi / 0.75).abs() < 1e-12, "{yi} vs {xi}/0.75");
        }
    }
    let frac = dropped as f64 / y.len() as f64;
    // 10,000 draws: the standard deviation of the fraction is 0.0043.
    assert!((frac - 0.25).abs() < 0.02, "dropped {frac}");
    assert_eq!(forward(&mut g, &d, &x, Mode::Eval), x.data());
    assert!(Dropout::new(1.0).is_err() && Dropout::new(-0.1).is_err());
}
