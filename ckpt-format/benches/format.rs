//! ckpt-format benchmark: `cargo bench -p ckpt-format --bench format`.
//!
//! Reports, from one run, against baselines measured in the same run:
//! 1. a walk of every record of an mmap'd image without touching page
//!    contents, for a 1 GiB and a 4 GiB image of the same layout (the same
//!    records; chunks of 1024 vs 4096 pages) — the times should be equal;
//! 2. full verification (every CRC, page contents included) against memcpy
//!    of the same bytes out of the same mapping;
//! 3. the stream reader's peak RSS (VmHWM of a child process decoding the
//!    image from a pipe) for a 1 GiB and a 4 GiB image written with the
//!    writer's default chunks of 256 pages.
//!
//! Images are generated once into `$CKPT_BENCH_DIR` (default
//! /tmp/ckpt-bench). `CKPT_BENCH_SCALE=small` uses 64 MiB and 256 MiB images.

use ckpt_format::build::ImageBuilder;
use ckpt_format::input::{SliceInput, StreamInput};
use ckpt_format::native::{Decoder, Encoder};
use ckpt_format::*;
use std::borrow::Cow;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHUNKS: u64 = 256;

fn generate(path: &Path, chunks: u64, pages_per_chunk: u64) {
    if path.exists() {
        return;
    }
    let tmp = path.with_extension("tmp");
    let f = File::create(&tmp).unwrap();
    let mut enc = Encoder::new(std::io::BufWriter::with_capacity(1 << 20, f));
    let mut b = ImageBuilder::new(ImageBuilder::x86_64_header());
    b.push(Event::Task(Task {
        pid: 42,
        tgid: 42,
        comm: b"bench".to_vec(),
        ..Task::default()
    }));
    b.push(Event::Mm(Mm::default()));
    for ev in &b.events {
        enc.event(ev).unwrap();
    }
    let total = chunks * pages_per_chunk;
    let start = 0x7f00_0000_0000u64;
    enc.event(&Event::Vma(Vma {
        start,
        end: start + total * 4096,
        prot: PROT_READ | PROT_WRITE,
        flags: 0x73,
        pgoff: 0,
        kind: VmaKind::Anon,
        file: None,
        records: Default::default(),
        extras: Extras::new(),
    }))
    .unwrap();
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut data = vec![0u8; (pages_per_chunk * 4096) as usize];
    for c in 0..chunks {
        for w in data.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        let addrs: Vec<u64> = (0..pages_per_chunk)
            .map(|i| start + (c * pages_per_chunk + i) * 4096)
            .collect();
        // The encoder splits events above 4096 pages; chunks here are at most that.
        enc.event(&Event::Pages(PageChunk {
            addrs: Addrs::from_u64s(&addrs),
            data: Cow::Borrowed(&data),
        }))
        .unwrap();
    }
    enc.event(&Event::VmaEnd).unwrap();
    enc.event(&Event::Tail).unwrap();
    enc.finish().unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn best<F: FnMut() -> u64>(runs: usize, mut f: F) -> (Duration, u64) {
    let mut best = Duration::MAX;
    let mut out = 0;
    for _ in 0..runs {
        let t = Instant::now();
        out = f();
        best = best.min(t.elapsed());
    }
    (best, out)
}

fn walk(bytes: &[u8], check_pages: bool) -> u64 {
    let mut d = Decoder::new(
        SliceInput::new(bytes),
        ReadOptions {
            check_page_data: check_pages,
        },
    );
    let mut n = 0u64;
    while let Some(ev) = d.next_event().unwrap() {
        if let Event::Pages(p) = ev {
            n += p.addrs.len() as u64;
        }
    }
    n
}

fn stream_child(path: &str) {
    let f = File::open(path).unwrap();
    let mut d = Decoder::new(
        StreamInput::new(BufReader::with_capacity(64 << 10, f)),
        ReadOptions::default(),
    );
    let mut n = 0u64;
    while let Some(ev) = d.next_event().unwrap() {
        if let Event::Pages(p) = ev {
            n += p.addrs.len() as u64;
        }
    }
    let mut s = String::new();
    File::open("/proc/self/status")
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    let hwm = s
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .unwrap_or("0");
    println!("{n} {hwm}");
}

fn stream_rss(exe: &Path, image: &Path) -> (u64, u64) {
    // The child reads the image through a pipe from `cat`: no seek, no mmap.
    let mut cat = Command::new("cat")
        .arg(image)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let out = Command::new(exe)
        .arg("--stream-child")
        .arg("/dev/stdin")
        .stdin(cat.stdout.take().unwrap())
        .output()
        .unwrap();
    cat.wait().unwrap();
    let s = String::from_utf8_lossy(&out.stdout);
    let mut it = s.split_whitespace().map(|x| x.parse::<u64>().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

fn gbps(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64() / 1e9
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--stream-child") {
        stream_child(&args[i + 1]);
        return;
    }
    let small = std::env::var("CKPT_BENCH_SCALE").as_deref() == Ok("small");
    let dir =
        PathBuf::from(std::env::var("CKPT_BENCH_DIR").unwrap_or_else(|_| "/tmp/ckpt-bench".into()));
    std::fs::create_dir_all(&dir).unwrap();
    let (p1, p4) = if small { (64, 256) } else { (1024, 4096) };
    let img1 = dir.join(format!("layout-{p1}.ckpt"));
    let img4 = dir.join(format!("layout-{p4}.ckpt"));
    generate(&img1, CHUNKS, p1);
    generate(&img4, CHUNKS, p4);
    let (c1, c4) = (CHUNKS * p1 / 256, CHUNKS * p4 / 256);
    let rss1 = dir.join(format!("chunks-{c1}x256.ckpt"));
    let rss4 = dir.join(format!("chunks-{c4}x256.ckpt"));
    generate(&rss1, c1, 256);
    generate(&rss4, c4, 256);
    let exe = std::env::current_exe().unwrap();

    println!("ckpt-format benchmark ({} chunks per image)", CHUNKS);
    println!(
        "{:<34} {:>10} {:>12} {:>12} {:>10}",
        "measure", "image", "time", "throughput", "ratio"
    );
    let mut walks = Vec::new();
    for img in [&img1, &img4] {
        let f = File::open(img).unwrap();
        let m = unsafe_map(&f);
        let size = m.len();
        let label = format!("{} MiB", size >> 20);
        // 1. walk without touching page contents (fresh mapping each run).
        let (t_walk, pages) = best(5, || {
            let f = File::open(img).unwrap();
            let m = unsafe_map(&f);
            walk(&m, false)
        });
        let (t_warm, _) = best(20, || walk(&m, false));
        walks.push((t_walk, t_warm));
        println!(
            "{:<34} {:>10} {:>10.3}ms {:>12} {:>10}",
            "walk, mapped mmap (no page data)",
            label,
            t_warm.as_secs_f64() * 1e3,
            format!("{pages} pages"),
            "-"
        );
        println!(
            "{:<34} {:>10} {:>10.3}ms {:>12} {:>10}",
            "walk incl. open+mmap+faults",
            label,
            t_walk.as_secs_f64() * 1e3,
            format!("{pages} pages"),
            "-"
        );
        // 2. verify vs memcpy, both on a warm mapping.
        let mut buf = vec![0u8; 8 << 20];
        let (t_copy, _) = best(3, || {
            let mut s = 0u64;
            for c in m.chunks(buf.len()) {
                std::hint::black_box(&mut buf[..c.len()]).copy_from_slice(std::hint::black_box(c));
                s = s.wrapping_add(std::hint::black_box(&buf)[c.len() - 1] as u64);
            }
            s
        });
        let (t_verify, _) = best(3, || walk(&m, true));
        println!(
            "{:<34} {:>10} {:>10.1}ms {:>8.2} GB/s {:>10}",
            "baseline: memcpy of the image",
            label,
            t_copy.as_secs_f64() * 1e3,
            gbps(size, t_copy),
            "1.00x"
        );
        println!(
            "{:<34} {:>10} {:>10.1}ms {:>8.2} GB/s {:>9.2}x",
            "verify (all CRCs incl. pages)",
            label,
            t_verify.as_secs_f64() * 1e3,
            gbps(size, t_verify),
            t_copy.as_secs_f64() / t_verify.as_secs_f64()
        );
    }
    for (img, want) in [(&rss1, c1 * 256), (&rss4, c4 * 256)] {
        let size = std::fs::metadata(img).unwrap().len();
        let (spages, hwm_kib) = stream_rss(&exe, img);
        assert_eq!(spages, want, "stream reader saw every page");
        println!(
            "{:<34} {:>10} {:>12} {:>12} {:>10}",
            "stream reader peak RSS (pipe)",
            format!("{} MiB", size >> 20),
            format!("{:.1} MiB", hwm_kib as f64 / 1024.0),
            format!("{spages} pages"),
            "-"
        );
    }
    println!(
        "walk time ratio larger/smaller image (same records, 4x page data): {:.2} on a mapped image, {:.2} including open+mmap+faults",
        walks[1].1.as_secs_f64() / walks[0].1.as_secs_f64(),
        walks[1].0.as_secs_f64() / walks[0].0.as_secs_f64()
    );
}

#[allow(unsafe_code)]
fn unsafe_map(f: &File) -> memmap2::Mmap {
    // SAFETY: the benchmark's image files are written once before mapping and
    // never modified while mapped.
    unsafe { memmap2::Mmap::map(f).unwrap() }
}
