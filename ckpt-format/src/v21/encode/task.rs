//! The ckpt-v21 encoder's task records: TASK, credentials, THREAD/CPU/FPU,
//! signal state, FS, SIGHAND, rlimits, and the end of a task.

use super::*;

impl<W: Write> Encoder<W> {
    pub(super) fn task(&mut self, t: &Task) -> Result<()> {
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
        self.early_thread = false;
        self.mm = None;
        self.mm_ref = 0;
        self.table_ref = 0;
        self.epolls.clear();
        self.fd_files.clear();
        self.task_objs = None;
        self.more_threads.clear();
        self.task_other = false;
        self.objs_kept = false;
        self.leader_sig = SigState::default();
        self.sig_override.clear();
        self.signal_recs.clear();
        self.creds_done = false;
        self.cred_ref = 0;
        self.fs_ref = 0;
        self.sighand_ref = 0;
        self.signal_ref = 0;
        self.itimers = self.next_itimers.take().flatten();
        if let Some(x) = self.itimers {
            if let Err(m) = crate::v21::siginfo::itimer_fields(&x) {
                self.itimers = None;
                self.item(format!("task {}: {m}", t.pid))?;
            }
        }
        let mut placed: Vec<&str> = TASK_KEYS.to_vec();
        placed.push("itimers");
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
    pub(super) fn flush_task(&mut self, lead: Option<&Thread>) -> Result<()> {
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

    pub(super) fn task_record(
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
    pub(super) fn creds(&mut self) -> Result<()> {
        if self.creds_done || self.zombie {
            return Ok(());
        }
        self.creds_done = true;
        let t = self.cur_task.clone();
        // Always written (a v21 restart reads TASK_CREDS for every task): a
        // model without credentials (a cr-v5 image) has uid and gid 0.
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
        self.task_creds()?;
        self.ns_due = true;
        Ok(())
    }

    pub(super) fn task_creds(&mut self) -> Result<()> {
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
    pub(super) fn before_objects(&mut self) -> Result<()> {
        if !self.in_task {
            return Ok(());
        }
        // The task's own thread came after its other events (a cr-v5
        // source): written here, where a v21 task has it, from the plan.
        if self.pending.is_some() && !self.zombie && !self.thread_written {
            let late = self.plan.as_ref().and_then(|p| {
                p.late_threads
                    .get(self.tasks.wrapping_sub(1))
                    .cloned()
                    .flatten()
            });
            if let Some(th) = late {
                self.thread_written = true;
                self.early_thread = true;
                self.flush_task(Some(&th))?;
                self.leader_sig = SigState::of(&th);
                let lossy = std::mem::replace(&mut self.losses.lossy, true);
                let saved = std::mem::take(&mut self.losses.items);
                let r = self.thread_records(&th);
                self.early_items = std::mem::replace(&mut self.losses.items, saved);
                self.losses.lossy = lossy;
                r?;
            }
        }
        self.flush_task(None)?;
        self.creds()
    }

    /// THREAD, CPU and CPU_FPU of one thread.
    pub(super) fn thread_records(&mut self, t: &Thread) -> Result<()> {
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

        // The private SIGPENDING is always written; `sigpending` = 0 is
        // implied next to `clear_child_tid`, like the sigaltstack keys.
        let queued = t
            .extras
            .bytes("siginfo_pending")
            .is_some_and(|q| !q.is_empty());
        match t.extras.u64("sigpending") {
            Some(0) if !implied && !queued => self.item(format!(
                "thread {}: `sigpending` = 0 without `clear_child_tid` (ckpt-v21 always writes the pending set; an empty one reads back as the key only next to `clear_child_tid`)",
                t.tid
            ))?,
            None if implied => self.item(format!(
                "thread {}: `clear_child_tid` without `sigpending` (ckpt-v21 implies an empty pending set next to it)",
                t.tid
            ))?,
            _ => {}
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
        // No system call to restart: ckpt captures stopped tasks whose
        // interrupted call the restorer restarts by its registers.
        self.out.put(&restart_block_none())?;

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

    pub(super) fn thread(&mut self, t: &Thread) -> Result<()> {
        if !self.in_task {
            return Err(Error::invalid(
                self.out.pos,
                "a thread outside a task",
                "a Task event first",
            ));
        }
        let late = self.pending.is_none() && !self.thread_written && t.tid == self.pid;
        let early = self.early_thread && t.tid == self.pid;
        if late || early {
            self.early_thread = false;
            // Written before the task's objects from the plan (not in a dry run).
            self.item(format!(
                "thread {} after the task's other records (a v21 task has its thread before its objects: written there; it reads back right after its task)",
                t.tid
            ))?;
            if early {
                let items = std::mem::take(&mut self.early_items);
                self.losses.items.extend(items);
            } else if self.plan.is_none() && !self.zombie {
                // A dry run: the same items as the early write of the real run.
                self.thread_records(t)?;
            }
            return Ok(());
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
        self.leader_sig = SigState::of(t);
        self.thread_records(t)?;
        self.creds()
    }

    /// The thread's private SIGPENDING (`sigpending`, 0 when unknown, and
    /// its queue), then SIGNAL_TASK (the kernel's `checkpoint_task_signal` order).
    pub(super) fn signal_task(&mut self, s: SigState) -> Result<()> {
        let entries = self.queue_entries(&format!("thread {}", s.tid), &s.queue)?;
        let set = s.pending.unwrap_or(0);
        let b = sigpending_payload(set, &entries);
        self.raw(code("SIGPENDING"), &b)?;
        let st = T.st("SIGNAL_TASK");
        let mut b = st.zeroed();
        st.put(&mut b, "blocked", s.mask);
        self.rec("SIGNAL_TASK", b)
    }

    /// `ckpt_siginfo` entries of a queue (concatenated user siginfos); an
    /// entry the era cannot hold is an item and is left out.
    pub(super) fn queue_entries(&mut self, who: &str, q: &[u8]) -> Result<Vec<u8>> {
        let Some(q) = SigInfo::split(q) else {
            self.item(format!(
                "{who}: a signal queue of {} bytes (not whole siginfos)",
                q.len()
            ))?;
            return Ok(Vec::new());
        };
        let (entries, _, lost) = crate::v21::siginfo::entries(&q);
        for m in lost {
            self.item(format!(
                "{who}: queued {m}: dropped (the signal stays pending by its mask bit)"
            ))?;
        }
        Ok(entries)
    }

    pub(super) fn fs(&mut self, f: &Fs) -> Result<()> {
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

    pub(super) fn sigactions(&mut self, a: &[SigAction]) -> Result<()> {
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

    pub(super) fn rlimits(&mut self, r: &[Rlimit]) -> Result<()> {
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
        let st = T.st("SIGNAL");
        let mut b = st.zeroed();
        for (i, l) in r.iter().take(16).enumerate() {
            let o = 8 + i * 16;
            b[o..o + 8].copy_from_slice(&l.cur.to_le_bytes());
            b[o + 8..o + 16].copy_from_slice(&l.max.to_le_bytes());
        }
        if let Some(x) = self.itimers.take() {
            for (f, ns) in crate::v21::siginfo::itimer_fields(&x).unwrap_or_default() {
                st.put(&mut b, f, ns);
            }
        }
        // Written after TASK_OBJS (end_task), then the shared pending set.
        st.put(&mut b, "h.type", code("SIGNAL") as u64);
        st.put(&mut b, "h.len", st.size as u64);
        self.signal_recs.push((code("SIGNAL"), b[8..].to_vec()));
        // The shared queue; its mask is the queue's (the model keeps no
        // shared mask of its own).
        let q = self
            .cur_task
            .extras
            .bytes("siginfo_shared")
            .map(|b| b.to_vec())
            .unwrap_or_default();
        let entries = self.queue_entries(&format!("task {} shared", self.pid), &q)?;
        let mask = crate::v21::siginfo::queue(&entries)
            .map(|q| crate::v21::siginfo::mask_of(&q))
            .unwrap_or(0);
        self.signal_recs.push((
            code("SIGPENDING"),
            sigpending_payload(mask, &entries)[..].to_vec(),
        ));
        Ok(())
    }

    pub(super) fn end_task(&mut self) -> Result<()> {
        if !self.in_task {
            return Ok(());
        }
        if self.itimers.take().is_some() {
            // Not written with the limits (rlimits takes them).
            let why = if self.zombie {
                "of a zombie (ckpt-v21 stores a zombie as its task record and comm only)"
            } else {
                "without resource limits (ckpt-v21 keeps them in the signal object, written with the limits)"
            };
            self.item(format!("task {}: interval timers {why}", self.pid))?;
        }
        if self.signal_ref == 0 && !self.zombie {
            if let Some(q) = self.cur_task.extras.bytes("siginfo_shared") {
                let n = q.len() / SigInfo::LEN;
                self.item(format!(
                    "task {}: {n} shared queued signals without resource limits (ckpt-v21 keeps the shared queue in the signal object, written with the limits)",
                    self.pid
                ))?;
            }
        }
        self.close_mm(None)?;
        self.before_objects()?;
        if self.ns_due {
            self.default_ns()?;
        }
        if !self.zombie {
            self.table()?;
            self.epoll_items()?;
            let b = self.task_objs_record()?;
            self.rec("TASK_OBJS", b.clone())?;
            for (c, p) in std::mem::take(&mut self.signal_recs) {
                self.raw(c, &p)?;
            }
            if !self.sig_override.is_empty() {
                // The private SIGPENDING first, then SIGNAL_TASK (the
                // kernel's order, whichever order the source had).
                let mut recs = std::mem::take(&mut self.sig_override);
                recs.sort_by_key(|(c, _)| *c != code("SIGPENDING"));
                for (c, p) in recs {
                    self.raw(c, &p)?;
                }
            } else {
                let s = std::mem::take(&mut self.leader_sig);
                self.signal_task(s)?;
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
                self.task_ns_record()?;
                self.rec("TASK_OBJS", b.clone())?;
                self.signal_task(SigState::of(t))?;
            }
        }
        self.lost_pipes()?;
        self.in_task = false;
        Ok(())
    }

    /// An item for every pipe no file referred to (its buffer has no place).
    pub(super) fn lost_pipes(&mut self) -> Result<()> {
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

/// A SIGPENDING payload (after the record header): `nr_pending`, the mask,
/// the entries.
pub(super) fn sigpending_payload(set: u64, entries: &[u8]) -> Vec<u8> {
    let sp = T.st("SIGPENDING");
    let mut b = sp.zeroed();
    sp.put(&mut b, "nr_pending", (entries.len() / 48) as u64);
    sp.put(&mut b, "signal", set);
    b.extend_from_slice(entries);
    b.split_off(8)
}
