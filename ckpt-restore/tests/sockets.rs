//! Sockets carried across a capture with `--kill` and a restore (issue 18,
//! docs/SOCKETS.md), each with a real program checked from outside and by itself:
//! a parent/child tree with unix socketpairs holding data and descriptors in flight
//! (fixtures/progs/sock_tree.c), python3 `http.server` with a keep-alive client
//! connection held open across the checkpoint, and redis-server with a connected
//! client. Under CI=true a missing program fails the test instead of skipping it.

mod common;

use common::*;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Build a C fixture of fixtures/progs that is not a `restore_*` program.
fn build_prog(name: &str) -> PathBuf {
    build_progs();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../fixtures/progs/{name}.c"));
    let out = progs_dir().join(name);
    let tmp = progs_dir().join(format!("{name}.tmp{}", std::process::id()));
    let st = Command::new("cc")
        .args(["-O1", "-g", "-Wall", "-o"])
        .arg(&tmp)
        .arg(&src)
        .status()
        .expect("cc");
    assert!(st.success(), "cc {}", src.display());
    std::fs::rename(&tmp, &out).unwrap();
    out
}

fn have(prog: &str, arg: &str) -> bool {
    let ok = Command::new(prog)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{prog} missing: .ci/run installs it"
        );
        eprintln!("skipped: {prog} not installed");
    }
    ok
}

fn wait_for(path: &Path, what: &str, limit: Duration) -> String {
    let t0 = Instant::now();
    loop {
        let s = std::fs::read_to_string(path).unwrap_or_default();
        if s.contains(what) {
            return s;
        }
        assert!(
            t0.elapsed() < limit,
            "no {what:?} in {} within {limit:?}:\n{s}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// An nftables table that must not outlive the test, whatever happens.
struct NoTable(String);

impl Drop for NoTable {
    fn drop(&mut self) {
        if let Ok(l) = ckpt_sys::netlock::NetLock::named(&self.0) {
            let _ = l.unlock();
        }
    }
}

/// Tables of ours (`ckpt_<pid>_*`) left in the ruleset.
fn tables_of(pid: i32) -> Vec<String> {
    let o = Command::new("nft")
        .args(["list", "tables"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    o.lines()
        .filter_map(|l| l.strip_prefix("table inet "))
        .filter(|t| t.starts_with(&format!("ckpt_{pid}_")))
        .map(|t| t.trim().to_string())
        .collect()
}

/// sock_tree.c (parent + child): three socketpairs across the two processes with data
/// queued both ways, a pipe read end holding data, a file at offset 3 and a pipe write
/// end in flight, a SHUT_WR, a path listener with backlog 9, an abstract datagram socket
/// with options. Captured with `--tree --kill`, restored; released by a byte on its
/// stdin (a FIFO), the tree reads everything back and checks it itself: `ALL OK`.
#[test]
fn socketpair_tree_with_queues_and_descriptors_in_flight() {
    let prog = build_prog("sock_tree");
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("go");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo with a valid path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let stdin = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&fifo)
        .unwrap();
    let out = dir.path().join("out");
    #[allow(clippy::zombie_processes)]
    let child = Command::new(&prog)
        .arg(dir.path())
        .stdin(stdin.try_clone().unwrap())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let root = child.id() as i32;
    let mut guard = Procs(vec![root]);
    let s = wait_for(&out, "ready ", Duration::from_secs(30));
    let kid: i32 = s
        .trim()
        .strip_prefix("ready ")
        .and_then(|k| k.parse().ok())
        .unwrap();
    guard.0.push(kid);
    let img = dir.path().join("tree.img");
    capture_kill_tree(root, &img, &[root, kid]);
    guard.0.clear();
    let pids = restore_all(&img, &[]);
    guard.0.extend(pids.iter().rev());
    assert_eq!(pids.len(), 2, "parent and child restored");
    // The go byte (the parent forwards it to the child).
    (&stdin).write_all(b"g").unwrap();
    let s = wait_for(&out, "\nALL OK\n", Duration::from_secs(60));
    assert!(!s.contains("FAIL"), "{s}");
    for line in [
        "ok child: stream message 1",
        "ok child: two descriptors arrived with it",
        "ok child: the passed pipe holds its data",
        "ok child: the passed file reads on from offset 3",
        "ok parent: datagram A",
        "ok parent: seqpacket 1 with a descriptor",
        "ok parent: seqpacket end (the child shut its side)",
        "ok parent: 70000 stream bytes in order",
        "ok parent: child checks passed",
        "ok parent: SO_PASSCRED still on",
    ] {
        assert!(s.contains(line), "{line} missing:\n{s}");
    }
    assert_eq!(wait_exit(pids[0], Duration::from_secs(30)), 0);
    guard.0.clear();
    let _ = child;
}

/// One HTTP/1.1 response read from `s`: (head, body).
fn response(s: &mut std::net::TcpStream) -> (String, Vec<u8>) {
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = s.read(&mut b).expect("reading a response head");
        assert_eq!(
            n,
            1,
            "connection closed after {:?}",
            String::from_utf8_lossy(&head)
        );
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Content-Length in {head}"));
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    (head, body)
}

fn get(s: &mut std::net::TcpStream, path: &str) -> (String, Vec<u8>) {
    write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    response(s)
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    l.local_addr().unwrap().port()
}

fn connect(port: u16) -> std::net::TcpStream {
    let t0 = Instant::now();
    loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => {
                s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
                return s;
            }
            Err(e) => {
                assert!(
                    t0.elapsed() < Duration::from_secs(30),
                    "connect {port}: {e}"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

/// python3 `http.server` (HTTP/1.1, threads) on a port with a keep-alive client:
/// captured with `--kill` while the client's connection is open, the client sends its
/// next request while no process exists (the net lock keeps the kernel from answering
/// with a reset), restored: the answer arrives on the same connection, a new client
/// is accepted, and the capture's nftables table is gone.
#[test]
fn http_server_keepalive_connection_across_capture_and_restore() {
    if !have("python3", "--version") || !have("nft", "--version") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), b"first file\n").unwrap();
    std::fs::write(dir.path().join("b.txt"), vec![b'b'; 100_000]).unwrap();
    let port = free_port();
    let script = r#"
import http.server, os, sys
os.chdir(sys.argv[1])
class H(http.server.SimpleHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def log_message(self, *a):
        pass
http.server.ThreadingHTTPServer(('127.0.0.1', int(sys.argv[2])), H).serve_forever()
"#;
    #[allow(clippy::zombie_processes)]
    let srv = Command::new("python3")
        .args(["-c", script])
        .arg(dir.path())
        .arg(port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("err")).unwrap())
        .spawn()
        .unwrap();
    let pid = srv.id() as i32;
    let mut guard = Procs(vec![pid]);
    let mut c = connect(port);
    let (h, body) = get(&mut c, "/a.txt");
    assert!(h.starts_with("HTTP/1.1 200"), "{h}");
    assert_eq!(body, b"first file\n");
    let img = dir.path().join("http.img");
    build_progs(); // the subreaper
    capture_kill(pid, &img);
    guard.0.clear();
    let _tables: Vec<NoTable> = tables_of(pid).into_iter().map(NoTable).collect();
    assert_eq!(_tables.len(), 1, "the capture's net lock");
    // The next request on the kept connection, while the server does not exist.
    write!(c, "GET /b.txt HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let pid2 = restore(&img, &[]);
    guard.0.push(pid2);
    let (h, body) = response(&mut c);
    assert!(h.starts_with("HTTP/1.1 200"), "{h}");
    assert_eq!(
        body,
        vec![b'b'; 100_000],
        "the answer on the same connection"
    );
    let (h, body) = get(&mut c, "/a.txt");
    assert!(h.starts_with("HTTP/1.1 200"), "{h}");
    assert_eq!(body, b"first file\n");
    // A new client.
    let mut c2 = connect(port);
    let (h, body) = get(&mut c2, "/a.txt");
    assert!(h.starts_with("HTTP/1.1 200"), "{h}");
    assert_eq!(body, b"first file\n");
    assert!(tables_of(pid).is_empty(), "the restore lifted the net lock");
    drop(srv);
}

/// A refused `--kill` capture leaves the target as it was: a python3 program holding an
/// established TCP connection and a unix socket whose peer is ours (outside the
/// captured process) is refused, naming that socket; the net lock taken before the
/// dump is gone, the connection left repair mode (it answers), the process runs.
#[test]
fn refused_kill_capture_releases_the_net_lock_and_repair_mode_and_disconnect_carries() {
    if !have("python3", "--version") || !have("nft", "--version") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outside.sock");
    let ul = std::os::unix::net::UnixListener::bind(&path).unwrap();
    let port = free_port();
    let script = r#"
import socket, sys
u = socket.socket(socket.AF_UNIX)
u.connect(sys.argv[1])
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind(('127.0.0.1', int(sys.argv[2])))
l.listen()
c, _ = l.accept()
while True:
    d = c.recv(100)
    if not d:
        break
    if d == b'unix':
        c.sendall(repr([u.recv(100), u.recv(100)]).encode())
    else:
        c.sendall(b'echo:' + d)
"#;
    #[allow(clippy::zombie_processes)]
    let p = Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .arg(port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = p.id() as i32;
    let _guard = Procs(vec![pid]);
    let (_u, _) = ul.accept().unwrap();
    let mut c = connect(port);
    c.write_all(b"one").unwrap();
    let mut b = [0u8; 8];
    c.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"echo:one");
    build_progs(); // the subreaper
    let mut opts = ckpt_capture::Options::new(pid);
    opts.leave = ckpt_capture::Leave::Killed;
    let mut cap = ckpt_capture::live::LiveCapture::new(opts.clone());
    let img = dir.path().join("img");
    let e = ckpt_capture::capture_to_path(&mut cap, &opts, &img, None)
        .expect_err("refused")
        .to_string();
    drop(cap);
    assert!(e.contains("not killed, left running"), "{e}");
    assert!(e.contains("is outside the captured tree"), "{e}");
    assert!(
        e.contains("unix stream established unnamed ->") && e.contains("outside.sock"),
        "the socket is named: {e}"
    );
    assert!(tables_of(pid).is_empty(), "the net lock was removed");
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    c.write_all(b"two").unwrap();
    c.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"echo:two", "the connection works: out of repair mode");
    // With --disconnect-sockets the unix socket is carried as one whose peer has gone:
    // after the restore it reads what was queued for it, then end of file; the TCP
    // connection goes on.
    (&_u).write_all(b"from-outside").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    opts.disconnect_sockets = true;
    let mut cap = ckpt_capture::live::LiveCapture::new(opts.clone());
    ckpt_capture::capture_to_path(&mut cap, &opts, &img, None).unwrap();
    drop(cap);
    wait_gone(&[pid]);
    let pid2 = restore(&img, &[]);
    let _guard2 = Procs(vec![pid2]);
    c.write_all(b"three").unwrap();
    let mut b = [0u8; 10];
    c.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"echo:three");
    c.write_all(b"unix").unwrap();
    let mut r = [0u8; 22];
    c.read_exact(&mut r).unwrap();
    assert_eq!(
        &r, b"[b'from-outside', b'']",
        "queued bytes, then end of file"
    );
    assert!(tables_of(pid).is_empty());
}

/// A python3 program with a bound UDP socket (its command channel), a NETLINK_ROUTE
/// socket joined to two groups, and a unix listener with a connection accepted from it
/// holding data both ways: captured with `--kill`, restored; the program answers on the
/// same UDP port, its netlink socket has the same port id and groups, the accepted
/// connection reads the bytes queued before the capture and is named as the listener,
/// and the listener accepts a new connection.
#[test]
fn udp_netlink_and_unix_listener_of_a_python_program() {
    if !have("python3", "--version") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let script = r#"
import socket, sys
d = sys.argv[1]
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(('127.0.0.1', int(sys.argv[2])))
nl = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)
nl.bind((0, 1 | 16))
l = socket.socket(socket.AF_UNIX)
l.bind(d + '/s.sock')
l.listen(3)
c = socket.socket(socket.AF_UNIX)
c.connect(d + '/s.sock')
a, _ = l.accept()
c.sendall(b'queued-before')
a.sendall(b'to-client')
print('ready', flush=True)
while True:
    m, peer = u.recvfrom(100)
    if m == b'nl':
        r = repr(nl.getsockname())
    elif m == b'unix':
        r = ' '.join([a.recv(100).decode(), c.recv(100).decode(), a.getsockname(), c.getpeername()])
    elif m == b'new':
        c2 = socket.socket(socket.AF_UNIX)
        c2.connect(d + '/s.sock')
        a2, _ = l.accept()
        c2.sendall(b'x')
        r = 'new ' + a2.recv(10).decode()
    else:
        r = 'echo:' + m.decode()
    u.sendto(r.encode(), peer)
"#;
    let out = dir.path().join("out");
    #[allow(clippy::zombie_processes)]
    let p = Command::new("python3")
        .args(["-c", script])
        .arg(dir.path())
        .arg(port.to_string())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(dir.path().join("err")).unwrap())
        .spawn()
        .unwrap();
    let pid = p.id() as i32;
    let mut guard = Procs(vec![pid]);
    wait_for(&out, "ready", Duration::from_secs(30));
    let u = std::net::UdpSocket::bind(("127.0.0.1", 0)).unwrap();
    u.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    u.connect(("127.0.0.1", port)).unwrap();
    let ask = |m: &str| -> String {
        u.send(m.as_bytes()).unwrap();
        let mut b = [0u8; 512];
        let n = u.recv(&mut b).unwrap();
        String::from_utf8_lossy(&b[..n]).into_owned()
    };
    assert_eq!(ask("hello"), "echo:hello");
    let nl = ask("nl");
    assert!(nl.ends_with(", 17)"), "port id and groups 1|16: {nl}");
    let img = dir.path().join("img");
    build_progs(); // the subreaper
    capture_kill(pid, &img);
    guard.0.clear();
    let pid2 = restore(&img, &[]);
    guard.0.push(pid2);
    assert_eq!(ask("again"), "echo:again", "the same UDP port answers");
    assert_eq!(ask("nl"), nl, "the netlink socket's port id and groups");
    let name = format!("{}/s.sock", dir.path().display());
    assert_eq!(
        ask("unix"),
        format!("queued-before to-client {name} {name}"),
        "queues both ways; the accepted end named as its listener"
    );
    assert_eq!(ask("new"), "new x", "the listener accepts");
}

/// One RESP reply line from redis (`+OK`, `:5`, `$1` then the bulk line).
fn resp(s: &mut std::net::TcpStream) -> String {
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        let n = s.read(&mut b).expect("reading a redis reply");
        assert_eq!(
            n,
            1,
            "connection closed after {:?}",
            String::from_utf8_lossy(&line)
        );
        line.push(b[0]);
    }
    let l = String::from_utf8_lossy(&line[..line.len() - 2]).into_owned();
    if let Some(n) = l.strip_prefix('$').and_then(|n| n.parse::<usize>().ok()) {
        let mut v = vec![0u8; n + 2];
        s.read_exact(&mut v).unwrap();
        return String::from_utf8_lossy(&v[..n]).into_owned();
    }
    l
}

fn cmd(s: &mut std::net::TcpStream, args: &[&str]) -> String {
    let mut m = format!("*{}\r\n", args.len());
    for a in args {
        m.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    s.write_all(m.as_bytes()).unwrap();
    resp(s)
}

/// redis-server with a connected client: keys written before the capture (`--kill`),
/// an INCR sent on the same connection while no server exists, answered after the
/// restore with the next count; the keys read back on the same connection and by a
/// new client.
#[test]
fn redis_client_connection_across_capture_and_restore() {
    if !have("redis-server", "--version") || !have("nft", "--version") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    #[allow(clippy::zombie_processes)]
    let srv = Command::new("redis-server")
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
        .arg("--dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = srv.id() as i32;
    let mut guard = Procs(vec![pid]);
    let mut c = connect(port);
    // redis answers LOADING/errors until it is up: wait for PONG.
    let t0 = Instant::now();
    while cmd(&mut c, &["PING"]) != "+PONG" {
        assert!(t0.elapsed() < Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        cmd(&mut c, &["SET", "kept", "across the checkpoint"]),
        "+OK"
    );
    for i in 1..=100 {
        assert_eq!(cmd(&mut c, &["INCR", "n"]), format!(":{i}"));
    }
    let img = dir.path().join("redis.img");
    build_progs(); // the subreaper
    capture_kill(pid, &img);
    guard.0.clear();
    let _tables: Vec<NoTable> = tables_of(pid).into_iter().map(NoTable).collect();
    assert_eq!(_tables.len(), 1, "the capture's net lock");
    // The next INCR while the server does not exist.
    c.write_all(b"*2\r\n$4\r\nINCR\r\n$1\r\nn\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let pid2 = restore(&img, &[]);
    guard.0.push(pid2);
    assert_eq!(
        resp(&mut c),
        ":101",
        "the INCR sent during the gap, answered once"
    );
    for i in 102..=150 {
        assert_eq!(cmd(&mut c, &["INCR", "n"]), format!(":{i}"));
    }
    assert_eq!(cmd(&mut c, &["GET", "kept"]), "across the checkpoint");
    let mut c2 = connect(port);
    assert_eq!(cmd(&mut c2, &["GET", "n"]), "150");
    assert_eq!(cmd(&mut c2, &["GET", "kept"]), "across the checkpoint");
    assert!(tables_of(pid).is_empty(), "the restore lifted the net lock");
    drop(srv);
}

/// A python3 asyncio echo server (its default epoll loop and its self-pipe, a
/// socketpair) serving TCP and a unix path: a TCP client with a reply left unread and a
/// line sent while no process exists (after `--kill`), restored: the client reads both
/// replies once and in order on the same connection; new TCP and unix clients are
/// served.
#[test]
fn asyncio_echo_server_across_capture_and_restore() {
    if !have("python3", "--version") || !have("nft", "--version") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let script = r#"
import asyncio, sys
async def handle(r, w):
    n = 0
    while True:
        line = await r.readline()
        if not line:
            break
        n += 1
        w.write(b'%d:' % n + line)
        await w.drain()
    w.close()
async def main():
    await asyncio.start_unix_server(handle, path=sys.argv[1] + '/echo.sock')
    await asyncio.start_server(handle, '127.0.0.1', int(sys.argv[2]))
    print('ready', flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"#;
    let out = dir.path().join("out");
    #[allow(clippy::zombie_processes)]
    let p = Command::new("python3")
        .args(["-c", script])
        .arg(dir.path())
        .arg(port.to_string())
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(dir.path().join("err")).unwrap())
        .spawn()
        .unwrap();
    let pid = p.id() as i32;
    let mut guard = Procs(vec![pid]);
    wait_for(&out, "ready", Duration::from_secs(30));
    let mut c = connect(port);
    let line = |s: &mut std::net::TcpStream| -> String {
        let mut v = Vec::new();
        let mut b = [0u8; 1];
        while !v.ends_with(b"\n") {
            assert_eq!(s.read(&mut b).expect("a reply line"), 1);
            v.push(b[0]);
        }
        String::from_utf8(v).unwrap()
    };
    c.write_all(b"a\n").unwrap();
    assert_eq!(line(&mut c), "1:a\n");
    c.write_all(b"b\n").unwrap(); // its reply is left unread across the checkpoint
    std::thread::sleep(Duration::from_millis(200));
    let img = dir.path().join("img");
    build_progs(); // the subreaper
    capture_kill(pid, &img);
    guard.0.clear();
    let _tables: Vec<NoTable> = tables_of(pid).into_iter().map(NoTable).collect();
    c.write_all(b"c\n").unwrap(); // sent while no process exists
    std::thread::sleep(Duration::from_millis(300));
    let pid2 = restore(&img, &[]);
    guard.0.push(pid2);
    assert_eq!(line(&mut c), "2:b\n");
    assert_eq!(line(&mut c), "3:c\n", "the line sent during the gap, once");
    c.write_all(b"d\n").unwrap();
    assert_eq!(line(&mut c), "4:d\n");
    let mut c2 = connect(port);
    c2.write_all(b"x\n").unwrap();
    assert_eq!(line(&mut c2), "1:x\n");
    let mut u = std::os::unix::net::UnixStream::connect(dir.path().join("echo.sock")).unwrap();
    u.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    u.write_all(b"y\n").unwrap();
    let mut b = [0u8; 4];
    u.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"1:y\n");
    assert!(tables_of(pid).is_empty());
}
