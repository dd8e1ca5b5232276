//! `ckpt-restore` — recreate a captured Linux x86-64 process so that it continues exactly.
//!
//! Restore is one consumer of the image model: [`Plan::collect`] drains any
//! [`ckpt_format::EventSource`] (an image of any supported revision, decoded by
//! `ckpt_format::open_slice`/`open_reader`, or any other producer) into a checked
//! [`Plan`]; [`restore_plan`] builds the processes. Another backend (a restore into a
//! VM, a different kernel interface) consumes the same `Plan`.
//!
//! ```no_run
//! let bytes = std::fs::read("img.ckpt").unwrap();
//! let pids = ckpt_restore::restore_bytes(&bytes, &ckpt_restore::Options::default()).unwrap();
//! println!("{pids:?}");
//! ```
//!
//! See `docs/RESTORE.md` for how it works and what is restored.
#![deny(missing_docs)]

pub mod anon;
pub mod caps;
pub mod check;
pub mod grant;
mod pidns;
pub mod plan;
mod restore;
pub mod signals;
pub mod sockets;
mod sys;
pub mod timers;
pub mod tree;
pub mod vdso;
pub mod xsave;

pub use plan::{Plan, PlanError};
use std::path::PathBuf;

/// How pids are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PidMode {
    /// The original pids where free, otherwise the kernel's choice (said on stderr).
    #[default]
    Prefer,
    /// The original pids or an error.
    Same,
    /// Never ask for the original pids.
    Any,
    /// Every process gets its original pid inside a new pid namespace, whose pid 1 is a
    /// small init of ours that reaps orphans and exits with the tree (`--pid-ns`, see
    /// `pidns`): for a tree whose pids are taken here, or whose parents wait for their
    /// children by pid. Its processes see their captured pids; outside the namespace
    /// they have other ones (those are returned).
    Namespace,
}

/// Restore options.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// Pid policy.
    pub pid_mode: PidMode,
    /// Leave the restored process stopped (`SIGSTOP`), detached.
    pub leave_stopped: bool,
    /// Resolve every path of the image inside this directory.
    pub root: Option<PathBuf>,
    /// A terminal of the image that another session holds now is replaced by
    /// ckpt-restore's own (its stdin, stdout or stderr terminal), said on stderr; without
    /// this the restore is refused ([`check::tty_conflicts`]).
    pub reattach_tty: bool,
}

/// Why a restore failed. Nothing half-restored ever runs: the process being built is
/// killed before the error is returned.
#[derive(Debug)]
pub enum Error {
    /// The image is broken, incomplete, or holds something this restorer cannot restore.
    Image(String),
    /// This machine or caller differs from what the image needs (one message per difference).
    Incompatible(Vec<String>),
    /// A file of the image cannot be opened (or changed since the capture).
    Files(String),
    /// `--pid-same` and a pid is taken.
    Pid(String),
    /// A system call failed while building the process.
    System(String),
}

impl Error {
    /// Process exit code for the command ([`ckpt_format::exit`]): 1 image,
    /// compatibility, files, pid (refused); 3 system (environment).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::System(_) => ckpt_format::exit::ENVIRONMENT,
            _ => ckpt_format::exit::REFUSED,
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Image(s) if s.contains('\n') => {
                write!(f, "image cannot be restored:")?;
                for l in s.lines() {
                    write!(f, "\n  {l}")?;
                }
                Ok(())
            }
            Error::Image(s) => write!(f, "image cannot be restored: {s}"),
            Error::Incompatible(v) => {
                write!(f, "image is not compatible with this machine:")?;
                for s in v {
                    write!(f, "\n  - {s}")?;
                }
                Ok(())
            }
            Error::Files(s) => write!(f, "files: {s}"),
            Error::Pid(s) => write!(f, "pid: {s}"),
            Error::System(s) => write!(f, "restore failed: {s}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<PlanError> for Error {
    fn from(e: PlanError) -> Error {
        Error::Image(e.0)
    }
}

/// Restore a checked plan. `image` holds the bytes that [`plan::PageData::Mapped`]
/// ranges refer to (the buffer the plan was collected from; empty if none).
pub fn restore_plan(plan: &Plan, image: &[u8], opts: &Options) -> Result<Vec<i32>, Error> {
    if plan.pages_elided {
        return Err(Error::Image(
            "this plan was collected for checks only (page contents not kept)".into(),
        ));
    }
    // Said on every restore of such an image, before anything is created.
    for l in &plan.left_out {
        eprintln!("ckpt-restore: left out (captured with --allow-unsupported, not restored): {l}");
    }
    let root = opts
        .root
        .clone()
        .unwrap_or_else(|| std::path::PathBuf::from("/"));
    let ttys = check::tty_conflicts(plan, &root);
    if ttys.is_empty() {
        return restore::restore(plan, image, opts);
    }
    if !opts.reattach_tty {
        return Err(Error::Incompatible(
            ttys.iter().map(|c| c.to_string()).collect(),
        ));
    }
    let Some(ours) = own_tty() else {
        return Err(Error::Incompatible(
            ttys.iter()
                .map(|c| format!("{c}; but ckpt-restore has no terminal to re-attach it to"))
                .collect(),
        ));
    };
    let mut p = plan.clone();
    for c in &ttys {
        if let Some(f) = p.files.get_mut(&c.file) {
            f.path = ours.clone();
            f.pos = 0;
            // Another terminal: its settings and size are its own.
            f.records.tty = None;
        }
        eprintln!(
            "ckpt-restore: pid {} fd {}: {} is {} now; re-attached to {} (--reattach-tty)",
            c.pid,
            c.fd,
            String::from_utf8_lossy(&c.path),
            c.now(),
            String::from_utf8_lossy(&ours)
        );
    }
    restore::restore(&p, image, opts)
}

/// The path of ckpt-restore's terminal: the first of stdin, stdout, stderr that is one.
fn own_tty() -> Option<Vec<u8>> {
    use std::io::IsTerminal;
    use std::os::unix::ffi::OsStrExt;
    let which = if std::io::stdin().is_terminal() {
        0
    } else if std::io::stdout().is_terminal() {
        1
    } else if std::io::stderr().is_terminal() {
        2
    } else {
        return None;
    };
    std::fs::read_link(format!("/proc/self/fd/{which}"))
        .ok()
        .map(|p| p.as_os_str().as_bytes().to_vec())
}

/// Decode an image of any supported revision from memory (e.g. a mapped file), check
/// it completely (page checksums included), then restore it. Returns the pids.
pub fn restore_bytes(bytes: &[u8], opts: &Options) -> Result<Vec<i32>, Error> {
    let mut src =
        ckpt_format::open_slice(bytes).map_err(|e| Error::Image(format!("broken image: {e}")))?;
    let plan = Plan::collect(&mut *src, Some(bytes))?;
    drop(src);
    restore_plan(&plan, bytes, opts)
}

/// Restore a pre-copy increment: `bytes` is the image, `parents` its parent images newest
/// first (docs/FORMAT.md, "Parent images"). Every image of the chain is checked
/// completely, and each link against the tail its child names, before anything is
/// created; pages kept in a parent are taken from the parent's bytes.
pub fn restore_chain(bytes: &[u8], parents: &[&[u8]], opts: &Options) -> Result<Vec<i32>, Error> {
    if parents.is_empty() {
        return restore_bytes(bytes, opts);
    }
    let index = ckpt_format::chain::index_chain(parents)
        .map_err(|e| Error::Image(format!("broken parent image: {e}")))?;
    let src =
        ckpt_format::open_slice(bytes).map_err(|e| Error::Image(format!("broken image: {e}")))?;
    let mut flat = ckpt_format::chain::Flatten::new(src, index);
    let plan = Plan::collect(&mut flat, Some(bytes))?;
    drop(flat);
    restore_plan(&plan, bytes, opts)
}

/// Restore an image read from a stream (a pipe, stdin): decoded with bounded buffers;
/// input that is not an image is refused from its first bytes; page contents go to an
/// unlinked temporary file in `$TMPDIR` (not memory) while the whole image is checked,
/// page checksums included, before anything is created, then they are written into the
/// new processes from that file's mapping, as from a mapped image file.
pub fn restore_reader(r: impl std::io::Read, opts: &Options) -> Result<Vec<i32>, Error> {
    let mut src = ckpt_format::open_reader(r).map_err(|e| {
        Error::Image(format!(
            "the input is not a checkpoint image this restorer reads: {e}"
        ))
    })?;
    let spool = tempfile_in_tmp()
        .map_err(|e| Error::System(format!("creating a temporary file for the stream: {e}")))?;
    let spool2 = spool
        .try_clone()
        .map_err(|e| Error::System(format!("temporary file: {e}")))?;
    let mut c = plan::Collector::spooling(spool2);
    loop {
        let off = src.offset();
        let ev = match src.next_event() {
            Ok(Some(ev)) => ev,
            Ok(None) => break,
            Err(e) => return Err(Error::Image(format!("broken image: {e}"))),
        };
        if let Err(e) = c.push(off, ev, None) {
            return Err(match c.take_spool_error() {
                Some(_) => Error::System(e.0),
                None => Error::Image(e.0),
            });
        }
    }
    drop(src);
    let plan = c.finish()?;
    let len = spool
        .metadata()
        .map_err(|e| Error::System(format!("temporary file: {e}")))?
        .len();
    if len == 0 {
        return restore_plan(&plan, &[], opts);
    }
    let map = sys::map_image(&spool)
        .map_err(|e| Error::System(format!("mapping the spooled page contents: {e}")))?;
    restore_plan(&plan, &map, opts)
}

/// An unlinked temporary file in `$TMPDIR` (or /tmp).
fn tempfile_in_tmp() -> std::io::Result<std::fs::File> {
    tempfile::tempfile()
}

/// Map an image file read-only (populated ahead, read sequentially).
pub fn map_image(f: &std::fs::File) -> std::io::Result<memmap2::Mmap> {
    sys::map_image(f)
}

/// Map an image file read-only without reading it ahead: only the pages touched are read
/// (records of an image whose page contents are not needed).
pub fn map_image_lazy(f: &std::fs::File) -> std::io::Result<memmap2::Mmap> {
    sys::map_image_lazy(f)
}
