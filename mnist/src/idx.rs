//! IDX files, the format MNIST is distributed in: read (gzip or raw) and write (atomically).
//!
//! Layout (big-endian): an images file is magic 2051 (0x00000803), count, rows, cols, then
//! count*rows*cols pixel bytes; a labels file is magic 2049 (0x00000801), count, then count label
//! bytes. Compression is detected by content (a gzip file starts with 1f 8b; an IDX file with
//! 00 00), never by file name.
//!
//! The reader checks the magic number, the dimensions, that the file holds exactly the bytes its
//! header declares (no fewer, no more) and that labels are digits 0-9. It never allocates what a
//! header claims before knowing the data is there: a raw file's size is checked against the
//! header first, and a gzip stream is read incrementally, at most one byte past what the header
//! declares (and never reserving more than the compressed size could expand to). A header
//! declaring more than [`MAX_DATA_BYTES`] is refused before any data is read, callers that
//! know the count they need (the official files: 60,000 and 10,000) refuse any other from the
//! header alone, and every allocation is a `try_reserve`: memory that cannot be had is an
//! error, never an abort.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::path::Path;

use flate2::bufread::MultiGzDecoder;
use flate2::write::GzEncoder;

use crate::dataset::Dataset;
use crate::error::{Error, IdxKind, Result};

/// The two bytes every gzip file starts with.
pub const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Deflate cannot expand data by more than about 1032:1; used to bound what a gzip file of a
/// given size is allowed to make us reserve up front.
const MAX_DEFLATE_RATIO: u64 = 1032;

/// What is reserved up front for a stream (gzip, pipe) before its data is seen: enough for
/// MNIST's largest official file (47 MB) in one go; larger data grows the buffer as it arrives.
const STREAM_RESERVE: u64 = 1 << 26;

/// The most data bytes (after the header) one IDX file may declare: 2 GiB, 2.7 million 28x28
/// images. MNIST's largest file holds 47 MB and the expanded training set 196 MB. A header
/// declaring more is refused before anything is read or inflated: a 6 MB gzip file can
/// truthfully declare and hold 6 GB of zeros.
pub const MAX_DATA_BYTES: u64 = 1 << 31;

/// Bytes read from the source per step while the data is collected.
const CHUNK: usize = 1 << 16;

/// Images read from an IDX file: `count` images of `rows` x `cols` u8 pixels, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Images {
    /// Number of images.
    pub count: usize,
    /// Rows per image.
    pub rows: usize,
    /// Columns per image.
    pub cols: usize,
    /// `count * rows * cols` pixels, image after image, each row-major (0 = background).
    pub pixels: Vec<u8>,
}

/// How [`write_images`] and [`write_labels`] encode the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Plain IDX bytes.
    Raw,
    /// IDX bytes gzip-compressed (level 6, no name, mtime 0: the same input gives the same file).
    #[default]
    Gzip,
}

/// Whether `bytes` start like a gzip stream.
pub fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&GZIP_MAGIC)
}

/// Read an IDX images file (magic 2051), gzip-compressed or raw.
///
/// A header declaring more than [`MAX_DATA_BYTES`] is refused before any data is read, and
/// memory that cannot be had is an [`Error::OutOfMemory`], not an abort.
pub fn read_images(path: impl AsRef<Path>) -> Result<Images> {
    read_images_checked(path.as_ref(), |_| Ok(()))
}

/// [`read_images`], with `check` given the header's dimensions (count, rows, cols) before any
/// data is read: a count or size the caller cannot use is refused without inflating anything.
pub(crate) fn read_images_checked(
    path: &Path,
    check: impl FnOnce(&[u32]) -> Result<()>,
) -> Result<Images> {
    let (dims, pixels) = read_idx(path, IdxKind::Images, check)?;
    let (count, rows, cols) = (dims[0], dims[1], dims[2]);
    Ok(Images {
        count: to_usize(path, count)?,
        rows: to_usize(path, rows)?,
        cols: to_usize(path, cols)?,
        pixels,
    })
}

/// Read an IDX labels file (magic 2049), gzip-compressed or raw; every label must be 0-9.
/// Bounded as [`read_images`] is.
pub fn read_labels(path: impl AsRef<Path>) -> Result<Vec<u8>> {
    read_labels_checked(path.as_ref(), |_| Ok(()))
}

/// [`read_labels`], with `check` given the header's count before any data is read.
pub(crate) fn read_labels_checked(
    path: &Path,
    check: impl FnOnce(u32) -> Result<()>,
) -> Result<Vec<u8>> {
    let (_, labels) = read_idx(path, IdxKind::Labels, |dims| check(dims[0]))?;
    if let Some(index) = labels.iter().position(|&l| l > 9) {
        return Err(Error::BadLabel {
            path: path.to_path_buf(),
            index,
            value: labels[index],
        });
    }
    Ok(labels)
}

/// Read an images file and its labels file into a [`Dataset`], checking the counts agree.
///
/// The labels are read first (a byte per record): an images file whose header declares
/// another count is then refused before its pixels are read.
pub fn read_dataset(
    images_path: impl AsRef<Path>,
    labels_path: impl AsRef<Path>,
) -> Result<Dataset> {
    let (images_path, labels_path) = (images_path.as_ref(), labels_path.as_ref());
    let labels = read_labels(labels_path)?;
    let images = read_images_checked(images_path, |dims| {
        if u64::from(dims[0]) != labels.len() as u64 {
            return Err(Error::CountMismatch {
                images_path: images_path.to_path_buf(),
                labels_path: labels_path.to_path_buf(),
                images: u64::from(dims[0]),
                labels: labels.len() as u64,
            });
        }
        Ok(())
    })?;
    Dataset::new(images.pixels, labels, images.rows, images.cols)
}

fn to_usize(path: &Path, v: u32) -> Result<usize> {
    usize::try_from(v).map_err(|_| Error::AbsurdHeader {
        path: path.to_path_buf(),
        count: u64::from(v),
        record_bytes: 1,
    })
}

/// Read the first bytes of `r` into `buf`, stopping early only at end of input.
pub(crate) fn read_prefix(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Read an IDX file of the given kind: returns the header's dimensions and the data bytes.
/// `check` sees the dimensions before any data is read.
fn read_idx(
    path: &Path,
    kind: IdxKind,
    check: impl FnOnce(&[u32]) -> Result<()>,
) -> Result<(Vec<u32>, Vec<u8>)> {
    let file = File::open(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        action: "open",
        source,
    })?;
    let meta = file.metadata().map_err(|source| Error::Io {
        path: path.to_path_buf(),
        action: "read the size of",
        source,
    })?;
    // The size of a regular file bounds what it holds; a pipe or device has no known size.
    let file_len = meta.is_file().then_some(meta.len());
    read_idx_from(path, kind, file, file_len, check)
}

/// [`read_idx`] of any byte source; `file_len` is its size when known (a regular file), and
/// `path` names it in errors.
fn read_idx_from(
    path: &Path,
    kind: IdxKind,
    file: impl Read,
    file_len: Option<u64>,
    check: impl FnOnce(&[u32]) -> Result<()>,
) -> Result<(Vec<u32>, Vec<u8>)> {
    let io_err = |action: &'static str| {
        move |source: io::Error| Error::Io {
            path: path.to_path_buf(),
            action,
            source,
        }
    };
    let mut reader = BufReader::with_capacity(CHUNK, file);

    let mut sniff = [0u8; 2];
    let sniffed = read_prefix(&mut reader, &mut sniff).map_err(io_err("read"))?;
    let gzip = is_gzip(&sniff[..sniffed]);
    let head = io::Cursor::new(sniff[..sniffed].to_vec());

    if gzip {
        let mut source = MultiGzDecoder::new(BufReader::new(head.chain(reader)));
        let gz_err = |source: io::Error| Error::Gzip {
            path: path.to_path_buf(),
            source,
        };
        let (dims, expected) = read_header(path, kind, &mut source, gz_err)?;
        check(&dims)?;
        // Reserve at most what the compressed bytes could possibly expand to.
        let bound = file_len.map_or(STREAM_RESERVE, |n| {
            n.saturating_mul(MAX_DEFLATE_RATIO).min(STREAM_RESERVE)
        });
        let data = read_bounded(path, &mut source, expected, bound, gz_err)?;
        check_length(path, expected, data.len() as u64, None)?;
        Ok((dims, data))
    } else if file_len.is_none() {
        // Not a regular file (a pipe, say): read incrementally, as for gzip.
        let mut source = head.chain(reader);
        let (dims, expected) = read_header(path, kind, &mut source, io_err("read"))?;
        check(&dims)?;
        let data = read_bounded(path, &mut source, expected, STREAM_RESERVE, io_err("read"))?;
        check_length(path, expected, data.len() as u64, None)?;
        Ok((dims, data))
    } else {
        let mut source = head.chain(reader);
        let (dims, expected) = read_header(path, kind, &mut source, io_err("read"))?;
        check(&dims)?;
        let available = file_len
            .unwrap_or(0)
            .saturating_sub(kind.header_len() as u64);
        check_length(path, expected, available, Some(available))?;
        // The size on disk matches the header, so reserving `expected` is backed by real data.
        let data = read_bounded(path, &mut source, expected, expected, io_err("read"))?;
        // A difference now means the file shrank or grew while we read it.
        check_length(path, expected, data.len() as u64, None)?;
        Ok((dims, data))
    }
}

/// Read at most `expected + 1` bytes (one more reveals trailing data), growing the buffer as
/// data arrives: at most `min(expected, reserve_bound)` is reserved up front, and every
/// allocation is a `try_reserve`, so memory that cannot be had is [`Error::OutOfMemory`].
fn read_bounded(
    path: &Path,
    source: &mut impl Read,
    expected: u64,
    reserve_bound: u64,
    on_err: impl Fn(io::Error) -> Error,
) -> Result<Vec<u8>> {
    let limit = expected.saturating_add(1);
    let mut data: Vec<u8> = Vec::new();
    reserve_to(path, &mut data, expected.min(reserve_bound), expected)?;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let room = limit - data.len() as u64;
        if room == 0 {
            break;
        }
        let want = room.min(CHUNK as u64) as usize;
        let n = match source.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(on_err(e)),
        };
        if data.capacity() - data.len() < n {
            // Double, as Vec would, but never past the limit.
            let len = data.len() as u64;
            let target = (data.capacity() as u64)
                .saturating_mul(2)
                .max(len + n as u64)
                .max(CHUNK as u64)
                .min(limit);
            reserve_to(path, &mut data, target, expected)?;
        }
        data.extend_from_slice(&buf[..n]);
    }
    Ok(data)
}

/// Grow `data`'s capacity to `total` bytes, or say memory cannot hold them.
fn reserve_to(path: &Path, data: &mut Vec<u8>, total: u64, expected: u64) -> Result<()> {
    let oom = || Error::OutOfMemory {
        path: path.to_path_buf(),
        bytes: total,
        expected,
    };
    let total = usize::try_from(total).map_err(|_| oom())?;
    let additional = total.saturating_sub(data.len());
    data.try_reserve_exact(additional).map_err(|_| oom())
}

/// `found` data bytes against the `expected` the header declares.
fn check_length(path: &Path, expected: u64, found: u64, exact_found: Option<u64>) -> Result<()> {
    if found < expected {
        Err(Error::Truncated {
            path: path.to_path_buf(),
            expected,
            found,
        })
    } else if found > expected {
        Err(Error::TrailingBytes {
            path: path.to_path_buf(),
            expected,
            excess: exact_found.map(|f| f - expected),
        })
    } else {
        Ok(())
    }
}

/// Parse and validate the header; returns the dimensions and the data length they declare.
fn read_header(
    path: &Path,
    kind: IdxKind,
    source: &mut impl Read,
    on_err: impl Fn(io::Error) -> Error,
) -> Result<(Vec<u32>, u64)> {
    let needed = kind.header_len();
    let mut header = [0u8; 16];
    let got = read_prefix(source, &mut header[..needed]).map_err(&on_err)?;
    let word =
        |i: usize| u32::from_be_bytes([header[i], header[i + 1], header[i + 2], header[i + 3]]);
    if got >= 4 && word(0) != kind.magic() {
        return Err(Error::BadMagic {
            path: path.to_path_buf(),
            kind,
            found: word(0),
        });
    }
    if got < needed {
        return Err(Error::HeaderTooShort {
            path: path.to_path_buf(),
            kind,
            found: got,
            needed,
        });
    }
    let dims: Vec<u32> = (4..needed).step_by(4).map(word).collect();
    let count = u64::from(dims[0]);
    let record_bytes = match kind {
        IdxKind::Labels => 1,
        IdxKind::Images => {
            let (rows, cols) = (dims[1], dims[2]);
            if rows == 0 || cols == 0 {
                return Err(Error::BadDimensions {
                    path: path.to_path_buf(),
                    detail: format!("images of {rows}x{cols} pixels"),
                });
            }
            u64::from(rows) * u64::from(cols)
        }
    };
    let absurd = || Error::AbsurdHeader {
        path: path.to_path_buf(),
        count,
        record_bytes,
    };
    let expected = count.checked_mul(record_bytes).ok_or_else(absurd)?;
    if expected > MAX_DATA_BYTES {
        return Err(Error::DeclaredTooLarge {
            path: path.to_path_buf(),
            count,
            record_bytes,
            limit: MAX_DATA_BYTES,
        });
    }
    Ok((dims, expected))
}

/// Write an IDX images file atomically (temp file in the same directory, fsync, rename).
pub fn write_images(
    path: impl AsRef<Path>,
    pixels: &[u8],
    count: usize,
    rows: usize,
    cols: usize,
    format: Format,
) -> Result<()> {
    let dims = [count, rows, cols];
    let expected = count.checked_mul(rows).and_then(|n| n.checked_mul(cols));
    if expected != Some(pixels.len()) {
        return Err(Error::Invalid {
            what: "IDX images",
            detail: format!(
                "{} pixel bytes for {count} images of {rows}x{cols}",
                pixels.len()
            ),
        });
    }
    write_idx(path.as_ref(), IdxKind::Images, &dims, pixels, format)
}

/// Write an IDX labels file atomically; every label must be 0-9.
pub fn write_labels(path: impl AsRef<Path>, labels: &[u8], format: Format) -> Result<()> {
    if let Some(i) = labels.iter().position(|&l| l > 9) {
        return Err(Error::Invalid {
            what: "IDX labels",
            detail: format!("label {} at record {i} is not a digit 0-9", labels[i]),
        });
    }
    write_idx(
        path.as_ref(),
        IdxKind::Labels,
        &[labels.len()],
        labels,
        format,
    )
}

/// Write a dataset as an images file and a labels file.
///
/// ```
/// use nndl_mnist::idx::{self, Format};
/// use nndl_mnist::Dataset;
///
/// let data = Dataset::new((0..=255).chain(0..=255).collect(), vec![7, 1], 16, 16)?;
/// let dir = std::env::temp_dir().join(format!("nndl-doc-idx-{}", std::process::id()));
/// std::fs::create_dir_all(&dir)?;
/// let (images, labels) = (dir.join("images-idx3-ubyte.gz"), dir.join("labels-idx1-ubyte"));
/// idx::write_dataset(&images, &labels, &data, Format::Gzip)?;
/// idx::write_labels(&labels, data.labels(), Format::Raw)?; // either format reads back
///
/// assert_eq!(idx::read_dataset(&images, &labels)?, data);
/// let raw = idx::read_images(&images)?;
/// assert_eq!((raw.count, raw.rows, raw.cols), (2, 16, 16));
/// assert!(idx::is_gzip(&std::fs::read(&images)?));
/// // The labels file: magic 2049 (0x801), then the count, then a byte per label.
/// assert_eq!(std::fs::read(&labels)?, [0, 0, 8, 1, 0, 0, 0, 2, 7, 1]);
/// std::fs::remove_dir_all(&dir)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn write_dataset(
    images_path: impl AsRef<Path>,
    labels_path: impl AsRef<Path>,
    data: &Dataset,
    format: Format,
) -> Result<()> {
    write_images(
        images_path,
        data.images(),
        data.len(),
        data.rows(),
        data.cols(),
        format,
    )?;
    write_labels(labels_path, data.labels(), format)
}

/// The IDX header for `kind` with dimensions `dims`.
pub(crate) fn header_bytes(kind: IdxKind, dims: &[usize]) -> Result<Vec<u8>> {
    let mut header = kind.magic().to_be_bytes().to_vec();
    for &d in dims {
        let d = u32::try_from(d).map_err(|_| Error::Invalid {
            what: "IDX header",
            detail: format!("dimension {d} does not fit in 32 bits"),
        })?;
        header.extend_from_slice(&d.to_be_bytes());
    }
    Ok(header)
}

fn write_idx(
    path: &Path,
    kind: IdxKind,
    dims: &[usize],
    data: &[u8],
    format: Format,
) -> Result<()> {
    let header = header_bytes(kind, dims)?;
    let written = atomic_file::write(path, |w| match format {
        Format::Raw => {
            w.write_all(&header)?;
            w.write_all(data)
        }
        Format::Gzip => {
            let mut gz = GzEncoder::new(w, flate2::Compression::new(6));
            gz.write_all(&header)?;
            gz.write_all(data)?;
            gz.finish()?;
            Ok(())
        }
    });
    written.map_err(|source| Error::Io {
        path: path.to_path_buf(),
        action: "write",
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;
    use std::fs;
    use test_support::{assert_matches, gzip_bomb as bomb};

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    fn images_bytes(count: u32, rows: u32, cols: u32, data: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for w in [2051, count, rows, cols] {
            v.extend_from_slice(&u32::to_be_bytes(w));
        }
        v.extend_from_slice(data);
        v
    }

    fn labels_bytes(count: u32, data: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        for w in [2049, count] {
            v.extend_from_slice(&u32::to_be_bytes(w));
        }
        v.extend_from_slice(data);
        v
    }

    /// Write `bytes` to `name` in `dir`, both raw and gzip-compressed; returns (raw, gz) paths.
    fn both(dir: &TempDir, name: &str, bytes: &[u8]) -> [std::path::PathBuf; 2] {
        let raw = dir.path().join(name);
        let gz = dir.path().join(format!("{name}.gz"));
        fs::write(&raw, bytes).unwrap();
        fs::write(&gz, gzip(bytes)).unwrap();
        [raw, gz]
    }

    fn pixels(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 37 % 256) as u8).collect()
    }

    #[test]
    fn reads_raw_and_gzip_alike_whatever_the_name() {
        let dir = TempDir::new("idx-ok");
        let px = pixels(3 * 4 * 5);
        for p in both(&dir, "imgs", &images_bytes(3, 4, 5, &px)) {
            let im = read_images(&p).unwrap();
            assert_eq!((im.count, im.rows, im.cols), (3, 4, 5));
            assert_eq!(im.pixels, px);
        }
        // A gzip file without a .gz name and a raw file with one are both detected by content.
        let odd = dir.path().join("raw-named.gz");
        fs::write(&odd, labels_bytes(3, &[1, 2, 3])).unwrap();
        assert_eq!(read_labels(&odd).unwrap(), vec![1, 2, 3]);
        let odd = dir.path().join("gz-named.idx");
        fs::write(&odd, gzip(&labels_bytes(2, &[9, 0]))).unwrap();
        assert_eq!(read_labels(&odd).unwrap(), vec![9, 0]);
    }

    #[test]
    fn zero_records_is_a_valid_empty_file() {
        let dir = TempDir::new("idx-empty");
        for p in both(&dir, "l", &labels_bytes(0, &[])) {
            assert_eq!(read_labels(&p).unwrap(), Vec::<u8>::new());
        }
    }

    #[test]
    fn truncated_data_is_rejected() {
        let dir = TempDir::new("idx-trunc");
        let px = pixels(2 * 28 * 28);
        let full = images_bytes(2, 28, 28, &px);
        for p in both(&dir, "imgs", &full[..full.len() - 5]) {
            let err = read_images(&p).unwrap_err();
            assert_matches!(err => Error::Truncated { expected: 1568, found: 1563, .. });
            let msg = err.to_string();
            assert!(msg.contains("imgs") && msg.contains("truncated"), "{msg}");
        }
    }

    #[test]
    fn a_gzip_stream_cut_short_is_rejected() {
        let dir = TempDir::new("idx-gzcut");
        let gz = gzip(&images_bytes(2, 28, 28, &pixels(2 * 28 * 28)));
        let p = dir.path().join("cut.gz");
        fs::write(&p, &gz[..gz.len() - 12]).unwrap();
        let err = read_images(&p).unwrap_err();
        assert_matches!(err => Error::Gzip { .. } | Error::Truncated { .. });
        assert!(err.to_string().contains("cut.gz"));
    }

    #[test]
    fn header_cut_short_is_rejected() {
        let dir = TempDir::new("idx-head");
        let full = images_bytes(1, 2, 2, &[1, 2, 3, 4]);
        for p in both(&dir, "h", &full[..10]) {
            let err = read_images(&p).unwrap_err();
            assert_matches!(err => Error::HeaderTooShort { found: 10, needed: 16, .. });
        }
        for p in both(&dir, "empty", &[]) {
            let err = read_labels(&p).unwrap_err();
            assert_matches!(err => Error::HeaderTooShort { found: 0, .. });
        }
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let dir = TempDir::new("idx-trail");
        let mut bytes = labels_bytes(3, &[1, 2, 3]);
        bytes.extend_from_slice(&[0, 0]);
        let [raw, gz] = both(&dir, "l", &bytes);
        let err = read_labels(&raw).unwrap_err();
        assert_matches!(err => Error::TrailingBytes { expected: 3, excess: Some(2), .. });
        assert!(err.to_string().contains("2 extra bytes"), "{err}");
        let err = read_labels(&gz).unwrap_err();
        assert_matches!(err => Error::TrailingBytes { expected: 3, excess: None, .. });
    }

    #[test]
    fn wrong_magic_is_rejected() {
        let dir = TempDir::new("idx-magic");
        // A labels file given where images are expected, and vice versa, and garbage.
        for p in both(&dir, "labels-as-images", &labels_bytes(1, &[3])) {
            let err = read_images(&p).unwrap_err();
            assert_matches!(err => Error::BadMagic { found: 2049, kind: IdxKind::Images, .. });
            assert!(err.to_string().contains("this is a labels file"), "{err}");
        }
        for p in both(&dir, "images-as-labels", &images_bytes(1, 1, 1, &[3])) {
            let err = read_labels(&p).unwrap_err();
            assert_matches!(err => Error::BadMagic { found: 2051, .. });
        }
        let p = dir.path().join("text");
        fs::write(&p, b"hello, world, this is not IDX").unwrap();
        let err = read_labels(&p).unwrap_err();
        assert_matches!(err => Error::BadMagic { .. });
        assert!(
            err.to_string().contains("text: wrong magic number"),
            "{err}"
        );
    }

    #[test]
    fn corrupt_gzip_is_rejected() {
        let dir = TempDir::new("idx-badgz");
        let mut gz = gzip(&labels_bytes(100, &[5; 100]));
        let p = dir.path().join("bad.gz");
        // gzip magic then garbage.
        fs::write(&p, [0x1f, 0x8b, 0x00, 0x42, 0x42, 0x42, 0x42]).unwrap();
        let err = read_labels(&p).unwrap_err();
        assert_matches!(err => Error::Gzip { .. });
        assert!(
            err.to_string().contains("bad.gz: not a valid gzip stream"),
            "{err}"
        );
        // A flipped byte in the CRC-32 trailer.
        let n = gz.len();
        gz[n - 6] ^= 0xff;
        fs::write(&p, &gz).unwrap();
        let err = read_labels(&p).unwrap_err();
        assert_matches!(err => Error::Gzip { .. });
    }

    #[test]
    fn a_label_above_nine_is_rejected() {
        let dir = TempDir::new("idx-label");
        for p in both(&dir, "l", &labels_bytes(4, &[0, 9, 11, 3])) {
            let err = read_labels(&p).unwrap_err();
            assert_matches!(err => Error::BadLabel { index: 2, value: 11, .. });
            assert!(err.to_string().contains("label 11 of record 2"), "{err}");
        }
    }

    #[test]
    fn image_and_label_counts_must_agree() {
        let dir = TempDir::new("idx-count");
        let [im, _] = both(&dir, "im", &images_bytes(3, 2, 2, &pixels(12)));
        let [_, lb] = both(&dir, "lb", &labels_bytes(2, &[1, 2]));
        let err = read_dataset(&im, &lb).unwrap_err();
        assert_matches!(err => Error::CountMismatch { images: 3, labels: 2, .. });
        let msg = err.to_string();
        assert!(
            msg.contains("holds 3 images") && msg.contains("2 labels"),
            "{msg}"
        );
    }

    #[test]
    fn absurd_headers_give_errors_not_huge_allocations() {
        let dir = TempDir::new("idx-absurd");
        // 4 billion 28x28 images (3 TB) declared, 100 bytes present: refused from the header.
        for p in both(&dir, "huge", &images_bytes(u32::MAX, 28, 28, &[0; 100])) {
            let err = read_images(&p).unwrap_err();
            assert_matches!(err => Error::DeclaredTooLarge {
                count: 4_294_967_295, record_bytes: 784, limit: MAX_DATA_BYTES, ..
            });
            let msg = err.to_string();
            assert!(
                msg.contains("huge") && msg.contains("3367254359280 bytes"),
                "{msg}"
            );
        }
        // 4 billion labels.
        for p in both(&dir, "hugel", &labels_bytes(u32::MAX, &[1; 10])) {
            let err = read_labels(&p).unwrap_err();
            assert_matches!(err => Error::DeclaredTooLarge { .. });
        }
        // Under the limit but not there: truncated.
        for p in both(&dir, "short", &images_bytes(2_000_000, 28, 28, &[0; 100])) {
            let err = read_images(&p).unwrap_err();
            assert_matches!(err => Error::Truncated { expected: 1_568_000_000, found: 100, .. });
        }
        // Maximal everything: 2^96 bytes cannot even be counted in 64 bits.
        for p in both(
            &dir,
            "max",
            &images_bytes(u32::MAX, u32::MAX, u32::MAX, &[]),
        ) {
            let err = read_images(&p).unwrap_err();
            assert_matches!(err => Error::AbsurdHeader { .. });
        }
        // Zero-sized images.
        for p in both(&dir, "zero", &images_bytes(5, 0, 28, &[])) {
            let err = read_images(&p).unwrap_err();
            assert_matches!(err => Error::BadDimensions { .. });
        }
    }

    /// A reader that counts the bytes taken from it.
    struct Counting<R> {
        inner: R,
        taken: std::rc::Rc<std::cell::Cell<u64>>,
    }

    impl<R: Read> Read for Counting<R> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.inner.read(buf)?;
            self.taken.set(self.taken.get() + n as u64);
            Ok(n)
        }
    }

    /// A header's dimensions and the data behind it.
    type Header = (Vec<u32>, Vec<u8>);

    /// `read_idx_from` over `bytes` through a counting reader: the result and the compressed
    /// bytes taken.
    fn read_counted(
        bytes: &[u8],
        check: impl FnOnce(&[u32]) -> Result<()>,
    ) -> (Result<Header>, u64) {
        let taken = std::rc::Rc::new(std::cell::Cell::new(0));
        let source = Counting {
            inner: bytes,
            taken: taken.clone(),
        };
        let got = read_idx_from(
            Path::new("bomb.gz"),
            IdxKind::Images,
            source,
            Some(bytes.len() as u64),
            check,
        );
        (got, taken.get())
    }

    #[test]
    fn a_gzip_bomb_declaring_too_much_is_refused_before_inflating() {
        // 7.7 million images (6 GB) declared, 32 MiB of zeros behind the header (32 KB of gzip).
        let gz = bomb(7_700_000, 32 << 20);
        let (got, taken) = read_counted(&gz, |_| Ok(()));
        let err = got.unwrap_err();
        assert_matches!(err => Error::DeclaredTooLarge { count: 7_700_000, .. });
        assert!(err.to_string().contains("bomb.gz"), "{err}");
        // One buffer's worth of the compressed file at most: nothing behind the header.
        assert!(taken <= CHUNK as u64, "took {taken} of {} bytes", gz.len());
        assert!(gz.len() as u64 > CHUNK as u64 / 4, "{}", gz.len());
    }

    #[test]
    fn a_count_the_caller_cannot_use_is_refused_before_inflating() {
        // 2.6 million images (2 GB, under the limit) declared: a caller that needs 60,000
        // refuses the header, and the data behind it is never inflated.
        let gz = bomb(2_600_000, 32 << 20);
        let (got, taken) = read_counted(&gz, |dims| {
            if dims[0] != 60_000 {
                return Err(Error::WrongRecordCount {
                    path: "bomb.gz".into(),
                    expected: 60_000,
                    found: u64::from(dims[0]),
                    why: "test",
                });
            }
            Ok(())
        });
        assert_matches!(got => Err(Error::WrongRecordCount { found: 2_600_000, .. }));
        assert!(taken <= CHUNK as u64, "took {taken} of {} bytes", gz.len());
        // Without such a check, only the data actually there is inflated, then refused.
        let (got, taken) = read_counted(&gz, |_| Ok(()));
        assert_matches!(got => Err(Error::Truncated {
            expected: 2_038_400_000, found: 33_554_432, ..
        }));
        assert_eq!(taken, gz.len() as u64);
    }

    #[test]
    fn nothing_past_the_declared_data_is_inflated() {
        // 10 images declared, 64 MiB of zeros follow: stop one byte past the 7,840.
        let gz = bomb(10, 64 << 20);
        let (got, taken) = read_counted(&gz, |_| Ok(()));
        assert_matches!(got => Err(Error::TrailingBytes { expected: 7840, excess: None, .. }));
        assert!(
            taken <= 2 * CHUNK as u64,
            "took {taken} of {} bytes",
            gz.len()
        );
    }

    #[test]
    fn memory_that_cannot_be_had_is_an_error_not_an_abort() {
        let mut v = Vec::new();
        let err = reserve_to(Path::new("big"), &mut v, u64::MAX, u64::MAX).unwrap_err();
        assert_matches!(err => Error::OutOfMemory { .. });
        let msg = err.to_string();
        assert!(msg.starts_with("big: out of memory"), "{msg}");
    }

    #[cfg(unix)]
    #[test]
    fn a_pipe_is_read_incrementally_with_the_same_checks() {
        use std::io::Write;
        use std::process::Command;
        let dir = TempDir::new("idx-fifo");
        let fifo = dir.path().join("labels.fifo");
        let made = Command::new("mkfifo").arg(&fifo).status();
        if !made.map(|s| s.success()).unwrap_or(false) {
            eprintln!("mkfifo unavailable: skipping");
            return;
        }
        for (bytes, ok) in [
            (labels_bytes(3, &[4, 5, 6]), true),
            (labels_bytes(1_000_000, &[1, 2]), false),
        ] {
            let fifo2 = fifo.clone();
            let writer = std::thread::spawn(move || {
                let mut f = fs::OpenOptions::new().write(true).open(&fifo2).unwrap();
                let _ = f.write_all(&bytes);
            });
            let got = read_labels(&fifo);
            writer.join().unwrap();
            match got {
                Ok(l) => assert!(ok && l == vec![4, 5, 6], "{l:?}"),
                Err(e) => assert!(
                    !ok && matches!(e, Error::Truncated { found: 2, .. }),
                    "{e:?}"
                ),
            }
        }
    }

    #[test]
    fn missing_file_names_the_path() {
        let dir = TempDir::new("idx-missing");
        let p = dir.path().join("nope.gz");
        let err = read_images(&p).unwrap_err();
        assert_matches!(err => Error::Io { action: "open", .. });
        assert!(err.to_string().contains("nope.gz: cannot open"), "{err}");
    }

    #[test]
    fn write_then_read_round_trips_in_both_formats() {
        let dir = TempDir::new("idx-write");
        let px = pixels(7 * 3 * 2);
        let labels = vec![0, 1, 2, 3, 4, 5, 9];
        for format in [Format::Raw, Format::Gzip] {
            let ip = dir.path().join(format!("i-{format:?}"));
            let lp = dir.path().join(format!("l-{format:?}"));
            write_images(&ip, &px, 7, 3, 2, format).unwrap();
            write_labels(&lp, &labels, format).unwrap();
            let on_disk = fs::read(&ip).unwrap();
            assert_eq!(is_gzip(&on_disk), format == Format::Gzip);
            if format == Format::Raw {
                assert_eq!(on_disk, images_bytes(7, 3, 2, &px));
            }
            let ds = read_dataset(&ip, &lp).unwrap();
            assert_eq!(ds.images(), &px[..]);
            assert_eq!(ds.labels(), &labels[..]);
            assert_eq!((ds.rows(), ds.cols()), (3, 2));
        }
        // Deterministic gzip: the same input gives the same bytes.
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        write_labels(&a, &labels, Format::Gzip).unwrap();
        write_labels(&b, &labels, Format::Gzip).unwrap();
        assert_eq!(fs::read(&a).unwrap(), fs::read(&b).unwrap());
    }

    #[test]
    fn writer_rejects_inconsistent_input_and_leaves_nothing() {
        let dir = TempDir::new("idx-write-bad");
        let p = dir.path().join("x");
        let images = write_images(&p, &[0; 10], 3, 2, 2, Format::Raw);
        assert_matches!(images => Err(Error::Invalid { .. }));
        assert_matches!(write_labels(&p, &[1, 10], Format::Gzip) => Err(Error::Invalid { .. }));
        assert!(dir.file_names().is_empty());
    }
}
