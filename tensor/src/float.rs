//! The element types the kernels compute in, and the hooks by which f32 reaches its
//! hand-written kernels from generic code.

use std::fmt::{Debug, Display};
use std::iter::Sum;
use std::ops::{AddAssign, DivAssign, MulAssign, SubAssign};

use crate::{LinearStep, MatMut, MatRef};

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

    // The four hooks below are how generic code reaches f32's hand-written kernels: `gemm`
    // calls `small_gemm`, nn's fused SGD step (`nn::optim::sgd`) the `linear_step` ones.
    // Implementation details, hidden; their defaults are right for any other type.

    /// The small-side kernels for `C = alpha * A . B + beta * C`, where they apply: returns
    /// `false` (nothing done) for shapes or element types they do not cover, and
    /// [`crate::gemm`] packs instead.
    #[doc(hidden)]
    fn small_gemm(
        _alpha: Self,
        _a: MatRef<'_, Self>,
        _b: MatRef<'_, Self>,
        _beta: Self,
        _c: &mut MatMut<'_, Self>,
    ) -> bool {
        false
    }

    /// Most rows [`Float::linear_step`] takes (0: it never applies to this type).
    #[doc(hidden)]
    fn linear_step_rows() -> usize {
        0
    }

    /// Scratch elements [`Float::linear_step`] needs for an `m x k` input, `n` outputs.
    #[doc(hidden)]
    fn linear_step_scratch(_m: usize, _k: usize, _n: usize) -> usize {
        0
    }

    /// A linear layer's backward fused with the SGD step of its weights `w [n, k]`, where the
    /// fused kernel applies (f32, at most [`Float::linear_step_rows`] rows): `dx = dx_beta*dx +
    /// dy.w` with the old weights when `dx` is given, `w <- decay*w - eta*(dy^T.x)`; returns
    /// whether the weight gradient had a non-zero element and the sum of the squares of the
    /// new weights; `None`, nothing done, otherwise. `scratch` holds
    /// [`Float::linear_step_scratch`] elements.
    #[doc(hidden)]
    fn linear_step(
        _step: &LinearStep<'_, Self>,
        _w: &mut [Self],
        _dx: Option<(&mut [Self], Self)>,
        _scratch: &mut [Self],
    ) -> Option<(bool, Self)> {
        None
    }
}

/// `s` as f32 when `T` is f32 (the f32-only kernels' entry), else `None`.
pub(crate) fn as_f32<T: Float>(s: &[T]) -> Option<&[f32]> {
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>())
        // SAFETY: T is f32 (the TypeId test above), so the layout is identical and the
        // slice keeps its borrow's lifetime.
        .then(|| unsafe { std::slice::from_raw_parts(s.as_ptr().cast(), s.len()) })
}

/// [`as_f32`] for a mutable slice.
pub(crate) fn as_f32_mut<T: Float>(s: &mut [T]) -> Option<&mut [f32]> {
    (std::any::TypeId::of::<T>() == std::any::TypeId::of::<f32>())
        // SAFETY: T is f32 (the TypeId test above), so the layout is identical; the borrow
        // is moved into the result, so nothing else reaches the elements meanwhile.
        .then(|| unsafe { std::slice::from_raw_parts_mut(s.as_mut_ptr().cast(), s.len()) })
}

impl Float for f32 {
    const DTYPE: &'static str = "f32";
    fn small_gemm(
        alpha: Self,
        a: MatRef<'_, Self>,
        b: MatRef<'_, Self>,
        beta: Self,
        c: &mut MatMut<'_, Self>,
    ) -> bool {
        crate::skinny::small_gemm(alpha, a, b, beta, c).is_some()
    }
    fn linear_step_rows() -> usize {
        crate::linear_step::STEP_ROWS
    }
    fn linear_step_scratch(m: usize, k: usize, n: usize) -> usize {
        crate::linear_step::step_scratch_len(m, k, n)
    }
    fn linear_step(
        step: &LinearStep<'_, Self>,
        w: &mut [Self],
        dx: Option<(&mut [Self], Self)>,
        scratch: &mut [Self],
    ) -> Option<(bool, Self)> {
        use crate::linear_step::{linear_backward_step, STEP_ROWS};
        if step.m > STEP_ROWS {
            return None;
        }
        let out = linear_backward_step(crate::isa::Kernel::best(), step, w, dx, scratch);
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
