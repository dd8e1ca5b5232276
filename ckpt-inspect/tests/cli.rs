//! The command line: default command, exit codes, mem, diff, convert, schema.

mod common;

use ckpt_format::build::ImageBuilder;
use ckpt_format::{Event, Revision};
use common::*;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

fn run(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(bin()).args(args).output().unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn run_stdin(args: &[&str], bytes: &[u8]) -> (i32, Vec<u8>) {
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let data = bytes.to_vec();
    let t = std::thread::spawn(move || {
        let _ = stdin.write_all(&data);
    });
    let o = child.wait_with_output().unwrap();
    t.join().unwrap();
    (o.status.code().unwrap_or(-1), o.stdout)
}

fn fixture(name: &str) -> PathBuf {
    root().join(format!("fixtures/images/native-1/{name}.img"))
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn default_is_show_and_exit_codes() {
    let ex = fixture("example");
    assert_eq!(run(&[s(&ex)]), run(&["show", s(&ex)]));
    let (code, _, err) = run(&["show", "/nonexistent/image.img"]);
    assert_eq!(code, 3, "{err}");
    let (code, _, _) = run(&["show", "--bogus", s(&ex)]);
    assert_eq!(code, 2);
    let (code, _, _) = run(&["mem", s(&ex)]);
    assert_eq!(code, 2, "mem without --pid");
    let (code, _, err) = run(&["mem", s(&ex), "--pid", "999", "--addr", "0"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no task with pid 999"));
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, 0);
    // The one table of every ckpt binary (ckpt_format::exit::HELP).
    assert!(out.contains(ckpt_format::exit::HELP), "{out}");
    // Not an image at all.
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk");
    std::fs::write(&junk, b"this is not an image, just text\n").unwrap();
    let (code, _, err) = run(&["verify", s(&junk)]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("at byte 0 (0x0)") && err.contains("unrecognised"),
        "{err}"
    );
}

#[test]
fn mem_range_hexdump_raw_and_holes() {
    let ex = fixture("example");
    // Heap page with data, then a zero-run page: both captured.
    let (code, out, err) = run(&[
        "mem",
        s(&ex),
        "--pid",
        "100",
        "--addr",
        "0x601000",
        "--len",
        "0x1010",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(
        out.starts_with(
            "0000000000601000  68 65 6c 6c 6f 2c 20 72  65 73 74 6f 72 65 21 0a  |hello, restore!.|\n"
        ),
        "{out}"
    );
    assert!(
        out.contains("0000000000602000  00 00 00 00 00 00 00 00  00 00 00 00 00 00 00 00"),
        "{out}"
    );
    assert!(!out.contains("not captured"));
    // Raw bytes.
    let o = Command::new(bin())
        .args([
            "mem",
            s(&ex),
            "--pid",
            "100",
            "--addr",
            "0x601000",
            "--len",
            "16",
            "--raw",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(o.stdout, b"hello, restore!\n");
    // 0x600000 is in no VMA; 0x400000 is in the text VMA but not stored.
    let (code, out, _) = run(&[
        "mem",
        s(&ex),
        "--pid",
        "100",
        "--addr",
        "0x600ff8",
        "--len",
        "16",
    ]);
    assert_eq!(code, 1);
    assert!(
        out.starts_with("0x0000000000600ff8..0x0000000000601000  not captured (8 bytes; no VMA)\n"),
        "{out}"
    );
    assert!(
        out.contains("0000000000601000  68 65 6c 6c 6f 2c 20 72"),
        "{out}"
    );
    let (code, out, _) = run(&[
        "mem",
        s(&ex),
        "--pid",
        "100",
        "--addr",
        "0x400000",
        "--len",
        "4",
    ]);
    assert_eq!(code, 1);
    assert!(
        out.contains("inside VMA 0x400000-0x402000 file /usr/bin/example, pages not stored"),
        "{out}"
    );
    let (code, _, err) = run(&[
        "mem",
        s(&ex),
        "--pid",
        "100",
        "--addr",
        "0x400000",
        "--len",
        "4",
        "--raw",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("0x400000") && err.contains("not captured"),
        "{err}"
    );
    // The same from a pipe.
    let bytes = std::fs::read(&ex).unwrap();
    let (code, pout) = run_stdin(
        &[
            "mem", "-", "--pid", "100", "--addr", "0x600ff8", "--len", "16",
        ],
        &bytes,
    );
    assert_eq!(
        (code, String::from_utf8_lossy(&pout).into_owned()),
        (1, out_of(&ex))
    );
}

fn out_of(ex: &Path) -> String {
    run(&[
        "mem",
        s(ex),
        "--pid",
        "100",
        "--addr",
        "0x600ff8",
        "--len",
        "16",
    ])
    .1
}

#[test]
fn mem_search() {
    let ex = fixture("example");
    let (code, out, _) = run(&["mem", s(&ex), "--pid", "100", "--search", "ckpt!"]);
    assert_eq!((code, out.as_str()), (0, "0x0000000000401002\n"));
    let (code, out, _) = run(&["mem", s(&ex), "--pid", "100", "--search", "hex:0f05"]);
    assert_eq!((code, out.as_str()), (0, "0x0000000000401000\n"));
    let (code, _, _) = run(&["mem", s(&ex), "--pid", "100", "--search", "no such bytes"]);
    assert_eq!(code, 1);
    let (code, _, _) = run(&["mem", s(&ex), "--pid", "100", "--search", "hex:0"]);
    assert_eq!(code, 2);
    // Across a page boundary, within contiguous captured pages; and not
    // across a gap between captured pages.
    let large = fixture("large");
    let (code, out, _) = run(&["mem", s(&large), "--pid", "300", "--search", "NEEDLE-X-Y"]);
    assert_eq!((code, out.as_str()), (0, "0x00007f0000262ffa\n"));
    let bytes = std::fs::read(&large).unwrap();
    let (code, pout) = run_stdin(
        &["mem", "-", "--pid", "300", "--search", "NEEDLE-X-Y"],
        &bytes,
    );
    assert_eq!((code, pout), (0, out.into_bytes()));
    // A zero run between stored pages: "0; " ends a page before zeros.
    let (code, out, _) = run(&[
        "mem",
        s(&large),
        "--pid",
        "300",
        "--search",
        "hex:0000000000",
        "--max",
        "3",
        "--json",
    ]);
    assert_eq!(code, 0);
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["hits"].as_array().unwrap().len(), 3);
    assert_eq!(j["truncated"], true);
}

fn variant() -> ImageBuilder {
    let mut b = ImageBuilder::example();
    for ev in &mut b.events {
        match ev {
            Event::Thread(t) if t.tid == 101 => t.regs.rip = 0x40_1090,
            Event::Pages(p) if p.addrs.get(0) == Some(0x60_1000) => {
                p.data.to_mut()[0] = b'j';
            }
            Event::File(f) if f.id == 1 => f.pos = 99,
            _ => {}
        }
    }
    b
}

#[test]
fn diff_reports_semantic_differences() {
    let ex = fixture("example");
    let (code, out, _) = run(&["diff", s(&ex), s(&ex)]);
    assert_eq!((code, out.as_str()), (0, "no differences\n"));
    let dir = tempfile::tempdir().unwrap();
    let v = dir.path().join("v.img");
    std::fs::write(&v, variant().to_native_bytes().unwrap()).unwrap();
    let (code, out, _) = run(&["diff", s(&ex), s(&v)]);
    assert_eq!(code, 1);
    assert_eq!(
        out,
        "task 100 thread 101: rip: 0x401080 -> 0x401090\n\
         task 100 fd 0: pos: 1234 -> 99\n\
         task 100 pages: contents differ at 0x601000-0x602000 (1 page)\n\
         3 difference(s)\n"
    );
    // B from a pipe gives the same.
    let bytes = std::fs::read(&v).unwrap();
    let (code, pout) = run_stdin(&["diff", s(&ex), "-"], &bytes);
    assert_eq!((code, String::from_utf8(pout).unwrap()), (1, out));
    // JSON.
    let (_, out, _) = run(&["diff", "--json", s(&ex), s(&v)]);
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["equal"], false);
    assert_eq!(j["differences"][0]["field"], "rip");
    assert_eq!(j["differences"][0]["b"], "0x401090");
    // A zero run equals stored zero pages: same contents, different encoding.
    let conv = dir.path().join("c.v21");
    let (code, _, err) = run(&[
        "convert",
        "--lossy",
        "--to",
        "ckpt-v21",
        "--target-kernel",
        "keep",
        s(&ex),
        s(&conv),
    ]);
    assert_eq!(code, 0, "{err}");
    let (_, out, _) = run(&["diff", s(&ex), s(&conv)]);
    assert!(!out.contains("pages"), "{out}");
}

#[test]
fn convert_to_file_and_stdout() {
    let ex = fixture("example");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("same.img");
    let (code, _, err) = run(&[
        "convert",
        "--to",
        "native-1",
        "--target-kernel",
        "keep",
        s(&ex),
        s(&out),
    ]);
    assert_eq!(code, 0, "{err}");
    let bytes = std::fs::read(&ex).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), bytes);
    let (code, stdout) = run_stdin(
        &[
            "convert",
            "--to",
            "native-1",
            "--target-kernel",
            "keep",
            "-",
            "-",
        ],
        &bytes,
    );
    assert_eq!((code, stdout == bytes), (0, true));
    // Refused without --lossy; nothing left behind.
    let v21 = dir.path().join("x.v21");
    let (code, _, err) = run(&["convert", "--to", "ckpt-v21", s(&ex), s(&v21)]);
    assert_eq!(code, 1);
    assert!(err.contains("refused"), "{err}");
    assert!(!v21.exists());
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    // Lossy: a valid ckpt-v21 image.
    let (code, _, err) = run(&["convert", "--lossy", "--to", "ckpt-v21", s(&ex), s(&v21)]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("dropped:"), "{err}");
    let (code, out, _) = run(&["verify", s(&v21)]);
    assert_eq!(code, 0);
    assert!(out.starts_with("OK: ckpt-v21 image"), "{out}");
    assert_eq!(
        ckpt_format::detect(&std::fs::read(&v21).unwrap())
            .unwrap()
            .revision()
            .unwrap(),
        Revision::CkptV21
    );
}

#[test]
fn schema_lists_every_revision() {
    let (code, out, _) = run(&["schema"]);
    assert_eq!(code, 0);
    for r in Revision::ALL {
        assert!(out.contains(r.name()), "{r}");
    }
    let (code, out, _) = run(&["schema", "--rev", "ckpt-v21"]);
    assert_eq!(code, 0);
    assert_eq!(out, ckpt_format::schema::schema(Revision::CkptV21));
    assert_eq!(run(&["schema", "--rev", "v99"]).0, 2);
}

#[test]
fn show_json_has_the_documented_fields() {
    let (code, out, _) = run(&["show", "--json", s(&fixture("tree-pipe"))]);
    assert_eq!(code, 0);
    let j: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["revision"], "native-1");
    assert_eq!(j["arch"], "x86_64");
    assert_eq!(j["kernel"]["release"], "6.18.44-fixture");
    let t = &j["tasks"][2];
    assert_eq!(
        (t["pid"].as_i64(), t["comm"].as_str()),
        (Some(202), Some("reader"))
    );
    assert_eq!(t["threads"][1]["tid"], 302);
    assert_eq!(t["threads"][1]["regs"]["rip"], 0x40_0300);
    assert_eq!(t["threads"][1]["regs"]["rsp"], 0x7ffd_1000_0d00u64);
    let v = &t["vmas"][0];
    assert_eq!(
        (v["start"].as_u64(), v["end"].as_u64()),
        (Some(0x7ffd_0000_0000), Some(0x7ffd_0000_2000))
    );
    assert_eq!(
        (v["prot"].as_str(), v["kind"].as_str(), v["pages"].as_u64()),
        (Some("rw-"), Some("stack"), Some(1))
    );
    assert!(v["file"].is_null());
    let f = &t["fds"][1];
    assert_eq!(f["fd"], 2);
    assert_eq!(f["kind"], "regular");
    assert_eq!(f["path"], "/var/log/job.log");
    assert_eq!(f["pos"], 4096);
    assert_eq!(f["flags"], 0o2001);
    assert_eq!(f["cloexec"], true);
    let tot = &j["totals"];
    assert_eq!(
        (tot["pages"].as_u64(), tot["zero_pages"].as_u64()),
        (Some(3), Some(2))
    );
    // Every native-1 record produces one event: records = the framing count.
    let (_, rec, _) = run(&["records", "--json", s(&fixture("tree-pipe"))]);
    let r: serde_json::Value = serde_json::from_str(&rec).unwrap();
    assert_eq!(tot["records"], r["count"]);
    assert_eq!(
        tot["bytes"].as_u64(),
        Some(std::fs::metadata(fixture("tree-pipe")).unwrap().len())
    );
    assert_eq!(j["objects"][0]["referred_by"].as_array().unwrap().len(), 2);
}

/// `check`: "restorable here: no" and every reason for an image of another machine
/// (exit 1), JSON with the same reasons.
#[test]
fn check_names_every_reason() {
    let ex = fixture("example");
    let (code, out, err) = run(&["check", s(&ex)]);
    assert_eq!(code, 1, "{err}");
    assert!(out.starts_with("restorable here: no\n"), "{out}");
    assert!(
        out.contains("  - pid 100: executable /usr/bin/example: "),
        "{out}"
    );
    let (code, json, _) = run(&["check", "--json", s(&ex)]);
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["restorable"], false);
    let reasons = v["reasons"].as_array().unwrap();
    assert_eq!(
        reasons.len(),
        out.lines().filter(|l| l.starts_with("  - ")).count()
    );
    // The same from a pipe.
    let (pcode, pout) = run_stdin(&["check", "-"], &std::fs::read(&ex).unwrap());
    assert_eq!(
        (pcode, String::from_utf8_lossy(&pout).into_owned()),
        (1, out)
    );
}
