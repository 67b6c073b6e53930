//! The checkpoint loader on arbitrary bytes, into a [4, 3, 2] net: no panic, and a refused
//! file leaves the weights and the random state exactly as they were.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nn::checkpoint::Checkpoint;
use nn::{Cost, Init, Network};

fn bits(net: &Network<f32>) -> Vec<u32> {
    net.parameters()
        .into_iter()
        .flat_map(|p| net.graph().value(p).expect("parameter").data().to_vec())
        .map(f32::to_bits)
        .collect()
}

fuzz_target!(|data: &[u8]| {
    let mut net = Network::<f32>::sigmoid_mlp(&[4, 3, 2], Cost::CrossEntropy, Init::Large, 0)
        .expect("net");
    let before = (bits(&net), net.rng_state());
    let origin = std::path::Path::new("fuzz/checkpoint.safetensors");
    match Checkpoint::load_from_bytes(&mut net, data, origin) {
        Ok(_) => assert!(bits(&net).iter().all(|&b| f32::from_bits(b).is_finite())),
        Err(_) => assert!((bits(&net), net.rng_state()) == before),
    }
});
