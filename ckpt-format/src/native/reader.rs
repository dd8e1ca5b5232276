//! The framing layer of native-1 for `ckpt-inspect records`: [`RecordReader`].

use super::*;
use crate::input::Input;
use crate::stream::{RawRecord, RecordSource};

/// The framing layer of a native-1 image: every record with its offset,
/// type, length, parent tag and objref, checked by [`read_frame`].
pub struct RecordReader<I> {
    input: I,
    started: bool,
    done: bool,
}

impl<I: Input> RecordReader<I> {
    /// Read records from `input`, positioned at the preamble.
    pub fn new(input: I) -> Self {
        RecordReader {
            input,
            started: false,
            done: false,
        }
    }
}

impl<I: Input> RecordSource for RecordReader<I> {
    fn next_record(&mut self) -> Result<Option<RawRecord<'_>>> {
        if self.done {
            return Ok(None);
        }
        self.done = true;
        if !self.started {
            read_preamble(&mut self.input)?;
            self.started = true;
        }
        let Some((f, _)) = read_frame(&mut self.input)? else {
            return Ok(None);
        };
        let ty = f.ty();
        let objref = match ty {
            RecordType::FILE | RecordType::PIPE => Some(f.header.objref.get()),
            RecordType::FD if f.payload.len() >= 12 => Some(u32::from_le_bytes([
                f.payload[8],
                f.payload[9],
                f.payload[10],
                f.payload[11],
            ])),
            _ => None,
        };
        let rec = RawRecord {
            offset: f.offset,
            type_code: ty.0,
            name: ty.name(),
            len: f.header.len.get() as u64,
            parent: f.header.parent.get(),
            objref,
            payload: f.payload,
        };
        self.done = ty == RecordType::TAIL;
        Ok(Some(rec))
    }
}
