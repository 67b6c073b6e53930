//! SGD's fused update (linear layers' weights updated where the backward completes their
//! gradient) against the stored route (backward, then the update), for each of the book's
//! ways of regularising and for mini-batches over the fused kernel's size: the same weights
//! up to float rounding, and the fused route really taken where it applies.

use nndl_nn::{Activation, Cost, Epoch, InMemory, Init, Network, Regularization, Sgd};

fn data(n: usize, seed: u64) -> InMemory {
    let mut x = seed;
    let mut next = || {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((x >> 33) as f64 / (1u64 << 31) as f64) - 0.5
    };
    let inputs: Vec<f64> = (0..n * 20).map(|_| next()).collect();
    let labels = (0..n).map(|i| i % 4).collect();
    InMemory {
        inputs,
        labels,
        sample_len: 20,
    }
}

/// A 20-16-4 sigmoid net, the same each time.
fn net() -> Network<f32> {
    Network::<f32>::mlp(
        &[20, 16, 4],
        Activation::Sigmoid,
        Cost::CrossEntropy,
        Init::ScaledByInputs,
        7,
    )
    .unwrap()
}

fn trained(reg: Regularization, fused: bool, mini_batch: usize) -> Vec<f32> {
    let mut net = net();
    let mut sgd = Sgd::new(0.5, reg);
    sgd.fused = fused;
    let d = data(60, 3);
    for e in 0..3 {
        net.train_epoch(&d, &mut sgd, Epoch::shuffled(e, mini_batch), |_| {})
            .unwrap();
    }
    let g = net.graph();
    net.parameters()
        .into_iter()
        .flat_map(|p| g.value(p).unwrap().data().to_vec())
        .collect()
}

#[test]
fn the_fused_update_gives_the_stored_route_s_weights() {
    for reg in [
        Regularization::None,
        Regularization::WeightDecay { lmbda: 5.0, n: 60 },
        Regularization::InGraph {
            lmbda: 0.1,
            num_batches: 6,
        },
        Regularization::L1 { lmbda: 0.5, n: 60 },
    ] {
        for mini_batch in [1, 10, 60] {
            let (a, b) = (
                trained(reg, true, mini_batch),
                trained(reg, false, mini_batch),
            );
            let worst = a
                .iter()
                .zip(&b)
                .map(|(x, y)| (x - y).abs() / (1.0 + x.abs()))
                .fold(0.0f32, f32::max);
            assert!(worst <= 1e-5, "{reg:?}, mini-batch {mini_batch}: {worst}");
            assert_ne!(
                a,
                trained(Regularization::None, true, 2),
                "the runs differ at all"
            );
        }
    }
}

#[test]
fn small_mini_batches_take_the_fused_route_and_large_ones_the_stored_one() {
    let mut net = net();
    let d = data(64, 5);
    let weights = net.weights();
    for (mini_batch, handed) in [(10, true), (64, false)] {
        let idx: Vec<usize> = (0..mini_batch).collect();
        net.graph_mut().reset();
        let loss = net.batch_loss(&d, &idx, nndl_nn::Mode::Train).unwrap();
        let mut sgd = Sgd::<f32>::new(0.5, Regularization::None);
        use nndl_nn::Optimizer;
        let params = net.parameters();
        sgd.step(net.graph_mut(), loss, &params, &weights).unwrap();
        for &w in &weights {
            assert_eq!(
                net.graph().handed_over(w).is_some(),
                handed,
                "mini-batch {mini_batch}"
            );
        }
    }
}
