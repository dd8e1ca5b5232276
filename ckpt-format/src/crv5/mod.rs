//! The `cr-v5` revision: Linux-CR RFC v5 (September 2008), era A, x86-32.
//!
//! ```text
//! record := cr_hdr{s16 type; s16 len; u32 parent} payload[len] raw?
//! image  := HEAD task+ TAIL
//! task   := TASK STRING(comm)
//!           MM ( VMA [FNAME] chunk* PGARR(0) ){map_count} MM_CONTEXT ldt_raw
//!           FILES ( FD_ENT [FD_DATA FNAME] ){nfds}
//!           THREAD tls_raw CPU(+xstate inside the payload)
//! chunk  := PGARR(n>0) vaddrs_raw[n x u32] pages_raw[n x 4096]
//! ```
//!
//! The stream is not padded between records (research §3.1): a 14-byte FNAME
//! is followed directly by the next `cr_hdr`. Layouts are in
//! [`crate::layout::crv5`]; [`Records`] is the one framing function, used by
//! [`Decoder`] and by `ckpt-inspect records`.
//!
//! Era-A kernels left struct padding uninitialised; the decoder records every
//! non-zero pad field in [`Decoder::warnings`] and the encoder writes zeros.
//!
//! Files: `frame` (record header, framing), `decode` (records to events),
//! `encode` (events to records; `encode/memory` the MM, VMA and page records);
//! the table of record kinds and their layouts is [`crate::layout::crv5`].

use crate::error::{Error, ErrorKind, Result};
use crate::input::{Input, SliceInput};
use crate::layout::crv5::{self as L, TABLE as T};
use crate::layout::derive;
use crate::legacy::{LegacyRevision, LegacySink, Losses, Out, Plan, ZEROS};
use crate::model::*;
use crate::stream::{EventSink, EventSource, RawRecord, ReadOptions, RecordSource};
use std::borrow::Cow;
use std::collections::HashSet;
use std::io::{self, Write};

const PAGE: u64 = 4096;
const ADDR: u64 = 4;
const MAX_WARNINGS: usize = 1000;

/// This module's revision, for messages.
const REV: Revision = Revision::CrV5;

fn code(name: &str) -> u32 {
    T.code(name)
}

mod decode;
mod encode;
mod frame;

use decode::count_tls;
pub use decode::{open_slice, open_stream, Decoder, PadWarning};
pub use encode::{encoder, Codec, Encoder};
pub use frame::{Framer, Hdr, Records};

#[allow(dead_code)]
fn _assert_io(_: io::Empty) {}

/// Framing-layer records of a cr-v5 image in a slice (`ckpt-inspect records`).
pub fn open_records(b: &[u8]) -> Box<dyn RecordSource + '_> {
    Box::new(Records::new(SliceInput::new(b)))
}
