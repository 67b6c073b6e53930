//! `nn`: the book's networks as graphs of `autograd` ops.
//!
//! A [`Layer`] holds its parameters (on the network's [`autograd::Graph`]) and a `forward`
//! written only with graph ops; it never writes a gradient. [`Network`] is a sequence of
//! layers with a [`Cost`], trained by [`Network::train_epoch`] with an [`Optimizer`]: [`Sgd`]
//! with one of the book's three ways of regularising ([`Regularization`]). [`reference`](mod@reference) keeps the book's
//! hand-derived backprop (BP1-BP4), which the tests compare autodiff against.

mod cost;
mod data;
mod error;
mod evaluate;
mod gradcheck;
mod layer;
mod monitor;
mod network;
mod optim;

pub mod checkpoint;
pub mod init;
pub mod io;
pub mod layers;
pub mod memory;
pub mod reference;
pub mod spec;

pub use cost::Cost;
pub use data::{InMemory, Samples};
pub use error::NnError;
pub use evaluate::{Evaluation, WeightPenalty};
pub use gradcheck::{
    gradcheck_layer, gradcheck_layer_with, gradgradcheck_layer, precision_check_layer,
};
pub use init::Init;
pub use layer::{Activation, Ctx, Layer, LayerKind, Mode};
pub use layers::{
    BatchNorm, Conv2d, Conv2dConfig, ConvPool, Dropout, DropoutStyle, FcConfig, Flatten,
    FullyConnected, MaxPool2d,
};
pub use network::{Epoch, EpochStats, Network, MAX_PARAMETERS};
pub use optim::{
    Adam, Averaged, Momentum, OneCycle, Optimizer, OptimizerState, ParamStep, Regularization,
    Scalars, Sgd,
};
pub use tensor::pool::PoolGrad;

// The graph and tensor types nn's signatures take and return (a layer's forward, the
// network's graph, gradcheck_layer's report), so that a user of nn alone can name them.
pub use autograd::{GradcheckConfig, GradcheckError, GradcheckReport, Graph, Var};
// The complete check's options and reports (`gradcheck_layer_with`, `precision_check_layer`).
pub use autograd::{
    CheckOptions, CheckReport, FastReport, Kink, NondetReport, PrecisionConfig, PrecisionReport,
};
/// The JSON crate of [`checkpoint::Checkpoint::state`] and of the optimiser state's scalars.
pub use serde_json;
pub use tensor::{Float, Shape, Tensor};

/// The random number crate of every signature that takes a generator (`R: rand::Rng`): use
/// this one, as another major version's `Rng` is a different trait.
pub use rand;
/// The generator a `Network` owns and seeds (`Network::rng_mut`, `Ctx::rng`): PCG-64, so a
/// seed gives the same run on every machine.
pub use rand_pcg::Pcg64;

/// Result type of the nn crate.
pub type Result<T> = std::result::Result<T, NnError>;
