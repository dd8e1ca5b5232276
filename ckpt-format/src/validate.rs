//! Rules of the model that hold for every revision: the event grammar
//! (a task's mm before its VMAs, at most one mm per task),
//! objrefs defined once and before use, VMAs sorted and disjoint, pages
//! aligned, ascending and inside their VMA, terminators.
//!
//! [`Checker`] is fed events one by one (decoders call it as they go);
//! [`validate`] drives a whole source through it and collects a [`Report`].

use crate::error::{Error, ErrorKind, Result};
use crate::model::*;
use crate::stream::EventSource;
use std::collections::{HashMap, HashSet};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Stage {
    Start,
    Body,
    Ended,
}

#[derive(Clone, Copy, Debug)]
struct OpenVma {
    start: u64,
    end: u64,
    next: u64,
}

/// Checks the revision-independent rules on a stream of events.
#[derive(Debug)]
pub struct Checker {
    stage: Stage,
    page_size: u32,
    in_task: bool,
    prev_vma_end: u64,
    vma: Option<OpenVma>,
    mm_seen: bool,
    has_parent: bool,
    objects: HashMap<u32, (u64, bool)>,
    fds: HashSet<i32>,
}

impl Default for Checker {
    fn default() -> Self {
        Self::new()
    }
}

fn unexpected(offset: u64, found: &str, expected: &str) -> Error {
    Error::new(
        offset,
        ErrorKind::UnexpectedRecord {
            found: found.into(),
            expected: expected.into(),
        },
    )
}

impl Checker {
    /// A checker expecting a header first.
    pub fn new() -> Self {
        Checker {
            stage: Stage::Start,
            page_size: 4096,
            in_task: false,
            prev_vma_end: 0,
            vma: None,
            mm_seen: false,
            has_parent: false,
            objects: HashMap::new(),
            fds: HashSet::new(),
        }
    }

    /// Page size from the header (4096 until a header is seen).
    pub fn page_size(&self) -> u32 {
        self.page_size
    }

    /// True once the tail has been checked.
    pub fn ended(&self) -> bool {
        self.stage == Stage::Ended
    }

    /// Check one event found at byte `offset`.
    pub fn check(&mut self, ev: &Event<'_>, offset: u64) -> Result<()> {
        let kind = ev.kind_name();
        match self.stage {
            Stage::Start if !matches!(ev, Event::Header(_)) => {
                return Err(unexpected(offset, kind, "the header first"))
            }
            Stage::Ended => return Err(unexpected(offset, kind, "nothing after the tail")),
            _ => {}
        }
        let in_vma_ok = matches!(
            ev,
            Event::Pages(_) | Event::ZeroPages(_) | Event::ParentPages(_) | Event::VmaEnd
        ) || matches!(ev, Event::Unknown(_) | Event::Error(_));
        if self.vma.is_some() && !in_vma_ok {
            return Err(Error::new(
                offset,
                ErrorKind::MissingTerminator {
                    expected: "the end of the current VMA's pages (VMA end)",
                },
            ));
        }
        let needs_task = matches!(
            ev,
            Event::Thread(_)
                | Event::Mm(_)
                | Event::Vma(_)
                | Event::Fs(_)
                | Event::SigActions(_)
                | Event::Rlimits(_)
                | Event::Fd(_)
        );
        if needs_task && !self.in_task {
            return Err(unexpected(offset, kind, "a task before task-level state"));
        }
        match ev {
            Event::Header(h) => {
                if self.stage != Stage::Start {
                    return Err(unexpected(offset, kind, "one header only"));
                }
                if !(512..=(1 << 21)).contains(&h.page_size) || !h.page_size.is_power_of_two() {
                    return Err(Error::new(
                        offset,
                        ErrorKind::BadValue {
                            field: "page_size",
                            found: h.page_size as u64,
                            expected: "a power of two from 512 to 2 MiB".into(),
                        },
                    ));
                }
                self.page_size = h.page_size;
                self.has_parent = h.parent.is_some();
                self.stage = Stage::Body;
            }
            Event::Task(_) => {
                self.in_task = true;
                self.prev_vma_end = 0;
                self.mm_seen = false;
                self.fds.clear();
            }
            Event::Mm(_) => {
                if self.mm_seen {
                    return Err(unexpected(offset, kind, "one mm per task"));
                }
                self.mm_seen = true;
            }
            Event::Vma(v) => {
                if !self.mm_seen {
                    return Err(unexpected(offset, kind, "the task's mm before its VMAs"));
                }
                let ps = self.page_size as u64;
                if v.start % ps != 0 || v.end % ps != 0 || v.end <= v.start {
                    return Err(Error::new(
                        offset,
                        ErrorKind::BadValue {
                            field: "vma range",
                            found: v.start,
                            expected: format!(
                                "page-aligned start < end (found {:#x}..{:#x})",
                                v.start, v.end
                            ),
                        },
                    ));
                }
                if v.start < self.prev_vma_end {
                    return Err(Error::new(
                        offset,
                        ErrorKind::VmaOrder {
                            start: v.start,
                            prev_end: self.prev_vma_end,
                        },
                    ));
                }
                self.prev_vma_end = v.end;
                self.vma = Some(OpenVma {
                    start: v.start,
                    end: v.end,
                    next: v.start,
                });
            }
            Event::Pages(p) => {
                let Some(mut vma) = self.vma else {
                    return Err(unexpected(offset, kind, "pages inside a VMA"));
                };
                let ps = self.page_size as u64;
                let want = (p.addrs.len() as u64).checked_mul(ps);
                if want != Some(p.data.len() as u64) {
                    return Err(Error::new(
                        offset,
                        ErrorKind::BadLength {
                            found: p.data.len() as u64,
                            expected: format!("{} pages of {ps} bytes", p.addrs.len()),
                        },
                    ));
                }
                for (start, count) in p.addrs.runs() {
                    self.check_run(&mut vma, start, count, offset)?;
                }
                self.vma = Some(vma);
            }
            Event::ZeroPages(z) => {
                let Some(mut vma) = self.vma else {
                    return Err(unexpected(offset, kind, "zero pages inside a VMA"));
                };
                if z.count == 0 {
                    return Err(Error::new(
                        offset,
                        ErrorKind::BadValue {
                            field: "zero page count",
                            found: 0,
                            expected: "at least 1".into(),
                        },
                    ));
                }
                self.check_run(&mut vma, z.start, z.count, offset)?;
                self.vma = Some(vma);
            }
            Event::ParentPages(z) => {
                let Some(mut vma) = self.vma else {
                    return Err(unexpected(offset, kind, "parent pages inside a VMA"));
                };
                if !self.has_parent {
                    return Err(unexpected(
                        offset,
                        kind,
                        "parent pages only in an image with a parent (header)",
                    ));
                }
                if z.count == 0 {
                    return Err(Error::new(
                        offset,
                        ErrorKind::BadValue {
                            field: "parent page count",
                            found: 0,
                            expected: "at least 1".into(),
                        },
                    ));
                }
                self.check_run(&mut vma, z.start, z.count, offset)?;
                self.vma = Some(vma);
            }
            Event::VmaEnd => {
                if self.vma.take().is_none() {
                    return Err(unexpected(offset, kind, "a VMA end only after a VMA"));
                }
            }
            Event::Pipe(p) => self.define(p.id, offset, true)?,
            Event::File(f) => {
                if let Some(pipe) = f.pipe {
                    match self.objects.get(&pipe) {
                        Some((_, true)) => {}
                        Some((_, false)) => {
                            return Err(Error::new(
                                offset,
                                ErrorKind::BadValue {
                                    field: "pipe",
                                    found: pipe as u64,
                                    expected: "the id of a pipe object".into(),
                                },
                            ))
                        }
                        None => {
                            return Err(Error::new(offset, ErrorKind::ObjrefUndefined { id: pipe }))
                        }
                    }
                }
                self.define(f.id, offset, false)?;
            }
            Event::Fd(fd) => {
                match self.objects.get(&fd.file) {
                    Some((_, false)) => {}
                    Some((_, true)) => {
                        return Err(Error::new(
                            offset,
                            ErrorKind::BadValue {
                                field: "fd file",
                                found: fd.file as u64,
                                expected: "the id of a file object, not a pipe".into(),
                            },
                        ))
                    }
                    None => {
                        return Err(Error::new(
                            offset,
                            ErrorKind::ObjrefUndefined { id: fd.file },
                        ))
                    }
                }
                if fd.fd < 0 || !self.fds.insert(fd.fd) {
                    return Err(Error::new(
                        offset,
                        ErrorKind::BadValue {
                            field: "fd",
                            found: fd.fd as u32 as u64,
                            expected: "a non-negative fd number, once per task".into(),
                        },
                    ));
                }
            }
            Event::Tail => {
                self.stage = Stage::Ended;
            }
            Event::Thread(_)
            | Event::Fs(_)
            | Event::SigActions(_)
            | Event::Rlimits(_)
            | Event::Error(_)
            | Event::Unknown(_) => {}
        }
        Ok(())
    }

    /// `count` pages from `start`: aligned, ascending, inside the VMA. O(1).
    fn check_run(&self, vma: &mut OpenVma, start: u64, count: u64, offset: u64) -> Result<()> {
        let ps = self.page_size as u64;
        if start % ps != 0 {
            return Err(Error::new(offset, ErrorKind::PageUnaligned { addr: start }));
        }
        let outside = || {
            Error::new(
                offset,
                ErrorKind::PageOutsideVma {
                    addr: start,
                    start: vma.start,
                    end: vma.end,
                },
            )
        };
        if start < vma.start || start >= vma.end {
            return Err(outside());
        }
        if start < vma.next {
            return Err(Error::new(
                offset,
                ErrorKind::PageOrder {
                    addr: start,
                    prev: vma.next.saturating_sub(ps),
                },
            ));
        }
        let last = count
            .checked_sub(1)
            .and_then(|c| c.checked_mul(ps))
            .and_then(|d| start.checked_add(d))
            .filter(|&l| l < vma.end)
            .ok_or_else(outside)?;
        vma.next = last + ps;
        Ok(())
    }

    fn define(&mut self, id: u32, offset: u64, is_pipe: bool) -> Result<()> {
        if id == 0 {
            return Err(Error::new(
                offset,
                ErrorKind::BadValue {
                    field: "objref",
                    found: 0,
                    expected: "a non-zero object id".into(),
                },
            ));
        }
        if let Some((first, _)) = self.objects.get(&id) {
            return Err(Error::new(
                offset,
                ErrorKind::ObjrefRedefined { id, first: *first },
            ));
        }
        self.objects.insert(id, (offset, is_pipe));
        Ok(())
    }

    /// Check that the stream ended properly; `offset` is where it ended.
    pub fn finish(&self, offset: u64) -> Result<()> {
        if self.stage != Stage::Ended {
            return Err(Error::new(
                offset,
                ErrorKind::MissingTerminator {
                    expected: "the tail",
                },
            ));
        }
        Ok(())
    }
}

/// What [`validate`] found.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Events read.
    pub events: u64,
    /// Pages with contents.
    pub pages: u64,
    /// Pages elided as zero.
    pub zero_pages: u64,
    /// Pages whose contents are in the parent image.
    pub parent_pages: u64,
    /// The first violation, if any (readers stop at the first one).
    pub error: Option<Error>,
}

/// Read every event of `src`, applying the model rules on top of whatever the
/// source's revision already checks. Returns a report; `report.error` is the
/// first problem found.
pub fn validate(src: &mut dyn EventSource) -> Report {
    let mut r = Report::default();
    let mut c = Checker::new();
    loop {
        let ev = match src.next_event() {
            Ok(Some(ev)) => ev,
            Ok(None) => break,
            Err(e) => {
                r.error = Some(e);
                return r;
            }
        };
        r.events += 1;
        match &ev {
            Event::Pages(p) => r.pages += p.addrs.len() as u64,
            Event::ZeroPages(z) => r.zero_pages = r.zero_pages.saturating_add(z.count),
            Event::ParentPages(z) => r.parent_pages = r.parent_pages.saturating_add(z.count),
            _ => {}
        }
        let res = c.check(&ev, 0);
        drop(ev);
        if let Err(mut e) = res {
            // The event borrowed the source; its offset is known only now.
            e.offset = src.offset();
            r.error = Some(e);
            return r;
        }
    }
    if let Err(e) = c.finish(src.offset()) {
        r.error = Some(e);
    }
    r
}
