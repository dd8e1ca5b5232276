//! Single ptrace requests, wrapped safely.
//!
//! Every function takes a *tid* (a thread id; the thread-group leader's tid is the pid)
//! and must be called by the tracer thread that seized it (ptrace is per tracer
//! *thread*). Registers are `libc::user_regs_struct`, the layout of `PTRACE_GETREGS`
//! (the same order as `ckpt_format::Regs`).
//!
//! # Stops
//! A seized thread stopped by [`interrupt`] reports `PTRACE_EVENT_STOP` (event 128) with
//! `SIGTRAP` (or the job-control stop signal if it was already group-stopped). A
//! thread stopped inside a blocking system call shows `orig_rax` = the syscall number
//! and `rax` = `-ERESTARTSYS` (-512), `-ERESTARTNOINTR` (-513), `-ERESTARTNOHAND`
//! (-514) or `-ERESTART_RESTARTBLOCK` (-516): resuming it with exactly these registers
//! makes the kernel restart the call (see `docs/CAPTURE.md`).

use crate::{last_errno, Result, SysError};
use libc::{c_long, c_void, pid_t};

/// `PTRACE_O_*` option: report clone events (not used by the freezer, offered for restore).
pub const O_TRACECLONE: u64 = libc::PTRACE_O_TRACECLONE as u64;
/// `PTRACE_O_TRACESYSGOOD`.
pub const O_TRACESYSGOOD: u64 = libc::PTRACE_O_TRACESYSGOOD as u64;
/// `PTRACE_O_SUSPEND_SECCOMP`: seccomp filters do not apply to the tracee while traced
/// (requires `CAP_SYS_ADMIN`), so injected syscalls are never filtered.
pub const O_SUSPEND_SECCOMP: u64 = 1 << 21;
/// `PTRACE_EVENT_STOP`: the event of a stop caused by `PTRACE_INTERRUPT` or a group stop.
pub const EVENT_STOP: i32 = 128;
/// `NT_X86_XSTATE`, the regset of the full XSAVE area.
pub const NT_X86_XSTATE: usize = 0x202;
/// `PTRACE_GET_THREAD_AREA` (x86).
pub const PTRACE_GET_THREAD_AREA: u32 = 25;
/// `PTRACE_SET_THREAD_AREA` (x86).
pub const PTRACE_SET_THREAD_AREA: u32 = 26;
/// First GDT entry number of the TLS slots on x86-64 (`GDT_ENTRY_TLS_MIN`).
pub const GDT_ENTRY_TLS_MIN: u32 = 12;
/// Number of TLS slots (`GDT_ENTRY_TLS_ENTRIES`).
pub const GDT_ENTRY_TLS_ENTRIES: u32 = 3;
/// Size of one `struct user_desc` in bytes.
pub const USER_DESC_SIZE: usize = 16;
/// Offset of XCR0 (the saved feature mask) inside an `NT_X86_XSTATE` area: the first
/// 8 bytes of the FXSAVE `sw_reserved` field.
pub const XSTATE_XCR0_OFFSET: usize = 464;
/// Size of the buffer offered to `PTRACE_GETREGSET NT_X86_XSTATE` (large enough for AMX).
pub const XSTATE_MAX: usize = 64 * 1024;

/// What `waitpid` reported for a traced thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WaitStatus {
    /// Stopped with signal `sig`; `event` is the ptrace event (`status >> 16`), 0 for a
    /// signal-delivery stop.
    Stopped {
        /// The stop signal.
        sig: i32,
        /// The ptrace event, e.g. [`EVENT_STOP`].
        event: i32,
    },
    /// Exited with this code.
    Exited(i32),
    /// Killed by this signal.
    Signaled(i32),
}

fn req(what: &str, r: u32, tid: pid_t, addr: usize, data: usize) -> Result<c_long> {
    // SAFETY: ptrace with integer/pointer arguments; every caller passes either plain
    // integers or a pointer to a live buffer of the size the request writes.
    let rc = unsafe { libc::ptrace(r, tid, addr as *mut c_void, data as *mut c_void) };
    if rc == -1 {
        let e = last_errno();
        // PEEK requests may legitimately return -1; callers of those clear errno first.
        if e != 0 {
            return Err(SysError::errno(format!("{what} tid {tid}"), e));
        }
    }
    Ok(rc)
}

/// `PTRACE_SEIZE` with `options` (`PTRACE_O_*` bits). Does not stop the thread.
pub fn seize(tid: pid_t, options: u64) -> Result<()> {
    req("PTRACE_SEIZE", libc::PTRACE_SEIZE, tid, 0, options as usize).map(|_| ())
}

/// `PTRACE_SETOPTIONS` (`PTRACE_O_*` bits) on a stopped tracee.
pub fn set_options(tid: pid_t, options: u64) -> Result<()> {
    req(
        "PTRACE_SETOPTIONS",
        libc::PTRACE_SETOPTIONS,
        tid,
        0,
        options as usize,
    )
    .map(|_| ())
}

/// `PTRACE_INTERRUPT`: ask a seized thread to stop; wait for it with [`wait`].
pub fn interrupt(tid: pid_t) -> Result<()> {
    req("PTRACE_INTERRUPT", libc::PTRACE_INTERRUPT, tid, 0, 0).map(|_| ())
}

/// `waitpid(tid, __WALL)`, retrying on `EINTR`.
pub fn wait(tid: pid_t) -> Result<WaitStatus> {
    loop {
        let mut status = 0;
        // SAFETY: status is a valid out pointer.
        let rc = unsafe { libc::waitpid(tid, &mut status, libc::__WALL) };
        if rc == -1 {
            let e = last_errno();
            if e == libc::EINTR {
                continue;
            }
            return Err(SysError::errno(format!("waitpid tid {tid}"), e));
        }
        return Ok(decode_status(status));
    }
}

/// Non-blocking [`wait`]: `None` when the thread has nothing to report.
pub fn try_wait(tid: pid_t) -> Result<Option<WaitStatus>> {
    let mut status = 0;
    // SAFETY: status is a valid out pointer.
    let rc = unsafe { libc::waitpid(tid, &mut status, libc::__WALL | libc::WNOHANG) };
    match rc {
        -1 => Err(SysError::last(format!("waitpid tid {tid}"))),
        0 => Ok(None),
        _ => Ok(Some(decode_status(status))),
    }
}

fn decode_status(status: i32) -> WaitStatus {
    if libc::WIFEXITED(status) {
        WaitStatus::Exited(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        WaitStatus::Signaled(libc::WTERMSIG(status))
    } else {
        WaitStatus::Stopped {
            sig: libc::WSTOPSIG(status),
            event: (status >> 16) & 0xffff,
        }
    }
}

/// `PTRACE_GETREGS`.
pub fn get_regs(tid: pid_t) -> Result<libc::user_regs_struct> {
    // SAFETY: user_regs_struct is plain integers; all-zero is a valid value.
    let mut r: libc::user_regs_struct = unsafe { std::mem::zeroed() };
    req(
        "PTRACE_GETREGS",
        libc::PTRACE_GETREGS,
        tid,
        0,
        &mut r as *mut _ as usize,
    )?;
    Ok(r)
}

/// `PTRACE_SETREGS`.
pub fn set_regs(tid: pid_t, r: &libc::user_regs_struct) -> Result<()> {
    req(
        "PTRACE_SETREGS",
        libc::PTRACE_SETREGS,
        tid,
        0,
        r as *const _ as usize,
    )
    .map(|_| ())
}

/// The XSAVE area as `PTRACE_GETREGSET NT_X86_XSTATE` returns it (its length is the
/// area size of this CPU/kernel; XCR0 at [`XSTATE_XCR0_OFFSET`], see [`xstate_xcr0`]).
pub fn get_xstate(tid: pid_t) -> Result<Vec<u8>> {
    let mut buf = vec![0u8; XSTATE_MAX];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut c_void,
        iov_len: buf.len(),
    };
    req(
        "PTRACE_GETREGSET NT_X86_XSTATE",
        libc::PTRACE_GETREGSET,
        tid,
        NT_X86_XSTATE,
        &mut iov as *mut _ as usize,
    )?;
    buf.truncate(iov.iov_len);
    Ok(buf)
}

/// `PTRACE_SETREGSET NT_X86_XSTATE` with an area as returned by [`get_xstate`].
/// The kernel checks the size and XCR0 against the CPU and fails with `EINVAL` on a mismatch.
pub fn set_xstate(tid: pid_t, area: &[u8]) -> Result<()> {
    let mut iov = libc::iovec {
        iov_base: area.as_ptr() as *mut c_void,
        iov_len: area.len(),
    };
    req(
        "PTRACE_SETREGSET NT_X86_XSTATE",
        libc::PTRACE_SETREGSET,
        tid,
        NT_X86_XSTATE,
        &mut iov as *mut _ as usize,
    )
    .map(|_| ())
}

/// XCR0 as saved in an XSAVE area (0 if the area is too short).
pub fn xstate_xcr0(area: &[u8]) -> u64 {
    area.get(XSTATE_XCR0_OFFSET..XSTATE_XCR0_OFFSET + 8)
        .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
        .unwrap_or(0)
}

/// The TLS GDT entries of a thread: [`GDT_ENTRY_TLS_ENTRIES`] `struct user_desc`
/// (16 bytes each, little-endian, `entry_number` first), concatenated.
pub fn get_tls(tid: pid_t) -> Result<Vec<u8>> {
    let mut out = Vec::with_capacity(USER_DESC_SIZE * GDT_ENTRY_TLS_ENTRIES as usize);
    for i in 0..GDT_ENTRY_TLS_ENTRIES {
        let mut d = [0u8; USER_DESC_SIZE];
        req(
            "PTRACE_GET_THREAD_AREA",
            PTRACE_GET_THREAD_AREA,
            tid,
            (GDT_ENTRY_TLS_MIN + i) as usize,
            d.as_mut_ptr() as usize,
        )?;
        out.extend_from_slice(&d);
    }
    Ok(out)
}

/// Set TLS GDT entries from the bytes [`get_tls`] returned (each `user_desc` carries
/// its own `entry_number`). Slots whose descriptor is empty are set empty too.
pub fn set_tls(tid: pid_t, descs: &[u8]) -> Result<()> {
    for d in descs.chunks_exact(USER_DESC_SIZE) {
        let mut d: [u8; USER_DESC_SIZE] = d.try_into().unwrap_or([0; USER_DESC_SIZE]);
        let entry = u32::from_le_bytes([d[0], d[1], d[2], d[3]]);
        req(
            "PTRACE_SET_THREAD_AREA",
            PTRACE_SET_THREAD_AREA,
            tid,
            entry as usize,
            d.as_mut_ptr() as usize,
        )?;
    }
    Ok(())
}

/// `PTRACE_PEEKDATA`: one word of the tracee's memory.
pub fn peek(tid: pid_t, addr: u64) -> Result<u64> {
    // SAFETY: errno location is thread-local and always valid.
    unsafe { *libc::__errno_location() = 0 };
    let v = req(
        "PTRACE_PEEKDATA",
        libc::PTRACE_PEEKDATA,
        tid,
        addr as usize,
        0,
    )?;
    Ok(v as u64)
}

/// `PTRACE_POKEDATA`: write one word (works on read-only text, like a debugger).
pub fn poke(tid: pid_t, addr: u64, word: u64) -> Result<()> {
    req(
        "PTRACE_POKEDATA",
        libc::PTRACE_POKEDATA,
        tid,
        addr as usize,
        word as usize,
    )
    .map(|_| ())
}

/// `PTRACE_CONT`, delivering `sig` (0 for none).
pub fn cont(tid: pid_t, sig: i32) -> Result<()> {
    req("PTRACE_CONT", libc::PTRACE_CONT, tid, 0, sig as usize).map(|_| ())
}

/// `PTRACE_SINGLESTEP`, delivering `sig` (0 for none).
pub fn step(tid: pid_t, sig: i32) -> Result<()> {
    req(
        "PTRACE_SINGLESTEP",
        libc::PTRACE_SINGLESTEP,
        tid,
        0,
        sig as usize,
    )
    .map(|_| ())
}

/// `PTRACE_DETACH`, delivering `sig` if the thread is in a signal-delivery stop.
pub fn detach(tid: pid_t, sig: i32) -> Result<()> {
    req("PTRACE_DETACH", libc::PTRACE_DETACH, tid, 0, sig as usize).map(|_| ())
}

/// `PTRACE_GETSIGMASK`: the thread's blocked-signal mask (bit N-1 = signal N).
pub fn get_sigmask(tid: pid_t) -> Result<u64> {
    let mut m = 0u64;
    // The request writes 8 bytes (the kernel's sigset_t) into `m`, which outlives it.
    req(
        "PTRACE_GETSIGMASK",
        0x420a,
        tid,
        8,
        &mut m as *mut u64 as usize,
    )?;
    Ok(m)
}

/// `PTRACE_SETSIGMASK`: set the thread's blocked-signal mask (the kernel keeps SIGKILL and
/// SIGSTOP unblocked whatever is asked).
pub fn set_sigmask(tid: pid_t, mask: u64) -> Result<()> {
    let m = mask;
    // The request reads 8 bytes from `m`, which outlives it.
    req(
        "PTRACE_SETSIGMASK",
        0x420b,
        tid,
        8,
        &m as *const u64 as usize,
    )
    .map(|_| ())
}

/// `tgkill(tgid, tid, sig)`.
pub fn tgkill(tgid: pid_t, tid: pid_t, sig: i32) -> Result<()> {
    // SAFETY: plain integer syscall.
    let rc = unsafe { libc::syscall(libc::SYS_tgkill, tgid, tid, sig) };
    if rc == -1 {
        return Err(SysError::last(format!("tgkill {tgid}/{tid} sig {sig}")));
    }
    Ok(())
}

/// `kill(pid, sig)`.
pub fn kill(pid: pid_t, sig: i32) -> Result<()> {
    // SAFETY: plain integer syscall.
    if unsafe { libc::kill(pid, sig) } == -1 {
        return Err(SysError::last(format!("kill {pid} sig {sig}")));
    }
    Ok(())
}

/// `get_robust_list(tid)`: (head address, length). Needs ptrace access, no injection.
pub fn get_robust_list(tid: pid_t) -> Result<(u64, u64)> {
    let mut head: u64 = 0;
    let mut len: usize = 0;
    // SAFETY: both out pointers are valid for the sizes the kernel writes (a pointer and a size_t).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_get_robust_list,
            tid,
            &mut head as *mut u64,
            &mut len as *mut usize,
        )
    };
    if rc == -1 {
        return Err(SysError::last(format!("get_robust_list tid {tid}")));
    }
    Ok((head, len as u64))
}

/// A thread's rseq registration (`PTRACE_GET_RSEQ_CONFIGURATION`): area address
/// (0 = none), area size, signature.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RseqConfig {
    /// Address of the registered `struct rseq`; 0 when the thread has none.
    pub ptr: u64,
    /// Size passed to `rseq(2)` at registration.
    pub size: u32,
    /// Signature preceding abort handlers.
    pub sig: u32,
}

/// `PTRACE_GET_RSEQ_CONFIGURATION` of a stopped tracee (Linux 5.13+).
pub fn rseq_config(tid: pid_t) -> Result<RseqConfig> {
    #[repr(C)]
    #[derive(Default)]
    struct Conf {
        ptr: u64,
        size: u32,
        sig: u32,
        flags: u32,
        pad: u32,
    }
    const PTRACE_GET_RSEQ_CONFIGURATION: libc::c_uint = 0x420f;
    let mut c = Conf::default();
    // SAFETY: c is a valid out buffer of the size passed as `addr`.
    let rc = unsafe {
        libc::ptrace(
            PTRACE_GET_RSEQ_CONFIGURATION,
            tid,
            std::mem::size_of::<Conf>(),
            &mut c as *mut Conf,
        )
    };
    if rc == -1 {
        return Err(SysError::last(format!(
            "PTRACE_GET_RSEQ_CONFIGURATION tid {tid}"
        )));
    }
    Ok(RseqConfig {
        ptr: c.ptr,
        size: c.size,
        sig: c.sig,
    })
}

/// Size of one `siginfo_t` as the kernel copies it to user space on x86-64.
pub const SIGINFO_SIZE: usize = 128;

/// The pending signals of a stopped tracee with their full `siginfo_t`, in queue order,
/// without dequeuing them (`PTRACE_PEEKSIGINFO`). `shared = false`: the thread's own
/// queue (signals sent to this thread); `true`: the process-wide queue
/// (`PTRACE_PEEKSIGINFO_SHARED`, the same from any thread). Returns the concatenated
/// 128-byte `siginfo_t`s (`si_signo` is the first `i32` of each).
///
/// A pending standard signal whose queue entry could not be allocated when it was sent
/// is pending without a `siginfo` and does not appear here.
pub fn peek_siginfo(tid: pid_t, shared: bool) -> Result<Vec<u8>> {
    #[repr(C)]
    struct Args {
        off: u64,
        flags: u32,
        nr: i32,
    }
    const PTRACE_PEEKSIGINFO: libc::c_uint = 0x4209;
    const PTRACE_PEEKSIGINFO_SHARED: u32 = 1;
    const BATCH: usize = 32;
    // Bounded: a queue holds at most RLIMIT_SIGPENDING entries (plus one per standard
    // signal); refuse to read forever if something keeps adding.
    const MAX_ENTRIES: usize = 1 << 20;
    let mut out = Vec::new();
    let mut buf = vec![0u8; BATCH * SIGINFO_SIZE];
    loop {
        let args = Args {
            off: (out.len() / SIGINFO_SIZE) as u64,
            flags: if shared { PTRACE_PEEKSIGINFO_SHARED } else { 0 },
            nr: BATCH as i32,
        };
        // SAFETY: `args` is a valid `struct ptrace_peeksiginfo_args`; `buf` has room for
        // `args.nr` siginfos of SIGINFO_SIZE bytes, the most the kernel writes.
        let rc = unsafe {
            libc::ptrace(
                PTRACE_PEEKSIGINFO,
                tid,
                &args as *const Args as *mut c_void,
                buf.as_mut_ptr() as *mut c_void,
            )
        };
        if rc < 0 {
            return Err(SysError::last(format!(
                "PTRACE_PEEKSIGINFO{} tid {tid}",
                if shared { "(shared)" } else { "" }
            )));
        }
        let n = (rc as usize).min(BATCH);
        out.extend_from_slice(&buf[..n * SIGINFO_SIZE]);
        if n < BATCH || out.len() / SIGINFO_SIZE >= MAX_ENTRIES {
            return Ok(out);
        }
    }
}

/// Most instructions of one classic-BPF program (`BPF_MAXINSNS`).
pub const BPF_MAXINSNS: usize = 4096;

/// The seccomp filters of a stopped tracee, oldest (installed first) first (the
/// request's index 0 is the oldest: the kernel counts back from the newest): each one's
/// program (8-byte `struct sock_filter`s, `PTRACE_SECCOMP_GET_FILTER`) and its flags
/// (`PTRACE_SECCOMP_GET_METADATA`: `SECCOMP_FILTER_FLAG_LOG` is the one it reports).
/// Needs `CAP_SYS_ADMIN` and a tracer not itself under seccomp.
pub fn seccomp_filters(tid: pid_t) -> Result<Vec<(u64, Vec<u8>)>> {
    const PTRACE_SECCOMP_GET_FILTER: libc::c_uint = 0x420c;
    const PTRACE_SECCOMP_GET_METADATA: libc::c_uint = 0x420d;
    // A thread holds at most MAX_INSNS_PER_PATH / 4 = 8192 filters (each costs 4 or more).
    const MAX_FILTERS: u64 = 8192;
    let mut out = Vec::new();
    for index in 0..MAX_FILTERS {
        // SAFETY: a NULL buffer asks for the instruction count only.
        let n = unsafe {
            libc::ptrace(
                PTRACE_SECCOMP_GET_FILTER,
                tid,
                index as usize as *mut c_void,
                std::ptr::null_mut::<c_void>(),
            )
        };
        if n == -1 {
            let e = last_errno();
            if e == libc::ENOENT {
                return Ok(out);
            }
            return Err(SysError::errno(
                format!("PTRACE_SECCOMP_GET_FILTER {index} tid {tid}"),
                e,
            ));
        }
        let n = n as usize;
        if n == 0 || n > BPF_MAXINSNS {
            return Err(SysError::other(
                format!("PTRACE_SECCOMP_GET_FILTER {index} tid {tid}"),
                format!("{n} instructions"),
            ));
        }
        let mut buf = vec![0u8; n * 8];
        // SAFETY: buf holds n instructions of 8 bytes, what the count said.
        let got = unsafe {
            libc::ptrace(
                PTRACE_SECCOMP_GET_FILTER,
                tid,
                index as usize as *mut c_void,
                buf.as_mut_ptr() as *mut c_void,
            )
        };
        if got != n as c_long {
            return Err(SysError::other(
                format!("PTRACE_SECCOMP_GET_FILTER {index} tid {tid}"),
                format!("{got} instructions, counted {n}"),
            ));
        }
        let mut md = [index, 0u64];
        // SAFETY: md is the 16-byte struct seccomp_metadata (filter_off, flags).
        let rc = unsafe {
            libc::ptrace(
                PTRACE_SECCOMP_GET_METADATA,
                tid,
                16usize as *mut c_void,
                md.as_mut_ptr() as *mut c_void,
            )
        };
        if rc == -1 {
            return Err(SysError::last(format!(
                "PTRACE_SECCOMP_GET_METADATA {index} tid {tid}"
            )));
        }
        out.push((md[1], buf));
    }
    Err(SysError::other(
        format!("PTRACE_SECCOMP_GET_FILTER tid {tid}"),
        "more filters than a thread can hold",
    ))
}
