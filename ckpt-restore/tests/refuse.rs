//! Every incompatibility and every broken image is refused before any process is
//! created: ckpt-restore exits 1 with a message naming what differs, and the original
//! pid (free, default mode would take it) stays unused.
mod common;
use ckpt_format::{Event, Revision, VmaKind};
use common::*;
use std::borrow::Cow;
use std::path::Path;

/// Capture a running counter (killed and reaped); returns (image bytes, original pid).
fn image(dir: &Path) -> (Vec<u8>, i32) {
    let out = dir.join("run.out");
    let pid = spawn("restore_counter", &["100000", "1"], &out, dir);
    let _procs = Procs(vec![pid]);
    wait_lines(&out, 3);
    let img = dir.join("img");
    capture_kill(pid, &img);
    (std::fs::read(&img).unwrap(), pid)
}

/// Re-encode `bytes` with `f` applied to every event (`f` gets the kind of the current VMA).
fn rewrite(bytes: &[u8], mut f: impl FnMut(&mut Event<'static>, Option<VmaKind>)) -> Vec<u8> {
    let mut src = ckpt_format::open_slice(bytes).unwrap();
    let mut out = Vec::new();
    {
        let mut enc = ckpt_format::encoder(Revision::Native1, &mut out);
        let mut kind = None;
        while let Some(ev) = src.next_event().unwrap() {
            let mut ev = ev.into_owned();
            if let Event::Vma(v) = &ev {
                kind = Some(v.kind);
            }
            f(&mut ev, kind);
            if matches!(ev, Event::VmaEnd) {
                kind = None;
            }
            enc.event(&ev).unwrap();
        }
        enc.finish().unwrap();
    }
    out
}

fn refused(dir: &Path, bytes: &[u8], pid: i32, expect: &str) {
    let p = dir.join("bad.img");
    std::fs::write(&p, bytes).unwrap();
    let (code, out, err) = run_restore(&[p.to_str().unwrap()]);
    assert_eq!(
        code, 1,
        "expected refusal ({expect}); stdout {out:?} stderr {err:?}"
    );
    assert!(err.contains(expect), "message {err:?} lacks {expect:?}");
    assert!(out.is_empty());
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "a process was created for {expect}"
    );
}

#[test]
fn broken_and_incompatible_images_are_refused_before_any_process() {
    let dir = tempfile::tempdir().unwrap();
    let (good, pid) = image(dir.path());

    // Broken: truncated, a flipped byte in page data, garbage.
    refused(dir.path(), &good[..good.len() / 2], pid, "broken image");
    let mut flip = good.clone();
    let at = good.len() * 3 / 4;
    flip[at] ^= 0x55;
    refused(dir.path(), &flip, pid, "broken image");
    refused(dir.path(), b"not an image at all", pid, "broken image");
    refused(dir.path(), &good[..0], pid, "broken image");

    // Incomplete: the writer reported an error.
    let mut with_err = rewrite(&good, |_, _| {});
    with_err = {
        let mut src = ckpt_format::open_slice(&with_err).unwrap();
        let mut out = Vec::new();
        let mut enc = ckpt_format::encoder(Revision::Native1, &mut out);
        while let Some(ev) = src.next_event().unwrap() {
            if matches!(ev, Event::Tail) {
                enc.event(&Event::Error(b"disk full".to_vec())).unwrap();
            }
            enc.event(&ev).unwrap();
        }
        enc.finish().unwrap();
        drop(enc);
        out
    };
    refused(dir.path(), &with_err, pid, "incomplete image");

    // Architecture.
    let arch = rewrite(&good, |ev, _| {
        if let Event::Header(h) = ev {
            h.arch = ckpt_format::Arch::X86_32;
        }
    });
    refused(dir.path(), &arch, pid, "image is for x86_32");

    // XSAVE state this kernel does not enable, in use (AMX tile data, bit 18, in the
    // area's xstate_bv): refused by name. (Enabled but unused, it would be dropped.)
    let xs = rewrite(&good, |ev, _| {
        if let Event::Thread(t) = ev {
            if let Some(f) = &mut t.fpu {
                f.xfeatures |= 1 << 18;
                f.data[512 + 2] |= 1 << 2;
            }
        }
    });
    refused(
        dir.path(),
        &xs,
        pid,
        "XSAVE state of AMX TILEDATA (18) in use, which this kernel does not enable",
    );
    // An rseq area no kernel takes back (16 bytes; a longer one is refused the same way on
    // a kernel before 6.3, which reports no AT_RSEQ_FEATURE_SIZE): refused by name.
    let mut tid = 0;
    let rs = rewrite(&good, |ev, _| {
        if let Event::Thread(t) = ev {
            let q = t.records.rseq.as_mut().expect("glibc registers rseq");
            assert_eq!(q.len, 32);
            q.len = 16;
            tid = t.tid;
        }
    });
    refused(
        dir.path(),
        &rs,
        pid,
        &format!(
            "thread {tid}: rseq area: registered with 16 bytes; no kernel accepts fewer than 32"
        ),
    );
    // XSAVE area of another size.
    let xsz = rewrite(&good, |ev, _| {
        if let Event::Thread(t) = ev {
            if let Some(f) = &mut t.fpu {
                f.data.extend_from_slice(&[0u8; 64]);
            }
        }
    });
    refused(dir.path(), &xsz, pid, "XSAVE area of");

    // Pending-signal queues that cannot be queued again: a torn siginfo, a signal number
    // outside 1..=64, a pending SIGKILL, an integer where bytes belong.
    let info = |sig: i32| {
        let mut b = vec![0u8; 128];
        b[..4].copy_from_slice(&sig.to_le_bytes());
        b
    };
    // (The torn and integer ones as an image from before typed records would carry
    // them, in the keys of its extras: the decoder refuses them.)
    let torn = rewrite(&good, |ev, _| {
        if let Event::Thread(t) = ev {
            t.records.pending = None;
            t.extras.set_bytes("siginfo_pending", &info(10)[..100]);
        }
    });
    refused(dir.path(), &torn, pid, "siginfo_pending: 100 bytes");
    let queue = |q: Vec<Vec<u8>>| ckpt_format::SharedPending {
        queue: q.into_iter().map(ckpt_format::SigInfo).collect(),
    };
    let big = rewrite(&good, |ev, _| {
        if let Event::Task(t) = ev {
            t.records.shared_pending = Some(queue(vec![info(35), info(65)]));
        }
    });
    refused(dir.path(), &big, pid, "entry 1 has signal number 65");
    let killed = rewrite(&good, |ev, _| {
        if let Event::Task(t) = ev {
            t.records.shared_pending = Some(queue(vec![info(libc::SIGKILL)]));
        }
    });
    refused(dir.path(), &killed, pid, "pending SIGKILL");
    let int = rewrite(&good, |ev, _| {
        if let Event::Thread(t) = ev {
            t.records.pending = None;
            t.extras.set_u64("siginfo_pending", 10);
        }
    });
    refused(
        dir.path(),
        &int,
        pid,
        "an integer where siginfo bytes belong",
    );

    // Capabilities beyond the caller's (bit 63 exists nowhere) and an inconsistent image
    // (effective outside permitted): never more than the caller has.
    let caps = rewrite(&good, |ev, _| {
        if let Event::Task(t) = ev {
            let c = t.records.caps.as_mut().unwrap();
            c.bnd |= 1 << 63;
        }
    });
    refused(
        dir.path(),
        &caps,
        pid,
        "bounding-set capabilities the caller lacks: 0x8000000000000000",
    );
    let eff = rewrite(&good, |ev, _| {
        if let Event::Task(t) = ev {
            t.records.caps.as_mut().unwrap().prm = 0;
        }
    });
    refused(
        dir.path(),
        &eff,
        pid,
        "effective capabilities outside the permitted set",
    );

    // A hard limit above ours: refused up front, naming the limit and CAP_SYS_RESOURCE,
    // when we lack it (this machine kind's root does); with it, prlimit would succeed.
    let have_res = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(|v| u64::from_str_radix(v.trim(), 16).unwrap() & (1 << 24) != 0)
        .unwrap();
    let mut our_nofile = [0u64; 2];
    for l in std::fs::read_to_string("/proc/self/limits")
        .unwrap()
        .lines()
    {
        if l.starts_with("Max open files") {
            let v: Vec<&str> = l.split_whitespace().collect();
            our_nofile = [v[3].parse().unwrap(), v[4].parse().unwrap()];
        }
    }
    if !have_res {
        let hi = rewrite(&good, |ev, _| {
            if let Event::Rlimits(r) = ev {
                r[7].max = our_nofile[1] + 1;
            }
        });
        refused(dir.path(), &hi, pid, "hard limit RLIMIT_NOFILE is");
        refused(dir.path(), &hi, pid, "needs CAP_SYS_RESOURCE");
    }

    // A vdso that is not ours and not an ELF object either: it cannot be proxied (another
    // kernel's vdso is, tests/vdso_proxy.rs).
    let vd = rewrite(&good, |ev, kind| {
        if let (Event::Pages(p), Some(VmaKind::Vdso)) = (ev, kind) {
            let mut d = p.data.to_vec();
            d[1] ^= 0xff;
            p.data = Cow::Owned(d);
        }
    });
    refused(
        dir.path(),
        &vd,
        pid,
        "vdso of another kernel build cannot be proxied: the image's vdso: not an ELF64 object",
    );

    // A mapped file that is not there.
    let nofile = rewrite(&good, |ev, _| {
        if let Event::Vma(v) = ev {
            if v.kind == VmaKind::File {
                v.file = Some(b"/nonexistent/ckpt-restore-test".to_vec());
            }
        }
    });
    refused(dir.path(), &nofile, pid, "/nonexistent/ckpt-restore-test");

    // A socket fd.
    let sock = rewrite(&good, |ev, _| {
        if let Event::File(f) = ev {
            f.kind = ckpt_format::FileKind::Socket;
        }
    });
    refused(dir.path(), &sock, pid, "is a socket");

    // The untouched image restores (and the pid is the original one).
    let p = dir.path().join("good.img");
    std::fs::write(&p, &good).unwrap();
    let new = restore(&p, &[]);
    let _procs = Procs(vec![new]);
    assert_eq!(new, pid);
}

#[test]
fn pid_same_refuses_a_taken_pid_and_pid_any_does_not_ask() {
    let dir = tempfile::tempdir().unwrap();
    let (good, pid) = image(dir.path());
    let p = dir.path().join("good.img");
    std::fs::write(&p, &good).unwrap();
    let first = restore(&p, &[]);
    let mut procs = Procs(vec![first]);
    assert_eq!(first, pid);
    // The pid is taken now.
    let (code, out, err) = run_restore(&["--pid-same", p.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("pid {pid} is not available")),
        "{err}"
    );
    assert!(out.is_empty());
    let (code, out, err) = run_restore(&["--pid-any", "--json", p.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let second = v["pids"][0].as_i64().unwrap() as i32;
    procs.0.push(second);
    assert_ne!(second, pid);
    assert!(Path::new(&format!("/proc/{second}")).exists());
}

#[test]
fn root_dir_confines_every_path() {
    let dir = tempfile::tempdir().unwrap();
    let (good, pid) = image(dir.path());
    let p = dir.path().join("good.img");
    std::fs::write(&p, &good).unwrap();
    // A root holding nothing but escape attempts: a symlink to / and one to ../..
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    std::os::unix::fs::symlink("/", root.join("usr")).unwrap();
    std::os::unix::fs::symlink("../../../../..", root.join("tmp")).unwrap();
    let (code, out, err) = run_restore(&["--root", root.to_str().unwrap(), p.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("files: opening"), "{err}");
    assert!(out.is_empty());
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
}

/// Capture `restore_tree` (root → A → B) into DIR/tree.img and kill it; returns the
/// image path and the three pids (all gone).
fn captured_tree(dir: &Path) -> (std::path::PathBuf, i32, i32, i32) {
    let out = dir.join("run.out");
    let root = spawn("restore_tree", &["100000"], &out, dir);
    let mut procs = Procs(vec![root]);
    wait_lines(&out, 3);
    let (a, b) = tree_members(root);
    let img = dir.join("tree.img");
    capture_kill_tree(root, &img, &[root, a, b]);
    procs.0.clear();
    (img, root, a, b)
}

/// A process tree the kernel's rules cannot rebuild is refused up front, with the reason.
#[test]
fn impossible_trees_are_refused_before_any_process() {
    let dir = tempfile::tempdir().unwrap();
    let (img, root, a, b) = captured_tree(dir.path());
    let good = std::fs::read(&img).unwrap();
    let edit = |pid: i32, f: &dyn Fn(&mut ckpt_format::Task)| {
        rewrite(&good, |ev, _| {
            if let Event::Task(t) = ev {
                if t.pid == pid {
                    f(t);
                }
            }
        })
    };
    // B in a session that is neither its parent's nor its own.
    refused(
        dir.path(),
        &edit(b, &|t| t.sid = 4_000_000),
        root,
        "does not lead its session",
    );
    // A in a process group whose leader is not in the image and is not root's.
    refused(
        dir.path(),
        &edit(a, &|t| t.pgid = 4_000_001),
        root,
        "whose leader is not in the image",
    );
    // A leading its session while in another process group.
    refused(
        dir.path(),
        &edit(a, &|t| {
            t.sid = a;
            t.pgid = root;
        }),
        root,
        "a session leader always leads its group",
    );
    // B as a zombie.
    refused(dir.path(), &edit(b, &|t| t.exit_state = 32), root, "zombie");
}

/// A tree whose restore fails half-way (B's pid is taken and `--pid-same` forbids
/// another) leaves nothing behind: the processes already built are killed before they
/// ran, and exit code 1 names the pid.
#[test]
fn tree_failing_half_way_leaves_no_process() {
    let dir = tempfile::tempdir().unwrap();
    let (img, root, a, b) = captured_tree(dir.path());
    // Hold B's pid (the holder's child is orphaned to us, the subreaper).
    let held = std::process::Command::new(progs_dir().join("restore_holdpid"))
        .arg(b.to_string())
        .output()
        .unwrap();
    assert!(held.status.success(), "{held:?}");
    assert_eq!(String::from_utf8_lossy(&held.stdout), format!("held {b}\n"));
    let _procs = Procs(vec![b]);

    let (code, stdout, err) = run_restore(&["--pid-same", img.to_str().unwrap()]);
    assert_eq!(code, 1, "stdout {stdout:?} stderr {err:?}");
    assert!(err.contains(&format!("pid {b} is not available")), "{err}");
    assert!(stdout.is_empty());
    // Root and A were built (they are not running: killed while stopped); they are
    // gone once reaped.
    wait_gone(&[root, a]);
    // The holder is untouched.
    assert_eq!(ids_of(b).0, std::process::id() as i32);
}

/// Issue 15 point 6: an image with objects recorded as unsupported
/// (`ckpt-capture --allow-unsupported`) restores without them, and says so on stderr
/// every time, naming each (it used to say nothing).
#[test]
fn left_out_objects_are_listed_on_every_restore() {
    let dir = tempfile::tempdir().unwrap();
    let (good, _pid) = image(dir.path());
    // Add a socket and an eventfd recorded as unsupported, as fds 7 and 9 of the task.
    let mut extra_id = 1000;
    let with = {
        let mut src = ckpt_format::open_slice(&good).unwrap();
        let mut out = Vec::new();
        let mut enc = ckpt_format::encoder(Revision::Native1, &mut out);
        while let Some(ev) = src.next_event().unwrap() {
            let ev = ev.into_owned();
            if matches!(ev, Event::Tail) {
                for (fd, kind, path) in [
                    (7, ckpt_format::FileKind::Socket, &b"socket:[4242]"[..]),
                    (
                        9,
                        ckpt_format::FileKind::Other,
                        &b"anon_inode:[eventfd]"[..],
                    ),
                ] {
                    extra_id += 1;
                    enc.event(&Event::File(ckpt_format::File {
                        id: extra_id,
                        kind,
                        path: path.to_vec(),
                        flags: 2,
                        mode: 0,
                        pos: 0,
                        pipe: None,
                        records: ckpt_format::FileRecords {
                            unsupported: Some(ckpt_format::Unsupported),
                            ..Default::default()
                        },
                        extras: Default::default(),
                    }))
                    .unwrap();
                    enc.event(&Event::Fd(ckpt_format::Fd {
                        fd,
                        cloexec: false,
                        file: extra_id,
                    }))
                    .unwrap();
                }
            }
            enc.event(&ev).unwrap();
        }
        enc.finish().unwrap();
        drop(enc);
        out
    };
    let p = dir.path().join("with.img");
    std::fs::write(&p, &with).unwrap();
    for _ in 0..2 {
        let (code, out, err) = run_restore(&["--pid-any", p.to_str().unwrap()]);
        assert_eq!(code, 0, "{err}");
        let pid: i32 = out.trim().parse().unwrap();
        let _procs = Procs(vec![pid]);
        assert!(
            err.contains("left out") && err.contains("fd 7 (socket, socket:[4242])"),
            "{err}"
        );
        assert!(err.contains("fd 9 (other, anon_inode:[eventfd])"), "{err}");
        assert!(!Path::new(&format!("/proc/{pid}/fd/7")).exists());
        assert!(!Path::new(&format!("/proc/{pid}/fd/9")).exists());
        assert!(Path::new(&format!("/proc/{pid}/fd/1")).exists());
    }
}
