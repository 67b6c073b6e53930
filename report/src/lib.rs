//! Run records for nndl's example programs: what every `--json`, `--plot` and progress bar a
//! program writes is made of.
//!
//! - [`RunRecord`] / [`EpochRecord`]: a run's settings and per-epoch metrics, written as one JSON
//!   object ([`RunRecord::write_json`]) that scripts can compare across runs.
//! - [`plot_png`]: accuracy and cost curves per epoch, like the figures of the book's chapter 3.
//! - [`tiles_png`]: small grey pictures in a captioned grid (misclassified digits, filters).
//! - [`Progress`]: a progress bar on stderr while an epoch runs, hidden when stderr is not a
//!   terminal; [`Steps`], the same for coarse steps counted from several threads.
//!
//! The drawing (`plot_png`, `tiles_png`, ...) is the feature `plots` (on by default): without
//! it the crate has no image dependencies.
//!
//! Every file this crate writes is saved with `atomic_file`, so a killed run leaves the
//! previous file.
//!
//! The plots' text uses DejaVu Sans, embedded in the binary (`assets/DejaVuSans.ttf`, Bitstream
//! Vera licence, permissive, reproduced in `assets/LICENSE-DejaVu.txt`), so no system font is needed.
//!
//! ```
//! use nndl_report::{EpochRecord, Progress, RunRecord};
//!
//! # fn main() -> Result<(), nndl_report::ReportError> {
//! # let dir = std::env::temp_dir().join(format!("report-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! let mut run = RunRecord::new("network2", serde_json::json!({"eta": 0.5, "epochs": 2}));
//! for epoch in 0..2 {
//!     let mut bar = Progress::new(50_000, &format!("Epoch {epoch}"));
//!     for _mini_batch in 0..5_000 {
//!         bar.inc(10); // one SGD step on 10 images
//!     }
//!     bar.finish();
//!     run.push_epoch(EpochRecord {
//!         evaluation_accuracy: Some(0.95),
//!         training_cost: Some(0.4),
//!         ..EpochRecord::new(epoch, 50_000, 2.0, 2.3)
//!     });
//! }
//! run.finish(4.7);
//! run.write_json(dir.join("run.json"))?;
//! # #[cfg(feature = "plots")]
//! nndl_report::plot_png(&run, dir.join("run.png"), "network2 [784, 30, 10]")?;
//! assert_eq!(RunRecord::read_json(dir.join("run.json"))?, run);
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

#[cfg(feature = "plots")]
mod canvas;
mod error;
#[cfg(feature = "plots")]
mod plot;
mod progress;
mod record;
#[cfg(feature = "plots")]
mod tiles;

pub use error::ReportError;
#[cfg(feature = "plots")]
pub use plot::{
    plot_charts_png, plot_png, render_charts_png, render_png, Chart, Curve, PLOT_HEIGHT, PLOT_WIDTH,
};
pub use progress::{Progress, Steps};
pub use record::{EpochRecord, RunRecord};
#[cfg(feature = "plots")]
pub use tiles::{render_tiles_png, tiles_png, Tile};

/// Saves `bytes` at `path` atomically (`atomic_file`); an error names `path`.
pub(crate) fn save(path: &std::path::Path, bytes: &[u8]) -> Result<(), ReportError> {
    atomic_file::write_bytes(path, bytes).map_err(|source| ReportError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Saves a rendered PNG at `path`; a rendering failure becomes a plot error naming `path`.
#[cfg(feature = "plots")]
pub(crate) fn save_png(
    path: &std::path::Path,
    png: Result<Vec<u8>, ReportError>,
) -> Result<(), ReportError> {
    let png = png.map_err(|e| match e {
        ReportError::Render(message) => ReportError::Plot {
            path: path.to_path_buf(),
            message,
        },
        other => other,
    })?;
    save(path, &png)
}
