//! The streaming scan against the in-memory one on the same Parquet file: the same findings,
//! subset and per-class detectors (bit for bit), and a k-NN search whose recall is measured.

use std::path::Path;

use clap::Parser;
use polars::prelude::*;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

use crate::cli::config::ScanConfig;
use crate::progress::Progress;
use crate::report::detection::Outcome as Detected;
use crate::scan::{scan, Outcome};

/// 12 Gaussian classes in 6 features, with 10 % of the rows a shifted copy (features 0 and 1
/// raised by 10, relabelled to class 0), 2 % flipped labels, a NaN, a null label, a conflicting duplicate, a
/// string feature with one non-numeric value, a constant column and an id column.
pub(super) fn write_table(path: &Path, n: usize) {
    let mut df = table(n);
    let file = std::fs::File::create(path).unwrap();
    ParquetWriter::new(file)
        .with_row_group_size(Some(500))
        .finish(&mut df)
        .unwrap();
}

/// [`write_table`]'s table as CSV.
fn write_csv(path: &Path, n: usize) {
    let mut df = table(n);
    let file = std::fs::File::create(path).unwrap();
    CsvWriter::new(file).finish(&mut df).unwrap();
}

fn table(n: usize) -> DataFrame {
    let mut rng = rand::rngs::StdRng::seed_from_u64(11);
    let noise = Normal::new(0.0f64, 1.0).unwrap();
    let classes = 12;
    let centres: Vec<Vec<f64>> = (0..classes)
        .map(|_| (0..6).map(|_| 4.0 * noise.sample(&mut rng)).collect())
        .collect();
    let mut features: Vec<Vec<f64>> = vec![Vec::new(); 6];
    let mut labels: Vec<Option<i64>> = Vec::new();
    for i in 0..n {
        let c = rng.random_range(0..classes);
        let poison = i % 10 == 3 && c != 0;
        for (j, f) in features.iter_mut().enumerate() {
            let v = centres[c][j] + noise.sample(&mut rng);
            f.push(if poison && j < 2 { v + 10.0 } else { v });
        }
        let flip = i % 50 == 7;
        labels.push(Some(if poison {
            0
        } else if flip {
            ((c + 1) % classes) as i64
        } else {
            c as i64
        }));
    }
    features[2][5] = f64::NAN;
    labels[7] = None;
    for f in features.iter_mut() {
        f[9] = f[8];
    }
    labels[9] = Some((labels[8].unwrap() + 1) % classes as i64);
    let text: Vec<String> = features[5]
        .iter()
        .enumerate()
        .map(|(i, v)| if i == 20 { "n/a".into() } else { v.to_string() })
        .collect();
    let mut columns: Vec<Column> = features[..5]
        .iter()
        .enumerate()
        .map(|(j, f)| Column::new(format!("f{j}").into(), f))
        .collect();
    columns.push(Column::new("f5".into(), text));
    columns.push(Column::new("flat".into(), vec![1.5f64; n]));
    columns.push(Column::new("label".into(), labels));
    let ids: Vec<String> = (0..n).map(|i| format!("r{i}")).collect();
    columns.push(Column::new("id".into(), ids));
    DataFrame::new(n, columns).unwrap()
}

fn config_of(path: &Path, work: &Path, argv: &[&str]) -> ScanConfig {
    let path = path.to_str().unwrap();
    let work = work.to_str().unwrap();
    let base = ["poisongate", "scan", path, "--id", "id", "--work-dir", work];
    let args = crate::cli::Args::parse_from([&base[..], argv].concat());
    let crate::cli::Command::Scan(args) = args.command else {
        panic!("not a scan")
    };
    ScanConfig::from_args(args, false).unwrap()
}

fn run(path: &Path, work: &Path, argv: &[&str]) -> Outcome {
    scan(&config_of(path, work, argv), &Progress::hidden()).unwrap()
}

pub(super) fn json<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_value(v).unwrap()
}

#[test]
fn a_streamed_scan_finds_what_the_in_memory_scan_finds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.parquet");
    write_table(&path, 3000);
    same_as_in_memory(&path, dir.path());
}

/// A CSV table streams from its Parquet copy (cut into many chunks here) and finds what the
/// in-memory read of the CSV finds.
#[test]
fn a_streamed_csv_scan_finds_what_the_in_memory_scan_finds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.csv");
    write_csv(&path, 3000);
    assert!(std::fs::metadata(&path).unwrap().len() > 8 * super::csv::CHUNK_BYTES);
    let outcome = same_as_in_memory(&path, dir.path());
    assert_eq!(json(&outcome.report.input)["format"], "csv");
}

/// Runs `path` in memory and streamed (its work folder in `dir`, the only other entry there)
/// and checks that they agree; returns the streamed outcome.
fn same_as_in_memory(path: &Path, dir: &Path) -> Outcome {
    let common = ["--embedder", "raw", "--knn-index", "ivf"];
    let memory = run(
        path,
        dir,
        &[&common[..], &["--memory-limit", "1TiB"]].concat(),
    );
    let streamed = run(
        path,
        dir,
        &[&common[..], &["--memory-limit", "1KiB"]].concat(),
    );
    // The work folder is gone.
    let left: Vec<_> = std::fs::read_dir(dir).unwrap().collect();
    assert_eq!(left.len(), 1, "{left:?}");

    assert_eq!(
        json(&memory.report.findings),
        json(&streamed.report.findings)
    );
    assert_eq!(json(&memory.report.input), json(&streamed.report.input));
    assert_eq!(json(&memory.report.classes), json(&streamed.report.classes));
    let rules: Vec<&str> = streamed
        .report
        .findings
        .iter()
        .map(|f| f.rule.name())
        .collect();
    for rule in [
        "nan_value",
        "missing_label",
        "conflicting_duplicates",
        "non_numeric",
        "constant_column",
    ] {
        assert!(rules.contains(&rule), "{rule} not in {rules:?}");
    }
    let (Detected::Ran(a), Detected::Ran(b)) = (&memory.detection, &streamed.detection) else {
        panic!("detection ran in both")
    };
    assert_eq!(a.subset, b.subset);
    assert!(
        b.views[0].embedding.is_none(),
        "the streamed view stays on disk"
    );
    assert!(
        b.verdict.notes.iter().any(|n| n.starts_with("streamed:")),
        "{:?}",
        b.verdict.notes
    );
    let names = |x: &crate::pipeline::Analysis| -> Vec<&str> {
        x.runs.iter().map(|r| r.detection.detector).collect()
    };
    assert_eq!(names(a), names(b));
    assert!(names(b).contains(&"shift"), "{:?}", names(b));
    for (x, y) in a.runs.iter().zip(&b.runs) {
        let (x, y) = (&x.detection, &y.detection);
        if x.detector == "knn" {
            // Both inverted files state a recall of at least 0.95 on their sample.
            let recall = |d: &crate::detect::Detection| -> f64 {
                let (_, v) = d
                    .parameters
                    .iter()
                    .find(|(k, _)| k == "recall_sampled")
                    .unwrap();
                v.split(' ').next().unwrap().parse().unwrap()
            };
            assert!(
                recall(x) >= 0.95 && recall(y) >= 0.95,
                "{} {}",
                recall(x),
                recall(y)
            );
            let agree = x.flags.iter().zip(&y.flags).filter(|(p, q)| p == q).count();
            assert!(agree as f64 >= 0.99 * x.flags.len() as f64, "{agree}");
            continue;
        }
        assert_eq!(x.scores, y.scores, "{}", x.detector);
        assert_eq!(x.flags, y.flags, "{}", x.detector);
        assert_eq!(json(&x.classes), json(&y.classes), "{}", x.detector);
    }
    let flagged = |name: &str| {
        let run = b
            .runs
            .iter()
            .find(|r| r.detection.detector == name)
            .unwrap();
        run.detection.flags.iter().filter(|&&f| f).count()
    };
    // Every detector found something, so that agreeing means something.
    assert!(flagged("shift") > 200, "{}", flagged("shift"));
    assert!(flagged("knn") > 20 && flagged("clustering") > 0);
    assert_eq!(json(&memory.report.gate), json(&streamed.report.gate));
    assert_eq!(memory.report.status(), streamed.report.status());
    let reasons = json(&streamed.report.gate)["reasons"].to_string();
    assert!(reasons.contains("suspected of poisoning"), "{reasons}");
    streamed
}

#[test]
fn the_streamed_neighbours_match_the_exact_ones_at_full_probe() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let (n, d) = (900, 5);
    let values: Vec<f32> = (0..n * d).map(|_| rng.random_range(-1.0..1.0)).collect();
    let spill = super::spill::Spill::create(&dir.path().join("m.f32"), n, d).unwrap();
    spill.write_rows(0, &values).unwrap();
    let k = 7;
    // Every partition searched: the exact answer.
    let (nn, report) = super::ivf::neighbours(
        &spill,
        k,
        usize::MAX,
        1.0,
        dir.path(),
        None,
        0,
        &Progress::hidden(),
    )
    .unwrap();
    let report = report.unwrap();
    assert_eq!(report.probe, report.clusters);
    assert_eq!(report.recall, 1.0);
    let exact = crate::detect::exact::search(&values, n, d, k);
    assert_eq!(crate::detect::exact::recall_of(&exact, &nn, k), 1.0);
    // A small probe keeps the recall it states.
    let again = dir.path().join("again");
    std::fs::create_dir(&again).unwrap();
    let (nn, report) =
        super::ivf::neighbours(&spill, k, 1, 0.0, &again, None, 0, &Progress::hidden()).unwrap();
    let report = report.unwrap();
    assert_eq!(report.probe, 1);
    let measured = crate::detect::exact::recall_of(&exact, &nn, k);
    assert!(
        measured < 1.0 && (measured - report.recall).abs() < 0.1,
        "{measured} {report:?}"
    );
}

#[test]
fn a_streamed_scan_refuses_views_it_cannot_compute() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.parquet");
    write_table(&path, 300);
    let args = crate::cli::Args::parse_from([
        "poisongate",
        "scan",
        path.to_str().unwrap(),
        "--embedder",
        "probe",
        "--memory-limit",
        "1KiB",
        "--work-dir",
        dir.path().to_str().unwrap(),
    ]);
    let crate::cli::Command::Scan(args) = args.command else {
        panic!("not a scan")
    };
    let config = ScanConfig::from_args(args, false).unwrap();
    let err = scan(&config, &Progress::hidden())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("computes the raw view only") && err.contains("t.parquet"),
        "{err}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(
        left.len(),
        1,
        "the work folder is removed on an error too: {left:?}"
    );
}

/// The Ray engine's tasks run in this process through their bytes: every item is encoded, run
/// by `remote::run_task` and its answer decoded; the embedding step reads each file with
/// polars in shards of 700 rows and hands them over last first.
#[derive(Default)]
pub(super) struct Loopback {
    pub(super) stages: std::sync::Mutex<Vec<String>>,
    shared: std::sync::Mutex<Vec<Option<Vec<u8>>>>,
}

impl super::remote::Tasks for Loopback {
    fn map(
        &self,
        stage: &str,
        spec: &[u8],
        items: Vec<super::remote::Item>,
    ) -> Result<Vec<Vec<u8>>, super::StreamError> {
        self.stages.lock().unwrap().push(stage.to_string());
        let shared = self.shared.lock().unwrap();
        items
            .iter()
            .map(|item| {
                let blobs: Vec<&[u8]> = item
                    .shared
                    .iter()
                    .map(|&h| shared[h as usize].as_deref().expect("a released blob"))
                    .collect();
                super::remote::run_task(stage, spec, &item.bytes, &blobs)
            })
            .collect()
    }

    fn share(&self, blob: Vec<u8>) -> Result<u64, super::StreamError> {
        let mut shared = self.shared.lock().unwrap();
        shared.push(Some(blob));
        Ok(shared.len() as u64 - 1)
    }

    fn release(&self) -> Result<(), super::StreamError> {
        self.stages.lock().unwrap().push("release".into());
        self.shared
            .lock()
            .unwrap()
            .iter_mut()
            .for_each(|b| *b = None);
        Ok(())
    }

    fn embed(
        &self,
        spec: &super::remote::RawSpec,
        sink: &super::remote::Sink<'_>,
    ) -> Result<(), super::StreamError> {
        self.stages.lock().unwrap().push("embed".into());
        let spec = super::remote::RawSpec::decode(&spec.encode())?;
        let mut shards = Vec::new();
        let mut first = 0;
        for file in &spec.files {
            let df = ParquetReader::new(std::fs::File::open(file).unwrap())
                .finish()
                .unwrap();
            for start in (0..df.height()).step_by(700) {
                let shard = df.slice(start as i64, 700);
                let values = super::remote::embed_frame(&spec, &shard, file)?;
                shards.push((first + start, values));
            }
            first += df.height();
        }
        for (first, values) in shards.iter().rev() {
            sink(*first, values)?;
        }
        Ok(())
    }

    fn describe(&self) -> String {
        "a loopback".into()
    }
}

/// The report as JSON without its timings and the note that says where the tasks ran.
pub(super) fn comparable(outcome: &Outcome) -> serde_json::Value {
    fn strip(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                map.retain(|k, _| !k.contains("seconds"));
                map.values_mut().for_each(strip);
            }
            serde_json::Value::Array(items) => {
                items.retain(|i| !i.as_str().is_some_and(|s| s.contains("ran as tasks on")));
                items.iter_mut().for_each(strip);
            }
            _ => {}
        }
    }
    let mut v = json(&outcome.report);
    strip(&mut v);
    v
}

#[test]
fn the_scan_with_its_steps_as_tasks_is_the_streamed_scan() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.parquet");
    write_table(&path, 3000);
    let argv = [
        "--embedder",
        "raw",
        "--knn-index",
        "ivf",
        "--memory-limit",
        "64KiB",
    ];
    let streamed = run(&path, dir.path(), &argv);
    let tasks = Loopback::default();
    let config = config_of(&path, dir.path(), &argv);
    let remote = crate::scan::scan_with_tasks(&config, &tasks, &Progress::hidden()).unwrap();
    let stages = tasks.stages.lock().unwrap().clone();
    for stage in ["embed", "class", "ivf-ask", "ivf-search", "release"] {
        assert!(
            stages.iter().any(|s| s == stage),
            "{stage} not in {stages:?}"
        );
    }
    // Batches of classes within a quarter of the limit: several calls.
    assert!(
        stages.iter().filter(|s| *s == "class").count() > 3,
        "{stages:?}"
    );
    assert_eq!(comparable(&streamed), comparable(&remote));
    let (Detected::Ran(a), Detected::Ran(b)) = (&streamed.detection, &remote.detection) else {
        panic!("detection ran in both")
    };
    assert!(b
        .verdict
        .notes
        .iter()
        .any(|n| n.contains("ran as tasks on a loopback")));
    for (x, y) in a.runs.iter().zip(&b.runs) {
        assert_eq!(
            x.detection.scores, y.detection.scores,
            "{}",
            x.detection.detector
        );
        assert_eq!(
            x.detection.flags, y.detection.flags,
            "{}",
            x.detection.detector
        );
    }
    assert_eq!(a.runs.len(), b.runs.len());
    assert_eq!(json(&streamed.report.gate), json(&remote.report.gate));
    // scores.parquet's table, row by row.
    let scores =
        |o: &Outcome| crate::report::scores::batch(&o.dataset, &o.flags, &o.detection).unwrap();
    assert_eq!(scores(&streamed), scores(&remote));
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "{left:?}");
}

#[test]
fn the_tasks_engine_refuses_what_it_cannot_stream() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("t.csv");
    std::fs::write(&csv, "a,label\n1,0\n2,1\n").unwrap();
    let config = config_of(&csv, dir.path(), &[]);
    let err = crate::scan::scan_with_tasks(&config, &Loopback::default(), &Progress::hidden())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("Parquet") && err.contains("t.csv"), "{err}");
}
