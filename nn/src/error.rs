use std::path::PathBuf;

/// What went wrong while building, training, saving or loading a network.
#[derive(Debug, thiserror::Error)]
pub enum NnError {
    /// A graph op failed (shapes, labels).
    #[error(transparent)]
    Graph(#[from] autograd::AutogradError),
    /// The network's layers do not fit together, or a setting is invalid.
    #[error("{0}")]
    Config(String),
    /// A batch would need more memory than the limit ([`crate::memory`]); the message names
    /// the batch, the layer holding the most and the limit.
    #[error("{0}")]
    Memory(String),
    /// The cost became NaN or infinite: training stopped rather than go on with garbage.
    #[error("the cost became {value} at epoch {epoch}, mini-batch {batch}: training diverged; try a smaller learning rate (eta = {eta} now)")]
    NonFinite {
        /// The value (NaN or inf).
        value: f64,
        /// Epoch (counted from 0).
        epoch: usize,
        /// Mini-batch within the epoch (counted from 0).
        batch: usize,
        /// The learning rate in use.
        eta: f64,
    },
    /// Training diverged without a NaN cost: a parameter became NaN or infinite after an
    /// update, or every gradient vanished while the cost was not zero (saturated units).
    #[error("training diverged at epoch {epoch}, mini-batch {batch}: {what}; try a smaller learning rate (eta = {eta} now)")]
    Diverged {
        /// What was seen, e.g. `parameter l0.w became inf`.
        what: String,
        /// Epoch (counted from 0).
        epoch: usize,
        /// Mini-batch within the epoch (counted from 0).
        batch: usize,
        /// The learning rate in use.
        eta: f64,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A model file is malformed or does not match the network.
    #[error("{path}: {why}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

impl From<tensor::TensorError> for NnError {
    fn from(e: tensor::TensorError) -> Self {
        NnError::Graph(e.into())
    }
}

/// So that a closure given to `autograd::gradcheck` can run nn code with `?`.
impl From<NnError> for autograd::AutogradError {
    fn from(e: NnError) -> Self {
        match e {
            NnError::Graph(e) => e,
            other => autograd::AutogradError::Invalid {
                op: "nn",
                why: other.to_string(),
            },
        }
    }
}
