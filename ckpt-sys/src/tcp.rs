//! TCP connections taken out of the kernel and put back with `TCP_REPAIR`
//! (Linux 3.5+, window since 4.8; needs `CAP_NET_ADMIN`).
//!
//! In repair mode a socket sends nothing and closing it sends nothing (no FIN, no RST),
//! and its sequence numbers, queues and negotiated options can be read and written.
//!
//! **Dump** ([`dump`], socket in repair mode): `TCP_INFO` (state, negotiated options,
//! window scales), `TCP_MAXSEG` (MSS clamp), `TCP_TIMESTAMP` (the timestamp clock),
//! `TCP_REPAIR_WINDOW` (snd_wl1, snd_wnd, max_window, rcv_wnd, rcv_wup), and for each
//! queue — selected with `TCP_REPAIR_QUEUE` — its sequence number (`TCP_QUEUE_SEQ`:
//! `rcv_nxt` for the receive queue, `write_seq` for the send queue) and its bytes
//! (`recv(MSG_PEEK)` reads the selected queue). The lengths come from `SIOCINQ`
//! (`rcv_nxt - copied_seq`), `SIOCOUTQ` (`write_seq - snd_una`: sent-not-acked plus
//! not-yet-sent) and `SIOCOUTQNSD` (not yet sent).
//!
//! **Restore** ([`restore`], on a fresh socket): repair on; the queue sequence numbers
//! set to where each queue *starts* (`rcv_nxt - inq`, `write_seq - outq`), since
//! writing the queue back advances them; `bind` to the local address and `connect` to
//! the remote one (in repair mode this only records the peer and moves to ESTABLISHED,
//! no SYN); `TCP_REPAIR_OPTIONS` (MSS, window scales, SACK, timestamps);
//! `TCP_TIMESTAMP`; the receive queue written with `TCP_RECV_QUEUE` selected; the
//! sent-but-unacknowledged part of the send queue written with `TCP_SEND_QUEUE`
//! selected (it counts as sent, so the peer's ACKs match it and it is retransmitted
//! if they never come); `TCP_REPAIR_WINDOW`. The not-yet-sent rest is written after
//! repair mode is off ([`finish`]), as ordinary data.
//!
//! Only the states `ESTABLISHED` is carried here; half-closed states need a FIN put
//! back into a queue, which takes a forged packet, and are refused by name
//! ([`Conn::refusal`]).

use crate::sock::{self, Addr};
use crate::{Result, SysError};
use std::os::fd::{AsRawFd, BorrowedFd};

/// `TCP_REPAIR` and friends (`linux/tcp.h`).
const TCP_REPAIR: i32 = 19;
const TCP_REPAIR_QUEUE: i32 = 20;
const TCP_QUEUE_SEQ: i32 = 21;
const TCP_REPAIR_OPTIONS: i32 = 22;
const TCP_TIMESTAMP: i32 = 24;
const TCP_REPAIR_WINDOW: i32 = 29;
const TCP_INFO: i32 = 11;
const TCP_MAXSEG: i32 = 2;
/// Leave repair mode without sending a window probe.
const TCP_REPAIR_OFF_NO_WP: i32 = -1;
const TCP_NO_QUEUE: i32 = 0;
const TCP_RECV_QUEUE: i32 = 1;
const TCP_SEND_QUEUE: i32 = 2;

const TCPOPT_MAXSEG: u32 = 2;
const TCPOPT_WINDOW: u32 = 3;
const TCPOPT_SACK_PERM: u32 = 4;
const TCPOPT_TIMESTAMP: u32 = 8;

/// `tcpi_options` bits.
pub const OPT_TIMESTAMPS: u8 = 1;
/// SACK was negotiated.
pub const OPT_SACK: u8 = 2;
/// Window scaling was negotiated.
pub const OPT_WSCALE: u8 = 4;

const SIOCINQ: u64 = 0x541B;
const SIOCOUTQ: u64 = 0x5411;
const SIOCOUTQNSD: u64 = 0x894B;

/// TCP states (`include/net/tcp_states.h`).
pub const ESTABLISHED: u8 = 1;
/// `TCP_CLOSE`: not connected (new, or reset).
pub const CLOSE: u8 = 7;
/// `TCP_LISTEN`.
pub const LISTEN: u8 = 10;

/// `struct tcp_repair_window`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Window {
    /// Sequence number of the segment that last updated the send window.
    pub snd_wl1: u32,
    /// Send window (bytes).
    pub snd_wnd: u32,
    /// Largest window the peer ever offered.
    pub max_window: u32,
    /// Receive window we offer.
    pub rcv_wnd: u32,
    /// `rcv_nxt` when the receive window was last advertised.
    pub rcv_wup: u32,
}

/// Everything about an established connection that a restore needs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Conn {
    /// TCP state (`TCP_INFO.tcpi_state`).
    pub state: u8,
    /// `rcv_nxt`: sequence number of the next byte expected from the peer.
    pub inq_seq: u32,
    /// `write_seq`: sequence number after the last byte written by the program.
    pub outq_seq: u32,
    /// Received, not yet read by the program (oldest first).
    pub inq: Vec<u8>,
    /// Written by the program, not yet acknowledged by the peer (oldest first).
    pub outq: Vec<u8>,
    /// How many bytes at the end of `outq` were never sent.
    pub unsent: u32,
    /// MSS clamp (`TCP_MAXSEG`).
    pub mss: u32,
    /// Negotiated options (`OPT_*` bits).
    pub options: u8,
    /// Our send window scale.
    pub snd_wscale: u8,
    /// Our receive window scale.
    pub rcv_wscale: u8,
    /// The connection's timestamp clock (`TCP_TIMESTAMP`), when timestamps are on.
    pub timestamp: u32,
    /// Window state, when the kernel has `TCP_REPAIR_WINDOW`.
    pub window: Option<Window>,
}

impl Conn {
    /// Why this connection cannot be restored, if it cannot.
    pub fn refusal(&self) -> Option<String> {
        (self.state != ESTABLISHED).then(|| {
            format!(
                "TCP connection in state {} (only established connections and listeners are carried)",
                crate::sockdiag::tcp_state_name(self.state)
            )
        })
    }
}

/// Turn repair mode on (`CAP_NET_ADMIN`).
pub fn repair_on(fd: BorrowedFd<'_>) -> Result<()> {
    sock::set_int(fd, libc::IPPROTO_TCP, TCP_REPAIR, 1).map_err(|mut e| {
        e.what = "TCP_REPAIR on".into();
        e
    })
}

/// Turn repair mode off; with `probe`, the kernel sends a window probe, so the peer
/// learns our window at once (a restored connection), otherwise nothing is sent (a
/// capture leaving the program running).
pub fn repair_off(fd: BorrowedFd<'_>, probe: bool) -> Result<()> {
    let v = if probe { 0 } else { TCP_REPAIR_OFF_NO_WP };
    sock::set_int(fd, libc::IPPROTO_TCP, TCP_REPAIR, v).map_err(|mut e| {
        e.what = "TCP_REPAIR off".into();
        e
    })
}

fn select_queue(fd: BorrowedFd<'_>, q: i32) -> Result<()> {
    sock::set_int(fd, libc::IPPROTO_TCP, TCP_REPAIR_QUEUE, q)
}

fn peek_exact(fd: BorrowedFd<'_>, len: usize, what: &str) -> Result<Vec<u8>> {
    if len == 0 {
        return Ok(Vec::new());
    }
    // One byte more than expected: a longer queue is an error, not silently cut.
    let mut buf = vec![0u8; len + 1];
    // SAFETY: `buf` is valid for its length.
    let n = unsafe {
        libc::recv(
            fd.as_raw_fd(),
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        return Err(SysError::last(format!("peeking the {what} queue")));
    }
    if n as usize != len {
        return Err(SysError::other(
            format!("peeking the {what} queue"),
            format!("{n} bytes, expected {len}"),
        ));
    }
    buf.truncate(len);
    Ok(buf)
}

/// Read a connection in repair mode (turn it on first with [`repair_on`]).
pub fn dump(fd: BorrowedFd<'_>) -> Result<Conn> {
    let mut ti = [0u8; 8];
    sock::get_bytes(fd, libc::IPPROTO_TCP, TCP_INFO, &mut ti)?;
    let mut c = Conn {
        state: ti[0],
        options: ti[5],
        ..Conn::default()
    };
    if c.options & OPT_WSCALE != 0 {
        c.snd_wscale = ti[6] & 0xf;
        c.rcv_wscale = ti[6] >> 4;
    }
    if c.state != ESTABLISHED {
        return Ok(c);
    }
    c.mss = sock::get_int(fd, libc::IPPROTO_TCP, TCP_MAXSEG)? as u32;
    if c.options & OPT_TIMESTAMPS != 0 {
        c.timestamp = sock::get_int(fd, libc::IPPROTO_TCP, TCP_TIMESTAMP)? as u32;
    }
    let mut w = [0u8; 20];
    match sock::get_bytes(fd, libc::IPPROTO_TCP, TCP_REPAIR_WINDOW, &mut w) {
        Ok(20) => {
            let u = |i: usize| u32::from_ne_bytes(w[i * 4..i * 4 + 4].try_into().unwrap_or([0; 4]));
            c.window = Some(Window {
                snd_wl1: u(0),
                snd_wnd: u(1),
                max_window: u(2),
                rcv_wnd: u(3),
                rcv_wup: u(4),
            });
        }
        Ok(n) => {
            return Err(SysError::other(
                "TCP_REPAIR_WINDOW",
                format!("{n} bytes, expected 20"),
            ))
        }
        Err(e) if e.errno == libc::ENOPROTOOPT => {}
        Err(e) => return Err(e),
    }
    let inq = sock::ioctl_int(fd, SIOCINQ)?.max(0) as usize;
    let outq = sock::ioctl_int(fd, SIOCOUTQ)?.max(0) as usize;
    c.unsent = sock::ioctl_int(fd, SIOCOUTQNSD)?.max(0) as u32;
    select_queue(fd, TCP_RECV_QUEUE)?;
    c.inq_seq = sock::get_int(fd, libc::IPPROTO_TCP, TCP_QUEUE_SEQ)? as u32;
    c.inq = peek_exact(fd, inq, "receive")?;
    select_queue(fd, TCP_SEND_QUEUE)?;
    c.outq_seq = sock::get_int(fd, libc::IPPROTO_TCP, TCP_QUEUE_SEQ)? as u32;
    c.outq = peek_exact(fd, outq, "send")?;
    select_queue(fd, TCP_NO_QUEUE)?;
    Ok(c)
}

/// Make room for `need` bytes in the buffer `opt` (`SO_SNDBUF`/`SO_RCVBUF`): a queue
/// written back must fit at once (the old socket's buffer had grown by autotuning; a
/// fresh one starts small). Raised only when too small, with the `FORCE` variant
/// (root) so `wmem_max`/`rmem_max` do not cap it.
fn make_room(fd: BorrowedFd<'_>, opt: i32, force: i32, need: usize) -> Result<()> {
    let have = sock::get_int(fd, libc::SOL_SOCKET, opt)?.max(0) as usize;
    // The kernel doubles the value set and charges per-buffer overhead against it.
    let want = need.saturating_mul(2).saturating_add(64 << 10);
    if have >= want {
        return Ok(());
    }
    let v = i32::try_from(want / 2).unwrap_or(i32::MAX);
    sock::set_int(fd, libc::SOL_SOCKET, force, v)
        .or_else(|_| sock::set_int(fd, libc::SOL_SOCKET, opt, v))
}

fn send_all(fd: BorrowedFd<'_>, mut data: &[u8], what: &str) -> Result<()> {
    // Repair-mode writes allocate one linear buffer per call: large ones can fail with
    // ENOMEM, so halve the piece and go on. Never blocks: the buffers were made large
    // enough, and a restore must not wait on anyone.
    let mut piece = data.len().max(1);
    while !data.is_empty() {
        let n = piece.min(data.len());
        // SAFETY: `data` is valid for `n` bytes.
        let r = unsafe {
            libc::send(
                fd.as_raw_fd(),
                data.as_ptr() as *const libc::c_void,
                n,
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        if r <= 0 {
            let e = crate::last_errno();
            if piece > 1024 && (e == libc::ENOMEM || e == libc::EAGAIN || r == 0) {
                piece /= 2;
                continue;
            }
            if e == libc::EINTR {
                continue;
            }
            return Err(SysError::errno(
                format!("writing {} bytes of the {what} queue back", data.len()),
                e,
            ));
        }
        data = &data[r as usize..];
    }
    Ok(())
}

/// Rebuild connection `c` from `local` to `remote` on `fd`, a fresh TCP socket of the
/// right family whose options are already set. Leaves it in repair mode; call
/// [`finish`] to leave it.
pub fn restore(fd: BorrowedFd<'_>, c: &Conn, local: &Addr, remote: &Addr) -> Result<()> {
    if let Some(why) = c.refusal() {
        return Err(SysError::other("TCP repair", why));
    }
    repair_on(fd)?;
    make_room(fd, libc::SO_SNDBUF, libc::SO_SNDBUFFORCE, c.outq.len())?;
    make_room(fd, libc::SO_RCVBUF, libc::SO_RCVBUFFORCE, c.inq.len())?;
    // Repair mode makes the kernel force address reuse (`SK_FORCE_REUSE`): the bind
    // succeeds next to a listener on the same port. Setting SO_REUSEADDR now would
    // replace that with ordinary reuse (and fail); leaving repair mode resets it, so
    // the caller sets SO_REUSEADDR again afterwards if the program had it.
    sock::bind(fd, local)?;
    let outq_len = c.outq.len() as u32;
    select_queue(fd, TCP_RECV_QUEUE)?;
    sock::set_int(
        fd,
        libc::IPPROTO_TCP,
        TCP_QUEUE_SEQ,
        c.inq_seq.wrapping_sub(c.inq.len() as u32) as i32,
    )?;
    select_queue(fd, TCP_SEND_QUEUE)?;
    sock::set_int(
        fd,
        libc::IPPROTO_TCP,
        TCP_QUEUE_SEQ,
        c.outq_seq.wrapping_sub(outq_len) as i32,
    )?;
    select_queue(fd, TCP_NO_QUEUE)?;
    sock::connect(fd, remote)?;
    let mut opts: Vec<u8> = Vec::new();
    let mut opt = |code: u32, val: u32| {
        opts.extend_from_slice(&code.to_ne_bytes());
        opts.extend_from_slice(&val.to_ne_bytes());
    };
    if c.options & OPT_SACK != 0 {
        opt(TCPOPT_SACK_PERM, 0);
    }
    if c.options & OPT_WSCALE != 0 {
        opt(
            TCPOPT_WINDOW,
            c.snd_wscale as u32 | ((c.rcv_wscale as u32) << 16),
        );
    }
    if c.options & OPT_TIMESTAMPS != 0 {
        opt(TCPOPT_TIMESTAMP, 0);
    }
    opt(TCPOPT_MAXSEG, c.mss);
    sock::set_bytes(fd, libc::IPPROTO_TCP, TCP_REPAIR_OPTIONS, &opts)?;
    if c.options & OPT_TIMESTAMPS != 0 {
        sock::set_int(fd, libc::IPPROTO_TCP, TCP_TIMESTAMP, c.timestamp as i32)?;
    }
    if !c.inq.is_empty() {
        select_queue(fd, TCP_RECV_QUEUE)?;
        send_all(fd, &c.inq, "receive")?;
    }
    let sent = c.outq.len().saturating_sub(c.unsent as usize);
    if sent > 0 {
        select_queue(fd, TCP_SEND_QUEUE)?;
        send_all(fd, &c.outq[..sent], "send")?;
    }
    select_queue(fd, TCP_NO_QUEUE)?;
    if let Some(w) = c.window {
        let mut b = Vec::with_capacity(20);
        for v in [w.snd_wl1, w.snd_wnd, w.max_window, w.rcv_wnd, w.rcv_wup] {
            b.extend_from_slice(&v.to_ne_bytes());
        }
        sock::set_bytes(fd, libc::IPPROTO_TCP, TCP_REPAIR_WINDOW, &b)?;
    }
    Ok(())
}

/// Leave repair mode on a restored connection (with a window probe, so the peer hears
/// from us at once) and write the part of the send queue that was never sent.
pub fn finish(fd: BorrowedFd<'_>, c: &Conn) -> Result<()> {
    repair_off(fd, true)?;
    let sent = c.outq.len().saturating_sub(c.unsent as usize);
    if sent < c.outq.len() {
        send_all(fd, &c.outq[sent..], "unsent send")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sock::{self, Addr};
    use std::io::{Read, Write};
    use std::net::{Ipv4Addr, Ipv6Addr, TcpListener, TcpStream};
    use std::os::fd::{AsFd, FromRawFd, IntoRawFd, OwnedFd};

    fn pair(v6: bool) -> (TcpStream, TcpStream) {
        let l = if v6 {
            TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).unwrap()
        } else {
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap()
        };
        let c = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let (s, _) = l.accept().unwrap();
        (s, c)
    }

    /// The server end of a loopback connection, with unread data in its receive queue
    /// and more in its send queue than the client's window takes, is dumped in repair
    /// mode, closed (silently), rebuilt on a new socket and released. The client — the
    /// remote peer — then reads everything exactly once and in order, and the new
    /// server end reads what the client sends next: no reset, no loss, no duplicate.
    #[test]
    fn connection_moves_to_a_new_socket_with_both_queues() {
        for v6 in [false, true] {
            let (server, mut client) = pair(v6);
            let small = 4096;
            // A small client receive buffer makes the server's send queue back up.
            sock::set_int(client.as_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, small).unwrap();
            client.write_all(b"request-bytes-not-yet-read").unwrap();
            server.set_nonblocking(true).unwrap();
            let big: Vec<u8> = (0..600_000u32).map(|i| (i * 7 % 251) as u8).collect();
            let mut written = 0;
            let mut s2 = &server;
            while written < big.len() {
                match s2.write(&big[written..]) {
                    Ok(n) => written += n,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("{e}"),
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            let local = sock::local_addr(server.as_fd()).unwrap();
            let remote = sock::peer_addr(server.as_fd()).unwrap().unwrap();
            repair_on(server.as_fd()).unwrap();
            let c = dump(server.as_fd()).unwrap();
            assert_eq!(c.state, ESTABLISHED);
            assert_eq!(c.inq, b"request-bytes-not-yet-read");
            assert!(!c.outq.is_empty(), "the send queue backed up");
            assert_eq!(&c.outq[..], &big[written - c.outq.len()..written]);
            assert!(
                c.options & OPT_TIMESTAMPS != 0,
                "loopback negotiates timestamps"
            );
            // Close the old socket in repair mode: nothing goes to the peer.
            drop(server);
            let fam = if v6 { libc::AF_INET6 } else { libc::AF_INET };
            // A fresh socket per try: a failed bind leaves a repair-mode socket unusable.
            let fresh: OwnedFd = crate::testutil::when_address_free(|| {
                let fresh = sock::socket(fam, libc::SOCK_STREAM, 0)?;
                restore(fresh.as_fd(), &c, &local, &remote)?;
                Ok(fresh)
            })
            .unwrap();
            finish(fresh.as_fd(), &c).unwrap();
            // SAFETY: `fresh` is a connected TCP socket we own.
            let mut server = unsafe { TcpStream::from_raw_fd(fresh.into_raw_fd()) };
            let mut inq = vec![0u8; c.inq.len()];
            server.read_exact(&mut inq).unwrap();
            assert_eq!(inq, b"request-bytes-not-yet-read");
            // Let the client read everything written before the move, then more.
            let rest = big[written..].to_vec();
            let writer = std::thread::spawn(move || {
                server.write_all(&rest).unwrap();
                server.write_all(b"END").unwrap();
                let mut reply = [0u8; 5];
                server.read_exact(&mut reply).unwrap();
                reply
            });
            let mut got = vec![0u8; big.len() + 3];
            client.read_exact(&mut got).unwrap();
            assert!(
                got[..big.len()] == big[..],
                "v6 {v6}: every byte once, in order"
            );
            assert_eq!(&got[big.len()..], b"END");
            client.write_all(b"reply").unwrap();
            assert_eq!(&writer.join().unwrap(), b"reply");
            let _ = Addr::UnixUnnamed;
        }
    }
}
