//! k-NN label consistency at scale (issue 18): the exact search against the inverted file
//! (`--knn-index ivf`) on generated embeddings, printing one table row per (rows, search):
//! seconds, recall@k against the exact neighbours of a sample of queries, and the F1 of the
//! k-NN detector's own flags (plurality of the neighbours' labels is another label) against
//! the rows whose labels were flipped.
//!
//! Data: `groups` Gaussian clusters in `dim` dimensions (centres N(0, spread^2), unit noise),
//! each cluster one of `classes` labels, then `flip` of the rows given another label: what a
//! network's embeddings of a labelled set with label noise look like. Generated from a seed,
//! so every search sees the same rows.
//!
//! The recall's reference is a brute-force scan (f64 distances) for `--sample` queries only,
//! so it is available at sizes where the exact search is not run (`--max-exact`).
//!
//! Usage: `cargo bench --bench knn_scale -- [--sizes 100000,1000000] [--dim 64]
//!         [--probes 4,8,16] [--max-exact 1000000] [--sample 1000] [--k 10] [--groups 200]
//!         [--classes 10] [--spread 1.5] [--flip 0.05] [--auto] [--streamed]`
//!
//! With `--streamed` the inverted-file rows are the streaming scan's search on a file in a
//! temporary folder (the partition-ordered copy included in the seconds), not the in-memory one.

use std::time::Instant;

use candle_core::{Device, Tensor};
use clap::Parser;
use poisongate::detect::exact::{ivf_neighbours, neighbours};
use poisongate::progress::Progress;
use poisongate::stream::ivf::neighbours as stream_ivf;
use poisongate::stream::spill::Spill;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};
use rayon::prelude::*;

/// As the `poisongate` binary (src/main.rs).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
struct Args {
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "100000,200000,500000,1000000"
    )]
    sizes: Vec<usize>,
    #[arg(long, default_value_t = 64)]
    dim: usize,
    #[arg(long, value_delimiter = ',', default_value = "2,4,8,16")]
    probes: Vec<usize>,
    /// Largest size at which the exact search runs.
    #[arg(long, default_value_t = 1_000_000)]
    max_exact: usize,
    #[arg(long, default_value_t = 1000)]
    sample: usize,
    #[arg(long, default_value_t = 10)]
    k: usize,
    #[arg(long, default_value_t = 200)]
    groups: usize,
    #[arg(long, default_value_t = 10)]
    classes: u32,
    #[arg(long, default_value_t = 1.5)]
    spread: f32,
    #[arg(long, default_value_t = 0.05)]
    flip: f64,
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Also run the tool's default: probe 8, widened until the sampled recall is 0.95.
    #[arg(long)]
    auto: bool,
    /// Search the matrix written to a file, as the streaming scan does
    /// (`poisongate::stream::ivf`), instead of in memory.
    #[arg(long)]
    streamed: bool,
    /// Ignored (cargo bench passes --bench).
    #[arg(long, hide = true)]
    bench: bool,
}

struct Data {
    values: Vec<f32>,
    labels: Vec<u32>,
    flipped: Vec<bool>,
}

fn generate(n: usize, a: &Args) -> Data {
    let d = a.dim;
    let mut rng = rand::rngs::StdRng::seed_from_u64(a.seed);
    let centre = Normal::new(0.0f32, a.spread).unwrap();
    let centres: Vec<f32> = (0..a.groups * d).map(|_| centre.sample(&mut rng)).collect();
    let group_of: Vec<usize> = (0..n).map(|_| rng.random_range(0..a.groups)).collect();
    let mut labels: Vec<u32> = group_of.iter().map(|&g| g as u32 % a.classes).collect();
    let mut flipped = vec![false; n];
    for i in 0..n {
        if rng.random_bool(a.flip) {
            labels[i] = (labels[i] + rng.random_range(1..a.classes)) % a.classes;
            flipped[i] = true;
        }
    }
    // Rows in parallel, each from its own seeded stream: the same data at any thread count.
    let mut values = vec![0f32; n * d];
    values.par_chunks_mut(d).enumerate().for_each(|(i, row)| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(
            a.seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
        );
        let noise = Normal::new(0.0f32, 1.0).unwrap();
        let g = group_of[i];
        for (t, v) in row.iter_mut().enumerate() {
            *v = centres[g * d + t] + noise.sample(&mut rng);
        }
    });
    Data {
        values,
        labels,
        flipped,
    }
}

/// The exact k nearest other rows of each sampled query, by a brute-force f64 scan.
fn reference(values: &[f32], d: usize, k: usize, queries: &[usize]) -> Vec<Vec<u32>> {
    let n = values.len() / d;
    queries
        .par_iter()
        .map(|&q| {
            let query = &values[q * d..(q + 1) * d];
            let mut best: Vec<(f64, u32)> = Vec::with_capacity(k + 1);
            for j in 0..n {
                if j == q {
                    continue;
                }
                let row = &values[j * d..(j + 1) * d];
                let s: f64 = query
                    .iter()
                    .zip(row)
                    .map(|(&a, &b)| (a as f64 - b as f64).powi(2))
                    .sum();
                if best.len() < k || (s, j as u32) < best[k - 1] {
                    let at = best.partition_point(|&e| e < (s, j as u32));
                    best.insert(at, (s, j as u32));
                    best.truncate(k);
                }
            }
            best.into_iter().map(|(_, j)| j).collect()
        })
        .collect()
}

/// F1 of the k-NN detector's flags (the plurality label of the neighbours is not the row's
/// own; ties go to the own label) against the flipped rows.
fn detector_f1(nn: &[u32], k: usize, data: &Data, classes: u32) -> f64 {
    let n = data.labels.len();
    let (mut tp, mut fp, mut fn_) = (0usize, 0usize, 0usize);
    let mut counts = vec![0u32; classes as usize];
    for i in 0..n {
        counts.iter_mut().for_each(|c| *c = 0);
        for &j in nn[i * k..(i + 1) * k].iter().filter(|&&j| j != u32::MAX) {
            counts[data.labels[j as usize] as usize] += 1;
        }
        let own = counts[data.labels[i] as usize];
        let flag = counts
            .iter()
            .enumerate()
            .any(|(c, &v)| c as u32 != data.labels[i] && v > own);
        match (flag, data.flipped[i]) {
            (true, true) => tp += 1,
            (true, false) => fp += 1,
            (false, true) => fn_ += 1,
            _ => {}
        }
    }
    if tp == 0 {
        return 0.0;
    }
    2.0 * tp as f64 / (2 * tp + fp + fn_) as f64
}

fn main() {
    let a = Args::parse();
    let threads = rayon::current_num_threads();
    println!(
        "k-NN at scale: d={} k={} groups={} classes={} spread={} flip={} threads={threads}",
        a.dim, a.k, a.groups, a.classes, a.spread, a.flip
    );
    println!("| rows | search | seconds | recall@{} | detector F1 |", a.k);
    println!("|---|---|---|---|---|");
    for &n in &a.sizes {
        let started = Instant::now();
        let data = generate(n, &a);
        let generated = started.elapsed().as_secs_f64();
        let mut rng = rand::rngs::StdRng::seed_from_u64(a.seed + 1);
        let queries = rand::seq::index::sample(&mut rng, n, a.sample.min(n)).into_vec();
        let started = Instant::now();
        let truth = reference(&data.values, a.dim, a.k, &queries);
        let reference_s = started.elapsed().as_secs_f64();
        eprintln!(
            "n={n}: generated in {generated:.1} s, reference for {} queries in {reference_s:.1} s",
            queries.len()
        );
        let matrix = Tensor::from_slice(&data.values, (n, a.dim), &Device::Cpu).unwrap();
        let recall = |nn: &[u32]| -> f64 {
            let hits: usize = queries
                .iter()
                .zip(&truth)
                .map(|(&q, t)| {
                    t.iter()
                        .filter(|j| nn[q * a.k..(q + 1) * a.k].contains(j))
                        .count()
                })
                .sum();
            hits as f64 / (queries.len() * a.k) as f64
        };
        let row = |name: String, seconds: f64, nn: &[u32]| {
            println!(
                "| {n} | {name} | {seconds:.1} | {:.4} | {:.4} |",
                recall(nn),
                detector_f1(nn, a.k, &data, a.classes)
            );
        };
        if n <= a.max_exact {
            let started = Instant::now();
            let nn = neighbours(&matrix, a.k).unwrap();
            row("exact".into(), started.elapsed().as_secs_f64(), &nn);
        }
        let spill = a.streamed.then(|| {
            let dir = tempfile::tempdir().unwrap();
            let spill = Spill::create(&dir.path().join("rows.f32"), n, a.dim).unwrap();
            spill.write_rows(0, &data.values).unwrap();
            (dir, spill)
        });
        let ivf = |probe: usize, min_recall: f64| match &spill {
            None => ivf_neighbours(&matrix, a.k, probe, min_recall).unwrap(),
            Some((dir, spill)) => {
                let work = tempfile::tempdir_in(dir.path()).unwrap();
                let hidden = Progress::hidden();
                stream_ivf(spill, a.k, probe, min_recall, work.path(), None, 0, &hidden).unwrap()
            }
        };
        let mode = if a.streamed { "streamed " } else { "" };
        for &probe in &a.probes {
            let started = Instant::now();
            let (nn, _) = ivf(probe, 0.0);
            row(
                format!("{mode}ivf probe {probe}"),
                started.elapsed().as_secs_f64(),
                &nn,
            );
        }
        if a.auto {
            let started = Instant::now();
            let (nn, report) = ivf(8, 0.95);
            let report = report.unwrap();
            row(
                format!(
                    "{mode}ivf default (probe {} of {}, sampled recall {:.3})",
                    report.probe, report.clusters, report.recall
                ),
                started.elapsed().as_secs_f64(),
                &nn,
            );
        }
    }
}
