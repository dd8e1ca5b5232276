//! Files that exist only while open (a deleted file, a memfd) and file locks, through
//! descriptors of our own:
//!
//! * reading: [`data_runs`] (`SEEK_DATA`/`SEEK_HOLE`), [`seals`] (`F_GET_SEALS`),
//!   [`is_hugetlb`] (`fstatfs`);
//! * re-creating: [`memfd_create`], [`add_seals`], [`reopen`] (`/proc/self/fd/N` opened
//!   again with other flags: a new open file description of the same inode);
//! * locks: [`flock`], [`ofd_setlk`], [`posix_conflict`] (`F_GETLK`).

use crate::{last_errno, Result, SysError};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const HUGETLBFS_MAGIC: i64 = 0x9584_58f6;

/// The byte ranges `[start, end)` of `fd` that hold data (holes left out), up to `size`.
pub fn data_runs(fd: RawFd, size: u64) -> Result<Vec<(u64, u64)>> {
    let mut runs = Vec::new();
    let mut at = 0u64;
    while at < size {
        // SAFETY: lseek on a descriptor the caller owns; integer arguments only.
        let d = unsafe { libc::lseek(fd, at as i64, libc::SEEK_DATA) };
        if d < 0 {
            let e = last_errno();
            if e == libc::ENXIO {
                break; // no data after `at`
            }
            if e == libc::EINVAL && at == 0 {
                return Ok(vec![(0, size)]); // no SEEK_DATA here: all of it
            }
            return Err(SysError::errno(format!("lseek SEEK_DATA {at}"), e));
        }
        // SAFETY: as above.
        let h = unsafe { libc::lseek(fd, d, libc::SEEK_HOLE) };
        if h < 0 {
            return Err(SysError::last(format!("lseek SEEK_HOLE {d}")));
        }
        let (s, e) = (d as u64, (h as u64).min(size));
        if e > s {
            runs.push((s, e));
        }
        if h as u64 <= at {
            break;
        }
        at = h as u64;
    }
    Ok(runs)
}

/// A memfd's seals (`F_GET_SEALS`); `None` for a file that takes none (not shmem).
pub fn seals(fd: RawFd) -> Result<Option<u32>> {
    // SAFETY: fcntl with an integer command on a descriptor the caller owns.
    let r = unsafe { libc::fcntl(fd, libc::F_GET_SEALS) };
    if r < 0 {
        let e = last_errno();
        if e == libc::EINVAL {
            return Ok(None);
        }
        return Err(SysError::errno("F_GET_SEALS", e));
    }
    Ok(Some(r as u32))
}

/// Whether `fd` is on hugetlbfs (its contents cannot be written with `write(2)`).
pub fn is_hugetlb(fd: RawFd) -> Result<bool> {
    // SAFETY: an all-zero statfs is valid; `s` is a valid out pointer.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: see above.
    if unsafe { libc::fstatfs(fd, &mut s) } != 0 {
        return Err(SysError::last("fstatfs"));
    }
    Ok(s.f_type as i64 == HUGETLBFS_MAGIC)
}

/// `memfd_create(name, flags)`.
pub fn memfd_create(name: &[u8], flags: u32) -> Result<OwnedFd> {
    let mut n = name.to_vec();
    if n.contains(&0) {
        return Err(SysError::other("memfd_create", "NUL in the name"));
    }
    n.push(0);
    // SAFETY: n is NUL-terminated and outlives the call.
    let fd = unsafe { libc::syscall(libc::SYS_memfd_create, n.as_ptr(), flags) };
    if fd < 0 {
        return Err(SysError::last(format!(
            "memfd_create {}",
            String::from_utf8_lossy(name)
        )));
    }
    // SAFETY: the kernel just returned this new descriptor; we own it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `F_ADD_SEALS`.
pub fn add_seals(fd: RawFd, seals: u32) -> Result<()> {
    // SAFETY: fcntl with integer arguments on a descriptor the caller owns.
    if unsafe { libc::fcntl(fd, libc::F_ADD_SEALS, seals as libc::c_int) } < 0 {
        return Err(SysError::last(format!("F_ADD_SEALS {seals:#x}")));
    }
    Ok(())
}

/// A new open file description of the inode `fd` refers to: `/proc/self/fd/N` opened
/// with `flags` (`O_CLOEXEC` added). Works for deleted files and memfds, and from an
/// `O_PATH` descriptor.
pub fn reopen(fd: RawFd, flags: i32) -> Result<OwnedFd> {
    let p = format!("/proc/self/fd/{fd}\0");
    // SAFETY: p is NUL-terminated and outlives the call.
    let r = unsafe { libc::open(p.as_ptr().cast(), flags | libc::O_CLOEXEC) };
    if r < 0 {
        return Err(SysError::last(format!("reopening fd {fd} ({flags:#o})")));
    }
    // SAFETY: the kernel just returned this new descriptor; we own it.
    Ok(unsafe { OwnedFd::from_raw_fd(r) })
}

/// `flock(fd, LOCK_EX or LOCK_SH | LOCK_NB)`.
pub fn flock(fd: RawFd, write: bool) -> Result<()> {
    let op = if write { libc::LOCK_EX } else { libc::LOCK_SH } | libc::LOCK_NB;
    // SAFETY: integer arguments only.
    if unsafe { libc::flock(fd, op) } != 0 {
        return Err(SysError::last("flock"));
    }
    Ok(())
}

fn flock_struct(write: bool, start: u64, len: u64) -> libc::flock {
    // SAFETY: an all-zero flock is valid.
    let mut l: libc::flock = unsafe { std::mem::zeroed() };
    l.l_type = if write { libc::F_WRLCK } else { libc::F_RDLCK } as i16;
    l.l_whence = libc::SEEK_SET as i16;
    l.l_start = start as i64;
    l.l_len = len as i64;
    l
}

/// `F_OFD_SETLK` of `[start, start+len)` (len 0: to the end), without waiting.
pub fn ofd_setlk(fd: RawFd, write: bool, start: u64, len: u64) -> Result<()> {
    let l = flock_struct(write, start, len);
    // SAFETY: `l` is a valid flock the call only reads.
    if unsafe { libc::fcntl(fd, libc::F_OFD_SETLK, &l) } != 0 {
        return Err(SysError::last("F_OFD_SETLK"));
    }
    Ok(())
}

/// `F_SETLK` (a POSIX lock of this process) of `[start, start+len)`, without waiting.
pub fn posix_setlk(fd: RawFd, write: bool, start: u64, len: u64) -> Result<()> {
    let l = flock_struct(write, start, len);
    // SAFETY: `l` is a valid flock the call only reads.
    if unsafe { libc::fcntl(fd, libc::F_SETLK, &l) } != 0 {
        return Err(SysError::last("F_SETLK"));
    }
    Ok(())
}

/// Who holds a POSIX lock conflicting with the one described (`F_GETLK`): `Some(pid)`
/// (-1 for an OFD lock), `None` if it could be taken now.
pub fn posix_conflict(fd: RawFd, write: bool, start: u64, len: u64) -> Result<Option<i32>> {
    let mut l = flock_struct(write, start, len);
    // SAFETY: `l` is a valid flock the call reads and fills.
    if unsafe { libc::fcntl(fd, libc::F_GETLK, &mut l) } != 0 {
        return Err(SysError::last("F_GETLK"));
    }
    Ok((l.l_type != libc::F_UNLCK as i16).then_some(l.l_pid))
}

/// The `struct flock` bytes of a POSIX lock request (x86-64 layout: type, whence,
/// start, len, pid), for a lock taken by an injected `fcntl` in another process.
pub fn flock_bytes(write: bool, start: u64, len: u64) -> [u8; 32] {
    let mut b = [0u8; 32];
    let t = if write { libc::F_WRLCK } else { libc::F_RDLCK } as i16;
    b[0..2].copy_from_slice(&t.to_le_bytes());
    b[2..4].copy_from_slice(&(libc::SEEK_SET as i16).to_le_bytes());
    b[8..16].copy_from_slice(&start.to_le_bytes());
    b[16..24].copy_from_slice(&len.to_le_bytes());
    b
}

/// `unlinkat(dir, name, 0)`.
pub fn unlink_at(dir: RawFd, name: &[u8]) -> Result<()> {
    let mut n = name.to_vec();
    if n.contains(&0) {
        return Err(SysError::other("unlinkat", "NUL in the name"));
    }
    n.push(0);
    // SAFETY: n is NUL-terminated and outlives the call.
    if unsafe { libc::unlinkat(dir, n.as_ptr().cast(), 0) } != 0 {
        return Err(SysError::last(format!(
            "unlinkat {}",
            String::from_utf8_lossy(name)
        )));
    }
    Ok(())
}

/// The size of `fd` (`fstat`).
pub fn size_of(fd: &impl AsRawFd) -> Result<u64> {
    Ok(crate::files::fstat(fd.as_raw_fd())?.st_size as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};

    #[test]
    fn memfd_runs_seals_and_reopen() {
        let m = memfd_create(b"ckpt test", libc::MFD_ALLOW_SEALING).unwrap();
        let mut f = std::fs::File::from(m.try_clone().unwrap());
        f.write_all(b"head").unwrap();
        f.seek(SeekFrom::Start(3 * 4096)).unwrap();
        f.write_all(b"tail").unwrap();
        let size = size_of(&f).unwrap();
        assert_eq!(size, 3 * 4096 + 4);
        let runs = data_runs(f.as_raw_fd(), size).unwrap();
        assert_eq!(runs.first().unwrap().0, 0);
        assert_eq!(runs.last().unwrap().1, size);
        assert!(
            runs.iter().map(|r| r.1 - r.0).sum::<u64>() < size,
            "{runs:?}"
        );
        assert_eq!(seals(f.as_raw_fd()).unwrap(), Some(0));
        add_seals(f.as_raw_fd(), 2 | 4).unwrap();
        assert_eq!(seals(f.as_raw_fd()).unwrap(), Some(6));
        let p = reopen(f.as_raw_fd(), libc::O_PATH).unwrap();
        let r = reopen(p.as_raw_fd(), libc::O_RDONLY).unwrap();
        assert_eq!(seals(r.as_raw_fd()).unwrap(), Some(6));
        assert!(!is_hugetlb(r.as_raw_fd()).unwrap());
        let t = tempfile::tempfile().unwrap();
        assert_eq!(seals(t.as_raw_fd()).unwrap(), None);
    }

    #[test]
    fn locks_taken_and_seen() {
        let t = tempfile::NamedTempFile::new().unwrap();
        let a = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(t.path())
            .unwrap();
        let b = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(t.path())
            .unwrap();
        ofd_setlk(a.as_raw_fd(), true, 10, 5).unwrap();
        // Another open file description conflicts with it; a range beside it does not.
        assert!(ofd_setlk(b.as_raw_fd(), false, 12, 1).is_err());
        ofd_setlk(b.as_raw_fd(), false, 20, 0).unwrap();
        assert_eq!(posix_conflict(b.as_raw_fd(), true, 0, 0).unwrap(), Some(-1));
        flock(a.as_raw_fd(), true).unwrap();
        assert!(flock(b.as_raw_fd(), false).is_err());
        assert_eq!(flock_bytes(true, 7, 9)[0], libc::F_WRLCK as u8);
    }
}
