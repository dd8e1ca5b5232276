//! Creating the processes of the tree: a root is forked by us, every other process by
//! its restored parent (an injected `clone3`); each then gets its injection area.

use super::*;

/// A root of the tree: forked by us; it sets up its fd table itself, then stops.
pub(super) fn create_root<'a>(
    t: &'a TaskPlan,
    i: usize,
    st: &Staged,
    site0: u64,
    shape: &AreaShape,
    opts: &Options,
    guard: &mut Guard,
) -> Result<Proc<'a>, Error> {
    let mut setup = fd_setup(t, i, st);
    if opts.pid_mode == PidMode::Namespace {
        setup.parent = 0; // we are outside its namespace: its getppid() says 0
    }
    let want = match opts.pid_mode {
        PidMode::Any => None,
        _ => Some(t.task.pid),
    };
    let pid = match sys::spawn_child(want, &setup) {
        Ok(p) => p,
        Err(e) if want.is_some() && opts.pid_mode == PidMode::Prefer => {
            eprintln!(
                "ckpt-restore: pid {} is not available ({e}); the kernel chooses another",
                t.task.pid
            );
            sys::spawn_child(None, &setup).map_err(|e| sys_err("clone3", e))?
        }
        Err(e) => {
            return Err(Error::Pid(format!(
                "pid {} is not available: {e}",
                t.task.pid
            )))
        }
    };
    match ptrace::wait(pid).map_err(|e| sys_err("waitpid", e))? {
        WaitStatus::Stopped {
            sig: libc::SIGSTOP, ..
        } => {}
        WaitStatus::Exited(c) => {
            return Err(Error::System(format!(
                "the new process failed before it stopped: {} (exit {c})",
                sys::child_failure(c)
            )));
        }
        s => {
            guard.procs.push((pid, vec![pid]));
            return Err(Error::System(format!("the new process: unexpected {s:?}")));
        }
    }
    guard.procs.push((pid, vec![pid]));
    sys::ptrace_set_options(pid, TRACE_OPTIONS).map_err(|e| sys_err("PTRACE_SETOPTIONS", e))?;
    let main = Remote::new(pid, site0)?;
    prepare(t, i, pid, main, shape)
}

/// A process forked from its restored parent (an injected `clone3` like `fork`, with
/// the captured pid): it inherits every staging descriptor and the parent's session;
/// its own fd table, cwd and umask are set by injected calls.
pub(super) fn create_child<'a>(
    parent: &mut Proc,
    t: &'a TaskPlan,
    i: usize,
    st: &Staged,
    shape: &AreaShape,
    opts: &Options,
    guard: &mut Guard,
) -> Result<Proc<'a>, Error> {
    let data = parent.data();
    let pid = inject_clone(
        &mut parent.main,
        data,
        0,
        libc::SIGCHLD as u64,
        t.task.pid,
        "process",
        opts,
    )?;
    guard.procs.push((pid, vec![pid]));
    sys::ptrace_set_options(pid, TRACE_OPTIONS).map_err(|e| sys_err("PTRACE_SETOPTIONS", e))?;
    // The child's copy of the parent's injection area is its first site.
    let main = Remote::new(pid, parent.area)?;
    let mut p = prepare(t, i, pid, main, shape)?;
    let setup = fd_setup(t, i, st);
    for &(from, to, cloexec) in &setup.dups {
        let fl = if cloexec { libc::O_CLOEXEC } else { 0 };
        p.main.call(
            &format!("dup3 to fd {to}"),
            libc::SYS_dup3,
            &[from as u64, to as u64, fl as u64],
        )?;
    }
    for &(lo, hi) in &setup.close {
        p.main.call(
            "close_range",
            libc::SYS_close_range,
            &[lo as u64, hi as u64, 0],
        )?;
    }
    if let Some(c) = setup.cwd {
        p.main.call("fchdir", libc::SYS_fchdir, &[c as u64])?;
    }
    if let Some(m) = setup.umask {
        p.main.call("umask", libc::SYS_umask, &[m as u64])?;
    }
    Ok(p)
}

pub(super) const TRACE_OPTIONS: u64 =
    (libc::PTRACE_O_TRACECLONE | libc::PTRACE_O_TRACEFORK | libc::PTRACE_O_EXITKILL) as u64;

/// In a new stopped process: drop our libc's rseq registration and place the injection
/// area (free in the image's layout and in the process's current one).
pub(super) fn prepare<'a>(
    t: &'a TaskPlan,
    idx: usize,
    pid: i32,
    mut main: Remote,
    shape: &AreaShape,
) -> Result<Proc<'a>, Error> {
    // rseq registered by our libc for this copy of us: the kernel would write into memory
    // that is about to disappear.
    if let Ok(r) = ptrace::rseq_config(pid) {
        if r.ptr != 0 {
            main.call(
                "rseq unregister",
                libc::SYS_rseq,
                &[r.ptr, r.size as u64, 1, r.sig as u64],
            )?;
        }
    }
    let area = place_area(&mut main, t, shape.len)?;
    let code = [0x0fu8, 0x05, 0xcc];
    sys::write_pairs(pid, &[(area, &code)]).map_err(|e| sys_err("writing the syscall page", e))?;
    main.site = area;
    Ok(Proc {
        t,
        idx,
        pid,
        vpid: pid,
        main,
        area,
        threads: Vec::new(),
        stop_pending: false,
        pdeath: 0,
        shm: Vec::new(),
        epoll: Vec::new(),
    })
}

/// Make the blank process `p` the captured zombie: it exits with the captured status
/// (`exit_group(code)`, or its fatal signal with the default action), and we, its
/// tracer, collect that exit, which hands it to its real parent (the restored parent,
/// still a blank copy of us that does not reap) as a zombie to reap. Its pid, parent,
/// group and session were set and checked before. `plan::zombie_problem` refused the
/// statuses no exit gives.
pub(super) fn zombify(p: &mut Proc) -> Result<(), Error> {
    let pid = p.pid;
    let st = p.t.task.exit_code;
    let sig = (st & 0x7f) as i32;
    let what = |w: &str| format!("making zombie {pid} (status {st:#x}): {w}");
    if sig == 0 {
        let mut r = p.main.template;
        r.rax = libc::SYS_exit_group as u64;
        r.orig_rax = u64::MAX;
        r.rdi = ((st >> 8) & 0xff) as u64;
        r.rip = p.main.site;
        r.eflags &= !0x10100;
        ptrace::set_regs(pid, &r).map_err(|e| sys_err(what("PTRACE_SETREGS"), e))?;
    } else {
        // A blank copy has our dispositions (Rust ignores SIGPIPE): the default action.
        let zeros = [0u8; 32];
        sys::write_pairs(pid, &[(p.data(), &zeros)])
            .map_err(|e| sys_err(what("writing a sigaction"), e))?;
        p.main.call(
            &what("rt_sigaction(SIG_DFL)"),
            libc::SYS_rt_sigaction,
            &[sig as u64, p.data(), 0, 8],
        )?;
        sys::ptrace_set_sigmask(pid, 0).map_err(|e| sys_err(what("PTRACE_SETSIGMASK"), e))?;
        ptrace::tgkill(pid, pid, sig).map_err(|e| sys_err(what("tgkill"), e))?;
    }
    ptrace::cont(pid, 0).map_err(|e| sys_err(what("PTRACE_CONT"), e))?;
    loop {
        match ptrace::wait(pid).map_err(|e| sys_err(what("waitpid"), e))? {
            WaitStatus::Exited(c) if sig == 0 && c as u32 == (st >> 8) & 0xff => break,
            WaitStatus::Signaled(s) if s == sig => break,
            WaitStatus::Stopped { sig: s, event } => {
                // Its own signal arriving: deliver it (fatal); anything else: go on.
                let pass = if event == 0 && s == sig { sig } else { 0 };
                ptrace::cont(pid, pass).map_err(|e| sys_err(what("PTRACE_CONT"), e))?;
            }
            other => {
                return Err(Error::System(what(&format!("it ended as {other:?}"))));
            }
        }
    }
    Ok(())
}
