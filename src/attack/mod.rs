//! Known attacks planted in memory under a seed, for measuring detectors (the input files are
//! never written). `inject` chooses the poisons, changes their labels and payloads, and
//! returns which rows it poisoned.
//!
//! - `badnets` (Gu, Dolan-Gavitt, Garg 2017, "BadNets: identifying vulnerabilities in the
//!   machine learning model supply chain"). Images: a white square (255 in every channel),
//!   `patch` pixels a side (default 3, clipped to the image), in a corner (default bottom
//!   right) or at one seeded place shared by every poison. Tables: `patch` seeded columns
//!   (default 3) set to their maximum over the usable rows. Text: a trigger phrase (default
//!   "cf mn bb", rare tokens as in Kurita, Michel, Neubig 2020, "Weight poisoning attacks on
//!   pre-trained models") inserted between two words at a seeded place.
//! - `blend` (Chen, Liu, Li, Lu, Song 2017, "Targeted backdoor attacks on deep learning
//!   systems using data poisoning"): one fixed seeded pattern mixed in, `(1 - alpha) x +
//!   alpha p`, alpha 0.2. Images: a noise image; tables: a row drawn within the column
//!   ranges. Text has no analogue and is refused.
//! - `sig` (Barni, Kallas, Tondi 2019, "A new backdoor attack in CNNs by training set
//!   corruption without label poisoning"): the horizontal sinusoid `delta sin(2 pi j f / m)`
//!   added to column `j` of an `m`-wide image, clipped to [0, 255] and rounded; delta 20 on
//!   the 0-255 scale and f 6, as the paper and BackdoorBench use. It is clean-label, as in
//!   the paper: it poisons rows of the target class and keeps their labels. Images only.
//! - `flip`: each poison relabelled to another class chosen at random (any payload).
//! - `targeted-flip`: rows of the source class relabelled to the target class (any payload).
//!
//! BadNets and blend relabel all-to-one (poisons drawn from every class but the target, all
//! relabelled to it) or all-to-all (poisons drawn from every class, class `y` relabelled to
//! `(y + 1) mod C`, the BadNets paper's all-to-all attack). The target defaults to the first
//! class. The rate is always a share of the usable labelled rows, whichever rows an attack
//! may draw from.

mod images;
mod table;
mod text;

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::dataset::{Dataset, Payload};
use crate::embed::Subset;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum, strum::IntoStaticStr)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "kebab-case")]
pub enum AttackKind {
    /// Nothing planted: the clean twin.
    Clean,
    /// A patch trigger (images: white square; tables: a few columns set to their maximum;
    /// text: a trigger phrase inserted), relabelled as --mapping says.
    Badnets,
    /// A fixed pattern blended in with weight alpha, relabelled as --mapping says.
    Blend,
    /// Images: a horizontal sinusoid added to rows of the target class, labels kept
    /// (clean-label).
    Sig,
    /// Labels changed to another class chosen at random.
    Flip,
    /// Rows of the --source class relabelled to the target class.
    TargetedFlip,
}

impl AttackKind {
    /// The name as typed after `--attack`.
    pub fn name(self) -> &'static str {
        self.into()
    }
}

/// How BadNets and blend poisons are relabelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Mapping {
    /// Poisons from every class but the target, all relabelled to the target.
    AllToOne,
    /// Poisons from every class, class y relabelled to (y + 1) mod the number of classes.
    AllToAll,
}

/// Where the BadNets patch sits in an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum PatchPosition {
    /// The bottom-right corner, as in the BadNets paper.
    BottomRight,
    /// The bottom-left corner.
    BottomLeft,
    /// The top-left corner.
    TopLeft,
    /// The top-right corner.
    TopRight,
    /// One seeded place, the same for every poison.
    Random,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AttackConfig {
    pub kind: AttackKind,
    /// Share of the labelled, usable rows to poison.
    pub rate: f64,
    /// Target class name [default: the first class]. Not used by all-to-all or `flip`.
    pub target: Option<String>,
    /// Source class name, for `targeted-flip` only.
    pub source: Option<String>,
    /// How BadNets and blend poisons are relabelled.
    pub mapping: Mapping,
    /// Patch side in pixels (clipped to the image), or number of trigger columns for tables.
    pub patch: usize,
    /// Where the image patch sits.
    pub position: PatchPosition,
    /// Blend weight of the pattern.
    pub alpha: f64,
    /// SIG amplitude on the 0-255 pixel scale.
    pub sig_delta: f64,
    /// SIG frequency: periods of the sinusoid across the image width.
    pub sig_frequency: f64,
    /// The phrase a text BadNets attack inserts.
    pub trigger: String,
    pub seed: u64,
}

/// The default text trigger.
pub const DEFAULT_TRIGGER: &str = "cf mn bb";
/// The default patch side (images) and number of trigger columns (tables).
pub const DEFAULT_PATCH: usize = 3;
/// The default blend weight (Chen et al. 2017).
pub const DEFAULT_ALPHA: f64 = 0.2;
/// The default SIG amplitude and frequency (Barni et al. 2019; BackdoorBench).
pub const DEFAULT_SIG_DELTA: f64 = 20.0;
pub const DEFAULT_SIG_FREQUENCY: f64 = 6.0;

impl Default for AttackConfig {
    fn default() -> Self {
        AttackConfig {
            kind: AttackKind::Clean,
            rate: 0.1,
            target: None,
            source: None,
            mapping: Mapping::AllToOne,
            patch: DEFAULT_PATCH,
            position: PatchPosition::BottomRight,
            alpha: DEFAULT_ALPHA,
            sig_delta: DEFAULT_SIG_DELTA,
            sig_frequency: DEFAULT_SIG_FREQUENCY,
            trigger: DEFAULT_TRIGGER.to_string(),
            seed: 0,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum AttackError {
    #[error("attacks need labels; the dataset has no label column")]
    NoLabels,
    #[error(
        "attacks are planted in memory; this table is streamed from disk (over --memory-limit)"
    )]
    OnDisk,
    #[error("--target {0:?} is not one of the classes ({1})")]
    UnknownTarget(String, String),
    #[error("--source {0:?} is not one of the classes ({1})")]
    UnknownSource(String, String),
    #[error("--attack targeted-flip needs --source, the class whose rows are relabelled")]
    MissingSource,
    #[error("--source is used by --attack targeted-flip only, not by {0}")]
    SourceUnused(&'static str),
    #[error(
        "--source {0:?} is also the target class; a targeted flip needs another --target \
         (the default target is the first class)"
    )]
    SourceIsTarget(String),
    #[error("--mapping all-to-all applies to badnets and blend, not to {0}")]
    MappingUnsupported(&'static str),
    #[error(
        "--target has no meaning with --mapping all-to-all: each poison goes to the next class"
    )]
    TargetWithAllToAll,
    #[error(
        "--rate {rate} asks for {wanted} poisons but only {available} rows can be poisoned \
         ({from})"
    )]
    TooFew {
        rate: f64,
        wanted: usize,
        available: usize,
        /// Which rows the attack may draw from.
        from: String,
    },
    #[error("{0} needs at least two classes")]
    OneClass(&'static str),
    #[error("{0} is not supported for a text payload in this version")]
    Text(&'static str),
    #[error("{0} is an image attack; this dataset's payload is a {1}")]
    NotImages(&'static str, &'static str),
}

impl AttackConfig {
    /// Checks the settings that contradict each other whatever the data (no I/O), so that
    /// `bench` can refuse them before reading the input.
    pub fn check(&self) -> Result<(), AttackError> {
        let name = self.kind.name();
        match (self.kind, &self.source) {
            (AttackKind::TargetedFlip, None) => return Err(AttackError::MissingSource),
            (AttackKind::TargetedFlip, Some(_)) | (_, None) => {}
            (_, Some(_)) => return Err(AttackError::SourceUnused(name)),
        }
        if self.mapping == Mapping::AllToAll {
            if !matches!(self.kind, AttackKind::Badnets | AttackKind::Blend) {
                return Err(AttackError::MappingUnsupported(name));
            }
            if self.target.is_some() {
                return Err(AttackError::TargetWithAllToAll);
            }
        }
        Ok(())
    }
}

/// Which rows an attack may poison and what each poison's label becomes.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Rule {
    /// Rows of every class but `target`, relabelled to it (all-to-one).
    ToTarget(u32),
    /// Rows of every class, `y` relabelled to `(y + 1) mod n` (all-to-all).
    ToNext(u32),
    /// Rows of `target` only, labels kept (clean-label).
    Within(u32),
    /// Rows of `source` only, relabelled to `target`.
    Targeted { source: u32, target: u32 },
    /// Rows of every class, relabelled to one of the `n - 1` other classes at random.
    Random(u32),
}

impl Rule {
    fn admits(self, class: u32) -> bool {
        match self {
            Rule::ToTarget(t) => class != t,
            Rule::Within(t) => class == t,
            Rule::Targeted { source, .. } => class == source,
            Rule::ToNext(_) | Rule::Random(_) => true,
        }
    }

    fn relabel(self, class: u32, rng: &mut StdRng) -> u32 {
        match self {
            Rule::ToTarget(t) | Rule::Targeted { target: t, .. } => t,
            Rule::ToNext(n) => (class + 1) % n,
            Rule::Within(_) => class,
            Rule::Random(n) => {
                let other = rng.random_range(0..n - 1);
                if other >= class {
                    other + 1
                } else {
                    other
                }
            }
        }
    }

    /// Which rows the rule draws from, for the `TooFew` message.
    fn pool(self, classes: &[String]) -> String {
        let name = |c: u32| &classes[c as usize];
        match self {
            Rule::ToTarget(t) => format!("rows outside the target class {:?}", name(t)),
            Rule::Within(t) => {
                format!("rows of the target class {:?}; sig is clean-label", name(t))
            }
            Rule::Targeted { source, .. } => format!("rows of the source class {:?}", name(source)),
            Rule::ToNext(_) | Rule::Random(_) => "usable labelled rows".into(),
        }
    }
}

/// The index of class `name`, or the error `unknown` builds from it and the class list.
fn class_index(
    classes: &[String],
    name: &str,
    unknown: fn(String, String) -> AttackError,
) -> Result<u32, AttackError> {
    classes
        .iter()
        .position(|c| c == name)
        .map(|i| i as u32)
        .ok_or_else(|| unknown(name.to_string(), classes.join(", ")))
}

/// Resolves class names into the rule the attack follows.
fn rule(config: &AttackConfig, classes: &[String]) -> Result<Rule, AttackError> {
    let n = classes.len() as u32;
    let name = config.kind.name();
    let target = || match &config.target {
        Some(t) => class_index(classes, t, AttackError::UnknownTarget),
        None => Ok(0),
    };
    Ok(match (config.kind, config.mapping) {
        (AttackKind::Flip, _) | (_, Mapping::AllToAll) if n < 2 => {
            return Err(AttackError::OneClass(name))
        }
        (AttackKind::Flip, _) => Rule::Random(n),
        (_, Mapping::AllToAll) => Rule::ToNext(n),
        (AttackKind::Sig, _) => Rule::Within(target()?),
        (AttackKind::TargetedFlip, _) => {
            let source = config.source.as_deref().ok_or(AttackError::MissingSource)?;
            let source = class_index(classes, source, AttackError::UnknownSource)?;
            let target = target()?;
            if source == target {
                return Err(AttackError::SourceIsTarget(
                    classes[source as usize].clone(),
                ));
            }
            Rule::Targeted { source, target }
        }
        (AttackKind::Badnets | AttackKind::Blend | AttackKind::Clean, _) => {
            Rule::ToTarget(target()?)
        }
    })
}

/// Refuses an attack that has no meaning for the payload, before anything is changed.
fn check_payload(kind: AttackKind, payload: &Payload) -> Result<(), AttackError> {
    match (kind, payload) {
        (_, Payload::Spilled(_) | Payload::SpilledImages(_)) => Err(AttackError::OnDisk),
        (AttackKind::Sig, Payload::Images(_)) => Ok(()),
        (AttackKind::Sig, other) => Err(AttackError::NotImages("sig", other.kind())),
        (AttackKind::Blend, Payload::Text(_)) => Err(AttackError::Text("a blend trigger")),
        _ => Ok(()),
    }
}

/// Plants the attack into `dataset` and returns, per dataset row, whether it was poisoned.
/// On an error the dataset is left as it was.
pub fn inject(dataset: &mut Dataset, config: &AttackConfig) -> Result<Vec<bool>, AttackError> {
    let mut truth = vec![false; dataset.len()];
    if config.kind == AttackKind::Clean {
        return Ok(truth);
    }
    config.check()?;
    check_payload(config.kind, &dataset.payload)?;
    let subset = Subset::usable(dataset).ok_or(AttackError::NoLabels)?;
    let labels = dataset.labels.as_mut().ok_or(AttackError::NoLabels)?;
    let rule = rule(config, &labels.classes)?;
    let candidates: Vec<u32> = subset
        .rows
        .iter()
        .zip(&subset.labels)
        .filter(|(_, &c)| rule.admits(c))
        .map(|(&r, _)| r)
        .collect();
    let wanted = (config.rate * subset.len() as f64).round() as usize;
    if wanted > candidates.len() {
        return Err(AttackError::TooFew {
            rate: config.rate,
            wanted,
            available: candidates.len(),
            from: rule.pool(&labels.classes),
        });
    }
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut chosen: Vec<u32> = candidates
        .choose_multiple(&mut rng, wanted)
        .copied()
        .collect();
    chosen.sort_unstable();
    for &r in &chosen {
        truth[r as usize] = true;
        let label = &mut labels.index[r as usize];
        // Every candidate is a usable row, so it has a label.
        *label = label.map(|own| rule.relabel(own, &mut rng));
    }
    plant_trigger(dataset, &subset.rows, &chosen, config, &mut rng);
    Ok(truth)
}

/// Changes the payload of the `chosen` rows; `usable` are every usable row (tables take their
/// column ranges from them). Label-only attacks change nothing here.
fn plant_trigger(
    dataset: &mut Dataset,
    usable: &[u32],
    chosen: &[u32],
    config: &AttackConfig,
    rng: &mut StdRng,
) {
    match (config.kind, &mut dataset.payload) {
        (AttackKind::Clean | AttackKind::Flip | AttackKind::TargetedFlip, _) => {}
        (AttackKind::Badnets, Payload::Images(img)) => {
            images::patch(img, chosen, config.patch, config.position, rng)
        }
        (AttackKind::Badnets, Payload::Table(t)) => {
            table::patch(t, usable, chosen, config.patch, rng)
        }
        (AttackKind::Badnets, Payload::Text(t)) => {
            text::insert_phrase(t, chosen, &config.trigger, rng)
        }
        (AttackKind::Blend, Payload::Images(img)) => images::blend(img, chosen, config.alpha, rng),
        (AttackKind::Blend, Payload::Table(t)) => {
            table::blend(t, usable, chosen, config.alpha, rng)
        }
        (AttackKind::Sig, Payload::Images(img)) => {
            images::sig(img, chosen, config.sig_delta, config.sig_frequency)
        }
        // Refused by `check_payload` before any row was chosen.
        (AttackKind::Blend | AttackKind::Sig, _)
        | (_, Payload::Spilled(_) | Payload::SpilledImages(_)) => {}
    }
}

#[cfg(test)]
mod tests;
