//! Anonymous-inode files (event loops and notification objects): which kind an fd is,
//! and the kind's state as `/proc/PID/fdinfo/N` shows it.
//!
//! The kernel's fdinfo lines per kind (after `pos`, `flags`, `mnt_id`, `ino`):
//!
//! | kind (link text) | lines |
//! |---|---|
//! | eventfd (`anon_inode:[eventfd]`) | `eventfd-count: HEX`, `eventfd-id: N`, `eventfd-semaphore: 0/1` (6.x) |
//! | eventpoll (`anon_inode:[eventpoll]`) | per target `tfd: FD events: HEX data: HEX pos:N ino:HEX sdev:HEX` |
//! | timerfd (`anon_inode:[timerfd]`) | `clockid: N`, `ticks: N`, `settime flags: OCTAL`, `it_value: (S, NS)`, `it_interval: (S, NS)` |
//! | signalfd (`anon_inode:[signalfd]`) | `sigmask: HEX` (bit N-1 = signal N) |
//! | inotify (`anon_inode:inotify`) | per watch `inotify wd:HEX ino:HEX sdev:HEX mask:HEX ignored_mask:HEX fhandle-bytes:HEX fhandle-type:HEX f_handle:HEX` |
//! | pidfd (`anon_inode:[pidfd]` or a pidfs file) | `Pid: N`, `NSpid: N...` |
//!
//! `it_value` is the time left (relative, even for a timer armed with an absolute time);
//! an eventpoll target's `tfd` is the fd number it was registered under in the process
//! that registered it, which may since have been closed or reused (check with
//! `kcmp(KCMP_EPOLL_TFD)`, [`same_epoll_target`]).

use crate::{procfs::FdInfo, Result, SysError};
use libc::pid_t;

/// The kind of an anonymous-inode file, from its `/proc/PID/fd/N` link text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnonKind {
    /// `eventfd(2)`.
    Eventfd,
    /// `epoll_create(2)`.
    Eventpoll,
    /// `timerfd_create(2)`.
    Timerfd,
    /// `signalfd(2)`.
    Signalfd,
    /// `inotify_init(2)`.
    Inotify,
    /// `fanotify_init(2)`.
    Fanotify,
    /// `pidfd_open(2)` / `CLONE_PIDFD`.
    Pidfd,
    /// Another anonymous inode (io_uring, userfaultfd, perf_event, bpf ...).
    Other,
}

impl AnonKind {
    /// The kind of `link` (the text of `/proc/PID/fd/N`), `None` when it is not an
    /// anonymous inode. Since 6.9 a pidfd is a pidfs file whose link reads `pidfd:[N]`.
    pub fn of_link(link: &[u8]) -> Option<AnonKind> {
        if link.starts_with(b"pidfd:") {
            return Some(AnonKind::Pidfd);
        }
        let name = link.strip_prefix(b"anon_inode:")?;
        let name = name.strip_prefix(b"[").unwrap_or(name);
        let name = name.strip_suffix(b"]").unwrap_or(name);
        Some(match name {
            b"eventfd" => AnonKind::Eventfd,
            b"eventpoll" => AnonKind::Eventpoll,
            b"timerfd" => AnonKind::Timerfd,
            b"signalfd" => AnonKind::Signalfd,
            b"inotify" => AnonKind::Inotify,
            b"fanotify" => AnonKind::Fanotify,
            b"pidfd" => AnonKind::Pidfd,
            _ => AnonKind::Other,
        })
    }

    /// Lower-case name as in the link text.
    pub fn name(self) -> &'static str {
        match self {
            AnonKind::Eventfd => "eventfd",
            AnonKind::Eventpoll => "eventpoll",
            AnonKind::Timerfd => "timerfd",
            AnonKind::Signalfd => "signalfd",
            AnonKind::Inotify => "inotify",
            AnonKind::Fanotify => "fanotify",
            AnonKind::Pidfd => "pidfd",
            AnonKind::Other => "anonymous inode",
        }
    }
}

fn field<'a>(fi: &'a FdInfo, key: &str, what: &str) -> Result<&'a str> {
    fi.all
        .get(key)
        .map(String::as_str)
        .ok_or_else(|| SysError::other(format!("{what} fdinfo"), format!("no `{key}:` line")))
}

fn hex(s: &str, what: &str) -> Result<u64> {
    u64::from_str_radix(s.trim().trim_start_matches("0x"), 16)
        .map_err(|_| SysError::other(format!("{what} fdinfo"), format!("{s:?} is not hex")))
}

fn dec<T: std::str::FromStr>(s: &str, what: &str) -> Result<T> {
    s.trim()
        .parse()
        .map_err(|_| SysError::other(format!("{what} fdinfo"), format!("{s:?} is not a number")))
}

/// An eventfd's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Eventfd {
    /// The counter.
    pub count: u64,
    /// `EFD_SEMAPHORE`.
    pub semaphore: bool,
}

/// `EFD_SEMAPHORE` (1): read takes 1 instead of the whole count.
pub const EFD_SEMAPHORE: u32 = 1;

/// The eventfd of an fdinfo. Kernels without the `eventfd-semaphore:` line (before 6.8)
/// cannot tell; they give an error, never a guess.
pub fn eventfd(fi: &FdInfo) -> Result<Eventfd> {
    let what = "eventfd";
    Ok(Eventfd {
        count: hex(field(fi, "eventfd-count", what)?, what)?,
        semaphore: dec::<u32>(field(fi, "eventfd-semaphore", what)?, what)? != 0,
    })
}

/// One target of an eventpoll instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpollTarget {
    /// The fd number it was registered under.
    pub tfd: i32,
    /// `epoll_event.events`, including `EPOLLET` (1<<31), `EPOLLONESHOT` (1<<30),
    /// `EPOLLWAKEUP` (1<<29), `EPOLLEXCLUSIVE` (1<<28); the kernel adds `EPOLLERR|EPOLLHUP`.
    pub events: u32,
    /// `epoll_event.data`.
    pub data: u64,
    /// The target file's position at registration time (informational).
    pub pos: u64,
    /// The target file's inode number.
    pub ino: u64,
    /// The target file's device (kernel encoding).
    pub sdev: u64,
}

/// Parse one `tfd:` line of an eventpoll fdinfo (the text after `tfd:`).
pub fn epoll_target(line: &str) -> Result<EpollTarget> {
    let what = "eventpoll";
    let bad = || SysError::other("eventpoll fdinfo", format!("target line {line:?}"));
    let mut t = EpollTarget {
        tfd: -1,
        events: 0,
        data: 0,
        pos: 0,
        ino: 0,
        sdev: 0,
    };
    let mut it = line.split_whitespace();
    t.tfd = dec(it.next().ok_or_else(bad)?, what)?;
    let mut seen = 0;
    while let Some(w) = it.next() {
        // "events:" "HEX" | "pos:N" | "ino:HEX" | "sdev:HEX"
        let (k, v) = match w.split_once(':') {
            Some((k, "")) => (k, it.next().ok_or_else(bad)?),
            Some((k, v)) => (k, v),
            None => return Err(bad()),
        };
        match k {
            "events" => t.events = hex(v, what)? as u32,
            "data" => t.data = hex(v, what)?,
            "pos" => t.pos = dec(v, what)?,
            "ino" => t.ino = hex(v, what)?,
            "sdev" => t.sdev = hex(v, what)?,
            _ => continue,
        }
        seen += 1;
    }
    if seen < 2 {
        return Err(bad());
    }
    Ok(t)
}

/// Every target of an eventpoll instance, in the fdinfo's order, read from the raw text
/// of `/proc/PID/fdinfo/N` (several `tfd:` lines: [`FdInfo::all`] keeps only one).
pub fn epoll_targets(text: &str) -> Result<Vec<EpollTarget>> {
    text.lines()
        .filter_map(|l| l.strip_prefix("tfd:"))
        .map(epoll_target)
        .collect()
}

/// A timerfd's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timerfd {
    /// `clockid_t`.
    pub clock: i32,
    /// Expirations not yet read.
    pub ticks: u64,
    /// `timerfd_settime` flags (`TFD_TIMER_ABSTIME` 1, `TFD_TIMER_CANCEL_ON_SET` 2).
    pub settime_flags: u32,
    /// Time left until the next expiration (0, 0: disarmed).
    pub value: (u64, u64),
    /// Period (0, 0: one-shot).
    pub interval: (u64, u64),
}

fn pair(s: &str, what: &str) -> Result<(u64, u64)> {
    let bad = || SysError::other(format!("{what} fdinfo"), format!("{s:?} is not (S, NS)"));
    let inner = s
        .trim()
        .strip_prefix('(')
        .and_then(|x| x.strip_suffix(')'))
        .ok_or_else(bad)?;
    let (a, b) = inner.split_once(',').ok_or_else(bad)?;
    Ok((dec(a, what)?, dec(b, what)?))
}

/// The timerfd of an fdinfo.
pub fn timerfd(fi: &FdInfo) -> Result<Timerfd> {
    let what = "timerfd";
    Ok(Timerfd {
        clock: dec(field(fi, "clockid", what)?, what)?,
        ticks: dec(field(fi, "ticks", what)?, what)?,
        settime_flags: u32::from_str_radix(field(fi, "settime flags", what)?.trim(), 8)
            .map_err(|_| SysError::other("timerfd fdinfo", "settime flags not octal"))?,
        value: pair(field(fi, "it_value", what)?, what)?,
        interval: pair(field(fi, "it_interval", what)?, what)?,
    })
}

/// The signal mask of a signalfd (bit N-1 = signal N).
pub fn signalfd_mask(fi: &FdInfo) -> Result<u64> {
    hex(field(fi, "sigmask", "signalfd")?, "signalfd")
}

/// One inotify watch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InotifyWatch {
    /// Watch descriptor.
    pub wd: i32,
    /// Inode watched.
    pub ino: u64,
    /// Its device (kernel encoding: major << 20 | minor).
    pub sdev: u64,
    /// Event mask (`IN_*`).
    pub mask: u32,
    /// Ignored mask.
    pub ignored_mask: u32,
    /// `file_handle.handle_type` (for `open_by_handle_at`).
    pub handle_type: i32,
    /// `file_handle.f_handle` bytes.
    pub handle: Vec<u8>,
}

/// Every watch of an inotify instance, from the raw fdinfo text.
pub fn inotify_watches(text: &str) -> Result<Vec<InotifyWatch>> {
    let what = "inotify";
    let mut out = Vec::new();
    for l in text.lines().filter_map(|l| l.strip_prefix("inotify ")) {
        let mut w = InotifyWatch {
            wd: 0,
            ino: 0,
            sdev: 0,
            mask: 0,
            ignored_mask: 0,
            handle_type: 0,
            handle: Vec::new(),
        };
        let mut nbytes = 0usize;
        for kv in l.split_whitespace() {
            let Some((k, v)) = kv.split_once(':') else {
                return Err(SysError::other("inotify fdinfo", format!("{kv:?}")));
            };
            match k {
                "wd" => w.wd = hex(v, what)? as i32,
                "ino" => w.ino = hex(v, what)?,
                "sdev" => w.sdev = hex(v, what)?,
                "mask" => w.mask = hex(v, what)? as u32,
                "ignored_mask" => w.ignored_mask = hex(v, what)? as u32,
                "fhandle-bytes" => nbytes = hex(v, what)? as usize,
                "fhandle-type" => w.handle_type = hex(v, what)? as i32,
                "f_handle" => {
                    if v.len() % 2 != 0 || v.len() > 256 {
                        return Err(SysError::other("inotify fdinfo", "bad f_handle"));
                    }
                    w.handle = (0..v.len() / 2)
                        .map(|i| u8::from_str_radix(&v[2 * i..2 * i + 2], 16))
                        .collect::<std::result::Result<_, _>>()
                        .map_err(|_| SysError::other("inotify fdinfo", "f_handle not hex"))?;
                }
                _ => {}
            }
        }
        if w.handle.len() != nbytes {
            return Err(SysError::other(
                "inotify fdinfo",
                format!(
                    "f_handle of {} bytes, fhandle-bytes {nbytes}",
                    w.handle.len()
                ),
            ));
        }
        out.push(w);
    }
    Ok(out)
}

/// The path of the inode an inotify watch of `pid` is on, as `pid` sees it: the mount of
/// the watch's device is found in `/proc/PID/mountinfo`, opened through
/// `/proc/PID/root`, and the watch's file handle opened on it (`open_by_handle_at`,
/// needs CAP_DAC_READ_SEARCH); the path is then that descriptor's `/proc/self/fd` link,
/// made relative to the process root again. A handle the kernel cannot open (the file
/// was deleted) is an error naming the watch.
pub fn watch_path(pid: pid_t, w: &InotifyWatch) -> Result<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let (major, minor) = (w.sdev >> 20, w.sdev & 0xf_ffff);
    let info = std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .map_err(|e| SysError::io(format!("read /proc/{pid}/mountinfo"), &e))?;
    let want = format!("{major}:{minor}");
    let what = || {
        format!(
            "inotify watch {} of pid {pid} (device {want}, inode {})",
            w.wd, w.ino
        )
    };
    let mut last_err = SysError::other(what(), "no mount of its device");
    for l in info.lines() {
        let f: Vec<&str> = l.split(' ').collect();
        if f.len() < 5 || f[2] != want {
            continue;
        }
        let root = format!("/proc/{pid}/root{}", f[4]);
        let Ok(c) = std::ffi::CString::new(root.clone()) else {
            continue;
        };
        // SAFETY: `c` is NUL-terminated; the descriptor is closed below. Not O_PATH:
        // open_by_handle_at does not take an O_PATH mount descriptor (EBADF).
        let mfd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
            )
        };
        if mfd < 0 {
            last_err = SysError::last(format!("{}: open {root}", what()));
            continue;
        }
        let mut fh = Vec::with_capacity(8 + w.handle.len());
        fh.extend_from_slice(&(w.handle.len() as u32).to_ne_bytes());
        fh.extend_from_slice(&w.handle_type.to_ne_bytes());
        fh.extend_from_slice(&w.handle);
        // SAFETY: `fh` is a struct file_handle of handle_bytes = the handle's length.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_open_by_handle_at,
                mfd,
                fh.as_mut_ptr(),
                libc::O_PATH | libc::O_CLOEXEC,
            )
        } as i32;
        let err = SysError::last(format!("{}: open_by_handle_at", what()));
        // SAFETY: closing our own descriptor.
        unsafe { libc::close(mfd) };
        if fd < 0 {
            last_err = err;
            continue;
        }
        let link = std::fs::read_link(format!("/proc/self/fd/{fd}"));
        // SAFETY: closing our own descriptor.
        unsafe { libc::close(fd) };
        let link = link.map_err(|e| SysError::io(what(), &e))?;
        let bytes = link.as_os_str().as_bytes().to_vec();
        // The link is seen from our root; the target's root may be elsewhere (chroot).
        let proot = std::fs::read_link(format!("/proc/{pid}/root"))
            .map_err(|e| SysError::io(what(), &e))?;
        let proot = proot.as_os_str().as_bytes();
        if proot == b"/" {
            return Ok(bytes);
        }
        if let Some(rest) = bytes.strip_prefix(proot) {
            if rest.starts_with(b"/") {
                return Ok(rest.to_vec());
            }
        }
        return Err(SysError::other(what(), "outside the process root"));
    }
    Err(last_err)
}

/// The pid a pidfd refers to (`Pid:`; -1 once that process is gone).
pub fn pidfd_pid(fi: &FdInfo) -> Result<i32> {
    dec(field(fi, "Pid", "pidfd")?, "pidfd")
}

/// The raw text of `/proc/PID/fdinfo/FD` (for the multi-line kinds).
pub fn fdinfo_text(pid: pid_t, fd: i32) -> Result<String> {
    let p = format!("/proc/{pid}/fdinfo/{fd}");
    std::fs::read_to_string(&p).map_err(|e| SysError::io(format!("read {p}"), &e))
}

const KCMP_EPOLL_TFD: i64 = 7;

/// Whether target `tfd` of the eventpoll `epfd` (both in `pid`) is still the file open as
/// fd `tfd` of `pid` (`kcmp(KCMP_EPOLL_TFD)`): false when that fd was closed or reused
/// after the registration.
pub fn same_epoll_target(pid: pid_t, epfd: i32, tfd: i32) -> Result<bool> {
    // struct kcmp_epoll_slot { __u32 efd, tfd, toff; }
    let slot: [u32; 3] = [epfd as u32, tfd as u32, 0];
    // SAFETY: `slot` is a valid 12-byte struct for the kernel to read.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_kcmp,
            pid as i64,
            pid as i64,
            KCMP_EPOLL_TFD,
            tfd as i64,
            slot.as_ptr() as i64,
        )
    };
    match rc {
        0 => Ok(true),
        r if r > 0 => Ok(false),
        _ => Err(SysError::last(format!(
            "kcmp(KCMP_EPOLL_TFD) pid {pid} epoll {epfd} target {tfd}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::procfs;

    #[test]
    fn kinds_of_links() {
        assert_eq!(
            AnonKind::of_link(b"anon_inode:[eventfd]"),
            Some(AnonKind::Eventfd)
        );
        assert_eq!(
            AnonKind::of_link(b"anon_inode:inotify"),
            Some(AnonKind::Inotify)
        );
        assert_eq!(AnonKind::of_link(b"pidfd:[1234]"), Some(AnonKind::Pidfd));
        assert_eq!(
            AnonKind::of_link(b"anon_inode:[io_uring]"),
            Some(AnonKind::Other)
        );
        assert_eq!(AnonKind::of_link(b"/dev/null"), None);
        assert_eq!(AnonKind::of_link(b"socket:[5]"), None);
    }

    #[test]
    fn texts_parse() {
        let t = epoll_targets(
            "pos:\t0\nflags:\t02\ntfd:        3 events: 80000019 data: 1122334455667788  pos:0 ino:40f sdev:10\n\
             tfd:        4 events: 40000019 data:                7  pos:0 ino:40f sdev:10\n",
        )
        .unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(
            (t[0].tfd, t[0].events, t[0].data, t[0].ino, t[0].sdev),
            (3, 0x8000_0019, 0x1122_3344_5566_7788, 0x40f, 0x10)
        );
        assert_eq!((t[1].tfd, t[1].events, t[1].data), (4, 0x4000_0019, 7));
        assert!(epoll_targets("tfd: x events: 1\n").is_err());
        assert!(epoll_targets("tfd: 3\n").is_err());
        let w = inotify_watches(
            "inotify wd:2 ino:124025 sdev:fe00000 mask:2 ignored_mask:0 fhandle-bytes:8 fhandle-type:1 f_handle:2540120013d805eb\n",
        )
        .unwrap();
        assert_eq!(w.len(), 1);
        assert_eq!(
            (w[0].wd, w[0].ino, w[0].mask, w[0].handle_type),
            (2, 0x124025, 2, 1)
        );
        assert_eq!(w[0].handle, [0x25, 0x40, 0x12, 0, 0x13, 0xd8, 0x05, 0xeb]);
        assert!(inotify_watches("inotify wd:2 fhandle-bytes:9 f_handle:00\n").is_err());
        let mut fi = FdInfo::default();
        for (k, v) in [
            ("clockid", "1"),
            ("ticks", "3"),
            ("settime flags", "01"),
            ("it_value", "(99, 963508699)"),
            ("it_interval", "(2, 500)"),
        ] {
            fi.all.insert(k.into(), v.into());
        }
        assert_eq!(
            timerfd(&fi).unwrap(),
            Timerfd {
                clock: 1,
                ticks: 3,
                settime_flags: 1,
                value: (99, 963_508_699),
                interval: (2, 500)
            }
        );
        fi.all.insert("it_value".into(), "(1 2)".into());
        assert!(timerfd(&fi).is_err());
    }

    /// The parsers read what this process's own objects hold.
    #[test]
    fn own_objects() {
        let me = std::process::id() as pid_t;
        // SAFETY: plain syscalls creating descriptors we close below.
        let (e, ep) = unsafe {
            (
                libc::eventfd(41, libc::EFD_SEMAPHORE | libc::EFD_NONBLOCK),
                libc::epoll_create1(0),
            )
        };
        assert!(e >= 0 && ep >= 0);
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLET) as u32,
            u64: 0xfeed,
        };
        // SAFETY: valid fds and event.
        assert_eq!(
            unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, e, &mut ev) },
            0
        );
        let link = procfs::readlink(&format!("/proc/{me}/fd/{e}")).unwrap();
        assert_eq!(AnonKind::of_link(&link), Some(AnonKind::Eventfd));
        let fi = procfs::fdinfo(me, e).unwrap();
        if fi.all.contains_key("eventfd-semaphore") {
            assert_eq!(
                eventfd(&fi).unwrap(),
                Eventfd {
                    count: 41,
                    semaphore: true
                }
            );
        }
        let t = epoll_targets(&fdinfo_text(me, ep).unwrap()).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].tfd, e);
        assert_eq!(t[0].data, 0xfeed);
        assert_eq!(t[0].events & libc::EPOLLET as u32, libc::EPOLLET as u32);
        assert!(same_epoll_target(me, ep, e).unwrap());
        // An inotify watch resolves to the path it was added on.
        let dir = std::env::temp_dir().join(format!("ckpt-sys-watch-{me}"));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("watched");
        std::fs::write(&file, b"x").unwrap();
        let file = std::fs::canonicalize(&file).unwrap();
        // SAFETY: plain syscall.
        let ifd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK) };
        assert!(ifd >= 0);
        let c = std::ffi::CString::new(file.to_str().unwrap()).unwrap();
        // SAFETY: valid fd and NUL-terminated path.
        let wd = unsafe {
            libc::inotify_add_watch(ifd, c.as_ptr(), libc::IN_MODIFY | libc::IN_CLOSE_WRITE)
        };
        assert!(wd > 0);
        let link = procfs::readlink(&format!("/proc/{me}/fd/{ifd}")).unwrap();
        assert_eq!(AnonKind::of_link(&link), Some(AnonKind::Inotify));
        let ws = inotify_watches(&fdinfo_text(me, ifd).unwrap()).unwrap();
        assert_eq!(ws.len(), 1);
        assert_eq!(ws[0].wd, wd);
        assert_eq!(ws[0].mask & 0xfff, libc::IN_MODIFY | libc::IN_CLOSE_WRITE);
        assert_eq!(
            watch_path(me, &ws[0]).unwrap(),
            file.to_str().unwrap().as_bytes()
        );
        // SAFETY: closing our own descriptor.
        unsafe { libc::close(ifd) };
        let _ = std::fs::remove_dir_all(&dir);
        // SAFETY: closing our own descriptors.
        unsafe {
            libc::close(e);
        }
        assert!(same_epoll_target(me, ep, e).is_err() || !same_epoll_target(me, ep, e).unwrap());
        // SAFETY: closing our own descriptor.
        unsafe {
            libc::close(ep);
        }
    }
}
