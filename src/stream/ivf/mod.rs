//! The inverted-file k-NN search of `--knn-index ivf` ([`crate::detect::exact`]) on a matrix
//! that stays on disk. The same partition: about `sqrt(n)` centres fitted by Lloyd's rounds
//! on 64 seeded sampled rows a centre, then every row assigned once. The rows are copied into
//! a second file in partition order, so that a partition is one read. Each partition's
//! queries are then searched against the rows of their `probe` nearest partitions, reading
//! only those. The recall is measured as in memory: 256 seeded queries are searched exactly
//! (one pass over the file), and `probe` doubles until their recall@k reaches `min_recall`.
//!
//! Held in memory: the centres, the partition of row numbers (4 bytes a row), the answer
//! (`4 k` bytes a row), and per task one partition's queries and the partition it reads.

use std::collections::HashMap;
use std::path::Path;

use rand::SeedableRng;
use rayon::prelude::*;

use super::remote::Tasks;
use super::spill::Spill;
use super::StreamError;
use crate::detect::exact::IvfReport;
use crate::detect::partition::{assign, lloyd, partition_rng, products, row_norms, training_rows};

mod tasks;
pub(crate) use tasks::{run_ask, run_search, ASK_STAGE, SEARCH_STAGE};

/// Rows sampled a centre to fit them (as in memory).
const TRAIN_PER_CLUSTER: usize = 64;
/// Queries whose exact neighbours the recall is measured against (as in memory).
const RECALL_SAMPLE: usize = 256;
const RECALL_SEED: u64 = 0x7265_6361_6c6c;
/// Rows per block of the passes over the file.
const BLOCK: usize = 16384;
/// Query partitions searched before their answers are written out.
const WAVE: usize = 64;

/// The rows cut into partitions and stored in partition order.
struct Layout {
    centres: Vec<f32>,
    centre_norms: Vec<f32>,
    /// Partition `c` holds rows `start[c]..start[c + 1]` of `ordered`.
    start: Vec<usize>,
    /// The original row of each row of `ordered`.
    original: Vec<u32>,
    ordered: Spill,
}

/// Each row's `k` nearest other rows (row-major, `u32::MAX` for an empty place), and what the
/// search did. `work` is the folder the partition-ordered copy is written to. With `tasks`,
/// the partitions are searched by them, handed over in batches of at most `budget` bytes.
#[allow(clippy::too_many_arguments)]
pub fn neighbours(
    spill: &Spill,
    k: usize,
    probe: usize,
    min_recall: f64,
    work: &Path,
    tasks: Option<&dyn Tasks>,
    budget: usize,
    progress: &crate::progress::Progress,
) -> Result<(Vec<u32>, Option<IvfReport>), StreamError> {
    let (n, d) = (spill.rows, spill.dim);
    if k == 0 || n <= k || d == 0 {
        return Ok((Vec::new(), None));
    }
    let layout = Layout::new(spill, work)?;
    super::trace("k-NN partition");
    let clusters = layout.centres.len() / d;
    let mut rng = rand::rngs::StdRng::seed_from_u64(RECALL_SEED);
    let mut sample = rand::seq::index::sample(&mut rng, n, RECALL_SAMPLE.min(n)).into_vec();
    sample.sort_unstable();
    let sample: Vec<u32> = sample.into_iter().map(|r| r as u32).collect();
    let queries = spill.gather(&sample, BLOCK)?;
    let exact = exact_of(spill, &queries, &sample, k)?;
    let mut probe = probe.clamp(1, clusters);
    let recall = loop {
        let approx = layout.search(&queries, &sample, k, probe, true)?;
        let recall = crate::detect::exact::recall_of(&exact, &approx, k);
        if recall >= min_recall || probe >= clusters {
            break recall;
        }
        probe = (probe * 2).min(clusters);
    };
    let mut nn = vec![u32::MAX; n * k];
    let parts: Vec<usize> = (0..clusters).collect();
    let bar = progress.bar(clusters as u64, "k-NN partitions");
    // Tasks take as many partitions' queries a wave as the budget holds (their queries travel
    // twice: to find the partitions they ask, and with the search).
    let wave_size = match tasks {
        Some(_) => WAVE.max(budget / 2 / (n / clusters * d * 4).max(1)),
        None => WAVE,
    };
    // The partitions shared with the tasks so far, by number.
    let mut shared = HashMap::new();
    for wave in parts.chunks(wave_size) {
        if progress.cancelled() {
            return Err(StreamError::Interrupted);
        }
        let found: Vec<(usize, Vec<u32>)> = match tasks {
            Some(tasks) => layout.search_by(tasks, wave, k, probe, &mut shared)?,
            None => wave
                .par_iter()
                .map(|&c| {
                    let (queries, ids) = layout.partition(c)?;
                    let found = layout.search(&queries, ids, k, probe, false)?;
                    Ok((c, found))
                })
                .collect::<Result<_, StreamError>>()?,
        };
        for (c, found) in found {
            let rows = &layout.original[layout.start[c]..layout.start[c + 1]];
            for (&row, list) in rows.iter().zip(found.chunks(k)) {
                nn[row as usize * k..(row as usize + 1) * k].copy_from_slice(list);
            }
        }
        bar.inc(wave.len() as u64);
    }
    if let Some(tasks) = tasks {
        tasks.release()?;
    }
    bar.finish_and_clear();
    super::trace("k-NN search");
    let report = IvfReport {
        clusters,
        probe,
        recall,
        sample: sample.len(),
    };
    Ok((nn, Some(report)))
}

impl Layout {
    fn new(spill: &Spill, work: &Path) -> Result<Layout, StreamError> {
        let (n, d) = (spill.rows, spill.dim);
        let clusters = ((n as f64).sqrt().round() as usize).clamp(1, n);
        let mut rng = partition_rng();
        let train_rows = clusters * TRAIN_PER_CLUSTER;
        let (train, sampled) = if train_rows < n {
            let rows = training_rows(&mut rng, n, train_rows, clusters);
            (spill.gather(&rows, BLOCK)?, true)
        } else {
            (
                spill.gather(&(0..n as u32).collect::<Vec<_>>(), BLOCK)?,
                false,
            )
        };
        let (centres, train_assignment) = if clusters > 1 {
            lloyd(&train, d, clusters, &mut rng)
        } else {
            (train[..d].to_vec(), vec![0; train.len() / d])
        };
        drop(train);
        // Every row's partition, and the partitions' means over all their rows.
        let mut assignment = vec![0u32; n];
        let mut sums = vec![0f64; clusters * d];
        spill.for_blocks(BLOCK, |start, block| {
            let rows = block.len() / d;
            let out = &mut assignment[start..start + rows];
            if sampled {
                assign(block, rows, d, &centres, out);
            } else {
                out.copy_from_slice(&train_assignment[start..start + rows]);
            }
            for (row, &c) in block.chunks(d).zip(out.iter()) {
                let sum = &mut sums[c as usize * d..(c as usize + 1) * d];
                sum.iter_mut().zip(row).for_each(|(s, &v)| *s += v as f64);
            }
            Ok(())
        })?;
        let mut start = vec![0usize; clusters + 1];
        for &c in &assignment {
            start[c as usize + 1] += 1;
        }
        for c in 0..clusters {
            start[c + 1] += start[c];
        }
        let centres: Vec<f32> = sums
            .chunks(d)
            .enumerate()
            .flat_map(|(c, sum)| {
                let count = (start[c + 1] - start[c]) as f64;
                sum.iter().map(move |&s| {
                    let v = (s / count) as f32;
                    if v.is_finite() {
                        v
                    } else {
                        0.0
                    }
                })
            })
            .collect();
        // The copy in partition order; within a partition, rows keep their order.
        let ordered = Spill::create(&work.join("ivf-ordered.f32"), n, d)?;
        let mut original = vec![0u32; n];
        let mut cursor = start.clone();
        for (row, &c) in assignment.iter().enumerate() {
            original[cursor[c as usize]] = row as u32;
            cursor[c as usize] += 1;
        }
        let mut cursor = start.clone();
        let mut runs: Vec<Vec<f32>> = vec![Vec::new(); clusters];
        spill.for_blocks(BLOCK, |first, block| {
            for (i, row) in block.chunks(d).enumerate() {
                runs[assignment[first + i] as usize].extend_from_slice(row);
            }
            for (c, run) in runs.iter_mut().enumerate().filter(|(_, r)| !r.is_empty()) {
                ordered.write_rows(cursor[c], run)?;
                cursor[c] += run.len() / d;
                run.clear();
            }
            Ok(())
        })?;
        let centre_norms = row_norms(&centres, d);
        Ok(Layout {
            centres,
            centre_norms,
            start,
            original,
            ordered,
        })
    }

    /// The `k` nearest rows (original numbers) of each query among the rows of its `probe`
    /// nearest partitions, excluding the query's own row `ids[i]`. `parallel`: the products
    /// use every thread (the caller is not one of rayon's tasks).
    fn search(
        &self,
        queries: &[f32],
        ids: &[u32],
        k: usize,
        probe: usize,
        parallel: bool,
    ) -> Result<Vec<u32>, StreamError> {
        let d = self.ordered.dim;
        let asking = ask(
            &self.centres,
            &self.centre_norms,
            queries,
            d,
            probe,
            parallel,
        );
        scan_asked(&asking, queries, ids, k, d, parallel, |c, rows| {
            let (a, b) = (self.start[c], self.start[c + 1]);
            rows.resize((b - a) * d, 0.0);
            self.ordered.read_rows(a, rows)?;
            Ok(&self.original[a..b])
        })
    }

    /// The rows of partition `c` and their original numbers.
    fn partition(&self, c: usize) -> Result<(Vec<f32>, &[u32]), StreamError> {
        let (a, b) = (self.start[c], self.start[c + 1]);
        let mut rows = vec![0f32; (b - a) * self.ordered.dim];
        self.ordered.read_rows(a, &mut rows)?;
        Ok((rows, &self.original[a..b]))
    }
}

/// The queries that ask each partition: each query's `probe` nearest centres.
fn ask(
    centres: &[f32],
    centre_norms: &[f32],
    queries: &[f32],
    d: usize,
    probe: usize,
    parallel: bool,
) -> Vec<Vec<u32>> {
    let m = queries.len().checked_div(d).unwrap_or(0);
    let clusters = centre_norms.len();
    let mut dots = vec![0f32; m * clusters];
    products(&mut dots, queries, centres, m, clusters, d, parallel);
    let mut asking: Vec<Vec<u32>> = vec![Vec::new(); clusters];
    let mut order: Vec<(f32, u32)> = Vec::with_capacity(clusters);
    for (q, dots) in dots.chunks(clusters).enumerate() {
        order.clear();
        order.extend(
            dots.iter()
                .zip(centre_norms)
                .enumerate()
                .map(|(c, (&dot, &norm))| (norm - 2.0 * dot, c as u32)),
        );
        let p = probe.min(clusters);
        if p < clusters {
            order.select_nth_unstable_by(p - 1, |a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        }
        for &(_, c) in &order[..p] {
            asking[c as usize].push(q as u32);
        }
    }
    asking
}

/// The `k` nearest rows of each query among the partitions that `asking` says it asks;
/// `read(c, buffer)` fills `buffer` with partition `c`'s rows and returns their original
/// numbers. A query's own row `ids[q]` is left out.
#[allow(clippy::too_many_arguments)]
fn scan_asked<'p>(
    asking: &[Vec<u32>],
    queries: &[f32],
    ids: &[u32],
    k: usize,
    d: usize,
    parallel: bool,
    mut read: impl FnMut(usize, &mut Vec<f32>) -> Result<&'p [u32], StreamError>,
) -> Result<Vec<u32>, StreamError> {
    let m = ids.len();
    let mut best = vec![(f32::INFINITY, u32::MAX); m * k];
    let mut rows = Vec::new();
    let mut gathered = Vec::new();
    let mut products_out = Vec::new();
    for (c, asked) in asking.iter().enumerate().filter(|(_, a)| !a.is_empty()) {
        let original = read(c, &mut rows)?;
        let size = original.len();
        if size == 0 {
            continue;
        }
        let norms = row_norms(&rows, d);
        gathered.clear();
        for &q in asked {
            gathered.extend_from_slice(&queries[q as usize * d..(q as usize + 1) * d]);
        }
        products_out.resize(asked.len() * size, 0.0);
        products(
            &mut products_out,
            &gathered,
            &rows,
            asked.len(),
            size,
            d,
            parallel,
        );
        for (&q, dots) in asked.iter().zip(products_out.chunks(size)) {
            let own = ids[q as usize];
            let list = &mut best[q as usize * k..(q as usize + 1) * k];
            for ((&dot, &norm), &row) in dots.iter().zip(&norms).zip(original) {
                if row != own {
                    offer(list, (norm - 2.0 * dot, row));
                }
            }
        }
    }
    Ok(best.into_iter().map(|(_, row)| row).collect())
}

/// Keeps `list` the `k` smallest `(distance, row)` pairs seen, ascending (ties by row).
fn offer(list: &mut [(f32, u32)], candidate: (f32, u32)) {
    let worse = |a: &(f32, u32), b: &(f32, u32)| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1));
    let last = list.len() - 1;
    // Most candidates are farther than the k-th: one comparison of finite distances.
    if candidate.0 > list[last].0 || worse(&candidate, &list[last]).is_ge() {
        return;
    }
    let mut i = last;
    while i > 0 && worse(&candidate, &list[i - 1]).is_lt() {
        list[i] = list[i - 1];
        i -= 1;
    }
    list[i] = candidate;
}

/// The exact `k` nearest rows of each query (its own row `ids[i]` excluded), in one pass.
fn exact_of(
    spill: &Spill,
    queries: &[f32],
    ids: &[u32],
    k: usize,
) -> Result<Vec<u32>, StreamError> {
    let d = spill.dim;
    let m = ids.len();
    let mut best = vec![(f32::INFINITY, u32::MAX); m * k];
    let mut dots = vec![0f32; m * BLOCK];
    spill.for_blocks(BLOCK, |start, block| {
        let rows = block.len() / d;
        let norms = row_norms(block, d);
        let dots = &mut dots[..m * rows];
        products(dots, queries, block, m, rows, d, true);
        best.par_chunks_mut(k)
            .zip(dots.par_chunks(rows))
            .zip(ids.par_iter())
            .for_each(|((list, dots), &own)| {
                for (j, (&dot, &norm)) in dots.iter().zip(&norms).enumerate() {
                    let row = (start + j) as u32;
                    if row != own {
                        offer(list, (norm - 2.0 * dot, row));
                    }
                }
            });
        Ok(())
    })?;
    Ok(best.into_iter().map(|(_, row)| row).collect())
}
