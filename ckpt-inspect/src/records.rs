//! `records`: the framing layer, one line per record, for every revision.

use crate::render::ErrorJson;
use crate::source::Image;
use crate::{Failure, Result};
use ckpt_format::{ErrorKind, Revision};
use serde::Serialize;
use std::io::Write;

/// One record as `records --json` prints it.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct RecordJson {
    /// Byte offset of the record.
    pub offset: u64,
    /// Type name in its revision.
    #[serde(rename = "type")]
    pub ty: &'static str,
    /// Type code.
    pub code: u32,
    /// Bytes the record occupies (header included, padding excluded).
    pub len: u64,
    /// Parent tag.
    pub parent: u32,
    /// Object id defined or referred to.
    pub objref: Option<u32>,
}

/// Write every record of `img` to `out` (text or JSON). Stops at the first
/// framing error, which is written too and returned.
pub fn records(img: &mut Image, json: bool, out: &mut dyn Write) -> Result<()> {
    let (mut src, rev) = match img.records() {
        Ok(s) => s,
        Err(e) => {
            if json {
                write_json_end(out, false, 0, Some(&e))?;
            } else {
                writeln!(out, "INVALID: {e}")?;
            }
            return Err(Failure::Image(e));
        }
    };
    let mut n = 0u64;
    let mut last: Option<(u64, u64, &'static str)> = None;
    if json {
        write!(out, "{{\n  \"records\": [")?;
    } else {
        writeln!(
            out,
            "{:>12}  {:<18} {:>8} {:>10} {:>8} {:>7}",
            "OFFSET", "TYPE", "CODE", "LEN", "PARENT", "OBJREF"
        )?;
    }
    let err = loop {
        match src.next_record() {
            Ok(Some(r)) => {
                if json {
                    let j = RecordJson {
                        offset: r.offset,
                        ty: r.name,
                        code: r.type_code,
                        len: r.len,
                        parent: r.parent,
                        objref: r.objref,
                    };
                    out.write_all(if n == 0 { b"\n    " } else { b",\n    " })?;
                    serde_json::to_writer(&mut *out, &j).map_err(std::io::Error::from)?;
                } else {
                    let objref = r.objref.map_or_else(|| "-".to_string(), |o| o.to_string());
                    writeln!(
                        out,
                        "{:>#12x}  {:<18} {:>#8x} {:>10} {:>8} {:>7}",
                        r.offset, r.name, r.type_code, r.len, r.parent, objref
                    )?;
                }
                n += 1;
                last = Some((r.offset, r.len, r.name));
            }
            Ok(None) => break missing_tail(rev, last),
            Err(e) => break Some(e),
        }
    };
    drop(src);
    if json {
        write_json_end(out, true, n, err.as_ref())?;
    } else {
        writeln!(out, "{n} records")?;
        if let Some(e) = &err {
            writeln!(out, "INVALID: {e}")?;
        }
    }
    match err {
        Some(e) => Err(Failure::Image(e)),
        None => Ok(()),
    }
}

/// The framing layer stops quietly at a clean end of input; an image must
/// end with its TAIL record.
fn missing_tail(
    rev: Revision,
    last: Option<(u64, u64, &'static str)>,
) -> Option<ckpt_format::Error> {
    let end = match last {
        Some((_, _, "TAIL")) => return None,
        Some((off, len, _)) => {
            let end = off.saturating_add(len);
            if rev == Revision::Native1 {
                end.saturating_add(7) & !7
            } else {
                end
            }
        }
        None if rev == Revision::Native1 => ckpt_format::native::PREAMBLE_LEN as u64,
        None => 0,
    };
    Some(ckpt_format::Error::new(
        end,
        ErrorKind::MissingTerminator {
            expected: "a TAIL record",
        },
    ))
}

fn write_json_end(
    out: &mut dyn Write,
    opened: bool,
    n: u64,
    err: Option<&ckpt_format::Error>,
) -> Result<()> {
    if !opened {
        write!(out, "{{\n  \"records\": [")?;
    }
    let e = serde_json::to_string(&err.map(ErrorJson::from_error)).unwrap_or_default();
    writeln!(
        out,
        "\n  ],\n  \"count\": {n},\n  \"valid\": {},\n  \"error\": {e}\n}}",
        err.is_none()
    )?;
    Ok(())
}
