//! Pre-copy chains: images that keep some pages in a parent image (docs/FORMAT.md, "Parent
//! images").
//!
//! An increment's header names its parent ([`Header::parent`]: the parent's tail numbers
//! and a path hint) and its VMAs mark pages whose contents are the parent's with
//! [`Event::ParentPages`]. [`PageIndex::build`] indexes where every page of an image (and,
//! through its own parent's index, of the whole chain) is stored; [`Flatten`] wraps the
//! increment's event source and replaces each `ParentPages` run by the parent's `Pages` and
//! `ZeroPages` for those addresses, borrowed from the parents' bytes, and drops the parent
//! reference from the header: what comes out is one ordinary image, which every consumer
//! (restore, show, mem, convert) takes as it is.
//!
//! The images are whole native-1 images in memory (mapped files); [`PageIndex::build`]
//! decodes and checks each one completely (every CRC, the tail), and checks that it is the
//! image its child names (its tail numbers), before anything is taken from it.

use crate::error::{Error, ErrorKind, Result};
use crate::model::*;
use crate::stream::{EventSource, ReadOptions};
use std::borrow::Cow;
use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

/// A native-1 decoder over `image` (chains are native-1 only).
fn native_source(image: &[u8], opts: ReadOptions) -> Box<dyn EventSource + '_> {
    Box::new(crate::native::Decoder::new(
        crate::input::SliceInput::new(image),
        opts,
    ))
}

/// Where the contents of a run of pages are.
#[derive(Clone, Copy, Debug)]
enum Src<'p> {
    /// `count` pages of contents, back to back.
    Data(&'p [u8]),
    /// All zero.
    Zero,
}

#[derive(Clone, Copy, Debug)]
struct Run<'p> {
    start: u64,
    count: u64,
    src: Src<'p>,
}

/// Where every stored page of an image (and of its ancestors) is, per task pid.
#[derive(Debug, Default)]
pub struct PageIndex<'p> {
    page_size: u64,
    tasks: HashMap<i32, Vec<Run<'p>>>,
    tail: (u64, u64, u32),
}

/// The tail numbers `(records, bytes, stream_crc)` of a complete native-1 image (its last
/// 48 bytes are the TAIL record). Only meaningful for an image that decoded cleanly.
pub fn tail_numbers(image: &[u8]) -> Option<(u64, u64, u32)> {
    let n = image.len();
    let t = image.get(n.checked_sub(24)?..)?;
    let u = |a: usize| u64::from_le_bytes(t[a..a + 8].try_into().unwrap_or([0; 8]));
    Some((u(0), u(8), u32::from_le_bytes(t[16..20].try_into().ok()?)))
}

/// The header of an image (its first event).
pub fn header_of(image: &[u8]) -> Result<Header> {
    let mut src = native_source(image, ReadOptions::default());
    match src.next_event()? {
        Some(Event::Header(h)) => Ok(h),
        _ => Err(Error::invalid(0, "no header".to_string(), "a header first")),
    }
}

/// The path of the parent named by `r`, for an image read from `child`: an absolute hint
/// as it is, a relative one next to the child.
pub fn parent_path(child: &Path, r: &ParentRef) -> PathBuf {
    use std::os::unix::ffi::OsStrExt;
    let hint = Path::new(std::ffi::OsStr::from_bytes(&r.path));
    if hint.is_absolute() {
        return hint.to_path_buf();
    }
    match child.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.join(hint),
        _ => hint.to_path_buf(),
    }
}

fn chain_err(what: String, expected: &str) -> Error {
    Error::invalid(0, what, expected)
}

impl<'p> PageIndex<'p> {
    /// Index `image`, a complete native-1 image; `parent` is the index of the image its
    /// header names (required when it names one, and checked against its tail numbers).
    pub fn build(image: &'p [u8], parent: Option<&PageIndex<'p>>) -> Result<PageIndex<'p>> {
        Self::build_with(image, parent, ReadOptions::default())
    }

    /// [`PageIndex::build`] with read options: `check_page_data: false` checks every record
    /// but not the page contents' CRCs (and does not read the contents at all) — enough to
    /// know which pages an image has (a capture planning an increment).
    pub fn build_with(
        image: &'p [u8],
        parent: Option<&PageIndex<'p>>,
        opts: ReadOptions,
    ) -> Result<PageIndex<'p>> {
        let mut src = native_source(image, opts);
        let mut idx = PageIndex {
            page_size: 4096,
            tasks: HashMap::new(),
            tail: (0, 0, 0),
        };
        let base = image.as_ptr() as usize;
        let mut pid = 0i32;
        while let Some(ev) = src.next_event()? {
            match ev {
                Event::Header(h) => {
                    idx.page_size = h.page_size as u64;
                    match (&h.parent, parent) {
                        (None, _) => {}
                        (Some(r), Some(p)) => p.check_is(r)?,
                        (Some(r), None) => {
                            return Err(chain_err(
                                format!(
                                    "the image has a parent ({}) that was not given",
                                    String::from_utf8_lossy(&r.path)
                                ),
                                "the parent image",
                            ))
                        }
                    }
                }
                Event::Task(t) => pid = t.pid,
                Event::Pages(c) => {
                    let ps = idx.page_size as usize;
                    let at = (c.data.as_ptr() as usize).wrapping_sub(base);
                    let Some(data) = image.get(at..at.saturating_add(c.data.len())) else {
                        return Err(chain_err(
                            "page contents not in the image bytes".into(),
                            "a mapped image",
                        ));
                    };
                    let mut off = 0usize;
                    let runs = idx.tasks.entry(pid).or_default();
                    for (start, count) in c.addrs.runs() {
                        let len = count as usize * ps;
                        runs.push(Run {
                            start,
                            count,
                            src: Src::Data(&data[off..off + len]),
                        });
                        off += len;
                    }
                }
                Event::ZeroPages(z) => idx.tasks.entry(pid).or_default().push(Run {
                    start: z.start,
                    count: z.count,
                    src: Src::Zero,
                }),
                Event::ParentPages(z) => {
                    let Some(p) = parent else {
                        return Err(chain_err(
                            "parent pages without a parent".into(),
                            "a parent",
                        ));
                    };
                    let got = p.lookup(pid, z.start, z.count)?;
                    idx.tasks.entry(pid).or_default().extend(got);
                }
                _ => {}
            }
        }
        idx.tail = tail_numbers(image).unwrap_or_default();
        Ok(idx)
    }

    /// The pages this index knows, per task pid, as sorted, merged byte ranges.
    pub fn coverage(&self) -> HashMap<i32, Vec<(u64, u64)>> {
        let ps = self.page_size;
        let mut out = HashMap::new();
        for (&pid, runs) in &self.tasks {
            let mut v: Vec<(u64, u64)> = Vec::with_capacity(runs.len());
            for r in runs {
                let e = r.start + r.count * ps;
                match v.last_mut() {
                    Some(l) if l.1 == r.start => l.1 = e,
                    _ => v.push((r.start, e)),
                }
            }
            out.insert(pid, v);
        }
        out
    }

    /// Fail unless this index is of the image `r` names.
    pub fn check_is(&self, r: &ParentRef) -> Result<()> {
        if self.tail != (r.records, r.bytes, r.stream_crc) {
            return Err(chain_err(
                format!(
                    "parent image {} has tail (records {}, bytes {}, crc {:#010x})",
                    String::from_utf8_lossy(&r.path),
                    self.tail.0,
                    self.tail.1,
                    self.tail.2
                ),
                &format!(
                    "the image the increment was made from: records {}, bytes {}, crc {:#010x}",
                    r.records, r.bytes, r.stream_crc
                ),
            ));
        }
        Ok(())
    }

    /// The stored runs covering `count` pages from `start` of task `pid`, cut to fit.
    fn lookup(&self, pid: i32, start: u64, count: u64) -> Result<Vec<Run<'p>>> {
        let ps = self.page_size;
        let missing = |a: u64| {
            chain_err(
                format!(
                    "page {a:#x} of task {pid} is marked as in the parent, which has no such page"
                ),
                "every parent page stored in the parent",
            )
        };
        let runs = self.tasks.get(&pid).ok_or_else(|| missing(start))?;
        let mut out = Vec::new();
        let end = count
            .checked_mul(ps)
            .and_then(|l| start.checked_add(l))
            .ok_or_else(|| missing(start))?;
        let mut a = start;
        let mut i = runs.partition_point(|r| r.start + r.count * ps <= a);
        while a < end {
            let Some(r) = runs.get(i) else {
                return Err(missing(a));
            };
            if r.start > a {
                return Err(missing(a));
            }
            let skip = (a - r.start) / ps;
            let take = (r.count - skip).min((end - a) / ps);
            let src = match r.src {
                Src::Data(d) => Src::Data(&d[(skip * ps) as usize..((skip + take) * ps) as usize]),
                Src::Zero => Src::Zero,
            };
            out.push(Run {
                start: a,
                count: take,
                src,
            });
            a += take * ps;
            i += 1;
        }
        Ok(out)
    }
}

/// The index of a chain of parents given newest first (`parents[0]` is the image's
/// parent, `parents[1]` its parent ...; the last one has none). Each is decoded and
/// checked completely, and each link is checked against the tail numbers its child names.
pub fn index_chain<'p>(parents: &[&'p [u8]]) -> Result<PageIndex<'p>> {
    index_chain_with(parents, ReadOptions::default())
}

/// [`index_chain`] with read options (see [`PageIndex::build_with`]).
pub fn index_chain_with<'p>(parents: &[&'p [u8]], opts: ReadOptions) -> Result<PageIndex<'p>> {
    let mut idx: Option<PageIndex<'p>> = None;
    for img in parents.iter().rev() {
        idx = Some(PageIndex::build_with(img, idx.as_ref(), opts)?);
    }
    idx.ok_or_else(|| chain_err("no parent image".into(), "at least one parent"))
}

/// Paths of the parents of the image at `path` (bytes `image`), newest first, following
/// each header's parent reference; `read` maps or reads one of them. Stops after 64
/// links (a loop of references).
pub fn load_parents<T: AsRef<[u8]>>(
    path: &Path,
    image: &[u8],
    mut read: impl FnMut(&Path) -> std::io::Result<T>,
) -> std::io::Result<Vec<T>> {
    let bad = |e: Error| std::io::Error::new(std::io::ErrorKind::InvalidData, e.to_string());
    let mut out: Vec<T> = Vec::new();
    let mut cur_path = path.to_path_buf();
    let mut hdr = match crate::detect(image).ok().and_then(|d| d.revision().ok()) {
        // A broken header is the image's own problem, reported by whoever reads it.
        Some(Revision::Native1) => match header_of(image) {
            Ok(h) => h,
            Err(_) => return Ok(out),
        },
        _ => return Ok(out),
    };
    while let Some(r) = hdr.parent.take() {
        if out.len() >= 64 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                "more than 64 parent images (a loop of references?)",
            ));
        }
        let p = parent_path(&cur_path, &r);
        let t = read(&p).map_err(|e| {
            std::io::Error::new(e.kind(), format!("parent image {}: {e}", p.display()))
        })?;
        hdr = header_of(t.as_ref()).map_err(bad)?;
        out.push(t);
        cur_path = p;
    }
    Ok(out)
}

/// An [`EventSource`] that resolves an increment's parent pages (module docs).
pub struct Flatten<'p> {
    inner: Box<dyn EventSource + 'p>,
    parent: PageIndex<'p>,
    pid: i32,
    queue: VecDeque<Event<'p>>,
}

/// Pages per `Pages` event made from parent contents.
const CHUNK: u64 = 256;

impl<'p> Flatten<'p> {
    /// Flatten `inner` (an increment) against the index of its parent chain.
    pub fn new(inner: Box<dyn EventSource + 'p>, parent: PageIndex<'p>) -> Self {
        Flatten {
            inner,
            parent,
            pid: 0,
            queue: VecDeque::new(),
        }
    }
}

impl EventSource for Flatten<'_> {
    fn next_event(&mut self) -> Result<Option<Event<'_>>> {
        if let Some(ev) = self.queue.pop_front() {
            return Ok(Some(ev));
        }
        let ev = self.inner.next_event()?;
        match ev {
            Some(Event::Header(mut h)) => {
                if let Some(r) = &h.parent {
                    self.parent.check_is(r)?;
                }
                h.parent = None;
                Ok(Some(Event::Header(h)))
            }
            Some(Event::Task(t)) => {
                self.pid = t.pid;
                Ok(Some(Event::Task(t)))
            }
            Some(Event::ParentPages(z)) => {
                let ps = self.parent.page_size;
                for r in self.parent.lookup(self.pid, z.start, z.count)? {
                    match r.src {
                        Src::Zero => self.queue.push_back(Event::ZeroPages(ZeroRun {
                            start: r.start,
                            count: r.count,
                        })),
                        Src::Data(d) => {
                            let mut k = 0;
                            while k < r.count {
                                let n = (r.count - k).min(CHUNK);
                                let mut run = [0u8; 16];
                                run[..8].copy_from_slice(&(r.start + k * ps).to_le_bytes());
                                run[8..].copy_from_slice(&n.to_le_bytes());
                                let addrs = Addrs::from_runs(&run, ps as u32)
                                    .map(|a| a.into_owned())
                                    .ok_or_else(|| {
                                        Error::new(
                                            0,
                                            ErrorKind::BadValue {
                                                field: "parent page run",
                                                found: r.start,
                                                expected: "an address run".into(),
                                            },
                                        )
                                    })?;
                                self.queue.push_back(Event::Pages(PageChunk {
                                    addrs,
                                    data: Cow::Borrowed(
                                        &d[(k * ps) as usize..((k + n) * ps) as usize],
                                    ),
                                }));
                                k += n;
                            }
                        }
                    }
                }
                Ok(self.queue.pop_front())
            }
            other => Ok(other),
        }
    }
    fn offset(&self) -> u64 {
        self.inner.offset()
    }
}
