//! Process objects carried by a restore (issue 17): pidfds. Each workload checks itself,
//! and its output after capture → kill → restore equals an uninterrupted run's.
mod common;
use common::*;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

/// pidfds (`restore_pidfd.c`) restored with new pids (`--pid-any`): on a child (non-
/// blocking, dup'ed, watched by an epoll set), on the process itself (not close-on-exec)
/// and as a PIDFD_THREAD pidfd; the second child's inherited ones stay the parent's very
/// open files. The image names the captured pids; after the restore each pidfd names
/// the restored process, the child is signalled and reaped through it. Capture refused
/// every pidfd before.
#[test]
fn pidfds_name_the_restored_processes() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["300"];
    let want = reference("restore_pidfd", &args, dir.path());
    let w = String::from_utf8_lossy(&want).into_owned();
    assert!(
        w.ends_with("299 ok\nepoll: 1 ready, fd 3\nA exited 7\nB exited 0\nPASS\n"),
        "{w}"
    );
    let out = dir.path().join("run.out");
    let mut procs = Procs::default();
    let root = spawn("restore_pidfd", &args, &out, dir.path());
    procs.0.push(root);
    wait_lines(&out, 30);
    let kids = children_of(root);
    assert_eq!(kids.len(), 2, "{kids:?}");
    let (a, b) = (kids[0].min(kids[1]), kids[0].max(kids[1]));
    let img = dir.path().join("img");
    capture_kill_tree(root, &img, &[root, a, b]);
    procs.0.clear();

    // The image: the pidfd files name the captured pids.
    let bytes = std::fs::read(&img).unwrap();
    let mut src = ckpt_format::open_slice(&bytes).unwrap();
    let mut named = Vec::new();
    while let Some(e) = src.next_event().unwrap() {
        if let ckpt_format::Event::File(f) = e {
            if let Some(p) = f.records.pidfd {
                named.push((p.pid, f.flags & (libc::O_NONBLOCK | libc::O_EXCL) as u32));
            }
        }
    }
    named.sort();
    let mut expect = vec![
        (a, libc::O_NONBLOCK as u32),
        (root, 0),
        (root, libc::O_EXCL as u32),
    ];
    expect.sort();
    assert_eq!(named, expect);

    let pids = restore_all(&img, &["--pid-any"]);
    assert_eq!(pids.len(), 3, "{pids:?}");
    procs.0.push(pids[0]);
    // From outside: the parent's fd 3 names its restored child A, fd 5 the parent.
    let fdinfo = |p: i32, fd: i32| std::fs::read_to_string(format!("/proc/{p}/fdinfo/{fd}"));
    let pid_line = |s: &str| {
        s.lines()
            .find_map(|l| l.strip_prefix("Pid:"))
            .map(|v| v.trim().parse::<i32>().unwrap())
    };
    let f3 = fdinfo(pids[0], 3).unwrap();
    let new_kids = children_of(pids[0]);
    assert!(
        new_kids.contains(&pid_line(&f3).unwrap()),
        "{f3} {new_kids:?}"
    );
    assert_eq!(pid_line(&fdinfo(pids[0], 5).unwrap()), Some(pids[0]));
    let code = wait_exit(pids[0], LIMIT);
    procs.0.clear();
    let got = String::from_utf8_lossy(&std::fs::read(&out).unwrap()).into_owned();
    assert_eq!(code, 0, "{got}");
    assert_eq!(got.lines().find(|l| l.contains("FAIL")), None, "{got}");
    assert_eq!(got, w);
}

/// Seccomp filters and securebits (`restore_seccomp.c`): filter 1 inherited by a worker
/// thread, filter 2 installed with TSYNC and SECCOMP_FILTER_FLAG_LOG, filter 3 on the
/// worker only; securebits 0x5. The image holds each thread's programs in order with 2
/// shared and the LOG flag; after the restore `/proc` shows mode 2 with 2 and 3 filters,
/// and every thread's own checks (each filter's errno, the count, the bits) pass all
/// along. Capture refused both before.
#[test]
fn seccomp_filters_and_securebits_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let c = capture_midrun(
        "restore_seccomp",
        &["300"],
        dir.path(),
        "299 ok\nPASS\n",
        20,
    );
    let bytes = std::fs::read(&c.img).unwrap();
    let mut src = ckpt_format::open_slice(&bytes).unwrap();
    let (mut bits, mut chains) = (None, Vec::new());
    while let Some(e) = src.next_event().unwrap() {
        match e {
            ckpt_format::Event::Task(t) => bits = t.records.securebits.map(|s| s.bits),
            ckpt_format::Event::Thread(t) => chains.push(t.records.seccomp.clone().unwrap()),
            _ => {}
        }
    }
    assert_eq!(bits, Some(0x5));
    let shape: Vec<(u32, Vec<(u32, usize)>)> = chains
        .iter()
        .map(|c| {
            (
                c.shared,
                c.filters.iter().map(|f| (f.flags, f.insns.len())).collect(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        vec![
            (2, vec![(0, 32), (2, 32)]),
            (2, vec![(0, 32), (2, 32), (0, 32)])
        ]
    );
    assert_eq!(chains[0].filters[..], chains[1].filters[..2]);

    let p = restore(&c.img, &["--pid-same"]);
    let mut procs = Procs(vec![p]);
    let status = |tid: i32, key: &str| {
        std::fs::read_to_string(format!("/proc/{p}/task/{tid}/status"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix(key).map(|v| v.trim().to_string()))
            .unwrap()
    };
    let mut counts = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{p}/task")).unwrap() {
        let tid: i32 = e.unwrap().file_name().to_str().unwrap().parse().unwrap();
        assert_eq!(status(tid, "Seccomp:"), "2");
        counts.push(status(tid, "Seccomp_filters:"));
    }
    counts.sort();
    assert_eq!(counts, vec!["2", "3"]);
    procs.0.clear();
    assert_same_run(p, &c, LIMIT);
}

/// Owners and signals of signal-driven I/O (`restore_sigio.c`) restored with new pids
/// (`--pid-any`): an O_ASYNC pipe owned by the process with F_SETSIG SIGRTMIN+1, another
/// owned by its process group with SIGIO. The image names the captured owners; after the
/// restore each is the restored process (group) and every byte written still raises its
/// signal (with si_fd) all along. Capture refused both before.
#[test]
fn fd_owners_and_signals_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let c = capture_midrun("restore_sigio", &["300"], dir.path(), "299 ok\nPASS\n", 20);
    let pid = c.pid;
    let bytes = std::fs::read(&c.img).unwrap();
    let mut src = ckpt_format::open_slice(&bytes).unwrap();
    let mut owners = Vec::new();
    while let Some(e) = src.next_event().unwrap() {
        if let ckpt_format::Event::File(f) = e {
            if let Some(o) = f.records.fown {
                owners.push((
                    o.kind,
                    o.owner,
                    o.signal,
                    f.flags & libc::O_ASYNC as u32 != 0,
                ));
            }
        }
    }
    owners.sort();
    let rt1 = libc::SIGRTMIN() + 1;
    assert_eq!(owners, vec![(1, pid, rt1, true), (2, pid, 0, true)]);

    let p = restore(&c.img, &["--pid-any"]);
    assert_same_run(p, &c, LIMIT);
}
