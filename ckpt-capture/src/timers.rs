//! Timers of the captured processes: the interval timers and the POSIX timers read by
//! `crate::uncarried` (injected `getitimer`, `timer_gettime`, `timer_getoverrun`), turned
//! into the Task's `itimers` and `posix_timers` records, and what of them a restore
//! cannot rebuild, refused by name.
//!
//! A timer's clock may name a process or thread (a CPU clock: `clockid_t` < 0, the pid in
//! the bits above the low three, bit 2 set for a thread clock), and a `SIGEV_THREAD_ID`
//! timer names the thread it signals; restore maps both to the new ids. Refused:
//!
//! | timer | why |
//! |---|---|
//! | a notification the kernel prints as other than `none`, `signal`, `thread` | unknown to the restore |
//! | a thread CPU clock naming no thread (`CLOCK_THREAD_CPUTIME_ID`) in a process with several threads | it counts the thread that created the timer, which `/proc/PID/timers` does not name |
//! | the CPU clock of a process outside the image | that process is not restored |

use crate::uncarried::{Findings, Target};
use ckpt_format::{Itimer, Itimers, PosixTimer, PosixTimers};
use ckpt_sys::attrs::Notify;
use ckpt_sys::timers::Timers;
use std::collections::HashSet;

/// `sigev_notify` values.
const SIGEV_SIGNAL: i32 = 0;
const SIGEV_NONE: i32 = 1;
const SIGEV_THREAD: i32 = 2;
const SIGEV_THREAD_ID: i32 = 4;

/// The process or thread a CPU clock names: `(id, is_thread)`, id 0 = the caller.
pub fn cpu_clock_owner(clock: i32) -> Option<(i32, bool)> {
    (clock < 0).then_some((!(clock >> 3), clock & 4 != 0))
}

fn clock_name(c: i32) -> String {
    match c {
        0 => "CLOCK_REALTIME".into(),
        1 => "CLOCK_MONOTONIC".into(),
        7 => "CLOCK_BOOTTIME".into(),
        8 => "CLOCK_REALTIME_ALARM".into(),
        9 => "CLOCK_BOOTTIME_ALARM".into(),
        11 => "CLOCK_TAI".into(),
        c => match cpu_clock_owner(c) {
            Some((0, true)) => "CPU clock of the thread that created it".into(),
            Some((0, false)) => "CPU clock of its process".into(),
            Some((n, true)) => format!("CPU clock of thread {n}"),
            Some((n, false)) => format!("CPU clock of process {n}"),
            None => format!("clock {c}"),
        },
    }
}

/// Refuse the timers of `targets` (read into `f.timers`) that a restore cannot rebuild.
pub(crate) fn check(targets: &[Target<'_>], f: &mut Findings) {
    let pids: HashSet<i32> = targets.iter().map(|t| t.pid).collect();
    let mut lines = Vec::new();
    for t in targets {
        let (Some(tids), Some(timers)) = (&t.tids, f.timers.get(&t.pid)) else {
            continue;
        };
        let pid = t.pid;
        for p in &timers.posix {
            let what = format!(
                "pid {pid}: POSIX timer {} ({})",
                p.timer.id,
                clock_name(p.timer.clock)
            );
            if p.timer.notify == Notify::Other {
                lines.push(format!(
                    "{what}: notification {:?} is unknown to ckpt",
                    p.timer.notify_text
                ));
            }
            match cpu_clock_owner(p.timer.clock) {
                Some((0, true)) if tids.len() > 1 => lines.push(format!(
                    "{what}: the process has {} threads and /proc/{pid}/timers does not say which one created the timer (CLOCK_THREAD_CPUTIME_ID)",
                    tids.len()
                )),
                Some((n, false)) if n != 0 && !pids.contains(&n) => lines.push(format!(
                    "{what}: process {n} is not in the image"
                )),
                Some((n, true)) if n != 0 && !tids.contains(&n) => lines.push(format!(
                    "{what}: thread {n} is not a thread of pid {pid}"
                )),
                _ => {}
            }
            if p.timer.to_thread && !tids.contains(&p.timer.target) {
                lines.push(format!(
                    "{what}: its signal goes to thread {}, not a thread of pid {pid}",
                    p.timer.target
                ));
            }
        }
    }
    for l in lines {
        f.add("posix timer", l);
    }
}

/// The Task records of `t`: the interval timers when one is armed, the POSIX timers when
/// there are any.
pub(crate) fn records(t: &Timers) -> (Option<Itimers>, Option<PosixTimers>) {
    let it = t.itimers.iter().any(|i| i.armed()).then(|| Itimers {
        timers: t.itimers.map(|i| Itimer {
            interval: i.interval,
            value: i.value,
        }),
    });
    let px = (!t.posix.is_empty()).then(|| PosixTimers {
        timers: t
            .posix
            .iter()
            .map(|p| {
                let base = match p.timer.notify {
                    Notify::None => SIGEV_NONE,
                    Notify::Thread => SIGEV_THREAD,
                    _ => SIGEV_SIGNAL,
                };
                PosixTimer {
                    id: p.timer.id,
                    clock: p.timer.clock,
                    notify: base
                        | if p.timer.to_thread {
                            SIGEV_THREAD_ID
                        } else {
                            0
                        },
                    signo: p.timer.signo,
                    value: p.timer.value,
                    tid: if p.timer.to_thread { p.timer.target } else { 0 },
                    overrun: p.overrun,
                    interval: p.interval,
                    left: p.value,
                }
            })
            .collect(),
    });
    (it, px)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_clocks_name_their_owner() {
        // CLOCK_PROCESS_CPUTIME_ID and CLOCK_THREAD_CPUTIME_ID as the kernel stores them.
        assert_eq!(cpu_clock_owner(-6), Some((0, false)));
        assert_eq!(cpu_clock_owner(-2), Some((0, true)));
        // clock_getcpuclockid(1234) and pthread_getcpuclockid of tid 1234.
        assert_eq!(cpu_clock_owner((!1234 << 3) | 2), Some((1234, false)));
        assert_eq!(cpu_clock_owner((!1234 << 3) | 6), Some((1234, true)));
        assert_eq!(cpu_clock_owner(1), None);
        assert_eq!(clock_name(-2), "CPU clock of the thread that created it");
    }
}
