//! Owners of signal-driven I/O (File `fown`): set once every process exists, by the first
//! process holding the file (`F_SETOWN_EX` with the restored id of the process, its
//! leader thread or its process group; `F_SETSIG`). The owner belongs to the open file, so
//! once is enough for every fd and process sharing it. `O_ASYNC` is set there too, by
//! that process on its fd: the kernel names the fd it was set through in every signal
//! (`si_fd`), so staging (whose fd numbers are ours) must not set it.

use super::*;

const F_GETFL: u64 = 3;
const F_SETFL: u64 = 4;
const F_SETSIG: u64 = 10;
const F_SETOWN_EX: u64 = 15;

/// An image whose owner names no process of it is refused before anything is created.
pub(super) fn check(plan: &Plan) -> Result<(), Error> {
    for f in plan.files.values() {
        if let Some(o) = f.records.fown {
            if o.owner != 0 && !plan.tasks.iter().any(|t| t.task.pid == o.owner) {
                return Err(Error::Image(format!(
                    "file {}: signal-driven I/O goes to {} (kind {}), which is no process of the image",
                    f.id, o.owner, o.kind
                )));
            }
        }
    }
    Ok(())
}

/// Set every file's owner and signal, in the first live process holding it.
pub(super) fn set(plan: &Plan, procs: &mut [Proc]) -> Result<(), Error> {
    let new_pid: BTreeMap<i32, i32> = procs.iter().map(|p| (p.t.task.pid, p.vpid)).collect();
    let mut done = std::collections::BTreeSet::new();
    for p in procs.iter_mut().filter(|p| p.t.task.exit_state == 0) {
        let data = p.data();
        for fd in &p.t.fds {
            let f = &plan.files[&fd.file];
            let o = f.records.fown.unwrap_or_default();
            let async_io = f.flags as i32 & libc::O_ASYNC != 0;
            if (o == Default::default() && !async_io) || !done.insert(fd.file) {
                continue;
            }
            if async_io {
                let fl = p.main.call(
                    &format!("fcntl(F_GETFL) on fd {}", fd.fd),
                    libc::SYS_fcntl,
                    &[fd.fd as u64, F_GETFL],
                )?;
                p.main.call(
                    &format!("fcntl(F_SETFL, O_ASYNC) on fd {}", fd.fd),
                    libc::SYS_fcntl,
                    &[fd.fd as u64, F_SETFL, fl | libc::O_ASYNC as u64],
                )?;
            }
            if o.owner != 0 {
                let id = new_pid.get(&o.owner).copied().ok_or_else(|| {
                    Error::Image(format!("fd {}: owner {} is not restored", fd.fd, o.owner))
                })?;
                let mut b = [0u8; 8];
                b[..4].copy_from_slice(&(o.kind as i32).to_le_bytes());
                b[4..].copy_from_slice(&id.to_le_bytes());
                sys::write_pairs(p.pid, &[(data, &b)])
                    .map_err(|e| sys_err("writing an f_owner_ex", e))?;
                p.main.call(
                    &format!("fcntl(F_SETOWN_EX, {} {id}) on fd {}", o.kind, fd.fd),
                    libc::SYS_fcntl,
                    &[fd.fd as u64, F_SETOWN_EX, data],
                )?;
            }
            if o.signal != 0 {
                p.main.call(
                    &format!("fcntl(F_SETSIG, {}) on fd {}", o.signal, fd.fd),
                    libc::SYS_fcntl,
                    &[fd.fd as u64, F_SETSIG, o.signal as u64],
                )?;
            }
        }
    }
    Ok(())
}
