//! Every ckpt-inspect command on a real CRIU 4.1.1 dump (scripts/build-criu.sh) and on a
//! container checkpoint archive made from it.

#[path = "../../ckpt-criu/tests/common/mod.rs"]
mod criu_common;

use criu_common::{criu, dump, wait_for, Workload};
use std::path::Path;
use std::process::{Command, Output};

fn inspect(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ckpt-inspect"))
        .args(args)
        .output()
        .expect("run ckpt-inspect")
}

fn ok(args: &[&str]) -> String {
    let o = inspect(args);
    assert!(
        o.status.success(),
        "ckpt-inspect {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

const PY: &str = r#"
import ctypes, os, socket, sys, time
buf = ctypes.create_string_buffer(b"NEEDLE-IN-A-CRIU-DUMP", 64)
a, b = socket.socketpair()
with open(sys.argv[1] + ".tmp", "w") as o:
    o.write("%d\n" % ctypes.addressof(buf))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(1000)
"#;

#[test]
fn every_command_reads_a_criu_dump_and_an_archive() {
    let Some((criu_bin, _)) = criu() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let script = tmp.path().join("w.py");
    std::fs::write(&script, PY).unwrap();
    let info = tmp.path().join("info");
    let w = Workload::start(&[
        "/usr/bin/python3",
        script.to_str().unwrap(),
        info.to_str().unwrap(),
    ]);
    wait_for("the workload", || info.exists());
    let addr: u64 = std::fs::read_to_string(&info)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let pid = w.pid.to_string();
    let dir = tmp.path().join("dump");
    dump(&criu_bin, w.pid, &dir, &[]);
    let d = dir.to_str().unwrap();

    // show: the tree, the command, the socket pair and what the model does not carry.
    let text = ok(&["show", d]);
    assert!(text.contains(&format!("Task {pid} (python3)")), "{text}");
    assert!(text.contains("CRIU dump: image version 2"), "{text}");
    let j: serde_json::Value = serde_json::from_str(&ok(&["show", "--json", d])).unwrap();
    assert_eq!(j["tasks"][0]["pid"].as_u64().unwrap().to_string(), pid);
    assert_eq!(j["tool"], "criu");
    let socks = j["criu"]["sockets"].as_array().unwrap();
    assert_eq!(socks.iter().filter(|s| s["kind"] == "unix").count(), 2);
    let losses = j["criu"]["losses"].as_array().unwrap();
    assert_eq!(losses.len(), 2, "{losses:?}");
    assert!(losses
        .iter()
        .all(|l| l.as_str().unwrap().contains("unix socket")));

    // records: every entry of every file, framing only.
    let r: serde_json::Value = serde_json::from_str(&ok(&["records", "--json", d])).unwrap();
    assert_eq!(r["valid"], true);
    let recs = r["records"].as_array().unwrap();
    assert!(recs
        .iter()
        .any(|x| x["type"] == "CORE" && x["file"] == format!("core-{pid}.img")));
    assert!(recs.iter().any(|x| x["type"] == "RAW"));

    // verify, mem search and range.
    assert!(ok(&["verify", d]).starts_with("OK: "));
    let m = ok(&["mem", d, "--pid", &pid, "--search", "NEEDLE-IN-A-CRIU"]);
    assert!(m.contains(&format!("{addr:#018x}")), "{addr:#x} in {m}");
    let raw = inspect(&[
        "mem",
        d,
        "--pid",
        &pid,
        "--addr",
        &addr.to_string(),
        "--len",
        "21",
        "--raw",
    ]);
    assert_eq!(raw.stdout, b"NEEDLE-IN-A-CRIU-DUMP");

    // convert: refused while something would be lost, named; --lossy writes a valid native-1
    // image that diff finds equal to the dump.
    let out = tmp.path().join("dump.img");
    let o = inspect(&["convert", "--to", "native-1", d, out.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unix socket"));
    assert!(!out.exists());
    let o = inspect(&[
        "convert",
        "--lossy",
        "--to",
        "native-1",
        d,
        out.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stderr)
            .matches("dropped: ")
            .count(),
        2
    );
    assert!(ok(&["verify", out.to_str().unwrap()]).starts_with("OK: native-1"));
    let diff = ok(&["diff", d, out.to_str().unwrap()]);
    assert!(diff.contains("no differences"), "{diff}");

    // export-core: an ELF core with the task's memory.
    let core = tmp.path().join("core");
    ok(&["export-core", d, "-o", core.to_str().unwrap()]);
    let c = std::fs::read(&core).unwrap();
    assert_eq!(&c[..4], b"\x7fELF");
    assert!(c.windows(21).any(|w| w == b"NEEDLE-IN-A-CRIU-DUMP"));

    // explode: the tree on disk.
    let tree = tmp.path().join("tree");
    ok(&["explode", d, tree.to_str().unwrap()]);
    assert!(Path::new(&tree).read_dir().unwrap().count() > 0);

    // The same dump as a zstd container archive: the same tasks, and the container metadata.
    let arch = tmp.path().join("ckpt.tar.zst");
    ckpt_criu::archive::write_archive(
        &dir,
        &[(
            "config.dump",
            br#"{"id":"abc123","name":"web","rootfsImageName":"docker.io/library/python:3","runtime":"runc","checkpointedTime":"2026-12-03T13:00:00Z"}"#,
        )],
        std::fs::File::create(&arch).unwrap(),
        ckpt_criu::archive::Compression::Zstd,
    )
    .unwrap();
    let a = arch.to_str().unwrap();
    let ja: serde_json::Value = serde_json::from_str(&ok(&["show", "--json", a])).unwrap();
    assert_eq!(ja["tasks"], j["tasks"]);
    assert_eq!(ja["criu"]["container"]["name"], "web");
    assert_eq!(ja["criu"]["container"]["runtime"], "runc");
    let text = ok(&["show", a]);
    assert!(text.contains("image: docker.io/library/python:3"), "{text}");
    let m = ok(&["mem", a, "--pid", &pid, "--search", "NEEDLE-IN-A-CRIU"]);
    assert!(m.contains(&format!("{addr:#018x}")));
    let diff = ok(&["diff", d, a]);
    assert!(diff.contains("no differences"), "{diff}");
}
