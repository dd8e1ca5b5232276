//! The images ckpt-capture writes, read back through ckpt-inspect (verify, show --json, mem).

mod common;
use ckpt_inspect::source::Image;
use ckpt_inspect::{mem, summary, verify};
use common::*;
use std::process::Command;

fn capture(pid: i32) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("img");
    let out = Command::new(bin())
        .arg("-o")
        .arg(&img)
        .arg(pid.to_string())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read(&img).unwrap()
}

#[test]
fn verify_show_and_mem_of_a_captured_counter() {
    let mut t = Target::spawn("counter", &[]);
    let head = t.line();
    let f: Vec<&str> = head.split_whitespace().collect();
    let (buf, len) = (hex(f[3]), f[5].parse::<u64>().unwrap());
    let bytes = capture(t.pid());

    let (rep, err) = verify::verify(&mut Image::Bytes(bytes.clone()));
    assert!(err.is_none(), "{err:?}");
    let rep = serde_json::to_value(&rep).unwrap();
    assert!(rep.to_string().contains("native-1"), "{rep}");

    let (sum, err) = summary::summarise(&mut Image::Bytes(bytes.clone()));
    assert!(err.is_none(), "{err:?}");
    let j = serde_json::to_value(&sum).unwrap();
    assert_eq!(j["tasks"][0]["pid"], t.pid());
    assert_eq!(j["tasks"][0]["threads"].as_array().unwrap().len(), 1);
    assert_eq!(j["tasks"][0]["comm"], "counter");
    assert!(j["writer_errors"].as_array().unwrap().is_empty());

    let cap = mem::read_range(&mut Image::Bytes(bytes), t.pid(), buf, len).unwrap();
    let want: Vec<u8> = (0..len as usize)
        .map(|i| (i.wrapping_mul(7).wrapping_add(3)) as u8)
        .collect();
    assert_eq!(cap.segments, vec![(buf, want)]);
    t.line();
}

#[test]
fn show_json_of_files_and_pipe() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Target::spawn("files", &[dir.path().to_str().unwrap()]);
    let r: Vec<i32> = t
        .line()
        .split_whitespace()
        .skip(1)
        .map(|x| x.parse().unwrap())
        .collect();
    let bytes = capture(t.pid());
    let (sum, err) = summary::summarise(&mut Image::Bytes(bytes));
    assert!(err.is_none(), "{err:?}");
    let j = serde_json::to_value(&sum).unwrap();
    let fds = j["tasks"][0]["fds"].as_array().unwrap();
    let fd = |n: i32| fds.iter().find(|f| f["fd"] == n).unwrap();
    assert_eq!(fd(r[0])["pos"], 1234);
    assert_eq!(fd(r[0])["kind"], "regular");
    assert_eq!(fd(r[1])["pos"], 77);
    assert_eq!(fd(r[1])["cloexec"], true);
    assert_eq!(fd(r[2])["file"], fd(r[0])["file"]);
    assert_eq!(fd(r[4])["pipe"], fd(r[5])["pipe"]);
    assert!(fd(r[4])["pipe"].is_number());
    t.send("go\n");
    assert_eq!(t.line(), "pipe unread-pipe-data pos 1234 77");
}
