//! A CRIU dump as a source of the event model: the process tree, each task's threads and
//! registers, mm and VMAs with their pages, fs, signal dispositions, rlimits and files.
//! Whatever the model has no record for is named in [`Decoder::losses`].
//!
//! Over 800 lines: one walker over a dump, task by task, whose steps (task, mm and pages,
//! fs, files) share the decoder's tables and page cursor; the protobuf helpers
//! (`thread.rs`, `pages.rs`) already live beside it.

use crate::image::{CriuError, ImageFile, Result};
use crate::magic;
use crate::pages::{self, ParentCache, PAGE, PE_LAZY, PE_PARENT, PE_PRESENT};
use crate::pb;
use crate::set::CriuImage;
use crate::thread;
use ckpt_format::validate::Checker;
use ckpt_format::{
    Addrs, Arch, Creds, Event, EventSource, Fd, File, FileKind, Fs, Header, Kernel, Mm, PageChunk,
    Pipe, Revision, Rlimit, Security, SharedPending, SigAction, Task, Vma, VmaKind,
};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

mod files;

/// Most pages in one [`Event::Pages`] (2 MiB).
pub const CHUNK_PAGES: u64 = 512;

// VMA status bits of CRIU's vma_entry.status.
const VMA_AREA_STACK: u32 = 1 << 1;
const VMA_AREA_VSYSCALL: u32 = 1 << 2;
const VMA_AREA_VDSO: u32 = 1 << 3;
const VMA_AREA_HEAP: u32 = 1 << 5;
const VMA_FILE_PRIVATE: u32 = 1 << 6;
const VMA_FILE_SHARED: u32 = 1 << 7;
const VMA_ANON_SHARED: u32 = 1 << 8;
const VMA_AREA_SYSVIPC: u32 = 1 << 10;
const VMA_AREA_SOCKET: u32 = 1 << 11;
const VMA_AREA_VVAR: u32 = 1 << 12;
const VMA_AREA_AIORING: u32 = 1 << 13;
const VMA_AREA_MEMFD: u32 = 1 << 14;
const VMA_AREA_SHSTK: u32 = 1 << 15;

// mmap(2) flags in vma_entry.flags.
const MAP_SHARED: u32 = 0x01;
const MAP_GROWSDOWN: u32 = 0x100;

// Kernel vm_flags the model carries.
const VM_MAYREAD: u64 = 0x10;
const VM_MAYWRITE: u64 = 0x20;
const VM_MAYEXEC: u64 = 0x40;
const VM_SHARED: u64 = 0x08;
const VM_MAYSHARE: u64 = 0x80;
const VM_GROWSDOWN: u64 = 0x100;

/// CRIU's task states (pstree/core `task_state`).
const TASK_ALIVE: u32 = 0x1;
const TASK_DEAD: u32 = 0x2;
const TASK_STOPPED: u32 = 0x3;

#[allow(clippy::large_enum_variant)] // a queue of one task's events; boxing buys nothing
enum Item<'a> {
    Ev(Event<'static>),
    /// Pages of one VMA whose contents follow one another in one pages file: runs
    /// `(start, count)` and their contents at `off..off + len` of `base`.
    Pages {
        runs: Vec<(u64, u64)>,
        base: &'a [u8],
        off: usize,
        len: usize,
    },
}

/// Everything of the dump read once up front: the tree and the shared objects.
struct Tables<'a> {
    tree: Vec<pb::PstreeEntry>,
    files: HashMap<u32, pb::FileEntry>,
    pipe_data: HashMap<u32, &'a [u8]>,
    memfd: HashMap<u32, pb::MemfdInodeEntry>,
    inventory: pb::InventoryEntry,
    /// tty-info, file locks, old eventpoll targets.
    objects: crate::objects::Objects,
    /// Unix receive queues by socket id.
    queues: HashMap<u32, Vec<crate::sockets::Packet<'a>>>,
    /// Bound names of the unix sockets by inode.
    unix_names: HashMap<u32, ckpt_format::model::SockAddr>,
}

fn read_tables(img: &CriuImage) -> Result<Tables<'_>> {
    let inventory: pb::InventoryEntry = ImageFile::expect(
        "inventory.img",
        img.need("inventory.img")?,
        magic::INVENTORY,
    )?
    .one()?;
    let tree: Vec<pb::PstreeEntry> =
        ImageFile::expect("pstree.img", img.need("pstree.img")?, magic::PSTREE)?.all()?;
    let mut files = HashMap::new();
    if let Some(b) = img.file("files.img") {
        for f in ImageFile::expect("files.img", b, magic::FILES)?.all::<pb::FileEntry>()? {
            files.insert(f.id, f);
        }
    }
    let mut pipe_data = HashMap::new();
    if let Some(b) = img.file("pipes-data.img") {
        let mut f = ImageFile::expect("pipes-data.img", b, magic::PIPES_DATA)?;
        while let Some((_, e)) = f.next_msg::<pb::PipeDataEntry>()? {
            let d = f.take_extra(e.bytes as u64, "pipe data")?;
            pipe_data.insert(e.pipe_id, d);
        }
    }
    let mut memfd = HashMap::new();
    if let Some(b) = img.file("memfd.img") {
        for m in
            ImageFile::expect("memfd.img", b, magic::MEMFD_INODE)?.all::<pb::MemfdInodeEntry>()?
        {
            memfd.insert(m.inode_id as u32, m);
        }
    }
    let objects = crate::objects::read(img)?;
    let queues = crate::sockets::read_queues(img)?;
    let unix_names = crate::sockets::unix_names(files.values());
    Ok(Tables {
        tree,
        files,
        pipe_data,
        memfd,
        inventory,
        objects,
        queues,
        unix_names,
    })
}

/// The event decoder of a CRIU dump.
pub struct Decoder<'a> {
    img: &'a CriuImage,
    t: Tables<'a>,
    next_task: usize,
    items: VecDeque<Item<'a>>,
    started: bool,
    done: bool,
    failed: bool,
    checker: Checker,
    /// Model object ids by (kind, CRIU id).
    ids: BTreeMap<(u8, u32), u32>,
    defined: HashSet<u32>,
    /// CRIU file ids named as lost (once, however many fds refer to them).
    lost: HashSet<u32>,
    /// CRIU ids of sockets whose in-flight files are being defined (cycle guard).
    defining: HashSet<u32>,
    losses: Vec<String>,
    parents: ParentCache<'a>,
}

impl<'a> Decoder<'a> {
    /// A decoder over `img`; reads the inventory, the tree and the file table.
    pub fn new(img: &'a CriuImage) -> Result<Decoder<'a>> {
        let t = read_tables(img)?;
        if t.inventory.img_version != 2 {
            return Err(CriuError::new(
                "inventory.img",
                4,
                format!("img_version {}", t.inventory.img_version),
                "2 (CRIU's V1.1 images, every CRIU since 1.x)",
            ));
        }
        Ok(Decoder {
            img,
            t,
            next_task: 0,
            items: VecDeque::new(),
            started: false,
            done: false,
            failed: false,
            checker: Checker::new(),
            ids: BTreeMap::new(),
            defined: HashSet::new(),
            lost: HashSet::new(),
            defining: HashSet::new(),
            losses: Vec::new(),
            parents: ParentCache::default(),
        })
    }

    /// What the model cannot carry, one line each, so far (all of them once the tail is out).
    pub fn losses(&self) -> &[String] {
        &self.losses
    }

    fn id(&mut self, kind: u8, criu: u32) -> u32 {
        let n = self.ids.len() as u32 + 1;
        *self.ids.entry((kind, criu)).or_insert(n)
    }

    fn header(&self) -> Header {
        let mut h = Header::new(
            Revision::Native1,
            Arch::X86_64,
            Kernel::default(),
            self.img.time,
        );
        h.tool = "criu".into();
        h.tool_version = format!("images v1.{}", self.t.inventory.img_version - 1);
        h
    }

    fn reg_name(&self, id: u32) -> Option<Vec<u8>> {
        self.t
            .files
            .get(&id)
            .and_then(|f| f.reg.as_ref())
            .map(|r| r.name.as_bytes().to_vec())
    }

    fn build_task(&mut self, i: usize) -> Result<()> {
        let pe = self.t.tree[i].clone();
        let pid = pe.pid;
        let core_name = format!("core-{pid}.img");
        let core: pb::CoreEntry =
            ImageFile::expect(&core_name, self.img.need(&core_name)?, magic::CORE)?.one()?;
        let name = core_name.clone();
        let tc = core.tc.clone().unwrap_or_default();
        let mut task = Task {
            pid: pid as i32,
            tgid: pid as i32,
            ppid: pe.ppid as i32,
            pgid: pe.pgid as i32,
            sid: pe.sid as i32,
            comm: tc.comm.as_bytes().to_vec(),
            exit_signal: 17,
            ..Task::default()
        };
        match tc.task_state {
            TASK_ALIVE => {}
            TASK_STOPPED => task.state = 4,
            TASK_DEAD => {
                task.exit_state = 0x20; // EXIT_ZOMBIE
                task.exit_code = tc.exit_code;
            }
            s => self.losses.push(format!(
                "task {pid}: CRIU task state {s} (not alive, stopped or dead)"
            )),
        }
        if let Some(c) = core.thread_core.as_ref().and_then(|t| t.creds.as_ref()) {
            task.creds = Creds {
                uid: [c.uid, c.euid, c.suid, c.fsuid],
                gid: [c.gid, c.egid, c.sgid, c.fsgid],
                groups: c.groups.clone(),
            };
            task.records.caps = Some(thread::capabilities(c));
            if c.secbits != 0 {
                self.losses
                    .push(format!("task {pid}: securebits {:#x}", c.secbits));
            }
            if c.lsm_profile.as_deref().is_some_and(|s| !s.is_empty()) {
                self.losses.push(format!("task {pid}: LSM profile"));
            }
        }
        if let Some(sig) = &tc.signals_s {
            if let Some(queue) = thread::signal_queue(sig, &name)? {
                task.records.shared_pending = Some(SharedPending { queue });
            }
        }
        let tcore = core.thread_core.clone().unwrap_or_default();
        let no_new_privs = tcore
            .creds
            .as_ref()
            .and_then(|c| c.no_new_privs)
            .unwrap_or(0);
        let seccomp = tcore.seccomp_mode.unwrap_or(0);
        if no_new_privs != 0 || seccomp != 0 {
            task.records.security = Some(Security {
                no_new_privs: no_new_privs as u64,
                seccomp_mode: seccomp as u64,
            });
        }
        if let Some(m) = tcore.seccomp_mode.filter(|&m| m != 0) {
            if m == 2 {
                self.losses
                    .push(format!("task {pid}: seccomp filters (seccomp.img)"));
            }
        }
        if let Some(t) = &tc.timers {
            let (it, posix) = crate::process::timers(t, &core_name)?;
            task.records.itimers = it;
            task.records.posix_timers = posix;
        }
        let mm = if tc.task_state != TASK_DEAD {
            let name = format!("mm-{pid}.img");
            Some(ImageFile::expect(&name, self.img.need(&name)?, magic::MM)?.one::<pb::MmEntry>()?)
        } else {
            None
        };
        if mm.is_some() {
            task.records.attrs = Some(crate::process::process_attrs(&tc, mm.as_ref()));
        }
        task.records.pdeath_signal = crate::process::pdeath(&tcore);
        let (locks, lost) = crate::objects::posix_locks(&self.t.objects, pid);
        self.losses.extend(lost);
        if !locks.is_empty() {
            task.records.posix_locks = Some(ckpt_format::model::PosixLocks { locks });
        }
        self.items.push_back(Item::Ev(Event::Task(task)));

        // Threads: the leader's core is read above, the others from their own core files.
        for &tid in &pe.threads {
            let th = if tid == pid {
                thread::thread(&core, tid, &core_name, &mut self.losses)?
            } else {
                let n = format!("core-{tid}.img");
                let c: pb::CoreEntry =
                    ImageFile::expect(&n, self.img.need(&n)?, magic::CORE)?.one()?;
                let own = c
                    .thread_core
                    .as_ref()
                    .and_then(|t| t.pdeath_sig)
                    .unwrap_or(0);
                if own != tcore.pdeath_sig.unwrap_or(0) {
                    self.losses.push(format!(
                        "thread {tid}: parent-death signal {own} unlike its leader's"
                    ));
                }
                thread::thread(&c, tid, &n, &mut self.losses)?
            };
            self.items.push_back(Item::Ev(Event::Thread(th)));
        }
        if !pe.threads.contains(&pid) {
            return Err(CriuError::new(
                "pstree.img",
                0,
                format!("task {pid} whose thread list {:?} lacks it", pe.threads),
                "the leader among its threads",
            ));
        }

        if let Some(mm) = mm {
            self.build_mm(pid, &tc, mm)?;
        }
        self.build_fs(pid)?;
        if !tc.sigactions.is_empty() {
            self.items
                .push_back(Item::Ev(Event::SigActions(sigactions(&tc.sigactions))));
        }
        if let Some(r) = &tc.rlimits {
            let v = r
                .rlimits
                .iter()
                .map(|r| Rlimit {
                    cur: r.cur,
                    max: r.max,
                })
                .collect();
            self.items.push_back(Item::Ev(Event::Rlimits(v)));
        }
        if tc.task_state != TASK_DEAD {
            self.build_files(pid)?;
        }
        Ok(())
    }

    fn build_mm(&mut self, pid: u32, tc: &pb::TaskCoreEntry, mm: pb::MmEntry) -> Result<()> {
        let m = Mm {
            start_code: mm.mm_start_code,
            end_code: mm.mm_end_code,
            start_data: mm.mm_start_data,
            end_data: mm.mm_end_data,
            start_brk: mm.mm_start_brk,
            brk: mm.mm_brk,
            start_stack: mm.mm_start_stack,
            arg_start: mm.mm_arg_start,
            arg_end: mm.mm_arg_end,
            env_start: mm.mm_env_start,
            env_end: mm.mm_env_end,
            auxv: mm.mm_saved_auxv.clone(),
            exe: self.reg_name(mm.exe_file_id),
            personality: tc.personality,
            extras: Default::default(),
        };
        if !mm.aios.is_empty() {
            self.losses
                .push(format!("task {pid}: {} AIO rings", mm.aios.len()));
        }
        self.items.push_back(Item::Ev(Event::Mm(m)));
        let (pm, pages_bytes) = pages::task_pages(self.img, pid)?.unwrap_or_default();
        let mut ri = 0usize;
        let mut emitted = 0u64;
        for v in &mm.vmas {
            let Some((vma, shmem)) = self.vma(pid, v)? else {
                continue;
            };
            if vma.kind == VmaKind::Vvar && vma.end - vma.start == 6 * PAGE {
                // Kernels since 6.13 map [vvar] (4 pages) and [vvar_vclock] (2 pages) as two
                // VMAs; CRIU records them as one VVAR area. The model, like /proc/PID/maps,
                // has the two.
                let mid = vma.start + 4 * PAGE;
                let mut a = vma.clone();
                a.end = mid;
                let mut b = vma;
                b.start = mid;
                for piece in [a, b] {
                    self.items.push_back(Item::Ev(Event::Vma(piece)));
                    self.items.push_back(Item::Ev(Event::VmaEnd));
                }
                continue;
            }
            self.items.push_back(Item::Ev(Event::Vma(vma)));
            if let Some(shmid) = shmem {
                // Shared memory: its own pagemap, addressed by offset in the object.
                let pgoff = v.pgoff;
                let (spm, sbytes) = self.shmem_pages(shmid)?;
                let lo = pgoff;
                let hi = pgoff.saturating_add(v.end - v.start);
                let mut k = spm.runs.partition_point(|r| r.end() <= lo);
                self.emit_runs(
                    pid,
                    &spm,
                    sbytes,
                    &mut k,
                    lo,
                    hi,
                    v.start.wrapping_sub(pgoff),
                    false,
                )?;
            } else {
                let n = self.emit_runs(pid, &pm, pages_bytes, &mut ri, v.start, v.end, 0, true)?;
                emitted = emitted.saturating_add(n);
            }
            self.items.push_back(Item::Ev(Event::VmaEnd));
        }
        let total = pm
            .runs
            .iter()
            .try_fold(0u64, |a, r| a.checked_add(r.nr))
            .unwrap_or(u64::MAX);
        if total != emitted {
            let found = match total.checked_sub(emitted) {
                Some(d) => format!("{d} of {total} pages outside every VMA of mm-{pid}.img"),
                None => format!(
                    "{emitted} pages inside the VMAs of mm-{pid}.img for {total} in the pagemap (VMAs overlap)"
                ),
            };
            return Err(CriuError::new(
                &format!("pagemap-{pid}.img"),
                0,
                found,
                "pages inside the task's VMAs",
            ));
        }
        Ok(())
    }

    /// Emit the contents of `pm`'s runs overlapping `[lo, hi)` (addresses in the pagemap's
    /// space; `delta` added gives the VMA's address), starting the search at run `*ri`.
    /// `parent`: in_parent runs are looked up in the parent dump (task pagemaps only).
    #[allow(clippy::too_many_arguments)]
    fn emit_runs(
        &mut self,
        pid: u32,
        pm: &pages::Pagemap,
        bytes: &'a [u8],
        ri: &mut usize,
        lo: u64,
        hi: u64,
        delta: u64,
        parent: bool,
    ) -> Result<u64> {
        while *ri < pm.runs.len() && pm.runs[*ri].end() <= lo {
            *ri += 1;
        }
        let mut emitted = 0;
        let mut j = *ri;
        while j < pm.runs.len() && pm.runs[j].vaddr < hi {
            let r = pm.runs[j];
            let s = r.vaddr.max(lo);
            let e = r.end().min(hi);
            let n = (e - s) / PAGE;
            let addr = s.wrapping_add(delta);
            emitted += n;
            if r.flags & PE_PRESENT != 0 {
                let at = (r.off + (s - r.vaddr)) as usize;
                self.push_pages(addr, n, bytes, at);
            } else if r.flags & PE_PARENT != 0 && parent {
                let (mut a, mut left) = (s, n);
                while left > 0 {
                    let (k, base, at) =
                        pages::from_parent(self.img, pid, a, left, &mut self.parents)?;
                    self.push_pages(a, k, base, at);
                    a += k * PAGE;
                    left -= k;
                }
            } else if r.flags & PE_LAZY != 0 {
                self.losses.push(format!(
                    "task {pid}: {n} lazy pages at {addr:#x} (kept by a page server, not in the dump)"
                ));
            } else {
                self.losses.push(format!(
                    "task {pid}: {n} pages at {addr:#x} with pagemap flags {:#x} and no contents",
                    r.flags
                ));
            }
            if r.end() > hi {
                break;
            }
            j += 1;
        }
        Ok(emitted)
    }

    /// The pagemap and pages of shared memory object `shmid` (empty when it has none).
    fn shmem_pages(&self, shmid: u64) -> Result<(pages::Pagemap, &'a [u8])> {
        let name = format!("pagemap-shmem-{shmid}.img");
        let Some(b) = self.img.file(&name) else {
            return Ok((pages::Pagemap::default(), &[]));
        };
        let head = pages::read_pagemap(&name, b, None)?;
        let pages_name = format!("pages-{}.img", head.pages_id);
        let bytes = self.img.need(&pages_name)?;
        Ok((
            pages::read_pagemap(&name, b, Some(bytes.len() as u64))?,
            bytes,
        ))
    }

    /// Queue `count` pages from `start`, their contents at `off` of `base`. Joined to
    /// the chunk before (up to CHUNK_PAGES pages) when their contents follow its own in
    /// the same file: a sparse dump's single-page runs (each its own pagemap entry, the
    /// contents one after another in pages-N.img) become chunks of many runs, not an
    /// event per page. Nothing is copied.
    fn push_pages(&mut self, mut start: u64, mut count: u64, base: &'a [u8], mut off: usize) {
        while count > 0 {
            if let Some(Item::Pages {
                runs,
                base: b,
                off: o,
                len,
            }) = self.items.back_mut()
            {
                let have = *len as u64 / PAGE;
                if std::ptr::eq(*b, base) && *o + *len == off && have < CHUNK_PAGES {
                    let n = count.min(CHUNK_PAGES - have);
                    match runs.last_mut() {
                        Some((s, c)) if *s + *c * PAGE == start => *c += n,
                        _ => runs.push((start, n)),
                    }
                    *len += (n * PAGE) as usize;
                    start += n * PAGE;
                    count -= n;
                    off += (n * PAGE) as usize;
                    continue;
                }
            }
            let n = count.min(CHUNK_PAGES);
            self.items.push_back(Item::Pages {
                runs: vec![(start, n)],
                base,
                off,
                len: (n * PAGE) as usize,
            });
            start += n * PAGE;
            count -= n;
            off += (n * PAGE) as usize;
        }
    }

    /// The model's VMA of a CRIU one, and the shared memory object holding its contents
    /// (`None` for private memory); `None` for mappings the model has no kind for.
    fn vma(&mut self, pid: u32, v: &pb::VmaEntry) -> Result<Option<(Vma, Option<u64>)>> {
        let st = v.status;
        let mut shmem = None;
        let range = format!("task {pid}: VMA {:#x}-{:#x}", v.start, v.end);
        if v.start >= v.end || v.start % PAGE != 0 || v.end % PAGE != 0 {
            return Err(CriuError::new(
                &format!("mm-{pid}.img"),
                0,
                format!("{range}: empty, reversed or not page aligned"),
                "a page-aligned range with start < end",
            ));
        }
        let (kind, file) = if st & VMA_AREA_VSYSCALL != 0 {
            (VmaKind::Other, Some(b"[vsyscall]".to_vec()))
        } else if st & VMA_AREA_VVAR != 0 {
            (VmaKind::Vvar, None)
        } else if st & VMA_AREA_VDSO != 0 {
            (VmaKind::Vdso, None)
        } else if st & (VMA_AREA_SYSVIPC | VMA_AREA_SOCKET | VMA_AREA_AIORING | VMA_AREA_SHSTK) != 0
        {
            self.losses.push(format!(
                "{range}: a {} mapping",
                if st & VMA_AREA_SYSVIPC != 0 {
                    "SysV shared memory"
                } else if st & VMA_AREA_SOCKET != 0 {
                    "packet socket"
                } else if st & VMA_AREA_AIORING != 0 {
                    "AIO ring"
                } else {
                    "shadow stack"
                }
            ));
            return Ok(None);
        } else if st & VMA_ANON_SHARED != 0 {
            shmem = Some(v.shmid);
            (VmaKind::SharedAnon, None)
        } else if st & VMA_AREA_MEMFD != 0 {
            // A memfd, or the object of a shared anonymous mapping (named /dev/zero).
            let ino = self
                .t
                .files
                .get(&(v.shmid as u32))
                .and_then(|f| f.memfd.as_ref())
                .and_then(|m| self.t.memfd.get(&m.inode_id))
                .ok_or_else(|| {
                    CriuError::new(
                        &format!("mm-{pid}.img"),
                        0,
                        format!(
                            "{range} maps memfd file id {} without a memfd inode",
                            v.shmid
                        ),
                        "a memfd entry in files.img and its inode in memfd.img",
                    )
                })?;
            shmem = Some(ino.shmid as u64);
            if ino.name == "/dev/zero" {
                (VmaKind::SharedAnon, Some(b"/dev/zero (deleted)".to_vec()))
            } else {
                (
                    VmaKind::File,
                    Some(format!("/memfd:{} (deleted)", ino.name).into_bytes()),
                )
            }
        } else if st & (VMA_FILE_PRIVATE | VMA_FILE_SHARED) != 0 {
            let name = self.reg_name(v.shmid as u32).ok_or_else(|| {
                CriuError::new(
                    &format!("mm-{pid}.img"),
                    0,
                    format!("{range} maps file id {} not in files.img", v.shmid),
                    "a regular file entry for every file mapping",
                )
            })?;
            (VmaKind::File, Some(name))
        } else if st & VMA_AREA_HEAP != 0 {
            (VmaKind::Heap, None)
        } else if st & VMA_AREA_STACK != 0 || v.flags & MAP_GROWSDOWN != 0 {
            (VmaKind::Stack, None)
        } else {
            (VmaKind::Anon, None)
        };
        let mut flags = (v.prot & 7) as u64 | VM_MAYREAD | VM_MAYWRITE | VM_MAYEXEC;
        if v.flags & MAP_SHARED != 0 {
            flags |= VM_SHARED | VM_MAYSHARE;
        }
        if v.flags & MAP_GROWSDOWN != 0 {
            flags |= VM_GROWSDOWN;
        }
        if let Some(m) = v.madv.filter(|&m| m != 0 && kind != VmaKind::Vvar) {
            self.losses
                .push(format!("{range}: madvise advice bits {m:#x}"));
        }
        let vma = Vma {
            start: v.start,
            end: v.end,
            prot: v.prot & 7,
            flags,
            pgoff: v.pgoff / PAGE,
            kind,
            file,
            records: Default::default(),
            extras: Default::default(),
        };
        Ok(Some((vma, shmem)))
    }

    fn build_fs(&mut self, pid: u32) -> Result<()> {
        let name = format!("fs-{pid}.img");
        let Some(b) = self.img.file(&name) else {
            return Ok(());
        };
        let fs: pb::FsEntry = ImageFile::expect(&name, b, magic::FS)?.one()?;
        let fs = Fs {
            cwd: self.reg_name(fs.cwd_id).unwrap_or_default(),
            root: self.reg_name(fs.root_id).unwrap_or_default(),
            umask: fs.umask.unwrap_or(0o022),
        };
        self.items.push_back(Item::Ev(Event::Fs(fs)));
        Ok(())
    }

    fn produce(&mut self) -> Result<Option<Event<'a>>> {
        if !self.started {
            self.started = true;
            return Ok(Some(Event::Header(self.header())));
        }
        loop {
            if let Some(it) = self.items.pop_front() {
                return Ok(Some(match it {
                    Item::Ev(e) => e,
                    Item::Pages {
                        runs,
                        base,
                        off,
                        len,
                    } => {
                        let mut run = Vec::with_capacity(runs.len() * 16);
                        for (start, count) in runs {
                            run.extend_from_slice(&start.to_le_bytes());
                            run.extend_from_slice(&count.to_le_bytes());
                        }
                        let data = base.get(off..off + len).ok_or_else(|| {
                            CriuError::new(
                                "pages",
                                off as u64,
                                "contents past the file",
                                "pages inside it",
                            )
                        })?;
                        let addrs = Addrs::from_runs(&run, PAGE as u32)
                            .ok_or_else(|| {
                                CriuError::new("pagemap", 0, "an empty run", "a run of pages")
                            })?
                            .into_owned();
                        Event::Pages(PageChunk {
                            addrs,
                            data: Cow::Borrowed(data),
                        })
                    }
                }));
            }
            if self.next_task < self.t.tree.len() {
                let i = self.next_task;
                self.next_task += 1;
                self.build_task(i)?;
                continue;
            }
            if self.done {
                return Ok(None);
            }
            self.done = true;
            return Ok(Some(Event::Tail));
        }
    }
}

/// CRIU stores the dispositions of signals 1..=64 without SIGKILL (9) and SIGSTOP (19); the
/// model has all 64, those two at their defaults.
fn sigactions(sa: &[pb::SaEntry]) -> Vec<SigAction> {
    let mut out = Vec::with_capacity(64);
    let mut it = sa.iter();
    for sig in 1..=64u32 {
        if sig == 9 || sig == 19 {
            out.push(SigAction::default());
            continue;
        }
        let Some(s) = it.next() else { break };
        out.push(SigAction {
            handler: s.sigaction,
            flags: s.flags,
            restorer: s.restorer,
            mask: s.mask,
        });
    }
    out
}

impl<'a> EventSource for Decoder<'a> {
    fn next_event(&mut self) -> ckpt_format::Result<Option<Event<'_>>> {
        if self.failed {
            return Ok(None);
        }
        let ev = match self.produce() {
            Ok(Some(ev)) => ev,
            Ok(None) => return Ok(None),
            Err(e) => {
                self.failed = true;
                return Err(e.into());
            }
        };
        if let Err(e) = self.checker.check(&ev, 0) {
            self.failed = true;
            return Err(e);
        }
        Ok(Some(ev))
    }
}
