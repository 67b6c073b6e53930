//! Fault injection for testing numerical checks (cargo feature `fault-injection`, off by
//! default; nn's tests turn it on through a dev-dependency, so no normal build compiles it).
//!
//! A precision check is only worth its tolerance if it catches an error just above it. This
//! module lets a test plant one: [`plant_gemm_ulps`] arms a thread-local that the next f32
//! [`crate::gemm`] call on this thread reads, after its kernel (small-side or packed) has
//! written the output, moving one element of the output by a number of units in the last
//! place. The hook is one thread-local read per GEMM call, and only in builds with the
//! feature.

use std::cell::Cell;

thread_local! {
    static GEMM_FAULT: Cell<Option<(usize, i32)>> = const { Cell::new(None) };
}

/// Arms a fault for the next f32 GEMM on this thread: element `index` (row-major in the
/// `m x n` output) is moved by `ulps` units in the last place (its bit pattern stepped away
/// from zero for positive `ulps`). Consumed by that call; f64 GEMMs leave it armed.
pub fn plant_gemm_ulps(index: usize, ulps: i32) {
    GEMM_FAULT.with(|f| f.set(Some((index, ulps))));
}

/// Disarms a fault not yet consumed.
pub fn clear() {
    GEMM_FAULT.with(|f| f.set(None));
}

/// Applies an armed fault to an f32 GEMM's output (`c` is its `m x n` row-major buffer).
pub(crate) fn apply_gemm<T: crate::Float>(c: &mut [T]) {
    let Some(c) = crate::float::as_f32_mut(c) else {
        return;
    };
    if let Some((index, ulps)) = GEMM_FAULT.with(|f| f.take()) {
        if let Some(v) = c.get_mut(index) {
            // Stepping the magnitude's bits moves the value by whole ulps (within a binade).
            let bits = v.to_bits() as i64 + i64::from(ulps);
            *v = f32::from_bits(bits as u32);
        }
    }
}
