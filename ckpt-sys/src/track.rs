//! Dirty-page tracking for pre-copy capture, without soft-dirty (off in this kernel).
//!
//! A userfaultfd in *asynchronous write-protect* mode (`UFFD_FEATURE_WP_ASYNC`, Linux 6.7)
//! lets the kernel resolve write faults on protected pages by itself — the target never
//! waits — while the page table remembers which pages were written. `PAGEMAP_SCAN` on
//! `/proc/PID/pagemap` reports the written pages (`PAGE_IS_WRITTEN`) and, with
//! `PM_SCAN_WP_MATCHING`, protects them again in the same call, atomically per page table.
//!
//! * [`Tracker::create`]: the userfaultfd must belong to the target's mm, so it is created
//!   by an injected `userfaultfd(2)` in the stopped target, copied into this process with
//!   `pidfd_getfd(2)`, and the target's descriptor closed again by injection (the target
//!   ends with the fd table it had). The `UFFDIO_*` ioctls act on the userfaultfd's mm, so
//!   they are issued from here.
//! * [`Tracker::register`]: `UFFDIO_REGISTER` in write-protect mode, per VMA (private and
//!   shared anonymous memory; the kernel refuses file mappings).
//! * [`scan_written`]: the written pages of a range, optionally protecting them again.
//! * Tracking lasts while some process holds the userfaultfd: closing the last descriptor
//!   unregisters everything and the target is exactly as before. [`fd_from`] takes it over
//!   from another process (the holder a pre-copy leaves behind, see ckpt-capture).

use crate::inject::Injector;
use crate::{last_errno, Result, SysError};
use libc::pid_t;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const UFFD_API: u64 = 0xAA;
/// `_IOWR(0xAA, 0x3F, struct uffdio_api)` (24 bytes).
const UFFDIO_API: u64 = 0xC018_AA3F;
/// `_IOWR(0xAA, 0x00, struct uffdio_register)` (32 bytes).
const UFFDIO_REGISTER: u64 = 0xC020_AA00;
const UFFDIO_REGISTER_MODE_WP: u64 = 1 << 1;
const UFFD_FEATURE_WP_UNPOPULATED: u64 = 1 << 13;
const UFFD_FEATURE_WP_ASYNC: u64 = 1 << 15;
/// `userfaultfd(2)` flag: handle user-mode faults only (allowed without privilege).
const UFFD_USER_MODE_ONLY: u64 = 1;

// PAGEMAP_SCAN (see mem.rs for the argument layout).
const PAGEMAP_SCAN: u64 = 0xC060_6610;
const PM_SCAN_WP_MATCHING: u64 = 1 << 0;
const PAGE_IS_WRITTEN: u64 = 1 << 1;

#[repr(C)]
#[derive(Default)]
struct UffdioApi {
    api: u64,
    features: u64,
    ioctls: u64,
}

#[repr(C)]
#[derive(Default)]
struct UffdioRegister {
    start: u64,
    len: u64,
    mode: u64,
    ioctls: u64,
}

#[repr(C)]
#[derive(Default)]
struct PmScanArg {
    size: u64,
    flags: u64,
    start: u64,
    end: u64,
    walk_end: u64,
    vec: u64,
    vec_len: u64,
    max_pages: u64,
    category_inverted: u64,
    category_mask: u64,
    category_anyof_mask: u64,
    return_mask: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct PageRegion {
    start: u64,
    end: u64,
    categories: u64,
}

/// A userfaultfd of a target's mm in asynchronous write-protect mode (module docs).
#[derive(Debug)]
pub struct Tracker {
    fd: OwnedFd,
    pid: pid_t,
}

fn ioctl(fd: i32, req: u64, arg: *mut libc::c_void, what: &str) -> Result<i64> {
    // SAFETY: every caller passes a pointer to a live, correctly sized #[repr(C)] argument
    // of the request (checked against the request's encoded size above).
    let rc = unsafe { libc::ioctl(fd, req as _, arg) };
    if rc < 0 {
        return Err(SysError::errno(what.to_string(), last_errno()));
    }
    Ok(rc as i64)
}

/// `pidfd_getfd(2)`: a copy of descriptor `fd` of process `pid` (close-on-exec).
pub fn fd_from(pid: pid_t, fd: i32) -> Result<OwnedFd> {
    // SAFETY: plain syscalls with integer arguments; a returned descriptor is owned here.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if pidfd < 0 {
        return Err(SysError::last(format!("pidfd_open {pid}")));
    }
    // SAFETY: `pidfd` is a descriptor we just opened and own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    // SAFETY: as above.
    let n = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if n < 0 {
        return Err(SysError::last(format!("pidfd_getfd pid {pid} fd {fd}")));
    }
    // SAFETY: a new descriptor returned by the kernel, owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(n as i32) })
}

/// Let `fd` be inherited across `execve` (clear `FD_CLOEXEC`), for handing it to a child.
pub fn inheritable(fd: &OwnedFd) -> Result<()> {
    // SAFETY: fcntl on a descriptor we own, with an integer argument.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFD, 0) } < 0 {
        return Err(SysError::last("fcntl F_SETFD"));
    }
    Ok(())
}

impl Tracker {
    /// Create the userfaultfd inside the stopped target through `inj` (a thread of `pid`),
    /// take it over and close the target's descriptor; enable asynchronous write-protect.
    pub fn create(inj: &mut Injector, pid: pid_t) -> Result<Tracker> {
        let flags = (libc::O_CLOEXEC | libc::O_NONBLOCK) as u64;
        let mut r = inj.syscall(libc::SYS_userfaultfd, &[flags | UFFD_USER_MODE_ONLY])?;
        if r < 0 {
            r = inj.syscall(libc::SYS_userfaultfd, &[flags])?;
        }
        if r < 0 {
            return Err(SysError::errno(
                format!("userfaultfd in pid {pid}"),
                (-r) as i32,
            ));
        }
        let got = fd_from(pid, r as i32);
        let closed = inj.syscall(libc::SYS_close, &[r as u64]);
        let fd = got?;
        if closed? != 0 {
            return Err(SysError::other(
                format!("pid {pid}"),
                "closing the injected userfaultfd failed",
            ));
        }
        let t = Tracker { fd, pid };
        let mut api = UffdioApi {
            api: UFFD_API,
            features: UFFD_FEATURE_WP_ASYNC | UFFD_FEATURE_WP_UNPOPULATED,
            ioctls: 0,
        };
        ioctl(
            t.fd.as_raw_fd(),
            UFFDIO_API,
            &mut api as *mut UffdioApi as *mut libc::c_void,
            "UFFDIO_API (asynchronous write-protect, Linux 6.7+)",
        )?;
        Ok(t)
    }

    /// A tracker over a userfaultfd already set up (taken over from a holder).
    pub fn from_fd(fd: OwnedFd, pid: pid_t) -> Tracker {
        Tracker { fd, pid }
    }

    /// The userfaultfd.
    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    /// Register `[start, end)` (one whole VMA) for write-protect tracking.
    pub fn register(&self, start: u64, end: u64) -> Result<()> {
        let mut reg = UffdioRegister {
            start,
            len: end - start,
            mode: UFFDIO_REGISTER_MODE_WP,
            ioctls: 0,
        };
        ioctl(
            self.fd.as_raw_fd(),
            UFFDIO_REGISTER,
            &mut reg as *mut UffdioRegister as *mut libc::c_void,
            &format!("UFFDIO_REGISTER pid {} {start:#x}-{end:#x}", self.pid),
        )?;
        Ok(())
    }
}

/// The pages of `[start, end)` written since they were last protected, as merged byte
/// ranges, read from `pagemap` (`/proc/PID/pagemap`); with `protect`, every page of the
/// range is write-protected again in the same walk. The range must be registered.
pub fn scan_written(
    pagemap: &File,
    start: u64,
    end: u64,
    protect: bool,
) -> Result<Vec<(u64, u64)>> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    let mut regs = vec![PageRegion::default(); 4096];
    let mut pos = start;
    while pos < end {
        let mut arg = PmScanArg {
            size: std::mem::size_of::<PmScanArg>() as u64,
            flags: if protect { PM_SCAN_WP_MATCHING } else { 0 },
            start: pos,
            end,
            vec: regs.as_mut_ptr() as u64,
            vec_len: regs.len() as u64,
            category_mask: PAGE_IS_WRITTEN,
            return_mask: PAGE_IS_WRITTEN,
            ..Default::default()
        };
        let n = ioctl(
            pagemap.as_raw_fd(),
            PAGEMAP_SCAN,
            &mut arg as *mut PmScanArg as *mut libc::c_void,
            "PAGEMAP_SCAN (written pages)",
        )? as usize;
        for r in &regs[..n.min(regs.len())] {
            match out.last_mut() {
                Some(l) if l.1 == r.start => l.1 = r.end,
                _ => out.push((r.start, r.end)),
            }
        }
        if arg.walk_end <= pos {
            break;
        }
        pos = arg.walk_end;
    }
    Ok(out)
}
