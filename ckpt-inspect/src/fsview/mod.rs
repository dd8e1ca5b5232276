//! The filesystem view of an image (issue 8): `explode`, `implode`, `mount`.
//!
//! The layout is documented in `docs/FSVIEW.md`. [`tree::Tree`] builds the
//! view from an image in one pass over its records; [`explode`] writes it to a
//! directory, [`mount`] serves it read-only over FUSE, and [`implode`] turns a
//! (possibly edited) directory back into an image.

pub mod explode;
pub mod implode;
pub mod mount;
pub mod tree;

pub use explode::explode;
pub use implode::{implode, ImplodeOptions};
pub use mount::{mount, MountOptions};

use std::fmt;

/// An error of the filesystem view. The message names the path in the tree
/// (or the image offset) it is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// Result of this module.
pub type Result<T> = std::result::Result<T, Error>;

/// `PROT_*` bits as `rwx` with `-` for missing bits, or hex when other bits are set.
pub fn fmt_prot(p: u32) -> String {
    if p & !7 != 0 {
        return format!("{p:#x}");
    }
    let mut s = String::new();
    s.push(if p & 1 != 0 { 'r' } else { '-' });
    s.push(if p & 2 != 0 { 'w' } else { '-' });
    s.push(if p & 4 != 0 { 'x' } else { '-' });
    s
}

/// Inverse of [`fmt_prot`] (also accepts any number).
pub fn parse_prot(s: &str) -> Option<u32> {
    let b = s.as_bytes();
    if b.len() == 3 && b.iter().all(|c| b"rwx-".contains(c)) {
        let bit = |i: usize, c: u8, v: u32| -> Option<u32> {
            match b[i] {
                x if x == c => Some(v),
                b'-' => Some(0),
                _ => None,
            }
        };
        return Some(bit(0, b'r', 1)? | bit(1, b'w', 2)? | bit(2, b'x', 4)?);
    }
    parse_u64(s).and_then(|v| u32::try_from(v).ok())
}

/// Parse an unsigned number: decimal, `0x` hex, `0o` octal or `0b` binary.
pub fn parse_u64(s: &str) -> Option<u64> {
    let s = s.trim();
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (h, 16)
    } else if let Some(o) = s.strip_prefix("0o") {
        (o, 8)
    } else if let Some(b) = s.strip_prefix("0b") {
        (b, 2)
    } else {
        (s, 10)
    };
    if digits.is_empty() || digits.starts_with('+') {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prot_round_trip() {
        for p in 0..8 {
            assert_eq!(parse_prot(&fmt_prot(p)), Some(p));
        }
        assert_eq!(fmt_prot(0x1000005), "0x1000005");
        assert_eq!(parse_prot("0x1000005"), Some(0x1000005));
        assert_eq!(parse_prot("rxw"), None);
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_u64("0x10\n"), Some(16));
        assert_eq!(parse_u64("0o644"), Some(0o644));
        assert_eq!(parse_u64("12"), Some(12));
        assert_eq!(parse_u64("+12"), None);
        assert_eq!(parse_u64("0x"), None);
    }
}
