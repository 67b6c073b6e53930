//! The elementwise loops compiled with AVX-512 enabled: the generic bodies of [`super::unary`]
//! inlined into wrappers that carry the target features.

use super::unary::{self, mask_body};
use crate::Float;

/// [`super::unary::sigmoid_in_place`]'s f32 loop on AVX-512.
///
/// # Safety
/// The CPU has AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn sigmoid_f32(x: &mut [f32]) {
    unary::sigmoid_f32(x)
}

/// [`super::unary::bernoulli_mask`]'s loop on AVX-512.
///
/// # Safety
/// The CPU has AVX-512F and AVX-512DQ.
#[target_feature(enable = "avx512f,avx512dq")]
pub(super) unsafe fn bernoulli_mask<T: Float>(seed: u64, below: u64, keep: T, out: &mut [T]) {
    mask_body(seed, below, keep, out)
}
