//! Elementwise kernels: activations and their derivatives, the dropout mask ([`unary`]) and
//! broadcasting binary operations (`binary`); the AVX-512 builds of the unary loops in
//! `avx512`.

#[cfg(target_arch = "x86_64")]
mod avx512;
pub(crate) mod binary;
pub mod unary;
