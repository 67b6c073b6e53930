//! Divergence stops training with an error naming the epoch and mini-batch and suggesting a
//! smaller learning rate, whichever way it shows: a NaN cost, a parameter gone infinite, or
//! every gradient vanished in saturated units.

mod mnist_slice;

use mnist_slice::training;

use nn::{Cost, Epoch, InMemory, Init, Network, NnError, Regularization, Sgd};

fn epoch<S: nn::Samples>(
    net: &mut Network<f32>,
    data: &S,
    eta: f64,
    reg: Regularization,
) -> nn::Result<nn::EpochStats> {
    net.train_epoch(
        data,
        &mut Sgd::new(eta, reg),
        Epoch::shuffled(0, 10),
        |_| {},
    )
}

#[test]
fn network_py_at_eta_1e6_saturates_and_stops_at_the_second_mini_batch() {
    // The first step moves weights by ~1e5: every sigmoid saturates, the cost sticks at 0.5
    // and every gradient is exactly zero. No NaN ever appears (sigmoids saturate rather than
    // overflow); without the zero-gradient test this run went on at 10% accuracy.
    let mut net =
        Network::<f32>::sigmoid_mlp(&[784, 30, 10], Cost::Quadratic, Init::Large, 0).unwrap();
    let e = epoch(&mut net, training(), 1e6, Regularization::None).unwrap_err();
    match &e {
        NnError::Diverged {
            epoch: 0,
            batch: 1,
            eta,
            what,
        } => {
            assert_eq!(*eta, 1e6);
            assert!(what.contains("every gradient is exactly zero"), "{what}");
        }
        other => panic!("{other}"),
    }
    let msg = e.to_string();
    assert!(
        msg.contains("epoch 0, mini-batch 1") && msg.contains("try a smaller learning rate"),
        "{msg}"
    );
    assert!(!msg.contains('\n'), "{msg}");
}

#[test]
fn the_books_learning_rate_trains_without_tripping_the_checks() {
    let mut net =
        Network::<f32>::sigmoid_mlp(&[784, 30, 10], Cost::Quadratic, Init::Large, 0).unwrap();
    for _ in 0..2 {
        epoch(&mut net, training(), 3.0, Regularization::None).unwrap();
    }
    let mut net = nn::spec::build::<f32>(
        "fc:100,relu softmax:10",
        &mnist::IMAGE_DIMS,
        nn::Cost::LogLikelihood,
        0,
    )
    .unwrap();
    epoch(
        &mut net,
        training(),
        0.1,
        Regularization::InGraph {
            lmbda: 0.1,
            num_batches: 100,
        },
    )
    .unwrap();
}

#[test]
fn weight_decay_at_a_huge_rate_blows_up_and_is_caught() {
    // network2's decay factor 1 - eta*lmbda/n is -4999 here: weights grow 5000-fold a step.
    let mut net =
        Network::<f32>::sigmoid_mlp(&[784, 30, 10], Cost::CrossEntropy, Init::ScaledByInputs, 0)
            .unwrap();
    let e = epoch(
        &mut net,
        training(),
        1e6,
        Regularization::WeightDecay {
            lmbda: 5.0,
            n: 1000,
        },
    )
    .unwrap_err();
    assert!(
        matches!(
            e,
            NnError::NonFinite { epoch: 0, .. } | NnError::Diverged { epoch: 0, .. }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("try a smaller learning rate"), "{e}");
}

#[test]
fn an_infinite_weight_that_leaves_the_cost_finite_is_found_by_the_parameter_scan() {
    // Positive inputs: an infinite weight drives its unit's sigmoid to exactly 1, so the cost
    // stays finite and that unit's gradient is zero; only a look at the parameters finds it.
    let data = InMemory {
        inputs: (0..40 * 4).map(|i| 0.1 + (i % 7) as f64 / 10.0).collect(),
        labels: (0..40).map(|i| i % 2).collect(),
        sample_len: 4,
    };
    let mut net =
        Network::<f32>::sigmoid_mlp(&[4, 3, 2], Cost::CrossEntropy, Init::Large, 0).unwrap();
    let w = net.weights()[0];
    net.graph_mut().param_mut(w).unwrap().data_mut()[0] = f32::INFINITY;
    let e = epoch(&mut net, &data, 0.5, Regularization::None).unwrap_err();
    match &e {
        // Four mini-batches: the scan after the last one finds it.
        NnError::Diverged {
            epoch: 0,
            batch: 3,
            what,
            ..
        } => {
            assert!(what.contains("parameter l0.w holds inf"), "{what}")
        }
        other => panic!("{other}"),
    }
}

#[test]
fn a_learning_rate_the_precision_cannot_hold_is_refused() {
    let mut net =
        Network::<f32>::sigmoid_mlp(&[784, 30, 10], Cost::Quadratic, Init::Large, 0).unwrap();
    for eta in [1e39, f64::INFINITY, f64::NAN, 0.0, -1.0] {
        let e = epoch(&mut net, training(), eta, Regularization::None).unwrap_err();
        assert!(matches!(e, NnError::Config(_)), "{eta}: {e}");
    }
}
