//! The CI-sized version of the cargo-fuzz targets in `fuzz/`: every loader of outside input
//! (network2 JSON, safetensors, checkpoints, `--layers`) on arbitrary bytes and on mutated
//! valid inputs never panics, never allocates what the input does not hold, and either
//! accepts something consistent or refuses without touching the network. (The IDX reader's
//! version is `mnist/src/fuzz_tests.rs`.)
//!
//! `cargo test --release --test fuzz_loaders -- --ignored` writes these seeds to
//! `fuzz/seeds/<target>/` for the fuzzer.

use nn::checkpoint::Checkpoint;
use nn::{Cost, Init, Network};
use proptest::prelude::*;
use std::path::{Path, PathBuf};

fn small() -> Network<f32> {
    Network::sigmoid_mlp(&[4, 3, 2], Cost::CrossEntropy, Init::Large, 0).unwrap()
}

fn scratch(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nndl-fuzz-seeds-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Valid inputs for each target, made by the savers themselves.
fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = scratch(target);
    let file = dir.join("seed");
    let out = match target {
        "network2_json" => {
            nn::io::save_network2_json(&small(), &file).unwrap();
            let quadratic =
                Network::<f32>::sigmoid_mlp(&[2, 2], Cost::Quadratic, Init::Large, 1).unwrap();
            let mut v = vec![std::fs::read(&file).unwrap()];
            nn::io::save_network2_json(&quadratic, &file).unwrap();
            v.push(std::fs::read(&file).unwrap());
            v
        }
        "safetensors" => {
            nn::io::save_safetensors(&small(), &file).unwrap();
            vec![std::fs::read(&file).unwrap()]
        }
        "checkpoint" => {
            Checkpoint {
                epochs_done: 2,
                state: serde_json::json!({"program": [0.9, 1], "wall_seconds": 1.5}),
            }
            .save(&small(), &dir)
            .unwrap();
            vec![std::fs::read(nn::checkpoint::path(&dir)).unwrap()]
        }
        "layers" => [
            "fc:100 softmax:10",
            "conv:20x5x5,pool:2 fc:100 softmax:10",
            "conv:20x5x5,pool:2,relu conv:40x5x5,pool:2,relu fc:100,relu softmax:10",
            "conv:2x3x3,pool:1,tanh fc:2880x30,linear,dropout:0.5 softmax:30x10,dropout:0.2",
            "fc:784x30,sigmoid softmax:10",
            "conv2d:8x3x3,pad:1,stride:2,nobias,relu,init:he bn,relu pool:2 flatten dropout:0.25 fc:32,init:inputs bn,tanh softmax:10,init:zeros",
            "conv2d:4x5x5,pad:4,stride:3 conv:2x3x3,pool:1,ties softmax:10,dropout:0.1",
        ]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect(),
        "idx" => {
            let images = file.with_extension("images");
            let labels = file.with_extension("labels");
            let pixels: Vec<u8> = (0..3 * 4 * 5).map(|i| (i * 37 % 256) as u8).collect();
            let mut v = Vec::new();
            for format in [mnist::idx::Format::Raw, mnist::idx::Format::Gzip] {
                mnist::idx::write_images(&images, &pixels, 3, 4, 5, format).unwrap();
                mnist::idx::write_labels(&labels, &[3, 1, 4], format).unwrap();
                v.push(std::fs::read(&images).unwrap());
                v.push(std::fs::read(&labels).unwrap());
            }
            v
        }
        other => panic!("no target {other}"),
    };
    let _ = std::fs::remove_dir_all(&dir);
    out
}

/// Writes the seeds of every target to `fuzz/seeds/<target>/`.
#[test]
#[ignore = "writes fuzz/seeds; run by hand before fuzzing"]
fn write_fuzz_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds");
    for target in [
        "idx",
        "network2_json",
        "safetensors",
        "checkpoint",
        "layers",
    ] {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (i, s) in seeds(target).iter().enumerate() {
            std::fs::write(dir.join(format!("seed{i}")), s).unwrap();
        }
    }
}

/// A valid input of `target` with a few bytes overwritten, then maybe cut short or extended.
fn mutated(target: &'static str) -> impl Strategy<Value = Vec<u8>> {
    let seeds = seeds(target);
    (
        0..seeds.len(),
        proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        prop_oneof![Just(None), any::<prop::sample::Index>().prop_map(Some)],
        proptest::collection::vec(any::<u8>(), 0..8),
    )
        .prop_map(move |(k, flips, cut, tail)| {
            let mut b = seeds[k].clone();
            for (i, x) in flips {
                let i = i.index(b.len());
                b[i] = x;
            }
            if let Some(c) = cut {
                b.truncate(c.index(b.len() + 1));
            }
            b.extend(tail);
            b
        })
}

/// Arbitrary bytes, or a mutated valid input.
fn input(target: &'static str) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        mutated(target),
        mutated(target),
    ]
}

/// Descriptions built from the grammar's own words, sizes included large ones.
fn description() -> impl Strategy<Value = String> {
    let size = prop_oneof![
        (1usize..50).prop_map(|n| n.to_string()),
        Just("0".to_string()),
        any::<u64>().prop_map(|n| n.to_string()),
        Just("18446744073709551615".to_string()),
        (1usize..8, 1usize..8, 1usize..8).prop_map(|(a, b, c)| format!("{a}x{b}x{c}")),
        (1usize..3000, 1usize..200).prop_map(|(a, b)| format!("{a}x{b}")),
        "[0-9x]{0,12}",
    ];
    let hostile = prop_oneof![
        Just("0".to_string()),
        Just("4611686018427387904".to_string()),
        Just("9223372036854775808".to_string()),
        Just("18446744073709551616".to_string()),
        (0usize..8).prop_map(|n| n.to_string()),
    ];
    let option = prop_oneof![
        Just("relu".to_string()),
        Just("tanh".to_string()),
        Just("ties".to_string()),
        Just("nobias".to_string()),
        (0usize..30).prop_map(|k| format!("pool:{k}")),
        Just("pool:4294967296".to_string()),
        (0.0f64..1.2).prop_map(|p| format!("dropout:{p}")),
        hostile.clone().prop_map(|p| format!("pad:{p}")),
        hostile.prop_map(|s| format!("stride:{s}")),
        Just("init:he".to_string()),
        "[a-z:0-9.]{0,6}",
    ];
    let layer = (
        prop_oneof![
            Just("fc"),
            Just("conv"),
            Just("conv2d"),
            Just("softmax"),
            Just("pool"),
            Just("dropout"),
            Just("bn"),
            Just("flatten"),
            Just("")
        ],
        size,
        proptest::collection::vec(option, 0..3),
    )
        .prop_map(|(k, s, o)| {
            // bn and flatten take no size: usually written bare.
            let mut t = if ["bn", "flatten"].contains(&k) && s.len() % 4 != 0 {
                k.to_string()
            } else {
                format!("{k}:{s}")
            };
            for o in o {
                t.push(',');
                t.push_str(&o);
            }
            t
        });
    proptest::collection::vec(layer, 0..5).prop_map(|l| l.join(" "))
}

/// The network2 JSON target's property: refused, or a consistent net with finite parameters.
fn check_network2_json(bytes: &[u8]) {
    if let Ok(net) = nn::io::load_network2_json_from_bytes::<f32>(bytes, Path::new("p.json")) {
        let mut n_in: usize = net.input_dims().iter().product();
        for l in net.layers() {
            let fc = l.as_fully_connected().unwrap();
            assert_eq!(fc.n_in(), n_in);
            n_in = fc.n_out();
        }
        assert!(net
            .parameter_bits()
            .iter()
            .all(|&b| f64::from_bits(b).is_finite()));
    }
}

/// The safetensors target's: loaded finite values, or an error naming the file and the
/// network untouched.
fn check_safetensors(bytes: &[u8]) {
    let mut net = small();
    let before = net.parameter_bits();
    match nn::io::load_safetensors_from_bytes(&mut net, bytes, Path::new("p.safetensors")) {
        Ok(()) => assert!(net
            .parameter_bits()
            .iter()
            .all(|&b| f64::from_bits(b).is_finite())),
        Err(e) => {
            assert!(e.to_string().contains("p.safetensors"), "{e}");
            assert_eq!(net.parameter_bits(), before);
        }
    }
}

/// The checkpoint target's: as safetensors, the random state included.
fn check_checkpoint(bytes: &[u8]) {
    let mut net = small();
    let before = (net.parameter_bits(), net.rng_state());
    match Checkpoint::load_from_bytes(&mut net, bytes, Path::new("p/checkpoint.safetensors")) {
        Ok(_) => assert!(net
            .parameter_bits()
            .iter()
            .all(|&b| f64::from_bits(b).is_finite())),
        Err(e) => {
            assert!(e.to_string().contains("p/checkpoint.safetensors"), "{e}");
            assert!((net.parameter_bits(), net.rng_state()) == before);
        }
    }
}

/// The layers target's: a net with a flat output, or an error that says it is about --layers.
fn check_layers(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    match nn::spec::build::<f32>(text, &mnist::IMAGE_DIMS, nn::Cost::LogLikelihood, 0) {
        Ok(net) => {
            assert_eq!(net.output_dims().len(), 1);
            // Every layer has values to output.
            let mut dims = net.input_dims().to_vec();
            for l in net.layers() {
                dims = l.output_dims(&dims).unwrap();
                assert!(
                    !dims.contains(&0),
                    "{text:?}: {} outputs {dims:?}",
                    l.describe()
                );
            }
        }
        Err(e) => assert!(e.to_string().starts_with("--layers"), "{text:?}: {e}"),
    }
}

/// The IDX target's: images and labels consistent when accepted.
fn check_idx(bytes: &[u8]) {
    let dir = scratch("idx-check");
    let f = dir.join("f");
    std::fs::write(&f, bytes).unwrap();
    if let Ok(im) = mnist::idx::read_images(&f) {
        assert_eq!(im.pixels.len(), im.count * im.rows * im.cols);
    }
    if let Ok(labels) = mnist::idx::read_labels(&f) {
        assert!(labels.iter().all(|&l| l <= 9));
    }
}

/// Every input the fuzzer found a crash with (`fuzz/regressions/<target>/`), run through its
/// target's property.
#[test]
fn the_inputs_that_crashed_the_fuzzers_are_handled() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    type Check = fn(&[u8]);
    let checks: [(&str, Check); 5] = [
        ("idx", check_idx),
        ("network2_json", check_network2_json),
        ("safetensors", check_safetensors),
        ("checkpoint", check_checkpoint),
        ("layers", check_layers),
    ];
    let mut ran = 0;
    for (target, check) in checks {
        let Ok(dir) = std::fs::read_dir(root.join(target)) else {
            continue;
        };
        for f in dir {
            let f = f.unwrap().path();
            check(&std::fs::read(&f).unwrap());
            ran += 1;
        }
    }
    assert!(ran > 0, "no regression inputs under {}", root.display());
}

#[test]
fn a_layer_too_big_to_allocate_is_refused_before_allocating() {
    // The layers fuzzer's first crash: a 784 x 780298391 layer (2.4 TB) aborted the process.
    for spec in [
        "fc:780298391 fc:1049219",
        "fc:100000 fc:100000 softmax:10",
        "conv:18446744073709551615x5x5 softmax:10",
    ] {
        let Err(e) = nn::spec::build::<f32>(spec, &mnist::IMAGE_DIMS, nn::Cost::LogLikelihood, 0)
        else {
            panic!("{spec} built");
        };
        let e = e.to_string();
        assert!(
            e.contains("parameters") && e.starts_with("--layers"),
            "{spec}: {e}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn network2_json_loader_refuses_or_loads_a_consistent_net(bytes in input("network2_json")) {
        check_network2_json(&bytes);
    }

    #[test]
    fn safetensors_loader_is_all_or_nothing(bytes in input("safetensors")) {
        check_safetensors(&bytes);
    }

    #[test]
    fn checkpoint_loader_is_all_or_nothing(bytes in input("checkpoint")) {
        check_checkpoint(&bytes);
    }

    #[test]
    fn layers_parser_builds_or_explains(text in description()) {
        check_layers(text.as_bytes());
    }

    #[test]
    fn layers_parser_on_arbitrary_text(text in "\\PC{0,40}") {
        check_layers(text.as_bytes());
    }
}
