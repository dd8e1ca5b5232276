//! `decode FILE...`: every entry of CRIU image files as JSON on stdout, the way
//! `crit decode -i FILE` prints them (the benchmark's counterpart of crit: scripts/bench-criu.sh).
//! Pagemap, pstree, core, mm and files images are decoded into their messages; other kinds
//! are listed by offset and length.
use ckpt_criu::{magic, pb, ImageFile};
use std::io::Write;

fn main() {
    let out = std::io::stdout();
    let mut w = std::io::BufWriter::with_capacity(1 << 16, out.lock());
    for path in std::env::args().skip(1) {
        let bytes = std::fs::read(&path).unwrap_or_else(|e| {
            eprintln!("decode: {path}: {e}");
            std::process::exit(3)
        });
        if let Err(e) = decode(&path, &bytes, &mut w) {
            eprintln!("decode: {e}");
            std::process::exit(1)
        }
    }
    w.flush().unwrap();
}

fn decode(path: &str, b: &[u8], w: &mut impl Write) -> Result<(), ckpt_criu::CriuError> {
    let mut f = ImageFile::new(path, b)?;
    let name = f.kind().map_or("unknown", |k| k.name);
    let io = |e: std::io::Error| ckpt_criu::CriuError::io(path, &e);
    write!(w, "{{\"magic\": \"{name}\", \"entries\": [").map_err(io)?;
    let mut first = true;
    let mut sep = |w: &mut dyn Write| -> std::io::Result<()> {
        if !first {
            w.write_all(b", ")?;
        }
        first = false;
        Ok(())
    };
    if f.magic == magic::PAGEMAP {
        if let Some((_, h)) = f.next_msg::<pb::PagemapHead>()? {
            sep(w).map_err(io)?;
            write!(w, "{{\"pages_id\": {}}}", h.pages_id).map_err(io)?;
        }
        while let Some((_, e)) = f.next_msg::<pb::PagemapEntry>()? {
            sep(w).map_err(io)?;
            write!(w, "{{\"vaddr\": {}, \"nr_pages\": {}", e.vaddr, e.nr_pages).map_err(io)?;
            if let Some(fl) = e.flags {
                write!(w, ", \"flags\": {fl}").map_err(io)?;
            }
            w.write_all(b"}").map_err(io)?;
        }
    } else {
        while let Some(e) = f.next_entry()? {
            sep(w).map_err(io)?;
            let text = match f.magic {
                magic::PSTREE => debug::<pb::PstreeEntry>(e.payload),
                magic::CORE => debug::<pb::CoreEntry>(e.payload),
                magic::MM => debug::<pb::MmEntry>(e.payload),
                magic::FILES => debug::<pb::FileEntry>(e.payload),
                _ => format!("{{\"offset\": {}, \"len\": {}}}", e.offset, e.payload.len()),
            };
            serde_json::to_writer(&mut *w, &text).map_err(|e| io(e.into()))?;
        }
    }
    w.write_all(b"]}\n").map_err(io)?;
    Ok(())
}

fn debug<M: prost::Message + Default + std::fmt::Debug>(b: &[u8]) -> String {
    match M::decode(b) {
        Ok(m) => format!("{m:?}"),
        Err(e) => format!("undecodable: {e}"),
    }
}
