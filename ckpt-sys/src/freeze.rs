//! Freeze a whole process: every thread seized and stopped, released on drop.
//!
//! [`Frozen::freeze`] seizes each thread of `/proc/PID/task` (`PTRACE_SEIZE`, no
//! options — in particular *not* `PTRACE_O_EXITKILL`, so that if the tracer dies the
//! kernel detaches and the target simply continues), interrupts it and waits for its
//! `PTRACE_EVENT_STOP`. It then re-reads `/proc/PID/task` and repeats until a scan finds
//! no thread it does not already hold: a thread created by a not-yet-stopped thread
//! while we were attaching is caught by the next scan, and a stopped thread cannot
//! create more.
//!
//! A signal that arrives while we wait for the stop (a signal-delivery stop) is
//! delivered to the thread (`PTRACE_CONT` with that signal) as it would have been
//! without us; the interrupt stays pending and comes next. A thread that exits while we
//! attach is dropped; the leader exiting is an error ("process gone").
//!
//! Dropping a [`Frozen`] without calling [`Frozen::release`] detaches every thread and
//! lets it run, so that any error path leaves the target as it was.

use crate::ptrace::{self, WaitStatus};
use crate::{procfs, Result, SysError};
use libc::pid_t;

/// What to do with the threads when releasing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// Detach; the process continues where it was (group-stopped processes stay stopped).
    Run,
    /// Queue `SIGSTOP` for the process, then detach: it ends up stopped (`kill -CONT` resumes it).
    Stop,
    /// `SIGKILL` the process, then detach.
    Kill,
}

/// One stopped thread.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoppedThread {
    /// Thread id.
    pub tid: pid_t,
    /// The signal of the stop: `SIGTRAP` for an interrupt stop, or the job-control stop
    /// signal (`SIGSTOP` ...) if the thread was already group-stopped.
    pub stop_sig: i32,
}

/// A process with every thread seized and stopped.
#[derive(Debug)]
pub struct Frozen {
    pid: pid_t,
    threads: Vec<StoppedThread>,
    released: bool,
}

impl Frozen {
    /// Seize and stop every thread of `pid` (see the module docs). On error every
    /// thread already seized is detached again.
    pub fn freeze(pid: pid_t) -> Result<Frozen> {
        Frozen::freeze_with(pid, 0)
    }

    /// [`Frozen::freeze`] with `PTRACE_O_*` options (set once each thread is stopped), e.g.
    /// [`ptrace::O_SUSPEND_SECCOMP`] (needs `CAP_SYS_ADMIN`) so that injected syscalls are
    /// not filtered by the target's seccomp policy.
    pub fn freeze_with(pid: pid_t, options: u64) -> Result<Frozen> {
        let mut f = Frozen {
            pid,
            threads: Vec::new(),
            released: false,
        };
        // Each tid is tried once, kept or not: one that exited while it was being seized may
        // still be listed in /proc/PID/task for a while and must not be seized again.
        let mut tried: Vec<pid_t> = Vec::new();
        let mut rounds = 0;
        loop {
            rounds += 1;
            if rounds > 1000 {
                return Err(SysError::other(
                    format!("freeze pid {pid}"),
                    "thread list never became stable",
                ));
            }
            let tids = procfs::list_tasks(pid)?;
            let new: Vec<pid_t> = tids.into_iter().filter(|t| !tried.contains(t)).collect();
            if new.is_empty() {
                break;
            }
            let mut seized = Vec::new();
            tried.extend_from_slice(&new);
            // Seccomp is suspended only once a thread is stopped: suspended from the seize
            // on, a thread still running would make its next calls unfiltered (a capture
            // must not change what its target does).
            let seize_opts = options & !ptrace::O_SUSPEND_SECCOMP;
            for tid in new {
                match ptrace::seize(tid, seize_opts) {
                    Ok(()) => seized.push(tid),
                    Err(e) if e.errno == libc::ESRCH && tid != pid => continue,
                    // A thread past exit_notify is refused with EPERM while it still shows
                    // in the task list: it is leaving, not protected.
                    Err(e) if e.errno == libc::EPERM && tid != pid && thread_exiting(pid, tid) => {
                        continue
                    }
                    Err(e) => return Err(e),
                }
            }
            for &tid in &seized {
                match ptrace::interrupt(tid) {
                    Ok(()) => {}
                    Err(e) if e.errno == libc::ESRCH && tid != pid => continue,
                    Err(e) => return Err(e),
                }
            }
            for tid in seized {
                match wait_for_stop(tid)? {
                    Some(sig) => {
                        if options != seize_opts {
                            match ptrace::set_options(tid, options) {
                                Ok(()) => {}
                                // Killed meanwhile: a thread gone, like at the seize.
                                Err(e) if e.errno == libc::ESRCH && tid != pid => continue,
                                Err(e) => return Err(e),
                            }
                        }
                        f.threads.push(StoppedThread { tid, stop_sig: sig });
                    }
                    None if tid == pid => {
                        return Err(SysError::errno(
                            format!("freeze pid {pid}: the process exited"),
                            libc::ESRCH,
                        ))
                    }
                    None => {}
                }
            }
        }
        if f.threads.is_empty() {
            return Err(SysError::errno(format!("freeze pid {pid}"), libc::ESRCH));
        }
        f.threads.sort_by_key(|t| (t.tid != pid, t.tid));
        Ok(f)
    }

    /// The process id.
    pub fn pid(&self) -> pid_t {
        self.pid
    }

    /// Thread ids, the leader (tid == pid) first when it is alive, then ascending.
    pub fn threads(&self) -> Vec<pid_t> {
        self.threads.iter().map(|t| t.tid).collect()
    }

    /// Details of each stopped thread.
    pub fn stopped(&self) -> &[StoppedThread] {
        &self.threads
    }

    /// True if the process was already in a job-control stop when frozen.
    pub fn was_group_stopped(&self) -> bool {
        self.threads.iter().any(|t| t.stop_sig != libc::SIGTRAP)
    }

    /// Let every thread go as `how` says. Errors from threads that vanished are ignored;
    /// the first other error is returned after every thread has been tried.
    pub fn release(&mut self, how: Release) -> Result<()> {
        if self.released {
            return Ok(());
        }
        self.released = true;
        let mut first_err = None;
        match how {
            Release::Run => {}
            Release::Stop => {
                if let Err(e) = ptrace::kill(self.pid, libc::SIGSTOP) {
                    first_err.get_or_insert(e);
                }
            }
            Release::Kill => {
                ptrace::kill(self.pid, libc::SIGKILL)?;
                // Traced threads report their death to their tracer (us), and stay
                // zombies until we collect it: reap every one, then nothing is left.
                // The leader's death is reported only after every other thread of the
                // group is reaped, so the leader comes last.
                let leader = self.pid;
                let order = self
                    .threads
                    .iter()
                    .filter(|t| t.tid != leader)
                    .chain(self.threads.iter().filter(|t| t.tid == leader));
                for t in order {
                    for _ in 0..64 {
                        match ptrace::wait(t.tid) {
                            Ok(WaitStatus::Exited(_)) | Ok(WaitStatus::Signaled(_)) => break,
                            Ok(_) => continue,
                            Err(_) => break,
                        }
                    }
                }
                return Ok(());
            }
        }
        for t in &self.threads {
            match ptrace::detach(t.tid, 0) {
                Ok(()) => {}
                Err(e) if e.errno == libc::ESRCH => {}
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let _ = self.release(Release::Run);
    }
}

/// Wait until `tid` reports its interrupt (or group) stop. Returns the stop signal, or
/// `None` when the thread exited meanwhile.
pub fn wait_for_stop(tid: pid_t) -> Result<Option<i32>> {
    loop {
        match ptrace::wait(tid) {
            Ok(WaitStatus::Stopped { sig, event }) if event == ptrace::EVENT_STOP => {
                return Ok(Some(sig))
            }
            Ok(WaitStatus::Stopped { sig, event: 0 }) => {
                // A signal-delivery stop: deliver it as the kernel would have.
                ptrace::cont(tid, sig)?;
            }
            Ok(WaitStatus::Stopped { .. }) => {
                // Another ptrace event (we set no options, so unexpected); go on.
                ptrace::cont(tid, 0)?;
            }
            Ok(WaitStatus::Exited(_)) | Ok(WaitStatus::Signaled(_)) => return Ok(None),
            Err(e) if e.errno == libc::ECHILD || e.errno == libc::ESRCH => return Ok(None),
            Err(e) => return Err(e),
        }
    }
}

/// Most single steps [`step_out_of`] takes: a vdso call is a few hundred instructions
/// (its seqlock retry loops included); far more means something else is going on.
pub const STEP_OUT_LIMIT: u32 = 100_000;

/// Single-step the stopped thread `tid` of `tgid` until its `rip` leaves `[lo, hi)` —
/// used for the vdso: a thread stopped inside a vdso function finishes the call and
/// stands in its caller, so the image does not depend on the vdso's code, which another
/// kernel does not have (ckpt-restore proxies the captured vdso there). The thread only
/// runs instructions it was about to run. Left in place: a thread outside the range, or
/// inside a system call it would restart (`orig_rax >= 0` with `-ERESTART*` in `rax`;
/// stepping would re-enter a blocking call). Every signal is blocked while stepping (they
/// stay queued with their siginfo); one that cannot be blocked is queued again with
/// `tgkill` at the end.
/// Returns the number of steps taken; `Err` if the thread is still inside after
/// [`STEP_OUT_LIMIT`] steps or died.
pub fn step_out_of(tgid: pid_t, tid: pid_t, lo: u64, hi: u64) -> Result<u32> {
    let inside = |r: &libc::user_regs_struct| r.rip >= lo && r.rip < hi;
    let r = ptrace::get_regs(tid)?;
    if !inside(&r) || (r.orig_rax as i64 >= 0 && (-516..=-512).contains(&(r.rax as i64))) {
        return Ok(0);
    }
    // Signals blocked while stepping, as for injected calls (ckpt_sys::inject): they stay
    // queued with their siginfo; the thread's mask is put back after.
    let mask = ptrace::get_sigmask(tid)?;
    ptrace::set_sigmask(tid, u64::MAX)?;
    let mut held = Vec::new();
    let mut steps = 0u32;
    let out = loop {
        if steps >= STEP_OUT_LIMIT {
            break Err(SysError::errno(
                format!("thread {tid} still inside [{lo:#x}, {hi:#x}) after {steps} single steps"),
                libc::ETIMEDOUT,
            ));
        }
        ptrace::step(tid, 0)?;
        steps += 1;
        match ptrace::wait(tid)? {
            WaitStatus::Stopped {
                sig: libc::SIGTRAP,
                event: 0,
            } => {}
            WaitStatus::Stopped { sig, event: 0 } => {
                held.push(sig);
                continue;
            }
            WaitStatus::Stopped { .. } => continue,
            WaitStatus::Exited(_) | WaitStatus::Signaled(_) => {
                break Err(SysError::errno(
                    format!("thread {tid} exited while stepping out of the vdso"),
                    libc::ESRCH,
                ))
            }
        }
        if !inside(&ptrace::get_regs(tid)?) {
            break Ok(steps);
        }
    };
    let restored = ptrace::set_sigmask(tid, mask);
    let out = out?;
    restored?;
    for s in held {
        ptrace::tgkill(tgid, tid, s)?;
    }
    Ok(out)
}

/// Whether thread `tid` of `pid` is gone or a zombie/dead entry (state `Z` or `X`).
fn thread_exiting(pid: pid_t, tid: pid_t) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/stat")) {
        Err(_) => true,
        Ok(st) => match st.rfind(')') {
            Some(i) => matches!(st.as_bytes().get(i + 2), Some(b'Z' | b'X')),
            None => false,
        },
    }
}
