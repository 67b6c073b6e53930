//! The generic fused step ([`super::portable`]) compiled with AVX2 and FMA enabled.

use super::{portable::body, StepArgs};

/// The generic step on AVX2 and FMA.
///
/// # Safety
/// As [`StepArgs`], `lo..hi` within k, on a CPU with AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn step(p: &StepArgs, lo: usize, hi: usize) -> (bool, f32) {
    body(p, lo, hi)
}

/// Never called: [`crate::isa::Isa::Avx2`] is unavailable off x86-64.
///
/// # Safety
/// None needed; it panics.
#[cfg(not(target_arch = "x86_64"))]
pub(super) unsafe fn step(_: &StepArgs, _: usize, _: usize) -> (bool, f32) {
    unreachable!("AVX2 is x86-64 only")
}
