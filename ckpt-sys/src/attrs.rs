//! Process and thread attributes that can be read from outside the target (no injection),
//! and the POSIX timers listed in `/proc/PID/timers`.
//!
//! | what | where |
//! |---|---|
//! | nice, RT priority, policy | fields 19, 40, 41 of `/proc/PID/task/TID/stat` |
//! | CPU affinity | `sched_getaffinity(tid)` |
//! | I/O priority | `ioprio_get(IOPRIO_WHO_PROCESS, tid)` |
//! | `oom_score_adj`, `coredump_filter`, `timerslack_ns` | the `/proc/PID/` files of those names |
//! | POSIX timers (`timer_create`) | `/proc/PID/timers`: `ID`, `signal: SIGNO/VALUE`, `notify: HOW/pid.N` or `tid.N`, `ClockID` per timer |
//!
//! The remaining time of a POSIX timer is not in `/proc`; it is read with an injected
//! `timer_gettime` (see `ckpt-capture`).

use crate::{Result, SysError};
use libc::pid_t;

fn read_str(path: &str) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| SysError::io(format!("read {path}"), &e))
}

/// Scheduling attributes of one thread.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ThreadSched {
    /// Nice value (-20..=19).
    pub nice: i64,
    /// Scheduling policy (`SCHED_OTHER` 0, `SCHED_FIFO` 1, `SCHED_RR` 2, `SCHED_BATCH` 3,
    /// `SCHED_IDLE` 5, `SCHED_DEADLINE` 6).
    pub policy: u64,
    /// Real-time priority (0 for the non-RT policies).
    pub rt_priority: u64,
    /// CPUs the thread may run on, ascending.
    pub affinity: Vec<usize>,
    /// Raw `ioprio_get` value (class << 13 | data).
    pub ioprio: i64,
}

/// Scheduling attributes of thread `tid` of process `pid`.
pub fn thread_sched(pid: pid_t, tid: pid_t) -> Result<ThreadSched> {
    let path = format!("{pid}/task/{tid}");
    let st = crate::procfs::stat_at(&path)?;
    Ok(ThreadSched {
        nice: st.field(19),
        policy: st.ufield(41),
        rt_priority: st.ufield(40),
        affinity: affinity(tid)?,
        ioprio: ioprio(tid)?,
    })
}

/// The calling thread's own scheduling attributes (what a process forked from here
/// inherits).
pub fn own_sched() -> Result<ThreadSched> {
    let pid = std::process::id() as pid_t;
    // SAFETY: gettid has no arguments and cannot fail.
    let tid = unsafe { libc::gettid() };
    thread_sched(pid, tid)
}

/// `sched_getaffinity(tid)` as a list of CPU numbers.
pub fn affinity(tid: pid_t) -> Result<Vec<usize>> {
    // SAFETY: an all-zero cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid out buffer of the size passed.
    let rc =
        unsafe { libc::sched_getaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if rc != 0 {
        return Err(SysError::last(format!("sched_getaffinity tid {tid}")));
    }
    Ok((0..libc::CPU_SETSIZE as usize)
        // SAFETY: `i` < CPU_SETSIZE, inside the set.
        .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
        .collect())
}

const IOPRIO_WHO_PROCESS: i64 = 1;

/// `ioprio_get(IOPRIO_WHO_PROCESS, tid)`.
pub fn ioprio(tid: pid_t) -> Result<i64> {
    // SAFETY: plain integer syscall.
    let rc = unsafe { libc::syscall(libc::SYS_ioprio_get, IOPRIO_WHO_PROCESS, tid as i64) };
    if rc < 0 {
        return Err(SysError::last(format!("ioprio_get tid {tid}")));
    }
    Ok(rc)
}

/// `/proc/PID/oom_score_adj`.
pub fn oom_score_adj(pid: pid_t) -> Result<i64> {
    let p = format!("/proc/{pid}/oom_score_adj");
    read_str(&p)?
        .trim()
        .parse()
        .map_err(|_| SysError::other(p, "not a number"))
}

/// `/proc/PID/coredump_filter` (hex).
pub fn coredump_filter(pid: pid_t) -> Result<u64> {
    let p = format!("/proc/{pid}/coredump_filter");
    u64::from_str_radix(read_str(&p)?.trim(), 16).map_err(|_| SysError::other(p, "not hex"))
}

/// `/proc/PID/timerslack_ns` (the leader thread's timer slack).
pub fn timerslack_ns(pid: pid_t) -> Result<u64> {
    let p = format!("/proc/{pid}/timerslack_ns");
    read_str(&p)?
        .trim()
        .parse()
        .map_err(|_| SysError::other(p, "not a number"))
}

fn write_proc(path: &str, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|e| SysError::io(format!("write {text:?} to {path}"), &e))
}

/// Set the nice value of thread `tid` (`setpriority(PRIO_PROCESS, tid)`; lowering it
/// below the current value needs CAP_SYS_NICE or `RLIMIT_NICE`).
pub fn set_nice(tid: pid_t, nice: i64) -> Result<()> {
    // SAFETY: plain integer syscall.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice as i32) };
    if rc != 0 {
        return Err(SysError::last(format!("setpriority tid {tid} nice {nice}")));
    }
    Ok(())
}

/// Set the scheduling policy and RT priority of thread `tid` (`sched_setscheduler`;
/// `SCHED_DEADLINE` has other parameters and is refused here).
pub fn set_scheduler(tid: pid_t, policy: u64, rt_priority: u64) -> Result<()> {
    if policy == 6 {
        return Err(SysError::other(
            format!("sched_setscheduler tid {tid}"),
            "SCHED_DEADLINE parameters are not captured",
        ));
    }
    let p = libc::sched_param {
        sched_priority: rt_priority as i32,
    };
    // SAFETY: `p` is a valid sched_param.
    let rc = unsafe { libc::sched_setscheduler(tid, policy as i32, &p) };
    if rc != 0 {
        return Err(SysError::last(format!(
            "sched_setscheduler tid {tid} policy {policy} priority {rt_priority}"
        )));
    }
    Ok(())
}

/// Set the CPU affinity of thread `tid` to `cpus`.
pub fn set_affinity(tid: pid_t, cpus: &[usize]) -> Result<()> {
    // SAFETY: an all-zero cpu_set_t is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        if c >= libc::CPU_SETSIZE as usize {
            return Err(SysError::other(
                format!("sched_setaffinity tid {tid}"),
                format!("CPU {c} beyond CPU_SETSIZE"),
            ));
        }
        // SAFETY: `c` < CPU_SETSIZE.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: `set` is a valid cpu_set_t of the size passed.
    let rc = unsafe { libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if rc != 0 {
        return Err(SysError::last(format!(
            "sched_setaffinity tid {tid} {cpus:?}"
        )));
    }
    Ok(())
}

/// `ioprio_set(IOPRIO_WHO_PROCESS, tid, value)`.
pub fn set_ioprio(tid: pid_t, value: i64) -> Result<()> {
    // SAFETY: plain integer syscall.
    let rc = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, tid as i64, value) };
    if rc != 0 {
        return Err(SysError::last(format!("ioprio_set tid {tid} {value:#x}")));
    }
    Ok(())
}

/// Write `/proc/PID/oom_score_adj` (lowering it needs CAP_SYS_RESOURCE).
pub fn set_oom_score_adj(pid: pid_t, v: i64) -> Result<()> {
    write_proc(&format!("/proc/{pid}/oom_score_adj"), &v.to_string())
}

/// Write `/proc/PID/coredump_filter`.
pub fn set_coredump_filter(pid: pid_t, v: u64) -> Result<()> {
    write_proc(&format!("/proc/{pid}/coredump_filter"), &format!("{v:#x}"))
}

/// Write `/proc/PID/timerslack_ns` (the leader thread's; needs CAP_SYS_NICE for another
/// process).
pub fn set_timerslack_ns(pid: pid_t, v: u64) -> Result<()> {
    write_proc(&format!("/proc/{pid}/timerslack_ns"), &v.to_string())
}

/// What two processes can share without being threads of one process (`kcmp` types).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shared {
    /// The address space (`CLONE_VM`, `KCMP_VM`).
    Vm = 1,
    /// The fd table (`CLONE_FILES`, `KCMP_FILES`).
    Files = 2,
    /// root, cwd and umask (`CLONE_FS`, `KCMP_FS`).
    Fs = 3,
    /// Signal handlers (`CLONE_SIGHAND`, `KCMP_SIGHAND`).
    Sighand = 4,
    /// The I/O context (`CLONE_IO`, `KCMP_IO`).
    Io = 5,
    /// System V semaphore undo lists (`CLONE_SYSVSEM`, `KCMP_SYSVSEM`).
    Sysvsem = 6,
}

impl Shared {
    /// The kinds [`shares`] answers reliably. `Io` and `Sysvsem` are left out: a process
    /// that never used them has none, and `kcmp` calls two such processes equal.
    pub const ALL: [Shared; 4] = [Shared::Vm, Shared::Files, Shared::Fs, Shared::Sighand];

    /// What it is, with the clone flag that makes it shared.
    pub fn describe(self) -> &'static str {
        match self {
            Shared::Vm => "address space (CLONE_VM)",
            Shared::Files => "fd table (CLONE_FILES)",
            Shared::Fs => "root, cwd and umask (CLONE_FS)",
            Shared::Sighand => "signal handlers (CLONE_SIGHAND)",
            Shared::Io => "I/O context (CLONE_IO)",
            Shared::Sysvsem => "System V semaphore undo list (CLONE_SYSVSEM)",
        }
    }
}

/// Whether processes `a` and `b` share `what` (`kcmp(a, b, what) == 0`).
pub fn shares(a: pid_t, b: pid_t, what: Shared) -> Result<bool> {
    // SAFETY: plain integer syscall.
    let rc = unsafe { libc::syscall(libc::SYS_kcmp, a, b, what as i64, 0, 0) };
    if rc < 0 {
        return Err(SysError::last(format!("kcmp({a}, {b}, {what:?})")));
    }
    Ok(rc == 0)
}

/// How a POSIX timer notifies (`sigev_notify`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notify {
    /// `SIGEV_NONE`.
    None,
    /// `SIGEV_SIGNAL` (to the process).
    Signal,
    /// `SIGEV_THREAD` as the kernel sees it (glibc builds it on `SIGEV_THREAD_ID`).
    Thread,
    /// A notification the kernel named otherwise (kept as text).
    Other,
}

/// One entry of `/proc/PID/timers`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PosixTimer {
    /// The timer id (`timer_t` as the kernel numbers it).
    pub id: i32,
    /// `sigev_signo`.
    pub signo: i32,
    /// `sigev_value` (the kernel prints it as a pointer).
    pub value: u64,
    /// `sigev_notify` as the kernel names it.
    pub notify: Notify,
    /// The notify text as written (`none`, `signal`, `thread`, ...).
    pub notify_text: String,
    /// True when the signal goes to one thread (`tid.N`, `SIGEV_THREAD_ID`).
    pub to_thread: bool,
    /// The pid or tid the signal goes to.
    pub target: i32,
    /// `clockid_t` (negative for per-process/per-thread CPU clocks).
    pub clock: i32,
}

/// The POSIX timers of `pid`, in the kernel's order (newest first).
pub fn posix_timers(pid: pid_t) -> Result<Vec<PosixTimer>> {
    let p = format!("/proc/{pid}/timers");
    parse_timers(&read_str(&p)?).ok_or_else(|| SysError::other(p, "unexpected format"))
}

/// Parse the text of `/proc/PID/timers`; `None` when a line is not understood.
pub fn parse_timers(s: &str) -> Option<Vec<PosixTimer>> {
    let mut out: Vec<PosixTimer> = Vec::new();
    for l in s.lines().filter(|l| !l.trim().is_empty()) {
        let (k, v) = l.split_once(':')?;
        let v = v.trim();
        if k == "ID" {
            out.push(PosixTimer {
                id: v.parse().ok()?,
                signo: 0,
                value: 0,
                notify: Notify::None,
                notify_text: String::new(),
                to_thread: false,
                target: 0,
                clock: 0,
            });
            continue;
        }
        let t = out.last_mut()?;
        match k {
            "signal" => {
                let (s, val) = v.split_once('/')?;
                t.signo = s.parse().ok()?;
                t.value = u64::from_str_radix(val.trim_start_matches("0x"), 16).ok()?;
            }
            "notify" => {
                let (how, who) = v.split_once('/')?;
                t.notify_text = how.to_string();
                t.notify = match how {
                    "none" => Notify::None,
                    "signal" => Notify::Signal,
                    "thread" => Notify::Thread,
                    _ => Notify::Other,
                };
                let (kind, n) = who.split_once('.')?;
                t.to_thread = kind == "tid";
                t.target = n.parse().ok()?;
            }
            "ClockID" => t.clock = v.parse().ok()?,
            _ => {}
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every setter, on a child, read back through the getters.
    #[test]
    fn setters_read_back_on_a_child() {
        let mut c = std::process::Command::new("sleep")
            .arg("100")
            .spawn()
            .unwrap();
        let pid = c.id() as pid_t;
        let r = (|| -> Result<()> {
            set_nice(pid, 7)?;
            set_affinity(pid, &[0])?;
            set_ioprio(pid, 3 << 13)?; // IOPRIO_CLASS_IDLE, data 0
            set_oom_score_adj(pid, 321)?;
            set_coredump_filter(pid, 0x23)?;
            set_timerslack_ns(pid, 70_000)?;
            set_scheduler(pid, 3, 0)?; // SCHED_BATCH
            let s = thread_sched(pid, pid)?;
            assert_eq!((s.nice, s.policy, s.rt_priority), (7, 3, 0));
            assert_eq!(s.affinity, vec![0]);
            assert_eq!(s.ioprio, 3 << 13);
            assert_eq!(oom_score_adj(pid)?, 321);
            assert_eq!(coredump_filter(pid)?, 0x23);
            assert_eq!(timerslack_ns(pid)?, 70_000);
            assert!(set_scheduler(pid, 6, 0).is_err());
            assert!(set_affinity(pid, &[libc::CPU_SETSIZE as usize]).is_err());
            Ok(())
        })();
        let _ = c.kill();
        let _ = c.wait();
        r.unwrap();
    }

    #[test]
    fn timers_text_parses() {
        let s = "ID: 3\nsignal: 0/0000000000000000\nnotify: none/pid.7265\nClockID: 7\n\
                 ID: 2\nsignal: 34/0000000000000000\nnotify: signal/tid.7266\nClockID: -6\n\
                 ID: 0\nsignal: 10/0000000000001234\nnotify: signal/pid.7265\nClockID: 1\n";
        let t = parse_timers(s).unwrap();
        assert_eq!(t.len(), 3);
        assert_eq!((t[0].id, t[0].notify, t[0].clock), (3, Notify::None, 7));
        assert_eq!((t[1].signo, t[1].to_thread, t[1].target), (34, true, 7266));
        assert_eq!(t[1].clock, -6);
        assert_eq!((t[2].signo, t[2].value, t[2].target), (10, 0x1234, 7265));
        assert!(!t[2].to_thread);
        assert_eq!(parse_timers("").unwrap(), vec![]);
        assert!(parse_timers("signal: 1/0\n").is_none());
        assert!(parse_timers("ID: x\n").is_none());
    }

    #[test]
    fn own_attributes_read() {
        let me = std::process::id() as pid_t;
        let s = own_sched().unwrap();
        assert!(!s.affinity.is_empty());
        assert!((-20..=19).contains(&s.nice));
        assert!(oom_score_adj(me).is_ok());
        assert!(coredump_filter(me).is_ok());
        assert!(timerslack_ns(me).unwrap() > 0);
        assert!(posix_timers(me).unwrap().is_empty());
        for w in Shared::ALL {
            assert!(shares(me, me, w).unwrap(), "{w:?}");
        }
        // Our parent (cargo's test runner or a shell) shares none of them with us.
        let parent = std::os::unix::process::parent_id() as pid_t;
        assert!(!shares(me, parent, Shared::Vm).unwrap());
        assert!(!shares(me, parent, Shared::Files).unwrap());
    }
}
