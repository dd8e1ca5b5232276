//! Anonymous-inode files that ckpt carries — eventfd, timerfd, signalfd, eventpoll,
//! inotify, pidfd — read
//! from `/proc/PID/fdinfo/N` (`ckpt_sys::anon`) into their records. Everything here is
//! read without touching the target.
//!
//! Refused (with the reason, before anything is written): an eventfd on a kernel that does
//! not show `eventfd-semaphore:` (before 6.8: the flag cannot be told), an eventpoll
//! target registered under an fd number that was closed or reused since
//! (`kcmp(KCMP_EPOLL_TFD)`: the target could not be named at restore), an inotify watch
//! whose file cannot be found again by its handle (deleted), or whose path is not under
//! the process root.

use ckpt_format::model::{
    EpollTarget, Eventfd, Eventpoll, FileRecords, Inotify, InotifyWatch, Pidfd, Signalfd, Timerfd,
};
use ckpt_sys::anon::{self, AnonKind};
use ckpt_sys::procfs::FdInfo;

/// True for the anonymous-inode kinds carried.
pub(crate) fn carried(link: &[u8]) -> bool {
    matches!(
        AnonKind::of_link(link),
        Some(
            AnonKind::Eventfd
                | AnonKind::Timerfd
                | AnonKind::Signalfd
                | AnonKind::Eventpoll
                | AnonKind::Inotify
                | AnonKind::Pidfd
        )
    )
}

/// The record of fd `fd` of `pid` (link text `link`, fdinfo `fi`) into `rec`; the reason
/// when it cannot be carried.
pub(crate) fn collect(
    pid: i32,
    fd: i32,
    link: &[u8],
    fi: &FdInfo,
    rec: &mut FileRecords,
) -> Result<(), String> {
    let ctx = |e: ckpt_sys::SysError| format!("pid {pid} fd {fd}: {e}");
    match AnonKind::of_link(link) {
        Some(AnonKind::Eventfd) => {
            let e = anon::eventfd(fi).map_err(ctx)?;
            rec.eventfd = Some(Eventfd {
                count: e.count,
                semaphore: e.semaphore,
            });
        }
        Some(AnonKind::Timerfd) => {
            let t = anon::timerfd(fi).map_err(ctx)?;
            rec.timerfd = Some(Timerfd {
                clock: t.clock,
                ticks: t.ticks,
                settime_flags: t.settime_flags,
                value_sec: t.value.0,
                value_nsec: t.value.1,
                interval_sec: t.interval.0,
                interval_nsec: t.interval.1,
            });
        }
        Some(AnonKind::Signalfd) => {
            rec.signalfd = Some(Signalfd {
                mask: anon::signalfd_mask(fi).map_err(ctx)?,
            });
        }
        Some(AnonKind::Eventpoll) => {
            let text = anon::fdinfo_text(pid, fd).map_err(ctx)?;
            let mut targets = Vec::new();
            for t in anon::epoll_targets(&text).map_err(ctx)? {
                if !anon::same_epoll_target(pid, fd, t.tfd).unwrap_or(false) {
                    return Err(format!(
                        "pid {pid} fd {fd}: eventpoll target fd {} was closed or replaced after it was registered (the target cannot be named)",
                        t.tfd
                    ));
                }
                targets.push(EpollTarget {
                    fd: t.tfd,
                    events: t.events,
                    data: t.data,
                });
            }
            rec.eventpoll = Some(Eventpoll { targets });
        }
        Some(AnonKind::Inotify) => {
            let text = anon::fdinfo_text(pid, fd).map_err(ctx)?;
            let mut watches = Vec::new();
            for w in anon::inotify_watches(&text).map_err(ctx)? {
                let path = anon::watch_path(pid, &w).map_err(ctx)?;
                watches.push(InotifyWatch {
                    wd: w.wd,
                    mask: w.mask,
                    ignored_mask: w.ignored_mask,
                    path,
                });
            }
            watches.sort_by_key(|w| w.wd);
            rec.inotify = Some(Inotify { watches });
        }
        Some(AnonKind::Pidfd) => {
            // Which pids may be carried is checked with everything else (crate::pidfd).
            let r = crate::pidfd::referent(fi)
                .filter(|&r| r > 0)
                .ok_or_else(|| format!("pid {pid} fd {fd}: a pidfd naming no live pid"))?;
            rec.pidfd = Some(Pidfd { pid: r });
        }
        _ => return Err(format!("pid {pid} fd {fd}: not a carried kind")),
    }
    Ok(())
}
