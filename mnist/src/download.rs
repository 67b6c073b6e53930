//! Checked download of missing MNIST files from a list of mirrors.
//!
//! Each missing file is fetched from the mirrors in order; the first response whose uncompressed
//! bytes have the official length and MD5 is written atomically (temp file, fsync, rename) into
//! the data directory. Any failure (connection, HTTP status, size, corrupt gzip, checksum) falls
//! through to the next mirror and is recorded; nothing partial is ever left behind.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::loader::{download_dir, find_data_dir, locate_file, OfficialFile, FILES};

/// The default mirrors, tried in order. They serve the official .gz files.
pub const MIRRORS: [&str; 2] = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
];

/// Largest response accepted (the biggest official file is 9.9 MB compressed, 47 MB raw).
pub const MAX_RESPONSE_BYTES: u64 = 64 << 20;

/// Seconds allowed for one whole request (connect, headers and body).
pub const TIMEOUT_SECS: u64 = 300;

/// What happened to one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileStatus {
    /// The file was already in the directory; nothing was fetched.
    AlreadyPresent {
        /// Where it is.
        path: PathBuf,
    },
    /// The file was fetched and verified.
    Downloaded {
        /// Where it was written.
        path: PathBuf,
        /// The mirror (base URL) that served it.
        mirror: String,
        /// Bytes received.
        bytes: u64,
    },
}

/// One file's outcome, with the mirrors that failed before one succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReport {
    /// The official file name (without `.gz`).
    pub file: &'static str,
    /// Present already, or downloaded from which mirror.
    pub status: FileStatus,
    /// URLs tried without success and why, in order.
    pub failed_attempts: Vec<(String, String)>,
}

/// The outcome of [`download`]: one report per official file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DownloadReport {
    /// The data directory.
    pub dir: PathBuf,
    /// One entry per official file, in [`FILES`] order.
    pub files: Vec<FileReport>,
}

impl DownloadReport {
    /// Number of files fetched (not already present).
    pub fn downloaded(&self) -> usize {
        self.files
            .iter()
            .filter(|f| matches!(f.status, FileStatus::Downloaded { .. }))
            .count()
    }
}

impl fmt::Display for DownloadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MNIST data in {}:", self.dir.display())?;
        for r in &self.files {
            for (url, why) in &r.failed_attempts {
                write!(f, "\n  {}: {url} failed: {why}", r.file)?;
            }
            match &r.status {
                FileStatus::AlreadyPresent { .. } => write!(f, "\n  {}: already present", r.file)?,
                FileStatus::Downloaded { mirror, bytes, .. } => write!(
                    f,
                    "\n  {}: downloaded {bytes} bytes from {mirror}, MD5 verified",
                    r.file
                )?,
            }
        }
        Ok(())
    }
}

/// What the examples do with `--data DIR` and `--download`: find the data directory, first
/// downloading any missing file (into [`download_dir`]) when `download` is true; returns the
/// directory and, if a download was asked for, its report (print it: it says which mirror
/// served each file).
pub fn prepare_data_dir(
    explicit: Option<&Path>,
    download: bool,
) -> Result<(PathBuf, Option<DownloadReport>)> {
    if download {
        let dir = download_dir(explicit);
        let report = self::download(&dir)?;
        return Ok((find_data_dir(Some(&dir))?, Some(report)));
    }
    Ok((find_data_dir(explicit)?, None))
}

/// Fetch every missing official file into `dir` (created if needed) from [`MIRRORS`].
pub fn download(dir: impl AsRef<Path>) -> Result<DownloadReport> {
    download_from(dir, &MIRRORS)
}

/// [`download`] from the given mirrors (base URLs; the file name is appended).
pub fn download_from(dir: impl AsRef<Path>, mirrors: &[&str]) -> Result<DownloadReport> {
    let dir = dir.as_ref();
    let mut files = Vec::with_capacity(FILES.len());
    let missing = FILES.iter().any(|f| locate_file(dir, f).is_none());
    if missing {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            action: "create the directory",
            source,
        })?;
    }
    // Build the HTTP client only if something must be fetched.
    let fetch = if missing { Some(fetcher()?) } else { None };
    for file in &FILES {
        if let Some(path) = locate_file(dir, file) {
            files.push(FileReport {
                file: file.name,
                status: FileStatus::AlreadyPresent { path },
                failed_attempts: Vec::new(),
            });
            continue;
        }
        match &fetch {
            Some(fetch) => files.push(fetch_one(dir, file, mirrors, fetch.as_ref())?),
            None => return Err(Error::DownloadUnavailable),
        }
    }
    Ok(DownloadReport {
        dir: dir.to_path_buf(),
        files,
    })
}

/// Try each mirror for `file` until one gives verified bytes, then write them atomically.
fn fetch_one(
    dir: &Path,
    file: &OfficialFile,
    mirrors: &[&str],
    fetch: &dyn Fn(&str) -> std::result::Result<Vec<u8>, String>,
) -> Result<FileReport> {
    let mut failed = Vec::new();
    for mirror in mirrors {
        let url = join_url(mirror, &file.gz_name());
        let attempt = fetch(&url).and_then(|bytes| verify(file, &bytes).map(|gz| (bytes, gz)));
        match attempt {
            Ok((bytes, gz)) => {
                // Keep what the mirror served: gzip as NAME.gz, raw IDX as NAME.
                let path = if gz {
                    dir.join(file.gz_name())
                } else {
                    dir.join(file.name)
                };
                atomic_file::write_bytes(&path, &bytes).map_err(|source| Error::Io {
                    path: path.clone(),
                    action: "write",
                    source,
                })?;
                return Ok(FileReport {
                    file: file.name,
                    status: FileStatus::Downloaded {
                        path,
                        mirror: mirror.to_string(),
                        bytes: bytes.len() as u64,
                    },
                    failed_attempts: failed,
                });
            }
            Err(why) => failed.push((url, why)),
        }
    }
    if mirrors.is_empty() {
        failed.push((
            "(no mirror given)".to_string(),
            "nothing to try".to_string(),
        ));
    }
    Err(Error::DownloadFailed {
        file: file.name,
        dir: dir.to_path_buf(),
        attempts: failed,
    })
}

fn join_url(base: &str, name: &str) -> String {
    if base.ends_with('/') {
        format!("{base}{name}")
    } else {
        format!("{base}/{name}")
    }
}

/// Check `bytes` (gzip or raw) uncompress to the official length and MD5. Returns whether they
/// were gzip, or why they are not the official file.
fn verify(file: &OfficialFile, bytes: &[u8]) -> std::result::Result<bool, String> {
    use std::io::Read;
    let gz = crate::idx::is_gzip(bytes);
    let raw: std::borrow::Cow<[u8]> = if gz {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(bytes)
            .take(file.uncompressed_len + 1)
            .read_to_end(&mut out)
            .map_err(|e| format!("not a valid gzip stream (corrupt or truncated): {e}"))?;
        out.into()
    } else {
        bytes.into()
    };
    if raw.len() as u64 != file.uncompressed_len {
        return Err(format!(
            "{} uncompressed bytes, the official {} has {}",
            raw.len(),
            file.name,
            file.uncompressed_len
        ));
    }
    let found = crate::loader::md5_hex(&raw);
    if found != file.md5 {
        return Err(format!(
            "MD5 of the uncompressed bytes is {found}, the official {} has {}",
            file.name, file.md5
        ));
    }
    Ok(gz)
}

/// The HTTP GET used by [`download_from`]: body bytes or a one-line reason.
type Fetch = Box<dyn Fn(&str) -> std::result::Result<Vec<u8>, String>>;

#[cfg(feature = "download")]
fn fetcher() -> Result<Fetch> {
    use std::time::Duration;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(TIMEOUT_SECS)))
        .timeout_connect(Some(Duration::from_secs(20)))
        .build()
        .into();
    Ok(Box::new(move |url: &str| {
        let mut resp = agent.get(url).call().map_err(|e| match e {
            ureq::Error::StatusCode(code) => format!("HTTP status {code}"),
            other => other.to_string(),
        })?;
        resp.body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_vec()
            .map_err(|e| format!("reading the response: {e}"))
    }))
}

#[cfg(not(feature = "download"))]
fn fetcher() -> Result<Fetch> {
    Err(Error::DownloadUnavailable)
}

#[cfg(all(test, feature = "download"))]
mod tests {
    use super::*;
    use crate::loader::{TEST_IMAGES, TEST_LABELS, TRAIN_IMAGES, TRAIN_LABELS};
    use crate::testutil::{repo_data_dir, TempDir};
    use std::collections::HashMap;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};
    use std::thread;
    use std::time::{Duration, Instant};
    use test_support::assert_matches;

    /// A tiny HTTP/1.1 server on 127.0.0.1 serving fixed responses by path (404 otherwise).
    /// It stops when dropped, or after 60 s / 100 connections at most.
    struct Server {
        base: String,
        stop: Arc<AtomicBool>,
        log: Arc<Mutex<Vec<String>>>,
        handle: Option<thread::JoinHandle<()>>,
    }

    impl Server {
        fn start(routes: HashMap<String, Vec<u8>>) -> Server {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            listener.set_nonblocking(true).unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let stop = Arc::new(AtomicBool::new(false));
            let log = Arc::new(Mutex::new(Vec::new()));
            let (stop2, log2) = (stop.clone(), log.clone());
            let handle = thread::spawn(move || {
                let deadline = Instant::now() + Duration::from_secs(60);
                let mut served = 0;
                while !stop2.load(Ordering::Relaxed) && Instant::now() < deadline && served < 100 {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            served += 1;
                            let _ = serve(stream, &routes, &log2);
                        }
                        Err(_) => thread::sleep(Duration::from_millis(2)),
                    }
                }
            });
            Server {
                base,
                stop,
                log,
                handle: Some(handle),
            }
        }

        fn requests(&self) -> Vec<String> {
            self.log.lock().unwrap().clone()
        }
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.stop.store(true, Ordering::Relaxed);
            if let Some(h) = self.handle.take() {
                let _ = h.join();
            }
        }
    }

    fn serve(
        stream: TcpStream,
        routes: &HashMap<String, Vec<u8>>,
        log: &Mutex<Vec<String>>,
    ) -> std::io::Result<()> {
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut request_line = String::new();
        reader.read_line(&mut request_line)?;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line)? == 0 || line == "\r\n" {
                break;
            }
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
            .to_string();
        log.lock().unwrap().push(path.clone());
        let mut stream = stream;
        match routes.get(&path) {
            Some(body) => {
                write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )?;
                stream.write_all(body)?;
            }
            None => {
                let body = b"not found";
                write!(
                    stream,
                    "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                )?;
                stream.write_all(body)?;
            }
        }
        stream.flush()
    }

    fn real(file: &OfficialFile) -> Vec<u8> {
        std::fs::read(repo_data_dir().join(file.gz_name())).unwrap()
    }

    /// The repository's copy of `file`, uncompressed.
    fn real_raw(file: &OfficialFile) -> Vec<u8> {
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&real(file)[..])
            .read_to_end(&mut raw)
            .unwrap();
        raw
    }

    /// Valid gzip of the official t10k labels with one label changed: right size, wrong MD5.
    fn corrupted_labels() -> Vec<u8> {
        let mut raw = real_raw(&TEST_LABELS);
        raw[100] = (raw[100] + 1) % 10;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(&raw).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn good_files_verify_and_bad_ones_fall_through_to_the_next_mirror() {
        let mut routes = HashMap::new();
        // Mirror a: train labels good, t10k labels corrupted, t10k images not gzip at all,
        // train images missing (404).
        routes.insert(
            format!("/a/{}", TRAIN_LABELS.gz_name()),
            real(&TRAIN_LABELS),
        );
        routes.insert(format!("/a/{}", TEST_LABELS.gz_name()), corrupted_labels());
        let mut garbage = vec![0x1f, 0x8b];
        garbage.extend_from_slice(b"this is not deflate data at all");
        routes.insert(format!("/a/{}", TEST_IMAGES.gz_name()), garbage);
        // Mirror b: everything good.
        for f in &FILES {
            routes.insert(format!("/b/{}", f.gz_name()), real(f));
        }
        let server = Server::start(routes);
        let dir = TempDir::new("download");
        let target = dir.path().join("nested/data");
        let (a, b) = (format!("{}/a/", server.base), format!("{}/b", server.base));
        let report = download_from(&target, &[&a, &b]).unwrap();

        let mirror_of = |name: &str| {
            let r = report.files.iter().find(|r| r.file == name).unwrap();
            match &r.status {
                FileStatus::Downloaded { mirror, .. } => {
                    (mirror.clone(), r.failed_attempts.clone())
                }
                s => panic!("{name}: {s:?}"),
            }
        };
        let (m, failed) = mirror_of(TRAIN_LABELS.name);
        assert_eq!((m.as_str(), failed.len()), (a.as_str(), 0));
        let (m, failed) = mirror_of(TRAIN_IMAGES.name);
        assert_eq!(m, b);
        assert!(failed[0].1.contains("404"), "{failed:?}");
        let (m, failed) = mirror_of(TEST_LABELS.name);
        assert_eq!(m, b);
        assert!(failed[0].1.contains("MD5"), "{failed:?}");
        assert!(failed[0].1.contains(TEST_LABELS.md5), "{failed:?}");
        let (m, failed) = mirror_of(TEST_IMAGES.name);
        assert_eq!(m, b);
        assert!(failed[0].1.contains("gzip"), "{failed:?}");
        assert_eq!(report.downloaded(), 4);
        let text = report.to_string();
        assert!(text.contains("failed: HTTP status 404"), "{text}");

        // The files are byte-identical to the originals and nothing else is in the directory.
        for f in &FILES {
            assert_eq!(std::fs::read(target.join(f.gz_name())).unwrap(), real(f));
        }
        let mut names: Vec<String> = std::fs::read_dir(&target)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        let mut want: Vec<String> = FILES.iter().map(|f| f.gz_name()).collect();
        want.sort();
        assert_eq!(names, want);
        crate::verify_dir(&target).unwrap();

        // A second run fetches nothing.
        let before = server.requests().len();
        let again = download_from(&target, &[&a, &b]).unwrap();
        assert_eq!(again.downloaded(), 0);
        assert_eq!(server.requests().len(), before);
    }

    #[test]
    fn corrupted_and_missing_files_are_rejected_and_leave_nothing() {
        let mut routes = HashMap::new();
        routes.insert(format!("/a/{}", TEST_LABELS.gz_name()), corrupted_labels());
        // Right MD5 but cut short (a dropped connection would look like this).
        let mut cut = real(&TRAIN_LABELS);
        cut.truncate(cut.len() / 2);
        routes.insert(format!("/b/{}", TRAIN_LABELS.gz_name()), cut);
        let server = Server::start(routes);
        let (a, b) = (format!("{}/a/", server.base), format!("{}/b/", server.base));

        // train-images is the first file: 404 on both mirrors.
        let dir = TempDir::new("download-bad");
        let err = download_from(dir.path(), &[&a, &b]).unwrap_err();
        let msg = err.to_string();
        assert_matches!(err => Error::DownloadFailed { file: "train-images-idx3-ubyte", .. });
        assert!(
            msg.contains(&format!("{a}train-images-idx3-ubyte.gz: HTTP status 404")),
            "{msg}"
        );
        assert!(
            msg.contains(&format!("{b}train-images-idx3-ubyte.gz: HTTP status 404")),
            "{msg}"
        );
        assert!(dir.file_names().is_empty(), "{:?}", dir.file_names());

        // With train images present, the corrupted and truncated labels are rejected.
        dir.copy_from_repo([&TRAIN_IMAGES]);
        let err = download_from(dir.path(), &[&b, &a]).unwrap_err();
        let msg = err.to_string();
        assert_matches!(err => Error::DownloadFailed { file: "train-labels-idx1-ubyte", .. });
        assert!(msg.contains("gzip"), "{msg}");
        assert!(msg.contains("No partial file"), "{msg}");
        assert_eq!(dir.file_names(), vec![TRAIN_IMAGES.gz_name()]);

        // The corrupted t10k labels: checksum error names both MD5s.
        let raw = corrupted_labels();
        let err = verify(&TEST_LABELS, &raw).unwrap_err();
        assert!(
            err.starts_with("MD5 of the uncompressed bytes is "),
            "{err}"
        );
        assert!(err.contains(TEST_LABELS.md5), "{err}");
        // Raw (uncompressed) official bytes verify too, and are reported as not gzip.
        let raw = real_raw(&TEST_LABELS);
        assert_eq!(verify(&TEST_LABELS, &raw), Ok(false));
        assert_eq!(
            verify(&TEST_LABELS, &raw[..raw.len() - 1]).unwrap_err(),
            "10007 uncompressed bytes, the official t10k-labels-idx1-ubyte has 10008"
        );
        assert_eq!(verify(&TEST_LABELS, &real(&TEST_LABELS)), Ok(true));
    }

    #[test]
    fn an_unreachable_mirror_falls_through() {
        // A port nothing listens on (bound then released).
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut routes = HashMap::new();
        for f in &FILES {
            routes.insert(format!("/m/{}", f.gz_name()), real(f));
        }
        let server = Server::start(routes);
        let dir = TempDir::new("download-unreach");
        // Only labels missing: keep the test fast.
        dir.copy_from_repo([&TRAIN_IMAGES, &TEST_IMAGES]);
        let dead = format!("http://127.0.0.1:{port}/m/");
        let good = format!("{}/m/", server.base);
        let report = download_from(dir.path(), &[&dead, &good]).unwrap();
        assert_eq!(report.downloaded(), 2);
        for r in &report.files {
            if let FileStatus::Downloaded { mirror, .. } = &r.status {
                assert_eq!(mirror, &good);
                assert_eq!(r.failed_attempts.len(), 1);
                assert!(r.failed_attempts[0].0.starts_with(&dead));
            }
        }
        assert_eq!(server.requests().len(), 2);
    }
}

#[cfg(all(test, not(feature = "download")))]
mod tests_without_feature {
    use super::*;
    use crate::testutil::TempDir;

    #[test]
    fn download_says_the_feature_is_off() {
        let dir = TempDir::new("nodl");
        let err = download_from(dir.path(), &["http://127.0.0.1:9/"]).unwrap_err();
        assert!(matches!(err, Error::DownloadUnavailable), "{err:?}");
        assert!(err.to_string().contains("`download` feature"), "{err}");
        // Nothing missing: nothing to fetch, no error.
        let report = download_from(crate::testutil::repo_data_dir(), &[]).unwrap();
        assert_eq!(report.downloaded(), 0);
    }
}
