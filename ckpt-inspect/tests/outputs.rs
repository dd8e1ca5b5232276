//! Issue 15 point 1: every command that writes an output file (`convert`, `implode`,
//! `export-core`) writes through a device or FIFO, follows a symlink, refuses a
//! directory, and never replaces any of them with a regular file.

mod common;

use common::*;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

fn run(args: &[&str]) -> (i32, String) {
    let o = Command::new(bin()).args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn mknod(p: &Path, major: u32, minor: u32) -> bool {
    let ok = Command::new("mknod")
        .arg(p)
        .args(["c", &major.to_string(), &minor.to_string()])
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok || std::env::var_os("CI").is_none(), "mknod needs root");
    ok
}

/// Each command, writing to `out`.
fn commands(img: &Path, tree: &Path, out: &Path) -> Vec<Vec<String>> {
    let v = |a: &[&str]| a.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    vec![
        v(&["convert", "--to", "native-1", s(img), s(out)]),
        v(&["implode", s(tree), "-o", s(out)]),
        v(&["export-core", s(img), "-o", s(out)]),
    ]
}

#[test]
fn outputs_are_written_through_followed_or_refused_never_replaced() {
    let img = root().join("fixtures/images/native-1/example.img");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tree = d.join("tree");
    let (code, e) = run(&["explode", s(&img), s(&tree)]);
    assert_eq!(code, 0, "{e}");
    let names = ["convert", "implode", "export-core"];

    // A device failing every write (made here, as /dev/full): error, device kept.
    let full = d.join("full");
    if mknod(&full, 1, 7) {
        for (i, c) in commands(&img, &tree, &full).into_iter().enumerate() {
            let a: Vec<&str> = c.iter().map(|x| x.as_str()).collect();
            let (code, e) = run(&a);
            assert_eq!(code, 3, "{}: {e}", names[i]);
            assert!(e.contains("No space left on device"), "{}: {e}", names[i]);
            let md = std::fs::symlink_metadata(&full).unwrap();
            assert!(md.file_type().is_char_device(), "{} replaced it", names[i]);
        }
        // A null device: success, still a device.
        let null = d.join("null");
        assert!(mknod(&null, 1, 3));
        for (i, c) in commands(&img, &tree, &null).into_iter().enumerate() {
            let a: Vec<&str> = c.iter().map(|x| x.as_str()).collect();
            let (code, e) = run(&a);
            assert_eq!(code, 0, "{}: {e}", names[i]);
            assert!(std::fs::symlink_metadata(&null)
                .unwrap()
                .file_type()
                .is_char_device());
        }
    }

    // Reference outputs in regular files, then the same through a FIFO and a symlink.
    let mut refs: Vec<Vec<u8>> = Vec::new();
    for (i, c) in commands(&img, &tree, &d.join("ref"))
        .into_iter()
        .enumerate()
    {
        let a: Vec<&str> = c.iter().map(|x| x.as_str()).collect();
        let (code, e) = run(&a);
        assert_eq!(code, 0, "{}: {e}", names[i]);
        refs.push(std::fs::read(d.join("ref")).unwrap());
    }
    let fifo = d.join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    for (i, c) in commands(&img, &tree, &fifo).into_iter().enumerate() {
        let f2: PathBuf = fifo.clone();
        let reader = std::thread::spawn(move || std::fs::read(&f2).unwrap());
        let a: Vec<&str> = c.iter().map(|x| x.as_str()).collect();
        let (code, e) = run(&a);
        assert_eq!(code, 0, "{}: {e}", names[i]);
        assert_eq!(
            reader.join().unwrap(),
            refs[i],
            "{} through a FIFO",
            names[i]
        );
        assert!(std::fs::symlink_metadata(&fifo)
            .unwrap()
            .file_type()
            .is_fifo());
    }
    let real = d.join("real");
    let link = d.join("link");
    std::os::unix::fs::symlink("real", &link).unwrap();
    for (i, c) in commands(&img, &tree, &link).into_iter().enumerate() {
        std::fs::write(&real, b"old").unwrap();
        let ino = std::fs::metadata(&real).unwrap().ino();
        let a: Vec<&str> = c.iter().map(|x| x.as_str()).collect();
        let (code, e) = run(&a);
        assert_eq!(code, 0, "{}: {e}", names[i]);
        assert!(std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
        assert_eq!(std::fs::read(&real).unwrap(), refs[i], "{}", names[i]);
        assert_ne!(std::fs::metadata(&real).unwrap().ino(), ino, "via rename");
    }

    // A directory: refused, untouched.
    let sub = d.join("sub");
    std::fs::create_dir(&sub).unwrap();
    for (i, c) in commands(&img, &tree, &sub).into_iter().enumerate() {
        let a: Vec<&str> = c.iter().map(|x| x.as_str()).collect();
        let (code, e) = run(&a);
        assert_eq!(code, 3, "{}: {e}", names[i]);
        assert!(e.contains("is a directory"), "{}: {e}", names[i]);
        assert_eq!(std::fs::read_dir(&sub).unwrap().count(), 0);
    }
    let left: Vec<_> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(left.is_empty(), "temporary files left: {left:?}");
}
