use super::*;
use crate::embed::Subset;
use rand::Rng;
use rand_distr::{Distribution, Normal};

const D: usize = 16;

/// `classes` classes of `per` samples in `D` dimensions: a class centre (spread 2) plus one
/// of two style offsets (1.5 apart) plus unit noise. With `planted`, that many samples of
/// the other classes, all shifted by one vector of norm about 14 (a strong trigger, as a
/// patch is in pixel space), are added to class 0; they come last. Returns the values, the labels and the number of clean rows.
fn data(classes: usize, per: usize, planted: usize, seed: u64) -> (Vec<f32>, Vec<u32>, usize) {
    let mut rng = StdRng::seed_from_u64(seed);
    let unit = Normal::new(0.0f32, 1.0).unwrap();
    let centres: Vec<Vec<f32>> = (0..classes)
        .map(|_| (0..D).map(|_| 2.0 * unit.sample(&mut rng)).collect())
        .collect();
    let style: Vec<f32> = (0..D).map(|j| if j == 0 { 0.75 } else { 0.0 }).collect();
    let sample = |c: usize, rng: &mut StdRng| -> Vec<f32> {
        let sign = if rng.random_bool(0.5) { 1.0 } else { -1.0 };
        (0..D)
            .map(|j| centres[c][j] + sign * style[j] + unit.sample(rng))
            .collect()
    };
    let (mut values, mut labels) = (Vec::new(), Vec::new());
    for c in 0..classes {
        for _ in 0..per {
            values.extend(sample(c, &mut rng));
            labels.push(c as u32);
        }
    }
    let clean = labels.len();
    let shift: Vec<f32> = (0..D).map(|j| if j % 2 == 1 { 5.0 } else { 0.0 }).collect();
    for i in 0..planted {
        let source = 1 + i % (classes - 1);
        let x = sample(source, &mut rng);
        values.extend(x.iter().zip(&shift).map(|(a, b)| a + b));
        labels.push(0);
    }
    (values, labels, clean)
}

fn subset(labels: &[u32], classes: usize) -> Subset {
    Subset {
        rows: (0..labels.len() as u32).collect(),
        labels: labels.to_vec(),
        n_classes: classes,
        excluded: Vec::new(),
    }
}

#[test]
fn the_planted_half_fires_and_its_members_are_flagged() {
    let (values, labels, clean) = data(5, 200, 200, 1);
    let s = subset(&labels, 5);
    let points = Points::from_vec(values, D, &s, View::Raw);
    let (detection, copies) = run(&points, &vec![false; labels.len()], &ShiftConfig::default());
    let fired: Vec<&Half> = copies.halves.iter().filter(|h| h.fired).collect();
    assert_eq!(
        fired.len(),
        1,
        "{:?}",
        copies
            .halves
            .iter()
            .map(|h| h.self_share)
            .collect::<Vec<_>>()
    );
    assert_eq!(fired[0].class, 0);
    let planted = |r: &u32| *r as usize >= clean;
    let hits = fired[0].flagged.iter().filter(|r| planted(r)).count();
    let false_alarms = fired[0].flagged.len() - hits;
    assert!(
        hits >= 190 && false_alarms <= 10,
        "{hits} planted, {false_alarms} clean flagged"
    );
    // Every clean half stays apart from the other classes; the planted one mixes.
    for half in &copies.halves {
        let share = half.self_share.unwrap();
        if half.fired {
            assert!(share < 0.75, "planted half {share}");
        } else {
            assert!(share > 0.9, "clean half of class {} at {share}", half.class);
        }
    }
    assert_eq!(
        detection.flags.iter().filter(|&&f| f).count(),
        fired[0].flagged.len()
    );
    let top = detection.scores[clean];
    assert!(
        detection.scores[..clean]
            .iter()
            .filter(|&&x| x >= top)
            .count()
            <= 200
    );
}

#[test]
fn a_half_fires_only_when_low_and_well_below_its_sibling() {
    let c = ShiftConfig::default();
    assert!(fires(0.5, 0.99, &c));
    assert!(fires(0.86, 0.99, &c));
    // Low, but its sibling mixes about as much: the whole class resembles the others.
    assert!(!fires(0.6, 0.65, &c));
    // Well below its sibling, but not mixed enough to be a copy.
    assert!(!fires(0.91, 1.0, &c));
}

#[test]
fn clean_classes_fire_nothing() {
    for seed in 0..3 {
        let (values, labels, _) = data(5, 200, 0, seed);
        let s = subset(&labels, 5);
        let points = Points::from_vec(values, D, &s, View::Raw);
        let (detection, copies) = run(&points, &vec![false; labels.len()], &ShiftConfig::default());
        assert!(copies.halves.iter().all(|h| !h.fired), "seed {seed}");
        assert!(detection.flags.iter().all(|&f| !f));
        assert_eq!(copies.halves.len(), 10);
    }
}

#[test]
fn excluded_samples_are_left_out_of_the_mixing_sample() {
    // 60 samples of other classes relabelled 0 without any shift (flipped labels): left
    // in, they make a half of class 0 mix with the other classes; left out, they do not.
    let (values, mut labels, _) = data(5, 200, 0, 4);
    let mut rng = StdRng::seed_from_u64(9);
    let flipped: Vec<usize> = (0..60).map(|_| rng.random_range(200..1000)).collect();
    let mut excluded = vec![false; labels.len()];
    for &i in &flipped {
        labels[i] = 0;
        excluded[i] = true;
    }
    let s = subset(&labels, 5);
    let points = Points::from_vec(values, D, &s, View::Raw);
    let class0 = |copies: &Copies| -> f64 {
        copies
            .halves
            .iter()
            .filter(|h| h.class == 0)
            .map(|h| h.self_share.unwrap())
            .fold(1.0, f64::min)
    };
    let (_, left_out) = run(&points, &excluded, &ShiftConfig::default());
    assert!(left_out.halves.iter().all(|h| !h.fired));
    assert!(class0(&left_out) > 0.9, "{}", class0(&left_out));
    let (_, left_in) = run(&points, &vec![false; labels.len()], &ShiftConfig::default());
    assert!(
        class0(&left_in) < class0(&left_out),
        "{} against {}",
        class0(&left_in),
        class0(&left_out)
    );
}

#[test]
fn degenerate_inputs_give_no_halves_or_untested_ones() {
    // One class: no other classes to compare with.
    let (values, _, _) = data(2, 50, 0, 3);
    let labels = vec![0u32; 100];
    let s = subset(&labels, 1);
    let points = Points::from_vec(values, D, &s, View::Raw);
    let (d, copies) = run(&points, &[false; 100], &ShiftConfig::default());
    assert!(copies
        .halves
        .iter()
        .all(|h| h.self_share.is_none() && !h.fired));
    assert!(d.flags.iter().all(|&f| !f) && d.scores.iter().all(|&x| x == 0.0));
    // Classes of 1 to 3 samples, d = 1, and constant rows: nothing to split or test.
    let labels = [0u32, 1, 1, 2, 2, 2];
    let s = subset(&labels, 3);
    let points = Points::from_vec(vec![0.5, 1.0, 2.0, 3.0, 4.0, 5.0], 1, &s, View::Raw);
    let (_, copies) = run(&points, &[false; 6], &ShiftConfig::default());
    assert!(copies.halves.is_empty());
    let labels: Vec<u32> = (0..40).map(|i| i % 2).collect();
    let s = subset(&labels, 2);
    let points = Points::from_vec(vec![1.0; 40 * 3], 3, &s, View::Raw);
    let (_, copies) = run(&points, &[false; 40], &ShiftConfig::default());
    assert!(copies.halves.is_empty());
    // d = 1 with real structure: halves exist and none fires on clean data.
    let mut rng = StdRng::seed_from_u64(5);
    let values: Vec<f32> = labels
        .iter()
        .map(|&c| 10.0 * c as f32 + rng.random_range(-1.0..1.0))
        .collect();
    let points = Points::from_vec(values, 1, &s, View::Raw);
    let (_, copies) = run(&points, &[false; 40], &ShiftConfig::default());
    assert!(copies.halves.iter().all(|h| !h.fired));
}

#[test]
fn with_fewer_than_five_classes_nothing_is_an_outlier() {
    // The same strong plant as above, among four classes: eight halves are too few for a
    // robust yardstick, so the test stays silent rather than guess.
    let (values, labels, _) = data(4, 200, 200, 1);
    let s = subset(&labels, 4);
    let points = Points::from_vec(values, D, &s, View::Raw);
    let (_, copies) = run(&points, &vec![false; labels.len()], &ShiftConfig::default());
    assert!(copies.halves.iter().all(|h| !h.fired));
    assert!(copies
        .halves
        .iter()
        .any(|h| h.self_share.is_some_and(|v| v < 0.75)));
}

#[test]
fn the_outlier_cut_is_the_median_less_z_robust_deviations() {
    let half = |class: u32, share: f64| Half {
        class,
        members: Vec::new(),
        self_share: Some(share),
        sample: 400,
        fired: false,
        flagged: Vec::new(),
    };
    // Ten halves of five classes: median 0.95, MAD 0.01.
    let halves: Vec<Half> = (0..10)
        .map(|i| half(i / 2, [0.94, 0.96][i as usize % 2]))
        .collect();
    let cut = outlier_cut(&halves, &ShiftConfig::default()).unwrap();
    let z = crate::detect::stats::normal_isf(0.01 / 10.0);
    let sd = 1.4826 * 0.01;
    assert!((cut.median - 0.95).abs() < 1e-9 && (cut.sd - sd).abs() < 1e-9 && cut.z == z);
    assert!(outlier_cut(&halves[..8], &ShiftConfig::default()).is_none());
    // A half of 400 samples at 0.8 is far below; the same share measured on 12 samples has
    // a standard error of about 0.115 and is not.
    assert!(cut.is_outlier(0.8, 400));
    assert!(!cut.is_outlier(0.8, 12));
    let bound = |q: f64| 0.95 - z * (sd * sd + 0.8 * 0.2 / q).sqrt();
    assert!(bound(400.0) > 0.8 && bound(12.0) < 0.8);
}
