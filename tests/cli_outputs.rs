//! What a program does with the paths it writes: a symlink's target is replaced and the link
//! kept, `/dev/stdout` is written in order with what the program prints, a read-only file is
//! refused before training (the device-node cases run in a private /dev in
//! `atomic_file/tests/targets.rs`).

mod cli_support;

use cli_support::{command, run_capped, run_in, with_quick, Scratch};
use std::os::unix::fs::PermissionsExt;

#[test]
fn json_to_dev_stdout_comes_after_the_lines_printed_before_it() {
    let s = Scratch::new("out-stdout");
    let out = command(&s.0, "network2", &with_quick(&["--json", "/dev/stdout"]))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let start = text.find("\n{").expect("the JSON record") + 1;
    let end = text.rfind("\n}").expect("its end") + 2;
    assert!(
        text[..start].contains("Epoch 0 training complete"),
        "{text}"
    );
    let record: serde_json::Value = serde_json::from_str(&text[start..end]).unwrap();
    assert_eq!(record["program"], "network2");
    assert!(text[end..].contains("Test accuracy"), "{text}");
}

#[test]
fn a_symlink_keeps_pointing_at_the_saved_file_and_a_read_only_file_is_refused() {
    let s = Scratch::new("out-links");
    std::fs::create_dir(s.path("real")).unwrap();
    std::os::unix::fs::symlink("real/run.json", s.path("link.json")).unwrap();
    run_in(&s.0, "network2", &with_quick(&["--json", "link.json"])).ok();
    let meta = std::fs::symlink_metadata(s.path("link.json")).unwrap();
    assert!(meta.file_type().is_symlink(), "the link was replaced");
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(s.path("real/run.json")).unwrap()).unwrap();
    assert_eq!(saved["program"], "network2");

    std::fs::write(s.path("ro.json"), b"keep me").unwrap();
    std::fs::set_permissions(s.path("ro.json"), std::fs::Permissions::from_mode(0o444)).unwrap();
    let r = run_capped(&s.0, "network2", &with_quick(&["--json", "ro.json"]), &[]).0;
    let e = r.one_line_error();
    assert!(e.contains("ro.json") && e.contains("read-only"), "{e}");
    assert!(!r.stdout.contains("Epoch 0"), "trained before refusing");
    assert_eq!(std::fs::read(s.path("ro.json")).unwrap(), b"keep me");
}
