//! Helpers for the restart-equivalence tests: build `fixtures/progs/restore_*.c`, run
//! them with output into a file, capture + kill, restore with the `ckpt-restore` binary,
//! wait for exit. The test process is a child subreaper, so restored processes (children
//! of ckpt-restore, orphaned when it exits) become our children and are reaped here.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

static BUILD: Once = Once::new();
static SUBREAPER: Once = Once::new();

pub fn progs_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ckpt-restore-progs")
}

pub fn build_progs() {
    BUILD.call_once(|| {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/progs");
        let out = progs_dir();
        std::fs::create_dir_all(&out).unwrap();
        for e in std::fs::read_dir(&src).unwrap() {
            let p = e.unwrap().path();
            let name = p.file_name().unwrap().to_str().unwrap().to_string();
            if !name.starts_with("restore_") || !name.ends_with(".c") {
                continue;
            }
            let stem = name.trim_end_matches(".c").to_string();
            let tmp = out.join(format!("{stem}.tmp{}", std::process::id()));
            let st = Command::new("cc")
                .args(["-O1", "-g", "-Wall", "-pthread", "-o"])
                .arg(&tmp)
                .arg(&p)
                .status()
                .expect("cc");
            assert!(st.success(), "cc {}", p.display());
            std::fs::rename(&tmp, out.join(&stem)).unwrap();
        }
    });
    SUBREAPER.call_once(|| {
        // SAFETY: prctl with integer arguments.
        let rc = unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        assert_eq!(rc, 0);
    });
}

/// Processes to kill and reap at the end of a test, whatever happens.
#[derive(Default)]
pub struct Procs(pub Vec<i32>);

impl Drop for Procs {
    fn drop(&mut self) {
        for &p in &self.0 {
            // SAFETY: plain syscalls.
            unsafe {
                if libc::kill(p, libc::SIGKILL) == 0 {
                    let mut st = 0;
                    libc::waitpid(p, &mut st, 0);
                }
            }
        }
    }
}

/// Start `prog args` with stdout into `out` (stdin and stderr /dev/null); returns its pid.
pub fn spawn(prog: &str, args: &[&str], out: &Path, cwd: &Path) -> i32 {
    build_progs();
    let f = std::fs::File::create(out).unwrap();
    // Reaped with waitpid by pid (wait_exit / capture_kill), not through `Child`.
    #[allow(clippy::zombie_processes)]
    let c = Command::new(progs_dir().join(prog))
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(f)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    c.id() as i32
}

/// Run `prog args` to completion with stdout into a file; returns the output.
pub fn reference(prog: &str, args: &[&str], dir: &Path) -> Vec<u8> {
    let out = dir.join(format!("{prog}.ref"));
    let pid = spawn(prog, args, &out, dir);
    assert_eq!(wait_exit(pid, Duration::from_secs(120)), 0);
    std::fs::read(out).unwrap()
}

/// Wait for `pid` (our child) to exit; returns its exit code (128+sig if killed).
/// Kills it and panics after `limit`.
pub fn wait_exit(pid: i32, limit: Duration) -> i32 {
    let t0 = Instant::now();
    loop {
        let mut st = 0;
        // SAFETY: st is a valid out pointer.
        let r = unsafe { libc::waitpid(pid, &mut st, libc::WNOHANG) };
        assert!(r >= 0, "waitpid {pid}: {}", std::io::Error::last_os_error());
        if r == pid {
            if libc::WIFEXITED(st) {
                return libc::WEXITSTATUS(st);
            }
            if libc::WIFSIGNALED(st) {
                return 128 + libc::WTERMSIG(st);
            }
        }
        if t0.elapsed() > limit {
            // SAFETY: plain syscalls.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut st, 0);
            }
            panic!("pid {pid} did not exit within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Wait until `path` has at least `n` lines.
pub fn wait_lines(path: &Path, n: usize) {
    let t0 = Instant::now();
    loop {
        let c = std::fs::read(path).unwrap_or_default();
        if c.iter().filter(|&&b| b == b'\n').count() >= n {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no {n} lines in {}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Capture `pid` into `img` and kill it (while frozen), then reap it (it is our child).
pub fn capture_kill(pid: i32, img: &Path) {
    let mut opts = ckpt_capture::Options::new(pid);
    opts.leave = ckpt_capture::Leave::Killed;
    let mut p = ckpt_capture::live::LiveCapture::new(opts.clone());
    ckpt_capture::capture_to_path(&mut p, &opts, img, None)
        .unwrap_or_else(|e| panic!("capture of {pid}: {e}"));
    // The capture traced every thread and, with `Leave::Killed`, reaps them all
    // (non-leaders, then the leader, which is also our child): nothing is left.
    let mut st = 0;
    // SAFETY: st is a valid out pointer.
    let r = unsafe { libc::waitpid(pid, &mut st, libc::__WALL | libc::WNOHANG) };
    assert!(
        r == -1 || (r == pid && libc::WIFSIGNALED(st)),
        "{pid} was left behind by the killing capture (waitpid {r}, status {st:#x})"
    );
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists(),
        "{pid} still exists after the killing capture"
    );
}

/// Run the ckpt-restore binary; returns (exit code, stdout, stderr).
pub fn run_restore(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_ckpt-restore"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Restore `img`; returns the pid (asserts success).
pub fn restore(img: &Path, extra: &[&str]) -> i32 {
    let mut a: Vec<&str> = extra.to_vec();
    let s = img.to_str().unwrap();
    a.push(s);
    let (code, out, err) = run_restore(&a);
    assert_eq!(code, 0, "ckpt-restore failed: {err}");
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("pid from {out:?}"))
}

/// Children of `pid` (all threads' children lists).
pub fn children_of(pid: i32) -> Vec<i32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let p = e.unwrap().path().join("children");
        let s = std::fs::read_to_string(p).unwrap_or_default();
        out.extend(s.split_whitespace().map(|w| w.parse::<i32>().unwrap()));
    }
    out.sort_unstable();
    out
}

/// `(ppid, pgid, sid)` of `pid` from /proc.
pub fn ids_of(pid: i32) -> (i32, i32, i32) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let rest = &s[s.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    (
        f[1].parse().unwrap(),
        f[2].parse().unwrap(),
        f[3].parse().unwrap(),
    )
}

/// Capture the tree of `root` (with `--tree`) into `img` and kill it; waits until every
/// process of it is gone (the descendants are reparented to us, the subreaper, and reaped).
pub fn capture_kill_tree(root: i32, img: &Path, pids: &[i32]) {
    let mut opts = ckpt_capture::Options::new(root);
    opts.tree = true;
    opts.leave = ckpt_capture::Leave::Killed;
    let mut p = ckpt_capture::live::LiveCapture::new(opts.clone());
    ckpt_capture::capture_to_path(&mut p, &opts, img, None)
        .unwrap_or_else(|e| panic!("capture of the tree of {root}: {e}"));
    wait_gone(pids);
}

/// Reap (as their subreaper) and wait until none of `pids` exists.
pub fn wait_gone(pids: &[i32]) {
    let t0 = Instant::now();
    loop {
        for &p in pids {
            let mut st = 0;
            // SAFETY: st is a valid out pointer.
            unsafe { libc::waitpid(p, &mut st, libc::__WALL | libc::WNOHANG) };
        }
        if pids
            .iter()
            .all(|p| !Path::new(&format!("/proc/{p}")).exists())
        {
            return;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "processes {pids:?} still exist after the killing capture"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Run the ckpt-restore binary on `img` with `extra` flags; returns the pids it printed.
pub fn restore_all(img: &Path, extra: &[&str]) -> Vec<i32> {
    let mut a: Vec<&str> = extra.to_vec();
    a.push(img.to_str().unwrap());
    let (code, out, err) = run_restore(&a);
    assert_eq!(code, 0, "ckpt-restore failed: {err}");
    if !err.is_empty() {
        eprintln!("ckpt-restore said: {err}");
    }
    out.lines()
        .map(|l| {
            l.trim()
                .parse()
                .unwrap_or_else(|_| panic!("pid in {out:?}"))
        })
        .collect()
}

/// The members of `restore_tree`'s tree: (A, B) below `root`.
pub fn tree_members(root: i32) -> (i32, i32) {
    let t0 = Instant::now();
    loop {
        let a = children_of(root);
        if a.len() == 1 {
            let b = children_of(a[0]);
            if b.len() == 1 {
                return (a[0], b[0]);
            }
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "tree of {root}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A self-checking workload captured mid-run: the reference output of an uninterrupted
/// run, the output file of the captured run and its image.
pub struct Captured {
    /// What `prog args` printed when run to the end without a checkpoint.
    pub want: String,
    /// The captured run's output (the restored process goes on writing it).
    pub out: PathBuf,
    /// The image (`--kill`).
    pub img: PathBuf,
    /// The captured run's pid.
    pub pid: i32,
}

/// Run `prog args` to the end as the reference (its output must end with `tail`), start
/// it again, wait for `lines` lines of output and capture it with `--kill` into `dir`.
pub fn capture_midrun(prog: &str, args: &[&str], dir: &Path, tail: &str, lines: usize) -> Captured {
    let want = String::from_utf8_lossy(&reference(prog, args, dir)).into_owned();
    assert!(want.ends_with(tail), "{want}");
    let out = dir.join("run.out");
    let mut procs = Procs::default();
    let pid = spawn(prog, args, &out, dir);
    procs.0.push(pid);
    wait_lines(&out, lines);
    let img = dir.join("img");
    capture_kill(pid, &img);
    procs.0.clear();
    Captured {
        want,
        out,
        img,
        pid,
    }
}

/// The restored `pid` of `c` exits 0 within `limit`, with no FAIL line, and its output
/// equals the uninterrupted run's.
pub fn assert_same_run(pid: i32, c: &Captured, limit: Duration) {
    let mut procs = Procs(vec![pid]);
    let code = wait_exit(pid, limit);
    procs.0.clear();
    let got = String::from_utf8_lossy(&std::fs::read(&c.out).unwrap()).into_owned();
    assert_eq!(code, 0, "{got}");
    assert_eq!(got.lines().find(|l| l.contains("FAIL")), None, "{got}");
    assert_eq!(got, c.want);
}
