//! Sockets: the image's socket records (ckpt_format::model::sockets) to and from the
//! OS-level snapshots of `ckpt_sys::sockets`, and the sockets of an image built again
//! ([`build_all`], called by the restore's staging: the sockets are created in the
//! restorer and handed to the processes like every staged file). docs/SOCKETS.md.

use ckpt_format::model::sockets::*;
use ckpt_format::File;
use ckpt_sys::sock::{Addr, Options};
use ckpt_sys::sockets::{self as ss, build};
use ckpt_sys::tcp;
use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};

/// The model's address as ckpt-sys's.
pub fn addr_to_sys(a: &SockAddr) -> Addr {
    match a {
        SockAddr::Unnamed => Addr::UnixUnnamed,
        SockAddr::Path(p) => Addr::UnixPath(p.clone()),
        SockAddr::Abstract(n) => Addr::UnixAbstract(n.clone()),
        SockAddr::V4(ip, p) => Addr::V4(Ipv4Addr::from(*ip), *p),
        SockAddr::V6(ip, p, f, s) => Addr::V6(Ipv6Addr::from(*ip), *p, *f, *s),
        SockAddr::Netlink(id, g) => Addr::Netlink(*id, *g),
        SockAddr::Other(f, b) => Addr::Other(*f, b.clone()),
    }
}

/// ckpt-sys's address as the model's.
pub fn addr_from_sys(a: &Addr) -> SockAddr {
    match a {
        Addr::UnixUnnamed => SockAddr::Unnamed,
        Addr::UnixPath(p) if p.is_empty() => SockAddr::Unnamed,
        Addr::UnixPath(p) => SockAddr::Path(p.clone()),
        Addr::UnixAbstract(n) => SockAddr::Abstract(n.clone()),
        Addr::V4(ip, p) => SockAddr::V4(ip.octets(), *p),
        Addr::V6(ip, p, f, s) => SockAddr::V6(ip.octets(), *p, *f, *s),
        Addr::Netlink(id, g) => SockAddr::Netlink(*id, *g),
        Addr::Other(f, b) => SockAddr::Other(*f, b.clone()),
    }
}

/// The model's options as ckpt-sys's.
pub fn opts_to_sys(o: &SockOptions) -> Options {
    Options {
        reuseaddr: o.reuseaddr,
        reuseport: o.reuseport,
        keepalive: o.keepalive,
        broadcast: o.broadcast,
        oobinline: o.oobinline,
        passcred: o.passcred,
        priority: o.priority,
        rcvbuf: o.rcvbuf,
        sndbuf: o.sndbuf,
        rcvlowat: o.rcvlowat,
        rcvtimeo_us: o.rcvtimeo_us,
        sndtimeo_us: o.sndtimeo_us,
        linger: o.linger,
        peek_off: o.peek_off,
        tcp_nodelay: o.tcp_nodelay,
        tcp_cork: o.tcp_cork,
        tcp_keepalive: o.tcp_keepalive,
        v6only: o.v6only,
    }
}

/// ckpt-sys's options as the model's.
pub fn opts_from_sys(o: &Options) -> SockOptions {
    SockOptions {
        reuseaddr: o.reuseaddr,
        reuseport: o.reuseport,
        keepalive: o.keepalive,
        broadcast: o.broadcast,
        oobinline: o.oobinline,
        passcred: o.passcred,
        priority: o.priority,
        rcvbuf: o.rcvbuf,
        sndbuf: o.sndbuf,
        rcvlowat: o.rcvlowat,
        rcvtimeo_us: o.rcvtimeo_us,
        sndtimeo_us: o.sndtimeo_us,
        linger: o.linger,
        peek_off: o.peek_off,
        tcp_nodelay: o.tcp_nodelay,
        tcp_cork: o.tcp_cork,
        tcp_keepalive: o.tcp_keepalive,
        v6only: o.v6only,
    }
}

/// A connection record as ckpt-sys's repair dump.
pub fn conn_to_sys(t: &TcpConnection) -> tcp::Conn {
    tcp::Conn {
        state: tcp::ESTABLISHED,
        inq_seq: t.inq_seq,
        outq_seq: t.outq_seq,
        inq: t.inq.clone(),
        outq: t.outq.clone(),
        unsent: t.unsent,
        mss: t.mss,
        options: t.options,
        snd_wscale: t.snd_wscale,
        rcv_wscale: t.rcv_wscale,
        timestamp: t.timestamp,
        window: t.window.map(|w| tcp::Window {
            snd_wl1: w.snd_wl1,
            snd_wnd: w.snd_wnd,
            max_window: w.max_window,
            rcv_wnd: w.rcv_wnd,
            rcv_wup: w.rcv_wup,
        }),
    }
}

/// The records of a snapshot. `file_of` gives the File object id of a descriptor in
/// flight (capture emits its File first); `netlock` names the lock holding a
/// connection's peer off ("" none).
pub fn records_of(
    s: &ss::Snapshot,
    mut file_of: impl FnMut(&OwnedFd) -> Result<u32, String>,
    netlock: &str,
) -> Result<SocketRecords, String> {
    let mut r = SocketRecords {
        socket: Some(Socket {
            family: s.family as u32,
            ty: s.ty as u32,
            protocol: s.protocol as u32,
            state: s.state,
            shutdown: s.shutdown & 3,
            backlog: s.backlog,
            ino: s.ino,
            peer_ino: None,
            local: addr_from_sys(&s.local),
            peer: s.peer.as_ref().map(addr_from_sys),
            options: opts_from_sys(&s.options),
        }),
        ..SocketRecords::default()
    };
    match &s.detail {
        ss::Detail::Unix {
            peer_ino, queue, ..
        } => {
            if let Some(sock) = r.socket.as_mut() {
                sock.peer_ino = *peer_ino;
            }
            let mut messages = Vec::with_capacity(queue.len());
            for m in queue {
                let mut files = Vec::with_capacity(m.fds.len());
                for fd in &m.fds {
                    files.push(file_of(fd)?);
                }
                messages.push(QueuedMessage {
                    data: m.data.clone(),
                    files,
                    creds: m.creds,
                });
            }
            if !messages.is_empty() {
                r.queue = Some(SocketQueue { messages });
            }
        }
        ss::Detail::Tcp { conn: Some(c) } => {
            r.tcp = Some(TcpConnection {
                inq_seq: c.inq_seq,
                outq_seq: c.outq_seq,
                inq: c.inq.clone(),
                outq: c.outq.clone(),
                unsent: c.unsent,
                mss: c.mss,
                options: c.options,
                snd_wscale: c.snd_wscale,
                rcv_wscale: c.rcv_wscale,
                timestamp: c.timestamp,
                window: c.window.map(|w| TcpWindow {
                    snd_wl1: w.snd_wl1,
                    snd_wnd: w.snd_wnd,
                    max_window: w.max_window,
                    rcv_wnd: w.rcv_wnd,
                    rcv_wup: w.rcv_wup,
                }),
                netlock: netlock.as_bytes().to_vec(),
            });
        }
        ss::Detail::Netlink { groups } => {
            r.netlink = Some(NetlinkSocket {
                groups: groups.clone(),
            });
        }
        _ => {}
    }
    Ok(r)
}

const UNIX: u32 = AF_UNIX;
const LISTEN: u8 = 10;
const ESTABLISHED: u8 = 1;

fn named(a: &SockAddr) -> bool {
    matches!(a, SockAddr::Path(_) | SockAddr::Abstract(_))
}

/// The queue of `s` as messages to send, with the staged descriptors of the files in
/// flight.
fn queued<'a>(
    r: &'a SocketRecords,
    staged: &BTreeMap<u32, RawFd>,
) -> Result<Vec<build::Queued<'a>>, String> {
    let Some(q) = &r.queue else {
        return Ok(Vec::new());
    };
    let mut v = Vec::with_capacity(q.messages.len());
    for m in &q.messages {
        let mut fds = Vec::with_capacity(m.files.len());
        for id in &m.files {
            fds.push(*staged.get(id).ok_or_else(|| {
                format!("file {id} in flight in a unix socket's queue was not staged")
            })?);
        }
        v.push((&m.data[..], fds));
    }
    Ok(v)
}

/// Why the socket of File `f` cannot be built again, if it cannot (named in the
/// restore's refusal before anything is created).
pub fn refusal(files: &BTreeMap<u32, File>, f: &File) -> Option<String> {
    let r = &f.records.sock;
    let s = r.socket.as_ref()?;
    let d = describe(r);
    match s.family {
        AF_UNIX => {
            // A connection whose peer was outside the capture has no peer inode: it is
            // restored as a connection whose peer has gone.
            let p = s.peer_ino?;
            let found = files
                .values()
                .any(|g| g.records.sock.socket.as_ref().is_some_and(|x| x.ino == p));
            (!found).then(|| format!("({d}) has its peer socket:[{p}] outside the image"))
        }
        AF_INET | AF_INET6 if s.protocol == 6 => match s.state {
            LISTEN | 7 => None,
            ESTABLISHED if r.tcp.is_some() && s.peer.is_some() => None,
            _ => Some(format!(
                "({d}) is a TCP socket in state {} without a connection record",
                s.state_name()
            )),
        },
        AF_INET | AF_INET6 | AF_NETLINK => None,
        _ => Some(format!("({d}) is of a family ckpt-restore does not build")),
    }
}

/// What a restore does with each socket of an image, in one line (for messages).
pub fn describe(r: &SocketRecords) -> String {
    r.summary()
        .unwrap_or_else(|| "socket without a socket record".into())
}

/// Build every socket File of `ids` (File object ids). `staged` holds the staging
/// descriptors of the other files (those in flight in a unix queue among them).
/// Listeners and bound sockets first, then unix connections (a pair, or through the
/// rebuilt listener for an accepted end), TCP connections (left in repair mode: see
/// [`finish_tcp`]), UDP and netlink sockets.
pub fn build_all(
    files: &BTreeMap<u32, File>,
    ids: &[u32],
    staged: &BTreeMap<u32, RawFd>,
) -> Result<BTreeMap<u32, OwnedFd>, String> {
    let mut out: BTreeMap<u32, OwnedFd> = BTreeMap::new();
    let mut socks: Vec<(u32, &SocketRecords, &Socket)> = Vec::new();
    for id in ids {
        let f = &files[id];
        let s = f.records.sock.socket.as_ref().ok_or_else(|| {
            format!(
                "file {id} ({}) is a socket without a socket record: not restorable",
                String::from_utf8_lossy(&f.path)
            )
        })?;
        socks.push((*id, &f.records.sock, s));
    }
    let by_ino: HashMap<u32, usize> = socks
        .iter()
        .enumerate()
        .map(|(i, s)| (s.2.ino, i))
        .collect();
    let err = |id: u32, r: &SocketRecords, e: ckpt_sys::SysError| {
        format!("socket (file {id}, {}): {e}", describe(r))
    };
    // 1. Listeners.
    let mut listeners: HashMap<SockAddr, u32> = HashMap::new();
    for &(id, r, s) in &socks {
        if s.state == LISTEN {
            let fd = build::bound(
                s.family as i32,
                s.ty as i32,
                s.protocol as i32,
                &opts_to_sys(&s.options),
                &addr_to_sys(&s.local),
                Some(s.backlog.unwrap_or(128)),
            )
            .map_err(|e| err(id, r, e))?;
            if s.family == UNIX {
                listeners.insert(s.local.clone(), id);
            }
            out.insert(id, fd);
        }
    }
    // 2. Unix sockets connected to a peer in the image; then the others.
    for &(id, r, s) in &socks {
        if s.family != UNIX || out.contains_key(&id) {
            continue;
        }
        let peer = s.peer_ino.and_then(|p| by_ino.get(&p).copied());
        match (s.peer_ino, peer) {
            (Some(p), None) => {
                return Err(format!(
                    "socket (file {id}, {}): its peer socket:[{p}] is not in the image",
                    describe(r)
                ))
            }
            (Some(_), Some(j)) if socks[j].2.peer_ino == Some(s.ino) => {
                let (pid_, pr, ps) = socks[j];
                if out.contains_key(&pid_) {
                    continue;
                }
                let (qa, qb) = (queued(r, staged)?, queued(pr, staged)?);
                let (oa, ob) = (opts_to_sys(&s.options), opts_to_sys(&ps.options));
                let ends = |first: bool| {
                    if first {
                        [(&oa, &qa[..], s.shutdown), (&ob, &qb[..], ps.shutdown)]
                    } else {
                        [(&ob, &qb[..], ps.shutdown), (&oa, &qa[..], s.shutdown)]
                    }
                };
                // An accepted end carries its listener's name: connect through it.
                let via = |x: &Socket| {
                    (x.ty != 2 && named(&x.local))
                        .then(|| listeners.get(&x.local))
                        .flatten()
                        .copied()
                };
                let (a, b) = if let Some(l) = via(s) {
                    let lf = out[&l].as_fd();
                    let (c, acc) =
                        build::unix_accepted(lf, &addr_to_sys(&s.local), s.ty as i32, ends(false))
                            .map_err(|e| err(id, r, e))?;
                    (acc, c)
                } else if let Some(l) = via(ps) {
                    let lf = out[&l].as_fd();
                    build::unix_accepted(lf, &addr_to_sys(&ps.local), s.ty as i32, ends(true))
                        .map_err(|e| err(id, r, e))?
                } else {
                    build::unix_pair(s.ty as i32, ends(true)).map_err(|e| err(id, r, e))?
                };
                out.insert(id, a);
                out.insert(pid_, b);
            }
            _ => {}
        }
    }
    // Connected unix streams and seqpackets whose peer was not captured
    // (`--disconnect-sockets`): a pair whose other end is closed once the queue is
    // refilled — the program reads what was queued, then end of file.
    for &(id, r, s) in &socks {
        if s.family != UNIX || out.contains_key(&id) {
            continue;
        }
        if s.state == ESTABLISHED && s.peer_ino.is_none() && s.ty != 2 {
            let q = queued(r, staged)?;
            let o = opts_to_sys(&s.options);
            let (a, gone) = build::unix_pair(s.ty as i32, [(&o, &q[..], s.shutdown), (&o, &[], 0)])
                .map_err(|e| err(id, r, e))?;
            drop(gone);
            out.insert(id, a);
        }
    }
    // Unix sockets without a mutual peer: bound (or not), connected one way to a
    // named socket of the image, their queue sent to their name.
    for &(id, r, s) in &socks {
        if s.family != UNIX || out.contains_key(&id) {
            continue;
        }
        let fd = build::bound(
            UNIX as i32,
            s.ty as i32,
            0,
            &opts_to_sys(&s.options),
            &addr_to_sys(&s.local),
            None,
        )
        .map_err(|e| err(id, r, e))?;
        out.insert(id, fd);
    }
    for &(id, r, s) in &socks {
        if s.family != UNIX
            || s.state == LISTEN
            || (s.state == ESTABLISHED && s.peer_ino.is_none() && s.ty != 2)
        {
            continue;
        }
        let one_way = s
            .peer_ino
            .and_then(|p| by_ino.get(&p))
            .is_some_and(|&j| socks[j].2.peer_ino != Some(s.ino));
        if one_way {
            if let Some(p) = &s.peer {
                ckpt_sys::sock::connect(out[&id].as_fd(), &addr_to_sys(p))
                    .map_err(|e| err(id, r, e))?;
            }
        }
        let mutual = s
            .peer_ino
            .and_then(|p| by_ino.get(&p))
            .is_some_and(|&j| socks[j].2.peer_ino == Some(s.ino));
        if !mutual && r.queue.is_some() {
            if !named(&s.local) {
                return Err(format!(
                    "socket (file {id}, {}): queued messages of an unnamed socket without a peer cannot be sent again",
                    describe(r)
                ));
            }
            let tmp =
                ckpt_sys::sock::socket(UNIX as i32, s.ty as i32, 0).map_err(|e| err(id, r, e))?;
            ckpt_sys::sock::connect(tmp.as_fd(), &addr_to_sys(&s.local))
                .map_err(|e| err(id, r, e))?;
            build::refill(tmp.as_fd(), &queued(r, staged)?).map_err(|e| err(id, r, e))?;
        }
    }
    // 3. TCP, UDP, netlink.
    for &(id, r, s) in &socks {
        if out.contains_key(&id) {
            continue;
        }
        let (fam, opts) = (s.family as i32, opts_to_sys(&s.options));
        let fd = match (s.family, s.protocol) {
            (AF_INET | AF_INET6, 6) => match (&r.tcp, &s.peer) {
                (Some(t), Some(p)) if s.state == ESTABLISHED => build::tcp_connection(
                    fam,
                    &opts,
                    &conn_to_sys(t),
                    &addr_to_sys(&s.local),
                    &addr_to_sys(p),
                ),
                _ if s.state == 7 => {
                    build::bound(fam, s.ty as i32, 6, &opts, &addr_to_sys(&s.local), None)
                }
                _ => {
                    return Err(format!(
                        "socket (file {id}, {}): a TCP socket in state {} is not restorable",
                        describe(r),
                        s.state_name()
                    ))
                }
            },
            (AF_INET | AF_INET6, _) => build::datagram(
                fam,
                s.protocol as i32,
                &opts,
                &addr_to_sys(&s.local),
                s.peer.as_ref().map(addr_to_sys).as_ref(),
            ),
            (AF_NETLINK, _) => {
                let portid = match s.local {
                    SockAddr::Netlink(id, _) => id,
                    _ => 0,
                };
                let groups = r
                    .netlink
                    .as_ref()
                    .map(|n| n.groups.clone())
                    .unwrap_or_default();
                build::netlink(
                    s.ty as i32,
                    s.protocol as i32,
                    &opts,
                    portid,
                    &groups,
                    s.peer.as_ref().map(addr_to_sys).as_ref(),
                )
            }
            _ => {
                return Err(format!(
                    "socket (file {id}, {}): this family is not restorable",
                    describe(r)
                ))
            }
        }
        .map_err(|e| err(id, r, e))?;
        out.insert(id, fd);
    }
    Ok(out)
}

/// The nftables tables holding TCP peers off for the connections of `files` (named by
/// their records), each once.
pub fn netlocks(files: &BTreeMap<u32, File>) -> Vec<String> {
    let mut v: Vec<String> = files
        .values()
        .filter_map(|f| f.records.sock.tcp.as_ref())
        .filter(|t| !t.netlock.is_empty())
        .map(|t| String::from_utf8_lossy(&t.netlock).into_owned())
        .collect();
    v.sort();
    v.dedup();
    v
}

/// After every socket exists: lift the net locks, then take each rebuilt TCP
/// connection out of repair mode (window probe, never-sent data written).
pub fn finish_tcp(
    files: &BTreeMap<u32, File>,
    staged: &BTreeMap<u32, RawFd>,
) -> Result<(), String> {
    for name in netlocks(files) {
        ckpt_sys::netlock::NetLock::named(&name)
            .and_then(|l| l.unlock())
            .map_err(|e| format!("lifting the net lock {name}: {e}"))?;
    }
    for (id, f) in files {
        let (Some(t), Some(s)) = (&f.records.sock.tcp, &f.records.sock.socket) else {
            continue;
        };
        let Some(&fd) = staged.get(id) else { continue };
        // SAFETY: a staging descriptor the restorer holds open for the whole restore.
        let b = unsafe { BorrowedFd::borrow_raw(fd) };
        build::finish_tcp(b, &conn_to_sys(t), &opts_to_sys(&s.options))
            .map_err(|e| format!("socket (file {id}, {}): {e}", describe(&f.records.sock)))?;
    }
    Ok(())
}
