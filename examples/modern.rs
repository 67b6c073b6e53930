//! Past the book: the steps the field took after chapter 6 (batch norm, padded 3x3
//! convolutions, Adam, a learning-rate schedule, inverted dropout and random affine
//! augmentation), in the same library; no layer has gradient code of its own.
//!
//! `cargo run --release --example modern` trains the recipe (results in
//! docs/results/modern.md); `--layers` describes any other net with the same tokens, `--ensemble A B C` votes
//! saved nets. The epoch reported is the one of best validation accuracy (never chosen on
//! test), and `--save` keeps that epoch's weights.

use anyhow::{bail, Context, Result};
use clap::{Parser, ValueEnum};
use mnist::augment::Augment;
use mnist::Augmented;
use nn::{Adam, Optimizer, Regularization};
use nndl::cli::{self, Common, Resume, Tuning};
use nndl::ensemble::accuracy_of_probabilities as accuracy;
use nndl::run::{check_writable, Best};
use std::path::PathBuf;

/// The recipe: two blocks of two padded 3x3 convolutions with batch norm and ReLU, each block
/// max-pooled, then a batch-normed FC(3136, 128) with dropout and the softmax.
pub const RECIPE: &str =
    "conv2d:32x3x3,pad:1,nobias bn,relu conv2d:32x3x3,pad:1,nobias bn,relu pool:2 \
conv2d:64x3x3,pad:1,nobias bn,relu conv2d:64x3x3,pad:1,nobias bn,relu pool:2 \
flatten fc:128,linear,init:he bn,relu dropout:0.4 softmax:10";

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
enum Opt {
    /// Adam (PyTorch's defaults; `--weight-decay` as L2 in the gradient).
    Adam,
    /// AdamW (decoupled `--weight-decay`).
    Adamw,
    /// Plain SGD (with `--momentum`, momentum SGD).
    Sgd,
}

#[derive(Parser, Debug)]
#[command(about = "Past the book: batch norm, 3x3 convs, Adam, cosine schedule, augmentation")]
#[command(mut_arg("pixel_scale", |a| a.default_value("255")))]
#[command(mut_arg("epochs", |a| a.default_value("16")))]
#[command(mut_arg("mini_batch", |a| a.default_value("64")))]
#[command(mut_arg("eta", |a| a.help("Learning rate eta [default: 0.003; 0.05 with --optimizer sgd]")))]
#[command(mut_arg("ema", |a| a.default_value("0.999")))]
#[command(mut_arg("lr_decay", |a| a.help("Set eta before every epoch: `exp:GAMMA` (eta * GAMMA^epoch) or `cosine[:FLOOR]` (a cosine from eta down to FLOOR * eta over the run's epochs) [default: cosine, unless --eta-schedule]")))]
struct Args {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    tuning: Tuning,
    /// The net (default: the recipe; tokens in `nn::spec`, e.g. "conv2d:32x3x3,pad:1 bn,relu
    /// pool:2 flatten softmax:10").
    #[arg(long)]
    layers: Option<String>,
    /// The optimiser.
    #[arg(long, value_enum, default_value = "adam")]
    optimizer: Opt,
    /// Weight decay of the weights (L2 for adam and sgd, decoupled for adamw).
    #[arg(long = "weight-decay", default_value_t = 0.0, value_parser = nndl::cli::non_negative, allow_negative_numbers = true)]
    weight_decay: f64,
    /// Random rotation range, degrees (0 with the others: no augmentation).
    #[arg(long, default_value_t = Augment::MNIST.degrees)]
    degrees: f64,
    /// Random shift range, pixels.
    #[arg(long, default_value_t = Augment::MNIST.shift)]
    shift: f64,
    /// Random scale range (0.1: from 0.9 to 1.1).
    #[arg(long, default_value_t = Augment::MNIST.scale)]
    scale: f64,
    /// Train on the images as they are.
    #[arg(long = "no-augment")]
    no_augment: bool,
    /// Train the last N epochs on the images as they are (the test images are not
    /// interpolated).
    #[arg(long = "clean-epochs", value_name = "N", default_value_t = 0)]
    clean_epochs: usize,
    /// Train on the validation images too (60,000 in all) and report the last epoch: the
    /// number of epochs chosen beforehand on validation, nothing chosen by this run.
    #[arg(long = "train-all")]
    train_all: bool,
    /// Save the net of the best validation epoch (safetensors; with --train-all, the last).
    #[arg(long)]
    save: Option<PathBuf>,
    /// Load a saved net (safetensors) before training (with --epochs 0: just evaluate).
    #[arg(long)]
    load: Option<PathBuf>,
    /// Skip training: average the class probabilities of these saved nets (same --layers)
    /// and report each net's and the ensemble's validation and test accuracy.
    #[arg(long, num_args = 1.., value_name = "NET.safetensors", conflicts_with_all = ["save", "load", "checkpoint", "resume", "clean_epochs", "train_all"])]
    ensemble: Vec<PathBuf>,
    /// With --ensemble: average each net's probabilities over the images as they are and N-1
    /// copies transformed at random (the --degrees, --shift and --scale ranges, drawn from
    /// --seed): test-time augmentation.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = nndl::cli::positive_count, allow_negative_numbers = true)]
    tta: usize,
    /// Convolutions multiply in bf16 and sum in f32 where the CPU has AVX-512 BF16 (PyTorch's
    /// bf16 autocast for them; ignored elsewhere). Off by default: the recorded results are
    /// f32's.
    #[arg(long)]
    bf16: bool,
    /// Images per forward pass when evaluating (200 keeps a batch's activations in cache:
    /// 1000 took 4x the memory for the same speed).
    #[arg(long = "eval-batch", default_value_t = 200, value_parser = nndl::cli::positive_count, allow_negative_numbers = true)]
    eval_batch: usize,
    #[command(flatten)]
    resume: Resume,
}

fn main() {
    cli::exit_on_error(run);
}

fn run() -> Result<()> {
    let mut args: Args = cli::parse_args();
    if args.tuning.lr_decay.is_none() && !args.tuning.eta_schedule {
        args.tuning.lr_decay = Some("cosine".into());
    }
    // The weight average beat the weights themselves on validation at every epoch of three
    // seeds (README); `--ema 0` evaluates the weights.
    args.tuning.ema.get_or_insert(0.999);
    let (c, t) = (&args.common, &args.tuning);
    let threads = c.base.init_threads()?;
    let layers = args.layers.clone().unwrap_or_else(|| RECIPE.to_string());
    // 16 epochs: the most that fit in 15 minutes on the 2 cores measured (README).
    let (epochs, mb) = (c.epochs.unwrap_or(16), c.mini_batch.unwrap_or(64));
    let eta = c.eta.unwrap_or(match args.optimizer {
        Opt::Sgd => 0.05,
        _ => 0.003,
    });
    if args.tta > 1 && args.ensemble.is_empty() {
        bail!("--tta N takes N >= 1 and goes with --ensemble (one net or several)");
    }
    if args.train_all && t.eta_schedule {
        bail!("--eta-schedule judges validation accuracy, and --train-all trains on the validation images");
    }
    if args.optimizer != Opt::Sgd && t.momentum.is_some() {
        bail!("--momentum is for --optimizer sgd (Adam keeps its own moments)");
    }
    let augment = Augment {
        degrees: args.degrees,
        shift: args.shift,
        scale: args.scale,
    };
    let ranges = [augment.degrees, augment.shift, augment.scale];
    if ranges.iter().any(|r| !(r.is_finite() && *r >= 0.0)) || augment.scale >= 1.0 {
        bail!("--degrees, --shift and --scale must be >= 0 (and --scale below 1)");
    }
    // Check the description and the output paths before loading anything.
    nn::spec::build::<f32>(&layers, &mnist::IMAGE_DIMS, nn::Cost::LogLikelihood, c.seed)?;
    if let Some(p) = &args.save {
        check_writable("--save", p)?;
    }
    let ck = args.resume.open(false)?;
    let mut data = c.load(false)?;
    if !args.ensemble.is_empty() {
        return ensemble(&args, &layers, &data, augment);
    }
    if args.train_all {
        data.training = data.training.concat(&data.validation)?;
    }
    let augmenting = !args.no_augment && ranges.iter().any(|&r| r > 0.0);
    let mut settings = serde_json::json!({
        "layers": layers, "epochs": epochs, "mini_batch": mb, "eta": eta,
        "optimizer": format!("{:?}", args.optimizer).to_lowercase(), "weight_decay": args.weight_decay,
        "augment": augmenting.then(|| serde_json::json!({"degrees": augment.degrees, "shift": augment.shift, "scale": augment.scale})),
        "seed": c.seed, "threads": threads, "train_images": data.training.len(), "pixel_scale": c.base.pixel_divisor(),
    });
    if args.clean_epochs > 0 {
        settings["clean_epochs"] = args.clean_epochs.into();
    }
    if args.train_all {
        settings["train_all"] = true.into();
    }
    if args.bf16 {
        settings["bf16"] = tensor::conv::bf16_supported().into();
    }
    let mut run = t.run(c, "modern", settings)?;
    let eval_batch = args
        .eval_batch
        .min(data.validation.len().max(data.test.len()));
    let batches = (mb.min(data.training.len()), eval_batch);
    let mut net = c.layers_net(&layers, batches, args.load.as_deref())?;
    net.graph_mut().set_bf16_convolutions(args.bf16);
    let mut opt: Box<dyn Optimizer<f32>> = t.averaged(match args.optimizer {
        Opt::Adam => {
            let mut adam = Adam::new(eta);
            adam.weight_decay = args.weight_decay;
            Box::new(adam)
        }
        Opt::Adamw => Box::new(Adam::adamw(eta, args.weight_decay)),
        // PyTorch's SGD weight decay wd is network2's with lmbda/n = wd.
        Opt::Sgd => t.sgd(
            eta,
            Regularization::WeightDecay {
                lmbda: args.weight_decay * data.training.len() as f64,
                n: data.training.len(),
            },
        ),
    });
    let speeds = t.layer_speeds(&mut run, &mut net, &data.training)?;
    // The augmentation's draws depend on the seed, the epoch and the image only: a resumed
    // run sees what an uninterrupted one would.
    let training = Augmented::new(
        &data.training,
        if augmenting { augment } else { Augment::NONE },
        c.seed,
    )
    .plain_from(epochs.saturating_sub(args.clean_epochs));
    let best = run
        .train(&mut net, &training, opt.as_mut())
        .epochs(epochs)
        .mini_batch(mb)
        .checkpoints(&ck)
        .state(Best::default())
        .each_epoch(|end| {
            let is_best = if args.train_all {
                // No held-out images to judge by: the run's end is what is reported.
                end.report_training_cost();
                false
            } else {
                Best::judge(end, &data, args.eval_batch, true)?
            };
            speeds.after_epoch(end.net, &data.training, end.record)?;
            if let (true, Some(p)) = (is_best, &args.save) {
                nn::io::save_safetensors(end.net, p)?;
            }
            Ok(())
        })?;
    println!("Finished training network.");
    if let Some(test) = best.report() {
        run.record.test_accuracy = Some(test);
        if let (Some(p), Some(e)) = (&args.save, best.epoch) {
            eprintln!("saved the epoch-{e} net in {}", p.display());
        }
    } else {
        opt.swap_averaged(net.graph_mut())?;
        let test = net.evaluate(&data.test, args.eval_batch, None)?.accuracy();
        println!("Test accuracy {:.2}%", 100.0 * test);
        run.record.test_accuracy = Some(test);
        if let Some(p) = &args.save {
            nn::io::save_safetensors(&net, p)?;
        }
    }
    c.finish(&mut run, "modern")?;
    println!(
        "{:.1} s, {:.0} training images/s",
        run.record.wall_seconds, run.record.train_images_per_second
    );
    Ok(())
}

/// Averages the saved nets' class probabilities on validation and test.
fn ensemble(args: &Args, layers: &str, data: &mnist::MnistData, augment: Augment) -> Result<()> {
    let (n, seed) = (args.ensemble.len(), args.common.seed);
    let mut sums = [
        vec![0.0; data.validation.len() * 10],
        vec![0.0; data.test.len() * 10],
    ];
    for path in &args.ensemble {
        let mut net =
            nn::spec::build::<f32>(layers, &mnist::IMAGE_DIMS, nn::Cost::LogLikelihood, 0)?;
        args.common
            .check_memory(&net, 1, args.eval_batch.min(data.test.len()))?;
        nn::io::load_safetensors(&mut net, path).with_context(|| {
            format!(
                "--ensemble: {} (built with --layers {layers:?})",
                path.display()
            )
        })?;
        let mut acc = [0.0; 2];
        for (k, set) in [&data.validation, &data.test].into_iter().enumerate() {
            let p = mnist::probabilities_augmented(
                &mut net,
                set,
                augment,
                args.tta,
                seed,
                args.eval_batch,
            )?;
            if p.len() != sums[k].len() {
                bail!("--ensemble: {} does not output 10 classes", path.display());
            }
            acc[k] = accuracy(&p, set);
            sums[k]
                .iter_mut()
                .zip(&p)
                .for_each(|(s, v)| *s += v / n as f64);
        }
        println!(
            "{}: validation accuracy {:.2}%, test accuracy {:.2}%",
            path.display(),
            100.0 * acc[0],
            100.0 * acc[1]
        );
    }
    if args.tta > 1 {
        println!(
            "(each net's probabilities averaged over the images and {} transformed copies)",
            args.tta - 1
        );
    }
    println!(
        "Ensemble of {n} nets (mean probabilities): validation accuracy {:.2}%, test accuracy {:.2}%",
        100.0 * accuracy(&sums[0], &data.validation),
        100.0 * accuracy(&sums[1], &data.test)
    );
    Ok(())
}
