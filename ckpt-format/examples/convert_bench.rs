//! Conversion benchmark: a native-1 image of N GiB of page data is converted
//! to ckpt-v21 and back, file to file, through `convert::convert` (the stream
//! path: bounded memory; a legacy target spools the input to a temporary file
//! and reads it twice). Prints throughput (input bytes / wall time, median of
//! `CKPT_BENCH_RUNS` runs, default 3), the highest peak RSS (VmHWM) of those runs
//! and, as baselines in the same run, copies of the same file: through user
//! space with 1 MiB `read`/`write` (what a converter must at least do) and with
//! `copy_file_range` (in the kernel, no user-space pass over the bytes).
//!
//! `cargo run --release -p ckpt-format --example convert_bench -- [GiB...]` (fractions
//! allowed: `.ci/run` smoke-runs it with 0.01); exits 1 when the round trip differs.
//! (files go to `$TMPDIR`; a tmpfs there takes the disk out of the file-to-file rows)

use ckpt_format::convert::{convert, convert_seekable, ConvertOptions, TargetKernel};
use ckpt_format::*;
use std::borrow::Cow;
use std::io::{BufWriter, Write};
use std::time::Instant;

fn vm_hwm_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn reset_hwm() {
    // Writing 5 to clear_refs resets the peak RSS counter (Linux >= 4.0).
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn make_native(path: &std::path::Path, gib: f64) {
    let pages = (gib * (1u64 << 30) as f64 / 4096.0) as u64;
    let f = BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let mut enc = native::Encoder::new(f);
    let header = Header::new(
        Revision::Native1,
        Arch::X86_64,
        Kernel::from_uname(b"2.6.33", b"#1", b"x86_64"),
        0,
    );
    let start = 0x7f00_0000_0000u64;
    let evs = [
        Event::Header(header),
        Event::Task(Task {
            pid: 1,
            tgid: 1,
            comm: b"bench".to_vec(),
            ..Task::default()
        }),
        Event::Thread(Thread {
            tid: 1,
            // Three empty GDT TLS slots, as ckpt-capture records them (ckpt-v21 has no
            // form for "no TLS at all").
            tls: ckpt_format::layout::derive::empty_tls(),
            ..Thread::default()
        }),
        Event::Mm(Mm::default()),
        Event::Vma(Vma {
            start,
            end: start + pages * 4096,
            prot: 3,
            flags: 0x73,
            pgoff: 0,
            kind: VmaKind::Anon,
            file: None,
            records: Default::default(),
            extras: Extras::new(),
        }),
    ];
    for e in &evs {
        enc.event(e).unwrap();
    }
    let chunk = 256u64;
    let data: Vec<u8> = (0..chunk * 4096).map(|i| (i % 251) as u8 | 1).collect();
    let mut p = 0;
    while p < pages {
        let n = chunk.min(pages - p);
        let addrs: Vec<u64> = (0..n).map(|i| start + (p + i) * 4096).collect();
        enc.event(&Event::Pages(PageChunk {
            addrs: Addrs::from_u64s(&addrs),
            data: Cow::Borrowed(&data[..(n * 4096) as usize]),
        }))
        .unwrap();
        p += n;
    }
    enc.event(&Event::VmaEnd).unwrap();
    enc.event(&Event::Tail).unwrap();
    enc.finish().unwrap();
}

fn runs() -> usize {
    std::env::var("CKPT_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
        .max(1)
}

/// Runs `f` [`runs`] times; prints the median time as throughput over `size` bytes and the
/// highest peak RSS.
fn timed(label: &str, size: u64, out_bytes: impl Fn() -> Option<u64>, mut f: impl FnMut()) {
    let mut secs = Vec::new();
    let mut hwm = 0;
    for _ in 0..runs() {
        reset_hwm();
        let t = Instant::now();
        f();
        secs.push(t.elapsed().as_secs_f64());
        hwm = hwm.max(vm_hwm_kib());
    }
    secs.sort_by(f64::total_cmp);
    let med = secs[secs.len() / 2];
    let out = out_bytes().map_or(String::new(), |n| format!("  ({size} -> {n} bytes)"));
    println!(
        "{label:<30} {:>6.2} GB/s  {:>7.2} s  peak RSS {:>6.1} MiB{out}",
        size as f64 / med / 1e9,
        med,
        hwm as f64 / 1024.0,
    );
}

fn run(label: &str, from: &std::path::Path, to: &std::path::Path, rev: Revision, seek: bool) {
    let size = std::fs::metadata(from).unwrap().len();
    let sink = to.as_os_str() == "/dev/null";
    let out_bytes = || (!sink).then(|| std::fs::metadata(to).unwrap().len());
    timed(label, size, out_bytes, || {
        let input = std::fs::File::open(from).unwrap();
        let out: Box<dyn Write> = if sink {
            Box::new(std::io::sink())
        } else {
            let _ = std::fs::remove_file(to);
            Box::new(BufWriter::with_capacity(
                1 << 20,
                std::fs::File::create(to).unwrap(),
            ))
        };
        let opts = ConvertOptions {
            to: rev,
            lossy: false,
            target_kernel: TargetKernel::Keep,
        };
        if seek {
            convert_seekable(input, out, &opts).unwrap();
        } else {
            convert(input, out, &opts).unwrap();
        }
    });
}

/// A copy through user space: 1 MiB `read`, then `write`.
fn copy_user(from: &std::path::Path, to: &std::path::Path) {
    use std::io::Read;
    let _ = std::fs::remove_file(to);
    let (mut i, mut o) = (
        std::fs::File::open(from).unwrap(),
        std::fs::File::create(to).unwrap(),
    );
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = i.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        o.write_all(&buf[..n]).unwrap();
    }
}

fn same_file(a: &std::path::Path, b: &std::path::Path) -> bool {
    use std::io::Read;
    let (mut x, mut y) = (
        std::fs::File::open(a).unwrap(),
        std::fs::File::open(b).unwrap(),
    );
    let (mut bx, mut by) = (vec![0u8; 1 << 20], vec![0u8; 1 << 20]);
    loop {
        let n = x.read(&mut bx).unwrap();
        let mut m = 0;
        while m < n {
            let k = y.read(&mut by[m..n]).unwrap();
            if k == 0 {
                return false;
            }
            m += k;
        }
        if n == 0 {
            return y.read(&mut by[..1]).unwrap() == 0;
        }
        if bx[..n] != by[..n] {
            return false;
        }
    }
}

fn main() {
    let sizes: Vec<f64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let sizes = if sizes.is_empty() { vec![1.0] } else { sizes };
    let dir = std::env::temp_dir().join(format!("ckpt-convert-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for gib in sizes {
        let native = dir.join("in.native");
        let v21 = dir.join("out.v21");
        let back = dir.join("back.native");
        make_native(&native, gib);
        println!("== {gib} GiB of pages");
        let size = std::fs::metadata(&native).unwrap().len();
        let copy = dir.join("copy");
        timed(
            "baseline: copy, read/write",
            size,
            || None,
            || copy_user(&native, &copy),
        );
        timed(
            "baseline: copy_file_range",
            size,
            || None,
            || {
                let _ = std::fs::remove_file(&copy);
                std::io::copy(
                    &mut std::fs::File::open(&native).unwrap(),
                    &mut std::fs::File::create(&copy).unwrap(),
                )
                .unwrap();
            },
        );
        let _ = std::fs::remove_file(&copy);
        let null = std::path::Path::new("/dev/null");
        run(
            "native-1 -> ckpt-v21 (sink)",
            &native,
            null,
            Revision::CkptV21,
            true,
        );
        run(
            "native-1 -> ckpt-v21",
            &native,
            &v21,
            Revision::CkptV21,
            true,
        );
        run(
            "  same, as a pipe (spool)",
            &native,
            &v21,
            Revision::CkptV21,
            false,
        );
        run(
            "ckpt-v21 -> native-1 (sink)",
            &v21,
            null,
            Revision::Native1,
            true,
        );
        run(
            "ckpt-v21 -> ckpt-v21 (sink)",
            &v21,
            null,
            Revision::CkptV21,
            true,
        );
        run("ckpt-v21 -> native-1", &v21, &back, Revision::Native1, true);
        let same = same_file(&native, &back);
        println!("round trip byte-identical: {same}");
        if !same {
            eprintln!("native-1 -> ckpt-v21 -> native-1 did not give the input back");
            std::process::exit(1);
        }
        for f in ["in.native", "out.v21", "back.native", "copy"] {
            let _ = std::fs::remove_file(dir.join(f));
        }
    }
    let _ = std::fs::remove_dir(&dir);
    std::io::stdout().flush().unwrap();
}
