//! What a save does with what is already at the path: symlinks followed and kept, devices,
//! fifos and open files written in place, read-only files and directories refused; new files
//! get the umask's mode; temp files of killed saves do not accumulate.
//!
//! Several tests run this test binary again as a child (in another umask, in a private mount
//! namespace, with stdout piped) to make one save there: see [`child_save`].

#![cfg(unix)]

mod support;

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime};
use support::{listing, Scratch};

/// Child processes: save at this path ...
const CHILD_PATH: &str = "ATOMIC_FILE_TEST_CHILD_PATH";
/// ... these bytes ...
const CHILD_TEXT: &str = "ATOMIC_FILE_TEST_CHILD_TEXT";
/// ... after printing this line to stdout (if set) ...
const CHILD_PRINT: &str = "ATOMIC_FILE_TEST_CHILD_PRINT";
/// ... and expect the save to fail (if set).
const CHILD_FAILS: &str = "ATOMIC_FILE_TEST_CHILD_FAILS";

/// Not a test on its own (it does nothing without [`CHILD_PATH`]): the one save a child
/// process makes, as `run_child` starts it.
#[test]
fn child_save() {
    let Some(path) = std::env::var_os(CHILD_PATH) else {
        return;
    };
    let text = std::env::var(CHILD_TEXT).unwrap();
    if let Ok(line) = std::env::var(CHILD_PRINT) {
        println!("{line}");
    }
    let saved = nndl_atomic_file::write_bytes(&path, text.as_bytes());
    if std::env::var_os(CHILD_FAILS).is_some() {
        assert!(saved.is_err(), "saving to {path:?} succeeded");
    } else {
        saved.unwrap();
    }
}

/// The command that runs this binary's `child_save` alone, saving `text` at `path`, under
/// `sh -c script` (`"$@"` in the script runs the child), itself run by the command `wrapper`
/// (say `unshare -m`) if not empty.
fn child(wrapper: &[&str], script: &str, path: &str, text: &str) -> Command {
    let exe = std::env::current_exe().unwrap();
    let sh = ["sh", "-c", script, "sh"];
    let mut words = wrapper.iter().chain(&sh);
    let mut c = Command::new(words.next().unwrap());
    c.args(words)
        .arg(exe)
        .args(["child_save", "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_PATH, path)
        .env(CHILD_TEXT, text);
    c
}

/// Runs `c` to the end and fails, with its output, unless it succeeds.
fn succeeds(c: &mut Command) -> Output {
    let out = c.output().unwrap();
    assert!(
        out.status.success(),
        "{:?}: {}\nstdout:\n{}\nstderr:\n{}",
        c,
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A file at `path` holding `contents`, with permissions `mode`.
fn write_with_mode(path: &Path, contents: &str, mode: u32) {
    fs::write(path, contents).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn a_new_file_gets_the_mode_the_umask_allows() {
    let dir = Scratch::new("umask");
    for (umask, expected) in [("022", 0o644), ("027", 0o640), ("002", 0o664)] {
        let target = dir.path().join(format!("new-{umask}.json"));
        let script = format!("umask {umask} && exec \"$@\"");
        succeeds(&mut child(&[], &script, target.to_str().unwrap(), "x"));
        assert_eq!(mode(&target), expected, "umask {umask}");
    }
}

#[test]
fn a_replaced_file_keeps_its_mode_whatever_the_umask() {
    let dir = Scratch::new("keep-mode");
    let target = dir.path().join("shared.json");
    write_with_mode(&target, "old", 0o664);
    succeeds(&mut child(
        &[],
        "umask 077 && exec \"$@\"",
        target.to_str().unwrap(),
        "new",
    ));
    assert_eq!(fs::read_to_string(&target).unwrap(), "new");
    assert_eq!(mode(&target), 0o664);
}

/// Saves through `link` and checks that the link is still there, unchanged, and that the
/// file it leads to, `target`, holds the new contents.
fn save_through_link(link: &Path, target: &Path) {
    let before = fs::read_link(link).unwrap();
    nndl_atomic_file::write_bytes(link, b"new contents").unwrap();
    let meta = fs::symlink_metadata(link).unwrap();
    assert!(meta.file_type().is_symlink(), "{link:?} was replaced");
    assert_eq!(fs::read_link(link).unwrap(), before);
    assert_eq!(fs::read(target).unwrap(), b"new contents");
}

#[test]
fn a_symlink_is_kept_and_its_target_replaced() {
    let dir = Scratch::new("symlink");
    let real = dir.path().join("real");
    let links = dir.path().join("links");
    fs::create_dir_all(&real).unwrap();
    fs::create_dir_all(&links).unwrap();
    let target = real.join("model.json");
    write_with_mode(&target, "old", 0o640);

    // Absolute.
    let absolute = links.join("absolute.json");
    std::os::unix::fs::symlink(&target, &absolute).unwrap();
    save_through_link(&absolute, &target);
    // Relative to the link's directory, not to the current one.
    let relative = links.join("relative.json");
    std::os::unix::fs::symlink("../real/model.json", &relative).unwrap();
    save_through_link(&relative, &target);
    // A chain: link to a (relative) link.
    let chain = dir.path().join("chain.json");
    std::os::unix::fs::symlink("links/relative.json", &chain).unwrap();
    save_through_link(&chain, &target);

    assert_eq!(mode(&target), 0o640);
    // The temp file went to the target's directory and is gone; none went to the links'.
    assert_eq!(listing(&real), vec!["model.json"]);
    assert_eq!(listing(&links), vec!["absolute.json", "relative.json"]);
    assert_eq!(dir.listing(), vec!["chain.json", "links", "real"]);
}

#[test]
fn a_dangling_symlink_creates_the_file_it_names() {
    let dir = Scratch::new("dangling");
    fs::create_dir(dir.path().join("real")).unwrap();
    let link = dir.path().join("out.json");
    std::os::unix::fs::symlink("real/out.json", &link).unwrap();
    nndl_atomic_file::write_bytes(&link, b"created").unwrap();
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(
        fs::read(dir.path().join("real/out.json")).unwrap(),
        b"created"
    );
    assert_eq!(listing(&dir.path().join("real")), vec!["out.json"]);

    // Into a directory that does not exist: nothing is created, the link stays.
    let nowhere = dir.path().join("nowhere.json");
    std::os::unix::fs::symlink("missing/out.json", &nowhere).unwrap();
    let err = nndl_atomic_file::write_bytes(&nowhere, b"x").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert!(fs::symlink_metadata(&nowhere)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(!dir.path().join("missing").exists());
}

#[test]
fn a_symlink_loop_is_an_error() {
    let dir = Scratch::new("loop");
    let a = dir.path().join("a");
    let b = dir.path().join("b");
    std::os::unix::fs::symlink(&b, &a).unwrap();
    std::os::unix::fs::symlink(&a, &b).unwrap();
    assert!(nndl_atomic_file::write_bytes(&a, b"x").is_err());
    assert!(fs::symlink_metadata(&a).unwrap().file_type().is_symlink());
    assert_eq!(dir.listing(), vec!["a", "b"]);
}

#[test]
fn a_read_only_file_is_refused_and_left_as_it_was() {
    // Root (which these tests may well run as) could write it: the refusal is the crate's.
    let dir = Scratch::new("read-only");
    let target = dir.path().join("frozen.json");
    write_with_mode(&target, "keep", 0o444);
    let link = dir.path().join("link.json");
    std::os::unix::fs::symlink("frozen.json", &link).unwrap();
    for path in [&target, &link] {
        let err = nndl_atomic_file::write_bytes(path, b"new").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(
            err.to_string().contains("frozen.json is read-only"),
            "{err}"
        );
    }
    assert_eq!(fs::read_to_string(&target).unwrap(), "keep");
    assert_eq!(mode(&target), 0o444);
    assert_eq!(dir.listing(), vec!["frozen.json", "link.json"]);
}

#[test]
fn a_directory_or_a_link_to_one_is_refused() {
    let dir = Scratch::new("dir-link");
    let sub = dir.path().join("sub");
    fs::create_dir(&sub).unwrap();
    let link = dir.path().join("link");
    std::os::unix::fs::symlink("sub", &link).unwrap();
    for path in [&sub, &link] {
        let err = nndl_atomic_file::write_bytes(path, b"x").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::IsADirectory, "{path:?}");
        assert!(err.to_string().contains("sub is a directory"), "{err}");
    }
    assert!(listing(&sub).is_empty());
    assert!(fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn a_fifo_is_written_in_place() {
    let dir = Scratch::new("fifo");
    let fifo = dir.path().join("out.fifo");
    let status = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(status.success());
    let reader = {
        let fifo = fifo.clone();
        // Not joined before the fifo is checked: were it replaced, this open would wait forever.
        std::thread::spawn(move || {
            let mut got = Vec::new();
            File::open(&fifo).unwrap().read_to_end(&mut got).unwrap();
            got
        })
    };
    nndl_atomic_file::write_bytes(&fifo, b"through the fifo").unwrap();
    assert!(fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo());
    assert_eq!(reader.join().unwrap(), b"through the fifo");
    assert_eq!(dir.listing(), vec!["out.fifo"]);
}

#[test]
fn another_open_file_of_the_process_is_appended_to() {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let dir = Scratch::new("fd");
    let target = dir.path().join("log.txt");
    // Opened to write from the start, as `exec 3> log.txt` would.
    let mut open = File::create(&target).unwrap();
    open.write_all(b"written before\n").unwrap();
    let inode = open.metadata().unwrap().ino();
    let fd = open.as_raw_fd();
    for path in [format!("/proc/self/fd/{fd}"), format!("/dev/fd/{fd}")] {
        nndl_atomic_file::write_bytes(&path, b"saved\n").unwrap();
    }
    assert_eq!(
        fs::read_to_string(&target).unwrap(),
        "written before\nsaved\nsaved\n"
    );
    assert_eq!(fs::metadata(&target).unwrap().ino(), inode);
    assert_eq!(dir.listing(), vec!["log.txt"]);
}

/// What the child saving `PAYLOAD` at `path` writes to its stdout, a pipe.
fn piped_stdout(wrapper: &[&str], script: &str, path: &str) -> String {
    let mut c = child(wrapper, script, path, "PAYLOAD\n");
    let out = succeeds(c.stdout(Stdio::piped()));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs the child saving `PAYLOAD` at `path` with its stdout a file in a scratch directory
/// `tag`, as `prog --json /dev/stdout > out.txt` makes it; asserts the saved bytes come after
/// what was printed and before what is printed next (libtest's "ok"), in that same file.
fn assert_saved_between_prints(wrapper: &[&str], script: &str, path: &str, tag: &str) {
    let dir = Scratch::new(tag);
    let out_txt = dir.path().join("out.txt");
    let file = File::create(&out_txt).unwrap();
    let inode = file.metadata().unwrap().ino();
    let mut c = child(wrapper, script, path, "PAYLOAD\n");
    succeeds(c.env(CHILD_PRINT, "printed first").stdout(file));
    let text = fs::read_to_string(&out_txt).unwrap();
    assert!(
        text.contains("printed first\nPAYLOAD\nok\n"),
        "{path}: {text}"
    );
    assert_eq!(fs::metadata(&out_txt).unwrap().ino(), inode);
    assert_eq!(dir.listing(), vec!["out.txt"]);
}

#[test]
fn stdout_is_written_in_order_with_what_is_printed() {
    // `/dev/fd/1` and `/proc/self/fd/1` are stdout, whatever it is. (`/dev/stdout`, a link to
    // the latter, is tested in a private `/dev`: see `device_nodes_are_written_in_place`.)
    for path in ["/dev/fd/1", "/proc/self/fd/1"] {
        let stdout = piped_stdout(&[], "exec \"$@\"", path);
        assert!(stdout.contains("PAYLOAD\n"), "{path}: {stdout}");
        assert_saved_between_prints(&[], "exec \"$@\"", path, "stdout");
    }
}

/// Whether this process may make a private mount namespace (root in a sandbox, say).
fn unshare_works() -> bool {
    let ok = Command::new("unshare")
        .args(["-m", "true"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("note: `unshare -m` does not work here; device nodes not tested");
    }
    ok
}

#[test]
fn device_nodes_are_written_in_place() {
    // Never the real `/dev`: a tmpfs mounted over it in a mount namespace of the child's own,
    // holding only the nodes made here.
    if !unshare_works() {
        return;
    }
    let private_dev = "mount -t tmpfs nndl-atomic-test /dev \
        && mknod -m 666 /dev/null c 1 3 && mknod -m 666 /dev/full c 1 7 \
        && ln -s /proc/self/fd /dev/fd && ln -s /proc/self/fd/1 /dev/stdout";
    let nodes_kept = "test -c /dev/null && test -c /dev/full && test -L /dev/stdout \
        && test \"$(ls -A /dev | tr '\\n' ' ')\" = 'fd full null stdout '";

    let script = format!("{private_dev} && \"$@\" && {nodes_kept}");
    let unshare = ["unshare", "-m"];

    // `--json /dev/null`: the bytes vanish, the node stays.
    succeeds(&mut child(&unshare, &script, "/dev/null", "discarded"));

    // `--save /dev/full`: the write fails (ENOSPC), and the node stays.
    succeeds(child(&unshare, &script, "/dev/full", "too much").env(CHILD_FAILS, "1"));

    // `--json /dev/stdout | jq`: the bytes arrive on the pipe, the link stays.
    let stdout = piped_stdout(&unshare, &script, "/dev/stdout");
    assert!(stdout.contains("PAYLOAD\n"), "{stdout}");

    // `--json /dev/stdout > out.txt`: after what was printed, in the same file.
    assert_saved_between_prints(&unshare, &script, "/dev/stdout", "dev-stdout");
}

/// Makes a file as a killed save of `name` leaves it: `.name.XXXXXX.tmp`, some contents,
/// last modified `age` ago.
fn leftover(dir: &Path, file: &str, age: Duration) -> File {
    let f = File::create(dir.join(file)).unwrap();
    std::io::Write::write_all(&mut &f, &[0u8; 4096]).unwrap();
    f.set_modified(SystemTime::now() - age).unwrap();
    f
}

#[test]
fn temp_files_of_killed_saves_are_removed_by_the_next_save() {
    let dir = Scratch::new("stale");
    let old = Duration::from_secs(60);
    let stale = ".out.json.a1B2c3.tmp";
    leftover(dir.path(), stale, old);
    // A live save's, as old but locked: its writer is slow, not dead.
    let locked = ".out.json.d4E5f6.tmp";
    let live = leftover(dir.path(), locked, old);
    live.try_lock().unwrap();
    // Unlocked but new: its writer may not have locked it yet.
    let fresh = ".out.json.g7H8i9.tmp";
    leftover(dir.path(), fresh, Duration::ZERO);
    // Old and unlocked, but not a temp file of `out.json`: of `out.json.bak`, of another
    // name, not tempfile's name pattern, a directory.
    let others = [
        ".out.json.bak.j1K2l3.tmp",
        ".other.json.m4N5o6.tmp",
        ".out.json.tmp",
        ".out.json.p7-q8r.tmp",
        "out.json.s9T0u1.tmp",
    ];
    for name in others {
        leftover(dir.path(), name, old);
    }
    fs::create_dir(dir.path().join(".out.json.v2W3x4.tmp")).unwrap();

    nndl_atomic_file::write_bytes(dir.path().join("out.json"), b"new").unwrap();
    let mut expected: Vec<&str> = vec!["out.json", locked, fresh, ".out.json.v2W3x4.tmp"];
    expected.extend(others);
    expected.sort();
    assert_eq!(dir.listing(), expected);

    // Once its writer is gone (the lock goes with its file), the locked one goes too. A child
    // forked by a test running beside this one (mkfifo, unshare) shares the open file, and so
    // the lock, until it execs: wait until the lock is free, as a dead writer's is.
    drop(live);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while File::open(dir.path().join(locked))
        .unwrap()
        .try_lock()
        .is_err()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the lock outlived its file by 10 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    nndl_atomic_file::write_bytes(dir.path().join("out.json"), b"newer").unwrap();
    expected.retain(|n| *n != locked);
    assert_eq!(dir.listing(), expected);
}

#[test]
fn a_save_holds_a_lock_on_its_temp_file_while_writing() {
    let dir = Scratch::new("lock");
    let target = dir.path().join("out.json");
    nndl_atomic_file::write(&target, |w| {
        let temps: Vec<String> = dir.listing();
        assert_eq!(temps.len(), 1, "{temps:?}");
        let temp = File::open(dir.path().join(&temps[0])).unwrap();
        assert!(
            matches!(temp.try_lock(), Err(fs::TryLockError::WouldBlock)),
            "{} is not locked",
            temps[0]
        );
        w.write_all(b"x")
    })
    .unwrap();
    assert_eq!(fs::read(&target).unwrap(), b"x");
}
