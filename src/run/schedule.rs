//! The learning-rate schedules a run applies between epochs: chapter 3's plateau halving and
//! the per-epoch decays past the book.

use serde::Serialize;

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
