//! Progress bars on stderr, hidden when it is not a terminal or with `--no-progress`.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::RunArgs;

pub fn bar(args: &RunArgs, len: u64, message: &'static str) -> ProgressBar {
    if args.no_progress || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len).with_message(message);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:>14} [{elapsed_precise}] {wide_bar} {human_pos}/{human_len} ({per_sec}, {eta})",
    ) {
        bar.set_style(style);
    }
    bar
}

/// Counts requests when the run has a count, milliseconds when it has a duration.
pub fn run_bar(args: &RunArgs, requests: Option<u64>, duration: Option<Duration>) -> ProgressBar {
    match (requests, duration) {
        (Some(n), _) => bar(args, n, "requests"),
        (None, Some(d)) => {
            let bar = bar(args, d.as_millis() as u64, "running");
            if let Ok(style) =
                ProgressStyle::with_template("{prefix:>14} [{elapsed_precise}] {wide_bar} {msg}")
            {
                bar.set_style(style);
                bar.set_prefix("running");
            }
            bar
        }
        (None, None) => ProgressBar::hidden(),
    }
}
