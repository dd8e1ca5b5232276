//! The `cr-v5` revision: Linux-CR RFC v5 (September 2008), era A, x86-32.
//!
//! ```text
//! record := cr_hdr{s16 type; s16 len; u32 parent} payload[len] raw?
//! image  := HEAD task+ TAIL
//! task   := TASK STRING(comm)
//!           MM ( VMA [FNAME] chunk* PGARR(0) ){map_count} MM_CONTEXT ldt_raw
//!           FILES ( FD_ENT [FD_DATA FNAME] ){nfds}
//!           THREAD tls_raw CPU(+xstate inside the payload)
//! chunk  := PGARR(n>0) vaddrs_raw[n x u32] pages_raw[n x 4096]
//! ```
//!
//! The stream is not padded between records (research §3.1): a 14-byte FNAME
//! is followed directly by the next `cr_hdr`. Layouts are in
//! [`crate::layout::crv5`]; [`Records`] is the one framing function, used by
//! [`Decoder`] and by `ckpt-inspect records`.
//!
//! Era-A kernels left struct padding uninitialised; the decoder records every
//! non-zero pad field in [`Decoder::warnings`] and the encoder writes zeros.

use crate::convert::Plan;
use crate::error::{Error, ErrorKind, Result};
use crate::input::{Input, SliceInput};
use crate::layout::crv5::{self as L, TABLE as T};
use crate::layout::derive;
use crate::model::*;
use crate::{EventSink, EventSource, RawRecord, ReadOptions, RecordSource};
use std::borrow::Cow;
use std::collections::HashSet;
use std::io::{self, BufWriter, Write};

const PAGE: u64 = 4096;
const ADDR: u64 = 4;
const MAX_WARNINGS: usize = 1000;

/// This module's revision, for messages.
const REV: Revision = Revision::CrV5;

fn code(name: &str) -> u32 {
    T.code(name)
}

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
    fn name(&self) -> &'static str {
        T.name(self.code)
    }
    fn err(&self, kind: ErrorKind) -> Error {
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
    inp: I,
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

/// A struct pad field that held non-zero bytes (era-A kernels did not zero them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PadWarning {
    /// Offset of the pad bytes in the image.
    pub offset: u64,
    /// Record type name.
    pub record: &'static str,
    /// Pad field name.
    pub field: &'static str,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Head,
    TaskStart,
    Mm,
    Vma(u32),
    Chunk(u32),
    Files,
    Fd(u32),
    Thread,
    Done,
}

/// The cr-v5 decoder, generic over the input (slice: zero-copy; stream: one buffer).
pub struct Decoder<I> {
    inner: Inner<I>,
    checker: crate::validate::Checker,
    failed: bool,
}

impl<I: Input> Decoder<I> {
    /// Decode `inp`, which starts at the HEAD record.
    pub fn new(inp: I, _opts: ReadOptions) -> Self {
        Decoder {
            inner: Inner {
                rec: Framer::new(inp),
                state: State::Head,
                pid: 0,
                mm: Mm::default(),
                mm_objref: 0,
                seen_files: HashSet::new(),
                pending_fd: None,
                warnings: Vec::new(),
                more_warnings: 0,
                last_offset: 0,
            },
            checker: crate::validate::Checker::new(),
            failed: false,
        }
    }

    /// Non-zero padding seen so far (at most 1000; see [`Decoder::warnings_dropped`]).
    pub fn warnings(&self) -> &[PadWarning] {
        &self.inner.warnings
    }

    /// Number of pad warnings beyond the first 1000.
    pub fn warnings_dropped(&self) -> u64 {
        self.inner.more_warnings
    }
}

struct Inner<I> {
    rec: Framer<I>,
    state: State,
    pid: u32,
    mm: Mm,
    mm_objref: u32,
    seen_files: HashSet<u32>,
    pending_fd: Option<Fd>,
    warnings: Vec<PadWarning>,
    more_warnings: u64,
    last_offset: u64,
}

impl<I: Input> Inner<I> {
    fn pad(&mut self, h: &Hdr, st: &str, p: &[u8]) {
        for (field, off) in T.st(st).nonzero_padding(p) {
            if self.warnings.len() < MAX_WARNINGS {
                self.warnings.push(PadWarning {
                    offset: h.offset + L::HDR_LEN as u64 + off as u64,
                    record: T.st(st).name,
                    field,
                });
            } else {
                self.more_warnings += 1;
            }
        }
    }

    /// Read the next record, requiring type `name`, payload length `len`
    /// (exact, or at least with `at_least`), and copy the payload.
    fn expect(&mut self, name: &'static str, len: Option<usize>) -> Result<(Hdr, Vec<u8>)> {
        let h = self.rec.peek()?.ok_or_else(|| {
            Error::new(
                self.rec.offset(),
                ErrorKind::MissingTerminator {
                    expected: "a TAIL record",
                },
            )
        })?;
        if h.code != code(name) {
            return Err(h.err(ErrorKind::UnexpectedRecord {
                found: format!("{} ({})", h.name(), h.code),
                expected: format!("{name} ({})", code(name)),
            }));
        }
        if let Some(l) = len {
            if h.len != l as u64 {
                return Err(h.err(ErrorKind::BadLength {
                    found: h.len,
                    expected: format!("{l} (sizeof {})", T.st(name).c_name),
                }));
            }
        }
        let (h, p) = self.rec.payload()?;
        Ok((h, p.to_vec()))
    }

    fn expect_struct(&mut self, name: &'static str) -> Result<(Hdr, Vec<u8>)> {
        let (h, p) = self.expect(name, Some(T.st(name).size))?;
        self.pad(&h, name, &p);
        Ok((h, p))
    }

    fn check_parent(h: &Hdr, expected: u32) -> Result<()> {
        if h.parent != expected {
            return Err(h.err(ErrorKind::BadParent {
                found: h.parent,
                expected,
            }));
        }
        Ok(())
    }

    /// FNAME: a path whose length includes the trailing NUL.
    fn fname(&mut self) -> Result<Vec<u8>> {
        let (h, p) = self.expect("FNAME", None)?;
        match p.split_last() {
            Some((0, path)) => Ok(path.to_vec()),
            _ => Err(h.err(ErrorKind::Invalid {
                found: "a file name without its trailing NUL".into(),
                expected: "len including the NUL".into(),
            })),
        }
    }

    fn step(&mut self) -> Result<Option<Event<'_>>> {
        if let Some(fd) = self.pending_fd.take() {
            return Ok(Some(Event::Fd(fd)));
        }
        self.last_offset = self.rec.offset();
        match self.state {
            State::Done => Ok(None),
            State::Head => {
                let (h, p) = self.expect_struct("HEAD")?;
                Self::check_parent(&h, 0)?;
                let st = T.st("HEAD");
                let magic = st.get(&p, "magic");
                if magic != crate::detect::CHECKPOINT_MAGIC_HEAD {
                    return Err(h.err(ErrorKind::BadMagic {
                        found: magic,
                        expected: crate::detect::CHECKPOINT_MAGIC_HEAD,
                    }));
                }
                let mut extras = Extras::new();
                let rev = st.get(&p, "rev");
                if rev != L::CR_VERSION as u64 {
                    extras.set_u64("cr_version", rev);
                }
                let s = |n: &str| derive::trim_nul(st.bytes(&p, n)).to_vec();
                self.state = State::TaskStart;
                Ok(Some(Event::Header(Header {
                    revision: Revision::CrV5,
                    arch: Arch::X86_32,
                    page_size: PAGE as u32,
                    kernel: Kernel {
                        major: st.get(&p, "major") as u16,
                        minor: st.get(&p, "minor") as u16,
                        patch: st.get(&p, "patch") as u16,
                        release: s("release"),
                        version: s("version"),
                        machine: s("machine"),
                    },
                    time: st.get(&p, "time"),
                    flags: st.get(&p, "flags"),
                    tool: String::new(),
                    tool_version: String::new(),
                    extras,
                })))
            }
            State::TaskStart => {
                let Some(h) = self.rec.peek()? else {
                    return Err(Error::new(
                        self.rec.offset(),
                        ErrorKind::MissingTerminator {
                            expected: "a TAIL record",
                        },
                    ));
                };
                if h.code == code("TAIL") {
                    let (h, p) = self.expect_struct("TAIL")?;
                    Self::check_parent(&h, 0)?;
                    let magic = T.st("TAIL").get(&p, "magic");
                    if magic != crate::detect::CHECKPOINT_MAGIC_TAIL {
                        return Err(h.err(ErrorKind::BadMagic {
                            found: magic,
                            expected: crate::detect::CHECKPOINT_MAGIC_TAIL,
                        }));
                    }
                    let off = self.rec.offset();
                    let extra = self.rec.inp.drain()?;
                    if extra > 0 {
                        return Err(Error::new(off, ErrorKind::TrailingData { bytes: extra }));
                    }
                    self.state = State::Done;
                    return Ok(Some(Event::Tail));
                }
                if h.code != code("TASK") {
                    if T.name(h.code) != "unknown" {
                        return Err(h.err(ErrorKind::UnexpectedRecord {
                            found: h.name().into(),
                            expected: "TASK or TAIL".into(),
                        }));
                    }
                    let (h, p) = self.rec.payload()?;
                    return Ok(Some(Event::Unknown(Unknown {
                        revision: Revision::CrV5,
                        type_code: h.code,
                        parent: h.parent,
                        payload: Cow::Borrowed(p),
                    })));
                }
                let (h, p) = self.expect_struct("TASK")?;
                Self::check_parent(&h, 0)?;
                let st = T.st("TASK");
                let comm_len = st.get_i(&p, "task_comm_len");
                let (sh, comm) = self.expect("STRING", None)?;
                if comm.len() as i64 != comm_len {
                    return Err(sh.err(ErrorKind::BadLength {
                        found: comm.len() as u64,
                        expected: format!("{comm_len} (task_comm_len)"),
                    }));
                }
                // The pid is the parent tag of the task's next record (MM).
                let next = self.rec.peek()?.ok_or_else(|| {
                    Error::new(
                        self.rec.offset(),
                        ErrorKind::MissingTerminator {
                            expected: "the MM record of the task",
                        },
                    )
                })?;
                self.pid = next.parent;
                let mut extras = Extras::new();
                if comm_len != L::TASK_COMM_LEN as i64 {
                    extras.set_u64("task_comm_len", comm_len as u64);
                }
                self.state = State::Mm;
                self.seen_files.clear();
                let pid = self.pid as i32;
                Ok(Some(Event::Task(Task {
                    pid,
                    tgid: pid,
                    comm: derive::trim_nul(&comm).to_vec(),
                    state: st.get(&p, "state") as u32,
                    exit_state: st.get(&p, "exit_state") as u32,
                    exit_code: st.get(&p, "exit_code") as u32,
                    exit_signal: st.get(&p, "exit_signal") as u32,
                    extras,
                    ..Task::default()
                })))
            }
            State::Mm => {
                let (h, p) = self.expect_struct("MM")?;
                Self::check_parent(&h, self.pid)?;
                let st = T.st("MM");
                let g = |n: &str| st.get(&p, n);
                self.mm_objref = g("objref") as u32;
                let mut extras = Extras::new();
                if self.mm_objref != 0 {
                    extras.set_u64("mm_objref", self.mm_objref as u64);
                }
                self.mm = Mm {
                    start_code: g("start_code"),
                    end_code: g("end_code"),
                    start_data: g("start_data"),
                    end_data: g("end_data"),
                    start_brk: g("start_brk"),
                    brk: g("brk"),
                    start_stack: g("start_stack"),
                    arg_start: g("arg_start"),
                    arg_end: g("arg_end"),
                    env_start: g("env_start"),
                    env_end: g("env_end"),
                    extras,
                    ..Mm::default()
                };
                self.state = State::Vma(g("map_count") as u32);
                Ok(Some(Event::Mm(self.mm.clone())))
            }
            State::Vma(0) => {
                let (h, p) = self.expect_struct("MM_CONTEXT")?;
                Self::check_parent(&h, self.mm_objref)?;
                let (_, ldt) = self.rec.raw()?;
                self.state = State::Files;
                let st = T.st("MM_CONTEXT");
                if st.get_i(&p, "nldt") == 0 && st.get_i(&p, "ldt_entry_size") == 8 {
                    return self.step();
                }
                let mut payload = p;
                payload.extend_from_slice(ldt);
                Ok(Some(Event::Unknown(Unknown {
                    revision: Revision::CrV5,
                    type_code: h.code,
                    parent: h.parent,
                    payload: Cow::Owned(payload),
                })))
            }
            State::Vma(n) => {
                let (h, p) = self.expect_struct("VMA")?;
                Self::check_parent(&h, 0)?;
                let st = T.st("VMA");
                let g = |n: &str| st.get(&p, n);
                let (start, end, flags) = (g("vm_start"), g("vm_end"), g("vm_flags"));
                let (kind, file) = match g("vma_type") as u32 {
                    L::VMA_ANON => (derive::anon_kind(start, end, &self.mm), None),
                    L::VMA_FILE => (VmaKind::File, Some(self.fname()?)),
                    t => {
                        return Err(h.err(ErrorKind::BadValue {
                            field: "vma_type",
                            found: t as u64,
                            expected: "1 (CR_VMA_ANON) or 2 (CR_VMA_FILE)".into(),
                        }))
                    }
                };
                let mut extras = Extras::new();
                let prot = g("vm_page_prot");
                if prot != derive::default_page_prot(Arch::X86_32, flags) {
                    extras.set_u64("vm_page_prot", prot);
                }
                self.state = State::Chunk(n);
                Ok(Some(Event::Vma(Vma {
                    start,
                    end,
                    prot: derive::prot_of(flags),
                    flags,
                    pgoff: g("vm_pgoff"),
                    kind,
                    file,
                    extras,
                })))
            }
            State::Chunk(n) => {
                let (h, p) = self.expect("PGARR", Some(8))?;
                Self::check_parent(&h, 0)?;
                let nr = T.st("PGARR").get(&p, "nr_pages");
                if nr == 0 {
                    self.state = State::Vma(n - 1);
                    return Ok(Some(Event::VmaEnd));
                }
                let (_, b) = self.rec.raw()?;
                let (a, d) = b.split_at((nr * ADDR) as usize);
                let addrs = Addrs::from_le_bytes(a, ADDR as u8).ok_or_else(|| {
                    Error::invalid(h.offset, "page address list", "a multiple of 4 bytes")
                })?;
                Ok(Some(Event::Pages(PageChunk {
                    addrs,
                    data: Cow::Borrowed(d),
                })))
            }
            State::Files => {
                let (h, p) = self.expect_struct("FILES")?;
                Self::check_parent(&h, self.pid)?;
                let st = T.st("FILES");
                if st.get(&p, "objref") != 0 {
                    return Err(h.err(ErrorKind::BadValue {
                        field: "objref",
                        found: st.get(&p, "objref"),
                        expected: "0 (files_struct objref is always 0 in v5)".into(),
                    }));
                }
                self.state = State::Fd(st.get(&p, "nfds") as u32);
                self.step()
            }
            State::Fd(0) => {
                self.state = State::Thread;
                self.step()
            }
            State::Fd(n) => {
                let (h, p) = self.expect_struct("FD_ENT")?;
                Self::check_parent(&h, 0)?;
                let st = T.st("FD_ENT");
                let objref = st.get(&p, "objref") as u32;
                let cloexec = st.get(&p, "close_on_exec");
                if cloexec > 1 {
                    return Err(h.err(ErrorKind::BadValue {
                        field: "close_on_exec",
                        found: cloexec,
                        expected: "0 or 1".into(),
                    }));
                }
                let fd = Fd {
                    fd: st.get_i(&p, "fd") as i32,
                    cloexec: cloexec == 1,
                    file: objref,
                };
                self.state = State::Fd(n - 1);
                if !self.seen_files.insert(objref) {
                    return Ok(Some(Event::Fd(fd)));
                }
                let (dh, d) = self.expect_struct("FD_DATA")?;
                Self::check_parent(&dh, objref)?;
                let path = self.fname()?;
                let st = T.st("FD_DATA");
                let kind = match st.get(&d, "fd_type") as u16 {
                    L::FD_FILE => FileKind::Regular,
                    L::FD_DIR => FileKind::Directory,
                    L::FD_LINK => FileKind::Other,
                    t => {
                        return Err(dh.err(ErrorKind::BadValue {
                            field: "fd_type",
                            found: t as u64,
                            expected: "1 (file), 2 (dir) or 3 (link)".into(),
                        }))
                    }
                };
                let mut extras = Extras::new();
                if st.get(&d, "f_version") != 0 {
                    extras.set_u64("f_version", st.get(&d, "f_version"));
                }
                self.pending_fd = Some(fd);
                Ok(Some(Event::File(File {
                    id: objref,
                    kind,
                    path,
                    flags: st.get(&d, "f_flags") as u32,
                    mode: st.get(&d, "f_mode") as u32,
                    pos: st.get(&d, "f_pos"),
                    pipe: None,
                    extras,
                })))
            }
            State::Thread => {
                let (h, p) = self.expect_struct("THREAD")?;
                Self::check_parent(&h, self.pid)?;
                let (_, tls) = self.rec.raw()?;
                let tls = tls.to_vec();
                let st = T.st("THREAD");
                let mut extras = Extras::new();
                let gdt = st.get_i(&p, "gdt_entry_tls_entries");
                if gdt != (tls.len() / 8) as i64 {
                    extras.set_u64("gdt_entry_tls_entries", gdt as u64);
                }
                let ntls = st.get_i(&p, "ntls");
                if ntls != count_tls(&tls) as i64 {
                    extras.set_u64("ntls", ntls as u64);
                }
                let cpu_fixed = T.st("CPU").size;
                let ch = self.rec.peek()?;
                if let Some(ch) = ch {
                    if ch.code == code("CPU") && (ch.len as usize) < cpu_fixed {
                        return Err(ch.err(ErrorKind::BadLength {
                            found: ch.len,
                            expected: format!("at least {cpu_fixed}"),
                        }));
                    }
                }
                let (ch, c) = self.expect("CPU", None)?;
                Self::check_parent(&ch, self.pid)?;
                self.pad(&ch, "CPU", &c);
                let st = T.st("CPU");
                let mut regs = [0u64; 27];
                for (name, i) in L::CPU_REGS {
                    regs[i] = st.get(&c, name);
                }
                for i in 0..8 {
                    let n = format!("debugreg{i}");
                    let v = st.get(&c, &n);
                    if v != 0 {
                        extras.set_u64(&n, v);
                    }
                }
                for (n, default) in [("uses_debug", 0), ("has_fxsr", 1)] {
                    let v = st.get(&c, n);
                    if v != default {
                        extras.set_u64(n, v);
                    }
                }
                let used_math = st.get(&c, "used_math");
                if used_math > 1 {
                    extras.set_u64("used_math", used_math);
                }
                let xstate = c[cpu_fixed..].to_vec();
                let fpu = if used_math != 0 {
                    Some(Fpu {
                        kind: FpuKind::Legacy,
                        xfeatures: 0,
                        data: xstate,
                    })
                } else {
                    if !xstate.is_empty() {
                        extras.set_bytes("legacy_xstate", &xstate);
                    }
                    None
                };
                self.state = State::TaskStart;
                Ok(Some(Event::Thread(Thread {
                    tid: self.pid as i32,
                    regs: Regs::from_array(regs),
                    fpu,
                    tls,
                    sigmask: 0,
                    extras,
                })))
            }
        }
    }
}

/// Number of non-empty 8-byte descriptors in an i386 TLS array.
fn count_tls(tls: &[u8]) -> usize {
    tls.chunks(8).filter(|d| d.iter().any(|&b| b != 0)).count()
}

impl<I: Input> EventSource for Decoder<I> {
    fn next_event(&mut self) -> Result<Option<Event<'_>>> {
        if self.failed {
            return Ok(None);
        }
        self.failed = true;
        let off = self.inner.rec.offset();
        let ev = self.inner.step()?;
        match &ev {
            Some(e) => self.checker.check(e, off)?,
            None => self.checker.finish(off)?,
        }
        self.failed = false;
        Ok(ev)
    }
    fn offset(&self) -> u64 {
        self.inner.last_offset
    }
}

/// Decoder over a slice (zero-copy).
pub fn open_slice(b: &[u8], o: ReadOptions) -> Result<Box<dyn EventSource + '_>> {
    Ok(Box::new(Decoder::new(SliceInput::new(b), o)))
}

/// Decoder over any input (a stream).
pub fn open_stream<'r, I: Input + 'r>(i: I, o: ReadOptions) -> Result<Box<dyn EventSource + 'r>> {
    Ok(Box::new(Decoder::new(i, o)))
}

/// Byte sink that counts what it wrote.
pub(crate) struct Out<W: Write> {
    w: BufWriter<W>,
    /// Bytes written so far.
    pub pos: u64,
}

impl<W: Write> Out<W> {
    pub(crate) fn new(w: W) -> Self {
        Out {
            w: BufWriter::with_capacity(1 << 16, w),
            pos: 0,
        }
    }
    pub(crate) fn put(&mut self, b: &[u8]) -> Result<()> {
        self.w.write_all(b).map_err(|e| Error::io(self.pos, &e))?;
        self.pos += b.len() as u64;
        Ok(())
    }
    pub(crate) fn flush(&mut self) -> Result<()> {
        self.w.flush().map_err(|e| Error::io(self.pos, &e))
    }
}

/// A zero page buffer for writing out all-zero runs (64 pages).
pub(crate) static ZEROS: [u8; 64 * 4096] = [0u8; 64 * 4096];

enum FileEv {
    File(File),
    Fd(Fd),
}

/// The cr-v5 encoder.
///
/// It needs the number of VMAs of each mm before writing the MM record: give
/// it a [`Plan`] (what [`crate::convert`] does, from a first pass), or none for
/// a dry run that writes placeholder counts. [`encoder`] (no plan) buffers the
/// whole image and runs both passes itself.
///
/// Items the revision cannot represent are refused with
/// `ErrorKind::Unrepresentable`, or, when `lossy`, dropped or defaulted and
/// listed in [`Encoder::items`].
pub struct Encoder<W: Write> {
    out: Out<W>,
    plan: Option<Plan>,
    losses: crate::convert::Losses,
    tasks: u32,
    skipping: bool,
    in_task: bool,
    pid: u32,
    comm: String,
    mm: Option<Mm>,
    mm_open: bool,
    mm_index: usize,
    vmas: u32,
    map_count: u32,
    in_vma: bool,
    thread: Option<Thread>,
    files: Vec<FileEv>,
    /// Unknown records after the task's Thread: written after THREAD/CPU,
    /// where a decoder finds them (between this task and the next).
    after_thread: Vec<Vec<u8>>,
    zero_pages: u64,
    finished: bool,
    checker: crate::validate::Checker,
}

impl<W: Write> Encoder<W> {
    /// An encoder writing to `w`. `plan` = None: dry run (placeholder counts).
    pub fn new(w: W, plan: Option<Plan>, lossy: bool) -> Self {
        Encoder {
            out: Out::new(w),
            plan,
            losses: crate::convert::Losses::new(lossy),
            tasks: 0,
            skipping: false,
            in_task: false,
            pid: 0,
            comm: String::new(),
            mm: None,
            mm_open: false,
            mm_index: 0,
            after_thread: Vec::new(),
            vmas: 0,
            map_count: 0,
            in_vma: false,
            thread: None,
            files: Vec::new(),
            zero_pages: 0,
            finished: false,
            checker: crate::validate::Checker::new(),
        }
    }

    /// Every item dropped or defaulted so far (lossy mode).
    pub fn items(&self) -> &[String] {
        &self.losses.items
    }

    /// Information about lossless rewrites (zero runs written as pages ...).
    pub fn notes(&self) -> &[String] {
        &self.losses.notes
    }

    /// Bytes written.
    pub fn bytes_written(&self) -> u64 {
        self.out.pos
    }

    fn task_ctx(&self) -> Option<(i64, &str)> {
        self.in_task
            .then_some((self.pid as i64, self.comm.as_str()))
    }

    fn item(&mut self, what: String) -> Result<()> {
        let (pos, task) = (self.out.pos, self.task_ctx());
        let task = task.map(|(p, c)| (p, c.to_string()));
        self.losses
            .item(pos, task.as_ref().map(|(p, c)| (*p, c.as_str())), what)
    }

    fn extras(&mut self, ctx: &str, ex: &Extras, placed: &[&str]) -> Result<()> {
        let pos = self.out.pos;
        let task = self.task_ctx().map(|(p, c)| (p, c.to_string()));
        let task = task.as_ref().map(|(p, c)| (*p, c.as_str()));
        self.losses.unplaced_extras(pos, task, REV, ctx, ex, placed)
    }

    fn rec(&mut self, name: &str, parent: u32, payload: &[u8]) -> Result<()> {
        let len = payload.len();
        if len > i16::MAX as usize {
            return Err(Error::new(
                self.out.pos,
                ErrorKind::Unrepresentable {
                    items: vec![format!(
                        "{name} record of {len} bytes exceeds the s16 length of cr_hdr"
                    )],
                },
            ));
        }
        let mut h = [0u8; 8];
        h[0..2].copy_from_slice(&(code(name) as u16).to_le_bytes());
        h[2..4].copy_from_slice(&(len as u16).to_le_bytes());
        h[4..8].copy_from_slice(&parent.to_le_bytes());
        self.out.put(&h)?;
        self.out.put(payload)
    }

    fn fname(&mut self, path: &[u8]) -> Result<()> {
        let mut p = Vec::with_capacity(path.len() + 1);
        p.extend_from_slice(path);
        p.push(0);
        if p.len() > i16::MAX as usize {
            self.item(format!("file name of {} bytes is too long", path.len()))?;
            p.truncate(i16::MAX as usize - 1);
            p.push(0);
        }
        self.rec("FNAME", 0, &p)
    }

    fn header(&mut self, h: &Header) -> Result<()> {
        if h.arch != Arch::X86_32 {
            self.item(format!(
                "header: arch {} (cr-v5 is x86-32 only; its tasks cannot be restarted)",
                h.arch
            ))?;
        }
        if h.page_size != PAGE as u32 {
            self.item(format!("header: page size {}", h.page_size))?;
        }
        if !h.tool.is_empty() || !h.tool_version.is_empty() {
            self.item(format!("header: tool `{} {}`", h.tool, h.tool_version))?;
        }
        self.extras("header", &h.extras, &["cr_version"])?;
        let st = T.st("HEAD");
        let mut p = st.zeroed();
        st.put(&mut p, "magic", crate::detect::CHECKPOINT_MAGIC_HEAD);
        st.put(&mut p, "major", h.kernel.major as u64);
        st.put(&mut p, "minor", h.kernel.minor as u64);
        st.put(&mut p, "patch", h.kernel.patch as u64);
        let rev = h.extras.u64("cr_version").unwrap_or(L::CR_VERSION as u64);
        st.put(&mut p, "rev", rev);
        st.put(&mut p, "time", h.time);
        st.put(&mut p, "flags", h.flags);
        for (n, v) in [
            ("release", &h.kernel.release),
            ("version", &h.kernel.version),
            ("machine", &h.kernel.machine),
        ] {
            if v.len() > L::UTS_LEN {
                self.item(format!(
                    "header: uts {n} of {} bytes cut to {}",
                    v.len(),
                    L::UTS_LEN
                ))?;
            }
            st.put_bytes(&mut p, n, v);
        }
        self.rec("HEAD", 0, &p)
    }

    fn task(&mut self, t: &Task) -> Result<()> {
        self.end_task()?;
        self.tasks += 1;
        self.pid = t.pid as u32;
        self.comm = String::from_utf8_lossy(&t.comm).into_owned();
        if self.tasks > 1 {
            self.in_task = true;
            self.skipping = true;
            return self.item(
                "a second task (cr-v5 checkpoints one task): dropped with all its state".into(),
            );
        }
        self.in_task = true;
        self.skipping = false;
        if t.tgid != t.pid {
            self.item(format!("tgid {} differs from pid", t.tgid))?;
        }
        for (n, v) in [("ppid", t.ppid), ("pgid", t.pgid), ("sid", t.sid)] {
            if v != 0 {
                self.item(format!("{n} {v} (cr-v5 records no {n})"))?;
            }
        }
        if t.creds != Creds::default() {
            self.item("credentials (cr-v5 records none)".into())?;
        }
        self.extras("task", &t.extras, &["task_comm_len"])?;
        let comm_len = t
            .extras
            .u64("task_comm_len")
            .unwrap_or(L::TASK_COMM_LEN as u64)
            .min(i16::MAX as u64) as usize;
        if t.comm.len() > comm_len {
            self.item(format!("comm of {} bytes cut to {comm_len}", t.comm.len()))?;
        }
        let st = T.st("TASK");
        let mut p = st.zeroed();
        st.put(&mut p, "state", t.state as u64);
        st.put(&mut p, "exit_state", t.exit_state as u64);
        st.put(&mut p, "exit_code", t.exit_code as u64);
        st.put(&mut p, "exit_signal", t.exit_signal as u64);
        st.put(&mut p, "task_comm_len", comm_len as u64);
        self.rec("TASK", 0, &p)?;
        let mut comm = vec![0u8; comm_len];
        let n = t.comm.len().min(comm_len);
        comm[..n].copy_from_slice(&t.comm[..n]);
        self.rec("STRING", 0, &comm)
    }

    fn mm(&mut self, m: &Mm) -> Result<()> {
        self.mm_planned(m, true)
    }

    /// Write an MM record. `planned`: an Mm event of the image, counted by
    /// the plan; otherwise the empty mm the encoder adds to a task without
    /// one (no VMAs, no plan entry).
    fn mm_planned(&mut self, m: &Mm, planned: bool) -> Result<()> {
        if self.mm.is_some() {
            return self.item("a second mm: dropped".into());
        }
        if !m.auxv.is_empty() {
            self.item(format!("mm: auxv of {} words", m.auxv.len()))?;
        }
        if let Some(e) = &m.exe {
            self.item(format!("mm: exe `{}`", String::from_utf8_lossy(e)))?;
        }
        if m.personality != 0 {
            self.item(format!("mm: personality {:#x}", m.personality))?;
        }
        self.extras("mm", &m.extras, &["mm_objref"])?;
        let count = match &self.plan {
            Some(p) if planned => *p.map_counts.get(self.mm_index).ok_or_else(|| {
                Error::invalid(
                    self.out.pos,
                    "more mm events than the plan",
                    "a plan of this image",
                )
            })?,
            _ => 0,
        };
        if planned {
            self.mm_index += 1;
        }
        self.map_count = count;
        self.vmas = 0;
        let st = T.st("MM");
        let mut p = st.zeroed();
        st.put(&mut p, "objref", m.extras.u64("mm_objref").unwrap_or(0));
        st.put(&mut p, "map_count", count as u64);
        for (n, v) in [
            ("start_code", m.start_code),
            ("end_code", m.end_code),
            ("start_data", m.start_data),
            ("end_data", m.end_data),
            ("start_brk", m.start_brk),
            ("brk", m.brk),
            ("start_stack", m.start_stack),
            ("arg_start", m.arg_start),
            ("arg_end", m.arg_end),
            ("env_start", m.env_start),
            ("env_end", m.env_end),
        ] {
            st.put(&mut p, n, v);
        }
        let pid = self.pid;
        self.rec("MM", pid, &p)?;
        self.mm = Some(m.clone());
        self.mm_open = true;
        Ok(())
    }

    /// Close the mm section: MM_CONTEXT (derived: empty LDT), unless `ctx` carries the original.
    fn close_mm(&mut self, ctx: Option<&Unknown<'_>>) -> Result<()> {
        if !self.mm_open {
            return Ok(());
        }
        self.mm_open = false;
        if self.plan.is_some() && self.vmas != self.map_count {
            return Err(Error::invalid(
                self.out.pos,
                format!("{} VMAs", self.vmas),
                format!("{} as planned", self.map_count),
            ));
        }
        let objref = self
            .mm
            .as_ref()
            .and_then(|m| m.extras.u64("mm_objref"))
            .unwrap_or(0) as u32;
        match ctx {
            Some(u) => {
                let n = T.st("MM_CONTEXT").size.min(u.payload.len());
                let (s, raw) = u.payload.split_at(n);
                self.rec("MM_CONTEXT", u.parent, s)?;
                self.out.put(raw)
            }
            None => {
                let st = T.st("MM_CONTEXT");
                let mut p = st.zeroed();
                st.put(&mut p, "ldt_entry_size", 8);
                self.rec("MM_CONTEXT", objref, &p)
            }
        }
    }

    fn vma(&mut self, v: &Vma) -> Result<()> {
        if self.in_vma {
            return Err(Error::invalid(
                self.out.pos,
                "a VMA inside a VMA",
                "VmaEnd first",
            ));
        }
        let Some(mm) = self.mm.clone() else {
            return Err(Error::invalid(
                self.out.pos,
                "a VMA before the mm",
                "an Mm event first",
            ));
        };
        self.vmas += 1;
        self.in_vma = true;
        let at = format!("VMA {:#x}-{:#x}", v.start, v.end);
        let ty = match v.kind {
            VmaKind::File => {
                if v.file.is_none() {
                    self.item(format!("{at}: file mapping without a path"))?;
                }
                L::VMA_FILE
            }
            k @ (VmaKind::Anon | VmaKind::Heap | VmaKind::Stack) => {
                if derive::anon_kind(v.start, v.end, &mm) != k {
                    self.item(format!("{at}: kind {} (written as anonymous)", k.name()))?;
                }
                if v.file.is_some() {
                    self.item(format!("{at}: file path of an anonymous mapping"))?;
                }
                L::VMA_ANON
            }
            k => {
                self.item(format!("{at}: kind {} (written as anonymous)", k.name()))?;
                L::VMA_ANON
            }
        };
        if v.prot != derive::prot_of(v.flags) {
            self.item(format!("{at}: prot {:#x} differs from vm_flags", v.prot))?;
        }
        self.extras(&at, &v.extras, &["vm_page_prot"])?;
        let st = T.st("VMA");
        let mut p = st.zeroed();
        st.put(&mut p, "vma_type", ty as u64);
        st.put(&mut p, "vm_start", v.start);
        st.put(&mut p, "vm_end", v.end);
        let prot = v
            .extras
            .u64("vm_page_prot")
            .unwrap_or_else(|| derive::default_page_prot(Arch::X86_32, v.flags));
        st.put(&mut p, "vm_page_prot", prot);
        st.put(&mut p, "vm_flags", v.flags);
        st.put(&mut p, "vm_pgoff", v.pgoff);
        self.rec("VMA", 0, &p)?;
        if ty == L::VMA_FILE {
            let path = v.file.clone().unwrap_or_default();
            self.fname(&path)?;
        }
        Ok(())
    }

    fn pages(&mut self, c: &PageChunk<'_>) -> Result<()> {
        let n = c.addrs.len();
        if c.data.len() as u64 != n as u64 * PAGE {
            return Err(Error::invalid(
                self.out.pos,
                format!("{} bytes of page data for {n} pages", c.data.len()),
                "4096 bytes per page",
            ));
        }
        let ps = PAGE as usize;
        let all: Vec<u64> = c.addrs.iter().collect();
        let high = all.iter().filter(|&&a| a > u32::MAX as u64).count();
        if high > 0 {
            self.item(format!(
                "{high} page(s) above 4 GiB (cr-v5 page addresses are 32-bit): dropped"
            ))?;
        }
        let mut start = 0;
        while start < n {
            let k = (n - start).min(L::PGARR_CHUNK);
            let idx = start..start + k;
            let kept: Vec<usize> = idx.filter(|&i| all[i] <= u32::MAX as u64).collect();
            if !kept.is_empty() {
                let mut addrs = Vec::with_capacity(kept.len() * 4);
                for &i in &kept {
                    addrs.extend_from_slice(&(all[i] as u32).to_le_bytes());
                }
                self.rec("PGARR", 0, &(kept.len() as u64).to_le_bytes())?;
                self.out.put(&addrs)?;
                if kept.len() == k {
                    self.out.put(&c.data[start * ps..(start + k) * ps])?;
                } else {
                    for &i in &kept {
                        self.out.put(&c.data[i * ps..(i + 1) * ps])?;
                    }
                }
            }
            start += k;
        }
        Ok(())
    }

    fn zero_pages(&mut self, z: &ZeroRun) -> Result<()> {
        let per = ZEROS.len() / PAGE as usize;
        let mut left = z.count;
        let mut addr = z.start;
        self.zero_pages += z.count;
        while left > 0 {
            let k = left.min(per as u64) as usize;
            let mut addrs = Vec::with_capacity(k * 4);
            if addr.saturating_add(k as u64 * PAGE) > u32::MAX as u64 + 1 {
                self.item(format!(
                    "zero pages from {addr:#x} above 4 GiB (32-bit page addresses): dropped"
                ))?;
                left -= k as u64;
                addr = addr.saturating_add(k as u64 * PAGE);
                continue;
            }
            for i in 0..k as u64 {
                addrs.extend_from_slice(&((addr + i * PAGE) as u32).to_le_bytes());
            }
            self.rec("PGARR", 0, &(k as u64).to_le_bytes())?;
            self.out.put(&addrs)?;
            self.out.put(&ZEROS[..k * PAGE as usize])?;
            left -= k as u64;
            addr += k as u64 * PAGE;
        }
        Ok(())
    }

    /// Write what cr-v5 puts after the mm: FILES, FD_ENT/FD_DATA, THREAD, CPU.
    fn end_task(&mut self) -> Result<()> {
        if !self.in_task || self.skipping {
            self.in_task = false;
            return Ok(());
        }
        self.close_mm(None)?;
        if self.mm.is_none() {
            self.item("no mm (cr-v5 requires one): an empty mm written".into())?;
            self.mm_planned(&Mm::default(), false)?;
            self.close_mm(None)?;
        }
        let files = std::mem::take(&mut self.files);
        let nfds = files.iter().filter(|f| matches!(f, FileEv::Fd(_))).count();
        let st = T.st("FILES");
        let mut p = st.zeroed();
        st.put(&mut p, "nfds", nfds as u64);
        let pid = self.pid;
        self.rec("FILES", pid, &p)?;
        let mut defined: Vec<File> = Vec::new();
        let mut written: HashSet<u32> = HashSet::new();
        for f in &files {
            match f {
                FileEv::File(f) => defined.push(f.clone()),
                FileEv::Fd(fd) => {
                    let st = T.st("FD_ENT");
                    let mut p = st.zeroed();
                    st.put(&mut p, "objref", fd.file as u64);
                    st.put(&mut p, "fd", fd.fd as u32 as u64);
                    st.put(&mut p, "close_on_exec", fd.cloexec as u64);
                    self.rec("FD_ENT", 0, &p)?;
                    if written.insert(fd.file) {
                        let Some(file) = defined.iter().find(|f| f.id == fd.file).cloned() else {
                            return Err(Error::new(
                                self.out.pos,
                                ErrorKind::ObjrefUndefined { id: fd.file },
                            ));
                        };
                        self.fd_data(&file)?;
                    }
                }
            }
        }
        for f in &defined {
            if !written.contains(&f.id) {
                self.item(format!("file {} with no fd: dropped", f.id))?;
            }
        }
        let t = self.thread.take();
        let t = match t {
            Some(t) => t,
            None => {
                self.item("no thread state: zero registers written".into())?;
                Thread::default()
            }
        };
        self.thread_rec(&t)?;
        for r in std::mem::take(&mut self.after_thread) {
            self.out.put(&r)?;
        }
        self.mm = None;
        self.in_task = false;
        Ok(())
    }

    fn fd_data(&mut self, f: &File) -> Result<()> {
        let ty = match f.kind {
            FileKind::Regular => L::FD_FILE,
            FileKind::Directory => L::FD_DIR,
            FileKind::Other => L::FD_LINK,
            k => {
                self.item(format!(
                    "file {}: kind {} (written as a file)",
                    f.id,
                    k.name()
                ))?;
                L::FD_FILE
            }
        };
        if f.pipe.is_some() {
            self.item(format!("file {}: pipe reference", f.id))?;
        }
        if f.mode > u16::MAX as u32 {
            self.item(format!("file {}: mode {:#x} beyond 16 bits", f.id, f.mode))?;
        }
        self.extras(&format!("file {}", f.id), &f.extras, &["f_version"])?;
        let st = T.st("FD_DATA");
        let mut p = st.zeroed();
        st.put(&mut p, "fd_type", ty as u64);
        st.put(&mut p, "f_mode", f.mode as u64);
        st.put(&mut p, "f_flags", f.flags as u64);
        st.put(&mut p, "f_pos", f.pos);
        st.put(&mut p, "f_version", f.extras.u64("f_version").unwrap_or(0));
        self.rec("FD_DATA", f.id, &p)?;
        self.fname(&f.path)
    }

    fn thread_rec(&mut self, t: &Thread) -> Result<()> {
        let placed = [
            "gdt_entry_tls_entries",
            "ntls",
            "debugreg0",
            "debugreg1",
            "debugreg2",
            "debugreg3",
            "debugreg4",
            "debugreg5",
            "debugreg6",
            "debugreg7",
            "uses_debug",
            "has_fxsr",
            "used_math",
            "legacy_xstate",
        ];
        self.extras("thread", &t.extras, &placed)?;
        if t.tid != self.pid as i32 {
            self.item(format!("thread id {} differs from the pid", t.tid))?;
        }
        if t.sigmask != 0 {
            self.item(format!("thread: blocked signal mask {:#x}", t.sigmask))?;
        }
        let mut tls = t.tls.clone();
        if tls.len() % 8 != 0 || tls.len() > i16::MAX as usize {
            self.item(format!(
                "thread: TLS of {} bytes is not an i386 descriptor array",
                tls.len()
            ))?;
            tls.clear();
        }
        let st = T.st("THREAD");
        let mut p = st.zeroed();
        let gdt = t
            .extras
            .u64("gdt_entry_tls_entries")
            .unwrap_or(tls.len() as u64 / 8);
        st.put(&mut p, "gdt_entry_tls_entries", gdt);
        st.put(&mut p, "sizeof_tls_array", tls.len() as u64);
        let ntls = t.extras.u64("ntls").unwrap_or(count_tls(&tls) as u64);
        st.put(&mut p, "ntls", ntls);
        let pid = self.pid;
        self.rec("THREAD", pid, &p)?;
        self.out.put(&tls)?;

        let st = T.st("CPU");
        let mut c = st.zeroed();
        let regs = t.regs.to_array();
        for (name, i) in L::CPU_REGS {
            st.put(&mut c, name, regs[i]);
        }
        if t.regs.fs_base != 0 || t.regs.gs_base != 0 {
            self.item("thread: fs_base/gs_base (x86-64 state)".into())?;
        }
        for i in 0..8 {
            let n = format!("debugreg{i}");
            st.put(&mut c, &n, t.extras.u64(&n).unwrap_or(0));
        }
        st.put(
            &mut c,
            "uses_debug",
            t.extras.u64("uses_debug").unwrap_or(0),
        );
        st.put(&mut c, "has_fxsr", t.extras.u64("has_fxsr").unwrap_or(1));
        let used_math = t.extras.u64("used_math").unwrap_or(t.fpu.is_some() as u64);
        st.put(&mut c, "used_math", used_math);
        let xstate: Vec<u8> = match &t.fpu {
            Some(f) => {
                if f.kind == FpuKind::Xsave {
                    self.item("thread: XSAVE area (cr-v5 holds thread_xstate)".into())?;
                }
                if f.xfeatures != 0 {
                    self.item(format!("thread: fpu xfeatures {:#x}", f.xfeatures))?;
                }
                f.data.clone()
            }
            None => t
                .extras
                .bytes("legacy_xstate")
                .map(|b| b.to_vec())
                .unwrap_or_else(|| vec![0u8; 512]),
        };
        c.extend_from_slice(&xstate);
        self.rec("CPU", pid, &c)
    }

    fn tail(&mut self) -> Result<()> {
        self.end_task()?;
        if self.zero_pages > 0 {
            self.losses.notes.push(format!(
                "{} all-zero pages written out as page contents (cr-v5 has no zero runs)",
                self.zero_pages
            ));
        }
        let mut p = T.st("TAIL").zeroed();
        T.st("TAIL")
            .put(&mut p, "magic", crate::detect::CHECKPOINT_MAGIC_TAIL);
        self.rec("TAIL", 0, &p)
    }
}

impl<W: Write> EventSink for Encoder<W> {
    fn event(&mut self, ev: &Event<'_>) -> Result<()> {
        if self.finished {
            return Err(Error::invalid(
                self.out.pos,
                "an event after the tail",
                "nothing",
            ));
        }
        self.checker.check(ev, self.out.pos)?;
        // Records of a skipped (second) task are dropped whole.
        if self.skipping && !matches!(ev, Event::Task(_) | Event::Tail) {
            return Ok(());
        }
        // The mm section ends at the first event that is not part of it.
        // Events that write nothing (dropped as items) do not end it: the
        // MM record counts the VMAs after them, and a VMA is not cut.
        let mm_part = match ev {
            Event::Vma(_) | Event::Pages(_) | Event::ZeroPages(_) | Event::VmaEnd => true,
            Event::Fs(_)
            | Event::SigActions(_)
            | Event::Rlimits(_)
            | Event::Pipe(_)
            | Event::Error(_) => true,
            Event::Unknown(u) => u.revision != Revision::CrV5,
            _ => false,
        };
        if self.mm_open && !mm_part {
            if let Event::Unknown(u) = ev {
                if u.revision == Revision::CrV5 && u.type_code == code("MM_CONTEXT") {
                    return self.close_mm(Some(u));
                }
            }
            self.close_mm(None)?;
        }
        match ev {
            Event::Header(h) => self.header(h),
            Event::Task(t) => self.task(t),
            Event::Thread(t) => {
                if self.thread.is_some() {
                    return self.item(format!("a second thread {}: dropped", t.tid));
                }
                self.thread = Some(t.clone());
                Ok(())
            }
            Event::Mm(m) => self.mm(m),
            Event::Vma(v) => self.vma(v),
            Event::Pages(c) => self.pages(c),
            Event::ZeroPages(z) => self.zero_pages(z),
            Event::VmaEnd => {
                self.in_vma = false;
                self.rec("PGARR", 0, &0u64.to_le_bytes())
            }
            Event::Fs(_) => self.item("fs context (cwd, root, umask)".into()),
            Event::SigActions(_) => self.item("signal dispositions".into()),
            Event::Rlimits(_) => self.item("resource limits".into()),
            Event::Pipe(p) => self.item(format!("pipe {} with {} bytes", p.id, p.data.len())),
            Event::File(f) => {
                if f.kind == FileKind::Pipe || f.kind == FileKind::Fifo {
                    self.item(format!("file {}: {} end", f.id, f.kind.name()))?;
                }
                self.files.push(FileEv::File(f.clone()));
                Ok(())
            }
            Event::Fd(fd) => {
                self.files.push(FileEv::Fd(*fd));
                Ok(())
            }
            Event::Error(m) => self.item(format!("error record `{}`", String::from_utf8_lossy(m))),
            Event::Unknown(u) => {
                if u.revision != Revision::CrV5 {
                    return self.item(format!(
                        "unknown {} record type {}",
                        u.revision, u.type_code
                    ));
                }
                let len = u.payload.len();
                if len > i16::MAX as usize {
                    return self.item(format!("unknown record of {len} bytes"));
                }
                let mut h = [0u8; 8];
                h[0..2].copy_from_slice(&(u.type_code as u16).to_le_bytes());
                h[2..4].copy_from_slice(&(len as u16).to_le_bytes());
                h[4..8].copy_from_slice(&u.parent.to_le_bytes());
                // FILES and THREAD/CPU are written at the task's end: a record
                // after the Thread goes after them; one between the files and
                // the Thread cannot keep its place.
                if self.in_task && (self.thread.is_some() || !self.files.is_empty()) {
                    if self.thread.is_none() {
                        self.item(format!(
                            "unknown record type {} between the task's files and its thread (cr-v5 writes the thread after the files; the order would change)",
                            u.type_code
                        ))?;
                    }
                    let mut r = h.to_vec();
                    r.extend_from_slice(&u.payload);
                    self.after_thread.push(r);
                    return Ok(());
                }
                self.out.put(&h)?;
                self.out.put(&u.payload)
            }
            Event::Tail => {
                self.tail()?;
                self.finished = true;
                Ok(())
            }
        }
    }

    fn finish(&mut self) -> Result<()> {
        if !self.finished {
            return Err(Error::new(
                self.out.pos,
                ErrorKind::MissingTerminator {
                    expected: "a Tail event",
                },
            ));
        }
        self.out.flush()
    }
}

/// A plan-less, strict cr-v5 encoder: buffers the events, then writes them
/// (see [`crate::convert::Buffered`]).
pub fn encoder<'w, W: Write + 'w>(w: W) -> Box<dyn EventSink + 'w> {
    Box::new(crate::convert::Buffered::new(Revision::CrV5, w))
}

#[allow(dead_code)]
fn _assert_io(_: io::Empty) {}

/// Framing-layer records of a cr-v5 image in a slice (`ckpt-inspect records`).
pub fn open_records(b: &[u8]) -> Box<dyn RecordSource + '_> {
    Box::new(Records::new(SliceInput::new(b)))
}
