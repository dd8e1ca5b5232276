//! CRIU's memory layout: `pagemap-PID.img` (a head naming the pages file, then runs of
//! `{vaddr, nr_pages, flags}`) over a raw `pages-N.img`, with `in_parent` runs looked up in the
//! pre-dump parent through the `parent` link. Contents are slices of the mapped page files.

use crate::image::{CriuError, ImageFile, Result};
use crate::magic;
use crate::pb;
use crate::set::{CriuImage, MAX_PARENTS};

/// Page size of x86-64 CRIU images.
pub const PAGE: u64 = 4096;

/// `PE_PARENT`: the run's contents are in the parent dump.
pub const PE_PARENT: u32 = 1;
/// `PE_LAZY`: the run may be restored lazily (contents still in the pages file when PRESENT).
pub const PE_LAZY: u32 = 2;
/// `PE_PRESENT`: the run's contents are in this dump's pages file.
pub const PE_PRESENT: u32 = 4;

/// One pagemap run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Run {
    /// First page address.
    pub vaddr: u64,
    /// Number of pages.
    pub nr: u64,
    /// `PE_*` flags (derived from `in_parent` for images without flags).
    pub flags: u32,
    /// Byte offset of the run's contents in the pages file (PRESENT runs only).
    pub off: u64,
    /// Byte offset of the entry in the pagemap file.
    pub entry: u64,
}

impl Run {
    /// One past the last address.
    pub fn end(&self) -> u64 {
        self.vaddr.saturating_add(self.nr.saturating_mul(PAGE))
    }
}

/// A task's pagemap: the pages file it points to and its runs, in file order.
#[derive(Clone, Debug, Default)]
pub struct Pagemap {
    /// `pages-<id>.img`.
    pub pages_id: u32,
    /// The runs.
    pub runs: Vec<Run>,
}

/// Read a pagemap file (`name` is used in errors). Runs must be page aligned, ascending and
/// disjoint; their PRESENT contents must lie within `pages_len` bytes when given.
pub fn read_pagemap(name: &str, bytes: &[u8], pages_len: Option<u64>) -> Result<Pagemap> {
    let mut f = ImageFile::expect(name, bytes, magic::PAGEMAP)?;
    let Some((_, head)) = f.next_msg::<pb::PagemapHead>()? else {
        return Err(CriuError::new(name, 8, "end of file", "a pagemap head"));
    };
    let mut pm = Pagemap {
        pages_id: head.pages_id,
        runs: Vec::new(),
    };
    let mut off = 0u64;
    let mut prev_end = 0u64;
    while let Some((at, e)) = f.next_msg::<pb::PagemapEntry>()? {
        let flags = e.flags.unwrap_or(if e.in_parent == Some(true) {
            PE_PARENT
        } else {
            PE_PRESENT
        });
        let nr = e.nr_pages as u64;
        if e.vaddr % PAGE != 0 || nr == 0 {
            return Err(CriuError::new(
                name,
                at,
                format!("run {:#x} of {nr} pages", e.vaddr),
                "a page-aligned run of at least one page",
            ));
        }
        let end = nr
            .checked_mul(PAGE)
            .and_then(|l| e.vaddr.checked_add(l))
            .ok_or_else(|| {
                CriuError::new(
                    name,
                    at,
                    format!("run {:#x} of {nr} pages", e.vaddr),
                    "a run inside the address space",
                )
            })?;
        if e.vaddr < prev_end {
            return Err(CriuError::new(
                name,
                at,
                format!("run at {:#x} after a run ending at {prev_end:#x}", e.vaddr),
                "ascending, disjoint runs",
            ));
        }
        prev_end = end;
        let run = Run {
            vaddr: e.vaddr,
            nr,
            flags,
            off,
            entry: at,
        };
        if flags & PE_PRESENT != 0 {
            off += nr * PAGE;
            if let Some(l) = pages_len {
                if off > l {
                    return Err(CriuError::new(
                        name,
                        at,
                        format!("contents up to byte {off} of pages-{}.img", pm.pages_id),
                        format!("contents within its {l} bytes"),
                    ));
                }
            }
        }
        pm.runs.push(run);
    }
    Ok(pm)
}

/// The pagemap and pages file of task `pid` in `img` (`None` when the dump has no pagemap for it).
pub fn task_pages(img: &CriuImage, pid: u32) -> Result<Option<(Pagemap, &[u8])>> {
    let name = format!("pagemap-{pid}.img");
    let Some(b) = img.file(&name) else {
        return Ok(None);
    };
    // The head names the pages file; read it first to bound the runs by its size.
    let head = read_pagemap(&name, b, None)?;
    let pages_name = format!("pages-{}.img", head.pages_id);
    let pages = if head.runs.iter().any(|r| r.flags & PE_PRESENT != 0) {
        img.need(&pages_name)?
    } else {
        img.file(&pages_name).unwrap_or(&[])
    };
    let pm = read_pagemap(&name, b, Some(pages.len() as u64))?;
    Ok(Some((pm, pages)))
}

/// Where the contents of `count` pages at `vaddr` of task `pid` are in the parent chain of
/// `img`: returns the first piece (`vaddr`, pages, bytes); call again for the rest.
pub fn from_parent<'a>(
    img: &'a CriuImage,
    pid: u32,
    vaddr: u64,
    mut count: u64,
    cache: &mut ParentCache<'a>,
) -> Result<(u64, &'a [u8], usize)> {
    let mut cur = img;
    for _ in 0..MAX_PARENTS {
        let Some(parent) = cur.parent.as_deref() else {
            return Err(CriuError::new(
                &format!("{}/pagemap-{pid}.img", cur.origin.display()),
                0,
                format!("pages at {vaddr:#x} marked in_parent"),
                "a parent dump (the `parent` link) holding them",
            ));
        };
        let (pm, pages) = cache.get(parent, pid)?;
        let i = pm.runs.partition_point(|r| r.end() <= vaddr);
        let Some(r) = pm.runs.get(i).filter(|r| r.vaddr <= vaddr) else {
            return Err(CriuError::new(
                &format!("{}/pagemap-{pid}.img", parent.origin.display()),
                0,
                format!("no run holding {vaddr:#x}"),
                "the pages the child dump says are in its parent",
            ));
        };
        let n = count.min((r.end() - vaddr) / PAGE);
        if r.flags & PE_PRESENT != 0 {
            let at = (r.off + (vaddr - r.vaddr)) as usize;
            return Ok((n, pages, at));
        }
        if r.flags & PE_PARENT == 0 {
            return Err(CriuError::new(
                &format!("{}/pagemap-{pid}.img", parent.origin.display()),
                r.entry,
                format!(
                    "run {:#x} with flags {:#x} and no contents",
                    r.vaddr, r.flags
                ),
                "contents present or in a further parent",
            ));
        }
        // Further up only for the pages this level has in its parent: the grandparent's
        // run may go on past them into pages this level holds itself.
        count = n;
        cur = parent;
    }
    Err(CriuError::new(
        &img.origin.display().to_string(),
        0,
        format!("more than {MAX_PARENTS} parents"),
        "a finite parent chain",
    ))
}

/// Parsed pagemaps of parent dumps, by (dump, pid).
#[derive(Default)]
pub struct ParentCache<'a> {
    maps: Vec<(*const CriuImage, u32, Pagemap, &'a [u8])>,
}

impl<'a> ParentCache<'a> {
    fn get(&mut self, img: &'a CriuImage, pid: u32) -> Result<(&Pagemap, &'a [u8])> {
        let key = img as *const CriuImage;
        let i = match self.maps.iter().position(|m| m.0 == key && m.1 == pid) {
            Some(i) => i,
            None => {
                let (pm, pages) = task_pages(img, pid)?.ok_or_else(|| {
                    CriuError::new(
                        &format!("{}/pagemap-{pid}.img", img.origin.display()),
                        0,
                        "no pagemap for the task in the parent dump",
                        "the parent's pagemap of the same task",
                    )
                })?;
                self.maps.push((key, pid, pm, pages));
                self.maps.len() - 1
            }
        };
        let m = &self.maps[i];
        Ok((&m.2, m.3))
    }
}
