//! Issue 15 point 8: a `--tree` restore gives every child process its captured pid, or
//! refuses before creating anything; `--pid-ns` gives them their pids in a new pid
//! namespace when they are taken here. A `sh` restored with its child under another pid
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

/// The `NSpid:` line of `pid`: its pid in each namespace, ours first.
fn nspid(pid: i32) -> Vec<i32> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .unwrap()
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect()
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
        assert!(err.contains("--pid-ns"), "{err}");

        // With --pid-ns it comes back while the pid is still taken: in a new pid
        // namespace both processes have their captured pids, under an init of ours
        // (pid 1 there); the shell really waits for its child, and the init leaves
        // with the tree.
        let ns = restore_all(&img, &["--pid-ns"]);
        assert_eq!(ns.len(), 2, "{ns:?}");
        assert_eq!(nspid(ns[0]), vec![ns[0], sh]);
        assert_eq!(nspid(ns[1]), vec![ns[1], sleep]);
        assert_eq!(ids_of(ns[1]).0, ns[0]);
        let init = children_of(std::process::id() as i32)
            .into_iter()
            .find(|&p| comm(p) == "ckpt-nsinit")
            .expect("the namespace's init, reparented to us");
        assert_eq!(nspid(init), vec![init, 1]);
        // SAFETY: plain kill of the sleep restored in the namespace.
        assert_eq!(unsafe { libc::kill(ns[1], libc::SIGTERM) }, 0);
        assert_eq!(wait_exit(ns[0], Duration::from_secs(60)), 0);
        assert_eq!(
            wait_exit(init, Duration::from_secs(60)),
            0,
            "the init leaves once the tree is gone"
        );
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "sh-done 143\n");
        std::fs::write(&out, b"").unwrap(); // as it was at the capture
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
