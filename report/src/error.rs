//! The crate's error type: every variant that touches a file names it.

use std::io;
use std::path::PathBuf;

/// What went wrong writing, reading or plotting a run record.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// Writing `path` (or its temp file in the same directory) failed; the old `path` is untouched.
    #[error("cannot write {}: {source}", path.display())]
    Write {
        /// The file that was to be written.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// Reading `path` failed.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file that was to be read.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: io::Error,
    },
    /// `path` is not a valid run record (bad JSON or missing fields).
    #[error("{} is not a valid run record: {source}", path.display())]
    Parse {
        /// The file that was read.
        path: PathBuf,
        /// What the JSON parser said, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// A record could not be serialized to JSON for `path`.
    #[error("cannot serialize the run record for {}: {source}", path.display())]
    Serialize {
        /// The file that was to be written.
        path: PathBuf,
        /// What the JSON serializer said.
        #[source]
        source: serde_json::Error,
    },
    /// Drawing or encoding the plot failed (no file involved yet).
    #[error("cannot render the plot: {0}")]
    Render(String),
    /// Drawing or encoding the plot for `path` failed; nothing was written.
    #[error("cannot plot {}: {message}", path.display())]
    Plot {
        /// The PNG file that was to be written.
        path: PathBuf,
        /// What the plotting library or PNG encoder said.
        message: String,
    },
}

impl From<ReportError> for io::Error {
    /// Keeps the I/O error kind where there is one, and the message naming the file.
    fn from(e: ReportError) -> Self {
        let kind = match &e {
            ReportError::Write { source, .. } | ReportError::Read { source, .. } => source.kind(),
            ReportError::Parse { .. } | ReportError::Serialize { .. } => io::ErrorKind::InvalidData,
            ReportError::Render(_) | ReportError::Plot { .. } => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}
