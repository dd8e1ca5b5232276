//! The restore plan: every event of an image collected and checked before anything is created.
//!
//! (Over 800 lines: the collector and the per-event checks it makes are one pass over the
//! image and share its state; the checks are the part to move out when it grows.)
//!
//! [`Plan::collect`] is the consumer of the image model: it drains any
//! [`EventSource`] (any revision, any backend) into a [`Plan`]. Page contents are
//! not copied when the source lends them from `base` (the mapped image): they are
//! kept as ranges of `base` ([`PageData::Mapped`]).

use ckpt_format::{
    Arch, Event, EventSource, Fd, File, FileKind, Fs, Header, Mm, Rlimit, SigAction, Task, Thread,
    Vma, VmaKind,
};
use std::collections::BTreeMap;

/// x86-64 user address space end (47-bit).
pub const TASK_SIZE: u64 = 0x7fff_ffff_f000;
/// The x86-64 `[vsyscall]` page: fixed, provided by the kernel.
pub const VSYSCALL: u64 = 0xffff_ffff_ff60_0000;
/// Page size the restorer supports.
pub const PAGE: u64 = 4096;
/// Supplementary groups the restorer passes: one argument page of `u32` (1024).
pub const MAX_GROUPS: usize = PAGE as usize / 4;

/// Where the contents of a run of pages are.
#[derive(Clone, Debug)]
pub enum PageData {
    /// `len` bytes at `off` in the mapped image.
    Mapped {
        /// Offset in the image.
        off: usize,
        /// Length in bytes.
        len: usize,
    },
    /// Copied out of a decoder's buffer.
    Owned(Vec<u8>),
}

/// Pages of one `Pages` event.
#[derive(Clone, Debug)]
pub struct PagesPlan {
    /// `(start, count)` runs, in data order.
    pub runs: Vec<(u64, u64)>,
    /// Contents, `PAGE` bytes per page.
    pub data: PageData,
}

/// One VMA with its pages.
#[derive(Clone, Debug)]
pub struct VmaPlan {
    /// The VMA as captured.
    pub vma: Vma,
    /// Page contents.
    pub pages: Vec<PagesPlan>,
    /// All-zero page runs `(start, count)`.
    pub zeros: Vec<(u64, u64)>,
}

/// One task (process) with everything that belongs to it.
#[derive(Clone, Debug, Default)]
pub struct TaskPlan {
    /// Identity, credentials.
    pub task: Task,
    /// Threads; the one whose tid is the pid is the leader.
    pub threads: Vec<Thread>,
    /// Address-space fields.
    pub mm: Option<Mm>,
    /// VMAs in address order.
    pub vmas: Vec<VmaPlan>,
    /// cwd/root/umask.
    pub fs: Option<Fs>,
    /// Signal dispositions 1..=N.
    pub sigactions: Vec<SigAction>,
    /// Resource limits.
    pub rlimits: Vec<Rlimit>,
    /// The fd table.
    pub fds: Vec<Fd>,
}

/// Everything needed to restore an image.
#[derive(Clone, Debug)]
pub struct Plan {
    /// The image header.
    pub header: Header,
    /// Tasks in image order (parents before children).
    pub tasks: Vec<TaskPlan>,
    /// File objects by id.
    pub files: BTreeMap<u32, File>,
    /// Pipe objects by id, with their buffered bytes.
    pub pipes: BTreeMap<u32, Vec<u8>>,
    /// What the image holds but this restore leaves out, one line each ("pid 7 fd 5
    /// (socket, socket:[123])"): objects `ckpt-capture --allow-unsupported` recorded
    /// without their state. Their fds are not in the tasks' tables.
    pub left_out: Vec<String>,
    /// Collected by [`Collector::for_checks`]: page contents (but the vdso's) are not
    /// kept, so the plan serves checks only and is refused by the restorer.
    pub pages_elided: bool,
}

/// A reason the image cannot be restored, found before anything is created.
#[derive(Debug)]
pub struct PlanError(pub String);

impl std::fmt::Display for PlanError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn err<T>(s: impl Into<String>) -> Result<T, PlanError> {
    Err(PlanError(s.into()))
}

/// Consumes the events of an image one by one (an [`ckpt_format::EventSink`] too, so a
/// producer can feed it while it writes the image) and makes a [`Plan`] of them.
pub struct Collector {
    header: Option<Header>,
    tasks: Vec<TaskPlan>,
    files: BTreeMap<u32, File>,
    pipes: BTreeMap<u32, Vec<u8>>,
    tail: bool,
    in_vma: bool,
    keep_pages: bool,
    failed: Option<String>,
    events: u64,
    /// Page contents written here instead of kept in memory ([`Collector::spooling`]),
    /// with the bytes written so far.
    spool: Option<(std::fs::File, u64)>,
    /// The first error writing the spool.
    spool_err: Option<std::io::Error>,
}

impl Collector {
    /// A collector that keeps page contents (to restore from).
    pub fn new() -> Collector {
        Collector {
            header: None,
            tasks: Vec::new(),
            files: BTreeMap::new(),
            pipes: BTreeMap::new(),
            tail: false,
            in_vma: false,
            keep_pages: true,
            failed: None,
            events: 0,
            spool: None,
            spool_err: None,
        }
    }

    /// A collector for a stream (`ckpt-restore -`): page contents not lent from a mapped
    /// image are appended to `spool` (an unlinked temporary file) and recorded as
    /// [`PageData::Mapped`] ranges of it, so memory stays bounded by the largest record
    /// whatever the image's size; map the spool and pass it as the restore's `image`.
    pub fn spooling(spool: std::fs::File) -> Collector {
        Collector {
            spool: Some((spool, 0)),
            ..Collector::new()
        }
    }

    /// The error that stopped writing the spool, if any (then [`Collector::push`] has
    /// failed with a message naming it).
    pub fn take_spool_error(&mut self) -> Option<std::io::Error> {
        self.spool_err.take()
    }

    /// A collector for checks only: page contents are dropped except the vdso's (which
    /// the compatibility check compares with this kernel's); memory stays small however
    /// large the image. Its plan cannot be restored ([`Plan::pages_elided`]).
    pub fn for_checks() -> Collector {
        Collector {
            keep_pages: false,
            ..Collector::new()
        }
    }

    /// Take one event. `off` is its byte offset (for messages), `base` the mapped image
    /// the event may borrow page contents from.
    pub fn push(&mut self, off: u64, ev: Event<'_>, base: Option<&[u8]>) -> Result<(), PlanError> {
        if let Some(f) = &self.failed {
            return Err(PlanError(f.clone()));
        }
        let r = self.push_inner(off, ev, base);
        if let Err(e) = &r {
            self.failed = Some(e.0.clone());
        }
        r
    }

    fn push_inner(
        &mut self,
        off: u64,
        ev: Event<'_>,
        base: Option<&[u8]>,
    ) -> Result<(), PlanError> {
        self.events += 1;
        if self.tail {
            return err("broken image: events after the tail");
        }
        let tasks = &mut self.tasks;
        let need_task = |tasks: &mut Vec<TaskPlan>, what: &str| -> Result<(), PlanError> {
            if tasks.is_empty() {
                return err(format!(
                    "broken image: {what} at offset {off} before any task"
                ));
            }
            Ok(())
        };
        match ev {
            Event::Header(h) => {
                if self.header.is_some() {
                    return err("broken image: second header");
                }
                self.header = Some(h);
            }
            Event::Task(t) => {
                if self.in_vma {
                    return err("broken image: task inside a VMA");
                }
                tasks.push(TaskPlan {
                    task: t,
                    ..Default::default()
                })
            }
            Event::Thread(t) => {
                need_task(tasks, "thread")?;
                tasks.last_mut().unwrap().threads.push(t);
            }
            Event::Mm(m) => {
                need_task(tasks, "mm")?;
                tasks.last_mut().unwrap().mm = Some(m);
            }
            Event::Vma(v) => {
                need_task(tasks, "vma")?;
                if self.in_vma {
                    return err("broken image: VMA inside a VMA");
                }
                self.in_vma = true;
                tasks.last_mut().unwrap().vmas.push(VmaPlan {
                    vma: v,
                    pages: Vec::new(),
                    zeros: Vec::new(),
                });
            }
            Event::Pages(p) => {
                let Some(v) = tasks.last_mut().and_then(|t| t.vmas.last_mut()) else {
                    return err("broken image: pages outside a VMA");
                };
                if !self.in_vma {
                    return err("broken image: pages outside a VMA");
                }
                let runs: Vec<(u64, u64)> = if p.addrs.is_runs() {
                    p.addrs.runs().collect()
                } else {
                    p.addrs.to_runs(PAGE as u32).runs().collect()
                };
                let n: u64 = runs.iter().map(|r| r.1).sum();
                if (p.data.len() as u64) != n.saturating_mul(PAGE) {
                    return err(format!(
                        "broken image: pages event at offset {off}: {} bytes for {n} pages",
                        p.data.len()
                    ));
                }
                let data = match (&p.data, base) {
                    _ if !self.keep_pages && v.vma.kind != VmaKind::Vdso => {
                        PageData::Owned(Vec::new())
                    }
                    (std::borrow::Cow::Borrowed(d), Some(b))
                        if (d.as_ptr() as usize) >= (b.as_ptr() as usize)
                            && (d.as_ptr() as usize + d.len())
                                <= (b.as_ptr() as usize + b.len()) =>
                    {
                        PageData::Mapped {
                            off: d.as_ptr() as usize - b.as_ptr() as usize,
                            len: d.len(),
                        }
                    }
                    _ => match &mut self.spool {
                        Some((f, at)) => {
                            use std::io::Write;
                            if let Err(e) = f.write_all(&p.data) {
                                let m = format!("spooling the page contents of the stream: {e}");
                                self.spool_err = Some(e);
                                return err(m);
                            }
                            let off = *at as usize;
                            *at += p.data.len() as u64;
                            PageData::Mapped {
                                off,
                                len: p.data.len(),
                            }
                        }
                        None => PageData::Owned(p.data.to_vec()),
                    },
                };
                v.pages.push(PagesPlan { runs, data });
            }
            // A check-only plan (capture's restorability check) does not need contents:
            // the pages exist, in the parent.
            Event::ParentPages(_) if !self.keep_pages => {
                if tasks.last().and_then(|t| t.vmas.last()).is_none() || !self.in_vma {
                    return err("broken image: parent pages outside a VMA");
                }
            }
            Event::ParentPages(z) => {
                return err(format!(
                    "the image keeps {} pages from {:#x} in its parent image: restore it from \
                     its file, with the parent next to it (the chain is resolved then)",
                    z.count, z.start
                ));
            }
            Event::ZeroPages(z) => {
                let Some(v) = tasks.last_mut().and_then(|t| t.vmas.last_mut()) else {
                    return err("broken image: zero pages outside a VMA");
                };
                if !self.in_vma {
                    return err("broken image: zero pages outside a VMA");
                }
                v.zeros.push((z.start, z.count));
            }
            Event::VmaEnd => {
                if !self.in_vma {
                    return err("broken image: VMA end without a VMA");
                }
                self.in_vma = false;
            }
            Event::Fs(f) => {
                need_task(tasks, "fs")?;
                tasks.last_mut().unwrap().fs = Some(f);
            }
            Event::SigActions(s) => {
                need_task(tasks, "sigactions")?;
                tasks.last_mut().unwrap().sigactions = s;
            }
            Event::Rlimits(r) => {
                need_task(tasks, "rlimits")?;
                tasks.last_mut().unwrap().rlimits = r;
            }
            Event::Pipe(p) => {
                if self.pipes.insert(p.id, p.data.to_vec()).is_some() {
                    return err(format!("broken image: pipe {} defined twice", p.id));
                }
            }
            Event::File(mut f) => {
                if !self.keep_pages {
                    // A check needs the contents' size, not the bytes.
                    f.records.data = Vec::new();
                }
                if let Some(pid) = f.pipe {
                    if !self.pipes.contains_key(&pid) {
                        return err(format!(
                            "broken image: file {} refers to undefined pipe {pid}",
                            f.id
                        ));
                    }
                }
                if self.files.contains_key(&f.id) {
                    return err(format!("broken image: file {} defined twice", f.id));
                }
                self.files.insert(f.id, f);
            }
            Event::Fd(fd) => {
                need_task(tasks, "fd")?;
                if !self.files.contains_key(&fd.file) {
                    return err(format!(
                        "broken image: fd {} refers to undefined file {}",
                        fd.fd, fd.file
                    ));
                }
                tasks.last_mut().unwrap().fds.push(fd);
            }
            Event::Error(e) => {
                return err(format!(
                    "incomplete image: the writer reported an error: {}",
                    String::from_utf8_lossy(&e)
                ))
            }
            Event::Unknown(u) => {
                return err(format!(
                    "image holds a {} record of type {} this restorer does not understand; restoring without it would not be exact",
                    u.revision, u.type_code
                ))
            }
            Event::Tail => self.tail = true,
        }
        Ok(())
    }

    /// The plan of everything pushed, checked: every reason it cannot be restored is
    /// named ([`Plan::problems`], one per line, grouped by kind when there are many).
    pub fn finish(self) -> Result<Plan, PlanError> {
        let plan = self.finish_unchecked()?;
        let problems = plan.problems();
        if !problems.is_empty() {
            return Err(PlanError(problems.join("\n")));
        }
        Ok(plan)
    }

    /// The plan of everything pushed, with only the stream's own structure checked (a
    /// header, a tail, every reference defined): for listing every problem of an image
    /// that [`Collector::finish`] would refuse at the first.
    pub fn finish_unchecked(self) -> Result<Plan, PlanError> {
        if let Some(f) = self.failed {
            return Err(PlanError(f));
        }
        let Some(header) = self.header else {
            return err("broken image: no header");
        };
        if !self.tail {
            return err("broken image: truncated (no tail)");
        }
        let mut plan = Plan {
            header,
            tasks: self.tasks,
            files: self.files,
            pipes: self.pipes,
            left_out: Vec::new(),
            pages_elided: !self.keep_pages,
        };
        plan.adopt_vsyscall();
        plan.leave_out_unsupported();
        Ok(plan)
    }
}

impl Default for Collector {
    fn default() -> Self {
        Collector::new()
    }
}

impl ckpt_format::EventSink for Collector {
    fn event(&mut self, ev: &Event<'_>) -> ckpt_format::Result<()> {
        // A check-only observer: a problem is kept for `finish`, never stops the writer.
        let _ = self.push(0, ev.clone(), None);
        Ok(())
    }
    fn finish(&mut self) -> ckpt_format::Result<()> {
        Ok(())
    }
}

impl Plan {
    /// Drain `src` into a plan and check it. `base` is the mapped image the source
    /// reads from, if any: page data borrowed from it is kept by reference.
    pub fn collect(src: &mut dyn EventSource, base: Option<&[u8]>) -> Result<Plan, PlanError> {
        let mut c = Collector::new();
        loop {
            let off = src.offset();
            let ev = match src.next_event() {
                Ok(Some(ev)) => ev,
                Ok(None) => break,
                Err(e) => return err(format!("broken image: {e}")),
            };
            c.push(off, ev, base)?;
        }
        c.finish()
    }

    /// Files recorded as unsupported (`ckpt-capture --allow-unsupported`) are left out:
    /// their fds are removed from the tables and listed in [`Plan::left_out`].
    fn leave_out_unsupported(&mut self) {
        for t in &mut self.tasks {
            let pid = t.task.pid;
            let files = &self.files;
            let left = &mut self.left_out;
            t.fds.retain(|fd| {
                let f = &files[&fd.file];
                if f.records.unsupported.is_none() {
                    return true;
                }
                left.push(format!(
                    "pid {pid} fd {} ({}, {})",
                    fd.fd,
                    f.kind.name(),
                    String::from_utf8_lossy(&f.path)
                ));
                false
            });
        }
    }

    /// Revisions without a special-mapping kind (ckpt-v21, cr-v5) hold the `[vsyscall]`
    /// page as an anonymous VMA without pages: it is the kernel's, whatever its kind.
    fn adopt_vsyscall(&mut self) {
        for t in &mut self.tasks {
            for v in &mut t.vmas {
                let m = &mut v.vma;
                if m.start == VSYSCALL
                    && m.end == VSYSCALL + PAGE
                    && m.kind != VmaKind::Other
                    && v.pages.is_empty()
                {
                    m.kind = VmaKind::Other;
                    m.file = None;
                }
            }
        }
    }

    /// Revisions without a vvar kind (ckpt-v21, cr-v5) hold the vdso's data pages as
    /// anonymous VMAs without pages. An anonymous VMA without pages that covers exactly
    /// where this kernel's vvar piece `(offset from the vdso, size)` goes, next to the
    /// image's vdso, is that piece: it is given the vvar kind (mapping anonymous memory
    /// there would hide the vdso's data). Returns how many VMAs were adopted.
    pub fn adopt_vvar(&mut self, pieces: &[(i64, u64)]) -> usize {
        let mut n = 0;
        for t in &mut self.tasks {
            if t.vmas.iter().any(|v| v.vma.kind == VmaKind::Vvar) {
                continue;
            }
            let Some(vdso) = t
                .vmas
                .iter()
                .find(|v| v.vma.kind == VmaKind::Vdso)
                .map(|v| v.vma.start)
            else {
                continue;
            };
            for &(off, size) in pieces {
                let start = vdso.wrapping_add(off as u64);
                if let Some(v) = t.vmas.iter_mut().find(|v| {
                    v.vma.start == start
                        && v.vma.end == start.wrapping_add(size)
                        && v.vma.kind == VmaKind::Anon
                        && v.pages.is_empty()
                        && v.vma.prot & 2 == 0
                }) {
                    v.vma.kind = VmaKind::Vvar;
                    v.vma.file = None;
                    v.zeros.clear();
                    n += 1;
                }
            }
        }
        n
    }

    /// Every reason this plan cannot be restored, found without looking at the machine
    /// (structure the decoder does not check, objects this restorer cannot recreate),
    /// one message each, objects grouped by kind when there are many. Empty = none.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut objects: Vec<(String, String)> = Vec::new();
        if self.header.arch != Arch::X86_64 {
            out.push(format!(
                "image is for {}, this restorer runs {} tasks only",
                self.header.arch,
                Arch::X86_64
            ));
        }
        if self.header.page_size as u64 != PAGE {
            out.push(format!(
                "image page size {} differs from this machine's {PAGE}",
                self.header.page_size
            ));
        }
        if self.tasks.is_empty() {
            out.push("image holds no task".into());
        }
        let deleted = |p: &[u8]| p.ends_with(b" (deleted)");
        let show = |p: &[u8]| String::from_utf8_lossy(p).into_owned();
        // A deleted file, memfd or executable whose inode's contents are in the image.
        let carries = |id: u32| {
            self.files
                .get(&id)
                .is_some_and(|f| f.records.contents.is_some())
        };
        for t in &self.tasks {
            let pid = t.task.pid;
            if t.task.exit_state != 0 {
                if let Some(why) = zombie_problem(t) {
                    out.push(format!("pid {pid} is a zombie {why}"));
                }
                continue;
            }
            if t.task.creds.groups.len() > MAX_GROUPS {
                out.push(format!(
                    "task {pid} has {} supplementary groups: this restorer passes at most {MAX_GROUPS}",
                    t.task.creds.groups.len()
                ));
            }
            if t.threads.is_empty() {
                out.push(format!("task {pid} has no thread"));
            } else if t.threads.iter().filter(|th| th.tid == pid).count() != 1 {
                out.push(format!("task {pid} has no (or two) leader thread(s)"));
            }
            if t.mm.is_none() || t.vmas.is_empty() {
                out.push(format!("task {pid} has no address space"));
            }
            if let Some(x) = t.task.records.exe {
                if !carries(x.file) {
                    out.push(format!(
                        "pid {pid}: its executable's contents are said to be file {}, which carries none",
                        x.file
                    ));
                }
            } else if let Some(exe) = t.mm.as_ref().and_then(|m| m.exe.as_deref()) {
                if deleted(exe) {
                    objects.push((
                        "deleted executable".into(),
                        format!(
                            "pid {pid} runs {}, deleted before the capture; its contents are not in the image",
                            show(exe)
                        ),
                    ));
                }
            }
            if let Some(fs) = &t.fs {
                if deleted(&fs.cwd) {
                    objects.push((
                        "deleted directory".into(),
                        format!("pid {pid} cwd {} was deleted", show(&fs.cwd)),
                    ));
                }
            }
            let mut prev_end = 0u64;
            for v in &t.vmas {
                let m = &v.vma;
                let is_vsyscall = m.start == VSYSCALL && m.kind == VmaKind::Other;
                if m.start % PAGE != 0 || m.end % PAGE != 0 || m.end <= m.start {
                    out.push(format!(
                        "task {pid}: VMA {:#x}-{:#x} not page aligned",
                        m.start, m.end
                    ));
                    continue;
                }
                if !is_vsyscall && m.end > TASK_SIZE {
                    out.push(format!(
                        "task {pid}: VMA {:#x}-{:#x} beyond the 47-bit user address space",
                        m.start, m.end
                    ));
                }
                if m.start < prev_end {
                    out.push(format!(
                        "task {pid}: VMA {:#x}-{:#x} overlaps the previous one",
                        m.start, m.end
                    ));
                }
                prev_end = m.end;
                let inside = |s: u64, c: u64| {
                    c.checked_mul(PAGE)
                        .and_then(|l| s.checked_add(l))
                        .is_some_and(|e| s >= m.start && e <= m.end && s % PAGE == 0)
                };
                for p in &v.pages {
                    for &(s, c) in &p.runs {
                        if !inside(s, c) {
                            out.push(format!(
                                "task {pid}: pages {s:#x}+{c} outside their VMA {:#x}-{:#x}",
                                m.start, m.end
                            ));
                        }
                    }
                }
                for &(s, c) in &v.zeros {
                    if !inside(s, c) {
                        out.push(format!(
                            "task {pid}: zero pages {s:#x}+{c} outside their VMA {:#x}-{:#x}",
                            m.start, m.end
                        ));
                    }
                }
                match (&m.kind, &m.file) {
                    (VmaKind::File, None) => out.push(format!(
                        "task {pid}: file VMA {:#x}-{:#x} without a path",
                        m.start, m.end
                    )),
                    (VmaKind::File, Some(_)) if m.records.contents.is_some() => {
                        let id = m.records.contents.map_or(0, |c| c.file);
                        if !carries(id) {
                            out.push(format!(
                                "task {pid}: VMA {:#x}-{:#x} maps file {id}, which carries no contents",
                                m.start, m.end
                            ));
                        }
                    }
                    (VmaKind::File, Some(f)) if deleted(f) => {
                        let kind = if f.starts_with(b"/memfd:") {
                            "mapped memfd"
                        } else {
                            "mapped deleted file"
                        };
                        objects.push((
                            kind.into(),
                            format!(
                                "pid {pid} maps {} at {:#x}-{:#x}: the file was deleted; its contents are not in the image",
                                show(f),
                                m.start,
                                m.end
                            ),
                        ));
                    }
                    _ => {}
                }
            }
            for fd in &t.fds {
                let f = &self.files[&fd.file];
                if fd.fd < 0 {
                    out.push(format!("task {pid}: negative fd {}", fd.fd));
                    continue;
                }
                match f.kind {
                    FileKind::Socket if f.records.sock.socket.is_some() => {
                        if let Some(why) = crate::sockets::refusal(&self.files, f) {
                            objects.push((
                                "socket".into(),
                                format!("pid {pid} fd {} is a socket that {why}", fd.fd),
                            ));
                        }
                    }
                    FileKind::Other if crate::anon::carried(&f.records) => {}
                    FileKind::Other if f.records.pidfd.is_some() => {
                        let p = f.records.pidfd.map_or(0, |p| p.pid);
                        if !self.tasks.iter().any(|t| t.task.pid == p) {
                            objects.push((
                                "pidfd".into(),
                                format!(
                                    "pid {pid} fd {} is a pidfd on pid {p}, which is no process of the image",
                                    fd.fd
                                ),
                            ));
                        }
                    }
                    FileKind::Socket | FileKind::Other => {
                        let path = show(&f.path);
                        let kind = if f.kind == FileKind::Socket {
                            "socket".to_string()
                        } else {
                            path.strip_prefix("anon_inode:")
                                .map(|s| s.trim_matches(|c| c == '[' || c == ']').to_string())
                                .unwrap_or_else(|| "special file".into())
                        };
                        objects.push((
                            kind.clone(),
                            format!("pid {pid} fd {} is {} ({path})", fd.fd, article(&kind)),
                        ));
                    }
                    FileKind::Pipe if f.pipe.is_none() => {
                        out.push(format!(
                            "task {pid} fd {}: pipe without a pipe object",
                            fd.fd
                        ));
                    }
                    FileKind::Regular if f.records.inode_of.is_some() => {
                        let id = f.records.inode_of.map_or(0, |i| i.file);
                        if !carries(id) {
                            out.push(format!(
                                "task {pid} fd {}: its inode is said to be file {id}, which carries no contents",
                                fd.fd
                            ));
                        }
                    }
                    FileKind::Regular if f.records.contents.is_some() => {}
                    _ if deleted(&f.path) => {
                        let kind = if f.path.starts_with(b"/memfd:") {
                            "memfd"
                        } else {
                            "deleted file"
                        };
                        objects.push((
                            kind.into(),
                            format!(
                                "pid {pid} fd {} is a {kind} ({}); its contents are not in the image",
                                fd.fd,
                                show(&f.path)
                            ),
                        ));
                    }
                    _ => {}
                }
            }
        }
        if !objects.is_empty() {
            out.push(format!(
                "{} object(s) this restorer cannot recreate:",
                objects.len()
            ));
            out.extend(grouped(&objects).into_iter().map(|l| format!("  {l}")));
        }
        out
    }
}

/// "a socket", "an eventfd".
pub fn article(kind: &str) -> String {
    let an = kind
        .chars()
        .next()
        .is_some_and(|c| "aeiouAEIOU".contains(c));
    format!("{} {kind}", if an { "an" } else { "a" })
}

/// More `(kind, line)` items than this are listed under one heading per kind.
pub const GROUP_ABOVE: usize = 8;

/// `(kind, line)` items as lines: as they are when there are few, else under a heading
/// per kind (`socket (12):`), kinds in order of first appearance.
pub fn grouped(items: &[(String, String)]) -> Vec<String> {
    if items.len() <= GROUP_ABOVE {
        return items.iter().map(|(_, l)| l.clone()).collect();
    }
    let mut kinds: Vec<&str> = Vec::new();
    for (k, _) in items {
        if !kinds.contains(&k.as_str()) {
            kinds.push(k);
        }
    }
    let mut out = Vec::new();
    for k in kinds {
        let lines: Vec<&String> = items.iter().filter(|i| i.0 == k).map(|i| &i.1).collect();
        out.push(format!("{k} ({}):", lines.len()));
        out.extend(lines.into_iter().map(|l| format!("  {l}")));
    }
    out
}

/// `Task.exit_state` of a zombie (`EXIT_ZOMBIE`).
pub const EXIT_ZOMBIE: u32 = 32;

/// Why a zombie task cannot be re-created, if it cannot: it is re-created by a process
/// that exits with its status (`exit_group(code)`, or its signal with the default
/// action), so the status must be one of those, and the task must hold nothing else.
pub fn zombie_problem(t: &TaskPlan) -> Option<String> {
    let st = t.task.exit_code;
    let (sig, code) = (st & 0x7f, st >> 8);
    if t.task.exit_state != EXIT_ZOMBIE {
        return Some(format!(
            "in exit state {} (only EXIT_ZOMBIE, 32, is re-created)",
            t.task.exit_state
        ));
    }
    if !t.threads.is_empty() || t.mm.is_some() || !t.vmas.is_empty() || !t.fds.is_empty() {
        return Some(format!(
            "with {} thread(s), {} VMA(s) and {} fd(s): a zombie holds none",
            t.threads.len(),
            t.vmas.len(),
            t.fds.len()
        ));
    }
    if st & 0x80 != 0 {
        return Some(format!(
            "that dumped core (status {st:#x}): the core-dump bit cannot be given back"
        ));
    }
    if (sig != 0 && code != 0) || sig == 0x7f || sig > 64 || code > 0xff {
        return Some(format!("with the exit status {st:#x}, which no exit gives"));
    }
    let harmless = [
        libc::SIGCHLD,
        libc::SIGCONT,
        libc::SIGURG,
        libc::SIGWINCH,
        libc::SIGSTOP,
        libc::SIGTSTP,
        libc::SIGTTIN,
        libc::SIGTTOU,
    ];
    if harmless.iter().any(|&h| h as u32 == sig) {
        return Some(format!(
            "killed by signal {sig}, whose default action does not kill"
        ));
    }
    None
}
