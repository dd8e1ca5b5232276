//! Typed records of live state: what capture writes and restore reads, each a
//! typed struct owned by a task, a thread, a VMA or a file (in the owner's
//! `records` field). docs/ADDING-AN-OBJECT-KIND.md is the recipe for a new
//! kind: one struct here with its [`Record`] impl (name, native-1 code,
//! renderer), one field in its owner's container, one encoder line and one
//! decoder arm in `native/records.rs`.
//!
//! Images written before these records existed carried the same state as
//! string-keyed extras; [`adopt`] turns those keys into the typed records when
//! an image is read, and [`legacy`] turns typed records back into those keys
//! for the legacy revisions, whose encoders place (or report as lost) what they
//! can. Nothing else reads or writes these keys.

use super::sockets::SocketRecords;
use super::Extras;

mod process;
mod tty;
pub use process::{Itimer, Itimers, PosixTimer, PosixTimers, ProcessAttrs, ThreadAttrs, Time};
pub use tty::{JobStop, Tty, TERMIOS2_LEN};
mod contents;
pub use contents::*;
mod anon;
pub use anon::*;
mod procobj;
pub use procobj::{Fown, Pidfd, SeccompFilter, SeccompFilters, Securebits};

/// A typed record kind.
pub trait Record {
    /// Name in `schema`, `show`, `diff` and loss reports (snake_case).
    const NAME: &'static str;
    /// Its native-1 record type code: unique, and its low byte is at least 0x10
    /// (how a reader tells a typed record from the core records, docs/FORMAT.md).
    const CODE: u32;
    /// The renderer: named fields, formatted, in encoding order.
    fn fields(&self) -> Vec<(&'static str, String)>;
}

/// One rendered record: its name and its named fields (for `show`, `diff`).
pub type Rendered = (&'static str, Vec<(&'static str, String)>);

fn render<R: Record>(r: &Option<R>, out: &mut Vec<Rendered>) {
    if let Some(r) = r {
        out.push((R::NAME, r.fields()));
    }
}

fn hex(v: u64) -> String {
    format!("{v:#x}")
}

/// One queued signal: the kernel's 128-byte `siginfo_t`, as `PTRACE_PEEKSIGINFO`
/// returns it (little-endian).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SigInfo(pub Vec<u8>);

impl SigInfo {
    /// Size of one `siginfo_t`.
    pub const LEN: usize = 128;
    /// `si_signo`.
    pub fn signo(&self) -> i32 {
        self.word(0)
    }
    /// `si_code`.
    pub fn code(&self) -> i32 {
        self.word(8)
    }
    fn word(&self, at: usize) -> i32 {
        self.0
            .get(at..at + 4)
            .map_or(0, |b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    /// Split a queue of concatenated `siginfo_t`s; `None` unless a whole number of them.
    pub fn split(b: &[u8]) -> Option<Vec<SigInfo>> {
        if b.len() % Self::LEN != 0 {
            return None;
        }
        Some(b.chunks(Self::LEN).map(|c| SigInfo(c.to_vec())).collect())
    }
}

fn queue_text(q: &[SigInfo]) -> String {
    let v: Vec<String> = q
        .iter()
        .map(|s| format!("{}/{}", s.signo(), s.code()))
        .collect();
    format!("[{}]", v.join(" "))
}

fn join(q: &[SigInfo]) -> Vec<u8> {
    q.iter().flat_map(|s| s.0.iter().copied()).collect()
}

// ---- thread records -------------------------------------------------------

/// The thread's registered restartable-sequence area (`rseq(2)`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Rseq {
    /// Address of `struct rseq`.
    pub ptr: u64,
    /// Its registered length.
    pub len: u32,
    /// The abort signature.
    pub sig: u32,
}

impl Record for Rseq {
    const NAME: &'static str = "rseq";
    const CODE: u32 = 0x0410;
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ptr", hex(self.ptr)),
            ("len", self.len.to_string()),
            ("sig", hex(self.sig as u64)),
        ]
    }
}

/// The thread's robust futex list (`set_robust_list(2)`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RobustList {
    /// Address of the list head.
    pub head: u64,
    /// Length of the head structure.
    pub len: u64,
}

impl Record for RobustList {
    const NAME: &'static str = "robust_list";
    const CODE: u32 = 0x0411;
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![("head", hex(self.head)), ("len", self.len.to_string())]
    }
}

/// The thread's alternate signal stack (`sigaltstack(2)`, `stack_t`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SigAltStack {
    /// `ss_sp`.
    pub sp: u64,
    /// `ss_flags` (`SS_ONSTACK` 1, `SS_DISABLE` 2, `SS_AUTODISARM` 1<<31).
    pub flags: u32,
    /// `ss_size`.
    pub size: u64,
}

impl Record for SigAltStack {
    const NAME: &'static str = "sigaltstack";
    const CODE: u32 = 0x0412;
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("sp", hex(self.sp)),
            ("flags", hex(self.flags as u64)),
            ("size", self.size.to_string()),
        ]
    }
}

/// The thread's `clear_child_tid` address (`set_tid_address(2)`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ClearChildTid {
    /// The address the kernel clears (and futex-wakes) when the thread exits.
    pub addr: u64,
}

impl Record for ClearChildTid {
    const NAME: &'static str = "clear_child_tid";
    const CODE: u32 = 0x0413;
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![("addr", hex(self.addr))]
    }
}

/// Signals pending for the thread: the mask (`SigPnd`) and the queue with siginfo.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct PendingSignals {
    /// Pending mask (bit N-1 = signal N).
    pub mask: u64,
    /// The thread-directed queue in queue order.
    pub queue: Vec<SigInfo>,
}

impl Record for PendingSignals {
    const NAME: &'static str = "pending_signals";
    const CODE: u32 = 0x0414;
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![("mask", hex(self.mask)), ("queue", queue_text(&self.queue))]
    }
}

/// Typed records of a thread.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct ThreadRecords {
    /// Registered rseq area.
    pub rseq: Option<Rseq>,
    /// Robust futex list.
    pub robust_list: Option<RobustList>,
    /// Alternate signal stack.
    pub sigaltstack: Option<SigAltStack>,
    /// `clear_child_tid` address.
    pub clear_child_tid: Option<ClearChildTid>,
    /// Pending signals of the thread.
    pub pending: Option<PendingSignals>,
    /// Scheduling attributes and timer slack.
    pub attrs: Option<ThreadAttrs>,
    /// Seccomp filters.
    pub seccomp: Option<SeccompFilters>,
}

impl ThreadRecords {
    /// Every present record, rendered, in code order.
    pub fn rendered(&self) -> Vec<Rendered> {
        let mut v = Vec::new();
        render(&self.rseq, &mut v);
        render(&self.robust_list, &mut v);
        render(&self.sigaltstack, &mut v);
        render(&self.clear_child_tid, &mut v);
        render(&self.pending, &mut v);
        render(&self.attrs, &mut v);
        render(&self.seccomp, &mut v);
        v
    }
}

// ---- task records ---------------------------------------------------------

/// The task's capability sets (`/proc/PID/status` `Cap*`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Capabilities {
    /// Inheritable.
    pub inh: u64,
    /// Permitted.
    pub prm: u64,
    /// Effective.
    pub eff: u64,
    /// Bounding.
    pub bnd: u64,
    /// Ambient.
    pub amb: u64,
}

impl Record for Capabilities {
    const NAME: &'static str = "capabilities";
    const CODE: u32 = 0x0420;
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("inh", hex(self.inh)),
            ("prm", hex(self.prm)),
            ("eff", hex(self.eff)),
            ("bnd", hex(self.bnd)),
            ("amb", hex(self.amb)),
        ]
    }
}

/// `no_new_privs` and the seccomp mode (`/proc/PID/status`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Security {
    /// `NoNewPrivs`.
    pub no_new_privs: u64,
    /// `Seccomp` (0 off, 1 strict, 2 filter).
    pub seccomp_mode: u64,
}

impl Record for Security {
    const NAME: &'static str = "security";
    const CODE: u32 = 0x0421;
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("no_new_privs", self.no_new_privs.to_string()),
            ("seccomp_mode", self.seccomp_mode.to_string()),
        ]
    }
}

/// Signals pending for the whole process (the shared queue), with siginfo.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SharedPending {
    /// The queue in queue order.
    pub queue: Vec<SigInfo>,
}

impl Record for SharedPending {
    const NAME: &'static str = "shared_pending";
    const CODE: u32 = 0x0422;
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![("queue", queue_text(&self.queue))]
    }
}

/// The real parent of the image's root task on the capturing machine (the
/// model's `ppid` of a root is 0).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct RealParent {
    /// Its pid.
    pub ppid: i32,
}

impl Record for RealParent {
    const NAME: &'static str = "real_parent";
    const CODE: u32 = 0x0423;
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![("ppid", self.ppid.to_string())]
    }
}

/// The signal the task gets when its parent dies (`PR_SET_PDEATHSIG`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct ParentDeathSignal {
    /// The signal number.
    pub sig: u64,
}

impl Record for ParentDeathSignal {
    const NAME: &'static str = "parent_death_signal";
    const CODE: u32 = 0x0424;
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![("sig", self.sig.to_string())]
    }
}

/// Typed records of a task.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct TaskRecords {
    /// Capability sets.
    pub caps: Option<Capabilities>,
    /// `no_new_privs` and seccomp mode.
    pub security: Option<Security>,
    /// The process-wide pending queue.
    pub shared_pending: Option<SharedPending>,
    /// Real parent of a root task.
    pub real_parent: Option<RealParent>,
    /// Parent-death signal.
    pub pdeath_signal: Option<ParentDeathSignal>,
    /// Interval timers (when one is armed).
    pub itimers: Option<Itimers>,
    /// POSIX timers.
    pub posix_timers: Option<PosixTimers>,
    /// Process attributes.
    pub attrs: Option<ProcessAttrs>,
    /// The executable's contents, when it was deleted or is a memfd.
    pub exe: Option<ExeContents>,
    /// POSIX locks held by the process.
    pub posix_locks: Option<PosixLocks>,
    /// Securebits.
    pub securebits: Option<Securebits>,
    /// The signal that stopped it (captured stopped, job control).
    pub job_stop: Option<JobStop>,
}

impl TaskRecords {
    /// Every present record, rendered, in code order.
    pub fn rendered(&self) -> Vec<Rendered> {
        let mut v = Vec::new();
        render(&self.caps, &mut v);
        render(&self.security, &mut v);
        render(&self.shared_pending, &mut v);
        render(&self.real_parent, &mut v);
        render(&self.pdeath_signal, &mut v);
        render(&self.itimers, &mut v);
        render(&self.posix_timers, &mut v);
        render(&self.attrs, &mut v);
        render(&self.securebits, &mut v);
        render(&self.exe, &mut v);
        render(&self.posix_locks, &mut v);
        render(&self.job_stop, &mut v);
        v
    }
}

// ---- VMA records ----------------------------------------------------------

/// The backing file of a mapping as `/proc/PID/maps` names it: device and inode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct MapIdentity {
    /// Device major.
    pub dev_major: u64,
    /// Device minor.
    pub dev_minor: u64,
    /// Inode (restore refuses a file whose inode changed).
    pub ino: u64,
}

impl Record for MapIdentity {
    const NAME: &'static str = "map_identity";
    const CODE: u32 = 0x0430;
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("dev", format!("{}:{}", self.dev_major, self.dev_minor)),
            ("ino", self.ino.to_string()),
        ]
    }
}

/// `VmFlags` names of the mapping this capture did not know (space-separated).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct UnknownVmFlags {
    /// The names, as `smaps` prints them.
    pub names: Vec<u8>,
}

impl Record for UnknownVmFlags {
    const NAME: &'static str = "unknown_vm_flags";
    const CODE: u32 = 0x0431;
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![("names", String::from_utf8_lossy(&self.names).into_owned())]
    }
}

/// Typed records of a VMA.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct VmaRecords {
    /// Device and inode of the backing file.
    pub identity: Option<MapIdentity>,
    /// Unknown `VmFlags`.
    pub unknown_flags: Option<UnknownVmFlags>,
    /// The mapped inode's contents are in the image (a deleted file, a memfd).
    pub contents: Option<MapContents>,
}

impl VmaRecords {
    /// Every present record, rendered, in code order.
    pub fn rendered(&self) -> Vec<Rendered> {
        let mut v = Vec::new();
        render(&self.identity, &mut v);
        render(&self.unknown_flags, &mut v);
        render(&self.contents, &mut v);
        v
    }
}

// ---- file records ---------------------------------------------------------

/// Which file an open file description is: device, inode and mount id.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FileIdentity {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
    /// `mnt_id` of `/proc/PID/fdinfo`.
    pub mnt_id: u64,
}

impl Record for FileIdentity {
    const NAME: &'static str = "file_identity";
    const CODE: u32 = 0x0440;
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("dev", hex(self.dev)),
            ("ino", self.ino.to_string()),
            ("mnt_id", self.mnt_id.to_string()),
        ]
    }
}

/// The file's state was not captured (`--allow-unsupported`): a restore goes without it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Unsupported;

impl Record for Unsupported {
    const NAME: &'static str = "unsupported";
    const CODE: u32 = 0x0441;
    fn fields(&self) -> Vec<(&'static str, String)> {
        Vec::new()
    }
}

/// Typed records of a file.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct FileRecords {
    /// Device, inode, mount.
    pub identity: Option<FileIdentity>,
    /// Recorded without its state.
    pub unsupported: Option<Unsupported>,
    /// An eventfd.
    pub eventfd: Option<Eventfd>,
    /// A timerfd.
    pub timerfd: Option<Timerfd>,
    /// A signalfd.
    pub signalfd: Option<Signalfd>,
    /// An eventpoll instance.
    pub eventpoll: Option<Eventpoll>,
    /// An inotify instance.
    pub inotify: Option<Inotify>,
    /// The inode's size, kind and seals (its contents are in `data`).
    pub contents: Option<FileContents>,
    /// The inode's contents, in offset order (repeated record).
    pub data: Vec<FileData>,
    /// The inode is the one another file object re-creates.
    pub inode_of: Option<InodeOf>,
    /// flock and OFD locks held by the open file description.
    pub locks: Option<FileLocks>,
    /// A socket's records (model/sockets.rs).
    pub sock: SocketRecords,
    /// A pseudo-terminal's state (boxed: a File event stays small).
    pub tty: Option<Box<Tty>>,
    /// A pidfd.
    pub pidfd: Option<Pidfd>,
    /// Owner and signal of signal-driven I/O.
    pub fown: Option<Fown>,
}

impl FileRecords {
    /// Every present record, rendered, in code order.
    pub fn rendered(&self) -> Vec<Rendered> {
        let mut v = Vec::new();
        render(&self.identity, &mut v);
        render(&self.unsupported, &mut v);
        render(&self.eventfd, &mut v);
        render(&self.timerfd, &mut v);
        render(&self.signalfd, &mut v);
        render(&self.eventpoll, &mut v);
        render(&self.inotify, &mut v);
        render(&self.contents, &mut v);
        for d in &self.data {
            v.push((FileData::NAME, d.fields()));
        }
        render(&self.inode_of, &mut v);
        render(&self.locks, &mut v);
        render(&self.pidfd, &mut v);
        render(&self.fown, &mut v);
        self.sock.render(&mut v);
        render(&self.tty, &mut v);
        v
    }
}

// ---- the extras keys of images written before these records ---------------

/// Every extras key images carried before typed records replaced them (read back
/// as typed records by [`adopt`]; no writer of ours puts them into extras).
pub const LEGACY_KEYS: &[&str] = &[
    "rseq_ptr",
    "rseq_len",
    "rseq_sig",
    "robust_list_head",
    "robust_list_len",
    "sigaltstack_sp",
    "sigaltstack_flags",
    "sigaltstack_size",
    "clear_child_tid",
    "sigpending",
    "siginfo_pending",
    "cap_inh",
    "cap_prm",
    "cap_eff",
    "cap_bnd",
    "cap_amb",
    "no_new_privs",
    "seccomp_mode",
    "siginfo_shared",
    "real_ppid",
    "pdeath_signal",
    "dev_major",
    "dev_minor",
    "ino",
    "vm_flags_unknown",
    "dev",
    "mnt_id",
    "unsupported",
];

/// Turning the extras keys of older images into typed records (on read).
pub mod adopt;

/// Typed records back to the extras keys of older images (for the legacy
/// encoders, which place what they can and report the rest as lost).
pub mod legacy;
