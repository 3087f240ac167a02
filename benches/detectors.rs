//! One detector on synthetic embeddings, timed: `n x d` f32 Gaussian class clusters (10
//! classes, seeded), the shape of the CPU target. `benches/detectors.sh` runs it once
//! per detector under `/usr/bin/time -v` for peak memory and prints the table.
//!
//! Usage: `detectors DETECTOR [N] [D] [SPREAD]`, DETECTOR one of spectral, clustering,
//! knn-exact, knn-hnsw, shift, shift-planted (the shifted-copy test, on rows where 10 % of
//! the other classes' samples were moved by one vector and relabelled to class 0, so that a
//! half fires and its class neighbours are searched). SPREAD (default 3) is the standard deviation of the class centres'
//! coordinates, against unit noise; 0 puts every class on one centre, structureless rows on
//! which the exact search can prune nothing.

use std::time::Instant;

use candle_core::{Device, Tensor};
use poisongate::detect::clustering::{self, ClusteringConfig};
use poisongate::detect::knn::{self, KnnConfig, NeighbourIndex};
use poisongate::detect::shift::{self, ShiftConfig};
use poisongate::detect::spectral::{self, SpectralConfig};
use poisongate::detect::Points;
use poisongate::embed::{Embedding, Subset, View};
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

fn main() {
    // `cargo bench` passes `--bench`; ignore flags.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let detector = args
        .first()
        .map(String::as_str)
        .unwrap_or("spectral")
        .to_string();
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let d: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(128);
    let spread: f32 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let classes = 10;
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let centre = Normal::new(0.0f32, spread).expect("a finite, non-negative spread");
    let noise = Normal::new(0.0f32, 1.0).expect("constant parameters");
    let centres: Vec<Vec<f32>> = (0..classes)
        .map(|_| (0..d).map(|_| centre.sample(&mut rng)).collect())
        .collect();
    let mut labels: Vec<u32> = (0..n)
        .map(|_| rng.random_range(0..classes as u32))
        .collect();
    let mut values = Vec::with_capacity(n * d);
    for l in labels.iter_mut() {
        values.extend(
            centres[*l as usize]
                .iter()
                .map(|c| c + noise.sample(&mut rng)),
        );
        if detector == "shift-planted" && *l != 0 && rng.random_bool(0.1) {
            *l = 0;
            let start = values.len() - d;
            for v in values[start..].iter_mut().skip(1).step_by(4) {
                *v += 3.0 * spread.max(1.0);
            }
        }
    }
    let subset = Subset {
        rows: (0..n as u32).collect(),
        labels,
        n_classes: classes,
        excluded: Vec::new(),
    };
    let embedding = Embedding {
        view: View::Probe,
        matrix: Tensor::from_vec(values, (n, d), &Device::Cpu).expect("tensor"),
        training: None,
    };
    let points = Points::new(&embedding, &subset).expect("host view");
    let start = Instant::now();
    let flagged = match detector.as_str() {
        "spectral" => count(&spectral::run(&points, &SpectralConfig::default()).flags),
        "clustering" => count(&clustering::run(&points, &ClusteringConfig::default()).flags),
        "knn-exact" | "knn-hnsw" => {
            let index = if detector == "knn-exact" {
                NeighbourIndex::Exact
            } else {
                NeighbourIndex::Hnsw
            };
            let config = KnnConfig {
                index,
                ..Default::default()
            };
            count(
                &knn::run(&embedding, &points, &config)
                    .expect("k-NN")
                    .0
                    .flags,
            )
        }
        "shift" | "shift-planted" => count(
            &shift::run(&points, &vec![false; n], &ShiftConfig::default())
                .0
                .flags,
        ),
        other => panic!("unknown detector {other}"),
    };
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "{detector} n={n} d={d} spread={spread} seconds={seconds:.3} flagged={flagged} matrix_mib={:.1}",
        (n * d * 4) as f64 / (1 << 20) as f64
    );
}

fn count(flags: &[bool]) -> usize {
    flags.iter().filter(|&&f| f).count()
}
