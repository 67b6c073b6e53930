//! The book's `mnist_svm.py`: an SVM (LIBSVM's C-SVC with the RBF kernel, what scikit-learn's
//! `svm.SVC()` runs) trained on the 50,000 training images and scored on the 10,000 test images.
//! The book reports 9,435 of 10,000 correct with scikit-learn's defaults of the time, C = 1 and
//! gamma = 1/784, on its pickled data whose pixels are value/256; those are the defaults here.
//!
//! ```text
//! cargo run --release --example mnist_svm                      # the book's run: ~9435 of 10000
//! cargo run --release --example mnist_svm -- --c 10 --gamma 0.02 --pixel-scale 255   # tuned
//! cargo run --release --example mnist_svm -- --search          # grid on validation, then retrain
//! cargo run --release --example mnist_svm -- --train-limit 5000 --save svm.model --json run.json
//! cargo run --release --example mnist_svm -- --load svm.model
//! ```
//!
//! Training runs LIBSVM's 45 one-vs-one binary problems in parallel, by default on kernel
//! matrices computed with a matrix product (`--kernels precomputed`; `--kernels libsvm` lets
//! LIBSVM evaluate them: exactly `svm_train`'s model, ~3x slower), and prediction
//! (LIBSVM's `svm_predict`) splits the test images across threads (`--threads`, default all
//! cores). Any failure (a bad parameter, missing data) is one line on stderr and exit status 2, as in
//! every other program.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Instant;

use anyhow::{anyhow, Context, Result};
use clap::Parser;
use nndl::cli::{self, Base};
use nndl::mnist::{self, Dataset, Scale};
use nndl::report::Steps;
use nndl::run::check_writable;
use nndl::svm::{self, ExplicitZeros, Features, KernelEvaluation, Model, Params, Problem};
use serde_json::{json, Value};

/// Pixels per image (28 x 28): the book's default gamma is 1/784.
const PIXELS: f64 = 784.0;

/// Pixels that are ink in at least this fraction of the training images are stored even where
/// zero (speed only).
const EXPLICIT_ZEROS_FRACTION: f64 = 0.4;

/// An SVM on MNIST: the book's chapter 1 baseline, on LIBSVM.
#[derive(Parser, Debug)]
#[command(version)]
#[command(about = "mnist_svm.py: chapter 1's SVM baseline, LIBSVM's RBF-kernel C-SVC")]
#[command(mut_arg("pixel_scale", |a| a.default_value("256").help("Pixel scale: 256 is the book's data (value/256, needed for its 9,435), 255 gives ink = 1.0 as most frameworks do")))]
#[command(mut_arg("train_limit", |a| a.help("Train on the first N training images only (default: all 50,000)")))]
#[command(mut_arg("json", |a| a.help("Write the run's settings, times and accuracy as JSON to this file")))]
struct Args {
    #[command(flatten)]
    base: Base,
    /// Penalty C of the C-SVC.
    #[arg(long, default_value_t = 1.0, allow_negative_numbers = true)]
    c: f64,
    /// RBF kernel gamma: a number (or a fraction such as 1/784), or `scale` for scikit-learn's
    /// current default 1/(784 * variance of the training pixels).
    #[arg(long, default_value = "1/784", allow_negative_numbers = true)]
    gamma: Gamma,
    /// Score on the first N test images only (default: all 10,000).
    #[arg(long = "test-limit", value_name = "N", value_parser = cli::positive_count)]
    test_limit: Option<usize>,
    /// LIBSVM's kernel cache per binary problem in MB (one problem per thread at a time).
    #[arg(long = "cache-mb", default_value_t = 500.0)]
    cache_mb: f64,
    /// Solver tolerance (LIBSVM's -e; scikit-learn's tol).
    #[arg(long, default_value_t = 1e-3)]
    eps: f64,
    /// How training gets kernel values: `precomputed` computes each binary problem's kernel
    /// matrix with one matrix product and gives it to LIBSVM's solver (~3x faster, ~2 GB per
    /// thread, same model to rounding); `libsvm` lets LIBSVM evaluate each value from
    /// the sparse rows (exactly svm_train's model).
    #[arg(long, value_enum, default_value = "precomputed")]
    kernels: KernelsArg,
    /// Store only the non-zero pixels. By default the pixels that are ink in at least 40% of
    /// the training images are stored even where zero, which makes LIBSVM's kernels ~25%
    /// faster and changes no result (see `svm::ExplicitZeros`).
    #[arg(long = "sparse-only")]
    sparse_only: bool,
    /// Write the trained model to this file (LIBSVM's format; written atomically).
    #[arg(long, value_name = "PATH")]
    save: Option<PathBuf>,
    /// Predict with this LIBSVM model file instead of training (give the --pixel-scale it was
    /// trained with).
    #[arg(long, value_name = "PATH", conflicts_with = "search")]
    load: Option<PathBuf>,
    /// Grid search: train on the first --search-train images for each (C, gamma) of the grid,
    /// score on the 10,000 validation images, then retrain the best pair on the training set.
    #[arg(long)]
    search: bool,
    /// Training images per grid point of --search.
    #[arg(long = "search-train", value_name = "N", default_value_t = 10_000)]
    search_train: usize,
    /// Values of C tried by --search.
    #[arg(long = "grid-c", value_delimiter = ',', default_value = "1,5,10")]
    grid_c: Vec<f64>,
    /// Values of gamma tried by --search (numbers).
    #[arg(
        long = "grid-gamma",
        value_delimiter = ',',
        default_value = "0.01,0.02,0.03,0.05"
    )]
    grid_gamma: Vec<f64>,
}

/// The `--kernels` value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum KernelsArg {
    /// LIBSVM evaluates each kernel value from the sparse rows.
    Libsvm,
    /// Kernel matrices from a matrix product, given to LIBSVM's solver.
    Precomputed,
}

/// The `--gamma` value.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Gamma {
    Value(f64),
    Scale,
}

impl std::fmt::Display for Gamma {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Gamma::Value(v) => write!(f, "{v}"),
            Gamma::Scale => f.write_str("scale"),
        }
    }
}

impl FromStr for Gamma {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "scale" {
            return Ok(Gamma::Scale);
        }
        let number = |t: &str| {
            t.trim().parse::<f64>().map_err(|_| {
                format!("expected a number, a fraction like 1/784, or `scale`; got {s:?}")
            })
        };
        match s.split_once('/') {
            Some((a, b)) => Ok(Gamma::Value(number(a)? / number(b)?)),
            None => Ok(Gamma::Value(number(s)?)),
        }
    }
}

fn main() {
    let mut args: Args = cli::parse_args();
    args.base.default_pixel_scale = 256;
    cli::exit_on_error(|| run(&args));
}

fn check_parameters(args: &Args) -> Result<()> {
    let positive = |name: &str, v: f64| -> Result<()> {
        if v.is_finite() && v > 0.0 {
            Ok(())
        } else {
            Err(anyhow!("{name} must be a finite number > 0, got {v}"))
        }
    };
    positive("--c", args.c)?;
    if let Gamma::Value(g) = args.gamma {
        positive("--gamma", g)?;
    }
    positive("--cache-mb", args.cache_mb)?;
    positive("--eps", args.eps)?;
    if args.search {
        if args.grid_c.is_empty() || args.grid_gamma.is_empty() {
            return Err(anyhow!("--grid-c and --grid-gamma need at least one value"));
        }
        for &c in &args.grid_c {
            positive("--grid-c", c)?;
        }
        for &g in &args.grid_gamma {
            positive("--grid-gamma", g)?;
        }
        if args.search_train == 0 {
            return Err(anyhow!("--search-train must be at least 1"));
        }
    }
    Ok(())
}

fn run(args: &Args) -> Result<()> {
    let started = Instant::now();
    check_parameters(args)?;
    let b = &args.base;
    if let Some(p) = &b.json {
        check_writable("--json", p)?;
    }
    let threads = b.init_threads()?;
    let scale = b.scale();
    let dir = b.data.prepare()?;
    let data = mnist::load_data(&dir)?;
    let training = b.limited(data.training.clone());
    let test_set = limit(&data.test, args.test_limit);
    let zeros = if args.sparse_only {
        ExplicitZeros::none()
    } else {
        ExplicitZeros::frequent_pixels(&data.training, EXPLICIT_ZEROS_FRACTION)
    };
    let test = Features::from_images_with(&test_set, scale, &zeros);
    let test_labels = labels(&test_set);

    println!("Baseline classifier using an SVM.");
    let mut record = json!({
        "program": "mnist_svm",
        "settings": {
            "c": args.c,
            "gamma": args.gamma.to_string(),
            "pixel_scale": b.pixel_divisor(),
            "explicit_zero_pixels": zeros.count(),
            "kernels": format!("{:?}", args.kernels).to_lowercase(),
            "train_limit": b.train_limit,
            "test_limit": args.test_limit,
            "cache_mb": args.cache_mb,
            "eps": args.eps,
            "threads": threads,
            "load": args.load,
            "save": args.save,
            "search": args.search,
            "search_train": args.search.then_some(args.search_train),
            "grid_c": args.search.then_some(&args.grid_c),
            "grid_gamma": args.search.then_some(&args.grid_gamma),
            "data": dir,
        },
        "libsvm_version": svm::libsvm_version(),
    });

    let (model, params, fit_seconds) = if let Some(path) = &args.load {
        let model = Model::load(path)?;
        eprintln!(
            "Loaded {} ({} support vectors, kernel {:?})",
            path.display(),
            model.support_count(),
            model.kernel()
        );
        (model, None, None)
    } else {
        let (c, gamma) = if args.search {
            search(args, &data, scale, &zeros, &mut record)?
        } else {
            (args.c, args.gamma)
        };
        let problem = images_problem(&training, scale, &zeros)?;
        let gamma = resolve_gamma(gamma, problem.features())?;
        let params = params(args, c, gamma);
        eprintln!(
            "Training on {} images: C = {c}, gamma = {gamma} ({}), pixels/{}, {:?} kernels, {} threads",
            problem.len(),
            describe_gamma(gamma),
            b.pixel_divisor(),
            params.kernels,
            threads
        );
        let (model, seconds) = fit(&problem, &params)?;
        eprintln!(
            "Fit: {seconds:.1} s, {} support vectors",
            model.support_count()
        );
        (model, Some(params), Some(seconds))
    };

    let (correct, predict_seconds) = score(&model, &test, &test_labels, "predicting");
    eprintln!("Predict: {predict_seconds:.1} s for {} images", test.len());
    println!("{correct} of {} values correct.", test.len());

    if let Some(path) = &args.save {
        model
            .save(path)
            .with_context(|| format!("saving the model to {}", path.display()))?;
        eprintln!("Saved the model to {}", path.display());
    }
    if let Some(path) = &b.json {
        let last = json!({
            "train_images": args.load.is_none().then_some(training.len()),
            "test_images": test.len(), "support_vectors": model.support_count(),
            "fit_seconds": fit_seconds, "predict_seconds": predict_seconds, "correct": correct,
            "test_accuracy": correct as f64 / test.len() as f64,
            "train_images_per_second": fit_seconds.map(|s| training.len() as f64 / s),
            "wall_seconds": started.elapsed().as_secs_f64(),
        });
        let obj = record.as_object_mut().expect("record is an object");
        obj.extend(last.as_object().cloned().unwrap_or_default());
        if let Some(p) = &params {
            obj.extend([("c".into(), json!(p.c)), ("gamma".into(), json!(p.gamma))]);
        }
        let text = serde_json::to_string_pretty(&record)? + "\n";
        atomic_file::write_bytes(path, text.as_bytes())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// The training parameters for C and gamma under the flags.
fn params(args: &Args, c: f64, gamma: f64) -> Params {
    Params {
        cache_mb: args.cache_mb,
        eps: args.eps,
        kernels: match args.kernels {
            KernelsArg::Libsvm => KernelEvaluation::Libsvm,
            KernelsArg::Precomputed => KernelEvaluation::Precomputed,
        },
        ..Params::rbf(c, gamma)
    }
}

/// The first `n` images of `set` (all of them without a limit).
fn limit(set: &Dataset, n: Option<usize>) -> Dataset {
    match n {
        Some(n) if n < set.len() => set.take(n),
        _ => set.clone(),
    }
}

fn labels(set: &Dataset) -> Vec<i32> {
    set.labels().iter().map(|&l| i32::from(l)).collect()
}

/// The training problem of `set`'s images and labels.
fn images_problem(set: &Dataset, scale: Scale, zeros: &ExplicitZeros) -> Result<Problem> {
    let features = Features::from_images_with(set, scale, zeros);
    Ok(Problem::new(features, labels(set))?)
}

/// A number for gamma: `scale` becomes 1/(784 * variance of the training pixels).
fn resolve_gamma(gamma: Gamma, features: &Features) -> Result<f64> {
    match gamma {
        Gamma::Value(g) => Ok(g),
        Gamma::Scale => features
            .gamma_scale(PIXELS as usize)
            .context("gamma = scale: the training pixels have zero variance"),
    }
}

/// `1/784` when gamma is the reciprocal of a whole number, else nothing to add.
fn describe_gamma(gamma: f64) -> String {
    let r = 1.0 / gamma;
    if (r - r.round()).abs() < 1e-9 * r {
        format!("1/{}", r.round())
    } else {
        format!("1/{r:.1}")
    }
}

/// Train with a progress bar counting the binary problems solved; returns the fit time.
fn fit(problem: &Problem, params: &Params) -> Result<(Model, f64)> {
    let k = problem.classes().len();
    let progress = Steps::new((k * (k - 1) / 2) as u64, "training", "binary problems");
    let start = Instant::now();
    let model = svm::train_with_progress(problem, params, |done, _| progress.set(done as u64))?;
    progress.finish();
    Ok((model, start.elapsed().as_secs_f64()))
}

/// Correct predictions and seconds, with a progress bar.
fn score(model: &Model, features: &Features, labels: &[i32], what: &str) -> (usize, f64) {
    let progress = Steps::new(features.len() as u64, what, "images");
    let start = Instant::now();
    let predicted = model.predict_with_progress(features, |done| progress.set(done as u64));
    let seconds = start.elapsed().as_secs_f64();
    progress.finish();
    let correct = predicted.iter().zip(labels).filter(|(p, l)| p == l).count();
    (correct, seconds)
}

/// The grid search: returns the best (C, gamma) by validation accuracy (the first on ties).
fn search(
    args: &Args,
    data: &mnist::MnistData,
    scale: Scale,
    zeros: &ExplicitZeros,
    record: &mut Value,
) -> Result<(f64, Gamma)> {
    let sub = limit(&data.training, Some(args.search_train));
    let problem = images_problem(&sub, scale, zeros)?;
    let validation = Features::from_images_with(&data.validation, scale, zeros);
    let validation_labels = labels(&data.validation);
    eprintln!(
        "Grid search: training on {} images, scoring on {} validation images",
        problem.len(),
        validation.len()
    );
    let mut rows = Vec::new();
    let mut best: Option<(usize, f64, f64)> = None;
    for &c in &args.grid_c {
        for &gamma in &args.grid_gamma {
            let params = params(args, c, gamma);
            let (model, fit_s) = fit(&problem, &params)?;
            let (correct, predict_s) = score(&model, &validation, &validation_labels, "validating");
            eprintln!(
                "  C = {c:<5} gamma = {gamma:<6}: {correct} of {} ({:.2}%), fit {fit_s:.1} s, predict {predict_s:.1} s, {} support vectors",
                validation.len(),
                100.0 * correct as f64 / validation.len() as f64,
                model.support_count()
            );
            if best.is_none_or(|(b, _, _)| correct > b) {
                best = Some((correct, c, gamma));
            }
            rows.push(json!({
                "c": c, "gamma": gamma, "validation_correct": correct,
                "validation_accuracy": correct as f64 / validation.len() as f64,
                "fit_seconds": fit_s, "predict_seconds": predict_s,
                "support_vectors": model.support_count(),
            }));
        }
    }
    let (best_correct, c, gamma) = best.expect("the grid is not empty");
    // The table: one row per C, one column per gamma, validation images correct.
    let mut table = format!(
        "Validation images correct of {} (trained on {}):\n{:>10}",
        validation.len(),
        problem.len(),
        "C \\ gamma"
    );
    for g in &args.grid_gamma {
        let _ = write!(table, "{g:>9}");
    }
    for (i, &c_row) in args.grid_c.iter().enumerate() {
        let _ = write!(table, "\n{c_row:>10}");
        for j in 0..args.grid_gamma.len() {
            let correct = rows[i * args.grid_gamma.len() + j]["validation_correct"]
                .as_u64()
                .unwrap_or(0);
            let _ = write!(table, "{correct:>9}");
        }
    }
    println!("{table}");
    println!(
        "Best: C = {c}, gamma = {gamma} ({best_correct} of {} validation images)",
        validation.len()
    );
    let obj = record.as_object_mut().expect("record is an object");
    obj.insert("search".into(), Value::Array(rows));
    obj.insert(
        "best_validation_accuracy".into(),
        json!(best_correct as f64 / validation.len() as f64),
    );
    Ok((c, Gamma::Value(gamma)))
}
