//! Autodiff through the graph equals the book's hand-derived backprop (BP1-BP4) to 1e-10 in
//! f64: both costs, with and without L2 (network2's weight decay and network3's in-graph
//! term), on a [784,30,10] net and a 4-layer net.

use nndl_nn::reference::{RefCost, SigmoidNet};
use nndl_nn::{Cost, InMemory, Init, Mode, Network, Optimizer, Regularization, Sgd};
use rand::{Rng, SeedableRng};

fn data(sizes: &[usize], n: usize, seed: u64) -> InMemory {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(seed);
    InMemory {
        inputs: (0..n * sizes[0])
            .map(|_| rng.random_range(0.0..1.0))
            .collect(),
        labels: (0..n)
            .map(|_| rng.random_range(0..*sizes.last().unwrap()))
            .collect(),
        sample_len: sizes[0],
    }
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-10 * b.abs().max(1.0)
}

fn check_gradients(sizes: &[usize], cost: Cost, in_graph_l2: Option<(f64, usize)>) {
    let ref_cost = if cost == Cost::Quadratic {
        RefCost::Quadratic
    } else {
        RefCost::CrossEntropy
    };
    // ScaledByInputs keeps the sigmoids out of saturation so the gradients are not all ~0.
    let mut net = Network::<f64>::sigmoid_mlp(sizes, cost, Init::ScaledByInputs, 3).unwrap();
    let reference = SigmoidNet::of(&net).unwrap();
    let d = data(sizes, 7, 4);
    let idx: Vec<usize> = (0..7).collect();
    let reg = match in_graph_l2 {
        Some((lmbda, num_batches)) => Regularization::InGraph { lmbda, num_batches },
        None => Regularization::None,
    };
    let loss = net.batch_loss(&d, &idx, Mode::Train).unwrap();
    let weights = net.weights();
    let loss = reg.add_to(net.graph_mut(), &weights, loss).unwrap();
    net.graph_mut().backward(loss).unwrap();
    let (nw, nb) = reference.backprop(&d.inputs, &d.labels, ref_cost);
    let m = idx.len() as f64;
    let mut compared = 0;
    for (l, layer) in net.layers().iter().enumerate() {
        let fc = layer.as_fully_connected().unwrap();
        let gw = net.graph().grad(fc.w).unwrap().data();
        let gb = net.graph().grad(fc.b).unwrap().data();
        for (k, (&a, &r)) in gw.iter().zip(&nw[l]).enumerate() {
            // network3's L2 adds lmbda * w / num_batches to the weights' gradient.
            let extra = in_graph_l2.map_or(0.0, |(lmbda, nb)| {
                lmbda * reference.weights[l][k] / nb as f64
            });
            let want = r / m + extra;
            assert!(
                close(a, want),
                "{sizes:?} {cost:?} layer {l} w[{k}]: autodiff {a} vs reference {want}"
            );
            compared += 1;
        }
        for (k, (&a, &r)) in gb.iter().zip(&nb[l]).enumerate() {
            assert!(
                close(a, r / m),
                "{sizes:?} {cost:?} layer {l} b[{k}]: {a} vs {}",
                r / m
            );
            compared += 1;
        }
        // The gradients must not be trivially zero, or the comparison proves nothing.
        assert!(
            gw.iter().any(|v| v.abs() > 1e-6),
            "layer {l} gradient is all ~0"
        );
    }
    assert!(compared > 0);
}

#[test]
fn autodiff_equals_backprop_quadratic_784_30_10() {
    check_gradients(&[784, 30, 10], Cost::Quadratic, None);
}

#[test]
fn autodiff_equals_backprop_cross_entropy_784_30_10() {
    check_gradients(&[784, 30, 10], Cost::CrossEntropy, None);
}

#[test]
fn autodiff_equals_backprop_four_layers_both_costs() {
    check_gradients(&[20, 15, 12, 10], Cost::Quadratic, None);
    check_gradients(&[20, 15, 12, 10], Cost::CrossEntropy, None);
}

#[test]
fn autodiff_equals_backprop_with_in_graph_l2() {
    check_gradients(&[784, 30, 10], Cost::CrossEntropy, Some((5.0, 5000)));
    check_gradients(&[20, 15, 12, 10], Cost::Quadratic, Some((0.1, 7)));
}

#[test]
fn sgd_step_with_weight_decay_equals_network2_update() {
    for (sizes, cost, rc) in [
        (
            &[784usize, 30, 10][..],
            Cost::CrossEntropy,
            RefCost::CrossEntropy,
        ),
        (&[20, 15, 12, 10][..], Cost::Quadratic, RefCost::Quadratic),
    ] {
        for lmbda in [0.0, 5.0] {
            let mut net =
                Network::<f64>::sigmoid_mlp(sizes, cost, Init::ScaledByInputs, 11).unwrap();
            let mut reference = SigmoidNet::of(&net).unwrap();
            let d = data(sizes, 10, 12);
            let (eta, n) = (0.5, 50_000);
            let mut sgd = Sgd::new(eta, Regularization::WeightDecay { lmbda, n });
            let (params, weights) = (net.parameters(), net.weights());
            // Two consecutive steps on two mini-batches of 5.
            for batch in [[0usize, 1, 2, 3, 4], [5, 6, 7, 8, 9]] {
                net.graph_mut().reset();
                let loss = net.batch_loss(&d, &batch, Mode::Train).unwrap();
                sgd.step(net.graph_mut(), loss, &params, &weights).unwrap();
                let x: Vec<f64> = batch
                    .iter()
                    .flat_map(|&i| d.inputs[i * sizes[0]..(i + 1) * sizes[0]].to_vec())
                    .collect();
                let y: Vec<usize> = batch.iter().map(|&i| d.labels[i]).collect();
                reference.update_mini_batch(&x, &y, eta, lmbda, n, rc);
            }
            let after = SigmoidNet::of(&net).unwrap();
            for (l, (a, r)) in after.weights.iter().zip(&reference.weights).enumerate() {
                for (k, (&a, &r)) in a.iter().zip(r).enumerate() {
                    assert!(close(a, r), "lmbda {lmbda} layer {l} w[{k}]: {a} vs {r}");
                }
            }
            for (a, r) in after.biases.iter().zip(&reference.biases) {
                for (&a, &r) in a.iter().zip(r) {
                    assert!(close(a, r));
                }
            }
        }
    }
}
