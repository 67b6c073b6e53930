//! The book's SVM baseline (`mnist_svm.py`): a small safe wrapper over LIBSVM, the library
//! scikit-learn's `SVC` runs, through the `libsvm-sys` bindings (LIBSVM 3.24's `svm.cpp`).
//!
//! - [`Features`] / [`Problem`]: samples in LIBSVM's sparse layout (zeros left out: ~81% of
//!   MNIST's pixels), from images ([`Features::from_images`]) or any sparse or dense rows;
//!   [`ExplicitZeros`] keeps frequent pixels stored for faster LIBSVM kernels, same results.
//! - [`Params`]: C-SVC with the RBF kernel; [`Params::BOOK`] is the book's `SVC()` (C = 1,
//!   gamma = 1/784, tolerance 1e-3, shrinking).
//! - [`train`]: LIBSVM's one-vs-one training with its binary problems solved in parallel
//!   (rayon); the model equals LIBSVM's own sequential `svm_train` ([`train_sequential`]).
//!   [`KernelEvaluation::Precomputed`] computes each binary problem's kernel matrix with one
//!   f32 GEMM and runs LIBSVM's solver on it: ~3x faster training on MNIST, same model to
//!   rounding (byte-identical on the book's 50,000 images).
//! - [`Model`]: parallel prediction, atomic save and checked load of LIBSVM's model files.
//! - [`Error`]: every refusal, typed: bad parameters (checked here, then LIBSVM's
//!   `svm_check_parameter` message), bad features, bad model files (with the line).
//!
//! LIBSVM's own printing is silenced. No `unsafe` is needed to use this crate.
//!
//! ```no_run
//! use mnist::Scale;
//! let data = mnist::load_data(mnist::find_data_dir(None)?)?;
//! let problem = nndl_svm::Problem::from_images(&data.training.take(2000), Scale::Div256)?;
//! let model = nndl_svm::train(&problem, &nndl_svm::Params::BOOK)?;
//! let test = nndl_svm::Features::from_images(&data.test, Scale::Div256);
//! let predicted = model.predict(&test);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![warn(missing_docs)]

mod error;
mod features;
mod model;
mod model_file;
#[cfg(test)]
mod model_file_props;
mod params;
mod precomputed;
mod train;

pub use error::{Error, Result};
pub use features::{ExplicitZeros, Features, Problem};
pub use mnist::Scale;
pub use model::{Kernel, Model, SvmType};
pub use params::{KernelEvaluation, Params};
pub use train::{train, train_sequential, train_with_progress};

/// The LIBSVM version compiled in (e.g. 324 for 3.24).
pub fn libsvm_version() -> i32 {
    libsvm_sys::LIBSVM_VERSION as i32
}

#[cfg(test)]
mod tests;
