//! The `v21` revision (decoder and encoder). Not yet implemented: opening
//! such an image returns an `UnsupportedRevision` error.

use crate::error::{Error, ErrorKind, Result};
use crate::input::{Input, SliceInput};
use crate::{EventSink, EventSource, ReadOptions};
use std::io::Write;

fn not_yet() -> Error {
    Error::new(0, ErrorKind::UnsupportedRevision { recognised: "v21 (decoder not implemented yet)".into() })
}

/// Decoder over a slice.
pub fn open_slice(_b: &[u8], _o: ReadOptions) -> Result<Box<dyn EventSource + '_>> {
    let _ = SliceInput::new(&[]).offset();
    Err(not_yet())
}
/// Decoder over a stream.
pub fn open_stream<'r, I: Input + 'r>(_i: I, _o: ReadOptions) -> Result<Box<dyn EventSource + 'r>> {
    Err(not_yet())
}
/// Encoder.
pub fn encoder<'w, W: Write + 'w>(_w: W) -> Box<dyn EventSink + 'w> {
    unimplemented!("v21 encoder")
}
