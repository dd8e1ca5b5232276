//! The `ckpt-v21` revision: Linux-CR v21 (2010), fully framed `ckpt_hdr`, x86-64.
//!
//! ```text
//! record := ckpt_hdr{u32 type; u32 len (header included)} payload[len - 8]
//! image  := HEADER BUFFER(release) BUFFER(version) BUFFER(machine) HEADER_ARCH
//!           other* TREE BUFFER(ckpt_pids[nr_tasks]) task* TAIL
//! task   := TASK STRING(comm)                              (zombies stop here)
//!           THREAD(+TLS) CPU [CPU_FPU]
//!           [cred objects TASK_CREDS]
//!           [OBJREF FILE FILE_NAME] OBJREF(MM) MM BUFFER(auxv)
//!              ( [OBJREF FILE FILE_NAME] VMA chunk* PGARR(0) )* MM_CONTEXT MM_CONTEXT_LDT
//!           [OBJREF(FS) FS FILE_NAME FILE_NAME] [OBJREF(SIGHAND) SIGHAND] [OBJREF(SIGNAL) SIGNAL]
//!           OBJREF(FILE_TABLE) FILE_TABLE ( [OBJREF FILE (FILE_NAME | PIPE_BUF)] FILE_DESC )*
//!           TASK_OBJS [SIGNAL_TASK [SIGPENDING]]
//!           thread*                    (each further thread of the task, a v21 task of its own)
//! thread := TASK STRING THREAD CPU [CPU_FPU] [TASK_CREDS] TASK_OBJS [SIGNAL_TASK [SIGPENDING]]
//! chunk  := PGARR(n) BUFFER(n x u64 vaddrs, n x 4096 pages)
//! ```
//!
//! Objects may come in any order before the record naming them. ERROR
//! records (+ STRING) may appear anywhere; records this codec does not model
//! (CONTAINER, LSM, namespaces, itimers, ...) become [`Event::Unknown`] and
//! are written back verbatim. See docs/CONVERT.md "ckpt-v21: threads,
//! credentials, fs and signals". Layouts and codes come
//! from [`crate::layout::v21`]; [`Framer`] is the one framing function.

use crate::convert::Plan;
use crate::error::{Error, ErrorKind, Result};
use crate::input::{Input, SliceInput};
use crate::layout::derive;
use crate::layout::v21::{self as L, TABLE as T};
use crate::model::*;
use crate::{EventSink, EventSource, RawRecord, ReadOptions, RecordSource};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{BufWriter, Write};

const PAGE: u64 = 4096;
const HDR: u64 = L::HDR_LEN as u64;
/// Pages per chunk the encoder writes (bounded below the kernel's batch so that
/// stream readers stay small).
const CHUNK_PAGES: usize = 1024;

/// Kernel constants the v21 header records, with the values of an x86-64
/// 2.6.33 kernel; the decoder keeps a constant in header extras (same key)
/// only when it differs.
pub const CONSTANTS: [(&str, u64); 12] = [
    ("task_comm_len", 16),
    ("at_vector_size", 44),
    ("signal_nsig", 64),
    ("uts_sysname_len", 65),
    ("uts_nodename_len", 65),
    ("uts_release_len", 65),
    ("uts_version_len", 65),
    ("uts_machine_len", 65),
    ("uts_domainname_len", 65),
    ("rlimit_nlimits", 16),
    ("n_tty_buf_size", 4096),
    ("tty_termios_ncc", 19),
];

fn code(name: &str) -> u32 {
    T.code(name)
}

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
    fn name(&self) -> &'static str {
        T.name(self.code)
    }
    fn err(&self, kind: ErrorKind) -> Error {
        Error::new(self.offset, kind).in_record(self.code, self.name())
    }
}

/// The one framing function of ckpt-v21.
pub struct Framer<I> {
    inp: I,
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

/// The five objrefs of `ckpt_hdr_task_objs`, in order.
pub(crate) const TASK_OBJS_FIELDS: [(&str, &str); 5] = [
    ("files_objref", "FILE_TABLE"),
    ("mm_objref", "MM"),
    ("fs_objref", "FS"),
    ("sighand_objref", "SIGHAND"),
    ("signal_objref", "SIGNAL"),
];

/// The objref and object type of a ckpt-v21 OBJREF record kept as
/// [`Event::Unknown`] (an object the model does not decode), if `u` is one.
pub fn kept_objref(u: &Unknown<'_>) -> Option<(i32, u32)> {
    if u.revision != Revision::CkptV21 || u.type_code != code("OBJREF") {
        return None;
    }
    let p = u.payload.get(..8)?;
    let ty = u32::from_le_bytes([p[0], p[1], p[2], p[3]]);
    let r = i32::from_le_bytes([p[4], p[5], p[6], p[7]]);
    Some((r, ty))
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
    /// The leader's Task as emitted (thread-task defaults).
    leader: Task,
    leader_cred: i32,
    /// Threads of every task, from a first pass ([`scan_threads`]): emitted right
    /// after their Task, and the thread records are then only checked.
    table: Option<VecDeque<Vec<Thread>>>,
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
}

/// Threads of each task of an image, in order, as a first pass finds them.
pub type ThreadTable = Vec<Vec<Thread>>;

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
            Event::Task(_) => t.push(Vec::new()),
            Event::Thread(th) => {
                if let Some(v) = t.last_mut() {
                    v.push(th);
                }
            }
            _ => {}
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
        if let Some(ev) = self.inner.ahead.pop_front() {
            self.checker.check(&ev, self.inner.last_offset)?;
            self.failed = false;
            return Ok(Some(ev));
        }
        let off = self.inner.fr.offset();
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

/// Per-thread fields of `ckpt_hdr_task`: (v21 field, [`Thread`] extra key).
/// Every thread is a v21 task of its own, so these are per thread.
pub(crate) const THREAD_TASK_FIELDS: [(&str, &str); 6] = [
    ("robust_futex_list", "robust_list_head"),
    ("robust_futex_head_len", "robust_list_len"),
    ("clear_child_tid", "clear_child_tid"),
    ("set_child_tid", "set_child_tid"),
    ("compat_robust_futex_list", "compat_robust_futex_list"),
    (
        "compat_robust_futex_head_len",
        "compat_robust_futex_head_len",
    ),
];
/// Task extras the encoder places: `pdeath_signal`, and the per-thread
/// TASK fields under their v21 names (older models kept them on the task).
pub(crate) const TASK_KEYS: [&str; 7] = [
    "pdeath_signal",
    "robust_futex_list",
    "robust_futex_head_len",
    "clear_child_tid",
    "set_child_tid",
    "compat_robust_futex_list",
    "compat_robust_futex_head_len",
];
/// Capability sets (capture keys) and their `ckpt_capabilities` fields in CRED.
pub(crate) const CAP_KEYS: [(&str, &str); 4] = [
    ("cap_inh", "cap_i_mask"),
    ("cap_prm", "cap_p_mask"),
    ("cap_eff", "cap_e_mask"),
    ("cap_bnd", "cap_b_mask"),
];
/// Capture keys v21 has no field for; 0 is implied next to the capability sets.
pub(crate) const CAP_ZERO_KEYS: [&str; 3] = ["cap_amb", "no_new_privs", "seccomp_mode"];
/// Thread extras of a thread's own TASK record and its SIGPENDING.
pub(crate) const THREAD_ONLY_KEYS: [&str; 6] = [
    "sigpending",
    "task_state",
    "exit_code",
    "exit_signal",
    "pdeath_signal",
    "comm",
];
/// sigaltstack keys of capture: v21 cannot hold them; the disabled stack
/// (sp 0, `SS_DISABLE`, size 0) is implied next to `clear_child_tid`.
pub(crate) const SIGALTSTACK_KEYS: [(&str, u64); 3] = [
    ("sigaltstack_sp", 0),
    ("sigaltstack_flags", 2),
    ("sigaltstack_size", 0),
];

/// File-object fields that have no named place in [`File`], kept when non-zero.
const FILE_EXTRAS: [&str; 3] = ["f_version", "f_credref", "f_secref"];

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

    /// Read ahead to the first thread, so that the header can say which FPU
    /// facts are derivable (see docs/MODEL.md), then queue the events read.
    fn prime(&mut self) -> Result<()> {
        self.primed = true;
        let mut first_fpu = None;
        loop {
            let ev = match self.step()? {
                None => break,
                Some(ev) => ev.into_owned(),
            };
            let stop = match &ev {
                Event::Thread(t) => match &t.fpu {
                    Some(f) => {
                        first_fpu = Some((f.kind, f.data.len()));
                        true
                    }
                    None => false,
                },
                Event::Tail | Event::Mm(_) | Event::Vma(_) => true,
                _ => self.ahead.len() > 256,
            };
            self.ahead.push_back(ev);
            if stop {
                break;
            }
        }
        let (dx, ds) = arch_defaults(first_fpu);
        if let Some(Event::Header(h)) = self.ahead.front_mut() {
            let has_xsave = self.has_xsave as u64;
            if has_xsave != dx || self.xstate_size != ds {
                h.extras.set_u64("has_xsave", has_xsave);
                h.extras.set_u64("xstate_size", self.xstate_size);
            }
        }
        Ok(())
    }

    fn step(&mut self) -> Result<Option<Event<'_>>> {
        if let Some(ev) = self.queue.pop_front() {
            return Ok(Some(ev));
        }
        if self.done {
            return Ok(None);
        }
        self.last_offset = self.fr.offset();
        if let Some((h, p)) = self.held_objref.take() {
            return self.objref_parsed(h, p);
        }
        let Some(h) = self.fr.peek()? else {
            return Err(self.missing("a TAIL record"));
        };
        let name = h.name();

        if self.pending_task.is_some() && !matches!(name, "THREAD" | "OBJREF" | "TASK_CREDS") {
            return Ok(Some(self.flush_task()));
        }
        if matches!(name, "TASK" | "TAIL") {
            if let Some(t) = self.cur_thread.take() {
                if self.table.is_none() {
                    return Ok(Some(Event::Thread(t)));
                }
            }
            // The end of a model task (a thread's TASK continues its leader's).
            let thread_next = name == "TASK"
                && self
                    .pids
                    .get(self.task_idx)
                    .is_some_and(|ids| ids[0] != ids[2]);
            if !thread_next {
                if let Some(ev) = self.held_objs.take() {
                    return Ok(Some(ev));
                }
            }
            if name == "TAIL" {
                // A pipe whose ends were never emitted (no fd used them):
                // kept as a Pipe event of the last task, in objref order.
                if let Some(&r) = self.pending_pipes.keys().min() {
                    let data = self.pending_pipes.remove(&r).unwrap_or_default();
                    return Ok(Some(Event::Pipe(Pipe {
                        id: r as u32,
                        data: Cow::Owned(data),
                    })));
                }
            }
        }
        if name == "SIGPENDING" && self.after_signal_task && self.leader_out && !self.in_thread_task
        {
            self.after_signal_task = false;
            let (h, p) = self.fr.take()?;
            return Ok(Some(unknown(&h, p)));
        }
        if name == "SIGPENDING" && self.after_signal_task {
            self.after_signal_task = false;
            let (h, p) = self.expect_struct("SIGPENDING")?;
            let st = T.st("SIGPENDING");
            if st.get(&p, "nr_pending") != 0 {
                return Err(h.err(ErrorKind::BadValue {
                    field: "nr_pending",
                    found: st.get(&p, "nr_pending"),
                    expected: "0 (queued siginfo is not supported)".into(),
                }));
            }
            if let Some(t) = self.cur_thread.as_mut() {
                t.extras.set_u64("sigpending", st.get(&p, "signal"));
            }
            return self.step();
        }
        self.after_signal_task = false;
        if h.offset == 0 && name != "HEADER" {
            return Err(h.err(ErrorKind::UnexpectedRecord {
                found: name.into(),
                expected: "HEADER".into(),
            }));
        }
        match name {
            "HEADER" => self.header().map(Some),
            "TAIL" => {
                let (h, p) = self.expect_struct("TAIL")?;
                let magic = T.st("TAIL").get(&p, "magic");
                if magic != crate::detect::CHECKPOINT_MAGIC_TAIL {
                    return Err(h.err(ErrorKind::BadMagic {
                        found: magic,
                        expected: crate::detect::CHECKPOINT_MAGIC_TAIL,
                    }));
                }
                let off = self.fr.offset();
                let extra = self.fr.inp.drain()?;
                if extra > 0 {
                    return Err(Error::new(off, ErrorKind::TrailingData { bytes: extra }));
                }
                self.done = true;
                Ok(Some(Event::Tail))
            }
            "TREE" => {
                let (h, p) = self.expect_struct("TREE")?;
                let n = T.st("TREE").get_i(&p, "nr_tasks");
                let esz = T.st("PIDS").size as u64;
                let max = (crate::input::MAX_RECORD_LEN / esz) as i64;
                if !(0..=max).contains(&n) {
                    return Err(h.err(ErrorKind::BadValue {
                        field: "nr_tasks",
                        found: n as u64,
                        expected: format!("0..={max}"),
                    }));
                }
                let (bh, b) = self.expect("BUFFER", Some(HDR + n as u64 * esz))?;
                let st = T.st("PIDS");
                self.pids.clear();
                for e in b[8..].chunks_exact(esz as usize) {
                    let g = |f: &str| st.get_i(e, f) as i32;
                    if g("depth") != 0 {
                        return Err(bh.err(ErrorKind::BadValue {
                            field: "depth",
                            found: g("depth") as u64,
                            expected: "0 (nested pid namespaces are not supported)".into(),
                        }));
                    }
                    self.pids
                        .push([g("vpid"), g("vppid"), g("vtgid"), g("vpgid"), g("vsid"), 0]);
                }
                self.step()
            }
            "TASK" => {
                let (h, p) = self.expect_struct("TASK")?;
                let Some(ids) = self.pids.get(self.task_idx).copied() else {
                    return Err(h.err(ErrorKind::Invalid {
                        found: format!("task number {}", self.task_idx + 1),
                        expected: format!("at most {} tasks (TREE nr_tasks)", self.pids.len()),
                    }));
                };
                self.task_idx += 1;
                let comm_len = self.konst("task_comm_len");
                let (_, comm) = self.expect("STRING", Some(HDR + comm_len))?;
                let st = T.st("TASK");
                let comm = derive::trim_nul(&comm[8..]).to_vec();
                self.task_fields = THREAD_TASK_FIELDS
                    .iter()
                    .map(|(f, _)| (*f, st.get(&p, f)))
                    .collect();
                if ids[0] != ids[2] {
                    // A thread: a task of its own right after its leader.
                    if ids[2] != self.pid || self.leader.pid != self.pid {
                        return Err(h.err(ErrorKind::Invalid {
                            found: format!("thread {} of thread group {}", ids[0], ids[2]),
                            expected: format!(
                                "a thread of the task before it ({}); threads after child tasks are not supported",
                                self.pid
                            ),
                        }));
                    }
                    if st.get(&p, "exit_state") != 0 {
                        return Err(h.err(ErrorKind::BadValue {
                            field: "exit_state",
                            found: st.get(&p, "exit_state"),
                            expected: "0 (zombie threads are not supported)".into(),
                        }));
                    }
                    let l = &self.leader;
                    let mut x = Extras::new();
                    for (k, v, d) in [
                        ("task_state", st.get(&p, "state"), l.state as u64),
                        ("exit_code", st.get(&p, "exit_code"), 0),
                        ("exit_signal", st.get(&p, "exit_signal"), u32::MAX as u64),
                        (
                            "pdeath_signal",
                            st.get(&p, "pdeath_signal"),
                            l.extras.u64("pdeath_signal").unwrap_or(0),
                        ),
                    ] {
                        if v != d {
                            x.set_u64(k, v);
                        }
                    }
                    if comm != l.comm {
                        x.set_bytes("comm", &comm);
                    }
                    self.in_thread_task = true;
                    self.cur_thread = Some(Thread {
                        tid: ids[0],
                        extras: x,
                        ..Thread::default()
                    });
                    return self.step();
                }
                let mut extras = Extras::new();
                let pd = st.get(&p, "pdeath_signal");
                if pd != 0 {
                    extras.set_u64("pdeath_signal", pd);
                }
                self.in_thread_task = false;
                self.pid = ids[0];
                self.mm_ref = 0;
                self.table_ref = 0;
                self.fs_ref = 0;
                self.sighand_ref = 0;
                self.signal_ref = 0;
                self.leader_cred = 0;
                self.cur_thread = None;
                self.leader_out = false;
                self.leader_objs = None;
                let task = Task {
                    pid: ids[0],
                    ppid: ids[1],
                    tgid: ids[2],
                    pgid: ids[3],
                    sid: ids[4],
                    comm,
                    state: st.get(&p, "state") as u32,
                    exit_state: st.get(&p, "exit_state") as u32,
                    exit_code: st.get(&p, "exit_code") as u32,
                    exit_signal: st.get(&p, "exit_signal") as u32,
                    creds: Creds::default(),
                    extras,
                };
                self.leader = task.clone();
                self.pending_task = Some(task);
                self.step()
            }
            "TASK_CREDS" => {
                let (h, p) = self.expect_struct("TASK_CREDS")?;
                let st = T.st("TASK_CREDS");
                let (r, e) = (
                    st.get_i(&p, "cred_ref") as i32,
                    st.get_i(&p, "ecred_ref") as i32,
                );
                if r != e {
                    return Err(h.err(ErrorKind::Invalid {
                        found: format!("cred_ref {r}, ecred_ref {e}"),
                        expected:
                            "one cred object (differing real and effective creds are not supported)"
                                .into(),
                    }));
                }
                let Some((c, x)) = self.creds.get(&r).cloned() else {
                    return Err(h.err(ErrorKind::ObjrefUndefined { id: r as u32 }));
                };
                if self.in_thread_task {
                    if r != self.leader_cred {
                        return Err(h.err(ErrorKind::Invalid {
                            found: format!("thread cred_ref {r}"),
                            expected: format!(
                                "the leader's ({}): per-thread creds are not supported",
                                self.leader_cred
                            ),
                        }));
                    }
                    return self.step();
                }
                self.leader_cred = r;
                if let Some(t) = self.pending_task.as_mut() {
                    t.creds = c;
                    t.extras.0.extend(x.0);
                    self.leader = t.clone();
                }
                Ok(Some(self.flush_task()))
            }
            "SIGNAL_TASK" if self.leader_out && !self.in_thread_task => {
                let (h, p) = self.expect_struct("SIGNAL_TASK")?;
                self.after_signal_task = true;
                Ok(Some(unknown(&h, &p[8..])))
            }
            "SIGNAL_TASK" => {
                let (_, p) = self.expect_struct("SIGNAL_TASK")?;
                if let Some(t) = self.cur_thread.as_mut() {
                    t.sigmask = T.st("SIGNAL_TASK").get(&p, "blocked");
                }
                self.after_signal_task = true;
                self.step()
            }
            "THREAD" => {
                let mut t = match self.thread()? {
                    Event::Thread(t) => t,
                    _ => return self.step(),
                };
                if let Some(prev) = self.cur_thread.take() {
                    // a thread task: tid and TASK-derived extras were set at TASK
                    t.tid = prev.tid;
                    t.extras.0.extend(prev.extras.0);
                } else {
                    t.tid = self.pid;
                }
                let robust = self.task_fields.iter().take(2).any(|(_, v)| *v != 0);
                for ((f, v), (_, k)) in self.task_fields.iter().zip(THREAD_TASK_FIELDS) {
                    let pair = *f == "robust_futex_list" || *f == "robust_futex_head_len";
                    if *v != 0 || (pair && robust) {
                        t.extras.set_u64(k, *v);
                    }
                }
                if t.extras.u64("clear_child_tid").is_some() {
                    for (k, d) in SIGALTSTACK_KEYS {
                        t.extras.set_u64(k, d);
                    }
                }
                self.cur_thread = Some(t);
                self.step()
            }
            "OBJREF" => self.objref(),
            "VMA" => self.vma().map(Some),
            "PGARR" => {
                let (h, p) = self.expect_struct("PGARR")?;
                let n = T.st("PGARR").get(&p, "nr_pages");
                if n == 0 {
                    return Ok(Some(Event::VmaEnd));
                }
                let len = n
                    .checked_mul(8 + PAGE)
                    .and_then(|l| l.checked_add(HDR))
                    .filter(|&l| l <= u32::MAX as u64)
                    .ok_or_else(|| {
                        h.err(ErrorKind::TooLarge {
                            found: n,
                            limit: u32::MAX as u64 / (8 + PAGE),
                        })
                    })?;
                let bh = self
                    .fr
                    .peek()?
                    .ok_or_else(|| self.missing("the page BUFFER"))?;
                if bh.code != code("BUFFER") || bh.len != len {
                    return Err(bh.err(ErrorKind::BadLength {
                        found: bh.len,
                        expected: format!("a BUFFER of {len} bytes for {n} pages"),
                    }));
                }
                let (_, b) = self.fr.take()?;
                let (a, d) = b.split_at((n * 8) as usize);
                let addrs = Addrs::from_le_bytes(a, 8)
                    .ok_or_else(|| Error::invalid(bh.offset, "page addresses", "u64 words"))?;
                // An all-zero chunk of consecutive pages is a zero run (native-1
                // elides zero pages; the v21 encoder writes them out).
                let first = addrs.get(0).unwrap_or(0);
                let run = d.iter().all(|&x| x == 0)
                    && addrs.iter().enumerate().all(|(i, x)| {
                        Some(x)
                            == (i as u64)
                                .checked_mul(PAGE)
                                .and_then(|o| first.checked_add(o))
                    });
                if run {
                    return Ok(Some(Event::ZeroPages(ZeroRun {
                        start: first,
                        count: n,
                    })));
                }
                let chunk = PageChunk {
                    addrs,
                    data: Cow::Borrowed(d),
                };
                Ok(Some(Event::Pages(chunk)))
            }
            "MM_CONTEXT" => {
                let (h, p) = self.expect_struct("MM_CONTEXT")?;
                let st = T.st("MM_CONTEXT");
                let (lh, ldt) = self.expect("MM_CONTEXT_LDT", None)?;
                let nldt = st.get(&p, "nldt");
                let esz = st.get(&p, "ldt_entry_size");
                if nldt.checked_mul(esz) != Some(lh.len - HDR) {
                    return Err(lh.err(ErrorKind::BadLength {
                        found: lh.len,
                        expected: format!("8 + nldt {nldt} x ldt_entry_size {esz}"),
                    }));
                }
                if nldt == 0 && esz == 8 && st.get(&p, "vdso") == self.vdso {
                    return self.step();
                }
                self.queue.push_back(unknown(&lh, &ldt[8..]));
                Ok(Some(unknown(&h, &p[8..])))
            }
            "FILE_DESC" => {
                let (h, p) = self.expect_struct("FILE_DESC")?;
                let st = T.st("FILE_DESC");
                let r = st.get_i(&p, "fd_objref") as i32;
                let cloexec = st.get(&p, "fd_close_on_exec");
                if cloexec > 1 {
                    return Err(h.err(ErrorKind::BadValue {
                        field: "fd_close_on_exec",
                        found: cloexec,
                        expected: "0 or 1".into(),
                    }));
                }
                let Some(obj) = self.files.get_mut(&r) else {
                    return Err(h.err(ErrorKind::ObjrefUndefined { id: r as u32 }));
                };
                let fd = Event::Fd(Fd {
                    fd: st.get_i(&p, "fd_descriptor") as i32,
                    cloexec: cloexec == 1,
                    file: r as u32,
                });
                if !obj.emitted {
                    obj.emitted = true;
                    let f = obj.file.clone();
                    self.emit_file(f);
                    self.queue.push_back(fd);
                    return Ok(self.queue.pop_front());
                }
                Ok(Some(fd))
            }
            "TASK_OBJS" => {
                let (h, p) = self.expect_struct("TASK_OBJS")?;
                let st = T.st("TASK_OBJS");
                let vals = TASK_OBJS_FIELDS.map(|(n, _)| st.get_i(&p, n) as i32);
                let own = [
                    self.table_ref,
                    self.mm_ref,
                    self.fs_ref,
                    self.sighand_ref,
                    self.signal_ref,
                ];
                if self.in_thread_task {
                    // A thread shares its leader's objects: the same record.
                    let lead = self.leader_objs.unwrap_or(own);
                    if vals != lead {
                        return Err(h.err(ErrorKind::Invalid {
                            found: format!("a thread's TASK_OBJS naming objrefs {vals:?}"),
                            expected: format!("its leader's ({lead:?})"),
                        }));
                    }
                    return self.step();
                }
                if vals[..2] != own[..2] {
                    return Err(h.err(ErrorKind::Invalid {
                        found: format!("files_objref {}, mm_objref {}", vals[0], vals[1]),
                        expected: format!(
                            "the objects defined for this task ({}, {}); shared tables are not supported",
                            own[0], own[1]
                        ),
                    }));
                }
                self.leader_objs = Some(vals);
                // The objrefs of objects the model decodes are the encoder's to
                // choose (docs/CONVERT.md "Object numbering and order"): a
                // field naming the task's own object is 0 in a kept record.
                let mut template = p.clone();
                let mut kept = false;
                for (i, (field, kind)) in TASK_OBJS_FIELDS.iter().enumerate() {
                    let (v, r) = (vals[i], own[i]);
                    if v == r {
                        st.put(&mut template, field, 0);
                        continue;
                    }
                    if r != 0 {
                        return Err(h.err(ErrorKind::Invalid {
                            found: format!("{field} {v}"),
                            expected: format!("the {kind} object defined for this task ({r})"),
                        }));
                    }
                    // An object kept as records: named by its own number.
                    match self.defined.get(&v) {
                        None => return Err(h.err(ErrorKind::ObjrefUndefined { id: v as u32 })),
                        Some(d) if T.obj_name(d.ty) != *kind => {
                            return Err(h.err(ErrorKind::Invalid {
                                found: format!(
                                    "{field} {v}, an object of type {} (defined at offset {})",
                                    T.obj_name(d.ty),
                                    d.offset
                                ),
                                expected: format!("an object of type {kind}"),
                            }))
                        }
                        Some(d) if !d.kept => {
                            return Err(h.err(ErrorKind::Invalid {
                                found: format!(
                                    "{field} {v}, the {kind} of an earlier task (defined at offset {})",
                                    d.offset
                                ),
                                expected: format!(
                                    "a {kind} object of this task's own; sharing it between processes is not supported"
                                ),
                            }))
                        }
                        Some(_) => kept = true,
                    }
                }
                if kept {
                    // Emitted as the task's last event, where an encoder writes it.
                    self.held_objs = Some(unknown(&h, &template[8..]));
                }
                self.step()
            }
            "ERROR" => {
                let (h, _) = self.expect("ERROR", Some(HDR))?;
                let sh = self
                    .fr
                    .peek()?
                    .ok_or_else(|| self.missing("the error STRING"))?;
                if sh.code != code("STRING") {
                    return Err(h.err(ErrorKind::UnexpectedRecord {
                        found: sh.name().into(),
                        expected: "STRING after ERROR".into(),
                    }));
                }
                let (_, s) = self.fr.take()?;
                let mut m = s;
                if let Some((0, rest)) = m.split_first() {
                    m = rest;
                }
                if let Some((0, rest)) = m.split_last() {
                    m = rest;
                }
                Ok(Some(Event::Error(m.to_vec())))
            }
            _ => {
                let (h, p) = self.fr.take()?;
                Ok(Some(Event::Unknown(Unknown {
                    revision: Revision::CkptV21,
                    type_code: h.code,
                    parent: 0,
                    payload: Cow::Borrowed(p),
                })))
            }
        }
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
        Ok(Event::Header(Header {
            revision: Revision::CkptV21,
            arch: Arch::X86_64,
            page_size: PAGE as u32,
            kernel: Kernel {
                major: st.get(&p, "major") as u16,
                minor: st.get(&p, "minor") as u16,
                patch: st.get(&p, "patch") as u16,
                release: s(),
                version: s(),
                machine: s(),
            },
            time: st.get(&p, "time"),
            flags: st.get(&p, "uflags"),
            tool: String::new(),
            tool_version: String::new(),
            extras,
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
            extras,
        }))
    }

    fn file_obj(&mut self, r: i32) -> Result<()> {
        let h = self.fr.peek()?.ok_or_else(|| self.missing("FILE"))?;
        if h.code != code("FILE") || h.len < 12 {
            return Err(h.err(ErrorKind::UnexpectedRecord {
                found: format!("{} of {} bytes", h.name(), h.len),
                expected: "FILE after OBJREF(FILE)".into(),
            }));
        }
        let (h, p) = self.expect("FILE", None)?;
        let ftype = T.st("FILE").get(&p, "f_type") as u32;
        let st = match ftype {
            L::FILE_GENERIC => T.st("FILE"),
            L::FILE_PIPE => T.st("FILE_PIPE"),
            t => {
                return Err(h.err(ErrorKind::BadValue {
                    field: "f_type",
                    found: t as u64,
                    expected: "1 (generic) or 2 (pipe); other file types are not supported".into(),
                }))
            }
        };
        if h.len != st.size as u64 {
            return Err(h.err(ErrorKind::BadLength {
                found: h.len,
                expected: format!("{} (sizeof {})", st.size, st.c_name),
            }));
        }
        let mut extras = Extras::new();
        for n in FILE_EXTRAS {
            let v = st.get(&p, n);
            if v != 0 {
                extras.set_u64(n, v);
            }
        }
        let mut file = File {
            id: r as u32,
            kind: match st.get(&p, "f_mode") as u32 & encode::S_IFMT {
                encode::S_IFDIR => FileKind::Directory,
                encode::S_IFCHR => FileKind::CharDevice,
                encode::S_IFIFO => FileKind::Fifo,
                _ => FileKind::Regular,
            },
            path: Vec::new(),
            flags: st.get(&p, "f_flags") as u32,
            mode: st.get(&p, "f_mode") as u32,
            pos: st.get(&p, "f_pos"),
            pipe: None,
            extras,
        };
        if ftype == L::FILE_GENERIC {
            let (nh, n) = self.expect("FILE_NAME", None)?;
            match n[8..].split_last() {
                Some((0, path)) => file.path = path.to_vec(),
                _ => {
                    return Err(nh.err(ErrorKind::Invalid {
                        found: "a file name without its NUL".into(),
                        expected: "len = 8 + strlen + 1".into(),
                    }))
                }
            }
        } else {
            let pr = st.get_i(&p, "pipe_objref") as i32;
            file.kind = FileKind::Pipe;
            file.pipe = Some(pr as u32);
            if self.pipes.insert(pr) {
                // The pipe is an object of its own (its inode), defined by
                // its first end and numbered in the same space.
                self.define(&h, pr, T.obj_code("INODE"))?;
                let data = match self.fr.peek()? {
                    Some(b) if b.code == code("PIPE_BUF") => {
                        let (_, d) = self.fr.take()?;
                        d.to_vec()
                    }
                    _ => Vec::new(),
                };
                // Emitted right before the first File naming the pipe: where
                // an encoder writes the buffer, with the pipe's first end.
                self.pending_pipes.insert(pr, data);
            }
        }
        self.files.insert(
            r,
            FileObj {
                file,
                emitted: false,
            },
        );
        Ok(())
    }

    /// Queue the events of a file's first use: its pipe's buffer if this is
    /// the first end emitted, then the File.
    fn emit_file(&mut self, f: File) {
        if let Some(p) = f.pipe {
            if let Some(data) = self.pending_pipes.remove(&(p as i32)) {
                self.queue.push_back(Event::Pipe(Pipe {
                    id: p,
                    data: Cow::Owned(data),
                }));
            }
        }
        self.queue.push_back(Event::File(f));
    }

    /// Record objref `r` (an object of type `ty`) as defined by the record at
    /// `h`; an objref is defined once per image.
    fn define(&mut self, h: &Hdr, r: i32, ty: u32) -> Result<()> {
        if let Some(d) = self.defined.get(&r) {
            return Err(h.err(ErrorKind::ObjrefRedefined {
                id: r as u32,
                first: d.offset,
            }));
        }
        self.defined.insert(
            r,
            Def {
                ty,
                offset: h.offset,
                kept: false,
            },
        );
        Ok(())
    }

    /// Mark objref `r` as kept as records of the image (not decoded).
    fn keep(&mut self, r: i32) {
        if let Some(d) = self.defined.get_mut(&r) {
            d.kept = true;
        }
    }

    /// Emit the held Task (and, with a thread table, its threads after it).
    fn flush_task(&mut self) -> Event<'static> {
        let t = self.pending_task.take().unwrap_or_default();
        if self.table.is_none() && !self.hold_leader {
            // Stream mode: the leader's Thread follows its Task right away.
            if let Some(th) = self.cur_thread.take() {
                self.queue.push_back(Event::Thread(th));
                self.leader_out = true;
            }
        }
        if let Some(tab) = self.table.as_mut() {
            for th in tab.pop_front().unwrap_or_default() {
                self.queue.push_back(Event::Thread(th));
            }
        }
        Event::Task(t)
    }

    fn objref(&mut self) -> Result<Option<Event<'_>>> {
        let (h, p) = self.expect_struct("OBJREF")?;
        let ty = T.obj_name(T.st("OBJREF").get(&p, "objtype") as u32);
        if self.pending_task.is_some() && !matches!(ty, "USER_NS" | "USER" | "GROUPINFO" | "CRED") {
            self.held_objref = Some((h, p));
            return Ok(Some(self.flush_task()));
        }
        self.objref_parsed(h, p)
    }

    fn objref_parsed(&mut self, h: Hdr, p: Vec<u8>) -> Result<Option<Event<'_>>> {
        let st = T.st("OBJREF");
        let ty = st.get(&p, "objtype") as u32;
        let r = st.get_i(&p, "objref") as i32;
        self.define(&h, r, ty)?;
        match T.obj_name(ty) {
            "USER_NS" => {
                let (uh, u) = self.expect_struct("USER_NS")?;
                if T.st("USER_NS").get(&u, "creator_ref") != 0 {
                    return Err(uh.err(ErrorKind::BadValue {
                        field: "creator_ref",
                        found: T.st("USER_NS").get(&u, "creator_ref"),
                        expected: "0 (nested user namespaces are not supported)".into(),
                    }));
                }
                self.user_ns.insert(r);
                self.step()
            }
            "USER" => {
                let (uh, u) = self.expect_struct("USER")?;
                let us = T.st("USER");
                let ns = us.get_i(&u, "userns_ref") as i32;
                if !self.user_ns.contains(&ns) {
                    return Err(uh.err(ErrorKind::ObjrefUndefined { id: ns as u32 }));
                }
                self.users.insert(r, us.get(&u, "uid") as u32);
                self.step()
            }
            "GROUPINFO" => {
                let gh = self.fr.peek()?.ok_or_else(|| self.missing("GROUPINFO"))?;
                let n = if gh.code == code("GROUPINFO") && gh.len >= 16 {
                    (gh.len - 16) / 4
                } else {
                    0
                };
                let (gh, g) = self.expect("GROUPINFO", Some(16 + n * 4))?;
                if T.st("GROUPINFO").get(&g, "ngroups") != n {
                    return Err(gh.err(ErrorKind::BadLength {
                        found: gh.len,
                        expected: format!(
                            "16 + 4 x ngroups ({})",
                            T.st("GROUPINFO").get(&g, "ngroups")
                        ),
                    }));
                }
                let groups = g[12..12 + n as usize * 4]
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                self.groupinfos.insert(r, groups);
                self.step()
            }
            "CRED" => {
                let (ch, c) = self.expect_struct("CRED")?;
                let st = T.st("CRED");
                let g = |n: &str| st.get(&c, n) as u32;
                let user = st.get_i(&c, "user_ref") as i32;
                let gi = st.get_i(&c, "groupinfo_ref") as i32;
                let Some(&uid) = self.users.get(&user) else {
                    return Err(ch.err(ErrorKind::ObjrefUndefined { id: user as u32 }));
                };
                let Some(groups) = self.groupinfos.get(&gi).cloned() else {
                    return Err(ch.err(ErrorKind::ObjrefUndefined { id: gi as u32 }));
                };
                if uid != g("uid") || st.get(&c, "sec_ref") != 0 || g("securebits") != 0 {
                    return Err(ch.err(ErrorKind::Invalid {
                        found: format!(
                            "user uid {uid}, cred uid {}, sec_ref {}, securebits {}",
                            g("uid"),
                            st.get_i(&c, "sec_ref"),
                            g("securebits")
                        ),
                        expected: "the user of the real uid, no LSM label, no securebits".into(),
                    }));
                }
                let creds = Creds {
                    uid: [g("uid"), g("euid"), g("suid"), g("fsuid")],
                    gid: [g("gid"), g("egid"), g("sgid"), g("fsgid")],
                    groups,
                };
                let mut x = Extras::new();
                if CAP_KEYS.iter().any(|(_, f)| st.get(&c, f) != 0) {
                    for (k, f) in CAP_KEYS {
                        x.set_u64(k, st.get(&c, f));
                    }
                    for k in CAP_ZERO_KEYS {
                        x.set_u64(k, 0);
                    }
                }
                self.creds.insert(r, (creds, x));
                self.step()
            }
            "FS" => {
                self.expect_struct("FS")?;
                let mut names = Vec::new();
                for _ in 0..2 {
                    let (nh, n) = self.expect("FILE_NAME", None)?;
                    match n[8..].split_last() {
                        Some((0, path)) => names.push(path.to_vec()),
                        _ => {
                            return Err(nh.err(ErrorKind::Invalid {
                                found: "a file name without its NUL".into(),
                                expected: "len = 8 + strlen + 1".into(),
                            }))
                        }
                    }
                }
                self.fs_ref = r;
                let cwd = names.pop().unwrap_or_default();
                let root = names.pop().unwrap_or_default();
                Ok(Some(Event::Fs(Fs {
                    cwd,
                    root,
                    umask: 0,
                })))
            }
            "SIGHAND" => {
                let n = self.konst("signal_nsig");
                let (_, b) = self.expect("SIGHAND", Some(HDR + n * 32))?;
                let e = T.st("SIGACTION");
                let acts = b[8..]
                    .chunks_exact(32)
                    .map(|x| SigAction {
                        handler: e.get(x, "_sa_handler"),
                        flags: e.get(x, "sa_flags"),
                        restorer: e.get(x, "sa_restorer"),
                        mask: e.get(x, "sa_mask"),
                    })
                    .collect();
                self.sighand_ref = r;
                Ok(Some(Event::SigActions(acts)))
            }
            "SIGNAL" if self.konst("rlimit_nlimits") == 16 => {
                let sh = self.fr.peek()?.ok_or_else(|| self.missing("SIGNAL"))?;
                let st = T.st("SIGNAL");
                let plain = sh.code == code("SIGNAL") && sh.len == st.size as u64;
                if !plain {
                    self.keep(r);
                    return Ok(Some(unknown(&h, &p[8..])));
                }
                let (_, b) = self.expect_struct("SIGNAL")?;
                let rest_zero = b[264..].iter().all(|&x| x == 0);
                if !rest_zero {
                    // itimers or a controlling tty: kept whole, as records.
                    self.keep(r);
                    self.queue.push_back(unknown(&sh, &b[8..]));
                    return Ok(Some(unknown(&h, &p[8..])));
                }
                let lims = b[8..264]
                    .chunks_exact(16)
                    .map(|x| Rlimit {
                        cur: u64::from_le_bytes(x[..8].try_into().unwrap_or([0; 8])),
                        max: u64::from_le_bytes(x[8..].try_into().unwrap_or([0; 8])),
                    })
                    .collect();
                self.signal_ref = r;
                Ok(Some(Event::Rlimits(lims)))
            }
            "FILE" => {
                self.file_obj(r)?;
                // Inside a file table a file is an fd's file: emit it now.
                if self.table_ref != 0 {
                    if let Some(o) = self.files.get_mut(&r) {
                        o.emitted = true;
                        let f = o.file.clone();
                        self.emit_file(f);
                    }
                }
                self.step()
            }
            "FILE_TABLE" => {
                let (th, t) = self.expect_struct("FILE_TABLE")?;
                let n = T.st("FILE_TABLE").get_i(&t, "fdt_nfds");
                if n < 0 {
                    return Err(th.err(ErrorKind::BadValue {
                        field: "fdt_nfds",
                        found: n as u64,
                        expected: "non-negative".into(),
                    }));
                }
                self.table_ref = r;
                self.step()
            }
            "MM" => {
                let (mh, m) = self.expect_struct("MM")?;
                let st = T.st("MM");
                let g = |n: &str| st.get(&m, n);
                let words = self.konst("at_vector_size");
                let (_, a) = self.expect("BUFFER", Some(HDR + words * 8))?;
                let mut auxv: Vec<u64> = a[8..]
                    .chunks_exact(8)
                    .map(|w| u64::from_le_bytes(w.try_into().unwrap_or([0; 8])))
                    .collect();
                if auxv.iter().all(|&w| w == 0) {
                    auxv.clear();
                } else if let Some(i) = (0..auxv.len()).step_by(2).find(|&i| auxv[i] == 0) {
                    if auxv[i..].iter().all(|&w| w == 0) {
                        auxv.truncate((i + 2).min(auxv.len()));
                    }
                }
                let exe_ref = st.get_i(&m, "exe_objref") as i32;
                let mut extras = Extras::new();
                for n in ["def_flags", "flags"] {
                    if g(n) != 0 {
                        extras.set_u64(if n == "flags" { "mm_flags" } else { n }, g(n));
                    }
                }
                let exe = if exe_ref == 0 {
                    None
                } else {
                    let Some(o) = self.files.get(&exe_ref) else {
                        return Err(mh.err(ErrorKind::ObjrefUndefined { id: exe_ref as u32 }));
                    };
                    put_file_extras(&mut extras, "exe_", &o.file);
                    Some(o.file.path.clone())
                };
                self.mm_ref = r;
                self.vdso = 0;
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
                    auxv,
                    exe,
                    personality: 0,
                    extras,
                };
                Ok(Some(Event::Mm(self.mm.clone())))
            }
            _ => {
                self.keep(r);
                Ok(Some(unknown(&h, &p[8..])))
            }
        }
    }

    fn vma(&mut self) -> Result<Event<'static>> {
        let (h, p) = self.expect_struct("VMA")?;
        let st = T.st("VMA");
        let g = |n: &str| st.get(&p, n);
        let (start, end, flags) = (g("vm_start"), g("vm_end"), g("vm_flags"));
        let mut extras = Extras::new();
        let (kind, file) = match g("vma_type") as u32 {
            L::VMA_VDSO => {
                self.vdso = start;
                (VmaKind::Vdso, None)
            }
            L::VMA_ANON => (derive::anon_kind(start, end, &self.mm), None),
            L::VMA_FILE => {
                let r = st.get_i(&p, "vma_objref") as i32;
                let Some(o) = self.files.get(&r) else {
                    return Err(h.err(ErrorKind::ObjrefUndefined { id: r as u32 }));
                };
                put_file_extras(&mut extras, "", &o.file);
                (VmaKind::File, Some(o.file.path.clone()))
            }
            t => {
                return Err(h.err(ErrorKind::BadValue {
                    field: "vma_type",
                    found: t as u64,
                    expected: "1 (vdso), 2 (anon) or 3 (file); shared memory is not supported"
                        .into(),
                }))
            }
        };
        for n in ["ino_objref", "ino_size"] {
            if g(n) != 0 {
                extras.set_u64(n, g(n));
            }
        }
        if g("vm_page_prot") != derive::default_page_prot(Arch::X86_64, flags) {
            extras.set_u64("vm_page_prot", g("vm_page_prot"));
        }
        Ok(Event::Vma(Vma {
            start,
            end,
            prot: derive::prot_of(flags),
            flags,
            pgoff: g("vm_pgoff"),
            kind,
            file,
            extras,
        }))
    }
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

/// HEADER_ARCH `has_xsave` and `xstate_size` derived from the first FPU area
/// of the image (or 0 and 512 when no thread saved one).
pub fn arch_defaults(first_fpu: Option<(FpuKind, usize)>) -> (u64, u64) {
    match first_fpu {
        Some((k, n)) => ((k == FpuKind::Xsave) as u64, n as u64),
        None => (0, 512),
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

/// A plan-less, strict v21 encoder: buffers the events, then writes them
/// (see [`crate::convert::Buffered`]).
pub fn encoder<'w, W: Write + 'w>(w: W) -> Box<dyn EventSink + 'w> {
    Box::new(crate::convert::Buffered::new(Revision::CkptV21, w))
}

mod encode;
pub use encode::Encoder;

#[allow(dead_code)]
fn _unused(_: Plan, _: BufWriter<Vec<u8>>) {}

/// Framing-layer records of a ckpt-v21 image in a slice (`ckpt-inspect records`).
pub fn open_records(b: &[u8]) -> Box<dyn RecordSource + '_> {
    Box::new(Records::new(SliceInput::new(b)))
}
