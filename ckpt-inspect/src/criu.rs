//! The commands' CRIU views: `show` (the model's summary plus what only CRIU dumps have:
//! sockets, mounts, container metadata, what the model does not carry) and `records` (every
//! entry of every image file). docs/JSON.md describes the JSON.

use crate::source::{criu_failure, Image};
use crate::{render, summary, Failure, Result};
use ckpt_criu::magic::{self, Layout};
use ckpt_criu::{pb, CriuImage, ImageFile};
use ckpt_format::EventSource;
use serde::Serialize;
use std::io::Write;

/// What the model cannot carry of `c` (decodes every event; pages are not read).
pub fn losses(c: &CriuImage) -> Result<Vec<String>> {
    let mut dec = ckpt_criu::Decoder::new(c).map_err(criu_failure)?;
    while dec.next_event()?.is_some() {}
    Ok(dec.losses().to_vec())
}

/// `show` of a CRIU dump: one pass of the decoder gives the summary and the losses.
pub fn show(img: &mut Image, json: bool, out: &mut dyn Write) -> Result<()> {
    let Image::Criu(c) = img else {
        return Err(Failure::Usage("not a CRIU dump".into()));
    };
    let (s, err, losses) = match ckpt_criu::Decoder::new(c) {
        Ok(mut dec) => {
            let (sm, err) = summary::summarise_source(&mut dec);
            let losses = if err.is_none() {
                dec.losses().to_vec()
            } else {
                Vec::new()
            };
            (sm.finish(crate::source::criu_bytes(c)), err, losses)
        }
        Err(e) => (summary::Summary::default(), Some(e.into()), Vec::new()),
    };
    let info = ckpt_criu::info::info(c).map_err(criu_failure)?;
    if json {
        let mut v: serde_json::Value = serde_json::from_str(&render::show_json(&s, err.as_ref()))
            .map_err(std::io::Error::from)?;
        let mut ci = serde_json::to_value(&info).map_err(std::io::Error::from)?;
        ci["losses"] = serde_json::to_value(&losses).map_err(std::io::Error::from)?;
        v["criu"] = ci;
        serde_json::to_writer_pretty(&mut *out, &v).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        out.write_all(render::show_text(&s, err.as_ref()).as_bytes())?;
        writeln!(out)?;
        out.write_all(ckpt_criu::info::render_text(&info, &losses).as_bytes())?;
    }
    err.map_or(Ok(()), |e| Err(Failure::Image(e)))
}

/// One entry of one image file.
#[derive(Serialize)]
struct Row<'a> {
    file: &'a str,
    offset: u64,
    #[serde(rename = "type")]
    ty: &'static str,
    magic: u32,
    len: u64,
}

/// `records` of a CRIU dump: every entry of every file (raw files as one row).
pub fn records(c: &CriuImage, json: bool, out: &mut dyn Write) -> Result<()> {
    let mut rows = Vec::new();
    let mut err = None;
    'files: for name in c.names() {
        let b = c.file(name).unwrap_or(&[]);
        if magic::is_raw_name(name) || name.starts_with("stats-") && b.is_empty() {
            rows.push(Row {
                file: name,
                offset: 0,
                ty: "RAW",
                magic: 0,
                len: b.len() as u64,
            });
            continue;
        }
        let mut f = match ImageFile::new(name, b) {
            Ok(f) => f,
            Err(e) => {
                err = Some(e);
                break;
            }
        };
        let kind = f.kind();
        let ty = kind.map_or("unknown", |k| k.name);
        loop {
            let e = match f.next_entry() {
                Ok(Some(e)) => e,
                Ok(None) => break,
                Err(e) => {
                    err = Some(e);
                    break 'files;
                }
            };
            rows.push(Row {
                file: name,
                offset: e.offset,
                ty,
                magic: f.magic,
                len: e.payload.len() as u64 + 4,
            });
            if kind.map(|k| k.layout) == Some(Layout::EntriesWithPayload) {
                use prost::Message;
                let extra = match f.magic {
                    magic::PIPES_DATA | magic::FIFO_DATA => {
                        pb::PipeDataEntry::decode(e.payload).map(|p| p.bytes as u64)
                    }
                    magic::SK_QUEUES => {
                        pb::SkPacketEntry::decode(e.payload).map(|p| p.length as u64)
                    }
                    // Other payload layouts are not walked: the rest of the file is one row.
                    _ => Ok(b.len() as u64 - f.position()),
                };
                let n = match extra {
                    Ok(n) => n,
                    Err(x) => {
                        err = Some(ckpt_criu::CriuError::new(
                            name,
                            e.offset,
                            format!("undecodable entry ({x})"),
                            "an entry giving its payload's length",
                        ));
                        break 'files;
                    }
                };
                let at = f.position();
                if let Err(e) = f.take_extra(n, "payload") {
                    err = Some(e);
                    break 'files;
                }
                rows.push(Row {
                    file: name,
                    offset: at,
                    ty: "PAYLOAD",
                    magic: 0,
                    len: n,
                });
            }
        }
    }
    if json {
        #[derive(Serialize)]
        struct J<'a> {
            format: &'static str,
            records: &'a [Row<'a>],
            valid: bool,
            error: Option<String>,
        }
        let j = J {
            format: "criu",
            records: &rows,
            valid: err.is_none(),
            error: err.as_ref().map(|e| e.to_string()),
        };
        serde_json::to_writer_pretty(&mut *out, &j).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else {
        writeln!(
            out,
            "{:<28} {:>10}  {:<16} {:>10} {:>10}",
            "FILE", "OFFSET", "TYPE", "MAGIC", "LEN"
        )?;
        for r in &rows {
            writeln!(
                out,
                "{:<28} {:>10}  {:<16} {:#010x} {:>10}",
                r.file, r.offset, r.ty, r.magic, r.len
            )?;
        }
        match &err {
            Some(e) => writeln!(out, "INVALID: {e}")?,
            None => writeln!(out, "{} records", rows.len())?,
        }
    }
    match err {
        Some(e) => Err(criu_failure(e)),
        None => Ok(()),
    }
}
