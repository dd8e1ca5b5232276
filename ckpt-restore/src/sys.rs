//! The OS calls of the restorer that `ckpt-sys` does not offer: every `unsafe` block of
//! ckpt-restore is in this module.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};

fn cvt(rc: libc::c_long) -> io::Result<libc::c_long> {
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// `struct open_how` of `openat2(2)`.
#[repr(C)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}
const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
const RESOLVE_IN_ROOT: u64 = 0x10;

/// `openat2(root, path, flags, mode)` with `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS`:
/// `..` and symlinks (absolute ones too) never leave `root`.
pub fn open_in_root(root: RawFd, path: &[u8], flags: i32, mode: u32) -> io::Result<OwnedFd> {
    let mut p = path.to_vec();
    if p.contains(&0) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    p.push(0);
    let how = OpenHow {
        flags: (flags | libc::O_CLOEXEC) as u32 as u64,
        mode: mode as u64,
        resolve: RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: p is NUL-terminated and outlives the call; how is a valid open_how of the size passed.
    let fd = cvt(unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root,
            p.as_ptr(),
            &how as *const OpenHow,
            std::mem::size_of::<OpenHow>(),
        )
    })?;
    // SAFETY: the kernel just returned this new descriptor; we own it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `open(path, O_PATH | O_DIRECTORY)`.
pub fn open_dir_path(path: &std::path::Path) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let mut p = path.as_os_str().as_bytes().to_vec();
    p.push(0);
    // SAFETY: p is NUL-terminated.
    let fd = unsafe {
        libc::open(
            p.as_ptr() as *const libc::c_char,
            libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: new descriptor owned by us.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `fcntl(fd, F_DUPFD, min)`: a new descriptor (without close-on-exec) numbered at least `min`.
pub fn dup_at_least(fd: RawFd, min: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: plain fcntl on a descriptor we own.
    let n = unsafe { libc::fcntl(fd, libc::F_DUPFD, min) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: new descriptor owned by us.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// `fcntl(fd, F_SETFL, flags)`.
pub fn set_fl(fd: RawFd, flags: i32) -> io::Result<()> {
    // SAFETY: plain fcntl.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETFL, flags) } as libc::c_long).map(|_| ())
}

/// `lseek(fd, pos, SEEK_SET)`.
pub fn seek(fd: RawFd, pos: u64) -> io::Result<()> {
    // SAFETY: plain lseek.
    cvt(unsafe { libc::lseek(fd, pos as libc::off_t, libc::SEEK_SET) } as libc::c_long).map(|_| ())
}

/// `fstat(fd)`: (dev, ino, mode).
pub fn fstat(fd: RawFd) -> io::Result<(u64, u64, u32)> {
    // SAFETY: stat is plain data; zeroed is valid.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: st is a valid out buffer.
    if unsafe { libc::fstat(fd, &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((st.st_dev, st.st_ino, st.st_mode))
}

/// A pipe `(read, write)`, both without close-on-exec (they are inherited by the child).
pub fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut p = [0 as RawFd; 2];
    // SAFETY: p is a valid 2-int array.
    if unsafe { libc::pipe2(p.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: two new descriptors owned by us.
    Ok(unsafe { (OwnedFd::from_raw_fd(p[0]), OwnedFd::from_raw_fd(p[1])) })
}

/// `fcntl(fd, F_SETPIPE_SZ, size)`.
pub fn set_pipe_size(fd: RawFd, size: usize) -> io::Result<()> {
    // SAFETY: plain fcntl.
    cvt(unsafe { libc::fcntl(fd, libc::F_SETPIPE_SZ, size as libc::c_int) } as libc::c_long)
        .map(|_| ())
}

/// Write all of `data` to `fd`.
pub fn write_all(fd: RawFd, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        // SAFETY: data is a valid buffer of data.len() bytes.
        let n = unsafe { libc::write(fd, data.as_ptr() as *const libc::c_void, data.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        data = &data[n as usize..];
    }
    Ok(())
}

/// Raise our soft `RLIMIT_NOFILE` to the hard limit (staging descriptors).
pub fn raise_nofile() {
    // SAFETY: rlimit is plain data; get/setrlimit with a valid pointer.
    unsafe {
        let mut r: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) == 0 && r.rlim_cur < r.rlim_max {
            r.rlim_cur = r.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &r);
        }
    }
}

/// `prlimit64(pid, res, &{cur, max}, NULL)`.
pub fn set_rlimit(pid: i32, res: u32, cur: u64, max: u64) -> io::Result<()> {
    let new = libc::rlimit64 {
        rlim_cur: cur,
        rlim_max: max,
    };
    // SAFETY: new is a valid rlimit64; old is NULL.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_prlimit64,
            pid,
            res,
            &new as *const libc::rlimit64,
            std::ptr::null_mut::<libc::rlimit64>(),
        )
    })
    .map(|_| ())
}

/// What the forked child does before it stops for the restorer. Everything is
/// computed by the parent; the child only makes raw system calls.
#[derive(Debug, Default)]
pub struct ChildSetup {
    /// Our pid: the child dies if its parent is not this any more.
    pub parent: i32,
    /// `(staging fd, target fd, close-on-exec)`.
    pub dups: Vec<(RawFd, RawFd, bool)>,
    /// Inclusive fd ranges to close (everything below the staging area that is no target).
    pub close: Vec<(u32, u32)>,
    /// Directory (O_PATH) to `fchdir` to.
    pub cwd: Option<RawFd>,
    /// umask to set.
    pub umask: Option<u32>,
}

/// Exit codes of a child whose setup failed (before it stopped), for messages.
pub fn child_failure(code: i32) -> &'static str {
    match code {
        101 => "the parent died",
        102 => "dup3 of a restored fd failed",
        103 => "close_range failed",
        104 => "fchdir to the restored cwd failed",
        105 => "PTRACE_TRACEME failed",
        106 => "continued without the restorer",
        _ => "unknown failure",
    }
}

fn raw_exit(code: i32) -> ! {
    // SAFETY: exit_group never returns.
    unsafe {
        libc::syscall(libc::SYS_exit_group, code);
    }
    #[allow(clippy::empty_loop)]
    loop {}
}

/// `clone3` like `fork`, with the child's pid set to `set_tid` when given. In the child,
/// runs `setup` and stops (`PTRACE_TRACEME` + `SIGSTOP`) and never returns; in the parent,
/// returns the child's pid.
pub fn spawn_child(set_tid: Option<i32>, setup: &ChildSetup) -> io::Result<i32> {
    #[repr(C)]
    struct CloneArgs {
        flags: u64,
        pidfd: u64,
        child_tid: u64,
        parent_tid: u64,
        exit_signal: u64,
        stack: u64,
        stack_size: u64,
        tls: u64,
        set_tid: u64,
        set_tid_size: u64,
        cgroup: u64,
    }
    let tid_arr: [libc::pid_t; 1] = [set_tid.unwrap_or(0)];
    let args = CloneArgs {
        flags: 0,
        pidfd: 0,
        child_tid: 0,
        parent_tid: 0,
        exit_signal: libc::SIGCHLD as u64,
        stack: 0,
        stack_size: 0,
        tls: 0,
        set_tid: if set_tid.is_some() {
            tid_arr.as_ptr() as u64
        } else {
            0
        },
        set_tid_size: set_tid.is_some() as u64,
        cgroup: 0,
    };
    // SAFETY: clone3 without CLONE_VM behaves like fork: the child gets a copy of our
    // address space. The child branch below only makes raw system calls on data computed
    // before the call and never returns into Rust code.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &args as *const CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    if rc > 0 {
        return Ok(rc as i32);
    }
    // Child.
    // SAFETY: raw system calls with integer arguments only.
    unsafe {
        libc::syscall(libc::SYS_prctl, libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        if libc::syscall(libc::SYS_getppid) as i32 != setup.parent {
            raw_exit(101);
        }
        for &(from, to, cloexec) in &setup.dups {
            let fl = if cloexec { libc::O_CLOEXEC } else { 0 };
            if libc::syscall(libc::SYS_dup3, from, to, fl) < 0 {
                raw_exit(102);
            }
        }
        for &(lo, hi) in &setup.close {
            if libc::syscall(libc::SYS_close_range, lo, hi, 0) < 0 {
                raw_exit(103);
            }
        }
        if let Some(c) = setup.cwd {
            if libc::syscall(libc::SYS_fchdir, c) < 0 {
                raw_exit(104);
            }
        }
        if let Some(m) = setup.umask {
            libc::syscall(libc::SYS_umask, m);
        }
        if libc::syscall(libc::SYS_ptrace, libc::PTRACE_TRACEME, 0, 0, 0) < 0 {
            raw_exit(105);
        }
        let me = libc::syscall(libc::SYS_getpid);
        libc::syscall(libc::SYS_kill, me, libc::SIGSTOP);
    }
    raw_exit(106)
}

/// `PTRACE_SETOPTIONS`.
pub fn ptrace_set_options(tid: i32, opts: u64) -> io::Result<()> {
    // SAFETY: integer arguments only.
    cvt(unsafe { libc::ptrace(libc::PTRACE_SETOPTIONS, tid, 0, opts as usize) }).map(|_| ())
}

/// `PTRACE_GETEVENTMSG`.
pub fn ptrace_event_msg(tid: i32) -> io::Result<u64> {
    let mut v: libc::c_ulong = 0;
    // SAFETY: v is a valid out pointer.
    cvt(unsafe {
        libc::ptrace(
            libc::PTRACE_GETEVENTMSG,
            tid,
            0,
            &mut v as *mut libc::c_ulong,
        )
    })?;
    Ok(v)
}

/// `PTRACE_SETSIGMASK` (bit N-1 = signal N).
pub fn ptrace_set_sigmask(tid: i32, mask: u64) -> io::Result<()> {
    // SAFETY: mask is a valid 8-byte buffer; size 8 = sizeof(kernel sigset_t).
    cvt(unsafe {
        libc::ptrace(
            0x420b, /* PTRACE_SETSIGMASK */
            tid,
            8usize,
            &mask as *const u64,
        )
    })
    .map(|_| ())
}

/// `PTRACE_SETFPREGS` with a 512-byte FXSAVE area.
pub fn ptrace_set_fpregs(tid: i32, area: &[u8]) -> io::Result<()> {
    if area.len() != 512 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: area is 512 bytes, the size of user_fpregs_struct the kernel reads.
    cvt(unsafe { libc::ptrace(libc::PTRACE_SETFPREGS, tid, 0, area.as_ptr()) }).map(|_| ())
}

/// `process_vm_writev` of `(remote address, local bytes)` pairs, batched by `IOV_MAX`,
/// resuming after partial writes.
pub fn write_pairs(pid: i32, pairs: &[(u64, &[u8])]) -> io::Result<()> {
    const MAX: usize = 1024;
    let mut i = 0usize;
    let mut skip = 0usize; // bytes of pairs[i] already written
    while i < pairs.len() {
        let end = (i + MAX).min(pairs.len());
        let mut local = Vec::with_capacity(end - i);
        let mut remote = Vec::with_capacity(end - i);
        let mut total = 0usize;
        for (k, &(addr, data)) in pairs[i..end].iter().enumerate() {
            let s = if k == 0 { skip } else { 0 };
            local.push(libc::iovec {
                iov_base: data[s..].as_ptr() as *mut libc::c_void,
                iov_len: data.len() - s,
            });
            remote.push(libc::iovec {
                iov_base: (addr + s as u64) as *mut libc::c_void,
                iov_len: data.len() - s,
            });
            total += data.len() - s;
        }
        // SAFETY: the local iovecs point into live slices; remote ones are only addresses.
        let n = unsafe {
            libc::process_vm_writev(
                pid,
                local.as_ptr(),
                local.len() as libc::c_ulong,
                remote.as_ptr(),
                remote.len() as libc::c_ulong,
                0,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut n = n as usize;
        if n == 0 && total > 0 {
            return Err(io::Error::from_raw_os_error(libc::EFAULT));
        }
        // Advance by n bytes.
        while n > 0 && i < pairs.len() {
            let left = pairs[i].1.len() - skip;
            if n >= left {
                n -= left;
                i += 1;
                skip = 0;
            } else {
                skip += n;
                n = 0;
            }
        }
        while i < pairs.len() && pairs[i].1.len() == skip {
            i += 1;
            skip = 0;
        }
    }
    Ok(())
}

/// XCR0 of this CPU (the user state components the OS enabled) and the size of the
/// XSAVE area for them (CPUID leaf 0xD, sub-leaf 0, EBX): what `NT_X86_XSTATE` carries here.
pub fn cpu_xstate() -> Option<(u64, u32)> {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{__cpuid, __cpuid_count};
        let l1 = __cpuid(1);
        let osxsave = l1.ecx & (1 << 27) != 0;
        if !osxsave {
            return None;
        }
        // SAFETY: the CPU has XSAVE enabled by the OS (OSXSAVE), so xgetbv is legal.
        let xcr0 = unsafe { xgetbv0() };
        let d = __cpuid_count(0xd, 0);
        Some((xcr0, d.ebx))
    }
    #[cfg(not(target_arch = "x86_64"))]
    None
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "xsave")]
unsafe fn xgetbv0() -> u64 {
    std::arch::x86_64::_xgetbv(0)
}

/// `prctl(PR_SET_MM, PR_SET_MM_MAP_SIZE)`: the size of `struct prctl_mm_map` the kernel
/// expects (104), or an error when the facility is missing.
pub fn mm_map_size() -> io::Result<u32> {
    let mut sz: u32 = 0;
    // SAFETY: sz is a valid out pointer for an unsigned int.
    cvt(unsafe {
        libc::syscall(
            libc::SYS_prctl,
            libc::PR_SET_MM,
            libc::PR_SET_MM_MAP_SIZE,
            &mut sz as *mut u32,
            0,
            0,
        )
    })?;
    Ok(sz)
}

/// Our real, effective and saved uid and gid, and supplementary groups.
pub fn my_creds() -> ([u32; 3], [u32; 3], Vec<u32>) {
    let (mut r, mut e, mut s) = (0, 0, 0);
    let (mut gr, mut ge, mut gs) = (0, 0, 0);
    // SAFETY: valid out pointers.
    unsafe {
        libc::getresuid(&mut r, &mut e, &mut s);
        libc::getresgid(&mut gr, &mut ge, &mut gs);
    }
    let mut groups = vec![0 as libc::gid_t; 65536];
    // SAFETY: groups has room for 65536 entries.
    let n = unsafe { libc::getgroups(groups.len() as i32, groups.as_mut_ptr()) };
    groups.truncate(n.max(0) as usize);
    ([r, e, s], [gr, ge, gs], groups)
}

/// Our `(session id, process group id)`.
pub fn my_session() -> (i32, i32) {
    // SAFETY: plain integer syscalls without pointers.
    unsafe { (libc::getsid(0), libc::getpgrp()) }
}

/// `(ppid, pgid, sid)` of `pid`, from `/proc/PID/stat`.
pub fn proc_ids(pid: i32) -> io::Result<(i32, i32, i32)> {
    let st = ckpt_sys::procfs::stat(pid).map_err(|e| io::Error::other(e.to_string()))?;
    Ok((st.field(4) as i32, st.field(5) as i32, st.field(6) as i32))
}

/// `kill(pid, SIGKILL)`, then reap every traced thread of it and the process itself.
pub fn kill_and_reap(pid: i32, threads: &[i32]) {
    // SAFETY: plain integer syscalls; status is a valid out pointer.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        for &t in threads
            .iter()
            .filter(|&&t| t != pid)
            .chain(std::iter::once(&pid))
        {
            let mut st = 0;
            loop {
                let r = libc::waitpid(t, &mut st, libc::__WALL);
                if r == -1 && io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
                    continue;
                }
                if r == t && !libc::WIFEXITED(st) && !libc::WIFSIGNALED(st) {
                    continue; // a stop report; wait for the death
                }
                break;
            }
        }
    }
}

/// Map an image file read-only, pages read only when touched (for reading the records of
/// an image without its page contents, e.g. a capture indexing its parent chain).
pub fn map_image_lazy(f: &std::fs::File) -> io::Result<memmap2::Mmap> {
    // SAFETY: as in `map_image`.
    unsafe { memmap2::MmapOptions::new().map(f) }
}

/// Map an image file read-only (populated ahead, read sequentially).
pub fn map_image(f: &std::fs::File) -> io::Result<memmap2::Mmap> {
    // SAFETY: images are written to a temporary name and renamed into place, never
    // modified in place; a concurrent truncation would be a SIGBUS, as with any mmap reader.
    let m = unsafe { memmap2::MmapOptions::new().populate().map(f)? };
    let _ = m.advise(memmap2::Advice::Sequential);
    Ok(m)
}
