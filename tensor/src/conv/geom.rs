//! The sizes of a convolution, checked once so that every length the kernels compute from
//! them is addressable; how a batch is split into tasks, and where the gradients go: what
//! every convolution path shares, so that the paths depend on this module and not on each
//! other.

use crate::par;
use crate::{Accum, Result, Shape, TensorError};

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
    /// Multiply in bf16 (inputs, filters and output gradients rounded to bfloat16, products
    /// summed in f32) where the CPU has AVX-512 BF16 and the direct path applies, as
    /// PyTorch's bf16 autocast does for convolutions: twice the multiply rate, at a relative
    /// error per product of at most 2^-7 + 2^-16. Elsewhere ignored (f32 arithmetic).
    pub bf16: bool,
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
            bf16: false,
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
    pub(crate) fn is_valid(&self) -> bool {
        self.pad == 0 && self.stride == 1
    }
    /// Output columns `ox` whose input column `ox*stride + kj - pad` lies inside the image,
    /// as a range.
    pub(crate) fn inside(&self, kj: usize) -> std::ops::Range<usize> {
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
    pub(crate) fn flops(&self) -> usize {
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

/// How many images each parallel task takes (the whole batch when the work is small).
pub(crate) fn chunk_images(g: &ConvGeom) -> usize {
    let threads = par::threads();
    // Below ~2 MFLOP a task the fork/join costs more than it saves.
    if threads == 1 || g.n < 2 || g.flops() < 4_000_000 {
        g.n.max(1)
    } else {
        g.n.div_ceil(threads)
    }
}

pub(crate) fn check_len(what: &'static str, got: usize, want: usize) {
    assert!(
        got >= want,
        "conv2d: {what} buffer holds {got} elements, needs {want}"
    );
}

/// Where [`super::conv2d_backward`] puts the gradients.
#[derive(Debug)]
pub struct ConvGrads<'a, T> {
    /// The input gradient `[n, c, h, w]`, if wanted, and whether it is added to or written
    /// over.
    pub dx: Option<(&'a mut [T], Accum)>,
    /// The filter gradient `[f, c, kh, kw]`, added to.
    pub dw: &'a mut [T],
    /// The bias gradient `[f]`, if wanted, added to.
    pub db: Option<&'a mut [T]>,
}
