//! Helpers shared by the unit tests: unique temp directories and the repository's MNIST data.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use crate::{load_data, MnistData, OfficialFile};

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh directory under the system temp dir, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new(tag: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let p = std::env::temp_dir().join(format!(
            "nndl-mnist-test-{tag}-{}-{n}-{nanos}",
            std::process::id()
        ));
        fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }

    /// The directory `rel` inside this one, created with its parents.
    pub(crate) fn subdir(&self, rel: &str) -> PathBuf {
        let p = self.0.join(rel);
        fs::create_dir_all(&p).unwrap();
        p
    }

    /// Copies `files` of the repository's data/mnist into the directory.
    pub(crate) fn copy_from_repo<'a>(&self, files: impl IntoIterator<Item = &'a OfficialFile>) {
        for f in files {
            let name = f.gz_name();
            fs::copy(repo_data_dir().join(&name), self.0.join(&name)).unwrap();
        }
    }

    /// Names of the entries in the directory, sorted.
    pub(crate) fn file_names(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The repository's data/mnist directory.
pub(crate) fn repo_data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist")
}

/// The real MNIST data, loaded once per test binary.
pub(crate) fn real_data() -> &'static MnistData {
    static DATA: OnceLock<MnistData> = OnceLock::new();
    DATA.get_or_init(|| load_data(repo_data_dir()).expect("data/mnist in the repository"))
}
