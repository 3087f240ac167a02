//! Writers of small state dicts in both formats, for the tests of `pth` and `mobilenet`, and
//! the state dict most of `pth`'s tests read (two tensors and a transposed view) with the
//! assertion that a file is refused with an error naming it.

use std::path::Path;

use candle_core::Tensor;

/// A tensor of the state dict: a view of the f32 storage `key`.
pub struct Entry<'a> {
    pub name: &'a str,
    pub key: &'a str,
    pub offset: u32,
    pub size: &'a [u32],
    pub stride: &'a [u32],
}

fn unicode(out: &mut Vec<u8>, s: &str) {
    out.push(b'X');
    out.extend((s.len() as u32).to_le_bytes());
    out.extend(s.as_bytes());
}

fn int(out: &mut Vec<u8>, v: u32) {
    out.push(b'J');
    out.extend(v.to_le_bytes());
}

/// The state dict's pickle, opcode for opcode as torch writes one: an OrderedDict of
/// `_rebuild_tensor_v2` calls on persistent storage ids, then its `_metadata` as its state.
/// `legacy` adds the storage id's sixth element (None).
pub fn state_pickle(entries: &[Entry], storages: &[(&str, Vec<f32>)], legacy: bool) -> Vec<u8> {
    let mut p = b"\x80\x02ccollections\nOrderedDict\nq\x00)Rq\x01(".to_vec();
    for e in entries {
        unicode(&mut p, e.name);
        p.extend(b"ctorch._utils\n_rebuild_tensor_v2\n((");
        unicode(&mut p, "storage");
        p.extend(b"ctorch\nFloatStorage\n");
        unicode(&mut p, e.key);
        unicode(&mut p, "cpu");
        let numel = storages
            .iter()
            .find(|(k, _)| *k == e.key)
            .map_or(0, |(_, d)| d.len());
        int(&mut p, numel as u32);
        if legacy {
            p.push(b'N');
        }
        p.extend(b"tQ");
        int(&mut p, e.offset);
        for dims in [e.size, e.stride] {
            p.push(b'(');
            dims.iter().for_each(|&d| int(&mut p, d));
            p.push(b't');
        }
        // requires_grad False, hooks OrderedDict() (the class from memo 0).
        p.extend(b"\x89h\x00)RtR");
    }
    p.extend(b"u}");
    unicode(&mut p, "_metadata");
    p.extend(b"h\x00)Rsb.");
    p
}

fn raw(data: &[f32]) -> Vec<u8> {
    data.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// A legacy-format file.
pub fn legacy(entries: &[Entry], storages: &[(&str, Vec<f32>)]) -> Vec<u8> {
    let mut f = [super::LEGACY_MAGIC, super::LEGACY_PROTOCOL].concat();
    f.extend(b"\x80\x02}(");
    unicode(&mut f, "little_endian");
    f.extend(b"\x88u.");
    f.extend(state_pickle(entries, storages, true));
    f.extend(b"\x80\x02](");
    storages.iter().for_each(|(k, _)| unicode(&mut f, k));
    f.extend(b"e.");
    for (_, data) in storages {
        f.extend((data.len() as u64).to_le_bytes());
        f.extend(raw(data));
    }
    f
}

/// A zip-format file with `pickle` as its data.pkl.
pub fn zip(pickle: Vec<u8>, storages: &[(&str, Vec<f32>)]) -> Vec<u8> {
    let mut records = vec![("archive/data.pkl".to_string(), pickle)];
    for (k, data) in storages {
        records.push((format!("archive/data/{k}"), raw(data)));
    }
    records.push(("archive/version".into(), b"3\n".to_vec()));
    zip_archive(&records)
}

/// A zip archive of stored records, as `torch.save` writes one (without its alignment
/// padding).
pub fn zip_archive(records: &[(String, Vec<u8>)]) -> Vec<u8> {
    let (mut out, mut directory) = (Vec::new(), Vec::new());
    for (name, data) in records {
        let offset = out.len() as u32;
        let crc = crc32fast::hash(data);
        let mut common = vec![20, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        common.extend(crc.to_le_bytes());
        common.extend((data.len() as u32).to_le_bytes());
        common.extend((data.len() as u32).to_le_bytes());
        common.extend((name.len() as u16).to_le_bytes());
        common.extend([0, 0]);
        out.extend(b"PK\x03\x04");
        out.extend(&common);
        out.extend(name.as_bytes());
        out.extend(data);
        directory.extend(b"PK\x01\x02\x14\x00");
        directory.extend(&common);
        directory.extend([0; 10]);
        directory.extend(offset.to_le_bytes());
        directory.extend(name.as_bytes());
    }
    let start = out.len() as u32;
    out.extend(&directory);
    out.extend(b"PK\x05\x06\x00\x00\x00\x00");
    out.extend((records.len() as u16).to_le_bytes());
    out.extend((records.len() as u16).to_le_bytes());
    out.extend((directory.len() as u32).to_le_bytes());
    out.extend(start.to_le_bytes());
    out.extend([0, 0]);
    out
}

/// A legacy file of contiguous f32 tensors, each in its own storage.
pub fn contiguous(tensors: &[(&str, &[usize], Vec<f32>)]) -> Vec<u8> {
    let dims: Vec<(Vec<u32>, Vec<u32>)> = tensors
        .iter()
        .map(|(_, shape, _)| {
            let size: Vec<u32> = shape.iter().map(|&s| s as u32).collect();
            let mut stride = vec![1u32; size.len()];
            for d in (0..size.len().saturating_sub(1)).rev() {
                stride[d] = stride[d + 1] * size[d + 1];
            }
            (size, stride)
        })
        .collect();
    let keys: Vec<String> = (0..tensors.len()).map(|i| i.to_string()).collect();
    let entries: Vec<Entry> = tensors
        .iter()
        .zip(&dims)
        .zip(&keys)
        .map(|(((name, _, _), (size, stride)), key)| Entry {
            name,
            key,
            offset: 0,
            size,
            stride,
        })
        .collect();
    let storages: Vec<(&str, Vec<f32>)> = keys
        .iter()
        .zip(tensors)
        .map(|(k, (_, _, data))| (k.as_str(), data.clone()))
        .collect();
    legacy(&entries, &storages)
}

/// The path the shared state dict's errors name.
pub const PATH: &str = "/models/weights.pth";

/// The storages of the shared state dict.
pub fn storages() -> Vec<(&'static str, Vec<f32>)> {
    vec![
        ("0", vec![0., 1., 2., 3., 4., 5.]),
        ("1", vec![10., 11., 12., 13.]),
    ]
}

/// Two tensors, and a transposed view of the first one's storage.
pub fn entries() -> Vec<Entry<'static>> {
    vec![
        Entry {
            name: "a.weight",
            key: "0",
            offset: 0,
            size: &[2, 3],
            stride: &[3, 1],
        },
        Entry {
            name: "b.bias",
            key: "1",
            offset: 1,
            size: &[2],
            stride: &[1],
        },
        Entry {
            name: "a.weight_t",
            key: "0",
            offset: 0,
            size: &[3, 2],
            stride: &[1, 3],
        },
    ]
}

/// The shared state dict as a legacy file.
pub fn legacy_file() -> Vec<u8> {
    legacy(&entries(), &storages())
}

/// The shared state dict as a zip file.
pub fn zip_file() -> Vec<u8> {
    zip(state_pickle(&entries(), &storages(), false), &storages())
}

/// [`super::parse_state_dict`] on `bytes` as if read from [`PATH`], its error as a string.
pub fn parse(bytes: &[u8]) -> Result<Vec<(String, Tensor)>, String> {
    super::parse_state_dict(Path::new(PATH), bytes).map_err(|e| e.to_string())
}

/// Asserts that `bytes` are refused with an error naming [`PATH`] and saying `needle`.
pub fn refused(bytes: &[u8], needle: &str) {
    let err = parse(bytes).expect_err("an error");
    assert!(err.contains(PATH) && err.contains(needle), "{err}");
}
