//! Credentials: leftover descriptors closed, the parent-death signal, resource limits,
//! capabilities, groups and ids (per thread in Linux: set in every thread).

use super::*;

/// Leftover descriptors, the parent-death signal, limits, capabilities and credentials.
pub(super) fn limits_and_creds(
    remotes: &mut [&mut Remote],
    t: &TaskPlan,
    st: &Staged,
    pid: i32,
    data: u64,
    pdeath: u64,
) -> Result<(), Error> {
    let (uids, gids, groups) = sys::my_creds();
    let c = &t.task.creds;
    let sb = t
        .task
        .records
        .securebits
        .map(|s| s.bits)
        .filter(|&b| b != 0);
    let change_creds =
        uids[1] == 0 && (c.uid[..3] != uids[..] || c.gid[..3] != gids[..] || c.groups != groups);
    // Leftover descriptors, the parent-death signal, credentials, then the area itself.
    remotes[0].call(
        "close_range",
        libc::SYS_close_range,
        &[st.base as u64, u32::MAX as u64, 0],
    )?;
    // POSIX locks, by the process itself, now that no fd of it will be closed.
    inodes::take_posix_locks(remotes[0], t, pid, data + 3328)?;
    remotes[0].call(
        "prctl(PR_SET_PDEATHSIG)",
        libc::SYS_prctl,
        &[libc::PR_SET_PDEATHSIG as u64, pdeath],
    )?;
    // no_new_privs is per thread (inherited by threads created later).
    if t.task.records.security.is_some_and(|s| s.no_new_privs != 0) {
        for r in remotes.iter_mut() {
            r.call(
                "prctl(PR_SET_NO_NEW_PRIVS)",
                libc::SYS_prctl,
                &[libc::PR_SET_NO_NEW_PRIVS as u64, 1, 0, 0, 0],
            )?;
        }
    }
    // Resource limits (never above the caller's: raising a hard limit needs privileges),
    // from here while the process still has our credentials: prlimit on a process of
    // another uid needs CAP_SYS_RESOURCE.
    for (i, l) in t.rlimits.iter().enumerate() {
        sys::set_rlimit(pid, i as u32, l.cur, l.max)
            .map_err(|e| sys_err(format!("prlimit {i} {}/{}", l.cur, l.max), e))?;
    }
    // Capabilities (checked in step 1: never more than ours): set when the image's sets
    // differ from ours or the uid changes (setresuid away from 0 clears them).
    let set_caps = match Caps::of_image(&t.task) {
        Some(c) => {
            let ours = Caps::own().map_err(Error::System)?;
            (c != ours || change_creds).then_some((c, ours))
        }
        None => None,
    };
    if let Some((c, ours)) = set_caps {
        // `pre` (inheritable first; our effective set back before securebits), `fin`.
        let pre = caps::capset_v3(ours.eff, ours.prm, c.inh);
        let fin = caps::capset_v3(c.eff, c.prm, c.inh);
        sys::write_pairs(pid, &[(data + 3200, &pre), (data + 3232, &fin)])
            .map_err(|e| sys_err("writing capset data", e))?;
    }
    if change_creds {
        let gb: Vec<u8> = c.groups.iter().flat_map(|g| g.to_le_bytes()).collect();
        // The argument pages end at data + 3 pages: groups get the last one. Plan::new
        // refuses more than MAX_GROUPS before anything is created; this guards the page.
        if c.groups.len() > MAX_GROUPS {
            return Err(Error::Image(format!(
                "{} supplementary groups: this restorer passes at most {MAX_GROUPS}",
                c.groups.len()
            )));
        }
        sys::write_pairs(pid, &[(data + 8192, &gb)]).map_err(|e| sys_err("groups", e))?;
    }
    // Credentials and capabilities are per thread in Linux: set them in every thread.
    for r in remotes.iter_mut() {
        if let Some((cp, ours)) = set_caps {
            // Inheritable first (while we still hold our permitted set), then the
            // bounding set (needs CAP_SETPCAP, which the uid change may take away).
            if cp.inh != ours.inh {
                r.call(
                    "capset (inheritable)",
                    libc::SYS_capset,
                    &[data + 3200, data + 3208],
                )?;
            }
            for bit in (0..64).filter(|b| (ours.bnd & !cp.bnd) >> b & 1 == 1) {
                r.call(
                    &format!("prctl(PR_CAPBSET_DROP, {bit})"),
                    libc::SYS_prctl,
                    &[libc::PR_CAPBSET_DROP as u64, bit],
                )?;
            }
            if change_creds {
                // Keep the permitted set across setresuid away from 0.
                r.call(
                    "prctl(PR_SET_KEEPCAPS, 1)",
                    libc::SYS_prctl,
                    &[libc::PR_SET_KEEPCAPS as u64, 1],
                )?;
            }
        }
        if change_creds {
            r.call(
                "setgroups",
                libc::SYS_setgroups,
                &[c.groups.len() as u64, data + 8192],
            )?;
            r.call(
                "setresgid",
                libc::SYS_setresgid,
                &[c.gid[0] as u64, c.gid[1] as u64, c.gid[2] as u64],
            )?;
            r.call(
                "setresuid",
                libc::SYS_setresuid,
                &[c.uid[0] as u64, c.uid[1] as u64, c.uid[2] as u64],
            )?;
        }
        if let Some((cp, _)) = set_caps {
            if change_creds {
                r.call(
                    "prctl(PR_SET_KEEPCAPS, 0)",
                    libc::SYS_prctl,
                    &[libc::PR_SET_KEEPCAPS as u64, 0],
                )?;
                if sb.is_some() {
                    // Our effective set back (the uid change cleared it): setting
                    // securebits needs CAP_SETPCAP, which the captured set may lack.
                    r.call(
                        "capset (ours, for securebits)",
                        libc::SYS_capset,
                        &[data + 3200, data + 3208],
                    )?;
                }
            }
            if let Some(b) = sb {
                securebits(r, b)?;
            }
            r.call("capset", libc::SYS_capset, &[data + 3232, data + 3240])?;
            r.call(
                "prctl(PR_CAP_AMBIENT_CLEAR_ALL)",
                libc::SYS_prctl,
                &[
                    libc::PR_CAP_AMBIENT as u64,
                    libc::PR_CAP_AMBIENT_CLEAR_ALL as u64,
                    0,
                    0,
                    0,
                ],
            )?;
            for bit in (0..64).filter(|b| cp.amb >> b & 1 == 1) {
                r.call(
                    &format!("prctl(PR_CAP_AMBIENT_RAISE, {bit})"),
                    libc::SYS_prctl,
                    &[
                        libc::PR_CAP_AMBIENT as u64,
                        libc::PR_CAP_AMBIENT_RAISE as u64,
                        bit,
                        0,
                        0,
                    ],
                )?;
            }
        } else if let Some(b) = sb {
            securebits(r, b)?;
        }
    }
    Ok(())
}

/// `PR_SET_SECUREBITS` in the thread of `r` (set before the final capabilities: they
/// may lack `CAP_SETPCAP`; a locked bit then stays as set).
fn securebits(r: &mut Remote, bits: u32) -> Result<(), Error> {
    r.call(
        &format!("prctl(PR_SET_SECUREBITS, {bits:#x})"),
        libc::SYS_prctl,
        &[libc::PR_SET_SECUREBITS as u64, bits as u64],
    )?;
    Ok(())
}
