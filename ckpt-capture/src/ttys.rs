//! Pseudo-terminals: a pty whose master is held inside the captured processes is rebuilt
//! by the restore as a new pair (docs/RESTORE.md, "Terminals"). What such a restore
//! could not rebuild is refused here, before anything is written or killed:
//!
//! | refused | why |
//! |---|---|
//! | bytes queued on a master (written by the slave side, not read yet) or on the input of a slave whose master is captured | a tty queue cannot be peeked: reading it would take the bytes from the target |
//! | the slave of a captured master open in a process outside the captured ones | the restore makes a new pty; that process would keep the old one, hung up |
//! | a session leader of the image whose controlling terminal no descriptor of the image refers to, or that is not a pseudo-terminal | its controlling terminal could not be given back |

use crate::uncarried::{Findings, Target};
use ckpt_sys::procfs;
use ckpt_sys::tty::{self, PtyEnd};
use std::collections::{BTreeMap, BTreeSet};
use std::os::fd::AsFd;

/// A pty end held by a process of the image.
struct End {
    pid: i32,
    fd: i32,
    end: PtyEnd,
    /// The pty number.
    index: i32,
    /// Bytes queued for the reader of this end (`FIONREAD`).
    queued: usize,
}

/// The `st_rdev` of `/dev/pts/N`.
pub(crate) fn slave_rdev(index: i32) -> u64 {
    libc::makedev(136 + (index as u32 >> 8), index as u32 & 0xff)
}

/// The pty number of slave device `rdev`.
pub(crate) fn slave_index(rdev: u64) -> i32 {
    (libc::major(rdev) as i32 - 136) * 256 + libc::minor(rdev) as i32
}

/// The device of `/proc/PID/stat` field 7 (`tty_nr`, the kernel's new_encode_dev).
fn tty_nr_dev(nr: u64) -> u64 {
    let major = ((nr >> 8) & 0xfff) as u32;
    let minor = ((nr & 0xff) | ((nr >> 12) & 0xfff00)) as u32;
    libc::makedev(major, minor)
}

fn ends_of(pid: i32) -> Vec<End> {
    let mut out = Vec::new();
    let Ok(fds) = procfs::list_fds(pid) else {
        return out;
    };
    for fd in fds {
        let Ok(st) = ckpt_sys::files::stat_fd(pid, fd) else {
            continue;
        };
        if st.st_mode & libc::S_IFMT != libc::S_IFCHR {
            continue;
        }
        let Some(end) = tty::pty_end(st.st_rdev) else {
            continue;
        };
        // A duplicate of the target's descriptor: the same terminal (opening the path
        // of a master would make a new pty). Nothing here reads from it.
        let Ok(dup) = ckpt_sys::sock::take_fd(pid, fd) else {
            continue;
        };
        let index = match end {
            PtyEnd::Slave => slave_index(st.st_rdev),
            PtyEnd::Master => match tty::read(dup.as_fd(), end) {
                Ok(s) => s.index,
                Err(_) => continue,
            },
        };
        let queued = tty::queued(dup.as_fd()).unwrap_or(0);
        out.push(End {
            pid,
            fd,
            end,
            index,
            queued,
        });
    }
    out
}

/// Processes outside `inside` with a descriptor on one of the slaves `rdevs`: (pid,
/// fd, device), from one scan of `/proc`.
fn outside_holders(inside: &BTreeSet<i32>, rdevs: &BTreeSet<u64>) -> Vec<(i32, i32, u64)> {
    let mut out = Vec::new();
    let me = std::process::id() as i32;
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if inside.contains(&pid) || pid == me {
            continue;
        }
        let Ok(fds) = procfs::list_fds(pid) else {
            continue;
        };
        for fd in fds {
            if let Ok(st) = ckpt_sys::files::stat_fd(pid, fd) {
                if st.st_mode & libc::S_IFMT == libc::S_IFCHR && rdevs.contains(&st.st_rdev) {
                    out.push((pid, fd, st.st_rdev));
                }
            }
        }
    }
    out
}

fn comm(pid: i32) -> String {
    procfs::stat(pid)
        .map(|s| String::from_utf8_lossy(&s.comm).into_owned())
        .unwrap_or_else(|_| "?".into())
}

/// Check the ptys of the live processes of `targets` (see the module table).
pub(crate) fn check(targets: &[Target<'_>], f: &mut Findings) {
    let live: Vec<&Target> = targets.iter().filter(|t| t.tids.is_some()).collect();
    let inside: BTreeSet<i32> = targets.iter().map(|t| t.pid).collect();
    let ends: Vec<End> = live.iter().flat_map(|t| ends_of(t.pid)).collect();
    let masters: BTreeSet<i32> = ends
        .iter()
        .filter(|e| e.end == PtyEnd::Master)
        .map(|e| e.index)
        .collect();
    for e in &ends {
        if e.queued == 0 || (e.end == PtyEnd::Slave && !masters.contains(&e.index)) {
            continue;
        }
        let what = match e.end {
            PtyEnd::Master => "written by its slave side and not read yet",
            PtyEnd::Slave => "of input not read yet",
        };
        f.add(
            "pty queue",
            format!(
                "pid {} fd {}: the pty /dev/pts/{} ({}) holds {} byte(s) {what}; a terminal's queue cannot be read without taking the bytes from the target (capture again once its reader has caught up)",
                e.pid,
                e.fd,
                e.index,
                if e.end == PtyEnd::Master { "master" } else { "slave" },
                e.queued
            ),
        );
    }
    if !masters.is_empty() {
        let rdevs: BTreeSet<u64> = masters.iter().map(|&i| slave_rdev(i)).collect();
        for (pid, fd, rdev) in outside_holders(&inside, &rdevs) {
            let idx = slave_index(rdev);
            let m = ends
                .iter()
                .find(|e| e.end == PtyEnd::Master && e.index == idx)
                .map_or(0, |e| e.pid);
            f.add(
                "pty slave outside",
                format!(
                    "pid {m}: holds the master of /dev/pts/{idx}, whose slave is open in pid {pid} ({}) fd {fd}, outside the captured processes: a restore makes a new pty and pid {pid} would keep the old one (capture it too, e.g. with --tree from a common ancestor)",
                    comm(pid)
                ),
            );
        }
    }
    // Session leaders get their controlling terminal back through a descriptor of the
    // image on it (the slave, or a master: the restore opens its new slave).
    let held: BTreeMap<i32, ()> = ends.iter().map(|e| (e.index, ())).collect();
    for t in &live {
        let (pid, sid, nr) = (t.pid, t.stat.field(6) as i32, t.stat.ufield(7));
        if sid != pid || nr == 0 {
            continue;
        }
        let dev = tty_nr_dev(nr);
        let why = if tty::pty_end(dev) != Some(PtyEnd::Slave) {
            format!(
                "its controlling terminal (device {}:{}) is not a pseudo-terminal; only ptys are carried",
                libc::major(dev),
                libc::minor(dev)
            )
        } else if !held.contains_key(&slave_index(dev)) {
            format!(
                "its controlling terminal /dev/pts/{} is open in no descriptor of the captured processes, so the restore could not give it back",
                slave_index(dev)
            )
        } else {
            continue;
        };
        f.add(
            "controlling terminal",
            format!("pid {pid} leads session {sid}: {why}"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_of_pty_slaves() {
        for i in [0, 5, 255, 256, 1000] {
            assert_eq!(slave_index(slave_rdev(i)), i);
            assert_eq!(tty::pty_end(slave_rdev(i)), Some(PtyEnd::Slave));
        }
        // /dev/pts/3 is 136:3, tty_nr 0x8803; /dev/pts/300 is 137:44, tty_nr 0x892c.
        assert_eq!(tty_nr_dev(0x8803), slave_rdev(3));
        assert_eq!(tty_nr_dev(0x892c), slave_rdev(300));
    }
}
