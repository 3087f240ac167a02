//! Whether a table streams: its size, the in-memory scan's estimated peak and the memory
//! limit.

use super::{schema, StreamError};
use crate::cli::config::ScanConfig;
use crate::source::tabular::{self, PayloadRole, TabularFormat, TabularInput};
use crate::source::{self, Input, SourceError};
use crate::validate::Finding;
use crate::Error;

/// Bytes a row of `features` numeric columns costs the in-memory scan at its peak, estimated:
/// the f64 frame polars reads (8 a value), the f32 table (4), the raw view (4) and the probe's
/// copy of its input (4), plus about 200 bytes a row for labels, votes, neighbour lists and
/// scores. `benches/stream.sh` measures it against the scan's peak.
pub fn in_memory_bytes(rows: u64, features: u64) -> u64 {
    rows.saturating_mul(features.saturating_mul(20).saturating_add(200))
}

/// The default memory limit: half the machine's memory (`MemTotal`), or None where it cannot
/// be read (the scan then stays in memory unless a limit is given).
pub fn default_limit() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024 / 2)
}

/// Why a scan streams: its size, the estimate and the limit.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub input: TabularInput,
    pub rows: u64,
    pub features: usize,
    pub estimate: u64,
    pub limit: u64,
}

/// Whether `config`'s input is streamed: a Parquet or CSV table of numeric features whose
/// in-memory scan is estimated above the memory limit. Returns the plan and the input's
/// listing findings. Anything else stays in memory.
pub fn plan(config: &ScanConfig) -> Result<Option<(Plan, Vec<Finding>)>, Error> {
    let Some(limit) = config.memory_limit.or_else(default_limit) else {
        return Ok(None);
    };
    Ok(table(config, limit, true)?.filter(|(plan, _)| plan.estimate > limit))
}

/// The plan of a scan whose steps run as tasks (the Ray engine): it streams whatever the
/// table's size, so its input must be a Parquet table of numeric features.
pub fn plan_for_tasks(config: &ScanConfig) -> Result<(Plan, Vec<Finding>), Error> {
    // Without a limit and a /proc/meminfo, a limit of 4 GiB.
    let limit = config
        .memory_limit
        .or_else(default_limit)
        .unwrap_or(4 << 30);
    table(config, limit, false)?.ok_or_else(|| {
        StreamError::Unsupported(format!(
            "{}: the Ray engine reads image folders and Parquet tables of numeric feature columns (a file or a folder of them); scan other inputs with `poisongate scan`",
            config.input.path.display()
        ))
        .into()
    })
}

/// The plan of `config`'s input if it is a Parquet table of numeric features, or (with
/// `csv`) a CSV one whose in-memory scan may be over `limit`.
fn table(
    config: &ScanConfig,
    limit: u64,
    csv: bool,
) -> Result<Option<(Plan, Vec<Finding>)>, Error> {
    let (input, findings) = source::detect(&config.input.path)?;
    let Input::Tabular(input) = input else {
        return Ok(None);
    };
    match input.format {
        TabularFormat::Parquet => plan_of(config, limit, input, findings, None),
        // A CSV the plan cannot read is read in memory, whose read names the problem as it
        // always has (its structural check runs before polars).
        TabularFormat::Csv { separator } if csv => Ok(csv_rows(&input, separator, limit)
            .and_then(|rows| match rows {
                Some(rows) => plan_of(config, limit, input, findings, Some(rows)),
                None => Ok(None),
            })
            .unwrap_or(None)),
        _ => Ok(None),
    }
}

/// The rows of the CSV `input`, or None where it cannot be over `limit`. A row of `h` header
/// fields takes at least `h` bytes (a separator or newline each), and the scan reads at most
/// `h` features: a file of `bytes` under the limit at `bytes / h` rows of `h` features is not
/// counted (a pass that the in-memory read makes again), and polars reads none of it here.
fn csv_rows(input: &TabularInput, separator: u8, limit: u64) -> Result<Option<u64>, Error> {
    let mut bytes = 0;
    let mut fields = usize::MAX;
    for path in &input.files {
        bytes += std::fs::metadata(path)
            .map_err(|e| SourceError::io(path, e))?
            .len();
        fields = fields.min(source::csv_check::header_fields(path, separator)?);
    }
    let h = fields.max(1) as u64;
    if in_memory_bytes(bytes / h, h) <= limit {
        return Ok(None);
    }
    let mut rows = 0;
    for path in &input.files {
        rows += source::csv_check::check(path, separator)?;
    }
    Ok(Some(rows))
}

fn plan_of(
    config: &ScanConfig,
    limit: u64,
    input: TabularInput,
    findings: Vec<Finding>,
    csv_rows: Option<u64>,
) -> Result<Option<(Plan, Vec<Finding>)>, Error> {
    let (_, file_schema) = schema(&input)?;
    let roles = tabular::resolve_roles(&input, &file_schema, &config.input.columns)?;
    let PayloadRole::Features(features) = &roles.payload else {
        return Ok(None);
    };
    if features.is_empty() {
        return Ok(None);
    }
    let rows = match csv_rows {
        Some(rows) => rows,
        None => {
            let mut rows = 0;
            for path in &input.files {
                rows += source::parquet_check::check(path)?;
            }
            rows
        }
    };
    let plan = Plan {
        features: features.len(),
        input,
        rows,
        estimate: in_memory_bytes(rows, features.len() as u64),
        limit,
    };
    Ok(Some((plan, findings)))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::Parser;

    use super::*;
    use crate::progress::Progress;
    use crate::stream::tests::write_table;

    #[test]
    fn the_in_memory_estimate_decides_and_other_inputs_stay_in_memory() {
        assert_eq!(in_memory_bytes(1_000_000, 64), 1_000_000 * (64 * 20 + 200));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.parquet");
        write_table(&path, 200);
        let config = |limit: &str, file: &Path| {
            let args = crate::cli::Args::parse_from([
                "poisongate",
                "scan",
                file.to_str().unwrap(),
                "--memory-limit",
                limit,
            ]);
            let crate::cli::Command::Scan(args) = args.command else {
                panic!("not a scan")
            };
            ScanConfig::from_args(args, false).unwrap()
        };
        assert!(plan(&config("1KiB", &path)).unwrap().is_some());
        assert!(plan(&config("1GiB", &path)).unwrap().is_none());
        let csv = dir.path().join("t.csv");
        std::fs::write(&csv, "a,label\n1,0\n2,1\n").unwrap();
        let (planned, _) = plan(&config("1B", &csv)).unwrap().unwrap();
        assert_eq!((planned.rows, planned.features), (2, 1));
        assert!(plan(&config("1GiB", &csv)).unwrap().is_none());
        // A ragged row is left to the in-memory read, whose error names its line.
        std::fs::write(&csv, "a,label\n1,0\n2\n").unwrap();
        assert!(plan(&config("1B", &csv)).unwrap().is_none());
        let err = crate::scan::scan(&config("1B", &csv), &Progress::hidden())
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("t.csv: line 3"), "{err}");
    }
}
