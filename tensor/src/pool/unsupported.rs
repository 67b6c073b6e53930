//! Stand-in for the AVX-512 pool kernel off x86-64, where it is never chosen.

/// # Safety
/// None: never called off x86-64 (the scalar loop runs) and panics.
pub(super) unsafe fn pool2_rows(
    _: *const f32,
    _: (usize, usize),
    _: (usize, usize),
    _: *mut f32,
    _: *mut u32,
) {
    unreachable!()
}

/// # Safety
/// None: never called off x86-64 (the scalar loop runs) and panics.
pub(super) unsafe fn unpool2_rows(
    _: *const f32,
    _: *const u32,
    _: (usize, usize),
    _: (usize, usize),
    _: *mut f32,
) {
    unreachable!()
}
