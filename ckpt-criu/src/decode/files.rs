//! A task's descriptors and the file objects behind them: regular files, pipes, and the
//! live objects of `objects.rs` / `sockets.rs` (eventfd, timerfd, signalfd, eventpoll,
//! inotify, pty slaves, unix/inet/netlink sockets with their queues). What the model has
//! no record for is a loss.

use super::*;
use crate::{objects, sockets};

/// Deepest chain of files in flight in unix queues (a socket in flight holding a socket
/// in flight ...) followed; deeper (or a cycle) is a loss.
const MAX_IN_FLIGHT_DEPTH: usize = 8;

impl<'a> Decoder<'a> {
    pub(super) fn build_files(&mut self, pid: u32) -> Result<()> {
        let ids_name = format!("ids-{pid}.img");
        let Some(b) = self.img.file(&ids_name) else {
            return Ok(());
        };
        let ids: pb::TaskKobjIdsEntry = ImageFile::expect(&ids_name, b, magic::IDS)?.one()?;
        let name = format!("fdinfo-{}.img", ids.files_id);
        let Some(b) = self.img.file(&name) else {
            return Ok(());
        };
        let fds: Vec<pb::FdinfoEntry> = ImageFile::expect(&name, b, magic::FDINFO)?.all()?;
        for fd in fds {
            let what = format!("task {pid}: fd {}", fd.fd);
            let Some(fe) = self.t.files.get(&fd.id).cloned() else {
                return Err(CriuError::new(
                    &name,
                    0,
                    format!("fd {} refers to file id {} not in files.img", fd.fd, fd.id),
                    "every fd's file in files.img",
                ));
            };
            let file_id = match self.file_object(&fe, &what, Some((pid, fd.fd)), 0)? {
                Some(id) => id,
                None => continue,
            };
            self.items.push_back(Item::Ev(Event::Fd(Fd {
                fd: fd.fd as i32,
                cloexec: fd.flags & 1 != 0,
                file: file_id,
            })));
        }
        Ok(())
    }

    /// The model id of a CRIU file, defining it (and its pipe, and the files in flight in
    /// a socket's queue) on first use; `None` (and a loss) for what the model cannot
    /// carry. `owner`: the task and fd it is reached through (its flock/OFD locks are
    /// found by them); `depth`: how many queues deep it is in flight.
    pub(super) fn file_object(
        &mut self,
        fe: &pb::FileEntry,
        what: &str,
        owner: Option<(u32, u32)>,
        depth: usize,
    ) -> Result<Option<u32>> {
        let id = self.id(0, fe.id);
        if self.defined.contains(&id) {
            return Ok(Some(id));
        }
        if self.lost.contains(&fe.id) {
            return Ok(None);
        }
        let mut file = if let Some(r) = &fe.reg {
            let mode = r.mode.unwrap_or(0o100_644);
            let kind = match mode & 0o170_000 {
                0o040_000 => FileKind::Directory,
                0o020_000 => FileKind::CharDevice,
                0o100_000 | 0 => FileKind::Regular,
                _ => FileKind::Other,
            };
            File {
                id,
                kind,
                path: r.name.as_bytes().to_vec(),
                flags: r.flags,
                mode,
                pos: r.pos,
                pipe: None,
                records: Default::default(),
                extras: Default::default(),
            }
        } else if let Some(p) = &fe.pipe {
            let pid = self.id(1, p.pipe_id);
            if self.defined.insert(pid) {
                let data = self.t.pipe_data.get(&p.pipe_id).copied().unwrap_or(&[]);
                self.items.push_back(Item::Ev(Event::Pipe(Pipe {
                    id: pid,
                    data: Cow::Owned(data.to_vec()),
                })));
            }
            File {
                id,
                kind: FileKind::Pipe,
                path: format!("pipe:[{}]", p.pipe_id).into_bytes(),
                flags: p.flags,
                mode: 0o010_600,
                pos: 0,
                pipe: Some(pid),
                records: Default::default(),
                extras: Default::default(),
            }
        } else {
            let shape = match self.live_object(fe, what, depth)? {
                Some(Ok(s)) => s,
                Some(Err(loss)) => {
                    self.lose(fe.id, format!("{what}: {loss}"));
                    return Ok(None);
                }
                None => {
                    self.lose(fe.id, format!("{what}: {}", crate::info::describe_file(fe)));
                    return Ok(None);
                }
            };
            File {
                id,
                kind: shape.kind,
                path: shape.path,
                flags: shape.flags,
                mode: shape.mode,
                pos: 0,
                pipe: None,
                records: shape.records,
                extras: Default::default(),
            }
        };
        if let Some((pid, fd)) = owner {
            let locks = objects::file_locks(&self.t.objects, pid, fd);
            if !locks.is_empty() {
                file.records.locks = Some(ckpt_format::model::FileLocks { locks });
            }
        }
        self.defined.insert(id);
        self.items.push_back(Item::Ev(Event::File(file)));
        Ok(Some(id))
    }

    fn lose(&mut self, criu_id: u32, loss: String) {
        self.lost.insert(criu_id);
        self.losses.push(loss);
    }

    /// The File shape of a live object (`None`: not one of the kinds mapped; `Some(Err)`:
    /// one the model cannot carry as dumped, with the reason). A socket's files in flight
    /// are defined here, before it.
    fn live_object(
        &mut self,
        fe: &pb::FileEntry,
        what: &str,
        depth: usize,
    ) -> Result<Option<std::result::Result<objects::Shape, String>>> {
        if let Some(r) = objects::anon_file(&self.t.objects, fe) {
            return Ok(Some(r));
        }
        if let Some(t) = &fe.tty {
            let reg = t.regf_id.and_then(|r| self.reg_name(r));
            return Ok(Some(objects::tty(&self.t.objects, t, reg)));
        }
        let (m, ino) = if let Some(s) = &fe.usk {
            (sockets::unix(s, &self.t.unix_names, &self.t.queues), s.ino)
        } else if let Some(s) = &fe.isk {
            (sockets::inet(self.img, s)?, s.ino)
        } else if let Some(s) = &fe.nlsk {
            (sockets::netlink(s), s.ino)
        } else {
            return Ok(None);
        };
        if let Some(first) = m.losses.first() {
            let rest = m.losses.len() - 1;
            let more = if rest > 0 {
                format!(" (and {rest} more: {})", m.losses[1..].join("; "))
            } else {
                String::new()
            };
            return Ok(Some(Err(format!("{first}{more}"))));
        }
        let mut records = m.records;
        // The files in flight first, then the queue naming them by model id.
        let mut ids = HashMap::new();
        for criu in m.in_flight {
            if ids.contains_key(&criu) {
                continue;
            }
            let Some(inner) = self.t.files.get(&criu).cloned() else {
                return Ok(Some(Err(format!(
                    "socket:[{ino}]: file id {criu} in flight in its queue is not in files.img"
                ))));
            };
            if depth >= MAX_IN_FLIGHT_DEPTH || !self.defining.insert(fe.id) {
                return Ok(Some(Err(format!(
                    "socket:[{ino}]: files in flight in its queue {depth} deep or in a cycle"
                ))));
            }
            let got = self.file_object(
                &inner,
                &format!("{what}: in flight in socket:[{ino}]"),
                None,
                depth + 1,
            );
            self.defining.remove(&fe.id);
            match got? {
                Some(mid) => ids.insert(criu, mid),
                None => {
                    return Ok(Some(Err(format!(
                        "socket:[{ino}]: a file in flight in its queue is not carried"
                    ))))
                }
            };
        }
        if let Some(q) = records.queue.as_mut() {
            for m in &mut q.messages {
                for f in &mut m.files {
                    match ids.get(f) {
                        Some(&mid) => *f = mid,
                        None => {
                            return Ok(Some(Err(format!(
                                "socket:[{ino}]: file id {f} in flight was not defined"
                            ))))
                        }
                    }
                }
            }
        }
        Ok(Some(Ok(objects::Shape {
            kind: FileKind::Socket,
            path: format!("socket:[{ino}]").into_bytes(),
            flags: fe
                .usk
                .as_ref()
                .map(|s| s.flags)
                .or(fe.isk.as_ref().map(|s| s.flags))
                .or(fe.nlsk.as_ref().map(|s| s.flags))
                .unwrap_or(2)
                & !0o2_000_000,
            mode: 0o140_777,
            records: ckpt_format::model::FileRecords {
                sock: records,
                ..Default::default()
            },
        })))
    }
}
