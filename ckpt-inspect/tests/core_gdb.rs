//! export-core opened in the real gdb (issue 9): a test program captured
//! while blocked in read() inside known functions, with a global of known value.
//!
//! Needs cc, gdb, root (ptrace) and the ckpt-capture binary next to this
//! test's binary (built by `cargo test --workspace`); skips with a message
//! when one is missing.

use ckpt_format::{open_slice, Event};
use ckpt_inspect::core_export::{export_core, ExportOptions};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn have(cmd: &str) -> bool {
    Command::new(cmd)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

fn capture_bin() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let p = exe.parent()?.parent()?.join("ckpt-capture");
    p.exists().then_some(p)
}

struct Child(std::process::Child);
impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn gdb_shows_threads_backtrace_global_and_rip() {
    let Some(capture) = capture_bin() else {
        eprintln!("ckpt-capture binary not built: skipped (run cargo test --workspace)");
        return;
    };
    if !have("cc") || !have("gdb") {
        eprintln!("cc or gdb missing: skipped");
        return;
    }
    let t = tempfile::tempdir().unwrap();
    let prog = t.path().join("core_blocked");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/progs/core_blocked.c");
    let st = Command::new("cc")
        .args(["-g", "-O0", "-pthread"])
        .arg(&src)
        .arg("-o")
        .arg(&prog)
        .status()
        .unwrap();
    assert!(st.success(), "cc failed");

    let mut child = Child(
        Command::new(&prog)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut line = String::new();
    BufReader::new(child.0.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let pid: i32 = line.trim().strip_prefix("ready ").unwrap().parse().unwrap();
    // let main reach read() after printing
    std::thread::sleep(std::time::Duration::from_millis(300));

    let img = t.path().join("img.ckpt");
    let out = Command::new(&capture)
        .arg("-o")
        .arg(&img)
        .arg(pid.to_string())
        .output()
        .unwrap();
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("ermission") || err.contains("EPERM") {
            eprintln!("capture needs ptrace rights: skipped ({err})");
            return;
        }
        panic!("ckpt-capture failed: {err}");
    }
    drop(child);

    let bytes = std::fs::read(&img).unwrap();
    let mut tids = Vec::new();
    let mut rip0 = None;
    let mut src = open_slice(&bytes).unwrap();
    while let Some(ev) = src.next_event().unwrap() {
        if let Event::Thread(th) = ev {
            tids.push(th.tid);
            rip0.get_or_insert(th.regs.rip);
        }
    }
    assert_eq!(tids.len(), 2);

    let core = t.path().join("core");
    let rep = export_core(&bytes, ExportOptions { pid: Some(pid) }, &core).unwrap();
    assert_eq!(rep.threads, 2);

    let out = Command::new("gdb")
        .args(["-nx", "-batch"])
        .args(["-ex", "info threads"])
        .args(["-ex", "thread apply all bt"])
        .args(["-ex", "bt"])
        .args(["-ex", "p the_global"])
        .args(["-ex", "info registers rip"])
        .arg(&prog)
        .arg(&core)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{text}");
    let all = format!(
        "{text}\n--- stderr\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for tid in &tids {
        assert!(
            text.contains(&format!("LWP {tid}")),
            "thread {tid} missing:\n{all}"
        );
    }
    // gdb announces each thread once and numbers them 1..=n (a core whose
    // contents-less segments sat at file offset 0 made BFD read the notes
    // once per such segment: `[New LWP …]` 16 times, threads 31 and 32).
    let announced: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("[New LWP "))
        .collect();
    let want: Vec<String> = tids.iter().map(|t| format!("[New LWP {t}]")).collect();
    assert_eq!(announced, want, "thread announcements:\n{all}");
    // `info threads` rows: "* 1    Thread 0x… (LWP 2662) …", "  2    Thread …"
    let mut rows: Vec<(u32, i32)> = text
        .lines()
        .filter_map(|l| {
            let l = l.trim_start_matches('*').trim_start();
            let (id, rest) = l.split_once(char::is_whitespace)?;
            let id: u32 = id.parse().ok()?;
            let lwp = rest
                .split_once("(LWP ")?
                .1
                .split_once(')')?
                .0
                .parse()
                .ok()?;
            Some((id, lwp))
        })
        .collect();
    rows.sort();
    rows.dedup();
    let want: Vec<(u32, i32)> = tids
        .iter()
        .enumerate()
        .map(|(i, &t)| (i as u32 + 1, t))
        .collect();
    assert_eq!(rows, want, "info threads:\n{all}");
    assert!(
        text.contains("main_waits_here"),
        "no main_waits_here in bt:\n{all}"
    );
    assert!(
        text.contains("worker_waits_here"),
        "no worker_waits_here in bt:\n{all}"
    );
    assert!(
        text.contains("in main ()") || text.contains(" main ("),
        "bt does not reach main:\n{all}"
    );
    assert!(
        text.contains("$1 = 1592594997"),
        "the_global (0x5eed1235) wrong:\n{all}"
    );
    let rip = format!("{:#x}", rip0.unwrap());
    assert!(
        text.lines()
            .any(|l| l.starts_with("rip") && l.contains(&rip)),
        "rip {rip} not shown:\n{all}"
    );
}
