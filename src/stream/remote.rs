//! The streaming scan's parallel steps as messages, so that other processes can run them: the
//! Ray engine (the Python package's `poisongate.ray`) hands each to a Ray task, which calls
//! [`run_task`] in a worker. The scan's driver keeps the plan, the files and the verdict;
//! what travels is a step's settings (`spec`, once a step) and its items (a class with its
//! rows, a partition with its queries), and the answers come back in order.
//!
//! The same code runs a class or a partition whether the scan runs it in its own process or
//! a worker does ([`Job::run`], [`super::ivf`]'s search): only the bytes travel, so the
//! results are the single-machine streaming scan's, bit for bit.

use clap::ValueEnum;

pub use super::embedding::{embed_frame, AnswerSink, RawSpec, Sink, Worker};
use super::wire::{Reader, Writer};
use super::StreamError;
use crate::detect::clustering::{self, ClusteringConfig, Reduce};
use crate::detect::shift::{self, Half, ShiftConfig};
use crate::detect::spectral::{self, SpectralConfig, Variant};
use crate::detect::{ClassStatistic, Points};
use crate::embed::{Subset, View};

/// Where the scan's parallel steps run: another process's tasks. `map` runs `stage` on each
/// item with the step's `spec` and returns the answers in the items' order; `share` keeps a
/// blob where every task can read it (Ray's object store) until `release`, so that data many
/// items need travels once; `embed` computes the raw view of every shard of the input (see
/// [`RawSpec`]) and hands each to `sink` with the number of its first row.
pub trait Tasks: Sync {
    fn map(&self, stage: &str, spec: &[u8], items: Vec<Item>) -> Result<Vec<Vec<u8>>, StreamError>;

    /// The handle of `blob`, for [`Item::shared`].
    fn share(&self, blob: Vec<u8>) -> Result<u64, StreamError>;

    /// Drops every shared blob.
    fn release(&self) -> Result<(), StreamError>;

    fn embed(&self, spec: &RawSpec, sink: &Sink<'_>) -> Result<(), StreamError>;

    /// Embeds each shard of a pretrained view (`items` of `stage`, `images` or `texts`, with
    /// the step's `spec`: a [`Worker`]) and hands each answer to `sink`, in any order. By
    /// default the shards run as tasks through [`Tasks::map`]; the Ray engine runs them on
    /// actors that keep the model loaded.
    fn embed_shards(
        &self,
        stage: &str,
        spec: &[u8],
        items: Vec<Vec<u8>>,
        sink: &AnswerSink<'_>,
    ) -> Result<(), StreamError> {
        let items = items.into_iter().map(Item::from).collect();
        for answer in self.map(stage, spec, items)? {
            sink(&answer)?;
        }
        Ok(())
    }

    /// Named in the report's notes ("Ray at 127.0.0.1:6379").
    fn describe(&self) -> String;
}

/// One task's work: its bytes, and the shared blobs (handles from [`Tasks::share`]) that its
/// task reads, handed to it in this order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Item {
    pub bytes: Vec<u8>,
    pub shared: Vec<u64>,
}

impl From<Vec<u8>> for Item {
    fn from(bytes: Vec<u8>) -> Self {
        Item {
            bytes,
            shared: Vec::new(),
        }
    }
}

/// A per-class step: what runs on the points of one class (and, for the shifted-copy test,
/// its sample of the other classes).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Job {
    Clustering(ClusteringConfig),
    Spectral(SpectralConfig),
    /// [`shift::test_class`]; a class's data is the `excluded` flag of each of its rows.
    ShiftTest(ShiftConfig),
    /// [`shift::members_in_own_half`]; a class's data is its fired halves and split.
    ShiftMembers(ShiftConfig),
}

/// The stage name of the per-class steps.
pub(crate) const CLASS_STAGE: &str = "class";

pub(super) fn position<T: ValueEnum + PartialEq>(v: &T) -> usize {
    T::value_variants()
        .iter()
        .position(|x| x == v)
        .unwrap_or_default()
}

pub(super) fn variant<T: ValueEnum + Clone>(
    i: usize,
    what: &'static str,
) -> Result<T, StreamError> {
    T::value_variants()
        .get(i)
        .cloned()
        .ok_or_else(|| StreamError::Unsupported(format!("{what}: no choice number {i}")))
}

fn shift_spec(w: &mut Writer, c: &ShiftConfig) {
    w.usize(c.k)
        .usize(c.sample)
        .f64(c.threshold)
        .f64(c.gap)
        .f64(c.alpha)
        .u64(c.seed);
}

fn read_shift(r: &mut Reader<'_>) -> Result<ShiftConfig, StreamError> {
    Ok(ShiftConfig {
        k: r.usize()?,
        sample: r.usize()?,
        threshold: r.f64()?,
        gap: r.f64()?,
        alpha: r.f64()?,
        seed: r.u64()?,
    })
}

impl Job {
    pub(crate) fn spec(&self) -> Vec<u8> {
        let mut w = Writer::new();
        match self {
            Job::Clustering(c) => {
                w.u64(0)
                    .usize(position(&c.reduce))
                    .usize(c.dims)
                    .f64(c.size_threshold)
                    .f64(c.silhouette_threshold)
                    .u64(c.seed);
            }
            Job::Spectral(c) => {
                w.u64(1)
                    .usize(position(&c.variant))
                    .opt_f64(c.poison_rate)
                    .f64(c.multiplier);
            }
            Job::ShiftTest(c) => shift_spec(w.u64(2), c),
            Job::ShiftMembers(c) => shift_spec(w.u64(3), c),
        }
        w.finish()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<Job, StreamError> {
        let mut r = Reader::new(bytes, "a per-class step's settings");
        let job = match r.u64()? {
            0 => Job::Clustering(ClusteringConfig {
                reduce: variant::<Reduce>(r.usize()?, "--clustering-reduce")?,
                dims: r.usize()?,
                size_threshold: r.f64()?,
                silhouette_threshold: r.f64()?,
                seed: r.u64()?,
            }),
            1 => Job::Spectral(SpectralConfig {
                variant: variant::<Variant>(r.usize()?, "--spectral-variant")?,
                poison_rate: r.opt_f64()?,
                multiplier: r.f64()?,
            }),
            2 => Job::ShiftTest(read_shift(&mut r)?),
            3 => Job::ShiftMembers(read_shift(&mut r)?),
            other => {
                return Err(StreamError::Unsupported(format!(
                    "a per-class step of kind {other} is not one this build of poisongate runs"
                )))
            }
        };
        r.end()?;
        Ok(job)
    }

    /// Runs the step on class `class` of `points` (its rows are `own`, the other classes'
    /// sample `more`, both positions in `points`) with the class's `data`; the answer as
    /// bytes. Members in answers are subset positions (`points.subset.rows`).
    pub(crate) fn run(
        &self,
        points: &Points<'_>,
        class: usize,
        own: &[u32],
        more: &[u32],
        data: &[u8],
    ) -> Result<Vec<u8>, StreamError> {
        let global = |r: u32| points.subset.rows[r as usize];
        let mut w = Writer::new();
        match self {
            Job::Clustering(config) => {
                let outcome = clustering::class_outcome(points, class, own, config)
                    .map(|o| (o.scores, o.flags, o.statistic));
                write_scored(&mut w, outcome.as_ref());
            }
            Job::Spectral(config) => {
                let outcome = spectral::class_run(points, class, own, config)
                    .map(|o| (o.scores, o.flags, o.statistic));
                write_scored(&mut w, outcome.as_ref());
            }
            Job::ShiftTest(config) => {
                let mut r = Reader::new(data, "a shifted-copy test's class");
                // Whether each row of `points` is left out of the mixing samples.
                let excluded = r.bools()?;
                r.end()?;
                if excluded.len() != points.len() {
                    return Err(StreamError::Unsupported(format!(
                        "a shifted-copy test's class has {} flags for {} rows",
                        excluded.len(),
                        points.len()
                    )));
                }
                let tested =
                    shift::test_class(points, class, own, more, |r| excluded[r as usize], config);
                w.bool(tested.is_some());
                if let Some((side, pair)) = tested {
                    w.bools(&side);
                    for half in pair {
                        let members: Vec<u32> = half.members.iter().map(|&r| global(r)).collect();
                        write_half(&mut w, &Half { members, ..half });
                    }
                }
            }
            Job::ShiftMembers(config) => {
                let mut r = Reader::new(data, "a shifted-copy test's fired halves");
                let fired = (0..r.usize()?)
                    .map(|_| Ok((r.usize()?, r.usize()?, r.bools()?)))
                    .collect::<Result<Vec<_>, StreamError>>()?;
                r.end()?;
                w.usize(fired.len());
                for (p, h, side) in fired {
                    if side.len() != own.len() {
                        return Err(StreamError::Unsupported(format!(
                            "a fired half's split has {} sides for {} rows",
                            side.len(),
                            own.len()
                        )));
                    }
                    let found = shift::members_in_own_half(points, own, &side, h == 1, config.k);
                    let found: Vec<u32> = found.into_iter().map(global).collect();
                    w.usize(p).usize(h).u32s(&found);
                }
            }
        }
        Ok(w.finish())
    }
}

/// A clustering or spectral class's answer: its scores and flags (in its rows' order) and
/// its statistic.
pub(crate) type Scored = (Vec<f32>, Vec<bool>, ClassStatistic);

fn write_scored(w: &mut Writer, outcome: Option<&Scored>) {
    w.bool(outcome.is_some());
    if let Some((scores, flags, s)) = outcome {
        w.f32s(scores)
            .bools(flags)
            .u64(s.class as u64)
            .usize(s.size)
            .str(s.statistic)
            .f64(s.value)
            .opt_f64(s.threshold)
            .usize(s.flagged);
    }
}

/// The statistics' names as `&'static str` (the report's type): the per-class detectors'.
fn statistic_name(name: &str) -> Result<&'static str, StreamError> {
    ["silhouette", "top_eigenvalue_share"]
        .into_iter()
        .find(|&s| s == name)
        .ok_or_else(|| {
            StreamError::Unsupported(format!(
                "a class answered with an unknown statistic `{name}`"
            ))
        })
}

pub(crate) fn read_scored(bytes: &[u8]) -> Result<Option<Scored>, StreamError> {
    let mut r = Reader::new(bytes, "a class's scores");
    if !r.bool()? {
        r.end()?;
        return Ok(None);
    }
    let scores = r.f32s()?;
    let flags = r.bools()?;
    let statistic = ClassStatistic {
        class: r.u64()? as u32,
        size: r.usize()?,
        statistic: statistic_name(&r.str()?)?,
        value: r.f64()?,
        threshold: r.opt_f64()?,
        flagged: r.usize()?,
    };
    r.end()?;
    Ok(Some((scores, flags, statistic)))
}

fn write_half(w: &mut Writer, h: &Half) {
    w.u64(h.class as u64)
        .u32s(&h.members)
        .opt_f64(h.self_share)
        .usize(h.sample)
        .bool(h.fired)
        .u32s(&h.flagged);
}

fn read_half(r: &mut Reader<'_>) -> Result<Half, StreamError> {
    Ok(Half {
        class: r.u64()? as u32,
        members: r.u32s()?,
        self_share: r.opt_f64()?,
        sample: r.usize()?,
        fired: r.bool()?,
        flagged: r.u32s()?,
    })
}

/// A shifted-copy test's class: which side of the split each member is on, and its halves.
pub(crate) type Split = (Vec<bool>, [Half; 2]);

pub(crate) fn read_split(bytes: &[u8]) -> Result<Option<Split>, StreamError> {
    let mut r = Reader::new(bytes, "a shifted-copy test's answer");
    let split = if r.bool()? {
        let side = r.bools()?;
        let pair = [read_half(&mut r)?, read_half(&mut r)?];
        Some((side, pair))
    } else {
        None
    };
    r.end()?;
    Ok(split)
}

/// The data of a class for [`Job::ShiftMembers`]: each fired half (split number, half) with
/// the class's split.
pub(crate) fn members_data(fired: &[(usize, usize, &[bool])]) -> Vec<u8> {
    let mut w = Writer::new();
    w.usize(fired.len());
    for &(p, h, side) in fired {
        w.usize(p).usize(h).bools(side);
    }
    w.finish()
}

pub(crate) fn read_members(bytes: &[u8]) -> Result<Vec<(usize, usize, Vec<u32>)>, StreamError> {
    let mut r = Reader::new(bytes, "a shifted-copy test's members");
    let found = (0..r.usize()?)
        .map(|_| Ok((r.usize()?, r.usize()?, r.u32s()?)))
        .collect::<Result<Vec<_>, StreamError>>()?;
    r.end()?;
    Ok(found)
}

/// A class as an item of [`CLASS_STAGE`]: its rows (subset positions, ascending), their
/// classes, where the class's own rows and its extra rows are among them, the rows' values
/// and the step's data for the class.
pub(crate) struct ClassItem<'a> {
    pub class: usize,
    pub n_classes: usize,
    pub rows: &'a [u32],
    pub labels: &'a [u32],
    pub own: &'a [u32],
    pub more: &'a [u32],
    pub values: &'a [f32],
    pub data: &'a [u8],
}

impl ClassItem<'_> {
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.usize(self.class)
            .usize(self.n_classes)
            .u32s(self.rows)
            .u32s(self.labels)
            .u32s(self.own)
            .u32s(self.more)
            .f32s(self.values)
            .bytes(self.data);
        w.finish()
    }
}

/// Runs one class of a per-class step (an item of [`CLASS_STAGE`]).
fn run_class(spec: &[u8], item: &[u8]) -> Result<Vec<u8>, StreamError> {
    let job = Job::decode(spec)?;
    let mut r = Reader::new(item, "a class of a per-class step");
    let class = r.usize()?;
    let n_classes = r.usize()?;
    let rows = r.u32s()?;
    let labels = r.u32s()?;
    let own = r.u32s()?;
    let more = r.u32s()?;
    let values = r.f32s()?;
    let data = r.bytes()?;
    r.end()?;
    let n = rows.len();
    let in_range = |p: &[u32]| p.iter().all(|&i| (i as usize) < n);
    if labels.len() != n
        || n == 0
        || values.len() % n != 0
        || !in_range(&own)
        || !in_range(&more)
        || class >= n_classes
    {
        return Err(StreamError::Unsupported(format!(
            "a class of a per-class step does not hold together ({n} rows, {} labels, {} values, class {class} of {n_classes})",
            labels.len(),
            values.len()
        )));
    }
    let d = values.len() / n;
    let subset = Subset {
        rows,
        labels,
        n_classes,
        excluded: Vec::new(),
    };
    let points = Points::from_vec(values, d, &subset, View::Raw);
    job.run(&points, class, &own, &more, data)
}

/// Runs one item of `stage` with the step's `spec` and the item's `shared` blobs: what a
/// worker of the Ray engine calls.
pub fn run_task(
    stage: &str,
    spec: &[u8],
    item: &[u8],
    shared: &[&[u8]],
) -> Result<Vec<u8>, StreamError> {
    let none = |answer: Result<Vec<u8>, StreamError>| {
        if shared.is_empty() {
            answer
        } else {
            Err(StreamError::Unsupported(format!(
                "a `{stage}` task takes no shared data; it was given {}",
                shared.len()
            )))
        }
    };
    match stage {
        CLASS_STAGE => none(run_class(spec, item)),
        super::ivf::ASK_STAGE => none(super::ivf::run_ask(spec, item)),
        super::ivf::SEARCH_STAGE => super::ivf::run_search(spec, item, shared),
        super::images::IMAGES_STAGE | super::texts::TEXTS_STAGE => {
            none(Worker::new(stage, spec).and_then(|w| w.run(item)))
        }
        other => Err(StreamError::Unsupported(format!(
            "`{other}` is not a step this build of poisongate runs (class, ivf-ask, ivf-search, images, texts)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_settings_round_trip() {
        let jobs = [
            Job::Clustering(ClusteringConfig {
                dims: 7,
                seed: 3,
                ..ClusteringConfig::default()
            }),
            Job::Spectral(SpectralConfig {
                poison_rate: Some(0.1),
                ..SpectralConfig::default()
            }),
            Job::ShiftTest(ShiftConfig::default()),
            Job::ShiftMembers(ShiftConfig {
                k: 4,
                ..ShiftConfig::default()
            }),
        ];
        for job in jobs {
            assert_eq!(Job::decode(&job.spec()).unwrap(), job);
        }
        assert!(Job::decode(&[9, 0, 0, 0, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn a_broken_item_is_an_error_not_a_panic() {
        let spec = Job::Spectral(SpectralConfig::default()).spec();
        let item = ClassItem {
            class: 5,
            n_classes: 2,
            rows: &[0, 1],
            labels: &[0, 0],
            own: &[0, 1],
            more: &[],
            values: &[0.0, 1.0],
            data: &[],
        }
        .encode();
        let err = run_task(CLASS_STAGE, &spec, &item, &[]).unwrap_err();
        assert!(err.to_string().contains("class 5 of 2"), "{err}");
        assert!(run_task(CLASS_STAGE, &spec, &item[..10], &[]).is_err());
        assert!(run_task("nothing", &spec, &item, &[]).is_err());
        assert!(run_task(CLASS_STAGE, &spec, &item, &[&[1u8][..]]).is_err());
    }
}
