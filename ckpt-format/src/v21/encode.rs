//! The ckpt-v21 encoder.

use super::{
    arch_defaults, code, kept_objref, CAP_KEYS, CAP_ZERO_KEYS, CHUNK_PAGES, CONSTANTS, FILE_EXTRAS,
    HDR, PAGE, SIGALTSTACK_KEYS, TASK_KEYS, TASK_OBJS_FIELDS, THREAD_ONLY_KEYS, THREAD_TASK_FIELDS,
};
use crate::convert::Plan;
use crate::crv5::{Out, ZEROS};
use crate::error::{Error, ErrorKind, Result};
use crate::layout::derive;
use crate::layout::v21::{self as L, TABLE as T};
use crate::model::*;
use crate::EventSink;
use std::collections::{HashMap, HashSet};
use std::io::Write;

/// `S_IFMT` and the file types a v21 generic file can say through `f_mode`.
pub(crate) const S_IFMT: u32 = 0o170000;
/// `S_IFREG`.
pub(crate) const S_IFREG: u32 = 0o100000;
/// `S_IFDIR`.
pub(crate) const S_IFDIR: u32 = 0o040000;
/// `S_IFCHR`.
pub(crate) const S_IFCHR: u32 = 0o020000;
/// `S_IFIFO`.
pub(crate) const S_IFIFO: u32 = 0o010000;

/// The ckpt-v21 encoder (x86-64).
///
/// Needs a [`Plan`] (the task tree, VMA and fd counts, the first FPU area)
/// before it writes; `None` is a dry run with placeholder counts.
/// [`super::encoder`] (no plan) buffers the image and plans itself. Items the
/// revision cannot hold are refused, or dropped/defaulted and listed when `lossy`.
pub struct Encoder<W: Write> {
    out: Out<W>,
    plan: Option<Plan>,
    losses: crate::convert::Losses,
    consts: HashMap<&'static str, u64>,
    has_xsave: bool,
    xstate_size: u64,
    /// False in a dry run until the first FPU area shows what the plan would say.
    arch_known: bool,
    next_ref: u32,
    tree_written: bool,
    tasks: usize,
    in_task: bool,
    zombie: bool,
    pid: i32,
    comm: String,
    thread_written: bool,
    mm: Option<Mm>,
    mm_open: bool,
    /// Between a Vma and its VmaEnd: unknown and error records there stay inside the mm.
    vma_open: bool,
    mm_ref: u32,
    mm_index: usize,
    vmas: u32,
    map_count: u32,
    vdso: u64,
    table_ref: u32,
    pipes: HashMap<u32, Vec<u8>>,
    pipes_written: HashSet<u32>,
    task_objs: Option<Vec<u8>>,
    /// The current task, until its TASK record is written (at its first thread).
    pending: Option<Task>,
    cur_task: Task,
    /// Threads after the first, written as tasks of their own at the end of the task.
    more_threads: Vec<Thread>,
    /// (sigmask, sigpending key) of the first thread, for its SIGNAL_TASK.
    leader_sig: (u64, Option<u64>),
    /// The leader's SIGNAL_TASK / SIGPENDING as Unknown records (a v21 stream
    /// decoder passes them so), written back in place of the derived ones.
    sig_override: Vec<(u32, Vec<u8>)>,
    creds_done: bool,
    cred_ref: u32,
    userns_ref: u32,
    users: HashMap<u32, u32>,
    cred_cache: HashMap<Vec<u8>, u32>,
    fs_ref: u32,
    sighand_ref: u32,
    signal_ref: u32,
    zero_pages: u64,
    /// A Pipe event whose first end has not come yet (it must come next).
    pipe_wait: Option<u32>,
    /// The current task has had an event other than Thread and Pipe.
    task_other: bool,
    /// The current task's TASK_OBJS came as a record kept from the source.
    objs_kept: bool,
    /// The last event was a SIGNAL_TASK record kept from a one-pass decode.
    after_sig_task: bool,
    /// Objrefs of OBJREF records kept from the source, with their object type.
    kept_refs: HashMap<u32, u32>,
    /// Object ids of the model's File and Pipe events so far.
    model_ids: HashSet<u32>,
    /// Tasks written with threads of their own (pid, comm).
    threaded: Vec<(i32, String)>,
    /// Parent pids of the tasks so far.
    parents: HashSet<i32>,
    finished: bool,
    checker: crate::validate::Checker,
}

impl<W: Write> Encoder<W> {
    /// An encoder writing to `w`.
    pub fn new(w: W, plan: Option<Plan>, lossy: bool) -> Self {
        Encoder {
            out: Out::new(w),
            plan,
            losses: crate::convert::Losses::new(lossy),
            consts: CONSTANTS.iter().copied().collect(),
            has_xsave: false,
            xstate_size: 512,
            arch_known: true,
            next_ref: 0,
            tree_written: false,
            tasks: 0,
            in_task: false,
            zombie: false,
            pid: 0,
            comm: String::new(),
            thread_written: false,
            mm: None,
            mm_open: false,
            vma_open: false,
            mm_ref: 0,
            mm_index: 0,
            vmas: 0,
            map_count: 0,
            vdso: 0,
            table_ref: 0,
            pipes: HashMap::new(),
            pipes_written: HashSet::new(),
            task_objs: None,
            pending: None,
            cur_task: Task::default(),
            more_threads: Vec::new(),
            leader_sig: (0, None),
            sig_override: Vec::new(),
            creds_done: false,
            cred_ref: 0,
            userns_ref: 0,
            users: HashMap::new(),
            cred_cache: HashMap::new(),
            fs_ref: 0,
            sighand_ref: 0,
            signal_ref: 0,
            zero_pages: 0,
            pipe_wait: None,
            task_other: false,
            objs_kept: false,
            after_sig_task: false,
            kept_refs: HashMap::new(),
            model_ids: HashSet::new(),
            threaded: Vec::new(),
            parents: HashSet::new(),
            finished: false,
            checker: crate::validate::Checker::new(),
        }
    }

    /// Items dropped or defaulted so far.
    pub fn items(&self) -> &[String] {
        &self.losses.items
    }

    /// Lossless rewrites worth telling.
    pub fn notes(&self) -> &[String] {
        &self.losses.notes
    }

    /// Bytes written.
    pub fn bytes_written(&self) -> u64 {
        self.out.pos
    }

    fn task_ctx(&self) -> Option<(i64, &str)> {
        self.in_task
            .then_some((self.pid as i64, self.comm.as_str()))
    }

    fn item(&mut self, what: String) -> Result<()> {
        let (pos, task) = (self.out.pos, self.task_ctx());
        let task = task.map(|(p, c)| (p, c.to_string()));
        self.losses
            .item(pos, task.as_ref().map(|(p, c)| (*p, c.as_str())), what)
    }

    fn extras(&mut self, ctx: &str, ex: &Extras, placed: &[&str]) -> Result<()> {
        let pos = self.out.pos;
        let task = self.task_ctx().map(|(p, c)| (p, c.to_string()));
        let task = task.as_ref().map(|(p, c)| (*p, c.as_str()));
        self.losses.unplaced_extras(pos, task, REV, ctx, ex, placed)
    }

    /// An objref for an object the model does not number (mm, file table,
    /// mapped files): the lowest id the model does not use (its files and
    /// pipes, and objects kept as records under their own numbers).
    fn internal(&mut self) -> u32 {
        loop {
            self.next_ref += 1;
            let used = self.plan.as_ref().is_some_and(|p| {
                p.ids.contains(&self.next_ref) || p.kept_refs.contains(&self.next_ref)
            });
            if !used {
                return self.next_ref;
            }
        }
    }

    /// A bare record: header + payload.
    fn raw(&mut self, code: u32, payload: &[u8]) -> Result<()> {
        let len = HDR + payload.len() as u64;
        if len > u32::MAX as u64 {
            return Err(Error::new(
                self.out.pos,
                ErrorKind::TooLarge {
                    found: len,
                    limit: u32::MAX as u64,
                },
            ));
        }
        let mut h = [0u8; 8];
        h[..4].copy_from_slice(&code.to_le_bytes());
        h[4..].copy_from_slice(&(len as u32).to_le_bytes());
        self.out.put(&h)?;
        self.out.put(payload)
    }

    /// A struct record: `buf` holds the whole struct, header fields included.
    fn rec(&mut self, name: &str, mut buf: Vec<u8>) -> Result<()> {
        let st = T.st(name);
        st.put(&mut buf, "h.type", code(name) as u64);
        let len = buf.len() as u64;
        st.put(&mut buf, "h.len", len);
        self.out.put(&buf)
    }

    fn objref(&mut self, obj: &str, r: u32) -> Result<()> {
        let st = T.st("OBJREF");
        let mut b = st.zeroed();
        st.put(&mut b, "objtype", T.obj_code(obj) as u64);
        st.put(&mut b, "objref", r as u64);
        self.rec("OBJREF", b)
    }

    fn header(&mut self, h: &Header) -> Result<()> {
        if h.arch != Arch::X86_64 {
            self.item(format!(
                "header: arch {} (this ckpt-v21 codec is x86-64)",
                h.arch
            ))?;
        }
        if h.page_size != PAGE as u32 {
            self.item(format!("header: page size {}", h.page_size))?;
        }
        if !h.tool.is_empty() || !h.tool_version.is_empty() {
            self.item(format!("header: tool `{} {}`", h.tool, h.tool_version))?;
        }
        let mut placed: Vec<&str> = CONSTANTS.iter().map(|(n, _)| *n).collect();
        placed.extend([
            "checkpoint_version",
            "has_fxsr",
            "has_xsave",
            "xstate_size",
            "has_xsave_raw",
        ]);
        self.extras("header", &h.extras, &placed)?;
        for (n, _) in CONSTANTS {
            if let Some(v) = h.extras.u64(n) {
                self.consts.insert(n, v);
            }
        }
        let st = T.st("HEADER");
        let mut b = st.zeroed();
        st.put(&mut b, "magic", crate::detect::CHECKPOINT_MAGIC_HEAD);
        st.put(&mut b, "arch_id", L::ARCH_X86_64 as u64);
        st.put(&mut b, "major", h.kernel.major as u64);
        st.put(&mut b, "minor", h.kernel.minor as u64);
        st.put(&mut b, "patch", h.kernel.patch as u64);
        let rev = h
            .extras
            .u64("checkpoint_version")
            .unwrap_or(L::CHECKPOINT_VERSION as u64);
        st.put(&mut b, "rev", rev);
        for (n, _) in CONSTANTS {
            st.put(&mut b, n, self.consts[n]);
        }
        st.put(&mut b, "time", h.time);
        st.put(&mut b, "uflags", h.flags);
        self.rec("HEADER", b)?;
        for (n, v) in [
            ("uts_release_len", &h.kernel.release),
            ("uts_version_len", &h.kernel.version),
            ("uts_machine_len", &h.kernel.machine),
        ] {
            let len = self.consts[n] as usize;
            if v.len() > len {
                self.item(format!(
                    "header: uts string of {} bytes cut to {len}",
                    v.len()
                ))?;
            }
            let mut s = vec![0u8; len];
            let k = v.len().min(len);
            s[..k].copy_from_slice(&v[..k]);
            self.raw(code("BUFFER"), &s)?;
        }
        let first = self.plan.as_ref().and_then(|p| p.first_fpu);
        let (dx, ds) = arch_defaults(first);
        let has_xsave = h
            .extras
            .u64("has_xsave_raw")
            .or(h.extras.u64("has_xsave"))
            .unwrap_or(dx);
        self.has_xsave = has_xsave != 0;
        self.xstate_size = h.extras.u64("xstate_size").unwrap_or(ds);
        self.arch_known = self.plan.is_some() || h.extras.u64("xstate_size").is_some();
        let st = T.st("HEADER_ARCH");
        let mut a = st.zeroed();
        st.put(&mut a, "has_fxsr", h.extras.u64("has_fxsr").unwrap_or(1));
        st.put(&mut a, "has_xsave", has_xsave);
        st.put(&mut a, "xstate_size", self.xstate_size);
        self.rec("HEADER_ARCH", a)
    }

    fn tree(&mut self) -> Result<()> {
        self.tree_written = true;
        let mut tasks = Vec::new();
        if let Some(p) = &self.plan {
            for (i, t) in p.tasks.iter().enumerate() {
                tasks.push(t.clone());
                // Threads other than the task's own are tasks of their own,
                // right after their leader (docs/CONVERT.md "Threads in
                // ckpt-v21"); a zombie's threads are dropped.
                let mut own = false;
                let threads = match p.threads.get(i) {
                    Some(v) if t.exit_state == 0 => &v[..],
                    _ => &[][..],
                };
                for &tid in threads {
                    if tid == t.pid && !own {
                        own = true;
                        continue;
                    }
                    tasks.push(Task {
                        pid: tid,
                        ..t.clone()
                    });
                }
            }
        }
        let st = T.st("TREE");
        let mut b = st.zeroed();
        st.put(&mut b, "nr_tasks", tasks.len() as u64);
        self.rec("TREE", b)?;
        let e = T.st("PIDS");
        let mut buf = Vec::with_capacity(tasks.len() * e.size);
        for t in &tasks {
            let mut x = e.zeroed();
            for (n, v) in [
                ("vpid", t.pid),
                ("vppid", t.ppid),
                ("vtgid", t.tgid),
                ("vpgid", t.pgid),
                ("vsid", t.sid),
            ] {
                e.put(&mut x, n, v as u32 as u64);
            }
            buf.extend_from_slice(&x);
        }
        self.raw(code("BUFFER"), &buf)
    }

    fn task(&mut self, t: &Task) -> Result<()> {
        self.end_task()?;
        if !self.tree_written {
            self.tree()?;
        }
        if let Some(p) = &self.plan {
            if p.tasks.get(self.tasks).map(|x| x.pid) != Some(t.pid) {
                return Err(Error::invalid(
                    self.out.pos,
                    format!("task {} out of plan", t.pid),
                    "the plan of this image",
                ));
            }
        }
        if t.ppid != t.pid {
            self.parents.insert(t.ppid);
        }
        self.tasks += 1;
        self.in_task = true;
        self.pid = t.pid;
        self.comm = String::from_utf8_lossy(&t.comm).into_owned();
        self.zombie = t.exit_state != 0;
        self.thread_written = false;
        self.mm = None;
        self.mm_ref = 0;
        self.table_ref = 0;
        self.task_objs = None;
        self.more_threads.clear();
        self.task_other = false;
        self.objs_kept = false;
        self.leader_sig = (0, None);
        self.sig_override.clear();
        self.creds_done = false;
        self.cred_ref = 0;
        self.fs_ref = 0;
        self.sighand_ref = 0;
        self.signal_ref = 0;
        let mut placed: Vec<&str> = TASK_KEYS.to_vec();
        placed.extend(CAP_KEYS.iter().map(|(k, _)| *k));
        placed.extend(CAP_ZERO_KEYS);
        self.extras("task", &t.extras, &placed)?;
        let caps = CAP_KEYS.iter().any(|(k, _)| t.extras.u64(k).is_some());
        for k in CAP_ZERO_KEYS {
            match t.extras.u64(k) {
                None => {}
                Some(0) if caps => {}
                Some(v) => self.item(format!(
                    "`{k}` = {v} (ckpt-v21 has no such field; only 0, next to the capability sets, is implied)"
                ))?,
            }
        }
        self.cur_task = t.clone();
        self.pending = Some(t.clone());
        Ok(())
    }

    /// Write the pending TASK record and comm; `lead` is the task's first thread.
    fn flush_task(&mut self, lead: Option<&Thread>) -> Result<()> {
        let Some(t) = self.pending.take() else {
            return Ok(());
        };
        let ex = Extras::new();
        let tx = lead.map_or(&ex, |l| &l.extras);
        let mut vals = Vec::new();
        for (task_key, thread_key) in THREAD_TASK_FIELDS {
            let v = t.extras.u64(task_key).or(tx.u64(thread_key)).unwrap_or(0);
            vals.push((task_key, v));
        }
        vals.push(("pdeath_signal", t.extras.u64("pdeath_signal").unwrap_or(0)));
        self.task_record(
            (t.state, t.exit_state, t.exit_code, t.exit_signal),
            &vals,
            &t.comm,
        )
    }

    fn task_record(
        &mut self,
        (state, exit_state, exit_code, exit_signal): (u32, u32, u32, u32),
        vals: &[(&str, u64)],
        comm: &[u8],
    ) -> Result<()> {
        let st = T.st("TASK");
        let mut b = st.zeroed();
        st.put(&mut b, "state", state as u64);
        st.put(&mut b, "exit_state", exit_state as u64);
        st.put(&mut b, "exit_code", exit_code as u64);
        st.put(&mut b, "exit_signal", exit_signal as u64);
        for (n, v) in vals {
            st.put(&mut b, n, *v);
        }
        self.rec("TASK", b)?;
        let len = self.consts["task_comm_len"] as usize;
        if comm.len() > len {
            self.item(format!("comm of {} bytes cut to {len}", comm.len()))?;
        }
        let mut c = vec![0u8; len];
        let k = comm.len().min(len);
        c[..k].copy_from_slice(&comm[..k]);
        self.raw(code("STRING"), &c)
    }

    /// Cred objects (USER_NS, USER, GROUPINFO, CRED, each once) and TASK_CREDS,
    /// when the task has credentials or capability sets to carry.
    fn creds(&mut self) -> Result<()> {
        if self.creds_done || self.zombie {
            return Ok(());
        }
        self.creds_done = true;
        let t = self.cur_task.clone();
        let caps = CAP_KEYS.iter().any(|(k, _)| t.extras.u64(k).is_some());
        if t.creds == Creds::default() && !caps {
            return Ok(());
        }
        let c = &t.creds;
        let st = T.st("CRED");
        let mut b = st.zeroed();
        // Model order: real, effective, saved, fs; v21: uid, suid, euid, fsuid.
        for (n, v) in [
            ("uid", c.uid[0]),
            ("euid", c.uid[1]),
            ("suid", c.uid[2]),
            ("fsuid", c.uid[3]),
            ("gid", c.gid[0]),
            ("egid", c.gid[1]),
            ("sgid", c.gid[2]),
            ("fsgid", c.gid[3]),
        ] {
            st.put(&mut b, n, v as u64);
        }
        for (k, f) in CAP_KEYS {
            st.put(&mut b, f, t.extras.u64(k).unwrap_or(0));
        }
        let mut key = b.clone();
        for g in &c.groups {
            key.extend_from_slice(&g.to_le_bytes());
        }
        if let Some(&r) = self.cred_cache.get(&key) {
            self.cred_ref = r;
        } else {
            if self.userns_ref == 0 {
                self.userns_ref = self.internal();
                self.objref("USER_NS", self.userns_ref)?;
                let us = T.st("USER_NS");
                let u = us.zeroed();
                self.rec("USER_NS", u)?;
            }
            let uid = c.uid[0];
            let user = match self.users.get(&uid) {
                Some(&r) => r,
                None => {
                    let r = self.internal();
                    self.objref("USER", r)?;
                    let us = T.st("USER");
                    let mut u = us.zeroed();
                    us.put(&mut u, "uid", uid as u64);
                    us.put(&mut u, "userns_ref", self.userns_ref as u64);
                    self.rec("USER", u)?;
                    self.users.insert(uid, r);
                    r
                }
            };
            let gr = self.internal();
            self.objref("GROUPINFO", gr)?;
            let gs = T.st("GROUPINFO");
            let mut g = gs.zeroed();
            g.truncate(12);
            gs.put(&mut g, "ngroups", c.groups.len() as u64);
            for x in &c.groups {
                g.extend_from_slice(&x.to_le_bytes());
            }
            g.extend_from_slice(&[0; 4]);
            self.rec("GROUPINFO", g)?;
            let r = self.internal();
            st.put(&mut b, "user_ref", user as u64);
            st.put(&mut b, "groupinfo_ref", gr as u64);
            self.objref("CRED", r)?;
            self.rec("CRED", b)?;
            self.cred_cache.insert(key, r);
            self.cred_ref = r;
        }
        self.task_creds()
    }

    fn task_creds(&mut self) -> Result<()> {
        if self.cred_ref == 0 {
            return Ok(());
        }
        let st = T.st("TASK_CREDS");
        let mut b = st.zeroed();
        st.put(&mut b, "cred_ref", self.cred_ref as u64);
        st.put(&mut b, "ecred_ref", self.cred_ref as u64);
        self.rec("TASK_CREDS", b)
    }

    /// Everything a task section needs before its objects: TASK (if still
    /// pending) and the credentials.
    fn before_objects(&mut self) -> Result<()> {
        if !self.in_task {
            return Ok(());
        }
        self.flush_task(None)?;
        self.creds()
    }

    /// THREAD, CPU and CPU_FPU of one thread.
    fn thread_records(&mut self, t: &Thread) -> Result<()> {
        let mut placed = vec!["thread_info_flags", "gdt_entry_tls_entries", "used_math"];
        let syms: Vec<String> = L::CPU_SEGS
            .iter()
            .map(|(n, _)| format!("{n}_sym"))
            .collect();
        placed.extend(syms.iter().map(|s| s.as_str()));
        placed.extend(THREAD_TASK_FIELDS.iter().map(|(_, k)| *k));
        placed.extend(THREAD_ONLY_KEYS);
        placed.extend(SIGALTSTACK_KEYS.iter().map(|(k, _)| *k));
        self.extras(&format!("thread {}", t.tid), &t.extras, &placed)?;
        let alt: Vec<(&str, Option<u64>, u64)> = SIGALTSTACK_KEYS
            .iter()
            .map(|(k, d)| (*k, t.extras.u64(k), *d))
            .collect();
        let implied = t.extras.u64("clear_child_tid").is_some();
        for (k, v, d) in alt {
            match v {
                Some(v) if v == d && implied => {}
                None if !implied => {}
                Some(v) => self.item(format!(
                    "thread {}: `{k}` = {v:#x} (ckpt-v21 has no sigaltstack; only the disabled stack is implied, next to `clear_child_tid`)",
                    t.tid
                ))?,
                None => self.item(format!(
                    "thread {}: `clear_child_tid` without `{k}` (ckpt-v21 implies the disabled sigaltstack keys next to it)",
                    t.tid
                ))?,
            }
        }

        // TLS: three GDT descriptors, from 16-byte user_desc entries.
        let mut tls = [0u8; 24];
        if t.tls.is_empty() {
            // ckpt-v21 always stores the three slots; an empty slot reads back
            // as an empty user_desc, so "no TLS at all" has no form of its own.
            self.item(format!(
                "thread {}: no TLS descriptors (ckpt-v21 always stores three GDT slots)",
                t.tid
            ))?;
        } else {
            if t.tls.len() != 48 {
                self.item(format!(
                    "TLS of {} bytes (expected 3 user_desc)",
                    t.tls.len()
                ))?;
            } else {
                for (i, u) in t.tls.chunks_exact(16).enumerate() {
                    let u: [u8; 16] = u.try_into().unwrap_or([0; 16]);
                    let d = derive::user_to_desc(&u);
                    if derive::desc_to_user(d, i as u32) != u {
                        self.item(format!("TLS entry {i} has no exact GDT descriptor form"))?;
                    }
                    tls[i * 8..i * 8 + 8].copy_from_slice(&d.to_le_bytes());
                }
            }
        }
        let st = T.st("THREAD");
        let mut b = st.zeroed();
        st.put(
            &mut b,
            "thread_info_flags",
            t.extras.u64("thread_info_flags").unwrap_or(0),
        );
        st.put(
            &mut b,
            "gdt_entry_tls_entries",
            t.extras.u64("gdt_entry_tls_entries").unwrap_or(3),
        );
        st.put(&mut b, "sizeof_tls_array", 24);
        b.extend_from_slice(&tls);
        self.rec("THREAD", b)?;

        let sc = T.st("CPU");
        let mut c = sc.zeroed();
        let regs = t.regs.to_array();
        for (n, i) in L::CPU_REGS {
            sc.put(&mut c, n, regs[i]);
        }
        for (n, i) in L::CPU_SEGS {
            let sym = t.extras.u64(&format!("{n}_sym")).map(|v| v as u16);
            let code = match sym {
                Some(s) if derive::seg_decode(s).unwrap_or(0) == regs[i] => s,
                _ => match derive::seg_encode(regs[i]) {
                    Some(s) => s,
                    None => {
                        self.item(format!("segment {n} = {:#x} has no v21 encoding", regs[i]))?;
                        0
                    }
                },
            };
            sc.put(&mut c, n, code as u64);
        }
        let used_math = if t.fpu.is_some() {
            t.extras.u64("used_math").unwrap_or(1)
        } else {
            0
        };
        sc.put(&mut c, "used_math", used_math);
        self.rec("CPU", c)?;
        if let (Some(f), false) = (&t.fpu, self.arch_known) {
            self.arch_known = true;
            self.has_xsave = f.kind == FpuKind::Xsave;
            self.xstate_size = f.data.len() as u64;
        }
        if let Some(f) = &t.fpu {
            let want = if self.has_xsave {
                FpuKind::Xsave
            } else {
                FpuKind::Fxsave
            };
            if f.kind != want {
                self.item(format!(
                    "fpu area of kind {:?} (image holds {want:?})",
                    f.kind
                ))?;
            }
            if f.xfeatures != 0 {
                self.item(format!("fpu xfeatures {:#x}", f.xfeatures))?;
            }
            let mut d = f.data.clone();
            if d.len() as u64 != self.xstate_size {
                self.item(format!(
                    "fpu area of {} bytes (header xstate_size {})",
                    d.len(),
                    self.xstate_size
                ))?;
                d.resize(self.xstate_size as usize, 0);
            }
            self.raw(code("CPU_FPU"), &d)?;
        }
        Ok(())
    }

    fn thread(&mut self, t: &Thread) -> Result<()> {
        if !self.in_task {
            return Err(Error::invalid(
                self.out.pos,
                "a thread outside a task",
                "a Task event first",
            ));
        }
        if self.pending.is_none() && !self.thread_written && t.tid == self.pid {
            return self.item(format!(
                "thread {} after the task's other records: dropped",
                t.tid
            ));
        }
        if self.thread_written || t.tid != self.pid {
            if self.zombie {
                return self.item(format!("thread {} of a zombie: dropped", t.tid));
            }
            if self.task_other {
                // A v21 image holds a task's other threads after its section,
                // and a decoder gives them right after their Task.
                self.item(format!(
                    "thread {} after other events of its task (ckpt-v21 gives every thread right after its task; the order would change)",
                    t.tid
                ))?;
            }
            self.more_threads.push(t.clone());
            return Ok(());
        }
        if !self.more_threads.is_empty() {
            let before: Vec<String> = self
                .more_threads
                .iter()
                .map(|x| x.tid.to_string())
                .collect();
            self.item(format!(
                "thread {} before the task's own thread {} (ckpt-v21 writes the task's own thread first; the order would change)",
                before.join(", "),
                t.tid
            ))?;
        }
        self.thread_written = true;
        self.flush_task(Some(t))?;
        self.leader_sig = (t.sigmask, t.extras.u64("sigpending"));
        self.thread_records(t)?;
        self.creds()
    }

    /// SIGNAL_TASK (and the private SIGPENDING when `sigpending` is known).
    fn signal_task(&mut self, (mask, pending): (u64, Option<u64>)) -> Result<()> {
        let st = T.st("SIGNAL_TASK");
        let mut b = st.zeroed();
        st.put(&mut b, "blocked", mask);
        self.rec("SIGNAL_TASK", b)?;
        if let Some(p) = pending {
            let sp = T.st("SIGPENDING");
            let mut b = sp.zeroed();
            sp.put(&mut b, "signal", p);
            self.rec("SIGPENDING", b)?;
        }
        Ok(())
    }

    fn fs(&mut self, f: &Fs) -> Result<()> {
        self.before_objects()?;
        if self.fs_ref != 0 {
            return self.item("a second fs context: dropped".into());
        }
        if f.umask != 0 {
            self.item(format!(
                "fs umask {:#o} (v21 ckpt_hdr_fs has no umask; v23 added it)",
                f.umask
            ))?;
        }
        self.fs_ref = self.internal();
        self.objref("FS", self.fs_ref)?;
        let st = T.st("FS");
        self.rec("FS", st.zeroed())?;
        for p in [&f.root, &f.cwd] {
            let mut n = p.clone();
            n.push(0);
            self.raw(code("FILE_NAME"), &n)?;
        }
        Ok(())
    }

    fn sigactions(&mut self, a: &[SigAction]) -> Result<()> {
        self.before_objects()?;
        if self.sighand_ref != 0 {
            return self.item("a second set of signal dispositions: dropped".into());
        }
        let n = self.consts["signal_nsig"] as usize;
        if a.len() != n {
            self.item(format!(
                "{} signal dispositions (ckpt_hdr_sighand holds signal_nsig = {n})",
                a.len()
            ))?;
        }
        self.sighand_ref = self.internal();
        self.objref("SIGHAND", self.sighand_ref)?;
        let e = T.st("SIGACTION");
        let mut b = T.st("SIGHAND").zeroed();
        for i in 0..n {
            let s = a.get(i).copied().unwrap_or_default();
            let mut x = e.zeroed();
            e.put(&mut x, "_sa_handler", s.handler);
            e.put(&mut x, "sa_flags", s.flags);
            e.put(&mut x, "sa_restorer", s.restorer);
            e.put(&mut x, "sa_mask", s.mask);
            b.extend_from_slice(&x);
        }
        self.rec("SIGHAND", b)
    }

    fn rlimits(&mut self, r: &[Rlimit]) -> Result<()> {
        self.before_objects()?;
        if self.signal_ref != 0 {
            return self.item("a second set of resource limits: dropped".into());
        }
        let n = self.consts["rlimit_nlimits"] as usize;
        if r.len() != n || n != 16 {
            self.item(format!(
                "{} resource limits (ckpt_hdr_signal holds 16)",
                r.len()
            ))?;
        }
        self.signal_ref = self.internal();
        self.objref("SIGNAL", self.signal_ref)?;
        let st = T.st("SIGNAL");
        let mut b = st.zeroed();
        for (i, l) in r.iter().take(16).enumerate() {
            let o = 8 + i * 16;
            b[o..o + 8].copy_from_slice(&l.cur.to_le_bytes());
            b[o + 8..o + 16].copy_from_slice(&l.max.to_le_bytes());
        }
        self.rec("SIGNAL", b)
    }

    /// OBJREF FILE FILE_NAME for a mapped file (exe or VMA); returns its objref.
    fn mapped_file(&mut self, path: &[u8], ex: &Extras, prefix: &str) -> Result<u32> {
        let r = self.internal();
        self.objref("FILE", r)?;
        let st = T.st("FILE");
        let mut b = st.zeroed();
        let g = |n: &str, d: u64| ex.u64(&format!("{prefix}{n}")).unwrap_or(d);
        st.put(&mut b, "f_type", L::FILE_GENERIC as u64);
        st.put(&mut b, "f_mode", g("f_mode", 1));
        st.put(&mut b, "f_flags", g("f_flags", 0));
        st.put(&mut b, "f_pos", g("f_pos", 0));
        for n in FILE_EXTRAS {
            st.put(&mut b, n, g(n, 0));
        }
        self.rec("FILE", b)?;
        let mut p = path.to_vec();
        p.push(0);
        self.raw(code("FILE_NAME"), &p)?;
        Ok(r)
    }

    fn mm(&mut self, m: &Mm) -> Result<()> {
        if self.mm.is_some() {
            return self.item("a second mm: dropped".into());
        }
        let mut placed = vec!["def_flags", "mm_flags"];
        let exe_keys: Vec<String> = ["f_mode", "f_flags", "f_pos"]
            .iter()
            .chain(FILE_EXTRAS.iter())
            .map(|n| format!("exe_{n}"))
            .collect();
        placed.extend(exe_keys.iter().map(|s| s.as_str()));
        self.extras("mm", &m.extras, &placed)?;
        if m.personality != 0 {
            self.item(format!("mm: personality {:#x}", m.personality))?;
        }
        let exe = match &m.exe {
            Some(p) => self.mapped_file(p, &m.extras, "exe_")?,
            None => 0,
        };
        let count = match &self.plan {
            Some(p) => *p.map_counts.get(self.mm_index).ok_or_else(|| {
                Error::invalid(
                    self.out.pos,
                    "more mm events than planned",
                    "the plan of this image",
                )
            })?,
            None => 0,
        };
        self.mm_index += 1;
        self.map_count = count;
        self.vmas = 0;
        self.vdso = 0;
        self.mm_ref = self.internal();
        self.objref("MM", self.mm_ref)?;
        let st = T.st("MM");
        let mut b = st.zeroed();
        st.put(&mut b, "map_count", count as u64);
        st.put(&mut b, "exe_objref", exe as u64);
        st.put(&mut b, "def_flags", m.extras.u64("def_flags").unwrap_or(0));
        st.put(&mut b, "flags", m.extras.u64("mm_flags").unwrap_or(0));
        for (n, v) in [
            ("start_code", m.start_code),
            ("end_code", m.end_code),
            ("start_data", m.start_data),
            ("end_data", m.end_data),
            ("start_brk", m.start_brk),
            ("brk", m.brk),
            ("start_stack", m.start_stack),
            ("arg_start", m.arg_start),
            ("arg_end", m.arg_end),
            ("env_start", m.env_start),
            ("env_end", m.env_end),
        ] {
            st.put(&mut b, n, v);
        }
        self.rec("MM", b)?;
        let words = self.consts["at_vector_size"] as usize;
        if m.auxv.len() > words {
            self.item(format!(
                "auxv of {} words (at_vector_size {words})",
                m.auxv.len()
            ))?;
        }
        let mut a = vec![0u8; words * 8];
        for (i, w) in m.auxv.iter().take(words).enumerate() {
            a[i * 8..i * 8 + 8].copy_from_slice(&w.to_le_bytes());
        }
        self.raw(code("BUFFER"), &a)?;
        self.mm = Some(m.clone());
        self.mm_open = true;
        Ok(())
    }

    fn close_mm(&mut self, ctx: Option<&Unknown<'_>>) -> Result<()> {
        if !self.mm_open {
            return Ok(());
        }
        self.mm_open = false;
        if self.plan.is_some() && self.vmas != self.map_count {
            return Err(Error::invalid(
                self.out.pos,
                format!("{} VMAs", self.vmas),
                format!("{} as planned", self.map_count),
            ));
        }
        match ctx {
            Some(u) => self.raw(u.type_code, &u.payload),
            None => {
                let st = T.st("MM_CONTEXT");
                let mut b = st.zeroed();
                st.put(&mut b, "vdso", self.vdso);
                st.put(&mut b, "ldt_entry_size", 8);
                self.rec("MM_CONTEXT", b)?;
                self.raw(code("MM_CONTEXT_LDT"), &[])
            }
        }
    }

    fn vma(&mut self, v: &Vma) -> Result<()> {
        let Some(mm) = self.mm.clone() else {
            return Err(Error::invalid(
                self.out.pos,
                "a VMA before the mm",
                "an Mm event first",
            ));
        };
        self.vmas += 1;
        let at = format!("VMA {:#x}-{:#x}", v.start, v.end);
        let mut placed = vec![
            "vm_page_prot",
            "ino_objref",
            "ino_size",
            "f_mode",
            "f_flags",
            "f_pos",
        ];
        placed.extend(FILE_EXTRAS);
        self.extras(&at, &v.extras, &placed)?;
        if v.prot != derive::prot_of(v.flags) {
            self.item(format!("{at}: prot {:#x} differs from vm_flags", v.prot))?;
        }
        let (ty, r) = match v.kind {
            VmaKind::File => {
                let path = v.file.clone().unwrap_or_default();
                if v.file.is_none() {
                    self.item(format!("{at}: file mapping without a path"))?;
                }
                (L::VMA_FILE, self.mapped_file(&path, &v.extras, "")?)
            }
            VmaKind::Vdso => {
                self.vdso = v.start;
                (L::VMA_VDSO, 0)
            }
            k @ (VmaKind::Anon | VmaKind::Heap | VmaKind::Stack) => {
                if derive::anon_kind(v.start, v.end, &mm) != k {
                    self.item(format!("{at}: kind {} (written as anonymous)", k.name()))?;
                }
                (L::VMA_ANON, 0)
            }
            k => {
                self.item(format!("{at}: kind {} (written as anonymous)", k.name()))?;
                (L::VMA_ANON, 0)
            }
        };
        if v.file.is_some() && v.kind != VmaKind::File {
            self.item(format!("{at}: file path of a non-file mapping"))?;
        }
        let st = T.st("VMA");
        let mut b = st.zeroed();
        st.put(&mut b, "vma_type", ty as u64);
        st.put(&mut b, "vma_objref", r as u64);
        st.put(
            &mut b,
            "ino_objref",
            v.extras.u64("ino_objref").unwrap_or(0),
        );
        st.put(&mut b, "ino_size", v.extras.u64("ino_size").unwrap_or(0));
        st.put(&mut b, "vm_start", v.start);
        st.put(&mut b, "vm_end", v.end);
        let prot = v
            .extras
            .u64("vm_page_prot")
            .unwrap_or_else(|| derive::default_page_prot(Arch::X86_64, v.flags));
        st.put(&mut b, "vm_page_prot", prot);
        st.put(&mut b, "vm_flags", v.flags);
        st.put(&mut b, "vm_pgoff", v.pgoff);
        self.rec("VMA", b)
    }

    fn chunk(&mut self, addrs: &[u8], data: &[u8]) -> Result<()> {
        let n = (addrs.len() / 8) as u64;
        let st = T.st("PGARR");
        let mut b = st.zeroed();
        st.put(&mut b, "nr_pages", n);
        self.rec("PGARR", b)?;
        let len = HDR + addrs.len() as u64 + data.len() as u64;
        let mut h = [0u8; 8];
        h[..4].copy_from_slice(&code("BUFFER").to_le_bytes());
        h[4..].copy_from_slice(&(len as u32).to_le_bytes());
        self.out.put(&h)?;
        self.out.put(addrs)?;
        self.out.put(data)
    }

    fn pages(&mut self, c: &PageChunk<'_>) -> Result<()> {
        let n = c.addrs.len();
        if c.data.len() as u64 != n as u64 * PAGE {
            return Err(Error::invalid(
                self.out.pos,
                format!("{} bytes of page data for {n} pages", c.data.len()),
                "4096 bytes per page",
            ));
        }
        let words = !c.addrs.is_runs() && c.addrs.width() == 8;
        let mut it = c.addrs.iter();
        let mut a = Vec::new();
        let mut start = 0;
        while start < n {
            let k = (n - start).min(CHUNK_PAGES);
            let d = &c.data[start * PAGE as usize..(start + k) * PAGE as usize];
            if words {
                let a = &c.addrs.as_bytes()[start * 8..(start + k) * 8];
                self.chunk(a, d)?;
            } else {
                a.clear();
                for x in it.by_ref().take(k) {
                    a.extend_from_slice(&x.to_le_bytes());
                }
                self.chunk(&a, d)?;
            }
            start += k;
        }
        Ok(())
    }

    /// A zero run as chunks of up to [`L::PGARR_BATCH`] pages (the kernel's
    /// batch); the decoder gives each all-zero chunk back as one zero run.
    fn zero_pages(&mut self, z: &ZeroRun) -> Result<()> {
        let mut left = z.count;
        let mut addr = z.start;
        self.zero_pages += z.count;
        while left > 0 {
            let k = left.min(L::PGARR_BATCH as u64) as usize;
            let mut a = Vec::with_capacity(k * 8);
            for i in 0..k as u64 {
                a.extend_from_slice(&(addr + i * PAGE).to_le_bytes());
            }
            let st = T.st("PGARR");
            let mut b = st.zeroed();
            st.put(&mut b, "nr_pages", k as u64);
            self.rec("PGARR", b)?;
            let len = HDR + a.len() as u64 + k as u64 * PAGE;
            let mut h = [0u8; 8];
            h[..4].copy_from_slice(&code("BUFFER").to_le_bytes());
            h[4..].copy_from_slice(&(len as u32).to_le_bytes());
            self.out.put(&h)?;
            self.out.put(&a)?;
            let mut data = k * PAGE as usize;
            while data > 0 {
                let n = data.min(ZEROS.len());
                self.out.put(&ZEROS[..n])?;
                data -= n;
            }
            left -= k as u64;
            addr += k as u64 * PAGE;
        }
        Ok(())
    }

    fn table(&mut self) -> Result<()> {
        if self.table_ref != 0 {
            return Ok(());
        }
        let n = match &self.plan {
            Some(p) => p
                .nfds
                .get(self.tasks.saturating_sub(1))
                .copied()
                .unwrap_or(0),
            None => 0,
        };
        self.table_ref = self.internal();
        self.objref("FILE_TABLE", self.table_ref)?;
        let st = T.st("FILE_TABLE");
        let mut b = st.zeroed();
        st.put(&mut b, "fdt_nfds", n as u64);
        self.rec("FILE_TABLE", b)
    }

    fn file(&mut self, f: &File) -> Result<()> {
        self.table()?;
        if f.id == 0 || f.id > i32::MAX as u32 {
            self.item(format!("file id {} is not a positive s32 objref", f.id))?;
        }
        self.extras(&format!("file {}", f.id), &f.extras, &FILE_EXTRAS)?;
        self.objref("FILE", f.id)?;
        // A generic file's kind travels in the S_IFMT bits of f_mode
        // (File.mode holds st_mode); 0 there reads back as Regular.
        let fmt = f.mode & S_IFMT;
        let pipe = match (f.kind, f.pipe) {
            (FileKind::Pipe, Some(p)) => Some(p),
            (FileKind::Regular, None) if fmt == 0 || fmt == S_IFREG => None,
            (FileKind::Directory, None) if fmt == S_IFDIR => None,
            (FileKind::CharDevice, None) if fmt == S_IFCHR => None,
            (FileKind::Fifo, None) if fmt == S_IFIFO => None,
            (k, p) => {
                self.item(format!(
                    "file {}: kind {} with mode {:#o}{} (a v21 generic file's kind is read from the S_IFMT bits of f_mode; written as a generic file)",
                    f.id,
                    k.name(),
                    f.mode,
                    if p.is_some() { " and a pipe object" } else { "" }
                ))?;
                None
            }
        };
        let st = if pipe.is_some() {
            T.st("FILE_PIPE")
        } else {
            T.st("FILE")
        };
        let mut b = st.zeroed();
        st.put(
            &mut b,
            "f_type",
            if pipe.is_some() {
                L::FILE_PIPE
            } else {
                L::FILE_GENERIC
            } as u64,
        );
        st.put(&mut b, "f_mode", f.mode as u64);
        st.put(&mut b, "f_flags", f.flags as u64);
        st.put(&mut b, "f_pos", f.pos);
        for n in FILE_EXTRAS {
            st.put(&mut b, n, f.extras.u64(n).unwrap_or(0));
        }
        match pipe {
            Some(p) => {
                st.put(&mut b, "pipe_objref", p as u64);
                self.rec("FILE", b)?;
                if self.pipes_written.insert(p) {
                    let data = self.pipes.remove(&p).unwrap_or_default();
                    self.raw(code("PIPE_BUF"), &data)?;
                }
                Ok(())
            }
            None => {
                self.rec("FILE", b)?;
                let mut p = f.path.clone();
                p.push(0);
                self.raw(code("FILE_NAME"), &p)
            }
        }
    }

    /// Order rules of the model that a ckpt-v21 image cannot vary (docs/CONVERT.md
    /// "Object numbering and order"), checked before `ev` is written.
    fn order(&mut self, ev: &Event<'_>) -> Result<()> {
        let boundary = matches!(ev, Event::Task(_) | Event::Tail);
        if let Some(p) = self.pipe_wait.take() {
            let end = matches!(ev, Event::File(f) if f.pipe == Some(p) && f.kind == FileKind::Pipe);
            // At a task's end the pipe is one no file refers to (an item of its own).
            if !end && !boundary {
                self.item(format!(
                    "pipe {p}: followed by {} rather than its first pipe end (ckpt-v21 writes a pipe's buffer with its first end, where the Pipe event comes back)",
                    ev.kind_name()
                ))?;
            }
        }
        if self.objs_kept && self.in_task && !boundary {
            self.item(format!(
                "{} after the task's TASK_OBJS record kept from the source (ckpt-v21 writes TASK_OBJS after the task's objects; the order would change)",
                ev.kind_name()
            ))?;
        }
        if self.in_task && !matches!(ev, Event::Thread(_) | Event::Pipe(_)) && !boundary {
            self.task_other = true;
        }
        Ok(())
    }

    /// A File or Pipe id must not be an objref kept from the source.
    fn model_id(&mut self, id: u32) -> Result<()> {
        self.model_ids.insert(id);
        if self.kept_refs.contains_key(&id) {
            self.item(format!(
                "object {id} has the objref of an OBJREF record kept from the source (an objref names one object)"
            ))?;
        }
        Ok(())
    }

    /// The task's TASK_OBJS: the objrefs this encoder gave the task's
    /// objects; from a record kept from the source (which names objects kept
    /// as records), its non-zero fields name those objects under their own
    /// numbers. Fields the source's decoder could not have left as they are
    /// are items (docs/CONVERT.md "Object numbering and order").
    fn task_objs_record(&mut self) -> Result<Vec<u8>> {
        let st = T.st("TASK_OBJS");
        let own = [
            self.table_ref,
            self.mm_ref,
            self.fs_ref,
            self.sighand_ref,
            self.signal_ref,
        ];
        let Some(mut b) = self.task_objs.take() else {
            let mut b = st.zeroed();
            for ((n, _), r) in TASK_OBJS_FIELDS.iter().zip(own) {
                st.put(&mut b, n, r as u64);
            }
            return Ok(b);
        };
        b.resize(st.size, 0);
        let mut named = false;
        for (i, ((n, kind), r)) in TASK_OBJS_FIELDS.iter().zip(own).enumerate() {
            let u = st.get_i(&b, n) as i32;
            st.put(&mut b, n, r as u64);
            if u == 0 {
                continue;
            }
            let why = if i < 2 {
                format!("ckpt-v21 numbers the task's {kind} itself ({r})")
            } else if r != 0 {
                format!("the task has a {kind} of its own, written as objref {r}")
            } else {
                match self.kept_refs.get(&(u as u32)) {
                    Some(&ty) if T.obj_name(ty) == *kind => {
                        st.put(&mut b, n, u as u32 as u64);
                        named = true;
                        continue;
                    }
                    Some(&ty) => format!("objref {u} is a {} object", T.obj_name(ty)),
                    None => format!("no {kind} object kept as a record before it has objref {u}"),
                }
            };
            self.item(format!(
                "TASK_OBJS record kept from the source: `{n}` = {u}, but {why}; written as {}",
                st.get_i(&b, n)
            ))?;
        }
        if !named {
            self.item(
                "TASK_OBJS record kept from the source names none of the objects kept as records (ckpt-v21 writes that record itself; it would not come back as a record)"
                    .into(),
            )?;
        }
        Ok(b)
    }

    fn end_task(&mut self) -> Result<()> {
        if !self.in_task {
            return Ok(());
        }
        self.close_mm(None)?;
        self.before_objects()?;
        if !self.zombie {
            self.table()?;
            let b = self.task_objs_record()?;
            self.rec("TASK_OBJS", b.clone())?;
            let signals = !self.sig_override.is_empty()
                || self.sighand_ref != 0
                || self.signal_ref != 0
                || self.leader_sig != (0, None)
                || self
                    .more_threads
                    .iter()
                    .any(|t| t.sigmask != 0 || t.extras.u64("sigpending").is_some());
            if !self.sig_override.is_empty() {
                for (c, p) in std::mem::take(&mut self.sig_override) {
                    self.raw(c, &p)?;
                }
            } else if signals {
                self.signal_task(self.leader_sig)?;
            }
            let threads = std::mem::take(&mut self.more_threads);
            let lead = self.cur_task.clone();
            if !threads.is_empty() {
                self.threaded.push((self.pid, self.comm.clone()));
            }
            for t in &threads {
                if t.tid == self.pid {
                    self.item(format!("a second thread with the task's own id {}", t.tid))?;
                }
                let g = |k: &str, d: u64| t.extras.u64(k).unwrap_or(d);
                let mut vals = Vec::new();
                for (task_key, thread_key) in THREAD_TASK_FIELDS {
                    vals.push((task_key, g(thread_key, 0)));
                }
                vals.push((
                    "pdeath_signal",
                    g(
                        "pdeath_signal",
                        lead.extras.u64("pdeath_signal").unwrap_or(0),
                    ),
                ));
                let comm = t
                    .extras
                    .bytes("comm")
                    .map_or(lead.comm.clone(), |c| c.to_vec());
                self.task_record(
                    (
                        g("task_state", lead.state as u64) as u32,
                        0,
                        g("exit_code", 0) as u32,
                        g("exit_signal", u32::MAX as u64) as u32,
                    ),
                    &vals,
                    &comm,
                )?;
                self.thread_records(t)?;
                self.task_creds()?;
                self.rec("TASK_OBJS", b.clone())?;
                if signals {
                    self.signal_task((t.sigmask, t.extras.u64("sigpending")))?;
                }
            }
        }
        self.lost_pipes()?;
        self.in_task = false;
        Ok(())
    }

    /// An item for every pipe no file referred to (its buffer has no place).
    fn lost_pipes(&mut self) -> Result<()> {
        let mut lost: Vec<u32> = self.pipes.keys().copied().collect();
        lost.sort_unstable();
        for p in lost {
            self.item(format!(
                "pipe {p} referred to by no file: its data is dropped"
            ))?;
        }
        self.pipes.clear();
        Ok(())
    }
}

impl<W: Write> EventSink for Encoder<W> {
    fn event(&mut self, ev: &Event<'_>) -> Result<()> {
        if self.finished {
            return Err(Error::invalid(
                self.out.pos,
                "an event after the tail",
                "nothing",
            ));
        }
        self.checker.check(ev, self.out.pos)?;
        self.order(ev)?;
        let after_sig_task = std::mem::take(&mut self.after_sig_task);
        let mm_part = matches!(
            ev,
            Event::Vma(_) | Event::Pages(_) | Event::ZeroPages(_) | Event::VmaEnd
        ) || (self.vma_open && matches!(ev, Event::Unknown(_) | Event::Error(_)));
        match ev {
            Event::Vma(_) => self.vma_open = true,
            Event::VmaEnd => self.vma_open = false,
            _ => {}
        }
        if self.in_task && self.zombie {
            let state = match ev {
                Event::Mm(_) | Event::Vma(_) => Some("memory"),
                Event::Fd(_) => Some("open files"),
                Event::Fs(_) | Event::SigActions(_) | Event::Rlimits(_) => {
                    Some("fs or signal state")
                }
                Event::Unknown(u)
                    if u.revision == Revision::CkptV21 && u.type_code == code("TASK_OBJS") =>
                {
                    Some("task objects")
                }
                _ => None,
            };
            if matches!(ev, Event::Pages(_) | Event::ZeroPages(_) | Event::VmaEnd) {
                // Dropped with their VMA (listed as the zombie's memory).
                return Ok(());
            }
            if let Event::Mm(_) = ev {
                // Planned like any mm: the next task's counts follow it.
                self.mm_index += 1;
            }
            if let Some(what) = state {
                // ckpt-v21 writes a zombie as TASK + comm only.
                return self.item(format!(
                    "zombie task {} with {what} (ckpt-v21 stores a zombie as its task record and comm only)",
                    self.pid
                ));
            }
        }
        // An mm stays open until its planned VMAs are written: a v21 decoder
        // reads other records between them in place (the model may hold, say,
        // an fd between an mm and its VMAs), so they are written there.
        let end_of_task = matches!(ev, Event::Task(_) | Event::Tail);
        let vmas_due = self.plan.is_some() && self.vmas < self.map_count;
        if self.mm_open && !mm_part && (end_of_task || !vmas_due) {
            if let Event::Unknown(u) = ev {
                if u.revision == Revision::CkptV21 && u.type_code == code("MM_CONTEXT") {
                    return self.close_mm(Some(u));
                }
            }
            self.close_mm(None)?;
        }
        if !matches!(ev, Event::Thread(_) | Event::Task(_) | Event::Pipe(_)) {
            self.before_objects()?;
        }
        match ev {
            Event::Header(h) => self.header(h),
            Event::Task(t) => self.task(t),
            Event::Thread(t) => self.thread(t),
            Event::Mm(m) => self.mm(m),
            Event::Vma(v) => self.vma(v),
            Event::Pages(c) => self.pages(c),
            Event::ZeroPages(z) => self.zero_pages(z),
            Event::VmaEnd => {
                let st = T.st("PGARR");
                let b = st.zeroed();
                self.rec("PGARR", b)
            }
            Event::Fs(f) => self.fs(f),
            Event::SigActions(a) => self.sigactions(a),
            Event::Rlimits(r) => self.rlimits(r),
            Event::Pipe(p) => {
                self.model_id(p.id)?;
                self.pipes.insert(p.id, p.data.to_vec());
                self.pipe_wait = Some(p.id);
                Ok(())
            }
            Event::File(f) => {
                self.model_id(f.id)?;
                self.file(f)
            }
            Event::Fd(fd) => {
                self.table()?;
                let st = T.st("FILE_DESC");
                let mut b = st.zeroed();
                st.put(&mut b, "fd_objref", fd.file as u64);
                st.put(&mut b, "fd_descriptor", fd.fd as u32 as u64);
                st.put(&mut b, "fd_close_on_exec", fd.cloexec as u64);
                self.rec("FILE_DESC", b)
            }
            Event::Error(m) => {
                self.raw(code("ERROR"), &[])?;
                let mut s = Vec::with_capacity(m.len() + 2);
                s.push(0);
                s.extend_from_slice(m);
                s.push(0);
                self.raw(code("STRING"), &s)
            }
            Event::Unknown(u) => {
                if u.revision != Revision::CkptV21 {
                    return self.item(format!(
                        "unknown {} record type {}",
                        u.revision, u.type_code
                    ));
                }
                let live = self.in_task && !self.zombie;
                if u.type_code == code("SIGNAL_TASK") && live {
                    // What a one-pass (stream) decoder leaves of the leader's
                    // signal mask; the convert paths read v21 twice and give
                    // it back as the Thread's sigmask instead.
                    self.item(
                        "SIGNAL_TASK record kept from a one-pass decode (read back as the leader thread's signal mask, not as a record)"
                            .into(),
                    )?;
                    self.sig_override.push((u.type_code, u.payload.to_vec()));
                    self.after_sig_task = true;
                    return Ok(());
                }
                if u.type_code == code("SIGPENDING") && live && after_sig_task {
                    self.sig_override.push((u.type_code, u.payload.to_vec()));
                    return Ok(());
                }
                // A zombie's task section is never closed with our own
                // TASK_OBJS, so its records stay where they were.
                if u.type_code == code("TASK_OBJS") && live {
                    let mut b = vec![0u8; 8];
                    b.extend_from_slice(&u.payload);
                    self.task_objs = Some(b);
                    self.objs_kept = true;
                    return Ok(());
                }
                if let Some((r, ty)) = kept_objref(u) {
                    let r = r as u32;
                    if self.model_ids.contains(&r) || self.kept_refs.contains_key(&r) {
                        self.item(format!(
                            "OBJREF record kept from the source defines objref {r} again (an objref names one object)"
                        ))?;
                    }
                    self.kept_refs.insert(r, ty);
                }
                self.raw(u.type_code, &u.payload)
            }
            Event::Tail => {
                self.end_task()?;
                // Pipes of no task (before the first one).
                self.lost_pipes()?;
                // Known once every task has been seen (the same in a dry run
                // and with a plan, so that both list it in the same place).
                for (pid, comm) in std::mem::take(&mut self.threaded) {
                    if self.parents.contains(&pid) {
                        let what = format!(
                            "task {pid} ({comm}): threads together with child tasks (a v21 kernel lists the children before the next thread; ckpt writes threads right after their leader)"
                        );
                        self.losses.item(self.out.pos, None, what)?;
                    }
                }
                if !self.tree_written {
                    self.tree()?;
                }
                if self.zero_pages > 0 {
                    self.losses.notes.push(format!(
                        "{} all-zero pages written out as page contents (ckpt-v21 has no zero runs)",
                        self.zero_pages
                    ));
                }
                let st = T.st("TAIL");
                let mut b = st.zeroed();
                st.put(&mut b, "magic", crate::detect::CHECKPOINT_MAGIC_TAIL);
                self.rec("TAIL", b)?;
                self.finished = true;
                Ok(())
            }
        }
    }

    fn finish(&mut self) -> Result<()> {
        if !self.finished {
            return Err(Error::new(
                self.out.pos,
                ErrorKind::MissingTerminator {
                    expected: "a Tail event",
                },
            ));
        }
        self.out.flush()
    }
}

/// This module's revision, for messages.
const REV: Revision = Revision::CkptV21;
