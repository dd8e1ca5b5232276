//! The cr-v5 encoder: model events to records (the memory records are in
//! [`memory`]).

use super::*;

mod memory;

/// A task's file events held until its file table is written; few at a time, so the
/// size of the `File` variant (its typed records inline) costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
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
    losses: Losses,
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
            losses: Losses::new(lossy),
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
        // Typed records as the keys this revision's tables place (or report lost).
        let typed = crate::model::records::legacy::event(ev);
        let ev: &Event<'_> = &typed;
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
            Event::ParentPages(z) => self.item(format!(
                "{} pages at {:#x} kept in the parent image (flatten the chain first)",
                z.count, z.start
            )),
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
/// (see [`crate::legacy::Buffered`]).
pub fn encoder<'w, W: Write + 'w>(w: W) -> Box<dyn EventSink + 'w> {
    Box::new(crate::legacy::Buffered::<W, Codec>::new(w))
}

/// The cr-v5 revision as a [`LegacyRevision`]: makes its [`Encoder`]s.
pub struct Codec;

impl LegacyRevision for Codec {
    const REVISION: Revision = REV;
    fn encoder<'w, W: Write + 'w>(
        w: W,
        plan: Option<Plan>,
        lossy: bool,
    ) -> Box<dyn LegacySink + 'w> {
        Box::new(Encoder::new(w, plan, lossy))
    }
}

impl<W: Write> LegacySink for Encoder<W> {
    fn items(&self) -> &[String] {
        Encoder::items(self)
    }
    fn notes(&self) -> &[String] {
        Encoder::notes(self)
    }
}
