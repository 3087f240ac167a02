//! The streaming scan's detection (see the module note of `stream`): the raw view written to
//! disk, the per-class detectors run a batch of classes at a time with the in-memory code, k-NN
//! on the inverted file on disk, and the verdict.

use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

use rayon::prelude::*;

use super::remote::{self, ClassItem, Item, Job, RawSpec, Tasks, CLASS_STAGE};
use super::spill::Spill;
use super::wire::Writer;
use super::{for_row_blocks, ivf, trace, Plan, StreamError, ROW_BLOCK};
use crate::dataset::Dataset;
use crate::detect::knn::NeighbourIndex;
use crate::detect::{clustering, knn, shift, spectral, Detection, Points};
use crate::embed::{raw, EmbedError, Subset, View};
use crate::pipeline::{Analysis, DetectConfig, DetectorKind, Run, ViewRun};
use crate::progress::Progress;
use crate::verdict;
use crate::Error;

/// A size for a message: "3.0 GiB", "512.0 MiB", "1.0 KiB", "12 B".
fn bytes(b: u64) -> String {
    let units = [
        (1u64 << 40, "TiB"),
        (1 << 30, "GiB"),
        (1 << 20, "MiB"),
        (1 << 10, "KiB"),
    ];
    units
        .iter()
        .find(|(size, _)| b >= *size)
        .map_or(format!("{b} B"), |(size, unit)| {
            format!("{:.1} {unit}", b as f64 / *size as f64)
        })
}

#[allow(clippy::too_many_arguments)]
pub(super) fn analyse(
    dataset: &Dataset,
    columns: Spill,
    subset: Subset,
    config: &DetectConfig,
    plan: &Plan,
    work: &Path,
    budget: usize,
    tasks: Option<&dyn Tasks>,
    progress: &Progress,
) -> Result<Analysis, Error> {
    if subset.is_empty() {
        let why = subset.excluded.first().map_or("no rows", |e| e.1);
        return Err(EmbedError::NothingUsable(why.to_string()).into());
    }
    let mut notes = vec![format!(
        "streamed: the in-memory scan of {} rows x {} features was estimated at {}, over the memory limit of {} (--memory-limit); the columns were read one at a time and the raw view kept on disk",
        plan.rows, plan.features, bytes(plan.estimate), bytes(plan.limit)
    )];
    let Some((_, detectors)) = config.plan.iter().find(|(v, _)| *v == View::Raw) else {
        return Err(StreamError::Unsupported(format!(
            "{}: this table is streamed (its in-memory scan was estimated at {}, over the memory limit of {}), and a streaming scan computes the raw view only; run it with --embedder auto or raw, or raise --memory-limit",
            dataset.origin.path, bytes(plan.estimate), bytes(plan.limit)
        ))
        .into());
    };
    for (view, _) in config.plan.iter().filter(|(v, _)| *v != View::Raw) {
        notes.push(format!(
            "the {} view was not computed: a streaming scan computes the raw view only",
            view.name()
        ));
    }
    if let Some(tasks) = tasks {
        notes.push(format!(
            "the raw view, the per-class detectors and the k-NN search ran as tasks on {}; validation, the partition and the verdict ran in this process",
            tasks.describe()
        ));
    }
    if config.device == crate::device::DeviceChoice::Cuda {
        notes.push("--device cuda was not used: a streaming scan runs on the CPU".into());
    }

    // The raw view, on disk.
    let t = Instant::now();
    // One column a row of `columns`, each of every dataset row.
    let (d, n) = (columns.rows, columns.dim);
    let mut centre = vec![0f32; d];
    let mut scale = vec![0f32; d];
    let mut column = vec![0f32; n];
    let mut picked = Vec::with_capacity(subset.len());
    for j in 0..d {
        columns.read_rows(j, &mut column)?;
        picked.clear();
        picked.extend(subset.rows.iter().map(|&r| column[r as usize]));
        (centre[j], scale[j]) = raw::column_scale(&mut picked);
    }
    drop((column, picked));
    let view = Spill::create(&work.join("raw.f32"), subset.len(), d)?;
    let (all_same, non_finite) = match tasks {
        Some(tasks) => {
            // The columns file is not needed: the tasks read the input.
            let spec = RawSpec {
                files: plan
                    .input
                    .files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect(),
                columns: match &dataset.payload {
                    crate::dataset::Payload::Spilled(table) => table.columns.clone(),
                    _ => Vec::new(),
                },
                centre,
                scale,
            };
            embed_by(tasks, &spec, &view, &subset, n)?
        }
        None => {
            let mut cursor = 0usize;
            let mut scaled = Vec::new();
            let mut first: Option<Vec<f32>> = None;
            let mut all_same = true;
            let mut non_finite = None;
            for_row_blocks(&columns, d, n, |start, block| {
                scaled.clear();
                let end = start + block.len() / d;
                let from = cursor;
                while cursor < subset.len() && (subset.rows[cursor] as usize) < end {
                    let r = subset.rows[cursor] as usize - start;
                    let at = scaled.len();
                    scaled.extend(
                        block[r * d..(r + 1) * d]
                            .iter()
                            .zip(&centre)
                            .zip(&scale)
                            .map(|((&x, c), s)| (x - c) * s),
                    );
                    let out = &scaled[at..];
                    if non_finite.is_none() && out.iter().any(|v| !v.is_finite()) {
                        non_finite = Some(subset.rows[cursor]);
                    }
                    match &first {
                        None => first = Some(out.to_vec()),
                        Some(f) => all_same &= f.as_slice() == out,
                    }
                    cursor += 1;
                }
                view.write_rows(from, &scaled)
            })?;
            (all_same, non_finite)
        }
    };
    // The columns are not read again: their file goes now, not at the end.
    columns.remove()?;
    if let Some(row) = non_finite {
        return Err(EmbedError::NonFinite {
            view: View::Raw.name().to_string(),
            row,
        }
        .into());
    }
    let view_seconds = t.elapsed().as_secs_f64();
    trace("raw view");
    let detectors: &[DetectorKind] = if all_same {
        notes.push("every row has the same raw embedding: no detector can tell samples apart in that view, so none ran on it".into());
        &[]
    } else {
        detectors
    };

    let all: Vec<usize> = (0..subset.n_classes).collect();
    // A per-class detector over every class of the view on disk.
    let by_class = |detector: &'static str,
                    parameters: Vec<(String, String)>,
                    job: Job|
     -> Result<Detection, StreamError> {
        let none = |_: usize, _: &[u32]| Vec::new();
        let answers = per_class(
            progress,
            &view,
            &subset,
            budget,
            &all,
            &[],
            &job,
            none,
            tasks,
        )?;
        let outcomes = answers
            .into_iter()
            .map(|(c, rows, answer)| Ok((c, rows, remote::read_scored(&answer)?)))
            .collect::<Result<Vec<_>, StreamError>>()?;
        Ok(assemble(detector, parameters, &subset, outcomes))
    };
    let mut runs = Vec::new();
    let mut votes = Vec::new();
    for detector in detectors {
        if progress.cancelled() {
            return Err(EmbedError::Cancelled.into());
        }
        let t = Instant::now();
        let detection = match detector {
            DetectorKind::Knn => {
                if config.knn.index != NeighbourIndex::Ivf {
                    notes.push(format!(
                        "k-NN used the inverted-file search (--knn-index {} applies in memory): a streaming scan searches the file on disk, and states the recall it measured",
                        format!("{:?}", config.knn.index).to_lowercase()
                    ));
                }
                let k = config.knn.k.min(subset.len().saturating_sub(1));
                let spinner = progress.spinner("k-NN (inverted file on disk)");
                let (nn, report) = ivf::neighbours(
                    &view,
                    k,
                    config.knn.probe,
                    config.knn.min_recall,
                    work,
                    tasks,
                    budget,
                    progress,
                )?;
                spinner.finish_and_clear();
                let (detection, v) =
                    knn::judge(nn, &subset, k, NeighbourIndex::Ivf, report, View::Raw);
                votes.push((View::Raw, v));
                detection
            }
            DetectorKind::Clustering => by_class(
                "clustering",
                clustering::parameters(&config.clustering),
                Job::Clustering(config.clustering.clone()),
            )?,
            DetectorKind::Spectral => by_class(
                "spectral",
                spectral::parameters(&config.spectral),
                Job::Spectral(config.spectral.clone()),
            )?,
        };
        trace(detection.detector);
        runs.push(Run {
            detection,
            seconds: t.elapsed().as_secs_f64(),
        });
    }

    // The shifted-copy test on the judged view (the raw view), class by class.
    let (excluded, judged) = verdict::neighbour_flags(&subset, &votes, &config.verdict);
    let mut copies = None;
    if judged == Some(View::Raw) && config.shift.threshold > 0.0 {
        let t = Instant::now();
        let (detection, found) = shifted_copies(
            progress,
            &view,
            &subset,
            &excluded,
            budget,
            &config.shift,
            tasks,
        )?;
        runs.push(Run {
            detection,
            seconds: t.elapsed().as_secs_f64(),
        });
        copies = Some(found);
    }
    trace("shift");
    let t = Instant::now();
    let mut verdict = verdict::decide(&subset, &votes, copies.as_ref(), None, &config.verdict);
    verdict.notes.splice(0..0, notes);
    Ok(Analysis {
        device: "cpu",
        subset,
        views: vec![ViewRun {
            view: View::Raw,
            dim: d,
            training: None,
            embedding: None,
            seconds: view_seconds,
        }],
        runs,
        verdict,
        verdict_config: config.verdict.clone(),
        judged_view: judged,
        shift_threshold: copies.as_ref().map(|c| c.threshold),
        verdict_seconds: t.elapsed().as_secs_f64(),
    })
}

/// The raw view computed by `tasks` (each shard of the input's `n` rows), written to `view`
/// (the subset's rows): whether every row is the same, and the first dataset row whose view
/// is not finite. Fails unless the shards cover every row once.
fn embed_by(
    tasks: &dyn Tasks,
    spec: &RawSpec,
    view: &Spill,
    subset: &Subset,
    n: usize,
) -> Result<(bool, Option<u32>), StreamError> {
    let d = spec.columns.len();
    let shards = Mutex::new(Vec::new());
    let non_finite = Mutex::new(None::<u32>);
    let sink = |first: usize, values: &[f32]| -> Result<(), StreamError> {
        if d == 0 || values.len() % d != 0 {
            return Err(StreamError::Unsupported(format!(
                "the raw view of the shard at row {first} has {} values, not rows of {d}",
                values.len()
            )));
        }
        let rows = values.len() / d;
        if first + rows > n {
            return Err(StreamError::Unsupported(format!(
                "the raw view of the shard at row {first} has {rows} rows: past the input's {n}"
            )));
        }
        let from = subset.rows.partition_point(|&r| (r as usize) < first);
        let to = subset
            .rows
            .partition_point(|&r| (r as usize) < first + rows);
        let mut kept = Vec::with_capacity((to - from) * d);
        let mut bad = None;
        for &r in &subset.rows[from..to] {
            let i = r as usize - first;
            let row = &values[i * d..(i + 1) * d];
            if bad.is_none() && row.iter().any(|v| !v.is_finite()) {
                bad = Some(r);
            }
            kept.extend_from_slice(row);
        }
        view.write_rows(from, &kept)?;
        if let Some(r) = bad {
            let mut worst = non_finite.lock().unwrap_or_else(|e| e.into_inner());
            *worst = Some(worst.map_or(r, |w| w.min(r)));
        }
        shards
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((first, rows));
        Ok(())
    };
    tasks.embed(spec, &sink)?;
    let mut shards = shards.into_inner().unwrap_or_else(|e| e.into_inner());
    shards.sort_unstable();
    let mut next = 0;
    for &(first, rows) in &shards {
        if first != next {
            return Err(StreamError::Unsupported(format!(
                "the raw view's shards do not cover the input once: one starts at row {first}, the next row due was {next}"
            )));
        }
        next += rows;
    }
    if next != n {
        return Err(StreamError::Unsupported(format!(
            "the raw view's shards cover {next} of the input's {n} rows"
        )));
    }
    // Whether every row is the first one, in one pass.
    let mut first = vec![0f32; d];
    view.read_rows(0, &mut first)?;
    let mut all_same = true;
    view.for_blocks(ROW_BLOCK, |_, block| {
        all_same &= block.chunks(d).all(|row| row == first.as_slice());
        Ok(())
    })?;
    Ok((
        all_same,
        non_finite.into_inner().unwrap_or_else(|e| e.into_inner()),
    ))
}

/// One class's scores and flags (in its rows' order) and its statistic.
type ClassResult = remote::Scored;

/// A detector's result over the subset from its classes' results.
fn assemble(
    detector: &'static str,
    parameters: Vec<(String, String)>,
    subset: &Subset,
    outcomes: Vec<(usize, Vec<u32>, Option<ClassResult>)>,
) -> Detection {
    let n = subset.len();
    let mut scores = vec![0f32; n];
    let mut flags = vec![false; n];
    let mut classes = Vec::new();
    for (_, rows, outcome) in outcomes {
        let Some((s, f, statistic)) = outcome else {
            continue;
        };
        for ((&r, s), f) in rows.iter().zip(s).zip(f) {
            scores[r as usize] = s;
            flags[r as usize] = f;
        }
        classes.push(statistic);
    }
    Detection {
        detector,
        view: View::Raw,
        parameters,
        scores,
        flags,
        classes,
    }
}

/// Each class's members (subset positions, ascending).
fn members(subset: &Subset) -> Vec<Vec<u32>> {
    let mut members = vec![Vec::new(); subset.n_classes];
    for (i, &c) in subset.labels.iter().enumerate() {
        members[c as usize].push(i as u32);
    }
    members
}

/// A class, its members (subset positions) and a per-class step's answer for it.
type ClassAnswer = (usize, Vec<u32>, Vec<u8>);

/// Runs `job` on each class of `which`, with `data(class, rows)` (the class's data, given its
/// rows). A class's points hold its rows and the rows `extra[class]`, read from `view`, in
/// subset order; the job sees its own rows and its extra rows as positions among them
/// (`extra` in the order given). Classes are read in batches of at most `budget` bytes of rows
/// (at least one class a batch), and a batch runs in parallel here or, with `tasks`, as their
/// items; a batch of one class run here is used as read, without a copy. Returns each class's
/// members (subset positions) and its answer.
#[allow(clippy::too_many_arguments)]
fn per_class(
    progress: &Progress,
    view: &Spill,
    subset: &Subset,
    budget: usize,
    which: &[usize],
    extra: &[Vec<u32>],
    job: &Job,
    data: impl Fn(usize, &[u32]) -> Vec<u8> + Sync,
    tasks: Option<&dyn Tasks>,
) -> Result<Vec<ClassAnswer>, StreamError> {
    let members = members(subset);
    let d = view.dim;
    let no_extra = Vec::new();
    let extra_of = |c: usize| extra.get(c).unwrap_or(&no_extra);
    // The class's rows and its extra rows, ascending.
    let wanted = |c: usize| -> Vec<u32> {
        let mut rows = members[c].clone();
        rows.extend_from_slice(extra_of(c));
        rows.sort_unstable();
        rows.dedup();
        rows
    };
    // Where the class's own and extra rows are among `rows` (every one is, and it is sorted).
    let positions = |c: usize, rows: &[u32]| {
        let at = |r: &u32| rows.binary_search(r).unwrap_or_default() as u32;
        let own: Vec<u32> = members[c].iter().map(at).collect();
        let more: Vec<u32> = extra_of(c).iter().map(at).collect();
        (own, more)
    };
    let labels_of =
        |rows: &[u32]| -> Vec<u32> { rows.iter().map(|&r| subset.labels[r as usize]).collect() };
    let run = |c: usize, rows: Vec<u32>, values: Vec<f32>| {
        let (own, more) = positions(c, &rows);
        let class_data = data(c, &rows);
        let local_subset = Subset {
            labels: labels_of(&rows),
            rows,
            n_classes: subset.n_classes,
            excluded: Vec::new(),
        };
        let points = Points::from_vec(values, d, &local_subset, View::Raw);
        let answer = job.run(&points, c, &own, &more, &class_data)?;
        Ok((c, members[c].clone(), answer))
    };
    let spec = job.spec();
    let mut out = Vec::with_capacity(which.len());
    let mut first = 0;
    while first < which.len() {
        // The next batch of classes.
        let mut end = first;
        let mut size = 0usize;
        while end < which.len() {
            let c = which[end];
            let more = (members[c].len() + extra_of(c).len()) * d * 4;
            if end > first && size + more > budget {
                break;
            }
            size += more;
            end += 1;
        }
        if progress.cancelled() {
            return Err(StreamError::Interrupted);
        }
        let batch = &which[first..end];
        if let ([c], None) = (batch, tasks) {
            let rows = wanted(*c);
            let values = view.gather(&rows, ROW_BLOCK)?;
            out.push(run(*c, rows, values)?);
        } else {
            let mut union: Vec<u32> = batch.iter().flat_map(|&c| wanted(c)).collect();
            union.sort_unstable();
            union.dedup();
            let values = view.gather(&union, ROW_BLOCK)?;
            let local = |rows: &[u32]| {
                let mut local = Vec::with_capacity(rows.len() * d);
                for r in rows {
                    // Every wanted row is in the union, which is sorted.
                    let at = union.binary_search(r).unwrap_or_default();
                    local.extend_from_slice(&values[at * d..(at + 1) * d]);
                }
                local
            };
            match tasks {
                None => {
                    let results = batch
                        .par_iter()
                        .map(|&c| {
                            let rows = wanted(c);
                            let values = local(&rows);
                            run(c, rows, values)
                        })
                        .collect::<Result<Vec<_>, StreamError>>()?;
                    out.extend(results);
                }
                Some(tasks) => {
                    let items: Vec<Item> = batch
                        .iter()
                        .map(|&c| {
                            let rows = wanted(c);
                            let (own, more) = positions(c, &rows);
                            ClassItem {
                                class: c,
                                n_classes: subset.n_classes,
                                labels: &labels_of(&rows),
                                own: &own,
                                more: &more,
                                values: &local(&rows),
                                data: &data(c, &rows),
                                rows: &rows,
                            }
                            .encode()
                            .into()
                        })
                        .collect();
                    let answers = tasks.map(CLASS_STAGE, &spec, items)?;
                    if answers.len() != batch.len() {
                        return Err(StreamError::Unsupported(format!(
                            "the per-class step answered {} of {} classes",
                            answers.len(),
                            batch.len()
                        )));
                    }
                    for (&c, answer) in batch.iter().zip(answers) {
                        out.push((c, members[c].clone(), answer));
                    }
                }
            }
        }
        first = end;
    }
    Ok(out)
}

/// [`shift::run`] class by class: each class is read with its sample of the other classes.
fn shifted_copies(
    progress: &Progress,
    view: &Spill,
    subset: &Subset,
    excluded: &[bool],
    budget: usize,
    config: &shift::ShiftConfig,
    tasks: Option<&dyn Tasks>,
) -> Result<(Detection, shift::Copies), StreamError> {
    let order = shift::shuffled(subset.len(), config.seed);
    let others: Vec<Vec<u32>> = (0..subset.n_classes)
        .map(|c| shift::others_of(&order, &subset.labels, c as u32, config.sample))
        .collect();
    drop(order);
    let all: Vec<usize> = (0..subset.n_classes).collect();
    // Each class's data: whether each of its rows is left out of the mixing samples.
    let flags = |_: usize, rows: &[u32]| {
        let mut w = Writer::new();
        w.bools(
            &rows
                .iter()
                .map(|&r| excluded[r as usize])
                .collect::<Vec<_>>(),
        );
        w.finish()
    };
    let job = Job::ShiftTest(config.clone());
    let tested = per_class(
        progress, view, subset, budget, &all, &others, &job, flags, tasks,
    )?;
    let mut halves = Vec::new();
    let mut splits = Vec::new();
    for (class, _, answer) in tested {
        if let Some((side, pair)) = remote::read_split(&answer)? {
            halves.extend(pair);
            splits.push((class, side));
        }
    }
    // The member rule, on the classes whose halves fired.
    let fired = shift::firing(&halves, config);
    let mut classes: Vec<usize> = fired.iter().map(|&(p, _)| splits[p].0).collect();
    classes.dedup();
    let fired_of = |class: usize, _: &[u32]| {
        let of_class: Vec<(usize, usize, &[bool])> = fired
            .iter()
            .filter(|&&(p, _)| splits[p].0 == class)
            .map(|&(p, h)| (p, h, splits[p].1.as_slice()))
            .collect();
        remote::members_data(&of_class)
    };
    let job = Job::ShiftMembers(config.clone());
    let flagged = per_class(
        progress,
        view,
        subset,
        budget,
        &classes,
        &[],
        &job,
        fired_of,
        tasks,
    )?;
    for (_, _, answer) in flagged {
        for (p, h, flagged) in remote::read_members(&answer)? {
            let half = halves.get_mut(2 * p + h).ok_or_else(|| {
                StreamError::Unsupported(format!(
                    "the member rule answered for half {p}.{h}, which was not tested"
                ))
            })?;
            half.fired = true;
            half.flagged = flagged;
        }
    }
    let copies = shift::Copies {
        view: View::Raw,
        threshold: config.threshold,
        halves,
    };
    let detection = shift::detection(subset.len(), View::Raw, &copies.halves, config);
    Ok((detection, copies))
}
