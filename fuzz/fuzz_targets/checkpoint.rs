//! The checkpoint loader on arbitrary bytes, into a [4, 3, 2] net: no panic, and a refused
//! file leaves the weights and the random state exactly as they were.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nn::checkpoint::Checkpoint;
use nn::{Cost, Init, Network};

fuzz_target!(|data: &[u8]| {
    let mut net = Network::<f32>::sigmoid_mlp(&[4, 3, 2], Cost::CrossEntropy, Init::Large, 0)
        .expect("net");
    let before = (net.parameter_bits(), net.rng_state());
    let origin = std::path::Path::new("fuzz/checkpoint.safetensors");
    match Checkpoint::load_from_bytes(&mut net, data, origin) {
        Ok(_) => assert!(net.parameter_bits().iter().all(|&b| f64::from_bits(b).is_finite())),
        Err(_) => assert!((net.parameter_bits(), net.rng_state()) == before),
    }
});
