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
//! ```
//!
//! Every subcommand takes `--seeds N` (runs seeds 0..N and reports mean and spread; the book's
//! figures are single unseeded runs), `--plot PATH` (default `SUBCOMMAND.png`), `--json PATH`,
//! `--threads` and the data flags. Settings are the book's (network2: cross-entropy,
//! mini-batch 10, N(0, 1/n_in) weights unless it says otherwise).

use anyhow::Result;
use clap::{Parser, Subcommand};
use mnist::Dataset;
use nn::{Cost, Epoch, Init, Network, Regularization, Sgd, WeightPenalty};
use nndl::cli::DataDir;
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
