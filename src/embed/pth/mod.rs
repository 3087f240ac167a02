//! PyTorch `.pth` state dicts (what `torch.save(model.state_dict(), f)` writes), read without
//! running anything, in both of torch's formats:
//!
//! - legacy (torch before 1.6, or `_use_new_zipfile_serialization=False`; torchvision's older
//!   weights such as `mobilenet_v2-b0353104.pth`): five pickles in a row (a magic number, the
//!   protocol version 1001, a `sys_info` dict, the state dict, the list of storage keys), then
//!   each listed storage as a little-endian u64 element count and its raw little-endian
//!   elements;
//! - zip (torch 1.6 and later): `<folder>/data.pkl`, the state dict's pickle, and each storage
//!   as an uncompressed record `<folder>/data/<key>`.
//!
//! A tensor in the state dict is `torch._utils._rebuild_tensor_v2(storage, offset, size,
//! stride, requires_grad, hooks)` (perhaps inside `_rebuild_parameter`), its storage a
//! persistent id `('storage', torch.FloatStorage, key, location, numel)`.
//!
//! The pickles are run by candle's symbolic interpreter (`candle_core::pickle::Stack`), which
//! builds a tree of `Object`s and calls nothing, but does not guard against hostile bytes: an
//! integer of more than 8 bytes overflows a shift, a string's length is allocated before it is
//! read, and each memo reference copies an object, so a few hundred bytes can ask for
//! gigabytes. Each pickle is therefore first checked here by `scan`: only opcodes that
//! candle knows, every argument inside the bytes, only the globals a state dict needs
//! ([`ALLOWED_GLOBALS`]), and a bound on the nesting and size of what the interpreter will
//! build. Every tensor's extent is
//! checked against its storage and every storage against the bytes that remain: a damaged,
//! truncated or hostile file is an error naming it, never a panic or a huge allocation.
//!
//! Zip files are read here too, not with candle's `pickle::read_all`, which checks no global
//! (it skips entries that are not tensor rebuilds, printing those it fails on to stderr) and
//! allocates a tensor's declared size before reading its record. Only stored (uncompressed)
//! records in archives under 4 GiB are read, which is what `torch.save` writes; CRCs are not
//! checked (the SHA-256 of known weights is).
//!
//! This file holds the public API, the legacy reader and the call into candle's interpreter;
//! `scan` is the pickle pre-scanner, `zip` the zip reader, `tensors` turns the interpreted
//! state dict into tensors and copies them out of their storages, and `testing` writes the
//! small files the tests read.

use std::collections::HashMap;
use std::path::Path;

use candle_core::pickle::{Object, Stack};
use candle_core::Tensor;

use super::EmbedError;
use tensors::{declared_storages, materialize_all, tensor_refs};

mod scan;
mod tensors;
#[cfg(test)]
pub(crate) mod testing;
mod zip;

/// The globals a state dict's pickle may name, as (module, name). A pickle naming any other
/// is refused before it is interpreted.
pub const ALLOWED_GLOBALS: [(&str, &str); 8] = [
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    ("collections", "OrderedDict"),
    ("torch", "FloatStorage"),
    ("torch", "HalfStorage"),
    ("torch", "DoubleStorage"),
    ("torch", "LongStorage"),
    ("torch", "IntStorage"),
];

/// The pickles that open a legacy file: the magic number 0x1950a86a20f9469cfc6c (a LONG1 of
/// ten bytes, which candle's interpreter cannot decode) and the protocol version 1001.
const LEGACY_MAGIC: &[u8] = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.";
const LEGACY_PROTOCOL: &[u8] = b"\x80\x02\x4d\xe9\x03.";

/// The tensors of the state dict in `path` with their names, sorted by name (candle's
/// interpreter does not keep the file's order): contiguous, on the CPU, in the dtype of their
/// storage.
pub fn read_state_dict(path: &Path) -> Result<Vec<(String, Tensor)>, EmbedError> {
    let bytes =
        std::fs::read(path).map_err(|e| file_error(path, format!("cannot read it ({e})")))?;
    parse_state_dict(path, &bytes)
}

/// [`read_state_dict`] on the file's bytes; `path` only names the file in errors.
pub fn parse_state_dict(path: &Path, bytes: &[u8]) -> Result<Vec<(String, Tensor)>, EmbedError> {
    let parsed = if bytes.starts_with(b"PK\x03\x04") {
        zip::read_zip(bytes)
    } else {
        read_legacy(bytes)
    };
    parsed.map_err(|problem| {
        file_error(
            path,
            format!("not a readable PyTorch state dict: {problem}"),
        )
    })
}

fn file_error(path: &Path, problem: String) -> EmbedError {
    EmbedError::File {
        path: path.to_path_buf(),
        problem,
    }
}

fn read_legacy(bytes: &[u8]) -> Result<Vec<(String, Tensor)>, String> {
    let rest = bytes.strip_prefix(LEGACY_MAGIC).ok_or(
        "neither a zip archive nor torch's legacy format (no magic number; the file may be cut short)",
    )?;
    let rest = rest
        .strip_prefix(LEGACY_PROTOCOL)
        .ok_or("legacy format, but not protocol version 1001 (or cut short)")?;
    let (sys_info, rest) = unpickle(rest, "sys_info")?;
    let little = match sys_info {
        Object::Dict(entries) => entries.into_iter().find_map(|(k, v)| match (k, v) {
            (Object::Unicode(k), Object::Bool(v)) if k == "little_endian" => Some(v),
            _ => None,
        }),
        _ => None,
    };
    if little != Some(true) {
        return Err(
            "sys_info does not say little-endian; only little-endian files are read".into(),
        );
    }
    let (state, rest) = unpickle(rest, "state dict")?;
    let refs = tensor_refs(state)?;
    let declared = declared_storages(&refs)?;
    let (keys, mut rest) = unpickle(rest, "storage key list")?;
    let Object::List(keys) = keys else {
        return Err("the storage key list is not a list".into());
    };
    let mut storages = HashMap::new();
    for key in keys {
        let Object::Unicode(key) = key else {
            return Err("a storage key is not a string".into());
        };
        let &(dtype, numel) = declared
            .get(key.as_str())
            .ok_or_else(|| format!("storage {key} is listed, but no tensor uses it"))?;
        let count = rest
            .get(..8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
            .ok_or_else(|| format!("cut short before storage {key}"))?;
        if count != numel {
            return Err(format!(
                "storage {key} holds {count} elements, but its tensors say {numel}"
            ));
        }
        let len = numel
            .checked_mul(dtype.size_in_bytes() as u64)
            .filter(|&len| len <= (rest.len() - 8) as u64)
            .ok_or_else(|| {
                format!(
                    "cut short: storage {key} needs {numel} elements of {} bytes, {} bytes remain",
                    dtype.size_in_bytes(),
                    rest.len() - 8
                )
            })? as usize;
        if storages.insert(key.clone(), &rest[8..8 + len]).is_some() {
            return Err(format!("storage {key} is listed twice"));
        }
        rest = &rest[8 + len..];
    }
    if !rest.is_empty() {
        return Err(format!(
            "{} unexpected bytes after the last storage",
            rest.len()
        ));
    }
    materialize_all(refs, &storages, bytes.len())
}

/// Runs the pickle at the start of `bytes` through candle's interpreter once [`scan::scan`] has
/// passed it; returns its object and the bytes after it.
fn unpickle<'a>(bytes: &'a [u8], what: &str) -> Result<(Object, &'a [u8]), String> {
    let len = scan::scan(bytes).map_err(|p| format!("the {what} pickle: {p}"))?;
    let mut reader = &bytes[..len];
    let mut stack = Stack::empty();
    stack
        .read_loop(&mut reader)
        .and_then(|()| stack.finalize())
        .map(|object| (object, &bytes[len..]))
        .map_err(|e| format!("the {what} pickle: {e}"))
}

#[cfg(test)]
mod tests {
    use candle_core::DType;

    use super::testing::{legacy_file, parse, refused, zip_file, PATH};

    #[test]
    fn legacy_and_zip_files_round_trip() {
        for bytes in [legacy_file(), zip_file()] {
            let tensors = parse(&bytes).unwrap();
            let names: Vec<&str> = tensors.iter().map(|(n, _)| n.as_str()).collect();
            assert_eq!(names, ["a.weight", "a.weight_t", "b.bias"]);
            let (a, t, b) = (&tensors[0].1, &tensors[1].1, &tensors[2].1);
            assert_eq!(a.dtype(), DType::F32);
            assert_eq!(a.to_vec2::<f32>().unwrap(), [[0., 1., 2.], [3., 4., 5.]]);
            assert_eq!(b.to_vec1::<f32>().unwrap(), [11., 12.]);
            assert_eq!(t.to_vec2::<f32>().unwrap(), [[0., 3.], [1., 4.], [2., 5.]]);
            assert!(t.is_contiguous());
        }
    }

    #[test]
    fn truncated_files_are_errors_naming_the_file() {
        for bytes in [legacy_file(), zip_file()] {
            for cut in 0..bytes.len() {
                let err = parse(&bytes[..cut]).expect_err("a truncated file is an error");
                assert!(err.contains(PATH), "cut at {cut}: {err}");
            }
        }
        let whole = legacy_file();
        refused(&whole[..whole.len() - 1], "cut short");
    }
}
