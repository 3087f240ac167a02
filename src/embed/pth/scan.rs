//! The pickle pre-scanner: reads a pickle's opcodes without building anything, refuses any
//! opcode candle's interpreter does not know, any argument past the end of the bytes and any
//! global outside [`ALLOWED_GLOBALS`], and simulates the interpreter's stack and memo to bound
//! the nesting and the size of what it would build (a memo-copy bomb of a few hundred bytes
//! asks for gigabytes).

use std::collections::HashMap;

use super::ALLOWED_GLOBALS;

/// Nesting of a pickle's objects, a string or number counting 1; a state dict needs 7.
const MAX_DEPTH: u32 = 32;
/// Bytes the interpreter may build, counted as 64 per object plus string bytes: a fixed
/// allowance plus this many per byte of pickle. torchvision's MobileNetV2 state dict (47 kB
/// of pickle) builds 38 bytes per byte, 47 when Python's pickler writes it for a zip file.
const BUILD_BASE: u64 = 1 << 20;
const BUILD_PER_BYTE: u64 = 256;

/// One simulated stack entry: the bytes the object would hold, and how deep it nests.
#[derive(Clone, Copy)]
struct Sim {
    bytes: u64,
    depth: u32,
    mark: bool,
}

/// A new object without parts holding `extra` bytes (a string), with what it allocates.
fn leaf(extra: u64) -> (Sim, u64) {
    let sim = Sim {
        bytes: 64 + extra,
        depth: 1,
        mark: false,
    };
    (sim, sim.bytes)
}

/// Reads a pickle's opcode arguments, never past its end.
struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let start = self.pos;
        self.pos = start
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or("cut short")?;
        Ok(&self.bytes[start..self.pos])
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32, String> {
        Ok(u32::from_le_bytes(
            self.take(4)?.try_into().expect("4 bytes"),
        ))
    }

    /// A GLOBAL argument: up to a newline, without it (and without a \r before it, as candle).
    fn line(&mut self) -> Result<&'a [u8], String> {
        let rest = &self.bytes[self.pos..];
        let len = rest.iter().position(|&b| b == b'\n').ok_or("cut short")?;
        self.pos += len + 1;
        Ok(rest[..len].strip_suffix(b"\r").unwrap_or(&rest[..len]))
    }
}

/// Checks the pickle at the start of `bytes` without building it and returns its length (up
/// to and with its STOP opcode). Only the opcodes candle's interpreter knows are accepted,
/// every argument must lie inside `bytes`, every global must be in [`ALLOWED_GLOBALS`], and a
/// simulation of the interpreter's stack and memo bounds the nesting and the total size of
/// what it would build.
pub(super) fn scan(bytes: &[u8]) -> Result<usize, String> {
    let mut scanner = Scanner {
        cur: Cursor { bytes, pos: 0 },
        stack: Vec::new(),
        memo: HashMap::new(),
        built: 0,
    };
    let budget = BUILD_BASE + BUILD_PER_BYTE * bytes.len() as u64;
    loop {
        let op = scanner.cur.u8()?;
        if op == b'.' {
            return Ok(scanner.cur.pos);
        }
        scanner.step(op)?;
        if scanner.built > budget {
            return Err(format!(
                "it would build more than {budget} bytes of objects (memo copies), far more than a state dict"
            ));
        }
    }
}

/// A pickle being scanned: the simulated stack and memo, and the bytes built so far.
struct Scanner<'a> {
    cur: Cursor<'a>,
    stack: Vec<Sim>,
    memo: HashMap<u32, Sim>,
    built: u64,
}

impl Scanner<'_> {
    /// One opcode (not STOP): its arguments read, its effect on the stack and memo simulated.
    fn step(&mut self, op: u8) -> Result<(), String> {
        let cur = &mut self.cur;
        // The object pushed, and the bytes newly allocated for it.
        let (sim, cost) = match op {
            0x80 => return cur.take(1).map(drop),
            b'c' => {
                let (module, name) = (cur.line()?, cur.line()?);
                let allowed = ALLOWED_GLOBALS
                    .iter()
                    .any(|(m, n)| m.as_bytes() == module && n.as_bytes() == name);
                if !allowed {
                    return Err(format!(
                        "it names the global {}.{}, which a state dict does not need (refused: loading it would run code)",
                        String::from_utf8_lossy(module),
                        String::from_utf8_lossy(name)
                    ));
                }
                leaf((module.len() + name.len()) as u64)
            }
            b'K' | b'M' | b'J' | b'G' => {
                cur.take(match op {
                    b'K' => 1,
                    b'M' => 2,
                    b'J' => 4,
                    _ => 8,
                })?;
                leaf(0)
            }
            0x8a => {
                // candle shifts each byte into an i64: more than 8 would overflow.
                let n = cur.u8()?;
                if n > 8 {
                    return Err(format!("an integer of {n} bytes (at most 8 are read)"));
                }
                cur.take(n as usize)?;
                leaf(0)
            }
            b'X' => {
                let n = cur.u32()?;
                cur.take(n as usize)?;
                leaf(n as u64)
            }
            b'N' | 0x88 | 0x89 | b')' | b']' | b'}' | b'd' => leaf(0),
            b'(' => {
                let (sim, cost) = leaf(0);
                (Sim { mark: true, ..sim }, cost)
            }
            b'Q' | 0x85 => node(self.pop(1)?)?,
            0x86 | b'R' | b'b' | 0x81 => node(self.pop(2)?)?,
            0x87 => node(self.pop(3)?)?,
            b't' => node(self.pop_to_mark()?)?,
            b'a' | b's' | b'e' | b'u' => {
                let items = match op {
                    b'a' => self.pop(1)?,
                    b's' => self.pop(2)?,
                    _ => self.pop_to_mark()?,
                };
                let target = self.stack.last_mut().ok_or("malformed (an empty stack)")?;
                for item in items {
                    target.bytes += item.bytes;
                    target.depth = target.depth.max(item.depth + 1);
                }
                if target.depth > MAX_DEPTH {
                    return Err(format!("objects nested more than {MAX_DEPTH} deep"));
                }
                return Ok(());
            }
            b'h' | b'j' | b'q' | b'r' => {
                let id = match op {
                    b'h' | b'q' => cur.u8()? as u32,
                    _ => cur.u32()?,
                };
                // candle copies objects into and out of its memo.
                if matches!(op, b'q' | b'r') {
                    let copy = *self.stack.last().ok_or("malformed (an empty stack)")?;
                    self.built += copy.bytes;
                    self.memo.insert(id, copy);
                    return Ok(());
                }
                let copy = *self
                    .memo
                    .get(&id)
                    .ok_or("malformed (a memo entry read before it is set)")?;
                (copy, copy.bytes)
            }
            other => {
                return Err(format!(
                    "opcode 0x{other:02x} at byte {}, which a state dict does not use",
                    cur.pos - 1
                ))
            }
        };
        self.built += cost;
        self.stack.push(sim);
        Ok(())
    }

    /// The top `n` entries, in stack order.
    fn pop(&mut self, n: usize) -> Result<Vec<Sim>, String> {
        let at = self
            .stack
            .len()
            .checked_sub(n)
            .ok_or("malformed (an empty stack)")?;
        Ok(self.stack.split_off(at))
    }

    fn pop_to_mark(&mut self) -> Result<Vec<Sim>, String> {
        let mark = self
            .stack
            .iter()
            .rposition(|s| s.mark)
            .ok_or("malformed (no mark)")?;
        let items = self.stack.split_off(mark + 1);
        self.stack.pop();
        Ok(items)
    }
}

/// A new container of `items` (moved in, not copied), with what it allocates.
fn node(items: Vec<Sim>) -> Result<(Sim, u64), String> {
    let depth = 1 + items.iter().map(|s| s.depth).max().unwrap_or(0);
    if depth > MAX_DEPTH {
        return Err(format!("objects nested more than {MAX_DEPTH} deep"));
    }
    let sim = Sim {
        bytes: 64 + items.iter().map(|s| s.bytes).sum::<u64>(),
        depth,
        mark: false,
    };
    Ok((sim, 64))
}

#[cfg(test)]
mod tests {
    use crate::embed::pth::testing::{self, entries, legacy_file, refused, storages, zip_file};
    use crate::embed::pth::{LEGACY_MAGIC, LEGACY_PROTOCOL};

    #[test]
    fn globals_outside_the_allow_list_are_refused() {
        let rebuild: &[u8] = b"ctorch._utils\n_rebuild_tensor_v2\n";
        for (global, name) in [
            (&b"cos\nsystem\n"[..], "os.system"),
            (b"cbuiltins\neval\n", "builtins.eval"),
            (b"ctorch\nload\n", "torch.load"),
        ] {
            let swap = |bytes: &[u8]| {
                let at = bytes
                    .windows(rebuild.len())
                    .position(|w| w == rebuild)
                    .unwrap();
                [&bytes[..at], global, &bytes[at + rebuild.len()..]].concat()
            };
            refused(&swap(&legacy_file()), name);
            let pickle = swap(&testing::state_pickle(&entries(), &storages(), false));
            refused(&testing::zip(pickle, &storages()), name);
        }
        // The classic exploit, `os.system('ls')` as the whole state dict.
        let exploit = b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00ls\x85R.".to_vec();
        refused(&testing::zip(exploit, &[]), "os.system");
    }

    #[test]
    fn hostile_pickles_fail_fast_without_allocating() {
        let state = |pickle: &[u8]| {
            let mut bytes = [
                LEGACY_MAGIC,
                LEGACY_PROTOCOL,
                b"\x80\x02}(X\x0d\x00\x00\x00little_endian\x88u.",
            ]
            .concat();
            bytes.extend(pickle);
            bytes
        };
        // Each round doubles one memo entry: 2^60 objects if nothing stopped it.
        let mut bomb = b"\x80\x02)q\x00".to_vec();
        for _ in 0..60 {
            bomb.extend(b"h\x00h\x00\x86q\x00");
        }
        bomb.push(b'.');
        refused(&state(&bomb), "bytes of objects");
        // Nesting deep enough to overflow the stack when dropped.
        let deep = [&b"\x80\x02)"[..], &[0x85; 100_000], b"."].concat();
        refused(&state(&deep), "nested");
        // A 4 GiB string length in a short file; an integer of 10 bytes.
        refused(&state(b"\x80\x02X\xf0\xff\xff\xff."), "cut short");
        refused(
            &state(b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19."),
            "10 bytes",
        );
        // A zip whose central directory lies past its end, or is a zip64 one.
        for (offset, needle) in [(u32::MAX - 1, "cut short"), (u32::MAX, "zip64")] {
            let mut zip = zip_file();
            let at = zip.len() - 6;
            zip[at..at + 4].copy_from_slice(&offset.to_le_bytes());
            refused(&zip, needle);
        }
    }
}
