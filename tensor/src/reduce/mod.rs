//! Reductions and the row-wise softmax family.

use crate::{Float, Result, Shape, Tensor, TensorError};

/// Sum of all elements.
pub fn sum_all<T: Float>(x: &[T]) -> T {
    // Pairwise-ish: 8 accumulators keep f32 sums accurate and vectorisable.
    let mut acc = [T::zero(); 8];
    let chunks = x.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for i in 0..8 {
            acc[i] += c[i];
        }
    }
    acc.iter().copied().sum::<T>() + rest.iter().copied().sum::<T>()
}

/// Dot product `sum a[i] b[i]`, with 16 independent accumulators so that it vectorises (a plain
/// iterator sum of floats is one dependent chain of adds).
pub fn dot<T: Float>(a: &[T], b: &[T]) -> T {
    const L: usize = 16;
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [T::zero(); L];
    let (ca, cb) = (a.chunks_exact(L), b.chunks_exact(L));
    let tail: T = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(&x, &y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..L {
            acc[i] += x[i] * y[i];
        }
    }
    acc.iter().copied().sum::<T>() + tail
}

/// Elements per block of [`sum_squares`]: the sum is always taken block by block in this
/// grouping, whichever thread takes a block, so it does not depend on the thread count.
const SQUARES_BLOCK: usize = 1 << 16;

/// `sum x[i]^2`. Big vectors (a layer's weights, for the L2 term) are summed by two threads,
/// each over its half of the blocks, the halves added in order.
pub fn sum_squares<T: Float>(x: &[T]) -> T {
    let blocks = x.len().div_ceil(SQUARES_BLOCK);
    let half = blocks.div_ceil(2) * SQUARES_BLOCK;
    let part = |lo: usize, hi: usize| -> T {
        x[lo.min(x.len())..hi.min(x.len())]
            .chunks(SQUARES_BLOCK)
            .map(|c| dot(c, c))
            .fold(T::zero(), |a, b| a + b)
    };
    if blocks < 4 {
        return part(0, x.len());
    }
    let halves = [
        std::sync::Mutex::new(T::zero()),
        std::sync::Mutex::new(T::zero()),
    ];
    crate::par::run(2, &|i| {
        let v = if i == 0 {
            part(0, half)
        } else {
            part(half, x.len())
        };
        *halves[i].lock().unwrap_or_else(|e| e.into_inner()) = v;
    });
    let [a, b] = halves.map(|h| h.into_inner().unwrap_or_else(|e| e.into_inner()));
    a + b
}

/// Mean of all elements (0 for an empty slice).
pub fn mean_all<T: Float>(x: &[T]) -> T {
    if x.is_empty() {
        T::zero()
    } else {
        sum_all(x) / T::of(x.len() as f64)
    }
}

/// Sum over one axis; the axis is kept with size 1 when `keepdim`, else removed.
///
/// ```
/// use nndl_tensor::{sum_all, sum_axis, softmax_rows, argmax_rows, Tensor};
///
/// let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?;
/// assert_eq!(sum_axis(&x, 0, false)?.data(), &[5.0, 7.0, 9.0]); // column sums, shape [3]
/// let rows = sum_axis(&x, 1, true)?;
/// assert_eq!((rows.dims(), rows.data()), (&[2, 1][..], &[6.0, 15.0][..]));
/// assert_eq!(sum_all(x.data()), 21.0);
///
/// // Row-wise softmax: each row sums to 1, and its largest entry is the row's argmax.
/// let p = softmax_rows(&x)?;
/// assert!((p.data()[..3].iter().sum::<f64>() - 1.0).abs() < 1e-12);
/// assert_eq!(argmax_rows(&p)?, vec![2, 2]);
/// # Ok::<(), nndl_tensor::TensorError>(())
/// ```
pub fn sum_axis<T: Float>(x: &Tensor<T>, axis: usize, keepdim: bool) -> Result<Tensor<T>> {
    let s = x.shape();
    if axis >= s.ndim() {
        return Err(TensorError::Axis {
            op: "sum_axis",
            axis,
            shape: s,
        });
    }
    let outer: usize = s.dims()[..axis].iter().product();
    let len = s[axis];
    let inner: usize = s.dims()[axis + 1..].iter().product();
    let mut dims = s.dims().to_vec();
    if keepdim {
        dims[axis] = 1;
    } else {
        dims.remove(axis);
    }
    let mut out = Tensor::zeros(&dims)?;
    let (xd, od) = (x.data(), out.data_mut());
    for o in 0..outer {
        let dst = &mut od[o * inner..(o + 1) * inner];
        for l in 0..len {
            let src = &xd[(o * len + l) * inner..(o * len + l + 1) * inner];
            dst.iter_mut().zip(src).for_each(|(d, &v)| *d += v);
        }
    }
    Ok(out)
}

fn rows_of<T: Float>(x: &Tensor<T>, op: &'static str) -> Result<(usize, usize)> {
    if x.shape().ndim() == 0 || x.numel() == 0 {
        return Err(TensorError::InvalidShape {
            op,
            shape: x.shape(),
            why: "needs at least one row of one element".into(),
        });
    }
    Ok(x.shape().as_matrix())
}

/// The maximum of each row (last axis) of a tensor viewed as a matrix.
pub fn max_rows<T: Float>(x: &Tensor<T>) -> Result<Vec<T>> {
    let (_, c) = rows_of(x, "max_rows")?;
    Ok(x.data()
        .chunks_exact(c)
        .map(|r| r.iter().copied().fold(T::neg_infinity(), T::max))
        .collect())
}

/// The index of the maximum of each row (the first one on ties, as NumPy's argmax).
pub fn argmax_rows<T: Float>(x: &Tensor<T>) -> Result<Vec<usize>> {
    let (_, c) = rows_of(x, "argmax_rows")?;
    Ok(x.data()
        .chunks_exact(c)
        .map(|r| {
            let mut best = 0;
            for (i, &v) in r.iter().enumerate() {
                if v > r[best] {
                    best = i;
                }
            }
            best
        })
        .collect())
}

/// Numerically stable softmax of each row into `out` (same shape as `x`).
pub fn softmax_rows_into<T: Float>(x: &[T], cols: usize, out: &mut [T]) {
    for (r, o) in x.chunks_exact(cols).zip(out.chunks_exact_mut(cols)) {
        let m = r.iter().copied().fold(T::neg_infinity(), T::max);
        let mut s = T::zero();
        for (o, &v) in o.iter_mut().zip(r) {
            *o = (v - m).exp();
            s += *o;
        }
        let inv = T::one() / s;
        o.iter_mut().for_each(|o| *o *= inv);
    }
}

/// Numerically stable log-softmax of each row into `out`.
pub fn log_softmax_rows_into<T: Float>(x: &[T], cols: usize, out: &mut [T]) {
    for (r, o) in x.chunks_exact(cols).zip(out.chunks_exact_mut(cols)) {
        let m = r.iter().copied().fold(T::neg_infinity(), T::max);
        let s: T = r.iter().map(|&v| (v - m).exp()).sum();
        let lse = m + s.ln();
        for (o, &v) in o.iter_mut().zip(r) {
            *o = v - lse;
        }
    }
}

/// Softmax over the last axis.
pub fn softmax_rows<T: Float>(x: &Tensor<T>) -> Result<Tensor<T>> {
    let (_, c) = rows_of(x, "softmax")?;
    let mut out = Tensor::zeros_shape(x.shape());
    softmax_rows_into(x.data(), c, out.data_mut());
    Ok(out)
}

/// Log-softmax over the last axis.
pub fn log_softmax_rows<T: Float>(x: &Tensor<T>) -> Result<Tensor<T>> {
    let (_, c) = rows_of(x, "log_softmax")?;
    let mut out = Tensor::zeros_shape(x.shape());
    log_softmax_rows_into(x.data(), c, out.data_mut());
    Ok(out)
}

/// Shape with one axis dropped (helper for callers that reduce).
pub fn drop_axis(s: Shape, axis: usize) -> Result<Shape> {
    let mut d = s.dims().to_vec();
    if axis >= d.len() {
        return Err(TensorError::Axis {
            op: "drop_axis",
            axis,
            shape: s,
        });
    }
    d.remove(axis);
    Shape::new(&d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn softmax_hand_computed() {
        // softmax([1, 2, 3]) = e^(x-3) / sum = [0.09003057, 0.24472847, 0.66524096]
        let x = Tensor::from_vec(vec![1.0f64, 2.0, 3.0, 1000.0, 1000.0, 1000.0], &[2, 3]).unwrap();
        let p = softmax_rows(&x).unwrap();
        let want = [
            0.09003057317038046,
            0.24472847105479767,
            0.6652409557748219,
            1. / 3.,
            1. / 3.,
            1. / 3.,
        ];
        for (a, b) in p.data().iter().zip(want) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
        let lp = log_softmax_rows(&x).unwrap();
        for (a, b) in lp.data().iter().zip(want) {
            assert!((a - b.ln()).abs() < 1e-12);
        }
    }

    #[test]
    fn sum_squares_is_the_sum_and_independent_of_the_thread_count() {
        for n in [0, 5, 70_000, 4 * SQUARES_BLOCK + 17, 1_660_000] {
            let x: Vec<f32> = (0..n).map(|i| ((i % 97) as f32 - 48.0) / 50.0).collect();
            let want: f64 = x.iter().map(|&v| v as f64 * v as f64).sum();
            let got = sum_squares(&x);
            assert!((got as f64 - want).abs() <= 1e-5 * want.max(1.0), "n = {n}");
            let one = crate::par::with_threads(1, || sum_squares(&x));
            let two = crate::par::with_threads(2, || sum_squares(&x));
            assert_eq!(one, got, "n = {n}");
            assert_eq!(two, got, "n = {n}");
        }
    }

    #[test]
    fn dot_matches_the_plain_sum_on_odd_lengths() {
        for n in [0, 1, 15, 16, 17, 100, 1001] {
            let a: Vec<f64> = (0..n).map(|i| (i as f64 * 0.37).sin()).collect();
            let b: Vec<f64> = (0..n).map(|i| (i as f64 * 0.11).cos()).collect();
            let want: f64 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert!((dot(&a, &b) - want).abs() < 1e-12, "n = {n}");
        }
    }

    #[test]
    fn sums_and_argmax() {
        let x = Tensor::from_vec((0..24).map(|v| v as f64).collect(), &[2, 3, 4]).unwrap();
        assert_eq!(sum_all(x.data()), 276.0);
        let s1 = sum_axis(&x, 1, false).unwrap();
        assert_eq!(s1.dims(), &[2, 4]);
        assert_eq!(s1.data(), &[12., 15., 18., 21., 48., 51., 54., 57.]);
        let s0 = sum_axis(&x, 0, true).unwrap();
        assert_eq!(s0.dims(), &[1, 3, 4]);
        assert_eq!(s0.data()[0], 12.0);
        let m = Tensor::from_vec(vec![1.0f32, 5.0, 5.0, -1.0, -3.0, -2.0], &[2, 3]).unwrap();
        assert_eq!(argmax_rows(&m).unwrap(), vec![1, 0]);
        assert_eq!(max_rows(&m).unwrap(), vec![5.0, -1.0]);
    }
}
