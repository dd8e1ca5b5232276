//! Typed records of process objects: pidfds (FILE, 0x044e), file owners (FILE, 0x044f),
//! seccomp filters (THREAD, 0x0461) and securebits (TASK, 0x0428).

use super::{hex, Record};

/// A pidfd (`pidfd_open(2)`, `CLONE_PIDFD`): the process it refers to. Its open flags
/// (`O_NONBLOCK`; `O_EXCL` for `PIDFD_THREAD`) are the FILE's `flags`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Pidfd {
    /// The pid it refers to, as captured: a task of the image (restore maps it to the
    /// restored process's pid).
    pub pid: i32,
}

impl Record for Pidfd {
    const NAME: &'static str = "pidfd";
    const CODE: u32 = 0x044e;
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![("pid", self.pid.to_string())]
    }
}

/// One classic-BPF seccomp filter program.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SeccompFilter {
    /// `SECCOMP_FILTER_FLAG_*` it was installed with (`PTRACE_SECCOMP_GET_METADATA`):
    /// `LOG` (2) and `SPEC_ALLOW` (4) are re-installed with it.
    pub flags: u32,
    /// The program: `struct sock_filter` instructions, 8 bytes each (u16 code, u8 jt,
    /// u8 jf, u32 k, little-endian), as `PTRACE_SECCOMP_GET_FILTER` returns them.
    pub insns: Vec<u8>,
}

/// The seccomp filters of a thread (mode 2), oldest (installed first) first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct SeccompFilters {
    /// How many of the oldest filters every thread of the process shares (installed
    /// with `SECCOMP_FILTER_FLAG_TSYNC`, or before the threads were created): restore
    /// installs these once, synchronised to every thread.
    pub shared: u32,
    /// The filters, oldest first.
    pub filters: Vec<SeccompFilter>,
}

impl Record for SeccompFilters {
    const NAME: &'static str = "seccomp_filters";
    const CODE: u32 = 0x0461;
    fn fields(&self) -> Vec<(&'static str, String)> {
        let f: Vec<String> = self
            .filters
            .iter()
            .map(|f| format!("{}insn:{:#x}", f.insns.len() / 8, f.flags))
            .collect();
        vec![
            ("shared", self.shared.to_string()),
            ("filters", format!("[{}]", f.join(" "))),
        ]
    }
}

/// The task's securebits (`PR_GET_SECUREBITS`: `NOROOT` 1, its lock 2,
/// `NO_SETUID_FIXUP` 4, its lock 8, `KEEP_CAPS` 16, its lock 32, `NO_CAP_AMBIENT_RAISE`
/// 64, its lock 128, ...).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Securebits {
    /// The bits.
    pub bits: u32,
}

impl Record for Securebits {
    const NAME: &'static str = "securebits";
    const CODE: u32 = 0x0428;
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![("bits", hex(self.bits as u64))]
    }
}

/// The owner and signal of an open file's signal-driven I/O (`F_GETOWN_EX`, `F_GETSIG`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Fown {
    /// `F_OWNER_TID` (0), `F_OWNER_PID` (1), `F_OWNER_PGRP` (2).
    pub kind: u32,
    /// The owner's id as captured: a process of the image (a thread: its leader), or the
    /// process group of one (restore maps it); 0 for none.
    pub owner: i32,
    /// The signal sent instead of `SIGIO` (`F_SETSIG`; 0: `SIGIO`).
    pub signal: i32,
}

impl Record for Fown {
    const NAME: &'static str = "fown";
    const CODE: u32 = 0x044f;
    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("kind", self.kind.to_string()),
            ("owner", self.owner.to_string()),
            ("signal", self.signal.to_string()),
        ]
    }
}
