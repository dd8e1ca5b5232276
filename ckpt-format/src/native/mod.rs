//! The `native-1` revision: ckpt's own image format, specified byte by byte in
//! `docs/FORMAT.md`.
//!
//! ```text
//! preamble (16 B)  magic "\x89CKPT\r\n\x1a" | u32 revision = 1 | u32 CRC-32 of bytes 0..12
//! record*          24-byte RecordHeader | payload | zero padding to a multiple of 8
//! ```
//!
//! [`Decoder`] reads it from any [`crate::input::Input`]; [`Encoder`]
//! writes it to any `io::Write`; [`RecordReader`] exposes the framing layer.
//! All three go through [`read_frame`], the one framing function.

mod decode;
mod encode;
mod payload;
mod reader;
pub mod records;
mod sockets;

pub use decode::Decoder;
pub use encode::Encoder;
pub use reader::RecordReader;

use crate::detect::NATIVE_MAGIC;
use crate::error::{Error, ErrorKind, Result};
use crate::input::Input;
use zerocopy::little_endian::U32;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// Size of the preamble.
pub const PREAMBLE_LEN: usize = 16;
/// Size of a record header.
pub const HEADER_LEN: usize = 24;
/// Most pages one PAGES record may hold.
pub const MAX_CHUNK_PAGES: u32 = 4096;
/// Pages per PAGES record the encoder aims for when it splits a large chunk.
pub const DEFAULT_CHUNK_PAGES: u32 = 256;

/// Required feature: the image may contain ZERO_PAGES records.
pub const FEATURE_ZERO_RUNS: u64 = 1 << 0;
/// Required feature: the image may contain FOREIGN records (unknown records of another revision).
pub const FEATURE_FOREIGN: u64 = 1 << 1;
/// Required feature: records may end with an extras block.
pub const FEATURE_EXTRAS: u64 = 1 << 2;
/// Required feature: the image is an increment of a parent image (the HEADER payload ends
/// with the parent reference; PARENT_PAGES records may appear).
pub const FEATURE_PARENT: u64 = 1 << 3;
/// The features every native-1 writer sets.
pub const BASE_FEATURES: u64 = FEATURE_ZERO_RUNS | FEATURE_FOREIGN | FEATURE_EXTRAS;
/// Every required feature this reader understands.
pub const KNOWN_FEATURES: u64 = BASE_FEATURES | FEATURE_PARENT;

/// The record header, first 24 bytes of every record.
///
/// ```text
///  0       4       8       12      16      20      24
///  +-------+-------+-------+-------+-------+-------+
///  | type  |  len  |parent |objref |  crc  |  rsv  |   all u32 little-endian
///  +-------+-------+-------+-------+-------+-------+
/// ```
#[derive(Clone, Copy, Debug, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned)]
#[repr(C)]
pub struct RecordHeader {
    /// Record type code ([`RecordType`]).
    pub ty: U32,
    /// Length of header plus payload in bytes, padding excluded (≥ 24).
    pub len: U32,
    /// Parent tag: pid of the owning task, 0 for image-level records.
    pub parent: U32,
    /// Object id this record defines (FILE, PIPE), else 0.
    pub objref: U32,
    /// CRC-32 (IEEE) of header bytes 0..16 followed by the checked payload
    /// (the whole payload, except in PAGES records: see docs/FORMAT.md).
    pub crc: U32,
    /// Reserved, must be 0.
    pub reserved: U32,
}

/// A native-1 record type code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RecordType(pub u32);

macro_rules! record_types {
    ($($name:ident = $code:expr, $s:expr;)*) => {
        impl RecordType {
            $(
                #[doc = concat!("`", $s, "` record.")]
                pub const $name: RecordType = RecordType($code);
            )*
            /// Every defined type.
            pub const ALL: &'static [RecordType] = &[$(RecordType::$name),*];
            /// Name of the type, `"unknown"` if undefined.
            pub fn name(self) -> &'static str {
                match self.0 {
                    $($code => $s,)*
                    _ => "unknown",
                }
            }
            /// True when the type is defined in native-1.
            pub fn is_known(self) -> bool {
                matches!(self.0, $($code)|*)
            }
        }
    };
}

record_types! {
    HEADER = 0x0001, "HEADER";
    TAIL = 0x0002, "TAIL";
    ERROR = 0x0003, "ERROR";
    FOREIGN = 0x0004, "FOREIGN";
    TASK = 0x0100, "TASK";
    THREAD = 0x0101, "THREAD";
    FS = 0x0102, "FS";
    SIGACTIONS = 0x0103, "SIGACTIONS";
    RLIMITS = 0x0104, "RLIMITS";
    MM = 0x0200, "MM";
    VMA = 0x0201, "VMA";
    PAGES = 0x0202, "PAGES";
    ZERO_PAGES = 0x0203, "ZERO_PAGES";
    VMA_END = 0x0204, "VMA_END";
    PARENT_PAGES = 0x0205, "PARENT_PAGES";
    FILE = 0x0300, "FILE";
    PIPE = 0x0301, "PIPE";
    FD = 0x0302, "FD";
    RSEQ = 0x0410, "RSEQ";
    ROBUST_LIST = 0x0411, "ROBUST_LIST";
    SIGALTSTACK = 0x0412, "SIGALTSTACK";
    CLEAR_CHILD_TID = 0x0413, "CLEAR_CHILD_TID";
    PENDING_SIGNALS = 0x0414, "PENDING_SIGNALS";
    CAPABILITIES = 0x0420, "CAPABILITIES";
    SECURITY = 0x0421, "SECURITY";
    SHARED_PENDING = 0x0422, "SHARED_PENDING";
    REAL_PARENT = 0x0423, "REAL_PARENT";
    PARENT_DEATH_SIGNAL = 0x0424, "PARENT_DEATH_SIGNAL";
    ITIMERS = 0x0425, "ITIMERS";
    POSIX_TIMERS = 0x0426, "POSIX_TIMERS";
    PROCESS_ATTRS = 0x0427, "PROCESS_ATTRS";
    SECUREBITS = 0x0428, "SECUREBITS";
    MAP_IDENTITY = 0x0430, "MAP_IDENTITY";
    UNKNOWN_VM_FLAGS = 0x0431, "UNKNOWN_VM_FLAGS";
    FILE_IDENTITY = 0x0440, "FILE_IDENTITY";
    UNSUPPORTED = 0x0441, "UNSUPPORTED";
    EVENTFD = 0x0442, "EVENTFD";
    TIMERFD = 0x0443, "TIMERFD";
    SIGNALFD = 0x0444, "SIGNALFD";
    EVENTPOLL = 0x0445, "EVENTPOLL";
    INOTIFY = 0x0446, "INOTIFY";
    FILE_CONTENTS = 0x0447, "FILE_CONTENTS";
    FILE_DATA = 0x0448, "FILE_DATA";
    INODE_OF = 0x0449, "INODE_OF";
    MAP_CONTENTS = 0x044a, "MAP_CONTENTS";
    EXE_CONTENTS = 0x044b, "EXE_CONTENTS";
    FILE_LOCKS = 0x044c, "FILE_LOCKS";
    POSIX_LOCKS = 0x044d, "POSIX_LOCKS";
    PIDFD = 0x044e, "PIDFD";
    FOWN = 0x044f, "FOWN";
    SOCKET = 0x0450, "SOCKET";
    SOCKET_QUEUE = 0x0451, "SOCKET_QUEUE";
    TCP_CONNECTION = 0x0452, "TCP_CONNECTION";
    NETLINK_SOCKET = 0x0453, "NETLINK_SOCKET";
    THREAD_ATTRS = 0x0460, "THREAD_ATTRS";
    SECCOMP_FILTERS = 0x0461, "SECCOMP_FILTERS";
    TTY = 0x0470, "TTY";
    JOB_STOP = 0x0471, "JOB_STOP";
}

impl std::fmt::Display for RecordType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_known() {
            write!(f, "{}", self.name())
        } else {
            write!(f, "unknown({:#06x})", self.0)
        }
    }
}

/// Build the 16-byte preamble.
pub fn preamble() -> [u8; PREAMBLE_LEN] {
    let mut p = [0u8; PREAMBLE_LEN];
    p[..8].copy_from_slice(&NATIVE_MAGIC);
    p[8..12].copy_from_slice(&1u32.to_le_bytes());
    let c = crc32fast::hash(&p[..12]);
    p[12..16].copy_from_slice(&c.to_le_bytes());
    p
}

/// Read and check the preamble.
pub fn read_preamble<I: Input>(input: &mut I) -> Result<()> {
    let p = input.read(PREAMBLE_LEN as u64)?;
    if p[..8] != NATIVE_MAGIC {
        let found = u64::from_le_bytes(p[..8].try_into().unwrap_or_default());
        let expected = u64::from_le_bytes(NATIVE_MAGIC);
        return Err(Error::new(0, ErrorKind::BadMagic { found, expected }));
    }
    let rev = u32::from_le_bytes([p[8], p[9], p[10], p[11]]);
    if rev != 1 {
        return Err(Error::new(
            8,
            ErrorKind::UnsupportedRevision {
                recognised: format!("native-{rev}"),
            },
        ));
    }
    let stored = u32::from_le_bytes([p[12], p[13], p[14], p[15]]);
    let computed = crc32fast::hash(&p[..12]);
    if stored != computed {
        return Err(Error::new(
            12,
            ErrorKind::BadChecksum {
                found: stored,
                expected: computed,
            },
        ));
    }
    Ok(())
}

/// Round `n` up to a multiple of 8, or `None` on overflow.
pub fn pad8(n: u64) -> Option<u64> {
    n.checked_add(7).map(|x| x & !7)
}

/// How many payload bytes of a record of type `ty` the header CRC covers.
fn checked_len(ty: RecordType, payload: &[u8]) -> usize {
    if ty == RecordType::PAGES && payload.len() >= 16 {
        let n = u32::from_le_bytes([payload[4], payload[5], payload[6], payload[7]]) as usize;
        (16 + n.saturating_mul(16)).min(payload.len())
    } else {
        payload.len()
    }
}

/// CRC of a record: header bytes 0..16, then the checked part of the payload.
pub fn record_crc(h: &RecordHeader, payload: &[u8]) -> u32 {
    let mut c = crc32fast::Hasher::new();
    c.update(&h.as_bytes()[..16]);
    c.update(&payload[..checked_len(RecordType(h.ty.get()), payload)]);
    c.finalize()
}

/// One framed record: its header, where it starts, and its payload.
#[derive(Debug)]
pub struct Frame<'p> {
    /// Offset of the record header.
    pub offset: u64,
    /// The header as read.
    pub header: RecordHeader,
    /// The payload (length `header.len - 24`).
    pub payload: &'p [u8],
}

impl Frame<'_> {
    /// The record type.
    pub fn ty(&self) -> RecordType {
        RecordType(self.header.ty.get())
    }
    /// An error located at this record.
    pub fn err(&self, kind: ErrorKind) -> Error {
        let t = self.ty();
        Error::new(self.offset, kind).in_record(t.0, t.name())
    }
    /// An error at byte `at` of the payload.
    pub fn err_at(&self, at: usize, kind: ErrorKind) -> Error {
        let t = self.ty();
        Error::new(self.offset + HEADER_LEN as u64 + at as u64, kind).in_record(t.0, t.name())
    }
}

/// The one framing function: read the record at the current offset, check
/// its alignment, length, reserved field, checksum and padding, and return it.
///
/// Returns `Ok(None)` at a clean end of input (which the caller turns into a
/// missing-tail error where one is due). Unknown types are framed like any
/// other; deciding what to do with them is the caller's job. Page contents
/// are not checksummed here (see [`check_page_data`]).
pub fn read_frame<'i, I: Input>(input: &'i mut I) -> Result<Option<(Frame<'i>, u64)>> {
    let offset = input.offset();
    if input.at_eof()? {
        return Ok(None);
    }
    if offset % 8 != 0 {
        return Err(Error::new(offset, ErrorKind::Misaligned { found: offset }));
    }
    let hb = input.read(HEADER_LEN as u64)?;
    let header = RecordHeader::read_from_bytes(hb)
        .map_err(|_| Error::invalid(offset, "short record header", "24 bytes"))?;
    let ty = RecordType(header.ty.get());
    let len = header.len.get() as u64;
    let rec_err = |k| Error::new(offset, k).in_record(ty.0, ty.name());
    if len < HEADER_LEN as u64 {
        return Err(rec_err(ErrorKind::BadLength {
            found: len,
            expected: format!("at least {HEADER_LEN}"),
        }));
    }
    if header.reserved.get() != 0 {
        return Err(Error::new(
            offset + 20,
            ErrorKind::BadValue {
                field: "reserved",
                found: header.reserved.get() as u64,
                expected: "0".into(),
            },
        )
        .in_record(ty.0, ty.name()));
    }
    if len > crate::input::MAX_RECORD_LEN {
        return Err(rec_err(ErrorKind::TooLarge {
            found: len,
            limit: crate::input::MAX_RECORD_LEN,
        }));
    }
    let plen = len - HEADER_LEN as u64;
    let padded = pad8(len).ok_or_else(|| {
        rec_err(ErrorKind::BadLength {
            found: len,
            expected: "a length that can be padded".into(),
        })
    })?;
    let pad = padded - len;
    // Read payload and padding in one go, then split.
    let body = input.read(plen + pad).map_err(|e| match e.kind {
        ErrorKind::Truncated { available, .. } => Error::new(
            offset,
            ErrorKind::Truncated {
                needed: padded,
                available: available + HEADER_LEN as u64,
            },
        )
        .in_record(ty.0, ty.name()),
        ErrorKind::TooLarge { found, limit } => rec_err(ErrorKind::TooLarge {
            found: found + HEADER_LEN as u64,
            limit,
        }),
        _ => e.in_record(ty.0, ty.name()),
    })?;
    let (payload, padding) = body.split_at(plen as usize);
    if let Some(i) = padding.iter().position(|&b| b != 0) {
        return Err(Error::new(
            offset + len + i as u64,
            ErrorKind::BadValue {
                field: "padding",
                found: padding[i] as u64,
                expected: "0".into(),
            },
        )
        .in_record(ty.0, ty.name()));
    }
    let computed = record_crc(&header, payload);
    if computed != header.crc.get() {
        return Err(Error::new(
            offset + 16,
            ErrorKind::BadChecksum {
                found: header.crc.get(),
                expected: computed,
            },
        )
        .in_record(ty.0, ty.name()));
    }
    Ok(Some((
        Frame {
            offset,
            header,
            payload,
        },
        padded,
    )))
}

/// Check the page-contents CRC of a PAGES frame.
pub fn check_page_data(f: &Frame<'_>) -> Result<()> {
    let p = f.payload;
    if p.len() < 16 {
        return Ok(()); // length errors are reported by the decoder
    }
    let runs = u32::from_le_bytes([p[4], p[5], p[6], p[7]]) as usize;
    let stored = u32::from_le_bytes([p[8], p[9], p[10], p[11]]);
    let start = (16 + runs.saturating_mul(16)).min(p.len());
    let computed = crc32fast::hash(&p[start..]);
    if computed != stored {
        return Err(f.err_at(
            8,
            ErrorKind::BadChecksum {
                found: stored,
                expected: computed,
            },
        ));
    }
    Ok(())
}
