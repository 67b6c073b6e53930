//! The generic small-side kernels ([`super::portable`]) compiled with AVX2 and FMA enabled.

use super::{portable::body, Args, Shape3};

/// The generic kernels on AVX2 and FMA.
///
/// # Safety
/// As [`Args`], `lo..hi` within the dimension `shape` splits, on a CPU with AVX2 and FMA.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn kernel(shape: Shape3, p: &Args, lo: usize, hi: usize) {
    body(shape, p, lo, hi)
}

/// Never called: [`crate::isa::Isa::Avx2`] is unavailable off x86-64.
///
/// # Safety
/// None needed; it panics.
#[cfg(not(target_arch = "x86_64"))]
pub(super) unsafe fn kernel(_: Shape3, _: &Args, _: usize, _: usize) {
    unreachable!("AVX2 is x86-64 only")
}
