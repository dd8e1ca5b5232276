//! Pre-copy (incremental) capture: `--pre` writes memory while the target runs, and a later
//! capture with `--parent IMG` writes only the pages written since (docs/CAPTURE.md,
//! "Pre-copy"; the format: docs/FORMAT.md, "Parent images").
//!
//! Tracking is `ckpt_sys::track`: a userfaultfd of the target in asynchronous write-protect
//! mode. It lives as long as some process holds it, so `--pre` leaves a *holder* behind —
//! `ckpt-capture --hold-tracker PID FD`, in its own process group, doing nothing but keep the
//! descriptor, listening on the abstract unix socket `ckpt-track-PID-STARTTIME` — and the
//! next capture of that target takes the descriptor over (`pidfd_getfd`) and tells it to
//! go. The holder also goes when the target exits, or after an hour. A capture that finds no
//! holder (none left, or the target was never pre-copied) writes every page and no parent:
//! a full image, never a wrong one.
//!
//! Which pages an increment keeps in its parent, per VMA: the pages present now, minus the
//! pages written since the previous pass (a VMA the tracker does not cover — a file mapping,
//! one mapped since — counts as all written), and only those the parent chain has. Every
//! other present page is stored.

use crate::live::{self, PageEmitter};
use crate::{CaptureError, ErrorKind, Options, Producer, Progress, Stats};
use ckpt_format::{Event, EventSink, Extras, Header, Mm, ParentRef, Task};
use ckpt_sys::freeze::Release;
use ckpt_sys::mem::{self, PageScan};
use ckpt_sys::procfs::{self, MapEntry};
use ckpt_sys::track::{self, Tracker};
use ckpt_sys::PAGE_SIZE;
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a holder keeps tracking without being asked for it.
const HOLD_LIMIT: Duration = Duration::from_secs(3600);

fn sock_name(pid: i32) -> Option<String> {
    let st = procfs::stat(pid).ok()?;
    Some(format!("ckpt-track-{pid}-{}", st.ufield(22)))
}

fn io_err(ctx: &str) -> impl FnOnce(std::io::Error) -> CaptureError + '_ {
    move |e| CaptureError::new(ErrorKind::Io, format!("{ctx}: {e}"))
}

/// `ckpt-capture --hold-tracker PID FD`: keep descriptor FD (inherited) until a capture
/// takes it over, PID exits, or an hour passes. Returns the exit code.
pub fn hold(pid: i32, fd: i32) -> i32 {
    let Some(name) = sock_name(pid) else {
        return 1;
    };
    let Ok(addr) = SocketAddr::from_abstract_name(name.as_bytes()) else {
        return 3;
    };
    let Ok(listener) = UnixListener::bind_addr(&addr) else {
        return 3;
    };
    if listener.set_nonblocking(true).is_err() {
        return 3;
    }
    let start = Instant::now();
    while start.elapsed() < HOLD_LIMIT {
        if sock_name(pid).as_deref() != Some(name.as_str()) {
            return 0; // the target is gone
        }
        match listener.accept() {
            Ok((mut s, _)) => {
                let _ = s.set_nonblocking(false);
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                if writeln!(s, "{} {fd}", std::process::id()).is_err() {
                    continue;
                }
                let mut line = String::new();
                if BufReader::new(&s).read_line(&mut line).is_ok() && line.trim() == "done" {
                    return 0;
                }
            }
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    0
}

/// Take the tracking descriptor of `pid` over from its holder, if there is one.
pub fn take_over(pid: i32) -> Option<Tracker> {
    let name = sock_name(pid)?;
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).ok()?;
    let mut s = UnixStream::connect_addr(&addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let mut line = String::new();
    BufReader::new(&s).read_line(&mut line).ok()?;
    let mut it = line.split_whitespace().map(|x| x.parse::<i32>());
    let (Some(Ok(hpid)), Some(Ok(fd))) = (it.next(), it.next()) else {
        return None;
    };
    let got = track::fd_from(hpid, fd).ok()?;
    let _ = writeln!(s, "done");
    Some(Tracker::from_fd(got, pid))
}

/// Leave a holder process behind for `tracker` (module docs).
fn spawn_holder(pid: i32, tracker: &Tracker) -> Result<(), CaptureError> {
    use std::os::unix::process::CommandExt;
    let fd: &OwnedFd = tracker.fd();
    track::inheritable(fd).map_err(|e| CaptureError::sys("tracking descriptor", e))?;
    let exe = std::env::current_exe().map_err(io_err("ckpt-capture's own path"))?;
    let mut child = std::process::Command::new(exe)
        .arg("--hold-tracker")
        .arg(pid.to_string())
        .arg(fd.as_raw_fd().to_string())
        .process_group(0)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(io_err("starting the tracking holder"))?;
    // Ready when its socket answers (a probe that does not say "done").
    let name = sock_name(pid).unwrap_or_default();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(5) {
        if let Ok(Some(_)) = child.try_wait() {
            return Err(CaptureError::new(
                ErrorKind::Io,
                "the tracking holder exited at once",
            ));
        }
        let ok = SocketAddr::from_abstract_name(name.as_bytes())
            .and_then(|a| UnixStream::connect_addr(&a))
            .is_ok();
        if ok {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(CaptureError::new(
        ErrorKind::Io,
        "the tracking holder did not start listening",
    ))
}

/// Sorted, merged byte ranges `[start, end)`.
pub type Ranges = Vec<(u64, u64)>;

/// Sorted, merged byte ranges: `a` minus `b`.
fn subtract(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let mut out = Vec::new();
    let mut j = 0;
    for &(mut s, e) in a {
        while j < b.len() && b[j].1 <= s {
            j += 1;
        }
        let mut k = j;
        while s < e {
            match b.get(k) {
                Some(&(bs, be)) if bs < e => {
                    if bs > s {
                        out.push((s, bs));
                    }
                    s = s.max(be);
                    k += 1;
                }
                _ => {
                    out.push((s, e));
                    break;
                }
            }
        }
    }
    out
}

/// Sorted, merged byte ranges: `a` and `b`.
fn intersect(a: &[(u64, u64)], b: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() && j < b.len() {
        let s = a[i].0.max(b[j].0);
        let e = a[i].1.min(b[j].1);
        if s < e {
            out.push((s, e));
        }
        if a[i].1 < b[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    out
}

/// What an increment needs while it plans its VMAs (module docs).
pub struct Split {
    tracker: Option<Tracker>,
    pagemap: std::fs::File,
    /// Pages the parent chain has, per pid (merged ranges).
    cov: HashMap<i32, Vec<(u64, u64)>>,
    /// The parent reference for the header (None: no parent, a full image).
    pub parent: Option<ParentRef>,
    /// Protect written pages again (pre-copy passes; the final pass does not need it).
    protect: bool,
}

/// A VMA's `VmFlags` say it is registered for write-protect tracking (`uw`).
fn tracked(m: &MapEntry) -> bool {
    m.vm_flags.iter().any(|f| f == "uw")
}

impl Split {
    /// `present` (the pages that would be stored) cut into (stored, kept in the parent).
    pub fn split(
        &self,
        pid: i32,
        m: &MapEntry,
        present: Vec<(u64, u64)>,
    ) -> Result<(Ranges, Ranges), CaptureError> {
        let written = if self.tracker.is_some() && tracked(m) {
            track::scan_written(&self.pagemap, m.start, m.end, self.protect)
                .map_err(|e| CaptureError::sys(&format!("pid {pid} written pages"), e))?
        } else {
            vec![(m.start, m.end)]
        };
        let Some(cov) = self.cov.get(&pid) else {
            return Ok((present, Vec::new()));
        };
        let clean = subtract(&present, &written);
        let in_parent = intersect(&clean, cov);
        let store = subtract(&present, &in_parent);
        Ok((store, in_parent))
    }
}

/// The parent reference of an image at `parent`, written into an image at `out`: the
/// file name when both are in one directory, else the absolute path.
fn parent_ref(parent: &Path, out: Option<&Path>, tail: (u64, u64, u32)) -> ParentRef {
    let abs = std::fs::canonicalize(parent).unwrap_or_else(|_| parent.to_path_buf());
    let out_dir = out.and_then(|o| {
        std::fs::canonicalize(
            o.parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new(".")),
        )
        .ok()
    });
    let path: PathBuf = match (abs.parent(), out_dir) {
        (Some(d), Some(od)) if d == od => abs.file_name().map(PathBuf::from).unwrap_or(abs.clone()),
        _ => abs.clone(),
    };
    use std::os::unix::ffi::OsStrExt;
    ParentRef {
        records: tail.0,
        bytes: tail.1,
        stream_crc: tail.2,
        path: path.as_os_str().as_bytes().to_vec(),
    }
}

/// Prepare an increment of `pid` over the image `parent` (None: a first pre-copy pass).
/// `tracker` is the tracking taken over (or just created). Without tracking, or when the
/// parent cannot be read, the capture is full (`parent` stays None in the result).
pub fn prepare(
    pid: i32,
    parent: Option<&Path>,
    out: Option<&Path>,
    tracker: Option<Tracker>,
    protect: bool,
) -> Result<Split, CaptureError> {
    let pagemap =
        std::fs::File::open(format!("/proc/{pid}/pagemap")).map_err(io_err("open pagemap"))?;
    let mut split = Split {
        tracker,
        pagemap,
        cov: HashMap::new(),
        parent: None,
        protect,
    };
    let Some(pp) = parent else {
        return Ok(split);
    };
    if split.tracker.is_none() {
        eprintln!(
            "ckpt-capture: no write tracking of pid {pid} found (no pre-copy holder): writing every page, no parent"
        );
        return Ok(split);
    }
    let map = |p: &Path| ckpt_restore::map_image_lazy(&std::fs::File::open(p)?);
    let m = map(pp).map_err(io_err(&format!("parent image {}", pp.display())))?;
    let ancestors = ckpt_format::chain::load_parents(pp, &m, map)
        .map_err(io_err(&format!("parents of {}", pp.display())))?;
    let mut chain: Vec<&[u8]> = vec![&m[..]];
    chain.extend(ancestors.iter().map(|a| &a[..]));
    // Which pages the chain has is all a capture needs: records checked, page contents not
    // read (restore and inspection check those).
    let opts = ckpt_format::ReadOptions {
        check_page_data: false,
    };
    let index = ckpt_format::chain::index_chain_with(&chain, opts).map_err(|e| {
        CaptureError::new(ErrorKind::Io, format!("parent image {}: {e}", pp.display()))
    })?;
    split.cov = index.coverage();
    let tail = ckpt_format::chain::tail_numbers(&m).unwrap_or_default();
    split.parent = Some(parent_ref(pp, out, tail));
    Ok(split)
}

/// After a pass: leave the tracking with a holder for the next one (pre-copy), or let it
/// go (the final capture: closing the descriptor unregisters everything).
pub fn finish(pid: i32, split: Split, keep: bool) -> Result<(), CaptureError> {
    match split.tracker {
        Some(t) if keep => spawn_holder(pid, &t),
        _ => Ok(()),
    }
}

/// A pre-copy pass (`--pre`): the memory of one process, read while it runs.
pub struct PreCapture {
    opts: Options,
    parent: Option<PathBuf>,
    out: Option<PathBuf>,
}

impl PreCapture {
    /// A pass over `opts.pid`, an increment of `parent` when given; `out` is where the
    /// image goes (for the parent's path hint).
    pub fn new(opts: Options, parent: Option<PathBuf>, out: Option<PathBuf>) -> PreCapture {
        PreCapture { opts, parent, out }
    }
}

fn fmt_err(e: ckpt_format::Error) -> CaptureError {
    CaptureError::format(e)
}

impl Producer for PreCapture {
    fn produce(
        &mut self,
        sink: &mut dyn EventSink,
        stats: &mut Stats,
        progress: &mut dyn Progress,
    ) -> Result<(), CaptureError> {
        let pid = self.opts.pid;
        if pid <= 0 || !procfs::exists(pid) {
            return Err(CaptureError::new(
                ErrorKind::NoSuchProcess,
                format!("no process with pid {pid}"),
            ));
        }
        // Tracking taken over from the previous pass and the parent chain indexed before
        // the target is stopped; without a holder, tracking starts now (a full pass).
        let mut split = prepare(
            pid,
            self.parent.as_deref(),
            self.out.as_deref(),
            take_over(pid),
            true,
        )?;
        let frozen_at = Instant::now();
        let mut frozen = live::freeze_one(pid)
            .map_err(|e| CaptureError::sys(&format!("freeze pid {pid}"), e))?;
        let tids = frozen.threads();
        if split.tracker.is_none() {
            let mut inj = ckpt_sys::inject::Injector::new(tids[0])
                .map_err(|e| CaptureError::sys(&format!("pid {pid}"), e))?;
            let t = Tracker::create(&mut inj, pid);
            inj.finish()
                .map_err(|e| CaptureError::sys(&format!("pid {pid}"), e))?;
            split.tracker =
                Some(t.map_err(|e| CaptureError::sys(&format!("pid {pid}: write tracking"), e))?);
        }
        let tracker = split
            .tracker
            .as_ref()
            .ok_or_else(|| CaptureError::new(ErrorKind::Io, "no tracker"))?;
        // Register every anonymous VMA not registered yet.
        let maps =
            procfs::smaps(pid).map_err(|e| CaptureError::sys(&format!("pid {pid} smaps"), e))?;
        for m in &maps {
            let (_, _, store) = live::classify(m);
            let anon = matches!(store, live::Store::Scan(_)) && m.inode == 0;
            if anon && !tracked(m) {
                // A VMA the kernel will not track stays "all written": no error.
                let _ = tracker.register(m.start, m.end);
            }
        }
        let maps =
            procfs::smaps(pid).map_err(|e| CaptureError::sys(&format!("pid {pid} smaps"), e))?;
        let stat = procfs::stat(pid).map_err(|e| CaptureError::sys(&format!("pid {pid}"), e))?;
        let mut h: Header = live::header();
        h.parent = split.parent.clone();
        sink.event(&Event::Header(h)).map_err(fmt_err)?;
        sink.event(&Event::Task(Task {
            pid,
            tgid: pid,
            comm: stat.comm.clone(),
            ..Task::default()
        }))
        .map_err(fmt_err)?;
        sink.event(&Event::Mm(Mm {
            extras: Extras::new(),
            ..Mm::default()
        }))
        .map_err(fmt_err)?;
        stats.tasks = 1;
        // Plan while frozen: written pages are protected again in the same walk, so a
        // write after this point shows in the next pass.
        let mut scan =
            PageScan::open(pid).map_err(|e| CaptureError::sys(&format!("pid {pid}"), e))?;
        let mut plan = Vec::new();
        for m in &maps {
            let (vma, store) = live::vma_of(m);
            let present = match store {
                live::Store::Nothing => Vec::new(),
                live::Store::All => vec![(m.start, m.end)],
                live::Store::Scan(sel) => scan
                    .scan(m.start, m.end, sel)
                    .map_err(|e| CaptureError::sys(&format!("pid {pid} page scan"), e))?,
            };
            let (store, parent) = split.split(pid, m, present)?;
            plan.push((vma, store, parent));
        }
        frozen
            .release(Release::Run)
            .map_err(|e| CaptureError::sys(&format!("release pid {pid}"), e))?;
        stats.frozen = frozen_at.elapsed();
        // Read while the target runs (module docs: a page written meanwhile is in the
        // next pass's written set).
        let memf =
            mem::open_mem(pid, false).map_err(|e| CaptureError::sys(&format!("pid {pid}"), e))?;
        let batch_bytes = live::BATCH_BYTES;
        let mut buf = vec![0u8; batch_bytes];
        let mut em = PageEmitter::new(sink, self.opts.chunk_pages);
        for (vma, store, parent) in &plan {
            em.sink.event(&Event::Vma(vma.clone())).map_err(fmt_err)?;
            stats.vmas += 1;
            let mut pi = 0;
            for b in live::batches_of(0, store, parent, batch_bytes) {
                em.parents(parent, &mut pi, b.ranges[0].0)?;
                let data = &mut buf[..b.len];
                if mem::read_ranges(pid, &b.ranges, data, Some(&memf)).is_err() {
                    // Unmapped meanwhile: absent at the next pass, or written again.
                    data.fill(0);
                }
                em.batch(&b.ranges, data)?;
                progress.advance((b.len / PAGE_SIZE) as u64);
            }
            em.parents(parent, &mut pi, u64::MAX)?;
            em.flush_zero()?;
            em.sink.event(&Event::VmaEnd).map_err(fmt_err)?;
        }
        stats.pages_stored += em.stored;
        stats.zero_pages += em.zeros;
        stats.parent_pages += em.parent_pages;
        split.protect = false;
        finish(pid, split, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_arithmetic() {
        let a = vec![(0, 10), (20, 30), (40, 50)];
        let b = vec![(5, 22), (25, 26), (45, 60)];
        assert_eq!(subtract(&a, &b), vec![(0, 5), (22, 25), (26, 30), (40, 45)]);
        assert_eq!(
            intersect(&a, &b),
            vec![(5, 10), (20, 22), (25, 26), (45, 50)]
        );
        assert_eq!(subtract(&a, &[]), a);
        assert_eq!(subtract(&a, &[(0, 100)]), vec![]);
        assert_eq!(intersect(&a, &[]), vec![]);
        // Every present page is either stored or kept in the parent, never both.
        let present = vec![(0, 100)];
        let written = vec![(10, 20), (50, 60)];
        let cov = vec![(0, 15), (30, 80)];
        let keep = intersect(&subtract(&present, &written), &cov);
        assert_eq!(keep, vec![(0, 10), (30, 50), (60, 80)]);
        assert_eq!(
            subtract(&present, &keep),
            vec![(10, 30), (50, 60), (80, 100)]
        );
    }
}
