//! `nndl::run::check_writable` agrees with what `atomic_file` will do at the end of a run:
//! devices and stdout are accepted as they are, a read-only file and a directory are
//! refused, a symlink is judged by its target's directory.

#![cfg(unix)]

use nndl::run::check_writable;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};

fn scratch(tag: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("nndl-check-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).unwrap();
    p
}

fn why(path: &Path) -> String {
    check_writable("--json", path).unwrap_err().to_string()
}

#[test]
fn devices_and_stdout_are_accepted_without_a_probe() {
    // Only looked at, never written. A write probe next to `/proc/self/fd/1` would fail.
    for p in ["/dev/null", "/dev/stdout", "/dev/fd/2", "/proc/self/fd/1"] {
        check_writable("--json", Path::new(p)).unwrap();
    }
}

#[test]
fn a_read_only_file_is_refused_up_front() {
    let dir = scratch("read-only");
    let file = dir.join("frozen.json");
    std::fs::write(&file, "keep").unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o444)).unwrap();
    let link = dir.join("link.json");
    symlink("frozen.json", &link).unwrap();
    for p in [&file, &link] {
        let e = why(p);
        assert!(
            e.starts_with("--json ") && e.contains("frozen.json is read-only"),
            "{e}"
        );
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_symlink_is_judged_by_its_target_directory() {
    let dir = scratch("symlink");
    // Dangling into a directory that exists: fine. Into one that does not: refused, naming it.
    symlink("real.json", dir.join("good.json")).unwrap();
    check_writable("--json", &dir.join("good.json")).unwrap();
    symlink("missing/real.json", dir.join("bad.json")).unwrap();
    let e = why(&dir.join("bad.json"));
    assert!(e.contains("missing does not exist"), "{e}");
    // A link to a directory is a directory.
    std::fs::create_dir(dir.join("sub")).unwrap();
    symlink("sub", dir.join("sub-link")).unwrap();
    assert!(why(&dir.join("sub-link")).contains("is a directory"));
    std::fs::remove_dir_all(&dir).unwrap();
}
