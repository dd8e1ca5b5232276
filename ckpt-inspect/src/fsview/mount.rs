//! `mount IMAGE MOUNTPOINT [--daemon]`: the filesystem view, read-only, over FUSE.
//!
//! The image is mapped, the tree is built in one pass over its records (page
//! contents untouched), and reads of `mem` and other large files are served
//! straight from the mapping.

use super::tree::{Content, Kind, Tree};
use super::{Error, Result};
use fuser::{
    Config, Errno, FileAttr, FileHandle, FileType, Filesystem, Generation, INodeNo, LockOwner,
    MountOption, OpenFlags, ReplyAttr, ReplyData, ReplyDirectory, ReplyEntry, Request,
};
use memmap2::Mmap;
use std::ffi::OsStr;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Options of [`mount`].
#[derive(Debug, Clone, Copy, Default)]
pub struct MountOptions {
    /// Detach from the terminal once the tree is built, before mounting.
    pub daemon: bool,
}

/// The mapped image file.
pub struct MappedImage {
    map: Mmap,
}

impl MappedImage {
    /// Map `path` read-only.
    pub fn open(path: &Path) -> Result<MappedImage> {
        let f = std::fs::File::open(path).map_err(|e| Error(format!("{}: {e}", path.display())))?;
        // SAFETY: the mapping is read-only and private to this process. If
        // another process truncates the file while it is mounted, reads may
        // fault (SIGBUS); that is the documented limit of serving from a
        // mapping, the same as for every mmap-based reader.
        let map =
            unsafe { Mmap::map(&f) }.map_err(|e| Error(format!("{}: {e}", path.display())))?;
        // Building the tree touches only record headers, one per record: do
        // not read ahead around them (a cold 2 GiB image reads ~8 MiB instead
        // of most of the file). Advice is a hint; failure changes nothing.
        let _ = map.advise(memmap2::Advice::Random);
        Ok(MappedImage { map })
    }

    /// The image bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.map
    }

    /// Ask the kernel to start reading `len` bytes at `offset` into the page
    /// cache now (MADV_WILLNEED: asynchronous, a hint; errors are ignored).
    pub fn will_need(&self, offset: usize, len: usize) {
        let len = len.min(self.map.len().saturating_sub(offset));
        if len > 0 {
            let _ = self
                .map
                .advise_range(memmap2::Advice::WillNeed, offset, len);
        }
    }
}

/// The FUSE filesystem: the tree over the mapped image.
pub struct ViewFs {
    img: MappedImage,
    tree: Tree,
    time: SystemTime,
}

const TTL: Duration = Duration::from_secs(3600);

impl ViewFs {
    /// Build the view of a mapped image.
    pub fn new(img: MappedImage) -> Result<ViewFs> {
        let tree = Tree::build_with_hints(img.bytes(), &mut |o, n| img.will_need(o, n))?;
        let time = tree
            .child(0, "header")
            .and_then(|h| tree.child(h, "time"))
            .and_then(|t| match &tree.nodes[t].kind {
                Kind::File(Content::Bytes(b)) => std::str::from_utf8(b).ok()?.trim().parse().ok(),
                _ => None,
            })
            .map_or(UNIX_EPOCH, |s: u64| UNIX_EPOCH + Duration::from_secs(s));
        Ok(ViewFs { img, tree, time })
    }

    /// The tree served.
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    fn index(ino: INodeNo) -> usize {
        (ino.0 as usize).wrapping_sub(1)
    }

    fn attr(&self, i: usize) -> Option<FileAttr> {
        let n = self.tree.nodes.get(i)?;
        let (kind, perm, size, nlink) = match &n.kind {
            Kind::Dir(ch) => {
                let subdirs = ch
                    .values()
                    .filter(|&&c| matches!(self.tree.nodes[c].kind, Kind::Dir(_)))
                    .count();
                (FileType::Directory, 0o555, 0, 2 + subdirs as u32)
            }
            Kind::File(c) => (FileType::RegularFile, 0o444, self.tree.size(c), 1),
            Kind::Symlink(t) => (FileType::Symlink, 0o777, t.len() as u64, 1),
        };
        Some(FileAttr {
            ino: INodeNo(i as u64 + 1),
            size,
            blocks: size.div_ceil(512),
            atime: self.time,
            mtime: self.time,
            ctime: self.time,
            crtime: self.time,
            kind,
            perm,
            nlink,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
            flags: 0,
        })
    }

    fn kind_of(&self, i: usize) -> FileType {
        match self.tree.nodes[i].kind {
            Kind::Dir(_) => FileType::Directory,
            Kind::File(_) => FileType::RegularFile,
            Kind::Symlink(_) => FileType::Symlink,
        }
    }
}

impl Filesystem for ViewFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let p = Self::index(parent);
        match name
            .to_str()
            .and_then(|n| self.tree.child(p, n))
            .and_then(|c| self.attr(c))
        {
            Some(a) => reply.entry(&TTL, &a, Generation(0)),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.attr(Self::index(ino)) {
            Some(a) => reply.attr(&TTL, &a),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn readlink(&self, _req: &Request, ino: INodeNo, reply: ReplyData) {
        match self.tree.nodes.get(Self::index(ino)).map(|n| &n.kind) {
            Some(Kind::Symlink(t)) => reply.data(t.as_bytes()),
            _ => reply.error(Errno::EINVAL),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.tree.nodes.get(Self::index(ino)).map(|n| &n.kind) {
            Some(Kind::File(c)) => {
                reply.data(&self.tree.read(self.img.bytes(), c, offset, size as usize))
            }
            Some(Kind::Dir(_)) => reply.error(Errno::EISDIR),
            _ => reply.error(Errno::EINVAL),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let i = Self::index(ino);
        let Some(Kind::Dir(ch)) = self.tree.nodes.get(i).map(|n| &n.kind) else {
            reply.error(Errno::ENOTDIR);
            return;
        };
        let parent = self.tree.nodes[i].parent;
        let dots = [(".", i), ("..", parent)];
        let entries = dots
            .iter()
            .map(|(n, c)| (*n, *c))
            .chain(ch.iter().map(|(n, c)| (n.as_str(), *c)));
        for (k, (name, c)) in entries.enumerate().skip(offset as usize) {
            if reply.add(INodeNo(c as u64 + 1), k as u64 + 1, self.kind_of(c), name) {
                break;
            }
        }
        reply.ok();
    }
}

/// Build the view of the image at `image` and mount it at `mountpoint`;
/// returns when it is unmounted.
pub fn mount(image: &Path, mountpoint: &Path, opts: MountOptions) -> Result<()> {
    let fs = ViewFs::new(MappedImage::open(image)?)?;
    if opts.daemon {
        nix::unistd::daemon(true, false).map_err(|e| Error(format!("daemon: {e}")))?;
    }
    fuser::mount(fs, mountpoint, &config(image))
        .map_err(|e| Error(format!("{}: mount failed: {e}", mountpoint.display())))
}

/// Mount options used: read-only, named after the image.
pub fn config(image: &Path) -> Config {
    let mut c = Config::default();
    c.mount_options = vec![
        MountOption::RO,
        MountOption::FSName(format!("ckpt:{}", image.display())),
        MountOption::Subtype("ckpt".into()),
        MountOption::DefaultPermissions,
    ];
    c
}

/// Mount in a background thread (for tests and embedding); dropping or
/// `umount_and_join` on the session unmounts.
pub fn spawn(image: &Path, mountpoint: &Path) -> Result<fuser::BackgroundSession> {
    let fs = ViewFs::new(MappedImage::open(image)?)?;
    fuser::spawn_mount(fs, mountpoint, &config(image))
        .map_err(|e| Error(format!("{}: mount failed: {e}", mountpoint.display())))
}
