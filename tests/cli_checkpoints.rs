//! What the probes of 2026-12-07 found in training and resuming, through the programs: plain
//! SGD with batch norm, checkpoints of any size, directories checked and locked on every
//! program, settings a resumed run must keep, and flags a program does not use. Each refusal
//! runs under an address-space cap (`cli_support::run_capped`).

mod cli_support;

use cli_support::{with_quick, Scratch};

#[test]
fn plain_sgd_trains_nets_with_batch_norm() {
    // Batch norm's running statistics are parameters the fused SGD step must count.
    let s = Scratch::new("sgd-bn");
    let out = s.quick(
        "network3",
        &["--layers", "flatten fc:16 bn,relu softmax:10"],
    );
    assert!(out.ok().contains("Epoch 0: validation accuracy"));
    let out = s.quick(
        "modern",
        &[
            "--optimizer",
            "sgd",
            "--layers",
            "conv2d:4x3x3,pad:1,nobias bn,relu pool:2 flatten fc:16 bn,relu softmax:10",
        ],
    );
    assert!(out.ok().contains("Epoch 0: validation accuracy"));
}

#[test]
fn a_checkpoint_of_millions_of_parameters_resumes() {
    // Adam's moments and the weight average of 2.4 M parameters: 29 MB of state, which the
    // first format kept as JSON in a header safetensors caps at 100 MB.
    let s = Scratch::new("big-ck");
    let net = ["--layers", "flatten fc:3000,relu softmax:10"];
    let ck = s.arg("ck");
    let first = [&net[..], &["--checkpoint", &ck]].concat();
    s.quick("modern", &first).ok();
    let again = [
        &net[..],
        &["--train-limit", "100", "--threads", "1", "--epochs", "2"],
        &["--resume", &ck],
    ]
    .concat();
    let out = s.run("modern", &again);
    assert!(
        out.ok().contains("Epoch 1: validation accuracy"),
        "{}",
        out.stdout
    );
    assert!(out.stderr.contains("resuming from"), "{}", out.stderr);
}

#[test]
fn checkpoint_directories_are_checked_before_any_work_on_every_program() {
    let s = Scratch::new("ck-dirs");
    std::fs::write(s.path("a-file"), b"not a directory").unwrap();
    for program in ["network", "network2", "network3", "modern"] {
        let r = s.capped(program, &with_quick(&["--resume", &s.arg("typo-dir")]));
        r.refused(&["--resume", "no checkpoint there"]);
        let r = s.capped(program, &with_quick(&["--checkpoint", &s.arg("a-file")]));
        r.refused(&["--checkpoint", "a-file: is a file, not a directory"]);
        assert!(!r.stdout.contains("Epoch 0"), "{program} trained first");
    }
    // A directory holding another run's checkpoint is not overwritten (modern too).
    let layers = ["--layers", "fc:8 softmax:10"];
    let run1 = s.arg("run1");
    let first = [&layers[..], &["--checkpoint", &run1]].concat();
    s.quick("modern", &first).ok();
    let before = std::fs::read(s.path("run1/checkpoint.safetensors")).unwrap();
    s.capped("modern", &with_quick(&first))
        .refused(&["holds another run's checkpoint"]);
    assert!(std::fs::read(s.path("run1/checkpoint.safetensors")).unwrap() == before);
}

#[test]
fn a_second_run_on_a_locked_checkpoint_directory_gets_one_line() {
    let s = Scratch::new("ck-lock");
    std::fs::create_dir(s.path("ck")).unwrap();
    // The test holds the lock as a running first run would.
    let lock = std::fs::File::create(s.path("ck").join(nndl::run::LOCK_FILE)).unwrap();
    lock.try_lock().unwrap();
    for program in ["network2", "modern"] {
        let r = s.capped(program, &with_quick(&["--checkpoint", &s.arg("ck")]));
        r.refused(&["another run is checkpointing there"]);
    }
    drop(lock);
    s.quick("network2", &["--checkpoint", &s.arg("ck")]).ok();
}

#[test]
fn a_resumed_run_must_read_the_pixels_as_the_first_did() {
    let s = Scratch::new("pixel-resume");
    for program in ["network", "network2"] {
        let dir = s.arg(program);
        s.quick(program, &["--checkpoint", &dir]).ok();
        let again = [
            "--train-limit",
            "100",
            "--threads",
            "1",
            "--epochs",
            "2",
            "--resume",
            &dir,
            "--pixel-scale",
            "256",
        ];
        s.capped(program, &again)
            .refused(&["pixel_scale = 255, this one 256"]);
    }
}

#[test]
fn each_program_takes_only_the_flags_it_uses_and_checks_every_value() {
    let s = Scratch::new("flags-used");
    for (program, flag) in [
        ("custom_layer", "--lambda 1"),
        ("custom_layer", "--momentum 0.9"),
        ("custom_layer", "--ema 0.9"),
        ("custom_layer", "--eta-schedule"),
        ("custom_layer", "--layer-speeds"),
        ("network", "--lambda 5"),
        ("network3", "--hidden 30"),
        ("modern", "--lambda 1"),
    ] {
        let args: Vec<&str> = flag.split(' ').collect();
        let name = args[0];
        let unexpected = format!("unexpected argument '{name}'");
        s.capped(program, &with_quick(&args))
            .refused(&[&unexpected]);
        let help = s.run(program, &["--help"]);
        assert!(
            !help.ok().contains(&format!("{name} ")),
            "{program} --help lists {name}"
        );
    }
    let (finite, at_least_1) = ("must be a finite number >= 0", "must be at least 1");
    for (program, flag, says) in [
        ("network2", "--lambda=-5", finite),
        ("network2", "--l1=-5", finite),
        ("network2", "--lambda NaN", finite),
        (
            "network2",
            "--eta 1e-50",
            "must be a positive number an f32 holds",
        ),
        ("network2", "--eta -1", "must be a positive number"),
        ("network2", "--early-stopping 0", at_least_1),
        ("network", "--mini-batch 0", at_least_1),
        ("network3", "--nets 0", at_least_1),
        ("network3", "--max-memory 12X", "unit must be"),
        ("network", "--eta-schedule", "use network2"),
        // Flags that another flag would make do nothing.
        (
            "network2",
            "--sizes 784,10 --hidden 20",
            "cannot be used with '--hidden",
        ),
        ("network3", "--nets 3", "are for --preset ensemble"),
        (
            "modern",
            "--ensemble a.safetensors --save b.safetensors",
            "cannot be used with '--save",
        ),
        (
            "modern",
            "--train-all --eta-schedule",
            "--train-all trains on the validation",
        ),
    ] {
        let args: Vec<&str> = flag.split(' ').collect();
        // --data names no directory: values are checked before any data is looked for.
        let mut all = with_quick(&args);
        all.extend(["--data", "/nonexistent"]);
        s.capped(program, &all).refused(&[says]);
    }
    // --help gives each program's own defaults.
    for (program, default) in [
        ("network", "Epochs to train [default: 30]"),
        ("network2", "L2 regularisation lambda [default: 5.0]"),
        ("custom_layer", "Learning rate eta [default: 0.1]"),
        ("network3", "Epochs to train [default: the preset's]"),
    ] {
        let help = s.run(program, &["--help"]);
        assert!(help.ok().contains(default), "{program}: {}", help.stdout);
    }
}
