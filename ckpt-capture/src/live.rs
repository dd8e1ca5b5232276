//! The live backend: capture running processes with ptrace and /proc.
//!
//! Order of work (docs/CAPTURE.md has the details and the reasons):
//! 1. freeze the target (and with `tree`, its descendants, parents first, each one's
//!    children listed only after it is frozen, so none can escape);
//! 2. refuse if the output is an object the targets hold (deadlock/corruption);
//! 3. per task: registers, xsave and TLS of every thread (before anything is injected),
//!    then injected syscalls into the stopped leader (`rt_sigaction` ×64, `brk(0)`) and
//!    into each thread (`sigaltstack`, `PR_GET_TID_ADDRESS`) through one scratch page
//!    mapped and unmapped by injection; then the memory map, page presence and contents,
//!    fs context, signal actions, rlimits, and fds;
//! 4. release every thread (`Leave`), or on any error detach them as they were.

use crate::{CaptureError, ErrorKind, Leave, Options, Producer, Progress, Stats};
use ckpt_format::{
    Addrs, Arch, Creds, Event, EventSink, Extras, Fd, File, FileKind, Fpu, FpuKind, Fs, Header,
    Kernel, Mm, PageChunk, Pipe, Regs, Revision, Rlimit, SigAction, Task, Thread, Vma, VmaKind,
    ZeroRun,
};
use ckpt_restore::plan::Collector;
use ckpt_sys::freeze::{Frozen, Release};
use ckpt_sys::inject::Injector;
use ckpt_sys::mem::{self, PageScan, Select};
use ckpt_sys::procfs::{self, MapEntry, Stat};
use ckpt_sys::{files, ptrace, PAGE_SIZE};
use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::mpsc;
use std::time::Instant;

/// Default bytes read from the target per `process_vm_readv` batch ([`Options::batch_bytes`]).
/// 1 MiB keeps the batch in the CPU cache between the read, the zero check, the checksum and
/// the write: 8 MiB batches measured clearly slower on this machine kind.
pub const BATCH_BYTES: usize = 1 << 20;

const O_CLOEXEC: u32 = 0o2000000;
const O_ACCMODE: u32 = 0o3;
const NSIG: u64 = 64;

/// The live capture backend (a [`Producer`]).
pub struct LiveCapture {
    opts: Options,
    /// With [`Leave::Killed`]: the frozen processes, killed by
    /// [`Producer::after_commit`] once the image is safely written (dropped = left
    /// running).
    held: Vec<Proc>,
}

impl LiveCapture {
    /// A capture of `opts.pid` (and its descendants with `opts.tree`).
    pub fn new(opts: Options) -> LiveCapture {
        LiveCapture {
            opts,
            held: Vec::new(),
        }
    }
}

struct Proc {
    pid: i32,
    stat: Stat,
    frozen: Option<Frozen>,
}

#[derive(Default)]
struct Shared {
    next_id: u32,
    files: Vec<(i32, i32, u64, u64, u32)>, // pid, fd, dev, ino, id
    pipes: HashMap<(u64, u64), u32>,
    /// Parent-death signals to record, by pid (found by [`crate::uncarried`]).
    pdeath: HashMap<i32, u64>,
}

impl Shared {
    fn id(&mut self) -> u32 {
        self.next_id += 1;
        self.next_id
    }
}

fn sys(ctx: impl AsRef<str>) -> impl FnOnce(ckpt_sys::SysError) -> CaptureError {
    move |e| CaptureError::sys(ctx.as_ref(), e)
}

fn fmt_err(e: ckpt_format::Error) -> CaptureError {
    CaptureError::format(e)
}

impl Producer for LiveCapture {
    fn produce(
        &mut self,
        sink: &mut dyn EventSink,
        stats: &mut Stats,
        progress: &mut dyn Progress,
    ) -> Result<(), CaptureError> {
        let pid = self.opts.pid;
        if pid <= 0 {
            return Err(CaptureError::new(
                ErrorKind::NoSuchProcess,
                format!("{pid} is not a process id"),
            ));
        }
        if pid as u32 == std::process::id() {
            return Err(CaptureError::new(
                ErrorKind::Target,
                "refusing to capture ckpt-capture itself",
            ));
        }
        if !procfs::exists(pid) {
            return Err(CaptureError::new(
                ErrorKind::NoSuchProcess,
                format!("no process with pid {pid}"),
            ));
        }
        let tgid = procfs::tgid_of(pid).map_err(sys(format!("pid {pid}")))?;
        if tgid != pid {
            return Err(CaptureError::new(
                ErrorKind::Target,
                format!("{pid} is a thread of process {tgid}; capture {tgid} instead"),
            ));
        }
        let frozen_at = Instant::now();
        let mut procs = freeze_all(pid, self.opts.tree)?;
        check_output(&procs, &self.opts)?;
        // The header first: a refusal below then leaves a stream that says why (Header,
        // Error, Tail) instead of one that is not an image at all.
        let mut checker = Collector::for_checks();
        let hdr = Event::Header(header(pid));
        sink.event(&hdr).map_err(fmt_err)?;
        let _ = checker.push(0, hdr, None);
        if self.opts.leave == Leave::Killed && !self.opts.tree && !self.opts.orphan_children {
            refuse_orphans(pid)?;
        }
        // Everything that cannot be carried, named at once: unsupported fds, and the
        // state a restore would lose (crate::uncarried).
        let found = crate::uncarried::check(
            &procs
                .iter()
                .map(|p| crate::uncarried::Target {
                    pid: p.pid,
                    stat: &p.stat,
                    tids: p.frozen.as_ref().map(|f| f.threads()),
                })
                .collect::<Vec<_>>(),
        )?;
        let fds = if self.opts.allow_unsupported {
            Ok(())
        } else {
            refuse_unsupported(&procs)
        };
        match (fds, found.refusal()) {
            (Ok(()), None) => {}
            (Err(e), None) | (Ok(()), Some(e)) => return Err(e),
            (Err(a), Some(b)) => {
                return Err(CaptureError::new(
                    ErrorKind::Unsupported,
                    format!("{}\n{}", a.msg, b.msg),
                ))
            }
        }
        // The restorability check sees every event as it is written (page contents
        // are not kept but the vdso's), so it costs no second pass over the image.
        {
            let mut tee = Tee {
                sink,
                check: &mut checker,
            };
            let mut shared = Shared {
                pdeath: found.pdeath,
                ..Shared::default()
            };
            for (i, p) in procs.iter().enumerate() {
                capture_task(
                    p,
                    i == 0,
                    &self.opts,
                    &mut shared,
                    &mut tee,
                    stats,
                    progress,
                )?;
            }
        }
        let _ = checker.push(0, Event::Tail, None);
        let problems = match checker.finish_unchecked() {
            Ok(plan) => {
                stats.left_out = plan.left_out.clone();
                ckpt_restore::check::restorable(&plan, &[], std::path::Path::new("/"))
            }
            Err(e) => vec![e.0],
        };
        if !problems.is_empty() {
            if self.opts.leave == Leave::Killed {
                return Err(CaptureError::new(
                    ErrorKind::Unrestorable,
                    format!(
                        "not killed, left running: ckpt-restore would refuse this image here:\n  {}",
                        problems.join("\n  ")
                    ),
                ));
            }
            stats.warnings.push(format!(
                "ckpt-restore would refuse this image here:\n  {}",
                problems.join("\n  ")
            ));
        }
        stats.frozen = frozen_at.elapsed();
        let how = match self.opts.leave {
            Leave::Running => Release::Run,
            Leave::Stopped => Release::Stop,
            Leave::Killed => {
                // Killed only once the image is written and committed: after_commit.
                self.held = procs;
                return Ok(());
            }
        };
        release_all(&mut procs, how)
    }

    fn after_commit(&mut self) -> Result<(), CaptureError> {
        let mut procs = std::mem::take(&mut self.held);
        release_all(&mut procs, Release::Kill)
    }
}

/// Release every frozen process, children first; the first error is returned after
/// every process has been tried.
fn release_all(procs: &mut [Proc], how: Release) -> Result<(), CaptureError> {
    let mut first_err = None;
    for p in procs.iter_mut().rev() {
        if let Some(f) = p.frozen.as_mut() {
            if let Err(e) = f.release(how) {
                first_err.get_or_insert(CaptureError::sys(&format!("release pid {}", p.pid), e));
            }
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Every event goes to the image and to the restorability check.
struct Tee<'a> {
    sink: &'a mut dyn EventSink,
    check: &'a mut Collector,
}

impl EventSink for Tee<'_> {
    fn event(&mut self, ev: &Event<'_>) -> ckpt_format::Result<()> {
        self.sink.event(ev)?;
        self.check.event(ev)
    }
    fn finish(&mut self) -> ckpt_format::Result<()> {
        self.sink.finish()
    }
}

/// `--kill` of a process whose children are not captured with it would orphan them.
fn refuse_orphans(pid: i32) -> Result<(), CaptureError> {
    let kids = procfs::children(pid).map_err(sys(format!("children of {pid}")))?;
    if kids.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = kids
        .iter()
        .map(|&k| match procfs::stat(k) {
            Ok(s) => format!("{k} ({})", String::from_utf8_lossy(&s.comm)),
            Err(_) => k.to_string(),
        })
        .collect();
    Err(CaptureError::new(
        ErrorKind::Refused,
        format!(
            "not killed, left running: pid {pid} has {} child process(es) that --kill would orphan: {}; capture them with it (--tree), or say --orphan-children to kill pid {pid} alone",
            kids.len(),
            names.join(", ")
        ),
    ))
}

/// What `capture_fds` cannot capture, for every fd of every frozen process, found
/// before anything is written: one refusal naming all of them.
fn refuse_unsupported(procs: &[Proc]) -> Result<(), CaptureError> {
    let mut items: Vec<(String, String)> = Vec::new();
    for p in procs.iter().filter(|p| p.frozen.is_some()) {
        let pid = p.pid;
        let fds = procfs::list_fds(pid).map_err(sys(format!("pid {pid} fds")))?;
        for fd in fds {
            let Ok(link) = procfs::readlink(&format!("/proc/{pid}/fd/{fd}")) else {
                continue;
            };
            let Ok(st) = files::stat_fd(pid, fd) else {
                continue;
            };
            if let Some(what) = unsupported_kind(&link, st.st_mode) {
                items.push((
                    what.clone(),
                    format!(
                        "pid {pid} fd {fd} is {} ({})",
                        ckpt_restore::plan::article(&what),
                        String::from_utf8_lossy(&link)
                    ),
                ));
            }
        }
    }
    if items.is_empty() {
        return Ok(());
    }
    let lines = ckpt_restore::plan::grouped(&items);
    Err(CaptureError::new(
        ErrorKind::Unsupported,
        format!(
            "{} object(s) ckpt-capture cannot capture (--allow-unsupported records them as left out, and restore goes without them):\n  {}",
            items.len(),
            lines.join("\n  ")
        ),
    ))
}

/// The kind of an fd `capture_fds` cannot capture ("socket", "eventfd" ...), if so.
fn unsupported_kind(link: &[u8], mode: u32) -> Option<String> {
    if let Some(a) = link.strip_prefix(b"anon_inode:") {
        let l = String::from_utf8_lossy(a);
        return Some(l.trim_matches(|c| c == '[' || c == ']').to_string());
    }
    match mode & libc::S_IFMT {
        libc::S_IFREG | libc::S_IFDIR | libc::S_IFCHR | libc::S_IFIFO => None,
        libc::S_IFSOCK => Some("socket".into()),
        libc::S_IFBLK => Some("block device".into()),
        _ => Some("special file".into()),
    }
}

fn freeze_one(pid: i32) -> ckpt_sys::Result<Frozen> {
    match Frozen::freeze_with(pid, ptrace::O_SUSPEND_SECCOMP) {
        Err(e) if e.is_permission() => Frozen::freeze(pid),
        r => r,
    }
}

fn freeze_all(root: i32, tree: bool) -> Result<Vec<Proc>, CaptureError> {
    let mut out: Vec<Proc> = Vec::new();
    let mut queue = std::collections::VecDeque::from([root]);
    while let Some(pid) = queue.pop_front() {
        if pid as u32 == std::process::id() {
            return Err(CaptureError::new(
                ErrorKind::Target,
                format!(
                    "the process tree of {root} contains ckpt-capture itself (pid {pid}); run it from outside the tree"
                ),
            ));
        }
        let stat = match procfs::stat(pid) {
            Ok(s) => s,
            Err(e) if e.is_gone() && pid != root => continue,
            Err(e) => return Err(CaptureError::sys(&format!("pid {pid}"), e)),
        };
        if stat.state == b'Z' || stat.state == b'X' {
            if pid == root {
                return Err(CaptureError::new(
                    ErrorKind::Target,
                    format!("pid {pid} is a zombie"),
                ));
            }
            out.push(Proc {
                pid,
                stat,
                frozen: None,
            });
            continue;
        }
        let frozen = match freeze_one(pid) {
            Ok(f) => f,
            Err(e) if e.is_gone() && pid != root => continue,
            Err(e) if e.is_permission() => {
                if let Some(t) = crate::uncarried::tracer_of(pid) {
                    return Err(CaptureError::new(
                        ErrorKind::Unsupported,
                        format!("pid {pid} is traced by pid {t} (a debugger or strace): ptrace relations are not carried, and a traced process cannot be seized"),
                    ));
                }
                return Err(CaptureError::new(
                    ErrorKind::Permission,
                    format!("cannot trace pid {pid}: {e} (ckpt-capture needs CAP_SYS_PTRACE or the same user and ptrace permission)"),
                ));
            }
            Err(e) if e.is_gone() => {
                return Err(CaptureError::new(
                    ErrorKind::NoSuchProcess,
                    format!("pid {pid} exited: {e}"),
                ))
            }
            Err(e) => return Err(CaptureError::sys(&format!("freeze pid {pid}"), e)),
        };
        if tree {
            let kids = procfs::children(pid).map_err(sys(format!("children of {pid}")))?;
            queue.extend(kids);
        }
        out.push(Proc {
            pid,
            stat,
            frozen: Some(frozen),
        });
    }
    Ok(out)
}

fn check_output(procs: &[Proc], opts: &Options) -> Result<(), CaptureError> {
    if opts.output.is_empty() {
        return Ok(());
    }
    for p in procs.iter().filter(|p| p.frozen.is_some()) {
        let fds = procfs::list_fds(p.pid).map_err(sys(format!("fds of {}", p.pid)))?;
        for fd in fds {
            let Ok(st) = files::stat_fd(p.pid, fd) else {
                continue;
            };
            for o in &opts.output {
                if st.st_dev != o.dev || st.st_ino != o.ino {
                    continue;
                }
                let fi = procfs::fdinfo(p.pid, fd).unwrap_or_default();
                let writes = fi.flags & O_ACCMODE != 0;
                if o.pipe || writes {
                    let what = if o.pipe { "a pipe" } else { "a file" };
                    return Err(CaptureError::new(
                        ErrorKind::Refused,
                        format!(
                            "refusing to write the image into {what} that pid {} itself holds as fd {fd}{}: the frozen target would deadlock or the image would be corrupted; write it elsewhere",
                            p.pid,
                            if o.pipe { "" } else { " for writing" }
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}

fn read_trim(path: &str) -> Vec<u8> {
    std::fs::read(path)
        .map(|mut v| {
            while v.last() == Some(&b'\n') {
                v.pop();
            }
            v
        })
        .unwrap_or_default()
}

fn header(root: i32) -> Header {
    let release = read_trim("/proc/sys/kernel/osrelease");
    let mut nums = String::from_utf8_lossy(&release)
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map(|x| x.parse::<u16>().unwrap_or(0))
        .collect::<Vec<_>>();
    nums.resize(3, 0);
    let mut extras = Extras::new();
    extras.set_u64("root_pid", root as u64);
    Header {
        revision: Revision::Native1,
        arch: Arch::X86_64,
        page_size: PAGE_SIZE as u32,
        kernel: Kernel {
            major: nums[0],
            minor: nums[1],
            patch: nums[2],
            release,
            version: read_trim("/proc/sys/kernel/version"),
            machine: std::env::consts::ARCH.as_bytes().to_vec(),
        },
        time: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        flags: 0,
        tool: "ckpt-capture".into(),
        tool_version: env!("CARGO_PKG_VERSION").into(),
        extras,
    }
}

fn ids4(s: Option<&String>) -> [u32; 4] {
    let mut a = [0u32; 4];
    if let Some(s) = s {
        for (i, v) in s.split_whitespace().take(4).enumerate() {
            a[i] = v.parse().unwrap_or(0);
        }
    }
    a
}

fn task_state(c: u8) -> u32 {
    match c {
        b'R' => 0,
        b'S' => 1,
        b'D' => 2,
        b'T' => 4,
        b't' => 8,
        b'Z' => 32,
        b'X' => 16,
        _ => 0,
    }
}

fn regs_of(r: &libc::user_regs_struct) -> Regs {
    Regs {
        r15: r.r15,
        r14: r.r14,
        r13: r.r13,
        r12: r.r12,
        rbp: r.rbp,
        rbx: r.rbx,
        r11: r.r11,
        r10: r.r10,
        r9: r.r9,
        r8: r.r8,
        rax: r.rax,
        rcx: r.rcx,
        rdx: r.rdx,
        rsi: r.rsi,
        rdi: r.rdi,
        orig_rax: r.orig_rax,
        rip: r.rip,
        cs: r.cs,
        eflags: r.eflags,
        rsp: r.rsp,
        ss: r.ss,
        fs_base: r.fs_base,
        gs_base: r.gs_base,
        ds: r.ds,
        es: r.es,
        fs: r.fs,
        gs: r.gs,
    }
}

/// What injection found out about a task.
#[derive(Default)]
struct Injected {
    sigactions: Vec<SigAction>,
    brk: Option<u64>,
    per_thread: HashMap<i32, Extras>,
}

fn u64_at(b: &[u8], off: usize) -> u64 {
    b.get(off..off + 8)
        .and_then(|s| s.try_into().ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}

const PR_GET_TID_ADDRESS: u64 = 40;

fn thread_extras(inj: &mut Injector, pid: i32, scratch: u64) -> ckpt_sys::Result<Extras> {
    let mut x = Extras::new();
    if inj.syscall(libc::SYS_sigaltstack, &[0, scratch + 0x100])? == 0 {
        let mut b = [0u8; 24];
        mem::read_remote(pid, scratch + 0x100, &mut b)?;
        x.set_u64("sigaltstack_sp", u64_at(&b, 0));
        x.set_u64("sigaltstack_flags", u64_at(&b, 8) & 0xffff_ffff);
        x.set_u64("sigaltstack_size", u64_at(&b, 16));
    }
    if inj.syscall(libc::SYS_prctl, &[PR_GET_TID_ADDRESS, scratch + 0x200])? == 0 {
        let mut b = [0u8; 8];
        mem::read_remote(pid, scratch + 0x200, &mut b)?;
        x.set_u64("clear_child_tid", u64::from_le_bytes(b));
    }
    Ok(x)
}

fn inject_all(pid: i32, tids: &[i32]) -> ckpt_sys::Result<Injected> {
    let mut out = Injected::default();
    let mut lead = Injector::new(tids[0])?;
    let scratch = lead.mmap_scratch(PAGE_SIZE as u64)?;
    let r = (|| -> ckpt_sys::Result<()> {
        for sig in 1..=NSIG {
            let rc = lead.syscall(libc::SYS_rt_sigaction, &[sig, 0, scratch, 8])?;
            let mut sa = SigAction::default();
            if rc == 0 {
                let mut b = [0u8; 32];
                mem::read_remote(pid, scratch, &mut b)?;
                sa = SigAction {
                    handler: u64_at(&b, 0),
                    flags: u64_at(&b, 8),
                    restorer: u64_at(&b, 16),
                    mask: u64_at(&b, 24),
                };
            }
            out.sigactions.push(sa);
        }
        let brk = lead.syscall(libc::SYS_brk, &[0])?;
        if brk > 0 {
            out.brk = Some(brk as u64);
        }
        out.per_thread
            .insert(tids[0], thread_extras(&mut lead, pid, scratch)?);
        for &tid in &tids[1..] {
            let mut inj = Injector::new(tid)?;
            let x = thread_extras(&mut inj, pid, scratch)?;
            inj.finish()?;
            out.per_thread.insert(tid, x);
        }
        Ok(())
    })();
    let un = lead.syscall(libc::SYS_munmap, &[scratch, PAGE_SIZE as u64]);
    lead.finish()?;
    r?;
    if un? != 0 {
        return Err(ckpt_sys::SysError::other(
            format!("pid {pid}"),
            "munmap of the scratch page failed",
        ));
    }
    Ok(out)
}

enum Store {
    Nothing,
    All,
    Scan(Select),
}

fn classify(m: &MapEntry) -> (VmaKind, Option<Vec<u8>>, Store) {
    let shared = m.shared();
    let path = m.path.clone();
    match path.as_deref() {
        None if shared => (VmaKind::SharedAnon, None, Store::Scan(Select::Present)),
        None => (VmaKind::Anon, None, Store::Scan(Select::Anon)),
        Some(b"[vdso]") => (VmaKind::Vdso, None, Store::All),
        Some(b"[vvar]") | Some(b"[vvar_vclock]") => (VmaKind::Vvar, None, Store::Nothing),
        Some(b"[heap]") => (VmaKind::Heap, None, Store::Scan(Select::Anon)),
        Some(b"[stack]") => (VmaKind::Stack, None, Store::Scan(Select::Anon)),
        Some(p) if p.starts_with(b"[anon") => {
            if shared {
                (
                    VmaKind::SharedAnon,
                    path.clone(),
                    Store::Scan(Select::Present),
                )
            } else {
                (VmaKind::Anon, path.clone(), Store::Scan(Select::Anon))
            }
        }
        Some(p) if p.starts_with(b"[") => (VmaKind::Other, path.clone(), Store::Nothing),
        Some(p) if shared && (p.starts_with(b"/dev/zero") || p.starts_with(b"/SYSV")) => (
            VmaKind::SharedAnon,
            path.clone(),
            Store::Scan(Select::Present),
        ),
        Some(p) if shared => {
            // Contents live in the file, unless the file is gone (deleted, memfd).
            let gone = p.ends_with(b" (deleted)") || p.starts_with(b"/memfd:");
            let st = if gone {
                Store::Scan(Select::Present)
            } else {
                Store::Nothing
            };
            (VmaKind::File, path.clone(), st)
        }
        Some(_) => (VmaKind::File, path.clone(), Store::Scan(Select::Anon)),
    }
}

#[inline]
fn is_zero(page: &[u8]) -> bool {
    for block in page.chunks_exact(64) {
        let mut acc = 0u64;
        for w in block.chunks_exact(8) {
            acc |= u64::from_ne_bytes(w.try_into().unwrap_or([1; 8]));
        }
        if acc != 0 {
            return false;
        }
    }
    true
}

/// Ranges of one VMA read by one `process_vm_readv` batch.
struct Batch {
    vma: usize,
    ranges: Vec<(u64, usize)>,
    len: usize,
}

struct PageEmitter<'s> {
    sink: &'s mut dyn EventSink,
    chunk: usize,
    zero: Option<ZeroRun>,
    stored: u64,
    zeros: u64,
}

impl PageEmitter<'_> {
    fn flush_zero(&mut self) -> Result<(), CaptureError> {
        if let Some(z) = self.zero.take() {
            self.zeros += z.count;
            self.sink.event(&Event::ZeroPages(z)).map_err(fmt_err)?;
        }
        Ok(())
    }

    fn pages(&mut self, addrs: &[u64], data: &[u8]) -> Result<(), CaptureError> {
        if addrs.is_empty() {
            return Ok(());
        }
        self.flush_zero()?;
        self.stored += addrs.len() as u64;
        self.sink
            .event(&Event::Pages(PageChunk {
                addrs: Addrs::from_u64s(addrs),
                data: Cow::Borrowed(data),
            }))
            .map_err(fmt_err)
    }

    /// Emit the pages of one batch: `ranges` were read into `buf` back to back.
    fn batch(&mut self, ranges: &[(u64, usize)], buf: &[u8]) -> Result<(), CaptureError> {
        let mut addrs: Vec<u64> = Vec::with_capacity(self.chunk);
        let mut chunk_off = 0usize;
        let mut off = 0usize;
        for &(a, l) in ranges {
            for i in 0..l / PAGE_SIZE {
                let addr = a + (i * PAGE_SIZE) as u64;
                let page = &buf[off..off + PAGE_SIZE];
                if is_zero(page) {
                    self.pages(&addrs, &buf[chunk_off..chunk_off + addrs.len() * PAGE_SIZE])?;
                    addrs.clear();
                    match &mut self.zero {
                        Some(z) if z.start + z.count * PAGE_SIZE as u64 == addr => z.count += 1,
                        _ => {
                            self.flush_zero()?;
                            self.zero = Some(ZeroRun {
                                start: addr,
                                count: 1,
                            });
                        }
                    }
                } else {
                    if addrs.is_empty() {
                        chunk_off = off;
                    }
                    addrs.push(addr);
                    if addrs.len() == self.chunk {
                        self.pages(&addrs, &buf[chunk_off..chunk_off + addrs.len() * PAGE_SIZE])?;
                        addrs.clear();
                    }
                }
                off += PAGE_SIZE;
            }
        }
        self.pages(&addrs, &buf[chunk_off..chunk_off + addrs.len() * PAGE_SIZE])
    }
}

#[allow(clippy::too_many_arguments)]
fn capture_task(
    p: &Proc,
    is_root: bool,
    opts: &Options,
    shared: &mut Shared,
    sink: &mut dyn EventSink,
    stats: &mut Stats,
    progress: &mut dyn Progress,
) -> Result<(), CaptureError> {
    let pid = p.pid;
    let ev = |sink: &mut dyn EventSink, e: Event<'_>| sink.event(&e).map_err(fmt_err);
    let status = procfs::status(&pid.to_string()).map_err(sys(format!("pid {pid}")))?;
    let mut tx = Extras::new();
    for (k, key) in [
        ("CapInh", "cap_inh"),
        ("CapPrm", "cap_prm"),
        ("CapEff", "cap_eff"),
        ("CapBnd", "cap_bnd"),
        ("CapAmb", "cap_amb"),
    ] {
        if let Some(v) = status.get(k) {
            tx.set_u64(key, procfs::hex_mask(v));
        }
    }
    for (k, key) in [("Seccomp", "seccomp_mode"), ("NoNewPrivs", "no_new_privs")] {
        if let Some(v) = status.get(k).and_then(|v| v.parse().ok()) {
            tx.set_u64(key, v);
        }
    }
    // The process-wide pending queue, read (not dequeued) through any stopped thread.
    if let Some(f) = &p.frozen {
        if let Some(&tid) = f.threads().first() {
            let q = ptrace::peek_siginfo(tid, true)
                .map_err(sys(format!("pid {pid}: shared pending signals")))?;
            if !q.is_empty() {
                tx.set_bytes("siginfo_shared", &q);
            }
        }
    }
    let real_ppid = p.stat.field(4) as i32;
    if is_root {
        tx.set_u64("real_ppid", real_ppid as u64);
    }
    if let Some(&sig) = shared.pdeath.get(&pid) {
        tx.set_u64("pdeath_signal", sig);
    }
    let task = Task {
        pid,
        tgid: pid,
        ppid: if is_root { 0 } else { real_ppid },
        pgid: p.stat.field(5) as i32,
        sid: p.stat.field(6) as i32,
        comm: p.stat.comm.clone(),
        state: task_state(p.stat.state),
        exit_state: if p.frozen.is_none() { 32 } else { 0 },
        exit_code: 0,
        exit_signal: p.stat.field(38) as u32,
        creds: Creds {
            uid: ids4(status.get("Uid")),
            gid: ids4(status.get("Gid")),
            groups: status
                .get("Groups")
                .map(|g| {
                    g.split_whitespace()
                        .filter_map(|x| x.parse().ok())
                        .collect()
                })
                .unwrap_or_default(),
        },
        extras: tx,
    };
    ev(sink, Event::Task(task))?;
    stats.tasks += 1;
    let Some(frozen) = &p.frozen else {
        return Ok(()); // a zombie: nothing more to capture
    };
    let tids = frozen.threads();

    // Threads: registers etc. first, before anything is injected.
    let mut threads = Vec::with_capacity(tids.len());
    for &tid in &tids {
        let ctx = format!("pid {pid} thread {tid}");
        let regs = ptrace::get_regs(tid).map_err(sys(&ctx))?;
        let xs = ptrace::get_xstate(tid).map_err(sys(&ctx))?;
        let tls = ptrace::get_tls(tid).map_err(sys(&ctx))?;
        let st = procfs::status(&format!("{pid}/task/{tid}")).map_err(sys(&ctx))?;
        let sigmask = st.get("SigBlk").map(|v| procfs::hex_mask(v)).unwrap_or(0);
        let mut x = Extras::new();
        if let Ok((head, len)) = ptrace::get_robust_list(tid) {
            x.set_u64("robust_list_head", head);
            x.set_u64("robust_list_len", len);
        }
        if let Some(v) = st.get("SigPnd") {
            x.set_u64("sigpending", procfs::hex_mask(v));
        }
        // Signals sent to this thread, with their siginfo, in queue order (not dequeued).
        let q = ptrace::peek_siginfo(tid, false).map_err(sys(format!("{ctx}: pending signals")))?;
        if !q.is_empty() {
            x.set_bytes("siginfo_pending", &q);
        }
        // rseq (glibc registers every thread): restore re-registers the same area.
        if let Ok(r) = ptrace::rseq_config(tid) {
            if r.ptr != 0 {
                x.set_u64("rseq_ptr", r.ptr);
                x.set_u64("rseq_len", r.size as u64);
                x.set_u64("rseq_sig", r.sig as u64);
            }
        }
        threads.push((
            tid,
            regs,
            Thread {
                tid,
                regs: regs_of(&regs),
                fpu: Some(Fpu {
                    kind: FpuKind::Xsave,
                    xfeatures: ptrace::xstate_xcr0(&xs),
                    data: xs,
                }),
                tls,
                sigmask,
                extras: x,
            },
        ));
    }
    let inj = inject_all(pid, &tids).map_err(sys(format!(
        "pid {pid}: injecting syscalls to read signal actions"
    )))?;
    for (tid, before, mut t) in threads {
        // The injector must have put every register back.
        let after = ptrace::get_regs(tid).map_err(sys(format!("pid {pid} thread {tid}")))?;
        if regs_of(&after) != regs_of(&before) {
            return Err(CaptureError::new(
                ErrorKind::Io,
                format!("pid {pid} thread {tid}: registers changed across injection"),
            ));
        }
        if let Some(x) = inj.per_thread.get(&tid) {
            for (k, v) in &x.0 {
                t.extras.0.insert(k.clone(), v.clone());
            }
        }
        ev(sink, Event::Thread(t))?;
        stats.threads += 1;
    }

    // mm
    let s = &p.stat;
    let maps = procfs::smaps(pid).map_err(sys(format!("pid {pid} smaps")))?;
    let heap_end = maps
        .iter()
        .find(|m| m.path.as_deref() == Some(b"[heap]"))
        .map(|m| m.end);
    let mm = Mm {
        start_code: s.ufield(26),
        end_code: s.ufield(27),
        start_data: s.ufield(45),
        end_data: s.ufield(46),
        start_brk: s.ufield(47),
        brk: inj.brk.or(heap_end).unwrap_or(s.ufield(47)),
        start_stack: s.ufield(28),
        arg_start: s.ufield(48),
        arg_end: s.ufield(49),
        env_start: s.ufield(50),
        env_end: s.ufield(51),
        auxv: procfs::auxv(pid).map_err(sys(format!("pid {pid} auxv")))?,
        exe: procfs::readlink(&format!("/proc/{pid}/exe")).ok(),
        personality: procfs::personality(pid).unwrap_or(0),
        extras: Extras::new(),
    };
    ev(sink, Event::Mm(mm))?;

    // VMAs: plan (presence) first, so the total is known for progress.
    let mut scan = PageScan::open(pid).map_err(sys(format!("pid {pid}")))?;
    let mut plan = Vec::with_capacity(maps.len());
    let mut total_pages = 0u64;
    for m in &maps {
        let (kind, file, store) = classify(m);
        let ranges: Vec<(u64, u64)> = match store {
            Store::Nothing => Vec::new(),
            Store::All => vec![(m.start, m.end)],
            Store::Scan(sel) => scan.scan(m.start, m.end, sel).map_err(sys(format!(
                "pid {pid} page scan of {:#x}-{:#x}",
                m.start, m.end
            )))?,
        };
        total_pages += ranges
            .iter()
            .map(|r| (r.1 - r.0) / PAGE_SIZE as u64)
            .sum::<u64>();
        let (flags, unknown) = procfs::vm_flags_bits(&m.vm_flags);
        let mut x = Extras::new();
        x.set_u64("dev_major", m.major as u64);
        x.set_u64("dev_minor", m.minor as u64);
        x.set_u64("ino", m.inode);
        if !unknown.is_empty() {
            x.set_bytes("vm_flags_unknown", unknown.join(" ").as_bytes());
        }
        let vma = Vma {
            start: m.start,
            end: m.end,
            prot: m.prot(),
            flags,
            pgoff: m.offset / PAGE_SIZE as u64,
            kind,
            file,
            extras: x,
        };
        plan.push((vma, ranges));
    }
    progress.add_total(total_pages);
    let memf = mem::open_mem(pid, false).map_err(sys(format!("pid {pid}")))?;
    let batch_bytes = opts.batch_bytes.clamp(PAGE_SIZE, 64 << 20) & !(PAGE_SIZE - 1);
    // Cut the selected ranges into read batches (at most batch_bytes and MAX_IOV ranges).
    let mut batches: Vec<Batch> = Vec::new();
    for (vi, (_, ranges)) in plan.iter().enumerate() {
        let mut cur = Batch {
            vma: vi,
            ranges: Vec::new(),
            len: 0,
        };
        for &(mut a, e) in ranges {
            while a < e {
                let take = ((e - a) as usize).min(batch_bytes - cur.len);
                cur.ranges.push((a, take));
                cur.len += take;
                a += take as u64;
                if cur.len == batch_bytes || cur.ranges.len() == mem::MAX_IOV {
                    let full = std::mem::replace(
                        &mut cur,
                        Batch {
                            vma: vi,
                            ranges: Vec::new(),
                            len: 0,
                        },
                    );
                    batches.push(full);
                }
            }
        }
        if cur.len > 0 {
            batches.push(cur);
        }
    }
    let mut em = PageEmitter {
        sink,
        chunk: opts.chunk_pages.clamp(1, 4096),
        zero: None,
        stored: 0,
        zeros: 0,
    };
    // A reader thread fills one buffer with process_vm_readv while this thread checks,
    // encodes and writes the other (pipelined; two buffers in flight).
    if !opts.pipeline {
        // One buffer, read then emit: the data stays in this core's cache between the
        // read, the checks and the write when batches are small.
        let mut buf = vec![0u8; batch_bytes];
        let mut bi = 0;
        for (vi, (vma, _)) in plan.iter().enumerate() {
            em.sink.event(&Event::Vma(vma.clone())).map_err(fmt_err)?;
            stats.vmas += 1;
            while bi < batches.len() && batches[bi].vma == vi {
                let b = &batches[bi];
                read_batch(pid, &b.ranges, &mut buf[..b.len], &memf, vma.start, vma.end)?;
                em.batch(&b.ranges, &buf[..b.len])?;
                progress.advance((b.len / PAGE_SIZE) as u64);
                bi += 1;
            }
            em.flush_zero()?;
            em.sink.event(&Event::VmaEnd).map_err(fmt_err)?;
        }
    } else {
        std::thread::scope(|scope| -> Result<(), CaptureError> {
            let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();
            let (full_tx, full_rx) = mpsc::sync_channel::<(Vec<u8>, Result<(), CaptureError>)>(2);
            for _ in 0..2 {
                let _ = free_tx.send(vec![0u8; batch_bytes]);
            }
            let (batches_ref, memf_ref, plan_ref) = (&batches, &memf, &plan);
            scope.spawn(move || {
                for b in batches_ref {
                    let Ok(mut buf) = free_rx.recv() else {
                        return;
                    };
                    let v = &plan_ref[b.vma].0;
                    let r = read_batch(pid, &b.ranges, &mut buf[..b.len], memf_ref, v.start, v.end);
                    let failed = r.is_err();
                    if full_tx.send((buf, r)).is_err() || failed {
                        return;
                    }
                }
            });
            let mut bi = 0;
            for (vi, (vma, _)) in plan.iter().enumerate() {
                em.sink.event(&Event::Vma(vma.clone())).map_err(fmt_err)?;
                stats.vmas += 1;
                while bi < batches.len() && batches[bi].vma == vi {
                    let (buf, r) = full_rx.recv().map_err(|_| {
                        CaptureError::new(ErrorKind::Io, format!("pid {pid}: page reader stopped"))
                    })?;
                    r?;
                    let b = &batches[bi];
                    em.batch(&b.ranges, &buf[..b.len])?;
                    progress.advance((b.len / PAGE_SIZE) as u64);
                    let _ = free_tx.send(buf);
                    bi += 1;
                }
                em.flush_zero()?;
                em.sink.event(&Event::VmaEnd).map_err(fmt_err)?;
            }
            Ok(())
        })?;
    }
    stats.pages_stored += em.stored;
    stats.zero_pages += em.zeros;

    // fs, signals, limits
    let umask = status
        .get("Umask")
        .and_then(|u| u32::from_str_radix(u, 8).ok())
        .unwrap_or(0o022);
    ev(
        sink,
        Event::Fs(Fs {
            cwd: procfs::readlink(&format!("/proc/{pid}/cwd"))
                .map_err(sys(format!("pid {pid}")))?,
            root: procfs::readlink(&format!("/proc/{pid}/root"))
                .map_err(sys(format!("pid {pid}")))?,
            umask,
        }),
    )?;
    ev(sink, Event::SigActions(inj.sigactions))?;
    let rl = procfs::rlimits(pid).map_err(sys(format!("pid {pid}")))?;
    ev(
        sink,
        Event::Rlimits(
            rl.into_iter()
                .map(|(cur, max)| Rlimit { cur, max })
                .collect(),
        ),
    )?;

    capture_fds(pid, opts, shared, sink)
}

fn read_batch(
    pid: i32,
    batch: &[(u64, usize)],
    buf: &mut [u8],
    memf: &std::fs::File,
    vs: u64,
    ve: u64,
) -> Result<(), CaptureError> {
    mem::read_ranges(pid, batch, buf, Some(memf)).map_err(sys(format!(
        "pid {pid}: reading pages of VMA {vs:#x}-{ve:#x}"
    )))
}

fn capture_fds(
    pid: i32,
    opts: &Options,
    shared: &mut Shared,
    sink: &mut dyn EventSink,
) -> Result<(), CaptureError> {
    let fds = procfs::list_fds(pid).map_err(sys(format!("pid {pid} fds")))?;
    for fd in fds {
        let ctx = format!("pid {pid} fd {fd}");
        let link = procfs::readlink(&format!("/proc/{pid}/fd/{fd}")).map_err(sys(&ctx))?;
        let fi = procfs::fdinfo(pid, fd).map_err(sys(&ctx))?;
        let st = files::stat_fd(pid, fd).map_err(sys(&ctx))?;
        let fmt = st.st_mode & libc::S_IFMT;
        let (kind, unsupported) = if link.starts_with(b"anon_inode:") {
            (FileKind::Other, true)
        } else {
            match fmt {
                libc::S_IFREG => (FileKind::Regular, false),
                libc::S_IFDIR => (FileKind::Directory, false),
                libc::S_IFCHR => (FileKind::CharDevice, false),
                libc::S_IFIFO if link.starts_with(b"pipe:") => (FileKind::Pipe, false),
                libc::S_IFIFO => (FileKind::Fifo, false),
                libc::S_IFSOCK => (FileKind::Socket, true),
                _ => (FileKind::Other, true),
            }
        };
        if unsupported && !opts.allow_unsupported {
            let what = if kind == FileKind::Socket {
                "socket".to_string()
            } else {
                let l = String::from_utf8_lossy(&link);
                l.strip_prefix("anon_inode:")
                    .map(|s| s.trim_matches(|c| c == '[' || c == ']').to_string())
                    .unwrap_or_else(|| "special file".into())
            };
            return Err(CaptureError::new(
                ErrorKind::Unsupported,
                format!(
                    "pid {pid} fd {fd} is a {what} ({}), which ckpt-capture cannot capture; --allow-unsupported records it as unsupported",
                    String::from_utf8_lossy(&link)
                ),
            ));
        }
        let cloexec = fi.flags & O_CLOEXEC != 0;
        let (dev, ino) = (st.st_dev, st.st_ino);
        // The same open file description seen before (dup, fork)?
        let mut existing = None;
        for &(p2, fd2, d2, i2, id) in &shared.files {
            if d2 == dev && i2 == ino && files::same_file(p2, fd2, pid, fd).map_err(sys(&ctx))? {
                existing = Some(id);
                break;
            }
        }
        let file_id = match existing {
            Some(id) => id,
            None => {
                let mut pipe = None;
                if matches!(kind, FileKind::Pipe | FileKind::Fifo) {
                    pipe = Some(match shared.pipes.get(&(dev, ino)) {
                        Some(&id) => id,
                        None => {
                            let (data, cap) = files::peek_pipe(pid, fd).map_err(sys(&ctx))?;
                            let _ = cap;
                            let id = shared.id();
                            sink.event(&Event::Pipe(Pipe {
                                id,
                                data: Cow::Owned(data),
                            }))
                            .map_err(fmt_err)?;
                            shared.pipes.insert((dev, ino), id);
                            id
                        }
                    });
                }
                let id = shared.id();
                let mut x = Extras::new();
                x.set_u64("mnt_id", fi.mnt_id);
                x.set_u64("dev", dev);
                x.set_u64("ino", ino);
                if unsupported {
                    x.set_u64("unsupported", 1);
                }
                let path = if kind == FileKind::Pipe {
                    Vec::new()
                } else {
                    link.clone()
                };
                sink.event(&Event::File(File {
                    id,
                    kind,
                    path,
                    flags: fi.flags & !O_CLOEXEC,
                    mode: st.st_mode,
                    pos: fi.pos,
                    pipe,
                    extras: x,
                }))
                .map_err(fmt_err)?;
                shared.files.push((pid, fd, dev, ino, id));
                id
            }
        };
        sink.event(&Event::Fd(Fd {
            fd,
            cloexec,
            file: file_id,
        }))
        .map_err(fmt_err)?;
    }
    Ok(())
}
