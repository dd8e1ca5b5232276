//! `ckpt-capture` — capture running Linux x86-64 processes into checkpoint images.
//!
//! # Producers
//! A *producer* is anything that can emit the events of an image into an
//! [`EventSink`](ckpt_format::EventSink): the [`Producer`] trait. The live backend,
//! [`live::LiveCapture`], is one; another backend (a core file, a snapshot of a VM, a
//! synthetic generator) implements the same trait and gets the output handling of this
//! crate for free ([`capture_to_path`], [`capture_to_writer`]: temporary file renamed into
//! place, an `Error` event closing a stream on failure, statistics).
//!
//! The producer drives the sink (push model) rather than being an `EventSource`
//! (pull model): live capture has to hold every thread stopped for the whole capture and
//! release them on every exit path, which is a scope, not an iterator; and page data
//! can then be lent straight from one reusable read buffer. Wrap a producer in a channel
//! or a thread if a pull interface is needed.
//!
//! A producer emits `Header task*`; the driver adds `Tail` on success, or
//! (`VmaEnd`,) `Error`, `Tail` on failure, and calls `finish`.
//!
//! ```no_run
//! use ckpt_capture::{capture_to_path, live::LiveCapture, Options};
//! let opts = Options::new(1234);
//! let stats = capture_to_path(&mut LiveCapture::new(opts.clone()), &opts, "out.ckpt".as_ref(), None).unwrap();
//! eprintln!("{} pages, {} zero pages elided", stats.pages_stored, stats.zero_pages);
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod anon;
mod diag;
pub mod direct;
mod fown;
pub mod live;
mod pidfd;
pub mod precopy;
mod seccomp;
mod sockets;
mod timers;
mod ttys;
mod uncarried;

use ckpt_format::{Event, EventSink};
use std::fmt;
use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, Instant};

/// What to do with the target after a successful capture. After a *failed* capture the
/// target is always left running as it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Leave {
    /// Detach; the target continues exactly where it was.
    #[default]
    Running,
    /// Leave it stopped (`SIGSTOP`); `kill -CONT` resumes it.
    Stopped,
    /// Kill it (`SIGKILL`).
    Killed,
}

/// Identity of the file or pipe the image is written to, to refuse writing into an
/// object the target itself holds (deadlock or corruption).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OutputIdent {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
    /// True for a pipe or FIFO (refused whichever end the target holds).
    pub pipe: bool,
}

/// Capture options.
#[derive(Clone, Debug)]
pub struct Options {
    /// The process (or root of the tree) to capture.
    pub pid: i32,
    /// Capture the process and all its descendants.
    pub tree: bool,
    /// What to do with the target afterwards.
    pub leave: Leave,
    /// Record sockets and anonymous inodes as unsupported files instead of failing.
    pub allow_unsupported: bool,
    /// With [`Leave::Killed`] and without `tree`: kill the process even though its
    /// children are not captured (they are orphaned). Refused otherwise.
    pub orphan_children: bool,
    /// A unix socket whose peer is outside the captured processes is recorded as
    /// disconnected (restored as a connection whose peer has gone: its queued bytes, then
    /// end of file) instead of refused.
    pub disconnect_sockets: bool,
    /// Pages per `Pages` event (default 256).
    pub chunk_pages: usize,
    /// Objects the output goes to (checked against the target's fds).
    pub output: Vec<OutputIdent>,
    /// Bytes of target memory read per `process_vm_readv` batch (default
    /// [`live::BATCH_BYTES`], rounded down to pages).
    pub batch_bytes: usize,
    /// Read the next batch on a second thread while the current one is written (default
    /// off: on this machine kind it measured no faster than reading and writing in turn).
    pub pipeline: bool,
    /// Write an image file with `O_DIRECT` behind the capture ([`direct`]; default on;
    /// file systems that refuse it are written the ordinary way).
    pub direct: bool,
}

impl Options {
    /// Defaults for capturing `pid`.
    pub fn new(pid: i32) -> Options {
        Options {
            pid,
            tree: false,
            leave: Leave::Running,
            allow_unsupported: false,
            orphan_children: false,
            disconnect_sockets: false,
            chunk_pages: 256,
            output: Vec::new(),
            batch_bytes: live::BATCH_BYTES,
            pipeline: false,
            direct: true,
        }
    }
}

/// What a capture did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Tasks (processes) captured.
    pub tasks: u64,
    /// Threads captured.
    pub threads: u64,
    /// VMAs captured.
    pub vmas: u64,
    /// Pages whose contents were stored.
    pub pages_stored: u64,
    /// All-zero pages recorded as zero runs instead of contents.
    pub zero_pages: u64,
    /// Pages kept in the parent image (an increment, `--parent`).
    pub parent_pages: u64,
    /// Bytes of image written.
    pub bytes: u64,
    /// Time the target was stopped.
    pub frozen: Duration,
    /// Total time of the capture.
    pub total: Duration,
    /// What the image records without its state (`--allow-unsupported`): restore leaves
    /// these out. One line each.
    pub left_out: Vec<String>,
    /// Things the user should know (e.g. the image would not restore here). One each.
    pub warnings: Vec<String>,
}

impl Stats {
    /// One JSON object on one line (`--json`).
    pub fn to_json(&self) -> String {
        serde_json::json!({
            "tasks": self.tasks,
            "threads": self.threads,
            "vmas": self.vmas,
            "pages_stored": self.pages_stored,
            "zero_pages_elided": self.zero_pages,
            "pages_in_parent": self.parent_pages,
            "bytes": self.bytes,
            "frozen_s": self.frozen.as_secs_f64(),
            "total_s": self.total.as_secs_f64(),
        })
        .to_string()
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "captured {} task(s), {} thread(s), {} VMAs: {} pages stored, {} zero pages elided, {} bytes written; frozen {:.3} s, total {:.3} s",
            self.tasks,
            self.threads,
            self.vmas,
            self.pages_stored,
            self.zero_pages,
            self.bytes,
            self.frozen.as_secs_f64(),
            self.total.as_secs_f64()
        )
    }
}

/// Why a capture failed; [`CaptureError::exit_code`] maps it to the command's exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// No such process.
    NoSuchProcess,
    /// We may not trace or read the target.
    Permission,
    /// The target exited or changed in a way that stopped the capture.
    Target,
    /// The target holds something we cannot capture (socket, eventfd ...).
    Unsupported,
    /// Refused to write the image into an object the target holds, or to orphan
    /// children with `--kill`.
    Refused,
    /// `--kill` refused: the image would not be restorable here (target left running).
    Unrestorable,
    /// The kernel lacks a facility we need.
    Facility,
    /// Our own I/O (writing the image) or another system error.
    Io,
}

/// A capture error: kind and a message for humans.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureError {
    /// Classification.
    pub kind: ErrorKind,
    /// What happened, naming the pid/fd/address involved.
    pub msg: String,
}

impl CaptureError {
    /// New error.
    pub fn new(kind: ErrorKind, msg: impl Into<String>) -> CaptureError {
        CaptureError {
            kind,
            msg: msg.into(),
        }
    }
    /// Exit code ([`ckpt_format::exit`]): 1 refused or failed because of the target, 3
    /// environment (I/O, a kernel facility, not permitted).
    pub fn exit_code(&self) -> i32 {
        match self.kind {
            ErrorKind::NoSuchProcess
            | ErrorKind::Target
            | ErrorKind::Unsupported
            | ErrorKind::Refused
            | ErrorKind::Unrestorable => ckpt_format::exit::REFUSED,
            ErrorKind::Permission | ErrorKind::Facility | ErrorKind::Io => {
                ckpt_format::exit::ENVIRONMENT
            }
        }
    }
    pub(crate) fn sys(context: &str, e: ckpt_sys::SysError) -> CaptureError {
        let kind = if e.is_gone() {
            ErrorKind::Target
        } else if e.is_permission() {
            ErrorKind::Permission
        } else if e.is_unsupported() {
            ErrorKind::Facility
        } else {
            ErrorKind::Io
        };
        CaptureError::new(kind, format!("{context}: {e}"))
    }
    pub(crate) fn format(e: ckpt_format::Error) -> CaptureError {
        CaptureError::new(ErrorKind::Io, format!("writing the image: {e}"))
    }
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for CaptureError {}

/// Progress reporting (a progress bar in the CLI). Units are pages.
pub trait Progress {
    /// More work became known.
    fn add_total(&mut self, pages: u64);
    /// Work done.
    fn advance(&mut self, pages: u64);
}

/// A [`Progress`] that ignores everything.
pub struct NoProgress;

impl Progress for NoProgress {
    fn add_total(&mut self, _: u64) {}
    fn advance(&mut self, _: u64) {}
}

/// Something that emits the events of an image (see the crate docs).
pub trait Producer {
    /// Emit `Header task*` into `sink` (not the `Tail`, not `finish`). Update `stats`
    /// (everything but `bytes` and `total`) as it goes.
    fn produce(
        &mut self,
        sink: &mut dyn EventSink,
        stats: &mut Stats,
        progress: &mut dyn Progress,
    ) -> Result<(), CaptureError>;

    /// Called once the image is completely written and committed (renamed into place,
    /// or flushed into a stream): the live backend kills its target here with
    /// [`Leave::Killed`], so that a failed write never costs the process. Dropping the
    /// producer without this call releases whatever it holds unharmed.
    fn after_commit(&mut self) -> Result<(), CaptureError> {
        Ok(())
    }
}

/// Forwards events, remembering whether a VMA is open so that a failure can close it.
struct Tracking<'a> {
    inner: &'a mut dyn EventSink,
    vma_open: bool,
}

impl EventSink for Tracking<'_> {
    fn event(&mut self, ev: &Event<'_>) -> ckpt_format::Result<()> {
        self.inner.event(ev)?;
        match ev {
            Event::Vma(_) => self.vma_open = true,
            Event::VmaEnd => self.vma_open = false,
            _ => {}
        }
        Ok(())
    }
    fn finish(&mut self) -> ckpt_format::Result<()> {
        self.inner.finish()
    }
}

/// Run `producer` into `sink`: on success add the `Tail`, on failure close the stream with
/// an `Error` event (and `Tail`) so that a reader sees an explicitly incomplete image.
pub fn drive(
    producer: &mut dyn Producer,
    sink: &mut dyn EventSink,
    progress: &mut dyn Progress,
) -> Result<Stats, CaptureError> {
    let start = Instant::now();
    let mut stats = Stats::default();
    let mut t = Tracking {
        inner: sink,
        vma_open: false,
    };
    match producer.produce(&mut t, &mut stats, progress) {
        Ok(()) => {
            t.event(&Event::Tail).map_err(CaptureError::format)?;
            t.finish().map_err(CaptureError::format)?;
            stats.total = start.elapsed();
            Ok(stats)
        }
        Err(e) => {
            // Best effort: the stream may be broken already (I/O error).
            if t.vma_open {
                let _ = t.event(&Event::VmaEnd);
            }
            let _ = t.event(&Event::Error(e.msg.clone().into_bytes()));
            let _ = t.event(&Event::Tail);
            let _ = t.finish();
            Err(e)
        }
    }
}

/// Counts bytes written through it.
struct Counting<W> {
    w: W,
    n: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        let k = self.w.write(b)?;
        self.n
            .fetch_add(k as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(k)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

/// Run `producer` into a native-1 encoder over `w`; the statistics with `bytes` set.
fn write_image(
    producer: &mut dyn Producer,
    w: impl Write,
    progress: Option<&mut dyn Progress>,
) -> Result<Stats, CaptureError> {
    let n = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut enc = ckpt_format::native::Encoder::new(Counting { w, n: n.clone() });
    let mut np = NoProgress;
    let mut s = drive(producer, &mut enc, progress.unwrap_or(&mut np))?;
    drop(enc);
    s.bytes = n.load(std::sync::atomic::Ordering::Relaxed);
    Ok(s)
}

/// Capture into any writer (e.g. stdout). On failure the stream ends with an `Error`
/// event. `opts.output` should identify `w` (see [`ident_of_fd`]) for the self-write
/// check. The target is killed ([`Leave::Killed`]) only after the last byte is written.
pub fn capture_to_writer(
    producer: &mut dyn Producer,
    mut w: impl Write,
    progress: Option<&mut dyn Progress>,
) -> Result<Stats, CaptureError> {
    let s = write_image(producer, &mut w, progress)?;
    w.flush()
        .map_err(|e| CaptureError::new(ErrorKind::Io, format!("writing the image: {e}")))?;
    producer.after_commit()?;
    Ok(s)
}

/// Capture into `path`, opened by [`ckpt_format::output::Output`]: a new or regular
/// file is written to a temporary file in the same directory and renamed into place
/// only on success (removed on failure); an existing FIFO or device is written
/// through, never replaced; a symbolic link is followed; a directory is refused. The
/// target is killed ([`Leave::Killed`]) only after the image is committed. With
/// `opts.direct` a new or replaced file is written with `O_DIRECT` ([`direct`]).
pub fn capture_to_path(
    producer: &mut dyn Producer,
    opts: &Options,
    path: &Path,
    progress: Option<&mut dyn Progress>,
) -> Result<Stats, CaptureError> {
    let mut out = ckpt_format::output::Output::create(path)
        .map_err(|e| CaptureError::new(ErrorKind::Io, e.to_string()))?;
    let io_err = |e: io::Error| CaptureError::new(ErrorKind::Io, format!("writing the image: {e}"));
    let replace = matches!(out.target(), ckpt_format::output::Target::Replace { .. });
    let dw = match out.file() {
        Some(f) if opts.direct && replace => direct::DirectWriter::over(f).map_err(io_err)?,
        _ => None,
    };
    let s = match dw {
        Some(mut w) => {
            let s = write_image(producer, &mut w, progress)?;
            w.flush().map_err(io_err)?;
            s
        }
        None => write_image(producer, &mut out, progress)?,
    };
    out.commit().map_err(io_err)?;
    producer.after_commit()?;
    Ok(s)
}

/// The [`OutputIdent`] of one of our descriptors (e.g. 1 for stdout).
pub fn ident_of_fd(fd: i32) -> Option<OutputIdent> {
    ckpt_sys::files::fstat(fd).ok().map(ident_of_stat)
}

/// The [`OutputIdent`] of an existing path (None if it does not exist).
pub fn ident_of_path(path: &Path) -> Option<OutputIdent> {
    ckpt_sys::files::stat_path(&path.to_string_lossy())
        .ok()
        .map(ident_of_stat)
}

fn ident_of_stat(st: libc::stat) -> OutputIdent {
    OutputIdent {
        dev: st.st_dev,
        ino: st.st_ino,
        pipe: st.st_mode & libc::S_IFMT == libc::S_IFIFO,
    }
}
