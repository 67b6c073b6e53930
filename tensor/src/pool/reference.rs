//! Max-pooling by direct loops over the windows: what the kernels are tested against.

use super::{PoolGeom, PoolGrad};
use crate::Float;

/// Reference backward of max-pooling under `grad`, by direct loops over the windows of `x`.
pub fn maxpool_backward_naive<T: Float>(
    g: &PoolGeom,
    x: &[T],
    dout: &[T],
    grad: PoolGrad,
) -> Vec<T> {
    let (oh, ow, k) = (g.oh(), g.ow(), g.k);
    let mut dx = vec![T::zero(); x.len()];
    for p in 0..g.planes {
        for oy in 0..oh {
            for ox in 0..ow {
                let at = |i: usize, j: usize| p * g.h * g.w + (oy * k + i) * g.w + ox * k + j;
                let mut max = x[at(0, 0)];
                for i in 0..k {
                    for j in 0..k {
                        if x[at(i, j)] > max {
                            max = x[at(i, j)];
                        }
                    }
                }
                let d = dout[p * oh * ow + oy * ow + ox];
                'window: for i in 0..k {
                    for j in 0..k {
                        if x[at(i, j)] == max {
                            dx[at(i, j)] += d;
                            if grad == PoolGrad::First {
                                break 'window;
                            }
                        }
                    }
                }
            }
        }
    }
    dx
}

/// Reference max-pool by direct loops (first maximum wins).
pub fn maxpool_naive<T: Float>(g: &PoolGeom, x: &[T]) -> (Vec<T>, Vec<u32>) {
    let (oh, ow, k) = (g.oh(), g.ow(), g.k);
    let mut out = Vec::with_capacity(g.out_len());
    let mut arg = Vec::with_capacity(g.out_len());
    for p in 0..g.planes {
        for oy in 0..oh {
            for ox in 0..ow {
                let mut best = p * g.h * g.w + oy * k * g.w + ox * k;
                for i in 0..k {
                    for j in 0..k {
                        let idx = p * g.h * g.w + (oy * k + i) * g.w + ox * k + j;
                        if x[idx] > x[best] {
                            best = idx;
                        }
                    }
                }
                out.push(x[best]);
                arg.push(best as u32);
            }
        }
    }
    (out, arg)
}
