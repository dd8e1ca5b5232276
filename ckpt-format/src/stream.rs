//! The two traits every codec, capture and restore backend implements
//! ([`EventSource`], [`EventSink`]), the framing-layer record ([`RawRecord`],
//! [`RecordSource`]) and decoder options: the vocabulary below the codecs,
//! re-exported at the crate root.

use crate::error::Result;
use crate::model::Event;

/// Anything that produces the events of an image: a decoder, a live capture, ...
pub trait EventSource {
    /// The next event, or `None` after the last one. After an error has been
    /// returned every later call returns `Ok(None)`: a source never loops on
    /// bad input.
    fn next_event(&mut self) -> Result<Option<Event<'_>>>;
    /// Byte offset of the start of the record the last event came from, for
    /// sources that read bytes (0 otherwise).
    fn offset(&self) -> u64 {
        0
    }
}

/// Anything that consumes the events of an image: an encoder, a live restore, a summary ...
pub trait EventSink {
    /// Consume one event.
    fn event(&mut self, ev: &Event<'_>) -> Result<()>;
    /// Called once after the last event (the tail); flushes output.
    fn finish(&mut self) -> Result<()>;
}

/// One record as it lies in an image: the framing layer that `ckpt-inspect records` prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawRecord<'a> {
    /// Byte offset of the record's first header byte.
    pub offset: u64,
    /// Type code as stored.
    pub type_code: u32,
    /// Name of the type in its revision (`"unknown"` when not defined).
    pub name: &'static str,
    /// Total bytes the record occupies in the file, header included, padding excluded.
    pub len: u64,
    /// Parent tag (0 when the revision or record has none).
    pub parent: u32,
    /// Object id the record defines or refers to, when it has one.
    pub objref: Option<u32>,
    /// The payload bytes (after the record header; raw blobs for era-A records).
    pub payload: &'a [u8],
}

/// Source of framing-layer records.
pub trait RecordSource {
    /// The next record, or `None` at the end. Stops for good after an error.
    fn next_record(&mut self) -> Result<Option<RawRecord<'_>>>;
}

/// Options shared by decoders.
#[derive(Clone, Copy, Debug)]
pub struct ReadOptions {
    /// Check the checksums of page contents (record headers and metadata are
    /// always checked in revisions that have checksums). Default true.
    pub check_page_data: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            check_page_data: true,
        }
    }
}

/// Drive every event of `src` into `sink`, then finish the sink. Returns the number of events.
pub fn pump(
    src: &mut (impl EventSource + ?Sized),
    sink: &mut (impl EventSink + ?Sized),
) -> Result<u64> {
    let mut n = 0u64;
    while let Some(ev) = src.next_event()? {
        sink.event(&ev)?;
        n += 1;
    }
    sink.finish()?;
    Ok(n)
}
