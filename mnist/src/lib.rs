//! MNIST for nndl: the book's `mnist_loader.py`, `expand_mnist.py` and
//! `mnist_average_darkness.py`.
//!
//! - [`idx`]: read IDX files (gzip or raw, detected by content) with every field validated, and
//!   write them atomically.
//! - [`load_data`]: the book's split, training = the first 50,000 records of the train files,
//!   validation = the last 10,000, test = the t10k files; [`load_data_expanded`] takes the
//!   250,000-image expanded set as training data.
//! - [`Dataset`]: u8 images in memory, converted to f32/f64 per mini-batch
//!   ([`Dataset::fill_batch`], value/255; the book's pickle uses value/256, see [`Scale`]), with
//!   one-hot targets ([`one_hot`], [`Dataset::fill_one_hot`]).
//! - [`find_data_dir`]: `--data DIR`, else `$NNDL_DATA`, else `data/mnist` searched upward.
//! - [`download()`]: fetch missing files from mirrors, checking the official MD5s.
//! - [`expand()`]: the book's 1-pixel shifts, seeded shuffle.
//! - [`augment`]: random rotation, scale and shift of each image of a mini-batch, seeded.
//! - With the `nn` feature: [`Dataset`] as `nn::Samples`, `Augmented` (the images augmented
//!   afresh each epoch) and `probabilities_augmented` (test-time augmentation).
//! - [`baseline::AverageDarkness`]: the book's 2,225 / 10,000 baseline.
//! - [`text`]: the `quoting` crate under the name it had when it lived here.
//!
//! ```no_run
//! let dir = nndl_mnist::find_data_dir(None)?;
//! let data = nndl_mnist::load_data(&dir)?;
//! let mut batch = vec![0f32; 10 * 784];
//! data.training.fill_batch(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], &mut batch);
//! # Ok::<(), nndl_mnist::Error>(())
//! ```

#![warn(missing_docs)]

pub mod augment;
pub mod baseline;
mod dataset;
pub mod download;
mod error;
pub mod expand;
#[cfg(test)]
mod fuzz_tests;
pub mod idx;
mod loader;
#[cfg(feature = "nn")]
mod samples;
#[cfg(test)]
mod testutil;
/// Quoting untrusted text in error messages: the `quoting` crate, still reachable by the path
/// it had before it moved out (so that `nn` could read files without depending on MNIST).
pub use quoting as text;

pub use dataset::{one_hot, Dataset, Element, Scale, CLASSES};
pub use download::{
    download, download_from, prepare_data_dir, DownloadReport, FileReport, FileStatus, MIRRORS,
};
pub use error::{Error, IdxKind, Result};
pub use expand::{expand, expand_unshuffled, expand_with_progress};
pub use loader::{
    download_dir, find_data_dir, load_data, load_data_expanded, locate_file, md5_hex,
    uncompressed_md5, verify_dir, MnistData, OfficialFile, DATA_ENV, DEFAULT_DATA_DIR,
    EXPANDED_IMAGES, EXPANDED_LABELS, FILES, IMAGE_DIMS, SIDE, TEST_IMAGES, TEST_LABELS, TEST_SIZE,
    TRAINING_SIZE, TRAIN_IMAGES, TRAIN_LABELS, VALIDATION_SIZE,
};
#[cfg(feature = "nn")]
pub use samples::{probabilities_augmented, Augmented};
