//! A scratch directory per test (`tempfile`'s, removed when dropped).

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::path::Path;

pub struct Scratch(tempfile::TempDir);

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let dir = tempfile::Builder::new()
            .prefix(&format!("nndl-report-{name}-"))
            .tempdir()
            .expect("create a scratch dir");
        Scratch(dir)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }

    /// The names of the files in the directory, in order.
    pub fn listing(&self) -> Vec<String> {
        let entries = std::fs::read_dir(self.path()).expect("read scratch dir");
        let names: BTreeSet<String> = entries
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.into_iter().collect()
    }
}
