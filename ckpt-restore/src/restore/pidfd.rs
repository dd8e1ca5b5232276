//! pidfds (File `pidfd`): opened once every process exists, inside the restored
//! processes themselves, before anything of theirs runs (an eventpoll that watches a
//! pidfd registers it later, in `finish`). The first holder opens it with
//! `pidfd_open(new pid, PIDFD_NONBLOCK? | PIDFD_THREAD?)`; another fd of the same file in
//! that process is a `dup` of it, and another process takes that same open file with
//! `pidfd_getfd`, so the file stays one (shared flags, as captured). The staging and fd
//! table setup leave these fd numbers closed ([`late_files`]).

use super::*;
use std::collections::BTreeSet;

const F_DUPFD_CLOEXEC: u64 = 1030;
const F_SETFD: u64 = 2;

/// The pidfd files of the image, refused (before anything is created) when one refers to
/// a pid that is no task of the image.
pub(super) fn late_files(plan: &Plan) -> Result<BTreeSet<u32>, Error> {
    let mut late = BTreeSet::new();
    for f in plan.files.values() {
        if let Some(p) = f.records.pidfd {
            if !plan.tasks.iter().any(|t| t.task.pid == p.pid) {
                return Err(Error::Image(format!(
                    "file {} is a pidfd on pid {}, which is no process of the image",
                    f.id, p.pid
                )));
            }
            late.insert(f.id);
        }
    }
    Ok(late)
}

/// Open every pidfd of every live process at its fd number (all processes exist).
pub(super) fn install(plan: &Plan, procs: &mut [Proc]) -> Result<(), Error> {
    // The restored pids as the restored processes see them (`--pid-ns`: the namespace's).
    let new_pid: BTreeMap<i32, i32> = procs.iter().map(|p| (p.t.task.pid, p.vpid)).collect();
    // File id -> (index of the process holding it first, its fd there).
    let mut first: BTreeMap<u32, (usize, i32)> = BTreeMap::new();
    for i in 0..procs.len() {
        let t = procs[i].t;
        if t.task.exit_state != 0 {
            continue;
        }
        for fd in &t.fds {
            let f = &plan.files[&fd.file];
            let Some(p) = f.records.pidfd else {
                continue;
            };
            let target = new_pid[&p.pid];
            let held = first.get(&fd.file).copied();
            let m = &mut procs[i].main;
            let tmp = match held {
                None => {
                    let fl = f.flags as i32 & (libc::O_NONBLOCK | libc::O_EXCL);
                    m.call(
                        &format!("pidfd_open({target}) for fd {}", fd.fd),
                        libc::SYS_pidfd_open,
                        &[target as u64, fl as u64],
                    )?
                }
                Some((j, ofd)) if j == i => m.call(
                    &format!("fcntl(F_DUPFD_CLOEXEC) of pidfd {ofd} for fd {}", fd.fd),
                    libc::SYS_fcntl,
                    &[ofd as u64, F_DUPFD_CLOEXEC, 0],
                )?,
                Some((j, ofd)) => {
                    let holder = procs[j].vpid;
                    let m = &mut procs[i].main;
                    let a = m.call(
                        &format!("pidfd_open({holder}) to take its pidfd {ofd}"),
                        libc::SYS_pidfd_open,
                        &[holder as u64, 0],
                    )?;
                    let got = m.call(
                        &format!("pidfd_getfd of pid {holder}'s pidfd {ofd} for fd {}", fd.fd),
                        libc::SYS_pidfd_getfd,
                        &[a, ofd as u64, 0],
                    );
                    m.call("close", libc::SYS_close, &[a])?;
                    got?
                }
            };
            let m = &mut procs[i].main;
            if tmp != fd.fd as u64 {
                let cl = if fd.cloexec { libc::O_CLOEXEC } else { 0 };
                m.call(
                    &format!("dup3 of a pidfd to fd {}", fd.fd),
                    libc::SYS_dup3,
                    &[tmp, fd.fd as u64, cl as u64],
                )?;
                m.call("close", libc::SYS_close, &[tmp])?;
            } else if !fd.cloexec {
                m.call("fcntl(F_SETFD, 0)", libc::SYS_fcntl, &[tmp, F_SETFD, 0])?;
            }
            first.entry(fd.file).or_insert((i, fd.fd));
        }
    }
    Ok(())
}
