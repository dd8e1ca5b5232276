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
//!
//! Files: `freeze` (freezing the targets, refusals before anything is read), `collect`
//! (reading state from procfs and by ptrace/injection), `task` (the per-task sequence),
//! `fds` (descriptors, files, pipes) and `emit` (page events: batches, zero runs).

use crate::{CaptureError, ErrorKind, Leave, Options, Producer, Progress, Stats};
use ckpt_format::{
    Addrs, Arch, Creds, Event, EventSink, Extras, Fd, File, FileKind, Fpu, FpuKind, Fs, Header,
    Kernel, Mm, PageChunk, Pipe, Regs, Revision, Rlimit, SigAction, Task, Thread, Vma, VmaKind,
    ZeroRun,
};
use ckpt_format::{
    Capabilities, ClearChildTid, FileIdentity, FileRecords, MapIdentity, ParentDeathSignal,
    PendingSignals, RealParent, RobustList, Rseq, Security, SharedPending, SigAltStack, SigInfo,
    TaskRecords, ThreadRecords, UnknownVmFlags, Unsupported, VmaRecords,
};
use ckpt_format::{ExeContents, InodeOf, MapContents, PosixLocks, Tty};
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

mod collect;
mod contents;
mod emit;
mod fds;
mod freeze;
mod task;

use collect::*;
pub(crate) use contents::{is_gone, MAX_CONTENTS};
use emit::*;
use fds::capture_fds;
use freeze::*;
use task::capture_task;

// For the pre-copy pass (crate::precopy), which reads memory the same way.
pub(crate) use collect::{classify, header, Store};
pub(crate) use emit::{batches_of, vma_of, PageEmitter};
pub(crate) use freeze::freeze_one;

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
    /// `--parent`: the image this capture is an increment of, and where it is written.
    parent: Option<(std::path::PathBuf, Option<std::path::PathBuf>)>,
    /// With [`Leave::Killed`]: the sockets read (TCP connections in repair mode, the net
    /// lock), committed by [`Producer::after_commit`] once the targets are killed.
    socks: Option<crate::sockets::Hold>,
}

impl LiveCapture {
    /// This capture as an increment of the image `parent` (a pre-copy pass of the same
    /// process, `--parent`): pages unchanged since are kept there (crate::precopy). `out`
    /// is the image's path, for the parent's path hint.
    pub fn increment_of(
        mut self,
        parent: std::path::PathBuf,
        out: Option<std::path::PathBuf>,
    ) -> LiveCapture {
        self.parent = Some((parent, out));
        self
    }

    /// A capture of `opts.pid` (and its descendants with `opts.tree`).
    pub fn new(opts: Options) -> LiveCapture {
        LiveCapture {
            opts,
            parent: None,
            held: Vec::new(),
            socks: None,
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
    /// Timers to record, by pid (read by [`crate::uncarried`]).
    timers: HashMap<i32, ckpt_sys::timers::Timers>,
    /// Process attributes by pid, thread attributes by tid (read by [`crate::uncarried`]).
    proc_attrs: HashMap<i32, ckpt_format::ProcessAttrs>,
    thread_attrs: HashMap<i32, ckpt_format::ThreadAttrs>,
    /// Seccomp filters by tid, securebits by pid (read by [`crate::uncarried`]).
    seccomp: HashMap<i32, ckpt_format::SeccompFilters>,
    securebits: HashMap<i32, u32>,
    /// Owners of signal-driven I/O by (pid, fd) (read by [`crate::uncarried`]).
    fown: HashMap<(i32, i32), ckpt_format::Fown>,
    /// An increment over a parent image (`--parent`, crate::precopy).
    split: Option<crate::precopy::Split>,
    /// Inodes carried with their contents: (dev, ino) -> file object id.
    inodes: HashMap<(u64, u64), u32>,
    /// Inodes found but not emitted yet.
    pending_inodes: Vec<contents::Inode>,
    /// Bytes of file contents stored.
    contents_bytes: u64,
    /// The sockets of the targets, read before anything is written.
    socks: crate::sockets::Hold,
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
        // An increment: tracking taken over and the parent chain indexed before freezing.
        let split = match &self.parent {
            Some((pp, out)) => Some(crate::precopy::prepare(
                pid,
                Some(pp),
                out.as_deref(),
                crate::precopy::take_over(pid),
                false,
            )?),
            None => None,
        };
        let frozen_at = Instant::now();
        let mut procs = freeze_all(pid, self.opts.tree)?;
        check_output(&procs, &self.opts)?;
        // The header first: a refusal below then leaves a stream that says why (Header,
        // Error, Tail) instead of one that is not an image at all.
        let mut checker = Collector::for_checks();
        let mut h = header();
        h.parent = split.as_ref().and_then(|s| s.parent.clone());
        let hdr = Event::Header(h);
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
        // Sockets: read once now (TCP peers held off first with --kill).
        let live: Vec<i32> = procs
            .iter()
            .filter(|p| p.frozen.is_some())
            .map(|p| p.pid)
            .collect();
        let mut socks = crate::sockets::Hold::read(
            &live,
            self.opts.leave == Leave::Killed,
            self.opts.disconnect_sockets,
        )?;
        let mut refusals: Vec<String> = Vec::new();
        if !self.opts.allow_unsupported {
            if let Err(e) = refuse_unsupported(&procs) {
                refusals.push(e.msg);
            }
            if !socks.refusals.is_empty() {
                refusals.push(format!(
                    "{} socket(s) ckpt-restore could not rebuild (--allow-unsupported records them as left out):\n  {}",
                    socks.refusals.len(),
                    socks.refusals.join("\n  ")
                ));
            }
        } else {
            for r in &socks.refusals {
                stats.warnings.push(format!("left out: {r}"));
            }
        }
        if let Some(e) = found.refusal() {
            refusals.push(e.msg);
        }
        if !refusals.is_empty() {
            let kill = if self.opts.leave == Leave::Killed {
                "not killed, left running: "
            } else {
                ""
            };
            return Err(CaptureError::new(
                ErrorKind::Unsupported,
                format!("{kill}{}", refusals.join("\n")),
            ));
        }
        stats.warnings.extend(socks.warnings.iter().cloned());
        // The restorability check sees every event as it is written (page contents
        // are not kept but the vdso's), so it costs no second pass over the image.
        {
            let mut tee = Tee {
                sink,
                check: &mut checker,
            };
            let mut shared = Shared {
                pdeath: found.pdeath,
                timers: found.timers,
                proc_attrs: found.proc_attrs,
                thread_attrs: found.thread_attrs,
                seccomp: found.seccomp,
                securebits: found.securebits,
                fown: found.fown,
                split,
                socks,
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
            socks = std::mem::take(&mut shared.socks);
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
                self.socks = Some(socks);
                return Ok(());
            }
        };
        release_all(&mut procs, how)
    }

    fn after_commit(&mut self) -> Result<(), CaptureError> {
        let mut procs = std::mem::take(&mut self.held);
        release_all(&mut procs, Release::Kill)?;
        // Killed: the connections' duplicates close in repair mode (nothing sent), the
        // net lock stays until the restore.
        if let Some(s) = self.socks.take() {
            s.commit();
        }
        Ok(())
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
