//! The crate's error type: every failure names the file (or directory, or URL) and the problem.

use std::fmt;
use std::io;
use std::path::PathBuf;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong reading, writing, finding or downloading MNIST files.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system error on a file (open, read, write, rename...).
    #[error("{}: cannot {action}: {source}", .path.display())]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// What was being done ("open", "read", "write"...).
        action: &'static str,
        /// The underlying error.
        source: io::Error,
    },

    /// The file starts like gzip (bytes 1f 8b) but its compressed stream is corrupt or cut short.
    #[error("{}: not a valid gzip stream (corrupt or truncated .gz file): {source}", .path.display())]
    Gzip {
        /// The file concerned.
        path: PathBuf,
        /// The decompressor's error.
        source: io::Error,
    },

    /// The file is shorter than an IDX header.
    #[error(
        "{}: too short for an IDX {kind} header: {found} bytes, the header needs {needed}",
        .path.display()
    )]
    HeaderTooShort {
        /// The file concerned.
        path: PathBuf,
        /// "images" or "labels".
        kind: IdxKind,
        /// Bytes (after decompression) present.
        found: usize,
        /// Bytes the header needs.
        needed: usize,
    },

    /// The first four bytes are not the magic number of the expected IDX file type.
    #[error(
        "{}: wrong magic number {found} ({found:#010x}): an IDX {kind} file starts with {} ({:#010x}){}",
        .path.display(), .kind.magic(), .kind.magic(), magic_hint(*.found)
    )]
    BadMagic {
        /// The file concerned.
        path: PathBuf,
        /// The kind of file that was expected.
        kind: IdxKind,
        /// The magic number found.
        found: u32,
    },

    /// The header's dimensions are unusable (zero rows or columns, or not what MNIST needs).
    #[error("{}: bad dimensions: {detail}", .path.display())]
    BadDimensions {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with them.
        detail: String,
    },

    /// The header claims more data than any file could hold or memory could address.
    #[error(
        "{}: absurd header: {count} records of {record_bytes} bytes each overflows the address space",
        .path.display()
    )]
    AbsurdHeader {
        /// The file concerned.
        path: PathBuf,
        /// Records claimed.
        count: u64,
        /// Bytes per record claimed.
        record_bytes: u64,
    },

    /// The header declares more data than nndl reads from one IDX file
    /// ([`crate::idx::MAX_DATA_BYTES`]): refused before any of it is read or inflated.
    #[error(
        "{}: the header declares {count} records of {record_bytes} bytes ({} bytes), more than \
         the {limit} bytes nndl reads from one IDX file",
        .path.display(), .count.saturating_mul(*.record_bytes)
    )]
    DeclaredTooLarge {
        /// The file concerned.
        path: PathBuf,
        /// Records declared.
        count: u64,
        /// Bytes per record declared.
        record_bytes: u64,
        /// The limit in bytes.
        limit: u64,
    },

    /// Memory for the data could not be had: refused with this error rather than aborting.
    #[error(
        "{}: out of memory: cannot allocate {bytes} bytes for the {expected} data bytes the \
         header declares",
        .path.display()
    )]
    OutOfMemory {
        /// The file concerned.
        path: PathBuf,
        /// The allocation that failed, in bytes.
        bytes: u64,
        /// Data bytes the header declares.
        expected: u64,
    },

    /// A file uncompresses to more bytes than it may hold.
    #[error("{}: uncompresses to more than {limit} bytes ({why})", .path.display())]
    TooLong {
        /// The file concerned.
        path: PathBuf,
        /// The most bytes it may hold.
        limit: u64,
        /// Why that is the limit.
        why: &'static str,
    },

    /// The file holds fewer data bytes than its header declares.
    #[error(
        "{}: truncated: the header declares {expected} data bytes but the file holds only {found}",
        .path.display()
    )]
    Truncated {
        /// The file concerned.
        path: PathBuf,
        /// Data bytes the header declares.
        expected: u64,
        /// Data bytes present.
        found: u64,
    },

    /// The file holds more bytes than its header declares.
    #[error(
        "{}: trailing bytes: {} after the {expected} data bytes the header declares",
        .path.display(), excess_text(*.excess)
    )]
    TrailingBytes {
        /// The file concerned.
        path: PathBuf,
        /// Data bytes the header declares.
        expected: u64,
        /// How many extra bytes, when known (for gzip only "at least one" is known).
        excess: Option<u64>,
    },

    /// A label byte is not a digit 0-9.
    #[error("{}: label {value} of record {index} is not a digit 0-9", .path.display())]
    BadLabel {
        /// The file concerned.
        path: PathBuf,
        /// Record index (0-based).
        index: usize,
        /// The byte found.
        value: u8,
    },

    /// An image file and its label file disagree on the number of records.
    #[error(
        "{} holds {images} images but {} holds {labels} labels",
        .images_path.display(), .labels_path.display()
    )]
    CountMismatch {
        /// The image file.
        images_path: PathBuf,
        /// The label file.
        labels_path: PathBuf,
        /// Images in the image file.
        images: u64,
        /// Labels in the label file.
        labels: u64,
    },

    /// A file has a valid layout but not the number of records the book's split needs.
    #[error("{}: holds {found} records, expected {expected} ({why})", .path.display())]
    WrongRecordCount {
        /// The file concerned.
        path: PathBuf,
        /// Records expected.
        expected: u64,
        /// Records found.
        found: u64,
        /// Why that number is expected.
        why: &'static str,
    },

    /// The uncompressed bytes do not have the official MD5.
    #[error(
        "{source_name}: MD5 of the uncompressed bytes is {found}, the official {file} has {expected}"
    )]
    Checksum {
        /// Where the bytes came from (a path or URL).
        source_name: String,
        /// The file's official name.
        file: &'static str,
        /// The official MD5 (hex).
        expected: &'static str,
        /// The MD5 found (hex).
        found: String,
    },

    /// The MNIST files were not found in any of the places searched.
    #[error("{}", data_not_found_text(.searched, .missing))]
    DataNotFound {
        /// Every directory searched and why it did not qualify.
        searched: Vec<(PathBuf, String)>,
        /// Files that were being looked for.
        missing: Vec<String>,
    },

    /// The expanded training files made by `mnist_expand` are not in the data directory.
    #[error(
        "{}: expanded training data not found ({}); make it with \
         `cargo run --release --example mnist_expand` (add `-- --data {}` if the data is elsewhere)",
        .dir.display(), .missing, .dir.display()
    )]
    ExpandedNotFound {
        /// The data directory searched.
        dir: PathBuf,
        /// The missing file name(s).
        missing: String,
    },

    /// Arguments that do not describe a valid dataset or file (lengths that disagree, etc.).
    #[error("invalid {what}: {detail}")]
    Invalid {
        /// What was being built or written.
        what: &'static str,
        /// What is wrong.
        detail: String,
    },

    /// A file could not be downloaded from any mirror.
    #[error("{}", download_failed_text(.file, .dir, .attempts))]
    DownloadFailed {
        /// The file's name.
        file: &'static str,
        /// The directory it was to be written to.
        dir: PathBuf,
        /// Every URL tried and why it failed.
        attempts: Vec<(String, String)>,
    },

    /// Downloading was asked for but the crate was built without the `download` feature.
    #[error(
        "downloading needs the `download` feature of the mnist crate (on by default); \
         copy data/mnist/ from the nndl repository instead"
    )]
    DownloadUnavailable,
}

/// The two kinds of IDX file MNIST uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IdxKind {
    /// 3-d unsigned-byte array (count, rows, cols): magic 2051.
    Images,
    /// 1-d unsigned-byte array (count): magic 2049.
    Labels,
}

impl IdxKind {
    /// The magic number that starts this kind of file (0x00000803 or 0x00000801).
    pub fn magic(self) -> u32 {
        match self {
            IdxKind::Images => 2051,
            IdxKind::Labels => 2049,
        }
    }

    /// Header length in bytes: magic plus one u32 per dimension.
    pub fn header_len(self) -> usize {
        match self {
            IdxKind::Images => 16,
            IdxKind::Labels => 8,
        }
    }
}

impl fmt::Display for IdxKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdxKind::Images => "images",
            IdxKind::Labels => "labels",
        })
    }
}

fn magic_hint(found: u32) -> &'static str {
    match found {
        2051 => " (this is an images file)",
        2049 => " (this is a labels file)",
        _ => "",
    }
}

fn excess_text(excess: Option<u64>) -> String {
    match excess {
        Some(n) => format!("{n} extra bytes"),
        None => "extra bytes".to_string(),
    }
}

/// How to get the data, said by every "not found" error.
pub(crate) const HOW_TO_GET: &str = "To get the files: run the example with `--download` \
     (fetches them from the mirrors and checks their MD5), or copy data/mnist/ from the nndl \
     repository; then point `--data DIR` or the NNDL_DATA environment variable at the directory \
     if it is not a data/mnist above the current directory.";

fn data_not_found_text(searched: &[(PathBuf, String)], missing: &[String]) -> String {
    let mut s = format!("MNIST data not found: looked for {}", missing.join(", "));
    s.push_str(" in:");
    for (dir, why) in searched {
        s.push_str(&format!("\n  {} ({why})", dir.display()));
    }
    s.push('\n');
    s.push_str(HOW_TO_GET);
    s
}

fn download_failed_text(
    file: &str,
    dir: &std::path::Path,
    attempts: &[(String, String)],
) -> String {
    let mut s = format!(
        "could not download {file} into {} from any mirror:",
        dir.display()
    );
    for (url, why) in attempts {
        s.push_str(&format!("\n  {url}: {why}"));
    }
    s.push_str("\nNo partial file was left. Copy data/mnist/ from the nndl repository instead.");
    s
}
