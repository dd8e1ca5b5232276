//! CRIU's per-process state onto the model's task and thread records: interval and POSIX
//! timers (`task_core_entry.timers`), process attributes (`oom_score_adj`,
//! `child_subreaper`, mm's `dumpable` and `thp_disabled`), per-thread scheduling
//! (`thread_core_entry.sched_*`) and the parent-death signal.
//!
//! Facts of CRIU's format (CRIU 4.1.1 `images/timer.proto`, `criu/proc_parse.c`), as our
//! own table:
//!
//! | CRIU | meaning |
//! |---|---|
//! | `itimer_entry` `isec`/`iusec`, `vsec`/`vusec` | period and time left of `ITIMER_REAL`, `ITIMER_VIRTUAL`, `ITIMER_PROF` (`real`, `virt`, `prof`) |
//! | `posix_timer_entry` | `it_id`, `clock_id`, `si_signo`, `sival_ptr`, `overrun`; `isec`/`insec` the period, `vsec`/`vnsec` the time left |
//! | `it_sigev_notify` | 0 signal, 1 none, 2 thread, 4 signal to the thread `notify_thread_id` |
//! | `sched_nice`, `sched_policy`, `sched_prio` | nice value, policy number, real-time priority |
//!
//! CRIU does not record a thread's CPU affinity, I/O priority or timer slack, nor the
//! process's `coredump_filter`: the thread record leaves them unset (empty affinity, 0),
//! which a restore leaves as the new process has them; `coredump_filter` is the kernel's
//! default (0x33).

use crate::image::{CriuError, Result};
use crate::pb;
use ckpt_format::model::{
    Itimer, Itimers, ParentDeathSignal, PosixTimer, PosixTimers, ProcessAttrs, ThreadAttrs,
};

/// The kernel's default `coredump_filter` (`MMF_DUMP_FILTER_DEFAULT`).
const COREDUMP_FILTER_DEFAULT: u64 = 0x33;

fn secs(file: &str, what: &str, s: u64, sub: u64, per_sec: u64) -> Result<(i64, i64)> {
    match i64::try_from(s) {
        Ok(s) if sub < per_sec => Ok((s, sub as i64)),
        _ => Err(CriuError::new(
            file,
            0,
            format!("{what}: {s} s and {sub} sub-second units"),
            format!("seconds up to 2^63-1 and fewer than {per_sec} sub-second units"),
        )),
    }
}

/// The interval timers (`None` when none is armed) and POSIX timers of a task core.
pub(crate) fn timers(
    t: &pb::TaskTimersEntry,
    file: &str,
) -> Result<(Option<Itimers>, Option<PosixTimers>)> {
    let one = |i: &pb::ItimerEntry, n: &str| -> Result<Itimer> {
        Ok(Itimer {
            interval: secs(file, n, i.isec, i.iusec, 1_000_000)?,
            value: secs(file, n, i.vsec, i.vusec, 1_000_000)?,
        })
    };
    let it = Itimers {
        timers: [
            one(&t.real, "ITIMER_REAL")?,
            one(&t.virt, "ITIMER_VIRTUAL")?,
            one(&t.prof, "ITIMER_PROF")?,
        ],
    };
    let armed = it.timers.iter().any(|t| t.value != (0, 0));
    let mut posix = Vec::with_capacity(t.posix.len());
    for p in &t.posix {
        let n = format!("POSIX timer {}", p.it_id);
        let id = i32::try_from(p.it_id)
            .map_err(|_| CriuError::new(file, 0, format!("{n}: id"), "a timer id up to 2^31-1"))?;
        posix.push(PosixTimer {
            id,
            clock: p.clock_id as i32,
            notify: p.it_sigev_notify as i32,
            signo: p.si_signo as i32,
            value: p.sival_ptr,
            tid: p.notify_thread_id.unwrap_or(0),
            overrun: p.overrun as i32,
            interval: secs(file, &n, p.isec, p.insec, 1_000_000_000)?,
            left: secs(file, &n, p.vsec, p.vnsec, 1_000_000_000)?,
        });
    }
    posix.sort_by_key(|p| p.id);
    if posix.windows(2).any(|w| w[0].id == w[1].id) {
        return Err(CriuError::new(
            file,
            0,
            "two POSIX timers of one id",
            "distinct timer ids",
        ));
    }
    Ok((
        armed.then_some(it),
        (!posix.is_empty()).then_some(PosixTimers { timers: posix }),
    ))
}

/// The process attributes of a task core and its mm.
pub(crate) fn process_attrs(tc: &pb::TaskCoreEntry, mm: Option<&pb::MmEntry>) -> ProcessAttrs {
    ProcessAttrs {
        oom_score_adj: tc.oom_score_adj.unwrap_or(0),
        dumpable: mm.and_then(|m| m.dumpable).map_or(1, |d| d as u32),
        coredump_filter: COREDUMP_FILTER_DEFAULT,
        child_subreaper: u32::from(tc.child_subreaper == Some(true)),
        thp_disable: u32::from(mm.and_then(|m| m.thp_disabled) == Some(true)),
    }
}

/// A thread's scheduling attributes (`None` when CRIU recorded none).
pub(crate) fn thread_attrs(tc: &pb::ThreadCoreEntry) -> Option<ThreadAttrs> {
    if tc.sched_policy.is_none() && tc.sched_nice.is_none() {
        return None;
    }
    Some(ThreadAttrs {
        nice: tc.sched_nice.unwrap_or(0),
        policy: tc.sched_policy.unwrap_or(0),
        rt_priority: tc.sched_prio.unwrap_or(0),
        ioprio: 0,
        timer_slack: 0,
        affinity: Vec::new(),
    })
}

/// The leader's parent-death signal, when set.
pub(crate) fn pdeath(tc: &pb::ThreadCoreEntry) -> Option<ParentDeathSignal> {
    tc.pdeath_sig
        .filter(|&s| s != 0)
        .map(|s| ParentDeathSignal { sig: s as u64 })
}
