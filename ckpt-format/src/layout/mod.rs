//! Record layouts of the legacy Linux-CR revisions, kept as data.
//!
//! A revision is a [`Table`]: its record type codes, its shared-object type
//! codes, and the layout of every fixed-size struct ([`Struct`]: field names,
//! offsets, sizes, types). The codecs in [`crate::crv5`] and [`crate::v21`]
//! look codes and fields up by name, so an era-C revision such as v18 or v23,
//! whose differences are renumbered codes and moved fields, is a new table
//! here rather than new code.
//!
//! Offsets come from research (linux-cr-format.md §3.4–3.5 for cr-v5, §4–5 for
//! v21) and are cross-checked by `fixtures/legacy/legacy.c`, which declares the
//! historical C structs and is compiled by the tests.
//! [`crate::schema::schema`] prints these tables; `docs/SCHEMA-*.txt` holds a
//! copy that a test compares against.

pub mod crv5;
pub mod derive;
pub mod v21;

/// Type of a field as it lies on disk (little-endian).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ty {
    /// Unsigned 8-bit.
    U8,
    /// Unsigned 16-bit.
    U16,
    /// Signed 16-bit.
    S16,
    /// Unsigned 32-bit.
    U32,
    /// Signed 32-bit.
    S32,
    /// Unsigned 64-bit.
    U64,
    /// Signed 64-bit.
    S64,
    /// A byte array (`char[n]`).
    Bytes,
    /// Padding: written as zero, reported when read non-zero.
    Pad,
}

impl Ty {
    /// Name printed by the schema.
    pub fn name(self) -> &'static str {
        match self {
            Ty::U8 => "u8",
            Ty::U16 => "u16",
            Ty::S16 => "s16",
            Ty::U32 => "u32",
            Ty::S32 => "s32",
            Ty::U64 => "u64",
            Ty::S64 => "s64",
            Ty::Bytes => "bytes",
            Ty::Pad => "pad",
        }
    }
}

/// One field of a struct.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// C field name.
    pub name: &'static str,
    /// Byte offset in the struct.
    pub offset: usize,
    /// Size in bytes.
    pub size: usize,
    /// Type.
    pub ty: Ty,
}

/// Shorthand constructor used by the tables.
pub const fn f(name: &'static str, offset: usize, size: usize, ty: Ty) -> Field {
    Field {
        name,
        offset,
        size,
        ty,
    }
}

/// A fixed-size struct: a record payload, or an element of an array.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Struct {
    /// Name of the record type (as in the type-code table) or of the element struct.
    pub name: &'static str,
    /// C struct name.
    pub c_name: &'static str,
    /// `sizeof` (what the writer puts in the length field, before any trailing data).
    pub size: usize,
    /// Fields, ordered by offset; padding is listed as [`Ty::Pad`] fields.
    pub fields: &'static [Field],
    /// What follows the struct, in words ("" when nothing).
    pub trailer: &'static str,
}

impl Struct {
    /// The field called `name`.
    pub fn field(&self, name: &str) -> Option<&'static Field> {
        self.fields.iter().find(|f| f.name == name)
    }

    /// Raw value of field `name` in `b` (zero-extended; signed fields keep
    /// their two's-complement bits in the low bytes). 0 if the field does not
    /// exist in this layout or `b` is too short (callers check lengths first).
    pub fn get(&self, b: &[u8], name: &str) -> u64 {
        let Some(fl) = self.field(name) else {
            return 0;
        };
        read_le(b, fl.offset, fl.size)
    }

    /// Value of field `name`, sign-extended when the field is signed.
    pub fn get_i(&self, b: &[u8], name: &str) -> i64 {
        let Some(fl) = self.field(name) else {
            return 0;
        };
        let v = read_le(b, fl.offset, fl.size);
        match fl.ty {
            Ty::S16 => v as u16 as i16 as i64,
            Ty::S32 => v as u32 as i32 as i64,
            _ => v as i64,
        }
    }

    /// Bytes of field `name` (empty if absent or out of range).
    pub fn bytes<'b>(&self, b: &'b [u8], name: &str) -> &'b [u8] {
        self.field(name)
            .and_then(|fl| b.get(fl.offset..fl.offset + fl.size))
            .unwrap_or(&[])
    }

    /// Store the low bytes of `v` in field `name` of `buf`. Does nothing if the
    /// field does not exist in this layout (an optional field of another revision).
    pub fn put(&self, buf: &mut [u8], name: &str, v: u64) {
        if let Some(fl) = self.field(name) {
            if let Some(dst) = buf.get_mut(fl.offset..fl.offset + fl.size) {
                let src = v.to_le_bytes();
                let n = fl.size.min(8);
                dst[..n].copy_from_slice(&src[..n]);
            }
        }
    }

    /// Copy `v` (zero padded or cut) into byte field `name`.
    pub fn put_bytes(&self, buf: &mut [u8], name: &str, v: &[u8]) {
        if let Some(fl) = self.field(name) {
            if let Some(dst) = buf.get_mut(fl.offset..fl.offset + fl.size) {
                dst.fill(0);
                let n = v.len().min(dst.len());
                dst[..n].copy_from_slice(&v[..n]);
            }
        }
    }

    /// A zeroed buffer of `sizeof` bytes.
    pub fn zeroed(&self) -> Vec<u8> {
        vec![0u8; self.size]
    }

    /// Padding fields of `b` that hold non-zero bytes: (field name, offset in struct).
    pub fn nonzero_padding(&self, b: &[u8]) -> Vec<(&'static str, usize)> {
        self.fields
            .iter()
            .filter(|fl| fl.ty == Ty::Pad)
            .filter(|fl| {
                b.get(fl.offset..fl.offset + fl.size)
                    .is_some_and(|s| s.iter().any(|&x| x != 0))
            })
            .map(|fl| (fl.name, fl.offset))
            .collect()
    }
}

fn read_le(b: &[u8], off: usize, size: usize) -> u64 {
    let mut v = [0u8; 8];
    let n = size.min(8);
    if let Some(s) = b.get(off..off + n) {
        v[..n].copy_from_slice(s);
    }
    u64::from_le_bytes(v)
}

/// How records are framed in a revision.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// Era A: `struct cr_hdr {s16 type; s16 len; u32 parent}` before the
    /// payload; `len` counts the payload only; raw blobs follow some records.
    CrHdr,
    /// Era B/C: `struct ckpt_hdr {u32 type; u32 len}` embedded at the start of
    /// every struct; `len` includes the header.
    CkptHdr,
}

/// A revision's tables.
#[derive(Clone, Copy, Debug)]
pub struct Table {
    /// Revision short name (`cr-v5`, `ckpt-v21`).
    pub revision: &'static str,
    /// Framing.
    pub framing: Framing,
    /// Record type codes: (code, name).
    pub types: &'static [(u32, &'static str)],
    /// Shared-object type codes (`enum obj_type`): (code, name). Empty for era A.
    pub objs: &'static [(u32, &'static str)],
    /// Fixed-size structs.
    pub structs: &'static [Struct],
}

impl Table {
    /// Code of record type `name` (0 if the revision has no such record).
    pub fn code(&self, name: &str) -> u32 {
        self.types
            .iter()
            .find(|(_, n)| *n == name)
            .map_or(0, |(c, _)| *c)
    }
    /// Name of record type `code`, or `"unknown"`.
    pub fn name(&self, code: u32) -> &'static str {
        self.types
            .iter()
            .find(|(c, _)| *c == code)
            .map_or("unknown", |(_, n)| n)
    }
    /// Code of object type `name` (0 = none).
    pub fn obj_code(&self, name: &str) -> u32 {
        self.objs
            .iter()
            .find(|(_, n)| *n == name)
            .map_or(0, |(c, _)| *c)
    }
    /// Name of object type `code`, or `"unknown"`.
    pub fn obj_name(&self, code: u32) -> &'static str {
        self.objs
            .iter()
            .find(|(c, _)| *c == code)
            .map_or("unknown", |(_, n)| n)
    }
    /// The struct called `name`. Every name the codecs use exists (tested);
    /// an unknown name yields an empty layout rather than a panic.
    pub fn st(&self, name: &str) -> &'static Struct {
        self.structs
            .iter()
            .find(|s| s.name == name)
            .unwrap_or(&EMPTY)
    }
}

static EMPTY: Struct = Struct {
    name: "",
    c_name: "",
    size: 0,
    fields: &[],
    trailer: "",
};

#[cfg(test)]
mod tests {
    use super::*;

    fn check(t: &Table) {
        for s in t.structs {
            let mut end = 0;
            for fl in s.fields {
                assert_eq!(fl.offset, end, "{} {}: gap or overlap", s.name, fl.name);
                end = fl.offset + fl.size;
                match fl.ty {
                    Ty::U16 | Ty::S16 => assert_eq!(fl.size, 2),
                    Ty::U32 | Ty::S32 => assert_eq!(fl.size, 4),
                    Ty::U64 | Ty::S64 => assert_eq!(fl.size, 8),
                    Ty::U8 => assert_eq!(fl.size, 1),
                    _ => {}
                }
            }
            assert_eq!(end, s.size, "{}: fields do not cover sizeof", s.name);
        }
    }

    #[test]
    fn tables_are_contiguous() {
        check(&crv5::TABLE);
        check(&v21::TABLE);
    }
}
