mod common;

use common::Scratch;
use nndl_report::{EpochRecord, ReportError, RunRecord};
use serde_json::json;

fn epoch(n: usize, validation: f64, test: f64) -> EpochRecord {
    EpochRecord {
        validation_accuracy: Some(validation),
        test_accuracy: Some(test),
        ..EpochRecord::new(n, 1000, 1.0, 1.5)
    }
}

#[test]
fn epoch_rate_is_images_over_training_seconds() {
    let e = EpochRecord::new(0, 50_000, 2.0, 3.0);
    assert_eq!(e.train_images_per_second, 25_000.0);
    assert_eq!(e.seconds, 3.0);
    // No time measured: a finite 0, not inf/NaN (which JSON cannot hold).
    assert_eq!(
        EpochRecord::new(0, 10, 0.0, 0.0).train_images_per_second,
        0.0
    );
    assert_eq!(
        EpochRecord::new(0, 10, f64::NAN, 0.0).train_images_per_second,
        0.0
    );
}

#[test]
fn push_epoch_recomputes_the_rate() {
    let mut run = RunRecord::new("t", json!({}));
    run.push_epoch(EpochRecord {
        epoch: 0,
        images: 300,
        train_seconds: 1.5,
        seconds: 2.0,
        train_images_per_second: 12345.0,
        ..Default::default()
    });
    assert_eq!(run.epochs[0].train_images_per_second, 200.0);
}

#[test]
fn best_validation_follows_network3_ties_go_to_the_later_epoch() {
    let mut run = RunRecord::new("network3", json!({}));
    run.push_epoch(epoch(0, 0.95, 0.94));
    run.push_epoch(epoch(1, 0.97, 0.96));
    run.push_epoch(epoch(2, 0.96, 0.99));
    run.push_epoch(epoch(3, 0.97, 0.965));
    run.push_epoch(EpochRecord {
        validation_accuracy: Some(f64::NAN),
        ..EpochRecord::new(4, 1000, 1.0, 1.0)
    });
    run.push_epoch(EpochRecord::new(5, 1000, 1.0, 1.0));
    assert_eq!(run.best_validation_accuracy, Some(0.97));
    assert_eq!(run.best_validation_epoch, Some(3));
    run.finish(10.0);
    // The test accuracy at the best-validation epoch, not the best test accuracy (0.99).
    assert_eq!(run.test_accuracy, Some(0.965));
}

#[test]
fn finish_without_validation_takes_the_last_test_accuracy() {
    let mut run = RunRecord::new("network", json!({}));
    run.push_epoch(EpochRecord {
        test_accuracy: Some(0.90),
        ..EpochRecord::new(0, 10, 1.0, 1.0)
    });
    run.push_epoch(EpochRecord {
        test_accuracy: Some(0.93),
        ..EpochRecord::new(1, 10, 1.0, 1.0)
    });
    run.push_epoch(EpochRecord::new(2, 10, 1.0, 1.0));
    run.finish(3.0);
    assert_eq!(run.best_validation_epoch, None);
    assert_eq!(run.test_accuracy, Some(0.93));
}

#[test]
fn finish_keeps_a_test_accuracy_the_program_set() {
    let mut run = RunRecord::new("network", json!({}));
    run.push_epoch(epoch(0, 0.9, 0.95));
    run.push_epoch(epoch(1, 0.8, 0.91));
    run.test_accuracy = Some(0.95); // e.g. network.py's best epoch
    run.finish(1.0);
    assert_eq!(run.test_accuracy, Some(0.95));
}

#[test]
fn run_rate_is_total_images_over_total_training_seconds() {
    let mut run = RunRecord::new("t", json!({}));
    run.push_epoch(EpochRecord::new(0, 100, 1.0, 9.0)); // 100 img/s
    run.push_epoch(EpochRecord::new(1, 300, 1.5, 9.0)); // 200 img/s
    run.finish(20.0);
    // 400 images in 2.5 training seconds; not the mean of the rates (150), nor over `seconds`.
    assert!((run.train_images_per_second - 160.0).abs() < 1e-9);
    assert_eq!(run.wall_seconds, 20.0);

    let mut empty = RunRecord::new("t", json!({}));
    empty.finish(0.0);
    assert_eq!(empty.train_images_per_second, 0.0);
    assert_eq!(empty.test_accuracy, None);
}

#[test]
fn json_has_the_design_keys_and_skips_unmonitored_metrics() {
    let mut run = RunRecord::new("network2", json!({"eta": 0.5, "epochs": 2}));
    run.push_epoch(EpochRecord {
        evaluation_accuracy: Some(0.9),
        training_cost: Some(0.4),
        ..EpochRecord::new(0, 50_000, 2.0, 2.5)
    });
    run.finish(2.6);
    let v: serde_json::Value = serde_json::from_str(&run.to_json().unwrap()).unwrap();
    for key in [
        "program",
        "settings",
        "epochs",
        "best_validation_accuracy",
        "test_accuracy",
        "train_images_per_second",
        "wall_seconds",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    assert_eq!(v["program"], "network2");
    assert_eq!(v["settings"]["eta"], 0.5);
    let e = v["epochs"][0].as_object().unwrap();
    let mut keys: Vec<&str> = e.keys().map(|k| k.as_str()).collect();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            "epoch",
            "evaluation_accuracy",
            "images",
            "seconds",
            "train_images_per_second",
            "train_seconds",
            "training_cost",
        ]
    );
    assert_eq!(e["train_images_per_second"], 25_000.0);
}

#[test]
fn write_then_read_round_trips() {
    let dir = Scratch::new("record-roundtrip");
    let path = dir.path().join("run.json");
    std::fs::write(&path, "an older run").unwrap();
    let mut run = RunRecord::new("network3", json!({"preset": "shallow", "seed": 7}));
    run.push_epoch(EpochRecord {
        training_cost: Some(0.25),
        training_accuracy: Some(0.91),
        evaluation_cost: Some(0.3),
        evaluation_accuracy: Some(0.9),
        validation_accuracy: Some(0.905),
        test_accuracy: Some(0.9012),
        ..EpochRecord::new(0, 50_000, 1.25, 1.75)
    });
    run.push_epoch(epoch(1, 0.93, 0.925));
    run.finish(4.5);
    run.write_json(&path).unwrap();
    let back = RunRecord::read_json(&path).unwrap();
    assert_eq!(back, run);
    assert!(std::fs::read_to_string(&path).unwrap().ends_with("}\n"));
    assert_eq!(dir.listing(), vec!["run.json"]);
}

#[test]
fn read_errors_name_the_file() {
    let dir = Scratch::new("record-errors");
    let missing = dir.path().join("missing.json");
    let err = RunRecord::read_json(&missing).unwrap_err();
    assert!(matches!(&err, ReportError::Read { path, .. } if path == &missing));
    assert!(err.to_string().contains("missing.json"), "{err}");

    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"program": "x", "settings": {}, "epochs": [{"epoch": 0}]}"#,
    )
    .unwrap();
    let err = RunRecord::read_json(&bad).unwrap_err();
    assert!(matches!(&err, ReportError::Parse { path, .. } if path == &bad));
    assert!(err.to_string().contains("bad.json"), "{err}");

    let garbage = dir.path().join("garbage.json");
    std::fs::write(&garbage, [0xff, 0xfe, 0x00]).unwrap();
    assert!(matches!(
        RunRecord::read_json(&garbage),
        Err(ReportError::Parse { .. })
    ));
}

#[test]
fn write_into_missing_directory_names_the_path() {
    let dir = Scratch::new("record-missing-dir");
    let path = dir.path().join("nope").join("run.json");
    let err = RunRecord::new("t", json!(null))
        .write_json(&path)
        .unwrap_err();
    assert!(matches!(&err, ReportError::Write { path: p, .. } if p == &path));
}
