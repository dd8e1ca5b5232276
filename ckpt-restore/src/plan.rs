//! The restore plan: every event of an image collected and checked before anything is created.
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

impl Plan {
    /// Drain `src` into a plan and check it. `base` is the mapped image the source
    /// reads from, if any: page data borrowed from it is kept by reference.
    pub fn collect(src: &mut dyn EventSource, base: Option<&[u8]>) -> Result<Plan, PlanError> {
        let mut header: Option<Header> = None;
        let mut tasks: Vec<TaskPlan> = Vec::new();
        let mut files = BTreeMap::new();
        let mut pipes = BTreeMap::new();
        let mut tail = false;
        let mut in_vma = false;
        loop {
            let off = src.offset();
            let ev = match src.next_event() {
                Ok(Some(ev)) => ev,
                Ok(None) => break,
                Err(e) => return err(format!("broken image: {e}")),
            };
            if tail {
                return err("broken image: events after the tail");
            }
            let cur = tasks.last_mut();
            let need_task = |c: Option<&mut TaskPlan>, what: &str| -> Result<(), PlanError> {
                if c.is_none() {
                    return err(format!(
                        "broken image: {what} at offset {off} before any task"
                    ));
                }
                Ok(())
            };
            match ev {
                Event::Header(h) => {
                    if header.is_some() {
                        return err("broken image: second header");
                    }
                    header = Some(h);
                }
                Event::Task(t) => {
                    if in_vma {
                        return err("broken image: task inside a VMA");
                    }
                    tasks.push(TaskPlan {
                        task: t,
                        ..Default::default()
                    })
                }
                Event::Thread(t) => {
                    need_task(cur, "thread")?;
                    tasks.last_mut().unwrap().threads.push(t);
                }
                Event::Mm(m) => {
                    need_task(cur, "mm")?;
                    tasks.last_mut().unwrap().mm = Some(m);
                }
                Event::Vma(v) => {
                    need_task(cur, "vma")?;
                    if in_vma {
                        return err("broken image: VMA inside a VMA");
                    }
                    in_vma = true;
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
                    if !in_vma {
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
                        _ => PageData::Owned(p.data.to_vec()),
                    };
                    v.pages.push(PagesPlan { runs, data });
                }
                Event::ZeroPages(z) => {
                    let Some(v) = tasks.last_mut().and_then(|t| t.vmas.last_mut()) else {
                        return err("broken image: zero pages outside a VMA");
                    };
                    if !in_vma {
                        return err("broken image: zero pages outside a VMA");
                    }
                    v.zeros.push((z.start, z.count));
                }
                Event::VmaEnd => {
                    if !in_vma {
                        return err("broken image: VMA end without a VMA");
                    }
                    in_vma = false;
                }
                Event::Fs(f) => {
                    need_task(cur, "fs")?;
                    tasks.last_mut().unwrap().fs = Some(f);
                }
                Event::SigActions(s) => {
                    need_task(cur, "sigactions")?;
                    tasks.last_mut().unwrap().sigactions = s;
                }
                Event::Rlimits(r) => {
                    need_task(cur, "rlimits")?;
                    tasks.last_mut().unwrap().rlimits = r;
                }
                Event::Pipe(p) => {
                    if pipes.insert(p.id, p.data.to_vec()).is_some() {
                        return err(format!("broken image: pipe {} defined twice", p.id));
                    }
                }
                Event::File(f) => {
                    if let Some(pid) = f.pipe {
                        if !pipes.contains_key(&pid) {
                            return err(format!(
                                "broken image: file {} refers to undefined pipe {pid}",
                                f.id
                            ));
                        }
                    }
                    if files.contains_key(&f.id) {
                        return err(format!("broken image: file {} defined twice", f.id));
                    }
                    files.insert(f.id, f);
                }
                Event::Fd(fd) => {
                    need_task(cur, "fd")?;
                    if !files.contains_key(&fd.file) {
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
                Event::Tail => tail = true,
            }
        }
        let Some(header) = header else {
            return err("broken image: no header");
        };
        if !tail {
            return err("broken image: truncated (no tail)");
        }
        let mut plan = Plan {
            header,
            tasks,
            files,
            pipes,
        };
        plan.adopt_vsyscall();
        plan.check()?;
        Ok(plan)
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

    /// Structural checks that the decoder does not make but the restorer relies on.
    fn check(&self) -> Result<(), PlanError> {
        if self.header.arch != Arch::X86_64 {
            return err(format!(
                "image is for {}, this restorer runs {} tasks only",
                self.header.arch,
                Arch::X86_64
            ));
        }
        if self.header.page_size as u64 != PAGE {
            return err(format!(
                "image page size {} differs from this machine's {PAGE}",
                self.header.page_size
            ));
        }
        if self.tasks.is_empty() {
            return err("image holds no task");
        }
        for t in &self.tasks {
            let pid = t.task.pid;
            if t.task.exit_state != 0 {
                return err(format!(
                    "task {pid} is a zombie: zombies are not restored yet"
                ));
            }
            if t.task.creds.groups.len() > MAX_GROUPS {
                return err(format!(
                    "task {pid} has {} supplementary groups: this restorer passes at most {MAX_GROUPS}",
                    t.task.creds.groups.len()
                ));
            }
            if t.threads.is_empty() {
                return err(format!("task {pid} has no thread"));
            }
            if t.threads.iter().filter(|th| th.tid == pid).count() != 1 {
                return err(format!("task {pid} has no (or two) leader thread(s)"));
            }
            if t.mm.is_none() || t.vmas.is_empty() {
                return err(format!("task {pid} has no address space"));
            }
            let mut prev_end = 0u64;
            for v in &t.vmas {
                let m = &v.vma;
                let is_vsyscall = m.start == VSYSCALL && m.kind == VmaKind::Other;
                if m.start % PAGE != 0 || m.end % PAGE != 0 || m.end <= m.start {
                    return err(format!(
                        "task {pid}: VMA {:#x}-{:#x} not page aligned",
                        m.start, m.end
                    ));
                }
                if !is_vsyscall && m.end > TASK_SIZE {
                    return err(format!(
                        "task {pid}: VMA {:#x}-{:#x} beyond the 47-bit user address space",
                        m.start, m.end
                    ));
                }
                if m.start < prev_end {
                    return err(format!(
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
                            return err(format!(
                                "task {pid}: pages {s:#x}+{c} outside their VMA {:#x}-{:#x}",
                                m.start, m.end
                            ));
                        }
                    }
                }
                for &(s, c) in &v.zeros {
                    if !inside(s, c) {
                        return err(format!(
                            "task {pid}: zero pages {s:#x}+{c} outside their VMA {:#x}-{:#x}",
                            m.start, m.end
                        ));
                    }
                }
                if m.kind == VmaKind::File && m.file.is_none() {
                    return err(format!(
                        "task {pid}: file VMA {:#x}-{:#x} without a path",
                        m.start, m.end
                    ));
                }
            }
            for fd in &t.fds {
                let f = &self.files[&fd.file];
                if fd.fd < 0 {
                    return err(format!("task {pid}: negative fd {}", fd.fd));
                }
                match f.kind {
                    FileKind::Socket | FileKind::Other => {
                        return err(format!(
                            "task {pid} fd {} is {} ({}): not restorable",
                            fd.fd,
                            f.kind.name(),
                            String::from_utf8_lossy(&f.path)
                        ))
                    }
                    FileKind::Pipe if f.pipe.is_none() => {
                        return err(format!(
                            "task {pid} fd {}: pipe without a pipe object",
                            fd.fd
                        ))
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }
}
