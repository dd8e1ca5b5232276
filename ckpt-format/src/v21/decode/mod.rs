//! The ckpt-v21 decoder: records to model events. The record loop is in
//! [`step`](self) (`step.rs`), the objects (OBJREF, FILE, VMA ...) in `objects.rs`.

use super::*;

mod epoll;
mod objects;
mod step;

/// A file object as defined in the image.
#[derive(Clone, Debug)]
struct FileObj {
    file: File,
    emitted: bool,
}

/// An objref defined by an OBJREF record (or a pipe's first end).
#[derive(Clone, Copy, Debug)]
struct Def {
    /// `CKPT_OBJ_*` type of the object.
    ty: u32,
    /// Offset of the record that defined it.
    offset: u64,
    /// The object is kept as records of the image ([`Event::Unknown`]), under
    /// its own number, rather than decoded into the model.
    kept: bool,
}

struct Inner<I> {
    fr: Framer<I>,
    /// Events of a record that produces several (File + Fd, Pipe + File ...).
    queue: VecDeque<Event<'static>>,
    /// Events read ahead by `prime`.
    ahead: VecDeque<Event<'static>>,
    primed: bool,
    done: bool,
    consts: HashMap<&'static str, u64>,
    has_xsave: bool,
    xstate_size: u64,
    pids: Vec<[i32; 6]>,
    task_idx: usize,
    pid: i32,
    mm: Mm,
    vdso: u64,
    mm_ref: i32,
    table_ref: i32,
    /// The current task's fds and the file objrefs they name (epoll targets
    /// are named by fd in the model).
    task_fds: HashMap<i32, i32>,
    files: HashMap<i32, FileObj>,
    pipes: HashSet<i32>,
    /// Every objref defined so far (objrefs are unique in an image).
    defined: HashMap<i32, Def>,
    /// Pipe buffers read with a pipe's first end, emitted as a Pipe event
    /// right before the first File event naming the pipe.
    pending_pipes: HashMap<i32, Vec<u8>>,
    /// The leader's TASK_OBJS kept as a record (it names objects kept as
    /// records), emitted as the task's last event.
    held_objs: Option<Event<'static>>,
    /// The objrefs of the leader's TASK_OBJS, which its threads repeat.
    leader_objs: Option<[i32; 5]>,
    last_offset: u64,
    /// The leader's Task, held until its TASK_CREDS (or the first other record).
    pending_task: Option<Task>,
    /// The current v21 task's thread, held until its section ends (SIGNAL_TASK
    /// and SIGPENDING come after the task's objects).
    cur_thread: Option<Thread>,
    /// TASK fields of the current v21 task, for its Thread.
    task_fields: Vec<(&'static str, u64)>,
    /// True while the current v21 task is a thread of the leader before it.
    in_thread_task: bool,
    /// The last record was SIGNAL_TASK (a SIGPENDING after it is the thread's).
    after_signal_task: bool,
    /// The thread's SIGPENDING came before its SIGNAL_TASK (the kernel's order).
    before_signal_task: bool,
    /// The leader's Task as emitted (thread-task defaults).
    leader: Task,
    leader_cred: i32,
    /// Threads of every task, from a first pass ([`scan_threads`]): emitted right
    /// after their Task, and the thread records are then only checked.
    table: Option<VecDeque<ScannedTask>>,
    held_objref: Option<(Hdr, Vec<u8>)>,
    /// First-pass mode: every thread, the leader's too, is held to the end of
    /// its section so that its signal state is complete.
    hold_leader: bool,
    /// Stream mode: the leader's Thread went out at its THREAD record, so its
    /// SIGNAL_TASK and SIGPENDING pass as Unknown records.
    leader_out: bool,
    user_ns: HashSet<i32>,
    users: HashMap<i32, u32>,
    groupinfos: HashMap<i32, Vec<u32>>,
    creds: HashMap<i32, (Creds, Extras)>,
    fs_ref: i32,
    sighand_ref: i32,
    signal_ref: i32,
    /// The header's kernel (the UTS_NS strings ckpt writes).
    kernel: Kernel,
    /// UTS_NS and IPC_NS objects equal to the ones ckpt writes, not decoded
    /// into events: objref -> their records (code, payload), given back as
    /// records if an NS object that is kept names them.
    canon_children: HashMap<i32, Vec<(u32, Vec<u8>)>>,
    /// NS objects equal to the one ckpt writes.
    canon_ns: HashSet<i32>,
    /// The NS objref of the current task (its threads repeat it).
    leader_ns: i32,
    /// The signal objref a TASK_OBJS named with its SIGNAL right after it
    /// (the kernel's order: no OBJREF announces the signal object).
    bare_signal: Option<i32>,
    /// Events of the leader's file table, held from its FILE_TABLE until its
    /// signal object is read (after TASK_OBJS), so that the model keeps
    /// capture's order (Rlimits before the files).
    defer: Option<Vec<Event<'static>>>,
    /// First pass: the shared queue of the task's signal object, decoded
    /// (the Task is out by then; the second pass puts it on the Task).
    shared_found: Option<Vec<u8>>,
    /// First pass: the interval timers of the task's signal object.
    itimers_found: Option<Itimers>,
}

/// What a first pass finds of one task that its Task event needs but the
/// image holds after it: its threads, its shared queue of signals and its
/// interval timers (the signal object comes after the task's objects).
#[derive(Clone, Debug, Default)]
pub struct ScannedTask {
    /// The task's threads, in order.
    pub threads: Vec<Thread>,
    /// The shared pending queue (concatenated user siginfos), when the
    /// signal object holds one ckpt decodes.
    pub shared_pending: Option<Vec<u8>>,
    /// The interval timers of the signal object, when ckpt decodes them.
    pub itimers: Option<Itimers>,
}

/// Each task of an image, in order, as a first pass finds it.
pub type ThreadTable = Vec<ScannedTask>;

/// The ckpt-v21 decoder, generic over the input.
pub struct Decoder<I> {
    inner: Inner<I>,
    checker: crate::validate::Checker,
    failed: bool,
}

impl<I: Input> Decoder<I> {
    /// Decode `inp`, which starts at the HEADER record.
    pub fn new(inp: I, _opts: ReadOptions) -> Self {
        Decoder {
            inner: Inner {
                fr: Framer::new(inp),
                queue: VecDeque::new(),
                ahead: VecDeque::new(),
                primed: false,
                done: false,
                consts: HashMap::new(),
                has_xsave: false,
                xstate_size: 0,
                pids: Vec::new(),
                task_idx: 0,
                pid: 0,
                mm: Mm::default(),
                vdso: 0,
                mm_ref: 0,
                table_ref: 0,
                task_fds: HashMap::new(),
                files: HashMap::new(),
                pipes: HashSet::new(),
                defined: HashMap::new(),
                pending_pipes: HashMap::new(),
                held_objs: None,
                leader_objs: None,
                last_offset: 0,
                pending_task: None,
                cur_thread: None,
                task_fields: Vec::new(),
                in_thread_task: false,
                after_signal_task: false,
                before_signal_task: false,
                leader: Task::default(),
                leader_cred: 0,
                table: None,
                held_objref: None,
                hold_leader: false,
                leader_out: false,
                user_ns: HashSet::new(),
                users: HashMap::new(),
                groupinfos: HashMap::new(),
                creds: HashMap::new(),
                fs_ref: 0,
                sighand_ref: 0,
                signal_ref: 0,
                kernel: Kernel::default(),
                canon_children: HashMap::new(),
                canon_ns: HashSet::new(),
                leader_ns: 0,
                bare_signal: None,
                defer: None,
                shared_found: None,
                itimers_found: None,
            },
            checker: crate::validate::Checker::new(),
            failed: false,
        }
    }

    /// Decode `inp` with the threads a first pass found ([`scan_threads`]):
    /// every Thread then follows its Task, as capture writes them.
    pub fn with_threads(inp: I, opts: ReadOptions, table: ThreadTable) -> Self {
        let mut d = Decoder::new(inp, opts);
        d.inner.table = Some(table.into());
        d
    }
}

/// First pass: the threads of every task, in order (a v21 image keeps a
/// thread's signal mask after the task's memory, and each thread after the
/// first in a task section of its own).
pub fn scan_threads<I: Input>(inp: I) -> Result<ThreadTable> {
    let mut src = Decoder::new(
        inp,
        ReadOptions {
            check_page_data: false,
        },
    );
    src.inner.hold_leader = true;
    let mut t: ThreadTable = Vec::new();
    while let Some(ev) = src.next_event()? {
        match ev {
            Event::Task(_) => t.push(ScannedTask::default()),
            Event::Thread(th) => {
                if let Some(v) = t.last_mut() {
                    v.threads.push(th);
                }
            }
            _ => {}
        }
        if let Some(q) = src.inner.shared_found.take() {
            if let Some(v) = t.last_mut() {
                v.shared_pending = Some(q);
            }
        }
        if let Some(x) = src.inner.itimers_found.take() {
            if let Some(v) = t.last_mut() {
                v.itimers = Some(x);
            }
        }
    }
    Ok(t)
}

impl<I: Input> EventSource for Decoder<I> {
    fn next_event(&mut self) -> Result<Option<Event<'_>>> {
        if self.failed {
            return Ok(None);
        }
        self.failed = true;
        if !self.inner.primed {
            self.inner.prime()?;
        }
        if let Some(mut ev) = self.inner.ahead.pop_front() {
            crate::model::records::adopt::event(&mut ev).map_err(|m| {
                Error::invalid(self.inner.last_offset, m, "the layout of docs/MODEL.md")
            })?;
            self.checker.check(&ev, self.inner.last_offset)?;
            self.failed = false;
            return Ok(Some(ev));
        }
        let off = self.inner.fr.offset();
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

/// Whole struct bytes (header + payload) of a fixed-size record.
fn whole(h: &Hdr, p: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(p.len() + 8);
    v.extend_from_slice(&h.code.to_le_bytes());
    v.extend_from_slice(&(h.len as u32).to_le_bytes());
    v.extend_from_slice(p);
    v
}

fn unknown(h: &Hdr, p: &[u8]) -> Event<'static> {
    Event::Unknown(Unknown {
        revision: Revision::CkptV21,
        type_code: h.code,
        parent: 0,
        payload: Cow::Owned(p.to_vec()),
    })
}

/// Non-default fields of a mapped file's object, as extras with `prefix`.
fn put_file_extras(ex: &mut Extras, prefix: &str, f: &File) {
    let defaults = [
        ("f_mode", f.mode as u64, 1),
        ("f_flags", f.flags as u64, 0),
        ("f_pos", f.pos, 0),
    ];
    for (n, v, d) in defaults {
        if v != d {
            ex.set_u64(&format!("{prefix}{n}"), v);
        }
    }
    for n in FILE_EXTRAS {
        if let Some(v) = f.extras.u64(n) {
            ex.set_u64(&format!("{prefix}{n}"), v);
        }
    }
}

/// Decoder over a slice (zero-copy). A first pass over the slice finds the
/// threads, so that they follow their Task (see [`Decoder::with_threads`]).
pub fn open_slice(b: &[u8], o: ReadOptions) -> Result<Box<dyn EventSource + '_>> {
    match scan_threads(SliceInput::new(b)) {
        Ok(t) => Ok(Box::new(Decoder::with_threads(SliceInput::new(b), o, t))),
        // The error shows up again, at its place, in the events.
        Err(_) => Ok(Box::new(Decoder::new(SliceInput::new(b), o))),
    }
}

/// Decoder over any input with a thread table from a first pass.
pub fn open_stream_with_threads<'r, I: Input + 'r>(
    i: I,
    o: ReadOptions,
    t: ThreadTable,
) -> Result<Box<dyn EventSource + 'r>> {
    Ok(Box::new(Decoder::with_threads(i, o, t)))
}

/// Decoder over any input (a stream).
pub fn open_stream<'r, I: Input + 'r>(i: I, o: ReadOptions) -> Result<Box<dyn EventSource + 'r>> {
    Ok(Box::new(Decoder::new(i, o)))
}

impl<I: Input> Inner<I> {
    fn missing(&self, what: &'static str) -> Error {
        Error::new(
            self.fr.offset(),
            ErrorKind::MissingTerminator { expected: what },
        )
    }

    /// Read a record of type `name` with exact length `len` (None: any length).
    fn expect(&mut self, name: &'static str, len: Option<u64>) -> Result<(Hdr, Vec<u8>)> {
        let h = self
            .fr
            .peek()?
            .ok_or_else(|| self.missing("a TAIL record"))?;
        if h.code != code(name) {
            return Err(h.err(ErrorKind::UnexpectedRecord {
                found: format!("{} ({})", h.name(), h.code),
                expected: format!("{name} ({})", code(name)),
            }));
        }
        if let Some(l) = len {
            if h.len != l {
                return Err(h.err(ErrorKind::BadLength {
                    found: h.len,
                    expected: format!("{l}"),
                }));
            }
        }
        let (h, p) = self.fr.take()?;
        Ok((h, whole(&h, p)))
    }

    fn expect_struct(&mut self, name: &'static str) -> Result<(Hdr, Vec<u8>)> {
        self.expect(name, Some(T.st(name).size as u64))
    }

    fn konst(&self, n: &str) -> u64 {
        self.consts.get(n).copied().unwrap_or(0)
    }

    fn header(&mut self) -> Result<Event<'static>> {
        let (h, p) = self.expect_struct("HEADER")?;
        let st = T.st("HEADER");
        let magic = st.get(&p, "magic");
        if magic != crate::detect::CHECKPOINT_MAGIC_HEAD {
            return Err(h.err(ErrorKind::BadMagic {
                found: magic,
                expected: crate::detect::CHECKPOINT_MAGIC_HEAD,
            }));
        }
        let arch = st.get(&p, "arch_id");
        if arch != L::ARCH_X86_64 as u64 {
            return Err(h.err(ErrorKind::UnsupportedRevision {
                recognised: format!(
                    "ckpt-v21 with arch_id {arch} (this codec reads x86-64, arch_id 2)"
                ),
            }));
        }
        let mut extras = Extras::new();
        for (n, d) in CONSTANTS {
            let v = st.get(&p, n);
            self.consts.insert(n, v);
            if v != d {
                extras.set_u64(n, v);
            }
        }
        let rev = st.get(&p, "rev");
        if rev != L::CHECKPOINT_VERSION as u64 {
            extras.set_u64("checkpoint_version", rev);
        }
        let mut uts = Vec::new();
        for n in ["uts_release_len", "uts_version_len", "uts_machine_len"] {
            let (_, b) = self.expect("BUFFER", Some(HDR + self.konst(n)))?;
            uts.push(derive::trim_nul(&b[8..]).to_vec());
        }
        let (_, a) = self.expect_struct("HEADER_ARCH")?;
        let sa = T.st("HEADER_ARCH");
        let has_fxsr = sa.get(&a, "has_fxsr");
        if has_fxsr != 1 {
            extras.set_u64("has_fxsr", has_fxsr);
        }
        self.has_xsave = sa.get(&a, "has_xsave") != 0;
        if sa.get(&a, "has_xsave") > 1 {
            extras.set_u64("has_xsave_raw", sa.get(&a, "has_xsave"));
        }
        self.xstate_size = sa.get(&a, "xstate_size");
        let mut it = uts.into_iter();
        let mut s = || it.next().unwrap_or_default();
        let kernel = Kernel {
            major: st.get(&p, "major") as u16,
            minor: st.get(&p, "minor") as u16,
            patch: st.get(&p, "patch") as u16,
            release: s(),
            version: s(),
            machine: s(),
        };
        self.kernel = kernel.clone();
        Ok(Event::Header(Header {
            revision: Revision::CkptV21,
            arch: Arch::X86_64,
            page_size: PAGE as u32,
            kernel,
            time: st.get(&p, "time"),
            flags: st.get(&p, "uflags"),
            tool: String::new(),
            tool_version: String::new(),
            extras,
            parent: None,
        }))
    }

    fn thread(&mut self) -> Result<Event<'static>> {
        let h = self.fr.peek()?.ok_or_else(|| self.missing("THREAD"))?;
        let st = T.st("THREAD");
        if h.len < st.size as u64 {
            return Err(h.err(ErrorKind::BadLength {
                found: h.len,
                expected: format!("at least {}", st.size),
            }));
        }
        let (h, p) = self.expect("THREAD", None)?;
        let tls_len = st.get(&p, "sizeof_tls_array");
        if h.len != st.size as u64 + tls_len || tls_len % 8 != 0 {
            return Err(h.err(ErrorKind::BadLength {
                found: h.len,
                expected: format!("16 + sizeof_tls_array ({tls_len}, a multiple of 8)"),
            }));
        }
        let mut extras = Extras::new();
        let flags = st.get(&p, "thread_info_flags");
        if flags != 0 {
            extras.set_u64("thread_info_flags", flags);
        }
        let gdt = st.get(&p, "gdt_entry_tls_entries");
        if gdt != tls_len / 8 {
            extras.set_u64("gdt_entry_tls_entries", gdt);
        }
        let raw = &p[st.size..];
        // Always the slots as user_desc, empty ones included (what
        // PTRACE_GET_THREAD_AREA reports and ckpt-capture records), so that
        // the mapping to the stored descriptors is one-to-one.
        let mut tls = Vec::with_capacity(raw.len() * 2);
        for (i, d) in raw.chunks_exact(8).enumerate() {
            let d = u64::from_le_bytes(d.try_into().unwrap_or([0; 8]));
            tls.extend_from_slice(&derive::desc_to_user(d, i as u32));
        }
        // Images ckpt wrote before the full stream have no RESTART_BLOCK.
        if self
            .fr
            .peek()?
            .is_some_and(|rh| rh.code == code("RESTART_BLOCK"))
        {
            let (rh, rb) = self.expect_struct("RESTART_BLOCK")?;
            if rb != restart_block_none() {
                let st = T.st("RESTART_BLOCK");
                let ty = st.get(&rb, "function_type");
                let name = match ty {
                    L::RESTART_BLOCK_NONE => "CKPT_RESTART_BLOCK_NONE",
                    L::RESTART_BLOCK_HRTIMER_NANOSLEEP => "CKPT_RESTART_BLOCK_HRTIMER_NANOSLEEP",
                    L::RESTART_BLOCK_POSIX_CPU_NANOSLEEP => {
                        "CKPT_RESTART_BLOCK_POSIX_CPU_NANOSLEEP"
                    }
                    L::RESTART_BLOCK_COMPAT_NANOSLEEP => "CKPT_RESTART_BLOCK_COMPAT_NANOSLEEP",
                    L::RESTART_BLOCK_COMPAT_CLOCK_NANOSLEEP => {
                        "CKPT_RESTART_BLOCK_COMPAT_CLOCK_NANOSLEEP"
                    }
                    L::RESTART_BLOCK_POLL => "CKPT_RESTART_BLOCK_POLL",
                    L::RESTART_BLOCK_FUTEX => "CKPT_RESTART_BLOCK_FUTEX",
                    _ => "of an unknown type",
                };
                return Err(rh.err(ErrorKind::Invalid {
                    found: format!(
                        "restart block {name} ({ty}) with arguments {:?}: thread {} was checkpointed inside a system call the v21 kernel restarts from these saved arguments",
                        ["arg_0", "arg_1", "arg_2", "arg_3", "arg_4"].map(|a| st.get(&rb, a)),
                        self.pid
                    ),
                    expected: "CKPT_RESTART_BLOCK_NONE (1) with no arguments: the model has no place for a kernel restart block (what each argument means per type is in the kernel's restart-block code, not in the headers), so the image is refused rather than restored without the call".into(),
                }));
            }
        }
        let (_, c) = self.expect_struct("CPU")?;
        let sc = T.st("CPU");
        let mut regs = [0u64; 27];
        for (n, i) in L::CPU_REGS {
            regs[i] = sc.get(&c, n);
        }
        for (n, i) in L::CPU_SEGS {
            let code = sc.get(&c, n) as u16;
            match derive::seg_decode(code) {
                Some(sel) => {
                    regs[i] = sel;
                    if derive::seg_encode(sel) != Some(code) {
                        extras.set_u64(&format!("{n}_sym"), code as u64);
                    }
                }
                None => extras.set_u64(&format!("{n}_sym"), code as u64),
            }
        }
        let used_math = sc.get(&c, "used_math");
        if used_math > 1 {
            extras.set_u64("used_math", used_math);
        }
        let fpu = if used_math != 0 {
            let (_, f) = self.expect("CPU_FPU", Some(HDR + self.xstate_size))?;
            Some(Fpu {
                kind: if self.has_xsave {
                    FpuKind::Xsave
                } else {
                    FpuKind::Fxsave
                },
                xfeatures: 0,
                data: f[8..].to_vec(),
            })
        } else {
            None
        };
        Ok(Event::Thread(Thread {
            tid: self.pid,
            regs: Regs::from_array(regs),
            fpu,
            tls,
            sigmask: 0,
            records: Default::default(),
            extras,
        }))
    }
}
