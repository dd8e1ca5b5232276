//! The one error type of the format crate.
//!
//! Every error names the byte offset where it was found, the record it was
//! found in (type code and name, when known), and what was found against what
//! was expected.

use std::fmt;
use std::io;

/// The record an error was found in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordId {
    /// Type code as it lies in the image.
    pub code: u32,
    /// Its name in that revision (`"VMA"`, `"unknown"` ...).
    pub name: &'static str,
}

/// What went wrong.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Reading or writing failed.
    Io {
        /// The I/O error kind.
        kind: io::ErrorKind,
        /// The OS message.
        message: String,
    },
    /// The input ended inside a record.
    Truncated {
        /// Bytes the record needs from `offset`.
        needed: u64,
        /// Bytes that were available.
        available: u64,
    },
    /// The first bytes match no revision this crate knows.
    UnrecognisedFormat {
        /// Hex of the first bytes.
        found: String,
    },
    /// A revision was recognised but is not supported.
    UnsupportedRevision {
        /// What was recognised.
        recognised: String,
    },
    /// A magic number is wrong.
    BadMagic {
        /// Found value.
        found: u64,
        /// Expected value.
        expected: u64,
    },
    /// The header sets feature flags this reader does not understand.
    UnknownFeatures {
        /// The flags that are not understood.
        found: u64,
        /// The flags this reader understands.
        known: u64,
    },
    /// A record does not start on an 8-byte boundary.
    Misaligned {
        /// The record's offset.
        found: u64,
    },
    /// A length field is impossible.
    BadLength {
        /// Found length.
        found: u64,
        /// What was expected, in words (`"at least 24"`).
        expected: String,
    },
    /// A record's checksum does not match its bytes.
    BadChecksum {
        /// Checksum stored in the image.
        found: u32,
        /// Checksum computed from the bytes.
        expected: u32,
    },
    /// A record type this revision does not define.
    UnknownRecord {
        /// The type code.
        code: u32,
    },
    /// A record of the wrong type for this place in the stream.
    UnexpectedRecord {
        /// What was found.
        found: String,
        /// What the grammar allows here.
        expected: String,
    },
    /// A field holds an impossible value.
    BadValue {
        /// Field name.
        field: &'static str,
        /// Found value.
        found: u64,
        /// What was expected.
        expected: String,
    },
    /// An object id is used before it is defined.
    ObjrefUndefined {
        /// The id.
        id: u32,
    },
    /// An object id is defined twice.
    ObjrefRedefined {
        /// The id.
        id: u32,
        /// Offset of the first definition.
        first: u64,
    },
    /// A parent tag names no existing owner.
    BadParent {
        /// Found tag.
        found: u32,
        /// Expected tag.
        expected: u32,
    },
    /// VMAs are not sorted and disjoint.
    VmaOrder {
        /// Start of this VMA.
        start: u64,
        /// End of the previous VMA.
        prev_end: u64,
    },
    /// A page address is not page aligned.
    PageUnaligned {
        /// The address.
        addr: u64,
    },
    /// A page lies outside its VMA.
    PageOutsideVma {
        /// The address.
        addr: u64,
        /// VMA start.
        start: u64,
        /// VMA end.
        end: u64,
    },
    /// A page appears twice, or pages are not in ascending order within a VMA.
    PageOrder {
        /// The address.
        addr: u64,
        /// The previous page's address.
        prev: u64,
    },
    /// The stream ended without its terminator (VMA end or tail).
    MissingTerminator {
        /// What was missing.
        expected: &'static str,
    },
    /// Bytes follow the tail.
    TrailingData {
        /// How many.
        bytes: u64,
    },
    /// A value exceeds a limit this reader enforces to bound memory.
    TooLarge {
        /// Found value.
        found: u64,
        /// The limit.
        limit: u64,
    },
    /// The target revision cannot represent parts of the image (conversion without `--lossy`).
    Unrepresentable {
        /// One line per item that would be lost.
        items: Vec<String>,
    },
    /// Any other rule, described in words.
    Invalid {
        /// What was found.
        found: String,
        /// What was expected.
        expected: String,
    },
}

/// An error with the place it was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    /// Byte offset in the image (of the record, or of the field when known).
    pub offset: u64,
    /// The record it was found in.
    pub record: Option<RecordId>,
    /// What went wrong.
    pub kind: ErrorKind,
}

/// Result with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A new error at `offset` with no record.
    pub fn new(offset: u64, kind: ErrorKind) -> Error {
        Error {
            offset,
            record: None,
            kind,
        }
    }
    /// Attach the record this error belongs to.
    pub fn in_record(mut self, code: u32, name: &'static str) -> Error {
        self.record = Some(RecordId { code, name });
        self
    }
    /// An I/O error at `offset`.
    pub fn io(offset: u64, e: &io::Error) -> Error {
        Error::new(
            offset,
            ErrorKind::Io {
                kind: e.kind(),
                message: e.to_string(),
            },
        )
    }
    /// A free-form rule violation.
    pub fn invalid(offset: u64, found: impl Into<String>, expected: impl Into<String>) -> Error {
        Error::new(
            offset,
            ErrorKind::Invalid {
                found: found.into(),
                expected: expected.into(),
            },
        )
    }
    /// True when this is an I/O error rather than a problem of the image.
    pub fn is_io(&self) -> bool {
        matches!(self.kind, ErrorKind::Io { .. })
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use ErrorKind::*;
        match self {
            Io { message, .. } => write!(f, "I/O error: {message}"),
            Truncated { needed, available } => write!(
                f,
                "truncated: found {available} bytes, expected {needed}"
            ),
            UnrecognisedFormat { found } => write!(
                f,
                "unrecognised image: found first bytes {found}, expected a native-1, ckpt-v21 or cr-v5 header"
            ),
            UnsupportedRevision { recognised } => write!(
                f,
                "unsupported revision: recognised {recognised}; supported: cr-v5, ckpt-v21, native-1"
            ),
            BadMagic { found, expected } => {
                write!(f, "bad magic: found {found:#018x}, expected {expected:#018x}")
            }
            UnknownFeatures { found, known } => {
                let bits: Vec<String> = (0..64)
                    .filter(|b| found >> b & 1 == 1)
                    .map(|b| format!("bit {b}"))
                    .collect();
                write!(
                    f,
                    "unknown feature flags: found {found:#x} ({}; docs/FORMAT.md names them), this reader knows only {known:#x}",
                    bits.join(", ")
                )
            }
            Misaligned { found } => write!(
                f,
                "misaligned record: found offset {found:#x}, expected a multiple of 8"
            ),
            BadLength { found, expected } => {
                write!(f, "bad length: found {found}, expected {expected}")
            }
            BadChecksum { found, expected } => write!(
                f,
                "bad checksum: found {found:#010x}, expected {expected:#010x}"
            ),
            UnknownRecord { code } => write!(
                f,
                "unknown record type: found {code:#x}, expected a type defined by the revision"
            ),
            UnexpectedRecord { found, expected } => {
                write!(f, "unexpected record: found {found}, expected {expected}")
            }
            BadValue {
                field,
                found,
                expected,
            } => write!(f, "bad {field}: found {found:#x}, expected {expected}"),
            ObjrefUndefined { id } => write!(
                f,
                "objref {id} used before definition: expected its object record earlier"
            ),
            ObjrefRedefined { id, first } => write!(
                f,
                "objref {id} defined twice: first at offset {first:#x}, expected one definition"
            ),
            BadParent { found, expected } => {
                write!(f, "bad parent tag: found {found}, expected {expected}")
            }
            VmaOrder { start, prev_end } => write!(
                f,
                "VMAs not sorted and disjoint: found start {start:#x}, expected at least {prev_end:#x}"
            ),
            PageUnaligned { addr } => write!(
                f,
                "page address {addr:#x} not page aligned: expected a multiple of the page size"
            ),
            PageOutsideVma { addr, start, end } => write!(
                f,
                "page address {addr:#x} outside its VMA: expected {start:#x}..{end:#x}"
            ),
            PageOrder { addr, prev } => write!(
                f,
                "page address {addr:#x} out of order: expected above {prev:#x}"
            ),
            MissingTerminator { expected } => {
                write!(f, "stream ended early: expected {expected}")
            }
            TrailingData { bytes } => write!(
                f,
                "{bytes} bytes after the tail: expected end of image"
            ),
            TooLarge { found, limit } => {
                write!(f, "value too large: found {found}, expected at most {limit}")
            }
            Unrepresentable { items } => {
                write!(
                    f,
                    "the target revision cannot represent {} item(s): {}",
                    items.len(),
                    items.join("; ")
                )
            }
            Invalid { found, expected } => write!(f, "found {found}, expected {expected}"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {} ({:#x})", self.offset, self.offset)?;
        if let Some(r) = &self.record {
            write!(f, " in record {} (type {:#x})", r.name, r.code)?;
        }
        write!(f, ": {}", self.kind)
    }
}

impl std::error::Error for Error {}
