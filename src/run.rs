//! The training run every program shares: the epoch loop (train with a progress bar, then the
//! program's own evaluation), the run record (`--json`, `--plot`), checkpoints after every
//! epoch and `--resume` to the same result as an uninterrupted run.
//!
//! A program says what it does after each epoch's training (evaluate, print the book's lines,
//! fill the epoch's record, update its own bookkeeping) and when to stop; [`Run::epochs`] does
//! the rest:
//!
//! ```no_run
//! use nndl::nn::{Cost, Init, Network, Regularization, Sgd};
//! use nndl::run::{Checkpoints, Plan, Run};
//!
//! # fn main() -> Result<(), nndl::run::RunError> {
//! let data = nndl::mnist::load_data("data/mnist")?;
//! let mut net = Network::<f32>::sigmoid_mlp(&[784, 30, 10], Cost::Quadratic, Init::Large, 0)?;
//! let mut run = Run::new("network", serde_json::json!({"eta": 3.0}));
//! let ck = Checkpoints::open(Some("runs/net.ckpt".into()), None, false)?;
//! let mut best = 0usize; // the program's bookkeeping, checkpointed with the weights
//! let plan = Plan::shuffled(30, 10);
//! let mut sgd = Sgd::new(3.0, Regularization::None);
//! run.epochs(&mut net, &data.training, &mut sgd, plan, &ck, &mut best, |_| false, |net, _, e, best| {
//!     let test = net.evaluate(&data.test, 1000, None)?;
//!     println!("Epoch {}: {} / {}", e.epoch, test.correct, test.total);
//!     *best = (*best).max(test.correct);
//!     e.test_accuracy = Some(test.accuracy());
//!     Ok(())
//! })?;
//! run.finish(Some("runs/net.json".as_ref()), None)?;
//! # Ok(())
//! # }
//! ```

use nn::checkpoint::{self, Checkpoint};
use nn::{Epoch, EpochStats, Network, NnError, Optimizer, OptimizerState, Samples};
use report::{EpochRecord, Progress, ReportError, RunRecord};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

/// Fails unless a save at `path` can be expected to succeed, by [`atomic_file`]'s rules, so a
/// bad output path stops a run before training rather than after: a device, fifo or open file
/// (`/dev/null`, `/dev/stdout`) is written in place and accepted as it is; a directory or a
/// read-only file is refused; otherwise the file's directory (a symlink's target's) must exist
/// and take a new file.
pub fn check_writable(flag: &'static str, path: &Path) -> Result<()> {
    let err = |why: String| RunError::Output {
        flag,
        path: path.to_path_buf(),
        why,
    };
    let target = match atomic_file::resolve(path) {
        Ok(atomic_file::Target::Replace(target)) => target,
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::IsADirectory => {
            return Err(err("is a directory, not a file name".into()))
        }
        Err(e) => return Err(err(e.to_string())),
    };
    let dir = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(err(format!("directory {} does not exist", dir.display())));
    }
    let probe = dir.join(format!(".nndl-write-probe.{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| err(format!("cannot write in {}: {e}", dir.display())))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Where a run saves its checkpoint after every epoch, and where it resumes from.
///
/// [`Checkpoints::open`] checks the directories and takes an advisory lock on the one written
/// ([`LOCK_FILE`] in it), held while any clone of the value lives: a second run checkpointing
/// in the same directory gets an error instead of silently replacing the first one's
/// checkpoints. [`Run::epochs`] opens what is not open yet, so no program can skip this.
#[derive(Debug, Clone, Default)]
pub struct Checkpoints {
    /// Save a checkpoint in this directory after every epoch.
    pub save: Option<PathBuf>,
    /// Continue the run checkpointed in this directory (and keep checkpointing there unless
    /// `save` names another).
    pub resume: Option<PathBuf>,
    /// The lock on [`Checkpoints::dir`], once open.
    lock: Option<Arc<File>>,
}

/// The lock file [`Checkpoints::open`] locks in the checkpoint directory.
pub const LOCK_FILE: &str = "checkpoint.lock";

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

impl Checkpoints {
    /// Checkpoints saved in `save` and resumed from `resume`, not yet opened.
    pub fn new(save: Option<PathBuf>, resume: Option<PathBuf>) -> Self {
        Checkpoints {
            save,
            resume,
            lock: None,
        }
    }

    /// [`Checkpoints::new`], checked and locked: see [`Checkpoints::check`].
    pub fn open(save: Option<PathBuf>, resume: Option<PathBuf>, ensemble: bool) -> Result<Self> {
        let mut ck = Checkpoints::new(save, resume);
        ck.check(ensemble)?;
        Ok(ck)
    }

    /// Whether the checkpoint directory is locked by this value (or there is none).
    pub fn is_open(&self) -> bool {
        self.dir().is_none() || self.lock.is_some()
    }

    /// The checkpoint directory, if checkpointing.
    pub fn dir(&self) -> Option<&Path> {
        self.save.as_deref().or(self.resume.as_deref())
    }

    /// The same directories for the `k`-th net of an ensemble: `DIR/net{k}`.
    pub fn for_net(&self, k: usize) -> Checkpoints {
        let sub = |d: &PathBuf| d.join(format!("net{k}"));
        // The parent's lock covers its nets' directories.
        Checkpoints {
            save: self.save.as_ref().map(sub),
            resume: self.resume.as_ref().map(sub),
            lock: self.lock.clone(),
        }
    }

    /// Checks before any work: `resume` names a checkpoint, and the checkpoint directory can
    /// be written (created if missing) without overwriting another run's checkpoint; then
    /// locks it, failing if another run holds it. An `ensemble` keeps each net's checkpoint
    /// in `DIR/net{k}`.
    pub fn check(&mut self, ensemble: bool) -> Result<()> {
        let first = |d: &Path| {
            if ensemble {
                d.join("net0")
            } else {
                d.to_path_buf()
            }
        };
        if let Some(r) = &self.resume {
            if !checkpoint::exists(first(r)) {
                return Err(RunError::Resume {
                    dir: r.clone(),
                    why: format!(
                        "no checkpoint there ({} is missing)",
                        checkpoint::path(first(r)).display()
                    ),
                });
            }
        }
        if let Some(d) = self.dir().map(Path::to_path_buf) {
            let d = d.as_path();
            if d.exists() && !d.is_dir() {
                return Err(RunError::Output {
                    flag: "--checkpoint",
                    path: d.to_path_buf(),
                    why: "is a file, not a directory".into(),
                });
            }
            // Like mkdir: the parent must exist (a typo in it is an error, not a new tree).
            if !d.is_dir() {
                std::fs::create_dir(d).map_err(|e| RunError::Output {
                    flag: "--checkpoint",
                    path: d.to_path_buf(),
                    why: format!("cannot create it: {e}"),
                })?;
            }
            check_writable("--checkpoint", &checkpoint::path(d))?;
            if self.lock.is_none() {
                self.lock = Some(Arc::new(lock_dir(d)?));
            }
            if self.resume.is_none() && checkpoint::exists(first(d)) {
                return Err(RunError::Output {
                    flag: "--checkpoint",
                    path: d.to_path_buf(),
                    why: format!(
                        "it holds another run's checkpoint; continue it with --resume {0}, or pick an empty directory",
                        d.display()
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Takes the advisory lock of checkpoint directory `d` (released when the file closes, so a
/// killed run never leaves it held).
fn lock_dir(d: &Path) -> Result<File> {
    let path = d.join(LOCK_FILE);
    let err = |why: String| RunError::Output {
        flag: "--checkpoint",
        path: d.to_path_buf(),
        why,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| err(format!("cannot open its lock file {LOCK_FILE}: {e}")))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(err(
            "another run is checkpointing there (it holds the directory's lock): wait for it to end or pick another directory".into(),
        )),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(err(format!("cannot lock {LOCK_FILE}: {e}")))
        }
    }
}

/// How many epochs, of what mini-batch, shuffled or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Epochs in all (a resumed run trains those its checkpoint has not done).
    pub epochs: usize,
    /// Samples per step.
    pub mini_batch: usize,
    /// Shuffle the training set before every epoch (network3 does not).
    pub shuffle: bool,
}

impl Plan {
    /// `epochs` epochs of `mini_batch`-sample steps, the training set shuffled before each.
    pub fn shuffled(epochs: usize, mini_batch: usize) -> Self {
        Plan {
            epochs,
            mini_batch,
            shuffle: true,
        }
    }
}

/// The learning-rate schedule chapter 3 proposes: halve eta each time the validation
/// accuracy has not improved for `patience` epochs, and stop when a halving would take it to
/// `1 / 2^halvings` of its start (10 and 7, i.e. 1/128, in the book).
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct EtaSchedule {
    /// Epochs without improvement before each halving.
    pub patience: usize,
    /// The halving that would reach `1 / 2^halvings` of the start ends the run instead.
    pub halvings: u32,
    best: Option<f64>,
    since: usize,
    done: u32,
}

/// What an [`EtaSchedule`] says after an epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EtaChange {
    /// Go on at the same learning rate.
    Keep,
    /// Halve the learning rate.
    Halve,
    /// End the run.
    Stop,
}

impl EtaSchedule {
    /// The book's: patience 10, stop at 1/128.
    pub fn book() -> Self {
        Self::new(10, 7)
    }

    /// Halve after `patience` epochs without improvement; stop at `1 / 2^halvings`.
    pub fn new(patience: usize, halvings: u32) -> Self {
        EtaSchedule {
            patience: patience.max(1),
            halvings: halvings.max(1),
            best: None,
            since: 0,
            done: 0,
        }
    }

    /// Whether the schedule has ended the run.
    pub fn finished(&self) -> bool {
        self.done >= self.halvings
    }

    /// Takes the epoch's validation accuracy and says what to do.
    pub fn observe(&mut self, accuracy: f64) -> EtaChange {
        if self.best.is_none_or(|b| accuracy > b) {
            self.best = Some(accuracy);
            self.since = 0;
            return EtaChange::Keep;
        }
        self.since += 1;
        if self.since < self.patience {
            return EtaChange::Keep;
        }
        self.since = 0;
        self.done += 1;
        if self.done >= self.halvings {
            EtaChange::Stop
        } else {
            EtaChange::Halve
        }
    }
}

/// A learning rate set before every epoch from the starting one: `eta * gamma^epoch`, or a
/// cosine from `eta` down to `floor * eta` over `epochs` (SGDR without restarts).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LrDecay {
    /// `eta * gamma^epoch`.
    Exponential {
        /// The factor per epoch.
        gamma: f64,
    },
    /// `floor*eta + (1-floor)*eta*(1 + cos(pi * epoch / epochs))/2`.
    Cosine {
        /// Epochs to reach the floor (the run's length).
        epochs: usize,
        /// The last learning rate as a fraction of the first.
        floor: f64,
    },
}

impl LrDecay {
    /// The learning rate of epoch `epoch` (from 0) as a fraction of the starting one.
    pub fn factor(self, epoch: usize) -> f64 {
        match self {
            LrDecay::Exponential { gamma } => gamma.powi(epoch.min(i32::MAX as usize) as i32),
            LrDecay::Cosine { epochs, floor } => {
                let x = (epoch as f64 / epochs.max(1) as f64).min(1.0);
                floor + (1.0 - floor) * 0.5 * (1.0 + (std::f64::consts::PI * x).cos())
            }
        }
    }

    /// Parses `exp:GAMMA`, `cosine` or `cosine:FLOOR` (cosine over `epochs`).
    pub fn parse(s: &str, epochs: usize) -> std::result::Result<Self, String> {
        let (kind, arg) = s.split_once(':').unwrap_or((s, ""));
        let number = |what: &str| -> std::result::Result<f64, String> {
            arg.parse::<f64>()
                .map_err(|_| format!("{what} in {s:?} is not a number"))
        };
        let d = match kind {
            "exp" => LrDecay::Exponential {
                gamma: number("the factor")?,
            },
            "cosine" if arg.is_empty() => LrDecay::Cosine { epochs, floor: 0.0 },
            "cosine" => LrDecay::Cosine {
                epochs,
                floor: number("the floor")?,
            },
            _ => return Err(format!("{s:?}: expected exp:GAMMA, cosine or cosine:FLOOR")),
        };
        let ok = match d {
            LrDecay::Exponential { gamma } => gamma > 0.0 && gamma <= 1.0,
            LrDecay::Cosine { floor, .. } => (0.0..=1.0).contains(&floor),
        };
        if ok {
            Ok(d)
        } else {
            Err(format!(
                "{s:?}: the factor must be in (0, 1], the floor in [0, 1]"
            ))
        }
    }
}

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

    /// Trains `net` for the epochs of `plan` not yet done. With `ck.resume` and a checkpoint
    /// there, first loads its weights, random state, `state` (the program's bookkeeping) and
    /// the run so far. Before each epoch `stop(state)` may end the run (early stopping); after
    /// each epoch's training `after(net, stats, epoch_record, state)` evaluates and fills the
    /// epoch's record, on the optimiser's weight average if it keeps one
    /// ([`Optimizer::swap_averaged`]); the loop then records the epoch and saves the checkpoint
    /// (the trained weights, the average in the optimiser's state).
    #[allow(clippy::too_many_arguments)]
    pub fn epochs<S, P>(
        &mut self,
        net: &mut Network<f32>,
        data: &S,
        opt: &mut dyn Optimizer<f32>,
        plan: Plan,
        ck: &Checkpoints,
        state: &mut P,
        stop: impl Fn(&P) -> bool,
        mut after: impl FnMut(&mut Network<f32>, &EpochStats, &mut EpochRecord, &mut P) -> Result<()>,
    ) -> Result<()>
    where
        S: Samples,
        P: Serialize + DeserializeOwned,
    {
        if self.decay.is_some() && self.schedule.is_some() {
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
            let (record, start) = restore_record(&c, dir, &self.record.settings)?;
            if !self.record_restored {
                (self.record, self.start) = (record, start);
            }
            let damaged = |what: &str, e: String| RunError::Checkpoint {
                file: checkpoint::path(dir),
                why: format!("damaged {what}: {e}"),
            };
            let program = c.state.get("program").cloned().unwrap_or(Value::Null);
            *state = serde_json::from_value(program)
                .map_err(|e| damaged("program state", e.to_string()))?;
            let saved = OptimizerState {
                scalars: c.state.get("optimizer").cloned().unwrap_or(Value::Null),
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
                self.schedule = Some(
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
        for index in first..plan.epochs {
            if stop(state) || self.schedule.as_ref().is_some_and(EtaSchedule::finished) {
                break;
            }
            if let Some(d) = self.decay {
                opt.set_learning_rate(eta0 * d.factor(index));
            }
            let t = Instant::now();
            let mut bar = Progress::new(data.len() as u64, &format!("epoch {index}"));
            let mut last = 0;
            let epoch = Epoch {
                index,
                mini_batch: plan.mini_batch,
                shuffle: plan.shuffle,
            };
            let stats = net.train_epoch(data, opt, epoch, |done| {
                bar.inc((done - last) as u64);
                last = done;
            });
            bar.finish();
            let stats = stats?;
            let mut e = EpochRecord::new(index, stats.images, stats.seconds, 0.0);
            // Evaluation (and `--save`) sees the optimiser's weight average if it keeps one.
            let averaged = opt.swap_averaged(net.graph_mut())?;
            after(net, &stats, &mut e, state)?;
            if averaged {
                opt.swap_averaged(net.graph_mut())?;
            }
            let mut scheduled_stop = false;
            let accuracy = e.validation_accuracy.or(e.evaluation_accuracy);
            if let (Some(s), Some(acc)) = (self.schedule.as_mut(), accuracy) {
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
            self.record.push_epoch(e);
            if let Some(dir) = ck.dir() {
                let program = serde_json::to_value(&*state).map_err(|e| RunError::Checkpoint {
                    file: checkpoint::path(dir),
                    why: format!("cannot record the program state: {e}"),
                })?;
                let optimizer = opt.state();
                let run_state = serde_json::json!({
                    "program": program,
                    "record": self.record,
                    "wall_seconds": self.start.elapsed().as_secs_f64(),
                    "optimizer": optimizer.scalars,
                    "eta": opt.learning_rate(),
                    "schedule": self.schedule,
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
        Ok(())
    }

    /// Stops the clock and writes the JSON record and the plot (titled) where asked.
    pub fn finish(&mut self, json: Option<&Path>, plot: Option<(&Path, &str)>) -> Result<()> {
        self.record.finish(self.start.elapsed().as_secs_f64());
        if let Some(p) = json {
            self.record.write_json(p)?;
        }
        if let Some((p, title)) = plot {
            report::plot_png(&self.record, p, title)?;
        }
        Ok(())
    }
}
