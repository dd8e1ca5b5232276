//! State ckpt does not carry yet is refused before `--kill`, naming the pid and the kind,
//! and the target keeps running (fixtures/progs/uncarried.c holds one piece per mode).

mod common;
use common::*;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::process::Command;

fn counting_on(t: &mut Target, n: usize) {
    let mut last: u64 = t.line().parse().unwrap();
    for _ in 0..n {
        let v: u64 = t.line().parse().unwrap();
        assert_eq!(v, last + 1);
        last = v;
    }
}

fn state_of(pid: i32) -> char {
    let st = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    st[st.rfind(')').unwrap() + 2..].chars().next().unwrap()
}

/// Start `mode`; returns the target and the pids of its "ready" line.
fn start(mode: &str) -> (Target, Vec<i32>) {
    let mut t = Target::spawn("uncarried", &[mode]);
    let ready = t.line();
    let pids: Vec<i32> = ready
        .strip_prefix("ready ")
        .unwrap_or_else(|| panic!("{mode}: {ready}"))
        .split_whitespace()
        .map(|x| x.parse().unwrap())
        .collect();
    (t, pids)
}

/// `ckpt-capture --kill [--tree] PID` must exit 1 naming `pid` and every `want` text;
/// no image is left, and every one of `alive` is still there, not stopped.
fn refused(pid: i32, tree: bool, want: &[&str], alive: &[i32]) {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img");
    let mut c = Command::new(bin());
    c.arg("--kill").arg("-o").arg(&img);
    if tree {
        c.arg("--tree");
    }
    let out = c.arg(pid.to_string()).output().unwrap();
    let e = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{e}");
    for w in want {
        assert!(e.contains(w), "expected {w:?} in: {e}");
    }
    assert!(!img.exists(), "an image was written: {e}");
    for &p in alive {
        let s = state_of(p);
        assert!(matches!(s, 'S' | 'R' | 'Z'), "pid {p} left in state {s}");
    }
}

#[test]
fn timers_a_restore_cannot_rebuild_are_refused() {
    // (Other timers are carried: ckpt-restore's tests/timers.rs.)
    for (mode, want) in [
        (
            "timer-thread-clock",
            "POSIX timer 0 (CPU clock of the thread that created it): the process has 2 threads",
        ),
        ("timer-parent-clock", "POSIX timer 0 (CPU clock of process "),
    ] {
        let (mut t, p) = start(mode);
        refused(p[0], false, &[&format!("pid {}: {want}", p[0])], &[p[0]]);
        counting_on(&mut t, 3);
    }
}

#[test]
fn process_attributes_not_carried_are_refused() {
    // (nice, oom_score_adj, timer slack, THP disabled, dumpable 0, subreaper are carried:
    // ckpt-restore's process_and_thread_attributes_come_back.)
    for (mode, want) in [
        (
            "pdeath",
            "parent-death signal 15 (PR_SET_PDEATHSIG; its parent is not in the image)",
        ),
        (
            "deadline",
            "SCHED_DEADLINE (its runtime, deadline and period are not captured)",
        ),
        (
            "seccomp-notif",
            "seccomp filter 0 returns SECCOMP_RET_USER_NOTIF (its listener is not carried)",
        ),
    ] {
        let (mut t, p) = start(mode);
        refused(p[0], false, &[&format!("pid {}: {want}", p[0])], &[p[0]]);
        counting_on(&mut t, 3);
    }
}

#[test]
fn shared_memory_between_processes_is_refused() {
    let (mut t, p) = start("shared-fork");
    // (Both in the image, one object with two mappers, is carried: ckpt-restore's
    // shared_anonymous_memory_between_parent_and_child.)
    // The child alone: its parent, outside the image, maps the same object.
    refused(
        p[1],
        false,
        &[&format!(
            "is also mapped by pid {}, which is not in the image",
            p[0]
        )],
        &[p[0], p[1]],
    );
    counting_on(&mut t, 3);
    let (mut t, p) = start("sysv-shm");
    refused(
        p[0],
        false,
        &["System V shared memory segment /SYSV"],
        &[p[0]],
    );
    counting_on(&mut t, 3);
}

#[test]
fn fd_owners_and_a_shared_fd_table_are_refused() {
    // (An owner in the image and an I/O signal are carried: ckpt-restore's
    // fd_owners_and_signals_come_back.) An owner outside the image:
    let (mut t, p) = start("setown");
    refused(
        p[0],
        false,
        &[&format!(
            "pid {} fd 3: signal-driven I/O goes to process {}, not in the image (F_SETOWN)",
            p[0],
            std::process::id()
        )],
        &[p[0]],
    );
    counting_on(&mut t, 3);
    let (mut t, p) = start("clone-files");
    refused(
        p[0],
        true,
        &[&format!(
            "pid {}: shares its fd table (CLONE_FILES) with pid {}",
            p[0], p[1]
        )],
        &[p[0], p[1]],
    );
    refused(
        p[1],
        false,
        &[&format!(
            "pid {}: shares its fd table (CLONE_FILES) with pid {}, which is not in the image",
            p[1], p[0]
        )],
        &[p[0], p[1]],
    );
    counting_on(&mut t, 3);
}

#[test]
fn pidfds_on_processes_outside_the_image_are_refused() {
    // (A pidfd on a process of the image is carried: ckpt-restore's
    // pidfds_name_the_restored_processes.)
    let (mut t, p) = start("pidfd-parent");
    let parent = std::process::id();
    refused(
        p[0],
        false,
        &[&format!(
            "pid {} fd 3: a pidfd, not carried: it refers to pid {parent}, which is not in the image",
            p[0]
        )],
        &[p[0]],
    );
    counting_on(&mut t, 3);
    let (mut t, p) = start("pidfd-reaped");
    refused(
        p[0],
        false,
        &["a pidfd, not carried: the process it refers to has exited and was reaped"],
        &[p[0]],
    );
    counting_on(&mut t, 3);
}

#[test]
fn exited_leader_and_traced_children_are_refused() {
    // A child whose main thread exited while another runs: shown as a zombie, but not one.
    let (mut t, p) = start("exited-leader");
    assert_eq!(state_of(p[1]), 'Z');
    refused(
        p[0],
        true,
        &[&format!(
            "pid {}: its main thread exited while 1 other thread(s) still run",
            p[1]
        )],
        &[p[0], p[1]],
    );
    counting_on(&mut t, 3);
    let (mut t, p) = start("traced-child");
    refused(
        p[0],
        true,
        &[&format!("pid {} is traced by pid {}", p[1], p[0])],
        &[p[0], p[1]],
    );
    counting_on(&mut t, 3);
}

#[test]
fn deleted_files_and_memfds_that_cannot_be_carried_are_refused() {
    // Deleted files and memfds are carried with their contents (ckpt-restore
    // tests/contents.rs), up to 256 MiB each.
    let (mut t, p) = start("big-memfd");
    refused(
        p[0],
        false,
        &[
            &format!(
                "pid {} fd 3 (/memfd:ckpt-big (deleted)): 257 MiB of data",
                p[0]
            ),
            "more than the 256 MiB one deleted file or memfd may carry",
        ],
        &[p[0]],
    );
    counting_on(&mut t, 3);
    // A name unlinked while the file stays linked under another: not a file of its own.
    let (mut t, p) = start("linked-elsewhere");
    let name = std::fs::read_link(format!("/proc/{}/fd/3", p[0])).unwrap();
    let name = name.to_str().unwrap().strip_suffix(" (deleted)").unwrap();
    let other = format!("{name}.other");
    assert!(std::path::Path::new(&other).exists());
    refused(
        p[0],
        false,
        &[
            &format!("pid {} fd 3 (/tmp/ckpt-linked-", p[0]),
            "still linked elsewhere (1 link(s))",
        ],
        &[p[0]],
    );
    counting_on(&mut t, 3);
    std::fs::remove_file(other).unwrap();
}

/// A pty master is carried (a restore makes a new pair: ckpt-restore's tests/tty_pairs.rs),
/// but not what such a restore would lose: 5 bytes the slave wrote wait unread on the
/// master (a tty queue cannot be peeked), and the slave is also open in a process
/// outside the captured ones (this test), which would keep the old pty. Both named.
#[test]
fn a_pty_master_with_queued_bytes_or_an_outside_slave_is_refused() {
    let (mut t, p) = start("pty-master");
    let pts = std::fs::read_link(format!("/proc/{}/fd/4", p[0])).unwrap();
    let outside = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(&pts)
        .unwrap();
    let me = std::process::id();
    let n = pts
        .to_str()
        .unwrap()
        .trim_start_matches("/dev/pts/")
        .to_string();
    refused(
        p[0],
        false,
        &[
            &format!(
                "pid {} fd 3: the pty /dev/pts/{n} (master) holds 5 byte(s) written by its slave side and not read yet",
                p[0]
            ),
            &format!(
                "pid {}: holds the master of /dev/pts/{n}, whose slave is open in pid {me} (",
                p[0]
            ),
            &format!(") fd {}, outside the captured processes", outside.as_raw_fd()),
        ],
        &[p[0]],
    );
    counting_on(&mut t, 3);
}
