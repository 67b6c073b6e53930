//! DESIGN §8: a loader never allocates what a header claims before checking it is there. A
//! counting allocator records the largest single allocation while small files that claim
//! huge networks are refused.

use std::path::Path;

use test_support::largest_allocation;

#[global_allocator]
static A: test_support::Counting = test_support::Counting;

#[test]
fn small_files_claiming_huge_networks_are_refused_without_allocating_them() {
    // 16000 x 16000 is under nndl's parameter limit (1 GiB as f32): before the fix the JSON
    // loader built that network from `sizes` before looking at the matrices.
    let json =
        br#"{"sizes": [16000, 16000], "weights": [[]], "biases": [[]], "cost": "QuadraticCost"}"#;
    let ((), n) = largest_allocation(|| {
        let e = nndl_nn::io::load_network2_json_from_bytes::<f32>(json, Path::new("lie.json"));
        assert!(e.is_err());
    });
    assert!(n < 1 << 20, "the JSON loader allocated {n} bytes");

    // A --layers description of more than 2^28 parameters is refused before allocating.
    let ((), n) = largest_allocation(|| {
        assert!(nndl_nn::spec::build::<f32>(
            "fc:20000 fc:20000 softmax:10",
            &[1, 28, 28],
            nndl_nn::Cost::LogLikelihood,
            0
        )
        .is_err());
    });
    assert!(n < 1 << 28, "building allocated {n} bytes");

    // A safetensors header claiming a 2^40-element tensor in a 100-byte file.
    let mut net = nndl_nn::Network::<f32>::sigmoid_mlp(
        &[4, 3, 2],
        nndl_nn::Cost::Quadratic,
        nndl_nn::Init::Large,
        0,
    )
    .unwrap();
    let header =
        br#"{"l0.w":{"dtype":"F32","shape":[1099511627776],"data_offsets":[0,4398046511104]}}"#;
    let mut file = (header.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(header);
    file.extend_from_slice(&[0; 16]);
    let ((), n) = largest_allocation(|| {
        assert!(
            nndl_nn::io::load_safetensors_from_bytes(&mut net, &file, Path::new("lie.st")).is_err()
        );
        assert!(nndl_nn::checkpoint::Checkpoint::load_from_bytes(
            &mut net,
            &file,
            Path::new("lie")
        )
        .is_err());
    });
    assert!(n < 1 << 20, "the safetensors loaders allocated {n} bytes");
}
