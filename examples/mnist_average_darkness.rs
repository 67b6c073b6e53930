//! The book's `mnist_average_darkness.py`: a naive baseline that guesses a digit from how dark
//! the image is. For each digit the average total darkness of its training images (the 50,000)
//! is computed; a test image is guessed as the digit whose average is nearest its darkness.
//! The book reports 2,225 of 10,000 (22.25%), which this prints exactly.
//!
//! ```text
//! cargo run --release --example mnist_average_darkness [-- --data DIR] [-- --download]
//! ```

use std::path::PathBuf;

use clap::Parser;
use nndl::mnist::{self, baseline::AverageDarkness};

/// Classify MNIST digits by average darkness (the book's chapter 1 baseline).
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// MNIST directory (default: $NNDL_DATA, else data/mnist searched upward from here).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Download any missing MNIST file first (checking the official MD5s).
    #[arg(long)]
    download: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (dir, report) = mnist::prepare_data_dir(args.data.as_deref(), args.download)?;
    if let Some(report) = report {
        eprintln!("{report}");
    }
    let data = mnist::load_data(&dir)?;
    let model = AverageDarkness::train(&data.training)?;
    let correct = model.correct(&data.test);
    println!("Baseline classifier using average darkness of image.");
    println!("{correct} of {} values correct.", data.test.len());
    Ok(())
}
