//! The streaming scan of an image folder against the in-memory one (the same findings,
//! subset and per-class detectors, bit for bit), its steps as tasks against it, and a worker's
//! MobileNetV2 features against the in-memory view's.

use std::path::Path;

use clap::Parser;
use image::{DynamicImage, GrayImage, RgbImage, RgbaImage};
use rand::{Rng, SeedableRng};

use super::images::{self, ImageSpec, ImageWorker};
use super::tests::{comparable, json, Loopback};
use crate::cli::config::ScanConfig;
use crate::progress::Progress;
use crate::report::detection::Outcome as Detected;
use crate::scan::{scan, Outcome};

/// A 12x12 RGB image of class `c` (a colour with a gradient and noise); `patch` whitens its
/// top-left 3x3 corner (a BadNets trigger).
fn picture(c: usize, patch: bool, rng: &mut rand::rngs::StdRng) -> RgbImage {
    let base = [
        [200u8, 40, 40],
        [40, 200, 40],
        [40, 40, 200],
        [200, 200, 40],
    ][c];
    RgbImage::from_fn(12, 12, |x, y| {
        if patch && x < 3 && y < 3 {
            return image::Rgb([255, 255, 255]);
        }
        image::Rgb(base.map(|v| {
            let noise: i32 = rng.random_range(-30..=30);
            (v as i32 + noise + (x + y) as i32 * 2).clamp(0, 255) as u8
        }))
    })
}

/// `root/{a,b,c,d}/` with 60 images a class, 12 patched images of b, c and d filed under a,
/// and what validation reports: a file that is not an image, a 16x16 image (resized), a grey
/// and an RGBA image (converted), and a copy of an image of b filed under c.
fn write_folder(root: &Path) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let names = ["a", "b", "c", "d"];
    for (c, name) in names.iter().enumerate() {
        std::fs::create_dir_all(root.join(name)).unwrap();
        for i in 0..60 {
            let path = root.join(name).join(format!("{i:02}.png"));
            picture(c, false, &mut rng).save(path).unwrap();
        }
    }
    for i in 0..12 {
        let path = root.join("a").join(format!("p{i:02}.png"));
        picture(1 + i % 3, true, &mut rng).save(path).unwrap();
    }
    std::fs::write(root.join("b/zz_broken.png"), b"not a png").unwrap();
    RgbImage::from_fn(16, 16, |x, y| image::Rgb([40, 40, 180 + (x + y) as u8]))
        .save(root.join("c/big.png"))
        .unwrap();
    GrayImage::from_fn(12, 12, |x, _| image::Luma([100 + x as u8]))
        .save(root.join("d/grey.png"))
        .unwrap();
    DynamicImage::ImageRgba8(RgbaImage::from_fn(12, 12, |x, _| {
        image::Rgba([200, 200, 40 + x as u8, 128])
    }))
    .save(root.join("d/alpha.png"))
    .unwrap();
    std::fs::copy(root.join("b/00.png"), root.join("c/dup.png")).unwrap();
}

fn config_of(root: &Path, work: &Path, argv: &[&str]) -> ScanConfig {
    let base = [
        "poisongate",
        "scan",
        root.to_str().unwrap(),
        "--work-dir",
        work.to_str().unwrap(),
    ];
    let args = crate::cli::Args::parse_from([&base[..], argv].concat());
    let crate::cli::Command::Scan(args) = args.command else {
        panic!("not a scan")
    };
    ScanConfig::from_args(args, false).unwrap()
}

fn run(root: &Path, work: &Path, argv: &[&str]) -> Outcome {
    scan(&config_of(root, work, argv), &Progress::hidden()).unwrap()
}

#[test]
fn a_streamed_image_folder_finds_what_the_in_memory_scan_finds() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("images");
    write_folder(&root);
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let common = ["--embedder", "raw", "--knn-index", "ivf"];
    let memory = run(
        &root,
        &work,
        &[&common[..], &["--memory-limit", "1TiB"]].concat(),
    );
    let streamed = run(
        &root,
        &work,
        &[&common[..], &["--memory-limit", "1KiB"]].concat(),
    );
    assert_eq!(
        std::fs::read_dir(&work).unwrap().count(),
        0,
        "the work folder is gone"
    );

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
        "undecodable_image",
        "mixed_sizes",
        "mixed_channels",
        "converted_image",
        "conflicting_duplicates",
    ] {
        assert!(rules.contains(&rule), "{rule} not in {rules:?}");
    }
    let (Detected::Ran(a), Detected::Ran(b)) = (&memory.detection, &streamed.detection) else {
        panic!("detection ran in both")
    };
    assert_eq!(a.subset, b.subset);
    assert_eq!(b.subset.excluded.len(), 1, "the broken file");
    assert!(
        b.verdict
            .notes
            .iter()
            .any(|n| n.starts_with("streamed:") && n.contains("images at 12x12x3")),
        "{:?}",
        b.verdict.notes
    );
    assert_eq!(
        (b.views[0].view, b.views[0].dim),
        (crate::embed::View::Raw, 432)
    );
    let names = |x: &crate::pipeline::Analysis| -> Vec<&str> {
        x.runs.iter().map(|r| r.detection.detector).collect()
    };
    assert_eq!(names(a), names(b));
    for (x, y) in a.runs.iter().zip(&b.runs) {
        let (x, y) = (&x.detection, &y.detection);
        if x.detector == "knn" {
            let agree = x.flags.iter().zip(&y.flags).filter(|(p, q)| p == q).count();
            assert!(agree as f64 >= 0.98 * x.flags.len() as f64, "{agree}");
            continue;
        }
        assert_eq!(x.scores, y.scores, "{}", x.detector);
        assert_eq!(x.flags, y.flags, "{}", x.detector);
    }
    // The patched images are found, so that agreeing means something.
    let flagged: Vec<String> = b
        .subset
        .rows
        .iter()
        .zip(&b.verdict.flags)
        .filter(|(_, &f)| f)
        .map(|(&r, _)| streamed.dataset.ids.get(r as usize).into_owned())
        .collect();
    let poisons = flagged.iter().filter(|id| id.starts_with("a/p")).count();
    assert!(
        poisons >= 9,
        "{poisons} of 12 patched images flagged: {flagged:?}"
    );
    assert_eq!(json(&memory.report.gate), json(&streamed.report.gate));
    assert_eq!(memory.report.status(), streamed.report.status());

    // Validation alone decodes every image too, and finds the same.
    let memory = run(&root, &work, &["--validate-only", "--memory-limit", "1TiB"]);
    let streamed = run(&root, &work, &["--validate-only", "--memory-limit", "1KiB"]);
    assert!(matches!(streamed.detection, Detected::NotRequested));
    assert_eq!(
        json(&memory.report.findings),
        json(&streamed.report.findings)
    );
    assert_eq!(json(&memory.report.gate), json(&streamed.report.gate));
}

#[test]
fn the_image_scan_with_its_steps_as_tasks_is_the_streamed_scan() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("images");
    write_folder(&root);
    let work = dir.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let argv = ["--embedder", "raw", "--memory-limit", "256KiB"];
    let streamed = run(&root, &work, &argv);
    let tasks = Loopback::default();
    let config = config_of(&root, &work, &argv);
    let remote = crate::scan::scan_with_tasks(&config, &tasks, &Progress::hidden()).unwrap();
    let stages = tasks.stages.lock().unwrap().clone();
    for stage in ["images", "class", "ivf-ask", "ivf-search"] {
        assert!(
            stages.iter().any(|s| s == stage),
            "{stage} not in {stages:?}"
        );
    }
    assert_eq!(comparable(&streamed), comparable(&remote));
    let (Detected::Ran(a), Detected::Ran(b)) = (&streamed.detection, &remote.detection) else {
        panic!("detection ran in both")
    };
    assert!(b
        .verdict
        .notes
        .iter()
        .any(|n| n.contains("ran as tasks on a loopback")));
    assert_eq!(a.runs.len(), b.runs.len());
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
    let scores =
        |o: &Outcome| crate::report::scores::batch(&o.dataset, &o.flags, &o.detection).unwrap();
    assert_eq!(scores(&streamed), scores(&remote));
    assert_eq!(std::fs::read_dir(&work).unwrap().count(), 0);
}

#[test]
fn an_image_folder_streams_past_the_limit_and_refuses_views_it_cannot_compute() {
    assert_eq!(
        images::in_memory_bytes(1000, 432, false),
        1000 * (432 * 9 + 200)
    );
    assert_eq!(
        images::in_memory_bytes(1000, 432, true),
        1000 * (432 * 9 + 1280 * 4 + 200)
    );
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("images");
    write_folder(&root);
    let progress = Progress::hidden();
    let plan = |limit: &str| {
        let config = config_of(&root, dir.path(), &["--memory-limit", limit]);
        images::plan(&config, &progress).unwrap()
    };
    let Some(images::Planned::Stream(streamed, _)) = plan("1KiB") else {
        panic!("not streamed under 1 KiB")
    };
    assert_eq!(streamed.shape, (12, 12, 3));
    assert_eq!(streamed.files.len(), 4 * 60 + 12 + 5);
    let Some(images::Planned::InMemory(dataset, _)) = plan("1GiB") else {
        panic!("not in memory under 1 GiB")
    };
    assert_eq!(dataset.len(), 4 * 60 + 12 + 5);

    let config = config_of(
        &root,
        dir.path(),
        &["--embedder", "probe", "--memory-limit", "1KiB"],
    );
    let err = scan(&config, &progress).err().unwrap().to_string();
    assert!(
        err.contains("raw or mobilenet_v2") && err.contains("images"),
        "{err}"
    );
}

#[test]
fn a_workers_mobilenet_features_are_the_in_memory_views() {
    let weights = crate::embed::mobilenet::default_mobilenet_dir()
        .map(|d| d.join(crate::embed::mobilenet::WEIGHTS_FILE));
    if !weights.as_ref().is_some_and(|w| w.exists()) {
        eprintln!("skipped: no MobileNetV2 weights (bash datasets/models/fetch-mobilenet.sh)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(9);
    let files: Vec<std::path::PathBuf> = (0..20)
        .map(|i| {
            let path = dir.path().join(format!("{i}.png"));
            picture(i % 4, i % 5 == 0, &mut rng).save(&path).unwrap();
            path
        })
        .collect();
    let items: Vec<_> = files
        .iter()
        .map(|p| crate::source::decode::Encoded::File(p))
        .collect();
    let progress = Progress::hidden();
    let decoded = crate::source::decode::decode_all(&items, None, &progress).unwrap();
    let subset = crate::embed::Subset {
        rows: (0..20).collect(),
        labels: vec![0; 20],
        n_classes: 1,
        excluded: Vec::new(),
    };
    let device = candle_core::Device::Cpu;
    let memory = crate::embed::images::embed_images(&decoded, &subset, None, &device, &progress)
        .unwrap()
        .to_host()
        .unwrap();
    let spec = ImageSpec {
        view: Some(crate::embed::View::MobilenetV2),
        shape: (12, 12, 3),
        model: None,
        device: crate::device::DeviceChoice::Cpu,
    };
    let worker = ImageWorker::new(&spec.encode()).unwrap();
    // Shards of 16 and 4, as batches of 16 from the first row: the in-memory batches.
    let mut streamed = Vec::new();
    for (first, shard) in [(0, &files[..16]), (16, &files[16..])] {
        let mut item = super::wire::Writer::new();
        item.usize(first).usize(shard.len());
        for f in shard {
            item.str(f.to_str().unwrap());
        }
        let answer = worker.run(&item.finish()).unwrap();
        streamed.extend(images::answer_values(&answer, 1280).unwrap());
    }
    assert_eq!(memory.len(), 20 * 1280);
    assert_eq!(memory, streamed);
}

#[test]
fn a_missing_model_is_one_error_before_any_image_is_handed_out() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("images");
    write_folder(&root);
    let missing = dir.path().join("missing-model.pth");
    let argv = [
        "--embedder",
        "mobilenet_v2",
        "--model",
        missing.to_str().unwrap(),
        "--memory-limit",
        "64KiB",
    ];
    let config = config_of(&root, dir.path(), &argv);
    let tasks = Loopback::default();
    let err = crate::scan::scan_with_tasks(&config, &tasks, &Progress::hidden())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("missing-model.pth"), "{err}");
    assert!(tasks.stages.lock().unwrap().is_empty());
    let err = scan(&config, &Progress::hidden())
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("missing-model.pth"), "{err}");
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert_eq!(left.len(), 1, "the work folder is removed: {left:?}");
}

#[test]
fn a_streamed_mobilenet_scan_names_its_view_everywhere() {
    if !crate::embed::mobilenet::default_mobilenet_dir()
        .is_some_and(|d| d.join(crate::embed::mobilenet::WEIGHTS_FILE).exists())
    {
        eprintln!("skipped: no MobileNetV2 weights (bash datasets/models/fetch-mobilenet.sh)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("images");
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    for (c, name) in ["a", "b", "c"].iter().enumerate() {
        std::fs::create_dir_all(root.join(name)).unwrap();
        for i in 0..10 {
            let path = root.join(name).join(format!("{i}.png"));
            picture(c, false, &mut rng).save(path).unwrap();
        }
    }
    let outcome = run(
        &root,
        dir.path(),
        &["--embedder", "mobilenet_v2", "--memory-limit", "1KiB"],
    );
    let Detected::Ran(a) = &outcome.detection else {
        panic!("detection ran")
    };
    assert_eq!(
        (a.views[0].view, a.views[0].dim),
        (crate::embed::View::MobilenetV2, 1280)
    );
    assert!(!a.runs.is_empty());
    for run in &a.runs {
        assert_eq!(
            run.detection.view,
            crate::embed::View::MobilenetV2,
            "{}",
            run.detection.detector
        );
    }
    assert!(
        a.verdict
            .notes
            .iter()
            .any(|n| n.contains("probe view was not computed")),
        "{:?}",
        a.verdict.notes
    );
}
