//! Reading and validating generated tabular sets (criterion). The 1M-row peak-memory figure
//! comes from `benches/validate_1m.sh`, which runs the release binary under `/usr/bin/time`.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use poisongate::cli::config::{Columns, InputConfig, ScanConfig};
use poisongate::cli::{Format, GenerateArgs, GenerateKind};
use poisongate::progress::Progress;

fn generated(
    dir: &std::path::Path,
    name: &str,
    rows: usize,
    features: usize,
) -> std::path::PathBuf {
    let out = dir.join(name);
    poisongate::generate::run(&GenerateArgs {
        kind: GenerateKind::Tabular,
        out: out.clone(),
        rows,
        features,
        classes: 10,
        image_size: "16x16".into(),
        groups: 1,
        shards: None,
        seed: 1,
    })
    .expect("generate the benchmark input");
    out
}

fn config(input: std::path::PathBuf) -> ScanConfig {
    ScanConfig {
        input: InputConfig {
            path: input,
            columns: Columns::default(),
            image_size: None,
            schema: None,
            progress: false,
            payload_optional: false,
        },
        detect: None,
        strict: false,
        max_label_issues: None,
        format: Format::Json,
        out: None,
        html: None,
        memory_limit: None,
        work_dir: None,
    }
}

fn validate(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temporary folder");
    let rows = 100_000;
    let mut group = c.benchmark_group("scan");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(rows as u64));
    for name in ["t.parquet", "t.csv"] {
        let input = generated(dir.path(), name, rows, 64);
        let config = config(input);
        let case = format!("cpu_{}_100k_x64", name.trim_start_matches("t."));
        group.bench_function(case, |b| {
            b.iter(|| poisongate::scan::scan(&config, &Progress::hidden()).expect("scan"))
        });
    }
    group.finish();
}

criterion_group!(benches, validate);
criterion_main!(benches);
