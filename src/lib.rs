//! nndl: the programs of Michael Nielsen's *Neural Networks and Deep Learning* as a small Rust
//! deep-learning library with a tape-based reverse-mode autodiff core.
//!
//! This facade re-exports the workspace crates so that examples and users need one dependency,
//! and holds [`run`], the training run every program shares.

pub use atomic_file;
pub use autograd;
pub use mnist;
pub use nn;
pub use report;
pub use svm;
pub use tensor;

pub mod cli;
pub mod run;
