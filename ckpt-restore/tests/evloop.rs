//! Event-loop objects (eventfd, epoll, timerfd, signalfd) and inotify carried by capture
//! and restore: self-checking workloads and a real `tail -f`.
mod common;
use common::*;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(120);

/// restore_evloop.c with every kind: a counter and a semaphore eventfd, an epoll set
/// (level, edge-triggered and one-shot targets) inside another, a periodic, an armed and
/// an expired timerfd, a signalfd; each checked every step from inside. Captured
/// mid-run, killed, restored: the output equals an uninterrupted run's and ends in PASS.
#[test]
fn event_loop_objects_continue_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["300", "eventfd,epoll,timerfd,signalfd"];
    let want = reference("restore_evloop", &args, dir.path());
    assert!(
        want.ends_with(b"299 ok\nPASS\n"),
        "{}",
        String::from_utf8_lossy(&want)
    );
    let out = dir.path().join("run.out");
    let mut procs = Procs::default();
    let pid = spawn("restore_evloop", &args, &out, dir.path());
    procs.0.push(pid);
    wait_lines(&out, 40);
    let img = dir.path().join("img");
    capture_kill(pid, &img);
    let p = restore(&img, &["--pid-same"]);
    assert_eq!(wait_exit(p, LIMIT), 0);
    procs.0.clear();
    let got = String::from_utf8_lossy(&std::fs::read(&out).unwrap()).into_owned();
    assert_eq!(got.lines().find(|l| l.contains("FAIL")), None);
    assert_eq!(got, String::from_utf8_lossy(&want));
}

fn wait_for(path: &std::path::Path, text: &str) {
    let t0 = Instant::now();
    loop {
        let s = String::from_utf8_lossy(&std::fs::read(path).unwrap_or_default()).into_owned();
        if s.contains(text) {
            return;
        }
        assert!(
            t0.elapsed() < LIMIT,
            "no {text:?} in {}: {s:?}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn append(path: &std::path::Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(path).unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// A real `tail -f` (coreutils, following by inotify) on a growing file: captured and
/// killed, lines appended while it is down, restored; it prints those lines and the ones
/// after, in order, exactly once.
#[test]
fn tail_follows_a_growing_file_across_a_restore() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log");
    std::fs::write(&log, "line 1\n").unwrap();
    let out = dir.path().join("tail.out");
    let f = std::fs::File::create(&out).unwrap();
    let mut procs = Procs::default();
    // Reaped by pid below (wait_gone) through capture_kill, not through `Child`.
    #[allow(clippy::zombie_processes)]
    let c = std::process::Command::new("tail")
        .arg("-f")
        .arg(&log)
        .stdin(std::process::Stdio::null())
        .stdout(f)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("tail (coreutils)");
    let pid = c.id() as i32;
    procs.0.push(pid);
    wait_for(&out, "line 1\n");
    append(&log, "line 2\n");
    wait_for(&out, "line 2\n");
    let img = dir.path().join("img");
    capture_kill(pid, &img);
    append(&log, "line 3 (while down)\nline 4 (while down)\n");
    let p = restore(&img, &["--pid-same"]);
    procs.0 = vec![p];
    append(&log, "line 5\n");
    wait_for(&out, "line 5\n");
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "line 1\nline 2\nline 3 (while down)\nline 4 (while down)\nline 5\n"
    );
}
