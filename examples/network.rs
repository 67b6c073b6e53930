//! The book's `network.py` (chapter 1): a sigmoid network, quadratic cost, mini-batch SGD,
//! N(0, 1) initialisation; here a graph of autograd ops instead of hand-written backprop.
//!
//! `cargo run --release --example network` is the book's
//! `net = network.Network([784, 30, 10]); net.SGD(training_data, 30, 10, 3.0, test_data=test_data)`.
//! `--hidden 100` gives the [784, 100, 10] run.

use anyhow::Result;
use clap::Parser;
use nn::{Cost, Init, Network, Regularization};
use nndl::cli::{self, Common, Hidden, Resume, Tuning};

#[derive(Parser, Debug)]
#[command(about = "network.py: chapter 1's sigmoid network, mini-batch SGD on the quadratic cost")]
#[command(mut_arg("pixel_scale", |a| a.default_value("255")))]
#[command(mut_arg("epochs", |a| a.default_value("30")))]
#[command(mut_arg("mini_batch", |a| a.default_value("10")))]
#[command(mut_arg("eta", |a| a.default_value("3.0")))]
#[command(mut_arg("hidden", |a| a.default_value("30")))]
// network.py evaluates on the test set only, and the plateau schedule judges validation
// accuracy: the flag would be accepted and do nothing.
#[command(mut_arg("eta_schedule", |a| a.hide(true)))]
struct Args {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    hidden: Hidden,
    #[command(flatten)]
    tuning: Tuning,
    #[command(flatten)]
    resume: Resume,
}

fn main() {
    cli::exit_on_error(run);
}

fn run() -> Result<()> {
    let args: Args = cli::parse_args();
    let (c, t) = (&args.common, &args.tuning);
    if t.eta_schedule {
        anyhow::bail!("--eta-schedule judges validation accuracy, which network.py does not measure; use network2");
    }
    let threads = c.base.init_threads()?;
    let (epochs, mb, eta, hidden) = (
        c.epochs.unwrap_or(30),
        c.mini_batch.unwrap_or(10),
        c.eta.unwrap_or(3.0),
        args.hidden.hidden.unwrap_or(30),
    );
    let ck = args.resume.open(false)?;
    let data = c.load(false)?;
    let sizes = [784, hidden, 10];
    let mut net = Network::<f32>::sigmoid_mlp(&sizes, Cost::Quadratic, Init::Large, c.seed)?;
    let mut run = t.run(
        c,
        "network",
        serde_json::json!({
            "sizes": sizes, "epochs": epochs, "mini_batch": mb, "eta": eta, "seed": c.seed, "threads": threads,
            "train_images": data.training.len(), "cost": "quadratic", "init": "N(0,1)",
        }),
    )?;
    c.check_memory(&net, mb.min(data.training.len()), 1000)?;
    let mut opt = t.optimizer(eta, Regularization::None);
    let speeds = t.layer_speeds(&mut run, &mut net, &data.training)?;
    run.train(&mut net, &data.training, opt.as_mut())
        .epochs(epochs)
        .mini_batch(mb)
        .checkpoints(&ck)
        .each_epoch(|end| {
            let e = &mut *end.record;
            let test = end.net.evaluate(&data.test, 1000, None)?;
            println!("Epoch {}: {} / {}", e.epoch, test.correct, test.total);
            e.test_accuracy = Some(test.accuracy());
            e.training_cost = Some(end.stats.mean_cost);
            Ok(speeds.after_epoch(end.net, &data.training, e)?)
        })?;
    // network.py reports every epoch; the book quotes the best (the first of equals).
    let (best, epoch) = run.record.epochs.iter().fold((0.0, 0), |b, e| {
        e.test_accuracy
            .filter(|&a| a > b.0)
            .map_or(b, |a| (a, e.epoch))
    });
    run.record.test_accuracy = Some(best);
    c.finish(&mut run, &format!("network [784,{hidden},10], eta {eta}"))?;
    println!(
        "Best test accuracy {:.2}% (epoch {epoch}); {:.1} s, {:.0} training images/s",
        100.0 * best,
        run.record.wall_seconds,
        run.record.train_images_per_second
    );
    Ok(())
}
