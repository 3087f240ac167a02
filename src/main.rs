//! The `poisongate` binary: parse arguments, run, map the result to an exit code.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicI32, Ordering};

use clap::Parser;
use poisongate::ExitStatus;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// candle allocates a new buffer for every tensor op. glibc's malloc maps and unmaps each one
/// above 128 KiB, so training the probe spent more time faulting fresh pages in the kernel
/// than computing (benches/RESULTS.md); mimalloc keeps freed memory for reuse.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The signal that stopped the run, SIGINT until one arrives: its exit status is 128 + the
/// signal's number, as shells report it (130 for Ctrl-C, 143 for SIGTERM).
static STOPPED_BY: AtomicI32 = AtomicI32::new(SIGINT);

fn interrupted() -> ExitCode {
    ExitCode::from((128 + STOPPED_BY.load(Ordering::Relaxed)) as u8)
}

/// The first SIGINT or SIGTERM (Ctrl-C, or a pipeline's timeout) asks the run to stop at its
/// next step and clean up (a streaming scan's work folder can hold gigabytes); the second
/// stops the process at once.
fn watch_signals() {
    let Ok(mut signals) = Signals::new([SIGINT, SIGTERM]) else {
        return;
    };
    std::thread::spawn(move || {
        let mut seen = false;
        for signal in signals.forever() {
            if seen {
                std::process::exit(128 + signal);
            }
            seen = true;
            STOPPED_BY.store(signal, Ordering::Relaxed);
            eprintln!("poisongate: stopping at the next step (Ctrl-C again stops at once)");
            poisongate::progress::interrupt();
        }
    });
}

fn main() -> ExitCode {
    watch_signals();
    let args = match poisongate::cli::Args::try_parse() {
        Ok(args) => args,
        Err(e) => {
            // clap prints help and version to stdout (exit 0) and usage errors to stderr.
            let _ = e.print();
            return if e.use_stderr() {
                ExitStatus::Error.into()
            } else {
                ExitStatus::Success.into()
            };
        }
    };
    match poisongate::run(args, std::io::stderr().is_terminal()) {
        Ok(status) => status.into(),
        Err(err) => {
            if is_broken_pipe(&err) {
                return ExitStatus::Success.into();
            }
            if err.is_interrupted() {
                eprintln!("poisongate: interrupted");
                return interrupted();
            }
            eprintln!(
                "poisongate: error: {}",
                poisongate::clip_message(&err.to_string())
            );
            let mut cause = std::error::Error::source(&err);
            while let Some(c) = cause {
                eprintln!("  caused by: {}", poisongate::clip_message(&c.to_string()));
                cause = c.source();
            }
            ExitStatus::Error.into()
        }
    }
}

/// A closed stdout (`poisongate scan ... | head`) is not an error.
fn is_broken_pipe(err: &poisongate::Error) -> bool {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(c) = cause {
        if let Some(io) = c.downcast_ref::<std::io::Error>() {
            return io.kind() == std::io::ErrorKind::BrokenPipe;
        }
        cause = c.source();
    }
    false
}
