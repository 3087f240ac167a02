//! The verdict: which samples to flag, with no poison rate given. Two kinds of evidence, both
//! about label consistency in a view not trained on the labels (the raw view by default; the
//! measurements behind that choice are in the README):
//!
//! 1. **Neighbours.** A sample is flagged when one other label holds at least
//!    `neighbour_share` of its k nearest neighbours (deep k-NN, with a stricter bar than
//!    plurality), in the label-consistency view *and*, when the probe ran k-NN too, in the
//!    probe view. A clean but atypical sample is usually consistent in one of the two views;
//!    a flipped label is inconsistent in both.
//! 2. **Sub-populations.** Activation clustering splits every class in two, in each view. A
//!    cluster whose members' mean neighbour disagreement `D` is an outlier among all clusters
//!    (at least `cluster_disagreement`, and `cluster_z` robust standard deviations, median and
//!    MAD, above the median cluster) is a planted sub-population: a trigger gathers poisons
//!    from many classes into one cluster of the target class, where they still sit near their
//!    true classes. All its members are flagged. One cluster at most fires per class, the one
//!    whose `D` stands furthest above the rest of its class. A clean class has no such
//!    cluster, so it flags nothing.
//!
//! The fused score is the strongest of these pieces of evidence, each divided by its own
//! threshold. A score of 1 or more means flagged.

use serde::Serialize;

use crate::detect::clustering::ClassSplit;
use crate::detect::knn::Votes;
use crate::detect::robust::median_sd;
use crate::embed::{Subset, View};

#[derive(Debug, Clone, PartialEq)]
pub struct VerdictConfig {
    pub neighbour_share: f64,
    pub cluster_disagreement: f64,
    pub cluster_z: f64,
    /// Within a firing cluster, the least share of a member's own neighbours that must carry
    /// another label for it to be flagged.
    pub member_disagreement: f64,
}

impl Default for VerdictConfig {
    fn default() -> Self {
        VerdictConfig {
            neighbour_share: 0.6,
            cluster_disagreement: 0.3,
            cluster_z: 3.5,
            member_disagreement: 0.2,
        }
    }
}

/// Why a sample was flagged.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "evidence", rename_all = "snake_case")]
pub enum Reason {
    /// `votes` of the `k` nearest neighbours in `view` carry the class `label`; with a
    /// confirming view, `confirmed_votes` of its `k` neighbours carry one other label.
    Neighbours {
        view: View,
        label: u32,
        votes: u32,
        k: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        confirmed_by: Option<View>,
        #[serde(skip_serializing_if = "Option::is_none")]
        confirmed_votes: Option<u32>,
    },
    /// The sample belongs to a cluster of `size` whose mean disagreement passed `threshold`.
    Cluster {
        view: View,
        size: usize,
        disagreement: f64,
        threshold: f64,
    },
}

/// A rule that fired in a class.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Firing {
    pub detector: &'static str,
    pub view: View,
    pub statistic: &'static str,
    pub value: f64,
    pub threshold: f64,
    /// Samples this rule flagged in the class.
    pub samples: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassVerdict {
    pub class: u32,
    pub size: usize,
    pub flagged: usize,
    pub firings: Vec<Firing>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Verdict {
    /// Per subset row: the fused score (>= 1 means flagged), the flag, and the reasons.
    pub scores: Vec<f32>,
    pub flags: Vec<bool>,
    pub reasons: Vec<Vec<Reason>>,
    pub classes: Vec<ClassVerdict>,
    /// The cluster-disagreement threshold this dataset's clusters set.
    pub cluster_threshold: Option<f64>,
    /// What limited the verdict, if anything.
    pub notes: Vec<String>,
}

struct Candidate<'a> {
    view: View,
    class: u32,
    members: &'a [u32],
    disagreement: f64,
    rest: f64,
}

/// Decides, from the k-NN votes (one view, with its per-sample disagreement scores) and the
/// 2-means splits (any views), which samples to flag.
pub fn decide(
    subset: &Subset,
    votes_by_view: &[(View, Votes, Vec<f32>)],
    splits: &[(View, Vec<ClassSplit>)],
    config: &VerdictConfig,
) -> Verdict {
    let n = subset.len();
    let mut members = vec![Vec::new(); subset.n_classes];
    for (i, &c) in subset.labels.iter().enumerate() {
        members[c as usize].push(i as u32);
    }
    let mut verdict = Verdict {
        scores: vec![0.0; n],
        flags: vec![false; n],
        reasons: vec![Vec::new(); n],
        ..Default::default()
    };
    // Label consistency is judged in the first view among raw (minilm for text), precomputed,
    // probe that ran k-NN.
    let preference = [View::Raw, View::Minilm, View::Precomputed, View::Probe];
    let Some((knn_view, votes, disagreement)) = preference
        .iter()
        .find_map(|p| votes_by_view.iter().find(|(v, _, _)| v == p))
    else {
        verdict
            .notes
            .push("no k-NN run: label consistency was not judged, nothing is flagged".into());
        return verdict;
    };
    if votes.k == 0 {
        verdict
            .notes
            .push("fewer than two usable rows: no neighbours to compare with".into());
        return verdict;
    }
    let mut firings: Vec<Vec<Firing>> = vec![Vec::new(); subset.n_classes];
    // 1. Neighbours, confirmed in the probe view when it ran k-NN too.
    let confirm = votes_by_view
        .iter()
        .find(|(v, votes, _)| *v == View::Probe && *v != *knn_view && votes.k > 0)
        .map(|(v, votes, _)| (*v, votes));
    let share = |votes: &Votes, i: usize| votes.top_other[i].1 as f64 / votes.k as f64;
    // A class with no more than k members cannot fill a neighbourhood on its own, so other
    // labels outvote it whatever its samples look like: such classes are not judged by their
    // neighbours.
    let small: Vec<bool> = members.iter().map(|m| m.len() <= votes.k).collect();
    let small_count = members
        .iter()
        .filter(|m| !m.is_empty() && m.len() <= votes.k)
        .count();
    if small_count > 0 {
        verdict.notes.push(format!(
            "{small_count} classes have at most k = {} samples and are not judged by their neighbours",
            votes.k
        ));
    }
    for i in 0..n {
        if small[subset.labels[i] as usize] {
            continue;
        }
        let (label, count) = votes.top_other[i];
        let own = share(votes, i);
        let confirmed = confirm.map(|(_, c)| share(c, i));
        let evidence = confirmed.map_or(own, |c| own.min(c));
        verdict.scores[i] = (evidence / config.neighbour_share) as f32;
        if evidence >= config.neighbour_share {
            verdict.flags[i] = true;
            verdict.reasons[i].push(Reason::Neighbours {
                view: *knn_view,
                label,
                votes: count,
                k: votes.k,
                confirmed_by: confirm.map(|(v, _)| v),
                confirmed_votes: confirm.map(|(_, c)| c.top_other[i].1),
            });
        }
    }
    let k = votes.k as f64;
    for (c, rows) in members.iter().enumerate() {
        let flagged: Vec<&u32> = rows
            .iter()
            .filter(|&&r| verdict.flags[r as usize])
            .collect();
        if let Some(max) = flagged
            .iter()
            .map(|&&r| votes.top_other[r as usize].1 as f64 / k)
            .max_by(f64::total_cmp)
        {
            firings[c].push(Firing {
                detector: "knn",
                view: *knn_view,
                statistic: "top_other_label_share",
                value: max,
                threshold: config.neighbour_share,
                samples: flagged.len(),
            });
        }
    }
    // 2. Sub-populations.
    let mean = |rows: &mut dyn Iterator<Item = u32>| {
        let (sum, count) = rows.fold((0.0, 0usize), |(s, c), r| {
            (s + disagreement[r as usize] as f64, c + 1)
        });
        if count > 0 {
            sum / count as f64
        } else {
            0.0
        }
    };
    let mut candidates = Vec::new();
    let mut all_d = Vec::new();
    for (view, view_splits) in splits {
        for split in view_splits {
            let smaller: std::collections::HashSet<u32> = split.smaller.iter().copied().collect();
            let rest: Vec<u32> = members[split.class as usize]
                .iter()
                .copied()
                .filter(|r| !smaller.contains(r))
                .collect();
            let d_small = mean(&mut split.smaller.iter().copied());
            let d_rest = mean(&mut rest.iter().copied());
            all_d.extend([d_small, d_rest]);
            candidates.push((*view, split.class, split.smaller.clone(), d_small, d_rest));
            candidates.push((*view, split.class, rest, d_rest, d_small));
        }
    }
    if candidates.is_empty() {
        verdict
            .notes
            .push("no clustering run: sub-populations were not judged".into());
    } else {
        let (median, sd) = median_sd(&all_d);
        let threshold = config
            .cluster_disagreement
            .max(median + config.cluster_z * sd);
        verdict.cluster_threshold = Some(threshold);
        let mut best: Vec<Option<Candidate<'_>>> = (0..subset.n_classes).map(|_| None).collect();
        for (view, class, rows, d, rest) in &candidates {
            if *d < threshold || d <= rest || rows.len() < 2 {
                continue;
            }
            let slot = &mut best[*class as usize];
            if slot
                .as_ref()
                .is_none_or(|b| d - rest > b.disagreement - b.rest)
            {
                *slot = Some(Candidate {
                    view: *view,
                    class: *class,
                    members: rows,
                    disagreement: *d,
                    rest: *rest,
                });
            }
        }
        for c in best.into_iter().flatten() {
            let mut flagged = 0;
            for &r in c.members {
                let r = r as usize;
                if (disagreement[r] as f64) < config.member_disagreement {
                    continue;
                }
                flagged += 1;
                verdict.flags[r] = true;
                verdict.scores[r] = verdict.scores[r].max((c.disagreement / threshold) as f32);
                verdict.reasons[r].push(Reason::Cluster {
                    view: c.view,
                    size: c.members.len(),
                    disagreement: c.disagreement,
                    threshold,
                });
            }
            firings[c.class as usize].push(Firing {
                detector: "clustering",
                view: c.view,
                statistic: "cluster_disagreement",
                value: c.disagreement,
                threshold,
                samples: flagged,
            });
        }
    }
    verdict.classes = members
        .iter()
        .enumerate()
        .filter(|(_, rows)| !rows.is_empty())
        .map(|(c, rows)| ClassVerdict {
            class: c as u32,
            size: rows.len(),
            flagged: rows.iter().filter(|&&r| verdict.flags[r as usize]).count(),
            firings: std::mem::take(&mut firings[c]),
        })
        .collect();
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` samples in `classes` equal classes (class = i % classes).
    fn subset(n: usize, classes: usize) -> Subset {
        Subset {
            rows: (0..n as u32).collect(),
            labels: (0..n as u32).map(|i| i % classes as u32).collect(),
            n_classes: classes,
            excluded: Vec::new(),
        }
    }

    /// Votes where every sample sees `other` votes for the next class, except `odd`, which
    /// see `odd_votes`.
    fn votes(s: &Subset, other: u32, odd: &[usize], odd_votes: u32) -> (Votes, Vec<f32>) {
        let k = 10;
        let top: Vec<(u32, u32)> = (0..s.len())
            .map(|i| {
                let c = (s.labels[i] + 1) % s.n_classes as u32;
                (c, if odd.contains(&i) { odd_votes } else { other })
            })
            .collect();
        let disagreement = top.iter().map(|t| t.1 as f32 / k as f32).collect();
        (Votes { k, top_other: top }, disagreement)
    }

    #[test]
    fn a_clean_dataset_flags_nothing() {
        let s = subset(200, 4);
        let (v, d) = votes(&s, 1, &[], 0);
        let splits: Vec<ClassSplit> = (0..4)
            .map(|c| ClassSplit {
                class: c,
                smaller: (0..200).filter(|i| i % 4 == c && i % 3 == 0).collect(),
                relative_size: 0.33,
                silhouette: 0.2,
            })
            .collect();
        let out = decide(
            &s,
            &[(View::Raw, v, d)],
            &[(View::Probe, splits)],
            &VerdictConfig::default(),
        );
        assert!(out.flags.iter().all(|&f| !f));
        assert!(out.scores.iter().all(|&x| x < 1.0));
        assert!(out.classes.iter().all(|c| c.firings.is_empty()));
    }

    #[test]
    fn strong_neighbour_disagreement_flags_and_needs_the_probe_to_agree() {
        let s = subset(200, 4);
        let (v, d) = votes(&s, 0, &[5, 9], 8);
        let out = decide(
            &s,
            &[(View::Raw, v.clone(), d.clone())],
            &[],
            &VerdictConfig::default(),
        );
        let flagged: Vec<usize> = (0..200).filter(|&i| out.flags[i]).collect();
        assert_eq!(flagged, [5, 9]);
        assert!(matches!(
            out.reasons[5][0],
            Reason::Neighbours {
                votes: 8,
                k: 10,
                ..
            }
        ));
        assert!((out.scores[5] - 8.0 / 6.0).abs() < 1e-6);
        // The probe sees sample 9 as consistent: only 5 stays flagged.
        let (p, pd) = votes(&s, 0, &[5], 9);
        let both = decide(
            &s,
            &[(View::Raw, v, d), (View::Probe, p, pd)],
            &[],
            &VerdictConfig::default(),
        );
        let flagged: Vec<usize> = (0..200).filter(|&i| both.flags[i]).collect();
        assert_eq!(flagged, [5]);
    }

    #[test]
    fn a_label_inconsistent_cluster_fires_and_is_flagged_whole() {
        let s = subset(400, 4);
        // In class 0 (rows 0, 4, 8, ...), the 40 rows from 240 on disagree with half their
        // neighbours; nobody reaches the per-sample bar.
        let planted: Vec<usize> = (240..400).filter(|i| i % 4 == 0).collect();
        let (v, d) = votes(&s, 0, &planted, 5);
        let split = |c: u32| ClassSplit {
            class: c,
            smaller: if c == 0 {
                planted.iter().map(|&i| i as u32).collect()
            } else {
                (0..400).filter(|i| i % 4 == c && i < &40).collect()
            },
            relative_size: 0.4,
            silhouette: 0.3,
        };
        let out = decide(
            &s,
            &[(View::Raw, v, d)],
            &[(View::Probe, (0..4).map(split).collect())],
            &VerdictConfig::default(),
        );
        let flagged: Vec<usize> = (0..400).filter(|&i| out.flags[i]).collect();
        assert_eq!(flagged, planted);
        let firing = &out.classes[0].firings[0];
        assert_eq!((firing.detector, firing.samples), ("clustering", 40));
        assert!((firing.value - 0.5).abs() < 1e-9);
        assert!(out.classes[1..].iter().all(|c| c.flagged == 0));
    }

    #[test]
    fn classes_smaller_than_k_are_not_judged_by_neighbours() {
        // Class 1 has 3 members among 43 rows: its samples see mostly other labels.
        let mut s = subset(43, 1);
        for i in [3, 17, 30] {
            s.labels[i] = 1;
        }
        s.n_classes = 2;
        let top = (0..43)
            .map(|i| {
                if [3, 17, 30].contains(&i) {
                    (0, 9)
                } else {
                    (1, 0)
                }
            })
            .collect();
        let d = (0..43)
            .map(|i| if [3, 17, 30].contains(&i) { 0.9 } else { 0.0 })
            .collect();
        let out = decide(
            &s,
            &[(
                View::Raw,
                Votes {
                    k: 10,
                    top_other: top,
                },
                d,
            )],
            &[],
            &VerdictConfig::default(),
        );
        assert!(out.flags.iter().all(|&f| !f));
        assert!(
            out.notes[0].contains("1 classes have at most k = 10 samples"),
            "{:?}",
            out.notes
        );
    }

    #[test]
    fn without_knn_nothing_is_flagged_and_the_note_says_why() {
        let s = subset(10, 2);
        let out = decide(&s, &[], &[], &VerdictConfig::default());
        assert!(out.flags.iter().all(|&f| !f));
        assert!(out.notes[0].starts_with("no k-NN run"));
    }
}
