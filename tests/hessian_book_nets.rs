//! Issue 28's targets on MNIST: Hessian-vector products of network2's [784, 30, 10] net on
//! 1,000 training images and of the relu net of chapter 6
//! (`network3 --preset relu`'s layers: two conv-pool layers with relu, a relu fully connected
//! layer, softmax with the log-likelihood cost) on 100, in f64, agree with central differences
//! of the gradient to 1e-6 relative.
//!
//! The pools take the derivative of the max (`PoolGrad::First`), not network3's `ties`
//! option: where a window's tied positions have equal input patches (image 2 of the training
//! set has such windows under this seed) Theano's rule sends the gradient to each of them,
//! which is not the derivative of the loss, so differentiating it again gives no Hessian (its
//! Jacobian is not symmetric; see `PoolGrad::Ties`).
//!
//! A central difference is only a derivative while the step moves no pre-activation across a
//! relu zero and no pool window's maximum past another: with ~1.4 million such units on 100
//! images, a step of 1e-4 crosses one. So the step is 1e-6 and the test first shows it crosses
//! none: the forward and backward one-sided quotients agree with each other (a kink between
//! them would put them apart by its jump over the step).

use autograd::functional::hvp_on;
use autograd::{Graph, Tensor, Var};
use nn::{Mode, Network};
use rand::SeedableRng;

/// `network3 --preset relu`'s layers with the max's own derivative at the pools.
const RELU_NET: &str = "conv:20x5x5,pool:2,relu conv:40x5x5,pool:2,relu fc:100,relu softmax:10";

fn gradient(net: &mut Network<f64>, data: &mnist::Dataset, idx: &[usize]) -> Vec<f64> {
    net.graph_mut().reset();
    let loss = net.batch_loss(data, idx, Mode::Eval).unwrap();
    net.graph_mut().backward(loss).unwrap();
    let params = net.parameters();
    params
        .iter()
        .flat_map(|&p| net.graph().grad(p).unwrap().data().to_vec())
        .collect()
}

fn shift(g: &mut Graph<f64>, params: &[Var], v: &[Tensor<f64>], s: f64) {
    for (&p, d) in params.iter().zip(v) {
        let w = g.param_mut(p).unwrap();
        w.data_mut()
            .iter_mut()
            .zip(d.data())
            .for_each(|(w, d)| *w += s * d);
    }
}

/// `|a - b| / |b|` over whole vectors.
fn relative(a: &[f64], b: &[f64]) -> f64 {
    let d2: f64 = a.iter().zip(b).map(|(a, b)| (a - b) * (a - b)).sum();
    let n2: f64 = b.iter().map(|b| b * b).sum();
    assert!(n2 > 0.0, "a zero vector: nothing was compared");
    (d2 / n2).sqrt()
}

/// `|Hv - differences| / |Hv|` for `net` on the first `n` training images along a seeded
/// random unit direction, central differences of step `eps`, after asserting that the step
/// crosses no kink.
fn hvp_against_differences(mut net: Network<f64>, n: usize, eps: f64) -> f64 {
    let dir = mnist::find_data_dir(None).expect("MNIST in data/mnist");
    let data = mnist::load_data(&dir).unwrap().training.take(n);
    let idx: Vec<usize> = (0..n).collect();
    let params = net.parameters();

    // A random direction of unit norm over all parameters.
    let mut rng = rand_pcg::Pcg64::seed_from_u64(11);
    let mut v: Vec<Tensor<f64>> = params
        .iter()
        .map(|&p| {
            let dims = net.graph().value(p).unwrap().dims().to_vec();
            Tensor::randn(&dims, 0.0, 1.0, &mut rng).unwrap()
        })
        .collect();
    let norm = v
        .iter()
        .flat_map(|t| t.data())
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt();
    for t in &mut v {
        t.data_mut().iter_mut().for_each(|x| *x /= norm);
    }

    net.graph_mut().reset();
    let loss = net.batch_loss(&data, &idx, Mode::Eval).unwrap();
    let hv: Vec<f64> = hvp_on(net.graph_mut(), loss, &params, &v)
        .unwrap()
        .iter()
        .flat_map(|t| t.data().to_vec())
        .collect();

    let mid = gradient(&mut net, &data, &idx);
    shift(net.graph_mut(), &params, &v, eps);
    let up = gradient(&mut net, &data, &idx);
    shift(net.graph_mut(), &params, &v, -2.0 * eps);
    let down = gradient(&mut net, &data, &idx);
    shift(net.graph_mut(), &params, &v, eps);

    let quotient = |a: &[f64], b: &[f64], h: f64| -> Vec<f64> {
        a.iter().zip(b).map(|(a, b)| (a - b) / h).collect()
    };
    let (forward, backward) = (quotient(&up, &mid, eps), quotient(&mid, &down, eps));
    let central = quotient(&up, &down, 2.0 * eps);
    // Smooth: the one-sided quotients differ by eps times a third derivative (~1e-7 here);
    // a relu or pool switch inside the step would put them ~1e-3 apart (as at eps 1e-4).
    let sides = relative(&forward, &backward);
    assert!(
        sides < 1e-5,
        "the step crossed a kink: one-sided quotients {sides:e} apart"
    );
    let rel = relative(&central, &hv);
    eprintln!(
        "{n} images: |Hv - differences| / |Hv| = {rel:e} (one-sided quotients {sides:e} apart)"
    );
    rel
}

#[test]
fn network2_hessian_vector_product_matches_differences_of_the_gradient() {
    let net = Network::<f64>::sigmoid_mlp(
        &[784, 30, 10],
        nn::Cost::CrossEntropy,
        nn::Init::ScaledByInputs,
        3,
    )
    .unwrap();
    let rel = hvp_against_differences(net, 1000, 1e-5);
    assert!(
        rel < 1e-6,
        "network2: Hv against differences of the gradient: relative {rel:e}"
    );
}

#[test]
fn relu_net_of_chapter_6_hessian_vector_product_matches_differences_of_the_gradient() {
    let net =
        nn::spec::build::<f64>(RELU_NET, &mnist::IMAGE_DIMS, nn::Cost::LogLikelihood, 3).unwrap();
    let rel = hvp_against_differences(net, 100, 1e-6);
    assert!(
        rel < 1e-6,
        "relu net: Hv against differences of the gradient: relative {rel:e}"
    );
}
