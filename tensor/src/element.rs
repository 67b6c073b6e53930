use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

/// The element types nndl computes in: `f32` for training, `f64` for gradient checking.
pub trait Float:
    num_traits::Float
    + num_traits::FromPrimitive
    + Default
    + Debug
    + Display
    + Send
    + Sync
    + 'static
    + AddAssign
    + SubAssign
    + MulAssign
    + DivAssign
    + Sum
{
    /// Name of the type, for messages and file formats.
    const DTYPE: &'static str;

    /// Converts from `f64` (rounding for `f32`).
    fn of(x: f64) -> Self;

    /// Converts to `f64`.
    fn f64(self) -> f64;

    /// The small-side kernels of [`crate::small`] for `C = alpha*op(A)op(B) + beta*C` on
    /// contiguous buffers, where they apply: returns `false` (nothing done) for shapes or
    /// element types they do not cover.
    #[allow(clippy::too_many_arguments)]
    fn small_gemm(
        _m: usize,
        _k: usize,
        _n: usize,
        _alpha: Self,
        _a: &[Self],
        _ta: bool,
        _b: &[Self],
        _tb: bool,
        _beta: Self,
        _c: &mut [Self],
    ) -> bool {
        false
    }

    /// Most rows [`Float::linear_step`] takes (0: it never applies to this type).
    fn linear_step_rows() -> usize {
        0
    }

    /// Scratch elements [`Float::linear_step`] needs for an `m x k` input, `n` outputs.
    fn linear_step_scratch(_m: usize, _k: usize, _n: usize) -> usize {
        0
    }

    /// A linear layer's backward fused with the SGD step of its weights, where
    /// [`crate::small::linear_backward_step`] applies (f32, at most
    /// [`crate::small::STEP_ROWS`] rows): whether the weight gradient had a non-zero element
    /// and the sum of the squares of the new weights; `None`, nothing done, otherwise.
    #[allow(clippy::too_many_arguments)]
    fn linear_step(
        _m: usize,
        _k: usize,
        _n: usize,
        _x: &[Self],
        _dyt: &[Self],
        _w: &mut [Self],
        _eta: Self,
        _decay: Self,
        _dx: Option<(&mut [Self], Self)>,
        _scratch: &mut [Self],
    ) -> Option<(bool, Self)> {
        None
    }
}

/// `s` as f32 when `T` is f32 (the f32-only kernels' entry), else `None`.
pub(crate) fn as_f32<T: Float>(s: &[T]) -> Option<&[f32]> {
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>())
        // SAFETY: T is f32, so the layout is identical.
        .then(|| unsafe { std::slice::from_raw_parts(s.as_ptr().cast(), s.len()) })
}

/// [`as_f32`] for a mutable slice.
pub(crate) fn as_f32_mut<T: Float>(s: &mut [T]) -> Option<&mut [f32]> {
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>())
        // SAFETY: as `as_f32`.
        .then(|| unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast(), s.len()) })
}

impl Float for f32 {
    const DTYPE: &'static str = "f32";
    fn small_gemm(
        m: usize,
        k: usize,
        n: usize,
        alpha: Self,
        a: &[Self],
        ta: bool,
        b: &[Self],
        tb: bool,
        beta: Self,
        c: &mut [Self],
    ) -> bool {
        match crate::small::Shape3::of(m, k, n, ta, tb) {
            Some(shape) => {
                crate::small::small_gemm(shape, m, k, n, alpha, a, b, beta, c);
                true
            }
            None => false,
        }
    }
    fn linear_step_rows() -> usize {
        crate::small::STEP_ROWS
    }
    fn linear_step_scratch(m: usize, k: usize, n: usize) -> usize {
        crate::small::step_scratch_len(m, k, n)
    }
    fn linear_step(
        m: usize,
        k: usize,
        n: usize,
        x: &[Self],
        dyt: &[Self],
        w: &mut [Self],
        eta: Self,
        decay: Self,
        dx: Option<(&mut [Self], Self)>,
        scratch: &mut [Self],
    ) -> Option<(bool, Self)> {
        use crate::small::{best_isa, linear_backward_step, LinearStep, STEP_ROWS};
        if m > STEP_ROWS {
            return None;
        }
        let s = LinearStep {
            m,
            k,
            n,
            x,
            dyt,
            eta,
            decay,
        };
        let out = linear_backward_step(best_isa(), true, &s, w, dx, scratch);
        Some((out.nonzero, out.sum_squares))
    }
    fn of(x: f64) -> Self {
        x as f32
    }
    fn f64(self) -> f64 {
        self as f64
    }
}

impl Float for f64 {
    const DTYPE: &'static str = "f64";
    fn of(x: f64) -> Self {
        x
    }
    fn f64(self) -> f64 {
        self
    }
}
