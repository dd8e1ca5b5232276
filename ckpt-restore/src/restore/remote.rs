//! Injected system calls: [`Remote`] runs one call inside a stopped thread of the
//! child; [`Guard`] kills every half-built process unless the restore is released.

use super::*;

pub(super) fn sys_err(what: impl std::fmt::Display, e: impl std::fmt::Display) -> Error {
    Error::System(format!("{what}: {e}"))
}

/// Runs system calls inside one stopped thread of the child, at a fixed `syscall`.
pub(super) struct Remote {
    pub(super) tid: i32,
    pub(super) site: u64,
    pub(super) template: libc::user_regs_struct,
    pub(super) last_clone: Option<i32>,
}

impl Remote {
    pub(super) fn new(tid: i32, site: u64) -> Result<Remote, Error> {
        let template = ptrace::get_regs(tid).map_err(|e| sys_err("PTRACE_GETREGS", e))?;
        Ok(Remote {
            tid,
            site,
            template,
            last_clone: None,
        })
    }

    /// Raw result (negative errno on failure).
    pub(super) fn raw(&mut self, nr: i64, args: &[u64]) -> Result<i64, Error> {
        let mut r = self.template;
        let mut a = [0u64; 6];
        a[..args.len()].copy_from_slice(args);
        r.rax = nr as u64;
        r.orig_rax = u64::MAX;
        (r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9) = (a[0], a[1], a[2], a[3], a[4], a[5]);
        r.rip = self.site;
        r.eflags &= !0x10100;
        let what = || format!("injected syscall {nr} in tid {}", self.tid);
        ptrace::set_regs(self.tid, &r).map_err(|e| sys_err(what(), e))?;
        loop {
            ptrace::step(self.tid, 0).map_err(|e| sys_err(what(), e))?;
            match ptrace::wait(self.tid).map_err(|e| sys_err(what(), e))? {
                WaitStatus::Stopped {
                    sig: libc::SIGTRAP,
                    event: 0,
                } => break,
                WaitStatus::Stopped { event, .. } if event != 0 => {
                    if event == PTRACE_EVENT_CLONE || event == PTRACE_EVENT_FORK {
                        let m = sys::ptrace_event_msg(self.tid).map_err(|e| sys_err(what(), e))?;
                        self.last_clone = Some(m as i32);
                    }
                }
                WaitStatus::Stopped { sig, .. } => {
                    // A signal to the half-built child: drop it and step again if the
                    // syscall has not run yet.
                    let now = ptrace::get_regs(self.tid).map_err(|e| sys_err(what(), e))?;
                    if now.rip != self.site {
                        return Err(Error::System(format!(
                            "{}: signal {sig} arrived and moved the thread",
                            what()
                        )));
                    }
                }
                WaitStatus::Exited(c) => {
                    return Err(Error::System(format!("{}: the child exited ({c})", what())))
                }
                WaitStatus::Signaled(s) => {
                    return Err(Error::System(format!(
                        "{}: the child was killed by signal {s}",
                        what()
                    )))
                }
            }
        }
        let after = ptrace::get_regs(self.tid).map_err(|e| sys_err(what(), e))?;
        if after.rip != self.site + 2 {
            return Err(Error::System(format!(
                "{}: stopped at {:#x}, expected {:#x}",
                what(),
                after.rip,
                self.site + 2
            )));
        }
        Ok(after.rax as i64)
    }

    pub(super) fn call(&mut self, name: &str, nr: i64, args: &[u64]) -> Result<u64, Error> {
        let r = self.raw(nr, args)?;
        if (-4095..0).contains(&r) {
            return Err(Error::System(format!(
                "{name} in the restored process (tid {}): {}",
                self.tid,
                std::io::Error::from_raw_os_error((-r) as i32)
            )));
        }
        Ok(r as u64)
    }
}

/// Kills every half-built process (and reaps it) unless released.
pub(super) struct Guard {
    /// `(pid, thread ids)` in creation order (parents before children).
    pub(super) procs: Vec<(i32, Vec<i32>)>,
    pub(super) armed: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.armed {
            // Parents first: a dead parent's children go to init (or the nearest
            // subreaper), which reaps them once we, their tracer, have seen them die.
            for (pid, tids) in &self.procs {
                sys::kill_and_reap(*pid, tids);
            }
        }
    }
}
