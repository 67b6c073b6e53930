//! The training run every program shares: the epoch loop (train with a progress bar, then the
//! program's own evaluation), the run record (`--json`, `--plot`), checkpoints after every
//! epoch and `--resume` to the same result as an uninterrupted run.
//!
//! A program says what it does after each epoch's training (evaluate, print the book's lines,
//! fill the epoch's record, update its own bookkeeping) and, if it stops early, when;
//! [`Run::train`] does the rest:
//!
//! ```no_run
//! use nndl::nn::{Cost, Init, Network, Regularization, Sgd};
//! use nndl::run::{Checkpoints, Run};
//!
//! # fn main() -> Result<(), nndl::run::RunError> {
//! let data = nndl::mnist::load_data("data/mnist")?;
//! let mut net = Network::<f32>::sigmoid_mlp(&[784, 30, 10], Cost::Quadratic, Init::Large, 0)?;
//! let mut run = Run::new("network", serde_json::json!({"eta": 3.0}));
//! let ck = Checkpoints::open(Some("runs/net.ckpt".into()), None, false)?;
//! let mut sgd = Sgd::new(3.0, Regularization::None);
//! // The best correct count is the program's bookkeeping, checkpointed with the weights.
//! let best = run
//!     .train(&mut net, &data.training, &mut sgd)
//!     .epochs(30)
//!     .mini_batch(10)
//!     .checkpoints(&ck)
//!     .state(0usize)
//!     .each_epoch(|end| {
//!         let test = end.net.evaluate(&data.test, 1000, None)?;
//!         println!("Epoch {}: {} / {}", end.record.epoch, test.correct, test.total);
//!         *end.state = (*end.state).max(test.correct);
//!         end.record.test_accuracy = Some(test.accuracy());
//!         Ok(())
//!     })?;
//! println!("best: {best}");
//! run.finish(Some("runs/net.json".as_ref()), None)?;
//! # Ok(())
//! # }
//! ```

mod best;
mod checkpoints;
mod schedule;

pub use best::{Best, Patience};
pub use checkpoints::{check_writable, Checkpoints, LOCK_FILE};
pub use schedule::{EtaChange, EtaSchedule, LrDecay};

use nn::checkpoint::{self, Checkpoint};
use nn::{Epoch, EpochStats, Network, NnError, Optimizer, OptimizerState, Samples};
use report::{EpochRecord, Progress, ReportError, RunRecord};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tensor::Float;

/// What can stop a training run.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Building, training, evaluating, saving or loading the network failed.
    #[error(transparent)]
    Nn(#[from] NnError),
    /// Writing the run record or the plot failed.
    #[error(transparent)]
    Report(#[from] ReportError),
    /// Loading the data failed.
    #[error(transparent)]
    Data(#[from] mnist::Error),
    /// An output path given by `flag` cannot be written.
    #[error("{flag} {}: {why}", path.display())]
    Output {
        /// The flag that named it (`--json`, `--checkpoint`, ...).
        flag: &'static str,
        /// The path.
        path: PathBuf,
        /// Why not.
        why: String,
    },
    /// `--resume` names no checkpoint, or a checkpoint of a run with other settings.
    #[error("--resume {}: {why}", dir.display())]
    Resume {
        /// The checkpoint directory.
        dir: PathBuf,
        /// What is wrong.
        why: String,
    },
    /// A checkpoint's run state is damaged.
    #[error("{}: {why}", file.display())]
    Checkpoint {
        /// The checkpoint file.
        file: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// Result of this module.
pub type Result<T> = std::result::Result<T, RunError>;

/// Settings a resumed run may change: more epochs (and, as they, how many of the last are
/// trained without augmentation), another thread count (noted), where the first run loaded its
/// start from (the checkpoint replaces it), and the speeds of learning measured before
/// training (a measurement, which sums in another order on other threads).
const RESUMABLE_CHANGES: [&str; 5] = [
    "epochs",
    "clean_epochs",
    "threads",
    "loaded",
    "layer_speeds_at_start",
];

/// A training run: its record (settings, epochs, final figures) and its clock.
pub struct Run {
    /// What `--json` writes.
    pub record: RunRecord,
    /// When the run began (a resumed run's clock goes on from its checkpoint's).
    pub start: Instant,
    /// Changes the learning rate by each epoch's validation (else evaluation) accuracy.
    pub schedule: Option<EtaSchedule>,
    /// Sets the learning rate before every epoch from the starting one (not with `schedule`).
    pub decay: Option<LrDecay>,
    /// An ensemble's record is its latest net's checkpoint's, restored once.
    record_restored: bool,
}

/// The run record and clock a checkpoint holds, after checking the run's settings match.
fn restore_record(ck: &Checkpoint, dir: &Path, settings: &Value) -> Result<(RunRecord, Instant)> {
    let file = checkpoint::path(dir);
    let damaged = |why: String| RunError::Checkpoint {
        file: file.clone(),
        why,
    };
    let record = ck
        .state
        .get("record")
        .ok_or_else(|| damaged("the checkpoint has no \"record\"".into()))?;
    let mut record: RunRecord = serde_json::from_value(record.clone())
        .map_err(|e| damaged(format!("damaged run record: {e}")))?;
    if let (Some(then), Some(now)) = (record.settings.as_object(), settings.as_object()) {
        for (k, v) in now {
            let was = then.get(k).unwrap_or(&Value::Null);
            if was == v || RESUMABLE_CHANGES.contains(&k.as_str()) {
                if was != v && k == "threads" {
                    eprintln!("note: the checkpointed run used {was} threads, this one {v}: conv layers will sum in another order");
                }
                continue;
            }
            return Err(RunError::Resume {
                dir: dir.to_path_buf(),
                why: format!(
                    "the checkpointed run had {k} = {was}, this one {v}; resume with the same flags"
                ),
            });
        }
    }
    // Every epoch done is in the record (an ensemble's holds its earlier nets' too).
    if ck.epochs_done > record.epochs.len() {
        return Err(damaged(format!(
            "damaged epoch count: {} epochs done but {} recorded",
            ck.epochs_done,
            record.epochs.len()
        )));
    }
    record.settings = settings.clone();
    // The clock goes on from the checkpoint's: a crafted or damaged count must not panic
    // (`Duration::from_secs_f64` does on 1e300) or move the clock before the machine's start.
    let wall = match ck.state.get("wall_seconds").map(Value::as_f64) {
        None => Duration::ZERO,
        Some(Some(w)) => Duration::try_from_secs_f64(w)
            .map_err(|_| damaged(format!("damaged wall_seconds {w:e}")))?,
        Some(None) => return Err(damaged("damaged wall_seconds: not a number".into())),
    };
    let start = Instant::now()
        .checked_sub(wall)
        .ok_or_else(|| damaged(format!("damaged wall_seconds {}", wall.as_secs_f64())))?;
    Ok((record, start))
}

impl Run {
    /// A new run of `program` with `settings` (every flag's value: a resumed run must have the
    /// same, except those it may change).
    pub fn new(program: &str, settings: Value) -> Run {
        Run {
            record: RunRecord::new(program, settings),
            start: Instant::now(),
            schedule: None,
            decay: None,
            record_restored: false,
        }
    }

    /// For an ensemble resumed from `dir`: the record and clock of whichever of `nets`
    /// (`dir/net{k}`) was checkpointed last, read without weights; each net's own checkpoint
    /// then gives its weights and bookkeeping.
    pub fn resume_ensemble(&mut self, dir: &Path, nets: usize) -> Result<()> {
        let latest = (0..nets)
            .rev()
            .map(|k| dir.join(format!("net{k}")))
            .find(|d| checkpoint::exists(d));
        if let Some(d) = latest {
            let ck = checkpoint::peek(&d)?;
            (self.record, self.start) = restore_record(&ck, &d, &self.record.settings)?;
        }
        self.record_restored = true;
        Ok(())
    }

    /// The training of `net` on `data`, each step taken by `opt`: set its epochs, mini-batch,
    /// checkpoints and bookkeeping on the [`Training`], then [`Training::each_epoch`] runs it.
    pub fn train<'a, T: Float, D: Samples>(
        &'a mut self,
        net: &'a mut Network<T>,
        data: &'a D,
        opt: &'a mut dyn Optimizer<T>,
    ) -> Training<'a, T, D> {
        Training {
            run: self,
            net,
            data,
            opt,
            epochs: 1,
            epoch: Epoch::shuffled(0, 10),
            checkpoints: None,
            state: (),
            keeps_state: false,
            stop: None,
        }
    }

    /// Stops the clock and writes the JSON record and the plot (titled) where asked.
    pub fn finish(&mut self, json: Option<&Path>, plot: Option<(&Path, &str)>) -> Result<()> {
        self.record.finish(self.start.elapsed().as_secs_f64());
        if let Some(p) = json {
            self.record.write_json(p)?;
        }
        if let Some((p, title)) = plot {
            #[cfg(feature = "plots")]
            report::plot_png(&self.record, p, title)?;
            #[cfg(not(feature = "plots"))]
            return Err(ReportError::Plot {
                path: p.to_path_buf(),
                message: format!("{title}: nndl was built without its `plots` feature"),
            }
            .into());
        }
        Ok(())
    }
}

/// A training of one net being set up by [`Run::train`]: how many epochs of what mini-batch,
/// where it checkpoints, and the program's bookkeeping; [`Training::each_epoch`] runs it.
///
/// Unset, it trains one epoch of shuffled mini-batches of 10 (network.py's and network2.py's),
/// without checkpoints or bookkeeping.
#[must_use = "nothing is trained until each_epoch"]
pub struct Training<'a, T: Float, D, S = ()> {
    run: &'a mut Run,
    net: &'a mut Network<T>,
    data: &'a D,
    opt: &'a mut dyn Optimizer<T>,
    epochs: usize,
    /// The shape of every epoch (its index set as the run goes).
    epoch: Epoch,
    checkpoints: Option<&'a Checkpoints>,
    state: S,
    /// Whether the program keeps bookkeeping: without, a checkpoint's is ignored.
    keeps_state: bool,
    stop: Option<StopTest<'a, S>>,
}

/// A program's early-stopping test on its bookkeeping ([`Training::stop_when`]).
type StopTest<'a, S> = Box<dyn Fn(&S) -> bool + 'a>;

/// What the program's code after an epoch's training gets: the net (on the optimiser's
/// weight average if it keeps one), the epoch's training figures, its record to fill and the
/// program's bookkeeping.
pub struct EpochEnd<'e, T: Float, S> {
    /// The trained net, to evaluate (or save).
    pub net: &'e mut Network<T>,
    /// The epoch's training time, images and mean cost.
    pub stats: &'e EpochStats,
    /// The epoch's line of the run record, its number in `record.epoch`.
    pub record: &'e mut EpochRecord,
    /// The program's bookkeeping ([`Training::state`]).
    pub state: &'e mut S,
}

impl<T: Float, S> EpochEnd<'_, T, S> {
    /// Records the epoch's mean training cost and prints it with the throughput: the epoch's
    /// line of a run that holds no images out to judge it by.
    pub fn report_training_cost(&mut self) {
        let stats = self.stats;
        self.record.training_cost = Some(stats.mean_cost);
        println!(
            "Epoch {}: training cost {:.4} ({:.0} images/s)",
            self.record.epoch,
            stats.mean_cost,
            stats.images_per_second()
        );
    }
}

impl<'a, T: Float, D: Samples> Training<'a, T, D> {
    /// Keeps `state` (the program's bookkeeping: a best score, epochs without improvement)
    /// across epochs, in the checkpoints and across a resume; [`Training::each_epoch`]
    /// returns it. Give it before [`Training::stop_when`], whose test reads it. A program
    /// that keeps none (its figures are in the run record) ignores a checkpoint's.
    pub fn state<S: Serialize + DeserializeOwned>(self, state: S) -> Training<'a, T, D, S> {
        debug_assert!(
            self.stop.is_none(),
            "state() replaces the stop test: give it first"
        );
        Training {
            run: self.run,
            net: self.net,
            data: self.data,
            opt: self.opt,
            epochs: self.epochs,
            epoch: self.epoch,
            checkpoints: self.checkpoints,
            state,
            keeps_state: true,
            stop: None,
        }
    }
}

impl<'a, T: Float, D: Samples, S: Serialize + DeserializeOwned> Training<'a, T, D, S> {
    /// Epochs in all: a resumed run trains those its checkpoint has not done.
    pub fn epochs(mut self, epochs: usize) -> Self {
        self.epochs = epochs;
        self
    }

    /// Samples per step.
    pub fn mini_batch(mut self, mini_batch: usize) -> Self {
        self.epoch.mini_batch = mini_batch;
        self
    }

    /// Whether the training set is shuffled before every epoch (network3.py does not).
    pub fn shuffle(mut self, shuffle: bool) -> Self {
        self.epoch.shuffle = shuffle;
        self
    }

    /// Saves a checkpoint after every epoch and resumes as `ck` says (opened here if the
    /// program did not open it before loading its data).
    pub fn checkpoints(mut self, ck: &'a Checkpoints) -> Self {
        self.checkpoints = Some(ck);
        self
    }

    /// Ends the run before the next epoch once `stop(state)` holds (early stopping; also
    /// right after a resume).
    pub fn stop_when(mut self, stop: impl Fn(&S) -> bool + 'a) -> Self {
        self.stop = Some(Box::new(stop));
        self
    }

    /// Trains the epochs not yet done and returns the bookkeeping. With a checkpoint to
    /// resume, first loads its weights, random state, bookkeeping and the run so far. After
    /// each epoch's training `after` evaluates and fills the epoch's record, on the
    /// optimiser's weight average if it keeps one ([`Optimizer::swap_averaged`]); the loop
    /// then applies the run's schedule, records the epoch and saves the checkpoint (the
    /// trained weights, the average in the optimiser's state).
    pub fn each_epoch(
        self,
        mut after: impl FnMut(&mut EpochEnd<'_, T, S>) -> Result<()>,
    ) -> Result<S> {
        let Training {
            run: this,
            net,
            data,
            opt,
            epochs,
            epoch: shape,
            checkpoints,
            mut state,
            keeps_state,
            stop,
        } = self;
        let none = Checkpoints::default();
        let ck = checkpoints.unwrap_or(&none);
        if this.decay.is_some() && this.schedule.is_some() {
            return Err(NnError::Config(
                "a learning-rate decay and the plateau schedule both set the learning rate: use one".into(),
            )
            .into());
        }
        // Every program's checkpoints pass the same checks and lock, opened here if the
        // program did not open them before loading its data.
        let opened;
        let ck = if ck.is_open() {
            ck
        } else {
            opened = Checkpoints::open(ck.save.clone(), ck.resume.clone(), false)?;
            &opened
        };
        // The decay's starting point: the optimiser's rate before any checkpoint changes it.
        let eta0 = opt.learning_rate();
        let mut first = 0;
        if let Some(dir) = ck.resume.as_deref().filter(|d| checkpoint::exists(d)) {
            let (c, tensors) = Checkpoint::load_with(net, dir)?;
            let (record, start) = restore_record(&c, dir, &this.record.settings)?;
            if !this.record_restored {
                (this.record, this.start) = (record, start);
            }
            let damaged = |what: &str, e: String| RunError::Checkpoint {
                file: checkpoint::path(dir),
                why: format!("damaged {what}: {e}"),
            };
            if keeps_state {
                let program = c.state.get("program").cloned().unwrap_or(Value::Null);
                state = serde_json::from_value(program)
                    .map_err(|e| damaged("program state", e.to_string()))?;
            }
            let scalars = c.state.get("optimizer").unwrap_or(&Value::Null);
            let saved = OptimizerState {
                scalars: OptimizerState::<T>::scalars_from_json(scalars)
                    .map_err(|e| damaged("optimizer state", e.to_string()))?,
                buffers: tensors,
            };
            opt.set_state(saved, net.graph(), &net.parameters())
                .map_err(|e| damaged("optimizer state", e.to_string()))?;
            match c.state.get("eta").map(Value::as_f64) {
                None => {}
                Some(Some(eta)) if eta.is_finite() && eta > 0.0 => opt.set_learning_rate(eta),
                Some(_) => {
                    return Err(damaged(
                        "learning rate",
                        "not a positive number".to_string(),
                    ))
                }
            }
            if let Some(s) = c.state.get("schedule").filter(|s| !s.is_null()) {
                this.schedule = Some(
                    serde_json::from_value(s.clone())
                        .map_err(|e| damaged("schedule", e.to_string()))?,
                );
            }
            first = c.epochs_done;
            eprintln!(
                "resuming from {} after {} epoch(s)",
                checkpoint::path(dir).display(),
                first
            );
        }
        for index in first..epochs {
            if stop.as_ref().is_some_and(|stop| stop(&state))
                || this.schedule.as_ref().is_some_and(EtaSchedule::finished)
            {
                break;
            }
            if let Some(d) = this.decay {
                opt.set_learning_rate(eta0 * d.factor(index));
            }
            let t = Instant::now();
            let mut bar = Progress::new(data.len() as u64, &format!("epoch {index}"));
            let mut last = 0;
            let epoch = Epoch { index, ..shape };
            let stats = net.train_epoch(data, opt, epoch, |done| {
                bar.inc((done - last) as u64);
                last = done;
            });
            bar.finish();
            let stats = stats?;
            let mut e = EpochRecord::new(index, stats.images, stats.seconds, 0.0);
            // Evaluation (and `--save`) sees the optimiser's weight average if it keeps one.
            let averaged = opt.swap_averaged(net.graph_mut())?;
            after(&mut EpochEnd {
                net: &mut *net,
                stats: &stats,
                record: &mut e,
                state: &mut state,
            })?;
            if averaged {
                opt.swap_averaged(net.graph_mut())?;
            }
            let mut scheduled_stop = false;
            let accuracy = e.validation_accuracy.or(e.evaluation_accuracy);
            if let (Some(s), Some(acc)) = (this.schedule.as_mut(), accuracy) {
                match s.observe(acc) {
                    EtaChange::Keep => {}
                    EtaChange::Halve => {
                        let eta = opt.learning_rate() / 2.0;
                        opt.set_learning_rate(eta);
                        eprintln!(
                            "no improvement in {} epochs: learning rate halved to {eta}",
                            s.patience
                        );
                    }
                    EtaChange::Stop => {
                        eprintln!("no improvement in {} epochs; the next halving would reach 1/{} of the starting learning rate: stopping", s.patience, 1u64 << s.halvings.min(63));
                        scheduled_stop = true;
                    }
                }
            }
            e.seconds = t.elapsed().as_secs_f64();
            this.record.push_epoch(e);
            if let Some(dir) = ck.dir() {
                let program = serde_json::to_value(&state).map_err(|e| RunError::Checkpoint {
                    file: checkpoint::path(dir),
                    why: format!("cannot record the program state: {e}"),
                })?;
                let optimizer = opt.state();
                let run_state = serde_json::json!({
                    "program": program,
                    "record": this.record,
                    "wall_seconds": this.start.elapsed().as_secs_f64(),
                    "optimizer": optimizer.scalars_json(),
                    "eta": opt.learning_rate(),
                    "schedule": this.schedule,
                });
                Checkpoint {
                    epochs_done: index + 1,
                    state: run_state,
                }
                .save_with(net, &optimizer.buffers, dir)?;
            }
            if scheduled_stop {
                break;
            }
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nn::{Cost, InMemory, Init, Regularization, Sgd};

    /// The run is not tied to f32: an f64 net trains through it, and the bookkeeping comes
    /// back with every epoch counted.
    #[test]
    fn an_f64_net_trains_through_the_run() {
        let data = InMemory {
            inputs: (0..40).map(|i| f64::from(i % 7) / 7.0).collect(),
            labels: (0..10).map(|i| i % 2).collect(),
            sample_len: 4,
        };
        let mut net =
            Network::<f64>::sigmoid_mlp(&[4, 3, 2], Cost::CrossEntropy, Init::Large, 1).unwrap();
        let mut sgd = Sgd::new(0.5, Regularization::None);
        let mut run = Run::new("test", serde_json::json!({}));
        let seen = run
            .train(&mut net, &data, &mut sgd)
            .epochs(3)
            .mini_batch(5)
            .state(0usize)
            .each_epoch(|end| {
                *end.state += 1;
                end.record.training_cost = Some(end.stats.mean_cost);
                Ok(())
            })
            .unwrap();
        assert_eq!((seen, run.record.epochs.len()), (3, 3));
        assert!(run.record.epochs.iter().all(|e| e.training_cost.is_some()));
    }
}
