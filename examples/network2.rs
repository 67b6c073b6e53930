//! The book's `network2.py` (chapter 3): cross-entropy cost, L2 weight decay, N(0, 1/n_in)
//! initialisation, monitoring of cost and accuracy, early stopping, save/load in network2's
//! JSON format (or safetensors).
//!
//! `cargo run --release --example network2` is the book's
//! `net = network2.Network([784, 30, 10], cost=network2.CrossEntropyCost)`
//! `net.SGD(training_data, 30, 10, 0.5, lmbda=5.0, evaluation_data=validation_data, monitor_*=True)`.
//! `--large-weights` is `net.large_weight_initializer()`, which the chapter's comparisons call.
//! Chapter 3's exercises are flags: `--momentum MU`, `--l1 LAMBDA`, `--activation tanh`,
//! `--eta-schedule`; chapter 5's are `--sizes 784,30,30,10` and `--layer-speeds`.

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};
use nn::{Activation, Cost, Init, Network, Regularization, WeightPenalty};
use nndl::cli::{self, Common, Hidden, Lambda, Resume, Tuning};
use nndl::run::{check_writable, Patience};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum CostArg {
    CrossEntropy,
    Quadratic,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
enum HiddenArg {
    Sigmoid,
    Tanh,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
enum EvalSet {
    Validation,
    Test,
}

#[derive(Parser, Debug)]
#[command(about = "network2.py: chapter 3's network, cross-entropy, L2, better init, monitoring")]
#[command(mut_arg("pixel_scale", |a| a.default_value("255")))]
#[command(mut_arg("epochs", |a| a.default_value("30")))]
#[command(mut_arg("mini_batch", |a| a.default_value("10")))]
#[command(mut_arg("eta", |a| a.default_value("0.5")))]
#[command(mut_arg("lambda", |a| a.default_value("5.0")))]
#[command(mut_arg("hidden", |a| a.default_value("30")))]
struct Args {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    hidden: Hidden,
    #[command(flatten)]
    lambda: Lambda,
    #[command(flatten)]
    tuning: Tuning,
    /// The cost.
    #[arg(long, value_enum, default_value = "cross-entropy")]
    cost: CostArg,
    /// Initialise weights N(0, 1) (network2's large_weight_initializer) instead of N(0, 1/n_in).
    #[arg(long = "large-weights")]
    large_weights: bool,
    /// Which data set plays network2's `evaluation_data`.
    #[arg(long, value_enum, default_value = "validation")]
    evaluation: EvalSet,
    /// Stop when evaluation accuracy has not improved in N epochs (the book's exercise).
    #[arg(long = "early-stopping", value_parser = nndl::cli::positive_count, allow_negative_numbers = true)]
    early_stopping: Option<usize>,
    /// Monitor only evaluation accuracy (skip the cost and training-set passes).
    #[arg(long = "accuracy-only")]
    accuracy_only: bool,
    /// Layer sizes, input to output (e.g. 784,30,30,10: chapter 5's deeper nets); overrides
    /// --hidden.
    #[arg(long, value_delimiter = ',', num_args = 1.., conflicts_with = "hidden")]
    sizes: Option<Vec<usize>>,
    /// The hidden neurons (tanh: chapter 3's exercise; the output layer stays sigmoid, so the
    /// targets stay 0/1 and the cross-entropy applies).
    #[arg(long, value_enum, default_value = "sigmoid")]
    activation: HiddenArg,
    /// L1 regularisation with this lambda instead of L2 (chapter 3's exercise).
    #[arg(long, value_name = "LAMBDA", conflicts_with = "lambda", value_parser = nndl::cli::non_negative, allow_negative_numbers = true)]
    l1: Option<f64>,
    /// Save the trained net: network2 JSON, or safetensors if the name ends in .safetensors.
    #[arg(long)]
    save: Option<PathBuf>,
    /// Start from a saved net (network2 JSON from nndl or the book's network2.py).
    #[arg(long)]
    load: Option<PathBuf>,
    #[command(flatten)]
    resume: Resume,
}

fn main() {
    cli::exit_on_error(run);
}

fn is_safetensors(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "safetensors")
}

fn run() -> Result<()> {
    let args: Args = cli::parse_args();
    let (c, t) = (&args.common, &args.tuning);
    let threads = c.base.init_threads()?;
    let (epochs, mb, eta) = (
        c.epochs.unwrap_or(30),
        c.mini_batch.unwrap_or(10),
        c.eta.unwrap_or(0.5),
    );
    let lmbda = args.l1.unwrap_or(args.lambda.lambda.unwrap_or(5.0));
    let sizes = match &args.sizes {
        Some(s) => s.clone(),
        None => vec![784, args.hidden.hidden.unwrap_or(30), 10],
    };
    anyhow::ensure!(
        sizes.len() >= 2 && sizes[0] == 784 && sizes[sizes.len() - 1] == 10 && !sizes.contains(&0),
        "--sizes {sizes:?}: MNIST needs 784 inputs first, 10 outputs last, no empty layer"
    );
    let hidden_act = match args.activation {
        HiddenArg::Sigmoid => Activation::Sigmoid,
        HiddenArg::Tanh => Activation::Tanh,
    };
    if let Some(p) = &args.save {
        // Fail before training, not after.
        check_writable("--save", p)?;
    }
    let ck = args.resume.open(false)?;
    let data = c.load(false)?;
    let cost = match args.cost {
        CostArg::CrossEntropy => Cost::CrossEntropy,
        CostArg::Quadratic => Cost::Quadratic,
    };
    let init = if args.large_weights {
        Init::Large
    } else {
        Init::ScaledByInputs
    };
    let mut net = match &args.load {
        Some(p) if is_safetensors(p) => {
            let mut net = Network::<f32>::mlp(&sizes, hidden_act, cost, init, c.seed)?;
            nn::io::load_safetensors(&mut net, p)?;
            net
        }
        Some(p) => nn::io::load_network2_json::<f32>(p)?,
        None => Network::<f32>::mlp(&sizes, hidden_act, cost, init, c.seed)?,
    };
    c.check_memory(&net, mb.min(data.training.len()), 1000)?;
    if let Some(p) = &args.load {
        anyhow::ensure!(
            net.input_dims() == [784] && net.output_dims() == [10],
            "--load {}: the model takes {:?} inputs and gives {:?} outputs; MNIST needs [784] and [10]",
            p.display(),
            net.input_dims(),
            net.output_dims()
        );
    }
    let n = data.training.len();
    let (eval, eval_name) = match args.evaluation {
        EvalSet::Validation => (&data.validation, "validation"),
        EvalSet::Test => (&data.test, "test"),
    };
    let settings = serde_json::json!({
        "architecture": net.describe(), "epochs": epochs, "mini_batch": mb, "eta": eta, "lambda": lmbda,
        "seed": c.seed, "threads": threads, "train_images": n, "init": if args.large_weights { "N(0,1)" } else { "N(0,1/n_in)" },
        "evaluation_data": eval_name, "early_stopping": args.early_stopping, "loaded": args.load,
        "regularization": if args.l1.is_some() { "L1" } else { "L2" },
    });
    let mut run = t.run(c, "network2", settings)?;
    let (reg, penalty) = match args.l1 {
        Some(l) => (Regularization::L1 { lmbda: l, n }, WeightPenalty::L1(l)),
        None => (
            Regularization::WeightDecay { lmbda, n },
            WeightPenalty::L2(lmbda),
        ),
    };
    let mut opt = t.optimizer(eta, reg);
    let speeds = t.layer_speeds(&mut run, &mut net, &data.training)?;
    let stop = |p: &Patience| args.early_stopping.is_some_and(|k| p.since >= k);
    let best = run
        .train(&mut net, &data.training, opt.as_mut())
        .epochs(epochs)
        .mini_batch(mb)
        .checkpoints(&ck)
        .state(Patience::default())
        .stop_when(stop)
        .each_epoch(|end| {
            let (net, e) = (&mut *end.net, &mut *end.record);
            println!("Epoch {} training complete", e.epoch);
            speeds.after_epoch(net, &data.training, e)?;
            if !args.accuracy_only {
                let tr = net.evaluate(&data.training, 1000, Some(penalty))?;
                println!("Cost on training data: {}", tr.cost);
                println!("Accuracy on training data: {} / {}", tr.correct, tr.total);
                e.training_cost = Some(tr.cost);
                e.training_accuracy = Some(tr.accuracy());
            }
            let ev = net.evaluate(eval, 1000, Some(penalty))?;
            if !args.accuracy_only {
                println!("Cost on evaluation data: {}", ev.cost);
                e.evaluation_cost = Some(ev.cost);
            }
            println!("Accuracy on evaluation data: {} / {}", ev.correct, ev.total);
            println!();
            // The plot and the JSON name the set: validation feeds best_validation_accuracy.
            match args.evaluation {
                EvalSet::Validation => e.validation_accuracy = Some(ev.accuracy()),
                EvalSet::Test => e.evaluation_accuracy = Some(ev.accuracy()),
            }
            end.state.observe(ev.correct);
            Ok(())
        })?;
    if stop(&best) {
        println!("Early stopping: no improvement in {} epochs.", best.since);
    }
    let test = net.evaluate(&data.test, 1000, None)?;
    if let Some(last) = run.record.epochs.last_mut() {
        last.test_accuracy = Some(test.accuracy());
    }
    run.record.test_accuracy = Some(test.accuracy());
    if let Some(p) = &args.save {
        if is_safetensors(p) {
            nn::io::save_safetensors(&net, p)?;
        } else {
            nn::io::save_network2_json(&net, p)?;
        }
        eprintln!("saved {}", p.display());
    }
    let sizes: Vec<usize> = std::iter::once(784)
        .chain(
            net.layers()
                .iter()
                .filter_map(|l| l.as_fully_connected())
                .map(|f| f.n_out()),
        )
        .collect();
    c.finish(
        &mut run,
        &format!("network2 {sizes:?}, eta {eta}, lambda {lmbda}"),
    )
    .context("writing the run record")?;
    println!(
        "Test accuracy {:.2}% after the last epoch; best {eval_name} accuracy {:.2}%; {:.1} s, {:.0} training images/s",
        100.0 * test.accuracy(),
        100.0 * best.best as f64 / eval.len().max(1) as f64,
        run.record.wall_seconds,
        run.record.train_images_per_second
    );
    Ok(())
}
