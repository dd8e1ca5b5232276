//! Terminals (docs/RESTORE.md, "Terminals"). A pty whose master is in the image is made
//! anew: `/dev/ptmx` opened and unlocked, every slave file of the same pty number opened
//! on the new one (`TIOCGPTPEER`), line settings and window size applied; every fd of the
//! tree that referred to the old master or slave then gets the new one (same fd number,
//! same flags) through the staging table. A slave whose master is outside the image is
//! reopened by its path ([`super::files`]). Then, through injected calls: a session leader
//! takes back its controlling terminal right after its `setsid`, before it forks the rest
//! of its session (children inherit it), and once every process group exists the
//! terminal gets its foreground group back.

use super::*;
use ckpt_format::model::Tty;

/// A terminal of the image as staged: a slave descriptor of ours on it (for
/// `TIOCSCTTY`/`TIOCSPGRP` in the restored processes, which inherit it).
pub(super) struct StagedTty {
    /// The captured pty number.
    pub(super) index: i32,
    /// A staging descriptor on the slave.
    pub(super) slave: RawFd,
    /// The captured session it controlled (0: none) and its foreground group.
    pub(super) sid: i32,
    pub(super) pgrp: i32,
}

fn termios_of(t: &Tty, path: &[u8]) -> Result<[u8; ckpt_sys::tty::TERMIOS2_LEN], Error> {
    t.termios.as_slice().try_into().map_err(|_| {
        Error::Image(format!(
            "the tty record of {} holds {} bytes of termios2, not {}",
            files::show(path),
            t.termios.len(),
            ckpt_sys::tty::TERMIOS2_LEN
        ))
    })
}

/// Apply the captured line settings and window size to terminal `fd`.
pub(super) fn apply(fd: RawFd, t: &Tty, path: &[u8]) -> Result<(), Error> {
    let termios = termios_of(t, path)?;
    // SAFETY: `fd` is a staging descriptor open for the whole restore.
    let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) };
    ckpt_sys::tty::apply(b, &termios, t.winsize)
        .map_err(|e| Error::Files(format!("terminal settings of {}: {e}", files::show(path))))
}

/// Every pty of the image whose master is in it, made anew; returns the staging
/// descriptor of each master and slave file (by file id). `keep` moves a descriptor to
/// the staging area.
pub(super) fn make_pairs(
    plan: &Plan,
    needed: &[u32],
    root: RawFd,
    ttys: &mut Vec<StagedTty>,
    mut keep: impl FnMut(OwnedFd) -> Result<RawFd, Error>,
) -> Result<BTreeMap<u32, RawFd>, Error> {
    let mut out = BTreeMap::new();
    // Captured pty number -> our new master.
    let mut masters: BTreeMap<i32, RawFd> = BTreeMap::new();
    let flags_of = |f: &ckpt_format::File| {
        (f.flags as i32) & (libc::O_ACCMODE | libc::O_NONBLOCK | libc::O_APPEND | libc::O_SYNC)
    };
    for &id in needed {
        let f = &plan.files[&id];
        let Some(t) = f.records.tty.as_deref().filter(|t| t.master) else {
            continue;
        };
        if masters.contains_key(&t.index) {
            return Err(Error::Image(format!(
                "two pty masters of the image have the number {}",
                t.index
            )));
        }
        let o = sys::open_in_root(root, b"/dev/ptmx", flags_of(f) | libc::O_NOCTTY, 0)
            .map_err(|e| Error::Files(format!("opening /dev/ptmx: {e}")))?;
        let m = keep(o)?;
        // SAFETY: `m` is a staging descriptor open for the whole restore.
        let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(m) };
        let new = ckpt_sys::tty::unlock(b)
            .map_err(|e| Error::Files(format!("unlocking a new pty: {e}")))?;
        apply(m, t, &f.path)?;
        eprintln!(
            "ckpt-restore: pty /dev/pts/{} (its master is in the image) is now /dev/pts/{new}",
            t.index
        );
        masters.insert(t.index, m);
        out.insert(id, m);
        // A slave of ours for the controlling terminal and the foreground group.
        let s = ckpt_sys::tty::open_peer(b, libc::O_RDWR)
            .map_err(|e| Error::Files(format!("opening /dev/pts/{new}: {e}")))?;
        ttys.push(StagedTty {
            index: t.index,
            slave: keep(s)?,
            sid: t.sid,
            pgrp: t.pgrp,
        });
    }
    for &id in needed {
        let f = &plan.files[&id];
        let Some(t) = f.records.tty.as_deref().filter(|t| !t.master) else {
            continue;
        };
        let Some(&m) = masters.get(&t.index) else {
            continue; // master outside the image: reopened by path
        };
        // SAFETY: `m` is a staging descriptor open for the whole restore.
        let b = unsafe { std::os::fd::BorrowedFd::borrow_raw(m) };
        let s = ckpt_sys::tty::open_peer(b, flags_of(f))
            .map_err(|e| Error::Files(format!("opening the slave of a new pty: {e}")))?;
        out.insert(id, keep(s)?);
    }
    Ok(out)
}

/// In session leader `p` (right after its `setsid`): take back its controlling
/// terminal, the staged terminal whose captured session it led.
pub(super) fn take_ctty(p: &mut Proc, st: &Staged) -> Result<(), Error> {
    let pid = p.t.task.pid;
    let Some(t) = st.ttys.iter().find(|t| t.sid == pid) else {
        return Ok(());
    };
    p.main.call(
        &format!("ioctl(TIOCSCTTY) on the terminal of session {pid}"),
        libc::SYS_ioctl,
        &[t.slave as u64, ckpt_sys::tty::TIOCSCTTY, 0],
    )?;
    Ok(())
}

/// Every staged terminal controlling a session led by a process of the image gets the
/// captured foreground process group (its new id), set by that session leader.
pub(super) fn set_foreground(procs: &mut [Proc], st: &Staged) -> Result<(), Error> {
    for t in &st.ttys {
        if t.sid == 0 || t.pgrp == 0 {
            continue;
        }
        let Some(l) = procs
            .iter()
            .position(|p| p.t.task.pid == t.sid && p.t.task.exit_state == 0)
        else {
            continue;
        };
        // The group's id as the tree sees it: its leader's (in a new pid namespace, the
        // namespace's), or, for a group whose leader is not in the image, a member's.
        let leader = procs
            .iter()
            .find(|p| p.t.task.pid == t.pgrp && p.t.task.exit_state == 0)
            .map(|p| p.vpid);
        let member = procs
            .iter()
            .find(|p| p.t.task.pgid == t.pgrp && p.t.task.exit_state == 0 && p.vpid == p.pid)
            .map(|p| p.pid);
        let pgid = match (leader, member) {
            (Some(v), _) => v,
            (None, Some(m)) => {
                sys::proc_ids(m)
                    .map_err(|e| sys_err(format!("pid {m}"), e))?
                    .1
            }
            (None, None) => {
                eprintln!(
                    "ckpt-restore: the foreground group {} of /dev/pts/{} has no process in the image; the session leader's group is the foreground group",
                    t.pgrp, t.index
                );
                continue;
            }
        };
        let p = &mut procs[l];
        let at = p.data();
        sys::write_pairs(p.pid, &[(at, &pgid.to_le_bytes())])
            .map_err(|e| sys_err("writing a process group id", e))?;
        p.main.call(
            &format!(
                "ioctl(TIOCSPGRP, {pgid}) on the terminal of session {}",
                t.sid
            ),
            libc::SYS_ioctl,
            &[t.slave as u64, ckpt_sys::tty::TIOCSPGRP, at],
        )?;
    }
    Ok(())
}

/// The signal that stops task `i` again at release: the one that stopped it
/// (`job_stop`: a shell then reports the job as it did, "Stopped" for ^Z), or `SIGSTOP`.
/// The kernel discards `SIGTSTP`/`SIGTTIN`/`SIGTTOU` sent to an orphaned process group,
/// so those are used only when a member of the group has its parent in another group of
/// the same session inside the image (a shell's job: its parent is the shell).
pub(super) fn stop_signal(plan: &Plan, tree: &tree::TreePlan, i: usize) -> i32 {
    let t = &plan.tasks[i].task;
    let Some(sig) = t.records.job_stop.map(|j| j.sig as i32) else {
        return libc::SIGSTOP;
    };
    if sig == libc::SIGSTOP || !matches!(sig, libc::SIGTSTP | libc::SIGTTIN | libc::SIGTTOU) {
        return libc::SIGSTOP;
    }
    let held = plan.tasks.iter().enumerate().any(|(m, mt)| {
        let mt = &mt.task;
        mt.pgid == t.pgid
            && mt.exit_state == 0
            && tree.nodes[m].parent.is_some_and(|pi| {
                let p = &plan.tasks[pi].task;
                p.pgid != t.pgid && p.sid == mt.sid
            })
    });
    if held {
        sig
    } else {
        libc::SIGSTOP
    }
}
