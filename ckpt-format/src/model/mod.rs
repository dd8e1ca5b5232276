//! The revision-independent image model: a stream of typed [`Event`]s.
//!
//! Every revision's decoder produces these events and every revision's encoder
//! consumes them; live capture produces them and live restore consumes them.
//! See `docs/MODEL.md` for the grammar the stream follows.
//!
//! ```text
//! image := Header task* Error? Tail
//! task  := Task ( Thread | Mm | vma | Fs | SigActions | Rlimits | Pipe | File | Fd )*   Unknown may appear anywhere
//! vma   := Vma (Pages | ZeroPages | ParentPages)* VmaEnd
//! ```
//!
//! Shared objects ([`File`], [`Pipe`]) carry an object id (objref) and appear in
//! full exactly once, before the first event that refers to them; later events
//! refer to them by id only.

pub mod records;
pub mod sockets;
pub use records::{
    Capabilities, ClearChildTid, EpollTarget, Eventfd, Eventpoll, FileIdentity, FileRecords,
    Inotify, InotifyWatch, MapIdentity, ParentDeathSignal, PendingSignals, RealParent, Record,
    RobustList, Rseq, Security, SharedPending, SigAltStack, SigInfo, Signalfd, TaskRecords,
    ThreadRecords, Timerfd, UnknownVmFlags, Unsupported, VmaRecords,
};
pub use records::{
    ExeContents, FileContents, FileData, FileLock, FileLocks, InodeOf, MapContents, PosixLock,
    PosixLocks, CONTENTS_DELETED, CONTENTS_MEMFD, LOCK_FLOCK, LOCK_OFD, MAX_FILE_CHUNK,
};
pub use records::{Fown, Pidfd, SeccompFilter, SeccompFilters, Securebits};
pub use records::{
    Itimer, Itimers, JobStop, PosixTimer, PosixTimers, ProcessAttrs, ThreadAttrs, Tty,
};
pub use sockets::{
    NetlinkSocket, QueuedMessage, SockAddr, SockOptions, Socket, SocketQueue, SocketRecords,
    TcpConnection, TcpWindow,
};

mod pages;
mod regs;
pub use pages::{Addrs, PageChunk, ZeroRun};
pub use regs::Regs;

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

/// A format revision this crate can read and write.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Revision {
    /// Linux-CR RFC v5 (September 2008), era A `cr_hdr` framing.
    CrV5,
    /// Linux-CR v21 (2010), final upstream-style `ckpt_hdr` framing, x86-64.
    CkptV21,
    /// ckpt's own revision, specified in `docs/FORMAT.md`.
    Native1,
}

impl Revision {
    /// Every supported revision, oldest first.
    pub const ALL: [Revision; 3] = [Revision::CrV5, Revision::CkptV21, Revision::Native1];

    /// The stable short name used on the command line (`cr-v5`, `ckpt-v21`, `native-1`).
    pub fn name(self) -> &'static str {
        match self {
            Revision::CrV5 => "cr-v5",
            Revision::CkptV21 => "ckpt-v21",
            Revision::Native1 => "native-1",
        }
    }

    /// Parse a short name as printed by [`Revision::name`].
    pub fn from_name(s: &str) -> Option<Revision> {
        Revision::ALL.into_iter().find(|r| r.name() == s)
    }
}

impl fmt::Display for Revision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// CPU architecture of the checkpointed tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Arch {
    /// x86-64 (`CKPT_ARCH_X86_64`).
    X86_64,
    /// i386 (`CKPT_ARCH_X86_32`).
    X86_32,
}

impl Arch {
    /// Short name (`x86_64`, `x86_32`).
    pub fn name(self) -> &'static str {
        match self {
            Arch::X86_64 => "x86_64",
            Arch::X86_32 => "x86_32",
        }
    }
    /// Size of a user-space pointer (and of a page address in legacy images), in bytes.
    pub fn word_size(self) -> usize {
        match self {
            Arch::X86_64 => 8,
            Arch::X86_32 => 4,
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A value in an [`Extras`] map.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Extra {
    /// An integer field.
    U64(u64),
    /// A byte-string field.
    Bytes(Vec<u8>),
}

/// Fields that a revision carries but the core model has no named place for
/// (for example `f_version` of era-A files, or v21's `robust_futex_list`).
///
/// Keys are `revision-neutral snake_case` names documented in `docs/MODEL.md`.
/// Native-1 stores extras verbatim, so they survive conversion through it; an
/// encoder that cannot place an extra reports it as lost.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Extras(pub BTreeMap<String, Extra>);

impl Extras {
    /// An empty map.
    pub fn new() -> Self {
        Extras(BTreeMap::new())
    }
    /// Set an integer field.
    pub fn set_u64(&mut self, key: &str, v: u64) {
        self.0.insert(key.to_string(), Extra::U64(v));
    }
    /// Set a byte-string field.
    pub fn set_bytes(&mut self, key: &str, v: &[u8]) {
        self.0.insert(key.to_string(), Extra::Bytes(v.to_vec()));
    }
    /// An integer field, if present and an integer.
    pub fn u64(&self, key: &str) -> Option<u64> {
        match self.0.get(key) {
            Some(Extra::U64(v)) => Some(*v),
            _ => None,
        }
    }
    /// A byte-string field, if present and bytes.
    pub fn bytes(&self, key: &str) -> Option<&[u8]> {
        match self.0.get(key) {
            Some(Extra::Bytes(v)) => Some(v),
            _ => None,
        }
    }
    /// True when there are no extras.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The running kernel at capture time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Kernel {
    /// `LINUX_VERSION_CODE` major number.
    pub major: u16,
    /// `LINUX_VERSION_CODE` minor number.
    pub minor: u16,
    /// `LINUX_VERSION_CODE` patch level (saturated at 255 by old kernels).
    pub patch: u16,
    /// `uname -r` bytes, without trailing NULs.
    pub release: Vec<u8>,
    /// `uname -v` bytes, without trailing NULs.
    pub version: Vec<u8>,
    /// `uname -m` bytes, without trailing NULs.
    pub machine: Vec<u8>,
}

/// Parse `major.minor.patch` from a release string (`6.1.0-13-amd64` → 6, 1, 0);
/// the patch level saturates at 255 as in `LINUX_VERSION_CODE`.
pub fn parse_release(r: &str) -> (u16, u16, u16) {
    let mut nums = r
        .split(|c: char| !c.is_ascii_digit())
        .take(3)
        .map(|s| s.parse::<u32>().unwrap_or(0));
    let mut n = || nums.next().unwrap_or(0);
    let (a, b, c) = (n(), n(), n());
    (a.min(255) as u16, b.min(255) as u16, c.min(255) as u16)
}

impl Kernel {
    /// A kernel from its `uname` strings; the version numbers are read from `release`
    /// as [`parse_release`] does (`2.6.33-ckpt` → 2, 6, 33).
    ///
    /// ```
    /// let k = ckpt_format::Kernel::from_uname(b"2.6.27-rc6-cr5", b"#5 SMP", b"i686");
    /// assert_eq!((k.major, k.minor, k.patch), (2, 6, 27));
    /// ```
    pub fn from_uname(release: &[u8], version: &[u8], machine: &[u8]) -> Kernel {
        let (major, minor, patch) = parse_release(&String::from_utf8_lossy(release));
        Kernel {
            major,
            minor,
            patch,
            release: release.to_vec(),
            version: version.to_vec(),
            machine: machine.to_vec(),
        }
    }
}

/// The image header: what wrote the image, when, for which kernel and CPU.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Header {
    /// Revision the image was decoded from (encoders write their own).
    pub revision: Revision,
    /// Architecture of the tasks.
    pub arch: Arch,
    /// Page size in bytes (4096 on x86).
    pub page_size: u32,
    /// Kernel identification.
    pub kernel: Kernel,
    /// Capture time, seconds since the Unix epoch.
    pub time: u64,
    /// Checkpoint flags (revision-specific meaning; `uflags` in v21, `flags` in v5).
    pub flags: u64,
    /// Name of the program that wrote the image (empty for kernel-written images).
    pub tool: String,
    /// Version of that program.
    pub tool_version: String,
    /// Revision-specific fields without a named place here.
    pub extras: Extras,
    /// The image this one is an increment of (pre-copy chains, docs/FORMAT.md "Parent
    /// images"): pages marked [`Event::ParentPages`] have that image's contents.
    pub parent: Option<ParentRef>,
}

/// Which image a pre-copy increment refers to: the three numbers of the parent's TAIL
/// (its record count, the tail's byte offset and the stream CRC, which covers every byte
/// of it) and where to look for it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct ParentRef {
    /// The parent's TAIL `records`.
    pub records: u64,
    /// The parent's TAIL `bytes` (offset of its tail record).
    pub bytes: u64,
    /// The parent's TAIL `stream_crc`.
    pub stream_crc: u32,
    /// The parent's path as the writer was given it, relative to this image's directory
    /// when not absolute (a hint; readers may be told another path).
    pub path: Vec<u8>,
}

impl Header {
    /// A header of `revision` for `arch` tasks under `kernel`, written at `time`: 4096-byte
    /// pages, no flags, no writer identity, no extras.
    pub fn new(revision: Revision, arch: Arch, kernel: Kernel, time: u64) -> Header {
        Header {
            revision,
            arch,
            page_size: 4096,
            kernel,
            time,
            flags: 0,
            tool: String::new(),
            tool_version: String::new(),
            extras: Extras::new(),
            parent: None,
        }
    }
}

/// One task (a process, or the thread-group leader of a multi-threaded process).
///
/// The events that follow a `Task`, up to the next `Task` or the end, belong to it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Task {
    /// Process id.
    pub pid: i32,
    /// Thread-group id.
    pub tgid: i32,
    /// Parent's pid (0 for the root of the image).
    pub ppid: i32,
    /// Process-group id.
    pub pgid: i32,
    /// Session id.
    pub sid: i32,
    /// `comm`, raw bytes up to 16 (`TASK_COMM_LEN`), trailing NULs removed.
    pub comm: Vec<u8>,
    /// Scheduler state (`task_struct.state`; 0 = runnable, 1 = interruptible ...).
    pub state: u32,
    /// Exit state (non-zero for zombies).
    pub exit_state: u32,
    /// Exit code.
    pub exit_code: u32,
    /// Signal sent to the parent on exit (usually SIGCHLD = 17).
    pub exit_signal: u32,
    /// Credentials summary.
    pub creds: Creds,
    /// Typed records of live state ([`TaskRecords`]).
    pub records: TaskRecords,
    /// Revision-specific fields without a named place here.
    pub extras: Extras,
}

/// Credentials summary of a task.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Creds {
    /// Real, effective, saved and filesystem user ids.
    pub uid: [u32; 4],
    /// Real, effective, saved and filesystem group ids.
    pub gid: [u32; 4],
    /// Supplementary groups.
    pub groups: Vec<u32>,
}

/// Kind of the saved FPU state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FpuKind {
    /// The `XSAVE` area as `PTRACE_GETREGSET NT_X86_XSTATE` returns it.
    Xsave,
    /// The 512-byte `FXSAVE` area.
    Fxsave,
    /// A kernel-internal layout copied verbatim by a legacy kernel (era A `thread_xstate`).
    Legacy,
}

/// Saved FPU/vector state of a thread.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Fpu {
    /// What `data` holds.
    pub kind: FpuKind,
    /// XCR0 / xfeatures mask the area was saved with (0 when unknown).
    pub xfeatures: u64,
    /// The raw area; its length is the area size.
    pub data: Vec<u8>,
}

/// One thread of a task.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Thread {
    /// Thread id.
    pub tid: i32,
    /// General-purpose registers.
    pub regs: Regs,
    /// FPU/vector state, when saved.
    pub fpu: Option<Fpu>,
    /// TLS descriptors, raw: on x86-64 an array of 16-byte `struct user_desc`
    /// (little-endian, as `PTRACE_GET_THREAD_AREA` returns them); on x86-32 the
    /// GDT TLS array, 8 bytes per descriptor.
    pub tls: Vec<u8>,
    /// Blocked signal mask (bit N-1 = signal N).
    pub sigmask: u64,
    /// Typed records of live state ([`ThreadRecords`]).
    pub records: ThreadRecords,
    /// Revision-specific fields without a named place here.
    pub extras: Extras,
}

/// The address space of a task, apart from its VMAs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Mm {
    /// Start of the text segment.
    pub start_code: u64,
    /// End of the text segment.
    pub end_code: u64,
    /// Start of the data segment.
    pub start_data: u64,
    /// End of the data segment.
    pub end_data: u64,
    /// Start of the heap.
    pub start_brk: u64,
    /// Current program break.
    pub brk: u64,
    /// Start (top) of the main stack.
    pub start_stack: u64,
    /// Start of the argument strings.
    pub arg_start: u64,
    /// End of the argument strings.
    pub arg_end: u64,
    /// Start of the environment strings.
    pub env_start: u64,
    /// End of the environment strings.
    pub env_end: u64,
    /// The auxiliary vector as (type, value) pairs flattened, including the final AT_NULL pair.
    pub auxv: Vec<u64>,
    /// Path of the executable, if known.
    pub exe: Option<Vec<u8>>,
    /// Execution domain (`personality(2)`).
    pub personality: u32,
    /// Revision-specific fields without a named place here.
    pub extras: Extras,
}

/// What a VMA maps.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VmaKind {
    /// Private anonymous memory.
    Anon,
    /// A file mapping.
    File,
    /// The main stack.
    Stack,
    /// The brk heap.
    Heap,
    /// The vDSO.
    Vdso,
    /// The vvar page(s) of the vDSO.
    Vvar,
    /// Shared anonymous memory.
    SharedAnon,
    /// Anything else (vsyscall ...).
    Other,
}

impl VmaKind {
    /// Stable lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            VmaKind::Anon => "anon",
            VmaKind::File => "file",
            VmaKind::Stack => "stack",
            VmaKind::Heap => "heap",
            VmaKind::Vdso => "vdso",
            VmaKind::Vvar => "vvar",
            VmaKind::SharedAnon => "shared-anon",
            VmaKind::Other => "other",
        }
    }
    /// Numeric code used by native-1 (see docs/FORMAT.md).
    pub fn code(self) -> u32 {
        match self {
            VmaKind::Anon => 1,
            VmaKind::File => 2,
            VmaKind::Stack => 3,
            VmaKind::Heap => 4,
            VmaKind::Vdso => 5,
            VmaKind::Vvar => 6,
            VmaKind::SharedAnon => 7,
            VmaKind::Other => 8,
        }
    }
    /// Inverse of [`VmaKind::code`].
    pub fn from_code(c: u32) -> Option<VmaKind> {
        Some(match c {
            1 => VmaKind::Anon,
            2 => VmaKind::File,
            3 => VmaKind::Stack,
            4 => VmaKind::Heap,
            5 => VmaKind::Vdso,
            6 => VmaKind::Vvar,
            7 => VmaKind::SharedAnon,
            8 => VmaKind::Other,
            _ => return None,
        })
    }
}

/// `PROT_READ`.
pub const PROT_READ: u32 = 1;
/// `PROT_WRITE`.
pub const PROT_WRITE: u32 = 2;
/// `PROT_EXEC`.
pub const PROT_EXEC: u32 = 4;
/// VMA flag: shared mapping (`VM_SHARED`, 0x8).
pub const VM_SHARED: u64 = 0x8;

/// One virtual memory area.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Vma {
    /// First address (page aligned).
    pub start: u64,
    /// One past the last address (page aligned, > start).
    pub end: u64,
    /// `PROT_*` bits.
    pub prot: u32,
    /// Kernel `vm_flags` (VM_READ 0x1, VM_WRITE 0x2, VM_EXEC 0x4, VM_SHARED 0x8, VM_GROWSDOWN 0x100 ...).
    pub flags: u64,
    /// Offset into the backing file, in pages.
    pub pgoff: u64,
    /// What the VMA maps.
    pub kind: VmaKind,
    /// Path of the backing file, for file mappings.
    pub file: Option<Vec<u8>>,
    /// Typed records ([`VmaRecords`]).
    pub records: VmaRecords,
    /// Revision-specific fields without a named place here.
    pub extras: Extras,
}

/// What an open file is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// A regular file.
    Regular,
    /// A directory.
    Directory,
    /// One end of an anonymous pipe.
    Pipe,
    /// A named pipe.
    Fifo,
    /// A character device (/dev/null, a tty ...).
    CharDevice,
    /// A socket.
    Socket,
    /// Anything else (eventfd, epoll, a symlink in very old images ...).
    Other,
}

impl FileKind {
    /// Stable lower-case name.
    pub fn name(self) -> &'static str {
        match self {
            FileKind::Regular => "regular",
            FileKind::Directory => "directory",
            FileKind::Pipe => "pipe",
            FileKind::Fifo => "fifo",
            FileKind::CharDevice => "chardev",
            FileKind::Socket => "socket",
            FileKind::Other => "other",
        }
    }
    /// Numeric code used by native-1.
    pub fn code(self) -> u32 {
        match self {
            FileKind::Regular => 1,
            FileKind::Directory => 2,
            FileKind::Pipe => 3,
            FileKind::Fifo => 4,
            FileKind::CharDevice => 5,
            FileKind::Socket => 6,
            FileKind::Other => 7,
        }
    }
    /// Inverse of [`FileKind::code`].
    pub fn from_code(c: u32) -> Option<FileKind> {
        Some(match c {
            1 => FileKind::Regular,
            2 => FileKind::Directory,
            3 => FileKind::Pipe,
            4 => FileKind::Fifo,
            5 => FileKind::CharDevice,
            6 => FileKind::Socket,
            7 => FileKind::Other,
            _ => return None,
        })
    }
}

/// An open file description: a shared object, defined once and referred to by id.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct File {
    /// Object id (objref), unique among the image's objects, > 0.
    pub id: u32,
    /// What it is.
    pub kind: FileKind,
    /// Path (empty for pipes and sockets).
    pub path: Vec<u8>,
    /// `open(2)` flags (`O_ACCMODE`, `O_APPEND`, `O_NONBLOCK` ...).
    pub flags: u32,
    /// `st_mode` of the file, or `f_mode` for legacy images.
    pub mode: u32,
    /// File position.
    pub pos: u64,
    /// For pipe and FIFO ends: id of the [`Pipe`] object.
    pub pipe: Option<u32>,
    /// Typed records ([`FileRecords`]).
    pub records: FileRecords,
    /// Revision-specific fields without a named place here.
    pub extras: Extras,
}

/// A pipe: a shared object both ends refer to, with the bytes buffered in it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pipe<'a> {
    /// Object id (objref), unique among the image's objects, > 0.
    pub id: u32,
    /// Bytes buffered in the pipe at capture time, oldest first.
    pub data: Cow<'a, [u8]>,
}

/// An entry of a task's fd table.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Fd {
    /// Descriptor number.
    pub fd: i32,
    /// Close-on-exec flag.
    pub cloexec: bool,
    /// Id of the [`File`] it refers to.
    pub file: u32,
}

/// Filesystem context of a task.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Fs {
    /// Current directory.
    pub cwd: Vec<u8>,
    /// Root directory.
    pub root: Vec<u8>,
    /// File-mode creation mask.
    pub umask: u32,
}

/// The disposition of one signal.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct SigAction {
    /// Handler address, or 0 = SIG_DFL, 1 = SIG_IGN.
    pub handler: u64,
    /// `SA_*` flags.
    pub flags: u64,
    /// `sa_restorer`.
    pub restorer: u64,
    /// Signals blocked while the handler runs.
    pub mask: u64,
}

/// A resource limit.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Rlimit {
    /// Soft limit (`u64::MAX` = infinity).
    pub cur: u64,
    /// Hard limit (`u64::MAX` = infinity).
    pub max: u64,
}

/// A record the decoder does not understand, kept so that it survives
/// inspection and same-revision round trips.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Unknown<'a> {
    /// Revision the record comes from.
    pub revision: Revision,
    /// Its type code.
    pub type_code: u32,
    /// Its parent tag (0 when the revision has none).
    pub parent: u32,
    /// Its payload (everything after the record header).
    pub payload: Cow<'a, [u8]>,
}

/// One event of the model.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Event<'a> {
    /// Always first.
    Header(Header),
    /// Starts a task.
    Task(Task),
    /// A thread of the current task.
    Thread(Thread),
    /// The current task's address space.
    Mm(Mm),
    /// A VMA of the current task; its pages follow, then [`Event::VmaEnd`].
    Vma(Vma),
    /// Pages of the current VMA.
    Pages(PageChunk<'a>),
    /// All-zero pages of the current VMA.
    ZeroPages(ZeroRun),
    /// Pages of the current VMA whose contents are those of the parent image
    /// ([`Header::parent`]) at the same addresses of the task with the same pid.
    ParentPages(ZeroRun),
    /// Ends the current VMA's pages.
    VmaEnd,
    /// cwd, root and umask of the current task.
    Fs(Fs),
    /// Signal dispositions of the current task, for signals 1..=N in order.
    SigActions(Vec<SigAction>),
    /// Resource limits of the current task, indexed by `RLIMIT_*`.
    Rlimits(Vec<Rlimit>),
    /// Defines a pipe object.
    Pipe(Pipe<'a>),
    /// Defines a file object.
    File(File),
    /// An fd of the current task.
    Fd(Fd),
    /// The writer reported an error; the image is incomplete.
    Error(Vec<u8>),
    /// A record this revision's decoder did not understand.
    Unknown(Unknown<'a>),
    /// Always last.
    Tail,
}

impl Event<'_> {
    /// Short name of the event kind (`header`, `task`, `pages` ...).
    pub fn kind_name(&self) -> &'static str {
        match self {
            Event::Header(_) => "header",
            Event::Task(_) => "task",
            Event::Thread(_) => "thread",
            Event::Mm(_) => "mm",
            Event::Vma(_) => "vma",
            Event::Pages(_) => "pages",
            Event::ZeroPages(_) => "zero-pages",
            Event::ParentPages(_) => "parent-pages",
            Event::VmaEnd => "vma-end",
            Event::Fs(_) => "fs",
            Event::SigActions(_) => "sigactions",
            Event::Rlimits(_) => "rlimits",
            Event::Pipe(_) => "pipe",
            Event::File(_) => "file",
            Event::Fd(_) => "fd",
            Event::Error(_) => "error",
            Event::Unknown(_) => "unknown",
            Event::Tail => "tail",
        }
    }

    /// Copy every borrowed slice, detaching the event from its source.
    pub fn into_owned(self) -> Event<'static> {
        match self {
            Event::Header(h) => Event::Header(h),
            Event::Task(t) => Event::Task(t),
            Event::Thread(t) => Event::Thread(t),
            Event::Mm(m) => Event::Mm(m),
            Event::Vma(v) => Event::Vma(v),
            Event::Pages(p) => Event::Pages(p.into_owned()),
            Event::ZeroPages(z) => Event::ZeroPages(z),
            Event::ParentPages(z) => Event::ParentPages(z),
            Event::VmaEnd => Event::VmaEnd,
            Event::Fs(f) => Event::Fs(f),
            Event::SigActions(s) => Event::SigActions(s),
            Event::Rlimits(r) => Event::Rlimits(r),
            Event::Pipe(p) => Event::Pipe(Pipe {
                id: p.id,
                data: Cow::Owned(p.data.into_owned()),
            }),
            Event::File(f) => Event::File(f),
            Event::Fd(f) => Event::Fd(f),
            Event::Error(e) => Event::Error(e),
            Event::Unknown(u) => Event::Unknown(Unknown {
                revision: u.revision,
                type_code: u.type_code,
                parent: u.parent,
                payload: Cow::Owned(u.payload.into_owned()),
            }),
            Event::Tail => Event::Tail,
        }
    }
}

#[cfg(test)]
mod release_tests {
    use crate::model::parse_release;

    #[test]
    fn release_numbers() {
        assert_eq!(parse_release("6.1.0-13-amd64"), (6, 1, 0));
        assert_eq!(parse_release("2.6.27-rc6"), (2, 6, 27));
        assert_eq!(parse_release("4.19.300"), (4, 19, 255));
        assert_eq!(parse_release("weird"), (0, 0, 0));
    }
}
