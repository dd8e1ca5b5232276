//! Threads: cloned inside the restored process, their per-thread kernel state, and
//! finally their registers, FPU, TLS and signal masks.

use super::*;

/// The threads: the leader is the child itself; the others are cloned by it (and
/// guarded). Returns (tid, what it restores), leader first.
pub(super) fn clone_threads<'a>(
    main: &mut Remote,
    t: &'a TaskPlan,
    pid: i32,
    data: u64,
    opts: &Options,
    guarded: &mut Vec<i32>,
) -> Result<Vec<(i32, &'a Thread)>, Error> {
    let leader = t
        .threads
        .iter()
        .find(|th| th.tid == t.task.pid)
        .ok_or_else(|| Error::Image("no leader thread".into()))?;
    let mut built: Vec<(i32, &'a Thread)> = vec![(pid, leader)];
    for th in t.threads.iter().filter(|th| th.tid != t.task.pid) {
        let tid = inject_clone(main, data, THREAD_FLAGS, 0, th.tid, "thread", opts)?;
        guarded.push(tid);
        built.push((tid, th));
    }
    Ok(built)
}

/// Per-thread kernel state, set in each thread: clear_child_tid, the robust list, the
/// signal stack, rseq.
pub(super) fn kernel_state(
    remotes: &mut [&mut Remote],
    built: &[(i32, &Thread)],
    pid: i32,
    data: u64,
) -> Result<(), Error> {
    for (k, (_, th)) in built.iter().enumerate() {
        let r = &mut *remotes[k];
        let rec = &th.records;
        if let Some(c) = &rec.clear_child_tid {
            r.call("set_tid_address", libc::SYS_set_tid_address, &[c.addr])?;
        }
        if let Some(l) = rec.robust_list.filter(|l| l.head != 0) {
            r.call(
                "set_robust_list",
                libc::SYS_set_robust_list,
                &[l.head, l.len],
            )?;
        }
        // The signal stack, or none: the leader is a fork of ckpt-restore and has its
        // signal stack (Rust's std sets one up), whose memory is gone now. A handler
        // with SA_ONSTACK (Python's) was then delivered onto it: SIGSEGV.
        let s = rec.sigaltstack.filter(|s| s.flags & 2 == 0);
        let (sp, flags, size) = s.map_or((0, 2, 0), |s| (s.sp, s.flags & !1, s.size));
        let mut b = Vec::new();
        b.extend_from_slice(&sp.to_le_bytes());
        b.extend_from_slice(&flags.to_le_bytes());
        b.extend_from_slice(&0u32.to_le_bytes());
        b.extend_from_slice(&size.to_le_bytes());
        sys::write_pairs(pid, &[(data + 2560, &b)]).map_err(|e| sys_err("writing stack_t", e))?;
        r.call("sigaltstack", libc::SYS_sigaltstack, &[data + 2560, 0])?;
        // rseq: the same area again (its memory is restored), so the kernel keeps its
        // cpu/node ids current as before (glibc's sched_getcpu reads them from there).
        if let Some(q) = rec.rseq.filter(|q| q.ptr != 0) {
            r.call(
                "rseq (register)",
                libc::SYS_rseq,
                &[q.ptr, q.len as u64, 0, q.sig as u64],
            )?;
        }
    }
    Ok(())
}

pub(super) const THREAD_FLAGS: u64 = (libc::CLONE_VM
    | libc::CLONE_FS
    | libc::CLONE_FILES
    | libc::CLONE_SIGHAND
    | libc::CLONE_THREAD
    | libc::CLONE_SYSVSEM) as u64;

/// An injected `clone3(flags, exit_signal, set_tid = [want])` in `main`'s process (a
/// thread with [`THREAD_FLAGS`], a process with 0 + `SIGCHLD`); `data` is the process's
/// argument page. The new task is auto-attached (`PTRACE_O_TRACECLONE`/`TRACEFORK`) and
/// waited for in its first stop; returns its id.
pub(super) fn inject_clone(
    main: &mut Remote,
    data: u64,
    flags: u64,
    exit_signal: u64,
    want: i32,
    what: &str,
    opts: &Options,
) -> Result<i32, Error> {
    let pid = main.tid;
    let args_at = data + 2048;
    let tid_at = data + 2048 + 128;
    let attempt = |set: bool, main: &mut Remote| -> Result<i64, Error> {
        let mut b = Vec::with_capacity(88);
        let vals = [
            flags,
            0,
            0,
            0,
            exit_signal,
            0,
            0,
            0,
            if set { tid_at } else { 0 },
            set as u64,
            0,
        ];
        for v in vals {
            b.extend_from_slice(&v.to_le_bytes());
        }
        let tb = (want as u32).to_le_bytes();
        sys::write_pairs(pid, &[(args_at, &b), (tid_at, &tb)])
            .map_err(|e| sys_err("writing clone_args", e))?;
        main.last_clone = None;
        main.raw(libc::SYS_clone3, &[args_at, 88])
    };
    let idw = if what == "thread" { "thread id" } else { "pid" };
    let set = opts.pid_mode != PidMode::Any;
    let mut r = attempt(set, main)?;
    if r < 0 && set {
        // A child process under another pid would leave its restored parent holding a
        // stale one (a `sh` waiting for it spins): only `--pid-any` accepts that.
        if matches!(opts.pid_mode, PidMode::Same | PidMode::Namespace) || what == "process" {
            return Err(Error::Pid(format!(
                "{idw} {want} is not available: {}{}",
                std::io::Error::from_raw_os_error((-r) as i32),
                if what == "process" {
                    "; its restored parent would hold a stale pid (--pid-ns gives every process its pid in a new pid namespace; --pid-any accepts new pids)"
                } else {
                    ""
                }
            )));
        }
        eprintln!(
            "ckpt-restore: {idw} {want} is not available ({}); the kernel chooses another",
            std::io::Error::from_raw_os_error((-r) as i32)
        );
        r = attempt(false, main)?;
    }
    if r <= 0 {
        return Err(Error::System(format!(
            "clone3 of a {what} in the restored process {pid}: {}",
            std::io::Error::from_raw_os_error((-r) as i32)
        )));
    }
    // `r` is its id in the restored process's pid namespace; the clone event's message
    // is its id in ours (the same number unless `--pid-ns`).
    let tid = main.last_clone.unwrap_or(r as i32);
    // The new task is auto-attached and stops with SIGSTOP before running user code.
    match ptrace::wait(tid).map_err(|e| sys_err(format!("waitpid new {what}"), e))? {
        WaitStatus::Stopped { .. } => {}
        s => return Err(Error::System(format!("new {what} {tid}: unexpected {s:?}"))),
    }
    Ok(tid)
}

/// Registers (with syscall restart), FPU, TLS and the blocked mask of one thread.
pub(super) fn load_thread(pid: i32, tid: i32, th: &Thread) -> Result<(), Error> {
    let a = th.regs;
    // SAFETY-free: user_regs_struct is plain integers.
    let mut r = ptrace::get_regs(tid).map_err(|e| sys_err("PTRACE_GETREGS", e))?;
    (
        r.r15, r.r14, r.r13, r.r12, r.rbp, r.rbx, r.r11, r.r10, r.r9, r.r8, r.rax, r.rcx, r.rdx,
        r.rsi, r.rdi, r.orig_rax, r.rip, r.cs, r.eflags, r.rsp, r.ss, r.fs_base, r.gs_base,
    ) = (
        a.r15, a.r14, a.r13, a.r12, a.rbp, a.rbx, a.r11, a.r10, a.r9, a.r8, a.rax, a.rcx, a.rdx,
        a.rsi, a.rdi, a.orig_rax, a.rip, a.cs, a.eflags, a.rsp, a.ss, a.fs_base, a.gs_base,
    );
    (r.ds, r.es, r.fs, r.gs) = (a.ds, a.es, a.fs, a.gs);
    // A thread captured inside an interrupted system call re-issues it: rewind over the
    // 2-byte `syscall` and load the call number again. -ERESTART_RESTARTBLOCK would go
    // through restart_syscall(), whose kernel state is not in the image: we re-issue the
    // original call too (a relative sleep starts over). orig_rax = -1 so the kernel's
    // own restart logic does not apply on top.
    let rax = a.rax as i64;
    if (a.orig_rax as i64) >= 0
        && matches!(
            rax,
            ERESTARTSYS | ERESTARTNOINTR | ERESTARTNOHAND | ERESTART_RESTARTBLOCK
        )
    {
        let mut insn = [0u8; 2];
        ckpt_sys::mem::read_remote(pid, a.rip.wrapping_sub(2), &mut insn)
            .map_err(|e| sys_err("reading the syscall instruction", e))?;
        if insn == [0x0f, 0x05] {
            r.rip = a.rip - 2;
            r.rax = a.orig_rax;
        }
    }
    r.orig_rax = u64::MAX;
    ptrace::set_regs(tid, &r).map_err(|e| sys_err(format!("PTRACE_SETREGS tid {tid}"), e))?;
    if let Some(f) = &th.fpu {
        match f.kind {
            FpuKind::Xsave => {
                let here = crate::xsave::Layout::this_cpu()
                    .ok_or_else(|| Error::System("this CPU has no XSAVE enabled".into()))?;
                let area = match crate::xsave::fit(&f.data, f.xfeatures, &here)
                    .map_err(|e| Error::Incompatible(vec![format!("thread {tid}: {e}")]))?
                {
                    crate::xsave::Fit::AsIs => std::borrow::Cow::Borrowed(&f.data[..]),
                    crate::xsave::Fit::Relayout { area, .. } => std::borrow::Cow::Owned(area),
                };
                ptrace::set_xstate(tid, &area).map_err(|e| sys_err(format!("tid {tid}"), e))?
            }
            FpuKind::Fxsave => sys::ptrace_set_fpregs(tid, &f.data)
                .map_err(|e| sys_err(format!("PTRACE_SETFPREGS tid {tid}"), e))?,
            FpuKind::Legacy => {
                return Err(Error::Incompatible(vec![format!(
                    "thread {}: legacy FPU layout",
                    th.tid
                )]))
            }
        }
    }
    if !th.tls.is_empty() {
        ptrace::set_tls(tid, &th.tls).map_err(|e| sys_err(format!("tid {tid}"), e))?;
    }
    sys::ptrace_set_sigmask(tid, th.sigmask)
        .map_err(|e| sys_err(format!("PTRACE_SETSIGMASK tid {tid}"), e))?;
    Ok(())
}
