//! The op set. One file per family; in each, the graph method is the forward, the `Op`
//! implementation beside it is the backward and the backward recorded as graph ops
//! (`Op::backward_graph`: every op here has one), and the tests at the bottom gradcheck it and
//! check its second derivatives (`testing::check2`).
//! Adding an op means adding a file here (and a `mod` line), nothing else.

mod arith;
mod broadcast;
mod conv;
mod dropout;
mod loss;
mod matmul;
mod norm;
mod pool;
mod reduce;
mod shape;
mod softmax;
mod unary;

pub use norm::BatchStats;
pub use unary::{Exp, Log, Relu, Sigmoid, Softplus, Tanh, UnaryFn};
