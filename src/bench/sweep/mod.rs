//! `poisongate sweep`: every attack x rate x seed of a plan planted in turn into one clean
//! dataset, each measured as `bench` measures it, and summarised in one table: a row per
//! attack and rate, a column group per method with the mean and standard deviation over the
//! seeds, and three control rows under each: no filter (nothing flagged), a random filter
//! flagging as many samples as the method did (seeded per run), and the perfect filter.
//!
//! Each seed sets both the attack's seed and the detectors' (probe, clustering, shift test),
//! as `benches/quality.sh` does.

use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use clap::ValueEnum;

use crate::attack::AttackKind;
use crate::detect::metrics::{auroc, quality, Quality};

mod output;
mod run;

pub use run::{run, sweep, SweepReport};

/// What to sweep. From `--plan FILE.toml` (keys `attacks`, `rates`, `seeds`), each list
/// replaceable by its flag.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub attacks: Vec<AttackKind>,
    pub rates: Vec<f64>,
    pub seeds: Vec<u64>,
}

/// The plan file as written; attacks by their command-line names.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PlanFile {
    attacks: Vec<String>,
    rates: Vec<f64>,
    seeds: Vec<u64>,
}

/// Errors keep their cause as text so that configuration errors compare in tests.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    #[error("--plan {path}: {error}")]
    Read { path: PathBuf, error: String },
    #[error("--plan {path}: {error}")]
    Parse { path: PathBuf, error: String },
    #[error("--plan {path}: unknown attack {name:?}; expected one of {expected}")]
    Attack {
        path: PathBuf,
        name: String,
        expected: String,
    },
    #[error("the sweep's {0} list is empty; give at least one")]
    Empty(&'static str),
    #[error("sweep rate {0} is not between 0 and 1")]
    Rate(f64),
}

impl Default for Plan {
    /// The four attacks at 10 % over three seeds.
    fn default() -> Self {
        Plan {
            attacks: vec![
                AttackKind::Badnets,
                AttackKind::Blend,
                AttackKind::Flip,
                AttackKind::Clean,
            ],
            rates: vec![0.1],
            seeds: vec![0, 1, 2],
        }
    }
}

impl Plan {
    pub fn read(path: &Path) -> Result<Plan, PlanError> {
        let text = std::fs::read_to_string(path).map_err(|error| PlanError::Read {
            path: path.to_owned(),
            error: error.to_string(),
        })?;
        let file: PlanFile = toml::from_str(&text).map_err(|error| PlanError::Parse {
            path: path.to_owned(),
            error: error.to_string(),
        })?;
        let attacks = file
            .attacks
            .iter()
            .map(|name| {
                AttackKind::from_str(name, false).map_err(|_| {
                    let expected: Vec<String> = AttackKind::value_variants()
                        .iter()
                        .filter_map(|v| v.to_possible_value())
                        .map(|v| v.get_name().to_string())
                        .collect();
                    PlanError::Attack {
                        path: path.to_owned(),
                        name: name.clone(),
                        expected: expected.join(", "),
                    }
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Plan {
            attacks,
            rates: file.rates,
            seeds: file.seeds,
        })
    }

    /// Every list non-empty, every rate in (0, 1).
    pub fn check(&self) -> Result<(), PlanError> {
        if self.attacks.is_empty() {
            return Err(PlanError::Empty("attacks"));
        }
        if self.rates.is_empty() {
            return Err(PlanError::Empty("rates"));
        }
        if self.seeds.is_empty() {
            return Err(PlanError::Empty("seeds"));
        }
        match self.rates.iter().find(|&&r| !(r > 0.0 && r < 1.0)) {
            Some(&r) => Err(PlanError::Rate(r)),
            None => Ok(()),
        }
    }
}

/// One method's flags and scores in one run, against the run's truth.
pub struct Measured<'a> {
    /// `detector/view`, or `fused`.
    pub method: String,
    pub flags: &'a [bool],
    pub scores: &'a [f32],
}

/// Mean and sample standard deviation over the seeds (sd 0 for one seed).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Stat {
    pub mean: f64,
    pub sd: f64,
}

impl Stat {
    fn of(values: &[f64]) -> Option<Stat> {
        if values.is_empty() {
            return None;
        }
        let n = values.len() as f64;
        let mean = values.iter().sum::<f64>() / n;
        let sd = if values.len() > 1 {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt()
        } else {
            0.0
        };
        Some(Stat { mean, sd })
    }
}

/// One method (or control) over the seeds of one attack and rate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub method: String,
    /// Share of the rows flagged.
    pub flagged_share: Option<Stat>,
    pub precision: Option<Stat>,
    pub recall: Option<Stat>,
    pub f1: Option<Stat>,
    /// None where a run has no score to rank (no filter) or one side is empty (clean).
    pub auroc: Option<Stat>,
}

/// The kind of a table row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    /// The methods as measured.
    Measured,
    NoFilter,
    /// Flags as many samples as the method in its column did, chosen at random.
    Random,
    Perfect,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub attack: AttackKind,
    /// None for the clean twin.
    pub rate: Option<f64>,
    pub filter: Filter,
    pub methods: Vec<Summary>,
}

/// The per-run figures one summary is built from.
#[derive(Default)]
struct Samples {
    flagged_share: Vec<f64>,
    precision: Vec<f64>,
    recall: Vec<f64>,
    f1: Vec<f64>,
    auroc: Vec<f64>,
}

impl Samples {
    fn push(&mut self, q: Quality, rows: usize, truth: &[bool], auroc_value: Option<f64>) {
        self.flagged_share
            .push(q.flagged as f64 / rows.max(1) as f64);
        // Precision, recall and F1 mean nothing on a clean twin; the flagged share does.
        if truth.iter().any(|&t| t) {
            self.precision.push(q.precision);
            self.recall.push(q.recall);
            self.f1.push(q.f1);
        }
        if let Some(a) = auroc_value {
            self.auroc.push(a);
        }
    }

    fn summary(&self, method: &str) -> Summary {
        Summary {
            method: method.to_string(),
            flagged_share: Stat::of(&self.flagged_share),
            precision: Stat::of(&self.precision),
            recall: Stat::of(&self.recall),
            f1: Stat::of(&self.f1),
            auroc: Stat::of(&self.auroc),
        }
    }
}

/// Collects the runs of one attack and rate and turns them into the measured row and the
/// three control rows.
pub struct Cell {
    attack: AttackKind,
    rate: Option<f64>,
    methods: Vec<String>,
    /// Per filter (measured, none, random, perfect), per method.
    samples: [Vec<Samples>; 4],
}

impl Cell {
    pub fn new(attack: AttackKind, rate: Option<f64>) -> Self {
        Cell {
            attack,
            rate,
            methods: Vec::new(),
            samples: Default::default(),
        }
    }

    /// Adds one seed's run. The random filter draws from `seed`.
    pub fn add(&mut self, measured: &[Measured<'_>], truth: &[bool], seed: u64) {
        let rows = truth.len();
        let mut rng = StdRng::seed_from_u64(seed ^ 0x5EED_F11E);
        for m in measured {
            let at = match self.methods.iter().position(|n| *n == m.method) {
                Some(at) => at,
                None => {
                    self.methods.push(m.method.clone());
                    for s in &mut self.samples {
                        s.push(Samples::default());
                    }
                    self.methods.len() - 1
                }
            };
            self.samples[0][at].push(quality(m.flags, truth), rows, truth, auroc(m.scores, truth));
            let none = vec![false; rows];
            self.samples[1][at].push(quality(&none, truth), rows, truth, None);
            let size = m.flags.iter().filter(|&&f| f).count();
            let mut order: Vec<usize> = (0..rows).collect();
            order.shuffle(&mut rng);
            let mut random = vec![false; rows];
            let mut random_scores = vec![0f32; rows];
            for (rank, &i) in order.iter().enumerate() {
                random[i] = rank < size;
                random_scores[i] = (rows - rank) as f32;
            }
            self.samples[2][at].push(
                quality(&random, truth),
                rows,
                truth,
                auroc(&random_scores, truth),
            );
            let perfect_scores: Vec<f32> = truth.iter().map(|&t| f32::from(u8::from(t))).collect();
            self.samples[3][at].push(
                quality(truth, truth),
                rows,
                truth,
                auroc(&perfect_scores, truth),
            );
        }
    }

    pub fn rows(&self) -> Vec<Row> {
        let filters = [
            Filter::Measured,
            Filter::NoFilter,
            Filter::Random,
            Filter::Perfect,
        ];
        filters
            .iter()
            .zip(&self.samples)
            .map(|(&filter, per_method)| Row {
                attack: self.attack,
                rate: self.rate,
                filter,
                methods: self
                    .methods
                    .iter()
                    .zip(per_method)
                    .map(|(name, s)| s.summary(name))
                    .collect(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_reads_from_toml_and_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("plan.toml");
        std::fs::write(
            &path,
            "attacks = [\"badnets\", \"flip\"]\nrates = [0.05, 0.1]\nseeds = [0, 1]\n",
        )
        .unwrap();
        let plan = Plan::read(&path).unwrap();
        assert_eq!(plan.attacks, [AttackKind::Badnets, AttackKind::Flip]);
        assert_eq!(plan.rates, [0.05, 0.1]);
        plan.check().unwrap();
        std::fs::write(
            &path,
            "attacks = [\"badnets\"]\nrates = [0.1]\nseed = [0]\n",
        )
        .unwrap();
        let message = Plan::read(&path).unwrap_err().to_string();
        assert!(
            message.contains("plan.toml") && message.contains("seed"),
            "{message}"
        );
        std::fs::write(&path, "attacks = [\"patch\"]\nrates = [0.1]\nseeds = [0]\n").unwrap();
        let message = Plan::read(&path).unwrap_err().to_string();
        assert!(
            message.contains("unknown attack \"patch\"; expected one of clean, badnets"),
            "{message}"
        );
        let empty = Plan {
            attacks: vec![],
            ..plan.clone()
        };
        assert_eq!(
            empty.check().unwrap_err().to_string(),
            "the sweep's attacks list is empty; give at least one"
        );
        let bad = Plan {
            rates: vec![0.1, 1.5],
            ..plan
        };
        assert!(bad.check().unwrap_err().to_string().contains("1.5"));
    }

    #[test]
    fn summaries_average_over_seeds_and_controls_bracket_the_method() {
        let truth = [true, true, false, false, false, false, false, false];
        let mut cell = Cell::new(AttackKind::Flip, Some(0.25));
        // Seed 0 finds both poisons; seed 1 one of them and a false alarm.
        let runs: [(&[bool], &[f32]); 2] = [
            (
                &[true, true, false, false, false, false, false, false],
                &[0.9, 0.8, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1],
            ),
            (
                &[true, false, true, false, false, false, false, false],
                &[0.9, 0.1, 0.8, 0.1, 0.1, 0.1, 0.1, 0.1],
            ),
        ];
        for (seed, (flags, scores)) in runs.into_iter().enumerate() {
            let m = Measured {
                method: "knn/raw".into(),
                flags,
                scores,
            };
            cell.add(&[m], &truth, seed as u64);
        }
        let rows = cell.rows();
        assert_eq!(rows.len(), 4);
        let measured = &rows[0].methods[0];
        let f1 = measured.f1.unwrap();
        assert!((f1.mean - 0.75).abs() < 1e-12, "{f1:?}");
        assert!((f1.sd - (0.125f64).sqrt()).abs() < 1e-12, "{f1:?}");
        assert_eq!(measured.flagged_share.unwrap().mean, 0.25);
        let none = &rows[1].methods[0];
        assert_eq!((none.f1.unwrap().mean, none.auroc), (0.0, None));
        let random = &rows[2].methods[0];
        assert_eq!(
            random.flagged_share.unwrap().mean,
            0.25,
            "same size as the method"
        );
        let perfect = &rows[3].methods[0];
        assert_eq!(perfect.f1.unwrap().mean, 1.0);
        assert_eq!(perfect.auroc.unwrap().mean, 1.0);
    }

    #[test]
    fn a_clean_twin_has_only_flagged_shares() {
        let truth = [false; 4];
        let mut cell = Cell::new(AttackKind::Clean, None);
        let m = Measured {
            method: "fused".into(),
            flags: &[true, false, false, false],
            scores: &[1.0, 0.0, 0.0, 0.0],
        };
        cell.add(&[m], &truth, 0);
        let measured = &cell.rows()[0].methods[0];
        assert_eq!(measured.flagged_share.unwrap().mean, 0.25);
        assert_eq!((measured.f1, measured.auroc), (None, None));
    }
}
