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
    /// Plant a known attack in memory and measure every detector against it.
    Bench(BenchArgs),
    /// Write a seeded synthetic dataset to try the tool on or to benchmark it.
    Generate(GenerateArgs),
}

/// What to read and which columns play which role (shared by `scan` and `bench`).
#[derive(Debug, Clone, clap::Args)]
pub struct InputArgs {
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

    /// No progress bars (they are also hidden when stderr is not a terminal).
    #[arg(long, short)]
    pub quiet: bool,
}

/// How samples are embedded and scored (shared by `scan` and `bench`).
#[derive(Debug, Clone, clap::Args)]
pub struct DetectArgs {
    /// Where to compute embeddings and k-NN.
    #[arg(long, value_enum, default_value_t = crate::device::DeviceChoice::Auto)]
    pub device: crate::device::DeviceChoice,

    /// Representations to compute: `auto` uses the probe for spectral signatures and
    /// activation clustering and the raw view for k-NN label consistency.
    #[arg(long, value_enum, default_value_t = EmbedderChoice::Auto)]
    pub embedder: EmbedderChoice,

    /// Precomputed embeddings: float32/float64 .npy, n x d, rows in dataset order.
    #[arg(long, value_name = "FILE.npy")]
    pub embeddings: Option<PathBuf>,

    /// The pretrained model. For --text-col datasets, a sentence-transformer folder (BERT
    /// family: config.json, tokenizer.json, model.safetensors; default all-MiniLM-L6-v2 as
    /// datasets/models/fetch-minilm.sh fetches it). For --embedder mobilenet_v2, torchvision
    /// MobileNetV2 weights, a .pth file or a folder holding mobilenet_v2-b0353104.pth (default
    /// as datasets/models/fetch-mobilenet.sh fetches it). The defaults are checked against
    /// their pinned SHA-256.
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,

    /// Upper bound on the poison rate; enables spectral signatures' own removal rule
    /// (1.5 x rate per class). The verdict never needs it.
    #[arg(long, value_name = "EPS")]
    pub poison_rate: Option<f64>,

    /// Spectral score: `centred` (the paper) or `uncentred` (ART, BackdoorBench).
    #[arg(long, value_enum, default_value_t = crate::detect::spectral::Variant::Centred)]
    pub spectral_variant: crate::detect::spectral::Variant,

    /// Reduction before activation clustering's 2-means.
    #[arg(long, value_enum, default_value_t = crate::detect::clustering::Reduce::Pca)]
    pub reduce: crate::detect::clustering::Reduce,

    /// Neighbours for k-NN label consistency.
    #[arg(long, default_value_t = crate::detect::knn::DEFAULT_K)]
    pub knn_k: usize,

    /// Neighbour search: exact, or an approximate HNSW graph for large CPU runs.
    #[arg(long, value_enum, default_value_t = crate::detect::knn::NeighbourIndex::Exact)]
    pub knn_index: crate::detect::knn::NeighbourIndex,

    /// Verdict: flag a sample when one other label holds at least this share of its
    /// neighbours.
    #[arg(long, default_value_t = crate::verdict::VerdictConfig::default().neighbour_share)]
    pub neighbour_share: f64,

    /// Verdict: a half of a class is a shifted copy of the other classes when, centred, at
    /// most this share of its samples' neighbours come from itself, and 0.1 less than in the
    /// other half (0 turns the test off).
    #[arg(long, default_value_t = crate::detect::shift::ShiftConfig::default().threshold)]
    pub shift_threshold: f64,

    /// Probe training epochs [default: about 800 steps, 3 to 30 epochs].
    #[arg(long)]
    pub epochs: Option<usize>,

    /// Probe embedding width.
    #[arg(long, default_value_t = 64)]
    pub width: usize,

    /// Seed for the probe, k-means and sampling.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EmbedderChoice {
    /// Probe view for spectral and clustering, raw view for k-NN (for text, the minilm view
    /// stands in for raw).
    Auto,
    /// Standardised features or [0, 1] pixels for every detector (for text: minilm).
    Raw,
    /// Sentence embeddings of the --text-col column (all-MiniLM-L6-v2, or --model) for every
    /// detector.
    Minilm,
    /// Images: as auto, with ImageNet features of torchvision's MobileNetV2 (--model) where
    /// the raw pixels were.
    #[value(name = "mobilenet_v2")]
    MobilenetV2,
    /// The probe network's penultimate activations for every detector.
    Probe,
    /// Both views for every detector (for comparing; slower).
    All,
}

#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    #[command(flatten)]
    pub input: InputArgs,

    #[command(flatten)]
    pub detect: DetectArgs,

    /// Only read and validate: no embeddings, no detectors.
    #[arg(long)]
    pub validate_only: bool,

    /// Treat warnings as errors.
    #[arg(long)]
    pub strict: bool,

    /// Output format on stdout.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Also write DIR/report.json and DIR/scores.parquet (one row per sample).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Also write one self-contained HTML page: the findings, and per class each detector's
    /// score histogram with its rule's cut and a PCA projection coloured by the verdict.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    #[command(flatten)]
    pub input: InputArgs,

    #[command(flatten)]
    pub detect: DetectArgs,

    /// The attack to plant in memory (the input files are never written).
    #[arg(long, value_enum, default_value_t = crate::attack::AttackKind::Clean)]
    pub attack: crate::attack::AttackKind,

    /// Share of the usable labelled rows to poison.
    #[arg(long, default_value_t = 0.1)]
    pub rate: f64,

    /// Target class for patch and blend attacks [default: the first class].
    #[arg(long)]
    pub target: Option<String>,

    /// Patch side in pixels (images) or trigger columns (tables) [default: a tenth of the
    /// shorter image side, at least 1 (3 for 28-32 px images); 3 columns].
    #[arg(long)]
    pub patch: Option<usize>,

    /// Blend weight of the pattern.
    #[arg(long, default_value_t = 0.2)]
    pub alpha: f64,

    /// The phrase a BadNets attack inserts into text samples.
    #[arg(long, default_value = crate::attack::DEFAULT_TRIGGER)]
    pub trigger: String,

    /// Seed for choosing and building the poisons.
    #[arg(long, default_value_t = 0)]
    pub attack_seed: u64,

    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,

    /// Also write, for analysis elsewhere: `samples.csv` (per sample: row, label as planted,
    /// is_poison, every detector's score, the fused score and the flag) and each view's
    /// embedding as `<view>.npy` (rows in the order of samples.csv).
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,

    /// Also write one self-contained HTML page: the scan page's plots, marked by the planted
    /// truth, with each method's ROC curve.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
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
