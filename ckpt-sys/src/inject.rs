//! Run system calls inside a stopped thread.
//!
//! [`Injector::new`] saves the thread's registers and picks a `syscall` instruction
//! (`0f 05`) to execute: preferably one found in the target's `[vdso]` (no memory is
//! modified), otherwise it writes `0f 05` over the two bytes at RIP with
//! `PTRACE_POKEDATA` and puts the original word back in [`Injector::finish`].
//!
//! [`Injector::syscall`] loads `rax` = number, `rdi, rsi, rdx, r10, r8, r9` = arguments,
//! `rip` = the instruction, **`orig_rax` = -1** (so that the kernel does not apply its
//! syscall-restart logic to a thread stopped inside an interrupted syscall), single-steps
//! once and reads `rax`. Every signal is blocked for the step (`PTRACE_SETSIGMASK`, the
//! thread's mask put back right after), so signals stay queued in the kernel with their
//! `siginfo`; only one that cannot be blocked would stop the step, and is re-queued with
//! `tgkill` when the injector finishes.
//!
//! [`Injector::finish`] (or drop) restores the saved registers exactly, including
//! `orig_rax`/`rax`, so a thread that was asleep in a restartable syscall restarts it
//! when resumed.
//!
//! Injected calls run with the target's credentials and seccomp filter, and with every
//! signal blocked.

use crate::ptrace::{self, WaitStatus};
use crate::{mem, procfs, Result, SysError};
use libc::pid_t;

/// Runs system calls inside one stopped thread; see the module docs.
#[derive(Debug)]
pub struct Injector {
    tid: pid_t,
    tgid: pid_t,
    saved: libc::user_regs_struct,
    site: u64,
    poked: Option<(u64, u64)>,
    deferred: Vec<i32>,
    finished: bool,
}

impl Injector {
    /// Prepare to inject into `tid`, which must be seized and stopped by this thread.
    pub fn new(tid: pid_t) -> Result<Injector> {
        let saved = ptrace::get_regs(tid)?;
        let tgid = procfs::tgid_of(tid)?;
        let mut inj = Injector {
            tid,
            tgid,
            saved,
            site: 0,
            poked: None,
            deferred: Vec::new(),
            finished: false,
        };
        match find_vdso_syscall(tgid)? {
            Some(a) => inj.site = a,
            None => {
                let word = ptrace::peek(tid, saved.rip)?;
                let patched = (word & !0xffff) | 0x050f;
                ptrace::poke(tid, saved.rip, patched)?;
                inj.poked = Some((saved.rip, word));
                inj.site = saved.rip;
            }
        }
        Ok(inj)
    }

    /// The registers saved when the injector was created (what the thread resumes with).
    pub fn saved_regs(&self) -> &libc::user_regs_struct {
        &self.saved
    }

    /// Address of the `syscall` instruction used.
    pub fn site(&self) -> u64 {
        self.site
    }

    /// Execute syscall `nr` with up to six arguments; returns the raw `rax` (negative
    /// errno on failure, as the kernel returns it).
    pub fn syscall(&mut self, nr: i64, args: &[u64]) -> Result<i64> {
        if args.len() > 6 {
            return Err(SysError::other("inject", "more than 6 syscall arguments"));
        }
        let mut r = self.saved;
        let mut a = [0u64; 6];
        a[..args.len()].copy_from_slice(args);
        r.rax = nr as u64;
        r.orig_rax = u64::MAX;
        r.rdi = a[0];
        r.rsi = a[1];
        r.rdx = a[2];
        r.r10 = a[3];
        r.r8 = a[4];
        r.r9 = a[5];
        r.rip = self.site;
        // Clear TF/RF so the step behaves the same whatever the thread had.
        r.eflags &= !0x10100;
        ptrace::set_regs(self.tid, &r)?;
        // Every signal blocked for the step: a pending or arriving signal stays queued in
        // the kernel with its siginfo (a signal taken here could only be re-queued with
        // tgkill, which loses it, e.g. a POSIX timer's id and value), and the thread's own
        // mask is back before anything reads it.
        let mask = ptrace::get_sigmask(self.tid)?;
        ptrace::set_sigmask(self.tid, u64::MAX)?;
        let rax = self.step_syscall(nr);
        let restored = ptrace::set_sigmask(self.tid, mask);
        let rax = rax?;
        restored?;
        Ok(rax)
    }

    fn step_syscall(&mut self, nr: i64) -> Result<i64> {
        let mut sig = 0;
        loop {
            ptrace::step(self.tid, sig)?;
            sig = 0;
            match ptrace::wait(self.tid)? {
                WaitStatus::Stopped {
                    sig: libc::SIGTRAP,
                    event: 0,
                } => break,
                WaitStatus::Stopped { event, .. } if event != 0 => continue,
                WaitStatus::Stopped { sig: s, .. } => {
                    // A real signal arrived; keep it for later and retry the step.
                    self.deferred.push(s);
                    let now = ptrace::get_regs(self.tid)?;
                    if now.rip != self.site {
                        break;
                    }
                }
                WaitStatus::Exited(c) => {
                    return Err(SysError::other(
                        format!("injected syscall {nr} in tid {}", self.tid),
                        format!("thread exited with {c}"),
                    ))
                }
                WaitStatus::Signaled(s) => {
                    return Err(SysError::other(
                        format!("injected syscall {nr} in tid {}", self.tid),
                        format!("thread killed by signal {s}"),
                    ))
                }
            }
        }
        let after = ptrace::get_regs(self.tid)?;
        if after.rip != self.site + 2 {
            return Err(SysError::other(
                format!("injected syscall {nr} in tid {}", self.tid),
                format!("stopped at {:#x}, expected {:#x}", after.rip, self.site + 2),
            ));
        }
        Ok(after.rax as i64)
    }

    /// Like [`Injector::syscall`] but maps a negative return to an error.
    pub fn syscall_ok(&mut self, nr: i64, args: &[u64]) -> Result<u64> {
        let r = self.syscall(nr, args)?;
        if (-4095..0).contains(&r) {
            return Err(SysError::errno(
                format!("injected syscall {nr} in tid {}", self.tid),
                (-r) as i32,
            ));
        }
        Ok(r as u64)
    }

    /// `mmap(NULL, len, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0)` in the
    /// target; returns the address. Unmap it with `syscall(SYS_munmap, &[addr, len])`.
    pub fn mmap_scratch(&mut self, len: u64) -> Result<u64> {
        self.syscall_ok(
            libc::SYS_mmap,
            &[
                0,
                len,
                (libc::PROT_READ | libc::PROT_WRITE) as u64,
                (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64,
                u64::MAX,
                0,
            ],
        )
    }

    /// Restore the text word (if patched) and the saved registers; re-queue held signals.
    pub fn finish(&mut self) -> Result<()> {
        if self.finished {
            return Ok(());
        }
        self.finished = true;
        if let Some((addr, word)) = self.poked {
            ptrace::poke(self.tid, addr, word)?;
        }
        ptrace::set_regs(self.tid, &self.saved)?;
        for s in std::mem::take(&mut self.deferred) {
            ptrace::tgkill(self.tgid, self.tid, s)?;
        }
        Ok(())
    }
}

impl Drop for Injector {
    fn drop(&mut self) {
        let _ = self.finish();
    }
}

/// Address of a `0f 05` (`syscall`) byte pair inside the `[vdso]` of `pid`, if any.
pub fn find_vdso_syscall(pid: pid_t) -> Result<Option<u64>> {
    let maps = procfs::maps(pid)?;
    let Some(v) = maps.iter().find(|m| m.path.as_deref() == Some(b"[vdso]")) else {
        return Ok(None);
    };
    let mut buf = vec![0u8; (v.end - v.start) as usize];
    if mem::read_remote(pid, v.start, &mut buf).is_err() {
        return Ok(None);
    }
    Ok(buf
        .windows(2)
        .position(|w| w == [0x0f, 0x05])
        .map(|i| v.start + i as u64))
}
