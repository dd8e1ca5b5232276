//! Pseudo-terminal pairs, sessions and job control carried by capture (`--tree --kill`)
//! and restore (issue 17 "ttys", issue 18 tmux), each with a real program checked from
//! outside: util-linux `script` (holds the master, a signalfd) keeps recording; a bash
//! job-control session under a pty keeps its running and stopped jobs; a tmux server
//! (pty pair + unix listener) answers its clients and its pane's program runs on. Under
//! CI=true a missing program fails the test instead of skipping it.

mod common;

use common::*;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(60);

fn have(prog: &str, arg: &str) -> bool {
    let ok = Command::new(prog)
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "{prog} missing: .ci/run installs it"
        );
        eprintln!("skipped: {prog} not installed");
    }
    ok
}

/// Processes orphaned by ckpt-restore (and the tmux server, a daemon) become ours.
fn subreaper() {
    // SAFETY: prctl with integer arguments.
    assert_eq!(
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) },
        0
    );
}

fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let t0 = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(t0.elapsed() < LIMIT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The pids of the tasks of image `img`.
fn image_pids(img: &Path) -> Vec<i32> {
    let bytes = std::fs::read(img).unwrap();
    let mut src = ckpt_format::open_slice(&bytes).unwrap();
    let mut out = Vec::new();
    while let Some(e) = src.next_event().unwrap() {
        if let ckpt_format::Event::Task(t) = e {
            out.push(t.pid);
        }
    }
    out
}

/// Capture the tree of `root` with `--tree --kill`; waits until every captured process
/// is gone and returns their pids. Two refusals are transient and leave everything
/// running, as documented, so the capture is tried again: a pty holding bytes not read yet
/// (the tree's printer wrote between the freeze of its reader and its own: a tty queue
/// cannot be peeked), and a connection whose client has just closed it (tmux's server
/// before it handled the close of the test's last `tmux` command).
fn capture_tree(root: i32, img: &Path) -> Vec<i32> {
    let mut opts = ckpt_capture::Options::new(root);
    opts.tree = true;
    opts.leave = ckpt_capture::Leave::Killed;
    let mut tries = 0;
    loop {
        let mut p = ckpt_capture::live::LiveCapture::new(opts.clone());
        match ckpt_capture::capture_to_path(&mut p, &opts, img, None) {
            Ok(_) => break,
            Err(e)
                if tries < 20
                    && (e.to_string().contains("a terminal's queue cannot be read")
                        || e.to_string().contains("its peer socket:[0] is outside")) =>
            {
                eprintln!("capture refused, tried again: {e}");
                tries += 1;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => panic!("capture of the tree of {root}: {e}"),
        }
    }
    let pids = image_pids(img);
    wait_gone(&pids);
    pids
}

/// `(state, tty_nr, tpgid)` of `pid` from /proc (fields 3, 7, 8).
fn tty_of(pid: i32) -> (char, u64, i32) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    (
        f[0].chars().next().unwrap(),
        f[4].parse().unwrap(),
        f[5].parse().unwrap(),
    )
}

/// `tty_nr` (the kernel's new_encode_dev) of device `rdev`.
fn tty_nr(rdev: u64) -> u64 {
    let (ma, mi) = (libc::major(rdev) as u64, libc::minor(rdev) as u64);
    (mi & 0xff) | (ma << 8) | ((mi & !0xff) << 12)
}

fn rdev_of(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().rdev()
}

/// util-linux `script` (root of the tree: the pty master, a signalfd, the log file)
/// recording a shell that prints a timestamp every 0.2 s: captured with `--tree --kill`,
/// restored; the log holds the lines from before, none while it was down, and grows
/// again after; the shell is again the session leader with the new pty slave as its
/// controlling terminal, in the foreground.
#[test]
fn script_keeps_recording_across_a_restore() {
    if !have("script", "--version") {
        return;
    }
    subreaper();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("typescript");
    #[allow(clippy::zombie_processes)] // reaped by pid (capture_tree, Procs)
    let c = Command::new("script")
        .args([
            "-q",
            "-f",
            "-c",
            "sh -c 'while :; do date +%s%N; sleep 0.2; done'",
        ])
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let root = c.id() as i32;
    let mut procs = Procs(vec![root]);
    let lines = |p: &Path| -> Vec<u128> {
        String::from_utf8_lossy(&std::fs::read(p).unwrap_or_default())
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    };
    until("5 lines in the log", || {
        (lines(&log).len() >= 5).then_some(())
    });
    let img = dir.path().join("img");
    let pids = capture_tree(root, &img);
    procs.0.clear();
    assert!(pids.len() >= 2, "script and its shell: {pids:?}");
    let before = lines(&log);
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(lines(&log), before, "nothing recorded while it is down");
    let down_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let new = restore_all(&img, &[]);
    procs.0.extend(new.iter().rev());
    assert_eq!(new, pids, "same pids");
    let after = until("5 more lines after the restore", || {
        let l = lines(&log);
        (l.len() >= before.len() + 5).then_some(l)
    });
    assert_eq!(&after[..before.len()], &before[..]);
    // (The first may have been taken by a `date` captured before it printed.)
    assert!(
        after[before.len() + 1..].iter().all(|&t| t > down_at),
        "lines after the restore are new: {after:?}"
    );
    assert!(after.windows(2).all(|w| w[0] < w[1]), "in order: {after:?}");
    // script holds a new master; its shell leads its session on the new slave, in the
    // foreground.
    let master = std::fs::read_link(format!("/proc/{root}/fd/3")).unwrap();
    assert_eq!(master, Path::new("/dev/ptmx"));
    let sh = pids[1];
    let (ppid, pgid, sid) = ids_of(sh);
    assert_eq!((ppid, pgid, sid), (root, sh, sh));
    let slave = std::fs::read_link(format!("/proc/{sh}/fd/0")).unwrap();
    assert!(slave.starts_with("/dev/pts/"), "{slave:?}");
    let (_, nr, tpgid) = tty_of(sh);
    assert_eq!(nr, tty_nr(rdev_of(&slave)), "controlling terminal of {sh}");
    assert_eq!(tpgid, sh, "foreground group");
}

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

/// Everything read from a pty master, by a thread of ours.
struct Screen(Arc<Mutex<Vec<u8>>>);

impl Screen {
    fn start(master: &OwnedFd) -> Screen {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let b = buf.clone();
        let mut f = std::fs::File::from(master.try_clone().unwrap());
        std::thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = f.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                b.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        Screen(buf)
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).replace('\r', "")
    }
    /// Wait for output `mark` at the end of a line (the typed command shows it quoted);
    /// returns what came before it.
    fn upto(&self, mark: &str) -> String {
        let m = format!("{mark}\n");
        let t0 = Instant::now();
        loop {
            let t = self.text();
            if let Some(i) = t.find(&m) {
                return t[..i].to_string();
            }
            assert!(t0.elapsed() < LIMIT, "no {mark:?} on the terminal:\n{t}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// A bash job-control session under a pty whose master this test holds (outside the
/// captured tree): `sleep 100 &` runs in the background and `sleep 200` was stopped
/// (^Z). Captured with `--tree --kill`, restored: `jobs -l` in that same bash shows the
/// same jobs, pids and states; from outside, the sleeps are in their own groups, one
/// stopped, and bash leads its session with the pty as controlling terminal and its own
/// group in the foreground.
#[test]
fn bash_job_control_session_keeps_its_jobs() {
    if !have("bash", "--version") {
        return;
    }
    subreaper();
    let dir = tempfile::tempdir().unwrap();
    let (master, slave, slave_path) = pty();
    let screen = Screen::start(&master);
    let mut w = std::fs::File::from(master.try_clone().unwrap());
    #[allow(clippy::zombie_processes)] // reaped by pid (capture_tree, Procs)
    let c = Command::new("setsid")
        .args([
            "--ctty",
            "bash",
            "--norc",
            "--noprofile",
            "--noediting",
            "-i",
        ])
        .env("TERM", "dumb")
        .env("PS1", "$ ")
        .stdin(Stdio::from(slave.try_clone().unwrap()))
        .stdout(Stdio::from(slave.try_clone().unwrap()))
        .stderr(Stdio::from(slave.try_clone().unwrap()))
        .spawn()
        .expect("setsid (util-linux)");
    let bash = c.id() as i32;
    let mut procs = Procs(vec![bash]);
    let mut say = |s: &str| w.write_all(s.as_bytes()).unwrap();
    say("sleep 100 &\n");
    say("echo M''1\n");
    screen.upto("M1");
    say("sleep 200\n");
    let s200 = until("sleep 200 running", || {
        children_of(bash).into_iter().find(|&k| {
            std::fs::read(format!("/proc/{k}/cmdline")).unwrap_or_default() == b"sleep\x00200\x00"
        })
    });
    // ^Z from the terminal: the foreground job stops, bash takes the terminal back.
    say("\x1a");
    until("sleep 200 stopped", || {
        (tty_of(s200).0 == 'T').then_some(())
    });
    say("echo M''2\n");
    screen.upto("M2");
    say("jobs -l; echo M''3\n");
    let jobs_of = |t: &str, from: &str| -> Vec<String> {
        let start = t.rfind(from).unwrap();
        t[start..]
            .lines()
            .filter(|l| l.starts_with('['))
            // `jobs -l` lines (with the pid), not bash's own notifications.
            .filter(|l| {
                l.split_whitespace()
                    .nth(1)
                    .is_some_and(|p| p.parse::<i32>().is_ok())
            })
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .collect()
    };
    let before = jobs_of(&screen.upto("M3"), "jobs -l; echo M''3");
    assert_eq!(before.len(), 2, "{}", screen.text());
    assert!(before[0].contains("Running") && before[0].contains("sleep 100 &"));
    assert!(before[1].contains(&format!("{s200} Stopped")) && before[1].contains("sleep 200"));
    let kids = children_of(bash);
    procs.0.extend(&kids);
    let img = dir.path().join("img");
    let pids = capture_tree(bash, &img);
    procs.0.clear();
    assert_eq!(pids.len(), 3, "bash and its two jobs: {pids:?}");
    let new = restore_all(&img, &[]);
    procs.0.extend(new.iter().rev());
    assert_eq!(new, pids, "same pids");
    // From outside: groups, states, the terminal.
    let dev = rdev_of(&slave_path);
    let (_, nr, tpgid) = tty_of(bash);
    assert_eq!(ids_of(bash).1, bash);
    assert_eq!(ids_of(bash).2, bash);
    assert_eq!(nr, tty_nr(dev), "bash's controlling terminal");
    assert_eq!(tpgid, bash, "bash's group in the foreground");
    for &k in &kids {
        let (ppid, pgid, sid) = ids_of(k);
        assert_eq!((ppid, pgid, sid), (bash, k, bash), "job {k}");
    }
    until("sleep 200 stopped again", || {
        (tty_of(s200).0 == 'T').then_some(())
    });
    // From inside: bash's own view of its jobs.
    say("jobs -l; echo M''4\n");
    let after = jobs_of(&screen.upto("M4"), "jobs -l; echo M''4");
    assert_eq!(after, before, "{}", screen.text());
    // Job control works on: the stopped job continues in the foreground and is
    // interrupted from the terminal; bash says so.
    say("fg %2\n");
    until("sleep 200 running again", || {
        (tty_of(s200).0 == 'S').then_some(())
    });
    assert_eq!(tty_of(bash).2, s200, "the job is in the foreground");
    say("\x03");
    wait_gone(&[s200]);
    say("echo M''5 $?\n");
    screen.upto("M5 130");
    drop(slave);
}

/// A tmux server (`tmux -S SOCK new-session -d`: a pty pair for its pane, a unix
/// listener, an event loop) with a pane running bash that ticks and echoes what it is
/// sent: captured with `--tree --kill`, restored; `list-sessions` answers, the pane's
/// program ticks on, and keys sent with `send-keys` reach it.
#[test]
fn tmux_server_and_its_pane_run_on_after_a_restore() {
    if !have("tmux", "-V") {
        return;
    }
    subreaper();
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("sock");
    let tmux = |args: &[&str]| -> (bool, String) {
        let o = Command::new("tmux")
            .arg("-S")
            .arg(&sock)
            .args(args)
            .env("TERM", "xterm")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            o.status.success(),
            String::from_utf8_lossy(&o.stdout).into_owned(),
        )
    };
    let prog = "bash --norc -c 'i=0; while :; do i=$((i+1)); echo tick $i; read -t 0.3 l && echo got:$l; done'";
    assert!(tmux(&["new-session", "-d", "-x", "80", "-y", "24", prog]).0);
    let server: i32 = tmux(&["display-message", "-p", "#{pid}"])
        .1
        .trim()
        .parse()
        .unwrap();
    let mut procs = Procs(vec![server]);
    let last_tick = |screen: &str| -> Option<u32> {
        screen
            .lines()
            .filter_map(|l| l.strip_prefix("tick ")?.trim().parse().ok())
            .next_back()
    };
    let pane = || tmux(&["capture-pane", "-p", "-S", "-1000"]).1;
    until("3 ticks in the pane", || {
        last_tick(&pane()).filter(|&t| t >= 3)
    });
    let img = dir.path().join("img");
    let pids = capture_tree(server, &img);
    procs.0.clear();
    assert!(pids.len() >= 2, "server and its pane's shell: {pids:?}");
    assert!(!tmux(&["list-sessions"]).0, "no server while it is down");
    let new = restore_all(&img, &[]);
    procs.0.extend(new.iter().rev());
    assert_eq!(new, pids, "same pids");
    let (ok, ls) = tmux(&["list-sessions"]);
    assert!(ok && ls.starts_with("0: 1 windows"), "{ls}");
    let t0 = last_tick(&pane()).expect("ticks kept in the pane");
    until("the pane ticks on", || {
        last_tick(&pane()).filter(|&t| t >= t0 + 3)
    });
    assert!(tmux(&["send-keys", "hello-after", "Enter"]).0);
    until("the keys reached the pane's program", || {
        pane().contains("got:hello-after").then_some(())
    });
    assert!(tmux(&["kill-server"]).0);
}
