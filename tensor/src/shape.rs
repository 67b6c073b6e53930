use crate::{Result, TensorError};
use std::fmt;

/// Largest rank a [`Shape`] can hold (NCHW needs 4; two spare).
pub const MAX_DIMS: usize = 6;

/// A tensor's dimensions, stored inline so that creating a shape never allocates.
///
/// ```
/// use nndl_tensor::{Shape, MAX_DIMS};
///
/// let s = Shape::new(&[2, 3, 4])?;
/// assert_eq!((s.ndim(), s.numel(), s[1]), (3, 24, 3));
/// assert_eq!(&s.strides()[..3], &[12, 4, 1]); // row-major
/// assert_eq!(s.as_matrix(), (6, 4)); // leading dimensions folded into rows
/// assert_eq!(s.to_string(), "[2, 3, 4]");
/// assert_eq!(Shape::scalar().numel(), 1);
/// assert!(Shape::new(&[1; MAX_DIMS + 1]).is_err());
/// # Ok::<(), nndl_tensor::TensorError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Shape {
    dims: [usize; MAX_DIMS],
    ndim: u8,
}

impl Shape {
    /// Shape from a slice of dimensions; errors beyond [`MAX_DIMS`].
    pub fn new(dims: &[usize]) -> Result<Self> {
        if dims.len() > MAX_DIMS {
            return Err(TensorError::TooManyDims {
                ndim: dims.len(),
                max: MAX_DIMS,
            });
        }
        let mut d = [0; MAX_DIMS];
        d[..dims.len()].copy_from_slice(dims);
        Ok(Shape {
            dims: d,
            ndim: dims.len() as u8,
        })
    }

    /// The rank-0 (scalar) shape.
    pub fn scalar() -> Self {
        Shape::default()
    }

    /// The dimensions as a slice.
    pub fn dims(&self) -> &[usize] {
        &self.dims[..self.ndim as usize]
    }

    /// Number of dimensions.
    pub fn ndim(&self) -> usize {
        self.ndim as usize
    }

    /// Number of elements (1 for a scalar).
    pub fn numel(&self) -> usize {
        self.dims().iter().product()
    }

    /// Row-major strides in elements.
    pub fn strides(&self) -> [usize; MAX_DIMS] {
        let mut s = [0; MAX_DIMS];
        let mut acc = 1;
        for i in (0..self.ndim()).rev() {
            s[i] = acc;
            acc *= self.dims[i];
        }
        s
    }

    /// The shape as a matrix `(rows, cols)`: all leading dims folded into rows.
    pub fn as_matrix(&self) -> (usize, usize) {
        match self.ndim() {
            0 => (1, 1),
            n => {
                let cols = self.dims[n - 1];
                (self.numel() / cols.max(1), cols)
            }
        }
    }
}

impl std::ops::Index<usize> for Shape {
    type Output = usize;
    fn index(&self, i: usize) -> &usize {
        &self.dims()[i]
    }
}

impl fmt::Debug for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.dims())
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.dims())
    }
}
