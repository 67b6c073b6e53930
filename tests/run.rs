//! `nndl::run`: a run stopped after any epoch and resumed ends where an uninterrupted run
//! ends (weights, bookkeeping, per-epoch record), `stop` ends a run before its next epoch
//! (early stopping, also right after a resume), and a resume with other settings is refused.

#[path = "../nn/tests/common/mod.rs"]
mod common;

use common::training;
use nn::{Cost, Init, Network, Regularization, Sgd};
use nndl::run::{Checkpoints, Plan, Run, RunError};
use std::path::PathBuf;

fn scratch(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("nndl-run-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn saving(dir: &std::path::Path) -> Checkpoints {
    Checkpoints {
        save: Some(dir.to_path_buf()),
        resume: None,
    }
}

fn resuming(dir: &std::path::Path) -> Checkpoints {
    Checkpoints {
        save: None,
        resume: Some(dir.to_path_buf()),
    }
}

fn net() -> Network<f32> {
    Network::sigmoid_mlp(&[784, 16, 10], Cost::CrossEntropy, Init::ScaledByInputs, 5).unwrap()
}

/// Trains up to `epochs` with `ck`; the bookkeeping is (epochs seen, best cost so far).
fn train(net: &mut Network<f32>, epochs: usize, ck: &Checkpoints, eta: f64) -> (Run, (usize, f64)) {
    let data = training().take(500);
    let mut run = Run::new("test", serde_json::json!({"eta": eta, "epochs": epochs}));
    let plan = Plan::shuffled(epochs, 10);
    let mut sgd = Sgd::new(eta, Regularization::None);
    let mut state = (0usize, f64::INFINITY);
    run.epochs(
        net,
        &data,
        &mut sgd,
        plan,
        ck,
        &mut state,
        |_| false,
        |_, stats, e, s| {
            *s = (s.0 + 1, s.1.min(stats.mean_cost));
            e.training_cost = Some(stats.mean_cost);
            Ok(())
        },
    )
    .unwrap();
    (run, state)
}

#[test]
fn a_run_resumed_after_each_epoch_ends_where_the_uninterrupted_run_ends() {
    let mut straight = net();
    let (run, state) = train(&mut straight, 3, &Checkpoints::default(), 0.5);
    let costs =
        |r: &Run| -> Vec<Option<f64>> { r.record.epochs.iter().map(|e| e.training_cost).collect() };
    let dir = scratch("resume");
    let mut n = net();
    train(&mut n, 1, &saving(&dir), 0.5);
    for epochs in [2, 3] {
        // A fresh process would build a fresh net: the checkpoint brings it back.
        let mut n = net();
        let ck = resuming(&dir);
        let (resumed, s) = train(&mut n, epochs, &ck, 0.5);
        if epochs == 3 {
            assert!(
                n.parameter_bits() == straight.parameter_bits(),
                "the resumed weights differ"
            );
            assert_eq!(s, state);
            assert_eq!(costs(&resumed), costs(&run));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Up to 10 epochs in order with `ck`, stopping once 2 have been seen: the run, the count
/// and whether any epoch ran in this call.
fn until_two(ck: &Checkpoints) -> (Run, usize, bool) {
    let data = training().take(500);
    let plan = Plan {
        epochs: 10,
        mini_batch: 10,
        shuffle: false,
    };
    let mut run = Run::new("test", serde_json::json!({}));
    let (mut seen, mut ran) = (0usize, false);
    let mut sgd = Sgd::new(0.1, Regularization::None);
    let stop = |s: &usize| *s >= 2;
    run.epochs(
        &mut net(),
        &data,
        &mut sgd,
        plan,
        ck,
        &mut seen,
        stop,
        |_, _, _, s| {
            *s += 1;
            ran = true;
            Ok(())
        },
    )
    .unwrap();
    (run, seen, ran)
}

#[test]
fn stop_ends_the_run_before_the_next_epoch_also_right_after_a_resume() {
    let dir = scratch("stop");
    let (run, seen, _) = until_two(&saving(&dir));
    assert_eq!((seen, run.record.epochs.len()), (2, 2));
    // Resumed with the stop condition already met: no epoch is trained, and the bookkeeping
    // and the record come back from the checkpoint.
    let (run, seen, ran) = until_two(&resuming(&dir));
    assert_eq!((seen, run.record.epochs.len(), ran), (2, 2, false));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_resume_with_other_settings_is_refused_naming_the_setting() {
    let dir = scratch("settings");
    let mut n = net();
    train(&mut n, 1, &saving(&dir), 0.5);
    let data = training().take(500);
    let mut run = Run::new("test", serde_json::json!({"eta": 0.1, "epochs": 2}));
    let plan = Plan::shuffled(2, 10);
    let ck = resuming(&dir);
    let err = run
        .epochs(
            &mut net(),
            &data,
            &mut Sgd::new(0.1, Regularization::None),
            plan,
            &ck,
            &mut (0usize, 0.0f64),
            |_| false,
            |_, _, _, _| Ok(()),
        )
        .unwrap_err();
    assert!(matches!(err, RunError::Resume { .. }), "{err}");
    assert!(err.to_string().contains("eta = 0.5, this one 0.1"), "{err}");
    // A resume that names no checkpoint is refused before any work.
    let empty = scratch("empty");
    let e = resuming(&empty).check(false).unwrap_err();
    assert!(e.to_string().contains("no checkpoint there"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&empty);
}
