//! Emitting page contents: batches read from the target become page chunks, and
//! all-zero pages become zero runs.

use super::*;

#[inline]
pub(super) fn is_zero(page: &[u8]) -> bool {
    for block in page.chunks_exact(64) {
        let mut acc = 0u64;
        for w in block.chunks_exact(8) {
            acc |= u64::from_ne_bytes(w.try_into().unwrap_or([1; 8]));
        }
        if acc != 0 {
            return false;
        }
    }
    true
}

/// Ranges of one VMA read by one `process_vm_readv` batch.
#[derive(Default)]
pub(crate) struct Batch {
    pub(crate) vma: usize,
    pub(crate) ranges: Vec<(u64, usize)>,
    pub(crate) len: usize,
}

/// Cut the selected `ranges` of VMA number `vi` into read batches (at most `batch_bytes`
/// and `MAX_IOV` ranges each). No batch spans a run of `parent` (pages kept in a parent
/// image are emitted between batches, in address order).
pub(crate) fn batches_of(
    vi: usize,
    ranges: &[(u64, u64)],
    parent: &[(u64, u64)],
    batch_bytes: usize,
) -> Vec<Batch> {
    let mut batches = Vec::new();
    let mut cur = Batch {
        vma: vi,
        ..Batch::default()
    };
    let mut pj = 0;
    for &(mut a, e) in ranges {
        // A parent run between the current batch and this range ends the batch.
        let mut cut = false;
        while pj < parent.len() && parent[pj].0 < a {
            cut = true;
            pj += 1;
        }
        if cut && cur.len > 0 {
            batches.push(std::mem::replace(
                &mut cur,
                Batch {
                    vma: vi,
                    ..Batch::default()
                },
            ));
        }
        while a < e {
            let take = ((e - a) as usize).min(batch_bytes - cur.len);
            cur.ranges.push((a, take));
            cur.len += take;
            a += take as u64;
            if cur.len == batch_bytes || cur.ranges.len() == mem::MAX_IOV {
                let full = std::mem::replace(
                    &mut cur,
                    Batch {
                        vma: vi,
                        ..Batch::default()
                    },
                );
                batches.push(full);
            }
        }
    }
    if cur.len > 0 {
        batches.push(cur);
    }
    batches
}

/// The [`Vma`] record of a map entry and which of its pages are stored.
pub(crate) fn vma_of(m: &MapEntry) -> (Vma, Store) {
    let (kind, file, store) = classify(m);
    // Write-protect tracking of a pre-copy (uw, um, ui) is ours, not the target's.
    let own: Vec<String> = m
        .vm_flags
        .iter()
        .filter(|f| !matches!(f.as_str(), "uw" | "um" | "ui"))
        .cloned()
        .collect();
    let (flags, unknown) = procfs::vm_flags_bits(&own);
    let mut x = VmaRecords {
        identity: Some(MapIdentity {
            dev_major: m.major as u64,
            dev_minor: m.minor as u64,
            ino: m.inode,
        }),
        unknown_flags: None,
        contents: None,
    };
    if !unknown.is_empty() {
        x.unknown_flags = Some(UnknownVmFlags {
            names: unknown.join(" ").into_bytes(),
        });
    }
    let vma = Vma {
        start: m.start,
        end: m.end,
        prot: m.prot(),
        flags,
        pgoff: m.offset / PAGE_SIZE as u64,
        kind,
        file,
        records: x,
        extras: Extras::new(),
    };
    (vma, store)
}

pub(crate) struct PageEmitter<'s> {
    pub(crate) sink: &'s mut dyn EventSink,
    chunk: usize,
    zero: Option<ZeroRun>,
    pub(crate) stored: u64,
    pub(crate) zeros: u64,
    pub(crate) parent_pages: u64,
}

impl<'s> PageEmitter<'s> {
    pub(crate) fn new(sink: &'s mut dyn EventSink, chunk_pages: usize) -> PageEmitter<'s> {
        PageEmitter {
            sink,
            chunk: chunk_pages.clamp(1, 4096),
            zero: None,
            stored: 0,
            zeros: 0,
            parent_pages: 0,
        }
    }

    /// Emit the runs of `parent` from `*next` that start before `until` as pages kept in
    /// the parent image (in address order with the stored ones).
    pub(crate) fn parents(
        &mut self,
        parent: &[(u64, u64)],
        next: &mut usize,
        until: u64,
    ) -> Result<(), CaptureError> {
        while let Some(&(s, e)) = parent.get(*next) {
            if s >= until {
                break;
            }
            self.flush_zero()?;
            let count = (e - s) / PAGE_SIZE as u64;
            self.parent_pages += count;
            self.sink
                .event(&Event::ParentPages(ZeroRun { start: s, count }))
                .map_err(fmt_err)?;
            *next += 1;
        }
        Ok(())
    }

    pub(crate) fn flush_zero(&mut self) -> Result<(), CaptureError> {
        if let Some(z) = self.zero.take() {
            self.zeros += z.count;
            self.sink.event(&Event::ZeroPages(z)).map_err(fmt_err)?;
        }
        Ok(())
    }

    pub(super) fn pages(&mut self, addrs: &[u64], data: &[u8]) -> Result<(), CaptureError> {
        if addrs.is_empty() {
            return Ok(());
        }
        self.flush_zero()?;
        self.stored += addrs.len() as u64;
        self.sink
            .event(&Event::Pages(PageChunk {
                addrs: Addrs::from_u64s(addrs),
                data: Cow::Borrowed(data),
            }))
            .map_err(fmt_err)
    }

    /// Emit the pages of one batch: `ranges` were read into `buf` back to back.
    pub(crate) fn batch(
        &mut self,
        ranges: &[(u64, usize)],
        buf: &[u8],
    ) -> Result<(), CaptureError> {
        let mut addrs: Vec<u64> = Vec::with_capacity(self.chunk);
        let mut chunk_off = 0usize;
        let mut off = 0usize;
        for &(a, l) in ranges {
            for i in 0..l / PAGE_SIZE {
                let addr = a + (i * PAGE_SIZE) as u64;
                let page = &buf[off..off + PAGE_SIZE];
                if is_zero(page) {
                    self.pages(&addrs, &buf[chunk_off..chunk_off + addrs.len() * PAGE_SIZE])?;
                    addrs.clear();
                    match &mut self.zero {
                        Some(z) if z.start + z.count * PAGE_SIZE as u64 == addr => z.count += 1,
                        _ => {
                            self.flush_zero()?;
                            self.zero = Some(ZeroRun {
                                start: addr,
                                count: 1,
                            });
                        }
                    }
                } else {
                    if addrs.is_empty() {
                        chunk_off = off;
                    }
                    addrs.push(addr);
                    if addrs.len() == self.chunk {
                        self.pages(&addrs, &buf[chunk_off..chunk_off + addrs.len() * PAGE_SIZE])?;
                        addrs.clear();
                    }
                }
                off += PAGE_SIZE;
            }
        }
        self.pages(&addrs, &buf[chunk_off..chunk_off + addrs.len() * PAGE_SIZE])
    }
}
