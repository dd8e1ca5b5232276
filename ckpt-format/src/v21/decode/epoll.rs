//! The ckpt-v21 decoder's EPOLL_ITEMS: the targets of an epoll file of the
//! task's file table, put on its File event (held with the table's events
//! until the signal object is read; see `defer`).

use super::*;

impl<I: Input> Inner<I> {
    /// EPOLL_ITEMS and its BUFFER (when it has items): the targets of the
    /// epoll file it names, each a target fd of the task naming the file
    /// that fd holds (the model names a target by its fd).
    /// EPOLL_ITEMS naming no epoll file of the task's (held) file table is
    /// kept as records, with its BUFFER.
    pub(super) fn epoll_items(&mut self) -> Result<Option<Event<'_>>> {
        let (h, p) = self.expect_struct("EPOLL_ITEMS")?;
        let st = T.st("EPOLL_ITEMS");
        let ep = st.get_i(&p, "epfile_objref") as i32;
        let n = st.get(&p, "num_items");
        let ours = self.defer.as_ref().is_some_and(|d| {
            d.iter().any(
                |e| matches!(e, Event::File(f) if f.id == ep as u32 && f.records.eventpoll.is_some()),
            )
        });
        if !ours {
            if n > 0 && self.fr.peek()?.is_some_and(|b| b.code == code("BUFFER")) {
                let (bh, b) = self.fr.take()?;
                self.queue.push_back(unknown(&bh, b));
            }
            return Ok(Some(unknown(&h, &p[8..])));
        }
        let items = if n == 0 {
            Vec::new()
        } else {
            let esz = T.st("EPOLL_ITEM").size as u64;
            let len = n
                .checked_mul(esz)
                .and_then(|l| l.checked_add(HDR))
                .filter(|&l| l <= crate::input::MAX_RECORD_LEN)
                .ok_or_else(|| {
                    h.err(ErrorKind::TooLarge {
                        found: n,
                        limit: crate::input::MAX_RECORD_LEN / esz,
                    })
                })?;
            let (bh, b) = self.expect("BUFFER", Some(len))?;
            crate::v21::anon::parse_epoll_items(&b[8..], n as usize).ok_or_else(|| {
                bh.err(ErrorKind::Invalid {
                    found: "an epoll item with non-zero padding".into(),
                    expected: "zero padding".into(),
                })
            })?
        };
        let mut targets = Vec::with_capacity(items.len());
        for (t, r) in items {
            match self.task_fds.get(&t.fd) {
                Some(&f) if f == r => targets.push(t),
                other => {
                    return Err(h.err(ErrorKind::Invalid {
                        found: format!("an epoll item of fd {} naming file objref {r}", t.fd),
                        expected: format!(
                            "the file of the task's fd {} ({}): the model names an epoll target by its fd",
                            t.fd,
                            other.map_or("no such fd".to_string(), |f| format!("objref {f}"))
                        ),
                    }))
                }
            }
        }
        let file = self.defer.as_mut().and_then(|d| {
            d.iter_mut().find_map(|e| match e {
                Event::File(f) if f.id == ep as u32 && f.records.eventpoll.is_some() => Some(f),
                _ => None,
            })
        });
        match file {
            Some(f) => {
                f.records.eventpoll = Some(Eventpoll { targets });
                self.step()
            }
            None => Err(h.err(ErrorKind::Invalid {
                found: format!("EPOLL_ITEMS of objref {ep}"),
                expected:
                    "the items of an epoll file of this task's file table, after its last FILE_DESC"
                        .into(),
            })),
        }
    }
}
