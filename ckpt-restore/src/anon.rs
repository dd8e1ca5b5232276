//! Creating anonymous-inode objects (eventfd, timerfd, signalfd, epoll) with a captured
//! state, in the restorer itself: the object is then staged like any open file and
//! inherited by the restored process, which shares its open file description.
//!
//! What each creator sets, and how (the state as `ckpt_sys::anon` reads it from fdinfo):
//!
//! | object | created by | state |
//! |---|---|---|
//! | eventfd | `eventfd(0, EFD_SEMAPHORE?)` | counter by `write(count)` (a counter of 0 is not written) |
//! | timerfd | `timerfd_create(clock)` | `timerfd_settime` with the time left (relative; for `TFD_TIMER_ABSTIME`, now + left on the same clock, with the captured flags), pending expirations by `ioctl(TFD_IOC_SET_TICKS)` |
//! | signalfd | `signalfd(-1, mask)` | the mask (reads dequeue from the reading process, not the creator) |
//! | inotify | `inotify_init1` | every watch by `inotify_add_watch(path, mask)` under its captured descriptor ([`make_inotify`]); queued events are not re-created |
//! | epoll | `epoll_create1(0)` | empty: targets are registered by `epoll_ctl(ADD)` *in the restored process*, after its fd table is in place, because an epoll item is keyed by (file, fd number) and fdinfo shows that number; [`epoll_event_bytes`] is the argument |
//!
//! `O_NONBLOCK` is passed at creation; close-on-exec belongs to the fd and is set when the
//! fd is installed.

use std::io;
use std::os::fd::{FromRawFd, OwnedFd};

fn fd_or_err(rc: i32, what: &str) -> io::Result<OwnedFd> {
    if rc < 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("{what}: {e}")));
    }
    // SAFETY: `rc` is a descriptor the kernel just gave us and nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(rc) })
}

/// An eventfd holding `count`, with `EFD_SEMAPHORE` when `semaphore`.
pub fn make_eventfd(count: u64, semaphore: bool, nonblock: bool) -> io::Result<OwnedFd> {
    if count == u64::MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "eventfd counter 2^64-1 is not a value an eventfd can hold",
        ));
    }
    let mut flags = 0;
    if semaphore {
        flags |= libc::EFD_SEMAPHORE;
    }
    if nonblock {
        flags |= libc::EFD_NONBLOCK;
    }
    // SAFETY: plain syscall.
    let fd = fd_or_err(unsafe { libc::eventfd(0, flags) }, "eventfd")?;
    if count > 0 {
        let b = count.to_ne_bytes();
        // SAFETY: writing 8 bytes from a valid buffer to our own descriptor; the counter is
        // 0, so a value below 2^64-1 never blocks.
        let n = unsafe { libc::write(std::os::fd::AsRawFd::as_raw_fd(&fd), b.as_ptr().cast(), 8) };
        if n != 8 {
            return Err(io::Error::other(format!(
                "eventfd counter {count}: {}",
                io::Error::last_os_error()
            )));
        }
    }
    Ok(fd)
}

/// `TFD_TIMER_ABSTIME`.
pub const TFD_TIMER_ABSTIME: u32 = 1;
/// `TFD_IOC_SET_TICKS` = `_IOW('T', 0, u64)`.
const TFD_IOC_SET_TICKS: u64 = 0x4008_5400;

/// A timerfd on `clock` armed with `value` (time left, seconds and nanoseconds) and
/// `interval`, with `ticks` expirations waiting to be read.
pub fn make_timerfd(
    clock: i32,
    nonblock: bool,
    settime_flags: u32,
    value: (u64, u64),
    interval: (u64, u64),
    ticks: u64,
) -> io::Result<OwnedFd> {
    let ts = |(s, ns): (u64, u64)| -> io::Result<libc::timespec> {
        if ns >= 1_000_000_000 || s > i64::MAX as u64 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("timerfd time ({s}, {ns}) out of range"),
            ));
        }
        Ok(libc::timespec {
            tv_sec: s as i64,
            tv_nsec: ns as i64,
        })
    };
    let flags = if nonblock { libc::TFD_NONBLOCK } else { 0 };
    // SAFETY: plain syscall.
    let fd = fd_or_err(
        unsafe { libc::timerfd_create(clock, flags) },
        &format!("timerfd_create(clock {clock})"),
    )?;
    let raw = std::os::fd::AsRawFd::as_raw_fd(&fd);
    let mut its = libc::itimerspec {
        it_interval: ts(interval)?,
        it_value: ts(value)?,
    };
    // A periodic timer caught between an expiration and its re-arming shows no time
    // left (the expiration is counted in `ticks`): the next one is a period away.
    let value = if value == (0, 0) { interval } else { value };
    its.it_value = ts(value)?;
    let armed = value != (0, 0);
    if armed {
        if settime_flags & TFD_TIMER_ABSTIME != 0 {
            let mut now = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            // SAFETY: `now` is a valid out pointer.
            if unsafe { libc::clock_gettime(clock, &mut now) } != 0 {
                return Err(io::Error::last_os_error());
            }
            let ns = now.tv_nsec + its.it_value.tv_nsec;
            its.it_value.tv_sec = now
                .tv_sec
                .checked_add(its.it_value.tv_sec)
                .and_then(|s| s.checked_add(ns / 1_000_000_000))
                .ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, "timerfd time overflows")
                })?;
            its.it_value.tv_nsec = ns % 1_000_000_000;
        }
        // SAFETY: `its` is a valid itimerspec; no old value wanted.
        let rc =
            unsafe { libc::timerfd_settime(raw, settime_flags as i32, &its, std::ptr::null_mut()) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("timerfd_settime: {e}")));
        }
    }
    if ticks > 0 {
        // SAFETY: TFD_IOC_SET_TICKS reads one u64 from the pointer.
        let rc = unsafe { libc::ioctl(raw, TFD_IOC_SET_TICKS as _, &ticks as *const u64) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(
                e.kind(),
                format!("timerfd: {ticks} expirations to set back (TFD_IOC_SET_TICKS needs CONFIG_CHECKPOINT_RESTORE): {e}"),
            ));
        }
    }
    Ok(fd)
}

/// A signalfd for the signals of `mask` (bit N-1 = signal N).
pub fn make_signalfd(mask: u64, nonblock: bool) -> io::Result<OwnedFd> {
    let flags = if nonblock { libc::SFD_NONBLOCK } else { 0 };
    // The kernel reads sizeof(kernel sigset_t) = 8 bytes; a libc sigset_t is larger and
    // starts with the same 64 bits.
    // SAFETY: an all-zero sigset_t is the empty set.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    for sig in 1..=64 {
        if mask & (1u64 << (sig - 1)) != 0 {
            // SAFETY: `set` is valid; out-of-range signals just fail.
            unsafe { libc::sigaddset(&mut set, sig) };
        }
    }
    // SAFETY: `set` is a valid sigset_t.
    fd_or_err(unsafe { libc::signalfd(-1, &set, flags) }, "signalfd")
}

/// An empty epoll instance.
pub fn make_epoll() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall.
    fd_or_err(unsafe { libc::epoll_create1(0) }, "epoll_create1")
}

/// An inotify instance with `watches` (watch descriptor, path, mask) under their
/// captured watch descriptors. The kernel hands out descriptors in increasing order
/// (cyclically), so each path is added, and removed and added again while the kernel
/// gives a smaller descriptor than the captured one; a larger one is an error (a
/// descriptor the kernel will not give). Events queued at capture time are not re-created.
pub fn make_inotify(nonblock: bool, watches: &[(i32, &[u8], u32)]) -> io::Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    let flags = if nonblock { libc::IN_NONBLOCK } else { 0 };
    // SAFETY: plain syscall.
    let fd = fd_or_err(unsafe { libc::inotify_init1(flags) }, "inotify_init1")?;
    let mut sorted: Vec<&(i32, &[u8], u32)> = watches.iter().collect();
    sorted.sort_by_key(|w| w.0);
    for &&(wd, path, mask) in &sorted {
        let c = std::ffi::CString::new(path).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, "NUL in an inotify watch path")
        })?;
        let show = String::from_utf8_lossy(path);
        loop {
            // SAFETY: valid descriptor and NUL-terminated path.
            let got = unsafe { libc::inotify_add_watch(fd.as_raw_fd(), c.as_ptr(), mask) };
            if got < 0 {
                let e = io::Error::last_os_error();
                return Err(io::Error::new(
                    e.kind(),
                    format!("inotify watch {wd} on {show}: {e}"),
                ));
            }
            if got == wd {
                break;
            }
            if got > wd || sorted.iter().any(|w| w.0 == got) {
                return Err(io::Error::other(format!(
                    "inotify watch {wd} on {show}: the kernel gave descriptor {got} (the path is watched twice, or {wd} cannot be had)"
                )));
            }
            // SAFETY: removing the watch we just added.
            unsafe { libc::inotify_rm_watch(fd.as_raw_fd(), got) };
        }
    }
    Ok(fd)
}

/// True when `r` holds the state of an anonymous-inode kind [`create`] re-creates.
pub fn carried(r: &ckpt_format::model::FileRecords) -> bool {
    r.eventfd.is_some()
        || r.timerfd.is_some()
        || r.signalfd.is_some()
        || r.eventpoll.is_some()
        || r.inotify.is_some()
}

/// The object a file's record describes, created here (its epoll targets are
/// registered later, in the restored process). `open_path` opens a watched path (in the
/// restore root) as an `O_PATH` descriptor; inotify adds the watch through it.
pub fn create(
    r: &ckpt_format::model::FileRecords,
    nonblock: bool,
    open_path: impl Fn(&[u8]) -> io::Result<OwnedFd>,
) -> io::Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    if let Some(e) = &r.eventfd {
        return make_eventfd(e.count, e.semaphore, nonblock);
    }
    if let Some(t) = &r.timerfd {
        return make_timerfd(
            t.clock,
            nonblock,
            t.settime_flags,
            (t.value_sec, t.value_nsec),
            (t.interval_sec, t.interval_nsec),
            t.ticks,
        );
    }
    if let Some(s) = &r.signalfd {
        return make_signalfd(s.mask, nonblock);
    }
    if r.eventpoll.is_some() {
        return make_epoll();
    }
    if let Some(i) = &r.inotify {
        let mut held = Vec::with_capacity(i.watches.len());
        let mut paths = Vec::with_capacity(i.watches.len());
        for w in &i.watches {
            let o = open_path(&w.path)?;
            paths.push(format!("/proc/self/fd/{}", o.as_raw_fd()).into_bytes());
            held.push(o);
        }
        let ws: Vec<(i32, &[u8], u32)> = i
            .watches
            .iter()
            .zip(&paths)
            .map(|(w, p)| (w.wd, p.as_slice(), w.mask))
            .collect();
        return make_inotify(nonblock, &ws);
    }
    Err(io::Error::new(
        io::ErrorKind::InvalidInput,
        "no anonymous-inode record to create the file from",
    ))
}

/// The x86-64 `struct epoll_event` (packed: u32 events, u64 data) for `epoll_ctl`.
pub fn epoll_event_bytes(events: u32, data: u64) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[..4].copy_from_slice(&events.to_le_bytes());
    b[4..].copy_from_slice(&data.to_le_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use ckpt_sys::anon;
    use std::os::fd::AsRawFd;

    fn info(fd: &OwnedFd) -> ckpt_sys::procfs::FdInfo {
        ckpt_sys::procfs::fdinfo(std::process::id() as i32, fd.as_raw_fd()).unwrap()
    }

    #[test]
    fn eventfd_round_trips_through_fdinfo() {
        for (count, sem, nb) in [
            (0, false, false),
            (5, true, true),
            (u64::MAX - 1, false, true),
        ] {
            let fd = make_eventfd(count, sem, nb).unwrap();
            let fi = info(&fd);
            assert_eq!(
                anon::eventfd(&fi).unwrap(),
                anon::Eventfd {
                    count,
                    semaphore: sem
                }
            );
            assert_eq!(fi.flags & libc::O_NONBLOCK as u32 != 0, nb);
        }
        assert!(make_eventfd(u64::MAX, false, false).is_err());
    }

    #[test]
    fn timerfd_round_trips_through_fdinfo() {
        let fd = make_timerfd(libc::CLOCK_MONOTONIC, true, 0, (100, 0), (2, 500), 3).unwrap();
        let t = anon::timerfd(&info(&fd)).unwrap();
        assert_eq!(
            (t.clock, t.ticks, t.settime_flags, t.interval),
            (1, 3, 0, (2, 500))
        );
        assert!(t.value.0 == 99 || t.value == (100, 0), "{:?}", t.value);
        let fd = make_timerfd(
            libc::CLOCK_REALTIME,
            false,
            TFD_TIMER_ABSTIME,
            (500, 0),
            (0, 0),
            0,
        )
        .unwrap();
        let t = anon::timerfd(&info(&fd)).unwrap();
        assert_eq!((t.clock, t.ticks, t.settime_flags), (0, 0, 1));
        assert!(t.value.0 == 499 || t.value == (500, 0), "{:?}", t.value);
        let fd = make_timerfd(libc::CLOCK_BOOTTIME, false, 0, (0, 0), (0, 0), 1).unwrap();
        let t = anon::timerfd(&info(&fd)).unwrap();
        assert_eq!(
            (t.clock, t.ticks, t.value, t.interval),
            (7, 1, (0, 0), (0, 0))
        );
        assert!(make_timerfd(
            libc::CLOCK_MONOTONIC,
            false,
            0,
            (1, 1_000_000_000),
            (0, 0),
            0
        )
        .is_err());
    }

    #[test]
    fn inotify_gets_the_captured_watch_descriptors() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"a").unwrap();
        std::fs::write(&b, b"b").unwrap();
        let (pa, pb) = (
            a.to_str().unwrap().as_bytes(),
            b.to_str().unwrap().as_bytes(),
        );
        let modify = libc::IN_MODIFY;
        let fd = make_inotify(true, &[(4, pb, modify | libc::IN_ATTRIB), (1, pa, modify)]).unwrap();
        let me = std::process::id() as i32;
        let mut w = anon::inotify_watches(&anon::fdinfo_text(me, fd.as_raw_fd()).unwrap()).unwrap();
        w.sort_by_key(|w| w.wd);
        assert_eq!(w.len(), 2);
        assert_eq!((w[0].wd, w[0].mask & 0xfff), (1, modify));
        assert_eq!((w[1].wd, w[1].mask & 0xfff), (4, modify | libc::IN_ATTRIB));
        assert_eq!(anon::watch_path(me, &w[1]).unwrap(), pb);
        assert_ne!(info(&fd).flags & libc::O_NONBLOCK as u32, 0);
        // The same path twice cannot have two descriptors.
        assert!(make_inotify(false, &[(1, pa, modify), (2, pa, modify)]).is_err());
    }

    #[test]
    fn signalfd_and_epoll() {
        let mask = (1u64 << (libc::SIGUSR1 - 1)) | (1u64 << 35);
        let fd = make_signalfd(mask, true).unwrap();
        let fi = info(&fd);
        assert_eq!(anon::signalfd_mask(&fi).unwrap(), mask);
        assert_ne!(fi.flags & libc::O_NONBLOCK as u32, 0);
        let ep = make_epoll().unwrap();
        let b = epoll_event_bytes(0x8000_0001, 0x1122_3344_5566_7788);
        // SAFETY: `b` has the layout of the x86-64 packed epoll_event.
        let rc = unsafe {
            libc::epoll_ctl(
                ep.as_raw_fd(),
                libc::EPOLL_CTL_ADD,
                fd.as_raw_fd(),
                b.as_ptr() as *mut _,
            )
        };
        assert_eq!(rc, 0);
        let text = anon::fdinfo_text(std::process::id() as i32, ep.as_raw_fd()).unwrap();
        let t = anon::epoll_targets(&text).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(
            (t[0].tfd, t[0].data),
            (fd.as_raw_fd(), 0x1122_3344_5566_7788)
        );
        assert_eq!(t[0].events & 0x8000_0001, 0x8000_0001);
    }
}
