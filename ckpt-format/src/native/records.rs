//! native-1 encoding of the typed records ([`crate::model::records`]): one
//! record per typed record, written right BEFORE its owner's record (TASK,
//! THREAD, VMA, FILE) and attached to it by the decoder. Layouts are drawn in
//! docs/FORMAT.md ("Typed records"). A new kind adds one `put` line in its
//! owner's encoder below and one arm in [`decode`].
//!
//! Over 800 lines on purpose: the layout table, the decoder arms and the encoder lines
//! of every typed record kind sit in this one file so that a kind's three places are
//! read (and reviewed) side by side, as docs/ADDING-AN-OBJECT-KIND.md asks; sockets,
//! whose layouts are long, have their own module (`native/sockets.rs`).

use super::payload::{Cur, Put};
use super::sockets;
use super::{Frame, RecordType};
use crate::error::{ErrorKind, Result};
use crate::model::records::*;
use crate::model::sockets::{NetlinkSocket, Socket, SocketQueue, TcpConnection};

/// Most signals one queue record may hold (the kernel's limit is far lower).
const MAX_QUEUE: u32 = 1 << 16;
/// Most instructions of one BPF program (the kernel's `BPF_MAXINSNS`).
const MAX_BPF_INSNS: u32 = 4096;

/// True for the type code of a typed record: its low byte is at least 0x10
/// (core records keep theirs below), so one byte tells a reader which it is.
pub fn is_typed(code: u32) -> bool {
    code & 0xff >= 0x10
}

/// Which record a typed record belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    /// The TASK record that follows.
    Task,
    /// The THREAD record that follows.
    Thread,
    /// The VMA record that follows.
    Vma,
    /// The FILE record that follows.
    File,
}

impl Owner {
    /// The owner's record type.
    pub fn record(self) -> RecordType {
        match self {
            Owner::Task => RecordType::TASK,
            Owner::Thread => RecordType::THREAD,
            Owner::Vma => RecordType::VMA,
            Owner::File => RecordType::FILE,
        }
    }
}

/// Every typed record kind: (code, name, owner, payload layout, little-endian).
/// `ckpt-inspect schema --rev native-1` prints this table.
pub const KINDS: &[(u32, &str, Owner, &str)] = &[
    (
        Rseq::CODE,
        Rseq::NAME,
        Owner::Thread,
        "u64 ptr, u32 len, u32 sig",
    ),
    (
        RobustList::CODE,
        RobustList::NAME,
        Owner::Thread,
        "u64 head, u64 len",
    ),
    (
        SigAltStack::CODE,
        SigAltStack::NAME,
        Owner::Thread,
        "u64 sp, u64 size, u32 flags, u32 0",
    ),
    (
        ClearChildTid::CODE,
        ClearChildTid::NAME,
        Owner::Thread,
        "u64 addr",
    ),
    (
        PendingSignals::CODE,
        PendingSignals::NAME,
        Owner::Thread,
        "u64 mask, u32 n, u32 0, n x 128-byte siginfo",
    ),
    (
        Capabilities::CODE,
        Capabilities::NAME,
        Owner::Task,
        "u64 inh, u64 prm, u64 eff, u64 bnd, u64 amb",
    ),
    (
        Security::CODE,
        Security::NAME,
        Owner::Task,
        "u64 no_new_privs, u64 seccomp_mode",
    ),
    (
        SharedPending::CODE,
        SharedPending::NAME,
        Owner::Task,
        "u32 n, u32 0, n x 128-byte siginfo",
    ),
    (
        RealParent::CODE,
        RealParent::NAME,
        Owner::Task,
        "i32 ppid, u32 0",
    ),
    (
        ParentDeathSignal::CODE,
        ParentDeathSignal::NAME,
        Owner::Task,
        "u64 sig",
    ),
    (
        Itimers::CODE,
        Itimers::NAME,
        Owner::Task,
        "3 x (i64 interval_sec, i64 interval_usec, i64 left_sec, i64 left_usec): real, virtual, prof",
    ),
    (
        PosixTimers::CODE,
        PosixTimers::NAME,
        Owner::Task,
        "u32 n, u32 0, n x (i32 id, i32 clock, i32 notify, i32 signo, u64 value, i32 tid, i32 overrun, i64 interval_sec, i64 interval_nsec, i64 left_sec, i64 left_nsec)",
    ),
    (
        ProcessAttrs::CODE,
        ProcessAttrs::NAME,
        Owner::Task,
        "i32 oom_score_adj, u32 dumpable, u64 coredump_filter, u32 child_subreaper, u32 thp_disable",
    ),
    (JobStop::CODE, JobStop::NAME, Owner::Task, "u32 sig, u32 0"),
    (
        Tty::CODE,
        Tty::NAME,
        Owner::File,
        "u32 master (0/1), i32 index, i32 sid, i32 pgrp, 4 x u16 winsize (rows, cols, xpixel, ypixel), 44-byte struct termios2, u32 0",
    ),
    (
        ThreadAttrs::CODE,
        ThreadAttrs::NAME,
        Owner::Thread,
        "i32 nice, u32 policy, u32 rt_priority, u32 ioprio, u64 timer_slack, u32 n, u32 0, n x u64 affinity mask",
    ),
    (
        SeccompFilters::CODE,
        SeccompFilters::NAME,
        Owner::Thread,
        "u32 n, u32 shared, n x (u32 flags, u32 len, len x 8-byte sock_filter), oldest first",
    ),
    (Securebits::CODE, Securebits::NAME, Owner::Task, "u32 bits, u32 0"),
    (Pidfd::CODE, Pidfd::NAME, Owner::File, "i32 pid, u32 0"),
    (
        Fown::CODE,
        Fown::NAME,
        Owner::File,
        "u32 kind (0 tid, 1 pid, 2 pgrp), i32 owner, i32 signal, u32 0",
    ),
    (
        MapIdentity::CODE,
        MapIdentity::NAME,
        Owner::Vma,
        "u64 dev_major, u64 dev_minor, u64 ino",
    ),
    (
        UnknownVmFlags::CODE,
        UnknownVmFlags::NAME,
        Owner::Vma,
        "bytes names (the rest)",
    ),
    (
        FileIdentity::CODE,
        FileIdentity::NAME,
        Owner::File,
        "u64 dev, u64 ino, u64 mnt_id",
    ),
    (Unsupported::CODE, Unsupported::NAME, Owner::File, "(empty)"),
    (
        Eventfd::CODE,
        Eventfd::NAME,
        Owner::File,
        "u64 count, u32 semaphore (0/1), u32 0",
    ),
    (
        Timerfd::CODE,
        Timerfd::NAME,
        Owner::File,
        "i32 clock, u32 settime_flags, u64 ticks, u64 value_sec, u64 value_nsec, u64 interval_sec, u64 interval_nsec",
    ),
    (Signalfd::CODE, Signalfd::NAME, Owner::File, "u64 mask"),
    (
        Eventpoll::CODE,
        Eventpoll::NAME,
        Owner::File,
        "u32 n, u32 0, n x (i32 fd, u32 events, u64 data)",
    ),
    (
        Inotify::CODE,
        Inotify::NAME,
        Owner::File,
        "u32 n, u32 0, n x (i32 wd, u32 mask, u32 ignored_mask, u32 len, path[len])",
    ),
    (
        FileContents::CODE,
        FileContents::NAME,
        Owner::File,
        "u64 size, u32 kind (1 deleted, 2 memfd), u32 seals",
    ),
    (
        FileData::CODE,
        FileData::NAME,
        Owner::File,
        "u64 offset, bytes data (the rest, 1..=1 MiB); repeated, in offset order, after file_contents",
    ),
    (InodeOf::CODE, InodeOf::NAME, Owner::File, "u32 file, u32 0"),
    (MapContents::CODE, MapContents::NAME, Owner::Vma, "u32 file, u32 0"),
    (ExeContents::CODE, ExeContents::NAME, Owner::Task, "u32 file, u32 0"),
    (
        FileLocks::CODE,
        FileLocks::NAME,
        Owner::File,
        "u32 n, u32 0, n x (u32 kind (1 flock, 2 ofd), u32 write, u64 start, u64 len)",
    ),
    (
        PosixLocks::CODE,
        PosixLocks::NAME,
        Owner::Task,
        "u32 n, u32 0, n x (i32 fd, u32 write, u64 start, u64 len)",
    ),
    (
        Socket::CODE,
        Socket::NAME,
        Owner::File,
        sockets::SOCKET_LAYOUT,
    ),
    (
        SocketQueue::CODE,
        SocketQueue::NAME,
        Owner::File,
        sockets::QUEUE_LAYOUT,
    ),
    (
        TcpConnection::CODE,
        TcpConnection::NAME,
        Owner::File,
        sockets::TCP_LAYOUT,
    ),
    (
        NetlinkSocket::CODE,
        NetlinkSocket::NAME,
        Owner::File,
        sockets::NETLINK_LAYOUT,
    ),
];

/// The owner of typed record `code`, if it is one.
pub fn owner(code: u32) -> Option<Owner> {
    KINDS.iter().find(|k| k.0 == code).map(|k| k.2)
}

/// The typed records read so far, waiting for their owner.
#[derive(Debug, Default)]
pub struct Pending {
    /// Owner of the records held (all the same).
    pub owner: Option<Owner>,
    /// Offset and type of the first one held (for errors).
    pub first: Option<(u64, u32)>,
    /// Parent tag of the records held.
    pub parent: u32,
    /// Thread records.
    pub thread: ThreadRecords,
    /// Task records.
    pub task: TaskRecords,
    /// VMA records.
    pub vma: VmaRecords,
    /// File records.
    pub file: FileRecords,
}

fn queue(c: &mut Cur<'_, '_>) -> Result<Vec<SigInfo>> {
    let at = c.pos;
    let n = c.u32()?;
    if n > MAX_QUEUE || n as usize * SigInfo::LEN > c.f.payload.len() {
        return Err(c.bad(at, "queue length", n as u64, "what the payload holds"));
    }
    let _ = c.u32()?;
    let mut q = Vec::with_capacity(n as usize);
    for _ in 0..n {
        q.push(SigInfo(c.bytes(SigInfo::LEN)?.to_vec()));
    }
    Ok(q)
}

/// Most POSIX timers one record may hold (the kernel's default limit is far lower).
const MAX_TIMERS: u32 = 1 << 16;
/// Most affinity words (64 CPUs each) one record may hold.
const MAX_CPU_WORDS: u32 = 1 << 10;

fn time(c: &mut Cur<'_, '_>) -> Result<Time> {
    Ok((c.u64()? as i64, c.u64()? as i64))
}

fn put_time(p: &mut Put, t: Time) {
    p.u64(t.0 as u64).u64(t.1 as u64);
}

fn posix_timers(c: &mut Cur<'_, '_>) -> Result<Vec<PosixTimer>> {
    let at = c.pos;
    let n = c.u32()?;
    if n > MAX_TIMERS || n as usize * PosixTimers::ENTRY > c.f.payload.len() {
        return Err(c.bad(at, "timer count", n as u64, "what the payload holds"));
    }
    let _ = c.u32()?;
    let mut v = Vec::with_capacity(n as usize);
    for _ in 0..n {
        v.push(PosixTimer {
            id: c.i32()?,
            clock: c.i32()?,
            notify: c.i32()?,
            signo: c.i32()?,
            value: c.u64()?,
            tid: c.i32()?,
            overrun: c.i32()?,
            interval: time(c)?,
            left: time(c)?,
        });
    }
    Ok(v)
}

fn cpu_words(c: &mut Cur<'_, '_>) -> Result<Vec<u64>> {
    let at = c.pos;
    let n = c.u32()?;
    if n > MAX_CPU_WORDS || n as usize * 8 > c.f.payload.len() {
        return Err(c.bad(at, "affinity words", n as u64, "what the payload holds"));
    }
    let _ = c.u32()?;
    let mut v = Vec::with_capacity(n as usize);
    for _ in 0..n {
        v.push(c.u64()?);
    }
    Ok(v)
}

fn put_queue(p: &mut Put, q: &[SigInfo]) {
    p.u32(q.len() as u32).u32(0);
    for s in q {
        let mut b = s.0.clone();
        b.resize(SigInfo::LEN, 0);
        p.bytes(&b);
    }
}

/// A `u32 n, u32 0` count of `each`-byte entries, checked against the payload.
fn count(c: &mut Cur<'_, '_>, each: usize) -> Result<usize> {
    let at = c.pos;
    let n = c.u32()?;
    if n > MAX_LOCKS || n as usize * each > c.f.payload.len() {
        return Err(c.bad(at, "entry count", n as u64, "what the payload holds"));
    }
    let _ = c.u32()?;
    Ok(n as usize)
}

/// A `u32` that is 0 or 1.
fn flag(c: &mut Cur<'_, '_>) -> Result<bool> {
    let at = c.pos;
    match c.u32()? {
        0 => Ok(false),
        1 => Ok(true),
        v => Err(c.bad(at, "write flag", v as u64, "0 or 1")),
    }
}

/// Set `slot` once; a second record of the same kind is an error.
fn once<T>(slot: &mut Option<T>, v: T, f: &Frame<'_>) -> Result<()> {
    if slot.is_some() {
        return Err(f.err(ErrorKind::UnexpectedRecord {
            found: f.ty().to_string(),
            expected: "each typed record at most once per owner".into(),
        }));
    }
    *slot = Some(v);
    Ok(())
}

/// Decode typed record `f` into `into` (the records of its owner).
pub fn decode(f: &Frame<'_>, into: &mut Pending) -> Result<()> {
    let mut c = Cur::new(f);
    match f.ty().0 {
        Rseq::CODE => {
            let v = Rseq {
                ptr: c.u64()?,
                len: c.u32()?,
                sig: c.u32()?,
            };
            once(&mut into.thread.rseq, v, f)?;
        }
        RobustList::CODE => {
            let v = RobustList {
                head: c.u64()?,
                len: c.u64()?,
            };
            once(&mut into.thread.robust_list, v, f)?;
        }
        SigAltStack::CODE => {
            let sp = c.u64()?;
            let size = c.u64()?;
            let flags = c.u32()?;
            let _ = c.u32()?;
            once(
                &mut into.thread.sigaltstack,
                SigAltStack { sp, flags, size },
                f,
            )?;
        }
        ClearChildTid::CODE => {
            let v = ClearChildTid { addr: c.u64()? };
            once(&mut into.thread.clear_child_tid, v, f)?;
        }
        PendingSignals::CODE => {
            let mask = c.u64()?;
            let queue = queue(&mut c)?;
            once(&mut into.thread.pending, PendingSignals { mask, queue }, f)?;
        }
        Capabilities::CODE => {
            let v = Capabilities {
                inh: c.u64()?,
                prm: c.u64()?,
                eff: c.u64()?,
                bnd: c.u64()?,
                amb: c.u64()?,
            };
            once(&mut into.task.caps, v, f)?;
        }
        Security::CODE => {
            let v = Security {
                no_new_privs: c.u64()?,
                seccomp_mode: c.u64()?,
            };
            once(&mut into.task.security, v, f)?;
        }
        SharedPending::CODE => {
            let v = SharedPending {
                queue: queue(&mut c)?,
            };
            once(&mut into.task.shared_pending, v, f)?;
        }
        RealParent::CODE => {
            let ppid = c.i32()?;
            let _ = c.u32()?;
            once(&mut into.task.real_parent, RealParent { ppid }, f)?;
        }
        ParentDeathSignal::CODE => {
            let v = ParentDeathSignal { sig: c.u64()? };
            once(&mut into.task.pdeath_signal, v, f)?;
        }
        Itimers::CODE => {
            let mut v = Itimers::default();
            for t in v.timers.iter_mut() {
                t.interval = time(&mut c)?;
                t.value = time(&mut c)?;
            }
            once(&mut into.task.itimers, v, f)?;
        }
        PosixTimers::CODE => {
            let v = PosixTimers {
                timers: posix_timers(&mut c)?,
            };
            once(&mut into.task.posix_timers, v, f)?;
        }
        ProcessAttrs::CODE => {
            let v = ProcessAttrs {
                oom_score_adj: c.i32()?,
                dumpable: c.u32()?,
                coredump_filter: c.u64()?,
                child_subreaper: c.u32()?,
                thp_disable: c.u32()?,
            };
            once(&mut into.task.attrs, v, f)?;
        }
        JobStop::CODE => {
            let sig = c.u32()?;
            let _ = c.u32()?;
            once(&mut into.task.job_stop, JobStop { sig }, f)?;
        }
        Tty::CODE => {
            let at = c.pos;
            let master = match c.u32()? {
                0 => false,
                1 => true,
                n => return Err(c.bad(at, "master", n as u64, "0 or 1")),
            };
            let (index, sid, pgrp) = (c.i32()?, c.i32()?, c.i32()?);
            let mut winsize = [0u16; 4];
            for w in winsize.iter_mut() {
                *w = c.u16()?;
            }
            let termios = c.bytes(TERMIOS2_LEN)?.to_vec();
            let _ = c.u32()?;
            let v = Tty {
                master,
                index,
                sid,
                pgrp,
                winsize,
                termios,
            };
            once(&mut into.file.tty, Box::new(v), f)?;
        }
        ThreadAttrs::CODE => {
            let v = ThreadAttrs {
                nice: c.i32()?,
                policy: c.u32()?,
                rt_priority: c.u32()?,
                ioprio: c.u32()?,
                timer_slack: c.u64()?,
                affinity: cpu_words(&mut c)?,
            };
            once(&mut into.thread.attrs, v, f)?;
        }
        MapIdentity::CODE => {
            let v = MapIdentity {
                dev_major: c.u64()?,
                dev_minor: c.u64()?,
                ino: c.u64()?,
            };
            once(&mut into.vma.identity, v, f)?;
        }
        UnknownVmFlags::CODE => {
            let v = UnknownVmFlags {
                names: c.rest().to_vec(),
            };
            once(&mut into.vma.unknown_flags, v, f)?;
        }
        FileIdentity::CODE => {
            let v = FileIdentity {
                dev: c.u64()?,
                ino: c.u64()?,
                mnt_id: c.u64()?,
            };
            once(&mut into.file.identity, v, f)?;
        }
        Unsupported::CODE => once(&mut into.file.unsupported, Unsupported, f)?,
        Pidfd::CODE => {
            let pid = c.i32()?;
            let _ = c.u32()?;
            once(&mut into.file.pidfd, Pidfd { pid }, f)?;
        }
        Fown::CODE => {
            let at = c.pos;
            let kind = c.u32()?;
            if kind > 2 {
                return Err(c.bad(at, "kind", kind as u64, "0, 1 or 2"));
            }
            let v = Fown {
                kind,
                owner: c.i32()?,
                signal: c.i32()?,
            };
            let _ = c.u32()?;
            once(&mut into.file.fown, v, f)?;
        }
        Securebits::CODE => {
            let bits = c.u32()?;
            let _ = c.u32()?;
            once(&mut into.task.securebits, Securebits { bits }, f)?;
        }
        SeccompFilters::CODE => {
            let at = c.pos;
            let n = c.u32()?;
            let shared = c.u32()?;
            if n as usize > f.payload.len() / 8 {
                return Err(c.bad(at, "filter count", n as u64, "what the payload holds"));
            }
            if shared > n {
                return Err(c.bad(at + 4, "shared", shared as u64, "at most the filter count"));
            }
            let mut filters = Vec::with_capacity(n as usize);
            for _ in 0..n {
                let flags = c.u32()?;
                let at = c.pos;
                let len = c.u32()?;
                if len == 0 || len > MAX_BPF_INSNS {
                    return Err(c.bad(at, "instruction count", len as u64, "1..=4096"));
                }
                let insns = c.bytes(len as usize * 8)?.to_vec();
                filters.push(SeccompFilter { flags, insns });
            }
            once(
                &mut into.thread.seccomp,
                SeccompFilters { shared, filters },
                f,
            )?;
        }
        Eventfd::CODE => {
            let count = c.u64()?;
            let at = c.pos;
            let sem = c.u32()?;
            if sem > 1 {
                return Err(c.bad(at, "semaphore", sem as u64, "0 or 1"));
            }
            let _ = c.u32()?;
            let v = Eventfd {
                count,
                semaphore: sem == 1,
            };
            once(&mut into.file.eventfd, v, f)?;
        }
        Timerfd::CODE => {
            let v = Timerfd {
                clock: c.i32()?,
                settime_flags: c.u32()?,
                ticks: c.u64()?,
                value_sec: c.u64()?,
                value_nsec: c.u64()?,
                interval_sec: c.u64()?,
                interval_nsec: c.u64()?,
            };
            once(&mut into.file.timerfd, v, f)?;
        }
        Signalfd::CODE => {
            let v = Signalfd { mask: c.u64()? };
            once(&mut into.file.signalfd, v, f)?;
        }
        Eventpoll::CODE => {
            let at = c.pos;
            let n = c.u32()?;
            let _ = c.u32()?;
            if n as usize > f.payload.len() / 16 {
                return Err(c.bad(at, "target count", n as u64, "what the payload holds"));
            }
            let mut targets = Vec::with_capacity(n as usize);
            for _ in 0..n {
                targets.push(EpollTarget {
                    fd: c.i32()?,
                    events: c.u32()?,
                    data: c.u64()?,
                });
            }
            once(&mut into.file.eventpoll, Eventpoll { targets }, f)?;
        }
        Inotify::CODE => {
            let at = c.pos;
            let n = c.u32()?;
            let _ = c.u32()?;
            if n as usize > f.payload.len() / 16 {
                return Err(c.bad(at, "watch count", n as u64, "what the payload holds"));
            }
            let mut watches = Vec::with_capacity(n as usize);
            for _ in 0..n {
                watches.push(InotifyWatch {
                    wd: c.i32()?,
                    mask: c.u32()?,
                    ignored_mask: c.u32()?,
                    path: c.bstr()?.to_vec(),
                });
            }
            once(&mut into.file.inotify, Inotify { watches }, f)?;
        }
        FileContents::CODE => {
            let v = FileContents {
                size: c.u64()?,
                kind: c.u32()?,
                seals: c.u32()?,
            };
            once(&mut into.file.contents, v, f)?;
        }
        FileData::CODE => {
            let offset = c.u64()?;
            let at = c.pos;
            let data = c.rest();
            if data.is_empty() || data.len() > MAX_FILE_CHUNK {
                return Err(c.bad(at, "file data length", data.len() as u64, "1 to 1 MiB"));
            }
            let Some(size) = into.file.contents.map(|x| x.size) else {
                return Err(f.err(ErrorKind::UnexpectedRecord {
                    found: f.ty().to_string(),
                    expected: "file_data after the file_contents of its file".into(),
                }));
            };
            let from = into
                .file
                .data
                .last()
                .map_or(0, |d| d.offset + d.data.len() as u64);
            let end = offset.checked_add(data.len() as u64);
            if offset < from || end.is_none_or(|e| e > size) {
                return Err(c.bad(
                    0,
                    "file data offset",
                    offset,
                    &format!("at least {from}, and the run inside the file's {size} bytes"),
                ));
            }
            into.file.data.push(FileData {
                offset,
                data: data.to_vec(),
            });
        }
        InodeOf::CODE => {
            let v = InodeOf { file: c.u32()? };
            let _ = c.u32()?;
            once(&mut into.file.inode_of, v, f)?;
        }
        FileLocks::CODE => {
            let n = count(&mut c, 24)?;
            let mut locks = Vec::with_capacity(n);
            for _ in 0..n {
                locks.push(FileLock {
                    kind: c.u32()?,
                    write: flag(&mut c)?,
                    start: c.u64()?,
                    len: c.u64()?,
                });
            }
            once(&mut into.file.locks, FileLocks { locks }, f)?;
        }
        MapContents::CODE => {
            let v = MapContents { file: c.u32()? };
            let _ = c.u32()?;
            once(&mut into.vma.contents, v, f)?;
        }
        ExeContents::CODE => {
            let v = ExeContents { file: c.u32()? };
            let _ = c.u32()?;
            once(&mut into.task.exe, v, f)?;
        }
        PosixLocks::CODE => {
            let n = count(&mut c, 24)?;
            let mut locks = Vec::with_capacity(n);
            for _ in 0..n {
                locks.push(PosixLock {
                    fd: c.i32()?,
                    write: flag(&mut c)?,
                    start: c.u64()?,
                    len: c.u64()?,
                });
            }
            once(&mut into.task.posix_locks, PosixLocks { locks }, f)?;
        }
        code if sockets::is_socket(code) => sockets::decode(f, &mut c, &mut into.file.sock)?,
        code => return Err(f.err(ErrorKind::UnknownRecord { code })),
    }
    c.end()
}

/// One encoded typed record: (type code, payload).
pub type Encoded = (u32, Vec<u8>);

fn enc<R: Record>(r: &Option<R>, out: &mut Vec<Encoded>, put: impl FnOnce(&R, &mut Put)) {
    if let Some(r) = r {
        let mut p = Put::default();
        put(r, &mut p);
        out.push((R::CODE, p.0));
    }
}

/// The records of a thread, in code order.
pub fn encode_thread(r: &ThreadRecords) -> Vec<Encoded> {
    let mut v = Vec::new();
    enc(&r.rseq, &mut v, |x, p| {
        p.u64(x.ptr).u32(x.len).u32(x.sig);
    });
    enc(&r.robust_list, &mut v, |x, p| {
        p.u64(x.head).u64(x.len);
    });
    enc(&r.sigaltstack, &mut v, |x, p| {
        p.u64(x.sp).u64(x.size).u32(x.flags).u32(0);
    });
    enc(&r.clear_child_tid, &mut v, |x, p| {
        p.u64(x.addr);
    });
    enc(&r.pending, &mut v, |x, p| {
        p.u64(x.mask);
        put_queue(p, &x.queue);
    });
    enc(&r.attrs, &mut v, |x, p| {
        p.i32(x.nice).u32(x.policy).u32(x.rt_priority).u32(x.ioprio);
        p.u64(x.timer_slack).u32(x.affinity.len() as u32).u32(0);
        for w in &x.affinity {
            p.u64(*w);
        }
    });
    enc(&r.seccomp, &mut v, |x, p| {
        p.u32(x.filters.len() as u32).u32(x.shared);
        for f in &x.filters {
            p.u32(f.flags)
                .u32((f.insns.len() / 8) as u32)
                .bytes(&f.insns);
        }
    });
    v
}

/// The records of a task, in code order.
pub fn encode_task(r: &TaskRecords) -> Vec<Encoded> {
    let mut v = Vec::new();
    enc(&r.caps, &mut v, |x, p| {
        p.u64(x.inh).u64(x.prm).u64(x.eff).u64(x.bnd).u64(x.amb);
    });
    enc(&r.security, &mut v, |x, p| {
        p.u64(x.no_new_privs).u64(x.seccomp_mode);
    });
    enc(&r.shared_pending, &mut v, |x, p| put_queue(p, &x.queue));
    enc(&r.real_parent, &mut v, |x, p| {
        p.i32(x.ppid).u32(0);
    });
    enc(&r.pdeath_signal, &mut v, |x, p| {
        p.u64(x.sig);
    });
    enc(&r.itimers, &mut v, |x, p| {
        for t in &x.timers {
            put_time(p, t.interval);
            put_time(p, t.value);
        }
    });
    enc(&r.posix_timers, &mut v, |x, p| {
        p.u32(x.timers.len() as u32).u32(0);
        for t in &x.timers {
            p.i32(t.id)
                .i32(t.clock)
                .i32(t.notify)
                .i32(t.signo)
                .u64(t.value);
            p.i32(t.tid).i32(t.overrun);
            put_time(p, t.interval);
            put_time(p, t.left);
        }
    });
    enc(&r.attrs, &mut v, |x, p| {
        p.i32(x.oom_score_adj)
            .u32(x.dumpable)
            .u64(x.coredump_filter);
        p.u32(x.child_subreaper).u32(x.thp_disable);
    });
    enc(&r.securebits, &mut v, |x, p| {
        p.u32(x.bits).u32(0);
    });
    enc(&r.exe, &mut v, |x, p| {
        p.u32(x.file).u32(0);
    });
    enc(&r.posix_locks, &mut v, |x, p| {
        p.u32(x.locks.len() as u32).u32(0);
        for l in &x.locks {
            p.i32(l.fd).u32(l.write as u32).u64(l.start).u64(l.len);
        }
    });
    enc(&r.job_stop, &mut v, |x, p| {
        p.u32(x.sig).u32(0);
    });
    v
}

/// The records of a VMA, in code order.
pub fn encode_vma(r: &VmaRecords) -> Vec<Encoded> {
    let mut v = Vec::new();
    enc(&r.identity, &mut v, |x, p| {
        p.u64(x.dev_major).u64(x.dev_minor).u64(x.ino);
    });
    enc(&r.unknown_flags, &mut v, |x, p| {
        p.bytes(&x.names);
    });
    enc(&r.contents, &mut v, |x, p| {
        p.u32(x.file).u32(0);
    });
    v
}

/// The records of a file, in code order.
pub fn encode_file(r: &FileRecords) -> Vec<Encoded> {
    let mut v = Vec::new();
    enc(&r.identity, &mut v, |x, p| {
        p.u64(x.dev).u64(x.ino).u64(x.mnt_id);
    });
    enc(&r.unsupported, &mut v, |_, _| {});
    enc(&r.eventfd, &mut v, |x, p| {
        p.u64(x.count).u32(u32::from(x.semaphore)).u32(0);
    });
    enc(&r.timerfd, &mut v, |x, p| {
        p.i32(x.clock)
            .u32(x.settime_flags)
            .u64(x.ticks)
            .u64(x.value_sec)
            .u64(x.value_nsec)
            .u64(x.interval_sec)
            .u64(x.interval_nsec);
    });
    enc(&r.signalfd, &mut v, |x, p| {
        p.u64(x.mask);
    });
    enc(&r.eventpoll, &mut v, |x, p| {
        p.u32(x.targets.len() as u32).u32(0);
        for t in &x.targets {
            p.i32(t.fd).u32(t.events).u64(t.data);
        }
    });
    enc(&r.inotify, &mut v, |x, p| {
        p.u32(x.watches.len() as u32).u32(0);
        for w in &x.watches {
            p.i32(w.wd).u32(w.mask).u32(w.ignored_mask).bstr(&w.path);
        }
    });
    enc(&r.contents, &mut v, |x, p| {
        p.u64(x.size).u32(x.kind).u32(x.seals);
    });
    for d in &r.data {
        let mut p = Put::default();
        p.u64(d.offset).bytes(&d.data);
        v.push((FileData::CODE, p.0));
    }
    enc(&r.inode_of, &mut v, |x, p| {
        p.u32(x.file).u32(0);
    });
    enc(&r.locks, &mut v, |x, p| {
        p.u32(x.locks.len() as u32).u32(0);
        for l in &x.locks {
            p.u32(l.kind).u32(l.write as u32).u64(l.start).u64(l.len);
        }
    });
    enc(&r.pidfd, &mut v, |x, p| {
        p.i32(x.pid).u32(0);
    });
    enc(&r.fown, &mut v, |x, p| {
        p.u32(x.kind).i32(x.owner).i32(x.signal).u32(0);
    });
    sockets::encode(&r.sock, &mut v);
    enc(&r.tty, &mut v, |x, p| {
        p.u32(x.master as u32).i32(x.index).i32(x.sid).i32(x.pgrp);
        for w in x.winsize {
            p.u16(w);
        }
        let mut t = x.termios.clone();
        t.resize(TERMIOS2_LEN, 0);
        p.bytes(&t).u32(0);
    });
    v
}

/// The name of typed record `code` (its `Record::NAME`, e.g. `rseq`), if it is one.
pub fn name_of(code: u32) -> Option<&'static str> {
    KINDS.iter().find(|k| k.0 == code).map(|k| k.1)
}

/// The code of the typed record named `name` (its `Record::NAME`), if there is one.
pub fn code_of(name: &str) -> Option<u32> {
    KINDS.iter().find(|k| k.1 == name).map(|k| k.0)
}

/// Every typed record `ev` carries (a TASK, THREAD, VMA or FILE event; none for the
/// others), encoded as native-1 payloads in code order: a lossless spelling of the records
/// for sinks that are not native-1 images (the filesystem view).
pub fn encode_event(ev: &crate::model::Event<'_>) -> Vec<Encoded> {
    use crate::model::Event;
    match ev {
        Event::Task(t) => encode_task(&t.records),
        Event::Thread(t) => encode_thread(&t.records),
        Event::Vma(v) => encode_vma(&v.records),
        Event::File(f) => encode_file(&f.records),
        _ => Vec::new(),
    }
}

/// Decode typed records given as (code, payload), as [`encode_event`] wrote them, into the
/// records of `ev`, their owner. Each payload is checked as when read from an image; a
/// record of another owner's kind, an unknown code or a kind given twice is an error.
pub fn decode_into_event(ev: &mut crate::model::Event<'_>, recs: &[Encoded]) -> Result<()> {
    use crate::model::Event;
    let want = match ev {
        Event::Task(_) => Owner::Task,
        Event::Thread(_) => Owner::Thread,
        Event::Vma(_) => Owner::Vma,
        Event::File(_) => Owner::File,
        _ => {
            if let Some((code, _)) = recs.first() {
                return Err(crate::error::Error::new(
                    0,
                    ErrorKind::UnexpectedRecord {
                        found: RecordType(*code).to_string(),
                        expected: "typed records only on a task, thread, VMA or file".into(),
                    },
                ));
            }
            return Ok(());
        }
    };
    let mut into = Pending::default();
    for (code, payload) in recs {
        if owner(*code) != Some(want) {
            return Err(crate::error::Error::new(
                0,
                ErrorKind::UnexpectedRecord {
                    found: RecordType(*code).to_string(),
                    expected: format!("a typed record of a {want:?}"),
                },
            ));
        }
        let len = u32::try_from(payload.len() + 24).map_err(|_| {
            crate::error::Error::new(
                0,
                ErrorKind::UnexpectedRecord {
                    found: RecordType(*code).to_string(),
                    expected: "a payload under 4 GiB".into(),
                },
            )
        })?;
        let header = super::RecordHeader {
            ty: (*code).into(),
            len: len.into(),
            parent: 0.into(),
            objref: 0.into(),
            crc: 0.into(),
            reserved: 0.into(),
        };
        let f = Frame {
            offset: 0,
            header,
            payload,
        };
        decode(&f, &mut into)?;
    }
    match ev {
        Event::Task(t) => t.records = into.task,
        Event::Thread(t) => t.records = into.thread,
        Event::Vma(v) => v.records = into.vma,
        Event::File(f) => f.records = into.file,
        _ => {}
    }
    Ok(())
}
