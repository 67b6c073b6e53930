//! nndl: the programs of Michael Nielsen's *Neural Networks and Deep Learning* as a small Rust
//! deep-learning library with a tape-based reverse-mode autodiff core.
//!
//! This facade re-exports the workspace crates so that examples and users need one dependency,
//! and holds what every program shares: [`run`], the training run, and [`cli`], its command
//! line; [`ensemble`] and [`figures`] are the book's ways of combining and showing nets that
//! more than one program uses.

// Every public item says why it is there: the library is read by people new to it.
#![warn(missing_docs)]

pub use atomic_file;
pub use autograd;
pub use mnist;
pub use nn;
pub use report;
pub use svm;
pub use tensor;

pub mod cli;
pub mod ensemble;
pub mod figures;
pub mod run;

/// The README's code blocks, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
