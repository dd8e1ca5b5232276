//! Issue 15 point 4: a restore onto a terminal that another session holds now is refused
//! (it used to put the process back onto it without a word); `--reattach-tty` puts the
//! fd on ckpt-restore's own terminal instead, saying so.
mod common;
use common::*;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A new pseudo-terminal: (master, slave, slave path).
fn pty() -> (OwnedFd, OwnedFd, PathBuf) {
    let (mut m, mut s) = (0, 0);
    // SAFETY: openpty writes two descriptors; the name/termios/winsize pointers are NULL.
    let rc = unsafe {
        libc::openpty(
            &mut m,
            &mut s,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(rc, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: openpty returned these new descriptors; we own them.
    let (m, s) = unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) };
    let p = std::fs::read_link(format!("/proc/self/fd/{}", s.as_raw_fd())).unwrap();
    (m, s, p)
}

fn tty_sid(fd: &OwnedFd) -> Option<i32> {
    let mut sid: libc::pid_t = 0;
    // SAFETY: TIOCGSID writes one pid_t.
    let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TIOCGSID, &mut sid) };
    (rc == 0).then_some(sid)
}

/// `setsid --ctty PROG ARGS` with stdin on `tty`: a new session whose controlling
/// terminal it is. Returns the pid (the program itself: setsid execs it).
fn in_session_on(tty: &OwnedFd, prog: &Path, args: &[&str], out: &Path) -> i32 {
    #[allow(clippy::zombie_processes)] // reaped by pid (capture_kill, Procs)
    let c = Command::new("setsid")
        .arg("--ctty")
        .arg(prog)
        .args(args)
        .stdin(Stdio::from(tty.try_clone().unwrap()))
        .stdout(std::fs::File::create(out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("setsid (util-linux)");
    c.id() as i32
}

fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t0 = Instant::now();
    while !f() {
        assert!(t0.elapsed() < Duration::from_secs(30), "{what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn a_terminal_held_by_another_session_is_refused_or_reattached() {
    build_progs();
    let dir = tempfile::tempdir().unwrap();
    let (master, slave, slave_path) = pty();
    let out = dir.path().join("run.out");
    let pid = in_session_on(
        &slave,
        &progs_dir().join("restore_counter"),
        &["100000", "1"],
        &out,
    );
    let mut procs = Procs(vec![pid]);
    wait_lines(&out, 3);
    wait_until("the counter's session holds the pty", || {
        tty_sid(&master) == Some(pid)
    });
    let img = dir.path().join("img");
    capture_kill(pid, &img);
    procs.0.clear();

    // Another session takes the terminal.
    let other = in_session_on(
        &slave,
        Path::new("/bin/sleep"),
        &["1000"],
        &dir.path().join("sleep.out"),
    );
    let _other = Procs(vec![other]);
    wait_until("the sleep's session holds the pty", || {
        tty_sid(&master) == Some(other)
    });
    let (code, stdout, err) = run_restore(&[img.to_str().unwrap()]);
    assert_eq!(code, 1, "stdout {stdout:?} stderr {err:?}");
    assert!(
        err.contains(&format!(
            "pid {pid} fd 0: {} is now the controlling terminal of session {other} (sleep)",
            slave_path.display()
        )),
        "{err}"
    );
    assert!(err.contains("--reattach-tty"), "{err}");
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "nothing created"
    );

    // --reattach-tty, run from another terminal: the fd goes there, said on stderr.
    let (_m2, s2, p2) = pty();
    let o = Command::new(env!("CARGO_BIN_EXE_ckpt-restore"))
        .args(["--reattach-tty", img.to_str().unwrap()])
        .stdin(Stdio::from(s2.try_clone().unwrap()))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let new: i32 = String::from_utf8_lossy(&o.stdout).trim().parse().unwrap();
    let _procs = Procs(vec![new]);
    assert!(
        err.contains(&format!("re-attached to {} (--reattach-tty)", p2.display())),
        "{err}"
    );
    assert_eq!(std::fs::read_link(format!("/proc/{new}/fd/0")).unwrap(), p2);
    // It runs on: more lines than at the capture.
    let n = std::fs::read(&out)
        .unwrap()
        .iter()
        .filter(|&&b| b == b'\n')
        .count();
    wait_lines(&out, n + 3);
}
