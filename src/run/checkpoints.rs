//! Where a run keeps its checkpoints: the directory checked and locked before any work, so a
//! typo or a second run in the same place fails at the start instead of after hours.

use super::{Result, RunError};
use nn::checkpoint;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Fails unless a save at `path` can be expected to succeed, by [`atomic_file`]'s rules, so a
/// bad output path stops a run before training rather than after: a device, fifo or open file
/// (`/dev/null`, `/dev/stdout`) is written in place and accepted as it is; a directory or a
/// read-only file is refused; otherwise the file's directory (a symlink's target's) must exist
/// and take a new file.
pub fn check_writable(flag: &'static str, path: &Path) -> Result<()> {
    let err = |why: String| RunError::Output {
        flag,
        path: path.to_path_buf(),
        why,
    };
    let target = match atomic_file::resolve(path) {
        Ok(atomic_file::Target::Replace(target)) => target,
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::IsADirectory => {
            return Err(err("is a directory, not a file name".into()))
        }
        Err(e) => return Err(err(e.to_string())),
    };
    let dir = target
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !dir.is_dir() {
        return Err(err(format!("directory {} does not exist", dir.display())));
    }
    let probe = dir.join(format!(".nndl-write-probe.{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| err(format!("cannot write in {}: {e}", dir.display())))?;
    let _ = std::fs::remove_file(&probe);
    Ok(())
}

/// Where a run saves its checkpoint after every epoch, and where it resumes from.
///
/// [`Checkpoints::open`] checks the directories and takes an advisory lock on the one written
/// ([`LOCK_FILE`] in it), held while any clone of the value lives: a second run checkpointing
/// in the same directory gets an error instead of silently replacing the first one's
/// checkpoints. [`Training::each_epoch`](super::Training::each_epoch) opens what is not open
/// yet, so no program can skip this.
#[derive(Debug, Clone, Default)]
pub struct Checkpoints {
    /// Save a checkpoint in this directory after every epoch.
    pub save: Option<PathBuf>,
    /// Continue the run checkpointed in this directory (and keep checkpointing there unless
    /// `save` names another).
    pub resume: Option<PathBuf>,
    /// The lock on [`Checkpoints::dir`], once open.
    lock: Option<Arc<File>>,
}

/// The lock file [`Checkpoints::open`] locks in the checkpoint directory.
pub const LOCK_FILE: &str = "checkpoint.lock";

impl Checkpoints {
    /// Checkpoints saved in `save` and resumed from `resume`, not yet opened.
    pub fn new(save: Option<PathBuf>, resume: Option<PathBuf>) -> Self {
        Checkpoints {
            save,
            resume,
            lock: None,
        }
    }

    /// [`Checkpoints::new`], checked and locked: see [`Checkpoints::check`].
    pub fn open(save: Option<PathBuf>, resume: Option<PathBuf>, ensemble: bool) -> Result<Self> {
        let mut ck = Checkpoints::new(save, resume);
        ck.check(ensemble)?;
        Ok(ck)
    }

    /// Whether the checkpoint directory is locked by this value (or there is none).
    pub fn is_open(&self) -> bool {
        self.dir().is_none() || self.lock.is_some()
    }

    /// The checkpoint directory, if checkpointing.
    pub fn dir(&self) -> Option<&Path> {
        self.save.as_deref().or(self.resume.as_deref())
    }

    /// The same directories for the `k`-th net of an ensemble: `DIR/net{k}`.
    pub fn for_net(&self, k: usize) -> Checkpoints {
        let sub = |d: &PathBuf| d.join(format!("net{k}"));
        // The parent's lock covers its nets' directories.
        Checkpoints {
            save: self.save.as_ref().map(sub),
            resume: self.resume.as_ref().map(sub),
            lock: self.lock.clone(),
        }
    }

    /// Checks before any work: `resume` names a checkpoint, and the checkpoint directory can
    /// be written (created if missing) without overwriting another run's checkpoint; then
    /// locks it, failing if another run holds it. An `ensemble` keeps each net's checkpoint
    /// in `DIR/net{k}`.
    pub fn check(&mut self, ensemble: bool) -> Result<()> {
        let first = |d: &Path| {
            if ensemble {
                d.join("net0")
            } else {
                d.to_path_buf()
            }
        };
        if let Some(r) = &self.resume {
            if !checkpoint::exists(first(r)) {
                return Err(RunError::Resume {
                    dir: r.clone(),
                    why: format!(
                        "no checkpoint there ({} is missing)",
                        checkpoint::path(first(r)).display()
                    ),
                });
            }
        }
        if let Some(d) = self.dir().map(Path::to_path_buf) {
            let d = d.as_path();
            if d.exists() && !d.is_dir() {
                return Err(RunError::Output {
                    flag: "--checkpoint",
                    path: d.to_path_buf(),
                    why: "is a file, not a directory".into(),
                });
            }
            // Like mkdir: the parent must exist (a typo in it is an error, not a new tree).
            if !d.is_dir() {
                std::fs::create_dir(d).map_err(|e| RunError::Output {
                    flag: "--checkpoint",
                    path: d.to_path_buf(),
                    why: format!("cannot create it: {e}"),
                })?;
            }
            check_writable("--checkpoint", &checkpoint::path(d))?;
            if self.lock.is_none() {
                self.lock = Some(Arc::new(lock_dir(d)?));
            }
            if self.resume.is_none() && checkpoint::exists(first(d)) {
                return Err(RunError::Output {
                    flag: "--checkpoint",
                    path: d.to_path_buf(),
                    why: format!(
                        "it holds another run's checkpoint; continue it with --resume {0}, or pick an empty directory",
                        d.display()
                    ),
                });
            }
        }
        Ok(())
    }
}

/// Takes the advisory lock of checkpoint directory `d` (released when the file closes, so a
/// killed run never leaves it held).
fn lock_dir(d: &Path) -> Result<File> {
    let path = d.join(LOCK_FILE);
    let err = |why: String| RunError::Output {
        flag: "--checkpoint",
        path: d.to_path_buf(),
        why,
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| err(format!("cannot open its lock file {LOCK_FILE}: {e}")))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(err(
            "another run is checkpointing there (it holds the directory's lock): wait for it to end or pick another directory".into(),
        )),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(err(format!("cannot lock {LOCK_FILE}: {e}")))
        }
    }
}
