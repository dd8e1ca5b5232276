//! The explode / implode / export-core subcommands through the binary.

use std::path::Path;
use std::process::Command;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_ckpt-inspect"))
}

fn fixture(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

#[test]
fn explode_implode_through_the_cli_is_byte_identical_and_edits_land() {
    let img = fixture("fixtures/images/native-1/example.img");
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("tree");
    let out = bin().arg("explode").arg(&img).arg(&dir).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let back = t.path().join("back.img");
    let out = bin()
        .arg("implode")
        .arg(&dir)
        .arg("-o")
        .arg(&back)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&img).unwrap());
    // An edit lands, exactly: diff names it.
    std::fs::write(dir.join("files/1/f_pos"), "5\n").unwrap();
    let edited = t.path().join("edited.img");
    let out = bin()
        .arg("implode")
        .arg(&dir)
        .arg("-o")
        .arg(&edited)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let out = bin().arg("diff").arg(&img).arg(&edited).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("task 100 fd 0: pos: 1234 -> 5"), "{text}");
    assert!(text.contains("1 difference(s)"), "{text}");
    // An edit that breaks a rule is refused, naming the path; nothing is written.
    let link = dir.join("task-100/fds/0/file");
    std::fs::remove_file(&link).unwrap();
    std::os::unix::fs::symlink("../../../files/77", &link).unwrap();
    let bad = t.path().join("bad.img");
    let out = bin()
        .arg("implode")
        .arg(&dir)
        .arg("-o")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(!bad.exists());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("fds/0"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn export_core_through_the_cli() {
    let img = fixture("fixtures/images/native-1/example.img");
    let t = tempfile::tempdir().unwrap();
    let core = t.path().join("core");
    let out = bin()
        .args(["export-core", "--pid", "100", "-o"])
        .arg(&core)
        .arg(&img)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let b = std::fs::read(&core).unwrap();
    assert_eq!(&b[..4], b"\x7fELF");
    assert_eq!(u16::from_le_bytes([b[16], b[17]]), 4, "ET_CORE");
    let out = bin()
        .args(["export-core", "--pid", "999", "-o"])
        .arg(t.path().join("none"))
        .arg(&img)
        .output()
        .unwrap();
    assert_ne!(out.status.code(), Some(0));
}
