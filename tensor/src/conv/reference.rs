//! Convolution by its definition, as direct loops: what the fast paths are tested against.

use super::geom::ConvGeom;
use crate::Float;

/// The input position of output `o` under filter offset `k`, if it is not padding.
fn source(o: usize, k: usize, g: &ConvGeom, size: usize) -> Option<usize> {
    (o * g.stride + k).checked_sub(g.pad).filter(|&i| i < size)
}

/// The taps under output `(n, f, oy, ox)` that are not padding, as `(x index, w index)`, in
/// the order the references sum them.
fn taps(
    g: &ConvGeom,
    (n, f): (usize, usize),
    (oy, ox): (usize, usize),
) -> impl Iterator<Item = (usize, usize)> + '_ {
    (0..g.c).flat_map(move |c| {
        (0..g.kh).flat_map(move |i| {
            (0..g.kw).filter_map(move |j| {
                let (iy, ix) = (source(oy, i, g, g.h)?, source(ox, j, g, g.w)?);
                Some((
                    ((n * g.c + c) * g.h + iy) * g.w + ix,
                    ((f * g.c + c) * g.kh + i) * g.kw + j,
                ))
            })
        })
    })
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
                    for (xi, wi) in taps(g, (n, f), (oy, ox)) {
                        s += x[xi] * w[wi];
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
                    for (xi, wi) in taps(g, (n, f), (oy, ox)) {
                        dx[xi] += d * w[wi];
                        dw[wi] += d * x[xi];
                    }
                }
            }
        }
    }
    (dx, dw, db)
}
