//! Checkpoint and resume through the example programs: a run killed after its first epoch and
//! resumed ends with the same weights, byte for byte, as an uninterrupted run (same seed,
//! `--threads 1`); and the thread count changes nothing for fully connected nets.

mod cli_support;

use cli_support::{command, run_in, Scratch};
use std::process::Stdio;
use std::time::{Duration, Instant};

/// The epochs a resumed run reports it starts after (`resuming from ... after N epoch(s)`).
fn resumed_after(stderr: &str) -> usize {
    stderr
        .lines()
        .find_map(|l| l.strip_prefix("resuming from "))
        .and_then(|l| l.split(" after ").nth(1))
        .and_then(|l| l.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no resume line in:\n{stderr}"))
}

fn argv(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Runs `program` for 3 epochs straight, and again killed (SIGKILL) as soon as its first
/// checkpoint exists then resumed to 3 epochs; the saved nets and the per-epoch accuracies
/// must be identical.
fn kill_and_resume(program: &str, args: &[&str], save: &str) {
    let s = Scratch::new(&format!("kill-{program}"));
    let base: Vec<&str> = ["--threads", "1", "--epochs", "3", "--seed", "5"]
        .iter()
        .chain(args)
        .copied()
        .collect();
    let with = |extra: &[&str]| -> Vec<String> {
        base.iter().chain(extra).map(|s| s.to_string()).collect()
    };

    let straight_save = s.arg(&format!("straight.{save}"));
    let a = with(&[
        "--save",
        &straight_save,
        "--json",
        &s.arg("straight-record.json"),
    ]);
    run_in(&s.0, program, &argv(&a)).ok();

    let ck = s.arg("ck");
    let mut child = command(&s.0, program, &argv(&with(&["--checkpoint", &ck])))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while !nn::checkpoint::exists(&ck) && t.elapsed() < Duration::from_secs(120) {
        std::thread::sleep(Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let resumed_save = s.arg(&format!("resumed.{save}"));
    let b = with(&[
        "--resume",
        &ck,
        "--save",
        &resumed_save,
        "--json",
        &s.arg("resumed-record.json"),
    ]);
    let r = run_in(&s.0, program, &argv(&b));
    r.ok();
    let done = resumed_after(&r.stderr);
    assert!(
        (1..3).contains(&done),
        "{program}: killed after {done} epochs; the test needs a kill between epochs 1 and 3"
    );
    assert!(
        std::fs::read(&straight_save).unwrap() == std::fs::read(&resumed_save).unwrap(),
        "{program}: the resumed run's weights differ from the uninterrupted run's"
    );
    let record = |f: &str| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(s.path(f)).unwrap()).unwrap()
    };
    let strip = |v: serde_json::Value| -> Vec<serde_json::Value> {
        v["epochs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                let mut e = e.clone();
                for k in ["seconds", "train_seconds", "train_images_per_second"] {
                    e.as_object_mut().unwrap().remove(k);
                }
                e
            })
            .collect()
    };
    let (x, y) = (
        record("straight-record.json"),
        record("resumed-record.json"),
    );
    assert_eq!(x["test_accuracy"], y["test_accuracy"], "{program}");
    assert_eq!(strip(x), strip(y), "{program}: per-epoch figures differ");
}

#[test]
fn network2_killed_after_an_epoch_resumes_to_the_same_weights() {
    kill_and_resume(
        "network2",
        &["--train-limit", "3000", "--accuracy-only"],
        "json",
    );
}

#[test]
fn network3_with_dropout_and_shuffling_killed_after_an_epoch_resumes_to_the_same_weights() {
    kill_and_resume(
        "network3",
        &[
            "--train-limit",
            "3000",
            "--shuffle",
            "--layers",
            "fc:50,relu,dropout:0.5 softmax:10",
        ],
        "safetensors",
    );
}

#[test]
fn network_resumed_prints_the_same_epochs_as_an_uninterrupted_run() {
    let s = Scratch::new("network-resume");
    let q = ["--threads", "1", "--train-limit", "1000"];
    let run = |extra: &[&str]| {
        let a: Vec<&str> = q.iter().chain(extra).copied().collect();
        run_in(&s.0, "network", &a).ok().to_string()
    };
    let straight = run(&["--epochs", "3"]);
    let first = run(&["--epochs", "1", "--checkpoint", &s.arg("ck")]);
    let rest = run(&["--epochs", "3", "--resume", &s.arg("ck")]);
    let epochs = |t: &str| -> Vec<String> {
        t.lines()
            .filter(|l| l.starts_with("Epoch"))
            .map(String::from)
            .collect()
    };
    let mut joined = epochs(&first);
    joined.extend(epochs(&rest));
    assert_eq!(epochs(&straight), joined);
    // The last line reports the best epoch over the whole run, not only the resumed part.
    assert_eq!(
        straight.lines().last().map(|l| l.split(';').next()),
        rest.lines().last().map(|l| l.split(';').next())
    );
}

#[test]
fn fully_connected_nets_give_the_same_weights_with_one_or_two_threads() {
    // The claim of docs/results/reliability.md: only conv layers depend on the thread count. The 784 x 1000 layer
    // is large enough for the parallel GEMM path.
    let s = Scratch::new("threads");
    let save = |t: &str| {
        let out = s.arg(&format!("t{t}.safetensors"));
        run_in(
            &s.0,
            "network3",
            &[
                "--threads",
                t,
                "--epochs",
                "1",
                "--train-limit",
                "500",
                "--layers",
                "fc:1000,relu softmax:10",
                "--save",
                &out,
            ],
        )
        .ok();
        std::fs::read(out).unwrap()
    };
    assert!(save("1") == save("2"));
}
