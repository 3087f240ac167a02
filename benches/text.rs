//! Throughput of the MiniLM text embedder: seeded sentences of 8 to 40 words drawn from a
//! fixed English word list, embedded in batches, timed after one warm-up batch. Prints one
//! table row per batch size.
//!
//! Usage: `cargo bench --bench text -- [N] [MODEL_DIR]` (default 2,000 sentences and the
//! folder `datasets/models/fetch-minilm.sh` writes).

use std::path::PathBuf;
use std::time::Instant;

use candle_core::Device;
use poisongate::embed::text::{default_minilm_dir, TextModel, MINILM_SHA256};
use rand::{Rng, SeedableRng};

const WORDS: &[&str] = &[
    "the",
    "model",
    "data",
    "a",
    "of",
    "training",
    "is",
    "sample",
    "label",
    "image",
    "with",
    "for",
    "new",
    "free",
    "offer",
    "click",
    "meeting",
    "today",
    "report",
    "account",
    "please",
    "update",
    "your",
    "we",
    "will",
    "send",
    "money",
    "project",
    "team",
    "results",
    "week",
    "network",
    "price",
    "order",
    "contact",
    "information",
    "service",
    "time",
    "research",
    "question",
    "answer",
    "email",
    "list",
    "unsubscribe",
    "system",
    "software",
    "version",
];

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let n: usize = args.first().and_then(|s| s.parse().ok()).unwrap_or(2000);
    let dir = args
        .get(1)
        .map(PathBuf::from)
        .or_else(default_minilm_dir)
        .expect("a model folder (HOME unset)");
    let model = TextModel::load(&dir, Some(MINILM_SHA256), &Device::Cpu)
        .unwrap_or_else(|e| panic!("{e} (run datasets/models/fetch-minilm.sh)"));
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let sentences: Vec<String> = (0..n)
        .map(|_| {
            let words = rng.random_range(8..=40);
            (0..words)
                .map(|_| WORDS[rng.random_range(0..WORDS.len())])
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    let texts: Vec<&str> = sentences.iter().map(String::as_str).collect();
    model.embed(&texts[..64.min(n)], 64).expect("warm-up");
    println!("| sentences | batch | threads | seconds | sentences/s |");
    println!("|---|---|---|---|---|");
    for batch in [16, 64, 256] {
        let start = Instant::now();
        let out = model.embed(&texts, batch).expect("embedding");
        let seconds = start.elapsed().as_secs_f64();
        assert_eq!(out.matrix.dims(), [n, model.dim]);
        println!(
            "| {n} | {batch} | {} | {seconds:.2} | {:.0} |",
            rayon::current_num_threads(),
            n as f64 / seconds
        );
    }
}
