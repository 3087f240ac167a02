use super::*;
use crate::verdict::{decide, Reason, VerdictConfig};

#[test]
fn tokens_are_lowercased_alphanumeric_runs_once_each() {
    assert_eq!(
        tokens("Héllo, WORLD! héllo 42x_y-Z  "),
        ["42x", "héllo", "world", "y", "z"]
    );
    assert!(tokens("  ,;- ").is_empty());
}

/// A corpus of three classes (0, 1, 2; 100 texts each, in that order) and its k = 10 votes.
/// The texts of classes 0 and 1 hold a word of their class, those of class 2 none; the texts at `with` also hold `extra`, and the
/// texts at `strange` see `other` neighbours of another label (every other text sees 1).
struct Corpus {
    texts: Texts,
    subset: Subset,
    votes: Votes,
}

impl Corpus {
    fn new() -> Corpus {
        let n = 300;
        Corpus {
            texts: Texts {
                column: "text".into(),
                values: (0..n)
                    .map(|i| match i / 100 {
                        2 => TextValue::Text(format!("text {i}")),
                        c => TextValue::Text(format!("text {i} of class{c}")),
                    })
                    .collect(),
            },
            subset: Subset {
                rows: (0..n as u32).collect(),
                labels: (0..n as u32).map(|i| i / 100).collect(),
                n_classes: 3,
                excluded: Vec::new(),
            },
            votes: Votes {
                k: 10,
                top_other: vec![(0, 1); n],
                other: vec![1; n],
                neighbours: Vec::new(),
            },
        }
    }

    fn with(mut self, extra: &str, rows: impl IntoIterator<Item = usize>) -> Corpus {
        for i in rows {
            if let TextValue::Text(t) = &mut self.texts.values[i] {
                t.push_str(&format!(" {extra}"));
            }
        }
        self
    }

    fn strange(mut self, other: u32, rows: impl IntoIterator<Item = usize>) -> Corpus {
        for i in rows {
            self.votes.other[i] = other;
            self.votes.top_other[i].1 = other;
        }
        self
    }

    fn run(&self, config: &TokenConfig) -> (Detection, TokenGroups) {
        run(&self.texts, &self.subset, View::Minilm, &self.votes, config)
    }
}

#[test]
fn a_planted_phrase_fires_and_a_clean_shared_word_does_not() {
    // Class 0: 30 texts hold the trigger "Cf. MN" and see 5/10 other labels, under the
    // neighbour rule's 6/10. Class 1: 40 texts share a list name, with consistent neighbours.
    let corpus = Corpus::new()
        .with("Cf. MN", 40..70)
        .strange(5, 40..70)
        .with("exmh-workers", 100..140);
    let (d, groups) = corpus.run(&TokenConfig::default());
    let fired: Vec<(&str, u32, usize)> = groups
        .fired
        .iter()
        .map(|g| (g.token.as_str(), g.class, g.members.len()))
        .collect();
    assert_eq!(fired, [("cf", 0, 30), ("mn", 0, 30)]);
    assert!((groups.fired[0].share - 0.5).abs() < 1e-12);
    let flagged: Vec<usize> = (0..300).filter(|&i| d.flags[i]).collect();
    assert_eq!(flagged, (40..70).collect::<Vec<_>>());
    // The list's group was tested (1/10 other labels) and did not fire; texts in no group
    // score 0.
    assert!((d.scores[100] - 0.1).abs() < 1e-6 && !d.flags[100]);
    assert_eq!(d.scores[250], 0.0);
    // The words every text of a class holds ("class0") are groups too: pure and large.
    let class0 = d.classes.iter().find(|c| c.class == 0).unwrap();
    assert_eq!((class0.value, class0.flagged), (0.5, 30));
}

#[test]
fn impure_small_and_switched_off_groups_do_not_fire() {
    // 30 texts of class 0 and 2 of class 1 hold "zq": 94 % pure, under 95 %.
    let impure = Corpus::new()
        .with("zq", (0..30).chain(100..102))
        .strange(9, (0..30).chain(100..102));
    assert!(impure.run(&TokenConfig::default()).1.fired.is_empty());
    // One text fewer than the smallest group.
    let small = Corpus::new().with("zq", 0..19).strange(9, 0..19);
    assert!(small.run(&TokenConfig::default()).1.fired.is_empty());
    let (d, groups) = small.run(&TokenConfig {
        min_group: 19,
        ..Default::default()
    });
    assert_eq!(groups.fired.len(), 1);
    assert_eq!(d.flags.iter().filter(|&&f| f).count(), 19);
    // Threshold 0 turns the test off.
    let (d, groups) = Corpus::new()
        .with("zq", 0..40)
        .strange(9, 0..40)
        .run(&TokenConfig {
            threshold: 0.0,
            ..Default::default()
        });
    assert!(groups.fired.is_empty() && d.flags.iter().all(|&f| !f));
}

#[test]
fn a_class_no_larger_than_k_is_not_judged() {
    let mut corpus = Corpus::new().with("zq", 0..30).strange(9, 0..30);
    corpus.votes.k = 100;
    let (d, groups) = corpus.run(&TokenConfig::default());
    assert!(groups.fired.is_empty() && d.classes.is_empty());
}

#[test]
fn the_verdict_flags_a_fired_group_and_says_which_token() {
    let corpus = Corpus::new().with("zq", 200..230).strange(5, 200..230);
    let (_, groups) = corpus.run(&TokenConfig::default());
    let verdict = decide(
        &corpus.subset,
        &[(View::Minilm, corpus.votes.clone())],
        None,
        Some(&groups),
        &VerdictConfig::default(),
    );
    let flagged: Vec<usize> = (0..300).filter(|&i| verdict.flags[i]).collect();
    assert_eq!(flagged, (200..230).collect::<Vec<_>>());
    let cut = groups.fired[0].cut;
    assert!(cut > 0.1 && cut < 0.5, "{cut}");
    assert!((verdict.scores[200] - (0.5 / cut) as f32).abs() < 1e-5);
    assert_eq!(
        verdict.reasons[200],
        [Reason::SharedToken {
            view: View::Minilm,
            token: "zq".into(),
            size: 30,
            share: 0.5,
            threshold: cut,
        }]
    );
    let class2 = verdict.classes.iter().find(|c| c.class == 2).unwrap();
    assert_eq!(class2.flagged, 30);
    assert_eq!(class2.firings[0].detector, "tokens");
}

#[test]
fn the_cut_rises_with_the_class_own_disagreement() {
    // Class 0's texts see 1/10 other labels, and 20 of them share "zq" and see 5/10: far
    // beyond the class's own rate, the group fires, at a cut from the class's null.
    let steady = Corpus::new().with("zq", 0..20).strange(5, 0..20);
    let (_, groups) = steady.run(&TokenConfig::default());
    let zq = groups.fired.iter().find(|g| g.token == "zq").unwrap();
    assert!(zq.cut > 0.18 && zq.cut < 0.5, "{}", zq.cut);
    // When the class's texts already see 4/10 on average, the same group is mostly the
    // class's own disagreement and does not fire.
    let noisy = Corpus::new()
        .strange(4, 0..100)
        .with("zq", 0..20)
        .strange(5, 0..20);
    let (_, groups) = noisy.run(&TokenConfig::default());
    assert!(groups.fired.iter().all(|g| g.token != "zq"), "{groups:?}");
}
