//! The inverted-file k-NN search of `--knn-index ivf` ([`crate::detect::exact`]) on a matrix
//! that stays on disk. The same partition: about `sqrt(n)` centres fitted by Lloyd's rounds
//! on 64 seeded sampled rows a centre, then every row assigned once. The rows are copied into
//! a second file in partition order, so that a partition is one read. Each partition's
//! queries are then searched against the rows of their `probe` nearest partitions, reading
//! only those. The probe is chosen as in memory ([`probe_for`]): 1,024 seeded queries are
//! searched exactly (one pass over the file), and the probe is the fewest partitions, at least
//! `probe`, at which their recall@k reaches `min_recall` with 95 % confidence.
//!
//! Held in memory: the centres, the partition of row numbers (4 bytes a row), the answer
//! (`4 k` bytes a row), and per task one partition's queries, the partition it reads and
//! tiles of products ([`offer_tiles`]).

use std::collections::HashMap;
use std::path::Path;

use rayon::prelude::*;

use super::remote::Tasks;
use super::spill::Spill;
use super::StreamError;
use crate::detect::exact::{
    neighbour_ranks, offer_tiles, probe_for, recall_of, recall_sample, IvfReport, Top,
};
use crate::detect::partition::{assign, lloyd, partition_rng, row_norms, training_rows};

mod tasks;
pub(crate) use tasks::{run_ask, run_search, ASK_STAGE, SEARCH_STAGE};

/// Rows sampled a centre to fit them (as in memory).
const TRAIN_PER_CLUSTER: usize = 64;
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
    super::trace("k-NN start");
    let sample = recall_sample(n);
    let queries = spill.gather(&sample, BLOCK)?;
    let exact = exact_of(spill, &queries, &sample, k)?;
    let (layout, assignment) = Layout::new(spill, work)?;
    let parts: Vec<u32> = exact
        .iter()
        .map(|&j| assignment.get(j as usize).copied().unwrap_or(u32::MAX))
        .collect();
    drop(assignment);
    super::trace("k-NN partition");
    let clusters = layout.centres.len() / d;
    let ranks = neighbour_ranks(
        &layout.centres,
        &layout.centre_norms,
        &queries,
        d,
        &parts,
        k,
    );
    let probe = probe_for(&ranks, k, probe, clusters, min_recall);
    let approx = layout.search(&queries, &sample, k, probe, true)?;
    let recall = recall_of(&exact, &approx, k);
    super::trace("k-NN recall sample");
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
    /// The layout, and each row's partition.
    fn new(spill: &Spill, work: &Path) -> Result<(Layout, Vec<u32>), StreamError> {
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
        let layout = Layout {
            centres,
            centre_norms,
            start,
            original,
            ordered,
        };
        Ok((layout, assignment))
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

/// The queries that ask each partition: each query's `probe` nearest centres (ties to the
/// lower partition), found by the same tiled products and running top-k as the search itself.
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
    let p = probe.clamp(1, clusters.max(1));
    if p >= clusters {
        return vec![(0..m as u32).collect(); clusters];
    }
    let numbers: Vec<u32> = (0..clusters as u32).collect();
    let nearest = |queries: &[f32]| -> Vec<u32> {
        let rows = queries.len() / d;
        let mut tops: Vec<Top> = (0..rows).map(|_| Top::new(p, usize::MAX)).collect();
        let which: Vec<u32> = (0..rows as u32).collect();
        let (mut gathered, mut out) = (Vec::new(), Vec::new());
        offer_tiles(
            &mut tops,
            &which,
            queries,
            centres,
            centre_norms,
            &numbers,
            d,
            &mut gathered,
            &mut out,
        );
        tops.iter().flat_map(Top::list).collect()
    };
    let lists = if parallel {
        let size = group_size(m);
        queries
            .par_chunks(size * d)
            .flat_map_iter(&nearest)
            .collect()
    } else {
        nearest(queries)
    };
    let mut asking: Vec<Vec<u32>> = vec![Vec::new(); clusters];
    for (q, list) in lists.chunks(p).enumerate() {
        for &c in list.iter().filter(|&&c| c != u32::MAX) {
            asking[c as usize].push(q as u32);
        }
    }
    asking
}

/// The `k` nearest rows of each query among the partitions that `asking` says it asks;
/// `read(c, buffer)` fills `buffer` with partition `c`'s rows and returns their original
/// numbers. A query's own row `ids[q]` is left out. With `parallel`, the queries are cut into
/// groups searched by rayon's tasks, each reading the partitions its own queries ask.
fn scan_asked<'p>(
    asking: &[Vec<u32>],
    queries: &[f32],
    ids: &[u32],
    k: usize,
    d: usize,
    parallel: bool,
    read: impl Fn(usize, &mut Vec<f32>) -> Result<&'p [u32], StreamError> + Sync,
) -> Result<Vec<u32>, StreamError> {
    let m = ids.len();
    if !parallel || m < 2 {
        return scan_group(asking, queries, ids, k, d, &read);
    }
    let size = group_size(m);
    let firsts: Vec<usize> = (0..m).step_by(size).collect();
    let found = firsts
        .par_iter()
        .map(|&first| {
            let last = (first + size).min(m);
            let asking: Vec<Vec<u32>> = asking
                .iter()
                .map(|a| {
                    a.iter()
                        .filter(|&&q| (first..last).contains(&(q as usize)))
                        .map(|&q| q - first as u32)
                        .collect()
                })
                .collect();
            let (queries, ids) = (&queries[first * d..last * d], &ids[first..last]);
            scan_group(&asking, queries, ids, k, d, &read)
        })
        .collect::<Result<Vec<_>, StreamError>>()?;
    Ok(found.concat())
}

/// Queries a rayon task takes when `m` are cut into groups: four groups a thread.
fn group_size(m: usize) -> usize {
    m.div_ceil(4 * rayon::current_num_threads()).max(1)
}

/// [`scan_asked`] on one thread.
fn scan_group<'p>(
    asking: &[Vec<u32>],
    queries: &[f32],
    ids: &[u32],
    k: usize,
    d: usize,
    read: &impl Fn(usize, &mut Vec<f32>) -> Result<&'p [u32], StreamError>,
) -> Result<Vec<u32>, StreamError> {
    let mut tops: Vec<Top> = ids.iter().map(|&q| Top::new(k, q as usize)).collect();
    let (mut rows, mut gathered, mut out) = (Vec::new(), Vec::new(), Vec::new());
    for (c, asked) in asking.iter().enumerate().filter(|(_, a)| !a.is_empty()) {
        let original = read(c, &mut rows)?;
        if original.is_empty() {
            continue;
        }
        let norms = row_norms(&rows, d);
        offer_tiles(
            &mut tops,
            asked,
            queries,
            &rows,
            &norms,
            original,
            d,
            &mut gathered,
            &mut out,
        );
    }
    Ok(tops.iter().flat_map(Top::list).collect())
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
    let mut tops: Vec<Top> = ids.iter().map(|&q| Top::new(k, q as usize)).collect();
    // Groups of queries, each searched by one of rayon's tasks.
    let size = group_size(m);
    let mut buffers: Vec<(Vec<f32>, Vec<f32>)> = vec![Default::default(); m.div_ceil(size)];
    let mut numbers = Vec::new();
    // A group's queries by their place in it.
    let places: Vec<u32> = (0..size as u32).collect();
    spill.for_blocks(BLOCK, |start, block| {
        let rows = block.len() / d;
        let norms = row_norms(block, d);
        numbers.clear();
        numbers.extend((start..start + rows).map(|j| j as u32));
        tops.par_chunks_mut(size)
            .zip(buffers.par_iter_mut())
            .enumerate()
            .for_each(|(g, (tops, (gathered, out)))| {
                let first = g * size;
                let which = &places[..tops.len()];
                let queries = &queries[first * d..(first + tops.len()) * d];
                offer_tiles(
                    tops, which, queries, block, &norms, &numbers, d, gathered, out,
                );
            });
        Ok(())
    })?;
    Ok(tops.iter().flat_map(Top::list).collect())
}
