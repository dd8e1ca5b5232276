//! Typed records of a process's timers and attributes (codes 0x0425-0x042f for
//! tasks, 0x0460-0x046f for threads): interval timers, POSIX timers, process
//! attributes, per-thread scheduling attributes.

use super::{hex, Record};

/// A time as seconds and a sub-second part (micro- or nanoseconds, per field).
pub type Time = (i64, i64);

fn time(t: Time, digits: usize) -> String {
    format!("{}.{:0digits$}", t.0, t.1)
}

/// One interval timer (`setitimer(2)`, `struct itimerval`): period and time left, both
/// as seconds and microseconds. Disarmed when the time left is zero.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Itimer {
    /// Period.
    pub interval: Time,
    /// Time left until the next expiration.
    pub value: Time,
}

/// The three interval timers of a process: `ITIMER_REAL` (also `alarm(2)`),
/// `ITIMER_VIRTUAL`, `ITIMER_PROF`. Written when at least one is armed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Itimers {
    /// `ITIMER_REAL`, `ITIMER_VIRTUAL`, `ITIMER_PROF`, in that order.
    pub timers: [Itimer; 3],
}

impl Record for Itimers {
    const NAME: &'static str = "itimers";
    const CODE: u32 = 0x0425;
    fn fields(&self) -> Vec<(&'static str, String)> {
        let names = ["real", "virtual", "prof"];
        names
            .iter()
            .zip(self.timers.iter())
            .map(|(n, t)| {
                (
                    *n,
                    format!("left {} interval {}", time(t.value, 6), time(t.interval, 6)),
                )
            })
            .collect()
    }
}

/// One POSIX timer (`timer_create(2)`) with its state at capture.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PosixTimer {
    /// The timer id (`timer_t` as the kernel numbers it).
    pub id: i32,
    /// `clockid_t` (negative: a CPU clock of a process or thread, which it names).
    pub clock: i32,
    /// `sigev_notify` as the kernel holds it (`SIGEV_SIGNAL` 0, `SIGEV_NONE` 1,
    /// `SIGEV_THREAD` 2, or'ed with `SIGEV_THREAD_ID` 4).
    pub notify: i32,
    /// `sigev_signo`.
    pub signo: i32,
    /// `sigev_value`.
    pub value: u64,
    /// The thread the signal goes to with `SIGEV_THREAD_ID` (0 otherwise).
    pub tid: i32,
    /// `timer_getoverrun` at capture (the kernel has no setter: restarts at 0).
    pub overrun: i32,
    /// Period, seconds and nanoseconds.
    pub interval: Time,
    /// Time left, seconds and nanoseconds (0, 0: disarmed).
    pub left: Time,
}

/// Every POSIX timer of a process, by ascending id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PosixTimers {
    /// The timers.
    pub timers: Vec<PosixTimer>,
}

impl PosixTimers {
    /// Size of one encoded timer.
    pub const ENTRY: usize = 64;
}

impl Record for PosixTimers {
    const NAME: &'static str = "posix_timers";
    const CODE: u32 = 0x0426;
    fn fields(&self) -> Vec<(&'static str, String)> {
        let v: Vec<String> = self
            .timers
            .iter()
            .map(|t| {
                format!(
                    "{{id={} clock={} notify={} signo={} value={} tid={} overrun={} left={} interval={}}}",
                    t.id,
                    t.clock,
                    t.notify,
                    t.signo,
                    hex(t.value),
                    t.tid,
                    t.overrun,
                    time(t.left, 9),
                    time(t.interval, 9)
                )
            })
            .collect();
        vec![("timers", format!("[{}]", v.join(" ")))]
    }
}

/// Process-wide attributes a restored process would otherwise inherit from ckpt-restore.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ProcessAttrs {
    /// `/proc/PID/oom_score_adj` (-1000..=1000).
    pub oom_score_adj: i32,
    /// `PR_GET_DUMPABLE` (0, 1 or 2).
    pub dumpable: u32,
    /// `/proc/PID/coredump_filter`.
    pub coredump_filter: u64,
    /// `PR_GET_CHILD_SUBREAPER` (0 or 1).
    pub child_subreaper: u32,
    /// `PR_GET_THP_DISABLE` as returned (0: huge pages allowed; bit 0 disabled, the
    /// higher bits its flags).
    pub thp_disable: u32,
}

impl Record for ProcessAttrs {
    const NAME: &'static str = "process_attrs";
    const CODE: u32 = 0x0427;
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("oom_score_adj", self.oom_score_adj.to_string()),
            ("dumpable", self.dumpable.to_string()),
            ("coredump_filter", hex(self.coredump_filter)),
            ("child_subreaper", self.child_subreaper.to_string()),
            ("thp_disable", hex(self.thp_disable as u64)),
        ]
    }
}

/// Scheduling attributes and timer slack of one thread.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ThreadAttrs {
    /// Nice value (-20..=19).
    pub nice: i32,
    /// Scheduling policy (`SCHED_OTHER` 0, `FIFO` 1, `RR` 2, `BATCH` 3, `IDLE` 5).
    pub policy: u32,
    /// Real-time priority (0 for the other policies).
    pub rt_priority: u32,
    /// `ioprio_get` value (class << 13 | data).
    pub ioprio: u32,
    /// `PR_GET_TIMERSLACK`, nanoseconds.
    pub timer_slack: u64,
    /// CPU affinity: bit N of word N/64 set = may run on CPU N. No word at all: not
    /// recorded by the source (CRIU keeps none), and a restore leaves it as it is.
    pub affinity: Vec<u64>,
}

impl ThreadAttrs {
    /// The CPUs of [`ThreadAttrs::affinity`], ascending.
    pub fn cpus(&self) -> Vec<usize> {
        let mut v = Vec::new();
        for (w, bits) in self.affinity.iter().enumerate() {
            for b in 0..64 {
                if bits & (1 << b) != 0 {
                    v.push(w * 64 + b);
                }
            }
        }
        v
    }

    /// The mask words of a list of CPUs.
    pub fn mask_of(cpus: &[usize]) -> Vec<u64> {
        let n = cpus.iter().max().map_or(0, |m| m / 64 + 1);
        let mut v = vec![0u64; n];
        for &c in cpus {
            v[c / 64] |= 1 << (c % 64);
        }
        v
    }
}

/// Text of a CPU list, ranges joined (`0-3,6`).
fn cpu_list(cpus: &[usize]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            cpus[i].to_string()
        } else {
            format!("{}-{}", cpus[i], cpus[j])
        });
        i = j + 1;
    }
    out.join(",")
}

impl Record for ThreadAttrs {
    const NAME: &'static str = "thread_attrs";
    const CODE: u32 = 0x0460;
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("nice", self.nice.to_string()),
            ("policy", self.policy.to_string()),
            ("rt_priority", self.rt_priority.to_string()),
            ("ioprio", hex(self.ioprio as u64)),
            ("timer_slack", self.timer_slack.to_string()),
            ("affinity", cpu_list(&self.cpus())),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_masks_and_lists() {
        let cpus = vec![0, 1, 2, 3, 6, 64, 130];
        let m = ThreadAttrs::mask_of(&cpus);
        assert_eq!(m, vec![0x4f, 1, 4]);
        let a = ThreadAttrs {
            affinity: m,
            ..ThreadAttrs::default()
        };
        assert_eq!(a.cpus(), cpus);
        assert_eq!(cpu_list(&cpus), "0-3,6,64,130");
        assert_eq!(cpu_list(&[]), "");
    }
}
