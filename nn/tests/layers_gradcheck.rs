//! Every layer of the book gradchecked in f64 (dropout with a fixed mask: the closure reseeds
//! the mask's random source on every evaluation), plus network3's dropout semantics and a
//! whole network3-style cost with its in-graph L2 term checked end to end.

mod common;

use autograd::Graph;
use nndl_nn::{
    gradcheck_layer, Activation, ConvPool, Ctx, DropoutStyle, FcConfig, FullyConnected, InMemory,
    Init, Layer, Mode, Regularization,
};
use rand::{Rng, SeedableRng};
use tensor::Tensor;

fn rng(seed: u64) -> rand_pcg::Pcg64 {
    rand_pcg::Pcg64::seed_from_u64(seed)
}

/// Gradchecks `layer` on input `x` in `mode`, the input itself included.
fn check_layer(g: &mut Graph<f64>, layer: &dyn Layer<f64>, x: Tensor<f64>, mode: Mode) -> usize {
    match gradcheck_layer(g, layer, x, mode) {
        Ok(r) => r.checked,
        Err(e) => panic!("{}: {e}", layer.describe()),
    }
}

fn input(dims: &[usize], seed: u64) -> Tensor<f64> {
    let mut r = rng(seed);
    let n = dims.iter().product();
    Tensor::from_vec((0..n).map(|_| r.random_range(-1.0..1.0)).collect(), dims).unwrap()
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
            let mut g = Graph::<f64>::new();
            let l = FullyConnected::new(
                &mut g,
                "fc",
                6,
                4,
                FcConfig {
                    activation: act,
                    init: Init::ScaledByOutputs,
                    p_dropout: p,
                },
                &mut rng(1),
            )
            .unwrap();
            assert_eq!(
                check_layer(&mut g, &l, input(&[3, 6], 2), mode),
                18 + 24 + 4
            );
        }
    }
    // Inverted dropout too.
    let mut g = Graph::<f64>::new();
    let l = FullyConnected::new(
        &mut g,
        "fc",
        6,
        4,
        FcConfig {
            activation: Activation::Relu,
            init: Init::ScaledByOutputs,
            p_dropout: 0.3,
        },
        &mut rng(1),
    )
    .unwrap()
    .with_dropout_style(DropoutStyle::Inverted);
    check_layer(&mut g, &l, input(&[3, 6], 2), Mode::Train);
}

#[test]
fn conv_pool_every_activation() {
    for act in [Activation::Sigmoid, Activation::Tanh, Activation::Relu] {
        let mut g = Graph::<f64>::new();
        let l = ConvPool::new(&mut g, "cp", [3, 2, 3, 3], 2, act, &mut rng(4)).unwrap();
        assert_eq!(
            check_layer(&mut g, &l, input(&[2, 2, 8, 7], 5), Mode::Train),
            2 * 2 * 8 * 7 + 3 * 2 * 9 + 3
        );
    }
}

#[test]
fn network3_dropout_semantics() {
    // Train: y = act((x * mask) w^T + b) with a 0/1 mask, no rescaling.
    // Eval: y = act((1 - p) x w^T + b).
    let mut g = Graph::<f64>::new();
    let l = FullyConnected::new(
        &mut g,
        "fc",
        200,
        1,
        FcConfig {
            activation: Activation::Identity,
            init: Init::Zeros,
            p_dropout: 0.5,
        },
        &mut rng(1),
    )
    .unwrap();
    *g.param_mut(l.w).unwrap() = Tensor::full(&[1, 200], 1.0).unwrap();
    *g.param_mut(l.b).unwrap() = Tensor::full(&[1], 0.25).unwrap();
    let x = g.input(Tensor::full(&[1, 200], 1.0).unwrap());
    // The same draws in both modes: only the mode differs.
    let output = |g: &mut Graph<f64>, mode| {
        let mut r = rng(9);
        let mut cx = Ctx { mode, rng: &mut r };
        let y = l.forward(g, x, &mut cx).unwrap();
        g.value(y).unwrap().data()[0]
    };
    let kept = output(&mut g, Mode::Train) - 0.25;
    assert_eq!(kept.fract(), 0.0, "a 0/1 mask keeps whole inputs");
    assert!(
        (60.0..140.0).contains(&kept),
        "about half of 200 inputs kept, got {kept}"
    );
    assert_eq!(output(&mut g, Mode::Eval), 0.5 * 200.0 + 0.25);
}

#[test]
fn a_network3_cost_with_in_graph_l2_end_to_end() {
    let mut net = nndl_nn::spec::build::<f64>(
        "conv:2x5x5,pool:2,relu fc:6,tanh,dropout:0.5 softmax:10,dropout:0.5",
        &[1, 28, 28],
        nndl_nn::Cost::LogLikelihood,
        3,
    )
    .unwrap();
    let mut r = rng(8);
    let data = InMemory {
        inputs: (0..3 * 784).map(|_| r.random_range(0.0..1.0)).collect(),
        labels: vec![3, 7, 1],
        sample_len: 784,
    };
    // Non-zero softmax weights, so every path carries gradient.
    for p in net.parameters() {
        let t = net.graph().value(p).unwrap().clone();
        let v = Tensor::from_vec(
            (0..t.numel()).map(|_| r.random_range(-0.3..0.3)).collect(),
            t.dims(),
        )
        .unwrap();
        *net.graph_mut().param_mut(p).unwrap() = v;
    }
    let reg = Regularization::InGraph {
        lmbda: 0.7,
        num_batches: 5,
    };
    common::gradcheck_cost(net, &data, &[0, 1, 2], reg);
}
