//! The crate's error type: every way LIBSVM or the wrapper around it can refuse.

use std::io;
use std::path::PathBuf;

/// What went wrong in a call of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A parameter is outside its domain (checked here before LIBSVM sees it).
    #[error("invalid SVM parameter {name} = {value}: {requirement}")]
    InvalidParameter {
        /// The parameter (`C`, `gamma`, `cache_mb`, `eps`).
        name: &'static str,
        /// The value given.
        value: f64,
        /// What the value must satisfy.
        requirement: &'static str,
    },
    /// LIBSVM's `svm_check_parameter` refused the parameters; its message is kept verbatim.
    #[error("LIBSVM rejected the parameters: {0}")]
    Rejected(String),
    /// A feature vector cannot be given to LIBSVM.
    #[error("invalid feature vector (row {row}): {detail}")]
    InvalidFeatures {
        /// Index of the row being added or predicted.
        row: usize,
        /// What is wrong with it.
        detail: String,
    },
    /// The training problem is unusable (empty, labels and rows disagree, too large for C ints).
    #[error("invalid training problem: {0}")]
    InvalidProblem(String),
    /// LIBSVM returned no model (it only does so when out of memory).
    #[error("LIBSVM returned no model for the {what}")]
    TrainingFailed {
        /// Which problem was being trained.
        what: String,
    },
    /// Reading or writing a model file failed at the operating-system level.
    #[error("cannot {action} SVM model {path}: {source}")]
    Io {
        /// The model file.
        path: PathBuf,
        /// `read` or `write`.
        action: &'static str,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A model file is not a well-formed LIBSVM classification model.
    #[error("{path}: line {line}: not a valid LIBSVM model: {detail}")]
    BadModel {
        /// The model file.
        path: PathBuf,
        /// 1-based line where the problem was found (0 for the whole file).
        line: usize,
        /// What is wrong.
        detail: String,
    },
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
