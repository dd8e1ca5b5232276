//! The live objects of a real CRIU 4.1.1 dump mapped onto the model's typed records:
//! fixtures/progs/restore_criu.c holds an eventfd, a unix socket pair with bytes queued both
//! ways, an epoll set, a timerfd, a signalfd, an inotify watch, an interval timer, a POSIX
//! timer, a nice value, oom_score_adj, a flock and a POSIX lock. Each record is checked
//! against what the program set and against crit's decoding of the same dump.

mod common;

use ckpt_criu::{CriuImage, Decoder};
use ckpt_format::{Event, EventSource, File, Task, Thread};
use common::{crit, criu, dump, wait_for, Workload};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

fn u(v: &Value) -> u64 {
    match v {
        Value::String(s) => u64::from_str_radix(s.trim_start_matches("0x"), 16)
            .unwrap_or_else(|_| panic!("not a hex number: {v}")),
        _ => v.as_u64().unwrap_or_else(|| panic!("not a number: {v}")),
    }
}

/// Compile the fixture into `dir`.
fn build(dir: &Path) -> std::path::PathBuf {
    let src = common::root().join("fixtures/progs/restore_criu.c");
    let bin = dir.join("restore_criu");
    let st = std::process::Command::new("cc")
        .args(["-O1", "-Wall", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .expect("cc");
    assert!(st.success(), "cc {}", src.display());
    bin
}

struct Dumped {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    work: std::path::PathBuf,
    /// pid efd sp0 sp1 ep tfd sfd ify nl udp tcp udp_port tcp_port rcvbuf timerid lockfd posixfd
    n: Vec<i64>,
}

fn dumped() -> Option<Dumped> {
    let (criu_bin, _) = criu()?;
    let tmp = tempfile::tempdir().unwrap();
    let bin = build(tmp.path());
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let ready = tmp.path().join("ready");
    let w = Workload::start(&[
        bin.to_str().unwrap(),
        "100000",
        ready.to_str().unwrap(),
        work.to_str().unwrap(),
    ]);
    wait_for("the workload", || ready.exists());
    let n: Vec<i64> = std::fs::read_to_string(&ready)
        .unwrap()
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    assert_eq!(n[0], w.pid as i64);
    let dir = tmp.path().join("dump");
    dump(&criu_bin, w.pid, &dir, &["--file-locks"]);
    Some(Dumped {
        _tmp: tmp,
        dir,
        work,
        n,
    })
}

#[test]
fn live_objects_map_onto_typed_records_as_crit_decodes_them() {
    let Some(d) = dumped() else {
        return;
    };
    let (_, crit_bin) = criu().unwrap();
    let n = &d.n;
    let img = CriuImage::open(&d.dir).unwrap();
    let mut dec = Decoder::new(&img).unwrap();
    let mut evs = Vec::new();
    while let Some(e) = dec.next_event().unwrap() {
        evs.push(e.into_owned());
    }
    assert!(dec.losses().is_empty(), "{:?}", dec.losses());
    let mut files: BTreeMap<u32, &File> = BTreeMap::new();
    let mut fds: BTreeMap<i64, &File> = BTreeMap::new();
    let mut task: Option<&Task> = None;
    let mut thread: Option<&Thread> = None;
    for e in &evs {
        match e {
            Event::Task(t) => task = Some(t),
            Event::Thread(t) => thread = Some(t),
            Event::File(f) => {
                files.insert(f.id, f);
            }
            Event::Fd(fd) => {
                fds.insert(fd.fd as i64, files[&fd.file]);
            }
            _ => {}
        }
    }
    let (task, thread) = (task.unwrap(), thread.unwrap());
    let pid = task.pid;
    assert_eq!(pid as i64, n[0]);

    // crit's view: files.img entries by the fd numbers of fdinfo-N.img.
    let ids = crit(&crit_bin, &d.dir.join(format!("ids-{pid}.img")));
    let fdi = crit(
        &crit_bin,
        &d.dir
            .join(format!("fdinfo-{}.img", u(&ids["entries"][0]["files_id"]))),
    );
    let all = crit(&crit_bin, &d.dir.join("files.img"));
    let by_id: BTreeMap<u64, &Value> = all["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (u(&f["id"]), f))
        .collect();
    let cf: BTreeMap<i64, &Value> = fdi["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (u(&e["fd"]) as i64, by_id[&u(&e["id"])]))
        .collect();
    let (efd, sp0, sp1, ep, tfd, sfd, ify) = (n[1], n[2], n[3], n[4], n[5], n[6], n[7]);

    // eventfd: counter 7, O_NONBLOCK.
    let e = fds[&efd].records.eventfd.expect("eventfd record");
    assert_eq!(e.count, 7);
    assert_eq!(e.count, u(&cf[&efd]["efd"]["counter"]));
    assert_eq!(fds[&efd].flags & 0o4000, 0o4000, "O_NONBLOCK");
    assert_eq!(fds[&efd].path, b"anon_inode:[eventfd]");

    // The socket pair: peers by inode, the queued bytes on the receiving side, sp0's
    // receive buffer as the program read it back.
    let s0 = fds[&sp0].records.sock.socket.as_ref().expect("socket sp0");
    let s1 = fds[&sp1].records.sock.socket.as_ref().expect("socket sp1");
    assert_eq!(s0.peer_ino, Some(s1.ino));
    assert_eq!(s1.peer_ino, Some(s0.ino));
    assert_eq!(s0.ino as u64, u(&cf[&sp0]["usk"]["ino"]));
    assert_eq!(s1.ino as u64, u(&cf[&sp1]["usk"]["ino"]));
    assert_eq!((s0.family, s0.ty, s0.state), (1, 1, 1));
    assert_eq!(s0.options.rcvbuf as i64, n[13]);
    assert_eq!(
        s0.options.rcvbuf as u64,
        u(&cf[&sp0]["usk"]["opts"]["so_rcvbuf"])
    );
    assert_eq!(
        s1.options.sndbuf as u64,
        u(&cf[&sp1]["usk"]["opts"]["so_sndbuf"])
    );
    let q = |fd: i64| -> Vec<Vec<u8>> {
        fds[&fd]
            .records
            .sock
            .queue
            .as_ref()
            .map_or(Vec::new(), |q| {
                q.messages.iter().map(|m| m.data.clone()).collect()
            })
    };
    assert_eq!(q(sp1), vec![b"Q:hello".to_vec()]);
    assert_eq!(q(sp0), vec![b"R:world".to_vec()]);

    // epoll: the eventfd (0xE1) and sp1 (0x51), EPOLLIN, as crit lists the targets.
    let p = fds[&ep]
        .records
        .eventpoll
        .as_ref()
        .expect("eventpoll record");
    let mut got: Vec<(i64, u64)> = p.targets.iter().map(|t| (t.fd as i64, t.data)).collect();
    got.sort();
    let mut want = vec![(efd, 0xE1), (sp1, 0x51)];
    want.sort();
    assert_eq!(got, want);
    let crit_tfds = cf[&ep]["epfd"]["tfd"].as_array().unwrap();
    for t in &p.targets {
        let c = crit_tfds
            .iter()
            .find(|c| u(&c["tfd"]) as i32 == t.fd)
            .unwrap();
        assert_eq!(t.events as u64, u(&c["events"]));
        assert_eq!(t.data, u(&c["data"]));
        assert_eq!(t.events & 1, 1, "EPOLLIN");
    }

    // timerfd: CLOCK_MONOTONIC every 250 ms; the time left as crit has it.
    let t = fds[&tfd].records.timerfd.expect("timerfd record");
    let ct = &cf[&tfd]["tfd"];
    assert_eq!(
        (t.clock, t.interval_sec, t.interval_nsec),
        (1, 0, 250_000_000)
    );
    assert_eq!(
        (t.value_sec, t.value_nsec, t.ticks),
        (u(&ct["vsec"]), u(&ct["vnsec"]), u(&ct["ticks"]))
    );
    assert!(t.value_sec == 0 && t.value_nsec <= 250_000_000);

    // signalfd: SIGUSR2 (12).
    let s = fds[&sfd].records.signalfd.expect("signalfd record");
    assert_eq!(s.mask, 1 << 11);
    assert_eq!(s.mask, u(&cf[&sfd]["sgfd"]["sigmask"]));

    // inotify: watch 1 on the work directory, IN_CREATE|IN_DELETE.
    let i = fds[&ify].records.inotify.as_ref().expect("inotify record");
    assert_eq!(i.watches.len(), 1);
    assert_eq!((i.watches[0].wd, i.watches[0].mask), (1, 0x100 | 0x200));
    assert_eq!(i.watches[0].path, d.work.to_str().unwrap().as_bytes());
    assert_eq!(
        i.watches[0].mask as u64,
        u(&cf[&ify]["ify"]["wd"][0]["mask"])
    );

    // Timers: ITIMER_REAL 1000 s every 100 s; the POSIX timer (SIGRTMIN+3, 0x1234).
    let core = crit(&crit_bin, &d.dir.join(format!("core-{pid}.img")));
    let ctm = &core["entries"][0]["tc"]["timers"];
    let it = task.records.itimers.expect("itimers record");
    let real = it.timers[0];
    assert_eq!(real.interval, (100, 0));
    assert!((900..=1000).contains(&real.value.0), "{real:?}");
    assert_eq!(
        (real.value.0 as u64, real.value.1 as u64),
        (u(&ctm["real"]["vsec"]), u(&ctm["real"]["vusec"]))
    );
    let pt = task
        .records
        .posix_timers
        .as_ref()
        .expect("posix_timers record");
    assert_eq!(pt.timers.len(), 1);
    let p0 = pt.timers[0];
    let sigrtmin = libc::SIGRTMIN();
    assert_eq!(
        (p0.id as i64, p0.clock, p0.notify, p0.signo, p0.value),
        (n[14], 1, 0, sigrtmin + 3, 0x1234)
    );
    assert_eq!(p0.interval, (2, 500_000_000));
    let cp = &ctm["posix"][0];
    assert_eq!(
        (p0.left.0 as u64, p0.left.1 as u64, p0.overrun as u64),
        (u(&cp["vsec"]), u(&cp["vnsec"]), u(&cp["overrun"]))
    );

    // Process and thread attributes: oom_score_adj 123, nice 5.
    let a = task.records.attrs.expect("process_attrs record");
    assert_eq!(a.oom_score_adj, 123);
    assert_eq!(
        a.oom_score_adj as i64,
        core["entries"][0]["tc"]["oom_score_adj"].as_i64().unwrap()
    );
    // Rlimits: RLIMIT_NOFILE (7) soft 777; all 16 as crit has them.
    let rl = evs
        .iter()
        .find_map(|e| match e {
            Event::Rlimits(r) => Some(r),
            _ => None,
        })
        .expect("rlimits");
    assert_eq!(rl[7].cur, 777);
    let crl = core["entries"][0]["tc"]["rlimits"]["rlimits"]
        .as_array()
        .unwrap();
    assert_eq!(rl.len(), crl.len());
    for (i, (m, c)) in rl.iter().zip(crl).enumerate() {
        assert_eq!((m.cur, m.max), (u(&c["cur"]), u(&c["max"])), "rlimit {i}");
    }
    let mm = crit(&crit_bin, &d.dir.join(format!("mm-{pid}.img")));
    assert_eq!(a.dumpable as u64, u(&mm["entries"][0]["dumpable"]));
    assert_eq!(a.dumpable, 1);
    assert_eq!(a.child_subreaper, 0);
    let ta = thread.records.attrs.as_ref().expect("thread_attrs record");
    assert_eq!((ta.nice, ta.policy), (5, 0));
    assert_eq!(
        ta.nice as i64,
        core["entries"][0]["thread_core"]["sched_nice"]
            .as_i64()
            .unwrap()
    );

    // Locks: the flock on DIR/flock's file, the POSIX write lock 10+20 through posixfd.
    let locks = crit(&crit_bin, &d.dir.join("filelocks.img"));
    assert_eq!(locks["entries"].as_array().unwrap().len(), 2);
    let fl = fds[&n[15]]
        .records
        .locks
        .as_ref()
        .expect("file_locks record");
    assert_eq!(fl.locks.len(), 1);
    assert_eq!(
        (fl.locks[0].kind, fl.locks[0].write),
        (ckpt_format::model::LOCK_FLOCK, true)
    );
    let pl = task
        .records
        .posix_locks
        .as_ref()
        .expect("posix_locks record");
    assert_eq!(pl.locks.len(), 1);
    let l = pl.locks[0];
    assert_eq!(
        (l.fd as i64, l.write, l.start, l.len),
        (n[16], true, 10, 20)
    );

    // The records survive native-1: encoded and decoded again, equal.
    let mut buf = Vec::new();
    {
        let mut dec = Decoder::new(&img).unwrap();
        let mut enc = ckpt_format::native::Encoder::new(&mut buf);
        ckpt_format::pump(&mut dec, &mut enc).unwrap();
    }
    let mut back = ckpt_format::open_slice(&buf).expect("native-1 reads back");
    let mut again: BTreeMap<u32, ckpt_format::model::FileRecords> = BTreeMap::new();
    let mut task_again = None;
    while let Some(e) = back.next_event().expect("native-1 event") {
        match e {
            Event::File(f) => {
                again.insert(f.id, f.records.clone());
            }
            Event::Task(t) => task_again = Some(t.records.clone()),
            _ => {}
        }
    }
    assert_eq!(task_again.as_ref(), Some(&task.records));
    for (id, f) in &files {
        assert_eq!(again[id], f.records, "file {id} through native-1");
    }
}

/// Append `msgs` (length-prefixed) to the image file `path`.
fn append<M: prost::Message>(path: &Path, msgs: &[M]) {
    let mut b = std::fs::read(path).unwrap();
    for m in msgs {
        let e = m.encode_to_vec();
        b.extend_from_slice(&(e.len() as u32).to_le_bytes());
        b.extend_from_slice(&e);
    }
    std::fs::write(path, b).unwrap();
}

/// CRIU 4.1.1 cannot dump inet or netlink sockets on this machine kind's kernel (its
/// getsockopt(SO_PASSCRED) fails on them), so their entries are written by the test into a
/// real dump, in CRIU's layout, from a real TCP connection of the test (addresses, ports,
/// inode) and crit decodes them beside ckpt-criu: the socket and tcp_connection records
/// (both queues, unsent bytes, sequence numbers, window) and a netlink socket's groups.
#[test]
fn inet_and_netlink_entries_map_as_crit_decodes_them() {
    let Some(d) = dumped() else {
        return;
    };
    let (_, crit_bin) = criu().unwrap();
    use ckpt_criu::pb;
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let c = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
    let (_s, _) = l.accept().unwrap();
    let (me, peer) = (c.local_addr().unwrap(), c.peer_addr().unwrap());
    let ino = std::fs::metadata(format!("/proc/self/fd/{}", c.as_raw_fd()))
        .unwrap()
        .ino() as u32;
    let word = |a: std::net::SocketAddr| match a.ip() {
        std::net::IpAddr::V4(v) => u32::from_le_bytes(v.octets()),
        _ => unreachable!(),
    };
    let opts = pb::SkOptsEntry {
        so_sndbuf: 2_626_560,
        so_rcvbuf: 131_072,
        so_keepalive: Some(true),
        ..Default::default()
    };
    let isk = pb::InetSkEntry {
        id: 1000,
        ino,
        family: 2,
        r#type: 1,
        proto: 6,
        state: 1,
        src_port: me.port() as u32,
        dst_port: peer.port() as u32,
        flags: 0o4002,
        src_addr: vec![word(me)],
        dst_addr: vec![word(peer)],
        opts: opts.clone(),
        tcp_opts: Some(pb::TcpOptsEntry {
            nodelay: Some(true),
            ..Default::default()
        }),
        ..Default::default()
    };
    let nlsk = pb::NetlinkSkEntry {
        id: 1001,
        ino: 4242,
        protocol: 0,
        flags: 2,
        portid: 777,
        groups: vec![0x11],
        opts,
        ..Default::default()
    };
    let files = d.dir.join("files.img");
    append(
        &files,
        &[
            pb::FileEntry {
                r#type: pb::FdTypes::Inetsk as i32,
                id: 1000,
                isk: Some(isk),
                ..Default::default()
            },
            pb::FileEntry {
                r#type: pb::FdTypes::Netlinksk as i32,
                id: 1001,
                nlsk: Some(nlsk),
                ..Default::default()
            },
        ],
    );
    let pid = d.n[0];
    let ids = crit(&crit_bin, &d.dir.join(format!("ids-{pid}.img")));
    let fdinfo = d
        .dir
        .join(format!("fdinfo-{}.img", u(&ids["entries"][0]["files_id"])));
    append(
        &fdinfo,
        &[
            pb::FdinfoEntry {
                id: 1000,
                flags: 0,
                r#type: pb::FdTypes::Inetsk as i32,
                fd: 100,
                ..Default::default()
            },
            pb::FdinfoEntry {
                id: 1001,
                flags: 1,
                r#type: pb::FdTypes::Netlinksk as i32,
                fd: 101,
                ..Default::default()
            },
        ],
    );
    // tcp-stream-INO.img: the magics, the entry, 3 bytes received, 5 sent (2 unsent).
    let ts = pb::TcpStreamEntry {
        inq_len: 3,
        inq_seq: 1000,
        outq_len: 5,
        outq_seq: 2000,
        opt_mask: 7,
        snd_wscale: 7,
        mss_clamp: 65483,
        rcv_wscale: Some(6),
        timestamp: Some(12345),
        unsq_len: Some(2),
        snd_wl1: Some(1),
        snd_wnd: Some(2),
        max_window: Some(3),
        rcv_wnd: Some(4),
        rcv_wup: Some(5),
        ..Default::default()
    };
    let stream = d.dir.join(format!("tcp-stream-{ino:x}.img"));
    let mut b = Vec::new();
    b.extend_from_slice(&ckpt_criu::magic::COMMON.to_le_bytes());
    b.extend_from_slice(&ckpt_criu::magic::TCP_STREAM.to_le_bytes());
    std::fs::write(&stream, &b).unwrap();
    append(&stream, &[ts]);
    let mut b = std::fs::read(&stream).unwrap();
    b.extend_from_slice(b"abchello");
    std::fs::write(&stream, b).unwrap();

    // fixtures/criu/objects.pack is this dump (see fixtures/criu/README.md).
    if let Some(to) = std::env::var_os("CKPT_CRIU_WRITE_PACK") {
        std::fs::write(to, ckpt_criu::set::pack_dir(&d.dir).unwrap()).unwrap();
    }
    let img = CriuImage::open(&d.dir).unwrap();
    let mut dec = Decoder::new(&img).unwrap();
    let mut evs = Vec::new();
    while let Some(e) = dec.next_event().unwrap() {
        evs.push(e.into_owned());
    }
    assert!(dec.losses().is_empty(), "{:?}", dec.losses());
    let mut files_by_id: BTreeMap<u32, &File> = BTreeMap::new();
    let mut fds: BTreeMap<i32, &File> = BTreeMap::new();
    for e in &evs {
        match e {
            Event::File(f) => {
                files_by_id.insert(f.id, f);
            }
            Event::Fd(fd) => {
                fds.insert(fd.fd, files_by_id[&fd.file]);
            }
            _ => {}
        }
    }
    let cf = crit(&crit_bin, &files);
    let entry = |id: u64| {
        cf["entries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| u(&e["id"]) == id)
            .unwrap()
            .clone()
    };
    let ci = entry(1000);
    let r = &fds[&100].records.sock;
    let s = r.socket.as_ref().expect("inet socket");
    assert_eq!(fds[&100].path, format!("socket:[{ino}]").as_bytes());
    assert_eq!((s.family, s.ty, s.protocol, s.state), (2, 1, 6, 1));
    assert_eq!(s.ino as u64, u(&ci["isk"]["ino"]));
    assert_eq!(s.local.to_string(), me.to_string());
    assert_eq!(s.peer.as_ref().unwrap().to_string(), peer.to_string());
    // crit prints the addresses from the words as dotted quads.
    let o = std::process::Command::new(&crit_bin)
        .args(["show"])
        .arg(&files)
        .output()
        .unwrap();
    assert!(o.status.success());
    let shown: Value = serde_json::from_slice(&o.stdout).unwrap();
    let si = shown["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == 1000)
        .unwrap();
    assert_eq!(si["isk"]["src_addr"][0], me.ip().to_string());
    assert_eq!(si["isk"]["dst_addr"][0], peer.ip().to_string());
    assert_eq!(u(&ci["isk"]["dst_port"]), peer.port() as u64);
    assert!(s.options.keepalive);
    assert_eq!(s.options.tcp_nodelay, Some(true));
    assert_eq!(s.options.sndbuf, 2_626_560);
    let t = r.tcp.as_ref().expect("tcp_connection");
    let ct = crit(&crit_bin, &stream);
    let ce = &ct["entries"][0];
    assert_eq!(
        (t.inq_seq, t.outq_seq, t.mss, t.unsent),
        (
            u(&ce["inq_seq"]) as u32,
            u(&ce["outq_seq"]) as u32,
            u(&ce["mss_clamp"]) as u32,
            u(&ce["unsq_len"]) as u32
        )
    );
    assert_eq!((&t.inq[..], &t.outq[..]), (&b"abc"[..], &b"hello"[..]));
    assert_eq!((t.options, t.snd_wscale, t.rcv_wscale), (7, 7, 6));
    assert_eq!(t.timestamp, 12345);
    assert_eq!(t.window.map(|w| w.rcv_wup), Some(5));
    assert!(t.netlock.is_empty());

    let cn = entry(1001);
    let n = &fds[&101].records.sock;
    let s = n.socket.as_ref().expect("netlink socket");
    assert_eq!((s.family, s.protocol), (16, 0));
    assert_eq!(s.ino as u64, u(&cn["nlsk"]["ino"]));
    assert_eq!(
        s.local,
        ckpt_format::model::SockAddr::Netlink(777, u(&cn["nlsk"]["groups"][0]) as u32)
    );
    // groups 0x11: groups 1 and 5.
    assert_eq!(n.netlink.as_ref().unwrap().groups, vec![1, 5]);
}

const TTY_PY: &str = r#"
import ctypes, fcntl, os, struct, sys, termios, time
ctypes.CDLL(None).prctl(1, 10, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGUSR1
m, s = os.openpty()
a = termios.tcgetattr(s)
a[3] &= ~(termios.ECHO | termios.ICANON)
a[0] |= termios.IXOFF
a[6][termios.VMIN] = 3
termios.tcsetattr(s, termios.TCSANOW, a)
fcntl.ioctl(s, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 111, 7, 9))
raw = fcntl.ioctl(s, termios.TCGETS, bytes(64))[:36]
with open(sys.argv[1] + ".tmp", "w") as o:
    o.write("%s %s\n" % (os.ttyname(s), raw.hex()))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(1000)
"#;

/// A python program holding both ends of a pty whose line settings (no echo, not
/// canonical, IXOFF, VMIN 3) and window size (33x111) it set, and a parent-death signal:
/// the slave is a `tty` record with the kernel's `TCGETS` bytes as the program read them,
/// the window size and the speeds of its baud bits, as crit decodes tty-info.img; the
/// master is a named loss; the signal is the task's `parent_death_signal`.
#[test]
fn a_pty_slave_maps_onto_the_tty_record() {
    let Some((criu_bin, crit_bin)) = criu() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let ready = tmp.path().join("ready");
    let w = Workload::start(&["/usr/bin/python3", "-c", TTY_PY, ready.to_str().unwrap()]);
    wait_for("the pty workload", || ready.exists());
    let info = std::fs::read_to_string(&ready).unwrap();
    let (name, raw) = info.trim().split_once(' ').unwrap();
    let raw: Vec<u8> = (0..raw.len() / 2)
        .map(|i| u8::from_str_radix(&raw[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    let index: i32 = name.trim_start_matches("/dev/pts/").parse().unwrap();
    let dir = tmp.path().join("dump");
    dump(&criu_bin, w.pid, &dir, &[]);

    let img = CriuImage::open(&dir).unwrap();
    let mut dec = Decoder::new(&img).unwrap();
    let mut evs = Vec::new();
    while let Some(e) = dec.next_event().unwrap() {
        evs.push(e.into_owned());
    }
    let losses = dec.losses().to_vec();
    assert_eq!(losses.len(), 1, "{losses:?}");
    assert!(
        losses[0].contains(&format!("the master end of pty {index}")),
        "{losses:?}"
    );
    let ttys: Vec<&File> = evs
        .iter()
        .filter_map(|e| match e {
            Event::File(f) if f.records.tty.is_some() => Some(f),
            _ => None,
        })
        .collect();
    assert_eq!(ttys.len(), 1);
    let f = ttys[0];
    assert_eq!(f.path, name.as_bytes());
    assert_eq!(f.kind, ckpt_format::FileKind::CharDevice);
    let t = f.records.tty.as_ref().unwrap();
    assert!(!t.master);
    assert_eq!(t.index, index);
    assert_eq!(t.winsize, [33, 111, 7, 9]);
    assert_eq!(t.termios.len(), 44);
    assert_eq!(&t.termios[..36], &raw[..], "TCGETS bytes");
    let speed = |at: usize| u32::from_le_bytes(t.termios[at..at + 4].try_into().unwrap());
    assert_eq!((speed(36), speed(40)), (38400, 38400));
    let lflag = u32::from_le_bytes(t.termios[12..16].try_into().unwrap());
    assert_eq!(lflag & 0o12, 0, "ECHO and ICANON off");

    let ti = crit(&crit_bin, &dir.join("tty-info.img"));
    let slave = ti["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| u(&e["rdev"]) >> 8 == 136 + (index as u64 >> 8))
        .expect("the slave's tty-info entry");
    assert_eq!(u(&slave["pty"]["index"]) as i32, index);
    assert_eq!(u(&slave["winsize"]["ws_row"]), 33);
    assert_eq!(u(&slave["termios"]["c_lflag"]) as u32, lflag);
    assert_eq!(
        (t.sid as u64, t.pgrp as u64),
        (u(&slave["sid"]), u(&slave["pgrp"]))
    );

    let task = evs
        .iter()
        .find_map(|e| match e {
            Event::Task(t) => Some(t),
            _ => None,
        })
        .unwrap();
    assert_eq!(task.records.pdeath_signal.map(|p| p.sig), Some(10));
    let core = crit(&crit_bin, &dir.join(format!("core-{}.img", task.pid)));
    assert_eq!(u(&core["entries"][0]["thread_core"]["pdeath_sig"]), 10);
}
