//! The native-1 decoder: frames → events, with every structural rule checked.
//!
//! (Over 800 lines: one match over every core record type with its checks; the typed
//! records live in `records.rs` and the framing reader in `reader.rs`. The next record
//! family should move its arms out the same way.)

use super::payload::{revision_from_code, Cur};
use super::records as nrec;
use super::*;
use crate::input::Input;
use crate::model::*;
use crate::stream::{EventSource, ReadOptions};
use crate::validate::Checker;
use std::borrow::Cow;

/// Most signals a SIGACTIONS record may describe.
const MAX_SIGNALS: u32 = 128;
/// Most rlimits a RLIMITS record may describe.
const MAX_RLIMITS: u32 = 64;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Preamble,
    Header,
    Body,
    AfterTail,
    Done,
}

#[derive(Clone, Copy, Debug, Default)]
struct VmaCount {
    pages: u64,
    zeros: u64,
}

/// Decodes a native-1 image from any [`Input`] into [`Event`]s.
///
/// Checks every rule of docs/FORMAT.md as it goes (framing, alignment,
/// checksums, parent tags, objrefs, VMA order, page placement, terminators,
/// tail), and stops for good at the first violation.
pub struct Decoder<I> {
    input: I,
    opts: ReadOptions,
    phase: Phase,
    checker: Checker,
    records: u64,
    stream_crc: crc32fast::Hasher,
    task_pid: Option<i32>,
    vma: Option<VmaCount>,
    last_offset: u64,
    /// Typed records read, waiting for the owner record that follows them.
    pending: nrec::Pending,
}

impl<I: Input> Decoder<I> {
    /// Decode from `input`, positioned at the preamble.
    pub fn new(input: I, opts: ReadOptions) -> Self {
        Decoder {
            input,
            opts,
            phase: Phase::Preamble,
            checker: Checker::new(),
            records: 0,
            stream_crc: crc32fast::Hasher::new(),
            task_pid: None,
            vma: None,
            last_offset: 0,
            pending: nrec::Pending::default(),
        }
    }

    /// The input, e.g. to measure its buffer.
    pub fn input(&self) -> &I {
        &self.input
    }

    /// Read the typed records at the current offset (each one framed and checked
    /// like any record) into `pending`, up to the next core record.
    fn absorb(&mut self) -> Result<()> {
        while let Some(b) = self.input.peek_byte()? {
            if !nrec::is_typed(b as u32) {
                return Ok(());
            }
            let Some((f, _)) = read_frame(&mut self.input)? else {
                return Ok(());
            };
            self.last_offset = f.offset;
            let ty = f.ty();
            let Some(owner) = nrec::owner(ty.0) else {
                return Err(f.err(ErrorKind::UnknownRecord { code: ty.0 }));
            };
            if let Some(o) = self.pending.owner.filter(|&o| o != owner) {
                return Err(f.err(ErrorKind::UnexpectedRecord {
                    found: ty.to_string(),
                    expected: format!(
                        "the {} record the typed records before it belong to",
                        o.record()
                    ),
                }));
            }
            let parent = f.header.parent.get();
            let expected = match owner {
                nrec::Owner::Thread | nrec::Owner::Vma => {
                    let Some(pid) = self.task_pid else {
                        return Err(f.err(ErrorKind::UnexpectedRecord {
                            found: ty.to_string(),
                            expected: "a TASK record before any task-level record".into(),
                        }));
                    };
                    pid as u32
                }
                // Checked against the TASK record that follows.
                nrec::Owner::Task => self.pending.owner.map_or(parent, |_| self.pending.parent),
                nrec::Owner::File => 0,
            };
            // A task-level record's tag is checked against the TASK that follows (a task of
            // a foreign revision may have pid 0: its records carry 0).
            if parent != expected {
                return Err(Error::new(
                    f.offset + 8,
                    ErrorKind::BadParent {
                        found: parent,
                        expected,
                    },
                )
                .in_record(ty.0, ty.name()));
            }
            let objref = f.header.objref.get();
            if objref != 0 {
                return Err(Error::new(
                    f.offset + 12,
                    ErrorKind::BadValue {
                        field: "objref",
                        found: objref as u64,
                        expected: "0 (this record defines no object)".into(),
                    },
                )
                .in_record(ty.0, ty.name()));
            }
            self.records += 1;
            self.stream_crc.update(f.header.as_bytes());
            nrec::decode(&f, &mut self.pending)?;
            if self.pending.owner.is_none() {
                self.pending.first = Some((f.offset, ty.0));
            }
            self.pending.owner = Some(owner);
            self.pending.parent = parent;
        }
        Ok(())
    }

    fn step(&mut self, mut phase: Phase) -> Result<Option<Event<'_>>> {
        match phase {
            Phase::Done => return Ok(None),
            Phase::AfterTail => {
                let at = self.input.offset();
                let extra = self.input.drain()?;
                if extra > 0 {
                    return Err(Error::new(at, ErrorKind::TrailingData { bytes: extra }));
                }
                return Ok(None);
            }
            Phase::Preamble => {
                read_preamble(&mut self.input)?;
                phase = Phase::Header;
            }
            _ => {}
        }
        let at = self.input.offset();
        let Some((f, _padded)) = read_frame(&mut self.input)? else {
            return Err(Error::new(
                at,
                ErrorKind::MissingTerminator {
                    expected: if phase == Phase::Header {
                        "a HEADER record"
                    } else if self.vma.is_some() {
                        "a VMA_END record, then the TAIL"
                    } else {
                        "a TAIL record"
                    },
                },
            ));
        };
        self.last_offset = f.offset;
        let ty = f.ty();
        if !ty.is_known() {
            return Err(f.err(ErrorKind::UnknownRecord { code: ty.0 }));
        }
        if phase == Phase::Header && ty != RecordType::HEADER {
            return Err(f.err(ErrorKind::UnexpectedRecord {
                found: ty.to_string(),
                expected: "HEADER first".into(),
            }));
        }
        // Parent tags and objref header fields.
        let task_level = matches!(
            ty,
            RecordType::THREAD
                | RecordType::FS
                | RecordType::SIGACTIONS
                | RecordType::RLIMITS
                | RecordType::MM
                | RecordType::VMA
                | RecordType::PAGES
                | RecordType::ZERO_PAGES
                | RecordType::PARENT_PAGES
                | RecordType::VMA_END
                | RecordType::FD
        );
        let expected_parent = if task_level || ty == RecordType::FOREIGN {
            self.task_pid.unwrap_or(0) as u32
        } else {
            0
        };
        if task_level && self.task_pid.is_none() {
            return Err(f.err(ErrorKind::UnexpectedRecord {
                found: ty.to_string(),
                expected: "a TASK record before any task-level record".into(),
            }));
        }
        let parent = f.header.parent.get();
        if parent != expected_parent {
            return Err(Error::new(
                f.offset + 8,
                ErrorKind::BadParent {
                    found: parent,
                    expected: expected_parent,
                },
            )
            .in_record(ty.0, ty.name()));
        }
        let objref = f.header.objref.get();
        let defines = matches!(ty, RecordType::FILE | RecordType::PIPE);
        if defines == (objref == 0) {
            return Err(Error::new(
                f.offset + 12,
                ErrorKind::BadValue {
                    field: "objref",
                    found: objref as u64,
                    expected: if defines {
                        "a non-zero object id".into()
                    } else {
                        "0 (this record defines no object)".into()
                    },
                },
            )
            .in_record(ty.0, ty.name()));
        }
        if ty != RecordType::TAIL {
            self.records += 1;
            self.stream_crc.update(f.header.as_bytes());
        }
        let page_size = self.checker.page_size();
        let held = take_pending(&mut self.pending, &f)?;
        let mut c = Cur::new(&f);
        let ev = match ty {
            RecordType::HEADER => {
                let required = c.u64()?;
                let _optional = c.u64()?;
                if required & !KNOWN_FEATURES != 0 {
                    return Err(f.err_at(
                        0,
                        ErrorKind::UnknownFeatures {
                            found: required & !KNOWN_FEATURES,
                            known: KNOWN_FEATURES,
                        },
                    ));
                }
                let arch = match c.u16()? {
                    1 => Arch::X86_64,
                    2 => Arch::X86_32,
                    a => return Err(c.bad(16, "arch", a as u64, "1 (x86_64) or 2 (x86_32)")),
                };
                let major = c.u16()?;
                let minor = c.u16()?;
                let patch = c.u16()?;
                let page_size = c.u32()?;
                if !(512..=(1 << 21)).contains(&page_size) || !page_size.is_power_of_two() {
                    return Err(c.bad(
                        24,
                        "page_size",
                        page_size as u64,
                        "a power of two from 512 to 2 MiB",
                    ));
                }
                let rsv = c.u32()?;
                if rsv != 0 {
                    return Err(c.bad(28, "reserved", rsv as u64, "0"));
                }
                let time = c.u64()?;
                let flags = c.u64()?;
                let release = c.bstr()?.to_vec();
                let version = c.bstr()?.to_vec();
                let machine = c.bstr()?.to_vec();
                let tool = String::from_utf8_lossy(c.bstr()?).into_owned();
                let tool_version = String::from_utf8_lossy(c.bstr()?).into_owned();
                let extras = c.extras()?;
                let parent = if required & FEATURE_PARENT != 0 {
                    let records = c.u64()?;
                    let bytes = c.u64()?;
                    let stream_crc = c.u32()?;
                    let rsv_at = c.pos;
                    let rsv = c.u32()?;
                    if rsv != 0 {
                        return Err(c.bad(rsv_at, "parent reserved", rsv as u64, "0"));
                    }
                    let path = c.bstr()?.to_vec();
                    Some(ParentRef {
                        records,
                        bytes,
                        stream_crc,
                        path,
                    })
                } else {
                    None
                };
                Event::Header(Header {
                    revision: Revision::Native1,
                    arch,
                    page_size,
                    kernel: Kernel {
                        major,
                        minor,
                        patch,
                        release,
                        version,
                        machine,
                    },
                    time,
                    flags,
                    tool,
                    tool_version,
                    extras,
                    parent,
                })
            }
            RecordType::TAIL => {
                let records = c.u64()?;
                let bytes = c.u64()?;
                let crc = c.u32()?;
                let rsv = c.u32()?;
                c.end()?;
                if records != self.records {
                    return Err(c.bad(0, "record count", records, &self.records.to_string()));
                }
                if bytes != f.offset {
                    return Err(c.bad(8, "byte count", bytes, &f.offset.to_string()));
                }
                let computed = self.stream_crc.clone().finalize();
                if crc != computed {
                    return Err(f.err_at(
                        16,
                        ErrorKind::BadChecksum {
                            found: crc,
                            expected: computed,
                        },
                    ));
                }
                if rsv != 0 {
                    return Err(c.bad(20, "reserved", rsv as u64, "0"));
                }
                let off = f.offset;
                self.checker
                    .check(&Event::Tail, off)
                    .map_err(|e| e.in_record(ty.0, ty.name()))?;
                // Trailing bytes are reported by the next call.
                self.phase = Phase::AfterTail;
                return Ok(Some(Event::Tail));
            }
            RecordType::ERROR => Event::Error(c.rest().to_vec()),
            RecordType::FOREIGN => {
                let rev = c.u32()?;
                let revision = revision_from_code(rev)
                    .ok_or_else(|| c.bad(0, "revision", rev as u64, "1 (cr-v5) or 2 (ckpt-v21)"))?;
                let type_code = c.u32()?;
                let parent = c.u32()?;
                let rsv = c.u32()?;
                if rsv != 0 {
                    return Err(c.bad(12, "reserved", rsv as u64, "0"));
                }
                Event::Unknown(Unknown {
                    revision,
                    type_code,
                    parent,
                    payload: Cow::Borrowed(c.rest()),
                })
            }
            RecordType::TASK => {
                let pid = c.i32()?;
                if held.owner.is_some() && held.parent != pid as u32 {
                    return Err(Error::new(
                        held.first.map_or(f.offset, |x| x.0) + 8,
                        ErrorKind::BadParent {
                            found: held.parent,
                            expected: pid as u32,
                        },
                    ));
                }
                let tgid = c.i32()?;
                let ppid = c.i32()?;
                let pgid = c.i32()?;
                let sid = c.i32()?;
                let state = c.u32()?;
                let exit_state = c.u32()?;
                let exit_code = c.u32()?;
                let exit_signal = c.u32()?;
                let rsv = c.u32()?;
                if rsv != 0 {
                    return Err(c.bad(36, "reserved", rsv as u64, "0"));
                }
                let mut uid = [0u32; 4];
                let mut gid = [0u32; 4];
                for u in &mut uid {
                    *u = c.u32()?;
                }
                for g in &mut gid {
                    *g = c.u32()?;
                }
                let comm = c.bstr()?.to_vec();
                let ngat = c.pos;
                let ngroups = c.u32()?;
                if ngroups as usize > f.payload.len() / 4 {
                    return Err(c.bad(
                        ngat,
                        "group count",
                        ngroups as u64,
                        "what the payload holds",
                    ));
                }
                let mut groups = Vec::with_capacity(ngroups as usize);
                for _ in 0..ngroups {
                    groups.push(c.u32()?);
                }
                let mut extras = c.extras()?;
                Event::Task(Task {
                    pid,
                    tgid,
                    ppid,
                    pgid,
                    sid,
                    comm,
                    state,
                    exit_state,
                    exit_code,
                    exit_signal,
                    creds: Creds { uid, gid, groups },
                    records: {
                        let mut r = held.task;
                        crate::model::records::adopt::task(&mut r, &mut extras).map_err(|e| {
                            f.err(ErrorKind::Invalid {
                                found: e,
                                expected: "the layout of docs/MODEL.md".into(),
                            })
                        })?;
                        r
                    },
                    extras,
                })
            }
            RecordType::THREAD => {
                let tid = c.i32()?;
                let rsv = c.u32()?;
                if rsv != 0 {
                    return Err(c.bad(4, "reserved", rsv as u64, "0"));
                }
                let sigmask = c.u64()?;
                let mut a = [0u64; 27];
                for r in &mut a {
                    *r = c.u64()?;
                }
                let fat = c.pos;
                let fk = c.u32()?;
                let rsv = c.u32()?;
                if rsv != 0 {
                    return Err(c.bad(fat + 4, "reserved", rsv as u64, "0"));
                }
                let xfeatures = c.u64()?;
                let data = c.bstr()?;
                let kind = match fk {
                    0 => None,
                    1 => Some(FpuKind::Xsave),
                    2 => Some(FpuKind::Fxsave),
                    3 => Some(FpuKind::Legacy),
                    k => return Err(c.bad(fat, "fpu kind", k as u64, "0 to 3")),
                };
                if kind.is_none() && (xfeatures != 0 || !data.is_empty()) {
                    return Err(c.bad(fat, "fpu kind", 0, "non-zero when FPU data is present"));
                }
                let tls = c.bstr()?.to_vec();
                let mut extras = c.extras()?;
                Event::Thread(Thread {
                    tid,
                    regs: Regs::from_array(a),
                    fpu: kind.map(|kind| Fpu {
                        kind,
                        xfeatures,
                        data: data.to_vec(),
                    }),
                    tls,
                    sigmask,
                    records: {
                        let mut r = held.thread;
                        crate::model::records::adopt::thread(&mut r, &mut extras).map_err(|e| {
                            f.err(ErrorKind::Invalid {
                                found: e,
                                expected: "the layout of docs/MODEL.md".into(),
                            })
                        })?;
                        r
                    },
                    extras,
                })
            }
            RecordType::FS => {
                let umask = c.u32()?;
                let cwd = c.bstr()?.to_vec();
                let root = c.bstr()?.to_vec();
                Event::Fs(Fs { cwd, root, umask })
            }
            RecordType::SIGACTIONS => {
                let n = c.u32()?;
                if n > MAX_SIGNALS {
                    return Err(c.bad(0, "signal count", n as u64, "at most 128"));
                }
                let _ = c.u32()?;
                let mut v = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    v.push(SigAction {
                        handler: c.u64()?,
                        flags: c.u64()?,
                        restorer: c.u64()?,
                        mask: c.u64()?,
                    });
                }
                Event::SigActions(v)
            }
            RecordType::RLIMITS => {
                let n = c.u32()?;
                if n > MAX_RLIMITS {
                    return Err(c.bad(0, "rlimit count", n as u64, "at most 64"));
                }
                let _ = c.u32()?;
                let mut v = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    v.push(Rlimit {
                        cur: c.u64()?,
                        max: c.u64()?,
                    });
                }
                Event::Rlimits(v)
            }
            RecordType::MM => {
                let mut a = [0u64; 11];
                for x in &mut a {
                    *x = c.u64()?;
                }
                let personality = c.u32()?;
                let flags_at = c.pos;
                let flags = c.u32()?;
                if flags & !1 != 0 {
                    return Err(c.bad(flags_at, "mm flags", flags as u64, "0 or 1 (has exe)"));
                }
                let exe = c.bstr()?;
                if flags & 1 == 0 && !exe.is_empty() {
                    return Err(c.bad(flags_at, "mm flags", 0, "1 when an exe path is present"));
                }
                let nat = c.pos;
                let n = c.u32()?;
                if n as usize > f.payload.len() / 8 {
                    return Err(c.bad(nat, "auxv count", n as u64, "what the payload holds"));
                }
                let mut auxv = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    auxv.push(c.u64()?);
                }
                let extras = c.extras()?;
                Event::Mm(Mm {
                    start_code: a[0],
                    end_code: a[1],
                    start_data: a[2],
                    end_data: a[3],
                    start_brk: a[4],
                    brk: a[5],
                    start_stack: a[6],
                    arg_start: a[7],
                    arg_end: a[8],
                    env_start: a[9],
                    env_end: a[10],
                    auxv,
                    exe: (flags & 1 != 0).then(|| exe.to_vec()),
                    personality,
                    extras,
                })
            }
            RecordType::VMA => {
                let start = c.u64()?;
                let end = c.u64()?;
                let flags = c.u64()?;
                let pgoff = c.u64()?;
                let prot = c.u32()?;
                let kat = c.pos;
                let kc = c.u32()?;
                let kind = VmaKind::from_code(kc)
                    .ok_or_else(|| c.bad(kat, "vma kind", kc as u64, "1 to 8"))?;
                let fat = c.pos;
                let has_file = c.u32()?;
                if has_file > 1 {
                    return Err(c.bad(fat, "has_file", has_file as u64, "0 or 1"));
                }
                let _ = c.u32()?;
                let file = c.bstr()?;
                if has_file == 0 && !file.is_empty() {
                    return Err(c.bad(fat, "has_file", 0, "1 when a path is present"));
                }
                let mut extras = c.extras()?;
                self.vma = Some(VmaCount::default());
                Event::Vma(Vma {
                    start,
                    end,
                    prot,
                    flags,
                    pgoff,
                    kind,
                    file: (has_file == 1).then(|| file.to_vec()),
                    records: {
                        let mut r = held.vma;
                        crate::model::records::adopt::vma(&mut r, &mut extras);
                        r
                    },
                    extras,
                })
            }
            RecordType::PAGES => {
                let n = c.u32()?;
                let runs = c.u32()?;
                let data_crc = c.u32()?;
                let rsv = c.u32()?;
                if n == 0 || n > MAX_CHUNK_PAGES {
                    return Err(c.bad(0, "page count", n as u64, "1 to 4096"));
                }
                if runs == 0 || runs > n {
                    return Err(c.bad(4, "run count", runs as u64, &format!("1 to {n}")));
                }
                if rsv != 0 {
                    return Err(c.bad(12, "reserved", rsv as u64, "0"));
                }
                let rb = c.bytes(runs as usize * 16)?;
                let addrs = Addrs::from_runs(rb, page_size)
                    .filter(|a| a.len() == n as usize)
                    .ok_or_else(|| {
                        c.bad(
                            16,
                            "address runs",
                            runs as u64,
                            &format!("runs of at least one page, within the address space, adding up to {n} pages"),
                        )
                    })?;
                let want = n as u64 * page_size as u64;
                let data = c.rest();
                if data.len() as u64 != want {
                    return Err(f.err(ErrorKind::BadLength {
                        found: f.header.len.get() as u64,
                        expected: format!(
                            "{} for {n} pages of {page_size} bytes in {runs} run(s)",
                            HEADER_LEN as u64 + 16 + 16 * runs as u64 + want
                        ),
                    }));
                }
                if self.opts.check_page_data {
                    let computed = crc32fast::hash(data);
                    if computed != data_crc {
                        return Err(f.err_at(
                            8,
                            ErrorKind::BadChecksum {
                                found: data_crc,
                                expected: computed,
                            },
                        ));
                    }
                }
                if let Some(v) = &mut self.vma {
                    v.pages += n as u64;
                }
                Event::Pages(PageChunk {
                    addrs,
                    data: Cow::Borrowed(data),
                })
            }
            RecordType::ZERO_PAGES => {
                let start = c.u64()?;
                let count = c.u64()?;
                c.end()?;
                if let Some(v) = &mut self.vma {
                    v.zeros = v.zeros.saturating_add(count);
                }
                Event::ZeroPages(ZeroRun { start, count })
            }
            RecordType::PARENT_PAGES => {
                let start = c.u64()?;
                let count = c.u64()?;
                c.end()?;
                Event::ParentPages(ZeroRun { start, count })
            }
            RecordType::VMA_END => {
                let pages = c.u64()?;
                let zeros = c.u64()?;
                c.end()?;
                if let Some(v) = self.vma.take() {
                    if v.pages != pages {
                        return Err(c.bad(0, "pages stored", pages, &v.pages.to_string()));
                    }
                    if v.zeros != zeros {
                        return Err(c.bad(8, "zero pages", zeros, &v.zeros.to_string()));
                    }
                }
                Event::VmaEnd
            }
            RecordType::FILE => {
                let kat = c.pos;
                let kc = c.u32()?;
                let kind = FileKind::from_code(kc)
                    .ok_or_else(|| c.bad(kat, "file kind", kc as u64, "1 to 7"))?;
                let flags = c.u32()?;
                let mode = c.u32()?;
                let pipe = c.u32()?;
                let pos = c.u64()?;
                let path = c.bstr()?.to_vec();
                let mut extras = c.extras()?;
                Event::File(File {
                    id: objref,
                    kind,
                    path,
                    flags,
                    mode,
                    pos,
                    pipe: (pipe != 0).then_some(pipe),
                    records: {
                        let mut r = held.file;
                        crate::model::records::adopt::file(&mut r, &mut extras);
                        r
                    },
                    extras,
                })
            }
            RecordType::PIPE => Event::Pipe(Pipe {
                id: objref,
                data: Cow::Borrowed(c.rest()),
            }),
            RecordType::FD => {
                let fd = c.i32()?;
                let fl_at = c.pos;
                let fl = c.u32()?;
                if fl & !1 != 0 {
                    return Err(c.bad(fl_at, "fd flags", fl as u64, "0 or 1 (close-on-exec)"));
                }
                let file = c.u32()?;
                let _ = c.u32()?;
                Event::Fd(Fd {
                    fd,
                    cloexec: fl & 1 != 0,
                    file,
                })
            }
            _ => unreachable!("all known types handled"),
        };
        if !matches!(
            ty,
            RecordType::TAIL | RecordType::ERROR | RecordType::FOREIGN | RecordType::PIPE
        ) {
            c.end()?;
        }
        self.checker
            .check(&ev, f.offset)
            .map_err(|e| e.in_record(ty.0, ty.name()))?;
        match &ev {
            Event::Header(_) => phase = Phase::Body,
            Event::Task(t) => self.task_pid = Some(t.pid),
            _ => {}
        }
        self.phase = phase;
        Ok(Some(ev))
    }
}

/// The typed records held for `ty`, checked to belong to it; an error when
/// records are held for another owner.
fn take_pending(pending: &mut nrec::Pending, f: &Frame<'_>) -> Result<nrec::Pending> {
    let Some(owner) = pending.owner else {
        return Ok(nrec::Pending::default());
    };
    let ty = f.ty();
    if owner.record() != ty {
        let (at, code) = pending.first.unwrap_or((f.offset, 0));
        let t = RecordType(code);
        return Err(Error::new(
            at,
            ErrorKind::UnexpectedRecord {
                found: format!("{t} followed by {ty}"),
                expected: format!(
                    "{t} right before the {} record it belongs to",
                    owner.record()
                ),
            },
        )
        .in_record(t.0, t.name()));
    }
    Ok(std::mem::take(pending))
}

impl<I: Input> EventSource for Decoder<I> {
    fn next_event(&mut self) -> Result<Option<Event<'_>>> {
        // Take the phase out: `step` puts it back only on success, so any
        // error leaves the decoder fused (every later call returns `None`).
        let phase = std::mem::replace(&mut self.phase, Phase::Done);
        if phase == Phase::Body {
            self.absorb()?;
        }
        self.step(phase)
    }
    fn offset(&self) -> u64 {
        self.last_offset
    }
}
