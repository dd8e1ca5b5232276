//! Files: everything the tasks need is opened once in the parent ([`stage`]), inherited
//! through every fork, and placed in each child's fd table ([`fd_setup`]).

use super::*;

/// What the parent opened for the child before forking it.
pub(super) struct Staged {
    /// Every staging descriptor (kept open until the child is built).
    pub(super) owned: Vec<OwnedFd>,
    /// File object id -> staging fd.
    pub(super) files: BTreeMap<u32, RawFd>,
    /// (path, writable) -> staging fd, for file mappings.
    pub(super) maps: BTreeMap<(Vec<u8>, bool), RawFd>,
    /// (file object with the contents, writable) -> staging fd, for mappings of a
    /// re-created inode (a deleted file, a memfd).
    pub(super) inode_maps: BTreeMap<(u32, bool), RawFd>,
    /// Per task (image order): the executable and the cwd.
    pub(super) exe: Vec<Option<RawFd>>,
    pub(super) cwd: Vec<Option<RawFd>>,
    /// The lowest staging descriptor: above every captured fd of every task.
    pub(super) base: RawFd,
    /// Files opened in the restored processes once they all exist (pidfds): their fd
    /// numbers are left closed by [`fd_setup`].
    pub(super) late: std::collections::BTreeSet<u32>,
    /// The terminals with their captured session and foreground group.
    pub(super) ttys: Vec<super::ttys::StagedTty>,
}

pub(super) fn show(p: &[u8]) -> String {
    String::from_utf8_lossy(p).into_owned()
}

/// Open everything every task needs, once per object: a file or pipe shared by several
/// tasks (or fds) gets one staging descriptor, inherited through every fork.
pub(super) fn stage(plan: &Plan, root: RawFd) -> Result<Staged, Error> {
    sys::raise_nofile();
    let all_fds = || plan.tasks.iter().flat_map(|t| t.fds.iter());
    let max_fd = all_fds().map(|f| f.fd).max().unwrap_or(2).max(2);
    let base = max_fd + 1;
    let mut st = Staged {
        owned: Vec::new(),
        files: BTreeMap::new(),
        maps: BTreeMap::new(),
        inode_maps: BTreeMap::new(),
        exe: Vec::new(),
        cwd: Vec::new(),
        base,
        late: super::pidfd::late_files(plan)?,
        ttys: Vec::new(),
    };
    super::fown::check(plan)?;
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
    // Every file to stage: those of the fd tables, then the files in flight in the
    // queues of their unix sockets (held by no fd).
    let mut needed: Vec<u32> = Vec::new();
    for fd in all_fds() {
        if !needed.contains(&fd.file) {
            needed.push(fd.file);
        }
    }
    let in_flight: Vec<u32> = needed
        .iter()
        .filter_map(|id| plan.files[id].records.sock.queue.as_ref())
        .flat_map(|q| q.messages.iter().flat_map(|m| m.files.iter().copied()))
        .collect();
    for id in in_flight {
        if !plan.files.contains_key(&id) {
            return Err(Error::Image(format!(
                "file {id} in flight in a unix socket's queue is not defined in the image"
            )));
        }
        if !needed.contains(&id) {
            needed.push(id);
        }
    }
    let used_pipes: Vec<u32> = needed
        .iter()
        .filter_map(|id| {
            let f = &plan.files[id];
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
    // Inodes whose contents are in the image, re-created once each (inodes.rs).
    let mut inodes: BTreeMap<u32, RawFd> = BTreeMap::new();
    for f in plan.files.values().filter(|f| f.records.contents.is_some()) {
        let h = inodes::create(root, f)?;
        inodes.insert(f.id, keep(h, &mut st)?);
    }
    // ptys whose master is in the image: new pairs.
    let mut ttys = Vec::new();
    let pairs = super::ttys::make_pairs(plan, &needed, root, &mut ttys, |o| keep(o, &mut st))?;
    st.files.extend(pairs);
    st.ttys = ttys;
    // Files of the fd tables and in flight; sockets after them (a queue refers to them).
    let mut sockets = Vec::new();
    for &id in &needed {
        if st.files.contains_key(&id) || st.late.contains(&id) {
            continue;
        }
        let f = &plan.files[&id];
        if f.kind == FileKind::Socket {
            sockets.push(id);
            continue;
        }
        // A process's own /proc entry: opened once the process exists (procfiles.rs).
        if matches!(f.kind, FileKind::Regular | FileKind::Directory)
            && super::procfiles::entry(&f.path, &plan.tasks).is_some()
        {
            continue;
        }
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
            FileKind::Regular if inodes::source_of(f).is_some() => {
                let src = inodes::source_of(f).unwrap_or(0);
                let how = if keepfl & libc::O_PATH != 0 {
                    libc::O_PATH
                } else {
                    keepfl | libc::O_NOCTTY
                };
                let o = inodes::reopen(&inodes, src, how)?;
                if f.pos != 0 {
                    sys::seek(o.as_raw_fd(), f.pos).map_err(|e| {
                        Error::Files(format!("lseek {} to {}: {e}", show(&f.path), f.pos))
                    })?;
                }
                keep(o, &mut st)?
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
                // An O_PATH descriptor takes no other open flags (openat2 refuses them).
                let how = if keepfl & libc::O_PATH != 0 {
                    keepfl & (libc::O_PATH | libc::O_DIRECTORY)
                } else {
                    keepfl | libc::O_NOCTTY | extra
                };
                let o = sys::open_in_root(root, &f.path, how, 0)
                    .map_err(|e| Error::Files(format!("opening {}: {e}", show(&f.path))))?;
                // A terminal gets its line settings and window size back (an editor's raw
                // mode, a resized window), before anything of the tree runs.
                if let Some(t) = &f.records.tty {
                    // Its master is outside the image: the same terminal, by its path.
                    super::ttys::apply(o.as_raw_fd(), t, &f.path)?;
                    let slave = keep(o.try_clone().map_err(|e| sys_err("dup", e))?, &mut st)?;
                    st.ttys.push(super::ttys::StagedTty {
                        index: t.index,
                        slave,
                        sid: t.sid,
                        pgrp: t.pgrp,
                    });
                }
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
            FileKind::Other if crate::anon::carried(&f.records) => {
                let nonblock = f.flags as i32 & libc::O_NONBLOCK != 0;
                let o = crate::anon::create(&f.records, nonblock, |p| {
                    sys::open_in_root(root, p, libc::O_PATH, 0)
                        .map_err(|e| std::io::Error::other(format!("{}: {e}", show(p))))
                })
                .map_err(|e| Error::Files(format!("file {id} ({}): {e}", show(&f.path))))?;
                keep(o, &mut st)?
            }
            k => {
                return Err(Error::Image(format!(
                    "file {id} ({}) is a {}: not restorable",
                    show(&f.path),
                    k.name()
                )))
            }
        };
        inodes::take_file_locks(f, n)?;
        st.files.insert(id, n);
    }
    if !sockets.is_empty() {
        let built =
            crate::sockets::build_all(&plan.files, &sockets, &st.files).map_err(Error::Files)?;
        for (id, fd) in built {
            let n = keep(fd, &mut st)?;
            // The file status flags of the open socket (O_NONBLOCK: an event loop's
            // sockets, its listener's accept loop) as captured.
            let fl = plan.files[&id].flags as i32 & libc::O_NONBLOCK;
            sys::set_fl(n, fl).map_err(|e| sys_err("F_SETFL on a socket", e))?;
            st.files.insert(id, n);
        }
    }
    inodes::check_posix_locks(plan, &st)?;
    // File mappings.
    for v in plan.tasks.iter().flat_map(|t| t.vmas.iter()) {
        if v.vma.kind != VmaKind::File {
            continue;
        }
        let path = v.vma.file.clone().unwrap_or_default();
        let writable = v.vma.flags & VM_SHARED != 0 && v.vma.flags & VM_MAYWRITE != 0;
        if let Some(m) = v.vma.records.contents {
            if !st.inode_maps.contains_key(&(m.file, writable)) {
                let fl = if writable {
                    libc::O_RDWR
                } else {
                    libc::O_RDONLY
                };
                let o = inodes::reopen(&inodes, m.file, fl)?;
                let n = keep(o, &mut st)?;
                st.inode_maps.insert((m.file, writable), n);
            }
            continue;
        }
        refuse_deleted(&path, "mapped file")?;
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
        if let Some(want) = v.vma.records.identity.map(|i| i.ino) {
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
        if let Some(x) = t.task.records.exe {
            let o = inodes::reopen(&inodes, x.file, libc::O_RDONLY)?;
            exe_fd = Some(keep(o, &mut st)?);
        } else if let Some(exe) = t.mm.as_ref().and_then(|m| m.exe.clone()) {
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

/// The child's fd table (from the staging copies), cwd and umask, as raw-syscall steps.
pub(super) fn fd_setup(t: &TaskPlan, i: usize, st: &Staged) -> sys::ChildSetup {
    let mut setup = sys::ChildSetup {
        parent: std::process::id() as i32,
        cwd: st.cwd[i],
        umask: t.fs.as_ref().map(|f| f.umask),
        ..Default::default()
    };
    let mut targets: Vec<i32> = Vec::new();
    // Files not staged (a process's /proc entry) are opened later, in the process, under
    // their numbers: closed like every other number until then.
    for fd in &t.fds {
        if let Some(&n) = st.files.get(&fd.file) {
            setup.dups.push((n, fd.fd, fd.cloexec));
            targets.push(fd.fd);
        }
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
