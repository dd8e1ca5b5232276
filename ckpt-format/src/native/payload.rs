//! Payload encoding of native-1 records: a cursor that reads little-endian
//! fields inside one record's payload (it can never read past it), and the
//! matching writer. Each record's layout is drawn in docs/FORMAT.md.

use super::{Frame, RecordType};
use crate::error::{Error, ErrorKind, Result};
use crate::model::*;

/// Most extras one record may carry.
const MAX_EXTRAS: u32 = 4096;

/// Reads fields from one payload; every error names the payload offset.
pub(crate) struct Cur<'f, 'p> {
    pub f: &'f Frame<'p>,
    pub pos: usize,
}

impl<'f, 'p> Cur<'f, 'p> {
    pub fn new(f: &'f Frame<'p>) -> Self {
        Cur { f, pos: 0 }
    }
    fn err_short(&self, need: usize) -> Error {
        let avail = self.f.payload.len().saturating_sub(self.pos);
        self.f.err_at(
            self.pos,
            ErrorKind::BadLength {
                found: self.f.payload.len() as u64 + super::HEADER_LEN as u64,
                expected: format!(
                    "room for {need} more byte(s) at payload offset {} ({avail} left)",
                    self.pos
                ),
            },
        )
    }
    pub fn bytes(&mut self, n: usize) -> Result<&'p [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.f.payload.len())
            .ok_or_else(|| self.err_short(n))?;
        let s = &self.f.payload[self.pos..end];
        self.pos = end;
        Ok(s)
    }
    pub fn u8(&mut self) -> Result<u8> {
        Ok(self.bytes(1)?[0])
    }
    pub fn u16(&mut self) -> Result<u16> {
        let b = self.bytes(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    pub fn u32(&mut self) -> Result<u32> {
        let b = self.bytes(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    pub fn i32(&mut self) -> Result<i32> {
        Ok(self.u32()? as i32)
    }
    pub fn u64(&mut self) -> Result<u64> {
        let b = self.bytes(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
    /// A `u32 length + bytes` string.
    pub fn bstr(&mut self) -> Result<&'p [u8]> {
        let n = self.u32()? as usize;
        self.bytes(n)
    }
    pub fn rest(&mut self) -> &'p [u8] {
        let s = &self.f.payload[self.pos.min(self.f.payload.len())..];
        self.pos = self.f.payload.len();
        s
    }
    pub fn bad(&self, at: usize, field: &'static str, found: u64, expected: &str) -> Error {
        self.f.err_at(
            at,
            ErrorKind::BadValue {
                field,
                found,
                expected: expected.into(),
            },
        )
    }
    /// The extras block at the end of the payload.
    pub fn extras(&mut self) -> Result<Extras> {
        let at = self.pos;
        let n = self.u32()?;
        if n > MAX_EXTRAS {
            return Err(self.bad(at, "extras count", n as u64, "at most 4096"));
        }
        let mut ex = Extras::new();
        for _ in 0..n {
            let kat = self.pos;
            let klen = self.u16()? as usize;
            let key = self.bytes(klen)?;
            let key = std::str::from_utf8(key)
                .map_err(|_| self.bad(kat, "extras key", klen as u64, "UTF-8 text"))?;
            let tat = self.pos;
            let v = match self.u8()? {
                1 => Extra::U64(self.u64()?),
                2 => Extra::Bytes(self.bstr()?.to_vec()),
                t => return Err(self.bad(tat, "extras tag", t as u64, "1 (u64) or 2 (bytes)")),
            };
            if ex.0.insert(key.to_string(), v).is_some() {
                return Err(self.bad(kat, "extras key", klen as u64, "each key once"));
            }
        }
        Ok(ex)
    }
    /// Fail unless the whole payload was consumed.
    pub fn end(&self) -> Result<()> {
        if self.pos != self.f.payload.len() {
            let t: RecordType = self.f.ty();
            return Err(self.f.err_at(
                self.pos,
                ErrorKind::BadLength {
                    found: self.f.payload.len() as u64 + super::HEADER_LEN as u64,
                    expected: format!(
                        "{} for this {} record",
                        self.pos + super::HEADER_LEN,
                        t.name()
                    ),
                },
            ));
        }
        Ok(())
    }
}

/// Appends little-endian fields to a payload buffer.
#[derive(Default)]
pub(crate) struct Put(pub Vec<u8>);

impl Put {
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn i32(&mut self, v: i32) -> &mut Self {
        self.u32(v as u32)
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b);
        self
    }
    pub fn bstr(&mut self, b: &[u8]) -> &mut Self {
        self.u32(b.len() as u32).bytes(b)
    }
    pub fn extras(&mut self, ex: &Extras) -> &mut Self {
        self.u32(ex.0.len() as u32);
        for (k, v) in &ex.0 {
            self.u16(k.len() as u16).bytes(k.as_bytes());
            match v {
                Extra::U64(x) => {
                    self.0.push(1);
                    self.u64(*x);
                }
                Extra::Bytes(b) => {
                    self.0.push(2);
                    self.bstr(b);
                }
            }
        }
        self
    }
}

pub(crate) fn arch_code(a: Arch) -> u16 {
    match a {
        Arch::X86_64 => 1,
        Arch::X86_32 => 2,
    }
}

pub(crate) fn fpu_code(f: &Option<Fpu>) -> u32 {
    match f.as_ref().map(|f| f.kind) {
        None => 0,
        Some(FpuKind::Xsave) => 1,
        Some(FpuKind::Fxsave) => 2,
        Some(FpuKind::Legacy) => 3,
    }
}

pub(crate) fn revision_code(r: Revision) -> u32 {
    match r {
        Revision::CrV5 => 1,
        Revision::CkptV21 => 2,
        Revision::Native1 => 3,
    }
}

pub(crate) fn revision_from_code(c: u32) -> Option<Revision> {
    Some(match c {
        1 => Revision::CrV5,
        2 => Revision::CkptV21,
        3 => Revision::Native1,
        _ => return None,
    })
}
