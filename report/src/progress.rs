//! Progress bars on stderr, drawn only when stderr is a terminal: [`Progress`] for an epoch
//! (images and images/s), [`Steps`] for work counted in coarse steps from several threads (the
//! SVM's binary problems).

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{HumanCount, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How many `inc` calls pass between two looks at the clock for the images/s message.
const RATE_STRIDE: u64 = 64;
/// The images/s message is refreshed at most this often.
const RATE_INTERVAL: Duration = Duration::from_millis(250);

/// The epoch bar's layout. indicatif calls the time remaining `{eta}`; the bar says "left",
/// since in these programs eta is the learning rate.
const EPOCH_TEMPLATE: &str =
    "{prefix} [{bar:40.cyan/blue}] {human_pos}/{human_len} {msg} ({eta} left)";

/// A progress bar over `total` items (images) with the rate in images/s in its message.
///
/// Cost: when stderr is not a terminal there is no indicatif bar at all and [`Progress::inc`]
/// is one addition and one branch, so it can be called once per mini-batch (25,000 times an
/// epoch) for free. When the bar is visible, `inc` forwards to indicatif (an atomic add and a
/// clock read; indicatif redraws at most ~20 times a second) and reads the clock for the rate
/// only every `RATE_STRIDE` calls.
#[derive(Debug)]
pub struct Progress {
    /// `None` when hidden: nothing of indicatif is touched then.
    bar: Option<ProgressBar>,
    total: u64,
    position: u64,
    /// `inc` calls left before the next look at the clock (visible bar only).
    countdown: u64,
    started: Instant,
    last_rate: Instant,
    message: String,
}

impl Progress {
    /// A bar over `total` items labelled `label`, on stderr if it is a terminal, else hidden.
    pub fn new(total: u64, label: &str) -> Progress {
        if std::io::stderr().is_terminal() {
            Progress::visible(total, label)
        } else {
            Progress::hidden(total)
        }
    }

    /// A bar that is never drawn (what [`Progress::new`] gives when stderr is not a terminal).
    pub fn hidden(total: u64) -> Progress {
        let now = Instant::now();
        Progress {
            bar: None,
            total,
            position: 0,
            countdown: RATE_STRIDE,
            started: now,
            last_rate: now,
            message: String::new(),
        }
    }

    /// A bar drawn on stderr.
    fn visible(total: u64, label: &str) -> Progress {
        let bar = stderr_bar(total, label, EPOCH_TEMPLATE);
        let mut p = Progress::hidden(total);
        p.bar = Some(bar);
        p.redraw_message(p.started);
        p
    }

    /// Whether the bar is drawn (stderr is a terminal).
    pub fn is_visible(&self) -> bool {
        self.bar.is_some()
    }

    /// Advances the bar by `n` items (e.g. one mini-batch of images). Cheap; see [`Progress`].
    #[inline]
    pub fn inc(&mut self, n: u64) {
        self.position = self.position.saturating_add(n);
        if let Some(bar) = &self.bar {
            bar.inc(n);
            self.countdown -= 1;
            if self.countdown == 0 {
                self.countdown = RATE_STRIDE;
                let now = Instant::now();
                if now.duration_since(self.last_rate) >= RATE_INTERVAL {
                    self.last_rate = now;
                    self.redraw_message(now);
                }
            }
        }
    }

    /// Items counted so far.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// The total given at creation.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// Items per second since the bar was created (0 before any time has passed).
    pub fn rate(&self) -> f64 {
        rate_at(self.position, self.started.elapsed())
    }

    /// Sets text shown after the images/s figure (e.g. the last cost).
    pub fn set_message(&mut self, message: &str) {
        message.clone_into(&mut self.message);
        if self.bar.is_some() {
            self.redraw_message(Instant::now());
        }
    }

    /// The text of the last [`Progress::set_message`].
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Removes the bar from the terminal (the program then prints its `Epoch n: ...` line).
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    /// Puts "N img/s" and the user's message into the bar's message.
    fn redraw_message(&self, now: Instant) {
        if let Some(bar) = &self.bar {
            let elapsed = now.duration_since(self.started);
            let rate = if self.position == 0 || elapsed.is_zero() {
                "-".to_string()
            } else {
                HumanCount(rate_at(self.position, elapsed).round() as u64).to_string()
            };
            let text = format!("{rate} img/s {}", self.message);
            bar.set_message(text.trim_end().to_string());
        }
    }
}

impl Drop for Progress {
    /// Clears a bar that was not finished, so it does not linger on the terminal.
    fn drop(&mut self) {
        self.finish();
    }
}

/// `count / elapsed` in items per second, 0 for a zero duration.
fn rate_at(count: u64, elapsed: Duration) -> f64 {
    let s = elapsed.as_secs_f64();
    if s > 0.0 {
        count as f64 / s
    } else {
        0.0
    }
}

/// An indicatif bar on stderr over `total` with `template` and `label` as its prefix.
fn stderr_bar(total: u64, label: &str, template: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(template)
        .map(|s| s.progress_chars("=> "))
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_prefix(label.to_string());
    bar
}

/// A bar over a known number of coarse steps with the elapsed time ticking every second, for
/// work that reports no finer progress (LIBSVM solves each binary problem without a callback);
/// `&self` methods, so worker threads can update it.
#[derive(Debug)]
pub struct Steps {
    /// `None` when stderr is not a terminal.
    bar: Option<ProgressBar>,
}

impl Steps {
    /// A bar over `total` steps of `unit` labelled `label`; hidden when stderr is not a terminal.
    pub fn new(total: u64, label: &str, unit: &str) -> Steps {
        if !std::io::stderr().is_terminal() {
            return Steps { bar: None };
        }
        let bar = stderr_bar(total, label, &steps_template(unit));
        bar.enable_steady_tick(Duration::from_secs(1));
        Steps { bar: Some(bar) }
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

/// The steps bar's layout: elapsed time, no estimate of the time left (the steps are too
/// few and too uneven for one).
fn steps_template(unit: &str) -> String {
    format!("{{prefix}} [{{elapsed_precise}}] [{{bar:40}}] {{pos}}/{{len}} {unit} {{msg}}")
}

impl Drop for Steps {
    /// Clears a bar that was not finished, so it does not linger on the terminal.
    fn drop(&mut self) {
        self.finish();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The words a template shows, its `{...}` placeholders left out.
    fn literal_text(template: &str) -> String {
        let mut out = String::new();
        let mut depth = 0;
        for c in template.chars() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                _ if depth == 0 => out.push(c),
                _ => {}
            }
        }
        out
    }

    #[test]
    fn templates_parse_and_never_label_the_time_left_eta() {
        // A template indicatif refuses would silently become its default bar.
        for t in [EPOCH_TEMPLATE.to_string(), steps_template("problems")] {
            assert!(ProgressStyle::with_template(&t).is_ok(), "{t}");
            let words = literal_text(&t).to_lowercase();
            assert!(!words.contains("eta"), "{t}: the learning rate's name");
        }
        assert!(EPOCH_TEMPLATE.contains("{eta} left"), "{EPOCH_TEMPLATE}");
        assert_eq!(literal_text("a {b} c"), "a  c");
    }
}
