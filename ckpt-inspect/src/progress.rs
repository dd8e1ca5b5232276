//! A progress bar on stderr for long work, shown only when stderr is a terminal.

use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// A progress bar that is a no-op unless stderr is a terminal.
#[derive(Debug, Clone)]
pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// A byte-based bar of `total` bytes labelled `what` (hidden when stderr is not a tty,
    /// or when `total` is unknown and 0).
    pub fn bytes(what: &'static str, total: u64) -> Progress {
        if !std::io::stderr().is_terminal() || total == 0 {
            return Progress(None);
        }
        let pb = ProgressBar::new(total);
        if let Ok(st) = ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        ) {
            pb.set_style(st.progress_chars("=> "));
        }
        pb.set_message(what);
        Progress(Some(pb))
    }
    /// A hidden bar.
    pub fn none() -> Progress {
        Progress(None)
    }
    /// Set the position.
    pub fn set(&self, pos: u64) {
        if let Some(p) = &self.0 {
            p.set_position(pos);
        }
    }
    /// Remove the bar.
    pub fn finish(&self) {
        if let Some(p) = &self.0 {
            p.finish_and_clear();
        }
    }
}
