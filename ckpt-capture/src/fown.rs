//! Owners of signal-driven I/O (`F_SETOWN`, `F_SETOWN_EX`) and their signal (`F_SETSIG`),
//! read by injected calls (`crate::uncarried`) and carried as the FILE record `fown` when
//! the owner is in the image: a process, the process group of one (a restore maps both
//! to the restored ids), or a leader thread. Refused, naming the fd: an owner outside the
//! image, and a non-leader thread (threads get their ids too late in a restore).

use crate::uncarried::{Findings, Target};
use std::collections::HashMap;

/// Drop from `f.fown` (and name as lost) every owner a restore could not map.
pub(crate) fn check(targets: &[Target<'_>], f: &mut Findings) {
    let mut thread_of: HashMap<i32, i32> = HashMap::new();
    for t in targets {
        for &tid in t.tids.iter().flatten() {
            thread_of.insert(tid, t.pid);
        }
    }
    let is_pid = |p: i32| targets.iter().any(|t| t.pid == p);
    let mut refused = Vec::new();
    for (&(pid, fd), x) in f.fown.iter() {
        if x.owner == 0 {
            continue;
        }
        let why = match x.kind {
            // A process group: its leader must be restored (its pid is the group id).
            2 if !is_pid(x.owner) => Some(format!(
                "process group {} (its leader is not in the image)",
                x.owner
            )),
            0 if !is_pid(x.owner) => Some(match thread_of.get(&x.owner) {
                Some(p) => format!("thread {} of pid {p} (not a leader)", x.owner),
                None => format!("thread {}, not in the image", x.owner),
            }),
            1 if !is_pid(x.owner) => Some(format!("process {}, not in the image", x.owner)),
            0..=2 => None,
            k => Some(format!("owner {} of kind {k}", x.owner)),
        };
        if let Some(why) = why {
            refused.push((pid, fd, why));
        }
    }
    refused.sort();
    for (pid, fd, why) in refused {
        f.fown.remove(&(pid, fd));
        f.add(
            "fd owner",
            format!("pid {pid} fd {fd}: signal-driven I/O goes to {why} (F_SETOWN)"),
        );
    }
}
