//! Validated settings built from [`super::ScanArgs`] with no I/O: contradictions between
//! flags are caught here, before any file is touched.

use std::path::PathBuf;

pub use super::bench_config::{BenchConfig, SweepConfig};
use super::{DetectArgs, EmbedderChoice, Format, InputArgs, ScanArgs};
use crate::detect::clustering::ClusteringConfig;
use crate::detect::knn::KnnConfig;
use crate::detect::shift::ShiftConfig;
use crate::detect::spectral::SpectralConfig;
use crate::detect::tokens::TokenConfig;
use crate::embed::probe::ProbeConfig;
use crate::embed::View;
use crate::pipeline::{DetectConfig, DetectorKind};
use crate::verdict::VerdictConfig;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error(
        "--image-size `{0}` is not WIDTHxHEIGHT with both between 1 and {MAX_SIDE}, e.g. 28x28"
    )]
    ImageSize(String),
    #[error("column `{column}` is given both as {first} and as {second}")]
    ColumnTwice {
        column: String,
        first: &'static str,
        second: &'static str,
    },
    #[error("--image-col and --text-col cannot both be given: a dataset has one payload")]
    TwoPayloads,
    #[error("--features and --{0} cannot both be given: a dataset has one payload")]
    FeaturesWithPayload(&'static str),
    #[error("--features was given an empty column name")]
    EmptyFeature,
    #[error("--embedder precomputed needs --embeddings FILE.npy")]
    PrecomputedWithoutFile,
    #[error("{0} {1} is out of range; expected a value {2}")]
    Range(&'static str, String, &'static str),
    #[error(transparent)]
    Attack(#[from] crate::attack::AttackError),
    #[error(transparent)]
    Plan(#[from] crate::bench::sweep::PlanError),
}

/// Largest image side accepted for `--image-size` and by the decoder.
pub const MAX_SIDE: u32 = 16_384;

/// Which input columns play which role. `None` means "infer".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Columns {
    pub label: Option<String>,
    pub id: Option<String>,
    pub features: Option<Vec<String>>,
    pub image: Option<String>,
    pub text: Option<String>,
}

/// What to read: the input path, column roles, image size, declared schema.
#[derive(Debug, Clone)]
pub struct InputConfig {
    pub path: PathBuf,
    pub columns: Columns,
    pub image_size: Option<(u32, u32)>,
    pub schema: Option<PathBuf>,
    pub progress: bool,
    /// A table may have no feature column: every view of the run comes from `--embeddings`
    /// (`--embedder precomputed`), so the labels alone are read from it.
    pub payload_optional: bool,
}

impl InputConfig {
    /// `stderr_is_terminal` decides, with `--quiet`, whether progress bars are drawn.
    pub fn from_args(args: InputArgs, stderr_is_terminal: bool) -> Result<Self, ConfigError> {
        let columns = Columns {
            label: args.label,
            id: args.id,
            features: args.features,
            image: args.image_col,
            text: args.text_col,
        };
        check_columns(&columns)?;
        Ok(InputConfig {
            path: args.input,
            columns,
            image_size: args.image_size.as_deref().map(parse_size).transpose()?,
            schema: args.schema,
            progress: stderr_is_terminal && !args.quiet,
            payload_optional: false,
        })
    }
}

#[derive(Debug, Clone)]
pub struct ScanConfig {
    pub input: InputConfig,
    /// `None` with `--validate-only`.
    pub detect: Option<DetectConfig>,
    pub strict: bool,
    /// Label issues fail the gate above this share of the rows used.
    pub max_label_issues: Option<f64>,
    pub format: Format,
    pub out: Option<PathBuf>,
    /// `--html FILE`: the report as one self-contained page.
    pub html: Option<PathBuf>,
    /// `--memory-limit`: a Parquet table whose in-memory scan is estimated above it is
    /// streamed (`crate::stream`); None: half the machine's memory.
    pub memory_limit: Option<u64>,
    /// `--work-dir`: where a streaming scan keeps its files (None: the system temp folder).
    pub work_dir: Option<PathBuf>,
}

impl ScanConfig {
    pub fn from_args(args: ScanArgs, stderr_is_terminal: bool) -> Result<Self, ConfigError> {
        let mut input = InputConfig::from_args(args.input, stderr_is_terminal)?;
        input.payload_optional = !args.validate_only
            && args.detect.embedder == EmbedderChoice::Precomputed
            && args.detect.embeddings.is_some();
        Ok(ScanConfig {
            input,
            detect: (!args.validate_only)
                .then(|| detect_config(args.detect))
                .transpose()?,
            strict: args.strict,
            max_label_issues: args.max_label_issues,
            format: args.format,
            out: args.out,
            html: args.html,
            memory_limit: args.memory_limit,
            work_dir: args.work_dir,
        })
    }
}

pub(super) fn detect_config(args: DetectArgs) -> Result<DetectConfig, ConfigError> {
    if let Some(eps) = args.poison_rate {
        if !(eps > 0.0 && eps <= 0.5) {
            return Err(ConfigError::Range(
                "--poison-rate",
                eps.to_string(),
                "in (0, 0.5]",
            ));
        }
    }
    if !(args.neighbour_share > 0.0 && args.neighbour_share <= 1.0) {
        return Err(ConfigError::Range(
            "--neighbour-share",
            args.neighbour_share.to_string(),
            "in (0, 1]",
        ));
    }
    if !(args.significance > 0.0 && args.significance < 1.0) {
        return Err(ConfigError::Range(
            "--significance",
            args.significance.to_string(),
            "in (0, 1)",
        ));
    }
    if !(0.0..1.0).contains(&args.noise_budget) {
        return Err(ConfigError::Range(
            "--noise-budget",
            args.noise_budget.to_string(),
            "in [0, 1)",
        ));
    }
    if !(0.0..1.0).contains(&args.shift_threshold) {
        return Err(ConfigError::Range(
            "--shift-threshold",
            args.shift_threshold.to_string(),
            "in [0, 1)",
        ));
    }
    if !(0.0..=1.0).contains(&args.token_share) {
        return Err(ConfigError::Range(
            "--token-share",
            args.token_share.to_string(),
            "in [0, 1]",
        ));
    }
    if args.token_group < 2 {
        return Err(ConfigError::Range(
            "--token-group",
            args.token_group.to_string(),
            "at least 2",
        ));
    }
    if args.knn_k == 0 {
        return Err(ConfigError::Range("--knn-k", "0".into(), "at least 1"));
    }
    if args.width == 0 {
        return Err(ConfigError::Range("--width", "0".into(), "at least 1"));
    }
    if args.epochs == Some(0) {
        return Err(ConfigError::Range("--epochs", "0".into(), "at least 1"));
    }
    use DetectorKind::{Clustering, Knn, Spectral};
    let all = || vec![Spectral, Clustering, Knn];
    let mut plan = match args.embedder {
        // Measured best (README, "Choosing the default"): label consistency on the raw view,
        // confirmed on the probe; spectral signatures on the probe; clustering on both.
        EmbedderChoice::Auto if args.embeddings.is_none() => {
            vec![
                (View::Raw, vec![Knn, Clustering]),
                (View::Probe, vec![Spectral, Clustering, Knn]),
            ]
        }
        // Given a model's activations: they take the probe's place. Label consistency stays on
        // the raw view, because a model trained on poisoned data has learned its triggers: in
        // its activations the poisons sit among their new label (digits, 10 % BadNets or blend,
        // an MLP's penultimate layer: fused F1 0.000 on the activations alone, 1.000 with the
        // raw view; benches/activations.py).
        EmbedderChoice::Auto => vec![(View::Raw, vec![Knn, Clustering])],
        EmbedderChoice::Precomputed => {
            if args.embeddings.is_none() {
                return Err(ConfigError::PrecomputedWithoutFile);
            }
            vec![]
        }
        EmbedderChoice::Raw => vec![(View::Raw, all())],
        EmbedderChoice::Minilm => vec![(View::Minilm, all())],
        // As auto, with the ImageNet features where the raw pixels were.
        EmbedderChoice::MobilenetV2 => vec![
            (View::MobilenetV2, vec![Knn, Clustering]),
            (View::Probe, vec![Spectral, Clustering, Knn]),
        ],
        EmbedderChoice::Probe => vec![(View::Probe, all())],
        EmbedderChoice::All => vec![(View::Raw, all()), (View::Probe, all())],
    };
    if args.embeddings.is_some() {
        plan.insert(0, (View::Precomputed, all()));
    }
    Ok(DetectConfig {
        device: args.device,
        plan,
        embeddings: args.embeddings.map(crate::pipeline::Embeddings::Npy),
        probe: ProbeConfig {
            epochs: args.epochs,
            net: args.probe_net,
            width: args.width,
            seed: args.seed,
            ..Default::default()
        },
        spectral: SpectralConfig {
            variant: args.spectral_variant,
            poison_rate: args.poison_rate,
            ..Default::default()
        },
        clustering: ClusteringConfig {
            reduce: args.reduce,
            seed: args.seed,
            ..Default::default()
        },
        knn: KnnConfig {
            k: args.knn_k,
            index: args.knn_index,
            probe: args.knn_probe as usize,
            min_recall: args.knn_recall,
            ..Default::default()
        },
        shift: ShiftConfig {
            threshold: args.shift_threshold,
            alpha: args.significance,
            seed: args.seed,
            ..Default::default()
        },
        tokens: TokenConfig {
            threshold: args.token_share,
            alpha: args.significance,
            min_group: args.token_group,
            ..Default::default()
        },
        verdict: VerdictConfig {
            neighbour_share: args.neighbour_share,
            alpha: args.significance,
            noise_budget: args.noise_budget,
        },
        model: args.model,
    })
}

fn check_columns(c: &Columns) -> Result<(), ConfigError> {
    if c.image.is_some() && c.text.is_some() {
        return Err(ConfigError::TwoPayloads);
    }
    if let Some(features) = &c.features {
        if c.image.is_some() {
            return Err(ConfigError::FeaturesWithPayload("image-col"));
        }
        if c.text.is_some() {
            return Err(ConfigError::FeaturesWithPayload("text-col"));
        }
        if features.iter().any(|f| f.is_empty()) {
            return Err(ConfigError::EmptyFeature);
        }
    }
    let mut named: Vec<(&str, &'static str)> = Vec::new();
    let singles = [
        (&c.label, "--label"),
        (&c.id, "--id"),
        (&c.image, "--image-col"),
        (&c.text, "--text-col"),
    ];
    for (col, flag) in singles {
        if let Some(col) = col {
            named.push((col, flag));
        }
    }
    for f in c.features.iter().flatten() {
        named.push((f, "--features"));
    }
    for (i, (col, flag)) in named.iter().enumerate() {
        if let Some((_, first)) = named[..i].iter().find(|(c, _)| c == col) {
            return Err(ConfigError::ColumnTwice {
                column: col.to_string(),
                first,
                second: flag,
            });
        }
    }
    Ok(())
}

/// Parses `WxH`, e.g. `28x28`.
pub fn parse_size(text: &str) -> Result<(u32, u32), ConfigError> {
    let bad = || ConfigError::ImageSize(text.to_string());
    let (w, h) = text.split_once(['x', 'X']).ok_or_else(bad)?;
    let side = |s: &str| {
        s.trim()
            .parse::<u32>()
            .ok()
            .filter(|v| (1..=MAX_SIDE).contains(v))
    };
    Ok((side(w).ok_or_else(bad)?, side(h).ok_or_else(bad)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attack::{AttackConfig, AttackKind};
    use clap::Parser;

    fn config(argv: &[&str]) -> Result<ScanConfig, ConfigError> {
        let args = crate::cli::Args::parse_from([&["poisongate", "scan", "in.csv"], argv].concat());
        let crate::cli::Command::Scan(scan) = args.command else {
            panic!("not a scan")
        };
        ScanConfig::from_args(scan, true)
    }

    #[test]
    fn sizes_parse_and_bad_sizes_are_named() {
        assert_eq!(parse_size("28x32"), Ok((28, 32)));
        assert_eq!(parse_size("8X8"), Ok((8, 8)));
        for bad in ["28", "0x5", "axb", "99999x2", "5x"] {
            assert_eq!(parse_size(bad), Err(ConfigError::ImageSize(bad.into())));
        }
    }

    #[test]
    fn a_column_in_two_roles_is_rejected() {
        let err = config(&["--label", "y", "--features", "a,y"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "column `y` is given both as --label and as --features"
        );
        assert!(config(&["--label", "y", "--id", "y"]).is_err());
        assert!(config(&["--features", "a,a"]).is_err());
    }

    #[test]
    fn one_payload_only() {
        assert_eq!(
            config(&["--image-col", "i", "--text-col", "t"]).unwrap_err(),
            ConfigError::TwoPayloads
        );
        assert!(config(&["--features", "a", "--text-col", "t"]).is_err());
    }

    #[test]
    fn detector_options_are_checked() {
        let err = config(&["--poison-rate", "0.9"]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--poison-rate 0.9 is out of range; expected a value in (0, 0.5]"
        );
        assert!(config(&["--knn-k", "0"]).is_err());
        assert!(config(&["--validate-only"]).unwrap().detect.is_none());
        let views = |argv: &[&str]| -> Vec<View> {
            config(argv)
                .unwrap()
                .detect
                .unwrap()
                .plan
                .iter()
                .map(|p| p.0)
                .collect()
        };
        assert_eq!(views(&[]), [View::Raw, View::Probe]);
        assert_eq!(views(&["--embedder", "probe"]), [View::Probe]);
        assert_eq!(
            views(&["--embeddings", "e.npy"]),
            [View::Precomputed, View::Raw]
        );
        assert_eq!(
            views(&["--embeddings", "e.npy", "--embedder", "precomputed"]),
            [View::Precomputed]
        );
        assert!(matches!(
            config(&["--embedder", "precomputed"]),
            Err(ConfigError::PrecomputedWithoutFile)
        ));
        assert_eq!(
            views(&["--embeddings", "e.npy", "--embedder", "raw"]),
            [View::Precomputed, View::Raw]
        );
    }

    fn bench(argv: &[&str]) -> Result<AttackConfig, ConfigError> {
        let args =
            crate::cli::Args::parse_from([&["poisongate", "bench", "in.csv"], argv].concat());
        let crate::cli::Command::Bench(bench) = args.command else {
            panic!("not a bench")
        };
        BenchConfig::from_args(bench, true).map(|c| c.attack)
    }

    #[test]
    fn attack_options_reach_the_attack_and_contradictions_are_refused() {
        use crate::attack::{AttackError, Mapping, PatchPosition};
        let defaults = bench(&[]).unwrap();
        assert_eq!(defaults, AttackConfig::default());
        let set = bench(&[
            "--attack",
            "targeted-flip",
            "--source",
            "3",
            "--target",
            "7",
            "--patch",
            "4",
            "--patch-position",
            "top-left",
            "--sig-delta",
            "30",
            "--sig-frequency",
            "2.5",
            "--attack-seed",
            "9",
        ])
        .unwrap();
        assert_eq!(
            (set.kind, set.source.as_deref(), set.target.as_deref()),
            (AttackKind::TargetedFlip, Some("3"), Some("7"))
        );
        assert_eq!((set.patch, set.position), (4, PatchPosition::TopLeft));
        assert_eq!((set.sig_delta, set.sig_frequency, set.seed), (30.0, 2.5, 9));
        let all = bench(&["--attack", "blend", "--mapping", "all-to-all"]).unwrap();
        assert_eq!(all.mapping, Mapping::AllToAll);
        let refused = |argv: &[&str]| bench(argv).unwrap_err();
        assert_eq!(
            refused(&["--attack", "targeted-flip"]),
            ConfigError::Attack(AttackError::MissingSource)
        );
        assert_eq!(
            refused(&["--attack", "flip", "--source", "1"]),
            ConfigError::Attack(AttackError::SourceUnused("flip"))
        );
        assert_eq!(
            refused(&["--attack", "sig", "--mapping", "all-to-all"]),
            ConfigError::Attack(AttackError::MappingUnsupported("sig"))
        );
        assert_eq!(
            refused(&[
                "--attack",
                "badnets",
                "--mapping",
                "all-to-all",
                "--target",
                "1"
            ]),
            ConfigError::Attack(AttackError::TargetWithAllToAll)
        );
        assert_eq!(
            refused(&["--sig-delta", "0"]).to_string(),
            "--sig-delta 0 is out of range; expected a value in (0, 255]"
        );
        assert!(matches!(
            refused(&["--sig-frequency", "0"]),
            ConfigError::Range("--sig-frequency", ..)
        ));
        assert!(matches!(
            refused(&["--patch", "0"]),
            ConfigError::Range("--patch", ..)
        ));
    }

    #[test]
    fn progress_follows_quiet_and_terminal() {
        assert!(config(&[]).unwrap().input.progress);
        assert!(!config(&["--quiet"]).unwrap().input.progress);
    }
}
