//! Container checkpoint archives as Podman (`podman container checkpoint --export`), CRI-O and
//! the kubelet write them: a tar (optionally gzip or zstd compressed) holding the CRIU image
//! directory under `checkpoint/` and the container's `config.dump`, `spec.dump`,
//! `rootfs-diff.tar`, `stats-dump` ... at the top.
//!
//! An uncompressed archive in a regular file is mapped and its members are used in place. A
//! compressed one is read once as a stream: the image files are kept in memory, except the page
//! files, which are spooled to one unlinked temporary file and mapped; nothing else is written.

use crate::image::{CriuError, Result};
use crate::set::{Backing, Container, CriuImage};
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;
use std::sync::Arc;

/// Largest JSON metadata file read (`config.dump`, `spec.dump`).
pub const MAX_JSON: u64 = 64 << 20;

/// Compression of an archive, from its first bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// A plain tar.
    None,
    /// gzip.
    Gzip,
    /// zstd.
    Zstd,
}

/// Recognise an archive by its first bytes (at least 262 for a plain tar).
pub fn sniff(b: &[u8]) -> Option<Compression> {
    if b.starts_with(&[0x1f, 0x8b]) {
        Some(Compression::Gzip)
    } else if b.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Some(Compression::Zstd)
    } else if b.get(257..262) == Some(b"ustar") {
        Some(Compression::None)
    } else {
        None
    }
}

fn member_name(path: &Path) -> String {
    let s = path.to_string_lossy();
    s.trim_start_matches("./").to_string()
}

/// The page files spooled so far: the file, (name, offset, length) of each, the total.
type Spool = (fs::File, Vec<(String, u64, u64)>, u64);

struct Collect {
    files: BTreeMap<String, Backing>,
    container: Container,
    time: u64,
    spool: Option<Spool>,
}

impl Collect {
    fn new() -> Self {
        Collect {
            files: BTreeMap::new(),
            container: Container::default(),
            time: 0,
            spool: None,
        }
    }

    /// Take one member read from a stream.
    fn member(&mut self, name: String, size: u64, mtime: u64, r: &mut dyn Read) -> Result<()> {
        let err = |e: io::Error| CriuError::io(&format!("archive member {name}"), &e);
        if let Some(img) = name.strip_prefix("checkpoint/") {
            if img.contains('/') || img.is_empty() {
                return Ok(());
            }
            if img == "inventory.img" {
                self.time = mtime;
            }
            if img.starts_with("pages-") {
                if self.spool.is_none() {
                    let f = tempfile::tempfile().map_err(|e| CriuError::io("spool file", &e))?;
                    self.spool = Some((f, Vec::new(), 0));
                }
                let (f, list, at) = self.spool.as_mut().expect("spool set above");
                let n = io::copy(r, f).map_err(err)?;
                list.push((img.to_string(), *at, n));
                *at += n;
                return Ok(());
            }
            let mut v = Vec::new();
            r.read_to_end(&mut v).map_err(err)?;
            self.files.insert(img.to_string(), Backing::Owned(v));
            return Ok(());
        }
        self.container.members.push((name.clone(), size));
        if name == "config.dump" || name == "spec.dump" {
            let mut v = Vec::new();
            r.take(MAX_JSON).read_to_end(&mut v).map_err(err)?;
            let j = serde_json::from_slice(&v).map_err(|e| {
                CriuError::new(
                    &name,
                    e.column() as u64,
                    format!("invalid JSON ({e})"),
                    "the runtime's JSON",
                )
            })?;
            if name == "config.dump" {
                self.container.config = Some(j);
            } else {
                self.container.spec = Some(j);
            }
        }
        Ok(())
    }

    fn finish(mut self, origin: &Path) -> Result<CriuImage> {
        if let Some((f, list, total)) = self.spool.take() {
            if total > 0 {
                // SAFETY: a private read-only map of our own unlinked spool file, which nothing
                // else can reach.
                let m = unsafe { memmap2::Mmap::map(&f) }
                    .map_err(|e| CriuError::io("spool file", &e))?;
                let m = Arc::new(m);
                for (name, off, len) in list {
                    self.files
                        .insert(name, Backing::Range(m.clone(), off as usize, len as usize));
                }
            } else {
                for (name, _, _) in list {
                    self.files.insert(name, Backing::Owned(Vec::new()));
                }
            }
        }
        CriuImage::from_files(
            self.files,
            origin.to_path_buf(),
            Some(self.container),
            self.time,
        )
    }
}

fn read_stream(r: impl Read, origin: &Path) -> Result<CriuImage> {
    let mut a = tar::Archive::new(r);
    let mut c = Collect::new();
    let what = origin.display().to_string();
    let entries = a.entries().map_err(|e| CriuError::io(&what, &e))?;
    for ent in entries {
        let mut ent = ent.map_err(|e| CriuError::io(&what, &e))?;
        if !ent.header().entry_type().is_file() {
            continue;
        }
        let name = member_name(&ent.path().map_err(|e| CriuError::io(&what, &e))?);
        let size = ent.size();
        let mtime = ent.header().mtime().unwrap_or(0);
        c.member(name, size, mtime, &mut ent)?;
    }
    c.finish(origin)
}

/// Open an archive file.
pub fn open(path: &Path) -> Result<CriuImage> {
    let what = path.display().to_string();
    let mut f = fs::File::open(path).map_err(|e| CriuError::io(&what, &e))?;
    let mut head = Vec::with_capacity(512);
    (&mut f)
        .take(512)
        .read_to_end(&mut head)
        .map_err(|e| CriuError::io(&what, &e))?;
    let comp = sniff(&head).ok_or_else(|| {
        CriuError::new(
            &what,
            0,
            "neither a directory nor a tar, tar.gz or tar.zst archive",
            "a CRIU image directory or a container checkpoint archive",
        )
    })?;
    let f = fs::File::open(path).map_err(|e| CriuError::io(&what, &e))?;
    match comp {
        Compression::None => open_mapped_tar(f, path),
        Compression::Gzip => read_stream(flate2::read::GzDecoder::new(io::BufReader::new(f)), path),
        Compression::Zstd => read_stream(
            zstd::stream::read::Decoder::new(f).map_err(|e| CriuError::io(&what, &e))?,
            path,
        ),
    }
}

/// Read an archive from a stream (stdin, a pipe).
pub fn open_reader(mut r: impl Read, origin: &Path) -> Result<CriuImage> {
    let what = origin.display().to_string();
    let mut head = Vec::with_capacity(512);
    (&mut r)
        .take(512)
        .read_to_end(&mut head)
        .map_err(|e| CriuError::io(&what, &e))?;
    let chained = io::Cursor::new(head.clone()).chain(r);
    match sniff(&head) {
        Some(Compression::None) => read_stream(chained, origin),
        Some(Compression::Gzip) => read_stream(flate2::read::GzDecoder::new(chained), origin),
        Some(Compression::Zstd) => read_stream(
            zstd::stream::read::Decoder::new(chained).map_err(|e| CriuError::io(&what, &e))?,
            origin,
        ),
        None => Err(CriuError::new(
            &what,
            0,
            "not a tar, tar.gz or tar.zst archive",
            "a container checkpoint archive",
        )),
    }
}

/// A plain tar in a regular file: map it and use the members in place.
fn open_mapped_tar(f: fs::File, path: &Path) -> Result<CriuImage> {
    let what = path.display().to_string();
    // SAFETY: a private read-only map of the archive (see set.rs about truncation).
    let m = Arc::new(unsafe { memmap2::Mmap::map(&f) }.map_err(|e| CriuError::io(&what, &e))?);
    let mut a = tar::Archive::new(io::Cursor::new(&m[..]));
    let mut c = Collect::new();
    let mut ranges = Vec::new();
    for ent in a.entries().map_err(|e| CriuError::io(&what, &e))? {
        let mut ent = ent.map_err(|e| CriuError::io(&what, &e))?;
        if !ent.header().entry_type().is_file() {
            continue;
        }
        let name = member_name(&ent.path().map_err(|e| CriuError::io(&what, &e))?);
        let (off, size) = (ent.raw_file_position(), ent.size());
        let end = off.checked_add(size).filter(|&e| e <= m.len() as u64);
        match (name.strip_prefix("checkpoint/"), end) {
            (Some(img), Some(_)) if !img.contains('/') && !img.is_empty() => {
                if img == "inventory.img" {
                    c.time = ent.header().mtime().unwrap_or(0);
                }
                ranges.push((img.to_string(), off as usize, size as usize));
            }
            (Some(_), None) => {
                return Err(CriuError::new(
                    &what,
                    off,
                    format!("member {name} of {size} bytes past the end"),
                    "members within the archive",
                ))
            }
            _ => {
                let mtime = ent.header().mtime().unwrap_or(0);
                c.member(name, size, mtime, &mut ent)?;
            }
        }
    }
    for (name, off, len) in ranges {
        c.files.insert(name, Backing::Range(m.clone(), off, len));
    }
    c.finish(path)
}

/// Write `dir` (a CRIU image directory) as a container checkpoint archive in the shape Podman
/// writes: `checkpoint/*` plus the given top-level members. Used by tests and the benchmark.
pub fn write_archive(
    dir: &Path,
    top: &[(&str, &[u8])],
    out: impl Write,
    comp: Compression,
) -> io::Result<()> {
    fn fill<W: Write>(
        b: &mut tar::Builder<W>,
        dir: &Path,
        top: &[(&str, &[u8])],
    ) -> io::Result<()> {
        for (name, data) in top {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o600);
            h.set_mtime(0);
            h.set_cksum();
            b.append_data(&mut h, name, *data)?;
        }
        b.follow_symlinks(false);
        b.append_dir_all("checkpoint", dir)?;
        Ok(())
    }
    match comp {
        Compression::None => {
            let mut b = tar::Builder::new(out);
            fill(&mut b, dir, top)?;
            b.into_inner()?.flush()
        }
        Compression::Gzip => {
            let mut b = tar::Builder::new(flate2::write::GzEncoder::new(
                out,
                flate2::Compression::fast(),
            ));
            fill(&mut b, dir, top)?;
            b.into_inner()?.finish()?.flush()
        }
        Compression::Zstd => {
            let mut b = tar::Builder::new(zstd::stream::write::Encoder::new(out, 1)?);
            fill(&mut b, dir, top)?;
            b.into_inner()?.finish()?.flush()
        }
    }
}
