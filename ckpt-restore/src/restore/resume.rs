//! Reshaping one process into its image, phase by phase ([`finish`]), and the last
//! steps before release: signal dispositions and pending signals.

use super::*;

/// Reshape one process into its image: address space, mm, signals, threads,
/// per-thread state, timers, attributes, credentials, registers, limits. Leaves every
/// thread stopped.
pub(super) fn finish<'a>(
    p: &mut Proc<'a>,
    st: &Staged,
    shape: &AreaShape,
    image: &[u8],
    opts: &Options,
    pids: &std::collections::HashMap<i32, i32>,
    guard: &mut Guard,
) -> Result<(), Error> {
    let t = p.t;
    let pdeath = p.pdeath;
    let pid = p.pid;
    let area = p.area;
    let area_len = shape.len;
    let data = p.data();
    let ours = shape.ours.as_slice();
    let gi = guard
        .procs
        .iter()
        .position(|g| g.0 == pid)
        .ok_or_else(|| Error::System(format!("pid {pid} is not guarded")))?;
    let exe = st.exe[p.idx];
    let main = &mut p.main;
    let shm = std::mem::take(&mut p.shm);
    let proxy_to = memory::address_space(
        main,
        t,
        st,
        image,
        pid,
        area,
        area_len,
        ours,
        &shm,
        &shape.our_bytes,
    )?;
    for (epfd, targets) in std::mem::take(&mut p.epoll) {
        for tg in targets {
            let ev = crate::anon::epoll_event_bytes(tg.events, tg.data);
            sys::write_pairs(pid, &[(data, &ev)])
                .map_err(|e| sys_err("writing an epoll_event", e))?;
            main.call(
                &format!("epoll_ctl(ADD) of fd {} to eventpoll fd {epfd}", tg.fd),
                libc::SYS_epoll_ctl,
                &[epfd as u64, libc::EPOLL_CTL_ADD as u64, tg.fd as u64, data],
            )?;
        }
    }
    memory::mm_fields(main, t, pid, data, exe, proxy_to)?;
    sigactions(main, t, pid, data)?;
    let built = threads::clone_threads(main, t, pid, data, opts, &mut guard.procs[gi].1)?;
    let mut remotes: Vec<&mut Remote> = vec![main];
    let mut others: Vec<Remote> = Vec::new();
    for &(tid, _) in &built[1..] {
        others.push(Remote::new(tid, area)?);
    }
    remotes.extend(others.iter_mut());
    threads::kernel_state(&mut remotes, &built, pid, data)?;
    // Seccomp filters: now when we may suspend them for the rest (seccomp.rs), else last.
    let filters = seccomp::any(t);
    let early = filters && seccomp::suspend(&built);
    if early {
        seccomp::install(&mut remotes, &built, pid)?;
    }
    attrs::timers(&mut remotes, &built, t, pid, data, pids)?;
    attrs::attributes(&mut remotes, &built, t, pid)?;
    creds::limits_and_creds(&mut remotes, t, st, pid, data, pdeath)?;
    p.stop_pending = pending_signals(&mut remotes, &built, t, pid, data)?;
    attrs::dumpable(remotes[0], t)?;
    if filters && !early {
        seccomp::install(&mut remotes, &built, pid)?;
    }
    remotes[0].call(
        "munmap (injection area)",
        libc::SYS_munmap,
        &[area, area_len],
    )?;

    // Registers, FPU, TLS, masks.
    for (tid, th) in &built {
        load_thread(pid, *tid, th)?;
    }
    p.threads = built;
    Ok(())
}

/// Signal dispositions.
pub(super) fn sigactions(
    main: &mut Remote,
    t: &TaskPlan,
    pid: i32,
    data: u64,
) -> Result<(), Error> {
    if !t.sigactions.is_empty() {
        let mut b = Vec::with_capacity(t.sigactions.len() * 32);
        for a in &t.sigactions {
            for v in [a.handler, a.flags, a.restorer, a.mask] {
                b.extend_from_slice(&v.to_le_bytes());
            }
        }
        if b.len() > 2 * PAGE as usize {
            return Err(Error::Image("too many signal actions".into()));
        }
        sys::write_pairs(pid, &[(data + 4096, &b)])
            .map_err(|e| sys_err("writing sigactions", e))?;
        for (i, _) in t.sigactions.iter().enumerate() {
            let sig = i as u64 + 1;
            if sig == libc::SIGKILL as u64 || sig == libc::SIGSTOP as u64 {
                continue;
            }
            main.call(
                &format!("rt_sigaction({sig})"),
                libc::SYS_rt_sigaction,
                &[sig, data + 4096 + i as u64 * 32, 0, 8],
            )?;
        }
    }
    Ok(())
}

/// Pending signals, queued with every signal blocked; returns whether a `SIGSTOP` was
/// pending (the process is then stopped at the release).
pub(super) fn pending_signals(
    remotes: &mut [&mut Remote],
    built: &[(i32, &Thread)],
    t: &TaskPlan,
    pid: i32,
    data: u64,
) -> Result<bool, Error> {
    // Pending signals, the last calls but one, with every signal blocked in every thread
    // (the captured masks are loaded below), so none is delivered while we still inject
    // (a delivery stop during an injected step is dropped) and all wait for the release.
    // rt_(tg)sigqueueinfo keeps the siginfo as given when the caller is the target
    // thread (for the shared queue: the leader, whose tid is the pid), whatever si_code.
    let shared =
        signals::queue(signals::shared_queue(&t.task), "shared_pending").map_err(Error::Image)?;
    let mut queues = Vec::with_capacity(built.len());
    for (_, th) in built {
        queues.push(
            signals::queue(signals::thread_queue(th), "pending_signals").map_err(Error::Image)?,
        );
    }
    let mut stop_pending = false;
    if !shared.is_empty() || queues.iter().any(|q| !q.is_empty()) {
        for (tid, _) in built {
            sys::ptrace_set_sigmask(*tid, u64::MAX)
                .map_err(|e| sys_err(format!("PTRACE_SETSIGMASK tid {tid}"), e))?;
        }
        let at = data + 3072;
        let mut send = |r: &mut Remote, tid: Option<i32>, s: &signals::Pending| {
            if s.sig == libc::SIGSTOP {
                // Not blockable: it would stop the thread during the next injected step.
                // The process is stopped at the release instead.
                stop_pending = true;
                return Ok(());
            }
            sys::write_pairs(pid, &[(at, s.info)]).map_err(|e| sys_err("writing siginfo", e))?;
            match tid {
                Some(tid) => r.call(
                    &format!("rt_tgsigqueueinfo({})", s.sig),
                    libc::SYS_rt_tgsigqueueinfo,
                    &[pid as u64, tid as u64, s.sig as u64, at],
                ),
                None => r.call(
                    &format!("rt_sigqueueinfo({})", s.sig),
                    libc::SYS_rt_sigqueueinfo,
                    &[pid as u64, s.sig as u64, at],
                ),
            }
            .map(|_| ())
        };
        for (k, q) in queues.iter().enumerate() {
            let tid = built[k].0;
            for s in q {
                send(&mut *remotes[k], Some(tid), s)?;
            }
        }
        for s in &shared {
            send(&mut *remotes[0], None, s)?;
        }
    }
    Ok(stop_pending)
}
