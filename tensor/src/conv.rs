//! Batched 2-D convolution (NCHW, zero padding, stride) by im2col + GEMM, its three gradients, and a
//! naive direct convolution kept as the reference the fast kernels are tested against.
//!
//! Forward, per image: `out[n] (F x OH*OW) = W (F x C*KH*KW) . cols[n] + b`.
//! Backward: `dW += dout[n] . cols[n]^T`, `db += sum(dout[n])`, and the input gradient as one
//! GEMM `W^T . dout[n]` followed by col2im (no scalar loops). The mini-batch is split across
//! rayon threads in contiguous chunks; each chunk runs single-threaded GEMMs, and the per-chunk
//! partial filter gradients are summed in chunk order, so results depend on the thread count
//! but not on scheduling. For f32 at stride 1 on AVX-512, [`conv2d_forward`] and
//! [`conv2d_backward`] hand the work to [`crate::direct`] (no im2col) instead.

use crate::par::{self, SyncPtr};
use crate::pool::{maxpool_forward, tie_masks, tie_offsets, PoolGeom, PoolGrad};
use crate::unary::Act;
use crate::{gemm, Accum, Float, MatMut, MatRef, Result, Shape, TensorError};

/// The sizes of one convolution: input `[n, c, h, w]`, filters `[f, c, kh, kw]`, zero
/// padding `pad` on every side and step `stride` (0 and 1: network3's valid convolution).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvGeom {
    /// Mini-batch size.
    pub n: usize,
    /// Input channels.
    pub c: usize,
    /// Input height.
    pub h: usize,
    /// Input width.
    pub w: usize,
    /// Number of filters (output channels).
    pub f: usize,
    /// Filter height.
    pub kh: usize,
    /// Filter width.
    pub kw: usize,
    /// Zero rows and columns added on each side of the input.
    pub pad: usize,
    /// Step between two output positions.
    pub stride: usize,
}

impl ConvGeom {
    /// Geometry from input and filter shapes, checking they fit a valid convolution.
    pub fn new(x: Shape, w: Shape) -> Result<Self> {
        Self::padded(x, w, 0, 1)
    }

    /// Geometry of a convolution with zero padding `pad` and step `stride`.
    pub fn padded(x: Shape, w: Shape, pad: usize, stride: usize) -> Result<Self> {
        let bad = |why: String| TensorError::ShapeMismatch {
            op: "conv2d",
            lhs: x,
            rhs: w,
            why,
        };
        if x.ndim() != 4 || w.ndim() != 4 {
            return Err(bad(
                "input must be [N, C, H, W] and filters [F, C, KH, KW]".into()
            ));
        }
        let g = ConvGeom {
            n: x[0],
            c: x[1],
            h: x[2],
            w: x[3],
            f: w[0],
            kh: w[2],
            kw: w[3],
            pad,
            stride,
        };
        if w[1] != g.c {
            return Err(bad(format!(
                "input has {} channels, filters expect {}",
                g.c, w[1]
            )));
        }
        if stride == 0 {
            return Err(bad("the stride must be at least 1".into()));
        }
        let (oh, ow) = match (
            out_side(g.h, pad, g.kh, stride),
            out_side(g.w, pad, g.kw, stride),
        ) {
            (Some(oh), Some(ow)) if g.kh > 0 && g.kw > 0 => (oh, ow),
            _ => {
                return Err(bad(format!(
                    "a {}x{} filter does not fit a {}x{} image padded by {pad}",
                    g.kh, g.kw, g.h, g.w
                )))
            }
        };
        // Every length the kernels compute from the geometry, checked once here so that the
        // accessors below cannot wrap: an overflow is a geometry no buffer could hold.
        let per_image = [
            g.c.checked_mul(g.h).and_then(|v| v.checked_mul(g.w)),
            // The padded image (the direct kernels' layout), with room for a filter's reach.
            (|| {
                let side = |v: usize, k: usize| v.checked_add(pad.checked_mul(2)?)?.checked_add(k);
                side(g.h, g.kh)?
                    .checked_mul(side(g.w, g.kw)?)?
                    .checked_mul(g.c)
            })(),
            oh.checked_mul(ow).and_then(|s| s.checked_mul(g.f)),
            oh.checked_mul(ow)
                .and_then(|s| s.checked_mul(g.c)?.checked_mul(g.kh)?.checked_mul(g.kw)),
        ];
        let fits = per_image
            .iter()
            .all(|len| len.and_then(|l| l.checked_mul(g.n.max(1))).is_some());
        let filters =
            g.c.checked_mul(g.kh)
                .and_then(|v| v.checked_mul(g.kw)?.checked_mul(g.f));
        if !fits || filters.is_none() {
            return Err(bad(format!(
                "a {oh}x{ow} output of {} filters over {} images is too large to address",
                g.f, g.n
            )));
        }
        Ok(g)
    }
    /// Output height (0 for a geometry [`ConvGeom::padded`] would refuse).
    pub fn oh(&self) -> usize {
        out_side(self.h, self.pad, self.kh, self.stride).unwrap_or(0)
    }
    /// Output width (0 for a geometry [`ConvGeom::padded`] would refuse).
    pub fn ow(&self) -> usize {
        out_side(self.w, self.pad, self.kw, self.stride).unwrap_or(0)
    }
    /// Whether this is a valid, stride-1 convolution (im2col's row copies are contiguous).
    fn is_valid(&self) -> bool {
        self.pad == 0 && self.stride == 1
    }
    /// Output columns `ox` whose input column `ox*stride + kj - pad` lies inside the image,
    /// as a range.
    fn inside(&self, kj: usize) -> std::ops::Range<usize> {
        let ow = self.ow();
        let lo = self.pad.saturating_sub(kj).div_ceil(self.stride).min(ow);
        // ox*stride + kj - pad <= w - 1
        let hi = if self.w + self.pad > kj {
            ((self.w + self.pad - kj - 1) / self.stride + 1).min(ow)
        } else {
            0
        };
        lo..hi.max(lo)
    }
    /// Rows of one image's im2col matrix: `c * kh * kw`.
    pub fn ckk(&self) -> usize {
        self.c * self.kh * self.kw
    }
    /// Output pixels per channel: `oh * ow`.
    pub fn spatial(&self) -> usize {
        self.oh() * self.ow()
    }
    /// Elements of one input image.
    pub fn in_len(&self) -> usize {
        self.c * self.h * self.w
    }
    /// Elements of one output image.
    pub fn out_len(&self) -> usize {
        self.f * self.spatial()
    }
    /// Elements of one image's im2col matrix.
    pub fn cols_len(&self) -> usize {
        self.ckk() * self.spatial()
    }
    /// Output shape `[n, f, oh, ow]`.
    pub fn out_shape(&self) -> Shape {
        Shape::new(&[self.n, self.f, self.oh(), self.ow()]).unwrap_or_default()
    }
    fn flops(&self) -> usize {
        2 * self.n * self.f * self.ckk() * self.spatial()
    }
}

/// One output side of a convolution, `(size + 2 pad - k) / stride + 1` (PyTorch's), or `None`
/// when the filter does not fit the padded image, the stride is 0 or the padded size
/// overflows a `usize`. The one place this formula is computed: the layers that build shapes
/// from it (nn's `Conv2d`) call it too.
pub fn out_side(size: usize, pad: usize, k: usize, stride: usize) -> Option<usize> {
    let padded = size.checked_add(pad.checked_mul(2)?)?;
    padded.checked_sub(k)?.checked_div(stride)?.checked_add(1)
}

/// Unfolds one image `[c, h, w]` into `cols` (`c*kh*kw` rows of `oh*ow`); positions in the
/// padding are zeros.
pub fn im2col<T: Float>(g: &ConvGeom, x: &[T], cols: &mut [T]) {
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
pub fn col2im<T: Float>(g: &ConvGeom, cols: &[T], x: &mut [T]) {
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

/// How many images each parallel task takes (the whole batch when the work is small).
fn chunk_images(g: &ConvGeom) -> usize {
    let threads = par::threads();
    // Below ~2 MFLOP a task the fork/join costs more than it saves.
    if threads == 1 || g.n < 2 || g.flops() < 4_000_000 {
        g.n.max(1)
    } else {
        g.n.div_ceil(threads)
    }
}

fn check_len(what: &'static str, got: usize, want: usize) {
    assert!(
        got >= want,
        "conv2d: {what} buffer holds {got} elements, needs {want}"
    );
}

/// Scratch elements [`conv2d_forward`] needs: one image's columns per task.
pub fn conv2d_forward_scratch_len(g: &ConvGeom) -> usize {
    let tasks = g.n.div_ceil(chunk_images(g).max(1));
    (tasks * g.cols_len()).max(crate::direct::forward_scratch_len(g, tasks))
}

/// Fast forward: `out = conv(x, w) + b`. Each task unfolds one image at a time into its block
/// of `scratch` ([`conv2d_forward_scratch_len`]), so the columns stay in cache and a batch's
/// columns (hundreds of MB for an evaluation batch) are never stored: the backward unfolds
/// again.
pub fn conv2d_forward<T: Float>(
    g: &ConvGeom,
    x: &[T],
    w: &[T],
    b: Option<&[T]>,
    out: &mut [T],
    scratch: &mut [T],
) {
    check_len("input", x.len(), g.n * g.in_len());
    check_len("filter", w.len(), g.f * g.ckk());
    check_len("output", out.len(), g.n * g.out_len());
    check_len("scratch", scratch.len(), conv2d_forward_scratch_len(g));
    let per = chunk_images(g);
    if crate::direct::applies::<T>(g) {
        return crate::direct::forward(g, per, x, w, b, out, scratch);
    }
    let sp = g.spatial();
    let (op, cp) = (SyncPtr(out.as_mut_ptr()), SyncPtr(scratch.as_mut_ptr()));
    let task = |t: usize| {
        // SAFETY: task t alone owns columns block t and its images' outputs, all inside the
        // buffers checked above.
        let ci = unsafe { cp.slice(t * g.cols_len(), g.cols_len()) };
        let (lo, hi) = (t * per, ((t + 1) * per).min(g.n));
        for i in lo..hi {
            let xi = &x[i * g.in_len()..(i + 1) * g.in_len()];
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

/// Scratch elements [`conv2d_backward`] needs: per task the partial filter and bias
/// gradients, one image's columns and, with an input gradient, their gradient.
pub fn conv2d_backward_scratch_len(g: &ConvGeom, with_dx: bool) -> usize {
    let tasks = g.n.div_ceil(chunk_images(g).max(1));
    (tasks * (g.f * g.ckk() + g.f + g.cols_len() * if with_dx { 2 } else { 1 }))
        .max(crate::direct::backward_scratch_len(g, tasks, with_dx))
}

/// Fast backward from the forward's input `x`. Adds the filter gradient into `dw` and the bias
/// gradient into `db`; when `dx` is given, puts the input gradient into it as its [`Accum`]
/// says. `scratch` holds at
/// least [`conv2d_backward_scratch_len`] elements (contents ignored), so that a training step
/// allocates nothing here.
#[allow(clippy::too_many_arguments)]
pub fn conv2d_backward<T: Float>(
    g: &ConvGeom,
    x: &[T],
    w: &[T],
    dout: &[T],
    dx: Option<(&mut [T], Accum)>,
    dw: &mut [T],
    db: Option<&mut [T]>,
    scratch: &mut [T],
) {
    check_len("input", x.len(), g.n * g.in_len());
    check_len("output gradient", dout.len(), g.n * g.out_len());
    check_len("filter gradient", dw.len(), g.f * g.ckk());
    let want_dx = dx.is_some();
    check_len(
        "scratch",
        scratch.len(),
        conv2d_backward_scratch_len(g, want_dx),
    );
    let per = chunk_images(g);
    if crate::direct::applies::<T>(g) {
        return crate::direct::backward(g, per, x, w, dout, dx, dw, db, scratch);
    }
    let sp = g.spatial();
    let tasks = g.n.div_ceil(per.max(1));
    let wlen = g.f * g.ckk();
    let cl = g.cols_len();
    let block = cl * if want_dx { 2 } else { 1 };
    // Per-task partial filter/bias gradients, summed in task order below, so the result
    // depends on the thread count but not on scheduling.
    let (partial, cols_all) = scratch.split_at_mut(tasks * (wlen + g.f));
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
            for (f, row) in di.chunks_exact(sp).enumerate() {
                pb[f] += crate::sum_all(row);
            }
            if let Some(dc) = dcols.as_deref_mut() {
                gemm(
                    T::one(),
                    MatRef::new(w, g.f, g.ckk()).t(),
                    MatRef::new(di, g.f, sp),
                    T::zero(),
                    MatMut::new(dc, g.ckk(), sp),
                );
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

/// The fused layer of network3: `act(maxpool(conv(x, w)) + b)`, per image in one task, so the
/// pooling, bias and activation run on every thread beside the convolution instead of as
/// serial passes over the whole batch between the parallel ones, and the unpooled convolution
/// output never leaves a per-task buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvPoolGeom {
    /// The convolution.
    pub conv: ConvGeom,
    /// Side of the non-overlapping max-pool windows.
    pub pool: usize,
    /// Where the pool's gradient goes ([`PoolGrad::Ties`] needs `pool <= MAX_TIES_POOL`).
    pub grad: PoolGrad,
}

impl ConvPoolGeom {
    /// The fused layer of `conv` and `pool x pool` windows, checking the pool fits the
    /// convolution's output and each window's argmax (an index into one image's convolution
    /// output) fits the 32 bits it is stored in.
    pub fn new(conv: ConvGeom, pool: usize, grad: PoolGrad) -> Result<Self> {
        let bad = |why: String| TensorError::InvalidShape {
            op: "conv_pool",
            shape: conv.out_shape(),
            why,
        };
        if pool == 0 || pool > conv.oh() || pool > conv.ow() {
            return Err(bad(format!(
                "a {pool}x{pool} pool does not fit the {}x{} convolution output",
                conv.oh(),
                conv.ow()
            )));
        }
        if u32::try_from(conv.out_len()).is_err() {
            return Err(bad(format!(
                "one image's convolution output ({} values) is past the 2^32 a pool's argmax indexes",
                conv.out_len()
            )));
        }
        Ok(ConvPoolGeom { conv, pool, grad })
    }

    fn pool_geom(&self) -> PoolGeom {
        PoolGeom {
            planes: self.conv.f,
            h: self.conv.oh(),
            w: self.conv.ow(),
            k: self.pool,
        }
    }
    /// Elements of one image's output `[f, oh/pool, ow/pool]`.
    pub fn out_len(&self) -> usize {
        self.pool_geom().out_len()
    }
    /// Output shape `[n, f, oh/pool, ow/pool]`.
    pub fn out_shape(&self) -> Shape {
        let p = self.pool_geom();
        Shape::new(&[self.conv.n, self.conv.f, p.oh(), p.ow()]).unwrap_or_default()
    }
    fn tasks(&self) -> (usize, usize) {
        let per = chunk_images(&self.conv).max(1);
        (per, self.conv.n.div_ceil(per))
    }
}

/// Scratch elements [`conv_pool_forward`] needs (one image's convolution output per task).
pub fn conv_pool_forward_scratch_len(g: &ConvPoolGeom) -> usize {
    g.tasks().1 * g.conv.out_len()
}

/// Fused forward: `out = act(maxpool(conv(x, w)) + b)`, the argmax of each window (index in
/// its image's convolution output; under [`PoolGrad::Ties`] the mask of its maxima) into `arg`, the im2col columns into `cols` for the
/// backward. `scratch` holds [`conv_pool_forward_scratch_len`] elements.
#[allow(clippy::too_many_arguments)]
pub fn conv_pool_forward<T: Float>(
    g: &ConvPoolGeom,
    act: Act,
    x: &[T],
    w: &[T],
    b: &[T],
    out: &mut [T],
    arg: &mut [u32],
    cols: &mut [T],
    scratch: &mut [T],
) {
    let c = &g.conv;
    check_len("input", x.len(), c.n * c.in_len());
    check_len("filter", w.len(), c.f * c.ckk());
    check_len("bias", b.len(), c.f);
    check_len("output", out.len(), c.n * g.out_len());
    check_len("argmax", arg.len(), c.n * g.out_len());
    check_len("cols", cols.len(), c.n * c.cols_len());
    check_len("scratch", scratch.len(), conv_pool_forward_scratch_len(g));
    let (per, tasks) = g.tasks();
    let (ol, pg) = (g.out_len(), g.pool_geom());
    let plane = ol / c.f.max(1);
    let (op, ap, cp, sp) = (
        SyncPtr(out.as_mut_ptr()),
        SyncPtr(arg.as_mut_ptr()),
        SyncPtr(cols.as_mut_ptr()),
        SyncPtr(scratch.as_mut_ptr()),
    );
    let task = |t: usize| {
        // SAFETY: task t alone owns its images' outputs, argmaxes, columns and scratch block t;
        // all lie inside the buffers checked above.
        let conv = unsafe { sp.slice(t * c.out_len(), c.out_len()) };
        for i in t * per..((t + 1) * per).min(c.n) {
            let (oi, ai, ci) = unsafe {
                (
                    op.slice(i * ol, ol),
                    ap.slice(i * ol, ol),
                    cp.slice(i * c.cols_len(), c.cols_len()),
                )
            };
            im2col(c, &x[i * c.in_len()..(i + 1) * c.in_len()], ci);
            gemm(
                T::one(),
                MatRef::new(w, c.f, c.ckk()),
                MatRef::new(ci, c.ckk(), c.spatial()),
                T::zero(),
                MatMut::new(conv, c.f, c.spatial()),
            );
            maxpool_forward(&pg, conv, oi, ai);
            if g.grad == PoolGrad::Ties {
                tie_masks(&pg, conv, oi, ai);
            }
            for (f, row) in oi.chunks_exact_mut(plane.max(1)).enumerate() {
                row.iter_mut().for_each(|v| *v += b[f]);
            }
            act.apply(oi);
        }
    };
    par::run(tasks, &task);
}

/// Scratch elements [`conv_pool_backward`] needs: per task the partial filter and bias
/// gradients, one image's convolution-output gradient and, with an input gradient, its
/// columns' gradient.
pub fn conv_pool_backward_scratch_len(g: &ConvPoolGeom, with_dx: bool) -> usize {
    let c = &g.conv;
    let dx = if with_dx { c.cols_len() } else { 0 };
    g.tasks().1 * (c.f * c.ckk() + c.f + c.out_len() + dx)
}

/// Fused backward, given the forward's `out` (`y`), `arg` and `cols` and the output gradient
/// `dy`: adds the filter gradient into `dw`, the bias gradient into `db`, and with `dx` the
/// input gradient into it. Per-task partial gradients are summed in task order.
#[allow(clippy::too_many_arguments)]
pub fn conv_pool_backward<T: Float>(
    g: &ConvPoolGeom,
    act: Act,
    w: &[T],
    cols: &[T],
    arg: &[u32],
    y: &[T],
    dy: &[T],
    dx: Option<&mut [T]>,
    dw: &mut [T],
    db: &mut [T],
    scratch: &mut [T],
) {
    let c = &g.conv;
    let ol = g.out_len();
    check_len("cols", cols.len(), c.n * c.cols_len());
    check_len("argmax", arg.len(), c.n * ol);
    check_len("output", y.len(), c.n * ol);
    check_len("output gradient", dy.len(), c.n * ol);
    check_len("filter gradient", dw.len(), c.f * c.ckk());
    check_len("bias gradient", db.len(), c.f);
    let want_dx = dx.is_some();
    check_len(
        "scratch",
        scratch.len(),
        conv_pool_backward_scratch_len(g, want_dx),
    );
    let (per, tasks) = g.tasks();
    let wlen = c.f * c.ckk();
    let block = wlen + c.f + c.out_len() + if want_dx { c.cols_len() } else { 0 };
    let plane = ol / c.f.max(1);
    let pg = g.pool_geom();
    let off = tie_offsets(&pg);
    let dx_ptr = match dx {
        Some(d) => {
            check_len("input gradient", d.len(), c.n * c.in_len());
            SyncPtr(d.as_mut_ptr())
        }
        None => SyncPtr(std::ptr::null_mut()),
    };
    let sp = SyncPtr(scratch.as_mut_ptr());
    let task = |t: usize| {
        // SAFETY: scratch block t and the input gradient of task t's images are its own.
        let s = unsafe { sp.slice(t * block, block) };
        let (pw, rest) = s.split_at_mut(wlen);
        let (pb, rest) = rest.split_at_mut(c.f);
        let (dconv, dcols) = rest.split_at_mut(c.out_len());
        pw.iter_mut()
            .chain(pb.iter_mut())
            .for_each(|v| *v = T::zero());
        for i in t * per..((t + 1) * per).min(c.n) {
            let (yi, dyi, ai) = (
                &y[i * ol..(i + 1) * ol],
                &dy[i * ol..(i + 1) * ol],
                &arg[i * ol..(i + 1) * ol],
            );
            // dz = dy * act'(y), scattered to the window maxima; db = sum of dz per filter.
            dconv.iter_mut().for_each(|v| *v = T::zero());
            for (f, ((yr, dr), ar)) in yi
                .chunks_exact(plane.max(1))
                .zip(dyi.chunks_exact(plane.max(1)))
                .zip(ai.chunks_exact(plane.max(1)))
                .enumerate()
            {
                let mut sum = T::zero();
                if g.grad == PoolGrad::Ties {
                    let (ow, k) = (pg.ow(), pg.k);
                    let rows = yr
                        .chunks_exact(ow)
                        .zip(dr.chunks_exact(ow))
                        .zip(ar.chunks_exact(ow));
                    for (oy, ((yrow, drow), arow)) in rows.enumerate() {
                        let r0 = f * pg.h * pg.w + oy * k * pg.w;
                        for (ox, ((&yv, &dv), &mask)) in yrow.iter().zip(drow).zip(arow).enumerate()
                        {
                            let dz = dv * act.grad_from_output(yv);
                            sum += dz;
                            let (origin, mut m) = (r0 + ox * k, mask);
                            while m != 0 {
                                dconv[origin + off[m.trailing_zeros() as usize]] += dz;
                                m &= m - 1;
                            }
                        }
                    }
                } else {
                    for ((&yv, &dv), &a) in yr.iter().zip(dr).zip(ar) {
                        let dz = dv * act.grad_from_output(yv);
                        sum += dz;
                        dconv[a as usize] += dz;
                    }
                }
                pb[f] += sum;
            }
            let ci = &cols[i * c.cols_len()..(i + 1) * c.cols_len()];
            gemm(
                T::one(),
                MatRef::new(dconv, c.f, c.spatial()),
                MatRef::new(ci, c.ckk(), c.spatial()).t(),
                T::one(),
                MatMut::new(pw, c.f, c.ckk()),
            );
            if want_dx {
                gemm(
                    T::one(),
                    MatRef::new(w, c.f, c.ckk()).t(),
                    MatRef::new(dconv, c.f, c.spatial()),
                    T::zero(),
                    MatMut::new(dcols, c.ckk(), c.spatial()),
                );
                let dxi = unsafe { dx_ptr.slice(i * c.in_len(), c.in_len()) };
                col2im(c, dcols, dxi);
            }
        }
    };
    par::run(tasks, &task);
    for s in scratch[..tasks * block].chunks_exact(block) {
        dw[..wlen]
            .iter_mut()
            .zip(&s[..wlen])
            .for_each(|(d, &v)| *d += v);
        db[..c.f]
            .iter_mut()
            .zip(&s[wlen..wlen + c.f])
            .for_each(|(d, &v)| *d += v);
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn geom(dims: [usize; 7]) -> ConvGeom {
        geom_ps(dims, 0, 1)
    }

    fn geom_ps(dims: [usize; 7], pad: usize, stride: usize) -> ConvGeom {
        let [n, c, h, w, f, kh, kw] = dims;
        ConvGeom::padded(
            Shape::new(&[n, c, h, w]).unwrap(),
            Shape::new(&[f, c, kh, kw]).unwrap(),
            pad,
            stride,
        )
        .unwrap()
    }

    #[test]
    fn hand_computed_forward() {
        // x = [[1,2,3],[4,5,6],[7,8,9]], w = [[1,0],[0,-1]], b = 0.5:
        // out[i][j] = x[i][j] - x[i+1][j+1] + 0.5 = -4 + 0.5 everywhere.
        let g = geom([1, 1, 3, 3, 1, 2, 2]);
        let x: Vec<f64> = (1..=9).map(f64::from).collect();
        let w = [1.0, 0.0, 0.0, -1.0];
        let mut out = vec![0.0; 4];
        let mut scratch = vec![0.0; conv2d_forward_scratch_len(&g)];
        conv2d_forward(&g, &x, &w, Some(&[0.5]), &mut out, &mut scratch);
        assert_eq!(out, vec![-3.5; 4]);
        assert_eq!(conv2d_naive(&g, &x, &w, Some(&[0.5])), out);
    }

    #[test]
    fn fast_equals_naive_on_random_shapes() {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(7);
        // The last two are big enough (>= 4 MFLOP) to be split into one chunk per thread.
        for dims in [
            [3, 2, 7, 6, 4, 3, 2],
            [5, 3, 9, 9, 2, 5, 5],
            [1, 1, 5, 5, 1, 5, 5],
            [16, 4, 8, 8, 3, 3, 3],
            [7, 20, 12, 12, 40, 5, 5],
            [9, 1, 28, 28, 20, 5, 5],
        ] {
            check_fast_against_naive(geom(dims), &mut rng);
        }
    }

    #[test]
    fn padded_and_strided_fast_equals_naive() {
        let mut rng = rand_pcg::Pcg64::seed_from_u64(8);
        // Padding wider than the filter's reach, strides that skip the last column, a 1x1
        // image, and shapes big enough to be split across threads.
        for (dims, pad, stride) in [
            ([2, 1, 5, 5, 2, 3, 3], 1, 1),
            ([3, 2, 7, 6, 4, 3, 2], 2, 1),
            ([2, 3, 7, 8, 2, 3, 3], 1, 2),
            ([2, 2, 9, 7, 3, 5, 5], 2, 3),
            ([1, 1, 1, 1, 2, 3, 3], 1, 1),
            ([2, 1, 4, 4, 1, 2, 2], 0, 2),
            ([2, 2, 6, 6, 2, 3, 3], 3, 1),
            ([9, 1, 28, 28, 32, 3, 3], 1, 1),
            ([8, 32, 14, 14, 64, 5, 5], 2, 1),
            ([8, 16, 14, 14, 16, 3, 3], 1, 2),
        ] {
            for threads in [1, 2] {
                crate::par::with_threads(threads, || {
                    check_fast_against_naive(geom_ps(dims, pad, stride), &mut rng)
                });
            }
        }
    }

    #[test]
    fn padding_and_stride_set_the_output_size_as_pytorch_does() {
        // floor((h + 2p - k) / s) + 1
        let g = geom_ps([1, 1, 28, 28, 1, 3, 3], 1, 1);
        assert_eq!((g.oh(), g.ow()), (28, 28));
        let g = geom_ps([1, 1, 28, 27, 1, 5, 5], 2, 2);
        assert_eq!((g.oh(), g.ow()), (14, 14));
        let g = geom_ps([1, 1, 7, 7, 1, 3, 3], 0, 3);
        assert_eq!((g.oh(), g.ow()), (2, 2));
        let bad = ConvGeom::padded(
            Shape::new(&[1, 1, 2, 2]).unwrap(),
            Shape::new(&[1, 1, 5, 5]).unwrap(),
            1,
            1,
        );
        assert!(bad.unwrap_err().to_string().contains("padded by 1"));
        let zero = ConvGeom::padded(
            Shape::new(&[1, 1, 4, 4]).unwrap(),
            Shape::new(&[1, 1, 3, 3]).unwrap(),
            0,
            0,
        );
        assert!(zero.unwrap_err().to_string().contains("stride"));
    }

    fn check_fast_against_naive(g: ConvGeom, rng: &mut rand_pcg::Pcg64) {
        let x: Vec<f64> = (0..g.n * g.in_len())
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let w: Vec<f64> = (0..g.f * g.ckk())
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let b: Vec<f64> = (0..g.f).map(|_| rng.random_range(-1.0..1.0)).collect();
        let dout: Vec<f64> = (0..g.n * g.out_len())
            .map(|_| rng.random_range(-1.0..1.0))
            .collect();
        let mut out = vec![f64::NAN; g.n * g.out_len()];
        // NaN: a column position im2col leaves unwritten (padding) would show in the output.
        let mut cols = vec![f64::NAN; conv2d_forward_scratch_len(&g)];
        conv2d_forward(&g, &x, &w, Some(&b), &mut out, &mut cols);
        let want = conv2d_naive(&g, &x, &w, Some(&b));
        for (a, b) in out.iter().zip(&want) {
            assert!((a - b).abs() < 1e-12, "{g:?}: forward {a} vs {b}");
        }
        let (dx0, dw0, db0) = conv2d_backward_naive(&g, &x, &w, &dout);
        let mut dx = vec![0.0; dx0.len()];
        let mut dw = vec![0.0; dw0.len()];
        let mut db = vec![0.0; db0.len()];
        let mut scratch = vec![f64::NAN; conv2d_backward_scratch_len(&g, true)];
        conv2d_backward(
            &g,
            &x,
            &w,
            &dout,
            Some((&mut dx, Accum::Add)),
            &mut dw,
            Some(&mut db),
            &mut scratch,
        );
        for (name, got, want) in [("dx", &dx, &dx0), ("dw", &dw, &dw0), ("db", &db, &db0)] {
            for (a, b) in got.iter().zip(want.iter()) {
                assert!((a - b).abs() < 1e-11, "{g:?}: {name} {a} vs {b}");
            }
        }
        // Written over: what was there (NaN) is gone.
        let mut dx_over = vec![f64::NAN; dx0.len()];
        let mut dw_over = vec![0.0; dw0.len()];
        conv2d_backward(
            &g,
            &x,
            &w,
            &dout,
            Some((&mut dx_over, Accum::Overwrite)),
            &mut dw_over,
            None,
            &mut scratch,
        );
        for (a, b) in dx_over.iter().zip(&dx0) {
            assert!((a - b).abs() < 1e-11, "{g:?}: dx (overwrite) {a} vs {b}");
        }
        // Without dx, dw and db are unchanged.
        let mut dw2 = vec![0.0; dw0.len()];
        conv2d_backward(&g, &x, &w, &dout, None, &mut dw2, None, &mut scratch);
        assert_eq!(dw2, dw);
    }

    #[test]
    fn fused_conv_pool_equals_the_naive_composition() {
        use crate::pool::PoolGrad;
        for (dims, pool) in [
            ([3, 2, 9, 8, 3, 3, 2], 2),
            ([10, 1, 28, 28, 20, 5, 5], 2),
            ([10, 20, 12, 12, 40, 5, 5], 2),
            ([5, 3, 11, 10, 7, 2, 3], 3),
            ([1, 1, 5, 5, 1, 5, 5], 1),
        ] {
            // Small whole numbers make every sum exact, so windows tie (over zero patches and
            // otherwise) the same way in the reference as in the fused kernel.
            for quantised in [false, true] {
                for act in [Act::Identity, Act::Sigmoid, Act::Tanh, Act::Relu] {
                    let mut dws = Vec::new();
                    for grad in [PoolGrad::First, PoolGrad::Ties] {
                        for threads in [1, 2] {
                            dws.push(check_fused(dims, pool, act, grad, quantised, threads));
                        }
                    }
                    // (Threads sum the conv's partial gradients in another order; each run
                    // was checked against the reference above.) Ties change the gradient
                    // exactly when there are ties.
                    let moved = dws[0]
                        .iter()
                        .zip(&dws[2])
                        .any(|(a, b)| (a - b).abs() > 1e-9);
                    if dims[0] > 1 {
                        assert_eq!(moved, quantised, "{dims:?} quantised {quantised}");
                    }
                }
            }
        }
    }

    /// One fused forward and backward against the composition by the definitions; returns dw.
    fn check_fused(
        dims: [usize; 7],
        pool: usize,
        act: Act,
        grad: crate::pool::PoolGrad,
        quantised: bool,
        threads: usize,
    ) -> Vec<f64> {
        use crate::pool::{maxpool_backward_naive, maxpool_naive};
        // The same draws for every mode and thread count of one shape.
        let mut rng =
            rand_pcg::Pcg64::seed_from_u64(dims.iter().sum::<usize>() as u64 + pool as u64);
        let g = ConvPoolGeom {
            conv: geom(dims),
            pool,
            grad,
        };
        let c = g.conv;
        let mut r = |n: usize, lo: i32, hi: i32| -> Vec<f64> {
            (0..n)
                .map(|_| {
                    if quantised {
                        f64::from(rng.random_range(lo..=hi))
                    } else {
                        rng.random_range(-1.0..1.0)
                    }
                })
                .collect()
        };
        let x: Vec<f64> = r(c.n * c.in_len(), -1, 1)
            .iter()
            .map(|v| v.max(0.0))
            .collect();
        let (w, b) = (r(c.f * c.ckk(), -1, 1), r(c.f, -1, 1));
        let dy: Vec<f64> = r(c.n * g.out_len(), -3, 3)
            .iter()
            .map(|v| v * 0.25 + 0.1)
            .collect();
        let conv = conv2d_naive(&c, &x, &w, None);
        let pg = PoolGeom {
            planes: c.n * c.f,
            h: c.oh(),
            w: c.ow(),
            k: pool,
        };
        let (pooled, _) = maxpool_naive(&pg, &conv);
        let plane = pg.oh() * pg.ow();
        let want: Vec<f64> = pooled
            .iter()
            .enumerate()
            .map(|(i, &v)| {
                let mut o = [v + b[(i / plane) % c.f]];
                act.apply(&mut o);
                o[0]
            })
            .collect();
        let dz: Vec<f64> = dy
            .iter()
            .zip(&want)
            .map(|(&d, &y)| d * act.grad_from_output(y))
            .collect();
        let mut db_want = vec![0.0; c.f];
        for (i, &d) in dz.iter().enumerate() {
            db_want[(i / plane) % c.f] += d;
        }
        let dconv = maxpool_backward_naive(&pg, &conv, &dz, grad);
        let (dx_want, dw_want, _) = conv2d_backward_naive(&c, &x, &w, &dconv);

        let (mut out, mut arg) = (vec![f64::NAN; want.len()], vec![0u32; want.len()]);
        let mut cols = vec![0.0; c.n * c.cols_len()];
        let (mut dx, mut dw, mut db) = (vec![0.0; x.len()], vec![0.0; w.len()], vec![0.0; c.f]);
        par::with_threads(threads, || {
            let mut s = vec![f64::NAN; conv_pool_forward_scratch_len(&g)];
            conv_pool_forward(&g, act, &x, &w, &b, &mut out, &mut arg, &mut cols, &mut s);
            let mut s = vec![f64::NAN; conv_pool_backward_scratch_len(&g, true)];
            conv_pool_backward(
                &g,
                act,
                &w,
                &cols,
                &arg,
                &out,
                &dy,
                Some(&mut dx),
                &mut dw,
                &mut db,
                &mut s,
            );
        });
        let what = format!(
            "{dims:?} pool {pool} {act:?} {grad:?} quantised {quantised} {threads} threads"
        );
        for (name, got, want) in [
            ("out", &out, &want),
            ("dx", &dx, &dx_want),
            ("dw", &dw, &dw_want),
            ("db", &db, &db_want),
        ] {
            for (a, b) in got.iter().zip(want.iter()) {
                assert!((a - b).abs() < 1e-10, "{what}: {name} {a} vs {b}");
            }
        }
        dw
    }

    #[test]
    fn the_big_shapes_really_are_chunked() {
        let g = geom([7, 20, 12, 12, 40, 5, 5]);
        crate::par::with_threads(2, || assert!(chunk_images(&g) < g.n));
        crate::par::with_threads(1, || assert_eq!(chunk_images(&g), g.n));
    }

    #[test]
    fn sizes_that_would_overflow_are_errors_not_wraps() {
        let shape = |d: &[usize]| Shape::new(d).unwrap();
        let (x, w) = (shape(&[1, 1, 28, 28]), shape(&[8, 1, 3, 3]));
        for pad in [usize::MAX, 1 << 62, 1 << 63, usize::MAX / 2] {
            let e = ConvGeom::padded(x, w, pad, 1).unwrap_err().to_string();
            assert!(e.contains("conv2d"), "pad {pad}: {e}");
        }
        // A padding that fits a usize but makes an output nobody could address.
        let e = ConvGeom::padded(x, w, 1 << 40, 1).unwrap_err().to_string();
        assert!(e.contains("too large"), "{e}");
        // A huge stride is one output position, not an error.
        let g = ConvGeom::padded(x, w, 1, usize::MAX).unwrap();
        assert_eq!((g.oh(), g.ow()), (1, 1));
        assert_eq!(out_side(5, 0, 6, 1), None);
        assert_eq!(out_side(5, 0, 3, 0), None);
        assert_eq!(out_side(usize::MAX, 1, 3, 1), None);
        // A hand-made geometry that padded() refuses has no output rather than a panic.
        let g = ConvGeom {
            pad: usize::MAX,
            ..ConvGeom::padded(x, w, 0, 1).unwrap()
        };
        assert_eq!(g.oh(), 0);
        // The fused conv-pool: the pool must fit and the argmax must fit 32 bits.
        let conv = ConvGeom::padded(x, w, 0, 1).unwrap();
        assert!(ConvPoolGeom::new(conv, 27, PoolGrad::First).is_err());
        assert!(ConvPoolGeom::new(conv, 0, PoolGrad::First).is_err());
        assert!(ConvPoolGeom::new(conv, 26, PoolGrad::First).is_ok());
        let big = ConvGeom::padded(shape(&[1, 1, 70000, 70000]), w, 0, 1).unwrap();
        let e = ConvPoolGeom::new(big, 2, PoolGrad::First).unwrap_err();
        assert!(e.to_string().contains("2^32"), "{e}");
    }

    #[test]
    fn mismatched_channels_are_an_error() {
        let e = ConvGeom::new(
            Shape::new(&[2, 3, 8, 8]).unwrap(),
            Shape::new(&[4, 2, 3, 3]).unwrap(),
        );
        assert!(e.unwrap_err().to_string().contains("3 channels"));
        assert!(ConvGeom::new(
            Shape::new(&[2, 1, 4, 4]).unwrap(),
            Shape::new(&[4, 1, 5, 5]).unwrap()
        )
        .is_err());
    }
}
