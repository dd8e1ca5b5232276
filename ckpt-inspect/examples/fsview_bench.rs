//! Measure `mount`: a large native-1 image is mounted over FUSE and one page
//! of `task-1/mem` is read. Run by `scripts/fsview-mount-bench.sh` (as root).
//!
//! `fsview_bench IMAGE MOUNTPOINT [GIB [ROUNDS]]`: writes IMAGE (GIB GiB of
//! page contents, default 2) if it does not exist, then runs ROUNDS rounds
//! (default 5) of one cold (page cache dropped) and two warm timings of
//! mount + open + read of one page, and prints each and the medians.

use ckpt_format::build::ImageBuilder;
use ckpt_format::{
    encoder, Addrs, Event, Mm, PageChunk, Regs, Revision, Task, Thread, Vma, VmaKind, PROT_READ,
    PROT_WRITE,
};
use ckpt_inspect::fsview::mount::spawn;
use std::borrow::Cow;
use std::fs;
use std::io::BufWriter;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Instant;

const BASE: u64 = 0x7f00_0000_0000;
const CHUNK: u64 = 256;

fn page_of(i: u64) -> Vec<u8> {
    let mut p = vec![(i % 251) as u8; 4096];
    p[..8].copy_from_slice(&i.to_le_bytes());
    p
}

fn write_image(path: &Path, gib: u64) -> ckpt_format::Result<()> {
    let pages = gib << 18;
    let f = fs::File::create(path).map_err(|e| ckpt_format::Error::io(0, &e))?;
    let mut enc = encoder(Revision::Native1, BufWriter::with_capacity(4 << 20, f));
    enc.event(&Event::Header(ImageBuilder::x86_64_header()))?;
    enc.event(&Event::Task(Task {
        pid: 1,
        tgid: 1,
        comm: b"big".to_vec(),
        ..Task::default()
    }))?;
    enc.event(&Event::Thread(Thread {
        tid: 1,
        regs: Regs {
            rip: BASE,
            ..Regs::default()
        },
        ..Thread::default()
    }))?;
    enc.event(&Event::Mm(Mm::default()))?;
    enc.event(&Event::Vma(Vma {
        start: BASE,
        end: BASE + pages * 4096,
        prot: PROT_READ | PROT_WRITE,
        flags: 0x73,
        pgoff: 0,
        kind: VmaKind::Anon,
        file: None,
        records: Default::default(),
        extras: Default::default(),
    }))?;
    let mut data = Vec::with_capacity((CHUNK * 4096) as usize);
    let mut i = 0;
    while i < pages {
        data.clear();
        let n = CHUNK.min(pages - i);
        for k in 0..n {
            data.extend_from_slice(&page_of(i + k));
        }
        let runs = [BASE + i * 4096, n];
        let rb: Vec<u8> = runs.iter().flat_map(|x| x.to_le_bytes()).collect();
        enc.event(&Event::Pages(PageChunk {
            addrs: Addrs::from_runs(&rb, 4096).expect("runs"),
            data: Cow::Borrowed(&data),
        }))?;
        i += n;
    }
    enc.event(&Event::VmaEnd)?;
    enc.event(&Event::Tail)?;
    enc.finish()
}

fn measure(img: &Path, mnt: &Path, page: u64) -> (f64, f64) {
    let t0 = Instant::now();
    let session = spawn(img, mnt).expect("mount");
    let t_mount = t0.elapsed().as_secs_f64() * 1e3;
    let mem = fs::File::open(mnt.join("task-1/mem")).expect("open mem");
    let mut buf = vec![0u8; 4096];
    mem.read_exact_at(&mut buf, BASE + page * 4096)
        .expect("read");
    let t_read = t0.elapsed().as_secs_f64() * 1e3;
    assert!(buf == page_of(page), "page contents differ");
    drop(mem);
    session.umount_and_join().expect("unmount");
    (t_mount, t_read)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: fsview_bench IMAGE MOUNTPOINT [GIB [ROUNDS]]");
        std::process::exit(2);
    }
    let img = Path::new(&args[1]);
    let mnt = Path::new(&args[2]);
    let gib: u64 = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(2);
    if !img.exists() {
        let t = Instant::now();
        if let Err(e) = write_image(img, gib) {
            eprintln!("{}: {e}", img.display());
            std::process::exit(1);
        }
        eprintln!(
            "wrote {} in {:.1} s",
            img.display(),
            t.elapsed().as_secs_f64()
        );
    }
    let size = fs::metadata(img).map(|m| m.len()).unwrap_or(0);
    let rounds: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(5).max(1);
    let pages = (gib << 18).max(1);
    let page = pages / 2 + 17;
    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        for round in ["cold", "warm", "warm"] {
            if round == "cold" {
                // Drop the image from the page cache (root only; ignored otherwise).
                let _ = fs::write("/proc/sys/vm/drop_caches", "3");
            }
            let (m, r) = measure(img, mnt, page);
            println!(
                "{round}: image {:.2} GiB, mount ready {m:.1} ms, mount + open + read of page {page} of task-1/mem {r:.1} ms",
                size as f64 / (1u64 << 30) as f64
            );
            if round == "cold" {
                cold.push(r);
            } else {
                warm.push(r);
            }
        }
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    println!(
        "median of {rounds} rounds, mount + open + read of one page: cold {:.1} ms, warm {:.1} ms ({} runs)",
        median(&mut cold),
        median(&mut warm),
        warm.len()
    );
}
