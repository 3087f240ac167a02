//! Progress bars on stderr (indicatif). Hidden with `--quiet` or when stderr is not a terminal,
//! so machine output on stdout and logs in CI stay clean.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Raised by the binary's Ctrl-C handler ([`interrupt`]): every run stops at its next step.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Asks every run in this process to stop at its next step (the binary's first Ctrl-C), so
/// that it cleans up (a streaming scan's work folder) before it exits.
pub fn interrupt() {
    INTERRUPTED.store(true, Ordering::Relaxed);
}

/// Progress bars, and the flag a caller raises to stop a run at its next step (the Python
/// package's Ctrl-C).
#[derive(Clone)]
pub struct Progress {
    multi: MultiProgress,
    cancel: Arc<AtomicBool>,
}

impl Progress {
    pub fn new(enabled: bool) -> Self {
        let target = if enabled {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Progress {
            multi: MultiProgress::with_draw_target(target),
            cancel: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The flag that asks the run to stop: set it from another thread.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.cancel)
    }

    /// Whether the run was asked to stop.
    pub fn cancelled(&self) -> bool {
        self.cancel.load(Ordering::Relaxed) || INTERRUPTED.load(Ordering::Relaxed)
    }

    pub fn hidden() -> Self {
        Self::new(false)
    }

    /// A bar over `len` items of work, e.g. images to decode.
    pub fn bar(&self, len: u64, message: &'static str) -> ProgressBar {
        let style = ProgressStyle::with_template(
            "{msg:>12} [{bar:30}] {human_pos}/{human_len} elapsed {elapsed} eta {eta}",
        )
        .expect("static template is valid")
        .progress_chars("=> ");
        self.multi.add(
            ProgressBar::new(len)
                .with_style(style)
                .with_message(message),
        )
    }

    /// A spinner for a step whose size is not known up front, e.g. reading a file.
    pub fn spinner(&self, message: impl Into<String>) -> ProgressBar {
        let style = ProgressStyle::with_template("{spinner} {msg} {elapsed}")
            .expect("static template is valid");
        let bar = self.multi.add(
            ProgressBar::new_spinner()
                .with_style(style)
                .with_message(message.into()),
        );
        bar.enable_steady_tick(Duration::from_millis(120));
        bar
    }
}
