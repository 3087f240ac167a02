//! The timed workloads of the side-by-side benchmarks (benches/embedders.sh, benches/gpu.sh),
//! in one binary so that the GPU machine, which has no Rust, needs only this file and the
//! test executable. DEVICE is `cpu` or `cuda`.
//!
//! - `minilm DEVICE TEXTS.json BATCH OUT.npy MODEL_DIR`: embeds the texts (a JSON array of
//!   strings) with the sentence-transformer in MODEL_DIR in batches of BATCH and writes the
//!   `n x 384` vectors. MODEL_DIR's weights are checked against the pinned all-MiniLM-L6-v2
//!   sum unless `POISONGATE_UNPINNED=1` (gpu.sh's stand-in weights, same shapes).
//! - `mobilenet DEVICE IMAGES.json BATCH OUT.npy INPUT.npy MODEL_DIR`: decodes the images (a
//!   JSON array of paths; not timed), then preprocesses and embeds them with MobileNetV2 in
//!   batches of BATCH and writes the `n x 1280` features; INPUT.npy gets the first batch's
//!   preprocessed input, so another program's network can be run on the very same tensor.
//! - `knn DEVICE DATA.npy K OUT.npy`: the exact search behind label consistency
//!   (`detect::exact::neighbours`) on the `n x d` float32 matrix of DATA.npy (copied to the
//!   device untimed); writes the `n x K` u32 indices of each row's nearest other rows.
//! - `cli ARGS...`: `poisongate ARGS...`, the command-line tool itself (exit codes as its).
//!
//! The first three warm up on one batch (knn: a 4,096-row slice), then time the whole run
//! (results copied back to the host included) and print one line:
//! `items=N batch=B threads=T device=D seconds=S`.
//!
//! Usage: `cargo bench --bench workloads -- COMMAND ...`

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use candle_core::{Device, Tensor};
use clap::Parser;
use poisongate::detect::exact::neighbours;
use poisongate::embed::mobilenet::{ImageModel, MOBILENET_V2_SHA256, WEIGHTS_FILE};
use poisongate::embed::text::{TextModel, MINILM_SHA256};

/// As the `poisongate` binary (src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn fail(message: String) -> ! {
    eprintln!("workloads: {message}");
    std::process::exit(2)
}

fn device(name: &str) -> Device {
    match name {
        "cpu" => Device::Cpu,
        "cuda" => Device::new_cuda(0).unwrap_or_else(|e| fail(format!("cuda: {e}"))),
        other => fail(format!("device {other}: cpu or cuda")),
    }
}

fn read_list(path: &str) -> Vec<String> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| fail(format!("{path}: {e}")));
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| fail(format!("{path}: not a JSON array of strings: {e}")))
}

fn write(t: &Tensor, path: &str) {
    t.write_npy(Path::new(path))
        .unwrap_or_else(|e| fail(format!("{path}: {e}")));
}

fn parse(what: &str, v: &str) -> usize {
    v.parse().unwrap_or_else(|_| fail(format!("{what} {v}")))
}

fn report(items: usize, batch: usize, device: &Device, seconds: f64) {
    let name = if device.is_cpu() { "cpu" } else { "cuda" };
    println!(
        "items={items} batch={batch} threads={} device={name} seconds={seconds:.3}",
        rayon::current_num_threads()
    );
}

fn minilm(args: &[String]) {
    let [dev, list, batch, out, dir] = args else {
        fail("minilm DEVICE TEXTS.json BATCH OUT.npy MODEL_DIR".into())
    };
    let (device, batch) = (device(dev), parse("batch", batch));
    let pinned = std::env::var_os("POISONGATE_UNPINNED").is_none_or(|v| v != "1");
    let model = TextModel::load(Path::new(dir), pinned.then_some(MINILM_SHA256), &device)
        .unwrap_or_else(|e| fail(format!("{e} (run datasets/models/fetch-minilm.sh)")));
    let texts = read_list(list);
    let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
    let run = |texts: &[&str]| {
        model
            .embed(texts, batch)
            .and_then(|e| {
                e.matrix
                    .to_device(&Device::Cpu)
                    .map_err(|e| poisongate::embed::EmbedError::Text(e.to_string()))
            })
            .unwrap_or_else(|e| fail(e.to_string()))
    };
    run(&texts[..batch.min(texts.len())]);
    let start = Instant::now();
    let vectors = run(&texts);
    let seconds = start.elapsed().as_secs_f64();
    write(&vectors, out);
    report(texts.len(), batch, &device, seconds);
}

fn mobilenet(args: &[String]) {
    let [dev, list, batch, out, input, dir] = args else {
        fail("mobilenet DEVICE IMAGES.json BATCH OUT.npy INPUT.npy MODEL_DIR".into())
    };
    let (device, batch) = (device(dev), parse("batch", batch));
    let weights = PathBuf::from(dir).join(WEIGHTS_FILE);
    let model = ImageModel::load(&weights, Some(MOBILENET_V2_SHA256), &device)
        .unwrap_or_else(|e| fail(format!("{e} (run datasets/models/fetch-mobilenet.sh)")));
    let images: Vec<image::DynamicImage> = read_list(list)
        .iter()
        .map(|p| image::open(p).unwrap_or_else(|e| fail(format!("{p}: {e}"))))
        .collect();
    let run = |images: &[image::DynamicImage]| -> Tensor {
        model
            .preprocess(images)
            .and_then(|x| model.features(&x))
            .and_then(|f| {
                f.to_device(&Device::Cpu)
                    .map_err(|e| poisongate::embed::EmbedError::Text(e.to_string()))
            })
            .unwrap_or_else(|e| fail(e.to_string()))
    };
    let first = &images[..batch.min(images.len())];
    let x = model
        .preprocess(first)
        .and_then(|x| {
            x.to_device(&Device::Cpu)
                .map_err(|e| poisongate::embed::EmbedError::Text(e.to_string()))
        })
        .unwrap_or_else(|e| fail(e.to_string()));
    write(&x, input);
    run(first);
    let start = Instant::now();
    let parts: Vec<Tensor> = images.chunks(batch.max(1)).map(run).collect();
    let seconds = start.elapsed().as_secs_f64();
    let features = Tensor::cat(&parts, 0).unwrap_or_else(|e| fail(e.to_string()));
    write(&features, out);
    report(images.len(), batch, &device, seconds);
}

fn knn(args: &[String]) {
    let [dev, data, k, out] = args else {
        fail("knn DEVICE DATA.npy K OUT.npy".into())
    };
    let (device, k) = (device(dev), parse("k", k));
    let matrix = Tensor::read_npy(data)
        .and_then(|m| m.to_device(&device))
        .unwrap_or_else(|e| fail(format!("{data}: {e}")));
    let n = matrix
        .dim(0)
        .unwrap_or_else(|e| fail(format!("{data}: {e}")));
    let warm = matrix
        .narrow(0, 0, n.min(4096))
        .unwrap_or_else(|e| fail(e.to_string()));
    neighbours(&warm, k).unwrap_or_else(|e| fail(e.to_string()));
    let start = Instant::now();
    let found = neighbours(&matrix, k).unwrap_or_else(|e| fail(e.to_string()));
    let seconds = start.elapsed().as_secs_f64();
    let found =
        Tensor::from_vec(found, (n, k), &Device::Cpu).unwrap_or_else(|e| fail(e.to_string()));
    write(&found, out);
    report(n, n, &device, seconds);
}

fn cli(args: &[String]) -> ExitCode {
    let argv = std::iter::once("poisongate".to_string()).chain(args.iter().cloned());
    let parsed =
        poisongate::cli::Args::try_parse_from(argv).unwrap_or_else(|e| fail(e.to_string()));
    match poisongate::run(parsed, std::io::stderr().is_terminal()) {
        Ok(status) => status.into(),
        Err(e) => fail(e.to_string()),
    }
}

fn main() -> ExitCode {
    // cargo bench passes `--bench`; the rest are ours.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    match args.split_first() {
        Some((cmd, rest)) if cmd == "minilm" => minilm(rest),
        Some((cmd, rest)) if cmd == "mobilenet" => mobilenet(rest),
        Some((cmd, rest)) if cmd == "knn" => knn(rest),
        Some((cmd, rest)) if cmd == "cli" => return cli(rest),
        _ => fail("usage: workloads minilm|mobilenet|knn|cli ... (see the file's header)".into()),
    }
    ExitCode::SUCCESS
}
