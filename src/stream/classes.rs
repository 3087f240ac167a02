//! The streaming scan's per-class work: classes read from the raw view on disk in batches
//! and run here or as tasks ([`per_class`]), a per-class detector's result assembled from its
//! classes, and the shifted-copy test class by class.

use rayon::prelude::*;

use super::remote::{self, ClassItem, Item, Job, Tasks, CLASS_STAGE};
use super::spill::Spill;
use super::wire::Writer;
use super::{StreamError, ROW_BLOCK};
use crate::detect::{shift, Detection, Points};
use crate::embed::{Subset, View};
use crate::progress::Progress;

/// One class's scores and flags (in its rows' order) and its statistic.
pub(super) type ClassResult = remote::Scored;

/// A detector's result over the subset from its classes' results.
pub(super) fn assemble(
    detector: &'static str,
    view: View,
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
        view,
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
pub(super) fn per_class(
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
#[allow(clippy::too_many_arguments)]
pub(super) fn shifted_copies(
    progress: &Progress,
    which: View,
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
        view: which,
        threshold: config.threshold,
        halves,
    };
    let detection = shift::detection(subset.len(), which, &copies.halves, config);
    Ok((detection, copies))
}
