//! Stand-ins for the AVX-512 kernels off x86-64, where [`super::applies`] is always false.

use super::Plan;
/// # Safety
/// None: it is never called ([`super::applies`] is false off x86-64) and panics.
// Never called: `applies` is false without AVX-512F.
pub(super) unsafe fn conv(
    _: &Plan,
    _: *const f32,
    _: *const f32,
    _: *mut f32,
    _: *const f32,
    _: bool,
) {
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
