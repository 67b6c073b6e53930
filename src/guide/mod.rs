#![doc = include_str!("index.md")]
//!
//! Each page below is a module with no items: its documentation is the page, and every Rust
//! block on it is a doctest that `cargo test` compiles and runs.

#[doc = include_str!("ch1_network.md")]
pub mod ch1_network {}

#[doc = include_str!("ch2_backpropagation.md")]
pub mod ch2_backpropagation {}

#[doc = include_str!("ch3_learning.md")]
pub mod ch3_learning {}

#[doc = include_str!("ch5_unstable_gradients.md")]
pub mod ch5_unstable_gradients {}

#[doc = include_str!("ch6_convolutional.md")]
pub mod ch6_convolutional {}

#[doc = include_str!("writing_a_layer.md")]
pub mod writing_a_layer {}

#[doc = include_str!("checking_gradients.md")]
pub mod checking_gradients {}

#[doc = include_str!("fast_training.md")]
pub mod fast_training {}

#[doc = include_str!("pytorch.md")]
pub mod pytorch {}
