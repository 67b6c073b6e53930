//! The book's `network.py` (chapter 1): a sigmoid network, quadratic cost, mini-batch SGD,
//! N(0, 1) initialisation; here a graph of autograd ops instead of hand-written backprop.
//!
//! `cargo run --release --example network` is the book's
//! `net = network.Network([784, 30, 10]); net.SGD(training_data, 30, 10, 3.0, test_data=test_data)`.
//! `--hidden 100` gives the [784, 100, 10] run.

mod common;

use anyhow::Result;
use clap::Parser;
use common::{Common, Hidden, Resume, Tuning};
use nn::{Cost, Init, Network, Regularization};
use nndl::run::Plan;

#[derive(Parser, Debug)]
#[command(about = "network.py: sigmoid net, quadratic cost, SGD (Nielsen, chapter 1)")]
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
    common::exit_on_error(run);
}

fn run() -> Result<()> {
    let args: Args = common::parse_args();
    let (c, t) = (&args.common, &args.tuning);
    if t.eta_schedule {
        anyhow::bail!("--eta-schedule judges validation accuracy, which network.py does not measure; use network2");
    }
    let threads = c.init_threads()?;
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
    let plan = Plan::shuffled(epochs, mb);
    c.check_memory(&net, mb.min(data.training.len()), 1000)?;
    let mut opt = t.optimizer(eta, Regularization::None);
    // (best correct, its epoch): network.py reports every epoch; the book quotes the best.
    let mut best = (0usize, 0usize);
    let speeds = t.layer_speeds(&mut run, &mut net, &data.training)?;
    run.epochs(
        &mut net,
        &data.training,
        opt.as_mut(),
        plan,
        &ck,
        &mut best,
        |_| false,
        |net, stats, e, best| {
            let test = net.evaluate(&data.test, 1000, None)?;
            println!("Epoch {}: {} / {}", e.epoch, test.correct, test.total);
            if test.correct > best.0 {
                *best = (test.correct, e.epoch);
            }
            e.test_accuracy = Some(test.accuracy());
            e.training_cost = Some(stats.mean_cost);
            speeds.after_epoch(net, &data.training, e)?;
            Ok(())
        },
    )?;
    run.record.test_accuracy = Some(best.0 as f64 / data.test.len() as f64);
    c.finish(&mut run, &format!("network [784,{hidden},10], eta {eta}"))?;
    println!(
        "Best test accuracy {:.2}% (epoch {}); {:.1} s, {:.0} training images/s",
        100.0 * best.0 as f64 / data.test.len() as f64,
        best.1,
        run.record.wall_seconds,
        run.record.train_images_per_second
    );
    Ok(())
}
