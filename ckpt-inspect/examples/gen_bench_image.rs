//! Writes a large native-1 image for `scripts/bench-inspect.sh`, streaming
//! events into the encoder (the image is never held in memory).
//!
//! ```text
//! cargo run --release -p ckpt-inspect --example gen_bench_image -- big OUT [GiB]
//! cargo run --release -p ckpt-inspect --example gen_bench_image -- chunks OUT [N]
//! ```
//! `big`: one task, one VMA, GiB of stored pages in 256-page chunks (default 2; fractions
//! allowed).
//! `chunks`: N PAGES records of one page each (default 131072), every other page.

use ckpt_format::build::ImageBuilder;
use ckpt_format::native::Encoder;
use ckpt_format::*;
use std::borrow::Cow;
use std::io::BufWriter;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 3 {
        eprintln!("usage: gen_bench_image big|chunks OUT [SIZE]");
        std::process::exit(2);
    }
    let shape = args[1].as_str();
    let n: f64 = args
        .get(3)
        .and_then(|s| s.parse().ok())
        .unwrap_or(match shape {
            "big" => 2.0,
            _ => 131_072.0,
        });
    let f = std::fs::File::create(&args[2]).map_err(|e| Error::io(0, &e))?;
    let mut enc = Encoder::new(BufWriter::with_capacity(1 << 20, f));
    // No writer identity: legacy headers have no place for it, and the native-1 ->
    // ckpt-v21 -> native-1 round trip of `scripts/bench-convert.sh` must be byte-identical.
    enc.event(&Event::Header(Header {
        tool: String::new(),
        tool_version: String::new(),
        ..ImageBuilder::x86_64_header()
    }))?;
    enc.event(&Event::Task(Task {
        pid: 4242,
        tgid: 4242,
        ppid: 1,
        pgid: 4242,
        sid: 4242,
        comm: b"bench".to_vec(),
        ..Task::default()
    }))?;
    enc.event(&Event::Thread(Thread {
        tid: 4242,
        regs: Regs {
            rip: 0x40_1000,
            rsp: 0x7ffc_0000_1000,
            ..Regs::default()
        },
        // Three empty GDT TLS slots, as ckpt-capture records them: the image then converts
        // to ckpt-v21 without loss (`scripts/bench-convert.sh`).
        tls: ckpt_format::layout::derive::empty_tls(),
        ..Thread::default()
    }))?;
    enc.event(&Event::Mm(Mm::default()))?;
    let ps = 4096u64;
    let base = 0x7f00_0000_0000u64;
    let (chunk, chunks, stride) = match shape {
        "big" => (256u64, (n * (1u64 << 30) as f64) as u64 / ps / 256, 1u64),
        "chunks" => (1, n as u64, 2),
        _ => {
            eprintln!("unknown shape {shape}");
            std::process::exit(2);
        }
    };
    let pages = chunks * chunk * stride;
    enc.event(&Event::Vma(Vma {
        start: base,
        end: base + pages * ps,
        prot: PROT_READ | PROT_WRITE,
        flags: 0x73,
        pgoff: 0,
        kind: VmaKind::Anon,
        file: None,
        records: Default::default(),
        extras: Extras::new(),
    }))?;
    let mut data = vec![0x5au8; (chunk * ps) as usize];
    for c in 0..chunks {
        let first = base + c * chunk * stride * ps;
        let addrs: Vec<u64> = (0..chunk).map(|k| first + k * stride * ps).collect();
        for (k, p) in data.chunks_mut(ps as usize).enumerate() {
            p[..8].copy_from_slice(&(c * chunk + k as u64).to_le_bytes());
        }
        enc.event(&Event::Pages(PageChunk {
            addrs: Addrs::from_u64s(&addrs),
            data: Cow::Borrowed(&data),
        }))?;
    }
    enc.event(&Event::VmaEnd)?;
    enc.event(&Event::Tail)?;
    enc.finish()?;
    eprintln!("{}: {} pages in {} chunks", args[2], chunks * chunk, chunks);
    Ok(())
}
