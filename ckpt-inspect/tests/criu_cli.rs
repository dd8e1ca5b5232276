//! Every ckpt-inspect command on a real CRIU 4.1.1 dump (scripts/build-criu.sh) and on a
//! container checkpoint archive made from it.

#[path = "../../ckpt-criu/tests/common/mod.rs"]
mod criu_common;

use criu_common::{crit, criu, dump, wait_for, Workload};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

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
m = os.memfd_create("not-carried")
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

    // show: the tree, the command, the socket pair and what the model does not carry (a
    // memfd held by an fd only; the socket pair is carried).
    let text = ok(&["show", d]);
    assert!(text.contains(&format!("Task {pid} (python3)")), "{text}");
    assert!(text.contains("CRIU dump: image version 2"), "{text}");
    let j: serde_json::Value = serde_json::from_str(&ok(&["show", "--json", d])).unwrap();
    assert_eq!(j["tasks"][0]["pid"].as_u64().unwrap().to_string(), pid);
    assert_eq!(j["tool"], "criu");
    let socks = j["criu"]["sockets"].as_array().unwrap();
    assert_eq!(socks.iter().filter(|s| s["kind"] == "unix").count(), 2);
    let losses = j["criu"]["losses"].as_array().unwrap();
    assert_eq!(losses.len(), 1, "{losses:?}");
    assert!(losses[0].as_str().unwrap().contains("memfd"), "{losses:?}");

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
    assert!(String::from_utf8_lossy(&o.stderr).contains("memfd"));
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
        1
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

    // `-`: the archive on standard input, through a pipe and redirected from the file.
    let bytes = std::fs::read(&arch).unwrap();
    for args in [
        &["show", "--json", "-"][..],
        &["mem", "-", "--pid", &pid, "--search", "NEEDLE-IN-A-CRIU"][..],
        &["diff", d, "-"][..],
    ] {
        let mut c = Command::new(env!("CARGO_BIN_EXE_ckpt-inspect"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = c.stdin.take().unwrap();
        let data = bytes.clone();
        let w = std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
        let piped = c.wait_with_output().unwrap();
        w.join().unwrap();
        let redirected = Command::new(env!("CARGO_BIN_EXE_ckpt-inspect"))
            .args(args)
            .stdin(std::fs::File::open(&arch).unwrap())
            .output()
            .unwrap();
        for o in [&piped, &redirected] {
            assert!(
                o.status.success(),
                "{args:?}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        assert_eq!(piped.stdout, redirected.stdout, "{args:?}");
        let out = String::from_utf8_lossy(&piped.stdout);
        match args[0] {
            "show" => {
                let js: serde_json::Value = serde_json::from_str(&out).unwrap();
                assert_eq!(js["tasks"], j["tasks"]);
                assert_eq!(js["criu"]["container"]["name"], "web");
            }
            "mem" => assert!(out.contains(&format!("{addr:#018x}")), "{out}"),
            _ => assert!(out.contains("no differences"), "{out}"),
        }
    }
}

/// A workload in a mount namespace of its own (so that CRIU dumps it: `mountpoints-N.img`),
/// without the namespace's tmpfs mounts (CRIU would archive their contents, which other
/// processes change) and with a tmpfs of its own on /mnt; `show` lists every mount as
/// crit decodes the image, field by field, in order.
#[test]
fn show_lists_the_mounts_of_a_dump_as_crit_decodes_them() {
    let Some((criu_bin, crit_bin)) = criu() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let script = r#"for m in $(findmnt -rn -t tmpfs -o TARGET | sort -r); do umount -l "$m"; done
mount -t tmpfs -o size=1m,mode=711 ckpt-criu-test /mnt || exit 1
exec python3 -c 'import os
os.closerange(0, 65536)
fd = os.open("/dev/null", os.O_RDWR)
os.dup2(fd, 1)
os.dup2(fd, 2)
os.execv("/bin/sleep", ["sleep", "1000"])'"#;
    let w = Workload::start(&[
        "unshare",
        "--mount",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
    ]);
    let comm = format!("/proc/{}/comm", w.pid);
    wait_for("the workload", || {
        std::fs::read_to_string(&comm).is_ok_and(|c| c.trim() == "sleep")
    });
    let dir = tmp.path().join("dump");
    dump(&criu_bin, w.pid, &dir, &[]);
    let d = dir.to_str().unwrap();
    let mnt_files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("mountpoints-")
        })
        .collect();
    assert_eq!(mnt_files.len(), 1, "{mnt_files:?}");
    let want = crit(&crit_bin, &mnt_files[0]);
    let want = want["entries"].as_array().unwrap();
    let j: serde_json::Value = serde_json::from_str(&ok(&["show", "--json", d])).unwrap();
    let got = j["criu"]["mounts"].as_array().unwrap();
    assert!(got.len() >= 2, "{got:?}");
    assert_eq!(got.len(), want.len());
    for (g, w) in got.iter().zip(want) {
        assert_eq!(g["mnt_id"], w["mnt_id"], "{g} vs {w}");
        assert_eq!(g["parent"], w["parent_mnt_id"], "{g} vs {w}");
        for f in ["mountpoint", "source", "root", "options"] {
            assert_eq!(g[f], w[f], "{f}: {g} vs {w}");
        }
    }
    // The workload's own tmpfs, with its source and size, under the root mount.
    let own = got
        .iter()
        .find(|m| m["source"] == "ckpt-criu-test")
        .unwrap_or_else(|| panic!("{got:#?}"));
    assert!(
        own["mountpoint"].as_str().unwrap().ends_with("/mnt"),
        "{own}"
    );
    assert!(
        own["options"].as_str().unwrap().contains("size=1024k"),
        "{own}"
    );
    let root = got.iter().find(|m| m["mountpoint"] == "/").unwrap();
    assert!(got.iter().any(|m| m["parent"] == root["mnt_id"]));
    // The text view says the same.
    let text = ok(&["show", d]);
    assert!(text.contains(&format!("mounts ({}):", got.len())), "{text}");
    assert!(text.contains("ckpt-criu-test"), "{text}");
}
