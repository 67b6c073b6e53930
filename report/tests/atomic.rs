mod common;

use std::io;

use common::Scratch;
use report::{atomic_write, atomic_write_with, ReportError};

#[test]
fn writes_a_new_file() {
    let dir = Scratch::new("atomic-new");
    let target = dir.path().join("out.json");
    atomic_write(&target, b"hello").unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"hello");
    assert_eq!(dir.listing(), vec!["out.json"]);
}

#[test]
fn replaces_an_existing_file_and_leaves_no_temp() {
    let dir = Scratch::new("atomic-replace");
    let target = dir.path().join("out.json");
    std::fs::write(&target, b"old contents, longer than the new ones").unwrap();
    atomic_write(&target, b"new").unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"new");
    assert_eq!(dir.listing(), vec!["out.json"]);
}

#[test]
fn missing_directory_errors_naming_the_path_and_creates_nothing() {
    let dir = Scratch::new("atomic-missing");
    let missing = dir.path().join("no-such-dir");
    let target = missing.join("out.json");
    let err = atomic_write(&target, b"x").unwrap_err();
    match &err {
        ReportError::Write { path, source } => {
            assert_eq!(path, &target);
            assert_eq!(source.kind(), io::ErrorKind::NotFound);
        }
        other => panic!("expected a Write error, got {other:?}"),
    }
    assert!(
        err.to_string().contains(&target.display().to_string()),
        "{err}"
    );
    assert!(!missing.exists());
    assert!(dir.listing().is_empty());
    // The io::Error conversion keeps the kind and the path.
    let io_err: io::Error = err.into();
    assert_eq!(io_err.kind(), io::ErrorKind::NotFound);
    assert!(io_err.to_string().contains("no-such-dir"));
}

#[test]
fn target_that_is_a_directory_is_left_intact() {
    let dir = Scratch::new("atomic-dir");
    let target = dir.path().join("model.json");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("inside"), b"keep me").unwrap();
    std::fs::write(dir.path().join("other"), b"old").unwrap();

    let err = atomic_write(&target, b"new").unwrap_err();
    assert!(matches!(&err, ReportError::Write { path, .. } if path == &target));
    assert!(target.is_dir());
    assert_eq!(std::fs::read(target.join("inside")).unwrap(), b"keep me");
    assert_eq!(std::fs::read(dir.path().join("other")).unwrap(), b"old");
    // No temp file left beside it.
    assert_eq!(dir.listing(), vec!["model.json", "other"]);
}

#[test]
fn failure_while_writing_leaves_the_old_file_intact() {
    let dir = Scratch::new("atomic-fail");
    let target = dir.path().join("weights.bin");
    std::fs::write(&target, b"previous epoch").unwrap();

    let err = atomic_write_with(&target, |w| {
        w.write_all(b"half of the new")?;
        Err(io::Error::other("killed mid-save"))
    })
    .unwrap_err();
    assert!(err.to_string().contains("killed mid-save"), "{err}");
    assert!(err.to_string().contains("weights.bin"), "{err}");
    assert_eq!(std::fs::read(&target).unwrap(), b"previous epoch");
    assert_eq!(dir.listing(), vec!["weights.bin"]);
}

#[test]
fn streamed_contents_are_flushed_before_the_rename() {
    let dir = Scratch::new("atomic-stream");
    let target = dir.path().join("big.txt");
    let line = "0123456789abcdef\n";
    atomic_write_with(&target, |w| {
        for _ in 0..10_000 {
            w.write_all(line.as_bytes())?;
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        line.repeat(10_000)
    );
}

#[test]
fn path_without_a_file_name_is_an_error() {
    let err = atomic_write("/", b"x").unwrap_err();
    assert!(
        matches!(&err, ReportError::Write { source, .. } if source.kind() == io::ErrorKind::InvalidInput)
    );
}

#[cfg(unix)]
#[test]
fn keeps_the_permissions_of_the_replaced_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Scratch::new("atomic-perm");
    let target = dir.path().join("secret.json");
    std::fs::write(&target, b"old").unwrap();
    std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
    atomic_write(&target, b"new").unwrap();
    let mode = std::fs::metadata(&target).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
}
