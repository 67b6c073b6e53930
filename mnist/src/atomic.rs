//! Atomic file writes: a temp file in the same directory, fsync, rename over the target.
//!
//! A process killed during the write leaves the previous file (if any) intact and, at worst, a
//! stray `.NAME.PID.N.tmp` file beside it; a write that fails removes its temp file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, Result};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// The temp-file name used while writing `path` (hidden, unique per process and call).
fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".to_string());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let tmp = format!(".{name}.{}.{n}.tmp", std::process::id());
    path.with_file_name(tmp)
}

/// Write `path` atomically with whatever `fill` writes into the (buffered) writer.
///
/// `fill` may return an error to abandon the write: the temp file is then removed and `path` is
/// left as it was.
pub(crate) fn write_atomically<F>(path: &Path, fill: F) -> Result<()>
where
    F: FnOnce(&mut dyn Write) -> io::Result<()>,
{
    if path.file_name().is_none() {
        return Err(Error::Invalid {
            what: "output path",
            detail: format!("{} does not name a file", path.display()),
        });
    }
    let tmp = temp_path(path);
    let result = (|| -> io::Result<()> {
        let file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        fill(&mut w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        Ok(())
    })();
    match result {
        Ok(()) => {
            sync_parent_dir(path);
            Ok(())
        }
        Err(source) => {
            // Best effort: the temp file may not exist if creating it failed.
            let _ = fs::remove_file(&tmp);
            Err(Error::Io {
                path: path.to_path_buf(),
                action: "write",
                source,
            })
        }
    }
}

/// Fsync the directory holding `path` so the rename itself is durable (best effort: not every
/// platform or file system allows opening a directory).
fn sync_parent_dir(path: &Path) {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::TempDir;

    #[test]
    fn replaces_the_file_and_leaves_no_temp() {
        let dir = TempDir::new("atomic-ok");
        let p = dir.path().join("out.bin");
        fs::write(&p, b"old").unwrap();
        write_atomically(&p, |w| w.write_all(b"new contents")).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new contents");
        assert_eq!(dir.file_names(), vec!["out.bin".to_string()]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_removes_the_temp() {
        let dir = TempDir::new("atomic-fail");
        let p = dir.path().join("out.bin");
        fs::write(&p, b"old").unwrap();
        let err = write_atomically(&p, |w| {
            w.write_all(&[7u8; 3 << 20])?; // more than the buffer: the temp file has data
            Err(io::Error::other("interrupted on purpose"))
        })
        .unwrap_err();
        assert!(err.to_string().contains("out.bin"), "{err}");
        assert!(err.to_string().contains("interrupted on purpose"), "{err}");
        assert_eq!(fs::read(&p).unwrap(), b"old");
        assert_eq!(dir.file_names(), vec!["out.bin".to_string()]);
    }
}
