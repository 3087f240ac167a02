//! The tensors of an interpreted state dict: each entry's `_rebuild_tensor_v2` call read into
//! a [`TensorRef`] (storage key, dtype, offset, size, stride), the storages' declarations
//! checked against each other, and each tensor copied contiguous out of its storage's bytes
//! once its extent is checked to lie inside them.

use std::collections::{HashMap, HashSet};

use candle_core::pickle::Object;
use candle_core::{DType, Device, Tensor};

/// Dimensions of a tensor, and the product of its non-zero sizes.
const MAX_RANK: usize = 16;
const MAX_ELEMENTS: u64 = 1 << 40;

/// A tensor as the state dict describes it, before its storage is read.
pub(super) struct TensorRef {
    name: String,
    key: String,
    dtype: DType,
    /// Elements in the storage, as declared.
    numel: u64,
    offset: u64,
    size: Vec<u64>,
    stride: Vec<u64>,
}

fn kind(object: &Object) -> &'static str {
    match object {
        Object::Class { .. } => "a global",
        Object::Int(_) | Object::Long(_) => "an integer",
        Object::Float(_) => "a float",
        Object::Unicode(_) => "a string",
        Object::Bool(_) => "a bool",
        Object::None => "None",
        Object::Tuple(_) => "a tuple",
        Object::List(_) => "a list",
        Object::Mark => "a mark",
        Object::Dict(_) => "a dict",
        Object::Reduce { .. } => "a call",
        Object::Build { .. } => "a built object",
        Object::PersistentLoad(_) => "a persistent id",
    }
}

fn is_global(object: &Object, module: &str, name: &str) -> bool {
    matches!(object, Object::Class { module_name, class_name } if module_name == module && class_name == name)
}

/// The state dict's entries: an (Ordered)Dict of name -> tensor. candle's interpreter merges
/// the OrderedDict's state (`_metadata`, torch's per-module version numbers) into the dict.
pub(super) fn tensor_refs(state: Object) -> Result<Vec<TensorRef>, String> {
    let entries = match state {
        Object::Dict(entries) => Some(entries),
        Object::Build { callable, .. } => match *callable {
            Object::Dict(entries) => Some(entries),
            _ => None,
        },
        _ => None,
    }
    .ok_or("the pickle holds no state dict (a dict of name -> tensor)")?;
    let mut names = HashSet::new();
    let mut refs = Vec::new();
    for (key, value) in entries {
        let Object::Unicode(name) = key else {
            return Err(format!("a state dict key is {}, not a string", kind(&key)));
        };
        if name == "_metadata" && matches!(value, Object::Dict(_)) {
            continue;
        }
        if !names.insert(name.clone()) {
            return Err(format!("tensor {name} appears twice"));
        }
        refs.push(tensor_ref(name, value)?);
    }
    Ok(refs)
}

/// `_rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks[, metadata])`,
/// maybe wrapped in `_rebuild_parameter(tensor, requires_grad, hooks)`.
fn tensor_ref(name: String, value: Object) -> Result<TensorRef, String> {
    let not_tensor = |what: &str| format!("entry {name} is {what}, not a tensor");
    let rebuild = |o: &Object| is_global(o, "torch._utils", "_rebuild_tensor_v2");
    let args = match value {
        Object::Reduce { callable, args } if rebuild(&callable) => *args,
        Object::Reduce { callable, args }
            if is_global(&callable, "torch._utils", "_rebuild_parameter") =>
        {
            match *args {
                Object::Tuple(mut inner) if !inner.is_empty() => match inner.swap_remove(0) {
                    Object::Reduce { callable, args } if rebuild(&callable) => *args,
                    other => return Err(not_tensor(&format!("a parameter of {}", kind(&other)))),
                },
                _ => return Err(not_tensor("a parameter without a tensor")),
            }
        }
        other => return Err(not_tensor(kind(&other))),
    };
    let Object::Tuple(args) = args else {
        return Err(not_tensor("_rebuild_tensor_v2 without an argument tuple"));
    };
    let [storage, offset, size, stride, _requires_grad, _hooks, ..] = args.as_slice() else {
        return Err(not_tensor("_rebuild_tensor_v2 with too few arguments"));
    };
    let (key, dtype, numel) = storage_id(&name, storage)?;
    let uints = |object: &Object, what: &str| match object {
        Object::Tuple(items) if items.len() <= MAX_RANK => items
            .iter()
            .map(|v| uint(&name, v, what))
            .collect::<Result<Vec<_>, _>>(),
        _ => Err(format!(
            "tensor {name}: its {what} is not a tuple of at most {MAX_RANK} integers"
        )),
    };
    let (size, stride) = (uints(size, "size")?, uints(stride, "stride")?);
    if size.len() != stride.len() {
        return Err(format!(
            "tensor {name}: {} sizes but {} strides",
            size.len(),
            stride.len()
        ));
    }
    Ok(TensorRef {
        offset: uint(&name, offset, "storage offset")?,
        name,
        key,
        dtype,
        numel,
        size,
        stride,
    })
}

/// A tensor's persistent storage id, `('storage', torch.FloatStorage, key, location, numel)`
/// (legacy files add a sixth element, the view metadata of a storage view: None): the key,
/// the dtype and the element count.
fn storage_id(name: &str, storage: &Object) -> Result<(String, DType, u64), String> {
    let id = match storage {
        Object::PersistentLoad(id) => match id.as_ref() {
            Object::Tuple(id) => id.as_slice(),
            _ => &[],
        },
        _ => &[],
    };
    let [Object::Unicode(tag), Object::Class {
        module_name,
        class_name,
    }, Object::Unicode(key), Object::Unicode(_location), numel, view @ ..] = id
    else {
        return Err(format!(
            "tensor {name}: its storage is not a persistent id ('storage', type, key, location, numel)"
        ));
    };
    if tag != "storage" || !matches!(view, [] | [Object::None]) {
        return Err(format!("tensor {name}: its storage is not a plain storage"));
    }
    let dtype = match (module_name.as_str(), class_name.as_str()) {
        ("torch", "FloatStorage") => DType::F32,
        ("torch", "HalfStorage") => DType::F16,
        ("torch", "DoubleStorage") => DType::F64,
        ("torch", "LongStorage") => DType::I64,
        ("torch", "IntStorage") => DType::I32,
        (m, c) => return Err(format!("tensor {name}: storage type {m}.{c} is not read")),
    };
    Ok((key.clone(), dtype, uint(name, numel, "storage size")?))
}

fn uint(name: &str, object: &Object, what: &str) -> Result<u64, String> {
    match object {
        Object::Int(v) if *v >= 0 => Ok(*v as u64),
        Object::Long(v) if *v >= 0 => Ok(*v as u64),
        other => Err(format!(
            "tensor {name}: its {what} is {}, not a non-negative integer",
            kind(other)
        )),
    }
}

/// Each storage's dtype and element count, which every tensor using it must agree on.
pub(super) fn declared_storages(refs: &[TensorRef]) -> Result<HashMap<&str, (DType, u64)>, String> {
    let mut declared = HashMap::new();
    for t in refs {
        let first = *declared.entry(t.key.as_str()).or_insert((t.dtype, t.numel));
        if first != (t.dtype, t.numel) {
            return Err(format!(
                "tensor {} declares storage {} differently from another tensor",
                t.name, t.key
            ));
        }
    }
    Ok(declared)
}

pub(super) fn materialize_all(
    refs: Vec<TensorRef>,
    storages: &HashMap<String, &[u8]>,
    file_len: usize,
) -> Result<Vec<(String, Tensor)>, String> {
    // Tensors sharing a storage are copied apart; more copies than this is not a state dict.
    let mut budget = 4 * file_len as u64;
    let mut tensors = refs
        .into_iter()
        .map(|t| {
            let storage = storages.get(&t.key).ok_or_else(|| {
                format!(
                    "tensor {}: its storage {} is not in the file",
                    t.name, t.key
                )
            })?;
            let tensor = materialize(&t, storage, &mut budget)?;
            Ok((t.name, tensor))
        })
        .collect::<Result<Vec<_>, String>>()?;
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(tensors)
}

/// A contiguous copy of the tensor `t` of `storage` (the storage's raw bytes).
fn materialize(t: &TensorRef, storage: &[u8], budget: &mut u64) -> Result<Tensor, String> {
    let name = &t.name;
    let elem = t.dtype.size_in_bytes();
    let numel = (storage.len() / elem) as u64;
    let sane = t
        .size
        .iter()
        .try_fold(1u64, |p, &s| p.checked_mul(s.max(1)))
        .filter(|&p| p <= MAX_ELEMENTS)
        .ok_or_else(|| format!("tensor {name}: its size {:?} is not sane", t.size))?;
    let count = if t.size.contains(&0) { 0 } else { sane };
    // One past the last element it reads, relative to its offset.
    let extent = if count == 0 {
        Some(0)
    } else {
        t.size.iter().zip(&t.stride).try_fold(1u64, |e, (&s, &st)| {
            (s - 1).checked_mul(st).and_then(|x| e.checked_add(x))
        })
    };
    let inside = |e: u64| e.checked_add(t.offset).is_some_and(|end| end <= numel);
    let Some(extent) = extent.filter(|&e| inside(e)) else {
        return Err(format!(
            "tensor {name}: size {:?}, stride {:?} from offset {} reach past the {numel} elements of its storage {}",
            t.size, t.stride, t.offset, t.key
        ));
    };
    if count > extent {
        return Err(format!(
            "tensor {name}: stride {:?} overlaps elements (a broadcast view); only plain tensors are read",
            t.stride
        ));
    }
    let bytes = count * elem as u64;
    *budget = budget.checked_sub(bytes).ok_or_else(|| {
        format!("tensor {name}: the tensors copy their shared storages more than 4 times over")
    })?;
    let (size, stride): (Vec<usize>, Vec<usize>) = t
        .size
        .iter()
        .zip(&t.stride)
        .map(|(&s, &st)| (s as usize, st as usize))
        .unzip();
    let data = copy_out(storage, elem, t.offset as usize, &size, &stride);
    Tensor::from_raw_buffer(&data, t.dtype, &size, &Device::Cpu)
        .map_err(|e| format!("tensor {name}: {e}"))
}

/// The bytes of the elements of `storage` (each `elem` bytes) that a tensor of `size` and
/// `stride` from `offset` reads, in row-major order; [`materialize`] has checked the bounds.
fn copy_out<'a>(
    storage: &'a [u8],
    elem: usize,
    offset: usize,
    size: &[usize],
    stride: &[usize],
) -> std::borrow::Cow<'a, [u8]> {
    let count: usize = size.iter().product();
    let mut expected = 1;
    let mut contiguous = true;
    for (&s, &st) in size.iter().zip(stride).rev() {
        contiguous &= s == 1 || st == expected;
        expected *= s;
    }
    if contiguous {
        return storage[offset * elem..(offset + count) * elem].into();
    }
    let mut data = Vec::with_capacity(count * elem);
    let mut index = vec![0usize; size.len()];
    for _ in 0..count {
        let at = offset
            + index
                .iter()
                .zip(stride)
                .map(|(i, st)| i * st)
                .sum::<usize>();
        data.extend_from_slice(&storage[at * elem..(at + 1) * elem]);
        // The next index in row-major order.
        for d in (0..size.len()).rev() {
            index[d] += 1;
            if index[d] < size[d] {
                break;
            }
            index[d] = 0;
        }
    }
    data.into()
}

#[cfg(test)]
mod tests {
    use crate::embed::pth::testing::{self, legacy_file, refused, Entry};

    #[test]
    fn a_storage_shorter_than_its_tensor_is_an_error() {
        let short = vec![("0", vec![0., 1., 2., 3.])];
        let entry = |offset, size: &'static [u32], stride: &'static [u32]| Entry {
            name: "a.weight",
            key: "0",
            offset,
            size,
            stride,
        };
        for e in [
            entry(0, &[2, 3], &[3, 1]),
            entry(1, &[4], &[1]),
            entry(0, &[2, 2], &[1, 3]),
        ] {
            refused(&testing::legacy(&[e], &short), "a.weight");
        }
        // A broadcast (overlapping) view would be copied larger than its storage.
        refused(
            &testing::legacy(&[entry(0, &[1000, 4], &[0, 1])], &short),
            "overlaps",
        );
        // The storage count in the file disagrees with the tensor's storage.
        let mut bytes = legacy_file();
        let count = bytes.len() - 4 * 4 - 8;
        bytes[count] = 9;
        refused(&bytes, "storage 1");
    }
}
