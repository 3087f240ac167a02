//! Command-line arguments exactly as the user typed them (clap types, no I/O). `config` turns
//! them into validated settings.

pub mod bench_config;
pub mod config;
mod values;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

pub use self::values::parse_bytes;
use self::values::parse_share;

pub const EXIT_CODES: &str = "\
Exit codes:
  0  the gate passes: no validation errors and no sample suspected of poisoning (label
     issues are warnings; with --strict, warnings and label issues fail the gate too)
  1  the gate fails: validation errors, suspected poisoning, or label issues over
     --max-label-issues
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
    /// Plant each attack x rate x seed of a plan in turn and summarise every detector over
    /// the seeds, with no-filter, random-filter and perfect-filter controls.
    Sweep(SweepArgs),
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

    /// Representations to compute: `auto` uses the probe (or the --embeddings file) for
    /// spectral signatures and activation clustering and the raw view for k-NN label
    /// consistency.
    #[arg(long, value_enum, default_value_t = EmbedderChoice::Auto)]
    pub embedder: EmbedderChoice,

    /// Precomputed embeddings (a model's activations, or any vectors): float32/float64 .npy,
    /// n x d, rows in dataset order. They are added to the raw view, not put in its place
    /// (see --embedder).
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

    /// Neighbour search: exact, or approximate for large CPU runs (ivf: an inverted file
    /// over k-means partitions; hnsw: an HNSW graph).
    #[arg(long, value_enum, default_value_t = crate::detect::knn::NeighbourIndex::Exact)]
    pub knn_index: crate::detect::knn::NeighbourIndex,

    /// With --knn-index ivf: the fewest partitions each query searches; more when the
    /// sampled recall needs them to reach --knn-recall.
    #[arg(long, default_value_t = crate::detect::knn::DEFAULT_PROBE as u32, value_parser = clap::value_parser!(u32).range(1..))]
    pub knn_probe: u32,

    /// With --knn-index ivf: the recall@k that the search must reach, with 95 % confidence,
    /// on 1,024 sampled queries searched exactly (0: keep --knn-probe as given).
    #[arg(long, default_value_t = crate::detect::knn::DEFAULT_MIN_RECALL)]
    pub knn_recall: f64,

    /// Verdict: a sample is a label issue when one other label holds at least this share of
    /// its neighbours.
    #[arg(long, default_value_t = crate::verdict::VerdictConfig::default().neighbour_share)]
    pub neighbour_share: f64,

    /// Verdict: the false-alarm level of each poisoning test on clean data (family-wise,
    /// Bonferroni over classes, halves or token groups).
    #[arg(long, value_name = "ALPHA", default_value_t = crate::verdict::VerdictConfig::default().alpha)]
    pub significance: f64,

    /// Verdict: label noise is suspected when isolated label contradictions make up more than
    /// this share of the cleaner half of the classes (a lower confidence bound at
    /// --significance).
    #[arg(long, default_value_t = crate::verdict::VerdictConfig::default().noise_budget)]
    pub noise_budget: f64,

    /// Verdict: a half of a class is a shifted copy of the other classes when, centred, at
    /// most this share of its samples' neighbours come from itself, and 0.1 less than in the
    /// other half (0 turns the test off).
    #[arg(long, default_value_t = crate::detect::shift::ShiftConfig::default().threshold)]
    pub shift_threshold: f64,

    /// Verdict, text only: the texts of one class that share a token (at least
    /// --token-group of them, and 95 % of all texts holding it) are flagged together when
    /// their neighbours carry another label far more than the class's do (a test at
    /// --significance) and on average at least this share of them do (0 turns the test off).
    #[arg(long, default_value_t = crate::detect::tokens::TokenConfig::default().threshold)]
    pub token_share: f64,

    /// Texts of one class that must share a token for the shared-token test to judge it.
    #[arg(long, default_value_t = crate::detect::tokens::TokenConfig::default().min_group)]
    pub token_group: usize,

    /// Probe training epochs [default: about 800 steps, 3 to 30 epochs].
    #[arg(long)]
    pub epochs: Option<usize>,

    /// Probe network: auto takes the CNN for images at least 8 px a side after pooling to at
    /// most 32 px, and the MLP otherwise (tables, text, small images).
    #[arg(long, value_enum, default_value_t = crate::embed::probe::ProbeNet::Auto)]
    pub probe_net: crate::embed::probe::ProbeNet,

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
    /// stands in for raw). With --embeddings, the file takes the probe's place: every detector
    /// runs on it, and label consistency is still judged on the raw view.
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
    /// Only the --embeddings file, for every detector: no raw view (for text, no MiniLM). A
    /// model's activations hide what its training learned: a planted trigger's samples sit
    /// with their new label, so label consistency cannot see them there.
    Precomputed,
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

    /// Treat warnings as errors, and label issues as failing the gate.
    #[arg(long)]
    pub strict: bool,

    /// Fail the gate when label issues exceed this share of the rows used ("2%" or 0.02).
    #[arg(long, value_name = "SHARE", value_parser = parse_share)]
    pub max_label_issues: Option<f64>,

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

    /// Memory budget ("3GiB", "512MiB", bytes): a Parquet or CSV table whose in-memory scan
    /// is estimated above it is streamed, one column at a time (a CSV from a Parquet copy in
    /// the work folder), with its matrices on disk [default: half the machine's memory].
    #[arg(long, value_name = "SIZE", value_parser = parse_bytes)]
    pub memory_limit: Option<u64>,

    /// Folder for a streaming scan's temporary files (about 8 bytes a value of the table;
    /// removed at the end) [default: the system temp folder].
    #[arg(long, value_name = "DIR")]
    pub work_dir: Option<PathBuf>,
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

    /// Share of the usable labelled rows to poison (for sig, at most the target class's
    /// share; for targeted-flip, the source class's).
    #[arg(long, default_value_t = 0.1)]
    pub rate: f64,

    #[command(flatten)]
    pub trigger: TriggerArgs,

    /// Seed for choosing and building the poisons.
    #[arg(long, default_value_t = 0)]
    pub attack_seed: u64,

    /// Evaluate a dataset poisoned elsewhere: a CSV with the columns id and is_poison (1/0),
    /// every row listed once; nothing is planted.
    #[arg(long, value_name = "FILE.csv", conflicts_with = "attack")]
    pub truth: Option<PathBuf>,

    #[arg(long, value_enum, default_value_t = BenchFormat::Table)]
    pub format: BenchFormat,

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

/// How the attacks of `bench` and `sweep` build their poisons.
#[derive(Debug, clap::Args)]
pub struct TriggerArgs {
    /// Target class: what badnets, blend and targeted-flip relabel to, and the class sig
    /// poisons [default: the first class].
    #[arg(long, value_name = "CLASS")]
    pub target: Option<String>,

    /// Source class of a targeted-flip: only its rows are relabelled to the target.
    #[arg(long, value_name = "CLASS")]
    pub source: Option<String>,

    /// How badnets and blend relabel: every poison to the target, or class y to y + 1
    /// (mod the number of classes), poisons drawn from every class.
    #[arg(long, value_enum, default_value_t = crate::attack::Mapping::AllToOne)]
    pub mapping: crate::attack::Mapping,

    /// Patch side in pixels, clipped to the image (images), or trigger columns (tables).
    #[arg(long, default_value_t = crate::attack::DEFAULT_PATCH)]
    pub patch: usize,

    /// Where the image patch sits; `random` is one seeded place shared by every poison.
    #[arg(long, value_enum, default_value_t = crate::attack::PatchPosition::BottomRight)]
    pub patch_position: crate::attack::PatchPosition,

    /// Blend weight of the pattern.
    #[arg(long, default_value_t = crate::attack::DEFAULT_ALPHA)]
    pub alpha: f64,

    /// SIG amplitude on the 0-255 pixel scale.
    #[arg(long, default_value_t = crate::attack::DEFAULT_SIG_DELTA)]
    pub sig_delta: f64,

    /// SIG frequency: periods of the sinusoid across the image width.
    #[arg(long, default_value_t = crate::attack::DEFAULT_SIG_FREQUENCY)]
    pub sig_frequency: f64,

    /// The phrase a BadNets attack inserts into text samples.
    #[arg(long, default_value = crate::attack::DEFAULT_TRIGGER)]
    pub trigger: String,
}

#[derive(Debug, clap::Args)]
pub struct SweepArgs {
    #[command(flatten)]
    pub input: InputArgs,

    #[command(flatten)]
    pub detect: DetectArgs,

    #[command(flatten)]
    pub trigger: TriggerArgs,

    /// The plan as TOML: `attacks = [...]`, `rates = [...]`, `seeds = [...]`; each list can be
    /// replaced by its flag.
    #[arg(long, value_name = "FILE.toml")]
    pub plan: Option<PathBuf>,

    /// Attacks to plant in turn [default: badnets,blend,flip,clean]. `clean` runs once per
    /// seed, whatever the rates.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "A,B")]
    pub attacks: Option<Vec<crate::attack::AttackKind>>,

    /// Poison rates [default: 0.1].
    #[arg(long, value_delimiter = ',', value_name = "R,S")]
    pub rates: Option<Vec<f64>>,

    /// Seeds; each sets both the attack's and the detectors' seed (overriding --seed)
    /// [default: 0,1,2].
    #[arg(long, value_delimiter = ',', value_name = "S,T")]
    pub seeds: Option<Vec<u64>>,

    #[arg(long, value_enum, default_value_t = BenchFormat::Table)]
    pub format: BenchFormat,
}

/// The output formats of `bench`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchFormat {
    /// A table for the terminal.
    #[value(alias = "text")]
    Table,
    /// The report as JSON.
    Json,
    /// One row per method, with a header.
    Csv,
    /// A Markdown table.
    Markdown,
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

    /// Separate Gaussian groups each class is made of (tabular), as the embeddings of real
    /// data often are; 1: one cluster a class.
    #[arg(long, default_value_t = 1)]
    pub groups: usize,

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
