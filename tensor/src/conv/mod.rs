//! Batched 2-D convolution (NCHW, zero padding, stride) by im2col + GEMM, its three gradients, and a
//! naive direct convolution kept as the reference the fast kernels are tested against.
//!
//! Forward, per image: `out[n] (F x OH*OW) = W (F x C*KH*KW) . cols[n] + b`.
//! Backward: `dW += dout[n] . cols[n]^T`, `db += sum(dout[n])`, and the input gradient as one
//! GEMM `W^T . dout[n]` followed by col2im (no scalar loops). The mini-batch is split across
//! rayon threads in contiguous chunks; each chunk runs single-threaded GEMMs, and the per-chunk
//! partial filter gradients are summed in chunk order, so results depend on the thread count
//! but not on scheduling. For f32 at stride 1 on AVX-512, [`conv2d_forward`] and
//! [`conv2d_backward`] hand the work to the direct kernels (`direct`, no im2col) instead.

mod conv_pool;
mod direct;
mod geom;
mod im2col;
mod reference;
#[cfg(test)]
mod tests;

pub use conv_pool::{
    conv_pool_backward, conv_pool_backward_scratch_len, conv_pool_cols_len, conv_pool_forward,
    conv_pool_forward_scratch_len, ConvPoolGeom, ConvPoolGrads, ConvPoolOut, ConvPoolSaved,
};
pub use geom::{out_side, ConvGeom, ConvGrads};

/// Whether [`ConvGeom::bf16`] takes effect on this machine: the CPU has AVX-512 BF16 and
/// the direct f32 path is on (stride 1; `NNDL_CONV=im2col` and `NNDL_ISA` below AVX-512
/// turn it off). Where it is false, a bf16 convolution runs in f32.
pub fn bf16_supported() -> bool {
    direct::bf16_supported()
}

use geom::{check_len, chunk_images};
pub use reference::{conv2d_backward_naive, conv2d_naive};

use crate::Float;

/// Scratch elements [`conv2d_forward`] needs: one image's columns per task.
pub fn conv2d_forward_scratch_len(g: &ConvGeom) -> usize {
    let tasks = g.n.div_ceil(chunk_images(g).max(1));
    (tasks * g.cols_len()).max(direct::forward_scratch_len(g, tasks, false))
}

/// Fast forward: `out = conv(x, w) + b`. Each task unfolds one image at a time into its block
/// of `scratch` ([`conv2d_forward_scratch_len`]), so the columns stay in cache and a batch's
/// columns (hundreds of MB for an evaluation batch) are never stored: the backward unfolds
/// again.
///
/// The filters are applied as in PyTorch's `conv2d` (cross-correlation: not flipped).
///
/// ```
/// use nndl_tensor::conv::{conv2d_forward, conv2d_forward_scratch_len, ConvGeom};
/// use nndl_tensor::Shape;
///
/// // One 3x3 image holding 1..9, one 2x2 filter [[1, 0], [0, 1]], bias 0.5: each output is
/// // a pixel plus its lower-right neighbour, plus 0.5.
/// let x: Vec<f32> = (1..=9).map(|v| v as f32).collect();
/// let w = [1.0f32, 0.0, 0.0, 1.0];
/// let g = ConvGeom::new(Shape::new(&[1, 1, 3, 3])?, Shape::new(&[1, 1, 2, 2])?)?;
/// assert_eq!(g.out_shape().dims(), &[1, 1, 2, 2]);
/// let mut out = vec![0.0; g.n * g.out_len()];
/// let mut scratch = vec![0.0; conv2d_forward_scratch_len(&g)];
/// conv2d_forward(&g, &x, &w, Some(&[0.5]), &mut out, &mut scratch);
/// assert_eq!(out, [1.0 + 5.0, 2.0 + 6.0, 4.0 + 8.0, 5.0 + 9.0].map(|v| v + 0.5));
///
/// // Zero padding 1 on each side: a 4x4 output, whose corner sees only x[0][0] (under w[1][1]).
/// let g = ConvGeom::padded(Shape::new(&[1, 1, 3, 3])?, Shape::new(&[1, 1, 2, 2])?, 1, 1)?;
/// let mut out = vec![0.0; g.n * g.out_len()];
/// let mut scratch = vec![0.0; conv2d_forward_scratch_len(&g)];
/// conv2d_forward(&g, &x, &w, None, &mut out, &mut scratch);
/// assert_eq!((g.oh(), g.ow(), out[0]), (4, 4, 1.0));
/// # Ok::<(), nndl_tensor::TensorError>(())
/// ```
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
    if direct::applies::<T>(g) {
        return direct::forward(g, per, x, w, b, direct::Sink::Out(out), scratch);
    }
    im2col::forward(g, per, x, w, b, out, scratch);
}

/// Scratch elements [`conv2d_backward`] needs: per task the partial filter and bias
/// gradients, one image's columns and, with an input gradient, their gradient.
pub fn conv2d_backward_scratch_len(g: &ConvGeom, with_dx: bool) -> usize {
    let tasks = g.n.div_ceil(chunk_images(g).max(1));
    (tasks * (g.f * g.ckk() + g.f + g.cols_len() * if with_dx { 2 } else { 1 }))
        .max(direct::backward_scratch_len(g, tasks, with_dx, false))
}

/// Fast backward from the forward's input `x`: adds the filter and bias gradients into
/// `grads.dw` and `grads.db`, and puts the input gradient into `grads.dx` as its [`Accum`](crate::Accum)
/// says. `scratch` holds at least [`conv2d_backward_scratch_len`] elements (contents
/// ignored), so that a training step allocates nothing here.
pub fn conv2d_backward<T: Float>(
    g: &ConvGeom,
    x: &[T],
    w: &[T],
    dout: &[T],
    grads: ConvGrads<'_, T>,
    scratch: &mut [T],
) {
    check_len("input", x.len(), g.n * g.in_len());
    check_len("output gradient", dout.len(), g.n * g.out_len());
    check_len("filter gradient", grads.dw.len(), g.f * g.ckk());
    let want_dx = grads.dx.is_some();
    // Both paths write every image's input gradient through raw parts: checked here, once.
    if let Some((d, _)) = &grads.dx {
        check_len("input gradient", d.len(), g.n * g.in_len());
    }
    check_len(
        "scratch",
        scratch.len(),
        conv2d_backward_scratch_len(g, want_dx),
    );
    let per = chunk_images(g);
    if direct::applies::<T>(g) {
        return direct::backward(g, per, x, w, direct::Source::Whole(dout), grads, scratch);
    }
    im2col::backward(g, per, x, w, dout, grads, scratch);
}
