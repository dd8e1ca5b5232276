//! Pre-copy: `--pre` passes while a writer rewrites its pages, a final `--parent`
//! increment, and a restore of the chain that the workload itself checks page by page
//! (fixtures/progs/memhog.c: every page is a function of its index and generation).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn memhog() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("ckpt-capture-precopy");
    std::fs::create_dir_all(&dir).unwrap();
    let exe = dir.join("memhog");
    let tmp = dir.join(format!("memhog.tmp{}", std::process::id()));
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/progs/memhog.c");
    let st = Command::new("cc")
        .args(["-O2", "-o"])
        .arg(&tmp)
        .arg(&src)
        .status()
        .expect("cc");
    assert!(st.success());
    std::fs::rename(&tmp, &exe).unwrap();
    exe
}

fn capture(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ckpt-capture"))
        .arg("--json")
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ckpt-capture {args:?}: {err}");
    let line = err
        .lines()
        .find(|l| l.starts_with('{'))
        .expect("json stats");
    serde_json::from_str(line).unwrap()
}

fn wait_for(path: &Path, what: &str) -> String {
    let t0 = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if let Some(l) = text.lines().find(|l| l.starts_with(what)) {
            return l.to_string();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no {what:?} in {text:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn holders_of(pid: i32) -> usize {
    let mut n = 0;
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let args: Vec<&[u8]> = cmd.split(|&b| b == 0).collect();
        if args.len() >= 3 && args[1] == b"--hold-tracker" && args[2] == pid.to_string().as_bytes()
        {
            n += 1;
        }
    }
    n
}

/// The restored workload, killed when the test ends however it ends.
struct KillPid(i32);

impl Drop for KillPid {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-9", &self.0.to_string()])
            .status();
    }
}

/// The workload, killed when the test ends however it ends.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn pre_copy_chain_restores_exactly() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let log = dir.path().join("hog.out");
    // 32 MiB, the first half rewritten at 20% of all pages per second: the second half is
    // never written after the first pass, whatever the timing.
    let mut child = Killed(
        Command::new(memhog())
            .args(["32", "rand", "20", "50"])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let pid = child.0.id() as i32;
    wait_for(&log, "ready");
    let img = |n: &str| dir.path().join(n).to_string_lossy().into_owned();
    let p1 = capture(&["--pre", "-o", &img("pre1"), &pid.to_string()]);
    assert_eq!(p1["pages_in_parent"], 0);
    assert_eq!(p1["threads"], 0);
    assert!(p1["pages_stored"].as_u64().unwrap() >= 8192, "{p1}");
    assert_eq!(
        holders_of(pid),
        1,
        "a holder keeps the tracking between passes"
    );
    std::thread::sleep(Duration::from_millis(300));
    let p2 = capture(&[
        "--pre",
        "--parent",
        &img("pre1"),
        "-o",
        &img("pre2"),
        &pid.to_string(),
    ]);
    let kept = p2["pages_in_parent"].as_u64().unwrap();
    let stored = p2["pages_stored"].as_u64().unwrap();
    assert!(
        kept >= 4096,
        "the unwritten half is kept in the parent: {p2}"
    );
    assert!(kept + stored >= 8192, "{p2}");
    assert_eq!(holders_of(pid), 1);
    let fin = capture(&[
        "--parent",
        &img("pre2"),
        "--kill",
        "-o",
        &img("final"),
        &pid.to_string(),
    ]);
    assert!(fin["pages_in_parent"].as_u64().unwrap() > 0, "{fin}");
    assert_eq!(fin["threads"], 1);
    let _ = child.0.wait();
    assert_eq!(holders_of(pid), 0, "the final capture ends the tracking");

    // Through the inspector: the chain reads as one image with every page.
    let insp = ckpt_inspect_verify(&img("final"));
    assert!(insp.starts_with("OK"), "{insp}");
    let n: u64 = insp.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(n >= 8192, "{insp}");

    // Restore the chain; the workload checks every page itself.
    let map = |p: &str| ckpt_restore::map_image(&std::fs::File::open(p).unwrap()).unwrap();
    let (f, a, b) = (map(&img("final")), map(&img("pre2")), map(&img("pre1")));
    let before = std::fs::read_to_string(&log).unwrap().len();
    let pids = ckpt_restore::restore_chain(
        &f,
        &[&a, &b],
        &ckpt_restore::Options {
            pid_mode: ckpt_restore::PidMode::Any,
            leave_stopped: false,
            root: None,
            reattach_tty: false,
        },
    )
    .unwrap();
    let r = pids[0];
    let _restored = KillPid(r);
    let st = Command::new("kill")
        .args(["-USR1", &r.to_string()])
        .status()
        .unwrap();
    assert!(st.success());
    let t0 = Instant::now();
    let line = loop {
        let text = std::fs::read_to_string(&log).unwrap();
        if let Some(l) = text[before.min(text.len())..]
            .lines()
            .find(|l| l.starts_with("verify"))
        {
            break l.to_string();
        }
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no verify line: {text:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(line, "verify ok 8192");

    // A chain with the wrong parent is refused before anything runs.
    let err = ckpt_restore::restore_chain(
        &f,
        &[&b, &a],
        &ckpt_restore::Options {
            pid_mode: ckpt_restore::PidMode::Any,
            leave_stopped: false,
            root: None,
            reattach_tty: false,
        },
    )
    .unwrap_err();
    assert!(err.to_string().contains("parent"), "{err}");
}

fn ckpt_inspect_verify(path: &str) -> String {
    let mut img = ckpt_inspect::source::Image::open(path).unwrap();
    let (mut src, _) = img.events(Default::default()).unwrap();
    let rep = ckpt_format::validate::validate(&mut *src);
    match rep.error {
        None => format!("OK {} pages", rep.pages),
        Some(e) => format!("error {e}"),
    }
}
