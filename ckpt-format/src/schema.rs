//! Printable record layouts of a revision: `ckpt-inspect schema [--rev REV]`.
//!
//! The output of [`schema`] for each legacy revision is committed as
//! `docs/SCHEMA-<rev>.txt`; a test fails when a layout changes without a new
//! revision (the "compile-time check" of research seed 004, idea I, in our terms).

use crate::layout::{self, Table};
use crate::model::Revision;
use std::fmt::Write;

/// The table of a legacy revision (`None` for native-1, which is specified in docs/FORMAT.md).
pub fn table(rev: Revision) -> Option<&'static Table> {
    match rev {
        Revision::CrV5 => Some(&layout::crv5::TABLE),
        Revision::CkptV21 => Some(&layout::v21::TABLE),
        Revision::Native1 => None,
    }
}

/// Every record layout of `rev`: type codes, object codes, and each struct's
/// fields with offset, size and type.
pub fn schema(rev: Revision) -> String {
    let mut s = String::new();
    let Some(t) = table(rev) else {
        let _ = writeln!(
            s,
            "# {rev}: layouts are specified in docs/FORMAT.md (self-describing records)"
        );
        let _ = writeln!(
            s,
            "\n## typed records (each right before its owner record; docs/ADDING-AN-OBJECT-KIND.md)"
        );
        let _ = writeln!(s, "{:>6}  {:<20} {:<7} payload", "code", "name", "owner");
        for (code, name, owner, layout) in crate::native::records::KINDS {
            let _ = writeln!(
                s,
                "{:>#6x}  {:<20} {:<7} {layout}",
                code,
                name,
                owner.record().name()
            );
        }
        return s;
    };
    let _ = writeln!(
        s,
        "# {} record layouts (framing: {:?})",
        t.revision, t.framing
    );
    let _ = writeln!(s, "\n## record types");
    for (c, n) in t.types {
        let _ = writeln!(s, "{c:>6}  {n}");
    }
    if !t.objs.is_empty() {
        let _ = writeln!(s, "\n## object types");
        for (c, n) in t.objs {
            let _ = writeln!(s, "{c:>6}  {n}");
        }
    }
    for st in t.structs {
        let code = t.code(st.name);
        let code = if code == 0 {
            String::from("-")
        } else {
            code.to_string()
        };
        let _ = writeln!(
            s,
            "\n## {} (type {}, struct {}, sizeof {})",
            st.name, code, st.c_name, st.size
        );
        let _ = writeln!(s, "{:<32} {:>6} {:>5}  type", "field", "offset", "size");
        for fl in st.fields {
            let _ = writeln!(
                s,
                "{:<32} {:>6} {:>5}  {}",
                fl.name,
                fl.offset,
                fl.size,
                fl.ty.name()
            );
        }
        if !st.trailer.is_empty() {
            let _ = writeln!(s, "followed by: {}", st.trailer);
        }
    }
    s
}
