//! The same product through `matrixmultiply`, kept as an independent cross-check of the
//! backend and of the small-side kernels.

use super::{dims, strides};
use crate::{Float, MatMut, MatRef};

/// [`super::gemm`] through `matrixmultiply`: what the fast paths are tested against.
///
/// # Panics
/// As [`super::gemm`].
pub fn gemm_reference<T: Float>(
    alpha: T,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    beta: T,
    mut c: MatMut<'_, T>,
) {
    let (m, k, n) = dims("gemm", &a, &b, &c);
    let ((rsa, csa), (rsb, csb)) = (strides(&a), strides(&b));
    let (a, b, c) = (a.data().as_ptr(), b.data().as_ptr(), c.data().as_mut_ptr());
    // SAFETY: the views hold their matrices (checked when made) and agree (`dims`); `c` came
    // from a distinct `&mut`, so it aliases neither operand. `T` is f32 or f64 as `DTYPE`
    // says (the only `Float` types), so the casts keep the layout.
    unsafe {
        if T::DTYPE == "f32" {
            matrixmultiply::sgemm(
                m,
                k,
                n,
                alpha.f64() as f32,
                a as *const f32,
                rsa,
                csa,
                b as *const f32,
                rsb,
                csb,
                beta.f64() as f32,
                c as *mut f32,
                n as isize,
                1,
            )
        } else {
            matrixmultiply::dgemm(
                m,
                k,
                n,
                alpha.f64(),
                a as *const f64,
                rsa,
                csa,
                b as *const f64,
                rsb,
                csb,
                beta.f64(),
                c as *mut f64,
                n as isize,
                1,
            )
        }
    }
}
