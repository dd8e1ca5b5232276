//! Re-creating timers in a restored process: the arguments of the injected calls.
//!
//! A POSIX timer is re-created under its own id: `prctl(PR_TIMER_CREATE_RESTORE_IDS,
//! ON)` (Linux 6.15+) makes `timer_create` take the id found in `*timer_id` instead of
//! the next free one; then `timer_create(clock, &sigevent, &id)`, `timer_settime(id, 0,
//! &itimerspec)` with the time that was left, and `PR_TIMER_CREATE_RESTORE_IDS, OFF`.
//! Interval timers are `setitimer(which, &itimerval, NULL)`. The overrun count of a
//! POSIX timer cannot be set: it restarts at 0.
//!
//! x86-64 layouts: `struct sigevent` is 64 bytes (`sigev_value` u64 at 0, `sigev_signo`
//! i32 at 8, `sigev_notify` i32 at 12, the thread id of `SIGEV_THREAD_ID` i32 at 16);
//! `struct itimerspec` and `struct itimerval` are four i64 (interval, then value; nano-
//! or microseconds).

/// `prctl` option: `timer_create` takes the requested id.
pub const PR_TIMER_CREATE_RESTORE_IDS: u64 = 77;
/// Its arguments.
pub const RESTORE_IDS_OFF: u64 = 0;
/// Its arguments.
pub const RESTORE_IDS_ON: u64 = 1;

/// `SIGEV_SIGNAL`.
pub const SIGEV_SIGNAL: i32 = 0;
/// `SIGEV_NONE`.
pub const SIGEV_NONE: i32 = 1;
/// `SIGEV_THREAD_ID` (the signal goes to one thread).
pub const SIGEV_THREAD_ID: i32 = 4;

/// A `struct sigevent`.
pub fn sigevent_bytes(value: u64, signo: i32, notify: i32, tid: i32) -> [u8; 64] {
    let mut b = [0u8; 64];
    b[0..8].copy_from_slice(&value.to_le_bytes());
    b[8..12].copy_from_slice(&signo.to_le_bytes());
    b[12..16].copy_from_slice(&notify.to_le_bytes());
    b[16..20].copy_from_slice(&tid.to_le_bytes());
    b
}

/// A `struct itimerspec` or `struct itimerval`: interval, then the time left.
pub fn timer_bytes(interval: (i64, i64), value: (i64, i64)) -> [u8; 32] {
    let mut b = [0u8; 32];
    for (i, v) in [interval.0, interval.1, value.0, value.1]
        .iter()
        .enumerate()
    {
        b[i * 8..i * 8 + 8].copy_from_slice(&v.to_le_bytes());
    }
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes make the timer `/proc/self/timers` and `timer_gettime` then describe.
    #[test]
    fn a_timer_made_from_the_bytes_reads_back() {
        let se = sigevent_bytes(0xabcd, libc::SIGUSR2, SIGEV_SIGNAL, 0);
        let mut id: i32 = 0;
        // SAFETY: `se` is a 64-byte sigevent, `id` a valid out pointer.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_timer_create,
                libc::CLOCK_MONOTONIC,
                se.as_ptr(),
                &mut id as *mut i32,
            )
        };
        assert_eq!(rc, 0);
        let its = timer_bytes((4, 5), (700, 6));
        // SAFETY: `its` is a 32-byte itimerspec; no old value.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_timer_settime,
                id,
                0,
                its.as_ptr(),
                std::ptr::null::<u8>(),
            )
        };
        assert_eq!(rc, 0);
        let me = std::process::id() as i32;
        let t = ckpt_sys::attrs::posix_timers(me).unwrap();
        let t = t.iter().find(|t| t.id == id).unwrap();
        assert_eq!((t.signo, t.value, t.clock), (libc::SIGUSR2, 0xabcd, 1));
        assert_eq!(t.notify, ckpt_sys::attrs::Notify::Signal);
        let mut back = [0u8; 32];
        // SAFETY: `back` receives an itimerspec.
        let rc = unsafe { libc::syscall(libc::SYS_timer_gettime, id, back.as_mut_ptr()) };
        assert_eq!(rc, 0);
        assert_eq!(&back[0..16], &its[0..16], "interval");
        let left = i64::from_le_bytes(back[16..24].try_into().unwrap());
        assert!((690..=700).contains(&left));
        // SAFETY: deleting our own timer.
        assert_eq!(unsafe { libc::syscall(libc::SYS_timer_delete, id) }, 0);
    }
}
