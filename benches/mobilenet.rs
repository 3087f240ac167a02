//! Throughput of the MobileNetV2 image embedder on the CPU (criterion): the three fetched test
//! photos (451x300, 600x400 and 640x427) repeated to a batch of 16 and of 64, preprocessed and
//! embedded per iteration, as the pipeline calls it. Throughput is in images.
//!
//! Usage: `cargo bench --bench mobilenet` (the folder `datasets/models/fetch-mobilenet.sh`
//! writes, or `POISONGATE_MOBILENET`).

use std::path::PathBuf;

use candle_core::Device;
use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use poisongate::embed::mobilenet::{
    default_mobilenet_dir, ImageModel, FEATURE_DIM, MOBILENET_V2_SHA256, WEIGHTS_FILE,
};

fn mobilenet(c: &mut Criterion) {
    let dir = std::env::var_os("POISONGATE_MOBILENET")
        .map(PathBuf::from)
        .or_else(default_mobilenet_dir)
        .expect("a weights folder (HOME unset)");
    let model = ImageModel::load(
        &dir.join(WEIGHTS_FILE),
        Some(MOBILENET_V2_SHA256),
        &Device::Cpu,
    )
    .unwrap_or_else(|e| panic!("{e} (run datasets/models/fetch-mobilenet.sh)"));
    let photos: Vec<image::DynamicImage> = ["chelsea.png", "coffee.png", "rocket.jpg"]
        .iter()
        .map(|name| image::open(dir.join("test-images").join(name)).expect("a fetched photo"))
        .collect();
    let mut group = c.benchmark_group("mobilenet");
    // Seconds per iteration: the same number of iterations in each sample.
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    for batch in [16, 64] {
        let images: Vec<_> = photos.iter().cycle().take(batch).cloned().collect();
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("cpu_batch{batch}"), |b| {
            b.iter(|| {
                let x = model.preprocess(&images).expect("preprocessing");
                let features = model.features(&x).expect("embedding");
                assert_eq!(features.dims(), [batch, FEATURE_DIM]);
                features
            })
        });
    }
    group.finish();
}

criterion_group!(benches, mobilenet);
criterion_main!(benches);
