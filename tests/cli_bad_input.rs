//! Bad input everywhere a user types or points, through the example programs themselves: each
//! case ends with exit code 2 and one line on stderr naming the problem (no panic, no
//! backtrace), and output paths are checked before any training.

mod cli_support;

use cli_support::{run_capped, run_in, with_quick, Scratch, QUICK};
use nn::{Cost, Init, Network};

#[test]
fn a_fc_layer_whose_inputs_do_not_match_the_previous_layer() {
    let s = Scratch::new("layers");
    let r = run_in(
        &s.0,
        "network3",
        &with_quick(&["--layers", "fc:2000x100 softmax:10"]),
    );
    let e = r.one_line_error();
    assert!(
        e.contains("layer 1")
            && e.contains("declares 2000 inputs but the previous layer gives 784"),
        "{e}"
    );
    let r = run_in(
        &s.0,
        "network3",
        &with_quick(&["--layers", "conv:20x5x5 fc:100 softmax:10,dropout:2"]),
    );
    assert!(r.one_line_error().contains("layer 3"), "{}", r.stderr);
    let r = run_in(
        &s.0,
        "network3",
        &with_quick(&["--layers", "fc:1000000 fc:1000000 softmax:10"]),
    );
    assert!(r.one_line_error().contains("parameters"), "{}", r.stderr);
}

#[test]
fn a_model_file_for_another_architecture() {
    let s = Scratch::new("arch");
    // network3: a fc:30 net's weights loaded into a fc:100 net.
    let small = nn::spec::build::<f32>(
        "fc:30 softmax:10",
        &mnist::IMAGE_DIMS,
        nn::Cost::LogLikelihood,
        0,
    )
    .unwrap();
    nn::io::save_safetensors(&small, s.path("fc30.safetensors")).unwrap();
    let r = run_in(
        &s.0,
        "network3",
        &with_quick(&[
            "--layers",
            "fc:100 softmax:10",
            "--load",
            &s.arg("fc30.safetensors"),
        ]),
    );
    let e = r.one_line_error();
    assert!(
        e.contains("fc30.safetensors") && e.contains("another architecture"),
        "{e}"
    );
    // network2: a [784, 30, 10] safetensors file into --hidden 20.
    let net =
        Network::<f32>::sigmoid_mlp(&[784, 30, 10], Cost::CrossEntropy, Init::Large, 0).unwrap();
    nn::io::save_safetensors(&net, s.path("h30.safetensors")).unwrap();
    let r = run_in(
        &s.0,
        "network2",
        &with_quick(&["--hidden", "20", "--load", &s.arg("h30.safetensors")]),
    );
    assert!(
        r.one_line_error().contains("another architecture"),
        "{}",
        r.stderr
    );
    // network2: a JSON model that does not take MNIST images.
    let toy = Network::<f32>::sigmoid_mlp(&[4, 3, 2], Cost::CrossEntropy, Init::Large, 0).unwrap();
    nn::io::save_network2_json(&toy, s.path("toy.json")).unwrap();
    let r = run_in(
        &s.0,
        "network2",
        &with_quick(&["--load", &s.arg("toy.json")]),
    );
    let e = r.one_line_error();
    assert!(
        e.contains("toy.json") && e.contains("MNIST needs [784]"),
        "{e}"
    );
    // And files that are no model at all, or missing.
    std::fs::write(s.path("junk.json"), b"{\"sizes\": [784, 30").unwrap();
    let r = run_in(
        &s.0,
        "network2",
        &with_quick(&["--load", &s.arg("junk.json")]),
    );
    assert!(r.one_line_error().contains("junk.json"), "{}", r.stderr);
    let r = run_in(
        &s.0,
        "network3",
        &with_quick(&["--load", &s.arg("missing.safetensors")]),
    );
    assert!(
        r.one_line_error().contains("missing.safetensors"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_mistyped_flag_or_value() {
    let s = Scratch::new("flags");
    let r = run_in(&s.0, "network", &["--eta", "abc"]);
    let e = r.one_line_error();
    assert!(
        e.contains("'abc'") && e.contains("--eta") && e.contains("--help"),
        "{e}"
    );
    let r = run_in(&s.0, "network2", &["--cost", "hinge"]);
    assert!(r.one_line_error().contains("hinge"), "{}", r.stderr);
    let r = run_in(&s.0, "network3", &["--epoch", "3"]);
    assert!(r.one_line_error().contains("--epoch"), "{}", r.stderr);
    let r = run_in(&s.0, "network", &with_quick(&["--threads", "0"]));
    assert!(r.one_line_error().contains("--threads"), "{}", r.stderr);
    let r = run_in(&s.0, "mnist_svm", &["--c", "0"]);
    assert!(r.one_line_error().contains("--c must be"), "{}", r.stderr);
}

#[test]
fn a_missing_data_directory() {
    let s = Scratch::new("data");
    for program in ["network", "network2", "network3"] {
        let r = run_in(&s.0, program, &with_quick(&["--data", "/nonexistent"]));
        let e = r.one_line_error();
        assert!(e.contains("/nonexistent"), "{program}: {e}");
    }
    for program in ["mnist_svm", "mnist_average_darkness"] {
        let r = run_in(&s.0, program, &["--data", "/nonexistent"]);
        let e = r.one_line_error();
        assert!(e.contains("/nonexistent"), "{program}: {e}");
    }
}

#[test]
fn unwritable_output_paths_fail_before_training() {
    let s = Scratch::new("out");
    for (program, flag, path) in [
        ("network", "--json", "/nonexistent/dir/x.json"),
        ("network", "--plot", "/nonexistent/x.png"),
        ("network2", "--save", "/proc/x"),
        ("network2", "--json", "/proc/x.json"),
        ("network3", "--save", "/nonexistent/net.safetensors"),
        ("network3", "--checkpoint", "/proc/ckpt"),
        ("network", "--checkpoint", "/nonexistent/a/b"),
    ] {
        let r = run_in(&s.0, program, &with_quick(&[flag, path]));
        let e = r.one_line_error();
        assert!(
            e.contains(flag) && e.contains(path),
            "{program} {flag} {path}: {e}"
        );
        // Checked before training: not one epoch ran.
        assert!(
            !r.stdout.contains("Epoch"),
            "{program} {flag}: trained first:\n{}",
            r.stdout
        );
    }
    // A directory where a file is expected.
    let r = run_in(&s.0, "network2", &with_quick(&["--save", &s.arg("")]));
    assert!(
        r.one_line_error().contains("is a directory"),
        "{}",
        r.stderr
    );
}

#[test]
fn a_diverging_learning_rate_stops_network_with_the_epoch_and_mini_batch() {
    let s = Scratch::new("eta");
    let r = run_in(
        &s.0,
        "network",
        &["--eta", "1e6", "--train-limit", "1000", "--threads", "1"],
    );
    let e = r.one_line_error();
    assert!(
        e.contains("training diverged at epoch 0, mini-batch 1")
            && e.contains("try a smaller learning rate (eta = 1000000 now)"),
        "{e}"
    );
    // No epoch finished on garbage.
    assert!(!r.stdout.contains("Epoch 0"), "{}", r.stdout);
    // network2's weight decay at that rate overflows to infinity, then NaN: caught as well.
    let r = run_in(
        &s.0,
        "network2",
        &["--eta", "1e6", "--train-limit", "1000", "--threads", "1"],
    );
    assert!(
        r.one_line_error().contains("try a smaller learning rate"),
        "{}",
        r.stderr
    );
}

#[test]
fn resume_refuses_a_missing_checkpoint_and_checkpoint_refuses_to_overwrite_another_run() {
    let s = Scratch::new("resume-bad");
    let r = run_in(&s.0, "network", &with_quick(&["--resume", &s.arg("none")]));
    assert!(r.one_line_error().contains("no checkpoint"), "{}", r.stderr);
    run_in(
        &s.0,
        "network",
        &with_quick(&["--checkpoint", &s.arg("ck")]),
    )
    .ok();
    let r = run_in(
        &s.0,
        "network",
        &with_quick(&["--checkpoint", &s.arg("ck")]),
    );
    assert!(r.one_line_error().contains("--resume"), "{}", r.stderr);
    // Resuming with other settings would not reproduce the run: refused, naming the setting.
    let r = run_in(
        &s.0,
        "network",
        &with_quick(&["--resume", &s.arg("ck"), "--eta", "1.0"]),
    );
    let e = r.one_line_error();
    assert!(e.contains("eta = 3.0, this one 1.0"), "{e}");
    // A damaged checkpoint is named.
    std::fs::write(
        nn::checkpoint::path(s.path("ck")),
        b"\x10\0\0\0\0\0\0\0{\"__meta",
    )
    .unwrap();
    let r = run_in(&s.0, "network", &with_quick(&["--resume", &s.arg("ck")]));
    assert!(
        r.one_line_error().contains("checkpoint.safetensors"),
        "{}",
        r.stderr
    );
}

#[test]
fn an_evaluation_batch_of_zero_and_a_pixel_scale_other_than_255_or_256() {
    let s = Scratch::new("evalbatch");
    let r = run_in(&s.0, "network3", &with_quick(&["--eval-batch", "0"]));
    assert!(r.one_line_error().contains("--eval-batch"), "{}", r.stderr);
    let r = run_in(&s.0, "network3", &with_quick(&["--pixel-scale", "100"]));
    assert!(r.one_line_error().contains("--pixel-scale"), "{}", r.stderr);
}

/// A gzip stream of an IDX images header declaring `count` 28x28 images, then `zeros` zero
/// bytes: what a bomb looks like from the outside (deflate packs zeros about 1000:1).
fn images_bomb(count: u32, zeros: usize) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    for w in [2051u32, count, 28, 28] {
        e.write_all(&w.to_be_bytes()).unwrap();
    }
    e.write_all(&vec![0u8; zeros]).unwrap();
    e.finish().unwrap()
}

#[test]
fn a_gzip_bomb_in_the_data_directory_is_refused_from_its_header() {
    let s = Scratch::new("bomb");
    let data = s.path("data");
    std::fs::create_dir_all(&data).unwrap();
    for f in &mnist::FILES[1..] {
        let name = f.gz_name();
        std::fs::copy(
            cli_support::root().join("data/mnist").join(&name),
            data.join(&name),
        )
        .unwrap();
    }
    let dir = data.to_string_lossy().into_owned();
    let train = data.join(mnist::TRAIN_IMAGES.gz_name());
    // 7.7 million images (6 GB, over any IDX file's limit) and 2.6 million (2 GB, not the
    // 60,000 the split needs), each with 16 MiB of zeros behind the header.
    for (count, says) in [
        (7_700_000u32, "declares 7700000 records of 784 bytes"),
        (2_600_000, "holds 2600000 records, expected 60000"),
    ] {
        std::fs::write(&train, images_bomb(count, 16 << 20)).unwrap();
        for (program, args) in [
            ("network", with_quick(&["--data", &dir])),
            ("mnist_svm", vec!["--data", &dir]),
        ] {
            // Under an address-space cap: nothing big is even reserved.
            let (r, _) = run_capped(&s.0, program, &args, &[]);
            let e = r.one_line_error();
            assert!(
                e.contains("train-images-idx3-ubyte.gz") && e.contains(says),
                "{program}: {e}"
            );
        }
    }
}

#[test]
fn an_endless_model_file_is_refused_after_a_line_limit() {
    let s = Scratch::new("endless");
    // mnist_svm --load /dev/zero: one endless line; before, collected until the allocator
    // aborted the process.
    let r = run_in(&s.0, "mnist_svm", &["--load", "/dev/zero"]);
    let e = r.one_line_error();
    assert!(
        e.contains("/dev/zero") && e.contains("line longer than 1048576 bytes"),
        "{e}"
    );
    // A LIBSVM model with a 900,000-character token: the error quotes 200 characters of it.
    let model = format!("svm_type c_svc\nkernel_type {}\n", "k".repeat(900_000));
    std::fs::write(s.path("long.model"), model).unwrap();
    let r = run_in(&s.0, "mnist_svm", &["--load", &s.arg("long.model")]);
    let e = r.one_line_error();
    assert!(e.len() < 1000 && e.contains("more characters)"), "{e}");
}

#[test]
fn sizes_under_the_parameter_cap_that_would_not_fit_in_memory_are_refused_before_training() {
    let s = Scratch::new("memory");
    // Each: the command, what its one line must say. All stop before the first epoch.
    let cases: [(&str, Vec<&str>, &[&str]); 7] = [
        (
            "network3",
            with_quick(&["--layers", "conv:100000x5x5 softmax:10"]),
            &["layer 1, ConvPool(100000x1x5x5", "over the limit"],
        ),
        (
            "network3",
            with_quick(&["--layers", "conv2d:100000x3x3,pad:1 pool:28 softmax:10"]),
            &["layer 1, Conv2d(100000x1x3x3", "over the limit"],
        ),
        (
            "network3",
            with_quick(&["--layers", "conv2d:8x3x3,pad:100000 softmax:10"]),
            &[
                "layer 1",
                "padding 100000 must be less than the kernel size 3",
            ],
        ),
        (
            "network3",
            with_quick(&[
                "--layers",
                "conv2d:8x3x3,pad:4611686018427387904 softmax:10",
            ]),
            &["layer 1", "must be less than the kernel size 3"],
        ),
        (
            "network3",
            with_quick(&[
                "--layers",
                "conv2d:8x3x3,pad:9223372036854775808 softmax:10",
            ]),
            &["layer 1", "must be less than the kernel size 3"],
        ),
        // Without --train-limit: a mini-batch past the training set is the whole set, 50,000
        // images (with --train-limit 100 it would be 100, which fits and trains).
        (
            "modern",
            vec![
                "--epochs",
                "1",
                "--threads",
                "1",
                "--mini-batch",
                "10000000",
            ],
            &["a mini-batch of 50000", "--mini-batch"],
        ),
        // Evaluation covers the 10,000 validation images at once: about 7 GB.
        (
            "modern",
            with_quick(&["--eval-batch", "10000000"]),
            &["an evaluation batch of 10000", "--eval-batch"],
        ),
    ];
    for (program, args, needles) in cases {
        let (r, took) = run_capped(&s.0, program, &args, &[]);
        let e = r.one_line_error();
        for n in needles {
            assert!(e.contains(n), "{program} {args:?}: {n:?} not in {e}");
        }
        assert!(!r.stdout.contains("Epoch"), "{program} {args:?} trained");
        // About a second (the data set's loading); generous for a loaded machine.
        assert!(took.as_secs() < 20, "{program} {args:?} took {took:?}");
    }
}

#[test]
fn the_memory_limit_is_read_from_nndl_max_memory() {
    let s = Scratch::new("max-memory");
    for program in ["network", "network2", "network3", "modern"] {
        let (r, _) = run_capped(&s.0, program, &QUICK, &[("NNDL_MAX_MEMORY", "100K")]);
        let e = r.one_line_error();
        assert!(
            e.contains("over the limit of 102 KB (NNDL_MAX_MEMORY)"),
            "{program}: {e}"
        );
    }
    let (r, _) = run_capped(&s.0, "network", &QUICK, &[("NNDL_MAX_MEMORY", "lots")]);
    assert!(
        r.one_line_error()
            .contains("NNDL_MAX_MEMORY=\"lots\" is not a size"),
        "{}",
        r.stderr
    );
}
