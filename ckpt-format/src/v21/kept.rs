//! Records kept from a source as [`Event::Unknown`] ckpt-v21 records, and
//! whether writing them back gives them back.
//!
//! The ckpt-v21 decoder reads many record types itself (signal state,
//! namespaces, the container section, TASK_OBJS, ...) and keeps them as
//! records only where they are not what it reads there (a real hostname, an
//! LSM, a signal object with a tty). A native-1 image may hold such a record
//! as `Unknown` anywhere (a fuzzer builds them): written into a ckpt-v21
//! stream in a place where the decoder reads that type itself, it would be
//! read as part of the image's own state (a SIGPENDING as a thread's queue,
//! an IPC_NS equal to ckpt's own as nothing) and the conversion would not
//! be exact. So a conversion to ckpt-v21 of an image holding kept ckpt-v21
//! records writes the image once, reads it back and compares the kept
//! records: those not given back, in order, or read back after records not
//! sent, are named losses, and when the kept records come back but the
//! other events do not (a kept SIGPENDING between the file table and
//! TASK_OBJS moves the resource limits), every kept record is (strict:
//! refused; lossy: not written, listed), and the check is repeated without
//! them until every kept record written comes back
//! (docs/V21-STREAM.md "Records kept from the source").

use super::*;
use crate::legacy::LegacySink;
use crate::stream::EventSink;
use std::collections::BTreeSet;
use std::hash::{Hash, Hasher};

/// What identifies a kept record: type code, payload length, payload hash.
pub type Fingerprint = (u32, usize, u64);

/// The fingerprint of a ckpt-v21 `Unknown` event (None for other events).
pub fn fingerprint(ev: &Event<'_>) -> Option<Fingerprint> {
    match ev {
        Event::Unknown(u) if u.revision == Revision::CkptV21 => {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            u.payload.hash(&mut h);
            Some((u.type_code, u.payload.len(), h.finish()))
        }
        _ => None,
    }
}

/// The item an encoder lists for kept record `u` that would not come back.
pub fn not_given_back(u: &Unknown<'_>) -> String {
    format!(
        "ckpt-v21 record {} ({}) kept from the source would not be read back as that record in this place (a ckpt-v21 reader reads it as part of the image or not at all): not written",
        T.name(u.type_code),
        u.type_code
    )
}

/// An [`EventSink`] in front of an encoder that numbers the ckpt-v21
/// `Unknown` events it passes (0, 1, ...) and keeps the fingerprints of the
/// ones to compare: not in `skip`, not named by the encoder itself as it
/// took them (an item listed during the event, e.g. a SIGNAL_TASK of a
/// one-pass decode), and not TASK_OBJS (which the encoder renumbers and
/// names itself when it would not come back: `task_objs_record`).
pub struct Tee<'s> {
    sink: &'s mut dyn LegacySink,
    skip: &'s BTreeSet<usize>,
    next: usize,
    /// (index, fingerprint) of each kept record passed and not skipped.
    pub seen: Vec<(usize, Fingerprint)>,
    /// A hash of every event passed, skipped kept records left out.
    pub all: Vec<u64>,
}

impl<'s> Tee<'s> {
    /// A tee in front of `sink`.
    pub fn new(sink: &'s mut dyn LegacySink, skip: &'s BTreeSet<usize>) -> Self {
        Tee {
            sink,
            skip,
            next: 0,
            seen: Vec::new(),
            all: Vec::new(),
        }
    }

    /// Whether the encoder named no item so far.
    pub fn no_items(&self) -> bool {
        self.sink.items().is_empty()
    }
}

/// A hash of event `ev`.
pub fn event_hash(ev: &Event<'_>) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    ev.hash(&mut h);
    h.finish()
}

impl EventSink for Tee<'_> {
    fn event(&mut self, ev: &Event<'_>) -> Result<()> {
        let Some(fp) = fingerprint(ev) else {
            self.all.push(event_hash(ev));
            return self.sink.event(ev);
        };
        if !self.skip.contains(&self.next) {
            self.all.push(event_hash(ev));
        }
        let before = self.sink.items().len();
        self.sink.event(ev)?;
        let named = self.sink.items().len() > before;
        if !self.skip.contains(&self.next) && !named && fp.0 != code("TASK_OBJS") {
            self.seen.push((self.next, fp));
        }
        self.next += 1;
        Ok(())
    }
    fn finish(&mut self) -> Result<()> {
        self.sink.finish()
    }
}

/// The fingerprints of the kept records a ckpt-v21 image gives back, and a
/// hash of every event, read the way conversions read it ([`open_slice`]:
/// threads first, then the events; one pass when the first fails), from
/// `open()` called twice.
pub fn given_back<I: Input>(
    mut open: impl FnMut() -> Result<I>,
) -> Result<(Vec<Fingerprint>, Vec<u64>)> {
    let o = ReadOptions::default();
    let mut src = match scan_threads(open()?) {
        Ok(t) => Decoder::with_threads(open()?, o, t),
        Err(_) => Decoder::new(open()?, o),
    };
    let (mut kept, mut all) = (Vec::new(), Vec::new());
    while let Some(ev) = src.next_event()? {
        kept.extend(fingerprint(&ev));
        all.push(event_hash(&ev));
    }
    Ok((kept, all))
}

/// The indices of the kept records `sent` (in the order written) that do not
/// come back in `back` in the same order (matched greedily, in order), and of
/// those read back after records that were not sent (a reader gives records
/// of ckpt's own back as kept ones right before a kept record naming them, as
/// before an NS naming ckpt's own UTS_NS: that kept record changed the image).
pub fn not_matched(sent: &[(usize, Fingerprint)], back: &[Fingerprint]) -> Vec<usize> {
    let mut j = 0;
    let mut lost = Vec::new();
    for (i, fp) in sent {
        match back[j..].iter().position(|b| b == fp) {
            Some(k) => {
                if k > 0 {
                    lost.push(*i);
                }
                j += k + 1;
            }
            None => lost.push(*i),
        }
    }
    lost
}
