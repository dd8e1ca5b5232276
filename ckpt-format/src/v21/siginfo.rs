//! The signal state ckpt-v21 holds beside the masks: the interval timers of the
//! SIGNAL record (see [`itimer_fields`]), and queued signals: the user-visible 128-byte `siginfo_t` (what
//! capture records, [`SigInfo`]) to and from the era's 48-byte `ckpt_siginfo`
//! of a SIGPENDING record (docs/V21-STREAM.md "Queued signals").
//!
//! The era's checkpoint stored the kernel's internal `si_code`, whose upper 16
//! bits name the siginfo class, and per class a few fields:
//!
//! | class (`code >> 16`) | `pid` | `uid` | `sigval_int` | `sigval_ptr` | `utime` | `stime` |
//! |---|---|---|---|---|---|---|
//! | 0 KILL, 5 RT, 6 MESGQ | si_pid | si_uid | — | si_ptr | — | — |
//! | 4 CHLD | si_pid | si_uid | si_status | — | si_utime | si_stime |
//! | 2 POLL | si_band (32 bits) | — | si_fd | — | — | — |
//! | 3 FAULT | — | — | — | si_addr | — | — |
//! | 1 TIMER | (refused by the era's checkpoint) | | | | | |
//!
//! The user view has no class bits; they follow from `si_signo` and `si_code`
//! the way the kernel picks a siginfo layout. Codes the era kept without class
//! bits (negative ones other than SI_TIMER and SI_MESGQ: SI_QUEUE, SI_TKILL,
//! SI_ASYNCIO, SI_SIGIO, ...) have no class its restart accepts, and a siginfo
//! whose bytes are not all rebuilt from those fields cannot be held: both are
//! losses the encoder names. A mapping is accepted only when it is one-to-one
//! (decoding the entry gives back the user bytes, and the reverse).

use crate::layout::v21::TABLE as T;
use crate::model::{Itimer, Itimers, SigInfo};

/// Size of `ckpt_siginfo`.
pub(crate) const ENTRY: usize = 48;

const KILL: u32 = 0;
const TIMER: u32 = 1;
const POLL: u32 = 2;
const FAULT: u32 = 3;
const CHLD: u32 = 4;
const RT: u32 = 5;
const MESGQ: u32 = 6;

/// `si_code` values with a meaning here.
const SI_USER: i32 = 0;
const SI_KERNEL: i32 = 0x80;
const SI_TIMER: i32 = -2;
const SI_MESGQ: i32 = -3;

/// Signals whose positive `si_code`s up to a limit select a layout other than
/// KILL: (signal, highest code, class). SIGSYS's layout has no era class.
const BY_SIGNAL: [(i32, i32, Option<u32>); 8] = [
    (4, 11, Some(FAULT)),  // SIGILL
    (5, 6, Some(FAULT)),   // SIGTRAP
    (7, 5, Some(FAULT)),   // SIGBUS
    (8, 15, Some(FAULT)),  // SIGFPE
    (11, 10, Some(FAULT)), // SIGSEGV
    (17, 6, Some(CHLD)),   // SIGCHLD
    (29, 6, Some(POLL)),   // SIGPOLL
    (31, 2, None),         // SIGSYS
];
/// A positive code up to this (NSIGPOLL) on another signal is the POLL layout.
const NSIGPOLL: i32 = 6;

fn rd<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut a = [0u8; N];
    if let Some(s) = b.get(at..at + N) {
        a.copy_from_slice(s);
    }
    a
}
fn r32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(rd(b, at))
}
fn r64(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(rd(b, at))
}
fn w32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn w64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// The era's class and internal code of a user `(signo, code)`, or why it has none.
fn class_of(signo: i32, code: i32) -> Result<(u32, u32), String> {
    let class = if code == SI_USER || (SI_KERNEL..0x1_0000).contains(&code) {
        KILL
    } else if code > 0 && code < SI_KERNEL {
        match BY_SIGNAL.iter().find(|(s, max, _)| *s == signo && code <= *max) {
            Some((_, _, Some(c))) => *c,
            Some((_, _, None)) => {
                return Err(format!(
                    "signal {signo} si_code {code} (the SIGSYS layout; ckpt_siginfo has no class for it)"
                ))
            }
            None if code <= NSIGPOLL => POLL,
            None => KILL,
        }
    } else if code > 0 {
        return Err(format!(
            "signal {signo} si_code {code:#x} (a code with class bits of its own)"
        ));
    } else if code == SI_TIMER {
        return Err(format!(
            "signal {signo} si_code SI_TIMER (a posix timer's signal; the era's checkpoint refused it)"
        ));
    } else if code == SI_MESGQ {
        MESGQ
    } else {
        return Err(format!(
            "signal {signo} si_code {code} (the era kept negative codes without a class, which its restart refuses)"
        ));
    };
    let internal = match class {
        KILL => code as u32,
        _ => (class << 16) | (code as u32 & 0xffff),
    };
    Ok((class, internal))
}

/// The `ckpt_siginfo` of a user siginfo, or why it cannot hold it.
pub(crate) fn to_entry(s: &SigInfo) -> Result<[u8; ENTRY], String> {
    let e = encode_raw(s)?;
    match decode_raw(&e) {
        Ok(back) if back == *s => Ok(e),
        _ => Err(format!(
            "signal {} si_code {}: bytes beyond the fields ckpt_siginfo holds",
            s.signo(),
            s.code()
        )),
    }
}

/// The user siginfo of a `ckpt_siginfo` (48 bytes), or why it has none; only
/// an entry that [`to_entry`] gives back byte for byte is accepted.
pub(crate) fn from_entry(e: &[u8]) -> Result<SigInfo, String> {
    let s = decode_raw(e)?;
    match encode_raw(&s) {
        Ok(again) if again[..] == *e => Ok(s),
        Ok(_) => Err(format!(
            "signal {} si_code {:#x}: fields its class does not use are not zero, or a class the signal and code do not select",
            s.signo(),
            r32(e, 8)
        )),
        Err(m) => Err(m),
    }
}

fn encode_raw(s: &SigInfo) -> Result<[u8; ENTRY], String> {
    let u = &s.0;
    if u.len() != SigInfo::LEN {
        return Err(format!("a siginfo of {} bytes", u.len()));
    }
    let (signo, code) = (s.signo(), s.code());
    let (class, internal) = class_of(signo, code)?;
    let mut e = [0u8; ENTRY];
    w32(&mut e, 0, signo as u32);
    w32(&mut e, 4, r32(u, 4));
    w32(&mut e, 8, internal);
    match class {
        KILL | RT | MESGQ => {
            w32(&mut e, 12, r32(u, 16));
            w32(&mut e, 16, r32(u, 20));
            w64(&mut e, 24, r64(u, 24));
        }
        CHLD => {
            w32(&mut e, 12, r32(u, 16));
            w32(&mut e, 16, r32(u, 20));
            w32(&mut e, 20, r32(u, 24));
            w64(&mut e, 32, r64(u, 32));
            w64(&mut e, 40, r64(u, 40));
        }
        POLL => {
            w32(&mut e, 12, r64(u, 16) as u32);
            w32(&mut e, 20, r32(u, 24));
        }
        _ => w64(&mut e, 24, r64(u, 16)), // FAULT
    }
    Ok(e)
}

fn decode_raw(e: &[u8]) -> Result<SigInfo, String> {
    if e.len() != ENTRY {
        return Err(format!("an entry of {} bytes", e.len()));
    }
    let internal = r32(e, 8);
    let class = internal >> 16;
    let code = match class {
        KILL => internal as i32,
        _ => (internal & 0xffff) as u16 as i16 as i32,
    };
    let mut u = vec![0u8; SigInfo::LEN];
    w32(&mut u, 0, r32(e, 0));
    w32(&mut u, 4, r32(e, 4));
    w32(&mut u, 8, code as u32);
    match class {
        KILL | RT | MESGQ => {
            w32(&mut u, 16, r32(e, 12));
            w32(&mut u, 20, r32(e, 16));
            w64(&mut u, 24, r64(e, 24));
        }
        CHLD => {
            w32(&mut u, 16, r32(e, 12));
            w32(&mut u, 20, r32(e, 16));
            w32(&mut u, 24, r32(e, 20));
            w64(&mut u, 32, r64(e, 32));
            w64(&mut u, 40, r64(e, 40));
        }
        POLL => {
            w64(&mut u, 16, r32(e, 12) as u64);
            w32(&mut u, 24, r32(e, 20));
        }
        FAULT => w64(&mut u, 16, r64(e, 24)),
        TIMER => return Err("class SI_TIMER (the era's checkpoint never wrote it)".into()),
        c => return Err(format!("si_code {internal:#x}: unknown class {c}")),
    }
    Ok(SigInfo(u))
}

/// The SIGPENDING payload entries of a queue, and the items it cannot hold.
pub(crate) fn entries(q: &[SigInfo]) -> (Vec<u8>, u64, Vec<String>) {
    let mut out = Vec::with_capacity(q.len() * ENTRY);
    let mut mask = 0u64;
    let mut lost = Vec::new();
    for s in q {
        match to_entry(s) {
            Ok(e) => {
                out.extend_from_slice(&e);
                if (1..=64).contains(&s.signo()) {
                    mask |= 1 << (s.signo() - 1);
                }
            }
            Err(m) => lost.push(m),
        }
    }
    (out, mask, lost)
}

/// The queue of `n` entries in `b`, or the first entry that does not map
/// (its index and why).
pub(crate) fn queue(b: &[u8]) -> Result<Vec<SigInfo>, (usize, String)> {
    b.chunks(ENTRY)
        .enumerate()
        .map(|(i, e)| from_entry(e).map_err(|m| (i, m)))
        .collect()
}

/// The pending mask a queue implies (bit N-1 for signal N).
pub(crate) fn mask_of(q: &[SigInfo]) -> u64 {
    q.iter()
        .filter(|s| (1..=64).contains(&s.signo()))
        .fold(0, |m, s| m | 1 << (s.signo() - 1))
}

/// `ckpt_hdr_signal` fields of the three interval timers (real, virtual, prof):
/// (time left, period), nanoseconds [v20 itimers patch: `ktime_to_ns` of the
/// remaining real time, `timeval_to_ns` of the CPU timers].
pub(crate) const ITIMER_FIELDS: [(&str, &str); 3] = [
    ("it_real_value", "it_real_incr"),
    ("it_virt_value", "it_virt_incr"),
    ("it_prof_value", "it_prof_incr"),
];

const NS_PER_USEC: u64 = 1_000;
const NS_PER_SEC: u64 = 1_000_000_000;

/// Nanoseconds of a (seconds, microseconds) time, when it is one.
fn ns_of(t: (i64, i64)) -> Option<u64> {
    if t.0 < 0 || !(0..1_000_000).contains(&t.1) {
        return None;
    }
    (t.0 as u64)
        .checked_mul(NS_PER_SEC)?
        .checked_add(t.1 as u64 * NS_PER_USEC)
}

/// The interval timers of a SIGNAL record (whole bytes): `Some(None)` when all
/// are zero, `None` when a value is not whole microseconds (the model holds
/// microseconds; such a record is kept as it is).
pub(crate) fn itimers_of(b: &[u8]) -> Option<Option<Itimers>> {
    let st = T.st("SIGNAL");
    let mut x = Itimers::default();
    for (i, (v, p)) in ITIMER_FIELDS.iter().enumerate() {
        let t = |ns: u64| {
            (ns % NS_PER_USEC == 0 && ns / NS_PER_SEC <= i64::MAX as u64).then_some((
                (ns / NS_PER_SEC) as i64,
                ((ns % NS_PER_SEC) / NS_PER_USEC) as i64,
            ))
        };
        x.timers[i] = Itimer {
            value: t(st.get(b, v))?,
            interval: t(st.get(b, p))?,
        };
    }
    Some((x != Itimers::default()).then_some(x))
}

/// The SIGNAL fields (name, nanoseconds) of interval timers, or the first that
/// has no form there.
pub(crate) fn itimer_fields(x: &Itimers) -> Result<Vec<(&'static str, u64)>, String> {
    let names = ["real", "virtual", "prof"];
    let mut v = Vec::new();
    for (i, (val, per)) in ITIMER_FIELDS.iter().enumerate() {
        let t = &x.timers[i];
        for (f, time) in [(*val, t.value), (*per, t.interval)] {
            let ns = ns_of(time).ok_or_else(|| {
                format!(
                    "interval timer {} {f} {}.{:06} (not a time of seconds and microseconds ckpt_hdr_signal holds in nanoseconds)",
                    names[i], time.0, time.1
                )
            })?;
            v.push((f, ns));
        }
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn si(signo: i32, code: i32, words: &[(usize, u64)]) -> SigInfo {
        let mut b = vec![0u8; SigInfo::LEN];
        w32(&mut b, 0, signo as u32);
        w32(&mut b, 8, code as u32);
        for &(at, v) in words {
            w64(&mut b, at, v);
        }
        SigInfo(b)
    }

    #[test]
    fn every_class_maps_both_ways() {
        let cases = [
            // kill(2) from pid 1234 uid 1000
            (si(10, 0, &[(16, 1000 << 32 | 1234)]), 0u32),
            // SI_KERNEL
            (si(9, 0x80, &[]), 0x80),
            // SIGCHLD CLD_EXITED, status 3, utime 5, stime 7
            (
                si(17, 1, &[(16, 1000 << 32 | 77), (24, 3), (32, 5), (40, 7)]),
                (4 << 16) | 1,
            ),
            // SIGSEGV SEGV_MAPERR at an address
            (si(11, 1, &[(16, 0xdead_b000)]), (3 << 16) | 1),
            // SIGPOLL POLL_IN band 1 fd 5
            (si(29, 1, &[(16, 1), (24, 5)]), (2 << 16) | 1),
            // SI_MESGQ with a pointer value
            (
                si(34, -3, &[(16, 55), (24, 0x1234_5678_9abc)]),
                (6 << 16) | 0xfffd,
            ),
        ];
        for (s, internal) in cases {
            let e = to_entry(&s).unwrap();
            assert_eq!(r32(&e, 8), internal, "{s:?}");
            assert_eq!(from_entry(&e).unwrap(), s);
        }
    }

    #[test]
    fn what_the_era_cannot_hold_is_named() {
        for (s, why) in [
            (si(14, -2, &[]), "SI_TIMER"),
            (si(10, -6, &[(16, 1)]), "negative codes"),
            (si(35, -1, &[(16, 1), (24, 9)]), "negative codes"),
            (si(31, 1, &[]), "SIGSYS"),
            (si(10, 0, &[(48, 1)]), "beyond the fields"),
            (si(29, 1, &[(16, 1 << 40)]), "beyond the fields"),
        ] {
            let m = to_entry(&s).unwrap_err();
            assert!(m.contains(why), "{m}");
        }
        let (e, mask, lost) = entries(&[si(10, 0, &[]), si(14, -2, &[]), si(12, 0, &[])]);
        assert_eq!(e.len(), 2 * ENTRY);
        assert_eq!(mask, 1 << 9 | 1 << 11);
        assert_eq!(lost.len(), 1);
    }

    #[test]
    fn entries_that_do_not_map_one_to_one_are_refused() {
        let good = to_entry(&si(10, 0, &[(16, 7)])).unwrap();
        // A field the class does not use.
        let mut e = good;
        w64(&mut e, 40, 1);
        assert!(from_entry(&e).unwrap_err().contains("not zero"));
        // A class the signal and code do not select (CHLD bits on SIGUSR1).
        let mut e = good;
        w32(&mut e, 8, (4 << 16) | 1);
        assert!(from_entry(&e).unwrap_err().contains("do not select"));
        // SI_TIMER and an unknown class.
        w32(&mut e, 8, (1 << 16) | 0xfffe);
        assert!(from_entry(&e).unwrap_err().contains("SI_TIMER"));
        w32(&mut e, 8, 0xffff_fffa);
        assert!(from_entry(&e).unwrap_err().contains("unknown class"));
        assert!(queue(&[good, e].concat()).is_err_and(|(i, _)| i == 1));
    }

    #[test]
    fn interval_timers_map_to_nanoseconds_and_back() {
        let mut x = Itimers::default();
        x.timers[0] = Itimer {
            interval: (1, 500_000),
            value: (0, 250_000),
        };
        x.timers[2] = Itimer {
            interval: (0, 0),
            value: (3, 1),
        };
        let f = itimer_fields(&x).unwrap();
        assert_eq!(f[0], ("it_real_value", 250_000_000));
        assert_eq!(f[1], ("it_real_incr", 1_500_000_000));
        assert_eq!(f[4], ("it_prof_value", 3_000_001_000));
        let st = T.st("SIGNAL");
        let mut b = st.zeroed();
        for (n, v) in &f {
            st.put(&mut b, n, *v);
        }
        assert_eq!(itimers_of(&b), Some(Some(x)));
        assert_eq!(itimers_of(&st.zeroed()), Some(None));
        // A kernel's remaining real time in nanoseconds: not whole microseconds.
        st.put(&mut b, "it_real_value", 1_500);
        assert_eq!(itimers_of(&b), None);
        x.timers[1].value = (-1, 0);
        assert!(itimer_fields(&x)
            .unwrap_err()
            .contains("virtual it_virt_value -1"));
    }
}
