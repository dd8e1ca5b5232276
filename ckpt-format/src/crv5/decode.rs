//! The cr-v5 decoder: records to model events.

use super::*;

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
                    parent: None,
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
                    records: Default::default(),
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
                    records: Default::default(),
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
                    records: Default::default(),
                    extras,
                })))
            }
        }
    }
}

/// Number of non-empty 8-byte descriptors in an i386 TLS array.
pub(super) fn count_tls(tls: &[u8]) -> usize {
    tls.chunks(8).filter(|d| d.iter().any(|&b| b != 0)).count()
}

impl<I: Input> EventSource for Decoder<I> {
    fn next_event(&mut self) -> Result<Option<Event<'_>>> {
        if self.failed {
            return Ok(None);
        }
        self.failed = true;
        let off = self.inner.rec.offset();
        let mut ev = self.inner.step()?;
        if let Some(e) = ev.as_mut() {
            crate::model::records::adopt::event(e)
                .map_err(|m| Error::invalid(off, m, "the layout of docs/MODEL.md"))?;
        }
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
