use tensor::{Shape, TensorError};

/// What went wrong while building or differentiating a graph.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AutogradError {
    /// A tensor kernel rejected its operands (shapes, ranks). Boxed to keep `Result`s small.
    #[error(transparent)]
    Tensor(Box<TensorError>),
    /// `backward` was called on a value that is not a single number.
    #[error("backward needs a scalar loss, got shape {0}")]
    NotScalar(Shape),
    /// A `Var` from an earlier step (before `reset`) or from another graph.
    #[error("{op}: Var {var} is not on this graph's current tape (stale after reset, or from another graph)")]
    StaleVar {
        /// The operation that received it.
        op: &'static str,
        /// The handle's index.
        var: u32,
    },
    /// A gradient recorded on the tape ([`Graph::gradients`](crate::Graph::gradients)) had to
    /// pass through an op whose backward cannot be recorded as graph ops yet: its gradient
    /// cannot be differentiated again. Never a wrong number instead.
    #[error(
        "`{op}` has no differentiable backward yet: its gradient cannot be differentiated again"
    )]
    NotTwiceDifferentiable {
        /// The op's name.
        op: &'static str,
    },
    /// An operation's inputs were invalid for a reason other than shapes.
    #[error("{op}: {why}")]
    Invalid {
        /// The operation.
        op: &'static str,
        /// What is wrong.
        why: String,
    },
}

impl From<TensorError> for AutogradError {
    fn from(e: TensorError) -> Self {
        AutogradError::Tensor(Box::new(e))
    }
}
