//! Time to accuracy on a CPU: the fastest recipe found for each test accuracy, trained for
//! a fixed number of epochs on all 60,000 training images and judged once, on the test set,
//! after the last one. The wall time printed is the whole program's: loading, training and
//! evaluating.
//!
//! ```text
//! cargo run --release --example speedrun -- --target 99.0
//! cargo run --release --example speedrun -- --target 99.5 --seed 1
//! cargo run --release --example speedrun -- --target 99.0 --validate   # choosing: 50k / validation
//! ```
//!
//! Each recipe is a stack of stages, a padded 3x3 convolution without bias and its 2x2
//! max-pool (one fused layer, `conv2d:16x3x3,pad:1,nobias,pool:2`), then batch norm and ReLU
//! (pooling first makes the normalisation and the activation 4x cheaper), flattened into the
//! softmax layer, the convolutions multiplying in bf16 where the
//! CPU can (`--fp32` to keep f32); SGD with Nesterov momentum 0.9, weight decay
//! 5e-4 on the weights, mini-batch 128 and a one-cycle learning rate (a linear rise to the
//! peak, 0.2, over the first 20% of steps, a linear fall to zero). The settings were chosen with
//! `--validate` (training on the first 50,000 images, judged on the other 10,000), never on
//! the test set; docs/results/speedrun.md has the figures and benches/speedrun_pytorch.py the
//! same recipes in PyTorch.

use anyhow::Result;
use clap::{Parser, ValueEnum};
use mnist::augment::Augment;
use mnist::Augmented;
use nn::{Momentum, OneCycle, Optimizer, Regularization};
use nndl::cli::{self, Common};
use std::time::Instant;

/// The accuracy a recipe is for.
#[derive(Clone, Copy, Debug, ValueEnum, PartialEq)]
enum Target {
    /// 99.0%: stages of 16, 32 and 64 channels, one epoch.
    #[value(name = "99.0")]
    P990,
    /// 99.5%: stages of 16, 32, 64 and 128 channels (the last unpooled), three epochs,
    /// label smoothing 0.1, random shifts of up to 2 pixels.
    #[value(name = "99.5")]
    P995,
    /// 99.7%: stages of 32, 64, 128 and 256 channels (the last unpooled), 15 epochs, label
    /// smoothing 0.1, random shifts of up to 2 pixels.
    #[value(name = "99.7")]
    P997,
}

/// A recipe: the net, its epochs, and what it trains with.
struct Recipe {
    layers: String,
    epochs: usize,
    eta: f64,
    label_smoothing: f64,
    shift: f64,
}

/// `conv 3x3 pad 1 (no bias) -> pool 2 -> bn, relu` per channel count (the last stage
/// unpooled when `pool_last` is false), then the softmax layer.
fn stages(channels: &[usize], pool_last: bool) -> String {
    let mut s = String::new();
    for (k, c) in channels.iter().enumerate() {
        s += &format!("conv2d:{c}x3x3,pad:1,nobias");
        // The pool fused into the convolution: the unpooled output never reaches memory.
        if pool_last || k + 1 < channels.len() {
            s += ",pool:2";
        }
        s += " bn,relu ";
    }
    s + "flatten softmax:10"
}

impl Target {
    /// The accuracy as `--target` names it.
    fn name(self) -> &'static str {
        match self {
            Target::P990 => "99.0",
            Target::P995 => "99.5",
            Target::P997 => "99.7",
        }
    }

    fn recipe(self) -> Recipe {
        match self {
            Target::P990 => Recipe {
                layers: stages(&[16, 32, 64], true),
                epochs: 1,
                eta: 0.2,
                label_smoothing: 0.0,
                shift: 0.0,
            },
            Target::P995 => Recipe {
                layers: stages(&[16, 32, 64, 128], false),
                epochs: 3,
                eta: 0.2,
                label_smoothing: 0.1,
                shift: 2.0,
            },
            Target::P997 => Recipe {
                layers: stages(&[32, 64, 128, 256], false),
                epochs: 15,
                eta: 0.2,
                label_smoothing: 0.1,
                shift: 2.0,
            },
        }
    }
}

#[derive(Parser, Debug)]
#[command(about = "Time to accuracy: the fastest recipe for 99.0, 99.5 or 99.7% test accuracy")]
#[command(mut_arg("pixel_scale", |a| a.default_value("255")))]
#[command(mut_arg("epochs", |a| a.help("Epochs [default: the recipe's: 1, 3 or 15]")))]
#[command(mut_arg("mini_batch", |a| a.default_value("128")))]
#[command(mut_arg("eta", |a| a.help("Peak learning rate of the one-cycle schedule [default: the recipe's, 0.2]")))]
struct Args {
    #[command(flatten)]
    common: Common,
    /// The test accuracy the recipe is for.
    #[arg(long, value_enum, default_value = "99.0")]
    target: Target,
    /// Train on the first 50,000 training images and report the validation accuracy (how
    /// the recipes were chosen) instead of training on all 60,000 and testing.
    #[arg(long)]
    validate: bool,
    /// The net (default: the recipe's; tokens as in `nn::spec`).
    #[arg(long)]
    layers: Option<String>,
    /// Share of the steps over which the learning rate rises to its peak.
    #[arg(long, default_value_t = 0.2, value_parser = nndl::cli::unit_interval)]
    warmup: f64,
    /// Weight decay of the weights (PyTorch's SGD `weight_decay`).
    #[arg(long = "weight-decay", default_value_t = 5e-4, value_parser = nndl::cli::non_negative, allow_negative_numbers = true)]
    weight_decay: f64,
    /// Label smoothing (default: the recipe's).
    #[arg(long = "label-smoothing", value_parser = nndl::cli::unit_interval)]
    label_smoothing: Option<f64>,
    /// Random shift range in pixels, the training images' only augmentation (default: the
    /// recipe's).
    #[arg(long, value_parser = nndl::cli::non_negative, allow_negative_numbers = true)]
    shift: Option<f64>,
    /// Convolutions in f32 throughout. By default they multiply in bf16 and sum in f32
    /// where the CPU has AVX-512 BF16 (PyTorch's bf16 autocast for them): 1.3-1.4x the
    /// training speed at the same accuracy (docs/results/speedrun.md).
    #[arg(long)]
    fp32: bool,
    /// Images per forward pass when evaluating.
    #[arg(long = "eval-batch", default_value_t = 500, value_parser = nndl::cli::positive_count, allow_negative_numbers = true)]
    eval_batch: usize,
}

fn main() {
    // The clock starts with the program: the time to accuracy includes loading.
    let start = Instant::now();
    cli::exit_on_error(|| run(start));
}

fn run(start: Instant) -> Result<()> {
    let args: Args = cli::parse_args();
    let c = &args.common;
    let threads = c.base.init_threads()?;
    let recipe = args.target.recipe();
    let layers = args.layers.clone().unwrap_or(recipe.layers);
    let epochs = c.epochs.unwrap_or(recipe.epochs);
    let (mb, eta) = (c.mini_batch.unwrap_or(128), c.eta.unwrap_or(recipe.eta));
    let smoothing = args.label_smoothing.unwrap_or(recipe.label_smoothing);
    let shift = args.shift.unwrap_or(recipe.shift);
    nn::spec::build::<f32>(&layers, &mnist::IMAGE_DIMS, nn::Cost::LogLikelihood, c.seed)?;

    let mut data = c.load(false)?;
    let held_out = if args.validate {
        data.validation.clone()
    } else {
        data.training = data.training.concat(&data.validation)?;
        data.test.clone()
    };
    let loaded = start.elapsed().as_secs_f64();
    let n = data.training.len();
    let settings = serde_json::json!({
        "target": args.target.name(), "layers": layers, "epochs": epochs,
        "mini_batch": mb, "eta": eta, "warmup": args.warmup, "weight_decay": args.weight_decay,
        "label_smoothing": smoothing, "shift": shift, "seed": c.seed, "threads": threads,
        "train_images": n, "judged_on": if args.validate { "validation" } else { "test" },
        "bf16": !args.fp32 && tensor::conv::bf16_supported(),
    });
    let mut run = c.plain_run("speedrun", settings);
    let mut net = c.layers_net(&layers, (mb.min(n), args.eval_batch), None)?;
    net.set_label_smoothing(smoothing)?;
    // Where the CPU lacks AVX-512 BF16 the setting is ignored: f32, as the record says.
    net.graph_mut().set_bf16_convolutions(!args.fp32);

    let steps = epochs * n.div_ceil(mb);
    let warmup = (args.warmup * steps as f64).round() as usize;
    let sgd = Momentum::nesterov(
        eta,
        0.9,
        Regularization::WeightDecay {
            lmbda: args.weight_decay * n as f64,
            n,
        },
    );
    let mut opt = OneCycle::new(Box::new(sgd), eta, warmup, steps.max(1))?;
    let augment = Augment {
        shift,
        ..Augment::NONE
    };
    let training = Augmented::new(&data.training, augment, c.seed);
    let train_start = Instant::now();
    run.train(&mut net, &training, &mut opt as &mut dyn Optimizer<f32>)
        .epochs(epochs)
        .mini_batch(mb)
        .each_epoch(|end| {
            end.report_training_cost();
            Ok(())
        })?;
    let trained = train_start.elapsed().as_secs_f64();
    let eval_start = Instant::now();
    let accuracy = net.evaluate(&held_out, args.eval_batch, None)?.accuracy();
    let evaluated = eval_start.elapsed().as_secs_f64();
    let judged = if args.validate { "Validation" } else { "Test" };
    println!("{judged} accuracy {:.2}%", 100.0 * accuracy);
    if let Some(last) = run.record.epochs.last_mut() {
        if args.validate {
            last.validation_accuracy = Some(accuracy);
        } else {
            last.test_accuracy = Some(accuracy);
        }
    }
    if !args.validate {
        run.record.test_accuracy = Some(accuracy);
    }
    let wall = start.elapsed().as_secs_f64();
    run.record.settings["seconds"] = serde_json::json!({
        "wall": wall, "loading": loaded, "training": trained, "evaluating": evaluated,
    });
    c.finish(&mut run, "speedrun")?;
    println!(
        "{wall:.2} s in all (loading {loaded:.2} s, training {trained:.2} s, evaluating {evaluated:.2} s), {:.0} training images/s",
        (epochs * n) as f64 / trained
    );
    Ok(())
}
