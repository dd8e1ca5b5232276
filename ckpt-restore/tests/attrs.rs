//! Process attributes and states carried by a restore: each workload checks itself, and
//! its output after capture → kill → restore equals an uninterrupted run's.
mod common;
use common::*;
use std::time::{Duration, Instant};

const LIMIT: Duration = Duration::from_secs(120);

fn state_of(pid: i32) -> char {
    let st = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    st.rfind(')')
        .and_then(|i| st[i + 2..].chars().next())
        .unwrap_or('?')
}

fn wait_state(pid: i32, want: char) {
    let t0 = Instant::now();
    while state_of(pid) != want {
        assert!(
            t0.elapsed() < LIMIT,
            "pid {pid} not in state {want}: {}",
            state_of(pid)
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// no_new_privs (root and child), a MAP_SHARED mapping through a read-only descriptor
/// (VM_MAYSHARE without VM_SHARED: it came back private before), an O_PATH descriptor
/// (the restore failed on it, after `--kill`), and a child's parent-death signal (it came
/// back 0): equal output, and the child's own checks pass.
#[test]
fn no_new_privs_read_only_shared_mapping_and_a_childs_pdeath_signal() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["300"];
    let want = reference("restore_attrs", &args, dir.path());
    assert!(
        want.ends_with(b"child exited 0\ndone\n"),
        "{}",
        String::from_utf8_lossy(&want)
    );
    assert!(String::from_utf8_lossy(&want).starts_with("0 nnp=1 shared=s opath=1\n"));
    let out = dir.path().join("run.out");
    let mut procs = Procs::default();
    let root = spawn("restore_attrs", &args, &out, dir.path());
    procs.0.push(root);
    wait_lines(&out, 40);
    let kids = children_of(root);
    assert_eq!(kids.len(), 1);
    let img = dir.path().join("img");
    capture_kill_tree(root, &img, &[root, kids[0]]);
    let pids = restore_all(&img, &["--pid-same"]);
    assert_eq!(pids, vec![root, kids[0]]);
    assert_eq!(wait_exit(root, LIMIT), 0);
    procs.0.clear();
    assert_eq!(
        String::from_utf8_lossy(&std::fs::read(&out).unwrap()),
        String::from_utf8_lossy(&want)
    );
}

/// A process captured while stopped (SIGSTOP, job control) is stopped again after the
/// restore (it came back running before), and continues exactly after SIGCONT.
#[test]
fn stopped_process_is_stopped_again() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["300", "1"];
    let want = reference("restore_counter", &args, dir.path());
    let out = dir.path().join("run.out");
    let mut procs = Procs::default();
    let pid = spawn("restore_counter", &args, &out, dir.path());
    procs.0.push(pid);
    wait_lines(&out, 20);
    // SAFETY: plain syscall.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
    wait_state(pid, 'T');
    let img = dir.path().join("img");
    capture_kill(pid, &img);
    let p = restore(&img, &["--pid-same"]);
    wait_state(p, 'T');
    let lines = std::fs::read(&out).unwrap();
    // SAFETY: plain syscall.
    assert_eq!(unsafe { libc::kill(p, libc::SIGCONT) }, 0);
    assert_eq!(wait_exit(p, LIMIT), 0);
    procs.0.clear();
    let after = std::fs::read(&out).unwrap();
    assert!(after.len() > lines.len());
    assert_eq!(after, want);
}

/// Per-mapping advice and locks (DONTFORK, WIPEONFORK, HUGEPAGE, NOHUGEPAGE, DONTDUMP,
/// SEQUENTIAL, RANDOM, mlock, mlock2 ONFAULT, MERGEABLE where KSM exists): the workload
/// checks its VmFlags every step and WIPEONFORK in a child at the end; they came back
/// without any of them before.
#[test]
fn advice_and_locks_of_each_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["300"];
    let want = reference("restore_madvise", &args, dir.path());
    assert!(
        want.ends_with(b"299 ok\nPASS\n"),
        "{}",
        String::from_utf8_lossy(&want)
    );
    let out = dir.path().join("run.out");
    let mut procs = Procs::default();
    let pid = spawn("restore_madvise", &args, &out, dir.path());
    procs.0.push(pid);
    wait_lines(&out, 40);
    let img = dir.path().join("img");
    capture_kill(pid, &img);
    let p = restore(&img, &["--pid-same"]);
    assert_eq!(wait_exit(p, LIMIT), 0);
    procs.0.clear();
    let got = String::from_utf8_lossy(&std::fs::read(&out).unwrap()).into_owned();
    let first_fail = got.lines().find(|l| l.contains("FAIL"));
    assert_eq!(first_fail, None);
    assert_eq!(got, String::from_utf8_lossy(&want));
}

/// Zombie children (exit 7, SIGTERM, SIGPIPE) captured with `--tree` come back as
/// zombies with their statuses, pids and parent: the program checks them every step
/// without reaping, then reaps them by pid. They were refused before (after `--kill`).
#[test]
fn zombie_children_come_back_as_zombies() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["300"];
    let want = reference("restore_zombie", &args, dir.path());
    assert!(
        want.ends_with(b"child 0 exited 7\nchild 1 killed 15\nchild 2 killed 13\nPASS\n"),
        "{}",
        String::from_utf8_lossy(&want)
    );
    let out = dir.path().join("run.out");
    let mut procs = Procs::default();
    let root = spawn("restore_zombie", &args, &out, dir.path());
    procs.0.push(root);
    wait_lines(&out, 40);
    let kids = children_of(root);
    assert_eq!(kids.len(), 3);
    for &k in &kids {
        assert_eq!(state_of(k), 'Z');
    }
    let img = dir.path().join("img");
    let mut all = vec![root];
    all.extend(&kids);
    capture_kill_tree(root, &img, &all);
    let pids = restore_all(&img, &["--pid-same"]);
    assert_eq!(pids, all);
    for &k in &kids {
        assert_eq!(state_of(k), 'Z', "pid {k}");
        assert_eq!(ids_of(k).0, root, "parent of {k}");
    }
    assert_eq!(wait_exit(root, LIMIT), 0);
    procs.0.clear();
    assert_eq!(
        String::from_utf8_lossy(&std::fs::read(&out).unwrap()),
        String::from_utf8_lossy(&want)
    );
}

/// Anonymous shared memory inherited across fork stays one object after a `--tree`
/// restore (it was refused before, and restored as two copies before that): the parent
/// and the child keep talking through it, and the pattern in it is intact.
#[test]
fn shared_anonymous_memory_between_parent_and_child() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["300"];
    let want = reference("restore_shared", &args, dir.path());
    assert!(
        want.ends_with(b"299 ok\nchild exited 0\nPASS\n"),
        "{}",
        String::from_utf8_lossy(&want)
    );
    let out = dir.path().join("run.out");
    let mut procs = Procs::default();
    let root = spawn("restore_shared", &args, &out, dir.path());
    procs.0.push(root);
    wait_lines(&out, 40);
    let kids = children_of(root);
    assert_eq!(kids.len(), 1);
    let img = dir.path().join("img");
    capture_kill_tree(root, &img, &[root, kids[0]]);
    let pids = restore_all(&img, &["--pid-same"]);
    assert_eq!(pids, vec![root, kids[0]]);
    assert_eq!(wait_exit(root, LIMIT), 0);
    procs.0.clear();
    let got = String::from_utf8_lossy(&std::fs::read(&out).unwrap()).into_owned();
    assert_eq!(got.lines().find(|l| l.contains("FAIL")), None);
    assert_eq!(got, String::from_utf8_lossy(&want));
}

/// Process and thread attributes (`restore_procattrs.c`): oom_score_adj, coredump_filter,
/// child subreaper, THP disabled, dumpable 0; per thread nice, timer slack, CPU affinity,
/// I/O priority, SCHED_BATCH and SCHED_FIFO. Each thread checks itself all the time; the
/// image holds them, `/proc` shows them on the restored threads, and the output equals an
/// uninterrupted run's. Capture refused all of them before (they differed from its own);
/// without the restore step every thread has ckpt-restore's and the workload FAILs.
#[test]
fn process_and_thread_attributes_come_back() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["300"];
    let want = reference("restore_procattrs", &args, dir.path());
    let w = String::from_utf8_lossy(&want).into_owned();
    assert!(w.ends_with("299 ok\nPASS\n"), "{w}");
    let out = dir.path().join("run.out");
    let mut procs = Procs::default();
    let pid = spawn("restore_procattrs", &args, &out, dir.path());
    procs.0.push(pid);
    wait_lines(&out, 20);
    let img = dir.path().join("img");
    capture_kill(pid, &img);
    procs.0.clear();

    let bytes = std::fs::read(&img).unwrap();
    let mut src = ckpt_format::open_slice(&bytes).unwrap();
    let (mut pa, mut ta) = (None, Vec::new());
    while let Some(e) = src.next_event().unwrap() {
        match e {
            ckpt_format::Event::Task(t) => pa = t.records.attrs,
            ckpt_format::Event::Thread(t) => ta.push(t.records.attrs.clone().unwrap()),
            _ => {}
        }
    }
    let pa = pa.expect("process_attrs");
    assert_eq!(
        (
            pa.oom_score_adj,
            pa.coredump_filter,
            pa.child_subreaper,
            pa.thp_disable,
            pa.dumpable
        ),
        (500, 0x21, 1, 1, 0)
    );
    assert_eq!(ta.len(), 3);
    let lead = &ta[0];
    assert_eq!(
        (lead.nice, lead.timer_slack, lead.ioprio),
        (5, 123_456, 3 << 13)
    );
    assert_eq!(lead.cpus(), vec![0]);
    assert!(ta
        .iter()
        .any(|t| (t.policy, t.nice, t.timer_slack) == (3, 7, 654_321)));
    assert!(ta.iter().any(|t| (t.policy, t.rt_priority) == (1, 2)));

    let p = restore(&img, &["--pid-same"]);
    procs.0.push(p);
    assert_eq!(ckpt_sys::attrs::oom_score_adj(p).unwrap(), 500);
    assert_eq!(ckpt_sys::attrs::coredump_filter(p).unwrap(), 0x21);
    let mut seen = Vec::new();
    for e in std::fs::read_dir(format!("/proc/{p}/task")).unwrap() {
        let tid: i32 = e.unwrap().file_name().to_str().unwrap().parse().unwrap();
        let s = ckpt_sys::attrs::thread_sched(p, tid).unwrap();
        seen.push((s.policy, s.nice));
    }
    seen.sort();
    assert_eq!(seen, vec![(0, 5), (1, 0), (3, 7)]);
    assert_eq!(wait_exit(p, LIMIT), 0);
    procs.0.clear();
    let got = String::from_utf8_lossy(&std::fs::read(&out).unwrap()).into_owned();
    assert_eq!(got.lines().find(|l| l.contains("FAIL")), None);
    assert_eq!(got, w);
}

/// Descriptors on the process's own /proc entries (a status file at offset 6, the task
/// directory, an O_PATH /proc/self): restored under another pid (`--pid-any`), they are
/// on the restored process's entries at the same offset, which the workload checks every
/// step. Before, the restore opened the captured pid's path before the process existed
/// and failed after `--kill` (CI: `opening /proc/PID/smaps`), or would have opened
/// another process's entry.
#[test]
fn descriptors_on_its_own_proc_entries_follow_the_new_pid() {
    let dir = tempfile::tempdir().unwrap();
    let c = capture_midrun(
        "restore_procself",
        &["250"],
        dir.path(),
        "249 ok\nPASS\n",
        20,
    );
    let p = restore(&c.img, &["--pid-any"]);
    assert_ne!(p, c.pid, "--pid-any gives another pid");
    assert_same_run(p, &c, LIMIT);
}
