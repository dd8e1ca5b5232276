//! Issue 15: the live path never harms what it touches. Each test reproduces a harm
//! seen with an earlier version (output objects replaced, children orphaned, a process
//! killed whose image would be refused) and checks it cannot happen.

mod common;
use common::*;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::process::{Command, Output};

fn counting_on(t: &mut Target, n: usize) {
    let mut last: u64 = t.line().parse().unwrap();
    for _ in 0..n {
        let v: u64 = t.line().parse().unwrap();
        assert_eq!(v, last + 1);
        last = v;
    }
}

fn capture(args: &[&str], out: &Path, pid: i32) -> Output {
    Command::new(bin())
        .args(args)
        .arg("-o")
        .arg(out)
        .arg(pid.to_string())
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn mknod(p: &Path, major: u32, minor: u32) {
    let st = Command::new("mknod")
        .arg(p)
        .args(["c", &major.to_string(), &minor.to_string()])
        .status()
        .unwrap();
    assert!(st.success(), "mknod (the live tests run as root)");
}

fn no_leftovers(dir: &Path) {
    let left: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("ckpt-tmp"))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}

/// `-o` at a device, a FIFO, a symlink or a directory: written through / followed /
/// refused, never replaced by a regular file (`-o /dev/full` used to replace it).
#[test]
fn output_objects_are_never_replaced() {
    let mut t = Target::spawn("counter", &[]);
    t.line();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();

    // A device that fails every write (as /dev/full; made here so a regression cannot
    // replace the machine's): the capture fails, the device stays, the target runs.
    let full = d.join("full");
    mknod(&full, 1, 7);
    let rdev = std::fs::metadata(&full).unwrap().rdev();
    let o = capture(&[], &full, t.pid());
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    let md = std::fs::symlink_metadata(&full).unwrap();
    assert!(md.file_type().is_char_device(), "the device was replaced");
    assert_eq!(md.rdev(), rdev);
    counting_on(&mut t, 3);

    // A null device: written through, still a device.
    let null = d.join("null");
    mknod(&null, 1, 3);
    let o = capture(&[], &null, t.pid());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::symlink_metadata(&null)
        .unwrap()
        .file_type()
        .is_char_device());
    counting_on(&mut t, 3);

    // A FIFO with a reader: the reader gets the whole image; the FIFO stays.
    let fifo = d.join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let f2 = fifo.clone();
    let reader = std::thread::spawn(move || std::fs::read(&f2).unwrap());
    let o = capture(&[], &fifo, t.pid());
    assert!(o.status.success(), "{}", stderr(&o));
    let bytes = reader.join().unwrap();
    let evs = decode(&bytes);
    assert!(evs
        .iter()
        .any(|e| matches!(e, ckpt_format::Event::Task(x) if x.pid == t.pid())));
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());

    // A symlink: the file it names is written, the link stays a link.
    let real = d.join("real.img");
    std::fs::write(&real, b"old").unwrap();
    let link = d.join("link.img");
    std::os::unix::fs::symlink("real.img", &link).unwrap();
    let o = capture(&[], &link, t.pid());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(!decode(&std::fs::read(&real).unwrap()).is_empty());

    // A directory: refused, untouched, target running.
    let sub = d.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let o = capture(&[], &sub, t.pid());
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("is a directory"), "{}", stderr(&o));
    assert!(std::fs::metadata(&sub).unwrap().is_dir());
    assert_eq!(std::fs::read_dir(&sub).unwrap().count(), 0);
    no_leftovers(d);
    counting_on(&mut t, 3);
}

/// `--kill` without `--tree` of a process with children used to orphan them.
#[test]
fn kill_without_tree_refuses_to_orphan_children() {
    let mut t = Target::spawn("tree", &[]);
    let ready = t.line();
    let kids: Vec<i32> = ready
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img");
    let o = capture(&["--kill"], &img, t.pid());
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains(&format!("{} (tree)", kids[0])), "{e}");
    assert!(e.contains("--tree"), "{e}");
    assert!(!img.exists(), "no image on refusal");
    // All three still there and not stopped.
    for p in [t.pid(), kids[0], kids[1]] {
        let st = std::fs::read_to_string(format!("/proc/{p}/stat")).unwrap();
        let state = st.rsplit(") ").next().unwrap().chars().next().unwrap();
        assert!(matches!(state, 'S' | 'R'), "pid {p} in state {state}");
    }
    // The parent still works: it reads the pipe the grandchild filled.
    t.send("go\n");
    assert_eq!(t.line(), "got from-grandchild");
}

/// `--orphan-children` says it explicitly.
#[test]
fn kill_with_orphan_children_kills_only_the_process() {
    let mut t = Target::spawn("tree", &[]);
    let kids: Vec<i32> = t
        .line()
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let o = capture(
        &["--kill", "--orphan-children"],
        &dir.path().join("img"),
        t.pid(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(t.child.wait().unwrap().signal(), Some(libc::SIGKILL));
    let _ = kids; // they die of PR_SET_PDEATHSIG (the fixture's own cleanup)
}

/// `--kill` of a process whose image ckpt-restore would refuse (its cwd was removed;
/// the deleted file and the memfd it also holds are carried): the target used to be
/// killed and the image refused at restore. Now the check runs first: exit 1 naming
/// every reason, the target left running.
#[test]
fn kill_is_refused_when_the_image_would_not_restore() {
    let mut t = Target::spawn("deleted", &[]);
    let ready = t.line();
    let fds: Vec<i32> = ready
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img");
    let o = capture(&["--kill"], &img, t.pid());
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains("not killed, left running"), "{e}");
    // The deleted file and the memfd are carried with their contents (tests/contents.rs
    // in ckpt-restore); the removed cwd is not.
    assert!(
        e.contains("cwd /tmp/ckpt-cwd-") && e.contains("was deleted"),
        "{e}"
    );
    for fd in &fds {
        assert!(!e.contains(&format!("fd {fd} is a")), "{e}");
    }
    assert!(!e.contains("memfd"), "{e}");
    assert!(!img.exists(), "no image on refusal");
    no_leftovers(dir.path());
    counting_on(&mut t, 3);

    // Without --kill the image is written, with a warning that it would not restore;
    // `ckpt-inspect check` on it says no, with the same reasons.
    let o = capture(&[], &img, t.pid());
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    assert!(
        e.contains("ckpt-restore would refuse this image here"),
        "{e}"
    );
    let mut im = ckpt_inspect::source::Image::open(img.to_str().unwrap()).unwrap();
    let r = ckpt_inspect::check::check(&mut im, Path::new("/"));
    assert!(!r.restorable);
    let all = r.reasons.join("\n");
    assert!(all.contains("cwd /tmp/ckpt-cwd-"), "{all}");
    assert!(
        !all.contains("memfd") && !all.contains("deleted file"),
        "{all}"
    );
    counting_on(&mut t, 3);
}

/// An image of a plain process is "restorable here: yes", and `--kill` of it works.
#[test]
fn a_restorable_process_checks_yes_and_is_killed() {
    let mut t = Target::spawn("counter", &[]);
    t.line();
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img");
    let o = capture(&[], &img, t.pid());
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("warning"), "{}", stderr(&o));
    let mut im = ckpt_inspect::source::Image::open(img.to_str().unwrap()).unwrap();
    let r = ckpt_inspect::check::check(&mut im, Path::new("/"));
    assert!(r.restorable, "{:?}", r.reasons);
    // Captured on this kernel: its vdso is this kernel's, remapped in place (issue 19);
    // nothing else adapted.
    let in_place = format!(
        "  + task {}: vdso identical to this kernel's: remapped in place (this kernel's vdso and vvar moved to the captured address)\n",
        t.pid()
    );
    assert_eq!(
        ckpt_inspect::check::text(&r),
        format!("restorable here: yes\nadapted to this kernel by a restore (1):\n{in_place}")
    );
    // `show` says it too, with the command line and the state's name.
    let mut im = ckpt_inspect::source::Image::open(img.to_str().unwrap()).unwrap();
    let (sm, err) = ckpt_inspect::summary::summarise(&mut im);
    assert!(err.is_none());
    let text = ckpt_inspect::render::show_text(&sm, None);
    assert!(
        text.ends_with(&format!(
            "\nrestorable here: yes\nadapted to this kernel by a restore (1):\n{in_place}"
        )),
        "{text}"
    );
    let prog = progs_dir().join("counter");
    assert!(
        text.contains(&format!("    cmdline {}\n", prog.display())),
        "{text}"
    );
    assert!(
        text.contains("state 1 (S sleeping)") || text.contains("state 0 (R running)"),
        "{text}"
    );
    assert!(text.contains("rw-s  shared-anon"), "{text}");
    counting_on(&mut t, 2);
    let o = capture(&["--kill"], &img, t.pid());
    assert!(o.status.success(), "{}", stderr(&o));
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(t.child.wait().unwrap().signal(), Some(libc::SIGKILL));
}

/// Every unsupported object is named in one refusal, not only the first.
#[test]
fn every_unsupported_object_is_named() {
    let mut t = Target::spawn("sock", &[]);
    let r: Vec<i32> = t
        .line()
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let o = capture(&[], &dir.path().join("img"), t.pid());
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    // The socketpair is carried (issue 18): the userfaultfd alone is named.
    assert!(e.contains("1 object(s)"), "{e}");
    assert!(!e.contains("is a socket"), "{e}");
    assert!(e.contains(&format!("fd {} is a", r[2])), "{e}");
    assert!(e.contains("userfaultfd"), "{e}");
    counting_on(&mut t, 3);
}

/// `--allow-unsupported`: the capture, `show` and `check` list what a restore leaves out.
#[test]
fn allow_unsupported_lists_what_is_left_out() {
    let mut t = Target::spawn("sock", &[]);
    let r: Vec<i32> = t
        .line()
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img");
    let o = capture(&["--allow-unsupported"], &img, t.pid());
    let e = stderr(&o);
    assert!(o.status.success(), "{e}");
    for fd in &r[2..] {
        assert!(
            e.contains(&format!(
                "left out (restore goes without it): pid {} fd {fd} (",
                t.pid()
            )),
            "{e}"
        );
    }
    let mut im = ckpt_inspect::source::Image::open(img.to_str().unwrap()).unwrap();
    let (s, err) = ckpt_inspect::summary::summarise(&mut im);
    assert!(err.is_none());
    assert_eq!(s.left_out.len(), 1, "{:?}", s.left_out);
    let text = ckpt_inspect::render::show_text(&s, None);
    assert!(text.contains("LEFT OUT: 1 fd(s)"), "{text}");
    assert!(
        text.contains(&format!(
            "pid {} fd {} (other, anon_inode:[userfaultfd])",
            t.pid(),
            r[2]
        )),
        "{text}"
    );
    let mut im = ckpt_inspect::source::Image::open(img.to_str().unwrap()).unwrap();
    let c = ckpt_inspect::check::check(&mut im, Path::new("/"));
    assert!(c.restorable, "{:?}", c.reasons);
    assert_eq!(c.left_out.len(), 1);
    counting_on(&mut t, 3);
}

/// The CAP_SYS_PTRACE hint only when its absence is the reason: a process already
/// traced is named with its tracer; another user's process names the uids.
#[test]
fn ptrace_refusals_name_the_real_reason() {
    let mut t = Target::spawn("counter", &[]);
    t.line();
    // SAFETY: PTRACE_SEIZE of our own child, no pointers.
    let rc = unsafe { libc::ptrace(libc::PTRACE_SEIZE, t.pid(), 0, 0) };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
    // The tracer is this thread (TracerPid names the tracing thread).
    // SAFETY: gettid has no arguments.
    let me = unsafe { libc::syscall(libc::SYS_gettid) };
    let o = capture(&[], Path::new("/dev/null"), t.pid());
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    assert!(e.contains(&format!("is traced by pid {me}")), "{e}");
    assert!(!e.contains("CAP_SYS_PTRACE"), "{e}");
    drop(t);

    let mut t = Target::spawn("counter", &[]);
    t.line();
    let o = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(bin())
        .args(["-o", "/dev/null"])
        .arg(t.pid().to_string())
        .output()
        .unwrap();
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{e}");
    assert!(e.contains("it runs as uid [0, 0, 0]"), "{e}");
    assert!(e.contains("ckpt-capture as uid 65534"), "{e}");
    assert!(e.contains("needs CAP_SYS_PTRACE"), "{e}");
    counting_on(&mut t, 3);
}

/// The exit-code table of every ckpt binary, in `--help`.
#[test]
fn help_prints_the_exit_code_table() {
    let o = Command::new(bin()).arg("--help").output().unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains(ckpt_format::exit::HELP));
}

/// File locks were dropped silently (sqlite lost a committed row after a restore). POSIX,
/// OFD and flock locks are carried now (ckpt-restore tests/contents.rs); a lease is not:
/// a process holding one is refused, the lease named (and only it), and `--kill` then
/// leaves it running.
#[test]
fn leases_are_refused_before_anything_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("db");
    let leased = dir.path().join("leased");
    std::fs::write(&leased, b"x").unwrap();
    let mut t = Target::spawn("locks", &[db.to_str().unwrap(), leased.to_str().unwrap()]);
    let fds: Vec<i32> = t
        .line()
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    let img = dir.path().join("img");
    let o = capture(&["--kill"], &img, t.pid());
    let e = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{e}");
    let want = format!(
        "fd {} ({}): LEASE ACTIVE READ lock on bytes 0-EOF",
        fds[3],
        leased.display()
    );
    assert!(e.contains(&want), "{want:?} not in {e}");
    for carried in ["POSIX", "OFDLCK", "FLOCK"] {
        assert!(!e.contains(carried), "{carried} named in {e}");
    }
    assert!(!img.exists());
    counting_on(&mut t, 3);
}
