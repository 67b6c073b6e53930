//! The experiments behind the book's figures, one subcommand each: it trains what the book
//! trained, prints the book's numbers beside nndl's and draws the figure as a PNG.
//!
//! ```text
//! cargo run --release --example book -- overfitting                 # chapter 3, lmbda 0
//! cargo run --release --example book -- overfitting --lambda 0.1    # chapter 3, regularised
//! cargo run --release --example book -- more-data                   # chapter 3, with the SVM
//! cargo run --release --example book -- init                        # chapter 3
//! cargo run --release --example book -- learning-rates              # chapter 3
//! cargo run --release --example book -- depth                       # chapter 5
//! cargo run --release --example book -- layer-speeds                # chapter 5
//! cargo run --release --example book -- hessian                     # chapter 3, measured
//! cargo run --release --example book -- hessian-free                # chapter 3, measured
//! ```
//!
//! Every subcommand takes `--seeds N` (runs seeds 0..N and reports mean and spread; the book's
//! figures are single unseeded runs), `--plot PATH` (default `SUBCOMMAND.png`), `--json PATH`,
//! `--threads` and the data flags. Settings are the book's (network2: cross-entropy,
//! mini-batch 10, N(0, 1/n_in) weights unless it says otherwise).

use anyhow::Result;
use clap::{Parser, Subcommand};
use mnist::Dataset;
use nn::{Cost, Epoch, Init, Mode, Network, Regularization, Sgd, WeightPenalty};
use nndl::autograd::{functional::hvp_on, Var};
use nndl::cli::DataDir;
use nndl::tensor::Tensor;
use rand::{seq::SliceRandom, Rng, SeedableRng};
use report::{plot_charts_png, Chart, Curve};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Instant;

#[derive(Parser, Debug)]
#[command(about = "The experiments behind the book's figures (chapters 3 and 5), drawn as PNGs")]
struct Args {
    #[command(subcommand)]
    experiment: Experiment,
    /// Runs of each setting, seeds 0..N (mean and spread reported, mean curves plotted).
    #[arg(long, default_value_t = 1, global = true)]
    seeds: u64,
    /// The figure (default: the subcommand's name, .png).
    #[arg(long, global = true)]
    plot: Option<PathBuf>,
    /// Every run's numbers as JSON here.
    #[arg(long, global = true)]
    json: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long, global = true)]
    threads: Option<usize>,
    #[command(flatten)]
    data: DataDir,
}

#[derive(Subcommand, Debug, Clone)]
enum Experiment {
    /// [784,30,10] with N(0,1) weights on the first 1,000 training images for 400 epochs,
    /// eta 0.5: test and training cost and accuracy per epoch (chapter 3's overfitting figures).
    Overfitting {
        /// L2 lambda (the book: 0, then 0.1).
        #[arg(long, default_value_t = 0.0)]
        lambda: f64,
        /// Epochs.
        #[arg(long, default_value_t = 400)]
        epochs: usize,
    },
    /// Validation accuracy against training-set size, the network (1,500,000 / size
    /// epochs, eta 0.5, lmbda size/10,000, N(0,1) weights) and the SVM (the book's SVC()).
    MoreData {
        /// Training-set sizes.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "100,200,500,1000,2000,5000,10000,20000,50000"
        )]
        sizes: Vec<usize>,
        /// Leave the SVM out.
        #[arg(long = "no-svm")]
        no_svm: bool,
    },
    /// N(0,1/n_in) against N(0,1) weights: validation accuracy per epoch, eta 0.1, lmbda 5.0.
    Init {
        /// Hidden layer sizes, one panel each.
        #[arg(long, value_delimiter = ',', default_value = "30,100")]
        hidden: Vec<usize>,
        /// Epochs.
        #[arg(long, default_value_t = 30)]
        epochs: usize,
    },
    /// Training cost per epoch at eta 0.025, 0.25 and 2.5 (lmbda 5.0).
    LearningRates {
        /// The learning rates.
        #[arg(long, value_delimiter = ',', default_value = "0.025,0.25,2.5")]
        etas: Vec<f64>,
        /// Epochs.
        #[arg(long, default_value_t = 30)]
        epochs: usize,
    },
    /// 1 to 4 hidden layers of 30: validation accuracy after 30 epochs, eta 0.1, lmbda 5.0.
    Depth {
        /// Numbers of hidden layers.
        #[arg(long, value_delimiter = ',', default_value = "1,2,3,4")]
        layers: Vec<usize>,
        /// Epochs.
        #[arg(long, default_value_t = 30)]
        epochs: usize,
    },
    /// ||dC/db|| of each hidden layer over the first 1,000 images, at the start and while
    /// training on them (mini-batch 1,000, eta 0.1, lmbda 5.0).
    LayerSpeeds {
        /// Numbers of hidden layers of 30, one panel each.
        #[arg(long, value_delimiter = ',', default_value = "2,3,4")]
        layers: Vec<usize>,
        /// Epochs (one measurement after each).
        #[arg(long, default_value_t = 500)]
        epochs: usize,
    },
    /// The largest Hessian eigenvalue of network2's training cost (power iteration on
    /// Hessian-vector products) after each epoch at the learning-rate figure's etas, beside
    /// 2/eta, and the cost of one Hessian-vector product against one gradient.
    Hessian {
        /// The learning rates.
        #[arg(long, value_delimiter = ',', default_value = "0.025,0.25,2.5")]
        etas: Vec<f64>,
        /// Epochs.
        #[arg(long, default_value_t = 30)]
        epochs: usize,
        /// Training images (the first N; the book's figure trains on all 50,000).
        #[arg(long, default_value_t = 50_000)]
        train_images: usize,
        /// The Hessian is of the cost on the first N training images.
        #[arg(long, default_value_t = 1000)]
        hessian_images: usize,
        /// Hessian-vector products per power iteration, at most (20, even 50, leave some
        /// eigenvalues unconverged at 1e-4: the top two can be close).
        #[arg(long, default_value_t = 100)]
        power_iterations: usize,
        /// Stop when the Rayleigh quotient moves by less than this, relative.
        #[arg(long, default_value_t = 1e-4)]
        tolerance: f64,
        /// Mini-batches of 10 whose own largest eigenvalue is measured too (their mean).
        #[arg(long, default_value_t = 10)]
        minibatches: usize,
    },
    /// A Hessian-free optimiser (conjugate gradient on Hessian-vector products, Martens 2010
    /// simplified) against SGD on network2 [784,30,10], lmbda 5.0: training cost per epoch.
    HessianFree {
        /// Epochs (passes over the training images) of each.
        #[arg(long, default_value_t = 30)]
        epochs: usize,
        /// Training images (the first N).
        #[arg(long, default_value_t = 50_000)]
        train_images: usize,
        /// Images per Hessian-free step (its gradient and its curvature).
        #[arg(long, default_value_t = 1000)]
        batch: usize,
        /// Conjugate-gradient iterations (Hessian-vector products) per step, at most.
        #[arg(long, default_value_t = 10)]
        cg_iterations: usize,
        /// The damping to start from (adjusted after every step).
        #[arg(long, default_value_t = 1.0)]
        damping: f64,
        /// SGD's learning rate (mini-batch 10; 0.25 is the best of the book's three).
        #[arg(long, default_value_t = 0.25)]
        sgd_eta: f64,
    },
}

impl Experiment {
    fn name(&self) -> &'static str {
        match self {
            Experiment::Overfitting { .. } => "overfitting",
            Experiment::MoreData { .. } => "more-data",
            Experiment::Init { .. } => "init",
            Experiment::LearningRates { .. } => "learning-rates",
            Experiment::Depth { .. } => "depth",
            Experiment::LayerSpeeds { .. } => "layer-speeds",
            Experiment::Hessian { .. } => "hessian",
            Experiment::HessianFree { .. } => "hessian-free",
        }
    }
}

fn main() {
    nndl::cli::exit_on_error(run);
}

/// What an experiment hands back: the figure's panels and title, every number.
struct Outcome {
    charts: Vec<Chart>,
    title: String,
    record: Value,
}

impl Outcome {
    fn new(charts: Vec<Chart>, title: impl Into<String>, record: Value) -> Self {
        let title = title.into();
        Outcome {
            charts,
            title,
            record,
        }
    }
}

/// What every experiment runs on: the data and the seeds.
struct Study<'a> {
    data: &'a mnist::MnistData,
    seeds: &'a [u64],
}

fn run() -> Result<()> {
    let args: Args = nndl::cli::parse_args();
    if let Some(n) = args.threads {
        anyhow::ensure!(n > 0, "--threads must be at least 1");
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()?;
    }
    anyhow::ensure!(args.seeds > 0, "--seeds must be at least 1");
    let plot = args
        .plot
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.png", args.experiment.name())));
    nndl::run::check_writable("--plot", &plot)?;
    if let Some(p) = &args.json {
        nndl::run::check_writable("--json", p)?;
    }
    let data = mnist::load_data(args.data.prepare()?)?;
    let start = Instant::now();
    let seeds: Vec<u64> = (0..args.seeds).collect();
    let s = Study {
        data: &data,
        seeds: &seeds,
    };
    let out = match args.experiment.clone() {
        Experiment::Overfitting { lambda, epochs } => overfitting(&s, lambda, epochs)?,
        Experiment::MoreData { sizes, no_svm } => more_data(&s, &sizes, !no_svm)?,
        Experiment::Init { hidden, epochs } => init(&s, &hidden, epochs)?,
        Experiment::LearningRates { etas, epochs } => learning_rates(&s, &etas, epochs)?,
        Experiment::Depth { layers, epochs } => depth(&s, &layers, epochs)?,
        Experiment::LayerSpeeds { layers, epochs } => layer_speeds(&s, &layers, epochs)?,
        Experiment::Hessian {
            etas,
            epochs,
            train_images,
            hessian_images,
            power_iterations,
            tolerance,
            minibatches,
        } => hessian(
            &s,
            &HessianArgs {
                etas,
                epochs,
                train_images,
                hessian_images,
                power_iterations,
                tolerance,
                minibatches,
            },
        )?,
        Experiment::HessianFree {
            epochs,
            train_images,
            batch,
            cg_iterations,
            damping,
            sgd_eta,
        } => hessian_free(
            &s,
            &HfArgs {
                epochs,
                train_images,
                batch,
                cg_iterations,
                damping,
                sgd_eta,
            },
        )?,
    };
    let seconds = start.elapsed().as_secs_f64();
    plot_charts_png(&out.charts, &plot, &out.title)?;
    println!("Figure: {}; {seconds:.1} s", plot.display());
    if let Some(p) = &args.json {
        let record = json!({
            "experiment": args.experiment.name(), "seeds": args.seeds,
            "threads": rayon::current_num_threads(), "wall_seconds": seconds, "results": out.record,
        });
        atomic_file::write_bytes(p, serde_json::to_string_pretty(&record)?.as_bytes())?;
    }
    Ok(())
}

/// network2 as the book builds it: sigmoid layers of `sizes`, cross-entropy.
fn network(sizes: &[usize], init: Init, seed: u64) -> Result<Network<f32>> {
    Ok(Network::sigmoid_mlp(sizes, Cost::CrossEntropy, init, seed)?)
}

/// network2's `SGD`: `epochs` shuffled epochs of mini-batch `mb` at `eta` with L2 weight
/// decay `lmbda` over `data`; `after(epoch, net)` monitors after each.
fn sgd(
    net: &mut Network<f32>,
    data: &Dataset,
    (epochs, mb, eta, lmbda): (usize, usize, f64, f64),
    mut after: impl FnMut(usize, &mut Network<f32>) -> Result<()>,
) -> Result<()> {
    let n = data.len();
    let mut opt = Sgd::new(eta, Regularization::WeightDecay { lmbda, n });
    for e in 0..epochs {
        net.train_epoch(data, &mut opt, Epoch::shuffled(e, mb), |_| {})?;
        after(e, net)?;
    }
    Ok(())
}

/// Mean and sample standard deviation (0 for one value).
fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len().max(1) as f64;
    let m = xs.iter().sum::<f64>() / n;
    let var = xs.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0).max(1.0);
    (m, var.sqrt())
}

/// `mean ± sd` of percentages (just the mean for one run).
fn pct(xs: &[f64]) -> String {
    let (m, sd) = mean_sd(xs);
    if xs.len() > 1 {
        format!("{:.2} ± {:.2}%", 100.0 * m, 100.0 * sd)
    } else {
        format!("{:.2}%", 100.0 * m)
    }
}

/// The per-epoch mean over seeds of `runs` (each a curve of the same length), as a curve
/// over x = 1, 2, ... (the book numbers epochs from 0; its plots from the first).
fn mean_curve(label: String, runs: &[Vec<f64>], scale: f64, x0: f64) -> Curve {
    let len = runs.iter().map(Vec::len).min().unwrap_or(0);
    Curve {
        label,
        points: (0..len)
            .map(|i| {
                let col: Vec<f64> = runs.iter().map(|r| r[i]).collect();
                (x0 + i as f64, scale * mean_sd(&col).0)
            })
            .collect(),
    }
}

fn chart(caption: &str, x: &str, y: &str, curves: Vec<Curve>) -> Chart {
    Chart {
        caption: caption.into(),
        x_label: x.into(),
        y_label: y.into(),
        curves,
        ..Chart::default()
    }
}

/// Chapter 3's overfitting figures (lmbda 0) and their regularised versions (lmbda 0.1),
/// N(0,1) weights as the book's run (`large_weight_initializer`, the better init comes later
/// in the chapter): its test accuracy levels off near 82.27% (0) and 87.1% (0.1); training
/// accuracy reaches 100% at lmbda 0.
fn overfitting(s: &Study, lmbda: f64, epochs: usize) -> Result<Outcome> {
    let (data, seeds) = (s.data, s.seeds);
    let train = data.training.take(1000);
    let mut curves: [Vec<Vec<f64>>; 4] = Default::default();
    let penalty = Some(WeightPenalty::L2(lmbda));
    for &seed in seeds {
        let mut net = network(&[784, 30, 10], Init::Large, seed)?;
        let mut c: [Vec<f64>; 4] = Default::default();
        sgd(&mut net, &train, (epochs, 10, 0.5, lmbda), |_, net| {
            let tr = net.evaluate(&train, 1000, penalty)?;
            let te = net.evaluate(&data.test, 1000, penalty)?;
            for (v, x) in c
                .iter_mut()
                .zip([tr.cost, tr.accuracy(), te.cost, te.accuracy()])
            {
                v.push(x);
            }
            Ok(())
        })?;
        let last = |v: &Vec<f64>| v.last().copied().unwrap_or(f64::NAN);
        println!(
            "seed {seed}: after {epochs} epochs: training accuracy {:.2}%, test accuracy {:.2}% (best {:.2}% at epoch {})",
            100.0 * last(&c[1]),
            100.0 * last(&c[3]),
            100.0 * c[3].iter().copied().fold(0.0, f64::max),
            c[3].iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map_or(0, |(i, _)| i),
        );
        for (all, one) in curves.iter_mut().zip(c) {
            all.push(one);
        }
    }
    let finals =
        |k: usize| -> Vec<f64> { curves[k].iter().filter_map(|v| v.last().copied()).collect() };
    let book = if lmbda == 0.0 {
        "82.27% (levels off near 82%)"
    } else {
        "87.1%"
    };
    println!(
        "Test accuracy after {epochs} epochs, lmbda {lmbda}: nndl {}; the book {book}",
        pct(&finals(3))
    );
    println!(
        "Training accuracy: nndl {}; the book 100% (lmbda 0)",
        pct(&finals(1))
    );
    let names = [
        "Cost on the training data",
        "Accuracy on the training data",
        "Cost on the test data",
        "Accuracy on the test data",
    ];
    let charts = (0..4)
        .map(|k| {
            let (scale, y) = if k % 2 == 1 {
                (100.0, "Accuracy (%)")
            } else {
                (1.0, "Cost")
            };
            chart(
                names[k],
                "Epoch",
                y,
                vec![mean_curve(format!("lmbda {lmbda}"), &curves[k], scale, 0.0)],
            )
        })
        .collect();
    Ok(Outcome::new(
        charts,
        format!("[784, 30, 10], N(0,1) weights, on 1,000 images, eta 0.5, lmbda {lmbda}"),
        json!({"lambda": lmbda, "epochs": epochs, "training_cost": curves[0], "training_accuracy": curves[1], "test_cost": curves[2], "test_accuracy": curves[3]}),
    ))
}

/// Chapter 3's "more training data" figure: the network and the SVM against the size.
fn more_data(s: &Study, sizes: &[usize], with_svm: bool) -> Result<Outcome> {
    let (data, seeds) = (s.data, s.seeds);
    const BOOK_NN: [(usize, f64); 9] = [
        (100, 69.09),
        (200, 76.37),
        (500, 85.29),
        (1000, 88.85),
        (2000, 91.27),
        (5000, 93.24),
        (10000, 94.89),
        (20000, 95.85),
        (50000, 95.97),
    ];
    const BOOK_SVM: [(usize, f64); 9] = [
        (100, 25.07),
        (200, 48.93),
        (500, 75.13),
        (1000, 83.87),
        (2000, 88.49),
        (5000, 91.46),
        (10000, 92.45),
        (20000, 93.47),
        (50000, 94.48),
    ];
    let book = |t: &[(usize, f64)], size| {
        t.iter()
            .find(|(s, _)| *s == size)
            .map_or("-".to_string(), |(_, a)| format!("{a:.2}%"))
    };
    let (mut nn_curve, mut svm_curve, mut rows) = (Vec::new(), Vec::new(), Vec::new());
    println!(
        "{:>6}  {:>16}  {:>8}  {:>8}  {:>8}",
        "size", "nndl network", "book", "nndl SVM", "book"
    );
    for &size in sizes {
        anyhow::ensure!(
            size > 0 && size <= data.training.len(),
            "--sizes: {size} is not a training-set size from 1 to {}",
            data.training.len()
        );
        let train = data.training.take(size);
        let epochs = 1_500_000 / size;
        let mut accs = Vec::new();
        for &seed in seeds {
            let mut net = network(&[784, 30, 10], Init::Large, seed)?;
            sgd(
                &mut net,
                &train,
                (epochs, 10, 0.5, size as f64 * 0.0001),
                |_, _| Ok(()),
            )?;
            accs.push(net.evaluate(&data.validation, 1000, None)?.accuracy());
        }
        let svm_acc = if with_svm {
            let scale = mnist::Scale::Div256;
            let problem = svm::Problem::from_images(&train, scale)?;
            let model = svm::train(&problem, &svm::Params::BOOK)?;
            let predicted = model.predict(&svm::Features::from_images(&data.validation, scale));
            let correct = predicted
                .iter()
                .zip(0..)
                .filter(|(p, i)| **p == i32::from(data.validation.label(*i)))
                .count();
            Some(correct as f64 / data.validation.len() as f64)
        } else {
            None
        };
        println!(
            "{size:>6}  {:>16}  {:>8}  {:>8}  {:>8}",
            pct(&accs),
            book(&BOOK_NN, size),
            svm_acc.map_or("-".into(), |a| format!("{:.2}%", 100.0 * a)),
            book(&BOOK_SVM, size)
        );
        nn_curve.push((size as f64, 100.0 * mean_sd(&accs).0));
        if let Some(a) = svm_acc {
            svm_curve.push((size as f64, 100.0 * a));
        }
        rows.push(json!({"size": size, "epochs": epochs, "network": accs, "svm": svm_acc}));
    }
    let mut curves = vec![Curve {
        label: "neural network".into(),
        points: nn_curve,
    }];
    if with_svm {
        curves.push(Curve {
            label: "SVM".into(),
            points: svm_curve,
        });
    }
    let mut c = chart(
        "Validation accuracy",
        "Training set size",
        "Accuracy (%)",
        curves,
    );
    c.log_x = true;
    let svm = if with_svm { " and the SVM" } else { "" };
    let title = format!("More training data: [784, 30, 10]{svm}");
    Ok(Outcome::new(vec![c], title, json!(rows)))
}

/// Chapter 3's weight-initialisation figures: validation accuracy per epoch for both inits.
fn init(s: &Study, hidden: &[usize], epochs: usize) -> Result<Outcome> {
    let (data, seeds) = (s.data, s.seeds);
    anyhow::ensure!(
        epochs > 0,
        "--epochs must be at least 1 (the figure starts after epoch 0)"
    );
    let (mut charts, mut rows) = (Vec::new(), Vec::new());
    for &h in hidden {
        let mut curves = Vec::new();
        for (init, name) in [
            (Init::Large, "Old approach to weight initialization"),
            (
                Init::ScaledByInputs,
                "New approach to weight initialization",
            ),
        ] {
            let mut runs = Vec::new();
            for &seed in seeds {
                let mut net = network(&[784, h, 10], init, seed)?;
                let mut acc = Vec::new();
                sgd(
                    &mut net,
                    &data.training,
                    (epochs, 10, 0.1, 5.0),
                    |_, net| {
                        acc.push(net.evaluate(&data.validation, 1000, None)?.accuracy());
                        Ok(())
                    },
                )?;
                runs.push(acc);
            }
            let first: Vec<f64> = runs.iter().map(|r| r[0]).collect();
            let last: Vec<f64> = runs.iter().filter_map(|r| r.last().copied()).collect();
            println!(
                "[784, {h}, 10], {name}: after epoch 0 {}, after {epochs} epochs {}",
                pct(&first),
                pct(&last)
            );
            rows.push(json!({"hidden": h, "init": name, "validation_accuracy": runs}));
            curves.push(mean_curve(name.into(), &runs, 100.0, 0.0));
        }
        charts.push(chart(
            &format!("[784, {h}, 10]"),
            "Epoch",
            "Validation accuracy (%)",
            curves,
        ));
    }
    println!("The book, 30 hidden: 86.43% (old) vs 92.70% (new) after epoch 0, both near 96.4-96.5% after 30.");
    let title = "Weight initialisation: eta 0.1, lmbda 5.0";
    Ok(Outcome::new(charts, title, json!(rows)))
}

/// Chapter 3's learning-rate figure: training cost per epoch for three etas.
fn learning_rates(s: &Study, etas: &[f64], epochs: usize) -> Result<Outcome> {
    let (data, seeds) = (s.data, s.seeds);
    let (mut curves, mut rows) = (Vec::new(), Vec::new());
    for &eta in etas {
        let mut runs = Vec::new();
        for &seed in seeds {
            let mut net = network(&[784, 30, 10], Init::ScaledByInputs, seed)?;
            let mut cost = Vec::new();
            sgd(
                &mut net,
                &data.training,
                (epochs, 10, eta, 5.0),
                |_, net| {
                    cost.push(
                        net.evaluate(&data.training, 1000, Some(WeightPenalty::L2(5.0)))?
                            .cost,
                    );
                    Ok(())
                },
            )?;
            runs.push(cost);
        }
        let last: Vec<f64> = runs.iter().filter_map(|r| r.last().copied()).collect();
        println!(
            "eta = {eta}: training cost after {epochs} epochs {:.4} (mean of {})",
            mean_sd(&last).0,
            last.len()
        );
        rows.push(json!({"eta": eta, "training_cost": runs}));
        curves.push(mean_curve(format!("eta = {eta}"), &runs, 1.0, 0.0));
    }
    Ok(Outcome::new(
        vec![chart("Cost on the training data", "Epoch", "Cost", curves)],
        "Learning rates: [784, 30, 10], lmbda 5.0",
        json!(rows),
    ))
}

/// `[784, 30 x layers, 10]`.
fn sizes_of(layers: usize) -> Vec<usize> {
    std::iter::once(784)
        .chain(std::iter::repeat_n(30, layers))
        .chain(std::iter::once(10))
        .collect()
}

/// Chapter 5: validation accuracy of deeper networks after 30 epochs.
fn depth(s: &Study, layers: &[usize], epochs: usize) -> Result<Outcome> {
    let (data, seeds) = (s.data, s.seeds);
    const BOOK: [f64; 4] = [96.48, 96.90, 96.57, 96.53];
    let (mut points, mut rows) = (Vec::new(), Vec::new());
    for &l in layers {
        anyhow::ensure!(l > 0, "--layers: a network needs at least one hidden layer");
        let sizes = sizes_of(l);
        let mut accs = Vec::new();
        for &seed in seeds {
            let mut net = network(&sizes, Init::ScaledByInputs, seed)?;
            sgd(&mut net, &data.training, (epochs, 10, 0.1, 5.0), |_, _| {
                Ok(())
            })?;
            accs.push(net.evaluate(&data.validation, 1000, None)?.accuracy());
        }
        let book = BOOK.get(l - 1).map_or("-".into(), |b| format!("{b:.2}%"));
        println!(
            "{sizes:?}: validation accuracy nndl {}; the book {book}",
            pct(&accs)
        );
        points.push((l as f64, 100.0 * mean_sd(&accs).0));
        rows.push(json!({"sizes": sizes, "validation_accuracy": accs}));
    }
    let curve = Curve {
        label: "nndl".into(),
        points,
    };
    let c = chart(
        "Validation accuracy after training",
        "Hidden layers of 30",
        "Accuracy (%)",
        vec![curve],
    );
    Ok(Outcome::new(
        vec![c],
        format!("Depth: eta 0.1, lmbda 5.0, {epochs} epochs"),
        json!(rows),
    ))
}

/// Chapter 5's speed of learning per layer: `||dC/db^l||` over the first 1,000 images, at the
/// start and after each epoch of training on them.
fn layer_speeds(s: &Study, layers: &[usize], epochs: usize) -> Result<Outcome> {
    let (data, seeds) = (s.data, s.seeds);
    let book: [&[f64]; 3] = [
        &[0.066, 0.31],
        &[0.012, 0.060, 0.283],
        &[0.003, 0.017, 0.070, 0.285],
    ];
    let train = data.training.take(1000);
    let idx: Vec<usize> = (0..train.len()).collect();
    let (mut charts, mut rows) = (Vec::new(), Vec::new());
    for &l in layers {
        anyhow::ensure!(l > 0, "--layers: a network needs at least one hidden layer");
        // Per seed, per measurement, per layer.
        let mut runs: Vec<Vec<Vec<f64>>> = Vec::new();
        for &seed in seeds {
            let mut net = network(&sizes_of(l), Init::ScaledByInputs, seed)?;
            let mut m = vec![net.layer_speeds(&train, &idx)?];
            sgd(&mut net, &train, (epochs, 1000, 0.1, 5.0), |_, net| {
                m.push(net.layer_speeds(&train, &idx)?);
                Ok(())
            })?;
            runs.push(m);
        }
        let start: Vec<String> = (0..l)
            .map(|k| {
                let xs: Vec<f64> = runs.iter().map(|r| r[0][k]).collect();
                let (m, sd) = mean_sd(&xs);
                if xs.len() > 1 {
                    format!("{m:.3} ± {sd:.3}")
                } else {
                    format!("{m:.3}")
                }
            })
            .collect();
        let b = book
            .get(l.wrapping_sub(2))
            .map_or("-".into(), |b| format!("{b:?}"));
        println!(
            "{l} hidden layers: ||dC/db|| at the start, first layer first: nndl [{}]; the book {b}",
            start.join(", ")
        );
        let curves = (0..l)
            .map(|k| {
                let per_seed: Vec<Vec<f64>> = runs
                    .iter()
                    .map(|r| r.iter().map(|m| m[k]).collect())
                    .collect();
                mean_curve(format!("Hidden layer {}", k + 1), &per_seed, 1.0, 0.0)
            })
            .collect();
        let mut c = chart(
            &format!("{l} hidden layers"),
            "Epochs of training",
            "Speed of learning ||dC/db||",
            curves,
        );
        c.log_y = true; // as the book's figure
        charts.push(c);
        rows.push(json!({"hidden_layers": l, "speeds": runs}));
    }
    Ok(Outcome::new(
        charts,
        "The speed of learning of each hidden layer",
        json!(rows),
    ))
}

// ---------------------------------------------------------------------------------------------
// Chapter 3's Hessian technique, measured.

/// network2's training cost on the samples `idx` of `data` as a Var on `net`'s graph: the
/// cross-entropy (mean over the samples) plus the L2 term `(lmbda / 2n) sum w^2` with `n` the
/// size of the training set, the cost `sgd` descends and `evaluate` reports.
fn training_cost(
    net: &mut Network<f32>,
    data: &Dataset,
    idx: &[usize],
    (lmbda, n): (f64, usize),
) -> Result<Var> {
    let loss = net.batch_loss(data, idx, Mode::Eval)?;
    let coef = 0.5 * lmbda / n as f64;
    let weights = net.weights();
    let g = net.graph_mut();
    let mut total = loss;
    for w in weights {
        let s = g.sum_squares(w)?;
        let s = g.scale(s, coef as f32)?;
        total = g.add(total, s)?;
    }
    Ok(total)
}

/// The parameters' shapes, in `net.parameters()` order.
fn parameter_dims(net: &Network<f32>) -> Result<Vec<Vec<usize>>> {
    net.parameters()
        .iter()
        .map(|&p| Ok(net.graph().value(p)?.dims().to_vec()))
        .collect()
}

/// A flat f64 vector over all parameters split into f32 tensors of their shapes.
fn to_tensors(flat: &[f64], dims: &[Vec<usize>]) -> Result<Vec<Tensor<f32>>> {
    let mut at = 0;
    dims.iter()
        .map(|d| {
            let n: usize = d.iter().product();
            let t = flat[at..at + n].iter().map(|&v| v as f32).collect();
            at += n;
            Ok(Tensor::from_vec(t, d)?)
        })
        .collect()
}

fn flatten(ts: &[Tensor<f32>]) -> Vec<f64> {
    ts.iter()
        .flat_map(|t| t.data().iter().map(|&v| f64::from(v)))
        .collect()
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

/// The cost and its gradient (flat, over all parameters) on the samples `idx`.
fn cost_and_gradient(
    net: &mut Network<f32>,
    data: &Dataset,
    idx: &[usize],
    l2: (f64, usize),
) -> Result<(f64, Vec<f64>)> {
    net.graph_mut().reset();
    let loss = training_cost(net, data, idx, l2)?;
    let value = f64::from(net.graph().value(loss)?.data()[0]);
    net.graph_mut().backward(loss)?;
    let params = net.parameters();
    let g = net.graph();
    let grad = params
        .iter()
        .flat_map(|&p| match g.grad(p) {
            Some(t) => t.data().iter().map(|&v| f64::from(v)).collect::<Vec<_>>(),
            None => vec![0.0; g.value(p).map_or(0, |t| t.numel())],
        })
        .collect();
    net.graph_mut().reset();
    Ok((value, grad))
}

/// The cost alone on the samples `idx` (no backward).
fn cost_only(
    net: &mut Network<f32>,
    data: &Dataset,
    idx: &[usize],
    l2: (f64, usize),
) -> Result<f64> {
    net.graph_mut().reset();
    let loss = training_cost(net, data, idx, l2)?;
    let value = f64::from(net.graph().value(loss)?.data()[0]);
    net.graph_mut().reset();
    Ok(value)
}

/// `H v` of the cost on the samples `idx`, `v` and the result flat over all parameters.
/// Never forms `H`: one recorded gradient and one backward through it.
fn hessian_times(
    net: &mut Network<f32>,
    data: &Dataset,
    idx: &[usize],
    l2: (f64, usize),
    v: &[f64],
) -> Result<Vec<f64>> {
    let dims = parameter_dims(net)?;
    let v = to_tensors(v, &dims)?;
    net.graph_mut().reset();
    let loss = training_cost(net, data, idx, l2)?;
    let params = net.parameters();
    let hv = hvp_on(net.graph_mut(), loss, &params, &v)?;
    net.graph_mut().reset();
    Ok(flatten(&hv))
}

/// The eigenvalue of largest magnitude of `H - shift I`, `H` the Hessian of the cost on
/// `idx`, by power iteration on Hessian-vector products from a seeded random start, stopped
/// after `iters` products or when the Rayleigh quotient moves by less than `tol` relative.
/// Returns the last Rayleigh quotient `v^T (H - shift I) v` (`|v| = 1`) plus `shift`, the
/// number of products taken, and whether the tolerance was met (if not, the quotient is a
/// lower bound of the dominant eigenvalue, still short of it).
fn power_iteration(
    net: &mut Network<f32>,
    data: &Dataset,
    idx: &[usize],
    l2: (f64, usize),
    (iters, tol, seed): (usize, f64, u64),
    shift: f64,
) -> Result<(f64, usize, bool)> {
    let n: usize = parameter_dims(net)?
        .iter()
        .map(|d| d.iter().product::<usize>())
        .sum();
    let mut rng = nndl::Pcg64::seed_from_u64(seed);
    let mut v: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    let s = norm(&v);
    v.iter_mut().for_each(|x| *x /= s);
    let mut rayleigh = f64::NAN;
    for k in 1..=iters {
        let mut hv = hessian_times(net, data, idx, l2, &v)?;
        hv.iter_mut().zip(&v).for_each(|(h, v)| *h -= shift * v);
        let r = dot(&v, &hv);
        let done = (r - rayleigh).abs() <= tol * r.abs();
        rayleigh = r;
        let s = norm(&hv);
        if done || s == 0.0 || k == iters {
            return Ok((rayleigh + shift, k, done || s == 0.0));
        }
        v = hv.into_iter().map(|x| x / s).collect();
    }
    Ok((rayleigh + shift, 0, false))
}

/// The largest eigenvalue of the Hessian (the most positive: the curvature that bounds a
/// stable learning rate), and the eigenvalue of largest magnitude, with the products taken and
/// whether every power iteration converged.
/// Power iteration finds the latter; when it is negative, a second run on `H - lambda I`
/// (whose dominant eigenvalue is then `lambda_max - lambda > 0`) finds the former.
fn largest_eigenvalue(
    net: &mut Network<f32>,
    data: &Dataset,
    idx: &[usize],
    l2: (f64, usize),
    power: (usize, f64, u64),
) -> Result<(f64, f64, usize, bool)> {
    let (dominant, k, ok) = power_iteration(net, data, idx, l2, power, 0.0)?;
    if dominant >= 0.0 {
        return Ok((dominant, dominant, k, ok));
    }
    let (top, k2, ok2) = power_iteration(net, data, idx, l2, power, dominant)?;
    Ok((top, dominant, k + k2, ok && ok2))
}

/// The wall time of one call of `f`, in seconds.
fn seconds(f: impl FnOnce() -> Result<()>) -> Result<f64> {
    let s = Instant::now();
    f()?;
    Ok(s.elapsed().as_secs_f64())
}

/// What `book hessian` is asked for.
struct HessianArgs {
    etas: Vec<f64>,
    epochs: usize,
    train_images: usize,
    hessian_images: usize,
    power_iterations: usize,
    tolerance: f64,
    minibatches: usize,
}

/// The mean, over the first `count` mini-batches of 10 images, of the largest Hessian
/// eigenvalue of each mini-batch's cost: the curvature one SGD step actually descends
/// (an average over 1,000 images smooths it). Returns (mean, products taken).
fn minibatch_sharpness(
    net: &mut Network<f32>,
    data: &Dataset,
    l2: (f64, usize),
    count: usize,
    power: (usize, f64, u64),
) -> Result<(f64, usize)> {
    let (mut sum, mut products) = (0.0, 0);
    for b in 0..count {
        let idx: Vec<usize> = (10 * b..10 * (b + 1)).collect();
        let (top, _, k, _) = largest_eigenvalue(net, data, &idx, l2, power)?;
        sum += top;
        products += k;
    }
    Ok((sum / count.max(1) as f64, products))
}

/// The book's Hessian technique, measured: the largest eigenvalue of the Hessian of
/// network2's training cost while it trains at each of the learning-rate figure's etas.
/// Gradient descent on a quadratic of curvature `lambda` multiplies the error along that
/// direction by `1 - eta lambda` each step: it converges only for `eta < 2 / lambda`.
fn hessian(s: &Study, a: &HessianArgs) -> Result<Outcome> {
    let (data, seeds) = (s.data, s.seeds);
    anyhow::ensure!(
        a.train_images > 0 && a.train_images <= data.training.len(),
        "--train-images: from 1 to {}",
        data.training.len()
    );
    anyhow::ensure!(
        a.hessian_images > 0 && a.hessian_images <= a.train_images,
        "--hessian-images: from 1 to --train-images ({})",
        a.train_images
    );
    anyhow::ensure!(
        a.power_iterations > 0,
        "--power-iterations must be at least 1"
    );
    anyhow::ensure!(
        10 * a.minibatches <= a.train_images,
        "--minibatches: at most --train-images / 10"
    );
    let lmbda = 5.0;
    let train = data.training.take(a.train_images);
    let l2 = (lmbda, train.len());
    let idx: Vec<usize> = (0..a.hessian_images).collect();
    let power = |seed| (a.power_iterations, a.tolerance, 1000 + seed);

    // The cost of one Hessian-vector product against one gradient, same images, same net.
    let mut net = network(&[784, 30, 10], Init::ScaledByInputs, 0)?;
    let n_params: usize = parameter_dims(&net)?
        .iter()
        .map(|d| d.iter().product::<usize>())
        .sum();
    let v = vec![1.0 / (n_params as f64).sqrt(); n_params];
    // Interleaved, so that both see the same load of a shared machine; medians of each.
    let reps = 25;
    let (mut grad_t, mut hvp_t) = (Vec::new(), Vec::new());
    for _ in 0..reps {
        grad_t.push(seconds(|| {
            cost_and_gradient(&mut net, &train, &idx, l2).map(|_| ())
        })?);
        hvp_t.push(seconds(|| {
            hessian_times(&mut net, &train, &idx, l2, &v).map(|_| ())
        })?);
    }
    let median = |mut t: Vec<f64>| {
        t.sort_by(f64::total_cmp);
        t[t.len() / 2]
    };
    let (grad_s, hvp_s) = (median(grad_t), median(hvp_t));
    println!(
        "One Hessian-vector product on {} images: {:.2} ms; one gradient: {:.2} ms; ratio {:.2} (median of {reps})",
        idx.len(),
        1e3 * hvp_s,
        1e3 * grad_s,
        hvp_s / grad_s
    );

    let (mut eig_curves, mut cost_curves, mut rows) = (Vec::new(), Vec::new(), Vec::new());
    let mut mini_curves = Vec::new();
    for &eta in &a.etas {
        let (mut eig_runs, mut cost_runs, mut iter_runs) = (Vec::new(), Vec::new(), Vec::new());
        let mut conv_runs = Vec::new();
        let (mut dom_runs, mut mini_runs) = (Vec::new(), Vec::new());
        for &seed in seeds {
            let mut net = network(&[784, 30, 10], Init::ScaledByInputs, seed)?;
            let (l0, d0, k0, ok0) = largest_eigenvalue(&mut net, &train, &idx, l2, power(seed))?;
            let mut converged = vec![ok0];
            let (m0, _) = minibatch_sharpness(&mut net, &train, l2, a.minibatches, power(seed))?;
            let c0 = net
                .evaluate(&train, 1000, Some(WeightPenalty::L2(lmbda)))?
                .cost;
            println!(
                "eta = {eta}, seed {seed}: 2/eta = {:.3}; epoch  0: lambda_max {l0:9.4} (dominant {d0:.4}, {k0} products{}), mini-batch lambda_max {m0:.4}, training cost {c0:.4}",
                2.0 / eta,
                if ok0 { "" } else { ", not converged" }
            );
            let (mut eig, mut dom, mut mini, mut cost, mut iters) =
                (vec![l0], vec![d0], vec![m0], vec![c0], vec![k0]);
            sgd(&mut net, &train, (a.epochs, 10, eta, lmbda), |e, net| {
                let (l, d, k, ok) = largest_eigenvalue(net, &train, &idx, l2, power(seed))?;
                converged.push(ok);
                let (m, _) = minibatch_sharpness(net, &train, l2, a.minibatches, power(seed))?;
                let c = net
                    .evaluate(&train, 1000, Some(WeightPenalty::L2(lmbda)))?
                    .cost;
                println!(
                    "eta = {eta}, seed {seed}: 2/eta = {:.3}; epoch {:2}: lambda_max {l:9.4} (dominant {d:.4}, {k} products{}), mini-batch lambda_max {m:.4}, training cost {c:.4}, eta lambda_max {:.3}",
                    2.0 / eta,
                    e + 1,
                    if ok { "" } else { ", not converged" },
                    eta * l
                );
                eig.push(l);
                dom.push(d);
                mini.push(m);
                cost.push(c);
                iters.push(k);
                Ok(())
            })?;
            eig_runs.push(eig);
            dom_runs.push(dom);
            mini_runs.push(mini);
            cost_runs.push(cost);
            iter_runs.push(iters);
            conv_runs.push(converged);
        }
        rows.push(json!({
            "eta": eta, "two_over_eta": 2.0 / eta,
            "lambda_max": eig_runs, "lambda_dominant": dom_runs,
            "minibatch_lambda_max": mini_runs,
            "power_iterations": iter_runs, "converged": conv_runs, "training_cost": cost_runs,
        }));
        eig_curves.push(mean_curve(
            format!("lambda_max, eta = {eta}"),
            &eig_runs,
            1.0,
            0.0,
        ));
        cost_curves.push(mean_curve(format!("eta = {eta}"), &cost_runs, 1.0, 0.0));
        mini_curves.push(mean_curve(format!("eta = {eta}"), &mini_runs, 1.0, 0.0));
    }
    // 2/eta as flat lines: a curve above its eta's line is a curvature gradient descent at
    // that eta cannot follow.
    for &eta in &a.etas {
        let flat = Curve {
            label: format!("2/eta = {}", 2.0 / eta),
            points: vec![(0.0, 2.0 / eta), (a.epochs as f64, 2.0 / eta)],
        };
        eig_curves.push(flat.clone());
        mini_curves.push(flat);
    }
    let mut c = chart(
        "Largest Hessian eigenvalue of the training cost",
        "Epoch",
        "lambda_max",
        eig_curves,
    );
    c.log_y = true;
    let mut m = chart(
        &format!(
            "Largest Hessian eigenvalue of a mini-batch of 10 (mean of {})",
            a.minibatches
        ),
        "Epoch",
        "lambda_max",
        mini_curves,
    );
    m.log_y = true;
    let mut costs = chart("Cost on the training data", "Epoch", "Cost", cost_curves);
    costs.log_y = true; // the start's cost is thirty times the end's
    Ok(Outcome::new(
        vec![c, m, costs],
        format!(
            "The Hessian technique: [784, 30, 10], lmbda {lmbda}, {} training images, Hessian on {}",
            a.train_images, a.hessian_images
        ),
        json!({
            "train_images": a.train_images, "hessian_images": a.hessian_images,
            "mini_batch": 10, "lambda": lmbda, "epochs": a.epochs,
            "max_power_iterations": a.power_iterations, "tolerance": a.tolerance,
            "minibatches": a.minibatches,
            "parameters": n_params,
            "cost_ratio": {"images": idx.len(), "repetitions": reps,
                "hvp_seconds": hvp_s, "gradient_seconds": grad_s, "ratio": hvp_s / grad_s},
            "runs": rows,
        }),
    ))
}

/// What `book hessian-free` is asked for.
struct HfArgs {
    epochs: usize,
    train_images: usize,
    batch: usize,
    cg_iterations: usize,
    damping: f64,
    sgd_eta: f64,
}

/// One Hessian-free step (Martens 2010, simplified): solve `(H + damping I) p = -g` by
/// conjugate gradient on Hessian-vector products from `p = 0`, take the step if it lowers the
/// cost, and adjust the damping Levenberg-Marquardt style by how well the quadratic model
/// predicted the change. Returns (cost before, products taken).
fn hf_step(
    net: &mut Network<f32>,
    data: &Dataset,
    idx: &[usize],
    l2: (f64, usize),
    cg_iterations: usize,
    damping: &mut f64,
) -> Result<(f64, usize)> {
    let (f0, g) = cost_and_gradient(net, data, idx, l2)?;
    let n = g.len();
    let (mut x, mut r) = (vec![0.0; n], g.iter().map(|v| -v).collect::<Vec<f64>>());
    let mut d = r.clone();
    let mut rr = dot(&r, &r);
    let g_norm = rr.sqrt();
    let mut products = 0;
    for _ in 0..cg_iterations {
        let mut bd = hessian_times(net, data, idx, l2, &d)?;
        products += 1;
        bd.iter_mut().zip(&d).for_each(|(b, d)| *b += *damping * d);
        let dbd = dot(&d, &bd);
        // Negative curvature the damping does not cover: the model has no minimum along d,
        // stop with what CG has (Martens' truncated Newton).
        if dbd <= 0.0 {
            break;
        }
        let alpha = rr / dbd;
        x.iter_mut().zip(&d).for_each(|(x, d)| *x += alpha * d);
        r.iter_mut().zip(&bd).for_each(|(r, b)| *r -= alpha * b);
        let rr_new = dot(&r, &r);
        if rr_new.sqrt() <= 1e-4 * g_norm {
            break;
        }
        let beta = rr_new / rr;
        rr = rr_new;
        d.iter_mut().zip(&r).for_each(|(d, r)| *d = r + beta * *d);
    }
    // The damped model's change q(x) = g.x + x.B.x / 2, with B x = -g - r: g.x / 2 - x.r / 2.
    let predicted = 0.5 * dot(&g, &x) - 0.5 * dot(&x, &r);
    let params = net.parameters();
    let dims = parameter_dims(net)?;
    let step = to_tensors(&x, &dims)?;
    let add = |net: &mut Network<f32>, sign: f32| -> Result<()> {
        for (&p, s) in params.iter().zip(&step) {
            let t = net.graph_mut().param_mut(p)?;
            t.data_mut()
                .iter_mut()
                .zip(s.data())
                .for_each(|(w, s)| *w += sign * s);
        }
        Ok(())
    };
    add(net, 1.0)?;
    let f1 = cost_only(net, data, idx, l2)?;
    let rho = if predicted < 0.0 {
        (f1 - f0) / predicted
    } else {
        f64::NEG_INFINITY
    };
    // Martens' constants: a model that predicted well earns a smaller damping (longer,
    // more Newton-like steps); one that did not, a larger (shorter, more gradient-like).
    if rho < 0.25 {
        *damping *= 1.5;
    } else if rho > 0.75 {
        *damping *= 2.0 / 3.0;
    }
    // A step that did not lower the cost (or made it NaN) is not taken.
    if f1.partial_cmp(&f0) != Some(std::cmp::Ordering::Less) {
        add(net, -1.0)?;
    }
    Ok((f0, products))
}

/// A Hessian-free optimiser against SGD on network2 [784, 30, 10]: training cost per epoch.
fn hessian_free(s: &Study, a: &HfArgs) -> Result<Outcome> {
    let (data, seeds) = (s.data, s.seeds);
    anyhow::ensure!(
        a.train_images > 0 && a.train_images <= data.training.len(),
        "--train-images: from 1 to {}",
        data.training.len()
    );
    anyhow::ensure!(a.batch > 0, "--batch must be at least 1");
    let lmbda = 5.0;
    let train = data.training.take(a.train_images);
    let l2 = (lmbda, train.len());
    let penalty = Some(WeightPenalty::L2(lmbda));
    let measure = |net: &mut Network<f32>| -> Result<(f64, f64)> {
        let c = net.evaluate(&train, 1000, penalty)?.cost;
        let v = net.evaluate(&data.validation, 1000, None)?.accuracy();
        Ok((c, v))
    };
    let (mut rows, mut cost_curves, mut acc_curves) = (Vec::new(), Vec::new(), Vec::new());
    let (mut hf_cost, mut hf_acc, mut hf_secs, mut hf_products) = (vec![], vec![], vec![], vec![]);
    let (mut sgd_cost, mut sgd_acc, mut sgd_secs) = (vec![], vec![], vec![]);
    for &seed in seeds {
        // Hessian-free: batches of `batch` shuffled images, one step each.
        let mut net = network(&[784, 30, 10], Init::ScaledByInputs, seed)?;
        let mut rng = nndl::Pcg64::seed_from_u64(seed);
        let (c0, v0) = measure(&mut net)?;
        let (mut cost, mut acc, mut secs, mut prods) = (vec![c0], vec![v0], vec![0.0], vec![0]);
        let mut damping = a.damping;
        let mut order: Vec<usize> = (0..train.len()).collect();
        let (mut elapsed, mut total_products) = (0.0, 0);
        for e in 0..a.epochs {
            order.shuffle(&mut rng);
            let start = Instant::now();
            for idx in order.chunks(a.batch) {
                let (_, k) = hf_step(&mut net, &train, idx, l2, a.cg_iterations, &mut damping)?;
                total_products += k;
            }
            elapsed += start.elapsed().as_secs_f64();
            let (c, v) = measure(&mut net)?;
            println!(
                "Hessian-free, seed {seed}, epoch {:2}: training cost {c:.4}, validation {:.2}%, damping {damping:.3}, {total_products} products, {elapsed:.2} s",
                e + 1,
                100.0 * v
            );
            cost.push(c);
            acc.push(v);
            secs.push(elapsed);
            prods.push(total_products);
        }
        hf_cost.push(cost);
        hf_acc.push(acc);
        hf_secs.push(secs);
        hf_products.push(prods);

        // SGD, mini-batch 10, as network2.
        let mut net = network(&[784, 30, 10], Init::ScaledByInputs, seed)?;
        let (c0, v0) = measure(&mut net)?;
        let (mut cost, mut acc, mut secs) = (vec![c0], vec![v0], vec![0.0]);
        let mut elapsed = 0.0;
        let mut start = Instant::now();
        sgd(
            &mut net,
            &train,
            (a.epochs, 10, a.sgd_eta, lmbda),
            |e, net| {
                elapsed += start.elapsed().as_secs_f64();
                let (c, v) = measure(net)?;
                println!(
                    "SGD eta {}, seed {seed}, epoch {:2}: training cost {c:.4}, validation {:.2}%, {elapsed:.2} s",
                    a.sgd_eta,
                    e + 1,
                    100.0 * v
                );
                cost.push(c);
                acc.push(v);
                secs.push(elapsed);
                start = Instant::now();
                Ok(())
            },
        )?;
        sgd_cost.push(cost);
        sgd_acc.push(acc);
        sgd_secs.push(secs);
    }
    let hf_name = format!("Hessian-free, CG {}, batch {}", a.cg_iterations, a.batch);
    let sgd_name = format!("SGD, eta {}, mini-batch 10", a.sgd_eta);
    cost_curves.push(mean_curve(hf_name.clone(), &hf_cost, 1.0, 0.0));
    cost_curves.push(mean_curve(sgd_name.clone(), &sgd_cost, 1.0, 0.0));
    acc_curves.push(mean_curve(hf_name, &hf_acc, 100.0, 0.0));
    acc_curves.push(mean_curve(sgd_name, &sgd_acc, 100.0, 0.0));
    rows.push(json!({"method": "hessian-free", "training_cost": hf_cost, "validation_accuracy": hf_acc, "seconds": hf_secs, "hvp_products": hf_products}));
    rows.push(json!({"method": "sgd", "eta": a.sgd_eta, "training_cost": sgd_cost, "validation_accuracy": sgd_acc, "seconds": sgd_secs}));
    let mut costs = chart("Cost on the training data", "Epoch", "Cost", cost_curves);
    costs.log_y = true; // the start's cost is thirty times the end's
    let mut acc = chart("Validation accuracy", "Epoch", "Accuracy (%)", acc_curves);
    acc.y_bounds = Some((0.0, 100.0));
    Ok(Outcome::new(
        vec![costs, acc],
        format!(
            "Hessian-free against SGD: [784, 30, 10], lmbda {lmbda}, {} training images",
            a.train_images
        ),
        json!({
            "train_images": a.train_images, "batch": a.batch, "cg_iterations": a.cg_iterations,
            "initial_damping": a.damping, "sgd_eta": a.sgd_eta, "lambda": lmbda, "epochs": a.epochs,
            "runs": rows,
        }),
    ))
}
