//! `nn`: the book's networks as graphs of `autograd` ops.
//!
//! A [`Layer`] holds its parameters (on the network's [`autograd::Graph`]) and a `forward`
//! written only with graph ops; it never writes a gradient. [`Network`] is a sequence of
//! layers with a [`Cost`], trained by [`Network::train_epoch`] with SGD and one of the book's
//! three ways of regularising ([`Regularization`]). [`reference`] keeps the book's
//! hand-derived backprop (BP1-BP4), which the tests compare autodiff against.

mod data;
mod error;
mod gradcheck;
mod layer;
mod network;

pub mod checkpoint;
pub mod init;
pub mod io;
pub mod layers;
pub mod reference;
pub mod spec;

pub use data::{InMemory, Samples};
pub use error::NnError;
pub use gradcheck::gradcheck_layer;
pub use init::Init;
pub use layer::{Activation, Ctx, Layer, Mode};
pub use layers::{ConvPool, DropoutStyle, FullyConnected};
pub use network::{Cost, EpochStats, Evaluation, Network, Regularization, MAX_PARAMETERS};
pub use tensor::pool::PoolGrad;

/// Result type of the nn crate.
pub type Result<T> = std::result::Result<T, NnError>;
