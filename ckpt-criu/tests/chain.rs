//! Parent (pre-dump) chains: pages a dump marks `in_parent` (PE_PARENT) are read from the
//! dump its `parent` link names, through as many parents as there are.
//!
//! `criu pre-dump` needs the kernel's soft-dirty tracking; kernels without it (this machine
//! kind: `criu check --feature mem_dirty_track` fails, pre-dump aborts with "BUG at
//! criu/mem.c:45", and `dump --prev-images-dir` refuses a parent that is not a pre-dump) cannot
//! make a chain. So the chain here is made from two real full dumps of one process, the
//! second after it rewrote every other page of a region: the second dump's pagemap is
//! rewritten the way a dump over a pre-dump records it (a page equal to the parent's becomes a
//! PE_PARENT run and leaves pages-N.img), with a `parent` link to the first dump, and a third
//! level on top (all of the second's present pages marked in its parent). Read through the
//! chain, every task's memory must be byte for byte what the second dump holds by itself.
//! When the kernel has soft-dirty tracking the test also makes a real `criu pre-dump` +
//! `criu dump --prev-images-dir` chain and checks it the same way.

mod common;

use ckpt_criu::pages::{PAGE, PE_PARENT, PE_PRESENT};
use ckpt_criu::{pb, CriuImage, Decoder};
use ckpt_format::{Event, EventSource};
use common::{criu, dump, wait_for, Workload};
use prost::Message;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

const PY: &str = r#"
import ctypes, mmap, os, sys, time
n = 64
m = mmap.mmap(-1, n * 4096, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
m.madvise(mmap.MADV_NOHUGEPAGE)
for i in range(n):
    m[i * 4096:(i + 1) * 4096] = bytes([(i + 1) & 255]) * 4096
addr = ctypes.addressof(ctypes.c_char.from_buffer(m))
def done(path, text):
    with open(path + ".tmp", "w") as o:
        o.write(text)
    os.rename(path + ".tmp", path)
done(sys.argv[1], "%d\n" % addr)
while not os.path.exists(sys.argv[2]):
    time.sleep(0.02)
for i in range(0, n, 2):
    m[i * 4096] = 0xEE
done(sys.argv[3], "ok\n")
time.sleep(1000)
"#;

/// Memory of every task (pid, address) -> page, and every other event but the header
/// (whose time is the inventory file's mtime) and the page events (split differently).
type Flat = (BTreeMap<(i32, u64), Vec<u8>>, Vec<Event<'static>>);

fn flatten(img: &CriuImage) -> Flat {
    let mut d = Decoder::new(img).expect("decoder");
    let (mut mem, mut rest) = (BTreeMap::new(), Vec::new());
    let mut pid = 0;
    while let Some(e) = d.next_event().expect("event") {
        match &e {
            Event::Task(t) => pid = t.pid,
            Event::Pages(p) => {
                for (i, a) in p.addrs.iter().enumerate() {
                    let page = p.page(i, PAGE as usize).unwrap().to_vec();
                    assert!(mem.insert((pid, a), page).is_none(), "{a:#x} twice");
                }
                continue;
            }
            Event::Header(_) => continue,
            _ => {}
        }
        rest.push(e.into_owned());
    }
    (mem, rest)
}

/// Each page of a pagemap: its address and contents (None when not present).
type PageList = Vec<(u64, Option<Vec<u8>>)>;

/// The pages of a pagemap file, with its pages_id.
fn pages_of(dir: &Path, pid: u32) -> (u32, PageList) {
    let pm = std::fs::read(dir.join(format!("pagemap-{pid}.img"))).unwrap();
    let mut f = ckpt_criu::ImageFile::new("pagemap", &pm).unwrap();
    let (_, head) = f.next_msg::<pb::PagemapHead>().unwrap().unwrap();
    let pages = std::fs::read(dir.join(format!("pages-{}.img", head.pages_id))).unwrap();
    let mut off = 0usize;
    let mut v = Vec::new();
    while let Some((_, e)) = f.next_msg::<pb::PagemapEntry>().unwrap() {
        let flags = e.flags.unwrap_or(PE_PRESENT);
        for k in 0..e.nr_pages as u64 {
            let a = e.vaddr + k * PAGE;
            if flags & PE_PRESENT != 0 {
                v.push((a, Some(pages[off..off + PAGE as usize].to_vec())));
                off += PAGE as usize;
            } else {
                v.push((a, None));
            }
        }
    }
    (head.pages_id, v)
}

/// Write `dir`'s pagemap-PID.img and pages-N.img again: pages for which `in_parent` says so
/// become PE_PARENT runs (and leave the pages file), the rest stays present; returns how
/// many pages went to the parent.
fn mark_in_parent(dir: &Path, pid: u32, in_parent: impl Fn(u64, &[u8]) -> bool) -> usize {
    let name = dir.join(format!("pagemap-{pid}.img"));
    let old = std::fs::read(&name).unwrap();
    let (pages_id, pages) = pages_of(dir, pid);
    let mut out = old[..8].to_vec(); // the magics
    let mut put = |m: &dyn Fn(&mut Vec<u8>)| {
        let mut b = Vec::new();
        m(&mut b);
        out.extend_from_slice(&(b.len() as u32).to_le_bytes());
        out.extend_from_slice(&b);
    };
    put(&|b| pb::PagemapHead { pages_id }.encode(b).unwrap());
    let mut data = Vec::new();
    let mut runs: Vec<(u64, u32, u32)> = Vec::new();
    let mut moved = 0;
    for (a, c) in &pages {
        let flags = match c {
            Some(c) if in_parent(*a, c) => {
                moved += 1;
                PE_PARENT
            }
            Some(c) => {
                data.extend_from_slice(c);
                PE_PRESENT
            }
            None => PE_PARENT,
        };
        match runs.last_mut() {
            Some((v, n, f)) if *f == flags && *v + *n as u64 * PAGE == *a => *n += 1,
            _ => runs.push((*a, 1, flags)),
        }
    }
    for (vaddr, nr_pages, flags) in runs {
        put(&|b| {
            pb::PagemapEntry {
                vaddr,
                nr_pages,
                in_parent: None,
                flags: Some(flags),
            }
            .encode(b)
            .unwrap()
        });
    }
    std::fs::write(&name, out).unwrap();
    std::fs::write(dir.join(format!("pages-{pages_id}.img")), data).unwrap();
    moved
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let p = e.unwrap().path();
        if p.is_file() {
            std::fs::copy(&p, to.join(p.file_name().unwrap())).unwrap();
        }
    }
}

/// The dumps' tasks (pstree order).
fn pids(dir: &Path) -> Vec<u32> {
    let b = std::fs::read(dir.join("pstree.img")).unwrap();
    let f = ckpt_criu::ImageFile::new("pstree", &b).unwrap();
    f.all::<pb::PstreeEntry>()
        .unwrap()
        .iter()
        .map(|p| p.pid)
        .collect()
}

struct Run {
    _tmp: tempfile::TempDir,
    parent: PathBuf,
    child: PathBuf,
    root: PathBuf,
    addr: u64,
}

/// Dump the workload (left running), let it rewrite every other page of its region, dump it
/// again; `pre` makes the first a `criu pre-dump` and the second `--prev-images-dir ../1`.
fn two_dumps(criu_bin: &Path, pre: bool) -> Run {
    let tmp = tempfile::tempdir().unwrap();
    let (script, info, go, ack) = (
        tmp.path().join("w.py"),
        tmp.path().join("info"),
        tmp.path().join("go"),
        tmp.path().join("ack"),
    );
    std::fs::write(&script, PY).unwrap();
    let w = Workload::start(&[
        "/usr/bin/python3",
        script.to_str().unwrap(),
        info.to_str().unwrap(),
        go.to_str().unwrap(),
        ack.to_str().unwrap(),
    ]);
    wait_for("the workload", || info.exists());
    let addr: u64 = std::fs::read_to_string(&info)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let root = tmp.path().join("d");
    let (parent, child) = (root.join("1"), root.join("2"));
    if pre {
        std::fs::create_dir_all(&parent).unwrap();
        let o = Command::new(criu_bin)
            .args(["pre-dump", "-t", &w.pid.to_string(), "-D"])
            .arg(&parent)
            .args(["--shell-job", "-o", "pre.log"])
            .output()
            .unwrap();
        assert!(o.status.success(), "criu pre-dump");
    } else {
        dump(criu_bin, w.pid, &parent, &["--leave-running"]);
    }
    std::fs::write(&go, "").unwrap();
    wait_for("the rewrite", || ack.exists());
    let extra: &[&str] = if pre {
        &["--prev-images-dir", "../1", "--track-mem"]
    } else {
        &[]
    };
    dump(criu_bin, w.pid, &child, extra);
    Run {
        _tmp: tmp,
        parent,
        child,
        root,
        addr,
    }
}

#[test]
fn pages_in_parent_dumps_read_through_the_chain() {
    let Some((criu_bin, _)) = criu() else {
        return;
    };
    let r = two_dumps(&criu_bin, false);
    let whole = flatten(&CriuImage::open(&r.child).unwrap());
    let tasks = pids(&r.child);
    // The workload's region: page i holds i+1, every other one rewritten in the second dump.
    let pid = tasks[0] as i32;
    for i in 0..64u64 {
        let p = &whole.0[&(pid, r.addr + i * PAGE)];
        let mut want = vec![(i + 1) as u8; PAGE as usize];
        if i % 2 == 0 {
            want[0] = 0xEE;
        }
        assert!(p == &want, "page {i}");
    }

    // Level 2: the second dump over the first, pages equal to the first's in the parent.
    let mid = r.root.join("mid");
    copy_dir(&r.child, &mid);
    std::os::unix::fs::symlink("../1", mid.join("parent")).unwrap();
    let mut moved = 0;
    for &p in &tasks {
        let (_, old) = pages_of(&r.parent, p);
        let old: BTreeMap<u64, Vec<u8>> = old
            .into_iter()
            .filter_map(|(a, c)| c.map(|c| (a, c)))
            .collect();
        moved += mark_in_parent(&mid, p, |a, c| old.get(&a).is_some_and(|o| o == c));
    }
    let (_, mid_pages) = pages_of(&mid, tasks[0]);
    let region_in_parent = (0..64u64)
        .filter(|i| {
            mid_pages
                .iter()
                .any(|(a, c)| *a == r.addr + i * PAGE && c.is_none())
        })
        .count();
    // The 32 pages not rewritten are the parent's; the rewritten ones stay in the child.
    assert_eq!(region_in_parent, 32);
    assert!(moved >= 32, "{moved}");
    let img = CriuImage::open(&mid).unwrap();
    assert!(img.parent.is_some());
    assert!(
        flatten(&img) == whole,
        "memory read through one parent differs"
    );

    // Level 3: every present page of level 2 in its parent, so reads go two levels up.
    let top = r.root.join("top");
    copy_dir(&mid, &top);
    std::os::unix::fs::symlink("../mid", top.join("parent")).unwrap();
    for &p in &tasks {
        mark_in_parent(&top, p, |_, _| true);
    }
    for &p in &tasks {
        let (id, _) = pages_of(&top, p);
        assert_eq!(
            std::fs::metadata(top.join(format!("pages-{id}.img")))
                .unwrap()
                .len(),
            0
        );
    }
    let img = CriuImage::open(&top).unwrap();
    assert!(img.parent.as_ref().unwrap().parent.is_some());
    assert!(
        flatten(&img) == whole,
        "memory read through two parents differs"
    );

    // A chain whose parent lacks the pages is an error naming the parent's pagemap.
    let broken = r.root.join("broken");
    copy_dir(&top, &broken);
    std::os::unix::fs::symlink("../2", broken.join("parent")).unwrap();
    for &p in &tasks {
        mark_in_parent(&r.child, p, |a, _| a == r.addr);
    }
    let img = CriuImage::open(&broken).unwrap();
    let mut d = Decoder::new(&img).unwrap();
    let err = loop {
        match d.next_event() {
            Ok(Some(_)) => {}
            Ok(None) => panic!("decoded"),
            Err(e) => break e.to_string(),
        }
    };
    assert!(err.contains("pagemap-"), "{err}");

    // A real pre-dump chain where the kernel tracks dirty pages.
    let soft_dirty = Command::new(&criu_bin)
        .args(["check", "--feature", "mem_dirty_track"])
        .output()
        .is_ok_and(|o| o.status.success());
    if soft_dirty {
        let r = two_dumps(&criu_bin, true);
        let img = CriuImage::open(&r.child).unwrap();
        assert!(img.parent.is_some());
        let got = flatten(&img);
        let pid = pids(&r.child)[0] as i32;
        for i in 0..64u64 {
            let mut want = vec![(i + 1) as u8; PAGE as usize];
            if i % 2 == 0 {
                want[0] = 0xEE;
            }
            assert!(got.0[&(pid, r.addr + i * PAGE)] == want, "page {i}");
        }
    } else {
        eprintln!("no soft-dirty tracking here: the real pre-dump chain is not made");
    }
}
