//! Process and thread attributes of an image that this caller may not grant
//! (`process_attrs`, `thread_attrs`): found before anything is created, one message
//! each, so that a restore never sets less (or more) than was captured half-way through.
//!
//! | attribute | needs |
//! |---|---|
//! | nice below ours | `CAP_SYS_NICE`, or `RLIMIT_NICE` ≥ 20 − nice |
//! | `SCHED_FIFO` / `SCHED_RR` | `CAP_SYS_NICE`, or `RLIMIT_RTPRIO` ≥ the priority |
//! | `SCHED_DEADLINE` | never (its parameters are not captured) |
//! | I/O priority class real-time (1) | `CAP_SYS_NICE` or `CAP_SYS_ADMIN` |
//! | CPU affinity | every CPU in ours (a CPU we may not use would be dropped silently) |
//! | `oom_score_adj` below ours | `CAP_SYS_RESOURCE` |

use crate::caps::Caps;
use crate::plan::TaskPlan;
use ckpt_sys::attrs;

const CAP_SYS_ADMIN: u32 = 21;
const CAP_SYS_NICE: u32 = 23;
const CAP_SYS_RESOURCE: u32 = 24;

fn rlimit_cur(res: u32) -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `r` is a valid out pointer.
    if unsafe { libc::getrlimit(res as _, &mut r) } != 0 {
        return 0;
    }
    r.rlim_cur
}

/// Every attribute of `tasks` this caller cannot set, one message each.
pub fn refusals(tasks: &[TaskPlan]) -> Vec<String> {
    let mut out = Vec::new();
    let eff = Caps::own().map_or(0, |c| c.eff);
    let has = |c: u32| eff & (1 << c) != 0;
    let me = std::process::id() as i32;
    let Ok(ours) = attrs::own_sched() else {
        return vec!["cannot read ckpt-restore's own scheduling attributes".into()];
    };
    let our_adj = attrs::oom_score_adj(me).unwrap_or(0);
    let nice_lim = rlimit_cur(libc::RLIMIT_NICE);
    let rtprio_lim = rlimit_cur(libc::RLIMIT_RTPRIO);
    for t in tasks {
        let pid = t.task.pid;
        if let Some(a) = &t.task.records.attrs {
            if (a.oom_score_adj as i64) < our_adj && !has(CAP_SYS_RESOURCE) {
                out.push(format!(
                    "pid {pid}: oom_score_adj {} is below ours ({our_adj}): lowering it needs CAP_SYS_RESOURCE",
                    a.oom_score_adj
                ));
            }
        }
        for th in &t.threads {
            let Some(a) = &th.records.attrs else { continue };
            let who = format!("pid {pid} thread {}", th.tid);
            if (a.nice as i64) < ours.nice
                && !has(CAP_SYS_NICE)
                && 20 - (a.nice as i64) > nice_lim as i64
            {
                out.push(format!(
                    "{who}: nice {} is below ours ({}): it needs CAP_SYS_NICE or RLIMIT_NICE {} (ours is {nice_lim})",
                    a.nice,
                    ours.nice,
                    20 - a.nice
                ));
            }
            match a.policy {
                1 | 2 if !has(CAP_SYS_NICE) && a.rt_priority as u64 > rtprio_lim => {
                    out.push(format!(
                        "{who}: real-time policy {} priority {} needs CAP_SYS_NICE or RLIMIT_RTPRIO {} (ours is {rtprio_lim})",
                        a.policy, a.rt_priority, a.rt_priority
                    ))
                }
                6 => out.push(format!(
                    "{who}: SCHED_DEADLINE (its parameters are not in the image)"
                )),
                _ => {}
            }
            if a.ioprio >> 13 == 1 && !has(CAP_SYS_NICE) && !has(CAP_SYS_ADMIN) {
                out.push(format!(
                    "{who}: real-time I/O priority {:#x} needs CAP_SYS_NICE or CAP_SYS_ADMIN",
                    a.ioprio
                ));
            }
            let missing: Vec<usize> = a
                .cpus()
                .into_iter()
                .filter(|c| !ours.affinity.contains(c))
                .collect();
            if !missing.is_empty() {
                out.push(format!(
                    "{who}: CPU affinity includes CPU(s) {missing:?}, which ckpt-restore may not use here (ours: {:?})",
                    ours.affinity
                ));
            }
            // An affinity of no word at all was not recorded (a CRIU dump): left as the new
            // process has it. Words without a CPU set are no affinity a thread can have.
            if !a.affinity.is_empty() && a.cpus().is_empty() {
                out.push(format!("{who}: empty CPU affinity"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ckpt_format::{ProcessAttrs, Thread, ThreadAttrs};

    fn one(a: ThreadAttrs, p: Option<ProcessAttrs>) -> Vec<TaskPlan> {
        let mut t = TaskPlan::default();
        t.task.pid = 7;
        t.task.records.attrs = p;
        let mut th = Thread {
            tid: 8,
            ..Thread::default()
        };
        th.records.attrs = Some(a);
        t.threads.push(th);
        vec![t]
    }

    fn ours() -> ThreadAttrs {
        let o = attrs::own_sched().unwrap();
        ThreadAttrs {
            nice: o.nice as i32,
            policy: o.policy as u32,
            rt_priority: o.rt_priority as u32,
            ioprio: o.ioprio as u32,
            timer_slack: 50_000,
            affinity: ThreadAttrs::mask_of(&o.affinity),
        }
    }

    /// Our own attributes are grantable; a CPU we may not use and SCHED_DEADLINE are not
    /// (whoever runs this: root may not use CPU 1000 either).
    #[test]
    fn what_we_cannot_grant_is_named() {
        let me = std::process::id() as i32;
        let p = ProcessAttrs {
            oom_score_adj: attrs::oom_score_adj(me).unwrap() as i32,
            ..ProcessAttrs::default()
        };
        assert_eq!(refusals(&one(ours(), Some(p))), Vec::<String>::new());
        let far = ThreadAttrs {
            affinity: ThreadAttrs::mask_of(&[0, 1000]),
            ..ours()
        };
        let r = refusals(&one(far, None));
        assert_eq!(r.len(), 1, "{r:?}");
        assert!(
            r[0].starts_with("pid 7 thread 8: CPU affinity includes CPU(s) [1000]"),
            "{r:?}"
        );
        let dl = ThreadAttrs {
            policy: 6,
            ..ours()
        };
        let r = refusals(&one(dl, None));
        assert_eq!(
            r,
            vec!["pid 7 thread 8: SCHED_DEADLINE (its parameters are not in the image)"]
        );
        // Mask words without a CPU: refused; no words at all: not recorded (CRIU), fine.
        let none = ThreadAttrs {
            affinity: vec![0],
            ..ours()
        };
        assert_eq!(
            refusals(&one(none, None)),
            vec!["pid 7 thread 8: empty CPU affinity"]
        );
        let unrecorded = ThreadAttrs {
            affinity: vec![],
            ..ours()
        };
        assert!(refusals(&one(unrecorded, None)).is_empty());
    }
}
