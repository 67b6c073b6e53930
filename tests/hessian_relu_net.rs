//! Issue 28's target for chapter 6: a Hessian-vector product of network3's relu net (the
//! `--preset relu` layers: two conv-pool layers with relu and the book's tie rule, a relu
//! fully connected layer, softmax with the log-likelihood cost), in f64 on 100 MNIST images,
//! agrees with central differences of the gradient to 1e-6 relative.
//!
//! The difference quotient is only valid while the step moves no pre-activation across a
//! relu zero and no pool window's maximum past another: the direction has unit norm over the
//! ~86,000 parameters and the step is 1e-4, so each weight moves by about 3e-7.

use autograd::functional::hvp_on;
use autograd::{Graph, Tensor, Var};
use nn::{Mode, Network};
use rand::SeedableRng;

/// The layers of `network3 --preset relu`.
const RELU_PRESET: &str =
    "conv:20x5x5,pool:2,relu,ties conv:40x5x5,pool:2,relu,ties fc:100,relu softmax:10";

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

// Open (issue 28): on MNIST this gives 9.6e-4 at the step 1e-4 and 7.2e-4 at both 1e-5 and
// 1e-6 (so no relu or pool switch within the step explains it: a real disagreement). One conv-pool layer with the first-max
// rule agrees to 3e-11, with network3's tie rule (`ties`) it does not (relu 5.5e-4, tanh 9.7e-4):
// yet a lone conv-pool op with the tie rule on a half-blank input passes gradgradcheck, so the
// cause is in how the net combines it (mixed terms with the softmax layer's weights?); two
// conv-pool layers with the first-max rule give 6.3e-4. Run with `--ignored`.
#[test]
#[ignore = "issue 28: the conv-pool Hessian on MNIST's tied pool windows disagrees (7.2e-4)"]
fn relu_net_of_chapter_6_hessian_vector_product_matches_differences_of_the_gradient() {
    let dir = mnist::find_data_dir(None).expect("MNIST in data/mnist");
    let data = mnist::load_data(&dir).unwrap().training.take(100);
    let idx: Vec<usize> = (0..100).collect();
    let mut net =
        nn::spec::build::<f64>(RELU_PRESET, &mnist::IMAGE_DIMS, nn::Cost::LogLikelihood, 3)
            .unwrap();
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

    let eps = 1e-4;
    shift(net.graph_mut(), &params, &v, eps);
    let up = gradient(&mut net, &data, &idx);
    shift(net.graph_mut(), &params, &v, -2.0 * eps);
    let down = gradient(&mut net, &data, &idx);
    shift(net.graph_mut(), &params, &v, eps);

    let (mut d2, mut n2) = (0.0, 0.0);
    for ((a, b), h) in up.iter().zip(&down).zip(&hv) {
        let fd = (a - b) / (2.0 * eps);
        d2 += (h - fd) * (h - fd);
        n2 += h * h;
    }
    assert!(n2 > 0.0, "Hv is zero: nothing was compared");
    let rel = (d2 / n2).sqrt();
    eprintln!("relu net of chapter 6, 100 images: |Hv - differences| / |Hv| = {rel:e}");
    assert!(
        rel < 1e-6,
        "Hv against differences of the gradient: relative {rel:e}"
    );
}
