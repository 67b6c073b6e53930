use crate::{Float, MatRef, Result, Shape, TensorError};
use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// A contiguous row-major n-d array of `f32` or `f64`.
///
/// ```
/// use nndl_tensor::Tensor;
///
/// // Row-major: the last dimension varies fastest.
/// let t = Tensor::from_vec(vec![1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3])?;
/// assert_eq!(t.dims(), &[2, 3]);
/// assert_eq!(t.numel(), 6);
/// assert_eq!(t.data()[1 * 3 + 2], 6.0); // element [1, 2]
///
/// // Same buffer, new dimensions; the element count must agree.
/// let r = t.clone().reshape(&[3, 2])?;
/// assert_eq!(r.data(), t.data());
/// assert!(t.clone().reshape(&[4, 2]).is_err());
///
/// // A buffer of the wrong length is an error, not a panic.
/// assert!(Tensor::from_vec(vec![1.0f32; 5], &[2, 3]).is_err());
///
/// assert_eq!(Tensor::<f64>::zeros(&[2, 2])?.data(), &[0.0; 4]);
/// assert_eq!(Tensor::full(&[3], 7.0f64)?.data(), &[7.0; 3]);
/// assert_eq!(Tensor::scalar(2.5f32).item(), Some(2.5));
/// assert_eq!(t.transpose2()?.data(), &[1.0, 4.0, 2.0, 5.0, 3.0, 6.0]);
/// assert_eq!(t.map(|x| x * 10.0).data()[0], 10.0);
/// # Ok::<(), nndl_tensor::TensorError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Tensor<T> {
    shape: Shape,
    data: Vec<T>,
}

impl<T: Float> Tensor<T> {
    /// Tensor from a buffer and dimensions; errors when the lengths disagree.
    pub fn from_vec(data: Vec<T>, dims: &[usize]) -> Result<Self> {
        let shape = Shape::new(dims)?;
        Self::from_shape_vec(shape, data)
    }

    /// Tensor from a [`Shape`] and a buffer of exactly `shape.numel()` elements.
    pub fn from_shape_vec(shape: Shape, data: Vec<T>) -> Result<Self> {
        if data.len() != shape.numel() {
            return Err(TensorError::DataLength {
                len: data.len(),
                shape,
                expected: shape.numel(),
            });
        }
        Ok(Tensor { shape, data })
    }

    /// A tensor of zeros.
    pub fn zeros(dims: &[usize]) -> Result<Self> {
        let shape = Shape::new(dims)?;
        Ok(Self::zeros_shape(shape))
    }

    /// A tensor of zeros of a given [`Shape`].
    pub fn zeros_shape(shape: Shape) -> Self {
        Tensor {
            shape,
            data: vec![T::zero(); shape.numel()],
        }
    }

    /// A tensor filled with `value`.
    pub fn full(dims: &[usize], value: T) -> Result<Self> {
        let shape = Shape::new(dims)?;
        Ok(Tensor {
            shape,
            data: vec![value; shape.numel()],
        })
    }

    /// A rank-0 tensor holding one value.
    pub fn scalar(value: T) -> Self {
        Tensor {
            shape: Shape::scalar(),
            data: vec![value],
        }
    }

    /// Samples of N(mean, std^2).
    ///
    /// Any `rand` 0.9 generator works ([`crate::rand`] is the version to use); a seeded one
    /// such as `rand_pcg::Pcg64` gives the same tensor on every run and machine.
    ///
    /// ```
    /// use nndl_tensor::rand::SeedableRng;
    /// use nndl_tensor::Tensor;
    /// use rand_pcg::Pcg64;
    ///
    /// let a = Tensor::<f64>::randn(&[100, 100], 3.0, 0.5, &mut Pcg64::seed_from_u64(7))?;
    /// let b = Tensor::<f64>::randn(&[100, 100], 3.0, 0.5, &mut Pcg64::seed_from_u64(7))?;
    /// assert_eq!(a, b); // same seed, same samples
    /// assert_eq!(a.dims(), &[100, 100]);
    ///
    /// // 10,000 samples: the mean is within 4 standard errors (0.5 / 100 each) of 3.
    /// let mean = nndl_tensor::mean_all(a.data());
    /// assert!((mean - 3.0).abs() < 0.02, "{mean}");
    /// let var = a.data().iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 1e4;
    /// assert!((var.sqrt() - 0.5).abs() < 0.02, "{var}");
    /// # Ok::<(), nndl_tensor::TensorError>(())
    /// ```
    pub fn randn<R: Rng + ?Sized>(
        dims: &[usize],
        mean: f64,
        std: f64,
        rng: &mut R,
    ) -> Result<Self> {
        Self::sampled(dims, || {
            let z: f64 = StandardNormal.sample(rng);
            T::of(mean + std * z)
        })
    }

    /// Samples of U[lo, hi).
    pub fn rand_uniform<R: Rng + ?Sized>(
        dims: &[usize],
        lo: f64,
        hi: f64,
        rng: &mut R,
    ) -> Result<Self> {
        Self::sampled(dims, || T::of(rng.random_range(lo..hi)))
    }

    /// A tensor of `dims` whose elements are drawn by `draw` in storage order.
    fn sampled(dims: &[usize], draw: impl FnMut() -> T) -> Result<Self> {
        let shape = Shape::new(dims)?;
        let data = std::iter::repeat_with(draw).take(shape.numel()).collect();
        Ok(Tensor { shape, data })
    }

    /// The shape.
    pub fn shape(&self) -> Shape {
        self.shape
    }

    /// The dimensions.
    pub fn dims(&self) -> &[usize] {
        self.shape.dims()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        self.data.len()
    }

    /// The elements in row-major order.
    pub fn data(&self) -> &[T] {
        &self.data
    }

    /// A 2-D tensor as a matrix operand of [`crate::gemm`].
    ///
    /// # Panics
    /// If the tensor is not 2-D.
    pub fn mat(&self) -> MatRef<'_, T> {
        let d = self.dims();
        assert!(d.len() == 2, "mat: a {}-D tensor is no matrix", d.len());
        MatRef::new(&self.data, d[0], d[1])
    }

    /// The elements, mutably.
    pub fn data_mut(&mut self) -> &mut [T] {
        &mut self.data
    }

    /// Consumes the tensor, returning its buffer.
    pub fn into_vec(self) -> Vec<T> {
        self.data
    }

    /// The only element of a one-element tensor, else `None`.
    pub fn item(&self) -> Option<T> {
        (self.data.len() == 1).then(|| self.data[0])
    }

    /// Same data, new dimensions with the same element count.
    pub fn reshape(mut self, dims: &[usize]) -> Result<Self> {
        let shape = Shape::new(dims)?;
        if shape.numel() != self.data.len() {
            return Err(TensorError::ShapeMismatch {
                op: "reshape",
                lhs: self.shape,
                rhs: shape,
                why: "element counts differ".into(),
            });
        }
        self.shape = shape;
        Ok(self)
    }

    /// Applies `f` to every element.
    pub fn map(&self, f: impl Fn(T) -> T) -> Self {
        Tensor {
            shape: self.shape,
            data: self.data.iter().map(|&x| f(x)).collect(),
        }
    }

    /// Converts every element to another float type.
    pub fn cast<U: Float>(&self) -> Tensor<U> {
        Tensor {
            shape: self.shape,
            data: self.data.iter().map(|&x| U::of(x.f64())).collect(),
        }
    }

    /// The transpose of a 2-D tensor (a copy).
    pub fn transpose2(&self) -> Result<Self> {
        if self.shape.ndim() != 2 {
            return Err(TensorError::InvalidShape {
                op: "transpose",
                shape: self.shape,
                why: "needs a 2-D tensor".into(),
            });
        }
        let (r, c) = (self.shape[0], self.shape[1]);
        let mut out = Tensor::zeros_shape(Shape::new(&[c, r])?);
        crate::unary::transpose_into(&self.data, r, c, &mut out.data);
        Ok(out)
    }

    /// A zero-copy view as an `ndarray` (version 0.17) array, for interop; add `ndarray` to
    /// your own dependencies to name its types.
    pub fn view(&self) -> ndarray::ArrayViewD<'_, T> {
        ndarray::ArrayViewD::from_shape(ndarray::IxDyn(self.dims()), &self.data)
            .expect("a Tensor's buffer always fills its shape")
    }

    /// Copies an `ndarray` (0.17) array of any layout into a tensor.
    pub fn from_ndarray<D: ndarray::Dimension>(a: ndarray::ArrayView<'_, T, D>) -> Result<Self> {
        let dims = a.shape().to_vec();
        Self::from_vec(a.iter().copied().collect(), &dims)
    }

    /// Largest absolute elementwise difference to another tensor of the same shape.
    pub fn max_abs_diff(&self, other: &Self) -> Result<T> {
        if self.shape != other.shape {
            return Err(TensorError::ShapeMismatch {
                op: "max_abs_diff",
                lhs: self.shape,
                rhs: other.shape,
                why: "shapes differ".into(),
            });
        }
        Ok(self
            .data
            .iter()
            .zip(&other.data)
            .fold(T::zero(), |m, (&a, &b)| m.max((a - b).abs())))
    }

    /// Re-shapes a reused buffer: resizes `data` to the shape's size (contents unspecified).
    pub fn reset_shape(&mut self, shape: Shape) {
        self.shape = shape;
        self.data.resize(shape.numel(), T::zero());
    }

    /// Builds a tensor around a recycled buffer, zero-filled (split across threads when big:
    /// the gradient accumulators of a conv net's activations are megabytes each, and a serial
    /// fill was 4% of a training step on the main thread).
    // Public for autograd's buffer pool, which recycles the tape's buffers through it; a
    // user builds tensors with `zeros`, hence hidden.
    #[doc(hidden)]
    pub fn zeros_in(shape: Shape, mut buf: Vec<T>) -> Self {
        let n = shape.numel();
        if buf.len() == n && crate::par::worth_splitting(n, 1 << 18) {
            let p = crate::par::SyncPtr(buf.as_mut_ptr());
            crate::par::split(n, 1024, &|_, lo, hi| {
                // SAFETY: each part owns elements lo..hi of the buffer.
                unsafe { p.slice(lo, hi - lo) }.fill(T::zero())
            });
        } else {
            buf.clear();
            buf.resize(n, T::zero());
        }
        Tensor { shape, data: buf }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recycled_buffer_is_zeroed_at_any_size_and_thread_count() {
        for n in [0, 5, 1 << 18, (1 << 18) + 1027] {
            for threads in [1, 2] {
                crate::par::with_threads(threads, || {
                    let shape = Shape::new(&[n]).unwrap();
                    // Same length (filled in place, split when big), longer and shorter.
                    for len in [n, n + 3, n / 2] {
                        let t = Tensor::<f32>::zeros_in(shape, vec![f32::NAN; len]);
                        assert_eq!(t.data().len(), n);
                        assert!(t.data().iter().all(|&v| v == 0.0), "n {n}, buffer {len}");
                    }
                })
            }
        }
    }
}
