//! What every save in nndl relies on: the old file or the new one, never a part of one.

mod support;

use std::io;
use support::Scratch;

#[test]
fn writes_a_new_file_or_replaces_a_longer_one_and_leaves_no_temp() {
    let longer = b"old contents, longer than the new ones";
    for (tag, old) in [("new", None), ("replace", Some(&longer[..]))] {
        let dir = Scratch::new(tag);
        let target = dir.path().join("out.json");
        if let Some(old) = old {
            std::fs::write(&target, old).unwrap();
        }
        nndl_atomic_file::write_bytes(&target, b"new").unwrap();
        assert_eq!(std::fs::read(&target).unwrap(), b"new", "{tag}");
        assert_eq!(dir.listing(), vec!["out.json"], "{tag}");
    }
}

#[test]
fn a_failure_while_writing_leaves_the_old_file_intact() {
    let dir = Scratch::new("fail");
    let target = dir.path().join("weights.bin");
    std::fs::write(&target, b"previous epoch").unwrap();
    let err = nndl_atomic_file::write(&target, |w| {
        // More than the 1 MiB buffer: part of the new contents has reached the temp file.
        w.write_all(&[7u8; 3 << 20])?;
        Err(io::Error::other("killed mid-save"))
    })
    .unwrap_err();
    assert_eq!(err.to_string(), "killed mid-save");
    assert_eq!(std::fs::read(&target).unwrap(), b"previous epoch");
    assert_eq!(dir.listing(), vec!["weights.bin"]);
}

#[test]
fn streamed_contents_are_flushed_before_the_rename() {
    let dir = Scratch::new("stream");
    let target = dir.path().join("big.txt");
    let line = "0123456789abcdef\n";
    nndl_atomic_file::write(&target, |w| {
        for _ in 0..100_000 {
            w.write_all(line.as_bytes())?;
        }
        Ok(())
    })
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        line.repeat(100_000)
    );
}

#[test]
fn a_missing_directory_is_not_found_and_creates_nothing() {
    let dir = Scratch::new("missing");
    let missing = dir.path().join("no-such-dir");
    let err = nndl_atomic_file::write_bytes(missing.join("out.json"), b"x").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert!(!missing.exists());
    assert!(dir.listing().is_empty());
}

#[test]
fn a_target_that_is_a_directory_is_left_intact() {
    let dir = Scratch::new("dir");
    let target = dir.path().join("model.json");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("inside"), b"keep me").unwrap();
    let err = nndl_atomic_file::write_bytes(&target, b"new").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::IsADirectory);
    assert!(err.to_string().contains("model.json"), "{err}");
    assert!(target.is_dir());
    assert_eq!(std::fs::read(target.join("inside")).unwrap(), b"keep me");
    assert_eq!(dir.listing(), vec!["model.json"]);
}

#[test]
fn a_path_without_a_file_name_is_invalid_input() {
    for p in ["/", ".."] {
        let err = nndl_atomic_file::write_bytes(p, b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{p}");
        assert!(err.to_string().contains(p), "{err}");
    }
}

#[test]
fn concurrent_saves_of_one_path_never_mix() {
    // Each save has a temp file of its own: whichever rename comes last wins whole, and every
    // temp file is gone. (With a temp name per process only, the threads would share one.)
    let dir = Scratch::new("concurrent");
    let target = dir.path().join("checkpoint.bin");
    std::thread::scope(|s| {
        for t in 0..8u8 {
            let target = &target;
            s.spawn(move || {
                for _ in 0..20 {
                    nndl_atomic_file::write(target, |w| {
                        for _ in 0..64 {
                            w.write_all(&[t; 1024])?;
                        }
                        Ok(())
                    })
                    .unwrap();
                }
            });
        }
    });
    let bytes = std::fs::read(&target).unwrap();
    assert_eq!(bytes.len(), 64 * 1024);
    assert!(bytes.iter().all(|&b| b == bytes[0]), "a mix of two saves");
    assert_eq!(dir.listing(), vec!["checkpoint.bin"]);
}

#[cfg(unix)]
#[test]
fn keeps_the_permissions_of_the_replaced_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Scratch::new("perm");
    let target = dir.path().join("secret.json");
    std::fs::write(&target, b"old").unwrap();
    for mode in [0o600, 0o640, 0o604, 0o200] {
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode)).unwrap();
        nndl_atomic_file::write_bytes(&target, b"new").unwrap();
        let got = std::fs::metadata(&target).unwrap().permissions().mode();
        assert_eq!(got & 0o777, mode);
    }
}
