//! network3's --layers parser on arbitrary text: an error, or a network with layers and a
//! flat output; never a panic, an overflow or an allocation failure.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(net) = nn::spec::build::<f32>(text, 0) {
        assert!(!net.layers().is_empty());
        assert_eq!(net.output_dims().len(), 1);
    }
});
