//! Same seed, same thread count: bit-identical weights after an epoch, for every kind of
//! layer and every use of the random state (initialisation, shuffling, dropout).

use nn::{Epoch, Network, Regularization, Sgd};
use std::sync::OnceLock;

fn training() -> &'static mnist::Dataset {
    static DATA: OnceLock<mnist::Dataset> = OnceLock::new();
    DATA.get_or_init(|| {
        let dir = mnist::find_data_dir(None).expect("data/mnist");
        mnist::load_data(dir).expect("MNIST").training.take(500)
    })
}

fn bits(net: &Network<f32>) -> Vec<Vec<u32>> {
    net.parameters()
        .into_iter()
        .map(|p| {
            net.graph()
                .value(p)
                .unwrap()
                .data()
                .iter()
                .map(|v| v.to_bits())
                .collect()
        })
        .collect()
}

fn one_epoch(spec: &str, seed: u64) -> Vec<Vec<u32>> {
    let mut net = nn::spec::build::<f32>(spec, seed).unwrap();
    let reg = Regularization::InGraph {
        lmbda: 0.1,
        num_batches: 50,
    };
    net.train_epoch(
        training(),
        &mut Sgd::new(0.1, reg),
        Epoch {
            index: 0,
            mini_batch: 10,
            shuffle: true,
        },
        |_| {},
    )
    .unwrap();
    bits(&net)
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
