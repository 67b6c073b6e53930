//! Every layer kind checked one order up (`gradgradcheck_layer`): the gradient recorded on the
//! tape, differentiated again, against central differences of the first-order gradient, in
//! f64, with respect to the input, the weights and the biases. What a Hessian-vector product
//! or a gradient penalty through a network relies on.

use autograd::Graph;
use nndl_nn::{
    gradgradcheck_layer, Activation, BatchNorm, Conv2d, Conv2dConfig, ConvPool, Dropout, FcConfig,
    Flatten, FullyConnected, Init, Layer, MaxPool2d, Mode,
};
use rand::{Rng, SeedableRng};
use tensor::Tensor;

fn rng(seed: u64) -> rand_pcg::Pcg64 {
    rand_pcg::Pcg64::seed_from_u64(seed)
}

/// Values in ±[0.1, 1]: away from relu's zero, and distinct, so no max-pool window ties.
fn input(dims: &[usize], seed: u64) -> Tensor<f64> {
    let mut r = rng(seed);
    let n = dims.iter().product();
    let data = (0..n)
        .map(|_| {
            let v: f64 = r.random_range(0.1..1.0);
            if r.random_bool(0.5) {
                v
            } else {
                -v
            }
        })
        .collect();
    Tensor::from_vec(data, dims).unwrap()
}

/// Checks `layer` and returns how many elements were compared.
fn check(g: &mut Graph<f64>, layer: &dyn Layer<f64>, x: Tensor<f64>, mode: Mode) -> usize {
    match gradgradcheck_layer(g, layer, x, mode) {
        Ok(r) => r.checked,
        Err(e) => panic!("{}: {e}", layer.describe()),
    }
}

#[test]
fn fully_connected_with_each_activation_and_dropout() {
    for act in [Activation::Sigmoid, Activation::Tanh, Activation::Relu] {
        for p in [0.0, 0.5] {
            let mut g = Graph::<f64>::new();
            let config = FcConfig {
                activation: act,
                init: Init::ScaledByInputs,
                p_dropout: p,
            };
            let l = FullyConnected::new(&mut g, "fc", 6, 4, config, &mut rng(1)).unwrap();
            assert_eq!(
                check(&mut g, &l, input(&[3, 6], 2), Mode::Train),
                18 + 24 + 4
            );
        }
    }
}

#[test]
fn conv_pool_with_each_activation() {
    for act in [Activation::Sigmoid, Activation::Tanh, Activation::Relu] {
        let mut g = Graph::<f64>::new();
        let l = ConvPool::new(&mut g, "cp", [3, 2, 3, 3], 2, act, &mut rng(4)).unwrap();
        let x = input(&[2, 2, 8, 8], 5);
        assert_eq!(check(&mut g, &l, x, Mode::Train), 256 + 54 + 3);
    }
}

#[test]
fn conv2d_with_padding_and_stride() {
    for (pad, stride) in [(0, 1), (1, 1), (1, 2)] {
        let mut g = Graph::<f64>::new();
        let config = Conv2dConfig {
            pad,
            stride,
            bias: true,
            activation: Activation::Tanh,
            init: Init::He,
            pool: None,
        };
        let l = Conv2d::new(&mut g, "c", [3, 2, 3, 3], config, &mut rng(1)).unwrap();
        let x = input(&[2, 2, 6, 7], 2);
        assert_eq!(check(&mut g, &l, x, Mode::Train), 168 + 54 + 3);
    }
}

#[test]
fn batch_norm_with_batch_and_running_statistics() {
    for mode in [Mode::Train, Mode::Eval] {
        for act in [Activation::Identity, Activation::Tanh] {
            let mut g = Graph::<f64>::new();
            let bn = BatchNorm::new(&mut g, "bn", 3, act).unwrap();
            let x = input(&[4, 3, 2, 2], 7);
            assert_eq!(check(&mut g, &bn, x, mode), 48 + 3 + 3);
        }
    }
}

#[test]
fn max_pool_dropout_and_flatten() {
    let x = input(&[2, 3, 4, 4], 9);
    let mut g = Graph::<f64>::new();
    assert_eq!(
        check(&mut g, &MaxPool2d { k: 2 }, x.clone(), Mode::Train),
        96
    );
    let mut g = Graph::<f64>::new();
    assert_eq!(
        check(&mut g, &Dropout::new(0.4).unwrap(), x.clone(), Mode::Train),
        96
    );
    let mut g = Graph::<f64>::new();
    assert_eq!(check(&mut g, &Flatten, x, Mode::Eval), 96);
}
