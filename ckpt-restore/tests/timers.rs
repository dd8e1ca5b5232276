//! Timers carried by a restore (fixtures/progs/restore_timers.c checks itself every step):
//! POSIX timers under their ids (a hole kept), with their clocks (a CPU clock named by
//! pid), notifications (a thread-directed one) and the time left; the interval timers.
//! Capture refused all of them before.
mod common;
use ckpt_format::{Event, PosixTimers};
use common::*;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

fn task_records(img: &std::path::Path) -> ckpt_format::TaskRecords {
    let bytes = std::fs::read(img).unwrap();
    let mut src = ckpt_format::open_slice(&bytes).unwrap();
    while let Some(e) = src.next_event().unwrap() {
        if let Event::Task(t) = e {
            return t.records.clone();
        }
    }
    panic!("no task in the image");
}

/// `(id, notify text, clock)` of every timer in `/proc/PID/timers`.
fn proc_timers(pid: i32) -> Vec<(i32, String, i32)> {
    let t = ckpt_sys::attrs::posix_timers(pid).unwrap();
    let mut v: Vec<_> = t
        .into_iter()
        .map(|t| {
            let who = if t.to_thread { "tid" } else { "pid" };
            (
                t.id,
                format!("{}/{who}.{}", t.notify_text, t.target),
                t.clock,
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn posix_and_interval_timers_come_back_with_the_time_left() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["300"];
    let want = reference("restore_timers", &args, dir.path());
    let w = String::from_utf8_lossy(&want).into_owned();
    assert!(w.ends_with("299 ok\nPASS\n"), "{w}");
    assert!(!w.contains("FAIL"), "{w}");
    let out = dir.path().join("run.out");
    let mut procs = Procs::default();
    let pid = spawn("restore_timers", &args, &out, dir.path());
    procs.0.push(pid);
    wait_lines(&out, 15);
    let before = proc_timers(pid);
    assert_eq!(
        before.iter().map(|t| t.0).collect::<Vec<_>>(),
        vec![0, 2, 3, 4, 5]
    );
    let img = dir.path().join("img");
    capture_kill(pid, &img);
    procs.0.clear();

    // The image: the timers with their time left; the one-shots armed at step 5 (2 s and
    // 1.5 s) have not fired by line 15.
    let r = task_records(&img);
    let PosixTimers { timers } = r.posix_timers.clone().expect("posix_timers record");
    assert_eq!(
        timers.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![0, 2, 3, 4, 5]
    );
    let t5 = &timers[4];
    assert_eq!((t5.signo, t5.interval), (libc::SIGUSR2, (0, 0)));
    assert!(t5.left > (0, 0) && t5.left <= (2, 0), "{t5:?}");
    let t2 = &timers[1];
    assert_eq!((t2.notify, t2.interval), (1, (7, 0)));
    assert_eq!((timers[2].notify, timers[0].value), (4, 0x1234));
    assert_eq!(timers[3].clock, (!pid << 3) | 2, "CPU clock named by pid");
    let it = r.itimers.expect("itimers record").timers;
    assert!(
        it[0].value > (0, 0) && it[0].value <= (1, 500_000),
        "{it:?}"
    );
    assert_eq!((it[1].interval, it[2].interval), ((2, 0), (4, 0)));

    // Restored under new pids: the thread-directed timer signals the new worker thread
    // and the CPU clock names the new pid.
    let p = restore(&img, &["--pid-any"]);
    procs.0.push(p);
    assert_ne!(p, pid);
    let after = proc_timers(p);
    let tids: Vec<i32> = std::fs::read_dir(format!("/proc/{p}/task"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(after.len(), 5, "{after:?}");
    assert_eq!(
        after.iter().map(|t| t.0).collect::<Vec<_>>(),
        vec![0, 2, 3, 4, 5]
    );
    assert_eq!(after[0].1, format!("signal/pid.{p}"));
    assert_eq!(after[1].1, format!("none/pid.{p}"));
    let worker: i32 = after[2]
        .1
        .strip_prefix("signal/tid.")
        .unwrap()
        .parse()
        .unwrap();
    assert!(worker != p && tids.contains(&worker), "{after:?} {tids:?}");
    assert_eq!(after[3].2, (!p << 3) | 2);
    let code = wait_exit(p, LIMIT);
    procs.0.clear();
    let got = String::from_utf8_lossy(&std::fs::read(&out).unwrap()).into_owned();
    assert_eq!(code, 0, "{got}");
    assert_eq!(got.lines().find(|l| l.contains("FAIL")), None);
    assert_eq!(got, w);
}

/// A Python program driven by `signal.setitimer` (ITIMER_REAL every 10 ms, ITIMER_VIRTUAL)
/// and a monotonic sleep schedule keeps its schedule after capture `--kill` and restore:
/// its output equals an uninterrupted run's, every step checked by itself. (An asyncio
/// program would need its self-pipe, a socketpair: sockets are not carried yet.) Without
/// python3 this fails under CI and is skipped with a message otherwise.
#[test]
fn a_python_program_on_interval_timers_keeps_its_schedule() {
    let have = std::process::Command::new("python3")
        .arg("-c")
        .arg("pass")
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        assert!(std::env::var_os("CI").is_none(), "python3 is missing");
        eprintln!("skipped: python3 is missing");
        return;
    }
    build_progs();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/progs/restore_itimer.py")
        .canonicalize()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = |out: &std::path::Path| -> i32 {
        let f = std::fs::File::create(out).unwrap();
        // Reaped with waitpid by pid (wait_exit / capture_kill), not through `Child`.
        #[allow(clippy::zombie_processes)]
        let c = std::process::Command::new("python3")
            .arg(&script)
            .arg("200")
            .current_dir(dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(f)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        c.id() as i32
    };
    let ref_out = dir.path().join("ref.out");
    let r = run(&ref_out);
    assert_eq!(wait_exit(r, LIMIT), 0);
    let want = String::from_utf8_lossy(&std::fs::read(&ref_out).unwrap()).into_owned();
    assert!(want.ends_with("199 ok\nPASS\n"), "{want}");
    let out = dir.path().join("run.out");
    let mut procs = Procs::default();
    let pid = run(&out);
    procs.0.push(pid);
    wait_lines(&out, 30);
    let img = dir.path().join("img");
    capture_kill(pid, &img);
    procs.0.clear();
    let it = task_records(&img).itimers.expect("itimers record").timers;
    assert_eq!((it[0].interval, it[1].interval), ((0, 10_000), (2, 0)));
    let p = restore(&img, &["--pid-same"]);
    procs.0.push(p);
    let code = wait_exit(p, LIMIT);
    procs.0.clear();
    let got = String::from_utf8_lossy(&std::fs::read(&out).unwrap()).into_owned();
    assert_eq!(code, 0, "{got}");
    assert_eq!(got.lines().find(|l| l.contains("FAIL")), None);
    assert_eq!(got, want);
}

/// A python3 asyncio program with timers and no sockets of its own (asyncio.sleep, a
/// loop.call_later chain, a loop.call_at deadline; its loop runs on epoll and wakes itself
/// through a socketpair) keeps its schedule after capture `--kill` and restore: output equal
/// to an uninterrupted run's, the deadline fired exactly once. Without python3 this fails
/// under CI and is skipped with a message otherwise.
#[test]
fn a_python_asyncio_program_keeps_its_schedule() {
    let have = std::process::Command::new("python3")
        .arg("-c")
        .arg("import asyncio")
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        assert!(std::env::var_os("CI").is_none(), "python3 is missing");
        eprintln!("skipped: python3 is missing");
        return;
    }
    build_progs();
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/progs/restore_asyncio.py")
        .canonicalize()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let run = |out: &std::path::Path| -> i32 {
        let f = std::fs::File::create(out).unwrap();
        // Reaped with waitpid by pid (wait_exit / capture_kill), not through `Child`.
        #[allow(clippy::zombie_processes)]
        let c = std::process::Command::new("python3")
            .arg(&script)
            .arg("200")
            .current_dir(dir.path())
            .stdin(std::process::Stdio::null())
            .stdout(f)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        c.id() as i32
    };
    let ref_out = dir.path().join("ref.out");
    let r = run(&ref_out);
    assert_eq!(wait_exit(r, LIMIT), 0);
    let want = String::from_utf8_lossy(&std::fs::read(&ref_out).unwrap()).into_owned();
    assert!(want.ends_with("199 ok\nPASS\n"), "{want}");
    let out = dir.path().join("run.out");
    let mut procs = Procs::default();
    let pid = run(&out);
    procs.0.push(pid);
    wait_lines(&out, 30);
    let img = dir.path().join("img");
    capture_kill(pid, &img);
    procs.0.clear();
    let p = restore(&img, &["--pid-same"]);
    procs.0.push(p);
    assert_eq!(wait_exit(p, LIMIT), 0);
    procs.0.clear();
    let got = String::from_utf8_lossy(&std::fs::read(&out).unwrap()).into_owned();
    assert_eq!(got.lines().find(|l| l.contains("FAIL")), None);
    assert_eq!(got, want);
}
