//! The per-task sequence: collect a frozen task's state and emit its events.

use super::*;

#[allow(clippy::too_many_arguments)]
pub(super) fn capture_task(
    p: &Proc,
    is_root: bool,
    opts: &Options,
    shared: &mut Shared,
    sink: &mut dyn EventSink,
    stats: &mut Stats,
    progress: &mut dyn Progress,
) -> Result<(), CaptureError> {
    let pid = p.pid;
    let ev = |sink: &mut dyn EventSink, e: Event<'_>| sink.event(&e).map_err(fmt_err);
    let status = procfs::status(&pid.to_string()).map_err(sys(format!("pid {pid}")))?;
    let mut tr = TaskRecords::default();
    let cap = |k: &str| status.get(k).map(|v| procfs::hex_mask(v));
    if let (Some(inh), Some(prm), Some(eff), Some(bnd), Some(amb)) = (
        cap("CapInh"),
        cap("CapPrm"),
        cap("CapEff"),
        cap("CapBnd"),
        cap("CapAmb"),
    ) {
        tr.caps = Some(Capabilities {
            inh,
            prm,
            eff,
            bnd,
            amb,
        });
    }
    let num = |k: &str| status.get(k).and_then(|v| v.parse::<u64>().ok());
    if let (Some(seccomp_mode), Some(no_new_privs)) = (num("Seccomp"), num("NoNewPrivs")) {
        tr.security = Some(Security {
            no_new_privs,
            seccomp_mode,
        });
    }
    // The process-wide pending queue, read (not dequeued) through any stopped thread.
    if let Some(f) = &p.frozen {
        if let Some(&tid) = f.threads().first() {
            let q = ptrace::peek_siginfo(tid, true)
                .map_err(sys(format!("pid {pid}: shared pending signals")))?;
            if !q.is_empty() {
                tr.shared_pending = Some(SharedPending {
                    queue: SigInfo::split(&q).ok_or_else(|| {
                        CaptureError::new(
                            ErrorKind::Io,
                            format!("pid {pid}: shared pending signals: {} bytes is no whole number of siginfo", q.len()),
                        )
                    })?,
                });
            }
        }
    }
    let real_ppid = p.stat.field(4) as i32;
    if is_root {
        tr.real_parent = Some(RealParent { ppid: real_ppid });
    }
    if let Some(&sig) = shared.pdeath.get(&pid) {
        tr.pdeath_signal = Some(ParentDeathSignal { sig });
    }
    if let Some(t) = shared.timers.get(&pid) {
        (tr.itimers, tr.posix_timers) = crate::timers::records(t);
    }
    if p.frozen.is_some() {
        tr.exe = contents::exe_contents(pid, shared)?.map(|file| ExeContents { file });
        let locks = contents::posix_locks(pid)?;
        if !locks.is_empty() {
            tr.posix_locks = Some(PosixLocks { locks });
        }
    }
    tr.attrs = shared.proc_attrs.get(&pid).copied();
    // Stopped (job control): the signal that stopped it, as the seize's group stop
    // reports it (the kernel keeps it after the parent's waitpid cleared stat field 52).
    if p.stat.state == b'T' {
        if let Some(f) = &p.frozen {
            let sig = f.stopped().first().map_or(0, |t| t.stop_sig);
            if matches!(
                sig,
                libc::SIGSTOP | libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU
            ) {
                tr.job_stop = Some(ckpt_format::JobStop { sig: sig as u32 });
            }
        }
    }
    tr.securebits = shared
        .securebits
        .get(&pid)
        .map(|&bits| ckpt_format::Securebits { bits });
    let task = Task {
        pid,
        tgid: pid,
        ppid: if is_root { 0 } else { real_ppid },
        pgid: p.stat.field(5) as i32,
        sid: p.stat.field(6) as i32,
        comm: p.stat.comm.clone(),
        state: task_state(p.stat.state),
        exit_state: if p.frozen.is_none() { 32 } else { 0 },
        // A zombie's wait status (field 52: exit code << 8, or the signal | 0x80 core).
        exit_code: if p.frozen.is_none() {
            p.stat.field(52) as u32
        } else {
            0
        },
        exit_signal: p.stat.field(38) as u32,
        creds: Creds {
            uid: ids4(status.get("Uid")),
            gid: ids4(status.get("Gid")),
            groups: status
                .get("Groups")
                .map(|g| {
                    g.split_whitespace()
                        .filter_map(|x| x.parse().ok())
                        .collect()
                })
                .unwrap_or_default(),
        },
        records: tr,
        extras: Extras::new(),
    };
    ev(sink, Event::Task(task))?;
    stats.tasks += 1;
    let Some(frozen) = &p.frozen else {
        return Ok(()); // a zombie: nothing more to capture
    };
    let tids = frozen.threads();

    // A thread stopped inside the vdso first finishes that call, so that the image does
    // not depend on this kernel's vdso code (docs/CAPTURE.md, "Threads").
    let maps = procfs::maps(pid).map_err(sys(format!("pid {pid}: maps")))?;
    if let Some(v) = maps.iter().find(|m| m.path.as_deref() == Some(b"[vdso]")) {
        for &tid in &tids {
            ckpt_sys::freeze::step_out_of(pid, tid, v.start, v.end).map_err(sys(format!(
                "pid {pid} thread {tid}: stepping out of the vdso"
            )))?;
        }
    }

    // Threads: registers etc. first, before anything is injected.
    let mut threads = Vec::with_capacity(tids.len());
    for &tid in &tids {
        let ctx = format!("pid {pid} thread {tid}");
        let regs = ptrace::get_regs(tid).map_err(sys(&ctx))?;
        let xs = ptrace::get_xstate(tid).map_err(sys(&ctx))?;
        let tls = ptrace::get_tls(tid).map_err(sys(&ctx))?;
        let st = procfs::status(&format!("{pid}/task/{tid}")).map_err(sys(&ctx))?;
        let sigmask = st.get("SigBlk").map(|v| procfs::hex_mask(v)).unwrap_or(0);
        let mut x = ThreadRecords::default();
        if let Ok((head, len)) = ptrace::get_robust_list(tid) {
            x.robust_list = Some(RobustList { head, len });
        }
        // Signals sent to this thread, with their siginfo, in queue order (not dequeued).
        let q = ptrace::peek_siginfo(tid, false).map_err(sys(format!("{ctx}: pending signals")))?;
        let queue = SigInfo::split(&q).ok_or_else(|| {
            CaptureError::new(
                ErrorKind::Io,
                format!(
                    "{ctx}: pending signals: {} bytes is no whole number of siginfo",
                    q.len()
                ),
            )
        })?;
        let mask = st.get("SigPnd").map(|v| procfs::hex_mask(v));
        if mask.is_some() || !queue.is_empty() {
            x.pending = Some(PendingSignals {
                mask: mask.unwrap_or(0),
                queue,
            });
        }
        x.attrs = shared.thread_attrs.get(&tid).cloned();
        x.seccomp = shared.seccomp.get(&tid).cloned();
        // rseq (glibc registers every thread): restore re-registers the same area.
        if let Ok(r) = ptrace::rseq_config(tid) {
            if r.ptr != 0 {
                x.rseq = Some(Rseq {
                    ptr: r.ptr,
                    len: r.size,
                    sig: r.sig,
                });
            }
        }
        threads.push((
            tid,
            regs,
            Thread {
                tid,
                regs: regs_of(&regs),
                fpu: Some(Fpu {
                    kind: FpuKind::Xsave,
                    xfeatures: ptrace::xstate_xcr0(&xs),
                    data: xs,
                }),
                tls,
                sigmask,
                records: x,
                extras: Extras::new(),
            },
        ));
    }
    let inj = inject_all(pid, &tids).map_err(sys(format!(
        "pid {pid}: injecting syscalls to read signal actions"
    )))?;
    for (tid, before, mut t) in threads {
        // The injector must have put every register back.
        let after = ptrace::get_regs(tid).map_err(sys(format!("pid {pid} thread {tid}")))?;
        if regs_of(&after) != regs_of(&before) {
            return Err(CaptureError::new(
                ErrorKind::Io,
                format!("pid {pid} thread {tid}: registers changed across injection"),
            ));
        }
        if let Some(x) = inj.per_thread.get(&tid) {
            t.records.sigaltstack = x.sigaltstack;
            t.records.clear_child_tid = x.clear_child_tid;
        }
        ev(sink, Event::Thread(t))?;
        stats.threads += 1;
    }

    // mm
    let s = &p.stat;
    let maps = procfs::smaps(pid).map_err(sys(format!("pid {pid} smaps")))?;
    let heap_end = maps
        .iter()
        .find(|m| m.path.as_deref() == Some(b"[heap]"))
        .map(|m| m.end);
    let mm = Mm {
        start_code: s.ufield(26),
        end_code: s.ufield(27),
        start_data: s.ufield(45),
        end_data: s.ufield(46),
        start_brk: s.ufield(47),
        brk: inj.brk.or(heap_end).unwrap_or(s.ufield(47)),
        start_stack: s.ufield(28),
        arg_start: s.ufield(48),
        arg_end: s.ufield(49),
        env_start: s.ufield(50),
        env_end: s.ufield(51),
        auxv: procfs::auxv(pid).map_err(sys(format!("pid {pid} auxv")))?,
        exe: procfs::readlink(&format!("/proc/{pid}/exe")).ok(),
        personality: procfs::personality(pid).unwrap_or(0),
        extras: Extras::new(),
    };
    ev(sink, Event::Mm(mm))?;

    // VMAs: plan (presence) first, so the total is known for progress.
    let mut scan = PageScan::open(pid).map_err(sys(format!("pid {pid}")))?;
    let mut plan = Vec::with_capacity(maps.len());
    let mut total_pages = 0u64;
    for m in &maps {
        let (mut vma, store) = vma_of(m);
        if vma.kind == VmaKind::File {
            vma.records.contents =
                contents::map_contents(pid, m, shared).map(|file| MapContents { file });
        }
        let ranges: Vec<(u64, u64)> = match store {
            Store::Nothing => Vec::new(),
            Store::All => vec![(m.start, m.end)],
            Store::Scan(sel) => scan.scan(m.start, m.end, sel).map_err(sys(format!(
                "pid {pid} page scan of {:#x}-{:#x}",
                m.start, m.end
            )))?,
        };
        // An increment keeps the pages unchanged since its parent there (precopy.rs).
        let (ranges, parent) = match &shared.split {
            Some(sp) if is_root => sp.split(pid, m, ranges)?,
            _ => (ranges, Vec::new()),
        };
        total_pages += ranges
            .iter()
            .map(|r| (r.1 - r.0) / PAGE_SIZE as u64)
            .sum::<u64>();
        plan.push((vma, ranges, parent));
    }
    progress.add_total(total_pages);
    let memf = mem::open_mem(pid, false).map_err(sys(format!("pid {pid}")))?;
    let batch_bytes = opts.batch_bytes.clamp(PAGE_SIZE, 64 << 20) & !(PAGE_SIZE - 1);
    let batches: Vec<Batch> = plan
        .iter()
        .enumerate()
        .flat_map(|(vi, (_, ranges, parent))| batches_of(vi, ranges, parent, batch_bytes))
        .collect();
    let mut em = PageEmitter::new(sink, opts.chunk_pages);
    // A reader thread fills one buffer with process_vm_readv while this thread checks,
    // encodes and writes the other (pipelined; two buffers in flight).
    if !opts.pipeline {
        // One buffer, read then emit: the data stays in this core's cache between the
        // read, the checks and the write when batches are small.
        let mut buf = vec![0u8; batch_bytes];
        let mut bi = 0;
        for (vi, (vma, _, parent)) in plan.iter().enumerate() {
            em.sink.event(&Event::Vma(vma.clone())).map_err(fmt_err)?;
            stats.vmas += 1;
            let mut pi = 0;
            while bi < batches.len() && batches[bi].vma == vi {
                let b = &batches[bi];
                em.parents(parent, &mut pi, b.ranges[0].0)?;
                read_batch(pid, &b.ranges, &mut buf[..b.len], &memf, vma.start, vma.end)?;
                em.batch(&b.ranges, &buf[..b.len])?;
                progress.advance((b.len / PAGE_SIZE) as u64);
                bi += 1;
            }
            em.parents(parent, &mut pi, u64::MAX)?;
            em.flush_zero()?;
            em.sink.event(&Event::VmaEnd).map_err(fmt_err)?;
        }
    } else {
        std::thread::scope(|scope| -> Result<(), CaptureError> {
            let (free_tx, free_rx) = mpsc::channel::<Vec<u8>>();
            let (full_tx, full_rx) = mpsc::sync_channel::<(Vec<u8>, Result<(), CaptureError>)>(2);
            for _ in 0..2 {
                let _ = free_tx.send(vec![0u8; batch_bytes]);
            }
            let (batches_ref, memf_ref, plan_ref) = (&batches, &memf, &plan);
            scope.spawn(move || {
                for b in batches_ref {
                    let Ok(mut buf) = free_rx.recv() else {
                        return;
                    };
                    let v = &plan_ref[b.vma].0;
                    let r = read_batch(pid, &b.ranges, &mut buf[..b.len], memf_ref, v.start, v.end);
                    let failed = r.is_err();
                    if full_tx.send((buf, r)).is_err() || failed {
                        return;
                    }
                }
            });
            let mut bi = 0;
            for (vi, (vma, _, parent)) in plan.iter().enumerate() {
                em.sink.event(&Event::Vma(vma.clone())).map_err(fmt_err)?;
                stats.vmas += 1;
                let mut pi = 0;
                while bi < batches.len() && batches[bi].vma == vi {
                    em.parents(parent, &mut pi, batches[bi].ranges[0].0)?;
                    let (buf, r) = full_rx.recv().map_err(|_| {
                        CaptureError::new(ErrorKind::Io, format!("pid {pid}: page reader stopped"))
                    })?;
                    r?;
                    let b = &batches[bi];
                    em.batch(&b.ranges, &buf[..b.len])?;
                    progress.advance((b.len / PAGE_SIZE) as u64);
                    let _ = free_tx.send(buf);
                    bi += 1;
                }
                em.parents(parent, &mut pi, u64::MAX)?;
                em.flush_zero()?;
                em.sink.event(&Event::VmaEnd).map_err(fmt_err)?;
            }
            Ok(())
        })?;
    }
    stats.pages_stored += em.stored;
    stats.zero_pages += em.zeros;
    stats.parent_pages += em.parent_pages;

    // fs, signals, limits
    let umask = status
        .get("Umask")
        .and_then(|u| u32::from_str_radix(u, 8).ok())
        .unwrap_or(0o022);
    ev(
        sink,
        Event::Fs(Fs {
            cwd: procfs::readlink(&format!("/proc/{pid}/cwd"))
                .map_err(sys(format!("pid {pid}")))?,
            root: procfs::readlink(&format!("/proc/{pid}/root"))
                .map_err(sys(format!("pid {pid}")))?,
            umask,
        }),
    )?;
    ev(sink, Event::SigActions(inj.sigactions))?;
    let rl = crate::diag::rlimits(pid).map_err(sys(format!("pid {pid}")))?;
    ev(
        sink,
        Event::Rlimits(
            rl.into_iter()
                .map(|(cur, max)| Rlimit { cur, max })
                .collect(),
        ),
    )?;

    contents::emit_inodes(shared, sink)?;
    capture_fds(pid, opts, shared, sink)
}

pub(super) fn read_batch(
    pid: i32,
    batch: &[(u64, usize)],
    buf: &mut [u8],
    memf: &std::fs::File,
    vs: u64,
    ve: u64,
) -> Result<(), CaptureError> {
    mem::read_ranges(pid, batch, buf, Some(memf)).map_err(sys(format!(
        "pid {pid}: reading pages of VMA {vs:#x}-{ve:#x}"
    )))
}
