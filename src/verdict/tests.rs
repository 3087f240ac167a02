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

/// Votes where every sample sees `other` votes for the next class, except `odd`, which see
/// `odd_votes`. No neighbour lists: nothing is an island.
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
        neighbours: Vec::new(),
    }
}

/// Votes from regions: sample `i` lives in region `regions[i]` (its true class), and its `k`
/// neighbours are the next `k` samples of its region, cyclically.
fn votes_from_regions(s: &Subset, regions: &[u32], k: usize) -> Votes {
    let n = s.len();
    let mut by_region: Vec<Vec<u32>> = vec![Vec::new(); s.n_classes];
    for (i, &r) in regions.iter().enumerate() {
        by_region[r as usize].push(i as u32);
    }
    let mut neighbours = vec![u32::MAX; n * k];
    for members in &by_region {
        for (p, &i) in members.iter().enumerate() {
            for j in 0..k {
                neighbours[i as usize * k + j] = members[(p + 1 + j) % members.len()];
            }
        }
    }
    let mut top_other = Vec::with_capacity(n);
    let mut other = Vec::with_capacity(n);
    for i in 0..n {
        let mut counts = vec![0u32; s.n_classes];
        for &j in &neighbours[i * k..(i + 1) * k] {
            counts[s.labels[j as usize] as usize] += 1;
        }
        let own = s.labels[i];
        let best = (0..s.n_classes as u32)
            .filter(|&c| c != own)
            .max_by_key(|&c| (counts[c as usize], std::cmp::Reverse(c)))
            .unwrap_or(own);
        top_other.push((best, counts[best as usize]));
        other.push(k as u32 - counts[own as usize]);
    }
    Votes {
        k,
        top_other,
        other,
        neighbours,
    }
}

fn flagged(v: &Verdict) -> Vec<usize> {
    (0..v.flags.len()).filter(|&i| v.flags[i]).collect()
}

#[test]
fn a_clean_dataset_flags_nothing() {
    let s = subset(200, 4);
    let v = votes(&s, 1, &[], 0);
    let out = decide(&s, &[(View::Raw, v)], None, None, &VerdictConfig::default());
    assert!(out.flags.iter().all(|&f| !f));
    assert!(out.label_issues.iter().all(|&f| !f));
    assert!(out.scores.iter().all(|&x| x < 1.0));
    assert!(out.classes.iter().all(|c| c.firings.is_empty()));
    assert!(out.tests.iter().all(|t| !t.fired));
}

#[test]
fn strong_neighbour_disagreement_is_a_label_issue_that_the_probe_must_confirm() {
    let s = subset(200, 4);
    let v = votes(&s, 0, &[5, 9], 8);
    let out = decide(
        &s,
        &[(View::Raw, v.clone())],
        None,
        None,
        &VerdictConfig::default(),
    );
    let issues: Vec<usize> = (0..200).filter(|&i| out.label_issues[i]).collect();
    assert_eq!(issues, [5, 9]);
    // Two label issues are not poisoning: nothing fails the gate.
    assert!(flagged(&out).is_empty());
    assert!(matches!(
        out.reasons[5][0],
        Reason::Neighbours {
            votes: 8,
            k: 10,
            ..
        }
    ));
    // Half the evidence over its bar: ranked, below the flag line.
    assert!((out.scores[5] - 0.5 * 0.8 / 0.6).abs() < 1e-6);
    assert!(out.scores[5] < 1.0);
    // The probe sees sample 9 as consistent: only 5 stays an issue.
    let p = votes(&s, 0, &[5], 9);
    let both = decide(
        &s,
        &[(View::Raw, v.clone()), (View::Probe, p.clone())],
        None,
        None,
        &VerdictConfig::default(),
    );
    let issues: Vec<usize> = (0..200).filter(|&i| both.label_issues[i]).collect();
    assert_eq!(issues, [5]);
    // Without a probe, the --embeddings vectors confirm; with both, the probe does.
    let e = votes(&s, 0, &[9], 9);
    let precomputed = decide(
        &s,
        &[(View::Raw, v.clone()), (View::Precomputed, e.clone())],
        None,
        None,
        &VerdictConfig::default(),
    );
    let issues: Vec<usize> = (0..200).filter(|&i| precomputed.label_issues[i]).collect();
    assert_eq!(issues, [9]);
    let all = decide(
        &s,
        &[(View::Raw, v), (View::Precomputed, e), (View::Probe, p)],
        None,
        None,
        &VerdictConfig::default(),
    );
    let issues: Vec<usize> = (0..200).filter(|&i| all.label_issues[i]).collect();
    assert_eq!(issues, [5]);
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
                neighbours: Vec::new(),
            },
        )],
        None,
        None,
        &VerdictConfig::default(),
    );
    assert!(out.flags.iter().all(|&f| !f));
    assert!(out.label_issues.iter().all(|&f| !f));
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
        sample: 400,
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
    assert_eq!(flagged(&out), [0, 4, 8]);
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

/// 4 classes of 250; every 10th sample's label is moved to one of the other three classes
/// in turn (10 % noise, in every class, spread over the other labels as random flips are).
#[test]
fn uniform_label_noise_fires_the_noise_test_and_flags_the_islands() {
    let mut s = subset(1000, 4);
    let regions = s.labels.clone();
    let noisy: Vec<usize> = (0..1000).filter(|i| i % 10 == 3).collect();
    for &i in &noisy {
        s.labels[i] = (s.labels[i] + 1 + (i as u32 / 10) % 3) % 4;
    }
    let v = votes_from_regions(&s, &regions, 10);
    let out = decide(&s, &[(View::Raw, v)], None, None, &VerdictConfig::default());
    let test = &out.tests[0];
    assert_eq!(test.test, "label_noise");
    assert!(test.fired, "{test:?}");
    assert_eq!(flagged(&out), noisy);
    assert!(matches!(out.reasons[3][0], Reason::LabelNoise { .. }));
    assert!(matches!(out.reasons[3][1], Reason::Neighbours { .. }));
}

/// The same 10 % of islands, in data whose labels are barely tied to the features: every
/// other sample has 9 of 10 neighbours of other labels, spread over several (no label issue).
/// The islands are a small part of the disagreement, as natural ambiguity makes them.
#[test]
fn islands_in_weakly_labelled_data_do_not_fire_the_noise_test() {
    let mut s = subset(1000, 4);
    let regions = s.labels.clone();
    let noisy: Vec<usize> = (0..1000).filter(|i| i % 10 == 3).collect();
    for &i in &noisy {
        s.labels[i] = (s.labels[i] + 1 + (i as u32 / 10) % 3) % 4;
    }
    let mut v = votes_from_regions(&s, &regions, 10);
    for i in (0..1000).filter(|i| i % 10 != 3) {
        v.other[i] = 9;
    }
    let out = decide(&s, &[(View::Raw, v)], None, None, &VerdictConfig::default());
    let test = &out.tests[0];
    assert_eq!(test.test, "label_noise");
    assert!(!test.fired, "{test:?}");
    assert!(flagged(&out).is_empty());
    assert_eq!(
        (0..1000)
            .filter(|&i| out.label_issues[i])
            .collect::<Vec<_>>(),
        noisy
    );
}

#[test]
fn a_few_mislabels_stay_label_issues() {
    let mut s = subset(1000, 4);
    let regions = s.labels.clone();
    for i in [3, 500] {
        s.labels[i] = (s.labels[i] + 1) % 4;
    }
    let v = votes_from_regions(&s, &regions, 10);
    let out = decide(&s, &[(View::Raw, v)], None, None, &VerdictConfig::default());
    assert!(!out.tests[0].fired, "{:?}", out.tests[0]);
    assert!(flagged(&out).is_empty());
    let issues: Vec<usize> = (0..1000).filter(|&i| out.label_issues[i]).collect();
    assert_eq!(issues, [3, 500]);
}

/// 10 classes of 100. `per_source` samples of each listed region, spread through it (every
/// fourth), are relabelled to class 0.
fn inflow_case(sources: &[u32], per_source: usize) -> (Verdict, Vec<usize>) {
    let mut s = subset(1000, 10);
    let regions = s.labels.clone();
    let mut moved = Vec::new();
    for &r in sources {
        moved.extend(
            (0..1000)
                .filter(|&i| regions[i] == r)
                .step_by(4)
                .take(per_source),
        );
    }
    moved.sort_unstable();
    for &i in &moved {
        s.labels[i] = 0;
    }
    let v = votes_from_regions(&s, &regions, 10);
    let config = VerdictConfig {
        // Only the inflow test is under test here.
        noise_budget: 0.5,
        ..Default::default()
    };
    (decide(&s, &[(View::Raw, v)], None, None, &config), moved)
}

#[test]
fn an_all_to_one_inflow_fires_for_the_target_class() {
    let (out, moved) = inflow_case(&[1, 2, 3, 4, 5, 6, 7, 8, 9], 5);
    assert_eq!(flagged(&out), moved);
    assert!(matches!(
        out.reasons[moved[0]][0],
        Reason::ClassInflow { inflow: 45, .. }
    ));
    assert_eq!(out.classes[0].firings[0].detector, "class_inflow");
}

#[test]
fn an_inflow_from_two_classes_is_not_poisoning() {
    // A class that resembles two others (a shirt like a T-shirt and a pullover).
    let (out, moved) = inflow_case(&[1, 2], 20);
    assert!(flagged(&out).is_empty());
    assert_eq!(
        (0..1000).filter(|&i| out.label_issues[i]).count(),
        moved.len()
    );
}
