//! native-1 encoding of the socket records ([`crate::model::sockets`]), written before
//! their FILE record like every typed record of a file. Layouts (little-endian) are the
//! `KINDS` rows below and docs/FORMAT.md. Every count is checked against what the
//! payload can hold before anything is allocated.

use super::payload::{Cur, Put};
use super::records::Encoded;
use super::Frame;
use crate::error::{ErrorKind, Result};
use crate::model::sockets::*;
use crate::model::Record;

/// Payload layouts of the socket records (schema rows of `records::KINDS`).
pub const SOCKET_LAYOUT: &str = "u32 family, u32 type, u32 protocol, u8 state, u8 shutdown, u8 has_backlog, u8 has_peer_ino, u32 backlog, u32 ino, u32 peer_ino, options (u32 flags, i32 priority, i32 rcvbuf, i32 sndbuf, i32 rcvlowat, i32 linger, i32 peek_off, i32 keepidle, i32 keepintvl, i32 keepcnt, u64 rcvtimeo_us, u64 sndtimeo_us), addr local, addr peer; addr = u32 tag (0 none, 1 unnamed, 2 path, 3 abstract, 4 ipv4, 5 ipv6, 6 netlink, 7 other), u32 a (port, port id or family), u32 b (flow info or groups), u32 c (scope id), u32 len, bytes[len] (path, name, address)";
pub const QUEUE_LAYOUT: &str = "u32 n, u32 0, n x (u32 has_creds, i32 pid, u32 uid, u32 gid, u32 nfiles, nfiles x u32 file id, u32 len, data[len])";
pub const TCP_LAYOUT: &str = "u32 inq_seq, u32 outq_seq, u32 unsent, u32 mss, u32 timestamp, u8 options, u8 snd_wscale, u8 rcv_wscale, u8 has_window, u32 snd_wl1, u32 snd_wnd, u32 max_window, u32 rcv_wnd, u32 rcv_wup, u32 len, inq[len], u32 len, outq[len], u32 len, netlock table name[len]";
pub const NETLINK_LAYOUT: &str = "u32 n, u32 0, n x u32 group";

/// True for the code of a socket record.
pub fn is_socket(code: u32) -> bool {
    [
        Socket::CODE,
        SocketQueue::CODE,
        TcpConnection::CODE,
        NetlinkSocket::CODE,
    ]
    .contains(&code)
}

/// Longest unix path or abstract name (`sun_path`).
const MAX_UNIX_NAME: usize = 108;

fn put_addr(p: &mut Put, a: Option<&SockAddr>) {
    let (tag, x, y, z, b): (u32, u32, u32, u32, &[u8]) = match a {
        None => (0, 0, 0, 0, &[]),
        Some(SockAddr::Unnamed) => (1, 0, 0, 0, &[]),
        Some(SockAddr::Path(v)) => (2, 0, 0, 0, v),
        Some(SockAddr::Abstract(v)) => (3, 0, 0, 0, v),
        Some(SockAddr::V4(ip, port)) => (4, *port as u32, 0, 0, ip),
        Some(SockAddr::V6(ip, port, flow, scope)) => (5, *port as u32, *flow, *scope, ip),
        Some(SockAddr::Netlink(id, g)) => (6, *id, *g, 0, &[]),
        Some(SockAddr::Other(f, v)) => (7, *f as u32, 0, 0, v),
    };
    p.u32(tag).u32(x).u32(y).u32(z).bstr(b);
}

fn addr(c: &mut Cur<'_, '_>) -> Result<Option<SockAddr>> {
    let at = c.pos;
    let tag = c.u32()?;
    let (x, y, z) = (c.u32()?, c.u32()?, c.u32()?);
    let bat = c.pos;
    let b = c.bstr()?;
    let len_is = |c: &Cur<'_, '_>, want: usize, what: &'static str| {
        if b.len() != want {
            Err(c.bad(bat, what, b.len() as u64, &format!("{want} bytes")))
        } else {
            Ok(())
        }
    };
    let port = |c: &Cur<'_, '_>| {
        u16::try_from(x).map_err(|_| c.bad(at + 4, "port", x as u64, "at most 65535"))
    };
    Ok(Some(match tag {
        0 => return Ok(None),
        1 => SockAddr::Unnamed,
        2 | 3 => {
            if b.len() > MAX_UNIX_NAME || (tag == 2 && b.is_empty()) {
                return Err(c.bad(bat, "unix name length", b.len() as u64, "1 to 108 bytes"));
            }
            if tag == 2 {
                SockAddr::Path(b.to_vec())
            } else {
                SockAddr::Abstract(b.to_vec())
            }
        }
        4 => {
            len_is(c, 4, "IPv4 address length")?;
            SockAddr::V4([b[0], b[1], b[2], b[3]], port(c)?)
        }
        5 => {
            len_is(c, 16, "IPv6 address length")?;
            let mut a = [0u8; 16];
            a.copy_from_slice(b);
            SockAddr::V6(a, port(c)?, y, z)
        }
        6 => SockAddr::Netlink(x, y),
        7 => {
            let f = u16::try_from(x).map_err(|_| c.bad(at + 4, "family", x as u64, "a u16"))?;
            if b.len() > 126 {
                return Err(c.bad(bat, "address length", b.len() as u64, "at most 126"));
            }
            SockAddr::Other(f, b.to_vec())
        }
        t => return Err(c.bad(at, "address tag", t as u64, "0 to 7")),
    }))
}

fn flag(c: &Cur<'_, '_>, at: usize, v: u8, what: &'static str) -> Result<bool> {
    match v {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(c.bad(at, what, v as u64, "0 or 1")),
    }
}

fn put_socket(s: &Socket, p: &mut Put) {
    let o = &s.options;
    p.u32(s.family).u32(s.ty).u32(s.protocol);
    p.bytes(&[
        s.state,
        s.shutdown,
        s.backlog.is_some() as u8,
        s.peer_ino.is_some() as u8,
    ]);
    p.u32(s.backlog.unwrap_or(0))
        .u32(s.ino)
        .u32(s.peer_ino.unwrap_or(0));
    let (ki, kn, kc) = o.tcp_keepalive.unwrap_or((0, 0, 0));
    p.u32(o.bits())
        .i32(o.priority)
        .i32(o.rcvbuf)
        .i32(o.sndbuf)
        .i32(o.rcvlowat)
        .i32(o.linger.unwrap_or(0))
        .i32(o.peek_off)
        .i32(ki)
        .i32(kn)
        .i32(kc)
        .u64(o.rcvtimeo_us)
        .u64(o.sndtimeo_us);
    put_addr(p, Some(&s.local));
    put_addr(p, s.peer.as_ref());
}

fn socket(c: &mut Cur<'_, '_>) -> Result<Socket> {
    use opt_bits::*;
    let (family, ty, protocol) = (c.u32()?, c.u32()?, c.u32()?);
    let state = c.u8()?;
    let sat = c.pos;
    let shutdown = c.u8()?;
    if shutdown > 3 {
        return Err(c.bad(sat, "shutdown", shutdown as u64, "0 to 3"));
    }
    let hb_at = c.pos;
    let hb = c.u8()?;
    let hb = flag(c, hb_at, hb, "has_backlog")?;
    let hp_at = c.pos;
    let hp = c.u8()?;
    let hp = flag(c, hp_at, hp, "has_peer_ino")?;
    let backlog = c.u32()?;
    let ino = c.u32()?;
    let peer_ino = c.u32()?;
    let fat = c.pos;
    let bits = c.u32()?;
    if bits & !ALL != 0 {
        return Err(c.bad(fat, "option flags", bits as u64, "bits 0-13 only"));
    }
    let priority = c.i32()?;
    let rcvbuf = c.i32()?;
    let sndbuf = c.i32()?;
    let rcvlowat = c.i32()?;
    let linger = c.i32()?;
    let peek_off = c.i32()?;
    let ka = (c.i32()?, c.i32()?, c.i32()?);
    let rcvtimeo_us = c.u64()?;
    let sndtimeo_us = c.u64()?;
    let on = |b: u32| bits & b != 0;
    let opt = |has: u32, b: u32| on(has).then_some(on(b));
    if (on(NODELAY) && !on(HAS_NODELAY))
        || (on(CORK) && !on(HAS_CORK))
        || (on(V6ONLY) && !on(HAS_V6ONLY))
    {
        return Err(c.bad(
            fat,
            "option flags",
            bits as u64,
            "a value bit only with its has-bit",
        ));
    }
    let options = SockOptions {
        reuseaddr: on(REUSEADDR),
        reuseport: on(REUSEPORT),
        keepalive: on(KEEPALIVE),
        broadcast: on(BROADCAST),
        oobinline: on(OOBINLINE),
        passcred: on(PASSCRED),
        priority,
        rcvbuf,
        sndbuf,
        rcvlowat,
        rcvtimeo_us,
        sndtimeo_us,
        linger: on(LINGER).then_some(linger),
        peek_off,
        tcp_nodelay: opt(HAS_NODELAY, NODELAY),
        tcp_cork: opt(HAS_CORK, CORK),
        tcp_keepalive: on(HAS_TCP_KEEPALIVE).then_some(ka),
        v6only: opt(HAS_V6ONLY, V6ONLY),
    };
    let lat = c.pos;
    let local = addr(c)?.ok_or_else(|| c.bad(lat, "local address tag", 0, "1 to 7"))?;
    let peer = addr(c)?;
    Ok(Socket {
        family,
        ty,
        protocol,
        state,
        shutdown,
        backlog: hb.then_some(backlog),
        ino,
        peer_ino: hp.then_some(peer_ino),
        local,
        peer,
        options,
    })
}

fn put_queue(q: &SocketQueue, p: &mut Put) {
    p.u32(q.messages.len() as u32).u32(0);
    for m in &q.messages {
        let (pid, uid, gid) = m.creds.unwrap_or((0, 0, 0));
        p.u32(m.creds.is_some() as u32)
            .i32(pid)
            .u32(uid)
            .u32(gid)
            .u32(m.files.len() as u32);
        for f in &m.files {
            p.u32(*f);
        }
        p.bstr(&m.data);
    }
}

/// Smallest encoded message: five u32 fields and an empty data string.
const MIN_MESSAGE: usize = 24;

fn queue(c: &mut Cur<'_, '_>) -> Result<SocketQueue> {
    let at = c.pos;
    let n = c.u32()?;
    if n as usize > c.f.payload.len() / MIN_MESSAGE {
        return Err(c.bad(at, "message count", n as u64, "what the payload holds"));
    }
    let _ = c.u32()?;
    let mut messages = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let hat = c.pos;
        let has = c.u32()?;
        if has > 1 {
            return Err(c.bad(hat, "has_creds", has as u64, "0 or 1"));
        }
        let creds = (c.i32()?, c.u32()?, c.u32()?);
        let nat = c.pos;
        let nf = c.u32()? as usize;
        if nf > MAX_FDS_PER_MESSAGE || nf * 4 > c.f.payload.len().saturating_sub(c.pos) {
            return Err(c.bad(
                nat,
                "file count",
                nf as u64,
                "at most 253, within the payload",
            ));
        }
        let mut files = Vec::with_capacity(nf);
        for _ in 0..nf {
            let fat = c.pos;
            let id = c.u32()?;
            if id == 0 {
                return Err(c.bad(fat, "file id", 0, "an object id > 0"));
            }
            files.push(id);
        }
        let data = c.bstr()?.to_vec();
        messages.push(QueuedMessage {
            data,
            files,
            creds: (has == 1).then_some(creds),
        });
    }
    Ok(SocketQueue { messages })
}

fn put_tcp(t: &TcpConnection, p: &mut Put) {
    let w = t.window.unwrap_or_default();
    p.u32(t.inq_seq)
        .u32(t.outq_seq)
        .u32(t.unsent)
        .u32(t.mss)
        .u32(t.timestamp);
    p.bytes(&[
        t.options,
        t.snd_wscale,
        t.rcv_wscale,
        t.window.is_some() as u8,
    ]);
    p.u32(w.snd_wl1)
        .u32(w.snd_wnd)
        .u32(w.max_window)
        .u32(w.rcv_wnd)
        .u32(w.rcv_wup);
    p.bstr(&t.inq).bstr(&t.outq).bstr(&t.netlock);
}

fn tcp(c: &mut Cur<'_, '_>) -> Result<TcpConnection> {
    let (inq_seq, outq_seq) = (c.u32()?, c.u32()?);
    let uat = c.pos;
    let unsent = c.u32()?;
    let (mss, timestamp) = (c.u32()?, c.u32()?);
    let oat = c.pos;
    let options = c.u8()?;
    if options & !(TCP_OPT_TIMESTAMPS | TCP_OPT_SACK | TCP_OPT_WSCALE) != 0 {
        return Err(c.bad(oat, "tcp options", options as u64, "bits 0-2 only"));
    }
    let (snd_wscale, rcv_wscale) = (c.u8()?, c.u8()?);
    let wat = c.pos;
    let hw = c.u8()?;
    let hw = flag(c, wat, hw, "has_window")?;
    let w = TcpWindow {
        snd_wl1: c.u32()?,
        snd_wnd: c.u32()?,
        max_window: c.u32()?,
        rcv_wnd: c.u32()?,
        rcv_wup: c.u32()?,
    };
    let inq = c.bstr()?.to_vec();
    let outq = c.bstr()?.to_vec();
    if unsent as usize > outq.len() {
        return Err(c.bad(
            uat,
            "unsent",
            unsent as u64,
            "at most the send queue's length",
        ));
    }
    let nat = c.pos;
    let netlock = c.bstr()?.to_vec();
    if netlock.len() > 64
        || !netlock
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
    {
        return Err(c.bad(
            nat,
            "netlock name",
            netlock.len() as u64,
            "at most 64 letters, digits or _",
        ));
    }
    Ok(TcpConnection {
        inq_seq,
        outq_seq,
        inq,
        outq,
        unsent,
        mss,
        options,
        snd_wscale,
        rcv_wscale,
        timestamp,
        window: hw.then_some(w),
        netlock,
    })
}

fn netlink(c: &mut Cur<'_, '_>) -> Result<NetlinkSocket> {
    let at = c.pos;
    let n = c.u32()?;
    if n as usize > c.f.payload.len() / 4 {
        return Err(c.bad(at, "group count", n as u64, "what the payload holds"));
    }
    let _ = c.u32()?;
    let mut groups = Vec::with_capacity(n as usize);
    for _ in 0..n {
        groups.push(c.u32()?);
    }
    Ok(NetlinkSocket { groups })
}

fn once<T>(slot: &mut Option<T>, v: T, f: &Frame<'_>) -> Result<()> {
    if slot.is_some() {
        return Err(f.err(ErrorKind::UnexpectedRecord {
            found: f.ty().to_string(),
            expected: "each typed record at most once per owner".into(),
        }));
    }
    *slot = Some(v);
    Ok(())
}

/// Decode socket record `f` (a code [`is_socket`] accepts) into `into`; the caller
/// checks that the payload was consumed.
pub(crate) fn decode(f: &Frame<'_>, c: &mut Cur<'_, '_>, into: &mut SocketRecords) -> Result<()> {
    match f.ty().0 {
        Socket::CODE => once(&mut into.socket, socket(c)?, f),
        SocketQueue::CODE => once(&mut into.queue, queue(c)?, f),
        TcpConnection::CODE => once(&mut into.tcp, tcp(c)?, f),
        NetlinkSocket::CODE => once(&mut into.netlink, netlink(c)?, f),
        code => Err(f.err(ErrorKind::UnknownRecord { code })),
    }
}

fn enc<R: Record>(r: &Option<R>, out: &mut Vec<Encoded>, put: impl FnOnce(&R, &mut Put)) {
    if let Some(r) = r {
        let mut p = Put::default();
        put(r, &mut p);
        out.push((R::CODE, p.0));
    }
}

/// Append the socket records of a file, in code order.
pub(crate) fn encode(r: &SocketRecords, out: &mut Vec<Encoded>) {
    enc(&r.socket, out, put_socket);
    enc(&r.queue, out, put_queue);
    enc(&r.tcp, out, put_tcp);
    enc(&r.netlink, out, |n, p| {
        p.u32(n.groups.len() as u32).u32(0);
        for g in &n.groups {
            p.u32(*g);
        }
    });
}
