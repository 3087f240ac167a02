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

fn main() -> ExitCode {
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
