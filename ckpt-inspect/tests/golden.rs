//! Golden outputs for every fixture image of every revision, from a file and
//! from a pipe. `CKPT_BLESS=1 cargo test -p ckpt-inspect --test golden`
//! regenerates the native-1 fixtures and every expected output.

mod common;

use common::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn bless() -> bool {
    std::env::var_os("CKPT_BLESS").is_some_and(|v| v == "1")
}

/// Every file under fixtures/images, recursively, sorted.
fn images() -> Vec<PathBuf> {
    fn walk(d: &Path, out: &mut Vec<PathBuf>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p);
            }
        }
    }
    let mut v = Vec::new();
    walk(&root().join("fixtures/images"), &mut v);
    v.sort();
    v
}

/// Run the binary with `args`, the image given as a path.
fn run_file(args: &[&str], image: &Path) -> (i32, Vec<u8>, String) {
    let o = Command::new(bin()).args(args).arg(image).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        o.stdout,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// Run the binary with `args` and `-`, the image written into a pipe.
pub fn run_pipe(args: &[&str], bytes: &[u8]) -> (i32, Vec<u8>, String) {
    let mut child = Command::new(bin())
        .args(args)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = bytes.to_vec();
    let w = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let o = child.wait_with_output().unwrap();
    w.join().unwrap();
    (
        o.status.code().unwrap_or(-1),
        o.stdout,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn native_fixtures_match_builder() {
    let dir = root().join("fixtures/images/native-1");
    for (stem, b) in native_fixtures() {
        let bytes = b.to_native_bytes().unwrap();
        let path = dir.join(format!("{stem}.img"));
        if bless() {
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(&path, &bytes).unwrap();
        }
        let committed = std::fs::read(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run with CKPT_BLESS=1)", path.display()));
        assert!(
            committed == bytes,
            "{} differs from what the builder makes now (run with CKPT_BLESS=1 if intended)",
            path.display()
        );
    }
}

/// `show`'s text without its machine-dependent "restorable here" section.
fn strip_restorable(out: Vec<u8>) -> Vec<u8> {
    let text = String::from_utf8_lossy(&out).into_owned();
    let Some(i) = text.find("\nrestorable here: ") else {
        return out;
    };
    let rest = &text[i + 1..];
    let end = rest.find("\n\n").map_or(text.len(), |j| i + 1 + j + 1);
    format!("{}{}", &text[..i], &text[end..]).into_bytes()
}

const KINDS: [(&str, &[&str]); 5] = [
    ("show.txt", &["show"]),
    ("show.json", &["show", "--json"]),
    ("records.txt", &["records"]),
    ("records.json", &["records", "--json"]),
    ("verify.txt", &["verify"]),
];

#[test]
fn golden_outputs_file_and_pipe() {
    let imgs = images();
    assert!(
        imgs.iter()
            .any(|p| p.to_string_lossy().contains("native-1")),
        "no native-1 fixtures (run with CKPT_BLESS=1)"
    );
    let mut failures = Vec::new();
    for img in &imgs {
        let rel = img.strip_prefix(root().join("fixtures/images")).unwrap();
        let stem = rel.with_extension("");
        let bytes = std::fs::read(img).unwrap();
        for (kind, args) in KINDS {
            let (code, out, err) = run_file(args, img);
            assert!(
                code == 0 || code == 1,
                "{} {args:?}: exit {code}: {err}",
                img.display()
            );
            let (pcode, pout, _) = run_pipe(args, &bytes);
            assert_eq!(
                (code, String::from_utf8_lossy(&out)),
                (pcode, String::from_utf8_lossy(&pout)),
                "{} {args:?}: file and pipe differ",
                img.display()
            );
            // The "restorable here" section of `show` depends on this machine: not
            // part of the golden output (tests/cli.rs checks it).
            let out = strip_restorable(out);
            let exp = root()
                .join("fixtures/expected")
                .join(format!("{}.{kind}", stem.display()));
            if bless() {
                std::fs::create_dir_all(exp.parent().unwrap()).unwrap();
                std::fs::write(&exp, &out).unwrap();
                continue;
            }
            match std::fs::read(&exp) {
                Ok(want) if want == out => {}
                Ok(_) => failures.push(format!("{}: output differs", exp.display())),
                Err(_) => failures.push(format!("{}: missing", exp.display())),
            }
        }
    }
    assert!(
        failures.is_empty(),
        "golden mismatches (inspect, then CKPT_BLESS=1 to accept):\n{}",
        failures.join("\n")
    );
}

/// An image written before typed records (fixtures/images/native-1/captured-before-records.img,
/// captured by the previous release) shows what it showed then, line for line
/// (`captured-before-records.show-before.txt`, written by that release's `show`),
/// plus its typed records: the `Records` section of its task and the `Object records`.
#[test]
fn an_image_from_before_typed_records_shows_the_same() {
    let dir = root().join("fixtures");
    let img = dir.join("images/native-1/captured-before-records.img");
    let before = std::fs::read_to_string(
        dir.join("expected/native-1/captured-before-records.show-before.txt"),
    )
    .unwrap();
    let (code, out, err) = run_file(&["show"], &img);
    assert_eq!(code, 0, "{err}");
    let now = String::from_utf8(out).unwrap();
    // Drop the two sections typed records added: `  Records` (its lines are indented
    // by 4) and `Object records` after a blank line (its lines indented by 2).
    let mut kept: Vec<&str> = Vec::new();
    let mut body: Option<&str> = None;
    let mut added = 0;
    for line in now.lines() {
        if let Some(indent) = body {
            if line.starts_with(indent) {
                continue;
            }
            body = None;
        }
        match line {
            "  Records" => body = Some("    "),
            "Object records" => {
                assert_eq!(kept.pop(), Some(""));
                body = Some("  ");
            }
            _ => {
                kept.push(line);
                continue;
            }
        }
        added += 1;
    }
    assert_eq!(added, 2, "{now}");
    let kept = kept.join("\n") + "\n";
    // The "restorable here" verdict depends on this machine (whether the captured
    // executable still exists), not on the image.
    let image_part = |s: String| String::from_utf8(strip_restorable(s.into_bytes())).unwrap();
    assert!(kept.contains("\nrestorable here: "), "{kept}");
    assert_eq!(image_part(kept), image_part(before));
    assert!(now.contains("rseq             ptr="), "{now}");
    assert!(now.contains("shared_pending   queue=[35/-1"), "{now}");
}

/// `diff` names a typed record's field that differs, and a record only one image has.
#[test]
fn diff_names_typed_record_fields() {
    use ckpt_format::{build::ImageBuilder, ClearChildTid, Event, Rseq};
    let with = |sig: u32, ctid: bool| {
        let mut b = ImageBuilder::example();
        for ev in &mut b.events {
            if let Event::Thread(t) = ev {
                t.records.rseq = Some(Rseq {
                    ptr: 0x7f00_0000_1000,
                    len: 32,
                    sig,
                });
                if ctid {
                    t.records.clear_child_tid = Some(ClearChildTid { addr: 0x1000 });
                }
            }
        }
        b.to_native_bytes().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a.img"), dir.path().join("b.img"));
    std::fs::write(&a, with(0x5305_3053, false)).unwrap();
    std::fs::write(&b, with(1, true)).unwrap();
    let o = Command::new(bin())
        .arg("diff")
        .arg(&a)
        .arg(&b)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}");
    assert!(
        out.contains("task 100 thread 100 rseq: sig: 0x53053053 -> 0x1"),
        "{out}"
    );
    assert!(
        out.contains("task 100 thread 101 clear_child_tid: only in B (record)"),
        "{out}"
    );
    assert!(out.contains("4 difference(s)"), "{out}");
}
