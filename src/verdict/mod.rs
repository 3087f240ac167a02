//! The verdict: which samples are suspected of poisoning, which are label issues, and whether
//! the gate passes, with no poison rate given. It keeps two kinds of finding apart:
//!
//! - **Label issues** (a warning): samples whose neighbours in the judged view (the raw view
//!   by default; MiniLM for text) mostly carry one other label, and in the probe view (or
//!   else the `--embeddings` vectors) too when it ran k-NN ([`labels`]). Natural data has
//!   them: a shirt that looks like a T-shirt, a borderline tumour. They are ranked and
//!   reported, and fail the gate only with `--strict` or above `--max-label-issues`.
//! - **Suspected poisoning** (fails the gate): coordinated evidence, each piece from a test
//!   whose cut comes from the data's own null or from theory, at a family-wise level `alpha`:
//!   1. *Label noise in excess* ([`labels`]): isolated contradictions (label issues with
//!      hardly any sample of their own label nearby) in every part of the dataset, the
//!      cleaner half of the classes included, above `noise_budget` with confidence, and
//!      carrying a share of those classes' disagreement that only noise reaches. The islands
//!      are flagged.
//!   2. *Class inflow* ([`labels`]): one class receives label issues from most other classes,
//!      one way and above the median class's rate. Its label issues are flagged.
//!   3. *Shifted copies* ([`crate::detect::shift`]): a half of a class that, centred, mixes
//!      with the other classes, and whose mixing is an outlier among all classes' halves.
//!   4. *Shared tokens* (text, [`crate::detect::tokens`]): the texts of a class that share a
//!      token their neighbours disagree with far beyond the class's own rate.
//!
//! The fused score ranks samples: the strongest poisoning evidence over its cut (1 or more
//! means flagged), and for the rest half the neighbour evidence over its bar (below 0.84), so
//! that label issues rank without being flagged.

use serde::Serialize;

use crate::detect::knn::Votes;
use crate::detect::shift::Copies;
use crate::detect::tokens::TokenGroups;
use crate::embed::{Subset, View};

pub mod labels;
mod reasons;

pub use self::reasons::{Reason, Reasons};

#[derive(Debug, Clone, PartialEq)]
pub struct VerdictConfig {
    /// A label issue: one other label holds at least this share of the neighbours.
    pub neighbour_share: f64,
    /// The family-wise false-alarm level of each poisoning test on clean data.
    pub alpha: f64,
    /// The label-noise test fires when isolated contradictions exceed this share (with
    /// confidence `1 - alpha`) in the cleaner half of the classes.
    pub noise_budget: f64,
}

impl Default for VerdictConfig {
    fn default() -> Self {
        VerdictConfig {
            neighbour_share: 0.6,
            alpha: 0.01,
            noise_budget: 0.01,
        }
    }
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
    /// Samples suspected of poisoning.
    pub flagged: usize,
    pub label_issues: usize,
    pub firings: Vec<Firing>,
}

/// A dataset-level test and its outcome.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DatasetTest {
    pub test: &'static str,
    pub view: View,
    pub statistic: &'static str,
    pub value: f64,
    pub threshold: f64,
    pub fired: bool,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Verdict {
    /// Per subset row: the fused score (>= 1 means suspected of poisoning), the poisoning
    /// flag, the label-issue flag, and the reasons for either.
    pub scores: Vec<f32>,
    pub flags: Vec<bool>,
    pub label_issues: Vec<bool>,
    pub reasons: Reasons,
    pub classes: Vec<ClassVerdict>,
    pub tests: Vec<DatasetTest>,
    /// What limited the verdict, if anything.
    pub notes: Vec<String>,
}

impl Verdict {
    fn empty(n: usize) -> Verdict {
        Verdict {
            scores: vec![0.0; n],
            flags: vec![false; n],
            label_issues: vec![false; n],
            ..Default::default()
        }
    }

    /// Flags subset row `r` as suspected poisoning with `evidence` over its cut. Poisoning
    /// reasons are listed before the label-issue reason.
    fn flag(&mut self, r: usize, evidence: f64, reason: Reason) {
        self.flags[r] = true;
        self.scores[r] = self.scores[r].max(evidence.max(1.0) as f32);
        let reasons = self.reasons.of_mut(r);
        let at = reasons
            .iter()
            .position(|x| !x.is_poisoning())
            .unwrap_or(reasons.len());
        reasons.insert(at, reason);
    }
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

/// The label issues, and the view they were judged in: what the shifted-copy test leaves out
/// of its samples, and where it runs.
pub fn neighbour_flags(
    subset: &Subset,
    votes_by_view: &[(View, Votes)],
    config: &VerdictConfig,
) -> (Vec<bool>, Option<View>) {
    match labels::gather(subset, votes_by_view, config, &class_members(subset)) {
        Ok((e, _)) => (e.issue, Some(e.view)),
        Err(_) => (vec![false; subset.len()], None),
    }
}

/// Decides, from the k-NN votes, the shifted-copy halves (of the view the test ran on) and
/// the shared-token groups, which samples are label issues and which are suspected of
/// poisoning.
pub fn decide(
    subset: &Subset,
    votes_by_view: &[(View, Votes)],
    copies: Option<&Copies>,
    tokens: Option<&TokenGroups>,
    config: &VerdictConfig,
) -> Verdict {
    let members = class_members(subset);
    let mut verdict = Verdict::empty(subset.len());
    let (e, note) = match labels::gather(subset, votes_by_view, config, &members) {
        Ok(found) => found,
        Err(note) => {
            verdict.notes.push(note);
            return verdict;
        }
    };
    verdict.notes.extend(note);
    let Some((_, votes)) = judged_view(votes_by_view) else {
        return verdict;
    };
    let mut firings: Vec<Vec<Firing>> = vec![Vec::new(); subset.n_classes];
    label_issues(&mut verdict, &e, votes, config);
    noise(&mut verdict, &mut firings, &members, &e, votes, config);
    inflow(
        &mut verdict,
        &mut firings,
        subset,
        &members,
        &e,
        votes,
        config,
    );
    if let Some(copies) = copies {
        shifted_copies(&mut verdict, &mut firings, copies);
    }
    if let Some(groups) = tokens {
        shared_tokens(&mut verdict, &mut firings, groups);
    }
    verdict.classes = members
        .iter()
        .enumerate()
        .filter(|(_, rows)| !rows.is_empty())
        .map(|(c, rows)| ClassVerdict {
            class: c as u32,
            size: rows.len(),
            flagged: rows.iter().filter(|&&r| verdict.flags[r as usize]).count(),
            label_issues: rows
                .iter()
                .filter(|&&r| verdict.label_issues[r as usize])
                .count(),
            firings: std::mem::take(&mut firings[c]),
        })
        .collect();
    verdict
}

/// Every label issue is listed with its neighbour evidence, at half weight in the fused score.
fn label_issues(
    verdict: &mut Verdict,
    e: &labels::LabelEvidence,
    votes: &Votes,
    config: &VerdictConfig,
) {
    for i in 0..e.issue.len() {
        verdict.scores[i] = (0.5 * e.evidence[i] / config.neighbour_share) as f32;
        if !e.issue[i] {
            continue;
        }
        let (label, count) = votes.top_other[i];
        verdict.label_issues[i] = true;
        verdict.reasons.of_mut(i).push(Reason::Neighbours {
            view: e.view,
            label,
            votes: count,
            k: e.k,
            confirmed_by: e.confirm.as_ref().map(|(v, _)| *v),
            confirmed_votes: e.confirm.as_ref().map(|(_, c)| c[i]),
        });
    }
}

fn noise(
    verdict: &mut Verdict,
    firings: &mut [Vec<Firing>],
    members: &[Vec<u32>],
    e: &labels::LabelEvidence,
    votes: &Votes,
    config: &VerdictConfig,
) {
    let Some(test) = labels::noise_test(members, e, votes, config) else {
        return;
    };
    verdict.tests.push(DatasetTest {
        test: "label_noise",
        view: e.view,
        statistic: "island_rate_lower_bound",
        value: test.lower_bound,
        threshold: config.noise_budget,
        fired: test.fired,
        detail: format!(
            "{} isolated label contradictions among {} samples of the {} cleanest classes; \
             they carry {:.0} % of those samples' neighbour disagreement (uniform noise: about \
             half; the test needs {:.0} %)",
            test.islands,
            test.samples,
            test.classes,
            100.0 * test.island_share,
            100.0 * labels::MIN_ISLAND_SHARE
        ),
    });
    if !test.fired {
        return;
    }
    for (c, rows) in members.iter().enumerate() {
        let islands: Vec<usize> = rows
            .iter()
            .map(|&r| r as usize)
            .filter(|&r| e.island[r])
            .collect();
        for &r in &islands {
            let (label, count) = votes.top_other[r];
            verdict.flag(
                r,
                test.lower_bound / config.noise_budget.max(f64::EPSILON),
                Reason::LabelNoise {
                    view: e.view,
                    label,
                    votes: count,
                    k: e.k,
                    own_nearby: e.own_nearby[r],
                    rate_lower: test.lower_bound,
                    budget: config.noise_budget,
                },
            );
        }
        if !islands.is_empty() {
            firings[c].push(Firing {
                detector: "label_noise",
                view: e.view,
                statistic: "island_rate_lower_bound",
                value: test.lower_bound,
                threshold: config.noise_budget,
                samples: islands.len(),
            });
        }
    }
}

fn inflow(
    verdict: &mut Verdict,
    firings: &mut [Vec<Firing>],
    subset: &Subset,
    members: &[Vec<u32>],
    e: &labels::LabelEvidence,
    votes: &Votes,
    config: &VerdictConfig,
) {
    for class in labels::inflow_test(subset, members, e, &votes.top_other, config) {
        if !class.fired {
            continue;
        }
        let c = class.class as usize;
        let p = class.p_one_way.max(class.p_excess);
        let rows: Vec<usize> = members[c]
            .iter()
            .map(|&r| r as usize)
            .filter(|&r| e.issue[r])
            .collect();
        for &r in &rows {
            let (label, count) = votes.top_other[r];
            verdict.flag(
                r,
                class.cut / p.max(f64::MIN_POSITIVE),
                Reason::ClassInflow {
                    view: e.view,
                    label,
                    votes: count,
                    k: e.k,
                    inflow: class.inflow,
                    outflow: class.outflow,
                    sources: class.sources,
                    p_value: p,
                },
            );
        }
        firings[c].push(Firing {
            detector: "class_inflow",
            view: e.view,
            statistic: "p_value",
            value: p,
            threshold: class.cut,
            samples: rows.len(),
        });
    }
}

fn shifted_copies(verdict: &mut Verdict, firings: &mut [Vec<Firing>], copies: &Copies) {
    let (view, threshold) = (copies.view, copies.threshold);
    for half in copies.halves.iter().filter(|h| h.fired) {
        let self_share = half.self_share.unwrap_or(1.0);
        let evidence = (1.0 - self_share) / (1.0 - threshold).max(f64::EPSILON);
        for &r in &half.flagged {
            verdict.flag(
                r as usize,
                evidence,
                Reason::ShiftedCopy {
                    view,
                    size: half.members.len(),
                    self_share,
                    threshold,
                },
            );
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

fn shared_tokens(verdict: &mut Verdict, firings: &mut [Vec<Firing>], groups: &TokenGroups) {
    let view = groups.view;
    for group in &groups.fired {
        for &r in &group.members {
            verdict.flag(
                r as usize,
                group.share / group.cut.max(f64::EPSILON),
                Reason::SharedToken {
                    view,
                    token: group.token.clone(),
                    size: group.members.len(),
                    share: group.share,
                    threshold: group.cut,
                },
            );
        }
        firings[group.class as usize].push(Firing {
            detector: "tokens",
            view,
            statistic: "token_group_share",
            value: group.share,
            threshold: group.cut,
            samples: group.members.len(),
        });
    }
}

#[cfg(test)]
mod tests;
