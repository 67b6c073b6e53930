//! The bookkeeping of the book's programs across epochs: network3.py's best epoch (which
//! the modern recipe shares: judged on validation, the test set read only at a new best, so
//! the test accuracy reported is never chosen on test) and network2.py's early stopping.

use super::EpochEnd;
use serde::{Deserialize, Serialize};
use tensor::Float;

/// network3.py's best epoch so far. Checkpointed as the triple `(validation, epoch, test)` it
/// always was, so checkpoints written before it had names still resume.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(from = "(f64, Option<usize>, f64)", into = "(f64, Option<usize>, f64)")]
pub struct Best {
    /// The best validation accuracy to date.
    pub validation: f64,
    /// Its epoch (none before the first).
    pub epoch: Option<usize>,
    /// The test accuracy at that epoch.
    pub test: f64,
}

impl From<(f64, Option<usize>, f64)> for Best {
    fn from((validation, epoch, test): (f64, Option<usize>, f64)) -> Self {
        Best {
            validation,
            epoch,
            test,
        }
    }
}

impl From<Best> for (f64, Option<usize>, f64) {
    fn from(b: Best) -> Self {
        (b.validation, b.epoch, b.test)
    }
}

impl Best {
    /// network3.py's end of an epoch: the validation accuracy printed (with the epoch's
    /// training images/s if `speed`) and recorded with the training cost, and when it is the
    /// best to date (ties included, as network3.py), the test accuracy there. Returns whether
    /// it was the best.
    pub fn judge<T: Float>(
        end: &mut EpochEnd<'_, T, Best>,
        data: &mnist::MnistData,
        eval_batch: usize,
        speed: bool,
    ) -> nn::Result<bool> {
        let e = &mut *end.record;
        let v = end
            .net
            .evaluate(&data.validation, eval_batch, None)?
            .accuracy();
        let rate = if speed {
            format!(" ({:.0} images/s)", end.stats.images_per_second())
        } else {
            String::new()
        };
        println!(
            "Epoch {}: validation accuracy {:.2}%{rate}",
            e.epoch,
            100.0 * v
        );
        e.validation_accuracy = Some(v);
        e.training_cost = Some(end.stats.mean_cost);
        if v < end.state.validation {
            return Ok(false);
        }
        println!("This is the best validation accuracy to date.");
        let test = end.net.evaluate(&data.test, eval_batch, None)?.accuracy();
        println!("The corresponding test accuracy is {:.2}%", 100.0 * test);
        *end.state = Best {
            validation: v,
            epoch: Some(e.epoch),
            test,
        };
        e.test_accuracy = Some(test);
        Ok(true)
    }

    /// network3.py's closing lines on the best epoch; its test accuracy (none if no epoch
    /// ran).
    pub fn report(&self) -> Option<f64> {
        let epoch = self.epoch?;
        println!(
            "Best validation accuracy of {:.2}% obtained at epoch {epoch}",
            100.0 * self.validation
        );
        println!("Corresponding test accuracy of {:.2}%", 100.0 * self.test);
        Some(self.test)
    }
}

/// network2.py's early stopping (chapter 3's exercise): the best correct count on the
/// evaluation data and the epochs since it. Checkpointed as the pair `(best, since)` it
/// always was.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "(usize, usize)", into = "(usize, usize)")]
pub struct Patience {
    /// The most images of the evaluation data classified right after any epoch.
    pub best: usize,
    /// Epochs since that one.
    pub since: usize,
}

impl From<(usize, usize)> for Patience {
    fn from((best, since): (usize, usize)) -> Self {
        Patience { best, since }
    }
}

impl From<Patience> for (usize, usize) {
    fn from(p: Patience) -> Self {
        (p.best, p.since)
    }
}

impl Patience {
    /// Takes an epoch's correct count: a new best, or one more epoch without improvement.
    pub fn observe(&mut self, correct: usize) {
        if correct > self.best {
            *self = Patience {
                best: correct,
                since: 0,
            };
        } else {
            self.since += 1;
        }
    }
}
