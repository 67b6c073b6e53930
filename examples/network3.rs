//! The book's `network3.py` (chapter 6): conv-pool, fully connected and softmax layers with
//! network3's dropout and L2 term in the graph, one preset per experiment of the chapter.
//!
//! `cargo run --release --example network3 -- --preset relu --epochs 1`
//! Presets: shallow, conv, conv2, relu, expanded, extra-fc, dropout, ensemble (see `--help`).
//! `--layers "conv:20x5x5,pool:2,relu fc:100,relu softmax:10"` trains a net of your own.
//!
//! The presets compute what network3.py computed: pixels value/256 (its `mnist.pkl.gz`) and
//! the max-pool gradient to every tied maximum (Theano's; `ties` in the layer description).
//! `--layers` nets default to value/255 and the first maximum, like other frameworks.

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use nn::{Network, Regularization};
use nndl::cli::{self, Common, Lambda, Resume, Tuning};
use nndl::run::{check_writable, Best, Checkpoints, Run};
use nndl::{ensemble, figures};
use std::path::PathBuf;

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
enum Preset {
    /// FC(784,100) sigmoid + softmax, 60 epochs, eta 0.1 (book: 97.80%).
    Shallow,
    /// + ConvPool(20x5x5, pool 2) before FC(2880,100) (book: 98.78%).
    Conv,
    /// + second ConvPool(40x20x5x5), FC(640,100) (book: 99.06%).
    Conv2,
    /// conv2 with ReLU everywhere, eta 0.03, lambda 0.1 (book: 99.23%).
    Relu,
    /// relu on the 250,000-image expanded training set (book: 99.37%).
    Expanded,
    /// expanded + an extra FC(100,100) (book: 99.43%).
    ExtraFc,
    /// FC(640,1000), FC(1000,1000), softmax(1000,10), dropout 0.5, expanded, 40 epochs (book: 99.60%).
    Dropout,
    /// Five dropout nets with different seeds, majority vote (book: 99.67%).
    Ensemble,
}

struct Setup {
    layers: &'static str,
    epochs: usize,
    eta: f64,
    lambda: f64,
    expanded: bool,
}

fn setup(p: Preset) -> Setup {
    let s = |layers, epochs, eta, lambda, expanded| Setup {
        layers,
        epochs,
        eta,
        lambda,
        expanded,
    };
    match p {
        Preset::Shallow => s("fc:100 softmax:10", 60, 0.1, 0.0, false),
        Preset::Conv => s("conv:20x5x5,pool:2,ties fc:100 softmax:10", 60, 0.1, 0.0, false),
        Preset::Conv2 => s("conv:20x5x5,pool:2,ties conv:40x5x5,pool:2,ties fc:100 softmax:10", 60, 0.1, 0.0, false),
        Preset::Relu => s("conv:20x5x5,pool:2,relu,ties conv:40x5x5,pool:2,relu,ties fc:100,relu softmax:10", 60, 0.03, 0.1, false),
        Preset::Expanded => s("conv:20x5x5,pool:2,relu,ties conv:40x5x5,pool:2,relu,ties fc:100,relu softmax:10", 60, 0.03, 0.1, true),
        Preset::ExtraFc => s("conv:20x5x5,pool:2,relu,ties conv:40x5x5,pool:2,relu,ties fc:100,relu fc:100,relu softmax:10", 60, 0.03, 0.1, true),
        Preset::Dropout | Preset::Ensemble => s(
            "conv:20x5x5,pool:2,relu,ties conv:40x5x5,pool:2,relu,ties fc:1000,relu,dropout:0.5 fc:1000,relu,dropout:0.5 softmax:10,dropout:0.5",
            40,
            0.03,
            0.1,
            true,
        ),
    }
}

#[derive(Parser, Debug)]
#[command(about = "network3.py: chapter 6's conv nets, softmax, dropout; a preset per experiment")]
#[command(mut_arg("epochs", |a| a.help("Epochs to train [default: the preset's] (40 for dropout and ensemble; 60 for the others)")))]
#[command(mut_arg("mini_batch", |a| a.default_value("10")))]
#[command(mut_arg("eta", |a| a.help("Learning rate eta [default: the preset's] (0.1 for shallow, conv and conv2; 0.03 for the others)")))]
#[command(mut_arg("lambda", |a| a.help("L2 regularisation lambda, network3's term in the cost [default: the preset's] (0 for shallow, conv and conv2; 0.1 for the others)")))]
#[command(mut_arg("pixel_scale", |a| a.help("Pixel bytes become value/255 or value/256 [default: 256 (network3.py's mnist.pkl.gz) for the presets, 255 with --layers]")))]
struct Args {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    lambda: Lambda,
    #[command(flatten)]
    tuning: Tuning,
    /// The chapter's experiment to run.
    #[arg(long, value_enum, default_value = "shallow")]
    preset: Preset,
    /// Your own net instead of the preset's (e.g. "conv:20x5x5,pool:2,relu fc:100,relu softmax:10").
    #[arg(long)]
    layers: Option<String>,
    /// Train on the expanded 250,000-image set (made in memory if data/mnist lacks it).
    #[arg(long)]
    expanded: bool,
    /// Shuffle the training set each epoch (network3 does not).
    #[arg(long)]
    shuffle: bool,
    /// Save the trained net (safetensors); for the ensemble, a directory for the five nets.
    #[arg(long)]
    save: Option<PathBuf>,
    /// Load a saved net (safetensors) before training (with --epochs 0: just evaluate).
    #[arg(long)]
    load: Option<PathBuf>,
    /// Ensemble: skip training and re-run the vote from the nets saved in --save DIR.
    #[arg(long = "vote-only")]
    vote_only: bool,
    /// Draw every test digit the net (or the ensemble's vote) gets wrong into this PNG, each
    /// captioned "true → predicted".
    #[arg(long, value_name = "PATH.png")]
    misclassified: Option<PathBuf>,
    /// Images per forward pass when evaluating (network3.py used its mini-batch size, 10; the
    /// accuracies come out the same, see docs/results/ch6.md).
    #[arg(long = "eval-batch", default_value_t = 1000, value_parser = nndl::cli::positive_count, allow_negative_numbers = true)]
    eval_batch: usize,
    /// Draw the first conv-pool layer's learned filters into this PNG (the book's figure of
    /// the 20 5x5 filters; dark = positive weight).
    #[arg(long, value_name = "PATH.png")]
    filters: Option<PathBuf>,
    /// Ensemble size [default: 5].
    #[arg(long, value_parser = nndl::cli::positive_count, allow_negative_numbers = true)]
    nets: Option<usize>,
    /// Checkpoints (an ensemble keeps one per net in DIR/net0, DIR/net1, ...).
    #[command(flatten)]
    resume: Resume,
}

fn main() {
    cli::exit_on_error(run);
}

/// What every net of the run trains: the flags, the net's description, the data and the
/// hyper-parameters the preset and the flags settle on.
struct Experiment<'a> {
    args: &'a Args,
    layers: &'a str,
    data: mnist::MnistData,
    epochs: usize,
    eta: f64,
    lambda: f64,
}

/// network3.py's `SGD`: after every epoch the validation accuracy, and the test accuracy
/// whenever the validation accuracy is the best to date.
fn train(x: &Experiment, net: &mut Network<f32>, run: &mut Run, ck: &Checkpoints) -> Result<Best> {
    let (args, data) = (x.args, &x.data);
    let mb = args.common.mini_batch.unwrap_or(10);
    let num_batches = data.training.len() / mb;
    let reg = Regularization::InGraph {
        lmbda: x.lambda,
        num_batches,
    };
    let mut opt = args.tuning.optimizer(x.eta, reg);
    // network3 trains on whole mini-batches only.
    let training = data.training.take(num_batches * mb);
    let speeds = args.tuning.layer_speeds(run, net, &training)?;
    Ok(run
        .train(net, &training, opt.as_mut())
        .epochs(x.epochs)
        .mini_batch(mb)
        .shuffle(args.shuffle)
        .checkpoints(ck)
        .state(Best::default())
        .each_epoch(|end| {
            Best::judge(end, data, args.eval_batch, false)?;
            Ok(speeds.after_epoch(end.net, &training, end.record)?)
        })?)
}

fn run() -> Result<()> {
    let mut args: Args = cli::parse_args();
    if args.layers.is_none() {
        // What network3.py read: mnist.pkl.gz's pixels are value/256.
        args.common.base.default_pixel_scale = 256;
    }
    let (args, c) = (&args, &args.common);
    let threads = c.base.init_threads()?;
    let s = setup(args.preset);
    let layers = args.layers.clone().unwrap_or_else(|| s.layers.to_string());
    let (epochs, eta, lambda) = (
        c.epochs.unwrap_or(s.epochs),
        c.eta.unwrap_or(s.eta),
        args.lambda.lambda.unwrap_or(s.lambda),
    );
    let mb = c.mini_batch.unwrap_or(10);
    let expanded = args.expanded || (s.expanded && args.layers.is_none());
    // Check the description before loading anything.
    nn::spec::build::<f32>(&layers, &mnist::IMAGE_DIMS, nn::Cost::LogLikelihood, c.seed)?;
    let is_ensemble = args.preset == Preset::Ensemble && args.layers.is_none();
    if !is_ensemble && (args.vote_only || args.nets.is_some()) {
        bail!("--vote-only and --nets are for --preset ensemble (without --layers)");
    }
    if let Some(p) = &args.save {
        // Fail before training, not after.
        if is_ensemble {
            std::fs::create_dir_all(p)
                .with_context(|| format!("--save {}: cannot create it", p.display()))?;
            check_writable("--save", &p.join("net0.safetensors"))?;
        } else {
            check_writable("--save", p)?;
        }
    }
    if args.filters.is_some() && !layers.trim_start().starts_with("conv:") {
        bail!("--filters: the first layer is not a conv-pool layer");
    }
    for (flag, p) in [
        ("--misclassified", &args.misclassified),
        ("--filters", &args.filters),
    ] {
        if let Some(p) = p {
            check_writable(flag, p)?;
        }
    }
    let ck = args.resume.open(is_ensemble)?;
    let data = c.load(expanded)?;
    let settings = serde_json::json!({
        "preset": format!("{:?}", args.preset), "layers": layers, "epochs": epochs, "mini_batch": mb, "eta": eta,
        "lambda": lambda, "seed": c.seed, "threads": threads, "train_images": data.training.len(), "expanded": expanded,
        "shuffle": args.shuffle, "pixel_scale": c.base.pixel_divisor(),
    });
    let mut run = args.tuning.run(c, "network3", settings)?;
    let x = Experiment {
        args,
        layers: &layers,
        data,
        epochs,
        eta,
        lambda,
    };
    if is_ensemble {
        return vote(&x, run, &ck);
    }
    let data = &x.data;
    let eval_batch = args
        .eval_batch
        .min(data.validation.len().max(data.test.len()));
    let batches = (mb.min(data.training.len()), eval_batch);
    let mut net = c.layers_net(&layers, batches, args.load.as_deref())?;
    let best = train(&x, &mut net, &mut run, &ck)?;
    println!("Finished training network.");
    if best.report().is_none() {
        let test = net.evaluate(&data.test, args.eval_batch, None)?.accuracy();
        println!("Test accuracy {:.2}%", 100.0 * test);
        run.record.test_accuracy = Some(test);
    }
    if let Some(p) = &args.save {
        nn::io::save_safetensors(&net, p)?;
        eprintln!("saved {}", p.display());
    }
    if let Some(p) = &args.filters {
        figures::filters(p, &net)?;
    }
    if let Some(p) = &args.misclassified {
        let predicted = net.predict(&data.test, args.eval_batch)?;
        figures::misclassified(p, &data.test, &predicted, "the net (final weights)")?;
    }
    c.finish(&mut run, &format!("network3 {:?}", args.preset))?;
    println!(
        "{:.1} s, {:.0} training images/s",
        run.record.wall_seconds, run.record.train_images_per_second
    );
    Ok(())
}

/// The ensemble preset: `--nets` nets of consecutive seeds trained (or, `--vote-only`,
/// loaded) one after another, each saved, then their majority vote on the test set.
fn vote(x: &Experiment, mut run: Run, ck: &Checkpoints) -> Result<()> {
    let (args, c, data, layers) = (x.args, &x.args.common, &x.data, x.layers);
    let nets = args.nets.unwrap_or(5);
    let dir = args
        .save
        .clone()
        .unwrap_or_else(|| PathBuf::from("runs/ensemble"));
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    if let Some(r) = &args.resume.resume {
        run.resume_ensemble(r, nets)?;
    }
    let mut predictions = Vec::new();
    for k in 0..nets {
        let seed = c.seed + k as u64;
        let path = dir.join(format!("net{k}_seed{seed}.safetensors"));
        let mut net =
            nn::spec::build::<f32>(layers, &mnist::IMAGE_DIMS, nn::Cost::LogLikelihood, seed)?;
        let (mb, eb) = (
            c.mini_batch.unwrap_or(10),
            args.eval_batch.min(data.test.len()),
        );
        c.check_memory(&net, mb.min(data.training.len()), eb)?;
        if args.vote_only {
            nn::io::load_safetensors(&mut net, &path)
                .with_context(|| "--vote-only needs the nets an earlier ensemble run saved")?;
        } else {
            println!("Ensemble net {k} (seed {seed})");
            let best = train(x, &mut net, &mut run, &ck.for_net(k))?;
            println!(
                "Net {k}: test accuracy {:.2}% at its best validation epoch",
                100.0 * best.test
            );
            nn::io::save_safetensors(&net, &path)?;
        }
        let p = net.predict(&data.test, args.eval_batch)?;
        let acc = ensemble::correct(&p, &data.test);
        println!(
            "Net {k}: {acc} / {} on the test set (final weights)",
            data.test.len()
        );
        predictions.push(p);
    }
    let v = ensemble::vote(&predictions, data.test.len());
    let correct = ensemble::correct(&v, &data.test);
    let acc = correct as f64 / data.test.len() as f64;
    println!(
        "Ensemble of {} nets, majority vote: {correct} / {} = {:.2}% test accuracy",
        nets,
        data.test.len(),
        100.0 * acc
    );
    run.record.test_accuracy = Some(acc);
    if let Some(p) = &args.misclassified {
        figures::misclassified(p, &data.test, &v, &format!("the ensemble of {nets}"))?;
    }
    c.finish(&mut run, "network3 ensemble")?;
    Ok(())
}
