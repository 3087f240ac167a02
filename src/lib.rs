//! poisongate: finds poisoned samples in machine-learning training sets.
//!
//! The pipeline: a [`source`] reads files into a [`dataset::Dataset`], [`validate`] reports
//! what is wrong with it, and [`report`] renders the result; [`scan::run`] ties them together
//! and its [`ExitStatus`] is the gate's verdict.

pub mod attack;
pub mod bench;
pub mod cli;
#[cfg(feature = "cuda")]
pub mod cuda;
pub mod dataset;
pub mod detect;
pub mod device;
pub mod embed;
#[cfg(test)]
mod fuzz;
pub mod generate;
pub mod pipeline;
pub mod progress;
pub mod report;
pub mod scan;
pub mod source;
pub mod stream;
pub mod validate;
pub mod verdict;

/// The process exit status: public API for pipelines that gate on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// Nothing wrong found (exit code 0).
    Success,
    /// The gate fails: validation errors or suspected poison (exit code 1).
    Failure,
    /// poisongate could not do its job: bad arguments, unreadable input (exit code 2).
    Error,
}

impl ExitStatus {
    pub fn code(self) -> u8 {
        match self {
            ExitStatus::Success => 0,
            ExitStatus::Failure => 1,
            ExitStatus::Error => 2,
        }
    }
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(status: ExitStatus) -> Self {
        std::process::ExitCode::from(status.code())
    }
}

/// Everything that stops a command from doing its job (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] cli::config::ConfigError),
    #[error(transparent)]
    Source(#[from] source::SourceError),
    #[error(transparent)]
    Schema(#[from] validate::schema::SchemaError),
    #[error(transparent)]
    Report(#[from] report::ReportError),
    #[error(transparent)]
    Generate(#[from] generate::GenerateError),
    #[error(transparent)]
    Embed(#[from] embed::EmbedError),
    #[error(transparent)]
    Attack(#[from] attack::AttackError),
    #[error(transparent)]
    Truth(#[from] bench::truth::TruthError),
    #[error(transparent)]
    Stream(#[from] stream::StreamError),
}

impl Error {
    /// The run stopped because it was asked to (Ctrl-C, or the Python package's cancel).
    pub fn is_interrupted(&self) -> bool {
        matches!(
            self,
            Error::Embed(embed::EmbedError::Cancelled)
                | Error::Stream(stream::StreamError::Interrupted)
        )
    }
}

/// A message with every run of more than [`LONG_WORD`] non-blank characters shortened to its
/// two ends: third-party errors quote the offending value, and a 20 MB CSV cell must not
/// become a 20 MB error line.
pub fn clip_message(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(4096));
    let mut rest = text;
    while !rest.is_empty() {
        let word_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (word, tail) = rest.split_at(word_end);
        let chars = word.chars().count();
        if chars > LONG_WORD {
            let head: String = word.chars().take(60).collect();
            let end: String = word.chars().skip(chars - 20).collect();
            let left_out = word.len() - head.len() - end.len();
            out.push_str(&format!("{head}...[{left_out} bytes left out]...{end}"));
        } else {
            out.push_str(word);
        }
        let blank_end = tail
            .find(|c: char| !c.is_whitespace())
            .unwrap_or(tail.len());
        out.push_str(&tail[..blank_end]);
        rest = &tail[blank_end..];
    }
    out
}

/// Longest run of non-blank characters an error message keeps whole (a long path fits).
const LONG_WORD: usize = 400;

/// Runs one parsed command line.
pub fn run(args: cli::Args, stderr_is_terminal: bool) -> Result<ExitStatus, Error> {
    match args.command {
        cli::Command::Scan(scan) => {
            let config = cli::config::ScanConfig::from_args(scan, stderr_is_terminal)?;
            scan::run(&config)
        }
        cli::Command::Bench(bench) => {
            let config = cli::config::BenchConfig::from_args(bench, stderr_is_terminal)?;
            bench::run(&config)
        }
        cli::Command::Sweep(sweep) => {
            let config = cli::config::SweepConfig::from_args(sweep, stderr_is_terminal)?;
            bench::sweep::run(&config)
        }
        cli::Command::Generate(gen) => {
            generate::run(&gen)?;
            Ok(ExitStatus::Success)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_values_in_messages_are_clipped_to_their_ends() {
        let cell = "9".repeat(20_000_000);
        let message = format!("could not parse `{cell}` as dtype i64 at column 'x0'");
        let clipped = super::clip_message(&message);
        assert!(clipped.len() < 200, "{} bytes", clipped.len());
        assert!(clipped.starts_with("could not parse `999"), "{clipped}");
        assert!(
            clipped.ends_with("999` as dtype i64 at column 'x0'"),
            "{clipped}"
        );
        assert!(clipped.contains("[19999922 bytes left out]"), "{clipped}");
        let short = "cannot read  a/ünïcode path.png\n  caused by: denied";
        assert_eq!(super::clip_message(short), short);
        let wide: String = "é".repeat(500);
        assert!(super::clip_message(&wide).contains("left out"));
    }
}
