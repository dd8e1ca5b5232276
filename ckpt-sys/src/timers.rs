//! The timers of a stopped process, read by calls injected into it: the three interval
//! timers (`getitimer`: `ITIMER_REAL` — also `alarm` —, `ITIMER_VIRTUAL`, `ITIMER_PROF`)
//! and every POSIX timer of `/proc/PID/timers` with its time left, period and overrun
//! (`timer_gettime`, `timer_getoverrun`).
//!
//! Layouts (x86-64): `struct itimerval` = 4 × i64 (interval sec, usec, value sec, usec);
//! `struct itimerspec` = 4 × i64 (interval sec, nsec, value sec, nsec).

use crate::attrs::{self, PosixTimer};
use crate::inject::Injector;
use crate::{mem, Result, SysError};
use libc::pid_t;

/// One interval timer (`struct itimerval`): period and time left, seconds and
/// microseconds. Disarmed when the time left is zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Itimer {
    /// Period.
    pub interval: (i64, i64),
    /// Time left until the next expiration.
    pub value: (i64, i64),
}

impl Itimer {
    /// Armed (time left not zero).
    pub fn armed(&self) -> bool {
        self.value != (0, 0)
    }
}

/// A POSIX timer with its state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PosixTimerState {
    /// Id, clock, notification as `/proc/PID/timers` lists them.
    pub timer: PosixTimer,
    /// Period, seconds and nanoseconds.
    pub interval: (i64, i64),
    /// Time left, seconds and nanoseconds (0, 0: disarmed).
    pub value: (i64, i64),
    /// Expirations not delivered while the last signal was pending (`timer_getoverrun`).
    pub overrun: i32,
}

/// Every timer of a process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Timers {
    /// `ITIMER_REAL`, `ITIMER_VIRTUAL`, `ITIMER_PROF`.
    pub itimers: [Itimer; 3],
    /// POSIX timers by ascending id.
    pub posix: Vec<PosixTimerState>,
}

fn i64_at(b: &[u8], off: usize) -> i64 {
    b.get(off..off + 8)
        .and_then(|s| s.try_into().ok())
        .map(i64::from_le_bytes)
        .unwrap_or(0)
}

/// Read every timer of `pid` through `inj` (a stopped thread of it) with 32 bytes of its
/// memory at `scratch` to receive the results.
pub fn read(inj: &mut Injector, pid: pid_t, scratch: u64) -> Result<Timers> {
    let mut out = Timers::default();
    let mut b = [0u8; 32];
    for (which, slot) in out.itimers.iter_mut().enumerate() {
        let rc = inj.syscall(libc::SYS_getitimer, &[which as u64, scratch])?;
        if rc != 0 {
            return Err(SysError::errno(
                format!("injected getitimer({which}) in pid {pid}"),
                -rc as i32,
            ));
        }
        mem::read_remote(pid, scratch, &mut b)?;
        *slot = Itimer {
            interval: (i64_at(&b, 0), i64_at(&b, 8)),
            value: (i64_at(&b, 16), i64_at(&b, 24)),
        };
    }
    let mut list = attrs::posix_timers(pid)?;
    list.sort_by_key(|t| t.id);
    for t in list {
        let rc = inj.syscall(libc::SYS_timer_gettime, &[t.id as u64, scratch])?;
        if rc != 0 {
            return Err(SysError::errno(
                format!("injected timer_gettime({}) in pid {pid}", t.id),
                -rc as i32,
            ));
        }
        mem::read_remote(pid, scratch, &mut b)?;
        let overrun = inj.syscall(libc::SYS_timer_getoverrun, &[t.id as u64])?;
        if overrun < 0 {
            return Err(SysError::errno(
                format!("injected timer_getoverrun({}) in pid {pid}", t.id),
                -overrun as i32,
            ));
        }
        out.posix.push(PosixTimerState {
            timer: t,
            interval: (i64_at(&b, 0), i64_at(&b, 8)),
            value: (i64_at(&b, 16), i64_at(&b, 24)),
            overrun: overrun as i32,
        });
    }
    Ok(out)
}
