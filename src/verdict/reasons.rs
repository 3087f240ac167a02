//! Why a sample was flagged or listed ([`Reason`]), and the reasons of a verdict's rows
//! ([`Reasons`]).

use std::collections::BTreeMap;

use serde::Serialize;

use crate::embed::View;

/// Why a sample was flagged or listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "evidence", rename_all = "snake_case")]
pub enum Reason {
    /// A label issue: `votes` of the `k` nearest neighbours in `view` carry the class `label`;
    /// with a confirming view, `confirmed_votes` of its `k` neighbours carry one other label.
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
    /// An isolated contradiction (`own_nearby` of its neighbours' neighbours share its
    /// label) in a dataset whose cleaner half of classes holds such samples at a rate of at
    /// least `rate_lower` (a lower confidence bound), above the `budget`.
    LabelNoise {
        view: View,
        label: u32,
        votes: u32,
        k: usize,
        own_nearby: f64,
        rate_lower: f64,
        budget: f64,
    },
    /// A label issue of a class that receives `inflow` label issues from other classes'
    /// regions and sends `outflow`, from `sources` effective source classes.
    ClassInflow {
        view: View,
        label: u32,
        votes: u32,
        k: usize,
        inflow: usize,
        outflow: usize,
        sources: f64,
        p_value: f64,
    },
    /// The sample is in a half of `size` of its class that mixes with the other classes once
    /// both are centred (`self_share` at most `threshold`, and an outlier among all halves),
    /// and its class neighbours are mostly in that half.
    ShiftedCopy {
        view: View,
        size: usize,
        self_share: f64,
        threshold: f64,
    },
    /// The text holds `token`, which `size` texts of its class share (and at least 95 % of
    /// the texts holding it carry that label), and on average `share` of those texts'
    /// neighbours in `view` carry another label (the test's cut: `threshold`).
    SharedToken {
        view: View,
        token: String,
        size: usize,
        share: f64,
        threshold: f64,
    },
}

impl Reason {
    /// Coordinated evidence (fails the gate), as opposed to a single sample's label issue.
    pub fn is_poisoning(&self) -> bool {
        !matches!(self, Reason::Neighbours { .. })
    }
}

/// The reasons of the rows that have any, by subset row; every other row reads as none. A
/// list per row cost 24 bytes a row, empty or not (480 MB at 20M rows), where only the
/// flagged and the label issues hold one.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reasons(BTreeMap<usize, Vec<Reason>>);

impl Reasons {
    /// Row `r`'s reasons, to add to.
    pub(super) fn of_mut(&mut self, r: usize) -> &mut Vec<Reason> {
        self.0.entry(r).or_default()
    }
}

impl std::ops::Index<usize> for Reasons {
    type Output = [Reason];

    fn index(&self, r: usize) -> &[Reason] {
        self.0.get(&r).map_or(&[], Vec::as_slice)
    }
}
