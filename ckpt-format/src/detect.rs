//! Recognising the revision of an image from its first bytes
//! (research: linux-cr-format.md §0 point 2).
//!
//! | revision | bytes 0..8                       | bytes 8..16                          |
//! |----------|----------------------------------|--------------------------------------|
//! | native-1 | `89 43 4B 50 54 0D 0A 1A`        | u32 revision = 1, u32 CRC-32 of 0..12 |
//! | cr-v5    | `01 00 E0 00 00 00 00 00`        | `CHECKPOINT_MAGIC_HEAD` (LE)          |
//! | ckpt era | `01 00 00 00 LL 00 00 00`        | `CHECKPOINT_MAGIC_HEAD` (LE)          |
//!
//! For the cr era the record after the 232-byte head tells v5–v8 (a TASK, 101)
//! from v9–v13 (HEAD_ARCH, 2); for the ckpt era the header length (48, 56, 72)
//! and `rev` field tell the generation.

use crate::error::{Error, ErrorKind, Result};
use crate::model::Revision;

/// How many leading bytes [`detect`] looks at, at most.
pub const DETECT_LEN: usize = 240;

/// `CHECKPOINT_MAGIC_HEAD`, at offset 8 of every Linux-CR image.
pub const CHECKPOINT_MAGIC_HEAD: u64 = 0x00fe_ed0c_c0a2_d200;
/// `CHECKPOINT_MAGIC_TAIL`.
pub const CHECKPOINT_MAGIC_TAIL: u64 = 0x002d_2a0c_c0de_ef00;
/// First 8 bytes of every native image.
pub const NATIVE_MAGIC: [u8; 8] = [0x89, b'C', b'K', b'P', b'T', 0x0d, 0x0a, 0x1a];

/// What the first bytes say.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Detected {
    /// A supported revision.
    Supported(Revision),
    /// Recognised, but not a revision this crate reads; the text names it.
    Unsupported(String),
}

impl Detected {
    /// The supported revision, or an `UnsupportedRevision` error naming what was recognised.
    pub fn revision(self) -> Result<Revision> {
        match self {
            Detected::Supported(r) => Ok(r),
            Detected::Unsupported(s) => Err(Error::new(
                0,
                ErrorKind::UnsupportedRevision { recognised: s },
            )),
        }
    }
}

fn u16le(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn u32le(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}
fn u64le(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

fn hex(b: &[u8]) -> String {
    let mut s = String::new();
    for (i, x) in b.iter().take(16).enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(&format!("{x:02x}"));
    }
    if s.is_empty() {
        s.push_str("(empty input)");
    }
    s
}

/// Recognise the revision of an image from its first bytes (up to [`DETECT_LEN`]).
pub fn detect(b: &[u8]) -> Result<Detected> {
    let unrecognised = || Error::new(0, ErrorKind::UnrecognisedFormat { found: hex(b) });
    if b.len() >= 8 && b[..8] == NATIVE_MAGIC {
        let rev = u32le(b, 8).ok_or_else(unrecognised)?;
        return Ok(match rev {
            1 => Detected::Supported(Revision::Native1),
            n => Detected::Unsupported(format!("native-{n} (this reader knows native-1)")),
        });
    }
    if u64le(b, 8) != Some(CHECKPOINT_MAGIC_HEAD) {
        return Err(unrecognised());
    }
    // Era A: s16 type = 1, s16 len = 224, u32 parent = 0.
    if u16le(b, 0) == Some(1) && u16le(b, 2) == Some(224) {
        let rev = u16le(b, 22).unwrap_or(0);
        return Ok(match u16le(b, 232) {
            Some(101) | None => Detected::Supported(Revision::CrV5),
            Some(2) => Detected::Unsupported(format!(
                "Linux-CR era A v9..v13 (cr_hdr with HEAD_ARCH, CR_VERSION {rev})"
            )),
            Some(t) => Detected::Unsupported(format!(
                "Linux-CR era A (cr_hdr, CR_VERSION {rev}) with record type {t} after the head"
            )),
        });
    }
    if u32le(b, 0) == Some(1) {
        let len = u32le(b, 4).unwrap_or(0);
        let rev = u16le(b, 24).unwrap_or(0);
        let (maj, min, pat) = (
            u16le(b, 18).unwrap_or(0),
            u16le(b, 20).unwrap_or(0),
            u16le(b, 22).unwrap_or(0),
        );
        return Ok(match (len, rev) {
            (72, 5..=6) => Detected::Supported(Revision::CkptV21),
            (72, r) => Detected::Unsupported(format!(
                "Linux-CR ckpt era, 72-byte header, CHECKPOINT_VERSION {r}, kernel {maj}.{min}.{pat}"
            )),
            (56, r) => Detected::Unsupported(format!(
                "Linux-CR ckpt era v17/v18 (56-byte header, CHECKPOINT_VERSION {r})"
            )),
            (48, r) => Detected::Unsupported(format!(
                "Linux-CR ckpt era v14..v16 (48-byte header, CHECKPOINT_VERSION {r})"
            )),
            (l, r) => Detected::Unsupported(format!(
                "Linux-CR ckpt era with a {l}-byte header (CHECKPOINT_VERSION {r})"
            )),
        });
    }
    Err(unrecognised())
}
