//! The safetensors loader on arbitrary bytes, into a [4, 3, 2] net: no panic, and a refused
//! file leaves the network exactly as it was (all or nothing).
#![no_main]

use libfuzzer_sys::fuzz_target;
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
    let before = bits(&net);
    let origin = std::path::Path::new("fuzz.safetensors");
    match nn::io::load_safetensors_from_bytes(&mut net, data, origin) {
        Ok(()) => assert!(bits(&net).iter().all(|&b| f32::from_bits(b).is_finite())),
        Err(_) => assert_eq!(bits(&net), before),
    }
});
