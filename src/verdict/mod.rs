//! The verdict: which samples to flag, with no poison rate given. Three kinds of evidence, all
//! judged in a view not trained on the labels (the raw view by default; the measurements behind
//! that choice are in the README):
//!
//! 1. **Neighbours.** A sample is flagged when one other label holds at least
//!    `neighbour_share` of its k nearest neighbours (deep k-NN, with a stricter bar than
//!    plurality), in the label-consistency view *and*, when the probe ran k-NN too, in the
//!    probe view. A clean but atypical sample is usually consistent in one of the two views;
//!    a flipped label is inconsistent in both.
//! 2. **Shifted copies.** The half of a class that the shifted-copy test
//!    ([`crate::detect::shift`]) found to be other classes plus one common shift, where that
//!    test flagged its members. This finds a trigger whose poisons are each other's
//!    neighbours, which label consistency cannot see. The test leaves out the samples that
//!    rule 1 flags, so that flipped labels do not make a clean half look like a copy. It runs
//!    on the raw view only.
//! 3. **Shared tokens** (text only). The texts of a class that share a token nearly no other
//!    class holds, when on average their neighbours in the label-consistency view carry
//!    another label often enough ([`crate::detect::tokens`]). This pools the evidence of a
//!    trigger phrase's poisons, which are partly each other's neighbours and so fall one by
//!    one under rule 1's bar.
//!
//! An earlier rule, which flagged a 2-means cluster whose neighbours disagreed with its label
//! far more than other clusters', was dropped: on MNIST it raised most of the false alarms
//! under label flips, and the shifted-copy test finds what it found (README, "Detection
//! quality").
//!
//! The fused score is the strongest of these pieces of evidence, each divided by its own
//! threshold. A score of 1 or more means flagged.

use serde::Serialize;

use crate::detect::knn::Votes;
use crate::detect::shift::Copies;
use crate::detect::tokens::TokenGroups;
use crate::embed::{Subset, View};

#[derive(Debug, Clone, PartialEq)]
pub struct VerdictConfig {
    pub neighbour_share: f64,
}

impl Default for VerdictConfig {
    fn default() -> Self {
        VerdictConfig {
            neighbour_share: 0.6,
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
    /// The sample is in a half of `size` of its class that mixes with the other classes once
    /// both are centred (`self_share` at most `threshold`), and its class neighbours are
    /// mostly in that half.
    ShiftedCopy {
        view: View,
        size: usize,
        self_share: f64,
        threshold: f64,
    },
    /// The text holds `token`, which `size` texts of its class share (and at least 95 % of
    /// the texts holding it carry that label), and on average `share` of those texts'
    /// neighbours in `view` carry another label (at least `threshold`).
    SharedToken {
        view: View,
        token: String,
        size: usize,
        share: f64,
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
    /// What limited the verdict, if anything.
    pub notes: Vec<String>,
}

/// Step 1 alone: the neighbour rule's verdict, and the view label consistency was judged in
/// (None when no k-NN ran or there were no neighbours to compare with; the notes say why).
fn neighbour_step(
    subset: &Subset,
    votes_by_view: &[(View, Votes)],
    config: &VerdictConfig,
    members: &[Vec<u32>],
) -> (Verdict, Vec<Vec<Firing>>, Option<View>) {
    let n = subset.len();
    let mut verdict = Verdict {
        scores: vec![0.0; n],
        flags: vec![false; n],
        reasons: vec![Vec::new(); n],
        ..Default::default()
    };
    let mut firings: Vec<Vec<Firing>> = vec![Vec::new(); subset.n_classes];
    let Some((knn_view, votes)) = judged_view(votes_by_view) else {
        verdict
            .notes
            .push("no k-NN run: label consistency was not judged, nothing is flagged".into());
        return (verdict, firings, None);
    };
    if votes.k == 0 {
        verdict
            .notes
            .push("fewer than two usable rows: no neighbours to compare with".into());
        return (verdict, firings, None);
    }
    // Confirmed in the probe view when it ran k-NN too.
    let confirm = votes_by_view
        .iter()
        .find(|(v, votes)| *v == View::Probe && *v != *knn_view && votes.k > 0)
        .map(|(v, votes)| (*v, votes));
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
    (verdict, firings, Some(*knn_view))
}

/// The view label consistency is judged in: the first among raw (minilm for text),
/// mobilenet_v2, precomputed, probe that ran k-NN.
fn judged_view(votes_by_view: &[(View, Votes)]) -> Option<&(View, Votes)> {
    let preference = [
        View::Raw,
        View::Minilm,
        View::MobilenetV2,
        View::Precomputed,
        View::Probe,
    ];
    preference
        .iter()
        .find_map(|p| votes_by_view.iter().find(|(v, _)| v == p))
}

fn class_members(subset: &Subset) -> Vec<Vec<u32>> {
    let mut members = vec![Vec::new(); subset.n_classes];
    for (i, &c) in subset.labels.iter().enumerate() {
        members[c as usize].push(i as u32);
    }
    members
}

/// The samples the neighbour rule flags, and the view it judged in: what the shifted-copy
/// test leaves out of its samples, and where it runs.
pub fn neighbour_flags(
    subset: &Subset,
    votes_by_view: &[(View, Votes)],
    config: &VerdictConfig,
) -> (Vec<bool>, Option<View>) {
    let (verdict, _, view) = neighbour_step(subset, votes_by_view, config, &class_members(subset));
    (verdict.flags, view)
}

/// Decides, from the k-NN votes and the shifted-copy halves (of the view the test ran on),
/// which samples to flag.
pub fn decide(
    subset: &Subset,
    votes_by_view: &[(View, Votes)],
    copies: Option<&Copies>,
    tokens: Option<&TokenGroups>,
    config: &VerdictConfig,
) -> Verdict {
    let members = class_members(subset);
    let (mut verdict, mut firings, knn_view) =
        neighbour_step(subset, votes_by_view, config, &members);
    if knn_view.is_none() {
        return verdict;
    }
    // 2. Shifted copies.
    if let Some(copies) = copies {
        let (view, threshold) = (copies.view, copies.threshold);
        for half in copies.halves.iter().filter(|h| h.fired) {
            let self_share = half.self_share.unwrap_or(1.0);
            for &r in &half.flagged {
                let r = r as usize;
                verdict.flags[r] = true;
                verdict.scores[r] = verdict.scores[r]
                    .max(((1.0 - self_share) / (1.0 - threshold).max(f64::EPSILON)) as f32);
                verdict.reasons[r].push(Reason::ShiftedCopy {
                    view,
                    size: half.members.len(),
                    self_share,
                    threshold,
                });
            }
            firings[half.class as usize].push(Firing {
                detector: "shift",
                view,
                statistic: "half_self_share",
                value: self_share,
                threshold,
                samples: half.flagged.len(),
            });
        }
    }
    // 3. Shared tokens.
    if let Some(groups) = tokens {
        let (view, threshold) = (groups.view, groups.threshold);
        for group in &groups.fired {
            for &r in &group.members {
                let r = r as usize;
                verdict.flags[r] = true;
                verdict.scores[r] =
                    verdict.scores[r].max((group.share / threshold.max(f64::EPSILON)) as f32);
                verdict.reasons[r].push(Reason::SharedToken {
                    view,
                    token: group.token.clone(),
                    size: group.members.len(),
                    share: group.share,
                    threshold,
                });
            }
            firings[group.class as usize].push(Firing {
                detector: "tokens",
                view,
                statistic: "token_group_share",
                value: group.share,
                threshold,
                samples: group.members.len(),
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
    use crate::detect::shift::Half;

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
    fn votes(s: &Subset, other: u32, odd: &[usize], odd_votes: u32) -> Votes {
        let top_other: Vec<(u32, u32)> = (0..s.len())
            .map(|i| {
                let c = (s.labels[i] + 1) % s.n_classes as u32;
                (c, if odd.contains(&i) { odd_votes } else { other })
            })
            .collect();
        let other = top_other.iter().map(|t| t.1).collect();
        Votes {
            k: 10,
            top_other,
            other,
        }
    }

    #[test]
    fn a_clean_dataset_flags_nothing() {
        let s = subset(200, 4);
        let v = votes(&s, 1, &[], 0);
        let out = decide(&s, &[(View::Raw, v)], None, None, &VerdictConfig::default());
        assert!(out.flags.iter().all(|&f| !f));
        assert!(out.scores.iter().all(|&x| x < 1.0));
        assert!(out.classes.iter().all(|c| c.firings.is_empty()));
    }

    #[test]
    fn strong_neighbour_disagreement_flags_and_needs_the_probe_to_agree() {
        let s = subset(200, 4);
        let v = votes(&s, 0, &[5, 9], 8);
        let out = decide(
            &s,
            &[(View::Raw, v.clone())],
            None,
            None,
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
        let p = votes(&s, 0, &[5], 9);
        let both = decide(
            &s,
            &[(View::Raw, v), (View::Probe, p)],
            None,
            None,
            &VerdictConfig::default(),
        );
        let flagged: Vec<usize> = (0..200).filter(|&i| both.flags[i]).collect();
        assert_eq!(flagged, [5]);
    }

    #[test]
    fn classes_smaller_than_k_are_not_judged_by_neighbours() {
        // Class 1 has 3 members among 43 rows: its samples see mostly other labels.
        let mut s = subset(43, 1);
        for i in [3, 17, 30] {
            s.labels[i] = 1;
        }
        s.n_classes = 2;
        let top: Vec<(u32, u32)> = (0..43)
            .map(|i| {
                if [3, 17, 30].contains(&i) {
                    (0, 9)
                } else {
                    (1, 0)
                }
            })
            .collect();
        let out = decide(
            &s,
            &[(
                View::Raw,
                Votes {
                    k: 10,
                    other: top.iter().map(|t| t.1).collect(),
                    top_other: top,
                },
            )],
            None,
            None,
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
    fn a_fired_shifted_copy_flags_its_chosen_members_and_nothing_else() {
        let s = subset(200, 4);
        let v = votes(&s, 0, &[], 0);
        let half = |members: Vec<u32>, share: f64, fired: bool, flagged: Vec<u32>| Half {
            class: 0,
            members,
            self_share: Some(share),
            fired,
            flagged,
        };
        let copies = Copies {
            view: View::Raw,
            threshold: 0.85,
            halves: vec![
                half(vec![0, 4, 8, 12], 0.6, true, vec![0, 4, 8]),
                half(vec![16, 20], 0.99, false, Vec::new()),
            ],
        };
        let out = decide(
            &s,
            &[(View::Raw, v)],
            Some(&copies),
            None,
            &VerdictConfig::default(),
        );
        let flagged: Vec<usize> = (0..200).filter(|&i| out.flags[i]).collect();
        assert_eq!(flagged, [0, 4, 8]);
        // (1 - 0.6) / (1 - 0.85): the evidence over its threshold.
        assert!(
            (out.scores[0] - 0.4 / 0.15).abs() < 1e-5,
            "{}",
            out.scores[0]
        );
        assert!(matches!(
            out.reasons[4][0],
            Reason::ShiftedCopy { size: 4, .. }
        ));
        let firing = &out.classes[0].firings[0];
        assert_eq!((firing.detector, firing.samples), ("shift", 3));
        assert!(out.classes[1..].iter().all(|c| c.flagged == 0));
    }

    #[test]
    fn without_knn_nothing_is_flagged_and_the_note_says_why() {
        let s = subset(10, 2);
        let out = decide(&s, &[], None, None, &VerdictConfig::default());
        assert!(out.flags.iter().all(|&f| !f));
        assert!(out.notes[0].starts_with("no k-NN run"));
    }
}
