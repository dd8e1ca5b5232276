//! cr-v5 framing: the record header, the one framing function ([`Framer`]) and
//! the `ckpt-inspect records` view ([`Records`]).

use super::*;

/// A record header as read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Hdr {
    /// Offset of the header's first byte.
    pub offset: u64,
    /// Type code (the s16 as unsigned).
    pub code: u32,
    /// Payload length.
    pub len: u64,
    /// Parent tag.
    pub parent: u32,
}

impl Hdr {
    pub(super) fn name(&self) -> &'static str {
        T.name(self.code)
    }
    pub(super) fn err(&self, kind: ErrorKind) -> Error {
        Error::new(self.offset, kind).in_record(self.code, self.name())
    }
}

/// The framing layer of cr-v5: each `cr_hdr` record, then each raw blob that
/// follows a record (PGARR pages, THREAD TLS array, MM_CONTEXT LDT) as a record
/// of its own whose length comes from the preceding payload.
pub struct Records<I> {
    fr: Framer<I>,
    failed: bool,
}

impl<I: Input> Records<I> {
    /// Frame records of `inp`, which must start at the HEAD record.
    pub fn new(inp: I) -> Self {
        Records {
            fr: Framer::new(inp),

            failed: false,
        }
    }
}

/// The one framing function of cr-v5, shared by [`Records`] and [`Decoder`].
pub struct Framer<I> {
    pub(super) inp: I,
    peeked: Option<Hdr>,
    raw: Option<(Hdr, &'static str, u64)>,
}

impl<I: Input> Framer<I> {
    /// Frame records of `inp`.
    pub fn new(inp: I) -> Self {
        Framer {
            inp,
            peeked: None,
            raw: None,
        }
    }

    /// Offset of the next unread byte.
    pub fn offset(&self) -> u64 {
        self.peeked.map_or(self.inp.offset(), |h| h.offset)
    }

    /// The next record header without consuming it; `None` at end of input.
    pub fn peek(&mut self) -> Result<Option<Hdr>> {
        if let Some(h) = self.peeked {
            return Ok(Some(h));
        }
        if self.inp.at_eof()? {
            return Ok(None);
        }
        let offset = self.inp.offset();
        let b = self.inp.read(L::HDR_LEN as u64)?;
        let ty = i16::from_le_bytes([b[0], b[1]]);
        let len = i16::from_le_bytes([b[2], b[3]]);
        let parent = u32::from_le_bytes([b[4], b[5], b[6], b[7]]);
        let h = Hdr {
            offset,
            code: ty as u16 as u32,
            len: 0,
            parent,
        };
        if len < 0 {
            return Err(h.err(ErrorKind::BadLength {
                found: len as i64 as u64,
                expected: "0..=32767 (s16 payload length)".into(),
            }));
        }
        let h = Hdr {
            len: len as u64,
            ..h
        };
        self.peeked = Some(h);
        Ok(Some(h))
    }

    /// Consume the peeked (or next) header and read its payload.
    pub fn payload(&mut self) -> Result<(Hdr, &[u8])> {
        let h = match self.peek()? {
            Some(h) => h,
            None => {
                return Err(Error::new(
                    self.inp.offset(),
                    ErrorKind::MissingTerminator {
                        expected: "a TAIL record",
                    },
                ))
            }
        };
        self.peeked = None;
        let p = self.inp.read(h.len).map_err(|e| {
            Error {
                offset: h.offset,
                ..e
            }
            .in_record(h.code, h.name())
        })?;
        // The raw blob that follows, by the rule of the record type.
        let raw = trailer_len(&h, p)?;
        self.raw = raw.map(|(name, n)| (h, name, n));
        Ok((h, p))
    }

    /// Read the raw blob announced by the last payload (empty if none).
    pub fn raw(&mut self) -> Result<(u64, &[u8])> {
        match self.raw.take() {
            None => Ok((self.inp.offset(), &[])),
            Some((h, _, n)) => {
                let off = self.inp.offset();
                let b = self
                    .inp
                    .read(n)
                    .map_err(|e| e.in_record(h.code, h.name()))?;
                Ok((off, b))
            }
        }
    }

    /// The next framing-layer record.
    pub fn next_record(&mut self) -> Result<Option<RawRecord<'_>>> {
        if let Some((h, name, _)) = self.raw {
            let (off, b) = self.raw()?;
            return Ok(Some(RawRecord {
                offset: off,
                type_code: h.code,
                name,
                len: b.len() as u64,
                parent: h.parent,
                objref: None,
                payload: b,
            }));
        }
        if self.peek()?.is_none() {
            return Ok(None);
        }
        let (h, p) = self.payload()?;
        let objref = if h.code == code("FD_ENT") || h.code == code("MM") || h.code == code("FILES")
        {
            Some(T.st(h.name()).get(p, "objref") as u32)
        } else if h.code == code("FD_DATA") {
            Some(h.parent)
        } else {
            None
        };
        Ok(Some(RawRecord {
            offset: h.offset,
            type_code: h.code,
            name: h.name(),
            len: L::HDR_LEN as u64 + h.len,
            parent: h.parent,
            objref,
            payload: p,
        }))
    }
}

/// Length of the raw blob after a record, from its payload (research §3.5–3.6).
fn trailer_len(h: &Hdr, p: &[u8]) -> Result<Option<(&'static str, u64)>> {
    let need = |n: usize| -> Result<()> {
        if p.len() < n {
            Err(h.err(ErrorKind::BadLength {
                found: p.len() as u64,
                expected: format!("{n}"),
            }))
        } else {
            Ok(())
        }
    };
    let too_large = |found: u64| {
        h.err(ErrorKind::TooLarge {
            found,
            limit: crate::input::MAX_RECORD_LEN,
        })
    };
    if h.code == code("PGARR") {
        need(8)?;
        let n = T.st("PGARR").get(p, "nr_pages");
        if n == 0 {
            return Ok(None);
        }
        let len = n
            .checked_mul(ADDR + PAGE)
            .filter(|&l| l <= crate::input::MAX_RECORD_LEN)
            .ok_or_else(|| too_large(n))?;
        return Ok(Some(("PGARR_DATA", len)));
    }
    if h.code == code("THREAD") {
        need(4)?;
        let n = T.st("THREAD").get_i(p, "sizeof_tls_array");
        if n < 0 {
            return Err(h.err(ErrorKind::BadValue {
                field: "sizeof_tls_array",
                found: n as u64,
                expected: "a non-negative size".into(),
            }));
        }
        return Ok((n > 0).then_some(("TLS_ARRAY", n as u64)));
    }
    if h.code == code("MM_CONTEXT") {
        need(4)?;
        let st = T.st("MM_CONTEXT");
        let (sz, n) = (st.get_i(p, "ldt_entry_size"), st.get_i(p, "nldt"));
        if sz < 0 || n < 0 {
            return Err(h.err(ErrorKind::BadValue {
                field: "nldt",
                found: n as u64,
                expected: "non-negative nldt and ldt_entry_size".into(),
            }));
        }
        let len = (sz as u64) * (n as u64);
        return Ok((len > 0).then_some(("LDT_ARRAY", len)));
    }
    Ok(None)
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
