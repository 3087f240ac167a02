//! `poisongate generate`: seeded synthetic datasets to try the tool on and to benchmark it.
//! Tabular sets are Gaussian class clusters; image sets are simple per-class patterns with
//! noise. The same seed always writes the same data. Files go through arrow-rs writers.

use std::io::{BufWriter, Cursor, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, BinaryArray, Float64Array, Int64Array, StringArray, StructArray};
use arrow::datatypes::{DataType, Field, Fields, Schema};
use arrow::record_batch::RecordBatch;
use parquet::arrow::ArrowWriter;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

use crate::cli::{config::parse_size, GenerateArgs, GenerateKind};

/// Rows per written batch (and Parquet row group), so a million-row file is never all in
/// memory.
const BATCH_ROWS: usize = 65_536;

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("{} already exists; poisongate generate never overwrites", .0.display())]
    Exists(PathBuf),
    #[error("{}: expected a .csv or .parquet file name, or --shards N with a folder", .0.display())]
    Extension(PathBuf),
    #[error("invalid arguments: {0}")]
    Arguments(String),
    #[error("cannot write {}", .path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}", .path.display())]
    Arrow {
        path: PathBuf,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

pub fn run(args: &GenerateArgs) -> Result<(), GenerateError> {
    if args.out.exists() {
        return Err(GenerateError::Exists(args.out.clone()));
    }
    if args.classes < 1 || args.rows < 1 {
        return Err(GenerateError::Arguments(
            "--rows and --classes must be at least 1".into(),
        ));
    }
    let size = parse_size(&args.image_size).map_err(|e| GenerateError::Arguments(e.to_string()))?;
    match args.kind {
        GenerateKind::Tabular => tabular(args),
        GenerateKind::Images => images(&args.out, args.classes, args.rows, size, args.seed),
        GenerateKind::ImageParquet => {
            image_parquet(&args.out, args.classes, args.rows, size, args.seed)
        }
    }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> GenerateError + '_ {
    move |source| GenerateError::Io {
        path: path.to_owned(),
        source,
    }
}

fn arrow_err<E: std::error::Error + Send + Sync + 'static>(
    path: &Path,
) -> impl FnOnce(E) -> GenerateError + '_ {
    move |e| GenerateError::Arrow {
        path: path.to_owned(),
        source: Box::new(e),
    }
}

/// Gaussian clusters: group centres drawn with spread 3, samples with spread 1 around them;
/// group `g` belongs to class `g % classes`.
struct Clusters {
    centres: Vec<Vec<f64>>,
    classes: usize,
    rng: StdRng,
}

impl Clusters {
    fn new(features: usize, classes: usize, groups: usize, seed: u64) -> Self {
        let mut rng = StdRng::seed_from_u64(seed);
        let spread = Normal::new(0.0, 3.0).expect("constant parameters");
        let centres = (0..classes * groups)
            .map(|_| (0..features).map(|_| spread.sample(&mut rng)).collect())
            .collect();
        Clusters {
            centres,
            classes,
            rng,
        }
    }

    fn batch(&mut self, rows: usize) -> RecordBatch {
        let (d, k) = (self.centres[0].len(), self.centres.len());
        let noise = Normal::new(0.0, 1.0).expect("constant parameters");
        let groups: Vec<usize> = (0..rows).map(|_| self.rng.random_range(0..k)).collect();
        let labels: Vec<i64> = groups.iter().map(|&g| (g % self.classes) as i64).collect();
        let mut columns: Vec<Vec<f64>> = vec![Vec::with_capacity(rows); d];
        for &g in &groups {
            for (j, c) in columns.iter_mut().enumerate() {
                c.push(self.centres[g][j] + noise.sample(&mut self.rng));
            }
        }
        let mut arrays: Vec<ArrayRef> = columns
            .into_iter()
            .map(|c| Arc::new(Float64Array::from(c)) as ArrayRef)
            .collect();
        arrays.push(Arc::new(Int64Array::from(labels)));
        let mut fields: Vec<Field> = (0..d)
            .map(|j| Field::new(format!("f{j}"), DataType::Float64, false))
            .collect();
        fields.push(Field::new("label", DataType::Int64, false));
        RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).expect("columns match fields")
    }
}

fn tabular(args: &GenerateArgs) -> Result<(), GenerateError> {
    if args.features < 1 {
        return Err(GenerateError::Arguments(
            "--features must be at least 1".into(),
        ));
    }
    if args.groups < 1 {
        return Err(GenerateError::Arguments(
            "--groups must be at least 1".into(),
        ));
    }
    let mut clusters = Clusters::new(args.features, args.classes, args.groups, args.seed);
    let ext = crate::source::extension(&args.out);
    match (args.shards, ext.as_deref()) {
        (Some(shards), _) => {
            if shards < 1 || shards > args.rows {
                return Err(GenerateError::Arguments(
                    "--shards must be between 1 and --rows".into(),
                ));
            }
            std::fs::create_dir_all(&args.out).map_err(io_err(&args.out))?;
            for s in 0..shards {
                let rows = args.rows / shards + usize::from(s < args.rows % shards);
                let path = args.out.join(format!("part-{s:05}.parquet"));
                write_parquet(&path, batch_sizes(rows).map(|n| Ok(clusters.batch(n))))?;
            }
            Ok(())
        }
        (None, Some("parquet")) => write_parquet(
            &args.out,
            batch_sizes(args.rows).map(|n| Ok(clusters.batch(n))),
        ),
        (None, Some("csv")) => {
            write_csv(&args.out, batch_sizes(args.rows).map(|n| clusters.batch(n)))
        }
        _ => Err(GenerateError::Extension(args.out.clone())),
    }
}

/// Row counts of consecutive batches covering `rows`.
fn batch_sizes(rows: usize) -> impl Iterator<Item = usize> {
    (0..rows)
        .step_by(BATCH_ROWS)
        .map(move |start| BATCH_ROWS.min(rows - start))
}

fn write_parquet(
    path: &Path,
    batches: impl Iterator<Item = Result<RecordBatch, GenerateError>>,
) -> Result<(), GenerateError> {
    let file = std::fs::File::create(path).map_err(io_err(path))?;
    let mut writer: Option<ArrowWriter<std::fs::File>> = None;
    for b in batches {
        let b = b?;
        let w = match &mut writer {
            Some(w) => w,
            None => writer.insert(
                ArrowWriter::try_new(file.try_clone().map_err(io_err(path))?, b.schema(), None)
                    .map_err(arrow_err(path))?,
            ),
        };
        w.write(&b).map_err(arrow_err(path))?;
        w.flush().map_err(arrow_err(path))?;
    }
    if let Some(w) = writer {
        w.close().map_err(arrow_err(path))?;
    }
    Ok(())
}

fn write_csv(path: &Path, batches: impl Iterator<Item = RecordBatch>) -> Result<(), GenerateError> {
    let file = std::fs::File::create(path).map_err(io_err(path))?;
    let mut writer = arrow::csv::Writer::new(BufWriter::new(file));
    for b in batches {
        writer.write(&b).map_err(arrow_err(path))?;
    }
    writer.into_inner().flush().map_err(io_err(path))
}

/// A grey image of class `class`: stripes whose angle depends on the class, plus noise.
fn pattern(class: usize, classes: usize, (w, h): (u32, u32), rng: &mut StdRng) -> image::GrayImage {
    let angle = std::f64::consts::PI * class as f64 / classes as f64;
    let (dx, dy) = (angle.cos(), angle.sin());
    let noise = Normal::new(0.0, 20.0).expect("constant parameters");
    image::GrayImage::from_fn(w, h, |x, y| {
        let t = (x as f64 * dx + y as f64 * dy) * std::f64::consts::PI / 2.0;
        let v = 127.5 + 100.0 * t.sin() + noise.sample(rng);
        image::Luma([v.clamp(0.0, 255.0) as u8])
    })
}

fn png_bytes(img: &image::GrayImage) -> Vec<u8> {
    let mut buf = Cursor::new(Vec::new());
    img.write_to(&mut buf, image::ImageFormat::Png)
        .expect("PNG encoding into memory cannot fail");
    buf.into_inner()
}

fn images(
    out: &Path,
    classes: usize,
    per_class: usize,
    size: (u32, u32),
    seed: u64,
) -> Result<(), GenerateError> {
    let mut rng = StdRng::seed_from_u64(seed);
    for c in 0..classes {
        let dir = out.join(c.to_string());
        std::fs::create_dir_all(&dir).map_err(io_err(&dir))?;
        for i in 0..per_class {
            let path = dir.join(format!("{i:05}.png"));
            let bytes = png_bytes(&pattern(c, classes, size, &mut rng));
            std::fs::write(&path, bytes).map_err(io_err(&path))?;
        }
    }
    Ok(())
}

fn image_parquet(
    out: &Path,
    classes: usize,
    per_class: usize,
    size: (u32, u32),
    seed: u64,
) -> Result<(), GenerateError> {
    let mut rng = StdRng::seed_from_u64(seed);
    let fields = Fields::from(vec![
        Field::new("bytes", DataType::Binary, true),
        Field::new("path", DataType::Utf8, true),
    ]);
    let schema = Arc::new(Schema::new(vec![
        Field::new("image", DataType::Struct(fields.clone()), true),
        Field::new("label", DataType::Int64, false),
    ]));
    let mut next = 0;
    let batches = batch_sizes(classes * per_class).map(|n| {
        let (mut bytes, mut paths, mut labels) = (Vec::new(), Vec::new(), Vec::new());
        for row in next..next + n {
            let (c, i) = (row / per_class, row % per_class);
            bytes.push(png_bytes(&pattern(c, classes, size, &mut rng)));
            paths.push(format!("{c}/{i:05}.png"));
            labels.push(c as i64);
        }
        next += n;
        let image = StructArray::new(
            fields.clone(),
            vec![
                Arc::new(BinaryArray::from_iter_values(&bytes)) as ArrayRef,
                Arc::new(StringArray::from(paths)),
            ],
            None,
        );
        RecordBatch::try_new(
            schema.clone(),
            vec![Arc::new(image), Arc::new(Int64Array::from(labels))],
        )
        .map_err(arrow_err(out))
    });
    write_parquet(out, batches)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(kind: GenerateKind, out: PathBuf, seed: u64) -> GenerateArgs {
        GenerateArgs {
            kind,
            out,
            rows: 50,
            features: 3,
            classes: 3,
            image_size: "6x4".into(),
            groups: 1,
            shards: None,
            seed,
        }
    }

    #[test]
    fn groups_spread_each_class_over_separate_clusters() {
        let dir = tempfile::tempdir().unwrap();
        // Class 0's rows around each of its groups' centres: with 8 groups its per-column
        // spread is several times the unit noise of one cluster.
        let spread = |groups: usize| {
            let path = dir.path().join(format!("g{groups}.csv"));
            let mut a = args(GenerateKind::Tabular, path.clone(), 4);
            a.rows = 4000;
            a.classes = 2;
            a.groups = groups;
            run(&a).unwrap();
            let text = std::fs::read_to_string(path).unwrap();
            let rows: Vec<Vec<f64>> = text
                .lines()
                .skip(1)
                .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
                .collect();
            let class0: Vec<f64> = rows.iter().filter(|r| r[3] == 0.0).map(|r| r[0]).collect();
            assert!(rows.iter().any(|r| r[3] == 1.0) && class0.len() > 1000);
            let mean = class0.iter().sum::<f64>() / class0.len() as f64;
            (class0.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / class0.len() as f64).sqrt()
        };
        let (one, eight) = (spread(1), spread(8));
        assert!((0.9..1.1).contains(&one), "{one}");
        assert!(eight > 2.0, "{eight}");
    }

    #[test]
    fn batches_cover_every_row_once() {
        let sizes: Vec<usize> = batch_sizes(2 * BATCH_ROWS + 3).collect();
        assert_eq!(sizes, [BATCH_ROWS, BATCH_ROWS, 3]);
        assert_eq!(batch_sizes(0).count(), 0);
    }

    #[test]
    fn the_same_seed_writes_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        for (kind, name) in [
            (GenerateKind::Tabular, "t.csv"),
            (GenerateKind::ImageParquet, "i.parquet"),
        ] {
            let file = |seed, tag: &str| {
                let path = dir.path().join(format!("{tag}{name}"));
                run(&args(kind, path.clone(), seed)).unwrap();
                std::fs::read(path).unwrap()
            };
            let (a, b, c) = (file(1, "a"), file(1, "b"), file(2, "c"));
            assert_eq!(a, b, "{name}");
            assert_ne!(a, c, "{name}");
        }
    }

    #[test]
    fn never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.csv");
        std::fs::write(&path, "mine").unwrap();
        let err = run(&args(GenerateKind::Tabular, path.clone(), 0)).unwrap_err();
        assert!(matches!(err, GenerateError::Exists(_)));
        assert_eq!(std::fs::read_to_string(path).unwrap(), "mine");
    }
}
