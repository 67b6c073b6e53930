//! The book's `mnist_loader.py`: the four official files, the 50,000 / 10,000 / 10,000 split,
//! where the data directory is, and the official checksums.

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use flate2::bufread::MultiGzDecoder;
use md5::{Digest, Md5};

use crate::dataset::Dataset;
use crate::error::{Error, IdxKind, Result};
use crate::idx::{self, GZIP_MAGIC};

/// Image side length in pixels.
pub const SIDE: usize = 28;
/// One image's shape as a network takes it: one channel of `SIDE x SIDE` pixels.
pub const IMAGE_DIMS: [usize; 3] = [1, SIDE, SIDE];
/// Records of the book's training set (the first 50,000 of the train files).
pub const TRAINING_SIZE: usize = 50_000;
/// Records of the book's validation set (the last 10,000 of the train files).
pub const VALIDATION_SIZE: usize = 10_000;
/// Records of the test set (the t10k files).
pub const TEST_SIZE: usize = 10_000;
/// Environment variable naming the data directory.
pub const DATA_ENV: &str = "NNDL_DATA";
/// Where the data lives relative to the repository root (searched upward from the current dir).
pub const DEFAULT_DATA_DIR: &str = "data/mnist";

/// One of the four official MNIST files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfficialFile {
    /// Name without `.gz` (the loader accepts `NAME.gz` or `NAME`).
    pub name: &'static str,
    /// Images or labels.
    pub kind: IdxKind,
    /// Records held.
    pub records: usize,
    /// Size of the uncompressed file in bytes.
    pub uncompressed_len: u64,
    /// The official MD5 of the uncompressed file (hex).
    pub md5: &'static str,
}

impl OfficialFile {
    /// The compressed file name, `NAME.gz`.
    pub fn gz_name(&self) -> String {
        format!("{}.gz", self.name)
    }
}

/// The training images: 60,000 of 28x28.
pub const TRAIN_IMAGES: OfficialFile = OfficialFile {
    name: "train-images-idx3-ubyte",
    kind: IdxKind::Images,
    records: 60_000,
    uncompressed_len: 47_040_016,
    md5: "6bbc9ace898e44ae57da46a324031adb",
};
/// The training labels: 60,000.
pub const TRAIN_LABELS: OfficialFile = OfficialFile {
    name: "train-labels-idx1-ubyte",
    kind: IdxKind::Labels,
    records: 60_000,
    uncompressed_len: 60_008,
    md5: "a25bea736e30d166cdddb491f175f624",
};
/// The test images: 10,000 of 28x28.
pub const TEST_IMAGES: OfficialFile = OfficialFile {
    name: "t10k-images-idx3-ubyte",
    kind: IdxKind::Images,
    records: 10_000,
    uncompressed_len: 7_840_016,
    md5: "2646ac647ad5339dbf082846283269ea",
};
/// The test labels: 10,000.
pub const TEST_LABELS: OfficialFile = OfficialFile {
    name: "t10k-labels-idx1-ubyte",
    kind: IdxKind::Labels,
    records: 10_000,
    uncompressed_len: 10_008,
    md5: "27ae3e4e09519cfbb04c329615203637",
};
/// The four official files, in the order of the official web page.
pub const FILES: [OfficialFile; 4] = [TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS];

/// File name (without `.gz`) of the expanded 250,000 training images `mnist_expand` writes.
pub const EXPANDED_IMAGES: &str = "expanded-train-images-idx3-ubyte";
/// File name (without `.gz`) of the expanded training labels `mnist_expand` writes.
pub const EXPANDED_LABELS: &str = "expanded-train-labels-idx1-ubyte";

/// The book's three sets: training (50,000), validation (10,000) and test (10,000).
#[derive(Debug, Clone)]
pub struct MnistData {
    /// The first 50,000 records of the train files (or the expanded set).
    pub training: Dataset,
    /// The last 10,000 records of the train files.
    pub validation: Dataset,
    /// The 10,000 records of the t10k files.
    pub test: Dataset,
}

/// The path of `file` in `dir`: `NAME.gz` if present, else uncompressed `NAME`, else `None`.
pub fn locate_file(dir: &Path, file: &OfficialFile) -> Option<PathBuf> {
    locate_name(dir, file.name)
}

/// `dir/NAME.gz` if it is a file, else `dir/NAME` if it is, else `None`.
fn locate_name(dir: &Path, name: &str) -> Option<PathBuf> {
    [dir.join(format!("{name}.gz")), dir.join(name)]
        .into_iter()
        .find(|p| p.is_file())
}

/// The path of `file` in `dir`, or an error saying where it looked and how to get it.
fn require_file(dir: &Path, file: &OfficialFile) -> Result<PathBuf> {
    locate_file(dir, file).ok_or_else(|| Error::DataNotFound {
        searched: vec![(dir.to_path_buf(), describe_dir(dir))],
        missing: vec![format!("{}[.gz]", file.name)],
    })
}

/// Load the book's split from `dir` (the four official files, gzip or raw).
///
/// training = the first 50,000 records of the train files, validation = the last 10,000,
/// test = the t10k files. Files are checked for layout, 28x28 images, record counts and labels;
/// their MD5s are not recomputed here (see [`verify_dir`]).
///
/// ```
/// // `data/mnist` searched upward from the current directory (or `$NNDL_DATA`).
/// let dir = nndl_mnist::find_data_dir(None)?;
/// let data = nndl_mnist::load_data(&dir)?;
/// assert_eq!((data.training.len(), data.validation.len(), data.test.len()), (50_000, 10_000, 10_000));
/// assert_eq!((data.training.rows(), data.training.cols()), (28, 28));
/// // The first digits of each file, as every MNIST reader sees them.
/// assert_eq!(&data.training.labels()[..3], &[5, 0, 4]);
/// assert_eq!(&data.test.labels()[..2], &[7, 2]);
/// assert_eq!(data.test.class_counts().iter().sum::<usize>(), 10_000);
/// # Ok::<(), nndl_mnist::Error>(())
/// ```
pub fn load_data(dir: impl AsRef<Path>) -> Result<MnistData> {
    let dir = dir.as_ref();
    let train = load_official(dir, &TRAIN_IMAGES, &TRAIN_LABELS)?;
    let test = load_official(dir, &TEST_IMAGES, &TEST_LABELS)?;
    let (training, validation) = train.split_at(TRAINING_SIZE);
    Ok(MnistData {
        training,
        validation,
        test,
    })
}

/// [`load_data`] with the expanded 250,000-image set (made by `mnist_expand`) as training data.
pub fn load_data_expanded(dir: impl AsRef<Path>) -> Result<MnistData> {
    let dir = dir.as_ref();
    let (ip, lp) = match (
        locate_name(dir, EXPANDED_IMAGES),
        locate_name(dir, EXPANDED_LABELS),
    ) {
        (Some(ip), Some(lp)) => (ip, lp),
        (ip, lp) => {
            let missing: Vec<String> = [(ip, EXPANDED_IMAGES), (lp, EXPANDED_LABELS)]
                .into_iter()
                .filter(|(p, _)| p.is_none())
                .map(|(_, n)| format!("{n}[.gz]"))
                .collect();
            return Err(Error::ExpandedNotFound {
                dir: dir.to_path_buf(),
                missing: missing.join(", "),
            });
        }
    };
    // Read the expanded set first: it is the one most likely to be missing or stale. Its
    // labels come first, so that images of another count or size are refused from the header.
    let labels = idx::read_labels(&lp)?;
    let images = idx::read_images_checked(&ip, |dims| {
        check_count_matches(&ip, &lp, dims[0], labels.len())?;
        check_side(&ip, dims[1], dims[2])
    })?;
    let training = Dataset::new(images.pixels, labels, images.rows, images.cols)?;
    let MnistData {
        validation, test, ..
    } = load_data(dir)?;
    Ok(MnistData {
        training,
        validation,
        test,
    })
}

/// MNIST's 28x28, checked on an images header before its pixels are read.
fn check_side(path: &Path, rows: u32, cols: u32) -> Result<()> {
    if (rows as usize, cols as usize) != (SIDE, SIDE) {
        return Err(Error::BadDimensions {
            path: path.to_path_buf(),
            detail: format!("images of {rows}x{cols}, MNIST's are 28x28"),
        });
    }
    Ok(())
}

/// An images header's count against the labels already read.
fn check_count_matches(
    images_path: &Path,
    labels_path: &Path,
    count: u32,
    labels: usize,
) -> Result<()> {
    if count as usize != labels {
        return Err(Error::CountMismatch {
            images_path: images_path.to_path_buf(),
            labels_path: labels_path.to_path_buf(),
            images: u64::from(count),
            labels: labels as u64,
        });
    }
    Ok(())
}

/// An official file's header count against the count the book's split needs: any other is
/// refused before the file's data is read (a small gzip file can declare and hold gigabytes).
fn check_records(path: &Path, file: &OfficialFile, count: u32) -> Result<()> {
    if count as usize != file.records {
        return Err(Error::WrongRecordCount {
            path: path.to_path_buf(),
            expected: file.records as u64,
            found: u64::from(count),
            why: "the official file's size, which the book's split assumes",
        });
    }
    Ok(())
}

/// One official pair (images, labels): every header is checked (count, 28x28) before the data
/// behind it is read, so at most the official sizes are ever inflated.
fn load_official(dir: &Path, images: &OfficialFile, labels: &OfficialFile) -> Result<Dataset> {
    let ip = require_file(dir, images)?;
    let lp = require_file(dir, labels)?;
    let im = idx::read_images_checked(&ip, |dims| {
        check_records(&ip, images, dims[0])?;
        check_side(&ip, dims[1], dims[2])
    })?;
    let lb = idx::read_labels_checked(&lp, |count| check_records(&lp, labels, count))?;
    Dataset::new(im.pixels, lb, im.rows, im.cols)
}

/// Why `dir` does not hold the data, for error messages.
fn describe_dir(dir: &Path) -> String {
    if !dir.exists() {
        return "does not exist".to_string();
    }
    if !dir.is_dir() {
        return "not a directory".to_string();
    }
    let missing: Vec<&str> = FILES
        .iter()
        .filter(|f| locate_file(dir, f).is_none())
        .map(|f| f.name)
        .collect();
    if missing.is_empty() {
        "holds all four files".to_string()
    } else {
        format!("missing {}", missing.join(", "))
    }
}

fn holds_all_files(dir: &Path) -> bool {
    FILES.iter().all(|f| locate_file(dir, f).is_some())
}

/// Find the MNIST directory: `explicit` (a `--data DIR` flag) if given, else `$NNDL_DATA`, else
/// `data/mnist` in the current directory or any of its ancestors, else the repository's
/// `data/mnist` beside this crate's source. The error lists every place looked at and how to
/// get the files.
pub fn find_data_dir(explicit: Option<&Path>) -> Result<PathBuf> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let fallback = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(DEFAULT_DATA_DIR);
    find_data_dir_in(explicit, std::env::var_os(DATA_ENV), &cwd, Some(&fallback))
}

/// The candidate directories in search order, each with where it came from.
fn candidates(
    explicit: Option<&Path>,
    env: Option<OsString>,
    cwd: &Path,
    fallback: Option<&Path>,
) -> Vec<(PathBuf, &'static str)> {
    if let Some(dir) = explicit {
        return vec![(dir.to_path_buf(), "--data")];
    }
    if let Some(dir) = env.filter(|v| !v.is_empty()) {
        return vec![(PathBuf::from(dir), DATA_ENV)];
    }
    let mut v: Vec<(PathBuf, &'static str)> = cwd
        .ancestors()
        .map(|a| {
            (
                a.join(DEFAULT_DATA_DIR),
                "searched upward from the current directory",
            )
        })
        .collect();
    if let Some(f) = fallback {
        v.push((f.to_path_buf(), "the nndl source tree"));
    }
    v
}

/// [`find_data_dir`] with its inputs explicit (testable without touching the environment).
fn find_data_dir_in(
    explicit: Option<&Path>,
    env: Option<OsString>,
    cwd: &Path,
    fallback: Option<&Path>,
) -> Result<PathBuf> {
    let cands = candidates(explicit, env, cwd, fallback);
    if let Some((dir, _)) = cands.iter().find(|(d, _)| holds_all_files(d)) {
        return Ok(dir.clone());
    }
    Err(Error::DataNotFound {
        searched: cands
            .into_iter()
            .map(|(d, from)| {
                let why = format!("{from}: {}", describe_dir(&d));
                (d, why)
            })
            .collect(),
        missing: FILES.iter().map(|f| format!("{}[.gz]", f.name)).collect(),
    })
}

/// Where `--download` should put the files: `explicit`, else `$NNDL_DATA`, else the first
/// existing `data/mnist` above the current directory, else `./data/mnist`.
pub fn download_dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(d) = explicit {
        return d.to_path_buf();
    }
    if let Some(d) = std::env::var_os(DATA_ENV).filter(|v| !v.is_empty()) {
        return PathBuf::from(d);
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    cwd.ancestors()
        .map(|a| a.join(DEFAULT_DATA_DIR))
        .find(|d| d.is_dir())
        .unwrap_or_else(|| cwd.join(DEFAULT_DATA_DIR))
}

/// Hex MD5 of `bytes`.
pub fn md5_hex(bytes: &[u8]) -> String {
    hex(&Md5::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex MD5 of a file's uncompressed bytes (decompressed first if it is gzip), streamed.
///
/// At most [`idx::MAX_DATA_BYTES`] plus an images header are hashed: a file that uncompresses
/// to more is no IDX file nndl reads, and is refused with [`Error::TooLong`] rather than
/// inflated to the end (a few MB of gzip can hold terabytes).
pub fn uncompressed_md5(path: impl AsRef<Path>) -> Result<String> {
    let limit = idx::MAX_DATA_BYTES + IdxKind::Images.header_len() as u64;
    md5_up_to(path.as_ref(), limit, "more than any IDX file nndl reads")
}

/// Hex MD5 of at most `limit` uncompressed bytes of `path`; more is [`Error::TooLong`].
fn md5_up_to(path: &Path, limit: u64, why: &'static str) -> Result<String> {
    let io_err = |action: &'static str| {
        move |source: io::Error| Error::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    };
    let file = File::open(path).map_err(io_err("open"))?;
    let mut reader = BufReader::with_capacity(1 << 16, file);
    let mut sniff = [0u8; 2];
    let n = crate::idx::read_prefix(&mut reader, &mut sniff).map_err(io_err("read"))?;
    let head = io::Cursor::new(sniff[..n].to_vec());
    let mut hasher = Md5::new();
    // One byte past the limit tells a file that is too long from one that is exactly long.
    let hashed = if sniff[..n] == GZIP_MAGIC {
        let r = MultiGzDecoder::new(BufReader::new(head.chain(reader)));
        io::copy(&mut r.take(limit + 1), &mut hasher).map_err(|source| Error::Gzip {
            path: path.to_path_buf(),
            source,
        })?
    } else {
        io::copy(&mut head.chain(reader).take(limit + 1), &mut hasher).map_err(io_err("read"))?
    };
    if hashed > limit {
        return Err(Error::TooLong {
            path: path.to_path_buf(),
            limit,
            why,
        });
    }
    Ok(hex(&hasher.finalize()))
}

/// Check the uncompressed MD5 of each of the four files in `dir` against the official one.
/// No file is inflated past its official size.
pub fn verify_dir(dir: impl AsRef<Path>) -> Result<()> {
    let dir = dir.as_ref();
    for f in &FILES {
        let p = require_file(dir, f)?;
        let found = md5_up_to(&p, f.uncompressed_len, "the official file's size")?;
        if found != f.md5 {
            return Err(Error::Checksum {
                source_name: p.display().to_string(),
                file: f.name,
                expected: f.md5,
                found,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{real_data, repo_data_dir, TempDir};
    use std::fs;
    use test_support::assert_matches;

    #[test]
    fn sizes_of_the_split() {
        let d = real_data();
        assert_eq!(d.training.len(), 50_000);
        assert_eq!(d.validation.len(), 10_000);
        assert_eq!(d.test.len(), 10_000);
        for s in [&d.training, &d.validation, &d.test] {
            assert_eq!((s.rows(), s.cols()), (28, 28));
            assert_eq!(s.images().len(), s.len() * 784);
        }
    }

    #[test]
    fn first_ten_test_labels() {
        assert_eq!(
            &real_data().test.labels()[..10],
            &[7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
        );
    }

    #[test]
    fn validation_is_the_tail_of_the_train_files() {
        let d = real_data();
        // The first training label of MNIST is 5, the last train-file label is 8.
        assert_eq!(d.training.label(0), 5);
        assert_eq!(d.validation.label(9_999), 8);
        assert_eq!(d.validation.labels()[..5], [3, 8, 6, 9, 6]);
    }

    #[test]
    fn class_counts_of_each_split() {
        let d = real_data();
        assert_eq!(
            d.training.class_counts(),
            [4932, 5678, 4968, 5101, 4859, 4506, 4951, 5175, 4842, 4988]
        );
        assert_eq!(
            d.validation.class_counts(),
            [991, 1064, 990, 1030, 983, 915, 967, 1090, 1009, 961]
        );
        assert_eq!(
            d.test.class_counts(),
            [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
        );
    }

    #[test]
    fn official_md5_of_each_uncompressed_file() {
        let dir = repo_data_dir();
        let want = [
            (
                "train-images-idx3-ubyte",
                "6bbc9ace898e44ae57da46a324031adb",
            ),
            (
                "train-labels-idx1-ubyte",
                "a25bea736e30d166cdddb491f175f624",
            ),
            ("t10k-images-idx3-ubyte", "2646ac647ad5339dbf082846283269ea"),
            ("t10k-labels-idx1-ubyte", "27ae3e4e09519cfbb04c329615203637"),
        ];
        for (f, (name, md5)) in FILES.iter().zip(want) {
            assert_eq!((f.name, f.md5), (name, md5));
            let p = dir.join(format!("{name}.gz"));
            assert_eq!(uncompressed_md5(&p).unwrap(), md5, "{name}");
        }
        verify_dir(&dir).unwrap();
    }

    #[test]
    fn verify_dir_inflates_no_file_past_its_official_size() {
        let dir = TempDir::new("verify-bomb");
        dir.copy_from_repo(&FILES);
        // 64 MiB of zeros (64 KB of gzip) in place of the 10,008-byte test labels.
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let block = vec![0u8; 1 << 20];
        for _ in 0..64 {
            std::io::Write::write_all(&mut e, &block).unwrap();
        }
        let p = dir.path().join(TEST_LABELS.gz_name());
        fs::write(&p, e.finish().unwrap()).unwrap();
        let err = verify_dir(dir.path()).unwrap_err();
        assert_matches!(err => Error::TooLong { limit: 10_008, .. });
        let msg = err.to_string();
        assert!(
            msg.contains("t10k-labels-idx1-ubyte.gz: uncompresses to more than 10008 bytes"),
            "{msg}"
        );
        // Hashing a file on its own stops at the largest IDX file nndl reads.
        assert!(uncompressed_md5(&p).is_ok());
    }

    #[test]
    fn verify_dir_catches_a_modified_file() {
        let dir = TempDir::new("verify");
        dir.copy_from_repo(&FILES);
        // Replace the test labels by a valid file with one label changed.
        let lp = dir.path().join(TEST_LABELS.gz_name());
        let mut labels = idx::read_labels(&lp).unwrap();
        labels[0] = 3;
        fs::remove_file(&lp).unwrap();
        idx::write_labels(dir.path().join(TEST_LABELS.name), &labels, idx::Format::Raw).unwrap();
        let err = verify_dir(dir.path()).unwrap_err();
        assert_matches!(err => Error::Checksum { file: "t10k-labels-idx1-ubyte", .. });
        // The raw file is found and loads (the loader itself does not checksum).
        assert_eq!(load_data(dir.path()).unwrap().test.label(0), 3);
    }

    #[test]
    fn a_missing_file_says_where_it_looked_and_how_to_get_it() {
        let dir = TempDir::new("missing");
        dir.copy_from_repo([&TRAIN_IMAGES]);
        let err = load_data(dir.path()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("train-labels-idx1-ubyte"), "{msg}");
        assert!(msg.contains(&dir.path().display().to_string()), "{msg}");
        assert!(msg.contains("--download"), "{msg}");
        assert!(msg.contains("copy data/mnist/"), "{msg}");
    }

    #[test]
    fn data_dir_search_order() {
        let root = TempDir::new("find");
        let deep = root.subdir("a/b/c");
        let data = root.subdir("a/data/mnist");
        for f in &FILES {
            // Empty placeholder files: finding only checks presence.
            fs::write(data.join(f.gz_name()), b"").unwrap();
        }
        // Upward search from a/b/c finds a/data/mnist.
        assert_eq!(find_data_dir_in(None, None, &deep, None).unwrap(), data);
        // The environment variable wins over the upward search, and --data over both.
        let other = root.subdir("other");
        let err = find_data_dir_in(None, Some(other.clone().into()), &deep, None).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("NNDL_DATA") && msg.contains("missing train-images"),
            "{msg}"
        );
        let err =
            find_data_dir_in(Some(&other), Some(data.clone().into()), &deep, None).unwrap_err();
        assert!(err.to_string().contains("--data"), "{err}");
        assert_eq!(
            find_data_dir_in(Some(&data), Some(other.into()), &deep, None).unwrap(),
            data
        );
        // Nothing upward: the fallback is used; without it, every place looked at is listed.
        let lonely = TempDir::new("find-none");
        assert_eq!(
            find_data_dir_in(None, None, lonely.path(), Some(&data)).unwrap(),
            data
        );
        let err =
            find_data_dir_in(None, None, lonely.path(), Some(&root.path().join("x"))).unwrap_err();
        let msg = err.to_string();
        let wanted = lonely.path().join("data/mnist");
        assert!(msg.contains(&wanted.display().to_string()), "{msg}");
        assert!(
            msg.contains(&format!("{} (", root.path().join("x").display())),
            "{msg}"
        );
        assert!(msg.contains("/data/mnist (searched upward"), "{msg}");
        assert!(msg.contains("does not exist"), "{msg}");
        assert!(msg.contains("--download"), "{msg}");
        let n_ancestors = lonely.path().ancestors().count();
        assert_eq!(msg.matches("\n  ").count(), n_ancestors + 1, "{msg}");
    }

    #[test]
    fn expanded_files_missing_say_how_to_make_them() {
        let dir = TempDir::new("noexp");
        let err = load_data_expanded(dir.path()).unwrap_err();
        assert_matches!(err => Error::ExpandedNotFound { .. });
        assert!(err.to_string().contains("mnist_expand"), "{err}");
    }

    #[test]
    fn expanded_training_set_replaces_the_training_data() {
        let dir = TempDir::new("exp");
        dir.copy_from_repo(&FILES);
        let small = crate::expand(&real_data().training.take(100), 1);
        // Raw images, gzip labels: both names are accepted.
        idx::write_images(
            dir.path().join(EXPANDED_IMAGES),
            small.images(),
            small.len(),
            28,
            28,
            idx::Format::Raw,
        )
        .unwrap();
        let err = load_data_expanded(dir.path()).unwrap_err();
        assert!(err.to_string().contains(EXPANDED_LABELS), "{err}");
        assert!(!err.to_string().contains(EXPANDED_IMAGES), "{err}");
        idx::write_labels(
            dir.path().join(format!("{EXPANDED_LABELS}.gz")),
            small.labels(),
            idx::Format::Gzip,
        )
        .unwrap();
        let d = load_data_expanded(dir.path()).unwrap();
        assert_eq!(d.training, small);
        assert_eq!(d.validation.len(), 10_000);
        assert_eq!(d.test.labels()[..3], [7, 2, 1]);
    }

    #[test]
    fn wrong_sized_train_file_is_rejected() {
        let dir = TempDir::new("wrongcount");
        dir.copy_from_repo(&FILES);
        // Swap in a 100-record train set.
        let small = real_data().training.take(100);
        fs::remove_file(dir.path().join(TRAIN_IMAGES.gz_name())).unwrap();
        fs::remove_file(dir.path().join(TRAIN_LABELS.gz_name())).unwrap();
        idx::write_dataset(
            dir.path().join(TRAIN_IMAGES.gz_name()),
            dir.path().join(TRAIN_LABELS.gz_name()),
            &small,
            idx::Format::Gzip,
        )
        .unwrap();
        let err = load_data(dir.path()).unwrap_err();
        assert_matches!(err => Error::WrongRecordCount { expected: 60_000, found: 100, .. });
    }
}
