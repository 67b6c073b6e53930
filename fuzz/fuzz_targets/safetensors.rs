//! The safetensors loader on arbitrary bytes, into a [4, 3, 2] net: no panic, and a refused
//! file leaves the network exactly as it was (all or nothing).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nn::{Cost, Init, Network};

fuzz_target!(|data: &[u8]| {
    let mut net = Network::<f32>::sigmoid_mlp(&[4, 3, 2], Cost::CrossEntropy, Init::Large, 0)
        .expect("net");
    let before = net.parameter_bits();
    let origin = std::path::Path::new("fuzz.safetensors");
    match nn::io::load_safetensors_from_bytes(&mut net, data, origin) {
        Ok(()) => assert!(net.parameter_bits().iter().all(|&b| f64::from_bits(b).is_finite())),
        Err(_) => assert_eq!(net.parameter_bits(), before),
    }
});
