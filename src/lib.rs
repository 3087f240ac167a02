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
}

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
