//! The small-side products by the definition, in f64: what the kernels are tested against.

use super::Shape3;
use crate::{MatMut, MatRef};

/// `C = alpha*op(A).op(B) + beta*C` by the definition, in f64: what the kernels are tested
/// against.
pub fn small_gemm_reference(
    shape: Shape3,
    alpha: f32,
    a: MatRef<'_, f32>,
    b: MatRef<'_, f32>,
    beta: f32,
    mut c: MatMut<'_, f32>,
) {
    let (m, k, n) = (a.rows(), a.cols(), b.cols());
    let (a, b, c) = (a.data(), b.data(), c.data());
    for i in 0..m {
        for j in 0..n {
            let mut s = 0.0f64;
            for p in 0..k {
                let (x, y) = match shape {
                    Shape3::Nt => (a[i * k + p], b[j * k + p]),
                    Shape3::Nn => (a[i * k + p], b[p * n + j]),
                    Shape3::Tn => (a[p * m + i], b[p * n + j]),
                };
                s += x as f64 * y as f64;
            }
            let old = if beta == 0.0 {
                0.0
            } else {
                beta as f64 * c[i * n + j] as f64
            };
            c[i * n + j] = (alpha as f64 * s + old) as f32;
        }
    }
}
