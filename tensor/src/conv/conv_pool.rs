//! network3's conv-pool layer fused: convolution, max-pool, bias and activation per image in
//! one task.

use super::geom::{check_len, chunk_images, ConvGeom};
use super::im2col::{col2im, im2col};
use crate::par::{self, SyncPtr};
use crate::pool::{maxpool_forward, tie_masks, tie_offsets, PoolGeom, PoolGrad};
use crate::unary::Act;
use crate::{gemm, Float, MatMut, MatRef, Result, Shape, TensorError};

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

/// What [`conv_pool_forward`] writes: the output and what its backward needs.
#[derive(Debug)]
pub struct ConvPoolOut<'a, T> {
    /// The layer's output `act(maxpool(conv(x, w)) + b)`, `[n, f, oh/pool, ow/pool]`.
    pub out: &'a mut [T],
    /// Each window's argmax (index in its image's convolution output), or under
    /// [`PoolGrad::Ties`] the mask of its maxima.
    pub arg: &'a mut [u32],
    /// Every image's im2col columns.
    pub cols: &'a mut [T],
}

/// What [`conv_pool_backward`] reads of its forward ([`ConvPoolOut`], read-only).
#[derive(Debug, Clone, Copy)]
pub struct ConvPoolSaved<'a, T> {
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
    /// The input gradient, if wanted.
    pub dx: Option<&'a mut [T]>,
    /// The filter gradient.
    pub dw: &'a mut [T],
    /// The bias gradient.
    pub db: &'a mut [T],
}

/// Fused forward: `out = act(maxpool(conv(x, w)) + b)` with what the backward needs, into
/// `outs`. `scratch` holds [`conv_pool_forward_scratch_len`] elements.
pub fn conv_pool_forward<T: Float>(
    g: &ConvPoolGeom,
    act: Act,
    x: &[T],
    w: &[T],
    b: &[T],
    outs: ConvPoolOut<'_, T>,
    scratch: &mut [T],
) {
    let ConvPoolOut { out, arg, cols } = outs;
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
    let ConvPoolSaved { y, arg, cols } = saved;
    let ConvPoolGrads { dx, dw, db } = grads;
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
                // SAFETY: dx is given (want_dx) and checked to hold every image; image i's
                // input gradient belongs to task t alone.
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
