//! What the legacy encoders (cr-v5, ckpt-v21) share, below them and below
//! [`crate::convert`]: the [`Plan`] a first pass makes, the loss vocabulary
//! (`Losses`: what a target cannot carry), the [`LegacySink`] and
//! [`LegacyRevision`] traits, the plan-less [`Buffered`] encoder and the
//! counting byte sink. Layers of this crate (checked by tests/layers.rs):
//! layout/framing -> model -> this module -> codecs (native, crv5, v21) -> convert.

use crate::error::{Error, ErrorKind, Result};
use crate::model::*;
use crate::stream::EventSink;
use std::io::{self, BufWriter, Write};
use std::marker::PhantomData;

/// What a legacy encoder must know before it writes the records that count
/// or list what follows (cr-v5 `map_count`; v21 TREE, `map_count`, HEADER_ARCH).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Task identities, in the order of the Task events (extras cleared).
    pub tasks: Vec<Task>,
    /// Number of VMAs after each Mm event, in order.
    pub map_counts: Vec<u32>,
    /// Kind and size of the first FPU area of the image, if any.
    pub first_fpu: Option<(FpuKind, usize)>,
    /// Number of Fd events of each task, in order.
    pub nfds: Vec<u32>,
    /// Object ids the model uses (files, pipes); an encoder numbering objects
    /// of its own picks the lowest ids not in this set, as a kernel would.
    pub ids: std::collections::BTreeSet<u32>,
    /// Thread ids of each task, in the order of its Thread events.
    pub threads: Vec<Vec<i32>>,
    /// Objrefs of objects kept as ckpt-v21 records (OBJREF records passed as
    /// `Unknown`): written under their own numbers, so an encoder numbering
    /// objects of its own skips them too.
    pub kept_refs: std::collections::BTreeSet<u32>,
    /// The own thread (tid = pid) of each task, when it came after other
    /// events of its task (cr-v5 keeps THREAD/CPU last): a revision that
    /// writes a task's thread before its objects (ckpt-v21) takes it from here.
    pub late_threads: Vec<Option<Thread>>,
    /// The current task has had events other than Thread and Pipe.
    pub task_other: bool,
    /// Number of ckpt-v21 records kept as `Unknown` events.
    pub v21_unknowns: u64,
}

impl Plan {
    /// Account for one event.
    pub fn observe(&mut self, ev: &Event<'_>) {
        match ev {
            Event::Task(t) => {
                let mut t = t.clone();
                t.extras = Extras::new();
                let pid = t.pid;
                self.tasks.push(t);
                self.nfds.push(0);
                self.threads.push(Vec::new());
                self.late_threads.push(None);
                self.task_other = false;
                let _ = pid;
            }
            Event::File(f) => {
                self.ids.insert(f.id);
                if let Some(p) = f.pipe {
                    self.ids.insert(p);
                }
            }
            Event::Pipe(p) => {
                self.ids.insert(p.id);
            }
            Event::Fd(_) => {
                if let Some(c) = self.nfds.last_mut() {
                    *c = c.saturating_add(1);
                }
            }
            Event::Mm(_) => self.map_counts.push(0),
            Event::Vma(_) => {
                if let Some(c) = self.map_counts.last_mut() {
                    *c = c.saturating_add(1);
                }
            }
            Event::Unknown(u) => {
                if u.revision == Revision::CkptV21 {
                    self.v21_unknowns += 1;
                }
                if let Some((r, _)) = kept_objref(u) {
                    self.kept_refs.insert(r as u32);
                }
            }
            Event::Thread(t) => {
                let pid = self.tasks.last().map(|x| x.pid);
                if let Some(v) = self.threads.last_mut() {
                    let own = Some(t.tid) == pid && !v.contains(&t.tid);
                    if own && self.task_other {
                        if let Some(l) = self.late_threads.last_mut() {
                            *l = Some(t.clone());
                        }
                    }
                    v.push(t.tid);
                }
                if self.first_fpu.is_none() {
                    if let Some(f) = &t.fpu {
                        self.first_fpu = Some((f.kind, f.data.len()));
                    }
                }
            }
            _ => {}
        }
        if !matches!(
            ev,
            Event::Task(_) | Event::Thread(_) | Event::Pipe(_) | Event::Header(_) | Event::Tail
        ) {
            self.task_other = true;
        }
    }
}

/// A legacy encoder: an [`EventSink`] that also reports what it dropped.
pub trait LegacySink: EventSink {
    /// Items dropped or defaulted (lossy mode).
    fn items(&self) -> &[String];
    /// Lossless rewrites worth telling (zero runs written as pages ...).
    fn notes(&self) -> &[String];
    /// Do not write the ckpt-v21 records kept as `Unknown` events with these
    /// indices (0 = the first such event): list each as an item instead
    /// (a ckpt-v21 reader would not give them back; see `v21::kept`).
    /// Encoders of other revisions ignore it.
    fn skip_unknowns(&mut self, _indices: std::collections::BTreeSet<usize>) {}
}

/// The encoders of one legacy revision (implemented by `crv5::Codec` and
/// `v21::Codec`), so that [`Buffered`] and the converter above the codecs can
/// make them without this module knowing the codecs.
pub trait LegacyRevision {
    /// The revision written.
    const REVISION: Revision;
    /// An encoder writing to `w`, with a plan (`None` = dry run, which
    /// only lists what cannot be carried), lossy or strict.
    fn encoder<'w, W: Write + 'w>(
        w: W,
        plan: Option<Plan>,
        lossy: bool,
    ) -> Box<dyn LegacySink + 'w>;
}

/// A strict legacy encoder without a plan: keeps every event (owned) until
/// the tail, then plans, checks and writes. Memory grows with the image; use
/// [`crate::convert::convert`] / [`crate::convert::convert_slice`] for bounded memory.
pub struct Buffered<W: Write, C: LegacyRevision> {
    w: Option<W>,
    events: Vec<Event<'static>>,
    codec: PhantomData<C>,
}

impl<W: Write, C: LegacyRevision> Buffered<W, C> {
    /// Buffer events for `C`'s revision, to be written to `w` at `finish`.
    pub fn new(w: W) -> Self {
        Buffered {
            w: Some(w),
            events: Vec::new(),
            codec: PhantomData,
        }
    }
}

impl<W: Write, C: LegacyRevision> EventSink for Buffered<W, C> {
    fn event(&mut self, ev: &Event<'_>) -> Result<()> {
        self.events.push(ev.clone().into_owned());
        Ok(())
    }
    fn finish(&mut self) -> Result<()> {
        let Some(w) = self.w.take() else {
            return Ok(());
        };
        let mut plan = Plan::default();
        let mut dry = C::encoder(io::sink(), None, true);
        for ev in &self.events {
            plan.observe(ev);
            dry.event(ev)?;
        }
        dry.finish()?;
        if !dry.items().is_empty() {
            return Err(Error::new(
                0,
                ErrorKind::Unrepresentable {
                    items: dry.items().to_vec(),
                },
            ));
        }
        let mut enc = C::encoder(w, Some(plan), false);
        for ev in self.events.drain(..) {
            enc.event(&ev)?;
        }
        enc.finish()
    }
}

/// What a legacy encoder could not carry. Strict: the first item is refused as
/// `Unrepresentable`. Lossy: every item is listed. Notes tell lossless
/// rewrites (zero runs written out as pages ...). Shared by the cr-v5 and
/// ckpt-v21 encoders.
#[derive(Debug, Default)]
pub(crate) struct Losses {
    pub(crate) lossy: bool,
    pub(crate) items: Vec<String>,
    pub(crate) notes: Vec<String>,
}

impl Losses {
    pub(crate) fn new(lossy: bool) -> Self {
        Losses {
            lossy,
            ..Losses::default()
        }
    }

    /// One item that cannot be represented; `task` names the current task
    /// (pid, comm); `pos` is the output offset for the error.
    pub(crate) fn item(&mut self, pos: u64, task: Option<(i64, &str)>, what: String) -> Result<()> {
        let what = match task {
            Some((pid, comm)) => format!("task {pid} ({comm}): {what}"),
            None => what,
        };
        if !self.lossy {
            return Err(Error::new(
                pos,
                ErrorKind::Unrepresentable { items: vec![what] },
            ));
        }
        self.items.push(what);
        Ok(())
    }

    /// An item for every extras key of `ex` that is not in `placed`.
    pub(crate) fn unplaced_extras(
        &mut self,
        pos: u64,
        task: Option<(i64, &str)>,
        rev: Revision,
        ctx: &str,
        ex: &Extras,
        placed: &[&str],
    ) -> Result<()> {
        for (k, v) in &ex.0 {
            if !placed.contains(&k.as_str()) {
                self.item(
                    pos,
                    task,
                    format!("{ctx} extra `{k}` = {v:?} has no place in {rev}"),
                )?;
            }
        }
        Ok(())
    }
}

/// Byte sink that counts what it wrote.
pub(crate) struct Out<W: Write> {
    w: BufWriter<W>,
    /// Bytes written so far.
    pub pos: u64,
}

impl<W: Write> Out<W> {
    pub(crate) fn new(w: W) -> Self {
        Out {
            w: BufWriter::with_capacity(1 << 16, w),
            pos: 0,
        }
    }
    pub(crate) fn put(&mut self, b: &[u8]) -> Result<()> {
        self.w.write_all(b).map_err(|e| Error::io(self.pos, &e))?;
        self.pos += b.len() as u64;
        Ok(())
    }
    pub(crate) fn flush(&mut self) -> Result<()> {
        self.w.flush().map_err(|e| Error::io(self.pos, &e))
    }
}

/// A zero page buffer for writing out all-zero runs (64 pages).
pub(crate) static ZEROS: [u8; 64 * 4096] = [0u8; 64 * 4096];

/// The objref and object type of a ckpt-v21 OBJREF record kept as
/// [`Event::Unknown`] (an object the model does not decode), if `u` is one.
pub fn kept_objref(u: &Unknown<'_>) -> Option<(i32, u32)> {
    if u.revision != Revision::CkptV21 || u.type_code != crate::layout::v21::TABLE.code("OBJREF") {
        return None;
    }
    let p = u.payload.get(..8)?;
    let ty = u32::from_le_bytes([p[0], p[1], p[2], p[3]]);
    let r = i32::from_le_bytes([p[4], p[5], p[6], p[7]]);
    Some((r, ty))
}
