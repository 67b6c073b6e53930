//! `nndl::run`: a run stopped after any epoch and resumed ends where an uninterrupted run
//! ends (weights, bookkeeping, per-epoch record), `stop` ends a run before its next epoch
//! (early stopping, also right after a resume), a resume with other settings is refused, and
//! chapter 3's learning-rate schedule halves and stops when it should, also across a resume
//! with momentum's velocities in flight.

mod mnist_slice;

use mnist_slice::training;
use nn::{Cost, Init, Momentum, Network, Regularization, Sgd};
use nndl::run::{Checkpoints, EtaChange, EtaSchedule, LrDecay, Run, RunError};
use std::path::PathBuf;

fn scratch(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("nndl-run-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn saving(dir: &std::path::Path) -> Checkpoints {
    Checkpoints::new(Some(dir.to_path_buf()), None)
}

fn resuming(dir: &std::path::Path) -> Checkpoints {
    Checkpoints::new(None, Some(dir.to_path_buf()))
}

fn net() -> Network<f32> {
    Network::sigmoid_mlp(&[784, 16, 10], Cost::CrossEntropy, Init::ScaledByInputs, 5).unwrap()
}

/// Trains up to `epochs` with `ck`; the bookkeeping is (epochs seen, best cost so far).
fn train(net: &mut Network<f32>, epochs: usize, ck: &Checkpoints, eta: f64) -> (Run, (usize, f64)) {
    let (run, state, _) = train_decayed(net, epochs, ck, eta, None);
    (run, state)
}

/// [`train`] with eta set by `decay` before every epoch; also returns the last eta.
fn train_decayed(
    net: &mut Network<f32>,
    epochs: usize,
    ck: &Checkpoints,
    eta: f64,
    decay: Option<LrDecay>,
) -> (Run, (usize, f64), f64) {
    let data = training().take(500);
    let mut run = Run::new("test", serde_json::json!({"eta": eta, "epochs": epochs}));
    run.decay = decay;
    let mut sgd = Sgd::new(eta, Regularization::None);
    let state = run
        .train(net, &data, &mut sgd)
        .epochs(epochs)
        .mini_batch(10)
        .checkpoints(ck)
        .state((0usize, f64::INFINITY))
        .each_epoch(|end| {
            let (s, stats) = (&mut *end.state, end.stats);
            *s = (s.0 + 1, s.1.min(stats.mean_cost));
            end.record.training_cost = Some(stats.mean_cost);
            Ok(())
        })
        .unwrap();
    (run, state, sgd.eta)
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
    let mut run = Run::new("test", serde_json::json!({}));
    let mut ran = false;
    let mut sgd = Sgd::new(0.1, Regularization::None);
    let mut n = net();
    let seen = run
        .train(&mut n, &data, &mut sgd)
        .epochs(10)
        .mini_batch(10)
        .shuffle(false)
        .checkpoints(ck)
        .state(0usize)
        .stop_when(|s| *s >= 2)
        .each_epoch(|end| {
            *end.state += 1;
            ran = true;
            Ok(())
        })
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
    let ck = resuming(&dir);
    let (mut n, mut sgd) = (net(), Sgd::new(0.1, Regularization::None));
    let err = run
        .train(&mut n, &data, &mut sgd)
        .epochs(2)
        .mini_batch(10)
        .checkpoints(&ck)
        .state((0usize, 0.0f64))
        .each_epoch(|_| Ok(()))
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

#[test]
fn the_book_schedule_halves_after_ten_flat_epochs_and_stops_at_one_128th() {
    // Improves for 5 epochs (0..=4), then flat: every 10th flat epoch halves, the 7th
    // halving (1/128) stops instead.
    let mut s = EtaSchedule::book();
    let mut changes = Vec::new();
    for epoch in 0..200 {
        let acc = 0.9 + 0.01 * epoch.min(4) as f64;
        match s.observe(acc) {
            EtaChange::Keep => {}
            c => changes.push((epoch, c)),
        }
        if s.finished() {
            break;
        }
    }
    let halve = |e| (e, EtaChange::Halve);
    assert_eq!(
        changes,
        [
            halve(14),
            halve(24),
            halve(34),
            halve(44),
            halve(54),
            halve(64),
            (74, EtaChange::Stop)
        ]
    );
    // An improvement resets the count: 9 flat epochs, a better one, 9 flat: no change.
    let mut s = EtaSchedule::book();
    let accs = std::iter::once(0.5)
        .chain(std::iter::repeat_n(0.5, 9))
        .chain(std::iter::once(0.6))
        .chain(std::iter::repeat_n(0.6, 9));
    assert!(accs.map(|a| s.observe(a)).all(|c| c == EtaChange::Keep));
}

/// Momentum SGD with network2's weight decay under a schedule of patience 2 stopping at 1/8,
/// on a made-up validation accuracy that improves for 3 epochs and then stays flat: halvings
/// after epochs 4 and 6, the stop after epoch 8 (`epochs` caps the run). Returns the run and
/// the final eta.
fn scheduled(net: &mut Network<f32>, ck: &Checkpoints, epochs: usize) -> (Run, f64) {
    let data = training().take(300);
    let mut run = Run::new("test", serde_json::json!({"eta": 0.5}));
    run.schedule = Some(EtaSchedule::new(2, 3));
    let mut opt = Momentum::new(0.5, 0.9, Regularization::WeightDecay { lmbda: 1.0, n: 300 });
    run.train(net, &data, &mut opt)
        .epochs(epochs)
        .mini_batch(10)
        .checkpoints(ck)
        .each_epoch(|end| {
            let e = &mut *end.record;
            e.validation_accuracy = Some([0.1, 0.2, 0.3].get(e.epoch).copied().unwrap_or(0.3));
            Ok(())
        })
        .unwrap();
    (run, nn::Optimizer::<f32>::learning_rate(&opt))
}

#[test]
fn the_schedule_and_momentum_resume_exactly() {
    let mut straight = net();
    let (run, eta) = scheduled(&mut straight, &Checkpoints::default(), 20);
    assert_eq!((run.record.epochs.len(), eta), (9, 0.125));
    // Killed after epochs 5 (between halvings, velocities in flight) and resumed: the same
    // weights, eta and epochs; resumed again after the stop: nothing more is trained.
    let dir = scratch("schedule");
    scheduled(&mut net(), &saving(&dir), 6);
    let ck = Checkpoints::new(Some(dir.clone()), Some(dir.clone()));
    let mut n = net();
    let (resumed, eta) = scheduled(&mut n, &ck, 20);
    assert_eq!((resumed.record.epochs.len(), eta), (9, 0.125));
    assert!(
        n.parameter_bits() == straight.parameter_bits(),
        "resumed weights differ"
    );
    let mut again = net();
    let (after_stop, _) = scheduled(&mut again, &ck, 20);
    assert_eq!(after_stop.record.epochs.len(), 9);
    assert!(again.parameter_bits() == straight.parameter_bits());
    let _ = std::fs::remove_dir_all(&dir);
}

/// Up to `epochs` epochs of SGD from eta 0.8 under `exp:0.5` with `ck`; the run's final eta.
fn decayed(net: &mut Network<f32>, ck: &Checkpoints, epochs: usize) -> f64 {
    let decay = LrDecay::parse("exp:0.5", epochs).ok();
    train_decayed(net, epochs, ck, 0.8, decay).2
}

#[test]
fn lr_decay_sets_every_epochs_rate_from_the_first_also_after_a_resume() {
    let cosine = LrDecay::parse("cosine:0.1", 4).unwrap();
    let f: Vec<f64> = (0..=5).map(|e| cosine.factor(e)).collect();
    let want = [
        1.0,
        0.1 + 0.9 * (1.0 + std::f64::consts::FRAC_1_SQRT_2) / 2.0,
        0.55,
    ];
    for (a, b) in f.iter().zip(want) {
        assert!((a - b).abs() < 1e-12, "{f:?}");
    }
    assert!(
        (f[4] - 0.1).abs() < 1e-12 && f[5] == f[4],
        "the floor, then it stays: {f:?}"
    );
    assert_eq!(
        LrDecay::parse("cosine", 9),
        Ok(LrDecay::Cosine {
            epochs: 9,
            floor: 0.0
        })
    );
    for bad in ["exp:2", "exp:0", "cosine:x", "cosine:1.5", "linear"] {
        assert!(LrDecay::parse(bad, 9).is_err(), "{bad}");
    }
    // Epochs 0, 1, 2 at 0.8, 0.4, 0.2; stopped after epoch 0 and resumed: the same weights.
    let mut straight = net();
    assert_eq!(decayed(&mut straight, &Checkpoints::default(), 3), 0.2);
    let dir = scratch("decay");
    decayed(&mut net(), &saving(&dir), 1);
    let mut n = net();
    assert_eq!(decayed(&mut n, &resuming(&dir), 3), 0.2);
    assert!(n.parameter_bits() == straight.parameter_bits());
    let _ = std::fs::remove_dir_all(&dir);
}
