//! Timers and attributes of a restored process, set before it runs. Timers, by injected
//! calls: POSIX timers under their captured ids (`PR_TIMER_CREATE_RESTORE_IDS`, see
//! [`crate::timers`]) and the interval timers, each armed with the time it had left.
//! Attributes ([`attributes`], [`dumpable`]): from here with the `ckpt_sys::attrs`
//! setters, or injected `prctl` where only the process itself can set them.
//!
//! Every thread has every signal blocked first (the captured masks are loaded at the
//! end): a timer that expires meanwhile leaves its signal pending for the release
//! instead of stopping an injected call (whose signal stops are dropped).

use super::*;
use crate::timers::{
    sigevent_bytes, timer_bytes, PR_TIMER_CREATE_RESTORE_IDS, RESTORE_IDS_OFF, RESTORE_IDS_ON,
    SIGEV_THREAD_ID,
};
use std::collections::HashMap;

/// Most temporary timers made to reach one id when the kernel cannot take ids.
const MAX_FILL: i32 = 4096;

/// A clock with the process or thread it names mapped to its new id.
fn map_clock(
    clock: i32,
    pids: &HashMap<i32, i32>,
    tids: &HashMap<i32, i32>,
) -> Result<i32, String> {
    if clock >= 0 {
        return Ok(clock);
    }
    let (id, thread) = (!(clock >> 3), clock & 4 != 0);
    if id == 0 {
        return Ok(clock);
    }
    let map = if thread { tids } else { pids };
    let new = map.get(&id).ok_or_else(|| {
        format!(
            "its clock {clock} is the CPU clock of {} {id}, which is not restored",
            if thread { "thread" } else { "process" }
        )
    })?;
    Ok((!new << 3) | (clock & 7))
}

/// Interval timers and POSIX timers of `t`, armed with the time they had left.
pub(super) fn timers(
    remotes: &mut [&mut Remote],
    built: &[(i32, &Thread)],
    t: &TaskPlan,
    pid: i32,
    data: u64,
    pids: &HashMap<i32, i32>,
) -> Result<(), Error> {
    let r = &t.task.records;
    let posix = r.posix_timers.as_ref().map_or(&[][..], |p| &p.timers[..]);
    let itimers = r.itimers.map(|i| i.timers).unwrap_or_default();
    let armed_it: Vec<usize> = (0..3).filter(|&w| itimers[w].value != (0, 0)).collect();
    if posix.is_empty() && armed_it.is_empty() {
        return Ok(());
    }
    for (tid, _) in built {
        sys::ptrace_set_sigmask(*tid, u64::MAX)
            .map_err(|e| sys_err(format!("PTRACE_SETSIGMASK tid {tid}"), e))?;
    }
    // Thread ids as the process sees them (its namespace's, under --pid-ns).
    let tids = built
        .iter()
        .map(|(new, th)| {
            crate::pidns::ns_pid(*new)
                .map(|v| (th.tid, v))
                .map_err(|e| sys_err(format!("the id of thread {new} in its namespace"), e))
        })
        .collect::<Result<HashMap<i32, i32>, Error>>()?;
    let main = &mut *remotes[0];
    let (ev_at, id_at, its_at) = (data + 4096, data + 4096 + 64, data + 4096 + 96);
    if !posix.is_empty() {
        let by_id = main.raw(
            libc::SYS_prctl,
            &[PR_TIMER_CREATE_RESTORE_IDS, RESTORE_IDS_ON, 0, 0, 0],
        )? == 0;
        let mut fillers = Vec::new();
        let mut sorted: Vec<&ckpt_format::PosixTimer> = posix.iter().collect();
        sorted.sort_by_key(|p| p.id);
        for p in sorted {
            let what = format!("POSIX timer {}", p.id);
            let clock = map_clock(p.clock, pids, &tids)
                .map_err(|e| Error::Image(format!("pid {pid}: {what}: {e}")))?;
            let target = if p.notify & SIGEV_THREAD_ID != 0 {
                *tids.get(&p.tid).ok_or_else(|| {
                    Error::Image(format!(
                        "pid {pid}: {what} signals thread {}, which is not in the image",
                        p.tid
                    ))
                })?
            } else {
                0
            };
            let ev = sigevent_bytes(p.value, p.signo, p.notify, target);
            // Without the kernel taking ids, a new process numbers its timers from 0 up:
            // temporary timers fill the ids below the wanted one.
            let got = loop {
                sys::write_pairs(pid, &[(ev_at, &ev), (id_at, &p.id.to_le_bytes())])
                    .map_err(|e| sys_err("writing a sigevent", e))?;
                main.call(
                    &format!("timer_create ({what}, clock {clock})"),
                    libc::SYS_timer_create,
                    &[clock as i64 as u64, ev_at, id_at],
                )?;
                let mut b = [0u8; 4];
                ckpt_sys::mem::read_remote(pid, id_at, &mut b)
                    .map_err(|e| sys_err("reading a timer id", e))?;
                let got = i32::from_le_bytes(b);
                if by_id || got >= p.id || fillers.len() as i32 > MAX_FILL {
                    break got;
                }
                fillers.push(got);
            };
            if got != p.id {
                return Err(Error::System(format!(
                    "pid {pid}: {what} was created as timer {got}: this kernel neither takes timer ids (PR_TIMER_CREATE_RESTORE_IDS, Linux 6.15) nor gave that id in order"
                )));
            }
            if p.left != (0, 0) {
                let its = timer_bytes(p.interval, p.left);
                sys::write_pairs(pid, &[(its_at, &its)])
                    .map_err(|e| sys_err("writing an itimerspec", e))?;
                main.call(
                    &format!("timer_settime ({what})"),
                    libc::SYS_timer_settime,
                    &[p.id as u64, 0, its_at, 0],
                )?;
            }
            if p.overrun != 0 {
                eprintln!(
                    "ckpt-restore: pid {pid}: {what}: its overrun count {} restarts at 0 (the kernel has no setter)",
                    p.overrun
                );
            }
        }
        for f in fillers {
            main.call("timer_delete (filler)", libc::SYS_timer_delete, &[f as u64])?;
        }
        if by_id {
            main.call(
                "prctl(PR_TIMER_CREATE_RESTORE_IDS, off)",
                libc::SYS_prctl,
                &[PR_TIMER_CREATE_RESTORE_IDS, RESTORE_IDS_OFF, 0, 0, 0],
            )?;
        }
    }
    for w in armed_it {
        let it = itimers[w];
        sys::write_pairs(pid, &[(its_at, &timer_bytes(it.interval, it.value))])
            .map_err(|e| sys_err("writing an itimerval", e))?;
        main.call(
            &format!("setitimer({w})"),
            libc::SYS_setitimer,
            &[w as u64, its_at, 0],
        )?;
    }
    Ok(())
}

const PR_SET_DUMPABLE: u64 = 4;
const PR_GET_DUMPABLE: u64 = 3;
const PR_SET_TIMERSLACK: u64 = 29;
const PR_GET_TIMERSLACK: u64 = 30;
const PR_SET_CHILD_SUBREAPER: u64 = 36;
const PR_GET_THP_DISABLE: u64 = 42;
const PR_SET_THP_DISABLE: u64 = 41;

/// Process and thread attributes (`process_attrs`, `thread_attrs`) where the new
/// process's differ (it inherited ckpt-restore's): `oom_score_adj`, `coredump_filter`,
/// child subreaper, THP disable, and per thread timer slack, nice, CPU affinity, I/O
/// priority, policy and RT priority. What this caller may not grant was refused before
/// anything was created ([`crate::grant`]); a call failing anyway names the attribute.
/// Dumpable is set last ([`dumpable`]): a credential change resets it.
pub(super) fn attributes(
    remotes: &mut [&mut Remote],
    built: &[(i32, &Thread)],
    t: &TaskPlan,
    pid: i32,
) -> Result<(), Error> {
    use ckpt_sys::attrs as a;
    let fail = |what: String| move |e: ckpt_sys::SysError| sys_err(format!("pid {pid}: {what}"), e);
    if let Some(pa) = &t.task.records.attrs {
        let adj = pa.oom_score_adj as i64;
        if a::oom_score_adj(pid).map_err(fail("oom_score_adj".into()))? != adj {
            a::set_oom_score_adj(pid, adj).map_err(fail(format!("oom_score_adj {adj}")))?;
        }
        let cf = pa.coredump_filter;
        if a::coredump_filter(pid).map_err(fail("coredump_filter".into()))? != cf {
            a::set_coredump_filter(pid, cf).map_err(fail(format!("coredump_filter {cf:#x}")))?;
        }
        if pa.child_subreaper != 0 {
            remotes[0].call(
                "prctl(PR_SET_CHILD_SUBREAPER)",
                libc::SYS_prctl,
                &[PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0],
            )?;
        }
        let thp = pa.thp_disable as u64;
        let now = remotes[0].raw(libc::SYS_prctl, &[PR_GET_THP_DISABLE, 0, 0, 0, 0])?;
        if now >= 0 && now as u64 != thp {
            remotes[0].call(
                &format!("prctl(PR_SET_THP_DISABLE, {thp:#x})"),
                libc::SYS_prctl,
                &[PR_SET_THP_DISABLE, thp & 1, thp & !1, 0, 0],
            )?;
        }
    }
    for (k, (tid, th)) in built.iter().enumerate() {
        let Some(want) = &th.records.attrs else {
            continue;
        };
        let tid = *tid;
        let cur = a::thread_sched(pid, tid).map_err(fail(format!("thread {tid}")))?;
        // Timer slack first: a real-time policy sets it to 0.
        if want.timer_slack != 0 {
            let now = remotes[k].raw(libc::SYS_prctl, &[PR_GET_TIMERSLACK, 0, 0, 0, 0])?;
            if now as u64 != want.timer_slack {
                remotes[k].call(
                    &format!("prctl(PR_SET_TIMERSLACK, {})", want.timer_slack),
                    libc::SYS_prctl,
                    &[PR_SET_TIMERSLACK, want.timer_slack, 0, 0, 0],
                )?;
            }
        }
        if cur.nice != want.nice as i64 {
            a::set_nice(tid, want.nice as i64).map_err(fail(format!("thread {tid} nice")))?;
        }
        let cpus = want.cpus();
        // No affinity words: not recorded (a CRIU dump), left as the new thread has it.
        if !want.affinity.is_empty() && cur.affinity != cpus {
            a::set_affinity(tid, &cpus).map_err(fail(format!("thread {tid} CPU affinity")))?;
        }
        if cur.ioprio != want.ioprio as i64 {
            a::set_ioprio(tid, want.ioprio as i64)
                .map_err(fail(format!("thread {tid} I/O priority")))?;
        }
        if (cur.policy, cur.rt_priority) != (want.policy as u64, want.rt_priority as u64) {
            a::set_scheduler(tid, want.policy as u64, want.rt_priority as u64)
                .map_err(fail(format!("thread {tid} scheduling policy")))?;
        }
    }
    Ok(())
}

/// Dumpable as captured (0 or 1; 2 was refused at capture unless a credential change
/// gives it), set after the credentials, which reset it.
pub(super) fn dumpable(main: &mut Remote, t: &TaskPlan) -> Result<(), Error> {
    let Some(want) = t.task.records.attrs.map(|a| a.dumpable as i64) else {
        return Ok(());
    };
    let now = main.raw(libc::SYS_prctl, &[PR_GET_DUMPABLE, 0, 0, 0, 0])?;
    if now != want && want <= 1 {
        main.call(
            &format!("prctl(PR_SET_DUMPABLE, {want})"),
            libc::SYS_prctl,
            &[PR_SET_DUMPABLE, want as u64, 0, 0, 0],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_clocks_are_mapped_to_the_new_ids() {
        let pids = HashMap::from([(100, 200)]);
        let tids = HashMap::from([(101, 301)]);
        assert_eq!(map_clock(1, &pids, &tids), Ok(1));
        assert_eq!(map_clock(-6, &pids, &tids), Ok(-6));
        assert_eq!(
            map_clock((!100 << 3) | 2, &pids, &tids),
            Ok((!200 << 3) | 2)
        );
        assert_eq!(
            map_clock((!101 << 3) | 6, &pids, &tids),
            Ok((!301 << 3) | 6)
        );
        assert!(map_clock((!102 << 3) | 6, &pids, &tids).is_err());
    }
}
