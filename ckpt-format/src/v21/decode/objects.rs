//! The ckpt-v21 decoder's objects: OBJREF definitions, file objects, pipes,
//! kept (undecoded) objects and VMAs.

use super::*;

impl<I: Input> Inner<I> {
    /// A file object; `Some(record)` for a file of a kind the model does not
    /// carry (socket, tty, epoll, eventfd: kept as records by the caller).
    pub(super) fn file_obj(&mut self, r: i32) -> Result<Option<(Hdr, Vec<u8>)>> {
        let h = self.fr.peek()?.ok_or_else(|| self.missing("FILE"))?;
        if h.code != code("FILE") || h.len < 12 {
            return Err(h.err(ErrorKind::UnexpectedRecord {
                found: format!("{} of {} bytes", h.name(), h.len),
                expected: "FILE after OBJREF(FILE)".into(),
            }));
        }
        let (h, p) = self.expect("FILE", None)?;
        let ftype = T.st("FILE").get(&p, "f_type") as u32;
        let st = match ftype {
            L::FILE_GENERIC => T.st("FILE"),
            L::FILE_PIPE => T.st("FILE_PIPE"),
            L::FILE_EVENTFD => {
                // One ckpt writes becomes a File with its eventfd; another
                // (another kernel's flags) is kept as records.
                // (Only inside a file table, where ckpt writes file objects.)
                let file = (self.table_ref != 0)
                    .then(|| crate::v21::anon::eventfd_file(r, &p))
                    .flatten();
                return Ok(match file {
                    Some(file) => {
                        self.files.insert(
                            r,
                            FileObj {
                                file,
                                emitted: false,
                            },
                        );
                        None
                    }
                    None => Some((h, p)),
                });
            }
            L::FILE_EPOLL => {
                // Its targets come with EPOLL_ITEMS after the file table.
                let file = (self.table_ref != 0)
                    .then(|| crate::v21::anon::epoll_file(r, &p))
                    .flatten();
                return Ok(match file {
                    Some(file) => {
                        self.files.insert(
                            r,
                            FileObj {
                                file,
                                emitted: false,
                            },
                        );
                        None
                    }
                    None => Some((h, p)),
                });
            }
            L::FILE_SOCKET | L::FILE_TTY => {
                return Ok(Some((h, p)));
            }
            t => {
                return Err(h.err(ErrorKind::BadValue {
                    field: "f_type",
                    found: t as u64,
                    expected: "1 (generic) or 2 (pipe); other file types are not supported".into(),
                }))
            }
        };
        if h.len != st.size as u64 {
            return Err(h.err(ErrorKind::BadLength {
                found: h.len,
                expected: format!("{} (sizeof {})", st.size, st.c_name),
            }));
        }
        let mut extras = Extras::new();
        for n in FILE_EXTRAS {
            let v = st.get(&p, n);
            if v != 0 {
                extras.set_u64(n, v);
            }
        }
        let mut file = File {
            id: r as u32,
            kind: match st.get(&p, "f_mode") as u32 & encode::S_IFMT {
                encode::S_IFDIR => FileKind::Directory,
                encode::S_IFCHR => FileKind::CharDevice,
                encode::S_IFIFO => FileKind::Fifo,
                _ => FileKind::Regular,
            },
            path: Vec::new(),
            flags: st.get(&p, "f_flags") as u32,
            mode: st.get(&p, "f_mode") as u32,
            pos: st.get(&p, "f_pos"),
            pipe: None,
            records: Default::default(),
            extras,
        };
        if ftype == L::FILE_GENERIC {
            let (nh, n) = self.expect("FILE_NAME", None)?;
            match n[8..].split_last() {
                Some((0, path)) => file.path = path.to_vec(),
                _ => {
                    return Err(nh.err(ErrorKind::Invalid {
                        found: "a file name without its NUL".into(),
                        expected: "len = 8 + strlen + 1".into(),
                    }))
                }
            }
        } else {
            let pr = st.get_i(&p, "pipe_objref") as i32;
            file.kind = FileKind::Pipe;
            file.pipe = Some(pr as u32);
            if self.pipes.insert(pr) {
                // The pipe is an object of its own (its inode), defined by
                // its first end and numbered in the same space.
                self.define(&h, pr, T.obj_code("INODE"))?;
                let data = match self.fr.peek()? {
                    Some(b) if b.code == code("PIPE_BUF") => {
                        let (_, d) = self.fr.take()?;
                        d.to_vec()
                    }
                    _ => Vec::new(),
                };
                // Emitted right before the first File naming the pipe: where
                // an encoder writes the buffer, with the pipe's first end.
                self.pending_pipes.insert(pr, data);
            }
        }
        self.files.insert(
            r,
            FileObj {
                file,
                emitted: false,
            },
        );
        Ok(None)
    }

    /// Queue the events of a file's first use: its pipe's buffer if this is
    /// the first end emitted, then the File.
    pub(super) fn emit_file(&mut self, f: File) {
        if let Some(p) = f.pipe {
            if let Some(data) = self.pending_pipes.remove(&(p as i32)) {
                self.queue.push_back(Event::Pipe(Pipe {
                    id: p,
                    data: Cow::Owned(data),
                }));
            }
        }
        self.queue.push_back(Event::File(f));
    }

    /// Record objref `r` (an object of type `ty`) as defined by the record at
    /// `h`; an objref is defined once per image.
    pub(super) fn define(&mut self, h: &Hdr, r: i32, ty: u32) -> Result<()> {
        if let Some(d) = self.defined.get(&r) {
            return Err(h.err(ErrorKind::ObjrefRedefined {
                id: r as u32,
                first: d.offset,
            }));
        }
        self.defined.insert(
            r,
            Def {
                ty,
                offset: h.offset,
                kept: false,
            },
        );
        Ok(())
    }

    /// Mark objref `r` as kept as records of the image (not decoded).
    pub(super) fn keep(&mut self, r: i32) {
        if let Some(d) = self.defined.get_mut(&r) {
            d.kept = true;
        }
    }

    /// A signal object: SIGNAL and the shared SIGPENDING, announced by an
    /// OBJREF (images of issue 20) or, as the kernel writes it, right after
    /// the TASK_OBJS naming it (`objref` None).
    pub(super) fn signal_obj(
        &mut self,
        r: i32,
        objref: Option<(Hdr, Vec<u8>)>,
    ) -> Result<Option<Event<'_>>> {
        let sh = self.fr.peek()?.ok_or_else(|| self.missing("SIGNAL"))?;
        let st = T.st("SIGNAL");
        let plain = sh.code == code("SIGNAL") && sh.len == st.size as u64;
        if !plain {
            self.keep(r);
            return match objref {
                Some((h, p)) => Ok(Some(unknown(&h, &p[8..]))),
                None => {
                    let (sh, sp) = self.fr.take()?;
                    Ok(Some(unknown(&sh, sp)))
                }
            };
        }
        let (_, b) = self.expect_struct("SIGNAL")?;
        // The interval timers become the Task's `itimers` when they are whole
        // microseconds (what the model holds) and the image is read twice (the
        // first pass finds them, the Task event comes before the signal object);
        // a controlling tty, other timer values or a one-pass read keep the
        // object as records.
        let two_pass = self.table.is_some() || self.hold_leader;
        let tty_zero = b[312..].iter().all(|&x| x == 0);
        let timers = crate::v21::siginfo::itimers_of(&b);
        let mut rest_zero = tty_zero
            && match timers {
                Some(None) => true,
                Some(Some(_)) => two_pass,
                None => false,
            };
        if rest_zero && self.hold_leader {
            self.itimers_found = timers.flatten();
        }
        // The shared pending signals follow (images ckpt wrote before
        // the full stream have none): dropped when empty, else the
        // signal object is kept whole.
        let sp = T.st("SIGPENDING");
        let mut pending = None;
        let next = self.fr.peek()?.map(|ph| ph.code);
        if rest_zero && next == Some(code("SIGPENDING")) {
            let (ph, pp) = self.fr.take()?;
            let w = whole(&ph, pp);
            // A queue ckpt decodes (with the mask it implies) goes on the
            // Task when a first pass found it (`shared_found`, then the
            // table); a one-pass decode keeps the object as records.
            let shared = two_pass
                .then(|| shared_queue(&w))
                .flatten()
                .filter(|q| !q.is_empty());
            if let Some(q) = shared {
                if self.hold_leader {
                    self.shared_found = Some(q);
                }
            } else if ph.len != sp.size as u64 || w[8..].iter().any(|&x| x != 0) {
                rest_zero = false;
                pending = Some((ph, w));
            }
        }
        if !rest_zero {
            // itimers or a controlling tty: kept whole, as records.
            self.keep(r);
            self.queue.push_back(unknown(&sh, &b[8..]));
            if let Some((ph, w)) = pending {
                self.queue.push_back(unknown(&ph, &w[8..]));
            }
            return match objref {
                Some((h, p)) => Ok(Some(unknown(&h, &p[8..]))),
                None => Ok(self.queue.pop_front()),
            };
        }
        let lims = b[8..264]
            .chunks_exact(16)
            .map(|x| Rlimit {
                cur: u64::from_le_bytes(x[..8].try_into().unwrap_or([0; 8])),
                max: u64::from_le_bytes(x[8..].try_into().unwrap_or([0; 8])),
            })
            .collect();
        self.signal_ref = r;
        Ok(Some(Event::Rlimits(lims)))
    }

    /// End `defer`: the held events come next, in order.
    pub(super) fn release(&mut self) {
        if let Some(d) = self.defer.take() {
            self.queue.extend(d);
        }
    }

    /// Emit the held Task (and, with a thread table, its threads after it).
    pub(super) fn flush_task(&mut self) -> Event<'static> {
        let t = self.pending_task.take().unwrap_or_default();
        if self.table.is_none() && !self.hold_leader {
            // Stream mode: the leader's Thread follows its Task right away.
            if let Some(th) = self.cur_thread.take() {
                self.queue.push_back(Event::Thread(th));
                self.leader_out = true;
            }
        }
        let mut t = t;
        if let Some(tab) = self.table.as_mut() {
            let scanned = tab.pop_front().unwrap_or_default();
            for th in scanned.threads {
                self.queue.push_back(Event::Thread(th));
            }
            if let Some(q) = scanned.shared_pending {
                t.extras.set_bytes("siginfo_shared", &q);
            }
            t.records.itimers = scanned.itimers;
        }
        Event::Task(t)
    }

    pub(super) fn objref(&mut self) -> Result<Option<Event<'_>>> {
        let (h, p) = self.expect_struct("OBJREF")?;
        let ty = T.obj_name(T.st("OBJREF").get(&p, "objtype") as u32);
        if self.pending_task.is_some() && !matches!(ty, "USER_NS" | "USER" | "GROUPINFO" | "CRED") {
            self.held_objref = Some((h, p));
            return Ok(Some(self.flush_task()));
        }
        self.objref_parsed(h, p)
    }

    pub(super) fn objref_parsed(&mut self, h: Hdr, p: Vec<u8>) -> Result<Option<Event<'_>>> {
        let st = T.st("OBJREF");
        let ty = st.get(&p, "objtype") as u32;
        let r = st.get_i(&p, "objref") as i32;
        if self.defer.is_some() && !matches!(T.obj_name(ty), "FILE" | "FILE_TABLE") {
            // Another object than files: the held events go first.
            self.held_objref = Some((h, p));
            self.release();
            return self.step();
        }
        self.define(&h, r, ty)?;
        match T.obj_name(ty) {
            "USER_NS" => {
                let (uh, u) = self.expect_struct("USER_NS")?;
                if T.st("USER_NS").get(&u, "creator_ref") != 0 {
                    return Err(uh.err(ErrorKind::BadValue {
                        field: "creator_ref",
                        found: T.st("USER_NS").get(&u, "creator_ref"),
                        expected: "0 (nested user namespaces are not supported)".into(),
                    }));
                }
                self.user_ns.insert(r);
                self.step()
            }
            "USER" => {
                let (uh, u) = self.expect_struct("USER")?;
                let us = T.st("USER");
                let ns = us.get_i(&u, "userns_ref") as i32;
                if !self.user_ns.contains(&ns) {
                    return Err(uh.err(ErrorKind::ObjrefUndefined { id: ns as u32 }));
                }
                self.users.insert(r, us.get(&u, "uid") as u32);
                self.step()
            }
            "GROUPINFO" => {
                let gh = self.fr.peek()?.ok_or_else(|| self.missing("GROUPINFO"))?;
                let n = if gh.code == code("GROUPINFO") && gh.len >= 16 {
                    (gh.len - 16) / 4
                } else {
                    0
                };
                let (gh, g) = self.expect("GROUPINFO", Some(16 + n * 4))?;
                if T.st("GROUPINFO").get(&g, "ngroups") != n {
                    return Err(gh.err(ErrorKind::BadLength {
                        found: gh.len,
                        expected: format!(
                            "16 + 4 x ngroups ({})",
                            T.st("GROUPINFO").get(&g, "ngroups")
                        ),
                    }));
                }
                let groups = g[12..12 + n as usize * 4]
                    .chunks_exact(4)
                    .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect();
                self.groupinfos.insert(r, groups);
                self.step()
            }
            "CRED" => {
                let (ch, c) = self.expect_struct("CRED")?;
                let st = T.st("CRED");
                let g = |n: &str| st.get(&c, n) as u32;
                let user = st.get_i(&c, "user_ref") as i32;
                let gi = st.get_i(&c, "groupinfo_ref") as i32;
                let Some(&uid) = self.users.get(&user) else {
                    return Err(ch.err(ErrorKind::ObjrefUndefined { id: user as u32 }));
                };
                let Some(groups) = self.groupinfos.get(&gi).cloned() else {
                    return Err(ch.err(ErrorKind::ObjrefUndefined { id: gi as u32 }));
                };
                if uid != g("uid") || st.get(&c, "sec_ref") != 0 || g("securebits") != 0 {
                    return Err(ch.err(ErrorKind::Invalid {
                        found: format!(
                            "user uid {uid}, cred uid {}, sec_ref {}, securebits {}",
                            g("uid"),
                            st.get_i(&c, "sec_ref"),
                            g("securebits")
                        ),
                        expected: "the user of the real uid, no LSM label, no securebits".into(),
                    }));
                }
                let creds = Creds {
                    uid: [g("uid"), g("euid"), g("suid"), g("fsuid")],
                    gid: [g("gid"), g("egid"), g("sgid"), g("fsgid")],
                    groups,
                };
                let mut x = Extras::new();
                if CAP_KEYS.iter().any(|(_, f)| st.get(&c, f) != 0) {
                    for (k, f) in CAP_KEYS {
                        x.set_u64(k, st.get(&c, f));
                    }
                    for k in CAP_ZERO_KEYS {
                        x.set_u64(k, 0);
                    }
                }
                self.creds.insert(r, (creds, x));
                self.step()
            }
            "FS" => {
                self.expect_struct("FS")?;
                let mut names = Vec::new();
                for _ in 0..2 {
                    let (nh, n) = self.expect("FILE_NAME", None)?;
                    match n[8..].split_last() {
                        Some((0, path)) => names.push(path.to_vec()),
                        _ => {
                            return Err(nh.err(ErrorKind::Invalid {
                                found: "a file name without its NUL".into(),
                                expected: "len = 8 + strlen + 1".into(),
                            }))
                        }
                    }
                }
                self.fs_ref = r;
                let cwd = names.pop().unwrap_or_default();
                let root = names.pop().unwrap_or_default();
                Ok(Some(Event::Fs(Fs {
                    cwd,
                    root,
                    umask: 0,
                })))
            }
            "SIGHAND" => {
                let n = self.konst("signal_nsig");
                let (_, b) = self.expect("SIGHAND", Some(HDR + n * 32))?;
                let e = T.st("SIGACTION");
                let acts = b[8..]
                    .chunks_exact(32)
                    .map(|x| SigAction {
                        handler: e.get(x, "_sa_handler"),
                        flags: e.get(x, "sa_flags"),
                        restorer: e.get(x, "sa_restorer"),
                        mask: e.get(x, "sa_mask"),
                    })
                    .collect();
                self.sighand_ref = r;
                Ok(Some(Event::SigActions(acts)))
            }
            "UTS_NS" => {
                let (uh, u) = self.expect_struct("UTS_NS")?;
                if u == uts_record(&self.kernel) {
                    let recs = vec![(h.code, p[8..].to_vec()), (uh.code, u[8..].to_vec())];
                    self.canon_children.insert(r, recs);
                    return self.step();
                }
                self.keep(r);
                self.queue.push_back(unknown(&uh, &u[8..]));
                Ok(Some(unknown(&h, &p[8..])))
            }
            "IPC_NS" => {
                let (ih, i) = self.expect_struct("IPC_NS")?;
                let mut recs = vec![(h.code, p[8..].to_vec()), (ih.code, i[8..].to_vec())];
                let mut ours = i == ipc_ns_record();
                for k in IPC_SECTIONS {
                    match self.fr.peek()? {
                        Some(sh) if sh.code == code("IPC") && sh.len == T.st("IPC").size as u64 => {
                            let (sh, sp) = self.expect_struct("IPC")?;
                            ours &= sp == ipc_section_record(k);
                            recs.push((sh.code, sp[8..].to_vec()));
                            if !ours {
                                break;
                            }
                        }
                        _ => {
                            ours = false;
                            break;
                        }
                    }
                }
                if ours {
                    self.canon_children.insert(r, recs);
                    return self.step();
                }
                // Kept as records (an IPC namespace with objects or other limits).
                self.keep(r);
                for (c, b) in recs.drain(1..) {
                    self.queue.push_back(Event::Unknown(Unknown {
                        revision: Revision::CkptV21,
                        type_code: c,
                        parent: 0,
                        payload: Cow::Owned(b),
                    }));
                }
                Ok(Some(unknown(&h, &p[8..])))
            }
            "NS" => {
                let (nh, n) = self.expect_struct("NS")?;
                let st = T.st("NS");
                let uts = st.get_i(&n, "uts_objref") as i32;
                let ipc = st.get_i(&n, "ipc_objref") as i32;
                let ours = self.canon_children.contains_key(&uts)
                    && self.canon_children.contains_key(&ipc)
                    && st.get(&n, "net_objref") == 0
                    && st.nonzero_padding(&n).is_empty();
                if ours {
                    self.canon_ns.insert(r);
                    return self.step();
                }
                // Kept as records, with the namespaces it names that were
                // dropped as ckpt's own given back as records before it.
                self.keep(r);
                let mut evs = Vec::new();
                for c in [uts, ipc] {
                    if let Some(recs) = self.canon_children.remove(&c) {
                        self.keep(c);
                        for (code, b) in recs {
                            evs.push(Event::Unknown(Unknown {
                                revision: Revision::CkptV21,
                                type_code: code,
                                parent: 0,
                                payload: Cow::Owned(b),
                            }));
                        }
                    }
                }
                evs.push(unknown(&h, &p[8..]));
                evs.push(unknown(&nh, &n[8..]));
                let first = evs.remove(0);
                self.queue.extend(evs);
                Ok(Some(first))
            }
            "SIGNAL" if self.konst("rlimit_nlimits") == 16 => self.signal_obj(r, Some((h, p))),
            "FILE" => {
                if let Some((fh, f)) = self.file_obj(r)? {
                    // A socket, tty, epoll or eventfd file: kept as records
                    // (the objects it names come before it, kept likewise).
                    self.keep(r);
                    self.queue.push_back(unknown(&fh, &f[8..]));
                    return Ok(Some(unknown(&h, &p[8..])));
                }
                // Inside a file table a file is an fd's file: emit it now.
                if self.table_ref != 0 {
                    if let Some(o) = self.files.get_mut(&r) {
                        o.emitted = true;
                        let f = o.file.clone();
                        self.emit_file(f);
                    }
                }
                self.step()
            }
            "FILE_TABLE" => {
                let (th, t) = self.expect_struct("FILE_TABLE")?;
                let n = T.st("FILE_TABLE").get_i(&t, "fdt_nfds");
                if n < 0 {
                    return Err(th.err(ErrorKind::BadValue {
                        field: "fdt_nfds",
                        found: n as u64,
                        expected: "non-negative".into(),
                    }));
                }
                self.table_ref = r;
                if self.in_thread_task || self.signal_ref != 0 || self.defer.is_some() {
                    return self.step();
                }
                // The kernel writes the signal object after TASK_OBJS: hold
                // the file events until it is read (see `defer`).
                self.defer = Some(Vec::new());
                loop {
                    let ev = self.step()?.map(Event::into_owned);
                    match (ev, self.defer.as_mut()) {
                        (Some(e), Some(d)) => d.push(e),
                        (None, Some(_)) => {
                            self.release();
                            return self.step();
                        }
                        (e, None) => return Ok(e),
                    }
                }
            }
            "MM" => {
                let (mh, m) = self.expect_struct("MM")?;
                let st = T.st("MM");
                let g = |n: &str| st.get(&m, n);
                let words = self.konst("at_vector_size");
                let (_, a) = self.expect("BUFFER", Some(HDR + words * 8))?;
                let mut auxv: Vec<u64> = a[8..]
                    .chunks_exact(8)
                    .map(|w| u64::from_le_bytes(w.try_into().unwrap_or([0; 8])))
                    .collect();
                if auxv.iter().all(|&w| w == 0) {
                    auxv.clear();
                } else if let Some(i) = (0..auxv.len()).step_by(2).find(|&i| auxv[i] == 0) {
                    if auxv[i..].iter().all(|&w| w == 0) {
                        auxv.truncate((i + 2).min(auxv.len()));
                    }
                }
                let exe_ref = st.get_i(&m, "exe_objref") as i32;
                let mut extras = Extras::new();
                for n in ["def_flags", "flags"] {
                    if g(n) != 0 {
                        extras.set_u64(if n == "flags" { "mm_flags" } else { n }, g(n));
                    }
                }
                let exe = if exe_ref == 0 {
                    None
                } else {
                    let Some(o) = self.files.get(&exe_ref) else {
                        return Err(mh.err(ErrorKind::ObjrefUndefined { id: exe_ref as u32 }));
                    };
                    put_file_extras(&mut extras, "exe_", &o.file);
                    Some(o.file.path.clone())
                };
                self.mm_ref = r;
                self.vdso = 0;
                self.mm = Mm {
                    start_code: g("start_code"),
                    end_code: g("end_code"),
                    start_data: g("start_data"),
                    end_data: g("end_data"),
                    start_brk: g("start_brk"),
                    brk: g("brk"),
                    start_stack: g("start_stack"),
                    arg_start: g("arg_start"),
                    arg_end: g("arg_end"),
                    env_start: g("env_start"),
                    env_end: g("env_end"),
                    auxv,
                    exe,
                    personality: 0,
                    extras,
                };
                Ok(Some(Event::Mm(self.mm.clone())))
            }
            _ => {
                self.keep(r);
                Ok(Some(unknown(&h, &p[8..])))
            }
        }
    }

    pub(super) fn vma(&mut self) -> Result<Event<'static>> {
        let (h, p) = self.expect_struct("VMA")?;
        let st = T.st("VMA");
        let g = |n: &str| st.get(&p, n);
        let (start, end, flags) = (g("vm_start"), g("vm_end"), g("vm_flags"));
        let mut extras = Extras::new();
        let (kind, file) = match g("vma_type") as u32 {
            L::VMA_VDSO => {
                self.vdso = start;
                (VmaKind::Vdso, None)
            }
            L::VMA_ANON => (derive::anon_kind(start, end, &self.mm), None),
            L::VMA_FILE => {
                let r = st.get_i(&p, "vma_objref") as i32;
                let Some(o) = self.files.get(&r) else {
                    return Err(h.err(ErrorKind::ObjrefUndefined { id: r as u32 }));
                };
                put_file_extras(&mut extras, "", &o.file);
                (VmaKind::File, Some(o.file.path.clone()))
            }
            t => {
                return Err(h.err(ErrorKind::BadValue {
                    field: "vma_type",
                    found: t as u64,
                    expected: "1 (vdso), 2 (anon) or 3 (file); shared memory is not supported"
                        .into(),
                }))
            }
        };
        for n in ["ino_objref", "ino_size"] {
            if g(n) != 0 {
                extras.set_u64(n, g(n));
            }
        }
        if g("vm_page_prot") != derive::default_page_prot(Arch::X86_64, flags) {
            extras.set_u64("vm_page_prot", g("vm_page_prot"));
        }
        Ok(Event::Vma(Vma {
            start,
            end,
            prot: derive::prot_of(flags),
            flags,
            pgoff: g("vm_pgoff"),
            kind,
            file,
            records: Default::default(),
            extras,
        }))
    }
}

/// The shared queue of a SIGPENDING record (whole bytes) as concatenated user
/// siginfos, when every entry maps one-to-one and the mask is the one the
/// queue implies (else `None`: the record is kept).
fn shared_queue(w: &[u8]) -> Option<Vec<u8>> {
    let sp = T.st("SIGPENDING");
    let n = sp.get(w, "nr_pending") as usize;
    let len = n
        .checked_mul(crate::v21::siginfo::ENTRY)?
        .checked_add(sp.size)?;
    if w.len() != len || sp.get(w, "_padding") != 0 {
        return None;
    }
    let q = crate::v21::siginfo::queue(&w[sp.size..]).ok()?;
    if crate::v21::siginfo::mask_of(&q) != sp.get(w, "signal") {
        return None;
    }
    Some(q.iter().flat_map(|s| s.0.iter().copied()).collect())
}
