//! The network2 JSON loader on arbitrary bytes: no panic, no allocation the input does not
//! pay for, and an accepted model is a consistent network with finite parameters.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let origin = std::path::Path::new("fuzz.json");
    if let Ok(net) = nn::io::load_network2_json_from_bytes::<f32>(data, origin) {
        let mut n_in: usize = net.input_dims().iter().product();
        for l in net.layers() {
            let fc = l.as_fully_connected().expect("network2 nets are fully connected");
            assert_eq!(fc.n_in(), n_in);
            n_in = fc.n_out();
        }
        for p in net.parameters() {
            let t = net.graph().value(p).expect("parameter");
            assert!(t.data().iter().all(|v| v.is_finite()));
        }
    }
});
