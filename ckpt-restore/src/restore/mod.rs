//! Building a process from a [`Plan`]: fork a stopped child, then reshape it from the
//! outside with injected system calls (see docs/RESTORE.md for the sequence).
//!
//! Phases, one file each: `files` (staging descriptors, fd tables), `spawn` (the
//! processes of the tree), `memory` (address space, pages, mm fields), `threads`
//! (threads, per-thread state, registers), `creds` (limits, capabilities, ids) and
//! `resume` (the sequence per process, signals). The plan phase is [`crate::plan`].

use crate::caps::{self, Caps};
use crate::plan::{PageData, Plan, TaskPlan, VmaPlan, MAX_GROUPS, PAGE, TASK_SIZE};
use crate::{check, signals, sys, tree, Error, Options, PidMode};
use ckpt_format::{FileKind, FpuKind, Thread, VmaKind, VM_SHARED};
use ckpt_sys::ptrace::{self, WaitStatus};
use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

mod attrs;
mod creds;
mod files;
mod fown;
mod inodes;
mod memory;
mod pidfd;
pub(crate) mod procfiles;
mod remote;
mod resume;
mod seccomp;
mod spawn;
mod threads;
mod ttys;

use files::{fd_setup, stage, Staged};
use memory::place_area;
use remote::{sys_err, Guard, Remote};
use resume::finish;
use spawn::{create_child, create_root};
use threads::{inject_clone, load_thread};

const VM_GROWSDOWN: u64 = 0x100;
const VM_MAYWRITE: u64 = 0x20;
/// `VM_MAYSHARE`: mapped `MAP_SHARED`. A shared mapping of a file opened read-only has
/// this without `VM_SHARED` (`s` in /proc/PID/maps, no `sh` in its VmFlags).
const VM_MAYSHARE: u64 = 0x80;
/// `Task.state` of a stopped task (`T` in /proc/PID/stat).
const TASK_STOPPED: u32 = 4;
const PTRACE_EVENT_FORK: i32 = 1;
const PTRACE_EVENT_CLONE: i32 = 3;
const ERESTARTSYS: i64 = -512;
const ERESTARTNOINTR: i64 = -513;
const ERESTARTNOHAND: i64 = -514;
const ERESTART_RESTARTBLOCK: i64 = -516;
/// Pages of the injection area before the vdso parking space: code, then data.
const AREA_PAGES: u64 = 4;

/// Restore every task of `plan`; returns the pids (image order). `image` is the mapped
/// image that [`PageData::Mapped`] ranges refer to.
pub fn restore(plan: &Plan, image: &[u8], opts: &Options) -> Result<Vec<i32>, Error> {
    // Legacy revisions have no vvar kind: find the vdso's data pages by their place.
    let adopted;
    let plan = if plan
        .tasks
        .iter()
        .any(|t| !t.vmas.iter().any(|v| v.vma.kind == VmaKind::Vvar))
    {
        let (ours, _) = check::own_vdso().map_err(Error::System)?;
        let pieces = check::vvar_pieces(&ours);
        let mut p = plan.clone();
        if p.adopt_vvar(&pieces) > 0 {
            adopted = p;
            &adopted
        } else {
            plan
        }
    } else {
        plan
    };
    let problems = check::compat(plan, image);
    if !problems.is_empty() {
        return Err(Error::Incompatible(problems));
    }
    for a in check::adaptations(plan, image) {
        eprintln!("ckpt-restore: {a}");
    }
    let tree = tree::plan_tree(&plan.tasks, sys::my_session()).map_err(Error::Image)?;
    if opts.pid_mode == PidMode::Prefer {
        check::child_pids_free(plan).map_err(Error::Pid)?;
    }
    for w in &tree.warnings {
        eprintln!("ckpt-restore: {w}");
    }
    let root_path = opts
        .root
        .clone()
        .unwrap_or_else(|| std::path::PathBuf::from("/"));
    let root = sys::open_dir_path(&root_path)
        .map_err(|e| Error::Files(format!("--root {}: {e}", root_path.display())))?;
    let r = stage(plan, root.as_raw_fd()).and_then(|staged| {
        let pids = build(plan, &tree, &staged, image, opts)?;
        drop(staged);
        Ok(pids)
    });
    r.map_err(|e| held_off(plan, e))
}

/// A failed restore of an image whose TCP peers are still held off by a net lock
/// says so, and how to release them (or restore again from the same image).
fn held_off(plan: &Plan, e: Error) -> Error {
    let held: Vec<String> = crate::sockets::netlocks(&plan.files)
        .into_iter()
        .filter(|n| {
            ckpt_sys::netlock::NetLock::named(n)
                .map(|l| l.exists())
                .unwrap_or(false)
        })
        .collect();
    if held.is_empty() {
        return e;
    }
    let note = format!(
        "; the TCP peers of this image are still held off by nftables table(s) {}: restore again from this image, or release them with {}",
        held.iter().map(|n| format!("inet {n}")).collect::<Vec<_>>().join(", "),
        held.iter().map(|n| format!("`nft delete table inet {n}`")).collect::<Vec<_>>().join(" and ")
    );
    match e {
        Error::Image(s) => Error::Image(s + &note),
        Error::Files(s) => Error::Files(s + &note),
        Error::Pid(s) => Error::Pid(s + &note),
        Error::System(s) => Error::System(s + &note),
        Error::Incompatible(mut v) => {
            v.push(note.trim_start_matches("; ").to_string());
            Error::Incompatible(v)
        }
    }
}

/// One process being built: stopped, traced, with an injection area of its own.
struct Proc<'a> {
    t: &'a TaskPlan,
    /// Index of the task in the image.
    idx: usize,
    pid: i32,
    /// Its pid as the restored tree sees it: `pid`, or under `--pid-ns` the captured pid
    /// inside the new namespace. Every pid written into the tree's state is this one.
    vpid: i32,
    /// Injects into the leader thread.
    main: Remote,
    area: u64,
    /// Threads built so far: (tid, what it restores), leader first.
    threads: Vec<(i32, &'a Thread)>,
    /// A `SIGSTOP` was pending in the image: the process is stopped when released.
    stop_pending: bool,
    /// Its parent-death signal (`pdeath_signal`), set when its parent is in the image.
    pdeath: u64,
    /// Its shared anonymous VMAs that map an object rebuilt by another VMA.
    shm: Vec<memory::ShmLink>,
    /// Eventpoll instances whose targets this process registers: (its epoll fd, targets).
    epoll: Vec<(i32, Vec<ckpt_format::model::EpollTarget>)>,
}

impl Proc<'_> {
    fn data(&self) -> u64 {
        self.area + PAGE
    }
}

/// What every process's injection area holds beside its 4 pages: room to park our vdso.
struct AreaShape {
    /// Our vdso/vvar mappings: (name, start, end).
    ours: Vec<(Vec<u8>, u64, u64)>,
    /// The bytes of our vdso (the proxy's target).
    our_bytes: Vec<u8>,
    len: u64,
}

fn build(
    plan: &Plan,
    tree: &tree::TreePlan,
    st: &Staged,
    image: &[u8],
    opts: &Options,
) -> Result<Vec<i32>, Error> {
    let me = std::process::id() as i32;
    let (ours, our_bytes) = check::own_vdso().map_err(Error::System)?;
    let vd_span = match (ours.first(), ours.last()) {
        (Some(f), Some(l)) => l.2 - f.1,
        _ => 0,
    };
    let shape = AreaShape {
        ours,
        our_bytes,
        len: AREA_PAGES * PAGE + vd_span,
    };
    // Our own vdso: a fork has it at the same address, with a `syscall` in it.
    let site0 = ckpt_sys::inject::find_vdso_syscall(me)
        .map_err(|e| sys_err("finding a syscall instruction in our vdso", e))?
        .ok_or_else(|| Error::System("no syscall instruction in our vdso".into()))?;
    // Under --pid-ns: the namespace and its init first (dropped after `guard`, so a
    // failed restore kills the tree before the init).
    let roots = tree.nodes.iter().filter(|n| n.parent.is_none()).count();
    if opts.pid_mode == PidMode::Namespace && roots > crate::pidns::PidNs::MAX_ROOTS {
        return Err(Error::Image(format!(
            "--pid-ns: {roots} separate process trees; at most {} in one namespace",
            crate::pidns::PidNs::MAX_ROOTS
        )));
    }
    let ns = match opts.pid_mode {
        PidMode::Namespace => Some(
            crate::pidns::PidNs::start()
                .map_err(|e| sys_err("creating the pid namespace (--pid-ns)", e))?,
        ),
        _ => None,
    };
    let mut guard = Guard {
        procs: Vec::new(),
        armed: true,
    };

    // 1. Every process, parents first, each forked from its restored parent while that
    //    one is still a blank copy of us; sessions right away (children inherit them).
    let mut procs: Vec<Proc> = Vec::with_capacity(plan.tasks.len());
    for (i, t) in plan.tasks.iter().enumerate() {
        let node = &tree.nodes[i];
        let p = match node.parent {
            None => create_root(t, i, st, site0, &shape, opts, &mut guard)?,
            Some(pi) => create_child(&mut procs[pi], t, i, st, &shape, opts, &mut guard)?,
        };
        procs.push(p);
        let p = procs.last_mut().expect("just pushed");
        if ns.is_some() {
            p.vpid = crate::pidns::ns_pid(p.pid)
                .map_err(|e| sys_err(format!("the pid of {} in its namespace", p.pid), e))?;
            if p.vpid != t.task.pid {
                return Err(Error::Pid(format!(
                    "pid {} got pid {} in the new namespace, not its captured {}",
                    p.pid, p.vpid, t.task.pid
                )));
            }
        }
        if node.parent.is_some() {
            // A root's parent is not restored: plan_tree refused a root with one.
            p.pdeath = t.task.records.pdeath_signal.map_or(0, |p| p.sig);
        }
        if node.setsid {
            p.main.call("setsid", libc::SYS_setsid, &[])?;
            // Before it forks the rest of its session: they inherit the terminal.
            ttys::take_ctty(p, st)?;
        }
    }
    // 2. Process groups: leaders, then members (with the leaders' new pids).
    for (i, n) in tree.nodes.iter().enumerate() {
        if n.group == tree::Group::Own {
            procs[i]
                .main
                .call("setpgid(0, 0)", libc::SYS_setpgid, &[0, 0])?;
        }
    }
    for (i, n) in tree.nodes.iter().enumerate() {
        if let tree::Group::Join(l) = n.group {
            let leader = procs[l].vpid as u64;
            procs[i]
                .main
                .call("setpgid(0, leader)", libc::SYS_setpgid, &[0, leader])?;
        }
    }
    verify_ids(plan, tree, &procs)?;
    // The fds on a /proc entry of a process of the tree, now that every one exists.
    let hosts: std::collections::HashMap<i32, i32> =
        procs.iter().map(|p| (p.t.task.pid, p.pid)).collect();
    // After the pidfds: an entry such as /proc/PID/fdinfo/N may name one of them.
    pidfd::install(plan, &mut procs)?;
    for p in procs.iter_mut().filter(|p| p.t.task.exit_state == 0) {
        procfiles::open_late(p, plan, st, &hosts)?;
    }
    fown::set(plan, &mut procs)?;
    ttys::set_foreground(&mut procs, st)?;
    memory::link_shared_anon(&mut procs);
    // Each eventpoll instance's targets are registered by the first process holding it
    // (the one whose fd numbers they are), once its fd table is in place.
    let mut seen = std::collections::BTreeSet::new();
    for p in procs.iter_mut() {
        for fd in &p.t.fds {
            let f = &plan.files[&fd.file];
            if let Some(e) = &f.records.eventpoll {
                if seen.insert(fd.file) {
                    p.epoll.push((fd.fd, e.targets.clone()));
                }
            }
        }
    }
    // Zombies exit now with their status, left to their parents (still blank copies).
    for p in procs.iter_mut().filter(|p| p.t.task.exit_state != 0) {
        spawn::zombify(p)?;
    }
    // 3. Each process reshaped into its image.
    let pids: std::collections::HashMap<i32, i32> =
        procs.iter().map(|p| (p.t.task.pid, p.vpid)).collect();
    for p in procs.iter_mut().filter(|p| p.t.task.exit_state == 0) {
        finish(p, st, &shape, image, opts, &pids, &mut guard)?;
    }
    // 4. TCP peers let in again, connections out of repair mode; then release,
    //    children before parents.
    crate::sockets::finish_tcp(&plan.files, &st.files).map_err(Error::System)?;
    for p in procs.iter().filter(|p| p.t.task.exit_state == 0) {
        // Captured stopped (job control: state T) is stopped again.
        if p.t.task.state == TASK_STOPPED && !opts.leave_stopped && !p.stop_pending {
            let sig = ttys::stop_signal(plan, tree, p.idx);
            ptrace::kill(p.pid, sig).map_err(|e| sys_err(format!("signal {sig}"), e))?;
        } else if opts.leave_stopped || p.stop_pending || p.t.task.state == TASK_STOPPED {
            ptrace::kill(p.pid, libc::SIGSTOP).map_err(|e| sys_err("SIGSTOP", e))?;
        }
    }
    for p in procs.iter().rev() {
        for (tid, _) in p.threads.iter().rev() {
            ptrace::detach(*tid, 0).map_err(|e| sys_err("PTRACE_DETACH", e))?;
        }
    }
    guard.armed = false;
    if let Some(ns) = ns {
        let roots: Vec<i32> = tree
            .nodes
            .iter()
            .zip(&procs)
            .filter(|(n, _)| n.parent.is_none())
            .map(|(_, p)| p.vpid)
            .collect();
        ns.release(&roots)
            .map_err(|e| sys_err("starting the pid namespace's init", e))?;
    }
    Ok(procs.iter().map(|p| p.pid).collect())
}

/// The parent, session and group of every process as the kernel sees them now, against
/// the tree plan (through the new pids).
fn verify_ids(plan: &Plan, tree: &tree::TreePlan, procs: &[Proc]) -> Result<(), Error> {
    for (i, n) in tree.nodes.iter().enumerate() {
        let pid = procs[i].pid;
        let (ppid, pgid, sid) = sys::proc_ids(pid).map_err(|e| sys_err(format!("pid {pid}"), e))?;
        let captured = plan.tasks[i].task.pid;
        if let Some(pi) = n.parent {
            if ppid != procs[pi].pid {
                return Err(Error::System(format!(
                    "pid {pid} (captured {captured}) has parent {ppid}, expected {}",
                    procs[pi].pid
                )));
            }
        }
        if let Some(l) = n.session_leader {
            if sid != procs[l].pid {
                return Err(Error::System(format!(
                    "pid {pid} (captured {captured}) is in session {sid}, expected {}",
                    procs[l].pid
                )));
            }
        }
        let want_group = match n.group {
            tree::Group::Own => Some(pid),
            tree::Group::Join(l) => Some(procs[l].pid),
            tree::Group::Inherit if n.setsid => Some(pid),
            tree::Group::Inherit => None,
        };
        if let Some(g) = want_group {
            if pgid != g {
                return Err(Error::System(format!(
                    "pid {pid} (captured {captured}) is in process group {pgid}, expected {g}"
                )));
            }
        }
    }
    Ok(())
}
