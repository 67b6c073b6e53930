//! Hessian-vector products of the book's networks against central differences of the
//! gradient, in f64 (issue 28's target: 1e-6 relative): network2's [784, 30, 10] sigmoid net
//! with the cross-entropy cost and L2 term on 1,000 images, and a relu net on 100 images.
//! The images are synthetic (pixels in [0, 1], fixed seed): the agreement is a property of
//! the code, not of MNIST.

use nndl_autograd::{functional::hvp, Graph, Result, Var};
use rand::{Rng, SeedableRng};
use tensor::Tensor;

fn uniform(rng: &mut rand_pcg::Pcg64, dims: &[usize], lo: f64, hi: f64) -> Tensor<f64> {
    let n: usize = dims.iter().product();
    Tensor::from_vec((0..n).map(|_| rng.random_range(lo..hi)).collect(), dims).unwrap()
}

/// `[w1, b1, w2, b2]` for a `[784, hidden, 10]` net, weights of variance about `1/n_in` as
/// network2's initialiser gives, and directions `v` of the same shapes.
fn parameters(hidden: usize, seed: u64) -> (Vec<Tensor<f64>>, Vec<Tensor<f64>>) {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    let (a1, a2) = (3f64.sqrt() / 28.0, 3f64.sqrt() / (hidden as f64).sqrt());
    let p = vec![
        uniform(&mut rng, &[hidden, 784], -a1, a1),
        uniform(&mut rng, &[hidden], -1.0, 1.0),
        uniform(&mut rng, &[10, hidden], -a2, a2),
        uniform(&mut rng, &[10], -1.0, 1.0),
    ];
    let v = p
        .iter()
        .map(|t| uniform(&mut rng, t.dims(), -1.0, 1.0))
        .collect();
    (p, v)
}

/// The gradient of `f` at `p` by the first-order backward, flattened.
fn gradient(f: &impl Fn(&mut Graph<f64>, &[Var]) -> Result<Var>, p: &[Tensor<f64>]) -> Vec<f64> {
    let mut g = Graph::new();
    let vs: Vec<Var> = p.iter().map(|t| g.leaf(t.clone())).collect();
    let out = f(&mut g, &vs).unwrap();
    g.backward(out).unwrap();
    vs.iter()
        .flat_map(|&v| g.grad(v).unwrap().data().to_vec())
        .collect()
}

/// `|Hv - (grad(p + eps v) - grad(p - eps v)) / 2 eps| / |Hv|`.
fn hvp_against_differences(
    f: impl Fn(&mut Graph<f64>, &[Var]) -> Result<Var>,
    p: &[Tensor<f64>],
    v: &[Tensor<f64>],
    eps: f64,
) -> f64 {
    let (_, hv) = hvp(&f, p, v).unwrap();
    let hv: Vec<f64> = hv.iter().flat_map(|t| t.data().to_vec()).collect();
    let at = |s: f64| -> Vec<Tensor<f64>> {
        p.iter()
            .zip(v)
            .map(|(a, d)| {
                let data = a.data().iter().zip(d.data()).map(|(a, d)| a + s * d);
                Tensor::from_vec(data.collect(), a.dims()).unwrap()
            })
            .collect()
    };
    let (gp, gm) = (gradient(&f, &at(eps)), gradient(&f, &at(-eps)));
    let (mut d2, mut n2) = (0.0, 0.0);
    for ((a, b), h) in gp.iter().zip(&gm).zip(&hv) {
        let fd = (a - b) / (2.0 * eps);
        d2 += (h - fd) * (h - fd);
        n2 += h * h;
    }
    assert!(n2 > 0.0, "Hv is zero: nothing was compared");
    (d2 / n2).sqrt()
}

#[test]
fn network2_hessian_vector_product_matches_differences_of_the_gradient() {
    // network2: sigmoid layers, the cross-entropy cost on the output's pre-activation, and
    // the L2 term (lambda / 2n) sum w^2 with the book's lambda = 5, n = 50,000.
    let mut rng = rand_pcg::Pcg64::seed_from_u64(41);
    let x = uniform(&mut rng, &[1000, 784], 0.0, 1.0);
    let mut y = Tensor::zeros(&[1000, 10]).unwrap();
    for r in 0..1000 {
        y.data_mut()[r * 10 + rng.random_range(0..10)] = 1.0;
    }
    let l2 = 5.0 / (2.0 * 50_000.0);
    let f = |g: &mut Graph<f64>, p: &[Var]| {
        let (xv, yv) = (g.input(x.clone()), g.input(y.clone()));
        let z1 = g.linear(xv, p[0], Some(p[1]))?;
        let a1 = g.sigmoid(z1)?;
        let z2 = g.linear(a1, p[2], Some(p[3]))?;
        let c = g.sigmoid_cross_entropy(z2, yv)?;
        let s1 = g.sum_squares(p[0])?;
        let s2 = g.sum_squares(p[2])?;
        let s = g.add(s1, s2)?;
        let s = g.scale(s, l2)?;
        g.add(c, s)
    };
    let (p, v) = parameters(30, 42);
    let rel = hvp_against_differences(f, &p, &v, 1e-5);
    assert!(rel < 1e-6, "network2 Hv vs differences: relative {rel:e}");
}

#[test]
fn relu_net_hessian_vector_product_matches_differences_of_the_gradient() {
    // A relu hidden layer and a softmax output with the log-likelihood cost. relu's second
    // derivative is 0 off its kink.
    let mut rng = rand_pcg::Pcg64::seed_from_u64(43);
    let x = uniform(&mut rng, &[100, 784], 0.0, 1.0);
    let labels: Vec<usize> = (0..100).map(|_| rng.random_range(0..10)).collect();
    let f = |g: &mut Graph<f64>, p: &[Var]| {
        let xv = g.input(x.clone());
        let z1 = g.linear(xv, p[0], Some(p[1]))?;
        let a1 = g.relu(z1)?;
        let z2 = g.linear(a1, p[2], Some(p[3]))?;
        g.softmax_cross_entropy(z2, &labels)
    };
    let (p, v) = parameters(100, 44);
    let eps = 1e-6;
    // The relu's pattern is the same at both ends of the step (else the difference would
    // see a kink, not a second derivative).
    let pattern = |s: f64| -> Vec<bool> {
        let mut g = Graph::new();
        let w = p[0].data().iter().zip(v[0].data()).map(|(a, d)| a + s * d);
        let b = p[1].data().iter().zip(v[1].data()).map(|(a, d)| a + s * d);
        let w = g.input(Tensor::from_vec(w.collect(), p[0].dims()).unwrap());
        let b = g.input(Tensor::from_vec(b.collect(), p[1].dims()).unwrap());
        let xv = g.input(x.clone());
        let z = g.linear(xv, w, Some(b)).unwrap();
        g.value(z)
            .unwrap()
            .data()
            .iter()
            .map(|&z| z > 0.0)
            .collect()
    };
    assert_eq!(pattern(eps), pattern(-eps));
    let rel = hvp_against_differences(f, &p, &v, eps);
    assert!(rel < 1e-6, "relu net Hv vs differences: relative {rel:e}");
}
