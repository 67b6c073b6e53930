//! Stand-ins for the AVX-512 kernels off x86-64, where [`super::applies`] is always false.

use super::Plan;

/// Where the convolution kernels store (as on x86-64).
#[allow(dead_code)] // Never read: the stand-ins panic.
pub(super) struct Out {
    pub(super) out: *mut f32,
    pub(super) bias: *const f32,
    pub(super) add: bool,
    pub(super) tile: *mut f32,
}
/// # Safety
/// None: it is never called ([`super::applies`] is false off x86-64) and panics.
// Never called: `applies` is false without AVX-512F.
pub(super) unsafe fn conv(_: &Plan, _: *const f32, _: *const f32, _: &Out) {
    unreachable!()
}
/// # Safety
/// None: it is never called ([`super::applies`] is false off x86-64) and panics.
pub(super) unsafe fn pad(_: &Plan, _: *const f32, _: *mut f32) {
    unreachable!()
}
/// # Safety
/// None: it is never called ([`super::applies`] is false off x86-64) and panics.
pub(super) unsafe fn spread(_: &Plan, _: *const f32, _: *mut f32) {
    unreachable!()
}
/// # Safety
/// None: it is never called ([`super::applies`] is false off x86-64) and panics.
pub(super) unsafe fn filter_grad(_: &Plan, _: usize, _: *const f32, _: *const f32, _: *mut f32) {
    unreachable!()
}
/// # Safety
/// None: never called (bf16 needs the direct path) and panics.
pub(super) unsafe fn pad_bf16(_: &Plan, _: *const f32, _: *mut u32) {
    unreachable!()
}
/// # Safety
/// None: never called (bf16 needs the direct path) and panics.
pub(super) unsafe fn conv_bf16(_: &Plan, _: *const u32, _: *const u32, _: &Out) {
    unreachable!()
}
/// # Safety
/// None: never called (bf16 needs the direct path) and panics.
pub(super) unsafe fn to_bf16_in_place(_: *mut f32, _: usize) {
    unreachable!()
}
/// # Safety
/// None: never called (bf16 needs the direct path) and panics.
pub(super) unsafe fn pair_rows_in_place(_: *mut f32, _: usize, _: usize) {
    unreachable!()
}
/// # Safety
/// None: never called (bf16 needs the direct path) and panics.
pub(super) unsafe fn filter_grad_bf16(
    _: &Plan,
    _: usize,
    _: *const u16,
    _: *const u32,
    _: *mut f32,
) {
    unreachable!()
}
/// Floats per position of the filter tiling's scratch (as on x86-64).
pub(super) const TILE_ROW: usize = 64;
/// # Safety
/// None: it is never called ([`super::applies`] is false off x86-64) and panics.
pub(super) unsafe fn filter_grad_few(_: &Plan, _: *const f32, _: *const f32, _: *mut f32) {
    unreachable!()
}
/// # Safety
/// None: it is never called ([`super::applies`] is false off x86-64) and panics.
pub(super) unsafe fn copy_taps(_: &Plan, _: *const f32, _: *mut f32) {
    unreachable!()
}
