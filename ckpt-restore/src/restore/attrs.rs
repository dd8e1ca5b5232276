//! Timers of a restored process, re-created by injected calls before it runs: POSIX
//! timers under their captured ids (`PR_TIMER_CREATE_RESTORE_IDS`, see
//! [`crate::timers`]) and the interval timers, each armed with the time it had left.
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
    let tids: HashMap<i32, i32> = built.iter().map(|(new, th)| (th.tid, *new)).collect();
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
