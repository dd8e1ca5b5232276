//! Socket records (issue 18, docs/SOCKETS.md): native-1 round trips of every kind
//! with every field set, their place before their FILE, the legacy revisions reporting
//! them as lost, and malformed payloads refused with the offset and field named.

use ckpt_format::build::ImageBuilder;
use ckpt_format::convert::{convert_slice, ConvertOptions};
use ckpt_format::*;

fn events(b: &[u8]) -> Result<Vec<Event<'static>>> {
    let mut src = open_slice(b)?;
    let mut v = Vec::new();
    while let Some(e) = src.next_event()? {
        v.push(e.into_owned());
    }
    Ok(v)
}

fn first_error(b: &[u8]) -> Error {
    match events(b) {
        Err(e) => e,
        Ok(_) => panic!("decoded"),
    }
}

fn options() -> SockOptions {
    SockOptions {
        reuseaddr: true,
        reuseport: false,
        keepalive: true,
        broadcast: false,
        oobinline: true,
        passcred: true,
        priority: 6,
        rcvbuf: 200_000,
        sndbuf: -1,
        rcvlowat: 1,
        rcvtimeo_us: 3_500_000,
        sndtimeo_us: u64::MAX,
        linger: Some(7),
        peek_off: -1,
        tcp_nodelay: Some(true),
        tcp_cork: Some(false),
        tcp_keepalive: Some((60, 10, 5)),
        v6only: Some(true),
    }
}

/// The example image with socket records on its files: file 1 a unix stream end with a
/// queue carrying file 3 and 4 in flight (defined... before: the queue refers to ids
/// only) and credentials; file 3 a TCP connection over IPv6 with both queues and a net
/// lock; file 4 a netlink socket with groups.
fn socket_example() -> ImageBuilder {
    let mut b = ImageBuilder::example();
    for ev in &mut b.events {
        let Event::File(f) = ev else { continue };
        f.records.sock = match f.id {
            1 => SocketRecords {
                socket: Some(Socket {
                    family: 1,
                    ty: 1,
                    protocol: 0,
                    state: 1,
                    shutdown: 2,
                    backlog: None,
                    ino: 77_001,
                    peer_ino: Some(77_002),
                    local: SockAddr::Abstract(b"a\0b".to_vec()),
                    peer: Some(SockAddr::Path(b"/run/x.sock".to_vec())),
                    options: options(),
                }),
                queue: Some(SocketQueue {
                    messages: vec![
                        QueuedMessage {
                            data: b"first".to_vec(),
                            files: vec![],
                            creds: None,
                        },
                        QueuedMessage {
                            data: vec![],
                            files: vec![3, 4, 3],
                            creds: Some((-1, 1000, u32::MAX)),
                        },
                    ],
                }),
                tcp: None,
                netlink: None,
            },
            3 => SocketRecords {
                socket: Some(Socket {
                    family: 10,
                    ty: 1,
                    protocol: 6,
                    state: 1,
                    shutdown: 0,
                    backlog: Some(0),
                    ino: 5,
                    peer_ino: None,
                    local: SockAddr::V6([0xfe; 16], 8000, 0x12345, 2),
                    peer: Some(SockAddr::V4([127, 0, 0, 1], 65535)),
                    options: SockOptions::default(),
                }),
                queue: None,
                tcp: Some(TcpConnection {
                    inq_seq: u32::MAX,
                    outq_seq: 17,
                    inq: b"GET / HTTP/1.1\r\n\r\n".to_vec(),
                    outq: vec![7u8; 70_000],
                    unsent: 69_999,
                    mss: 65483,
                    options: 7,
                    snd_wscale: 7,
                    rcv_wscale: 14,
                    timestamp: 123_456,
                    window: Some(TcpWindow {
                        snd_wl1: 1,
                        snd_wnd: 2,
                        max_window: 3,
                        rcv_wnd: 4,
                        rcv_wup: 5,
                    }),
                    netlock: b"ckpt_123_x".to_vec(),
                }),
                netlink: None,
            },
            4 => SocketRecords {
                socket: Some(Socket {
                    family: 16,
                    ty: 3,
                    protocol: 0,
                    state: 7,
                    local: SockAddr::Netlink(0x4000_0001, 0b10001),
                    peer: Some(SockAddr::Other(42, vec![1, 2, 3])),
                    ..Socket::default()
                }),
                netlink: Some(NetlinkSocket {
                    groups: vec![1, 5, 33],
                }),
                ..SocketRecords::default()
            },
            _ => SocketRecords::default(),
        };
    }
    b
}

#[test]
fn socket_records_round_trip_before_their_file() {
    let b = socket_example();
    let bytes = b.to_native_bytes().unwrap();
    let got = events(&bytes).unwrap();
    assert_eq!(got, b.events);
    let mut again = Vec::new();
    let mut enc = encoder(Revision::Native1, &mut again);
    for ev in &got {
        enc.event(ev).unwrap();
    }
    enc.finish().unwrap();
    drop(enc);
    assert_eq!(again, bytes);
    let mut recs = open_records_slice(&bytes).unwrap();
    let mut names = Vec::new();
    while let Some(r) = recs.next_record().unwrap() {
        names.push(r.name);
    }
    let s = names.join(" ");
    assert!(s.contains("SOCKET SOCKET_QUEUE FILE"), "{s}");
    assert!(s.contains("SOCKET TCP_CONNECTION FILE"), "{s}");
    assert!(s.contains("SOCKET NETLINK_SOCKET FILE"), "{s}");
}

#[test]
fn socket_records_render_readably() {
    let b = socket_example();
    let mut files = b.events.iter().filter_map(|e| match e {
        Event::File(f) => Some(f),
        _ => None,
    });
    let f1 = files.next().unwrap();
    assert_eq!(
        f1.records.sock.summary().unwrap(),
        "unix stream established @a\u{0}b -> /run/x.sock queued 5"
    );
    let r = f1.records.rendered();
    let names: Vec<&str> = r.iter().map(|x| x.0).collect();
    assert_eq!(names, ["socket", "socket_queue"]);
    let q: Vec<String> = r[1].1.iter().map(|(k, v)| format!("{k}={v}")).collect();
    assert_eq!(q.join(" "), "messages=2 queued=5 in_flight=[3 4 3] creds=1");
    let opts = &r[0].1.iter().find(|x| x.0 == "options").unwrap().1;
    assert!(
        opts.starts_with("reuseaddr keepalive oobinline passcred nodelay v6only linger=7"),
        "{opts}"
    );
    let f3 = files.next().unwrap();
    assert_eq!(
        f3.records.sock.summary().unwrap(),
        "inet6 stream established [fefe:fefe:fefe:fefe:fefe:fefe:fefe:fefe]:8000 -> 127.0.0.1:65535 backlog 0 queued 70018"
    );
}

#[test]
fn legacy_revisions_report_sockets_as_lost() {
    let bytes = socket_example().to_native_bytes().unwrap();
    for rev in [Revision::CkptV21, Revision::CrV5] {
        let mut out = Vec::new();
        let e = convert_slice(&bytes, &mut out, &ConvertOptions::new(rev)).unwrap_err();
        let s = e.to_string();
        for k in ["socket", "socket_queue", "tcp_connection", "netlink_socket"] {
            assert!(s.contains(k), "{rev}: {k} not named in: {s}");
        }
        let mut opts = ConvertOptions::new(rev);
        opts.lossy = true;
        let r = convert_slice(&bytes, &mut Vec::new(), &opts).unwrap();
        let d = r.dropped.join("\n");
        for k in ["socket", "socket_queue", "tcp_connection", "netlink_socket"] {
            assert!(d.contains(k), "{rev}: {k} not in the lossy report: {d}");
        }
    }
}

/// The payload of the example's record `name` and its frame offset.
fn record(bytes: &[u8], name: &str) -> (usize, Vec<u8>) {
    let mut recs = open_records_slice(bytes).unwrap();
    while let Some(r) = recs.next_record().unwrap() {
        if r.name == name {
            return (r.offset as usize, r.payload.to_vec());
        }
    }
    panic!("no {name}")
}

/// The example with record `name`'s payload replaced by `p` (same length: the frame's
/// CRC is recomputed).
fn patched(bytes: &[u8], name: &str, f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let (off, mut p) = record(bytes, name);
    let len = p.len();
    f(&mut p);
    assert_eq!(p.len(), len);
    let mut b = bytes.to_vec();
    b[off + 24..off + 24 + len].copy_from_slice(&p);
    let mut c = crc32fast::Hasher::new();
    c.update(&b[off..off + 16]);
    c.update(&b[off + 24..off + 24 + len]);
    b[off + 16..off + 20].copy_from_slice(&c.finalize().to_le_bytes());
    b
}

#[test]
fn malformed_socket_payloads_are_refused_naming_the_field() {
    let bytes = socket_example().to_native_bytes().unwrap();
    let set = |p: &mut Vec<u8>, at: usize, v: u32| p[at..at + 4].copy_from_slice(&v.to_le_bytes());
    // A queue claiming more messages than the payload holds.
    let b = patched(&bytes, "SOCKET_QUEUE", |p| set(p, 0, 0x7fff_ffff));
    let s = first_error(&b).to_string();
    assert!(
        s.contains("message count") && s.contains("SOCKET_QUEUE"),
        "{s}"
    );
    // A message claiming more descriptors than SCM_MAX_FD.
    let b = patched(&bytes, "SOCKET_QUEUE", |p| set(p, 8 + 16, 100_000));
    let s = first_error(&b).to_string();
    assert!(s.contains("file count"), "{s}");
    // More unsent bytes than the send queue holds.
    let b = patched(&bytes, "TCP_CONNECTION", |p| set(p, 8, 70_001));
    let s = first_error(&b).to_string();
    assert!(s.contains("unsent"), "{s}");
    // A data length past the payload's end.
    let b = patched(&bytes, "TCP_CONNECTION", |p| set(p, 44, u32::MAX));
    let s = first_error(&b).to_string();
    assert!(s.contains("TCP_CONNECTION"), "{s}");
    // An unknown option bit, an unknown address tag, a shutdown value.
    let b = patched(&bytes, "SOCKET", |p| set(p, 28, 1 << 20));
    assert!(first_error(&b).to_string().contains("option flags"));
    let b = patched(&bytes, "SOCKET", |p| set(p, 84, 9));
    assert!(first_error(&b).to_string().contains("address tag"));
    let b = patched(&bytes, "SOCKET", |p| p[13] = 4);
    assert!(first_error(&b).to_string().contains("shutdown"));
    // A group count beyond the payload.
    let b = patched(&bytes, "NETLINK_SOCKET", |p| set(p, 0, 1 << 30));
    assert!(first_error(&b).to_string().contains("group count"));
}
