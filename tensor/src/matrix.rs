//! Matrix views: a matrix operand as one argument (buffer, shape, transposition) instead of a
//! pointer, a length, two dimensions and a flag passed separately, so that a product's
//! arguments cannot disagree with each other and its signature says which is which.

/// A read-only `rows x cols` matrix over a row-major buffer: the buffer holds it as is, or,
/// after [`MatRef::t`], holds its transpose (`cols x rows`, row-major). Transposing is a flag,
/// never a copy.
#[derive(Debug, Clone, Copy)]
pub struct MatRef<'a, T> {
    data: &'a [T],
    rows: usize,
    cols: usize,
    transposed: bool,
}

impl<'a, T> MatRef<'a, T> {
    /// The first `rows * cols` elements of `data` as a row-major `rows x cols` matrix.
    ///
    /// # Panics
    /// If `data` holds fewer than `rows * cols` elements.
    pub fn new(data: &'a [T], rows: usize, cols: usize) -> Self {
        assert_fits(data.len(), rows, cols);
        MatRef {
            data,
            rows,
            cols,
            transposed: false,
        }
    }

    /// The transpose (`cols x rows`), over the same buffer.
    pub fn t(self) -> Self {
        MatRef {
            data: self.data,
            rows: self.cols,
            cols: self.rows,
            transposed: !self.transposed,
        }
    }

    /// Rows of the matrix (after any transposition).
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns of the matrix (after any transposition).
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Whether the buffer holds the transpose of this matrix.
    pub fn is_transposed(&self) -> bool {
        self.transposed
    }

    /// The buffer (row-major, of the matrix or of its transpose: see [`MatRef::is_transposed`]).
    pub fn data(&self) -> &'a [T] {
        self.data
    }
}

/// A mutable row-major `rows x cols` matrix: the output of a product.
#[derive(Debug)]
pub struct MatMut<'a, T> {
    data: &'a mut [T],
    rows: usize,
    cols: usize,
}

impl<'a, T> MatMut<'a, T> {
    /// The first `rows * cols` elements of `data` as a row-major `rows x cols` matrix.
    ///
    /// # Panics
    /// If `data` holds fewer than `rows * cols` elements.
    pub fn new(data: &'a mut [T], rows: usize, cols: usize) -> Self {
        assert_fits(data.len(), rows, cols);
        MatMut { data, rows, cols }
    }

    /// Rows of the matrix.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Columns of the matrix.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The buffer, row-major.
    pub fn data(&mut self) -> &mut [T] {
        self.data
    }

    /// The same matrix, reborrowed (to hand to a kernel and keep using the view after).
    pub fn rb(&mut self) -> MatMut<'_, T> {
        MatMut {
            data: self.data,
            rows: self.rows,
            cols: self.cols,
        }
    }
}

fn assert_fits(len: usize, rows: usize, cols: usize) {
    assert!(
        rows.checked_mul(cols).is_some_and(|n| n <= len),
        "matrix view: a buffer of {len} elements holds no {rows}x{cols} matrix"
    );
}
