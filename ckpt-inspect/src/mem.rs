//! `mem`: the memory of a task as captured — a hexdump or raw bytes of a
//! range, or every address where a pattern occurs.
//!
//! Pages recorded as zero runs are captured zeros; pages that were not
//! captured (outside every VMA, or inside one but not stored) are reported as
//! such, never shown as zeros.

use crate::progress::Progress;
use crate::source::Image;
use crate::{Failure, Result};
use ckpt_format::{Event, ReadOptions};
use serde::Serialize;
use std::fmt::Write as _;
use std::io::Write;

/// Parse a search pattern: `hex:...` (hex digits, spaces allowed) or text.
pub fn parse_pattern(p: &str) -> Result<Vec<u8>> {
    let bytes = if let Some(h) = p.strip_prefix("hex:") {
        let digits: Vec<u8> = h
            .bytes()
            .filter(|c| !c.is_ascii_whitespace() && *c != b'_')
            .collect();
        if digits.len() % 2 != 0 {
            return Err(Failure::Usage(format!(
                "bad pattern {p:?}: an odd number of hex digits"
            )));
        }
        let val = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        digits
            .chunks(2)
            .map(|c| match (val(c[0]), val(c[1])) {
                (Some(a), Some(b)) => Ok(a << 4 | b),
                _ => Err(Failure::Usage(format!(
                    "bad pattern {p:?}: {:?} is not a hex byte",
                    String::from_utf8_lossy(c)
                ))),
            })
            .collect::<Result<Vec<u8>>>()?
    } else {
        p.as_bytes().to_vec()
    };
    if bytes.is_empty() {
        return Err(Failure::Usage("empty search pattern".into()));
    }
    Ok(bytes)
}

/// A VMA of the task, for describing gaps.
#[derive(Clone, Debug)]
struct VmaDesc {
    start: u64,
    end: u64,
    what: String,
}

/// Captured bytes of a range: segments in address order.
#[derive(Debug, Default)]
pub struct Captured {
    /// `(address, bytes)` of each captured stretch, ascending, disjoint.
    pub segments: Vec<(u64, Vec<u8>)>,
    vmas: Vec<VmaDesc>,
    /// True when a task with the pid was found.
    pub found_task: bool,
}

impl Captured {
    fn push(&mut self, addr: u64, data: &[u8]) {
        if let Some((a, d)) = self.segments.last_mut() {
            if a.checked_add(d.len() as u64) == Some(addr) {
                d.extend_from_slice(data);
                return;
            }
        }
        self.segments.push((addr, data.to_vec()));
    }

    /// Describe an uncaptured address range.
    fn gap(&self, a: u64, b: u64) -> String {
        let v = self.vmas.iter().find(|v| v.start <= a && a < v.end);
        match v {
            Some(v) => format!(
                "{a:#018x}..{b:#018x}  not captured ({} bytes; inside VMA {:#x}-{:#x} {}, pages not stored)",
                b - a,
                v.start,
                v.end,
                v.what
            ),
            None => format!(
                "{a:#018x}..{b:#018x}  not captured ({} bytes; no VMA)",
                b - a
            ),
        }
    }
}

/// Largest range `mem --addr` reads.
pub const MAX_LEN: u64 = 1 << 30;

/// Read `[addr, addr+len)` of task `pid` from `img`.
pub fn read_range(img: &mut Image, pid: i32, addr: u64, len: u64) -> Result<Captured> {
    if len == 0 || len > MAX_LEN {
        return Err(Failure::Usage(format!(
            "--len must be between 1 and {MAX_LEN}"
        )));
    }
    let end = addr
        .checked_add(len)
        .ok_or_else(|| Failure::Usage(format!("{addr:#x} + {len} overflows")))?;
    let (mut src, _) = img.events(ReadOptions::default())?;
    let mut cap = Captured::default();
    let mut in_task = false;
    let mut ps = 4096u64;
    let zeros = vec![0u8; 1 << 16];
    while let Some(ev) = src.next_event()? {
        match &ev {
            Event::Header(h) => ps = h.page_size as u64,
            Event::Task(t) => {
                if in_task {
                    break;
                }
                in_task = t.pid == pid;
                cap.found_task |= in_task;
            }
            Event::Vma(v) if in_task => cap.vmas.push(VmaDesc {
                start: v.start,
                end: v.end,
                what: v.file.as_deref().map_or_else(
                    || v.kind.name().to_string(),
                    |f| format!("{} {}", v.kind.name(), crate::fmt::bytes(f)),
                ),
            }),
            Event::Pages(p) if in_task => {
                let mut i = 0u64;
                for (start, count) in p.addrs.runs() {
                    let run_len = count.saturating_mul(ps);
                    let run_end = start.saturating_add(run_len);
                    let (lo, hi) = (start.max(addr), run_end.min(end));
                    if lo < hi {
                        let off = (i.saturating_mul(ps) + (lo - start)) as usize;
                        let n = (hi - lo) as usize;
                        if let Some(d) = p.data.get(off..off + n) {
                            cap.push(lo, d);
                        }
                    }
                    i = i.saturating_add(count);
                }
            }
            Event::ZeroPages(z) if in_task => {
                let run_end = z.start.saturating_add(z.count.saturating_mul(ps));
                let (mut lo, hi) = (z.start.max(addr), run_end.min(end));
                while lo < hi {
                    let n = (hi - lo).min(zeros.len() as u64);
                    cap.push(lo, &zeros[..n as usize]);
                    lo += n;
                }
            }
            Event::Tail => break,
            _ => {}
        }
    }
    if !cap.found_task {
        return Err(Failure::Usage(format!(
            "no task with pid {pid} in the image"
        )));
    }
    Ok(cap)
}

/// Hexdump of captured segments over `[addr, addr+len)`, gaps reported.
/// Returns the text and whether everything was captured.
pub fn hexdump(cap: &Captured, addr: u64, len: u64) -> (String, bool) {
    let end = addr.saturating_add(len);
    let mut o = String::new();
    let mut at = addr;
    let mut complete = true;
    for (a, d) in &cap.segments {
        if *a > at {
            let _ = writeln!(o, "{}", cap.gap(at, *a));
            complete = false;
        }
        dump(*a, d, &mut o);
        at = a + d.len() as u64;
    }
    if at < end {
        let _ = writeln!(o, "{}", cap.gap(at, end));
        complete = false;
    }
    (o, complete)
}

fn dump(addr: u64, d: &[u8], o: &mut String) {
    let mut prev: Option<&[u8]> = None;
    let mut starred = false;
    let mut i = 0usize;
    // Lines are aligned to 16-byte addresses; the first may be partial.
    while i < d.len() {
        let a = addr + i as u64;
        let line_start = a & !15;
        let skip = (a - line_start) as usize;
        let n = (16 - skip).min(d.len() - i);
        let chunk = &d[i..i + n];
        let full = skip == 0 && n == 16;
        if full && prev == Some(chunk) && i + n < d.len() {
            if !starred {
                o.push_str("*\n");
                starred = true;
            }
            i += n;
            continue;
        }
        starred = false;
        prev = if full { Some(chunk) } else { None };
        let _ = write!(o, "{line_start:016x} ");
        let mut ascii = String::with_capacity(16);
        for k in 0..16 {
            if k == 8 {
                o.push(' ');
            }
            if k < skip || k >= skip + n {
                o.push_str("   ");
                ascii.push(' ');
            } else {
                let b = chunk[k - skip];
                let _ = write!(o, " {b:02x}");
                ascii.push(if (0x20..0x7f).contains(&b) {
                    b as char
                } else {
                    '.'
                });
            }
        }
        let _ = writeln!(o, "  |{ascii}|");
        i += n;
    }
}

/// `mem --addr` as JSON.
#[derive(Serialize, Debug)]
pub struct RangeJson {
    /// Task.
    pub pid: i32,
    /// Start of the range.
    pub addr: u64,
    /// Length of the range.
    pub len: u64,
    /// True when every byte was captured.
    pub complete: bool,
    /// Captured stretches: address and hex bytes.
    pub segments: Vec<SegmentJson>,
}

/// One captured stretch.
#[derive(Serialize, Debug)]
pub struct SegmentJson {
    /// Start address.
    pub addr: u64,
    /// Bytes as lower-case hex.
    pub hex: String,
}

/// Run `mem --addr`: hexdump (or raw bytes, or JSON) of the range. Exit status 1
/// when part of it was not captured.
pub fn run_range(
    img: &mut Image,
    pid: i32,
    addr: u64,
    len: u64,
    raw: bool,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let cap = read_range(img, pid, addr, len)?;
    let (text, complete) = hexdump(&cap, addr, len);
    if raw {
        if !complete {
            let first_gap = {
                let mut at = addr;
                for (a, d) in &cap.segments {
                    if *a > at {
                        break;
                    }
                    at = a + d.len() as u64;
                }
                at
            };
            return Err(Failure::Negative(format!(
                "address {first_gap:#x} of task {pid} was not captured; refusing to write raw bytes with holes"
            )));
        }
        for (_, d) in &cap.segments {
            out.write_all(d)?;
        }
        return Ok(());
    }
    if json {
        let j = RangeJson {
            pid,
            addr,
            len,
            complete,
            segments: cap
                .segments
                .iter()
                .map(|(a, d)| SegmentJson {
                    addr: *a,
                    hex: d
                        .iter()
                        .fold(String::with_capacity(d.len() * 2), |mut s, b| {
                            let _ = write!(s, "{b:02x}");
                            s
                        }),
                })
                .collect(),
        };
        serde_json::to_writer_pretty(&mut *out, &j).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        out.write_all(text.as_bytes())?;
    }
    if complete {
        Ok(())
    } else {
        Err(Failure::Negative(format!(
            "part of {addr:#x}..{:#x} of task {pid} was not captured",
            addr.saturating_add(len)
        )))
    }
}

/// Finds a pattern in a sequence of (address, bytes) pieces, including across
/// pieces that are contiguous in the address space.
pub struct Searcher<'p> {
    finder: memchr::memmem::Finder<'p>,
    plen: usize,
    all_zero: bool,
    carry: Vec<u8>,
    carry_addr: u64,
    next: Option<u64>,
    /// Addresses found, ascending.
    pub hits: Vec<u64>,
    /// Most hits kept.
    pub max_hits: usize,
    /// True when more hits than `max_hits` were found.
    pub truncated: bool,
}

impl<'p> Searcher<'p> {
    /// A searcher for `pat` (non-empty).
    pub fn new(pat: &'p [u8], max_hits: usize) -> Self {
        Searcher {
            finder: memchr::memmem::Finder::new(pat),
            plen: pat.len(),
            all_zero: pat.iter().all(|&b| b == 0),
            carry: Vec::new(),
            carry_addr: 0,
            next: None,
            hits: Vec::new(),
            max_hits,
            truncated: false,
        }
    }

    fn hit(&mut self, a: u64) {
        if self.hits.len() < self.max_hits {
            self.hits.push(a);
        } else {
            self.truncated = true;
        }
    }

    /// Search `data` lying at `addr`.
    pub fn feed(&mut self, addr: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        if self.next != Some(addr) {
            self.carry.clear();
        }
        let k = self.plen - 1;
        if !self.carry.is_empty() {
            let mut buf = self.carry.clone();
            buf.extend_from_slice(&data[..k.min(data.len())]);
            let cl = self.carry.len();
            let found: Vec<usize> = self.finder.find_iter(&buf).filter(|&m| m < cl).collect();
            for m in found {
                self.hit(self.carry_addr + m as u64);
            }
        }
        let found: Vec<usize> = self.finder.find_iter(data).collect();
        for m in found {
            self.hit(addr + m as u64);
        }
        let end = addr + data.len() as u64;
        if data.len() >= k {
            self.carry.clear();
            self.carry.extend_from_slice(&data[data.len() - k..]);
        } else {
            self.carry.extend_from_slice(data);
            let drop = self.carry.len().saturating_sub(k);
            self.carry.drain(..drop);
        }
        self.carry_addr = end - self.carry.len() as u64;
        self.next = Some(end);
    }

    /// Search `len` zero bytes at `addr` without materialising them when the
    /// pattern has a non-zero byte (then only the edges can match).
    pub fn feed_zeros(&mut self, addr: u64, len: u64, zeros: &[u8]) {
        let k = (self.plen - 1) as u64;
        if !self.all_zero && k as usize <= zeros.len() && len > 2 * k + zeros.len() as u64 {
            self.feed(addr, &zeros[..k as usize]);
            self.carry.clear();
            self.next = None;
            let tail = addr + len - k;
            self.feed(tail, &zeros[..k as usize]);
            return;
        }
        let mut at = addr;
        while at < addr + len {
            let n = (addr + len - at).min(zeros.len() as u64);
            self.feed(at, &zeros[..n as usize]);
            at += n;
        }
    }
}

/// `mem --search` results.
#[derive(Serialize, Debug)]
pub struct SearchJson {
    /// Task.
    pub pid: i32,
    /// The pattern as hex.
    pub pattern: String,
    /// Every address where it starts (up to the limit).
    pub hits: Vec<u64>,
    /// True when the limit cut the list.
    pub truncated: bool,
}

/// Search task `pid`'s captured memory for `pat`.
pub fn search<'p>(
    img: &mut Image,
    pid: i32,
    pat: &'p [u8],
    max_hits: usize,
) -> Result<Searcher<'p>> {
    let total = img.slice().map_or(0, |s| s.len() as u64);
    let pb = Progress::bytes("search", total);
    let (mut src, _) = img.events(ReadOptions::default())?;
    let mut s = Searcher::new(pat, max_hits);
    let zeros = vec![0u8; 1 << 16];
    let (mut in_task, mut found, mut ps, mut n) = (false, false, 4096u64, 0u64);
    while let Some(ev) = src.next_event()? {
        n += 1;
        match &ev {
            Event::Header(h) => ps = h.page_size as u64,
            Event::Task(t) => {
                if in_task {
                    break;
                }
                in_task = t.pid == pid;
                found |= in_task;
            }
            Event::Pages(p) if in_task => {
                let mut i = 0usize;
                for (start, count) in p.addrs.runs() {
                    let off = i.saturating_mul(ps as usize);
                    let len = (count as usize).saturating_mul(ps as usize);
                    if let Some(d) = p.data.get(off..off.saturating_add(len)) {
                        s.feed(start, d);
                    }
                    i = i.saturating_add(count as usize);
                }
            }
            Event::ZeroPages(z) if in_task => {
                s.feed_zeros(z.start, z.count.saturating_mul(ps), &zeros);
            }
            Event::Tail => break,
            _ => {}
        }
        if n % 64 == 0 {
            drop(ev);
            pb.set(src.offset());
        }
    }
    pb.finish();
    if !found {
        return Err(Failure::Usage(format!(
            "no task with pid {pid} in the image"
        )));
    }
    Ok(s)
}

/// Run `mem --search`; exit status 1 when the pattern does not occur.
pub fn run_search(
    img: &mut Image,
    pid: i32,
    pattern: &str,
    max_hits: usize,
    json: bool,
    out: &mut dyn Write,
) -> Result<()> {
    let pat = parse_pattern(pattern)?;
    let s = search(img, pid, &pat, max_hits)?;
    if json {
        let j = SearchJson {
            pid,
            pattern: pat.iter().fold(String::new(), |mut a, b| {
                let _ = write!(a, "{b:02x}");
                a
            }),
            hits: s.hits.clone(),
            truncated: s.truncated,
        };
        serde_json::to_writer_pretty(&mut *out, &j).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        for h in &s.hits {
            writeln!(out, "{h:#018x}")?;
        }
        if s.truncated {
            writeln!(
                out,
                "... more matches not listed (limit {max_hits}, see --max)"
            )?;
        }
    }
    if s.hits.is_empty() {
        Err(Failure::Negative(format!(
            "pattern not found in the captured memory of task {pid}"
        )))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_across_pieces() {
        let mut s = Searcher::new(b"abcd", 100);
        s.feed(0x1000, b"xxab");
        s.feed(0x1004, b"cdab");
        s.feed(0x1008, b"c");
        s.feed(0x1009, b"dzz");
        s.feed(0x2000, b"d"); // not contiguous: no match with the carry "dzz"
        s.feed(0x3000, b"abcdabcd");
        assert_eq!(s.hits, vec![0x1002, 0x1006, 0x3000, 0x3004]);
    }

    #[test]
    fn zeros_edges() {
        let zeros = vec![0u8; 64];
        let mut s = Searcher::new(b"\x01\x00\x00", 100);
        s.feed(0, b"\x00\x01");
        s.feed_zeros(2, 1 << 20, &zeros);
        s.feed(2 + (1 << 20), b"\x01\x00\x00");
        assert_eq!(s.hits, vec![1, 2 + (1 << 20)]);
        let mut s = Searcher::new(b"\x00\x00\x07", 100);
        s.feed_zeros(0, 1 << 20, &zeros);
        s.feed(1 << 20, b"\x07");
        assert_eq!(s.hits, vec![(1 << 20) - 2]);
    }

    #[test]
    fn patterns() {
        assert_eq!(parse_pattern("hex:de ad").unwrap(), vec![0xde, 0xad]);
        assert_eq!(parse_pattern("ab").unwrap(), b"ab".to_vec());
        assert!(parse_pattern("hex:abc").is_err());
        assert!(parse_pattern("hex:zz").is_err());
        assert!(parse_pattern("").is_err());
    }
}
