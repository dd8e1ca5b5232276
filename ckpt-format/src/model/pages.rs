//! Page addresses and page contents as they lie in an image: [`Addrs`] (words or
//! runs), [`PageChunk`], [`ZeroRun`].

use std::borrow::Cow;

/// A list of page addresses as it lies in the image, borrowed when possible:
/// either little-endian words of 4 or 8 bytes (the Linux-CR revisions), or
/// runs of consecutive pages, each `(u64 start, u64 count)` little-endian
/// (native-1). The same list can be read either way; two lists are equal
/// when they hold the same addresses in the same order, however stored.
#[derive(Clone, Debug)]
pub struct Addrs<'a> {
    bytes: Cow<'a, [u8]>,
    repr: AddrRepr,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum AddrRepr {
    Words { width: u8 },
    Runs { page_size: u32, len: usize },
}

impl PartialEq for Addrs<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}
impl Eq for Addrs<'_> {}
impl std::hash::Hash for Addrs<'_> {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.len().hash(h);
        for a in self.iter() {
            a.hash(h);
        }
    }
}

fn le64(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

impl<'a> Addrs<'a> {
    /// Borrow `bytes` as little-endian words of `width` (4 or 8) bytes.
    /// Returns `None` if the width is not 4 or 8 or the length is not a multiple of it.
    pub fn from_le_bytes(bytes: &'a [u8], width: u8) -> Option<Addrs<'a>> {
        if (width != 4 && width != 8) || bytes.len() % width as usize != 0 {
            return None;
        }
        Some(Addrs {
            bytes: Cow::Borrowed(bytes),
            repr: AddrRepr::Words { width },
        })
    }
    /// Borrow `bytes` as runs `(u64 start, u64 count)` of pages of `page_size`
    /// bytes. Returns `None` if the length is not a multiple of 16, a count is
    /// 0, a run overflows the address space, or the total overflows `usize`.
    pub fn from_runs(bytes: &'a [u8], page_size: u32) -> Option<Addrs<'a>> {
        if bytes.len() % 16 != 0 || page_size == 0 {
            return None;
        }
        let mut len = 0usize;
        for r in bytes.chunks_exact(16) {
            let (start, count) = (le64(r, 0), le64(r, 8));
            if count == 0 {
                return None;
            }
            (count - 1)
                .checked_mul(page_size as u64)
                .and_then(|d| start.checked_add(d))?;
            len = len.checked_add(usize::try_from(count).ok()?)?;
        }
        Some(Addrs {
            bytes: Cow::Borrowed(bytes),
            repr: AddrRepr::Runs { page_size, len },
        })
    }
    /// Owned list of 8-byte addresses.
    pub fn from_u64s(v: &[u64]) -> Addrs<'static> {
        let mut b = Vec::with_capacity(v.len() * 8);
        for a in v {
            b.extend_from_slice(&a.to_le_bytes());
        }
        Addrs {
            bytes: Cow::Owned(b),
            repr: AddrRepr::Words { width: 8 },
        }
    }
    /// Number of addresses.
    pub fn len(&self) -> usize {
        match self.repr {
            AddrRepr::Words { width } => self.bytes.len() / width as usize,
            AddrRepr::Runs { len, .. } => len,
        }
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Word width in bytes (4 or 8; 8 for runs).
    pub fn width(&self) -> u8 {
        match self.repr {
            AddrRepr::Words { width } => width,
            AddrRepr::Runs { .. } => 8,
        }
    }
    /// True when stored as runs.
    pub fn is_runs(&self) -> bool {
        matches!(self.repr, AddrRepr::Runs { .. })
    }
    /// The raw little-endian bytes of the stored representation (words or runs).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
    /// Address number `i`, if in range (O(number of runs) for runs).
    pub fn get(&self, i: usize) -> Option<u64> {
        match self.repr {
            AddrRepr::Words { width } => {
                let w = width as usize;
                let s = self
                    .bytes
                    .get(i.checked_mul(w)?..i.checked_mul(w)?.checked_add(w)?)?;
                Some(if w == 8 {
                    le64(s, 0)
                } else {
                    u32::from_le_bytes(s.try_into().ok()?) as u64
                })
            }
            AddrRepr::Runs { page_size, .. } => {
                let mut i = i as u64;
                for (start, count) in self.runs() {
                    if i < count {
                        return Some(start + i * page_size as u64);
                    }
                    i -= count;
                }
                None
            }
        }
    }
    /// Iterate over the addresses.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        let ps = match self.repr {
            AddrRepr::Runs { page_size, .. } => page_size as u64,
            AddrRepr::Words { .. } => 0,
        };
        self.runs()
            .flat_map(move |(start, count)| (0..count).map(move |k| start + k * ps))
    }
    /// Iterate over `(start, count)` runs. For word lists every address is
    /// its own run of one page (the page size is unknown there); for runs,
    /// the stored runs.
    pub fn runs(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let (words, width) = match self.repr {
            AddrRepr::Words { width } => (true, width as usize),
            AddrRepr::Runs { .. } => (false, 16),
        };
        self.bytes.chunks_exact(width).map(move |c| {
            if !words {
                (le64(c, 0), le64(c, 8))
            } else if width == 8 {
                (le64(c, 0), 1)
            } else {
                (u32::from_le_bytes([c[0], c[1], c[2], c[3]]) as u64, 1)
            }
        })
    }
    /// Collapse into runs of consecutive pages of `page_size` bytes (owned).
    pub fn to_runs(&self, page_size: u32) -> Addrs<'static> {
        let mut b: Vec<u8> = Vec::new();
        let mut cur: Option<(u64, u64)> = None;
        let ps = page_size as u64;
        let flush = |r: (u64, u64), b: &mut Vec<u8>| {
            b.extend_from_slice(&r.0.to_le_bytes());
            b.extend_from_slice(&r.1.to_le_bytes());
        };
        for a in self.iter() {
            cur = match cur {
                Some((s, c)) if s.checked_add(c * ps) == Some(a) => Some((s, c + 1)),
                Some(r) => {
                    flush(r, &mut b);
                    Some((a, 1))
                }
                None => Some((a, 1)),
            };
        }
        if let Some(r) = cur {
            flush(r, &mut b);
        }
        Addrs {
            bytes: Cow::Owned(b),
            repr: AddrRepr::Runs {
                page_size,
                len: self.len(),
            },
        }
    }
    /// Copy into an owned value.
    pub fn into_owned(self) -> Addrs<'static> {
        Addrs {
            bytes: Cow::Owned(self.bytes.into_owned()),
            repr: self.repr,
        }
    }
}

/// A chunk of captured pages: `addrs.len()` pages whose contents follow in
/// `data`, `page_size` bytes each, in the same order.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct PageChunk<'a> {
    /// Page addresses.
    pub addrs: Addrs<'a>,
    /// Page contents, borrowed from the mapped image or the reader's buffer.
    pub data: Cow<'a, [u8]>,
}

impl PageChunk<'_> {
    /// Contents of page `i` for the given page size.
    pub fn page(&self, i: usize, page_size: usize) -> Option<&[u8]> {
        let start = i.checked_mul(page_size)?;
        self.data.get(start..start.checked_add(page_size)?)
    }
    /// Copy into an owned value.
    pub fn into_owned(self) -> PageChunk<'static> {
        PageChunk {
            addrs: self.addrs.into_owned(),
            data: Cow::Owned(self.data.into_owned()),
        }
    }
}

/// A run of `count` all-zero pages starting at `start`, recorded without contents.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ZeroRun {
    /// First page address.
    pub start: u64,
    /// Number of consecutive pages.
    pub count: u64,
}
