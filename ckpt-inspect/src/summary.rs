//! The summary of an image that `show` prints and `diff` compares: built by
//! [`Summariser`], an event consumer that never looks at page contents.
//!
//! The structs here are the report of `show --json` (docs/JSON.md); they are
//! ckpt-inspect's own, not the wire structs, so the JSON stays stable when
//! the format crate changes.

use crate::fmt;
use crate::source::Image;
use ckpt_format::{Event, FileKind, ReadOptions, Regs};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use std::collections::HashMap;
use std::path::Path;

/// Everything `show` reports.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    /// Revision name (`native-1`, `ckpt-v21`, `cr-v5`).
    pub revision: String,
    /// Architecture (`x86_64`, `x86_32`).
    pub arch: String,
    /// Page size in bytes.
    pub page_size: u32,
    /// Kernel of the checkpointed system.
    pub kernel: KernelInfo,
    /// Capture time, seconds since the epoch.
    pub time: u64,
    /// The same as `YYYY-MM-DD HH:MM:SS UTC`.
    pub time_utc: String,
    /// Checkpoint flags.
    pub flags: u64,
    /// Writer program and version (empty for kernel-written images).
    pub tool: String,
    /// Writer version.
    pub tool_version: String,
    /// Tasks in image order.
    pub tasks: Vec<TaskSummary>,
    /// Shared objects (files, pipes) in definition order, with who refers to them.
    pub objects: Vec<ObjectSummary>,
    /// Messages of ERROR records: the writer failed and the image is incomplete.
    pub writer_errors: Vec<String>,
    /// Records the decoder did not understand (kept as unknown events).
    pub unknown_records: u64,
    /// Fds whose file was recorded without its state (`ckpt-capture
    /// --allow-unsupported`): a restore leaves them out. "pid P fd N (kind, path)".
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub left_out: Vec<String>,
    /// Totals.
    pub totals: Totals,
    /// Would `ckpt-restore` restore it here ([`crate::check`]; text output only: it
    /// depends on this machine).
    #[serde(skip)]
    pub restorable: Option<crate::check::CheckReport>,
}

/// Kernel identification.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct KernelInfo {
    /// `uname -r`.
    pub release: String,
    /// `uname -v`.
    pub version: String,
    /// `uname -m`.
    pub machine: String,
    /// `major.minor.patch` from `LINUX_VERSION_CODE`.
    pub code: String,
}

/// Counts over the whole image.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Totals {
    /// Records that produced events (in native-1: every record).
    pub records: u64,
    /// Pages stored with contents.
    pub pages: u64,
    /// Pages elided as all-zero runs.
    pub zero_pages: u64,
    /// Size of the image in bytes.
    pub bytes: u64,
}

/// One task.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct TaskSummary {
    /// Process id.
    pub pid: i32,
    /// Thread-group id.
    pub tgid: i32,
    /// Parent pid.
    pub ppid: i32,
    /// Process group.
    pub pgid: i32,
    /// Session.
    pub sid: i32,
    /// `comm`.
    pub comm: String,
    /// Scheduler state.
    pub state: u32,
    /// Exit state (non-zero for zombies).
    pub exit_state: u32,
    /// A zombie's wait status (exit code << 8, or the signal; absent when 0).
    #[serde(skip_serializing_if = "is_zero")]
    pub exit_code: u32,
    /// Real, effective, saved, fs uid.
    pub uid: [u32; 4],
    /// Real, effective, saved, fs gid.
    pub gid: [u32; 4],
    /// Threads.
    pub threads: Vec<ThreadSummary>,
    /// Address-space summary, when the task has an mm.
    pub mm: Option<MmSummary>,
    /// VMAs in address order.
    pub vmas: Vec<VmaSummary>,
    /// The fd table.
    pub fds: Vec<FdSummary>,
    /// Current directory.
    pub cwd: Option<String>,
    /// Root directory.
    pub root: Option<String>,
    /// umask.
    pub umask: Option<u32>,
    /// Signals with a handler other than SIG_DFL (1-based numbers).
    pub handled_signals: Vec<u32>,
    /// The command line, from the captured pages of `arg_start..arg_end` (arguments
    /// separated by NUL), when the image holds them (text output only).
    #[serde(skip)]
    pub cmdline: Option<Vec<u8>>,
    /// Typed records of the task, its threads and its VMAs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<RecordSummary>,
}

/// One typed record (docs/MODEL.md "Typed records"): its owner, name and fields.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct RecordSummary {
    /// `task`, `thread TID`, `vma START` or `file ID`.
    pub owner: String,
    /// The record's name (`rseq`, `capabilities` ...).
    pub record: String,
    /// Its fields, formatted, in order.
    pub fields: Vec<[String; 2]>,
}

/// Summaries of rendered records, owned by `owner`.
pub fn record_summaries(
    owner: &str,
    r: Vec<ckpt_format::model::records::Rendered>,
) -> Vec<RecordSummary> {
    r.into_iter()
        .map(|(name, fields)| RecordSummary {
            owner: owner.to_string(),
            record: name.to_string(),
            fields: fields
                .into_iter()
                .map(|(k, v)| [k.to_string(), v])
                .collect(),
        })
        .collect()
}

/// One thread.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ThreadSummary {
    /// Thread id.
    pub tid: i32,
    /// Registers (every general-purpose register, `rip` and `rsp` included).
    pub regs: RegsReport,
    /// Blocked signals.
    pub sigmask: u64,
    /// FPU state kind and size (`xsave 832 B`), if saved.
    pub fpu: Option<String>,
}

/// Registers, serialised as an object in `user_regs_struct` order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RegsReport(pub Regs);

impl Serialize for RegsReport {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let a = self.0.to_array();
        let mut m = s.serialize_map(Some(a.len()))?;
        for (k, v) in Regs::NAMES.iter().zip(a) {
            m.serialize_entry(k, &v)?;
        }
        m.end()
    }
}

/// The mm of a task.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct MmSummary {
    /// Executable path.
    pub exe: Option<String>,
    /// Text segment.
    pub code: [u64; 2],
    /// Data segment.
    pub data: [u64; 2],
    /// Heap start and current break.
    pub brk: [u64; 2],
    /// Top of the main stack.
    pub start_stack: u64,
    /// Argument strings.
    pub args: [u64; 2],
    /// Environment strings.
    pub env: [u64; 2],
    /// Auxiliary vector entries (pairs, AT_NULL included).
    pub auxv_entries: usize,
    /// personality(2).
    pub personality: u32,
}

/// One VMA.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct VmaSummary {
    /// First address.
    pub start: u64,
    /// One past the last address.
    pub end: u64,
    /// Protection as `rwx`.
    pub prot: String,
    /// Kernel vm_flags.
    pub flags: u64,
    /// Offset into the file, in pages.
    pub pgoff: u64,
    /// Kind (`anon`, `file`, `heap`, `stack`, `vdso` ...).
    pub kind: String,
    /// Backing file.
    pub file: Option<String>,
    /// Pages stored with contents.
    pub pages: u64,
    /// All-zero pages recorded without contents.
    pub zero_pages: u64,
}

/// One fd.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct FdSummary {
    /// Descriptor number.
    pub fd: i32,
    /// Object id of the open file.
    pub file: u32,
    /// File kind (`regular`, `pipe`, `socket` ...).
    pub kind: String,
    /// Path (empty for pipes and sockets).
    pub path: String,
    /// For pipe ends: the pipe object id.
    pub pipe: Option<u32>,
    /// open(2) flags.
    pub flags: u32,
    /// File position.
    pub pos: u64,
    /// Close-on-exec.
    pub cloexec: bool,
    /// For a socket: family, type, state, addresses, queued bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket: Option<String>,
    /// The open file's typed records, owned by `fd` (for `diff`; `show` lists them
    /// with their object).
    #[serde(skip)]
    pub records: Vec<RecordSummary>,
}

/// A reference to a shared object from a task's fd (or from a pipe end).
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct Referrer {
    /// The task.
    pub pid: i32,
    /// The fd.
    pub fd: i32,
    /// For pipes: the file object (pipe end) in between.
    pub via_file: Option<u32>,
}

/// A shared object.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct ObjectSummary {
    /// Object id (objref).
    pub id: u32,
    /// `file` or `pipe`.
    pub object: String,
    /// For files: the kind.
    pub kind: Option<String>,
    /// For files: the path.
    pub path: Option<String>,
    /// For pipe ends: the pipe.
    pub pipe: Option<u32>,
    /// For pipes: bytes buffered.
    pub buffered: Option<u64>,
    /// Every fd referring to it (for a pipe: through either end).
    pub referred_by: Vec<Referrer>,
    /// Typed records of the object.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub records: Vec<RecordSummary>,
}

#[derive(Clone, Debug)]
struct FileInfo {
    kind: FileKind,
    path: String,
    flags: u32,
    pos: u64,
    pipe: Option<u32>,
    unsupported: bool,
    socket: Option<String>,
    records: Vec<RecordSummary>,
}

/// Builds a [`Summary`] from events. Feed every event with [`Summariser::event`],
/// then the source's offset with [`Summariser::record_offset`].
#[derive(Debug, Default)]
pub struct Summariser {
    s: Summary,
    files: HashMap<u32, FileInfo>,
    obj_index: HashMap<u32, usize>,
    last_offset: Option<u64>,
    in_vma: bool,
    /// The current task's argument area being filled: (start, bytes, any page seen).
    args: Option<(u64, Vec<u8>, bool)>,
}

/// Longest command line collected for `show` (longer ones are cut).
pub const MAX_CMDLINE: u64 = 64 << 10;

impl Summariser {
    /// The argument area of the task just finished becomes its `cmdline`.
    fn end_args(&mut self) {
        if let Some((_, buf, true)) = self.args.take() {
            if let Some(t) = self.s.tasks.last_mut() {
                t.cmdline = Some(buf);
            }
        }
    }

    /// An empty summariser.
    pub fn new() -> Self {
        Self::default()
    }

    /// Note the offset of the record the last event came from (records are
    /// counted by distinct offsets: a record may produce several events).
    pub fn record_offset(&mut self, offset: u64) {
        if self.last_offset != Some(offset) {
            self.s.totals.records += 1;
            self.last_offset = Some(offset);
        }
    }

    /// Account for one event.
    pub fn event(&mut self, ev: &Event<'_>) {
        let s = &mut self.s;
        match ev {
            Event::Header(h) => {
                s.revision = h.revision.name().into();
                s.arch = h.arch.name().into();
                s.page_size = h.page_size;
                s.kernel = KernelInfo {
                    release: fmt::bytes(&h.kernel.release),
                    version: fmt::bytes(&h.kernel.version),
                    machine: fmt::bytes(&h.kernel.machine),
                    code: format!("{}.{}.{}", h.kernel.major, h.kernel.minor, h.kernel.patch),
                };
                s.time = h.time;
                s.time_utc = fmt::utc(h.time);
                s.flags = h.flags;
                s.tool = h.tool.clone();
                s.tool_version = h.tool_version.clone();
            }
            Event::Task(t) => {
                self.end_args();
                let s = &mut self.s;
                s.tasks.push(TaskSummary {
                    pid: t.pid,
                    tgid: t.tgid,
                    ppid: t.ppid,
                    pgid: t.pgid,
                    sid: t.sid,
                    comm: fmt::bytes(&t.comm),
                    state: t.state,
                    exit_state: t.exit_state,
                    exit_code: t.exit_code,
                    uid: t.creds.uid,
                    gid: t.creds.gid,
                    records: record_summaries("task", t.records.rendered()),
                    ..TaskSummary::default()
                })
            }
            Event::Thread(th) => {
                if let Some(t) = s.tasks.last_mut() {
                    t.records.extend(record_summaries(
                        &format!("thread {}", th.tid),
                        th.records.rendered(),
                    ));
                    t.threads.push(ThreadSummary {
                        tid: th.tid,
                        regs: RegsReport(th.regs),
                        sigmask: th.sigmask,
                        fpu: th.fpu.as_ref().map(|f| {
                            let k = match f.kind {
                                ckpt_format::FpuKind::Xsave => "xsave",
                                ckpt_format::FpuKind::Fxsave => "fxsave",
                                ckpt_format::FpuKind::Legacy => "legacy",
                            };
                            format!("{k} {} B", f.data.len())
                        }),
                    });
                }
            }
            Event::Mm(m) => {
                if let Some(t) = s.tasks.last_mut() {
                    t.mm = Some(MmSummary {
                        exe: m.exe.as_deref().map(fmt::bytes),
                        code: [m.start_code, m.end_code],
                        data: [m.start_data, m.end_data],
                        brk: [m.start_brk, m.brk],
                        start_stack: m.start_stack,
                        args: [m.arg_start, m.arg_end],
                        env: [m.env_start, m.env_end],
                        auxv_entries: m.auxv.len() / 2,
                        personality: m.personality,
                    });
                }
                if m.arg_end > m.arg_start {
                    let len = (m.arg_end - m.arg_start).min(MAX_CMDLINE);
                    self.args = Some((m.arg_start, vec![0; len as usize], false));
                }
            }
            Event::Vma(v) => {
                self.in_vma = true;
                if let Some(t) = s.tasks.last_mut() {
                    t.records.extend(record_summaries(
                        &format!("vma {:#x}", v.start),
                        v.records.rendered(),
                    ));
                    t.vmas.push(VmaSummary {
                        start: v.start,
                        end: v.end,
                        prot: fmt::prot(v.prot),
                        flags: v.flags,
                        pgoff: v.pgoff,
                        kind: v.kind.name().into(),
                        file: v.file.as_deref().map(fmt::bytes),
                        pages: 0,
                        zero_pages: 0,
                    });
                }
            }
            Event::Pages(p) => {
                if let Some((start, buf, seen)) = &mut self.args {
                    let ps = (s.page_size as u64).max(1);
                    let end = *start + buf.len() as u64;
                    for (i, a) in p.addrs.iter().enumerate() {
                        let (lo, hi) = (a.max(*start), a.saturating_add(ps).min(end));
                        if lo >= hi {
                            continue;
                        }
                        if let Some(page) = p.page(i, ps as usize) {
                            let from = (lo - a) as usize;
                            let to = (hi - a) as usize;
                            let at = (lo - *start) as usize;
                            if let (Some(src), Some(dst)) =
                                (page.get(from..to), buf.get_mut(at..at + (to - from)))
                            {
                                dst.copy_from_slice(src);
                                *seen = true;
                            }
                        }
                    }
                }
                let n = p.addrs.len() as u64;
                s.totals.pages = s.totals.pages.saturating_add(n);
                if let Some(v) = s.tasks.last_mut().and_then(|t| t.vmas.last_mut()) {
                    v.pages = v.pages.saturating_add(n);
                }
            }
            Event::ZeroPages(z) => {
                s.totals.zero_pages = s.totals.zero_pages.saturating_add(z.count);
                if let Some(v) = s.tasks.last_mut().and_then(|t| t.vmas.last_mut()) {
                    v.zero_pages = v.zero_pages.saturating_add(z.count);
                }
            }
            // Only an increment read without its parents (a stream) shows these; from a
            // file the chain is flattened first (source.rs).
            Event::ParentPages(_) => {}
            Event::VmaEnd => self.in_vma = false,
            Event::Fs(f) => {
                if let Some(t) = s.tasks.last_mut() {
                    t.cwd = Some(fmt::bytes(&f.cwd));
                    t.root = Some(fmt::bytes(&f.root));
                    t.umask = Some(f.umask);
                }
            }
            Event::SigActions(a) => {
                if let Some(t) = s.tasks.last_mut() {
                    t.handled_signals = a
                        .iter()
                        .enumerate()
                        .filter(|(_, a)| a.handler != 0)
                        .map(|(i, _)| i as u32 + 1)
                        .collect();
                }
            }
            Event::Rlimits(_) | Event::Tail => {}
            Event::Pipe(p) => {
                self.obj_index.insert(p.id, s.objects.len());
                s.objects.push(ObjectSummary {
                    id: p.id,
                    object: "pipe".into(),
                    buffered: Some(p.data.len() as u64),
                    ..ObjectSummary::default()
                });
            }
            Event::File(f) => {
                let info = FileInfo {
                    kind: f.kind,
                    path: fmt::bytes(&f.path),
                    flags: f.flags,
                    pos: f.pos,
                    pipe: f.pipe,
                    unsupported: f.records.unsupported.is_some(),
                    socket: f.records.sock.summary(),
                    records: record_summaries("fd", f.records.rendered()),
                };
                self.obj_index.insert(f.id, s.objects.len());
                s.objects.push(ObjectSummary {
                    id: f.id,
                    object: "file".into(),
                    kind: Some(f.kind.name().into()),
                    path: Some(info.path.clone()),
                    pipe: f.pipe,
                    records: record_summaries(&format!("file {}", f.id), f.records.rendered()),
                    ..ObjectSummary::default()
                });
                self.files.insert(f.id, info);
            }
            Event::Fd(fd) => {
                let Some(t) = s.tasks.last_mut() else { return };
                let info = self.files.get(&fd.file);
                if let Some(i) = info.filter(|i| i.unsupported) {
                    s.left_out.push(format!(
                        "pid {} fd {} ({}, {})",
                        t.pid,
                        fd.fd,
                        i.kind.name(),
                        i.path
                    ));
                }
                t.fds.push(FdSummary {
                    fd: fd.fd,
                    file: fd.file,
                    kind: info.map_or("undefined", |i| i.kind.name()).into(),
                    path: info.map(|i| i.path.clone()).unwrap_or_default(),
                    pipe: info.and_then(|i| i.pipe),
                    flags: info.map_or(0, |i| i.flags),
                    pos: info.map_or(0, |i| i.pos),
                    cloexec: fd.cloexec,
                    socket: info.and_then(|i| i.socket.clone()),
                    records: info.map(|i| i.records.clone()).unwrap_or_default(),
                });
                let pid = t.pid;
                if let Some(&i) = self.obj_index.get(&fd.file) {
                    s.objects[i].referred_by.push(Referrer {
                        pid,
                        fd: fd.fd,
                        via_file: None,
                    });
                }
                if let Some(&i) = info
                    .and_then(|i| i.pipe)
                    .and_then(|p| self.obj_index.get(&p))
                {
                    s.objects[i].referred_by.push(Referrer {
                        pid,
                        fd: fd.fd,
                        via_file: Some(fd.file),
                    });
                }
            }
            Event::Error(m) => s.writer_errors.push(fmt::bytes(m)),
            Event::Unknown(_) => s.unknown_records += 1,
        }
    }

    /// The summary so far, with the image size.
    pub fn finish(mut self, bytes: u64) -> Summary {
        self.end_args();
        self.s.totals.bytes = bytes;
        self.s
    }
}

/// Decode `img` without touching page contents and summarise it. On a
/// decoding error, returns the summary of everything before it with the error.
pub fn summarise(img: &mut Image) -> (Summary, Option<ckpt_format::Error>) {
    let opts = ReadOptions {
        check_page_data: false,
    };
    let (mut src, count) = match img.events(opts) {
        Ok(x) => x,
        Err(e) => return (Summary::default(), Some(e)),
    };
    let (sm, err) = summarise_source(&mut *src);
    drop(src);
    (sm.finish(count.get()), err)
}

/// The summary of the events of `src` (and the decoding error that ended them, if
/// any); `finish` it with the image size. The caller keeps `src` (a CRIU decoder's
/// losses are read from it after this one pass).
pub fn summarise_source(
    src: &mut dyn ckpt_format::EventSource,
) -> (Summariser, Option<ckpt_format::Error>) {
    let mut sm = Summariser::new();
    // The restorability check sees the same events (no page contents but the vdso's).
    let mut check = Some(ckpt_restore::plan::Collector::for_checks());
    let err = loop {
        let off = src.offset();
        match src.next_event() {
            Ok(Some(ev)) => {
                sm.event(&ev);
                if let Some(c) = check.as_mut() {
                    if c.push(off, ev, None).is_err() {
                        // Its reason is reported by `finish`; stop feeding it.
                        let r = check
                            .take()
                            .map(|c| crate::check::report(c, Path::new("/")));
                        sm.s.restorable = r;
                    }
                }
            }
            Ok(None) => break None,
            Err(e) => break Some(e),
        }
        // The offset of the record is known once the event is released.
        sm.record_offset(src.offset());
    };
    if err.is_none() {
        if let Some(c) = check {
            sm.s.restorable = Some(crate::check::report(c, Path::new("/")));
        }
    } else {
        sm.s.restorable = None;
    }
    (sm, err)
}

fn is_zero(v: &u32) -> bool {
    *v == 0
}
