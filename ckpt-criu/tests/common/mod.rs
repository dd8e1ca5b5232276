//! Shared by the tests that dump real processes with CRIU 4.1.1 (scripts/build-criu.sh).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `(criu, crit)` from scripts/build-criu.sh (built and cached under target/criu/ on first
/// use), or `None` with a note when this machine cannot run them. In CI (CI set) a missing
/// CRIU or missing root fails the test instead of skipping it.
pub fn criu() -> Option<(PathBuf, PathBuf)> {
    let ci = std::env::var_os("CI").is_some();
    let skip = |why: String| -> Option<(PathBuf, PathBuf)> {
        if ci {
            panic!("CRIU tests cannot run in CI: {why}");
        }
        eprintln!("skipping: {why}");
        None
    };
    if !nix_root() {
        return skip("not root (criu dump needs root)".into());
    }
    let script = root().join("scripts/build-criu.sh");
    let run = |arg: Option<&str>| -> Result<PathBuf, String> {
        let mut c = Command::new("bash");
        c.arg(&script);
        if let Some(a) = arg {
            c.arg(a);
        }
        let o = c.output().map_err(|e| e.to_string())?;
        if !o.status.success() {
            return Err(String::from_utf8_lossy(&o.stderr).into_owned());
        }
        Ok(PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
    };
    match (run(None), run(Some("--crit"))) {
        (Ok(a), Ok(b)) => Some((a, b)),
        (Err(e), _) | (_, Err(e)) => skip(format!("scripts/build-criu.sh failed: {e}")),
    }
}

fn nix_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false)
}

/// A process started in its own session (what `criu dump --shell-job` expects), killed on drop.
pub struct Workload {
    pub child: Child,
    pub pid: u32,
}

impl Workload {
    pub fn start(argv: &[&str]) -> Workload {
        let child = Command::new("setsid")
            .args(argv)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start workload");
        let pid = child.id();
        Workload { child, pid }
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        // Its process group (the pipeline's members), by id: the workload leads its own
        // session and group. Never a pid <= 1. (Not through kill(1): procps' kill reads
        // `-9 -PID` as a list of pids and ends in kill(-1, SIGKILL).)
        let pgid = self.pid as i32;
        if pgid > 1 {
            // SAFETY: kill(2) with a negative pid names one process group.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Wait until `f` holds (a few seconds at most).
pub fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `criu dump -t PID -D dir --shell-job` (the process is killed by the dump).
pub fn dump(criu: &Path, pid: u32, dir: &Path, extra: &[&str]) {
    std::fs::create_dir_all(dir).unwrap();
    let o = Command::new(criu)
        .args(["dump", "-t", &pid.to_string(), "-D"])
        .arg(dir)
        .args(["--shell-job", "-v2", "-o", "dump.log"])
        .args(extra)
        .output()
        .expect("run criu");
    let log = std::fs::read_to_string(dir.join("dump.log")).unwrap_or_default();
    assert!(
        o.status.success(),
        "criu dump failed: {}\n{}",
        String::from_utf8_lossy(&o.stderr),
        log.lines().rev().take(30).collect::<Vec<_>>().join("\n")
    );
    let _ = std::fs::remove_file(dir.join("dump.log"));
}

/// `crit decode -i FILE` as JSON.
pub fn crit(crit: &Path, file: &Path) -> serde_json::Value {
    let o = Command::new(crit)
        .args(["decode", "-i"])
        .arg(file)
        .output()
        .expect("run crit");
    assert!(
        o.status.success(),
        "crit decode {}: {}",
        file.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).expect("crit JSON")
}
