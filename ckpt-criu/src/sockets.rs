//! CRIU's sockets onto the model's socket records (model/sockets.rs): `unix_sk_entry`,
//! `inet_sk_entry` (with its `tcp-stream-INO.img`) and `netlink_sk_entry` of `files.img`, the
//! receive queues of `sk-queues.img`. What the model has no place for is returned as a
//! loss, one line each.
//!
//! Facts of CRIU's format used here (CRIU 4.1.1, `images/sk-*.proto`, `criu/sk-queue.c`,
//! `criu/sockets.c`), as our own table:
//!
//! | CRIU | meaning |
//! |---|---|
//! | `state` | the kernel's `sk_state` in TCP numbering (1 established/connected, 7 close, 10 listen), every family |
//! | `shutdown` | `sk_shutdown` enum: 1 read side, 2 write side, 3 both (the kernel's `RCV_SHUTDOWN`/`SEND_SHUTDOWN` bits) |
//! | unix `name` | bound name; a leading NUL byte: abstract; relative names prefixed by `name_dir` |
//! | unix `peer` | the inode of the connected peer (0: none) |
//! | unix `uflags` | 1 external peer, 2 service socket, 4 callback, 8 inherited |
//! | inet `src_addr`/`dst_addr` | the address as 1 (IPv4) or 4 (IPv6) `u32` words in memory order (network byte order bytes) |
//! | `sk_opts_entry` | `getsockopt` values: buffers as reported (doubled), timeouts as sec + usec, `so_linger` only when on |
//! | `sk-queues.img` | `sk_packet_entry {id_for, length, scm}` then `length` bytes; `id_for` is the id of the socket whose receive queue holds it; `scm` type 1 is `SCM_RIGHTS` with file ids |
//! | `tcp-stream-INO.img` (INO in lower-case hex) | one `tcp_stream_entry`, then `inq_len` bytes of the receive queue and `outq_len` bytes of the send queue (its last `unsq_len` bytes unsent) |
//! | netlink `groups` | the joined groups as a bit mask in `u32` words (bit N of word W: group 32W+N+1) |

use crate::image::{CriuError, ImageFile, Result};
use crate::magic;
use crate::pb;
use crate::set::CriuImage;
use ckpt_format::model::sockets::{
    NetlinkSocket, QueuedMessage, SockAddr, SockOptions, Socket, SocketQueue, SocketRecords,
    TcpConnection, TcpWindow, AF_INET, AF_INET6, AF_NETLINK, AF_UNIX, MAX_FDS_PER_MESSAGE,
};
use std::collections::HashMap;

/// `SCM_RIGHTS`.
const SCM_RIGHTS: u32 = 1;
/// `SOCK_RAW` (CRIU does not record a netlink socket's type; it restores `SOCK_RAW`).
const SOCK_RAW: u32 = 3;
/// The states of CRIU's unix/inet entries (TCP numbering).
const ESTABLISHED: u32 = 1;
const CLOSE: u8 = 7;
/// `unix_sk_entry.uflags` other than an external peer: sockets CRIU handles itself.
const USK_SPECIAL: u32 = 2 | 4 | 8;

/// One queued message: its entry and its bytes.
pub(crate) type Packet<'a> = (pb::SkPacketEntry, &'a [u8]);

/// `sk-queues.img` by the id of the socket whose receive queue it is.
pub(crate) fn read_queues(img: &CriuImage) -> Result<HashMap<u32, Vec<Packet<'_>>>> {
    let mut out: HashMap<u32, Vec<Packet<'_>>> = HashMap::new();
    let Some(b) = img.file("sk-queues.img") else {
        return Ok(out);
    };
    let mut f = ImageFile::expect("sk-queues.img", b, magic::SK_QUEUES)?;
    while let Some((_, e)) = f.next_msg::<pb::SkPacketEntry>()? {
        let d = f.take_extra(e.length as u64, "queued socket data")?;
        out.entry(e.id_for).or_default().push((e, d));
    }
    Ok(out)
}

/// A socket mapped: its records, the CRIU file ids in flight in its queue (to be defined
/// before it; [`QueuedMessage::files`] hold CRIU ids until the caller renumbers them), and
/// what was not carried.
pub(crate) struct Mapped {
    pub records: SocketRecords,
    pub in_flight: Vec<u32>,
    pub losses: Vec<String>,
}

fn opts(o: &pb::SkOptsEntry, what: &str, losses: &mut Vec<String>) -> SockOptions {
    let us = |s: u64, u: u64| s.saturating_mul(1_000_000).saturating_add(u);
    for (set, name) in [
        (o.so_mark.is_some_and(|m| m != 0), "SO_MARK"),
        (
            o.so_bound_dev.as_deref().is_some_and(|d| !d.is_empty()),
            "SO_BINDTODEVICE",
        ),
        (
            !o.so_filter.is_empty(),
            "a socket filter (SO_ATTACH_FILTER)",
        ),
        (o.so_passsec == Some(true), "SO_PASSSEC"),
        (o.so_dontroute == Some(true), "SO_DONTROUTE"),
        (o.so_no_check == Some(true), "SO_NO_CHECK"),
    ] {
        if set {
            losses.push(format!("{what}: {name}"));
        }
    }
    SockOptions {
        reuseaddr: o.reuseaddr == Some(true),
        reuseport: o.so_reuseport == Some(true),
        keepalive: o.so_keepalive == Some(true),
        broadcast: o.so_broadcast == Some(true),
        oobinline: o.so_oobinline.is_some_and(|v| v != 0),
        passcred: o.so_passcred == Some(true),
        priority: o.so_priority.unwrap_or(0) as i32,
        rcvbuf: o.so_rcvbuf as i32,
        sndbuf: o.so_sndbuf as i32,
        rcvlowat: o.so_rcvlowat.unwrap_or(1) as i32,
        rcvtimeo_us: us(o.so_rcv_tmo_sec, o.so_rcv_tmo_usec),
        sndtimeo_us: us(o.so_snd_tmo_sec, o.so_snd_tmo_usec),
        linger: o.so_linger.map(|l| l as i32),
        // CRIU does not record SO_PEEK_OFF: off, as a new socket has it.
        peek_off: -1,
        ..SockOptions::default()
    }
}

/// A unix socket's bound name.
fn unix_name(s: &pb::UnixSkEntry) -> SockAddr {
    match s.name.split_first() {
        None => SockAddr::Unnamed,
        Some((0, rest)) => SockAddr::Abstract(rest.to_vec()),
        Some(_) => {
            let mut p = Vec::new();
            if let Some(d) = s.name_dir.as_deref().filter(|d| !d.is_empty()) {
                if s.name.first() != Some(&b'/') {
                    p.extend_from_slice(d.as_bytes());
                    p.push(b'/');
                }
            }
            p.extend_from_slice(&s.name);
            SockAddr::Path(p)
        }
    }
}

fn shutdown(v: Option<i32>) -> u8 {
    (v.unwrap_or(0) & 3) as u8
}

/// The queue of socket `id` (CRIU ids of the files in flight).
fn queue(
    id: u32,
    queues: &HashMap<u32, Vec<Packet<'_>>>,
    what: &str,
    losses: &mut Vec<String>,
) -> (Option<SocketQueue>, Vec<u32>) {
    let Some(pk) = queues.get(&id) else {
        return (None, Vec::new());
    };
    let mut messages = Vec::with_capacity(pk.len());
    let mut in_flight = Vec::new();
    for (e, data) in pk {
        let mut files = Vec::new();
        for scm in &e.scm {
            if scm.r#type != SCM_RIGHTS {
                losses.push(format!(
                    "{what}: a queued message's control message of type {}",
                    scm.r#type
                ));
                continue;
            }
            if files.len() + scm.rights.len() > MAX_FDS_PER_MESSAGE {
                losses.push(format!(
                    "{what}: a queued message with more than {MAX_FDS_PER_MESSAGE} descriptors"
                ));
                continue;
            }
            files.extend_from_slice(&scm.rights);
        }
        in_flight.extend_from_slice(&files);
        messages.push(QueuedMessage {
            data: data.to_vec(),
            files,
            creds: None,
        });
    }
    (Some(SocketQueue { messages }), in_flight)
}

/// A unix socket. `names`: the bound names of the dump's unix sockets by inode (a
/// connected socket's peer address is its peer's name).
pub(crate) fn unix(
    s: &pb::UnixSkEntry,
    names: &HashMap<u32, SockAddr>,
    queues: &HashMap<u32, Vec<Packet<'_>>>,
) -> Mapped {
    let what = format!("unix socket ino {}", s.ino);
    let mut losses = Vec::new();
    if s.uflags & USK_SPECIAL != 0 {
        losses.push(format!(
            "{what}: CRIU's special-socket flags {:#x}",
            s.uflags
        ));
    }
    if s.deleted == Some(true) {
        losses.push(format!("{what}: bound to a path deleted since"));
    }
    let local = unix_name(s);
    let (q, in_flight) = queue(s.id, queues, &what, &mut losses);
    let peer_ino = (s.peer != 0).then_some(s.peer);
    let socket = Socket {
        family: AF_UNIX,
        ty: s.r#type,
        protocol: 0,
        state: s.state as u8,
        shutdown: shutdown(s.shutdown),
        backlog: (s.state == 10).then_some(s.backlog),
        ino: s.ino,
        peer_ino,
        peer: peer_ino.map(|p| names.get(&p).cloned().unwrap_or_default()),
        local,
        options: opts(&s.opts, &what, &mut losses),
    };
    Mapped {
        records: SocketRecords {
            socket: Some(socket),
            queue: q,
            ..SocketRecords::default()
        },
        in_flight,
        losses,
    }
}

/// The names of the dump's unix sockets by inode.
pub(crate) fn unix_names<'f>(
    files: impl Iterator<Item = &'f pb::FileEntry>,
) -> HashMap<u32, SockAddr> {
    files
        .filter_map(|f| f.usk.as_ref())
        .map(|s| (s.ino, unix_name(s)))
        .collect()
}

fn inet_addr(family: u32, words: &[u32], port: u32, file: &str) -> Result<SockAddr> {
    let port = u16::try_from(port)
        .map_err(|_| CriuError::new(file, 0, format!("port {port}"), "a 16-bit port"))?;
    let mut b = Vec::with_capacity(16);
    for w in words {
        b.extend_from_slice(&w.to_le_bytes());
    }
    match family {
        AF_INET => {
            let mut a = [0u8; 4];
            // An unbound socket may have no address words.
            if let Some(s) = b.get(..4) {
                a.copy_from_slice(s);
            }
            Ok(SockAddr::V4(a, port))
        }
        _ => {
            let mut a = [0u8; 16];
            if let Some(s) = b.get(..16) {
                a.copy_from_slice(s);
            } else if !b.is_empty() {
                return Err(CriuError::new(
                    file,
                    0,
                    format!("an IPv6 address of {} words", words.len()),
                    "4 words",
                ));
            }
            Ok(SockAddr::V6(a, port, 0, 0))
        }
    }
}

/// An inet socket (TCP with its `tcp-stream-INO.img` when established).
pub(crate) fn inet(img: &CriuImage, s: &pb::InetSkEntry) -> Result<Mapped> {
    let what = format!("inet socket ino {}", s.ino);
    let mut losses = Vec::new();
    if s.family != AF_INET && s.family != AF_INET6 {
        return Err(CriuError::new(
            "files.img",
            0,
            format!("{what} of family {}", s.family),
            "AF_INET (2) or AF_INET6 (10)",
        ));
    }
    let mut options = opts(&s.opts, &what, &mut losses);
    if let Some(ip) = &s.ip_opts {
        let set = ip.freebind == Some(true)
            || ip.pktinfo == Some(true)
            || ip.tos.is_some_and(|t| t != 0)
            || ip.ttl.is_some()
            || ip.raw.is_some();
        if set {
            losses.push(format!(
                "{what}: IP options (freebind, pktinfo, tos, ttl, raw)"
            ));
        }
    }
    if s.ifname.as_deref().is_some_and(|n| !n.is_empty()) {
        losses.push(format!("{what}: bound to an interface's scope"));
    }
    let tcp = s.proto == 6;
    if tcp {
        let t = s.tcp_opts.unwrap_or_default();
        options.tcp_nodelay = Some(t.nodelay == Some(true));
        options.tcp_cork = Some(t.cork == Some(true));
        if let (Some(i), Some(n), Some(c)) = (t.keepidle, t.keepintvl, t.keepcnt) {
            options.tcp_keepalive = Some((i as i32, n as i32, c as i32));
        }
    }
    if s.family == AF_INET6 {
        options.v6only = Some(s.v6only == Some(true));
    }
    let local = inet_addr(s.family, &s.src_addr, s.src_port, "files.img")?;
    let connected = s.state == ESTABLISHED || s.dst_port != 0;
    let peer = if connected {
        Some(inet_addr(s.family, &s.dst_addr, s.dst_port, "files.img")?)
    } else {
        None
    };
    let conn = if tcp && s.state == ESTABLISHED {
        tcp_stream(img, s.ino)?
    } else {
        None
    };
    let socket = Socket {
        family: s.family,
        ty: s.r#type,
        protocol: s.proto,
        state: s.state as u8,
        shutdown: shutdown(s.shutdown),
        backlog: (s.state == 10).then_some(s.backlog),
        ino: s.ino,
        peer_ino: None,
        local,
        peer,
        options,
    };
    Ok(Mapped {
        records: SocketRecords {
            socket: Some(socket),
            tcp: conn,
            ..SocketRecords::default()
        },
        in_flight: Vec::new(),
        losses,
    })
}

/// The connection of established TCP socket `ino` (`None` when CRIU did not dump it:
/// without `--tcp-established` it refuses the dump instead).
fn tcp_stream(img: &CriuImage, ino: u32) -> Result<Option<TcpConnection>> {
    let name = format!("tcp-stream-{ino:x}.img");
    let Some(b) = img.file(&name) else {
        return Ok(None);
    };
    let mut f = ImageFile::expect(&name, b, magic::TCP_STREAM)?;
    let Some((at, e)) = f.next_msg::<pb::TcpStreamEntry>()? else {
        return Err(CriuError::new(&name, 8, "no entry", "one tcp_stream_entry"));
    };
    let inq = f
        .take_extra(e.inq_len as u64, "the receive queue")?
        .to_vec();
    let outq = f.take_extra(e.outq_len as u64, "the send queue")?.to_vec();
    let unsent = e.unsq_len.unwrap_or(0);
    if unsent > e.outq_len {
        return Err(CriuError::new(
            &name,
            at,
            format!("{unsent} unsent bytes of a {}-byte send queue", e.outq_len),
            "at most the send queue",
        ));
    }
    let small = |v: u32, field: &str| {
        u8::try_from(v).map_err(|_| CriuError::new(&name, at, format!("{field} {v}"), "0..=255"))
    };
    let window = match (e.snd_wl1, e.snd_wnd, e.max_window, e.rcv_wnd, e.rcv_wup) {
        (Some(snd_wl1), Some(snd_wnd), Some(max_window), Some(rcv_wnd), Some(rcv_wup)) => {
            Some(TcpWindow {
                snd_wl1,
                snd_wnd,
                max_window,
                rcv_wnd,
                rcv_wup,
            })
        }
        _ => None,
    };
    Ok(Some(TcpConnection {
        inq_seq: e.inq_seq,
        outq_seq: e.outq_seq,
        inq,
        outq,
        unsent,
        mss: e.mss_clamp,
        options: small(e.opt_mask, "opt_mask")?,
        snd_wscale: small(e.snd_wscale, "snd_wscale")?,
        rcv_wscale: small(e.rcv_wscale.unwrap_or(0), "rcv_wscale")?,
        timestamp: e.timestamp.unwrap_or(0),
        window,
        // A CRIU dump holds no peer off: its own network lock is gone with the dump.
        netlock: Vec::new(),
    }))
}

/// A netlink socket.
pub(crate) fn netlink(s: &pb::NetlinkSkEntry) -> Mapped {
    let what = format!("netlink socket ino {}", s.ino);
    let mut losses = Vec::new();
    let mut groups = Vec::new();
    for (w, bits) in s.groups.iter().enumerate() {
        for b in 0..32u32 {
            if bits & (1 << b) != 0 {
                groups.push((w as u32).saturating_mul(32).saturating_add(b + 1));
            }
        }
    }
    let socket = Socket {
        family: AF_NETLINK,
        ty: SOCK_RAW,
        protocol: s.protocol,
        state: CLOSE,
        shutdown: 0,
        backlog: None,
        ino: s.ino,
        peer_ino: None,
        local: SockAddr::Netlink(s.portid, s.groups.first().copied().unwrap_or(0)),
        peer: Some(SockAddr::Netlink(s.dst_portid, s.dst_group)),
        options: opts(&s.opts, &what, &mut losses),
    };
    Mapped {
        records: SocketRecords {
            socket: Some(socket),
            netlink: (!groups.is_empty()).then_some(NetlinkSocket { groups }),
            ..SocketRecords::default()
        },
        in_flight: Vec::new(),
        losses,
    }
}
