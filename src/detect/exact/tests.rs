use super::*;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, Normal};

/// The obvious O(n^2 d) search, with exact differences; ties to the lower row.
pub(crate) fn neighbours_slow(values: &[f32], d: usize, k: usize) -> Vec<u32> {
    let n = values.len() / d;
    let mut out = Vec::new();
    for i in 0..n {
        let mut all: Vec<(f64, u32)> = (0..n)
            .filter(|&j| j != i)
            .map(|j| {
                let s: f64 = (0..d)
                    .map(|t| (values[i * d + t] as f64 - values[j * d + t] as f64).powi(2))
                    .sum();
                (s, j as u32)
            })
            .collect();
        all.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
        out.extend(all[..k].iter().map(|&(_, j)| j));
    }
    out
}

/// `groups` Gaussian clusters (centres spread `spread`, unit noise), rows shuffled.
fn grouped(n: usize, d: usize, groups: usize, spread: f32, seed: u64) -> Vec<f32> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let centre = Normal::new(0.0f32, spread).unwrap();
    let noise = Normal::new(0.0f32, 1.0).unwrap();
    let centres: Vec<f32> = (0..groups * d).map(|_| centre.sample(&mut rng)).collect();
    (0..n)
        .flat_map(|_| {
            let g = rng.random_range(0..groups);
            (0..d)
                .map(|t| centres[g * d + t] + noise.sample(&mut rng))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn plan(clusters: usize) -> Plan {
    Plan {
        block: 64,
        tile: 100,
        clusters,
        probe: None,
        train_rows: None,
    }
}

#[test]
fn pruning_skips_far_groups_and_keeps_the_answer() {
    let (n, d, k) = (1500, 16, 10);
    let values = grouped(n, d, 8, 3.0, 1);
    let want = neighbours_slow(&values, d, k);
    let (all, every_pair) = search_with(&values, n, d, k, &plan(1));
    assert_eq!(all, want);
    assert_eq!(every_pair, (n * n) as u64);
    let (pruned, pairs) = search_with(&values, n, d, k, &plan(24));
    assert_eq!(pruned, want);
    // Eight groups far apart: a query needs about its own group's rows.
    assert!(
        pairs < every_pair / 3,
        "{pairs} of {every_pair} distances computed"
    );
}

#[test]
fn structureless_rows_give_the_same_answer_with_clusters() {
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    for (n, d, k) in [(400, 8, 5), (257, 1, 3), (300, 40, 12)] {
        let values: Vec<f32> = (0..n * d).map(|_| rng.random_range(-1.0..1.0)).collect();
        let want = neighbours_slow(&values, d, k);
        for clusters in [2, 7, n / 10, n] {
            assert_eq!(
                search_with(&values, n, d, k, &plan(clusters)).0,
                want,
                "n={n} d={d} k={k} clusters={clusters}"
            );
        }
    }
}

#[test]
fn ties_go_to_the_lower_row_whichever_cluster_is_searched_first() {
    // Small integers: every product is exact in f32, so duplicated rows tie exactly.
    let mut rng = rand::rngs::StdRng::seed_from_u64(3);
    let (n, d, k) = (240, 4, 6);
    let distinct: Vec<f32> = (0..30 * d)
        .map(|_| rng.random_range(-3..=3) as f32)
        .collect();
    let values: Vec<f32> = (0..n)
        .flat_map(|_| {
            let r = rng.random_range(0..30);
            distinct[r * d..(r + 1) * d].to_vec()
        })
        .collect();
    let want = neighbours_slow(&values, d, k);
    for clusters in [1, 5, 30, 240] {
        assert_eq!(
            search_with(&values, n, d, k, &plan(clusters)).0,
            want,
            "clusters={clusters}"
        );
    }
}

#[test]
fn k_of_all_other_rows_and_zero_width_rows() {
    let values = grouped(120, 3, 4, 5.0, 4);
    let want = neighbours_slow(&values, 3, 119);
    assert_eq!(search_with(&values, 120, 3, 119, &plan(6)).0, want);
    // d = 0: every distance is 0, so the neighbours are the lowest other rows.
    let (nearest, _) = search_with(&[], 5, 0, 2, &plan(3));
    assert_eq!(nearest, [1, 2, 0, 2, 0, 1, 0, 1, 0, 1]);
}

use super::recall_of as recall;

#[test]
fn the_inverted_file_with_every_partition_is_the_exact_search() {
    let (n, d, k) = (900, 6, 7);
    let values = grouped(n, d, 12, 3.0, 5);
    let exact = search_with(&values, n, d, k, &plan(1)).0;
    let mut ivf = Plan::ivf(n, usize::MAX);
    ivf.block = 64;
    assert_eq!(ivf.clusters, 30);
    assert_eq!(search_with(&values, n, d, k, &ivf).0, exact);
}

#[test]
fn the_inverted_file_recalls_most_neighbours_and_costs_less() {
    let (n, d, k) = (4000, 16, 10);
    let values = grouped(n, d, 40, 4.0, 9);
    let (exact, all_pairs) = search_with(&values, n, d, k, &plan(1));
    let (one, one_pairs) = search_with(&values, n, d, k, &Plan::ivf(n, 1));
    let (eight, eight_pairs) = search_with(&values, n, d, k, &Plan::ivf(n, 8));
    let (r1, r8) = (recall(&exact, &one, k), recall(&exact, &eight, k));
    assert!(r8 >= 0.95, "recall with 8 partitions: {r8}");
    assert!(
        r1 < r8,
        "recall grows with partitions searched: {r1} then {r8}"
    );
    assert!(one_pairs < eight_pairs && eight_pairs < all_pairs / 2);
}

#[test]
fn the_inverted_file_widens_until_its_sampled_recall_is_reached() {
    // Overlapping groups: one partition a query recalls little.
    let (n, d, k) = (3000, 8, 10);
    let values = grouped(n, d, 6, 0.8, 21);
    let exact = search_with(&values, n, d, k, &plan(1)).0;
    let (fixed, report) = ivf_search(&values, n, d, k, 1, 0.0);
    assert_eq!(report.probe, 1);
    let (widened, report) = ivf_search(&values, n, d, k, 1, 0.95);
    assert!(report.probe > 1 && report.recall >= 0.95, "{report:?}");
    assert!(
        recall(&exact, &widened, k) >= 0.9,
        "{}",
        recall(&exact, &widened, k)
    );
    assert!(recall(&exact, &widened, k) > recall(&exact, &fixed, k));
    assert_eq!(report.sample, ivf::RECALL_SAMPLE.min(n));
    // Asking for recall 1 ends at the exact answer (every partition, at worst).
    let (all, report) = ivf_search(&values, n, d, k, 1, 1.0);
    assert!(report.recall == 1.0, "{report:?}");
    assert!(recall(&exact, &all, k) >= 0.99);
}

#[test]
fn an_inverted_file_place_with_no_candidate_is_empty() {
    // Two far groups of 3 rows and k = 4: a query searching one partition has 2 candidates.
    let values = [0.0, 0.1, 0.2, 100.0, 100.1, 100.2];
    let mut ivf = Plan::ivf(6, 1);
    ivf.clusters = 2;
    ivf.train_rows = None;
    let (nearest, _) = search_with(&values, 6, 1, 4, &ivf);
    assert_eq!(&nearest[..4], &[1, 2, u32::MAX, u32::MAX]);
    assert_eq!(&nearest[12..16], &[4, 5, u32::MAX, u32::MAX]);
}

#[test]
fn the_probe_is_the_fewest_partitions_that_reach_the_recall() {
    // 100 queries, k = 2: one neighbour in the nearest partition, the other in the fifth.
    let ranks: Vec<u32> = (0..100).flat_map(|_| [0, 4]).collect();
    assert_eq!(probe_for(&ranks, 2, 1, 50, 0.9), 5);
    assert_eq!(probe_for(&ranks, 2, 1, 50, 0.5), 1);
    // The probe asked for is the least searched.
    assert_eq!(probe_for(&ranks, 2, 7, 50, 0.9), 7);
    // No recall asked: the probe asked for.
    assert_eq!(probe_for(&ranks, 2, 3, 50, 0.0), 3);
    // A recall no probe reaches: every partition.
    assert_eq!(probe_for(&ranks, 2, 1, 50, 1.5), 50);
    // An empty place is not a neighbour to find.
    let ranks: Vec<u32> = (0..100).flat_map(|_| [0, u32::MAX]).collect();
    assert_eq!(probe_for(&ranks, 2, 1, 50, 1.0), 1);
}

#[test]
fn a_sampled_recall_just_over_the_target_is_not_enough() {
    // 96 of 100 queries find their neighbour in the nearest partition, 4 in the tenth: the
    // sample's recall at one partition is 0.96, but its standard error is 0.02, so 0.95 is
    // not reached with 95 % confidence until all ten are searched.
    let ranks: Vec<u32> = (0..100).map(|q| if q < 96 { 0 } else { 9 }).collect();
    assert_eq!(probe_for(&ranks, 1, 1, 20, 0.95), 10);
    // 0.92 is.
    assert_eq!(probe_for(&ranks, 1, 1, 20, 0.92), 1);
}

#[test]
fn a_neighbours_rank_counts_the_nearer_centres() {
    // Centres at 0, 10 and 20 on a line; a query at 11 is nearest 10, then 20, then 0.
    let centres = [0.0, 10.0, 20.0];
    let norms: Vec<f32> = centres.iter().map(|c| c * c).collect();
    let ranks = neighbour_ranks(&centres, &norms, &[11.0], 1, &[0, 1, 2, u32::MAX], 4);
    assert_eq!(ranks, [2, 0, 1, u32::MAX]);
    // Equally near centres: the lower partition comes first.
    let ranks = neighbour_ranks(&centres, &norms, &[5.0], 1, &[0, 1], 2);
    assert_eq!(ranks, [0, 1]);
}
