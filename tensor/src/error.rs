use crate::Shape;

/// What went wrong in a tensor operation; every variant names the operation and the shapes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TensorError {
    /// Two shapes that had to agree (or broadcast) did not.
    #[error("{op}: shapes {lhs} and {rhs} are incompatible: {why}")]
    ShapeMismatch {
        /// The operation that was attempted.
        op: &'static str,
        /// The first operand's shape.
        lhs: Shape,
        /// The second operand's shape.
        rhs: Shape,
        /// Why they do not fit.
        why: String,
    },
    /// A shape was invalid for the operation by itself (wrong rank, zero size, ...).
    #[error("{op}: invalid shape {shape}: {why}")]
    InvalidShape {
        /// The operation that was attempted.
        op: &'static str,
        /// The offending shape.
        shape: Shape,
        /// Why it is invalid.
        why: String,
    },
    /// A data buffer's length did not match the element count of its shape.
    #[error("data of length {len} does not fill shape {shape} ({expected} elements)")]
    DataLength {
        /// The buffer's length.
        len: usize,
        /// The requested shape.
        shape: Shape,
        /// The shape's element count.
        expected: usize,
    },
    /// An axis index beyond the tensor's rank.
    #[error("{op}: axis {axis} out of range for shape {shape}")]
    Axis {
        /// The operation that was attempted.
        op: &'static str,
        /// The requested axis.
        axis: usize,
        /// The tensor's shape.
        shape: Shape,
    },
    /// More dimensions than [`crate::MAX_DIMS`].
    #[error("{ndim} dimensions requested; at most {max} are supported")]
    TooManyDims {
        /// Requested rank.
        ndim: usize,
        /// Supported maximum.
        max: usize,
    },
}
