//! A progress bar on stderr for training and prediction, drawn only when stderr is a terminal.
//!
//! LIBSVM gives no callback while it solves a binary problem, so the bar counts finished binary
//! problems (45 for the ten digits) and a background tick redraws the elapsed time every second
//! in between.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar over a known number of steps; `&self` methods, so worker threads can update it.
#[derive(Debug)]
pub struct Progress {
    /// `None` when stderr is not a terminal.
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar over `total` steps named `label` (e.g. `training`), with the elapsed time ticking
    /// every second; hidden when stderr is not a terminal.
    pub fn new(total: u64, label: &str, unit: &str) -> Progress {
        if !std::io::stderr().is_terminal() {
            return Progress { bar: None };
        }
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
        let template =
            format!("{{prefix}} [{{elapsed_precise}}] [{{bar:40}}] {{pos}}/{{len}} {unit} {{msg}}");
        let style = ProgressStyle::with_template(&template)
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_prefix(label.to_string());
        bar.enable_steady_tick(Duration::from_secs(1));
        Progress { bar: Some(bar) }
    }

    /// Whether the bar is drawn.
    pub fn is_visible(&self) -> bool {
        self.bar.is_some()
    }

    /// Sets the number of finished steps.
    pub fn set(&self, done: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(done);
        }
    }

    /// Removes the bar from the terminal.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}
