//! nndl: the programs of Michael Nielsen's *Neural Networks and Deep Learning* as a small Rust
//! deep-learning library with a tape-based reverse-mode autodiff core.
//!
//! This facade is the one dependency a program needs: it re-exports the workspace crates, gives
//! the common names in [`prelude`], and holds what every program shares: [`run`], the training
//! run, and [`cli`], its command line; [`ensemble`] and `figures` are the book's ways of
//! combining and showing nets that more than one program uses.
//!
//! | module | crate | what it holds |
//! | --- | --- | --- |
//! | [`tensor`] | `nndl-tensor` | arrays and the numeric kernels (GEMM, convolution, pooling, norms) |
//! | [`autograd`] | `nndl-autograd` | the tape: `Graph`, `Var`, ops with their backward, `gradcheck` |
//! | [`nn`] | `nndl-nn` | layers, costs, initialisations, optimisers, `Network`, save and load |
//! | [`mnist`] | `nndl-mnist` | MNIST: IDX files, the book's split, download, expansion, augmentation |
//! | [`report`] | `nndl-report` | run records (JSON), plots (PNG), progress bars |
//! | `svm` | `nndl-svm` | the book's SVM baseline over LIBSVM (feature `svm`) |
//! | [`atomic_file`] | `nndl-atomic-file` | saving a file so that a reader never sees half of it |
//!
//! Features, all on by default: `download` (fetch MNIST: `--download`, [`mnist::download()`]),
//! `svm` (the SVM baseline; builds LIBSVM with a C++ compiler), `plots` (`--plot`, PNG figures).
//! `default-features = false` leaves the core: tensors, the tape, layers, training, records.
//!
//! ```
//! use nndl::prelude::*;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The book's chapter 1 network, [784, 30, 10] sigmoid neurons, seeded.
//! let net = Network::<f32>::sigmoid_mlp(&[784, 30, 10], Cost::Quadratic, Init::Large, 1)?;
//! assert_eq!(net.parameters().len(), 4); // two weight matrices, two bias vectors
//! assert_eq!(net.output_dims(), &[10]);
//! # Ok(())
//! # }
//! ```

// Every public item says why it is there: the library is read by people new to it.
#![warn(missing_docs)]

pub use atomic_file;
pub use autograd;
pub use mnist;
pub use nn;
pub use report;
#[cfg(feature = "svm")]
pub use svm;
pub use tensor;

/// The random number crate of every `R: Rng` in nndl's signatures, and the generator nets own.
pub use nn::{rand, Pcg64};

pub mod cli;
pub mod ensemble;
#[cfg(feature = "plots")]
pub mod figures;
pub mod guide;
pub mod prelude;
pub mod run;

/// The README's code blocks, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
