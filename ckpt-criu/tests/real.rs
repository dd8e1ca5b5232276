//! Real CRIU 4.1.1 dumps of real workloads, read by ckpt-criu and compared field by field with
//! CRIU's own crit: pids, registers, VMAs, page contents at chosen addresses, fds; and the same
//! dump inside container checkpoint archives (tar, tar.gz, tar.zst).

mod common;

use ckpt_criu::archive::{self, Compression};
use ckpt_criu::{CriuImage, Decoder};
use ckpt_format::{Event, EventSource, VmaKind};
use common::{crit, criu, dump, wait_for, Workload};
use serde_json::Value;
use std::collections::BTreeMap;

const PY: &str = r#"
import ctypes, mmap, os, socket, sys, threading, time
m = mmap.mmap(-1, 1 << 20)
pat = bytes((i * 7 + 3) & 255 for i in range(4096))
m[0:16] = b"CKPT-CRIU-MARKER"
m[4096:8192] = pat
addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
f = open(sys.argv[2], "w+")
f.write("x" * 100)
f.flush()
r, w = os.pipe()
os.write(w, b"in the pipe")
a, b = socket.socketpair()
a.send(b"queued")
def spin():
    while True:
        time.sleep(0.05)
for _ in range(2):
    threading.Thread(target=spin, daemon=True).start()
with open(sys.argv[1] + ".tmp", "w") as o:
    o.write("%d %d %d %d\n" % (addr, f.fileno(), r, w))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(1000)
"#;

/// Every event of a dump, owned.
fn events(img: &CriuImage) -> (Vec<Event<'static>>, Vec<String>) {
    let mut d = Decoder::new(img).expect("decoder");
    let mut v = Vec::new();
    while let Some(e) = d.next_event().expect("event") {
        v.push(e.into_owned());
    }
    (v, d.losses().to_vec())
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a number: {v}"))
}

/// The page at `addr` of task `pid` in the events.
fn page_at(evs: &[Event<'_>], pid: i32, addr: u64) -> Option<Vec<u8>> {
    let mut cur = 0;
    for e in evs {
        match e {
            Event::Task(t) => cur = t.pid,
            Event::Pages(p) if cur == pid => {
                for (i, a) in p.addrs.iter().enumerate() {
                    if a == addr {
                        return p.page(i, 4096).map(|s| s.to_vec());
                    }
                }
            }
            _ => {}
        }
    }
    None
}

fn python_dump(tag: &str) -> Option<(tempfile::TempDir, std::path::PathBuf, [u64; 4])> {
    let (criu_bin, _) = criu()?;
    let tmp = tempfile::tempdir().unwrap();
    let info = tmp.path().join("info");
    let data = tmp.path().join("data.txt");
    let script = tmp.path().join("w.py");
    std::fs::write(&script, PY).unwrap();
    let w = Workload::start(&[
        "/usr/bin/python3",
        script.to_str().unwrap(),
        info.to_str().unwrap(),
        data.to_str().unwrap(),
    ]);
    wait_for("the python workload", || info.exists());
    let nums: Vec<u64> = std::fs::read_to_string(&info)
        .unwrap()
        .split_whitespace()
        .map(|s| s.parse().unwrap())
        .collect();
    let dir = tmp.path().join(tag);
    dump(&criu_bin, w.pid, &dir, &[]);
    Some((tmp, dir, [nums[0], nums[1], nums[2], nums[3]]))
}

#[test]
fn python_threads_files_pipe_socketpair_match_crit() {
    let Some((_tmp, dir, [addr, file_fd, rfd, wfd])) = python_dump("py") else {
        return;
    };
    let (_, crit_bin) = criu().unwrap();
    let img = CriuImage::open(&dir).unwrap();
    let (evs, losses) = events(&img);

    // Tree and threads against pstree.img.
    let pst = crit(&crit_bin, &dir.join("pstree.img"));
    let entries = pst["entries"].as_array().unwrap();
    let tasks: Vec<&ckpt_format::Task> = evs
        .iter()
        .filter_map(|e| {
            if let Event::Task(t) = e {
                Some(t)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(tasks.len(), entries.len());
    for (t, e) in tasks.iter().zip(entries) {
        assert_eq!(t.pid as u64, u(&e["pid"]));
        assert_eq!(t.ppid as u64, u(&e["ppid"]));
        assert_eq!(t.pgid as u64, u(&e["pgid"]));
        assert_eq!(t.sid as u64, u(&e["sid"]));
    }
    let pid = tasks[0].pid;
    let threads: Vec<&ckpt_format::Thread> = evs
        .iter()
        .filter_map(|e| {
            if let Event::Thread(t) = e {
                Some(t)
            } else {
                None
            }
        })
        .collect();
    let crit_tids: Vec<u64> = entries[0]["threads"]
        .as_array()
        .unwrap()
        .iter()
        .map(u)
        .collect();
    assert_eq!(crit_tids.len(), 3, "python main + 2 threads");
    assert_eq!(
        threads.iter().map(|t| t.tid as u64).collect::<Vec<_>>(),
        crit_tids
    );

    // Registers of every thread against its core-TID.img.
    for th in &threads {
        let core = crit(&crit_bin, &dir.join(format!("core-{}.img", th.tid)));
        let g = &core["entries"][0]["thread_info"]["gpregs"];
        let names = [
            "r15", "r14", "r13", "r12", "bp", "bx", "r11", "r10", "r9", "r8", "ax", "cx", "dx",
            "si", "di", "orig_ax", "ip", "cs", "flags", "sp", "ss", "fs_base", "gs_base", "ds",
            "es", "fs", "gs",
        ];
        let ours = th.regs.to_array();
        for (i, n) in names.iter().enumerate() {
            assert_eq!(ours[i], u(&g[n]), "thread {} register {n}", th.tid);
        }
        let tc = &core["entries"][0]["thread_core"];
        // The leader's mask is in the task core, the other threads' in their thread core.
        let mask = match tc.get("blk_sigset") {
            Some(m) => u(m),
            None => u(&core["entries"][0]["tc"]["blk_sigset"]),
        };
        assert_eq!(th.sigmask, mask, "thread {} sigmask", th.tid);
        let fp = &core["entries"][0]["thread_info"]["fpregs"];
        let fpu = th.fpu.as_ref().expect("fpu");
        assert_eq!(
            u32::from_le_bytes(fpu.data[24..28].try_into().unwrap()) as u64,
            u(&fp["mxcsr"]),
            "mxcsr"
        );
        let xmm: Vec<u8> = fp["xmm_space"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|x| (u(x) as u32).to_le_bytes())
            .collect();
        assert_eq!(&fpu.data[160..160 + xmm.len()], &xmm[..], "xmm registers");
    }

    // VMAs against mm-PID.img (the model splits CRIU's 6-page VVAR area in two).
    let mm = crit(&crit_bin, &dir.join(format!("mm-{pid}.img")));
    let crit_vmas: Vec<(u64, u64, u64)> = mm["entries"][0]["vmas"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (u(&v["start"]), u(&v["end"]), u(&v["prot"])))
        .collect();
    let mut ours: Vec<(u64, u64, u64)> = Vec::new();
    let mut in_task = false;
    for e in &evs {
        match e {
            Event::Task(t) => in_task = t.pid == pid,
            Event::Vma(v) if in_task => match ours.last_mut() {
                Some(last)
                    if v.kind == VmaKind::Vvar && last.1 == v.start && last.2 == v.prot as u64 =>
                {
                    last.1 = v.end
                }
                _ => ours.push((v.start, v.end, v.prot as u64)),
            },
            _ => {}
        }
    }
    assert_eq!(ours, crit_vmas);

    // Page contents: crit's pagemap gives each run's place in pages-N.img; the first and last
    // page of every run must be what the decoder gives at that address.
    let pm = crit(&crit_bin, &dir.join(format!("pagemap-{pid}.img")));
    let pe = pm["entries"].as_array().unwrap();
    let pages = std::fs::read(dir.join(format!("pages-{}.img", u(&pe[0]["pages_id"])))).unwrap();
    let mut off = 0usize;
    let mut checked = 0;
    for e in &pe[1..] {
        let (va, n) = (u(&e["vaddr"]), u(&e["nr_pages"]));
        for k in [0, n - 1] {
            let want = &pages[off + k as usize * 4096..off + (k as usize + 1) * 4096];
            let got = page_at(&evs, pid, va + k * 4096)
                .unwrap_or_else(|| panic!("page {:#x}", va + k * 4096));
            assert_eq!(got, want, "page {:#x}", va + k * 4096);
            checked += 1;
        }
        off += n as usize * 4096;
    }
    assert!(checked > 20, "{checked} pages checked");
    assert_eq!(off, pages.len());
    // And what the program wrote, where it wrote it.
    let p0 = page_at(&evs, pid, addr).expect("marker page");
    assert_eq!(&p0[..16], b"CKPT-CRIU-MARKER");
    let p1 = page_at(&evs, pid, addr + 4096).expect("pattern page");
    assert!(p1
        .iter()
        .enumerate()
        .all(|(i, &b)| b == ((i * 7 + 3) & 255) as u8));

    // fds against fdinfo-N.img and files.img.
    let ids = crit(&crit_bin, &dir.join(format!("ids-{pid}.img")));
    let fdi = crit(
        &crit_bin,
        &dir.join(format!("fdinfo-{}.img", u(&ids["entries"][0]["files_id"]))),
    );
    let files = crit(&crit_bin, &dir.join("files.img"));
    let by_id: BTreeMap<u64, &Value> = files["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (u(&f["id"]), f))
        .collect();
    let mut model_files: BTreeMap<u32, &ckpt_format::File> = BTreeMap::new();
    let mut model_fds: BTreeMap<u64, &ckpt_format::File> = BTreeMap::new();
    in_task = false;
    for e in &evs {
        match e {
            Event::Task(t) => in_task = t.pid == pid,
            Event::File(f) => {
                model_files.insert(f.id, f);
            }
            Event::Fd(fd) if in_task => {
                model_fds.insert(fd.fd as u64, model_files[&fd.file]);
            }
            _ => {}
        }
    }
    let mut sockets = 0;
    for e in fdi["entries"].as_array().unwrap() {
        let fd = u(&e["fd"]);
        let f = by_id[&u(&e["id"])];
        if let Some(reg) = f.get("reg") {
            assert_eq!(
                model_fds[&fd].path,
                reg["name"].as_str().unwrap().as_bytes(),
                "fd {fd}"
            );
            if fd == file_fd {
                assert_eq!(model_fds[&fd].pos, 100);
                assert_eq!(u(&reg["pos"]), 100);
            }
        } else if f.get("pipe").is_some() {
            assert_eq!(model_fds[&fd].kind, ckpt_format::FileKind::Pipe, "fd {fd}");
        } else if let Some(usk) = f.get("usk") {
            sockets += 1;
            // Carried: the socket record as crit decodes the entry, the peer by inode.
            let s = model_fds[&fd].records.sock.socket.as_ref().expect("socket");
            assert_eq!(s.ino as u64, u(&usk["ino"]), "fd {fd}");
            assert_eq!(s.peer_ino.map(u64::from), Some(u(&usk["peer"])), "fd {fd}");
            assert_eq!((s.family, s.ty, s.state), (1, 1, 1), "fd {fd}");
        }
    }
    assert_eq!(sockets, 2, "the socketpair");
    assert!(!losses.iter().any(|l| l.contains("socket")), "{losses:?}");
    // a.send(b"queued"): in b's receive queue.
    let queued: Vec<Vec<u8>> = model_fds
        .values()
        .filter_map(|f| f.records.sock.queue.as_ref())
        .flat_map(|q| q.messages.iter().map(|m| m.data.clone()))
        .collect();
    assert_eq!(queued, vec![b"queued".to_vec()]);
    assert_eq!(
        model_fds[&rfd].pipe, model_fds[&wfd].pipe,
        "both pipe ends, one pipe"
    );
    let pipe_data: Vec<&[u8]> = evs
        .iter()
        .filter_map(|e| {
            if let Event::Pipe(p) = e {
                Some(&p.data[..])
            } else {
                None
            }
        })
        .collect();
    assert!(pipe_data.contains(&&b"in the pipe"[..]), "{pipe_data:?}");
    // The CRIU-level view lists the socket pair as peers.
    let info = ckpt_criu::info::info(&img).unwrap();
    let unix: Vec<_> = info.sockets.iter().filter(|s| s.kind == "unix").collect();
    assert_eq!(unix.len(), 2);
    assert_eq!(unix[0].peer, format!("ino:{}", unix[1].ino));
}

#[test]
fn pipeline_tree_matches_crit() {
    let Some((criu_bin, crit_bin)) = criu() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let w = Workload::start(&["sh", "-c", "sleep 1000 | cat | cat"]);
    wait_for("the pipeline", || {
        std::fs::read_to_string(format!("/proc/{}/task/{}/children", w.pid, w.pid))
            .is_ok_and(|c| c.split_whitespace().count() == 3)
    });
    let dir = tmp.path().join("tree");
    dump(&criu_bin, w.pid, &dir, &[]);
    let img = CriuImage::open(&dir).unwrap();
    let (evs, losses) = events(&img);
    assert!(losses.is_empty(), "{losses:?}");
    let pst = crit(&crit_bin, &dir.join("pstree.img"));
    let want: Vec<(u64, u64)> = pst["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (u(&e["pid"]), u(&e["ppid"])))
        .collect();
    let got: Vec<(u64, u64)> = evs
        .iter()
        .filter_map(|e| match e {
            Event::Task(t) => Some((t.pid as u64, t.ppid as u64)),
            _ => None,
        })
        .collect();
    assert_eq!(got, want);
    assert_eq!(got.len(), 4);
    // One Pipe object per pipe inode crit lists in files.img, each pipe end a File of it.
    let files = crit(&crit_bin, &dir.join("files.img"));
    let crit_pipes: std::collections::BTreeSet<u64> = files["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f.get("pipe").map(|p| u(&p["pipe_id"])))
        .collect();
    let pipes = evs.iter().filter(|e| matches!(e, Event::Pipe(_))).count();
    assert!(crit_pipes.len() >= 2, "sleep | cat | cat has two pipes");
    assert_eq!(pipes, crit_pipes.len());
    let ends: std::collections::BTreeSet<Vec<u8>> = evs
        .iter()
        .filter_map(|e| match e {
            Event::File(f) if f.kind == ckpt_format::FileKind::Pipe => Some(f.path.clone()),
            _ => None,
        })
        .collect();
    let want_ends: std::collections::BTreeSet<Vec<u8>> = crit_pipes
        .iter()
        .map(|p| format!("pipe:[{p}]").into_bytes())
        .collect();
    assert_eq!(ends, want_ends);
}

#[test]
fn container_archives_read_like_the_directory() {
    let Some((_tmp, dir, _)) = python_dump("arch") else {
        return;
    };
    let img = CriuImage::open(&dir).unwrap();
    let (want, want_losses) = events(&img);
    let config = br#"{"id":"f11d11844af0","name":"magical_murdock","rootfsImageName":"quay.io/example/app:latest","runtime":"crun","createdTime":"2026-12-03T13:00:00Z","checkpointedTime":"2026-12-03T13:05:00Z"}"#;
    let spec = br#"{"ociVersion":"1.0.2","annotations":{"io.container.manager":"libpod"}}"#;
    let rootfs = vec![0u8; 10240];
    for (comp, ext) in [
        (Compression::None, "tar"),
        (Compression::Gzip, "tar.gz"),
        (Compression::Zstd, "tar.zst"),
    ] {
        let path = dir.with_extension(ext);
        let f = std::fs::File::create(&path).unwrap();
        archive::write_archive(
            &dir,
            &[
                ("config.dump", config),
                ("spec.dump", spec),
                ("rootfs-diff.tar", &rootfs),
            ],
            f,
            comp,
        )
        .unwrap();
        assert!(ckpt_criu::is_criu(&path));
        let a = CriuImage::open(&path).unwrap();
        let (got, losses) = events(&a);
        assert_eq!(got.len(), want.len(), "{ext}");
        assert!(got == want, "{ext}: events differ from the directory's");
        assert_eq!(losses, want_losses);
        let info = ckpt_criu::info::info(&a).unwrap();
        let c = info.container.expect("container metadata");
        assert_eq!(c.name, "magical_murdock");
        assert_eq!(c.image, "quay.io/example/app:latest");
        assert_eq!(c.runtime, "crun");
        assert_eq!(c.engine, "Podman");
        assert_eq!(c.rootfs_diff_bytes, 10240);
        // Reading the archive from a pipe gives the same.
        let r = CriuImage::open_reader(std::fs::File::open(&path).unwrap(), &path).unwrap();
        assert!(events(&r).0 == want, "{ext} from a stream");
    }
}
