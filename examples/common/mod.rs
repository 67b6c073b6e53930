//! What every training example shares: the flags of DESIGN.md §4, data loading, threads,
//! an epoch with a progress bar, and the run record (`--json`, `--plot`).
#![allow(dead_code)]

use anyhow::{Context, Result};
use nn::{EpochStats, Network, Regularization, Samples};
use report::{EpochRecord, Progress, RunRecord};
use std::path::PathBuf;
use std::time::Instant;

/// The flags every training example takes (defaults are each program's own).
#[derive(clap::Args, Debug, Clone)]
pub struct Common {
    /// Epochs to train.
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Mini-batch size.
    #[arg(long = "mini-batch")]
    pub mini_batch: Option<usize>,
    /// Learning rate eta.
    #[arg(long)]
    pub eta: Option<f64>,
    /// L2 regularisation lambda.
    #[arg(long)]
    pub lambda: Option<f64>,
    /// Hidden layer size.
    #[arg(long)]
    pub hidden: Option<usize>,
    /// Seed of initialisation, shuffling and dropout (same seed, same result).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Train on the first N training images only (quick runs).
    #[arg(long = "train-limit")]
    pub train_limit: Option<usize>,
    /// Directory with the MNIST files (else $NNDL_DATA, else data/mnist upward from here).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Download missing MNIST files from the mirrors (checked against the official MD5s).
    #[arg(long)]
    pub download: bool,
    /// Worker threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Write the run's settings, per-epoch metrics and final figures as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Plot accuracy and cost per epoch to this PNG.
    #[arg(long)]
    pub plot: Option<PathBuf>,
}

impl Common {
    /// Sets the thread count (rayon's global pool).
    pub fn init_threads(&self) -> Result<usize> {
        if let Some(n) = self.threads {
            if n == 0 {
                anyhow::bail!("--threads must be at least 1");
            }
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build_global()
                .context("setting the thread count")?;
        }
        Ok(rayon::current_num_threads())
    }

    /// The book's split, the training set cut to `--train-limit`.
    pub fn load(&self, expanded: bool) -> Result<mnist::MnistData> {
        let (dir, report) = mnist::prepare_data_dir(self.data.as_deref(), self.download)?;
        if let Some(r) = report {
            eprintln!("{r}");
        }
        let mut data = if expanded {
            mnist::load_data_expanded(&dir)?
        } else {
            mnist::load_data(&dir)?
        };
        if let Some(n) = self.train_limit {
            if n == 0 {
                anyhow::bail!("--train-limit must be at least 1");
            }
            data.training = data.training.take(n.min(data.training.len()));
        }
        Ok(data)
    }

    /// Writes the JSON record and the plot if asked for.
    pub fn finish(&self, record: &mut RunRecord, start: Instant, title: &str) -> Result<()> {
        record.finish(start.elapsed().as_secs_f64());
        if let Some(p) = &self.json {
            record.write_json(p)?;
        }
        if let Some(p) = &self.plot {
            report::plot_png(record, p, title)?;
        }
        Ok(())
    }
}

/// One training epoch with a progress bar on stderr (shown only on a terminal).
#[allow(clippy::too_many_arguments)]
pub fn train_epoch<S: Samples>(
    net: &mut Network<f32>,
    data: &S,
    mini_batch: usize,
    eta: f64,
    reg: Regularization,
    shuffle: bool,
    epoch: usize,
) -> Result<EpochStats> {
    let mut bar = Progress::new(data.len() as u64, &format!("epoch {epoch}"));
    let mut last = 0;
    let stats = net.train_epoch(data, mini_batch, eta, reg, shuffle, epoch, |done| {
        bar.inc((done - last) as u64);
        last = done;
    });
    bar.finish();
    Ok(stats?)
}

/// An epoch's record with its timings.
pub fn epoch_record(epoch: usize, stats: &EpochStats, started: Instant) -> EpochRecord {
    EpochRecord::new(
        epoch,
        stats.images,
        stats.seconds,
        started.elapsed().as_secs_f64(),
    )
}

/// Runs `body`, printing an error as one line and exiting with code 2.
pub fn exit_on_error(body: impl FnOnce() -> Result<()>) {
    if let Err(e) = body() {
        eprintln!("error: {e:#}");
        std::process::exit(2);
    }
}
