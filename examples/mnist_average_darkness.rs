//! The book's `mnist_average_darkness.py`: a naive baseline that guesses a digit from how dark
//! the image is. For each digit the average total darkness of its training images (the 50,000)
//! is computed; a test image is guessed as the digit whose average is nearest its darkness.
//! The book reports 2,225 of 10,000 (22.25%), which this prints exactly.
//!
//! ```text
//! cargo run --release --example mnist_average_darkness [-- --data DIR] [-- --download]
//! ```

use clap::Parser;
use nndl::mnist::{self, baseline::AverageDarkness};

/// Classify MNIST digits by average darkness (the book's chapter 1 baseline).
#[derive(Parser, Debug)]
#[command(version)]
#[command(about = "mnist_average_darkness.py: chapter 1's average-darkness baseline")]
struct Args {
    #[command(flatten)]
    data: nndl::cli::DataDir,
}

fn main() {
    nndl::cli::exit_on_error(run);
}

fn run() -> anyhow::Result<()> {
    let args: Args = nndl::cli::parse_args();
    let dir = args.data.prepare()?;
    let data = mnist::load_data(&dir)?;
    let model = AverageDarkness::train(&data.training)?;
    let correct = model.correct(&data.test);
    println!("Baseline classifier using average darkness of image.");
    println!("{correct} of {} values correct.", data.test.len());
    Ok(())
}
