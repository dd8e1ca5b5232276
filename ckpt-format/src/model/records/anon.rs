//! Typed records of anonymous-inode files an event loop holds: eventfd, timerfd, signalfd,
//! eventpoll, inotify (FILE-owned, codes 0x0442-0x0446).

use super::{hex, Record};

/// An eventfd's counter and mode (`eventfd(2)`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Eventfd {
    /// The counter.
    pub count: u64,
    /// `EFD_SEMAPHORE`: a read takes 1, not the whole count.
    pub semaphore: bool,
}

impl Record for Eventfd {
    const NAME: &'static str = "eventfd";
    const CODE: u32 = 0x0442;
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("count", self.count.to_string()),
            ("semaphore", u8::from(self.semaphore).to_string()),
        ]
    }
}

/// A timerfd (`timerfd_create(2)`): its clock, the expirations not yet read, the flags of
/// its last `timerfd_settime`, the time left and the period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Timerfd {
    /// `clockid_t`.
    pub clock: i32,
    /// `TFD_TIMER_ABSTIME` (1), `TFD_TIMER_CANCEL_ON_SET` (2).
    pub settime_flags: u32,
    /// Expirations not yet read.
    pub ticks: u64,
    /// Time left until the next expiration, seconds (0 and 0 nanoseconds: disarmed).
    pub value_sec: u64,
    /// Its nanoseconds.
    pub value_nsec: u64,
    /// Period, seconds (0 and 0: one-shot).
    pub interval_sec: u64,
    /// Its nanoseconds.
    pub interval_nsec: u64,
}

impl Record for Timerfd {
    const NAME: &'static str = "timerfd";
    const CODE: u32 = 0x0443;
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("clock", self.clock.to_string()),
            ("settime_flags", hex(self.settime_flags as u64)),
            ("ticks", self.ticks.to_string()),
            (
                "value",
                format!("{}.{:09}", self.value_sec, self.value_nsec),
            ),
            (
                "interval",
                format!("{}.{:09}", self.interval_sec, self.interval_nsec),
            ),
        ]
    }
}

/// A signalfd's mask (`signalfd(2)`; bit N-1 = signal N).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Signalfd {
    /// The signals it reads.
    pub mask: u64,
}

impl Record for Signalfd {
    const NAME: &'static str = "signalfd";
    const CODE: u32 = 0x0444;
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![("mask", hex(self.mask))]
    }
}

/// One target of an eventpoll instance.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EpollTarget {
    /// The fd number it is registered under, in the first task of the image holding the
    /// instance.
    pub fd: i32,
    /// `epoll_event.events` (with `EPOLLET`, `EPOLLONESHOT`, `EPOLLEXCLUSIVE`, ...).
    pub events: u32,
    /// `epoll_event.data`.
    pub data: u64,
}

/// An eventpoll instance (`epoll_create(2)`) with its targets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Eventpoll {
    /// Targets in fdinfo order.
    pub targets: Vec<EpollTarget>,
}

impl Record for Eventpoll {
    const NAME: &'static str = "eventpoll";
    const CODE: u32 = 0x0445;
    fn fields(&self) -> Vec<(&'static str, String)> {
        let t: Vec<String> = self
            .targets
            .iter()
            .map(|t| format!("{}:{:#x}:{:#x}", t.fd, t.events, t.data))
            .collect();
        vec![("targets", format!("[{}]", t.join(" ")))]
    }
}

/// One inotify watch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct InotifyWatch {
    /// Watch descriptor.
    pub wd: i32,
    /// Event mask (`IN_*`).
    pub mask: u32,
    /// Ignored mask.
    pub ignored_mask: u32,
    /// Path of the watched inode, as the task sees it.
    pub path: Vec<u8>,
}

/// An inotify instance (`inotify_init(2)`) with its watches (queued events are not kept).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Inotify {
    /// Watches by ascending descriptor.
    pub watches: Vec<InotifyWatch>,
}

impl Record for Inotify {
    const NAME: &'static str = "inotify";
    const CODE: u32 = 0x0446;
    fn fields(&self) -> Vec<(&'static str, String)> {
        let w: Vec<String> = self
            .watches
            .iter()
            .map(|w| {
                format!(
                    "{}:{:#x}:{}",
                    w.wd,
                    w.mask,
                    String::from_utf8_lossy(&w.path)
                )
            })
            .collect();
        vec![("watches", format!("[{}]", w.join(" ")))]
    }
}
