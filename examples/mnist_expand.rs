//! The book's `expand_mnist.py`: the 50,000 training images become 250,000 by adding, for each
//! image, its 1-pixel shifts down, up, right and left (the pixels that wrap around are cleared);
//! the 250,000 pairs are then shuffled (seeded here: `--seed`). Writes them as IDX gzip files
//! beside the data, where `mnist::load_data_expanded` and `--expanded` runs find them.
//!
//! ```text
//! cargo run --release --example mnist_expand [-- --seed 0] [-- --data DIR] [-- --out DIR]
//! ```

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use nndl::mnist::{self, idx};

/// Write the book's expanded MNIST training set (250,000 images).
#[derive(Parser, Debug)]
#[command(version)]
#[command(about = "expand_mnist.py: chapter 6's expanded training set of 250,000 images")]
struct Args {
    #[command(flatten)]
    data: nndl::cli::DataDir,
    /// Seed of the shuffle (Fisher-Yates driven by Pcg64): the same seed writes the same files.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Directory to write the expanded files to (default: the data directory).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Write uncompressed IDX instead of gzip (faster; the loader reads either).
    #[arg(long)]
    raw: bool,
}

fn main() {
    nndl::cli::exit_on_error(run);
}

fn run() -> anyhow::Result<()> {
    let args: Args = nndl::cli::parse_args();
    let start = Instant::now();
    let dir = args.data.prepare()?;
    let data = mnist::load_data(&dir)?;
    let n = data.training.len();
    println!(
        "Expanding the MNIST training set ({n} images, seed {})",
        args.seed
    );
    let expanded = mnist::expand_with_progress(&data.training, args.seed, |done| {
        if done % 10_000 == 0 || done == n {
            println!("Expanding image number {done}");
        }
    });
    let expand_secs = start.elapsed().as_secs_f64();

    let out = args.out.unwrap_or(dir);
    std::fs::create_dir_all(&out)?;
    let (format, suffix) = if args.raw {
        (idx::Format::Raw, "")
    } else {
        (idx::Format::Gzip, ".gz")
    };
    let images = out.join(format!("{}{suffix}", mnist::EXPANDED_IMAGES));
    let labels = out.join(format!("{}{suffix}", mnist::EXPANDED_LABELS));
    println!("Saving expanded data to {}", out.display());
    let t = Instant::now();
    idx::write_dataset(&images, &labels, &expanded, format)?;
    let write_secs = t.elapsed().as_secs_f64();
    println!(
        "Wrote {} images to {} and their labels to {}",
        expanded.len(),
        images.display(),
        labels.display()
    );
    println!(
        "Wall time {:.2} s (load + expand {expand_secs:.2} s, write {write_secs:.2} s)",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
