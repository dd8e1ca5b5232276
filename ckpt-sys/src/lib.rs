//! `ckpt-sys` — the Linux x86-64 plumbing shared by `ckpt-capture` and `ckpt-restore`.
//!
//! Everything here talks to the kernel about *another* process, identified by pid/tid,
//! that we trace with ptrace. It has no knowledge of the image format. The layers:
//!
//! | module | what |
//! |---|---|
//! | [`ptrace`] | thin, safe wrappers over single ptrace requests: seize, interrupt, wait, GETREGS/SETREGS, `NT_X86_XSTATE` get/set, GET/SET_THREAD_AREA, PEEK/POKE, single-step, detach |
//! | [`freeze`] | [`freeze::Frozen`]: a whole process with every thread seized and stopped (re-scanning `/proc/PID/task` until stable); releases every thread on drop |
//! | [`inject`] | [`inject::Injector`]: run system calls *inside* a stopped thread (a `syscall` instruction found in the vDSO or written at RIP), restoring registers and text afterwards; scratch memory via injected `mmap` |
//! | [`mem`] | `process_vm_readv`/`writev` in large batches, `/proc/PID/mem` fallback, page presence from the `PAGEMAP_SCAN` ioctl or `/proc/PID/pagemap` |
//! | [`timers`] | interval timers and POSIX timers with their time left, by injected `getitimer`/`timer_gettime`/`timer_getoverrun` |
//! | [`procfs`] | parsers for `/proc/PID/{stat,status,smaps,fdinfo/N,auxv,limits,task,task/*/children}` |
//! | [`anon`] | anonymous-inode files (eventfd, eventpoll, timerfd, signalfd, inotify, pidfd ...): kind from the link, state from fdinfo, `kcmp(KCMP_EPOLL_TFD)` |
//! | [`attrs`] | scheduling attributes, affinity, I/O priority, `oom_score_adj`, `coredump_filter`, timer slack; the POSIX timers of `/proc/PID/timers` |
//! | [`track`] | dirty-page tracking for pre-copy: userfaultfd asynchronous write-protect + `PAGEMAP_SCAN` written pages |
//! | [`sock`] | sockets through a descriptor of ours: [`sock::take_fd`] (`pidfd_getfd` of a target's socket), family/type/protocol, addresses ([`sock::Addr`]), options ([`sock::Options`]) read and applied, socket/bind/connect/listen/shutdown |
//! | [`sockdiag`] | `NETLINK_SOCK_DIAG`: unix sockets (peer inode, name, accept-queue peers, backlog, shutdown) and TCP/UDP sockets (state, endpoints, queues, backlog) |
//! | [`sockets`] | one socket of a frozen process read whole ([`sockets::snapshot`]: addresses, options, state, queues, TCP repair dump) and the reasons a restore could not rebuild a tree's sockets ([`sockets::refusals`]) |
//! | [`unixq`] | a unix socket's receive queue read without consuming it (`SO_PEEK_OFF` + `MSG_PEEK`, descriptors in flight included) and written back (`SCM_RIGHTS`) |
//! | [`tcp`] | established TCP connections dumped and rebuilt with `TCP_REPAIR` (sequence numbers, queues, window, MSS/wscale/SACK/timestamps) |
//! | [`netlock`] | an nftables table of our own dropping a connection's segments while its process is down, so the peer sees no reset |
//! | [`inode`] | files that exist only while open (deleted files, memfds): data runs, seals, re-creation, reopening through `/proc/self/fd`; flock, OFD and POSIX locks |
//! | [`files`] | fd inspection: `stat` through `/proc/PID/fd/N`, `kcmp(KCMP_FILE)`, peeking a pipe's buffered bytes without consuming them (`tee(2)`) |
//!
//! All functions return [`Result`] with a [`SysError`] that names the operation, the
//! pid/tid or path, and the errno, so a caller can both print it and classify it
//! ([`SysError::errno`]).
//!
//! # A restore developer's tour
//! ```no_run
//! use ckpt_sys::{freeze::Frozen, inject::Injector, ptrace};
//! # fn main() -> ckpt_sys::Result<()> {
//! let pid = 1234;
//! let mut frozen = Frozen::freeze(pid)?;            // every thread stopped
//! let tid = frozen.threads()[0];
//! let regs = ptrace::get_regs(tid)?;                // user_regs_struct
//! let mut inj = Injector::new(tid)?;                // saves regs, finds a `syscall`
//! let addr = inj.mmap_scratch(4096)?;               // RW anonymous page in the target
//! ckpt_sys::mem::write_remote(pid, addr, b"hello")?;
//! inj.syscall(libc::SYS_munmap, &[addr, 4096])?;
//! inj.finish()?;                                    // registers (and text) restored
//! ptrace::set_regs(tid, &regs)?;
//! frozen.release(ckpt_sys::freeze::Release::Run)?;  // detach every thread
//! # Ok(()) }
//! ```
//!
//! # Notes for restore
//! * **Tracer thread.** ptrace binds a tracee to the *thread* that seized it: do every
//!   `ptrace::*` call, [`freeze::Frozen`] and [`inject::Injector`] for a given target from one
//!   thread. Memory calls ([`mem`]) and /proc parsing may run on any thread.
//! * **Registers.** `ckpt_format::Regs` has exactly the order of `libc::user_regs_struct`;
//!   load them with [`ptrace::set_regs`] while the thread is in a ptrace stop, *after* every
//!   injected syscall (injection clobbers registers and restores the ones it saved). Load the
//!   XSAVE area with [`ptrace::set_xstate`] (the kernel checks its size and XCR0 against the
//!   CPU: an image from a CPU with other xfeatures fails with `EINVAL`) and the TLS slots with
//!   [`ptrace::set_tls`] (each 16-byte `user_desc` carries its GDT entry number).
//!   `fs_base`/`gs_base` are part of `user_regs_struct` and set by `set_regs`.
//! * **Mid-syscall threads.** A thread captured in a blocking syscall has `orig_rax` ≥ 0 and
//!   `rax` ∈ {-512, -513, -514, -516}. Set exactly those registers, then resume with
//!   `ptrace::detach`/`ptrace::cont`: the kernel rewinds `rip` by 2 and re-issues the call.
//!   For -516 (`-ERESTART_RESTARTBLOCK`) the kernel's `restart_block` is not in the image;
//!   set `rax = -EINTR (-4)` and `orig_rax = -1` instead (the call returns EINTR), as CRIU does.
//!   See docs/CAPTURE.md.
//! * **Building the address space from outside.** With an [`inject::Injector`] on a stopped
//!   thread of the new process: `syscall(SYS_mmap, [addr, len, prot, MAP_FIXED|..., fd, off])`
//!   (files: open them in the target by injecting `open` with the path written into a scratch
//!   page via [`mem::write_remote`]), then write page contents with [`mem::write_remote`]
//!   (falls back to `/proc/PID/mem`, which also writes read-only private mappings, so map with
//!   the final protection and write afterwards). `munmap`/`mprotect`/`brk`/`prctl(PR_SET_MM,
//!   PR_SET_MM_MAP)` the same way (PR_SET_MM_MAP works without CAP_SYS_RESOURCE; the per-field
//!   PR_SET_MM calls do not on this machine kind).
//! * **Signals, sigaltstack, tid address.** Inject `rt_sigaction(sig, scratch, NULL, 8)` with
//!   the `struct sigaction` (handler, flags, restorer, mask: 4 u64) written into scratch;
//!   `sigaltstack` and `set_tid_address` per thread; `rt_sigprocmask(SIG_SETMASK, ...)` per
//!   thread for the blocked mask; `set_robust_list` per thread.
//! * **Inspecting results.** [`procfs::maps`]/[`procfs::smaps`], [`procfs::fdinfo`] and
//!   [`mem::PageScan`] read back what was built, for verification tests.
#![deny(missing_docs)]

pub mod anon;
pub mod attrs;
pub mod files;
pub mod freeze;
pub mod inject;
pub mod inode;
pub mod mem;
pub mod netlock;
pub mod procfs;
pub mod ptrace;
pub mod sock;
pub mod sockdiag;
pub mod sockets;
pub mod tcp;
pub mod timers;
pub mod track;
pub mod tty;
pub mod unixq;

use std::fmt;
use std::io;

/// Page size on x86-64.
pub const PAGE_SIZE: usize = 4096;

/// An error from a system facility: what we tried, on what, and the errno.
#[derive(Debug)]
pub struct SysError {
    /// The operation and its target, e.g. `"PTRACE_SEIZE tid 1234"`.
    pub what: String,
    /// The errno (0 when the error is not an errno, e.g. a parse error).
    pub errno: i32,
    /// Extra detail (parse errors, unexpected states).
    pub detail: String,
}

/// Result of every fallible call in this crate.
pub type Result<T> = std::result::Result<T, SysError>;

impl SysError {
    /// An error from `errno` after operation `what`.
    pub fn errno(what: impl Into<String>, errno: i32) -> SysError {
        SysError {
            what: what.into(),
            errno,
            detail: String::new(),
        }
    }
    /// An error from the last OS error.
    pub fn last(what: impl Into<String>) -> SysError {
        SysError::errno(what, io::Error::last_os_error().raw_os_error().unwrap_or(0))
    }
    /// An error from an `io::Error`.
    pub fn io(what: impl Into<String>, e: &io::Error) -> SysError {
        SysError {
            what: what.into(),
            errno: e.raw_os_error().unwrap_or(0),
            detail: if e.raw_os_error().is_some() {
                String::new()
            } else {
                e.to_string()
            },
        }
    }
    /// A non-errno error (unexpected value, parse failure).
    pub fn other(what: impl Into<String>, detail: impl Into<String>) -> SysError {
        SysError {
            what: what.into(),
            errno: 0,
            detail: detail.into(),
        }
    }
    /// True when the target process or thread does not exist (any more): `ESRCH`, or `ENOENT` from /proc.
    pub fn is_gone(&self) -> bool {
        self.errno == libc::ESRCH || self.errno == libc::ENOENT
    }
    /// True for `EPERM`/`EACCES`.
    pub fn is_permission(&self) -> bool {
        self.errno == libc::EPERM || self.errno == libc::EACCES
    }
    /// True when the kernel lacks the facility (`ENOSYS`, `ENOTTY` from an ioctl, `EINVAL` on a request it does not know).
    pub fn is_unsupported(&self) -> bool {
        self.errno == libc::ENOSYS || self.errno == libc::ENOTTY || self.errno == libc::EOPNOTSUPP
    }
}

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.what)?;
        if self.errno != 0 {
            write!(f, ": {}", io::Error::from_raw_os_error(self.errno))?;
        }
        if !self.detail.is_empty() {
            write!(f, ": {}", self.detail)?;
        }
        Ok(())
    }
}

impl std::error::Error for SysError {}

/// Read the last OS errno.
pub(crate) fn last_errno() -> i32 {
    io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Helpers shared by this crate's unit tests.
#[cfg(test)]
pub(crate) mod testutil {
    /// Runs `f` until it stops failing with `EADDRINUSE`, for up to ten seconds.
    ///
    /// Tests that close a socket and rebuild one on the same address race with other
    /// tests of the same binary that spawn programs: a child between `fork` and `exec`
    /// holds a copy of every descriptor (close-on-exec or not), so the closed socket's
    /// address stays taken for that moment. Any other error, or a busy address after ten
    /// seconds, is returned as it is.
    pub fn when_address_free<T>(mut f: impl FnMut() -> crate::Result<T>) -> crate::Result<T> {
        let until = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match f() {
                Err(e) if e.errno == libc::EADDRINUSE && std::time::Instant::now() < until => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                r => return r,
            }
        }
    }
}
