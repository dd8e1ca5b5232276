//! Sockets of the frozen targets (issue 18, docs/SOCKETS.md): every socket read once
//! (ckpt_sys::sockets::snapshot) before anything is written, what a restore could not
//! rebuild named before `--kill`, and — for a capture with `--kill` — the TCP
//! connections held: an nftables table (ckpt_sys::netlock) drops their segments from
//! before the dump until the restore lifts it, and their sockets stay in repair mode
//! until the targets are killed (closing them then sends nothing).
//!
//! Every failure path undoes this: dropped without [`Hold::commit`], a `Hold` takes the
//! connections out of repair mode without sending anything and deletes the table, so a
//! target left running goes on as if never captured.

use crate::{CaptureError, ErrorKind};
use ckpt_sys::netlock::NetLock;
use ckpt_sys::sockets::{self as ss, Detail, Index, Snapshot};
use ckpt_sys::{files, procfs, tcp};
use std::collections::HashMap;
use std::os::fd::{AsFd, AsRawFd};

/// The sockets of one capture.
#[derive(Default)]
pub(crate) struct Hold {
    /// One snapshot per socket (by inode).
    snaps: HashMap<u32, Snapshot>,
    /// (pid, fd) -> inode.
    at: HashMap<(i32, i32), u32>,
    /// The table holding the TCP peers off (`--kill` with connections).
    lock: Option<NetLock>,
    /// Connections left in repair mode (`--kill`).
    repair: bool,
    /// The capture is committed and the targets are killed: keep the lock.
    committed: bool,
    /// What a restore could not rebuild, one line each; and warnings.
    pub(crate) refusals: Vec<String>,
    pub(crate) warnings: Vec<String>,
    /// Inodes of the refused sockets.
    refused: Vec<u32>,
}

fn sys(ctx: String) -> impl FnOnce(ckpt_sys::SysError) -> CaptureError {
    move |e| CaptureError::sys(&ctx, e)
}

impl Hold {
    /// Read every socket of `pids` (frozen). With `kill`, established TCP connections
    /// are locked (table `ckpt_<root>_<nanoseconds>`) before they are dumped and stay in
    /// repair mode.
    pub(crate) fn read(pids: &[i32], kill: bool, disconnect: bool) -> Result<Hold, CaptureError> {
        let mut h = Hold::default();
        h.repair = kill;
        let mut fds = Vec::new();
        for &pid in pids {
            for fd in procfs::list_fds(pid).map_err(sys(format!("pid {pid} fds")))? {
                let Ok(st) = files::stat_fd(pid, fd) else {
                    continue;
                };
                if st.st_mode & libc::S_IFMT == libc::S_IFSOCK {
                    fds.push((pid, fd, st.st_ino as u32));
                }
            }
        }
        if fds.is_empty() {
            return Ok(h);
        }
        let index = Index::read().map_err(sys("reading sockets (sock_diag)".into()))?;
        if kill {
            let mut conns = Vec::new();
            for &(_, _, ino) in &fds {
                if let Some(d) = index.inet.get(&ino) {
                    if d.protocol as i32 == libc::IPPROTO_TCP && d.state == tcp::ESTABLISHED {
                        let e = d.endpoints();
                        if !conns.contains(&e) {
                            conns.push(e);
                        }
                    }
                }
            }
            if !conns.is_empty() {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                let lock = NetLock::named(&format!("ckpt_{}_{nanos}", pids[0]))
                    .map_err(sys("net lock".into()))?;
                lock.lock(&conns).map_err(|e| {
                    CaptureError::new(
                        ErrorKind::Unsupported,
                        format!(
                            "not killed, left running: {} TCP connection(s) need their peers held off until the restore, and that failed: {e}",
                            conns.len()
                        ),
                    )
                })?;
                h.lock = Some(lock);
            }
        }
        for &(pid, fd, ino) in &fds {
            h.at.insert((pid, fd), ino);
            if h.snaps.contains_key(&ino) {
                continue;
            }
            let s = ss::snapshot(pid, fd, &index, kill)
                .map_err(sys(format!("pid {pid} fd {fd} (socket:[{ino}])")))?;
            h.snaps.insert(ino, s);
        }
        // Refusals: what the restore cannot rebuild, and sockets in flight inside a
        // unix queue (their own state is not read).
        let mut list: Vec<(i32, i32, &Snapshot)> = Vec::new();
        let mut seen = Vec::new();
        for &(pid, fd, ino) in &fds {
            if !seen.contains(&ino) {
                seen.push(ino);
                list.push((pid, fd, &h.snaps[&ino]));
            }
        }
        let (mut refuse, warn) = ss::refusals(&list, disconnect);
        for (pid, fd, s) in &list {
            if let Detail::Unix { queue, .. } = &s.detail {
                let in_flight_socket = queue.iter().flat_map(|m| m.fds.iter()).any(|f| {
                    files::fstat(f.as_fd().as_raw_fd())
                        .is_ok_and(|st| st.st_mode & libc::S_IFMT == libc::S_IFSOCK)
                });
                if in_flight_socket {
                    refuse.push(format!(
                        "pid {pid} fd {fd} ({}): a socket is in flight in its queue (sockets passed inside a queue are not carried)",
                        s.describe()
                    ));
                }
            }
        }
        let refused: Vec<u32> = list
            .iter()
            .filter(|(pid, fd, _)| {
                let at = format!("pid {pid} fd {fd} (");
                refuse.iter().any(|r| r.starts_with(&at))
            })
            .map(|(_, _, s)| s.ino)
            .collect();
        drop(list);
        h.refusals = refuse;
        h.warnings = warn;
        h.refused = refused;
        Ok(h)
    }

    /// The snapshot of descriptor `fd` of `pid`, if it is a socket this capture carries.
    pub(crate) fn get(&self, pid: i32, fd: i32) -> Option<&Snapshot> {
        let ino = self.at.get(&(pid, fd))?;
        if self.refused.contains(ino) {
            return None;
        }
        self.snaps.get(ino)
    }

    /// True when socket inode `ino` is one of the captured processes' (a unix peer
    /// that is not is recorded as gone: `--disconnect-sockets`).
    pub(crate) fn has(&self, ino: u32) -> bool {
        self.snaps.contains_key(&ino)
    }

    /// The net lock's table name ("" none).
    pub(crate) fn lock_name(&self) -> &str {
        self.lock.as_ref().map_or("", |l| l.name())
    }

    /// The targets are killed: the lock stays for the restore; our duplicates close
    /// (in repair mode: nothing is sent).
    pub(crate) fn commit(mut self) {
        self.committed = true;
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        if self.repair {
            for s in self.snaps.values() {
                if s.tcp().is_some() {
                    let _ = tcp::repair_off(s.dup.as_fd(), false);
                }
            }
        }
        if let Some(l) = self.lock.take() {
            if let Err(e) = l.unlock() {
                eprintln!(
                    "ckpt-capture: could not remove the net lock: {e}; remove it with `nft delete table inet {}`",
                    l.name()
                );
            }
        }
    }
}
