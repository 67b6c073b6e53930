//! `Graph::backward_step` (SGD inside the backward) against the plain route: backward, then
//! `p <- decay*p - eta*grad` for every parameter. Same parameters up to float rounding, with
//! an L2 term folded in, a weight used twice (not fused), a bias, frozen weights, and batches
//! too large for the fused kernel.

use autograd::{Graph, Sgd, Var};
use rand::{Rng, SeedableRng};
use tensor::Tensor;

struct Net {
    g: Graph<f32>,
    w1: Var,
    b1: Var,
    w2: Var,
    b2: Var,
    w3: Var,
}

fn net(seed: u64) -> Net {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    let mut t = |dims: &[usize]| {
        let n: usize = dims.iter().product();
        Tensor::from_vec((0..n).map(|_| rng.random_range(-0.5..0.5)).collect(), dims).unwrap()
    };
    let mut g = Graph::new();
    let w1 = g.parameter("w1", t(&[40, 33]));
    let b1 = g.parameter("b1", t(&[40]));
    let w2 = g.parameter("w2", t(&[10, 40]));
    let b2 = g.parameter("b2", t(&[10]));
    let w3 = g.parameter("w3", t(&[10, 10]));
    Net {
        g,
        w1,
        b1,
        w2,
        b2,
        w3,
    }
}

/// softmax-CE of relu(x w1^T + b1) w2^T + b2, then w3 used twice, plus 0.5*l2*sum(w^2).
fn loss(n: &mut Net, rows: usize, l2: f32) -> Var {
    let g = &mut n.g;
    let x = g.input(
        Tensor::from_vec(
            (0..rows * 33)
                .map(|i| ((i * 7 % 13) as f32 - 6.0) / 6.0)
                .collect(),
            &[rows, 33],
        )
        .unwrap(),
    );
    let h = g.linear(x, n.w1, Some(n.b1)).unwrap();
    let h = g.relu(h).unwrap();
    let z = g.linear(h, n.w2, Some(n.b2)).unwrap();
    let z = g.linear(z, n.w3, None).unwrap();
    let z = g.linear(z, n.w3, None).unwrap();
    let labels: Vec<usize> = (0..rows).map(|i| i % 10).collect();
    let mut l = g.softmax_cross_entropy(z, &labels).unwrap();
    if l2 > 0.0 {
        for w in [n.w1, n.w2, n.w3] {
            let s = g.sum_squares(w).unwrap();
            let s = g.scale(s, 0.5 * l2).unwrap();
            l = g.add(l, s).unwrap();
        }
    }
    l
}

fn params(n: &Net) -> Vec<Vec<f32>> {
    n.g.parameters()
        .map(|p| n.g.value(p).unwrap().data().to_vec())
        .collect()
}

fn plain_step(n: &mut Net, eta: f32, decay: &[f32]) {
    for (i, p) in n.g.parameters().collect::<Vec<_>>().into_iter().enumerate() {
        let (v, g) = n.g.param_and_grad(p).unwrap();
        let g = g.expect("every parameter has a gradient").data().to_vec();
        for (w, d) in v.data_mut().iter_mut().zip(g) {
            *w = decay[i] * *w - eta * d;
        }
    }
}

fn fused_step(n: &mut Net, eta: f32, decay: &[f32]) {
    let updated: Vec<bool> = n.g.parameters().map(|p| n.g.stepped(p).is_some()).collect();
    for (i, p) in n.g.parameters().collect::<Vec<_>>().into_iter().enumerate() {
        if updated[i] {
            assert!(
                n.g.grad(p).is_none(),
                "a stepped parameter keeps no gradient"
            );
            continue;
        }
        let (v, g) = n.g.param_and_grad(p).unwrap();
        let g = g
            .expect("unstepped parameters have a gradient")
            .data()
            .to_vec();
        for (w, d) in v.data_mut().iter_mut().zip(g) {
            *w = decay[i] * *w - eta * d;
        }
    }
}

fn compare(rows: usize, l2: f32, expect_fused: &[bool]) {
    let (eta, decay) = (0.1f32, [0.999f32, 1.0, 0.999, 1.0, 0.999]);
    let (mut a, mut b) = (net(1), net(1));
    for step in 0..3 {
        a.g.reset();
        let la = loss(&mut a, rows, l2);
        a.g.backward(la).unwrap();
        plain_step(&mut a, eta, &decay);

        b.g.reset();
        let lb = loss(&mut b, rows, l2);
        b.g.backward_step(lb, &Sgd { eta, decay: &decay }).unwrap();
        let fused: Vec<bool> = b.g.parameters().map(|p| b.g.stepped(p).is_some()).collect();
        assert_eq!(
            fused, expect_fused,
            "rows {rows}: which parameters were fused"
        );
        fused_step(&mut b, eta, &decay);
        for (i, (pa, pb)) in params(&a).iter().zip(params(&b)).enumerate() {
            for (x, y) in pa.iter().zip(&pb) {
                assert!(
                    (x - y).abs() <= 2e-6 * (1.0 + x.abs()),
                    "rows {rows} l2 {l2} step {step} parameter {i}: {x} vs {y}"
                );
            }
        }
    }
}

#[test]
fn fused_step_equals_backward_then_sgd() {
    // w1 and w2 are fused (one use each, last contributor); w3 is used twice: plain.
    compare(10, 0.0, &[true, false, true, false, false]);
    compare(7, 0.0, &[true, false, true, false, false]);
}

#[test]
fn an_l2_term_is_folded_into_the_step() {
    compare(10, 0.05, &[true, false, true, false, false]);
    compare(1, 0.2, &[true, false, true, false, false]);
}

#[test]
fn batches_over_the_kernel_size_take_the_plain_route() {
    compare(13, 0.05, &[false; 5]);
}

#[test]
fn frozen_weights_are_not_stepped() {
    let mut n = net(2);
    n.g.set_frozen(n.w1, true).unwrap();
    let before = n.g.value(n.w1).unwrap().clone();
    let l = loss(&mut n, 10, 0.1);
    n.g.backward_step(
        l,
        &Sgd {
            eta: 0.1,
            decay: &[1.0; 5],
        },
    )
    .unwrap();
    assert_eq!(n.g.stepped(n.w1), None);
    assert_eq!(n.g.value(n.w1).unwrap(), &before);
    assert_eq!(n.g.stepped(n.w2), Some(true));
}

#[test]
fn f64_graphs_keep_plain_gradients_and_a_wrong_decay_count_is_an_error() {
    let mut g = Graph::<f64>::new();
    let w = g.parameter("w", Tensor::from_vec(vec![1.0, 2.0, 3.0], &[1, 3]).unwrap());
    let x = g.input(Tensor::from_vec(vec![1.0, 1.0, 1.0], &[1, 3]).unwrap());
    let y = g.linear(x, w, None).unwrap();
    let s = g.sum_squares(w).unwrap();
    let l = g.add(y, s).unwrap();
    let l = g.reshape(l, &[]).unwrap();
    assert!(g
        .backward_step(
            l,
            &Sgd {
                eta: 0.1,
                decay: &[]
            }
        )
        .unwrap_err()
        .to_string()
        .contains("decay"));
    g.backward_step(
        l,
        &Sgd {
            eta: 0.1,
            decay: &[1.0],
        },
    )
    .unwrap();
    // f64 has no fused kernel: d/dw (x.w + sum w^2) = x + 2w, stored as a gradient.
    assert_eq!(g.stepped(w), None);
    assert_eq!(g.grad(w).unwrap().data(), &[3.0, 5.0, 7.0]);
}

#[test]
fn the_l2_sum_a_fused_step_leaves_is_the_weights_sum_until_they_change() {
    let mut n = net(3);
    let l = loss(&mut n, 10, 0.1);
    n.g.backward_step(
        l,
        &Sgd {
            eta: 0.1,
            decay: &[0.99; 5],
        },
    )
    .unwrap();
    assert_eq!(n.g.stepped(n.w1), Some(true));
    let exact = |n: &Net| -> f64 {
        n.g.value(n.w1)
            .unwrap()
            .data()
            .iter()
            .map(|&v| v as f64 * v as f64)
            .sum()
    };
    n.g.reset();
    let s = n.g.sum_squares(n.w1).unwrap();
    let got = n.g.value(s).unwrap().data()[0] as f64;
    assert!(
        (got - exact(&n)).abs() <= 1e-5 * exact(&n),
        "{got} vs {}",
        exact(&n)
    );
    // Changed by hand: the sum is taken afresh.
    n.g.param_mut(n.w1).unwrap().data_mut()[0] += 3.0;
    n.g.reset();
    let s = n.g.sum_squares(n.w1).unwrap();
    let got = n.g.value(s).unwrap().data()[0] as f64;
    assert!(
        (got - exact(&n)).abs() <= 1e-5 * exact(&n),
        "after a change: {got} vs {}",
        exact(&n)
    );
}
