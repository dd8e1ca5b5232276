//! Building a process from a [`Plan`]: fork a stopped child, then reshape it from the
//! outside with injected system calls (see docs/RESTORE.md for the sequence).

use crate::caps::{self, Caps};
use crate::plan::{PageData, Plan, TaskPlan, VmaPlan, MAX_GROUPS, PAGE, TASK_SIZE};
use crate::{check, signals, sys, tree, Error, Options, PidMode};
use ckpt_format::{FileKind, FpuKind, Thread, VmaKind, VM_SHARED};
use ckpt_sys::ptrace::{self, WaitStatus};
use std::collections::BTreeMap;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

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

fn sys_err(what: impl std::fmt::Display, e: impl std::fmt::Display) -> Error {
    Error::System(format!("{what}: {e}"))
}

/// Runs system calls inside one stopped thread of the child, at a fixed `syscall`.
struct Remote {
    tid: i32,
    site: u64,
    template: libc::user_regs_struct,
    last_clone: Option<i32>,
}

impl Remote {
    fn new(tid: i32, site: u64) -> Result<Remote, Error> {
        let template = ptrace::get_regs(tid).map_err(|e| sys_err("PTRACE_GETREGS", e))?;
        Ok(Remote {
            tid,
            site,
            template,
            last_clone: None,
        })
    }

    /// Raw result (negative errno on failure).
    fn raw(&mut self, nr: i64, args: &[u64]) -> Result<i64, Error> {
        let mut r = self.template;
        let mut a = [0u64; 6];
        a[..args.len()].copy_from_slice(args);
        r.rax = nr as u64;
        r.orig_rax = u64::MAX;
        (r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9) = (a[0], a[1], a[2], a[3], a[4], a[5]);
        r.rip = self.site;
        r.eflags &= !0x10100;
        let what = || format!("injected syscall {nr} in tid {}", self.tid);
        ptrace::set_regs(self.tid, &r).map_err(|e| sys_err(what(), e))?;
        loop {
            ptrace::step(self.tid, 0).map_err(|e| sys_err(what(), e))?;
            match ptrace::wait(self.tid).map_err(|e| sys_err(what(), e))? {
                WaitStatus::Stopped {
                    sig: libc::SIGTRAP,
                    event: 0,
                } => break,
                WaitStatus::Stopped { event, .. } if event != 0 => {
                    if event == PTRACE_EVENT_CLONE || event == PTRACE_EVENT_FORK {
                        let m = sys::ptrace_event_msg(self.tid).map_err(|e| sys_err(what(), e))?;
                        self.last_clone = Some(m as i32);
                    }
                }
                WaitStatus::Stopped { sig, .. } => {
                    // A signal to the half-built child: drop it and step again if the
                    // syscall has not run yet.
                    let now = ptrace::get_regs(self.tid).map_err(|e| sys_err(what(), e))?;
                    if now.rip != self.site {
                        return Err(Error::System(format!(
                            "{}: signal {sig} arrived and moved the thread",
                            what()
                        )));
                    }
                }
                WaitStatus::Exited(c) => {
                    return Err(Error::System(format!("{}: the child exited ({c})", what())))
                }
                WaitStatus::Signaled(s) => {
                    return Err(Error::System(format!(
                        "{}: the child was killed by signal {s}",
                        what()
                    )))
                }
            }
        }
        let after = ptrace::get_regs(self.tid).map_err(|e| sys_err(what(), e))?;
        if after.rip != self.site + 2 {
            return Err(Error::System(format!(
                "{}: stopped at {:#x}, expected {:#x}",
                what(),
                after.rip,
                self.site + 2
            )));
        }
        Ok(after.rax as i64)
    }

    fn call(&mut self, name: &str, nr: i64, args: &[u64]) -> Result<u64, Error> {
        let r = self.raw(nr, args)?;
        if (-4095..0).contains(&r) {
            return Err(Error::System(format!(
                "{name} in the restored process (tid {}): {}",
                self.tid,
                std::io::Error::from_raw_os_error((-r) as i32)
            )));
        }
        Ok(r as u64)
    }
}

/// Kills every half-built process (and reaps it) unless released.
struct Guard {
    /// `(pid, thread ids)` in creation order (parents before children).
    procs: Vec<(i32, Vec<i32>)>,
    armed: bool,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if self.armed {
            // Parents first: a dead parent's children go to init (or the nearest
            // subreaper), which reaps them once we, their tracer, have seen them die.
            for (pid, tids) in &self.procs {
                sys::kill_and_reap(*pid, tids);
            }
        }
    }
}

/// What the parent opened for the child before forking it.
struct Staged {
    /// Every staging descriptor (kept open until the child is built).
    owned: Vec<OwnedFd>,
    /// File object id -> staging fd.
    files: BTreeMap<u32, RawFd>,
    /// (path, writable) -> staging fd, for file mappings.
    maps: BTreeMap<(Vec<u8>, bool), RawFd>,
    /// Per task (image order): the executable and the cwd.
    exe: Vec<Option<RawFd>>,
    cwd: Vec<Option<RawFd>>,
    /// The lowest staging descriptor: above every captured fd of every task.
    base: RawFd,
}

fn show(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
}

/// Open everything every task needs, once per object: a file or pipe shared by several
/// tasks (or fds) gets one staging descriptor, inherited through every fork.
fn stage(plan: &Plan, root: RawFd) -> Result<Staged, Error> {
    sys::raise_nofile();
    let all_fds = || plan.tasks.iter().flat_map(|t| t.fds.iter());
    let max_fd = all_fds().map(|f| f.fd).max().unwrap_or(2).max(2);
    let base = max_fd + 1;
    let mut st = Staged {
        owned: Vec::new(),
        files: BTreeMap::new(),
        maps: BTreeMap::new(),
        exe: Vec::new(),
        cwd: Vec::new(),
        base,
    };
    let keep = |fd: OwnedFd, st: &mut Staged| -> Result<RawFd, Error> {
        let d = sys::dup_at_least(fd.as_raw_fd(), base)
            .map_err(|e| sys_err("moving a descriptor to the staging area", e))?;
        let n = d.as_raw_fd();
        st.owned.push(d);
        Ok(n)
    };
    let refuse_deleted = |p: &[u8], what: &str| -> Result<(), Error> {
        if p.ends_with(b" (deleted)") {
            return Err(Error::Image(format!(
                "{what} {} was deleted before the capture; its contents are not in the image",
                show(p)
            )));
        }
        Ok(())
    };
    // Pipes: one kernel pipe per pipe object, data written now.
    let mut pipe_ends: BTreeMap<u32, (RawFd, RawFd)> = BTreeMap::new();
    let used_pipes: Vec<u32> = all_fds()
        .filter_map(|fd| {
            let f = &plan.files[&fd.file];
            (f.kind == FileKind::Pipe).then_some(f.pipe).flatten()
        })
        .collect();
    for id in used_pipes {
        if pipe_ends.contains_key(&id) {
            continue;
        }
        let (r, w) = sys::pipe().map_err(|e| sys_err("pipe", e))?;
        let data = &plan.pipes[&id];
        if data.len() > 65536 {
            sys::set_pipe_size(w.as_raw_fd(), data.len())
                .map_err(|e| sys_err(format!("F_SETPIPE_SZ {} for pipe {id}", data.len()), e))?;
        }
        sys::write_all(w.as_raw_fd(), data)
            .map_err(|e| sys_err(format!("refilling pipe {id}"), e))?;
        let r = keep(r, &mut st)?;
        let w = keep(w, &mut st)?;
        pipe_ends.insert(id, (r, w));
    }
    // Files of the fd tables.
    for fd in all_fds() {
        if st.files.contains_key(&fd.file) {
            continue;
        }
        let f = &plan.files[&fd.file];
        let acc = f.flags as i32 & libc::O_ACCMODE;
        let keepfl = (f.flags as i32)
            & (libc::O_ACCMODE
                | libc::O_APPEND
                | libc::O_NONBLOCK
                | libc::O_DIRECT
                | libc::O_NOATIME
                | libc::O_SYNC
                | libc::O_DSYNC
                | libc::O_LARGEFILE
                | libc::O_DIRECTORY
                | libc::O_PATH);
        let n = match f.kind {
            FileKind::Pipe => {
                let (r, w) = pipe_ends[&f.pipe.unwrap_or(0)];
                let n = if acc == libc::O_WRONLY { w } else { r };
                sys::set_fl(n, keepfl).map_err(|e| sys_err("F_SETFL on a pipe", e))?;
                n
            }
            FileKind::Regular | FileKind::Directory | FileKind::CharDevice | FileKind::Fifo => {
                refuse_deleted(&f.path, "file")?;
                let extra = if f.kind == FileKind::Fifo {
                    libc::O_NONBLOCK
                } else {
                    0
                };
                // A FIFO's write end opens without blocking only while a reader exists:
                // hold a reader of our own for the moment of the open.
                let _reader = if f.kind == FileKind::Fifo && acc == libc::O_WRONLY {
                    sys::open_in_root(root, &f.path, libc::O_RDONLY | libc::O_NONBLOCK, 0).ok()
                } else {
                    None
                };
                let o = sys::open_in_root(root, &f.path, keepfl | libc::O_NOCTTY | extra, 0)
                    .map_err(|e| Error::Files(format!("opening {}: {e}", show(&f.path))))?;
                if f.kind == FileKind::Fifo {
                    sys::set_fl(o.as_raw_fd(), keepfl).map_err(|e| sys_err("F_SETFL", e))?;
                    if let Some(data) = f.pipe.and_then(|p| plan.pipes.get(&p)) {
                        if !data.is_empty() {
                            let w = sys::open_in_root(
                                root,
                                &f.path,
                                libc::O_WRONLY | libc::O_NONBLOCK,
                                0,
                            )
                            .map_err(|e| Error::Files(format!("opening {}: {e}", show(&f.path))))?;
                            sys::write_all(w.as_raw_fd(), data)
                                .map_err(|e| sys_err("refilling a FIFO", e))?;
                        }
                    }
                }
                if matches!(f.kind, FileKind::Regular | FileKind::Directory) && f.pos != 0 {
                    sys::seek(o.as_raw_fd(), f.pos).map_err(|e| {
                        Error::Files(format!("lseek {} to {}: {e}", show(&f.path), f.pos))
                    })?;
                }
                keep(o, &mut st)?
            }
            k => {
                return Err(Error::Image(format!(
                    "fd {} is a {}: not restorable",
                    fd.fd,
                    k.name()
                )))
            }
        };
        st.files.insert(fd.file, n);
    }
    // File mappings.
    for v in plan.tasks.iter().flat_map(|t| t.vmas.iter()) {
        if v.vma.kind != VmaKind::File {
            continue;
        }
        let path = v.vma.file.clone().unwrap_or_default();
        refuse_deleted(&path, "mapped file")?;
        let writable = v.vma.flags & VM_SHARED != 0 && v.vma.flags & VM_MAYWRITE != 0;
        if st.maps.contains_key(&(path.clone(), writable)) {
            continue;
        }
        let fl = if writable {
            libc::O_RDWR
        } else {
            libc::O_RDONLY
        };
        let o = sys::open_in_root(root, &path, fl, 0)
            .map_err(|e| Error::Files(format!("opening mapped file {}: {e}", show(&path))))?;
        let (_, ino, _) = sys::fstat(o.as_raw_fd()).map_err(|e| sys_err("fstat", e))?;
        if let Some(want) = v.vma.extras.u64("ino") {
            if want != 0 && want != ino {
                return Err(Error::Files(format!(
                    "mapped file {} is not the captured one (inode {ino}, captured {want}): it changed since the capture",
                    show(&path)
                )));
            }
        }
        let n = keep(o, &mut st)?;
        st.maps.insert((path, writable), n);
    }
    for t in &plan.tasks {
        let mut exe_fd = None;
        if let Some(exe) = t.mm.as_ref().and_then(|m| m.exe.clone()) {
            refuse_deleted(&exe, "executable")?;
            let o = sys::open_in_root(root, &exe, libc::O_RDONLY, 0)
                .map_err(|e| Error::Files(format!("opening the executable {}: {e}", show(&exe))))?;
            exe_fd = Some(keep(o, &mut st)?);
        }
        let mut cwd_fd = None;
        if let Some(fs) = &t.fs {
            if !fs.cwd.is_empty() {
                refuse_deleted(&fs.cwd, "cwd")?;
                let o = sys::open_in_root(root, &fs.cwd, libc::O_PATH | libc::O_DIRECTORY, 0)
                    .map_err(|e| Error::Files(format!("opening cwd {}: {e}", show(&fs.cwd))))?;
                cwd_fd = Some(keep(o, &mut st)?);
            }
        }
        st.exe.push(exe_fd);
        st.cwd.push(cwd_fd);
    }
    Ok(st)
}

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
    let staged = stage(plan, root.as_raw_fd())?;
    let pids = build(plan, &tree, &staged, image, opts)?;
    drop(staged);
    Ok(pids)
}

/// One process being built: stopped, traced, with an injection area of its own.
struct Proc<'a> {
    t: &'a TaskPlan,
    /// Index of the task in the image.
    idx: usize,
    pid: i32,
    /// Injects into the leader thread.
    main: Remote,
    area: u64,
    /// Threads built so far: (tid, what it restores), leader first.
    threads: Vec<(i32, &'a Thread)>,
    /// A `SIGSTOP` was pending in the image: the process is stopped when released.
    stop_pending: bool,
    /// Its parent-death signal (`pdeath_signal`), set when its parent is in the image.
    pdeath: u64,
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
    let (ours, _) = check::own_vdso().map_err(Error::System)?;
    let vd_span = match (ours.first(), ours.last()) {
        (Some(f), Some(l)) => l.2 - f.1,
        _ => 0,
    };
    let shape = AreaShape {
        ours,
        len: AREA_PAGES * PAGE + vd_span,
    };
    // Our own vdso: a fork has it at the same address, with a `syscall` in it.
    let site0 = ckpt_sys::inject::find_vdso_syscall(me)
        .map_err(|e| sys_err("finding a syscall instruction in our vdso", e))?
        .ok_or_else(|| Error::System("no syscall instruction in our vdso".into()))?;
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
        if node.parent.is_some() {
            // A root's parent is not restored: plan_tree refused a root with one.
            p.pdeath = t.task.extras.u64("pdeath_signal").unwrap_or(0);
        }
        if node.setsid {
            p.main.call("setsid", libc::SYS_setsid, &[])?;
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
            let leader = procs[l].pid as u64;
            procs[i]
                .main
                .call("setpgid(0, leader)", libc::SYS_setpgid, &[0, leader])?;
        }
    }
    verify_ids(plan, tree, &procs)?;
    // 3. Each process reshaped into its image.
    for p in procs.iter_mut() {
        finish(p, st, &shape, image, opts, &mut guard)?;
    }
    // 4. Release, children before parents.
    for p in &procs {
        // Captured stopped (job control: state T) is stopped again.
        if opts.leave_stopped || p.stop_pending || p.t.task.state == TASK_STOPPED {
            ptrace::kill(p.pid, libc::SIGSTOP).map_err(|e| sys_err("SIGSTOP", e))?;
        }
    }
    for p in procs.iter().rev() {
        for (tid, _) in p.threads.iter().rev() {
            ptrace::detach(*tid, 0).map_err(|e| sys_err("PTRACE_DETACH", e))?;
        }
    }
    guard.armed = false;
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

/// The child's fd table (from the staging copies), cwd and umask, as raw-syscall steps.
fn fd_setup(t: &TaskPlan, i: usize, st: &Staged) -> sys::ChildSetup {
    let mut setup = sys::ChildSetup {
        parent: std::process::id() as i32,
        cwd: st.cwd[i],
        umask: t.fs.as_ref().map(|f| f.umask),
        ..Default::default()
    };
    let mut targets: Vec<i32> = Vec::new();
    for fd in &t.fds {
        setup.dups.push((st.files[&fd.file], fd.fd, fd.cloexec));
        targets.push(fd.fd);
    }
    targets.sort_unstable();
    let mut lo = 0u32;
    for &tf in &targets {
        if (tf as u32) > lo {
            setup.close.push((lo, tf as u32 - 1));
        }
        lo = tf as u32 + 1;
    }
    if (st.base as u32) > lo {
        setup.close.push((lo, st.base as u32 - 1));
    }
    setup
}

/// A root of the tree: forked by us; it sets up its fd table itself, then stops.
fn create_root<'a>(
    t: &'a TaskPlan,
    i: usize,
    st: &Staged,
    site0: u64,
    shape: &AreaShape,
    opts: &Options,
    guard: &mut Guard,
) -> Result<Proc<'a>, Error> {
    let setup = fd_setup(t, i, st);
    let want = match opts.pid_mode {
        PidMode::Any => None,
        _ => Some(t.task.pid),
    };
    let pid = match sys::spawn_child(want, &setup) {
        Ok(p) => p,
        Err(e) if want.is_some() && opts.pid_mode == PidMode::Prefer => {
            eprintln!(
                "ckpt-restore: pid {} is not available ({e}); the kernel chooses another",
                t.task.pid
            );
            sys::spawn_child(None, &setup).map_err(|e| sys_err("clone3", e))?
        }
        Err(e) => {
            return Err(Error::Pid(format!(
                "pid {} is not available: {e}",
                t.task.pid
            )))
        }
    };
    match ptrace::wait(pid).map_err(|e| sys_err("waitpid", e))? {
        WaitStatus::Stopped {
            sig: libc::SIGSTOP, ..
        } => {}
        WaitStatus::Exited(c) => {
            return Err(Error::System(format!(
                "the new process failed before it stopped: {} (exit {c})",
                sys::child_failure(c)
            )));
        }
        s => {
            guard.procs.push((pid, vec![pid]));
            return Err(Error::System(format!("the new process: unexpected {s:?}")));
        }
    }
    guard.procs.push((pid, vec![pid]));
    sys::ptrace_set_options(pid, TRACE_OPTIONS).map_err(|e| sys_err("PTRACE_SETOPTIONS", e))?;
    let main = Remote::new(pid, site0)?;
    prepare(t, i, pid, main, shape)
}

/// A process forked from its restored parent (an injected `clone3` like `fork`, with
/// the captured pid): it inherits every staging descriptor and the parent's session;
/// its own fd table, cwd and umask are set by injected calls.
fn create_child<'a>(
    parent: &mut Proc,
    t: &'a TaskPlan,
    i: usize,
    st: &Staged,
    shape: &AreaShape,
    opts: &Options,
    guard: &mut Guard,
) -> Result<Proc<'a>, Error> {
    let data = parent.data();
    let pid = inject_clone(
        &mut parent.main,
        data,
        0,
        libc::SIGCHLD as u64,
        t.task.pid,
        "process",
        opts,
    )?;
    guard.procs.push((pid, vec![pid]));
    sys::ptrace_set_options(pid, TRACE_OPTIONS).map_err(|e| sys_err("PTRACE_SETOPTIONS", e))?;
    // The child's copy of the parent's injection area is its first site.
    let main = Remote::new(pid, parent.area)?;
    let mut p = prepare(t, i, pid, main, shape)?;
    let setup = fd_setup(t, i, st);
    for &(from, to, cloexec) in &setup.dups {
        let fl = if cloexec { libc::O_CLOEXEC } else { 0 };
        p.main.call(
            &format!("dup3 to fd {to}"),
            libc::SYS_dup3,
            &[from as u64, to as u64, fl as u64],
        )?;
    }
    for &(lo, hi) in &setup.close {
        p.main.call(
            "close_range",
            libc::SYS_close_range,
            &[lo as u64, hi as u64, 0],
        )?;
    }
    if let Some(c) = setup.cwd {
        p.main.call("fchdir", libc::SYS_fchdir, &[c as u64])?;
    }
    if let Some(m) = setup.umask {
        p.main.call("umask", libc::SYS_umask, &[m as u64])?;
    }
    Ok(p)
}

const TRACE_OPTIONS: u64 =
    (libc::PTRACE_O_TRACECLONE | libc::PTRACE_O_TRACEFORK | libc::PTRACE_O_EXITKILL) as u64;

/// In a new stopped process: drop our libc's rseq registration and place the injection
/// area (free in the image's layout and in the process's current one).
fn prepare<'a>(
    t: &'a TaskPlan,
    idx: usize,
    pid: i32,
    mut main: Remote,
    shape: &AreaShape,
) -> Result<Proc<'a>, Error> {
    // rseq registered by our libc for this copy of us: the kernel would write into memory
    // that is about to disappear.
    if let Ok(r) = ptrace::rseq_config(pid) {
        if r.ptr != 0 {
            main.call(
                "rseq unregister",
                libc::SYS_rseq,
                &[r.ptr, r.size as u64, 1, r.sig as u64],
            )?;
        }
    }
    let area = place_area(&mut main, t, shape.len)?;
    let code = [0x0fu8, 0x05, 0xcc];
    sys::write_pairs(pid, &[(area, &code)]).map_err(|e| sys_err("writing the syscall page", e))?;
    main.site = area;
    Ok(Proc {
        t,
        idx,
        pid,
        main,
        area,
        threads: Vec::new(),
        stop_pending: false,
        pdeath: 0,
    })
}

/// Reshape one process into its image: address space, mm, signals, threads,
/// per-thread state, credentials, registers, limits. Leaves every thread stopped.
fn finish<'a>(
    p: &mut Proc<'a>,
    st: &Staged,
    shape: &AreaShape,
    image: &[u8],
    opts: &Options,
    guard: &mut Guard,
) -> Result<(), Error> {
    let t = p.t;
    let pid = p.pid;
    let area = p.area;
    let area_len = shape.len;
    let data = p.data();
    let ours = shape.ours.as_slice();
    let gi = guard
        .procs
        .iter()
        .position(|g| g.0 == pid)
        .ok_or_else(|| Error::System(format!("pid {pid} is not guarded")))?;
    let exe = st.exe[p.idx];
    let main = &mut p.main;
    // Park the vdso/vvar inside the area, drop everything else, move them into place.
    let img_vdso = t.vmas.iter().find(|v| v.vma.kind == VmaKind::Vdso);
    let park = area + AREA_PAGES * PAGE;
    let first = ours.first().map_or(0, |f| f.1);
    if img_vdso.is_some() {
        for o in ours {
            let len = o.2 - o.1;
            main.call(
                "mremap (park vdso)",
                libc::SYS_mremap,
                &[
                    o.1,
                    len,
                    len,
                    (libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED) as u64,
                    park + (o.1 - first),
                ],
            )?;
        }
    }
    main.call("munmap", libc::SYS_munmap, &[0, area])?;
    main.call(
        "munmap",
        libc::SYS_munmap,
        &[area + area_len, TASK_SIZE - (area + area_len)],
    )?;
    if let Some(iv) = img_vdso {
        let our_vdso = ours.iter().find(|o| o.0 == b"[vdso]").map_or(0, |o| o.1);
        for o in ours {
            let len = o.2 - o.1;
            let dest = iv.vma.start.wrapping_add(o.1).wrapping_sub(our_vdso);
            main.call(
                "mremap (vdso into place)",
                libc::SYS_mremap,
                &[
                    park + (o.1 - first),
                    len,
                    len,
                    (libc::MREMAP_MAYMOVE | libc::MREMAP_FIXED) as u64,
                    dest,
                ],
            )?;
        }
    }

    // Every VMA, then the pages, then the final protections.
    let mut reprotect: Vec<(u64, u64, u32)> = Vec::new();
    for v in &t.vmas {
        if let Some(p) = map_vma(main, v, st)? {
            reprotect.push(p);
        }
    }
    write_pages(pid, t, image)?;
    for (s, l, prot) in reprotect {
        main.call("mprotect", libc::SYS_mprotect, &[s, l, prot as u64])?;
    }

    // mm fields, exe, name, personality.
    if let Some(mm) = &t.mm {
        let mut b = Vec::with_capacity(104);
        for v in [
            mm.start_code,
            mm.end_code,
            mm.start_data,
            mm.end_data,
            mm.start_brk,
            mm.brk,
            mm.start_stack,
            mm.arg_start,
            mm.arg_end,
            mm.env_start,
            mm.env_end,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        let auxv: Vec<u8> = mm.auxv.iter().flat_map(|v| v.to_le_bytes()).collect();
        if auxv.len() > 1024 {
            return Err(Error::Image(format!(
                "auxv of {} bytes is too long",
                auxv.len()
            )));
        }
        let auxv_at = data + 256;
        b.extend_from_slice(&(if auxv.is_empty() { 0 } else { auxv_at }).to_le_bytes());
        b.extend_from_slice(&(auxv.len() as u32).to_le_bytes());
        let exe_fd = exe.map_or(u32::MAX, |f| f as u32);
        b.extend_from_slice(&exe_fd.to_le_bytes());
        sys::write_pairs(pid, &[(data, &b), (auxv_at, &auxv)])
            .map_err(|e| sys_err("writing prctl_mm_map", e))?;
        let r = main.raw(
            libc::SYS_prctl,
            &[
                libc::PR_SET_MM as u64,
                libc::PR_SET_MM_MAP as u64,
                data,
                104,
                0,
            ],
        )?;
        if r == -(libc::EPERM as i64) && exe.is_some() {
            // Without CAP_CHECKPOINT_RESTORE the exe link cannot be changed: keep the rest.
            eprintln!(
                "ckpt-restore: not permitted to set the exe link; /proc/PID/exe will be wrong"
            );
            let pos = 11 * 8 + 8 + 4;
            let mut b2 = b.clone();
            b2[pos..pos + 4].copy_from_slice(&u32::MAX.to_le_bytes());
            sys::write_pairs(pid, &[(data, &b2)]).map_err(|e| sys_err("prctl_mm_map", e))?;
            main.call(
                "prctl(PR_SET_MM_MAP)",
                libc::SYS_prctl,
                &[
                    libc::PR_SET_MM as u64,
                    libc::PR_SET_MM_MAP as u64,
                    data,
                    104,
                    0,
                ],
            )?;
        } else if r < 0 {
            return Err(Error::System(format!(
                "prctl(PR_SET_MM_MAP) in the restored process: {}",
                std::io::Error::from_raw_os_error((-r) as i32)
            )));
        }
        if mm.personality != 0 {
            main.call(
                "personality",
                libc::SYS_personality,
                &[mm.personality as u64],
            )?;
        }
    }
    let mut comm = t.task.comm.clone();
    comm.truncate(15);
    comm.push(0);
    sys::write_pairs(pid, &[(data + 1536, &comm)]).map_err(|e| sys_err("writing comm", e))?;
    main.call(
        "prctl(PR_SET_NAME)",
        libc::SYS_prctl,
        &[libc::PR_SET_NAME as u64, data + 1536],
    )?;

    // Signal dispositions.
    if !t.sigactions.is_empty() {
        let mut b = Vec::with_capacity(t.sigactions.len() * 32);
        for a in &t.sigactions {
            for v in [a.handler, a.flags, a.restorer, a.mask] {
                b.extend_from_slice(&v.to_le_bytes());
            }
        }
        if b.len() > 2 * PAGE as usize {
            return Err(Error::Image("too many signal actions".into()));
        }
        sys::write_pairs(pid, &[(data + 4096, &b)])
            .map_err(|e| sys_err("writing sigactions", e))?;
        for (i, _) in t.sigactions.iter().enumerate() {
            let sig = i as u64 + 1;
            if sig == libc::SIGKILL as u64 || sig == libc::SIGSTOP as u64 {
                continue;
            }
            main.call(
                &format!("rt_sigaction({sig})"),
                libc::SYS_rt_sigaction,
                &[sig, data + 4096 + i as u64 * 32, 0, 8],
            )?;
        }
    }

    // Threads: the leader is the child itself; the others are cloned by it.
    let leader = t
        .threads
        .iter()
        .find(|th| th.tid == t.task.pid)
        .ok_or_else(|| Error::Image("no leader thread".into()))?;
    let mut built: Vec<(i32, &'a Thread)> = vec![(pid, leader)];
    for th in t.threads.iter().filter(|th| th.tid != t.task.pid) {
        let tid = inject_clone(main, data, THREAD_FLAGS, 0, th.tid, "thread", opts)?;
        guard.procs[gi].1.push(tid);
        built.push((tid, th));
    }
    let mut remotes: Vec<&mut Remote> = vec![main];
    let mut others: Vec<Remote> = Vec::new();
    for &(tid, _) in &built[1..] {
        others.push(Remote::new(tid, area)?);
    }
    remotes.extend(others.iter_mut());
    // Per-thread kernel state, in each thread.
    let (uids, gids, groups) = sys::my_creds();
    let c = &t.task.creds;
    let change_creds =
        uids[1] == 0 && (c.uid[..3] != uids[..] || c.gid[..3] != gids[..] || c.groups != groups);
    for (k, (_, th)) in built.iter().enumerate() {
        let r = &mut *remotes[k];
        let ex = &th.extras;
        if let Some(ctid) = ex.u64("clear_child_tid") {
            r.call("set_tid_address", libc::SYS_set_tid_address, &[ctid])?;
        }
        if let (Some(h), Some(l)) = (ex.u64("robust_list_head"), ex.u64("robust_list_len")) {
            if h != 0 {
                r.call("set_robust_list", libc::SYS_set_robust_list, &[h, l])?;
            }
        }
        if let (Some(sp), Some(fl), Some(sz)) = (
            ex.u64("sigaltstack_sp"),
            ex.u64("sigaltstack_flags"),
            ex.u64("sigaltstack_size"),
        ) {
            if fl & 2 == 0 {
                let mut b = Vec::new();
                b.extend_from_slice(&sp.to_le_bytes());
                b.extend_from_slice(&((fl & !1) as u32).to_le_bytes());
                b.extend_from_slice(&0u32.to_le_bytes());
                b.extend_from_slice(&sz.to_le_bytes());
                sys::write_pairs(pid, &[(data + 2560, &b)])
                    .map_err(|e| sys_err("writing stack_t", e))?;
                r.call("sigaltstack", libc::SYS_sigaltstack, &[data + 2560, 0])?;
            }
        }
        // rseq: the same area again (its memory is restored), so the kernel keeps its
        // cpu/node ids current as before (glibc's sched_getcpu reads them from there).
        if let (Some(ptr), Some(len), Some(sig)) =
            (ex.u64("rseq_ptr"), ex.u64("rseq_len"), ex.u64("rseq_sig"))
        {
            if ptr != 0 {
                r.call("rseq (register)", libc::SYS_rseq, &[ptr, len, 0, sig])?;
            }
        }
    }
    // Leftover descriptors, the parent-death signal, credentials, then the area itself.
    remotes[0].call(
        "close_range",
        libc::SYS_close_range,
        &[st.base as u64, u32::MAX as u64, 0],
    )?;
    remotes[0].call(
        "prctl(PR_SET_PDEATHSIG)",
        libc::SYS_prctl,
        &[libc::PR_SET_PDEATHSIG as u64, p.pdeath],
    )?;
    // no_new_privs is per thread (inherited by threads created later).
    if t.task.extras.u64("no_new_privs").unwrap_or(0) != 0 {
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
    let set_caps = match Caps::of_image(&t.task.extras) {
        Some(c) => {
            let ours = Caps::own().map_err(Error::System)?;
            (c != ours || change_creds).then_some((c, ours))
        }
        None => None,
    };
    if let Some((c, ours)) = set_caps {
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
        }
    }
    // Pending signals, the last calls but one, with every signal blocked in every thread
    // (the captured masks are loaded below), so none is delivered while we still inject
    // (a delivery stop during an injected step is dropped) and all wait for the release.
    // rt_(tg)sigqueueinfo keeps the siginfo as given when the caller is the target
    // thread (for the shared queue: the leader, whose tid is the pid), whatever si_code.
    let shared = signals::queue(&t.task.extras, "siginfo_shared").map_err(Error::Image)?;
    let mut queues = Vec::with_capacity(built.len());
    for (_, th) in &built {
        queues.push(signals::queue(&th.extras, "siginfo_pending").map_err(Error::Image)?);
    }
    let mut stop_pending = false;
    if !shared.is_empty() || queues.iter().any(|q| !q.is_empty()) {
        for (tid, _) in &built {
            sys::ptrace_set_sigmask(*tid, u64::MAX)
                .map_err(|e| sys_err(format!("PTRACE_SETSIGMASK tid {tid}"), e))?;
        }
        let at = data + 3072;
        let mut send = |r: &mut Remote, tid: Option<i32>, s: &signals::Pending| {
            if s.sig == libc::SIGSTOP {
                // Not blockable: it would stop the thread during the next injected step.
                // The process is stopped at the release instead.
                stop_pending = true;
                return Ok(());
            }
            sys::write_pairs(pid, &[(at, s.info)]).map_err(|e| sys_err("writing siginfo", e))?;
            match tid {
                Some(tid) => r.call(
                    &format!("rt_tgsigqueueinfo({})", s.sig),
                    libc::SYS_rt_tgsigqueueinfo,
                    &[pid as u64, tid as u64, s.sig as u64, at],
                ),
                None => r.call(
                    &format!("rt_sigqueueinfo({})", s.sig),
                    libc::SYS_rt_sigqueueinfo,
                    &[pid as u64, s.sig as u64, at],
                ),
            }
            .map(|_| ())
        };
        for (k, q) in queues.iter().enumerate() {
            let tid = built[k].0;
            for s in q {
                send(&mut *remotes[k], Some(tid), s)?;
            }
        }
        for s in &shared {
            send(&mut *remotes[0], None, s)?;
        }
    }
    p.stop_pending = stop_pending;
    remotes[0].call(
        "munmap (injection area)",
        libc::SYS_munmap,
        &[area, area_len],
    )?;

    // Registers, FPU, TLS, masks.
    for (tid, th) in &built {
        load_thread(pid, *tid, th)?;
    }
    p.threads = built;
    Ok(())
}

fn place_area(main: &mut Remote, t: &TaskPlan, len: u64) -> Result<u64, Error> {
    // Gaps of the image's layout, highest first.
    let mut used: Vec<(u64, u64)> = t
        .vmas
        .iter()
        .map(|v| (v.vma.start, v.vma.end))
        .filter(|r| r.1 <= TASK_SIZE)
        .collect();
    used.sort_unstable();
    let mut gaps = Vec::new();
    let mut prev = 0x1000_0000u64;
    for &(s, e) in &used {
        if s > prev {
            gaps.push((prev, s));
        }
        prev = prev.max(e);
    }
    if TASK_SIZE > prev {
        gaps.push((prev, TASK_SIZE));
    }
    let mut tries = 0;
    for &(gs, ge) in gaps.iter().rev() {
        if ge - gs < len + 2 * PAGE {
            continue;
        }
        // Try a few spots inside the gap.
        let span = ge - gs - len - PAGE;
        for k in [1u64, 2, 3, 5, 7] {
            let a = (gs + PAGE + span * k / 8) & !(PAGE - 1);
            tries += 1;
            let r = main.raw(
                libc::SYS_mmap,
                &[
                    a,
                    len,
                    (libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC) as u64,
                    (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE) as u64,
                    u64::MAX,
                    0,
                ],
            )?;
            if r as u64 == a {
                return Ok(a);
            }
            if r > 0 {
                main.raw(libc::SYS_munmap, &[r as u64, len])?;
            }
            if tries > 64 {
                break;
            }
        }
    }
    Err(Error::System(
        "no room for the injection area in both the image's and the new process's layout".into(),
    ))
}

/// Map one VMA; returns the protection to set after the pages are written, if it
/// differs from the one mapped.
fn map_vma(main: &mut Remote, v: &VmaPlan, st: &Staged) -> Result<Option<(u64, u64, u32)>, Error> {
    let m = &v.vma;
    let (fd, off, file) = match m.kind {
        VmaKind::Vdso | VmaKind::Vvar => return Ok(None),
        VmaKind::Other => {
            if m.start >= TASK_SIZE {
                return Ok(None); // vsyscall: provided by the kernel
            }
            return Err(Error::Image(format!(
                "VMA {:#x}-{:#x} of an unknown special kind cannot be restored",
                m.start, m.end
            )));
        }
        VmaKind::File => {
            let path = m.file.clone().unwrap_or_default();
            let writable = m.flags & VM_SHARED != 0 && m.flags & VM_MAYWRITE != 0;
            let fd = st.maps[&(path, writable)];
            (fd as u64, m.pgoff.saturating_mul(PAGE), true)
        }
        _ => (u64::MAX, 0, false),
    };
    let shared = m.flags & (VM_SHARED | VM_MAYSHARE) != 0 || m.kind == VmaKind::SharedAnon;
    let writes = !v.pages.is_empty() || (file && !shared && !v.zeros.is_empty());
    let mut prot = m.prot & 7;
    if writes {
        prot |= libc::PROT_WRITE as u32;
    }
    let mut flags = libc::MAP_FIXED
        | if shared {
            libc::MAP_SHARED
        } else {
            libc::MAP_PRIVATE
        };
    if !file {
        flags |= libc::MAP_ANONYMOUS;
    }
    if m.flags & VM_GROWSDOWN != 0 {
        flags |= libc::MAP_GROWSDOWN;
    }
    let len = m.end - m.start;
    let r = main.call(
        &format!("mmap {:#x}-{:#x}", m.start, m.end),
        libc::SYS_mmap,
        &[m.start, len, prot as u64, flags as u64, fd, off],
    )?;
    if r != m.start {
        return Err(Error::System(format!(
            "mmap {:#x}-{:#x} landed at {r:#x}",
            m.start, m.end
        )));
    }
    Ok((prot != m.prot & 7).then_some((m.start, len, m.prot & 7)))
}

static ZEROS: [u8; 65536] = [0; 65536];

fn write_pages(pid: i32, t: &TaskPlan, image: &[u8]) -> Result<(), Error> {
    let mut pairs: Vec<(u64, &[u8])> = Vec::new();
    for v in &t.vmas {
        if matches!(v.vma.kind, VmaKind::Vdso | VmaKind::Vvar | VmaKind::Other) {
            continue;
        }
        for p in &v.pages {
            let data: &[u8] = match &p.data {
                PageData::Mapped { off, len } => image
                    .get(*off..*off + *len)
                    .ok_or_else(|| Error::Image("page data outside the image".into()))?,
                PageData::Owned(d) => d,
            };
            let mut cur = 0usize;
            for &(s, c) in &p.runs {
                let l = (c * PAGE) as usize;
                pairs.push((s, &data[cur..cur + l]));
                cur += l;
            }
        }
        let file_private =
            v.vma.kind == VmaKind::File && v.vma.flags & (VM_SHARED | VM_MAYSHARE) == 0;
        if file_private {
            for &(s, c) in &v.zeros {
                let mut a = s;
                let end = s + c * PAGE;
                while a < end {
                    let l = (end - a).min(ZEROS.len() as u64);
                    pairs.push((a, &ZEROS[..l as usize]));
                    a += l;
                }
            }
        }
    }
    write_parallel(pid, &pairs).map_err(|e| sys_err("process_vm_writev of the pages", e))
}

/// Each writer thread takes at least this many bytes (below twice this, one stream).
const PARALLEL_MIN: usize = 16 << 20;

/// `process_vm_writev` of `pairs` from up to one thread per CPU (at most 4), each taking a
/// contiguous share of about the same number of bytes. The target's page faults (zeroing a
/// fresh page, then the copy) are most of a restore's time, and they scale with the threads:
/// the address ranges are disjoint and faults take the target's mm lock for reading only.
fn write_parallel(pid: i32, pairs: &[(u64, &[u8])]) -> std::io::Result<()> {
    let total: usize = pairs.iter().map(|p| p.1.len()).sum();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let n = cpus.min(4).min(total / PARALLEL_MIN).max(1);
    if n == 1 {
        return sys::write_pairs(pid, pairs);
    }
    // Cut `pairs` where the running byte count passes k * total / n.
    let mut parts = Vec::with_capacity(n);
    let (mut start, mut acc) = (0usize, 0usize);
    for (i, p) in pairs.iter().enumerate() {
        acc += p.1.len();
        if acc * n >= total * (parts.len() + 1) && parts.len() + 1 < n {
            parts.push(&pairs[start..=i]);
            start = i + 1;
        }
    }
    parts.push(&pairs[start..]);
    std::thread::scope(|s| {
        let handles: Vec<_> = parts
            .iter()
            .map(|part| s.spawn(move || sys::write_pairs(pid, part)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("writer panicked")))
            })
            .collect::<std::io::Result<Vec<()>>>()
            .map(|_| ())
    })
}

const THREAD_FLAGS: u64 = (libc::CLONE_VM
    | libc::CLONE_FS
    | libc::CLONE_FILES
    | libc::CLONE_SIGHAND
    | libc::CLONE_THREAD
    | libc::CLONE_SYSVSEM) as u64;

/// An injected `clone3(flags, exit_signal, set_tid = [want])` in `main`'s process (a
/// thread with [`THREAD_FLAGS`], a process with 0 + `SIGCHLD`); `data` is the process's
/// argument page. The new task is auto-attached (`PTRACE_O_TRACECLONE`/`TRACEFORK`) and
/// waited for in its first stop; returns its id.
fn inject_clone(
    main: &mut Remote,
    data: u64,
    flags: u64,
    exit_signal: u64,
    want: i32,
    what: &str,
    opts: &Options,
) -> Result<i32, Error> {
    let pid = main.tid;
    let args_at = data + 2048;
    let tid_at = data + 2048 + 128;
    let attempt = |set: bool, main: &mut Remote| -> Result<i64, Error> {
        let mut b = Vec::with_capacity(88);
        let vals = [
            flags,
            0,
            0,
            0,
            exit_signal,
            0,
            0,
            0,
            if set { tid_at } else { 0 },
            set as u64,
            0,
        ];
        for v in vals {
            b.extend_from_slice(&v.to_le_bytes());
        }
        let tb = (want as u32).to_le_bytes();
        sys::write_pairs(pid, &[(args_at, &b), (tid_at, &tb)])
            .map_err(|e| sys_err("writing clone_args", e))?;
        main.last_clone = None;
        main.raw(libc::SYS_clone3, &[args_at, 88])
    };
    let idw = if what == "thread" { "thread id" } else { "pid" };
    let set = opts.pid_mode != PidMode::Any;
    let mut r = attempt(set, main)?;
    if r < 0 && set {
        // A child process under another pid would leave its restored parent holding a
        // stale one (a `sh` waiting for it spins): only `--pid-any` accepts that.
        if opts.pid_mode == PidMode::Same || what == "process" {
            return Err(Error::Pid(format!(
                "{idw} {want} is not available: {}{}",
                std::io::Error::from_raw_os_error((-r) as i32),
                if what == "process" {
                    "; its restored parent would hold a stale pid (--pid-any accepts new pids for every process)"
                } else {
                    ""
                }
            )));
        }
        eprintln!(
            "ckpt-restore: {idw} {want} is not available ({}); the kernel chooses another",
            std::io::Error::from_raw_os_error((-r) as i32)
        );
        r = attempt(false, main)?;
    }
    if r <= 0 {
        return Err(Error::System(format!(
            "clone3 of a {what} in the restored process {pid}: {}",
            std::io::Error::from_raw_os_error((-r) as i32)
        )));
    }
    let tid = r as i32;
    // The new task is auto-attached and stops with SIGSTOP before running user code.
    match ptrace::wait(tid).map_err(|e| sys_err(format!("waitpid new {what}"), e))? {
        WaitStatus::Stopped { .. } => {}
        s => return Err(Error::System(format!("new {what} {tid}: unexpected {s:?}"))),
    }
    Ok(tid)
}

/// Registers (with syscall restart), FPU, TLS and the blocked mask of one thread.
fn load_thread(pid: i32, tid: i32, th: &Thread) -> Result<(), Error> {
    let a = th.regs;
    // SAFETY-free: user_regs_struct is plain integers.
    let mut r = ptrace::get_regs(tid).map_err(|e| sys_err("PTRACE_GETREGS", e))?;
    (
        r.r15, r.r14, r.r13, r.r12, r.rbp, r.rbx, r.r11, r.r10, r.r9, r.r8, r.rax, r.rcx, r.rdx,
        r.rsi, r.rdi, r.orig_rax, r.rip, r.cs, r.eflags, r.rsp, r.ss, r.fs_base, r.gs_base,
    ) = (
        a.r15, a.r14, a.r13, a.r12, a.rbp, a.rbx, a.r11, a.r10, a.r9, a.r8, a.rax, a.rcx, a.rdx,
        a.rsi, a.rdi, a.orig_rax, a.rip, a.cs, a.eflags, a.rsp, a.ss, a.fs_base, a.gs_base,
    );
    (r.ds, r.es, r.fs, r.gs) = (a.ds, a.es, a.fs, a.gs);
    // A thread captured inside an interrupted system call re-issues it: rewind over the
    // 2-byte `syscall` and load the call number again. -ERESTART_RESTARTBLOCK would go
    // through restart_syscall(), whose kernel state is not in the image: we re-issue the
    // original call too (a relative sleep starts over). orig_rax = -1 so the kernel's
    // own restart logic does not apply on top.
    let rax = a.rax as i64;
    if (a.orig_rax as i64) >= 0
        && matches!(
            rax,
            ERESTARTSYS | ERESTARTNOINTR | ERESTARTNOHAND | ERESTART_RESTARTBLOCK
        )
    {
        let mut insn = [0u8; 2];
        ckpt_sys::mem::read_remote(pid, a.rip.wrapping_sub(2), &mut insn)
            .map_err(|e| sys_err("reading the syscall instruction", e))?;
        if insn == [0x0f, 0x05] {
            r.rip = a.rip - 2;
            r.rax = a.orig_rax;
        }
    }
    r.orig_rax = u64::MAX;
    ptrace::set_regs(tid, &r).map_err(|e| sys_err(format!("PTRACE_SETREGS tid {tid}"), e))?;
    if let Some(f) = &th.fpu {
        match f.kind {
            FpuKind::Xsave => {
                ptrace::set_xstate(tid, &f.data).map_err(|e| sys_err(format!("tid {tid}"), e))?
            }
            FpuKind::Fxsave => sys::ptrace_set_fpregs(tid, &f.data)
                .map_err(|e| sys_err(format!("PTRACE_SETFPREGS tid {tid}"), e))?,
            FpuKind::Legacy => {
                return Err(Error::Incompatible(vec![format!(
                    "thread {}: legacy FPU layout",
                    th.tid
                )]))
            }
        }
    }
    if !th.tls.is_empty() {
        ptrace::set_tls(tid, &th.tls).map_err(|e| sys_err(format!("tid {tid}"), e))?;
    }
    sys::ptrace_set_sigmask(tid, th.sigmask)
        .map_err(|e| sys_err(format!("PTRACE_SETSIGMASK tid {tid}"), e))?;
    Ok(())
}
