//! One socket of a frozen process, read whole: the OS-level snapshot a capture turns
//! into a record, and the reasons a restore could not rebuild it.
//!
//! [`Index`] is read once per capture (sock_diag of unix, TCP and UDP sockets); then
//! [`snapshot`] reads one descriptor of a frozen target through a duplicate of it
//! ([`crate::sock::take_fd`]): family/type/protocol, addresses, options, state, and
//! per kind — unix: peer inode, shutdown bits, backlog, accept-queue peers, the receive
//! queue with descriptors in flight; TCP: listener backlog or, for a connection, the
//! `TCP_REPAIR` dump (repair mode is switched on for the dump and off again without a
//! window probe unless the caller keeps it on, see [`Snapshot::tcp`]); UDP: addresses
//! and the number of queued datagrams (not carried: UDP may lose datagrams anyway);
//! netlink: protocol, port id and groups.
//!
//! [`refusals`] names, for a set of snapshots taken from one process tree, everything a
//! restore could not bring back: a unix peer outside the tree, TCP states other than
//! listen/established, a listener with connections waiting to be accepted, packet and
//! other families, queues that could not be read whole.

use crate::sock::{self, Addr, Options};
use crate::sockdiag::{self, InetDiag, UnixDiag};
use crate::unixq::{self, Message};
use crate::{tcp, Result, SysError};
use std::collections::{HashMap, HashSet};
use std::os::fd::{AsFd, OwnedFd};

/// sock_diag's view of the namespace, read once.
#[derive(Debug, Default)]
pub struct Index {
    /// Unix sockets by inode.
    pub unix: HashMap<u32, UnixDiag>,
    /// TCP and UDP sockets (both families) by inode.
    pub inet: HashMap<u32, InetDiag>,
}

impl Index {
    /// Read every unix, TCP and UDP socket of our network namespace.
    pub fn read() -> Result<Index> {
        let mut inet = HashMap::new();
        for fam in [libc::AF_INET, libc::AF_INET6] {
            for proto in [libc::IPPROTO_TCP, libc::IPPROTO_UDP] {
                for d in sockdiag::inet_sockets(fam, proto)? {
                    if d.ino != 0 {
                        inet.insert(d.ino, d);
                    }
                }
            }
        }
        Ok(Index {
            unix: sockdiag::unix_sockets()?,
            inet,
        })
    }
}

/// What kind-specific state a snapshot holds.
#[derive(Debug)]
pub enum Detail {
    /// A unix socket.
    Unix {
        /// Inode of the connected peer.
        peer_ino: Option<u32>,
        /// For a listener: the client sockets waiting in its accept queue.
        waiting: Vec<u32>,
        /// The receive queue, oldest first.
        queue: Vec<Message>,
    },
    /// A TCP socket: a listener, an unconnected socket, or a connection.
    Tcp {
        /// The repair-mode dump of an established connection.
        conn: Option<tcp::Conn>,
    },
    /// A UDP socket.
    Udp {
        /// Bytes of datagrams waiting to be read (not carried).
        queued: u32,
    },
    /// A netlink socket.
    Netlink {
        /// Multicast groups joined (group numbers from 1).
        groups: Vec<u32>,
    },
    /// Another family (packet, ...), not carried.
    Other,
}

/// One socket of a frozen process.
#[derive(Debug)]
pub struct Snapshot {
    /// Socket inode (`socket:[N]`).
    pub ino: u32,
    /// `AF_*`.
    pub family: i32,
    /// `SOCK_*`.
    pub ty: i32,
    /// Protocol number.
    pub protocol: i32,
    /// State (TCP numbering, also for unix: 1 connected, 7 unconnected, 10 listen).
    pub state: u8,
    /// Bound address.
    pub local: Addr,
    /// Connected peer's address.
    pub peer: Option<Addr>,
    /// `listen` backlog, for a listener.
    pub backlog: Option<u32>,
    /// Shutdown bits: 1 receiving side shut, 2 sending side shut.
    pub shutdown: u8,
    /// Options to set again.
    pub options: Options,
    /// Kind-specific state.
    pub detail: Detail,
    /// Our duplicate of the socket, kept so a caller can leave a TCP connection in
    /// repair mode until the process is gone (closing it then sends nothing).
    pub dup: OwnedFd,
}

fn family_name(f: i32) -> String {
    match f {
        libc::AF_UNIX => "unix".into(),
        libc::AF_INET => "inet".into(),
        libc::AF_INET6 => "inet6".into(),
        libc::AF_NETLINK => "netlink".into(),
        libc::AF_PACKET => "packet".into(),
        f => format!("family {f}"),
    }
}

const SOL_NETLINK: i32 = 270;
const NETLINK_LIST_MEMBERSHIPS: i32 = 9;
const NETLINK_ADD_MEMBERSHIP: i32 = 1;

/// Read descriptor `fd` of frozen process `pid`, a socket. With `keep_repair`, an
/// established TCP connection stays in repair mode after the dump (the capture is
/// followed by `--kill`: the socket then closes silently); otherwise repair mode is
/// left again without sending anything.
pub fn snapshot(pid: libc::pid_t, fd: i32, index: &Index, keep_repair: bool) -> Result<Snapshot> {
    let dup = sock::take_fd(pid, fd)?;
    let s = dup.as_fd();
    let ino = sock::inode(s)? as u32;
    let (family, ty, protocol) = sock::kind(s)?;
    let local = sock::local_addr(s)?;
    let peer = sock::peer_addr(s)?;
    let options = Options::read(s, family, protocol)?;
    let mut snap = Snapshot {
        ino,
        family,
        ty,
        protocol,
        state: 7,
        local,
        peer,
        backlog: None,
        shutdown: 0,
        options,
        detail: Detail::Other,
        dup: dup.try_clone().map_err(|e| SysError::io("dup", &e))?,
    };
    match family {
        libc::AF_UNIX => {
            let d = index.unix.get(&ino).cloned().unwrap_or_default();
            snap.state = d.state;
            snap.shutdown = d.shutdown;
            if d.state == tcp::LISTEN {
                snap.backlog = d.rqlen.map(|r| r.1);
            }
            let queue = if d.state == tcp::LISTEN {
                Vec::new()
            } else {
                let q = unixq::peek_queue(s, ty)?;
                // Stream and seqpacket: sock_diag knows the queue's bytes; a short walk
                // (a zero-length message ends it) must not pass unnoticed.
                if ty != libc::SOCK_DGRAM {
                    let got: usize = q.iter().map(|m| m.data.len()).sum();
                    if let Some((rq, _)) = d.rqlen {
                        if got != rq as usize {
                            return Err(SysError::other(
                                format!("pid {pid} fd {fd}: unix socket queue"),
                                format!("read {got} bytes, the kernel holds {rq}"),
                            ));
                        }
                    }
                }
                q
            };
            snap.detail = Detail::Unix {
                peer_ino: d.peer,
                waiting: d.icons.clone(),
                queue,
            };
        }
        libc::AF_INET | libc::AF_INET6 if protocol == libc::IPPROTO_TCP => {
            let d = index.inet.get(&ino);
            snap.state = d.map(|d| d.state).unwrap_or(tcp::CLOSE);
            snap.shutdown = d.map(|d| d.shutdown).unwrap_or(0);
            let mut conn = None;
            if snap.state == tcp::LISTEN {
                snap.backlog = d.map(|d| d.wqueue);
            } else if snap.state != tcp::CLOSE {
                tcp::repair_on(s)?;
                let r = tcp::dump(s);
                if !keep_repair || r.is_err() {
                    tcp::repair_off(s, false)?;
                }
                conn = Some(r?);
            }
            snap.detail = Detail::Tcp { conn };
        }
        libc::AF_INET | libc::AF_INET6 if protocol == libc::IPPROTO_UDP => {
            let d = index.inet.get(&ino);
            snap.state = d.map(|d| d.state).unwrap_or(tcp::CLOSE);
            snap.detail = Detail::Udp {
                queued: d.map(|d| d.rqueue).unwrap_or(0),
            };
        }
        libc::AF_NETLINK => {
            let mut b = vec![0u8; 128];
            let n = sock::get_bytes(s, SOL_NETLINK, NETLINK_LIST_MEMBERSHIPS, &mut b).unwrap_or(0);
            let mut groups = Vec::new();
            for (w, c) in b[..n].chunks_exact(4).enumerate() {
                let m = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]);
                for bit in 0..32 {
                    if m & (1 << bit) != 0 {
                        groups.push(w as u32 * 32 + bit + 1);
                    }
                }
            }
            snap.detail = Detail::Netlink { groups };
        }
        _ => {}
    }
    Ok(snap)
}

impl Snapshot {
    /// A one-line description: family, type, state, addresses, queued bytes (what
    /// `ckpt-inspect show` lists).
    pub fn describe(&self) -> String {
        let queued = match &self.detail {
            Detail::Unix { queue, .. } => queue.iter().map(|m| m.data.len()).sum::<usize>(),
            Detail::Tcp { conn: Some(c) } => c.inq.len() + c.outq.len(),
            Detail::Udp { queued } => *queued as usize,
            _ => 0,
        };
        line(
            self.family,
            self.ty,
            self.state,
            &self.local,
            self.peer.as_ref(),
            queued as u64,
        )
    }

    /// The TCP repair dump, for an established connection.
    pub fn tcp(&self) -> Option<&tcp::Conn> {
        match &self.detail {
            Detail::Tcp { conn } => conn.as_ref(),
            _ => None,
        }
    }
}

fn line(family: i32, ty: i32, state: u8, local: &Addr, peer: Option<&Addr>, queued: u64) -> String {
    let ty = match ty {
        libc::SOCK_STREAM => "stream",
        libc::SOCK_DGRAM => "dgram",
        libc::SOCK_SEQPACKET => "seqpacket",
        libc::SOCK_RAW => "raw",
        _ => "other",
    };
    let mut s = format!(
        "{} {ty} {} {local}",
        family_name(family),
        sockdiag::tcp_state_name(state)
    );
    if let Some(p) = peer {
        s.push_str(&format!(" -> {p}"));
    }
    s.push_str(&format!(" queued {queued}"));
    s
}

/// The same line as [`Snapshot::describe`] for descriptor `fd` of `pid`, read without
/// touching any queue (queued bytes from sock_diag: a unix socket's receive queue; a
/// TCP or UDP socket's receive plus send queue). For messages about a socket.
pub fn describe_fd(pid: libc::pid_t, fd: i32, index: &Index) -> Result<String> {
    let dup = sock::take_fd(pid, fd)?;
    let s = dup.as_fd();
    let ino = sock::inode(s)? as u32;
    let (family, ty, _) = sock::kind(s)?;
    let local = sock::local_addr(s)?;
    let peer = sock::peer_addr(s)?;
    let (state, queued) = if let Some(d) = index.unix.get(&ino) {
        let q = if d.state == tcp::LISTEN {
            0
        } else {
            d.rqlen.map_or(0, |r| r.0)
        };
        (d.state, q as u64)
    } else if let Some(d) = index.inet.get(&ino) {
        let q = if d.state == tcp::LISTEN {
            0
        } else {
            d.rqueue as u64 + d.wqueue as u64
        };
        (d.state, q)
    } else {
        (
            if peer.is_some() {
                tcp::ESTABLISHED
            } else {
                tcp::CLOSE
            },
            0,
        )
    };
    Ok(line(family, ty, state, &local, peer.as_ref(), queued))
}

/// Everything a restore of these sockets (all the sockets of one captured tree, with
/// where they were found: pid, fd) could not bring back, one message each. `disconnect`
/// allows unix sockets whose peer is outside the tree (they would be restored
/// unconnected, and this says so as a warning instead).
pub fn refusals(
    socks: &[(libc::pid_t, i32, &Snapshot)],
    disconnect: bool,
) -> (Vec<String>, Vec<String>) {
    let inos: HashSet<u32> = socks.iter().map(|s| s.2.ino).collect();
    let mut refuse = Vec::new();
    let mut warn = Vec::new();
    for &(pid, fd, s) in socks {
        let at = format!("pid {pid} fd {fd} ({})", s.describe());
        match &s.detail {
            Detail::Unix {
                peer_ino, waiting, ..
            } => {
                if let Some(p) = peer_ino {
                    if !inos.contains(p) {
                        let m = format!(
                            "{at}: its peer socket:[{p}] is outside the captured tree{}",
                            holder(*p)
                        );
                        if disconnect {
                            warn.push(format!("{m}; restored unconnected"));
                        } else {
                            refuse.push(m);
                        }
                    }
                }
                if !waiting.is_empty() {
                    refuse.push(format!(
                        "{at}: {} connection(s) wait in its accept queue (not carried yet)",
                        waiting.len()
                    ));
                }
            }
            Detail::Tcp { conn: Some(c) } => {
                if let Some(why) = c.refusal() {
                    refuse.push(format!("{at}: {why}"));
                }
            }
            Detail::Tcp { conn: None } if ![tcp::LISTEN, tcp::CLOSE].contains(&s.state) => {
                refuse.push(format!(
                    "{at}: TCP socket in state {}",
                    sockdiag::tcp_state_name(s.state)
                ));
            }
            Detail::Udp { queued } if *queued > 0 => warn.push(format!(
                "{at}: {queued} bytes of queued datagrams are not carried"
            )),
            Detail::Other => refuse.push(format!(
                "{at}: {} sockets are not carried",
                family_name(s.family)
            )),
            _ => {}
        }
    }
    (refuse, warn)
}

/// ", held by pid P (comm)" for the first process holding socket inode `ino`, if any.
fn holder(ino: u32) -> String {
    let want = format!("socket:[{ino}]");
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return String::new();
    };
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for f in fds.flatten() {
            if std::fs::read_link(f.path())
                .map(|l| l.as_os_str().as_encoded_bytes() == want.as_bytes())
                .unwrap_or(false)
            {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
                return format!(", held by pid {pid} ({})", comm.trim());
            }
        }
    }
    String::new()
}

/// Building sockets again (what a restore does with a snapshot's record), in the
/// calling process: the descriptors are then handed to the restored processes like
/// any staged file.
pub mod build {
    use super::*;
    use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

    /// One queued message to put back: bytes and the descriptors to send with them.
    pub type Queued<'a> = (&'a [u8], Vec<RawFd>);

    /// Both ends of a unix socketpair of type `ty`, each with its options, its receive
    /// queue refilled (a queue is sent from the other end, in order, descriptors
    /// attached) and then its shutdown bits (`2` = sending side shut) applied.
    pub fn unix_pair(
        ty: i32,
        ends: [(&Options, &[Queued<'_>], u8); 2],
    ) -> Result<(OwnedFd, OwnedFd)> {
        let (a, b) = sock::socketpair(ty)?;
        for (fd, (opts, _, _)) in [(&a, &ends[0]), (&b, &ends[1])] {
            opts.apply(fd.as_fd(), libc::AF_UNIX, 0)?;
        }
        refill(b.as_fd(), ends[0].1)?;
        refill(a.as_fd(), ends[1].1)?;
        for (fd, (_, _, shut)) in [(&a, &ends[0]), (&b, &ends[1])] {
            shut_as(fd.as_fd(), *shut)?;
        }
        Ok((a, b))
    }

    /// Send `msgs` from `from` (to its peer), in order. On a stream socket a message
    /// with descriptors goes as two writes, its descriptors with its last byte: a
    /// stream peek joins the writes before a descriptor-carrying one into one message
    /// and reports the descriptors for every offset of it (Linux 6.18), so where that
    /// write started is unknown; a reader reading the bytes apart then gets the
    /// descriptors with the read that reaches the message's end — never earlier than
    /// the program sent them, where a plain `read` would drop them.
    pub fn refill(from: BorrowedFd<'_>, msgs: &[Queued<'_>]) -> Result<()> {
        let stream = sock::get_int(from, libc::SOL_SOCKET, libc::SO_TYPE)? == libc::SOCK_STREAM;
        for (data, fds) in msgs {
            if stream && !fds.is_empty() && data.len() > 1 {
                let (head, last) = data.split_at(data.len() - 1);
                unixq::send_message(from, head, &[])?;
                unixq::send_message(from, last, fds)?;
            } else {
                unixq::send_message(from, data, fds)?;
            }
        }
        Ok(())
    }

    /// Apply shutdown bits as the kernel reports them for *this* end: bit 2 (send side
    /// shut) is a `shutdown(SHUT_WR)` of ours; bit 1 alone (receive side shut) is
    /// `SHUT_RD`. (A peer's `SHUT_WR` shows as our bit 1 too: shutting the peer's
    /// sending side restores it.)
    pub fn shut_as(fd: BorrowedFd<'_>, bits: u8) -> Result<()> {
        match bits & 3 {
            0 => Ok(()),
            1 => sock::shutdown(fd, libc::SHUT_RD),
            2 => sock::shutdown(fd, libc::SHUT_WR),
            _ => sock::shutdown(fd, libc::SHUT_RDWR),
        }
    }

    /// A socket of `family`/`ty`/`protocol` with `opts`, bound to `local` (unless it is
    /// unnamed or port 0 unbound), listening with `backlog` when given. A unix path
    /// that exists as a socket file nobody listens on any more (the captured process
    /// is gone) is removed first; any other file there is an error.
    pub fn bound(
        family: i32,
        ty: i32,
        protocol: i32,
        opts: &Options,
        local: &Addr,
        backlog: Option<u32>,
    ) -> Result<OwnedFd> {
        let s = sock::socket(family, ty, protocol)?;
        opts.apply(s.as_fd(), family, protocol)?;
        let unbound = matches!(local, Addr::UnixUnnamed)
            || matches!(local, Addr::V4(ip, 0) if ip.is_unspecified())
            || matches!(local, Addr::V6(ip, 0, _, _) if ip.is_unspecified());
        if !unbound {
            if let Addr::UnixPath(p) = local {
                remove_stale_socket_file(p)?;
            }
            sock::bind(s.as_fd(), local)?;
        }
        if let Some(b) = backlog {
            sock::listen(s.as_fd(), b as i32)?;
        }
        Ok(s)
    }

    fn remove_stale_socket_file(p: &[u8]) -> Result<()> {
        use std::os::unix::ffi::OsStrExt;
        let path = std::path::Path::new(std::ffi::OsStr::from_bytes(p));
        let Ok(md) = std::fs::symlink_metadata(path) else {
            return Ok(());
        };
        use std::os::unix::fs::FileTypeExt;
        if !md.file_type().is_socket() {
            return Err(SysError::other(
                format!("bind {}", path.display()),
                "a file that is not a socket is in the way",
            ));
        }
        // Someone still listening there? Then it is not ours to remove.
        let probe = sock::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0)?;
        let addr = Addr::UnixPath(p.to_vec());
        match sock::connect(probe.as_fd(), &addr) {
            Ok(()) => Err(SysError::errno(format!("bind {addr}"), libc::EADDRINUSE)),
            Err(e) if e.errno == libc::EPROTOTYPE => {
                Err(SysError::errno(format!("bind {addr}"), libc::EADDRINUSE))
            }
            Err(_) => std::fs::remove_file(path)
                .map_err(|e| SysError::io(format!("removing stale {}", path.display()), &e)),
        }
    }

    /// An established TCP connection rebuilt in repair mode (see [`crate::tcp`]); call
    /// [`finish_tcp`] once the peer may hear from it (after the net lock is lifted).
    pub fn tcp_connection(
        family: i32,
        opts: &Options,
        conn: &tcp::Conn,
        local: &Addr,
        remote: &Addr,
    ) -> Result<OwnedFd> {
        let s = sock::socket(family, libc::SOCK_STREAM, libc::IPPROTO_TCP)?;
        opts.apply(s.as_fd(), family, libc::IPPROTO_TCP)?;
        tcp::restore(s.as_fd(), conn, local, remote)?;
        Ok(s)
    }

    /// Leave repair mode ([`crate::tcp::finish`]: window probe, the never-sent data
    /// written) and set `SO_REUSEADDR` again if the program had it (leaving repair mode
    /// clears the socket's reuse setting).
    pub fn finish_tcp(fd: BorrowedFd<'_>, conn: &tcp::Conn, opts: &Options) -> Result<()> {
        tcp::finish(fd, conn)?;
        if opts.reuseaddr {
            sock::set_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
        }
        Ok(())
    }

    /// A connection accepted from a unix listener, rebuilt through the rebuilt
    /// listener (so the accepted end has the listener's name, as before): a client of
    /// type `ty` connects to `name`, `listener` accepts it at once. `ends` are (client,
    /// accepted) as in [`unix_pair`]. The listener's accept queue must hold nothing else.
    pub fn unix_accepted(
        listener: BorrowedFd<'_>,
        name: &Addr,
        ty: i32,
        ends: [(&Options, &[Queued<'_>], u8); 2],
    ) -> Result<(OwnedFd, OwnedFd)> {
        let c = sock::socket(libc::AF_UNIX, ty, 0)?;
        ends[0].0.apply(c.as_fd(), libc::AF_UNIX, 0)?;
        sock::connect(c.as_fd(), name)?;
        // SAFETY: accept4 on a descriptor we borrow; no address wanted.
        let a = unsafe {
            libc::accept4(
                listener.as_raw_fd(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                libc::SOCK_CLOEXEC,
            )
        };
        if a < 0 {
            return Err(SysError::last(format!("accept on {name}")));
        }
        // SAFETY: a fresh descriptor that we now own.
        let a = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(a) };
        ends[1].0.apply(a.as_fd(), libc::AF_UNIX, 0)?;
        refill(a.as_fd(), ends[0].1)?;
        refill(c.as_fd(), ends[1].1)?;
        shut_as(c.as_fd(), ends[0].2)?;
        shut_as(a.as_fd(), ends[1].2)?;
        Ok((c, a))
    }

    /// A UDP (or other datagram) socket: options, bound to `local`, connected to `peer`
    /// when it was.
    pub fn datagram(
        family: i32,
        protocol: i32,
        opts: &Options,
        local: &Addr,
        peer: Option<&Addr>,
    ) -> Result<OwnedFd> {
        let s = bound(family, libc::SOCK_DGRAM, protocol, opts, local, None)?;
        if let Some(p) = peer {
            sock::connect(s.as_fd(), p)?;
        }
        Ok(s)
    }

    /// A netlink socket of `protocol`: bound to port id `portid` (the kernel refuses
    /// one that is taken), joined to `groups`, connected to `peer` when it was.
    pub fn netlink(
        ty: i32,
        protocol: i32,
        opts: &Options,
        portid: u32,
        groups: &[u32],
        peer: Option<&Addr>,
    ) -> Result<OwnedFd> {
        let s = sock::socket(libc::AF_NETLINK, ty, protocol)?;
        opts.apply(s.as_fd(), libc::AF_NETLINK, protocol)?;
        sock::bind(s.as_fd(), &Addr::Netlink(portid, 0))?;
        for g in groups {
            sock::set_int(s.as_fd(), SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, *g as i32)?;
        }
        if let Some(p) = peer {
            if !matches!(p, Addr::Netlink(0, 0)) {
                sock::connect(s.as_fd(), p)?;
            }
        }
        Ok(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn me() -> libc::pid_t {
        std::process::id() as libc::pid_t
    }

    fn queue_of(s: &Snapshot) -> Vec<(Vec<u8>, Vec<std::os::fd::RawFd>)> {
        use std::os::fd::AsRawFd;
        match &s.detail {
            Detail::Unix { queue, .. } => queue
                .iter()
                .map(|m| {
                    (
                        m.data.clone(),
                        m.fds.iter().map(|f| f.as_raw_fd()).collect(),
                    )
                })
                .collect(),
            d => panic!("{d:?}"),
        }
    }

    /// A unix listener at a path with an accepted connection holding data both ways and
    /// a shut sending side: snapshots; originals closed (the socket file stays behind,
    /// as after a killed process); rebuilt: the stale file is replaced, the accepted end
    /// has the listener's name again, the client's peer is that name, the queues and
    /// the shutdown read as before.
    #[test]
    fn unix_listener_and_accepted_connection_rebuilt() {
        use std::io::Read;
        use std::os::fd::AsRawFd;
        let path = std::env::temp_dir().join(format!("ckpt-acc-{}.sock", me()));
        let _ = std::fs::remove_file(&path);
        let name = Addr::UnixPath(path.as_os_str().as_encoded_bytes().to_vec());
        let l = sock::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0).unwrap();
        sock::bind(l.as_fd(), &name).unwrap();
        sock::listen(l.as_fd(), 4).unwrap();
        let c = sock::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0).unwrap();
        sock::connect(c.as_fd(), &name).unwrap();
        // SAFETY: accept on our listener.
        let a = unsafe { libc::accept(l.as_raw_fd(), std::ptr::null_mut(), std::ptr::null_mut()) };
        assert!(a >= 0);
        // SAFETY: fresh descriptor.
        let a = unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(a) };
        unixq::send_message(c.as_fd(), b"to-server", &[]).unwrap();
        unixq::send_message(a.as_fd(), b"to-client", &[]).unwrap();
        sock::shutdown(c.as_fd(), libc::SHUT_WR).unwrap();
        let ix = Index::read().unwrap();
        let sl = snapshot(me(), l.as_raw_fd(), &ix, false).unwrap();
        let sc = snapshot(me(), c.as_raw_fd(), &ix, false).unwrap();
        let sa = snapshot(me(), a.as_raw_fd(), &ix, false).unwrap();
        assert_eq!((sl.state, sl.backlog), (10, Some(4)));
        assert_eq!(
            sa.local, name,
            "the accepted end carries the listener's name"
        );
        assert_eq!(sc.peer.as_ref(), Some(&name));
        let (qc, qa) = (queue_of(&sc), queue_of(&sa));
        let (oc, oa, ol) = (sc.options.clone(), sa.options.clone(), sl.options.clone());
        let (shc, sha, backlog) = (sc.shutdown, sa.shutdown, sl.backlog);
        drop((l, c, a, sl, sc, sa));
        assert!(path.exists(), "the socket file outlives its socket");
        let l2 = crate::testutil::when_address_free(|| {
            build::bound(libc::AF_UNIX, libc::SOCK_STREAM, 0, &ol, &name, backlog)
        })
        .unwrap();
        let qc: Vec<build::Queued> = qc.iter().map(|(d, f)| (&d[..], f.clone())).collect();
        let qa: Vec<build::Queued> = qa.iter().map(|(d, f)| (&d[..], f.clone())).collect();
        let (c2, a2) = build::unix_accepted(
            l2.as_fd(),
            &name,
            libc::SOCK_STREAM,
            [(&oc, &qc[..], shc), (&oa, &qa[..], sha)],
        )
        .unwrap();
        assert_eq!(sock::local_addr(a2.as_fd()).unwrap(), name);
        assert_eq!(sock::peer_addr(c2.as_fd()).unwrap(), Some(name.clone()));
        let mut s = String::new();
        std::fs::File::from(a2).read_to_string(&mut s).unwrap();
        assert_eq!(s, "to-server", "then EOF: the client's side is shut");
        let mut b = [0u8; 9];
        std::fs::File::from(c2).read_exact(&mut b).unwrap();
        assert_eq!(&b, b"to-client");
        let _ = std::fs::remove_file(&path);
    }

    /// UDP of both families, bound and connected, and a netlink socket with groups:
    /// snapshot of our own descriptors, rebuilt from it (after the original is closed,
    /// so the same address and port id are free), and the rebuilt socket reads back
    /// the same.
    #[test]
    fn udp_and_netlink_rebuilt_from_a_snapshot() {
        use std::os::fd::AsRawFd;
        for (fam, any, lo) in [
            (
                libc::AF_INET,
                Addr::V4(Ipv4Addr::LOCALHOST, 0),
                Addr::V4(Ipv4Addr::LOCALHOST, 9),
            ),
            (
                libc::AF_INET6,
                Addr::V6(Ipv6Addr::LOCALHOST, 0, 0, 0),
                Addr::V6(Ipv6Addr::LOCALHOST, 9, 0, 0),
            ),
        ] {
            let s = sock::socket(fam, libc::SOCK_DGRAM, 0).unwrap();
            sock::set_int(s.as_fd(), libc::SOL_SOCKET, libc::SO_BROADCAST, 1).unwrap();
            sock::bind(s.as_fd(), &any).unwrap();
            sock::connect(s.as_fd(), &lo).unwrap();
            let index = Index::read().unwrap();
            let snap = snapshot(me(), s.as_raw_fd(), &index, false).unwrap();
            assert!(matches!(snap.detail, Detail::Udp { queued: 0 }));
            assert_eq!(snap.peer.as_ref(), Some(&lo));
            assert_eq!(snap.state, 1, "a connected UDP socket");
            drop(s);
            let (local, peer, opts) = (snap.local.clone(), snap.peer.clone(), snap.options.clone());
            drop(snap);
            let r = crate::testutil::when_address_free(|| {
                build::datagram(fam, libc::IPPROTO_UDP, &opts, &local, peer.as_ref())
            })
            .unwrap();
            assert_eq!(sock::local_addr(r.as_fd()).unwrap(), local);
            assert_eq!(sock::peer_addr(r.as_fd()).unwrap(), peer);
            assert_eq!(
                Options::read(r.as_fd(), fam, libc::IPPROTO_UDP).unwrap(),
                opts
            );
        }
        // NETLINK_ROUTE with the link and IPv4-address groups (1 and 5), port id chosen.
        let n = sock::socket(libc::AF_NETLINK, libc::SOCK_RAW, libc::NETLINK_ROUTE).unwrap();
        let portid = 0x4000_0000 | (me() as u32 & 0xffff);
        sock::bind(n.as_fd(), &Addr::Netlink(portid, 0)).unwrap();
        for g in [1, 5] {
            sock::set_int(n.as_fd(), SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, g).unwrap();
        }
        let snap = snapshot(me(), n.as_raw_fd(), &Index::default(), false).unwrap();
        match &snap.detail {
            Detail::Netlink { groups } => assert_eq!(groups, &[1, 5]),
            d => panic!("{d:?}"),
        }
        assert_eq!(snap.local, Addr::Netlink(portid, 0b10001));
        assert_eq!(snap.protocol, libc::NETLINK_ROUTE);
        let groups = match &snap.detail {
            Detail::Netlink { groups } => groups.clone(),
            _ => unreachable!(),
        };
        let (ty, proto, opts, local) = (
            snap.ty,
            snap.protocol,
            snap.options.clone(),
            snap.local.clone(),
        );
        drop((n, snap)); // the snapshot's duplicate too: the port id is free again
        let r = crate::testutil::when_address_free(|| {
            build::netlink(ty, proto, &opts, portid, &groups, None)
        })
        .unwrap();
        assert_eq!(sock::local_addr(r.as_fd()).unwrap(), local);
    }
}
