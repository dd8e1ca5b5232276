//! Inspecting another process's file descriptors.
//!
//! * [`stat_fd`]: `stat("/proc/PID/fd/N")`, which follows the magic link to the open
//!   file (works for pipes and sockets too: their inode and `st_mode` type).
//! * [`same_file`]: `kcmp(KCMP_FILE)`, whether two fds (of the same or two processes)
//!   are the same open file description (shared offset and flags: dup, fork).
//! * [`peek_pipe`]: the bytes buffered in a pipe or FIFO, without consuming them:
//!   reopen the pipe through `/proc/PID/fd/N` (`O_RDONLY|O_NONBLOCK`), `tee(2)` its
//!   buffers into a pipe of ours sized to match, read ours. The target's pipe is left
//!   exactly as it was.

use crate::{last_errno, Result, SysError};
use libc::pid_t;
use std::fs::File;
use std::io::Read;
use std::os::unix::io::{AsRawFd, FromRawFd};

/// `stat(2)` of the file `/proc/PID/fd/N` refers to.
pub fn stat_fd(pid: pid_t, fd: i32) -> Result<libc::stat> {
    stat_path(&format!("/proc/{pid}/fd/{fd}"))
}

/// `stat(2)` of a path.
pub fn stat_path(path: &str) -> Result<libc::stat> {
    let c = std::ffi::CString::new(path).map_err(|_| SysError::other("stat", "NUL in path"))?;
    // SAFETY: an all-zero stat is valid; `c` is NUL-terminated; `st` is a valid out pointer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: see above.
    if unsafe { libc::stat(c.as_ptr(), &mut st) } != 0 {
        return Err(SysError::last(format!("stat {path}")));
    }
    Ok(st)
}

/// `fstat(2)` of one of our own descriptors.
pub fn fstat(fd: i32) -> Result<libc::stat> {
    // SAFETY: an all-zero stat is valid; `st` is a valid out pointer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: see above.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(SysError::last(format!("fstat fd {fd}")));
    }
    Ok(st)
}

const KCMP_FILE: i32 = 0;

/// `kcmp(pid1, pid2, KCMP_FILE, fd1, fd2) == 0`: the two fds share one open file description.
pub fn same_file(pid1: pid_t, fd1: i32, pid2: pid_t, fd2: i32) -> Result<bool> {
    // SAFETY: plain integer syscall.
    let rc = unsafe { libc::syscall(libc::SYS_kcmp, pid1, pid2, KCMP_FILE, fd1, fd2) };
    if rc < 0 {
        return Err(SysError::last(format!(
            "kcmp(KCMP_FILE) {pid1}:{fd1} vs {pid2}:{fd2}"
        )));
    }
    Ok(rc == 0)
}

fn pipe2() -> Result<(File, File)> {
    let mut fds = [0i32; 2];
    // SAFETY: `fds` is a valid array of two ints.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) } != 0 {
        return Err(SysError::last("pipe2"));
    }
    // SAFETY: pipe2 returned two fresh descriptors that we now own.
    Ok(unsafe { (File::from_raw_fd(fds[0]), File::from_raw_fd(fds[1])) })
}

/// Capacity of a pipe (`F_GETPIPE_SZ`).
pub fn pipe_size(f: &File) -> Result<usize> {
    // SAFETY: fcntl on a descriptor we own.
    let n = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_GETPIPE_SZ) };
    if n < 0 {
        return Err(SysError::last("F_GETPIPE_SZ"));
    }
    Ok(n as usize)
}

/// The bytes buffered in the pipe/FIFO `fd` of `pid`, oldest first, without consuming
/// them (see the module docs). Also returns the pipe's capacity.
pub fn peek_pipe(pid: pid_t, fd: i32) -> Result<(Vec<u8>, usize)> {
    let path = format!("/proc/{pid}/fd/{fd}");
    let src = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags_nonblock()
        .open(&path)
        .map_err(|e| SysError::io(format!("open {path}"), &e))?;
    let cap = pipe_size(&src)?;
    let (mut r, w) = pipe2()?;
    // SAFETY: fcntl on a descriptor we own.
    let got = unsafe { libc::fcntl(w.as_raw_fd(), libc::F_SETPIPE_SZ, cap as libc::c_int) };
    if got < 0 || (got as usize) < cap {
        return Err(SysError::errno(
            format!("F_SETPIPE_SZ {cap} for peeking {path}"),
            last_errno(),
        ));
    }
    // SAFETY: tee between two pipe descriptors we own; no user memory involved.
    let n = unsafe { libc::tee(src.as_raw_fd(), w.as_raw_fd(), cap, libc::SPLICE_F_NONBLOCK) };
    if n < 0 {
        let e = last_errno();
        if e == libc::EAGAIN {
            return Ok((Vec::new(), cap));
        }
        return Err(SysError::errno(format!("tee from {path}"), e));
    }
    drop(w);
    let mut data = Vec::with_capacity(n as usize);
    r.read_to_end(&mut data)
        .map_err(|e| SysError::io("read peeked pipe data", &e))?;
    Ok((data, cap))
}

trait NonBlock {
    fn custom_flags_nonblock(&mut self) -> &mut Self;
}

impl NonBlock for std::fs::OpenOptions {
    fn custom_flags_nonblock(&mut self) -> &mut Self {
        use std::os::unix::fs::OpenOptionsExt;
        self.custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn peek_own_pipe_keeps_data() {
        let (mut r, mut w) = pipe2().unwrap();
        w.write_all(b"hello pipe").unwrap();
        let me = std::process::id() as pid_t;
        let (d, cap) = peek_pipe(me, r.as_raw_fd()).unwrap();
        assert_eq!(d, b"hello pipe");
        assert!(cap >= 4096);
        let mut b = [0u8; 10];
        r.read_exact(&mut b).unwrap();
        assert_eq!(&b, b"hello pipe");
        let (d, _) = peek_pipe(me, r.as_raw_fd()).unwrap();
        assert!(d.is_empty());
        assert!(same_file(me, r.as_raw_fd(), me, r.as_raw_fd()).unwrap());
        assert!(!same_file(me, r.as_raw_fd(), me, w.as_raw_fd()).unwrap());
    }
}
