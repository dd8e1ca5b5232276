//! Seccomp filters (Thread record `seccomp_filters`) and securebits (Task `securebits`).
//!
//! Filters are read per thread with `PTRACE_SECCOMP_GET_FILTER` / `_GET_METADATA` (which
//! need `CAP_SYS_ADMIN`; the freezer then also suspends them with
//! `PTRACE_O_SUSPEND_SECCOMP`, so the injected calls of the capture are never filtered).
//! The oldest filters all threads have alike are recorded as shared (a restore installs
//! them once with `SECCOMP_FILTER_FLAG_TSYNC`, as a process that installed them before
//! creating threads, or with TSYNC, has them).
//!
//! Refused, with the reason: strict mode (`SECCOMP_MODE_STRICT` allows only
//! read/write/exit: nothing could be injected to re-enter it), filters that cannot be read
//! (no `CAP_SYS_ADMIN`: the injected calls would then also run through them, so the
//! process is not probed further), and a filter returning `SECCOMP_RET_USER_NOTIF` (its
//! listener, another process's fd, is not carried).

use crate::uncarried::Findings;
use ckpt_format::{SeccompFilter, SeccompFilters};
use ckpt_sys::ptrace;

/// `SECCOMP_RET_USER_NOTIF`, the action bits of a filter's return value.
const RET_USER_NOTIF: u32 = 0x7fc0_0000;
const RET_ACTION_FULL: u32 = 0xffff_0000;
/// `BPF_RET | BPF_K`.
const BPF_RET_K: u16 = 0x06;

/// True when program `insns` may return `SECCOMP_RET_USER_NOTIF` (a constant return).
fn notifies(insns: &[u8]) -> bool {
    insns.chunks_exact(8).any(|i| {
        let code = u16::from_le_bytes([i[0], i[1]]);
        let k = u32::from_le_bytes([i[4], i[5], i[6], i[7]]);
        code == BPF_RET_K && k & RET_ACTION_FULL == RET_USER_NOTIF
    })
}

/// Read the filters of every thread of `pid` (mode `mode` from its status) into `f`.
/// Returns false when the process must not be probed by injected calls (its filters
/// could not be read, so they were not suspended either).
pub(crate) fn read(pid: i32, tids: &[i32], mode: u64, f: &mut Findings) -> bool {
    match mode {
        0 => return true,
        2 => {}
        _ => {
            f.add(
                "seccomp",
                format!(
                    "pid {pid}: seccomp mode {mode} (strict: only read, write and exit are allowed, nothing could re-enter it)"
                ),
            );
            return false;
        }
    }
    let mut chains = Vec::with_capacity(tids.len());
    for &tid in tids {
        match ptrace::seccomp_filters(tid) {
            Ok(c) => chains.push((tid, c)),
            Err(e) => {
                let why = if e.is_permission() {
                    "reading seccomp filters needs CAP_SYS_ADMIN".to_string()
                } else {
                    e.to_string()
                };
                f.add(
                    "seccomp",
                    format!("pid {pid} thread {tid}: its seccomp filters cannot be read: {why}"),
                );
                return false;
            }
        }
    }
    let mut ok = true;
    for (tid, c) in &chains {
        let who = if *tid == pid {
            format!("pid {pid}")
        } else {
            format!("pid {pid} thread {tid}")
        };
        for (i, (_, insns)) in c.iter().enumerate() {
            if notifies(insns) {
                f.add(
                    "seccomp",
                    format!(
                        "{who}: seccomp filter {i} returns SECCOMP_RET_USER_NOTIF (its listener is not carried)"
                    ),
                );
                ok = false;
            }
        }
    }
    if !ok {
        return true;
    }
    // The oldest filters every thread has alike.
    let lead = &chains[0].1;
    let shared = chains
        .iter()
        .map(|(_, c)| c.iter().zip(lead).take_while(|(a, b)| a == b).count())
        .min()
        .unwrap_or(0);
    for (tid, c) in chains {
        let filters: Vec<SeccompFilter> = c
            .into_iter()
            .map(|(flags, insns)| SeccompFilter {
                flags: flags as u32,
                insns,
            })
            .collect();
        f.seccomp.insert(
            tid,
            SeccompFilters {
                shared: shared as u32,
                filters,
            },
        );
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_user_notif_return_is_seen() {
        let allow = [6u8, 0, 0, 0, 0, 0, 0xff, 0x7f];
        let notif = [6u8, 0, 0, 0, 0, 0, 0xc0, 0x7f];
        let load = [0x20u8, 0, 0, 0, 0, 0, 0xc0, 0x7f];
        assert!(!notifies(&allow));
        assert!(notifies(&[allow, notif].concat()));
        assert!(!notifies(&load));
    }
}
