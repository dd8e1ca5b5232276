//! Sockets seen through a descriptor of our own.
//!
//! Capture takes a duplicate of a target's socket descriptor with [`take_fd`]
//! (`pidfd_open` + `pidfd_getfd`: the same socket, not a copy, so nothing is injected
//! into the target), then reads everything a restore needs from it: family, type,
//! protocol, both addresses ([`Addr`]), the options of [`Options`], and — through
//! [`crate::unixq`] and [`crate::tcp`] — the queued data. Restore builds the same
//! objects with [`socket`], [`bind`], [`Options::apply`].
//!
//! Addresses are kept as [`Addr`], a parsed form of the kernel's `sockaddr_*`
//! (unix path / abstract name / unnamed, IPv4, IPv6 with flow info and scope,
//! netlink port id and groups); [`Addr::to_raw`]/[`Addr::from_raw`] convert.

use crate::{Result, SysError};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// A duplicate of descriptor `fd` of process `pid` in our own table (`pidfd_getfd`,
/// Linux 5.6+; needs ptrace access to `pid`). It refers to the very same open file
/// description: anything done to it is done to the target's socket.
pub fn take_fd(pid: libc::pid_t, fd: i32) -> Result<OwnedFd> {
    // SAFETY: plain integer syscall.
    let pfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pfd < 0 {
        return Err(SysError::last(format!("pidfd_open {pid}")));
    }
    // SAFETY: pidfd_open returned a fresh descriptor that we now own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pfd as RawFd) };
    // SAFETY: plain integer syscall on a descriptor we own.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if r < 0 {
        return Err(SysError::last(format!("pidfd_getfd pid {pid} fd {fd}")));
    }
    // SAFETY: pidfd_getfd returned a fresh descriptor (O_CLOEXEC) that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(r as RawFd) })
}

/// `getsockopt` of an `int` option.
pub fn get_int(fd: BorrowedFd<'_>, level: i32, opt: i32) -> Result<i32> {
    let mut v: i32 = 0;
    let mut len = std::mem::size_of::<i32>() as libc::socklen_t;
    // SAFETY: `v`/`len` are valid out pointers of the size passed.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            &mut v as *mut i32 as *mut libc::c_void,
            &mut len,
        )
    };
    if r != 0 {
        return Err(SysError::last(format!("getsockopt({level}, {opt})")));
    }
    Ok(v)
}

/// `getsockopt` into a byte buffer; returns the length the kernel wrote.
pub fn get_bytes(fd: BorrowedFd<'_>, level: i32, opt: i32, buf: &mut [u8]) -> Result<usize> {
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: `buf` is valid for `len` bytes; `len` is a valid in/out pointer.
    let r = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            buf.as_mut_ptr() as *mut libc::c_void,
            &mut len,
        )
    };
    if r != 0 {
        return Err(SysError::last(format!("getsockopt({level}, {opt})")));
    }
    Ok((len as usize).min(buf.len()))
}

/// `setsockopt` of an `int` option.
pub fn set_int(fd: BorrowedFd<'_>, level: i32, opt: i32, v: i32) -> Result<()> {
    set_bytes(fd, level, opt, &v.to_ne_bytes())
}

/// `setsockopt` with a byte buffer as the value.
pub fn set_bytes(fd: BorrowedFd<'_>, level: i32, opt: i32, v: &[u8]) -> Result<()> {
    // SAFETY: `v` is valid for its length.
    let r = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            opt,
            v.as_ptr() as *const libc::c_void,
            v.len() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(SysError::last(format!("setsockopt({level}, {opt})")));
    }
    Ok(())
}

/// An `ioctl` that reports an `int` (`SIOCINQ`, `SIOCOUTQ`, `SIOCOUTQNSD`).
pub fn ioctl_int(fd: BorrowedFd<'_>, req: u64) -> Result<i32> {
    let mut v: i32 = 0;
    // SAFETY: the requests used here write one int through the pointer.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req as _, &mut v as *mut i32) };
    if r != 0 {
        return Err(SysError::last(format!("ioctl {req:#x}")));
    }
    Ok(v)
}

/// A socket address in parsed form.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Addr {
    /// `AF_UNIX` without a name (socketpair ends, unbound sockets, autobind not done).
    UnixUnnamed,
    /// `AF_UNIX` bound to a file system path (the bytes of `sun_path`, no NUL).
    UnixPath(Vec<u8>),
    /// `AF_UNIX` abstract name (the bytes after the leading NUL; may contain NULs).
    UnixAbstract(Vec<u8>),
    /// `AF_INET`: address and port.
    V4(Ipv4Addr, u16),
    /// `AF_INET6`: address, port, flow info, scope id.
    V6(Ipv6Addr, u16, u32, u32),
    /// `AF_NETLINK`: port id and the first 32 multicast groups as a bit mask.
    Netlink(u32, u32),
    /// Another family: the family number and the raw bytes after it.
    Other(u16, Vec<u8>),
}

const SUN_PATH_OFF: usize = 2;

impl Addr {
    /// Parse the first `raw.len()` bytes of a `sockaddr_*` as `getsockname` returned them.
    pub fn from_raw(raw: &[u8]) -> Addr {
        if raw.len() < 2 {
            return Addr::UnixUnnamed;
        }
        let fam = u16::from_ne_bytes([raw[0], raw[1]]);
        let rest = &raw[2..];
        match fam as i32 {
            libc::AF_UNIX => {
                let p = &raw[SUN_PATH_OFF..];
                if p.is_empty() {
                    Addr::UnixUnnamed
                } else if p[0] == 0 {
                    Addr::UnixAbstract(p[1..].to_vec())
                } else {
                    let end = p.iter().position(|&b| b == 0).unwrap_or(p.len());
                    Addr::UnixPath(p[..end].to_vec())
                }
            }
            libc::AF_INET if raw.len() >= 8 => Addr::V4(
                Ipv4Addr::new(raw[4], raw[5], raw[6], raw[7]),
                u16::from_be_bytes([raw[2], raw[3]]),
            ),
            libc::AF_INET6 if raw.len() >= 28 => {
                let mut a = [0u8; 16];
                a.copy_from_slice(&raw[8..24]);
                Addr::V6(
                    Ipv6Addr::from(a),
                    u16::from_be_bytes([raw[2], raw[3]]),
                    u32::from_be_bytes([raw[4], raw[5], raw[6], raw[7]]),
                    u32::from_ne_bytes([raw[24], raw[25], raw[26], raw[27]]),
                )
            }
            libc::AF_NETLINK if raw.len() >= 12 => Addr::Netlink(
                u32::from_ne_bytes([raw[4], raw[5], raw[6], raw[7]]),
                u32::from_ne_bytes([raw[8], raw[9], raw[10], raw[11]]),
            ),
            _ => Addr::Other(fam, rest.to_vec()),
        }
    }

    /// The `sockaddr_*` bytes for `bind`/`connect`.
    pub fn to_raw(&self) -> Vec<u8> {
        let fam = |f: i32| (f as u16).to_ne_bytes().to_vec();
        match self {
            Addr::UnixUnnamed => fam(libc::AF_UNIX),
            Addr::UnixPath(p) => {
                let mut v = fam(libc::AF_UNIX);
                v.extend_from_slice(p);
                v.push(0);
                v
            }
            Addr::UnixAbstract(n) => {
                let mut v = fam(libc::AF_UNIX);
                v.push(0);
                v.extend_from_slice(n);
                v
            }
            Addr::V4(a, port) => {
                let mut v = fam(libc::AF_INET);
                v.extend_from_slice(&port.to_be_bytes());
                v.extend_from_slice(&a.octets());
                v.extend_from_slice(&[0; 8]);
                v
            }
            Addr::V6(a, port, flow, scope) => {
                let mut v = fam(libc::AF_INET6);
                v.extend_from_slice(&port.to_be_bytes());
                v.extend_from_slice(&flow.to_be_bytes());
                v.extend_from_slice(&a.octets());
                v.extend_from_slice(&scope.to_ne_bytes());
                v
            }
            Addr::Netlink(pid, groups) => {
                let mut v = fam(libc::AF_NETLINK);
                v.extend_from_slice(&[0, 0]);
                v.extend_from_slice(&pid.to_ne_bytes());
                v.extend_from_slice(&groups.to_ne_bytes());
                v
            }
            Addr::Other(f, rest) => {
                let mut v = f.to_ne_bytes().to_vec();
                v.extend_from_slice(rest);
                v
            }
        }
    }

    /// The port of an inet address (0 for others).
    pub fn port(&self) -> u16 {
        match self {
            Addr::V4(_, p) | Addr::V6(_, p, _, _) => *p,
            _ => 0,
        }
    }
}

impl std::fmt::Display for Addr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Addr::UnixUnnamed => f.write_str("unnamed"),
            Addr::UnixPath(p) => write!(f, "{}", String::from_utf8_lossy(p)),
            Addr::UnixAbstract(n) => write!(f, "@{}", String::from_utf8_lossy(n)),
            Addr::V4(a, p) => write!(f, "{a}:{p}"),
            Addr::V6(a, p, _, _) => write!(f, "[{a}]:{p}"),
            Addr::Netlink(pid, g) => write!(f, "portid {pid} groups {g:#x}"),
            Addr::Other(fam, _) => write!(f, "family {fam}"),
        }
    }
}

type NameFn = unsafe extern "C" fn(i32, *mut libc::sockaddr, *mut libc::socklen_t) -> i32;

fn name_of(fd: BorrowedFd<'_>, f: NameFn, what: &str) -> Result<Option<Addr>> {
    // SAFETY: an all-zero sockaddr_storage is valid.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `ss` is valid for `len` bytes; `len` is a valid in/out pointer.
    let r = unsafe {
        f(
            fd.as_raw_fd(),
            &mut ss as *mut _ as *mut libc::sockaddr,
            &mut len,
        )
    };
    if r != 0 {
        let e = crate::last_errno();
        if e == libc::ENOTCONN {
            return Ok(None);
        }
        return Err(SysError::errno(what.to_string(), e));
    }
    let n = (len as usize).min(std::mem::size_of::<libc::sockaddr_storage>());
    // SAFETY: `ss` is plain bytes; `n` is within its size.
    let bytes = unsafe { std::slice::from_raw_parts(&ss as *const _ as *const u8, n) };
    Ok(Some(Addr::from_raw(bytes)))
}

/// `getsockname`.
pub fn local_addr(fd: BorrowedFd<'_>) -> Result<Addr> {
    Ok(name_of(fd, libc::getsockname, "getsockname")?.unwrap_or(Addr::UnixUnnamed))
}

/// `getpeername`; `None` when not connected.
pub fn peer_addr(fd: BorrowedFd<'_>) -> Result<Option<Addr>> {
    name_of(fd, libc::getpeername, "getpeername")
}

/// `socket(family, type | SOCK_CLOEXEC, protocol)`.
pub fn socket(family: i32, ty: i32, protocol: i32) -> Result<OwnedFd> {
    // SAFETY: plain integer syscall.
    let fd = unsafe { libc::socket(family, ty | libc::SOCK_CLOEXEC, protocol) };
    if fd < 0 {
        return Err(SysError::last(format!(
            "socket({family}, {ty}, {protocol})"
        )));
    }
    // SAFETY: a fresh descriptor that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `socketpair(AF_UNIX, type | SOCK_CLOEXEC, 0)`.
pub fn socketpair(ty: i32) -> Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is a valid array of two ints.
    if unsafe { libc::socketpair(libc::AF_UNIX, ty | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr()) } != 0
    {
        return Err(SysError::last(format!("socketpair(AF_UNIX, {ty})")));
    }
    // SAFETY: two fresh descriptors that we now own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn addr_call(
    fd: BorrowedFd<'_>,
    a: &Addr,
    f: unsafe extern "C" fn(i32, *const libc::sockaddr, libc::socklen_t) -> i32,
    what: &str,
) -> Result<()> {
    let raw = a.to_raw();
    // SAFETY: `raw` holds a sockaddr of its length.
    let r = unsafe {
        f(
            fd.as_raw_fd(),
            raw.as_ptr() as *const libc::sockaddr,
            raw.len() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(SysError::last(format!("{what} {a}")));
    }
    Ok(())
}

/// `bind(fd, addr)`.
pub fn bind(fd: BorrowedFd<'_>, a: &Addr) -> Result<()> {
    addr_call(fd, a, libc::bind, "bind")
}

/// `connect(fd, addr)`; `EINPROGRESS` counts as success.
pub fn connect(fd: BorrowedFd<'_>, a: &Addr) -> Result<()> {
    match addr_call(fd, a, libc::connect, "connect") {
        Err(e) if e.errno == libc::EINPROGRESS => Ok(()),
        r => r,
    }
}

/// `listen(fd, backlog)`.
pub fn listen(fd: BorrowedFd<'_>, backlog: i32) -> Result<()> {
    // SAFETY: plain integer syscall.
    if unsafe { libc::listen(fd.as_raw_fd(), backlog) } != 0 {
        return Err(SysError::last(format!("listen backlog {backlog}")));
    }
    Ok(())
}

/// `shutdown(fd, how)` (`SHUT_RD` 0, `SHUT_WR` 1, `SHUT_RDWR` 2).
pub fn shutdown(fd: BorrowedFd<'_>, how: i32) -> Result<()> {
    // SAFETY: plain integer syscall.
    if unsafe { libc::shutdown(fd.as_raw_fd(), how) } != 0 {
        return Err(SysError::last(format!("shutdown {how}")));
    }
    Ok(())
}

/// The options a restore sets again, as read from a live socket. `None` for an option
/// that does not apply to the socket's family or type.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Options {
    /// `SO_REUSEADDR`.
    pub reuseaddr: bool,
    /// `SO_REUSEPORT`.
    pub reuseport: bool,
    /// `SO_KEEPALIVE`.
    pub keepalive: bool,
    /// `SO_BROADCAST`.
    pub broadcast: bool,
    /// `SO_OOBINLINE`.
    pub oobinline: bool,
    /// `SO_PASSCRED`.
    pub passcred: bool,
    /// `SO_PRIORITY`.
    pub priority: i32,
    /// `SO_RCVBUF` as `getsockopt` reports it (the kernel's doubled value).
    pub rcvbuf: i32,
    /// `SO_SNDBUF` as `getsockopt` reports it (the kernel's doubled value).
    pub sndbuf: i32,
    /// `SO_RCVLOWAT`.
    pub rcvlowat: i32,
    /// `SO_RCVTIMEO` in microseconds (0 = none).
    pub rcvtimeo_us: u64,
    /// `SO_SNDTIMEO` in microseconds (0 = none).
    pub sndtimeo_us: u64,
    /// `SO_LINGER`: `Some(seconds)` when on.
    pub linger: Option<i32>,
    /// `SO_PEEK_OFF` (-1 = off).
    pub peek_off: i32,
    /// `TCP_NODELAY` (TCP only).
    pub tcp_nodelay: Option<bool>,
    /// `TCP_CORK` (TCP only).
    pub tcp_cork: Option<bool>,
    /// `TCP_KEEPIDLE`, `TCP_KEEPINTVL`, `TCP_KEEPCNT` (TCP only).
    pub tcp_keepalive: Option<(i32, i32, i32)>,
    /// `IPV6_V6ONLY` (IPv6 only).
    pub v6only: Option<bool>,
}

fn timeo_us(fd: BorrowedFd<'_>, opt: i32) -> Result<u64> {
    let mut b = [0u8; 16];
    get_bytes(fd, libc::SOL_SOCKET, opt, &mut b)?;
    let s = i64::from_ne_bytes(b[0..8].try_into().unwrap_or([0; 8]));
    let us = i64::from_ne_bytes(b[8..16].try_into().unwrap_or([0; 8]));
    Ok((s.max(0) as u64).saturating_mul(1_000_000) + us.max(0) as u64)
}

fn set_timeo_us(fd: BorrowedFd<'_>, opt: i32, us: u64) -> Result<()> {
    let mut b = [0u8; 16];
    b[0..8].copy_from_slice(&((us / 1_000_000) as i64).to_ne_bytes());
    b[8..16].copy_from_slice(&((us % 1_000_000) as i64).to_ne_bytes());
    set_bytes(fd, libc::SOL_SOCKET, opt, &b)
}

impl Options {
    /// Read every option that applies to a socket of `family`/`ty`/`protocol`.
    pub fn read(fd: BorrowedFd<'_>, family: i32, protocol: i32) -> Result<Options> {
        let so = |o| get_int(fd, libc::SOL_SOCKET, o);
        let mut b = [0u8; 8];
        get_bytes(fd, libc::SOL_SOCKET, libc::SO_LINGER, &mut b)?;
        let l_on = i32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
        let l_s = i32::from_ne_bytes([b[4], b[5], b[6], b[7]]);
        let inet = family == libc::AF_INET || family == libc::AF_INET6;
        let tcp = inet && protocol == libc::IPPROTO_TCP;
        let t = |o| get_int(fd, libc::IPPROTO_TCP, o);
        Ok(Options {
            reuseaddr: so(libc::SO_REUSEADDR)? != 0,
            reuseport: if inet {
                so(libc::SO_REUSEPORT)? != 0
            } else {
                false
            },
            keepalive: so(libc::SO_KEEPALIVE)? != 0,
            broadcast: so(libc::SO_BROADCAST)? != 0,
            oobinline: so(libc::SO_OOBINLINE)? != 0,
            // Only unix and netlink sockets have it (EOPNOTSUPP elsewhere since 6.16).
            passcred: match so(libc::SO_PASSCRED) {
                Ok(v) => v != 0,
                Err(e) if e.errno == libc::EOPNOTSUPP || e.errno == libc::ENOPROTOOPT => false,
                Err(e) => return Err(e),
            },
            priority: so(libc::SO_PRIORITY)?,
            rcvbuf: so(libc::SO_RCVBUF)?,
            sndbuf: so(libc::SO_SNDBUF)?,
            rcvlowat: so(libc::SO_RCVLOWAT)?,
            rcvtimeo_us: timeo_us(fd, libc::SO_RCVTIMEO)?,
            sndtimeo_us: timeo_us(fd, libc::SO_SNDTIMEO)?,
            linger: (l_on != 0).then_some(l_s),
            peek_off: if family == libc::AF_UNIX || inet {
                so(libc::SO_PEEK_OFF).unwrap_or(-1)
            } else {
                -1
            },
            tcp_nodelay: if tcp {
                Some(t(libc::TCP_NODELAY)? != 0)
            } else {
                None
            },
            tcp_cork: if tcp {
                Some(t(libc::TCP_CORK)? != 0)
            } else {
                None
            },
            tcp_keepalive: if tcp {
                Some((
                    t(libc::TCP_KEEPIDLE)?,
                    t(libc::TCP_KEEPINTVL)?,
                    t(libc::TCP_KEEPCNT)?,
                ))
            } else {
                None
            },
            v6only: if family == libc::AF_INET6 {
                Some(get_int(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY)? != 0)
            } else {
                None
            },
        })
    }

    /// Set every option on `fd` that differs from what `fd` has now (a fresh socket
    /// keeps the kernel's defaults, so buffer sizes the program never set stay
    /// auto-tuned). Call before `bind` (for `SO_REUSEADDR`/`PORT`, `IPV6_V6ONLY`).
    /// Buffer sizes go in with `SO_RCVBUFFORCE`/`SO_SNDBUFFORCE` when allowed (above
    /// `rmem_max`), halved (the kernel doubles what it is given).
    pub fn apply(&self, fd: BorrowedFd<'_>, family: i32, protocol: i32) -> Result<()> {
        let now = Options::read(fd, family, protocol)?;
        let so = |o, v: bool| set_int(fd, libc::SOL_SOCKET, o, v as i32);
        if self.reuseaddr != now.reuseaddr {
            so(libc::SO_REUSEADDR, self.reuseaddr)?;
        }
        if self.reuseport != now.reuseport {
            so(libc::SO_REUSEPORT, self.reuseport)?;
        }
        if self.keepalive != now.keepalive {
            so(libc::SO_KEEPALIVE, self.keepalive)?;
        }
        if self.broadcast != now.broadcast {
            so(libc::SO_BROADCAST, self.broadcast)?;
        }
        if self.oobinline != now.oobinline {
            so(libc::SO_OOBINLINE, self.oobinline)?;
        }
        if self.passcred != now.passcred {
            so(libc::SO_PASSCRED, self.passcred)?;
        }
        if self.priority != now.priority {
            set_int(fd, libc::SOL_SOCKET, libc::SO_PRIORITY, self.priority)?;
        }
        for (want, have, force, plain) in [
            (
                self.rcvbuf,
                now.rcvbuf,
                libc::SO_RCVBUFFORCE,
                libc::SO_RCVBUF,
            ),
            (
                self.sndbuf,
                now.sndbuf,
                libc::SO_SNDBUFFORCE,
                libc::SO_SNDBUF,
            ),
        ] {
            if want != have {
                let v = want / 2;
                set_int(fd, libc::SOL_SOCKET, force, v)
                    .or_else(|_| set_int(fd, libc::SOL_SOCKET, plain, v))?;
            }
        }
        if self.rcvlowat != now.rcvlowat {
            set_int(fd, libc::SOL_SOCKET, libc::SO_RCVLOWAT, self.rcvlowat)?;
        }
        if self.rcvtimeo_us != now.rcvtimeo_us {
            set_timeo_us(fd, libc::SO_RCVTIMEO, self.rcvtimeo_us)?;
        }
        if self.sndtimeo_us != now.sndtimeo_us {
            set_timeo_us(fd, libc::SO_SNDTIMEO, self.sndtimeo_us)?;
        }
        if self.linger != now.linger {
            let mut b = [0u8; 8];
            b[0..4].copy_from_slice(&(self.linger.is_some() as i32).to_ne_bytes());
            b[4..8].copy_from_slice(&self.linger.unwrap_or(0).to_ne_bytes());
            set_bytes(fd, libc::SOL_SOCKET, libc::SO_LINGER, &b)?;
        }
        if self.peek_off != now.peek_off && self.peek_off >= 0 {
            set_int(fd, libc::SOL_SOCKET, libc::SO_PEEK_OFF, self.peek_off)?;
        }
        let t = |o, v: i32| set_int(fd, libc::IPPROTO_TCP, o, v);
        if let (Some(w), Some(h)) = (self.tcp_nodelay, now.tcp_nodelay) {
            if w != h {
                t(libc::TCP_NODELAY, w as i32)?;
            }
        }
        if let (Some(w), Some(h)) = (self.tcp_cork, now.tcp_cork) {
            if w != h {
                t(libc::TCP_CORK, w as i32)?;
            }
        }
        if let (Some(w), Some(h)) = (self.tcp_keepalive, now.tcp_keepalive) {
            if w.0 != h.0 {
                t(libc::TCP_KEEPIDLE, w.0)?;
            }
            if w.1 != h.1 {
                t(libc::TCP_KEEPINTVL, w.1)?;
            }
            if w.2 != h.2 {
                t(libc::TCP_KEEPCNT, w.2)?;
            }
        }
        if let (Some(w), Some(h)) = (self.v6only, now.v6only) {
            if w != h {
                set_int(fd, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, w as i32)?;
            }
        }
        Ok(())
    }
}

/// Family, type and protocol of a socket (`SO_DOMAIN`, `SO_TYPE`, `SO_PROTOCOL`).
pub fn kind(fd: BorrowedFd<'_>) -> Result<(i32, i32, i32)> {
    Ok((
        get_int(fd, libc::SOL_SOCKET, libc::SO_DOMAIN)?,
        get_int(fd, libc::SOL_SOCKET, libc::SO_TYPE)?,
        get_int(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL)?,
    ))
}

/// True when the socket listens (`SO_ACCEPTCONN`).
pub fn is_listening(fd: BorrowedFd<'_>) -> Result<bool> {
    Ok(get_int(fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN)? != 0)
}

/// Inode number of a socket of ours (`fstat`).
pub fn inode(fd: BorrowedFd<'_>) -> Result<u64> {
    Ok(crate::files::fstat(fd.as_raw_fd())?.st_ino)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn addresses_round_trip_through_raw_bytes() {
        for a in [
            Addr::UnixPath(b"/tmp/x.sock".to_vec()),
            Addr::UnixAbstract(b"ab\0c".to_vec()),
            Addr::V4(Ipv4Addr::new(127, 0, 0, 1), 8080),
            Addr::V6(Ipv6Addr::LOCALHOST, 443, 7, 0),
            Addr::Netlink(1234, 0x11),
        ] {
            assert_eq!(Addr::from_raw(&a.to_raw()), a, "{a}");
        }
        assert_eq!(
            Addr::from_raw(&Addr::UnixUnnamed.to_raw()),
            Addr::UnixUnnamed
        );
    }

    #[test]
    fn options_read_back_after_apply() {
        let a = socket(libc::AF_INET6, libc::SOCK_STREAM, 0).unwrap();
        let mut o = Options::read(a.as_fd(), libc::AF_INET6, libc::IPPROTO_TCP).unwrap();
        o.reuseaddr = true;
        o.keepalive = true;
        o.tcp_nodelay = Some(true);
        o.tcp_keepalive = Some((33, 7, 4));
        o.rcvtimeo_us = 2_500_000;
        o.linger = Some(3);
        o.v6only = Some(true);
        o.sndbuf = 65536 * 2;
        let b = socket(libc::AF_INET6, libc::SOCK_STREAM, 0).unwrap();
        o.apply(b.as_fd(), libc::AF_INET6, libc::IPPROTO_TCP)
            .unwrap();
        assert_eq!(
            Options::read(b.as_fd(), libc::AF_INET6, libc::IPPROTO_TCP).unwrap(),
            o
        );
    }

    #[test]
    fn take_fd_gives_the_same_socket() {
        let (a, _b) = socketpair(libc::SOCK_STREAM).unwrap();
        let me = std::process::id() as i32;
        let dup = take_fd(me, a.as_raw_fd()).unwrap();
        assert_eq!(inode(dup.as_fd()).unwrap(), inode(a.as_fd()).unwrap());
        assert_eq!(
            kind(dup.as_fd()).unwrap(),
            (libc::AF_UNIX, libc::SOCK_STREAM, 0)
        );
    }
}
