//! Byte inputs shared by every decoder: a borrowed slice (the mmap case) and
//! any `io::Read` (the pipe case), behind one small trait so that each
//! revision has exactly one decoder.
//!
//! Both inputs hand out at most one record at a time. The slice input borrows
//! from the slice (no copy); the stream input reads into one reusable buffer
//! that grows only as bytes actually arrive and never beyond
//! [`MAX_RECORD_LEN`], so a length field can never make it allocate more than
//! the input holds.

use crate::error::{Error, ErrorKind, Result};
use std::io::{self, Read};

/// Largest record any reader accepts (64 MiB). Bounds memory on streams.
pub const MAX_RECORD_LEN: u64 = 64 << 20;

/// A source of bytes that decoders read records from, front to back.
pub trait Input {
    /// Offset of the next byte to be read.
    fn offset(&self) -> u64;
    /// Read exactly `n` bytes. Fails with `Truncated` (naming the offset where
    /// the read started) when fewer remain, and with `TooLarge` when `n`
    /// exceeds [`MAX_RECORD_LEN`].
    fn read(&mut self, n: u64) -> Result<&[u8]>;
    /// Skip exactly `n` bytes, with the same errors as `read`.
    fn skip(&mut self, n: u64) -> Result<()>;
    /// True when no byte remains (reads ahead at most one byte on streams).
    fn at_eof(&mut self) -> Result<bool>;
    /// Count the bytes that remain, consuming them (used for trailing-data errors).
    fn drain(&mut self) -> Result<u64>;
    /// The next byte without consuming it; `None` at the end of input.
    fn peek_byte(&mut self) -> Result<Option<u8>>;
}

fn too_large(offset: u64, n: u64) -> Error {
    Error::new(
        offset,
        ErrorKind::TooLarge {
            found: n,
            limit: MAX_RECORD_LEN,
        },
    )
}

/// Bytes of a slice, borrowed.
#[derive(Clone, Debug)]
pub struct SliceInput<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> SliceInput<'a> {
    /// Read `data` from its first byte.
    pub fn new(data: &'a [u8]) -> Self {
        SliceInput { data, pos: 0 }
    }
    /// The whole underlying slice.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }
    /// Like [`Input::read`] but returning a slice with the input's lifetime.
    pub fn read_borrowed(&mut self, n: u64) -> Result<&'a [u8]> {
        if n > MAX_RECORD_LEN {
            return Err(too_large(self.pos as u64, n));
        }
        let avail = (self.data.len() - self.pos) as u64;
        if n > avail {
            return Err(Error::new(
                self.pos as u64,
                ErrorKind::Truncated {
                    needed: n,
                    available: avail,
                },
            ));
        }
        let s = &self.data[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }
}

impl Input for SliceInput<'_> {
    fn offset(&self) -> u64 {
        self.pos as u64
    }
    fn read(&mut self, n: u64) -> Result<&[u8]> {
        self.read_borrowed(n)
    }
    fn skip(&mut self, n: u64) -> Result<()> {
        let avail = (self.data.len() - self.pos) as u64;
        if n > avail {
            return Err(Error::new(
                self.pos as u64,
                ErrorKind::Truncated {
                    needed: n,
                    available: avail,
                },
            ));
        }
        self.pos += n as usize;
        Ok(())
    }
    fn at_eof(&mut self) -> Result<bool> {
        Ok(self.pos >= self.data.len())
    }
    fn drain(&mut self) -> Result<u64> {
        let n = (self.data.len() - self.pos) as u64;
        self.pos = self.data.len();
        Ok(n)
    }
    fn peek_byte(&mut self) -> Result<Option<u8>> {
        Ok(self.data.get(self.pos).copied())
    }
}

/// Bytes of any reader, one record at a time through a reusable buffer.
#[derive(Debug)]
pub struct StreamInput<R> {
    inner: R,
    buf: Vec<u8>,
    pos: u64,
    peeked: Option<u8>,
}

impl<R: Read> StreamInput<R> {
    /// Read from `inner`, whose first byte is at offset 0.
    pub fn new(inner: R) -> Self {
        StreamInput {
            inner,
            buf: Vec::new(),
            pos: 0,
            peeked: None,
        }
    }
    /// Read from `inner` after `prefix` bytes that were already taken from it
    /// (for example to recognise the revision).
    pub fn with_prefix(prefix: &[u8], inner: R) -> StreamInput<io::Chain<io::Cursor<Vec<u8>>, R>> {
        StreamInput::new(io::Cursor::new(prefix.to_vec()).chain(inner))
    }
    /// Capacity of the internal buffer (for memory measurements).
    pub fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }
    fn fill(&mut self, n: u64) -> Result<()> {
        if n > MAX_RECORD_LEN {
            return Err(too_large(self.pos, n));
        }
        self.buf.clear();
        let mut need = n;
        if need > 0 {
            if let Some(b) = self.peeked.take() {
                self.buf.push(b);
                need -= 1;
            }
        }
        let got = (&mut self.inner)
            .take(need)
            .read_to_end(&mut self.buf)
            .map_err(|e| Error::io(self.pos, &e))?;
        if (got as u64) < need {
            let avail = self.buf.len() as u64;
            return Err(Error::new(
                self.pos,
                ErrorKind::Truncated {
                    needed: n,
                    available: avail,
                },
            ));
        }
        Ok(())
    }
}

impl<R: Read> Input for StreamInput<R> {
    fn offset(&self) -> u64 {
        self.pos
    }
    fn read(&mut self, n: u64) -> Result<&[u8]> {
        self.fill(n)?;
        self.pos += n;
        Ok(&self.buf)
    }
    fn skip(&mut self, n: u64) -> Result<()> {
        let mut left = n;
        if left > 0 && self.peeked.take().is_some() {
            left -= 1;
        }
        let got = io::copy(&mut (&mut self.inner).take(left), &mut io::sink())
            .map_err(|e| Error::io(self.pos, &e))?;
        if got < left {
            return Err(Error::new(
                self.pos,
                ErrorKind::Truncated {
                    needed: n,
                    available: n - left + got,
                },
            ));
        }
        self.pos += n;
        Ok(())
    }
    fn at_eof(&mut self) -> Result<bool> {
        if self.peeked.is_some() {
            return Ok(false);
        }
        let mut b = [0u8; 1];
        loop {
            match self.inner.read(&mut b) {
                Ok(0) => return Ok(true),
                Ok(_) => {
                    self.peeked = Some(b[0]);
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::io(self.pos, &e)),
            }
        }
    }
    fn peek_byte(&mut self) -> Result<Option<u8>> {
        if self.at_eof()? {
            return Ok(None);
        }
        Ok(self.peeked)
    }
    fn drain(&mut self) -> Result<u64> {
        let mut n = self.peeked.take().map_or(0, |_| 1);
        n += io::copy(&mut self.inner, &mut io::sink()).map_err(|e| Error::io(self.pos, &e))?;
        self.pos += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A reader that returns at most `step` bytes per call.
    struct Dribble<'a>(&'a [u8], usize);
    impl Read for Dribble<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.1.min(out.len()).min(self.0.len());
            out[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn stream_and_slice_agree_on_reads_and_truncation() {
        let data: Vec<u8> = (0..100u8).collect();
        let mut s = SliceInput::new(&data);
        let mut t = StreamInput::new(Dribble(&data, 3));
        assert_eq!(s.read(10).unwrap(), t.read(10).unwrap());
        s.skip(5).unwrap();
        t.skip(5).unwrap();
        assert!(!t.at_eof().unwrap());
        assert_eq!(s.read(80).unwrap(), t.read(80).unwrap());
        assert_eq!(s.offset(), 95);
        assert_eq!(t.offset(), 95);
        let es = s.read(10).unwrap_err();
        let et = t.read(10).unwrap_err();
        assert_eq!(es.offset, 95);
        assert_eq!(et.offset, 95);
        assert_eq!(
            es.kind,
            ErrorKind::Truncated {
                needed: 10,
                available: 5
            }
        );
        assert_eq!(es.kind, et.kind);
    }

    #[test]
    fn huge_length_is_refused_without_allocating() {
        let data = [0u8; 4];
        let mut t = StreamInput::new(&data[..]);
        let e = t.read(u64::MAX).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::TooLarge { .. }));
        // A length under the cap but beyond the input only allocates what arrives.
        let e = t.read(MAX_RECORD_LEN).unwrap_err();
        assert!(matches!(e.kind, ErrorKind::Truncated { available: 4, .. }));
        assert!(t.buffer_capacity() < 1024);
    }
}
