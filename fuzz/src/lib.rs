//! Shared pieces of the fuzz targets: a counting allocator that asserts the
//! memory bound, a step counter that asserts the time bound, and a reader
//! that returns input-chosen short reads.
//!
//! Bounds asserted by every target (docs/FUZZING.md):
//! - peak heap in use while decoding ≤ `HEAP_CAP` + 4 × input length;
//! - events produced ≤ input length / 8 + 16 (every event consumes at least
//!   one 8-byte-aligned record or header; a decoder that loops without
//!   consuming input trips this).

use ckpt_format::{Error, Event, EventSource};
use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{self, Read};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Fixed part of the heap bound.
pub const HEAP_CAP: usize = 8 << 20;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

/// The system allocator, counting bytes in use and the peak.
pub struct Counting;

// SAFETY: every call forwards to the system allocator unchanged; the
// counters are only statistics.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            let now = IN_USE.fetch_add(l.size(), Ordering::Relaxed) + l.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) };
        IN_USE.fetch_sub(l.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        let q = unsafe { System.realloc(p, l, new) };
        if !q.is_null() {
            if new >= l.size() {
                let now = IN_USE.fetch_add(new - l.size(), Ordering::Relaxed) + new - l.size();
                PEAK.fetch_max(now, Ordering::Relaxed);
            } else {
                IN_USE.fetch_sub(l.size() - new, Ordering::Relaxed);
            }
        }
        q
    }
}

/// Measure the peak heap growth while `f` runs and assert the bound.
pub fn assert_heap_bound<T>(input_len: usize, f: impl FnOnce() -> T) -> T {
    assert_heap_bound_x(input_len, 4, f)
}

/// [`assert_heap_bound`] with `factor` × input length instead of 4 (decoders whose records
/// widen as they are decoded, such as protobuf varints).
pub fn assert_heap_bound_x<T>(input_len: usize, factor: usize, f: impl FnOnce() -> T) -> T {
    let base = IN_USE.load(Ordering::Relaxed);
    PEAK.store(base, Ordering::Relaxed);
    let out = f();
    let grew = PEAK.load(Ordering::Relaxed).saturating_sub(base);
    assert!(
        grew <= HEAP_CAP + factor * input_len,
        "heap grew by {grew} bytes for a {input_len}-byte input"
    );
    out
}

/// A compact, comparable summary of one event (debug text of small events,
/// lengths and a checksum for page data).
pub fn summarize(ev: &Event<'_>) -> String {
    match ev {
        Event::Pages(p) => format!(
            "pages {} {:08x} {:08x}",
            p.addrs.len(),
            crc(p.addrs.as_bytes()),
            crc(&p.data)
        ),
        Event::Pipe(p) => format!("pipe {} {:08x}", p.id, crc(&p.data)),
        other => format!("{other:?}"),
    }
}

fn crc(b: &[u8]) -> u32 {
    // FNV-1a: no extra dependency, good enough to compare.
    let mut h = 0x811c9dc5u32;
    for x in b {
        h = (h ^ *x as u32).wrapping_mul(0x01000193);
    }
    h
}

/// Drive a source to its end, asserting the step bound; returns summaries and the error.
pub fn drain(src: &mut dyn EventSource, input_len: usize) -> (Vec<String>, Option<Error>) {
    let mut v = Vec::new();
    let limit = input_len / 8 + 16;
    loop {
        match src.next_event() {
            Ok(Some(ev)) => {
                v.push(summarize(&ev));
                assert!(
                    v.len() <= limit,
                    "{} events from {input_len} bytes",
                    v.len()
                );
            }
            Ok(None) => return (v, None),
            Err(e) => {
                assert!(
                    src.next_event().map(|e| e.is_none()).unwrap_or(false),
                    "source not fused after {e}"
                );
                return (v, Some(e));
            }
        }
    }
}

/// A reader over `data` whose read sizes come from `sizes` (cycled; 0 read as 1).
pub struct ShortReads<'a> {
    data: &'a [u8],
    sizes: &'a [u8],
    i: usize,
}

impl<'a> ShortReads<'a> {
    /// Read `data` in pieces sized by `sizes`.
    pub fn new(data: &'a [u8], sizes: &'a [u8]) -> Self {
        ShortReads { data, sizes, i: 0 }
    }
}

impl Read for ShortReads<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let s = if self.sizes.is_empty() {
            out.len()
        } else {
            self.sizes[self.i % self.sizes.len()].max(1) as usize * 7
        };
        self.i += 1;
        let n = s.min(out.len()).min(self.data.len());
        out[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}
