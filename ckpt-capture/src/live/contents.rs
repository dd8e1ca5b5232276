//! Inodes whose contents exist only while they are open or mapped (a deleted file, a
//! memfd, a deleted executable): each one becomes a file object of its own carrying
//! [`FileContents`] and its [`FileData`] runs (holes and all-zero pages left out), and
//! every fd, VMA and executable of it refers to that object ([`InodeOf`],
//! [`MapContents`], [`ExeContents`]). And the locks of `/proc/PID/fdinfo/N`.

use super::*;
use ckpt_format::{
    FileContents, FileData, FileLock, FileLocks, PosixLock, CONTENTS_DELETED, CONTENTS_MEMFD,
    LOCK_FLOCK, LOCK_OFD, MAX_FILE_CHUNK,
};
use ckpt_sys::inode;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;

/// Most bytes of one inode a capture stores (holes and all-zero pages not counted):
/// contents are held in memory by a restore, like pipe buffers.
pub(crate) const MAX_CONTENTS: u64 = 256 << 20;

/// True for the `/proc` name of an inode that exists only while open: a deleted file
/// or a memfd (`/memfd:NAME (deleted)`).
pub(crate) fn is_gone(link: &[u8]) -> bool {
    link.ends_with(b" (deleted)")
}

/// An inode to carry, waiting to be emitted.
pub(super) struct Inode {
    id: u32,
    /// Where we open it: `/proc/PID/fd/N`, `/proc/PID/map_files/A-B`, `/proc/PID/exe`.
    src: String,
    /// Its `/proc` name.
    link: Vec<u8>,
    dev: u64,
    ino: u64,
}

/// The id of the file object carrying inode `(dev, ino)`; new ones are emitted by
/// [`emit_inodes`].
pub(super) fn inode_id(shared: &mut Shared, dev: u64, ino: u64, src: String, link: &[u8]) -> u32 {
    if let Some(&id) = shared.inodes.get(&(dev, ino)) {
        return id;
    }
    let id = shared.id();
    shared.inodes.insert((dev, ino), id);
    shared.pending_inodes.push(Inode {
        id,
        src,
        link: link.to_vec(),
        dev,
        ino,
    });
    id
}

/// Emit the file objects of the inodes found so far (each once in the image).
pub(super) fn emit_inodes(
    shared: &mut Shared,
    sink: &mut dyn EventSink,
) -> Result<(), CaptureError> {
    for i in std::mem::take(&mut shared.pending_inodes) {
        let ctx = format!("{} ({})", i.src, String::from_utf8_lossy(&i.link));
        let f = std::fs::File::open(&i.src)
            .map_err(|e| CaptureError::new(ErrorKind::Io, format!("opening {ctx}: {e}")))?;
        let st = files::fstat(f.as_raw_fd()).map_err(sys(&ctx))?;
        let me = std::process::id() as i32;
        let mnt_id = procfs::fdinfo(me, f.as_raw_fd()).map_or(0, |fi| fi.mnt_id);
        let (contents, data) = read_inode(&f, &i.link, &ctx)?;
        shared.contents_bytes += data.iter().map(|d| d.data.len() as u64).sum::<u64>();
        sink.event(&Event::File(File {
            id: i.id,
            kind: FileKind::Regular,
            path: i.link,
            flags: 0o2,
            mode: st.st_mode,
            pos: 0,
            pipe: None,
            records: FileRecords {
                identity: Some(FileIdentity {
                    dev: i.dev,
                    ino: i.ino,
                    mnt_id,
                }),
                contents: Some(contents),
                data,
                ..FileRecords::default()
            },
            extras: Extras::new(),
        }))
        .map_err(fmt_err)?;
    }
    Ok(())
}

/// Size, kind, seals and the non-zero data of an open inode.
fn read_inode(
    f: &std::fs::File,
    link: &[u8],
    ctx: &str,
) -> Result<(FileContents, Vec<FileData>), CaptureError> {
    let fd = f.as_raw_fd();
    if inode::is_hugetlb(fd).map_err(sys(ctx))? {
        return Err(CaptureError::new(
            ErrorKind::Unsupported,
            format!("{ctx} is on hugetlbfs: its contents are not carried"),
        ));
    }
    let size = files::fstat(fd).map_err(sys(ctx))?.st_size as u64;
    let seals = inode::seals(fd).map_err(sys(ctx))?;
    let memfd = link.starts_with(b"/memfd:") && seals.is_some();
    let contents = FileContents {
        size,
        kind: if memfd {
            CONTENTS_MEMFD
        } else {
            CONTENTS_DELETED
        },
        seals: if memfd { seals.unwrap_or(0) } else { 0 },
    };
    let mut data: Vec<FileData> = Vec::new();
    let mut stored = 0u64;
    let mut buf = vec![0u8; MAX_FILE_CHUNK];
    for (s, e) in inode::data_runs(fd, size).map_err(sys(ctx))? {
        let mut at = s;
        while at < e {
            let n = ((e - at) as usize).min(MAX_FILE_CHUNK);
            f.read_exact_at(&mut buf[..n], at).map_err(|er| {
                CaptureError::new(ErrorKind::Io, format!("reading {ctx} at {at}: {er}"))
            })?;
            // Page by page: all-zero pages are left out (they read back as zeros).
            for (k, page) in buf[..n].chunks(PAGE_SIZE).enumerate() {
                if page.iter().all(|&b| b == 0) {
                    continue;
                }
                let off = at + (k * PAGE_SIZE) as u64;
                stored += page.len() as u64;
                if stored > MAX_CONTENTS {
                    return Err(CaptureError::new(
                        ErrorKind::Unsupported,
                        format!(
                            "{ctx}: more than {} MiB of contents to store (the most one file may carry)",
                            MAX_CONTENTS >> 20
                        ),
                    ));
                }
                match data.last_mut() {
                    Some(d)
                        if d.offset + d.data.len() as u64 == off
                            && d.data.len() + page.len() <= MAX_FILE_CHUNK =>
                    {
                        d.data.extend_from_slice(page)
                    }
                    _ => data.push(FileData {
                        offset: off,
                        data: page.to_vec(),
                    }),
                }
            }
            at += n as u64;
        }
    }
    Ok((contents, data))
}

/// The executable of `pid`, when it must be carried: the id of its inode's object.
pub(super) fn exe_contents(pid: i32, shared: &mut Shared) -> Result<Option<u32>, CaptureError> {
    let src = format!("/proc/{pid}/exe");
    let Ok(link) = procfs::readlink(&src) else {
        return Ok(None); // a kernel thread or a zombie: none
    };
    if !is_gone(&link) {
        return Ok(None);
    }
    let st = files::stat_path(&src).map_err(sys(format!("pid {pid} exe")))?;
    Ok(Some(inode_id(shared, st.st_dev, st.st_ino, src, &link)))
}

/// The id of the inode object a file VMA maps, when the file is gone.
pub(super) fn map_contents(pid: i32, m: &MapEntry, shared: &mut Shared) -> Option<u32> {
    let path = m.path.as_deref()?;
    if !is_gone(path) || path.starts_with(b"/SYSV") || m.inode == 0 {
        return None;
    }
    let dev = libc::makedev(m.major, m.minor);
    let src = format!("/proc/{pid}/map_files/{:x}-{:x}", m.start, m.end);
    Some(inode_id(shared, dev, m.inode, src, path))
}

/// The flock and OFD locks of an open file (`lock:` lines of its fdinfo).
pub(super) fn file_locks(fi: &procfs::FdInfo) -> Option<FileLocks> {
    let locks: Vec<FileLock> = fi
        .locks
        .iter()
        .filter(|l| l.mode == "ADVISORY")
        .filter_map(|l| {
            let kind = match l.class.as_str() {
                "FLOCK" => LOCK_FLOCK,
                "OFDLCK" => LOCK_OFD,
                _ => return None,
            };
            Some(FileLock {
                kind,
                write: l.access == "WRITE",
                start: if kind == LOCK_FLOCK { 0 } else { l.start },
                len: if kind == LOCK_FLOCK { 0 } else { l.len() },
            })
        })
        .collect();
    (!locks.is_empty()).then_some(FileLocks { locks })
}

/// The POSIX locks `pid` holds, with the fd each was taken through.
pub(super) fn posix_locks(pid: i32) -> Result<Vec<PosixLock>, CaptureError> {
    let mut out = Vec::new();
    for fd in procfs::list_fds(pid).map_err(sys(format!("pid {pid} fds")))? {
        let Ok(fi) = procfs::fdinfo(pid, fd) else {
            continue;
        };
        for l in &fi.locks {
            if l.class == "POSIX" && l.mode == "ADVISORY" {
                out.push(PosixLock {
                    fd,
                    write: l.access == "WRITE",
                    start: l.start,
                    len: l.len(),
                });
            }
        }
    }
    Ok(out)
}
