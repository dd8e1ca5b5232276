//! Freezing the targets and the refusals made before anything is read (orphaned
//! children, unsupported descriptors, an output the targets hold).

use super::*;

/// `--kill` of a process whose children are not captured with it would orphan them.
pub(super) fn refuse_orphans(pid: i32) -> Result<(), CaptureError> {
    let kids = procfs::children(pid).map_err(sys(format!("children of {pid}")))?;
    if kids.is_empty() {
        return Ok(());
    }
    let names: Vec<String> = kids
        .iter()
        .map(|&k| match procfs::stat(k) {
            Ok(s) => format!("{k} ({})", String::from_utf8_lossy(&s.comm)),
            Err(_) => k.to_string(),
        })
        .collect();
    Err(CaptureError::new(
        ErrorKind::Refused,
        format!(
            "not killed, left running: pid {pid} has {} child process(es) that --kill would orphan: {}; capture them with it (--tree), or say --orphan-children to kill pid {pid} alone",
            kids.len(),
            names.join(", ")
        ),
    ))
}

/// What `capture_fds` cannot capture, for every fd of every frozen process, found
/// before anything is written: one refusal naming all of them.
pub(super) fn refuse_unsupported(procs: &[Proc]) -> Result<(), CaptureError> {
    let mut items: Vec<(String, String)> = Vec::new();
    let mut index = None;
    for p in procs.iter().filter(|p| p.frozen.is_some()) {
        let pid = p.pid;
        let fds = procfs::list_fds(pid).map_err(sys(format!("pid {pid} fds")))?;
        for fd in fds {
            let Ok(link) = procfs::readlink(&format!("/proc/{pid}/fd/{fd}")) else {
                continue;
            };
            let Ok(st) = files::stat_fd(pid, fd) else {
                continue;
            };
            if crate::anon::carried(&link) {
                // Carried, unless its state cannot be taken: known before anything is written.
                let fi = procfs::fdinfo(pid, fd).map_err(sys(format!("pid {pid} fd {fd}")))?;
                let mut scratch = ckpt_format::model::FileRecords::default();
                if let Err(why) = crate::anon::collect(pid, fd, &link, &fi, &mut scratch) {
                    let kind = ckpt_sys::anon::AnonKind::of_link(&link)
                        .map_or("anonymous inode", |k| k.name());
                    items.push((kind.to_string(), why));
                }
                continue;
            }
            if let Some(what) = unsupported_kind(&link, st.st_mode) {
                // A socket is named with what it is (family, type, state, addresses,
                // queued bytes: docs/SOCKETS.md), read without touching its queues.
                let mut detail = String::new();
                if st.st_mode & libc::S_IFMT == libc::S_IFSOCK {
                    if index.is_none() {
                        index = ckpt_sys::sockets::Index::read().ok();
                    }
                    if let Some(ix) = &index {
                        if let Ok(d) = ckpt_sys::sockets::describe_fd(pid, fd, ix) {
                            detail = format!(": {d}");
                        }
                    }
                }
                items.push((
                    what.clone(),
                    format!(
                        "pid {pid} fd {fd} is {} ({}{detail})",
                        ckpt_restore::plan::article(&what),
                        String::from_utf8_lossy(&link)
                    ),
                ));
            }
        }
    }
    if items.is_empty() {
        return Ok(());
    }
    let lines = ckpt_restore::plan::grouped(&items);
    Err(CaptureError::new(
        ErrorKind::Unsupported,
        format!(
            "{} object(s) ckpt-capture cannot capture (--allow-unsupported records them as left out, and restore goes without them):\n  {}",
            items.len(),
            lines.join("\n  ")
        ),
    ))
}

/// The kind of an fd `capture_fds` cannot capture ("socket", "eventfd" ...), if so.
pub(super) fn unsupported_kind(link: &[u8], mode: u32) -> Option<String> {
    if crate::anon::carried(link) {
        return None;
    }
    if let Some(a) = link.strip_prefix(b"anon_inode:") {
        let l = String::from_utf8_lossy(a);
        return Some(l.trim_matches(|c| c == '[' || c == ']').to_string());
    }
    match mode & libc::S_IFMT {
        libc::S_IFREG | libc::S_IFDIR | libc::S_IFCHR | libc::S_IFIFO => None,
        // Sockets are read by crate::sockets, which names what it cannot carry.
        libc::S_IFSOCK => None,
        libc::S_IFBLK => Some("block device".into()),
        _ => Some("special file".into()),
    }
}

pub(crate) fn freeze_one(pid: i32) -> ckpt_sys::Result<Frozen> {
    match Frozen::freeze_with(pid, ptrace::O_SUSPEND_SECCOMP) {
        Err(e) if e.is_permission() => Frozen::freeze(pid),
        r => r,
    }
}

pub(super) fn freeze_all(root: i32, tree: bool) -> Result<Vec<Proc>, CaptureError> {
    let mut out: Vec<Proc> = Vec::new();
    let mut queue = std::collections::VecDeque::from([root]);
    while let Some(pid) = queue.pop_front() {
        if pid as u32 == std::process::id() {
            return Err(CaptureError::new(
                ErrorKind::Target,
                format!(
                    "the process tree of {root} contains ckpt-capture itself (pid {pid}); run it from outside the tree"
                ),
            ));
        }
        let stat = match procfs::stat(pid) {
            Ok(s) => s,
            Err(e) if e.is_gone() && pid != root => continue,
            Err(e) => return Err(CaptureError::sys(&format!("pid {pid}"), e)),
        };
        if stat.state == b'Z' || stat.state == b'X' {
            if pid == root {
                return Err(CaptureError::new(
                    ErrorKind::Target,
                    format!("pid {pid} is a zombie"),
                ));
            }
            out.push(Proc {
                pid,
                stat,
                frozen: None,
            });
            continue;
        }
        let frozen = match freeze_one(pid) {
            Ok(f) => f,
            Err(e) if e.is_gone() && pid != root => continue,
            Err(e) if e.is_permission() => {
                if let Some(t) = crate::uncarried::tracer_of(pid) {
                    return Err(CaptureError::new(
                        ErrorKind::Unsupported,
                        format!("pid {pid} is traced by pid {t} (a debugger or strace): ptrace relations are not carried, and a traced process cannot be seized"),
                    ));
                }
                return Err(CaptureError::new(
                    ErrorKind::Permission,
                    format!(
                        "cannot trace pid {pid}: {e}: {}",
                        crate::diag::ptrace_refused(pid)
                    ),
                ));
            }
            Err(e) if e.is_gone() => {
                return Err(CaptureError::new(
                    ErrorKind::NoSuchProcess,
                    format!("pid {pid} exited: {e}"),
                ))
            }
            Err(e) => return Err(CaptureError::sys(&format!("freeze pid {pid}"), e)),
        };
        if tree {
            let kids = procfs::children(pid).map_err(sys(format!("children of {pid}")))?;
            queue.extend(kids);
        }
        out.push(Proc {
            pid,
            stat,
            frozen: Some(frozen),
        });
    }
    Ok(out)
}

pub(super) fn check_output(procs: &[Proc], opts: &Options) -> Result<(), CaptureError> {
    if opts.output.is_empty() {
        return Ok(());
    }
    for p in procs.iter().filter(|p| p.frozen.is_some()) {
        let fds = procfs::list_fds(p.pid).map_err(sys(format!("fds of {}", p.pid)))?;
        for fd in fds {
            let Ok(st) = files::stat_fd(p.pid, fd) else {
                continue;
            };
            for o in &opts.output {
                if st.st_dev != o.dev || st.st_ino != o.ino {
                    continue;
                }
                let fi = procfs::fdinfo(p.pid, fd).unwrap_or_default();
                let writes = fi.flags & O_ACCMODE != 0;
                if o.pipe || writes {
                    let what = if o.pipe { "a pipe" } else { "a file" };
                    return Err(CaptureError::new(
                        ErrorKind::Refused,
                        format!(
                            "refusing to write the image into {what} that pid {} itself holds as fd {fd}{}: the frozen target would deadlock or the image would be corrupted; write it elsewhere",
                            p.pid,
                            if o.pipe { "" } else { " for writing" }
                        ),
                    ));
                }
            }
        }
    }
    Ok(())
}
