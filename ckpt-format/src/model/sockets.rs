//! Typed records of sockets (issue 18, docs/SOCKETS.md), owned by the socket's
//! [`crate::File`]: [`Socket`] (what every socket has: family, type, state,
//! addresses, backlog, shutdown, options), [`SocketQueue`] (a unix socket's
//! receive queue, with the descriptors in flight as file object ids),
//! [`TcpConnection`] (an established connection's `TCP_REPAIR` state with both
//! queues) and [`NetlinkSocket`] (multicast groups). Their native-1 layouts are in
//! `native/sockets.rs` and docs/FORMAT.md.

use super::records::{Record, Rendered};

/// `AF_UNIX`.
pub const AF_UNIX: u32 = 1;
/// `AF_INET`.
pub const AF_INET: u32 = 2;
/// `AF_INET6`.
pub const AF_INET6: u32 = 10;
/// `AF_NETLINK`.
pub const AF_NETLINK: u32 = 16;
/// `AF_PACKET`.
pub const AF_PACKET: u32 = 17;

/// A socket address, parsed (the model keeps no kernel `sockaddr` bytes).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub enum SockAddr {
    /// A unix socket without a name (socketpair ends, unbound sockets).
    #[default]
    Unnamed,
    /// A unix socket bound to a file system path (no NUL).
    Path(Vec<u8>),
    /// A unix socket with an abstract name (the bytes after the leading NUL).
    Abstract(Vec<u8>),
    /// IPv4 address and port.
    V4([u8; 4], u16),
    /// IPv6 address, port, flow info, scope id.
    V6([u8; 16], u16, u32, u32),
    /// Netlink port id and the first 32 groups as a mask.
    Netlink(u32, u32),
    /// Another family: its number and the bytes after the family field.
    Other(u16, Vec<u8>),
}

impl std::fmt::Display for SockAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SockAddr::Unnamed => f.write_str("unnamed"),
            SockAddr::Path(p) => f.write_str(&String::from_utf8_lossy(p)),
            SockAddr::Abstract(n) => write!(f, "@{}", String::from_utf8_lossy(n)),
            SockAddr::V4(a, p) => write!(f, "{}:{p}", std::net::Ipv4Addr::from(*a)),
            SockAddr::V6(a, p, _, _) => write!(f, "[{}]:{p}", std::net::Ipv6Addr::from(*a)),
            SockAddr::Netlink(id, g) => write!(f, "portid {id} groups {g:#x}"),
            SockAddr::Other(fam, b) => write!(f, "family {fam} ({} bytes)", b.len()),
        }
    }
}

/// Socket options restored with the socket. `None`: the option does not apply to the
/// socket's family or protocol.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SockOptions {
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
    /// `SO_RCVBUF` as `getsockopt` reports it (doubled by the kernel).
    pub rcvbuf: i32,
    /// `SO_SNDBUF` as `getsockopt` reports it.
    pub sndbuf: i32,
    /// `SO_RCVLOWAT`.
    pub rcvlowat: i32,
    /// `SO_RCVTIMEO`, microseconds (0 none).
    pub rcvtimeo_us: u64,
    /// `SO_SNDTIMEO`, microseconds (0 none).
    pub sndtimeo_us: u64,
    /// `SO_LINGER` seconds when on.
    pub linger: Option<i32>,
    /// `SO_PEEK_OFF` (-1 off).
    pub peek_off: i32,
    /// `TCP_NODELAY`.
    pub tcp_nodelay: Option<bool>,
    /// `TCP_CORK`.
    pub tcp_cork: Option<bool>,
    /// `TCP_KEEPIDLE`, `TCP_KEEPINTVL`, `TCP_KEEPCNT`.
    pub tcp_keepalive: Option<(i32, i32, i32)>,
    /// `IPV6_V6ONLY`.
    pub v6only: Option<bool>,
}

/// Bits of the options' flag word in native-1 (docs/FORMAT.md).
pub mod opt_bits {
    /// `SO_REUSEADDR` on.
    pub const REUSEADDR: u32 = 1 << 0;
    /// `SO_REUSEPORT` on.
    pub const REUSEPORT: u32 = 1 << 1;
    /// `SO_KEEPALIVE` on.
    pub const KEEPALIVE: u32 = 1 << 2;
    /// `SO_BROADCAST` on.
    pub const BROADCAST: u32 = 1 << 3;
    /// `SO_OOBINLINE` on.
    pub const OOBINLINE: u32 = 1 << 4;
    /// `SO_PASSCRED` on.
    pub const PASSCRED: u32 = 1 << 5;
    /// `SO_LINGER` on (seconds in the linger field).
    pub const LINGER: u32 = 1 << 6;
    /// `TCP_NODELAY` applies ...
    pub const HAS_NODELAY: u32 = 1 << 7;
    /// ... and is on.
    pub const NODELAY: u32 = 1 << 8;
    /// `TCP_CORK` applies ...
    pub const HAS_CORK: u32 = 1 << 9;
    /// ... and is on.
    pub const CORK: u32 = 1 << 10;
    /// `TCP_KEEPIDLE/INTVL/CNT` apply (values in their fields).
    pub const HAS_TCP_KEEPALIVE: u32 = 1 << 11;
    /// `IPV6_V6ONLY` applies ...
    pub const HAS_V6ONLY: u32 = 1 << 12;
    /// ... and is on.
    pub const V6ONLY: u32 = 1 << 13;
    /// Every defined bit.
    pub const ALL: u32 = (1 << 14) - 1;
}

impl SockOptions {
    /// The flag word of native-1.
    pub fn bits(&self) -> u32 {
        use opt_bits::*;
        let b = |on: bool, bit: u32| if on { bit } else { 0 };
        b(self.reuseaddr, REUSEADDR)
            | b(self.reuseport, REUSEPORT)
            | b(self.keepalive, KEEPALIVE)
            | b(self.broadcast, BROADCAST)
            | b(self.oobinline, OOBINLINE)
            | b(self.passcred, PASSCRED)
            | b(self.linger.is_some(), LINGER)
            | b(self.tcp_nodelay.is_some(), HAS_NODELAY)
            | b(self.tcp_nodelay == Some(true), NODELAY)
            | b(self.tcp_cork.is_some(), HAS_CORK)
            | b(self.tcp_cork == Some(true), CORK)
            | b(self.tcp_keepalive.is_some(), HAS_TCP_KEEPALIVE)
            | b(self.v6only.is_some(), HAS_V6ONLY)
            | b(self.v6only == Some(true), V6ONLY)
    }

    /// A short text: the options that are on, and the numeric ones.
    pub fn text(&self) -> String {
        let mut v: Vec<String> = Vec::new();
        for (on, name) in [
            (self.reuseaddr, "reuseaddr"),
            (self.reuseport, "reuseport"),
            (self.keepalive, "keepalive"),
            (self.broadcast, "broadcast"),
            (self.oobinline, "oobinline"),
            (self.passcred, "passcred"),
            (self.tcp_nodelay == Some(true), "nodelay"),
            (self.tcp_cork == Some(true), "cork"),
            (self.v6only == Some(true), "v6only"),
        ] {
            if on {
                v.push(name.into());
            }
        }
        if let Some(l) = self.linger {
            v.push(format!("linger={l}"));
        }
        if let Some((i, n, c)) = self.tcp_keepalive {
            v.push(format!("keepidle={i} keepintvl={n} keepcnt={c}"));
        }
        if self.priority != 0 {
            v.push(format!("priority={}", self.priority));
        }
        v.push(format!("rcvbuf={} sndbuf={}", self.rcvbuf, self.sndbuf));
        if self.rcvlowat > 1 {
            v.push(format!("rcvlowat={}", self.rcvlowat));
        }
        if self.rcvtimeo_us != 0 {
            v.push(format!("rcvtimeo={}us", self.rcvtimeo_us));
        }
        if self.sndtimeo_us != 0 {
            v.push(format!("sndtimeo={}us", self.sndtimeo_us));
        }
        if self.peek_off >= 0 {
            v.push(format!("peek_off={}", self.peek_off));
        }
        v.join(" ")
    }
}

/// What every socket has.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Socket {
    /// `AF_*` (see the constants of this module).
    pub family: u32,
    /// `SOCK_STREAM` 1, `SOCK_DGRAM` 2, `SOCK_RAW` 3, `SOCK_SEQPACKET` 5.
    pub ty: u32,
    /// Protocol number (`IPPROTO_TCP` 6, `IPPROTO_UDP` 17, a netlink protocol, 0).
    pub protocol: u32,
    /// State, TCP numbering for every family (1 established/connected, 7 close/
    /// unconnected, 10 listen).
    pub state: u8,
    /// Shutdown bits as the kernel reports them for this end: 1 receiving side shut,
    /// 2 sending side shut.
    pub shutdown: u8,
    /// `listen` backlog of a listener.
    pub backlog: Option<u32>,
    /// Socket inode at capture time (unix ends find their peer by it).
    pub ino: u32,
    /// For a unix socket: the inode of its connected peer.
    pub peer_ino: Option<u32>,
    /// Bound address.
    pub local: SockAddr,
    /// Connected peer's address.
    pub peer: Option<SockAddr>,
    /// Options.
    pub options: SockOptions,
}

/// Name of a TCP state number (the kernel's numbering, `tcp_states.h`).
pub fn state_name(s: u8) -> &'static str {
    match s {
        1 => "established",
        2 => "syn-sent",
        3 => "syn-recv",
        4 => "fin-wait1",
        5 => "fin-wait2",
        6 => "time-wait",
        7 => "close",
        8 => "close-wait",
        9 => "last-ack",
        10 => "listen",
        11 => "closing",
        12 => "new-syn-recv",
        _ => "unknown-state",
    }
}

impl Socket {
    /// The family's short name (`unix`, `inet`, `inet6`, `netlink`, `packet`).
    pub fn family_name(&self) -> String {
        match self.family {
            AF_UNIX => "unix".into(),
            AF_INET => "inet".into(),
            AF_INET6 => "inet6".into(),
            AF_NETLINK => "netlink".into(),
            AF_PACKET => "packet".into(),
            f => format!("family-{f}"),
        }
    }
    /// The type's short name.
    pub fn type_name(&self) -> String {
        match self.ty {
            1 => "stream".into(),
            2 => "dgram".into(),
            3 => "raw".into(),
            5 => "seqpacket".into(),
            t => format!("type-{t}"),
        }
    }
    /// State name: `listen`, `established`, `close`, ... (for unix: `established`
    /// means connected, `close` unconnected).
    pub fn state_name(&self) -> &'static str {
        state_name(self.state)
    }
}

impl Record for Socket {
    const NAME: &'static str = "socket";
    const CODE: u32 = 0x0450;
    fn fields(&self) -> Vec<(&'static str, String)> {
        let mut v = vec![
            (
                "kind",
                format!("{} {}", self.family_name(), self.type_name()),
            ),
            ("protocol", self.protocol.to_string()),
            ("state", self.state_name().to_string()),
            ("local", self.local.to_string()),
            (
                "peer",
                self.peer
                    .as_ref()
                    .map_or_else(|| "-".to_string(), |p| p.to_string()),
            ),
        ];
        if let Some(b) = self.backlog {
            v.push(("backlog", b.to_string()));
        }
        v.push(("shutdown", self.shutdown.to_string()));
        v.push(("ino", self.ino.to_string()));
        if let Some(p) = self.peer_ino {
            v.push(("peer_ino", p.to_string()));
        }
        v.push(("options", self.options.text()));
        v
    }
}

/// One message of a unix receive queue.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct QueuedMessage {
    /// Its bytes (for a stream socket: bytes up to the write that carried descriptors).
    pub data: Vec<u8>,
    /// The descriptors in flight with it: object ids of [`crate::File`]s defined before.
    pub files: Vec<u32>,
    /// `SCM_CREDENTIALS` the receiver asked for: pid, uid, gid.
    pub creds: Option<(i32, u32, u32)>,
}

/// Most descriptors one message may carry (the kernel's `SCM_MAX_FD`).
pub const MAX_FDS_PER_MESSAGE: usize = 253;

/// A unix socket's receive queue, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SocketQueue {
    /// The messages.
    pub messages: Vec<QueuedMessage>,
}

impl SocketQueue {
    /// Bytes queued.
    pub fn bytes(&self) -> u64 {
        self.messages.iter().map(|m| m.data.len() as u64).sum()
    }
}

impl Record for SocketQueue {
    const NAME: &'static str = "socket_queue";
    const CODE: u32 = 0x0451;
    fn fields(&self) -> Vec<(&'static str, String)> {
        let files: Vec<String> = self
            .messages
            .iter()
            .flat_map(|m| m.files.iter().map(|f| f.to_string()))
            .collect();
        vec![
            ("messages", self.messages.len().to_string()),
            ("queued", self.bytes().to_string()),
            ("in_flight", format!("[{}]", files.join(" "))),
            (
                "creds",
                self.messages
                    .iter()
                    .filter(|m| m.creds.is_some())
                    .count()
                    .to_string(),
            ),
        ]
    }
}

/// `TCP_REPAIR_WINDOW` (`struct tcp_repair_window`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpWindow {
    /// `snd_wl1`.
    pub snd_wl1: u32,
    /// `snd_wnd`.
    pub snd_wnd: u32,
    /// `max_window`.
    pub max_window: u32,
    /// `rcv_wnd`.
    pub rcv_wnd: u32,
    /// `rcv_wup`.
    pub rcv_wup: u32,
}

/// `tcpi_options` bit: timestamps negotiated.
pub const TCP_OPT_TIMESTAMPS: u8 = 1;
/// SACK negotiated.
pub const TCP_OPT_SACK: u8 = 2;
/// Window scaling negotiated.
pub const TCP_OPT_WSCALE: u8 = 4;

/// An established TCP connection in `TCP_REPAIR` terms: restored without the peer
/// seeing anything but a pause.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TcpConnection {
    /// `rcv_nxt` (sequence number of the next byte expected from the peer).
    pub inq_seq: u32,
    /// `write_seq` (sequence number after the last byte the program wrote).
    pub outq_seq: u32,
    /// Received, not read by the program.
    pub inq: Vec<u8>,
    /// Written, not acknowledged by the peer (its last `unsent` bytes never sent).
    pub outq: Vec<u8>,
    /// Bytes at the end of `outq` never sent.
    pub unsent: u32,
    /// MSS clamp.
    pub mss: u32,
    /// Negotiated options (`TCP_OPT_*`).
    pub options: u8,
    /// Send window scale.
    pub snd_wscale: u8,
    /// Receive window scale.
    pub rcv_wscale: u8,
    /// The connection's timestamp clock.
    pub timestamp: u32,
    /// Window state (kernels with `TCP_REPAIR_WINDOW`).
    pub window: Option<TcpWindow>,
    /// The nftables table (family `inet`) holding the peer off until the restore
    /// (empty: none was taken). `nft delete table inet NAME` releases it.
    pub netlock: Vec<u8>,
}

impl Record for TcpConnection {
    const NAME: &'static str = "tcp_connection";
    const CODE: u32 = 0x0452;
    fn fields(&self) -> Vec<(&'static str, String)> {
        let mut v = vec![
            ("inq", self.inq.len().to_string()),
            ("outq", self.outq.len().to_string()),
            ("unsent", self.unsent.to_string()),
            ("inq_seq", self.inq_seq.to_string()),
            ("outq_seq", self.outq_seq.to_string()),
            ("mss", self.mss.to_string()),
            ("options", format!("{:#x}", self.options)),
            ("wscale", format!("{}/{}", self.snd_wscale, self.rcv_wscale)),
            ("timestamp", self.timestamp.to_string()),
        ];
        if let Some(w) = &self.window {
            v.push((
                "window",
                format!(
                    "wl1={} wnd={} max={} rcv_wnd={} rcv_wup={}",
                    w.snd_wl1, w.snd_wnd, w.max_window, w.rcv_wnd, w.rcv_wup
                ),
            ));
        }
        if !self.netlock.is_empty() {
            v.push((
                "netlock",
                String::from_utf8_lossy(&self.netlock).into_owned(),
            ));
        }
        v
    }
}

/// A netlink socket's multicast groups (numbered from 1).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct NetlinkSocket {
    /// Groups joined.
    pub groups: Vec<u32>,
}

impl Record for NetlinkSocket {
    const NAME: &'static str = "netlink_socket";
    const CODE: u32 = 0x0453;
    fn fields(&self) -> Vec<(&'static str, String)> {
        let g: Vec<String> = self.groups.iter().map(|g| g.to_string()).collect();
        vec![("groups", format!("[{}]", g.join(" ")))]
    }
}

/// The socket records of a file (a part of [`super::FileRecords`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SocketRecords {
    /// What every socket has.
    pub socket: Option<Socket>,
    /// A unix socket's receive queue.
    pub queue: Option<SocketQueue>,
    /// An established TCP connection.
    pub tcp: Option<TcpConnection>,
    /// A netlink socket's groups.
    pub netlink: Option<NetlinkSocket>,
}

impl SocketRecords {
    /// True when no record is present.
    pub fn is_empty(&self) -> bool {
        self == &SocketRecords::default()
    }

    /// Every present record, rendered, in code order.
    pub fn render(&self, out: &mut Vec<Rendered>) {
        fn one<R: Record>(r: &Option<R>, out: &mut Vec<Rendered>) {
            if let Some(r) = r {
                out.push((R::NAME, r.fields()));
            }
        }
        one(&self.socket, out);
        one(&self.queue, out);
        one(&self.tcp, out);
        one(&self.netlink, out);
    }

    /// The one-line summary `ckpt-inspect show` prints for a socket: family, type,
    /// state, addresses, queued bytes (`inet stream established 127.0.0.1:8000 ->
    /// 127.0.0.1:51234 queued 27`).
    pub fn summary(&self) -> Option<String> {
        let s = self.socket.as_ref()?;
        let mut out = format!(
            "{} {} {} {}",
            s.family_name(),
            s.type_name(),
            s.state_name(),
            s.local
        );
        if let Some(p) = &s.peer {
            out.push_str(&format!(" -> {p}"));
        }
        if let Some(b) = s.backlog {
            out.push_str(&format!(" backlog {b}"));
        }
        let queued = self.queue.as_ref().map_or(0, |q| q.bytes())
            + self
                .tcp
                .as_ref()
                .map_or(0, |t| (t.inq.len() + t.outq.len()) as u64);
        out.push_str(&format!(" queued {queued}"));
        Some(out)
    }

    /// Lost-item keys for the legacy encoders (no legacy revision has sockets).
    pub fn legacy_keys(&self, ex: &mut super::Extras) {
        if let Some(s) = &self.socket {
            ex.set_u64(Socket::NAME, s.family as u64);
        }
        if let Some(q) = &self.queue {
            ex.set_u64(SocketQueue::NAME, q.bytes());
        }
        if let Some(t) = &self.tcp {
            ex.set_u64(TcpConnection::NAME, (t.inq.len() + t.outq.len()) as u64);
        }
        if let Some(n) = &self.netlink {
            ex.set_u64(NetlinkSocket::NAME, n.groups.len() as u64);
        }
    }
}
