//! The files of one CRIU dump, from an image directory or a container checkpoint archive,
//! each memory-mapped or held in memory, and the pre-dump parent it refers to.

use crate::archive;
use crate::image::{CriuError, Result};
use crate::magic;
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a file's bytes are.
pub(crate) enum Backing {
    /// A mapped file of the directory.
    Map(memmap2::Mmap),
    /// Read into memory (archive members).
    Owned(Vec<u8>),
    /// A range of a shared mapping (an uncompressed archive, or spooled pages).
    Range(Arc<memmap2::Mmap>, usize, usize),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Map(m) => m,
            Backing::Owned(v) => v,
            Backing::Range(m, off, len) => &m[*off..*off + *len],
        }
    }
}

/// Container metadata written beside the images by Podman, CRI-O and the kubelet.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Container {
    /// `config.dump` as JSON (Podman/CRI-O container configuration), if present.
    pub config: Option<serde_json::Value>,
    /// `spec.dump` (the OCI runtime spec), if present.
    pub spec: Option<serde_json::Value>,
    /// Every member of the archive outside `checkpoint/`, with its size.
    pub members: Vec<(String, u64)>,
}

/// One CRIU dump: its files by name and its parent (pre-dump) dump, if any.
pub struct CriuImage {
    files: BTreeMap<String, Backing>,
    /// Path of the directory or archive.
    pub origin: PathBuf,
    /// The dump this one's `in_parent` pages come from (the `parent` symlink).
    pub parent: Option<Box<CriuImage>>,
    /// Container metadata, for archives.
    pub container: Option<Container>,
    /// Modification time of `inventory.img` (seconds since the epoch): the dump time.
    pub time: u64,
}

/// Most pre-dump parents followed.
pub const MAX_PARENTS: usize = 64;

impl std::fmt::Debug for CriuImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CriuImage")
            .field("origin", &self.origin)
            .field("files", &self.files.len())
            .field("parent", &self.parent.is_some())
            .finish()
    }
}

/// True when `path` looks like a CRIU dump: a directory with `inventory.img`, or an archive
/// (tar, gzip or zstd) — the decision for the latter is made by [`CriuImage::open`].
pub fn is_criu_dir(path: &Path) -> bool {
    path.is_dir() && path.join("inventory.img").is_file()
}

fn map(path: &Path) -> Result<Backing> {
    let f = fs::File::open(path).map_err(|e| CriuError::io(&path.display().to_string(), &e))?;
    let len = f
        .metadata()
        .map_err(|e| CriuError::io(&path.display().to_string(), &e))?
        .len();
    if len == 0 {
        return Ok(Backing::Owned(Vec::new()));
    }
    // SAFETY: a private read-only map of an image file; another process truncating the file
    // while we read it raises SIGBUS, the documented limit of reading images by mmap (the same
    // as ckpt-inspect's own images), and cannot corrupt memory.
    let m = unsafe { memmap2::Mmap::map(&f) }
        .map_err(|e| CriuError::io(&path.display().to_string(), &e))?;
    Ok(Backing::Map(m))
}

impl CriuImage {
    /// Open a CRIU image directory or a container checkpoint archive (tar, tar.gz, tar.zst).
    pub fn open(path: &Path) -> Result<CriuImage> {
        if path.is_dir() {
            Self::open_dir(path, 0)
        } else {
            archive::open(path)
        }
    }

    /// A dump from a "pack": the files of an image directory one after the other, each as
    /// `u16 LE name length, name, u32 LE data length, data` (the fuzz targets' input and the
    /// committed fixtures; [`pack_dir`] writes one).
    pub fn from_pack(b: &[u8]) -> Result<CriuImage> {
        let mut files = BTreeMap::new();
        let mut at = 0usize;
        let bad = |at: usize, what: &str| {
            CriuError::new("pack", at as u64, what, "a complete pack record")
        };
        while at < b.len() {
            let n = b
                .get(at..at + 2)
                .ok_or_else(|| bad(at, "a cut name length"))?;
            let n = u16::from_le_bytes([n[0], n[1]]) as usize;
            let name = b
                .get(at + 2..at + 2 + n)
                .ok_or_else(|| bad(at, "a cut name"))?;
            let name = String::from_utf8_lossy(name).into_owned();
            let l = b
                .get(at + 2 + n..at + 6 + n)
                .ok_or_else(|| bad(at, "a cut data length"))?;
            let l = u32::from_le_bytes([l[0], l[1], l[2], l[3]]) as usize;
            let start = at + 6 + n;
            let data = b
                .get(start..start.saturating_add(l))
                .ok_or_else(|| bad(at, "cut data"))?;
            files.insert(name, Backing::Owned(data.to_vec()));
            at = start + l;
        }
        CriuImage::from_files(files, PathBuf::from("pack"), None, 0)
    }

    /// Read a container checkpoint archive from a stream (stdin, a pipe); `origin` names it.
    pub fn open_reader(r: impl std::io::Read, origin: &Path) -> Result<CriuImage> {
        archive::open_reader(r, origin)
    }

    /// Build from files already read (archives, tests).
    pub(crate) fn from_files(
        files: BTreeMap<String, Backing>,
        origin: PathBuf,
        container: Option<Container>,
        time: u64,
    ) -> Result<CriuImage> {
        let img = CriuImage {
            files,
            origin,
            parent: None,
            container,
            time,
        };
        img.require_inventory()?;
        Ok(img)
    }

    fn require_inventory(&self) -> Result<()> {
        let inv = self.file("inventory.img").ok_or_else(|| {
            CriuError::new(
                &self.origin.display().to_string(),
                0,
                "no inventory.img",
                "a CRIU image directory (inventory.img, pstree.img, core-PID.img ...)",
            )
        })?;
        crate::image::ImageFile::expect("inventory.img", inv, magic::INVENTORY)?;
        Ok(())
    }

    fn open_dir(dir: &Path, depth: usize) -> Result<CriuImage> {
        let rd = fs::read_dir(dir).map_err(|e| CriuError::io(&dir.display().to_string(), &e))?;
        let mut files = BTreeMap::new();
        let mut parent_link = None;
        for ent in rd {
            let ent = ent.map_err(|e| CriuError::io(&dir.display().to_string(), &e))?;
            let name = ent.file_name().to_string_lossy().into_owned();
            let p = ent.path();
            if name == "parent" {
                parent_link = Some(p);
                continue;
            }
            let ft = ent
                .file_type()
                .map_err(|e| CriuError::io(&p.display().to_string(), &e))?;
            if ft.is_file() {
                files.insert(name, map(&p)?);
            }
        }
        let time = fs::metadata(dir.join("inventory.img"))
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let mut img = CriuImage {
            files,
            origin: dir.to_path_buf(),
            parent: None,
            container: None,
            time,
        };
        img.require_inventory()?;
        if let Some(p) = parent_link {
            if depth >= MAX_PARENTS {
                return Err(CriuError::new(
                    &p.display().to_string(),
                    0,
                    format!("more than {MAX_PARENTS} parent dumps"),
                    "a finite chain of pre-dumps",
                ));
            }
            if p.join("inventory.img").is_file() {
                img.parent = Some(Box::new(Self::open_dir(&p, depth + 1)?));
            }
        }
        Ok(img)
    }

    /// The bytes of file `name`, if the dump has it.
    pub fn file(&self, name: &str) -> Option<&[u8]> {
        self.files.get(name).map(|b| b.bytes())
    }

    /// Every file name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(|s| s.as_str())
    }

    /// The bytes of `name`, or an error naming the missing file.
    pub fn need(&self, name: &str) -> Result<&[u8]> {
        self.file(name).ok_or_else(|| {
            CriuError::new(
                &format!("{}/{name}", self.origin.display()),
                0,
                "no such file in the dump",
                "the file the dump's other images refer to",
            )
        })
    }
}

/// Write the regular files of image directory `dir` as a pack ([`CriuImage::from_pack`]).
pub fn pack_dir(dir: &Path) -> std::io::Result<Vec<u8>> {
    let mut names: Vec<_> = fs::read_dir(dir)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let mut out = Vec::new();
    for n in names {
        let data = fs::read(dir.join(&n))?;
        out.extend_from_slice(&(n.len() as u16).to_le_bytes());
        out.extend_from_slice(n.as_bytes());
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&data);
    }
    Ok(out)
}
