//! What every training example shares: the flags of DESIGN.md §4, data loading, threads,
//! an epoch with a progress bar, and the run record (`--json`, `--plot`).
#![allow(dead_code)]

use anyhow::{Context, Result};
use nn::{Epoch, EpochStats, Network, Optimizer, Samples};
use report::{EpochRecord, Progress, RunRecord};
use std::path::{Path, PathBuf};
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
    /// Pixel bytes become value/255 or value/256, as the book's mnist.pkl.gz stores them
    /// (default: 256 for network3's presets, 255 elsewhere).
    #[arg(long = "pixel-scale", value_name = "255|256", value_parser = clap::value_parser!(u16).range(255..=256))]
    pub pixel_scale: Option<u16>,
    /// The program's pixel scale when `--pixel-scale` is not given (255 if left at 0).
    #[arg(skip)]
    pub default_pixel_scale: u16,
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

    /// The book's split, the training set cut to `--train-limit`. First checks that `--json`
    /// and `--plot` can be written: a typo there must not cost a finished run.
    pub fn load(&self, expanded: bool) -> Result<mnist::MnistData> {
        for (flag, path) in [("--json", &self.json), ("--plot", &self.plot)] {
            if let Some(p) = path {
                check_writable(flag, p)?;
            }
        }
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
        Ok(self.scaled(data))
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

    /// `data`'s three sets at the `--pixel-scale`.
    pub fn scaled(&self, data: mnist::MnistData) -> mnist::MnistData {
        let s = self.scale();
        mnist::MnistData {
            training: data.training.with_scale(s),
            validation: data.validation.with_scale(s),
            test: data.test.with_scale(s),
        }
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

/// Fails unless a file can be created at `path` (its directory exists and takes a new file),
/// so a bad output path stops a run before training rather than after.
pub fn check_writable(flag: &str, path: &Path) -> Result<()> {
    if path.is_dir() {
        anyhow::bail!("{flag} {}: is a directory, not a file name", path.display());
    }
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        anyhow::bail!(
            "{flag} {}: directory {} does not exist",
            path.display(),
            dir.display()
        );
    }
    let probe = dir.join(format!(".nndl-write-probe.{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .with_context(|| {
            format!(
                "{flag} {}: cannot write in {}",
                path.display(),
                dir.display()
            )
        })?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// `--checkpoint` and `--resume` (network, network2, network3).
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

/// What a resumed run continues from.
pub struct Restored {
    /// Epochs already done: the next epoch's number.
    pub epochs_done: usize,
    /// The program's own bookkeeping (best accuracies, early stopping).
    pub program: serde_json::Value,
    /// The run record so far.
    pub record: RunRecord,
    /// When the run began, as if it had never stopped (for the record's wall time).
    pub start: Instant,
}

/// The run record and start of the checkpoint in `dir`, read without its weights: an
/// ensemble's record is the one its most recently saved net's checkpoint holds.
pub fn peek_record(dir: &Path, settings: &serde_json::Value) -> Result<(RunRecord, Instant)> {
    let r = restored(nn::checkpoint::peek(dir)?, dir, settings)?;
    Ok((r.record, r.start))
}

/// A checkpoint's program state, run record and start, after checking the run's settings
/// match the checkpointed run's.
fn restored(
    ck: nn::checkpoint::Checkpoint,
    dir: &Path,
    settings: &serde_json::Value,
) -> Result<Restored> {
    let file = nn::checkpoint::path(dir);
    let field = |k: &str| {
        ck.state
            .get(k)
            .cloned()
            .with_context(|| format!("{}: the checkpoint has no {k:?}", file.display()))
    };
    let mut record: RunRecord = serde_json::from_value(field("record")?)
        .with_context(|| format!("{}: damaged run record", file.display()))?;
    if let (Some(then), Some(now)) = (record.settings.as_object(), settings.as_object()) {
        for (k, v) in now {
            let was = then.get(k).unwrap_or(&serde_json::Value::Null);
            if was == v || RESUMABLE_CHANGES.contains(&k.as_str()) {
                if was != v && k == "threads" {
                    eprintln!("note: the checkpointed run used {was} threads, this one {v}: conv layers will sum in another order");
                }
                continue;
            }
            anyhow::bail!(
                "--resume {}: the checkpointed run had {k} = {was}, this one {v}; resume with the same flags",
                dir.display()
            );
        }
    }
    record.settings = settings.clone();
    let wall: f64 = serde_json::from_value(field("wall_seconds")?).unwrap_or(0.0);
    let start = Instant::now()
        .checked_sub(std::time::Duration::from_secs_f64(wall.max(0.0)))
        .unwrap_or_else(Instant::now);
    Ok(Restored {
        epochs_done: ck.epochs_done,
        program: field("program")?,
        record,
        start,
    })
}

/// Settings a resumed run may change: more epochs, another thread count (noted), where the
/// first run loaded its start from (the checkpoint replaces it).
const RESUMABLE_CHANGES: [&str; 3] = ["epochs", "threads", "loaded"];

impl Resume {
    /// The checkpoint directory, if checkpointing.
    pub fn dir(&self) -> Option<&Path> {
        self.checkpoint.as_deref().or(self.resume.as_deref())
    }

    /// The same flags for the `k`-th net of an ensemble: checkpoints in `DIR/net{k}`.
    pub fn for_net(&self, k: usize) -> Resume {
        let sub = |d: &PathBuf| d.join(format!("net{k}"));
        Resume {
            checkpoint: self.checkpoint.as_ref().map(sub),
            resume: self.resume.as_ref().map(sub),
        }
    }

    /// Checks before any work: `--resume` names a checkpoint, and the checkpoint directory
    /// can be written (created if missing) without overwriting another run's checkpoint.
    pub fn check(&self, ensemble: bool) -> Result<()> {
        if let Some(r) = &self.resume {
            let first = if ensemble { r.join("net0") } else { r.clone() };
            if !nn::checkpoint::exists(&first) {
                anyhow::bail!(
                    "--resume {}: no checkpoint there ({} is missing)",
                    r.display(),
                    nn::checkpoint::path(&first).display()
                );
            }
        }
        if let Some(d) = self.dir() {
            // Like mkdir: the parent must exist (a typo in it is an error, not a new tree).
            if !d.is_dir() {
                std::fs::create_dir(d)
                    .with_context(|| format!("--checkpoint {}: cannot create it", d.display()))?;
            }
            check_writable("--checkpoint", &nn::checkpoint::path(d))?;
            let first = if ensemble {
                d.join("net0")
            } else {
                d.to_path_buf()
            };
            if self.resume.is_none() && nn::checkpoint::exists(&first) {
                anyhow::bail!(
                    "--checkpoint {}: it holds another run's checkpoint; continue it with --resume {0}, or pick an empty directory",
                    d.display()
                );
            }
        }
        Ok(())
    }

    /// With `--resume` (and a checkpoint in the directory, for an ensemble's nets): loads
    /// the weights and random state into `net` and returns the rest, after checking the run's
    /// settings match the checkpointed run's.
    pub fn restore(
        &self,
        net: &mut Network<f32>,
        settings: &serde_json::Value,
    ) -> Result<Option<Restored>> {
        let Some(dir) = &self.resume else {
            return Ok(None);
        };
        if !nn::checkpoint::exists(dir) {
            return Ok(None);
        }
        let ck = nn::checkpoint::Checkpoint::load(net, dir)?;
        let r = restored(ck, dir, settings)?;
        eprintln!(
            "resuming from {} after {} epoch(s)",
            nn::checkpoint::path(dir).display(),
            r.epochs_done
        );
        Ok(Some(r))
    }

    /// After an epoch: saves the checkpoint (if checkpointing) with `program`'s bookkeeping and
    /// the run record; the settings of a resumed run are the record's.
    pub fn save(
        &self,
        net: &Network<f32>,
        epochs_done: usize,
        program: serde_json::Value,
        record: &RunRecord,
        start: Instant,
    ) -> Result<()> {
        let Some(dir) = self.dir() else {
            return Ok(());
        };
        let state = serde_json::json!({
            "program": program,
            "record": record,
            "wall_seconds": start.elapsed().as_secs_f64(),
        });
        nn::checkpoint::Checkpoint { epochs_done, state }.save(net, dir)?;
        Ok(())
    }
}

/// One training epoch with a progress bar on stderr (shown only on a terminal).
pub fn train_epoch<S: Samples>(
    net: &mut Network<f32>,
    data: &S,
    opt: &mut dyn Optimizer<f32>,
    epoch: Epoch,
) -> Result<EpochStats> {
    let mut bar = Progress::new(data.len() as u64, &format!("epoch {}", epoch.index));
    let mut last = 0;
    let stats = net.train_epoch(data, opt, epoch, |done| {
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
        eprintln!("error: {}", one_line(&format!("{e:#}")));
        std::process::exit(2);
    }
}

/// The command line parsed, or, on a mistake in it, clap's first line (`error: ...`) and a
/// pointer to `--help`, exit code 2. `--help` and `--version` print as usual.
pub fn parse_args<P: clap::Parser>() -> P {
    P::try_parse().unwrap_or_else(|e| {
        use clap::error::ErrorKind;
        if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
            e.exit();
        }
        let text = e.render().to_string();
        let first = text.lines().next().unwrap_or("error: bad arguments");
        eprintln!("{first} (see --help)");
        std::process::exit(2);
    })
}

/// A message of several lines (some errors list every place searched) as one line.
fn one_line(msg: &str) -> String {
    let mut out = String::new();
    for l in msg.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !out.is_empty() {
            out.push_str(if out.ends_with(':') { " " } else { "; " });
        }
        out.push_str(l);
    }
    out
}
