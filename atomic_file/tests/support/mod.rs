//! What the test files share: a scratch directory per test.

// Each test file uses its part of this.
#![allow(dead_code)]

use std::path::Path;

/// A scratch directory per test (`tempfile`'s, removed when dropped).
pub struct Scratch(tempfile::TempDir);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let prefix = format!("nndl-atomic-{name}-");
        Scratch(tempfile::Builder::new().prefix(&prefix).tempdir().unwrap())
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// The names of the files in the directory, sorted: a stray temp file shows up here.
    pub fn listing(&self) -> Vec<String> {
        listing(self.path())
    }
}

/// The names of the files in `dir`, sorted.
pub fn listing(dir: &Path) -> Vec<String> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        names.push(e.unwrap().file_name().to_string_lossy().into_owned());
    }
    names.sort();
    names
}
