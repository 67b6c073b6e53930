//! `nndl::run`: a run stopped after any epoch and resumed ends where an uninterrupted run
//! ends (weights, bookkeeping, per-epoch record), `stop` ends a run before its next epoch
//! (early stopping, also right after a resume), and a resume with other settings is refused.

use nn::{Cost, Init, Network, Regularization, Sgd};
use nndl::run::{Checkpoints, Plan, Run, RunError};
use std::path::PathBuf;

fn training() -> mnist::Dataset {
    let dir = mnist::find_data_dir(None).expect("data/mnist");
    mnist::load_data(dir).expect("MNIST").training.take(500)
}

fn scratch(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("nndl-run-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn net() -> Network<f32> {
    Network::sigmoid_mlp(&[784, 16, 10], Cost::CrossEntropy, Init::ScaledByInputs, 5).unwrap()
}

fn bits(net: &Network<f32>) -> Vec<u32> {
    net.parameters()
        .iter()
        .flat_map(|&p| {
            net.graph()
                .value(p)
                .unwrap()
                .data()
                .iter()
                .map(|v| v.to_bits())
        })
        .collect()
}

/// Trains up to `epochs` with `ck`; the bookkeeping is (epochs seen, best cost so far).
fn train(net: &mut Network<f32>, epochs: usize, ck: &Checkpoints, eta: f64) -> (Run, (usize, f64)) {
    let data = training();
    let mut run = Run::new("test", serde_json::json!({"eta": eta, "epochs": epochs}));
    let plan = Plan {
        epochs,
        mini_batch: 10,
        shuffle: true,
    };
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
    train(
        &mut n,
        1,
        &Checkpoints {
            save: Some(dir.clone()),
            resume: None,
        },
        0.5,
    );
    for epochs in [2, 3] {
        // A fresh process would build a fresh net: the checkpoint brings it back.
        let mut n = net();
        let ck = Checkpoints {
            save: None,
            resume: Some(dir.clone()),
        };
        let (resumed, s) = train(&mut n, epochs, &ck, 0.5);
        if epochs == 3 {
            assert!(bits(&n) == bits(&straight), "the resumed weights differ");
            assert_eq!(s, state);
            assert_eq!(costs(&resumed), costs(&run));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn stop_ends_the_run_before_the_next_epoch_also_right_after_a_resume() {
    let data = training();
    let dir = scratch("stop");
    let plan = Plan {
        epochs: 10,
        mini_batch: 10,
        shuffle: false,
    };
    let ck = Checkpoints {
        save: Some(dir.clone()),
        resume: None,
    };
    let mut n = net();
    let mut run = Run::new("test", serde_json::json!({}));
    let mut seen = 0usize;
    run.epochs(
        &mut n,
        &data,
        &mut Sgd::new(0.1, Regularization::None),
        plan,
        &ck,
        &mut seen,
        |s| *s >= 2,
        |_, _, _, s| {
            *s += 1;
            Ok(())
        },
    )
    .unwrap();
    assert_eq!((seen, run.record.epochs.len()), (2, 2));
    // Resumed with the stop condition already met: no epoch is trained.
    let ck = Checkpoints {
        save: None,
        resume: Some(dir.clone()),
    };
    let mut run = Run::new("test", serde_json::json!({}));
    let mut again = 0usize;
    let mut called = false;
    run.epochs(
        &mut net(),
        &data,
        &mut Sgd::new(0.1, Regularization::None),
        plan,
        &ck,
        &mut again,
        |s| *s >= 2,
        |_, _, _, _| {
            called = true;
            Ok(())
        },
    )
    .unwrap();
    assert_eq!(again, 2, "the bookkeeping comes back from the checkpoint");
    assert!(!called);
    assert_eq!(run.record.epochs.len(), 2, "the record comes back too");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_resume_with_other_settings_is_refused_naming_the_setting() {
    let dir = scratch("settings");
    let mut n = net();
    train(
        &mut n,
        1,
        &Checkpoints {
            save: Some(dir.clone()),
            resume: None,
        },
        0.5,
    );
    let data = training();
    let mut run = Run::new("test", serde_json::json!({"eta": 0.1, "epochs": 2}));
    let plan = Plan {
        epochs: 2,
        mini_batch: 10,
        shuffle: true,
    };
    let ck = Checkpoints {
        save: None,
        resume: Some(dir.clone()),
    };
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
    let e = Checkpoints {
        save: None,
        resume: Some(empty.clone()),
    }
    .check(false)
    .unwrap_err();
    assert!(e.to_string().contains("no checkpoint there"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&empty);
}
