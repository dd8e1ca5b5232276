//! Plain reasons for what the kernel refuses, so that the hint given is the right one.
//!
//! * [`ptrace_refused`]: why `PTRACE_SEIZE` failed with `EPERM`, from what can be seen
//!   (another tracer, Yama's `ptrace_scope`, uids, dumpability, our `CAP_SYS_PTRACE`):
//!   the `CAP_SYS_PTRACE` hint is given only when its absence is the reason.
//! * [`rlimits`]: the 16 resource limits; `prlimit64` on a process of another user needs
//!   `CAP_SYS_RESOURCE`, so then they are read from `/proc/PID/limits` (same values).

use ckpt_sys::procfs;

const CAP_SYS_PTRACE: u32 = 19;

fn status(pid: &str) -> std::collections::BTreeMap<String, String> {
    procfs::status(pid).unwrap_or_default()
}

fn ids(s: Option<&String>) -> Vec<u32> {
    s.map(|v| {
        v.split_whitespace()
            .filter_map(|x| x.parse().ok())
            .collect()
    })
    .unwrap_or_default()
}

fn comm(pid: i32) -> String {
    procfs::stat(pid)
        .map(|s| String::from_utf8_lossy(&s.comm).into_owned())
        .unwrap_or_else(|_| "?".into())
}

/// True if `pid` descends from us (what Yama's scope 1 allows).
fn is_descendant(mut pid: i32) -> bool {
    let me = std::process::id() as i32;
    for _ in 0..4096 {
        if pid == me {
            return true;
        }
        if pid <= 1 {
            return false;
        }
        match procfs::stat(pid) {
            Ok(s) => pid = s.field(4) as i32,
            Err(_) => return false,
        }
    }
    false
}

/// Why we may not trace `pid` (after `EPERM`), one sentence with what to do.
pub fn ptrace_refused(pid: i32) -> String {
    let target = status(&pid.to_string());
    let me = status("self");
    let tracer: i32 = target
        .get("TracerPid")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    if tracer != 0 {
        return format!(
            "pid {pid} is already traced by pid {tracer} ({}): a debugger, strace or another capture; a process has one tracer at a time, detach that one first",
            comm(tracer)
        );
    }
    let scope = std::fs::read_to_string("/proc/sys/kernel/yama/ptrace_scope")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok());
    if scope == Some(3) {
        return "kernel.yama.ptrace_scope is 3: no process may be traced until reboot".into();
    }
    let have_cap = me
        .get("CapEff")
        .is_some_and(|v| procfs::hex_mask(v) & (1 << CAP_SYS_PTRACE) != 0);
    if have_cap {
        return format!(
            "the kernel refused although ckpt-capture holds CAP_SYS_PTRACE: a security module (SELinux, AppArmor) or a user-namespace boundary forbids tracing pid {pid}"
        );
    }
    let mut why = Vec::new();
    let (tu, mu) = (ids(target.get("Uid")), ids(me.get("Uid")));
    let (tg, mg) = (ids(target.get("Gid")), ids(me.get("Gid")));
    let my_uid = mu.first().copied().unwrap_or(0);
    let my_gid = mg.first().copied().unwrap_or(0);
    if tu.iter().take(3).any(|&u| u != my_uid) || tg.iter().take(3).any(|&g| g != my_gid) {
        why.push(format!(
            "it runs as uid {:?} gid {:?} and ckpt-capture as uid {my_uid} gid {my_gid}",
            &tu[..tu.len().min(3)],
            &tg[..tg.len().min(3)]
        ));
    }
    // A non-dumpable process's /proc entries belong to root.
    use std::os::unix::fs::MetadataExt;
    if let Ok(md) = std::fs::metadata(format!("/proc/{pid}/mem")) {
        if md.uid() == 0 && tu.get(1).is_some_and(|&e| e != 0) {
            why.push(
                "it is not dumpable (setuid/setgid, file capabilities or PR_SET_DUMPABLE 0)".into(),
            );
        }
    }
    match scope {
        Some(1) if !is_descendant(pid) => why.push(
            "kernel.yama.ptrace_scope is 1 and it is not a descendant of ckpt-capture".into(),
        ),
        Some(2) => why.push("kernel.yama.ptrace_scope is 2 (admin-only attach)".into()),
        _ => {}
    }
    if why.is_empty() {
        why.push("the kernel refused without a visible reason".into());
    }
    format!(
        "{}; tracing it needs CAP_SYS_PTRACE (run ckpt-capture as root)",
        why.join("; ")
    )
}

/// The 16 resource limits `(cur, max)` of `pid`, in resource order.
pub fn rlimits(pid: i32) -> ckpt_sys::Result<Vec<(u64, u64)>> {
    match procfs::rlimits(pid) {
        Err(e) if e.is_permission() => {
            // prlimit64 on another user's process needs CAP_SYS_RESOURCE; the same
            // values are in /proc/PID/limits, readable without it.
            let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).map_err(|e2| {
                ckpt_sys::SysError::other(
                    format!("pid {pid} resource limits"),
                    format!("prlimit64: {e} (it needs CAP_SYS_RESOURCE for another user's process); /proc/{pid}/limits: {e2}"),
                )
            })?;
            parse_limits(&text).ok_or_else(|| {
                ckpt_sys::SysError::other(
                    format!("/proc/{pid}/limits"),
                    "not the 16 limits in the kernel's layout",
                )
            })
        }
        r => r,
    }
}

/// `/proc/PID/limits`: a heading, then one line per resource in resource order,
/// `"%-25s %-20s %-20s %-10s"` (name, soft, hard, units), "unlimited" or a number.
pub fn parse_limits(text: &str) -> Option<Vec<(u64, u64)>> {
    let val = |s: &str| -> Option<u64> {
        let s = s.trim();
        if s == "unlimited" {
            Some(u64::MAX)
        } else {
            s.parse().ok()
        }
    };
    let v: Vec<(u64, u64)> = text
        .lines()
        .skip(1)
        .map(|l| Some((val(l.get(26..46)?)?, val(l.get(47..67)?)?)))
        .collect::<Option<_>>()?;
    (v.len() == 16).then_some(v)
}

#[cfg(test)]
mod tests {
    #[test]
    fn own_limits_parse_like_prlimit() {
        let me = std::process::id() as i32;
        let text = std::fs::read_to_string(format!("/proc/{me}/limits")).unwrap();
        assert_eq!(
            super::parse_limits(&text).unwrap(),
            ckpt_sys::procfs::rlimits(me).unwrap()
        );
        assert_eq!(super::parse_limits("Limit\nMax cpu time  x"), None);
    }

    /// Another user's process: `prlimit64` on it needs CAP_SYS_RESOURCE (which root lacks
    /// on this machine kind, so the capture of such a process failed); `rlimits` then
    /// reads /proc/PID/limits: the same values.
    #[test]
    fn another_users_limits_without_cap_sys_resource() {
        let mut c = std::process::Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "sleep",
                "100",
            ])
            .spawn()
            .expect("setpriv (util-linux)");
        let pid = c.id() as i32;
        let t0 = std::time::Instant::now();
        while std::fs::read_to_string(format!("/proc/{pid}/status"))
            .map_or(true, |s| !s.contains("Uid:\t65534"))
        {
            assert!(t0.elapsed() < std::time::Duration::from_secs(10));
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let have_res = ckpt_sys::procfs::status("self")
            .ok()
            .and_then(|s| s.get("CapEff").map(|v| ckpt_sys::procfs::hex_mask(v)))
            .is_some_and(|e| e & (1 << 24) != 0);
        let direct = ckpt_sys::procfs::rlimits(pid);
        if !have_res {
            assert!(
                direct.as_ref().is_err_and(|e| e.is_permission()),
                "{direct:?}"
            );
        }
        let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
        let got = super::rlimits(pid).unwrap();
        assert_eq!(got, super::parse_limits(&text).unwrap());
        assert_eq!(got.len(), 16);
        let _ = c.kill();
        let _ = c.wait();
    }
}
