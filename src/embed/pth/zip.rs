//! torch's zip format (torch 1.6 and later): the archive's records found through its central
//! directory (stored, unencrypted, under 4 GiB, as `torch.save` writes them), the one
//! `data.pkl` interpreted, and each storage's record checked against its declared size.

use std::collections::HashMap;

use candle_core::Tensor;

use super::tensors::{declared_storages, materialize_all, tensor_refs};
use super::unpickle;

pub(super) fn read_zip(bytes: &[u8]) -> Result<Vec<(String, Tensor)>, String> {
    let records = zip_records(bytes)?;
    let pickles: Vec<&String> = records
        .keys()
        .filter(|name| *name == "data.pkl" || name.ends_with("/data.pkl"))
        .collect();
    let [pickle] = pickles.as_slice() else {
        return Err(format!(
            "a torch zip archive has one data.pkl record; this one has {}",
            pickles.len()
        ));
    };
    let folder = pickle.strip_suffix("data.pkl").unwrap_or_default();
    if let Some(order) = records.get(&format!("{folder}byteorder")) {
        if *order != b"little" {
            return Err(
                "the byteorder record does not say little; only little-endian files are read"
                    .into(),
            );
        }
    }
    let (state, rest) = unpickle(records[*pickle], "state dict")?;
    if !rest.is_empty() {
        return Err("bytes after the end of data.pkl's pickle".into());
    }
    let refs = tensor_refs(state)?;
    let mut storages = HashMap::new();
    for (key, (dtype, numel)) in declared_storages(&refs)? {
        let name = format!("{folder}data/{key}");
        let record = records
            .get(&name)
            .ok_or_else(|| format!("no record {name} for storage {key}"))?;
        if Some(record.len() as u64) != numel.checked_mul(dtype.size_in_bytes() as u64) {
            return Err(format!(
                "record {name} has {} bytes; storage {key} declares {numel} elements of {} bytes",
                record.len(),
                dtype.size_in_bytes()
            ));
        }
        storages.insert(key.to_string(), *record);
    }
    materialize_all(refs, &storages, bytes.len())
}

/// The records of a zip archive by name: stored, unencrypted, under 4 GiB.
fn zip_records(bytes: &[u8]) -> Result<HashMap<String, &[u8]>, String> {
    let le = |at: usize, n: usize| -> Result<u64, String> {
        let b = at
            .checked_add(n)
            .and_then(|end| bytes.get(at..end))
            .ok_or("the zip archive is cut short or damaged")?;
        Ok(b.iter().rev().fold(0u64, |v, &x| (v << 8) | x as u64))
    };
    // The end-of-central-directory record: 22 bytes and a comment of at most 65,535.
    let lowest = bytes.len().saturating_sub(22 + 0xffff);
    let end = (lowest..=bytes.len().saturating_sub(22))
        .rev()
        .find(|&i| bytes[i..].starts_with(b"PK\x05\x06"))
        .ok_or("no zip end-of-central-directory record (cut short?)")?;
    let (count, dir_size, dir_offset) = (le(end + 10, 2)?, le(end + 12, 4)?, le(end + 16, 4)?);
    if count == 0xffff || dir_size == 0xffff_ffff || dir_offset == 0xffff_ffff {
        return Err("a zip64 archive (over 4 GiB or 65,535 records) is not supported".into());
    }
    let mut records = HashMap::new();
    let mut at = dir_offset as usize;
    for _ in 0..count {
        if le(at, 4)? != 0x0201_4b50 {
            return Err("a damaged zip central directory".into());
        }
        let (flags, method) = (le(at + 8, 2)?, le(at + 10, 2)?);
        let (packed, size) = (le(at + 20, 4)?, le(at + 24, 4)?);
        let (name_len, extra_len, comment_len) =
            (le(at + 28, 2)?, le(at + 30, 2)?, le(at + 32, 2)?);
        let local = le(at + 42, 4)? as usize;
        let name = bytes
            .get(at + 46..at + 46 + name_len as usize)
            .ok_or("a damaged zip central directory")?;
        let name =
            String::from_utf8(name.to_vec()).map_err(|_| "a zip record name is not UTF-8")?;
        if flags & 1 != 0 || method != 0 || packed != size || size == 0xffff_ffff {
            return Err(format!(
                "zip record {name} is compressed, encrypted or zip64; torch.save stores records as they are"
            ));
        }
        if le(local, 4)? != 0x0403_4b50 {
            return Err(format!(
                "zip record {name}: no local header where the directory points"
            ));
        }
        let start = local + 30 + le(local + 26, 2)? as usize + le(local + 28, 2)? as usize;
        let data = bytes
            .get(start..start + size as usize)
            .ok_or_else(|| format!("zip record {name} is cut short"))?;
        if records.insert(name.clone(), data).is_some() {
            return Err(format!("zip record {name} appears twice"));
        }
        at += 46 + (name_len + extra_len + comment_len) as usize;
    }
    Ok(records)
}
