//! Terminals of the image checked before anything is created (docs/RESTORE.md,
//! "Terminals"; issue 15 point 4): device, session and foreground group of each terminal
//! a restore would put a process back onto.

use crate::plan::Plan;
use crate::sys;
use ckpt_sys::procfs;

/// The pty numbers whose master is in the image: the restore makes each anew, so their
/// captured paths (`/dev/ptmx`, `/dev/pts/N`) are neither needed nor checked.
pub fn paired_ptys(plan: &Plan) -> std::collections::BTreeSet<i32> {
    plan.files
        .values()
        .filter_map(|f| f.records.tty.as_deref().filter(|t| t.master))
        .map(|t| t.index)
        .collect()
}

/// Whether file `f` is an end of a pty the restore makes anew ([`paired_ptys`]).
pub fn is_new_pty(f: &ckpt_format::File, paired: &std::collections::BTreeSet<i32>) -> bool {
    f.records
        .tty
        .as_deref()
        .is_some_and(|t| t.master || paired.contains(&t.index))
}

/// Why a terminal of the image cannot be restored onto as it is ([`tty_conflicts`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TtyWhy {
    /// Another session (not ckpt-restore's) has it as its controlling terminal now.
    OtherSession,
    /// It controlled a session led by a process of the image (which takes it back at
    /// restore), and ckpt-restore's own session holds it now: a terminal controls one
    /// session.
    Taken {
        /// The session of the image it controlled.
        image_session: i32,
    },
    /// The process was in the terminal's foreground, and ckpt-restore, whose session holds
    /// it now, runs in its background (foreground group `fg`): the restored process (in
    /// ckpt-restore's group) would stop at its first read (`SIGTTIN`).
    Background {
        /// The terminal's foreground group now.
        fg: i32,
    },
    /// The path names another device than the captured pty now.
    Device {
        /// `st_rdev` now.
        now: u64,
        /// The captured pty's device.
        captured: u64,
    },
}

/// A terminal of the image that cannot be restored onto as it is (issue 15 point 4: its
/// device, session and foreground group are checked).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TtyConflict {
    /// Task and fd that had it.
    pub pid: i32,
    /// The fd.
    pub fd: i32,
    /// The file object.
    pub file: u32,
    /// Its path.
    pub path: Vec<u8>,
    /// The session holding it now (0: none).
    pub sid: i32,
    /// Command of the session leader (or "?").
    pub leader: String,
    /// What is wrong.
    pub why: TtyWhy,
}

impl TtyConflict {
    /// What the terminal is now, in words ("the controlling terminal of session 7 (bash)").
    pub fn now(&self) -> String {
        match &self.why {
            TtyWhy::Device { now, .. } => format!(
                "device {}:{}, another terminal",
                libc::major(*now),
                libc::minor(*now)
            ),
            TtyWhy::Background { fg } => format!(
                "the controlling terminal of ckpt-restore's session {} ({}) with group {fg} in the foreground",
                self.sid, self.leader
            ),
            _ => format!(
                "the controlling terminal of session {} ({})",
                self.sid, self.leader
            ),
        }
    }
}

impl std::fmt::Display for TtyConflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (pid, fd, path) = (self.pid, self.fd, String::from_utf8_lossy(&self.path));
        let hint = "(--reattach-tty puts the fd on ckpt-restore's own terminal instead)";
        match &self.why {
            TtyWhy::OtherSession => write!(
                f,
                "pid {pid} fd {fd}: {path} is now the controlling terminal of session {} ({}), not of this restore's session; restoring onto it would mix the two {hint}",
                self.sid, self.leader
            ),
            TtyWhy::Taken { image_session } => write!(
                f,
                "pid {pid} fd {fd}: {path} was the controlling terminal of session {image_session} of the image, and is now the controlling terminal of session {} ({}); a terminal controls one session, so it could not be given back {hint}",
                self.sid, self.leader
            ),
            TtyWhy::Background { fg } => write!(
                f,
                "pid {pid} fd {fd}: the process was in the foreground of {path}; ckpt-restore runs in its background (foreground group {fg} of session {} ({})), so the restored process would stop at its first read; run ckpt-restore in the foreground {hint}",
                self.sid, self.leader
            ),
            TtyWhy::Device { now, captured } => write!(
                f,
                "pid {pid} fd {fd}: {path} is device {}:{} now, not the captured pty {}:{} {hint}",
                libc::major(*now),
                libc::minor(*now),
                libc::major(*captured),
                libc::minor(*captured)
            ),
        }
    }
}

/// The session whose controlling terminal is the device `rdev` and its foreground group,
/// from `/proc/*/stat` (`tty_nr`, field 7, the session, field 6, and `tpgid`, field 8): a
/// terminal's session can be asked (`TIOCGSID`) only by its own members or through the
/// pty master.
fn session_of_tty(rdev: u64) -> Option<(i32, i32)> {
    // tty_nr encodes the device as the kernel's new_encode_dev.
    let (major, minor) = (libc::major(rdev) as u64, libc::minor(rdev) as u64);
    let nr = ((minor & 0xff) | (major << 8) | ((minor & !0xff) << 12)) as i64;
    let dir = std::fs::read_dir("/proc").ok()?;
    for e in dir.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(st) = procfs::stat(pid) else { continue };
        if st.field(7) == nr && st.field(7) != 0 {
            return Some((st.field(6) as i32, st.field(8) as i32));
        }
    }
    None
}

/// Terminals of the image a restore cannot put its processes back onto as they were
/// (see [`TtyWhy`]): held now by a session other than ours; the controlling terminal of a
/// session of the image held by any session now; ours, while the process was in its
/// foreground and we are in its background; a pty path that names another device. A
/// terminal no session holds, or ours in the foreground, is fine. Ptys whose master is in
/// the image are made anew and not checked.
pub fn tty_conflicts(plan: &Plan, root: &std::path::Path) -> Vec<TtyConflict> {
    use std::os::unix::fs::FileTypeExt;
    use std::os::unix::fs::MetadataExt;
    let (ours, our_pgrp) = sys::my_session();
    let mut out = Vec::new();
    // One scan of /proc per device, not per fd (a process has /dev/null as fds 0-2).
    let mut sessions: std::collections::HashMap<u64, Option<(i32, i32)>> = Default::default();
    let paired = paired_ptys(plan);
    let leaders: std::collections::BTreeSet<i32> = plan
        .tasks
        .iter()
        .filter(|t| t.task.sid == t.task.pid && t.task.exit_state == 0)
        .map(|t| t.task.pid)
        .collect();
    for t in &plan.tasks {
        for fd in &t.fds {
            let f = &plan.files[&fd.file];
            if f.kind != ckpt_format::FileKind::CharDevice || is_new_pty(f, &paired) {
                continue;
            }
            let rel = f.path.strip_prefix(b"/").unwrap_or(&f.path);
            let p = root.join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(rel));
            let Ok(md) = std::fs::metadata(&p) else {
                continue; // files_present names it
            };
            if !md.file_type().is_char_device() {
                continue;
            }
            // Memory devices (major 1: /dev/null, /dev/zero, /dev/urandom ...) are
            // never a controlling terminal.
            if libc::major(md.rdev()) == 1 {
                continue;
            }
            let conflict = |sid: i32, why: TtyWhy| TtyConflict {
                pid: t.task.pid,
                fd: fd.fd,
                file: fd.file,
                path: f.path.clone(),
                sid,
                leader: procfs::stat(sid)
                    .map(|s| String::from_utf8_lossy(&s.comm).into_owned())
                    .unwrap_or_else(|_| "?".into()),
                why,
            };
            let rec = f.records.tty.as_deref();
            if let Some(r) = rec {
                let captured = libc::makedev(136 + (r.index as u32 >> 8), r.index as u32 & 0xff);
                if md.rdev() != captured {
                    out.push(conflict(
                        0,
                        TtyWhy::Device {
                            now: md.rdev(),
                            captured,
                        },
                    ));
                    continue;
                }
            }
            let now = *sessions
                .entry(md.rdev())
                .or_insert_with(|| session_of_tty(md.rdev()));
            let Some((sid, fg)) = now else { continue };
            match rec {
                _ if sid != ours => out.push(conflict(sid, TtyWhy::OtherSession)),
                Some(r) if r.sid != 0 && leaders.contains(&r.sid) => out.push(conflict(
                    sid,
                    TtyWhy::Taken {
                        image_session: r.sid,
                    },
                )),
                // Ours: the process was in its foreground; are we?
                Some(r) if r.pgrp != 0 && r.pgrp == t.task.pgid && fg != our_pgrp => {
                    out.push(conflict(sid, TtyWhy::Background { fg }))
                }
                _ => {}
            }
        }
    }
    out
}
