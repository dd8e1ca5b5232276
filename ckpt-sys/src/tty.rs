//! Terminals: which device numbers are pseudo-terminals, and the state of one read and
//! set through a descriptor of our own (`sock::take_fd` of the target's): line settings
//! (`TCGETS2`/`TCSETS2`, `struct termios2`), window size (`TIOCGWINSZ`/`TIOCSWINSZ`), the
//! session and the foreground process group (`TIOCGSID`, `TIOCGPGRP`), a master's index
//! (`TIOCGPTN`); a new pair (`TIOCSPTLCK`, `TIOCGPTPEER`), bytes queued (`FIONREAD`), and the
//! requests a restored session leader makes (`TIOCSCTTY`, `TIOCSPGRP`).
//!
//! x86-64 `struct termios2` (44 bytes): `c_iflag`, `c_oflag`, `c_cflag`, `c_lflag` (u32
//! each), `c_line` (u8), `c_cc[19]`, `c_ispeed`, `c_ospeed` (u32 each). `struct winsize`:
//! `ws_row`, `ws_col`, `ws_xpixel`, `ws_ypixel` (u16 each).

use crate::{Result, SysError};
use std::os::fd::{AsRawFd, BorrowedFd};

/// Size of `struct termios2`.
pub const TERMIOS2_LEN: usize = 44;

const TCGETS2: u64 = 0x802C_542A;
const TCSETS2: u64 = 0x402C_542B;
const TIOCGWINSZ: u64 = 0x5413;
const TIOCSWINSZ: u64 = 0x5414;
const TIOCGPGRP: u64 = 0x540F;
const TIOCGSID: u64 = 0x5429;
const TIOCGPTN: u64 = 0x8004_5430;
const TIOCSPTLCK: u64 = 0x4004_5431;
const TIOCGPTPEER: u64 = 0x5441;
const FIONREAD: u64 = 0x541B;
/// `TIOCSCTTY`: make the terminal the caller's controlling terminal (the caller leads
/// a session that has none); argument 0 (never steal it from another session).
pub const TIOCSCTTY: u64 = 0x540E;
/// `TIOCSPGRP`: set the terminal's foreground process group (argument: `*const pid_t`).
pub const TIOCSPGRP: u64 = 0x5410;

/// What a character device number is, as a terminal.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PtyEnd {
    /// A pty master (`/dev/ptmx`, 5:2).
    Master,
    /// A pty slave (`/dev/pts/N`, majors 136..=143).
    Slave,
}

/// The pty end a character device's `st_rdev` is, if any.
pub fn pty_end(rdev: u64) -> Option<PtyEnd> {
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    match major {
        5 if minor == 2 => Some(PtyEnd::Master),
        136..=143 => Some(PtyEnd::Slave),
        _ => None,
    }
}

/// The state of a terminal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TtyState {
    /// `struct termios2`, as the kernel gives it.
    pub termios: [u8; TERMIOS2_LEN],
    /// `ws_row`, `ws_col`, `ws_xpixel`, `ws_ypixel`.
    pub winsize: [u16; 4],
    /// The session it is the controlling terminal of (0: none).
    pub sid: i32,
    /// Its foreground process group (0: none).
    pub pgrp: i32,
    /// A master's pty number (`TIOCGPTN`), -1 otherwise.
    pub index: i32,
}

fn ioctl(fd: BorrowedFd<'_>, req: u64, arg: *mut libc::c_void, what: &str) -> Result<()> {
    // SAFETY: `arg` points to a buffer of the size the request reads or writes (callers).
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req as _, arg) };
    if r != 0 {
        return Err(SysError::last(what.to_string()));
    }
    Ok(())
}

/// Read the state of terminal `fd`. The session and group are 0 when it is nobody's
/// controlling terminal (`ENOTTY`).
pub fn read(fd: BorrowedFd<'_>, end: PtyEnd) -> Result<TtyState> {
    let mut termios = [0u8; TERMIOS2_LEN];
    ioctl(fd, TCGETS2, termios.as_mut_ptr().cast(), "TCGETS2")?;
    let mut winsize = [0u16; 4];
    ioctl(fd, TIOCGWINSZ, winsize.as_mut_ptr().cast(), "TIOCGWINSZ")?;
    let mut sid: i32 = 0;
    let mut pgrp: i32 = 0;
    if ioctl(fd, TIOCGSID, (&mut sid as *mut i32).cast(), "TIOCGSID").is_ok() {
        let _ = ioctl(fd, TIOCGPGRP, (&mut pgrp as *mut i32).cast(), "TIOCGPGRP");
    } else {
        sid = 0;
    }
    let mut index: i32 = -1;
    if end == PtyEnd::Master {
        ioctl(fd, TIOCGPTN, (&mut index as *mut i32).cast(), "TIOCGPTN")?;
    }
    Ok(TtyState {
        termios,
        winsize,
        sid,
        pgrp,
        index,
    })
}

/// Set the line settings and window size of terminal `fd`.
pub fn apply(fd: BorrowedFd<'_>, termios: &[u8; TERMIOS2_LEN], winsize: [u16; 4]) -> Result<()> {
    let mut t = *termios;
    ioctl(fd, TCSETS2, t.as_mut_ptr().cast(), "TCSETS2")?;
    let mut w = winsize;
    ioctl(fd, TIOCSWINSZ, w.as_mut_ptr().cast(), "TIOCSWINSZ")
}

/// Bytes queued on terminal `fd` for its reader (`FIONREAD`): on a master, what the slave
/// side wrote and nobody read yet; on a slave, the input not read yet (in canonical mode
/// complete lines only: the kernel does not count a line still being typed).
pub fn queued(fd: BorrowedFd<'_>) -> Result<usize> {
    let mut n: libc::c_int = 0;
    ioctl(
        fd,
        FIONREAD,
        (&mut n as *mut libc::c_int).cast(),
        "FIONREAD",
    )?;
    Ok(n.max(0) as usize)
}

/// A new pty master opened from `ptmx` (an open `/dev/ptmx`), unlocked: returns its
/// number (`N` of `/dev/pts/N`).
pub fn unlock(master: BorrowedFd<'_>) -> Result<i32> {
    let mut zero: libc::c_int = 0;
    ioctl(
        master,
        TIOCSPTLCK,
        (&mut zero as *mut libc::c_int).cast(),
        "TIOCSPTLCK",
    )?;
    let mut index: i32 = -1;
    ioctl(
        master,
        TIOCGPTN,
        (&mut index as *mut i32).cast(),
        "TIOCGPTN",
    )?;
    Ok(index)
}

/// Open the slave of pty master `master` (`TIOCGPTPEER`) with open flags `flags`
/// (`O_NOCTTY` is added: it never becomes our controlling terminal).
pub fn open_peer(master: BorrowedFd<'_>, flags: i32) -> Result<std::os::fd::OwnedFd> {
    use std::os::fd::FromRawFd;
    // SAFETY: TIOCGPTPEER takes the open flags as an integer and returns a new descriptor.
    let r = unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            TIOCGPTPEER as _,
            (flags | libc::O_NOCTTY) as libc::c_ulong,
        )
    };
    if r < 0 {
        return Err(SysError::last("TIOCGPTPEER".to_string()));
    }
    // SAFETY: the ioctl returned a new descriptor that nothing else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(r) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{AsFd, FromRawFd, OwnedFd};
    use std::os::unix::fs::OpenOptionsExt;

    /// A new pty pair: settings and size set on the slave read back on both ends; the
    /// master's number is the slave's minor.
    #[test]
    fn state_reads_back_on_a_new_pty() {
        let (mut m, mut s) = (0, 0);
        // SAFETY: openpty writes two descriptors; the other pointers are NULL.
        let rc = unsafe {
            libc::openpty(
                &mut m,
                &mut s,
                std::ptr::null_mut(),
                std::ptr::null(),
                std::ptr::null(),
            )
        };
        assert_eq!(rc, 0);
        // SAFETY: openpty returned these new descriptors; we own them.
        let (m, s) = unsafe { (OwnedFd::from_raw_fd(m), OwnedFd::from_raw_fd(s)) };
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: `st` is a valid out buffer.
        assert_eq!(unsafe { libc::fstat(s.as_raw_fd(), &mut st) }, 0);
        assert_eq!(pty_end(st.st_rdev), Some(PtyEnd::Slave));
        // SAFETY: as above.
        assert_eq!(unsafe { libc::fstat(m.as_raw_fd(), &mut st) }, 0);
        assert_eq!(pty_end(st.st_rdev), Some(PtyEnd::Master));
        let before = read(s.as_fd(), PtyEnd::Slave).unwrap();
        let mut t = before.termios;
        t[12..16].copy_from_slice(&0u32.to_le_bytes()); // c_lflag: raw
        apply(s.as_fd(), &t, [33, 99, 0, 0]).unwrap();
        let after = read(m.as_fd(), PtyEnd::Master).unwrap();
        assert_eq!(after.winsize, [33, 99, 0, 0]);
        assert_eq!(&after.termios[12..16], &[0, 0, 0, 0]);
        assert_eq!(after.sid, 0, "nobody's controlling terminal");
        let path = std::fs::read_link(format!("/proc/self/fd/{}", s.as_raw_fd())).unwrap();
        assert_eq!(path.to_str().unwrap(), format!("/dev/pts/{}", after.index));
        assert_eq!(pty_end(libc::makedev(1, 3)), None);
    }

    /// A pair opened as restore does: ptmx, unlock, the peer; bytes written on one end
    /// are counted as queued on the other.
    #[test]
    fn a_new_pair_opens_and_counts_queued_bytes() {
        let m = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOCTTY)
            .open("/dev/ptmx")
            .unwrap();
        let n = unlock(m.as_fd()).unwrap();
        let s = open_peer(m.as_fd(), libc::O_RDWR).unwrap();
        let path = std::fs::read_link(format!("/proc/self/fd/{}", s.as_raw_fd())).unwrap();
        assert_eq!(path.to_str().unwrap(), format!("/dev/pts/{n}"));
        let mut t = read(s.as_fd(), PtyEnd::Slave).unwrap().termios;
        t[4..8].copy_from_slice(&0u32.to_le_bytes()); // c_oflag: no output processing
        t[12..16].copy_from_slice(&0u32.to_le_bytes()); // c_lflag: raw, no echo
        apply(m.as_fd(), &t, [24, 80, 0, 0]).unwrap();
        assert_eq!(queued(m.as_fd()).unwrap(), 0);
        // SAFETY: writing 5 bytes from a valid buffer.
        assert_eq!(
            unsafe { libc::write(s.as_raw_fd(), b"hello".as_ptr().cast(), 5) },
            5
        );
        let t0 = std::time::Instant::now();
        while queued(m.as_fd()).unwrap() != 5 {
            assert!(t0.elapsed() < std::time::Duration::from_secs(10));
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        // SAFETY: as above.
        assert_eq!(
            unsafe { libc::write(m.as_raw_fd(), b"abc".as_ptr().cast(), 3) },
            3
        );
        while queued(s.as_fd()).unwrap() != 3 {
            assert!(t0.elapsed() < std::time::Duration::from_secs(10));
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
}
