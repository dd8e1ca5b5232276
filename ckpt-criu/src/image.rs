//! The framing of one CRIU image file: magic words, then `{u32 length, protobuf message}`
//! entries (some followed by raw bytes), read from a byte slice without copying.

use crate::magic::{self, Kind};
use std::fmt;

/// What went wrong reading a CRIU image: the file, the byte offset in it, and what was found
/// against what was expected.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CriuError {
    /// The image file (`core-42.img`), or the directory / archive for errors about the set.
    pub file: String,
    /// Byte offset in that file (0 for errors about the set).
    pub offset: u64,
    /// What was found.
    pub found: String,
    /// What was expected.
    pub expected: String,
    /// An I/O error (exit code 3 rather than 1).
    pub io: bool,
}

impl CriuError {
    /// An error in `file` at `offset`.
    pub fn new(
        file: &str,
        offset: u64,
        found: impl Into<String>,
        expected: impl Into<String>,
    ) -> Self {
        CriuError {
            file: file.to_string(),
            offset,
            found: found.into(),
            expected: expected.into(),
            io: false,
        }
    }
    /// An I/O error on `what`.
    pub fn io(what: &str, e: &std::io::Error) -> Self {
        CriuError {
            file: what.to_string(),
            offset: 0,
            found: e.to_string(),
            expected: "a readable file".into(),
            io: true,
        }
    }
}

impl fmt::Display for CriuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} at byte {}: found {}, expected {}",
            self.file, self.offset, self.found, self.expected
        )
    }
}

impl std::error::Error for CriuError {}

impl From<CriuError> for ckpt_format::Error {
    fn from(e: CriuError) -> Self {
        if e.io {
            return ckpt_format::Error::io(
                0,
                &std::io::Error::other(format!("{}: {}", e.file, e.found)),
            );
        }
        ckpt_format::Error::invalid(e.offset, format!("{}: {}", e.file, e.found), e.expected)
    }
}

/// Result of this crate.
pub type Result<T, E = CriuError> = std::result::Result<T, E>;

/// One entry of an image file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Entry<'a> {
    /// Byte offset of the entry's length word.
    pub offset: u64,
    /// The protobuf message bytes.
    pub payload: &'a [u8],
}

/// An image file with a header, read entry by entry.
#[derive(Clone, Debug)]
pub struct ImageFile<'a> {
    name: &'a str,
    bytes: &'a [u8],
    /// The type magic.
    pub magic: u32,
    /// The common magic (`0` for inventory, which has none).
    pub common: u32,
    pos: usize,
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(
        b.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

impl<'a> ImageFile<'a> {
    /// Read the header of `bytes` (the file `name`).
    pub fn new(name: &'a str, bytes: &'a [u8]) -> Result<ImageFile<'a>> {
        let first = u32_at(bytes, 0).ok_or_else(|| {
            CriuError::new(
                name,
                0,
                format!("{} bytes", bytes.len()),
                "at least a 4-byte magic",
            )
        })?;
        let (common, magic, pos) = match first {
            magic::INVENTORY => (0, magic::INVENTORY, 4),
            magic::COMMON | magic::SERVICE => {
                let m = u32_at(bytes, 4).ok_or_else(|| {
                    CriuError::new(
                        name,
                        4,
                        "end of file",
                        "the type magic after the common magic",
                    )
                })?;
                (first, m, 8)
            }
            other => {
                return Err(CriuError::new(
                    name,
                    0,
                    format!("magic {other:#010x}"),
                    format!(
                        "{:#010x} (CRIU image) or {:#010x} (inventory)",
                        magic::COMMON,
                        magic::INVENTORY
                    ),
                ))
            }
        };
        Ok(ImageFile {
            name,
            bytes,
            magic,
            common,
            pos,
        })
    }

    /// Like [`ImageFile::new`], and the type magic must be `want`.
    pub fn expect(name: &'a str, bytes: &'a [u8], want: u32) -> Result<ImageFile<'a>> {
        let f = ImageFile::new(name, bytes)?;
        if f.magic != want {
            let at = if f.common == 0 { 0 } else { 4 };
            return Err(CriuError::new(
                name,
                at,
                format!("type magic {:#010x} ({})", f.magic, kind_name(f.magic)),
                format!("{want:#010x} ({})", kind_name(want)),
            ));
        }
        Ok(f)
    }

    /// The table row of the type magic.
    pub fn kind(&self) -> Option<&'static Kind> {
        magic::kind(self.magic)
    }

    /// The file name.
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// Byte offset of the next entry.
    pub fn position(&self) -> u64 {
        self.pos as u64
    }

    /// The next entry, or `None` at the end of the file.
    pub fn next_entry(&mut self) -> Result<Option<Entry<'a>>> {
        if self.pos == self.bytes.len() {
            return Ok(None);
        }
        let at = self.pos;
        let len = u32_at(self.bytes, at).ok_or_else(|| {
            CriuError::new(
                self.name,
                at as u64,
                format!("{} trailing bytes", self.bytes.len() - at),
                "a 4-byte entry length",
            )
        })? as usize;
        let start = at + 4;
        let payload = self
            .bytes
            .get(start..start.saturating_add(len))
            .ok_or_else(|| {
                CriuError::new(
                    self.name,
                    at as u64,
                    format!(
                        "entry length {len} with {} bytes left",
                        self.bytes.len() - start
                    ),
                    "an entry that fits in the file",
                )
            })?;
        self.pos = start + len;
        Ok(Some(Entry {
            offset: at as u64,
            payload,
        }))
    }

    /// The `n` raw bytes that follow the last entry (pipe data, socket queues ...).
    pub fn take_extra(&mut self, n: u64, what: &str) -> Result<&'a [u8]> {
        let at = self.pos;
        let end = usize::try_from(n)
            .ok()
            .and_then(|n| at.checked_add(n))
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| {
                CriuError::new(
                    self.name,
                    at as u64,
                    format!("{n} bytes of {what} with {} left", self.bytes.len() - at),
                    "the payload within the file",
                )
            })?;
        self.pos = end;
        Ok(&self.bytes[at..end])
    }

    /// Decode the next entry as `M`; `None` at the end of the file.
    pub fn next_msg<M: prost::Message + Default>(&mut self) -> Result<Option<(u64, M)>> {
        let Some(e) = self.next_entry()? else {
            return Ok(None);
        };
        let m = M::decode(e.payload).map_err(|err| {
            CriuError::new(
                self.name,
                e.offset,
                format!("undecodable protobuf entry ({err})"),
                format!("a {} message", short_type::<M>()),
            )
        })?;
        Ok(Some((e.offset, m)))
    }

    /// Decode every entry as `M`.
    pub fn all<M: prost::Message + Default>(mut self) -> Result<Vec<M>> {
        let mut v = Vec::new();
        while let Some((_, m)) = self.next_msg()? {
            v.push(m);
        }
        Ok(v)
    }

    /// Decode exactly one entry as `M` (single-entry files: inventory, core, mm ...).
    pub fn one<M: prost::Message + Default>(mut self) -> Result<M> {
        let at = self.pos as u64;
        match self.next_msg()? {
            Some((_, m)) => Ok(m),
            None => Err(CriuError::new(
                self.name,
                at,
                "end of file",
                format!("one {} entry", short_type::<M>()),
            )),
        }
    }
}

/// crit's name of a type magic, or `unknown`.
pub fn kind_name(m: u32) -> &'static str {
    magic::kind(m).map_or("unknown", |k| k.name)
}

fn short_type<M>() -> &'static str {
    let n = std::any::type_name::<M>();
    n.rsplit("::").next().unwrap_or(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(magic: u32, entries: &[&[u8]]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&magic::COMMON.to_le_bytes());
        b.extend_from_slice(&magic.to_le_bytes());
        for e in entries {
            b.extend_from_slice(&(e.len() as u32).to_le_bytes());
            b.extend_from_slice(e);
        }
        b
    }

    #[test]
    fn entries_and_errors_name_file_and_offset() {
        let b = file(magic::PSTREE, &[&[8, 1], &[8, 2, 16, 1]]);
        let mut f = ImageFile::expect("pstree.img", &b, magic::PSTREE).unwrap();
        assert_eq!(f.next_entry().unwrap().unwrap().offset, 8);
        assert_eq!(f.next_entry().unwrap().unwrap().payload, &[8, 2, 16, 1]);
        assert_eq!(f.next_entry().unwrap(), None);
        // Truncated entry.
        let e = ImageFile::new("pstree.img", &b[..b.len() - 1])
            .unwrap()
            .all::<crate::pb::PstreeEntry>()
            .unwrap_err();
        assert_eq!((e.file.as_str(), e.offset), ("pstree.img", 14));
        assert!(e.found.contains("entry length 4 with 3 bytes left"), "{e}");
        // Wrong type magic.
        let e = ImageFile::expect("pstree.img", &b, magic::CORE).unwrap_err();
        assert_eq!(e.offset, 4);
        assert!(e.to_string().contains("PSTREE") && e.to_string().contains("CORE"));
        // A length of 4 GiB does not allocate.
        let mut big = file(magic::PSTREE, &[]);
        big.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(ImageFile::new("x", &big).unwrap().next_entry().is_err());
        // Extra payload past the end.
        let mut f = ImageFile::new("x", &b).unwrap();
        f.next_entry().unwrap();
        assert!(f.take_extra(1 << 40, "pipe data").is_err());
    }
}
