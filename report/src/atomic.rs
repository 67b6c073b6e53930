//! Atomic file replacement: temp file in the same directory, fsync, rename, fsync the directory.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::ReportError;

/// Distinguishes temp files of concurrent writes from the same process.
static COUNTER: AtomicU64 = AtomicU64::new(0);

/// Replaces `path` with `bytes` atomically: readers see the old file or the new one, never a part.
///
/// The bytes go to a temp file `.{name}.tmp.{pid}.{n}` in the same directory, which is fsynced
/// and renamed over `path`; the directory is then fsynced (best effort). On any error the temp
/// file is removed, `path` is left as it was, and the error names `path`.
pub fn atomic_write(path: impl AsRef<Path>, bytes: &[u8]) -> Result<(), ReportError> {
    atomic_write_with(path, |w| w.write_all(bytes))
}

/// Like [`atomic_write`], but the contents are streamed by `write` into a buffered writer.
///
/// If `write` returns an error, nothing is renamed: the temp file is removed and `path` is
/// untouched. The buffer is flushed and its errors checked before the rename.
pub fn atomic_write_with<F>(path: impl AsRef<Path>, write: F) -> Result<(), ReportError>
where
    F: FnOnce(&mut dyn Write) -> io::Result<()>,
{
    let path = path.as_ref();
    let err = |source: io::Error| ReportError::Write {
        path: path.to_path_buf(),
        source,
    };
    let name = path.file_name().ok_or_else(|| {
        err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path has no file name",
        ))
    })?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };

    let (tmp_path, file) = create_temp(dir, &name.to_string_lossy()).map_err(err)?;
    match fill_and_rename(file, &tmp_path, path, write) {
        Ok(()) => {
            sync_dir(dir);
            Ok(())
        }
        Err(e) => {
            // Best effort: the temp file may already be gone (or never renamed); the error that
            // matters is `e`.
            let _ = fs::remove_file(&tmp_path);
            Err(err(e))
        }
    }
}

/// Creates a fresh temp file in `dir` whose name starts with `.{name}.tmp.`.
fn create_temp(dir: &Path, name: &str) -> io::Result<(PathBuf, File)> {
    let pid = std::process::id();
    let mut last_err = None;
    // A stale temp file of an earlier process with the same pid makes create_new fail; the
    // counter moves past it.
    for _ in 0..16 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.tmp.{pid}.{n}"));
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last_err = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("cannot create a temp file")))
}

/// Writes the contents into `file` (at `tmp`), fsyncs it and renames it over `target`.
fn fill_and_rename<F>(file: File, tmp: &Path, target: &Path, write: F) -> io::Result<()>
where
    F: FnOnce(&mut dyn Write) -> io::Result<()>,
{
    let mut w = BufWriter::new(file);
    write(&mut w)?;
    let file = w.into_inner().map_err(|e| e.into_error())?;
    // Keep the permissions of the file being replaced (e.g. a read-only results file).
    if let Ok(meta) = fs::metadata(target) {
        if meta.is_file() {
            file.set_permissions(meta.permissions())?;
        }
    }
    file.sync_all()?;
    drop(file);
    fs::rename(tmp, target)
}

/// Fsyncs a directory so that a rename in it survives a crash; best effort (not on every OS).
fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}
