//! `inject` on tiny hand-built datasets: which rows each attack may draw from, what their
//! labels become, the trigger it leaves, seeds, and every refusal.

use super::*;
use crate::dataset::{
    DecodedImage, Format, Ids, ImageStatus, Images, Labels, Origin, Table, TextValue, Texts,
};

/// `n` grey `w x h` images, every pixel `value`, labelled `i % classes` (class names are the
/// numbers, so class index = name).
fn images_of(n: usize, w: u32, h: u32, value: u8, classes: usize) -> Dataset {
    let status = ImageStatus::Decoded(DecodedImage {
        width: w,
        height: h,
        color: "L8".into(),
        channels: 1,
        lossy: false,
        content_hash: 0,
    });
    Dataset {
        origin: Origin {
            path: "mem".into(),
            format: Format::ImageFolder,
            files: n,
            ignored_columns: Vec::new(),
        },
        ids: Ids::RowNumber(n),
        labels: Some(Labels::from_names(
            "y".into(),
            (0..n).map(|i| Some((i % classes).to_string())).collect(),
        )),
        payload: Payload::Images(Images {
            width: w,
            height: h,
            channels: 1,
            pixels: vec![value; n * (w * h) as usize],
            status: vec![status; n],
        }),
    }
}

/// `n` 4x4 images of 4 classes, every pixel 10.
fn images(n: usize) -> Dataset {
    images_of(n, 4, 4, 10, 4)
}

fn labels(ds: &Dataset) -> Vec<Option<u32>> {
    ds.labels
        .as_ref()
        .map(|l| l.index.clone())
        .unwrap_or_default()
}

fn pixels(ds: &Dataset) -> &Images {
    let Payload::Images(img) = &ds.payload else {
        panic!("not images")
    };
    img
}

/// What `config` plants into `images(40)`: the truth, the labels and the pixels.
fn planted(config: &AttackConfig) -> (Vec<bool>, Vec<Option<u32>>, Vec<u8>) {
    let mut ds = images_of(40, 8, 4, 100, 4);
    let truth = inject(&mut ds, config).unwrap();
    (truth, labels(&ds), pixels(&ds).pixels.clone())
}

/// The same seed plants the same poisons; another seed plants others.
fn assert_seeded(config: AttackConfig) {
    assert_eq!(planted(&config), planted(&config), "{config:?}");
    let other = AttackConfig {
        seed: 1,
        ..config.clone()
    };
    assert_ne!(planted(&config).0, planted(&other).0, "{config:?}");
}

#[test]
fn badnets_patches_relabels_and_spares_the_target_class() {
    let mut ds = images(40);
    let config = AttackConfig {
        kind: AttackKind::Badnets,
        rate: 0.25,
        target: Some("2".into()),
        patch: 2,
        ..Default::default()
    };
    let truth = inject(&mut ds, &config).unwrap();
    let poisoned: Vec<usize> = (0..40).filter(|&i| truth[i]).collect();
    assert_eq!(poisoned.len(), 10);
    let labels = ds.labels.as_ref().unwrap();
    let img = pixels(&ds);
    for &i in &poisoned {
        assert_ne!(i % 4, 2, "target-class rows are not poisoned");
        assert_eq!(labels.name(i), Some("2"));
        let px = img.image(i);
        assert_eq!(
            (px[10], px[11], px[14], px[15], px[0]),
            (255, 255, 255, 255, 10)
        );
    }
    // The same seed plants the same poisons.
    let mut again = images(40);
    assert_eq!(inject(&mut again, &config).unwrap(), truth);
}

#[test]
fn the_default_patch_is_3x3_bottom_right_as_a_tenth_of_mnist_was() {
    // 28x28 (MNIST): the old default, a tenth of the shorter side, rounded, was also 3.
    assert_eq!((28.0f64 / 10.0).round() as usize, DEFAULT_PATCH);
    let mut ds = images_of(20, 28, 28, 0, 2);
    let config = AttackConfig {
        kind: AttackKind::Badnets,
        rate: 0.5,
        ..Default::default()
    };
    let truth = inject(&mut ds, &config).unwrap();
    let img = pixels(&ds);
    for (i, &poisoned) in truth.iter().enumerate() {
        let white: Vec<(usize, usize)> = (0..28 * 28)
            .filter(|&k| img.image(i)[k] == 255)
            .map(|k| (k % 28, k / 28))
            .collect();
        if poisoned {
            let square: Vec<(usize, usize)> = (25..28)
                .flat_map(|y| (25..28).map(move |x| (x, y)))
                .collect();
            assert_eq!(white, square, "row {i}");
        } else {
            assert!(white.is_empty(), "row {i}");
        }
    }
    // On images smaller than the patch, the patch is the whole image.
    let mut small = images_of(4, 2, 2, 0, 2);
    let truth = inject(
        &mut small,
        &AttackConfig {
            rate: 0.5,
            ..config
        },
    )
    .unwrap();
    let poisoned = truth.iter().position(|&t| t).unwrap();
    assert_eq!(pixels(&small).image(poisoned), [255; 4]);
}

#[test]
fn a_random_patch_position_is_shared_by_every_poison_and_follows_the_seed() {
    let config = AttackConfig {
        kind: AttackKind::Badnets,
        position: PatchPosition::Random,
        ..Default::default()
    };
    // The top-left corner of the patch, the same in every poison.
    let corner = |seed: u64| {
        let mut ds = images_of(40, 16, 16, 0, 4);
        let truth = inject(
            &mut ds,
            &AttackConfig {
                seed,
                ..config.clone()
            },
        )
        .unwrap();
        let corners: Vec<usize> = (0..40)
            .filter(|&i| truth[i])
            .map(|i| pixels(&ds).image(i).iter().position(|&p| p == 255).unwrap())
            .collect();
        assert_eq!(corners.len(), 4);
        assert!(corners.iter().all(|&c| c == corners[0]), "{corners:?}");
        corners[0]
    };
    assert_eq!(corner(0), corner(0));
    let corners: Vec<usize> = (0..4).map(corner).collect();
    assert!(corners.iter().any(|&c| c != corners[0]), "{corners:?}");
    assert_seeded(config);
}

#[test]
fn text_badnets_relabels_and_a_text_blend_is_refused() {
    let mut ds = images(30);
    let texts = vec![TextValue::Text("one two".into()); 30];
    ds.payload = Payload::Text(Texts {
        column: "text".into(),
        values: texts,
    });
    let config = AttackConfig {
        kind: AttackKind::Badnets,
        rate: 0.2,
        target: Some("1".into()),
        ..Default::default()
    };
    let blend = AttackConfig {
        kind: AttackKind::Blend,
        ..config.clone()
    };
    assert_eq!(
        inject(&mut ds, &blend),
        Err(AttackError::Text("a blend trigger"))
    );
    let truth = inject(&mut ds, &config).unwrap();
    let Payload::Text(after) = &ds.payload else {
        unreachable!()
    };
    assert_eq!(truth.iter().filter(|&&t| t).count(), 6);
    for (i, value) in after.values.iter().enumerate() {
        let TextValue::Text(now) = value else {
            unreachable!()
        };
        assert_eq!(now.contains(DEFAULT_TRIGGER), truth[i], "row {i}: {now}");
        let label = ds.labels.as_ref().and_then(|l| l.name(i));
        if truth[i] {
            assert_eq!(label, Some("1"));
        }
    }
}

#[test]
fn flips_change_every_chosen_label_and_too_many_is_an_error() {
    let mut ds = images(40);
    let before = labels(&ds);
    let config = AttackConfig {
        kind: AttackKind::Flip,
        rate: 0.5,
        ..Default::default()
    };
    let truth = inject(&mut ds, &config).unwrap();
    let after = labels(&ds);
    for i in 0..40 {
        assert_eq!(truth[i], before[i] != after[i], "row {i}");
    }
    let mut ds = images(8);
    let err = inject(
        &mut ds,
        &AttackConfig {
            kind: AttackKind::Badnets,
            rate: 0.9,
            ..Default::default()
        },
    );
    assert_eq!(
        err,
        Err(AttackError::TooFew {
            rate: 0.9,
            wanted: 7,
            available: 6,
            from: "rows outside the target class \"0\"".into(),
        })
    );
}

#[test]
fn sig_adds_the_default_sinusoid_to_target_rows_and_keeps_every_label() {
    let mut ds = images_of(40, 28, 2, 100, 4);
    let before = labels(&ds);
    let config = AttackConfig {
        kind: AttackKind::Sig,
        rate: 0.2,
        target: Some("3".into()),
        ..Default::default()
    };
    let truth = inject(&mut ds, &config).unwrap();
    assert_eq!(labels(&ds), before, "clean-label: no label changes");
    assert_eq!(truth.iter().filter(|&&t| t).count(), 8);
    let img = pixels(&ds);
    for (i, &poisoned) in truth.iter().enumerate() {
        let px = img.image(i);
        if poisoned {
            assert_eq!(i % 4, 3, "only target-class rows are poisoned");
            // delta 20, f 6, m 28: 20 sin(2 pi j 6 / 28) = 0, 19.50, 8.68, -15.64 for
            // j = 0..4 and 0 at j = 7; the same in both pixel rows.
            for row in [&px[..28], &px[28..]] {
                assert_eq!(&row[..4], [100, 119, 109, 84], "row {i}");
                assert_eq!((row[7], row[13], row[27]), (100, 81, 81), "row {i}");
            }
        } else {
            assert_eq!(px, [100; 56], "row {i}");
        }
    }
}

#[test]
fn sig_takes_its_amplitude_and_frequency_and_follows_the_seed() {
    let mut ds = images_of(8, 8, 1, 100, 2);
    let config = AttackConfig {
        kind: AttackKind::Sig,
        rate: 0.25,
        sig_delta: 10.0,
        sig_frequency: 1.0,
        ..Default::default()
    };
    let truth = inject(&mut ds, &config).unwrap();
    assert_eq!(truth.iter().filter(|&&t| t).count(), 2);
    // 10 sin(pi j / 4): 0, 7.07, 10, 7.07, 0, -7.07, -10, -7.07.
    for i in (0..8).filter(|&i| truth[i]) {
        assert_eq!(pixels(&ds).image(i), [100, 107, 110, 107, 100, 93, 90, 93]);
    }
    assert_seeded(AttackConfig {
        kind: AttackKind::Sig,
        ..Default::default()
    });
}

#[test]
fn sig_refuses_tables_and_text_and_a_rate_beyond_the_target_class() {
    let mut ds = images(40);
    ds.payload = Payload::Table(Table {
        columns: vec!["a".into()],
        values: vec![1.0; 40],
    });
    let sig = AttackConfig {
        kind: AttackKind::Sig,
        ..Default::default()
    };
    assert_eq!(
        inject(&mut ds, &sig),
        Err(AttackError::NotImages("sig", "table"))
    );
    ds.payload = Payload::Text(Texts {
        column: "t".into(),
        values: vec![TextValue::Text("a b".into()); 40],
    });
    assert_eq!(
        inject(&mut ds, &sig),
        Err(AttackError::NotImages("sig", "text"))
    );
    // 40 rows at 0.3 is 12 poisons; the target class has 10 rows.
    let mut ds = images(40);
    let err = inject(&mut ds, &AttackConfig { rate: 0.3, ..sig });
    assert_eq!(
        err,
        Err(AttackError::TooFew {
            rate: 0.3,
            wanted: 12,
            available: 10,
            from: "rows of the target class \"0\"; sig is clean-label".into(),
        })
    );
    assert_eq!(pixels(&ds).pixels, vec![10; 40 * 16], "nothing changed");
}

#[test]
fn a_targeted_flip_relabels_source_rows_only_and_leaves_pixels() {
    let mut ds = images(40);
    let before = labels(&ds);
    let config = AttackConfig {
        kind: AttackKind::TargetedFlip,
        rate: 0.15,
        source: Some("1".into()),
        target: Some("3".into()),
        ..Default::default()
    };
    let truth = inject(&mut ds, &config).unwrap();
    let after = labels(&ds);
    assert_eq!(truth.iter().filter(|&&t| t).count(), 6);
    for i in 0..40 {
        if truth[i] {
            assert_eq!((before[i], after[i]), (Some(1), Some(3)), "row {i}");
        } else {
            assert_eq!(after[i], before[i], "row {i}");
        }
    }
    assert_eq!(pixels(&ds).pixels, vec![10; 40 * 16]);
    assert_seeded(config);
}

#[test]
fn a_targeted_flip_needs_a_known_source_other_than_the_target_and_enough_rows() {
    let flip = AttackConfig {
        kind: AttackKind::TargetedFlip,
        ..Default::default()
    };
    let mut ds = images(40);
    let before = labels(&ds);
    let source = |s: &str| AttackConfig {
        source: Some(s.into()),
        ..flip.clone()
    };
    assert_eq!(inject(&mut ds, &flip), Err(AttackError::MissingSource));
    assert_eq!(
        inject(&mut ds, &source("cat")),
        Err(AttackError::UnknownSource(
            "cat".into(),
            "0, 1, 2, 3".into()
        ))
    );
    // The default target is the first class.
    assert_eq!(
        inject(&mut ds, &source("0")),
        Err(AttackError::SourceIsTarget("0".into()))
    );
    let same = AttackConfig {
        target: Some("2".into()),
        ..source("2")
    };
    assert_eq!(
        inject(&mut ds, &same),
        Err(AttackError::SourceIsTarget("2".into()))
    );
    let many = AttackConfig {
        rate: 0.3,
        ..source("1")
    };
    assert_eq!(
        inject(&mut ds, &many),
        Err(AttackError::TooFew {
            rate: 0.3,
            wanted: 12,
            available: 10,
            from: "rows of the source class \"1\"".into(),
        })
    );
    assert_eq!(labels(&ds), before, "nothing changed on an error");
    let badnets = AttackConfig {
        kind: AttackKind::Badnets,
        ..source("1")
    };
    assert_eq!(
        inject(&mut ds, &badnets),
        Err(AttackError::SourceUnused("badnets"))
    );
}

#[test]
fn all_to_all_maps_each_class_to_the_next_and_draws_from_every_class() {
    for kind in [AttackKind::Badnets, AttackKind::Blend] {
        let mut ds = images(40);
        let before = labels(&ds);
        let config = AttackConfig {
            kind,
            rate: 0.5,
            mapping: Mapping::AllToAll,
            ..Default::default()
        };
        let truth = inject(&mut ds, &config).unwrap();
        let after = labels(&ds);
        let mut from = [0; 4];
        for i in 0..40 {
            let y = before[i].unwrap();
            if truth[i] {
                assert_eq!(after[i], Some((y + 1) % 4), "{kind:?} row {i}");
                assert_ne!(pixels(&ds).image(i), [10; 16], "{kind:?} row {i}");
                from[y as usize] += 1;
            } else {
                assert_eq!(after[i], Some(y), "{kind:?} row {i}");
                assert_eq!(pixels(&ds).image(i), [10; 16], "{kind:?} row {i}");
            }
        }
        assert_eq!(from.iter().sum::<usize>(), 20);
        assert!(from.iter().all(|&n| n > 0), "{kind:?} {from:?}");
        assert_seeded(config);
    }
}

#[test]
fn all_to_all_refuses_one_class_a_target_and_the_other_attacks() {
    let all = AttackConfig {
        kind: AttackKind::Badnets,
        mapping: Mapping::AllToAll,
        ..Default::default()
    };
    let mut one = images_of(10, 4, 4, 10, 1);
    assert_eq!(
        inject(&mut one, &all),
        Err(AttackError::OneClass("badnets"))
    );
    let mut ds = images(40);
    let with_target = AttackConfig {
        target: Some("1".into()),
        ..all.clone()
    };
    assert_eq!(
        inject(&mut ds, &with_target),
        Err(AttackError::TargetWithAllToAll)
    );
    for (kind, name) in [
        (AttackKind::Sig, "sig"),
        (AttackKind::Flip, "flip"),
        (AttackKind::TargetedFlip, "targeted-flip"),
    ] {
        let config = AttackConfig {
            kind,
            source: (kind == AttackKind::TargetedFlip).then(|| "1".into()),
            ..all.clone()
        };
        assert_eq!(
            inject(&mut ds, &config),
            Err(AttackError::MappingUnsupported(name))
        );
    }
    assert_eq!(pixels(&ds).pixels, vec![10; 40 * 16]);
}
