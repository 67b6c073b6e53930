//! Convolution as im2col + GEMM: each image unfolded into columns (one per output position)
//! so that the convolution and its gradients are matrix products. The path for f64, strides
//! over 1, and CPUs without AVX-512.

use super::geom::{check_len, ConvGeom, ConvGrads};
use crate::par::{self, SyncPtr};
use crate::{gemm, Accum, Float, MatMut, MatRef};

/// Unfolds one image `[c, h, w]` into `cols` (`c*kh*kw` rows of `oh*ow`); positions in the
/// padding are zeros.
pub(crate) fn im2col<T: Float>(g: &ConvGeom, x: &[T], cols: &mut [T]) {
    let (oh, ow) = (g.oh(), g.ow());
    let mut row = 0;
    for c in 0..g.c {
        let plane = &x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let dst = &mut cols[row * oh * ow..(row + 1) * oh * ow];
                if g.is_valid() {
                    for oy in 0..oh {
                        let src = &plane[(oy + ki) * g.w + kj..(oy + ki) * g.w + kj + ow];
                        dst[oy * ow..(oy + 1) * ow].copy_from_slice(src);
                    }
                } else {
                    let xs = g.inside(kj);
                    for oy in 0..oh {
                        let d = &mut dst[oy * ow..(oy + 1) * ow];
                        let iy = (oy * g.stride + ki).wrapping_sub(g.pad);
                        if iy >= g.h {
                            d.iter_mut().for_each(|v| *v = T::zero());
                            continue;
                        }
                        d[..xs.start].iter_mut().for_each(|v| *v = T::zero());
                        d[xs.end..].iter_mut().for_each(|v| *v = T::zero());
                        let src = &plane[iy * g.w..(iy + 1) * g.w];
                        if g.stride == 1 {
                            let at = xs.start + kj - g.pad;
                            d[xs.clone()].copy_from_slice(&src[at..at + xs.len()]);
                        } else {
                            for ox in xs.clone() {
                                d[ox] = src[ox * g.stride + kj - g.pad];
                            }
                        }
                    }
                }
                row += 1;
            }
        }
    }
}

/// Folds `cols` back onto one image, adding overlapping contributions into `x` (those of the
/// padding are dropped).
pub(crate) fn col2im<T: Float>(g: &ConvGeom, cols: &[T], x: &mut [T]) {
    let (oh, ow) = (g.oh(), g.ow());
    let mut row = 0;
    for c in 0..g.c {
        let plane = &mut x[c * g.h * g.w..(c + 1) * g.h * g.w];
        for ki in 0..g.kh {
            for kj in 0..g.kw {
                let src = &cols[row * oh * ow..(row + 1) * oh * ow];
                let xs = g.inside(kj);
                for oy in 0..oh {
                    let iy = (oy * g.stride + ki).wrapping_sub(g.pad);
                    if iy >= g.h {
                        continue;
                    }
                    let s = &src[oy * ow..(oy + 1) * ow];
                    let dst = &mut plane[iy * g.w..(iy + 1) * g.w];
                    if g.stride == 1 {
                        let at = xs.start + kj - g.pad;
                        dst[at..at + xs.len()]
                            .iter_mut()
                            .zip(&s[xs.clone()])
                            .for_each(|(d, &v)| *d += v);
                    } else {
                        for ox in xs.clone() {
                            dst[ox * g.stride + kj - g.pad] += s[ox];
                        }
                    }
                }
                row += 1;
            }
        }
    }
}

/// `out = conv(x, w) + b` for `g` with images split into tasks of `per` (see
/// [`super::conv2d_forward`], which has checked the buffer sizes).
pub(super) fn forward<T: Float>(
    g: &ConvGeom,
    per: usize,
    x: &[T],
    w: &[T],
    b: Option<&[T]>,
    out: &mut [T],
    scratch: &mut [T],
) {
    let sp = g.spatial();
    let (op, cp) = (SyncPtr(out.as_mut_ptr()), SyncPtr(scratch.as_mut_ptr()));
    let task = |t: usize| {
        // SAFETY: task t alone owns columns block t and its images' outputs, all inside the
        // buffers checked above.
        let ci = unsafe { cp.slice(t * g.cols_len(), g.cols_len()) };
        let (lo, hi) = (t * per, ((t + 1) * per).min(g.n));
        for i in lo..hi {
            let xi = &x[i * g.in_len()..(i + 1) * g.in_len()];
            // SAFETY: image i's output belongs to task t alone, inside `out` (checked by the
            // caller).
            let oi = unsafe { op.slice(i * g.out_len(), g.out_len()) };
            im2col(g, xi, ci);
            let beta = match b {
                Some(b) => {
                    for (f, row) in oi.chunks_exact_mut(sp).enumerate() {
                        row.iter_mut().for_each(|v| *v = b[f]);
                    }
                    T::one()
                }
                None => T::zero(),
            };
            gemm(
                T::one(),
                MatRef::new(w, g.f, g.ckk()),
                MatRef::new(ci, g.ckk(), sp),
                beta,
                MatMut::new(oi, g.f, sp),
            );
        }
    };
    par::run(g.n.div_ceil(per), &task);
}

/// The gradients of `g` into `grads`, with images split into tasks of `per` (see
/// [`super::conv2d_backward`], which has checked the buffer sizes but that of the input
/// gradient).
pub(super) fn backward<T: Float>(
    g: &ConvGeom,
    per: usize,
    x: &[T],
    w: &[T],
    dout: &[T],
    grads: ConvGrads<'_, T>,
    scratch: &mut [T],
) {
    let sp = g.spatial();
    let tasks = g.n.div_ceil(per.max(1));
    let wlen = g.f * g.ckk();
    let cl = g.cols_len();
    let want_dx = grads.dx.is_some();
    let block = cl * if want_dx { 2 } else { 1 };
    // Per-task partial filter/bias gradients, summed in task order below, so the result
    // depends on the thread count but not on scheduling.
    let (partial, cols_all) = scratch.split_at_mut(tasks * (wlen + g.f));
    let ConvGrads { dx, dw, db } = grads;
    let want_db = db.is_some();
    let (dx_ptr, mode) = match dx {
        Some((d, mode)) => {
            check_len("input gradient", d.len(), g.n * g.in_len());
            (SyncPtr(d.as_mut_ptr()), mode)
        }
        None => (SyncPtr(std::ptr::null_mut()), Accum::Add),
    };
    let (pp, cp) = (
        SyncPtr(partial.as_mut_ptr()),
        SyncPtr(cols_all.as_mut_ptr()),
    );
    let task = |t: usize| {
        // SAFETY: task t alone owns partial block t, columns block t and the input gradient
        // of its images; all lie inside the buffers checked above.
        let ps = unsafe { pp.slice(t * (wlen + g.f), wlen + g.f) };
        ps.iter_mut().for_each(|v| *v = T::zero());
        let (pw, pb) = ps.split_at_mut(wlen);
        // SAFETY: columns block t belongs to task t alone, inside the scratch checked by the
        // caller.
        let (ci, mut dcols) = unsafe {
            let b = cp.slice(t * block, block);
            let (c, d) = b.split_at_mut(cl);
            (c, want_dx.then_some(d))
        };
        for i in t * per..((t + 1) * per).min(g.n) {
            im2col(g, &x[i * g.in_len()..(i + 1) * g.in_len()], ci);
            let di = &dout[i * g.out_len()..(i + 1) * g.out_len()];
            gemm(
                T::one(),
                MatRef::new(di, g.f, sp),
                MatRef::new(ci, g.ckk(), sp).t(),
                T::one(),
                MatMut::new(pw, g.f, g.ckk()),
            );
            if want_db {
                for (f, row) in di.chunks_exact(sp).enumerate() {
                    pb[f] += crate::sum_all(row);
                }
            }
            if let Some(dc) = dcols.as_deref_mut() {
                gemm(
                    T::one(),
                    MatRef::new(w, g.f, g.ckk()).t(),
                    MatRef::new(di, g.f, sp),
                    T::zero(),
                    MatMut::new(dc, g.ckk(), sp),
                );
                // SAFETY: dx is given (dcols is only then) and was checked to hold every
                // image; image i's input gradient belongs to task t alone.
                let dxi = unsafe { dx_ptr.slice(i * g.in_len(), g.in_len()) };
                if mode == Accum::Overwrite {
                    dxi.fill(T::zero());
                }
                col2im(g, dc, dxi);
            }
        }
    };
    par::run(tasks, &task);
    for p in partial.chunks_exact(wlen + g.f) {
        dw[..wlen]
            .iter_mut()
            .zip(&p[..wlen])
            .for_each(|(d, &v)| *d += v);
    }
    if let Some(db) = db {
        for p in partial.chunks_exact(wlen + g.f) {
            db[..g.f]
                .iter_mut()
                .zip(&p[wlen..])
                .for_each(|(d, &v)| *d += v);
        }
    }
}
