//! The JSON record of one training run (`--json`).

use std::fs;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{save, ReportError};

/// What one epoch trained on, how long it took, and whatever was monitored after it.
///
/// Accuracies are fractions in [0, 1]; costs are the cost function's value over the data set.
/// Metrics that were not monitored are `None` and left out of the JSON.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// The epoch's number, as the program prints it (`Epoch 3: ...`).
    pub epoch: usize,
    /// Training images processed in this epoch.
    pub images: usize,
    /// Seconds spent training (the SGD steps), without monitoring.
    pub train_seconds: f64,
    /// Seconds for the whole epoch, monitoring included.
    pub seconds: f64,
    /// `images / train_seconds` (0 when no time was measured).
    pub train_images_per_second: f64,
    /// Cost on the training data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_cost: Option<f64>,
    /// Accuracy on the training data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training_accuracy: Option<f64>,
    /// Cost on the evaluation data (network2's `evaluation_data`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation_cost: Option<f64>,
    /// Accuracy on the evaluation data (network2's `evaluation_data`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation_accuracy: Option<f64>,
    /// Accuracy on the validation set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_accuracy: Option<f64>,
    /// Accuracy on the test set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_accuracy: Option<f64>,
    /// Chapter 5's speed of learning: `||dC/db^l||` of each hidden layer after the epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layer_speeds: Option<Vec<f64>>,
}

impl EpochRecord {
    /// An epoch that trained on `images` images in `train_seconds`, `seconds` in all; no metrics yet.
    ///
    /// Set the monitored metrics with struct update syntax:
    /// `EpochRecord { test_accuracy: Some(0.95), ..EpochRecord::new(0, 50_000, 2.1, 2.4) }`.
    pub fn new(epoch: usize, images: usize, train_seconds: f64, seconds: f64) -> Self {
        EpochRecord {
            epoch,
            images,
            train_seconds,
            seconds,
            train_images_per_second: rate(images, train_seconds),
            ..EpochRecord::default()
        }
    }
}

/// `images / seconds`, or 0 when the time is zero, negative or not finite (keeps the JSON finite).
fn rate(images: usize, seconds: f64) -> f64 {
    if seconds > 0.0 && seconds.is_finite() {
        images as f64 / seconds
    } else {
        0.0
    }
}

/// One run of an example program: its settings, its epochs, and the figures it reports.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The program's name, e.g. `"network2"`.
    pub program: String,
    /// Every flag's value, as the program chooses to record them.
    pub settings: serde_json::Value,
    /// One record per epoch, in order.
    pub epochs: Vec<EpochRecord>,
    /// The highest validation accuracy of any epoch (network3's rule: ties go to the later epoch).
    pub best_validation_accuracy: Option<f64>,
    /// The epoch of [`RunRecord::best_validation_accuracy`].
    pub best_validation_epoch: Option<usize>,
    /// The figure the book would report, as a fraction; see [`RunRecord::finish`].
    pub test_accuracy: Option<f64>,
    /// Training images per second over the whole run (all images / all training seconds).
    pub train_images_per_second: f64,
    /// Wall-clock seconds of the whole run.
    pub wall_seconds: f64,
}

impl RunRecord {
    /// An empty record for `program` run with `settings` (e.g. `serde_json::json!({"eta": 0.5})`).
    pub fn new(program: impl Into<String>, settings: serde_json::Value) -> Self {
        RunRecord {
            program: program.into(),
            settings,
            ..RunRecord::default()
        }
    }

    /// Appends an epoch, recomputing its images/s from `images` and `train_seconds`, and tracks
    /// the best validation accuracy.
    ///
    /// As in network3.py, an epoch whose validation accuracy is at least the best so far becomes
    /// the best epoch (`>=`: ties go to the later epoch).
    pub fn push_epoch(&mut self, mut epoch: EpochRecord) {
        epoch.train_images_per_second = rate(epoch.images, epoch.train_seconds);
        if let Some(v) = epoch.validation_accuracy {
            if self.best_validation_accuracy.is_none_or(|best| v >= best) && !v.is_nan() {
                self.best_validation_accuracy = Some(v);
                self.best_validation_epoch = Some(epoch.epoch);
            }
        }
        self.epochs.push(epoch);
    }

    /// Closes the record: sets `wall_seconds`, the run's images/s, and, unless the program already
    /// set it, `test_accuracy`.
    ///
    /// The default `test_accuracy` is network3's figure when there was validation data: the
    /// test accuracy of the best-validation epoch; otherwise the last epoch's test accuracy.
    /// Programs that report another figure (network.py's best epoch) set `test_accuracy` first.
    pub fn finish(&mut self, wall_seconds: f64) {
        self.wall_seconds = wall_seconds;
        let images: usize = self.epochs.iter().map(|e| e.images).sum();
        let seconds: f64 = self.epochs.iter().map(|e| e.train_seconds).sum();
        self.train_images_per_second = rate(images, seconds);
        if self.test_accuracy.is_none() {
            let best = self.best_validation_epoch.and_then(|b| {
                self.epochs
                    .iter()
                    .rev()
                    .find(|e| e.epoch == b)
                    .and_then(|e| e.test_accuracy)
            });
            self.test_accuracy =
                best.or_else(|| self.epochs.iter().rev().find_map(|e| e.test_accuracy));
        }
    }

    /// The record as pretty-printed JSON, ending in a newline.
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        let mut s = serde_json::to_string_pretty(self)?;
        s.push('\n');
        Ok(s)
    }

    /// Writes the record as JSON to `path`, atomically (`atomic_file`).
    pub fn write_json(&self, path: impl AsRef<Path>) -> Result<(), ReportError> {
        let path = path.as_ref();
        let json = self.to_json().map_err(|source| ReportError::Serialize {
            path: path.to_path_buf(),
            source,
        })?;
        save(path, json.as_bytes())
    }

    /// Reads a record written by [`RunRecord::write_json`].
    pub fn read_json(path: impl AsRef<Path>) -> Result<RunRecord, ReportError> {
        let path = path.as_ref();
        let bytes = fs::read(path).map_err(|source| ReportError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|source| ReportError::Parse {
            path: path.to_path_buf(),
            source,
        })
    }
}
