//! The flags the programs share, as clap argument groups a program flattens
//! into its own `Args`. Defaults are each program's own: it sets them for `--help` with
//! `#[command(mut_arg(...))]` and reads `None` as its default. Every number is checked as it
//! is parsed (the parsers of [`crate::cli`]), before any data is loaded.

use super::Speeds;
use crate::run::{check_writable, Checkpoints, EtaSchedule, LrDecay, Run};
use anyhow::{Context, Result};
use nn::{Averaged, Momentum, Network, Optimizer, Regularization, Sgd};
use std::path::PathBuf;
use tensor::Float;

/// Where the MNIST files are: `--data DIR` and `--download`, the same on every program.
#[derive(clap::Args, Debug, Clone)]
pub struct DataDir {
    /// Directory with the MNIST files (else $NNDL_DATA, else data/mnist upward from here).
    #[arg(long = "data", value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Download missing MNIST files from the mirrors (checked against the official MD5s).
    #[arg(long)]
    pub download: bool,
}

impl DataDir {
    /// The data directory, after downloading any missing file when `--download` says so
    /// (the download's report, naming each file's mirror, goes to stderr).
    pub fn prepare(&self) -> Result<PathBuf> {
        let (dir, report) = mnist::prepare_data_dir(self.dir.as_deref(), self.download)?;
        if let Some(r) = report {
            eprintln!("{r}");
        }
        Ok(dir)
    }
}

/// The flags of every program that learns from MNIST, the SVM included: the data, how much
/// of the training set, its pixel scale, the threads and the JSON record.
#[derive(clap::Args, Debug, Clone)]
pub struct Base {
    /// Train on the first N training images only (quick runs; default: all).
    #[arg(long = "train-limit", value_parser = super::positive_count, allow_negative_numbers = true)]
    pub train_limit: Option<usize>,
    /// `--data` and `--download`.
    #[command(flatten)]
    pub data: DataDir,
    // No default here: each program shows its own in `--help` (`mut_arg`), or sets
    // `default_pixel_scale` when it depends on other flags (network3's presets).
    /// Pixel bytes become value/255 or value/256 (the book's mnist.pkl.gz stores value/256).
    #[arg(long = "pixel-scale", value_name = "255|256", value_parser = clap::value_parser!(u16).range(255..=256))]
    pub pixel_scale: Option<u16>,
    /// The program's pixel scale when `--pixel-scale` is not given (255 if left at 0).
    #[arg(skip)]
    pub default_pixel_scale: u16,
    /// Worker threads (default: all cores).
    #[arg(long, value_parser = super::positive_count, allow_negative_numbers = true)]
    pub threads: Option<usize>,
    /// Write the run's settings, per-epoch metrics and final figures as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

impl Base {
    /// Sets the thread count (rayon's global pool); returns the count in use.
    pub fn init_threads(&self) -> Result<usize> {
        if let Some(n) = self.threads {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build_global()
                .context("setting the thread count")?;
        }
        Ok(rayon::current_num_threads())
    }

    /// The pixel scale `--pixel-scale` names.
    pub fn scale(&self) -> mnist::Scale {
        match self.pixel_divisor() {
            256 => mnist::Scale::Div256,
            _ => mnist::Scale::Div255,
        }
    }

    /// 255 or 256: what pixel bytes are divided by.
    pub fn pixel_divisor(&self) -> u16 {
        match self.pixel_scale.unwrap_or(self.default_pixel_scale) {
            256 => 256,
            _ => 255,
        }
    }

    /// The first `--train-limit` images of `set` (all without the flag).
    pub fn limited(&self, set: mnist::Dataset) -> mnist::Dataset {
        match self.train_limit {
            Some(n) if n < set.len() => set.take(n),
            _ => set,
        }
    }
}

/// The flags every training program takes (with [`Base`]'s).
#[derive(clap::Args, Debug, Clone)]
pub struct Common {
    /// Epochs to train.
    #[arg(long, allow_negative_numbers = true)]
    pub epochs: Option<usize>,
    /// Mini-batch size.
    #[arg(long = "mini-batch", value_parser = super::positive_count, allow_negative_numbers = true)]
    pub mini_batch: Option<usize>,
    /// Learning rate eta.
    #[arg(long, value_parser = super::positive_rate, allow_negative_numbers = true)]
    pub eta: Option<f64>,
    /// Seed of initialisation, shuffling and dropout (same seed, same result).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// The flags the SVM shares.
    #[command(flatten)]
    pub base: Base,
    /// Refuse a net whose activations and scratch at the mini-batch (or the evaluation
    /// batch) would need more than this (e.g. 8G; default: 3/4 of the machine's memory).
    #[arg(long = "max-memory", value_name = "BYTES", value_parser = super::bytes)]
    pub max_memory: Option<u64>,
    /// Plot accuracy and cost per epoch to this PNG.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

impl Common {
    /// The book's split at the `--pixel-scale`, the training set cut to `--train-limit`;
    /// with `expanded`, the training set is the 250,000-image expanded one (expanded in
    /// memory from the cut set if the data directory lacks it). First checks that `--json`
    /// and `--plot` can be written: a typo there must not cost a finished run.
    pub fn load(&self, expanded: bool) -> Result<mnist::MnistData> {
        for (flag, path) in [("--json", &self.base.json), ("--plot", &self.plot)] {
            if let Some(p) = path {
                check_writable(flag, p)?;
            }
        }
        let b = &self.base;
        let dir = b.data.prepare()?;
        let data = mnist::load_data(&dir)?;
        let s = b.scale();
        let mut data = mnist::MnistData {
            training: b.limited(data.training).with_scale(s),
            validation: data.validation.with_scale(s),
            test: data.test.with_scale(s),
        };
        if expanded {
            data.training = b.limited(match mnist::load_data_expanded(&dir) {
                Ok(d) => d.training.with_scale(s),
                Err(_) => {
                    eprintln!("expanded training set not found in {}; expanding in memory (cargo run --release --example mnist_expand writes it)", dir.display());
                    mnist::expand(&data.training, 0)
                }
            });
        }
        Ok(data)
    }

    /// Checks that `net`'s activations and scratch at mini-batch `mini_batch` and evaluation
    /// batch `eval_batch` (as the run will use them: at most the data's size) fit in
    /// `--max-memory` (else `NNDL_MAX_MEMORY`, else 3/4 of the machine's), before training.
    pub fn check_memory<T: Float>(
        &self,
        net: &Network<T>,
        mini_batch: usize,
        eval_batch: usize,
    ) -> Result<()> {
        Ok(nn::memory::check_training(
            net,
            mini_batch,
            eval_batch,
            self.max_memory,
        )?)
    }

    /// The network of a `--layers` description for MNIST's images (log-likelihood cost, the
    /// book's network3 output), checked against the memory limit as
    /// [`Common::check_memory`] does, with the weights of `load` if given; its description
    /// printed.
    pub fn layers_net(
        &self,
        layers: &str,
        (mini_batch, eval_batch): (usize, usize),
        load: Option<&std::path::Path>,
    ) -> Result<Network<f32>> {
        let mut net = nn::spec::build::<f32>(
            layers,
            &mnist::IMAGE_DIMS,
            nn::Cost::LogLikelihood,
            self.seed,
        )?;
        self.check_memory(&net, mini_batch, eval_batch)?;
        if let Some(p) = load {
            nn::io::load_safetensors(&mut net, p)?;
        }
        println!("{}", net.describe());
        Ok(net)
    }

    /// A run of `program` with `settings` and the data's pixel scale (a resumed run must read
    /// the pixels as the first one did), for programs without [`Tuning`].
    pub fn plain_run(&self, program: &str, mut settings: serde_json::Value) -> Run {
        settings["pixel_scale"] = self.base.pixel_divisor().into();
        Run::new(program, settings)
    }

    /// Stops the run's clock and writes the JSON record and the plot (titled) if asked for.
    pub fn finish(&self, run: &mut Run, title: &str) -> Result<()> {
        run.finish(
            self.base.json.as_deref(),
            self.plot.as_deref().map(|p| (p, title)),
        )?;
        Ok(())
    }
}

/// `--hidden`: the hidden layer's size (programs whose net has one).
#[derive(clap::Args, Debug, Clone)]
pub struct Hidden {
    /// Hidden layer size.
    #[arg(long, value_parser = super::positive_count, allow_negative_numbers = true)]
    pub hidden: Option<usize>,
}

/// `--lambda`: L2 regularisation (network2's weight decay, network3's term in the cost).
#[derive(clap::Args, Debug, Clone)]
pub struct Lambda {
    /// L2 regularisation lambda.
    #[arg(long, value_parser = super::non_negative, allow_negative_numbers = true)]
    pub lambda: Option<f64>,
}

/// What the book's chapter 3 and later add to plain SGD: momentum, a weight average, the
/// learning-rate schedules and the speed-of-learning monitor (every program but the
/// custom-layer demo).
#[derive(clap::Args, Debug, Clone)]
pub struct Tuning {
    /// Momentum-based gradient descent with coefficient MU, 0 <= MU < 1 (chapter 3).
    #[arg(long, value_name = "MU", value_parser = super::unit_interval, allow_negative_numbers = true)]
    pub momentum: Option<f64>,
    /// Evaluate (and --save) an exponential moving average of the weights, decaying by DECAY
    /// per mini-batch (0.999: some thousand steps), instead of the weights themselves (0: the
    /// weights).
    #[arg(long, value_name = "DECAY", value_parser = super::unit_interval, allow_negative_numbers = true)]
    pub ema: Option<f64>,
    /// Halve eta each time validation accuracy has not improved for 10 epochs; stop when that
    /// would take it to 1/128 of its start (the schedule chapter 3 proposes).
    #[arg(long = "eta-schedule")]
    pub eta_schedule: bool,
    /// Set eta before every epoch: `exp:GAMMA` (eta * GAMMA^epoch) or `cosine[:FLOOR]` (a
    /// cosine from eta down to FLOOR * eta over the run's epochs).
    #[arg(long = "lr-decay", value_name = "exp:GAMMA|cosine[:FLOOR]")]
    pub lr_decay: Option<String>,
    /// Print and record ||dC/db|| of every hidden layer over the first N training images,
    /// before training and after each epoch (chapter 5's speed of learning; N = 1000 if not
    /// given, as the book).
    #[arg(long = "layer-speeds", value_name = "N", num_args = 0..=1, default_missing_value = "1000", value_parser = super::positive_count)]
    pub layer_speeds: Option<usize>,
}

impl Tuning {
    /// The run of `program` with `c`'s pixel scale, and `--momentum`, `--ema`,
    /// `--eta-schedule` and `--lr-decay` added to its settings when given and set on the run
    /// (the cosine's length is `settings["epochs"]`).
    pub fn run(&self, c: &Common, program: &str, mut settings: serde_json::Value) -> Result<Run> {
        let epochs = settings["epochs"].as_u64().unwrap_or(0) as usize;
        let decay = match &self.lr_decay {
            Some(s) => {
                Some(LrDecay::parse(s, epochs).map_err(|e| anyhow::anyhow!("--lr-decay {e}"))?)
            }
            None => None,
        };
        if decay.is_some() && self.eta_schedule {
            anyhow::bail!("--lr-decay and --eta-schedule both set eta: give one");
        }
        if let Some(s) = &self.lr_decay {
            settings["lr_decay"] = s.as_str().into();
        }
        if let Some(mu) = self.momentum {
            settings["momentum"] = mu.into();
        }
        if let Some(d) = self.ema {
            settings["ema"] = d.into();
        }
        if self.eta_schedule {
            settings["eta_schedule"] = true.into();
        }
        if let Some(n) = self.layer_speeds {
            settings["layer_speeds"] = n.into();
        }
        let mut run = c.plain_run(program, settings);
        if self.eta_schedule {
            run.schedule = Some(EtaSchedule::book());
        }
        run.decay = decay;
        Ok(run)
    }

    /// With `--layer-speeds N`: the speeds of `net` over the first N images of `data` before
    /// training, printed and kept in the run's settings; then [`Speeds::after_epoch`] does
    /// the same after each epoch.
    pub fn layer_speeds<T: Float>(
        &self,
        run: &mut Run,
        net: &mut Network<T>,
        data: &mnist::Dataset,
    ) -> Result<Speeds> {
        let speeds = Speeds::new(self.layer_speeds.unwrap_or(0).min(data.len()));
        if let Some(start) = speeds.measure(net, data, "Before training")? {
            run.record.settings["layer_speeds_at_start"] = start.into();
        }
        Ok(speeds)
    }

    /// SGD at `eta` with `reg`, or momentum SGD with `--momentum`; averaged with `--ema`.
    pub fn optimizer<T: Float>(&self, eta: f64, reg: Regularization) -> Box<dyn Optimizer<T>> {
        self.averaged(self.sgd(eta, reg))
    }

    /// SGD at `eta` with `reg`, or momentum SGD with `--momentum`.
    pub fn sgd<T: Float>(&self, eta: f64, reg: Regularization) -> Box<dyn Optimizer<T>> {
        match self.momentum {
            Some(mu) => Box::new(Momentum::new(eta, mu, reg)),
            None => Box::new(Sgd::new(eta, reg)),
        }
    }

    /// `opt`, keeping a weight average for evaluation if `--ema` asks for one (`--ema 0`:
    /// the average is the weights, so none is kept).
    pub fn averaged<T: Float>(&self, opt: Box<dyn Optimizer<T>>) -> Box<dyn Optimizer<T>> {
        match self.ema {
            Some(decay) if decay != 0.0 => Box::new(Averaged::new(opt, decay)),
            _ => opt,
        }
    }
}

/// `--checkpoint` and `--resume` (every training program but the custom-layer demo).
#[derive(clap::Args, Debug, Clone)]
pub struct Resume {
    /// After every epoch, save a checkpoint in DIR: weights, random state, epoch and the run so
    /// far, replaced atomically (a kill at any moment leaves the previous one).
    #[arg(long, value_name = "DIR")]
    pub checkpoint: Option<PathBuf>,
    /// Continue the run checkpointed in DIR after its last completed epoch, to the same result
    /// as an uninterrupted run (give the same flags; --epochs may differ). Keeps checkpointing
    /// there unless --checkpoint names another directory.
    #[arg(long, value_name = "DIR")]
    pub resume: Option<PathBuf>,
}

impl Resume {
    /// The flags as the library's checkpoint settings, checked and the directory locked for
    /// as long as the value lives (each net of an `ensemble` in `DIR/net{k}`).
    pub fn open(&self, ensemble: bool) -> Result<Checkpoints> {
        Ok(Checkpoints::open(
            self.checkpoint.clone(),
            self.resume.clone(),
            ensemble,
        )?)
    }
}
