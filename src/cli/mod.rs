//! Command-line arguments exactly as the user typed them (clap types, no I/O). `config` turns
//! them into validated settings.

pub mod config;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

pub const EXIT_CODES: &str = "\
Exit codes:
  0  clean: no validation errors (and, with --strict, no warnings)
  1  the gate fails: validation errors or suspected poison
  2  poisongate could not do its job: bad arguments, unreadable or malformed input";

#[derive(Debug, Parser)]
#[command(name = "poisongate", version, about, after_help = EXIT_CODES)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read and validate a training set, and report what is wrong with it.
    #[command(after_help = EXIT_CODES)]
    Scan(ScanArgs),
    /// Write a seeded synthetic dataset to try the tool on or to benchmark it.
    Generate(GenerateArgs),
}

#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    /// A .parquet file, a folder of .parquet shards, a .csv/.tsv file, or an image folder
    /// laid out as ROOT/<class>/<image> (PNG or JPEG).
    pub input: PathBuf,

    /// Label column [default: `label` when present].
    #[arg(long, value_name = "COL")]
    pub label: Option<String>,

    /// Id column [default: the row number, 0-based; image folders: the relative path].
    #[arg(long, value_name = "COL")]
    pub id: Option<String>,

    /// Numeric feature columns [default: every numeric column but label and id].
    #[arg(long, value_name = "A,B,C", value_delimiter = ',')]
    pub features: Option<Vec<String>>,

    /// Column holding encoded images (binary, or a struct with a `bytes` field)
    /// [default: the one binary column, if there is exactly one].
    #[arg(long, value_name = "COL")]
    pub image_col: Option<String>,

    /// Column holding text samples.
    #[arg(long, value_name = "COL")]
    pub text_col: Option<String>,

    /// Bring every image to this size [default: the most common size].
    #[arg(long, value_name = "WxH")]
    pub image_size: Option<String>,

    /// TOML file with declared rules: required columns and types, allowed labels, ranges,
    /// null fractions (see README).
    #[arg(long, value_name = "FILE")]
    pub schema: Option<PathBuf>,

    /// Treat warnings as errors.
    #[arg(long)]
    pub strict: bool,

    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Also write DIR/report.json and DIR/scores.parquet (one row per sample).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// No progress bars (they are also hidden when stderr is not a terminal).
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// A readable summary.
    Text,
    /// The report as JSON (schema in the README).
    Json,
}

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// What to write.
    #[arg(value_enum)]
    pub kind: GenerateKind,

    /// Output: a .csv or .parquet file (tabular), a folder (images, or tabular with
    /// --shards), a .parquet file (image-parquet). Must not exist yet.
    pub out: PathBuf,

    /// Rows (tabular) or images per class (images, image-parquet).
    #[arg(long, default_value_t = 1000)]
    pub rows: usize,

    /// Numeric feature columns (tabular).
    #[arg(long, default_value_t = 16)]
    pub features: usize,

    #[arg(long, default_value_t = 4)]
    pub classes: usize,

    /// Image size (images, image-parquet).
    #[arg(long, value_name = "WxH", default_value = "16x16")]
    pub image_size: String,

    /// Write this many Parquet shards into the folder OUT (tabular).
    #[arg(long)]
    pub shards: Option<usize>,

    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum GenerateKind {
    /// Gaussian class clusters as numeric columns plus a `label` column.
    Tabular,
    /// An image folder OUT/<class>/<n>.png of simple seeded class patterns.
    Images,
    /// The same images as PNG bytes in a Parquet `image` struct column, plus `label`.
    ImageParquet,
}
