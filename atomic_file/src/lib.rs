//! Every file nndl saves (IDX data, models, checkpoints, run records, plots, SVM models) is
//! written through this crate, so that a run killed in the middle of a save leaves the previous
//! file as it was.
//!
//! The contents go to a temp file that `tempfile` creates exclusively, with a random name, in
//! the target's directory (two saves of one path, from one process or several, never share
//! one). It takes over the permissions of the file it replaces, is fsynced and renamed over the
//! target; the directory is then fsynced so that the rename itself survives a crash. On any
//! error, from the caller's writer or from the file system, the temp file is removed and the
//! target is untouched.
//!
//! ```
//! # let dir = std::env::temp_dir().join(format!("atomic-file-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("weights.txt");
//! atomic_file::write_bytes(&path, b"epoch 1")?;
//! atomic_file::write(&path, |w| writeln!(w, "epoch {}", 2))?;
//! assert_eq!(std::fs::read_to_string(&path)?, "epoch 2\n");
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), std::io::Error>(())
//! ```

#![warn(missing_docs)]

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;

/// Replaces `path` with whatever `fill` writes into the (buffered) writer, atomically.
///
/// If `fill` returns an error, nothing is renamed: the temp file is removed, `path` is left as
/// it was and the error is returned. A `path` that names no file (`/`, `..`) is
/// `ErrorKind::InvalidInput`.
pub fn write<F>(path: impl AsRef<Path>, fill: F) -> io::Result<()>
where
    F: FnOnce(&mut dyn Write) -> io::Result<()>,
{
    let path = path.as_ref();
    let Some(name) = path.file_name() else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} does not name a file", path.display()),
        ));
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Hidden and named after the target, so a stray one (power cut) says what it was.
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(name);
    prefix.push(".");
    // Every `?` below drops `tmp`, which deletes the temp file.
    let mut tmp = tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .tempfile_in(dir)?;
    {
        let mut w = BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
        fill(&mut w)?;
        w.flush()?;
    }
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.is_file() {
            tmp.as_file().set_permissions(meta.permissions())?;
        }
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    // Best effort: not every platform can open a directory.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Replaces `path` with `bytes`, atomically (see [`write`]).
pub fn write_bytes(path: impl AsRef<Path>, bytes: &[u8]) -> io::Result<()> {
    write(path, |w| w.write_all(bytes))
}
