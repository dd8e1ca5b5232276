//! `ckpt-format` — Linux process checkpoint images.
//!
//! This crate is the center of ckpt: the revision-independent image
//! [model] (a stream of typed [`Event`]s), a decoder and an encoder for
//! every supported [`Revision`] (`cr-v5`, `ckpt-v21`, `native-1`), readers for
//! byte slices (zero-copy, for mmap'd files) and for any `io::Read` (pipes),
//! validation, and conversion between revisions.
//!
//! Every decoder is an [`EventSource`], every encoder an [`EventSink`]; capture
//! and restore backends in other crates implement the same two traits, so that
//! converting is just [`pump`]ing one into the other.
//!
//! ```
//! use ckpt_format::{build::ImageBuilder, open_slice, Event};
//!
//! // Make a small native-1 image in memory, then read it back.
//! let bytes = ImageBuilder::example().to_native_bytes().unwrap();
//! let mut src = open_slice(&bytes).unwrap();
//! let mut tasks = 0;
//! while let Some(ev) = src.next_event().unwrap() {
//!     if let Event::Task(t) = ev {
//!         tasks += 1;
//!         assert_eq!(t.comm, b"example");
//!     }
//! }
//! assert_eq!(tasks, 1);
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod build;
pub mod chain;
pub mod convert;
pub mod crv5;
pub mod detect;
pub mod error;
pub mod exit;
pub mod input;
pub mod layout;
pub mod legacy;
pub mod model;
pub mod native;
pub mod output;
pub mod schema;
pub mod stream;
pub mod v21;
pub mod validate;

pub use detect::{detect, Detected};
pub use error::{Error, ErrorKind, Result};
pub use model::*;
pub use stream::{pump, EventSink, EventSource, RawRecord, ReadOptions, RecordSource};

use std::io::{Read, Write};

/// Recognise the revision of `bytes` and return its event decoder (zero-copy).
pub fn open_slice(bytes: &[u8]) -> Result<Box<dyn EventSource + '_>> {
    open_slice_with(bytes, ReadOptions::default())
}

/// [`open_slice`] with options.
pub fn open_slice_with(bytes: &[u8], opts: ReadOptions) -> Result<Box<dyn EventSource + '_>> {
    match detect::detect(bytes)?.revision()? {
        Revision::Native1 => Ok(Box::new(native::Decoder::new(
            input::SliceInput::new(bytes),
            opts,
        ))),
        Revision::CrV5 => crv5::open_slice(bytes, opts),
        Revision::CkptV21 => v21::open_slice(bytes, opts),
    }
}

/// Recognise the revision of a stream and return its event decoder.
/// Reads no more than needed; memory stays bounded by the largest record.
pub fn open_reader<'r, R: Read + 'r>(r: R) -> Result<Box<dyn EventSource + 'r>> {
    open_reader_with(r, ReadOptions::default())
}

/// [`open_reader`] with options.
pub fn open_reader_with<'r, R: Read + 'r>(
    mut r: R,
    opts: ReadOptions,
) -> Result<Box<dyn EventSource + 'r>> {
    let (rev, prefix) = sniff(&mut r)?;
    let inp = input::StreamInput::with_prefix(&prefix, r);
    match rev {
        Revision::Native1 => Ok(Box::new(native::Decoder::new(inp, opts))),
        Revision::CrV5 => crv5::open_stream(inp, opts),
        Revision::CkptV21 => v21::open_stream(inp, opts),
    }
}

/// Read the first bytes of `r` (at most [`detect::DETECT_LEN`]) and recognise
/// the revision; returns it with the bytes consumed, to be chained back in front.
pub fn sniff<R: Read>(r: &mut R) -> Result<(Revision, Vec<u8>)> {
    let mut prefix = Vec::with_capacity(detect::DETECT_LEN);
    r.take(detect::DETECT_LEN as u64)
        .read_to_end(&mut prefix)
        .map_err(|e| Error::io(0, &e))?;
    let rev = detect::detect(&prefix)?.revision()?;
    Ok((rev, prefix))
}

/// Recognise the revision of `bytes` and return its framing-layer record reader.
pub fn open_records_slice(bytes: &[u8]) -> Result<Box<dyn RecordSource + '_>> {
    let inp = input::SliceInput::new(bytes);
    Ok(match detect::detect(bytes)?.revision()? {
        Revision::Native1 => Box::new(native::RecordReader::new(inp)),
        Revision::CrV5 => Box::new(crv5::Records::new(inp)),
        Revision::CkptV21 => Box::new(v21::Records::new(inp)),
    })
}

/// Recognise the revision of a stream and return its framing-layer record reader.
pub fn open_records_reader<'r, R: Read + 'r>(mut r: R) -> Result<Box<dyn RecordSource + 'r>> {
    let (rev, prefix) = sniff(&mut r)?;
    let inp = input::StreamInput::with_prefix(&prefix, r);
    Ok(match rev {
        Revision::Native1 => Box::new(native::RecordReader::new(inp)),
        Revision::CrV5 => Box::new(crv5::Records::new(inp)),
        Revision::CkptV21 => Box::new(v21::Records::new(inp)),
    })
}

/// An encoder of `rev` writing to `w`.
pub fn encoder<'w, W: Write + 'w>(rev: Revision, w: W) -> Box<dyn EventSink + 'w> {
    match rev {
        Revision::Native1 => Box::new(native::Encoder::new(w)),
        Revision::CrV5 => crv5::encoder(w),
        Revision::CkptV21 => v21::encoder(w),
    }
}
