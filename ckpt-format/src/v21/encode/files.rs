//! The ckpt-v21 encoder's file records: FILE_TABLE, file objects, object
//! order and numbering, TASK_OBJS.

use super::*;

impl<W: Write> Encoder<W> {
    pub(super) fn table(&mut self) -> Result<()> {
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

    pub(super) fn file(&mut self, f: &File) -> Result<()> {
        self.table()?;
        if f.id == 0 || f.id > i32::MAX as u32 {
            self.item(format!("file id {} is not a positive s32 objref", f.id))?;
        }
        self.extras(&format!("file {}", f.id), &f.extras, &FILE_EXTRAS)?;
        self.objref("FILE", f.id)?;
        let epoll = self.next_eventpoll.take();
        if let Some(e) = self.next_eventfd.take() {
            if epoll.is_some() {
                self.item(format!(
                    "file {}: an eventfd and an eventpoll at once (written as the eventfd)",
                    f.id
                ))?;
            }
            return self.eventfd(f, &e);
        }
        if let Some(ep) = epoll {
            return self.epoll(f, ep);
        }
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
    pub(super) fn order(&mut self, ev: &Event<'_>) -> Result<()> {
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
    pub(super) fn model_id(&mut self, id: u32) -> Result<()> {
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
    pub(super) fn task_objs_record(&mut self) -> Result<Vec<u8>> {
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
            // (The numbers ckpt gives its own objects are not named: a dry
            // run, which lists the items before the plan is complete, numbers
            // them without knowing every File and Pipe id yet.)
            let why = if i < 2 {
                format!("ckpt-v21 numbers the task's {kind} itself")
            } else if r != 0 {
                format!("the task has a {kind} of its own")
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
            let written = if r != 0 {
                format!("the objref of the task's own {kind}")
            } else {
                st.get_i(&b, n).to_string()
            };
            self.item(format!(
                "TASK_OBJS record kept from the source: `{n}` = {u}, but {why}; written as {written}"
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

    /// An eventfd: FILE_EVENTFD, nothing after it (`super::super::anon`).
    fn eventfd(&mut self, f: &File, e: &Eventfd) -> Result<()> {
        use crate::v21::anon::{eventfd_record, EVENTFD_PATH};
        if f.kind != FileKind::Other || f.path != EVENTFD_PATH || f.pipe.is_some() {
            self.item(format!(
                "file {}: an eventfd of kind {} with path `{}` (a ckpt-v21 eventfd has no path or kind; it reads back as an `{}` of kind other)",
                f.id,
                f.kind.name(),
                String::from_utf8_lossy(&f.path),
                String::from_utf8_lossy(EVENTFD_PATH)
            ))?;
        }
        if e.count > u32::MAX as u64 {
            self.item(format!(
                "file {}: eventfd count {} above 2^32-1 (a v21 restart re-creates an eventfd with eventfd2(count, flags), whose count is 32 bits; written as it is)",
                f.id, e.count
            ))?;
        }
        self.out.put(&eventfd_record(f, e))
    }

    /// An epoll file: its FILE record now, its targets in EPOLL_ITEMS after
    /// the task's file table (`epoll_items`).
    fn epoll(&mut self, f: &File, ep: Eventpoll) -> Result<()> {
        use crate::v21::anon::{epoll_record, EVENTPOLL_PATH};
        if f.kind != FileKind::Other || f.path != EVENTPOLL_PATH || f.pipe.is_some() {
            self.item(format!(
                "file {}: an eventpoll of kind {} with path `{}` (a ckpt-v21 epoll file has no path or kind; it reads back as an `{}` of kind other)",
                f.id,
                f.kind.name(),
                String::from_utf8_lossy(&f.path),
                String::from_utf8_lossy(EVENTPOLL_PATH)
            ))?;
        }
        self.epolls.push((f.id, ep.targets));
        self.out.put(&epoll_record(f))
    }

    /// EPOLL_ITEMS (and its BUFFER) of each epoll file of the task, in order:
    /// a target names its file by the objref of the file the task's fd of
    /// that number holds.
    pub(super) fn epoll_items(&mut self) -> Result<()> {
        for (id, targets) in std::mem::take(&mut self.epolls) {
            let mut items = Vec::with_capacity(targets.len());
            for t in targets {
                match self.fd_files.get(&t.fd) {
                    Some(&r) => items.push((t, r)),
                    None => self.item(format!(
                        "eventpoll file {id}: target fd {} is not an fd of the task (a ckpt-v21 epoll item names its target's file object; not written)",
                        t.fd
                    ))?,
                }
            }
            let (h, buf) = crate::v21::anon::epoll_items(id, &items);
            self.out.put(&h)?;
            if let Some(b) = buf {
                self.raw(code("BUFFER"), &b)?;
            }
        }
        Ok(())
    }
}
