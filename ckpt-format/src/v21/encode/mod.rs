//! The ckpt-v21 encoder.
//!
//! Over 800 lines: the sink's state machine (what it holds back until the stream order
//! of Linux-CR's restart allows writing it) is one piece; the record writers it calls
//! already live beside it (`task.rs`, `memory.rs`, `files.rs`).

use super::{
    arch_defaults, code, ipc_ns_record, ipc_section_record, kept_objref, restart_block_none,
    uts_record, CAP_KEYS, CAP_ZERO_KEYS, CHUNK_PAGES, CONSTANTS, FILE_EXTRAS, HDR, IPC_SECTIONS,
    LSM_INFO, LSM_NAME, NS_OBJS, PAGE, SIGALTSTACK_KEYS, TASK_KEYS, TASK_OBJS_FIELDS,
    THREAD_ONLY_KEYS, THREAD_TASK_FIELDS,
};
use crate::error::{Error, ErrorKind, Result};
use crate::layout::derive;
use crate::layout::v21::{self as L, TABLE as T};
use crate::legacy::{LegacyRevision, LegacySink, Losses, Out, Plan, ZEROS};
use crate::model::*;
use crate::stream::EventSink;
use std::collections::{HashMap, HashSet};
use std::io::Write;

mod files;
mod memory;
mod task;

/// `S_IFMT` and the file types a v21 generic file can say through `f_mode`.
pub(crate) const S_IFMT: u32 = 0o170000;
/// `S_IFREG`.
pub(crate) const S_IFREG: u32 = 0o100000;
/// `S_IFDIR`.
pub(crate) const S_IFDIR: u32 = 0o040000;
/// `S_IFCHR`.
pub(crate) const S_IFCHR: u32 = 0o020000;
/// `S_IFIFO`.
pub(crate) const S_IFIFO: u32 = 0o010000;

/// The ckpt-v21 encoder (x86-64).
///
/// Needs a [`Plan`] (the task tree, VMA and fd counts, the first FPU area)
/// before it writes; `None` is a dry run with placeholder counts.
/// [`super::encoder`] (no plan) buffers the image and plans itself. Items the
/// revision cannot hold are refused, or dropped/defaulted and listed when `lossy`.
pub struct Encoder<W: Write> {
    out: Out<W>,
    plan: Option<Plan>,
    losses: Losses,
    consts: HashMap<&'static str, u64>,
    has_xsave: bool,
    xstate_size: u64,
    /// False in a dry run until the first FPU area shows what the plan would say.
    arch_known: bool,
    next_ref: u32,
    tree_written: bool,
    tasks: usize,
    in_task: bool,
    zombie: bool,
    pid: i32,
    comm: String,
    thread_written: bool,
    mm: Option<Mm>,
    mm_open: bool,
    /// Between a Vma and its VmaEnd: unknown and error records there stay inside the mm.
    vma_open: bool,
    mm_ref: u32,
    mm_index: usize,
    vmas: u32,
    map_count: u32,
    vdso: u64,
    table_ref: u32,
    pipes: HashMap<u32, Vec<u8>>,
    pipes_written: HashSet<u32>,
    task_objs: Option<Vec<u8>>,
    /// The current task, until its TASK record is written (at its first thread).
    pending: Option<Task>,
    cur_task: Task,
    /// Threads after the first, written as tasks of their own at the end of the task.
    more_threads: Vec<Thread>,
    /// Signal state of the first thread, for its SIGNAL_TASK.
    leader_sig: SigState,
    /// The leader's SIGNAL_TASK / SIGPENDING as Unknown records (a v21 stream
    /// decoder passes them so), written back in place of the derived ones.
    sig_override: Vec<(u32, Vec<u8>)>,
    /// The task's SIGNAL record (from its Rlimits) or the SIGNAL and shared
    /// SIGPENDING records kept from the source: written right after the
    /// leader's TASK_OBJS, where the kernel writes the signal object (it has
    /// no OBJREF of its own).
    signal_recs: Vec<(u32, Vec<u8>)>,
    /// The last event was a SIGNAL record kept from the source (a SIGPENDING
    /// after it is the shared pending set).
    after_signal: bool,
    /// The last event was an OBJREF record kept from the source announcing a
    /// signal object (images of issue 20): its records stay in place.
    after_signal_objref: bool,
    /// The last event was a SIGNAL_TASK record kept from a one-pass decode.
    after_sig_task: bool,
    /// A private SIGPENDING kept from a one-pass decode: it goes with the
    /// SIGNAL_TASK record that follows it, else stays where it was.
    held_sigpending: Option<Vec<u8>>,
    /// The interval timers of the Task event being written (taken by `task`).
    next_itimers: Option<Option<Itimers>>,
    /// The current task's interval timers, for its SIGNAL record.
    itimers: Option<Itimers>,
    creds_done: bool,
    cred_ref: u32,
    userns_ref: u32,
    users: HashMap<u32, u32>,
    cred_cache: HashMap<Vec<u8>, u32>,
    fs_ref: u32,
    sighand_ref: u32,
    signal_ref: u32,
    zero_pages: u64,
    /// A Pipe event whose first end has not come yet (it must come next).
    pipe_wait: Option<u32>,
    /// The current task has had an event other than Thread and Pipe.
    task_other: bool,
    /// The current task's TASK_OBJS came as a record kept from the source.
    objs_kept: bool,
    /// Objrefs of OBJREF records kept from the source, with their object type.
    kept_refs: HashMap<u32, u32>,
    /// Object ids of the model's File and Pipe events so far.
    model_ids: HashSet<u32>,
    /// Tasks written with threads of their own (pid, comm).
    threaded: Vec<(i32, String)>,
    /// Parent pids of the tasks so far.
    parents: HashSet<i32>,
    finished: bool,
    checker: crate::validate::Checker,
    /// The header is written; the container section follows it unless the
    /// next event is a CONTAINER record kept from the source.
    container_due: bool,
    /// The header's kernel (the UTS_NS strings).
    kernel: Kernel,
    /// The NS object ckpt writes (once, with the first task that needs it).
    ns_ref: u32,
    /// The current task's TASK_NS is still to be written (after its
    /// TASK_CREDS, unless namespace records kept from the source come).
    ns_due: bool,
    /// The NS objref of the current task (its threads repeat it).
    task_ns: u32,
    /// The task's own thread was written from the plan, before its late Thread event.
    early_thread: bool,
    /// Items of that early write, listed at the late Thread event (where a
    /// dry run, which has no plan, finds them).
    early_items: Vec<String>,
    /// The eventfd of the File event being written (taken by `file`).
    next_eventfd: Option<Eventfd>,
    /// The eventpoll of the File event being written (taken by `file`).
    next_eventpoll: Option<Eventpoll>,
    /// The task's epoll files and their targets, for EPOLL_ITEMS after its
    /// file table.
    epolls: Vec<(u32, Vec<EpollTarget>)>,
    /// The task's fds and the files they name.
    fd_files: HashMap<i32, u32>,
    /// Index of the next ckpt-v21 `Unknown` event.
    unknown_idx: usize,
    /// Indices of kept records not to write (see `super::kept`).
    skip_unknown: std::collections::BTreeSet<usize>,
}

impl<W: Write> Encoder<W> {
    /// An encoder writing to `w`.
    pub fn new(w: W, plan: Option<Plan>, lossy: bool) -> Self {
        Encoder {
            out: Out::new(w),
            plan,
            losses: Losses::new(lossy),
            consts: CONSTANTS.iter().copied().collect(),
            has_xsave: false,
            xstate_size: 512,
            arch_known: true,
            next_ref: 0,
            tree_written: false,
            tasks: 0,
            in_task: false,
            zombie: false,
            pid: 0,
            comm: String::new(),
            thread_written: false,
            mm: None,
            mm_open: false,
            vma_open: false,
            mm_ref: 0,
            mm_index: 0,
            vmas: 0,
            map_count: 0,
            vdso: 0,
            table_ref: 0,
            pipes: HashMap::new(),
            pipes_written: HashSet::new(),
            task_objs: None,
            pending: None,
            cur_task: Task::default(),
            more_threads: Vec::new(),
            leader_sig: SigState::default(),
            sig_override: Vec::new(),
            signal_recs: Vec::new(),
            after_signal: false,
            after_signal_objref: false,
            held_sigpending: None,
            after_sig_task: false,
            next_itimers: None,
            itimers: None,
            creds_done: false,
            cred_ref: 0,
            userns_ref: 0,
            users: HashMap::new(),
            cred_cache: HashMap::new(),
            fs_ref: 0,
            sighand_ref: 0,
            signal_ref: 0,
            zero_pages: 0,
            pipe_wait: None,
            task_other: false,
            objs_kept: false,
            kept_refs: HashMap::new(),
            model_ids: HashSet::new(),
            threaded: Vec::new(),
            parents: HashSet::new(),
            finished: false,
            checker: crate::validate::Checker::new(),
            container_due: false,
            kernel: Kernel::default(),
            ns_ref: 0,
            ns_due: false,
            task_ns: 0,
            early_thread: false,
            early_items: Vec::new(),
            next_eventfd: None,
            next_eventpoll: None,
            epolls: Vec::new(),
            fd_files: HashMap::new(),
            unknown_idx: 0,
            skip_unknown: Default::default(),
        }
    }

    /// Items dropped or defaulted so far.
    pub fn items(&self) -> &[String] {
        &self.losses.items
    }

    /// Lossless rewrites worth telling.
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

    /// An objref for an object the model does not number (mm, file table,
    /// mapped files): the lowest id the model does not use (its files and
    /// pipes, and objects kept as records under their own numbers).
    fn internal(&mut self) -> u32 {
        loop {
            self.next_ref += 1;
            let used = self.plan.as_ref().is_some_and(|p| {
                p.ids.contains(&self.next_ref) || p.kept_refs.contains(&self.next_ref)
            });
            if !used {
                return self.next_ref;
            }
        }
    }

    /// A bare record: header + payload.
    fn raw(&mut self, code: u32, payload: &[u8]) -> Result<()> {
        let len = HDR + payload.len() as u64;
        if len > u32::MAX as u64 {
            return Err(Error::new(
                self.out.pos,
                ErrorKind::TooLarge {
                    found: len,
                    limit: u32::MAX as u64,
                },
            ));
        }
        let mut h = [0u8; 8];
        h[..4].copy_from_slice(&code.to_le_bytes());
        h[4..].copy_from_slice(&(len as u32).to_le_bytes());
        self.out.put(&h)?;
        self.out.put(payload)
    }

    /// A struct record: `buf` holds the whole struct, header fields included.
    fn rec(&mut self, name: &str, mut buf: Vec<u8>) -> Result<()> {
        let st = T.st(name);
        st.put(&mut buf, "h.type", code(name) as u64);
        let len = buf.len() as u64;
        st.put(&mut buf, "h.len", len);
        self.out.put(&buf)
    }

    fn objref(&mut self, obj: &str, r: u32) -> Result<()> {
        let st = T.st("OBJREF");
        let mut b = st.zeroed();
        st.put(&mut b, "objtype", T.obj_code(obj) as u64);
        st.put(&mut b, "objref", r as u64);
        self.rec("OBJREF", b)
    }

    fn header(&mut self, h: &Header) -> Result<()> {
        if h.arch != Arch::X86_64 {
            self.item(format!(
                "header: arch {} (this ckpt-v21 codec is x86-64)",
                h.arch
            ))?;
        }
        if h.page_size != PAGE as u32 {
            self.item(format!("header: page size {}", h.page_size))?;
        }
        if !h.tool.is_empty() || !h.tool_version.is_empty() {
            self.item(format!("header: tool `{} {}`", h.tool, h.tool_version))?;
        }
        let mut placed: Vec<&str> = CONSTANTS.iter().map(|(n, _)| *n).collect();
        placed.extend([
            "checkpoint_version",
            "has_fxsr",
            "has_xsave",
            "xstate_size",
            "has_xsave_raw",
        ]);
        self.extras("header", &h.extras, &placed)?;
        for (n, _) in CONSTANTS {
            if let Some(v) = h.extras.u64(n) {
                self.consts.insert(n, v);
            }
        }
        let st = T.st("HEADER");
        let mut b = st.zeroed();
        st.put(&mut b, "magic", crate::detect::CHECKPOINT_MAGIC_HEAD);
        st.put(&mut b, "arch_id", L::ARCH_X86_64 as u64);
        st.put(&mut b, "major", h.kernel.major as u64);
        st.put(&mut b, "minor", h.kernel.minor as u64);
        st.put(&mut b, "patch", h.kernel.patch as u64);
        let rev = h
            .extras
            .u64("checkpoint_version")
            .unwrap_or(L::CHECKPOINT_VERSION as u64);
        st.put(&mut b, "rev", rev);
        for (n, _) in CONSTANTS {
            st.put(&mut b, n, self.consts[n]);
        }
        st.put(&mut b, "time", h.time);
        st.put(&mut b, "uflags", h.flags);
        self.rec("HEADER", b)?;
        for (n, v) in [
            ("uts_release_len", &h.kernel.release),
            ("uts_version_len", &h.kernel.version),
            ("uts_machine_len", &h.kernel.machine),
        ] {
            let len = self.consts[n] as usize;
            if v.len() > len {
                self.item(format!(
                    "header: uts string of {} bytes cut to {len}",
                    v.len()
                ))?;
            }
            let mut s = vec![0u8; len];
            let k = v.len().min(len);
            s[..k].copy_from_slice(&v[..k]);
            self.raw(code("BUFFER"), &s)?;
        }
        let first = self.plan.as_ref().and_then(|p| p.first_fpu);
        let (dx, ds) = arch_defaults(first);
        let has_xsave = h
            .extras
            .u64("has_xsave_raw")
            .or(h.extras.u64("has_xsave"))
            .unwrap_or(dx);
        self.has_xsave = has_xsave != 0;
        self.xstate_size = h.extras.u64("xstate_size").unwrap_or(ds);
        self.arch_known = self.plan.is_some() || h.extras.u64("xstate_size").is_some();
        let st = T.st("HEADER_ARCH");
        let mut a = st.zeroed();
        st.put(&mut a, "has_fxsr", h.extras.u64("has_fxsr").unwrap_or(1));
        st.put(&mut a, "has_xsave", has_xsave);
        st.put(&mut a, "xstate_size", self.xstate_size);
        self.rec("HEADER_ARCH", a)?;
        self.kernel = h.kernel.clone();
        self.container_due = true;
        Ok(())
    }

    /// The container section a kernel without a security module writes:
    /// CONTAINER, the LSM name BUFFER, LSM_INFO.
    fn container(&mut self) -> Result<()> {
        self.rec("CONTAINER", T.st("CONTAINER").zeroed())?;
        let mut name = vec![0u8; L::LSM_NAME_MAX + 1];
        name[..LSM_NAME.len()].copy_from_slice(LSM_NAME);
        self.raw(code("BUFFER"), &name)?;
        self.raw(code("LSM_INFO"), LSM_INFO)
    }

    /// The task's TASK_NS, naming the NS object ckpt writes (UTS_NS, IPC_NS
    /// with its three empty IPC sections, NS; once per image).
    fn default_ns(&mut self) -> Result<()> {
        self.ns_due = false;
        if self.ns_ref == 0 {
            let uts = self.internal();
            self.objref("UTS_NS", uts)?;
            let b = uts_record(&self.kernel);
            self.out.put(&b)?;
            let ipc = self.internal();
            self.objref("IPC_NS", ipc)?;
            self.out.put(&ipc_ns_record())?;
            for k in IPC_SECTIONS {
                self.out.put(&ipc_section_record(k))?;
            }
            let ns = self.internal();
            self.objref("NS", ns)?;
            let st = T.st("NS");
            let mut b = st.zeroed();
            st.put(&mut b, "uts_objref", uts as u64);
            st.put(&mut b, "ipc_objref", ipc as u64);
            self.rec("NS", b)?;
            self.ns_ref = ns;
        }
        self.task_ns = self.ns_ref;
        self.task_ns_record()
    }

    fn task_ns_record(&mut self) -> Result<()> {
        let st = T.st("TASK_NS");
        let mut b = st.zeroed();
        st.put(&mut b, "ns_objref", self.task_ns as u64);
        self.rec("TASK_NS", b)
    }

    /// A record kept from the source that belongs to a task's namespaces
    /// (written where it comes, before the task's TASK_NS).
    fn ns_record(u: &Unknown<'_>) -> bool {
        if u.revision != Revision::CkptV21 {
            return false;
        }
        if let Some((_, ty)) = kept_objref(u) {
            return NS_OBJS.contains(&T.obj_name(ty));
        }
        [
            "NS",
            "UTS_NS",
            "IPC_NS",
            "IPC",
            "IPC_SHM",
            "IPC_MSG",
            "IPC_MSG_MSG",
            "IPC_SEM",
            "MNT_NS",
            "NET_NS",
            "NETDEV",
            "NETDEV_ADDR",
            "BUFFER",
        ]
        .contains(&T.name(u.type_code))
    }

    fn tree(&mut self) -> Result<()> {
        self.tree_written = true;
        let mut tasks = Vec::new();
        if let Some(p) = &self.plan {
            for (i, t) in p.tasks.iter().enumerate() {
                tasks.push(t.clone());
                // Threads other than the task's own are tasks of their own,
                // right after their leader (docs/CONVERT.md "Threads in
                // ckpt-v21"); a zombie's threads are dropped.
                let mut own = false;
                let threads = match p.threads.get(i) {
                    Some(v) if t.exit_state == 0 => &v[..],
                    _ => &[][..],
                };
                for &tid in threads {
                    if tid == t.pid && !own {
                        own = true;
                        continue;
                    }
                    tasks.push(Task {
                        pid: tid,
                        ..t.clone()
                    });
                }
            }
        }
        let st = T.st("TREE");
        let mut b = st.zeroed();
        st.put(&mut b, "nr_tasks", tasks.len() as u64);
        self.rec("TREE", b)?;
        let e = T.st("PIDS");
        let mut buf = Vec::with_capacity(tasks.len() * e.size);
        for t in &tasks {
            let mut x = e.zeroed();
            for (n, v) in [
                ("vpid", t.pid),
                ("vppid", t.ppid),
                ("vtgid", t.tgid),
                ("vpgid", t.pgid),
                ("vsid", t.sid),
            ] {
                e.put(&mut x, n, v as u32 as u64);
            }
            buf.extend_from_slice(&x);
        }
        self.raw(code("BUFFER"), &buf)
    }
}

impl<W: Write> EventSink for Encoder<W> {
    fn event(&mut self, ev: &Event<'_>) -> Result<()> {
        if let Event::Unknown(u) = ev {
            if u.revision == Revision::CkptV21 {
                self.unknown_idx += 1;
                if self.skip_unknown.contains(&(self.unknown_idx - 1)) {
                    return self.item(super::kept::not_given_back(u));
                }
            }
        }
        // The interval timers go into the SIGNAL record as they are (the keys
        // below only count them).
        if let Event::Task(t) = ev {
            self.next_itimers = Some(t.records.itimers);
        }
        // Typed records v21 has a record for are taken out first (`file`
        // writes them); the others become the keys this revision's tables
        // place (or report lost).
        let own;
        let ev = match ev {
            Event::File(f) if f.records.eventfd.is_some() || f.records.eventpoll.is_some() => {
                let mut g = f.clone();
                self.next_eventfd = g.records.eventfd.take();
                self.next_eventpoll = g.records.eventpoll.take();
                own = Event::File(g);
                &own
            }
            _ => ev,
        };
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
        self.order(ev)?;
        if self.container_due && !matches!(ev, Event::Header(_)) {
            self.container_due = false;
            let kept = matches!(ev, Event::Unknown(u)
                if u.revision == Revision::CkptV21 && u.type_code == code("CONTAINER"));
            if !kept {
                self.container()?;
            }
        }
        if let Some(p) = self.held_sigpending.take() {
            let with_task = matches!(ev, Event::Unknown(u)
                if u.revision == Revision::CkptV21 && u.type_code == code("SIGNAL_TASK"));
            if with_task {
                self.sig_override.push((code("SIGPENDING"), p));
            } else {
                self.raw(code("SIGPENDING"), &p)?;
            }
        }
        let after_signal = std::mem::take(&mut self.after_signal);
        let after_sig_task = std::mem::take(&mut self.after_sig_task);
        let after_signal_objref = std::mem::take(&mut self.after_signal_objref);
        let mm_part = matches!(
            ev,
            Event::Vma(_) | Event::Pages(_) | Event::ZeroPages(_) | Event::VmaEnd
        ) || (self.vma_open && matches!(ev, Event::Unknown(_) | Event::Error(_)));
        match ev {
            Event::Vma(_) => self.vma_open = true,
            Event::VmaEnd => self.vma_open = false,
            _ => {}
        }
        if self.in_task && self.zombie {
            let state = match ev {
                Event::Mm(_) | Event::Vma(_) => Some("memory"),
                Event::Fd(_) => Some("open files"),
                Event::Fs(_) | Event::SigActions(_) | Event::Rlimits(_) => {
                    Some("fs or signal state")
                }
                Event::Unknown(u)
                    if u.revision == Revision::CkptV21 && u.type_code == code("TASK_OBJS") =>
                {
                    Some("task objects")
                }
                _ => None,
            };
            if matches!(ev, Event::Pages(_) | Event::ZeroPages(_) | Event::VmaEnd) {
                // Dropped with their VMA (listed as the zombie's memory).
                return Ok(());
            }
            if let Event::Mm(_) = ev {
                // Planned like any mm: the next task's counts follow it.
                self.mm_index += 1;
            }
            if let Some(what) = state {
                // ckpt-v21 writes a zombie as TASK + comm only.
                return self.item(format!(
                    "zombie task {} with {what} (ckpt-v21 stores a zombie as its task record and comm only)",
                    self.pid
                ));
            }
        }
        // An mm stays open until its planned VMAs are written: a v21 decoder
        // reads other records between them in place (the model may hold, say,
        // an fd between an mm and its VMAs), so they are written there.
        let end_of_task = matches!(ev, Event::Task(_) | Event::Tail);
        let vmas_due = self.plan.is_some() && self.vmas < self.map_count;
        if self.mm_open && !mm_part && (end_of_task || !vmas_due) {
            if let Event::Unknown(u) = ev {
                if u.revision == Revision::CkptV21 && u.type_code == code("MM_CONTEXT") {
                    return self.close_mm(Some(u));
                }
            }
            self.close_mm(None)?;
        }
        if !matches!(ev, Event::Thread(_) | Event::Task(_) | Event::Pipe(_)) {
            self.before_objects()?;
        }
        if self.ns_due && !matches!(ev, Event::Thread(_) | Event::Task(_) | Event::Tail) {
            match ev {
                Event::Unknown(u)
                    if u.revision == Revision::CkptV21 && u.type_code == code("TASK_NS") =>
                {
                    self.ns_due = false;
                    let full = [&[0u8; 8][..], &u.payload[..]].concat();
                    self.task_ns = T.st("TASK_NS").get(&full, "ns_objref") as u32;
                    return self.raw(u.type_code, &u.payload);
                }
                Event::Unknown(u) if Self::ns_record(u) => {}
                _ => self.default_ns()?,
            }
        }
        match ev {
            Event::ParentPages(z) => self.item(format!(
                "{} pages at {:#x} kept in the parent image (flatten the chain first)",
                z.count, z.start
            )),
            Event::Header(h) => self.header(h),
            Event::Task(t) => self.task(t),
            Event::Thread(t) => self.thread(t),
            Event::Mm(m) => self.mm(m),
            Event::Vma(v) => self.vma(v),
            Event::Pages(c) => self.pages(c),
            Event::ZeroPages(z) => self.zero_pages(z),
            Event::VmaEnd => {
                let st = T.st("PGARR");
                let b = st.zeroed();
                self.rec("PGARR", b)
            }
            Event::Fs(f) => self.fs(f),
            Event::SigActions(a) => self.sigactions(a),
            Event::Rlimits(r) => self.rlimits(r),
            Event::Pipe(p) => {
                self.model_id(p.id)?;
                self.pipes.insert(p.id, p.data.to_vec());
                self.pipe_wait = Some(p.id);
                Ok(())
            }
            Event::File(f) => {
                self.model_id(f.id)?;
                self.file(f)
            }
            Event::Fd(fd) => {
                self.table()?;
                self.fd_files.insert(fd.fd, fd.file);
                let st = T.st("FILE_DESC");
                let mut b = st.zeroed();
                st.put(&mut b, "fd_objref", fd.file as u64);
                st.put(&mut b, "fd_descriptor", fd.fd as u32 as u64);
                st.put(&mut b, "fd_close_on_exec", fd.cloexec as u64);
                self.rec("FILE_DESC", b)
            }
            Event::Error(m) => {
                self.raw(code("ERROR"), &[])?;
                let mut s = Vec::with_capacity(m.len() + 2);
                s.push(0);
                s.extend_from_slice(m);
                s.push(0);
                self.raw(code("STRING"), &s)
            }
            Event::Unknown(u) => {
                if u.revision != Revision::CkptV21 {
                    return self.item(format!(
                        "unknown {} record type {}",
                        u.revision, u.type_code
                    ));
                }
                let live = self.in_task && !self.zombie;
                if u.type_code == code("SIGNAL_TASK") && live {
                    // What a one-pass (stream) decoder leaves of the leader's
                    // signal mask; the convert paths read v21 twice and give
                    // it back as the Thread's sigmask instead.
                    self.item(
                        "SIGNAL_TASK record kept from a one-pass decode (read back as the leader thread's signal mask, not as a record)"
                            .into(),
                    )?;
                    self.sig_override.push((u.type_code, u.payload.to_vec()));
                    self.after_sig_task = true;
                    return Ok(());
                }
                if u.type_code == code("SIGPENDING") && live && after_signal {
                    self.signal_recs.push((u.type_code, u.payload.to_vec()));
                    return Ok(());
                }
                if u.type_code == code("SIGPENDING") && live && after_sig_task {
                    // Images of issue 20: the private set after SIGNAL_TASK.
                    self.sig_override.push((u.type_code, u.payload.to_vec()));
                    return Ok(());
                }
                if u.type_code == code("SIGPENDING") && live {
                    // The kernel's order: the private set before SIGNAL_TASK.
                    self.held_sigpending = Some(u.payload.to_vec());
                    return Ok(());
                }
                if u.type_code == code("SIGNAL")
                    && live
                    && self.signal_ref == 0
                    && !after_signal_objref
                {
                    // A signal object kept as records (itimers, a tty, queued
                    // signals): written after TASK_OBJS, named by it.
                    self.signal_ref = self.internal();
                    self.signal_recs.push((u.type_code, u.payload.to_vec()));
                    self.after_signal = true;
                    return Ok(());
                }
                // A zombie's task section is never closed with our own
                // TASK_OBJS, so its records stay where they were.
                if u.type_code == code("TASK_OBJS") && live {
                    let mut b = vec![0u8; 8];
                    b.extend_from_slice(&u.payload);
                    self.task_objs = Some(b);
                    self.objs_kept = true;
                    return Ok(());
                }
                if let Some((r, ty)) = kept_objref(u) {
                    let r = r as u32;
                    if self.model_ids.contains(&r) || self.kept_refs.contains_key(&r) {
                        self.item(format!(
                            "OBJREF record kept from the source defines objref {r} again (an objref names one object)"
                        ))?;
                    }
                    self.kept_refs.insert(r, ty);
                    self.after_signal_objref = ty == T.obj_code("SIGNAL");
                }
                self.raw(u.type_code, &u.payload)
            }
            Event::Tail => {
                self.end_task()?;
                // Pipes of no task (before the first one).
                self.lost_pipes()?;
                // Known once every task has been seen (the same in a dry run
                // and with a plan, so that both list it in the same place).
                for (pid, comm) in std::mem::take(&mut self.threaded) {
                    if self.parents.contains(&pid) {
                        let what = format!(
                            "task {pid} ({comm}): threads together with child tasks (a v21 kernel lists the children before the next thread; ckpt writes threads right after their leader)"
                        );
                        self.losses.item(self.out.pos, None, what)?;
                    }
                }
                if !self.tree_written {
                    self.tree()?;
                }
                if self.zero_pages > 0 {
                    self.losses.notes.push(format!(
                        "{} all-zero pages written out as page contents (ckpt-v21 has no zero runs)",
                        self.zero_pages
                    ));
                }
                let st = T.st("TAIL");
                let mut b = st.zeroed();
                st.put(&mut b, "magic", crate::detect::CHECKPOINT_MAGIC_TAIL);
                self.rec("TAIL", b)?;
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

/// A thread's signal state for its SIGPENDING and SIGNAL_TASK: tid, blocked
/// mask, the `sigpending` key, its queued siginfo (`siginfo_pending`).
#[derive(Clone, Debug, Default)]
pub(super) struct SigState {
    tid: i32,
    mask: u64,
    pending: Option<u64>,
    queue: Vec<u8>,
}

impl SigState {
    fn of(t: &Thread) -> Self {
        SigState {
            tid: t.tid,
            mask: t.sigmask,
            pending: t.extras.u64("sigpending"),
            queue: t
                .extras
                .bytes("siginfo_pending")
                .map(|b| b.to_vec())
                .unwrap_or_default(),
        }
    }
}

/// This module's revision, for messages.
const REV: Revision = Revision::CkptV21;

/// A plan-less, strict v21 encoder: buffers the events, then writes them
/// (see [`crate::legacy::Buffered`]).
pub fn encoder<'w, W: Write + 'w>(w: W) -> Box<dyn EventSink + 'w> {
    Box::new(crate::legacy::Buffered::<W, Codec>::new(w))
}

/// The ckpt-v21 revision as a [`LegacyRevision`]: makes its [`Encoder`]s.
pub struct Codec;

impl LegacyRevision for Codec {
    const REVISION: Revision = Revision::CkptV21;
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
    fn skip_unknowns(&mut self, indices: std::collections::BTreeSet<usize>) {
        self.skip_unknown = indices;
    }
}
