//! Every file nndl saves (IDX data, models, checkpoints, run records, plots, SVM models) is
//! written through this crate, so that a run killed in the middle of a save leaves the previous
//! file as it was.
//!
//! What a save of `path` does depends on what is there (see [`resolve`]):
//!
//! - **A symlink** (or a chain of them) is followed: its final target is saved, the links are
//!   kept. A relative link is read relative to the link's directory; a dangling link creates
//!   the file it names, if that file's directory exists.
//! - **A regular file, or nothing**, is replaced atomically: the contents go to a temp file
//!   that `tempfile` creates exclusively, with a random name (`.NAME.XXXXXX.tmp`), in the
//!   target's directory (two saves of one path, from one process or several, never share one).
//!   It is fsynced and renamed over the target; the directory is then fsynced so that the
//!   rename itself survives a crash. On any error, from the caller's writer or from the file
//!   system, the temp file is removed and the target is untouched. A replaced file keeps its
//!   permissions; a new file gets mode `0o666` less the umask, as `open(2)` would give it.
//! - **A regular file without write permission** is refused (`PermissionDenied`), even for
//!   root, who the OS would let through.
//! - **A directory** is refused (`IsADirectory`).
//! - **Anything else that exists** (a device such as `/dev/null`, a fifo, a socket) is written
//!   in place, never replaced: opened without creating or truncating.
//! - **The process's own stdout or stderr** (`/dev/stdout`, `/dev/fd/1`, `/proc/self/fd/2`)
//!   is written through std's handle, so that the saved bytes come after what the process
//!   printed and before what it prints next, whatever stdout is (`prog --json /dev/stdout |
//!   jq`, or `> out.txt`, whose file is kept). **Another open file** (`/proc/<pid>/fd/N`,
//!   `/dev/fd/3`) is opened in append mode.
//!
//! A write in place is not atomic: a failure leaves what was written so far. It is fsynced
//! only if it is a regular file opened here (not through stdout or stderr).
//!
//! A save that is killed (or a power cut) leaves its temp file behind. A save holds an
//! exclusive lock on its temp file ([`File::try_lock`]: `flock` on Unix) while it writes it,
//! and each save first removes the temp files of its target's name in the target's directory
//! that are unlocked (their writer is dead) and more than [`STALE_AFTER`] old. So a killed
//! save's temp file stays until the next save of the same file, not forever: they do not
//! accumulate. Other stray files are never touched.
//!
//! ```
//! # let dir = std::env::temp_dir().join(format!("atomic-file-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! let path = dir.join("weights.txt");
//! nndl_atomic_file::write_bytes(&path, b"epoch 1")?;
//! nndl_atomic_file::write(&path, |w| writeln!(w, "epoch {}", 2))?;
//! assert_eq!(std::fs::read_to_string(&path)?, "epoch 2\n");
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok::<(), std::io::Error>(())
//! ```

#![warn(missing_docs)]

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, Metadata};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// How old an unlocked temp file must be before a save removes it as left by a killed save.
/// Its writer creates it and then locks it; the age keeps a cleaner out of that gap.
pub const STALE_AFTER: Duration = Duration::from_secs(10);

/// Random characters in a temp file's name, which is `.NAME.` + these + `.tmp`.
const RAND_LEN: usize = 6;

/// Symlinks followed before giving up, as Linux does.
const MAX_LINKS: usize = 40;

/// What a save of a path writes to (see [`resolve`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// A regular file, or none yet: replaced atomically through a temp file in its directory.
    Replace(PathBuf),
    /// An existing file that is not a regular file (device, fifo, socket): opened for writing
    /// in place, neither created nor truncated.
    InPlace(PathBuf),
    /// An open file of a process (`/proc/<pid>/fd/N`, `/dev/fd/3`): opened in append mode.
    OpenFile(PathBuf),
    /// This process's standard output (`/dev/stdout`, `/dev/fd/1`, `/proc/self/fd/1`).
    Stdout,
    /// This process's standard error (`/dev/stderr`, `/dev/fd/2`, `/proc/self/fd/2`).
    Stderr,
}

/// Where a save of `path` goes: symlinks followed, refusals applied (a directory is
/// `IsADirectory`, a regular file without write permission is `PermissionDenied`). Does not
/// check that a new file's directory exists or takes a new file.
pub fn resolve(path: impl AsRef<Path>) -> io::Result<Target> {
    let mut path = path.as_ref().to_path_buf();
    for _ in 0..MAX_LINKS {
        // An open file: the link there may read `pipe:[123]`, not a path.
        if let Some(target) = open_file(&path) {
            return Ok(target);
        }
        let meta = match fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Target::Replace(path)),
            Err(e) => return Err(e),
        };
        if meta.file_type().is_symlink() {
            let link = fs::read_link(&path)?;
            // `join` keeps an absolute link as it is and does not fold `..`, which the kernel
            // resolves after the link's directory's own links.
            path = match path.parent() {
                Some(dir) => dir.join(link),
                None => link,
            };
            continue;
        }
        return classify(path, &meta);
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{}: too many levels of symbolic links", path.display()),
    ))
}

/// The target for a path that exists and is not a symlink.
fn classify(path: PathBuf, meta: &Metadata) -> io::Result<Target> {
    if meta.is_dir() {
        return Err(io::Error::new(
            io::ErrorKind::IsADirectory,
            format!("{} is a directory", path.display()),
        ));
    }
    if !meta.is_file() {
        return Ok(Target::InPlace(path));
    }
    // The mode bits, not access(2): root may write anything, but a file someone made
    // read-only is not to be replaced behind their back.
    if meta.permissions().readonly() {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!("{} is read-only", path.display()),
        ));
    }
    Ok(Target::Replace(path))
}

/// The target for `path` if it is an entry of a process's open-file directory
/// (`/proc/<pid>/fd`, `/proc/self/fd`, `/dev/fd`), however reached.
fn open_file(path: &Path) -> Option<Target> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty())?;
    // Canonical: `/dev/fd` and `/proc/self` are themselves links (to `/proc/<pid>`).
    let dir = fs::canonicalize(dir).ok()?;
    let pid = if dir == Path::new("/dev/fd") {
        std::process::id()
    } else {
        let parts: Vec<&OsStr> = dir.strip_prefix("/proc").ok()?.iter().collect();
        let number = |s: &OsStr| s.to_str()?.parse::<u32>().ok();
        match parts[..] {
            [pid, fd] if fd == "fd" => number(pid)?,
            // `/proc/thread-self` leads to a thread's directory.
            [pid, task, tid, fd] if task == "task" && fd == "fd" && number(tid).is_some() => {
                number(pid)?
            }
            _ => return None,
        }
    };
    // Its own stdout and stderr a process writes through the fd it prints with, which shares
    // the offset (a file opened anew, even to append, would be written over by what is
    // printed next) and std's buffer (flushed first).
    if pid == std::process::id() {
        match path.file_name()?.to_str() {
            Some("1") => return Some(Target::Stdout),
            Some("2") => return Some(Target::Stderr),
            _ => {}
        }
    }
    Some(Target::OpenFile(path.to_path_buf()))
}

/// Saves whatever `fill` writes into the (buffered) writer at `path`: atomically for a
/// regular file, in place for a device, fifo or open file (see the crate docs).
///
/// If `fill` returns an error, nothing is renamed: the temp file is removed, `path` is left as
/// it was and the error is returned (a file written in place keeps what was written). A
/// `path` that names no file (`/`, `..`) is `ErrorKind::InvalidInput`; a directory is
/// `IsADirectory`; a read-only regular file is `PermissionDenied`.
pub fn write<F>(path: impl AsRef<Path>, fill: F) -> io::Result<()>
where
    F: FnOnce(&mut dyn Write) -> io::Result<()>,
{
    let path = path.as_ref();
    if path.file_name().is_none() {
        return Err(no_file_name(path));
    }
    match resolve(path)? {
        Target::Replace(target) => replace(&target, fill),
        Target::InPlace(path) => in_place(&path, false, fill),
        Target::OpenFile(path) => in_place(&path, true, fill),
        Target::Stdout => through(io::stdout().lock(), fill),
        Target::Stderr => through(io::stderr().lock(), fill),
    }
}

/// Saves `bytes` at `path` (see [`write()`]).
pub fn write_bytes(path: impl AsRef<Path>, bytes: &[u8]) -> io::Result<()> {
    write(path, |w| w.write_all(bytes))
}

fn no_file_name(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("{} does not name a file", path.display()),
    )
}

/// Writes an existing file that must not be replaced: no create, no truncate.
fn in_place<F>(path: &Path, append: bool, fill: F) -> io::Result<()>
where
    F: FnOnce(&mut dyn Write) -> io::Result<()>,
{
    let mut file = fs::OpenOptions::new()
        .write(true)
        .append(append)
        .open(path)?;
    {
        let mut w = BufWriter::with_capacity(1 << 20, &mut file);
        fill(&mut w)?;
        w.flush()?;
    }
    // fsync means nothing to (and fails on) pipes and most devices.
    if file.metadata()?.is_file() {
        file.sync_all()?;
    }
    Ok(())
}

/// Writes through the process's stdout or stderr.
fn through<F>(mut out: impl Write, fill: F) -> io::Result<()>
where
    F: FnOnce(&mut dyn Write) -> io::Result<()>,
{
    let mut w = BufWriter::with_capacity(1 << 20, &mut out);
    fill(&mut w)?;
    w.flush()?;
    drop(w);
    out.flush()
}

/// Replaces the regular file (or nothing) at `path` through a temp file and a rename.
fn replace<F>(path: &Path, fill: F) -> io::Result<()>
where
    F: FnOnce(&mut dyn Write) -> io::Result<()>,
{
    // A dangling link may name `dir/..`.
    let Some(name) = path.file_name() else {
        return Err(no_file_name(path));
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Hidden and named after the target, so a stray one (power cut) says what it was.
    let mut prefix = OsString::from(".");
    prefix.push(name);
    prefix.push(".");
    remove_stale_temps(dir, &prefix);
    let existing = fs::metadata(path).ok().filter(|m| m.is_file());
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp").rand_bytes(RAND_LEN);
    // A new file gets 0o666 less the umask, which the kernel applies at create. A temp that
    // replaces a file starts private (0o600, tempfile's default) until it takes the
    // replaced file's permissions, so contents meant to be private are never readable.
    #[cfg(unix)]
    if existing.is_none() {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(fs::Permissions::from_mode(0o666));
    }
    // Every `?` below drops `tmp`, which deletes the temp file.
    let mut tmp = builder.tempfile_in(dir)?;
    // Held until `tmp` is dropped, after the rename: while it is held, no other save takes
    // this file for a killed one's. Where locks are not supported, no one can take it either.
    let _ = tmp.as_file().try_lock();
    {
        let mut w = BufWriter::with_capacity(1 << 20, tmp.as_file_mut());
        fill(&mut w)?;
        w.flush()?;
    }
    if let Some(meta) = existing {
        tmp.as_file().set_permissions(meta.permissions())?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    // Best effort: not every platform can open a directory.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Removes the temp files of killed saves of `.NAME.` (`prefix`) in `dir`: regular files named
/// `prefix` + random characters + `.tmp`, unlocked and older than [`STALE_AFTER`]. Best
/// effort: any error leaves the file where it is.
fn remove_stale_temps(dir: &Path, prefix: &OsStr) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let prefix = prefix.as_encoded_bytes();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(random) = name
            .as_encoded_bytes()
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_suffix(b".tmp"))
        else {
            continue;
        };
        // Exactly the random part, so `.a.b.XXXXXX.tmp` (a save of `a.b`) is not one of `a`'s.
        if random.len() != RAND_LEN || !random.iter().all(u8::is_ascii_alphanumeric) {
            continue;
        }
        // Not a symlink, fifo or anything else that merely has such a name.
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let old = meta
            .modified()
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_some_and(|age| age > STALE_AFTER);
        if !old {
            continue;
        }
        let path = entry.path();
        let Ok(file) = File::open(&path) else {
            continue;
        };
        // Locked means a live save is writing it; the lock goes with the writer's process.
        if file.try_lock().is_ok() {
            let _ = fs::remove_file(&path);
        }
    }
}
