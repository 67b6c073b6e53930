//! The fused step by the definition.

use super::LinearStep;

/// The same step by the definition (f64 sums): what the kernels are tested against.
pub fn linear_backward_step_reference(
    s: &LinearStep<'_, f32>,
    w: &mut [f32],
    dx: Option<(&mut [f32], f32)>,
) {
    let (m, k, n) = (s.m, s.k, s.n);
    if let Some((dx, beta)) = dx {
        for i in 0..m {
            for q in 0..k {
                let mut t = 0.0f64;
                for j in 0..n {
                    t += s.dyt[j * m + i] as f64 * w[j * k + q] as f64;
                }
                let old = if beta == 0.0 {
                    0.0
                } else {
                    beta as f64 * dx[i * k + q] as f64
                };
                dx[i * k + q] = (old + t) as f32;
            }
        }
    }
    for j in 0..n {
        for q in 0..k {
            let mut g = 0.0f64;
            for i in 0..m {
                g += s.dyt[j * m + i] as f64 * s.x[i * k + q] as f64;
            }
            let v = &mut w[j * k + q];
            *v = (s.decay as f64 * *v as f64 - s.eta as f64 * g) as f32;
        }
    }
}
