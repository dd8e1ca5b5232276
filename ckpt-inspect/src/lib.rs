//! `ckpt-inspect` as a library: the pieces the binary's subcommands call.
//!
//! Every command reads an image through [`source::Image`] (mmap for regular
//! files, a bounded stream for pipes), writes its report to any `io::Write`,
//! and returns a [`Failure`] that carries the exit code (docs/INSPECT.md).

pub mod check;
pub mod core_export;
pub mod criu;
pub mod diff;
pub mod fmt;
pub mod fsview;
pub mod mem;
pub mod progress;
pub mod records;
pub mod render;
pub mod source;
pub mod summary;
pub mod verify;

use std::io;

/// Exit code: success.
pub const EXIT_OK: i32 = ckpt_format::exit::OK;
/// Exit code: invalid image, failed verification, differences found, range not captured.
pub const EXIT_INVALID: i32 = ckpt_format::exit::REFUSED;
/// Exit code: usage error.
pub const EXIT_USAGE: i32 = ckpt_format::exit::USAGE;
/// Exit code: I/O or system error.
pub const EXIT_IO: i32 = ckpt_format::exit::ENVIRONMENT;

/// Why a command did not succeed; [`Failure::exit_code`] maps it to the exit code.
#[derive(Debug)]
pub enum Failure {
    /// The image is invalid (or a format-level I/O error, see [`Failure::exit_code`]).
    Image(ckpt_format::Error),
    /// An I/O or system error outside the image decoder.
    Io {
        /// What was being done.
        what: String,
        /// The OS error.
        err: io::Error,
    },
    /// The request cannot be answered as asked (unknown pid, bad pattern ...).
    Usage(String),
    /// The command ran and its answer is "no": differences found, range not
    /// captured, pattern not found. The report has been written already.
    Negative(String),
}

impl Failure {
    /// An I/O failure.
    pub fn io(what: String, err: io::Error) -> Failure {
        Failure::Io { what, err }
    }
    /// The process exit code for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            Failure::Image(e) if e.is_io() => EXIT_IO,
            Failure::Image(_) | Failure::Negative(_) => EXIT_INVALID,
            Failure::Usage(_) => EXIT_USAGE,
            Failure::Io { err, .. } if err.kind() == io::ErrorKind::BrokenPipe => EXIT_OK,
            Failure::Io { .. } => EXIT_IO,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Image(e) => write!(f, "invalid image: {e}"),
            Failure::Io { what, err } => write!(f, "{what}: {err}"),
            Failure::Usage(m) | Failure::Negative(m) => f.write_str(m),
        }
    }
}

impl std::error::Error for Failure {}

impl From<ckpt_format::Error> for Failure {
    fn from(e: ckpt_format::Error) -> Self {
        Failure::Image(e)
    }
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::io("cannot write the output".into(), e)
    }
}

/// Result of this crate's commands.
pub type Result<T, E = Failure> = std::result::Result<T, E>;
