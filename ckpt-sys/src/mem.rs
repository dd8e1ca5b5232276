//! Remote memory: read and write another process's pages, and find which pages exist.
//!
//! * [`read_remote`] / [`read_ranges`]: `process_vm_readv` with many remote iovecs per
//!   call; pages it refuses (`EFAULT` on e.g. `VM_IO` mappings) are retried one page at
//!   a time through `/proc/PID/mem`, which goes through `access_process_vm` (the path a
//!   debugger uses).
//! * [`write_remote`]: `process_vm_writev`, falling back to `/proc/PID/mem`, which can
//!   also write read-only private mappings (restore needs that for text pages).
//! * [`PageScan`]: which pages of a range are present or swapped and, optionally,
//!   anonymous (not a page-cache page, not the shared zero page). Uses the
//!   `PAGEMAP_SCAN` ioctl (Linux 6.7+) on `/proc/PID/pagemap`, falling back to reading
//!   the 8-byte pagemap entries.

use crate::{last_errno, Result, SysError, PAGE_SIZE};
use libc::{c_void, pid_t};
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;

/// Most remote iovecs passed to one `process_vm_readv` (`IOV_MAX`).
pub const MAX_IOV: usize = 1024;

/// Read `buf.len()` bytes at `addr` of `pid` (process_vm_readv, then /proc/PID/mem).
pub fn read_remote(pid: pid_t, addr: u64, buf: &mut [u8]) -> Result<()> {
    let len = buf.len();
    read_ranges(pid, &[(addr, len)], buf, None)
}

/// Read each `(addr, len)` range of `pid`, concatenated, into `buf` (whose length must
/// be the sum of the lengths). `mem` is an open `/proc/PID/mem` for the fallback
/// (opened on demand when `None`).
pub fn read_ranges(
    pid: pid_t,
    ranges: &[(u64, usize)],
    buf: &mut [u8],
    mem: Option<&File>,
) -> Result<()> {
    let total: usize = ranges.iter().map(|r| r.1).sum();
    if total != buf.len() {
        return Err(SysError::other(
            "read_ranges",
            format!("buffer {} bytes, ranges {} bytes", buf.len(), total),
        ));
    }
    let mut opened: Option<File> = None;
    let mut off = 0usize;
    for group in ranges.chunks(MAX_IOV) {
        // Try the whole group in one call; on a short read, finish range by range.
        let glen: usize = group.iter().map(|r| r.1).sum();
        let n = vm_readv(pid, group, &mut buf[off..off + glen]).unwrap_or(0);
        if n == glen {
            off += glen;
            continue;
        }
        let mut done = 0usize;
        for &(a, l) in group {
            if done + l <= n {
                done += l;
                continue;
            }
            // Part of this range may have been read already.
            let already = n.saturating_sub(done);
            let mut pos = already;
            while pos < l {
                let dst = &mut buf[off + done + pos..off + done + l];
                let got = vm_readv(pid, &[(a + pos as u64, l - pos)], dst).unwrap_or(0);
                if got > 0 {
                    pos += got;
                    continue;
                }
                // Refused: one page through /proc/PID/mem.
                let page_end = ((a + pos as u64) / PAGE_SIZE as u64 + 1) * PAGE_SIZE as u64;
                let step = ((page_end - (a + pos as u64)) as usize).min(l - pos);
                let f = match mem {
                    Some(f) => f,
                    None => {
                        if opened.is_none() {
                            opened = Some(open_mem(pid, false)?);
                        }
                        opened
                            .as_ref()
                            .ok_or_else(|| SysError::other("mem", "unreachable"))?
                    }
                };
                f.read_exact_at(
                    &mut buf[off + done + pos..off + done + pos + step],
                    a + pos as u64,
                )
                .map_err(|e| {
                    SysError::io(format!("read /proc/{pid}/mem at {:#x}", a + pos as u64), &e)
                })?;
                pos += step;
            }
            done += l;
        }
        off += glen;
    }
    Ok(())
}

/// One `process_vm_readv` call; returns the bytes read.
fn vm_readv(pid: pid_t, ranges: &[(u64, usize)], buf: &mut [u8]) -> Result<usize> {
    let local = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut c_void,
        iov_len: buf.len(),
    };
    let remote: Vec<libc::iovec> = ranges
        .iter()
        .map(|&(a, l)| libc::iovec {
            iov_base: a as *mut c_void,
            iov_len: l,
        })
        .collect();
    // SAFETY: `local` describes `buf`, which we borrow mutably; remote iovecs are only
    // addresses in the other process and are never dereferenced here.
    let n =
        unsafe { libc::process_vm_readv(pid, &local, 1, remote.as_ptr(), remote.len() as _, 0) };
    if n < 0 {
        return Err(SysError::last(format!("process_vm_readv pid {pid}")));
    }
    Ok(n as usize)
}

/// Write `data` at `addr` of `pid` (process_vm_writev, then /proc/PID/mem, which also
/// writes read-only private mappings).
pub fn write_remote(pid: pid_t, addr: u64, data: &[u8]) -> Result<()> {
    let local = libc::iovec {
        iov_base: data.as_ptr() as *mut c_void,
        iov_len: data.len(),
    };
    let remote = libc::iovec {
        iov_base: addr as *mut c_void,
        iov_len: data.len(),
    };
    // SAFETY: `local` describes `data` (only read by the kernel); `remote` is an address
    // in the other process.
    let n = unsafe { libc::process_vm_writev(pid, &local, 1, &remote, 1, 0) };
    if n >= 0 && n as usize == data.len() {
        return Ok(());
    }
    let done = if n > 0 { n as usize } else { 0 };
    let f = open_mem(pid, true)?;
    f.write_all_at(&data[done..], addr + done as u64)
        .map_err(|e| SysError::io(format!("write /proc/{pid}/mem at {addr:#x}"), &e))
}

/// Open `/proc/PID/mem` for reading (or reading and writing).
pub fn open_mem(pid: pid_t, write: bool) -> Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(write)
        .open(format!("/proc/{pid}/mem"))
        .map_err(|e| SysError::io(format!("open /proc/{pid}/mem"), &e))
}

// PAGEMAP_SCAN (include/uapi/linux/fs.h, Linux 6.7).
const PAGE_IS_FILE: u64 = 1 << 2;
const PAGE_IS_PRESENT: u64 = 1 << 3;
const PAGE_IS_SWAPPED: u64 = 1 << 4;
const PAGE_IS_PFNZERO: u64 = 1 << 5;
/// `_IOWR('f', 16, struct pm_scan_arg)`, 96-byte argument.
const PAGEMAP_SCAN: u64 = 0xC060_6610;

#[repr(C)]
#[derive(Default)]
struct PmScanArg {
    size: u64,
    flags: u64,
    start: u64,
    end: u64,
    walk_end: u64,
    vec: u64,
    vec_len: u64,
    max_pages: u64,
    category_inverted: u64,
    category_mask: u64,
    category_anyof_mask: u64,
    return_mask: u64,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct PageRegion {
    start: u64,
    end: u64,
    categories: u64,
}

/// Which pages to select in [`PageScan::scan`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Select {
    /// Present or swapped, and anonymous: not a page-cache (file or shmem) page, not the
    /// shared zero page. The pages of private mappings that exist nowhere else.
    Anon,
    /// Present or swapped, any backing except the zero page (for shared anonymous
    /// memory, whose pages are shmem pages).
    Present,
}

/// Which backend [`PageScan`] uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScanBackend {
    /// The `PAGEMAP_SCAN` ioctl.
    Ioctl,
    /// Reading `/proc/PID/pagemap` entries.
    Pagemap,
}

/// Page presence of one process (see the module docs).
#[derive(Debug)]
pub struct PageScan {
    pid: pid_t,
    file: File,
    backend: ScanBackend,
}

impl PageScan {
    /// Open `/proc/PID/pagemap`; probes `PAGEMAP_SCAN` and picks the backend.
    pub fn open(pid: pid_t) -> Result<PageScan> {
        let file = File::open(format!("/proc/{pid}/pagemap"))
            .map_err(|e| SysError::io(format!("open /proc/{pid}/pagemap"), &e))?;
        let mut s = PageScan {
            pid,
            file,
            backend: ScanBackend::Ioctl,
        };
        // Probe with an empty range.
        let mut regs = [PageRegion::default(); 1];
        if s.ioctl_scan(0, 0, Select::Anon, &mut regs).is_err() {
            s.backend = ScanBackend::Pagemap;
        }
        Ok(s)
    }

    /// Force a backend (for tests and for comparing them).
    pub fn set_backend(&mut self, b: ScanBackend) {
        self.backend = b;
    }

    /// The backend in use.
    pub fn backend(&self) -> ScanBackend {
        self.backend
    }

    fn ioctl_scan(
        &self,
        start: u64,
        end: u64,
        sel: Select,
        out: &mut [PageRegion],
    ) -> Result<(usize, u64)> {
        let (inv, mask) = match sel {
            Select::Anon => (
                PAGE_IS_FILE | PAGE_IS_PFNZERO,
                PAGE_IS_FILE | PAGE_IS_PFNZERO,
            ),
            Select::Present => (PAGE_IS_PFNZERO, PAGE_IS_PFNZERO),
        };
        let mut arg = PmScanArg {
            size: std::mem::size_of::<PmScanArg>() as u64,
            start,
            end,
            vec: out.as_mut_ptr() as u64,
            vec_len: out.len() as u64,
            category_inverted: inv,
            category_mask: mask,
            category_anyof_mask: PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
            return_mask: PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
            ..Default::default()
        };
        // SAFETY: `arg` is a valid pm_scan_arg whose `vec` points at `out`, a writable
        // array of `vec_len` page_region structs.
        let rc = unsafe {
            libc::ioctl(
                self.file.as_raw_fd(),
                PAGEMAP_SCAN as _,
                &mut arg as *mut PmScanArg,
            )
        };
        if rc < 0 {
            return Err(SysError::errno(
                format!("PAGEMAP_SCAN pid {}", self.pid),
                last_errno(),
            ));
        }
        Ok((rc as usize, arg.walk_end))
    }

    /// The selected pages of `[start, end)` as sorted, merged `(start, end)` byte ranges.
    pub fn scan(&mut self, start: u64, end: u64, sel: Select) -> Result<Vec<(u64, u64)>> {
        let mut out: Vec<(u64, u64)> = Vec::new();
        let push = |s: u64, e: u64, out: &mut Vec<(u64, u64)>| match out.last_mut() {
            Some(last) if last.1 == s => last.1 = e,
            _ => out.push((s, e)),
        };
        match self.backend {
            ScanBackend::Ioctl => {
                let mut regs = vec![PageRegion::default(); 4096];
                let mut pos = start;
                while pos < end {
                    let (n, walk_end) = self.ioctl_scan(pos, end, sel, &mut regs)?;
                    for r in &regs[..n] {
                        push(r.start, r.end, &mut out);
                    }
                    if walk_end <= pos {
                        break;
                    }
                    pos = walk_end;
                }
            }
            ScanBackend::Pagemap => {
                const BATCH: usize = 16384;
                let mut ent = vec![0u8; BATCH * 8];
                let mut page = start / PAGE_SIZE as u64;
                let last = end / PAGE_SIZE as u64;
                while page < last {
                    let n = ((last - page) as usize).min(BATCH);
                    self.file
                        .read_exact_at(&mut ent[..n * 8], page * 8)
                        .map_err(|e| {
                            SysError::io(format!("read /proc/{}/pagemap", self.pid), &e)
                        })?;
                    for i in 0..n {
                        let v =
                            u64::from_le_bytes(ent[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
                        let present = v & (1 << 63) != 0;
                        let swapped = v & (1 << 62) != 0;
                        let file_or_shared = v & (1 << 61) != 0;
                        let take =
                            (present || swapped) && (sel == Select::Present || !file_or_shared);
                        if take {
                            let a = (page + i as u64) * PAGE_SIZE as u64;
                            push(a, a + PAGE_SIZE as u64, &mut out);
                        }
                    }
                    page += n as u64;
                }
            }
        }
        Ok(out)
    }
}
