//! ckpt-v21 framing: the `ckpt_hdr` record header, the one framing function
//! ([`Framer`]) and the `ckpt-inspect records` view ([`Records`]).

use super::*;

/// A record header as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hdr {
    /// Offset of the header.
    pub offset: u64,
    /// Type code.
    pub code: u32,
    /// Total length, header included.
    pub len: u64,
}

impl Hdr {
    pub(super) fn name(&self) -> &'static str {
        T.name(self.code)
    }
    pub(super) fn err(&self, kind: ErrorKind) -> Error {
        Error::new(self.offset, kind).in_record(self.code, self.name())
    }
}

/// The one framing function of ckpt-v21.
pub struct Framer<I> {
    pub(super) inp: I,
    peeked: Option<Hdr>,
}

impl<I: Input> Framer<I> {
    /// Frame the records of `inp`.
    pub fn new(inp: I) -> Self {
        Framer { inp, peeked: None }
    }
    /// Offset of the next record.
    pub fn offset(&self) -> u64 {
        self.peeked.map_or(self.inp.offset(), |h| h.offset)
    }
    /// The next header, not consumed; `None` at end of input.
    pub fn peek(&mut self) -> Result<Option<Hdr>> {
        if let Some(h) = self.peeked {
            return Ok(Some(h));
        }
        if self.inp.at_eof()? {
            return Ok(None);
        }
        let offset = self.inp.offset();
        let b = self.inp.read(HDR)?;
        let h = Hdr {
            offset,
            code: u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            len: u32::from_le_bytes([b[4], b[5], b[6], b[7]]) as u64,
        };
        if h.len < HDR {
            return Err(h.err(ErrorKind::BadLength {
                found: h.len,
                expected: "at least 8 (ckpt_hdr included)".into(),
            }));
        }
        self.peeked = Some(h);
        Ok(Some(h))
    }
    /// Consume the next record: its header and payload (after the header).
    pub fn take(&mut self) -> Result<(Hdr, &[u8])> {
        let Some(h) = self.peek()? else {
            return Err(Error::new(
                self.inp.offset(),
                ErrorKind::MissingTerminator {
                    expected: "a TAIL record",
                },
            ));
        };
        self.peeked = None;
        let p = self.inp.read(h.len - HDR).map_err(|e| {
            Error {
                offset: h.offset,
                ..e
            }
            .in_record(h.code, h.name())
        })?;
        Ok((h, p))
    }
    /// The framing-layer record.
    pub fn next_record(&mut self) -> Result<Option<RawRecord<'_>>> {
        if self.peek()?.is_none() {
            return Ok(None);
        }
        let (h, p) = self.take()?;
        let objref = if h.code == code("OBJREF") {
            p.get(4..8)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        } else {
            None
        };
        Ok(Some(RawRecord {
            offset: h.offset,
            type_code: h.code,
            name: h.name(),
            len: h.len,
            parent: 0,
            objref,
            payload: p,
        }))
    }
}

/// `RecordSource` over a v21 image.
pub struct Records<I> {
    fr: Framer<I>,
    failed: bool,
}

impl<I: Input> Records<I> {
    /// Records of `inp`.
    pub fn new(inp: I) -> Self {
        Records {
            fr: Framer::new(inp),

            failed: false,
        }
    }
}

impl<I: Input> RecordSource for Records<I> {
    fn next_record(&mut self) -> Result<Option<RawRecord<'_>>> {
        if self.failed {
            return Ok(None);
        }
        self.failed = true;
        let r = self.fr.next_record()?;
        self.failed = false;
        Ok(r)
    }
}
