//! network3's --layers parser on arbitrary text: an error, or a network with layers and a
//! flat output and every layer with values to output; never a panic, an overflow or an
//! allocation failure.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match nn::spec::build::<f32>(text, &mnist::IMAGE_DIMS, nn::Cost::LogLikelihood, 0) {
        Ok(net) => {
            assert!(!net.layers().is_empty());
            assert_eq!(net.output_dims().len(), 1);
            // Every layer has values to output (pad:2^63 once built a conv with none).
            let mut dims = net.input_dims().to_vec();
            for l in net.layers() {
                dims = l.output_dims(&dims).expect("a built net's layers fit");
                assert!(!dims.contains(&0), "{text:?}: {} outputs {dims:?}", l.describe());
            }
            // The memory plan of any built net is computed without a panic.
            let _ = nn::memory::Plan::of(&net, usize::MAX).map(|p| p.total());
        }
        // Errors name what they are about and are one line.
        Err(e) => {
            let e = e.to_string();
            assert!(e.starts_with("--layers") && !e.contains('\n'), "{e}");
        }
    }
});
