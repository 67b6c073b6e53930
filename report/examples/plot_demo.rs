//! Writes demo plots to the directory given as the first argument (default: the current one).

use nndl_report::{plot_png, EpochRecord, RunRecord};

fn main() -> Result<(), nndl_report::ReportError> {
    let dir = std::env::args().nth(1).unwrap_or_else(|| ".".into());
    let dir = std::path::Path::new(&dir);
    let mut run = RunRecord::new("network2", serde_json::json!({"eta": 0.5, "lambda": 5.0}));
    for i in 0..30 {
        let t = i as f64;
        run.push_epoch(EpochRecord {
            training_accuracy: Some(0.99 - 0.08 * (-t / 6.0).exp()),
            evaluation_accuracy: Some(0.975 - 0.07 * (-t / 5.0).exp()),
            validation_accuracy: Some(0.972 - 0.07 * (-t / 5.0).exp()),
            test_accuracy: Some(0.970 - 0.07 * (-t / 5.5).exp()),
            training_cost: Some(0.3 + 0.9 * (-t / 5.0).exp()),
            evaluation_cost: Some(0.45 + 0.7 * (-t / 4.0).exp() + 0.002 * t),
            ..EpochRecord::new(i, 50_000, 2.0, 2.5)
        });
    }
    run.finish(75.0);
    plot_png(
        &run,
        dir.join("demo30.png"),
        "network2 [784, 100, 10], eta 0.5, lambda 5.0",
    )?;
    let mut short = RunRecord::new("network", serde_json::json!({}));
    for (i, a) in [0.9, 0.93, 0.945].into_iter().enumerate() {
        short.push_epoch(EpochRecord {
            evaluation_accuracy: Some(a),
            ..EpochRecord::new(i, 50_000, 2.0, 2.5)
        });
    }
    plot_png(&short, dir.join("demo3.png"), "network [784, 30, 10]")?;
    Ok(())
}
