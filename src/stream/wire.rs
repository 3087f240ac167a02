//! The byte layout of the work the streaming scan hands to other processes (the Ray engine's
//! tasks, [`super::remote`]): little-endian numbers, and each list as its length (u64) then
//! its items. Written and read by the same build of poisongate, so there is no version
//! field; a reader that runs out of bytes, or finds bytes left over, says so.

use super::StreamError;

#[derive(Default)]
pub struct Writer {
    bytes: Vec<u8>,
}

impl Writer {
    pub fn new() -> Self {
        Writer::default()
    }

    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn f64(&mut self, v: f64) -> &mut Self {
        self.u64(v.to_bits())
    }

    pub fn usize(&mut self, v: usize) -> &mut Self {
        self.u64(v as u64)
    }

    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.bytes.push(v as u8);
        self
    }

    pub fn opt_f64(&mut self, v: Option<f64>) -> &mut Self {
        self.bool(v.is_some()).f64(v.unwrap_or(0.0))
    }

    pub fn str(&mut self, v: &str) -> &mut Self {
        self.usize(v.len());
        self.bytes.extend_from_slice(v.as_bytes());
        self
    }

    pub fn u32s(&mut self, v: &[u32]) -> &mut Self {
        self.usize(v.len());
        self.bytes.reserve(v.len() * 4);
        for x in v {
            self.bytes.extend_from_slice(&x.to_le_bytes());
        }
        self
    }

    pub fn f32s(&mut self, v: &[f32]) -> &mut Self {
        self.usize(v.len());
        self.bytes.reserve(v.len() * 4);
        for x in v {
            self.bytes.extend_from_slice(&x.to_le_bytes());
        }
        self
    }

    pub fn bools(&mut self, v: &[bool]) -> &mut Self {
        self.usize(v.len());
        self.bytes.extend(v.iter().map(|&b| b as u8));
        self
    }

    pub fn bytes(&mut self, v: &[u8]) -> &mut Self {
        self.usize(v.len());
        self.bytes.extend_from_slice(v);
        self
    }
}

pub struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    /// `what` names the message in errors ("a clustering task").
    pub fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Reader { bytes, what }
    }

    fn short(&self) -> StreamError {
        StreamError::Unsupported(format!(
            "{} ended early: it was not written by this build of poisongate ({} bytes left)",
            self.what,
            self.bytes.len()
        ))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], StreamError> {
        if self.bytes.len() < n {
            return Err(self.short());
        }
        let (head, rest) = self.bytes.split_at(n);
        self.bytes = rest;
        Ok(head)
    }

    /// Fails when bytes are left: the two sides disagree on the layout.
    pub fn end(&self) -> Result<(), StreamError> {
        if self.bytes.is_empty() {
            return Ok(());
        }
        Err(StreamError::Unsupported(format!(
            "{} has {} bytes too many: it was not written by this build of poisongate",
            self.what,
            self.bytes.len()
        )))
    }

    pub fn u64(&mut self) -> Result<u64, StreamError> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().map_err(|_| self.short())?))
    }

    pub fn f64(&mut self) -> Result<f64, StreamError> {
        Ok(f64::from_bits(self.u64()?))
    }

    pub fn usize(&mut self) -> Result<usize, StreamError> {
        let v = self.u64()?;
        usize::try_from(v).map_err(|_| self.short())
    }

    pub fn bool(&mut self) -> Result<bool, StreamError> {
        Ok(self.take(1)?[0] != 0)
    }

    pub fn opt_f64(&mut self) -> Result<Option<f64>, StreamError> {
        let some = self.bool()?;
        let v = self.f64()?;
        Ok(some.then_some(v))
    }

    /// A list's length, checked against the bytes left (`size` bytes an item) before anything
    /// is allocated by it.
    fn len(&mut self, size: usize) -> Result<usize, StreamError> {
        let n = self.usize()?;
        if n.checked_mul(size).is_none_or(|b| b > self.bytes.len()) {
            return Err(self.short());
        }
        Ok(n)
    }

    pub fn str(&mut self) -> Result<String, StreamError> {
        let n = self.len(1)?;
        let b = self.take(n)?;
        String::from_utf8(b.to_vec()).map_err(|_| self.short())
    }

    pub fn u32s(&mut self) -> Result<Vec<u32>, StreamError> {
        let n = self.len(4)?;
        let b = self.take(n * 4)?;
        Ok(b.chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    pub fn f32s(&mut self) -> Result<Vec<f32>, StreamError> {
        let n = self.len(4)?;
        let b = self.take(n * 4)?;
        Ok(b.chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    pub fn bools(&mut self) -> Result<Vec<bool>, StreamError> {
        let n = self.len(1)?;
        Ok(self.take(n)?.iter().map(|&b| b != 0).collect())
    }

    pub fn bytes(&mut self) -> Result<&'a [u8], StreamError> {
        let n = self.len(1)?;
        self.take(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut w = Writer::new();
        w.u64(7)
            .f64(-0.5)
            .bool(true)
            .opt_f64(None)
            .opt_f64(Some(2.5))
            .str("silhouette")
            .u32s(&[1, u32::MAX])
            .f32s(&[f32::NAN, 1.5])
            .bools(&[true, false]);
        let bytes = w.finish();
        let mut r = Reader::new(&bytes, "a test message");
        assert_eq!(r.u64().unwrap(), 7);
        assert_eq!(r.f64().unwrap(), -0.5);
        assert!(r.bool().unwrap());
        assert_eq!(r.opt_f64().unwrap(), None);
        assert_eq!(r.opt_f64().unwrap(), Some(2.5));
        assert_eq!(r.str().unwrap(), "silhouette");
        assert_eq!(r.u32s().unwrap(), vec![1, u32::MAX]);
        let f = r.f32s().unwrap();
        assert!(f[0].is_nan() && f[1] == 1.5);
        assert_eq!(r.bools().unwrap(), vec![true, false]);
        r.end().unwrap();
    }

    #[test]
    fn short_and_long_messages_are_errors() {
        let mut w = Writer::new();
        w.u32s(&[1, 2, 3]);
        let bytes = w.finish();
        let err = Reader::new(&bytes[..bytes.len() - 1], "a test message")
            .u32s()
            .unwrap_err();
        assert!(
            err.to_string().contains("a test message ended early"),
            "{err}"
        );
        // A length far past the bytes is refused before anything is allocated.
        let mut w = Writer::new();
        w.u64(u64::MAX / 2);
        let bytes = w.finish();
        assert!(Reader::new(&bytes, "x").f32s().is_err());
        let mut r = Reader::new(&[0u8; 9], "a test message");
        r.u64().unwrap();
        assert!(r
            .end()
            .unwrap_err()
            .to_string()
            .contains("1 bytes too many"));
    }
}
