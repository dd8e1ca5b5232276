//! Sockets in `show` (one line per socket fd: family, type, state, addresses, queued
//! bytes), in `show --json`, and in `diff` (by record field).

mod common;

use ckpt_format::build::ImageBuilder;
use ckpt_format::*;
use common::*;
use std::process::Command;

fn run(args: &[&str]) -> (i32, String) {
    let o = Command::new(bin()).args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
    )
}

/// The example image with its file 1 (fd 0) turned into a TCP connection holding
/// `inq` unread bytes and 3 unacknowledged ones.
fn with_socket(inq: &[u8]) -> Vec<u8> {
    let mut b = ImageBuilder::example();
    for ev in &mut b.events {
        if let Event::File(f) = ev {
            if f.id == 1 {
                f.kind = FileKind::Socket;
                f.path = b"socket:[4242]".to_vec();
                f.records.sock = SocketRecords {
                    socket: Some(Socket {
                        family: 2,
                        ty: 1,
                        protocol: 6,
                        state: 1,
                        ino: 4242,
                        local: SockAddr::V4([127, 0, 0, 1], 8000),
                        peer: Some(SockAddr::V4([127, 0, 0, 1], 51234)),
                        ..Socket::default()
                    }),
                    tcp: Some(TcpConnection {
                        inq: inq.to_vec(),
                        outq: b"abc".to_vec(),
                        mss: 65483,
                        ..TcpConnection::default()
                    }),
                    ..SocketRecords::default()
                };
            }
        }
    }
    b.to_native_bytes().unwrap()
}

#[test]
fn show_lists_sockets_and_diff_names_the_field() {
    let dir = std::env::temp_dir().join(format!("ckpt-inspect-sock-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let a = dir.join("a.img");
    let b = dir.join("b.img");
    std::fs::write(&a, with_socket(b"GET / HTTP/1.1\r\n\r\n")).unwrap();
    std::fs::write(&b, with_socket(b"GET /x")).unwrap();
    let (code, out) = run(&["show", a.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let line = out
        .lines()
        .find(|l| l.contains("socket") && l.trim_start().starts_with('0'))
        .unwrap_or_else(|| panic!("no socket row for fd 0:\n{out}"));
    assert!(
        line.ends_with("inet stream established 127.0.0.1:8000 -> 127.0.0.1:51234 queued 21"),
        "{line}"
    );
    assert!(out.contains("tcp_connection"), "{out}");
    assert!(out.contains("inq=18 outq=3"), "{out}");
    let (_, json) = run(&["show", "--json", a.to_str().unwrap()]);
    assert!(
        json.contains(
            "\"socket\": \"inet stream established 127.0.0.1:8000 -> 127.0.0.1:51234 queued 21\""
        ),
        "{json}"
    );
    let (code, d) = run(&["diff", a.to_str().unwrap(), b.to_str().unwrap()]);
    assert_eq!(code, 1, "{d}");
    assert!(
        d.contains("tcp_connection") && d.contains("inq: 18 -> 6"),
        "{d}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
