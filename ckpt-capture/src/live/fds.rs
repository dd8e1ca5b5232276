//! Descriptors: files, pipes (with their buffered bytes) and the fd table of a task.

use super::*;
use std::os::fd::{AsFd, AsRawFd};

pub(super) fn capture_fds(
    pid: i32,
    opts: &Options,
    shared: &mut Shared,
    sink: &mut dyn EventSink,
) -> Result<(), CaptureError> {
    let fds = procfs::list_fds(pid).map_err(sys(format!("pid {pid} fds")))?;
    for fd in fds {
        let cloexec = procfs::fdinfo(pid, fd)
            .map_err(sys(format!("pid {pid} fd {fd}")))?
            .flags
            & O_CLOEXEC
            != 0;
        let file_id = file_of(pid, fd, opts, shared, sink)?;
        sink.event(&Event::Fd(Fd {
            fd,
            cloexec,
            file: file_id,
        }))
        .map_err(fmt_err)?;
    }
    Ok(())
}

/// The File object id of descriptor `fd` of `pid` (our own pid for a descriptor in
/// flight in a unix queue): one seen before (dup, fork, passed), or a new File emitted
/// now with what it needs before it (its pipe; for a socket, the files in flight in its
/// queue).
fn file_of(
    pid: i32,
    fd: i32,
    opts: &Options,
    shared: &mut Shared,
    sink: &mut dyn EventSink,
) -> Result<u32, CaptureError> {
    {
        let ctx = format!("pid {pid} fd {fd}");
        let link = procfs::readlink(&format!("/proc/{pid}/fd/{fd}")).map_err(sys(&ctx))?;
        let fi = procfs::fdinfo(pid, fd).map_err(sys(&ctx))?;
        let st = files::stat_fd(pid, fd).map_err(sys(&ctx))?;
        let fmt = st.st_mode & libc::S_IFMT;
        let (kind, unsupported) = if link.starts_with(b"anon_inode:") {
            (FileKind::Other, !crate::anon::carried(&link))
        } else {
            match fmt {
                libc::S_IFREG => (FileKind::Regular, false),
                libc::S_IFDIR => (FileKind::Directory, false),
                // A pty master is rebuilt with its slaves as a new pair (crate::ttys
                // refuses what that cannot carry).
                libc::S_IFCHR => (FileKind::CharDevice, false),
                libc::S_IFIFO if link.starts_with(b"pipe:") => (FileKind::Pipe, false),
                libc::S_IFIFO => (FileKind::Fifo, false),
                libc::S_IFSOCK => (FileKind::Socket, shared.socks.get(pid, fd).is_none()),
                _ => (FileKind::Other, true),
            }
        };
        if unsupported && !opts.allow_unsupported {
            let what = if kind == FileKind::Socket {
                "socket".to_string()
            } else {
                let l = String::from_utf8_lossy(&link);
                l.strip_prefix("anon_inode:")
                    .map(|s| s.trim_matches(|c| c == '[' || c == ']').to_string())
                    .unwrap_or_else(|| "special file".into())
            };
            return Err(CaptureError::new(
                ErrorKind::Unsupported,
                format!(
                    "pid {pid} fd {fd} is a {what} ({}), which ckpt-capture cannot capture; --allow-unsupported records it as unsupported",
                    String::from_utf8_lossy(&link)
                ),
            ));
        }
        let (dev, ino) = (st.st_dev, st.st_ino);
        // The same open file description seen before (dup, fork)?
        let mut existing = None;
        for &(p2, fd2, d2, i2, id) in &shared.files {
            if d2 == dev && i2 == ino && files::same_file(p2, fd2, pid, fd).map_err(sys(&ctx))? {
                existing = Some(id);
                break;
            }
        }
        let file_id = match existing {
            Some(id) => id,
            None => {
                let mut pipe = None;
                if matches!(kind, FileKind::Pipe | FileKind::Fifo) {
                    pipe = Some(match shared.pipes.get(&(dev, ino)) {
                        Some(&id) => id,
                        None => {
                            let (data, cap) = files::peek_pipe(pid, fd).map_err(sys(&ctx))?;
                            let _ = cap;
                            let id = shared.id();
                            sink.event(&Event::Pipe(Pipe {
                                id,
                                data: Cow::Owned(data),
                            }))
                            .map_err(fmt_err)?;
                            shared.pipes.insert((dev, ino), id);
                            id
                        }
                    });
                }
                // A deleted file or a memfd: its inode's contents go into an object of
                // their own (emitted first), which this open file refers to.
                let inode_of = if kind == FileKind::Regular && contents::is_gone(&link) {
                    let src = format!("/proc/{pid}/fd/{fd}");
                    let i = contents::inode_id(shared, dev, ino, src, &link);
                    contents::emit_inodes(shared, sink)?;
                    Some(InodeOf { file: i })
                } else {
                    None
                };
                // A socket: the files in flight in its queue first, then its records.
                let mut sock = Default::default();
                if kind == FileKind::Socket && !unsupported {
                    let raw: Vec<i32> = match shared.socks.get(pid, fd).map(|s| &s.detail) {
                        Some(ckpt_sys::sockets::Detail::Unix { queue, .. }) => queue
                            .iter()
                            .flat_map(|m| m.fds.iter().map(|f| f.as_raw_fd()))
                            .collect(),
                        _ => Vec::new(),
                    };
                    let me = std::process::id() as i32;
                    let mut ids = std::collections::VecDeque::new();
                    for r in raw {
                        ids.push_back(file_of(me, r, opts, shared, sink)?);
                    }
                    let lock = shared.socks.lock_name().to_string();
                    if let Some(snap) = shared.socks.get(pid, fd) {
                        sock = ckpt_restore::sockets::records_of(
                            snap,
                            |_| ids.pop_front().ok_or_else(|| "in-flight files".to_string()),
                            &lock,
                        )
                        .map_err(|e| CaptureError::new(ErrorKind::Target, format!("{ctx}: {e}")))?;
                        // A peer outside the captured processes (--disconnect-sockets):
                        // recorded as gone.
                        if let Some(s) = sock.socket.as_mut() {
                            if s.peer_ino.is_some_and(|p| !shared.socks.has(p)) {
                                s.peer_ino = None;
                            }
                        }
                    }
                }
                // A pseudo-terminal: its state, read through a duplicate of the fd (the
                // same terminal; opening its path would make a new pty for the master).
                let tty = match ckpt_sys::tty::pty_end(st.st_rdev) {
                    Some(end) if kind == FileKind::CharDevice => {
                        let dup = ckpt_sys::sock::take_fd(pid, fd).map_err(sys(&ctx))?;
                        let mut t = ckpt_sys::tty::read(dup.as_fd(), end).map_err(sys(&ctx))?;
                        // The slave end tells its session only to a process it controls:
                        // this one's controlling terminal (stat fields 6, 7, 8) says it.
                        if t.sid == 0 {
                            let ps = procfs::stat_at(&pid.to_string()).map_err(sys(&ctx))?;
                            if ps.ufield(7) == st.st_rdev && st.st_rdev != 0 {
                                t.sid = ps.field(6) as i32;
                                t.pgrp = ps.field(8) as i32;
                            }
                        }
                        Some(Box::new(Tty {
                            master: end == ckpt_sys::tty::PtyEnd::Master,
                            index: if end == ckpt_sys::tty::PtyEnd::Master {
                                t.index
                            } else {
                                libc::minor(st.st_rdev) as i32
                                    + (libc::major(st.st_rdev) as i32 - 136) * 256
                            },
                            sid: t.sid,
                            pgrp: t.pgrp,
                            winsize: t.winsize,
                            termios: t.termios.to_vec(),
                        }))
                    }
                    _ => None,
                };
                let id = shared.id();
                let mut x = FileRecords {
                    identity: Some(FileIdentity {
                        dev,
                        ino,
                        mnt_id: fi.mnt_id,
                    }),
                    unsupported: unsupported.then_some(Unsupported),
                    inode_of,
                    locks: contents::file_locks(&fi),
                    sock,
                    tty,
                    fown: shared.fown.get(&(pid, fd)).copied(),
                    ..FileRecords::default()
                };
                if crate::anon::carried(&link) {
                    crate::anon::collect(pid, fd, &link, &fi, &mut x)
                        .map_err(|e| CaptureError::new(ErrorKind::Unsupported, e))?;
                }
                let path = if kind == FileKind::Pipe {
                    Vec::new()
                } else {
                    link.clone()
                };
                sink.event(&Event::File(File {
                    id,
                    kind,
                    path,
                    flags: fi.flags & !O_CLOEXEC,
                    mode: st.st_mode,
                    pos: fi.pos,
                    pipe,
                    records: x,
                    extras: Extras::new(),
                }))
                .map_err(fmt_err)?;
                shared.files.push((pid, fd, dev, ino, id));
                id
            }
        };
        Ok(file_id)
    }
}
