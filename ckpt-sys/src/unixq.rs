//! The receive queue of a unix socket: read without consuming it, and written again.
//!
//! **Reading** ([`peek_queue`]): with `SO_PEEK_OFF` set to 0, each
//! `recvmsg(MSG_PEEK | MSG_DONTWAIT)` returns the next piece of the queue and moves the
//! peek offset past it, so successive calls walk the whole queue without dequeuing
//! anything; the socket's own peek offset is put back afterwards. For `SOCK_DGRAM` and
//! `SOCK_SEQPACKET` one call is one message (a zero-length message cannot be told from
//! the end of the queue, and ends the walk). For `SOCK_STREAM` the kernel joins queued
//! writes into one read until it reaches a write that carried descriptors (that one is
//! the last of the read), so a [`Message`] is then "bytes, with the descriptors that
//! arrive with their last part". Descriptors in flight (`SCM_RIGHTS`) come back as new
//! descriptors of ours referring to the same open files (the kernel duplicates them
//! for a peek), so a capture can identify and record them; `SCM_CREDENTIALS` (with
//! `SO_PASSCRED`) is kept as the sender's pid/uid/gid.
//!
//! **Writing** ([`send_message`]): the queue of socket A is rebuilt by sending each
//! message, in order, from A's peer, with its descriptors attached again. The
//! credentials a receiver sees are then the sender's (ckpt-restore's unless it sends
//! with explicit `SCM_CREDENTIALS`, which needs `CAP_SYS_ADMIN` for another pid).

use crate::{Result, SysError};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// One queued message (see the module text for stream sockets).
#[derive(Debug)]
pub struct Message {
    /// The bytes.
    pub data: Vec<u8>,
    /// Descriptors in flight with it, now ours.
    pub fds: Vec<OwnedFd>,
    /// `SCM_CREDENTIALS` when the receiver asked for them: pid, uid, gid.
    pub creds: Option<(i32, u32, u32)>,
}

/// Largest message read in one piece (the kernel's own limit for a unix datagram is
/// the sender's `SO_SNDBUF`, at most `wmem_max` doubled).
pub const MAX_MESSAGE: usize = 16 << 20;
const CMSG_BUF: usize = 4096;
/// Messages read from one queue at most (a queue holds far fewer: each costs at least
/// its skb's truesize against the receive buffer).
pub const MAX_MESSAGES: usize = 1 << 20;

fn cmsg_align(n: usize) -> usize {
    (n + 7) & !7
}

/// Walk the control messages of `ctl` (as `recvmsg` filled it), taking ownership of
/// every descriptor installed, and returning them with the credentials.
#[allow(clippy::type_complexity)]
fn parse_cmsgs(ctl: &[u8]) -> (Vec<OwnedFd>, Option<(i32, u32, u32)>, Vec<(i32, i32)>) {
    let mut fds = Vec::new();
    let mut creds = None;
    let mut other = Vec::new();
    let mut off = 0usize;
    // struct cmsghdr { size_t len; int level; int type; } (16 bytes on x86-64)
    while off + 16 <= ctl.len() {
        let len = u64::from_ne_bytes(ctl[off..off + 8].try_into().unwrap_or([0; 8])) as usize;
        let level = i32::from_ne_bytes(ctl[off + 8..off + 12].try_into().unwrap_or([0; 4]));
        let ty = i32::from_ne_bytes(ctl[off + 12..off + 16].try_into().unwrap_or([0; 4]));
        if len < 16 || off + len > ctl.len() {
            break;
        }
        let data = &ctl[off + 16..off + len];
        if level == libc::SOL_SOCKET && ty == libc::SCM_RIGHTS {
            for c in data.chunks_exact(4) {
                let fd = i32::from_ne_bytes([c[0], c[1], c[2], c[3]]);
                if fd >= 0 {
                    // SAFETY: recvmsg installed this descriptor in our table for us.
                    fds.push(unsafe { OwnedFd::from_raw_fd(fd) });
                }
            }
        } else if level == libc::SOL_SOCKET && ty == libc::SCM_CREDENTIALS && data.len() >= 12 {
            let p = i32::from_ne_bytes(data[0..4].try_into().unwrap_or([0; 4]));
            let u = u32::from_ne_bytes(data[4..8].try_into().unwrap_or([0; 4]));
            let g = u32::from_ne_bytes(data[8..12].try_into().unwrap_or([0; 4]));
            creds = Some((p, u, g));
        } else {
            other.push((level, ty));
        }
        off += cmsg_align(len);
    }
    (fds, creds, other)
}

/// Every message queued for reading on unix socket `fd`, oldest first, without
/// consuming any (see the module text). `ty` is the socket type (`SO_TYPE`).
pub fn peek_queue(fd: BorrowedFd<'_>, ty: i32) -> Result<Vec<Message>> {
    let what = "peeking a unix socket queue";
    let old = crate::sock::get_int(fd, libc::SOL_SOCKET, libc::SO_PEEK_OFF)?;
    crate::sock::set_int(fd, libc::SOL_SOCKET, libc::SO_PEEK_OFF, 0)?;
    let r = peek_all(fd, ty);
    let back = crate::sock::set_int(fd, libc::SOL_SOCKET, libc::SO_PEEK_OFF, old);
    let msgs = r.map_err(|mut e| {
        e.what = format!("{what}: {}", e.what);
        e
    })?;
    back?;
    Ok(msgs)
}

fn peek_all(fd: BorrowedFd<'_>, ty: i32) -> Result<Vec<Message>> {
    let queued = crate::sock::ioctl_int(fd, libc::FIONREAD).unwrap_or(0);
    // A stream's SIOCINQ is the total unread; a datagram's the next message's size.
    let mut buf = vec![0u8; (queued.max(0) as usize).clamp(64 << 10, MAX_MESSAGE)];
    let mut ctl = vec![0u8; CMSG_BUF];
    let mut out = Vec::new();
    loop {
        if out.len() >= MAX_MESSAGES {
            return Err(SysError::other(
                "recvmsg",
                format!("more than {MAX_MESSAGES} messages (a zero-length datagram repeats under MSG_PEEK)"),
            ));
        }
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // SAFETY: an all-zero msghdr is valid; we set the pointers below.
        let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
        mh.msg_iov = &mut iov;
        mh.msg_iovlen = 1;
        mh.msg_control = ctl.as_mut_ptr() as *mut libc::c_void;
        mh.msg_controllen = ctl.len();
        // SAFETY: `mh` points at buffers valid for the lengths given.
        let n = unsafe {
            libc::recvmsg(
                fd.as_raw_fd(),
                &mut mh,
                libc::MSG_PEEK | libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
            )
        };
        if n < 0 {
            let e = crate::last_errno();
            if e == libc::EINTR {
                continue;
            }
            if e == libc::EAGAIN {
                break;
            }
            return Err(SysError::errno("recvmsg(MSG_PEEK)", e));
        }
        let clen = mh.msg_controllen.min(ctl.len());
        let (fds, creds, other) = parse_cmsgs(&ctl[..clen]);
        if mh.msg_flags & libc::MSG_CTRUNC != 0 {
            return Err(SysError::other(
                "recvmsg(MSG_PEEK)",
                "control data truncated (too many descriptors in flight)",
            ));
        }
        if let Some((l, t)) = other.first() {
            return Err(SysError::other(
                "recvmsg(MSG_PEEK)",
                format!("unsupported control message level {l} type {t} in the queue"),
            ));
        }
        let n = n as usize;
        if ty != libc::SOCK_STREAM && mh.msg_flags & libc::MSG_TRUNC != 0 {
            return Err(SysError::other(
                "recvmsg(MSG_PEEK)",
                format!("a queued datagram is longer than {} bytes", buf.len()),
            ));
        }
        if n == 0 {
            // End of the queue with the peer's sending side shut (a stream's or
            // seqpacket's EOF). A zero-length datagram reads the same and would repeat
            // forever under MSG_PEEK: it ends the walk too, and a caller compares the
            // bytes read with sock_diag's queue length (stream and seqpacket).
            break;
        }
        out.push(Message {
            data: buf[..n].to_vec(),
            fds,
            creds,
        });
    }
    Ok(out)
}

/// Send `data` with the descriptors `fds` attached (`SCM_RIGHTS`), in one `sendmsg`,
/// blocking until it fits. Short writes of a stream are continued (the descriptors go
/// with the first part); a datagram must go whole.
pub fn send_message(fd: BorrowedFd<'_>, data: &[u8], fds: &[RawFd]) -> Result<()> {
    if fds.len() > 253 {
        return Err(SysError::other(
            "sendmsg",
            format!(
                "{} descriptors in one message, the kernel takes 253",
                fds.len()
            ),
        ));
    }
    let mut ctl = vec![
        0u8;
        if fds.is_empty() {
            0
        } else {
            cmsg_align(16 + 4 * fds.len())
        }
    ];
    if !fds.is_empty() {
        ctl[0..8].copy_from_slice(&((16 + 4 * fds.len()) as u64).to_ne_bytes());
        ctl[8..12].copy_from_slice(&libc::SOL_SOCKET.to_ne_bytes());
        ctl[12..16].copy_from_slice(&libc::SCM_RIGHTS.to_ne_bytes());
        for (i, f) in fds.iter().enumerate() {
            ctl[16 + 4 * i..20 + 4 * i].copy_from_slice(&f.to_ne_bytes());
        }
    }
    let mut off = 0usize;
    let mut first = true;
    loop {
        let rest = &data[off..];
        let mut iov = libc::iovec {
            iov_base: rest.as_ptr() as *mut libc::c_void,
            iov_len: rest.len(),
        };
        // SAFETY: an all-zero msghdr is valid; we set the pointers below.
        let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
        mh.msg_iov = &mut iov;
        mh.msg_iovlen = 1;
        if first && !ctl.is_empty() {
            mh.msg_control = ctl.as_mut_ptr() as *mut libc::c_void;
            mh.msg_controllen = ctl.len();
        }
        // SAFETY: `mh` points at buffers valid for the lengths given.
        let n = unsafe { libc::sendmsg(fd.as_raw_fd(), &mh, libc::MSG_NOSIGNAL) };
        if n < 0 {
            let e = crate::last_errno();
            if e == libc::EINTR {
                continue;
            }
            return Err(SysError::errno(
                format!("sendmsg of {} bytes, {} descriptors", data.len(), fds.len()),
                e,
            ));
        }
        first = false;
        off += n as usize;
        if off >= data.len() {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sock;
    use std::io::{Read, Seek, Write};
    use std::os::fd::AsFd;

    fn recv_all(fd: BorrowedFd<'_>) -> Vec<Message> {
        let mut v = Vec::new();
        let mut buf = vec![0u8; 1 << 16];
        let mut ctl = vec![0u8; CMSG_BUF];
        loop {
            let mut iov = libc::iovec {
                iov_base: buf.as_mut_ptr() as *mut libc::c_void,
                iov_len: buf.len(),
            };
            // SAFETY: zeroed msghdr, pointers set below.
            let mut mh: libc::msghdr = unsafe { std::mem::zeroed() };
            mh.msg_iov = &mut iov;
            mh.msg_iovlen = 1;
            mh.msg_control = ctl.as_mut_ptr() as *mut libc::c_void;
            mh.msg_controllen = ctl.len();
            // SAFETY: valid buffers.
            let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut mh, libc::MSG_DONTWAIT) };
            if n <= 0 {
                return v;
            }
            let (fds, creds, _) = parse_cmsgs(&ctl[..mh.msg_controllen]);
            v.push(Message {
                data: buf[..n as usize].to_vec(),
                fds,
                creds,
            });
        }
    }

    fn tmpfile(text: &[u8]) -> std::fs::File {
        let mut f = tempfile_in_tmp();
        f.write_all(text).unwrap();
        f.seek(std::io::SeekFrom::Start(0)).unwrap();
        f
    }

    fn tempfile_in_tmp() -> std::fs::File {
        let p = format!("/tmp/ckpt-unixq-{}-{}", std::process::id(), rand_u32());
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&p)
            .unwrap();
        std::fs::remove_file(&p).unwrap();
        f
    }

    fn rand_u32() -> u32 {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        N.fetch_add(1, Ordering::Relaxed)
    }

    /// Queue messages with and without descriptors on a fresh pair of each type, peek
    /// them (twice: nothing consumed), rebuild the queue on a new pair from the peeked
    /// messages, and read it: the same bytes, boundaries and open files.
    #[test]
    fn queues_peeked_and_rebuilt_with_descriptors_in_flight() {
        for ty in [libc::SOCK_STREAM, libc::SOCK_DGRAM, libc::SOCK_SEQPACKET] {
            let (a, b) = sock::socketpair(ty).unwrap();
            let f1 = tmpfile(b"first file");
            let f2 = tmpfile(b"second file");
            send_message(b.as_fd(), b"hello", &[]).unwrap();
            send_message(
                b.as_fd(),
                b"with-two-fds",
                &[f1.as_raw_fd(), f2.as_raw_fd()],
            )
            .unwrap();
            let big = if ty == libc::SOCK_STREAM {
                100_000
            } else {
                50_000
            };
            send_message(b.as_fd(), &vec![7u8; big], &[]).unwrap();
            drop((f1, f2)); // only the queue holds them now
            let peeked = peek_queue(a.as_fd(), ty).unwrap();
            let again = peek_queue(a.as_fd(), ty).unwrap();
            assert_eq!(
                peeked.iter().map(|m| m.data.clone()).collect::<Vec<_>>(),
                again.iter().map(|m| m.data.clone()).collect::<Vec<_>>(),
                "type {ty}: a second peek sees the same queue"
            );
            let flat: Vec<u8> = peeked.iter().flat_map(|m| m.data.clone()).collect();
            let mut want = b"hellowith-two-fds".to_vec();
            want.extend(vec![7u8; big]);
            assert_eq!(flat, want, "type {ty}");
            if ty != libc::SOCK_STREAM {
                assert_eq!(peeked.len(), 3);
                assert_eq!(peeked[1].data, b"with-two-fds");
            }
            let nfds: usize = peeked.iter().map(|m| m.fds.len()).sum();
            assert_eq!(nfds, 2, "type {ty}");
            // Rebuild on a new pair.
            let (c, d) = sock::socketpair(ty).unwrap();
            for m in &peeked {
                let raw: Vec<RawFd> = m.fds.iter().map(|f| f.as_raw_fd()).collect();
                send_message(d.as_fd(), &m.data, &raw).unwrap();
            }
            drop(peeked);
            drop(again);
            let got = recv_all(c.as_fd());
            let flat: Vec<u8> = got.iter().flat_map(|m| m.data.clone()).collect();
            assert_eq!(flat, want, "type {ty}: rebuilt queue");
            let mut texts = Vec::new();
            for m in got {
                for f in m.fds {
                    let mut s = String::new();
                    std::fs::File::from(f).read_to_string(&mut s).unwrap();
                    texts.push(s);
                }
            }
            assert_eq!(texts, ["first file", "second file"], "type {ty}");
            // The original queue is intact too.
            let orig = recv_all(a.as_fd());
            let flat: Vec<u8> = orig.iter().flat_map(|m| m.data.clone()).collect();
            assert_eq!(flat, want, "type {ty}: original queue unchanged");
        }
    }

    #[test]
    fn peek_offset_of_the_socket_is_put_back() {
        let (a, b) = sock::socketpair(libc::SOCK_STREAM).unwrap();
        send_message(b.as_fd(), b"abc", &[]).unwrap();
        assert_eq!(
            sock::get_int(a.as_fd(), libc::SOL_SOCKET, libc::SO_PEEK_OFF).unwrap(),
            -1
        );
        let q = peek_queue(a.as_fd(), libc::SOCK_STREAM).unwrap();
        assert_eq!(q.len(), 1);
        assert_eq!(
            sock::get_int(a.as_fd(), libc::SOL_SOCKET, libc::SO_PEEK_OFF).unwrap(),
            -1
        );
    }
}
