//! Defining a new layer needs no gradient code: `maxout.rs` writes a maxout layer's forward
//! with graph ops; this program gradchecks it in f64 against finite differences, then trains
//! `[784] -> Maxout(100) -> softmax(10)` on MNIST.
//!
//! `cargo run --release --example custom_layer -- --epochs 5`

mod maxout;

use anyhow::Result;
use autograd::Graph;
use clap::Parser;
use maxout::Maxout;
use nn::{Activation, Cost, Init, Mode, Network, Regularization, Sgd};
use nndl::cli::{Common, Hidden};
use rand::SeedableRng;
use tensor::Tensor;

#[derive(Parser, Debug)]
#[command(about = "Past the book: a user-defined maxout layer, gradchecked, then trained")]
#[command(mut_arg("pixel_scale", |a| a.default_value("255")))]
#[command(mut_arg("epochs", |a| a.default_value("5")))]
#[command(mut_arg("mini_batch", |a| a.default_value("10")))]
#[command(mut_arg("eta", |a| a.default_value("0.1")))]
#[command(mut_arg("hidden", |a| a.help("Maxout units").default_value("100")))]
struct Args {
    #[command(flatten)]
    common: Common,
    #[command(flatten)]
    hidden: Hidden,
}

fn main() {
    nndl::cli::exit_on_error(run);
}

fn run() -> Result<()> {
    let args: Args = nndl::cli::parse_args();
    let c = &args.common;
    c.base.init_threads()?;

    // 1. Gradient check of the layer in f64: its input, every weight and every bias against
    // finite differences.
    let mut rng = rand_pcg::Pcg64::seed_from_u64(c.seed);
    let mut g = Graph::<f64>::new();
    let layer = Maxout::new(&mut g, "maxout", 6, 4, &mut rng)?;
    let x = Tensor::<f64>::randn(&[3, 6], 0.0, 1.0, &mut rng)?;
    let report = nn::gradcheck_layer(&mut g, &layer, x, Mode::Train)?;
    println!("gradcheck of Maxout passed: {report}");

    // 2. Train it on MNIST.
    let (epochs, mb, eta) = (
        c.epochs.unwrap_or(5),
        c.mini_batch.unwrap_or(10),
        c.eta.unwrap_or(0.1),
    );
    let hidden = args.hidden.hidden.unwrap_or(100);
    let data = c.load(false)?;
    let mut net = Network::<f32>::new(&[784], Cost::LogLikelihood, c.seed);
    let (graph, rng) = net.graph_and_rng();
    let m = Maxout::new(graph, "l0", 784, hidden, rng)?;
    net.push(Box::new(m))?;
    net.add_fc(10, Activation::Identity, Init::Zeros, 0.0)?;
    println!("{}", net.describe());
    c.check_memory(&net, mb.min(data.training.len()), 1000)?;
    let mut run = c.plain_run(
        "custom_layer",
        serde_json::json!({"epochs": epochs, "mini_batch": mb, "eta": eta, "hidden": hidden, "seed": c.seed}),
    );
    let mut sgd = Sgd::new(eta, Regularization::None);
    run.train(&mut net, &data.training, &mut sgd)
        .epochs(epochs)
        .mini_batch(mb)
        .each_epoch(|end| {
            let v = end.net.evaluate(&data.validation, 1000, None)?;
            let e = &mut *end.record;
            println!(
                "Epoch {}: validation accuracy {:.2}%",
                e.epoch,
                100.0 * v.accuracy()
            );
            e.validation_accuracy = Some(v.accuracy());
            e.training_cost = Some(end.stats.mean_cost);
            Ok(())
        })?;
    let test = net.evaluate(&data.test, 1000, None)?;
    run.record.test_accuracy = Some(test.accuracy());
    c.finish(&mut run, "custom maxout layer")?;
    println!("Test accuracy {:.2}%", 100.0 * test.accuracy());
    Ok(())
}
