//! A real CRIU 4.1.1 dump (scripts/build-criu.sh) converted to native-1 by ckpt-criu and
//! restored by ckpt-restore: the process (a python loop) continues where CRIU stopped it.

mod common;

#[path = "../../ckpt-criu/tests/common/mod.rs"]
mod criu_common;

use common::{restore_all, Procs};
use std::path::Path;
use std::time::Duration;

fn counter(path: &Path) -> u64 {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn a_converted_criu_dump_of_a_python_loop_continues() {
    let Some((criu, _)) = criu_common::criu() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("count");
    // One process, no children (a shell's `sleep` children take pids a restore of the tree
    // would need back).
    let script = format!(
        "import os, time\ni = 0\nwhile True:\n    i += 1\n    open('{0}.t', 'w').write(str(i))\n    os.rename('{0}.t', '{0}')\n    time.sleep(0.05)\n",
        out.display()
    );
    let w = criu_common::Workload::start(&["/usr/bin/python3", "-c", &script]);
    criu_common::wait_for("the loop to count", || counter(&out) >= 3);
    let dir = tmp.path().join("dump");
    criu_common::dump(&criu, w.pid, &dir, &[]);
    let at_dump = counter(&out);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(counter(&out), at_dump, "the dump stopped the loop");

    // CRIU dump → native-1.
    let img = ckpt_criu::CriuImage::open(&dir).unwrap();
    let mut dec = ckpt_criu::Decoder::new(&img).unwrap();
    let native = tmp.path().join("loop.img");
    {
        let f = std::fs::File::create(&native).unwrap();
        let mut enc = ckpt_format::native::Encoder::new(std::io::BufWriter::new(f));
        ckpt_format::pump(&mut dec, &mut enc).unwrap();
    }
    assert!(dec.losses().is_empty(), "{:?}", dec.losses());
    drop(w); // reap the dumped (killed) process so that its pid is free

    let pids = restore_all(&native, &[]);
    let _guard = Procs(pids.clone());
    assert_eq!(pids.len(), tree_len(&img), "one pid per dumped task");
    criu_common::wait_for("the restored loop to count on", || {
        counter(&out) >= at_dump + 5
    });
    // It counts on from where it was, not from 1.
    assert!(counter(&out) > at_dump);
}

fn tree_len(img: &ckpt_criu::CriuImage) -> usize {
    let b = img.file("pstree.img").unwrap();
    let t: Vec<ckpt_criu::pb::PstreeEntry> = ckpt_criu::ImageFile::new("pstree.img", b)
        .unwrap()
        .all()
        .unwrap();
    t.len()
}

/// Convert the CRIU dump in `dir` to native-1 at `out` (strict: nothing may be lost).
fn convert(dir: &Path, out: &Path) {
    let img = ckpt_criu::CriuImage::open(dir).unwrap();
    let mut dec = ckpt_criu::Decoder::new(&img).unwrap();
    let f = std::fs::File::create(out).unwrap();
    let mut enc = ckpt_format::native::Encoder::new(std::io::BufWriter::new(f));
    ckpt_format::pump(&mut dec, &mut enc).unwrap();
    assert!(dec.losses().is_empty(), "{:?}", dec.losses());
}

/// fixtures/progs/restore_criu.c (an epoll set over an eventfd and a unix socket pair with
/// bytes queued both ways, a timerfd, a signalfd, an inotify watch, interval and POSIX
/// timers, nice 5, oom_score_adj 123, a flock and a POSIX lock), dumped mid-run by CRIU
/// 4.1.1, converted to native-1 without loss and restored by ckpt-restore: it goes on
/// from the step where CRIU stopped it, every step's self-check passes, and at its end the
/// socket pair's queued bytes come out in order before what it sends then (PASS).
#[test]
fn a_converted_criu_dump_of_an_event_loop_with_a_socket_pair_checks_itself() {
    let Some((criu, _)) = criu_common::criu() else {
        return;
    };
    common::build_progs();
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let ready = tmp.path().join("ready");
    let out = tmp.path().join("out");
    let mut child = std::process::Command::new("setsid")
        .arg(common::progs_dir().join("restore_criu"))
        .args(["150", ready.to_str().unwrap(), work.to_str().unwrap()])
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    common::wait_lines(&out, 10);
    let dir = tmp.path().join("dump");
    criu_common::dump(&criu, child.id(), &dir, &["--file-locks"]);
    let _ = child.wait(); // the dump killed it
    let before = std::fs::read_to_string(&out).unwrap();
    let steps_before = before.lines().count();
    assert!(!before.contains("FAIL"), "{before}");

    let native = tmp.path().join("evloop.img");
    convert(&dir, &native);
    let pids = restore_all(&native, &[]);
    let _guard = Procs(pids.clone());
    assert_eq!(pids.len(), 1);
    assert_eq!(
        common::wait_exit(pids[0], Duration::from_secs(120)),
        0,
        "{}",
        std::fs::read_to_string(&out).unwrap()
    );
    let after = std::fs::read_to_string(&out).unwrap();
    assert!(!after.contains("FAIL"), "{after}");
    let lines: Vec<&str> = after.lines().collect();
    // Steps 0..150 once each, in order (the restored process went on from where CRIU
    // stopped it, not from 0), then PASS.
    let want: Vec<String> = (0..150)
        .map(|i| format!("{i} ok"))
        .chain(["PASS".to_string()])
        .collect();
    assert_eq!(lines, want, "after {steps_before} steps before the dump");
}

/// A unix socket whose peer was outside the dump (CRIU's --ext-unix-sk: a datagram
/// socket connected to one the test binds): the conversion carries it with its peer's
/// inode, and ckpt-restore refuses the image before creating anything, naming the socket
/// and why (exit 1).
#[test]
fn a_criu_dump_with_a_socket_peer_outside_is_refused_by_name() {
    let Some((criu, _)) = criu_common::criu() else {
        return;
    };
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("peer.sock");
    let ours = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
    let script = format!(
        "import socket, time\ns = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\ns.connect({:?})\ns.send(b'hi')\ntime.sleep(1000)\n",
        path.to_str().unwrap()
    );
    let w = criu_common::Workload::start(&["/usr/bin/python3", "-c", &script]);
    let mut buf = [0u8; 8];
    assert_eq!(ours.recv(&mut buf).unwrap(), 2, "the workload is connected");
    let dir = tmp.path().join("dump");
    criu_common::dump(&criu, w.pid, &dir, &["--ext-unix-sk"]);
    drop(w);
    let native = tmp.path().join("ext.img");
    convert(&dir, &native);
    let (code, out, err) = common::run_restore(&[native.to_str().unwrap()]);
    assert_eq!(code, 1, "stdout {out} stderr {err}");
    assert!(out.is_empty(), "nothing restored: {out}");
    let ino = std::fs::metadata(format!("/proc/self/fd/{}", {
        use std::os::fd::AsRawFd;
        ours.as_raw_fd()
    }))
    .unwrap()
    .ino();
    assert!(
        err.contains(&format!("peer socket:[{ino}] outside the image")),
        "{err}"
    );
}

/// fixtures/progs/restore_asyncio.py (python3's asyncio: an epoll loop whose self-pipe is
/// a unix socket pair, asyncio.sleep, a call_later chain, a call_at deadline) dumped by
/// CRIU mid-run, converted without loss and restored by ckpt-restore: its output equals an
/// uninterrupted run's, ending in PASS.
#[test]
fn a_converted_criu_dump_of_python_asyncio_keeps_its_schedule() {
    let Some((criu, _)) = criu_common::criu() else {
        return;
    };
    common::build_progs(); // also makes us the subreaper of the restored process
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/progs/restore_asyncio.py")
        .canonicalize()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let run = |out: &Path| {
        std::process::Command::new("setsid")
            .arg("/usr/bin/python3")
            .arg(&script)
            .arg("200")
            .current_dir(tmp.path())
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(out).unwrap())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let ref_out = tmp.path().join("ref.out");
    let mut r = run(&ref_out);
    assert!(r.wait().unwrap().success());
    let want = std::fs::read_to_string(&ref_out).unwrap();
    assert!(want.ends_with("199 ok\nPASS\n"), "{want}");

    let out = tmp.path().join("run.out");
    let mut child = run(&out);
    common::wait_lines(&out, 30);
    let dir = tmp.path().join("dump");
    criu_common::dump(&criu, child.id(), &dir, &[]);
    let _ = child.wait();
    let native = tmp.path().join("asyncio.img");
    convert(&dir, &native);
    let pids = restore_all(&native, &[]);
    let _guard = Procs(pids.clone());
    assert_eq!(pids.len(), 1);
    assert_eq!(common::wait_exit(pids[0], Duration::from_secs(120)), 0);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), want);
}
