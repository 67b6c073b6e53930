//! Chapter 3's exercises and chapter 5's monitor against hand computations: momentum's and
//! L1's updates against the book's formulas over the hand-derived gradients of
//! `nndl_nn::reference` (BP1-BP4), a tanh network's and an L1-regularised cost's gradients
//! against finite differences, and the layer speeds against `||dC/db^l||` from BP1-BP2.

mod common;

use nndl_nn::reference::{RefCost, SigmoidNet};
use nndl_nn::{
    Activation, Adam, Averaged, Cost, Epoch, InMemory, Init, Momentum, Network, Optimizer,
    Regularization, Sgd,
};
use rand::{Rng, SeedableRng};

const SIZES: [usize; 4] = [12, 7, 5, 4];

fn data(n: usize, seed: u64) -> InMemory {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    InMemory {
        inputs: (0..n * SIZES[0])
            .map(|_| rng.random_range(0.0..1.0))
            .collect(),
        labels: (0..n).map(|_| rng.random_range(0..SIZES[3])).collect(),
        sample_len: SIZES[0],
    }
}

fn assert_close(a: &SigmoidNet, b: &SigmoidNet, what: &str) {
    let pairs = a
        .weights
        .iter()
        .zip(&b.weights)
        .chain(a.biases.iter().zip(&b.biases));
    for (l, (x, y)) in pairs.enumerate() {
        for (k, (&x, &y)) in x.iter().zip(y).enumerate() {
            assert!(
                (x - y).abs() <= 1e-12 * y.abs().max(1.0),
                "{what}: tensor {l} [{k}]: {x} vs {y}"
            );
        }
    }
}

/// Trains `net` with `opt` one epoch in order, mini-batches of 5, over `d`.
fn one_epoch(net: &mut Network<f64>, opt: &mut dyn Optimizer<f64>, d: &InMemory) {
    net.train_epoch(d, opt, Epoch::in_order(0, 5), |_| {})
        .unwrap();
}

/// The book's gradient of the mean cost of the mini-batch `batch` (BP1-BP4).
fn book_gradient(r: &SigmoidNet, d: &InMemory, batch: &[usize]) -> (Vec<Vec<f64>>, Vec<Vec<f64>>) {
    let n_in = SIZES[0];
    let x: Vec<f64> = batch
        .iter()
        .flat_map(|&i| d.inputs[i * n_in..(i + 1) * n_in].to_vec())
        .collect();
    let y: Vec<usize> = batch.iter().map(|&i| d.labels[i]).collect();
    let (mut nw, mut nb) = r.backprop(&x, &y, RefCost::CrossEntropy);
    let m = batch.len() as f64;
    nw.iter_mut()
        .chain(nb.iter_mut())
        .flatten()
        .for_each(|g| *g /= m);
    (nw, nb)
}

fn mlp(act: Activation, seed: u64) -> Network<f64> {
    Network::mlp(&SIZES, act, Cost::CrossEntropy, Init::ScaledByInputs, seed).unwrap()
}

#[test]
fn momentum_is_v_mu_v_minus_eta_grad_then_w_plus_v() {
    let d = data(15, 1);
    let (eta, mu, lmbda, n) = (0.7, 0.6, 2.0, 15);
    for reg in [
        Regularization::None,
        Regularization::WeightDecay { lmbda, n },
    ] {
        let mut net = mlp(Activation::Sigmoid, 2);
        let mut r = SigmoidNet::of(&net).unwrap();
        let mut opt = Momentum::new(eta, mu, reg);
        one_epoch(&mut net, &mut opt, &d);
        // The book's momentum by hand: v <- mu v - eta (grad + (lmbda/n) w), w <- w + v,
        // biases without the weight term, velocities from zero.
        let c = if reg == Regularization::None {
            0.0
        } else {
            lmbda / n as f64
        };
        let mut vw: Vec<Vec<f64>> = r.weights.iter().map(|w| vec![0.0; w.len()]).collect();
        let mut vb: Vec<Vec<f64>> = r.biases.iter().map(|b| vec![0.0; b.len()]).collect();
        for batch in [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11, 12, 13, 14]] {
            let (gw, gb) = book_gradient(&r, &d, &batch);
            for l in 0..r.weights.len() {
                for k in 0..r.weights[l].len() {
                    let w = &mut r.weights[l][k];
                    vw[l][k] = mu * vw[l][k] - eta * (gw[l][k] + c * *w);
                    *w += vw[l][k];
                }
                for k in 0..r.biases[l].len() {
                    vb[l][k] = mu * vb[l][k] - eta * gb[l][k];
                    r.biases[l][k] += vb[l][k];
                }
            }
        }
        assert_close(
            &SigmoidNet::of(&net).unwrap(),
            &r,
            &format!("momentum, {reg:?}"),
        );
        // And mu = 0 is the book's plain SGD step.
        let mut a = mlp(Activation::Sigmoid, 2);
        let mut b = mlp(Activation::Sigmoid, 2);
        one_epoch(&mut a, &mut Momentum::new(eta, 0.0, reg), &d);
        let mut sgd = Sgd::new(eta, reg);
        sgd.fused = false;
        one_epoch(&mut b, &mut sgd, &d);
        assert_close(
            &SigmoidNet::of(&a).unwrap(),
            &SigmoidNet::of(&b).unwrap(),
            "mu = 0 against SGD",
        );
    }
}

#[test]
fn l1_steps_by_eta_lmbda_over_n_times_the_sign() {
    let d = data(15, 3);
    let (eta, lmbda, n) = (0.4, 3.0, 50);
    for fused in [true, false] {
        let mut net = mlp(Activation::Sigmoid, 4);
        let mut r = SigmoidNet::of(&net).unwrap();
        let mut sgd = Sgd::new(eta, Regularization::L1 { lmbda, n });
        sgd.fused = fused;
        one_epoch(&mut net, &mut sgd, &d);
        for batch in [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11, 12, 13, 14]] {
            let (gw, gb) = book_gradient(&r, &d, &batch);
            for (w, g) in r.weights.iter_mut().flatten().zip(gw.iter().flatten()) {
                let sign = if *w > 0.0 {
                    1.0
                } else if *w < 0.0 {
                    -1.0
                } else {
                    0.0
                };
                *w -= eta * lmbda / n as f64 * sign + eta * g;
            }
            for (b, g) in r.biases.iter_mut().flatten().zip(gb.iter().flatten()) {
                *b -= eta * g;
            }
        }
        assert_close(
            &SigmoidNet::of(&net).unwrap(),
            &r,
            &format!("L1, fused {fused}"),
        );
    }
}

#[test]
fn tanh_networks_and_the_l1_cost_pass_the_gradient_check() {
    let d = data(3, 5);
    // Weights well away from 0, where |w| is differentiable.
    let mut net = mlp(Activation::Tanh, 6);
    let mut r = rand_pcg::Pcg64::seed_from_u64(7);
    for p in net.weights() {
        let w = net.graph_mut().param_mut(p).unwrap();
        for v in w.data_mut() {
            *v = r.random_range(0.05..0.5) * if r.random_bool(0.5) { 1.0 } else { -1.0 };
        }
    }
    let reg = Regularization::L1 { lmbda: 0.9, n: 4 };
    let checked = common::gradcheck_cost(net, &d, &[0, 1, 2], reg);
    assert_eq!(checked, 12 * 7 + 7 + 7 * 5 + 5 + 5 * 4 + 4);
    let tanh = mlp(Activation::Tanh, 6);
    assert!(tanh.describe().contains("tanh"), "{}", tanh.describe());
}

#[test]
fn layer_speeds_are_the_bias_gradient_norms_of_bp1_bp2_and_change_nothing() {
    let d = data(20, 8);
    let mut net = mlp(Activation::Sigmoid, 9);
    let r = SigmoidNet::of(&net).unwrap();
    let idx: Vec<usize> = (0..20).collect();
    let (bits, rng) = (net.parameter_bits(), net.rng_state());
    let speeds = net.layer_speeds(&d, &idx).unwrap();
    let (_, gb) = book_gradient(&r, &d, &idx);
    let want: Vec<f64> = gb[..2]
        .iter()
        .map(|b| b.iter().map(|v| v * v).sum::<f64>().sqrt())
        .collect();
    assert_eq!(speeds.len(), 2, "one per hidden layer");
    for (s, w) in speeds.iter().zip(&want) {
        assert!((s - w).abs() <= 1e-12 * w, "{speeds:?} vs {want:?}");
    }
    assert!(net.parameter_bits() == bits && net.rng_state() == rng);
}

#[test]
fn adam_and_adamw_are_pytorchs_update() {
    let d = data(15, 11);
    let (eta, wd) = (0.01, 0.3);
    for decoupled in [false, true] {
        let mut net = mlp(Activation::Sigmoid, 12);
        let mut r = SigmoidNet::of(&net).unwrap();
        let mut opt = Adam::adamw(eta, wd);
        opt.decoupled = decoupled;
        one_epoch(&mut net, &mut opt, &d);
        // torch.optim.Adam / AdamW's step by hand, betas 0.9 and 0.999, eps 1e-8, weight
        // decay on the weights only.
        let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8);
        let layers = r.weights.len();
        let mut m: Vec<Vec<f64>> = (0..2 * layers).map(|_| Vec::new()).collect();
        let mut v = m.clone();
        for (t, batch) in [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11, 12, 13, 14]]
            .iter()
            .enumerate()
        {
            let t = t as i32 + 1;
            let (gw, gb) = book_gradient(&r, &d, batch);
            let tensors = r.weights.iter_mut().zip(gw).map(|(w, g)| (w, g, wd));
            let tensors = tensors.chain(r.biases.iter_mut().zip(gb).map(|(b, g)| (b, g, 0.0)));
            for (k, (w, g, wd)) in tensors.enumerate() {
                m[k].resize(w.len(), 0.0);
                v[k].resize(w.len(), 0.0);
                let each = w
                    .iter_mut()
                    .zip(&g)
                    .zip(m[k].iter_mut())
                    .zip(v[k].iter_mut());
                for (((w, &g), m), v) in each {
                    let grad = if decoupled { g } else { g + wd * *w };
                    *m = b1 * *m + (1.0 - b1) * grad;
                    *v = b2 * *v + (1.0 - b2) * grad * grad;
                    if decoupled {
                        *w *= 1.0 - eta * wd;
                    }
                    let (mhat, vhat) = (*m / (1.0 - b1.powi(t)), *v / (1.0 - b2.powi(t)));
                    *w -= eta * mhat / (vhat.sqrt() + eps);
                }
            }
        }
        assert_close(
            &SigmoidNet::of(&net).unwrap(),
            &r,
            &format!("Adam, decoupled {decoupled}"),
        );
    }
}

/// A new network of `net`'s shape holding its weights.
fn copy(net: &Network<f64>, seed: u64) -> Network<f64> {
    let mut out = mlp(Activation::Sigmoid, seed);
    for (p, q) in net.parameters().into_iter().zip(out.parameters()) {
        *out.graph_mut().param_mut(q).unwrap() = net.graph().value(p).unwrap().clone();
    }
    out
}

#[test]
fn adams_state_carries_a_run_across_a_restart() {
    let d = data(15, 13);
    let mut a = mlp(Activation::Sigmoid, 14);
    let mut opt = Adam::adamw(0.01, 0.1);
    one_epoch(&mut a, &mut opt, &d);
    let (mut b, mut c) = (copy(&a, 1), copy(&a, 2));
    let mut restarted = Adam::adamw(0.01, 0.1);
    restarted
        .set_state(opt.state(), b.graph(), &b.parameters())
        .unwrap();
    one_epoch(&mut a, &mut opt, &d);
    one_epoch(&mut b, &mut restarted, &d);
    let a = SigmoidNet::of(&a).unwrap();
    assert_close(&SigmoidNet::of(&b).unwrap(), &a, "restarted Adam");
    // Without the state (fresh moments, step count 0) the second epoch differs.
    one_epoch(&mut c, &mut Adam::adamw(0.01, 0.1), &d);
    assert!(SigmoidNet::of(&c).unwrap() != a);
}

/// A net with a batch norm (frozen running statistics among its parameters), for the average.
fn bn_net(seed: u64) -> Network<f64> {
    let mut net = Network::new(&[SIZES[0]], Cost::LogLikelihood, seed);
    net.add_fc(6, Activation::Identity, Init::He, 0.0).unwrap();
    net.add_batch_norm(Activation::Relu).unwrap();
    net.add_fc(SIZES[3], Activation::Identity, Init::ScaledByInputs, 0.0)
        .unwrap();
    net
}

/// Every parameter's values (the frozen ones too), in graph order.
fn all_values(net: &Network<f64>) -> Vec<Vec<f64>> {
    let g = net.graph();
    g.parameters()
        .map(|p| g.value(p).unwrap().data().to_vec())
        .collect()
}

#[test]
fn averaged_evaluates_the_moving_average_of_every_parameter_and_trains_as_its_inner() {
    let d = data(15, 21);
    let decay = 0.2; // below (1+t)/(10+t) from the third step on: both branches of the min
    let mut net = bn_net(5);
    let mut plain = bn_net(5);
    assert_eq!(all_values(&net), all_values(&plain));
    let mut opt = Averaged::new(
        Box::new(Momentum::new(0.3, 0.5, Regularization::None)),
        decay,
    );
    let mut alone = Momentum::new(0.3, 0.5, Regularization::None);
    // The average by hand, from the inner optimiser's weights after each of 6 steps.
    let mut want: Option<Vec<Vec<f64>>> = None;
    for epoch in 0..2 {
        net.train_epoch(&d, &mut opt, Epoch::in_order(epoch, 5), |_| {})
            .unwrap();
        for batch in 0..3 {
            let one = InMemory {
                inputs: d.inputs[batch * 5 * SIZES[0]..(batch + 1) * 5 * SIZES[0]].to_vec(),
                labels: d.labels[batch * 5..(batch + 1) * 5].to_vec(),
                sample_len: SIZES[0],
            };
            plain
                .train_epoch(&one, &mut alone, Epoch::in_order(0, 5), |_| {})
                .unwrap();
            let t = (epoch * 3 + batch) as f64;
            let k = decay.min((1.0 + t) / (10.0 + t));
            let w = all_values(&plain);
            want = Some(match want {
                None => w,
                Some(a) => a
                    .iter()
                    .zip(&w)
                    .map(|(a, w)| {
                        a.iter()
                            .zip(w)
                            .map(|(a, w)| k * a + (1.0 - k) * w)
                            .collect()
                    })
                    .collect(),
            });
        }
    }
    let want = want.unwrap();
    // Training is the inner optimiser's alone.
    let trained = all_values(&net);
    assert_eq!(trained, all_values(&plain));
    assert!(opt.swap_averaged(net.graph_mut()).unwrap());
    let got = all_values(&net);
    assert_eq!(
        got.len(),
        8,
        "2 fc weights and biases; gamma, beta and the running statistics"
    );
    for (k, (g, w)) in got.iter().zip(&want).enumerate() {
        for (i, (g, w)) in g.iter().zip(w).enumerate() {
            assert!(
                (g - w).abs() <= 1e-12 * w.abs().max(1.0),
                "parameter {k} [{i}]: {g} vs {w}"
            );
        }
    }
    assert!(got != trained, "the average differs from the last weights");
    // The running statistics (frozen) are averaged too.
    let frozen: Vec<usize> = (0..8)
        .filter(|&k| {
            net.graph()
                .is_frozen(net.graph().parameters().nth(k).unwrap())
        })
        .collect();
    assert_eq!(frozen.len(), 2);
    assert!(frozen.iter().all(|&k| got[k] != trained[k]));
    // Training with the average swapped in is refused; swapping back restores the weights.
    assert!(net
        .train_epoch(&d, &mut opt, Epoch::in_order(2, 5), |_| {})
        .is_err());
    assert!(opt.swap_averaged(net.graph_mut()).unwrap());
    assert_eq!(all_values(&net), trained);
}

#[test]
fn averaged_state_carries_the_average_across_a_restart() {
    let d = data(15, 23);
    let make = || Averaged::new(Box::new(Adam::new(0.01)), 0.9);
    let mut a = bn_net(7);
    let mut opt = make();
    a.train_epoch(&d, &mut opt, Epoch::in_order(0, 5), |_| {})
        .unwrap();
    let mut b = bn_net(8);
    for (p, q) in a
        .graph()
        .parameters()
        .zip(b.graph().parameters().collect::<Vec<_>>())
    {
        *b.graph_mut().param_mut(q).unwrap() = a.graph().value(p).unwrap().clone();
    }
    let mut c = bn_net(9);
    for (p, q) in a
        .graph()
        .parameters()
        .zip(c.graph().parameters().collect::<Vec<_>>())
    {
        *c.graph_mut().param_mut(q).unwrap() = a.graph().value(p).unwrap().clone();
    }
    let mut restarted = make();
    restarted
        .set_state(opt.state(), b.graph(), &b.parameters())
        .unwrap();
    let mut fresh = make();
    for (net, o) in [
        (&mut a, &mut opt),
        (&mut b, &mut restarted),
        (&mut c, &mut fresh),
    ] {
        net.train_epoch(&d, o, Epoch::in_order(1, 5), |_| {})
            .unwrap();
        assert!(o.swap_averaged(net.graph_mut()).unwrap());
    }
    assert_eq!(all_values(&b), all_values(&a), "restarted from the state");
    // Without the state the average (and Adam's moments) start over.
    assert!(all_values(&c) != all_values(&a));
}

#[test]
fn averaged_refuses_a_bad_decay_and_swaps_nothing_before_a_step() {
    let d = data(15, 25);
    let mut net = bn_net(3);
    let before = all_values(&net);
    let mut opt = Averaged::new(Box::new(Adam::new(0.01)), 1.0);
    assert!(!opt.swap_averaged(net.graph_mut()).unwrap());
    assert_eq!(all_values(&net), before);
    let err = net
        .train_epoch(&d, &mut opt, Epoch::in_order(0, 5), |_| {})
        .unwrap_err();
    assert!(err.to_string().contains("decay"), "{err}");
}
