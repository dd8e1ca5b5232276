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
pub(super) struct Batch {
    pub(super) vma: usize,
    pub(super) ranges: Vec<(u64, usize)>,
    pub(super) len: usize,
}

pub(super) struct PageEmitter<'s> {
    pub(super) sink: &'s mut dyn EventSink,
    pub(super) chunk: usize,
    pub(super) zero: Option<ZeroRun>,
    pub(super) stored: u64,
    pub(super) zeros: u64,
}

impl PageEmitter<'_> {
    pub(super) fn flush_zero(&mut self) -> Result<(), CaptureError> {
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
    pub(super) fn batch(
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
