//! Issue 15: what exists only while a process holds it — a deleted file, memfds (one
//! mapped shared and written through, one sealed and held by its mapping only), the
//! deleted executable it runs from — and its file locks survive `--kill` and a restore:
//! checked by the program itself (`PASS`) and from outside (contents byte for byte, seals,
//! position, /proc names; locks that another process cannot take). Before these were
//! carried, the capture refused (or, earlier, a restore ran without them).
mod common;
use ckpt_format::Event;
use common::*;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);
const PG: usize = 4096;

/// The pattern of restore_deleted.c.
fn pat(seed: u32, i: usize) -> u8 {
    (i as u32)
        .wrapping_mul(31)
        .wrapping_add((i / PG) as u32 * 7)
        .wrapping_add(seed) as u8
}

fn deleted_dat() -> Vec<u8> {
    (0..3 * PG + 1000)
        .map(|i| if i / PG == 2 { 0 } else { pat(1, i) })
        .collect()
}

fn seals_of(p: &str) -> i32 {
    let f = std::fs::File::open(p).unwrap();
    // SAFETY: fcntl with an integer command on a descriptor we own.
    unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GET_SEALS) }
}

fn link(p: &str) -> String {
    std::fs::read_link(p)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// fd number -> /proc name, of `pid`.
fn fds_of(pid: i32) -> Vec<(i32, String)> {
    let mut v: Vec<(i32, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|e| {
            let n: i32 = e.unwrap().file_name().to_str().unwrap().parse().unwrap();
            (n, link(&format!("/proc/{pid}/fd/{n}")))
        })
        .collect();
    v.sort();
    v
}

fn fdinfo(pid: i32, fd: i32, key: &str) -> String {
    let s = std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap()
        .trim()
        .to_string()
}

/// Everything the outside can check of a running restore_deleted in `dir`; `taken`: the
/// deleted file's name was taken again by another file before the restore.
fn check_from_outside(pid: i32, dir: &Path, taken: bool) {
    let d = dir.display();
    assert_eq!(
        link(&format!("/proc/{pid}/exe")),
        format!("{d}/delexe (deleted)")
    );
    let orig = std::fs::read(progs_dir().join("restore_deleted")).unwrap();
    assert!(
        std::fs::read(format!("/proc/{pid}/exe")).unwrap() == orig,
        "the executable's contents differ"
    );
    let fds = fds_of(pid);
    let fd_named = |name: &str| {
        fds.iter()
            .find(|(_, l)| l == name)
            .unwrap_or_else(|| panic!("no fd {name} in {fds:?}"))
            .0
    };
    let del = if taken {
        // Re-created beside it under a hidden name (and unlinked again).
        let hidden = format!("{d}/.deleted.dat.ckpt-");
        fds.iter()
            .find(|(_, l)| l.starts_with(&hidden) && l.ends_with(" (deleted)"))
            .unwrap_or_else(|| panic!("no fd {hidden}* in {fds:?}"))
            .0
    } else {
        fd_named(&format!("{d}/deleted.dat (deleted)"))
    };
    assert_eq!(
        std::fs::read(format!("/proc/{pid}/fd/{del}")).unwrap(),
        deleted_dat()
    );
    assert_eq!(fdinfo(pid, del, "pos"), "4321");
    let flags = u32::from_str_radix(&fdinfo(pid, del, "flags"), 8).unwrap();
    assert_eq!(flags & 3, libc::O_RDWR as u32);
    let sh = fd_named("/memfd:ckpt-shared (deleted)");
    let got = std::fs::read(format!("/proc/{pid}/fd/{sh}")).unwrap();
    assert_eq!(got.len(), 5 * PG);
    for (i, &b) in got.iter().enumerate() {
        if (8292..8296).contains(&i) {
            continue; // the iteration number the program writes through its mapping
        }
        let want = if i / PG == 1 { 0 } else { pat(2, i) };
        assert_eq!(b, want, "ckpt-shared byte {i}");
    }
    assert_eq!(
        seals_of(&format!("/proc/{pid}/fd/{sh}")),
        libc::F_SEAL_SHRINK | libc::F_SEAL_GROW
    );
    // The sealed memfd is held by its mapping only; the shared one's mapping is shared.
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let line = |name: &str| {
        maps.lines()
            .find(|l| l.ends_with(name))
            .unwrap_or_else(|| panic!("{name} not mapped:\n{maps}"))
            .to_string()
    };
    let sealed = line("/memfd:ckpt-sealed (deleted)");
    assert!(
        sealed.split_whitespace().nth(1).unwrap().ends_with('s'),
        "{sealed}"
    );
    let range = sealed.split_whitespace().next().unwrap();
    let mf = format!("/proc/{pid}/map_files/{range}");
    let want: Vec<u8> = (0..2 * PG + 17).map(|i| pat(3, i)).collect();
    assert_eq!(std::fs::read(&mf).unwrap(), want);
    assert_eq!(seals_of(&mf), libc::F_SEAL_WRITE | libc::F_SEAL_SEAL);
    let shared = line("/memfd:ckpt-shared (deleted)");
    assert!(shared.contains(" rw-s "), "{shared}");
    // Re-created and unlinked again: nothing left in the directory but the output.
    let left: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "run.out" && !n.starts_with("img") && !(taken && n == "deleted.dat"))
        .collect();
    assert!(left.is_empty(), "left in {d}: {left:?}");
}

#[test]
fn deleted_file_memfds_and_deleted_exe_survive_kill_and_restore() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = d.join("run.out");
    let mut procs = Procs::default();
    let pid = spawn("restore_deleted", &[d.to_str().unwrap(), "200"], &out, d);
    procs.0.push(pid);
    wait_lines(&out, 10);
    check_from_outside(pid, d, false);
    let img = d.join("img");
    capture_kill(pid, &img);
    procs.0.clear();
    // The image carries four inodes with their contents.
    let bytes = std::fs::read(&img).unwrap();
    let mut src = ckpt_format::open_slice(&bytes).unwrap();
    let mut evs = Vec::new();
    while let Some(e) = src.next_event().unwrap() {
        evs.push(e.into_owned());
    }
    let mut kinds: Vec<(Vec<u8>, u32, u32)> = evs
        .iter()
        .filter_map(|e| match e {
            Event::File(f) => f
                .records
                .contents
                .map(|c| (f.path.clone(), c.kind, c.seals)),
            _ => None,
        })
        .collect();
    kinds.sort();
    let ds = d.display().to_string();
    assert_eq!(
        kinds,
        vec![
            (b"/memfd:ckpt-sealed (deleted)".to_vec(), 2, 9),
            (b"/memfd:ckpt-shared (deleted)".to_vec(), 2, 6),
            (format!("{ds}/deleted.dat (deleted)").into_bytes(), 1, 0),
            (format!("{ds}/delexe (deleted)").into_bytes(), 1, 0),
        ]
    );
    let new = restore(&img, &["--pid-same"]);
    procs.0.push(new);
    check_from_outside(new, d, false);
    // Again, with the deleted file's name taken by a new file meanwhile (it is left
    // as it is).
    wait_lines(&out, 60);
    let img2 = d.join("img2");
    capture_kill(new, &img2);
    procs.0.clear();
    std::fs::write(d.join("deleted.dat"), b"a new file").unwrap();
    let new = restore(&img2, &["--pid-same"]);
    procs.0.push(new);
    check_from_outside(new, d, true);
    assert_eq!(std::fs::read(d.join("deleted.dat")).unwrap(), b"a new file");
    assert_eq!(wait_exit(new, LIMIT), 0);
    procs.0.clear();
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(!text.contains("FAIL"), "{text}");
    assert!(text.ends_with("ok 199\nPASS\n"), "{text}");
}

/// Try to take a lock another process would conflict with, from this process (through
/// a new open file description: OFD locks conflict with every other owner).
fn ofd_free(f: &std::fs::File, write: bool, start: i64, len: i64) -> bool {
    // SAFETY: an all-zero flock is valid.
    let mut l: libc::flock = unsafe { std::mem::zeroed() };
    l.l_type = if write { libc::F_WRLCK } else { libc::F_RDLCK } as i16;
    l.l_whence = libc::SEEK_SET as i16;
    l.l_start = start;
    l.l_len = len;
    // SAFETY: `l` is a valid flock the call fills.
    let r = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_OFD_GETLK, &mut l) };
    assert_eq!(r, 0);
    l.l_type == libc::F_UNLCK as i16
}

fn flock_free(f: &std::fs::File) -> bool {
    // SAFETY: integer arguments only.
    let r = unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r == 0 {
        // SAFETY: as above.
        unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_UN) };
    }
    r == 0
}

/// The locks of restore_locks.c as another process sees them.
fn held(db: &Path) -> [bool; 4] {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(db)
        .unwrap();
    [
        !ofd_free(&f, false, 0, 10),   // the POSIX write lock on 0-9
        !ofd_free(&f, true, 100, 100), // the OFD read lock on 100-199
        ofd_free(&f, false, 100, 100), // ... which is a read lock
        !flock_free(&f),               // the flock
    ]
}

#[test]
fn posix_ofd_and_flock_locks_are_taken_again_or_the_restore_fails_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let db = d.join("db");
    let out = d.join("run.out");
    let mut procs = Procs::default();
    let pid = spawn("restore_locks", &[db.to_str().unwrap(), "150"], &out, d);
    procs.0.push(pid);
    wait_lines(&out, 5);
    assert_eq!(held(&db), [true; 4]);
    let img = d.join("img");
    capture_kill(pid, &img);
    procs.0.clear();
    assert_eq!(
        held(&db),
        [false, false, true, false],
        "the kill dropped them"
    );

    // Someone else holds the flock now: refused before any process exists.
    let other = std::fs::File::open(&db).unwrap();
    // SAFETY: integer arguments only.
    assert_eq!(unsafe { libc::flock(other.as_raw_fd(), libc::LOCK_EX) }, 0);
    let (code, _, err) = run_restore(&["--pid-same", img.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "the flock write lock of {} cannot be taken again",
            db.display()
        )),
        "{err}"
    );
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    drop(other);

    // Someone else holds a lock over the POSIX lock's bytes: refused the same way.
    let other = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&db)
        .unwrap();
    // SAFETY: an all-zero flock is valid; `l` is read by the call.
    let mut l: libc::flock = unsafe { std::mem::zeroed() };
    l.l_type = libc::F_RDLCK as i16;
    l.l_start = 5;
    l.l_len = 1;
    // SAFETY: as above.
    assert_eq!(
        unsafe { libc::fcntl(other.as_raw_fd(), libc::F_OFD_SETLK, &l) },
        0
    );
    let (code, _, err) = run_restore(&["--pid-same", img.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "pid {pid}: its POSIX write lock on bytes 0-9 of fd 3 ({}) cannot be taken again",
            db.display()
        )),
        "{err}"
    );
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    drop(other);

    // Free: every lock is taken again before the process runs, and it sees them.
    let new = restore(&img, &["--pid-same"]);
    procs.0.push(new);
    assert_eq!(held(&db), [true; 4]);
    let fi = std::fs::read_to_string(format!("/proc/{new}/fdinfo/3")).unwrap();
    assert!(
        fi.contains(&format!("POSIX  ADVISORY  WRITE {new} ")),
        "{fi}"
    );
    assert_eq!(wait_exit(new, LIMIT), 0);
    procs.0.clear();
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.ends_with("ok 149\nPASS\n"), "{text}");
    assert_eq!(
        held(&db),
        [false, false, true, false],
        "released at its exit"
    );
}
