//! Running the example programs from integration tests.
//!
//! Cargo gives integration tests the paths of binaries (`CARGO_BIN_EXE_*`) but not of
//! examples, and `cargo test` builds examples without promising where. So the first test that
//! needs an example asks cargo to build it (`cargo build --release --example NAME`, a no-op
//! when `cargo test --release` has just built it) and reads the executable's path from
//! cargo's JSON messages. Runs get the repository's MNIST through `$NNDL_DATA`, a fresh
//! working directory and `RUST_BACKTRACE=1`, so a panic could not hide.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

/// The repository root (the root package's manifest directory).
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The executable of example `name`, built on first use.
pub fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let mut built = BUILT.get_or_init(Default::default).lock().unwrap();
    if let Some(p) = built.get(name) {
        return p.clone();
    }
    let out = Command::new(env!("CARGO"))
        .current_dir(root())
        .args(["build", "--release", "--workspace", "--example", name])
        .arg("--message-format=json-render-diagnostics")
        .output()
        .expect("running cargo");
    assert!(
        out.status.success(),
        "cargo build --example {name} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let exe = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == name)
        .find_map(|m| m["executable"].as_str().map(PathBuf::from))
        .unwrap_or_else(|| panic!("cargo reported no executable for example {name}"));
    built.insert(name.to_string(), exe.clone());
    exe
}

/// The quick settings most runs use: 100 training images, one epoch, one thread.
pub const QUICK: [&str; 6] = ["--train-limit", "100", "--epochs", "1", "--threads", "1"];

/// [`QUICK`] followed by `args`.
pub fn with_quick<'a>(args: &[&'a str]) -> Vec<&'a str> {
    QUICK.iter().copied().chain(args.iter().copied()).collect()
}

/// A fresh directory for one test, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A new empty directory named after `tag`.
    pub fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("nndl-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }

    /// A path inside the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// The same, as a string for an argument list.
    pub fn arg(&self, name: &str) -> String {
        self.path(name).to_string_lossy().into_owned()
    }

    /// Runs example `name` with `args` in this directory.
    pub fn run(&self, name: &str, args: &[&str]) -> Run {
        run_in(&self.0, name, args)
    }

    /// Runs example `name` with [`QUICK`] and `args` in this directory.
    pub fn quick(&self, name: &str, args: &[&str]) -> Run {
        self.run(name, &with_quick(args))
    }

    /// Runs example `name` with `args` in this directory under [`run_capped`]'s cap.
    pub fn capped(&self, name: &str, args: &[&str]) -> Run {
        run_capped(&self.0, name, args, &[]).0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// What a run of an example printed and returned.
pub struct Run {
    /// The example and its arguments, for failure messages.
    pub what: String,
    /// Exit code (-1 if killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    fn of(name: &str, args: &[&str], out: Output) -> Run {
        Run {
            what: format!("{name} {}", args.join(" ")),
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts the run failed the way bad input must fail: exit code 2, one line on stderr
    /// (`error: ...`), no panic, no backtrace; returns that line.
    pub fn one_line_error(&self) -> &str {
        let err = self.stderr.trim_end();
        let what = &self.what;
        assert_eq!(self.code, 2, "{what}: exit code; stderr:\n{}", self.stderr);
        assert!(
            !err.contains('\n') && err.starts_with("error: "),
            "{what}: not one error line:\n{}",
            self.stderr
        );
        assert!(
            !err.contains("panicked") && !err.contains("backtrace"),
            "{what}: {err}"
        );
        err
    }

    /// Asserts the run failed as [`Run::one_line_error`] says, with each of `needles` in its
    /// line; returns the line.
    pub fn refused(&self, needles: &[&str]) -> &str {
        let err = self.one_line_error();
        for n in needles {
            assert!(err.contains(n), "{}: {n:?} not in {err}", self.what);
        }
        err
    }

    /// Asserts success, returning stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code, 0,
            "{}: exit code; stdout:\n{}\nstderr:\n{}",
            self.what, self.stdout, self.stderr
        );
        &self.stdout
    }
}

/// Runs example `name` with `args` in `dir`.
pub fn run_in(dir: &Path, name: &str, args: &[&str]) -> Run {
    let out = command(dir, name, args)
        .output()
        .expect("running the example");
    Run::of(name, args, out)
}

/// The command that runs example `name` with `args` in `dir`, not yet started.
pub fn command(dir: &Path, name: &str, args: &[&str]) -> Command {
    let mut c = Command::new(example(name));
    c.current_dir(dir)
        .args(args)
        .env("NNDL_DATA", root().join("data/mnist"))
        .env("RUST_BACKTRACE", "1");
    c
}

/// The address-space cap of [`run_capped`]: a run that tried a multi-GB allocation would die
/// on it (a signal, not exit code 2) instead of swapping the machine.
pub const CAP: u64 = 4 << 30;

/// Runs example `name` with `args` under `prlimit --as=CAP` (where prlimit exists; else with
/// NNDL_MAX_MEMORY at 3/4 of CAP, the limit the cap itself gives), with `env` set; returns the
/// run and its wall time.
pub fn run_capped(
    dir: &std::path::Path,
    name: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (Run, std::time::Duration) {
    let prlimit = std::process::Command::new("prlimit")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let mut c = if prlimit {
        let mut c = std::process::Command::new("prlimit");
        c.arg(format!("--as={CAP}")).arg("--").arg(example(name));
        c.env_remove("NNDL_MAX_MEMORY");
        c
    } else {
        let mut c = std::process::Command::new(example(name));
        c.env("NNDL_MAX_MEMORY", (CAP / 4 * 3).to_string());
        c
    };
    c.current_dir(dir)
        .args(args)
        .env("NNDL_DATA", root().join("data/mnist"))
        .env("RUST_BACKTRACE", "1");
    for (k, v) in env {
        c.env(k, v);
    }
    let start = std::time::Instant::now();
    let out = c.output().expect("running the example");
    (Run::of(name, args, out), start.elapsed())
}
