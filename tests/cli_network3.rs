//! network3's outputs beyond training: the picture of misclassified digits.

mod cli_support;

use cli_support::{run_in, Scratch};

#[test]
fn misclassified_draws_exactly_the_digits_the_net_gets_wrong() {
    let s = Scratch::new("misclassified");
    let png = s.path("wrong.png");
    let r = run_in(
        &s.0,
        "network3",
        &[
            "--train-limit",
            "200",
            "--epochs",
            "1",
            "--threads",
            "1",
            "--layers",
            "fc:30 softmax:10",
            "--misclassified",
            &s.arg("wrong.png"),
        ],
    );
    let out = r.ok();
    // One epoch: the final weights are the best validation epoch's, whose test accuracy is
    // printed; the picture holds every other test digit.
    let pct: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("Corresponding test accuracy of "))
        .and_then(|v| v.trim_end_matches('%').parse().ok())
        .unwrap_or_else(|| panic!("no test accuracy in\n{out}"));
    let drawn: usize = r
        .stderr
        .lines()
        .find_map(|l| l.strip_suffix(&format!(" misclassified digits drawn in {}", png.display())))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in\n{}", r.stderr));
    let wrong = 10_000.0 * (1.0 - pct / 100.0);
    assert!(
        (drawn as f64 - wrong).abs() < 1.0,
        "{drawn} drawn, {wrong} wrong"
    );
    assert!(drawn > 0);
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    // 12 tiles per row, 3x zoom, 20 px captions: the height grows with the count.
    let height = u32::from_be_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]);
    let rows = drawn.div_ceil(12) as u32;
    assert!(
        height > rows * 84 && height < rows * 130 + 60,
        "{height} px for {rows} rows"
    );
}

#[test]
fn filters_draws_the_first_conv_layer_and_refuses_a_net_without_one() {
    let s = Scratch::new("filters");
    let quick = ["--train-limit", "100", "--epochs", "1", "--threads", "1"];
    let mut args: Vec<&str> = quick.to_vec();
    let png = s.arg("filters.png");
    args.extend([
        "--layers",
        "conv:6x5x5,pool:2,relu fc:20,relu softmax:10",
        "--filters",
        &png,
    ]);
    let r = run_in(&s.0, "network3", &args);
    r.ok();
    let bytes = std::fs::read(s.path("filters.png")).unwrap();
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
    let mut args: Vec<&str> = quick.to_vec();
    args.extend(["--layers", "fc:20 softmax:10", "--filters", &png]);
    let r = run_in(&s.0, "network3", &args);
    assert!(
        r.one_line_error().contains("not a conv-pool layer"),
        "{}",
        r.stderr
    );
}
