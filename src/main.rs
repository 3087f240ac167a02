//! The `poisongate` binary: parse arguments, run, map the result to an exit code.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use poisongate::ExitStatus;

/// candle allocates a new buffer for every tensor op. glibc's malloc maps and unmaps each one
/// above 128 KiB, so training the probe spent more time faulting fresh pages in the kernel
/// than computing (benches/RESULTS.md); mimalloc keeps freed memory for reuse.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The exit status of a run stopped by Ctrl-C (128 + SIGINT, as shells report it).
const INTERRUPTED: u8 = 130;

fn main() -> ExitCode {
    // The first Ctrl-C (or SIGTERM, as a pipeline's timeout sends) asks the run to stop at its
    // next step and clean up (a streaming scan's work folder can hold gigabytes); the second
    // stops the process at once.
    let presses = std::sync::atomic::AtomicUsize::new(0);
    let _ = ctrlc::set_handler(move || {
        if presses.fetch_add(1, std::sync::atomic::Ordering::Relaxed) == 0 {
            eprintln!("poisongate: stopping at the next step (Ctrl-C again stops at once)");
            poisongate::progress::interrupt();
        } else {
            std::process::exit(INTERRUPTED.into());
        }
    });
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
                return ExitCode::from(INTERRUPTED);
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
