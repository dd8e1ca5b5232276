//! The ckpt-v21 decoder's record loop: `prime` (read-ahead of a task's first
//! records) and `step` (one record to events).

use super::*;

impl<I: Input> Inner<I> {
    /// Read ahead to the first thread, so that the header can say which FPU
    /// facts are derivable (see docs/MODEL.md), then queue the events read.
    pub(super) fn prime(&mut self) -> Result<()> {
        self.primed = true;
        let mut first_fpu = None;
        loop {
            let ev = match self.step()? {
                None => break,
                Some(ev) => ev.into_owned(),
            };
            let stop = match &ev {
                Event::Thread(t) => match &t.fpu {
                    Some(f) => {
                        first_fpu = Some((f.kind, f.data.len()));
                        true
                    }
                    None => false,
                },
                Event::Tail | Event::Mm(_) | Event::Vma(_) => true,
                _ => self.ahead.len() > 256,
            };
            self.ahead.push_back(ev);
            if stop {
                break;
            }
        }
        let (dx, ds) = arch_defaults(first_fpu);
        if let Some(Event::Header(h)) = self.ahead.front_mut() {
            let has_xsave = self.has_xsave as u64;
            if has_xsave != dx || self.xstate_size != ds {
                h.extras.set_u64("has_xsave", has_xsave);
                h.extras.set_u64("xstate_size", self.xstate_size);
            }
        }
        Ok(())
    }

    pub(super) fn step(&mut self) -> Result<Option<Event<'_>>> {
        if let Some(ev) = self.queue.pop_front() {
            return Ok(Some(ev));
        }
        if self.done {
            return Ok(None);
        }
        self.last_offset = self.fr.offset();
        if let Some((h, p)) = self.held_objref.take() {
            return self.objref_parsed(h, p);
        }
        let Some(h) = self.fr.peek()? else {
            return Err(self.missing("a TAIL record"));
        };
        let name = h.name();
        if self.defer.is_some()
            && matches!(
                name,
                "TASK" | "TAIL" | "SIGNAL_TASK" | "SIGPENDING" | "ERROR" | "SIGNAL"
            )
        {
            let bare = name == "SIGNAL" && self.bare_signal.is_some();
            self.release();
            if !bare {
                return self.step();
            }
        }

        if self.pending_task.is_some() && !matches!(name, "THREAD" | "OBJREF" | "TASK_CREDS") {
            return Ok(Some(self.flush_task()));
        }
        if matches!(name, "TASK" | "TAIL") {
            if let Some(t) = self.cur_thread.take() {
                if self.table.is_none() {
                    return Ok(Some(Event::Thread(t)));
                }
            }
            // The end of a model task (a thread's TASK continues its leader's).
            let thread_next = name == "TASK"
                && self
                    .pids
                    .get(self.task_idx)
                    .is_some_and(|ids| ids[0] != ids[2]);
            if !thread_next {
                if let Some(ev) = self.held_objs.take() {
                    return Ok(Some(ev));
                }
            }
            if name == "TAIL" {
                // A pipe whose ends were never emitted (no fd used them):
                // kept as a Pipe event of the last task, in objref order.
                if let Some(&r) = self.pending_pipes.keys().min() {
                    let data = self.pending_pipes.remove(&r).unwrap_or_default();
                    return Ok(Some(Event::Pipe(Pipe {
                        id: r as u32,
                        data: Cow::Owned(data),
                    })));
                }
            }
        }
        if name == "SIGPENDING" && self.after_signal_task && self.leader_out && !self.in_thread_task
        {
            self.after_signal_task = false;
            let (h, p) = self.fr.take()?;
            pending_queue(&h, &whole(&h, p))?;
            return Ok(Some(unknown(&h, p)));
        }
        if name == "SIGPENDING" && !self.after_signal_task {
            // The kernel's order: a thread's private SIGPENDING, then its
            // SIGNAL_TASK (images of issue 20 have it after SIGNAL_TASK).
            let sp = T.st("SIGPENDING");
            if self.leader_out && !self.in_thread_task {
                let (ph, pp) = self.fr.take()?;
                let w = whole(&ph, pp);
                let empty = ph.len == sp.size as u64 && w[8..].iter().all(|&x| x == 0);
                let st = T.st("SIGNAL_TASK");
                let next = self.fr.peek()?;
                if next.is_some_and(|n| n.code == code("SIGNAL_TASK") && n.len == st.size as u64) {
                    // The leader's pending set in the kernel's place: kept
                    // as a record, but only one that maps.
                    pending_queue(&ph, &w)?;
                }
                if empty
                    && next
                        .is_some_and(|n| n.code == code("SIGNAL_TASK") && n.len == st.size as u64)
                {
                    let (th, tp) = self.expect_struct("SIGNAL_TASK")?;
                    if st.get(&tp, "blocked") == 0 {
                        return self.step();
                    }
                    self.queue.push_back(unknown(&th, &tp[8..]));
                }
                return Ok(Some(unknown(&ph, &w[8..])));
            }
            let (ph, pp) = self.fr.take()?;
            let p = whole(&ph, pp);
            let st = T.st("SIGNAL_TASK");
            let next = self.fr.peek()?;
            if ph.len < sp.size as u64
                || !next.is_some_and(|n| n.code == code("SIGNAL_TASK") && n.len == st.size as u64)
            {
                // Not a thread's pending set in the kernel's place: a record.
                return Ok(Some(unknown(&ph, &p[8..])));
            }
            self.private_pending(&ph, &p)?;
            self.before_signal_task = true;
            return self.step();
        }
        if name == "SIGPENDING" && self.after_signal_task {
            self.after_signal_task = false;
            let (h, p) = self.expect("SIGPENDING", None)?;
            self.private_pending(&h, &p)?;
            return self.step();
        }
        self.after_signal_task = false;
        if h.offset == 0 && name != "HEADER" {
            return Err(h.err(ErrorKind::UnexpectedRecord {
                found: name.into(),
                expected: "HEADER".into(),
            }));
        }
        match name {
            "HEADER" => self.header().map(Some),
            "TAIL" => {
                let (h, p) = self.expect_struct("TAIL")?;
                let magic = T.st("TAIL").get(&p, "magic");
                if magic != crate::detect::CHECKPOINT_MAGIC_TAIL {
                    return Err(h.err(ErrorKind::BadMagic {
                        found: magic,
                        expected: crate::detect::CHECKPOINT_MAGIC_TAIL,
                    }));
                }
                let off = self.fr.offset();
                let extra = self.fr.inp.drain()?;
                if extra > 0 {
                    return Err(Error::new(off, ErrorKind::TrailingData { bytes: extra }));
                }
                self.done = true;
                Ok(Some(Event::Tail))
            }
            "TREE" => {
                let (h, p) = self.expect_struct("TREE")?;
                let n = T.st("TREE").get_i(&p, "nr_tasks");
                let esz = T.st("PIDS").size as u64;
                let max = (crate::input::MAX_RECORD_LEN / esz) as i64;
                if !(0..=max).contains(&n) {
                    return Err(h.err(ErrorKind::BadValue {
                        field: "nr_tasks",
                        found: n as u64,
                        expected: format!("0..={max}"),
                    }));
                }
                let (bh, b) = self.expect("BUFFER", Some(HDR + n as u64 * esz))?;
                let st = T.st("PIDS");
                self.pids.clear();
                for e in b[8..].chunks_exact(esz as usize) {
                    let g = |f: &str| st.get_i(e, f) as i32;
                    if g("depth") != 0 {
                        return Err(bh.err(ErrorKind::BadValue {
                            field: "depth",
                            found: g("depth") as u64,
                            expected: "0 (nested pid namespaces are not supported)".into(),
                        }));
                    }
                    self.pids
                        .push([g("vpid"), g("vppid"), g("vtgid"), g("vpgid"), g("vsid"), 0]);
                }
                self.step()
            }
            "TASK" => {
                let (h, p) = self.expect_struct("TASK")?;
                let Some(ids) = self.pids.get(self.task_idx).copied() else {
                    return Err(h.err(ErrorKind::Invalid {
                        found: format!("task number {}", self.task_idx + 1),
                        expected: format!("at most {} tasks (TREE nr_tasks)", self.pids.len()),
                    }));
                };
                self.task_idx += 1;
                let comm_len = self.konst("task_comm_len");
                let (_, comm) = self.expect("STRING", Some(HDR + comm_len))?;
                let st = T.st("TASK");
                let comm = derive::trim_nul(&comm[8..]).to_vec();
                self.task_fields = THREAD_TASK_FIELDS
                    .iter()
                    .map(|(f, _)| (*f, st.get(&p, f)))
                    .collect();
                if ids[0] != ids[2] {
                    // A thread: a task of its own right after its leader.
                    if ids[2] != self.pid || self.leader.pid != self.pid {
                        return Err(h.err(ErrorKind::Invalid {
                            found: format!("thread {} of thread group {}", ids[0], ids[2]),
                            expected: format!(
                                "a thread of the task before it ({}); threads after child tasks are not supported",
                                self.pid
                            ),
                        }));
                    }
                    if st.get(&p, "exit_state") != 0 {
                        return Err(h.err(ErrorKind::BadValue {
                            field: "exit_state",
                            found: st.get(&p, "exit_state"),
                            expected: "0 (zombie threads are not supported)".into(),
                        }));
                    }
                    let l = &self.leader;
                    let mut x = Extras::new();
                    for (k, v, d) in [
                        ("task_state", st.get(&p, "state"), l.state as u64),
                        ("exit_code", st.get(&p, "exit_code"), 0),
                        ("exit_signal", st.get(&p, "exit_signal"), u32::MAX as u64),
                        (
                            "pdeath_signal",
                            st.get(&p, "pdeath_signal"),
                            l.extras.u64("pdeath_signal").unwrap_or(0),
                        ),
                    ] {
                        if v != d {
                            x.set_u64(k, v);
                        }
                    }
                    if comm != l.comm {
                        x.set_bytes("comm", &comm);
                    }
                    self.in_thread_task = true;
                    self.cur_thread = Some(Thread {
                        tid: ids[0],
                        extras: x,
                        ..Thread::default()
                    });
                    return self.step();
                }
                let mut extras = Extras::new();
                let pd = st.get(&p, "pdeath_signal");
                if pd != 0 {
                    extras.set_u64("pdeath_signal", pd);
                }
                self.in_thread_task = false;
                self.pid = ids[0];
                self.mm_ref = 0;
                self.table_ref = 0;
                self.task_fds.clear();
                self.fs_ref = 0;
                self.sighand_ref = 0;
                self.signal_ref = 0;
                self.leader_cred = 0;
                self.cur_thread = None;
                self.leader_out = false;
                self.leader_objs = None;
                let task = Task {
                    pid: ids[0],
                    ppid: ids[1],
                    tgid: ids[2],
                    pgid: ids[3],
                    sid: ids[4],
                    comm,
                    state: st.get(&p, "state") as u32,
                    exit_state: st.get(&p, "exit_state") as u32,
                    exit_code: st.get(&p, "exit_code") as u32,
                    exit_signal: st.get(&p, "exit_signal") as u32,
                    creds: Creds::default(),
                    records: Default::default(),
                    extras,
                };
                self.leader = task.clone();
                self.pending_task = Some(task);
                self.step()
            }
            "TASK_CREDS" => {
                let (h, p) = self.expect_struct("TASK_CREDS")?;
                let st = T.st("TASK_CREDS");
                let (r, e) = (
                    st.get_i(&p, "cred_ref") as i32,
                    st.get_i(&p, "ecred_ref") as i32,
                );
                if r != e {
                    return Err(h.err(ErrorKind::Invalid {
                        found: format!("cred_ref {r}, ecred_ref {e}"),
                        expected:
                            "one cred object (differing real and effective creds are not supported)"
                                .into(),
                    }));
                }
                let Some((c, x)) = self.creds.get(&r).cloned() else {
                    return Err(h.err(ErrorKind::ObjrefUndefined { id: r as u32 }));
                };
                if self.in_thread_task {
                    if r != self.leader_cred {
                        return Err(h.err(ErrorKind::Invalid {
                            found: format!("thread cred_ref {r}"),
                            expected: format!(
                                "the leader's ({}): per-thread creds are not supported",
                                self.leader_cred
                            ),
                        }));
                    }
                    return self.step();
                }
                self.leader_cred = r;
                if let Some(t) = self.pending_task.as_mut() {
                    t.creds = c;
                    t.extras.0.extend(x.0);
                    self.leader = t.clone();
                }
                Ok(Some(self.flush_task()))
            }
            "SIGNAL" if self.bare_signal.is_some() && self.konst("rlimit_nlimits") == 16 => {
                let r = self.bare_signal.take().unwrap_or(0);
                self.define(&h, r, T.obj_code("SIGNAL"))?;
                self.signal_obj(r, None)
            }
            "SIGNAL_TASK" if self.leader_out && !self.in_thread_task => {
                // Stream mode: the leader's Thread went out with an empty mask.
                // An empty mask with an empty SIGPENDING says the same: dropped.
                let (h, p) = self.expect_struct("SIGNAL_TASK")?;
                let sp = T.st("SIGPENDING");
                let next = self.fr.peek()?;
                if T.st("SIGNAL_TASK").get(&p, "blocked") == 0
                    && next.is_some_and(|n| n.code == code("SIGPENDING") && n.len == sp.size as u64)
                {
                    let (ph, pp) = self.fr.take()?;
                    let w = whole(&ph, pp);
                    if w[8..].iter().all(|&x| x == 0) {
                        return self.step();
                    }
                    self.queue.push_back(unknown(&ph, &w[8..]));
                    return Ok(Some(unknown(&h, &p[8..])));
                }
                self.after_signal_task = true;
                Ok(Some(unknown(&h, &p[8..])))
            }
            "SIGNAL_TASK" => {
                let (_, p) = self.expect_struct("SIGNAL_TASK")?;
                if let Some(t) = self.cur_thread.as_mut() {
                    t.sigmask = T.st("SIGNAL_TASK").get(&p, "blocked");
                }
                // Images of issue 20 have the private SIGPENDING after it.
                self.after_signal_task = !std::mem::take(&mut self.before_signal_task);
                self.step()
            }
            "THREAD" => {
                let mut t = match self.thread()? {
                    Event::Thread(t) => t,
                    _ => return self.step(),
                };
                if let Some(prev) = self.cur_thread.take() {
                    // a thread task: tid and TASK-derived extras were set at TASK
                    t.tid = prev.tid;
                    t.extras.0.extend(prev.extras.0);
                } else {
                    t.tid = self.pid;
                }
                let robust = self.task_fields.iter().take(2).any(|(_, v)| *v != 0);
                for ((f, v), (_, k)) in self.task_fields.iter().zip(THREAD_TASK_FIELDS) {
                    let pair = *f == "robust_futex_list" || *f == "robust_futex_head_len";
                    if *v != 0 || (pair && robust) {
                        t.extras.set_u64(k, *v);
                    }
                }
                if t.extras.u64("clear_child_tid").is_some() {
                    for (k, d) in SIGALTSTACK_KEYS {
                        t.extras.set_u64(k, d);
                    }
                    // An empty pending set is implied next to it too (the
                    // SIGPENDING after SIGNAL_TASK, if any, sets the value).
                    t.extras.set_u64("sigpending", 0);
                }
                self.cur_thread = Some(t);
                self.step()
            }
            "OBJREF" => self.objref(),
            "EPOLL_ITEMS" => self.epoll_items(),
            "CONTAINER" => {
                // The container section: dropped when it is the one ckpt
                // writes (no security module), else kept as records.
                let (h, p) = self.expect("CONTAINER", None)?;
                let mut taken = vec![(h, p)];
                for next in ["BUFFER", "LSM_INFO"] {
                    match self.fr.peek()? {
                        Some(nh) if nh.code == code(next) => {
                            let (nh, np) = self.fr.take()?;
                            let w = whole(&nh, np);
                            taken.push((nh, w));
                        }
                        _ => break,
                    }
                }
                let padded = |n: &[u8]| {
                    let mut name = [0u8; L::LSM_NAME_MAX + 1];
                    name[..n.len()].copy_from_slice(n);
                    name
                };
                let ours = taken.len() == 3
                    && taken[0].1.len() == HDR as usize
                    && (taken[1].1[8..] == padded(LSM_NAME)[..]
                        || taken[1].1[8..] == padded(LSM_NAME_OLD)[..])
                    && taken[2].1[8..] == *LSM_INFO;
                if ours {
                    return self.step();
                }
                for (h, p) in &taken[1..] {
                    self.queue.push_back(unknown(h, &p[8..]));
                }
                Ok(Some(unknown(&taken[0].0, &taken[0].1[8..])))
            }
            "TASK_NS" if h.len == T.st("TASK_NS").size as u64 => {
                let (h, p) = self.expect_struct("TASK_NS")?;
                let r = T.st("TASK_NS").get_i(&p, "ns_objref") as i32;
                if self.in_thread_task {
                    if r != self.leader_ns {
                        return Err(h.err(ErrorKind::Invalid {
                            found: format!("a thread's TASK_NS naming objref {r}"),
                            expected: format!("its leader's ({})", self.leader_ns),
                        }));
                    }
                    return self.step();
                }
                self.leader_ns = r;
                if self.canon_ns.contains(&r) {
                    return self.step();
                }
                match self.defined.get(&r) {
                    Some(d) if d.kept && T.obj_name(d.ty) == "NS" => {}
                    Some(d) => {
                        return Err(h.err(ErrorKind::Invalid {
                            found: format!(
                                "ns_objref {r}, an object of type {} (defined at offset {})",
                                T.obj_name(d.ty),
                                d.offset
                            ),
                            expected: "an NS object".into(),
                        }))
                    }
                    None => return Err(h.err(ErrorKind::ObjrefUndefined { id: r as u32 })),
                }
                Ok(Some(unknown(&h, &p[8..])))
            }
            "VMA" => self.vma().map(Some),
            "PGARR" => {
                let (h, p) = self.expect_struct("PGARR")?;
                let n = T.st("PGARR").get(&p, "nr_pages");
                if n == 0 {
                    return Ok(Some(Event::VmaEnd));
                }
                let len = n
                    .checked_mul(8 + PAGE)
                    .and_then(|l| l.checked_add(HDR))
                    .filter(|&l| l <= u32::MAX as u64)
                    .ok_or_else(|| {
                        h.err(ErrorKind::TooLarge {
                            found: n,
                            limit: u32::MAX as u64 / (8 + PAGE),
                        })
                    })?;
                let bh = self
                    .fr
                    .peek()?
                    .ok_or_else(|| self.missing("the page BUFFER"))?;
                if bh.code != code("BUFFER") || bh.len != len {
                    return Err(bh.err(ErrorKind::BadLength {
                        found: bh.len,
                        expected: format!("a BUFFER of {len} bytes for {n} pages"),
                    }));
                }
                let (_, b) = self.fr.take()?;
                let (a, d) = b.split_at((n * 8) as usize);
                let addrs = Addrs::from_le_bytes(a, 8)
                    .ok_or_else(|| Error::invalid(bh.offset, "page addresses", "u64 words"))?;
                // An all-zero chunk of consecutive pages is a zero run (native-1
                // elides zero pages; the v21 encoder writes them out).
                let first = addrs.get(0).unwrap_or(0);
                let run = d.iter().all(|&x| x == 0)
                    && addrs.iter().enumerate().all(|(i, x)| {
                        Some(x)
                            == (i as u64)
                                .checked_mul(PAGE)
                                .and_then(|o| first.checked_add(o))
                    });
                if run {
                    return Ok(Some(Event::ZeroPages(ZeroRun {
                        start: first,
                        count: n,
                    })));
                }
                let chunk = PageChunk {
                    addrs,
                    data: Cow::Borrowed(d),
                };
                Ok(Some(Event::Pages(chunk)))
            }
            "MM_CONTEXT" => {
                let (h, p) = self.expect_struct("MM_CONTEXT")?;
                let st = T.st("MM_CONTEXT");
                let (lh, ldt) = self.expect("MM_CONTEXT_LDT", None)?;
                let nldt = st.get(&p, "nldt");
                let esz = st.get(&p, "ldt_entry_size");
                if nldt.checked_mul(esz) != Some(lh.len - HDR) {
                    return Err(lh.err(ErrorKind::BadLength {
                        found: lh.len,
                        expected: format!("8 + nldt {nldt} x ldt_entry_size {esz}"),
                    }));
                }
                if nldt == 0 && esz == 8 && st.get(&p, "vdso") == self.vdso {
                    return self.step();
                }
                self.queue.push_back(unknown(&lh, &ldt[8..]));
                Ok(Some(unknown(&h, &p[8..])))
            }
            "FILE_DESC" => {
                let (h, p) = self.expect_struct("FILE_DESC")?;
                let st = T.st("FILE_DESC");
                let r = st.get_i(&p, "fd_objref") as i32;
                let cloexec = st.get(&p, "fd_close_on_exec");
                if cloexec > 1 {
                    return Err(h.err(ErrorKind::BadValue {
                        field: "fd_close_on_exec",
                        found: cloexec,
                        expected: "0 or 1".into(),
                    }));
                }
                let Some(obj) = self.files.get_mut(&r) else {
                    return Err(h.err(ErrorKind::ObjrefUndefined { id: r as u32 }));
                };
                self.task_fds
                    .insert(st.get_i(&p, "fd_descriptor") as i32, r);
                let fd = Event::Fd(Fd {
                    fd: st.get_i(&p, "fd_descriptor") as i32,
                    cloexec: cloexec == 1,
                    file: r as u32,
                });
                if !obj.emitted {
                    obj.emitted = true;
                    let f = obj.file.clone();
                    self.emit_file(f);
                    self.queue.push_back(fd);
                    return Ok(self.queue.pop_front());
                }
                Ok(Some(fd))
            }
            "TASK_OBJS" => {
                let (h, p) = self.expect_struct("TASK_OBJS")?;
                let st = T.st("TASK_OBJS");
                let vals = TASK_OBJS_FIELDS.map(|(n, _)| st.get_i(&p, n) as i32);
                if !self.in_thread_task
                    && self.signal_ref == 0
                    && vals[4] > 0
                    && !self.defined.contains_key(&vals[4])
                    && self.fr.peek()?.is_some_and(|n| n.code == code("SIGNAL"))
                {
                    // The signal object follows (defined by its SIGNAL record).
                    self.bare_signal = Some(vals[4]);
                    self.signal_ref = vals[4];
                }
                let own = [
                    self.table_ref,
                    self.mm_ref,
                    self.fs_ref,
                    self.sighand_ref,
                    self.signal_ref,
                ];
                if self.in_thread_task {
                    // A thread shares its leader's objects: the same record.
                    let lead = self.leader_objs.unwrap_or(own);
                    if vals != lead {
                        return Err(h.err(ErrorKind::Invalid {
                            found: format!("a thread's TASK_OBJS naming objrefs {vals:?}"),
                            expected: format!("its leader's ({lead:?})"),
                        }));
                    }
                    return self.step();
                }
                if vals[..2] != own[..2] {
                    return Err(h.err(ErrorKind::Invalid {
                        found: format!("files_objref {}, mm_objref {}", vals[0], vals[1]),
                        expected: format!(
                            "the objects defined for this task ({}, {}); shared tables are not supported",
                            own[0], own[1]
                        ),
                    }));
                }
                self.leader_objs = Some(vals);
                // The objrefs of objects the model decodes are the encoder's to
                // choose (docs/CONVERT.md "Object numbering and order"): a
                // field naming the task's own object is 0 in a kept record.
                let mut template = p.clone();
                let mut kept = false;
                for (i, (field, kind)) in TASK_OBJS_FIELDS.iter().enumerate() {
                    let (v, r) = (vals[i], own[i]);
                    if v == r {
                        st.put(&mut template, field, 0);
                        continue;
                    }
                    if r != 0 {
                        return Err(h.err(ErrorKind::Invalid {
                            found: format!("{field} {v}"),
                            expected: format!("the {kind} object defined for this task ({r})"),
                        }));
                    }
                    // An object kept as records: named by its own number.
                    match self.defined.get(&v) {
                        None => return Err(h.err(ErrorKind::ObjrefUndefined { id: v as u32 })),
                        Some(d) if T.obj_name(d.ty) != *kind => {
                            return Err(h.err(ErrorKind::Invalid {
                                found: format!(
                                    "{field} {v}, an object of type {} (defined at offset {})",
                                    T.obj_name(d.ty),
                                    d.offset
                                ),
                                expected: format!("an object of type {kind}"),
                            }))
                        }
                        Some(d) if !d.kept => {
                            return Err(h.err(ErrorKind::Invalid {
                                found: format!(
                                    "{field} {v}, the {kind} of an earlier task (defined at offset {})",
                                    d.offset
                                ),
                                expected: format!(
                                    "a {kind} object of this task's own; sharing it between processes is not supported"
                                ),
                            }))
                        }
                        Some(_) => kept = true,
                    }
                }
                if kept {
                    // Emitted as the task's last event, where an encoder writes it.
                    self.held_objs = Some(unknown(&h, &template[8..]));
                }
                self.step()
            }
            "ERROR" => {
                let (h, _) = self.expect("ERROR", Some(HDR))?;
                let sh = self
                    .fr
                    .peek()?
                    .ok_or_else(|| self.missing("the error STRING"))?;
                if sh.code != code("STRING") {
                    return Err(h.err(ErrorKind::UnexpectedRecord {
                        found: sh.name().into(),
                        expected: "STRING after ERROR".into(),
                    }));
                }
                let (_, s) = self.fr.take()?;
                let mut m = s;
                if let Some((0, rest)) = m.split_first() {
                    m = rest;
                }
                if let Some((0, rest)) = m.split_last() {
                    m = rest;
                }
                Ok(Some(Event::Error(m.to_vec())))
            }
            _ => {
                let (h, p) = self.fr.take()?;
                Ok(Some(Event::Unknown(Unknown {
                    revision: Revision::CkptV21,
                    type_code: h.code,
                    parent: 0,
                    payload: Cow::Borrowed(p),
                })))
            }
        }
    }

    /// A thread's private SIGPENDING (whole record bytes) onto the current
    /// thread: the mask (`sigpending`) and the queue (`siginfo_pending`). An
    /// empty set is implied next to `clear_child_tid` (the encoder writes a
    /// SIGPENDING for every thread). An entry that does not map one-to-one to
    /// a user siginfo is an error at its offset.
    fn private_pending(&mut self, h: &Hdr, p: &[u8]) -> Result<()> {
        let sp = T.st("SIGPENDING");
        let q = pending_queue(h, p)?;
        if let Some(t) = self.cur_thread.as_mut() {
            let set = sp.get(p, "signal");
            if set != 0 || !q.is_empty() || t.extras.u64("clear_child_tid").is_some() {
                t.extras.set_u64("sigpending", set);
            }
            if !q.is_empty() {
                let b: Vec<u8> = q.iter().flat_map(|s| s.0.iter().copied()).collect();
                t.extras.set_bytes("siginfo_pending", &b);
            }
        }
        Ok(())
    }
}

/// The queue of a thread's SIGPENDING (whole record bytes): its length must
/// be the entries' and every entry must map one-to-one to a user siginfo (an
/// error at the record naming the entry and its offset otherwise).
fn pending_queue(h: &Hdr, p: &[u8]) -> Result<Vec<SigInfo>> {
    let sp = T.st("SIGPENDING");
    let n = if p.len() >= sp.size {
        sp.get(p, "nr_pending")
    } else {
        0
    };
    let want = n
        .checked_mul(crate::v21::siginfo::ENTRY as u64)
        .and_then(|x| x.checked_add(sp.size as u64));
    if want != Some(h.len) {
        return Err(h.err(ErrorKind::BadLength {
            found: h.len,
            expected: format!("24 + 48 x nr_pending ({n})"),
        }));
    }
    let q = crate::v21::siginfo::queue(&p[sp.size..]).map_err(|(i, m)| {
        let at = h.offset + (sp.size + i * crate::v21::siginfo::ENTRY) as u64;
        h.err(ErrorKind::Invalid {
            found: format!("ckpt_siginfo entry {i} (at offset {at}): {m}"),
            expected: "an entry that maps one-to-one to a siginfo_t (docs/V21-STREAM.md \"Queued signals\")".into(),
        })
    })?;
    Ok(q)
}
