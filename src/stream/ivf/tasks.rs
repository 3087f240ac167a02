//! The inverted-file search's partitions as tasks (the Ray engine, [`super::super::remote`]):
//! which partitions a partition's queries ask, then their search in those, each run by the
//! same functions as the search on disk ([`super::ask`], [`super::scan_asked`]).

use std::collections::HashMap;

use super::{ask, row_norms, scan_asked, Layout};
use crate::stream::remote::{Item, Tasks};
use crate::stream::wire::{Reader, Writer};
use crate::stream::StreamError;

impl Layout {
    /// [`Layout::search`] of the queries of partitions `wave` (each partition's rows), by
    /// `tasks`: first which partitions each one's queries ask ([`ASK_STAGE`]), then the search
    /// in those ([`SEARCH_STAGE`]). A partition is shared with the tasks once, the first time
    /// one asks it (`shared` holds the handles).
    pub(super) fn search_by(
        &self,
        tasks: &dyn Tasks,
        wave: &[usize],
        k: usize,
        probe: usize,
        shared: &mut HashMap<usize, u64>,
    ) -> Result<Vec<(usize, Vec<u32>)>, StreamError> {
        let d = self.ordered.dim;
        let mut spec = Writer::new();
        spec.usize(d).usize(probe).f32s(&self.centres);
        // Each partition's queries, read once for both steps.
        let queries = wave
            .iter()
            .map(|&c| Ok(self.partition(c)?.0))
            .collect::<Result<Vec<Vec<f32>>, StreamError>>()?;
        let items = queries
            .iter()
            .map(|q| {
                let mut w = Writer::new();
                w.f32s(q);
                w.finish().into()
            })
            .collect();
        let asked = tasks.map(ASK_STAGE, &spec.finish(), items)?;
        if asked.len() != wave.len() {
            return Err(StreamError::Unsupported(format!(
                "the k-NN partition step answered {} of {} partitions",
                asked.len(),
                wave.len()
            )));
        }
        let mut items = Vec::with_capacity(wave.len());
        for ((&c, asked), queries) in wave.iter().zip(asked).zip(&queries) {
            let ids = &self.original[self.start[c]..self.start[c + 1]];
            let mut w = Writer::new();
            w.f32s(queries).u32s(ids);
            let asked = read_asked(&asked)?;
            w.usize(asked.len());
            let mut handles = Vec::with_capacity(asked.len());
            for (p, asking) in asked {
                if p >= self.centre_norms.len() {
                    return Err(StreamError::Unsupported(format!(
                        "the k-NN partition step named partition {p} of {}",
                        self.centre_norms.len()
                    )));
                }
                w.usize(p).u32s(&asking);
                let handle = match shared.get(&p) {
                    Some(&h) => h,
                    None => {
                        let (rows, original) = self.partition(p)?;
                        let mut blob = Writer::new();
                        blob.f32s(&rows).u32s(original);
                        let h = tasks.share(blob.finish())?;
                        shared.insert(p, h);
                        h
                    }
                };
                handles.push(handle);
            }
            items.push(Item {
                bytes: w.finish(),
                shared: handles,
            });
        }
        let mut spec = Writer::new();
        spec.usize(k).usize(d);
        let answers = tasks.map(SEARCH_STAGE, &spec.finish(), items)?;
        if answers.len() != wave.len() {
            return Err(StreamError::Unsupported(format!(
                "the k-NN search step answered {} of {} partitions",
                answers.len(),
                wave.len()
            )));
        }
        let mut out = Vec::with_capacity(wave.len());
        for (&c, answer) in wave.iter().zip(answers) {
            let mut r = Reader::new(&answer, "a k-NN partition's neighbours");
            let found = r.u32s()?;
            r.end()?;
            let rows = self.start[c + 1] - self.start[c];
            if found.len() != rows * k {
                return Err(StreamError::Unsupported(format!(
                    "a k-NN partition's search answered {} neighbours for {rows} rows of {k}",
                    found.len()
                )));
            }
            out.push((c, found));
        }
        Ok(out)
    }
}

/// The stage that finds which partitions a partition's queries ask.
pub(crate) const ASK_STAGE: &str = "ivf-ask";
/// The stage that searches a partition's queries in the partitions they ask.
pub(crate) const SEARCH_STAGE: &str = "ivf-search";

/// [`ASK_STAGE`]'s spec: the dimension, the probe and the centres; an item: the queries; the
/// answer: for each partition asked, its number and the queries asking it.
pub(crate) fn run_ask(spec: &[u8], item: &[u8]) -> Result<Vec<u8>, StreamError> {
    let mut r = Reader::new(spec, "the k-NN partition search's settings");
    let (d, probe, centres) = (r.usize()?, r.usize()?, r.f32s()?);
    r.end()?;
    let mut r = Reader::new(item, "a k-NN partition's queries");
    let queries = r.f32s()?;
    r.end()?;
    if d == 0 || centres.len() % d != 0 || queries.len() % d != 0 {
        return Err(StreamError::Unsupported(format!(
            "a k-NN partition's queries ({} values) or centres ({}) are not rows of {d}",
            queries.len(),
            centres.len()
        )));
    }
    let norms = row_norms(&centres, d);
    let asking = ask(&centres, &norms, &queries, d, probe, false);
    let mut w = Writer::new();
    let asked: Vec<(usize, &Vec<u32>)> = asking
        .iter()
        .enumerate()
        .filter(|(_, a)| !a.is_empty())
        .collect();
    w.usize(asked.len());
    for (c, queries) in asked {
        w.usize(c).u32s(queries);
    }
    Ok(w.finish())
}

fn read_asked(bytes: &[u8]) -> Result<Vec<(usize, Vec<u32>)>, StreamError> {
    let mut r = Reader::new(bytes, "a k-NN partition's asked partitions");
    let asked = (0..r.usize()?)
        .map(|_| Ok((r.usize()?, r.u32s()?)))
        .collect::<Result<Vec<_>, StreamError>>()?;
    r.end()?;
    Ok(asked)
}

/// [`SEARCH_STAGE`]'s spec: `k` and the dimension; an item: the queries, their rows, and each
/// asked partition's number and asking queries; `shared`: each asked partition's rows and row
/// numbers, in the item's order. The answer: `k` rows a query.
pub(crate) fn run_search(
    spec: &[u8],
    item: &[u8],
    shared: &[&[u8]],
) -> Result<Vec<u8>, StreamError> {
    let mut r = Reader::new(spec, "the k-NN search's settings");
    let (k, d) = (r.usize()?, r.usize()?);
    r.end()?;
    let mut r = Reader::new(item, "a k-NN partition's search");
    let queries = r.f32s()?;
    let ids = r.u32s()?;
    let mut parts = Vec::new();
    for _ in 0..r.usize()? {
        parts.push((r.usize()?, r.u32s()?));
    }
    r.end()?;
    if parts.len() != shared.len() {
        return Err(StreamError::Unsupported(format!(
            "a k-NN partition's search asks {} partitions and was given {}",
            parts.len(),
            shared.len()
        )));
    }
    let mut rows = Vec::with_capacity(parts.len());
    for blob in shared {
        let mut r = Reader::new(blob, "a k-NN partition's rows");
        rows.push((r.f32s()?, r.u32s()?));
        r.end()?;
    }
    let m = ids.len();
    let broken = d == 0
        || k == 0
        || queries.len() != m * d
        || parts
            .iter()
            .any(|(_, asked)| asked.iter().any(|&q| q as usize >= m))
        || rows
            .iter()
            .any(|(values, original)| values.len() != original.len() * d);
    if broken {
        return Err(StreamError::Unsupported(format!(
            "a k-NN partition's search does not hold together ({m} queries, {} values, k {k}, dimension {d})",
            queries.len()
        )));
    }
    // The partitions in the order the single-machine search visits them (ascending).
    let mut order: Vec<usize> = (0..parts.len()).collect();
    order.sort_by_key(|&i| parts[i].0);
    let asking: Vec<Vec<u32>> = order
        .iter()
        .map(|&i| std::mem::take(&mut parts[i].1))
        .collect();
    let found = scan_asked(&asking, &queries, &ids, k, d, false, |j, buffer| {
        let (values, original) = &rows[order[j]];
        buffer.clear();
        buffer.extend_from_slice(values);
        Ok(original.as_slice())
    })?;
    let mut w = Writer::new();
    w.u32s(&found);
    Ok(w.finish())
}
