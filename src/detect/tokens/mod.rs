//! Shared tokens: the test that finds a text trigger that label consistency only half sees.
//!
//! A text backdoor inserts one rare phrase into texts of other classes and relabels them to a
//! target. In a sentence embedding the phrase barely moves a long text (and a text longer
//! than the model's limit may lose it altogether), so each poison still sits among the texts
//! of its source class. But the poisons are also each other's neighbours: at a 10 % rate on
//! SpamAssassin a third of a poison's spam-like neighbours are other poisons, labelled ham
//! like it, so only part of them reach the neighbour rule's bar one by one.
//!
//! Together they are plain to see. This test pools the neighbour evidence over every text
//! that holds one token:
//!
//! 1. **Candidate groups.** Texts are cut into tokens (maximal runs of alphanumeric
//!    characters, lowercased; the whole text, not only what the model read). A token is a
//!    candidate for class `c` when at least `min_group` texts of class `c` hold it and at
//!    least `purity` (95 %) of all the texts that hold it are labelled `c`: a trigger lives
//!    in the target class only. The group is those texts of class `c`.
//! 2. **Group evidence.** The group's `share` is the mean, over its members, of the share of
//!    their `k` nearest neighbours (in the view label consistency is judged in) that carry
//!    another label.
//! 3. **Fire.** The null is the class's own: a group of `m` texts drawn at random from class
//!    `c` has a mean share near the class mean `mu`, with standard error `sigma / sqrt(m)`
//!    (finite-population corrected). A group fires when its share is above
//!    `mu + z sigma / sqrt(m)`, with `z` the normal quantile at `alpha / G` (Bonferroni over
//!    the `G` candidate groups), above twice the class mean (the group's disagreement is
//!    mostly its own, not the class's), and at least `threshold` (0.4). Every member is
//!    flagged. The null alone is not enough: a group's members are alike (a newsletter's
//!    issues, a list's footer), so they are not independent draws, and on the clean
//!    SpamAssassin twin (tuning half) the null and twice the mean let clean ham groups fire,
//!    322 emails (5.3 %). The floor of 0.4 is the cut this test was first measured with on
//!    that corpus: clean groups at most 0.26, trigger groups 0.56 to 0.78.
//!
//! A clean group (a mailing list's name, a newsletter's footer, a markup word) is mostly its
//! own members' neighbours, with its class's label. On SpamAssassin with MiniLM neighbours
//! (`poisongate bench`, 2026-12-02) the trigger's groups ("cf", "mn", "bb") scored up to
//! 0.607 at a 10 % rate and 0.776 at 5 %; the highest clean group scored 0.244 on the clean
//! twin and 0.260 under 10 % label flips (the fixed cut of 0.4 used then fired on neither).
//!
//! Not covered: a trigger of common words (no token of it is pure to the target class), a
//! trigger planted in fewer than `min_group` texts, and clean-label triggers (the poisons
//! keep labels that agree with their neighbours). Natural text that holds a planted token
//! is flagged with the poisons (on SpamAssassin, 32 clean ham emails hold "cf", "mn" or
//! "bb").

use std::collections::HashMap;

use super::knn::Votes;
use super::stats::normal_isf;
use super::{ClassStatistic, Detection};
use crate::dataset::{TextValue, Texts};
use crate::embed::{Subset, View};

#[derive(Debug, Clone, PartialEq)]
pub struct TokenConfig {
    /// A group fires only at or above this mean share of other-label neighbours, whatever
    /// the null says (0 turns the test off).
    pub threshold: f64,
    /// The family-wise false-alarm level over all candidate groups.
    pub alpha: f64,
    /// Texts of one class that must hold a token for it to be tested.
    pub min_group: usize,
    /// Share of the texts holding a token that must carry the group's label; above one half,
    /// so that a token is a candidate in one class at most.
    pub purity: f64,
}

impl Default for TokenConfig {
    fn default() -> Self {
        TokenConfig {
            threshold: 0.4,
            alpha: 0.01,
            min_group: 20,
            purity: 0.95,
        }
    }
}

/// A token's texts in one class, as tested.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    pub token: String,
    pub class: u32,
    /// Positions (into the subset) of the texts of `class` that hold the token, ascending.
    pub members: Vec<u32>,
    /// Mean share of other-label neighbours over the members.
    pub share: f64,
    /// The share at which this group fires (from the class's null).
    pub cut: f64,
    pub fired: bool,
}

/// The groups that fired, for the verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenGroups {
    /// The view whose neighbours gave the evidence.
    pub view: View,
    pub fired: Vec<Group>,
}

/// The distinct tokens of `text`: maximal runs of alphanumeric characters, lowercased.
pub fn tokens(text: &str) -> Vec<String> {
    let mut out: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(str::to_lowercase)
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Runs the test. `texts` is the dataset's text column (indexed by dataset row), `votes` the
/// k-NN votes of `view` over `subset`.
pub fn run(
    texts: &Texts,
    subset: &Subset,
    view: View,
    votes: &Votes,
    config: &TokenConfig,
) -> (Detection, TokenGroups) {
    let n = subset.len();
    let text_of = |i: usize| match &texts.values[subset.rows[i] as usize] {
        TextValue::Text(s) => s.as_str(),
        // Not usable, so never in the subset.
        TextValue::Null | TextValue::InvalidUtf8 { .. } => "",
    };
    let mut class_sizes = vec![0usize; subset.n_classes];
    for &c in &subset.labels {
        class_sizes[c as usize] += 1;
    }
    // Pass 1: how many texts hold each token, in all and per class. Only tokens pure to one
    // class and frequent enough in it are kept for pass 2, so the postings stay small.
    let mut index: HashMap<String, u32> = HashMap::new();
    let mut total: Vec<u32> = Vec::new();
    let mut per_class: HashMap<(u32, u32), u32> = HashMap::new();
    for i in 0..n {
        for token in tokens(text_of(i)) {
            let next = index.len() as u32;
            let t = *index.entry(token).or_insert(next);
            if t as usize == total.len() {
                total.push(0);
            }
            total[t as usize] += 1;
            *per_class.entry((t, subset.labels[i])).or_insert(0) += 1;
        }
    }
    // A class whose members cannot fill a neighbourhood (at most k) is not judged by its
    // neighbours, so neither is a group of it.
    let judged = |c: u32| votes.k > 0 && class_sizes[c as usize] > votes.k;
    let candidates: HashMap<u32, u32> = per_class
        .iter()
        .filter(|(&(t, c), &count)| {
            count as usize >= config.min_group.max(1)
                && f64::from(count) >= config.purity * f64::from(total[t as usize])
                && judged(c)
        })
        .map(|(&(t, c), _)| (t, c))
        .collect();
    drop(per_class);
    // Pass 2: the members of each candidate group.
    let mut members: HashMap<u32, Vec<u32>> = HashMap::new();
    if !candidates.is_empty() {
        for i in 0..n {
            for token in tokens(text_of(i)) {
                if let Some(&t) = index.get(&token) {
                    if candidates.get(&t) == Some(&subset.labels[i]) {
                        members.entry(t).or_default().push(i as u32);
                    }
                }
            }
        }
    }
    let mut names: HashMap<u32, String> = index
        .into_iter()
        .filter(|(_, t)| candidates.contains_key(t))
        .map(|(s, t)| (t, s))
        .collect();
    let k = votes.k.max(1) as f64;
    let share_of = |i: usize| f64::from(votes.other[i]) / k;
    let null = class_null(subset, &share_of);
    let z = normal_isf(config.alpha / members.len().max(1) as f64);
    let mut groups: Vec<Group> = members
        .into_iter()
        .map(|(t, members)| {
            let share =
                members.iter().map(|&i| share_of(i as usize)).sum::<f64>() / members.len() as f64;
            let class = candidates[&t];
            let (mu, sigma, size) = null[class as usize];
            let m = members.len() as f64;
            let fpc = ((size - m) / (size - 1.0).max(1.0)).max(0.0).sqrt();
            let cut = (mu + z * sigma / m.sqrt() * fpc)
                .max(2.0 * mu)
                .max(config.threshold);
            Group {
                token: names.remove(&t).unwrap_or_default(),
                class,
                members,
                share,
                cut,
                fired: config.threshold > 0.0 && share > cut,
            }
        })
        .collect();
    // Hash order is not reproducible; the report's is.
    groups.sort_by(|a, b| (a.class, &a.token).cmp(&(b.class, &b.token)));
    let detection = detection(subset, view, &groups, &class_sizes, config);
    let fired = groups.into_iter().filter(|g| g.fired).collect();
    (detection, TokenGroups { view, fired })
}

/// Per class: the mean and standard deviation of the per-sample share, and the class size.
fn class_null(subset: &Subset, share_of: &dyn Fn(usize) -> f64) -> Vec<(f64, f64, f64)> {
    let mut sums = vec![(0.0f64, 0.0f64, 0.0f64); subset.n_classes];
    for (i, &c) in subset.labels.iter().enumerate() {
        let s = share_of(i);
        let e = &mut sums[c as usize];
        e.0 += s;
        e.1 += s * s;
        e.2 += 1.0;
    }
    sums.into_iter()
        .map(|(s, s2, n)| {
            let mean = s / n.max(1.0);
            let var = (s2 / n.max(1.0) - mean * mean).max(0.0) * n / (n - 1.0).max(1.0);
            (mean, var.sqrt(), n)
        })
        .collect()
}

/// Scores (the highest share among a sample's groups), flags (members of fired groups) and
/// per-class statistics (the highest group share in the class, with that group's cut).
fn detection(
    subset: &Subset,
    view: View,
    groups: &[Group],
    class_sizes: &[usize],
    config: &TokenConfig,
) -> Detection {
    let n = subset.len();
    let mut scores = vec![0f32; n];
    let mut flags = vec![false; n];
    let mut best: Vec<Option<(f64, f64)>> = vec![None; subset.n_classes];
    for g in groups {
        for &i in &g.members {
            scores[i as usize] = scores[i as usize].max(g.share as f32);
            flags[i as usize] |= g.fired;
        }
        let b = &mut best[g.class as usize];
        if b.is_none_or(|(v, _)| g.share > v) {
            *b = Some((g.share, g.cut));
        }
    }
    let mut flagged = vec![0usize; subset.n_classes];
    for (i, _) in flags.iter().enumerate().filter(|(_, &f)| f) {
        flagged[subset.labels[i] as usize] += 1;
    }
    let classes = best
        .iter()
        .enumerate()
        .filter_map(|(c, b)| {
            b.map(|(value, cut)| ClassStatistic {
                class: c as u32,
                size: class_sizes[c],
                statistic: "top_token_group_share",
                value,
                threshold: Some(cut),
                flagged: flagged[c],
            })
        })
        .collect();
    Detection {
        detector: "tokens",
        view,
        parameters: vec![
            ("threshold".into(), config.threshold.to_string()),
            ("alpha".into(), config.alpha.to_string()),
            ("min_group".into(), config.min_group.to_string()),
            ("purity".into(), config.purity.to_string()),
        ],
        scores,
        flags,
        classes,
    }
}

#[cfg(test)]
mod tests;
