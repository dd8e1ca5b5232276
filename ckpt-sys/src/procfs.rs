//! Parsers for the `/proc/PID/...` files capture and restore read.
//!
//! Paths are kept as raw bytes (`Vec<u8>`): file names need not be UTF-8.

use crate::{Result, SysError};
use libc::pid_t;
use std::collections::BTreeMap;
use std::os::unix::ffi::OsStrExt;

fn read(path: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| SysError::io(format!("read {path}"), &e))
}

fn read_str(path: &str) -> Result<String> {
    Ok(String::from_utf8_lossy(&read(path)?).into_owned())
}

/// `readlink(path)` as raw bytes.
pub fn readlink(path: &str) -> Result<Vec<u8>> {
    std::fs::read_link(path)
        .map(|p| p.as_os_str().as_bytes().to_vec())
        .map_err(|e| SysError::io(format!("readlink {path}"), &e))
}

/// True when `/proc/PID` exists.
pub fn exists(pid: pid_t) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Thread ids in `/proc/PID/task`, ascending.
pub fn list_tasks(pid: pid_t) -> Result<Vec<pid_t>> {
    list_numeric(&format!("/proc/{pid}/task"))
}

/// Open fd numbers in `/proc/PID/fd`, ascending.
pub fn list_fds(pid: pid_t) -> Result<Vec<i32>> {
    list_numeric(&format!("/proc/{pid}/fd"))
}

fn list_numeric(dir: &str) -> Result<Vec<i32>> {
    let rd = std::fs::read_dir(dir).map_err(|e| SysError::io(format!("read {dir}"), &e))?;
    let mut v = Vec::new();
    for e in rd {
        let e = e.map_err(|e| SysError::io(format!("read {dir}"), &e))?;
        if let Some(n) = e.file_name().to_str().and_then(|s| s.parse().ok()) {
            v.push(n);
        }
    }
    v.sort_unstable();
    Ok(v)
}

/// Children of every thread of `pid` (`/proc/PID/task/*/children`), ascending.
pub fn children(pid: pid_t) -> Result<Vec<pid_t>> {
    let mut v = Vec::new();
    for tid in list_tasks(pid)? {
        let s = match read_str(&format!("/proc/{pid}/task/{tid}/children")) {
            Ok(s) => s,
            Err(e) if e.is_gone() => continue,
            Err(e) => return Err(e),
        };
        v.extend(s.split_whitespace().filter_map(|x| x.parse::<pid_t>().ok()));
    }
    v.sort_unstable();
    v.dedup();
    Ok(v)
}

/// `/proc/PID/stat`, split. Field numbers follow proc(5) (1-based: 1 = pid, 2 = comm, 3 = state).
#[derive(Clone, Debug)]
pub struct Stat {
    /// Field 2 without the parentheses.
    pub comm: Vec<u8>,
    /// Field 3.
    pub state: u8,
    rest: Vec<i64>,
}

impl Stat {
    /// Numeric field `n` (4 and up), as i64 (u64 values are stored bit-for-bit).
    pub fn field(&self, n: usize) -> i64 {
        n.checked_sub(4)
            .and_then(|i| self.rest.get(i))
            .copied()
            .unwrap_or(0)
    }
    /// Numeric field `n` as u64.
    pub fn ufield(&self, n: usize) -> u64 {
        self.field(n) as u64
    }
}

/// Read `/proc/PID/stat`.
pub fn stat(pid: pid_t) -> Result<Stat> {
    stat_at(&pid.to_string())
}

/// Read `/proc/PATH/stat`, e.g. `PATH` = `"PID/task/TID"` for one thread.
pub fn stat_at(path_pid: &str) -> Result<Stat> {
    parse_stat(&read(&format!("/proc/{path_pid}/stat"))?)
        .ok_or_else(|| SysError::other(format!("parse /proc/{path_pid}/stat"), "malformed"))
}

fn parse_stat(b: &[u8]) -> Option<Stat> {
    let open = b.iter().position(|&c| c == b'(')?;
    let close = b.iter().rposition(|&c| c == b')')?;
    let comm = b.get(open + 1..close)?.to_vec();
    let tail = std::str::from_utf8(b.get(close + 1..)?).ok()?;
    let mut it = tail.split_whitespace();
    let state = it.next()?.bytes().next()?;
    let rest = it
        .map(|x| {
            x.parse::<i64>()
                .or_else(|_| x.parse::<u64>().map(|u| u as i64))
                .unwrap_or(0)
        })
        .collect();
    Some(Stat { comm, state, rest })
}

/// `/proc/PID/status` (or a task's) as key → value (value trimmed).
pub fn status(path_pid: &str) -> Result<BTreeMap<String, String>> {
    let s = read_str(&format!("/proc/{path_pid}/status"))?;
    Ok(s.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            Some((k.to_string(), v.trim().to_string()))
        })
        .collect())
}

/// Thread-group id of a thread (`Tgid:` of `/proc/TID/status`).
pub fn tgid_of(tid: pid_t) -> Result<pid_t> {
    let st = status(&tid.to_string())?;
    st.get("Tgid")
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| SysError::other(format!("/proc/{tid}/status"), "no Tgid"))
}

/// Parse a hex mask such as `SigBlk: 0000000000010000`.
pub fn hex_mask(s: &str) -> u64 {
    u64::from_str_radix(s.trim(), 16).unwrap_or(0)
}

/// One line of `/proc/PID/maps`, with the `VmFlags` of smaps when read from there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MapEntry {
    /// Start address.
    pub start: u64,
    /// End address (exclusive).
    pub end: u64,
    /// `rwxp`/`rwxs` characters.
    pub perms: [u8; 4],
    /// File offset in bytes.
    pub offset: u64,
    /// Device major.
    pub major: u32,
    /// Device minor.
    pub minor: u32,
    /// Inode number (0 for anonymous).
    pub inode: u64,
    /// Path or pseudo-name (`[heap]`, `[stack]`, `[vdso]`, `[vvar]`, ...), raw.
    pub path: Option<Vec<u8>>,
    /// `VmFlags` mnemonics (smaps only).
    pub vm_flags: Vec<String>,
}

impl MapEntry {
    /// `PROT_*` bits from the permissions.
    pub fn prot(&self) -> u32 {
        let mut p = 0;
        if self.perms[0] == b'r' {
            p |= libc::PROT_READ as u32;
        }
        if self.perms[1] == b'w' {
            p |= libc::PROT_WRITE as u32;
        }
        if self.perms[2] == b'x' {
            p |= libc::PROT_EXEC as u32;
        }
        p
    }
    /// True for a shared mapping (`s` in the permissions).
    pub fn shared(&self) -> bool {
        self.perms[3] == b's'
    }
}

fn parse_map_line(l: &[u8]) -> Option<MapEntry> {
    // start-end perms offset maj:min inode [path]
    let mut fields = Vec::with_capacity(5);
    let mut i = 0;
    for _ in 0..5 {
        while l.get(i) == Some(&b' ') {
            i += 1;
        }
        let s = i;
        while i < l.len() && l[i] != b' ' {
            i += 1;
        }
        fields.push(std::str::from_utf8(&l[s..i]).ok()?);
    }
    while l.get(i) == Some(&b' ') {
        i += 1;
    }
    let path = if i < l.len() {
        Some(l[i..].to_vec())
    } else {
        None
    };
    let (a, b) = fields[0].split_once('-')?;
    let perms: [u8; 4] = fields[1].as_bytes().try_into().ok()?;
    let (maj, min) = fields[3].split_once(':')?;
    Some(MapEntry {
        start: u64::from_str_radix(a, 16).ok()?,
        end: u64::from_str_radix(b, 16).ok()?,
        perms,
        offset: u64::from_str_radix(fields[2], 16).ok()?,
        major: u32::from_str_radix(maj, 16).ok()?,
        minor: u32::from_str_radix(min, 16).ok()?,
        inode: fields[4].parse().ok()?,
        path,
        vm_flags: Vec::new(),
    })
}

/// `/proc/PID/maps`.
pub fn maps(pid: pid_t) -> Result<Vec<MapEntry>> {
    let b = read(&format!("/proc/{pid}/maps"))?;
    b.split(|&c| c == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| {
            parse_map_line(l).ok_or_else(|| {
                SysError::other(
                    format!("parse /proc/{pid}/maps"),
                    String::from_utf8_lossy(l).into_owned(),
                )
            })
        })
        .collect()
}

/// `/proc/PID/smaps`: the maps lines with their `VmFlags`.
pub fn smaps(pid: pid_t) -> Result<Vec<MapEntry>> {
    let b = read(&format!("/proc/{pid}/smaps"))?;
    let mut out: Vec<MapEntry> = Vec::new();
    for l in b.split(|&c| c == b'\n').filter(|l| !l.is_empty()) {
        if let Some(rest) = l.strip_prefix(b"VmFlags:") {
            if let Some(last) = out.last_mut() {
                last.vm_flags = String::from_utf8_lossy(rest)
                    .split_whitespace()
                    .map(str::to_string)
                    .collect();
            }
            continue;
        }
        // Header lines start with a hex range "start-end"; key lines with "Name:".
        let first = l.split(|&c| c == b' ').next().unwrap_or(b"");
        if first.contains(&b'-') && !first.ends_with(b":") {
            out.push(parse_map_line(l).ok_or_else(|| {
                SysError::other(
                    format!("parse /proc/{pid}/smaps"),
                    String::from_utf8_lossy(l).into_owned(),
                )
            })?);
        }
    }
    Ok(out)
}

/// Kernel `vm_flags` bits by `VmFlags` mnemonic (fs/proc/task_mmu.c, include/linux/mm.h, x86-64).
pub const VM_FLAG_NAMES: &[(&str, u64)] = &[
    ("rd", 0x1),
    ("wr", 0x2),
    ("ex", 0x4),
    ("sh", 0x8),
    ("mr", 0x10),
    ("mw", 0x20),
    ("me", 0x40),
    ("ms", 0x80),
    ("gd", 0x100),
    ("um", 0x200),
    ("pf", 0x400),
    ("uw", 0x1000),
    ("lo", 0x2000),
    ("io", 0x4000),
    ("sr", 0x8000),
    ("rr", 0x10000),
    ("dc", 0x20000),
    ("de", 0x40000),
    ("lf", 0x80000),
    ("ac", 0x100000),
    ("nr", 0x200000),
    ("ht", 0x400000),
    ("sf", 0x800000),
    ("ar", 0x1000000),
    ("wf", 0x2000000),
    ("dd", 0x4000000),
    ("sd", 0x8000000),
    ("mm", 0x10000000),
    ("hg", 0x20000000),
    ("nh", 0x40000000),
    ("mg", 0x80000000),
];

/// Convert `VmFlags` mnemonics to `vm_flags` bits; also returns the mnemonics not in
/// [`VM_FLAG_NAMES`] (newer kernels add some).
pub fn vm_flags_bits(names: &[String]) -> (u64, Vec<String>) {
    let mut bits = 0;
    let mut unknown = Vec::new();
    for n in names {
        match VM_FLAG_NAMES.iter().find(|(m, _)| m == n) {
            Some((_, b)) => bits |= b,
            None => unknown.push(n.clone()),
        }
    }
    (bits, unknown)
}

/// `/proc/PID/fdinfo/FD`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FdInfo {
    /// File position.
    pub pos: u64,
    /// Open flags (octal in the file), including `O_CLOEXEC` (0o2000000) for the fd.
    pub flags: u32,
    /// Mount id.
    pub mnt_id: u64,
    /// Inode number.
    pub ino: u64,
    /// Every line, key → value, for kind-specific fields (eventfd-count, tfd ...).
    pub all: BTreeMap<String, String>,
    /// The `lock:` lines: locks held through this open file (its OFD and flock locks,
    /// the POSIX locks of this process taken through it, leases).
    pub locks: Vec<LockLine>,
}

/// One `lock:` line of fdinfo (or a line of `/proc/locks`):
/// `1: POSIX  ADVISORY  WRITE 1234 08:01:5678 0 EOF`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LockLine {
    /// `POSIX`, `OFDLCK`, `FLOCK`, `LEASE`, `DELEG`, ...
    pub class: String,
    /// `ADVISORY`, `MANDATORY`, or a lease's `ACTIVE`/`BREAKING`/`BREAKER`.
    pub mode: String,
    /// `READ`, `WRITE` or `UNLCK`.
    pub access: String,
    /// The holder's pid (-1 for OFD locks).
    pub pid: i64,
    /// First byte.
    pub start: u64,
    /// Last byte, `None` for `EOF`.
    pub end: Option<u64>,
    /// The line as the kernel wrote it (after `lock:`), for messages.
    pub text: String,
}

impl LockLine {
    /// Parse the part after `lock:`; `None` if it does not have the kernel's shape.
    pub fn parse(s: &str) -> Option<LockLine> {
        let s = s.trim();
        let desc = s.split_once(": ").map_or(s, |x| x.1);
        let w: Vec<&str> = desc.split_whitespace().collect();
        if w.len() < 7 {
            return None;
        }
        Some(LockLine {
            class: w[0].to_string(),
            mode: w[1].to_string(),
            access: w[2].to_string(),
            pid: w[3].parse().ok()?,
            start: w[5].parse().ok()?,
            end: if w[6] == "EOF" {
                None
            } else {
                Some(w[6].parse().ok()?)
            },
            text: desc.to_string(),
        })
    }

    /// The length of the range, 0 = to the end of the file (as `struct flock` has it).
    pub fn len(&self) -> u64 {
        self.end
            .map_or(0, |e| e.saturating_sub(self.start).saturating_add(1))
    }

    /// True for an empty range (never, for a line the kernel wrote).
    pub fn is_empty(&self) -> bool {
        self.end.is_some_and(|e| e < self.start)
    }
}

/// Read `/proc/PID/fdinfo/FD`.
pub fn fdinfo(pid: pid_t, fd: i32) -> Result<FdInfo> {
    let s = read_str(&format!("/proc/{pid}/fdinfo/{fd}"))?;
    let mut fi = FdInfo::default();
    for l in s.lines() {
        let Some((k, v)) = l.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k == "lock" {
            if let Some(l) = LockLine::parse(v) {
                fi.locks.push(l);
            } else {
                fi.locks.push(LockLine {
                    class: "?".into(),
                    text: v.to_string(),
                    ..LockLine::default()
                });
            }
            continue;
        }
        match k {
            "pos" => fi.pos = v.parse().unwrap_or(0),
            "flags" => fi.flags = u32::from_str_radix(v, 8).unwrap_or(0),
            "mnt_id" => fi.mnt_id = v.parse().unwrap_or(0),
            "ino" => fi.ino = v.parse().unwrap_or(0),
            _ => {}
        }
        fi.all.entry(k.to_string()).or_insert_with(|| v.to_string());
    }
    Ok(fi)
}

/// `/proc/PID/auxv` as u64 words (type, value pairs, ending with AT_NULL).
pub fn auxv(pid: pid_t) -> Result<Vec<u64>> {
    let b = read(&format!("/proc/{pid}/auxv"))?;
    Ok(b.chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect())
}

/// `/proc/PID/personality` (hex).
pub fn personality(pid: pid_t) -> Result<u32> {
    Ok(hex_mask(&read_str(&format!("/proc/{pid}/personality"))?) as u32)
}

/// Number of resource limits (`RLIM_NLIMITS`).
pub const RLIM_NLIMITS: u32 = 16;

/// Every resource limit of `pid` via `prlimit64(pid, r, NULL, &old)` (no injection).
/// `u64::MAX` is infinity.
pub fn rlimits(pid: pid_t) -> Result<Vec<(u64, u64)>> {
    let mut v = Vec::with_capacity(RLIM_NLIMITS as usize);
    for r in 0..RLIM_NLIMITS {
        let mut old = libc::rlimit64 {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `old` is a valid out pointer; the new-limit pointer is NULL.
        let rc = unsafe { libc::prlimit64(pid, r as _, std::ptr::null(), &mut old) };
        if rc != 0 {
            return Err(SysError::last(format!("prlimit64 pid {pid} resource {r}")));
        }
        v.push((old.rlim_cur, old.rlim_max));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_in_comm() {
        let s = parse_stat(b"42 (a b) c) S 1 42 42 0 -1 4194560 1").unwrap();
        assert_eq!(s.comm, b"a b) c");
        assert_eq!(s.state, b'S');
        assert_eq!(s.field(4), 1);
        assert_eq!(s.field(8), -1);
    }

    #[test]
    fn map_line_with_spaces() {
        let m = parse_map_line(b"7f00-7f10 r-xp 00001000 08:01 1234     /a b/c (deleted)").unwrap();
        assert_eq!(m.start, 0x7f00);
        assert_eq!(m.offset, 0x1000);
        assert_eq!(m.major, 8);
        assert_eq!(m.inode, 1234);
        assert_eq!(m.path.as_deref(), Some(&b"/a b/c (deleted)"[..]));
        assert_eq!(m.prot(), 5);
        let a = parse_map_line(b"7f00-7f10 rw-p 00000000 00:00 0 ").unwrap();
        assert_eq!(a.path, None);
    }

    #[test]
    fn own_process_parses() {
        let me = std::process::id() as pid_t;
        let sm = smaps(me).unwrap();
        assert!(sm.iter().any(|m| m.path.as_deref() == Some(b"[stack]")));
        assert!(sm.iter().all(|m| !m.vm_flags.is_empty()));
        let (bits, _) = vm_flags_bits(&sm[0].vm_flags);
        assert_ne!(bits & 0x1, 0);
        assert!(list_tasks(me).unwrap().contains(&me));
        assert_eq!(rlimits(me).unwrap().len(), 16);
        assert_eq!(*auxv(me).unwrap().last().unwrap(), 0);
    }
}

#[cfg(test)]
mod lock_tests {
    use super::*;

    #[test]
    fn lock_lines() {
        let l = LockLine::parse("1: POSIX  ADVISORY  WRITE 1234 08:01:5678 1073741824 1073741824")
            .unwrap();
        assert_eq!(
            (l.class.as_str(), l.access.as_str(), l.pid),
            ("POSIX", "WRITE", 1234)
        );
        assert_eq!((l.start, l.len()), (1 << 30, 1));
        let l = LockLine::parse("2: OFDLCK ADVISORY  READ -1 00:2d:19 0 EOF").unwrap();
        assert_eq!((l.pid, l.start, l.end, l.len()), (-1, 0, None, 0));
        assert!(LockLine::parse("garbage").is_none());
    }
}
