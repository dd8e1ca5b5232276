//! Issue 15 point 4: a restore onto a terminal that another session holds now is refused
//! (it used to put the process back onto it without a word); `--reattach-tty` puts the
//! fd on ckpt-restore's own terminal instead, saying so.
mod common;
use common::*;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A new pseudo-terminal: (master, slave, slave path). Both are opened close-on-exec
/// at once (`O_CLOEXEC` on `/dev/ptmx` and on `TIOCGPTPEER`): with openpty then `fcntl`,
/// another test's spawn in between inherited the master, and a stray master in a captured
/// program is captured (and its slave, held here, refused as outside the tree).
fn pty() -> (OwnedFd, OwnedFd, PathBuf) {
    use std::os::unix::fs::OpenOptionsExt;
    // std opens with O_CLOEXEC.
    let m: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open("/dev/ptmx")
        .expect("/dev/ptmx")
        .into();
    let n = ckpt_sys::tty::unlock(m.as_fd()).expect("unlocking a new pty");
    let s = ckpt_sys::tty::open_peer(m.as_fd(), libc::O_RDWR | libc::O_CLOEXEC)
        .expect("opening the slave");
    (m, s, PathBuf::from(format!("/dev/pts/{n}")))
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

/// A program that set its terminal's mode (ICANON and ECHO off, VTIME 3) and window size
/// gets them back: while it was down the terminal went back to a sane mode and 24x80
/// (`stty sane` from the other end); after the restore the pty shows the captured ones and
/// the program's own checks pass (they FAILed before: a restore reopened the terminal as
/// it found it).
#[test]
fn a_terminals_mode_and_window_size_come_back() {
    build_progs();
    let dir = tempfile::tempdir().unwrap();
    let prog = progs_dir().join("restore_ttymode");
    let (_m0, s0, _) = pty();
    let reference = dir.path().join("ref.out");
    let r = in_session_on(&s0, &prog, &["300"], &reference);
    assert_eq!(wait_exit(r, Duration::from_secs(120)), 0);
    let want = std::fs::read_to_string(&reference).unwrap();
    assert!(want.ends_with("299 ok\nPASS\n"), "{want}");

    let (master, slave, _) = pty();
    let out = dir.path().join("run.out");
    let pid = in_session_on(&slave, &prog, &["300"], &out);
    let mut procs = Procs(vec![pid]);
    wait_lines(&out, 20);
    let img = dir.path().join("img");
    capture_kill(pid, &img);
    procs.0.clear();
    drop(slave);
    // The image holds the terminal's state.
    let bytes = std::fs::read(&img).unwrap();
    let mut src = ckpt_format::open_slice(&bytes).unwrap();
    let mut tty = None;
    while let Some(e) = src.next_event().unwrap() {
        if let ckpt_format::Event::File(f) = e {
            if f.records.tty.is_some() {
                tty = f.records.tty.clone();
            }
        }
    }
    let tty = tty.expect("a tty record");
    assert_eq!(
        (tty.master, tty.sid, tty.winsize),
        (false, pid, [33, 99, 0, 0])
    );
    // Meanwhile the terminal goes back to a sane mode and 24x80.
    let sane = {
        let mut t = ckpt_sys::tty::read(master.as_fd(), ckpt_sys::tty::PtyEnd::Master)
            .unwrap()
            .termios;
        let lflag = u32::from_le_bytes(t[12..16].try_into().unwrap()) | libc::ICANON | libc::ECHO;
        t[12..16].copy_from_slice(&lflag.to_le_bytes());
        t
    };
    ckpt_sys::tty::apply(master.as_fd(), &sane, [24, 80, 0, 0]).unwrap();
    let p = restore(&img, &["--pid-same"]);
    procs.0.push(p);
    let now = ckpt_sys::tty::read(master.as_fd(), ckpt_sys::tty::PtyEnd::Master).unwrap();
    assert_eq!(now.winsize, [33, 99, 0, 0]);
    assert_eq!(now.termios.to_vec(), tty.termios);
    assert_eq!(wait_exit(p, Duration::from_secs(120)), 0);
    procs.0.clear();
    let got = std::fs::read_to_string(&out).unwrap();
    assert_eq!(got.lines().find(|l| l.contains("FAIL")), None);
    assert_eq!(got, want);
}

/// Issue 15 point 4, the rest of the identity check. (1) A session leader's controlling
/// terminal (the counter led its session on the pty) that a session holds now, even
/// ckpt-restore's own: a terminal controls one session, so it could not be given back; the
/// restore is refused naming both (it used to go on, and the process came back without its
/// controlling terminal); `--reattach-tty` puts the fd on ckpt-restore's terminal and says
/// so. (2) A process that was in the foreground of a terminal of a session outside
/// the image, restored by a ckpt-restore of the session holding it now but running in its
/// background: it would stop at its first read, so the restore is refused.
#[test]
fn a_terminal_session_or_foreground_that_changed_is_refused() {
    build_progs();
    let dir = tempfile::tempdir().unwrap();
    let prog = progs_dir().join("restore_counter");
    let restore_bin = env!("CARGO_BIN_EXE_ckpt-restore");

    // (1) The counter led its session on the pty.
    let (master, slave, slave_path) = pty();
    let out = dir.path().join("run1.out");
    let pid = in_session_on(&slave, &prog, &["100000", "1"], &out);
    let mut procs = Procs(vec![pid]);
    wait_lines(&out, 3);
    wait_until("the counter's session holds the pty", || {
        tty_sid(&master) == Some(pid)
    });
    let img = dir.path().join("img1");
    capture_kill(pid, &img);
    procs.0.clear();
    // ckpt-restore in a session of its own on that pty (setsid --ctty): ours holds it.
    let run = |args: &[&str]| {
        let o = Command::new("setsid")
            .arg("--ctty")
            .arg(restore_bin)
            .args(args)
            .stdin(Stdio::from(slave.try_clone().unwrap()))
            .output()
            .expect("setsid (util-linux)");
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    };
    let (code, _, err) = run(&[img.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains(&format!(
            "pid {pid} fd 0: {} was the controlling terminal of session {pid} of the image, and is now the controlling terminal of session ",
            slave_path.display()
        )) && err.contains("(ckpt-restore); a terminal controls one session"),
        "{err}"
    );
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "nothing created"
    );
    let (code, stdout, err) = run(&["--reattach-tty", img.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    let new: i32 = stdout.trim().parse().unwrap();
    procs.0.push(new);
    assert!(
        err.contains(&format!(
            "pid {pid} fd 0: {} is the controlling terminal of session ",
            slave_path.display()
        )) && err.contains(&format!(
            "re-attached to {} (--reattach-tty)",
            slave_path.display()
        )),
        "{err}"
    );
    let n = std::fs::read(&out)
        .unwrap()
        .iter()
        .filter(|&&b| b == b'\n')
        .count();
    wait_lines(&out, n + 3);
    drop(procs);

    // (2) The counter in the foreground of sh's session (sh runs it as a child, then
    // exits when it is killed).
    let (_m2, s2, p2) = pty();
    let out = dir.path().join("run2.out");
    let sh = in_session_on(
        &s2,
        Path::new("/bin/sh"),
        &["-c", &format!("{} 100000 1; :", prog.display())],
        &out,
    );
    let mut procs = Procs(vec![sh]);
    wait_lines(&out, 3);
    let pid = children_of(sh)[0];
    let img = dir.path().join("img2");
    let mut opts = ckpt_capture::Options::new(pid);
    opts.leave = ckpt_capture::Leave::Killed;
    let mut c = ckpt_capture::live::LiveCapture::new(opts.clone());
    ckpt_capture::capture_to_path(&mut c, &opts, &img, None).unwrap();
    wait_gone(&[pid]);
    let _ = wait_exit(sh, Duration::from_secs(30));
    procs.0.clear();
    // A job-control shell on the pty runs ckpt-restore in the background.
    let rc = dir.path().join("rc");
    let err_path = dir.path().join("err");
    let script = format!(
        "{restore_bin} {} >/dev/null 2>{} & wait $!; echo $? >{}",
        img.display(),
        err_path.display(),
        rc.display()
    );
    let bg = in_session_on(
        &s2,
        Path::new("/bin/sh"),
        &["-m", "-c", &script],
        &dir.path().join("sh.out"),
    );
    assert_eq!(wait_exit(bg, Duration::from_secs(60)), 0);
    let err = std::fs::read_to_string(&err_path).unwrap();
    assert_eq!(std::fs::read_to_string(&rc).unwrap().trim(), "1", "{err}");
    assert!(
        err.contains(&format!(
            "pid {pid} fd 0: the process was in the foreground of {}; ckpt-restore runs in its background (foreground group {bg} of session {bg} (sh))",
            p2.display()
        )),
        "{err}"
    );
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "nothing created"
    );
}
