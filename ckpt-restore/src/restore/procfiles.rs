//! Files in the `/proc` directory of a process of the image (`/proc/self/smaps` read by
//! the program itself, a child reading its parent's `/proc/PID/status`): they cannot be
//! opened before the restore, since that process does not exist yet (or is another one
//! under the same number). They are left out of the staging ([`entry`]) and opened once
//! every process of the tree exists, by the process holding the fd itself, on the
//! restored process's directory (its pid here, which differs under `--pid-any` and
//! `--pid-ns`), at the captured offset ([`open_late`]). Each fd gets its own open file:
//! one such file shared by several fds or processes is no longer shared.

use super::*;

/// The task index and the rest of the path (`""` or `/...`) when `path` is
/// `/proc/PID[/...]` with PID a process of the image.
pub(crate) fn entry(path: &[u8], tasks: &[TaskPlan]) -> Option<(usize, Vec<u8>)> {
    let tail = path.strip_prefix(b"/proc/")?;
    let end = tail.iter().position(|&b| b == b'/').unwrap_or(tail.len());
    let num = std::str::from_utf8(&tail[..end]).ok()?;
    if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let pid: i32 = num.parse().ok()?;
    let i = tasks.iter().position(|t| t.task.pid == pid)?;
    Some((i, tail[end..].to_vec()))
}

/// Open, in process `p`, every fd of its table that [`entry`] left out: `openat` of the
/// restored process's `/proc` entry, moved to the captured fd number, then the captured
/// offset. `hosts` maps each captured pid to the pid of the restored process here.
pub(super) fn open_late(
    p: &mut Proc,
    plan: &Plan,
    st: &Staged,
    hosts: &std::collections::HashMap<i32, i32>,
) -> Result<(), Error> {
    let data = p.data();
    for fd in &p.t.fds {
        // (pidfds are opened next: restore/pidfd.rs)
        if st.files.contains_key(&fd.file) || st.late.contains(&fd.file) {
            continue;
        }
        let f = &plan.files[&fd.file];
        let Some((ti, rest)) = entry(&f.path, &plan.tasks) else {
            return Err(Error::Image(format!(
                "pid {} fd {}: file {} was not opened",
                p.t.task.pid, fd.fd, fd.file
            )));
        };
        let captured = plan.tasks[ti].task.pid;
        let host = hosts[&captured];
        // `task/PID/...` of the leader thread follows the process's new pid too.
        let leader = format!("/task/{captured}");
        let rest = match rest.strip_prefix(leader.as_bytes()) {
            Some(r) if r.is_empty() || r[0] == b'/' => {
                [format!("/task/{host}").as_bytes(), r].concat()
            }
            _ => rest,
        };
        let mut path = format!("/proc/{host}").into_bytes();
        path.extend_from_slice(&rest);
        if path.len() >= 4096 || path.contains(&0) {
            return Err(Error::Image(format!(
                "pid {} fd {}: the path {} cannot be opened",
                p.t.task.pid,
                fd.fd,
                files::show(&f.path)
            )));
        }
        path.push(0);
        let fl = (f.flags as i32)
            & (libc::O_ACCMODE | libc::O_NONBLOCK | libc::O_DIRECTORY | libc::O_PATH);
        let fl = if fl & libc::O_PATH != 0 {
            fl & (libc::O_PATH | libc::O_DIRECTORY)
        } else {
            fl | libc::O_NOCTTY
        };
        sys::write_pairs(p.pid, &[(data + 8192, &path)])
            .map_err(|e| sys_err("writing a /proc path", e))?;
        let what = format!(
            "opening {} (captured {}) for fd {}",
            files::show(&path[..path.len() - 1]),
            files::show(&f.path),
            fd.fd
        );
        let got = p.main.call(
            &what,
            libc::SYS_openat,
            &[libc::AT_FDCWD as i64 as u64, data + 8192, fl as u64, 0],
        )?;
        let cloexec = if fd.cloexec { libc::O_CLOEXEC } else { 0 };
        if got != fd.fd as u64 {
            p.main.call(
                &format!("dup3 to fd {}", fd.fd),
                libc::SYS_dup3,
                &[got, fd.fd as u64, cloexec as u64],
            )?;
            p.main.call("close", libc::SYS_close, &[got])?;
        } else if fd.cloexec {
            p.main.call(
                "F_SETFD",
                libc::SYS_fcntl,
                &[got, libc::F_SETFD as u64, libc::FD_CLOEXEC as u64],
            )?;
        }
        if f.pos != 0 && fl & libc::O_PATH == 0 {
            p.main.call(
                &format!("lseek fd {} to {}", fd.fd, f.pos),
                libc::SYS_lseek,
                &[fd.fd as u64, f.pos, libc::SEEK_SET as u64],
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_entries_of_processes_of_the_image() {
        let mut t = TaskPlan::default();
        t.task.pid = 42;
        let tasks = vec![t];
        assert_eq!(
            entry(b"/proc/42/smaps", &tasks),
            Some((0, b"/smaps".to_vec()))
        );
        assert_eq!(entry(b"/proc/42", &tasks), Some((0, Vec::new())));
        assert_eq!(entry(b"/proc/421/smaps", &tasks), None);
        assert_eq!(entry(b"/proc/self/smaps", &tasks), None);
        assert_eq!(entry(b"/proc/", &tasks), None);
        assert_eq!(entry(b"/tmp/42", &tasks), None);
    }
}
