//! pidfds (`pidfd_open(2)`, `CLONE_PIDFD`): carried as the FILE record `pidfd` naming the
//! task of the image they refer to (`/proc/PID/fdinfo/N` `Pid:`), which a restore maps to
//! the restored process. Refused (before anything is written, with the reason): a pidfd
//! on a process outside the image, on one that exited and was reaped (`Pid: -1`), on a
//! process in another pid namespace (`Pid: 0`), and a `PIDFD_THREAD` pidfd on a thread
//! other than a leader (threads get their ids only late in a restore).

use crate::uncarried::{Findings, Target};
use ckpt_sys::anon::AnonKind;
use ckpt_sys::procfs::{self, FdInfo};
use std::collections::HashMap;

/// The pid a pidfd's fdinfo names (`Pid:`), if it is one.
pub(crate) fn referent(fi: &FdInfo) -> Option<i32> {
    fi.all.get("Pid").and_then(|v| v.trim().parse().ok())
}

/// True for the link text of a pidfd.
pub(crate) fn is_pidfd(link: &[u8]) -> bool {
    AnonKind::of_link(link) == Some(AnonKind::Pidfd)
}

/// Every pidfd of every live process of the image: refused unless it refers to a
/// process of the image.
pub(crate) fn check(targets: &[Target<'_>], f: &mut Findings) {
    // tid -> its process, for every thread of the image.
    let mut owner: HashMap<i32, i32> = HashMap::new();
    for t in targets {
        owner.insert(t.pid, t.pid);
        for &tid in t.tids.iter().flatten() {
            owner.insert(tid, t.pid);
        }
    }
    for t in targets.iter().filter(|t| t.tids.is_some()) {
        let pid = t.pid;
        for fd in procfs::list_fds(pid).unwrap_or_default() {
            let Ok(link) = procfs::readlink(&format!("/proc/{pid}/fd/{fd}")) else {
                continue; // closed meanwhile
            };
            if !is_pidfd(&link) {
                continue;
            }
            let Ok(fi) = procfs::fdinfo(pid, fd) else {
                continue;
            };
            let why = match referent(&fi) {
                None => Some("its fdinfo names no pid".to_string()),
                Some(-1) => Some(
                    "the process it refers to has exited and was reaped (a restore cannot make a pidfd on a dead process)".to_string(),
                ),
                Some(0) => Some(
                    "it refers to a process in another pid namespace".to_string(),
                ),
                Some(r) => match owner.get(&r) {
                    Some(&p) if p == r => None,
                    Some(&p) => Some(format!(
                        "it refers to thread {r} of pid {p} (PIDFD_THREAD): a restore gives threads their ids too late to open pidfds on them"
                    )),
                    None => Some(format!(
                        "it refers to pid {r}, which is not in the image (capture that process too, e.g. with --tree on a common parent)"
                    )),
                },
            };
            if let Some(why) = why {
                f.add(
                    "pidfd",
                    format!("pid {pid} fd {fd}: a pidfd, not carried: {why}"),
                );
            }
        }
    }
}
