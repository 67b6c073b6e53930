//! Saving and loading: network2.py's JSON format (a hand-written fixture in that format loads
//! and predicts as computed by hand; save -> load round-trips to identical predictions) and
//! safetensors (round trip; another architecture is refused).

use nndl_nn::{Cost, InMemory, Init, Network};
use rand::{Rng, SeedableRng};
use std::path::PathBuf;

fn tmp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("nndl-io-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A [2, 2, 2] net as network2.py's `save` writes it (biases are column vectors).
const FIXTURE: &str = r#"{"sizes": [2, 2, 2],
 "weights": [[[1.0, -1.0], [0.5, 0.5]], [[2.0, -2.0], [-2.0, 2.0]]],
 "biases": [[[0.0], [-0.5]], [[0.0], [0.0]]],
 "cost": "CrossEntropyCost"}"#;

#[test]
fn a_network2_json_fixture_loads_and_predicts_as_computed_by_hand() {
    let dir = tmp("fixture");
    let path = dir.join("net.json");
    std::fs::write(&path, FIXTURE).unwrap();
    let mut net = nndl_nn::io::load_network2_json::<f64>(&path).unwrap();
    assert_eq!(net.cost(), Cost::CrossEntropy);
    // Input (1, 0): hidden z = (1, 0), a = (0.731, 0.5); output z = 2*(0.731-0.5) > 0 -> class 0.
    // Input (0, 1): hidden z = (-1, 0), a = (0.269, 0.5); output z0 = 2*(0.269-0.5) < 0 -> class 1.
    let data = InMemory {
        inputs: vec![1.0, 0.0, 0.0, 1.0],
        labels: vec![0, 1],
        sample_len: 2,
    };
    assert_eq!(net.predict(&data, 10).unwrap(), vec![0, 1]);
    let x = net
        .graph_mut()
        .input(tensor::Tensor::from_vec(vec![1.0, 0.0], &[1, 2]).unwrap());
    let z = net.forward(x, nndl_nn::Mode::Eval).unwrap();
    let s = |v: f64| 1.0 / (1.0 + (-v).exp());
    let a = [s(1.0), s(0.0)];
    let want = [2.0 * a[0] - 2.0 * a[1], -2.0 * a[0] + 2.0 * a[1]];
    let got = net.graph().value(z).unwrap().data().to_vec();
    assert!(
        (got[0] - want[0]).abs() < 1e-12 && (got[1] - want[1]).abs() < 1e-12,
        "{got:?} vs {want:?}"
    );
}

fn random_inputs(n: usize, len: usize) -> InMemory {
    let mut rng = rand_pcg::Pcg64::seed_from_u64(9);
    InMemory {
        inputs: (0..n * len).map(|_| rng.random_range(0.0..1.0)).collect(),
        labels: vec![0; n],
        sample_len: len,
    }
}

#[test]
fn network2_json_round_trip_gives_identical_predictions_and_outputs() {
    let dir = tmp("roundtrip");
    let path = dir.join("net.json");
    let mut net =
        Network::<f32>::sigmoid_mlp(&[784, 30, 10], Cost::CrossEntropy, Init::ScaledByInputs, 4)
            .unwrap();
    nndl_nn::io::save_network2_json(&net, &path).unwrap();
    let mut back = nndl_nn::io::load_network2_json::<f32>(&path).unwrap();
    let data = random_inputs(200, 784);
    assert_eq!(
        net.predict(&data, 50).unwrap(),
        back.predict(&data, 50).unwrap()
    );
    for (a, b) in net.parameters().into_iter().zip(back.parameters()) {
        assert_eq!(
            net.graph().value(a).unwrap(),
            back.graph().value(b).unwrap(),
            "weights must round-trip exactly"
        );
    }
    // The document is network2's: sizes, weights, biases (columns), cost.
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(doc["sizes"], serde_json::json!([784, 30, 10]));
    assert_eq!(doc["cost"], "CrossEntropyCost");
    assert_eq!(doc["biases"][0][0].as_array().unwrap().len(), 1);
    assert_eq!(doc["weights"][1].as_array().unwrap().len(), 10);
}

#[test]
fn safetensors_round_trip_and_architecture_mismatch() {
    let dir = tmp("st");
    let path = dir.join("net.safetensors");
    let mut net = nndl_nn::spec::build::<f32>(
        "conv:4x5x5,pool:2,relu fc:20,relu softmax:10",
        &[1, 28, 28],
        nndl_nn::Cost::LogLikelihood,
        2,
    )
    .unwrap();
    nndl_nn::io::save_safetensors(&net, &path).unwrap();
    let mut back = nndl_nn::spec::build::<f32>(
        "conv:4x5x5,pool:2,relu fc:20,relu softmax:10",
        &[1, 28, 28],
        nndl_nn::Cost::LogLikelihood,
        99,
    )
    .unwrap();
    nndl_nn::io::load_safetensors(&mut back, &path).unwrap();
    let data = random_inputs(30, 784);
    assert_eq!(
        net.predict(&data, 10).unwrap(),
        back.predict(&data, 10).unwrap()
    );
    let mut other = nndl_nn::spec::build::<f32>(
        "conv:4x5x5,pool:2,relu fc:30,relu softmax:10",
        &[1, 28, 28],
        nndl_nn::Cost::LogLikelihood,
        2,
    )
    .unwrap();
    let e = nndl_nn::io::load_safetensors(&mut other, &path)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("another architecture") && e.contains("net.safetensors"),
        "{e}"
    );
}

#[test]
fn bad_model_files_are_errors_that_name_the_file() {
    let dir = tmp("bad");
    for (name, text, needle) in [
        ("garbage.json", "not json", "not a network2 JSON model"),
        (
            "sizes.json",
            r#"{"sizes":[2,2],"weights":[],"biases":[],"cost":"CrossEntropyCost"}"#,
            "do not match",
        ),
        (
            "cost.json",
            r#"{"sizes":[1,1],"weights":[[[1.0]]],"biases":[[[0.0]]],"cost":"Hinge"}"#,
            "unknown cost",
        ),
        (
            "shape.json",
            r#"{"sizes":[2,1],"weights":[[[1.0]]],"biases":[[[0.0]]],"cost":"QuadraticCost"}"#,
            "rows of 2",
        ),
    ] {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        let e = nndl_nn::io::load_network2_json::<f32>(&p)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains(needle) && e.contains(name), "{name}: {e}");
    }
    let e = nndl_nn::io::load_network2_json::<f32>(dir.join("missing.json"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("missing.json"), "{e}");
    let p = dir.join("trunc.safetensors");
    std::fs::write(&p, [1u8, 2, 3]).unwrap();
    let mut net = nndl_nn::spec::build::<f32>(
        "fc:5 softmax:10",
        &[1, 28, 28],
        nndl_nn::Cost::LogLikelihood,
        0,
    )
    .unwrap();
    assert!(nndl_nn::io::load_safetensors(&mut net, &p)
        .unwrap_err()
        .to_string()
        .contains("not a safetensors file"));
}

#[test]
fn only_network2_shaped_nets_save_as_network2_json() {
    let dir = tmp("shape");
    let net = nndl_nn::spec::build::<f32>(
        "fc:5,relu softmax:10",
        &[1, 28, 28],
        nndl_nn::Cost::LogLikelihood,
        0,
    )
    .unwrap();
    let e = nndl_nn::io::save_network2_json(&net, dir.join("x.json"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("safetensors"), "{e}");
    assert!(!dir.join("x.json").exists());
}

#[test]
fn errors_quote_untrusted_file_content_cut_short() {
    use std::path::Path;
    // Before: the whole value was echoed (a 30 MB `sizes` list made a 30 MB line).
    let long_sizes = vec!["7"; 1_000_000].join(", ");
    let cases = [
        format!(
            r#"{{"sizes": [{long_sizes}], "weights": [], "biases": [], "cost": "QuadraticCost"}}"#
        ),
        format!(
            r#"{{"sizes": [2, 1], "weights": [[[1, 2]]], "biases": [[[0]]], "cost": "{}"}}"#,
            "C".repeat(1_000_000)
        ),
        // serde_json's own message quotes the offending string.
        format!(
            r#"{{"sizes": "{}", "weights": [], "biases": [], "cost": "QuadraticCost"}}"#,
            "s".repeat(1_000_000)
        ),
    ];
    for json in &cases {
        let Err(e) = nndl_nn::io::load_network2_json_from_bytes::<f32>(
            json.as_bytes(),
            Path::new("big.json"),
        ) else {
            panic!("loaded");
        };
        let e = e.to_string();
        assert!(e.len() < 1000, "{} characters: {}...", e.len(), &e[..300]);
        assert!(
            e.starts_with("big.json: ") && e.contains("more characters)"),
            "{e}"
        );
    }
    // A safetensors header naming a tensor with a huge shape list.
    let mut net = Network::<f32>::sigmoid_mlp(&[2, 1], Cost::Quadratic, Init::Large, 0).unwrap();
    let shape = vec!["1"; 100_000].join(",");
    let header = format!(
        r#"{{"l0.w":{{"dtype":"F32","shape":[{shape},2],"data_offsets":[0,8]}},"l0.b":{{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}}}"#
    );
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header.as_bytes());
    file.extend_from_slice(&[0; 12]);
    let e = nndl_nn::io::load_safetensors_from_bytes(&mut net, &file, Path::new("big.st"))
        .unwrap_err()
        .to_string();
    assert!(e.len() < 1000, "{} characters", e.len());
}

#[cfg(unix)]
#[test]
fn a_model_file_larger_than_any_network_is_refused_by_its_size() {
    // A sparse file one byte over the limit: refused from its size, nothing read.
    let p = tmp("too-large").join("too-large.safetensors");
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(nndl_nn::io::MAX_MODEL_FILE_BYTES + 1).unwrap();
    drop(f);
    let start = std::time::Instant::now();
    let e = nndl_nn::io::read_model_file(&p).unwrap_err().to_string();
    assert!(start.elapsed() < std::time::Duration::from_secs(1));
    assert!(
        e.contains("too-large.safetensors") && e.contains("larger than 2214592512 bytes"),
        "{e}"
    );
    let mut net = Network::<f32>::sigmoid_mlp(&[2, 1], Cost::Quadratic, Init::Large, 0).unwrap();
    let e = nndl_nn::io::load_safetensors(&mut net, &p)
        .unwrap_err()
        .to_string();
    assert!(e.contains("larger than"), "{e}");
    let Err(e) = nndl_nn::io::load_network2_json::<f32>(&p) else {
        panic!("loaded");
    };
    let e = e.to_string();
    assert!(e.contains("larger than"), "{e}");
    let _ = std::fs::remove_file(&p);
}
