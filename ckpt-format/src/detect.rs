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
//! and `rev` field tell the generation; v21 and v23 (both rev 6) are told apart
//! by the record that opens the task section (TREE in v21, PIDS in v23).

use crate::error::{Error, ErrorKind, Result};
use crate::model::Revision;

/// How many leading bytes [`detect`] looks at, at most.
pub const DETECT_LEN: usize = 1024;

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

/// v21 and v23 share the header (rev 6, 72 bytes). Walk the records after it
/// (uts BUFFERs, HEADER_ARCH, CONTAINER, LSM ...) to the first task-section
/// record: v21 has TREE (type 101, 16 bytes), v23 has PIDS (type 101, 24
/// bytes). When the prefix ends first, the image is taken for v21.
fn ckpt_v23(b: &[u8]) -> bool {
    let mut at = 72usize;
    while let (Some(ty), Some(len)) = (u32le(b, at), u32le(b, at + 4)) {
        match ty {
            2..=8 if len >= 8 => at = at.saturating_add(len as usize),
            101 => return len == 24,
            _ => return false,
        }
    }
    false
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
            // A TASK, or the TAIL of an image without a task (what the
            // decoder accepts, and what a lossy conversion of one writes).
            Some(101) | Some(5001) | None => Detected::Supported(Revision::CrV5),
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
            (72, 6) if ckpt_v23(b) => Detected::Unsupported(format!(
                "Linux-CR ckpt-v23 (72-byte header, CHECKPOINT_VERSION 6, PIDS record), kernel {maj}.{min}.{pat}"
            )),
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

#[cfg(test)]
mod legacy_tests {
    use super::*;

    fn ckpt_header(rev: u16) -> Vec<u8> {
        let mut b = vec![0u8; 72];
        b[0] = 1;
        b[4] = 72;
        b[8..16].copy_from_slice(&CHECKPOINT_MAGIC_HEAD.to_le_bytes());
        b[24..26].copy_from_slice(&rev.to_le_bytes());
        for _ in 0..3 {
            b.extend_from_slice(&[4, 0, 0, 0, 73, 0, 0, 0]);
            b.extend_from_slice(&[0; 65]);
        }
        b.extend_from_slice(&[2, 0, 0, 0, 16, 0, 0, 0, 1, 0, 0, 0, 0, 2, 0, 0]);
        b
    }

    #[test]
    fn v21_and_v23_are_told_apart() {
        let mut v21 = ckpt_header(6);
        v21.extend_from_slice(&[101, 0, 0, 0, 16, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
        assert_eq!(
            detect(&v21).unwrap(),
            Detected::Supported(Revision::CkptV21)
        );
        let mut v23 = ckpt_header(6);
        v23.extend_from_slice(&[101, 0, 0, 0, 24, 0, 0, 0]);
        v23.extend_from_slice(&[0; 16]);
        match detect(&v23).unwrap() {
            Detected::Unsupported(s) => assert!(s.contains("v23"), "{s}"),
            d => panic!("{d:?}"),
        }
        // A prefix cut before the task section is taken for v21.
        assert_eq!(
            detect(&v21[..100]).unwrap(),
            Detected::Supported(Revision::CkptV21)
        );
        assert!(matches!(
            detect(&ckpt_header(3)).unwrap(),
            Detected::Unsupported(_)
        ));
    }

    #[test]
    fn era_a_tells_tasks_and_a_task_less_tail_from_head_arch() {
        let mut head = vec![0u8; 232];
        head[0] = 1;
        head[2] = 224;
        head[8..16].copy_from_slice(&CHECKPOINT_MAGIC_HEAD.to_le_bytes());
        for (code, v5) in [(101u16, true), (5001, true), (2, false), (7, false)] {
            let mut b = head.clone();
            b.extend_from_slice(&code.to_le_bytes());
            b.extend_from_slice(&[0; 6]);
            let d = detect(&b).unwrap();
            assert_eq!(
                d == Detected::Supported(Revision::CrV5),
                v5,
                "{code}: {d:?}"
            );
        }
        assert_eq!(detect(&head).unwrap(), Detected::Supported(Revision::CrV5));
    }
}
