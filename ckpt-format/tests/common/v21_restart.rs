//! The reading order of a Linux-CR v21 restart, as our own walker.
//!
//! A v21 image is read twice on restart: user-cr's `restart` reads the prefix
//! itself (HEADER with three uts BUFFERs, HEADER_ARCH, CONTAINER with the LSM
//! name BUFFER and LSM_INFO, TREE with the pids BUFFER and, when any pid
//! depth is non-zero, the vpids BUFFER) and feeds the image on to the
//! kernel, whose `sys_restart` reads the same prefix again and then every
//! task in TREE order and the TAIL. The kernel reads a fixed record by exact
//! length and type, and takes OBJREF-announced shared objects wherever it
//! meets them before the record that names them. `walk` does the same and
//! fails on the first record that a v21 restart would not expect there,
//! naming its offset. docs/V21-STREAM.md has the order as tables.
//!
//! Shared by ckpt-format's tests and ckpt-restore's live test (`#[path]`).

#![allow(dead_code)]

use ckpt_format::layout::v21::{self as L, TABLE as T};
use std::collections::{HashMap, HashSet};

/// What a walk saw.
#[derive(Debug, Default)]
pub struct Walk {
    /// Tasks read (TREE `nr_tasks`).
    pub tasks: usize,
    /// Records read, in order: (offset, type name).
    pub records: Vec<(usize, &'static str)>,
    /// ERROR records (a failed checkpoint: a restart stops there).
    pub errors: usize,
    /// Zombie tasks (TASK and its comm only).
    pub zombies: usize,
}

struct Rec<'a> {
    off: usize,
    ty: u32,
    name: &'static str,
    /// The whole record, header included.
    b: &'a [u8],
}

struct Walker<'a> {
    img: &'a [u8],
    pos: usize,
    objs: HashMap<i32, &'static str>,
    pipes: HashSet<i32>,
    /// Epoll files defined since the current file table began (their
    /// EPOLL_ITEMS follow the table's last FILE_DESC).
    epolls: Vec<i32>,
    /// The objref of the object being read.
    cur_ref: i32,
    consts: HashMap<&'static str, u64>,
    xstate_size: usize,
    w: Walk,
}

type R<T> = Result<T, String>;

fn u(b: &[u8], st: &str, field: &str) -> u64 {
    T.st(st).get(b, field)
}
fn i(b: &[u8], st: &str, field: &str) -> i64 {
    T.st(st).get_i(b, field)
}

impl<'a> Walker<'a> {
    fn peek(&self) -> R<Option<(u32, usize)>> {
        if self.pos == self.img.len() {
            return Ok(None);
        }
        let h = self
            .img
            .get(self.pos..self.pos + 8)
            .ok_or(format!("@{:#x}: truncated record header", self.pos))?;
        let ty = u32::from_le_bytes(h[..4].try_into().unwrap());
        let len = u32::from_le_bytes(h[4..].try_into().unwrap()) as usize;
        if len < 8 || self.pos + len > self.img.len() {
            return Err(format!("@{:#x}: bad length {len}", self.pos));
        }
        Ok(Some((ty, len)))
    }

    fn next_any(&mut self) -> R<Rec<'a>> {
        let (ty, len) = self
            .peek()?
            .ok_or(format!("@{:#x}: image ends early", self.pos))?;
        let r = Rec {
            off: self.pos,
            ty,
            name: T.name(ty),
            b: &self.img[self.pos..self.pos + len],
        };
        self.pos += len;
        self.w.records.push((r.off, r.name));
        Ok(r)
    }

    /// The next record must be `name`; `len` is its exact length, or `None`
    /// for "at least its struct" (records with a trailing array).
    fn expect(&mut self, name: &str, len: Option<usize>) -> R<Rec<'a>> {
        self.objs_and_errors()?;
        self.expect_here(name, len)
    }

    /// Like `expect`, with no shared object allowed before it.
    fn expect_here(&mut self, name: &str, len: Option<usize>) -> R<Rec<'a>> {
        let r = self.next_any()?;
        if r.ty != T.code(name) {
            return Err(format!(
                "@{:#x}: {} where a v21 restart reads {name}",
                r.off, r.name
            ));
        }
        let min = T.st(name).size;
        match len {
            Some(n) if r.b.len() != n => Err(format!(
                "@{:#x}: {name} of {} bytes, a v21 restart reads exactly {n}",
                r.off,
                r.b.len()
            )),
            None if r.b.len() < min => Err(format!(
                "@{:#x}: {name} of {} bytes, shorter than its struct ({min})",
                r.off,
                r.b.len()
            )),
            _ => Ok(r),
        }
    }

    fn fixed(&mut self, name: &str) -> R<Rec<'a>> {
        let n = T.st(name).size;
        self.expect(name, Some(n))
    }

    /// Shared objects (OBJREF + the object's records) and ERROR records,
    /// which a v21 restart takes wherever it reads a record.
    fn objs_and_errors(&mut self) -> R<()> {
        while let Some((ty, _)) = self.peek()? {
            if ty == T.code("OBJREF") {
                let r = self.expect_here("OBJREF", Some(16))?;
                let kind = T.obj_name(u(r.b, "OBJREF", "objtype") as u32);
                let objref = i(r.b, "OBJREF", "objref") as i32;
                if objref <= 0 || self.objs.contains_key(&objref) {
                    return Err(format!("@{:#x}: objref {objref} reused or invalid", r.off));
                }
                self.cur_ref = objref;
                self.object(kind, r.off)?;
                self.objs.insert(objref, kind);
            } else if ty == T.code("ERROR") {
                self.expect_here("ERROR", None)?;
                self.expect_here("STRING", None)?;
                self.w.errors += 1;
            } else {
                return Ok(());
            }
        }
        Ok(())
    }

    /// `objref` names an object of type `kind` read before (0 = none, when `zero_ok`).
    fn names(&self, r: &Rec<'_>, field: i64, kind: &str, zero_ok: bool) -> R<()> {
        let objref = field as i32;
        if objref == 0 && zero_ok {
            return Ok(());
        }
        match self.objs.get(&objref) {
            Some(k) if *k == kind => Ok(()),
            other => Err(format!(
                "@{:#x}: {} names objref {objref} as {kind}, defined as {other:?}",
                r.off, r.name
            )),
        }
    }

    fn object(&mut self, kind: &'static str, at: usize) -> R<()> {
        match kind {
            "FILE_TABLE" => {
                let r = self.fixed("FILE_TABLE")?;
                self.epolls.clear();
                for _ in 0..i(r.b, "FILE_TABLE", "fdt_nfds").max(0) {
                    let d = self.fixed("FILE_DESC")?;
                    self.names(&d, i(d.b, "FILE_DESC", "fd_objref"), "FILE", false)?;
                }
                // The files deferqueue: one EPOLL_ITEMS per epoll file of the
                // table, in order, each with its items' BUFFER unless empty.
                for ep in std::mem::take(&mut self.epolls) {
                    let h = self.fixed("EPOLL_ITEMS")?;
                    if i(h.b, "EPOLL_ITEMS", "epfile_objref") as i32 != ep {
                        return Err(format!("@{:#x}: EPOLL_ITEMS of another epoll file", h.off));
                    }
                    let n = u(h.b, "EPOLL_ITEMS", "num_items") as usize;
                    if n > 0 {
                        let e = T.st("EPOLL_ITEM");
                        let b = self.expect("BUFFER", Some(8 + n * e.size))?;
                        for x in b.b[8..].chunks_exact(e.size) {
                            self.names(&h, e.get_i(x, "file_objref"), "FILE", false)?;
                        }
                    }
                }
            }
            "FILE" => self.file()?,
            "MM" => self.mm()?,
            "FS" => {
                self.fixed("FS")?;
                self.expect("FILE_NAME", None)?;
                self.expect("FILE_NAME", None)?;
            }
            "SIGHAND" => {
                let n = self.consts["signal_nsig"] as usize;
                self.expect("SIGHAND", Some(8 + 32 * n))?;
            }
            "SIGNAL" => {
                // The kernel's objhash has no restore method for a signal
                // object: it is read right after the TASK_OBJS naming it.
                return Err(format!("@{at:#x}: an OBJREF announcing a SIGNAL object"));
            }
            "CRED" => {
                let r = self.fixed("CRED")?;
                self.names(&r, i(r.b, "CRED", "user_ref"), "USER", true)?;
                self.names(&r, i(r.b, "CRED", "groupinfo_ref"), "GROUPINFO", true)?;
            }
            "USER" => {
                let r = self.fixed("USER")?;
                self.names(&r, i(r.b, "USER", "userns_ref"), "USER_NS", true)?;
            }
            "USER_NS" => {
                self.fixed("USER_NS")?;
            }
            "GROUPINFO" => {
                let r = self.expect("GROUPINFO", None)?;
                let n = u(r.b, "GROUPINFO", "ngroups") as usize;
                if r.b.len() != 16 + 4 * n {
                    return Err(format!("@{:#x}: GROUPINFO length vs ngroups", r.off));
                }
            }
            "NS" => {
                let r = self.fixed("NS")?;
                self.names(&r, i(r.b, "NS", "uts_objref"), "UTS_NS", false)?;
                self.names(&r, i(r.b, "NS", "ipc_objref"), "IPC_NS", false)?;
                self.names(&r, i(r.b, "NS", "net_objref"), "NET_NS", true)?;
            }
            "UTS_NS" => {
                self.fixed("UTS_NS")?;
            }
            "IPC_NS" => {
                self.fixed("IPC_NS")?;
                for sub in ["IPC_SHM", "IPC_MSG", "IPC_SEM"] {
                    let r = self.fixed("IPC")?;
                    if u(r.b, "IPC", "ipc_type") != T.code(sub) as u64 {
                        return Err(format!("@{:#x}: IPC section is not {sub}", r.off));
                    }
                    if u(r.b, "IPC", "ipc_count") != 0 {
                        return Err(format!("@{:#x}: {sub} objects: not walked", r.off));
                    }
                }
            }
            other => {
                return Err(format!(
                    "@{at:#x}: shared object {other} that ckpt never writes"
                ))
            }
        }
        Ok(())
    }

    fn file(&mut self) -> R<()> {
        let r = self.expect("FILE", None)?;
        let f_type = u(r.b, "FILE", "f_type") as u32;
        match f_type {
            L::FILE_GENERIC => {
                if r.b.len() != T.st("FILE").size {
                    return Err(format!("@{:#x}: generic FILE length", r.off));
                }
                self.expect("FILE_NAME", None)?;
            }
            L::FILE_PIPE | L::FILE_FIFO => {
                if r.b.len() != T.st("FILE_PIPE").size {
                    return Err(format!("@{:#x}: pipe FILE length", r.off));
                }
                if f_type == L::FILE_FIFO {
                    self.expect("FILE_NAME", None)?;
                }
                let inode = i(r.b, "FILE_PIPE", "pipe_objref") as i32;
                if self.pipes.insert(inode) {
                    self.expect("PIPE_BUF", None)?;
                }
            }
            L::FILE_EPOLL => {
                // Its items come after the file table (the files deferqueue).
                if r.b.len() != T.st("FILE").size {
                    return Err(format!("@{:#x}: epoll FILE length", r.off));
                }
                self.epolls.push(self.cur_ref);
            }
            L::FILE_EVENTFD => {
                // [v20 83/96]: the restart checks the exact length; nothing follows.
                if r.b.len() != T.st("FILE_EVENTFD").size {
                    return Err(format!("@{:#x}: eventfd FILE length", r.off));
                }
            }
            other => {
                return Err(format!(
                    "@{:#x}: file type {other} that ckpt never writes",
                    r.off
                ))
            }
        }
        Ok(())
    }

    fn mm(&mut self) -> R<()> {
        let r = self.fixed("MM")?;
        self.names(&r, i(r.b, "MM", "exe_objref"), "FILE", true)?;
        let auxv = self.consts["at_vector_size"] as usize;
        self.expect("BUFFER", Some(8 + 8 * auxv))?;
        for _ in 0..u(r.b, "MM", "map_count") {
            let v = self.fixed("VMA")?;
            self.names(&v, i(v.b, "VMA", "vma_objref"), "FILE", true)?;
            loop {
                let pg = self.fixed("PGARR")?;
                let n = u(pg.b, "PGARR", "nr_pages") as usize;
                if n == 0 {
                    break;
                }
                self.expect("BUFFER", Some(8 + n * (8 + 4096)))?;
            }
        }
        let c = self.fixed("MM_CONTEXT")?;
        let ldt = u(c.b, "MM_CONTEXT", "nldt") * u(c.b, "MM_CONTEXT", "ldt_entry_size");
        self.expect("MM_CONTEXT_LDT", Some(8 + ldt as usize))?;
        Ok(())
    }

    fn sigpending(&mut self) -> R<()> {
        let r = self.expect("SIGPENDING", None)?;
        Self::pending_len(&r)
    }

    /// A SIGPENDING with no shared object before it.
    fn sigpending_here(&mut self) -> R<()> {
        let r = self.expect_here("SIGPENDING", None)?;
        Self::pending_len(&r)
    }

    fn pending_len(r: &Rec<'_>) -> R<()> {
        let n = u(r.b, "SIGPENDING", "nr_pending") as usize;
        if r.b.len() != 24 + 48 * n {
            return Err(format!("@{:#x}: SIGPENDING length vs nr_pending", r.off));
        }
        Ok(())
    }

    fn task(&mut self) -> R<()> {
        let t = self.fixed("TASK")?;
        let comm = self.consts["task_comm_len"] as usize;
        self.expect("STRING", Some(8 + comm))?;
        if u(t.b, "TASK", "exit_state") != 0 {
            self.w.zombies += 1;
            return Ok(());
        }
        self.expect("THREAD", Some(16 + 24))?;
        let rb = self.fixed("RESTART_BLOCK")?;
        let kind = u(rb.b, "RESTART_BLOCK", "function_type");
        if !(L::RESTART_BLOCK_NONE..=L::RESTART_BLOCK_FUTEX).contains(&kind) {
            return Err(format!("@{:#x}: restart block type {kind}", rb.off));
        }
        let cpu = self.fixed("CPU")?;
        if u(cpu.b, "CPU", "used_math") != 0 {
            self.expect("CPU_FPU", Some(8 + self.xstate_size))?;
        }
        let c = self.fixed("TASK_CREDS")?;
        self.names(&c, i(c.b, "TASK_CREDS", "cred_ref"), "CRED", true)?;
        self.names(&c, i(c.b, "TASK_CREDS", "ecred_ref"), "CRED", true)?;
        let n = self.fixed("TASK_NS")?;
        self.names(&n, i(n.b, "TASK_NS", "ns_objref"), "NS", false)?;
        let o = self.fixed("TASK_OBJS")?;
        for (field, kind) in [
            ("files_objref", "FILE_TABLE"),
            ("mm_objref", "MM"),
            ("fs_objref", "FS"),
            ("sighand_objref", "SIGHAND"),
            ("signal_objref", "SIGNAL"),
        ] {
            let r = i(o.b, "TASK_OBJS", field) as i32;
            if kind == "SIGNAL" && r > 0 && !self.objs.contains_key(&r) {
                // restore_obj_signal: the first thread of a group reads the
                // signal object (SIGNAL, the shared SIGPENDING) here.
                let n = T.st("SIGNAL").size;
                self.expect_here("SIGNAL", Some(n))?;
                self.sigpending_here()?;
                self.objs.insert(r, "SIGNAL");
            }
            self.names(&o, r as i64, kind, true)?;
        }
        // restore_task_signal: the private pending set, then the mask.
        self.sigpending()?;
        self.fixed("SIGNAL_TASK")?;
        Ok(())
    }

    fn image(&mut self) -> R<()> {
        // user-cr restart's prefix, read again by the kernel.
        let h = self.expect_here("HEADER", Some(72))?;
        if u(h.b, "HEADER", "arch_id") != L::ARCH_X86_64 as u64 {
            return Err("not an x86-64 image".into());
        }
        for (n, _) in ckpt_format::v21::CONSTANTS {
            self.consts.insert(n, u(h.b, "HEADER", n));
        }
        for f in ["uts_release_len", "uts_version_len", "uts_machine_len"] {
            let n = self.consts[f] as usize;
            self.expect_here("BUFFER", Some(8 + n))?;
        }
        let a = self.expect_here("HEADER_ARCH", Some(16))?;
        self.xstate_size = u(a.b, "HEADER_ARCH", "xstate_size") as usize;
        self.expect_here("CONTAINER", Some(8))?;
        self.expect_here("BUFFER", Some(8 + L::LSM_NAME_MAX + 1))?;
        let lsm = self.expect_here("LSM_INFO", None)?;
        if lsm.b.len() > L::LSM_INFO_MAX {
            return Err(format!("@{:#x}: LSM_INFO over 200 bytes", lsm.off));
        }
        let tree = self.expect_here("TREE", Some(16))?;
        let nr = i(tree.b, "TREE", "nr_tasks");
        if nr <= 0 {
            return Err(format!("@{:#x}: nr_tasks {nr}", tree.off));
        }
        let pids = self.expect_here("BUFFER", Some(8 + 24 * nr as usize))?;
        let depth: i64 = (0..nr as usize)
            .map(|k| i(&pids.b[8 + 24 * k..], "PIDS", "depth"))
            .sum();
        if depth > 0 {
            self.expect_here("BUFFER", Some(8 + 4 * depth as usize))?;
        }
        // sys_restart: the tasks in TREE order, then the tail.
        for _ in 0..nr {
            self.task()?;
            self.w.tasks += 1;
        }
        let t = self.expect("TAIL", Some(16))?;
        if u(t.b, "TAIL", "magic") != 0x002d_2a0c_c0de_ef00 {
            return Err(format!("@{:#x}: tail magic", t.off));
        }
        if self.pos != self.img.len() {
            return Err(format!("@{:#x}: bytes after the TAIL", self.pos));
        }
        Ok(())
    }
}

/// Walk `img` in a v21 restart's reading order to its end.
pub fn walk(img: &[u8]) -> Result<Walk, String> {
    let mut w = Walker {
        img,
        pos: 0,
        objs: HashMap::new(),
        pipes: HashSet::new(),
        epolls: Vec::new(),
        cur_ref: 0,
        consts: HashMap::new(),
        xstate_size: 0,
        w: Walk::default(),
    };
    w.image()?;
    Ok(w.w)
}
