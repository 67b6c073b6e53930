//! What most programs use, in one line: `use nndl::prelude::*;`.
//!
//! ```
//! use nndl::prelude::*;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // y = sum(relu(x) * x) on the tape, its gradient by backward, checked against
//! // finite differences.
//! let mut g = Graph::<f64>::new();
//! let x = g.parameter("x", Tensor::from_vec(vec![-1.0, 0.5, 2.0], &[3])?);
//! let r = g.relu(x)?;
//! let p = g.mul(r, x)?;
//! let y = g.sum(p)?;
//! g.backward(y)?;
//! assert_eq!(g.grad(x).unwrap().data(), &[0.0, 1.0, 4.0]);
//! # Ok(())
//! # }
//! ```

pub use crate::run::Run;
pub use autograd::{gradcheck, gradcheck_fn, GradcheckConfig, Graph, Var};
pub use mnist::{load_data, Dataset};
pub use nn::rand::{Rng, SeedableRng};
pub use nn::{
    gradcheck_layer, Activation, Adam, BatchNorm, Conv2d, Conv2dConfig, ConvPool, Cost, Dropout,
    FcConfig, Flatten, FullyConnected, Init, Layer, MaxPool2d, Mode, Momentum, Network, Optimizer,
    Pcg64, Regularization, Samples, Sgd,
};
pub use tensor::{Float, Shape, Tensor};
