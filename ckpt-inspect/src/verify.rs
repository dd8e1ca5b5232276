//! `verify`: every rule of the format and every checksum, page contents included.

use crate::fmt;
use crate::progress::Progress;
use crate::render::ErrorJson;
use crate::source::Image;
use crate::{Failure, Result};
use ckpt_format::validate::Checker;
use ckpt_format::{Event, ReadOptions};
use serde::Serialize;
use std::io::Write;

/// What `verify` found (`verify --json`).
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
pub struct VerifyReport {
    /// True when every rule and checksum holds.
    pub valid: bool,
    /// Revision, when recognised.
    pub revision: Option<String>,
    /// Events decoded.
    pub events: u64,
    /// Pages whose contents were checked.
    pub pages: u64,
    /// Zero pages.
    pub zero_pages: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Messages of ERROR records (the image is complete as a file, but the writer failed).
    pub writer_errors: Vec<String>,
    /// The first problem.
    pub error: Option<ErrorJson>,
}

/// Verify `img`: decode it with page checksums on and apply the model rules
/// on top ([`ckpt_format::validate`]'s checker). Returns the report and the error.
pub fn verify(img: &mut Image) -> (VerifyReport, Option<ckpt_format::Error>) {
    let total = img.slice().map_or(0, |s| s.len() as u64);
    let mut rep = VerifyReport {
        valid: false,
        revision: None,
        events: 0,
        pages: 0,
        zero_pages: 0,
        bytes: total,
        writer_errors: Vec::new(),
        error: None,
    };
    let pb = Progress::bytes("verify", total);
    let (mut src, count) = match img.events(ReadOptions {
        check_page_data: true,
    }) {
        Ok(x) => x,
        Err(e) => {
            rep.error = Some(ErrorJson::from_error(&e));
            return (rep, Some(e));
        }
    };
    let mut checker = Checker::new();
    let err = loop {
        let res = match src.next_event() {
            Ok(Some(ev)) => {
                rep.events += 1;
                match &ev {
                    Event::Header(h) => rep.revision = Some(h.revision.name().into()),
                    Event::Pages(p) => rep.pages += p.addrs.len() as u64,
                    Event::ZeroPages(z) => rep.zero_pages = rep.zero_pages.saturating_add(z.count),
                    Event::Error(m) => rep.writer_errors.push(fmt::bytes(m)),
                    _ => {}
                }
                checker.check(&ev, 0)
            }
            Ok(None) => break checker.finish(src.offset()).err(),
            Err(e) => break Some(e),
        };
        if let Err(mut e) = res {
            e.offset = src.offset();
            break Some(e);
        }
        if rep.events % 64 == 0 {
            pb.set(src.offset());
        }
    };
    drop(src);
    pb.finish();
    rep.bytes = count.get();
    rep.valid = err.is_none();
    rep.error = err.as_ref().map(ErrorJson::from_error);
    (rep, err)
}

/// Run `verify` and write its report.
pub fn run(img: &mut Image, json: bool, out: &mut dyn Write) -> Result<()> {
    let (rep, err) = verify(img);
    if json {
        serde_json::to_writer_pretty(&mut *out, &rep).map_err(std::io::Error::from)?;
        writeln!(out)?;
    } else if let Some(e) = &err {
        writeln!(out, "INVALID: {e}")?;
    } else {
        writeln!(
            out,
            "OK: {} image, {} events, {} pages checked, {} zero pages, {} bytes ({})",
            rep.revision.as_deref().unwrap_or("?"),
            rep.events,
            rep.pages,
            rep.zero_pages,
            rep.bytes,
            fmt::human(rep.bytes)
        )?;
        for m in &rep.writer_errors {
            writeln!(out, "note: the writer recorded an error: {m}")?;
        }
    }
    match err {
        Some(e) => Err(Failure::Image(e)),
        None => Ok(()),
    }
}
