//! Bad input everywhere a user types or points, through the example programs themselves: each
//! case ends with exit code 2 and one line on stderr naming the problem (no panic, no
//! backtrace), and output paths are checked before any training.

mod cli_support;

use cli_support::{run_capped, with_quick, Scratch, QUICK};
use nn::{Cost, Init, Network};

#[test]
fn a_fc_layer_whose_inputs_do_not_match_the_previous_layer() {
    let s = Scratch::new("layers");
    let r = s.quick("network3", &["--layers", "fc:2000x100 softmax:10"]);
    r.refused(&[
        "layer 1",
        "declares 2000 inputs but the previous layer gives 784",
    ]);
    s.quick(
        "network3",
        &["--layers", "conv:20x5x5 fc:100 softmax:10,dropout:2"],
    )
    .refused(&["layer 3"]);
    s.quick(
        "network3",
        &["--layers", "fc:1000000 fc:1000000 softmax:10"],
    )
    .refused(&["parameters"]);
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
    let r = s.quick(
        "network3",
        &[
            "--layers",
            "fc:100 softmax:10",
            "--load",
            &s.arg("fc30.safetensors"),
        ],
    );
    r.refused(&["fc30.safetensors", "another architecture"]);
    // network2: a [784, 30, 10] safetensors file into --hidden 20.
    let net =
        Network::<f32>::sigmoid_mlp(&[784, 30, 10], Cost::CrossEntropy, Init::Large, 0).unwrap();
    nn::io::save_safetensors(&net, s.path("h30.safetensors")).unwrap();
    s.quick(
        "network2",
        &["--hidden", "20", "--load", &s.arg("h30.safetensors")],
    )
    .refused(&["another architecture"]);
    // network2: a JSON model that does not take MNIST images.
    let toy = Network::<f32>::sigmoid_mlp(&[4, 3, 2], Cost::CrossEntropy, Init::Large, 0).unwrap();
    nn::io::save_network2_json(&toy, s.path("toy.json")).unwrap();
    let r = s.quick("network2", &["--load", &s.arg("toy.json")]);
    r.refused(&["toy.json", "MNIST needs [784]"]);
    // And files that are no model at all, or missing.
    std::fs::write(s.path("junk.json"), b"{\"sizes\": [784, 30").unwrap();
    s.quick("network2", &["--load", &s.arg("junk.json")])
        .refused(&["junk.json"]);
    s.quick("network3", &["--load", &s.arg("missing.safetensors")])
        .refused(&["missing.safetensors"]);
}

#[test]
fn a_mistyped_flag_or_value() {
    let s = Scratch::new("flags");
    let r = s.run("network", &["--eta", "abc"]);
    r.refused(&["'abc'", "--eta", "--help"]);
    s.run("network2", &["--cost", "hinge"]).refused(&["hinge"]);
    s.run("network3", &["--epoch", "3"]).refused(&["--epoch"]);
    s.quick("network", &["--threads", "0"])
        .refused(&["--threads"]);
    s.run("mnist_svm", &["--c", "0"]).refused(&["--c must be"]);
}

#[test]
fn a_missing_data_directory() {
    let s = Scratch::new("data");
    for program in ["network", "network2", "network3"] {
        let r = s.quick(program, &["--data", "/nonexistent"]);
        r.refused(&["/nonexistent"]);
    }
    for program in ["mnist_svm", "mnist_average_darkness"] {
        let r = s.run(program, &["--data", "/nonexistent"]);
        r.refused(&["/nonexistent"]);
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
        let r = s.quick(program, &[flag, path]);
        r.refused(&[flag, path]);
        // Checked before training: not one epoch ran.
        assert!(
            !r.stdout.contains("Epoch"),
            "{program} {flag}: trained first:\n{}",
            r.stdout
        );
    }
    // A directory where a file is expected.
    s.quick("network2", &["--save", &s.arg("")])
        .refused(&["is a directory"]);
}

#[test]
fn a_diverging_learning_rate_stops_network_with_the_epoch_and_mini_batch() {
    let s = Scratch::new("eta");
    let r = s.run(
        "network",
        &["--eta", "1e6", "--train-limit", "1000", "--threads", "1"],
    );
    r.refused(&[
        "training diverged at epoch 0, mini-batch 1",
        "try a smaller learning rate (eta = 1000000 now)",
    ]);
    // No epoch finished on garbage.
    assert!(!r.stdout.contains("Epoch 0"), "{}", r.stdout);
    // network2's weight decay at that rate overflows to infinity, then NaN: caught as well.
    s.run(
        "network2",
        &["--eta", "1e6", "--train-limit", "1000", "--threads", "1"],
    )
    .refused(&["try a smaller learning rate"]);
}

#[test]
fn resume_refuses_a_missing_checkpoint_and_checkpoint_refuses_to_overwrite_another_run() {
    let s = Scratch::new("resume-bad");
    s.quick("network", &["--resume", &s.arg("none")])
        .refused(&["no checkpoint"]);
    s.quick("network", &["--checkpoint", &s.arg("ck")]).ok();
    s.quick("network", &["--checkpoint", &s.arg("ck")])
        .refused(&["--resume"]);
    // Resuming with other settings would not reproduce the run: refused, naming the setting.
    let r = s.quick("network", &["--resume", &s.arg("ck"), "--eta", "1.0"]);
    r.refused(&["eta = 3.0, this one 1.0"]);
    // A damaged checkpoint is named.
    std::fs::write(
        nn::checkpoint::path(s.path("ck")),
        b"\x10\0\0\0\0\0\0\0{\"__meta",
    )
    .unwrap();
    s.quick("network", &["--resume", &s.arg("ck")])
        .refused(&["checkpoint.safetensors"]);
}

#[test]
fn an_evaluation_batch_of_zero_and_a_pixel_scale_other_than_255_or_256() {
    let s = Scratch::new("evalbatch");
    s.quick("network3", &["--eval-batch", "0"])
        .refused(&["--eval-batch"]);
    s.quick("network3", &["--pixel-scale", "100"])
        .refused(&["--pixel-scale"]);
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
        std::fs::write(&train, test_support::gzip_bomb(count, 16 << 20)).unwrap();
        for (program, args) in [
            ("network", with_quick(&["--data", &dir])),
            ("mnist_svm", vec!["--data", &dir]),
        ] {
            // Under an address-space cap: nothing big is even reserved.
            let r = s.capped(program, &args);
            r.refused(&["train-images-idx3-ubyte.gz", says]);
        }
    }
}

#[test]
fn an_endless_model_file_is_refused_after_a_line_limit() {
    let s = Scratch::new("endless");
    // mnist_svm --load /dev/zero: one endless line; before, collected until the allocator
    // aborted the process.
    let r = s.run("mnist_svm", &["--load", "/dev/zero"]);
    r.refused(&["/dev/zero", "line longer than 1048576 bytes"]);
    // A LIBSVM model with a 900,000-character token: the error quotes 200 characters of it.
    let model = format!("svm_type c_svc\nkernel_type {}\n", "k".repeat(900_000));
    std::fs::write(s.path("long.model"), model).unwrap();
    let r = s.run("mnist_svm", &["--load", &s.arg("long.model")]);
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
        r.refused(needles);
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
        r.refused(&["over the limit of 102 KB (NNDL_MAX_MEMORY)"]);
    }
    let (r, _) = run_capped(&s.0, "network", &QUICK, &[("NNDL_MAX_MEMORY", "lots")]);
    r.refused(&["NNDL_MAX_MEMORY=\"lots\" is not a size"]);
}
