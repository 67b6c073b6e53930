//! Elementwise kernels with their derivatives, and small layout helpers.
//!
//! Each activation is an `f(x)` / `df` pair, as dfdx declares them, so autograd can use the
//! pair without restating the maths.

use crate::Float;

/// Logistic sigmoid, computed without overflow for large |x|.
#[inline]
pub fn sigmoid<T: Float>(x: T) -> T {
    if x >= T::zero() {
        T::one() / (T::one() + (-x).exp())
    } else {
        let e = x.exp();
        e / (T::one() + e)
    }
}

/// Derivative of the sigmoid given its output `y`.
#[inline]
pub fn sigmoid_grad_from_output<T: Float>(y: T) -> T {
    y * (T::one() - y)
}

/// Derivative of tanh given its output `y`.
#[inline]
pub fn tanh_grad_from_output<T: Float>(y: T) -> T {
    T::one() - y * y
}

/// max(x, 0).
#[inline]
pub fn relu<T: Float>(x: T) -> T {
    if x > T::zero() {
        x
    } else {
        T::zero()
    }
}

/// Derivative of ReLU from its output (0 at 0, as PyTorch and Theano take it).
#[inline]
pub fn relu_grad_from_output<T: Float>(y: T) -> T {
    if y > T::zero() {
        T::one()
    } else {
        T::zero()
    }
}

/// `out = f(x)` elementwise.
pub fn map_into<T: Float>(x: &[T], out: &mut [T], f: impl Fn(T) -> T) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = f(v);
    }
}

/// Copies the transpose of the row-major `r x c` matrix `x` into `out` (`c x r`).
pub fn transpose_into<T: Float>(x: &[T], r: usize, c: usize, out: &mut [T]) {
    const B: usize = 32;
    for i0 in (0..r).step_by(B) {
        for j0 in (0..c).step_by(B) {
            for i in i0..(i0 + B).min(r) {
                for j in j0..(j0 + B).min(c) {
                    out[j * r + i] = x[i * c + j];
                }
            }
        }
    }
}
