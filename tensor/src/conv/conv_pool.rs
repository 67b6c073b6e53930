//! A convolution and its max-pool fused (network3's conv-pool layer, and a padded
//! convolution followed by a pool): convolution, max-pool, bias and activation per image in
//! one task, the unpooled output in a per-task buffer that never reaches memory.

use super::direct;
use super::geom::{check_len, chunk_images, ConvGeom};
use super::im2col::{col2im, im2col};
use crate::par::{self, SyncPtr};
use crate::pool::{
    maxpool_backward_overwrite, maxpool_forward, scatter_ties, tie_masks, PoolGeom, PoolGrad,
};
use crate::unary::Act;
use crate::{gemm, Accum, Float, MatMut, MatRef, Result, Shape, TensorError};

/// A convolution and its max-pool as one layer, `act(maxpool(conv(x, w)) + b)` (network3's
/// conv-pool layer; the bias optional), per image in one task, so the pooling, bias and
/// activation run on every thread beside the convolution instead of as passes over the whole
/// batch between the parallel ones, and the unpooled convolution output never leaves a
/// per-task buffer. At stride 1 in f32 on AVX-512 the convolution runs on the direct kernels
/// (`ConvGeom::bf16` taken as by [`super::conv2d_forward`]), otherwise on im2col + GEMM.
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
    fn plane(&self) -> usize {
        self.out_len() / self.conv.f.max(1)
    }
    fn tasks(&self) -> (usize, usize) {
        let per = chunk_images(&self.conv).max(1);
        (per, self.conv.n.div_ceil(per))
    }
}

/// Whether the convolution of `g` in `T` runs on the direct kernels: where they apply, for
/// filters up to 3x3 (the speed run's, which they were tuned on) and for bf16 products
/// (which only they have). network3's 5x5 layers in f32 keep im2col + GEMM, measured faster
/// there (`benches/throughput.rs`, mini-batch 10: net C 30k images/s against 22k on the
/// direct kernels, net D 12k against 10k).
fn on_direct<T: Float>(g: &ConvPoolGeom) -> bool {
    let c = &g.conv;
    direct::applies::<T>(c) && (c.kh * c.kw <= 9 || (c.bf16 && direct::bf16_supported()))
}

/// Elements [`ConvPoolOut::cols`] holds for `g` in `T`: every image's im2col columns, kept
/// for the backward, or none where the convolution runs on the direct kernels.
pub fn conv_pool_cols_len<T: Float>(g: &ConvPoolGeom) -> usize {
    if on_direct::<T>(g) {
        0
    } else {
        g.conv.n * g.conv.cols_len()
    }
}

/// Scratch elements [`conv_pool_forward`] needs (one image's convolution output per task).
pub fn conv_pool_forward_scratch_len(g: &ConvPoolGeom) -> usize {
    let tasks = g.tasks().1;
    (tasks * g.conv.out_len()).max(direct::forward_scratch_len(&g.conv, tasks, true))
}

/// What [`conv_pool_forward`] writes: the output and what its backward needs.
#[derive(Debug)]
pub struct ConvPoolOut<'a, T> {
    /// The layer's output `act(maxpool(conv(x, w)) + b)`, `[n, f, oh/pool, ow/pool]`.
    pub out: &'a mut [T],
    /// Each window's argmax (index in its image's convolution output), or under
    /// [`PoolGrad::Ties`] the mask of its maxima.
    pub arg: &'a mut [u32],
    /// Every image's im2col columns, [`conv_pool_cols_len`] elements (none on the direct
    /// kernels, whose backward reads the input again).
    pub cols: &'a mut [T],
}

/// What [`conv_pool_backward`] reads of its forward ([`ConvPoolOut`], read-only).
#[derive(Debug, Clone, Copy)]
pub struct ConvPoolSaved<'a, T> {
    /// The forward's input (read by the direct kernels' backward).
    pub x: &'a [T],
    /// The forward's output.
    pub y: &'a [T],
    /// The forward's argmaxes (or tie masks).
    pub arg: &'a [u32],
    /// The forward's im2col columns.
    pub cols: &'a [T],
}

/// Where [`conv_pool_backward`] adds the gradients.
#[derive(Debug)]
pub struct ConvPoolGrads<'a, T> {
    /// The input gradient, if wanted, and whether it is added to or written over.
    pub dx: Option<(&'a mut [T], Accum)>,
    /// The filter gradient.
    pub dw: &'a mut [T],
    /// The bias gradient, if the layer has a bias.
    pub db: Option<&'a mut [T]>,
}

/// One image's pooling, from its convolution output `conv`: window maxima and argmaxes (or
/// tie masks) into `out` and `arg`, then the bias and the activation.
fn pool_image<U: Float>(
    g: &ConvPoolGeom,
    act: Act,
    b: Option<&[U]>,
    conv: &[U],
    out: &mut [U],
    arg: &mut [u32],
) {
    let pg = g.pool_geom();
    maxpool_forward(&pg, conv, out, arg);
    if g.grad == PoolGrad::Ties {
        tie_masks(&pg, conv, out, arg);
    }
    if let Some(b) = b {
        for (row, &bf) in out.chunks_exact_mut(g.plane().max(1)).zip(b) {
            row.iter_mut().for_each(|v| *v += bf);
        }
    }
    act.apply(out);
}

/// One image's gradient at its convolution output, written over `dconv`: the output
/// gradient `dy` through the activation (from the output `y`), to each window's argmax (or
/// tied maxima); each filter's sum of it added into `sums` when given (the bias gradient).
fn unpool_image<U: Float>(
    g: &ConvPoolGeom,
    act: Act,
    (y, dy, arg): (&[U], &[U], &[u32]),
    dconv: &mut [U],
    mut sums: Option<&mut [U]>,
) {
    let pg = g.pool_geom();
    let plane = g.plane().max(1);
    if act == Act::Identity && g.grad == PoolGrad::First && sums.is_none() {
        return maxpool_backward_overwrite(&pg, dy, arg, dconv);
    }
    dconv.iter_mut().for_each(|v| *v = U::zero());
    let rows = y.chunks_exact(plane).zip(dy.chunks_exact(plane));
    for (f, ((yr, dr), ar)) in rows.zip(arg.chunks_exact(plane)).enumerate() {
        let mut sum = U::zero();
        for (k, ((&yv, &dv), &a)) in yr.iter().zip(dr).zip(ar).enumerate() {
            let dz = dv * act.grad_from_output(yv);
            sum += dz;
            match g.grad {
                PoolGrad::Ties => scatter_ties(&pg, f * plane + k, a, dz, dconv),
                PoolGrad::First => dconv[a as usize] += dz,
            }
        }
        if let Some(s) = sums.as_deref_mut() {
            s[f] += sum;
        }
    }
}

/// Fused forward: `out = act(maxpool(conv(x, w)) + b)` with what the backward needs, into
/// `outs`. `scratch` holds [`conv_pool_forward_scratch_len`] elements.
pub fn conv_pool_forward<T: Float>(
    g: &ConvPoolGeom,
    act: Act,
    x: &[T],
    w: &[T],
    b: Option<&[T]>,
    outs: ConvPoolOut<'_, T>,
    scratch: &mut [T],
) {
    let ConvPoolOut { out, arg, cols } = outs;
    let c = &g.conv;
    check_len("input", x.len(), c.n * c.in_len());
    check_len("filter", w.len(), c.f * c.ckk());
    if let Some(b) = b {
        check_len("bias", b.len(), c.f);
    }
    check_len("output", out.len(), c.n * g.out_len());
    check_len("argmax", arg.len(), c.n * g.out_len());
    check_len("cols", cols.len(), conv_pool_cols_len::<T>(g));
    check_len("scratch", scratch.len(), conv_pool_forward_scratch_len(g));
    let (per, tasks) = g.tasks();
    let ol = g.out_len();
    let (op, ap) = (SyncPtr(out.as_mut_ptr()), SyncPtr(arg.as_mut_ptr()));
    if on_direct::<T>(g) {
        let bf = b.and_then(crate::float::as_f32);
        let each = |i: usize, conv: &[f32]| {
            // SAFETY: image i is one task's alone (the direct kernels hand each image over
            // once); its output and argmax blocks lie inside the buffers checked above.
            let (oi, ai) = unsafe { (op.slice(i * ol, ol), ap.slice(i * ol, ol)) };
            if let Some(oi) = crate::float::as_f32_mut(oi) {
                pool_image(g, act, bf, conv, oi, ai);
            }
        };
        return direct::forward(c, per, x, w, None, direct::Sink::Each(&each), scratch);
    }
    let cp = SyncPtr(cols.as_mut_ptr());
    let sp = SyncPtr(scratch.as_mut_ptr());
    let task = |t: usize| {
        // SAFETY: task t alone owns its images' outputs, argmaxes, columns and scratch block t;
        // all lie inside the buffers checked above.
        let conv = unsafe { sp.slice(t * c.out_len(), c.out_len()) };
        for i in t * per..((t + 1) * per).min(c.n) {
            // SAFETY: image i belongs to task t alone, and its output, argmax and column blocks
            // lie inside the buffers checked above.
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
            pool_image(g, act, b, conv, oi, ai);
        }
    };
    par::run(tasks, &task);
}

/// Scratch elements [`conv_pool_backward`] needs: per task the partial filter and bias
/// gradients, one image's convolution-output gradient and, with an input gradient, its
/// columns' gradient (or what the direct kernels' backward needs, whichever is more).
pub fn conv_pool_backward_scratch_len(g: &ConvPoolGeom, with_dx: bool) -> usize {
    let c = &g.conv;
    let dx = if with_dx { c.cols_len() } else { 0 };
    let tasks = g.tasks().1;
    (tasks * (c.f * c.ckk() + c.f + c.out_len() + dx))
        .max(direct::backward_scratch_len(c, tasks, with_dx, true))
}

/// Fused backward, given what the forward saved and the output gradient `dy`: adds the
/// filter, bias and (when wanted) input gradients into `grads`. Per-task partial gradients
/// are summed in task order.
pub fn conv_pool_backward<T: Float>(
    g: &ConvPoolGeom,
    act: Act,
    w: &[T],
    saved: ConvPoolSaved<'_, T>,
    dy: &[T],
    grads: ConvPoolGrads<'_, T>,
    scratch: &mut [T],
) {
    let ConvPoolSaved { x, y, arg, cols } = saved;
    let ConvPoolGrads { dx, dw, mut db } = grads;
    let c = &g.conv;
    let ol = g.out_len();
    check_len("input", x.len(), c.n * c.in_len());
    check_len("cols", cols.len(), conv_pool_cols_len::<T>(g));
    check_len("argmax", arg.len(), c.n * ol);
    check_len("output", y.len(), c.n * ol);
    check_len("output gradient", dy.len(), c.n * ol);
    check_len("filter gradient", dw.len(), c.f * c.ckk());
    if let Some(db) = &db {
        check_len("bias gradient", db.len(), c.f);
    }
    if let Some((d, _)) = &dx {
        check_len("input gradient", d.len(), c.n * c.in_len());
    }
    let want_dx = dx.is_some();
    check_len(
        "scratch",
        scratch.len(),
        conv_pool_backward_scratch_len(g, want_dx),
    );
    let (per, tasks) = g.tasks();
    if on_direct::<T>(g) {
        let (y, dy) = (crate::float::as_f32(y), crate::float::as_f32(dy));
        let each = |i: usize, dconv: &mut [f32]| {
            if let (Some(y), Some(dy)) = (y, dy) {
                let at = i * ol..(i + 1) * ol;
                let image = (&y[at.clone()], &dy[at.clone()], &arg[at]);
                unpool_image(g, act, image, dconv, None);
            }
        };
        let grads = super::ConvGrads { dx, dw, db };
        let source = direct::Source::Each(&each);
        return direct::backward(c, per, x, w, source, grads, scratch);
    }
    let wlen = c.f * c.ckk();
    let block = wlen + c.f + c.out_len() + if want_dx { c.cols_len() } else { 0 };
    let overwrite = matches!(dx, Some((_, Accum::Overwrite)));
    let dx_ptr = SyncPtr(dx.map_or(std::ptr::null_mut(), |d| d.0.as_mut_ptr()));
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
            let at = i * ol..(i + 1) * ol;
            let image = (&y[at.clone()], &dy[at.clone()], &arg[at]);
            unpool_image(g, act, image, dconv, Some(&mut *pb));
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
                // SAFETY: dx is given (want_dx) and checked to hold every image; image i's
                // input gradient belongs to task t alone.
                let dxi = unsafe { dx_ptr.slice(i * c.in_len(), c.in_len()) };
                if overwrite {
                    dxi.iter_mut().for_each(|v| *v = T::zero());
                }
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
        if let Some(db) = db.as_deref_mut() {
            db[..c.f]
                .iter_mut()
                .zip(&s[wlen..wlen + c.f])
                .for_each(|(d, &v)| *d += v);
        }
    }
}
