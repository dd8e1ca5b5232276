//! Issue 19: a shared library replaced on disk by an upgrade (a new file written and
//! renamed over the old name, as dpkg does) while a process runs its code.
//! * Replaced before the capture: the process maps "LIB (deleted)"; the capture keeps the
//!   old library's contents in the image and the restored process runs the OLD code (its
//!   version) with the library's data (a counter) continuing.
//! * Replaced after the capture: the image holds only the identity of the (then linked)
//!   file, not its contents; the restore refuses, naming the file, before any process
//!   exists; with the captured file back under its name the same image restores.
mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const LIMIT: Duration = Duration::from_secs(120);

/// Build fixtures/progs/dlopen_lib.c with `version` into `dir/name`, then rename it over
/// `dir/libckpttest.so` (a new inode under the old name, the old one unlinked).
fn install_lib(dir: &Path, version: u32) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/progs/dlopen_lib.c");
    let tmp = dir.join(format!(".libckpttest.so.dpkg-new{version}"));
    let st = Command::new("cc")
        .args(["-shared", "-fPIC", "-O1"])
        .arg(format!("-DLIB_VERSION={version}"))
        .arg("-o")
        .arg(&tmp)
        .arg(&src)
        .status()
        .expect("cc");
    assert!(st.success(), "cc {}", src.display());
    let lib = dir.join("libckpttest.so");
    std::fs::rename(&tmp, &lib).unwrap();
    lib
}

/// Lines "ok I vV" of the output: (I, V); asserts there is no FAIL.
fn oks(out: &Path) -> Vec<(u64, u32)> {
    let text = std::fs::read_to_string(out).unwrap();
    assert!(!text.contains("FAIL"), "{text}");
    text.lines()
        .filter_map(|l| l.strip_prefix("ok "))
        .map(|l| {
            let (i, v) = l.split_once(" v").unwrap();
            (i.parse().unwrap(), v.parse().unwrap())
        })
        .collect()
}

/// The /proc/PID/maps lines of `pid` naming `lib` or a name beside it holding its name
/// (a re-created deleted file whose name is taken gets a hidden one).
fn maps_of(pid: i32, lib: &Path) -> Vec<String> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
    let dir = lib.parent().unwrap().display().to_string();
    let name = lib.file_name().unwrap().to_str().unwrap();
    maps.lines()
        .filter(|x| x.contains(&format!("{dir}/")) && x.contains(name))
        .map(String::from)
        .collect()
}

#[test]
fn a_library_replaced_before_the_capture_restores_with_the_old_code() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let old = install_lib(d, 1);
    let old_bytes = std::fs::read(&old).unwrap();
    let out = d.join("run.out");
    let mut procs = Procs::default();
    let pid = spawn("restore_dlopen", &[old.to_str().unwrap(), "300"], &out, d);
    procs.0.push(pid);
    wait_lines(&out, 5);
    // The upgrade: version 2 renamed over the name; the process keeps running version 1.
    install_lib(d, 2);
    assert_ne!(std::fs::read(&old).unwrap(), old_bytes);
    let before = maps_of(pid, &old);
    assert!(
        !before.is_empty() && before.iter().all(|l| l.ends_with(" (deleted)")),
        "{before:?}"
    );
    wait_lines(&out, 10);
    let img = d.join("img");
    capture_kill(pid, &img);
    procs.0.clear();
    let n = oks(&out).len();
    let new = restore(&img, &["--pid-same"]);
    procs.0.push(new);
    // The old library (its bytes, from the image) is mapped again, deleted, as before;
    // its name is taken by the upgraded file, so it was re-created under a hidden name
    // beside it (and unlinked again).
    let after = maps_of(new, &old);
    assert_eq!(after.len(), before.len(), "{after:?} vs {before:?}");
    let hidden = format!("{}/.libckpttest.so.ckpt-", d.display());
    assert!(
        after
            .iter()
            .all(|l| l.contains(&hidden) && l.ends_with(" (deleted)")),
        "{after:?}"
    );
    let perms = |v: &[String]| -> Vec<String> {
        v.iter()
            .map(|l| l.split_whitespace().nth(1).unwrap().to_string())
            .collect()
    };
    assert_eq!(perms(&after), perms(&before));
    let range = after[0].split_whitespace().next().unwrap();
    let mapped = std::fs::read(format!("/proc/{new}/map_files/{range}")).unwrap();
    assert_eq!(
        mapped, old_bytes,
        "the restored mapping is not the old library"
    );
    assert_eq!(wait_exit(new, LIMIT), 0);
    procs.0.clear();
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.ends_with("ok 299 v1\nPASS\n"), "{text}");
    let got = oks(&out);
    assert_eq!(got.len(), 300, "{text}");
    for (k, &(i, v)) in got.iter().enumerate() {
        assert_eq!(i, k as u64, "{text}");
        assert_eq!(v, 1, "line {k} (restored after line {n}) ran version {v}");
    }
    // The upgraded file is untouched and nothing else is left beside it.
    let mut left: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(left, ["img", "libckpttest.so", "run.out"]);
}

#[test]
fn a_library_replaced_after_the_capture_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let lib = install_lib(d, 1);
    let out = d.join("run.out");
    let mut procs = Procs::default();
    let pid = spawn("restore_dlopen", &[lib.to_str().unwrap(), "200"], &out, d);
    procs.0.push(pid);
    wait_lines(&out, 5);
    let img = d.join("img");
    capture_kill(pid, &img);
    procs.0.clear();
    // The captured library is kept under another name, the upgrade renames version 2 over
    // its name.
    let keep = d.join("kept.so");
    std::fs::hard_link(&lib, &keep).unwrap();
    install_lib(d, 2);
    let (code, _, err) = run_restore(&["--pid-same", img.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!(
            "mapped file {} is not the captured one",
            lib.display()
        )) && err.contains("it changed since the capture"),
        "{err}"
    );
    assert!(!Path::new(&format!("/proc/{pid}")).exists());
    // The restorability check (`ckpt-inspect check`, `ckpt-capture --kill`) says the same.
    let bytes = std::fs::read(&img).unwrap();
    let mut src = ckpt_format::open_slice(&bytes).unwrap();
    let plan = ckpt_restore::Plan::collect(&mut *src, Some(&bytes)).unwrap();
    let why = ckpt_restore::check::restorable(&plan, &bytes, Path::new("/"));
    assert!(
        why.iter().any(|w| w.contains(&format!(
            "pid {pid}: mapped file {} is not the captured one",
            lib.display()
        ))),
        "{why:?}"
    );
    // The captured file back under its name: the same image restores and runs version 1.
    std::fs::rename(&keep, &lib).unwrap();
    let new = restore(&img, &["--pid-same"]);
    procs.0.push(new);
    assert_eq!(wait_exit(new, LIMIT), 0);
    procs.0.clear();
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.ends_with("ok 199 v1\nPASS\n"), "{text}");
    assert!(oks(&out).iter().all(|&(_, v)| v == 1), "{text}");
}
