//! `explode IMAGE DIR`: write the filesystem view of an image to a directory.

use super::tree::{Content, Kind, MemFile, Tree};
use super::{Error, Result};
use std::fs;
use std::os::unix::fs::{symlink, FileExt};
use std::path::Path;

/// What [`explode`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExplodeReport {
    /// Entries written (directories, files, links).
    pub entries: u64,
    /// Captured page bytes written into memory files.
    pub mem_bytes: u64,
    /// Tasks whose `mem` did not fit the target filesystem (offsets beyond
    /// its largest file size): their pages went to per-VMA `mem` files.
    pub per_vma_mem: Vec<String>,
}

fn io_err(p: &Path, e: std::io::Error) -> Error {
    Error(format!("{}: {e}", p.display()))
}

/// Write the view of the image `img` into `dir`, which must not exist or be empty.
pub fn explode(img: &[u8], dir: &Path) -> Result<ExplodeReport> {
    let tree = Tree::build(img)?;
    if dir.exists() {
        let mut it = fs::read_dir(dir).map_err(|e| io_err(dir, e))?;
        if it.next().is_some() {
            return Err(Error(format!("{}: exists and is not empty", dir.display())));
        }
    } else {
        fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    }
    let mut rep = ExplodeReport::default();
    write_node(&tree, img, 0, dir, &mut rep)?;
    Ok(rep)
}

fn write_node(t: &Tree, img: &[u8], i: usize, p: &Path, rep: &mut ExplodeReport) -> Result<()> {
    match &t.nodes[i].kind {
        Kind::Dir(ch) => {
            if i != 0 {
                fs::create_dir(p).map_err(|e| io_err(p, e))?;
            }
            // Memory files last, so a per-VMA fallback finds the VMA directories.
            let (mems, rest): (Vec<_>, Vec<_>) = ch
                .iter()
                .partition(|(_, &c)| matches!(&t.nodes[c].kind, Kind::File(Content::Mem(_))));
            for (name, &c) in rest.into_iter().chain(mems) {
                write_node(t, img, c, &p.join(name), rep)?;
            }
        }
        Kind::Symlink(target) => symlink(target, p).map_err(|e| io_err(p, e))?,
        Kind::File(Content::Mem(m)) => {
            let mf = &t.mems[*m];
            match write_mem(t, img, mf, p, 0, u64::MAX) {
                Ok(n) => rep.mem_bytes += n,
                Err(e) if e.raw_os_error() == Some(27) || e.raw_os_error() == Some(22) => {
                    // EFBIG/EINVAL: the filesystem cannot hold offsets this large.
                    let _ = fs::remove_file(p);
                    rep.mem_bytes += per_vma(t, img, mf, p)?;
                    rep.per_vma_mem.push(t.path(t.nodes[i].parent));
                }
                Err(e) => return Err(io_err(p, e)),
            }
        }
        Kind::File(c) => {
            let bytes = t.read(img, c, 0, t.size(c) as usize);
            fs::write(p, bytes).map_err(|e| io_err(p, e))?;
        }
    }
    rep.entries += 1;
    Ok(())
}

/// Write the extents of `mf` in `[lo, hi)` to a new sparse file at `p`, at
/// file offset `at - lo`. Returns the bytes written.
fn write_mem(
    t: &Tree,
    img: &[u8],
    mf: &MemFile,
    p: &Path,
    lo: u64,
    hi: u64,
) -> std::io::Result<u64> {
    let f = fs::File::create(p)?;
    let size = if hi == u64::MAX { mf.size } else { hi - lo };
    f.set_len(size)?;
    let mut n = 0;
    for e in &mf.extents {
        if e.at < lo || e.at >= hi {
            continue;
        }
        let b = t.bytes(img, e.src, e.len as usize);
        f.write_all_at(b, e.at - lo)?;
        n += b.len() as u64;
    }
    Ok(n)
}

/// Fallback: one `mem` file per VMA directory, offset 0 = the VMA's start.
fn per_vma(t: &Tree, img: &[u8], mf: &MemFile, task_mem: &Path) -> Result<u64> {
    let vmas = task_mem.with_file_name("mm").join("vmas");
    let mut n = 0;
    let Ok(rd) = fs::read_dir(&vmas) else {
        return Ok(0);
    };
    for ent in rd {
        let ent = ent.map_err(|e| io_err(&vmas, e))?;
        let name = ent.file_name().to_string_lossy().into_owned();
        let Some((s, e)) = name.split_once('-') else {
            continue;
        };
        let (Ok(s), Ok(e)) = (u64::from_str_radix(s, 16), u64::from_str_radix(e, 16)) else {
            continue;
        };
        let p = ent.path().join("mem");
        if p.exists() {
            continue; // a VMA above the file-offset limit already has its own
        }
        n += write_mem(t, img, mf, &p, s, e).map_err(|er| io_err(&p, er))?;
    }
    Ok(n)
}
