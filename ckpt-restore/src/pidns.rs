//! A new pid namespace for `--pid-ns` ([`crate::PidMode::Namespace`]): every captured pid
//! is free there, so a tree whose pids are taken on this machine (or whose parents wait
//! for children by pid) still gets exactly its captured pids.
//!
//! How: the restorer calls `unshare(CLONE_NEWPID)`, so every process it forks from then on
//! is created in one new namespace. The first one is a tiny init of ours (pid 1 there,
//! named `ckpt-nsinit`): the kernel needs a pid 1 for the namespace to accept more
//! processes, and every process of the tree orphaned inside it is reparented to it (the
//! tree's roots are our children, so when we exit they go to our own reaper, as any
//! restored root does). It waits on a pipe until the restore is done: a failed one closes
//! it empty and the init exits at once; a finished one sends the roots' pids in the
//! namespace. The init then sleeps in `poll` on a pidfd of each root and a signalfd for
//! `SIGCHLD`, reaps every child it gets, and exits once every root has exited and it has
//! no child left: the namespace is empty then. Killing it kills the whole namespace (the
//! kernel does that for any pid namespace's init).
//!
//! Everything here is raw system calls: the init is forked from a process that may have
//! other threads, so it only makes async-signal-safe calls on data prepared before.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// The namespace's init while the tree is built. Dropped without [`PidNs::release`]
/// (a failed restore), the init is told to stop, killed and reaped.
pub(crate) struct PidNs {
    /// The init's pid (in our namespace).
    pub(crate) init: i32,
    /// Our end of the start pipe.
    go: Option<OwnedFd>,
}

impl PidNs {
    /// Unshare the pid namespace for our future children and start its init.
    pub(crate) fn start() -> io::Result<PidNs> {
        // SAFETY: integer argument only; affects the namespace of our future children.
        if unsafe { libc::unshare(libc::CLONE_NEWPID) } != 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("unshare(CLONE_NEWPID): {e}"),
            ));
        }
        let mut fds = [0 as RawFd; 2];
        // SAFETY: `fds` is a valid array of two ints.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: two fresh descriptors that we now own.
        let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let init = spawn_init(rd.as_raw_fd())?;
        drop(rd);
        Ok(PidNs { init, go: Some(wr) })
    }

    /// Most roots a namespace's init watches (the restore refuses more).
    pub(crate) const MAX_ROOTS: usize = 64;

    /// The tree is built: the init is given its roots' pids in the namespace and stays
    /// until they and every orphan it reaps have exited.
    pub(crate) fn release(mut self, roots: &[i32]) -> io::Result<()> {
        let mut b = Vec::with_capacity(roots.len() * 4);
        for r in roots.iter().take(Self::MAX_ROOTS) {
            b.extend_from_slice(&r.to_ne_bytes());
        }
        if let Some(wr) = self.go.take() {
            // SAFETY: writing from a valid buffer of b.len() bytes to our pipe end (at
            // most 256 bytes: one atomic write).
            let n = unsafe { libc::write(wr.as_raw_fd(), b.as_ptr().cast(), b.len()) };
            if n != b.len() as isize {
                return Err(io::Error::other(
                    "writing the roots to the namespace's init",
                ));
            }
        }
        self.init = 0;
        Ok(())
    }
}

impl Drop for PidNs {
    fn drop(&mut self) {
        self.go = None; // end of file: an init still waiting exits
        if self.init > 0 {
            crate::sys::kill_and_reap(self.init, &[]);
        }
    }
}

/// The pid of `host` (a pid or thread id of our namespace) in its own, innermost pid
/// namespace: the last number of the `NSpid:` line of its status. The same number when
/// it is in ours.
pub(crate) fn ns_pid(host: i32) -> io::Result<i32> {
    let s = std::fs::read_to_string(format!("/proc/{host}/status"))?;
    s.lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .and_then(|v| v.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| io::Error::other(format!("/proc/{host}/status has no NSpid line")))
}

fn raw_exit(code: i32) -> ! {
    // SAFETY: exit_group never returns.
    unsafe {
        libc::syscall(libc::SYS_exit_group, code);
    }
    #[allow(clippy::empty_loop)]
    loop {}
}

/// Fork the init (pid 1 of the namespace unshared before); returns its pid here.
fn spawn_init(start: RawFd) -> io::Result<i32> {
    let name = c"ckpt-nsinit";
    let mut roots = [0i32; PidNs::MAX_ROOTS];
    let mut polls = [libc::pollfd {
        fd: -1,
        events: libc::POLLIN,
        revents: 0,
    }; PidNs::MAX_ROOTS + 1];
    let mut chld: u64 = 1 << (libc::SIGCHLD - 1);
    let mut info = [0u8; 128]; // one signalfd_siginfo
                               // SAFETY: a plain fork (no CLONE_VM): the child gets a copy of our address space and
                               // below only makes raw system calls on the locals prepared above, and never returns
                               // into Rust code.
    let rc = unsafe { libc::syscall(libc::SYS_clone, libc::SIGCHLD as libc::c_ulong, 0, 0, 0, 0) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    if rc > 0 {
        return Ok(rc as i32);
    }
    // Child: pid 1 of the new namespace.
    // SAFETY: raw system calls with integer arguments and pointers to the locals above,
    // each used within its size.
    unsafe {
        let errno = || *libc::__errno_location();
        libc::syscall(libc::SYS_prctl, libc::PR_SET_NAME, name.as_ptr());
        libc::syscall(libc::SYS_chdir, c"/".as_ptr());
        if start > 0 {
            libc::syscall(libc::SYS_close_range, 0, start - 1, 0);
        }
        libc::syscall(libc::SYS_close_range, start + 1, u32::MAX, 0);
        // SIGCHLD only through the signalfd.
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_BLOCK,
            &chld as *const u64,
            0,
            8,
        );
        // The roots' pids, until the restorer closes its end (nothing: it failed).
        let cap = std::mem::size_of_val(&roots);
        let mut got = 0usize;
        loop {
            let n = libc::syscall(
                libc::SYS_read,
                start,
                (roots.as_mut_ptr() as *mut u8).add(got),
                cap - got,
            );
            if n > 0 {
                got += n as usize;
                if got < cap {
                    continue;
                }
            } else if n < 0 && errno() == libc::EINTR {
                continue;
            }
            break;
        }
        let nroots = got / 4;
        if nroots == 0 {
            raw_exit(0);
        }
        libc::syscall(libc::SYS_close, start);
        let sfd = libc::syscall(libc::SYS_signalfd4, -1, &mut chld as *mut u64, 8, 0);
        polls[0].fd = sfd as i32;
        let mut alive = 0;
        for k in 0..nroots {
            let fd = libc::syscall(libc::SYS_pidfd_open, roots[k], 0);
            polls[1 + k].fd = fd as i32; // -1 (already gone): poll ignores it
            if fd >= 0 {
                alive += 1;
            }
        }
        loop {
            // Reap whatever has exited.
            let children = loop {
                let mut st = 0i32;
                let r = libc::syscall(libc::SYS_wait4, -1, &mut st as *mut i32, libc::WNOHANG, 0);
                if r > 0 || (r < 0 && errno() == libc::EINTR) {
                    continue;
                }
                break r == 0; // 0: children still running; -1 ECHILD: none
            };
            if alive == 0 && !children {
                raw_exit(0);
            }
            let n = libc::syscall(libc::SYS_poll, polls.as_mut_ptr(), nroots + 1, -1);
            if n < 0 {
                continue; // EINTR
            }
            if polls[0].revents != 0 {
                libc::syscall(libc::SYS_read, polls[0].fd, info.as_mut_ptr(), info.len());
            }
            for p in polls[1..=nroots].iter_mut() {
                if p.fd >= 0 && p.revents != 0 {
                    libc::syscall(libc::SYS_close, p.fd);
                    p.fd = -1;
                    alive -= 1;
                }
            }
        }
    }
}
