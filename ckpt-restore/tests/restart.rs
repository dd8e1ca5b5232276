//! Restart equivalence: a deterministic program's output after capture → kill → restore
//! equals the output of an uninterrupted run. Needs root (ptrace, clone3 set_tid).
mod common;
use common::*;
#[path = "../../ckpt-format/tests/common/v21_restart.rs"]
mod v21_restart;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

/// One capture/kill/restore cycle after `lines` lines of output; returns the new pid.
fn cycle(pid: i32, out: &std::path::Path, lines: usize, img: &std::path::Path) -> i32 {
    wait_lines(out, lines);
    capture_kill(pid, img);
    let new = restore(img, &["--pid-same"]);
    assert_eq!(new, pid, "--pid-same restores the original pid");
    new
}

#[test]
fn counter_with_large_buffer() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["300", "64"];
    let want = reference("restore_counter", &args, dir.path());
    let out = dir.path().join("run.out");
    let mut procs = Procs::default();
    let pid = spawn("restore_counter", &args, &out, dir.path());
    procs.0.push(pid);
    let img = dir.path().join("img");
    let pid = cycle(pid, &out, 40, &img);
    assert_eq!(wait_exit(pid, LIMIT), 0);
    procs.0.clear();
    assert_eq!(std::fs::read(&out).unwrap(), want);
}

#[test]
fn twenty_cycles_in_a_row() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["1500", "8"];
    let want = reference("restore_counter", &args, dir.path());
    let out = dir.path().join("run.out");
    let mut procs = Procs::default();
    let mut pid = spawn("restore_counter", &args, &out, dir.path());
    procs.0.push(pid);
    let img = dir.path().join("img");
    for k in 0..20 {
        pid = cycle(pid, &out, 20 + k * 50, &img);
    }
    assert_eq!(wait_exit(pid, LIMIT), 0);
    procs.0.clear();
    assert_eq!(std::fs::read(&out).unwrap(), want);
}

#[test]
fn multi_threaded_counter() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["200"];
    let want = reference("restore_threads", &args, dir.path());
    assert!(
        want.ends_with(b"rseq 1 1 1 1 1\n"),
        "glibc registers rseq in every thread here: {:?}",
        String::from_utf8_lossy(&want[want.len().saturating_sub(60)..])
    );
    let out = dir.path().join("run.out");
    let mut procs = Procs::default();
    let mut pid = spawn("restore_threads", &args, &out, dir.path());
    procs.0.push(pid);
    let img = dir.path().join("img");
    for k in 0..3 {
        pid = cycle(pid, &out, 10 + k * 40, &img);
    }
    assert_eq!(wait_exit(pid, LIMIT), 0);
    procs.0.clear();
    assert_eq!(std::fs::read(&out).unwrap(), want);
}

#[test]
fn file_and_pipe_mid_stream() {
    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + i / 13) as u8).collect();
    let df = dir.path().join("data.bin");
    std::fs::write(&df, &data).unwrap();
    let dfs = df.to_str().unwrap();
    let args = [dfs, "55"];
    let want = reference("restore_pipe", &args, dir.path());
    let out = dir.path().join("run.out");
    let mut procs = Procs::default();
    let pid = spawn("restore_pipe", &args, &out, dir.path());
    procs.0.push(pid);
    let img = dir.path().join("img");
    let pid = cycle(pid, &out, 20, &img);
    assert_eq!(wait_exit(pid, LIMIT), 0);
    procs.0.clear();
    assert_eq!(std::fs::read(&out).unwrap(), want);
}

#[test]
fn asleep_in_nanosleep_and_read() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: c is NUL-terminated.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let fs = fifo.to_str().unwrap();
    let feed = |fifo: &std::path::Path| {
        use std::io::Write;
        let mut w = std::fs::OpenOptions::new().write(true).open(fifo).unwrap();
        w.write_all(b"hello").unwrap();
    };
    // Uninterrupted: feed after the sleep started.
    let refo = dir.path().join("ref.out");
    let pid = spawn("restore_sleep", &[fs], &refo, dir.path());
    wait_lines(&refo, 1);
    std::thread::sleep(Duration::from_millis(200));
    feed(&fifo);
    assert_eq!(wait_exit(pid, LIMIT), 0);
    let want = std::fs::read(&refo).unwrap();
    assert_eq!(want, b"start\nslept\nread 5 hello\n");

    let out = dir.path().join("run.out");
    let mut procs = Procs::default();
    let pid = spawn("restore_sleep", &[fs], &out, dir.path());
    procs.0.push(pid);
    wait_lines(&out, 1);
    std::thread::sleep(Duration::from_millis(200)); // both threads asleep
    let img = dir.path().join("img");
    capture_kill(pid, &img);
    let pid = restore(&img, &[]);
    feed(&fifo);
    assert_eq!(wait_exit(pid, LIMIT), 0);
    procs.0.clear();
    assert_eq!(std::fs::read(&out).unwrap(), want);
}

/// root leads its session and group; A (root's child) leads its own group in that
/// session; B (A's child) is in A's group.
fn assert_tree_ids(root: i32, a: i32, b: i32) {
    assert_eq!(children_of(root), vec![a], "children of root {root}");
    assert_eq!(children_of(a), vec![b], "children of A {a}");
    let r = ids_of(root);
    assert_eq!((r.1, r.2), (root, root), "root {root}: pgid, sid");
    assert_eq!(ids_of(a), (root, a, root), "A {a}: ppid, pgid, sid");
    assert_eq!(ids_of(b), (a, a, root), "B {b}: ppid, pgid, sid");
}

#[test]
fn tree_of_three_with_session_group_and_shared_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["400"];
    let want = reference("restore_tree", &args, dir.path());
    assert!(want.ends_with(b"child exited 8\ndone\n"), "{want:?}");
    let out = dir.path().join("run.out");
    let mut procs = Procs::default();
    let root = spawn("restore_tree", &args, &out, dir.path());
    procs.0.push(root);
    wait_lines(&out, 30);
    let (a, b) = tree_members(root);
    assert_tree_ids(root, a, b);
    let img = dir.path().join("img");

    // Same pids: the tree comes back exactly.
    capture_kill_tree(root, &img, &[root, a, b]);
    let pids = restore_all(&img, &["--pid-same"]);
    assert_eq!(pids, vec![root, a, b], "image order, original pids");
    assert_tree_ids(root, a, b);

    // New pids: parents, session and group follow the new pids.
    wait_lines(&out, 110);
    capture_kill_tree(root, &img, &[root, a, b]);
    let pids = restore_all(&img, &["--pid-any"]);
    assert_eq!(pids.len(), 3);
    let (r2, a2, b2) = (pids[0], pids[1], pids[2]);
    procs.0 = vec![r2];
    assert_tree_ids(r2, a2, b2);

    assert_eq!(wait_exit(r2, LIMIT), 0);
    procs.0.clear();
    assert_eq!(
        String::from_utf8_lossy(&std::fs::read(&out).unwrap()),
        String::from_utf8_lossy(&want)
    );
}

/// What a live capture holds that a v21 image has no record or field for
/// (docs/CONVERT.md, the ckpt-v21 row), as the lossy report names it.
const V21_HAS_NO_RECORD: &[&str] = &[
    "kind vvar",    // no vvar VMA type (CKPT_VMA_*)
    "rseq",         // rseq registration (after 2010)
    "sigaltstack",  // ckpt_hdr_task of v21 has no sas_ss_* (v23 added them)
    "cap_amb",      // ambient capabilities (Linux 4.3)
    "seccomp",      // seccomp mode
    "no_new_privs", // no_new_privs (Linux 3.5)
    "personality",  // no personality field in ckpt_hdr_task/mm
    "`real_ppid`",  // ckpt_pids has vppid only
    "`root_pid`",   // no such header field
    "`dev_major`",  // VMAs name their file by objref, not device/inode
    "`dev_minor`",
    "`ino`",
    "`vm_flags_unknown`",
    "`mnt_id`", // files are named by path below the container root
    "`dev`",
    "fpu xfeatures",   // HEADER_ARCH has has_xsave and xstate_size, not the XCR0 mask
    "`process_attrs`", // oom_score_adj, coredump_filter, subreaper ...: no v21 field
    "`thread_attrs`",  // nice, policy, affinity, ioprio, timer slack: no v21 field
    "auxv of",         // the era's AT_VECTOR_SIZE (44 words): no room for entries added since
    "fs umask",        // ckpt_hdr_fs of v21 has no umask (v23 added it)
    // Queued signals the era's ckpt_siginfo has no class or field for (V21-STREAM.md).
    "si_code SI_TIMER",
    "the era kept negative codes",
    "the SIGSYS layout",
    "bytes beyond the fields ckpt_siginfo holds",
    "shared queued signals without resource limits",
    // The vsyscall page: a gate area, not a VMA of the mm in a v21 kernel.
    "VMA 0xffffffffff600000-0xffffffffff601000: ",
];

/// The cross-kernel path: a capture converted to ckpt-v21 (the Linux-CR layout; `--lossy`,
/// since a live capture holds fields v21 has no place for, each listed in the report) is
/// restored from the v21 image directly, and the program continues exactly. v21 has no
/// vvar or vsyscall kinds: the restorer recognises them by their place.
/// Returns (output after the restore, uninterrupted output, items the conversion dropped).
fn v21_cycle(prog: &str, args: &[&str], at_line: usize) -> (String, String, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let want = reference(prog, args, dir.path());
    let out = dir.path().join("run.out");
    let mut procs = Procs::default();
    let pid = spawn(prog, args, &out, dir.path());
    procs.0.push(pid);
    wait_lines(&out, at_line);
    let img = dir.path().join("img");
    capture_kill(pid, &img);
    let native = std::fs::read(&img).unwrap();
    let mut v21 = Vec::new();
    let mut o = ckpt_format::convert::ConvertOptions::new(ckpt_format::Revision::CkptV21);
    o.lossy = true;
    o.target_kernel = ckpt_format::convert::TargetKernel::Keep;
    let report = ckpt_format::convert::convert_slice(&native, &mut v21, &o).unwrap();
    assert!(
        report.dropped.iter().any(|d| d.contains("kind vvar")),
        "v21 has no vvar kind: {:?}",
        report.dropped
    );
    assert_eq!(
        ckpt_format::detect::detect(&v21)
            .unwrap()
            .revision()
            .unwrap(),
        ckpt_format::Revision::CkptV21
    );
    // A Linux-CR v21 restart reads the image to its end: every record where
    // it reads one (tests/common/v21_restart.rs, the restart's reading order).
    let walk = v21_restart::walk(&v21).unwrap_or_else(|e| panic!("v21 restart order: {e}"));
    assert!(walk.tasks >= 1 && walk.errors == 0, "{walk:?}");
    // And the conversion dropped only what v21 has no record for.
    for d in &report.dropped {
        assert!(
            V21_HAS_NO_RECORD.iter().any(|k| d.contains(k)),
            "dropped, though v21 has a record for it: {d} (all: {:#?})",
            report.dropped
        );
    }
    let v21_img = dir.path().join("img.v21");
    std::fs::write(&v21_img, &v21).unwrap();
    let new = restore(&v21_img, &["--pid-same"]);
    assert_eq!(new, pid);
    assert_eq!(wait_exit(new, LIMIT), 0);
    procs.0.clear();
    (
        String::from_utf8(std::fs::read(&out).unwrap()).unwrap(),
        String::from_utf8(want).unwrap(),
        report.dropped,
    )
}

#[test]
fn restores_an_image_converted_to_ckpt_v21() {
    let (got, want, _) = v21_cycle("restore_counter", &["200", "8"], 30);
    assert!(got == want, "output differs from an uninterrupted run");
}

#[test]
fn restores_a_multi_threaded_image_converted_to_ckpt_v21() {
    let (got, want, dropped) = v21_cycle("restore_threads", &["150"], 20);
    // v21 has no place for the rseq registration: the lossy conversion lists it, and the
    // restored threads come back unregistered. Everything else is the same.
    assert!(
        dropped.iter().any(|d| d.contains("rseq_ptr")),
        "the report names the rseq registration"
    );
    let cut = |s: &str| {
        s.trim_end()
            .rsplit_once('\n')
            .map(|(a, b)| (a.to_string(), b.to_string()))
    };
    let (g_body, g_last) = cut(&got).unwrap();
    let (w_body, w_last) = cut(&want).unwrap();
    assert!(g_body == w_body, "output differs from an uninterrupted run");
    assert_eq!(w_last, "rseq 1 1 1 1 1");
    assert_eq!(g_last, "rseq 0 0 0 0 0");
}

/// `(signal, si_code, si_value int)` of each siginfo of queue `q`.
fn queued(q: &[ckpt_format::SigInfo]) -> Vec<(i32, i32, i32)> {
    let int = |c: &[u8], o: usize| i32::from_le_bytes(c[o..o + 4].try_into().unwrap());
    q.iter()
        .map(|s| {
            assert_eq!(s.0.len(), 128);
            (int(&s.0, 0), int(&s.0, 8), int(&s.0, 24))
        })
        .collect()
}

#[test]
fn pending_signals_with_siginfo() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: c is NUL-terminated.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let fs = fifo.to_str().unwrap();
    let go = |fifo: &std::path::Path| {
        use std::io::Write;
        let mut w = std::fs::OpenOptions::new().write(true).open(fifo).unwrap();
        w.write_all(b"g").unwrap();
    };
    let args = [fs, "60"];
    // Uninterrupted.
    let refo = dir.path().join("ref.out");
    let pid = spawn("restore_signals", &args, &refo, dir.path());
    go(&fifo);
    assert_eq!(wait_exit(pid, LIMIT), 0);
    let want = std::fs::read(&refo).unwrap();
    let text = String::from_utf8_lossy(&want);
    assert!(
        text.contains("main got 35 code -1 value 101 self 1 uid 1\n")
            && text.contains("worker got 35 code -1 value 302 self 1 uid 1\n")
            && text.contains("worker got 12 code -6 value 0 self 1 uid 1\n")
            && !text.contains("value 8 "),
        "{text}"
    );

    // Captured mid-loop (signals still blocked and pending), killed, restored.
    let out = dir.path().join("run.out");
    let mut procs = Procs::default();
    let pid = spawn("restore_signals", &args, &out, dir.path());
    procs.0.push(pid);
    wait_lines(&out, 20);
    let img = dir.path().join("img");
    capture_kill(pid, &img);
    // The image holds both queues, in queue order, with the siginfo as sent.
    let bytes = std::fs::read(&img).unwrap();
    let mut src = ckpt_format::open_slice(&bytes).unwrap();
    let plan = ckpt_restore::Plan::collect(&mut *src, Some(&bytes)).unwrap();
    let t = &plan.tasks[0];
    let rt = |n: i32| libc::SIGRTMIN() + n;
    assert_eq!(
        queued(&t.task.records.shared_pending.as_ref().unwrap().queue),
        vec![
            (rt(1), -1, 101),
            (rt(1), -1, 102),
            (rt(1), -1, 103),
            (rt(1), -1, 104),
            (libc::SIGUSR1, -1, 7),
            (libc::SIGUSR2, 0, 0),
            (rt(2), -1, 201),
        ]
    );
    let main = t.threads.iter().find(|th| th.tid == pid).unwrap();
    let worker = t.threads.iter().find(|th| th.tid != pid).unwrap();
    assert_eq!(
        queued(&main.records.pending.as_ref().unwrap().queue),
        vec![(rt(2), -1, 401), (rt(1), -1, 402)]
    );
    assert_eq!(
        queued(&worker.records.pending.as_ref().unwrap().queue),
        vec![
            (rt(1), -1, 301),
            (rt(1), -1, 302),
            (libc::SIGUSR2, -6, 0),
            (libc::SIGUSR1, -1, 303),
            (rt(2), -1, 304),
        ]
    );
    // Converted to ckpt-v21: the kill(2) siginfo (SI_USER) goes into the shared
    // SIGPENDING and reads back as sent; the sigqueue/tgkill ones (negative codes,
    // which the era kept without a class its restart accepts) are named, one item
    // each, and nothing else about the signals is lost. (The program's fifo is a pipe
    // whose order v21 cannot give back: an item of its own, not about signals.)
    let mut v21 = Vec::new();
    let mut o = ckpt_format::convert::ConvertOptions::new(ckpt_format::Revision::CkptV21);
    o.lossy = true;
    o.target_kernel = ckpt_format::convert::TargetKernel::Keep;
    let report = ckpt_format::convert::convert_slice(&bytes, &mut v21, &o).unwrap();
    v21_restart::walk(&v21).unwrap_or_else(|e| panic!("v21 restart order: {e}"));
    let negative = report
        .dropped
        .iter()
        .filter(|d| d.contains("the era kept negative codes"))
        .count();
    assert_eq!(negative, 6 + 2 + 5, "{:#?}", report.dropped);
    for d in report.dropped.iter().filter(|d| d.contains("queued")) {
        assert!(
            V21_HAS_NO_RECORD.iter().any(|k| d.contains(k)),
            "dropped, though v21 has a record for it: {d}"
        );
    }
    let mut src = ckpt_format::open_slice(&v21).unwrap();
    let back = ckpt_restore::Plan::collect(&mut *src, Some(&v21)).unwrap();
    assert_eq!(
        queued(
            &back.tasks[0]
                .task
                .records
                .shared_pending
                .as_ref()
                .unwrap()
                .queue
        ),
        vec![(libc::SIGUSR2, 0, 0)]
    );
    let pid = restore(&img, &["--pid-same"]);
    go(&fifo);
    assert_eq!(wait_exit(pid, LIMIT), 0);
    procs.0.clear();
    assert_eq!(
        String::from_utf8_lossy(&std::fs::read(&out).unwrap()),
        String::from_utf8_lossy(&want)
    );
}

/// An image in the encoding of the release before typed records (their state in
/// extras keys, no typed record; fixtures/images/native-1/captured-before-records.img
/// is one such, captured by that release, which ckpt-format's tests read) restores
/// like today's: the pending signals, rseq, robust list and signal stack of both
/// threads come back, and the run ends like an uninterrupted one.
#[test]
fn an_image_encoded_before_typed_records_restores() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: c is NUL-terminated.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let go = |fifo: &std::path::Path| {
        use std::io::Write;
        let mut w = std::fs::OpenOptions::new().write(true).open(fifo).unwrap();
        w.write_all(b"g").unwrap();
    };
    let args = [fifo.to_str().unwrap(), "60"];
    let refo = dir.path().join("ref.out");
    let pid = spawn("restore_signals", &args, &refo, dir.path());
    go(&fifo);
    assert_eq!(wait_exit(pid, LIMIT), 0);
    let want = std::fs::read(&refo).unwrap();

    let out = dir.path().join("run.out");
    let mut procs = Procs::default();
    let pid = spawn("restore_signals", &args, &out, dir.path());
    procs.0.push(pid);
    wait_lines(&out, 20);
    let img = dir.path().join("img");
    capture_kill(pid, &img);
    let typed = std::fs::read(&img).unwrap();
    let old = edit(&typed, |ev| {
        *ev = ckpt_format::model::records::legacy::event(ev).into_owned();
    });
    // The old encoding: only record types the previous release knew, our keys in extras.
    let mut recs = ckpt_format::open_records_slice(&old).unwrap();
    while let Some(r) = recs.next_record().unwrap() {
        assert!(r.type_code & 0xff < 0x10, "{} in the old encoding", r.name);
    }
    let n_typed = {
        let mut recs = ckpt_format::open_records_slice(&typed).unwrap();
        let mut n = 0;
        while let Some(r) = recs.next_record().unwrap() {
            n += (r.type_code & 0xff >= 0x10) as usize;
        }
        n
    };
    assert!(n_typed >= 10, "{n_typed} typed records in the capture");
    assert!(old.windows(15).any(|w| w == b"siginfo_pending"));
    std::fs::write(&img, &old).unwrap();
    let pid = restore(&img, &["--pid-same"]);
    go(&fifo);
    assert_eq!(wait_exit(pid, LIMIT), 0);
    procs.0.clear();
    assert_eq!(
        String::from_utf8_lossy(&std::fs::read(&out).unwrap()),
        String::from_utf8_lossy(&want)
    );
}

/// `bytes` re-encoded (native-1) with `f` applied to every event.
fn edit(bytes: &[u8], mut f: impl FnMut(&mut ckpt_format::Event<'static>)) -> Vec<u8> {
    let mut src = ckpt_format::open_slice(bytes).unwrap();
    let mut out = Vec::new();
    {
        let mut enc = ckpt_format::encoder(ckpt_format::Revision::Native1, &mut out);
        while let Some(ev) = src.next_event().unwrap() {
            let mut ev = ev.into_owned();
            f(&mut ev);
            enc.event(&ev).unwrap();
        }
        enc.finish().unwrap();
    }
    out
}

/// A siginfo as `kill(2)` from pid 1 makes it (`SI_USER`).
fn si_user(sig: i32) -> Vec<u8> {
    let mut b = vec![0u8; 128];
    b[..4].copy_from_slice(&sig.to_le_bytes());
    b[16..20].copy_from_slice(&1i32.to_le_bytes());
    b
}

/// A pending signal the captured mask does not block is delivered once released (not
/// swallowed by the injection): an unhandled SIGUSR1 put into the shared queue of a
/// counter's image kills the restored counter. A pending SIGSTOP leaves the restored
/// process stopped; SIGCONT resumes it and it finishes like an uninterrupted run.
#[test]
fn unblocked_pending_signal_and_pending_sigstop() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["400", "1"];
    let want = reference("restore_counter", &args, dir.path());
    let out = dir.path().join("run.out");
    let mut procs = Procs::default();
    let pid = spawn("restore_counter", &args, &out, dir.path());
    procs.0.push(pid);
    wait_lines(&out, 20);
    let img = dir.path().join("img");
    capture_kill(pid, &img);
    let good = std::fs::read(&img).unwrap();

    let with = |sig: i32| {
        edit(&good, |ev| {
            if let ckpt_format::Event::Task(t) = ev {
                t.records.shared_pending = Some(ckpt_format::SharedPending {
                    queue: vec![ckpt_format::SigInfo(si_user(sig))],
                });
            }
        })
    };
    let usr1 = dir.path().join("usr1.img");
    std::fs::write(&usr1, with(libc::SIGUSR1)).unwrap();
    let p = restore(&usr1, &["--pid-same"]);
    procs.0.push(p);
    assert_eq!(wait_exit(p, LIMIT), 128 + libc::SIGUSR1);
    procs.0.clear();

    let stop = dir.path().join("stop.img");
    std::fs::write(&stop, with(libc::SIGSTOP)).unwrap();
    let p = restore(&stop, &["--pid-same"]);
    procs.0.push(p);
    // Released with SIGSTOP pending: it stops as soon as it runs (waited for, not timed).
    let t0 = std::time::Instant::now();
    loop {
        let st = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap();
        let state = st[st.rfind(')').unwrap() + 2..].chars().next().unwrap();
        if state == 'T' {
            break;
        }
        assert!(t0.elapsed() < LIMIT, "not stopped: {st}");
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: plain syscall.
    assert_eq!(unsafe { libc::kill(p, libc::SIGCONT) }, 0);
    assert_eq!(wait_exit(p, LIMIT), 0);
    procs.0.clear();
    assert_eq!(std::fs::read(&out).unwrap(), want);
}

/// Capability sets (bounding set reduced, permitted/effective/inheritable/ambient chosen by
/// the program, in both threads) survive the restart, as root (uid 0) and with uid 65534
/// (where restore's setresuid away from 0 would clear them): the Cap* lines the program
/// prints at the end equal an uninterrupted run's.
#[test]
fn capability_sets_with_and_without_a_uid_change() {
    for uid in ["0", "65534"] {
        let dir = tempfile::tempdir().unwrap();
        let args = ["80", uid];
        let want = reference("restore_caps", &args, dir.path());
        let text = String::from_utf8_lossy(&want).into_owned();
        for l in [
            "main CapPrm:\t0000000000800421\n",
            "main CapEff:\t0000000000800020\n",
            "main CapInh:\t0000000000000401\n",
            "main CapAmb:\t0000000000000400\n",
            "worker CapAmb:\t0000000000000400\n",
            "worker CapPrm:\t0000000000800421\n",
        ] {
            assert!(text.contains(l), "uid {uid}: no {l:?} in {text}");
        }
        assert!(text.contains(&format!("uids {uid} {uid} {uid}\n")));
        // Capturing a process of another uid needs CAP_SYS_RESOURCE (prlimit64), which
        // this environment's root may lack: for 65534 the run is made as root and the
        // image's credentials are edited to 65534 (all else is the same program state).
        let out = dir.path().join("run.out");
        let mut procs = Procs::default();
        let pid = spawn("restore_caps", &["80", "0"], &out, dir.path());
        procs.0.push(pid);
        let img = dir.path().join("img");
        wait_lines(&out, 20);
        capture_kill(pid, &img);
        if uid != "0" {
            let bytes = std::fs::read(&img).unwrap();
            let edited = edit(&bytes, |ev| {
                if let ckpt_format::Event::Task(t) = ev {
                    t.creds.uid = [65534; 4];
                    t.creds.gid = [65534; 4];
                    t.creds.groups.clear();
                }
            });
            std::fs::write(&img, edited).unwrap();
        }
        let new = restore(&img, &["--pid-same"]);
        assert_eq!(new, pid);
        assert_eq!(wait_exit(new, LIMIT), 0);
        procs.0.clear();
        assert_eq!(
            String::from_utf8_lossy(&std::fs::read(&out).unwrap()),
            text,
            "uid {uid}"
        );
    }
}
