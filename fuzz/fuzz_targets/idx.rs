//! The IDX reader (images and labels, raw or gzip) on arbitrary file contents: it must never
//! panic or over-allocate, and whatever it accepts must be self-consistent.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

/// One file per fuzzing process, in memory-backed /dev/shm when there is one.
fn scratch() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() { shm.to_path_buf() } else { std::env::temp_dir() };
        dir.join(format!("nndl-fuzz-idx-{}", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let path = scratch();
    std::fs::write(path, data).expect("scratch file");
    if let Ok(im) = mnist::idx::read_images(path) {
        assert_eq!(im.pixels.len(), im.count * im.rows * im.cols);
    }
    if let Ok(labels) = mnist::idx::read_labels(path) {
        assert!(labels.iter().all(|&l| l <= 9));
    }
});
