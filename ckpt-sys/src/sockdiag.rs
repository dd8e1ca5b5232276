//! `NETLINK_SOCK_DIAG` queries: what the kernel knows about every socket of our
//! network namespace that a descriptor alone does not tell.
//!
//! * [`unix_sockets`]: per unix socket inode — type, state, bound name, the inode of
//!   its peer (which pairs the two ends of a socketpair or connection), the peers of
//!   the connections waiting in a listener's accept queue ("icons"), queue lengths
//!   (for a listener: pending connections and the backlog), shutdown bits.
//! * [`inet_sockets`]: per TCP/UDP socket of IPv4 or IPv6 — state, both endpoints,
//!   queue lengths (for a TCP listener: pending connections and the backlog), inode,
//!   shutdown bits.
//!
//! The wire layouts (all native-endian except inet ports and addresses, which are in
//! network order), as the kernel's uapi headers define them:
//!
//! ```text
//! nlmsghdr          len u32 | type u16 | flags u16 | seq u32 | pid u32        (16)
//! unix_diag_req     family u8 | protocol u8 | pad u16 | states u32 | ino u32
//!                   | show u32 | cookie u32[2]                                 (24)
//! unix_diag_msg     family u8 | type u8 | state u8 | pad u8 | ino u32 | cookie u32[2] (16)
//! inet_diag_sockid  sport be16 | dport be16 | src be32[4] | dst be32[4] | if u32
//!                   | cookie u32[2]                                            (48)
//! inet_diag_req_v2  family u8 | protocol u8 | ext u8 | pad u8 | states u32 | sockid (56)
//! inet_diag_msg     family u8 | state u8 | timer u8 | retrans u8 | sockid
//!                   | expires u32 | rqueue u32 | wqueue u32 | uid u32 | inode u32 (72)
//! rtattr            len u16 | type u16 | payload, padded to 4
//! ```
//!
//! Every length read from a reply is checked against what is left of the buffer
//! before it is used; a reply that does not parse is an error, never a panic.

use crate::{Result, SysError};
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const NETLINK_SOCK_DIAG: i32 = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;

const UDIAG_SHOW_NAME: u32 = 0x1;
const UDIAG_SHOW_VFS: u32 = 0x2;
const UDIAG_SHOW_PEER: u32 = 0x4;
const UDIAG_SHOW_ICONS: u32 = 0x8;
const UDIAG_SHOW_RQLEN: u32 = 0x10;

const UNIX_DIAG_NAME: u16 = 0;
const UNIX_DIAG_VFS: u16 = 1;
const UNIX_DIAG_PEER: u16 = 2;
const UNIX_DIAG_ICONS: u16 = 3;
const UNIX_DIAG_RQLEN: u16 = 4;
const UNIX_DIAG_SHUTDOWN: u16 = 6;

const INET_DIAG_SHUTDOWN: u16 = 8;

/// What sock_diag reports about one unix socket.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UnixDiag {
    /// Socket inode (as in `socket:[N]`).
    pub ino: u32,
    /// `SOCK_STREAM` 1, `SOCK_DGRAM` 2, `SOCK_SEQPACKET` 5.
    pub ty: u8,
    /// TCP-style state: 1 established (connected), 7 close (unconnected), 10 listen.
    pub state: u8,
    /// Bound name: the raw `sun_path` bytes (a leading NUL for an abstract name).
    pub name: Option<Vec<u8>>,
    /// Device and inode of the bound socket file (`UNIX_DIAG_VFS`).
    pub vfs: Option<(u32, u32)>,
    /// Inode of the peer socket, when connected.
    pub peer: Option<u32>,
    /// For a listener: the inodes of the client sockets whose connections wait in the
    /// accept queue (0 for one whose client is gone).
    pub icons: Vec<u32>,
    /// Receive and send queue lengths; for a listener, pending connections and backlog.
    pub rqlen: Option<(u32, u32)>,
    /// `sk_shutdown` bits: 1 receive side shut, 2 send side shut.
    pub shutdown: u8,
}

/// What sock_diag reports about one TCP or UDP socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InetDiag {
    /// `AF_INET` or `AF_INET6`.
    pub family: u8,
    /// `IPPROTO_TCP` or `IPPROTO_UDP`.
    pub protocol: u8,
    /// TCP state (1 established ... 10 listen; UDP: 7 unconnected, 1 connected).
    pub state: u8,
    /// Local address and port.
    pub src: (std::net::IpAddr, u16),
    /// Remote address and port.
    pub dst: (std::net::IpAddr, u16),
    /// Receive queue bytes; for a listener, connections waiting to be accepted.
    pub rqueue: u32,
    /// Send queue bytes; for a listener, the backlog (`listen`'s argument, capped).
    pub wqueue: u32,
    /// Owner uid.
    pub uid: u32,
    /// Socket inode.
    pub ino: u32,
    /// `sk_shutdown` bits.
    pub shutdown: u8,
}

impl InetDiag {
    /// Local and remote endpoints as socket addresses.
    pub fn endpoints(&self) -> (crate::sock::Addr, crate::sock::Addr) {
        let a = |(ip, port): (std::net::IpAddr, u16)| match ip {
            std::net::IpAddr::V4(v) => crate::sock::Addr::V4(v, port),
            std::net::IpAddr::V6(v) => crate::sock::Addr::V6(v, port, 0, 0),
        };
        (a(self.src), a(self.dst))
    }
}

/// Names of the TCP states as `ss` prints them (index = state number).
pub const TCP_STATE_NAMES: [&str; 13] = [
    "unknown",
    "established",
    "syn-sent",
    "syn-recv",
    "fin-wait-1",
    "fin-wait-2",
    "time-wait",
    "close",
    "close-wait",
    "last-ack",
    "listen",
    "closing",
    "new-syn-recv",
];

/// Name of TCP state `s`.
pub fn tcp_state_name(s: u8) -> &'static str {
    TCP_STATE_NAMES
        .get(s as usize)
        .copied()
        .unwrap_or("unknown")
}

fn diag_socket() -> Result<OwnedFd> {
    // SAFETY: plain integer syscall.
    let fd = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            NETLINK_SOCK_DIAG,
        )
    };
    if fd < 0 {
        return Err(SysError::last("socket(AF_NETLINK, NETLINK_SOCK_DIAG)"));
    }
    // SAFETY: a fresh descriptor that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn u16_at(b: &[u8], o: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(o..o + 2)?.try_into().ok()?))
}
fn u32_at(b: &[u8], o: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(o..o + 4)?.try_into().ok()?))
}

/// Send one dump request (`payload` after the netlink header) and hand every reply
/// message's payload to `each`, until `NLMSG_DONE`.
fn dump(payload: &[u8], mut each: impl FnMut(&[u8]) -> Result<()>) -> Result<()> {
    let what = "sock_diag dump";
    let sock = diag_socket()?;
    let mut req = Vec::with_capacity(16 + payload.len());
    req.extend_from_slice(&((16 + payload.len()) as u32).to_ne_bytes());
    req.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    req.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    req.extend_from_slice(&1u32.to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes());
    req.extend_from_slice(payload);
    // SAFETY: `req` is valid for its length; the kernel is the default destination.
    let n = unsafe { libc::send(sock.as_raw_fd(), req.as_ptr() as *const _, req.len(), 0) };
    if n < 0 {
        return Err(SysError::last(format!("{what}: send")));
    }
    let mut buf = vec![0u8; 1 << 16];
    // A dump ends with NLMSG_DONE; bound the number of reads so a kernel that never
    // says so cannot keep us here.
    for _ in 0..1_000_000 {
        // SAFETY: `buf` is valid for its length.
        let n = unsafe { libc::recv(sock.as_raw_fd(), buf.as_mut_ptr() as *mut _, buf.len(), 0) };
        if n < 0 {
            let e = crate::last_errno();
            if e == libc::EINTR {
                continue;
            }
            return Err(SysError::errno(format!("{what}: recv"), e));
        }
        let mut rest = &buf[..n as usize];
        while rest.len() >= 16 {
            let len = u32_at(rest, 0).unwrap_or(0) as usize;
            let ty = u16_at(rest, 4).unwrap_or(0);
            if len < 16 || len > rest.len() {
                return Err(SysError::other(
                    what,
                    format!("reply of length {len} with {} bytes left", rest.len()),
                ));
            }
            let body = &rest[16..len];
            match ty {
                NLMSG_DONE => return Ok(()),
                NLMSG_ERROR => {
                    let e = u32_at(body, 0).map(|v| -(v as i32)).unwrap_or(libc::EIO);
                    return Err(SysError::errno(what, e));
                }
                _ => each(body)?,
            }
            let adv = (len + 3) & !3;
            rest = rest.get(adv..).unwrap_or(&[]);
        }
    }
    Err(SysError::other(what, "no end of dump"))
}

/// The attributes after a fixed header: `(type, payload)`.
fn attrs(mut b: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while b.len() >= 4 {
        let len = u16_at(b, 0).unwrap_or(0) as usize;
        let ty = u16_at(b, 2).unwrap_or(0) & 0x3fff;
        if len < 4 || len > b.len() {
            break;
        }
        out.push((ty, &b[4..len]));
        b = b.get((len + 3) & !3..).unwrap_or(&[]);
    }
    out
}

/// Every unix socket of our network namespace, by inode.
pub fn unix_sockets() -> Result<HashMap<u32, UnixDiag>> {
    let mut req = vec![libc::AF_UNIX as u8, 0, 0, 0];
    req.extend_from_slice(&u32::MAX.to_ne_bytes()); // every state
    req.extend_from_slice(&0u32.to_ne_bytes());
    req.extend_from_slice(
        &(UDIAG_SHOW_NAME | UDIAG_SHOW_VFS | UDIAG_SHOW_PEER | UDIAG_SHOW_ICONS | UDIAG_SHOW_RQLEN)
            .to_ne_bytes(),
    );
    req.extend_from_slice(&[0xff; 8]);
    let mut out = HashMap::new();
    dump(&req, |m| {
        if m.len() < 16 {
            return Err(SysError::other(
                "unix_diag_msg",
                format!("{} bytes, expected 16", m.len()),
            ));
        }
        let mut d = UnixDiag {
            ty: m[1],
            state: m[2],
            ino: u32_at(m, 4).unwrap_or(0),
            ..UnixDiag::default()
        };
        for (ty, p) in attrs(&m[16..]) {
            match ty {
                UNIX_DIAG_NAME => d.name = Some(p.to_vec()),
                UNIX_DIAG_VFS => d.vfs = u32_at(p, 4).zip(u32_at(p, 0)),
                UNIX_DIAG_PEER => d.peer = u32_at(p, 0),
                UNIX_DIAG_ICONS => {
                    d.icons = p.chunks_exact(4).filter_map(|c| u32_at(c, 0)).collect()
                }
                UNIX_DIAG_RQLEN => d.rqlen = u32_at(p, 0).zip(u32_at(p, 4)),
                UNIX_DIAG_SHUTDOWN => d.shutdown = p.first().copied().unwrap_or(0),
                _ => {}
            }
        }
        out.insert(d.ino, d);
        Ok(())
    })?;
    Ok(out)
}

fn ip_of(family: u8, b: &[u8]) -> std::net::IpAddr {
    if family as i32 == libc::AF_INET {
        Ipv4Addr::new(b[0], b[1], b[2], b[3]).into()
    } else {
        let mut a = [0u8; 16];
        a.copy_from_slice(&b[..16]);
        Ipv6Addr::from(a).into()
    }
}

/// Every socket of `family` (`AF_INET`/`AF_INET6`) and `protocol` (`IPPROTO_TCP`/
/// `IPPROTO_UDP`) in our network namespace.
pub fn inet_sockets(family: i32, protocol: i32) -> Result<Vec<InetDiag>> {
    let mut req = vec![family as u8, protocol as u8, 0, 0];
    req.extend_from_slice(&u32::MAX.to_ne_bytes());
    req.extend_from_slice(&[0u8; 40]);
    req.extend_from_slice(&[0xff; 8]);
    let mut out = Vec::new();
    dump(&req, |m| {
        if m.len() < 72 {
            return Err(SysError::other(
                "inet_diag_msg",
                format!("{} bytes, expected 72", m.len()),
            ));
        }
        let fam = m[0];
        let sport = u16::from_be_bytes([m[4], m[5]]);
        let dport = u16::from_be_bytes([m[6], m[7]]);
        let mut d = InetDiag {
            family: fam,
            protocol: protocol as u8,
            state: m[1],
            src: (ip_of(fam, &m[8..24]), sport),
            dst: (ip_of(fam, &m[24..40]), dport),
            rqueue: u32_at(m, 56).unwrap_or(0),
            wqueue: u32_at(m, 60).unwrap_or(0),
            uid: u32_at(m, 64).unwrap_or(0),
            ino: u32_at(m, 68).unwrap_or(0),
            shutdown: 0,
        };
        for (ty, p) in attrs(&m[72..]) {
            if ty == INET_DIAG_SHUTDOWN {
                d.shutdown = p.first().copied().unwrap_or(0);
            }
        }
        out.push(d);
        Ok(())
    })?;
    Ok(out)
}

/// The inet socket with inode `ino`, searched over TCP and UDP of both families.
pub fn inet_by_inode(ino: u32) -> Result<Option<InetDiag>> {
    for fam in [libc::AF_INET, libc::AF_INET6] {
        for proto in [libc::IPPROTO_TCP, libc::IPPROTO_UDP] {
            if let Some(d) = inet_sockets(fam, proto)?.into_iter().find(|d| d.ino == ino) {
                return Ok(Some(d));
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sock;
    use std::os::fd::AsFd;

    #[test]
    fn socketpair_peers_listener_backlog_and_shutdown() {
        let (a, b) = sock::socketpair(libc::SOCK_SEQPACKET).unwrap();
        sock::shutdown(b.as_fd(), libc::SHUT_WR).unwrap();
        let name = format!("ckpt-diag-test-{}", std::process::id());
        let l = sock::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0).unwrap();
        sock::bind(
            l.as_fd(),
            &sock::Addr::UnixAbstract(name.clone().into_bytes()),
        )
        .unwrap();
        sock::listen(l.as_fd(), 7).unwrap();
        let c = sock::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0).unwrap();
        sock::connect(
            c.as_fd(),
            &sock::Addr::UnixAbstract(name.clone().into_bytes()),
        )
        .unwrap();
        let all = unix_sockets().unwrap();
        let ino = |f: &OwnedFd| sock::inode(f.as_fd()).unwrap() as u32;
        let da = &all[&ino(&a)];
        let db = &all[&ino(&b)];
        assert_eq!((da.ty, da.state), (libc::SOCK_SEQPACKET as u8, 1));
        assert_eq!(da.peer, Some(ino(&b)));
        assert_eq!(db.peer, Some(ino(&a)));
        assert_eq!(db.shutdown, 2);
        assert_eq!(da.shutdown, 1, "the peer's SHUT_WR shuts our receive side");
        let dl = &all[&ino(&l)];
        assert_eq!(dl.state, 10);
        let mut want = vec![0u8];
        want.extend_from_slice(name.as_bytes());
        assert_eq!(dl.name.as_deref(), Some(&want[..]));
        assert_eq!(dl.rqlen, Some((1, 7)));
        assert_eq!(dl.icons, vec![ino(&c)]);
    }

    #[test]
    fn tcp_listener_backlog_and_connection_endpoints() {
        let l = sock::socket(libc::AF_INET6, libc::SOCK_STREAM, 0).unwrap();
        sock::bind(
            l.as_fd(),
            &sock::Addr::V6(std::net::Ipv6Addr::LOCALHOST, 0, 0, 0),
        )
        .unwrap();
        sock::listen(l.as_fd(), 5).unwrap();
        let port = sock::local_addr(l.as_fd()).unwrap().port();
        let c = sock::socket(libc::AF_INET6, libc::SOCK_STREAM, 0).unwrap();
        sock::connect(
            c.as_fd(),
            &sock::Addr::V6(std::net::Ipv6Addr::LOCALHOST, port, 0, 0),
        )
        .unwrap();
        let lino = sock::inode(l.as_fd()).unwrap() as u32;
        let cino = sock::inode(c.as_fd()).unwrap() as u32;
        let dl = inet_by_inode(lino).unwrap().unwrap();
        assert_eq!((dl.state, dl.wqueue, dl.src.1), (10, 5, port));
        let dc = inet_by_inode(cino).unwrap().unwrap();
        assert_eq!(dc.state, 1);
        assert_eq!(dc.dst, (std::net::Ipv6Addr::LOCALHOST.into(), port));
    }
}
