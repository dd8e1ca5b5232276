//! State that ckpt does not carry yet, found while the targets are frozen and before
//! anything is written, so that the capture is refused (naming each piece, pid by pid)
//! instead of producing an image whose restore would quietly lose it.
//!
//! What is looked at, per process (docs/CAPTURE.md, "Refused: state not carried yet"):
//!
//! | state | how it is read | refused when |
//! |---|---|---|
//! | POSIX timers and interval timers (carried, `crate::timers`) | `/proc/PID/timers`, injected `timer_gettime`, `timer_getoverrun`, `getitimer` | a notification other than none, signal or thread id; `CLOCK_THREAD_CPUTIME_ID` in a process with several threads; the CPU clock of a process outside the image |
//! | child subreaper, THP disabled (carried: Task `process_attrs`) | injected `prctl(PR_GET_CHILD_SUBREAPER / PR_GET_THP_DISABLE)` | never |
//! | parent-death signal | injected `prctl(PR_GET_PDEATHSIG)` in every thread | set on the root process (its parent is not restored) or on a non-leader thread; the leader's of a child in the image is carried (`pdeath_signal`) |
//! | memory-deny-write-execute, KSM merge-any | injected `prctl(PR_GET_MDWE / PR_GET_MEMORY_MERGE)` | set |
//! | dumpable (0 and 1 carried: `process_attrs`) | injected `prctl(PR_GET_DUMPABLE)` | 2, unless a restore by this user gives 2 |
//! | securebits (carried: Task `securebits`), timer slack of every thread (carried: `thread_attrs`) | injected `prctl(PR_GET_SECUREBITS / PR_GET_TIMERSLACK)` | never |
//! | seccomp filters (carried: Thread `seccomp_filters`, `crate::seccomp`) | `Seccomp:` of `/proc/PID/status`, `PTRACE_SECCOMP_GET_FILTER` | strict mode; unreadable (no `CAP_SYS_ADMIN`: then nothing is injected either); a filter returning `SECCOMP_RET_USER_NOTIF` |
//! | nice, policy, RT priority, CPU affinity, I/O priority (every thread), `oom_score_adj`, `coredump_filter` (carried: `thread_attrs`, `process_attrs`); speculation controls, `untag_mask`, `x86_Thread_features` | `ckpt_sys::attrs`, status | SCHED_DEADLINE; the status lines when not ckpt-capture's own (a restored process inherits ckpt-restore's) |
//! | shared anonymous memory | `/proc/PID/maps` of the image's processes and of every other process | one object mapped by two VMAs of the image at overlapping offsets not both inside its first mapping (restore rebuilds it from that one), or by a process outside the image; System V segments |
//! | zombies in the tree | stat state `Z`, `/proc/PID/task` | a leader whose other threads still run (a zombie itself is carried: its status) |
//! | pidfds (carried: File `pidfd`, `crate::pidfd`) | `Pid:` of `/proc/PID/fdinfo/N` | on a process outside the image, reaped, in another pid namespace, or on a non-leader thread |
//! | fd owner and signal (carried: File `fown`, `crate::fown`) | injected `fcntl(F_GETOWN_EX / F_GETSIG)` on every fd | an owner outside the image, a non-leader thread |
//! | fd table, fs context, signal handlers, address space shared between processes | `kcmp` | between two processes of the image, or with a parent or child outside it |
//! | deleted files and memfds too large to carry | `SEEK_DATA`/`SEEK_HOLE` through `/proc/PID/fd/N`, `/proc/PID/map_files/A-B`; `fstatfs` | more than 256 MiB of data in one inode; on hugetlbfs; still linked under another name |
//! | pseudo-terminals whose master is captured (`crate::ttys`) | `FIONREAD` on a duplicate of each pty fd; every process's fds; stat `tty_nr` | bytes queued; the slave open outside the image; a session leader's controlling terminal not held by a fd of the image or not a pty |
//! | leases, delegations, mandatory locks (advisory POSIX, OFD and flock locks are carried) | `lock:` lines of `/proc/PID/fdinfo/N` | any (a restore would run without them: another process could then take them) |
//!
//! The injected calls run through one scratch page mapped and unmapped in the target;
//! every register is put back by the injector (the caller compares them again later).

use crate::{CaptureError, ErrorKind};
use ckpt_format::{ProcessAttrs, ThreadAttrs};
use ckpt_sys::attrs;
use ckpt_sys::inject::Injector;
use ckpt_sys::procfs::{self, Stat};
use ckpt_sys::{mem, PAGE_SIZE};
use std::collections::{BTreeMap, HashMap, HashSet};

/// A process as the check sees it.
pub(crate) struct Target<'a> {
    /// Its pid.
    pub pid: i32,
    /// `/proc/PID/stat` read before freezing.
    pub stat: &'a Stat,
    /// The stopped threads (leader first); `None` for a zombie.
    pub tids: Option<Vec<i32>>,
}

/// What the check found.
#[derive(Default)]
pub(crate) struct Findings {
    /// One line per piece of state that would be lost: (kind, line naming the pid).
    pub items: Vec<(&'static str, String)>,
    /// Parent-death signals to carry (`pdeath_signal` of the Task), by pid.
    pub pdeath: HashMap<i32, u64>,
    /// Timers to carry (`itimers`, `posix_timers` of the Task), by pid.
    pub timers: HashMap<i32, ckpt_sys::timers::Timers>,
    /// Process attributes to carry, by pid.
    pub proc_attrs: HashMap<i32, ProcessAttrs>,
    /// Thread attributes to carry, by tid.
    pub thread_attrs: HashMap<i32, ThreadAttrs>,
    /// Seccomp filters to carry, by tid (`crate::seccomp`).
    pub seccomp: HashMap<i32, ckpt_format::SeccompFilters>,
    /// Securebits to carry (when not 0), by pid.
    pub securebits: HashMap<i32, u32>,
    /// Owners and signals of signal-driven I/O, by (pid, fd) (checked by `crate::fown`).
    pub fown: HashMap<(i32, i32), ckpt_format::Fown>,
}

impl Findings {
    pub(crate) fn add(&mut self, kind: &'static str, line: String) {
        self.items.push((kind, line));
    }

    /// The refusal naming every item, or `None` when nothing would be lost.
    pub fn refusal(&self) -> Option<CaptureError> {
        if self.items.is_empty() {
            return None;
        }
        let mut lines: Vec<&str> = self.items.iter().map(|(_, l)| l.as_str()).collect();
        lines.dedup();
        Some(CaptureError::new(
            ErrorKind::Unsupported,
            format!(
                "{} piece(s) of state that ckpt does not carry yet (a restore would lose them; the target is left running):\n  {}",
                lines.len(),
                lines.join("\n  ")
            ),
        ))
    }
}

fn sys(ctx: String) -> impl FnOnce(ckpt_sys::SysError) -> CaptureError {
    move |e| CaptureError::sys(&ctx, e)
}

/// The pid tracing `pid` (`TracerPid:`), if any: a traced process cannot be seized, and
/// its tracer relation would not be carried.
pub(crate) fn tracer_of(pid: i32) -> Option<i32> {
    procfs::status(&pid.to_string())
        .ok()?
        .get("TracerPid")?
        .parse()
        .ok()
        .filter(|&t: &i32| t != 0)
}

/// Check every process of the image (`targets[0]` is the root).
pub(crate) fn check(targets: &[Target<'_>]) -> Result<Findings, CaptureError> {
    let mut f = Findings::default();
    let ours = Own::read()?;
    for (i, t) in targets.iter().enumerate() {
        let pid = t.pid;
        let Some(tids) = &t.tids else {
            // A zombie is re-created from its status; a leader that exited while its
            // other threads run is not a zombie yet, and those threads would be lost.
            let threads = procfs::list_tasks(pid).map(|v| v.len()).unwrap_or(1);
            if threads > 1 {
                f.add(
                    "zombie",
                    format!(
                        "pid {pid}: its main thread exited while {} other thread(s) still run (they are not captured)",
                        threads - 1
                    ),
                );
            }
            continue;
        };
        check_locks(pid, &mut f)?;
        check_contents(pid, &mut f)?;
        if check_outside(pid, tids, &ours, &mut f)? {
            check_injected(pid, tids, i == 0, &ours, &mut f)?;
        }
    }
    crate::timers::check(targets, &mut f);
    crate::pidfd::check(targets, &mut f);
    crate::ttys::check(targets, &mut f);
    crate::fown::check(targets, &mut f);
    check_shared_anon(targets, &mut f)?;
    check_sharing(targets, &mut f)?;
    Ok(f)
}

/// ckpt-capture's own values of what a restored process would inherit from ckpt-restore.
struct Own {
    status: BTreeMap<String, String>,
    suid_dumpable: u64,
}

impl Own {
    fn read() -> Result<Own, CaptureError> {
        let e = |w: &str| sys(format!("ckpt-capture's own {w}"));
        Ok(Own {
            status: procfs::status("self").map_err(e("status"))?,
            suid_dumpable: std::fs::read_to_string("/proc/sys/fs/suid_dumpable")
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0),
        })
    }
}

/// Locks held through the fds of `pid` (the `lock:` lines the kernel adds to
/// `/proc/PID/fdinfo/N`) that are not carried: leases, delegations, mandatory locks,
/// and anything unparsable. Advisory POSIX, OFD and flock locks are carried
/// (`posix_locks`, `file_locks`) and taken again by the restore.
fn check_locks(pid: i32, f: &mut Findings) -> Result<(), CaptureError> {
    let fds = procfs::list_fds(pid).map_err(sys(format!("pid {pid} fds")))?;
    for fd in fds {
        let Ok(fi) = procfs::fdinfo(pid, fd) else {
            continue; // closed meanwhile: it holds nothing
        };
        let path = procfs::readlink(&format!("/proc/{pid}/fd/{fd}"))
            .map(|p| String::from_utf8_lossy(&p).into_owned())
            .unwrap_or_default();
        for l in &fi.locks {
            let carried =
                matches!(l.class.as_str(), "POSIX" | "OFDLCK" | "FLOCK") && l.mode == "ADVISORY";
            if carried {
                continue;
            }
            let range = match l.end {
                _ if l.class == "?" => String::new(),
                Some(e) => format!(" on bytes {}-{e}", l.start),
                None => format!(" on bytes {}-EOF", l.start),
            };
            let what = if l.class == "?" {
                format!("lock `{}`", l.text)
            } else {
                format!("{} {} {} lock{range}", l.class, l.mode, l.access)
            };
            f.add(
                "file lock",
                format!(
                    "pid {pid} fd {fd} ({path}): {what} (leases and mandatory locks are not carried; a restore would run without it)"
                ),
            );
        }
    }
    Ok(())
}

/// Inodes carried with their contents (deleted files, memfds: live/contents.rs) that
/// cannot be: more than `MAX_CONTENTS` in data runs (holes are not stored), on
/// hugetlbfs, or still linked under another name (a restored copy would not be it). Found here, so that they are named with everything else before anything
/// is written.
fn check_contents(pid: i32, f: &mut Findings) -> Result<(), CaptureError> {
    use std::os::fd::AsRawFd;
    let max = crate::live::MAX_CONTENTS;
    let mut seen = HashSet::new();
    let mut look = |src: String, what: String, f: &mut Findings| {
        let Ok(file) = std::fs::File::open(&src) else {
            return; // gone meanwhile
        };
        let fd = file.as_raw_fd();
        let Ok(st) = ckpt_sys::files::fstat(fd) else {
            return;
        };
        if !seen.insert((st.st_dev, st.st_ino)) {
            return;
        }
        if st.st_nlink > 0 {
            f.add(
                "deleted file linked elsewhere",
                format!(
                    "pid {pid} {what}: unlinked from this name but still linked elsewhere ({} link(s)): a copy restored from the image would not be that file",
                    st.st_nlink
                ),
            );
            return;
        }
        // The bytes in data runs (all-zero pages in them are not stored either, which
        // this does not count out).
        let data: u64 = ckpt_sys::inode::data_runs(fd, st.st_size as u64)
            .map(|r| r.iter().map(|(s, e)| e - s).sum())
            .unwrap_or(st.st_size as u64);
        if data > max {
            f.add(
                "large deleted file",
                format!(
                    "pid {pid} {what}: {} MiB of data, more than the {} MiB one deleted file or memfd may carry",
                    data >> 20,
                    max >> 20
                ),
            );
        }
        if ckpt_sys::inode::is_hugetlb(fd).unwrap_or(false) {
            f.add(
                "hugetlb memfd",
                format!("pid {pid} {what}: on hugetlbfs, whose contents are not carried"),
            );
        }
    };
    for fd in procfs::list_fds(pid).map_err(sys(format!("pid {pid} fds")))? {
        let src = format!("/proc/{pid}/fd/{fd}");
        let Ok(link) = procfs::readlink(&src) else {
            continue;
        };
        if crate::live::is_gone(&link) {
            let what = format!("fd {fd} ({})", String::from_utf8_lossy(&link));
            look(src, what, f);
        }
    }
    for m in procfs::maps(pid).map_err(sys(format!("pid {pid} maps")))? {
        // (Shared anonymous memory, `/dev/zero (deleted)` and `/SYSV*`, is no file.)
        let Some(p) = m.path.as_deref().filter(|p| {
            crate::live::is_gone(p) && !p.starts_with(b"/dev/zero") && !p.starts_with(b"/SYSV")
        }) else {
            continue;
        };
        let src = format!("/proc/{pid}/map_files/{:x}-{:x}", m.start, m.end);
        let what = format!("maps {} at {:#x}", String::from_utf8_lossy(p), m.start);
        look(src, what, f);
    }
    Ok(())
}

/// Returns false when the process must not be probed by injected calls.
fn check_outside(
    pid: i32,
    tids: &[i32],
    ours: &Own,
    f: &mut Findings,
) -> Result<bool, CaptureError> {
    let st = procfs::status(&pid.to_string()).map_err(sys(format!("pid {pid} status")))?;
    let num = |k: &str| st.get(k).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    let probe = crate::seccomp::read(pid, tids, num("Seccomp"), f);
    for key in [
        "Speculation_Store_Bypass",
        "SpeculationIndirectBranch",
        "untag_mask",
        "x86_Thread_features",
    ] {
        let (a, b) = (st.get(key), ours.status.get(key));
        if a != b {
            f.add(
                "process attribute",
                format!(
                    "pid {pid}: {key} is {:?}, a restored process would have {:?}",
                    a.map(String::as_str).unwrap_or("-"),
                    b.map(String::as_str).unwrap_or("-")
                ),
            );
        }
    }
    // Carried (Task `process_attrs`, Thread `thread_attrs`); the rest of them is read by
    // the injected calls in `probe`.
    let adj = attrs::oom_score_adj(pid).map_err(sys(format!("pid {pid} oom_score_adj")))?;
    let cf = attrs::coredump_filter(pid).map_err(sys(format!("pid {pid} coredump_filter")))?;
    f.proc_attrs.insert(
        pid,
        ProcessAttrs {
            oom_score_adj: adj as i32,
            coredump_filter: cf,
            ..ProcessAttrs::default()
        },
    );
    for &tid in tids {
        let s = attrs::thread_sched(pid, tid).map_err(sys(format!("pid {pid} thread {tid}")))?;
        if s.policy == 6 {
            let who = if tid == pid {
                format!("pid {pid}")
            } else {
                format!("pid {pid} thread {tid}")
            };
            f.add(
                "scheduling",
                format!(
                    "{who}: SCHED_DEADLINE (its runtime, deadline and period are not captured)"
                ),
            );
        }
        f.thread_attrs.insert(
            tid,
            ThreadAttrs {
                nice: s.nice as i32,
                policy: s.policy as u32,
                rt_priority: s.rt_priority as u32,
                ioprio: s.ioprio as u32,
                timer_slack: 0,
                affinity: ThreadAttrs::mask_of(&s.affinity),
            },
        );
    }
    Ok(probe)
}

const PR_GET_PDEATHSIG: u64 = 2;
const PR_GET_DUMPABLE: u64 = 3;
const PR_GET_SECUREBITS: u64 = 27;
const PR_GET_TIMERSLACK: u64 = 30;
const PR_GET_CHILD_SUBREAPER: u64 = 37;
const PR_GET_THP_DISABLE: u64 = 42;
const PR_GET_MDWE: u64 = 66;
const PR_GET_MEMORY_MERGE: u64 = 68;
const EINVAL: i64 = -(libc::EINVAL as i64);
const F_GETSIG: u64 = 11;
const F_GETOWN_EX: u64 = 16;

fn i32_at(b: &[u8], off: usize) -> i64 {
    b.get(off..off + 4)
        .and_then(|s| s.try_into().ok())
        .map(i32::from_le_bytes)
        .unwrap_or(0) as i64
}

/// Values only the target itself can tell, by injected calls.
fn check_injected(
    pid: i32,
    tids: &[i32],
    is_root: bool,
    ours: &Own,
    f: &mut Findings,
) -> Result<(), CaptureError> {
    let ctx = format!("pid {pid}: injecting calls to read its timers and attributes");
    let mut lead = Injector::new(tids[0]).map_err(sys(ctx.clone()))?;
    let scratch = lead
        .mmap_scratch(PAGE_SIZE as u64)
        .map_err(sys(ctx.clone()))?;
    let r = probe(&mut lead, pid, tids, is_root, scratch, ours, f);
    let un = lead.syscall(libc::SYS_munmap, &[scratch, PAGE_SIZE as u64]);
    lead.finish().map_err(sys(ctx.clone()))?;
    r.map_err(sys(ctx.clone()))?;
    if un.map_err(sys(ctx.clone()))? != 0 {
        return Err(CaptureError::new(
            ErrorKind::Io,
            format!("{ctx}: munmap of the scratch page failed"),
        ));
    }
    Ok(())
}

fn probe(
    lead: &mut Injector,
    pid: i32,
    tids: &[i32],
    is_root: bool,
    scratch: u64,
    ours: &Own,
    f: &mut Findings,
) -> ckpt_sys::Result<()> {
    // Interval and POSIX timers with their time left (carried; crate::timers checks them).
    f.timers
        .insert(pid, ckpt_sys::timers::read(lead, pid, scratch)?);
    let mut pa = f.proc_attrs.get(&pid).copied().unwrap_or_default();
    if lead.syscall(libc::SYS_prctl, &[PR_GET_CHILD_SUBREAPER, scratch])? == 0 {
        let mut b = [0u8; 4];
        mem::read_remote(pid, scratch, &mut b)?;
        pa.child_subreaper = u32::from(i32_at(&b, 0) != 0);
    }
    let thp = lead.syscall(libc::SYS_prctl, &[PR_GET_THP_DISABLE, 0, 0, 0, 0])?;
    pa.thp_disable = thp.max(0) as u32;
    for (opt, what) in [
        (PR_GET_MDWE, "memory-deny-write-execute (PR_SET_MDWE)"),
        (
            PR_GET_MEMORY_MERGE,
            "KSM merging of all memory (PR_SET_MEMORY_MERGE)",
        ),
    ] {
        let v = lead.syscall(libc::SYS_prctl, &[opt, 0, 0, 0, 0])?;
        if v > 0 {
            f.add("process attribute", format!("pid {pid}: {what}, value {v}"));
        } else if v < 0 && v != EINVAL && v != -(libc::EPERM as i64) {
            return Err(ckpt_sys::SysError::errno(
                format!("injected prctl({opt}) in pid {pid}"),
                -v as i32,
            ));
        }
    }
    let dumpable = lead.syscall(libc::SYS_prctl, &[PR_GET_DUMPABLE, 0, 0, 0, 0])?;
    let own_ids = ["Uid", "Gid"].map(|k| ours.status.get(k).cloned());
    let st = procfs::status(&pid.to_string())?;
    let same_ids = ["Uid", "Gid"].map(|k| st.get(k).cloned()) == own_ids;
    let want = if same_ids {
        1
    } else {
        ours.suid_dumpable as i64
    };
    // 0 and 1 are carried (PR_SET_DUMPABLE); 2 only where the restore gives it.
    if dumpable == 2 && dumpable != want {
        f.add(
            "process attribute",
            format!(
                "pid {pid}: dumpable {dumpable} (suid_dumpable; PR_SET_DUMPABLE cannot set it, a restored process would have {want})"
            ),
        );
    }
    pa.dumpable = dumpable.max(0) as u32;
    f.proc_attrs.insert(pid, pa);
    let sb = lead.syscall(libc::SYS_prctl, &[PR_GET_SECUREBITS, 0, 0, 0, 0])?;
    if sb > 0 {
        f.securebits.insert(pid, sb as u32);
    }
    // Per fd: an owner for signal-driven I/O (F_SETOWN) or a signal (F_SETSIG), carried
    // (File `fown`) when `crate::fown` finds the owner in the image.
    for fd in procfs::list_fds(pid)? {
        let mut x = ckpt_format::Fown::default();
        if lead.syscall(libc::SYS_fcntl, &[fd as u64, F_GETOWN_EX, scratch + 128])? == 0 {
            let mut b = [0u8; 8];
            mem::read_remote(pid, scratch + 128, &mut b)?;
            (x.kind, x.owner) = (i32_at(&b, 0) as u32, i32_at(&b, 4) as i32);
        }
        let sig = lead.syscall(libc::SYS_fcntl, &[fd as u64, F_GETSIG])?;
        x.signal = sig.max(0) as i32;
        if x.owner != 0 || x.signal != 0 {
            f.fown.insert((pid, fd), x);
        }
    }
    // Per thread: parent-death signal and timer slack.
    let mut per_thread = |inj: &mut Injector, tid: i32| -> ckpt_sys::Result<()> {
        let who = if tid == pid {
            format!("pid {pid}")
        } else {
            format!("pid {pid} thread {tid}")
        };
        if inj.syscall(libc::SYS_prctl, &[PR_GET_PDEATHSIG, scratch + 64])? == 0 {
            let mut b = [0u8; 4];
            mem::read_remote(pid, scratch + 64, &mut b)?;
            let sig = i32_at(&b, 0);
            if sig != 0 {
                if tid == pid && !is_root {
                    f.pdeath.insert(pid, sig as u64);
                } else {
                    let why = if tid == pid {
                        "its parent is not in the image"
                    } else {
                        "set on a thread other than the leader"
                    };
                    f.add(
                        "process attribute",
                        format!("{who}: parent-death signal {sig} (PR_SET_PDEATHSIG; {why})"),
                    );
                }
            }
        }
        let slack = inj.syscall(libc::SYS_prctl, &[PR_GET_TIMERSLACK, 0, 0, 0, 0])?;
        if let Some(a) = f.thread_attrs.get_mut(&tid) {
            a.timer_slack = slack.max(0) as u64;
        }
        Ok(())
    };
    per_thread(lead, tids[0])?;
    for &tid in &tids[1..] {
        let mut inj = Injector::new(tid)?;
        let r = per_thread(&mut inj, tid);
        inj.finish()?;
        r?;
    }
    Ok(())
}

/// Processes (not threads) sharing an fd table, fs context, signal handlers or address
/// space: a restore gives each its own. Checked between every two processes of the image
/// and between each of them and its parent and children outside the image.
fn check_sharing(targets: &[Target<'_>], f: &mut Findings) -> Result<(), CaptureError> {
    let live: Vec<i32> = targets
        .iter()
        .filter(|t| t.tids.is_some())
        .map(|t| t.pid)
        .collect();
    let inside: HashSet<i32> = targets.iter().map(|t| t.pid).collect();
    for (i, &a) in live.iter().enumerate() {
        let mut others: Vec<(i32, bool)> = live[i + 1..].iter().map(|&b| (b, true)).collect();
        let st = targets
            .iter()
            .find(|t| t.pid == a)
            .map(|t| t.stat.field(4) as i32);
        for p in st
            .into_iter()
            .chain(procfs::children(a).unwrap_or_default())
        {
            if p > 0 && !inside.contains(&p) {
                others.push((p, false));
            }
        }
        for (b, in_image) in others {
            for what in attrs::Shared::ALL {
                // A process gone meanwhile, or not ours to compare, shares nothing with us.
                if attrs::shares(a, b, what).unwrap_or(false) {
                    let outside = if in_image {
                        ""
                    } else {
                        ", which is not in the image"
                    };
                    f.add(
                        "shared process state",
                        format!(
                            "pid {a}: shares its {} with pid {b}{outside}: a restore would give each its own",
                            what.describe()
                        ),
                    );
                }
            }
        }
    }
    Ok(())
}

/// A shmem object: (device major, minor, inode).
type ShmemId = (u32, u32, u64);
/// One mapping of it: (pid, start, end, offset in bytes).
type Mapper = (i32, u64, u64, u64);

/// Shared anonymous memory: restore maps each VMA as a fresh `MAP_SHARED|MAP_ANONYMOUS`
/// object per process, which is right only when nobody else maps the same pages.
fn check_shared_anon(targets: &[Target<'_>], f: &mut Findings) -> Result<(), CaptureError> {
    let mut objs: BTreeMap<ShmemId, Vec<Mapper>> = BTreeMap::new();
    let inside: HashSet<i32> = targets.iter().map(|t| t.pid).collect();
    for t in targets.iter().filter(|t| t.tids.is_some()) {
        let maps = procfs::maps(t.pid).map_err(sys(format!("pid {} maps", t.pid)))?;
        for m in maps.iter().filter(|m| is_shared_anon(m)) {
            if let Some(p) = m.path.as_deref().filter(|p| p.starts_with(b"/SYSV")) {
                f.add(
                    "shared memory",
                    format!(
                        "pid {}: System V shared memory segment {} at {:#x}-{:#x} (shmat; segments are not captured)",
                        t.pid,
                        String::from_utf8_lossy(p),
                        m.start,
                        m.end
                    ),
                );
                continue;
            }
            objs.entry((m.major, m.minor, m.inode))
                .or_default()
                .push((t.pid, m.start, m.end, m.offset));
        }
    }
    if objs.is_empty() {
        return Ok(());
    }
    for (_, v) in objs.iter() {
        for (i, a) in v.iter().enumerate() {
            for b in &v[i + 1..] {
                let (alen, blen) = (a.2 - a.1, b.2 - b.1);
                // Restore rebuilds one object from its first mapping (image order) and
                // maps the others into it: each must lie inside that first one's range.
                let owner = v[0];
                let within = |m: &Mapper| {
                    m.3 >= owner.3 && m.3 + (m.2 - m.1) <= owner.3 + (owner.2 - owner.1)
                };
                if a.3 < b.3 + blen && b.3 < a.3 + alen && !(within(a) && within(b)) {
                    f.add(
                        "shared memory",
                        format!(
                            "pid {}: shared anonymous memory at {:#x}-{:#x} is also mapped by pid {} at {:#x}-{:#x}, at object offsets outside the first mapping's ({:#x}-{:#x} of pid {}): a restore cannot rebuild them as one object",
                            a.0, a.1, a.2, b.0, b.1, b.2, owner.1, owner.2, owner.0
                        ),
                    );
                }
            }
        }
    }
    // Mapped by a process outside the image?
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Ok(());
    };
    let me = std::process::id() as i32;
    for e in rd.flatten() {
        let Some(other) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if inside.contains(&other) || other == me {
            continue;
        }
        let Ok(maps) = procfs::maps(other) else {
            continue; // gone, or not ours to read
        };
        for m in maps.iter().filter(|m| is_shared_anon(m)) {
            if let Some(v) = objs.get(&(m.major, m.minor, m.inode)) {
                for a in v {
                    f.add(
                        "shared memory",
                        format!(
                            "pid {}: shared anonymous memory at {:#x}-{:#x} is also mapped by pid {other}, which is not in the image: a restore would not share it with that process",
                            a.0, a.1, a.2
                        ),
                    );
                }
            }
        }
    }
    Ok(())
}

fn is_shared_anon(m: &procfs::MapEntry) -> bool {
    m.shared()
        && match m.path.as_deref() {
            None => true,
            Some(p) => {
                p.starts_with(b"/dev/zero")
                    || p.starts_with(b"/SYSV")
                    || p.starts_with(b"[anon_shmem")
            }
        }
}
