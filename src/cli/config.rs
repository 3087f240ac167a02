//! Validated settings built from [`super::ScanArgs`] with no I/O: contradictions between
//! flags are caught here, before any file is touched.

use std::path::PathBuf;

use super::{Format, ScanArgs};

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

#[derive(Debug, Clone)]
pub struct ScanConfig {
    pub input: PathBuf,
    pub columns: Columns,
    pub image_size: Option<(u32, u32)>,
    pub schema: Option<PathBuf>,
    pub strict: bool,
    pub format: Format,
    pub out: Option<PathBuf>,
    pub progress: bool,
}

impl ScanConfig {
    /// `stderr_is_terminal` decides, with `--quiet`, whether progress bars are drawn.
    pub fn from_args(args: ScanArgs, stderr_is_terminal: bool) -> Result<Self, ConfigError> {
        let columns = Columns {
            label: args.label,
            id: args.id,
            features: args.features,
            image: args.image_col,
            text: args.text_col,
        };
        check_columns(&columns)?;
        let image_size = args.image_size.as_deref().map(parse_size).transpose()?;
        Ok(ScanConfig {
            input: args.input,
            columns,
            image_size,
            schema: args.schema,
            strict: args.strict,
            format: args.format,
            out: args.out,
            progress: stderr_is_terminal && !args.quiet,
        })
    }
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
    fn progress_follows_quiet_and_terminal() {
        assert!(config(&[]).unwrap().progress);
        assert!(!config(&["--quiet"]).unwrap().progress);
    }
}
