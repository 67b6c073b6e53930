//! Convolution by its definition, as direct loops: what the fast paths are tested against.

use super::geom::ConvGeom;
use crate::Float;

/// The input position of output `o` under filter offset `k`, if it is not padding.
fn source(o: usize, k: usize, g: &ConvGeom, size: usize) -> Option<usize> {
    (o * g.stride + k).checked_sub(g.pad).filter(|&i| i < size)
}

/// Reference forward: the definition of a (padded, strided) cross-correlation, as direct loops.
pub fn conv2d_naive<T: Float>(g: &ConvGeom, x: &[T], w: &[T], b: Option<&[T]>) -> Vec<T> {
    let (oh, ow) = (g.oh(), g.ow());
    let mut out = vec![T::zero(); g.n * g.out_len()];
    for n in 0..g.n {
        for f in 0..g.f {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut s = b.map_or(T::zero(), |b| b[f]);
                    for c in 0..g.c {
                        for i in 0..g.kh {
                            for j in 0..g.kw {
                                let (Some(iy), Some(ix)) =
                                    (source(oy, i, g, g.h), source(ox, j, g, g.w))
                                else {
                                    continue;
                                };
                                s += x[((n * g.c + c) * g.h + iy) * g.w + ix]
                                    * w[((f * g.c + c) * g.kh + i) * g.kw + j];
                            }
                        }
                    }
                    out[((n * g.f + f) * oh + oy) * ow + ox] = s;
                }
            }
        }
    }
    out
}

/// Reference backward by direct loops: returns `(dx, dw, db)`.
pub fn conv2d_backward_naive<T: Float>(
    g: &ConvGeom,
    x: &[T],
    w: &[T],
    dout: &[T],
) -> (Vec<T>, Vec<T>, Vec<T>) {
    let (oh, ow) = (g.oh(), g.ow());
    let mut dx = vec![T::zero(); g.n * g.in_len()];
    let mut dw = vec![T::zero(); g.f * g.ckk()];
    let mut db = vec![T::zero(); g.f];
    for n in 0..g.n {
        for f in 0..g.f {
            for oy in 0..oh {
                for ox in 0..ow {
                    let d = dout[((n * g.f + f) * oh + oy) * ow + ox];
                    db[f] += d;
                    for c in 0..g.c {
                        for i in 0..g.kh {
                            for j in 0..g.kw {
                                let (Some(iy), Some(ix)) =
                                    (source(oy, i, g, g.h), source(ox, j, g, g.w))
                                else {
                                    continue;
                                };
                                let xi = ((n * g.c + c) * g.h + iy) * g.w + ix;
                                let wi = ((f * g.c + c) * g.kh + i) * g.kw + j;
                                dx[xi] += d * w[wi];
                                dw[wi] += d * x[xi];
                            }
                        }
                    }
                }
            }
        }
    }
    (dx, dw, db)
}
