//! Inodes whose contents are in the image (a deleted file, a memfd, a deleted
//! executable: `file_contents` + `file_data` records) re-created once each before any
//! process is created, and the file locks taken again.
//!
//! * a memfd: `memfd_create` with its name (from `/memfd:NAME (deleted)`) and
//!   `MFD_ALLOW_SEALING`, contents written, mode set, then its seals added (a memfd made
//!   without `MFD_ALLOW_SEALING` has `F_SEAL_SEAL`, which gives it back);
//! * a deleted file: created under its old name in its old directory (or, when that
//!   name is taken now, under a hidden name beside it; when the directory is gone, as
//!   an `O_TMPFILE` in `/tmp`), contents written, mode set, unlinked again: `/proc`
//!   then names it as it named the original (`/dir/name (deleted)`).
//!
//! Every user (an fd of its own flags, a mapping, the executable) opens the inode again
//! through `/proc/self/fd/N` of an `O_PATH` handle kept in the staging area: each open
//! file description is a new one of the same inode, as it was.
//!
//! Locks: flock and OFD locks belong to an open file description and are taken here,
//! on the staged descriptor the restored fds share ([`take_file_locks`]); POSIX locks
//! belong to the process and are taken by it, by an injected `fcntl(F_SETLK)` once its
//! fd table is final (`creds.rs`); [`check_posix_locks`] first checks that nobody holds
//! them now, so that a refusal comes before any process exists.

use super::files::show;
use super::*;
use ckpt_format::{File, CONTENTS_MEMFD, LOCK_FLOCK, LOCK_OFD};
use ckpt_sys::inode;
use std::os::unix::fs::{FileExt, PermissionsExt};

/// The id of the file object whose inode `f` is (itself, when it carries the contents).
pub(super) fn source_of(f: &File) -> Option<u32> {
    f.records
        .inode_of
        .map(|i| i.file)
        .or(f.records.contents.map(|_| f.id))
}

/// Re-create the inode of `f` (which carries `file_contents`); returns an `O_PATH`
/// handle to it.
pub(super) fn create(root: RawFd, f: &File) -> Result<OwnedFd, Error> {
    let Some(c) = f.records.contents else {
        return Err(Error::Image(format!("file {} has no contents", f.id)));
    };
    let what = || format!("re-creating {} (file {})", show(&f.path), f.id);
    let w = if c.kind == CONTENTS_MEMFD {
        let name = f.path.strip_prefix(b"/memfd:").unwrap_or(&f.path);
        let name = name.strip_suffix(b" (deleted)").unwrap_or(name);
        inode::memfd_create(name, libc::MFD_ALLOW_SEALING).map_err(|e| sys_err(what(), e))?
    } else {
        deleted_file(root, &f.path).map_err(|e| Error::Files(format!("{}: {e}", what())))?
    };
    let w = std::fs::File::from(w);
    let io = |e: std::io::Error| sys_err(what(), e);
    w.set_len(c.size).map_err(io)?;
    for d in &f.records.data {
        w.write_all_at(&d.data, d.offset).map_err(io)?;
    }
    w.set_permissions(std::fs::Permissions::from_mode(f.mode & 0o7777))
        .map_err(io)?;
    if c.kind == CONTENTS_MEMFD && c.seals != 0 {
        inode::add_seals(w.as_raw_fd(), c.seals).map_err(|e| sys_err(what(), e))?;
    }
    // No descriptor open for writing stays (an executable must have none).
    inode::reopen(w.as_raw_fd(), libc::O_PATH).map_err(|e| sys_err(what(), e))
}

/// A new file, unlinked, where the deleted file `path` (`/dir/name (deleted)`) was.
fn deleted_file(root: RawFd, path: &[u8]) -> Result<OwnedFd, String> {
    let orig = path.strip_suffix(b" (deleted)").unwrap_or(path);
    let cut = orig.iter().rposition(|&b| b == b'/');
    let (dir, name) = match cut {
        Some(0) => (&b"/"[..], &orig[1..]),
        Some(i) => (&orig[..i], &orig[i + 1..]),
        None => (&b"/tmp"[..], orig),
    };
    let flags = libc::O_RDWR | libc::O_CREAT | libc::O_EXCL;
    if let Ok(d) = sys::open_in_root(root, dir, libc::O_PATH | libc::O_DIRECTORY, 0) {
        let hidden = [
            b".".as_slice(),
            name,
            format!(".ckpt-{}", std::process::id()).as_bytes(),
        ]
        .concat();
        for n in [name.to_vec(), hidden] {
            if n.is_empty() {
                continue;
            }
            if let Ok(fd) = sys::open_in_root(d.as_raw_fd(), &n, flags, 0o600) {
                inode::unlink_at(d.as_raw_fd(), &n).map_err(|e| e.to_string())?;
                return Ok(fd);
            }
        }
    }
    eprintln!(
        "ckpt-restore: the directory of {} cannot take it again: re-created as an unnamed file in /tmp",
        show(path)
    );
    sys::open_in_root(root, b"/tmp", libc::O_TMPFILE | libc::O_RDWR, 0o600)
        .map_err(|e| format!("O_TMPFILE in /tmp: {e}"))
}

/// Open the inode of file object `id` again (a new open file description) with `flags`.
pub(super) fn reopen(inodes: &BTreeMap<u32, RawFd>, id: u32, flags: i32) -> Result<OwnedFd, Error> {
    let h = inodes.get(&id).ok_or_else(|| {
        Error::Image(format!(
            "file object {id} carries no contents (referred to as the contents of a deleted file or memfd)"
        ))
    })?;
    inode::reopen(*h, flags).map_err(|e| sys_err(format!("opening file {id} again"), e))
}

/// Take the flock and OFD locks of file object `f` on its staged descriptor `fd`.
pub(super) fn take_file_locks(f: &File, fd: RawFd) -> Result<(), Error> {
    let Some(ls) = &f.records.locks else {
        return Ok(());
    };
    for l in &ls.locks {
        let r = match l.kind {
            LOCK_FLOCK => inode::flock(fd, l.write),
            LOCK_OFD => inode::ofd_setlk(fd, l.write, l.start, l.len),
            k => return Err(Error::Image(format!("file {}: lock kind {k}", f.id))),
        };
        r.map_err(|e| {
            Error::Files(format!(
                "the {} {} lock{} of {} cannot be taken again: {e} (another process holds a conflicting lock now)",
                if l.kind == LOCK_FLOCK { "flock" } else { "OFD" },
                if l.write { "write" } else { "read" },
                range(l.kind == LOCK_OFD, l.start, l.len),
                show(&f.path)
            ))
        })?;
    }
    Ok(())
}

fn range(some: bool, start: u64, len: u64) -> String {
    match (some, len) {
        (false, _) => String::new(),
        (true, 0) => format!(" on bytes {start}-EOF"),
        (true, l) => format!(" on bytes {start}-{}", start + l - 1),
    }
}

/// Every POSIX lock of every task can be taken now (nobody else holds a conflicting
/// one): checked with `F_GETLK` on the staged descriptors, before any process exists.
pub(super) fn check_posix_locks(plan: &Plan, st: &Staged) -> Result<(), Error> {
    for t in &plan.tasks {
        let Some(pl) = &t.task.records.posix_locks else {
            continue;
        };
        for l in &pl.locks {
            let Some(fd) = t.fds.iter().find(|f| f.fd == l.fd) else {
                return Err(Error::Image(format!(
                    "pid {}: a POSIX lock through fd {}, which is not in its fd table",
                    t.task.pid, l.fd
                )));
            };
            let n = st.files[&fd.file];
            let holder = inode::posix_conflict(n, l.write, l.start, l.len)
                .map_err(|e| sys_err(format!("F_GETLK on fd {}", l.fd), e))?;
            if let Some(h) = holder {
                let who = if h > 0 {
                    format!("pid {h}")
                } else {
                    "an open file description lock".into()
                };
                return Err(Error::Files(format!(
                    "pid {}: its POSIX {} lock{} of fd {} ({}) cannot be taken again: {who} holds a conflicting lock now",
                    t.task.pid,
                    if l.write { "write" } else { "read" },
                    range(true, l.start, l.len),
                    l.fd,
                    show(&plan.files[&fd.file].path)
                )));
            }
        }
    }
    Ok(())
}

/// Take the POSIX locks of `t` in the process itself (its fd table final, nothing
/// closed afterwards: a close of any fd of the file would drop them).
pub(super) fn take_posix_locks(
    r: &mut Remote,
    t: &TaskPlan,
    pid: i32,
    at: u64,
) -> Result<(), Error> {
    let Some(pl) = &t.task.records.posix_locks else {
        return Ok(());
    };
    for l in &pl.locks {
        let b = inode::flock_bytes(l.write, l.start, l.len);
        sys::write_pairs(pid, &[(at, &b)]).map_err(|e| sys_err("writing a struct flock", e))?;
        let rc = r.raw(libc::SYS_fcntl, &[l.fd as u64, libc::F_SETLK as u64, at])?;
        if rc < 0 {
            return Err(Error::Files(format!(
                "pid {pid}: its POSIX {} lock{} of fd {} cannot be taken again: {} (another process holds a conflicting lock now)",
                if l.write { "write" } else { "read" },
                range(true, l.start, l.len),
                l.fd,
                std::io::Error::from_raw_os_error(-rc as i32)
            )));
        }
    }
    Ok(())
}
