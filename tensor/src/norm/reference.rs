//! Batch norm by the definition: what the fused kernels are tested against.

use super::NormGeom;
use crate::unary::Act;
use crate::Float;

/// Reference forward by the definition, with the batch's statistics: returns `(y, mean, var)`.
pub fn batch_norm_naive<T: Float>(
    g: &NormGeom,
    x: &[T],
    scale: &[T],
    bias: &[T],
    eps: f64,
    act: Act,
) -> (Vec<T>, Vec<f64>, Vec<f64>) {
    let mut y = vec![T::zero(); g.len()];
    let (mut mean, mut var) = (vec![0.0; g.c], vec![0.0; g.c]);
    let at = |i: usize, ch: usize, p: usize| (i * g.c + ch) * g.s + p;
    for ch in 0..g.c {
        let vals: Vec<f64> = (0..g.n)
            .flat_map(|i| (0..g.s).map(move |p| (i, p)))
            .map(|(i, p)| x[at(i, ch, p)].f64())
            .collect();
        let m = vals.iter().sum::<f64>() / vals.len() as f64;
        let v = vals.iter().map(|e| (e - m) * (e - m)).sum::<f64>() / vals.len() as f64;
        for i in 0..g.n {
            for p in 0..g.s {
                let xhat = (x[at(i, ch, p)].f64() - m) / (v + eps).sqrt();
                let mut o = [T::of(scale[ch].f64() * xhat + bias[ch].f64())];
                act.apply(&mut o);
                y[at(i, ch, p)] = o[0];
            }
        }
        (mean[ch], var[ch]) = (m, v);
    }
    (y, mean, var)
}
