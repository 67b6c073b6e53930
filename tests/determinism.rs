//! Same seed, same thread count: bit-identical weights after an epoch, for every kind of
//! layer and every use of the random state (initialisation, shuffling, dropout).

mod mnist_slice;

use mnist_slice::training;

use nn::{Epoch, Regularization, Sgd};

fn one_epoch(spec: &str, seed: u64) -> Vec<u64> {
    let mut net =
        nn::spec::build::<f32>(spec, &mnist::IMAGE_DIMS, nn::Cost::LogLikelihood, seed).unwrap();
    let reg = Regularization::InGraph {
        lmbda: 0.1,
        num_batches: 50,
    };
    net.train_epoch(
        &training().take(500),
        &mut Sgd::new(0.1, reg),
        Epoch::shuffled(0, 10),
        |_| {},
    )
    .unwrap();
    net.parameter_bits()
}

#[test]
fn the_same_seed_gives_bit_identical_weights_after_an_epoch() {
    for spec in [
        "fc:30 softmax:10",
        "fc:100,relu,dropout:0.5 softmax:10,dropout:0.5",
        "conv:8x5x5,pool:2,relu fc:30,relu softmax:10",
    ] {
        let a = one_epoch(spec, 3);
        assert!(
            a == one_epoch(spec, 3),
            "{spec}: two runs with seed 3 differ"
        );
        assert!(
            a != one_epoch(spec, 4),
            "{spec}: seeds 3 and 4 gave the same weights"
        );
    }
}
