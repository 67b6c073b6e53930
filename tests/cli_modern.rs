//! The modern example end to end on a tiny net: training with augmentation, saving the best
//! validation epoch, voting saved nets, resuming to the same result, and one-line errors.

mod cli_support;

use cli_support::{run_in, Scratch};

const NET: &str = "conv2d:4x3x3,pad:1,nobias bn,relu pool:2 flatten dropout:0.2 fc:16,linear,init:he bn,relu softmax:10";

fn train(s: &Scratch, extra: &[&str]) -> String {
    let mut args = vec![
        "--layers",
        NET,
        "--train-limit",
        "300",
        "--threads",
        "1",
        "--eval-batch",
        "500",
    ];
    args.extend_from_slice(extra);
    run_in(&s.0, "modern", &args).ok().to_string()
}

fn percent_after(out: &str, prefix: &str) -> f64 {
    out.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|v| v.split('%').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {prefix:?} in\n{out}"))
}

#[test]
fn trains_saves_the_best_epoch_and_an_ensemble_of_it_scores_the_same() {
    let s = Scratch::new("modern-train");
    let out = train(
        &s,
        &[
            "--epochs",
            "2",
            "--save",
            &s.arg("net.safetensors"),
            "--json",
            &s.arg("run.json"),
        ],
    );
    assert!(
        out.contains("BatchNorm(4, relu)") && out.contains("Conv2d(4x1x3x3, padding 1"),
        "{out}"
    );
    assert!(out.contains("Epoch 1: validation accuracy"), "{out}");
    let test = percent_after(&out, "Corresponding test accuracy of ");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.path("run.json")).unwrap()).unwrap();
    assert_eq!(record["settings"]["augment"]["degrees"], 10.0);
    assert_eq!(record["settings"]["lr_decay"], "cosine");
    assert_eq!(record["settings"]["ema"], 0.999);
    assert_eq!(record["epochs"].as_array().map(Vec::len), Some(2));
    // The saved net is the best validation epoch's: voting two copies of it gives its test
    // accuracy.
    let net = s.arg("net.safetensors");
    let r = run_in(&s.0, "modern", &["--layers", NET, "--ensemble", &net, &net]);
    let vote = percent_after(
        r.ok(),
        "Ensemble of 2 nets (mean probabilities): validation accuracy ",
    );
    let ens_test: f64 = r
        .stdout
        .lines()
        .find(|l| l.starts_with("Ensemble of 2"))
        .and_then(|l| l.rsplit("test accuracy ").next())
        .and_then(|v| v.trim_end_matches('%').parse().ok())
        .unwrap();
    assert!(vote > 10.0, "{}", r.stdout);
    assert_eq!(ens_test, test, "{}", r.stdout);
    // Test-time augmentation says so and still scores each net.
    let r = run_in(
        &s.0,
        "modern",
        &["--layers", NET, "--ensemble", &net, "--tta", "3"],
    );
    assert!(
        r.ok().contains("images and 2 transformed copies"),
        "{}",
        r.stdout
    );
    assert!(
        percent_after(
            r.ok(),
            "Ensemble of 1 nets (mean probabilities): validation accuracy "
        ) > 10.0
    );
}

#[test]
fn train_all_trains_on_the_validation_images_too_and_reports_the_last_epoch() {
    let s = Scratch::new("modern-all");
    let out = train(
        &s,
        &["--epochs", "1", "--train-all", "--json", &s.arg("run.json")],
    );
    assert!(out.contains("Epoch 0: training cost"), "{out}");
    assert!(!out.contains("validation accuracy"), "{out}");
    assert!(percent_after(&out, "Test accuracy ") > 10.0, "{out}");
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.path("run.json")).unwrap()).unwrap();
    assert_eq!(record["settings"]["train_images"], 300 + 10_000);
    assert_eq!(record["settings"]["train_all"], true);
}

#[test]
fn a_resumed_run_ends_where_an_uninterrupted_one_does() {
    let s = Scratch::new("modern-resume");
    // Plain, then with a weight average (kept in the checkpoint, evaluated and saved).
    for (tag, ema) in [
        ("plain", &["--ema", "0"][..]),
        ("ema", &["--ema", "0.9"][..]),
    ] {
        let with = |extra: &[&str]| {
            let mut args = vec!["--seed", "3"];
            args.extend_from_slice(ema);
            args.extend_from_slice(extra);
            train(&s, &args)
        };
        let (a, b, ck) = (format!("a{tag}"), format!("b{tag}"), format!("ck{tag}"));
        let whole = with(&["--epochs", "2", "--save", &s.arg(&a)]);
        with(&["--epochs", "1", "--checkpoint", &s.arg(&ck)]);
        let resumed = with(&[
            "--epochs",
            "2",
            "--resume",
            &s.arg(&ck),
            "--save",
            &s.arg(&b),
        ]);
        let last = |out: &str| percent_after(out, "Epoch 1: validation accuracy ");
        assert_eq!(last(&whole), last(&resumed), "{whole}\n---\n{resumed}");
        // Same weights, batch-norm running statistics included.
        assert_eq!(
            std::fs::read(s.path(&a)).unwrap(),
            std::fs::read(s.path(&b)).unwrap(),
            "{tag}"
        );
    }
    // The average is what was saved: not the trained weights of the same run.
    assert_ne!(
        std::fs::read(s.path("aplain")).unwrap(),
        std::fs::read(s.path("aema")).unwrap()
    );
}

#[test]
fn bad_flags_are_one_line_errors() {
    let s = Scratch::new("modern-bad");
    for (args, needle) in [
        (vec!["--scale", "1.5"], "--scale below 1"),
        (vec!["--degrees=-3"], ">= 0"),
        (vec!["--momentum", "0.9"], "--optimizer sgd"),
        (
            vec!["--ema", "1"],
            "'--ema <DECAY>': \"1\" must be in [0, 1)",
        ),
        // modern regularises through --weight-decay: it has no --lambda or --hidden.
        (vec!["--lambda", "0.1"], "unexpected argument '--lambda'"),
        (vec!["--hidden", "30"], "unexpected argument '--hidden'"),
        (vec!["--weight-decay=-1"], "must be a finite number >= 0"),
        (vec!["--eval-batch", "0"], "must be at least 1"),
        (
            vec!["--layers", "conv2d:8x3x3 bn:2 softmax:10"],
            "bn takes no size",
        ),
        (
            vec!["--ensemble", "missing.safetensors"],
            "missing.safetensors",
        ),
        (vec!["--tta", "0"], "must be at least 1"),
        (vec!["--tta", "4"], "goes with --ensemble"),
        (
            vec!["--train-all", "--ensemble", "a.safetensors"],
            "'--train-all' cannot be used with '--ensemble",
        ),
    ] {
        let r = run_in(&s.0, "modern", &args);
        let e = r.one_line_error();
        assert!(e.contains(needle), "{args:?}: {e}");
    }
}
