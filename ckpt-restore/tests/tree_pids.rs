//! Issue 15 point 8: a `--tree` restore gives every child process its captured pid, or
//! refuses before creating anything. A `sh` restored with its child under another pid
//! used to spin at 100% CPU: its job table held the old pid.
mod common;
use common::*;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn comm(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn a_shell_and_its_child_get_their_pids_back_or_nothing_is_created() {
    build_progs();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("sh.out");
    #[allow(clippy::zombie_processes)] // reaped as their subreaper (wait_gone, wait_exit)
    let c = Command::new("sh")
        .arg("-c")
        .arg("sleep 1000; echo sh-done $?")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let sh = c.id() as i32;
    let mut procs = Procs(vec![sh]);
    let t0 = Instant::now();
    let sleep = loop {
        if let Some(&k) = children_of(sh).first() {
            if comm(k) == "sleep" {
                break k;
            }
        }
        assert!(t0.elapsed() < Duration::from_secs(30), "sh never ran sleep");
        std::thread::sleep(Duration::from_millis(2));
    };
    procs.0.push(sleep);
    let img = dir.path().join("img");
    capture_kill_tree(sh, &img, &[sh, sleep]);

    // The child's pid is taken: refused, naming it, its holder and the parent; nothing
    // is created (the shell's pid stays free).
    let held = Command::new(progs_dir().join("restore_holdpid"))
        .arg(sleep.to_string())
        .output()
        .unwrap();
    assert!(held.status.success(), "{held:?}");
    {
        let _holder = Procs(vec![sleep]);
        let (code, stdout, err) = run_restore(&[img.to_str().unwrap()]);
        assert_eq!(code, 1, "stdout {stdout:?} stderr {err:?}");
        assert!(
            err.contains(&format!("pid {sleep} (sleep) is taken")),
            "{err}"
        );
        assert!(err.contains(&format!("its parent {sh} (sh)")), "{err}");
        assert!(err.contains("--pid-any"), "{err}");
        assert!(stdout.is_empty());
        assert!(!Path::new(&format!("/proc/{sh}")).exists());
    }
    wait_gone(&[sleep]);

    // Free again: both come back with their pids, and the shell really waits for its
    // child: killing the sleep lets it print the status and exit.
    let pids = restore_all(&img, &[]);
    assert_eq!(pids, vec![sh, sleep]);
    assert_eq!(ids_of(sleep).0, sh);
    // SAFETY: plain kill of the restored sleep.
    assert_eq!(unsafe { libc::kill(sleep, libc::SIGTERM) }, 0);
    assert_eq!(wait_exit(sh, Duration::from_secs(60)), 0);
    procs.0.clear();
    wait_gone(&[sleep]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "sh-done 143\n");
}
