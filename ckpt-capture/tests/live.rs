//! Live captures of real processes started by the tests (fixtures/progs/*.c).

mod common;
use ckpt_capture::{capture_to_writer, live::LiveCapture, Options};
use ckpt_format::{Event, FileKind, VmaKind};
use common::*;
use std::collections::{HashMap, HashSet};
use std::process::Command;

fn capture_cli(pid: i32, extra: &[&str]) -> (std::process::Output, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img.ckpt");
    let out = Command::new(bin())
        .args(extra)
        .arg("-o")
        .arg(&img)
        .arg(pid.to_string())
        .output()
        .unwrap();
    let bytes = std::fs::read(&img).unwrap_or_default();
    // No temporary file is ever left behind.
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n != "img.ckpt")
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    (out, bytes)
}

fn assert_counts_on(t: &mut Target, mut last: u64, n: usize) -> u64 {
    for _ in 0..n {
        let v: u64 = t.line().parse().unwrap();
        assert_eq!(v, last + 1, "counter must continue without gaps");
        last = v;
    }
    last
}

#[test]
fn counter_loop_with_known_buffer() {
    let mut t = Target::spawn("counter", &[]);
    let head = t.line();
    let f: Vec<&str> = head.split_whitespace().collect();
    let (buf, len, zero, zlen) = (
        hex(f[3]),
        f[5].parse::<usize>().unwrap(),
        hex(f[7]),
        f[9].parse::<u64>().unwrap(),
    );
    let (none, shared, cow) = (hex(f[11]), hex(f[13]), hex(f[15]));
    let mut last: u64 = t.line().parse().unwrap();
    last = assert_counts_on(&mut t, last, 2);

    let (out, bytes) = capture_cli(t.pid(), &["--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    let json: serde_json::Value = serde_json::from_str(stderr.lines().last().unwrap()).unwrap();
    assert!(json["zero_pages_elided"].as_u64().unwrap() >= zlen / 4096);
    assert!(json["pages_stored"].as_u64().unwrap() >= (len / 4096) as u64);
    assert_eq!(json["bytes"].as_u64().unwrap(), bytes.len() as u64);

    let evs = decode(&bytes);
    assert!(matches!(evs.first(), Some(Event::Header(_))));
    assert!(matches!(evs.last(), Some(Event::Tail)));
    let tasks: Vec<_> = evs
        .iter()
        .filter_map(|e| {
            if let Event::Task(t) = e {
                Some(t)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(tasks.len(), 1);
    assert_eq!(tasks[0].pid, t.pid());
    assert_eq!(tasks[0].comm, b"counter");
    let threads: Vec<_> = evs
        .iter()
        .filter_map(|e| {
            if let Event::Thread(t) = e {
                Some(t)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(threads.len(), 1);
    assert_eq!(threads[0].tid, t.pid());
    let fpu = threads[0].fpu.as_ref().unwrap();
    assert!(fpu.data.len() >= 576 && fpu.xfeatures & 3 == 3);
    assert_eq!(threads[0].tls.len(), 48);

    // The known buffer, byte for byte.
    let want: Vec<u8> = (0..len)
        .map(|i| (i.wrapping_mul(7).wrapping_add(3)) as u8)
        .collect();
    assert_eq!(mem_of(&evs, t.pid(), buf, len), want);

    // VMAs: the buffer, the written-zeros area (zero runs only), vdso stored, vvar not.
    let mut cur: Option<ckpt_format::Vma> = None;
    let mut pages_in: HashMap<u64, (u64, u64)> = HashMap::new();
    for e in &evs {
        match e {
            Event::Vma(v) => cur = Some(v.clone()),
            Event::Pages(p) => {
                pages_in.entry(cur.as_ref().unwrap().start).or_default().0 += p.addrs.len() as u64
            }
            Event::ZeroPages(z) => {
                pages_in.entry(cur.as_ref().unwrap().start).or_default().1 += z.count
            }
            _ => {}
        }
    }
    let vmas: Vec<_> = evs
        .iter()
        .filter_map(|e| if let Event::Vma(v) = e { Some(v) } else { None })
        .collect();
    let vb = vmas.iter().find(|v| v.start <= buf && buf < v.end).unwrap();
    assert_eq!(vb.kind, VmaKind::Anon);
    assert_eq!(vb.flags & 0x3, 0x3, "VM_READ|VM_WRITE");
    let vz = vmas
        .iter()
        .find(|v| v.start <= zero && zero < v.end)
        .unwrap();
    let (p, z) = pages_in[&vz.start];
    if vz.start == zero && vz.end == zero + zlen {
        assert_eq!((p, z), (0, zlen / 4096));
    } else {
        assert!(z >= zlen / 4096);
    }
    // A PROT_NONE page (process_vm_readv refuses it: read through /proc/PID/mem).
    assert_eq!(mem_of(&evs, t.pid(), none, 4096), vec![0x5a; 4096]);
    let vn = vmas.iter().find(|v| v.start == none).unwrap();
    assert_eq!((vn.prot, vn.flags & 7), (0, 0));
    // Shared anonymous memory is stored (it exists nowhere else).
    assert_eq!(mem_of(&evs, t.pid(), shared, 4096), vec![0xa5; 4096]);
    let vs = vmas.iter().find(|v| v.start == shared).unwrap();
    assert_eq!((vs.kind, vs.flags & 8), (VmaKind::SharedAnon, 8));
    // Private file mapping: only the written (COW) page, not the page only read.
    let vc = vmas.iter().find(|v| v.start == cow).unwrap();
    assert_eq!(vc.kind, VmaKind::File);
    assert_eq!(pages_in[&cow], (1, 0));
    assert_eq!(mem_of(&evs, t.pid(), cow + 4096, 4096), vec![b'C'; 4096]);
    let vdso = vmas.iter().find(|v| v.kind == VmaKind::Vdso).unwrap();
    assert_eq!(pages_in[&vdso.start].0, (vdso.end - vdso.start) / 4096);
    for v in vmas.iter().filter(|v| v.kind == VmaKind::Vvar) {
        assert!(
            !pages_in.contains_key(&v.start),
            "vvar pages must not be stored"
        );
    }
    assert!(vmas
        .iter()
        .any(|v| v.kind == VmaKind::Stack && v.flags & 0x100 != 0));
    // Clean text pages of the executable are not stored.
    let exe = vmas
        .iter()
        .find(|v| {
            v.kind == VmaKind::File
                && v.prot & 4 != 0
                && v.file.as_deref().is_some_and(|f| f.ends_with(b"/counter"))
        })
        .unwrap();
    assert!(!pages_in.contains_key(&exe.start));

    let mm = evs
        .iter()
        .find_map(|e| if let Event::Mm(m) = e { Some(m) } else { None })
        .unwrap();
    assert!(mm.exe.as_deref().unwrap().ends_with(b"/counter"));
    assert!(mm.start_code < mm.end_code && mm.start_brk <= mm.brk && mm.arg_start < mm.arg_end);
    assert_eq!(mm.auxv.len() % 2, 0);
    assert!(evs
        .iter()
        .any(|e| matches!(e, Event::SigActions(s) if s.len() == 64)));
    assert!(evs
        .iter()
        .any(|e| matches!(e, Event::Rlimits(r) if r.len() == 16)));
    let fds: Vec<i32> = evs
        .iter()
        .filter_map(|e| {
            if let Event::Fd(f) = e {
                Some(f.fd)
            } else {
                None
            }
        })
        .collect();
    // 0, 1, 2 (plus whatever the test harness leaked into the child, e.g. a jobserver pipe).
    assert_eq!(fds[..3], [0, 1, 2]);

    // Still alive, counting on.
    assert_counts_on(&mut t, last, 5);
}

#[test]
fn multi_threaded_program() {
    let mut t = Target::spawn("threads", &[]);
    assert_eq!(t.line(), "threads 4");
    let before: Vec<u64> = t
        .line()
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    let (out, bytes) = capture_cli(t.pid(), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let evs = decode(&bytes);
    let tids: HashSet<i32> = evs
        .iter()
        .filter_map(|e| {
            if let Event::Thread(t) = e {
                Some(t.tid)
            } else {
                None
            }
        })
        .collect();
    let proc_tids: HashSet<i32> = std::fs::read_dir(format!("/proc/{}/task", t.pid()))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(tids.len(), 4);
    assert_eq!(tids, proc_tids);
    for e in &evs {
        if let Event::Thread(th) = e {
            let f = th.fpu.as_ref().unwrap();
            assert!(f.data.len() >= 576);
            assert_eq!(
                u64::from_le_bytes(f.data[464..472].try_into().unwrap()),
                f.xfeatures
            );
            assert_ne!(th.regs.fs_base, 0, "glibc threads have a TLS base");
            assert!(th.records.clear_child_tid.is_some());
            assert!(th.records.rseq.is_some(), "glibc registers rseq");
            assert!(th.extras.is_empty(), "{:?}", th.extras);
        }
    }
    // Every worker keeps making progress afterwards.
    let mut after = before.clone();
    for _ in 0..30 {
        after = t
            .line()
            .split_whitespace()
            .map(|x| x.parse().unwrap())
            .collect();
    }
    for i in 1..4 {
        assert!(
            after[i] > before[i],
            "worker {i} stalled: {before:?} -> {after:?}"
        );
    }
}

#[test]
fn files_offsets_dups_cloexec_and_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Target::spawn("files", &[dir.path().to_str().unwrap()]);
    let r: Vec<i32> = t
        .line()
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    let (a, b, c, d, p0, p1, nul, e20) = (r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]);
    // Let it block in read(0) (a restartable syscall).
    std::thread::sleep(std::time::Duration::from_millis(100));
    let (out, bytes) = capture_cli(t.pid(), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let evs = decode(&bytes);
    let th = evs
        .iter()
        .find_map(|e| {
            if let Event::Thread(t) = e {
                Some(t)
            } else {
                None
            }
        })
        .unwrap();
    assert_eq!(th.regs.orig_rax, 0, "asleep in read(2)");
    assert_eq!(th.regs.rax as i64, -512, "-ERESTARTSYS");

    let mut files = HashMap::new();
    let mut pipes = HashMap::new();
    let mut fds = HashMap::new();
    for e in &evs {
        match e {
            Event::File(f) => {
                files.insert(f.id, f.clone());
            }
            Event::Pipe(p) => {
                pipes.insert(p.id, p.data.to_vec());
            }
            Event::Fd(f) => {
                fds.insert(f.fd, *f);
            }
            _ => {}
        }
    }
    let fa = &files[&fds[&a].file];
    assert_eq!(fa.kind, FileKind::Regular);
    assert!(fa.path.ends_with(b"/a.txt"));
    assert_eq!(fa.pos, 1234);
    assert_eq!(fa.flags & 3, libc::O_RDWR as u32);
    assert_eq!(fa.mode & 0o7777, 0o640);
    assert_eq!(fds[&c].file, fds[&a].file, "dup shares the open file");
    assert_eq!(fds[&e20].file, fds[&a].file, "dup2 shares the open file");
    assert!(!fds[&a].cloexec);
    let fb = &files[&fds[&b].file];
    assert!(fds[&b].cloexec);
    assert_eq!(fb.pos, 77);
    assert_ne!(fds[&b].file, fds[&a].file);
    assert_eq!(files[&fds[&d].file].kind, FileKind::Directory);
    let fnul = &files[&fds[&nul].file];
    assert_eq!(
        (fnul.kind, fnul.path.as_slice()),
        (FileKind::CharDevice, &b"/dev/null"[..])
    );
    let (f0, f1) = (&files[&fds[&p0].file], &files[&fds[&p1].file]);
    assert_eq!((f0.kind, f1.kind), (FileKind::Pipe, FileKind::Pipe));
    assert_ne!(f0.id, f1.id, "two ends are two open files");
    assert_eq!(f0.pipe, f1.pipe, "one pipe object for both ends");
    assert_eq!(pipes[&f0.pipe.unwrap()], b"unread-pipe-data");
    assert_eq!(f0.flags & 3, 0);
    assert_eq!(f1.flags & 3, 1);

    // The target restarts read(0), still finds its pipe data and offsets.
    t.send("go\n");
    assert_eq!(t.line(), "pipe unread-pipe-data pos 1234 77");
}

#[test]
fn tree_of_three_sharing_a_pipe() {
    let mut t = Target::spawn("tree", &[]);
    let r: Vec<i32> = t
        .line()
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    let (c1, gc) = (r[0], r[1]);
    std::thread::sleep(std::time::Duration::from_millis(100));
    let mut opts = Options::new(t.pid());
    opts.tree = true;
    let mut img = Vec::new();
    let stats = capture_to_writer(&mut LiveCapture::new(opts), &mut img, None).unwrap();
    assert_eq!(stats.tasks, 3);
    assert_eq!(stats.bytes, img.len() as u64);
    let evs = decode(&img);
    let tasks: Vec<_> = evs
        .iter()
        .filter_map(|e| {
            if let Event::Task(t) = e {
                Some(t.clone())
            } else {
                None
            }
        })
        .collect();
    assert_eq!(
        tasks.iter().map(|t| t.pid).collect::<Vec<_>>(),
        vec![t.pid(), c1, gc]
    );
    assert_eq!(tasks[0].ppid, 0);
    assert_eq!(tasks[1].ppid, t.pid());
    assert_eq!(tasks[2].ppid, c1);
    assert!(tasks
        .iter()
        .all(|x| x.pgid == tasks[0].pgid && x.sid == tasks[0].sid));
    // One Pipe object with the grandchild's bytes; every task's pipe fds point at the
    // same File objects, each defined once.
    let pipes: Vec<_> = evs
        .iter()
        .filter_map(|e| {
            if let Event::Pipe(p) = e {
                Some(p.clone())
            } else {
                None
            }
        })
        .collect();
    let with_data: Vec<_> = pipes
        .iter()
        .filter(|p| p.data.as_ref() == b"from-grandchild")
        .collect();
    assert_eq!(with_data.len(), 1);
    let ids: Vec<u32> = evs
        .iter()
        .filter_map(|e| {
            if let Event::File(f) = e {
                Some(f.id)
            } else {
                None
            }
        })
        .collect();
    let uniq: HashSet<_> = ids.iter().collect();
    assert_eq!(ids.len(), uniq.len(), "files defined once");
    let fd_sets: Vec<Vec<(i32, u32)>> = tasks
        .iter()
        .map(|tk| {
            task_events(&evs, tk.pid)
                .into_iter()
                .filter_map(|e| {
                    if let Event::Fd(f) = e {
                        Some((f.fd, f.file))
                    } else {
                        None
                    }
                })
                .filter(|(fd, _)| *fd == 3 || *fd == 4)
                .collect()
        })
        .collect();
    assert_eq!(fd_sets[0].len(), 2);
    assert_eq!(fd_sets[0], fd_sets[1]);
    assert_eq!(fd_sets[0], fd_sets[2]);
    // The parent resumes its read(0) and still reads the pipe.
    t.send("go\n");
    assert_eq!(t.line(), "got from-grandchild");
}

#[test]
fn threads_created_and_exiting_while_attaching() {
    let mut t = Target::spawn("churn", &[]);
    assert_eq!(t.line(), "ready");
    for _ in 0..10 {
        let (out, bytes) = capture_cli(t.pid(), &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let evs = decode(&bytes);
        let n = evs.iter().filter(|e| matches!(e, Event::Thread(_))).count();
        assert!((1..=5).contains(&n), "{n} threads");
    }
    let a: u64 = t.line().parse().unwrap();
    let b: u64 = t.line().parse().unwrap();
    assert_eq!(b, a + 1);
}

#[test]
fn stopped_process_stays_stopped() {
    let mut t = Target::spawn("counter", &[]);
    t.line();
    let pid = t.pid();
    let kill = |sig: &str| {
        assert!(Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap()
            .success())
    };
    kill("-STOP");
    std::thread::sleep(std::time::Duration::from_millis(100));
    let (out, bytes) = capture_cli(pid, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let task = decode(&bytes)
        .into_iter()
        .find_map(|e| {
            if let Event::Task(t) = e {
                Some(t)
            } else {
                None
            }
        })
        .unwrap();
    assert_eq!(task.state, 4, "recorded as stopped");
    std::thread::sleep(std::time::Duration::from_millis(100));
    let st = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    assert!(st.contains(") T "), "still stopped: {st}");
    kill("-CONT");
    let a: u64 = t.line().parse().unwrap();
    let b: u64 = t.line().parse().unwrap();
    assert_eq!(b, a + 1);
}

#[test]
fn small_batches_and_pipelined_reading_give_the_same_memory() {
    let mut t = Target::spawn("counter", &[]);
    let head = t.line();
    let f: Vec<&str> = head.split_whitespace().collect();
    let (buf, len, zero, zlen) = (
        hex(f[3]),
        f[5].parse::<usize>().unwrap(),
        hex(f[7]),
        f[9].parse::<usize>().unwrap(),
    );
    let want: Vec<u8> = (0..len)
        .map(|i| (i.wrapping_mul(7).wrapping_add(3)) as u8)
        .collect();
    for (batch, pipeline) in [
        (12 << 10, false),
        (12 << 10, true),
        (1 << 20, true),
        (64 << 20, false),
    ] {
        let mut opts = Options::new(t.pid());
        opts.batch_bytes = batch;
        opts.pipeline = pipeline;
        opts.chunk_pages = 7;
        let mut img = Vec::new();
        let stats = capture_to_writer(&mut LiveCapture::new(opts), &mut img, None).unwrap();
        let evs = decode(&img);
        assert_eq!(
            mem_of(&evs, t.pid(), buf, len),
            want,
            "batch {batch} pipeline {pipeline}"
        );
        assert_eq!(mem_of(&evs, t.pid(), zero, zlen), vec![0; zlen]);
        assert!(stats.zero_pages >= (zlen / 4096) as u64);
        // Chunks respect chunk_pages.
        assert!(evs
            .iter()
            .all(|e| !matches!(e, Event::Pages(p) if p.addrs.len() > 7)));
    }
    let a: u64 = t.line().parse().unwrap();
    let b: u64 = t.line().parse().unwrap();
    assert_eq!(b, a + 1);
}

#[test]
fn signal_actions_mask_altstack_limits_and_fs() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Target::spawn("signals", &[dir.path().to_str().unwrap()]);
    let l = t.line();
    let f: Vec<&str> = l.split_whitespace().collect();
    let (handler, alt, altsize) = (hex(f[1]), hex(f[2]), f[3].parse::<u64>().unwrap());
    std::thread::sleep(std::time::Duration::from_millis(50));
    let (out, bytes) = capture_cli(t.pid(), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let evs = decode(&bytes);
    let sig = evs
        .iter()
        .find_map(|e| {
            if let Event::SigActions(s) = e {
                Some(s.clone())
            } else {
                None
            }
        })
        .unwrap();
    assert_eq!(sig.len(), 64);
    let usr1 = sig[libc::SIGUSR1 as usize - 1];
    assert_eq!(usr1.handler, handler);
    let want_flags = (libc::SA_RESTART | libc::SA_SIGINFO | libc::SA_ONSTACK) as u64;
    assert_eq!(usr1.flags & want_flags, want_flags);
    assert_ne!(usr1.flags & 0x04000000, 0, "SA_RESTORER set by libc");
    assert_ne!(usr1.restorer, 0);
    assert_eq!(usr1.mask, 1 << (libc::SIGUSR2 - 1));
    assert_eq!(sig[libc::SIGINT as usize - 1].handler, 1, "SIG_IGN");
    assert_eq!(sig[libc::SIGTERM as usize - 1].handler, 0, "SIG_DFL");
    let th = evs
        .iter()
        .find_map(|e| {
            if let Event::Thread(t) = e {
                Some(t.clone())
            } else {
                None
            }
        })
        .unwrap();
    assert_eq!(th.sigmask, 1 << (libc::SIGHUP - 1));
    let ss = th.records.sigaltstack.expect("sigaltstack record");
    assert_eq!((ss.sp, ss.size), (alt, altsize));
    assert_eq!(
        th.regs.orig_rax,
        libc::SYS_pause as u64,
        "asleep in pause()"
    );
    let rl = evs
        .iter()
        .find_map(|e| {
            if let Event::Rlimits(r) = e {
                Some(r.clone())
            } else {
                None
            }
        })
        .unwrap();
    assert_eq!(
        (
            rl[libc::RLIMIT_NOFILE as usize].cur,
            rl[libc::RLIMIT_NOFILE as usize].max
        ),
        (777, 1024)
    );
    let fs = evs
        .iter()
        .find_map(|e| {
            if let Event::Fs(f) = e {
                Some(f.clone())
            } else {
                None
            }
        })
        .unwrap();
    assert_eq!(fs.umask, 0o027);
    assert_eq!(
        fs.cwd,
        std::fs::canonicalize(dir.path())
            .unwrap()
            .as_os_str()
            .as_encoded_bytes()
    );
    assert_eq!(fs.root, b"/");
    let task = evs
        .iter()
        .find_map(|e| {
            if let Event::Task(t) = e {
                Some(t.clone())
            } else {
                None
            }
        })
        .unwrap();
    let me = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap());
    assert_eq!(task.creds.uid, [me; 4]);
    assert_eq!(
        task.records.real_parent.map(|p| p.ppid),
        Some(std::process::id() as i32)
    );
    // The handler still works after the capture (and the thread went back into pause()).
    assert!(Command::new("kill")
        .args(["-USR1", &t.pid().to_string()])
        .status()
        .unwrap()
        .success());
    assert_eq!(t.line(), "usr1 1");
}

/// With `Leave::Killed` through the library (the tracer lives on), every
/// thread of the killed target is reaped: no zombie thread stays behind.
#[test]
fn killed_multi_threaded_target_leaves_no_zombie_threads() {
    use ckpt_capture::Leave;
    let mut t = Target::spawn("threads", &[]);
    assert_eq!(t.line(), "threads 4");
    t.line();
    let pid = t.pid();
    let tids: Vec<i32> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().parse().unwrap())
        .collect();
    assert_eq!(tids.len(), 4, "4 threads, the leader included");
    let mut opts = Options::new(pid);
    opts.leave = Leave::Killed;
    let mut img = Vec::new();
    capture_to_writer(&mut LiveCapture::new(opts), &mut img, None).unwrap();
    // Every worker thread is gone at once (reaped by the capturing tracer), not a zombie.
    for tid in tids.iter().filter(|&&t| t != pid) {
        let p = format!("/proc/{pid}/task/{tid}/stat");
        assert!(
            std::fs::read_to_string(&p).is_err(),
            "thread {tid} still present: {:?}",
            std::fs::read_to_string(&p)
        );
    }
    // The image is complete.
    let mut src = ckpt_format::open_slice(&img).unwrap();
    let mut threads = 0;
    while let Some(ev) = src.next_event().unwrap() {
        if let ckpt_format::Event::Thread(_) = ev {
            threads += 1;
        }
    }
    assert_eq!(threads, 4);
}

/// Two threads spinning in clock_gettime are nearly always inside the vdso when stopped;
/// the capture steps them out first, so no image holds a thread in the vdso's code
/// (which another kernel's restore replaces by a proxy). Fails without the stepping
/// (each capture then almost always finds a thread inside).
#[test]
fn threads_inside_the_vdso_are_stepped_out() {
    let mut t = Target::spawn("vdso_spin", &[]);
    assert_eq!(t.line(), "spin");
    for round in 0..25 {
        let (out, bytes) = capture_cli(t.pid(), &[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let evs = decode(&bytes);
        let vdso = evs
            .iter()
            .find_map(|e| match e {
                Event::Vma(v) if v.kind == VmaKind::Vdso => Some((v.start, v.end)),
                _ => None,
            })
            .expect("a vdso");
        let mut threads = 0;
        for e in &evs {
            if let Event::Thread(th) = e {
                threads += 1;
                assert!(
                    th.regs.rip < vdso.0 || th.regs.rip >= vdso.1,
                    "round {round}: thread {} captured inside the vdso at {:#x} ({:#x}-{:#x})",
                    th.tid,
                    th.regs.rip,
                    vdso.0,
                    vdso.1
                );
            }
        }
        assert_eq!(threads, 2);
    }
}
