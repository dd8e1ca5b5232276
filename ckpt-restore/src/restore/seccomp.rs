//! Seccomp filters (Thread `seccomp_filters`): re-installed in each thread in their
//! order, the oldest ones every thread shares once from the leader with
//! `SECCOMP_FILTER_FLAG_TSYNC` (so that they are one filter for all, as captured: a later
//! TSYNC install of the program then still succeeds), the others thread by thread.
//!
//! When we may (`CAP_SYS_ADMIN`), every thread is first set `PTRACE_O_SUSPEND_SECCOMP`:
//! the filters are then installed right after the threads exist, before the credentials
//! are changed (installing needs `no_new_privs` or `CAP_SYS_ADMIN`, which the captured
//! credentials may lack), and no injected call after them is filtered; detaching ends the
//! suspension. Otherwise they are installed by the last injected calls, which the
//! program must then allow (`munmap` of the injection area follows).

use super::*;

const SECCOMP_SET_MODE_FILTER: u64 = 1;
const SECCOMP_FILTER_FLAG_TSYNC: u64 = 1;
/// The flags a filter may be re-installed with (`SECCOMP_FILTER_FLAG_LOG`).
const KEPT_FLAGS: u32 = 2;

/// True when some thread of `t` has filters.
pub(super) fn any(t: &TaskPlan) -> bool {
    t.threads.iter().any(|th| {
        th.records
            .seccomp
            .as_ref()
            .is_some_and(|s| !s.filters.is_empty())
    })
}

/// Suspend seccomp for the threads `built` while we trace them; false when we may not.
pub(super) fn suspend(built: &[(i32, &Thread)]) -> bool {
    built.iter().all(|(tid, _)| {
        sys::ptrace_set_options(*tid, spawn::TRACE_OPTIONS | ptrace::O_SUSPEND_SECCOMP).is_ok()
    })
}

/// Install the filters of every thread (`remotes` and `built` in the same order).
pub(super) fn install(
    remotes: &mut [&mut Remote],
    built: &[(i32, &Thread)],
    pid: i32,
) -> Result<(), Error> {
    let chains: Vec<&[ckpt_format::SeccompFilter]> = built
        .iter()
        .map(|(_, th)| {
            th.records
                .seccomp
                .as_ref()
                .map_or(&[][..], |s| &s.filters[..])
        })
        .collect();
    let shared = built
        .iter()
        .filter_map(|(_, th)| th.records.seccomp.as_ref())
        .map(|s| s.shared as usize)
        .min()
        .unwrap_or(0)
        .min(chains.iter().map(|c| c.len()).min().unwrap_or(0));
    for (k, c) in chains.iter().enumerate() {
        if c[..shared] != chains[0][..shared] {
            return Err(Error::Image(format!(
                "pid {pid}: thread {} does not have the {shared} seccomp filter(s) its record says every thread shares",
                built[k].0
            )));
        }
    }
    // One scratch mapping for the largest program with its sock_fprog header.
    let most = chains
        .iter()
        .flat_map(|c| c.iter().map(|f| f.insns.len()))
        .max()
        .unwrap_or(0);
    if most == 0 {
        return Ok(());
    }
    let len = (16 + most as u64).div_ceil(PAGE) * PAGE;
    let at = remotes[0].call(
        "mmap (seccomp program)",
        libc::SYS_mmap,
        &[
            0,
            len,
            (libc::PROT_READ | libc::PROT_WRITE) as u64,
            (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64,
            u64::MAX,
            0,
        ],
    )?;
    let put = |r: &mut Remote, f: &ckpt_format::SeccompFilter, flags: u64, what: String| {
        let n = f.insns.len() / 8;
        if n == 0 || n > ckpt_sys::ptrace::BPF_MAXINSNS || f.insns.len() % 8 != 0 {
            return Err(Error::Image(format!(
                "{what}: {} bytes of program",
                f.insns.len()
            )));
        }
        let mut hdr = [0u8; 16];
        hdr[..2].copy_from_slice(&(n as u16).to_le_bytes());
        hdr[8..].copy_from_slice(&(at + 16).to_le_bytes());
        sys::write_pairs(pid, &[(at, &hdr), (at + 16, &f.insns)])
            .map_err(|e| sys_err(format!("writing {what}"), e))?;
        let fl = flags | (f.flags & KEPT_FLAGS) as u64;
        let rc = r.call(&what, libc::SYS_seccomp, &[SECCOMP_SET_MODE_FILTER, fl, at])?;
        if rc != 0 {
            // TSYNC names the thread it could not synchronise.
            return Err(Error::System(format!(
                "{what}: thread {rc} could not be synchronised"
            )));
        }
        Ok(())
    };
    for (i, f) in chains[0][..shared].iter().enumerate() {
        let what = format!("seccomp filter {i} (every thread, TSYNC) of pid {pid}");
        put(&mut *remotes[0], f, SECCOMP_FILTER_FLAG_TSYNC, what)?;
    }
    for (k, c) in chains.iter().enumerate() {
        for (i, f) in c.iter().enumerate().skip(shared) {
            let what = format!("seccomp filter {i} of thread {}", built[k].0);
            put(&mut *remotes[k], f, 0, what)?;
        }
    }
    remotes[0].call("munmap (seccomp program)", libc::SYS_munmap, &[at, len])?;
    Ok(())
}
