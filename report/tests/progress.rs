use nndl_report::Progress;

#[test]
fn hidden_bar_counts_and_keeps_its_message() {
    let mut p = Progress::hidden(25_000 * 10);
    assert!(!p.is_visible());
    for _ in 0..25_000 {
        p.inc(10);
    }
    assert_eq!(p.position(), 250_000);
    assert_eq!(p.total(), 250_000);
    p.set_message("cost 0.123");
    assert_eq!(p.message(), "cost 0.123");
    assert!(p.rate() >= 0.0 && p.rate().is_finite());
    p.finish();
    p.finish(); // finishing twice is harmless
    assert_eq!(p.position(), 250_000);
}

#[test]
fn new_bar_works_whether_or_not_stderr_is_a_terminal() {
    let mut p = Progress::new(100, "Epoch 0");
    for _ in 0..10 {
        p.inc(10);
    }
    p.set_message("done");
    assert_eq!(p.position(), 100);
    p.finish();
}

#[test]
fn position_saturates_instead_of_overflowing() {
    let mut p = Progress::hidden(u64::MAX);
    p.inc(u64::MAX);
    p.inc(1);
    assert_eq!(p.position(), u64::MAX);
}
